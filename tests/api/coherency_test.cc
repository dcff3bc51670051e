// Cache and direct I/O coherency (SPEC section 5, SPEC section 4 on
// write-through): the direct-write fallback, mapped views, O_SYNC
// write-through of exactly the changed blocks, in-order buffered appends,
// and RWF_NOWAIT, through the C API on every backend.
#include <sys/uio.h>

#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "api/zfile_internal.h"
#include "base/log.h"
#include "device/zoned_device.h"
#include "engine/volume.h"
#include "volume_fixture.h"

namespace zfile::testing {
namespace {

constexpr uint64_t kPage = 64 << 10;  // the default cache_page_size

// Collects what the library logs while it lives: in this process, or in
// daemon mode what zfiled (where the engine runs) writes to its log file
// from now on.
class LogCapture {
 public:
  explicit LogCapture(std::string daemon_log)
      : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)),
        daemon_log_(std::move(daemon_log)) {
    AddLogSink(sink_);
    if (!daemon_log_.empty()) {
      std::ifstream in(daemon_log_, std::ios::binary | std::ios::ate);
      daemon_log_start_ = in ? static_cast<std::streamoff>(in.tellg()) : 0;
    }
  }
  ~LogCapture() { RemoveLogSink(sink_); }
  std::string text() {
    sink_->flush();
    if (daemon_log_.empty()) return out_.str();
    // zfiled logs a request's warnings before it replies, and its stderr
    // sink is unbuffered: the lines are in the file by now.
    std::ifstream in(daemon_log_, std::ios::binary);
    in.seekg(daemon_log_start_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  const std::string daemon_log_;
  std::streamoff daemon_log_start_ = 0;
};

class Coherency : public VolumeTest {
 protected:
  uint64_t Counter(const char* key) { return Stat(StatsJson(), key); }

  struct View {
    const uint8_t* data = nullptr;
    zfile_view* view = nullptr;
  };
  View Map(zfile_file* f, uint64_t off, size_t len) {
    View v;
    const void* addr = nullptr;
    EXPECT_EQ(zfile_map(f, off, len, &addr, &v.view), 0) << zfile_last_error();
    v.data = static_cast<const uint8_t*>(addr);
    return v;
  }
  // Reads what the device holds, bypassing the cache.
  void ExpectOnDevice(const char* path, uint64_t off, size_t len, uint32_t seed) {
    zfile_file* d = Open(path, O_RDONLY | O_DIRECT);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(ExpectPattern(d, off, len, seed), static_cast<ssize_t>(len));
  }
  FileInode* Inode(const char* path) {
    auto inode = InternalVolume(vol_)->Lookup(path);
    EXPECT_TRUE(inode.ok());
    return inode.ok() ? *inode : nullptr;
  }
};

// ---- The direct-write fallback ----

TEST_P(Coherency, DirectWriteOverAMappedViewFallsBackAndIsCountedAndLogged) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, kPage, 1), static_cast<ssize_t>(kPage));
  View v = Map(f, 0, 8192);
  ASSERT_NE(v.view, nullptr);
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  LogCapture log(daemon_log_path());
  // Over the view's page but not its bytes: the page cannot be dropped.
  ASSERT_EQ(WritePattern(d, 16384, 8192, 2), 8192);
  EXPECT_EQ(Counter("dio_fallbacks"), 1u);
  const std::string text = log.text();
  EXPECT_NE(text.find("cnv/0: direct write of 8192 bytes at 16384 falls back"), std::string::npos)
      << text;
  EXPECT_NE(text.find("pinned by a mapped view"), std::string::npos) << text;
  // O_DIRECT's promise holds: the device has it, and so does the cache.
  ExpectOnDevice("cnv/0", 16384, 8192, 2);
  EXPECT_EQ(ExpectPattern(f, 16384, 8192, 2), 8192);
  EXPECT_EQ(CheckPattern(v.data, 8192, 0, 1), -1);
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, DirectWriteWithoutPinsInvalidatesAndDoesNotFallBack) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 2 * kPage, 1), static_cast<ssize_t>(2 * kPage));  // dirty
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(d, 4096, 8192, 2), 8192);
  EXPECT_EQ(Counter("dio_fallbacks"), 0u);
  // The page the write covers was written back before it went; the next
  // page, outside the range, is still dirty.
  EXPECT_EQ(Counter("cache_dirty_bytes"), kPage);
  // Buffered reads see the direct write (the stale pages are gone) and the
  // earlier buffered data around it (written back, not lost).
  EXPECT_EQ(ExpectPattern(f, 4096, 8192, 2), 8192);
  EXPECT_EQ(ExpectPattern(f, 0, 4096, 1), 4096);
  EXPECT_EQ(ExpectPattern(f, 12288, 2 * kPage - 12288, 1), static_cast<ssize_t>(2 * kPage - 12288));
  // Unpinned again after the view is gone: no fallback.
  View v = Map(f, 0, 4096);
  ASSERT_EQ(zfile_unmap(v.view), 0);
  ASSERT_EQ(WritePattern(d, 0, 4096, 3), 4096);
  EXPECT_EQ(Counter("dio_fallbacks"), 0u);
}

