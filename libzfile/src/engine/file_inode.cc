#include "engine/file_inode.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "device/io_waiter.h"
#include "engine/volume.h"

namespace zfile {
namespace {

constexpr size_t kDirectAlign = 4096;
// A fallen-back direct write copies its source (which may be a view of the
// very pages it writes) this much at a time.
constexpr size_t kFallbackChunk = 4u << 20;

// The pieces a direct read that is told of its progress is read in
// (ZonedDevice::ReadInPieces, all in flight at once): big enough that a
// real device still gets large requests, small enough that a 1 MiB read is
// told of several times.
constexpr size_t kToldReadPiece = 128 * 1024;

bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kDirectAlign == 0; }

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using AlignedPtr = std::unique_ptr<uint8_t, FreeDeleter>;

Result<AlignedPtr> AllocAligned(size_t len) {
  void* p =
      std::aligned_alloc(kDirectAlign, (len + kDirectAlign - 1) / kDirectAlign * kDirectAlign);
  if (p == nullptr)
    return Status(ENOMEM, "out of memory for a " + std::to_string(len) + "-byte bounce buffer");
  return AlignedPtr(static_cast<uint8_t*>(p));
}

std::string FileName(FileKind kind, uint32_t number) {
  return std::string(kind == FileKind::kSequential ? "seq/" : "cnv/") + std::to_string(number);
}

}  // namespace

FileInode::FileInode(Volume* vol, FileKind kind, uint32_t number, const ZoneFile& layout)
    : vol_(vol),
      kind_(kind),
      path_(FileName(kind, number)),
      first_zone_(layout.first_zone),
      nr_zones_(layout.nr_zones),
      dev_start_(layout.start),
      zone_len_(layout.zone_len),
      capacity_(layout.capacity),
      block_size_(vol->device()->info().block_size),
      io_lock_(path_) {
  slot_.zone = first_zone_;
  const Superblock& sb = vol->superblock();
  mode_ = sb.file_perm();
  uid_ = sb.file_uid();
  gid_ = sb.file_gid();
}

FileInode::~FileInode() = default;

void FileInode::InitState(uint64_t wp_offset, ZoneCondition cond) {
  uint64_t size = sequential() ? std::min(wp_offset, capacity_) : capacity_;
  FileHealth health = FileHealth::kGood;
  if (cond == ZoneCondition::kOffline) {
    // zonefs: an offline zone's file has size 0 and no access at all.
    health = FileHealth::kOffline;
    size = 0;
    mode_ = 0;
  } else if (cond == ZoneCondition::kReadOnly) {
    // A read-only zone's write pointer is not valid (null_blk reports
    // garbage): as zonefs does at mount, the file starts empty.
    health = FileHealth::kReadOnly;
    mode_ = mode_.load() & ~0222u;
    if (sequential()) size = 0;
  } else if (cond == ZoneCondition::kFull && sequential()) {
    size = capacity_;
  }
  health_ = static_cast<uint8_t>(health);
  size_ = size;
  reserved_ = size;
}

FileHealth FileInode::health() const { return static_cast<FileHealth>(health_.load()); }

void FileInode::Stat(FileStat* st) const {
  const DeviceInfo& di = vol_->device()->info();
  st->size = size_.load();
  st->max_size = capacity_;
  st->zone_start = dev_start_;
  st->zone_len = zone_len_;
  st->block_size = di.block_size;
  st->ino = first_zone_;  // zonefs numbers a file's inode by its zone
  st->mode = S_IFREG | mode_.load();
  st->uid = uid_.load();
  st->gid = gid_.load();
  st->kind = kind_;
  st->blocks = (st->size + 511) / 512;
  st->cond = ZoneCondition::kNotWp;
  if (sequential()) {
    auto z = vol_->device()->ReportZone(first_zone_);
    st->cond = z.ok() ? z->cond : ZoneCondition::kOffline;
  }
}

Status FileInode::Chmod(uint32_t mode) {
  if ((mode & ~07777u) != 0)
    return Status(EINVAL, "mode " + std::to_string(mode) + " has bits outside 07777");
  if (vol_->read_only()) return Status(EROFS, path_ + ": the volume is read-only");
  if (health() == FileHealth::kOffline) return Status(EPERM, path_ + ": zone is offline");
  mode_ = mode;
  return Status();
}

