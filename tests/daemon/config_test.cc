// zfiled's configuration: the example in config/zfiled.yaml parses to what
// its comments say, defaults apply when keys are left out, and every kind of
// bad input is refused with EINVAL and "FILE:LINE:COLUMN:" pointing at the
// culprit (the positions below are 1-based, as printed).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "daemon/config.h"

namespace zfile::daemon {
namespace {

const std::string kExample = std::string(ZFILE_SOURCE_DIR) + "/config/zfiled.yaml";
constexpr char kSource[] = "test.yaml";

// A volume list that is valid on its own, for cases about other sections.
constexpr char kVolumes[] =
    "volumes:\n"
    "  - name: a\n"
    "    device: emu:/var/lib/zfiled/a\n";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "zfiled_config_XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigExample, ParsesToWhatItsCommentsSay) {
  Result<DaemonConfig> config = LoadConfig(kExample);
  ASSERT_TRUE(config.ok()) << config.status().ToString();

  EXPECT_EQ(config->socket.path, "/run/zfiled/zfiled.sock");
  EXPECT_EQ(config->socket.mode, 0660u);
  ASSERT_TRUE(config->socket.group.has_value());
  EXPECT_EQ(*config->socket.group, "disk");
  EXPECT_EQ(config->log_level, LogLevel::kInfo);

  EXPECT_EQ(config->cache.capacity_bytes, 256ull << 20);
  EXPECT_EQ(config->cache.page_size, 64u << 10);
  EXPECT_EQ(config->cache.writeback_interval_ms, 5000u);
  EXPECT_EQ(config->cache.dirty_limit_percent, 20u);
  EXPECT_EQ(config->cache.readahead_max_bytes, 1u << 20);

  ASSERT_EQ(config->volumes.size(), 2u);
  const VolumeConfig& data = config->volumes[0];
  EXPECT_EQ(data.name, "data");
  EXPECT_EQ(data.device, "emu:/var/lib/zfiled/dev0");
  EXPECT_EQ(data.options, "errors=zone-ro,explicit-open");
  EXPECT_EQ(data.mount_options.errors, ErrorPolicy::kZoneRo);
  EXPECT_TRUE(data.mount_options.explicit_open);
  EXPECT_EQ(data.mount_options.cache.capacity_bytes, 256ull << 20);
  // The example leaves its mount key commented out until the FUSE mount
  // exists (zfiled refuses one); the parser's mount handling is tested below.
  EXPECT_FALSE(data.mount.has_value());

  const VolumeConfig& smr = config->volumes[1];
  EXPECT_EQ(smr.name, "smr");
  EXPECT_EQ(smr.device, "zbd:/dev/nullb0");
  EXPECT_EQ(smr.mount_options.errors, ErrorPolicy::kRemountRo);
  EXPECT_FALSE(smr.mount_options.explicit_open);
  // Its own cache_size wins over the cache section; the rest is inherited.
  EXPECT_EQ(smr.mount_options.cache.capacity_bytes, 64ull << 20);
  EXPECT_EQ(smr.mount_options.cache.page_size, 64u << 10);
  EXPECT_FALSE(smr.mount.has_value());
}

// The example shows every key with its default (except where it says
// otherwise), so leaving a key out must give the value the example shows.
TEST(ConfigExample, DefaultsMatchTheExample) {
  Result<DaemonConfig> example = LoadConfig(kExample);
  ASSERT_TRUE(example.ok()) << example.status().ToString();
  Result<DaemonConfig> config = ParseConfig(kVolumes, kSource);
  ASSERT_TRUE(config.ok()) << config.status().ToString();

  EXPECT_EQ(config->socket.path, example->socket.path);
  EXPECT_EQ(config->socket.mode, example->socket.mode);
  EXPECT_FALSE(config->socket.group.has_value());  // the example sets one
  EXPECT_EQ(config->log_level, example->log_level);
  EXPECT_EQ(config->cache.capacity_bytes, example->cache.capacity_bytes);
  EXPECT_EQ(config->cache.page_size, example->cache.page_size);
  EXPECT_EQ(config->cache.writeback_interval_ms, example->cache.writeback_interval_ms);
  EXPECT_EQ(config->cache.dirty_limit_percent, example->cache.dirty_limit_percent);
  EXPECT_EQ(config->cache.readahead_max_bytes, example->cache.readahead_max_bytes);
  // And the engine's own defaults, which the daemon must not change.
  const CacheOptions engine;
  EXPECT_EQ(config->cache.capacity_bytes, engine.capacity_bytes);
  EXPECT_EQ(config->cache.page_size, engine.page_size);

  ASSERT_EQ(config->volumes.size(), 1u);
  EXPECT_EQ(config->volumes[0].options, "");
  EXPECT_EQ(config->volumes[0].mount_options.errors, ErrorPolicy::kRemountRo);
  EXPECT_FALSE(config->volumes[0].mount.has_value());
}

TEST(ConfigExample, EveryPrefixParsesOrFailsWithAPosition) {
  // Cutting the example anywhere gives valid YAML, a syntax error, or a
  // schema error; none may throw, and every error must carry a position.
  const std::string text = ReadFile(kExample);
  ASSERT_FALSE(text.empty());
  for (size_t len = 0; len <= text.size(); ++len) {
    Result<DaemonConfig> config = ParseConfig(std::string_view(text).substr(0, len), kSource);
    if (config.ok()) continue;
    ASSERT_EQ(config.status().err(), EINVAL) << len << ": " << config.status().ToString();
    const std::string msg = config.status().message();
    size_t line = 0, column = 0;
    char sep = 0;
    ASSERT_EQ(std::sscanf(msg.c_str(), "test.yaml:%zu:%zu%c", &line, &column, &sep), 3)
        << len << ": " << msg;
    EXPECT_EQ(sep, ':') << msg;
    EXPECT_GE(line, 1u) << msg;
    EXPECT_GE(column, 1u) << msg;
  }
}

TEST(Config, SocketModeIsOctalHoweverItIsWritten) {
  for (const char* mode : {"\"0660\"", "0660", "660", "0o660", "'660'"}) {
    Result<DaemonConfig> config =
        ParseConfig(std::string("socket:\n  mode: ") + mode + "\n" + kVolumes, kSource);
    ASSERT_TRUE(config.ok()) << mode << ": " << config.status().ToString();
    EXPECT_EQ(config->socket.mode, 0660u) << mode;
  }
  Result<DaemonConfig> config =
      ParseConfig(std::string("socket:\n  mode: 0\n") + kVolumes, kSource);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->socket.mode, 0u);
}

