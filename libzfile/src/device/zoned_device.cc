#include "device/zoned_device.h"

#include "device/io_waiter.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace zfile {
namespace {

Status RequestError(const ZonedDevice* dev, const IoRequest& req, int64_t result) {
  static constexpr const char* kOpNames[] = {"read", "write", "append"};
  const int err = static_cast<int>(-result);
  std::string hint = ZonedDevice::ErrnoHint(err, dev->info());
  return Status(err, std::string(kOpNames[static_cast<int>(req.op)]) + " of " +
                         std::to_string(req.len) + " bytes at offset " +
                         std::to_string(req.offset) + " failed" +
                         (hint.empty() ? "" : ": " + hint));
}

Result<IoRequest> RunSync(ZonedDevice* dev, IoOp op, uint64_t offset, void* buf, size_t len) {
  IoWaiter waiter(op, offset, buf, len);
  waiter.Submit(dev);
  waiter.Wait();
  IoRequest req = waiter.request();
  req.on_complete = nullptr;
  if (req.result < 0) return RequestError(dev, req, req.result);
  return req;
}

}  // namespace

Result<size_t> ZonedDevice::Read(uint64_t offset, void* buf, size_t len) {
  ZF_ASSIGN_OR_RETURN(IoRequest req, RunSync(this, IoOp::kRead, offset, buf, len));
  return static_cast<size_t>(req.result);
}

Result<size_t> ZonedDevice::ReadInPieces(uint64_t offset, void* buf, size_t len, size_t piece,
                                         const std::function<void(uint64_t)>& arrived) {
  if (piece == 0 || piece % info().block_size != 0) {
    return Status(EINVAL, "a read in pieces of " + std::to_string(piece) +
                              " bytes: not a whole number of " + std::to_string(info().block_size) +
                              "-byte blocks");
  }
  auto* out = static_cast<uint8_t*>(buf);
  const size_t count = (len + piece - 1) / piece;
  // All allocated before the first is submitted, so that nothing can throw
  // while one is in flight (IoWaiter is neither movable nor copyable).
  std::vector<std::unique_ptr<IoWaiter>> pieces;
  pieces.reserve(count);
  for (size_t at = 0; at < len; at += piece) {
    pieces.push_back(
        std::make_unique<IoWaiter>(IoOp::kRead, offset + at, out + at, std::min(piece, len - at)));
  }
  size_t submitted = 0;
  size_t waited = 0;
  Status failed;
  // Waits for the oldest piece still out, and tells of it unless a piece
  // has failed.
  auto wait_oldest = [&] {
    IoWaiter& w = *pieces[waited++];
    const int64_t r = w.Wait();
    if (!failed.ok()) return;
    if (r < 0) {
      failed = RequestError(this, w.request(), r);
      return;
    }
    arrived(std::min<uint64_t>(uint64_t{waited} * piece, len));
  };
  // One by one, telling of what has completed after each submission: a
  // backend that completes requests as they are submitted has read each
  // piece by then. After a failure nothing more is submitted, and what is
  // out is waited for.
  for (; submitted < count && failed.ok(); ++submitted) {
    pieces[submitted]->Submit(this);
    while (waited <= submitted && pieces[waited]->Done()) wait_oldest();
  }
  while (waited < submitted) wait_oldest();
  if (!failed.ok()) return failed;
  return len;
}

Result<size_t> ZonedDevice::Write(uint64_t offset, const void* buf, size_t len) {
  ZF_ASSIGN_OR_RETURN(IoRequest req,
                      RunSync(this, IoOp::kWrite, offset, const_cast<void*>(buf), len));
  return static_cast<size_t>(req.result);
}

Result<uint64_t> ZonedDevice::Append(uint32_t zone, const void* buf, size_t len) {
  if (zone >= info().nr_zones) {
    return Status(EINVAL, "zone " + std::to_string(zone) + " out of range (device has " +
                              std::to_string(info().nr_zones) + " zones)");
  }
  ZF_ASSIGN_OR_RETURN(IoRequest req, RunSync(this, IoOp::kAppend, info().ZoneStart(zone),
                                             const_cast<void*>(buf), len));
  return req.landed;
}

Result<ZoneInfo> ZonedDevice::ReportZone(uint32_t zone) {
  std::vector<ZoneInfo> zones;
  ZF_RETURN_IF_ERROR(ReportZones(zone, 1, &zones));
  return zones.at(0);
}

Status ZonedDevice::ValidateRequest(const IoRequest& req) const {
  const DeviceInfo& di = info();
  if (req.len == 0) return Status(EINVAL, "zero-length I/O");
  if (req.offset % di.block_size != 0 || req.len % di.block_size != 0) {
    return Status(EINVAL, "I/O at offset " + std::to_string(req.offset) + " length " +
                              std::to_string(req.len) + " is not aligned to the " +
                              std::to_string(di.block_size) + "-byte logical block size");
  }
  if (req.offset >= di.capacity || req.len > di.capacity - req.offset) {
    return Status(EINVAL, "I/O at offset " + std::to_string(req.offset) + " length " +
                              std::to_string(req.len) + " goes past the end of the device (" +
                              std::to_string(di.capacity) + " bytes)");
  }
  if (req.op == IoOp::kAppend) {
    if (req.offset % di.zone_size != 0) {
      return Status(EINVAL, "zone append must target a zone start");
    }
    if (req.len > di.zone_size) {
      return Status(EINVAL, "zone append larger than a zone");
    }
  }
  return Status();
}

Status ZonedDevice::ValidateZoneRange(uint32_t first, uint32_t count) const {
  const uint32_t n = info().nr_zones;
  if (first >= n || count == 0 || count > n - first) {
    return Status(EINVAL, "zone range " + std::to_string(first) + "+" + std::to_string(count) +
                              " out of range (device has " + std::to_string(n) + " zones, 0-" +
                              std::to_string(n - 1) + ")");
  }
  return Status();
}

std::string ZonedDevice::ErrnoHint(int err, const DeviceInfo& info) {
  switch (err) {
    case ETOOMANYREFS:
      return "the device's open zone limit (" + std::to_string(info.max_open) +
             ") is reached and no implicitly-open zone can be closed";
    case EOVERFLOW:
      return "the device's active zone limit (" + std::to_string(info.max_active) + ") is reached";
    default:
      return "";
  }
}

Status ZonedDevice::ZoneOpError(ZoneOp op, uint32_t zone, int err, const ZoneInfo* state) const {
  std::string why = ErrnoHint(err, info());
  if (why.empty() && state != nullptr) {
    if (!state->sequential()) {
      why = "zone is conventional";
    } else {
      why = "zone is " + std::string(ConditionName(state->cond));
    }
  }
  return Status(err, std::string(ZoneOpName(op)) + " of zone " + std::to_string(zone) + " failed" +
                         (why.empty() ? "" : ": " + why));
}

}  // namespace zfile
