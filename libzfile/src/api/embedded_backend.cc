// The C API's backend when the engine runs in this process.
#include <memory>
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

  Status Close() override {
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

 private:
  std::unique_ptr<Volume> volume_;
};

}  // namespace

Result<std::unique_ptr<VolBackend>> OpenEmbeddedVolume(std::string_view uri,
                                                       std::string_view options) {
  ZF_ASSIGN_OR_RETURN(MountOptions opts, MountOptions::Parse(options));
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(std::string(uri)));
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<Volume> volume, Volume::Mount(std::move(dev), opts));
  return std::unique_ptr<VolBackend>(std::make_unique<EmbeddedVolume>(std::move(volume)));
}

}  // namespace zfile