TEST(Config, EmptyOptionalValuesMeanUnset) {
  Result<DaemonConfig> config = ParseConfig(
      "socket:\n"
      "  group:\n"
      "cache:\n"
      "volumes:\n"
      "  - name: a\n"
      "    device: emu:/d\n"
      "    options:\n"
      "    mount: ~\n",
      kSource);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->socket.group.has_value());
  EXPECT_EQ(config->volumes[0].options, "");
  EXPECT_FALSE(config->volumes[0].mount.has_value());
}

TEST(Config, FlowStyleQuotedNumbersAndNormalisedMountPoints) {
  Result<DaemonConfig> config = ParseConfig(
      "log_level: debug\n"
      "cache: {size: 8M, page_size: 4K, writeback_interval_ms: '100', dirty_limit_percent: 50, "
      "readahead_max: 0}\n"
      "volumes: [{name: v.1, device: 'zbd:/dev/nullb0', mount: /mnt/a/../b/}]\n",
      kSource);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->log_level, LogLevel::kDebug);
  EXPECT_EQ(config->cache.capacity_bytes, 8u << 20);
  EXPECT_EQ(config->cache.page_size, 4096u);
  EXPECT_EQ(config->cache.writeback_interval_ms, 100u);
  EXPECT_EQ(config->cache.dirty_limit_percent, 50u);
  EXPECT_EQ(config->cache.readahead_max_bytes, 0u);
  EXPECT_EQ(config->volumes[0].mount_options.cache.page_size, 4096u);
  EXPECT_EQ(*config->volumes[0].mount, "/mnt/b");
}

TEST(Config, CacheSizeAndPageSizeAreCheckedTogetherInAnyOrder) {
  // 16K holds four 4K pages, but not four of the default 64K: the page size
  // counts whether it comes before or after the size.
  for (const char* cache :
       {"cache:\n  size: 16K\n  page_size: 4K\n", "cache:\n  page_size: 4K\n  size: 16K\n"}) {
    Result<DaemonConfig> config = ParseConfig(std::string(cache) + kVolumes, kSource);
    ASSERT_TRUE(config.ok()) << cache << config.status().ToString();
    EXPECT_EQ(config->cache.capacity_bytes, 16u << 10);
  }
  // And the section may follow the volumes that inherit it.
  Result<DaemonConfig> config =
      ParseConfig(std::string(kVolumes) + "cache:\n  readahead_max: 64K\n", kSource);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->volumes[0].mount_options.cache.readahead_max_bytes, 64u << 10);
}

