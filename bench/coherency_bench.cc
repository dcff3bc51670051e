// Cache / direct-I/O coherency benchmarks (issue 4), each against a
// baseline measured in the same run, on the mem: and emu: backends:
//  1. write-through: 4 KiB O_SYNC writes to a conventional file through
//     zfile, vs a page-granular cache's way to honour O_SYNC: apply the
//     update to the cached page and write the whole page to the raw device,
//     then flush. Counters: device bytes per user byte (from zfile_vol_stats'
//     device_write_bytes), latency per write (the time column).
//  2. mixed workload on one conventional file: threads doing buffered 4 KiB
//     reads/writes and threads doing O_DIRECT 64 KiB reads/writes over the
//     same range (2+2 threads), vs each kind alone and vs all-buffered /
//     all-direct (4 threads); 1+1 threads too, to tell apart the fallbacks
//     caused by two direct threads. The configurations take turns in
//     rounds; the summary shows ops/s per kind, worst op latency,
//     dio_fallbacks and the file lock's slow-path counters.
//  3. a direct write over a range pinned by a mapped view (the buffered
//     fallback), and one whose source is that view, vs a plain direct write.
// 1 and 3 run 5 repetitions each, interleaved at random with all the
// others' (--benchmark_enable_random_interleaving=false runs them in order),
// and are compared by their medians. After the runs, tables of
// zfile/baseline ratios are printed. On emu: the device is files under
// $ZFILE_BENCH_EMU_DIR (default /tmp) and a flush is an fdatasync, so its
// figures follow the host's disk and page cache.
#include <fcntl.h>
#include <spdlog/sinks/null_sink.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/zfile_internal.h"
#include "base/log.h"
#include "bench_util.h"
#include "device/zoned_device.h"
#include "engine/file_inode.h"
#include "zfile/zfile.h"

namespace {

using zfile::bench::Aligned;
using zfile::bench::BenchDevice;
using zfile::bench::Buf;
using zfile::bench::Check;
using zfile::bench::FormatAndMount;
using zfile::bench::RecordingReporter;
using zfile::bench::VolStat;
using Clock = std::chrono::steady_clock;

// Zone 0 holds the superblock, zone 1 is the conventional file cnv/0.
constexpr const char* kGeometry = "size=1G&zone_size=256M&conv=2&block_size=4096";
constexpr uint32_t kCnvZone = 1;
constexpr const char* kCnvFile = "cnv/0";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Opens cnv/0 with `flags`; null (and the benchmark skipped) on failure.
zfile_file* OpenCnv(zfile_vol* vol, int flags, benchmark::State& state) {
  zfile_file* f = nullptr;
  if (zfile_open(vol, kCnvFile, flags, &f) != 0) {
    state.SkipWithError(zfile_last_error());
    return nullptr;
  }
  return f;
}

// ---------------------------------------------------------------------------
// 1. Write-through.

constexpr size_t kUpdate = 4096;            // one O_SYNC write
constexpr uint64_t kUpdateSpan = 16 << 20;  // updated in order, 4 KiB at a time, wrapping
constexpr size_t kWarmRead = 1 << 20;
constexpr int kEmuSyncWrites = 30;  // per repetition on emu (a few ms each)

// zfile: O_SYNC pwrites of 4 KiB through the cache; the argument is the
// cache page size (mount option cache_page_size).
void ZfileSyncWrite(benchmark::State& state, const BenchDevice& bd) {
  const std::string options = "cache_page_size=" + std::to_string(state.range(0));
  zfile_vol* vol = FormatAndMount(bd, options.c_str(), state);
  if (vol == nullptr) return;
  if (zfile_file* f = OpenCnv(vol, O_RDWR | O_SYNC, state); f != nullptr) {
    // Cache the span first, as the baseline's pages are: the loop measures
    // updates of cached pages, not page allocation.
    Buf warm = Aligned(kWarmRead);
    for (uint64_t off = 0; off < kUpdateSpan; off += kWarmRead) {
      zfile_pread(f, warm.get(), kWarmRead, off);
    }
    Buf update = Aligned(kUpdate, 0xA5);
    const uint64_t written0 = VolStat(vol, "device_write_bytes");
    const uint64_t read0 = VolStat(vol, "device_read_bytes");
    uint64_t off = 0;
    for (auto _ : state) {
      update.get()[0]++;  // every update changes the data
      if (zfile_pwrite(f, update.get(), kUpdate, off) != static_cast<ssize_t>(kUpdate)) {
        state.SkipWithError(zfile_last_error());
        break;
      }
      off = (off + kUpdate) % kUpdateSpan;
    }
    const double user = static_cast<double>(std::max<uint64_t>(state.iterations(), 1) * kUpdate);
    state.counters["devB/userB"] = (VolStat(vol, "device_write_bytes") - written0) / user;
    state.counters["dev_rdB/userB"] = (VolStat(vol, "device_read_bytes") - read0) / user;
    zfile_close(f);
  }
  zfile_vol_close(vol);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kUpdate));
}

