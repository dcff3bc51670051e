// device_bench: raw throughput of each ZonedDevice backend, the baseline
// that zfile-vs-raw ratios are computed against.
//
// Benchmarks, registered at run time, one per backend, operation, I/O size
// (4 KiB, 128 KiB, 1 MiB) and queue depth (1, 32):
//   seq_write/<backend>/bs:<bytes>/qd:<depth>
//   seq_read/<backend>/bs:<bytes>/qd:<depth>
// Backends:
//   mem            mem:?size=4G&zone_size=256M (workers=0: inline)
//   emu            emu: with the same geometry in a fresh temporary directory
//                  under $ZFILE_BENCH_EMU_DIR (default $TMPDIR or /tmp),
//                  removed at exit
//   zbd-<name>     zbd:<path> for each path in $ZFILE_BENCH_ZBD
//                  (comma-separated); none when unset
//
// One iteration is one request of `bs` bytes (shorter at the end of a zone
// whose capacity is not a multiple of `bs`); bytes/s counts what was really
// transferred. At queue depth N the loop keeps up to N requests in flight
// through ZonedDevice::Submit; the last iteration waits for all of them, so
// the timed region covers every request it counts. Wall-clock time is used
// (the I/O runs on backend threads).
//
// Zone use: conventional, read-only and offline zones are skipped. The first
// sequential zones (at least kReadRegionBytes) are the read region, written
// full once before the first read benchmark and then only read; the other
// sequential zones are the write region. Writes go sequentially through the
// write region, zone after zone, up to each zone's capacity.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zone.h"
#include "device/zoned_device.h"

namespace zfile {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

// Geometry of the mem: and emu: devices.
constexpr uint64_t kEmuSize = 4 * kGiB;
constexpr uint64_t kEmuZoneSize = 256 * kMiB;
constexpr char kMemUri[] = "mem:?size=4G&zone_size=256M";

// The read region: whole sequential zones, at least this much (one 256 MiB
// zone on mem/emu), so reads are not served from CPU caches.
constexpr uint64_t kReadRegionBytes = 128 * kMiB;

constexpr size_t kBlockSizes[] = {4 * kKiB, 128 * kKiB, 1 * kMiB};
constexpr int kQueueDepths[] = {1, 32};
constexpr double kMinTimeSeconds = 0.3;
constexpr size_t kBufferAlignment = 4096;  // O_DIRECT on zbd:

// A sequential zone the benchmarks use.
struct ZoneRef {
  uint32_t index = 0;
  uint64_t start = 0;
  uint64_t capacity = 0;
};

// A device under test.
struct Target {
  std::string name;  // "mem", "emu", "zbd-nullb0"
  std::unique_ptr<ZonedDevice> dev;
  std::vector<ZoneRef> read_zones;
  std::vector<ZoneRef> write_zones;
  bool read_region_filled = false;
  // With an open limit of 1, a write to the next zone may not be in flight
  // while the previous zone is still open.
  bool one_open_zone = false;
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

AlignedBuffer AllocateBuffer(size_t len) {
  const size_t rounded = (len + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlignment, rounded));
  if (p == nullptr) {
    std::fprintf(stderr, "device_bench: cannot allocate %zu bytes\n", rounded);
    std::abort();
  }
  // Not zeros and not one repeated byte: nothing along the way can take a
  // shortcut on the data.
  for (size_t i = 0; i < rounded; ++i) p[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
  return AlignedBuffer(p);
}

// Walks a list of zones in chunks of at most `max_len` bytes, each zone from
// its start to its capacity.
class ZoneWalker {
 public:
  explicit ZoneWalker(const std::vector<ZoneRef>* zones) : zones_(zones) {}

