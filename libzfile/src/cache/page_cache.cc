// PageCache implementation.
//
// Structure
//  - A Page holds `page_size` bytes of one file plus per-block `uptodate` and
//    `dirty` bits (dirty is always a subset of uptodate). Its contents and
//    bits are guarded by the page's own shared_mutex: readers copy out under
//    a shared lock; loaders, writers and write-back take it exclusively
//    (write-back keeps the data stable while the device reads it, and clears
//    the dirty bits only once the write succeeded).
//  - Each file keeps its pages in an ordered index (page index -> Page*)
//    under a short mutex that is never held across a copy or device I/O.
//  - The cache mutex guards the global structures: the clock/LRU list of all
//    pages, the dirty list (pages in the order they became dirty, which the
//    background thread and throttled writers consume oldest first), the byte
//    counters, the registry of files and each file's busy/closing state.
//
// Locking order (acquire only in this order):
//    1. page locks -- of one file at a time, in ascending page index;
//    2. a file's index mutex (FileImpl::mu_);
//    3. the cache mutex (Impl::mu_);
//    4. the arena's mutex (PageArena, taken to allocate and free slots).
//  Pages are freed (their slots go back to the arena) with neither 2 nor 3
//  held: an allocation waiting for a slot waits for such a free.
//  Nobody blocks on a page lock while holding 2 or 3, and nothing waits for
//  cache space while holding a page lock or a pin.
//
// Page lifetime
//  - Page::refs counts pins. A pin keeps the page in memory and in the cache:
//    eviction skips pinned pages, Invalidate reports them busy. Pins are
//    taken under the file mutex (lookups) or under the cache mutex
//    (eviction, throttling, background write-back); they may be dropped
//    anywhere.
//  - A page leaves the cache only when its remover holds the sole pin while
//    holding both the file mutex and the cache mutex: then nobody else can
//    have it, nor find it afterwards, and the remover frees it.
//  - Pins taken from the cache side (not through the file's own call) also
//    count in the file's `busy_`, which the file's destructor waits to drain.
//
// Capacity
//  - A page's bytes are reserved (cached_bytes) before the page is built, so
//    cached_bytes never exceeds the capacity (rounded down to whole pages,
//    and at least one page). A reservation that finds the cache full evicts
//    clean unpinned pages (second-chance clock), else writes back the oldest
//    unpinned dirty page and evicts it, else waits for a pin to drop.
//  - Only a caller that holds no pins and no page locks may wait. Calls
//    therefore work page by page; where they gather several pages for one
//    device request (read batches, readahead, write-through) the extra pages
//    are taken only if there is room without waiting.
#include "cache/page_cache.h"

#include "cache/page_arena.h"

#include <algorithm>
#include <atomic>
#include <bitset>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace zfile {
namespace {

constexpr uint32_t kMaxBlocksPerPage = 256;
// Largest single device request the cache builds by coalescing (write-back
// runs, write-through chunks, read batches): bounds the bounce buffer and
// how many page locks one request holds.
constexpr uint64_t kMaxIoBytes = 4ull << 20;
// Pages the background thread pins per pass.
constexpr size_t kMaxBackgroundBatch = 1024;
// Times Invalidate writes back a page that a racing writer dirtied again
// before giving up with EBUSY.
constexpr int kInvalidateRetries = 3;
// How long Invalidate keeps trying a page that another operation holds
// (not a view) before it reports it busy.
constexpr std::chrono::milliseconds kInvalidateBusyWait{2};
constexpr uint64_t kToEnd = std::numeric_limits<uint64_t>::max();

using Clock = std::chrono::steady_clock;
using BlockBits = std::bitset<kMaxBlocksPerPage>;
using PageLock = std::unique_lock<std::shared_mutex>;

uint64_t RoundUp(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

// Bits [first, first + count).
BlockBits BlockRange(uint32_t first, uint32_t count) {
  BlockBits bits;
  if (count == 0) return bits;
  bits.set();
  bits >>= kMaxBlocksPerPage - count;
  bits <<= first;
  return bits;
}

// Calls fn(first, count) for every maximal run of set bits within [lo, hi).
template <typename Fn>
void ForEachRun(const BlockBits& bits, uint32_t lo, uint32_t hi, Fn&& fn) {
  uint32_t i = lo;
  while (i < hi) {
    if (!bits[i]) {
      ++i;
      continue;
    }
    const uint32_t start = i;
    while (i < hi && bits[i]) ++i;
    fn(start, i - start);
  }
}

// End of [offset, offset + len), where len 0 means "to the end of the file".
uint64_t RangeEnd(uint64_t offset, uint64_t len) {
  if (len == 0 || len > kToEnd - offset) return kToEnd;
  return offset + len;
}

CacheOptions Normalize(CacheOptions o) {
  assert(o.page_size >= 512 && (o.page_size & (o.page_size - 1)) == 0 &&
         "page_size must be a power of two >= 512");
  o.capacity_bytes = std::max<uint64_t>(o.capacity_bytes / o.page_size, 1) * o.page_size;
  o.dirty_limit_percent = std::min(o.dirty_limit_percent, 100u);
  return o;
}

class FileImpl;

struct Page {
  Page(FileImpl* f, uint64_t i, PageArena* a, uint8_t* d) : file(f), index(i), arena(a), data(d) {}
  ~Page() { arena->Free(data); }
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;

  FileImpl* const file;
  const uint64_t index;
  PageArena* const arena;
  uint8_t* const data;  // a slot of the arena

  std::shared_mutex mu;
  BlockBits uptodate;  // guarded by mu
  BlockBits dirty;     // guarded by mu; a subset of uptodate

  std::atomic<uint32_t> refs{0};
  // Of refs, those held by mapped views (for the reason Invalidate gives).
  std::atomic<uint32_t> view_pins{0};
  // Set by lookups; the clock hand clears it and gives the page a second
  // chance. New pages start unreferenced so one-shot streams go first.
  std::atomic<bool> referenced{false};

  // Guarded by the cache mutex.
  std::list<Page*>::iterator lru_pos;
  std::list<Page*>::iterator dirty_pos;  // valid while dirty_blocks > 0
  uint32_t dirty_blocks = 0;             // mirror of dirty.count()
  Clock::time_point dirty_since;
};

// A pin on a page, released on destruction. `file_busy` pins were taken from
// the cache side and also hold the file's busy count.
class PageRef {
 public:
  PageRef() = default;
  PageRef(PageCache::Impl* cache, Page* page, bool file_busy)
      : cache_(cache), page_(page), file_busy_(file_busy) {}
  PageRef(PageRef&& other) noexcept
      : cache_(other.cache_),
        page_(std::exchange(other.page_, nullptr)),
        file_busy_(other.file_busy_) {}
  PageRef& operator=(PageRef&& other) noexcept {
    if (this != &other) {
      Reset();
      cache_ = other.cache_;
      page_ = std::exchange(other.page_, nullptr);
      file_busy_ = other.file_busy_;
    }
    return *this;
  }
  PageRef(const PageRef&) = delete;
  PageRef& operator=(const PageRef&) = delete;
  ~PageRef() { Reset(); }

  Page* get() const { return page_; }
  Page* operator->() const { return page_; }
  explicit operator bool() const { return page_ != nullptr; }

  void Reset();
  // Hands the pin over to the caller (a remover about to free the page).
  Page* Release() {
    assert(!file_busy_);
    return std::exchange(page_, nullptr);
  }

 private:
  PageCache::Impl* cache_ = nullptr;
  Page* page_ = nullptr;
  bool file_busy_ = false;
};

class FileImpl final : public CachedFile {
 public:
  FileImpl(PageCache::Impl* cache, CacheBacking* backing, uint32_t block_size,
           uint32_t blocks_per_page, std::string name)
      : cache_(cache),
        backing_(backing),
        block_size_(block_size),
        blocks_per_page_(blocks_per_page),
        name_(std::move(name)) {}
  ~FileImpl() override;

  Result<size_t> Read(uint64_t offset, void* buf, size_t len, uint64_t file_size,
                      const ReadProgress* progress) override;
  Result<size_t> Write(uint64_t offset, const void* buf, size_t len, uint64_t file_size) override;
  Result<size_t> WriteThrough(uint64_t offset, const void* buf, size_t len,
                              uint64_t file_size) override;
  Status WriteBack(uint64_t offset, uint64_t len) override;
  Status Invalidate(uint64_t offset, uint64_t len) override;
  Result<std::unique_ptr<CacheView>> Map(uint64_t offset, size_t len, uint64_t file_size) override;
  bool Cached(uint64_t offset, size_t len) override;
  void Discard(uint64_t offset) override;
  uint64_t dirty_bytes() const override { return dirty_bytes_.load(std::memory_order_relaxed); }

 private:
  friend class zfile::PageCache::Impl;

  PageCache::Impl* const cache_;
  CacheBacking* const backing_;
  const uint32_t block_size_;
  const uint32_t blocks_per_page_;
  const std::string name_;

  std::mutex mu_;
  std::map<uint64_t, Page*> pages_;  // guarded by mu_
  uint64_t next_read_ = 0;           // guarded by mu_: where a sequential reader goes next
  uint64_t ra_pages_ = 0;            // guarded by mu_: current readahead window, 0 = none

  // Guarded by the cache mutex.
  uint32_t busy_ = 0;
  bool closing_ = false;
  std::list<FileImpl*>::iterator registry_pos_;

  // Written under the cache mutex; read without it by dirty_bytes().
  std::atomic<uint64_t> dirty_bytes_{0};
};

}  // namespace

class PageCache::Impl {
 public:
  explicit Impl(const CacheOptions& options);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::unique_ptr<CachedFile> Register(CacheBacking* backing, uint32_t block_size,
                                       std::string name);
  Status WriteBackAll();
  CacheStats stats() const;
  const CacheOptions& options() const { return options_; }

