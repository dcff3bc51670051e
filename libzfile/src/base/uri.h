// Device URIs: "scheme:path?key=value&key=value".
//
// Examples: "mem:?size=1G&zone_size=64M", "emu:/var/lib/zfile/dev0",
// "zbd:/dev/nullb0". Parsing only splits and validates the syntax; each
// backend decides which keys it accepts and rejects the others.
#ifndef ZFILE_BASE_URI_H_
#define ZFILE_BASE_URI_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "base/status.h"

namespace zfile {

struct Uri {
  std::string scheme;
  std::string path;
  std::map<std::string, std::string> params;

  static Result<Uri> Parse(std::string_view text);

  // Fails (EINVAL) naming the first key that is not in `known`.
  Status CheckKeys(const std::set<std::string>& known) const;

  // Reads an optional size ("64M", "1G", "4096", "4k"); `*out` is unchanged
  // when the key is absent.
  Status GetSize(const std::string& key, uint64_t* out) const;
  Status GetUint(const std::string& key, uint64_t* out) const;
};

// "64M" -> 67108864. Suffixes K, M, G, T (binary, case-insensitive, optional
// trailing "iB"/"B"). EINVAL with a message naming `what` on bad input.
Result<uint64_t> ParseSize(std::string_view text, std::string_view what);
Result<uint64_t> ParseUint(std::string_view text, std::string_view what);

}  // namespace zfile

#endif  // ZFILE_BASE_URI_H_
