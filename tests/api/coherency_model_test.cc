// The randomized model test of cache and direct I/O coherency (issue 4;
// SPEC sections 4 and 5), through the C API on every backend.
//
// Four threads mix buffered, direct, O_SYNC/O_DSYNC and RWF_DSYNC writes,
// buffered, direct and RWF_NOWAIT reads, fsync and mapped views (including
// direct writes whose source is a view) on one conventional file. One
// thread appends to a sequential file (buffered, direct, O_SYNC, RWF_DSYNC,
// RWF_NOWAIT), reads it back, keeps views of it and resets (sometimes first
// finishes) the zone when it is nearly full; another thread reads the
// growing file concurrently. Every read and every view is checked against
// a model of the bytes the file must hold.
//
// Ownership keeps the model exact while others write. The first MiB of the
// conventional file is cut into 16 KiB segments dealt round-robin to the
// four threads, so every 64 KiB cache page holds a segment of each of them:
// pages are shared, which is what exercises page-level coherency and the
// direct-write fallback, yet every byte has a single writer, which checks it
// exactly. The second MiB has two-page segments, so that direct writes also
// span pages of which only some are pinned. Reads and views may span other
// threads' bytes; only one's own are checked.
// On the sequential file appended bytes never change until a reset; the
// reader checks only below a size the appender published, and a reset waits
// until the reader has stepped aside.
//
// Environment: ZFILE_MODEL_SEED=N replays a seed (each thread's choices; the
// interleaving still varies), ZFILE_MODEL_OPS=N sets the operation budget.
#include <fcntl.h>
#include <sys/uio.h>  // RWF_*

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/log.h"
#include "volume_fixture.h"

namespace zfile::testing {
namespace {

constexpr uint64_t kPage = 64 << 10;  // the default cache_page_size
constexpr int kCnvThreads = 4;
// cnv/0 [0, kSharedRange): 16 KiB segments, so every page has one of each
// owner. [kSharedRange, kCnvRange): two-page segments, so that direct
// writes span pages of which the owner's own views pin only some.
constexpr uint64_t kSmallSegment = 16 << 10;
constexpr uint64_t kSharedRange = 1 << 20;
constexpr uint64_t kLargeSegment = 2 * kPage;
constexpr uint64_t kCnvRange = 2 << 20;
constexpr size_t kMaxWide = 3 * kPage;  // reads spanning several pages and owners
constexpr size_t kMaxView = 2 * kPage;
constexpr size_t kMaxSeqRead = 256 << 10;
constexpr size_t kMaxAppendBlocks = 32;
constexpr size_t kMaxMisalign = 64;  // unaligned user buffers, for every kind of I/O
constexpr size_t kBufLen = kMaxSeqRead + kMaxMisalign;

static_assert(kPage / kSmallSegment == kCnvThreads, "each page must be shared by every writer");
static_assert((kCnvRange - kSharedRange) % (kCnvThreads * kLargeSegment) == 0);

// The segment of cnv/0 that holds `off`, and its owner.
struct Segment {
  uint64_t start = 0;
  uint64_t end = 0;
  int owner = 0;
};
Segment SegmentAt(uint64_t off) {
  const bool shared = off < kSharedRange;
  const uint64_t base = shared ? 0 : kSharedRange;
  const uint64_t size = shared ? kSmallSegment : kLargeSegment;
  const uint64_t index = (off - base) / size;
  return {base + index * size, base + (index + 1) * size, static_cast<int>(index % kCnvThreads)};
}

// splitmix64: fast, and one 64-bit seed replays a thread's choices.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  // A read of the sequential file starting at or below `size`, running past
  // it at times (the file clips there); block-aligned for direct I/O.
  std::pair<uint64_t, size_t> SeqReadRange(uint64_t size, bool direct) {
    if (direct) {
      const uint64_t off = Below(size / kBlock + 1) * kBlock;
      return {off, (1 + Below(kMaxSeqRead / kBlock)) * kBlock};
    }
    const uint64_t off = Below(size + 1);
    return {off, 1 + Below(kMaxSeqRead)};
  }
  // Fresh random bytes for every write, so that stale or misplaced data
  // never matches by accident.
  void Fill(uint8_t* p, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      const uint64_t v = Next();
      std::memcpy(p + i, &v, 8);
    }
    if (i < len) {
      const uint64_t v = Next();
      std::memcpy(p + i, &v, len - i);
    }
  }

 private:
  uint64_t s_;
};

enum Op : int {
  // Conventional file (cnv/0), four owners.
  kBufWrite,
  kDirectWrite,
  kSyncWrite,   // through an O_SYNC or O_DSYNC handle
  kDsyncWrite,  // RWF_DSYNC on a plain handle
  kNowaitWrite,
  kBufRead,
  kWideBufRead,
  kDirectRead,
  kWideDirectRead,
  kNowaitRead,
  kFsync,
  kMap,
  kCheckViews,
  kUnmap,
  kDirectFromOwnView,    // a direct write whose source is a view of the same range
  kDirectFromOtherView,  // ... of another own range
  // Sequential file (seq/0), the appender.
  kAppend,
  kDirectAppend,
  kSyncAppend,
  kDsyncAppend,
  kNowaitAppend,
  kSeqBufRead,
  kSeqDirectRead,
  kSeqMap,
  kSeqCheckViews,
  kSeqUnmap,
  kSeqFsync,
  kSeqBusyReset,  // reset and finish with a live view: EBUSY
  kSeqFinish,
  kSeqReset,
  // Sequential file, the concurrent reader.
  kTailBufRead,
  kTailDirectRead,
  kTailNowaitRead,
  kTailMap,
  kNrOps
};

