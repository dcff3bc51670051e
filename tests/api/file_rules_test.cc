// The file rules of SPEC sections 3, 4 and 9 (kernel zonefs semantics and
// zfile's extensions), through the C API, on every backend.
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "device/zoned_device.h"
#include "volume_fixture.h"

namespace zfile::testing {
namespace {

class FileRules : public VolumeTest {};

// ---- Section 3: format and mount ----

TEST_P(FileRules, MountShowsTheZonefsTree) {
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  EXPECT_EQ(info.nr_cnv_files, kNrCnvFiles);
  EXPECT_EQ(info.nr_seq_files, nr_seq_files_);
  EXPECT_GE(nr_seq_files_, 28u);
  EXPECT_EQ(info.block_size, kBlock);
  EXPECT_EQ(info.zone_size, kZoneSize);
  EXPECT_EQ(info.max_open, 6u);
  EXPECT_EQ(info.max_active, 8u);
  EXPECT_EQ(info.read_only, 0);
  EXPECT_EQ(std::strlen(info.uuid), 36u);

  struct zfile_stat cnv = StatOf(vol_, "cnv/0");
  EXPECT_EQ(cnv.type, ZFILE_TYPE_CNV);
  EXPECT_EQ(cnv.size, kZoneSize);
  EXPECT_EQ(cnv.ino, 1u);  // zone 1: zone 0 holds the superblock
  EXPECT_EQ(cnv.mode, S_IFREG | 0640u);
  EXPECT_EQ(cnv.uid, 0u);
  EXPECT_EQ(cnv.gid, 0u);
  struct zfile_stat seq = StatOf(vol_, "/seq/0");
  EXPECT_EQ(seq.type, ZFILE_TYPE_SEQ);
  EXPECT_EQ(seq.size, 0u);
  EXPECT_EQ(seq.max_size, kZoneCap);
  EXPECT_EQ(seq.ino, kFirstSeqZone);
  EXPECT_EQ(seq.zone_start, kFirstSeqZone * kZoneSize);
  EXPECT_EQ(seq.cond, ZFILE_COND_EMPTY);
  EXPECT_EQ(StatOf(vol_, "seq/27").ino, kFirstSeqZone + 27);
  // Directories: zonefs numbers them after the last zone.
  const uint64_t nr_zones = 1 + kNrCnvFiles + nr_seq_files_;
  EXPECT_EQ(StatOf(vol_, "").ino, nr_zones);
  EXPECT_EQ(StatOf(vol_, "cnv").ino, nr_zones + 1);
  EXPECT_EQ(StatOf(vol_, "seq").ino, nr_zones + 2);
  EXPECT_EQ(StatOf(vol_, "seq").type, ZFILE_TYPE_DIR);
}

TEST_P(FileRules, UnknownPathsAreEnoent) {
  struct zfile_stat st {};
  zfile_file* f = nullptr;
  const std::string past_end = "seq/" + std::to_string(nr_seq_files_);
  for (const char* p : {past_end.c_str(), "cnv/3", "seq/-1", "seq/01", "foo", "seq/", "seq/1/2"}) {
    EXPECT_EQ(zfile_open(vol_, p, O_RDONLY, &f), -ENOENT) << p;
    EXPECT_NE(std::string(zfile_last_error()).find("no such file"), std::string::npos);
  }
  EXPECT_EQ(zfile_stat(vol_, "nope", &st), -ENOENT);
}

TEST_P(FileRules, FilesCannotBeCreated) {
  zfile_file* f = nullptr;
  EXPECT_EQ(zfile_open(vol_, "seq/0", O_RDWR | O_CREAT, &f), -EPERM);
  EXPECT_EQ(f, nullptr);
}

TEST_P(FileRules, AggrCnvMakesOneConventionalFile) {
  MkfsOptions o;
  o.aggr_cnv = true;
  Format(o);
  MountOrDie();
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  EXPECT_EQ(info.nr_cnv_files, 1u);
  EXPECT_EQ(StatOf(vol_, "cnv/0").size, 3 * kZoneSize);
  // A write across the zone boundary inside the aggregated file.
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, kZoneSize - kBlock, 2 * kBlock, 5), ssize_t(2 * kBlock));
  ASSERT_EQ(zfile_fsync(f), 0);
  EXPECT_EQ(ExpectPattern(f, kZoneSize - kBlock, 2 * kBlock, 5), ssize_t(2 * kBlock));
}

