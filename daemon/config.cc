#include "daemon/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <new>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "base/uri.h"

namespace zfile::daemon {

namespace {

constexpr size_t kMaxConfigBytes = 1u << 20;
// sizeof(sockaddr_un::sun_path) is 108 and the path needs its NUL.
constexpr size_t kMaxSocketPath = 107;
constexpr size_t kMaxVolumeName = 64;
constexpr size_t kMaxGroupName = 32;

constexpr std::array<std::string_view, 7> kLogLevelNames = {"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};

// "a mapping", "a list", ...: what a node is, in the words of the messages.
std::string_view Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "empty (null)";
    case YAML::NodeType::Undefined:
      break;
  }
  return "undefined";
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

// Lexically normal, absolute, without a trailing slash ("/a/b/" -> "/a/b").
std::string NormalPath(const std::string& path) {
  std::string s = std::filesystem::path(path).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// "SOURCE:LINE:COLUMN: what", as EINVAL. A null mark (line and column -1)
// is the start of the text (an empty document) as far as a reader is
// concerned.
Status ErrorAt(const std::string& source, const YAML::Mark& mark, const std::string& what) {
  const int line = mark.is_null() ? 1 : mark.line + 1;
  const int column = mark.is_null() ? 1 : mark.column + 1;
  return Status(EINVAL,
                source + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + what);
}

// A value in the file and the position of its key. An empty value (null)
// has no position worth showing (yaml-cpp gives that of the next token,
// often on a later line), so errors about one point at its key.
struct Value {
  YAML::Node node;
  YAML::Mark key;

  YAML::Mark mark() const { return node.IsNull() ? key : node.Mark(); }
};

// Turns YAML nodes into a DaemonConfig, checking as it goes. Every failure
// is an EINVAL Status whose message starts with "SOURCE:LINE:COLUMN: ".
//
// yaml-cpp's Node has reference semantics with a twist: assigning one Node
// to another rebinds the shared node itself. Nodes are therefore only ever
// copy-constructed here, never assigned (nor sorted, nor kept in containers
// that assign).
class Parser {
 public:
  explicit Parser(const std::string& source) : source_(source) {}

  Result<DaemonConfig> Parse(std::string_view text);

 private:
  // Called for each key of a mapping with the key's text and its value.
  using KeyFn = std::function<Status(const std::string& key, const Value& value)>;

  // A volume and where its keys were, for messages on duplicates.
  struct ParsedVolume {
    VolumeConfig config;
    YAML::Mark name;
    YAML::Mark device;
    YAML::Mark mount;
  };

  Status Error(const YAML::Mark& mark, const std::string& what) const {
    return ErrorAt(source_, mark, what);
  }
  Status Error(const Value& value, const std::string& what) const {
    return Error(value.mark(), what);
  }

  // Checks that `map` (named `where` in messages) is a mapping of plain
  // string keys from `known`, each at most once, and calls `fn` for each
  // key in the file's order.
  Status ForEachKey(const Value& map, const std::string& where,
                    std::initializer_list<std::string_view> known, const KeyFn& fn) const;

  // `value` must be a non-empty scalar; `what` says what was expected
  // ("a device URI such as ...").
  Result<std::string> Scalar(const Value& value, const std::string& where,
                             std::string_view what) const;

  Status ParseSocket(const Value& value, SocketConfig* out) const;
  Status ParseCache(const Value& value);
  Status ParseVolumes(const Value& value, std::vector<VolumeConfig>* out) const;
  Result<ParsedVolume> ParseVolume(const Value& value, const std::string& where) const;

  // MountOptions::Parse of the cache section followed by `options`.
  Result<MountOptions> WithCache(const std::string& options) const {
    return MountOptions::Parse(cache_options_ + (cache_options_.empty() ? "" : ",") + options);
  }

  const std::string& source_;
  // The `cache` section as mount options ("cache_page_size=65536,..."):
  // every volume's options are parsed after it, so that they override it.
  std::string cache_options_;
};

Status Parser::ForEachKey(const Value& map, const std::string& where,
                          std::initializer_list<std::string_view> known, const KeyFn& fn) const {
  if (!map.node.IsMap()) {
    return Error(map, where + " must be a mapping, not " + std::string(Describe(map.node)));
  }
  std::map<std::string, YAML::Mark> seen;
  for (const auto& kv : map.node) {
    const YAML::Node& key = kv.first;
    if (!key.IsScalar()) {
      return Error(key.Mark(), "a key in " + where + " is " + std::string(Describe(key)) +
                                   " (expected a plain name)");
    }
    const std::string name = key.Scalar();
    bool is_known = false;
    std::string expected;
    for (std::string_view k : known) {
      if (k == name) is_known = true;
      expected += expected.empty() ? "" : ", ";
      expected += k;
    }
    if (!is_known) {
      return Error(key.Mark(), "unknown key '" + name + "' in " + where +
                                   " (expected one of: " + expected + ")");
    }
    // yaml-cpp keeps both copies of a repeated key and lookups see the
    // first; the file's author meant one of them, so neither is taken.
    auto [it, inserted] = seen.emplace(name, key.Mark());
    if (!inserted) {
      return Error(key.Mark(), "duplicate key '" + name + "' in " + where +
                                   " (first given at line " + std::to_string(it->second.line + 1) +
                                   ")");
    }
    ZF_RETURN_IF_ERROR(fn(name, Value{kv.second, key.Mark()}));
  }
  return Status();
}

Result<std::string> Parser::Scalar(const Value& value, const std::string& where,
                                   std::string_view what) const {
  if (!value.node.IsScalar()) {
    return Error(value, where + " must be " + std::string(what) + ", not " +
                            std::string(Describe(value.node)));
  }
  if (value.node.Scalar().empty()) {
    return Error(value, where + " is empty (expected " + std::string(what) + ")");
  }
  return value.node.Scalar();
}

Status Parser::ParseSocket(const Value& section, SocketConfig* out) const {
  return ForEachKey(
      section, "socket", {"path", "mode", "group"},
      [&](const std::string& key, const Value& value) -> Status {
        const std::string where = "socket." + key;
        if (key == "path") {
          ZF_ASSIGN_OR_RETURN(std::string path,
                              Scalar(value, where, "an absolute path for the Unix socket"));
          if (path.front() != '/' || path.back() == '/') {
            return Error(value, "bad " + where + " '" + path +
                                    "': expected an absolute path to a file, such as "
                                    "/run/zfiled/zfiled.sock");
          }
          if (path.size() > kMaxSocketPath) {
            return Error(value, where + " is " + std::to_string(path.size()) +
                                    " bytes long; a Unix socket path holds at most " +
                                    std::to_string(kMaxSocketPath));
          }
          out->path = path;
        } else if (key == "mode") {
          // The digits are read as octal whatever their YAML spelling: plain
          // 0660 is octal in YAML 1.1 but decimal 660 in YAML 1.2, and chmod
          // users mean 0660 either way. "0o660" (YAML 1.2's octal) is
          // accepted too.
          const std::string_view what = "an octal mode such as \"0660\"";
          ZF_ASSIGN_OR_RETURN(std::string text, Scalar(value, where, what));
          std::string_view digits = text;
          if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O')) {
            digits.remove_prefix(2);
          }
          uint32_t mode = 0;
          bool good = !digits.empty() && digits.size() <= 4;
          for (char c : digits) {
            if (c < '0' || c > '7') good = false;
            if (good) mode = mode * 8 + static_cast<uint32_t>(c - '0');
          }
          if (!good || mode > 0777) {
            return Error(value, "bad " + where + " '" + text + "': expected " + std::string(what) +
                                    ", from 0 to 0777");
          }
          out->mode = mode;
        } else {                                     // group
          if (value.node.IsNull()) return Status();  // "group:" alone: root's group
          ZF_ASSIGN_OR_RETURN(std::string group,
                              Scalar(value, where, "a group name or a numeric gid"));
          bool good = group.size() <= kMaxGroupName && group.front() != '-';
          for (size_t i = 0; i < group.size(); ++i) {
            // Samba machine accounts end in '$'; nothing else may.
            if (!IsNameChar(group[i]) && !(group[i] == '$' && i + 1 == group.size())) {
              good = false;
            }
          }
          if (!good) {
            return Error(value, "bad " + where + " '" + group +
                                    "': expected a group name or a numeric gid (letters, digits, "
                                    "'_', '.', '-', at most " +
                                    std::to_string(kMaxGroupName) + " bytes)");
          }
          out->group = group;
        }
        return Status();
      });
}

Status Parser::ParseCache(const Value& section) {
  // Each value is checked for its syntax here, then handed to the mount-
  // option parser as a plain number, so that the ranges are the engine's
  // and a value such as "64K,errors=repair" cannot smuggle in an option.
  struct Item {
    std::string key;     // YAML key
    std::string option;  // mount option
    std::string value;   // decimal
    std::string text;    // as written
    YAML::Mark mark;
  };
  std::vector<Item> items;
  ZF_RETURN_IF_ERROR(ForEachKey(
      section, "cache",
      {"size", "page_size", "writeback_interval_ms", "dirty_limit_percent", "readahead_max"},
      [&](const std::string& key, const Value& value) -> Status {
        const std::string where = "cache." + key;
        const bool is_size = key == "size" || key == "page_size" || key == "readahead_max";
        ZF_ASSIGN_OR_RETURN(
            std::string text,
            Scalar(value, where,
                   is_size ? "a size such as 4096, 64K, 256M or 1G" : "a non-negative integer"));
        Result<uint64_t> v = is_size ? ParseSize(text, where) : ParseUint(text, where);
        if (!v.ok()) return Error(value, v.status().message());
        std::string option = key == "size"        ? "cache_size"
                             : key == "page_size" ? "cache_page_size"
                                                  : key;
        items.push_back({key, option, std::to_string(*v), text, value.mark()});
        return Status();
      }));
  // The engine requires the cache to hold at least four pages. The page
  // size goes first and the cache size last, so that a failure that only
  // the pair explains is reported at the size, whatever the file's order.
  auto rank = [](const Item& i) { return i.key == "page_size" ? 0 : i.key == "size" ? 2 : 1; };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Item& a, const Item& b) { return rank(a) < rank(b); });
  for (const Item& item : items) {
    std::string next =
        cache_options_ + (cache_options_.empty() ? "" : ",") + item.option + "=" + item.value;
    Result<MountOptions> parsed = MountOptions::Parse(next);
    if (!parsed.ok()) {
      return Error(item.mark,
                   "bad cache." + item.key + " '" + item.text + "': " + parsed.status().message());
    }
    cache_options_ = std::move(next);
  }
  return Status();
}