  Result<size_t> Read(FileImpl* f, uint64_t offset, void* buf, size_t len, uint64_t file_size,
                      const ReadProgress* progress);
  Result<size_t> Write(FileImpl* f, uint64_t offset, const void* buf, size_t len,
                       uint64_t file_size);
  Result<size_t> WriteThrough(FileImpl* f, uint64_t offset, const void* buf, size_t len,
                              uint64_t file_size);
  Status WriteBack(FileImpl* f, uint64_t offset, uint64_t len);
  Status Invalidate(FileImpl* f, uint64_t offset, uint64_t len);
  Result<std::unique_ptr<CacheView>> Map(FileImpl* f, uint64_t offset, size_t len,
                                         uint64_t file_size);
  bool Cached(FileImpl* f, uint64_t offset, size_t len);
  void Discard(FileImpl* f, uint64_t offset);
  // Called by a view being destroyed, after its pins are gone.
  void ViewClosed(uint64_t pages);

  void InjectAllocationFailures(uint32_t count) { injected_allocation_failures_ += count; }
  int arena_fd() const { return arena_.fd() < 0 ? -1 : arena_.view_fd(); }
  uint64_t arena_size() const { return arena_.size(); }
  // Consumes one injected failure, if any is pending.
  bool InjectedAllocationFailure();
  // Waits for cache-side users of `f` to finish, then frees its pages
  // (dirty ones included: the caller wrote back what mattered).
  void Unregister(FileImpl* f);

  // Drops a pin taken through the file (PageRef without file_busy).
  void Unpin(Page* page);
  // Drops a pin taken from the cache side, and the file's busy count.
  void UnpinCacheSide(Page* page);

 private:
  class BlockRun;
  enum class RemoveResult { kRemoved, kBusy, kDirty };

  // Space management.
  Status Reserve(bool may_block);
  void Unreserve();
  void PinCacheSideLocked(Page* page);
  Page* PickCleanVictimLocked();
  Page* PickDirtyVictimLocked();
  void TryEvict(Page* victim);
  RemoveResult TryRemove(Page* page);

  // Lookup and creation.
  PageRef Lookup(FileImpl* f, uint64_t index);
  // Existing or new page; may wait for space (caller holds no pins/locks).
  Result<PageRef> GetPage(FileImpl* f, uint64_t index);
  // Existing or new page, without waiting for space (EAGAIN when full).
  Result<PageRef> GetPageNoWait(FileImpl* f, uint64_t index);
  // A new page, returned locked in `lock`; empty when the page exists or
  // there is no room without waiting.
  PageRef CreateFreshPage(FileImpl* f, uint64_t index, PageLock* lock);
  // Publishes a page against a reservation already made.
  Result<PageRef> InsertPage(FileImpl* f, uint64_t index, PageLock* fresh_lock);
  // Pins the cached page with the lowest index in [first, last], if any.
  PageRef PinFirst(FileImpl* f, uint64_t first, uint64_t last);
  // Pins the cached pages with index in [first, last], ascending.
  std::vector<PageRef> PinRange(FileImpl* f, uint64_t first, uint64_t last, bool dirty_only);

  // Data movement; the page is locked exclusively by the caller.
  Status FillBlock(FileImpl* f, Page* page, uint32_t block, uint64_t limit);
  Status FillPartialBlocks(FileImpl* f, Page* page, uint32_t from, uint32_t to, uint64_t limit);
  Status LoadMissingBlocks(FileImpl* f, Page* page, uint64_t limit);
  Result<uint64_t> LoadForRead(FileImpl* f, Page* page, uint64_t limit, uint64_t request_end,
                               bool sequential);
  Status ReadPages(FileImpl* f, const std::vector<Page*>& pages, uint64_t limit);
  uint64_t NextReadaheadPages(FileImpl* f);

  // Write-back of pinned pages (ascending index), dirty blocks within [lo, hi).
  Status FlushPages(FileImpl* f, const std::vector<Page*>& pages, uint64_t lo, uint64_t hi);
  // Publishes a page's dirty bit count to the counters and the dirty list;
  // called with the page locked exclusively after changing its dirty bits.
  void AccountDirty(Page* page);
  // Writes back the oldest dirty pages while dirty bytes exceed the limit.
  void BalanceDirty();
  void BackgroundLoop();

  const CacheOptions options_;
  const uint32_t page_size_;
  const uint64_t capacity_;
  const uint64_t dirty_limit_;
  const uint64_t max_io_bytes_;
  const Clock::duration interval_;
  const Clock::duration period_;

  mutable std::mutex mu_;
  std::condition_variable space_cv_;  // room may have appeared
  std::condition_variable file_cv_;   // a closing file's busy count drained
  std::condition_variable bg_cv_;     // background thread: stop or kick
  std::list<Page*> lru_;              // every cached page, clock order
  std::list<Page*> dirty_;            // dirty pages, oldest first
  std::list<FileImpl*> files_;
  uint64_t cached_bytes_ = 0;  // includes reservations
  uint64_t dirty_bytes_ = 0;
  bool stop_ = false;
  bool bg_kick_ = false;
  // Callers that may wait for space; unpinners notify only when nonzero.
  std::atomic<int> space_waiters_{0};
  // Pages pinned by live views (counted per view). Views may pin at most
  // half the cache, so buffered I/O always has room to make progress.
  uint64_t view_pages_ = 0;  // guarded by mu_

  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> readahead_pages_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> writeback_bytes_{0};
  std::atomic<uint64_t> writethrough_bytes_{0};
  std::atomic<uint32_t> injected_allocation_failures_{0};