TEST_P(FileRules, OwnerAndModeComeFromTheSuperblockAndChangeInMemory) {
  MkfsOptions o;
  o.uid = 1000;
  o.gid = 100;
  o.perm = 0600;
  Format(o);
  MountOrDie();
  struct zfile_stat st = StatOf(vol_, "seq/3");
  EXPECT_EQ(st.uid, 1000u);
  EXPECT_EQ(st.gid, 100u);
  EXPECT_EQ(st.mode, S_IFREG | 0600u);
  ASSERT_EQ(zfile_chmod(vol_, "seq/3", 0644), 0);
  ASSERT_EQ(zfile_chown(vol_, "seq/3", 7, UINT32_MAX), 0);
  st = StatOf(vol_, "seq/3");
  EXPECT_EQ(st.mode, S_IFREG | 0644u);
  EXPECT_EQ(st.uid, 7u);
  EXPECT_EQ(st.gid, 100u);
  EXPECT_EQ(zfile_chmod(vol_, "seq/3", 010000), -EINVAL);
  MountOrDie();  // in memory only, as zonefs
  EXPECT_EQ(StatOf(vol_, "seq/3").mode, S_IFREG | 0600u);
}

TEST_P(FileRules, MountRejectsUnknownOptionsAndBadValues) {
  Unmount();
  EXPECT_EQ(Mount("errors=zone-ro,bogus"), -EINVAL);
  EXPECT_NE(MountError().find("bogus"), std::string::npos) << MountError();
  EXPECT_EQ(Mount("errors=sometimes"), -EINVAL);
  EXPECT_NE(MountError().find("errors"), std::string::npos) << MountError();
  EXPECT_EQ(Mount("cache_size=12Q"), -EINVAL);
  EXPECT_EQ(vol_, nullptr);
  EXPECT_EQ(Mount("errors=repair,explicit-open,seq_buffered=reject,cache_size=16M"), 0)
      << zfile_last_error();
}

TEST_P(FileRules, MountOfAnUnformattedDeviceSaysSo) {
  Unmount();
  {
    auto dev = OpenDevice(DeviceUri());
    ASSERT_TRUE(dev.ok());
    auto zero = MakeBuf(kBlock);  // aligned: kernel devices use O_DIRECT
    std::memset(zero.get(), 0, kBlock);
    // Zone 0 is conventional here: overwrite the superblock.
    Status s = (*dev)->Write(0, zero.get(), kBlock).status();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  int r = Mount();
  EXPECT_LT(r, 0);
  EXPECT_NE(MountError().find("mkfs"), std::string::npos) << MountError();
}

TEST_P(FileRules, ClientUrisNeedTheDaemon) {
  zfile_vol* v = nullptr;
  // Client mode (tests/client/ covers it): with no daemon on the socket the
  // open fails, naming the socket.
  EXPECT_EQ(zfile_vol_open("unix:/nonexistent/zfiled.sock?volume=vol0", nullptr, &v), -ENOENT);
  EXPECT_NE(std::string(zfile_last_error()).find("/nonexistent/zfiled.sock"), std::string::npos)
      << zfile_last_error();
  EXPECT_EQ(zfile_vol_open("bogus:thing", nullptr, &v), -EINVAL);
  EXPECT_EQ(v, nullptr);
}

// ---- Section 4: reads ----

TEST_P(FileRules, ReadsAreClippedAtTheFileSize) {
  zfile_file* f = Open("seq/0", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, 2 * kBlock, 1), ssize_t(2 * kBlock));
  auto buf = MakeBuf(4 * kBlock);
  EXPECT_EQ(zfile_pread(f, buf.get(), 4 * kBlock, 0), ssize_t(2 * kBlock));
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 2 * kBlock), 0);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, kZoneCap + kBlock), 0);
  zfile_file* b = Open("seq/0", O_RDONLY);  // buffered
  EXPECT_EQ(zfile_pread(b, buf.get() + 1, 3 * kBlock, 100), ssize_t(2 * kBlock - 100));
  EXPECT_EQ(CheckPattern(buf.get() + 1, 2 * kBlock - 100, 100, 1), -1);
  zfile_file* c = Open("cnv/1", O_RDONLY);
  EXPECT_EQ(zfile_pread(c, buf.get(), kBlock, kZoneSize), 0);
  EXPECT_EQ(zfile_pread(c, buf.get(), 2 * kBlock, kZoneSize - kBlock), ssize_t(kBlock));
}

