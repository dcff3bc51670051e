// Helpers shared by the file-layer benchmarks (file_bench, coherency_bench,
// client_bench): aligned buffers, the scratch devices of a run (one per
// backend), format and mount, a zfiled process serving a scratch device,
// volume counters, and a reporter that keeps every run so a summary of
// zfile/baseline ratios can be printed after them.
#ifndef ZFILE_BENCH_BENCH_UTIL_H_
#define ZFILE_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

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

  // Another emu: device of the same geometry, in the subdirectory `name`
  // (not added to devices()): for a second process, since an emu: device
  // is opened by one process at a time.
  Result<BenchDevice> AddEmu(const std::string& name);

  // The run's directory (removed on destruction); empty if it could not be
  // created.
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string geometry_;
  std::vector<BenchDevice> devices_;
};

// false (and the benchmark skipped with the reason) unless `s` is OK.
bool Check(const Status& s, benchmark::State& state);

// Formats the device at `uri` afresh (mkfs --force).
Status FormatDevice(const std::string& uri);

// Formats the device afresh and mounts it with `options` (may be null);
// nullptr (and the benchmark skipped with the reason) on failure.
zfile_vol* FormatAndMount(const BenchDevice& bd, const char* options, benchmark::State& state);

// A zfiled process serving one device as volume "bench" on a socket in a
// scratch directory; its log goes to a file beside the socket. Stopped
// (SIGTERM, then SIGKILL after 10 s) on destruction.
class Zfiled {
 public:
  // Runs `binary` --device `device_uri` and waits (up to 10 s) until a
  // client can open the volume. The device must be formatted already.
  static Result<std::unique_ptr<Zfiled>> Start(const std::string& binary,
                                               const std::string& device_uri,
                                               const std::string& dir);
  ~Zfiled();
  Zfiled(const Zfiled&) = delete;
  Zfiled& operator=(const Zfiled&) = delete;

  // What zfile_vol_open takes to reach the volume (with options "").
  const std::string& client_uri() const { return client_uri_; }
  const std::string& device_uri() const { return device_uri_; }
  pid_t pid() const { return pid_; }

 private:
  Zfiled() = default;
  void Stop();

  pid_t pid_ = -1;
  std::string device_uri_;
  std::string client_uri_;
  std::string log_path_;
};

// One counter of zfile_vol_stats (e.g. "device_write_bytes"); 0 if absent.
uint64_t VolStat(zfile_vol* vol, std::string_view key);

// Prints what Google Benchmark's console reporter prints and keeps every
// successful run by the name it was registered with (with repetitions, the
// "median" aggregate stands for them).
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  // Colours only on a terminal, so that saved output stays readable.
  RecordingReporter();

  // Called on each run before it is printed and kept, with the runs kept so
  // far: lets a run carry counters derived from an earlier one (a ratio to
  // its baseline) in the console output.
  using Annotate = std::function<void(Run* run, const RecordingReporter& so_far)>;
  void set_annotate(Annotate annotate) { annotate_ = std::move(annotate); }

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
  Annotate annotate_;
};

// Initialises Google Benchmark with the command line, runs what was
// registered through a RecordingReporter (with `annotate`, if any), then
// calls `summary` with it.
void RunAndSummarize(int argc, char** argv,
                     const std::function<void(const RecordingReporter&)>& summary,
                     RecordingReporter::Annotate annotate = nullptr);

}  // namespace zfile::bench

#endif  // ZFILE_BENCH_BENCH_UTIL_H_
