#include "daemon/fuse_mount.h"

// The low-level API of libfuse 3.12 and later (fuse_session_receive_buf,
// fuse_session_process_buf); Debian's libfuse3-dev 3.14 provides it.
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/log.h"
#include "protocol/unique_fd.h"

extern char** environ;

namespace zfile::daemon {
namespace {

// Names are decimal zone-order numbers; zonefs's ZONEFS_FNAME_MAX.
constexpr unsigned long kNameMax = 16;
// Names never change (the files are the zones): the kernel may keep them.
// Attributes are never cached: a sequential file's size is its write
// pointer, which any path may move.
constexpr double kEntryTimeout = 3600.0;
constexpr double kAttrTimeout = 0.0;
// The most time Stop gives the workers past the shared stop deadline (a
// quarter of the stop timeout, up to this): what the steps before left may
// be nothing, and an idle mount, or one whose notifier waits for the
// kernel to write mapped pages back, still needs a moment.
constexpr std::chrono::milliseconds kMaxStopGrace{1000};
// Requests served at once; reads of one file and, where the kernel allows
// it, direct writes reach the engine in parallel.
constexpr int kWorkers = 8;
// The largest read or write one request carries.
constexpr unsigned kMaxWrite = 1u << 20;

// FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6, flags2 of the INIT reply): shared
// mappings of direct_io files. libfuse 3.14 can neither ask for it nor
// pass it on, so ReadDevice/WriteDevice add it to the INIT reply.
constexpr uint32_t kDirectIoAllowMmapFlags2 = 1u << (36 - 32);

// Whether the FUSE_WRITE request this worker thread read last carries
// FUSE_WRITE_KILL_SUIDGID: libfuse 3.14 does not pass write_flags on to the
// write operation, and the thread that reads a request is the one that
// serves it (ReadDevice, then OpWrite).
thread_local bool tls_kill_suidgid = false;

// A worker's page-aligned scratch memory, kept from one request to the
// next. Reads fill it (the engine reads a direct file straight into it);
// direct writes from libfuse's buffer, whose data sits just past the
// request's header and so is never page-aligned, are copied into it,
// which costs one memcpy where the engine would otherwise map, fault in
// and unmap a bounce buffer of its own for every request.
class Scratch {
 public:
  // At least `len` bytes (one page for 0), or nullptr without memory.
  void* Get(size_t len) {
    len = std::max<size_t>(len, kPage);
    if (len > cap_) {
      void* mem = nullptr;
      if (posix_memalign(&mem, kPage, len) != 0) return nullptr;
      mem_.reset(mem);
      cap_ = len;
    }
    return mem_.get();
  }

 private:
  static constexpr size_t kPage = 4096;
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> mem_;
  size_t cap_ = 0;
};
thread_local Scratch tls_scratch;

// A worker's epoll set: /dev/fuse, added EPOLLEXCLUSIVE so that a request
// wakes one idle worker rather than all of them, and the mount's stop
// eventfd, which wakes them all.
struct WorkerWait {
  protocol::UniqueFd epoll;
  int dev_fd = -1;
  int wake_fd = -1;
};
thread_local WorkerWait tls_wait;

// Detaches whatever is mounted on `mount_point` (umount2(MNT_DETACH) as
// root, fusermount3 -u -z otherwise), so that it goes once unused. Never
// through a symbolic link put there since the path was resolved.
Status LazyUnmount(const std::string& mount_point) {
  if (geteuid() == 0) {
    if (umount2(mount_point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return ErrnoStatus(errno, "umount2(" + mount_point + ", MNT_DETACH)");
    }
    return Status();
  }
  const char* argv[] = {"fusermount3", "-u", "-z", "-q", mount_point.c_str(), nullptr};
  pid_t pid;
  int err = posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv), environ);
  if (err != 0) return ErrnoStatus(err, "running fusermount3 -u -z " + mount_point);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return Status(EIO, "fusermount3 -u -z " + mount_point + " failed");
  }
  return Status();
}

std::string OctalMode(mode_t mode) {
  char b[8];
  std::snprintf(b, sizeof(b), "%04o", static_cast<unsigned>(mode & 07777));
  return b;
}

// As root, the mount (allow_other, root's) must stay where it was put:
// nobody but root may rename a directory on the way to it. A sticky
// directory (/tmp) lets others create entries but not rename root's.
Status CheckAncestorsSafe(const std::string& resolved) {
  if (geteuid() != 0) return Status();  // fusermount3 does its own checks
  std::string dir = resolved;
  while (true) {
    const size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "mount point: " + dir);
    if (!S_ISDIR(st.st_mode)) {
      return Status(ENOTDIR, "mount point: " + dir + " changed while it was being checked");
    }
    const char* why = nullptr;
    if (st.st_uid != 0) {
      why = "is not root's";
    } else if ((st.st_mode & S_ISVTX) == 0 && (st.st_mode & S_IWOTH) != 0) {
      why = "is writable by others";
    } else if ((st.st_mode & S_ISVTX) == 0 && (st.st_mode & S_IWGRP) != 0) {
      why = "is writable by its group";
    }
    if (why != nullptr) {
      return Status(EPERM, "mount point " + resolved + ": " + dir + " " + why + " (mode " +
                               OctalMode(st.st_mode) + ", uid " + std::to_string(st.st_uid) +
                               "): whoever may rename what is in it could move the mount; "
                               "zfiled as root mounts only under directories only root may change");
    }
    if (dir == "/") return Status();
  }
}

