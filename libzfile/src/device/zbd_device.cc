// The zbd: backend: a kernel zoned block device through the kernel's zone
// ioctls (<linux/blkzoned.h>) and io_uring with O_DIRECT.
//
// Design (see also the contract in zoned_device.h):
//  - Opening: stat, then /sys/dev/block/MAJ:MIN/queue/zoned decides whether
//    the device is zoned; the device is opened O_RDWR | O_DIRECT | O_EXCL so
//    no file system or other exclusive user can write behind our back
//    (EBUSY otherwise). Zone report and management use the BLK*ZONE ioctls
//    directly rather than libzbd: libzbd 2.0.4 keeps its per-fd state in a
//    static table of 1024 entries that zbd_open() indexes without a bounds
//    check (seen in the Debian 12 binary), which corrupts memory in a
//    process with more than 1024 open files (a daemon); and a multi-zone
//    operation there is one kernel range op, which neither stops at the
//    first failing zone nor says which zone failed.
//  - Data: one io_uring. Only the reaper thread touches the ring: it prepares
//    SQEs, submits, reaps CQEs and runs the callbacks. Submit() queues work
//    under mu_ and wakes the reaper through an eventfd that the reaper polls
//    through the ring. io_uring ties a request's async retry (io-wq) and its
//    completion task work to the thread that submitted it; with one issuing
//    thread that lives as long as the device, callers' threads may exit with
//    requests in flight and never need to enter the kernel to complete them.
//  - Ordering: writes and appends to a sequential zone are issued one at a
//    time, in submission order, through a per-zone FIFO: the kernel may split
//    or retry (io-wq) concurrent writes to one zone and reorder them. Reads
//    of a sequential zone also go through the FIFO so that a read submitted
//    after a write sees it; consecutive reads run concurrently. Conventional
//    zones have no FIFO.
//  - Requests larger than max_io_bytes are cut into chunks: one after the
//    other for writes to sequential zones, all at once otherwise. Short
//    transfers are continued; a transfer of 0 bytes fails with EIO.
//  - Zone append is emulated: the zone's write pointer is read from a zone
//    report when unknown (first append, after any error or zone management)
//    and tracked from then on; the append is a write at that write pointer.
#include "device/zbd_device.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/blkzoned.h>
#include <linux/fs.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace zfile {
namespace {

constexpr unsigned kSectorShift = 9;
constexpr uint64_t kDefaultQueueDepth = 64;
constexpr uint64_t kMaxQueueDepth = 4096;
// Zones per BLKREPORTZONE call: 4096 * 64 bytes = 256 KiB of buffer.
constexpr uint32_t kReportBatch = 4096;
// io_uring should retry -EAGAIN itself (from io-wq); if one reaches us anyway
// nothing was transferred, so the chunk is simply issued again, a few times.
constexpr uint32_t kMaxEagainRetries = 8;
// CQE user_data of the eventfd poll that wakes the reaper; chunks are
// pointers, never 1.
constexpr uint64_t kWakeTag = 1;

// Closes the descriptor it owns.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// An io_uring that is torn down with its owner.
class Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() {
    if (live_) io_uring_queue_exit(&ring_);
  }
  // 0 or -errno, as io_uring_queue_init.
  int Init(unsigned entries) {
    int r = io_uring_queue_init(entries, &ring_, 0);
    live_ = r == 0;
    return r;
  }
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
  bool live_ = false;
};

// An invariant of the ring broke (io_uring_enter refused with an error that
// only a bug or a dying kernel produces). Nothing sensible can continue:
// requests would hang forever.
[[noreturn]] void Fatal(const char* what, int err) {
  std::fprintf(stderr, "zfile zbd: fatal: %s: %s\n", what, std::strerror(err));
  std::abort();
}

// First line of a sysfs attribute, without trailing white space.
Result<std::string> ReadSysfs(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Status(ENOENT, "cannot read " + path);
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '\n' || line.back() == '\t')) {
    line.pop_back();
  }
  return line;
}

// A sysfs number; `fallback` when the attribute is missing (older kernels).
uint64_t ReadSysfsUint(const std::string& path, uint64_t fallback) {
  Result<std::string> text = ReadSysfs(path);
  if (!text.ok()) return fallback;
  Result<uint64_t> v = ParseUint(*text, path);
  return v.ok() ? *v : fallback;
}

Result<ZoneType> ConvertType(const blk_zone& z) {
  switch (z.type) {
    case BLK_ZONE_TYPE_CONVENTIONAL: return ZoneType::kConventional;
    case BLK_ZONE_TYPE_SEQWRITE_REQ: return ZoneType::kSeqWriteRequired;
    case BLK_ZONE_TYPE_SEQWRITE_PREF: return ZoneType::kSeqWritePreferred;
  }
  return Status(EIO, "device reported unknown zone type " + std::to_string(z.type) +
                         " for the zone at sector " + std::to_string(z.start));
}

static_assert(KernelCondition(ZoneCondition::kReadOnly) == BLK_ZONE_COND_READONLY &&
              KernelCondition(ZoneCondition::kFull) == BLK_ZONE_COND_FULL &&
              KernelCondition(ZoneCondition::kOffline) == BLK_ZONE_COND_OFFLINE &&
              KernelCondition(ZoneCondition::kExplicitOpen) == BLK_ZONE_COND_EXP_OPEN);

