// The per-connection shared-memory region that carries bulk data.
//
// The client creates it (a memfd), passes it at HELLO, and both sides map
// it; PREAD/PWRITE/APPEND name ranges of it (messages.h). The daemon maps
// memory that a possibly hostile process controls, so before mapping it
// checks that the descriptor is a memfd whose size cannot shrink: a client
// that truncated the file under a mapping would otherwise make the daemon
// die of SIGBUS on its next access.
#ifndef ZFILE_PROTOCOL_SHM_REGION_H_
#define ZFILE_PROTOCOL_SHM_REGION_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "base/status.h"
#include "protocol/unique_fd.h"

namespace zfile::protocol {

// A new region of `size` bytes (a multiple of kShmAlignment from kMinShmSize
// to kMaxShmSize, EINVAL otherwise): a close-on-exec memfd, sealed against
// shrinking and growing, and against further seals.
Result<UniqueFd> CreateShmRegion(uint64_t size);

// Which file a memfd is (st_dev, st_ino): every descriptor of one memfd,
// dup'ed or reopened through /proc, names the same, so the daemon can tell
// a memfd it already maps.
struct ShmIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const ShmIdentity&) const = default;
};

// OK when `fd` can serve as a region of `size` bytes: a memfd opened for
// reading and writing, at least `size` bytes long, sealed against
// shrinking and not against writes. EPROTO, saying which, otherwise.
// When OK and `identity` is not null, it is set to the memfd's (from the
// same fstat that the checks used).
Status CheckShmRegion(int fd, uint64_t size, ShmIdentity* identity = nullptr);

// A shared read-write mapping of a memfd's first `size` bytes, unmapped
// when destroyed: a session's bulk region, its doorbell and registered
// buffers, on both sides.
class ShmMapping {
 public:
  ShmMapping() = default;
  // Maps `size` bytes of `fd`, which the caller made (CreateShmRegion) or
  // checked (CheckShmRegion): a shorter memfd would fault past its end.
  static Result<ShmMapping> Map(int fd, size_t size);
  ~ShmMapping() { Reset(); }
  ShmMapping(ShmMapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  ShmMapping& operator=(ShmMapping&& other) noexcept {
    if (this != &other) {
      Reset();
      addr_ = std::exchange(other.addr_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;

  uint8_t* data() const { return addr_; }
  size_t size() const { return size_; }
  bool mapped() const { return addr_ != nullptr; }
  void Reset();

 private:
  uint8_t* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_SHM_REGION_H_
