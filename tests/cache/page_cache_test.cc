// PageCache tests against an in-memory backing that records every device
// call, checks alignment and the "never read at or past round_up(file_size)"
// rule, and can fail or hold back requests on demand.
#include "cache/page_cache.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace zfile {
namespace {

constexpr uint32_t kPage = 64u << 10;
constexpr uint32_t kBlock = 4096;
constexpr uint32_t kHour = 3600u * 1000u;

uint8_t PatternByte(uint64_t offset, uint32_t seed) {
  const uint64_t x = (offset + 1) * 0x9E3779B97F4A7C15ull + seed * 0x632BE59BD9B4E019ull;
  return static_cast<uint8_t>(x >> 56);
}

std::vector<uint8_t> Pattern(uint64_t offset, size_t len, uint32_t seed) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = PatternByte(offset + i, seed);
  return v;
}

struct Call {
  uint64_t offset;
  size_t len;
  bool operator==(const Call& o) const { return offset == o.offset && len == o.len; }
};

std::ostream& operator<<(std::ostream& os, const Call& c) {
  return os << "{" << c.offset << ", " << c.len << "}";
}

class FakeBacking : public CacheBacking {
 public:
  FakeBacking(uint64_t size, uint32_t block_size) : data_(Pattern(0, size, 1)), bs_(block_size) {}

  Status ReadBlocks(uint64_t offset, void* buf, size_t len) override {
    std::unique_lock lk(mu_);
    reads_.push_back({offset, len});
    EXPECT_EQ(offset % bs_, 0u) << "unaligned read offset";
    EXPECT_EQ(len % bs_, 0u) << "unaligned read length";
    EXPECT_LE(offset + len, read_limit_) << "read at or past round_up(file_size)";
    if (gate_closed_) {
      ++blocked_;
      cv_.notify_all();
      cv_.wait(lk, [this] { return !gate_closed_; });
      --blocked_;
    }
    if (fail_reads_) return Status(EIO, "injected read error");
    if (offset + len > data_.size()) return Status(EINVAL, "read past the device");
    std::memcpy(buf, data_.data() + offset, len);
    return Status::Ok();
  }

  Status WriteBlocks(uint64_t offset, const void* buf, size_t len) override {
    std::lock_guard lk(mu_);
    writes_.push_back({offset, len});
    EXPECT_EQ(offset % bs_, 0u) << "unaligned write offset";
    EXPECT_EQ(len % bs_, 0u) << "unaligned write length";
    written_bytes_ += len;
    if (fail_writes_) return Status(EIO, "injected write error");
    if (offset + len > data_.size()) return Status(EINVAL, "write past the device");
    std::memcpy(data_.data() + offset, buf, len);
    return Status::Ok();
  }

  void set_read_limit(uint64_t limit) {
    std::lock_guard lk(mu_);
    read_limit_ = limit;
  }
  void set_fail_reads(bool fail) {
    std::lock_guard lk(mu_);
    fail_reads_ = fail;
  }
  void set_fail_writes(bool fail) {
    std::lock_guard lk(mu_);
    fail_writes_ = fail;
  }
  // While closed, reads wait inside ReadBlocks.
  void CloseGate() {
    std::lock_guard lk(mu_);
    gate_closed_ = true;
  }
  void OpenGate() {
    std::lock_guard lk(mu_);
    gate_closed_ = false;
    cv_.notify_all();
  }
  void WaitForBlockedReads(int n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return blocked_ >= n; });
  }

  std::vector<Call> reads() const {
    std::lock_guard lk(mu_);
    return reads_;
  }
  std::vector<Call> writes() const {
    std::lock_guard lk(mu_);
    return writes_;
  }
  uint64_t written_bytes() const {
    std::lock_guard lk(mu_);
    return written_bytes_;
  }
  void ClearCalls() {
    std::lock_guard lk(mu_);
    reads_.clear();
    writes_.clear();
  }
  std::vector<uint8_t> Contents(uint64_t offset, size_t len) const {
    std::lock_guard lk(mu_);
    return std::vector<uint8_t>(data_.begin() + offset, data_.begin() + offset + len);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t> data_;
  const uint32_t bs_;
  uint64_t read_limit_ = ~0ull;
  bool fail_reads_ = false;
  bool fail_writes_ = false;
  bool gate_closed_ = false;
  int blocked_ = 0;
  std::vector<Call> reads_;
  std::vector<Call> writes_;
  uint64_t written_bytes_ = 0;
};

// No readahead, no background write-back or throttling to speak of: each
// test turns on what it exercises.
CacheOptions QuietOptions(uint64_t capacity = 64ull << 20) {
  CacheOptions o;
  o.capacity_bytes = capacity;
  o.page_size = kPage;
  o.writeback_interval_ms = kHour;
  o.dirty_limit_percent = 100;
  o.readahead_max_bytes = 0;
  return o;
}

std::vector<uint8_t> ReadRange(CachedFile* f, uint64_t offset, size_t len, uint64_t file_size) {
  std::vector<uint8_t> buf(len);
  Result<size_t> n = f->Read(offset, buf.data(), len, file_size);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  if (n.ok()) buf.resize(*n);
  return buf;
}

void WriteOk(CachedFile* f, uint64_t offset, const std::vector<uint8_t>& data, uint64_t file_size) {
  Result<size_t> n = f->Write(offset, data.data(), data.size(), file_size);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, data.size());
}