Result<Parser::ParsedVolume> Parser::ParseVolume(const Value& entry,
                                                 const std::string& where) const {
  ParsedVolume parsed;
  VolumeConfig& vol = parsed.config;
  bool has_name = false;
  bool has_device = false;
  ZF_RETURN_IF_ERROR(ForEachKey(
      entry, where, {"name", "device", "options", "mount"},
      [&](const std::string& key, const Value& value) -> Status {
        const std::string here = where + "." + key;
        if (key == "name") {
          const std::string_view what = "a volume name of letters, digits, '_', '.' and '-'";
          ZF_ASSIGN_OR_RETURN(vol.name, Scalar(value, here, what));
          bool good = vol.name.size() <= kMaxVolumeName && vol.name != "." && vol.name != "..";
          for (char c : vol.name) good = good && IsNameChar(c);
          if (!good) {
            return Error(value, "bad " + here + " '" + vol.name + "': expected " +
                                    std::string(what) + ", at most " +
                                    std::to_string(kMaxVolumeName) + " bytes, not . or ..");
          }
          has_name = true;
          parsed.name = value.mark();
        } else if (key == "device") {
          ZF_ASSIGN_OR_RETURN(
              vol.device,
              Scalar(value, here,
                     "a device URI such as emu:/var/lib/zfiled/dev0 or zbd:/dev/nullb0"));
          Result<Uri> uri = Uri::Parse(vol.device);
          if (!uri.ok()) return Error(value, "bad " + here + ": " + uri.status().message());
          if (uri->scheme != "mem" && uri->scheme != "emu" && uri->scheme != "zbd") {
            return Error(value, "bad " + here + " '" + vol.device + "': unknown scheme '" +
                                    uri->scheme + "' (expected mem:, emu: or zbd:)");
          }
          // The daemon runs with / as its working directory, so a relative
          // path would not name what its author had in mind.
          if (uri->scheme != "mem" && (uri->path.empty() || uri->path.front() != '/')) {
            return Error(
                value, "bad " + here + " '" + vol.device + "': " + uri->scheme +
                           ": needs an absolute path, such as " +
                           (uri->scheme == "emu" ? "emu:/var/lib/zfiled/dev0" : "zbd:/dev/nullb0"));
          }
          has_device = true;
          parsed.device = value.mark();
        } else if (key == "options") {
          if (value.node.IsNull()) return Status();  // "options:" alone: none
          if (!value.node.IsScalar()) {
            return Error(value, here +
                                    " must be a mount-option string such as "
                                    "\"errors=zone-ro,explicit-open\", not " +
                                    std::string(Describe(value.node)));
          }
          vol.options = value.node.Scalar();
          // After the cache section, so that the volume's own cache_*
          // options win.
          Result<MountOptions> options = WithCache(vol.options);
          if (!options.ok()) {
            return Error(value,
                         "bad " + here + " '" + vol.options + "': " + options.status().message());
          }
        } else {                                     // mount
          if (value.node.IsNull()) return Status();  // "mount:" alone: no FUSE mount
          ZF_ASSIGN_OR_RETURN(std::string mount,
                              Scalar(value, here, "an absolute path for the FUSE mount point"));
          if (mount.front() != '/') {
            return Error(value, "bad " + here + " '" + mount +
                                    "': expected an absolute path, such as /mnt/zfile/" +
                                    (has_name ? vol.name : std::string("data")));
          }
          mount = NormalPath(mount);
          if (mount == "/") {
            return Error(value, "bad " + here + " '" + value.node.Scalar() +
                                    "': the FUSE mount point cannot be /");
          }
          vol.mount = mount;
          parsed.mount = value.mark();
        }
        return Status();
      }));
  if (!has_name) {
    return Error(entry, where + " has no 'name' (expected a volume name, such as name: data)");
  }
  if (!has_device) {
    return Error(entry, where + " (" + vol.name +
                            ") has no 'device' (expected a device URI, such as device: "
                            "emu:/var/lib/zfiled/dev0)");
  }
  // The same string passed above, or is the cache section alone, which
  // passed in ParseCache: this does not fail.
  Result<MountOptions> options = WithCache(vol.options);
  if (!options.ok()) return Error(entry, where + ": " + options.status().message());
  vol.mount_options = *options;
  return parsed;
}