  // The next chunk; false once the last zone is done (Rewind starts over).
  // `*new_zone` is true for the first chunk of a zone.
  bool Next(size_t max_len, uint64_t* offset, size_t* len, bool* new_zone) {
    if (zone_ >= zones_->size()) return false;
    const ZoneRef& z = (*zones_)[zone_];
    *offset = z.start + pos_;
    *len = static_cast<size_t>(std::min<uint64_t>(max_len, z.capacity - pos_));
    *new_zone = pos_ == 0;
    pos_ += *len;
    if (pos_ == z.capacity) {
      ++zone_;
      pos_ = 0;
    }
    return true;
  }

  void Rewind() {
    zone_ = 0;
    pos_ = 0;
  }

 private:
  const std::vector<ZoneRef>* zones_;
  size_t zone_ = 0;
  uint64_t pos_ = 0;
};

// Keeps up to `depth` requests of one kind in flight, each with its own
// buffer of `max_len` bytes.
class IoPipeline {
 public:
  IoPipeline(ZonedDevice* dev, IoOp op, size_t max_len, int depth) : dev_(dev) {
    slots_.resize(depth);
    for (Slot& slot : slots_) {
      slot.buf = AllocateBuffer(max_len);
      slot.req.op = op;
      slot.req.buf = slot.buf.get();
      slot.req.on_complete = [this](IoRequest* req) { Complete(req); };
      free_.push_back(&slot.req);
    }
  }

  ~IoPipeline() { Drain(); }

  IoPipeline(const IoPipeline&) = delete;
  IoPipeline& operator=(const IoPipeline&) = delete;

  // Waits for a free slot, then submits a request for [offset, offset+len).
  void Issue(uint64_t offset, size_t len) {
    IoRequest* req;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !free_.empty(); });
      req = free_.back();
      free_.pop_back();
    }
    req->offset = offset;
    req->len = len;
    req->result = 0;
    // Outside mu_: the backend may complete the request inline.
    dev_->Submit(req);
  }

  // Waits until no request is in flight.
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return free_.size() == slots_.size(); });
  }

  bool failed() const { return failed_.load(std::memory_order_relaxed); }

  // The first failure ("" if none).
  std::string error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  struct Slot {
    IoRequest req;
    AlignedBuffer buf;
  };

  void Complete(IoRequest* req) {
    std::lock_guard<std::mutex> lock(mu_);
    if (req->result != static_cast<int64_t>(req->len) && error_.empty()) {
      error_ = std::string(req->op == IoOp::kRead ? "read" : "write") + " of " +
               std::to_string(req->len) + " bytes at " + std::to_string(req->offset) + ": " +
               (req->result < 0 ? ErrnoName(static_cast<int>(-req->result))
                                : "short transfer of " + std::to_string(req->result));
      failed_.store(true, std::memory_order_relaxed);
    }
    free_.push_back(req);
    // Notified under mu_: once Drain() can see the slot free, this thread no
    // longer touches the pipeline, which may then be destroyed.
    cv_.notify_one();
  }

  ZonedDevice* const dev_;
  std::vector<Slot> slots_;  // never resized after construction

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<IoRequest*> free_;  // under mu_
  std::string error_;             // under mu_
  std::atomic<bool> failed_{false};
};

// Resets the zones of `zones` that are not empty.
Status ResetZones(ZonedDevice* dev, const std::vector<ZoneRef>& zones) {
  std::vector<ZoneInfo> report;
  ZF_RETURN_IF_ERROR(dev->ReportZones(0, 0, &report));
  for (const ZoneRef& z : zones) {
    if (report[z.index].cond == ZoneCondition::kEmpty) continue;
    ZF_RETURN_IF_ERROR(dev->ManageZones(ZoneOp::kReset, z.index, 1));
  }
  return Status();
}

