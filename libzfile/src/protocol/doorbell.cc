#include "protocol/doorbell.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace zfile::protocol {

Result<DoorbellMap> DoorbellMap::Map(int fd) {
  Result<ShmMapping> map = ShmMapping::Map(fd, kDoorbellRegionSize);
  if (!map.ok()) return ErrnoStatus(map.status().err(), "mapping the doorbell region");
  return DoorbellMap(std::move(map).value());
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