ZoneCondition ConvertCondition(const blk_zone& z) {
  ZoneCondition cond;
  // A condition this code does not know cannot be written safely.
  return ConditionFromKernel(z.cond, &cond) ? cond : ZoneCondition::kOffline;
}

Result<ZoneInfo> ConvertZone(const blk_zone& z, uint32_t report_flags) {
  ZoneInfo out;
  ZF_ASSIGN_OR_RETURN(out.type, ConvertType(z));
  out.start = uint64_t{z.start} << kSectorShift;
  out.len = uint64_t{z.len} << kSectorShift;
  out.capacity =
      (report_flags & BLK_ZONE_REP_CAPACITY) != 0 ? uint64_t{z.capacity} << kSectorShift : out.len;
  out.wp = uint64_t{z.wp} << kSectorShift;
  out.cond = ConvertCondition(z);
  if (out.type == ZoneType::kConventional) {
    // The contract's convention; kernels report start + len or garbage.
    out.wp = out.start + out.len;
    out.cond = ZoneCondition::kNotWp;
  }
  return out;
}

// SCSI devices answer a command the zone model refuses (a write not at the
// write pointer, say) with ILLEGAL REQUEST, which the kernel reports as
// BLK_STS_TARGET, i.e. EREMOTEIO; null_blk and NVMe say EIO. The contract
// promises EIO, so EREMOTEIO becomes EIO; every other errno passes through
// (ETOOMANYREFS and EOVERFLOW are the kernel's open/active resource errors).
int DeviceErrno(int err) { return err == EREMOTEIO ? EIO : err; }

unsigned long ZoneOpIoctl(ZoneOp op) {  // NOLINT(runtime/int): ioctl request type
  switch (op) {
    case ZoneOp::kReset: return BLKRESETZONE;
    case ZoneOp::kOpen: return BLKOPENZONE;
    case ZoneOp::kClose: return BLKCLOSEZONE;
    case ZoneOp::kFinish: return BLKFINISHZONE;
  }
  return BLKRESETZONE;
}

// Whether a zone in `cond` is selected by a management op applied to all
// zones. These are the NVMe "select all" / ZBC "ALL" sets, as the emulated
// backends use: open takes the closed zones, close the open ones, finish the
// open and closed ones (reset-all is the kernel's own, see ManageAllZones).
bool SelectedForAll(ZoneOp op, ZoneCondition cond) {
  const bool open =
      cond == ZoneCondition::kImplicitOpen || cond == ZoneCondition::kExplicitOpen;
  switch (op) {
    case ZoneOp::kReset: return open || cond == ZoneCondition::kClosed || cond == ZoneCondition::kFull;
    case ZoneOp::kOpen: return cond == ZoneCondition::kClosed;
    case ZoneOp::kClose: return open;
    case ZoneOp::kFinish: return open || cond == ZoneCondition::kClosed;
  }
  return false;
}

struct Op;
struct Part;

// One SQE's worth of a Part: at most max_io_bytes.
struct Chunk {
  Part* part = nullptr;
  uint64_t offset = 0;  // device offset of the next byte to transfer
  char* buf = nullptr;
  uint32_t len = 0;  // bytes still to transfer
  uint32_t eagain_retries = 0;
  Chunk* next = nullptr;  // ready-queue link
};

// The piece of a request that lies in one zone.
struct Part {
  Op* op = nullptr;
  IoOp kind = IoOp::kRead;
  uint32_t zone = 0;
  bool gated = false;   // passes through the zone's FIFO (sequential zone)
  bool serial = false;  // one chunk at a time (writes to a sequential zone)
  uint64_t offset = 0;  // for appends: set when the append is dispatched
  char* buf = nullptr;
  uint64_t len = 0;
  uint64_t issued = 0;       // bytes handed to chunks
  uint32_t outstanding = 0;  // chunks queued or in flight
  int error = 0;             // first errno
  uint64_t generation = 0;   // the zone's generation when the write started
  std::vector<Chunk> chunks;
  Part* next = nullptr;  // zone FIFO link
};

// One IoRequest in flight.
struct Op {
  IoRequest* req = nullptr;
  IoOp kind = IoOp::kRead;
  size_t len = 0;
  std::vector<Part> parts;  // sized once; parts are referenced by pointer
  size_t parts_left = 0;
  int error = 0;
  uint64_t error_offset = std::numeric_limits<uint64_t>::max();
  uint64_t landed = 0;
};

// Facts about a zone that never change while the device is open.
struct ZoneStatic {
  uint64_t start = 0;
  uint64_t len = 0;
  uint64_t capacity = 0;
  bool conventional = false;
};