Status FileInode::Chown(uint32_t uid, uint32_t gid) {
  if (vol_->read_only()) return Status(EROFS, path_ + ": the volume is read-only");
  if (health() == FileHealth::kOffline) return Status(EPERM, path_ + ": zone is offline");
  if (uid != UINT32_MAX) uid_ = uid;
  if (gid != UINT32_MAX) gid_ = gid;
  return Status();
}

Status FileInode::CheckWritable() const {
  if (vol_->read_only()) return Status(EROFS, path_ + ": the volume is read-only");
  switch (health()) {
    case FileHealth::kOffline:
      return Status(EPERM, path_ + ": zone is offline");
    case FileHealth::kReadOnly:
      return Status(EPERM, path_ + ": zone is read-only");
    default:
      return Status();
  }
}

Result<size_t> FileInode::Read(void* buf, size_t len, uint64_t offset, IoFlags flags,
                               const ReadProgress* progress) {
  if (health() == FileHealth::kOffline) return Status(EPERM, path_ + ": zone is offline");
  ZF_ASSIGN_OR_RETURN(LockHold hold,
                      LockIo(flags.direct ? LockState::kDirect : LockState::kBuffered, flags));
  // As zonefs_file_read_iter: a read at or past the end returns 0 and one
  // across it is clipped there, and only then is a direct read's alignment
  // judged (so an unaligned direct read past the end is not EINVAL).
  const uint64_t size = size_.load();
  if (offset >= size) return size_t{0};
  const size_t asked = len;
  len = static_cast<size_t>(std::min<uint64_t>(len, size - offset));
  if (flags.direct && (offset % block_size_ != 0 || len % block_size_ != 0)) {
    return Status(EINVAL, path_ + ": direct read at " + std::to_string(offset) + " of " +
                              std::to_string(asked) + " bytes" +
                              (len != asked ? " (" + std::to_string(len) + " up to the end)" : "") +
                              " is not aligned to the " + std::to_string(block_size_) +
                              "-byte block size");
  }
  if (len == 0) return size_t{0};
  VolumeStats& stats = vol_->stats();
  if (!flags.direct) {
    if (flags.nowait && !cache_->Cached(offset, len)) {
      return Status(EAGAIN, path_ + ": RWF_NOWAIT: the range is not all in the cache");
    }
    auto r = cache_->Read(offset, buf, len, size, progress);
    if (!r.ok()) {
      std::unique_lock<std::mutex> lock(write_mu_);
      return HandleIoErrorLocked(lock, r.status(), "buffered read", offset, len);
    }
    stats.buffered_read_ops++;
    stats.buffered_read_bytes += *r;
    return r;
  }
  // Direct reads see dirty cached data: write it back first.
  if (!sequential()) ZF_RETURN_IF_ERROR(cache_->WriteBack(offset, len));
  auto r = DeviceRead(offset, buf, len, progress);
  if (!r.ok()) {
    std::unique_lock<std::mutex> lock(write_mu_);
    return HandleIoErrorLocked(lock, r.status(), "direct read", offset, len);
  }
  stats.direct_read_ops++;
  stats.direct_read_bytes += *r;
  return r;
}

Result<size_t> FileInode::Write(const void* buf, size_t len, uint64_t offset, IoFlags flags,
                                uint64_t* landed) {
  ZF_RETURN_IF_ERROR(CheckWritable());
  if (sequential()) {
    uint64_t at = offset;
    auto r = WriteSequential(buf, len, offset, flags, &at);
    if (r.ok() && landed != nullptr) *landed = at;
    if (r.ok() && *r != 0) vol_->NotifyChanged(this, at, *r);
    return r;
  }
  if (flags.append) {
    return Status(EINVAL, path_ + ": O_APPEND is not allowed on conventional files");
  }
  auto r = WriteConventional(buf, len, offset, flags);
  if (r.ok() && landed != nullptr) *landed = offset;
  if (r.ok() && *r != 0) vol_->NotifyChanged(this, offset, *r);
  return r;
}

