// Volume: a mounted zonefs volume in this process (embedded mode).
//
// Mount reads and checks the superblock in zone 0, rebuilds every file from
// a zone report (there is no other metadata), closes zones left open, and
// applies zonefs's rules for read-only and offline zones. The volume owns
// the device, the page cache and the zone-resource accounting.
#ifndef ZFILE_ENGINE_VOLUME_H_
#define ZFILE_ENGINE_VOLUME_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "cache/page_cache.h"
#include "device/zoned_device.h"
#include "engine/file_inode.h"
#include "engine/mount_options.h"
#include "engine/volume_stats.h"
#include "engine/zone_resources.h"
#include "format/superblock.h"

namespace zfile {

struct VolumeInfo {
  std::string device_uri;
  uint32_t nr_cnv_files = 0;
  uint32_t nr_seq_files = 0;
  uint32_t block_size = 0;
  uint64_t zone_size = 0;
  uint64_t zone_capacity = 0;
  uint32_t max_open = 0, max_active = 0;  // device limits, 0 = none
  uint32_t open_zones = 0, active_zones = 0;
  bool read_only = false;
  std::string label;
  std::string uuid;
  std::string options;
};

class FileHandle;

// Told of every change to a file's data: a write (range written), a zone
// reset/finish, or an I/O error's resync that took the file offline or
// moved its size to the write pointer (`len` 0: the whole file). Called
// after the change is made, on the thread that made it, whatever path it
// came through (embedded API, zfiled sessions, FUSE), at times with the
// file's write_mu_ held (the resync): it must be quick, must not do I/O on
// the volume or call into the file, and may take only locks under which
// nothing calls the engine. zfiled's FUSE front end uses it to drop what
// the kernel caches.
class FileChangeObserver {
 public:
  virtual ~FileChangeObserver() = default;
  virtual void FileChanged(FileInode* inode, uint64_t offset, uint64_t len) = 0;
};

class Volume {
 public:
  static Result<std::unique_ptr<Volume>> Mount(std::unique_ptr<ZonedDevice> dev,
                                               const MountOptions& options);
  // Unmounts (see Unmount) if not done yet.
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // Writes back dirty data, flushes the device, closes idle open zones.
  // EBUSY (and nothing done) while files are open or views mapped, as
  // umount does.
  Status Unmount();
  uint32_t open_files() const { return open_files_.load(); }
  bool unmounted() const;

  // "cnv/0", "seq/12" (a leading '/' is accepted). ENOENT otherwise.
  Result<FileInode*> Lookup(std::string_view path) const;
  // Opens a file: O_RDONLY/O_WRONLY/O_RDWR, O_DIRECT, O_SYNC, O_DSYNC,
  // O_APPEND, O_TRUNC.
  Result<std::unique_ptr<FileHandle>> Open(std::string_view path, int flags);
  // Files or directories ("", "cnv", "seq").
  Status StatPath(std::string_view path, FileStat* st) const;
  // Names in a directory: "" lists "cnv" and/or "seq".
  Result<std::vector<std::string>> List(std::string_view dir) const;

  Status Sync();
  VolumeInfo Info() const;
  // Counters as a JSON object.
  std::string StatsJson() const;

  bool read_only() const { return read_only_.load(); }
  // errors=remount-ro: refuse writes from now on.
  void SetReadOnly(const std::string& reason);

  // At most one observer. Contract: set it before any I/O, and clear it
  // (nullptr) only once no I/O runs any more (an I/O error's resync tells
  // it too, reads included): clearing does not wait for calls in flight.
  void SetChangeObserver(FileChangeObserver* observer) { observer_.store(observer); }
  void NotifyChanged(FileInode* inode, uint64_t offset, uint64_t len) {
    if (FileChangeObserver* o = observer_.load(std::memory_order_acquire)) {
      o->FileChanged(inode, offset, len);
    }
  }

  ZonedDevice* device() { return dev_.get(); }
  const MountOptions& options() const { return options_; }
  ZoneResources& resources() { return *resources_; }
  VolumeStats& stats() { return stats_; }
  PageCache& cache() { return *cache_; }
  const Superblock& superblock() const { return sb_; }

 private:
  Volume(std::unique_ptr<ZonedDevice> dev, const MountOptions& options, Superblock sb);
  Status Build();

  std::unique_ptr<ZonedDevice> dev_;
  const MountOptions options_;
  const Superblock sb_;
  VolumeStats stats_;
  std::unique_ptr<PageCache> cache_;
  std::unique_ptr<ZoneResources> resources_;
  std::vector<std::unique_ptr<FileInode>> cnv_;
  std::vector<std::unique_ptr<FileInode>> seq_;
  std::atomic<bool> read_only_{false};
  std::atomic<uint32_t> open_files_{0};
  std::atomic<FileChangeObserver*> observer_{nullptr};
  friend class FileHandle;
  bool unmounted_ = false;
  mutable std::mutex unmount_mu_;
};

// An open file. Closing (destroying) it ends explicit-open writing.
class FileHandle {
 public:
  FileHandle(Volume* vol, FileInode* inode, int flags);
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  // `rwf`: RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND, RWF_HIPRI.
  // `progress`: FileInode::Read's.
  Result<size_t> PRead(void* buf, size_t len, uint64_t offset, int rwf,
                       const ReadProgress* progress = nullptr);
  Result<size_t> PWrite(const void* buf, size_t len, uint64_t offset, int rwf);
  // Writes back pages of a shared mapping (FUSE write-back) at `offset`,
  // whatever this handle's O_APPEND, O_DIRECT and O_SYNC say: the kernel
  // picks any writable handle of the file for it, so its flags are not the
  // writer's. EINVAL on a sequential file, whose pages cannot be rewritten
  // in place.
  Result<size_t> WriteBack(const void* buf, size_t len, uint64_t offset);
  // Sequential files: writes at the write pointer; `*offset` gets where.
  Result<size_t> Append(const void* buf, size_t len, uint64_t* offset);
  Status Fsync();
  Status Truncate(uint64_t size);
  // A mapped view (needs the file open for reading, as mmap does).
  Result<std::unique_ptr<FileView>> Map(uint64_t offset, size_t len);
  void Stat(FileStat* st) const { inode_->Stat(st); }
  FileInode* inode() const { return inode_; }
  int flags() const { return flags_; }

 private:
  Result<IoFlags> FlagsFor(int rwf, bool write) const;

  Volume* const vol_;
  FileInode* const inode_;
  const int flags_;
  const bool writable_;
};

}  // namespace zfile

#endif  // ZFILE_ENGINE_VOLUME_H_