// Mutable per-zone state, under ZbdDevice::mu_.
struct ZoneState {
  Part* head = nullptr;  // FIFO of parts not yet started
  Part* tail = nullptr;
  uint32_t reads_inflight = 0;
  bool write_inflight = false;
  // Tracked write pointer, for appends. Valid while wp_known; `writable`
  // false when the zone was full, read-only or offline at the last report.
  bool wp_known = false;
  bool writable = false;
  uint64_t wp = 0;
  // Bumped by every management op on the zone: a write that started before
  // must not publish the write pointer it computed.
  uint64_t generation = 0;
};

class ZbdDevice final : public ZonedDevice {
 public:
  ZbdDevice() = default;
  // Waits for every submitted request to complete (callbacks included),
  // then stops the reaper. Must not run on the reaper, i.e. not from an
  // on_complete callback.
  ~ZbdDevice() override;

  Status Init(const Uri& uri, uint32_t queue_depth);

  const DeviceInfo& info() const override { return info_; }
  Status ReportZones(uint32_t first, uint32_t count, std::vector<ZoneInfo>* zones) override;
  Status ManageZones(ZoneOp op, uint32_t first, uint32_t count) override;
  Status ManageAllZones(ZoneOp op) override;
  void Submit(IoRequest* req) override;
  Status Flush() override;

 private:
  Status OpenAndProbe();
  Status LoadZones();
  // Calls fn(zone index, ZoneInfo) for zones [first, first + count).
  template <typename Fn>
  Status ForEachReportedZone(uint32_t first, uint32_t count, Fn&& fn) const;
  Status ZoneOpOne(ZoneOp op, uint32_t zone);
  void InvalidateZones(uint32_t first, uint32_t count);

  // 0, or the errno with which `req` fails before reaching the device.
  int Precheck(const IoRequest& req) const;
  std::unique_ptr<Op> BuildOp(IoRequest* req) const;

  // Under mu_.
  void EnqueueLocked(Part* p, std::vector<Op*>* done);
  void DispatchZoneLocked(uint32_t zone, std::vector<Op*>* done);
  int PrepareAppendLocked(uint32_t zone, Part* p);
  void StartPartLocked(Part* p);
  void IssueNextChunkLocked(Part* p, Chunk* c);
  void PushReadyLocked(Chunk* c);
  void OnChunkDoneLocked(Chunk* c, int res, std::vector<Op*>* done);
  void FinishPartLocked(Part* p, std::vector<Op*>* done);
  void CompletePartLocked(Part* p, std::vector<Op*>* done);

  // Reaper thread only (the ring is its alone).
  void ReaperLoop();
  void ReapLocked(std::vector<Op*>* done);
  void FillSqLocked(std::vector<Op*>* done);
  void ArmWakePoll();
  void SubmitSqes(bool wait);

  void Wake();
  // Publishes results and runs callbacks; never under mu_.
  void Complete(std::vector<Op*>* done);

  DeviceInfo info_;
  std::string path_;
  uint32_t zone_sectors_ = 0;
  uint32_t queue_depth_ = 0;
  std::vector<ZoneStatic> zone_static_;  // immutable after Init

  UniqueFd fd_;
  UniqueFd wake_fd_;
  Ring ring_;
  std::thread reaper_;

  std::mutex mu_;
  std::condition_variable drained_;
  std::vector<ZoneState> zones_;
  Chunk* ready_head_ = nullptr;  // chunks waiting for a ring slot, FIFO
  Chunk* ready_tail_ = nullptr;
  uint32_t inflight_ = 0;     // I/O SQEs handed to the ring
  uint64_t outstanding_ = 0;  // accepted requests whose callback has not returned
  bool sleeping_ = false;     // reaper waits in the ring; Submit must Wake()
  bool stop_ = false;
};

ZbdDevice::~ZbdDevice() {
  if (!reaper_.joinable()) return;
  {
    std::unique_lock<std::mutex> lock(mu_);
    drained_.wait(lock, [this] { return outstanding_ == 0; });
    stop_ = true;
    sleeping_ = false;
  }
  Wake();
  reaper_.join();
}

Status ZbdDevice::Init(const Uri& uri, uint32_t queue_depth) {
  path_ = uri.path;
  queue_depth_ = queue_depth;
  info_.uri = "zbd:" + uri.path;
  char sep = '?';
  for (const auto& [key, value] : uri.params) {
    info_.uri += sep + key + "=" + value;
    sep = '&';
  }
  info_.backend = "zbd";
  info_.native_append = false;

  ZF_RETURN_IF_ERROR(OpenAndProbe());
  ZF_RETURN_IF_ERROR(LoadZones());
  zones_.resize(info_.nr_zones);

  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) return Status(errno, "eventfd for " + path_ + " failed");
  wake_fd_.Reset(efd);
  // One slot more than the I/O depth for the wake-up poll; the kernel makes
  // the CQ twice as large, so completions never overflow it.
  int r = ring_.Init(queue_depth_ + 1);
  if (r < 0) {
    return Status(-r, "io_uring_queue_init with " + std::to_string(queue_depth_ + 1) +
                          " entries for " + path_ + " failed (is io_uring disabled?)");
  }
  reaper_ = std::thread([this] { ReaperLoop(); });
  return Status();
}