void WriteThroughOk(CachedFile* f, uint64_t offset, const std::vector<uint8_t>& data,
                    uint64_t file_size) {
  Result<size_t> n = f->WriteThrough(offset, data.data(), data.size(), file_size);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, data.size());
}

// Polls `done` for up to 20 s; the behaviour is asserted, not the timing.
template <typename Fn>
bool Eventually(Fn done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST(PageCacheTest, ReadMissThenHit) {
  constexpr uint64_t kSize = 1 << 20;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");

  EXPECT_EQ(ReadRange(f.get(), 5000, 100, kSize), Pattern(5000, 100, 1));
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{0, kPage}}));
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().hits, 0u);
  EXPECT_EQ(cache.stats().cached_bytes, kPage);

  EXPECT_EQ(ReadRange(f.get(), 100, 3000, kSize), Pattern(100, 3000, 1));
  EXPECT_EQ(dev.reads().size(), 1u);
  EXPECT_EQ(cache.stats().hits, 1u);

  // Three missing pages in one request: one device read.
  dev.ClearCalls();
  EXPECT_EQ(ReadRange(f.get(), kPage + 10, 2 * kPage, kSize), Pattern(kPage + 10, 2 * kPage, 1));
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{kPage, 3 * kPage}}));
  EXPECT_EQ(cache.stats().misses, 4u);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().readahead_pages, 0u);
}

// A read's progress is reported after each page, growing, each time with
// that many bytes already in the buffer, and ending at what the read
// returns (clipped at the end of the file), whether the pages were
// cached or loaded by the read.
TEST(PageCacheTest, ReadProgressFollowsTheBytesIntoTheBuffer) {
  constexpr uint64_t kSize = 1 << 20;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  for (bool cached : {false, true}) {
    const uint64_t offset = kPage + 1000;
    const size_t len = 3 * kPage;
    std::vector<uint8_t> buf(len, 0);
    std::vector<uint64_t> told;
    const ReadProgress progress = [&](uint64_t bytes) {
      told.push_back(bytes);
      ASSERT_LE(bytes, len);
      EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + bytes), Pattern(offset, bytes, 1))
          << "told " << bytes << " bytes before they were in the buffer";
    };
    Result<size_t> n = f->Read(offset, buf.data(), len, kSize, &progress);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, len);
    // Four pages touched: to the end of the first, two whole, part of the last.
    EXPECT_EQ(told, (std::vector<uint64_t>{kPage - 1000, 2 * kPage - 1000, 3 * kPage - 1000, len}))
        << (cached ? "cached" : "loaded");
  }
  // Clipped by the end of the file: the last report is the count.
  std::vector<uint8_t> buf(2 * kPage);
  uint64_t last = 0;
  const ReadProgress progress = [&](uint64_t bytes) { last = bytes; };
  Result<size_t> n = f->Read(kSize - kPage / 2, buf.data(), kPage, kSize, &progress);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, kPage / 2);
  EXPECT_EQ(last, *n);
}

TEST(PageCacheTest, ReadsNeverTouchTheDeviceAtOrPastRoundedFileSize) {
  const uint64_t file_size = 3 * kPage + 5000;  // not block aligned
  const uint64_t limit = 3 * kPage + 2 * kBlock;
  FakeBacking dev(16 * kPage, kBlock);
  dev.set_read_limit(limit);
  CacheOptions o = QuietOptions();
  o.readahead_max_bytes = 1 << 20;
  PageCache cache(o);
  auto f = cache.Register(&dev, kBlock, "seq/0");

  std::vector<uint8_t> got;
  for (uint64_t pos = 0; pos < file_size; pos += 7000) {
    std::vector<uint8_t> part = ReadRange(f.get(), pos, 7000, file_size);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, Pattern(0, file_size, 1));
  for (const Call& c : dev.reads()) EXPECT_LE(c.offset + c.len, limit) << c;

  // At or past the end: nothing, and no device call.
  dev.ClearCalls();
  uint8_t buf[16];
  EXPECT_EQ(*f->Read(file_size, buf, sizeof(buf), file_size), 0u);
  EXPECT_EQ(*f->Read(file_size + kPage, buf, sizeof(buf), file_size), 0u);
  EXPECT_TRUE(dev.reads().empty());

  // An empty file never reads.
  auto empty = cache.Register(&dev, kBlock, "seq/1");
  dev.set_read_limit(0);
  EXPECT_EQ(*empty->Read(0, buf, sizeof(buf), 0), 0u);
  EXPECT_TRUE(dev.reads().empty());
}

TEST(PageCacheTest, TailPageReadsOnlyUpToTheEndOfFile) {
  const uint64_t file_size = kPage + 3 * kBlock;
  FakeBacking dev(4 * kPage, kBlock);
  dev.set_read_limit(file_size);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "seq/0");
  EXPECT_EQ(ReadRange(f.get(), kPage, 100, file_size), Pattern(kPage, 100, 1));
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{kPage, 3 * kBlock}}));

  // The file grows (an append through the cache): the new block is cached,
  // the blocks beyond are still not claimed and load from the device later.
  const uint64_t grown = file_size + 2 * kBlock;
  dev.set_read_limit(grown);
  WriteThroughOk(f.get(), file_size, Pattern(file_size, kBlock, 7), file_size);
  std::vector<uint8_t> expect = Pattern(kPage, 3 * kBlock, 1);
  std::vector<uint8_t> appended = Pattern(file_size, kBlock, 7);
  std::vector<uint8_t> beyond = Pattern(file_size + kBlock, kBlock, 1);
  expect.insert(expect.end(), appended.begin(), appended.end());
  expect.insert(expect.end(), beyond.begin(), beyond.end());
  dev.ClearCalls();
  EXPECT_EQ(ReadRange(f.get(), kPage, 5 * kBlock, grown), expect);
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{file_size + kBlock, kBlock}}));
}

