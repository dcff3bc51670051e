// File-layer benchmarks, each against a baseline measured in the same run:
//  - sequential O_DIRECT appends through zfile_append vs writes at the
//    write pointer on the raw device backend (same device, opened raw, then
//    formatted and mounted), 4 KiB / 128 KiB / 1 MiB, queue depth 1;
//  - buffered reads from a warm page cache vs memcpy of the same bytes.
// After the runs, a table of zfile/baseline ratios is printed.
#include <fcntl.h>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "device/zoned_device.h"
#include "zfile/zfile.h"

namespace {

using zfile::bench::Aligned;
using zfile::bench::BenchDevice;
using zfile::bench::Buf;
using zfile::bench::Check;
using zfile::bench::FormatAndMount;
using zfile::bench::RecordingReporter;

constexpr const char* kGeometry = "size=4G&zone_size=256M&conv=2&block_size=4096";
constexpr uint64_t kZoneSize = 256ull << 20;
constexpr uint32_t kConv = 2;

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

// The table of zfile/baseline ratios, from runs of the same process.
void PrintRatios(const RecordingReporter& reporter) {
  std::printf("\n%-36s %12s %12s %8s\n", "zfile vs baseline (same run)", "zfile MB/s", "base MB/s",
              "ratio");
  for (const auto& [name, run] : reporter.runs()) {
    std::string base;
    if (name.rfind("append/zfile/", 0) == 0) {
      base = "append/raw/" + name.substr(13);
    } else if (name.rfind("read_warm/zfile/", 0) == 0) {
      base = "read_warm/memcpy/" + name.substr(name.find("/bs:") + 1);  // same suffix
    } else {
      continue;
    }
    const double rate = reporter.Counter(name, "bytes_per_second");
    const double base_rate = reporter.Counter(base, "bytes_per_second");
    if (base_rate == 0) continue;
    std::printf("%-36s %12.1f %12.1f %8.3f\n", name.c_str(), rate / 1e6, base_rate / 1e6,
                rate / base_rate);
  }
}

}  // namespace

int main(int argc, char** argv) {
  zfile::bench::ScratchDevices scratch("file-bench", kGeometry);
  if (scratch.devices().empty()) return 1;
  const std::vector<BenchDevice>& devices = scratch.devices();
  for (const BenchDevice& bd : devices) {
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
                                 ZfileWarmRead, devices[0])
        ->Arg(bs)
        ->UseRealTime()
        ->MinTime(0.3);
  }
  zfile::bench::RunAndSummarize(argc, argv, PrintRatios);
  return 0;
}
