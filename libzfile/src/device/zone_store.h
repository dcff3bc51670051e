// ZoneStore: where an emulated device keeps the bytes of its zones.
//
// The emulated device owns the zone state machine; a store only holds data
// and, for sequential zones, a length equal to the write pointer offset (the
// zloop rule: a sequential zone file's size is its write pointer). The
// device serialises calls per zone: no two calls for one zone run at once,
// except Read with Read.
#ifndef ZFILE_DEVICE_ZONE_STORE_H_
#define ZFILE_DEVICE_ZONE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/status.h"
#include "device/zone.h"

namespace zfile {

class ZoneStore {
 public:
  virtual ~ZoneStore() = default;

  // Copies `len` bytes at `offset` within the zone; bytes never written read
  // as zeros.
  virtual Status Read(uint32_t zone, uint64_t offset, void* buf, size_t len) = 0;
  virtual Status Write(uint32_t zone, uint64_t offset, const void* buf, size_t len) = 0;
  // Sets a sequential zone's stored length (its write pointer offset):
  // bytes above are dropped, bytes up to it that were never written read as
  // zeros.
  virtual Status SetLength(uint32_t zone, uint64_t len) = 0;
  // Makes completed writes durable.
  virtual Status Flush() = 0;
  // Remembers zones made read-only or offline, and zones open at a clean
  // shutdown (`conditions[z]` is kEmpty for the others). Durable for
  // persistent stores.
  virtual Status SaveConditions(const std::vector<ZoneCondition>& conditions) = 0;
};

}  // namespace zfile

#endif  // ZFILE_DEVICE_ZONE_STORE_H_