TEST_P(Coherency, DirectWriteFromAViewOfTheSameRangeCompletes) {
  zfile_file* f = Open("cnv/1", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 3 * kPage, 5), static_cast<ssize_t>(3 * kPage));
  View v = Map(f, kPage / 2, 2 * kPage);
  ASSERT_NE(v.view, nullptr);
  zfile_file* d = Open("cnv/1", O_RDWR | O_DIRECT);
  // The source is the cache's own memory for that very range.
  ASSERT_EQ(zfile_pwrite(d, v.data, 2 * kPage, kPage / 2), static_cast<ssize_t>(2 * kPage))
      << zfile_last_error();
  EXPECT_EQ(Counter("dio_fallbacks"), 1u);
  EXPECT_EQ(CheckPattern(v.data, 2 * kPage, kPage / 2, 5), -1);
  ExpectOnDevice("cnv/1", 0, 3 * kPage, 5);
  // And from a view of another range: copied, then the same bytes there.
  View w = Map(f, 0, 4096);
  ASSERT_EQ(zfile_pwrite(d, w.data, 4096, 5 * kPage), 4096) << zfile_last_error();
  zfile_file* r = Open("cnv/1", O_RDONLY | O_DIRECT);
  auto buf = MakeBuf(4096);
  ASSERT_EQ(zfile_pread(r, buf.get(), 4096, 5 * kPage), 4096);
  EXPECT_EQ(CheckPattern(buf.get(), 4096, 0, 5), -1);
  EXPECT_EQ(zfile_unmap(w.view), 0);
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, InvalidationIoErrorIsReturnedNotHiddenByAFallback) {
  if (!has_faults()) GTEST_SKIP() << "needs the emulated device's fault injection";
  Unmount();
  MountOrDie("errors=repair,writeback_interval_ms=600000", MountFault(IoOp::kWrite, kZoneSize + 0));
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 4096, 1), 4096);  // dirty, not yet on the device
  ArmFault(IoOp::kWrite, kZoneSize + 0);
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  EXPECT_EQ(WritePattern(d, 0, 8192, 2), -EIO);
  EXPECT_NE(std::string(zfile_last_error()).find("write-back before a direct write"),
            std::string::npos)
      << zfile_last_error();
  EXPECT_EQ(Counter("dio_fallbacks"), 0u);
  // The dirty data is still there for a later write-back.
  EXPECT_EQ(zfile_fsync(f), 0) << zfile_last_error();
  ExpectOnDevice("cnv/0", 0, 4096, 1);
}

TEST_P(Coherency, InvalidationOutOfMemoryIsReturnedNotHiddenByAFallback) {
  if (daemon()) {
    GTEST_SKIP() << "injects cache allocation failures in-process; zfiled's cache is out of reach";
  }
  Unmount();
  MountOrDie("writeback_interval_ms=600000");
  zfile_file* f = Open("cnv/0", O_RDWR);
  // Dirty blocks running across a page boundary: their write-back gathers
  // two pages into one request, which needs a buffer.
  ASSERT_EQ(WritePattern(f, kPage - 4096, 8192, 1), 8192);
  InternalVolume(vol_)->cache().InjectAllocationFailures(1);
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  EXPECT_EQ(WritePattern(d, 0, 2 * kPage, 2), -ENOMEM);
  EXPECT_EQ(Counter("dio_fallbacks"), 0u);
  EXPECT_EQ(Counter("errors"), 0u);  // not a device error: no errors= policy
  EXPECT_EQ(zfile_fsync(f), 0) << zfile_last_error();
  ExpectOnDevice("cnv/0", kPage - 4096, 8192, 1);
}