Status Parser::ParseVolumes(const Value& list, std::vector<VolumeConfig>* out) const {
  if (!list.node.IsSequence()) {
    return Error(list, "volumes must be a list of volumes (- name: ...), not " +
                           std::string(Describe(list.node)));
  }
  if (list.node.size() == 0) {
    return Error(list, "volumes is empty (expected at least one volume)");
  }
  // The volume that first gave each name, device and mount point (an index
  // into `out`), and where each volume starts, for messages on duplicates.
  std::map<std::string, size_t> names, devices, mounts;
  std::vector<int> lines;
  auto first = [&](size_t i) {
    return "volumes[" + std::to_string(i) + "] at line " + std::to_string(lines[i]);
  };
  for (const YAML::Node& item : list.node) {
    const size_t i = out->size();
    const std::string where = "volumes[" + std::to_string(i) + "]";
    lines.push_back(item.Mark().line + 1);
    // An empty entry ("-" alone) has no better place than its list's.
    ZF_ASSIGN_OR_RETURN(ParsedVolume parsed, ParseVolume(Value{item, list.key}, where));
    VolumeConfig& vol = parsed.config;
    if (auto [it, ok] = names.emplace(vol.name, i); !ok) {
      return Error(parsed.name, "duplicate volume name '" + vol.name + "' in " + where +
                                    " (already used by " + first(it->second) + ")");
    }
    // Two volumes on one device would each believe they own its zones.
    // Unnamed mem: devices are new at every open, so they never clash; the
    // query part does not change which device is meant.
    Result<Uri> uri = Uri::Parse(vol.device);  // parsed before: cannot fail
    if (uri.ok() && (uri->scheme != "mem" || !uri->path.empty())) {
      const std::string id =
          uri->scheme + ":" + (uri->scheme == "mem" ? uri->path : NormalPath(uri->path));
      if (auto [it, ok] = devices.emplace(id, i); !ok) {
        return Error(parsed.device, "duplicate device '" + vol.device + "' in " + where +
                                        " (already used by " + first(it->second) +
                                        "; a device belongs to one volume)");
      }
    }
    if (vol.mount) {
      if (auto [it, ok] = mounts.emplace(*vol.mount, i); !ok) {
        return Error(parsed.mount, "duplicate mount point '" + *vol.mount + "' in " + where +
                                       " (already used by " + first(it->second) + ")");
      }
    }
    out->push_back(std::move(vol));
  }
  return Status();
}

