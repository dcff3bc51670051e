#include "engine/volume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdio>
#include <sstream>

#include "base/log.h"
#include "format/layout.h"

namespace zfile {
namespace {

// zonefs numbers the root directory after the last zone, then cnv/, seq/.
constexpr uint64_t kRootInoOffset = 0;
constexpr uint64_t kCnvDirInoOffset = 1;
constexpr uint64_t kSeqDirInoOffset = 2;

std::string_view StripSlashes(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return path;
}

}  // namespace

Volume::Volume(std::unique_ptr<ZonedDevice> dev, const MountOptions& options, Superblock sb)
    : dev_(std::move(dev)), options_(options), sb_(std::move(sb)) {}

Result<std::unique_ptr<Volume>> Volume::Mount(std::unique_ptr<ZonedDevice> dev,
                                              const MountOptions& options) {
  const std::string uri = dev->info().uri;
  auto sb = ReadSuperblock(dev.get());
  if (!sb.ok()) return sb.status().WithContext("cannot mount " + uri);
  std::unique_ptr<Volume> vol(new Volume(std::move(dev), options, std::move(sb).value()));
  Status s = vol->Build();
  if (!s.ok()) {
    vol->unmounted_ = true;  // nothing to write back
    return s.WithContext("cannot mount " + uri);
  }
  return vol;
}

Status Volume::Build() {
  const DeviceInfo& di = dev_->info();
  CacheOptions copts = options_.cache;
  if (copts.page_size < di.block_size) copts.page_size = di.block_size;
  cache_ = std::make_unique<PageCache>(copts);
  resources_ = std::make_unique<ZoneResources>(dev_.get(), options_.explicit_open, &stats_);

  std::vector<ZoneInfo> zones;
  ZF_RETURN_IF_ERROR(dev_->ReportZones(0, 0, &zones));
  // Start from a known resource state: zones left open by an earlier user
  // are closed (an empty one becomes empty again).
  for (const ZoneInfo& z : zones) {
    if (z.sequential() && z.open() && z.start != 0) {
      ZF_RETURN_IF_ERROR(dev_->ManageZones(ZoneOp::kClose, di.ZoneOf(z.start), 1));
    }
  }
  ZF_RETURN_IF_ERROR(dev_->ReportZones(0, 0, &zones));
  ZF_ASSIGN_OR_RETURN(VolumeLayout layout, BuildLayout(zones, di.zone_size, sb_.aggr_cnv));

  auto add = [&](FileKind kind, const std::vector<ZoneFile>& files,
                 std::vector<std::unique_ptr<FileInode>>* out) {
    for (uint32_t i = 0; i < files.size(); ++i) {
      auto inode = std::make_unique<FileInode>(this, kind, i, files[i]);
      const ZoneInfo& z = zones[files[i].first_zone];
      inode->InitState(kind == FileKind::kSequential ? z.wp - z.start : 0, z.cond);
      inode->AttachCache(cache_->Register(inode.get(), di.block_size, inode->path()));
      if (kind == FileKind::kSequential) {
        const uint64_t size = inode->size();
        const bool active = inode->health() == FileHealth::kGood && size > 0 &&
                            size < inode->capacity() && z.cond != ZoneCondition::kFull;
        resources_->Add(inode->slot(), active);
      }
      out->push_back(std::move(inode));
    }
  };
  add(FileKind::kConventional, layout.cnv, &cnv_);
  add(FileKind::kSequential, layout.seq, &seq_);
  return Status();
}

Volume::~Volume() {
  Status s = Unmount();
  if (!s.ok()) Log().error("unmount of {}: {}", dev_->info().uri, s.ToString());
}

bool Volume::unmounted() const {
  std::lock_guard<std::mutex> lock(unmount_mu_);
  return unmounted_;
}

Status Volume::Unmount() {
  std::lock_guard<std::mutex> lock(unmount_mu_);
  if (unmounted_) return Status();
  if (const uint32_t n = open_files_.load(); n != 0) {
    return Status(EBUSY, dev_->info().uri + ": " + std::to_string(n) +
                             " file(s) still open; close them before unmounting");
  }
  uint32_t views = 0;
  for (const auto& f : cnv_) views += f->views();
  for (const auto& f : seq_) views += f->views();
  if (views != 0) {
    return Status(EBUSY, dev_->info().uri + ": " + std::to_string(views) +
                             " mapped view(s) remain; unmap them before unmounting");
  }
  unmounted_ = true;
  Status first;
  auto keep = [&first](Status s) {
    if (!s.ok() && first.ok()) first = s;
  };
  if (!read_only()) keep(cache_->WriteBackAll());
  keep(dev_->Flush());
  keep(resources_->CloseIdle());
  // Files unregister from the cache before it goes.
  cnv_.clear();
  seq_.clear();
  return first;
}

Result<FileInode*> Volume::Lookup(std::string_view path) const {
  std::string_view p = StripSlashes(path);
  const std::vector<std::unique_ptr<FileInode>>* dir = nullptr;
  if (p.rfind("cnv/", 0) == 0) {
    dir = &cnv_;
  } else if (p.rfind("seq/", 0) == 0) {
    dir = &seq_;
  }
  if (dir != nullptr) {
    std::string_view num = p.substr(4);
    uint64_t n = 0;
    bool digits = !num.empty() && num.size() < 10 && (num == "0" || num.front() != '0');
    for (char c : num) {
      digits = digits && c >= '0' && c <= '9';
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (digits && n < dir->size()) return (*dir)[n].get();
  }
  return Status(ENOENT, "no such file '" + std::string(path) +
                            "' (files are cnv/N and seq/N; this volume has " +
                            std::to_string(cnv_.size()) + " conventional and " +
                            std::to_string(seq_.size()) + " sequential files)");
}

Result<std::unique_ptr<FileHandle>> Volume::Open(std::string_view path, int flags) {
  ZF_ASSIGN_OR_RETURN(FileInode * inode, Lookup(path));
  const int acc = flags & O_ACCMODE;
  if (acc != O_RDONLY && acc != O_WRONLY && acc != O_RDWR) {
    return Status(EINVAL, "bad open mode for " + std::string(path));
  }
  const int known = O_ACCMODE | O_DIRECT | O_SYNC | O_DSYNC | O_APPEND | O_TRUNC | O_CLOEXEC |
                    O_NOATIME | O_LARGEFILE | O_NONBLOCK;
  if ((flags & O_CREAT) != 0) {
    return Status(EPERM, "cannot create files on a zonefs volume: the files are the zones");
  }
  if ((flags & ~known) != 0) {
    return Status(
        EINVAL, "unsupported open flags 0x" +
                    [&] {
                      char b[16];
                      std::snprintf(b, sizeof(b), "%x", flags & ~known);
                      return std::string(b);
                    }() +
                    " for " + std::string(path));
  }
  const bool writable = acc != O_RDONLY;
  if (writable && read_only())
    return Status(EROFS, std::string(path) + ": the volume is read-only");
  if ((flags & O_TRUNC) != 0 && !writable) {
    return Status(EINVAL, std::string(path) + ": O_TRUNC needs write access");
  }
  // Zone resources first: an open that is refused must not have reset the
  // zone (O_TRUNC) on its way.
  if (writable) ZF_RETURN_IF_ERROR(inode->OpenForWrite());
  auto handle = std::make_unique<FileHandle>(this, inode, flags);
  if ((flags & O_TRUNC) != 0) ZF_RETURN_IF_ERROR(inode->Truncate(0));  // the handle closes
  return handle;
}

Status Volume::StatPath(std::string_view path, FileStat* st) const {
  std::string_view p = StripSlashes(path);
  const uint64_t nr_zones = dev_->info().nr_zones;
  if (p.empty() || p == "cnv" || p == "seq") {
    if (p == "cnv" && cnv_.empty())
      return Status(ENOENT, "no cnv/ directory: this volume has no conventional files");
    *st = FileStat{};
    st->ino = nr_zones + (p.empty()    ? kRootInoOffset
                          : p == "cnv" ? kCnvDirInoOffset
                                       : kSeqDirInoOffset);
    st->mode = S_IFDIR | 0555;
    st->block_size = dev_->info().block_size;
    st->size = p.empty() ? (cnv_.empty() ? 1 : 2) : (p == "cnv" ? cnv_.size() : seq_.size());
    return Status();
  }
  ZF_ASSIGN_OR_RETURN(FileInode * inode, Lookup(path));
  inode->Stat(st);
  return Status();
}

Result<std::vector<std::string>> Volume::List(std::string_view dir) const {
  std::string_view p = StripSlashes(dir);
  std::vector<std::string> names;
  if (p.empty()) {
    if (!cnv_.empty()) names.push_back("cnv");
    names.push_back("seq");
    return names;
  }
  const std::vector<std::unique_ptr<FileInode>>* files = nullptr;
  if (p == "cnv" && !cnv_.empty()) files = &cnv_;
  if (p == "seq") files = &seq_;
  if (files == nullptr) return Status(ENOENT, "no such directory '" + std::string(dir) + "'");
  for (size_t i = 0; i < files->size(); ++i) names.push_back(std::to_string(i));
  return names;
}

Status Volume::Sync() {
  Status s = cache_->WriteBackAll();
  if (!s.ok()) return s;
  return dev_->Flush();
}

void Volume::SetReadOnly(const std::string& reason) {
  if (!read_only_.exchange(true)) {
    Log().error("{}: {}; the volume is now read-only (errors=remount-ro)", dev_->info().uri,
                reason);
  }
}

VolumeInfo Volume::Info() const {
  const DeviceInfo& di = dev_->info();
  VolumeInfo v;
  v.device_uri = di.uri;
  v.nr_cnv_files = static_cast<uint32_t>(cnv_.size());
  v.nr_seq_files = static_cast<uint32_t>(seq_.size());
  v.block_size = di.block_size;
  v.zone_size = di.zone_size;
  v.zone_capacity = di.zone_capacity;
  v.max_open = di.max_open;
  v.max_active = di.max_active;
  v.open_zones = resources_->open_zones();
  v.active_zones = resources_->active_zones();
  v.read_only = read_only();
  v.label = sb_.label;
  v.uuid = sb_.UuidString();
  v.options = options_.ToString();
  return v;
}

std::string Volume::StatsJson() const {
  const CacheStats cs = cache_->stats();
  std::ostringstream o;
  auto field = [&o](const char* name, uint64_t v, bool last = false) {
    o << "\"" << name << "\":" << v << (last ? "" : ",");
  };
  o << "{";
  field("buffered_read_bytes", stats_.buffered_read_bytes);
  field("buffered_read_ops", stats_.buffered_read_ops);
  field("direct_read_bytes", stats_.direct_read_bytes);
  field("direct_read_ops", stats_.direct_read_ops);
  field("buffered_write_bytes", stats_.buffered_write_bytes);
  field("buffered_write_ops", stats_.buffered_write_ops);
  field("direct_write_bytes", stats_.direct_write_bytes);
  field("direct_write_ops", stats_.direct_write_ops);
  field("writethrough_writes", stats_.writethrough_writes);
  field("dio_fallbacks", stats_.dio_fallbacks);
  field("cache_hits", cs.hits);
  field("cache_misses", cs.misses);
  field("cache_readahead_pages", cs.readahead_pages);
  field("cache_evictions", cs.evictions);
  field("cache_writeback_bytes", cs.writeback_bytes);
  field("cache_writethrough_bytes", cs.writethrough_bytes);
  field("cache_cached_bytes", cs.cached_bytes);
  field("cache_dirty_bytes", cs.dirty_bytes);
  field("zone_resets", stats_.zone_resets);
  field("zone_finishes", stats_.zone_finishes);
  field("zone_opens", stats_.zone_opens);
  field("zone_closes", stats_.zone_closes);
  field("errors", stats_.errors);
  field("device_read_bytes", stats_.device_read_bytes);
  field("device_write_bytes", stats_.device_write_bytes);
  field("open_zones", resources_->open_zones());
  field("active_zones", resources_->active_zones());
  o << "\"read_only\":" << (read_only() ? "true" : "false") << "}";
  return o.str();
}

FileHandle::FileHandle(Volume* vol, FileInode* inode, int flags)
    : vol_(vol), inode_(inode), flags_(flags), writable_((flags & O_ACCMODE) != O_RDONLY) {
  vol_->open_files_++;
}

FileHandle::~FileHandle() {
  if (writable_) inode_->CloseForWrite();
  vol_->open_files_--;
}

Result<IoFlags> FileHandle::FlagsFor(int rwf, bool write) const {
  const int known = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND;
  if ((rwf & ~known) != 0)
    return Status(EOPNOTSUPP, "unknown RWF_ flags " + std::to_string(rwf & ~known));
  IoFlags f;
  f.direct = (flags_ & O_DIRECT) != 0;
  f.sync = (flags_ & (O_SYNC | O_DSYNC)) != 0 || (rwf & (RWF_SYNC | RWF_DSYNC)) != 0;
  f.append = write && ((flags_ & O_APPEND) != 0 || (rwf & RWF_APPEND) != 0);
  f.nowait = (rwf & RWF_NOWAIT) != 0;
  return f;
}

Result<size_t> FileHandle::PRead(void* buf, size_t len, uint64_t offset, int rwf,
                                 const ReadProgress* progress) {
  if ((flags_ & O_ACCMODE) == O_WRONLY)
    return Status(EBADF, inode_->path() + " is not open for reading");
  ZF_ASSIGN_OR_RETURN(IoFlags f, FlagsFor(rwf, false));
  return inode_->Read(buf, len, offset, f, progress);
}

Result<size_t> FileHandle::PWrite(const void* buf, size_t len, uint64_t offset, int rwf) {
  if (!writable_) return Status(EBADF, inode_->path() + " is not open for writing");
  ZF_ASSIGN_OR_RETURN(IoFlags f, FlagsFor(rwf, true));
  return inode_->Write(buf, len, offset, f, nullptr);
}

Result<size_t> FileHandle::WriteBack(const void* buf, size_t len, uint64_t offset) {
  if (!writable_) return Status(EBADF, inode_->path() + " is not open for writing");
  if (inode_->sequential()) {
    return Status(EINVAL, inode_->path() +
                              ": a mapping's page cannot be written back to a sequential "
                              "file (only appends at the write pointer are)");
  }
  return inode_->Write(buf, len, offset, IoFlags{}, nullptr);
}

Result<size_t> FileHandle::Append(const void* buf, size_t len, uint64_t* offset) {
  if (!writable_) return Status(EBADF, inode_->path() + " is not open for writing");
  if (!inode_->sequential()) {
    return Status(EINVAL, inode_->path() + ": append is for sequential files");
  }
  ZF_ASSIGN_OR_RETURN(IoFlags f, FlagsFor(0, true));
  f.append = true;
  return inode_->Write(buf, len, 0, f, offset);
}

Status FileHandle::Fsync() { return inode_->Fsync(); }

Result<std::unique_ptr<FileView>> FileHandle::Map(uint64_t offset, size_t len) {
  if ((flags_ & O_ACCMODE) == O_WRONLY) {
    return Status(EACCES, inode_->path() + " is not open for reading (a view reads the file)");
  }
  return inode_->Map(offset, len);
}

Status FileHandle::Truncate(uint64_t size) {
  if (!writable_) return Status(EBADF, inode_->path() + " is not open for writing");
  return inode_->Truncate(size);
}

}  // namespace zfile