TEST(PageCacheTest, SequentialReadsReadAheadWithADoublingWindow) {
  constexpr uint64_t kSize = 32 * kPage;
  FakeBacking dev(kSize, kBlock);
  dev.set_read_limit(kSize);
  CacheOptions o = QuietOptions();
  o.readahead_max_bytes = 4 * kPage;
  PageCache cache(o);
  auto f = cache.Register(&dev, kBlock, "cnv/0");

  std::vector<uint8_t> got;
  for (uint64_t pos = 0; pos < kSize; pos += 16 << 10) {
    std::vector<uint8_t> part = ReadRange(f.get(), pos, 16 << 10, kSize);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, Pattern(0, kSize, 1));
  const std::vector<Call> reads = dev.reads();
  // Window 2, then 4 (the maximum) pages after the page that missed.
  ASSERT_GE(reads.size(), 3u);
  EXPECT_EQ(reads[0], (Call{0, 3 * kPage}));
  EXPECT_EQ(reads[1], (Call{3 * kPage, 5 * kPage}));
  EXPECT_EQ(reads[2], (Call{8 * kPage, 5 * kPage}));
  EXPECT_LT(reads.size(), 10u);
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.readahead_pages + s.misses, 32u);
  EXPECT_GT(s.readahead_pages, 20u);
}

TEST(PageCacheTest, RandomReadsDoNotReadAhead) {
  constexpr uint64_t kSize = 32 * kPage;
  FakeBacking dev(kSize, kBlock);
  CacheOptions o = QuietOptions();
  o.readahead_max_bytes = 4 * kPage;
  PageCache cache(o);
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  for (uint64_t page : {10, 3, 20, 7}) {
    EXPECT_EQ(ReadRange(f.get(), page * kPage + 100, 100, kSize),
              Pattern(page * kPage + 100, 100, 1));
  }
  EXPECT_EQ(cache.stats().readahead_pages, 0u);
  EXPECT_EQ(dev.reads().size(), 4u);
  for (const Call& c : dev.reads()) EXPECT_EQ(c.len, kPage);
}

TEST(PageCacheTest, WriteThenReadBack) {
  constexpr uint64_t kSize = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  std::vector<uint8_t> model = Pattern(0, kSize, 1);

  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    const uint64_t off = rng() % (kSize - 1);
    const size_t len = 1 + rng() % std::min<uint64_t>(3 * kPage, kSize - off);
    std::vector<uint8_t> data = Pattern(off, len, 100 + i);
    WriteOk(f.get(), off, data, kSize);
    std::copy(data.begin(), data.end(), model.begin() + off);
  }
  EXPECT_EQ(ReadRange(f.get(), 0, kSize, kSize), model);
  EXPECT_TRUE(dev.writes().empty()) << "buffered writes went to the device early";
  EXPECT_GT(f->dirty_bytes(), 0u);
  EXPECT_EQ(f->dirty_bytes(), cache.stats().dirty_bytes);

  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_EQ(f->dirty_bytes(), 0u);
  EXPECT_EQ(dev.Contents(0, kSize), model);
}

TEST(PageCacheTest, PartialBlockWriteReadsOnlyThatBlock) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  std::vector<uint8_t> model = Pattern(0, kSize, 1);
  auto write = [&](uint64_t off, size_t len, uint32_t seed) {
    std::vector<uint8_t> data = Pattern(off, len, seed);
    WriteOk(f.get(), off, data, kSize);
    std::copy(data.begin(), data.end(), model.begin() + off);
  };

  write(3 * kBlock + 10, 100, 2);
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{3 * kBlock, kBlock}}));
  dev.ClearCalls();
  write(5 * kBlock + 100, kBlock, 3);  // straddles blocks 5 and 6
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{5 * kBlock, kBlock}, {6 * kBlock, kBlock}}));
  dev.ClearCalls();
  write(12 * kBlock, kBlock, 4);  // whole block: nothing to read
  EXPECT_TRUE(dev.reads().empty());
  EXPECT_EQ(f->dirty_bytes(), 4u * kBlock);

  // Reading the page now fetches just the holes.
  EXPECT_EQ(ReadRange(f.get(), 0, kPage, kSize),
            std::vector<uint8_t>(model.begin(), model.begin() + kPage));
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{0, 3 * kBlock},
                                            {4 * kBlock, kBlock},
                                            {7 * kBlock, 5 * kBlock},
                                            {13 * kBlock, 3 * kBlock}}));
  EXPECT_TRUE(dev.writes().empty());
}