// FUSE would hide what is in the directory, and a live mount there (another
// zfiled) would be mounted over: only an empty directory will do.
Status CheckEmptyDirectory(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "mount point " + path);
  std::string first;
  size_t entries = 0;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (entries++ == 0) first = e->d_name;
  }
  closedir(d);
  if (entries == 0) return Status();
  const std::string what =
      "'" + first + "'" +
      (entries > 1 ? " and " + std::to_string(entries - 1) + " more entries" : std::string());
  return Status(ENOTEMPTY, "mount point " + path + " is not empty (it holds " + what +
                               "): the mount would hide them; give an empty directory");
}

}  // namespace

Status CheckFuseAvailable() {
  struct stat st {};
  if (stat("/dev/fuse", &st) != 0 || !S_ISCHR(st.st_mode)) {
    return Status(ENODEV, "/dev/fuse is missing: load the fuse kernel module (modprobe fuse)");
  }
  // libfuse opens /dev/fuse itself, as root or not (a user then mounts it
  // through the setuid fusermount3), so it must be readable and writable.
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    return ErrnoStatus(errno, "/dev/fuse is not readable and writable by uid " +
                                  std::to_string(geteuid()) +
                                  " (distributions make it mode 0666 for users' FUSE mounts)");
  }
  return Status();
}

class FuseMount::Impl : public FileChangeObserver {
 public:
  Impl(std::string name, Volume* vol, std::string mount_point,
       std::chrono::milliseconds stop_timeout)
      : name_(std::move(name)),
        vol_(vol),
        mount_point_(std::move(mount_point)),
        stop_timeout_(stop_timeout) {}
  ~Impl() override { (void)Stop(std::chrono::steady_clock::now()); }

  Status Start();
  Status Stop(std::chrono::steady_clock::time_point began);
  const std::string& mount_point() const { return mount_point_; }

  // FileChangeObserver: queued for the notifier thread, never told to the
  // kernel from here: the change may be made inside a FUSE request whose
  // inode the kernel holds locked, and notify_inval_inode must not run in
  // the execution path of a request on the same file (libfuse's contract).
  void FileChanged(FileInode* inode, uint64_t offset, uint64_t len) override;

 private:
  // A node of the tree: the root, cnv/, seq/, or a file. FUSE node ids
  // index nodes_ (FUSE_ROOT_ID is 1); st_ino is what the engine reports.
  struct Node {
    std::string name;
    std::string path;  // "" for the root, "cnv", "seq/3"
    fuse_ino_t parent = FUSE_ROOT_ID;
    FileInode* inode = nullptr;  // null for directories
    std::vector<fuse_ino_t> children;
  };

  static Impl* Of(fuse_req_t req) { return static_cast<Impl*>(fuse_req_userdata(req)); }
  static FileHandle* HandleOf(const fuse_file_info* fi) {
    return reinterpret_cast<FileHandle*>(static_cast<uintptr_t>(fi->fh));
  }
  // Replies with the error of `s`, logging its words (the kernel passes
  // the number only).
  static void ReplyError(fuse_req_t req, const Status& s, const char* op);

  Status BuildTree();
  // Resolves mount_point_ for good and checks it (see FuseMount::Start).
  Status PrepareMountPoint();
  const Node* NodeOf(fuse_ino_t ino) const {
    return ino < nodes_.size() && ino != 0 ? &nodes_[ino] : nullptr;
  }
  Status FillStat(const Node& node, struct stat* st) const;
  void Worker(int index);
  void Notifier();
  // Queues an invalidation of [offset, offset+len) of node `ino` (len 0:
  // the whole file) for the notifier.
  void QueueInvalidation(fuse_ino_t ino, uint64_t offset, uint64_t len);
  // A writepage request (mmap write-back): the handle is whichever one the
  // kernel picked, so its flags are not the writer's.
  static void WriteBack(fuse_req_t req, fuse_ino_t ino, FileHandle* h, const char* buf, size_t size,
                        off_t off);
  // What the kernel does itself on other file systems when someone
  // without CAP_FSETID writes: drop setuid, and setgid if the group may
  // execute.
  static Status KillSuidSgid(FileInode* inode);
  // The session's device I/O (fuse_custom_io): read and writev on
  // /dev/fuse, except that:
  //  - a read waits in epoll on the device (one idle worker woken per
  //    request) and on wake_fd_, so that Stop wakes idle workers without a
  //    signal (which would also interrupt busy ones);
  //  - it notes FUSE_WRITE_KILL_SUIDGID (tls_kill_suidgid);
  //  - the reply to the kernel's INIT request gets
  //    FUSE_DIRECT_IO_ALLOW_MMAP, so that programs may map files shared
  //    (read-only mappings: any program that mmaps what it reads); without
  //    it the kernel refuses MAP_SHARED on direct_io files with ENODEV.
  static ssize_t ReadDevice(int fd, void* buf, size_t len, void* userdata);
  static ssize_t WriteDevice(int fd, iovec* iov, int count, void* userdata);