Result<size_t> FileInode::WriteConventional(const void* buf, size_t len, uint64_t offset,
                                            IoFlags flags) {
  if (offset >= capacity_) {
    return Status(EFBIG, path_ + ": write at " + std::to_string(offset) +
                             " is at or past the file's maximum size " + std::to_string(capacity_));
  }
  if (len == 0) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, capacity_ - offset));
  VolumeStats& stats = vol_->stats();
  if (flags.direct) {
    if (offset % block_size_ != 0 || len % block_size_ != 0) {
      return Status(EINVAL, path_ + ": direct write at " + std::to_string(offset) + " of " +
                                std::to_string(len) + " bytes is not aligned to the " +
                                std::to_string(block_size_) + "-byte block size");
    }
    ZF_ASSIGN_OR_RETURN(LockHold hold, LockIo(LockState::kDirect, flags));
    Status invalidated;
    {
      // Shared with other direct writes; a fallback (which puts pages in
      // the cache) waits until none is between its invalidation and its
      // device write.
      std::shared_lock no_fallback(fallback_mu_);
      // The device copy becomes the truth: cached pages of the range go.
      invalidated = cache_->Invalidate(offset, len);
      if (invalidated.ok()) {
        Status s = DeviceWrite(offset, buf, len);
        if (!s.ok()) {
          no_fallback.unlock();
          std::unique_lock<std::mutex> lock(write_mu_);
          return HandleIoErrorLocked(lock, s, "direct write", offset, len);
        }
      }
    }
    if (invalidated.err() == EBUSY) {
      ZF_RETURN_IF_ERROR(FallBackToBuffered(buf, len, offset, invalidated.message()));
    } else if (!invalidated.ok()) {
      std::unique_lock<std::mutex> lock(write_mu_);
      return HandleIoErrorLocked(lock, invalidated, "write-back before a direct write", offset,
                                 len);
    }
    stats.direct_write_ops++;
    stats.direct_write_bytes += len;
    if (flags.sync) ZF_RETURN_IF_ERROR(vol_->device()->Flush());
    return len;
  }
  ZF_ASSIGN_OR_RETURN(LockHold hold, LockIo(LockState::kBuffered, flags));
  auto r = flags.sync ? cache_->WriteThrough(offset, buf, len, capacity_)
                      : cache_->Write(offset, buf, len, capacity_);
  if (!r.ok()) {
    std::unique_lock<std::mutex> lock(write_mu_);
    return HandleIoErrorLocked(lock, r.status(), "buffered write", offset, len);
  }
  if (flags.sync) {
    stats.writethrough_writes++;
    ZF_RETURN_IF_ERROR(vol_->device()->Flush());
  }
  stats.buffered_write_ops++;
  stats.buffered_write_bytes += *r;
  return r;
}