TEST(PageCacheTest, WriteBackCoalescesContiguousBlocksInAscendingOrder) {
  constexpr uint64_t kSize = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  std::vector<uint8_t> model = Pattern(0, kSize, 1);
  auto write = [&](uint64_t off, size_t len, uint32_t seed) {
    std::vector<uint8_t> data = Pattern(off, len, seed);
    WriteOk(f.get(), off, data, kSize);
    std::copy(data.begin(), data.end(), model.begin() + off);
  };
  // Dirty, written in descending order: [page 0 block 14 .. page 2 block 1]
  // (one run over two page boundaries), page 2 block 5, page 5 blocks 3-4.
  write(5 * kPage + 3 * kBlock, 2 * kBlock, 2);
  write(2 * kPage + 5 * kBlock, kBlock, 3);
  write(2 * kPage, 2 * kBlock, 4);
  write(kPage, kPage, 5);
  write(14 * kBlock, 2 * kBlock, 6);
  EXPECT_TRUE(dev.reads().empty());

  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{14 * kBlock, 2 * kBlock + kPage + 2 * kBlock},
                                             {2 * kPage + 5 * kBlock, kBlock},
                                             {5 * kPage + 3 * kBlock, 2 * kBlock}}));
  EXPECT_EQ(dev.Contents(0, kSize), model);
  EXPECT_EQ(f->dirty_bytes(), 0u);
  EXPECT_EQ(cache.stats().writeback_bytes, 4u * kBlock + kPage + 3 * kBlock);

  // Nothing dirty: nothing written.
  dev.ClearCalls();
  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_TRUE(dev.writes().empty());
}

TEST(PageCacheTest, WriteBackOfARangeWritesOnlyThatRange) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), 0, Pattern(0, 2 * kPage, 9), kSize);
  ASSERT_TRUE(f->WriteBack(kBlock + 100, 2 * kBlock).ok());  // touches blocks 1..3
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{kBlock, 3 * kBlock}}));
  EXPECT_EQ(f->dirty_bytes(), 2u * kPage - 3 * kBlock);
  dev.ClearCalls();
  ASSERT_TRUE(f->WriteBack(kPage, kPage).ok());
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{kPage, kPage}}));
}

TEST(PageCacheTest, WriteThroughWritesExactlyTheTouchedBlocks) {
  constexpr uint64_t kSize = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");

  // 4 KiB into a 64 KiB page: 4 KiB on the device, nothing read.
  const uint64_t off = 2 * kPage + 8 * kBlock;
  WriteThroughOk(f.get(), off, Pattern(off, kBlock, 2), kSize);
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{off, kBlock}}));
  EXPECT_EQ(dev.written_bytes(), kBlock);
  EXPECT_TRUE(dev.reads().empty());
  EXPECT_EQ(cache.stats().writethrough_bytes, kBlock);
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
  EXPECT_EQ(dev.Contents(off, kBlock), Pattern(off, kBlock, 2));
  // Cached: reading it back needs no device.
  EXPECT_EQ(ReadRange(f.get(), off, kBlock, kSize), Pattern(off, kBlock, 2));
  EXPECT_TRUE(dev.reads().empty());

  // Unaligned: the partial blocks are completed from the device, and only
  // the two touched blocks go out, in one request.
  dev.ClearCalls();
  WriteThroughOk(f.get(), 1000, Pattern(1000, 5000, 3), kSize);
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{0, kBlock}, {kBlock, kBlock}}));
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{0, 2 * kBlock}}));
  std::vector<uint8_t> expect = Pattern(0, 2 * kBlock, 1);
  std::vector<uint8_t> data = Pattern(1000, 5000, 3);
  std::copy(data.begin(), data.end(), expect.begin() + 1000);
  EXPECT_EQ(dev.Contents(0, 2 * kBlock), expect);

  // Across page boundaries: one request.
  dev.ClearCalls();
  const uint64_t span = 4 * kPage - kBlock;
  WriteThroughOk(f.get(), span, Pattern(span, kPage + 2 * kBlock, 4), kSize);
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{span, kPage + 2 * kBlock}}));
  EXPECT_EQ(dev.Contents(span, kPage + 2 * kBlock), Pattern(span, kPage + 2 * kBlock, 4));
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
}

TEST(PageCacheTest, WriteThroughLeavesOtherDirtyBlocksAlone) {
  constexpr uint64_t kSize = 2 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), 0, Pattern(0, kBlock, 2), kSize);
  WriteThroughOk(f.get(), 5 * kBlock, Pattern(5 * kBlock, kBlock, 3), kSize);
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{5 * kBlock, kBlock}}));
  EXPECT_EQ(f->dirty_bytes(), kBlock);
  // Write-through over a dirty block makes it clean.
  dev.ClearCalls();
  WriteThroughOk(f.get(), 0, Pattern(0, 2 * kBlock, 4), kSize);
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{0, 2 * kBlock}}));
  EXPECT_EQ(f->dirty_bytes(), 0u);
}

TEST(PageCacheTest, WriteThroughErrorReturnsItAndLeavesNothingDirty) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), 3 * kBlock, Pattern(3 * kBlock, kBlock, 2), kSize);
  ASSERT_EQ(f->dirty_bytes(), kBlock);

  dev.set_fail_writes(true);
  std::vector<uint8_t> data = Pattern(0, 8 * kBlock, 3);
  Result<size_t> n = f->WriteThrough(0, data.data(), data.size(), kSize);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().err(), EIO);
  EXPECT_EQ(f->dirty_bytes(), 0u);
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
  EXPECT_EQ(cache.stats().writethrough_bytes, 0u);

  // The cached copy was dropped: reading comes from the device again.
  dev.set_fail_writes(false);
  dev.ClearCalls();
  EXPECT_EQ(ReadRange(f.get(), 0, 8 * kBlock, kSize), Pattern(0, 8 * kBlock, 1));
  EXPECT_FALSE(dev.reads().empty());
  // And WriteBack finds nothing to do.
  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_TRUE(dev.writes().empty());
}