  // Before the thread: pages are built in it from the first insertion on.
  PageArena arena_;
  std::thread bg_thread_;  // last: starts once everything above is built
};

namespace {

void PageRef::Reset() {
  Page* page = std::exchange(page_, nullptr);
  if (page == nullptr) return;
  if (file_busy_) {
    cache_->UnpinCacheSide(page);
  } else {
    cache_->Unpin(page);
  }
}

FileImpl::~FileImpl() { cache_->Unregister(this); }

Result<size_t> FileImpl::Read(uint64_t offset, void* buf, size_t len, uint64_t file_size,
                              const ReadProgress* progress) {
  return cache_->Read(this, offset, buf, len, file_size, progress);
}
Result<size_t> FileImpl::Write(uint64_t offset, const void* buf, size_t len, uint64_t file_size) {
  return cache_->Write(this, offset, buf, len, file_size);
}
Result<size_t> FileImpl::WriteThrough(uint64_t offset, const void* buf, size_t len,
                                      uint64_t file_size) {
  return cache_->WriteThrough(this, offset, buf, len, file_size);
}
Status FileImpl::WriteBack(uint64_t offset, uint64_t len) {
  return cache_->WriteBack(this, offset, len);
}
Status FileImpl::Invalidate(uint64_t offset, uint64_t len) {
  return cache_->Invalidate(this, offset, len);
}
void FileImpl::Discard(uint64_t offset) { cache_->Discard(this, offset); }
bool FileImpl::Cached(uint64_t offset, size_t len) { return cache_->Cached(this, offset, len); }

Result<std::unique_ptr<CacheView>> FileImpl::Map(uint64_t offset, size_t len, uint64_t file_size) {
  return cache_->Map(this, offset, len, file_size);
}

std::vector<Page*> RawPages(const std::vector<PageRef>& refs) {
  std::vector<Page*> pages;
  pages.reserve(refs.size());
  for (const PageRef& ref : refs) pages.push_back(ref.get());
  return pages;
}

}  // namespace

// A run of contiguous blocks over consecutive pages of one file, written in
// one device request. The pages' locks (and, for write-through, pins) handed
// to the run are held until the request is done, so the data written is the
// data whose dirty bits are cleared.
class PageCache::Impl::BlockRun {
 public:
  BlockRun(Impl* cache, FileImpl* file, bool write_through)
      : cache_(cache), file_(file), write_through_(write_through) {}

  bool empty() const { return segments_.empty(); }
  uint64_t bytes() const { return bytes_; }

  // True when blocks [first, first + count) of `page` directly follow the
  // run and the run stays within one request's size.
  bool Continues(const Page* page, uint32_t first, uint32_t count) const {
    if (segments_.empty()) return false;
    if (bytes_ + uint64_t{count} * file_->block_size_ > cache_->max_io_bytes_) return false;
    const Segment& last = segments_.back();
    if (last.page == page) return last.first + last.count == first;
    return page->index == last.page->index + 1 &&
           last.first + last.count == file_->blocks_per_page_ && first == 0;
  }

  void Add(Page* page, uint32_t first, uint32_t count) {
    // Callers write the run out first when the segment does not continue it.
    assert(segments_.empty() || Continues(page, first, count));
    segments_.push_back({page, first, count});
    bytes_ += uint64_t{count} * file_->block_size_;
  }
  void Hold(PageLock lock) { locks_.push_back(std::move(lock)); }
  void Hold(PageRef ref) { pins_.push_back(std::move(ref)); }

  // Issues the run. On success the blocks are clean. On failure write-back
  // leaves them dirty; write-through drops them (neither dirty nor up to
  // date: the cache must not claim data the device may not have). Then
  // releases what the run held, locks before pins, and starts over empty.
  Status Write() {
    if (segments_.empty()) return Status::Ok();
    const uint32_t bs = file_->block_size_;
    const Segment& head = segments_.front();
    const uint64_t offset = head.page->index * cache_->page_size_ + uint64_t{head.first} * bs;
    Status st;
    if (segments_.size() == 1) {
      st =
          file_->backing_->WriteBlocks(offset, head.page->data + uint64_t{head.first} * bs, bytes_);
    } else {
      // The pages are not adjacent in memory and the backing takes one
      // buffer: gather into a bounce buffer.
      std::unique_ptr<uint8_t[]> bounce;
      if (!cache_->InjectedAllocationFailure()) bounce.reset(new (std::nothrow) uint8_t[bytes_]);
      if (!bounce) {
        st = Status(ENOMEM, "page cache: no memory for a " + std::to_string(bytes_) +
                                "-byte write of " + file_->name_);
      } else {
        uint64_t pos = 0;
        for (const Segment& s : segments_) {
          const uint64_t n = uint64_t{s.count} * bs;
          std::memcpy(bounce.get() + pos, s.page->data + uint64_t{s.first} * bs, n);
          pos += n;
        }
        st = file_->backing_->WriteBlocks(offset, bounce.get(), bytes_);
      }
    }
    for (const Segment& s : segments_) {
      const BlockBits range = BlockRange(s.first, s.count);
      if (st.ok() || write_through_) s.page->dirty &= ~range;
      if (!st.ok() && write_through_) s.page->uptodate &= ~range;
      cache_->AccountDirty(s.page);
    }
    if (st.ok()) {
      (write_through_ ? cache_->writethrough_bytes_ : cache_->writeback_bytes_)
          .fetch_add(bytes_, std::memory_order_relaxed);
    }
    segments_.clear();
    bytes_ = 0;
    locks_.clear();
    pins_.clear();
    return st;
  }

 private:
  struct Segment {
    Page* page;
    uint32_t first;
    uint32_t count;
  };

