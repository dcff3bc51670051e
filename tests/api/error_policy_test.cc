// Errors: read-only and offline zones at mount, the errors= policies after
// an I/O error (zonefs documentation's table), a write pointer moved behind
// the file system's back, and crashes (power cut at random points).
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "api/zfile_internal.h"
#include "device/zoned_device.h"
#include "volume_fixture.h"

namespace zfile::testing {
namespace {

uint64_t SeqZoneStart(int file) { return (kFirstSeqZone + file) * kZoneSize; }

#define SKIP_WITHOUT_FAULTS()                                                                 \
  if (!has_faults())                                                                          \
  GTEST_SKIP() << "no fault injection for this kernel device (set ZFILE_TEST_NULLB_CONFIGFS " \
                  "to the configfs directory of a null_blk device)"

// The configfs directory of the null_blk device under test, when the suite
// runs on one (the VM tier makes it): its zone_readonly, zone_offline and
// badblocks attributes are null_blk's own fault injection.
std::string NullBlkConfigfs() {
  const char* dir = std::getenv("ZFILE_TEST_NULLB_CONFIGFS");
  return dir == nullptr ? "" : dir;
}

// null_blk lists the configfs attributes it has in nullb/features
// (zone_readonly and zone_offline came with later 6.1 stable kernels).
bool NullBlkHasFeature(const std::string& name) {
  const std::string dir = NullBlkConfigfs();
  FILE* f = std::fopen((dir.substr(0, dir.rfind('/')) + "/features").c_str(), "r");
  if (f == nullptr) return false;
  char buf[4096] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  const std::string features(buf, n);
  for (size_t pos = features.find(name); pos != std::string::npos;
       pos = features.find(name, pos + 1)) {
    const bool start = pos == 0 || features[pos - 1] == ',' || features[pos - 1] == ' ';
    const size_t end = pos + name.size();
    const bool stop = end == features.size() || features[end] == ',' || features[end] == '\n';
    if (start && stop) return true;
  }
  return false;
}

Status WriteAttribute(const std::string& path, const std::string& value) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return ErrnoStatus(errno, "open " + path);
  const bool ok = std::fputs(value.c_str(), f) >= 0;
  const bool closed = std::fclose(f) == 0;  // configfs reports errors at close
  if (!ok || !closed) return ErrnoStatus(errno, "write '" + value + "' to " + path);
  return Status();
}

class ErrorPolicy : public VolumeTest {
 protected:
  bool nullblk() const { return GetParam().kind == "zbd" && !NullBlkConfigfs().empty(); }
  // Faults this suite can inject: the emulated backends' FaultInjector, or
  // null_blk's configfs attributes.
  bool has_faults() const { return GetParam().kind != "zbd" || nullblk(); }

  // Zones can be made read-only or offline: always on the emulated
  // backends, on null_blk when its kernel has the attributes.
  bool has_zone_faults() const {
    return !nullblk() ? has_faults()
                      : NullBlkHasFeature("zone_readonly") && NullBlkHasFeature("zone_offline");
  }