constexpr std::array<const char*, kNrOps> kOpNames = {
    "buffered write",
    "direct write",
    "O_SYNC/O_DSYNC write",
    "RWF_DSYNC write",
    "RWF_NOWAIT write",
    "buffered read (own)",
    "buffered read (wide)",
    "direct read (own)",
    "direct read (wide)",
    "RWF_NOWAIT read",
    "fsync",
    "map",
    "check live views",
    "unmap",
    "direct write from a view (same range)",
    "direct write from a view (other range)",
    "seq buffered append",
    "seq direct append",
    "seq O_SYNC append",
    "seq RWF_DSYNC write",
    "seq RWF_NOWAIT write",
    "seq buffered read",
    "seq direct read",
    "seq map",
    "seq check live views",
    "seq unmap",
    "seq fsync",
    "seq reset/finish with a view (EBUSY)",
    "seq finish",
    "seq reset",
    "tail buffered read",
    "tail direct read",
    "tail RWF_NOWAIT read",
    "tail map",
};

struct Weighted {
  Op op;
  int weight;
};

Op Pick(Rng& rng, const std::vector<Weighted>& table) {
  int total = 0;
  for (const Weighted& w : table) total += w.weight;
  int x = static_cast<int>(rng.Below(static_cast<uint64_t>(total)));
  for (const Weighted& w : table) {
    if (x < w.weight) return w.op;
    x -= w.weight;
  }
  return table.back().op;
}

struct Range {
  uint64_t off = 0;
  size_t len = 0;
};

struct ModelConfig {
  std::string mount;          // mount options
  uint64_t ops = 0;           // budget in the default build on the mem backend
  size_t max_live_views = 3;  // per thread
  bool map_may_fail = false;  // a tight cache may refuse a view with ENOMEM
};

// What the threads share: the models and the failures.
struct Shared {
  Shared() : cnv(kCnvRange), seq(kZoneCap) {}

  std::atomic<uint64_t> issued{0};  // operations started, for the progress report

  // Expected bytes of cnv/0 [0, kCnvRange): each byte written only by its
  // segment's owner.
  std::vector<uint8_t> cnv;
  // Expected bytes of seq/0 below seq_published. The appender fills bytes
  // above it before publishing them (release), readers read below what
  // they loaded (acquire).
  std::vector<uint8_t> seq;
  std::atomic<uint64_t> seq_published{0};
  // A reset changes bytes below the published size: the reader holds
  // reset_mu shared for each operation and stays out while reset_pending,
  // so that it neither checks across a reset nor starves it.
  std::shared_mutex reset_mu;
  std::atomic<bool> reset_pending{false};

  void Fail(const std::string& what) {
    if (failures.fetch_add(1) < kKeptFailures) {
      std::lock_guard<std::mutex> lock(mu);
      first_failures.push_back(what);
    }
  }
  static constexpr uint64_t kKeptFailures = 12;
  std::atomic<uint64_t> failures{0};
  std::mutex mu;
  std::vector<std::string> first_failures;
};

std::string Hex(uint8_t b) {
  char s[8];
  std::snprintf(s, sizeof(s), "0x%02x", b);
  return s;
}

class Worker {
 public:
  Worker(Shared* sh, const ModelConfig& cfg, int id, uint64_t seed, uint64_t quota)
      : sh_(sh), cfg_(cfg), id_(id), quota_(quota), rng_(seed), buf_(MakeBuf(kBufLen)) {}
  virtual ~Worker() = default;

  void Run() {
    while (Claim()) {
      const Op op = Step();
      current_.store(-1, std::memory_order_relaxed);
      done_[op]++;
    }
    Finish();
  }

  const std::array<uint64_t, kNrOps>& done() const { return done_; }
  const std::array<uint64_t, kNrOps>& eagain() const { return eagain_; }
  const std::array<uint64_t, kNrOps>& refused() const { return refused_; }
  // The operation running now (-1 between operations), for the hang report.
  int current() const { return current_.load(std::memory_order_relaxed); }
  int id() const { return id_; }

 protected:
  struct LiveView {
    uint64_t off = 0;
    size_t len = 0;
    const uint8_t* data = nullptr;
    zfile_view* view = nullptr;
  };

