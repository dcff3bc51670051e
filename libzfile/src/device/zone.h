// Zone model shared by every backend: types, conditions, geometry.
//
// All offsets and lengths are in bytes. Conditions and types mirror the
// kernel's BLK_ZONE_COND_* / BLK_ZONE_TYPE_* so a report reads like
// `blkzone report`.
#ifndef ZFILE_DEVICE_ZONE_H_
#define ZFILE_DEVICE_ZONE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace zfile {

enum class ZoneType : uint8_t {
  kConventional,
  kSeqWriteRequired,
  kSeqWritePreferred,
};

// The values are the kernel's BLK_ZONE_COND_* (blkzone prints them, and
// zfile_zone_cond and the daemon protocol carry them), so converting is a
// cast: KernelCondition() one way, ConditionFromKernel() the other.
enum class ZoneCondition : uint8_t {
  kNotWp = 0x0,  // conventional zone: no write pointer
  kEmpty = 0x1,
  kImplicitOpen = 0x2,
  kExplicitOpen = 0x3,
  kClosed = 0x4,
  kReadOnly = 0xD,
  kFull = 0xE,
  kOffline = 0xF,
};

constexpr uint8_t KernelCondition(ZoneCondition cond) { return static_cast<uint8_t>(cond); }

// `value` as a condition; false for a value that is no BLK_ZONE_COND_*.
constexpr bool ConditionFromKernel(uint32_t value, ZoneCondition* cond) {
  switch (value) {
    case 0x0:
    case 0x1:
    case 0x2:
    case 0x3:
    case 0x4:
    case 0xD:
    case 0xE:
    case 0xF:
      *cond = static_cast<ZoneCondition>(value);
      return true;
    default:
      return false;
  }
}

enum class ZoneOp : uint8_t { kReset, kOpen, kClose, kFinish };

struct ZoneInfo {
  uint64_t start = 0;     // first byte of the zone
  uint64_t len = 0;       // zone size
  uint64_t capacity = 0;  // writable bytes, <= len
  uint64_t wp = 0;        // write pointer (absolute); start + len for conventional zones
  ZoneType type = ZoneType::kConventional;
  ZoneCondition cond = ZoneCondition::kNotWp;

  bool sequential() const { return type != ZoneType::kConventional; }
  bool open() const {
    return cond == ZoneCondition::kImplicitOpen || cond == ZoneCondition::kExplicitOpen;
  }
  // Counts against the device's max active zones.
  bool active() const { return open() || cond == ZoneCondition::kClosed; }
};

// Geometry and limits of a device.
struct DeviceInfo {
  std::string uri;
  std::string backend;         // "mem", "emu", "zbd"
  std::string model;           // "host-managed", ...
  uint64_t capacity = 0;       // bytes
  uint64_t zone_size = 0;      // bytes
  uint64_t zone_capacity = 0;  // bytes, of the sequential zones (per zone in reports)
  uint32_t nr_zones = 0;
  uint32_t nr_conv_zones = 0;  // conventional zones (they come first)
  uint32_t block_size = 0;     // logical block size: 512 or 4096
  uint32_t max_open = 0;       // 0: no limit
  uint32_t max_active = 0;     // 0: no limit
  uint32_t max_io_bytes = 0;   // largest single device command; larger I/O is split
  bool native_append = false;  // zone append executed by the device itself

  uint32_t ZoneOf(uint64_t offset) const { return static_cast<uint32_t>(offset / zone_size); }
  uint64_t ZoneStart(uint32_t zone) const { return uint64_t{zone} * zone_size; }
};

// "nw", "em", "oi", "oe", "cl", "fu", "ro", "ol": the short names of
// `blkzone report`; ConditionName gives the long ones ("empty", ...).
std::string_view ConditionShortName(ZoneCondition cond);
std::string_view ConditionName(ZoneCondition cond);
std::string_view TypeName(ZoneType type);  // "CONVENTIONAL", "SEQ_WRITE_REQUIRED", ...
std::string_view ZoneOpName(ZoneOp op);    // "reset", "open", "close", "finish"

// Parses "offline" / "readonly" / ... (as ConditionName prints them).
Result<ZoneCondition> ParseCondition(std::string_view name);

}  // namespace zfile

#endif  // ZFILE_DEVICE_ZONE_H_
