// mkfs: makes a zonefs file system on a zoned device, as mkzonefs does.
//
// What mkzonefs (zonefs-tools) does, and so what Mkfs does:
//  1. refuse, unless forced, a device that already holds something;
//  2. reset every sequential zone (conventional zones are left as they are);
//  3. write the 4096-byte superblock at byte 0 of zone 0 (random UUID;
//     files default to uid 0, gid 0, perm 0640);
//  4. if zone 0 is sequential, finish it, so that its write pointer is past
//     the superblock, the zone holds no open/active resource, and nothing
//     can be appended behind the superblock;
//  5. flush the device's write cache.
// Mkfs also reads the superblock back and compares it with what it wrote.
//
// Where Mkfs differs: mkzonefs asks libblkid whether the device holds a
// known file system or partition table; Mkfs (with no libblkid behind a
// ZonedDevice) refuses when the superblock block has any non-zero byte or
// any sequential zone holds data, and names what it found.
#ifndef ZFILE_FORMAT_MKFS_H_
#define ZFILE_FORMAT_MKFS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "device/zoned_device.h"
#include "format/superblock.h"

namespace zfile {

struct MkfsOptions {
  std::string label;  // at most kLabelSize (64) bytes
  bool aggr_cnv = false;
  // Unset: the feature bit stays clear and files get the kernel default.
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint16_t> perm;
  // Overwrite whatever the device holds (mkzonefs -f).
  bool force = false;
  // Unset: a random UUID. Set by tests and by anyone re-creating a volume
  // that must keep its identity.
  std::optional<std::array<uint8_t, kUuidSize>> uuid;
};

// Applies mkzonefs's -o feature list to `opts`: comma-separated items
// "aggr_cnv", "uid=N", "gid=N" (decimal, 0-4294967294), "perm=OCTAL" (at
// most 07777); empty items are ignored, a repeated item wins over earlier
// ones. EINVAL naming the bad item; `opts` is unchanged on failure.
Status ParseMkfsFeatures(std::string_view text, MkfsOptions* opts);

// What Mkfs found and did, for the summary the CLI prints.
struct MkfsResult {
  Superblock superblock;
  uint32_t nr_zones = 0;
  uint32_t nr_conv_zones = 0;
  uint32_t nr_seq_zones = 0;
  uint32_t nr_readonly_zones = 0;
  uint32_t nr_offline_zones = 0;
  uint32_t nr_zones_reset = 0;  // sequential zones that held data and were reset
  bool zone0_sequential = false;
  size_t nr_cnv_files = 0;  // files of cnv/ and seq/ once mounted
  size_t nr_seq_files = 0;
};

// Formats `dev`. Checks come before any change, so a refusal changes
// nothing:
//  - options (Superblock::Validate): EINVAL;
//  - zone 0 offline (EIO) or read-only (EROFS): the superblock cannot be
//    written; no usable zone besides zone 0 (all offline): EINVAL;
//  - without opts.force: a zonefs superblock already there, any non-zero
//    byte in the superblock block, or a sequential zone holding data:
//    EEXIST, saying what was found and "use -f to overwrite".
// A failure after the first change (reset, write, finish, flush) returns
// the device's error with the step named; the device then holds no valid
// file system. `result` (may be null) is filled on success.
Status Mkfs(ZonedDevice* dev, const MkfsOptions& opts, MkfsResult* result = nullptr);

}  // namespace zfile

#endif  // ZFILE_FORMAT_MKFS_H_