Status ZbdDevice::OpenAndProbe() {
  // Checked before open(): opening an arbitrary character device or a FIFO
  // can block or have side effects.
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return Status(err, path_ + " does not exist");
    if (err == EACCES) return Status(err, "permission denied looking up " + path_);
    return Status(err, "cannot stat " + path_);
  }
  if (!S_ISBLK(st.st_mode)) {
    return Status(ENOTBLK, path_ + " is not a block device (the zbd: backend needs a zoned block "
                               "device such as /dev/nullb0; use emu: for a directory)");
  }
  const std::string sysfs = "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" +
                            std::to_string(minor(st.st_rdev));
  Result<std::string> zoned = ReadSysfs(sysfs + "/queue/zoned");
  if (!zoned.ok() || *zoned == "none") {
    return Status(ENXIO, path_ + " is not a zoned block device (" + sysfs + "/queue/zoned: " +
                             (zoned.ok() ? *zoned : std::string("missing")) + ")");
  }
  if (*zoned != "host-managed" && *zoned != "host-aware") {
    return Status(ENXIO, path_ + " has an unknown zone model '" + *zoned + "'");
  }
  info_.model = *zoned;

  // O_EXCL on a block device: fails with EBUSY while it is mounted or held
  // exclusively, and keeps others from doing so while we use it.
  int fd = ::open(path_.c_str(), O_RDWR | O_DIRECT | O_EXCL | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == EACCES || err == EPERM) {
      return Status(err, "permission denied opening " + path_ +
                             " for reading and writing (need write access to the device)");
    }
    if (err == EBUSY) {
      return Status(err, path_ + " is busy: mounted, or opened exclusively by another program");
    }
    if (err == EROFS) return Status(err, path_ + " is read-only");
    return Status(err, "cannot open " + path_);
  }
  fd_.Reset(fd);
  struct stat fst {};
  if (::fstat(fd, &fst) != 0 || fst.st_rdev != st.st_rdev) {
    return Status(EAGAIN, path_ + " changed while it was being opened");
  }

  int lbs = 0;
  uint64_t bytes = 0;
  unsigned int zone_sectors = 0;
  unsigned int nr_zones = 0;
  if (::ioctl(fd, BLKSSZGET, &lbs) != 0) {
    return Status(errno, "BLKSSZGET (logical block size) on " + path_ + " failed");
  }
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
    return Status(errno, "BLKGETSIZE64 (capacity) on " + path_ + " failed");
  }
  if (::ioctl(fd, BLKGETZONESZ, &zone_sectors) != 0) {
    return Status(errno, "BLKGETZONESZ (zone size) on " + path_ + " failed");
  }
  if (::ioctl(fd, BLKGETNRZONES, &nr_zones) != 0) {
    return Status(errno, "BLKGETNRZONES (zone count) on " + path_ + " failed");
  }
  if (lbs <= 0 || bytes == 0 || zone_sectors == 0 || nr_zones == 0) {
    return Status(ENXIO, path_ + " reports an unusable geometry (block size " +
                             std::to_string(lbs) + ", " + std::to_string(bytes) + " bytes, " +
                             std::to_string(nr_zones) + " zones of " +
                             std::to_string(zone_sectors) + " sectors)");
  }
  info_.block_size = static_cast<uint32_t>(lbs);
  info_.capacity = bytes;
  zone_sectors_ = zone_sectors;
  info_.zone_size = uint64_t{zone_sectors} << kSectorShift;
  info_.nr_zones = nr_zones;

  // 0 in sysfs means no limit, as in DeviceInfo.
  info_.max_open = static_cast<uint32_t>(ReadSysfsUint(sysfs + "/queue/max_open_zones", 0));
  info_.max_active = static_cast<uint32_t>(ReadSysfsUint(sysfs + "/queue/max_active_zones", 0));
  // The largest command the queue accepts. Anything larger is split by the
  // kernel, which re-issues pieces from io-wq; we split ourselves instead.
  uint64_t max_io = ReadSysfsUint(sysfs + "/queue/max_sectors_kb", 0) * 1024;
  if (max_io == 0) {
    unsigned short max_sectors = 0;  // NOLINT(runtime/int): BLKSECTGET's type
    if (::ioctl(fd, BLKSECTGET, &max_sectors) == 0) max_io = uint64_t{max_sectors} << kSectorShift;
  }
  if (max_io == 0) max_io = 128 * 1024;
  max_io = std::min<uint64_t>(max_io, 1u << 30);
  max_io -= max_io % info_.block_size;
  info_.max_io_bytes = static_cast<uint32_t>(std::max<uint64_t>(max_io, info_.block_size));
  return Status();
}

