// File-layer benchmarks, each against a baseline measured in the same run:
//  - sequential O_DIRECT appends through zfile_append vs writes at the
//    write pointer on the raw device backend (same device, opened raw, then
//    formatted and mounted), 4 KiB / 128 KiB / 1 MiB, queue depth 1;
//  - buffered reads from a warm page cache vs memcpy of the same bytes.
// After the runs, a table of zfile/baseline ratios is printed.
#include <fcntl.h>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/zoned_device.h"
#include "format/mkfs.h"
#include "zfile/zfile.h"

namespace {

constexpr const char* kGeometry = "size=4G&zone_size=256M&conv=2&block_size=4096";
constexpr uint64_t kZoneSize = 256ull << 20;
constexpr uint32_t kConv = 2;

struct Free {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buf = std::unique_ptr<uint8_t, Free>;
Buf Aligned(size_t n) {
  Buf b(static_cast<uint8_t*>(std::aligned_alloc(4096, n)));
  std::memset(b.get(), 0x5A, n);
  return b;
}

// One device per backend for the whole run; `uri` reopens it.
struct BenchDevice {
  std::string name;
  std::string uri;
};
std::vector<BenchDevice>& Devices() {
  static std::vector<BenchDevice> d;
  return d;
}
std::string g_emu_dir;

bool Check(const zfile::Status& s, benchmark::State& state) {
  if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  return s.ok();
}

// Baseline: writes at the write pointer of sequential zones, through the
// device backend, one at a time.
void RawAppend(benchmark::State& state, const BenchDevice& bd) {
  const size_t bs = static_cast<size_t>(state.range(0));
  auto dev = zfile::OpenDevice(bd.uri);
  if (!dev.ok()) return state.SkipWithError(dev.status().ToString().c_str());
  zfile::ZonedDevice* d = dev->get();
  if (!Check(d->ManageAllZones(zfile::ZoneOp::kReset), state)) return;
  Buf buf = Aligned(bs);
  uint32_t zone = kConv;  // zone 0 would be the superblock's: skip it as zfile does
  uint64_t off = 0;
  for (auto _ : state) {
    if (off + bs > kZoneSize) {
      state.PauseTiming();
      if (++zone == d->info().nr_zones) {
        if (!Check(d->ManageAllZones(zfile::ZoneOp::kReset), state)) return;
        zone = kConv;
      }
      off = 0;
      state.ResumeTiming();
    }
    auto r = d->Write(d->info().ZoneStart(zone) + off, buf.get(), bs);
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
    off += bs;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
}

// Formats the device afresh and mounts it; nullptr (and the benchmark
// skipped with the reason) on failure.
zfile_vol* FormatAndMount(const BenchDevice& bd, const char* options, benchmark::State& state) {
  {
    auto dev = zfile::OpenDevice(bd.uri);
    if (!dev.ok()) {
      state.SkipWithError(dev.status().ToString().c_str());
      return nullptr;
    }
    zfile::MkfsOptions o;
    o.force = true;
    if (!Check(zfile::Mkfs(dev->get(), o), state)) return nullptr;
  }
  zfile_vol* vol = nullptr;
  if (zfile_vol_open(bd.uri.c_str(), options, &vol) != 0) {
    state.SkipWithError(zfile_last_error());
    return nullptr;
  }
  return vol;
}

// zfile: O_DIRECT zfile_append to sequential files, one at a time.
void ZfileAppend(benchmark::State& state, const BenchDevice& bd) {
  const size_t bs = static_cast<size_t>(state.range(0));
  zfile_vol* vol = FormatAndMount(bd, nullptr, state);
  if (vol == nullptr) return;
  struct zfile_vol_info info {};
  zfile_vol_info(vol, &info);
  Buf buf = Aligned(bs);
  uint32_t file = 0;
  uint64_t off = 0;
  zfile_file* f = nullptr;
  auto open_file = [&](uint32_t n) {
    if (f != nullptr) zfile_close(f);
    const std::string path = "seq/" + std::to_string(n);
    return zfile_open(vol, path.c_str(), O_WRONLY | O_DIRECT, &f) == 0;
  };
  if (!open_file(0)) return state.SkipWithError(zfile_last_error());
  for (auto _ : state) {
    if (off + bs > kZoneSize) {
      state.PauseTiming();
      if (++file == info.nr_seq_files) {
        for (uint32_t i = 0; i < info.nr_seq_files; ++i) {
          open_file(i);
          zfile_ftruncate(f, 0);
        }
        file = 0;
      }
      open_file(file);
      off = 0;
      state.ResumeTiming();
    }
    uint64_t landed = 0;
    if (zfile_append(f, buf.get(), bs, &landed) != static_cast<ssize_t>(bs)) {
      state.SkipWithError(zfile_last_error());
      break;
    }
    off += bs;
  }
  if (f != nullptr) zfile_close(f);
  zfile_vol_close(vol);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
}

// Buffered reads of a conventional file whose pages are all cached.
void ZfileWarmRead(benchmark::State& state, const BenchDevice& bd) {
  const size_t bs = static_cast<size_t>(state.range(0));
  const size_t span = 64u << 20;
  zfile_vol* vol = FormatAndMount(bd, "cache_size=256M", state);
  if (vol == nullptr) return;
  zfile_file* f = nullptr;
  zfile_open(vol, "cnv/0", O_RDONLY, &f);
  Buf buf = Aligned(bs);
  for (size_t off = 0; off < span; off += bs) zfile_pread(f, buf.get(), bs, off);  // warm up
  size_t off = 0;
  for (auto _ : state) {
    if (zfile_pread(f, buf.get(), bs, off) != static_cast<ssize_t>(bs)) {
      state.SkipWithError(zfile_last_error());
      break;
    }
    off = (off + bs) % span;
  }
  zfile_close(f);
  zfile_vol_close(vol);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
}

// Baseline: memcpy of the same amount from a buffer of the same span.
void Memcpy(benchmark::State& state) {
  const size_t bs = static_cast<size_t>(state.range(0));
  const size_t span = 64u << 20;
  Buf src = Aligned(span);
  Buf dst = Aligned(bs);
  size_t off = 0;
  for (auto _ : state) {
    std::memcpy(dst.get(), src.get() + off, bs);
    benchmark::DoNotOptimize(dst.get());
    off = (off + bs) % span;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
}

// Prints what Google Benchmark prints, then the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) rate_[r.benchmark_name()] = it->second.value;
    }
  }
  void PrintRatios() const {
    std::printf("\n%-36s %12s %12s %8s\n", "zfile vs baseline (same run)", "zfile MB/s",
                "base MB/s", "ratio");
    for (const auto& [name, rate] : rate_) {
      std::string base;
      if (name.rfind("append/zfile/", 0) == 0) {
        base = "append/raw/" + name.substr(13);
      } else if (name.rfind("read_warm/zfile/", 0) == 0) {
        base = "read_warm/memcpy/" + name.substr(name.find("/bs:") + 1);  // same suffix
      } else {
        continue;
      }
      auto b = rate_.find(base);
      if (b == rate_.end() || b->second == 0) continue;
      // Names end in "/<arg>/min_time:.../real_time": show the meaningful part.
      const std::string shown = name.substr(0, name.find('/', name.find("/bs:") + 1));
      std::printf("%-36s %12.1f %12.1f %8.3f\n", shown.c_str(), rate / 1e6, b->second / 1e6,
                  rate / b->second);
    }
  }