// Baseline: what a page-granular cache does for the same O_SYNC update:
// copy it into the (cached, up-to-date) page, write the whole page to the
// raw device, flush. The argument is the page size; with 4096 this is a
// plain 4 KiB write + flush, the floor.
void PageWriteBack(benchmark::State& state, const BenchDevice& bd) {
  const auto page = static_cast<uint64_t>(state.range(0));
  auto dev = zfile::OpenDevice(bd.uri);
  if (!dev.ok()) return state.SkipWithError(dev.status().ToString().c_str());
  zfile::ZonedDevice* d = dev->get();
  const uint64_t zone_start = d->info().ZoneStart(kCnvZone);
  Buf pages = Aligned(kUpdateSpan);  // the cached pages of the span
  Buf update = Aligned(kUpdate, 0xA5);
  uint64_t off = 0;
  uint64_t device_bytes = 0;
  for (auto _ : state) {
    update.get()[0]++;
    std::memcpy(pages.get() + off, update.get(), kUpdate);  // the page is now dirty
    const uint64_t page_off = off / page * page;
    auto r = d->Write(zone_start + page_off, pages.get() + page_off, page);
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
    if (!Check(d->Flush(), state)) return;
    device_bytes += page;
    off = (off + kUpdate) % kUpdateSpan;
  }
  const double user = static_cast<double>(std::max<uint64_t>(state.iterations(), 1) * kUpdate);
  state.counters["devB/userB"] = device_bytes / user;
  state.counters["dev_rdB/userB"] = 0;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kUpdate));
}

// ---------------------------------------------------------------------------
// 2. Mixed direct and buffered workload on one file.
//
// The machine is shared and noisy, so the configurations take turns: each
// round runs one window of every configuration (in a rotating order), each
// window on a fresh mount (cold cache, new lock counters) of the same
// device, and a configuration's figures add up over its windows.

constexpr uint64_t kMixSpan = 16 << 20;  // the range all threads work on
constexpr size_t kBufferedIo = 4096;
constexpr size_t kDirectIo = 64 << 10;
constexpr auto kWindow = std::chrono::milliseconds(200);
constexpr int kRounds = 5;

struct MixConfig {
  const char* name;
  int buffered;  // threads doing buffered 4 KiB reads and writes
  int direct;    // threads doing O_DIRECT 64 KiB reads and writes
};
// The mix first; then each kind alone, all-buffered, all-direct; 1+1 tells
// apart the fallbacks that need two direct threads.
constexpr MixConfig kMixes[] = {{"2buf+2dio", 2, 2}, {"2buf", 2, 0}, {"2dio", 0, 2},
                                {"4buf", 4, 0},      {"4dio", 0, 4}, {"1buf+1dio", 1, 1}};
constexpr size_t kNumMixes = std::size(kMixes);

// One kind of thread's figures.
struct KindTotals {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t write_bytes = 0;
  double max_latency = 0;  // seconds, worst single op

  void Add(const KindTotals& o) {
    ops += o.ops;
    bytes += o.bytes;
    write_bytes += o.write_bytes;
    max_latency = std::max(max_latency, o.max_latency);
  }
};

// A configuration's figures over all its windows.
struct MixResult {
  double seconds = 0;
  KindTotals buffered;
  KindTotals direct;
  uint64_t dio_fallbacks = 0;
  uint64_t device_write_bytes = 0;
  uint64_t lock_waits = 0;
  uint64_t lock_gates = 0;
  double lock_max_wait = 0;  // seconds