TEST_P(FileRules, DirectIoMustBeAligned) {
  zfile_file* f = Open("cnv/0", O_RDWR | O_DIRECT);
  auto buf = MakeBuf(2 * kBlock);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 512), -EINVAL);
  EXPECT_EQ(zfile_pread(f, buf.get(), 100, 0), -EINVAL);
  EXPECT_EQ(zfile_pwrite(f, buf.get(), kBlock, 100), -EINVAL);
  EXPECT_NE(std::string(zfile_last_error()).find("aligned"), std::string::npos);
  // Unaligned memory is fine: the library bounces it.
  FillPattern(buf.get() + 1, kBlock, 0, 3);
  EXPECT_EQ(zfile_pwrite(f, buf.get() + 1, kBlock, 0), ssize_t(kBlock));
  EXPECT_EQ(ExpectPattern(f, 0, kBlock, 3), ssize_t(kBlock));
}

// SPEC 4 "as kernel zonefs": zonefs_file_read_iter returns 0 at or past the
// end and clips a read across it before it judges a direct read's alignment.
TEST_P(FileRules, DirectReadsAreClippedBeforeTheAlignmentCheck) {
  zfile_file* f = Open("seq/0", O_RDWR | O_DIRECT);
  auto buf = MakeBuf(4 * kBlock);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 1), 0);  // empty file
  ASSERT_EQ(WritePattern(f, 0, 2 * kBlock, 1), ssize_t(2 * kBlock));
  // At or past the end: 0, however unaligned.
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 2 * kBlock + 1), 0);
  EXPECT_EQ(zfile_pread(f, buf.get(), 100, 2 * kBlock), 0);
  EXPECT_EQ(zfile_pread(f, buf.get(), 100, 3 * kBlock + 7), 0);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, kZoneCap + 1), 0);
  // Across the end: an unaligned length clipped to whole blocks is read.
  std::memset(buf.get(), 0, 4 * kBlock);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock + 1, kBlock), ssize_t(kBlock));
  EXPECT_EQ(CheckPattern(buf.get(), kBlock, kBlock, 1), -1);
  // Below the end, still EINVAL.
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 1), -EINVAL);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock, 2 * kBlock - 1), -EINVAL);
  EXPECT_EQ(zfile_pread(f, buf.get(), kBlock + 1, 0), -EINVAL);
  EXPECT_EQ(zfile_pread(f, buf.get(), 3 * kBlock, 1), -EINVAL);  // clipped, still unaligned
  zfile_file* c = Open("cnv/1", O_RDONLY | O_DIRECT);
  EXPECT_EQ(zfile_pread(c, buf.get(), kBlock, kZoneSize + 1), 0);
  EXPECT_EQ(zfile_pread(c, buf.get(), 2 * kBlock + 3, kZoneSize - kBlock), ssize_t(kBlock));
  EXPECT_EQ(zfile_pread(c, buf.get(), kBlock, kZoneSize - 1), -EINVAL);
}