  Impl* const cache_;
  FileImpl* const file_;
  const bool write_through_;
  std::vector<Segment> segments_;
  uint64_t bytes_ = 0;
  // pins_ before locks_: on destruction locks are released first.
  std::vector<PageRef> pins_;
  std::vector<PageLock> locks_;
};

PageCache::Impl::Impl(const CacheOptions& options)
    : options_(Normalize(options)),
      page_size_(options_.page_size),
      capacity_(options_.capacity_bytes),
      dirty_limit_(options_.capacity_bytes / 100 * options_.dirty_limit_percent +
                   options_.capacity_bytes % 100 * options_.dirty_limit_percent / 100),
      max_io_bytes_(std::max<uint64_t>(kMaxIoBytes, options_.page_size)),
      interval_(std::chrono::milliseconds(options_.writeback_interval_ms)),
      period_(std::chrono::milliseconds(
          std::clamp<uint32_t>(options_.writeback_interval_ms, 10, 1000))),
      arena_(options_.page_size, options_.capacity_bytes / options_.page_size) {
  bg_thread_ = std::thread([this] { BackgroundLoop(); });
}

PageCache::Impl::~Impl() {
  {
    std::lock_guard lk(mu_);
    assert(files_.empty() && "every CachedFile must be destroyed before its PageCache");
    stop_ = true;
  }
  bg_cv_.notify_all();
  bg_thread_.join();
}

std::unique_ptr<CachedFile> PageCache::Impl::Register(CacheBacking* backing, uint32_t block_size,
                                                      std::string name) {
  assert(block_size > 0 && page_size_ % block_size == 0 &&
         page_size_ / block_size <= kMaxBlocksPerPage &&
         "block_size must divide page_size, at most 256 blocks per page");
  auto file = std::make_unique<FileImpl>(this, backing, block_size, page_size_ / block_size,
                                         std::move(name));
  std::lock_guard lk(mu_);
  file->registry_pos_ = files_.insert(files_.end(), file.get());
  return file;
}

void PageCache::Impl::Unregister(FileImpl* f) {
  {
    std::unique_lock lk(mu_);
    // From here on no eviction, throttling or background pass picks up the
    // file's pages; wait for those already at work on them.
    f->closing_ = true;
    files_.erase(f->registry_pos_);
    file_cv_.wait(lk, [f] { return f->busy_ == 0; });
  }
  std::vector<Page*> doomed;
  {
    std::lock_guard fl(f->mu_);
    std::lock_guard lk(mu_);
    for (const auto& [index, page] : f->pages_) {
      assert(page->refs.load() == 0 && "a page is still in use while its file is destroyed");
      lru_.erase(page->lru_pos);
      if (page->dirty_blocks != 0) {
        dirty_.erase(page->dirty_pos);
        dirty_bytes_ -= uint64_t{page->dirty_blocks} * f->block_size_;
      }
      cached_bytes_ -= page_size_;
      doomed.push_back(page);
    }
    f->pages_.clear();
    f->dirty_bytes_.store(0, std::memory_order_relaxed);
    space_cv_.notify_all();
  }
  for (Page* page : doomed) delete page;
}

Status PageCache::Impl::WriteBackAll() {
  std::vector<FileImpl*> files;
  {
    std::lock_guard lk(mu_);
    for (FileImpl* f : files_) {
      ++f->busy_;
      files.push_back(f);
    }
  }
  Status first_error;
  for (FileImpl* f : files) {
    Status st = WriteBack(f, 0, 0);
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  std::lock_guard lk(mu_);
  for (FileImpl* f : files) {
    if (--f->busy_ == 0 && f->closing_) file_cv_.notify_all();
  }
  return first_error;
}

CacheStats PageCache::Impl::stats() const {
  CacheStats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.readahead_pages = readahead_pages_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.writeback_bytes = writeback_bytes_.load(std::memory_order_relaxed);
  s.writethrough_bytes = writethrough_bytes_.load(std::memory_order_relaxed);
  std::lock_guard lk(mu_);
  s.cached_bytes = cached_bytes_;
  s.dirty_bytes = dirty_bytes_;
  return s;
}

// ---------------------------------------------------------------------------
// Pins and space.

void PageCache::Impl::Unpin(Page* page) {
  // seq_cst on both sides pairs with Reserve: either the waiter's scan sees
  // this drop, or we see the waiter and notify under the mutex.
  if (page->refs.fetch_sub(1) == 1 && space_waiters_.load() > 0) {
    std::lock_guard lk(mu_);
    space_cv_.notify_all();
  }
}

void PageCache::Impl::UnpinCacheSide(Page* page) {
  FileImpl* f = page->file;  // the page may be freed once unpinned; the file may not
  Unpin(page);
  std::lock_guard lk(mu_);
  if (--f->busy_ == 0 && f->closing_) file_cv_.notify_all();
}

void PageCache::Impl::PinCacheSideLocked(Page* page) {
  page->refs.fetch_add(1);
  ++page->file->busy_;
}

Status PageCache::Impl::Reserve(bool may_block) {
  struct WaiterCount {
    explicit WaiterCount(std::atomic<int>* c) : count(c) { count->fetch_add(1); }
    ~WaiterCount() { count->fetch_sub(1); }
    std::atomic<int>* count;
  };
  // Counted before the first scan, so no unpin between the scan and the
  // wait goes unnoticed.
  std::optional<WaiterCount> waiter;
  if (may_block) waiter.emplace(&space_waiters_);

  std::unique_lock lk(mu_);
  while (cached_bytes_ + page_size_ > capacity_) {
    if (Page* victim = PickCleanVictimLocked()) {
      lk.unlock();
      TryEvict(victim);
      lk.lock();
      continue;
    }
    if (!may_block) return Status(EAGAIN, "page cache full");
    if (Page* victim = PickDirtyVictimLocked()) {
      lk.unlock();
      Status st;
      {
        PageRef pin(this, victim, /*file_busy=*/true);
        st = FlushPages(victim->file, {victim}, 0, kToEnd);
      }
      if (!st.ok()) return st;
      lk.lock();
      continue;  // now clean: the next scan can evict it
    }
    // Every page is pinned (or belongs to a file being closed): wait for a
    // pin to drop. The holders never wait for space themselves.
    space_cv_.wait(lk);
  }
  cached_bytes_ += page_size_;
  return Status::Ok();
}

void PageCache::Impl::Unreserve() {
  std::lock_guard lk(mu_);
  cached_bytes_ -= page_size_;
  space_cv_.notify_all();
}

Page* PageCache::Impl::PickCleanVictimLocked() {
  // Second-chance clock over the LRU list: a referenced page is moved to
  // the back with its bit cleared; the budget lets each page be seen twice.
  size_t budget = 2 * lru_.size();
  auto it = lru_.begin();
  while (budget-- > 0 && it != lru_.end()) {
    Page* page = *it;
    auto next = std::next(it);
    if (!page->file->closing_ && page->dirty_blocks == 0 && page->refs.load() == 0) {
      if (page->referenced.exchange(false)) {
        lru_.splice(lru_.end(), lru_, it);
      } else {
        PinCacheSideLocked(page);
        return page;
      }
    }
    it = next == lru_.end() ? lru_.begin() : next;
  }
  return nullptr;
}

Page* PageCache::Impl::PickDirtyVictimLocked() {
  for (Page* page : lru_) {
    if (!page->file->closing_ && page->dirty_blocks != 0 && page->refs.load() == 0) {
      PinCacheSideLocked(page);
      return page;
    }
  }
  return nullptr;
}

void PageCache::Impl::TryEvict(Page* victim) {
  FileImpl* f = victim->file;
  bool removed = false;
  {
    std::lock_guard fl(f->mu_);
    std::lock_guard lk(mu_);
    // Someone may have looked it up (or dirtied and released it) since we
    // picked it: then it stays.
    if (victim->refs.load() == 1 && victim->dirty_blocks == 0) {
      f->pages_.erase(victim->index);
      lru_.erase(victim->lru_pos);
      cached_bytes_ -= page_size_;
      evictions_.fetch_add(1, std::memory_order_relaxed);
      removed = true;
      space_cv_.notify_all();
    } else {
      victim->refs.fetch_sub(1);
      if (space_waiters_.load() > 0) space_cv_.notify_all();
    }
    if (--f->busy_ == 0 && f->closing_) file_cv_.notify_all();
  }
  if (removed) delete victim;
}

PageCache::Impl::RemoveResult PageCache::Impl::TryRemove(Page* page) {
  FileImpl* f = page->file;
  std::lock_guard fl(f->mu_);
  std::lock_guard lk(mu_);
  if (page->refs.load() != 1) return RemoveResult::kBusy;
  // Nobody else holds a pin, so nobody holds the page lock: the mirror is exact.
  if (page->dirty_blocks != 0) return RemoveResult::kDirty;
  f->pages_.erase(page->index);
  lru_.erase(page->lru_pos);
  cached_bytes_ -= page_size_;
  space_cv_.notify_all();
  return RemoveResult::kRemoved;
}

// ---------------------------------------------------------------------------
// Lookup and creation.

PageRef PageCache::Impl::Lookup(FileImpl* f, uint64_t index) {
  std::lock_guard fl(f->mu_);
  auto it = f->pages_.find(index);
  if (it == f->pages_.end()) return PageRef();
  Page* page = it->second;
  page->refs.fetch_add(1);
  page->referenced.store(true, std::memory_order_relaxed);
  return PageRef(this, page, false);
}

Result<PageRef> PageCache::Impl::GetPage(FileImpl* f, uint64_t index) {
  if (PageRef ref = Lookup(f, index)) return ref;
  ZF_RETURN_IF_ERROR(Reserve(/*may_block=*/true));
  return InsertPage(f, index, nullptr);
}

Result<PageRef> PageCache::Impl::GetPageNoWait(FileImpl* f, uint64_t index) {
  if (PageRef ref = Lookup(f, index)) return ref;
  ZF_RETURN_IF_ERROR(Reserve(/*may_block=*/false));
  return InsertPage(f, index, nullptr);
}

PageRef PageCache::Impl::CreateFreshPage(FileImpl* f, uint64_t index, PageLock* lock) {
  {
    std::lock_guard fl(f->mu_);
    if (f->pages_.count(index) != 0) return PageRef();
  }
  if (!Reserve(/*may_block=*/false).ok()) return PageRef();
  Result<PageRef> ref = InsertPage(f, index, lock);
  if (!ref.ok()) return PageRef();
  return std::move(ref).value();
}

Result<PageRef> PageCache::Impl::InsertPage(FileImpl* f, uint64_t index, PageLock* fresh_lock) {
  // Zeroed: blocks that are never loaded (past the end of the file) read as
  // zeros.
  uint8_t* data = InjectedAllocationFailure() ? nullptr : arena_.Allocate();
  if (data == nullptr) {
    Unreserve();
    return Status(ENOMEM, "page cache: no memory for a page of " + f->name_);
  }
  auto page = std::make_unique<Page>(f, index, &arena_, data);
  // Locked before it is published, so nobody can get in before the loader.
  if (fresh_lock != nullptr) *fresh_lock = PageLock(page->mu);
  Page* existing = nullptr;
  bool published = false;
  {
    std::lock_guard fl(f->mu_);
    auto [it, inserted] = f->pages_.try_emplace(index, page.get());
    published = inserted;
    if (inserted) {
      page->refs.store(1);
      std::lock_guard lk(mu_);
      page->lru_pos = lru_.insert(lru_.end(), page.get());
    } else if (fresh_lock == nullptr) {
      existing = it->second;
      existing->refs.fetch_add(1);
      existing->referenced.store(true, std::memory_order_relaxed);
    }
  }
  // Once published others may pin it too, so decide by `published`.
  if (published) return PageRef(this, page.release(), false);
  // Lost the race to another creator: give back the reservation.
  if (fresh_lock != nullptr) *fresh_lock = PageLock();
  Unreserve();
  if (existing == nullptr) return PageRef();
  return PageRef(this, existing, false);
}

PageRef PageCache::Impl::PinFirst(FileImpl* f, uint64_t first, uint64_t last) {
  std::lock_guard fl(f->mu_);
  auto it = f->pages_.lower_bound(first);
  if (it == f->pages_.end() || it->first > last) return PageRef();
  it->second->refs.fetch_add(1);
  return PageRef(this, it->second, false);
}

std::vector<PageRef> PageCache::Impl::PinRange(FileImpl* f, uint64_t first, uint64_t last,
                                               bool dirty_only) {
  std::vector<PageRef> refs;
  std::lock_guard fl(f->mu_);
  std::lock_guard lk(mu_);  // for the dirty mirror
  for (auto it = f->pages_.lower_bound(first); it != f->pages_.end() && it->first <= last; ++it) {
    Page* page = it->second;
    if (dirty_only && page->dirty_blocks == 0) continue;
    page->refs.fetch_add(1);
    refs.emplace_back(this, page, false);
  }
  return refs;
}

// ---------------------------------------------------------------------------
// Reading.

Status PageCache::Impl::FillBlock(FileImpl* f, Page* page, uint32_t block, uint64_t limit) {
  if (page->uptodate[block]) return Status::Ok();
  const uint32_t bs = f->block_size_;
  const uint64_t offset = page->index * page_size_ + uint64_t{block} * bs;
  uint8_t* dst = page->data + uint64_t{block} * bs;
  if (offset >= limit) {
    // Beyond the end of the file the device holds nothing (and must not be
    // read). Not marked up to date: only the caller's write makes it so.
    std::memset(dst, 0, bs);
    return Status::Ok();
  }
  ZF_RETURN_IF_ERROR(f->backing_->ReadBlocks(offset, dst, bs));
  page->uptodate.set(block);
  return Status::Ok();
}

Status PageCache::Impl::FillPartialBlocks(FileImpl* f, Page* page, uint32_t from, uint32_t to,
                                          uint64_t limit) {
  const uint32_t bs = f->block_size_;
  if (from % bs != 0) ZF_RETURN_IF_ERROR(FillBlock(f, page, from / bs, limit));
  if (to % bs != 0) ZF_RETURN_IF_ERROR(FillBlock(f, page, to / bs, limit));
  return Status::Ok();
}

Status PageCache::Impl::LoadMissingBlocks(FileImpl* f, Page* page, uint64_t limit) {
  const uint32_t bs = f->block_size_;
  const uint64_t page_off = page->index * page_size_;
  const uint32_t valid =
      static_cast<uint32_t>(std::min<uint64_t>(f->blocks_per_page_, (limit - page_off) / bs));
  Status st;
  ForEachRun(~page->uptodate, 0, valid, [&](uint32_t first, uint32_t count) {
    if (!st.ok()) return;
    st = f->backing_->ReadBlocks(page_off + uint64_t{first} * bs, page->data + uint64_t{first} * bs,
                                 uint64_t{count} * bs);
    if (st.ok()) page->uptodate |= BlockRange(first, count);
  });
  ZF_RETURN_IF_ERROR(st);
  ForEachRun(~page->uptodate, valid, f->blocks_per_page_, [&](uint32_t first, uint32_t count) {
    std::memset(page->data + uint64_t{first} * bs, 0, uint64_t{count} * bs);
  });
  return Status::Ok();
}

Status PageCache::Impl::ReadPages(FileImpl* f, const std::vector<Page*>& pages, uint64_t limit) {
  const uint64_t first_off = pages.front()->index * page_size_;
  const uint64_t end = std::min(first_off + pages.size() * page_size_, limit);
  const uint64_t len = end - first_off;
  std::unique_ptr<uint8_t[]> bounce;
  if (pages.size() > 1) {
    bounce.reset(new (std::nothrow) uint8_t[len]);
    // Without memory for one large read, read the page the caller needs.
    if (!bounce) return ReadPages(f, {pages.front()}, limit);
  }
  ZF_RETURN_IF_ERROR(
      f->backing_->ReadBlocks(first_off, bounce ? bounce.get() : pages.front()->data, len));
  for (Page* page : pages) {
    const uint64_t page_off = page->index * page_size_;
    const uint64_t valid = std::min<uint64_t>(page_size_, end - page_off);
    if (bounce) std::memcpy(page->data, bounce.get() + (page_off - first_off), valid);
    // A failed write-through may have left bytes in blocks it dropped.
    std::memset(page->data + valid, 0, page_size_ - valid);
    page->uptodate |= BlockRange(0, static_cast<uint32_t>(valid / f->block_size_));
  }
  return Status::Ok();
}

uint64_t PageCache::Impl::NextReadaheadPages(FileImpl* f) {
  const uint64_t max_pages = options_.readahead_max_bytes / page_size_;
  if (max_pages == 0) return 0;
  std::lock_guard fl(f->mu_);
  f->ra_pages_ = std::min<uint64_t>(f->ra_pages_ == 0 ? 2 : 2 * f->ra_pages_, max_pages);
  return f->ra_pages_;
}

Result<uint64_t> PageCache::Impl::LoadForRead(FileImpl* f, Page* page, uint64_t limit,
                                              uint64_t request_end, bool sequential) {
  const uint64_t index = page->index;
  if (page->uptodate.any()) {
    // Partly written or loaded already: fetch just the holes.
    ZF_RETURN_IF_ERROR(LoadMissingBlocks(f, page, limit));
    return index + 1;
  }
  // An empty page: read it together with the following pages the request
  // needs and, for a sequential reader, the readahead window, in one I/O.
  // Those are only new pages that fit without waiting for space.
  const uint64_t request_last = (request_end - 1) / page_size_;
  uint64_t last = request_last;
  if (sequential) last += NextReadaheadPages(f);
  last = std::min(last, (limit - 1) / page_size_);
  last = std::min(last, index + max_io_bytes_ / page_size_ - 1);
  std::vector<Page*> batch{page};
  std::vector<PageRef> pins;
  std::vector<PageLock> locks;  // after pins: unlocked first
  for (uint64_t next = index + 1; next <= last; ++next) {
    PageLock lock;
    PageRef ref = CreateFreshPage(f, next, &lock);
    if (!ref) break;
    batch.push_back(ref.get());
    pins.push_back(std::move(ref));
    locks.push_back(std::move(lock));
  }
  ZF_RETURN_IF_ERROR(ReadPages(f, batch, limit));
  for (size_t i = 1; i < batch.size(); ++i) {
    (batch[i]->index > request_last ? readahead_pages_ : misses_)
        .fetch_add(1, std::memory_order_relaxed);
  }
  return index + batch.size();
}

Result<size_t> PageCache::Impl::Read(FileImpl* f, uint64_t offset, void* buf, size_t len,
                                     uint64_t file_size, const ReadProgress* progress) {
  if (offset >= file_size || len == 0) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, file_size - offset));
  const uint32_t bs = f->block_size_;
  const uint64_t limit = RoundUp(file_size, bs);
  const uint64_t end = offset + len;
  bool sequential;
  {
    std::lock_guard fl(f->mu_);
    sequential = offset == f->next_read_;
    f->next_read_ = end;
    if (!sequential) f->ra_pages_ = 0;
  }
  auto* out = static_cast<uint8_t*>(buf);
  // Pages below this index were read from the device by this call (counted
  // as misses, not as hits when we get to them).
  uint64_t loaded_end = 0;
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t index = pos / page_size_;
    const uint64_t page_off = index * page_size_;
    const auto from = static_cast<uint32_t>(pos - page_off);
    const auto to = static_cast<uint32_t>(std::min<uint64_t>(end - page_off, page_size_));
    const BlockBits need = BlockRange(from / bs, (to + bs - 1) / bs - from / bs);
    ZF_ASSIGN_OR_RETURN(PageRef page, GetPage(f, index));
    bool copied = false;
    {
      std::shared_lock shared(page->mu);
      if ((page->uptodate & need) == need) {
        std::memcpy(out, page->data + from, to - from);
        copied = true;
      }
    }
    if (!copied) {
      // Exclusive: one reader loads, the others wait here and find it done.
      PageLock lock(page->mu);
      if ((page->uptodate & need) != need) {
        misses_.fetch_add(1, std::memory_order_relaxed);
        ZF_ASSIGN_OR_RETURN(loaded_end, LoadForRead(f, page.get(), limit, end, sequential));
      } else if (index >= loaded_end) {
        hits_.fetch_add(1, std::memory_order_relaxed);
      }
      std::memcpy(out, page->data + from, to - from);
    } else if (index >= loaded_end) {
      hits_.fetch_add(1, std::memory_order_relaxed);
    }
    out += to - from;
    pos = page_off + to;
    if (progress != nullptr) (*progress)(pos - offset);
  }
  return len;
}