  // Each thread has its own share of the budget, so that cheap operations
  // (the reader's) do not crowd out slow ones (fdatasync on emu).
  virtual bool Claim() {
    if (steps_ == quota_) return false;
    ++steps_;
    sh_->issued.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // Runs one operation and returns its kind.
  virtual Op Step() = 0;
  virtual void Finish() {}

  Op Begin(Op op) {
    current_.store(op, std::memory_order_relaxed);
    return op;
  }

  void Fail(Op op, const std::string& what) {
    sh_->Fail("thread " + std::to_string(id_) + ", " + kOpNames[op] + ": " + what);
  }
  void FailCall(Op op, const std::string& call, long long got, long long want) {
    Fail(op, call + " returned " + std::to_string(got) + ", expected " + std::to_string(want) +
                 (got < 0 ? std::string(" (") + std::strerror(static_cast<int>(-got)) + ": " +
                                zfile_last_error() + ")"
                          : ""));
  }

  // `got` holds the file's bytes [off, off+len), `want` the model's.
  bool Compare(Op op, const char* via, const uint8_t* got, const uint8_t* want, uint64_t off,
               size_t len) {
    if (std::memcmp(got, want, len) == 0) return true;
    size_t first = 0;
    while (got[first] == want[first]) ++first;
    size_t bad = 0;
    for (size_t i = first; i < len; ++i) bad += got[i] != want[i];
    Fail(op, std::string(via) + ": mismatch at offset " + std::to_string(off + first) +
                 " (checking " + std::to_string(len) + " bytes at " + std::to_string(off) +
                 "): expected " + Hex(want[first]) + ", got " + Hex(got[first]) + "; " +
                 std::to_string(bad) + " bytes differ");
    return false;
  }

  uint8_t* IoBuffer() {
    // Direct I/O needs aligned offsets and lengths, not aligned memory (the
    // library bounces): unaligned user buffers are legal for every kind.
    return buf_.get() + (rng_.OneIn(4) ? rng_.Below(kMaxMisalign) : 0);
  }

  bool MapRange(Op op, zfile_file* f, Range r, LiveView* v) {
    const void* addr = nullptr;
    zfile_view* view = nullptr;
    const int rc = zfile_map(f, r.off, r.len, &addr, &view);
    if (rc == -ENOMEM && cfg_.map_may_fail) {
      refused_[op]++;
      return false;
    }
    if (rc != 0 || addr == nullptr || view == nullptr) {
      FailCall(op, "zfile_map(" + std::to_string(r.off) + ", " + std::to_string(r.len) + ")", rc,
               0);
      return false;
    }
    *v = LiveView{r.off, r.len, static_cast<const uint8_t*>(addr), view};
    return true;
  }

  void Unmap(Op op, const LiveView& v) {
    const int rc = zfile_unmap(v.view);
    if (rc != 0) FailCall(op, "zfile_unmap", rc, 0);
  }

  // Keeps a new view alive for later checks while there is room, else drops it.
  void KeepOrUnmap(Op op, const LiveView& v) {
    if (views_.size() < cfg_.max_live_views) {
      views_.push_back(v);
    } else {
      Unmap(op, v);
    }
  }

  void UnmapOne(Op op) {
    if (views_.empty()) return;
    const size_t i = rng_.Below(views_.size());
    Unmap(op, views_[i]);
    views_.erase(views_.begin() + static_cast<ptrdiff_t>(i));
  }

  void UnmapAll(Op op) {
    for (const LiveView& v : views_) Unmap(op, v);
    views_.clear();
  }

  Shared* const sh_;
  const ModelConfig cfg_;
  const int id_;
  const uint64_t quota_;
  uint64_t steps_ = 0;
  Rng rng_;
  Buf buf_;
  std::vector<LiveView> views_;
  std::array<uint64_t, kNrOps> done_{}, eagain_{}, refused_{};
  std::atomic<int> current_{-1};
};

// One owner of the conventional range: segments id, id+4, id+8, ...
class CnvWorker final : public Worker {
 public:
  CnvWorker(Shared* sh, const ModelConfig& cfg, int id, uint64_t seed, uint64_t quota,
            zfile_file* plain, zfile_file* direct, zfile_file* sync)
      : Worker(sh, cfg, id, seed, quota),
        plain_(plain),
        direct_(direct),
        sync_(sync),
        copy_(MakeBuf(kLargeSegment)) {
    for (uint64_t off = 0; off < kCnvRange;) {
      const Segment seg = SegmentAt(off);
      if (seg.owner == id_) (off < kSharedRange ? small_ : large_).push_back(seg);
      off = seg.end;
    }
  }

 private:
  Op Step() override {
    static const std::vector<Weighted> kTable = {
        {kBufWrite, 18},           {kDirectWrite, 10}, {kSyncWrite, 6},
        {kDsyncWrite, 4},          {kNowaitWrite, 4},  {kBufRead, 12},
        {kWideBufRead, 6},         {kDirectRead, 6},   {kWideDirectRead, 4},
        {kNowaitRead, 4},          {kFsync, 2},        {kMap, 6},
        {kCheckViews, 5},          {kUnmap, 4},        {kDirectFromOwnView, 3},
        {kDirectFromOtherView, 2},
    };
    const Op op = Begin(Pick(rng_, kTable));
    switch (op) {
      case kBufWrite:
        Write(op, plain_, 0, false);
        break;
      case kDirectWrite:
        Write(op, direct_, 0, true);
        break;
      case kSyncWrite:
        Write(op, sync_, 0, false);
        break;
      case kDsyncWrite:
        Write(op, plain_, RWF_DSYNC, false);
        break;
      case kNowaitWrite:
        if (rng_.OneIn(2)) {
          Write(op, plain_, RWF_NOWAIT, false);
        } else {
          Write(op, direct_, RWF_NOWAIT, true);
        }
        break;
      case kBufRead:
        Read(op, plain_, 0, OwnRange(false, kLargeSegment));
        break;
      case kWideBufRead:
        Read(op, plain_, 0, AnyRange(false, kMaxWide));
        break;
      case kDirectRead:
        Read(op, direct_, 0, OwnRange(true, kLargeSegment));
        break;
      case kWideDirectRead:
        Read(op, direct_, 0, AnyRange(true, kMaxWide));
        break;
      case kNowaitRead:
        if (rng_.OneIn(2)) {
          Read(op, plain_, RWF_NOWAIT, AnyRange(false, kMaxWide));
        } else {
          Read(op, direct_, RWF_NOWAIT, AnyRange(true, kMaxWide));
        }
        break;
      case kFsync: {
        const int rc = zfile_fsync(rng_.OneIn(2) ? plain_ : direct_);
        if (rc != 0) FailCall(op, "zfile_fsync", rc, 0);
        break;
      }
      case kMap: {
        // Mostly within one own segment; sometimes across pages and owners.
        const Range r = rng_.OneIn(4) ? AnyRange(false, kMaxView) : OwnRange(false, kLargeSegment);
        LiveView v;
        if (!MapRange(op, plain_, r, &v)) break;
        CheckOwn(op, "new view", v.data, r.off, r.len);
        KeepOrUnmap(op, v);
        break;
      }
      case kCheckViews:
        for (const LiveView& v : views_) CheckOwn(op, "live view", v.data, v.off, v.len);
        break;
      case kUnmap:
        UnmapOne(op);
        break;
      case kDirectFromOwnView:
        DirectFromOwnView(op);
        break;
      case kDirectFromOtherView:
        DirectFromOtherView(op);
        break;
      default:
        break;
    }
    return op;
  }