// ---- Section 4: conventional files ----

TEST_P(FileRules, ConventionalFilesTakeRandomWrites) {
  zfile_file* f = Open("cnv/2", O_RDWR);
  ASSERT_EQ(WritePattern(f, 12345, 7000, 9), 7000);
  ASSERT_EQ(WritePattern(f, 100, 10, 10), 10);
  EXPECT_EQ(ExpectPattern(f, 12345, 7000, 9), 7000);
  EXPECT_EQ(ExpectPattern(f, 100, 10, 10), 10);
  zfile_file* d = Open("cnv/2", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(d, 8 * kBlock, kBlock, 11), ssize_t(kBlock));
  EXPECT_EQ(ExpectPattern(f, 8 * kBlock, kBlock, 11), ssize_t(kBlock));  // buffered sees it
  // The direct read sees the buffered write (dirty pages are written back first).
  auto buf = MakeBuf(2 * kBlock);
  ASSERT_EQ(zfile_pread(d, buf.get(), 2 * kBlock, 2 * kBlock), ssize_t(2 * kBlock));
  EXPECT_EQ(CheckPattern(buf.get() + (12345 - 2 * kBlock), 4 * kBlock - 12345, 12345, 9), -1);
}

TEST_P(FileRules, ConventionalFilesRefuseAppendAndTruncate) {
  zfile_file* f = Open("cnv/0", O_RDWR | O_APPEND);
  auto buf = MakeBuf(kBlock);
  EXPECT_EQ(zfile_pwrite(f, buf.get(), kBlock, 0), -EINVAL);
  EXPECT_NE(std::string(zfile_last_error()).find("O_APPEND"), std::string::npos);
  zfile_file* g = Open("cnv/0", O_RDWR);
  EXPECT_EQ(zfile_pwrite2(g, buf.get(), kBlock, 0, RWF_APPEND), -EINVAL);
  EXPECT_EQ(zfile_append(g, buf.get(), kBlock, nullptr), -EINVAL);
  EXPECT_EQ(zfile_ftruncate(g, 0), -EPERM);
  EXPECT_EQ(zfile_ftruncate(g, kZoneSize), -EPERM);
  zfile_file* t = nullptr;
  EXPECT_EQ(zfile_open(vol_, "cnv/0", O_RDWR | O_TRUNC, &t), -EPERM);
  EXPECT_EQ(StatOf(vol_, "cnv/0").size, kZoneSize);
}

TEST_P(FileRules, ConventionalWritesStopAtTheFileSize) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  EXPECT_EQ(WritePattern(f, kZoneSize, kBlock, 1), -EFBIG);
  EXPECT_EQ(WritePattern(f, kZoneSize - 100, 1000, 1), 100);  // short write
}

// ---- Section 4: sequential files ----

TEST_P(FileRules, SequentialWritesGoAtTheWritePointer) {
  zfile_file* f = Open("seq/1", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, 4 * kBlock, 2), ssize_t(4 * kBlock));
  EXPECT_EQ(StatOf(vol_, "seq/1").size, 4 * kBlock);
  EXPECT_EQ(WritePattern(f, 0, kBlock, 2), -EINVAL);  // behind
  EXPECT_NE(std::string(zfile_last_error()).find("write pointer"), std::string::npos);
  EXPECT_EQ(WritePattern(f, 5 * kBlock, kBlock, 2), -EINVAL);      // ahead
  EXPECT_EQ(WritePattern(f, 4 * kBlock, kBlock / 2, 2), -EINVAL);  // not whole blocks
  EXPECT_EQ(StatOf(vol_, "seq/1").size, 4 * kBlock);               // nothing changed
  ASSERT_EQ(WritePattern(f, 4 * kBlock, kBlock, 2), ssize_t(kBlock));
  EXPECT_EQ(ExpectPattern(f, 0, 5 * kBlock, 2), ssize_t(5 * kBlock));
}

