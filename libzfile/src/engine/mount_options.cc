#include "engine/mount_options.h"

#include <cerrno>

#include "base/uri.h"

namespace zfile {

std::string_view ErrorPolicyName(ErrorPolicy policy) {
  switch (policy) {
    case ErrorPolicy::kRemountRo:
      return "remount-ro";
    case ErrorPolicy::kZoneRo:
      return "zone-ro";
    case ErrorPolicy::kZoneOffline:
      return "zone-offline";
    case ErrorPolicy::kRepair:
      return "repair";
  }
  return "?";
}

Result<MountOptions> MountOptions::Parse(std::string_view text) {
  MountOptions o;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view opt = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (opt.empty()) continue;
    auto eq = opt.find('=');
    std::string key(opt.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : std::string(opt.substr(eq + 1));
    const bool has_value = eq != std::string_view::npos;
    auto need_value = [&]() -> Status {
      if (!has_value || value.empty()) {
        return Status(EINVAL, "mount option '" + key + "' needs a value (" + key + "=...)");
      }
      return Status();
    };
    if (key == "errors") {
      ZF_RETURN_IF_ERROR(need_value());
      bool found = false;
      for (auto p : {ErrorPolicy::kRemountRo, ErrorPolicy::kZoneRo, ErrorPolicy::kZoneOffline,
                     ErrorPolicy::kRepair}) {
        if (value == ErrorPolicyName(p)) {
          o.errors = p;
          found = true;
        }
      }
      if (!found) {
        return Status(EINVAL, "bad value '" + value +
                                  "' for mount option errors: expected remount-ro, zone-ro, "
                                  "zone-offline or repair");
      }
    } else if (key == "explicit-open") {
      if (has_value) return Status(EINVAL, "mount option explicit-open takes no value");
      o.explicit_open = true;
    } else if (key == "seq_buffered") {
      ZF_RETURN_IF_ERROR(need_value());
      if (value == "reject") {
        o.seq_buffered_reject = true;
      } else if (value == "writethrough") {
        o.seq_buffered_reject = false;
      } else {
        return Status(EINVAL,
                      "bad value '" + value +
                          "' for mount option seq_buffered: expected writethrough or reject");
      }
    } else if (key == "cache_size" || key == "cache_page_size" || key == "readahead_max") {
      ZF_RETURN_IF_ERROR(need_value());
      ZF_ASSIGN_OR_RETURN(uint64_t v, ParseSize(value, "mount option " + key));
      if (key == "cache_size") {
        o.cache.capacity_bytes = v;
      } else if (key == "cache_page_size") {
        if (v < 4096 || v > (1u << 20) || (v & (v - 1)) != 0) {
          return Status(EINVAL, "cache_page_size must be a power of two from 4K to 1M");
        }
        o.cache.page_size = static_cast<uint32_t>(v);
      } else {
        if (v > (1u << 30)) return Status(EINVAL, "readahead_max is too large (at most 1G)");
        o.cache.readahead_max_bytes = static_cast<uint32_t>(v);
      }
    } else if (key == "writeback_interval_ms" || key == "dirty_limit_percent") {
      ZF_RETURN_IF_ERROR(need_value());
      ZF_ASSIGN_OR_RETURN(uint64_t v, ParseUint(value, "mount option " + key));
      if (key == "dirty_limit_percent") {
        if (v == 0 || v > 100) return Status(EINVAL, "dirty_limit_percent must be 1-100");
        o.cache.dirty_limit_percent = static_cast<uint32_t>(v);
      } else {
        if (v == 0 || v > 3600000) return Status(EINVAL, "writeback_interval_ms must be 1-3600000");
        o.cache.writeback_interval_ms = static_cast<uint32_t>(v);
      }
    } else {
      return Status(EINVAL, "unknown mount option '" + key +
                                "' (known: errors=, explicit-open, seq_buffered=, cache_size=, "
                                "cache_page_size=, writeback_interval_ms=, dirty_limit_percent=, "
                                "readahead_max=)");
    }
  }
  if (o.cache.capacity_bytes < 4ull * o.cache.page_size) {
    return Status(EINVAL, "cache_size must hold at least 4 cache pages");
  }
  return o;
}

std::string MountOptions::ToString() const {
  std::string s = "errors=" + std::string(ErrorPolicyName(errors));
  if (explicit_open) s += ",explicit-open";
  s += seq_buffered_reject ? ",seq_buffered=reject" : ",seq_buffered=writethrough";
  s += ",cache_size=" + std::to_string(cache.capacity_bytes);
  s += ",cache_page_size=" + std::to_string(cache.page_size);
  s += ",writeback_interval_ms=" + std::to_string(cache.writeback_interval_ms);
  s += ",dirty_limit_percent=" + std::to_string(cache.dirty_limit_percent);
  s += ",readahead_max=" + std::to_string(cache.readahead_max_bytes);
  return s;
}

}  // namespace zfile