Result<DaemonConfig> Parser::Parse(std::string_view text) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error(e.mark, "YAML syntax error: " + e.msg);
  }
  if (docs.size() > 1) {
    return Error(docs[1].Mark(),
                 "a second YAML document (expected one document: the configuration)");
  }
  if (docs.empty() || docs[0].IsNull()) {
    return Error(YAML::Mark::null_mark(),
                 "the configuration is empty (expected a mapping with at least 'volumes')");
  }
  const Value root{docs[0], docs[0].Mark()};
  // The sections are read in a fixed order whatever their order in the
  // file: the volumes' options are parsed on top of the cache section.
  std::map<std::string, Value> sections;
  ZF_RETURN_IF_ERROR(ForEachKey(root, "the configuration",
                                {"socket", "log_level", "cache", "volumes"},
                                [&](const std::string& key, const Value& value) -> Status {
                                  sections.emplace(key, value);
                                  return Status();
                                }));
  DaemonConfig config;
  // An empty "socket:" or "cache:" keeps the defaults.
  if (auto it = sections.find("socket"); it != sections.end() && !it->second.node.IsNull()) {
    ZF_RETURN_IF_ERROR(ParseSocket(it->second, &config.socket));
  }
  if (auto it = sections.find("log_level"); it != sections.end()) {
    std::string levels;
    for (std::string_view l : kLogLevelNames) {
      levels += (levels.empty() ? "" : ", ") + std::string(l);
    }
    ZF_ASSIGN_OR_RETURN(std::string level, Scalar(it->second, "log_level", "one of " + levels));
    Result<LogLevel> parsed = ParseLogLevel(level);
    if (!parsed.ok()) return Error(it->second, "bad log_level: " + parsed.status().message());
    config.log_level = *parsed;
  }
  if (auto it = sections.find("cache"); it != sections.end() && !it->second.node.IsNull()) {
    ZF_RETURN_IF_ERROR(ParseCache(it->second));
  }
  auto volumes = sections.find("volumes");
  if (volumes == sections.end()) {
    return Error(root,
                 "the configuration has no 'volumes' (expected a list of volumes, such as "
                 "volumes: [{name: data, device: emu:/var/lib/zfiled/dev0}])");
  }
  ZF_RETURN_IF_ERROR(ParseVolumes(volumes->second, &config.volumes));
  // Passed in ParseCache: this does not fail.
  Result<MountOptions> cache = MountOptions::Parse(cache_options_);
  if (!cache.ok()) return Error(root, "cache: " + cache.status().message());
  config.cache = cache->cache;
  return config;
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  const auto i = static_cast<size_t>(level);
  return i < kLogLevelNames.size() ? kLogLevelNames[i] : "?";
}