  // Takes a sequential zone out of service, with or without a volume
  // mounted. null_blk cannot bring it back: tests use distinct zones.
  void SetZoneCondition(uint32_t zone, ZoneCondition cond) {
    if (nullblk()) {
      const std::string attr = cond == ZoneCondition::kOffline ? "/zone_offline" : "/zone_readonly";
      Status s = WriteAttribute(NullBlkConfigfs() + attr, std::to_string(zone * kZoneSize / 512));
      ASSERT_TRUE(s.ok()) << s.ToString();
      return;
    }
    if (vol_ != nullptr) {
      Status s = InternalVolume(vol_)->device()->faults()->SetZoneCondition(zone, cond);
      ASSERT_TRUE(s.ok()) << s.ToString();
      return;
    }
    auto dev = OpenDevice(DeviceUri());
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    Status s = (*dev)->faults()->SetZoneCondition(zone, cond);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Device URI parameters for the mount before ArmIoFault(op, offset): in
  // daemon mode on an emulated device, the fault is armed as zfiled opens
  // the device (VolumeTest::MountFault); null_blk's faults are the
  // kernel's, reachable from here in both modes.
  std::string IoFaultAtMount(IoOp op, uint64_t offset) const {
    return nullblk() ? "" : MountFault(op, offset);
  }

  // The next I/O of `op` at the block holding `offset` fails with EIO (on
  // null_blk: every I/O there, until ClearIoFault).
  void ArmIoFault(IoOp op, uint64_t offset) {
    if (nullblk()) {
      const uint64_t sector = offset / 512;
      Status s = WriteAttribute(
          NullBlkConfigfs() + "/badblocks",
          "+" + std::to_string(sector) + "-" + std::to_string(sector + kBlock / 512 - 1));
      ASSERT_TRUE(s.ok()) << s.ToString();
      return;
    }
    ArmFault(op, offset);
  }
  void ClearIoFault(uint64_t offset) {
    if (!nullblk()) return;  // the emulated fault fired once and is gone
    const uint64_t sector = offset / 512;
    Status s = WriteAttribute(
        NullBlkConfigfs() + "/badblocks",
        "-" + std::to_string(sector) + "-" + std::to_string(sector + kBlock / 512 - 1));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
};

// Records what the volume tells its FileChangeObserver (the FUSE mount's
// hook), while it lives.
class ChangeRecorder final : public FileChangeObserver {
 public:
  explicit ChangeRecorder(Volume* vol) : vol_(vol) { vol_->SetChangeObserver(this); }
  ~ChangeRecorder() override { vol_->SetChangeObserver(nullptr); }
  void FileChanged(FileInode* inode, uint64_t offset, uint64_t len) override {
    std::lock_guard lock(mu_);
    calls_.push_back(inode->path() + (len == 0 ? " whole file"
                                               : " " + std::to_string(len) + " bytes at " +
                                                     std::to_string(offset)));
  }
  std::vector<std::string> Calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  Volume* const vol_;
  std::mutex mu_;
  std::vector<std::string> calls_;
};

// On null_blk, zone_readonly and zone_offline last as long as the device,
// and both params of a test (embedded, then _daemon) run on the same one:
// the daemon param takes other zones, the embedded one's being spent.
std::string SeqFile(int file) { return "seq/" + std::to_string(file); }

TEST_P(ErrorPolicy, OfflineAndReadOnlyZonesAtMount) {
  SKIP_WITHOUT_FAULTS();
  if (!has_zone_faults()) {
    GTEST_SKIP() << "this kernel's null_blk has no zone_readonly/zone_offline attributes";
  }
  const int base = daemon() ? 5 : 1;  // seq/1-3, or seq/5-7 for the daemon
  zfile_file* f = Open(SeqFile(base + 1).c_str(), O_WRONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, 2 * kBlock, 3), ssize_t(2 * kBlock));
  Unmount();
  SetZoneCondition(kFirstSeqZone + base, ZoneCondition::kOffline);
  SetZoneCondition(kFirstSeqZone + base + 1, ZoneCondition::kReadOnly);
  MountOrDie();
  struct zfile_stat off = StatOf(vol_, SeqFile(base).c_str());
  EXPECT_EQ(off.size, 0u);
  EXPECT_EQ(off.mode, S_IFREG | 0u);
  EXPECT_EQ(off.cond, ZFILE_COND_OFFLINE);
  zfile_file* o = Open(SeqFile(base).c_str(), O_RDWR);
  auto buf = MakeBuf(kBlock);
  EXPECT_EQ(zfile_pread(o, buf.get(), kBlock, 0), -EPERM);
  EXPECT_EQ(zfile_pwrite(o, buf.get(), kBlock, 0), -EPERM);
  EXPECT_NE(std::string(zfile_last_error()).find("offline"), std::string::npos);
  // A read-only zone's write pointer is not valid: as zonefs does at
  // mount, the file is empty (and stays readable, and unwritable).
  struct zfile_stat ro = StatOf(vol_, SeqFile(base + 1).c_str());
  EXPECT_EQ(ro.size, 0u);
  EXPECT_EQ(ro.mode, S_IFREG | 0440u);
  EXPECT_EQ(ro.cond, ZFILE_COND_READONLY);
  zfile_file* r = Open(SeqFile(base + 1).c_str(), O_RDWR | O_DIRECT);
  EXPECT_EQ(ExpectPattern(r, 0, 2 * kBlock, 3), 0);
  EXPECT_EQ(WritePattern(r, 2 * kBlock, kBlock, 3), -EPERM);
  EXPECT_EQ(zfile_ftruncate(r, 0), -EPERM);
  // The rest of the volume is untouched.
  EXPECT_EQ(WritePattern(Open(SeqFile(base + 2).c_str(), O_WRONLY | O_DIRECT), 0, kBlock, 3),
            ssize_t(kBlock));
}

TEST_P(ErrorPolicy, ZonesGoingReadOnlyOrOfflineWhileMounted) {
  SKIP_WITHOUT_FAULTS();
  if (daemon() && !nullblk()) {
    GTEST_SKIP() << "changes zones under the mounted volume through its device's in-process "
                    "FaultInjector; zfiled's device is out of reach";
  }
  if (!has_zone_faults()) {
    GTEST_SKIP() << "this kernel's null_blk has no zone_readonly/zone_offline attributes";
  }
  const int base = daemon() ? 25 : 22;  // seq/22-24, or seq/25-27 for the daemon
  zfile_file* a = Open(SeqFile(base).c_str(), O_RDWR | O_DIRECT);
  zfile_file* b = Open(SeqFile(base + 1).c_str(), O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(a, 0, 2 * kBlock, 8), ssize_t(2 * kBlock));
  ASSERT_EQ(WritePattern(b, 0, 2 * kBlock, 8), ssize_t(2 * kBlock));
  // Embedded only: zfiled's volume is in another process.
  std::optional<ChangeRecorder> changes;
  if (!daemon()) changes.emplace(InternalVolume(vol_));
  SetZoneCondition(kFirstSeqZone + base, ZoneCondition::kReadOnly);
  SetZoneCondition(kFirstSeqZone + base + 1, ZoneCondition::kOffline);
  // The zone's own condition decides, whatever the errors= policy, as in
  // zonefs's table.
  EXPECT_EQ(WritePattern(a, 2 * kBlock, kBlock, 8), -EIO);
  EXPECT_EQ(WritePattern(b, 2 * kBlock, kBlock, 8), -EIO);
  struct zfile_stat ro = StatOf(vol_, SeqFile(base).c_str());
  EXPECT_EQ(ro.size, 2 * kBlock);
  EXPECT_EQ(ro.mode & 0222u, 0u);
  EXPECT_EQ(ExpectPattern(a, 0, 2 * kBlock, 8), ssize_t(2 * kBlock));
  EXPECT_EQ(WritePattern(a, 2 * kBlock, kBlock, 8), -EPERM);
  struct zfile_stat off = StatOf(vol_, SeqFile(base + 1).c_str());
  EXPECT_EQ(off.size, 0u);
  auto buf = MakeBuf(kBlock);
  EXPECT_EQ(zfile_pread(b, buf.get(), kBlock, 0), -EPERM);
  // remount-ro (the default) applies when the zone is still good; a zone
  // that went read-only or offline only takes its own file down.
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  EXPECT_EQ(info.read_only, 0);
  EXPECT_EQ(WritePattern(Open(SeqFile(base + 2).c_str(), O_WRONLY | O_DIRECT), 0, kBlock, 8),
            ssize_t(kBlock));
  // The offline file lost its data; the read-only one kept it.
  if (changes) {
    EXPECT_EQ(changes->Calls(), (std::vector<std::string>{SeqFile(base + 1) + " whole file",
                                                          SeqFile(base + 2) + " 4096 bytes at 0"}));
  }
}

struct PolicyCase {
  const char* option;
  bool volume_read_only;
  bool file_readable;
  bool file_writable;
  bool size_zero;
};

TEST_P(ErrorPolicy, WriteErrorAppliesTheErrorsPolicy) {
  SKIP_WITHOUT_FAULTS();
  const PolicyCase cases[] = {
      {"errors=remount-ro", true, true, false, false},
      {"", true, true, false, false},  // the default is remount-ro
      {"errors=zone-ro", false, true, false, false},
      {"errors=zone-offline", false, false, false, true},
      {"errors=repair", false, true, true, false},
  };
  int file = 10;
  for (const PolicyCase& c : cases) {
    SCOPED_TRACE(c.option);
    const std::string path = "seq/" + std::to_string(file);
    // The second block of the file fails.
    MountOrDie(c.option, IoFaultAtMount(IoOp::kWrite, SeqZoneStart(file) + kBlock));
    zfile_file* f = Open(path.c_str(), O_RDWR | O_DIRECT);
    ASSERT_EQ(WritePattern(f, 0, kBlock, 5), ssize_t(kBlock));
    // Embedded only: zfiled's volume is in another process.
    std::optional<ChangeRecorder> changes;
    if (!daemon()) changes.emplace(InternalVolume(vol_));
    ArmIoFault(IoOp::kWrite, SeqZoneStart(file) + kBlock);
    EXPECT_EQ(WritePattern(f, kBlock, kBlock, 5), -EIO);
    ClearIoFault(SeqZoneStart(file) + kBlock);
    if (changes) {
      // An offline file lost its data; the others kept theirs.
      const std::vector<std::string> whole = {path + " whole file"};
      EXPECT_EQ(changes->Calls(), c.size_zero ? whole : std::vector<std::string>{});
    }
    changes.reset();
    EXPECT_NE(std::string(zfile_last_error()).find("file size now"), std::string::npos)
        << zfile_last_error();
    struct zfile_vol_info info {};
    ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
    EXPECT_EQ(info.read_only != 0, c.volume_read_only);
    struct zfile_stat st = StatOf(vol_, path.c_str());
    EXPECT_EQ(st.size, c.size_zero ? 0u : kBlock);
    auto buf = MakeBuf(kBlock);
    EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 0), c.file_readable ? ssize_t(kBlock) : -EPERM);
    ssize_t w = WritePattern(f, kBlock, kBlock, 5);
    if (c.file_writable) {
      EXPECT_EQ(w, ssize_t(kBlock));
    } else {
      EXPECT_EQ(w, c.volume_read_only ? -EROFS : -EPERM);
    }
    // Other files: writable unless the whole volume went read-only.
    zfile_file* other = nullptr;
    int r = zfile_open(vol_, ("seq/" + std::to_string(file + 1)).c_str(), O_WRONLY, &other);
    EXPECT_EQ(r, c.volume_read_only ? -EROFS : 0);
    if (other != nullptr) zfile_close(other);
    Unmount();
    file += 2;
  }
}