  // The operations (fuse_lowlevel_ops).
  static void OpInit(void* userdata, fuse_conn_info* conn);
  static void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                        fuse_file_info* fi);
  static void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                      fuse_file_info* fi);
  static void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  static void OpStatfs(fuse_req_t req, fuse_ino_t ino);
  static void OpMknod(fuse_req_t req, fuse_ino_t, const char* name, mode_t, dev_t);
  static void OpMkdir(fuse_req_t req, fuse_ino_t, const char* name, mode_t);
  static void OpUnlink(fuse_req_t req, fuse_ino_t, const char* name);
  static void OpRename(fuse_req_t req, fuse_ino_t, const char* name, fuse_ino_t, const char*,
                       unsigned int);
  static void OpSymlink(fuse_req_t req, const char*, fuse_ino_t, const char* name);
  static void OpLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char* name);
  static void OpCreate(fuse_req_t req, fuse_ino_t, const char* name, mode_t, fuse_file_info*);
  static void NoNames(fuse_req_t req, const char* what, const char* name);

  const std::string name_;
  Volume* const vol_;
  std::string mount_point_;  // resolved by Start, constant after
  const std::chrono::milliseconds stop_timeout_;
  uint32_t block_size_ = 4096;
  const timespec mounted_at_ = [] {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
  }();

  std::vector<Node> nodes_;  // built before serving, constant after
  std::unordered_map<const FileInode*, fuse_ino_t> node_of_inode_;
  // Per node: whether the kernel may hold pages of it. Only mappings put
  // file data in its cache, and it fills them with page-aligned reads; a
  // file never read so (every file only written, say) needs no
  // invalidations. Set before the read reaches the engine, never cleared:
  // a write that sees it clear completed before any such read began.
  std::unique_ptr<std::atomic<bool>[]> maybe_cached_;
  long page_size_ = 4096;

  fuse_session* se_ = nullptr;
  bool mounted_ = false;
  protocol::UniqueFd wake_fd_;            // eventfd: Stop wakes the workers with it
  std::atomic<bool> stopping_{false};     // Stop has begun
  std::atomic<bool> lost_logged_{false};  // "unmounted from outside" said
  // The unique id of the kernel's INIT request (0: not seen yet).
  std::atomic<uint64_t> init_unique_{0};
  bool stopped_ = false;
  Status stop_status_;  // what Stop returned

  struct WorkerThread {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::vector<std::unique_ptr<WorkerThread>> workers_;

  // Files the kernel has open: closed by Stop if the kernel never released
  // them (it does not once the mount is gone), so the volume can unmount.
  std::mutex handles_mu_;
  std::unordered_set<FileHandle*> handles_;  // owned

  // What the notifier has still to tell the kernel: per node, one range
  // covering every change since (so the queue never holds more entries
  // than there are files, however fast writes come), in arrival order.
  struct Inval {
    uint64_t begin = 0, end = 0;  // end 0: the whole file
  };
  std::mutex inval_mu_;
  std::condition_variable inval_cv_;
  std::unordered_map<fuse_ino_t, Inval> inval_;  // guarded by inval_mu_
  std::deque<fuse_ino_t> inval_order_;           // guarded by inval_mu_
  bool inval_stop_ = false;                      // guarded by inval_mu_
  std::thread notifier_;
  std::atomic<bool> notifier_done_{false};
};

void FuseMount::Impl::ReplyError(fuse_req_t req, const Status& s, const char* op) {
  Log().debug("fuse {}: {}", op, s.ToString());
  fuse_reply_err(req, s.err() != 0 ? s.err() : EIO);
}

Status FuseMount::Impl::BuildTree() {
  nodes_.resize(2);  // 0 unused, 1 the root
  nodes_[FUSE_ROOT_ID].parent = FUSE_ROOT_ID;
  ZF_ASSIGN_OR_RETURN(std::vector<std::string> dirs, vol_->List(""));
  for (const std::string& dir : dirs) {
    const fuse_ino_t dir_ino = nodes_.size();
    nodes_.push_back(Node{dir, dir, FUSE_ROOT_ID, nullptr, {}});
    nodes_[FUSE_ROOT_ID].children.push_back(dir_ino);
    ZF_ASSIGN_OR_RETURN(std::vector<std::string> files, vol_->List(dir));
    for (const std::string& file : files) {
      const std::string path = dir + "/" + file;
      ZF_ASSIGN_OR_RETURN(FileInode * inode, vol_->Lookup(path));
      const fuse_ino_t ino = nodes_.size();
      nodes_.push_back(Node{file, path, dir_ino, inode, {}});
      nodes_[dir_ino].children.push_back(ino);
      node_of_inode_[inode] = ino;
    }
  }
  return Status();
}

Status FuseMount::Impl::FillStat(const Node& node, struct stat* st) const {
  FileStat fs;
  ZF_RETURN_IF_ERROR(vol_->StatPath(node.path, &fs));
  *st = {};
  st->st_ino = fs.ino;
  st->st_mode = fs.mode;
  st->st_nlink = node.inode != nullptr ? 1 : 2 + (node.path.empty() ? node.children.size() : 0);
  st->st_uid = fs.uid;
  st->st_gid = fs.gid;
  st->st_size = static_cast<off_t>(fs.size);
  st->st_blocks = static_cast<blkcnt_t>(fs.blocks);
  st->st_blksize = fs.block_size;
  // zonefs keeps no times: every inode has the mount's.
  st->st_atim = st->st_mtim = st->st_ctim = mounted_at_;
  return Status();
}

void FuseMount::Impl::OpInit(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  // Exactly: OpWrite tells the kernel's cut pieces of larger writes by it.
  conn->max_write = kMaxWrite;
  // Data never goes through the kernel's cache (direct_io on every open),
  // so nothing for it to write back or read ahead.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->max_readahead = 0;
  // With async direct I/O the kernel sends every request of a large
  // asynchronous write (io_uring, libaio) at once, and the workers would
  // take them in any order: a sequential file refuses all but the one at
  // its write pointer. Without it they come one after another.
  conn->want &= ~FUSE_CAP_ASYNC_DIO;
}

void FuseMount::Impl::OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Impl* self = Of(req);
  const Node* dir = self->NodeOf(parent);
  if (dir == nullptr || dir->inode != nullptr) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  for (fuse_ino_t child : dir->children) {
    if (self->nodes_[child].name != name) continue;
    fuse_entry_param e{};
    e.ino = child;
    e.generation = 1;
    e.entry_timeout = kEntryTimeout;
    e.attr_timeout = kAttrTimeout;
    Status s = self->FillStat(self->nodes_[child], &e.attr);
    if (!s.ok()) return ReplyError(req, s, "lookup");
    fuse_reply_entry(req, &e);
    return;
  }
  fuse_reply_err(req, ENOENT);
}