// ---------------------------------------------------------------------------
// Writing.

Result<size_t> PageCache::Impl::Write(FileImpl* f, uint64_t offset, const void* buf, size_t len,
                                      uint64_t file_size) {
  const uint32_t bs = f->block_size_;
  const uint64_t limit = RoundUp(file_size, bs);
  const auto* in = static_cast<const uint8_t*>(buf);
  const uint64_t end = offset + len;
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t index = pos / page_size_;
    const uint64_t page_off = index * page_size_;
    const auto from = static_cast<uint32_t>(pos - page_off);
    const auto to = static_cast<uint32_t>(std::min<uint64_t>(end - page_off, page_size_));
    {
      ZF_ASSIGN_OR_RETURN(PageRef page, GetPage(f, index));
      PageLock lock(page->mu);
      ZF_RETURN_IF_ERROR(FillPartialBlocks(f, page.get(), from, to, limit));
      std::memcpy(page->data + from, in, to - from);
      const BlockBits range = BlockRange(from / bs, (to + bs - 1) / bs - from / bs);
      page->uptodate |= range;
      page->dirty |= range;
      AccountDirty(page.get());
    }
    // With no pin held, so it may write back any page.
    BalanceDirty();
    in += to - from;
    pos = page_off + to;
  }
  return len;
}