TEST_P(ErrorPolicy, ReadErrorAppliesThePolicyToo) {
  SKIP_WITHOUT_FAULTS();
  zfile_file* f = Open("seq/20", O_WRONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, 2 * kBlock, 6), ssize_t(2 * kBlock));
  MountOrDie("errors=zone-ro", IoFaultAtMount(IoOp::kRead, SeqZoneStart(20)));
  zfile_file* r = Open("seq/20", O_RDWR | O_DIRECT);
  auto buf = MakeBuf(kBlock);
  ArmIoFault(IoOp::kRead, SeqZoneStart(20));
  EXPECT_EQ(zfile_pread(r, buf.get(), kBlock, 0), -EIO);
  ClearIoFault(SeqZoneStart(20));
  EXPECT_EQ(StatOf(vol_, "seq/20").mode & 0222u, 0u);
  EXPECT_EQ(WritePattern(r, 2 * kBlock, kBlock, 6), -EPERM);
  EXPECT_EQ(ExpectPattern(r, 0, 2 * kBlock, 6), ssize_t(2 * kBlock));  // the fault is gone
}

TEST_P(ErrorPolicy, WritePointerMovedBehindOurBackIsResynchronised) {
  if (GetParam().kind == "zbd") {
    GTEST_SKIP() << "needs the emulated backends' write-pointer and power-cut faults";
  }
  zfile_file* f = Open("seq/21", O_WRONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, 4 * kBlock, 7), ssize_t(4 * kBlock));
  // Unmounted: the next mount trusts the zone report.
  Unmount();
  {
    auto dev = OpenDevice(DeviceUri());
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    Status s =
        (*dev)->faults()->MoveWritePointer(kFirstSeqZone + 21, SeqZoneStart(21) + 2 * kBlock);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  MountOrDie("errors=repair");
  f = Open("seq/21", O_WRONLY | O_DIRECT);
  EXPECT_EQ(StatOf(vol_, "seq/21").size, 2 * kBlock);
  if (daemon()) {
    GTEST_SKIP() << "the rest moves the write pointer under the mounted volume through its "
                    "device's in-process FaultInjector; zfiled's device is out of reach";
  }
  // Mounted: the device moves it again under the volume's feet.
  ChangeRecorder changes(InternalVolume(vol_));
  FaultInjector* faults = InternalVolume(vol_)->device()->faults();
  ASSERT_TRUE(faults->MoveWritePointer(kFirstSeqZone + 21, SeqZoneStart(21) + kBlock).ok());
  EXPECT_EQ(WritePattern(f, 2 * kBlock, kBlock, 7), -EIO);  // the device refuses
  EXPECT_EQ(StatOf(vol_, "seq/21").size, kBlock);           // resynchronised
  // The resync dropped data that readers beside the engine may cache.
  EXPECT_EQ(changes.Calls(), (std::vector<std::string>{"seq/21 whole file"}));
  EXPECT_EQ(WritePattern(f, kBlock, kBlock, 7), ssize_t(kBlock));  // repair: still writable
  EXPECT_EQ(ExpectPattern(Open("seq/21", O_RDONLY), 0, 2 * kBlock, 7), ssize_t(2 * kBlock));
}

