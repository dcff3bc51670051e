#include "protocol/doorbell.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace zfile::protocol {

Result<DoorbellMap> DoorbellMap::Map(int fd) {
  void* addr = ::mmap(nullptr, kDoorbellRegionSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return ErrnoStatus(errno, "mapping the doorbell region");
  return DoorbellMap(static_cast<uint8_t*>(addr));
}

DoorbellMap::~DoorbellMap() {
  if (base_ != nullptr) ::munmap(base_, kDoorbellRegionSize);
}

DoorbellMap::DoorbellMap(DoorbellMap&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)) {}

DoorbellMap& DoorbellMap::operator=(DoorbellMap&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) ::munmap(base_, kDoorbellRegionSize);
    base_ = std::exchange(other.base_, nullptr);
  }
  return *this;
}

bool FutexWait(uint32_t* word, uint32_t expected, uint32_t timeout_us) {
  timespec ts{};
  ts.tv_sec = timeout_us / 1000000;
  ts.tv_nsec = static_cast<long>(timeout_us % 1000000) * 1000;
  // Not FUTEX_PRIVATE_FLAG: the other side is another process.
  const long rc = ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
  return !(rc != 0 && errno == ETIMEDOUT);
}

void FutexWake(uint32_t* word) { ::syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0); }

}  // namespace zfile::protocol