  void Finish() override { UnmapAll(kUnmap); }

  // An own segment: two in three in the shared region.
  const Segment& OwnSegment() {
    return rng_.Below(3) != 0 ? small_[rng_.Below(small_.size())]
                              : large_[rng_.Below(large_.size())];
  }

  // Within one own segment; block-aligned offset and length when `aligned`.
  Range OwnRange(bool aligned, size_t max_len) {
    const Segment& seg = OwnSegment();
    const uint64_t size = seg.end - seg.start;
    if (aligned) {
      const uint64_t blocks = size / kBlock;
      const uint64_t first = rng_.Below(blocks);
      const uint64_t n = 1 + rng_.Below(std::min<uint64_t>(max_len / kBlock, blocks - first));
      return {seg.start + first * kBlock, n * kBlock};
    }
    const uint64_t start = rng_.Below(size);
    return {seg.start + start, 1 + rng_.Below(std::min<uint64_t>(max_len, size - start))};
  }

  // `len` block-aligned bytes within one own segment.
  Range OwnRangeOfLen(size_t len) {
    const Segment& seg = len > kSmallSegment ? large_[rng_.Below(large_.size())] : OwnSegment();
    const uint64_t first = rng_.Below((seg.end - seg.start - len) / kBlock + 1);
    return {seg.start + first * kBlock, len};
  }

  // Anywhere in the range, across owners.
  Range AnyRange(bool aligned, size_t max_len) {
    if (aligned) {
      const uint64_t blocks = kCnvRange / kBlock;
      const uint64_t first = rng_.Below(blocks);
      const uint64_t n = 1 + rng_.Below(std::min<uint64_t>(max_len / kBlock, blocks - first));
      return {first * kBlock, n * kBlock};
    }
    const uint64_t start = rng_.Below(kCnvRange);
    return {start, 1 + rng_.Below(std::min<uint64_t>(max_len, kCnvRange - start))};
  }

  // Checks the bytes of [off, off+len) that this thread owns.
  void CheckOwn(Op op, const char* via, const uint8_t* got, uint64_t off, size_t len) {
    const uint64_t end = off + len;
    for (uint64_t lo = off; lo < end;) {
      const Segment seg = SegmentAt(lo);
      const uint64_t hi = std::min(end, seg.end);
      if (seg.owner == id_ && !Compare(op, via, got + (lo - off), &sh_->cnv[lo], lo, hi - lo)) {
        return;  // one report per check is enough
      }
      lo = hi;
    }
  }

  // Views must show every write to their range, whatever its kind.
  void RecheckViews(Op op, Range w) {
    for (const LiveView& v : views_) {
      const uint64_t lo = std::max(v.off, w.off);
      const uint64_t hi = std::min(v.off + v.len, w.off + w.len);
      if (lo < hi) CheckOwn(op, "live view after the write", v.data + (lo - v.off), lo, hi - lo);
    }
  }

  void Write(Op op, zfile_file* f, int rwf, bool aligned) {
    const Range r = OwnRange(aligned, kLargeSegment);
    uint8_t* src = IoBuffer();
    rng_.Fill(src, r.len);
    const ssize_t n = zfile_pwrite2(f, src, r.len, r.off, rwf);
    if (n == -EAGAIN && (rwf & RWF_NOWAIT) != 0) {
      eagain_[op]++;  // legal, and nothing was written
      return;
    }
    if (n != static_cast<ssize_t>(r.len)) {
      FailCall(op, "zfile_pwrite2 at " + std::to_string(r.off), n, static_cast<long long>(r.len));
      return;
    }
    std::memcpy(&sh_->cnv[r.off], src, r.len);
    RecheckViews(op, r);
  }

  void Read(Op op, zfile_file* f, int rwf, Range r) {
    uint8_t* dst = IoBuffer();
    const ssize_t n = zfile_pread2(f, dst, r.len, r.off, rwf);
    if (n == -EAGAIN && (rwf & RWF_NOWAIT) != 0) {
      eagain_[op]++;
      return;
    }
    if (n != static_cast<ssize_t>(r.len)) {
      FailCall(op, "zfile_pread2 at " + std::to_string(r.off), n, static_cast<long long>(r.len));
      return;
    }
    CheckOwn(op, "read", dst, r.off, r.len);
  }

  // The source is the cache's own memory for the very range written: it
  // must complete (through the fallback), and change nothing.
  void DirectFromOwnView(Op op) {
    const Range r = OwnRange(true, kLargeSegment);
    LiveView v;
    if (!MapRange(op, plain_, r, &v)) return;
    const ssize_t n = zfile_pwrite(direct_, v.data, r.len, r.off);
    if (n != static_cast<ssize_t>(r.len)) {
      FailCall(op, "zfile_pwrite at " + std::to_string(r.off), n, static_cast<long long>(r.len));
    }
    CheckOwn(op, "the source view", v.data, r.off, r.len);
    KeepOrUnmap(op, v);
  }