// A direct write that fails without the media having seen it (EAGAIN,
// ENOMEM from the I/O path; ETOOMANYREFS, zone resources the device
// refused, told as EBUSY) applies no errors= policy and leaves the file
// writable at its write pointer: before the fix, the next write was
// refused as "not at the write pointer" for good.
TEST_P(ErrorPolicy, DirectWriteFailingBeforeTheMediaLeavesTheFileWritable) {
  if (GetParam().kind == "zbd" || daemon()) {
    GTEST_SKIP() << "needs the emulated device's in-process FaultInjector (errno faults)";
  }
  ChangeRecorder changes(InternalVolume(vol_));
  zfile_file* f = Open("seq/22", O_WRONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, kBlock, 8), ssize_t(kBlock));
  for (int err : {EAGAIN, ENOMEM, ETOOMANYREFS}) {
    SCOPED_TRACE(err);
    InternalVolume(vol_)->device()->faults()->FailNextIoWith(IoOp::kWrite,
                                                             SeqZoneStart(22) + kBlock, err);
    EXPECT_EQ(WritePattern(f, kBlock, kBlock, 8), err == ETOOMANYREFS ? -EBUSY : -err);
    EXPECT_EQ(StatOf(vol_, "seq/22").size, kBlock);
  }
  // Even when the zone cannot be reported then.
  InternalVolume(vol_)->device()->faults()->FailNextIoWith(IoOp::kWrite, SeqZoneStart(22) + kBlock,
                                                           EAGAIN);
  InternalVolume(vol_)->device()->faults()->FailNextReport();
  EXPECT_EQ(WritePattern(f, kBlock, kBlock, 8), -EAGAIN);
  EXPECT_EQ(WritePattern(f, kBlock, kBlock, 8), ssize_t(kBlock)) << zfile_last_error();
  EXPECT_EQ(StatOf(vol_, "seq/22").size, 2 * kBlock);
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  EXPECT_EQ(info.read_only, 0) << "a policy was applied";
  EXPECT_EQ(ExpectPattern(Open("seq/22", O_RDONLY), 0, 2 * kBlock, 8), ssize_t(2 * kBlock));
  // Nothing readers see changed but the one write that landed.
  EXPECT_EQ(changes.Calls(),
            (std::vector<std::string>{"seq/22 4096 bytes at 0", "seq/22 4096 bytes at 4096"}));
}