template <typename Fn>
Status ZbdDevice::ForEachReportedZone(uint32_t first, uint32_t count, Fn&& fn) const {
  const uint32_t batch = std::min(count, kReportBatch);
  const size_t bytes = sizeof(blk_zone_report) + size_t{batch} * sizeof(blk_zone);
  // malloc'd storage: blk_zone_report ends in a flexible array.
  std::unique_ptr<void, decltype(&std::free)> mem(std::calloc(1, bytes), &std::free);
  if (mem == nullptr) return Status(ENOMEM, "no memory for a zone report");
  auto* rep = static_cast<blk_zone_report*>(mem.get());

  uint32_t index = first;
  const uint32_t end = first + count;
  while (index < end) {
    std::memset(rep, 0, bytes);
    rep->sector = uint64_t{index} * zone_sectors_;
    rep->nr_zones = std::min(end - index, batch);
    if (::ioctl(fd_.get(), BLKREPORTZONE, rep) != 0) {
      int err = errno;
      return Status(err, "zone report of " + path_ + " from zone " + std::to_string(index) +
                             " failed");
    }
    if (rep->nr_zones == 0) {
      return Status(EIO, "zone report of " + path_ + " returned no zone at zone " +
                             std::to_string(index) + " of " + std::to_string(info_.nr_zones));
    }
    for (uint32_t i = 0; i < rep->nr_zones && index < end; ++i, ++index) {
      ZF_ASSIGN_OR_RETURN(ZoneInfo z, ConvertZone(rep->zones[i], rep->flags));
      ZF_RETURN_IF_ERROR(fn(index, z));
    }
  }
  return Status();
}

Status ZbdDevice::LoadZones() {
  zone_static_.resize(info_.nr_zones);
  bool seen_seq = false;
  info_.nr_conv_zones = 0;
  info_.zone_capacity = info_.zone_size;
  Status s = ForEachReportedZone(0, info_.nr_zones, [&](uint32_t index, const ZoneInfo& z) {
    zone_static_[index] = ZoneStatic{z.start, z.len, z.capacity, !z.sequential()};
    if (!z.sequential()) {
      ++info_.nr_conv_zones;
    } else if (!seen_seq) {
      seen_seq = true;
      info_.zone_capacity = z.capacity;
    }
    return Status();
  });
  return s;
}

Status ZbdDevice::ReportZones(uint32_t first, uint32_t count, std::vector<ZoneInfo>* zones) {
  if (count == 0 && first < info_.nr_zones) count = info_.nr_zones - first;
  ZF_RETURN_IF_ERROR(ValidateZoneRange(first, count));
  zones->clear();
  zones->reserve(count);
  return ForEachReportedZone(first, count, [zones](uint32_t, const ZoneInfo& z) {
    zones->push_back(z);
    return Status();
  });
}

void ZbdDevice::InvalidateZones(uint32_t first, uint32_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t z = first; z < first + count; ++z) {
    ++zones_[z].generation;
    zones_[z].wp_known = false;
  }
}

Status ZbdDevice::ZoneOpOne(ZoneOp op, uint32_t zone) {
  const ZoneStatic& zs = zone_static_[zone];
  if (zs.conventional) {
    // null_blk's answer; SCSI would say EREMOTEIO (ILLEGAL REQUEST).
    return Status(EIO, std::string(ZoneOpName(op)) + " of zone " + std::to_string(zone) + " on " +
                           path_ + " refused: the zone is conventional");
  }
  blk_zone_range range{};
  range.sector = zs.start >> kSectorShift;
  range.nr_sectors = zs.len >> kSectorShift;
  // Before and after: a write completing in between must not publish a
  // write pointer from before the op.
  InvalidateZones(zone, 1);
  int r = ::ioctl(fd_.get(), ZoneOpIoctl(op), &range);
  int err = DeviceErrno(errno);
  InvalidateZones(zone, 1);
  if (r != 0) {
    return Status(err, std::string(ZoneOpName(op)) + " of zone " + std::to_string(zone) +
                           " (offset " + std::to_string(zs.start) + ") on " + path_ + " failed");
  }
  return Status();
}

Status ZbdDevice::ManageZones(ZoneOp op, uint32_t first, uint32_t count) {
  ZF_RETURN_IF_ERROR(ValidateZoneRange(first, count));
  // One ioctl per zone: the kernel runs a multi-zone range as chained bios
  // that all execute, and would neither stop at the first failure nor say
  // which zone failed.
  for (uint32_t z = first; z < first + count; ++z) ZF_RETURN_IF_ERROR(ZoneOpOne(op, z));
  return Status();
}

Status ZbdDevice::ManageAllZones(ZoneOp op) {
  if (op == ZoneOp::kReset) {
    // The whole-device range is the kernel's reset-all (REQ_OP_ZONE_RESET_ALL
    // or its emulation): conventional, empty, read-only and offline zones
    // are skipped.
    blk_zone_range range{};
    range.sector = 0;
    range.nr_sectors = info_.capacity >> kSectorShift;
    InvalidateZones(0, info_.nr_zones);
    int r = ::ioctl(fd_.get(), BLKRESETZONE, &range);
    int err = DeviceErrno(errno);
    InvalidateZones(0, info_.nr_zones);
    if (r != 0) return Status(err, "reset of all zones on " + path_ + " failed");
    return Status();
  }
  std::vector<uint32_t> selected;
  ZF_RETURN_IF_ERROR(ForEachReportedZone(0, info_.nr_zones, [&](uint32_t index, const ZoneInfo& z) {
    if (z.sequential() && SelectedForAll(op, z.cond)) selected.push_back(index);
    return Status();
  }));
  for (uint32_t z : selected) {
    Status s = ZoneOpOne(op, z);
    if (s.ok()) continue;
    // The zone may have changed since the report (a write filled it, say):
    // only a zone that still qualifies makes the whole operation fail.
    Result<ZoneInfo> now = ReportZone(z);
    if (now.ok() && !SelectedForAll(op, now->cond)) continue;
    return s;
  }
  return Status();
}