 private:
  std::map<std::string, double> rate_;
};

}  // namespace

int main(int argc, char** argv) {
  char tmpl[] = "/tmp/zfile-file-bench-XXXXXX";
  const char* parent = std::getenv("ZFILE_BENCH_EMU_DIR");
  std::string dir = parent ? std::string(parent) + "/zfile-file-bench-XXXXXX" : tmpl;
  std::vector<char> d(dir.begin(), dir.end());
  d.push_back('\0');
  if (mkdtemp(d.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  g_emu_dir = std::string(d.data()) + "/dev";
  auto uri = zfile::Uri::Parse(std::string("emu:?") + kGeometry);
  zfile::EmulatedGeometry g;
  if (!uri.ok() || !g.ReadFromUri(*uri).ok() || !zfile::CreateEmuDevice(g_emu_dir, g).ok()) {
    std::fprintf(stderr, "cannot create the emu device in %s\n", g_emu_dir.c_str());
    return 1;
  }
  Devices().push_back({"mem", std::string("mem:file-bench?") + kGeometry});
  Devices().push_back({"emu", "emu:" + g_emu_dir});

  for (const BenchDevice& bd : Devices()) {
    for (int64_t bs : {4096, 128 * 1024, 1024 * 1024}) {
      const std::string suffix = bd.name + "/bs:" + std::to_string(bs);
      benchmark::RegisterBenchmark(("append/raw/" + suffix).c_str(), RawAppend, bd)
          ->Arg(bs)
          ->UseRealTime()
          ->MinTime(0.3);
      benchmark::RegisterBenchmark(("append/zfile/" + suffix).c_str(), ZfileAppend, bd)
          ->Arg(bs)
          ->UseRealTime()
          ->MinTime(0.3);
    }
  }
  for (int64_t bs : {4096, 128 * 1024, 1024 * 1024}) {
    benchmark::RegisterBenchmark(("read_warm/memcpy/bs:" + std::to_string(bs)).c_str(), Memcpy)
        ->Arg(bs)
        ->UseRealTime()
        ->MinTime(0.3);
    benchmark::RegisterBenchmark(("read_warm/zfile/mem/bs:" + std::to_string(bs)).c_str(),
                                 ZfileWarmRead, Devices()[0])
        ->Arg(bs)
        ->UseRealTime()
        ->MinTime(0.3);
  }
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  std::filesystem::remove_all(d.data());
  return 0;
}