TEST_P(FileRules, AppendsLandAtTheWritePointer) {
  zfile_file* f = Open("seq/2", O_WRONLY | O_DIRECT | O_APPEND);
  auto buf = MakeBuf(2 * kBlock);
  FillPattern(buf.get(), 2 * kBlock, 0, 4);
  EXPECT_EQ(zfile_pwrite(f, buf.get(), 2 * kBlock, 999999), ssize_t(2 * kBlock));  // offset ignored
  zfile_file* g = Open("seq/2", O_WRONLY | O_DIRECT);
  uint64_t landed = 0;
  FillPattern(buf.get(), kBlock, 2 * kBlock, 4);
  EXPECT_EQ(zfile_append(g, buf.get(), kBlock, &landed), ssize_t(kBlock));
  EXPECT_EQ(landed, 2 * kBlock);
  FillPattern(buf.get(), kBlock, 3 * kBlock, 4);
  EXPECT_EQ(zfile_pwrite2(g, buf.get(), kBlock, 0, RWF_APPEND), ssize_t(kBlock));
  zfile_file* r = Open("seq/2", O_RDONLY);
  EXPECT_EQ(ExpectPattern(r, 0, 4 * kBlock, 4), ssize_t(4 * kBlock));
}

TEST_P(FileRules, SequentialWritesStopAtCapacity) {
  zfile_file* f = Open("seq/3", O_RDWR | O_DIRECT);
  const size_t chunk = 1 << 20;
  uint64_t off = 0;
  while (off + chunk <= kZoneCap - chunk) {
    ASSERT_EQ(WritePattern(f, off, chunk, 6), ssize_t(chunk));
    off += chunk;
  }
  // A write straddling the capacity is cut short at it.
  EXPECT_EQ(WritePattern(f, off, 2 * chunk, 6), ssize_t(kZoneCap - off));
  EXPECT_EQ(StatOf(vol_, "seq/3").size, kZoneCap);
  EXPECT_EQ(StatOf(vol_, "seq/3").cond, ZFILE_COND_FULL);
  EXPECT_EQ(WritePattern(f, kZoneCap, kBlock, 6), -EFBIG);
  uint64_t landed = 0;
  auto buf = MakeBuf(kBlock);
  EXPECT_EQ(zfile_append(f, buf.get(), kBlock, &landed), -EFBIG);
}

TEST_P(FileRules, TruncateResetsOrFinishesAndNothingElse) {
  zfile_file* f = Open("seq/4", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, 2 * kBlock, 7), ssize_t(2 * kBlock));
  EXPECT_EQ(zfile_ftruncate(f, kBlock), -EPERM);
  EXPECT_EQ(zfile_ftruncate(f, 4 * kBlock), -EPERM);
  EXPECT_NE(std::string(zfile_last_error()).find("truncated to 0"), std::string::npos);
  EXPECT_EQ(StatOf(vol_, "seq/4").size, 2 * kBlock);
  ASSERT_EQ(zfile_ftruncate(f, kZoneCap), 0);
  EXPECT_EQ(StatOf(vol_, "seq/4").size, kZoneCap);
  EXPECT_EQ(StatOf(vol_, "seq/4").cond, ZFILE_COND_FULL);
  ASSERT_EQ(zfile_ftruncate(f, 0), 0);
  EXPECT_EQ(StatOf(vol_, "seq/4").size, 0u);
  EXPECT_EQ(StatOf(vol_, "seq/4").cond, ZFILE_COND_EMPTY);
  ASSERT_EQ(WritePattern(f, 0, kBlock, 8), ssize_t(kBlock));
  EXPECT_EQ(ExpectPattern(f, 0, kBlock, 8), ssize_t(kBlock));
  // O_TRUNC resets the zone, as truncate(0) does.
  zfile_file* t = Open("seq/4", O_WRONLY | O_TRUNC);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(StatOf(vol_, "seq/4").size, 0u);
  std::string stats = StatsJson();
  EXPECT_EQ(Stat(stats, "zone_resets"), 2u);
  EXPECT_EQ(Stat(stats, "zone_finishes"), 1u);
}