  double Rate(uint64_t n) const { return seconds == 0 ? 0 : static_cast<double>(n) / seconds; }
  double MBps() const { return Rate(buffered.bytes + direct.bytes) / 1e6; }
};

// Filled by MixedRounds, read by the summary: device name -> one result per
// entry of kMixes.
std::map<std::string, std::array<MixResult, kNumMixes>>& MixResults() {
  static std::map<std::string, std::array<MixResult, kNumMixes>> results;
  return results;
}

// One thread of a configuration: reads or writes (even odds) at random
// aligned offsets of the span, through its own handle, until told to stop.
struct MixWorker {
  zfile_file* file = nullptr;
  bool direct = false;
  uint64_t rng = 0;
  Buf buf;
  KindTotals totals;
  std::string error;

  size_t io_size() const { return direct ? kDirectIo : kBufferedIo; }

  void Run(const std::atomic<bool>& stop) {
    const size_t io = io_size();
    const uint64_t slots = kMixSpan / io;
    while (!stop.load(std::memory_order_relaxed)) {
      rng ^= rng << 13;  // xorshift64
      rng ^= rng >> 7;
      rng ^= rng << 17;
      const uint64_t off = (rng >> 8) % slots * io;
      const bool write = ((rng >> 3) & 1) != 0;
      const Clock::time_point t0 = Clock::now();
      const ssize_t n =
          write ? zfile_pwrite(file, buf.get(), io, off) : zfile_pread(file, buf.get(), io, off);
      totals.max_latency = std::max(totals.max_latency, Seconds(Clock::now() - t0));
      if (n != static_cast<ssize_t>(io)) {
        error = std::string(write ? "write: " : "read: ") + zfile_last_error();
        return;
      }
      ++totals.ops;
      totals.bytes += io;
      if (write) totals.write_bytes += io;
    }
  }
};

// Mounts the (formatted) device, runs one window of `mix` and adds its
// figures to `*out`. An empty string, or what went wrong.
std::string RunMixWindow(const BenchDevice& bd, const MixConfig& mix, uint64_t seed,
                         MixResult* out) {
  zfile_vol* vol = nullptr;
  if (zfile_vol_open(bd.uri.c_str(), nullptr, &vol) != 0) return zfile_last_error();
  std::string error;
  std::vector<MixWorker> workers(static_cast<size_t>(mix.buffered + mix.direct));
  for (size_t i = 0; i < workers.size() && error.empty(); ++i) {
    MixWorker& w = workers[i];
    w.direct = i >= static_cast<size_t>(mix.buffered);
    w.rng = 0x9E3779B97F4A7C15ull * (seed * 8 + i + 1);
    w.buf = Aligned(w.io_size(), static_cast<uint8_t>(i));
    if (zfile_open(vol, kCnvFile, O_RDWR | (w.direct ? O_DIRECT : 0), &w.file) != 0) {
      error = zfile_last_error();
    }
  }
  auto inode = zfile::InternalVolume(vol)->Lookup(kCnvFile);
  if (error.empty() && !inode.ok()) error = inode.status().ToString();
  if (error.empty()) {
    const uint64_t fallbacks0 = VolStat(vol, "dio_fallbacks");
    const uint64_t written0 = VolStat(vol, "device_write_bytes");
    std::atomic<bool> stop{false};
    const Clock::time_point t0 = Clock::now();
    std::vector<std::thread> threads;
    threads.reserve(workers.size());
    for (MixWorker& w : workers) threads.emplace_back([&w, &stop] { w.Run(stop); });
    std::this_thread::sleep_for(kWindow);
    stop = true;
    for (std::thread& t : threads) t.join();
    out->seconds += Seconds(Clock::now() - t0);
    for (const MixWorker& w : workers) {
      (w.direct ? out->direct : out->buffered).Add(w.totals);
      if (error.empty()) error = w.error;
    }
    out->dio_fallbacks += VolStat(vol, "dio_fallbacks") - fallbacks0;
    out->device_write_bytes += VolStat(vol, "device_write_bytes") - written0;
    const zfile::TwoStateLock::Stats lock = (*inode)->io_lock().stats();
    out->lock_waits += lock.waits;
    out->lock_gates += lock.gate_closures;
    out->lock_max_wait =
        std::max(out->lock_max_wait, std::chrono::duration<double>(lock.max_wait).count());
  }
  for (MixWorker& w : workers) {
    if (w.file != nullptr) zfile_close(w.file);
  }
  zfile_vol_close(vol);
  return error;
}