void FuseMount::Impl::OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Impl* self = Of(req);
  const Node* node = self->NodeOf(ino);
  if (node == nullptr) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  Status s = self->FillStat(*node, &st);
  if (!s.ok()) return ReplyError(req, s, "getattr");
  fuse_reply_attr(req, &st, kAttrTimeout);
}

// The kernel has already checked the caller may do it (default_permissions:
// owner or root for chmod, root to give a file away, write permission to
// truncate); here the engine applies zonefs's rules (SPEC section 4).
void FuseMount::Impl::OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                                fuse_file_info* fi) {
  Impl* self = Of(req);
  const Node* node = self->NodeOf(ino);
  if (node == nullptr) return (void)fuse_reply_err(req, ENOENT);
  if (node->inode == nullptr) {
    // zonefs's directories are fixed: 0555, root's.
    if (to_set &
        (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE)) {
      return (void)fuse_reply_err(req, EPERM);
    }
  } else {
    FileInode* inode = node->inode;
    Status s;
    if (to_set & FUSE_SET_ATTR_SIZE) {
      s = fi != nullptr ? HandleOf(fi)->Truncate(static_cast<uint64_t>(attr->st_size))
                        : inode->Truncate(static_cast<uint64_t>(attr->st_size));
    }
    if (s.ok() && (to_set & FUSE_SET_ATTR_MODE)) s = inode->Chmod(attr->st_mode & 07777);
    if (s.ok() && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
      s = inode->Chown((to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : UINT32_MAX,
                       (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : UINT32_MAX);
    }
    // Times: zonefs keeps none; touch on a file succeeds and changes nothing.
    if (!s.ok()) return ReplyError(req, s, "setattr");
  }
  struct stat st;
  Status s = self->FillStat(*node, &st);
  if (!s.ok()) return ReplyError(req, s, "setattr");
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void FuseMount::Impl::OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                                fuse_file_info*) {
  Impl* self = Of(req);
  const Node* dir = self->NodeOf(ino);
  if (dir == nullptr) return (void)fuse_reply_err(req, ENOENT);
  if (dir->inode != nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  // Entry i is ".", "..", then the children; `off` is the index to start at.
  std::vector<char> buf(size);
  size_t used = 0;
  const size_t total = 2 + dir->children.size();
  for (size_t i = static_cast<size_t>(off); i < total; ++i) {
    const Node& n = i == 0   ? *dir
                    : i == 1 ? self->nodes_[dir->parent]
                             : self->nodes_[dir->children[i - 2]];
    const char* name = i == 0 ? "." : i == 1 ? ".." : n.name.c_str();
    struct stat st {};
    FileStat fs;
    if (self->vol_->StatPath(n.path, &fs).ok()) st.st_ino = fs.ino;
    st.st_mode = n.inode != nullptr ? S_IFREG : S_IFDIR;
    size_t len = fuse_add_direntry(req, buf.data() + used, size - used, name, &st,
                                   static_cast<off_t>(i + 1));
    if (len > size - used) break;
    used += len;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void FuseMount::Impl::OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Impl* self = Of(req);
  const Node* node = self->NodeOf(ino);
  if (node == nullptr) return (void)fuse_reply_err(req, ENOENT);
  if (node->inode == nullptr) return (void)fuse_reply_err(req, EISDIR);
  // The flags that mean something to the engine reach it; the kernel's own
  // (O_LARGEFILE, O_NOFOLLOW, O_CLOEXEC, FMODE_EXEC, ...) are its business.
  int flags = fi->flags & (O_ACCMODE | O_DIRECT | O_SYNC | O_DSYNC | O_APPEND | O_TRUNC |
                           O_NOATIME | O_NONBLOCK);
  // Linux truncates on open(O_RDONLY|O_TRUNC), the kernel having checked
  // for write permission; the engine wants write access for O_TRUNC.
  const bool truncate_read_only = (flags & O_TRUNC) != 0 && (flags & O_ACCMODE) == O_RDONLY;
  if (truncate_read_only) flags &= ~O_TRUNC;
  Result<std::unique_ptr<FileHandle>> h = self->vol_->Open(node->path, flags);
  if (!h.ok()) return ReplyError(req, h.status(), "open");
  if (truncate_read_only) {
    Status s = node->inode->Truncate(0);
    if (!s.ok()) return ReplyError(req, s, "open");
  }
  FileHandle* raw = h->release();
  {
    std::lock_guard<std::mutex> lock(self->handles_mu_);
    self->handles_.insert(raw);
  }
  // The reply is built here rather than by fuse_reply_open, which (libfuse
  // 3.14) cannot say FOPEN_PARALLEL_DIRECT_WRITES:
  //  - FOPEN_DIRECT_IO: every read and write goes to the engine with the
  //    caller's offset and length; the kernel's page cache holds nothing of
  //    the file (but for mappings, which FileChanged invalidates);
  //  - FOPEN_PARALLEL_DIRECT_WRITES: the kernel takes the file's lock
  //    shared, not exclusive, for writes that do not extend the file, so
  //    that direct writes to a conventional file reach the engine in
  //    parallel (the engine orders what needs ordering: sequential files).
  fuse_open_out out{};
  out.fh = reinterpret_cast<uintptr_t>(raw);
  out.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
  iovec iov{&out, sizeof(out)};
  if (fuse_reply_iov(req, &iov, 1) == -ENOENT) {
    // The opener was interrupted: the kernel will never release it.
    std::lock_guard<std::mutex> lock(self->handles_mu_);
    self->handles_.erase(raw);
    delete raw;
  }
}

void FuseMount::Impl::OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                             fuse_file_info* fi) {
  Impl* self = Of(req);
  if (off % self->page_size_ == 0 && ino < self->nodes_.size()) {
    self->maybe_cached_[ino].store(true);
  }
  // Page-aligned, so that a direct read goes to the device without a
  // bounce buffer.
  void* buf = tls_scratch.Get(size);
  if (buf == nullptr) return (void)fuse_reply_err(req, ENOMEM);
  Result<size_t> n = HandleOf(fi)->PRead(buf, size, static_cast<uint64_t>(off), 0);
  if (!n.ok()) return ReplyError(req, n.status(), "read");
  fuse_reply_buf(req, static_cast<const char*>(buf), *n);
}

void FuseMount::Impl::OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size,
                              off_t off, fuse_file_info* fi) {
  Impl* self = Of(req);
  FileHandle* h = HandleOf(fi);
  const bool kill_suidgid = std::exchange(tls_kill_suidgid, false);
  if (fi->writepage) return WriteBack(req, ino, h, buf, size, off);
  if (kill_suidgid) {
    Status s = KillSuidSgid(h->inode());
    if (!s.ok()) return ReplyError(req, s, "write");
  }
  // fi->flags are the file's flags as they are now (fcntl(F_SETFL) may have
  // set O_APPEND since the open), plus O_DSYNC/O_SYNC for RWF_DSYNC/RWF_SYNC
  // on this one write. O_APPEND appends at the write pointer whatever `off`
  // says: the kernel's idea of the size may be stale.
  int rwf = 0;
  if ((fi->flags & O_SYNC) == O_SYNC) {
    rwf |= RWF_SYNC;
  } else if ((fi->flags & O_DSYNC) != 0) {
    rwf |= RWF_DSYNC;
  }
  if ((fi->flags & O_APPEND) != 0) rwf |= RWF_APPEND;
  // The kernel cuts a direct_io write larger than max_write at a number of
  // the caller's pages: from a buffer that is not page-aligned, such a
  // piece is within a page of max_write and not a whole number of blocks.
  // A sequential file takes its whole blocks and the write comes back
  // short; a writer that loops carries on from there. A write that came
  // whole (up to max_write less a page) is judged whole: EINVAL, nothing
  // written, as zonefs does.
  const size_t bs = self->block_size_;
  if (h->inode()->sequential() && size % bs != 0 &&
      size + static_cast<size_t>(self->page_size_) > kMaxWrite && size > bs) {
    size -= size % bs;
  }
  const void* data = buf;
  if ((fi->flags & O_DIRECT) != 0 && reinterpret_cast<uintptr_t>(buf) % bs != 0) {
    void* aligned = tls_scratch.Get(size);
    if (aligned == nullptr) return (void)fuse_reply_err(req, ENOMEM);
    std::memcpy(aligned, buf, size);
    data = aligned;
  }
  Result<size_t> n = h->PWrite(data, size, static_cast<uint64_t>(off), rwf);
  if (!n.ok()) return ReplyError(req, n.status(), "write");
  fuse_reply_write(req, *n);
}

void FuseMount::Impl::WriteBack(fuse_req_t req, fuse_ino_t ino, FileHandle* h, const char* buf,
                                size_t size, off_t off) {
  Result<size_t> n = h->WriteBack(buf, size, static_cast<uint64_t>(off));
  if (!n.ok()) {
    // The kernel keeps the page, clean now, with bytes that are not the
    // file's: have it dropped, so that the mapping shows the file again.
    Of(req)->QueueInvalidation(ino, static_cast<uint64_t>(off), size);
    return ReplyError(req, n.status(), "write-back");
  }
  fuse_reply_write(req, *n);
}

Status FuseMount::Impl::KillSuidSgid(FileInode* inode) {
  FileStat st;
  inode->Stat(&st);
  uint32_t mode = st.mode & 07777;
  const uint32_t before = mode;
  mode &= ~static_cast<uint32_t>(S_ISUID);
  // Setgid without group execute marks mandatory locking, not a program.
  if ((mode & S_IXGRP) != 0) mode &= ~static_cast<uint32_t>(S_ISGID);
  if (mode == before) return Status();
  return inode->Chmod(mode);
}

void FuseMount::Impl::OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  // Nothing is buffered between the kernel and the engine.
  fuse_reply_err(req, 0);
}

void FuseMount::Impl::OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Impl* self = Of(req);
  FileHandle* h = HandleOf(fi);
  {
    std::lock_guard<std::mutex> lock(self->handles_mu_);
    self->handles_.erase(h);
  }
  delete h;  // ends explicit-open writing, as close(2) does on zonefs
  fuse_reply_err(req, 0);
}