Result<size_t> PageCache::Impl::WriteThrough(FileImpl* f, uint64_t offset, const void* buf,
                                             size_t len, uint64_t file_size) {
  const uint32_t bs = f->block_size_;
  const uint64_t limit = RoundUp(file_size, bs);
  const auto* in = static_cast<const uint8_t*>(buf);
  const uint64_t end = offset + len;
  // Pages stay locked from the copy until their blocks are on the device:
  // no reader sees a dropped copy, no write-back interleaves.
  BlockRun run(this, f, /*write_through=*/true);
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t index = pos / page_size_;
    const uint64_t page_off = index * page_size_;
    const auto from = static_cast<uint32_t>(pos - page_off);
    const auto to = static_cast<uint32_t>(std::min<uint64_t>(end - page_off, page_size_));
    const uint32_t first = from / bs;
    const uint32_t count = (to + bs - 1) / bs - first;
    PageRef page;
    if (run.empty()) {
      ZF_ASSIGN_OR_RETURN(page, GetPage(f, index));
    } else {
      // Holding the run's pages: only take room that needs no waiting, else
      // issue what we have and go on from an empty hand.
      Result<PageRef> next = GetPageNoWait(f, index);
      if (!next.ok()) {
        ZF_RETURN_IF_ERROR(run.Write());
        continue;
      }
      page = std::move(next).value();
    }
    PageLock lock(page->mu);
    if (!run.empty() && !run.Continues(page.get(), first, count)) {
      ZF_RETURN_IF_ERROR(run.Write());
    }
    if (Status st = FillPartialBlocks(f, page.get(), from, to, limit); !st.ok()) {
      lock.unlock();
      page.Reset();
      Status written = run.Write();
      return written.ok() ? st : written;
    }
    std::memcpy(page->data + from, in, to - from);
    page->uptodate |= BlockRange(first, count);
    run.Add(page.get(), first, count);
    run.Hold(std::move(lock));
    run.Hold(std::move(page));
    if (run.bytes() >= max_io_bytes_) ZF_RETURN_IF_ERROR(run.Write());
    in += to - from;
    pos = page_off + to;
  }
  ZF_RETURN_IF_ERROR(run.Write());
  return len;
}

// ---------------------------------------------------------------------------
// Write-back, invalidation.

void PageCache::Impl::AccountDirty(Page* page) {
  const auto now_dirty = static_cast<uint32_t>(page->dirty.count());
  FileImpl* f = page->file;
  std::lock_guard lk(mu_);
  const uint32_t was_dirty = page->dirty_blocks;
  if (now_dirty == was_dirty) return;
  const uint64_t added = uint64_t{now_dirty} * f->block_size_;
  const uint64_t removed = uint64_t{was_dirty} * f->block_size_;
  dirty_bytes_ = dirty_bytes_ + added - removed;
  f->dirty_bytes_.store(f->dirty_bytes_.load(std::memory_order_relaxed) + added - removed,
                        std::memory_order_relaxed);
  page->dirty_blocks = now_dirty;
  if (was_dirty == 0) {
    page->dirty_since = Clock::now();
    page->dirty_pos = dirty_.insert(dirty_.end(), page);
  } else if (now_dirty == 0) {
    dirty_.erase(page->dirty_pos);
  }
  if (dirty_bytes_ > dirty_limit_ && !bg_kick_) {
    bg_kick_ = true;
    bg_cv_.notify_one();
  }
}

Status PageCache::Impl::FlushPages(FileImpl* f, const std::vector<Page*>& pages, uint64_t lo,
                                   uint64_t hi) {
  const uint32_t bs = f->block_size_;
  const uint32_t bpp = f->blocks_per_page_;
  BlockRun run(this, f, /*write_through=*/false);
  for (Page* page : pages) {
    const uint64_t page_off = page->index * page_size_;
    if (hi <= page_off || lo >= page_off + page_size_) continue;
    const auto first = static_cast<uint32_t>(lo > page_off ? (lo - page_off) / bs : 0);
    const auto last =
        static_cast<uint32_t>(hi - page_off >= page_size_ ? bpp : RoundUp(hi - page_off, bs) / bs);
    PageLock lock(page->mu);
    Status st;
    bool in_run = false;
    bool reaches_end = false;
    ForEachRun(page->dirty, first, last, [&](uint32_t start, uint32_t count) {
      if (!st.ok()) return;
      if (!run.empty() && !run.Continues(page, start, count)) {
        st = run.Write();
        in_run = false;
        if (!st.ok()) return;
      }
      run.Add(page, start, count);
      in_run = true;
      reaches_end = start + count == bpp;
    });
    ZF_RETURN_IF_ERROR(st);
    if (!in_run) continue;
    if (reaches_end) {
      // The run may go on into the next page: keep this one locked until
      // it is written.
      run.Hold(std::move(lock));
    } else {
      ZF_RETURN_IF_ERROR(run.Write());
    }
  }
  return run.Write();
}

