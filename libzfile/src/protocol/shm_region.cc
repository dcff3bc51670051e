#include "protocol/shm_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "protocol/messages.h"

namespace zfile::protocol {

Result<UniqueFd> CreateShmRegion(uint64_t size) {
  if (size < kMinShmSize || size > kMaxShmSize || size % kShmAlignment != 0) {
    return Status(EINVAL, "shared-memory size " + std::to_string(size) + " is not a multiple of " +
                              std::to_string(kShmAlignment) + " from " +
                              std::to_string(kMinShmSize) + " to " + std::to_string(kMaxShmSize));
  }
  UniqueFd fd(::memfd_create("zfile-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return ErrnoStatus(errno, "sizing the shared-memory region");
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "sealing the shared-memory region");
  }
  return fd;
}

Status CheckShmRegion(int fd, uint64_t size, ShmIdentity* identity) {
  auto bad = [](std::string why) {
    return Status(EPROTO, "the shared-memory descriptor " + std::move(why));
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return bad("cannot be examined: " + ErrnoStatus(errno, "fstat").message());
  }
  if (!S_ISREG(st.st_mode)) return bad("is not a memfd (not even a regular file)");
  const int mode = ::fcntl(fd, F_GETFL);
  if (mode < 0 || (mode & O_ACCMODE) != O_RDWR) return bad("is not open for reading and writing");
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return bad("is not a memfd that supports seals (a regular file?)");
  if ((seals & F_SEAL_SHRINK) == 0) {
    return bad(
        "is not sealed against shrinking (F_SEAL_SHRINK): a client could truncate it "
        "under the daemon's mapping");
  }
  if ((seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0) {
    return bad("is sealed against writes, so reads could not be delivered into it");
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < size) {
    return bad("is " + std::to_string(st.st_size) + " bytes long, less than the " +
               std::to_string(size) + " announced");
  }
  if (identity != nullptr) *identity = ShmIdentity{st.st_dev, st.st_ino};
  return Status::Ok();
}

Result<ShmMapping> ShmMapping::Map(int fd, size_t size) {
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) return ErrnoStatus(errno, "mapping a shared-memory buffer");
  ShmMapping m;
  m.addr_ = static_cast<uint8_t*>(addr);
  m.size_ = size;
  return m;
}

void ShmMapping::Reset() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

}  // namespace zfile::protocol