void FuseMount::Impl::OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  Status s = HandleOf(fi)->Fsync();
  if (!s.ok()) return ReplyError(req, s, "fsync");
  fuse_reply_err(req, 0);
}

// As zonefs_statfs: every zone's capacity is a block of the file system;
// conventional files count as full, sequential files as far as their write
// pointer; there are as many inodes as files and none free.
void FuseMount::Impl::OpStatfs(fuse_req_t req, fuse_ino_t) {
  Impl* self = Of(req);
  const VolumeInfo info = self->vol_->Info();
  const uint64_t bs = info.block_size != 0 ? info.block_size : 4096;
  uint64_t blocks = 0, used = 0, files = 0;
  for (const Node& n : self->nodes_) {
    if (n.inode == nullptr) continue;
    ++files;
    blocks += n.inode->capacity() / bs;
    used += (n.inode->sequential() ? n.inode->size() : n.inode->capacity()) / bs;
  }
  struct statvfs sv {};
  sv.f_bsize = bs;
  sv.f_frsize = bs;
  sv.f_blocks = blocks;
  sv.f_bfree = used > blocks ? 0 : blocks - used;
  sv.f_bavail = sv.f_bfree;
  sv.f_files = files;
  sv.f_ffree = 0;
  sv.f_favail = 0;
  sv.f_namemax = kNameMax;
  if (info.read_only) sv.f_flag |= ST_RDONLY;
  fuse_reply_statfs(req, &sv);
}

