// Geometry of an emulated zoned device (mem: and emu: backends), with the
// same parameters as null_blk zoned: size, zone size and capacity,
// conventional zone count, logical block size, open/active limits.
#ifndef ZFILE_DEVICE_EMULATED_GEOMETRY_H_
#define ZFILE_DEVICE_EMULATED_GEOMETRY_H_

#include <cstdint>
#include <string>

#include "base/status.h"
#include "base/uri.h"

namespace zfile {

struct EmulatedGeometry {
  uint64_t size = 1ull << 30;        // bytes, a multiple of zone_size
  uint64_t zone_size = 64ull << 20;  // bytes
  uint64_t zone_capacity = 0;        // bytes; 0 means zone_size
  uint32_t nr_conv_zones = 0;
  uint32_t block_size = 4096;  // 512 or 4096
  uint32_t max_open = 0;       // 0: no limit
  uint32_t max_active = 0;     // 0: no limit

  uint32_t nr_zones() const { return static_cast<uint32_t>(size / zone_size); }
  uint64_t capacity_of_seq_zone() const { return zone_capacity ? zone_capacity : zone_size; }

  // EINVAL with a message naming the parameter that does not fit.
  Status Validate() const;

  // Reads size, zone_size, zone_capacity, conv, block_size, max_open,
  // max_active from URI parameters (those present override the defaults).
  Status ReadFromUri(const Uri& uri);

  // "key=value" lines, the format of the emu: geometry file.
  std::string Serialize() const;
  static Result<EmulatedGeometry> Parse(const std::string& text, const std::string& source);
};

}  // namespace zfile

#endif  // ZFILE_DEVICE_EMULATED_GEOMETRY_H_