// Every iteration is one round of all configurations; the time is the sum
// of their windows. The counters are the mix's (2buf+2dio); the summary
// prints every configuration.
void MixedRounds(benchmark::State& state, const BenchDevice& bd) {
  zfile_vol* vol = FormatAndMount(bd, nullptr, state);
  if (vol == nullptr) return;
  zfile_vol_close(vol);
  std::array<MixResult, kNumMixes>& results = MixResults()[bd.name];
  results = {};
  uint64_t round = 0;
  for (auto _ : state) {
    double round_seconds = 0;
    for (size_t k = 0; k < kNumMixes; ++k) {
      MixResult& r = results[(k + round) % kNumMixes];
      const MixConfig& mix = kMixes[(k + round) % kNumMixes];
      const double seconds0 = r.seconds;
      const std::string error = RunMixWindow(bd, mix, round, &r);
      if (!error.empty()) return state.SkipWithError((mix.name + (": " + error)).c_str());
      round_seconds += r.seconds - seconds0;
    }
    state.SetIterationTime(round_seconds);
    ++round;
  }
  const MixResult& mix = results[0];
  state.counters["mix_MB/s"] = mix.MBps();
  state.counters["mix_buf_ops/s"] = mix.Rate(mix.buffered.ops);
  state.counters["mix_dio_ops/s"] = mix.Rate(mix.direct.ops);
  state.counters["mix_dio_fallbacks"] = static_cast<double>(mix.dio_fallbacks);
}

// ---------------------------------------------------------------------------
// 3. Direct writes over a pinned range.

enum class Pin { kNone, kView, kViewAsSource };

// Routes zfile's log to a null sink for its lifetime: every fallback logs a
// warning, which is still formatted (part of the cost) but not printed.
class MutedLog {
 public:
  MutedLog() : saved_(zfile::Log().sinks()) {
    zfile::Log().sinks() = {std::make_shared<spdlog::sinks::null_sink_mt>()};
  }
  ~MutedLog() { zfile::Log().sinks() = saved_; }
  MutedLog(const MutedLog&) = delete;
  MutedLog& operator=(const MutedLog&) = delete;

 private:
  std::vector<spdlog::sink_ptr> saved_;
};

// O_DIRECT pwrites of range(0) bytes at offset 0 of cnv/0; with a view
// mapping that range (and, for kViewAsSource, the view as the source).
void DirectOverView(benchmark::State& state, const BenchDevice& bd, Pin pin) {
  const auto bs = static_cast<size_t>(state.range(0));
  zfile_vol* vol = FormatAndMount(bd, nullptr, state);
  if (vol == nullptr) return;
  zfile_file* f = OpenCnv(vol, O_RDWR | O_DIRECT, state);
  zfile_view* view = nullptr;
  const void* mapped = nullptr;
  if (f != nullptr && pin != Pin::kNone && zfile_map(f, 0, bs, &mapped, &view) != 0) {
    state.SkipWithError(zfile_last_error());
  }
  if (f != nullptr && (pin == Pin::kNone || view != nullptr)) {
    Buf src = Aligned(bs, 0x3C);
    const void* from = pin == Pin::kViewAsSource ? mapped : src.get();
    const uint64_t fallbacks0 = VolStat(vol, "dio_fallbacks");
    {
      MutedLog muted;
      for (auto _ : state) {
        if (zfile_pwrite(f, from, bs, 0) != static_cast<ssize_t>(bs)) {
          state.SkipWithError(zfile_last_error());
          break;
        }
      }
    }
    state.counters["fallbacks/write"] =
        static_cast<double>(VolStat(vol, "dio_fallbacks") - fallbacks0) /
        static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
  }
  if (view != nullptr) zfile_unmap(view);
  if (f != nullptr) zfile_close(f);
  zfile_vol_close(vol);
}

// ---------------------------------------------------------------------------
// Summary.