TEST(Config, UnnamedMemDevicesNeverClash) {
  // Each open of "mem:?..." is a new device, so two volumes may say the same.
  Result<DaemonConfig> config = ParseConfig(
      "volumes:\n"
      "  - {name: a, device: 'mem:?size=1G&zone_size=64M'}\n"
      "  - {name: b, device: 'mem:?size=1G&zone_size=64M'}\n",
      kSource);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->volumes.size(), 2u);
}

TEST(Config, LogLevelNamesRoundTrip) {
  for (LogLevel level : {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn,
                         LogLevel::kError, LogLevel::kCritical, LogLevel::kOff}) {
    Result<LogLevel> parsed = ParseLogLevel(LogLevelName(level));
    ASSERT_TRUE(parsed.ok()) << LogLevelName(level);
    EXPECT_EQ(*parsed, level);
  }
  Result<LogLevel> bad = ParseLogLevel("warning");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().err(), EINVAL);
  EXPECT_NE(bad.status().message().find("trace, debug, info, warn, error, critical or off"),
            std::string::npos)
      << bad.status().message();
}

// One bad input: the text, where the error must point, and words the
// message must contain (the key at fault, and what was expected).
struct BadCase {
  const char* name;
  std::string text;
  const char* where;  // "LINE:COLUMN"
  std::vector<std::string> words;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadConfig : public testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, IsRefusedWithItsPosition) {
  const BadCase& c = GetParam();
  Result<DaemonConfig> config = ParseConfig(c.text, kSource);
  ASSERT_FALSE(config.ok()) << c.text;
  EXPECT_EQ(config.status().err(), EINVAL);
  const std::string msg = config.status().message();
  EXPECT_EQ(msg.rfind(std::string(kSource) + ":" + c.where + ": ", 0), 0u) << msg;
  for (const std::string& word : c.words) {
    EXPECT_NE(msg.find(word), std::string::npos) << "'" << word << "' not in: " << msg;
  }
}

const std::string V = kVolumes;