// Writes the read region full, unless it already is.
Status FillReadRegion(Target* t) {
  if (t->read_region_filled) return Status();
  std::vector<ZoneInfo> report;
  ZF_RETURN_IF_ERROR(t->dev->ReportZones(0, 0, &report));
  constexpr size_t kChunk = 1 * kMiB;
  AlignedBuffer buf = AllocateBuffer(kChunk);
  for (const ZoneRef& z : t->read_zones) {
    if (report[z.index].cond == ZoneCondition::kFull) continue;
    ZF_RETURN_IF_ERROR(t->dev->ManageZones(ZoneOp::kReset, z.index, 1));
    for (uint64_t pos = 0; pos < z.capacity; pos += kChunk) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk, z.capacity - pos));
      Result<size_t> r = t->dev->Write(z.start + pos, buf.get(), len);
      if (!r.ok()) return r.status();
    }
  }
  t->read_region_filled = true;
  return Status();
}

// Sequential writes through the write region.
//
// Resets happen outside the timed region: the write region is reset before
// the loop, and when a run writes through all of it (GiBs on mem/emu) the
// loop drains its requests (timed), pauses the timer for the reset and goes
// on from the first zone. Pausing costs a few microseconds, once per pass.
void BM_SeqWrite(benchmark::State& state, Target* t, size_t bs, int qd) {
  if (Status s = ResetZones(t->dev.get(), t->write_zones); !s.ok()) {
    state.SkipWithError(("reset before the run: " + s.ToString()).c_str());
    return;
  }
  ZoneWalker walker(&t->write_zones);
  uint64_t bytes = 0;
  int64_t done = 0;
  std::string error;
  {
    IoPipeline pipe(t->dev.get(), IoOp::kWrite, bs, qd);
    for (auto _ : state) {
      uint64_t offset = 0;
      size_t len = 0;
      bool new_zone = false;
      if (!walker.Next(bs, &offset, &len, &new_zone)) {
        pipe.Drain();
        state.PauseTiming();
        Status s = ResetZones(t->dev.get(), t->write_zones);
        state.ResumeTiming();
        if (!s.ok()) {
          error = "reset after a pass: " + s.ToString();
          break;
        }
        walker.Rewind();
        walker.Next(bs, &offset, &len, &new_zone);
      }
      if (new_zone && t->one_open_zone) pipe.Drain();
      pipe.Issue(offset, len);
      bytes += len;
      if (++done == state.max_iterations) pipe.Drain();
      if (pipe.failed()) break;
    }
    pipe.Drain();
    if (error.empty()) error = pipe.error();
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

// Sequential reads, round and round the read region.
void BM_SeqRead(benchmark::State& state, Target* t, size_t bs, int qd) {
  if (Status s = FillReadRegion(t); !s.ok()) {
    state.SkipWithError(("filling the read region: " + s.ToString()).c_str());
    return;
  }
  ZoneWalker walker(&t->read_zones);
  uint64_t bytes = 0;
  int64_t done = 0;
  std::string error;
  {
    IoPipeline pipe(t->dev.get(), IoOp::kRead, bs, qd);
    for (auto _ : state) {
      uint64_t offset = 0;
      size_t len = 0;
      bool new_zone = false;
      if (!walker.Next(bs, &offset, &len, &new_zone)) {
        walker.Rewind();
        walker.Next(bs, &offset, &len, &new_zone);
      }
      pipe.Issue(offset, len);
      bytes += len;
      if (++done == state.max_iterations) pipe.Drain();
      if (pipe.failed()) break;
    }
    pipe.Drain();
    error = pipe.error();
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

// Splits the device's usable sequential zones into read and write regions.
Status PrepareTarget(Target* t) {
  std::vector<ZoneInfo> report;
  ZF_RETURN_IF_ERROR(t->dev->ReportZones(0, 0, &report));
  const DeviceInfo& info = t->dev->info();
  uint64_t read_bytes = 0;
  for (uint32_t z = info.nr_conv_zones; z < report.size(); ++z) {
    const ZoneInfo& zi = report[z];
    if (!zi.sequential() || zi.capacity == 0 || zi.cond == ZoneCondition::kReadOnly ||
        zi.cond == ZoneCondition::kOffline) {
      continue;
    }
    ZoneRef ref{z, zi.start, zi.capacity};
    if (read_bytes < kReadRegionBytes) {
      t->read_zones.push_back(ref);
      read_bytes += zi.capacity;
    } else {
      t->write_zones.push_back(ref);
    }
  }
  if (t->read_zones.empty() || t->write_zones.empty()) {
    return Status(EINVAL, info.uri + ": too small: needs more than " +
                              std::to_string(kReadRegionBytes >> 20) +
                              " MiB of writable sequential zones");
  }
  t->one_open_zone = info.max_open == 1 || info.max_active == 1;
  return Status();
}

Result<std::unique_ptr<Target>> OpenTarget(std::string name, const std::string& uri) {
  auto t = std::make_unique<Target>();
  t->name = std::move(name);
  ZF_ASSIGN_OR_RETURN(t->dev, OpenDevice(uri));
  ZF_RETURN_IF_ERROR(PrepareTarget(t.get()));
  return t;
}

// A temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() = default;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) {
      std::fprintf(stderr, "device_bench: cannot remove %s: %s\n", path_.c_str(),
                   ec.message().c_str());
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  Status Create(const std::string& parent) {
    std::string tmpl = parent + "/zfile-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return ErrnoStatus(errno, "cannot create a directory in " + parent);
    }
    path_ = tmpl;
    return Status();
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string EmuParentDir() {
  for (const char* var : {"ZFILE_BENCH_EMU_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

Result<std::unique_ptr<Target>> CreateEmuTarget(TempDir* dir) {
  ZF_RETURN_IF_ERROR(dir->Create(EmuParentDir()));
  EmulatedGeometry geometry;
  geometry.size = kEmuSize;
  geometry.zone_size = kEmuZoneSize;
  ZF_RETURN_IF_ERROR(CreateEmuDevice(dir->path(), geometry));
  return OpenTarget("emu", "emu:" + dir->path());
}

std::vector<std::string> SplitCommas(std::string_view text) {
  std::vector<std::string> parts;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    if (!part.empty()) parts.emplace_back(part);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return parts;
}

void RegisterTarget(Target* t) {
  using Fn = void (*)(benchmark::State&, Target*, size_t, int);
  const std::pair<const char*, Fn> ops[] = {{"seq_write", &BM_SeqWrite}, {"seq_read", &BM_SeqRead}};
  for (const auto& [op_name, fn] : ops) {
    for (size_t bs : kBlockSizes) {
      for (int qd : kQueueDepths) {
        const std::string name = std::string(op_name) + "/" + t->name +
                                 "/bs:" + std::to_string(bs) + "/qd:" + std::to_string(qd);
        benchmark::RegisterBenchmark(name.c_str(), fn, t, bs, qd)
            ->UseRealTime()
            ->MinTime(kMinTimeSeconds)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

int Main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  // Declared before the targets: the emu device is closed before its
  // directory goes.
  TempDir emu_dir;
  std::vector<std::unique_ptr<Target>> targets;
  auto add = [&targets](Result<std::unique_ptr<Target>> t, std::string_view what) {
    if (!t.ok()) {
      std::fprintf(stderr, "device_bench: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                   t.status().ToString().c_str());
      return false;
    }
    targets.push_back(std::move(t).value());
    return true;
  };

  if (!add(OpenTarget("mem", kMemUri), "mem")) return 1;
  if (!add(CreateEmuTarget(&emu_dir), "emu")) return 1;
  if (const char* zbd = std::getenv("ZFILE_BENCH_ZBD"); zbd != nullptr) {
    for (const std::string& path : SplitCommas(zbd)) {
      const std::string name = "zbd-" + std::filesystem::path(path).filename().string();
      if (!add(OpenTarget(name, "zbd:" + path), path)) return 1;
    }
  }
  for (const auto& t : targets) RegisterTarget(t.get());

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace zfile

int main(int argc, char** argv) { return zfile::Main(argc, argv); }