Result<size_t> FileInode::WriteSequential(const void* buf, size_t len, uint64_t offset,
                                          IoFlags flags, uint64_t* landed) {
  if (!flags.direct && vol_->options().seq_buffered_reject) {
    return Status(EIO, path_ +
                           ": buffered writes to sequential files are refused "
                           "(mount option seq_buffered=reject)");
  }
  VolumeStats& stats = vol_->stats();
  // A direct write keeps its hold until the device has completed it.
  ZF_ASSIGN_OR_RETURN(LockHold hold,
                      LockIo(flags.direct ? LockState::kDirect : LockState::kBuffered, flags));
  std::unique_lock<std::mutex> lock(write_mu_, std::defer_lock);
  if (!flags.nowait) {
    lock.lock();
    WaitNoFailedWriteLocked(lock);
  } else if (!lock.try_lock()) {
    return Status(EAGAIN, path_ + ": another write to the zone is being issued (RWF_NOWAIT)");
  } else if (failed_write_at_ != kNoFailedWrite) {
    // (A writer that got here before the failure was known is in flight
    // already: if the device refuses it, it waits for the writes below it
    // to settle, as every failed write does.)
    return Status(EAGAIN, path_ +
                              ": a failed write's error is being handled and the write "
                              "pointer resynchronised (RWF_NOWAIT)");
  }
  ZF_RETURN_IF_ERROR(CheckWritable());
  const uint64_t wp = reserved_;
  if (flags.append) offset = wp;
  if (offset >= capacity_) {
    return Status(EFBIG, path_ + ": write at " + std::to_string(offset) +
                             " is at or past the zone capacity " + std::to_string(capacity_));
  }
  if (offset != wp) {
    return Status(EINVAL, path_ + ": write at " + std::to_string(offset) +
                              " is not at the write pointer " + std::to_string(wp) +
                              " (sequential files are append-only)");
  }
  if (len % block_size_ != 0) {
    return Status(EINVAL, path_ + ": write of " + std::to_string(len) +
                              " bytes is not a multiple of the " + std::to_string(block_size_) +
                              "-byte block size (sequential files take whole blocks)");
  }
  if (len == 0) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, capacity_ - offset));
  ZF_RETURN_IF_ERROR(vol_->resources().BeginWrite(&slot_));
  const uint64_t end = offset + len;
  Status result;
  if (!flags.direct) {
    // Written through while holding write_mu_: the next writer's blocks
    // cannot overtake these on their way to the device.
    auto r = cache_->WriteThrough(offset, buf, len, end);
    result = r.status();
    if (r.ok()) {
      stats.writethrough_writes++;
      stats.buffered_write_ops++;
      stats.buffered_write_bytes += len;
    }
  } else {
    // Submitted under write_mu_ (device order = offset order), waited for
    // without it, so several direct writes can be in flight on one zone.
    reserved_ = end;
    inflight_.insert(offset);
    // Nothing valid is cached at or above the write pointer, but blocks past
    // the old size may be cached as zeros: they must not outlive this write.
    cache_->Discard(offset);
    AlignedPtr bounce;
    const void* src = buf;
    if (!Aligned(buf)) {
      auto b = AllocAligned(len);
      if (!b.ok()) {
        reserved_ = offset;
        inflight_.erase(offset);
        vol_->resources().EndWrite(&slot_, false);
        return b.status();
      }
      bounce = std::move(b).value();
      std::memcpy(bounce.get(), buf, len);
      src = bounce.get();
    }
    IoWaiter io(IoOp::kWrite, dev_start_ + offset, const_cast<void*>(src), len);
    io.Submit(vol_->device());
    stats.device_write_bytes += len;
    lock.unlock();
    const int64_t r = io.Wait();
    lock.lock();
    if (r < 0) {
      result = Status(static_cast<int>(-r), "direct write of " + std::to_string(len) +
                                                " bytes at " + std::to_string(offset) + " failed");
      // A failed write settles only after every write below it has: if
      // one of those failed, the device refused this one for being past
      // the write pointer it kept, and the error is that one's to handle.
      writes_done_cv_.wait(lock, [&] { return *inflight_.begin() == offset; });
      if (failed_write_at_ < offset) {
        inflight_.erase(offset);
        writes_done_cv_.notify_all();
        vol_->resources().EndWrite(&slot_, false);
        return Status(result.err(), path_ + ": " + result.message() +
                                        ": refused because the write before it at " +
                                        std::to_string(failed_write_at_) +
                                        " failed (no errors= policy of its own)");
      }
    } else {
      stats.direct_write_ops++;
      stats.direct_write_bytes += len;
    }
    inflight_.erase(offset);
    writes_done_cv_.notify_all();
  }
  if (!result.ok()) {
    vol_->resources().EndWrite(&slot_, false);
    if (!flags.direct) {
      return HandleIoErrorLocked(lock, result, "buffered write", offset, len);
    }
    failed_write_at_ = offset;
    struct Handled {
      FileInode* inode;
      ~Handled() {
        inode->failed_write_at_ = kNoFailedWrite;
        inode->writes_done_cv_.notify_all();
      }
    } handled{this};
    return HandleIoErrorLocked(lock, result, "direct write", offset, len);
  }
  // Completions arrive in device order; the size only grows.
  if (end > size_.load()) size_ = end;
  if (flags.direct == false) reserved_ = std::max(reserved_, end);
  // The last of several writes in flight sees the final size.
  vol_->resources().EndWrite(&slot_, size_.load() == capacity_);
  if (flags.sync) ZF_RETURN_IF_ERROR(vol_->device()->Flush());
  if (landed != nullptr) *landed = offset;
  return len;
}

void FileInode::WaitNoWritesLocked(std::unique_lock<std::mutex>& lock) {
  writes_done_cv_.wait(lock, [this] { return inflight_.empty(); });
}

void FileInode::WaitNoFailedWriteLocked(std::unique_lock<std::mutex>& lock) {
  writes_done_cv_.wait(lock, [this] { return failed_write_at_ == kNoFailedWrite; });
}

Status FileInode::Truncate(uint64_t size) {
  Status s = DoTruncate(size);
  if (s.ok()) vol_->NotifyChanged(this, 0, 0);
  return s;
}