Result<LogLevel> ParseLogLevel(std::string_view text) {
  std::string levels;
  for (size_t i = 0; i < kLogLevelNames.size(); ++i) {
    if (text == kLogLevelNames[i]) return static_cast<LogLevel>(i);
    levels += (i == 0 ? "" : i + 1 == kLogLevelNames.size() ? " or " : ", ");
    levels += kLogLevelNames[i];
  }
  return Status(EINVAL, "unknown log level '" + std::string(text) + "': expected " + levels);
}

Result<DaemonConfig> ParseConfig(std::string_view yaml_text, const std::string& source_name) {
  // yaml-cpp reports errors by throwing, and any of its calls may (bad
  // conversions, deep recursion, allocation): none may escape.
  try {
    Parser parser(source_name);
    return parser.Parse(yaml_text);
  } catch (const YAML::Exception& e) {
    return ErrorAt(source_name, e.mark, e.msg);
  } catch (const std::bad_alloc&) {
    return Status(ENOMEM, source_name + ": out of memory parsing the configuration");
  } catch (const std::exception& e) {
    return Status(EINVAL, source_name + ": " + e.what());
  }
}

Result<DaemonConfig> LoadConfig(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open configuration " + path);
  std::string text;
  Status status;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoStatus(errno, "cannot read configuration " + path);
      break;
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > kMaxConfigBytes) {
      status =
          Status(EFBIG, "configuration " + path + " is larger than " +
                            std::to_string(kMaxConfigBytes >> 20) + " MiB: is it the right file?");
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (!status.ok()) return status;
  return ParseConfig(text, path);
}

}  // namespace zfile::daemon