TEST(PageCacheTest, WriteBackErrorKeepsPagesDirty) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), 0, Pattern(0, 2 * kPage, 2), kSize);
  WriteOk(f.get(), 3 * kPage, Pattern(3 * kPage, kBlock, 2), kSize);

  dev.set_fail_writes(true);
  Status st = f->WriteBack(0, 0);
  EXPECT_EQ(st.err(), EIO);
  EXPECT_EQ(f->dirty_bytes(), 2u * kPage + kBlock);
  EXPECT_EQ(cache.stats().writeback_bytes, 0u);
  EXPECT_EQ(cache.WriteBackAll().err(), EIO);

  dev.set_fail_writes(false);
  dev.ClearCalls();
  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{0, 2 * kPage}, {3 * kPage, kBlock}}));
  EXPECT_EQ(f->dirty_bytes(), 0u);
  EXPECT_EQ(dev.Contents(0, 2 * kPage), Pattern(0, 2 * kPage, 2));
}

TEST(PageCacheTest, ReadErrorIsReturnedAndRetried) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  dev.set_fail_reads(true);
  uint8_t buf[64];
  Result<size_t> n = f->Read(10, buf, sizeof(buf), kSize);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().err(), EIO);
  dev.set_fail_reads(false);
  EXPECT_EQ(ReadRange(f.get(), 10, 64, kSize), Pattern(10, 64, 1));
}

TEST(PageCacheTest, InvalidateWritesBackThenDrops) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), kBlock, Pattern(kBlock, kBlock, 2), kSize);
  WriteOk(f.get(), kPage, Pattern(kPage, kBlock, 3), kSize);
  ASSERT_EQ(cache.stats().cached_bytes, 2u * kPage);

  ASSERT_TRUE(f->Invalidate(100, 200).ok());
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{kBlock, kBlock}}));
  EXPECT_EQ(cache.stats().cached_bytes, kPage);
  EXPECT_EQ(f->dirty_bytes(), kBlock);  // page 1 untouched
  EXPECT_EQ(dev.Contents(kBlock, kBlock), Pattern(kBlock, kBlock, 2));

  // Gone from the cache: the next read goes to the device.
  dev.ClearCalls();
  EXPECT_EQ(ReadRange(f.get(), kBlock, kBlock, kSize), Pattern(kBlock, kBlock, 2));
  EXPECT_EQ(dev.reads(), (std::vector<Call>{{0, kPage}}));

  // len 0: to the end.
  dev.ClearCalls();
  ASSERT_TRUE(f->Invalidate(0, 0).ok());
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{kPage, kBlock}}));
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
}

TEST(PageCacheTest, InvalidateOfAPageInUseReturnsEbusy) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  dev.CloseGate();
  std::thread reader(
      [&] { EXPECT_EQ(ReadRange(f.get(), kPage, 100, kSize), Pattern(kPage, 100, 1)); });
  dev.WaitForBlockedReads(1);  // the reader holds page 1 while it loads
  EXPECT_EQ(f->Invalidate(kPage, kPage).err(), EBUSY);
  EXPECT_TRUE(f->Invalidate(2 * kPage, kPage).ok());  // other pages are fine
  dev.OpenGate();
  reader.join();
  EXPECT_TRUE(f->Invalidate(kPage, kPage).ok());
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
}

TEST(PageCacheTest, DiscardDropsWithoutWritingBack) {
  constexpr uint64_t kSize = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "seq/0");
  WriteOk(f.get(), 0, Pattern(0, 4 * kPage, 2), kSize);
  const uint64_t cut = 2 * kPage + 2 * kBlock;

  f->Discard(cut);
  EXPECT_TRUE(dev.writes().empty());
  EXPECT_EQ(f->dirty_bytes(), cut);
  EXPECT_EQ(cache.stats().cached_bytes, 3u * kPage);  // page 2 keeps its lower blocks

  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_EQ(dev.writes(), (std::vector<Call>{{0, cut}}));
  // The discarded range reads what the device has.
  EXPECT_EQ(ReadRange(f.get(), cut, kPage, kSize), Pattern(cut, kPage, 1));
  EXPECT_EQ(ReadRange(f.get(), 0, cut, kSize), Pattern(0, cut, 2));

  f->Discard(0);
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(f->dirty_bytes(), 0u);
}

