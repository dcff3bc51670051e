#include "format/mkfs.h"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "device/zone.h"
#include "format/layout.h"

namespace zfile {
namespace {

constexpr const char kKnownFeatureItems[] = "aggr_cnv, uid=N, gid=N, perm=OCTAL";

Status BadFeature(std::string_view item, const std::string& why) {
  return Status(EINVAL, "bad -o item '" + std::string(item) + "': " + why);
}

// Parses the value of uid=/gid=: decimal, and not the id the kernel refuses.
Result<uint32_t> ParseId(std::string_view item, std::string_view value, const char* what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v, 10);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || v >= kInvalidId) {
    return BadFeature(item, std::string(what) + " must be a decimal number from 0 to " +
                                std::to_string(kInvalidId - 1));
  }
  return static_cast<uint32_t>(v);
}

Result<uint16_t> ParsePerm(std::string_view item, std::string_view value) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v, 8);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || v > kMaxPerm) {
    return BadFeature(item, "perm must be an octal mode from 0 to 7777 (e.g. perm=0644)");
  }
  return static_cast<uint16_t>(v);
}

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};

// How much a sequential zone holds, in words: "12288 bytes written, closed".
std::string ZoneContents(const ZoneInfo& z) {
  if (z.cond == ZoneCondition::kFull) return "full";
  return std::to_string(z.wp - z.start) + " bytes written, " + std::string(ConditionName(z.cond));
}

// Sequential zones whose data a reset would discard. Read-only and offline
// zones are left out: their write pointer means nothing and no reset can
// touch them.
bool HoldsData(const ZoneInfo& z) {
  if (!z.sequential()) return false;
  switch (z.cond) {
    case ZoneCondition::kFull:
      return true;
    case ZoneCondition::kImplicitOpen:
    case ZoneCondition::kExplicitOpen:
    case ZoneCondition::kClosed:
      return z.wp > z.start;
    default:
      return false;
  }
}

// Without -f: what the device holds that formatting would destroy, as the
// message of an EEXIST Status, or OK when the device looks unused.
Status CheckUnused(ZonedDevice* dev, const std::vector<ZoneInfo>& zones) {
  const std::string& uri = dev->info().uri;
  std::vector<uint32_t> busy;
  for (uint32_t i = 0; i < zones.size(); ++i) {
    if (HoldsData(zones[i])) busy.push_back(i);
  }
  std::string zones_text;
  if (!busy.empty()) {
    zones_text = busy.size() == 1 ? "sequential zone " : "sequential zones ";
    zones_text += std::to_string(busy[0]) + " (" + ZoneContents(zones[busy[0]]) + ")";
    if (busy.size() > 1) {
      zones_text += " and " + std::to_string(busy.size() - 1) + " more hold data";
    } else {
      zones_text += " holds data";
    }
  }

  // A sequential zone 0 written short of a whole superblock holds none, and
  // what reads above its write pointer return is up to the device (zeros on
  // emulated devices, 0xFF on null_blk): do not read it.
  const ZoneInfo& zone0 = zones[0];
  if (zone0.sequential() && zone0.cond != ZoneCondition::kFull &&
      zone0.wp < zone0.start + kSuperblockSize) {
    if (zones_text.empty()) return Status();
    return Status(EEXIST, uri + ": " + zones_text + "; use -f to overwrite");
  }

  std::unique_ptr<uint8_t, AlignedFree> block(
      static_cast<uint8_t*>(std::aligned_alloc(kSuperblockSize, kSuperblockSize)));
  if (!block) return Status(ENOMEM, "cannot allocate a superblock buffer");
  Result<size_t> read = dev->Read(0, block.get(), kSuperblockSize);
  if (!read.ok()) {
    return read.status().WithContext(uri + ": cannot read zone 0 to check for existing data");
  }
  const std::span<const uint8_t> bytes(block.get(), kSuperblockSize);
  Result<Superblock> existing = Superblock::Decode(bytes);
  if (existing.ok()) {
    std::string what = "label '" + existing->label + "', UUID " + existing->UuidString();
    if (!zones_text.empty()) what += "; " + zones_text;
    return Status(EEXIST,
                  uri + " already holds a zonefs file system (" + what + "); use -f to overwrite");
  }
  size_t first_nonzero = kSuperblockSize;
  for (size_t i = 0; i < kSuperblockSize && first_nonzero == kSuperblockSize; ++i) {
    if (bytes[i] != 0) first_nonzero = i;
  }
  if (first_nonzero < kSuperblockSize) {
    std::string what = "zone 0 holds data: the superblock block has a non-zero byte at offset " +
                       std::to_string(first_nonzero) + " and is not a zonefs superblock (" +
                       existing.status().message() + ")";
    if (!zones_text.empty()) what += "; " + zones_text;
    return Status(EEXIST, uri + ": " + what + "; use -f to overwrite");
  }
  if (!zones_text.empty()) {
    return Status(EEXIST, uri + ": " + zones_text + "; use -f to overwrite");
  }
  return Status();
}

}  // namespace

