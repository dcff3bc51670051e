// Per-volume counters (SPEC section 7), updated lock-free.
#ifndef ZFILE_ENGINE_VOLUME_STATS_H_
#define ZFILE_ENGINE_VOLUME_STATS_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace zfile {

struct VolumeStats {
  std::atomic<uint64_t> buffered_read_bytes{0}, buffered_read_ops{0};
  std::atomic<uint64_t> direct_read_bytes{0}, direct_read_ops{0};
  std::atomic<uint64_t> buffered_write_bytes{0}, buffered_write_ops{0};
  std::atomic<uint64_t> direct_write_bytes{0}, direct_write_ops{0};
  std::atomic<uint64_t> writethrough_writes{0};
  std::atomic<uint64_t> dio_fallbacks{0};
  std::atomic<uint64_t> zone_resets{0}, zone_finishes{0}, zone_opens{0}, zone_closes{0};
  std::atomic<uint64_t> errors{0};
  // File data moved to and from the device (cache fills, write-back,
  // write-through, direct I/O).
  std::atomic<uint64_t> device_read_bytes{0}, device_write_bytes{0};
};

}  // namespace zfile

#endif  // ZFILE_ENGINE_VOLUME_STATS_H_