void FuseMount::Impl::NoNames(fuse_req_t req, const char* what, const char* name) {
  Log().debug("fuse {} '{}': EPERM: the files of a zonefs volume are its zones", what, name);
  fuse_reply_err(req, EPERM);
}
void FuseMount::Impl::OpMknod(fuse_req_t req, fuse_ino_t, const char* name, mode_t, dev_t) {
  NoNames(req, "mknod", name);
}
void FuseMount::Impl::OpMkdir(fuse_req_t req, fuse_ino_t, const char* name, mode_t) {
  NoNames(req, "mkdir", name);
}
void FuseMount::Impl::OpUnlink(fuse_req_t req, fuse_ino_t, const char* name) {
  NoNames(req, "unlink/rmdir", name);
}
void FuseMount::Impl::OpRename(fuse_req_t req, fuse_ino_t, const char* name, fuse_ino_t,
                               const char*, unsigned int) {
  NoNames(req, "rename", name);
}
void FuseMount::Impl::OpSymlink(fuse_req_t req, const char*, fuse_ino_t, const char* name) {
  NoNames(req, "symlink", name);
}
void FuseMount::Impl::OpLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char* name) {
  NoNames(req, "link", name);
}
void FuseMount::Impl::OpCreate(fuse_req_t req, fuse_ino_t, const char* name, mode_t,
                               fuse_file_info*) {
  NoNames(req, "create", name);
}

void FuseMount::Impl::FileChanged(FileInode* inode, uint64_t offset, uint64_t len) {
  auto it = node_of_inode_.find(inode);
  if (it == node_of_inode_.end() || !maybe_cached_[it->second].load()) return;
  QueueInvalidation(it->second, offset, len);
}

void FuseMount::Impl::QueueInvalidation(fuse_ino_t ino, uint64_t offset, uint64_t len) {
  bool added = false;
  {
    std::lock_guard<std::mutex> lock(inval_mu_);
    if (inval_stop_) return;
    const uint64_t end = len == 0 ? 0 : offset + len;
    auto [pending, inserted] = inval_.try_emplace(ino, Inval{offset, end});
    added = inserted;
    if (added) {
      inval_order_.push_back(ino);
    } else if (pending->second.end != 0) {  // else already the whole file
      pending->second.begin = std::min(pending->second.begin, offset);
      pending->second.end = end == 0 ? 0 : std::max(pending->second.end, end);
    }
  }
  // A merged entry is one the notifier has been told of already.
  if (added) inval_cv_.notify_one();
}

void FuseMount::Impl::Notifier() {
  std::unique_lock<std::mutex> lock(inval_mu_);
  while (true) {
    inval_cv_.wait(lock, [this] { return inval_stop_ || !inval_order_.empty(); });
    if (inval_stop_) {
      notifier_done_ = true;
      return;
    }
    const fuse_ino_t ino = inval_order_.front();
    inval_order_.pop_front();
    auto node = inval_.extract(ino);
    const Inval inv = node.mapped();
    lock.unlock();
    // len 0: the whole file. ENOENT: the kernel has not looked it up (or
    // has forgotten it), so it caches nothing of it.
    int err = fuse_lowlevel_notify_inval_inode(
        se_, ino, static_cast<off_t>(inv.begin),
        inv.end == 0 ? 0 : static_cast<off_t>(inv.end - inv.begin));
    if (err != 0 && err != -ENOENT) {
      Log().debug("fuse: invalidating node {}: {}", ino, ErrnoName(-err));
    }
    lock.lock();
  }
}

ssize_t FuseMount::Impl::ReadDevice(int fd, void* buf, size_t len, void* userdata) {
  Impl* self = static_cast<Impl*>(userdata);
  tls_kill_suidgid = false;
  WorkerWait& w = tls_wait;
  if (!w.epoll.valid() || w.dev_fd != fd || w.wake_fd != self->wake_fd_.get()) {
    w.epoll.Reset(epoll_create1(EPOLL_CLOEXEC));
    if (!w.epoll.valid()) return -1;
    epoll_event dev{.events = EPOLLIN | EPOLLEXCLUSIVE, .data = {.u64 = 0}};
    epoll_event wake{.events = EPOLLIN, .data = {.u64 = 1}};
    if (epoll_ctl(w.epoll.get(), EPOLL_CTL_ADD, fd, &dev) != 0 ||
        epoll_ctl(w.epoll.get(), EPOLL_CTL_ADD, self->wake_fd_.get(), &wake) != 0) {
      const int err = errno;
      w.epoll.Reset();
      errno = err;
      return -1;
    }
    w.dev_fd = fd;
    w.wake_fd = self->wake_fd_.get();
  }
  ssize_t n;
  while (true) {
    epoll_event ev[2];
    const int ready = epoll_wait(w.epoll.get(), ev, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (int i = 0; i < ready; ++i) {
      if (ev[i].data.u64 == 1) {  // Stop: libfuse sees the session exited
        errno = EINTR;
        return -1;
      }
    }
    // The device is non-blocking: a worker that epoll woke may still find
    // the request taken by one that was between requests (EAGAIN).
    n = ::read(fd, buf, len);
    if (n >= 0 || errno != EAGAIN) break;
  }
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT) {
      self->init_unique_.store(in->unique);
    } else if (in->opcode == FUSE_WRITE &&
               static_cast<size_t>(n) >= sizeof(fuse_in_header) +
                                             offsetof(fuse_write_in, write_flags) +
                                             sizeof(uint32_t)) {
      uint32_t write_flags;
      std::memcpy(&write_flags,
                  static_cast<const char*>(buf) + sizeof(fuse_in_header) +
                      offsetof(fuse_write_in, write_flags),
                  sizeof(write_flags));
      tls_kill_suidgid = (write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
    }
  }
  return n;
}