TEST_P(Coherency, AFallbackRacingAPlainDirectWriteLeavesNoStalePage) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  zfile_file* a = Open("cnv/0", O_RDWR | O_DIRECT);
  zfile_file* b = Open("cnv/0", O_RDWR | O_DIRECT);
  zfile_file* d = Open("cnv/0", O_RDONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, kPage, 1), static_cast<ssize_t>(kPage));
  View v = Map(f, 0, 4096);  // page 0 pinned: A's writes fall back
  ASSERT_NE(v.view, nullptr);
  // B writes from page 1 on, from an unaligned buffer: its bounce copy
  // widens the window between its invalidation and its device write, where
  // A's fallback would put page 1 (with A's bytes) back in the cache.
  constexpr size_t kBLen = 4 << 20;
  std::vector<uint8_t> b_store(kBLen + 1);
  uint8_t* b_buf = b_store.data() + 1;
  auto a_buf = MakeBuf(2 * kPage);
  auto cached = MakeBuf(kPage);
  auto device = MakeBuf(kPage);
  for (int round = 0; round < 40; ++round) {
    std::memset(b_buf, 0xB0 + round % 16, kBLen);
    std::memset(a_buf.get(), 0xA0 + round % 16, 2 * kPage);
    std::atomic<bool> go{false};
    std::thread tb([&] {
      while (!go) std::this_thread::yield();
      EXPECT_EQ(zfile_pwrite(b, b_buf, kBLen, kPage), static_cast<ssize_t>(kBLen));
    });
    std::thread ta([&] {
      while (!go) std::this_thread::yield();
      EXPECT_EQ(zfile_pwrite(a, a_buf.get(), 2 * kPage, 0), static_cast<ssize_t>(2 * kPage));
    });
    go = true;
    ta.join();
    tb.join();
    ASSERT_EQ(zfile_pread(f, cached.get(), kPage, kPage), static_cast<ssize_t>(kPage));
    ASSERT_EQ(zfile_pread(d, device.get(), kPage, kPage), static_cast<ssize_t>(kPage));
    ASSERT_EQ(std::memcmp(cached.get(), device.get(), kPage), 0)
        << "round " << round << ": the cache holds 0x" << std::hex << int{cached.get()[0]}
        << " where the device holds 0x" << int{device.get()[0]};
  }
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, LargeFallbackCopiesItsSourceInPieces) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, kPage, 1), static_cast<ssize_t>(kPage));
  View v = Map(f, 0, 4096);
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(d, 0, 6 << 20, 3), 6 << 20) << zfile_last_error();
  EXPECT_EQ(Counter("dio_fallbacks"), 1u);
  EXPECT_EQ(CheckPattern(v.data, 4096, 0, 3), -1);
  ExpectOnDevice("cnv/0", 0, 6 << 20, 3);
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, DirectReadWritesBackDirtyPagesWithoutDroppingThem) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, kPage, 7), static_cast<ssize_t>(kPage));
  const uint64_t cached = Counter("cache_cached_bytes");
  zfile_file* d = Open("cnv/0", O_RDONLY | O_DIRECT);
  EXPECT_EQ(ExpectPattern(d, 0, kPage, 7), static_cast<ssize_t>(kPage));
  EXPECT_EQ(Counter("cache_dirty_bytes"), 0u);
  EXPECT_EQ(Counter("cache_cached_bytes"), cached);
  const uint64_t reads = Counter("device_read_bytes");
  EXPECT_EQ(ExpectPattern(f, 0, kPage, 7), static_cast<ssize_t>(kPage));
  EXPECT_EQ(Counter("device_read_bytes"), reads);  // served from the cache
}

// ---- Write-through ----