TEST(PageCacheTest, EvictionKeepsMemoryBoundedAndDataCorrect) {
  constexpr uint64_t kSize = 64 * kPage;
  constexpr uint64_t kCapacity = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  dev.set_read_limit(kSize);
  CacheOptions o = QuietOptions(kCapacity);
  o.dirty_limit_percent = 50;
  o.readahead_max_bytes = 4 * kPage;
  PageCache cache(o);
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  std::vector<uint8_t> model = Pattern(0, kSize, 1);

  std::mt19937 rng(7);
  for (int i = 0; i < 1500; ++i) {
    const uint64_t off = rng() % (kSize - 1);
    const size_t len = 1 + rng() % std::min<uint64_t>(3 * kPage, kSize - off);
    switch (rng() % 4) {
      case 0:
      case 1:
        ASSERT_EQ(ReadRange(f.get(), off, len, kSize),
                  std::vector<uint8_t>(model.begin() + off, model.begin() + off + len))
            << "op " << i;
        break;
      case 2: {
        std::vector<uint8_t> data = Pattern(off, len, 10 + i);
        WriteOk(f.get(), off, data, kSize);
        std::copy(data.begin(), data.end(), model.begin() + off);
        break;
      }
      default: {
        std::vector<uint8_t> data = Pattern(off, len, 10 + i);
        WriteThroughOk(f.get(), off, data, kSize);
        std::copy(data.begin(), data.end(), model.begin() + off);
        break;
      }
    }
    ASSERT_LE(cache.stats().cached_bytes, kCapacity) << "op " << i;
  }
  EXPECT_GT(cache.stats().evictions, 0u);
  ASSERT_TRUE(cache.WriteBackAll().ok());
  EXPECT_EQ(dev.Contents(0, kSize), model);
  EXPECT_EQ(ReadRange(f.get(), 0, kSize, kSize), model);
}

TEST(PageCacheTest, EvictionWritesBackDirtyPagesWhenNothingIsClean) {
  constexpr uint64_t kSize = 16 * kPage;
  constexpr uint64_t kCapacity = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions(kCapacity));  // dirty limit 100%: no throttling
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  for (uint64_t page = 0; page < 10; ++page) {
    WriteOk(f.get(), page * kPage, Pattern(page * kPage, kPage, 2), kSize);
    ASSERT_LE(cache.stats().cached_bytes, kCapacity);
  }
  // Six pages had to go, each written back first.
  EXPECT_EQ(dev.writes().size(), 6u);
  EXPECT_EQ(cache.stats().evictions, 6u);
  EXPECT_EQ(f->dirty_bytes(), kCapacity);
  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_EQ(dev.Contents(0, 10 * kPage), Pattern(0, 10 * kPage, 2));
}

TEST(PageCacheTest, CacheSmallerThanOneRequestStillWorks) {
  constexpr uint64_t kSize = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions(kPage));  // a single page
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteThroughOk(f.get(), 100, Pattern(100, 3 * kPage, 2), kSize);
  WriteOk(f.get(), 4 * kPage, Pattern(4 * kPage, 3 * kPage, 3), kSize);
  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  std::vector<uint8_t> expect = Pattern(0, kSize, 1);
  std::vector<uint8_t> a = Pattern(100, 3 * kPage, 2);
  std::vector<uint8_t> b = Pattern(4 * kPage, 3 * kPage, 3);
  std::copy(a.begin(), a.end(), expect.begin() + 100);
  std::copy(b.begin(), b.end(), expect.begin() + 4 * kPage);
  EXPECT_EQ(ReadRange(f.get(), 0, kSize, kSize), expect);
  EXPECT_EQ(dev.Contents(0, kSize), expect);
  EXPECT_LE(cache.stats().cached_bytes, kPage);
}

TEST(PageCacheTest, WaitsForAPinnedPageWhenTheCacheIsFull) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions(kPage));
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  dev.CloseGate();
  std::thread first([&] { EXPECT_EQ(ReadRange(f.get(), 0, 100, kSize), Pattern(0, 100, 1)); });
  dev.WaitForBlockedReads(1);
  // The only page is pinned by `first`: this reader waits for it, then
  // evicts it.
  std::thread second(
      [&] { EXPECT_EQ(ReadRange(f.get(), 2 * kPage, 100, kSize), Pattern(2 * kPage, 100, 1)); });
  EXPECT_LE(cache.stats().cached_bytes, kPage);
  dev.OpenGate();
  first.join();
  second.join();
  EXPECT_LE(cache.stats().cached_bytes, kPage);
  EXPECT_EQ(cache.stats().evictions, 1u);
}

TEST(PageCacheTest, ConcurrentReadersOfAMissingPageReadItOnce) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  dev.CloseGate();
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back(
        [&, i] { EXPECT_EQ(ReadRange(f.get(), 1000 * i, 500, kSize), Pattern(1000 * i, 500, 1)); });
  }
  dev.WaitForBlockedReads(1);
  // Give the others a chance to queue on the page (coverage only).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  dev.OpenGate();
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(dev.reads().size(), 1u);
}

TEST(PageCacheTest, BackgroundThreadWritesBackOldDirtyPages) {
  constexpr uint64_t kSize = 8 * kPage;
  FakeBacking dev(kSize, kBlock);
  CacheOptions o = QuietOptions();
  o.writeback_interval_ms = 50;
  PageCache cache(o);
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), kBlock, Pattern(kBlock, 3 * kPage, 2), kSize);
  ASSERT_TRUE(Eventually([&] { return f->dirty_bytes() == 0; }))
      << "dirty pages never written back";
  EXPECT_EQ(dev.Contents(kBlock, 3 * kPage), Pattern(kBlock, 3 * kPage, 2));
  EXPECT_EQ(cache.stats().writeback_bytes, 3u * kPage);
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
}

