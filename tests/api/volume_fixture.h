// A formatted volume for API tests, on each backend under test. The suites
// talk to it only through the C API (zfile.h), so that the same tests run
// embedded and as clients of zfiled.
//
// Daemon mode (params *_daemon): every Mount() starts a real zfiled on the
// device, with the mount options and device URI parameters the test asks
// for, and opens the volume as its client (unix:SOCKET?volume=NAME);
// Unmount() closes the volume and stops the daemon with SIGTERM, which must
// exit 0. Format() and whatever a test does to the device between mounts
// therefore run with no daemon holding it.
#ifndef ZFILE_TESTS_API_VOLUME_FIXTURE_H_
#define ZFILE_TESTS_API_VOLUME_FIXTURE_H_

#include <fcntl.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "device/zoned_device.h"
#include "device_test_util.h"  // FillPattern, CheckPattern
#include "format/mkfs.h"
#include "zfile/zfile.h"
#include "zfiled_process.h"  // tests/util

namespace zfile::testing {

struct VolumeParam {
  std::string name;     // gtest name
  std::string kind;     // "mem" (named mem: device), "emu", or "zbd"
  std::string path;     // zbd: the kernel device
  bool daemon = false;  // through a zfiled of the test's own
};
inline void PrintTo(const VolumeParam& p, std::ostream* os) { *os << p.name; }

std::vector<VolumeParam> VolumesUnderTest();

// Geometry of null_blk in the VM tier (there 1 GiB; here 256 MiB): 8 MiB
// zones of 6 MiB capacity, zones 0-3 conventional (zone 0 holds the
// superblock), 4096-byte blocks, max open 6, max active 8. Files: cnv/0-2,
// seq/0-27 here (seq/0-123 on the VM's null_blk, ZFILE_TEST_ZBD_VOLUME).
inline constexpr const char* kGeometry =
    "size=256M&zone_size=8M&zone_capacity=6M&conv=4&block_size=4096&max_open=6&max_active=8";
inline constexpr uint64_t kZoneSize = 8ull << 20;
inline constexpr uint64_t kZoneCap = 6ull << 20;
inline constexpr uint32_t kBlock = 4096;
inline constexpr uint32_t kNrCnvFiles = 3;
inline constexpr uint32_t kFirstSeqZone = 4;

class VolumeTest : public ::testing::TestWithParam<VolumeParam> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Formats the device (again) with `mkfs` options.
  void Format(const MkfsOptions& mkfs);
  // (Re)mounts with mount options and URI parameters (fault injection).
  int Mount(const std::string& options = "", const std::string& uri_params = "");
  void MountOrDie(const std::string& options = "", const std::string& uri_params = "");
  void Unmount();
  std::string DeviceUri(const std::string& uri_params = "") const;

  zfile_file* Open(const char* path, int flags);
  std::string StatsJson();
  uint64_t Stat(const std::string& json, const std::string& key);
  // Writes `len` pattern bytes (seed) at `off`; returns the call's result.
  ssize_t WritePattern(zfile_file* f, uint64_t off, size_t len, uint32_t seed, int rwf = 0);
  // Reads and checks; returns the number of bytes read.
  ssize_t ExpectPattern(zfile_file* f, uint64_t off, size_t len, uint32_t seed, int rwf = 0);

  bool has_faults() const { return GetParam().kind != "zbd"; }
  bool daemon() const { return GetParam().daemon; }

  // Why the last Mount() failed: zfile_last_error() of the open, or in
  // daemon mode what zfiled said when it refused to start.
  const std::string& MountError() const { return mount_error_; }

  // The emulated device's "next I/O fails" fault, in both modes: pass
  // MountFault() as Mount's URI parameters and call ArmFault() where the
  // embedded test arms it. Embedded, ArmFault arms it on the mounted
  // volume's device at once; in daemon mode the test cannot reach zfiled's
  // device, so the URI parameter arms it as zfiled opens the device (the
  // same I/O fails as long as nothing in between touches that block).
  std::string MountFault(IoOp op, uint64_t offset) const;
  void ArmFault(IoOp op, uint64_t offset);

  // zfiled's log in daemon mode (what the library logs happens there), or "".
  std::string daemon_log_path() const { return daemon() ? daemon_dir_ + "/zfiled.log" : ""; }
  // The next stop of zfiled may exit non-zero (its device lost power); it
  // must still exit by itself rather than crash or hang.
  void AllowDaemonFailure() { daemon_may_fail_ = true; }

  uint32_t nr_seq_files_ = 0;  // from the mounted volume
  std::string emu_dir_;
  std::string mem_name_;
  zfile_vol* vol_ = nullptr;
  std::vector<zfile_file*> open_files_;

 private:
  int MountThroughDaemon(const std::string& options, const std::string& uri_params);
  void StopDaemon();

  std::string mount_error_;
  std::string daemon_dir_;  // socket and log
  ZfiledProcess zfiled_;
  bool daemon_may_fail_ = false;
};

// 4096-aligned buffer, freed with std::free.
uint8_t* AlignedAlloc(size_t len);
using Buf = std::unique_ptr<uint8_t, decltype(&std::free)>;
inline Buf MakeBuf(size_t len) { return Buf(AlignedAlloc(len), &std::free); }

inline struct zfile_stat StatOf(zfile_vol* vol, const char* path) {
  struct zfile_stat st {};
  EXPECT_EQ(zfile_stat(vol, path, &st), 0) << path << ": " << zfile_last_error();
  return st;
}

}  // namespace zfile::testing

#endif  // ZFILE_TESTS_API_VOLUME_FIXTURE_H_