TEST_P(FileRules, BufferedSequentialWritesAreWrittenThrough) {
  zfile_file* f = Open("seq/5", O_RDWR);  // buffered
  ASSERT_EQ(WritePattern(f, 0, 3 * kBlock, 12), ssize_t(3 * kBlock));
  ASSERT_EQ(WritePattern(f, 3 * kBlock, kBlock, 12), ssize_t(kBlock));
  std::string stats = StatsJson();
  EXPECT_EQ(Stat(stats, "writethrough_writes"), 2u);
  EXPECT_EQ(Stat(stats, "cache_dirty_bytes"), 0u);
  // The device has it: a direct read sees it without any fsync.
  zfile_file* d = Open("seq/5", O_RDONLY | O_DIRECT);
  EXPECT_EQ(ExpectPattern(d, 0, 4 * kBlock, 12), ssize_t(4 * kBlock));
  EXPECT_EQ(StatOf(vol_, "seq/5").size, 4 * kBlock);
  // Buffered writes follow the same placement rules.
  EXPECT_EQ(WritePattern(f, 0, kBlock, 12), -EINVAL);
  EXPECT_EQ(WritePattern(f, 4 * kBlock, 100, 12), -EINVAL);
}

TEST_P(FileRules, SeqBufferedRejectGivesZonefsEio) {
  MountOrDie("seq_buffered=reject");
  zfile_file* f = Open("seq/5", O_RDWR);
  EXPECT_EQ(WritePattern(f, 0, kBlock, 1), -EIO);
  EXPECT_NE(std::string(zfile_last_error()).find("seq_buffered=reject"), std::string::npos);
  EXPECT_EQ(StatOf(vol_, "seq/5").size, 0u);
  zfile_file* d = Open("seq/5", O_RDWR | O_DIRECT);
  EXPECT_EQ(WritePattern(d, 0, kBlock, 1), ssize_t(kBlock));
}

TEST_P(FileRules, SyncBufferedWritesLeaveNothingDirty) {
  zfile_file* f = Open("cnv/1", O_RDWR);
  ASSERT_EQ(WritePattern(f, 5000, 3000, 13), 3000);
  EXPECT_GT(Stat(StatsJson(), "cache_dirty_bytes"), 0u);
  ASSERT_EQ(zfile_fsync(f), 0);
  EXPECT_EQ(Stat(StatsJson(), "cache_dirty_bytes"), 0u);
  ASSERT_EQ(WritePattern(f, 100000, 3000, 13, RWF_DSYNC), 3000);
  EXPECT_EQ(Stat(StatsJson(), "cache_dirty_bytes"), 0u);
  zfile_file* s = Open("cnv/1", O_RDWR | O_SYNC);
  ASSERT_EQ(WritePattern(s, 200000, 3000, 13), 3000);
  std::string stats = StatsJson();
  EXPECT_EQ(Stat(stats, "cache_dirty_bytes"), 0u);
  EXPECT_EQ(Stat(stats, "writethrough_writes"), 2u);
}

TEST_P(FileRules, DataAndSizesSurviveARemount) {
  zfile_file* c = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(c, 4096 * 3, 10000, 21), 10000);
  zfile_file* s = Open("seq/6", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(s, 0, 5 * kBlock, 22), ssize_t(5 * kBlock));
  zfile_file* b = Open("seq/7", O_RDWR);
  ASSERT_EQ(WritePattern(b, 0, 2 * kBlock, 23), ssize_t(2 * kBlock));
  MountOrDie();  // close (writes back) and mount again
  EXPECT_EQ(StatOf(vol_, "seq/6").size, 5 * kBlock);
  EXPECT_EQ(StatOf(vol_, "seq/7").size, 2 * kBlock);
  EXPECT_EQ(ExpectPattern(Open("cnv/0", O_RDONLY), 4096 * 3, 10000, 21), 10000);
  EXPECT_EQ(ExpectPattern(Open("seq/6", O_RDONLY), 0, 5 * kBlock, 22), ssize_t(5 * kBlock));
  EXPECT_EQ(ExpectPattern(Open("seq/7", O_RDONLY | O_DIRECT), 0, 2 * kBlock, 23),
            ssize_t(2 * kBlock));
}