TEST(PageCacheTest, WritersAreThrottledAtTheDirtyLimit) {
  constexpr uint64_t kSize = 32 * kPage;
  constexpr uint64_t kCapacity = 16 * kPage;
  FakeBacking dev(kSize, kBlock);
  CacheOptions o = QuietOptions(kCapacity);
  o.dirty_limit_percent = 25;
  PageCache cache(o);
  const uint64_t limit = kCapacity / 4;
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  for (uint64_t off = 0; off < kCapacity; off += 16 << 10) {
    WriteOk(f.get(), off, Pattern(off, 16 << 10, 2), kSize);
    ASSERT_LE(cache.stats().dirty_bytes, limit) << "after the write at " << off;
  }
  EXPECT_GE(dev.written_bytes(), kCapacity - limit);
  ASSERT_TRUE(f->WriteBack(0, 0).ok());
  EXPECT_EQ(dev.Contents(0, kCapacity), Pattern(0, kCapacity, 2));
}

TEST(PageCacheTest, WriteBackAllCoversEveryFile) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev_a(kSize, kBlock);
  FakeBacking dev_b(kSize, 512);
  PageCache cache(QuietOptions());
  auto a = cache.Register(&dev_a, kBlock, "cnv/0");
  auto b = cache.Register(&dev_b, 512, "cnv/1");
  WriteOk(a.get(), 0, Pattern(0, kBlock, 2), kSize);
  WriteOk(b.get(), 512, Pattern(512, 512, 3), kSize);
  EXPECT_EQ(cache.stats().dirty_bytes, kBlock + 512u);
  ASSERT_TRUE(cache.WriteBackAll().ok());
  EXPECT_EQ(dev_a.writes(), (std::vector<Call>{{0, kBlock}}));
  EXPECT_EQ(dev_b.writes(), (std::vector<Call>{{512, 512}}));
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
}

TEST(PageCacheTest, DestroyingAFileDropsItsPages) {
  constexpr uint64_t kSize = 4 * kPage;
  FakeBacking dev(kSize, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&dev, kBlock, "cnv/0");
  WriteOk(f.get(), 0, Pattern(0, 2 * kPage, 2), kSize);
  EXPECT_EQ(ReadRange(f.get(), 3 * kPage, 10, kSize), Pattern(3 * kPage, 10, 1));
  f.reset();
  EXPECT_EQ(cache.stats().cached_bytes, 0u);
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
  EXPECT_TRUE(dev.writes().empty());
}

// Several threads read and write one file through a cache much smaller than
// the file, with background write-back and throttling on. Each thread owns
// the 1000-byte chunks with (offset / 1000) % kThreads == its id, so pages
// and even blocks are shared while bytes are not; a thread checks its own
// bytes on every read, and at the end the device and the cache must match
// the merged model.
TEST(PageCacheTest, ConcurrentReadersAndWritersMatchAModel) {
  constexpr uint32_t kStressPage = 16u << 10;
  constexpr uint32_t kStressBlock = 512;
  constexpr uint64_t kSize = 64 * kStressPage;
  constexpr uint64_t kCapacity = 8 * kStressPage;
  constexpr int kThreads = 4;
  constexpr int kOps = 1500;
  constexpr uint64_t kChunk = 1000;
  FakeBacking dev(kSize, kStressBlock);
  dev.set_read_limit(kSize);
  CacheOptions o;
  o.capacity_bytes = kCapacity;
  o.page_size = kStressPage;
  o.writeback_interval_ms = 20;
  o.dirty_limit_percent = 30;
  o.readahead_max_bytes = 4 * kStressPage;
  PageCache cache(o);
  auto f = cache.Register(&dev, kStressBlock, "cnv/0");
  std::vector<uint8_t> model = Pattern(0, kSize, 1);  // each byte written by its owner only
  std::atomic<bool> over_capacity{false};

  auto worker = [&](int id) {
    std::mt19937 rng(1000 + id);
    for (int i = 0; i < kOps; ++i) {
      const unsigned op = rng() % 10;
      if (op < 4) {
        const uint64_t off = rng() % kSize;
        const size_t len = 1 + rng() % std::min<uint64_t>(3 * kStressPage, kSize - off);
        std::vector<uint8_t> buf(len);
        Result<size_t> n = f->Read(off, buf.data(), len, kSize);
        ASSERT_TRUE(n.ok()) << n.status().ToString();
        ASSERT_EQ(*n, len);
        for (size_t k = 0; k < len; ++k) {
          const uint64_t at = off + k;
          if ((at / kChunk) % kThreads != static_cast<uint64_t>(id)) continue;
          ASSERT_EQ(buf[k], model[at]) << "thread " << id << " op " << i << " byte " << at;
        }
      } else if (op < 9) {
        // Part of one of our chunks: unaligned, often sharing a block with
        // another thread's chunk.
        const uint64_t chunk = (rng() % (kSize / kChunk / kThreads)) * kThreads + id;
        const uint64_t start = chunk * kChunk + rng() % kChunk;
        const uint64_t stop = std::min(chunk * kChunk + kChunk, kSize);
        if (start >= stop) continue;
        const size_t len = 1 + rng() % (stop - start);
        std::vector<uint8_t> data = Pattern(start, len, 100 * id + i);
        std::copy(data.begin(), data.end(), model.begin() + start);
        Result<size_t> n = op < 7 ? f->Write(start, data.data(), len, kSize)
                                  : f->WriteThrough(start, data.data(), len, kSize);
        ASSERT_TRUE(n.ok()) << n.status().ToString();
      } else {
        const uint64_t off = rng() % kSize;
        const uint64_t len = rng() % (4 * kStressPage);
        if (rng() % 2 == 0) {
          ASSERT_TRUE(f->WriteBack(off, len).ok());
        } else {
          Status st = f->Invalidate(off, len);
          ASSERT_TRUE(st.ok() || st.err() == EBUSY) << st.ToString();
        }
      }
      if (cache.stats().cached_bytes > kCapacity) over_capacity = true;
    }
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id) threads.emplace_back(worker, id);
  for (std::thread& t : threads) t.join();

  EXPECT_FALSE(over_capacity.load());
  ASSERT_TRUE(cache.WriteBackAll().ok());
  EXPECT_EQ(cache.stats().dirty_bytes, 0u);
  EXPECT_TRUE(dev.Contents(0, kSize) == model) << "device differs from the model";
  EXPECT_TRUE(ReadRange(f.get(), 0, kSize, kSize) == model) << "cache differs from the model";
}

