#include "format/superblock.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "device/zone.h"

namespace zfile {
namespace {

constexpr uint32_t kCrcPolyReflected = 0xEDB88320;

// The byte-wise table for kCrcPolyReflected, built once at compile time.
constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ ((c & 1) ? kCrcPolyReflected : 0);
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

// Little-endian field access: the format is little-endian on every host.
uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t Load64(const uint8_t* p) { return uint64_t{Load32(p)} | uint64_t{Load32(p + 4)} << 32; }
void Store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Store64(uint8_t* p, uint64_t v) {
  Store32(p, static_cast<uint32_t>(v));
  Store32(p + 4, static_cast<uint32_t>(v >> 32));
}

Status Invalid(std::string message) { return Status(EINVAL, std::move(message)); }

// "0x5a4f4653" (at least `digits` hex digits), or without the prefix.
std::string Hex(uint64_t value, int digits, bool prefix = true) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%s%0*llx", prefix ? "0x" : "", digits,
                static_cast<unsigned long long>(value));
  return buf;
}

// "0640": permissions read best in octal, with the leading 0.
std::string Octal(uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%#o", value);
  return buf;
}

// The feature bits named, for messages: "aggr_cnv, uid".
std::string FeatureNames(uint64_t features) {
  static constexpr struct {
    uint64_t bit;
    const char* name;
  } kNames[] = {{kFeatureAggrCnv, "aggr_cnv"},
                {kFeatureUid, "uid"},
                {kFeatureGid, "gid"},
                {kFeaturePerm, "perm"}};
  std::string out;
  for (const auto& n : kNames) {
    if ((features & n.bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += n.name;
  }
  return out;
}

// Heap buffer aligned for O_DIRECT (zbd: backend) on any logical block size.
struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBlock = std::unique_ptr<uint8_t, AlignedFree>;
AlignedBlock AllocBlock() {
  return AlignedBlock(static_cast<uint8_t*>(std::aligned_alloc(kSuperblockSize, kSuperblockSize)));
}

}  // namespace

uint32_t Crc32Le(uint32_t seed, std::span<const uint8_t> data) {
  uint32_t crc = seed;
  for (uint8_t byte : data) crc = (crc >> 8) ^ kCrcTable[(crc ^ byte) & 0xFF];
  return crc;
}

uint32_t SuperblockCrc(std::span<const uint8_t> block) {
  // The kernel zeroes the stored CRC in its copy before checksumming the
  // whole 4096 bytes; feeding four zero bytes in place of the field is the
  // same computation without a copy.
  static constexpr uint8_t kZeroCrc[4] = {0, 0, 0, 0};
  uint32_t crc = Crc32Le(0xFFFFFFFF, block.first(kCrcOffset));
  crc = Crc32Le(crc, kZeroCrc);
  return Crc32Le(crc, block.subspan(kCrcOffset + 4, kSuperblockSize - kCrcOffset - 4));
}

uint64_t Superblock::features() const {
  uint64_t f = 0;
  if (aggr_cnv) f |= kFeatureAggrCnv;
  if (uid) f |= kFeatureUid;
  if (gid) f |= kFeatureGid;
  if (perm) f |= kFeaturePerm;
  return f;
}

std::string Superblock::UuidString() const {
  std::string out;
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += Hex(uuid[i], 2, /*prefix=*/false);
  }
  return out;
}

Status Superblock::Validate() const {
  if (label.size() > kLabelSize) {
    return Invalid("label '" + label + "' is " + std::to_string(label.size()) +
                   " bytes long: at most " + std::to_string(kLabelSize) + " bytes fit");
  }
  if (label.find('\0') != std::string::npos) {
    return Invalid("label contains a NUL byte: the label field is NUL-padded text");
  }
  if (uid && *uid == kInvalidId) {
    return Invalid("uid " + std::to_string(*uid) +
                   " is not a valid user id (the kernel refuses it)");
  }
  if (gid && *gid == kInvalidId) {
    return Invalid("gid " + std::to_string(*gid) +
                   " is not a valid group id (the kernel refuses it)");
  }
  if (perm && *perm > kMaxPerm) {
    return Invalid("perm " + Octal(*perm) + " is not a permission mode: at most 07777");
  }
  return Status();
}

std::vector<uint8_t> Superblock::Encode() const {
  std::vector<uint8_t> block(kSuperblockSize, 0);
  uint8_t* p = block.data();
  Store32(p + kMagicOffset, kZonefsMagic);
  std::memcpy(p + kLabelOffset, label.data(), std::min(label.size(), kLabelSize));
  std::memcpy(p + kUuidOffset, uuid.data(), kUuidSize);
  Store64(p + kFeaturesOffset, features());
  Store32(p + kUidOffset, file_uid());
  Store32(p + kGidOffset, file_gid());
  Store32(p + kPermOffset, file_perm());
  Store32(p + kCrcOffset, SuperblockCrc(block));
  return block;
}