  // A view of one own range written to another (possibly overlapping) one.
  void DirectFromOtherView(Op op) {
    const Range a = OwnRange(true, kLargeSegment);
    const Range b = OwnRangeOfLen(a.len);
    LiveView v;
    if (!MapRange(op, plain_, a, &v)) return;
    // The bytes as they were: an overlapping destination changes the source.
    std::memcpy(copy_.get(), &sh_->cnv[a.off], a.len);
    const ssize_t n = zfile_pwrite(direct_, v.data, a.len, b.off);
    if (n != static_cast<ssize_t>(a.len)) {
      FailCall(op, "zfile_pwrite at " + std::to_string(b.off), n, static_cast<long long>(a.len));
    } else {
      std::memcpy(&sh_->cnv[b.off], copy_.get(), a.len);
      RecheckViews(op, b);
    }
    CheckOwn(op, "the source view", v.data, a.off, a.len);
    KeepOrUnmap(op, v);
  }

  zfile_file* const plain_;
  zfile_file* const direct_;
  zfile_file* const sync_;
  Buf copy_;
  std::vector<Segment> small_, large_;  // this thread's segments, by region
};

// The only writer of seq/0.
class SeqAppender final : public Worker {
 public:
  SeqAppender(Shared* sh, const ModelConfig& cfg, int id, uint64_t seed, uint64_t quota,
              zfile_file* plain, zfile_file* direct, zfile_file* sync)
      : Worker(sh, cfg, id, seed, quota), plain_(plain), direct_(direct), sync_(sync) {}

  uint64_t size() const { return size_; }

 private:
  Op Step() override {
    static const std::vector<Weighted> kTable = {
        {kAppend, 16},       {kDirectAppend, 12}, {kSyncAppend, 6},     {kDsyncAppend, 4},
        {kNowaitAppend, 4},  {kSeqBufRead, 14},   {kSeqDirectRead, 10}, {kSeqMap, 6},
        {kSeqCheckViews, 5}, {kSeqUnmap, 4},      {kSeqFsync, 2},       {kSeqBusyReset, 1},
    };
    const Op op = Begin(Pick(rng_, kTable));
    switch (op) {
      case kAppend:
      case kDirectAppend:
      case kSyncAppend:
      case kDsyncAppend:
      case kNowaitAppend:
        Append(op);
        break;
      case kSeqBufRead:
        Read(op, false);
        break;
      case kSeqDirectRead:
        Read(op, true);
        break;
      case kSeqMap: {
        LiveView v;
        if (size_ == 0 || !MapRange(op, plain_, ViewRange(), &v)) break;
        Compare(op, "new view", v.data, &sh_->seq[v.off], v.off, v.len);
        KeepOrUnmap(op, v);
        break;
      }
      case kSeqCheckViews:
        for (const LiveView& v : views_) {
          Compare(op, "live view", v.data, &sh_->seq[v.off], v.off, v.len);
        }
        break;
      case kSeqUnmap:
        UnmapOne(op);
        break;
      case kSeqFsync: {
        const int rc = zfile_fsync(rng_.OneIn(2) ? plain_ : direct_);
        if (rc != 0) FailCall(op, "zfile_fsync", rc, 0);
        break;
      }
      case kSeqBusyReset:
        BusyReset(op);
        break;
      default:
        break;
    }
    return op;
  }

  void Finish() override { UnmapAll(kSeqUnmap); }

  Range ViewRange() {
    const uint64_t off = rng_.Below(size_);
    return {off, 1 + rng_.Below(std::min<uint64_t>(kMaxView, size_ - off))};
  }

  void Append(Op op) {
    if (size_ + kMaxAppendBlocks * kBlock > kZoneCap) Reset();
    const size_t max_blocks = op == kDirectAppend ? kMaxAppendBlocks : kMaxAppendBlocks / 2;
    const size_t len = (1 + rng_.Below(max_blocks)) * kBlock;
    uint8_t* src = IoBuffer();
    rng_.Fill(src, len);
    // Above the published size: no reader looks there yet.
    std::memcpy(&sh_->seq[size_], src, len);
    uint64_t landed = size_;
    ssize_t n = 0;
    switch (op) {
      case kAppend:
        n = zfile_append(plain_, src, len, &landed);
        break;
      case kDirectAppend:
        n = zfile_append(direct_, src, len, &landed);
        break;
      case kSyncAppend:
        n = zfile_append(sync_, src, len, &landed);
        break;
      case kDsyncAppend:
        n = zfile_pwrite2(plain_, src, len, size_, RWF_DSYNC);
        break;
      default:
        n = zfile_pwrite2(rng_.OneIn(2) ? plain_ : direct_, src, len, size_, RWF_NOWAIT);
        if (n == -EAGAIN) {
          eagain_[op]++;
          return;
        }
        break;
    }
    if (n != static_cast<ssize_t>(len) || landed != size_) {
      FailCall(op,
               "write of " + std::to_string(len) + " bytes at " + std::to_string(size_) +
                   " (landed at " + std::to_string(landed) + ")",
               n, static_cast<long long>(len));
      // The file and the model no longer agree on the write pointer: pick
      // up the file's, its new bytes are unknown to the model and so not
      // published.
      struct zfile_stat st {};
      if (zfile_fstat(plain_, &st) == 0) size_ = std::min<uint64_t>(st.size, kZoneCap);
      return;
    }
    size_ += len;
    sh_->seq_published.store(size_, std::memory_order_release);
  }

