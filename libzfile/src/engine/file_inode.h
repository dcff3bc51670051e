// FileInode: one zonefs file (a zone, or aggregated conventional zones) and
// its I/O rules, exactly as kernel zonefs applies them (SPEC section 4):
//  - reads are clipped at the file size; direct I/O must be block-aligned;
//  - conventional files take random writes up to their fixed size;
//    O_APPEND is EINVAL, truncate EPERM;
//  - sequential files take writes only at the write pointer (counting writes
//    in flight), block-aligned (EINVAL), below capacity (EFBIG); truncate to 0
//    resets the zone, to capacity finishes it, anything else is EPERM;
//  - buffered writes to sequential files are written through at once, in
//    order (zfile extension; seq_buffered=reject gives EIO);
//  - O_SYNC/O_DSYNC/RWF_DSYNC buffered writes are written through;
//  - after an I/O error the zone is re-reported, the size resynchronised to
//    the write pointer and the errors= policy applied.
// Thread-safe. The size of a sequential file is its completed write
// pointer; writes in flight are counted separately so that the next writer
// knows where to write.
#ifndef ZFILE_ENGINE_FILE_INODE_H_
#define ZFILE_ENGINE_FILE_INODE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "cache/page_cache.h"
#include "device/zone.h"
#include "engine/zone_resources.h"
#include "format/layout.h"
#include "sync/two_state_lock.h"

namespace zfile {

class Volume;

enum class FileKind : uint8_t { kConventional, kSequential };
// What the errors= policy (or the zone's condition at mount) left the file.
enum class FileHealth : uint8_t { kGood, kReadOnly, kOffline };

struct FileStat {
  uint64_t size = 0;
  uint64_t max_size = 0;  // zone capacity
  uint64_t zone_start = 0;
  uint64_t zone_len = 0;
  uint32_t block_size = 0;
  uint64_t ino = 0;
  uint32_t mode = 0;  // S_IFREG | permission bits
  uint32_t uid = 0, gid = 0;
  FileKind kind = FileKind::kConventional;
  ZoneCondition cond = ZoneCondition::kNotWp;
  uint64_t blocks = 0;  // 512-byte units, as st_blocks
};

// Per-call I/O flags, from open flags and RWF_* flags.
struct IoFlags {
  bool direct = false;
  bool sync = false;    // O_SYNC / O_DSYNC / RWF_SYNC / RWF_DSYNC
  bool append = false;  // O_APPEND / RWF_APPEND
  bool nowait = false;  // RWF_NOWAIT
};

class FileInode;

// A mapped view of a file range (zfile_map): read-only, zero-copy, pinned
// in the cache and coherent with every later write to the range. While it
// lives, the file's zone cannot be reset or finished (EBUSY) and the volume
// cannot be unmounted. It may outlive the handle it was made through.
class FileView {
 public:
  FileView(FileInode* inode, std::unique_ptr<CacheView> view);
  ~FileView();
  FileView(const FileView&) = delete;
  FileView& operator=(const FileView&) = delete;

  const void* data() const { return view_->data(); }
  size_t size() const { return view_->size(); }
  // Where it lives in the cache's arena (CacheView::extents, start).
  std::vector<CacheView::Extent> extents() const { return view_->extents(); }
  uint64_t start() const { return view_->start(); }

 private:
  FileInode* const inode_;
  std::unique_ptr<CacheView> view_;
};

// Coherency between the cache and direct I/O (SPEC section 5) rests on
// each file's two-state lock, taken for the whole of every operation:
//  - BUFFERED: buffered reads and writes (write-through included) and
//    mapping a view, i.e. everything that inserts pages into the cache;
//  - DIRECT: direct reads (after writing back dirty pages of their range)
//    and direct writes (after writing back and invalidating it; a
//    sequential direct write keeps its hold until the device completes
//    it), zone reset and finish.
// So no page of a range can be (re)loaded while a direct write changes the
// device under it; the one exception, a fallen-back direct write, excludes
// the other direct writes of the file while it does (fallback_mu_). Fsync and background write-back
// take no file lock: page locks and dirty bits already make each dirty block go out once, and
// Invalidate treats a page they hold as busy. The lock is taken before
// write_mu_ (which orders sequential writers) and never while holding it.
class FileInode final : public CacheBacking {
 public:
  FileInode(Volume* vol, FileKind kind, uint32_t number, const ZoneFile& layout);
  ~FileInode() override;

  // Mount-time state: the zone's write pointer offset and condition.
  void InitState(uint64_t wp_offset, ZoneCondition cond);
  void AttachCache(std::unique_ptr<CachedFile> cache) { cache_ = std::move(cache); }
  ZoneSlot* slot() { return &slot_; }

  const std::string& path() const { return path_; }
  FileKind kind() const { return kind_; }
  bool sequential() const { return kind_ == FileKind::kSequential; }
  uint64_t size() const { return size_.load(); }
  uint64_t capacity() const { return capacity_; }
  FileHealth health() const;
  uint32_t first_zone() const { return first_zone_; }

  void Stat(FileStat* st) const;
  Status Chmod(uint32_t mode);
  Status Chown(uint32_t uid, uint32_t gid);

