// zfiled's configuration: the YAML file (/etc/zfiled/zfiled.yaml) and what it
// holds once checked.
//
// The schema (config/zfiled.yaml is the commented example):
//
//   socket:                       # optional
//     path: /run/zfiled/zfiled.sock
//     mode: "0660"                # octal digits, as chmod reads them
//     group: zfile                # optional; the socket's group
//   log_level: info               # trace|debug|info|warn|error|critical|off
//   cache:                        # optional; defaults for every volume
//     size: 256M
//     page_size: 64K
//     writeback_interval_ms: 5000
//     dirty_limit_percent: 20
//     readahead_max: 1M
//   volumes:                      # required, at least one
//     - name: data                # [A-Za-z0-9_.-]+, unique
//       device: emu:/var/lib/zfiled/dev0   # unique
//       options: errors=zone-ro   # optional, zonefs mount options
//       mount: /mnt/zfile/data    # optional FUSE mount point
//
// Parsing is strict: an unknown key, a value of the wrong type or out of
// range, a duplicate, or a missing required key fails the whole file with
// EINVAL and "FILE:LINE:COLUMN: what was wrong (what was expected)". A
// daemon that half-understands its configuration is worse than one that
// refuses to start, because the operator finds out only when it matters.
//
// Nothing here touches the devices, the socket or the group database: a
// configuration can be checked on another machine (or fuzzed). Whether the
// device exists, the group resolves, or the mount point is a directory is
// for the daemon to find out when it starts.
#ifndef ZFILE_DAEMON_CONFIG_H_
#define ZFILE_DAEMON_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cache/page_cache.h"
#include "engine/mount_options.h"

namespace zfile::daemon {

// spdlog's levels, by spdlog's names, so that the config does not depend on
// spdlog and the daemon maps them one to one.
enum class LogLevel : uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kCritical, kOff };

// "trace", "debug", ...
std::string_view LogLevelName(LogLevel level);

// The inverse of LogLevelName (exact, lower case). EINVAL naming the
// accepted levels otherwise. For --log-level and the like; the YAML parser
// uses it too.
Result<LogLevel> ParseLogLevel(std::string_view text);

struct SocketConfig {
  // Absolute, and short enough for sockaddr_un (at most 107 bytes).
  std::string path = "/run/zfiled/zfiled.sock";
  // Permission bits of the socket, 0 to 0777. Connecting needs write
  // permission, so 0660 admits the owner (root) and `group`.
  uint32_t mode = 0660;
  // The socket's group (a name or a numeric gid); unset keeps root's group.
  std::optional<std::string> group;
};

struct VolumeConfig {
  // [A-Za-z0-9_.-]+, not "." or "..", at most 64 bytes: clients name the
  // volume ("zfiled:NAME") and the daemon may use it in paths.
  std::string name;
  // A device URI (emu:/DIR, zbd:/dev/NODE, mem:[NAME]?...). Its syntax and
  // scheme are checked here; whether the device opens is not.
  std::string device;
  // The mount-option string as written in the file ("" when absent).
  std::string options;
  // What the volume is mounted with: the `cache` section's values, then
  // `options` on top (an option in `options` wins for this volume).
  MountOptions mount_options;
  // Absolute path of the FUSE mount point, lexically normalised, without a
  // trailing slash. Unset: no FUSE mount, clients only.
  std::optional<std::string> mount;
};

struct DaemonConfig {
  SocketConfig socket;
  LogLevel log_level = LogLevel::kInfo;
  // The page-cache settings every volume starts from. Each volume has a
  // page cache of its own (the engine's design), so the memory the daemon
  // may use for caching is about size times the number of volumes.
  CacheOptions cache;
  // At least one; names, devices and mount points unique.
  std::vector<VolumeConfig> volumes;
};

// Parses `yaml_text`. `source_name` starts every error message (normally the
// file's path). Never throws; all errors are EINVAL (ENOMEM if memory runs
// out).
Result<DaemonConfig> ParseConfig(std::string_view yaml_text, const std::string& source_name);

// Reads the file at `path` and parses it. A file that cannot be read gives
// its errno (ENOENT, EACCES, EISDIR, ...) and a message naming `path`; one
// larger than 1 MiB gives EFBIG (no sane configuration is that long, and a
// wrong --config such as a device node must not be read to its end).
Result<DaemonConfig> LoadConfig(const std::string& path);

}  // namespace zfile::daemon

#endif  // ZFILE_DAEMON_CONFIG_H_
