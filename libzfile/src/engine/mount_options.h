// Mount options, in zonefs's syntax: "errors=zone-ro,explicit-open".
#ifndef ZFILE_ENGINE_MOUNT_OPTIONS_H_
#define ZFILE_ENGINE_MOUNT_OPTIONS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "cache/page_cache.h"

namespace zfile {

// What happens to a file (and the volume) after an I/O error, as the zonefs
// documentation's table defines it.
enum class ErrorPolicy : uint8_t { kRemountRo, kZoneRo, kZoneOffline, kRepair };

struct MountOptions {
  ErrorPolicy errors = ErrorPolicy::kRemountRo;
  // The first writer of a sequential file opens its zone explicitly; beyond
  // the device's open limit open(O_WRONLY) fails with EBUSY.
  bool explicit_open = false;
  // zfile extension: buffered writes to sequential files are written
  // through; "reject" gives zonefs's EIO.
  bool seq_buffered_reject = false;
  CacheOptions cache;

  // Options: errors=remount-ro|zone-ro|zone-offline|repair, explicit-open,
  // seq_buffered=writethrough|reject, cache_size=SIZE, cache_page_size=SIZE,
  // writeback_interval_ms=N, dirty_limit_percent=N, readahead_max=SIZE.
  // Unknown options and bad values: EINVAL naming the option.
  static Result<MountOptions> Parse(std::string_view text);

  std::string ToString() const;
};

std::string_view ErrorPolicyName(ErrorPolicy policy);

}  // namespace zfile

#endif  // ZFILE_ENGINE_MOUNT_OPTIONS_H_