Status ZbdDevice::Flush() {
  // A block device's fdatasync issues a cache flush; with O_DIRECT there is
  // no page cache to write back.
  if (::fdatasync(fd_.get()) != 0) {
    int err = errno;
    return Status(err, "flush (fdatasync) of " + path_ + " failed");
  }
  return Status();
}

int ZbdDevice::Precheck(const IoRequest& req) const {
  Status s = ValidateRequest(req);
  if (!s.ok()) return s.err();
  // O_DIRECT needs memory aligned to the logical block size.
  if (reinterpret_cast<uintptr_t>(req.buf) % info_.block_size != 0) return EINVAL;
  const uint32_t z0 = info_.ZoneOf(req.offset);
  const uint32_t z1 = info_.ZoneOf(req.offset + req.len - 1);
  const ZoneStatic& first = zone_static_[z0];
  switch (req.op) {
    case IoOp::kRead:
      return 0;
    case IoOp::kAppend:
      // The block layer refuses appends to conventional zones.
      if (first.conventional || req.len > first.capacity) return EIO;
      return 0;
    case IoOp::kWrite:
      // Split in chunks, a write ending past the zone's capacity would put
      // its first chunks on the media before the device refuses the last;
      // the device refuses the whole command. So refuse it here, as EIO.
      if (!first.conventional) return req.offset + req.len > first.start + first.capacity ? EIO : 0;
      for (uint32_t z = z0 + 1; z <= z1; ++z) {
        if (!zone_static_[z].conventional) return EIO;  // runs into a sequential zone
      }
      return 0;
  }
  return EINVAL;
}

std::unique_ptr<Op> ZbdDevice::BuildOp(IoRequest* req) const {
  auto op = std::make_unique<Op>();
  op->req = req;
  op->kind = req->op;
  op->len = req->len;
  char* buf = static_cast<char*>(req->buf);
  const uint32_t z0 = info_.ZoneOf(req->offset);
  if (req->op != IoOp::kRead) {
    // Prechecked: a write lies in one sequential zone or in conventional
    // zones only; an append in one sequential zone.
    Part& p = op->parts.emplace_back();
    p.op = op.get();
    p.kind = req->op;
    p.zone = z0;
    p.gated = !zone_static_[z0].conventional;
    p.serial = p.gated;
    p.offset = req->offset;
    p.buf = buf;
    p.len = req->len;
  } else {
    const uint32_t z1 = info_.ZoneOf(req->offset + req->len - 1);
    op->parts.reserve(z1 - z0 + 1);
    uint64_t pos = req->offset;
    const uint64_t end = req->offset + req->len;
    for (uint32_t z = z0; z <= z1; ++z) {
      const uint64_t zone_end = std::min(end, info_.ZoneStart(z) + info_.zone_size);
      Part& p = op->parts.emplace_back();
      p.op = op.get();
      p.kind = IoOp::kRead;
      p.zone = z;
      p.gated = !zone_static_[z].conventional;
      p.offset = pos;
      p.buf = buf + (pos - req->offset);
      p.len = zone_end - pos;
      pos = zone_end;
    }
  }
  op->parts_left = op->parts.size();
  return op;
}

void ZbdDevice::Submit(IoRequest* req) {
  if (int err = Precheck(*req); err != 0) {
    req->result = -err;
    if (req->on_complete) req->on_complete(req);
    return;
  }
  std::unique_ptr<Op> op = BuildOp(req);
  std::vector<Op*> done;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++outstanding_;
    Op* raw = op.release();  // owned by the queues until Complete()
    for (Part& p : raw->parts) EnqueueLocked(&p, &done);
    if (ready_head_ != nullptr && sleeping_) {
      sleeping_ = false;
      wake = true;
    }
  }
  if (wake) Wake();
  Complete(&done);  // appends refused at dispatch complete here
}

void ZbdDevice::EnqueueLocked(Part* p, std::vector<Op*>* done) {
  if (!p->gated) {
    StartPartLocked(p);
    return;
  }
  ZoneState& zs = zones_[p->zone];
  p->next = nullptr;
  if (zs.tail != nullptr) {
    zs.tail->next = p;
  } else {
    zs.head = p;
  }
  zs.tail = p;
  DispatchZoneLocked(p->zone, done);
}

void ZbdDevice::DispatchZoneLocked(uint32_t zone, std::vector<Op*>* done) {
  ZoneState& zs = zones_[zone];
  while (zs.head != nullptr) {
    Part* p = zs.head;
    // Reads share the zone with each other; a write or append has it alone.
    if (p->kind == IoOp::kRead) {
      if (zs.write_inflight) return;
    } else if (zs.write_inflight || zs.reads_inflight > 0) {
      return;
    }
    zs.head = p->next;
    if (zs.head == nullptr) zs.tail = nullptr;
    p->next = nullptr;
    if (p->kind == IoOp::kRead) {
      ++zs.reads_inflight;
      StartPartLocked(p);
      continue;
    }
    if (p->kind == IoOp::kAppend) {
      if (int err = PrepareAppendLocked(zone, p); err != 0) {
        p->error = err;
        CompletePartLocked(p, done);
        continue;
      }
    }
    zs.write_inflight = true;
    p->generation = zs.generation;
    StartPartLocked(p);
    return;
  }
}

