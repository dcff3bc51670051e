// The on-disk superblock, in the kernel zonefs format.
//
// zfile and kernel zonefs share one format (SPEC section 3): a device made by
// `zfile mkfs` mounts as zonefs and one made by mkzonefs mounts in zfile. The
// superblock is the only metadata; everything else comes from the zone report.
//
// Layout (4096 bytes at byte 0 of zone 0, integers little-endian):
//
//   offset  size  field
//        0     4  magic     0x5a4f4653 ("SFOZ" on disk)
//        4     4  crc       CRC32 of the whole block with this field zeroed
//        8    64  label     NUL-padded; no terminator when all 64 bytes used
//       72    16  uuid
//       88     8  features  bit 0 aggr_cnv, 1 uid, 2 gid, 3 perm
//       96     4  uid       used only with the uid feature
//      100     4  gid       used only with the gid feature
//      104     4  perm      used only with the perm feature
//      108  3988  reserved  must be zero
//
// The CRC is the kernel's crc32_le: reflected polynomial 0xEDB88320, seed
// 0xFFFFFFFF, no final inversion (so it is the bitwise NOT of the zlib/PNG
// CRC-32 of the same bytes).
//
// libblkid (util-linux 2.38, and later versions seen so far) reads this
// block with a 32-byte label and the UUID at offset 40: it shows only the
// first 32 bytes of the label, and no UUID (or label bytes 32-47 as one)
// for what the kernel and mkzonefs write. The kernel's layout above wins.
//
// Decode accepts exactly what the kernel's zonefs_read_super accepts, with one
// deliberate exception (perm with bits above 07777, see Decode), and fails
// with EINVAL, the errno the kernel's mount returns for every superblock
// problem.
#ifndef ZFILE_FORMAT_SUPERBLOCK_H_
#define ZFILE_FORMAT_SUPERBLOCK_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "device/zoned_device.h"

namespace zfile {

inline constexpr uint32_t kZonefsMagic = 0x5a4f4653;
inline constexpr size_t kSuperblockSize = 4096;
inline constexpr size_t kLabelSize = 64;
inline constexpr size_t kUuidSize = 16;

// Byte offsets of the fields, for tests and tools that look at raw blocks.
inline constexpr size_t kMagicOffset = 0;
inline constexpr size_t kCrcOffset = 4;
inline constexpr size_t kLabelOffset = 8;
inline constexpr size_t kUuidOffset = 72;
inline constexpr size_t kFeaturesOffset = 88;
inline constexpr size_t kUidOffset = 96;
inline constexpr size_t kGidOffset = 100;
inline constexpr size_t kPermOffset = 104;
inline constexpr size_t kReservedOffset = 108;

// Feature bits of the features field (the kernel's ZONEFS_F_*).
inline constexpr uint64_t kFeatureAggrCnv = 1ULL << 0;
inline constexpr uint64_t kFeatureUid = 1ULL << 1;
inline constexpr uint64_t kFeatureGid = 1ULL << 2;
inline constexpr uint64_t kFeaturePerm = 1ULL << 3;
inline constexpr uint64_t kKnownFeatures =
    kFeatureAggrCnv | kFeatureUid | kFeatureGid | kFeaturePerm;

// What files get when the superblock does not say (the kernel's defaults).
inline constexpr uint32_t kDefaultUid = 0;
inline constexpr uint32_t kDefaultGid = 0;
inline constexpr uint16_t kDefaultPerm = 0640;
// Highest perm value accepted: permission bits plus setuid/setgid/sticky.
inline constexpr uint32_t kMaxPerm = 07777;
// The kernel refuses this uid/gid (make_kuid/make_kgid give an invalid id).
inline constexpr uint32_t kInvalidId = 0xFFFFFFFF;

struct Superblock {
  // At most kLabelSize bytes, no NUL inside. The kernel ignores it; blkid
  // shows it as LABEL.
  std::string label;
  std::array<uint8_t, kUuidSize> uuid{};
  // Contiguous conventional zones form one file.
  bool aggr_cnv = false;
  // Set: the feature bit is set and files get this value. Unset: the kernel
  // default (uid 0, gid 0, perm 0640).
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint16_t> perm;

  uint64_t features() const;
  uint32_t file_uid() const { return uid.value_or(kDefaultUid); }
  uint32_t file_gid() const { return gid.value_or(kDefaultGid); }
  uint16_t file_perm() const { return perm.value_or(kDefaultPerm); }
  // "8-4-4-4-12" lower-case hex, as uuid_unparse and blkid print it.
  std::string UuidString() const;

  // Checks what Encode cannot represent or the kernel would refuse: label
  // too long or with a NUL, uid/gid 0xFFFFFFFF, perm above 07777. EINVAL.
  Status Validate() const;

  // The 4096-byte block, CRC included. Precondition: Validate() is OK (a
  // longer label is cut at kLabelSize bytes). Fields whose feature is unset
  // are written with the defaults (uid 0, gid 0, perm 0640), as mkzonefs
  // writes them, so blocks from both tools differ only in UUID and label.
  std::vector<uint8_t> Encode() const;

  // Parses a block. `bytes` must be at least kSuperblockSize long (only the
  // first kSuperblockSize bytes are looked at). Checks, in the kernel's
  // order: magic, CRC, unknown feature bits, uid/gid validity, then reserved
  // bytes; plus one check the kernel lacks: perm (with the perm feature) must
  // not exceed 07777, because the kernel ORs it into the file mode, where
  // higher bits would change the file type. Every failure is EINVAL.
  static Result<Superblock> Decode(std::span<const uint8_t> bytes);
};

// The kernel's crc32_le(seed, data): reflected 0xEDB88320, no inversion.
uint32_t Crc32Le(uint32_t seed, std::span<const uint8_t> data);

// The CRC the superblock field must hold: Crc32Le(0xFFFFFFFF, block with the
// crc field zeroed). `block` is kSuperblockSize bytes.
uint32_t SuperblockCrc(std::span<const uint8_t> block);

// A random (version 4) UUID, as libuuid's uuid_generate gives mkzonefs.
std::array<uint8_t, kUuidSize> RandomUuid();

// Parses "8-4-4-4-12" hex (either case). EINVAL naming the text otherwise.
Result<std::array<uint8_t, kUuidSize>> ParseUuid(std::string_view text);

// Reads and decodes the superblock of `dev` (kSuperblockSize bytes at byte
// 0, a whole number of blocks for 512- and 4096-byte devices). Errors say
// what is on the device instead: an unformatted device (zone 0 reads as
// zeros, or is an empty sequential zone) is EINVAL "device is not formatted
// (...); run 'zfile mkfs'"; a corrupt block is Decode's error; an offline
// zone 0 or a failed read keeps the device's errno (EIO).
Result<Superblock> ReadSuperblock(ZonedDevice* dev);

}  // namespace zfile

#endif  // ZFILE_FORMAT_SUPERBLOCK_H_