Status FileInode::DoTruncate(uint64_t size) {
  if (vol_->read_only()) return Status(EROFS, path_ + ": the volume is read-only");
  if (!sequential()) {
    return Status(EPERM, path_ + ": conventional files cannot be truncated (their size is fixed)");
  }
  ZF_ASSIGN_OR_RETURN(LockHold hold, LockIo(LockState::kDirect, IoFlags{}));
  // Mapping takes BUFFERED, so no view appears while we hold DIRECT.
  if (const uint32_t n = views_.load(); n != 0) {
    return Status(EBUSY, path_ + ": " + std::to_string(n) +
                             " mapped view(s) pin the file; unmap them before a zone " +
                             (size == 0 ? "reset" : "finish"));
  }
  std::unique_lock<std::mutex> lock(write_mu_);
  // No write in flight, and no failed one's error being handled (which may
  // take the file or the volume down): then whether it may be truncated.
  writes_done_cv_.wait(lock,
                       [this] { return inflight_.empty() && failed_write_at_ == kNoFailedWrite; });
  ZF_RETURN_IF_ERROR(CheckWritable());
  if (size != 0 && size != capacity_) {
    return Status(EPERM, path_ +
                             ": a sequential file can only be truncated to 0 (zone reset) or "
                             "to its capacity " +
                             std::to_string(capacity_) + " (zone finish)");
  }
  const ZoneOp op = size == 0 ? ZoneOp::kReset : ZoneOp::kFinish;
  ZoneResources& res = vol_->resources();
  // Held from here to the end: the zone must not be picked as one to close
  // while the command changes it.
  res.Hold(&slot_);
  Status s;
  if (op == ZoneOp::kFinish && size_.load() != capacity_) s = res.PrepareFinish(&slot_);
  if (s.ok()) s = vol_->device()->ManageZones(op, first_zone_, 1);
  if (!s.ok()) {
    res.Unhold(&slot_);
    if (s.err() == EBUSY) return s.WithContext(path_);
    return HandleIoErrorLocked(lock, s, size == 0 ? "zone reset" : "zone finish", 0, 0);
  }
  if (size == 0) {
    cache_->Discard(0);
    vol_->stats().zone_resets++;
  } else {
    vol_->stats().zone_finishes++;
  }
  size_ = size;
  reserved_ = size;
  res.Released(&slot_);
  res.Unhold(&slot_);
  return Status();
}

Status FileInode::Fsync() {
  if (!sequential()) {
    Status s = cache_->WriteBack(0, 0);
    if (!s.ok()) {
      std::unique_lock<std::mutex> lock(write_mu_);
      return HandleIoErrorLocked(lock, s, "write-back", 0, 0);
    }
  }
  return vol_->device()->Flush();
}

Status FileInode::FallBackToBuffered(const void* buf, size_t len, uint64_t offset,
                                     const std::string& reason) {
  VolumeStats& stats = vol_->stats();
  stats.dio_fallbacks++;
  Log().warn("{}: direct write of {} bytes at {} falls back to a buffered write: {}", path_, len,
             offset, reason);
  // No other direct write may be between its invalidation and its device
  // write while we put pages in the cache: its data would land under them.
  std::unique_lock only_writer(fallback_mu_);
  // The source may be a view of these very pages: copy it out before the
  // cache writes into them, a piece at a time (bounded memory).
  const size_t chunk = std::min<size_t>(len, kFallbackChunk);
  ZF_ASSIGN_OR_RETURN(AlignedPtr copy, AllocAligned(chunk));
  const auto* src = static_cast<const uint8_t*>(buf);
  for (size_t done = 0; done < len;) {
    const size_t n = std::min(chunk, len - done);
    std::memcpy(copy.get(), src + done, n);
    // Written through: in the cache (so views see it) and on the device
    // before we return, as O_DIRECT promises.
    auto r = cache_->WriteThrough(offset + done, copy.get(), n, capacity_);
    if (!r.ok()) {
      only_writer.unlock();
      std::unique_lock<std::mutex> lock(write_mu_);
      return HandleIoErrorLocked(lock, r.status(), "direct write (fallen back to buffered)",
                                 offset + done, n);
    }
    done += n;
  }
  return Status();
}

Result<LockHold> FileInode::LockIo(LockState state, IoFlags flags, std::source_location where) {
  if (!flags.nowait) return io_lock_.Lock(state, where);
  auto hold = io_lock_.TryLock(state, where);
  if (!hold.ok()) return hold.status().WithContext("RWF_NOWAIT");
  return hold;
}

