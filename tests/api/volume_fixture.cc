#include "volume_fixture.h"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "api/zfile_internal.h"
#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/zoned_device.h"

namespace zfile::testing {

namespace {

constexpr char kDaemonVolume[] = "vol0";

// The errno of zfiled's refusal to start, from its last words on stderr,
// "zfiled: MESSAGE (ENAME: strerror)" (main's Fail, Status::ToString); EIO
// when they name none.
int DaemonStartErrno(const std::string& log) {
  const size_t line = log.rfind("zfiled: ");
  const size_t open = log.rfind(" (E");
  if (line == std::string::npos || open == std::string::npos || open < line) return EIO;
  const size_t colon = log.find(':', open);
  if (colon == std::string::npos) return EIO;
  const std::string name = log.substr(open + 2, colon - open - 2);
  for (int err = 1; err < 200; ++err) {
    if (ErrnoName(err) == name) return err;
  }
  return EIO;
}

}  // namespace

std::vector<VolumeParam> VolumesUnderTest() {
  std::vector<VolumeParam> out = {{"mem", "mem", ""}, {"emu", "emu", ""}};
  // The emu device through zfiled (a mem: device lives in the process that
  // creates it, so the daemon could not see it).
  out.push_back({"emu_daemon", "emu", "", true});
  // A kernel zoned device with the VM tier's null_blk geometry; the suite
  // reformats it.
  if (const char* dev = std::getenv("ZFILE_TEST_ZBD_VOLUME")) {
    std::string name = "zbd_";
    for (const char* c = std::strrchr(dev, '/') ? std::strrchr(dev, '/') + 1 : dev; *c; ++c) {
      name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
    }
    out.push_back({name, "zbd", dev});
    out.push_back({name + "_daemon", "zbd", dev, true});
  }
  return out;
}

uint8_t* AlignedAlloc(size_t len) {
  return static_cast<uint8_t*>(std::aligned_alloc(4096, (len + 4095) / 4096 * 4096 + 4096));
}

std::string VolumeTest::DeviceUri(const std::string& uri_params) const {
  std::string uri;
  std::string params = uri_params;
  if (GetParam().kind == "emu") {
    uri = "emu:" + emu_dir_;
  } else if (GetParam().kind == "zbd") {
    uri = "zbd:" + GetParam().path;
  } else {
    uri = "mem:" + mem_name_;
  }
  return params.empty() ? uri : uri + "?" + params;
}

void VolumeTest::SetUp() {
  static std::atomic<int> counter{0};
  if (GetParam().kind == "emu") {
    char tmpl[] = "/tmp/zfile-api-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    emu_dir_ = tmpl;
    std::filesystem::remove(emu_dir_);
    auto uri = Uri::Parse(std::string("emu:?") + kGeometry);
    ASSERT_TRUE(uri.ok());
    EmulatedGeometry g;
    ASSERT_TRUE(g.ReadFromUri(*uri).ok());
    Status s = CreateEmuDevice(emu_dir_, g);
    ASSERT_TRUE(s.ok()) << s.ToString();
  } else if (GetParam().kind == "zbd") {
    // The device exists; Format below makes it ours.
  } else {
    mem_name_ = "api-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    auto dev = OpenDevice("mem:" + mem_name_ + "?" + kGeometry);  // creates it
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  }
  if (daemon()) {
    char tmpl[] = "/tmp/zfile-api-zfiled-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    daemon_dir_ = tmpl;
  }
  Format(MkfsOptions{});
  if (HasFatalFailure()) return;
  MountOrDie();
}

void VolumeTest::TearDown() {
  Unmount();
  if (!emu_dir_.empty()) std::filesystem::remove_all(emu_dir_);
  if (!daemon_dir_.empty()) std::filesystem::remove_all(daemon_dir_);
}

void VolumeTest::Format(const MkfsOptions& mkfs) {
  Unmount();
  auto dev = OpenDevice(DeviceUri());
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  MkfsOptions o = mkfs;
  o.force = true;
  Status s = Mkfs(dev->get(), o);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

int VolumeTest::Mount(const std::string& options, const std::string& uri_params) {
  Unmount();
  mount_error_.clear();
  if (daemon()) return MountThroughDaemon(options, uri_params);
  int r = zfile_vol_open(DeviceUri(uri_params).c_str(), options.c_str(), &vol_);
  if (r != 0) mount_error_ = zfile_last_error();
  return r;
}

int VolumeTest::MountThroughDaemon(const std::string& options, const std::string& uri_params) {
  const std::string socket = daemon_dir_ + "/zfiled.sock";
  ZfiledProcess::Options o;
  o.args = {"--device", DeviceUri(uri_params), "--name", kDaemonVolume, "--socket",
            socket,     "--foreground"};
  if (!options.empty()) {
    o.args.push_back("--options");
    o.args.push_back(options);
  }
  o.log_path = daemon_log_path();
  const size_t log_start = zfiled_.LogSize();
  Status started = zfiled_.Start(o);
  if (!started.ok()) {
    // zfiled mounts at start: a device or options it refuses keep it from
    // starting, and its last words say why, as zfile_vol_open would.
    const std::string log = zfiled_.Log(log_start);
    mount_error_ = started.message();
    return -DaemonStartErrno(log);
  }
  const std::string uri = "unix:" + socket + "?volume=" + kDaemonVolume;
  int r = zfile_vol_open(uri.c_str(), "", &vol_);
  if (r != 0) {
    mount_error_ = zfile_last_error();
    StopDaemon();
  }
  return r;
}

void VolumeTest::MountOrDie(const std::string& options, const std::string& uri_params) {
  int r = Mount(options, uri_params);
  ASSERT_EQ(r, 0) << MountError();
  ASSERT_NE(vol_, nullptr);
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  nr_seq_files_ = info.nr_seq_files;
}

void VolumeTest::Unmount() {
  for (zfile_file* f : open_files_) zfile_close(f);
  open_files_.clear();
  if (vol_ != nullptr) {
    EXPECT_EQ(zfile_vol_close(vol_), 0) << zfile_last_error();
    vol_ = nullptr;
  }
  StopDaemon();
}

void VolumeTest::StopDaemon() {
  if (zfiled_.pid() <= 0) return;
  const ZfiledProcess::Exit exit = zfiled_.Stop();
  std::string log = zfiled_.Log();
  if (log.size() > 6000) log = "...\n" + log.substr(log.size() - 6000);
  if (daemon_may_fail_) {
    // Its unmount may fail (the device lost power), but it must still
    // stop by itself, saying so through its exit status.
    EXPECT_TRUE(exit.exited && !exit.timed_out) << "zfiled " << exit.ToString() << "; its log:\n"
                                                << log;
  } else {
    // Unmounting writes back and closes zones: a failure there is the
    // daemon's to report, through its exit status.
    EXPECT_TRUE(exit.clean()) << "zfiled " << exit.ToString() << "; its log:\n" << log;
  }
  daemon_may_fail_ = false;
}

std::string VolumeTest::MountFault(IoOp op, uint64_t offset) const {
  if (!daemon()) return "";
  return (op == IoOp::kRead ? "fail_read=" : "fail_write=") + std::to_string(offset);
}

void VolumeTest::ArmFault(IoOp op, uint64_t offset) {
  if (daemon()) return;  // armed by MountFault's parameter as zfiled opened the device
  ASSERT_NE(vol_, nullptr);
  InternalVolume(vol_)->device()->faults()->FailNextIo(op, offset);
}

zfile_file* VolumeTest::Open(const char* path, int flags) {
  zfile_file* f = nullptr;
  int r = zfile_open(vol_, path, flags, &f);
  EXPECT_EQ(r, 0) << path << ": " << zfile_last_error();
  if (f != nullptr) open_files_.push_back(f);
  return f;
}

std::string VolumeTest::StatsJson() {
  char buf[4096];
  int n = zfile_vol_stats(vol_, buf, sizeof(buf));
  EXPECT_GT(n, 0) << zfile_last_error();
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

uint64_t VolumeTest::Stat(const std::string& json, const std::string& key) {
  auto pos = json.find("\"" + key + "\":");
  EXPECT_NE(pos, std::string::npos) << key << " not in " << json;
  if (pos == std::string::npos) return 0;
  return std::strtoull(json.c_str() + pos + key.size() + 3, nullptr, 10);
}

ssize_t VolumeTest::WritePattern(zfile_file* f, uint64_t off, size_t len, uint32_t seed, int rwf) {
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(AlignedAlloc(len), &std::free);
  FillPattern(buf.get(), len, off, seed);
  return zfile_pwrite2(f, buf.get(), len, off, rwf);
}

ssize_t VolumeTest::ExpectPattern(zfile_file* f, uint64_t off, size_t len, uint32_t seed, int rwf) {
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(AlignedAlloc(len), &std::free);
  ssize_t n = zfile_pread2(f, buf.get(), len, off, rwf);
  EXPECT_GE(n, 0) << zfile_last_error();
  if (n > 0) {
    EXPECT_EQ(CheckPattern(buf.get(), static_cast<size_t>(n), off, seed), -1) << "at " << off;
  }
  return n;
}

}  // namespace zfile::testing
