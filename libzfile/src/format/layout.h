// The files of a zonefs volume, derived from the zone report as the kernel
// derives them at mount (SPEC section 4).
//
// Zone 0 holds the superblock and backs no file, whatever its type. Every
// other sequential zone (required or preferred) is one file of seq/.
// Conventional zones are one file each in cnv/, or, with aggr_cnv, each run
// of contiguous conventional zones is one file. Files are numbered 0, 1, ...
// in zone order within their directory; a directory with no file does not
// exist.
#ifndef ZFILE_FORMAT_LAYOUT_H_
#define ZFILE_FORMAT_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "device/zone.h"

namespace zfile {

struct ZoneFile {
  ZoneType type = ZoneType::kConventional;  // kConventional or the sequential zone's type
  uint32_t first_zone = 0;
  uint32_t nr_zones = 1;  // > 1 only for aggregated conventional files
  uint64_t start = 0;     // first byte on the device
  uint64_t zone_len = 0;  // bytes of device the file spans (sum of zone sizes)
  uint64_t capacity = 0;  // maximum file size (sum of zone capacities)

  bool sequential() const { return type != ZoneType::kConventional; }
};

struct VolumeLayout {
  std::vector<ZoneFile> cnv;  // cnv/0, cnv/1, ...
  std::vector<ZoneFile> seq;  // seq/0, seq/1, ...
};

// Builds the layout from a report of every zone of the device, zone 0 first.
// Fails like the kernel's mount: EINVAL for an empty report, for zones that
// are not contiguous, for a zone larger than `zone_size` without aggr_cnv, or
// for an aggregated conventional file whose capacity is not its size.
Result<VolumeLayout> BuildLayout(const std::vector<ZoneInfo>& zones, uint64_t zone_size,
                                 bool aggr_cnv);

}  // namespace zfile

#endif  // ZFILE_FORMAT_LAYOUT_H_