void PrintWriteThrough(const RecordingReporter& rep, const std::string& dev) {
  struct Row {
    const char* label;
    const char* zfile_page;
    const char* base_page;
  };
  static constexpr Row kRows[] = {
      {"64K pages: zfile vs whole-page write-back", "65536", "65536"},
      {"4K pages: zfile vs raw 4K write+flush", "4096", "4096"},
      {"64K pages: zfile vs raw 4K write+flush", "65536", "4096"},
  };
  for (const Row& row : kRows) {
    const std::string z = "wt/zfile/" + dev + "/page:" + row.zfile_page;
    const std::string b = "wt/page_writeback/" + dev + "/page:" + row.base_page;
    if (rep.Find(z) == nullptr || rep.Find(b) == nullptr) continue;
    const double zt = rep.RealTime(z);
    const double bt = rep.RealTime(b);
    const double zb = rep.Counter(z, "devB/userB");
    const double bb = rep.Counter(b, "devB/userB");
    std::printf("%-4s %-42s %9.1f %9.1f %7.3f %8.2f %8.2f %7.3f\n", dev.c_str(), row.label, zt, bt,
                zt / bt, zb, bb, bb == 0 ? 0.0 : zb / bb);
  }
}

double Ratio(double a, double b) { return b == 0 ? 0 : a / b; }

void PrintMixed(const std::string& dev) {
  auto it = MixResults().find(dev);
  if (it == MixResults().end()) return;
  const std::array<MixResult, kNumMixes>& r = it->second;
  for (size_t i = 0; i < kNumMixes; ++i) {
    const MixResult& m = r[i];
    const uint64_t user_writes = m.buffered.write_bytes + m.direct.write_bytes;
    std::printf("%-4s %-10s %8.1f %10.0f %9.0f %7.2f %7.2f %9llu %6.2f %8llu %6llu %8.2f\n",
                dev.c_str(), kMixes[i].name, m.MBps(), m.Rate(m.buffered.ops), m.Rate(m.direct.ops),
                m.buffered.max_latency * 1e3, m.direct.max_latency * 1e3,
                static_cast<unsigned long long>(m.dio_fallbacks),
                Ratio(static_cast<double>(m.device_write_bytes), static_cast<double>(user_writes)),
                static_cast<unsigned long long>(m.lock_waits),
                static_cast<unsigned long long>(m.lock_gates), m.lock_max_wait * 1e3);
  }
  const MixResult& mix = r[0];
  auto row = [&](const char* label, double mixed, double base) {
    std::printf("%-4s %-44s %10.1f %10.1f %7.3f\n", dev.c_str(), label, mixed, base,
                Ratio(mixed, base));
  };
  row("MB/s: mix vs all-buffered (4buf)", mix.MBps(), r[3].MBps());
  row("MB/s: mix vs all-direct (4dio)", mix.MBps(), r[4].MBps());
  const double buf_alone = r[1].Rate(r[1].buffered.ops);
  const double dio_alone = r[2].Rate(r[2].direct.ops);
  row("buffered ops/s: in the mix vs alone (2buf)", mix.Rate(mix.buffered.ops), buf_alone);
  row("direct ops/s: in the mix vs alone (2dio)", mix.Rate(mix.direct.ops), dio_alone);
  std::printf(
      "%-4s %-44s %10s %10s %7.3f\n", dev.c_str(), "sum of the two shares above", "", "",
      Ratio(mix.Rate(mix.buffered.ops), buf_alone) + Ratio(mix.Rate(mix.direct.ops), dio_alone));
}

void PrintFallback(const RecordingReporter& rep, const std::string& dev) {
  for (const char* bs : {"4096", "65536"}) {
    const std::string plain = "dio_pinned/" + dev + "/plain/bs:" + bs;
    for (const char* kind : {"pinned", "view_src"}) {
      const std::string name = "dio_pinned/" + dev + "/" + kind + "/bs:" + bs;
      if (rep.Find(name) == nullptr || rep.Find(plain) == nullptr) continue;
      const std::string label = std::string(kind) + " vs plain direct, bs " + bs;
      const double t = rep.RealTime(name);
      const double b = rep.RealTime(plain);
      std::printf("%-4s %-42s %9.1f %9.1f %7.3f %10.2f\n", dev.c_str(), label.c_str(), t, b, t / b,
                  rep.Counter(name, "fallbacks/write"));
    }
  }
}