Status PageCache::Impl::WriteBack(FileImpl* f, uint64_t offset, uint64_t len) {
  const uint64_t end = RangeEnd(offset, len);
  std::vector<PageRef> pins =
      PinRange(f, offset / page_size_, (end - 1) / page_size_, /*dirty_only=*/true);
  return FlushPages(f, RawPages(pins), offset, end);
}

Status PageCache::Impl::Invalidate(FileImpl* f, uint64_t offset, uint64_t len) {
  const uint64_t end = RangeEnd(offset, len);
  const uint64_t first = offset / page_size_;
  const uint64_t last = (end - 1) / page_size_;
  {
    // Whole pages go, so all their dirty blocks are written first, including
    // those outside the range. Only dirty pages are locked: a page busy
    // elsewhere (being loaded, say) must give EBUSY below, not a wait.
    std::vector<PageRef> dirty = PinRange(f, first, last, /*dirty_only=*/true);
    ZF_RETURN_IF_ERROR(FlushPages(f, RawPages(dirty), 0, kToEnd));
  }
  // One page at a time, and a page that is merely in use (a concurrent
  // write-back, read or invalidation: transient) is let go and looked up
  // again for a little while, so two invalidations of one page do not keep
  // each other out. A view's pin is not transient: give up on that page.
  std::string busy;  // why the first page that stays could not go
  uint64_t index = first;
  int dirty_attempts = 0;
  std::optional<Clock::time_point> busy_since;
  while (index <= last) {
    PageRef pin = PinFirst(f, index, last);
    if (!pin) break;
    if (pin->index != index) {
      index = pin->index;
      dirty_attempts = 0;
      busy_since.reset();
    }
    const RemoveResult result = TryRemove(pin.get());
    if (result == RemoveResult::kRemoved) {
      delete pin.Release();
      ++index;
      dirty_attempts = 0;
      busy_since.reset();
      continue;
    }
    bool give_up = false;
    if (result == RemoveResult::kDirty) {
      // A writer dirtied it again after our write-back.
      give_up = dirty_attempts++ >= kInvalidateRetries;
      if (!give_up) ZF_RETURN_IF_ERROR(FlushPages(f, {pin.get()}, 0, kToEnd));
    } else if (pin->view_pins.load() != 0) {
      give_up = true;
    } else {
      const Clock::time_point now = Clock::now();
      if (!busy_since) busy_since = now;
      give_up = now - *busy_since >= kInvalidateBusyWait;
      if (!give_up) {
        pin.Reset();
        std::this_thread::yield();
      }
    }
    if (give_up) {
      if (busy.empty()) {
        busy = "the cache page at " + std::to_string(index * page_size_) + " is " +
               (result == RemoveResult::kDirty      ? "dirtied again as it is written back"
                : pin && pin->view_pins.load() != 0 ? "pinned by a mapped view"
                                                    : "in use by another operation");
      }
      ++index;
      dirty_attempts = 0;
      busy_since.reset();
    }
  }
  if (!busy.empty()) return Status(EBUSY, "page cache: " + f->name_ + ": " + busy);
  return Status::Ok();
}

void PageCache::Impl::Discard(FileImpl* f, uint64_t offset) {
  const uint32_t bs = f->block_size_;
  std::vector<PageRef> pins = PinRange(f, offset / page_size_, kToEnd, /*dirty_only=*/false);
  for (PageRef& pin : pins) {
    Page* page = pin.get();
    const uint64_t page_off = page->index * page_size_;
    const uint64_t cut = offset > page_off ? offset - page_off : 0;  // first byte dropped
    const auto keep = static_cast<uint32_t>(RoundUp(cut, bs) / bs);  // blocks kept
    {
      PageLock lock(page->mu);
      // A block straddling the cut keeps its flags and loses its upper bytes.
      std::memset(page->data + cut, 0, page_size_ - cut);
      const BlockBits dropped = BlockRange(keep, f->blocks_per_page_ - keep);
      page->uptodate &= ~dropped;
      page->dirty &= ~dropped;
      AccountDirty(page);
    }
    // A page that holds nothing any more leaves the cache unless someone
    // else is using it (then it stays, empty, until evicted).
    if (keep == 0 && TryRemove(page) == RemoveResult::kRemoved) delete pin.Release();
  }
}

void PageCache::Impl::BalanceDirty() {
  std::unique_lock lk(mu_);
  while (dirty_bytes_ > dirty_limit_) {
    Page* oldest = nullptr;
    for (Page* page : dirty_) {
      if (!page->file->closing_) {
        oldest = page;
        break;
      }
    }
    if (oldest == nullptr) return;
    // Pinned even if someone else is writing it back: then FlushPages waits
    // for their write on the page lock, which is what throttling wants.
    PinCacheSideLocked(oldest);
    lk.unlock();
    Status st;
    {
      PageRef pin(this, oldest, /*file_busy=*/true);
      st = FlushPages(oldest->file, {oldest}, 0, kToEnd);
    }
    // On error the page stays dirty and the error surfaces at the file's
    // next WriteBack; the write itself has succeeded.
    if (!st.ok()) return;
    lk.lock();
  }
}

void PageCache::Impl::BackgroundLoop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    bg_cv_.wait_for(lk, period_, [this] { return stop_ || bg_kick_; });
    if (stop_) break;
    bg_kick_ = false;
    // Pages dirty for longer than the interval, and, while dirty bytes are
    // above the limit, the oldest ones down to half the limit (hysteresis,
    // so writers are not throttled again at once).
    const Clock::time_point now = Clock::now();
    std::vector<PageRef> batch;
    uint64_t planned = 0;
    bool full = false;
    for (Page* page : dirty_) {
      if (batch.size() == kMaxBackgroundBatch) {
        full = true;
        break;
      }
      const bool expired = now - page->dirty_since >= interval_;
      const bool over = dirty_bytes_ - planned > dirty_limit_ / 2;
      if (!expired && !over) break;  // the list is oldest first
      if (page->file->closing_) continue;
      PinCacheSideLocked(page);
      batch.emplace_back(this, page, /*file_busy=*/true);
      planned += uint64_t{page->dirty_blocks} * page->file->block_size_;
    }
    if (batch.empty()) continue;
    lk.unlock();
    std::sort(batch.begin(), batch.end(), [](const PageRef& a, const PageRef& b) {
      if (a->file != b->file) return std::less<const FileImpl*>()(a->file, b->file);
      return a->index < b->index;
    });
    bool failed = false;
    for (size_t i = 0; i < batch.size();) {
      size_t j = i;
      std::vector<Page*> group;
      while (j < batch.size() && batch[j]->file == batch[i]->file)
        group.push_back(batch[j++].get());
      // Failed pages stay dirty (and first in line); the file's next
      // WriteBack reports the error.
      if (!FlushPages(batch[i]->file, group, 0, kToEnd).ok()) failed = true;
      i = j;
    }
    batch.clear();  // unpins: needs the mutex released
    lk.lock();
    if (full && !failed) bg_kick_ = true;
  }
}

// ---------------------------------------------------------------------------
// Mapped views.

