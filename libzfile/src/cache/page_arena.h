// PageArena: the memory behind every page of one PageCache.
//
// One shared-memory file (memfd) of `slots` page-sized slots, mapped once
// read-write for the cache. Because every page lives in that one file, a
// range of pages that are scattered in the arena can be shown to a reader
// as one contiguous, read-only stretch of memory by mapping their slots
// side by side (MapPages): that is what makes mapped views zero-copy across
// page boundaries, and what lets another process (a daemon's client) map
// the same pages from the fd. Writes into a slot through the cache mapping
// are visible through every view of it at once: they share the physical
// pages.
//
// Slot memory is committed on first touch, so an arena costs address space,
// not memory, until the cache fills it.
#ifndef ZFILE_CACHE_PAGE_ARENA_H_
#define ZFILE_CACHE_PAGE_ARENA_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"

namespace zfile {

// A read-only mapping of arena slots at consecutive addresses; unmapped on
// destruction.
class ArenaMapping {
 public:
  ArenaMapping() = default;
  ArenaMapping(void* base, size_t len) : base_(base), len_(len) {}
  ArenaMapping(ArenaMapping&& other) noexcept;
  ArenaMapping& operator=(ArenaMapping&& other) noexcept;
  ArenaMapping(const ArenaMapping&) = delete;
  ArenaMapping& operator=(const ArenaMapping&) = delete;
  ~ArenaMapping();

  const uint8_t* data() const { return static_cast<const uint8_t*>(base_); }
  size_t size() const { return len_; }

 private:
  void* base_ = nullptr;
  size_t len_ = 0;
};

class PageArena {
 public:
  // `page_size` is a power of two. Falls back to private anonymous memory
  // (no fd, no MapPages) when no memfd can be made.
  PageArena(uint32_t page_size, uint64_t slots);
  ~PageArena();
  PageArena(const PageArena&) = delete;
  PageArena& operator=(const PageArena&) = delete;

  // A zeroed slot; nullptr only when the arena has no memory at all. The
  // caller has reserved the slot's bytes in the cache's accounting, so a
  // slot is free or about to be freed by a page's remover (which holds
  // nothing that could wait on us): waits for it.
  uint8_t* Allocate();
  void Free(uint8_t* data);

  // Whether MapPages works: an fd exists and pages are whole multiples of
  // the system page size.
  bool can_map_pages() const { return fd_ >= 0 && page_size_ % system_page_ == 0; }
  // Maps the slots starting at each of `pages` (slot addresses returned by
  // Allocate), in order, as one read-only stretch of pages.size() pages.
  // Slots that are adjacent in the arena share one mmap call.
  Result<ArenaMapping> MapPages(const std::vector<const uint8_t*>& pages) const;

  // The shared-memory file and where a slot lives in it (for other
  // processes); -1 without one. The file is mode 0600 (only our uid and
  // root can reopen it through /proc, with any access) and sealed against
  // shrinking and growing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): its
  // size() is fixed for its life, whoever holds a descriptor of it.
  int fd() const { return fd_; }
  // Read-only descriptor of the same file (fd() where /proc is missing).
  int view_fd() const { return view_fd_; }
  uint64_t size() const { return mapped_len_; }
  uint64_t OffsetOf(const uint8_t* data) const { return static_cast<uint64_t>(data - base_); }

 private:
  const uint32_t page_size_;
  const uint64_t slots_;
  const uint32_t system_page_;
  int fd_ = -1;
  int view_fd_ = -1;  // read-only (or fd_ where /proc is missing)
  uint8_t* base_ = nullptr;
  size_t mapped_len_ = 0;

  std::mutex mu_;
  std::condition_variable freed_cv_;
  std::vector<uint32_t> free_;  // guarded by mu_; slot numbers, LIFO
  uint64_t next_unused_ = 0;    // guarded by mu_; slots never handed out start here
};

}  // namespace zfile

#endif  // ZFILE_CACHE_PAGE_ARENA_H_