// ---- Mapped views ----

TEST(PageCacheViewTest, AViewIsOneContiguousReadOnlyStretchAcrossScatteredPages) {
  FakeBacking backing(16 * kPage, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&backing, kBlock, "f");
  // Pages 5, then 3, then 4: their slots are not in file order.
  ReadRange(f.get(), 5 * kPage, 1, 16 * kPage);
  ReadRange(f.get(), 3 * kPage, 1, 16 * kPage);
  auto view = f->Map(3 * kPage + 100, 2 * kPage + 50, 16 * kPage);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ((*view)->size(), 2 * kPage + 50);
  const auto* p = static_cast<const uint8_t*>((*view)->data());
  EXPECT_EQ(std::vector<uint8_t>(p, p + 2 * kPage + 50),
            Pattern(3 * kPage + 100, 2 * kPage + 50, 1));
  // A later write shows through at once (the same memory).
  WriteOk(f.get(), 4 * kPage, Pattern(0, 4096, 9), 16 * kPage);
  EXPECT_EQ(std::vector<uint8_t>(p + kPage - 100, p + kPage - 100 + 4096), Pattern(0, 4096, 9));
  // Another process would map the same view from the arena's descriptor,
  // extent by extent: the same bytes.
  ASSERT_GE(cache.arena_fd(), 0);
  EXPECT_EQ((*view)->start(), 100u);
  std::vector<uint8_t> via_fd;
  for (const CacheView::Extent& e : (*view)->extents()) {
    EXPECT_LE(e.arena_offset + e.length, cache.arena_size());
    std::vector<uint8_t> part(e.length);
    ASSERT_EQ(pread(cache.arena_fd(), part.data(), e.length, static_cast<off_t>(e.arena_offset)),
              static_cast<ssize_t>(e.length));
    via_fd.insert(via_fd.end(), part.begin(), part.end());
  }
  ASSERT_EQ(via_fd.size(), 3 * kPage);
  EXPECT_TRUE(std::equal(p, p + 2 * kPage + 50, via_fd.begin() + 100));
  // The descriptor is read-only.
  EXPECT_EQ(pwrite(cache.arena_fd(), "x", 1, 0), -1);
}

TEST(PageCacheViewTest, PinnedPagesSurviveEvictionAndRefuseInvalidation) {
  FakeBacking backing(64 * kPage, kBlock);
  PageCache cache(QuietOptions(8 * kPage));
  auto f = cache.Register(&backing, kBlock, "f");
  auto view = f->Map(0, kPage, 64 * kPage);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  // Stream far more than the cache through it.
  for (uint64_t i = 1; i < 64; ++i) ReadRange(f.get(), i * kPage, kPage, 64 * kPage);
  backing.ClearCalls();
  ReadRange(f.get(), 0, kPage, 64 * kPage);
  EXPECT_TRUE(backing.reads().empty()) << "the pinned page was evicted";
  Status st = f->Invalidate(0, kPage);
  EXPECT_EQ(st.err(), EBUSY);
  EXPECT_NE(st.message().find("pinned by a mapped view"), std::string::npos) << st.ToString();
  view->reset();
  EXPECT_TRUE(f->Invalidate(0, kPage).ok());
}

TEST(PageCacheViewTest, ViewsMayPinAtMostHalfTheCache) {
  FakeBacking backing(64 * kPage, kBlock);
  PageCache cache(QuietOptions(8 * kPage));
  auto f = cache.Register(&backing, kBlock, "f");
  auto a = f->Map(0, 3 * kPage, 64 * kPage);
  ASSERT_TRUE(a.ok());
  auto b = f->Map(8 * kPage, 2 * kPage, 64 * kPage);
  EXPECT_EQ(b.status().err(), ENOMEM);
  auto c = f->Map(8 * kPage, kPage, 64 * kPage);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(f->Map(64 * kPage - 10, 11, 64 * kPage).status().err(), EINVAL);  // past the end
}

TEST(PageCacheViewTest, CachedTellsWhetherEveryBlockIsUpToDate) {
  FakeBacking backing(16 * kPage, kBlock);
  PageCache cache(QuietOptions());
  auto f = cache.Register(&backing, kBlock, "f");
  EXPECT_FALSE(f->Cached(0, 100));
  WriteOk(f.get(), 0, Pattern(0, 4096, 2), 16 * kPage);
  EXPECT_TRUE(f->Cached(0, 4096));
  EXPECT_FALSE(f->Cached(0, 4097));  // the next block was never loaded
  ReadRange(f.get(), 0, kPage + 1, 16 * kPage);
  EXPECT_TRUE(f->Cached(100, kPage));
}

}  // namespace
}  // namespace zfile