Result<std::unique_ptr<FileView>> FileInode::Map(uint64_t offset, size_t len) {
  if (health() == FileHealth::kOffline) return Status(EPERM, path_ + ": zone is offline");
  ZF_ASSIGN_OR_RETURN(LockHold hold, LockIo(LockState::kBuffered, IoFlags{}));
  auto view = cache_->Map(offset, len, size_.load());
  if (!view.ok()) {
    std::unique_lock<std::mutex> lock(write_mu_);
    return HandleIoErrorLocked(lock, view.status(), "mapping a view", offset, len);
  }
  return std::make_unique<FileView>(this, std::move(view).value());
}

FileView::FileView(FileInode* inode, std::unique_ptr<CacheView> view)
    : inode_(inode), view_(std::move(view)) {
  inode_->views_++;
}

FileView::~FileView() {
  view_.reset();
  inode_->views_--;
}

Status FileInode::WriteBack() { return sequential() ? Status() : cache_->WriteBack(0, 0); }

Status FileInode::OpenForWrite() {
  if (!sequential() || !vol_->resources().explicit_open()) return Status();
  const uint64_t size = size_.load();
  return vol_->resources().OpenForWrite(&slot_, size == 0, size == capacity_);
}

void FileInode::CloseForWrite() {
  if (!sequential() || !vol_->resources().explicit_open()) return;
  const uint64_t size = size_.load();
  vol_->resources().CloseForWrite(&slot_, size == 0, size == capacity_);
}

Result<size_t> FileInode::DeviceRead(uint64_t offset, void* buf, size_t len,
                                     const ReadProgress* progress) {
  ZonedDevice* dev = vol_->device();
  vol_->stats().device_read_bytes += len;
  if (progress != nullptr && Aligned(buf) && len > kToldReadPiece) {
    return dev->ReadInPieces(dev_start_ + offset, buf, len, kToldReadPiece, *progress);
  }
  if (Aligned(buf)) {
    auto r = dev->Read(dev_start_ + offset, buf, len);
    if (!r.ok()) return r.status();
    return len;
  }
  ZF_ASSIGN_OR_RETURN(AlignedPtr bounce, AllocAligned(len));
  auto r = dev->Read(dev_start_ + offset, bounce.get(), len);
  if (!r.ok()) return r.status();
  std::memcpy(buf, bounce.get(), len);
  return len;
}

Status FileInode::DeviceWrite(uint64_t offset, const void* buf, size_t len) {
  ZonedDevice* dev = vol_->device();
  vol_->stats().device_write_bytes += len;
  if (Aligned(buf)) return dev->Write(dev_start_ + offset, buf, len).status();
  ZF_ASSIGN_OR_RETURN(AlignedPtr bounce, AllocAligned(len));
  std::memcpy(bounce.get(), buf, len);
  return dev->Write(dev_start_ + offset, bounce.get(), len).status();
}

Status FileInode::ReadBlocks(uint64_t offset, void* buf, size_t len) {
  return DeviceRead(offset, buf, len).status();
}

Status FileInode::WriteBlocks(uint64_t offset, const void* buf, size_t len) {
  return DeviceWrite(offset, buf, len);
}