Status ParseMkfsFeatures(std::string_view text, MkfsOptions* opts) {
  MkfsOptions parsed = *opts;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view item = text.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    if (key == "aggr_cnv") {
      if (eq != std::string_view::npos) return BadFeature(item, "aggr_cnv takes no value");
      parsed.aggr_cnv = true;
    } else if (key == "uid" || key == "gid") {
      if (eq == std::string_view::npos) {
        return BadFeature(item,
                          std::string(key) + " needs a value, e.g. " + std::string(key) + "=1000");
      }
      ZF_ASSIGN_OR_RETURN(uint32_t id, ParseId(item, value, key == "uid" ? "uid" : "gid"));
      (key == "uid" ? parsed.uid : parsed.gid) = id;
    } else if (key == "perm") {
      if (eq == std::string_view::npos)
        return BadFeature(item, "perm needs a value, e.g. perm=0644");
      ZF_ASSIGN_OR_RETURN(parsed.perm, ParsePerm(item, value));
    } else {
      return BadFeature(item, std::string("unknown feature (known: ") + kKnownFeatureItems + ")");
    }
  }
  *opts = std::move(parsed);
  return Status();
}

Status Mkfs(ZonedDevice* dev, const MkfsOptions& opts, MkfsResult* result) {
  const DeviceInfo& info = dev->info();
  const std::string& uri = info.uri;

  Superblock sb;
  sb.label = opts.label;
  sb.aggr_cnv = opts.aggr_cnv;
  sb.uid = opts.uid;
  sb.gid = opts.gid;
  sb.perm = opts.perm;
  ZF_RETURN_IF_ERROR(sb.Validate());

  std::vector<ZoneInfo> zones;
  ZF_RETURN_IF_ERROR(dev->ReportZones(0, 0, &zones).WithContext(uri + ": zone report failed"));
  ZF_ASSIGN_OR_RETURN(VolumeLayout layout, BuildLayout(zones, info.zone_size, opts.aggr_cnv));

  MkfsResult res;
  res.nr_zones = static_cast<uint32_t>(zones.size());
  for (const ZoneInfo& z : zones) {
    ++(z.sequential() ? res.nr_seq_zones : res.nr_conv_zones);
    if (z.cond == ZoneCondition::kReadOnly) ++res.nr_readonly_zones;
    if (z.cond == ZoneCondition::kOffline) ++res.nr_offline_zones;
    if (HoldsData(z)) ++res.nr_zones_reset;
  }
  res.nr_cnv_files = layout.cnv.size();
  res.nr_seq_files = layout.seq.size();

  const ZoneInfo& zone0 = zones[0];
  res.zone0_sequential = zone0.sequential();
  if (zone0.cond == ZoneCondition::kOffline) {
    return Status(EIO, uri + ": zone 0 is offline: the superblock cannot be written there");
  }
  if (zone0.cond == ZoneCondition::kReadOnly) {
    return Status(EROFS, uri + ": zone 0 is read-only: the superblock cannot be written there");
  }
  if (zone0.capacity < kSuperblockSize) {
    return Status(EINVAL, uri + ": zone 0 has a capacity of " + std::to_string(zone0.capacity) +
                              " bytes: the superblock needs " + std::to_string(kSuperblockSize));
  }
  // As mkzonefs: zone 0 is the superblock's, so there must be a zone left
  // that is not offline to back a file.
  if (res.nr_offline_zones >= res.nr_zones - 1) {
    return Status(EINVAL, uri + ": no usable zones: the device has " +
                              std::to_string(res.nr_zones) + " zones, " +
                              std::to_string(res.nr_offline_zones) +
                              " offline, and zone 0 holds the superblock");
  }
  if (!opts.force) ZF_RETURN_IF_ERROR(CheckUnused(dev, zones));

  sb.uuid = opts.uuid ? *opts.uuid : RandomUuid();
  const std::vector<uint8_t> encoded = sb.Encode();
  std::unique_ptr<uint8_t, AlignedFree> block(
      static_cast<uint8_t*>(std::aligned_alloc(kSuperblockSize, kSuperblockSize)));
  if (!block) return Status(ENOMEM, "cannot allocate a superblock buffer");
  std::memcpy(block.get(), encoded.data(), kSuperblockSize);

  // From here on the device changes.
  ZF_RETURN_IF_ERROR(
      dev->ManageAllZones(ZoneOp::kReset).WithContext(uri + ": resetting sequential zones failed"));
  Result<size_t> written = dev->Write(0, block.get(), kSuperblockSize);
  if (!written.ok()) return written.status().WithContext(uri + ": writing the superblock failed");
  if (zone0.sequential()) {
    ZF_RETURN_IF_ERROR(dev->ManageZones(ZoneOp::kFinish, 0, 1)
                           .WithContext(uri + ": finishing zone 0 after the superblock failed"));
  }
  ZF_RETURN_IF_ERROR(dev->Flush().WithContext(uri + ": flushing the superblock failed"));

  // Read back: a backend that acknowledged a write it did not keep would
  // otherwise only show up at the first mount.
  std::memset(block.get(), 0, kSuperblockSize);
  Result<size_t> read = dev->Read(0, block.get(), kSuperblockSize);
  if (!read.ok()) return read.status().WithContext(uri + ": reading the superblock back failed");
  if (std::memcmp(block.get(), encoded.data(), kSuperblockSize) != 0) {
    return Status(EIO, uri + ": the superblock read back differs from the one written");
  }

  res.superblock = std::move(sb);
  if (result != nullptr) *result = std::move(res);
  return Status();
}

}  // namespace zfile