Result<Superblock> Superblock::Decode(std::span<const uint8_t> bytes) {
  if (bytes.size() < kSuperblockSize) {
    return Invalid("superblock is " + std::to_string(bytes.size()) +
                   " bytes: a zonefs superblock is " + std::to_string(kSuperblockSize) + " bytes");
  }
  const uint8_t* p = bytes.data();
  const uint32_t magic = Load32(p + kMagicOffset);
  if (magic != kZonefsMagic) {
    return Invalid("no zonefs superblock: bad magic " + Hex(magic, 8) + " (expected " +
                   Hex(kZonefsMagic, 8) + ")");
  }
  const uint32_t stored_crc = Load32(p + kCrcOffset);
  const uint32_t crc = SuperblockCrc(bytes.first(kSuperblockSize));
  if (crc != stored_crc) {
    return Invalid("corrupt zonefs superblock: checksum mismatch (stored " + Hex(stored_crc, 8) +
                   ", computed " + Hex(crc, 8) + ")");
  }
  const uint64_t features = Load64(p + kFeaturesOffset);
  if ((features & ~kKnownFeatures) != 0) {
    return Invalid("zonefs superblock has unknown feature bits " +
                   Hex(features & ~kKnownFeatures, 1) + " (known: " + Hex(kKnownFeatures, 1) +
                   ", " + FeatureNames(kKnownFeatures) + "): made by a newer mkzonefs, or corrupt");
  }
  Superblock sb;
  sb.aggr_cnv = (features & kFeatureAggrCnv) != 0;
  if (features & kFeatureUid) {
    sb.uid = Load32(p + kUidOffset);
    if (*sb.uid == kInvalidId) {
      return Invalid("zonefs superblock has an invalid uid feature (uid " +
                     std::to_string(*sb.uid) + ")");
    }
  }
  if (features & kFeatureGid) {
    sb.gid = Load32(p + kGidOffset);
    if (*sb.gid == kInvalidId) {
      return Invalid("zonefs superblock has an invalid gid feature (gid " +
                     std::to_string(*sb.gid) + ")");
    }
  }
  if (features & kFeaturePerm) {
    const uint32_t perm = Load32(p + kPermOffset);
    if (perm > kMaxPerm) {
      return Invalid("zonefs superblock has an invalid perm feature (" + Octal(perm) +
                     ": bits above 07777 would change the file type)");
    }
    sb.perm = static_cast<uint16_t>(perm);
  }
  for (size_t i = kReservedOffset; i < kSuperblockSize; ++i) {
    if (p[i] != 0) {
      return Invalid("corrupt zonefs superblock: reserved area is in use (byte " +
                     std::to_string(i) + " is " + Hex(p[i], 2) + ", must be 0)");
    }
  }
  const char* label = reinterpret_cast<const char*>(p + kLabelOffset);
  sb.label.assign(label, strnlen(label, kLabelSize));
  std::memcpy(sb.uuid.data(), p + kUuidOffset, kUuidSize);
  return sb;
}

std::array<uint8_t, kUuidSize> RandomUuid() {
  // std::random_device reads the kernel's random source on Linux, which is
  // what libuuid uses for random UUIDs.
  std::random_device rd;
  std::array<uint8_t, kUuidSize> uuid;
  for (size_t i = 0; i < kUuidSize; i += 4) {
    const uint32_t r = rd();
    for (size_t j = 0; j < 4; ++j) uuid[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0F) | 0x40);  // version 4
  uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return uuid;
}

Result<std::array<uint8_t, kUuidSize>> ParseUuid(std::string_view text) {
  auto bad = [&text] {
    return Invalid("'" + std::string(text) +
                   "' is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
  };
  if (text.size() != 36) return bad();
  std::array<uint8_t, kUuidSize> uuid{};
  size_t pos = 0;
  for (size_t i = 0; i < kUuidSize; ++i) {
    if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
      if (text[pos] != '-') return bad();
      ++pos;
    }
    int value = 0;
    for (int k = 0; k < 2; ++k, ++pos) {
      const char c = text[pos];
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return bad();
      }
      value = value * 16 + digit;
    }
    uuid[i] = static_cast<uint8_t>(value);
  }
  return uuid;
}

Result<Superblock> ReadSuperblock(ZonedDevice* dev) {
  const DeviceInfo& info = dev->info();
  if (info.nr_zones == 0 || info.zone_size < kSuperblockSize) {
    return Invalid(info.uri + ": zones of " + std::to_string(info.zone_size) +
                   " bytes cannot hold the " + std::to_string(kSuperblockSize) +
                   "-byte zonefs superblock");
  }
  ZF_ASSIGN_OR_RETURN(ZoneInfo zone0, dev->ReportZone(0));
  if (zone0.cond == ZoneCondition::kOffline) {
    return Status(EIO, info.uri + ": zone 0, which holds the superblock, is offline");
  }
  // A sequential zone 0 reads as zeros above its write pointer, so a
  // superblock can only be there if the write pointer is past it (mkfs
  // finishes the zone). Saying so is clearer than "bad magic 0x00000000".
  // Read-only zones have no valid write pointer: read them and see.
  if (zone0.sequential() && zone0.cond != ZoneCondition::kFull &&
      zone0.cond != ZoneCondition::kReadOnly && zone0.wp < zone0.start + kSuperblockSize) {
    return Invalid(info.uri + ": device is not formatted (zone 0 is a sequential zone with " +
                   std::to_string(zone0.wp - zone0.start) +
                   " bytes written, no zonefs superblock); run 'zfile mkfs'");
  }
  AlignedBlock block = AllocBlock();
  if (!block) return Status(ENOMEM, "cannot allocate a superblock buffer");
  Result<size_t> read = dev->Read(0, block.get(), kSuperblockSize);
  if (!read.ok()) return read.status().WithContext(info.uri + ": cannot read the superblock");
  const std::span<const uint8_t> bytes(block.get(), kSuperblockSize);
  bool all_zero = true;
  for (uint8_t b : bytes) all_zero = all_zero && b == 0;
  if (all_zero) {
    return Invalid(info.uri +
                   ": device is not formatted (no zonefs superblock in zone 0); run 'zfile mkfs'");
  }
  Result<Superblock> sb = Superblock::Decode(bytes);
  if (!sb.ok()) return sb.status().WithContext(info.uri);
  return sb;
}

}  // namespace zfile
