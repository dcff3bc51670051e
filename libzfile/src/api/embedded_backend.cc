// The C API's backend when the engine runs in this process.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "api/backend.h"
#include "device/zoned_device.h"
#include "engine/mount_options.h"
#include "engine/volume.h"

namespace zfile {
namespace {

class EmbeddedView final : public ViewBackend {
 public:
  explicit EmbeddedView(std::unique_ptr<FileView> view) : view_(std::move(view)) {}
  const void* data() const override { return view_->data(); }
  size_t size() const override { return view_->size(); }

 private:
  std::unique_ptr<FileView> view_;
};

class EmbeddedFile final : public FileBackend {
 public:
  explicit EmbeddedFile(std::unique_ptr<FileHandle> handle) : handle_(std::move(handle)) {}

  Result<size_t> PRead(void* buf, size_t len, uint64_t offset, int rwf) override {
    return handle_->PRead(buf, len, offset, rwf);
  }
  Result<size_t> PWrite(const void* buf, size_t len, uint64_t offset, int rwf) override {
    return handle_->PWrite(buf, len, offset, rwf);
  }
  Result<size_t> Append(const void* buf, size_t len, uint64_t* landed) override {
    return handle_->Append(buf, len, landed);
  }
  Status Fsync() override { return handle_->Fsync(); }
  Status Truncate(uint64_t size) override { return handle_->Truncate(size); }
  Status Stat(FileStat* st) override {
    handle_->Stat(st);
    return Status();
  }
  Result<std::unique_ptr<ViewBackend>> Map(uint64_t offset, size_t len) override {
    ZF_ASSIGN_OR_RETURN(std::unique_ptr<FileView> view, handle_->Map(offset, len));
    return std::unique_ptr<ViewBackend>(std::make_unique<EmbeddedView>(std::move(view)));
  }

 private:
  std::unique_ptr<FileHandle> handle_;
};

class EmbeddedVolume final : public VolBackend {
 public:
  explicit EmbeddedVolume(std::unique_ptr<Volume> volume) : volume_(std::move(volume)) {}

  ~EmbeddedVolume() override {
    // Close() refused while buffers were allocated; a volume destroyed
    // without a Close() (a failed open) has none.
    for (const auto& [addr, size] : bufs_) ::munmap(reinterpret_cast<void*>(addr), size);
  }

  Status Close() override {
    {
      std::lock_guard<std::mutex> lock(bufs_mu_);
      if (!bufs_.empty()) {
        return Status(EBUSY, "the volume has " + std::to_string(bufs_.size()) +
                                 " registered buffer(s) still allocated; free them "
                                 "(zfile_buf_free) before closing the volume");
      }
    }
    Status s = volume_->Unmount();
    // Refused (files open, views mapped): nothing happened. EBUSY means
    // exactly that, so a failure after the unmount went ahead never says
    // EBUSY.
    if (!volume_->unmounted()) return s;
    if (s.err() == EBUSY) return Status(EIO, "unmounted, but: " + s.message());
    return s;
  }
  Status Sync() override { return volume_->Sync(); }
  Result<VolumeInfo> Info() override { return volume_->Info(); }
  Result<std::string> StatsJson() override { return volume_->StatsJson(); }
  Result<std::unique_ptr<FileBackend>> Open(std::string_view path, int flags) override {
    ZF_ASSIGN_OR_RETURN(std::unique_ptr<FileHandle> handle, volume_->Open(path, flags));
    return std::unique_ptr<FileBackend>(std::make_unique<EmbeddedFile>(std::move(handle)));
  }
  Status Stat(std::string_view path, FileStat* st) override { return volume_->StatPath(path, st); }
  Status Chmod(std::string_view path, uint32_t mode) override {
    ZF_ASSIGN_OR_RETURN(FileInode * inode, volume_->Lookup(path));
    return inode->Chmod(mode);
  }
  Status Chown(std::string_view path, uint32_t uid, uint32_t gid) override {
    ZF_ASSIGN_OR_RETURN(FileInode * inode, volume_->Lookup(path));
    return inode->Chown(uid, gid);
  }
  Volume* engine() override { return volume_.get(); }

  // Anonymous pages: page-aligned, as O_DIRECT wants, and given back to the
  // kernel whole on free.
  Result<void*> BufAlloc(size_t size) override {
    ZF_ASSIGN_OR_RETURN(const size_t rounded, BufAllocSize(size));
    void* addr =
        ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) return ErrnoStatus(errno, "allocating a buffer");
    std::lock_guard<std::mutex> lock(bufs_mu_);
    bufs_.emplace(reinterpret_cast<uintptr_t>(addr), rounded);
    return addr;
  }

  Status BufFree(void* buf) override {
    std::lock_guard<std::mutex> lock(bufs_mu_);
    auto it = bufs_.find(reinterpret_cast<uintptr_t>(buf));
    if (it == bufs_.end()) {
      return Status(EINVAL,
                    "zfile_buf_free: this pointer is not a buffer zfile_buf_alloc returned for "
                    "this volume (or it was freed already)");
    }
    ::munmap(buf, it->second);
    bufs_.erase(it);
    return Status::Ok();
  }

 private:
  std::unique_ptr<Volume> volume_;
  std::mutex bufs_mu_;
  std::map<uintptr_t, size_t> bufs_;  // guarded by bufs_mu_: address -> mapped size
};

}  // namespace

Result<size_t> BufAllocSize(size_t size) {
  if (size == 0 || size > kMaxBufSize) {
    return Status(EINVAL, "zfile_buf_alloc: a buffer of " + std::to_string(size) +
                              " bytes (sizes are 1 byte to " + std::to_string(kMaxBufSize) + ")");
  }
  const long sys_page = ::sysconf(_SC_PAGESIZE);
  const size_t page = std::max<size_t>(sys_page > 0 ? static_cast<size_t>(sys_page) : 4096, 4096);
  return (size + page - 1) / page * page;
}

Result<std::unique_ptr<VolBackend>> OpenEmbeddedVolume(std::string_view uri,
                                                       std::string_view options) {
  ZF_ASSIGN_OR_RETURN(MountOptions opts, MountOptions::Parse(options));
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(std::string(uri)));
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<Volume> volume, Volume::Mount(std::move(dev), opts));
  return std::unique_ptr<VolBackend>(std::make_unique<EmbeddedVolume>(std::move(volume)));
}

}  // namespace zfile
