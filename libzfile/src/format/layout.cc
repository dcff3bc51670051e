#include "format/layout.h"

#include <cerrno>
#include <string>

namespace zfile {

Result<VolumeLayout> BuildLayout(const std::vector<ZoneInfo>& zones, uint64_t zone_size,
                                 bool aggr_cnv) {
  if (zones.empty()) return Status(EINVAL, "the zone report is empty: no zone 0 for a superblock");
  for (size_t i = 1; i < zones.size(); ++i) {
    if (zones[i].start != zones[i - 1].start + zones[i - 1].len) {
      return Status(EINVAL, "invalid zone report: zone " + std::to_string(i) + " starts at byte " +
                                std::to_string(zones[i].start) + ", not where zone " +
                                std::to_string(i - 1) + " ends");
    }
    if (zones[i].len > zone_size) {
      return Status(EINVAL, "invalid zone size: zone " + std::to_string(i) + " is " +
                                std::to_string(zones[i].len) + " bytes, the device's zone size " +
                                std::to_string(zone_size));
    }
  }

  VolumeLayout layout;
  // Zone 0 is the superblock's, never a file's: start at 1.
  for (uint32_t i = 1; i < zones.size(); ++i) {
    const ZoneInfo& z = zones[i];
    ZoneFile f;
    f.type = z.type;
    f.first_zone = i;
    f.start = z.start;
    f.zone_len = z.len;
    f.capacity = z.capacity;
    if (z.sequential()) {
      layout.seq.push_back(f);
      continue;
    }
    if (aggr_cnv) {
      while (i + 1 < zones.size() && !zones[i + 1].sequential()) {
        ++i;
        ++f.nr_zones;
        f.zone_len += zones[i].len;
        f.capacity += zones[i].capacity;
      }
      // Conventional zones are fully writable; a file with a hole of
      // unwritable bytes in the middle could not be addressed linearly.
      if (f.capacity != f.zone_len) {
        return Status(EINVAL, "invalid conventional zone capacity in zones " +
                                  std::to_string(f.first_zone) + "-" + std::to_string(i) +
                                  ": aggregated conventional zones must be fully writable");
      }
    }
    layout.cnv.push_back(f);
  }
  return layout;
}

}  // namespace zfile
