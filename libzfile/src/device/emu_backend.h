// The emu: backend: an emulated zoned device in a directory, in the kernel
// zloop layout. DIR/cnv-NNNNNN (zone-sized) for conventional zones,
// DIR/seq-NNNNNN (file size = write pointer) for sequential zones, NNNNNN
// being the zone number; DIR/geometry holds the geometry, DIR/conditions the
// zones made read-only or offline. The directory alone reopens the device
// with its zone state: partially written zones come back closed, as after a
// power cycle.
#ifndef ZFILE_DEVICE_EMU_BACKEND_H_
#define ZFILE_DEVICE_EMU_BACKEND_H_

#include <memory>
#include <string>

#include "base/status.h"
#include "device/emulated_geometry.h"
#include "device/zoned_device.h"

namespace zfile {

// Creates an empty emulated device in `dir` (created if missing; if it
// exists it must not already hold a device or zone files). EEXIST if a device
// is already there, EINVAL for a bad geometry, errno of the failing call
// otherwise. Nothing is left behind on failure.
Status CreateEmuDevice(const std::string& dir, const EmulatedGeometry& geometry);

// Opens "emu:DIR[?workers=N&fail_read=..]" (parsed URI).
Result<std::unique_ptr<ZonedDevice>> OpenEmuDevice(const Uri& uri);

// Opens "mem:?size=..&zone_size=..".
Result<std::unique_ptr<ZonedDevice>> OpenMemDevice(const Uri& uri);

}  // namespace zfile

#endif  // ZFILE_DEVICE_EMU_BACKEND_H_