  // At or below the size, running past it at times: the file clips there.
  void Read(Op op, bool direct) {
    const auto [off, len] = rng_.SeqReadRange(size_, direct);
    uint8_t* dst = IoBuffer();
    const ssize_t n = zfile_pread(direct ? direct_ : plain_, dst, len, off);
    const size_t want = off >= size_ ? 0 : std::min<uint64_t>(len, size_ - off);
    if (n != static_cast<ssize_t>(want)) {
      FailCall(op,
               "zfile_pread of " + std::to_string(len) + " at " + std::to_string(off) + " (size " +
                   std::to_string(size_) + ")",
               n, static_cast<long long>(want));
      return;
    }
    if (want != 0) Compare(op, "read", dst, &sh_->seq[off], off, want);
  }

  // A live view pins the file: neither reset nor finish may go ahead.
  void BusyReset(Op op) {
    if (views_.empty()) {
      LiveView v;
      if (size_ == 0 || !MapRange(op, plain_, ViewRange(), &v)) return;
      views_.push_back(v);
    }
    int rc = zfile_ftruncate(plain_, rng_.OneIn(2) ? 0 : kZoneCap);
    if (rc != -EBUSY) FailCall(op, "zfile_ftruncate with a live view", rc, -EBUSY);
    struct zfile_stat st {};
    rc = zfile_fstat(plain_, &st);
    if (rc != 0 || st.size != size_) FailCall(op, "size after the refused reset", st.size, size_);
  }

  // When the zone is nearly full: sometimes finish it, then reset it.
  void Reset() {
    UnmapAll(kSeqUnmap);
    sh_->reset_pending.store(true);
    std::unique_lock<std::shared_mutex> lock(sh_->reset_mu);
    struct zfile_stat st {};
    if (rng_.OneIn(4)) {
      current_.store(kSeqFinish, std::memory_order_relaxed);
      int rc = zfile_ftruncate(plain_, kZoneCap);
      if (rc != 0) FailCall(kSeqFinish, "zfile_ftruncate(capacity)", rc, 0);
      rc = zfile_fstat(plain_, &st);
      if (rc != 0 || st.size != kZoneCap)
        FailCall(kSeqFinish, "size after finish", st.size, kZoneCap);
      // What was appended is still there, through the cache or not.
      const bool direct = rng_.OneIn(2);
      for (uint64_t off = 0; off < size_; off += kMaxSeqRead) {
        const size_t len = std::min<uint64_t>(kMaxSeqRead, size_ - off);
        const ssize_t n = zfile_pread(direct ? direct_ : plain_, buf_.get(), len, off);
        if (n != static_cast<ssize_t>(len)) {
          FailCall(kSeqFinish, "read after finish", n, static_cast<long long>(len));
          break;
        }
        Compare(kSeqFinish, "read after finish", buf_.get(), &sh_->seq[off], off, len);
      }
      done_[kSeqFinish]++;
    }
    current_.store(kSeqReset, std::memory_order_relaxed);
    int rc = zfile_ftruncate(plain_, 0);
    if (rc != 0) FailCall(kSeqReset, "zfile_ftruncate(0)", rc, 0);
    rc = zfile_fstat(plain_, &st);
    if (rc != 0 || st.size != 0) FailCall(kSeqReset, "size after reset", st.size, 0);
    size_ = 0;
    sh_->seq_published.store(0, std::memory_order_release);
    done_[kSeqReset]++;
    lock.unlock();
    sh_->reset_pending.store(false);
  }

  zfile_file* const plain_;
  zfile_file* const direct_;
  zfile_file* const sync_;
  uint64_t size_ = 0;  // the file's size as the model knows it
};

// Reads seq/0 while it grows, checking what was published before each read.
class SeqReader final : public Worker {
 public:
  SeqReader(Shared* sh, const ModelConfig& cfg, int id, uint64_t seed, uint64_t quota,
            zfile_file* plain, zfile_file* direct)
      : Worker(sh, cfg, id, seed, quota), plain_(plain), direct_(direct) {}

 private:
  bool Claim() override {
    // Steps aside while a reset waits.
    while (sh_->reset_pending.load()) std::this_thread::yield();
    return Worker::Claim();
  }

  Op Step() override {
    static const std::vector<Weighted> kTable = {
        {kTailBufRead, 10}, {kTailDirectRead, 6}, {kTailNowaitRead, 3}, {kTailMap, 4}};
    const Op op = Begin(Pick(rng_, kTable));
    std::shared_lock<std::shared_mutex> lock(sh_->reset_mu);
    const uint64_t published = sh_->seq_published.load(std::memory_order_acquire);
    switch (op) {
      case kTailBufRead:
        Read(op, plain_, 0, false, published);
        break;
      case kTailDirectRead:
        Read(op, direct_, 0, true, published);
        break;
      case kTailNowaitRead:
        Read(op, plain_, RWF_NOWAIT, false, published);
        break;
      case kTailMap: {
        if (published == 0) break;
        const uint64_t off = rng_.Below(published);
        const Range r{off, 1 + rng_.Below(std::min<uint64_t>(kMaxView, published - off))};
        LiveView v;
        if (!MapRange(op, plain_, r, &v)) break;
        Compare(op, "view", v.data, &sh_->seq[r.off], r.off, r.len);
        Unmap(op, v);  // before the shared lock goes: resets need no views
        break;
      }
      default:
        break;
    }
    return op;
  }

  // Runs past the published size at times: the bytes there may be landing
  // now and are not checked, but the read must return at least the
  // published ones.
  void Read(Op op, zfile_file* f, int rwf, bool direct, uint64_t published) {
    const auto [off, len] = rng_.SeqReadRange(published, direct);
    uint8_t* dst = IoBuffer();
    const ssize_t n = zfile_pread2(f, dst, len, off, rwf);
    if (n == -EAGAIN && (rwf & RWF_NOWAIT) != 0) {
      eagain_[op]++;
      return;
    }
    const size_t known = off >= published ? 0 : std::min<uint64_t>(len, published - off);
    if (n < static_cast<ssize_t>(known) || n > static_cast<ssize_t>(len)) {
      FailCall(op,
               "zfile_pread2 of " + std::to_string(len) + " at " + std::to_string(off) +
                   " (published size " + std::to_string(published) + ")",
               n, static_cast<long long>(known));
      return;
    }
    if (known != 0) Compare(op, "read", dst, &sh_->seq[off], off, known);
  }

