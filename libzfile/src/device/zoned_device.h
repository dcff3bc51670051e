// ZonedDevice: the one interface every backend (mem, emu, zbd) implements.
//
// Contract, identical on every backend (the device-contract suite in
// tests/device checks it):
//  - I/O offsets and lengths are multiples of the logical block size and lie
//    inside the device, else EINVAL before anything reaches the device.
//  - Writes to a sequential zone must start at its write pointer and end at
//    or before its capacity; the device fails them with EIO otherwise, as
//    null_blk does. Writes to full, read-only or offline zones fail with EIO;
//    reads of offline zones fail with EIO. Reads above the write pointer
//    return zeros.
//  - Implicitly opening a zone that needs an open slot closes another
//    implicitly-open zone when the open limit is reached; when none can be
//    closed the write fails with ETOOMANYREFS (BLK_STS_ZONE_OPEN_RESOURCE).
//    A write or open beyond the active limit fails with EOVERFLOW
//    (BLK_STS_ZONE_ACTIVE_RESOURCE). These are the kernel's errno values.
//  - Requests to one zone are executed in submission order. Requests to
//    different zones may run and complete in any order.
//  - I/O larger than info().max_io_bytes is split by the backend, in order.
//  - Zone appends (IoOp::kAppend) take the zone's start as offset and report
//    where the data landed; they are native on mem/emu and emulated (per-zone
//    serialisation at the write pointer) on zbd.
#ifndef ZFILE_DEVICE_ZONED_DEVICE_H_
#define ZFILE_DEVICE_ZONED_DEVICE_H_

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "device/zone.h"

namespace zfile {

enum class IoOp : uint8_t { kRead, kWrite, kAppend };

// One asynchronous request. The submitter owns it and keeps it (and `buf`)
// alive until `on_complete` has run. The backend fills in `result` (bytes
// transferred, or -errno) and, for appends, `landed`, then calls
// `on_complete` exactly once: on a backend thread, or on the submitting thread
// before Submit returns.
struct IoRequest {
  IoOp op = IoOp::kRead;
  uint64_t offset = 0;  // absolute byte offset; the zone start for appends
  void* buf = nullptr;
  size_t len = 0;
  std::function<void(IoRequest*)> on_complete;

  int64_t result = 0;   // output: bytes or -errno
  uint64_t landed = 0;  // output: appends: absolute offset where the data landed
};

class FaultInjector;

class ZonedDevice {
 public:
  virtual ~ZonedDevice() = default;

  virtual const DeviceInfo& info() const = 0;

  // Reports `count` zones from zone `first` (count 0: to the last zone).
  virtual Status ReportZones(uint32_t first, uint32_t count, std::vector<ZoneInfo>* zones) = 0;

  // Applies `op` to zones [first, first + count), in zone order, stopping at
  // the first failure. Conventional zones fail with EIO, as on null_blk.
  virtual Status ManageZones(ZoneOp op, uint32_t first, uint32_t count) = 0;

  // Applies `op` to every sequential zone that accepts it (a reset-all as
  // the kernel does it: read-only and offline zones are skipped).
  virtual Status ManageAllZones(ZoneOp op) = 0;

  virtual void Submit(IoRequest* req) = 0;

  // Makes every completed write durable.
  virtual Status Flush() = 0;

  // Fault injection; nullptr where the backend has none (zbd).
  virtual FaultInjector* faults() { return nullptr; }

  // Synchronous conveniences on top of Submit.
  Result<size_t> Read(uint64_t offset, void* buf, size_t len);
  Result<size_t> Write(uint64_t offset, const void* buf, size_t len);
  // Appends to zone `zone`; returns the absolute offset where the data landed.
  Result<uint64_t> Append(uint32_t zone, const void* buf, size_t len);
  Result<ZoneInfo> ReportZone(uint32_t zone);