namespace {

class ViewImpl final : public CacheView {
 public:
  ViewImpl(PageCache::Impl* cache, std::vector<PageRef> pins, ArenaMapping mapping,
           const uint8_t* data, size_t size, uint32_t page_size, uint64_t start)
      : cache_(cache),
        pins_(std::move(pins)),
        mapping_(std::move(mapping)),
        data_(data),
        size_(size),
        page_size_(page_size),
        start_(start) {}
  ~ViewImpl() override {
    // Unmapped before the pins go: a freed slot may be reused at once.
    mapping_ = ArenaMapping();
    const uint64_t pages = pins_.size();
    for (PageRef& pin : pins_) pin->view_pins.fetch_sub(1);
    pins_.clear();
    cache_->ViewClosed(pages);
  }
  const void* data() const override { return data_; }
  size_t size() const override { return size_; }
  std::vector<Extent> extents() const override {
    std::vector<Extent> out;
    for (const PageRef& pin : pins_) {
      const uint64_t offset = pin->arena->OffsetOf(pin->data);
      const uint64_t page_size = page_size_;
      if (!out.empty() && out.back().arena_offset + out.back().length == offset) {
        out.back().length += page_size;
      } else {
        out.push_back({offset, page_size});
      }
    }
    return out;
  }
  uint64_t start() const override { return start_; }

 private:
  PageCache::Impl* const cache_;
  std::vector<PageRef> pins_;
  ArenaMapping mapping_;  // empty when data_ points into the arena itself
  const uint8_t* const data_;
  const size_t size_;
  const uint32_t page_size_;
  const uint64_t start_;  // offset of the first byte in the first page
};

}  // namespace

Result<std::unique_ptr<CacheView>> PageCache::Impl::Map(FileImpl* f, uint64_t offset, size_t len,
                                                        uint64_t file_size) {
  if (len == 0 || offset > file_size || len > file_size - offset) {
    return Status(EINVAL, f->name_ + ": a view of " + std::to_string(len) + " bytes at " +
                              std::to_string(offset) + " is not within the file's " +
                              std::to_string(file_size) + " bytes");
  }
  const uint64_t first = offset / page_size_;
  const uint64_t last = (offset + len - 1) / page_size_;
  const uint64_t npages = last - first + 1;
  if (npages > 1 && !arena_.can_map_pages()) {
    return arena_.MapPages({}).status().WithContext(f->name_);  // says why
  }
  {
    std::lock_guard lk(mu_);
    if ((view_pages_ + npages) * page_size_ > capacity_ / 2) {
      return Status(ENOMEM, f->name_ + ": a view of " + std::to_string(len) +
                                " bytes would leave mapped views pinning more than half of the "
                                "page cache (" +
                                std::to_string(capacity_) + " bytes, mount option cache_size)");
    }
    view_pages_ += npages;
  }
  // Given back unless the view is built.
  struct Budget {
    Impl* cache;
    uint64_t pages;
    ~Budget() {
      if (pages != 0) cache->ViewClosed(pages);
    }
  } budget{this, npages};

  // Pins every page. Room for the missing ones is reserved first, while we
  // hold no pins (a caller holding pins must not wait for space); the view
  // budget above leaves enough of the cache unpinned for that to succeed.
  // Pages cached at the count but evicted before we pin them take room
  // without waiting, or the pass starts over.
  std::vector<PageRef> pins;
  for (int pass = 0;; ++pass) {
    pins.clear();
    uint64_t missing = 0;
    {
      std::lock_guard fl(f->mu_);
      for (uint64_t index = first; index <= last; ++index) missing += f->pages_.count(index) == 0;
    }
    uint64_t reserved = 0;
    struct Reservations {
      Impl* cache;
      uint64_t* count;
      ~Reservations() {
        for (; *count > 0; --*count) cache->Unreserve();
      }
    } give_back{this, &reserved};
    for (; reserved < missing; ++reserved) ZF_RETURN_IF_ERROR(Reserve(/*may_block=*/true));
    bool short_of_room = false;
    for (uint64_t index = first; index <= last && !short_of_room; ++index) {
      if (PageRef ref = Lookup(f, index)) {
        pins.push_back(std::move(ref));
      } else if (reserved > 0) {
        --reserved;  // InsertPage owns it now (and gives it back on a lost race)
        ZF_ASSIGN_OR_RETURN(PageRef ref_new, InsertPage(f, index, nullptr));
        pins.push_back(std::move(ref_new));
      } else {
        Result<PageRef> ref_now = GetPageNoWait(f, index);
        if (!ref_now.ok() && ref_now.status().err() != EAGAIN) return ref_now.status();
        short_of_room = !ref_now.ok();
        if (ref_now.ok()) pins.push_back(std::move(ref_now).value());
      }
    }
    if (!short_of_room) break;
    if (pass == 16) {
      return Status(ENOMEM, f->name_ + ": no room in the page cache for a view of " +
                                std::to_string(len) + " bytes (other I/O keeps it full)");
    }
  }
  std::sort(pins.begin(), pins.end(),
            [](const PageRef& a, const PageRef& b) { return a->index < b->index; });
  const uint64_t limit = RoundUp(file_size, f->block_size_);
  for (PageRef& pin : pins) {
    PageLock lock(pin->mu);
    ZF_RETURN_IF_ERROR(LoadMissingBlocks(f, pin.get(), limit));
  }
  const uint64_t skip = offset - first * page_size_;
  ArenaMapping mapping;
  const uint8_t* data;
  if (arena_.can_map_pages()) {
    std::vector<const uint8_t*> slots;
    for (const PageRef& pin : pins) slots.push_back(pin->data);
    auto m = arena_.MapPages(slots);
    if (!m.ok()) return m.status().WithContext(f->name_);
    mapping = std::move(m).value();
    data = mapping.data() + skip;
  } else {
    data = pins.front()->data + skip;
  }
  for (PageRef& pin : pins) pin->view_pins.fetch_add(1);
  budget.pages = 0;
  return std::unique_ptr<CacheView>(
      new ViewImpl(this, std::move(pins), std::move(mapping), data, len, page_size_, skip));
}

void PageCache::Impl::ViewClosed(uint64_t pages) {
  std::lock_guard lk(mu_);
  view_pages_ -= pages;
}

bool PageCache::Impl::Cached(FileImpl* f, uint64_t offset, size_t len) {
  if (len == 0) return true;
  const uint32_t bs = f->block_size_;
  const uint64_t end = offset + len;
  for (uint64_t index = offset / page_size_; index <= (end - 1) / page_size_; ++index) {
    PageRef page = Lookup(f, index);
    if (!page) return false;
    const uint64_t page_off = index * page_size_;
    const auto from = static_cast<uint32_t>(std::max(offset, page_off) - page_off);
    const auto to = static_cast<uint32_t>(std::min<uint64_t>(end - page_off, page_size_));
    const BlockBits need = BlockRange(from / bs, (to + bs - 1) / bs - from / bs);
    std::shared_lock shared(page->mu, std::try_to_lock);
    if (!shared.owns_lock() || (page->uptodate & need) != need) return false;
  }
  return true;
}

bool PageCache::Impl::InjectedAllocationFailure() {
  uint32_t n = injected_allocation_failures_.load(std::memory_order_relaxed);
  while (n > 0) {
    if (injected_allocation_failures_.compare_exchange_weak(n, n - 1)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Public shells.

PageCache::PageCache(const CacheOptions& options) : impl_(std::make_unique<Impl>(options)) {}
PageCache::~PageCache() = default;

std::unique_ptr<CachedFile> PageCache::Register(CacheBacking* backing, uint32_t block_size,
                                                std::string name) {
  return impl_->Register(backing, block_size, std::move(name));
}
Status PageCache::WriteBackAll() { return impl_->WriteBackAll(); }
CacheStats PageCache::stats() const { return impl_->stats(); }
const CacheOptions& PageCache::options() const { return impl_->options(); }
void PageCache::InjectAllocationFailures(uint32_t count) { impl_->InjectAllocationFailures(count); }
int PageCache::arena_fd() const { return impl_->arena_fd(); }
uint64_t PageCache::arena_size() const { return impl_->arena_size(); }

}  // namespace zfile