int ZbdDevice::PrepareAppendLocked(uint32_t zone, Part* p) {
  ZoneState& zs = zones_[zone];
  const ZoneStatic& st = zone_static_[zone];
  if (!zs.wp_known) {
    // Under mu_: the zone is idle (nothing of it in flight) and a one-zone
    // report is short; it happens on the first append to a zone and after
    // errors or zone management only.
    alignas(blk_zone_report) unsigned char mem[sizeof(blk_zone_report) + sizeof(blk_zone)] = {};
    auto* rep = reinterpret_cast<blk_zone_report*>(mem);
    rep->sector = st.start >> kSectorShift;
    rep->nr_zones = 1;
    if (::ioctl(fd_.get(), BLKREPORTZONE, rep) != 0) return errno;
    if (rep->nr_zones != 1) return EIO;
    Result<ZoneInfo> z = ConvertZone(rep->zones[0], rep->flags);
    if (!z.ok()) return z.status().err();
    zs.wp = z->wp;
    zs.writable = z->cond != ZoneCondition::kFull && z->cond != ZoneCondition::kReadOnly &&
                  z->cond != ZoneCondition::kOffline;
    zs.wp_known = true;
  }
  // What the device would answer to a write at the write pointer.
  if (!zs.writable || zs.wp + p->len > st.start + st.capacity) return EIO;
  p->offset = zs.wp;
  p->op->landed = zs.wp;
  return 0;
}

void ZbdDevice::StartPartLocked(Part* p) {
  const uint64_t max_io = info_.max_io_bytes;
  if (p->serial) {
    p->chunks.resize(1);
    IssueNextChunkLocked(p, &p->chunks[0]);
    return;
  }
  const size_t n = static_cast<size_t>((p->len + max_io - 1) / max_io);
  p->chunks.resize(n);
  for (size_t i = 0; i < n; ++i) IssueNextChunkLocked(p, &p->chunks[i]);
}

void ZbdDevice::IssueNextChunkLocked(Part* p, Chunk* c) {
  const uint64_t n = std::min<uint64_t>(info_.max_io_bytes, p->len - p->issued);
  c->part = p;
  c->offset = p->offset + p->issued;
  c->buf = p->buf + p->issued;
  c->len = static_cast<uint32_t>(n);
  c->eagain_retries = 0;
  p->issued += n;
  ++p->outstanding;
  PushReadyLocked(c);
}

void ZbdDevice::PushReadyLocked(Chunk* c) {
  c->next = nullptr;
  if (ready_tail_ != nullptr) {
    ready_tail_->next = c;
  } else {
    ready_head_ = c;
  }
  ready_tail_ = c;
}

void ZbdDevice::OnChunkDoneLocked(Chunk* c, int res, std::vector<Op*>* done) {
  Part* p = c->part;
  --inflight_;
  if (res == -EAGAIN && c->eagain_retries < kMaxEagainRetries) {
    ++c->eagain_retries;
    PushReadyLocked(c);
    return;
  }
  if (res > 0 && static_cast<uint32_t>(res) < c->len) {
    // Short transfer: continue where it stopped. For a serial part nothing
    // else of the zone is in flight, so order is kept.
    c->offset += static_cast<uint32_t>(res);
    c->buf += res;
    c->len -= static_cast<uint32_t>(res);
    PushReadyLocked(c);
    return;
  }
  --p->outstanding;
  if (res < 0) {
    if (p->error == 0) p->error = DeviceErrno(-res);
  } else if (res == 0) {
    if (p->error == 0) p->error = EIO;  // no progress: never loop on it
  } else if (p->serial && p->error == 0 && p->issued < p->len) {
    IssueNextChunkLocked(p, c);
    return;
  }
  if (p->outstanding == 0) FinishPartLocked(p, done);
}

void ZbdDevice::FinishPartLocked(Part* p, std::vector<Op*>* done) {
  const uint32_t zone = p->zone;
  const bool gated = p->gated;
  if (gated) {
    ZoneState& zs = zones_[zone];
    if (p->kind == IoOp::kRead) {
      --zs.reads_inflight;
    } else {
      zs.write_inflight = false;
      if (p->error == 0 && p->generation == zs.generation) {
        // The device took the write at p->offset, so that was its write
        // pointer; now it is past the data.
        zs.wp_known = true;
        zs.writable = true;
        zs.wp = p->offset + p->len;
      } else {
        zs.wp_known = false;  // reload from a report before the next append
      }
    }
  }
  CompletePartLocked(p, done);
  if (gated) DispatchZoneLocked(zone, done);
}