TEST_P(FileRules, ClosingAVolumeWithOpenFilesIsRefused) {
  zfile_file* f = nullptr;
  ASSERT_EQ(zfile_open(vol_, "seq/0", O_WRONLY | O_DIRECT, &f), 0);
  EXPECT_EQ(zfile_vol_close(vol_), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("still open"), std::string::npos);
  // Nothing happened: the volume and the file still work.
  EXPECT_EQ(WritePattern(f, 0, kBlock, 3), ssize_t(kBlock));
  ASSERT_EQ(zfile_close(f), 0);
  EXPECT_EQ(zfile_vol_close(vol_), 0);
  vol_ = nullptr;
}

TEST_P(FileRules, OpenModesAreEnforced) {
  zfile_file* r = Open("cnv/0", O_RDONLY);
  auto buf = MakeBuf(kBlock);
  EXPECT_EQ(zfile_pwrite(r, buf.get(), kBlock, 0), -EBADF);
  EXPECT_EQ(zfile_ftruncate(Open("seq/0", O_RDONLY), 0), -EBADF);
  zfile_file* w = Open("cnv/0", O_WRONLY);
  EXPECT_EQ(zfile_pread(w, buf.get(), kBlock, 0), -EBADF);
  EXPECT_EQ(zfile_pread2(r, buf.get(), kBlock, 0, 0x4000), -EOPNOTSUPP);
}

// ---- Zone resources ----

TEST_P(FileRules, ExplicitOpenLimitsWritersToMaxOpen) {
  MountOrDie("explicit-open");
  std::vector<zfile_file*> files;
  for (int i = 0; i < 6; ++i) {
    std::string p = "seq/" + std::to_string(i);
    files.push_back(Open(p.c_str(), O_WRONLY | O_DIRECT));
    ASSERT_NE(files.back(), nullptr);
    EXPECT_EQ(StatOf(vol_, p.c_str()).cond, ZFILE_COND_EXP_OPEN);
  }
  zfile_file* extra = nullptr;
  EXPECT_EQ(zfile_open(vol_, "seq/6", O_WRONLY, &extra), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("open zone limit"), std::string::npos);
  // Readers need no zone resources.
  EXPECT_NE(Open("seq/6", O_RDONLY), nullptr);
  struct zfile_vol_info info {};
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
  EXPECT_EQ(info.open_zones, 6u);
  // The last writer's close closes the zone and frees the slot.
  ASSERT_EQ(WritePattern(files[0], 0, kBlock, 1), ssize_t(kBlock));
  open_files_.erase(std::find(open_files_.begin(), open_files_.end(), files[0]));
  ASSERT_EQ(zfile_close(files[0]), 0);
  EXPECT_EQ(StatOf(vol_, "seq/0").cond, ZFILE_COND_CLOSED);
  EXPECT_NE(Open("seq/6", O_WRONLY), nullptr);
}