  // Read() in pieces of `piece` bytes (a multiple of the block size, else
  // EINVAL before anything is read), all submitted at once, so that
  // `arrived` can hear of the bytes as they come: it is called on this
  // thread with the length of the prefix of [0, len) that has been read,
  // after each piece that extends it, and never again once a piece has
  // failed. The device sees the same bytes as from one Read(), in requests
  // of at most `piece` bytes; a backend that completes requests as they
  // are submitted (workers=0) reads them one by one, each told before the
  // next starts.
  Result<size_t> ReadInPieces(uint64_t offset, void* buf, size_t len, size_t piece,
                              const std::function<void(uint64_t)>& arrived);

 protected:
  // Checks the parts of a request that the block layer checks before any
  // device sees it: alignment, bounds, append target. EINVAL on failure.
  Status ValidateRequest(const IoRequest& req) const;
  // Checks a zone range for ManageZones. EINVAL on failure.
  Status ValidateZoneRange(uint32_t first, uint32_t count) const;
  // The failure of zone command `op` on `zone` with errno `err`, saying why
  // in words where the errno or the zone's condition tells.
  Status ZoneOpError(ZoneOp op, uint32_t zone, int err, const ZoneInfo* state) const;

 public:
  // Why a device refused something, in words, for errno values with a
  // zoned meaning (ETOOMANYREFS, EOVERFLOW); empty for the others.
  static std::string ErrnoHint(int err, const DeviceInfo& info);
};

// Fault injection on the emulated backends (tests and `zfile inject`).
class FaultInjector {
 public:
  virtual ~FaultInjector() = default;

  // Makes a sequential zone read-only or offline (persisted by emu), or
  // returns it to service (kEmpty: as a fresh empty zone). Other conditions:
  // EINVAL.
  virtual Status SetZoneCondition(uint32_t zone, ZoneCondition cond) = 0;

  // Moves a sequential zone's write pointer to `wp` (absolute) behind the
  // back of whoever uses the device: bytes above `wp` are lost, bytes
  // between the old and new write pointer read as zeros.
  virtual Status MoveWritePointer(uint32_t zone, uint64_t wp) = 0;

  // The next read or write (per `op`; kAppend counts as a write) that
  // touches the logical block containing `offset` fails with EIO without
  // transferring anything.
  void FailNextIo(IoOp op, uint64_t offset) { FailNextIoWith(op, offset, EIO); }
  // The same with the errno `err` (> 0): an error that did not come from
  // the media, such as EAGAIN or ENOMEM from the I/O path.
  virtual void FailNextIoWith(IoOp op, uint64_t offset, int err) = 0;

  // The next zone report fails with EIO.
  virtual void FailNextReport() = 0;

  // The next read or write (per `op`; an append matches on its zone's
  // start) that touches the logical block containing `offset` is accepted
  // but not started, and so is every read and write submitted after it, as
  // behind a stalled queue (zone management is not held), until
  // ReleaseHeldIo: a test can put requests in flight behind one whose
  // outcome it chooses (FailNextIoWith), and let them go in turn.
  virtual void HoldNextIo(IoOp op, uint64_t offset) = 0;
  // How many requests are held now.
  virtual size_t HeldIoCount() const = 0;
  // Starts the first `count` held requests, in the order they were
  // submitted, behind whatever the device had already started; the rest
  // stay held, and requests submitted meanwhile queue behind them.
  // `count` 0 starts them all and disarms holds not yet taken.
  virtual void ReleaseHeldIo(size_t count) = 0;
  // Starts the most recently held request alone, ahead of the others (as a
  // device may complete requests out of order).
  virtual void ReleaseLastHeldIo() = 0;

  // Power cut after `writes` more write commands have completed: from then
  // on every queued or new request fails with EIO and nothing more reaches
  // the media. Writes that completed before the cut are kept. 0: now.
  virtual void PowerCutAfter(uint64_t writes) = 0;
  virtual bool powered_off() const = 0;

  // Power comes back: open zones become closed (as on a real device after a
  // power cycle) and the device accepts requests again.
  virtual Status PowerOn() = 0;
};

// Opens a device by URI (mem:, emu:, zbd:). Errors name what is wrong.
Result<std::unique_ptr<ZonedDevice>> OpenDevice(std::string_view uri);

}  // namespace zfile

#endif  // ZFILE_DEVICE_ZONED_DEVICE_H_