void ZbdDevice::CompletePartLocked(Part* p, std::vector<Op*>* done) {
  Op* op = p->op;
  // The error of the lowest failing offset, so a multi-zone read fails the
  // same way whatever order its parts complete in.
  if (p->error != 0 && p->offset < op->error_offset) {
    op->error = p->error;
    op->error_offset = p->offset;
  }
  if (--op->parts_left == 0) done->push_back(op);
}

void ZbdDevice::Wake() {
  if (::eventfd_write(wake_fd_.get(), 1) != 0) {
    // Only EAGAIN (counter saturated) is possible, and then a wake-up is
    // already pending.
  }
}

void ZbdDevice::Complete(std::vector<Op*>* done) {
  if (done->empty()) return;
  for (Op* op : *done) {
    IoRequest* req = op->req;
    if (op->error != 0) {
      req->result = -op->error;
    } else {
      req->result = static_cast<int64_t>(op->len);
      if (op->kind == IoOp::kAppend) req->landed = op->landed;
    }
    delete op;
    if (req->on_complete) req->on_complete(req);
  }
  std::lock_guard<std::mutex> lock(mu_);
  outstanding_ -= done->size();
  if (outstanding_ == 0) drained_.notify_all();
  done->clear();
}

void ZbdDevice::ArmWakePoll() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) Fatal("no submission slot for the wake-up poll", EBUSY);
  io_uring_prep_poll_add(sqe, wake_fd_.get(), POLLIN);
  io_uring_sqe_set_data64(sqe, kWakeTag);
}

void ZbdDevice::ReapLocked(std::vector<Op*>* done) {
  bool woken = false;
  unsigned head = 0;
  unsigned seen = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    ++seen;
    const uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag == kWakeTag) {
      woken = true;
    } else {
      OnChunkDoneLocked(reinterpret_cast<Chunk*>(static_cast<uintptr_t>(tag)), cqe->res, done);
    }
  }
  io_uring_cq_advance(ring_.get(), seen);
  if (woken) {
    eventfd_t value = 0;
    (void)::eventfd_read(wake_fd_.get(), &value);  // EAGAIN when already drained
    ArmWakePoll();
  }
}

void ZbdDevice::FillSqLocked(std::vector<Op*>* done) {
  while (ready_head_ != nullptr && inflight_ < queue_depth_) {
    Chunk* c = ready_head_;
    ready_head_ = c->next;
    if (ready_head_ == nullptr) ready_tail_ = nullptr;
    Part* p = c->part;
    if (p->error != 0) {
      // A sibling chunk failed: drop the rest of the part.
      if (--p->outstanding == 0) FinishPartLocked(p, done);
      continue;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) Fatal("submission queue full below the queue depth", EBUSY);
    if (p->kind == IoOp::kRead) {
      io_uring_prep_read(sqe, fd_.get(), c->buf, c->len, c->offset);
    } else {
      io_uring_prep_write(sqe, fd_.get(), c->buf, c->len, c->offset);
    }
    io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(c)));
    ++inflight_;
  }
}

void ZbdDevice::SubmitSqes(bool wait) {
  while (true) {
    int r = wait ? io_uring_submit_and_wait(ring_.get(), 1) : io_uring_submit(ring_.get());
    if (r >= 0) return;
    if (r == -EINTR) continue;
    if (r == -EAGAIN || r == -EBUSY) {
      // Transient shortage of kernel resources; SQEs stay queued.
      sched_yield();
      continue;
    }
    Fatal("io_uring_enter", -r);
  }
}

void ZbdDevice::ReaperLoop() {
  ArmWakePoll();
  std::vector<Op*> done;
  while (true) {
    bool exit_now = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReapLocked(&done);
      FillSqLocked(&done);
      if (stop_ && inflight_ == 0 && ready_head_ == nullptr) {
        exit_now = true;
      } else if (done.empty()) {
        // About to block in the ring: from here on Submit() must wake us.
        sleeping_ = true;
      }
    }
    if (exit_now) return;  // the armed poll dies with the ring
    if (!done.empty()) {
      SubmitSqes(false);
      Complete(&done);  // callbacks may Submit(); the next round picks it up
      continue;
    }
    SubmitSqes(true);
  }
}

}  // namespace

Result<std::unique_ptr<ZonedDevice>> OpenZbdDevice(const Uri& uri) {
  ZF_RETURN_IF_ERROR(uri.CheckKeys({"queue_depth"}));
  uint64_t queue_depth = kDefaultQueueDepth;
  ZF_RETURN_IF_ERROR(uri.GetUint("queue_depth", &queue_depth));
  if (queue_depth < 1 || queue_depth > kMaxQueueDepth) {
    return Status(EINVAL, "queue_depth=" + std::to_string(queue_depth) + " out of range (1-" +
                              std::to_string(kMaxQueueDepth) + ")");
  }
  if (uri.path.empty()) {
    return Status(EINVAL, "zbd: needs a device path, e.g. zbd:/dev/nullb0");
  }
  auto dev = std::make_unique<ZbdDevice>();
  ZF_RETURN_IF_ERROR(dev->Init(uri, static_cast<uint32_t>(queue_depth)));
  return std::unique_ptr<ZonedDevice>(std::move(dev));
}

}  // namespace zfile