TEST_P(Coherency, OSyncWriteOfOneBlockIntoALargerPageWritesOneBlock) {
  zfile_file* f = Open("cnv/0", O_RDWR | O_SYNC);
  const uint64_t written = Counter("device_write_bytes");
  const uint64_t read = Counter("device_read_bytes");
  ASSERT_EQ(WritePattern(f, 3 * 4096, 4096, 9), 4096);
  EXPECT_EQ(Counter("device_write_bytes") - written, 4096u);
  EXPECT_EQ(Counter("device_read_bytes") - read, 0u);  // whole block: nothing to read first
  EXPECT_EQ(Counter("cache_dirty_bytes"), 0u);
  EXPECT_EQ(Counter("writethrough_writes"), 1u);
  // Still cached: reading it back costs no device I/O.
  EXPECT_EQ(ExpectPattern(f, 3 * 4096, 4096, 9), 4096);
  EXPECT_EQ(Counter("device_read_bytes") - read, 0u);
  // RWF_DSYNC on a plain buffered handle: the same.
  zfile_file* g = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(g, 9 * 4096, 4096, 9, RWF_DSYNC), 4096);
  EXPECT_EQ(Counter("device_write_bytes") - written, 8192u);
  EXPECT_EQ(Counter("cache_dirty_bytes"), 0u);
  ExpectOnDevice("cnv/0", 3 * 4096, 4096, 9);
  ExpectOnDevice("cnv/0", 9 * 4096, 4096, 9);
}

TEST_P(Coherency, BufferedAppendsFromManyThreadsReachTheDeviceInOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 64;
  constexpr size_t kRecord = 2 * kBlock;
  zfile_file* f = Open("seq/0", O_WRONLY);
  std::vector<std::vector<uint64_t>> landed(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto buf = MakeBuf(kRecord);
      for (int i = 0; i < kPerThread; ++i) {
        const uint32_t seed = static_cast<uint32_t>(t * 1000 + i);
        FillPattern(buf.get(), kRecord, 0, seed);
        uint64_t off = 0;
        if (zfile_append(f, buf.get(), kRecord, &off) != static_cast<ssize_t>(kRecord)) {
          failures++;
          continue;
        }
        landed[t].push_back(off);
      }
    });
  }
  for (auto& th : threads) th.join();
  // The device refuses any write that is not at its write pointer, so one
  // out-of-order write would have failed an append.
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(Counter("errors"), 0u);
  EXPECT_EQ(Counter("cache_dirty_bytes"), 0u);
  EXPECT_EQ(StatOf(vol_, "seq/0").size, uint64_t{kThreads} * kPerThread * kRecord);
  zfile_file* d = Open("seq/0", O_RDONLY | O_DIRECT);
  auto buf = MakeBuf(kRecord);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ASSERT_EQ(zfile_pread(d, buf.get(), kRecord, landed[t][i]), static_cast<ssize_t>(kRecord));
      ASSERT_EQ(CheckPattern(buf.get(), kRecord, 0, static_cast<uint32_t>(t * 1000 + i)), -1)
          << "thread " << t << " record " << i;
    }
  }
}

// ---- Mapped views ----

TEST_P(Coherency, ViewsAreZeroCopyAcrossPagesAndSeeEveryLaterWrite) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 4 * kPage, 1), static_cast<ssize_t>(4 * kPage));
  View v = Map(f, 1000, 3 * kPage);  // spans four pages, unaligned start
  ASSERT_NE(v.view, nullptr);
  EXPECT_EQ(CheckPattern(v.data, 3 * kPage, 1000, 1), -1);
  // Buffered, O_SYNC, and direct (fallen back) writes all show through.
  ASSERT_EQ(WritePattern(f, 8192, 4096, 2), 4096);
  EXPECT_EQ(CheckPattern(v.data + 8192 - 1000, 4096, 8192, 2), -1);
  ASSERT_EQ(WritePattern(f, kPage, 4096, 3, RWF_DSYNC), 4096);
  EXPECT_EQ(CheckPattern(v.data + kPage - 1000, 4096, kPage, 3), -1);
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(d, 2 * kPage, kPage, 4), static_cast<ssize_t>(kPage));
  EXPECT_EQ(CheckPattern(v.data + 2 * kPage - 1000, kPage, 2 * kPage, 4), -1);
  // The view outlives the handles it came from.
  ASSERT_EQ(zfile_close(f), 0);
  open_files_.erase(std::find(open_files_.begin(), open_files_.end(), f));
  EXPECT_EQ(CheckPattern(v.data, 8192 - 1000, 1000, 1), -1);
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, MappingInACacheFullOfDirtyPagesWritesThemBack) {
  Unmount();
  MountOrDie("cache_size=4M,dirty_limit_percent=100,writeback_interval_ms=3600000");
  zfile_file* g = Open("cnv/1", O_RDWR);
  ASSERT_EQ(WritePattern(g, 0, 4 << 20, 1), 4 << 20);  // the whole cache, dirty
  zfile_file* f = Open("cnv/0", O_RDONLY);
  View v = Map(f, 0, 2 << 20);  // half the cache: the most views may pin
  ASSERT_NE(v.view, nullptr);
  EXPECT_EQ(zfile_unmap(v.view), 0);
  EXPECT_EQ(ExpectPattern(g, 0, 4 << 20, 1), 4 << 20);
}

