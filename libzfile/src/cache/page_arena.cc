#include "cache/page_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace zfile {

ArenaMapping::ArenaMapping(ArenaMapping&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)), len_(std::exchange(other.len_, 0)) {}

ArenaMapping& ArenaMapping::operator=(ArenaMapping&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) munmap(base_, len_);
    base_ = std::exchange(other.base_, nullptr);
    len_ = std::exchange(other.len_, 0);
  }
  return *this;
}

ArenaMapping::~ArenaMapping() {
  if (base_ != nullptr) munmap(base_, len_);
}

PageArena::PageArena(uint32_t page_size, uint64_t slots)
    : page_size_(page_size),
      slots_(slots),
      system_page_(static_cast<uint32_t>(sysconf(_SC_PAGESIZE))) {
  const uint64_t bytes = uint64_t{page_size} * slots;
  mapped_len_ = static_cast<size_t>(bytes);
  // The memfd's inode is created mode 0777, and anyone who is handed any
  // descriptor of it (zfiled's clients are) can reopen it through
  // /proc/PID/fd with any access the mode allows: O_RDWR, then write into
  // the cache or shrink it under our mapping (SIGBUS). 0600 limits reopening
  // to our own uid (and root); the size seals make the length fixed for
  // everyone, since the arena never resizes after this constructor.
  fd_ = memfd_create("zfile-cache", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd_ >= 0 && fchmod(fd_, 0600) != 0) {
    // Without the narrower mode the fd must not exist at all: fall back to
    // private memory below.
    close(fd_);
    fd_ = -1;
  }
  if (fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(bytes)) == 0 &&
      fcntl(fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0) {
    void* p = mmap(nullptr, mapped_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p != MAP_FAILED) {
      base_ = static_cast<uint8_t*>(p);
      // A forked child must not share (and scribble on) the parent's cache.
      madvise(base_, mapped_len_, MADV_DONTFORK);
      // Views map through a read-only descriptor of the same file, so that
      // nobody can mprotect() one writable.
      const std::string self = "/proc/self/fd/" + std::to_string(fd_);
      view_fd_ = open(self.c_str(), O_RDONLY | O_CLOEXEC);
      if (view_fd_ < 0) view_fd_ = fd_;
      return;
    }
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  void* p = mmap(nullptr, mapped_len_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  // Without even address space every Allocate fails (ENOMEM to callers).
  if (p == MAP_FAILED) {
    mapped_len_ = 0;
    return;
  }
  base_ = static_cast<uint8_t*>(p);
}

PageArena::~PageArena() {
  if (base_ != nullptr) munmap(base_, mapped_len_);
  if (view_fd_ >= 0 && view_fd_ != fd_) close(view_fd_);
  if (fd_ >= 0) close(fd_);
}

uint8_t* PageArena::Allocate() {
  if (base_ == nullptr) return nullptr;
  uint64_t slot;
  {
    std::unique_lock lk(mu_);
    // The cache gives a page's bytes back just before it frees the page, so
    // a reservation can briefly find every slot still taken: that slot is
    // on its way back.
    freed_cv_.wait(lk, [this] { return !free_.empty() || next_unused_ < slots_; });
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = next_unused_++;
    }
  }
  uint8_t* data = base_ + slot * page_size_;
  std::memset(data, 0, page_size_);
  return data;
}

void PageArena::Free(uint8_t* data) {
  assert(data >= base_ && data < base_ + mapped_len_);
  {
    std::lock_guard lk(mu_);
    free_.push_back(static_cast<uint32_t>((data - base_) / page_size_));
  }
  freed_cv_.notify_one();
}

Result<ArenaMapping> PageArena::MapPages(const std::vector<const uint8_t*>& pages) const {
  if (!can_map_pages()) {
    return Status(EINVAL,
                  "a view across cache pages needs cache pages that are whole multiples "
                  "of the " +
                      std::to_string(system_page_) +
                      "-byte system page (mount option cache_page_size)");
  }
  const size_t len = pages.size() * size_t{page_size_};
  // Reserve the whole stretch first so the pieces land side by side.
  void* base = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return ErrnoStatus(errno, "mapping a view of the page cache");
  ArenaMapping mapping(base, len);
  auto* out = static_cast<uint8_t*>(base);
  for (size_t i = 0; i < pages.size();) {
    size_t j = i + 1;
    while (j < pages.size() && pages[j] == pages[j - 1] + page_size_) ++j;
    void* p = mmap(out + i * page_size_, (j - i) * size_t{page_size_}, PROT_READ,
                   MAP_SHARED | MAP_FIXED, view_fd_, static_cast<off_t>(OffsetOf(pages[i])));
    if (p == MAP_FAILED) return ErrnoStatus(errno, "mapping a view of the page cache");
    i = j;
  }
  return mapping;
}

}  // namespace zfile
