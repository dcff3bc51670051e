// What the C API (zfile.h) runs on: a volume, its open files and views,
// either in this process (EmbeddedVolume: the engine owns the device) or as
// a client of zfiled (the daemon's engine owns it). zfile_c.cc turns these
// into the C calls; each implementation keeps the engine's semantics and
// errors, so the same test suites run against both.
//
// Contracts shared by every implementation:
//  - All calls are thread-safe.
//  - Close() of a volume refuses with EBUSY, changing nothing, while files
//    are open or views mapped; after any other result the volume is gone.
//  - A view may outlive the file it was made through, not its volume.
//  - Registered buffers (BufAlloc) are page-aligned, zero-filled memory of
//    at least the size asked, kMaxBufSize at most, that the volume's files
//    take like any other memory; Close() refuses with EBUSY while any is
//    allocated. BufFree takes only a pointer BufAlloc returned and has not
//    taken back (EINVAL otherwise, changing nothing).
#ifndef ZFILE_API_BACKEND_H_
#define ZFILE_API_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "engine/file_inode.h"  // FileStat
#include "engine/volume.h"      // VolumeInfo

namespace zfile {

inline constexpr size_t kMaxBufSize = size_t{1} << 30;

// The size a registered buffer of `size` bytes gets: rounded up to the page
// size (and to 4 KiB, the protocol's unit). EINVAL, in words, for 0 or more
// than kMaxBufSize.
Result<size_t> BufAllocSize(size_t size);

class ViewBackend {
 public:
  virtual ~ViewBackend() = default;  // unmaps
  virtual const void* data() const = 0;
  virtual size_t size() const = 0;
};

class FileBackend {
 public:
  virtual ~FileBackend() = default;  // closes
  // `rwf`: RWF_* flags as pwritev2 takes them.
  virtual Result<size_t> PRead(void* buf, size_t len, uint64_t offset, int rwf) = 0;
  virtual Result<size_t> PWrite(const void* buf, size_t len, uint64_t offset, int rwf) = 0;
  virtual Result<size_t> Append(const void* buf, size_t len, uint64_t* landed) = 0;
  virtual Status Fsync() = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Status Stat(FileStat* st) = 0;
  virtual Result<std::unique_ptr<ViewBackend>> Map(uint64_t offset, size_t len) = 0;
};

class VolBackend {
 public:
  virtual ~VolBackend() = default;
  // See the contract above; the object must be destroyed after a Close()
  // that did not return EBUSY, and only then.
  virtual Status Close() = 0;
  virtual Status Sync() = 0;
  virtual Result<VolumeInfo> Info() = 0;
  virtual Result<std::string> StatsJson() = 0;
  virtual Result<std::unique_ptr<FileBackend>> Open(std::string_view path, int flags) = 0;
  virtual Status Stat(std::string_view path, FileStat* st) = 0;
  virtual Status Chmod(std::string_view path, uint32_t mode) = 0;
  virtual Status Chown(std::string_view path, uint32_t uid, uint32_t gid) = 0;
  // See "Registered buffers" above.
  virtual Result<void*> BufAlloc(size_t size) = 0;
  virtual Status BufFree(void* buf) = 0;
  // The engine behind an embedded volume, for tests; nullptr for a client.
  virtual Volume* engine() { return nullptr; }
};

// The engine in this process: mounts `uri` (a device URI) with `options`.
Result<std::unique_ptr<VolBackend>> OpenEmbeddedVolume(std::string_view uri,
                                                       std::string_view options);

}  // namespace zfile

#endif  // ZFILE_API_BACKEND_H_