TEST_P(Coherency, AReadErrorWhileMappingAppliesTheErrorsPolicy) {
  if (!has_faults()) GTEST_SKIP() << "needs the emulated device's fault injection";
  zfile_file* f = Open("seq/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 8192, 1), 8192);
  Unmount();
  MountOrDie("errors=zone-ro", MountFault(IoOp::kRead, kFirstSeqZone * kZoneSize));
  f = Open("seq/0", O_RDONLY);
  ArmFault(IoOp::kRead, kFirstSeqZone * kZoneSize);
  const void* addr = nullptr;
  zfile_view* view = nullptr;
  EXPECT_EQ(zfile_map(f, 0, 4096, &addr, &view), -EIO);
  EXPECT_NE(std::string(zfile_last_error()).find("seq/0: mapping a view"), std::string::npos)
      << zfile_last_error();
  EXPECT_EQ(Counter("errors"), 1u);
  EXPECT_EQ(StatOf(vol_, "seq/0").mode & 0222u, 0u);  // errors=zone-ro
  EXPECT_EQ(zfile_map(f, 0, 4096, &addr, &view), 0) << zfile_last_error();
  EXPECT_EQ(zfile_unmap(view), 0);
}

TEST_P(Coherency, AWriteThroughCutShortByMemoryKeepsTheWritePointerInStep) {
  if (daemon()) {
    GTEST_SKIP() << "injects cache allocation failures in-process; zfiled's cache is out of reach";
  }
  Unmount();
  MountOrDie("cache_size=256K");
  zfile_file* f = Open("seq/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 4096, 1), 4096);
  // The first page of the next write reaches the device, the second page
  // finds no memory.
  InternalVolume(vol_)->cache().InjectAllocationFailures(2);
  EXPECT_EQ(WritePattern(f, 4096, kPage, 2), -ENOMEM);
  const uint64_t size = StatOf(vol_, "seq/0").size;
  EXPECT_GE(size, 4096u);
  EXPECT_EQ(Counter("errors"), 0u);
  // Whatever reached the device counts: the next write goes after it.
  zfile_file* d = Open("seq/0", O_RDWR | O_DIRECT);
  EXPECT_EQ(WritePattern(d, size, 4096, 3), 4096) << zfile_last_error();
  EXPECT_EQ(Counter("errors"), 0u);
  EXPECT_EQ(ExpectPattern(d, 0, 4096, 1), 4096);
}

TEST_P(Coherency, ViewsAreReadOnlyMemory) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "death tests fork, which TSan does not support in threaded processes";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, kPage, 1), static_cast<ssize_t>(kPage));
  View v = Map(f, 0, 4096);
  ASSERT_NE(v.view, nullptr);
  EXPECT_DEATH(const_cast<uint8_t*>(v.data)[0] = 0, "");
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, ResetAndFinishFailWithEbusyWhileAViewPinsTheFile) {
  zfile_file* f = Open("seq/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 8192, 1), 8192);
  View v = Map(f, 0, 8192);
  ASSERT_NE(v.view, nullptr);
  EXPECT_EQ(zfile_ftruncate(f, 0), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("mapped view"), std::string::npos);
  EXPECT_EQ(zfile_ftruncate(f, kZoneCap), -EBUSY);
  EXPECT_EQ(StatOf(vol_, "seq/0").size, 8192u);  // nothing changed
  EXPECT_EQ(CheckPattern(v.data, 8192, 0, 1), -1);
  // Appends still work and stay out of the view's range.
  ASSERT_EQ(WritePattern(f, 8192, 4096, 2), 4096);
  EXPECT_EQ(zfile_unmap(v.view), 0);
  EXPECT_EQ(zfile_ftruncate(f, 0), 0) << zfile_last_error();
  EXPECT_EQ(StatOf(vol_, "seq/0").size, 0u);
}

TEST_P(Coherency, VolumeCloseIsRefusedWhileViewsRemain) {
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 4096, 1), 4096);
  View v = Map(f, 0, 4096);
  for (zfile_file* h : open_files_) zfile_close(h);
  open_files_.clear();
  EXPECT_EQ(zfile_vol_close(vol_), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("mapped view"), std::string::npos);
  EXPECT_EQ(CheckPattern(v.data, 4096, 0, 1), -1);
  EXPECT_EQ(zfile_unmap(v.view), 0);
}

