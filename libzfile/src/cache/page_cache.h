// PageCache: zfile's own page cache for buffered file I/O.
//
// Files register a CacheBacking (how to read and write their blocks on the
// device) and get a CachedFile. Pages are `page_size` bytes (a power of two,
// a multiple of the file's block size, at most 256 blocks) and track, per
// block, whether it is up to date and whether it is dirty, so that a
// write-through or write-back issues only the blocks that changed.
//
// Contracts:
//  - Memory is bounded by `capacity_bytes`: inserting a page when full evicts
//    the least recently used clean, unpinned page (writing back dirty ones
//    first if nothing clean can go); when every page is pinned or busy, the
//    call waits for one to come free. The bound is strict: a page's bytes are
//    reserved before it is built, so stats().cached_bytes never exceeds the
//    capacity (rounded down to whole pages, and at least one page). A call
//    never waits for space while it holds pages; it works page by page and
//    gathers further pages for one device request only when they fit
//    without waiting. A pin held indefinitely (a mapped view) is simply
//    unavailable to eviction; views may pin at most half the cache.
//  - Buffered reads and writes on different pages of one file run in
//    parallel: no file-wide lock is held while data is copied. A page's
//    contents are guarded by the page's own lock.
//  - Dirty pages are written back by a background thread once they are
//    older than `writeback_interval_ms`, or sooner when dirty pages exceed
//    `dirty_limit_percent` of the capacity; writers above that limit write
//    back synchronously (throttling).
//  - Sequential reads are detected per file and read ahead (a window that
//    doubles up to `readahead_max_bytes`).
//  - A CachedFile must be destroyed (after WriteBack if its dirty data
//    matters) before its backing, and all CachedFiles before the PageCache.
#ifndef ZFILE_CACHE_PAGE_CACHE_H_
#define ZFILE_CACHE_PAGE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace zfile {

// The device side of one cached file. Offsets are file offsets, lengths and
// offsets are multiples of the file's block size. Called without any cache
// lock that other files' I/O needs, possibly from several threads at once
// for different ranges.
class CacheBacking {
 public:
  virtual ~CacheBacking() = default;
  virtual Status ReadBlocks(uint64_t offset, void* buf, size_t len) = 0;
  virtual Status WriteBlocks(uint64_t offset, const void* buf, size_t len) = 0;
};

struct CacheOptions {
  uint64_t capacity_bytes = 256ull << 20;
  uint32_t page_size = 64u << 10;
  uint32_t writeback_interval_ms = 5000;
  uint32_t dirty_limit_percent = 20;
  uint32_t readahead_max_bytes = 1u << 20;
};

struct CacheStats {
  uint64_t hits = 0;             // page lookups that found the data
  uint64_t misses = 0;           // page lookups that read from the device
  uint64_t readahead_pages = 0;  // pages read ahead of a sequential reader
  uint64_t evictions = 0;
  uint64_t writeback_bytes = 0;     // bytes written back (background, fsync, pressure)
  uint64_t writethrough_bytes = 0;  // bytes written by WriteThrough
  uint64_t cached_bytes = 0;        // current
  uint64_t dirty_bytes = 0;         // current
};

class CachedFile;

// A read-only, zero-copy view of a cached range of one file (a mapped
// view, zfile_map). Its pages are pinned while it lives: they stay in the
// cache, are never evicted, and cannot be invalidated (a direct write over
// them falls back to a buffered write). The memory is the cache's own, so
// every later write to the range shows through. Destroy it before its
// CachedFile.
class CacheView {
 public:
  // A run of whole pages in the cache's arena (PageCache::arena_fd()).
  struct Extent {
    uint64_t arena_offset = 0;
    uint64_t length = 0;
  };

  virtual ~CacheView() = default;
  virtual const void* data() const = 0;
  virtual size_t size() const = 0;
  // Where the view's pages are in the arena, in file order, adjacent slots
  // merged, and where its first byte is in the first page: what another
  // process needs to map the same view from the arena's descriptor.
  virtual std::vector<Extent> extents() const = 0;
  virtual uint64_t start() const = 0;
};

class PageCache {
 public:
  explicit PageCache(const CacheOptions& options);
  ~PageCache();
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // `name` is for logs ("seq/3"). `block_size` divides the page size.
  std::unique_ptr<CachedFile> Register(CacheBacking* backing, uint32_t block_size,
                                       std::string name);

  // Writes back every dirty page of every file.
  Status WriteBackAll();
  CacheStats stats() const;
  // The options in effect: capacity rounded down to whole pages (at least
  // one), dirty_limit_percent at most 100.
  const CacheOptions& options() const;