ssize_t FuseMount::Impl::WriteDevice(int fd, iovec* iov, int count, void* userdata) {
  Impl* self = static_cast<Impl*>(userdata);
  const uint64_t init = self->init_unique_.load();
  if (init != 0 && count >= 2 && iov[0].iov_len == sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags2) + sizeof(uint32_t)) {
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    if (out->unique == init && out->error == 0) {
      auto* reply = static_cast<fuse_init_out*>(iov[1].iov_base);
      // Only with FUSE_INIT_EXT does the kernel read flags2; it offers the
      // flag itself (Linux 6.6 and later) and ignores it otherwise.
      if (reply->flags & FUSE_INIT_EXT) reply->flags2 |= kDirectIoAllowMmapFlags2;
      self->init_unique_.store(0);
    }
  }
  return ::writev(fd, iov, count);
}

void FuseMount::Impl::Worker(int index) {
  fuse_buf buf{};
  while (!fuse_session_exited(se_)) {
    int n = fuse_session_receive_buf(se_, &buf);
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n <= 0) {
      // ENODEV (libfuse turns it into 0): unmounted under us, e.g. by an
      // administrator's umount; the volume is still served on the socket.
      fuse_session_exit(se_);
      if (n < 0 && n != -ENODEV) {
        Log().error("volume '{}': FUSE worker {}: reading {}: {}; no longer served there", name_,
                    index, mount_point_, ErrnoName(-n));
      } else if (!stopping_.load() && !lost_logged_.exchange(true)) {
        Log().warn("volume '{}': {} was unmounted from outside; no longer served there", name_,
                   mount_point_);
      }
      break;
    }
    fuse_session_process_buf(se_, &buf);
  }
  std::free(buf.mem);
  workers_[index]->done = true;
}

// Resolved once: the checks, the mount, the messages and the unmount then
// all concern the same directory, whatever a symbolic link on the way
// points to later.
Status FuseMount::Impl::PrepareMountPoint() {
  char* resolved = realpath(mount_point_.c_str(), nullptr);
  if (resolved == nullptr) return ErrnoStatus(errno, "mount point " + mount_point_);
  const std::string given = mount_point_;
  mount_point_ = resolved;
  std::free(resolved);
  if (mount_point_ != given) Log().info("mount point {} is {}", given, mount_point_);
  if (mount_point_ == "/") return Status(EINVAL, "mount point " + given + " is the root");
  ZF_RETURN_IF_ERROR(CheckAncestorsSafe(mount_point_));
  struct stat mst {};
  if (lstat(mount_point_.c_str(), &mst) != 0) {
    if (errno != ENOTCONN) return ErrnoStatus(errno, "mount point " + mount_point_);
    // A zfiled that died left its mount behind: nobody serves it any more.
    Log().warn("{}: a stale FUSE mount (ENOTCONN), from a daemon that died; detaching it",
               mount_point_);
    ZF_RETURN_IF_ERROR(LazyUnmount(mount_point_).WithContext("cleaning up the stale mount"));
    if (lstat(mount_point_.c_str(), &mst) != 0) {
      return ErrnoStatus(errno, "mount point " + mount_point_ + " after detaching a stale mount");
    }
  }
  if (!S_ISDIR(mst.st_mode)) {
    return Status(ENOTDIR, "mount point " + mount_point_ + " is not a directory");
  }
  return CheckEmptyDirectory(mount_point_);
}

Status FuseMount::Impl::Start() {
  ZF_RETURN_IF_ERROR(CheckFuseAvailable());
  ZF_RETURN_IF_ERROR(PrepareMountPoint());
  ZF_RETURN_IF_ERROR(BuildTree());
  maybe_cached_ = std::make_unique<std::atomic<bool>[]>(nodes_.size());
  if (long ps = sysconf(_SC_PAGESIZE); ps > 0) page_size_ = ps;
  if (uint32_t bs = vol_->Info().block_size; bs != 0) block_size_ = bs;
  wake_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return ErrnoStatus(errno, "eventfd");

  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = OpInit;
    o.lookup = OpLookup;
    o.getattr = OpGetattr;
    o.setattr = OpSetattr;
    o.readdir = OpReaddir;
    o.open = OpOpen;
    o.read = OpRead;
    o.write = OpWrite;
    o.flush = OpFlush;
    o.release = OpRelease;
    o.fsync = OpFsync;
    o.statfs = OpStatfs;
    o.mknod = OpMknod;
    o.mkdir = OpMkdir;
    o.unlink = OpUnlink;
    o.rmdir = OpUnlink;
    o.rename = OpRename;
    o.symlink = OpSymlink;
    o.link = OpLink;
    o.create = OpCreate;
    return o;
  }();
  // default_permissions: the kernel checks mode/uid/gid as for any file
  // system. allow_other: the volume is for every user (as root only; a user
  // needs user_allow_other in /etc/fuse.conf for it).
  std::string opts = "fsname=zfile:" + name_ + ",subtype=zfile,default_permissions";
  if (geteuid() == 0) opts += ",allow_other";
  std::vector<std::string> args_s = {"zfiled", "-o", opts};
  std::vector<char*> argv;
  for (std::string& a : args_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  se_ = fuse_session_new(&args, &ops, sizeof(ops), this);
  fuse_opt_free_args(&args);
  if (se_ == nullptr) return Status(EINVAL, "fuse_session_new failed (options: " + opts + ")");
  if (fuse_session_mount(se_, mount_point_.c_str()) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    return Status(EIO, "cannot mount FUSE on " + mount_point_ +
                           " (libfuse says why on stderr; is it a directory you may mount on?)");
  }
  mounted_ = true;
  const int dev_fd = fuse_session_fd(se_);
  const int fl = fcntl(dev_fd, F_GETFL);
  if (fl < 0 || fcntl(dev_fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "making /dev/fuse non-blocking");
  }
  fuse_custom_io io{};
  io.read = ReadDevice;
  io.writev = WriteDevice;
  if (int err = fuse_session_custom_io(se_, &io, dev_fd); err != 0) {
    return ErrnoStatus(-err, "fuse_session_custom_io");
  }
  notifier_ = std::thread([this] { Notifier(); });
  for (int i = 0; i < kWorkers; ++i) workers_.push_back(std::make_unique<WorkerThread>());
  for (int i = 0; i < kWorkers; ++i) workers_[i]->thread = std::thread([this, i] { Worker(i); });
  vol_->SetChangeObserver(this);
  Log().info("volume '{}' mounted on {} (FUSE)", name_, mount_point_);
  return Status();
}