TEST_P(Coherency, BadMapRequestsAreRefusedInWords) {
  Unmount();
  MountOrDie("cache_size=8M");
  zfile_file* f = Open("seq/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 8192, 1), 8192);
  const void* addr = nullptr;
  zfile_view* view = nullptr;
  EXPECT_EQ(zfile_map(f, 4096, 8192, &addr, &view), -EINVAL);  // past the size
  EXPECT_NE(std::string(zfile_last_error()).find("not within the file"), std::string::npos);
  EXPECT_EQ(zfile_map(f, 0, 0, &addr, &view), -EINVAL);
  EXPECT_EQ(zfile_map(f, 0, 4096, nullptr, &view), -EINVAL);
  EXPECT_EQ(view, nullptr);
  zfile_file* w = Open("seq/0", O_WRONLY);
  EXPECT_EQ(zfile_map(w, 0, 4096, &addr, &view), -EACCES);
  zfile_file* c = Open("cnv/0", O_RDONLY);
  EXPECT_EQ(zfile_map(c, 0, 4 * kPage, &addr, &view), 0);
  EXPECT_EQ(zfile_unmap(view), 0);
  EXPECT_EQ(zfile_map(c, 0, (4 << 20) + 4096, &addr, &view), -ENOMEM);  // over half the cache
  EXPECT_NE(std::string(zfile_last_error()).find("cache_size"), std::string::npos);
  EXPECT_EQ(view, nullptr);
  EXPECT_EQ(zfile_unmap(nullptr), -EINVAL);
}

// ---- RWF_NOWAIT ----

TEST_P(Coherency, NowaitGivesEagainWhenTheOtherStateHoldsTheFile) {
  if (daemon()) {
    GTEST_SKIP() << "holds the file's engine I/O lock in-process; zfiled's engine is out of reach";
  }
  zfile_file* f = Open("cnv/0", O_RDWR);
  ASSERT_EQ(WritePattern(f, 0, 4096, 1), 4096);
  auto hold = Inode("cnv/0")->io_lock().Lock(LockState::kDirect);
  ASSERT_TRUE(hold.ok());
  auto buf = MakeBuf(4096);
  EXPECT_EQ(zfile_pread2(f, buf.get(), 4096, 0, RWF_NOWAIT), -EAGAIN);
  EXPECT_NE(std::string(zfile_last_error()).find("RWF_NOWAIT"), std::string::npos);
  EXPECT_EQ(WritePattern(f, 0, 4096, 2, RWF_NOWAIT), -EAGAIN);
  // The same state is shared.
  zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
  EXPECT_EQ(zfile_pread2(d, buf.get(), 4096, 0, RWF_NOWAIT), 4096);
  hold->Release();
  EXPECT_EQ(ExpectPattern(f, 0, 4096, 1, RWF_NOWAIT), 4096);
}

TEST_P(Coherency, NowaitBufferedReadOfUncachedDataGivesEagain) {
  zfile_file* f = Open("cnv/1", O_RDWR | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 1 << 20, 8192, 4), 8192);  // on the device only
  zfile_file* b = Open("cnv/1", O_RDONLY);
  auto buf = MakeBuf(8192);
  EXPECT_EQ(zfile_pread2(b, buf.get(), 8192, 1 << 20, RWF_NOWAIT), -EAGAIN);
  EXPECT_NE(std::string(zfile_last_error()).find("not all in the cache"), std::string::npos);
  EXPECT_EQ(ExpectPattern(b, 1 << 20, 4096, 4), 4096);  // caches the whole page
  EXPECT_EQ(ExpectPattern(b, 1 << 20, 8192, 4, RWF_NOWAIT), 8192);
}

INSTANTIATE_TEST_SUITE_P(Backends, Coherency, ::testing::ValuesIn(VolumesUnderTest()),
                         [](const ::testing::TestParamInfo<VolumeParam>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace zfile::testing
