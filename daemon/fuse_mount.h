// FuseMount: one volume as a zonefs-like tree (cnv/, seq/) on a FUSE mount
// point, for every program (SPEC section 7, FUSE front end). Its one job is
// to map the libfuse3 low-level operations onto the engine's Volume:
//  - names, inode numbers (st_ino as zonefs numbers them), sizes, modes and
//    owners come from the engine; nothing is cached by the kernel for long
//    (attributes not at all: sequential sizes move with every write);
//  - the kernel checks permissions itself (default_permissions) against
//    the mode/uid/gid the engine reports;
//  - create, unlink, rename, mkdir, ... are EPERM, as zonefs;
//  - every open is direct_io, so reads and writes reach the engine with the
//    caller's open flags (O_DIRECT, O_SYNC/O_DSYNC, O_APPEND, O_TRUNC) and
//    the kernel's page cache holds no file data, except pages of mappings
//    (private or shared): whenever a file's data changes, whatever path
//    changed it, FuseMount asks the kernel to drop those
//    (notify_inval_inode);
//  - requests are served by a multi-threaded session loop, with no lock of
//    its own around the engine; files are opened with
//    FOPEN_PARALLEL_DIRECT_WRITES, so that the kernel does not serialise
//    direct writes to one file either.
//
// Lifetime (RAII): Start mounts and starts serving; the destructor (or
// Stop) unmounts (lazily, so open files do not keep it), stops the loop,
// and closes every file the kernel still had open, so that the Volume can
// then be unmounted. The Volume must outlive the FuseMount, and outlives
// it for good if Stop had to abandon requests (see Stop).
#ifndef ZFILE_DAEMON_FUSE_MOUNT_H_
#define ZFILE_DAEMON_FUSE_MOUNT_H_

#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"
#include "engine/volume.h"

namespace zfile::daemon {

class FuseMount {
 public:
  // Mounts `vol` (named `name`, shown as the file system's source
  // "zfile:NAME") on the directory `mount_point` and serves it. The path is
  // resolved once, here (symbolic links included), and must be an empty
  // directory; as root, every directory above it must be root's and
  // writable by nobody else (or sticky), since whoever may rename one could
  // move the mount. A stale mount left there by a daemon that died
  // (ENOTCONN) is detached first. Stop waits up to `stop_timeout` for the
  // requests being served.
  static Result<std::unique_ptr<FuseMount>> Start(
      const std::string& name, Volume* vol, const std::string& mount_point,
      std::chrono::milliseconds stop_timeout = std::chrono::milliseconds(10000));
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Unmounts and stops serving; idempotent. Requests being served are
  // waited for until the stop timeout has passed since `began` (the
  // daemon's shutdown, whose other steps share the timeout; now by
  // default), and for at least a quarter of the timeout (at most 1 s)
  // from the call. If one is still inside the engine then (a hung device),
  // the mount point is detached, the serving threads and everything they
  // use are left as they are (leaked: the Volume must then never be
  // destroyed), and EBUSY is returned: the process must end without
  // running destructors (_exit).
  Status Stop();
  Status Stop(std::chrono::steady_clock::time_point began);

  // The directory mounted on, as resolved by Start.
  const std::string& mount_point() const;

  class Impl;

 private:
  explicit FuseMount(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether /dev/fuse can be used by this process (for a clear error before
// trying to mount).
Status CheckFuseAvailable();

}  // namespace zfile::daemon

#endif  // ZFILE_DAEMON_FUSE_MOUNT_H_