Status FuseMount::Impl::Stop(std::chrono::steady_clock::time_point began) {
  if (stopped_) return stop_status_;
  stopped_ = true;
  if (se_ == nullptr) return Status();
  vol_->SetChangeObserver(nullptr);
  // One bound for the whole: the notifier may itself wait for the workers
  // (the kernel writes a dirty page back before dropping it). It is the
  // daemon's, counted from `began`, but this mount gets a grace past it
  // should the steps before have used it up.
  const auto grace =
      std::min<std::chrono::steady_clock::duration>(stop_timeout_ / 4, kMaxStopGrace);
  const auto deadline = std::max(began + stop_timeout_, std::chrono::steady_clock::now() + grace);
  auto wait_until_done = [deadline](auto done) {
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  };
  {
    std::lock_guard<std::mutex> lock(inval_mu_);
    inval_stop_ = true;
  }
  inval_cv_.notify_all();
  // The notifier first, while the workers still serve what it may cause.
  bool done = !notifier_.joinable() || wait_until_done([this] { return notifier_done_.load(); });
  // Then the workers (each finishes the request it serves), then the
  // unmount, so that the device descriptor is not closed under them.
  stopping_ = true;
  fuse_session_exit(se_);
  uint64_t one = 1;
  if (write(wake_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
    Log().error("volume '{}': waking the FUSE workers: {}", name_, ErrnoName(errno));
  }
  done = wait_until_done([this] {
           return std::all_of(workers_.begin(), workers_.end(),
                              [](const auto& w) { return w->done.load(); });
         }) &&
         done;
  if (!done) {
    const auto busy = std::count_if(workers_.begin(), workers_.end(),
                                    [](const auto& w) { return !w->done.load(); });
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
    Log().error(
        "volume '{}': {} FUSE request(s) still being served {} ms after stopping began (stop "
        "timeout {} ms); abandoning them (the mount point is detached)",
        name_, busy + (notifier_done_.load() || !notifier_.joinable() ? 0 : 1), waited.count(),
        stop_timeout_.count());
    // They may be inside the engine: nothing they use may go, neither the
    // session and its descriptor (the reply would go to whatever reuses
    // the number) nor this object nor the volume. The kernel aborts the
    // connection when the process ends.
    Status s = LazyUnmount(mount_point_);
    if (!s.ok()) Log().error("volume '{}': {}", name_, s.ToString());
    for (auto& w : workers_) w->thread.detach();
    if (notifier_.joinable()) notifier_.detach();
    stop_status_ = Status(EBUSY, "FUSE requests on " + mount_point_ + " did not end within " +
                                     std::to_string(stop_timeout_.count()) + " ms");
    return stop_status_;
  }
  if (notifier_.joinable()) notifier_.join();
  for (auto& w : workers_) w->thread.join();
  workers_.clear();
  // Lazy: programs with files open keep them (they get ENOTCONN from now
  // on), the name is gone at once.
  if (mounted_) fuse_session_unmount(se_);
  fuse_session_destroy(se_);
  se_ = nullptr;
  std::lock_guard<std::mutex> lock(handles_mu_);
  if (!handles_.empty()) {
    Log().info("volume '{}': closing {} file(s) still open through {}", name_, handles_.size(),
               mount_point_);
  }
  for (FileHandle* h : handles_) delete h;
  handles_.clear();
  Log().info("volume '{}': unmounted {} (FUSE)", name_, mount_point_);
  return Status();
}

Result<std::unique_ptr<FuseMount>> FuseMount::Start(const std::string& name, Volume* vol,
                                                    const std::string& mount_point,
                                                    std::chrono::milliseconds stop_timeout) {
  auto impl = std::make_unique<Impl>(name, vol, mount_point, stop_timeout);
  ZF_RETURN_IF_ERROR(impl->Start().WithContext("volume '" + name + "'"));
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(impl)));
}

FuseMount::FuseMount(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FuseMount::~FuseMount() {
  // Abandoned workers still use it.
  if (!Stop().ok()) (void)impl_.release();
}
Status FuseMount::Stop() { return impl_->Stop(std::chrono::steady_clock::now()); }
Status FuseMount::Stop(std::chrono::steady_clock::time_point began) { return impl_->Stop(began); }
const std::string& FuseMount::mount_point() const { return impl_->mount_point(); }

}  // namespace zfile::daemon
