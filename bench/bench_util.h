// Helpers shared by the file-layer benchmarks (file_bench, coherency_bench):
// aligned buffers, the scratch devices of a run (one per backend), format
// and mount, volume counters, and a reporter that keeps every run so a
// summary of zfile/baseline ratios can be printed after them.
#ifndef ZFILE_BENCH_BENCH_UTIL_H_
#define ZFILE_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "zfile/zfile.h"

namespace zfile::bench {

struct Free {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buf = std::unique_ptr<uint8_t, Free>;
// `n` bytes aligned to 4096, filled with `fill`.
Buf Aligned(size_t n, uint8_t fill = 0x5A);

// A device of the run; `uri` reopens it (the mem: one is named, so it keeps
// its zones between opens).
struct BenchDevice {
  std::string name;  // "mem", "emu"
  std::string uri;
};

// The devices of one run, with the geometry `geometry` (URI query syntax,
// e.g. "size=4G&zone_size=256M&conv=2"): a named mem: device and an emu:
// device in a new directory under $ZFILE_BENCH_EMU_DIR (default /tmp),
// removed on destruction.
class ScratchDevices {
 public:
  // `tag` names the mem: device and the directory, e.g. "file-bench".
  ScratchDevices(const std::string& tag, const char* geometry);
  ~ScratchDevices();
  ScratchDevices(const ScratchDevices&) = delete;
  ScratchDevices& operator=(const ScratchDevices&) = delete;

  // Empty (after printing why) when the emu: device could not be created.
  const std::vector<BenchDevice>& devices() const { return devices_; }

 private:
  std::string dir_;
  std::vector<BenchDevice> devices_;
};

// false (and the benchmark skipped with the reason) unless `s` is OK.
bool Check(const Status& s, benchmark::State& state);

// Formats the device afresh and mounts it with `options` (may be null);
// nullptr (and the benchmark skipped with the reason) on failure.
zfile_vol* FormatAndMount(const BenchDevice& bd, const char* options, benchmark::State& state);

// One counter of zfile_vol_stats (e.g. "device_write_bytes"); 0 if absent.
uint64_t VolStat(zfile_vol* vol, std::string_view key);

// Prints what Google Benchmark's console reporter prints and keeps every
// successful run by the name it was registered with (with repetitions, the
// "median" aggregate stands for them).
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override;

  // The run registered as `name`, or null when it did not run or failed.
  const Run* Find(const std::string& name) const;
  // Its counter `counter` (e.g. "bytes_per_second"), 0 when absent.
  double Counter(const std::string& name, const std::string& counter) const;
  // Its real time per iteration in its time unit, 0 when absent.
  double RealTime(const std::string& name) const;

  // name -> run, in name order.
  const std::map<std::string, Run>& runs() const { return runs_; }

 private:
  std::map<std::string, Run> runs_;
};

// Initialises Google Benchmark with the command line, runs what was
// registered through a RecordingReporter, then calls `summary` with it.
void RunAndSummarize(int argc, char** argv,
                     const std::function<void(const RecordingReporter&)>& summary);

}  // namespace zfile::bench

#endif  // ZFILE_BENCH_BENCH_UTIL_H_