  // `progress`, if set, is told as the bytes arrive: page by page for a
  // buffered read, piece by piece for a direct read into aligned memory
  // of more than one piece (DeviceRead), and not at all for other direct
  // reads.
  Result<size_t> Read(void* buf, size_t len, uint64_t offset, IoFlags flags,
                      const ReadProgress* progress = nullptr);
  // `offset` is ignored for appends; `*landed` (if set) receives where the
  // data went.
  Result<size_t> Write(const void* buf, size_t len, uint64_t offset, IoFlags flags,
                       uint64_t* landed);
  Status Truncate(uint64_t size);
  Status Fsync();
  // A view of [offset, offset+len), which must lie within the file.
  Result<std::unique_ptr<FileView>> Map(uint64_t offset, size_t len);
  uint32_t views() const { return views_.load(); }
  // The file's two-state lock, for tests that hold it from outside.
  TwoStateLock& io_lock() { return io_lock_; }

  // explicit-open bookkeeping for handles opened for writing.
  Status OpenForWrite();
  void CloseForWrite();

  // Writes back dirty pages (conventional files).
  Status WriteBack();

  // CacheBacking: file offsets to device offsets.
  Status ReadBlocks(uint64_t offset, void* buf, size_t len) override;
  Status WriteBlocks(uint64_t offset, const void* buf, size_t len) override;

 private:
  friend class FileView;

  // The file's two-state lock in `state`; with flags.nowait only if that
  // needs no waiting (else EAGAIN).
  Result<LockHold> LockIo(LockState state, IoFlags flags,
                          std::source_location where = std::source_location::current());
  Status CheckWritable() const;
  // Truncate without telling the volume's change observer.
  Status DoTruncate(uint64_t size);
  Result<size_t> WriteConventional(const void* buf, size_t len, uint64_t offset, IoFlags flags);
  // A direct write over pinned pages: written through the cache instead,
  // so the caller still has the data on the device when it returns.
  Status FallBackToBuffered(const void* buf, size_t len, uint64_t offset,
                            const std::string& reason);
  Result<size_t> WriteSequential(const void* buf, size_t len, uint64_t offset, IoFlags flags,
                                 uint64_t* landed);
  // Device I/O at a file offset, through an aligned bounce buffer when the
  // caller's memory is not aligned for O_DIRECT. A read into aligned
  // memory of more than kToldReadPiece bytes is told to `progress` (if
  // set) piece by piece.
  Result<size_t> DeviceRead(uint64_t offset, void* buf, size_t len,
                            const ReadProgress* progress = nullptr);
  Status DeviceWrite(uint64_t offset, const void* buf, size_t len);
  // After an I/O error: waits for writes in flight, re-reports the zone,
  // resynchronises size and zone accounting, applies the errors= policy.
  // `lock` holds write_mu_.
  Status HandleIoErrorLocked(std::unique_lock<std::mutex>& lock, const Status& error,
                             const char* what, uint64_t offset, size_t len);
  void WaitNoWritesLocked(std::unique_lock<std::mutex>& lock);
  // Waits until no failed write's error is being handled (failed_write_at_).
  void WaitNoFailedWriteLocked(std::unique_lock<std::mutex>& lock);

  Volume* const vol_;
  const FileKind kind_;
  const std::string path_;
  const uint32_t first_zone_;
  const uint32_t nr_zones_;
  const uint64_t dev_start_;
  const uint64_t zone_len_;
  const uint64_t capacity_;
  const uint32_t block_size_;

  std::unique_ptr<CachedFile> cache_;
  ZoneSlot slot_;
  TwoStateLock io_lock_;
  std::atomic<uint32_t> views_{0};
  // Conventional files, within DIRECT: plain direct writes hold it shared
  // from their invalidation to their device write, a fallback exclusively
  // (it is the only DIRECT operation that puts pages in the cache).
  std::shared_mutex fallback_mu_;

  std::atomic<uint64_t> size_{0};
  std::atomic<uint8_t> health_{0};
  std::atomic<uint32_t> mode_{0}, uid_{0}, gid_{0};

  // Sequential files: orders writers. Held from the write pointer check to
  // the submission of the write, so writes reach the device in the order
  // of their offsets; not held while a direct write is in flight.
  std::mutex write_mu_;
  std::condition_variable writes_done_cv_;
  uint64_t reserved_ = 0;  // write pointer including writes in flight
  // Offsets of the direct writes submitted and not yet settled (completed
  // and accounted for). A failed one settles only after every write below
  // it: see failed_write_at_.
  std::set<uint64_t> inflight_;
  // While a failed direct write's error is being handled (the write
  // pointer resynchronised, a policy applied), its offset; kNoFailedWrite
  // otherwise. The writes in flight behind it were aimed past the write
  // pointer that the device kept, so their failures are its consequence
  // and apply no policy of their own; new writes wait until it is over.
  static constexpr uint64_t kNoFailedWrite = UINT64_MAX;
  uint64_t failed_write_at_ = kNoFailedWrite;
};

}  // namespace zfile

#endif  // ZFILE_ENGINE_FILE_INODE_H_