void PrintSummary(const RecordingReporter& rep, const std::vector<BenchDevice>& devices) {
  std::printf(
      "\n4 KiB O_SYNC writes (same run)                  zfile us   base us   ratio"
      "  zfile B/B  base B/B   ratio\n");
  for (const BenchDevice& bd : devices) PrintWriteThrough(rep, bd.name);
  std::printf(
      "(B/B: device bytes written per user byte; expected 1 for zfile, 16 for 64K "
      "whole-page write-back)\n");
  std::printf(
      "\nMixed workload on one file, configurations taking turns (same run)\n"
      "dev  config         MB/s   buf op/s  dio op/s  buf max dio max fallbacks devW/W "
      "lockwait  gates  maxwait\n"
      "                                                 ms      ms                       "
      "            ms\n");
  for (const BenchDevice& bd : devices) PrintMixed(bd.name);
  std::printf(
      "(devW/W: device bytes written per user byte written, before unmount; shares: each "
      "kind's ops/s in the mix over its ops/s alone, a sum of 1 means no loss to coherency "
      "when the kinds take turns; 2 CPUs here)\n");
  std::printf(
      "\nDirect write over a mapped view (same run)       zfile us  plain us   ratio"
      "  fallbacks/write\n");
  for (const BenchDevice& bd : devices) PrintFallback(rep, bd.name);
}

// The short benchmarks run kRepetitions times each, their repetitions
// interleaved at random with everyone else's (see main); the summary
// compares medians.
constexpr int kRepetitions = 5;
benchmark::internal::Benchmark* Repeated(benchmark::internal::Benchmark* b) {
  return b->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->Repetitions(kRepetitions)
      ->DisplayAggregatesOnly(true);
}

}  // namespace

int main(int argc, char** argv) {
  zfile::bench::ScratchDevices scratch("coherency-bench", kGeometry);
  if (scratch.devices().empty()) return 1;
  const std::vector<BenchDevice>& devices = scratch.devices();
  using Fn = void (*)(benchmark::State&, const BenchDevice&);
  for (const BenchDevice& bd : devices) {
    for (int64_t page : {65536, 4096}) {
      const std::string suffix = bd.name + "/page:" + std::to_string(page);
      for (const auto& [kind, fn] :
           {std::pair<std::string, Fn>{"wt/page_writeback/", PageWriteBack},
            {"wt/zfile/", ZfileSyncWrite}}) {
        auto* b =
            Repeated(benchmark::RegisterBenchmark((kind + suffix).c_str(), fn, bd)->Arg(page));
        // emu: every flush is an fdatasync (milliseconds): a fixed number of
        // writes, since Google Benchmark's estimate overshoots when they vary.
        if (bd.name == "emu") {
          b->Iterations(kEmuSyncWrites);
        } else {
          b->MinTime(0.05);
        }
      }
    }
  }
  for (const BenchDevice& bd : devices) {
    benchmark::RegisterBenchmark(("mixed/" + bd.name).c_str(), MixedRounds, bd)
        ->Iterations(kRounds)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const BenchDevice& bd : devices) {
    for (int64_t bs : {4096, 65536}) {
      for (const auto& [name, pin] : {std::pair{"plain", Pin::kNone},
                                      {"pinned", Pin::kView},
                                      {"view_src", Pin::kViewAsSource}}) {
        const std::string full = "dio_pinned/" + bd.name + "/" + name + "/bs:" + std::to_string(bs);
        Repeated(benchmark::RegisterBenchmark(full.c_str(), DirectOverView, bd, pin)->Arg(bs))
            ->MinTime(0.05);
      }
    }
  }
  // Interleaving spreads every benchmark over the whole run, so a burst of
  // load on a shared machine hits them all alike. A later
  // --benchmark_enable_random_interleaving=false turns it off.
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::vector<char*> args(argv, argv + argc);
  args.insert(args.begin() + 1, interleave.data());
  const int nargs = static_cast<int>(args.size());
  args.push_back(nullptr);
  zfile::bench::RunAndSummarize(nargs, args.data(),
                                [&](const RecordingReporter& rep) { PrintSummary(rep, devices); });
  return 0;
}