// Direct writes in flight behind one that fails before the media (EAGAIN
// from the I/O path) were aimed past the write pointer that the device
// kept, and the device refuses them: that is the first failure's
// consequence, not a media error. No errors= policy applies (the default,
// remount-ro, would take the volume down), and until the write pointer is
// resynchronised new writes wait (one that may not wait is refused).
TEST_P(ErrorPolicy, WritesInFlightBehindAFailureBeforeTheMediaApplyNoPolicy) {
  if (GetParam().kind == "zbd" || daemon()) {
    GTEST_SKIP() << "needs the emulated device's in-process FaultInjector (errno faults, "
                    "held requests)";
  }
  FaultInjector* faults = InternalVolume(vol_)->device()->faults();
  const auto held = [&](size_t n) {
    for (int i = 0; i < 10000 && faults->HeldIoCount() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return faults->HeldIoCount() == n;
  };
  zfile_file* f = Open("seq/23", O_WRONLY | O_DIRECT);
  faults->FailNextIoWith(IoOp::kWrite, SeqZoneStart(23), EAGAIN);
  faults->HoldNextIo(IoOp::kWrite, SeqZoneStart(23));
  ssize_t first = 0, second = 0;
  std::string second_error;
  std::thread a, b;
  // Whatever fails below, nothing stays held and no thread is left behind.
  struct Cleanup {
    FaultInjector* faults;
    std::thread *a, *b;
    ~Cleanup() {
      faults->ReleaseHeldIo(0);
      if (a->joinable()) a->join();
      if (b->joinable()) b->join();
    }
  } cleanup{faults, &a, &b};
  a = std::thread([&] { first = WritePattern(f, 0, 4 * kBlock, 9); });
  ASSERT_TRUE(held(1)) << "the first write never reached the device";
  b = std::thread([&] {
    second = WritePattern(f, 4 * kBlock, 4 * kBlock, 9);
    second_error = zfile_last_error();
  });
  ASSERT_TRUE(held(2)) << "the second write was not submitted behind the first";
  faults->ReleaseHeldIo(1);  // the first fails; the second is still in flight
  std::string refusal;
  for (int i = 0; i < 5000; ++i) {
    const ssize_t r = WritePattern(f, 0, kBlock, 9, RWF_NOWAIT);
    ASSERT_LT(r, 0) << "a write landed while a write was in flight past it";
    refusal = zfile_last_error();
    if (r == -EAGAIN && refusal.find("error is being handled") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_NE(refusal.find("a failed write's error is being handled"), std::string::npos) << refusal;
  faults->ReleaseHeldIo(0);
  a.join();
  b.join();
  EXPECT_EQ(first, -EAGAIN);
  EXPECT_EQ(second, -EIO);
  EXPECT_NE(second_error.find("the write before it at 0 failed"), std::string::npos)
      << second_error;
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  EXPECT_EQ(info.read_only, 0) << "a policy was applied";
  EXPECT_EQ(StatOf(vol_, "seq/23").size, 0u);
  EXPECT_EQ(WritePattern(f, 0, 8 * kBlock, 9), ssize_t(8 * kBlock)) << zfile_last_error();
  EXPECT_EQ(ExpectPattern(Open("seq/23", O_RDONLY), 0, 8 * kBlock, 9), ssize_t(8 * kBlock));

  // The same with both let go at once, and (odd rounds) with the second
  // one refused by the device first, its thread waiting for the first.
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    const uint64_t at = (8 + 8 * uint64_t(round)) * kBlock;
    faults->FailNextIoWith(IoOp::kWrite, SeqZoneStart(23) + at, ENOMEM);
    faults->HoldNextIo(IoOp::kWrite, SeqZoneStart(23) + at);
    a = std::thread([&] { first = WritePattern(f, at, 4 * kBlock, 9); });
    ASSERT_TRUE(held(1));
    b = std::thread([&] { second = WritePattern(f, at + 4 * kBlock, 4 * kBlock, 9); });
    ASSERT_TRUE(held(2));
    if (round % 2 == 1) {
      faults->ReleaseLastHeldIo();
      // (Only to let its thread get to its wait first; either order passes.)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    faults->ReleaseHeldIo(0);
    a.join();
    b.join();
    EXPECT_EQ(first, -ENOMEM);
    EXPECT_EQ(second, -EIO);
    ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
    ASSERT_EQ(info.read_only, 0) << "a policy was applied";
    ASSERT_EQ(WritePattern(f, at, 8 * kBlock, 9), ssize_t(8 * kBlock)) << zfile_last_error();
  }
  EXPECT_EQ(ExpectPattern(Open("seq/23", O_RDONLY), 0, 168 * kBlock, 9), ssize_t(168 * kBlock));
}

// Several writers, power cut after a random number of device writes,
// remount: every acknowledged byte is there, and sizes match the zones.
TEST_P(ErrorPolicy, CrashKeepsEveryAcknowledgedWrite) {
  if (GetParam().kind == "zbd") {
    GTEST_SKIP() << "needs the emulated backends' write-pointer and power-cut faults";
  }
  std::mt19937 rng(12345);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Format(MkfsOptions{});
    const uint64_t cut_after = 20 + rng() % 200;
    MountOrDie("", "power_cut_after=" + std::to_string(cut_after));
    struct Acked {
      std::string path;
      uint64_t off;
      size_t len;
      uint32_t seed;
      bool acked;  // false: attempted, failed (may or may not have landed)
    };
    std::mutex mu;
    std::vector<Acked> acked;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 trng(static_cast<uint32_t>(round * 10 + t));
        // Threads 0-1 append O_DIRECT to their own sequential file, thread 2
        // writes O_SYNC to a conventional file, thread 3 buffered + fsync.
        const std::string path =
            t < 2 ? "seq/" + std::to_string(t) : "cnv/" + std::to_string(t - 2);
        const int flags = O_RDWR | (t < 2 ? O_DIRECT : 0) | (t == 2 ? O_SYNC : 0);
        zfile_file* f = nullptr;
        if (zfile_open(vol_, path.c_str(), flags, &f) != 0) return;
        for (int i = 0; i < 400; ++i) {
          const size_t len = kBlock * (1 + trng() % 8);
          const uint32_t seed = static_cast<uint32_t>(round * 1000 + t * 100 + i);
          auto buf = MakeBuf(len);
          uint64_t off = 0;
          ssize_t r;
          if (t < 2) {
            struct zfile_stat st {};
            zfile_fstat(f, &st);
            off = st.size;
            FillPattern(buf.get(), len, off, seed);
            r = zfile_append(f, buf.get(), len, &off);
          } else {
            off = (trng() % 512) * kBlock;
            FillPattern(buf.get(), len, off, seed);
            r = zfile_pwrite(f, buf.get(), len, off);
            if (r == ssize_t(len) && t == 3 && zfile_fsync(f) != 0) r = -EIO;
          }
          std::lock_guard<std::mutex> lock(mu);
          acked.push_back({path, off, len, seed, r == ssize_t(len)});
          if (r != ssize_t(len)) break;  // the power is gone
        }
        zfile_close(f);
      });
    }
    for (auto& th : threads) th.join();
    // The volume is dead: closing it cannot write anything back (and
    // zfiled, whose unmount fails, exits non-zero).
    zfile_vol_close(vol_);
    vol_ = nullptr;
    AllowDaemonFailure();
    MountOrDie();
    // A block must hold the last acknowledged write that covered it, or a
    // write attempted after that one (it failed, but may have reached the
    // media before the power went: a real device gives the same freedom).
    std::map<std::string, std::map<uint64_t, std::vector<uint32_t>>> allowed;
    for (const Acked& a : acked) {  // per file, in program order
      for (uint64_t b = a.off; b < a.off + a.len; b += kBlock) {
        std::vector<uint32_t>& seeds = allowed[a.path][b];
        if (a.acked) seeds.clear();
        if (a.acked || !seeds.empty()) seeds.push_back(a.seed);
      }
    }
    size_t checked = 0;
    for (auto& [path, blocks] : allowed) {
      zfile_file* f = Open(path.c_str(), O_RDONLY | O_DIRECT);
      struct zfile_stat st = StatOf(vol_, path.c_str());
      auto buf = MakeBuf(kBlock);
      for (auto& [b, seeds] : blocks) {
        if (seeds.empty()) continue;  // never acknowledged
        ASSERT_LT(b, st.size) << path << ": acknowledged block past the file size";
        ASSERT_EQ(zfile_pread(f, buf.get(), kBlock, b), ssize_t(kBlock));
        // The pattern is a function of (offset, seed): each candidate
        // checks on its own.
        bool match = false;
        for (uint32_t seed : seeds) match = match || CheckPattern(buf.get(), kBlock, b, seed) == -1;
        ASSERT_TRUE(match) << path << " block at " << b << " (round " << round << ", cut after "
                           << cut_after << ")";
        ++checked;
      }
    }
    EXPECT_GT(checked, 0u);
    // Every sequential file's size is its zone's write pointer. In daemon
    // mode the zones are reported once zfiled has let the device go:
    // nothing writes between the sizes and the report either way.
    uint64_t sizes[2];
    for (int file = 0; file < 2; ++file) {
      sizes[file] = StatOf(vol_, ("seq/" + std::to_string(file)).c_str()).size;
    }
    std::unique_ptr<ZonedDevice> own_device;
    ZonedDevice* device = nullptr;
    if (daemon()) {
      Unmount();
      auto dev = OpenDevice(DeviceUri());
      ASSERT_TRUE(dev.ok()) << dev.status().ToString();
      own_device = std::move(*dev);
      device = own_device.get();
    } else {
      device = InternalVolume(vol_)->device();
    }
    for (int file = 0; file < 2; ++file) {
      auto zone = device->ReportZone(kFirstSeqZone + file);
      ASSERT_TRUE(zone.ok()) << zone.status().ToString();
      EXPECT_EQ(sizes[file], zone->wp - zone->start) << "seq/" << file;
    }
    own_device.reset();
    Unmount();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ErrorPolicy, ::testing::ValuesIn(VolumesUnderTest()),
                         [](const ::testing::TestParamInfo<VolumeParam>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace zfile::testing
