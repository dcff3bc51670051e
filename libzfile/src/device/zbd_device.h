// The zbd: backend: a kernel zoned block device (null_blk zoned, SMR disk,
// ZNS block namespace). libzbd for zone information and management,
// io_uring with O_DIRECT for data.
#ifndef ZFILE_DEVICE_ZBD_DEVICE_H_
#define ZFILE_DEVICE_ZBD_DEVICE_H_

#include <memory>

#include "base/status.h"
#include "base/uri.h"
#include "device/zoned_device.h"

namespace zfile {

// Opens "zbd:/dev/X[?queue_depth=N]".
Result<std::unique_ptr<ZonedDevice>> OpenZbdDevice(const Uri& uri);

}  // namespace zfile

#endif  // ZFILE_DEVICE_ZBD_DEVICE_H_