INSTANTIATE_TEST_SUITE_P(
    Config, BadConfig,
    testing::Values(
        // --- the top level
        BadCase{"UnknownTopLevelKey",
                V + "sockets:\n  path: /run/x.sock\n",
                "4:1",
                {"unknown key 'sockets'", "expected one of: socket, log_level, cache, volumes"}},
        BadCase{"TopLevelIsAList",
                "- volumes\n",
                "1:1",
                {"the configuration must be a mapping", "a list"}},
        BadCase{"EmptyFile", "", "1:1", {"empty", "volumes"}},
        BadCase{"OnlyComments", "# nothing here\n", "1:1", {"empty"}},
        BadCase{"NoVolumes", "log_level: info\n", "1:1", {"no 'volumes'"}},
        BadCase{"DuplicateTopLevelKey",
                V + "log_level: info\nlog_level: debug\n",
                "5:1",
                {"duplicate key 'log_level'", "line 4"}},
        BadCase{"SecondDocument", V + "---\nlog_level: info\n", "5:1", {"second YAML document"}},
        BadCase{"SyntaxErrorMapValueInAScalar",
                "log_level: info\n  volumes: x\n",
                "2:10",
                {"YAML syntax error"}},
        BadCase{"SyntaxErrorBadIndentation",
                "volumes:\n  - name: a\n   device: emu:/d\n",
                "3:4",
                {"YAML syntax error"}},
        BadCase{"SyntaxErrorUnknownAlias",
                V + "log_level: *level\n",
                "4:12",
                {"YAML syntax error", "anchor"}},
        BadCase{"NonScalarKey", V + "[a, b]: c\n", "4:1", {"a key in the configuration", "a list"}},
        // --- socket
        BadCase{"SocketIsAList",
                "socket: [/run/a.sock]\n" + V,
                "1:9",
                {"socket must be a mapping", "not a list"}},
        BadCase{"UnknownSocketKey",
                "socket:\n  owner: root\n" + V,
                "2:3",
                {"unknown key 'owner' in socket", "path, mode, group"}},
        BadCase{"RelativeSocketPath",
                "socket:\n  path: zfiled.sock\n" + V,
                "2:9",
                {"socket.path", "absolute path"}},
        BadCase{"SocketPathTooLong",
                "socket:\n  path: /" + std::string(107, 's') + "\n" + V,
                "2:9",
                {"socket.path", "at most 107"}},
        BadCase{"SocketPathIsAMapping",
                "socket:\n  path: {a: b}\n" + V,
                "2:9",
                {"socket.path must be an absolute path", "a mapping"}},
        BadCase{"BadModeDigit",
                "socket:\n  mode: \"0668\"\n" + V,
                "2:9",
                {"socket.mode '0668'", "octal mode"}},
        BadCase{"ModeTooLarge",
                "socket:\n  mode: 04660\n" + V,
                "2:9",
                {"socket.mode '04660'", "0 to 0777"}},
        BadCase{"ModeInWords", "socket:\n  mode: rw-rw----\n" + V, "2:9", {"socket.mode"}},
        BadCase{"BadGroup",
                "socket:\n  group: \"wheel group\"\n" + V,
                "2:10",
                {"socket.group 'wheel group'", "group name"}},
        // --- log_level
        BadCase{"BadLogLevel",
                "log_level: loud\n" + V,
                "1:12",
                {"log_level", "'loud'", "trace, debug, info, warn, error, critical or off"}},
        BadCase{"LogLevelIsAList",
                "log_level: [info]\n" + V,
                "1:12",
                {"log_level must be one of", "a list"}},
        // --- cache
        BadCase{"StringWhereIntExpected",
                "cache:\n  writeback_interval_ms: soon\n" + V,
                "2:26",
                {"cache.writeback_interval_ms", "'soon'", "non-negative integer"}},
        BadCase{
            "BadSizeSuffix", "cache:\n  size: 10X\n" + V, "2:9", {"cache.size", "'10X'", "256M"}},
        BadCase{"NegativeSize",
                "cache:\n  readahead_max: -1\n" + V,
                "2:18",
                {"cache.readahead_max", "'-1'"}},
        BadCase{"PageSizeNotAPowerOfTwo",
                "cache:\n  page_size: 3000\n" + V,
                "2:14",
                {"cache.page_size", "power of two"}},
        BadCase{"DirtyLimitOutOfRange",
                "cache:\n  dirty_limit_percent: 101\n" + V,
                "2:24",
                {"cache.dirty_limit_percent", "1-100"}},
        BadCase{"WritebackIntervalZero",
                "cache:\n  writeback_interval_ms: 0\n" + V,
                "2:26",
                {"cache.writeback_interval_ms", "1-3600000"}},
        BadCase{"CacheSmallerThanFourPages",
                "cache:\n  size: 128K\n  page_size: 64K\n" + V,
                "2:9",
                {"cache.size", "at least 4 cache pages"}},
        BadCase{"OptionSmuggledInASize",
                "cache:\n  size: \"64M,errors=repair\"\n" + V,
                "2:9",
                {"cache.size"}},
        BadCase{"UnknownCacheKey",
                "cache:\n  capacity: 1G\n" + V,
                "2:3",
                {"unknown key 'capacity' in cache", "size, page_size"}},
        BadCase{"CacheIsAScalar", "cache: 1G\n" + V, "1:8", {"cache must be a mapping"}},
        // --- volumes
        BadCase{"VolumesIsAMapping",
                "volumes:\n  name: a\n",
                "2:3",
                {"volumes must be a list", "a mapping"}},
        BadCase{"VolumesIsEmpty", "volumes: []\n", "1:10", {"volumes is empty", "at least one"}},
        BadCase{"VolumeIsAScalar",
                "volumes:\n  - emu:/d\n",
                "2:5",
                {"volumes[0] must be a mapping", "a scalar"}},
        BadCase{"UnknownVolumeKey",
                "volumes:\n  - name: a\n    devcie: emu:/d\n",
                "3:5",
                {"unknown key 'devcie' in volumes[0]", "name, device, options, mount"}},
        BadCase{"MissingDevice",
                "volumes:\n  - name: a\n    options: explicit-open\n",
                "2:5",
                {"volumes[0]", "no 'device'"}},
        BadCase{
            "MissingName", "volumes:\n  - device: emu:/d\n", "2:5", {"volumes[0]", "no 'name'"}},
        BadCase{"EmptyDevice",
                "volumes:\n  - name: a\n    device:\n",
                "3:5",
                {"volumes[0].device must be a device URI", "null"}},
        BadCase{"BadVolumeName",
                "volumes:\n  - name: my/vol\n    device: emu:/d\n",
                "2:11",
                {"volumes[0].name 'my/vol'"}},
        BadCase{"DotDotVolumeName",
                "volumes:\n  - name: ..\n    device: emu:/d\n",
                "2:11",
                {"volumes[0].name '..'"}},
        BadCase{"DuplicateVolumeName",
                "volumes:\n  - name: a\n    device: emu:/d1\n  - name: a\n    device: emu:/d2\n",
                "4:11",
                {"duplicate volume name 'a'", "volumes[1]", "volumes[0] at line 2"}},
        BadCase{"DuplicateDevice",
                "volumes:\n  - name: a\n    device: emu:/d1\n  - name: b\n    device: emu:/d1/\n",
                "5:13",
                {"duplicate device 'emu:/d1/'", "volumes[1]", "volumes[0] at line 2"}},
        BadCase{"DuplicateNamedMemDevice",
                "volumes:\n  - {name: a, device: 'mem:x?size=1G&zone_size=64M'}\n"
                "  - {name: b, device: 'mem:x?size=2G&zone_size=64M'}\n",
                "3:23",
                {"duplicate device"}},
        BadCase{"DuplicateMountPoint",
                "volumes:\n  - {name: a, device: emu:/d1, mount: /mnt/z}\n"
                "  - {name: b, device: emu:/d2, mount: /mnt/z/}\n",
                "3:39",
                {"duplicate mount point '/mnt/z'"}},
        BadCase{"DuplicateVolumeKey",
                "volumes:\n  - name: a\n    device: emu:/d1\n    device: emu:/d2\n",
                "4:5",
                {"duplicate key 'device' in volumes[0]", "line 3"}},
        BadCase{"DeviceNotAUri",
                "volumes:\n  - name: a\n    device: /dev/nullb0\n",
                "3:13",
                {"volumes[0].device", "SCHEME:PATH"}},
        BadCase{"UnknownScheme",
                "volumes:\n  - name: a\n    device: nvme:/dev/nvme0n1\n",
                "3:13",
                {"volumes[0].device", "unknown scheme 'nvme'", "mem:, emu: or zbd:"}},
        BadCase{"RelativeEmuPath",
                "volumes:\n  - name: a\n    device: emu:dev0\n",
                "3:13",
                {"volumes[0].device", "absolute path"}},
        BadCase{"BadMountOption",
                "volumes:\n  - name: a\n    device: emu:/d\n    options: errors=bogus\n",
                "4:14",
                {"volumes[0].options", "errors", "remount-ro, zone-ro"}},
        BadCase{"UnknownMountOption",
                "volumes:\n  - name: a\n    device: emu:/d\n    options: errors=zone-ro,noatime\n",
                "4:14",
                {"volumes[0].options", "unknown mount option 'noatime'"}},
        BadCase{"OptionsAsAList",
                "volumes:\n  - name: a\n    device: emu:/d\n    options: [explicit-open]\n",
                "4:14",
                {"volumes[0].options must be a mount-option string", "a list"}},
        BadCase{"VolumeOptionsAgainstTheCacheSection",
                "cache:\n  size: 1M\nvolumes:\n  - name: a\n    device: emu:/d\n"
                "    options: cache_page_size=1M\n",
                "6:14",
                {"volumes[0].options", "at least 4 cache pages"}},
        BadCase{"RelativeMountPath",
                "volumes:\n  - name: a\n    device: emu:/d\n    mount: mnt/a\n",
                "4:12",
                {"volumes[0].mount 'mnt/a'", "absolute path"}},
        BadCase{"MountAtRoot",
                "volumes:\n  - name: a\n    device: emu:/d\n    mount: /.//\n",
                "4:12",
                {"volumes[0].mount", "cannot be /"}}),
    [](const testing::TestParamInfo<BadCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(LoadConfig, MissingFileIsENOENTNamingThePath) {
  TempDir dir;
  const std::string path = dir.path() + "/nonexistent.yaml";
  Result<DaemonConfig> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().err(), ENOENT);
  EXPECT_NE(config.status().message().find(path), std::string::npos) << config.status().message();
}

TEST(LoadConfig, DirectoryIsEISDIR) {
  TempDir dir;
  Result<DaemonConfig> config = LoadConfig(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().err(), EISDIR);
  EXPECT_NE(config.status().message().find(dir.path()), std::string::npos);
}

TEST(LoadConfig, HugeFileIsEFBIG) {
  TempDir dir;
  const std::string path = dir.path() + "/huge.yaml";
  {
    std::ofstream out(path);
    out << kVolumes;
    const std::string comment = "# " + std::string(1022, 'x') + "\n";
    for (int i = 0; i < 1024; ++i) out << comment;
  }
  Result<DaemonConfig> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().err(), EFBIG);
  EXPECT_NE(config.status().message().find(path), std::string::npos);
}

TEST(LoadConfig, ErrorsNameTheFile) {
  TempDir dir;
  const std::string path = dir.path() + "/bad.yaml";
  {
    std::ofstream out(path);
    out << kVolumes << "log_level: loud\n";
  }
  Result<DaemonConfig> config = LoadConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().err(), EINVAL);
  EXPECT_EQ(config.status().message().rfind(path + ":4:12: ", 0), 0u) << config.status().message();
}

}  // namespace
}  // namespace zfile::daemon
