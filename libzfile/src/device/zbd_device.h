// The zbd: backend: a kernel zoned block device (null_blk zoned, SMR disk,
// ZNS block namespace). The kernel's zone ioctls (BLKREPORTZONE,
// BLK{RESET,OPEN,CLOSE,FINISH}ZONE: what libzbd wraps; see zbd_device.cc for
// why not libzbd itself) for zone information and management, io_uring with
// O_DIRECT for data.
#ifndef ZFILE_DEVICE_ZBD_DEVICE_H_
#define ZFILE_DEVICE_ZBD_DEVICE_H_

#include <memory>

#include "base/status.h"
#include "base/uri.h"
#include "device/zoned_device.h"

namespace zfile {

// Opens "zbd:/dev/X[?queue_depth=N]".
//
// queue_depth: I/O commands in flight at once (1-4096, default 64).
// The device is opened O_RDWR | O_DIRECT | O_EXCL: EBUSY while it is mounted
// or held exclusively elsewhere (a second open in the same process too).
// Other open errors: ENOENT (missing path), EACCES, ENOTBLK (not a block
// device), ENXIO (a block device that is not zoned).
//
// Behaviour beyond the common contract:
//  - Request buffers must be aligned to the logical block size (O_DIRECT);
//    a misaligned buffer fails with EINVAL.
//  - A write that would end past its zone's capacity, or run from a
//    conventional into a sequential zone, fails with EIO before anything
//    is written (split into max_io_bytes commands, the device would take
//    the first ones).
//  - EREMOTEIO from SCSI devices (ILLEGAL REQUEST, e.g. a write not at the
//    write pointer) is reported as EIO; other errnos are the kernel's.
//  - Reads above the write pointer return what the device returns: zeros
//    on SCSI (scsi_debug), 0xff bytes on null_blk (memory_backed=1).
//  - Zone state rules are the device's: SCSI accepts closing an empty zone
//    and opening or closing a full one, null_blk fails them with EIO.
//  - The device must not be destroyed from an on_complete callback.
Result<std::unique_ptr<ZonedDevice>> OpenZbdDevice(const Uri& uri);

}  // namespace zfile

#endif  // ZFILE_DEVICE_ZBD_DEVICE_H_