TEST_P(FileRules, ImplicitOpensNeverExceedTheDeviceLimits) {
  // Eight files partly written: more than max_open (6), exactly max_active.
  for (int i = 0; i < 8; ++i) {
    zfile_file* f = Open(("seq/" + std::to_string(i)).c_str(), O_WRONLY | O_DIRECT);
    ASSERT_EQ(WritePattern(f, 0, kBlock, 1), ssize_t(kBlock)) << zfile_last_error();
    struct zfile_vol_info info {};
    ASSERT_EQ(zfile_vol_info(vol_, &info), 0);
    EXPECT_LE(info.open_zones, 6u);
  }
  // A ninth would exceed the active limit: EBUSY, and nothing written.
  zfile_file* ninth = Open("seq/8", O_WRONLY | O_DIRECT);
  EXPECT_EQ(WritePattern(ninth, 0, kBlock, 1), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("active zone limit"), std::string::npos);
  EXPECT_EQ(StatOf(vol_, "seq/8").size, 0u);
  // Finishing one frees an active slot.
  ASSERT_EQ(zfile_ftruncate(Open("seq/0", O_WRONLY), kZoneCap), 0);
  EXPECT_EQ(WritePattern(ninth, 0, kBlock, 1), ssize_t(kBlock));
  // Earlier files can still be written (their zones are active already).
  EXPECT_EQ(WritePattern(Open("seq/1", O_WRONLY | O_DIRECT), kBlock, kBlock, 1), ssize_t(kBlock));
}

TEST_P(FileRules, ManyThreadsAppendingToManyFilesSeeNoResourceError) {
  // 8 writers over 16 files (two each, one after the other): at most 8
  // active, more than max_open (6) at once.
  constexpr int kThreads = 8;
  constexpr size_t kChunk = 256 * 1024;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto buf = MakeBuf(kChunk);
      for (int n = 0; n < 2; ++n) {
        const std::string path = "seq/" + std::to_string(t * 2 + n);
        zfile_file* f = nullptr;
        if (zfile_open(vol_, path.c_str(), O_WRONLY | O_DIRECT, &f) != 0) {
          failures++;
          continue;
        }
        for (uint64_t off = 0; off < kZoneCap; off += kChunk) {
          FillPattern(buf.get(), kChunk, off, static_cast<uint32_t>(t));
          uint64_t landed = 0;
          ssize_t r = zfile_append(f, buf.get(), kChunk, &landed);
          if (r != ssize_t(kChunk) || landed != off) {
            ADD_FAILURE() << path << " at " << off << ": " << r << " " << zfile_last_error();
            failures++;
            break;
          }
        }
        zfile_close(f);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int i = 0; i < 2 * kThreads; ++i) {
    const std::string path = "seq/" + std::to_string(i);
    EXPECT_EQ(StatOf(vol_, path.c_str()).size, kZoneCap) << path;
  }
  EXPECT_EQ(ExpectPattern(Open("seq/5", O_RDONLY), kZoneCap - kChunk, kChunk, 2), ssize_t(kChunk));
}

TEST_P(FileRules, ConcurrentAppendsToOneFileLandInOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 32;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::vector<std::vector<uint64_t>> landed(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      zfile_file* f = nullptr;
      const bool direct = t % 2 == 0;  // direct and buffered appenders mixed
      if (zfile_open(vol_, "seq/9", O_WRONLY | (direct ? O_DIRECT : 0), &f) != 0) {
        failures++;
        return;
      }
      auto buf = MakeBuf(kBlock);
      for (int i = 0; i < kPerThread; ++i) {
        std::memset(buf.get(), t + 1, kBlock);
        uint64_t off = 0;
        if (zfile_append(f, buf.get(), kBlock, &off) != ssize_t(kBlock)) failures++;
        landed[t].push_back(off);
      }
      zfile_close(f);
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(StatOf(vol_, "seq/9").size, uint64_t{kThreads} * kPerThread * kBlock);
  zfile_file* r = Open("seq/9", O_RDONLY | O_DIRECT);
  auto buf = MakeBuf(kBlock);
  for (int t = 0; t < kThreads; ++t) {
    for (uint64_t off : landed[t]) {
      ASSERT_EQ(zfile_pread(r, buf.get(), kBlock, off), ssize_t(kBlock));
      EXPECT_EQ(buf.get()[0], t + 1) << "block at " << off;
      EXPECT_EQ(buf.get()[kBlock - 1], t + 1);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, FileRules, ::testing::ValuesIn(VolumesUnderTest()),
                         [](const ::testing::TestParamInfo<VolumeParam>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace zfile::testing