  zfile_file* const plain_;
  zfile_file* const direct_;
};

uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

class CoherencyModel : public VolumeTest {
 protected:
  void SetUp() override {
    // Every fallback logs a warning; a million operations make thousands.
    saved_level_ = Log().level();
    Log().set_level(spdlog::level::err);
    VolumeTest::SetUp();
  }
  void TearDown() override {
    VolumeTest::TearDown();
    Log().set_level(saved_level_);
  }

  // The budget for this build and backend: sanitizers and debug checks slow
  // every operation down; the emulated device writes files and fdatasyncs.
  uint64_t Budget(uint64_t ops) const {
#if defined(__SANITIZE_THREAD__)
    ops /= 10;
#elif defined(__SANITIZE_ADDRESS__)
    ops /= 4;
#elif !defined(NDEBUG)
    ops /= 5;
#endif
    if (GetParam().kind != "mem") ops /= 4;
    // Through zfiled every operation is a round trip to another process.
    if (GetParam().daemon) ops /= 5;
    return EnvU64("ZFILE_MODEL_OPS", ops);
  }

  void RunModel(const ModelConfig& cfg);

  spdlog::level::level_enum saved_level_ = spdlog::level::info;
};

void CoherencyModel::RunModel(const ModelConfig& cfg) {
  const uint64_t seed = EnvU64("ZFILE_MODEL_SEED", std::random_device{}());
  const uint64_t budget = Budget(cfg.ops);
  std::printf(
      "[model] seed %llu (ZFILE_MODEL_SEED), %llu operations (ZFILE_MODEL_OPS), mount '%s'\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(budget),
      cfg.mount.c_str());
  std::fflush(stdout);
  SCOPED_TRACE("ZFILE_MODEL_SEED=" + std::to_string(seed));
  MountOrDie(cfg.mount);
  ASSERT_FALSE(HasFatalFailure());

  Shared sh;
  // Whatever mkfs left in cnv/0 is not ours to predict: start from known
  // bytes, on the device.
  {
    Rng init(seed);
    init.Fill(sh.cnv.data(), kCnvRange);
    zfile_file* d = Open("cnv/0", O_RDWR | O_DIRECT);
    ASSERT_NE(d, nullptr);
    Buf b = MakeBuf(kCnvRange);
    std::memcpy(b.get(), sh.cnv.data(), kCnvRange);
    ASSERT_EQ(zfile_pwrite(d, b.get(), kCnvRange, 0), static_cast<ssize_t>(kCnvRange))
        << zfile_last_error();
  }
  ASSERT_EQ(StatOf(vol_, "seq/0").size, 0u);

  // Shares of the budget: the conventional file's owners do most of it.
  const uint64_t cnv_quota = budget * 19 / 100;
  const uint64_t appender_quota = budget * 14 / 100;
  const uint64_t reader_quota = budget - kCnvThreads * cnv_quota - appender_quota;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<zfile_file*> cnv_plain;
  for (int t = 0; t < kCnvThreads; ++t) {
    zfile_file* plain = Open("cnv/0", O_RDWR);
    zfile_file* direct = Open("cnv/0", O_RDWR | O_DIRECT);
    zfile_file* sync = Open("cnv/0", O_RDWR | (t % 2 == 0 ? O_SYNC : O_DSYNC));
    ASSERT_TRUE(plain != nullptr && direct != nullptr && sync != nullptr);
    cnv_plain.push_back(plain);
    workers.push_back(
        std::make_unique<CnvWorker>(&sh, cfg, t, seed * 31 + t, cnv_quota, plain, direct, sync));
  }
  zfile_file* seq_plain = Open("seq/0", O_RDWR);
  zfile_file* seq_direct = Open("seq/0", O_RDWR | O_DIRECT);
  zfile_file* seq_sync = Open("seq/0", O_RDWR | O_SYNC);
  zfile_file* tail_plain = Open("seq/0", O_RDONLY);
  zfile_file* tail_direct = Open("seq/0", O_RDONLY | O_DIRECT);
  ASSERT_TRUE(seq_plain != nullptr && seq_direct != nullptr && seq_sync != nullptr &&
              tail_plain != nullptr && tail_direct != nullptr);
  auto appender_owned =
      std::make_unique<SeqAppender>(&sh, cfg, kCnvThreads, seed * 31 + kCnvThreads, appender_quota,
                                    seq_plain, seq_direct, seq_sync);
  SeqAppender* appender = appender_owned.get();
  workers.push_back(std::move(appender_owned));
  workers.push_back(std::make_unique<SeqReader>(&sh, cfg, kCnvThreads + 1,
                                                seed * 31 + kCnvThreads + 1, reader_quota,
                                                tail_plain, tail_direct));

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });

  // Progress every 10 s, and which operation each thread is in when
  // nothing moves for a minute (a hang shows up here before the timeout).
  std::mutex mon_mu;
  std::condition_variable mon_cv;
  bool finished = false;
  std::thread monitor([&] {
    std::unique_lock<std::mutex> lock(mon_mu);
    uint64_t last = 0;
    int idle = 0;
    while (!mon_cv.wait_for(lock, std::chrono::seconds(10), [&] { return finished; })) {
      const uint64_t now = std::min(sh.issued.load(), budget);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("[model] %.0f s: %llu of %llu operations\n", secs,
                  static_cast<unsigned long long>(now), static_cast<unsigned long long>(budget));
      idle = now == last ? idle + 1 : 0;
      last = now;
      if (idle >= 6) {
        for (const auto& w : workers) {
          const int op = w->current();
          std::printf("[model]   no progress: thread %d in %s\n", w->id(),
                      op < 0 ? "(between operations)" : kOpNames[op]);
        }
      }
      std::fflush(stdout);
    }
  });
  for (std::thread& th : threads) th.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard<std::mutex> lock(mon_mu);
    finished = true;
  }
  mon_cv.notify_all();
  monitor.join();

  std::array<uint64_t, kNrOps> done{}, eagain{}, refused{};
  uint64_t total = 0;
  for (const auto& w : workers) {
    for (int op = 0; op < kNrOps; ++op) {
      done[op] += w->done()[op];
      eagain[op] += w->eagain()[op];
      refused[op] += w->refused()[op];
      total += w->done()[op];
    }
  }
  std::printf("[model] %llu operations in %.1f s: %.0f ops/s\n",
              static_cast<unsigned long long>(total), secs, secs > 0 ? total / secs : 0.0);
  for (int op = 0; op < kNrOps; ++op) {
    std::printf("[model]   %-40s %10llu", kOpNames[op], static_cast<unsigned long long>(done[op]));
    if (eagain[op] != 0)
      std::printf("  (%llu EAGAIN)", static_cast<unsigned long long>(eagain[op]));
    if (refused[op] != 0) {
      std::printf("  (%llu refused: ENOMEM)", static_cast<unsigned long long>(refused[op]));
    }
    std::printf("\n");
  }

  // After the storm: the whole range, through the cache and from the
  // device, must be the union of the owners' models.
  {
    Buf b = MakeBuf(kCnvRange);
    ASSERT_EQ(zfile_pread(cnv_plain[0], b.get(), kCnvRange, 0), static_cast<ssize_t>(kCnvRange))
        << zfile_last_error();
    EXPECT_EQ(std::memcmp(b.get(), sh.cnv.data(), kCnvRange), 0) << "cnv/0, buffered, at the end";
    zfile_file* d = Open("cnv/0", O_RDONLY | O_DIRECT);
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(zfile_pread(d, b.get(), kCnvRange, 0), static_cast<ssize_t>(kCnvRange))
        << zfile_last_error();
    EXPECT_EQ(std::memcmp(b.get(), sh.cnv.data(), kCnvRange), 0) << "cnv/0, direct, at the end";
  }
  {
    const uint64_t size = appender->size();
    EXPECT_EQ(StatOf(vol_, "seq/0").size, size);
    if (size != 0) {
      Buf b = MakeBuf(size);
      ASSERT_EQ(zfile_pread(seq_plain, b.get(), size, 0), static_cast<ssize_t>(size))
          << zfile_last_error();
      EXPECT_EQ(std::memcmp(b.get(), sh.seq.data(), size), 0) << "seq/0, buffered, at the end";
      ASSERT_EQ(zfile_pread(seq_direct, b.get(), size, 0), static_cast<ssize_t>(size))
          << zfile_last_error();
      EXPECT_EQ(std::memcmp(b.get(), sh.seq.data(), size), 0) << "seq/0, direct, at the end";
    }
  }

  const std::string stats = StatsJson();
  std::printf(
      "[model] dio_fallbacks %llu, writethrough_writes %llu, zone_resets %llu, "
      "zone_finishes %llu, cache_evictions %llu, errors %llu\n",
      static_cast<unsigned long long>(Stat(stats, "dio_fallbacks")),
      static_cast<unsigned long long>(Stat(stats, "writethrough_writes")),
      static_cast<unsigned long long>(Stat(stats, "zone_resets")),
      static_cast<unsigned long long>(Stat(stats, "zone_finishes")),
      static_cast<unsigned long long>(Stat(stats, "cache_evictions")),
      static_cast<unsigned long long>(Stat(stats, "errors")));
  std::fflush(stdout);
  std::string failures;
  {
    std::lock_guard<std::mutex> lock(sh.mu);
    for (const std::string& f : sh.first_failures) failures += "\n  " + f;
  }
  EXPECT_EQ(sh.failures.load(), 0u) << "first failures:" << failures;
  EXPECT_EQ(Stat(stats, "errors"), 0u);
  // Views pin shared pages all the time: direct writes must have fallen back.
  if (total >= 10000) {
    EXPECT_GT(Stat(stats, "dio_fallbacks"), 0u);
  }
}

// The default cache: everything stays cached, pages are shared and pinned.
// Background write-back runs often, so it races with everything else.
TEST_P(CoherencyModel, RandomMixMatchesTheModel) {
  RunModel(ModelConfig{"writeback_interval_ms=20", 1000000, 3, false});
}

// A cache smaller than the data: eviction, readahead and write-back under
// pressure race with views and invalidation, and every miss on a full
// cache races with pages on their way out. Views may be refused (ENOMEM).
TEST_P(CoherencyModel, RandomMixUnderCachePressureMatchesTheModel) {
  RunModel(ModelConfig{"cache_size=2M,writeback_interval_ms=20,dirty_limit_percent=10", 500000, 1,
                       true});
}

INSTANTIATE_TEST_SUITE_P(Backends, CoherencyModel, ::testing::ValuesIn(VolumesUnderTest()),
                         [](const ::testing::TestParamInfo<VolumeParam>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace zfile::testing