  // The page memory: a read-only descriptor of the arena that views map
  // (for other processes; -1 if the cache has none) and its size.
  int arena_fd() const;
  uint64_t arena_size() const;

  // Test seam: the next `count` memory allocations of the cache (pages,
  // write-back bounce buffers) fail with ENOMEM.
  void InjectAllocationFailures(uint32_t count);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Told, as a read goes, how many of its bytes are in the caller's buffer
// (after each page; never more than a read that succeeds returns, while
// one that fails after some pages has told of them). zfiled uses it to
// let a client copy a read out while the rest is read (doorbell.h).
using ReadProgress = std::function<void(uint64_t bytes)>;

class CachedFile {
 public:
  virtual ~CachedFile() = default;

  // Copies [offset, offset+len) into `buf`. `file_size` bounds what exists:
  // the caller has already clipped len so that offset+len <= file_size; the
  // cache never reads device blocks at or beyond round_up(file_size, block).
  // `progress`, if not null, is called as the bytes arrive.
  virtual Result<size_t> Read(uint64_t offset, void* buf, size_t len, uint64_t file_size,
                              const ReadProgress* progress) = 0;
  Result<size_t> Read(uint64_t offset, void* buf, size_t len, uint64_t file_size) {
    return Read(offset, buf, len, file_size, nullptr);
  }

  // Whether every block of [offset, offset+len) is cached and up to date
  // right now (RWF_NOWAIT reads: EAGAIN unless it is). Takes no page lock
  // that a writer holds for long; a snapshot, not a promise.
  virtual bool Cached(uint64_t offset, size_t len) = 0;

  // Buffered write: copies into the cache and marks the changed blocks dirty
  // (blocks partly covered are read first unless up to date; those at or
  // beyond round_up(file_size) are zero-filled instead). Written back
  // later. Returns len, or the error of a read-modify-write or of making
  // room (then earlier pages of the range may already hold the new data).
  // A throttled writer's failed write-back is not its error: the pages stay
  // dirty and the file's next WriteBack reports it.
  virtual Result<size_t> Write(uint64_t offset, const void* buf, size_t len,
                               uint64_t file_size) = 0;

  // Write-through: copies into the cache and writes exactly the blocks that
  // the range touches (partly covered blocks completed from the cache or
  // the device) before returning; the pages are left clean and cached.
  // Blocks are issued in ascending offset order. On a device error nothing
  // is left dirty and the cached copy of the range is dropped (dirty blocks
  // in the range that predate the call are lost with it). Requests are at
  // most 4 MiB, or one page when the cache has no room for more; on an error
  // earlier requests of the range may have reached the device.
  virtual Result<size_t> WriteThrough(uint64_t offset, const void* buf, size_t len,
                                      uint64_t file_size) = 0;

  // Writes back the dirty blocks in [offset, offset+len) (len 0: to the end
  // of the file), in ascending order, and waits for them. Contiguous dirty
  // blocks, across pages too, go in one request (up to 4 MiB). On a device
  // error the blocks not written stay dirty and the error is returned.
  virtual Status WriteBack(uint64_t offset, uint64_t len) = 0;

  // Drops cached pages overlapping [offset, offset+len) (len 0: to the end)
  // after writing back their dirty blocks (all of a page's, as the whole
  // page goes). Used before direct writes. Never waits for a mapped view,
  // and for a page busy in another operation (a write-back, a read, another
  // invalidation) only about 2 ms: such a page stays cached (clean) and the
  // call returns EBUSY once the rest is done, its
  // message saying which page and why (a mapped view, or in use); the
  // caller falls back to a buffered write. A write-back error (EIO, ENOMEM)
  // is returned as is.
  virtual Status Invalidate(uint64_t offset, uint64_t len) = 0;

  // A view of [offset, offset+len), which must lie within `file_size`:
  // loads what is missing, then pins the pages. EINVAL for a range beyond
  // the file, or one that spans pages when the cache's pages are not whole
  // system pages; ENOMEM when views would pin more than half of the cache,
  // or when other I/O keeps it too full to make room.
  virtual Result<std::unique_ptr<CacheView>> Map(uint64_t offset, size_t len,
                                                 uint64_t file_size) = 0;

  // Drops cached data at and above `offset` without writing it back (zone
  // reset, write pointer moved back). A page straddling `offset` keeps its
  // lower blocks; a block straddling it keeps its bytes below `offset`.
  // Pages in use elsewhere stay cached, emptied.
  virtual void Discard(uint64_t offset) = 0;

  virtual uint64_t dirty_bytes() const = 0;
};

}  // namespace zfile

#endif  // ZFILE_CACHE_PAGE_CACHE_H_
