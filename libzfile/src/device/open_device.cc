#include <cerrno>
#include <string>

#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/zbd_device.h"
#include "device/zoned_device.h"

namespace zfile {

Result<std::unique_ptr<ZonedDevice>> OpenDevice(std::string_view text) {
  ZF_ASSIGN_OR_RETURN(Uri uri, Uri::Parse(text));
  Result<std::unique_ptr<ZonedDevice>> dev = Status(EINVAL, "unreachable");
  if (uri.scheme == "mem") {
    dev = OpenMemDevice(uri);
  } else if (uri.scheme == "emu") {
    dev = OpenEmuDevice(uri);
  } else if (uri.scheme == "zbd") {
    dev = OpenZbdDevice(uri);
  } else {
    return Status(EINVAL, "unknown device scheme '" + uri.scheme + "' in '" + std::string(text) +
                              "': expected mem:, emu: or zbd:");
  }
  if (!dev.ok()) return dev.status().WithContext(std::string(text));
  return dev;
}

}  // namespace zfile