Status FileInode::HandleIoErrorLocked(std::unique_lock<std::mutex>& lock, const Status& error,
                                      const char* what, uint64_t offset, size_t len) {
  // Errors that the device never saw (bad arguments, memory) apply no
  // policy, nor do zone-resource refusals (ETOOMANYREFS, EOVERFLOW):
  // nothing is wrong with the media. But a write-through that ran out of memory part way may have
  // put its first pieces on the device, and a failed direct write left the
  // next write's place (reserved_) past its end: a sequential file takes
  // both from the write pointer again.
  const bool before_media = error.err() == EINVAL || error.err() == ENOMEM || error.err() == EAGAIN;
  const bool refused = error.err() == ETOOMANYREFS || error.err() == EOVERFLOW;
  if (before_media || refused) {
    if (sequential()) {
      WaitNoWritesLocked(lock);
      auto zone = vol_->device()->ReportZone(first_zone_);
      if (zone.ok() && zone->cond != ZoneCondition::kReadOnly &&
          zone->cond != ZoneCondition::kOffline) {
        const uint64_t wp = zone->cond == ZoneCondition::kFull
                                ? capacity_
                                : std::min(zone->wp - zone->start, capacity_);
        const bool size_changed = wp != size_.load();
        if (size_changed || wp != reserved_) {
          size_ = wp;
          reserved_ = wp;
          vol_->resources().Resync(&slot_, zone->cond);
        }
        if (size_changed) vol_->NotifyChanged(this, 0, 0);
      } else if (!zone.ok()) {
        // Every write has settled and the failed one never reached the
        // media: the device's write pointer is the size we know, and an
        // empty zone was not opened by it (unless we opened it explicitly).
        reserved_ = size_.load();
        if (reserved_ == 0 && !vol_->resources().explicit_open()) {
          vol_->resources().Resync(&slot_, ZoneCondition::kEmpty);
        }
      }
    }
    // zfile's own accounting should prevent a refusal; if another user of
    // the device holds zones open, say so.
    if (refused) {
      return Status(EBUSY, path_ + ": " + what + ": " + error.message() +
                               " (zones held open outside this volume?)");
    }
    return error;
  }
  vol_->stats().errors++;
  // Writes still in flight would land past a write pointer taken now:
  // resynchronise once they are done (they fail or succeed on their own).
  WaitNoWritesLocked(lock);
  const ErrorPolicy policy = vol_->options().errors;
  auto zone = vol_->device()->ReportZone(first_zone_);
  ZoneCondition cond = zone.ok() ? zone->cond : ZoneCondition::kOffline;
  uint64_t wp = capacity_;
  if (sequential() && zone.ok()) {
    wp = cond == ZoneCondition::kFull ? capacity_ : std::min(zone->wp - zone->start, capacity_);
  }
  FileHealth health = FileHealth::kGood;
  uint64_t size = sequential() ? wp : capacity_;
  if (cond == ZoneCondition::kOffline) {
    health = FileHealth::kOffline;
    size = 0;
  } else if (cond == ZoneCondition::kReadOnly) {
    // Its write pointer is not valid: keep the size we knew, as zonefs does,
    // so that the data written so far stays readable.
    health = FileHealth::kReadOnly;
    size = size_.load();
  } else {
    switch (policy) {
      case ErrorPolicy::kRemountRo:
        vol_->SetReadOnly(path_ + ": " + what + " error");
        break;
      case ErrorPolicy::kZoneRo:
        health = FileHealth::kReadOnly;
        break;
      case ErrorPolicy::kZoneOffline:
        health = FileHealth::kOffline;
        size = 0;
        break;
      case ErrorPolicy::kRepair:
        break;
    }
  }
  if (health == FileHealth::kOffline) {
    mode_ = 0;
  } else if (health == FileHealth::kReadOnly) {
    mode_ = mode_.load() & ~0222u;
  }
  if (health != FileHealth::kGood) health_ = static_cast<uint8_t>(health);
  // What readers see changed: an offline file has no data, and a
  // sequential one ends at the write pointer reported now. Whoever caches
  // the file's pages beside the engine (the FUSE mount's mappings) drops
  // them, as zonefs's truncation of the inode does.
  const bool changed = health == FileHealth::kOffline || (sequential() && size != size_.load());
  if (sequential()) {
    cache_->Discard(size);
    size_ = size;
    reserved_ = size;
    ZoneCondition now = cond;
    if (health != FileHealth::kGood && zone.ok() && zone->open()) {
      // The policy takes the file down: give its open zone back.
      if (vol_->device()->ManageZones(ZoneOp::kClose, first_zone_, 1).ok()) {
        now = zone->wp == zone->start ? ZoneCondition::kEmpty : ZoneCondition::kClosed;
      }
    }
    vol_->resources().Resync(&slot_, health == FileHealth::kGood ? now : ZoneCondition::kOffline);
  }
  if (changed) vol_->NotifyChanged(this, 0, 0);
  std::string msg = path_ + ": " + what;
  if (len != 0) msg += " of " + std::to_string(len) + " bytes at " + std::to_string(offset);
  msg += " failed: " + error.message() + "; zone " + std::to_string(first_zone_) + " is " +
         std::string(ConditionName(cond)) + ", file size now " + std::to_string(size) +
         " (errors=" + std::string(ErrorPolicyName(policy)) + ")";
  return Status(error.err(), msg);
}

}  // namespace zfile
