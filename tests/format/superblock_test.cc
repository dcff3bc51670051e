// The zonefs superblock (encode/decode against the kernel's byte layout and
// CRC), the layout derived from a zone report, and mkfs on mem: and emu:.
//
// The CRC and the byte offsets are checked against values computed here
// independently of the code under test (a bitwise CRC32 and hard-coded
// constants), so a change that breaks compatibility with the kernel cannot
// pass by changing both sides.
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zoned_device.h"
#include "format/layout.h"
#include "format/mkfs.h"
#include "format/superblock.h"

namespace zfile {
namespace {

constexpr char kConvUri[] = "mem:?size=256M&zone_size=8M&conv=4";
constexpr char kSeqOnlyUri[] = "mem:?size=256M&zone_size=8M";

// The kernel's crc32_le(seed, ...), bit by bit: the reference the table-
// driven implementation under test must agree with.
uint32_t ReferenceCrc32Le(uint32_t crc, const uint8_t* p, size_t len) {
  while (len--) {
    crc ^= *p++;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ ((crc & 1) ? 0xEDB88320u : 0u);
  }
  return crc;
}

uint32_t Le32(const std::vector<uint8_t>& b, size_t off) {
  return uint32_t{b[off]} | uint32_t{b[off + 1]} << 8 | uint32_t{b[off + 2]} << 16 |
         uint32_t{b[off + 3]} << 24;
}
uint64_t Le64(const std::vector<uint8_t>& b, size_t off) {
  return uint64_t{Le32(b, off)} | uint64_t{Le32(b, off + 4)} << 32;
}
void PutLe32(std::vector<uint8_t>* b, size_t off, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) b->at(off + i) = static_cast<uint8_t>(v >> (8 * i));
}
// Recomputes the CRC of a block the way the kernel checks it.
void Reseal(std::vector<uint8_t>* b) {
  PutLe32(b, 4, 0);
  PutLe32(b, 4, ReferenceCrc32Le(0xFFFFFFFF, b->data(), b->size()));
}

std::array<uint8_t, 16> SequentialUuid() {
  std::array<uint8_t, 16> u;
  for (int i = 0; i < 16; ++i) u[i] = static_cast<uint8_t>(i);
  return u;
}

Superblock GoldenSuperblock() {
  Superblock sb;
  sb.label = "golden-label";
  sb.uuid = SequentialUuid();
  sb.aggr_cnv = true;
  sb.uid = 1000;
  sb.gid = 100;
  sb.perm = 0660;
  return sb;
}

std::unique_ptr<ZonedDevice> Open(const std::string& uri) {
  auto dev = OpenDevice(uri);
  EXPECT_TRUE(dev.ok()) << dev.status().ToString();
  return dev.ok() ? std::move(dev).value() : nullptr;
}

// Whether `text` contains `part`, printing both when it does not.
::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// Block-aligned buffer for device I/O.
struct Block {
  explicit Block(size_t size = kSuperblockSize)
      : len(size), data(static_cast<uint8_t*>(std::aligned_alloc(4096, size))) {
    std::memset(data, 0, len);
  }
  ~Block() { std::free(data); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  size_t len;
  uint8_t* data;
};

std::vector<uint8_t> ReadBlock0(ZonedDevice* dev) {
  Block b;
  auto r = dev->Read(0, b.data, b.len);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::vector<uint8_t>(b.data, b.data + b.len);
}

std::vector<ZoneInfo> Report(ZonedDevice* dev) {
  std::vector<ZoneInfo> zones;
  Status s = dev->ReportZones(0, 0, &zones);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return zones;
}

void WriteSeq(ZonedDevice* dev, uint32_t zone, size_t len) {
  Block b(len);
  std::memset(b.data, 0xA5, len);
  auto r = dev->Write(dev->info().ZoneStart(zone), b.data, len);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

bool SameZones(const std::vector<ZoneInfo>& a, const std::vector<ZoneInfo>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].wp != b[i].wp || a[i].cond != b[i].cond) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Encoding

TEST(SuperblockTest, Crc32MatchesTheKernelVariant) {
  // crc32_le(~0, "123456789") is the bitwise NOT of the classic CRC-32 check
  // value 0xCBF43926: seed ~0, no final inversion.
  const std::string check = "123456789";
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(check.data()),
                                       check.size());
  EXPECT_EQ(Crc32Le(0xFFFFFFFF, bytes), 0x340BC6D9u);
  EXPECT_EQ(Crc32Le(0xFFFFFFFF, bytes), ReferenceCrc32Le(0xFFFFFFFF, bytes.data(), bytes.size()));
}

TEST(SuperblockTest, GoldenByteLayout) {
  const std::vector<uint8_t> b = GoldenSuperblock().Encode();
  ASSERT_EQ(b.size(), 4096u);
  // Magic at 0, little-endian: "SFOZ" on disk (what blkid looks for).
  EXPECT_EQ(b[0], 'S');
  EXPECT_EQ(b[1], 'F');
  EXPECT_EQ(b[2], 'O');
  EXPECT_EQ(b[3], 'Z');
  EXPECT_EQ(Le32(b, 0), 0x5a4f4653u);
  // Label at 8, 64 bytes, NUL-padded.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&b[8])), "golden-label");
  for (size_t i = 8 + 12; i < 72; ++i) EXPECT_EQ(b[i], 0) << "label padding byte " << i;
  // UUID at 72, 16 bytes.
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b[72 + i], i) << "uuid byte " << i;
  // Features at 88 (8 bytes), uid 96, gid 100, perm 104.
  EXPECT_EQ(Le64(b, 88), 0xFu);
  EXPECT_EQ(Le32(b, 96), 1000u);
  EXPECT_EQ(Le32(b, 100), 100u);
  EXPECT_EQ(Le32(b, 104), 0660u);
  // Reserved from 108 to the end.
  for (size_t i = 108; i < 4096; ++i) ASSERT_EQ(b[i], 0) << "reserved byte " << i;
  // CRC at 4: crc32_le(~0) of the block with the field zeroed, computed by
  // the reference here and, as a constant, by Python's zlib (~crc32).
  std::vector<uint8_t> zeroed = b;
  PutLe32(&zeroed, 4, 0);
  EXPECT_EQ(Le32(b, 4), ReferenceCrc32Le(0xFFFFFFFF, zeroed.data(), zeroed.size()));
  EXPECT_EQ(Le32(b, 4), 0x99F14AE7u);
}

TEST(SuperblockTest, DefaultsAreWrittenAsMkzonefsWritesThem) {
  // mkzonefs always fills uid/gid/perm (0, 0, 0640) and sets a feature bit
  // only when asked: the defaults must encode the same way.
  Superblock sb;
  const std::vector<uint8_t> b = sb.Encode();
  EXPECT_EQ(Le64(b, 88), 0u);
  EXPECT_EQ(Le32(b, 96), 0u);
  EXPECT_EQ(Le32(b, 100), 0u);
  EXPECT_EQ(Le32(b, 104), 0640u);
  EXPECT_EQ(Le32(b, 4), 0xCAE0B73Bu);
}

TEST(SuperblockTest, RoundTrip) {
  std::vector<Superblock> cases;
  cases.push_back(Superblock());
  cases.push_back(GoldenSuperblock());
  Superblock full_label;
  full_label.label = std::string(64, 'x');  // fills the field: no terminator
  full_label.uuid = RandomUuid();
  full_label.gid = 0;
  cases.push_back(full_label);
  Superblock perm_only;
  perm_only.perm = 0;
  perm_only.label = "p";
  cases.push_back(perm_only);

  for (const Superblock& sb : cases) {
    auto decoded = Superblock::Decode(sb.Encode());
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(decoded->label, sb.label);
    EXPECT_EQ(decoded->uuid, sb.uuid);
    EXPECT_EQ(decoded->aggr_cnv, sb.aggr_cnv);
    EXPECT_EQ(decoded->uid, sb.uid);
    EXPECT_EQ(decoded->gid, sb.gid);
    EXPECT_EQ(decoded->perm, sb.perm);
    EXPECT_EQ(decoded->features(), sb.features());
    EXPECT_EQ(decoded->Encode(), sb.Encode());
  }
}

TEST(SuperblockTest, FieldsWithoutTheirFeatureAreIgnored) {
  // The kernel reads uid/gid/perm only when the feature bit says so.
  std::vector<uint8_t> b = Superblock().Encode();
  PutLe32(&b, 96, 1234);
  PutLe32(&b, 100, 0xFFFFFFFF);  // would be refused with the gid feature
  PutLe32(&b, 104, 0777777);     // would be refused with the perm feature
  Reseal(&b);
  auto sb = Superblock::Decode(b);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_FALSE(sb->uid);
  EXPECT_FALSE(sb->gid);
  EXPECT_FALSE(sb->perm);
  EXPECT_EQ(sb->file_uid(), 0u);
  EXPECT_EQ(sb->file_perm(), 0640);
}

TEST(SuperblockTest, UuidText) {
  Superblock sb;
  sb.uuid = SequentialUuid();
  EXPECT_EQ(sb.UuidString(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
  auto parsed = ParseUuid("00010203-0405-0607-0809-0A0B0C0D0E0F");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, sb.uuid);
  for (const char* bad :
       {"", "00010203-0405-0607-0809-0a0b0c0d0e0", "0001020304050607080900a0b0c0d0e0f0",
        "00010203-0405-0607-0809-0a0b0c0d0e0g"}) {
    EXPECT_EQ(ParseUuid(bad).status().err(), EINVAL) << bad;
  }
  const auto a = RandomUuid();
  const auto b = RandomUuid();
  EXPECT_NE(a, b);
  EXPECT_EQ(a[6] >> 4, 4) << "version 4";
  EXPECT_EQ(a[8] >> 6, 2) << "RFC 4122 variant";
}

// ---------------------------------------------------------------------------
// Decode errors: each is EINVAL (the kernel's mount errno) and says what.

void ExpectDecodeError(const std::vector<uint8_t>& b, const std::string& words) {
  auto sb = Superblock::Decode(b);
  ASSERT_FALSE(sb.ok()) << "decoded a block that should fail with '" << words << "'";
  EXPECT_EQ(sb.status().err(), EINVAL);
  EXPECT_TRUE(Contains(sb.status().message(), words));
}

TEST(SuperblockDecodeTest, ShortBuffer) {
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  b.resize(512);
  ExpectDecodeError(b, "512 bytes");
}

TEST(SuperblockDecodeTest, BadMagic) {
  ExpectDecodeError(std::vector<uint8_t>(4096, 0), "no zonefs superblock: bad magic 0x00000000");
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  b[0] = 0x58;  // an ext4/XFS-looking first byte
  Reseal(&b);
  ExpectDecodeError(b, "bad magic 0x5a4f4658");
}

TEST(SuperblockDecodeTest, CrcMismatch) {
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  b[10] ^= 0x01;  // one bit of the label
  ExpectDecodeError(b, "checksum mismatch");
  b = GoldenSuperblock().Encode();
  b[4] ^= 0x80;  // the stored CRC itself
  ExpectDecodeError(b, "checksum mismatch");
}

TEST(SuperblockDecodeTest, UnknownFeatureBits) {
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  b[88] |= 0x10;  // bit 4
  Reseal(&b);
  ExpectDecodeError(b, "unknown feature bits 0x10");
  b = GoldenSuperblock().Encode();
  b[95] = 0x80;  // bit 63
  Reseal(&b);
  ExpectDecodeError(b, "unknown feature bits 0x8000000000000000");
}

TEST(SuperblockDecodeTest, InvalidUidGid) {
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  PutLe32(&b, 96, 0xFFFFFFFF);
  Reseal(&b);
  ExpectDecodeError(b, "invalid uid feature");
  b = GoldenSuperblock().Encode();
  PutLe32(&b, 100, 0xFFFFFFFF);
  Reseal(&b);
  ExpectDecodeError(b, "invalid gid feature");
}

TEST(SuperblockDecodeTest, PermBeyondPermissionBits) {
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  PutLe32(&b, 104, 0100644);  // S_IFREG | 0644
  Reseal(&b);
  ExpectDecodeError(b, "invalid perm feature (0100644");
  // Setuid/setgid/sticky are permission bits: accepted, as by the kernel.
  PutLe32(&b, 104, 07777);
  Reseal(&b);
  auto sb = Superblock::Decode(b);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->perm, 07777);
}

TEST(SuperblockDecodeTest, ReservedBytesInUse) {
  for (size_t off : {size_t{108}, size_t{2000}, size_t{4095}}) {
    std::vector<uint8_t> b = GoldenSuperblock().Encode();
    b[off] = 0x01;
    Reseal(&b);
    ExpectDecodeError(b, "reserved area is in use (byte " + std::to_string(off));
  }
}

TEST(SuperblockDecodeTest, ChecksInTheKernelsOrder) {
  // Bad magic wins over a bad CRC; a bad CRC over bad features.
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  b[88] |= 0x10;
  ExpectDecodeError(b, "checksum mismatch");
  b[0] = 0;
  ExpectDecodeError(b, "bad magic");
}

TEST(SuperblockTest, ValidateRefusesWhatCannotBeWritten) {
  Superblock sb;
  sb.label = std::string(65, 'a');
  EXPECT_EQ(sb.Validate().err(), EINVAL);
  EXPECT_TRUE(Contains(sb.Validate().message(), "at most 64 bytes"));
  sb.label = std::string(64, 'a');
  EXPECT_TRUE(sb.Validate().ok());
  sb.label = std::string("a\0b", 3);
  EXPECT_TRUE(Contains(sb.Validate().message(), "NUL"));
  sb.label.clear();
  sb.uid = 0xFFFFFFFF;
  EXPECT_TRUE(Contains(sb.Validate().message(), "uid 4294967295"));
  sb.uid.reset();
  sb.perm = 010000;
  EXPECT_TRUE(Contains(sb.Validate().message(), "perm"));
}

// ---------------------------------------------------------------------------
// -o feature strings

TEST(MkfsFeaturesTest, Parses) {
  MkfsOptions o;
  ASSERT_TRUE(ParseMkfsFeatures("aggr_cnv,uid=1000,gid=100,perm=0660", &o).ok());
  EXPECT_TRUE(o.aggr_cnv);
  EXPECT_EQ(o.uid, 1000u);
  EXPECT_EQ(o.gid, 100u);
  EXPECT_EQ(o.perm, 0660);
  MkfsOptions p;
  ASSERT_TRUE(ParseMkfsFeatures(",perm=644,,uid=0,uid=7,", &p).ok());
  EXPECT_EQ(p.perm, 0644);
  EXPECT_EQ(p.uid, 7u);
  EXPECT_FALSE(p.gid);
  EXPECT_FALSE(p.aggr_cnv);
  MkfsOptions q;
  ASSERT_TRUE(ParseMkfsFeatures("", &q).ok());
  EXPECT_FALSE(q.aggr_cnv || q.uid || q.gid || q.perm);
}

TEST(MkfsFeaturesTest, RefusesBadItemsAndLeavesOptionsAlone) {
  const struct {
    const char* text;
    const char* words;
  } cases[] = {
      {"foo", "unknown feature"},
      {"aggr_cnv=1", "takes no value"},
      {"uid", "needs a value"},
      {"uid=", "decimal number"},
      {"uid=-1", "decimal number"},
      {"uid=4294967295", "decimal number"},
      {"gid=12x", "decimal number"},
      {"perm=0888", "octal"},
      {"perm=10000", "octal"},
      {"perm", "needs a value"},
      {"aggr_cnv;uid=1", "unknown feature"},
  };
  for (const auto& c : cases) {
    MkfsOptions o;
    o.uid = 5;
    Status s = ParseMkfsFeatures(std::string("aggr_cnv,") + c.text, &o);
    EXPECT_EQ(s.err(), EINVAL) << c.text;
    EXPECT_TRUE(Contains(s.message(), c.words)) << c.text;
    EXPECT_FALSE(o.aggr_cnv) << "options changed by a failed parse: " << c.text;
    EXPECT_EQ(o.uid, 5u);
  }
}

// ---------------------------------------------------------------------------
// Layout

TEST(LayoutTest, FilesAsTheKernelMakesThem) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);
  const auto zones = Report(dev.get());
  auto plain = BuildLayout(zones, dev->info().zone_size, /*aggr_cnv=*/false);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  // Zone 0 backs no file: 3 of 4 conventional zones, all 28 sequential.
  ASSERT_EQ(plain->cnv.size(), 3u);
  EXPECT_EQ(plain->cnv[0].first_zone, 1u);
  EXPECT_EQ(plain->seq.size(), 28u);
  EXPECT_EQ(plain->seq[0].first_zone, 4u);
  EXPECT_EQ(plain->seq[0].capacity, dev->info().zone_capacity);

  auto aggr = BuildLayout(zones, dev->info().zone_size, /*aggr_cnv=*/true);
  ASSERT_TRUE(aggr.ok());
  ASSERT_EQ(aggr->cnv.size(), 1u);
  EXPECT_EQ(aggr->cnv[0].first_zone, 1u);
  EXPECT_EQ(aggr->cnv[0].nr_zones, 3u);
  EXPECT_EQ(aggr->cnv[0].capacity, 3 * dev->info().zone_size);
  EXPECT_EQ(aggr->seq.size(), 28u);

  auto seq_dev = Open(kSeqOnlyUri);
  ASSERT_NE(seq_dev, nullptr);
  auto seq = BuildLayout(Report(seq_dev.get()), seq_dev->info().zone_size, true);
  ASSERT_TRUE(seq.ok());
  EXPECT_TRUE(seq->cnv.empty()) << "no cnv/ without conventional zones besides zone 0";
  EXPECT_EQ(seq->seq.size(), 31u);
}

TEST(LayoutTest, RefusesBrokenReports) {
  EXPECT_EQ(BuildLayout({}, 4096, false).status().err(), EINVAL);
  std::vector<ZoneInfo> zones(3);
  for (int i = 0; i < 3; ++i) {
    zones[i].start = uint64_t(i) * 8192;
    zones[i].len = zones[i].capacity = 8192;
  }
  zones[2].start += 4096;
  EXPECT_TRUE(Contains(BuildLayout(zones, 8192, false).status().message(), "zone 2 starts"));
  zones[2].start = 16384;
  zones[1].capacity = 4096;  // a conventional zone that is not fully writable
  EXPECT_TRUE(
      Contains(BuildLayout(zones, 8192, true).status().message(), "conventional zone capacity"));
}

// ---------------------------------------------------------------------------
// ReadSuperblock and Mkfs

TEST(ReadSuperblockTest, UnformattedDevicesSaySo) {
  for (const char* uri : {kConvUri, kSeqOnlyUri}) {
    auto dev = Open(uri);
    ASSERT_NE(dev, nullptr);
    auto sb = ReadSuperblock(dev.get());
    ASSERT_FALSE(sb.ok()) << uri;
    EXPECT_EQ(sb.status().err(), EINVAL);
    EXPECT_TRUE(Contains(sb.status().message(), "device is not formatted")) << uri;
    EXPECT_TRUE(Contains(sb.status().message(), "run 'zfile mkfs'")) << uri;
  }
}

TEST(ReadSuperblockTest, CorruptSuperblockIsNamed) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);
  std::vector<uint8_t> b = GoldenSuperblock().Encode();
  b[20] ^= 0xFF;
  Block block;
  std::memcpy(block.data, b.data(), b.size());
  ASSERT_TRUE(dev->Write(0, block.data, block.len).ok());
  auto sb = ReadSuperblock(dev.get());
  EXPECT_EQ(sb.status().err(), EINVAL);
  EXPECT_TRUE(Contains(sb.status().message(), "checksum mismatch"));
  EXPECT_TRUE(Contains(sb.status().message(), "mem:")) << "names the device";

  std::memset(block.data, 0, block.len);
  std::memcpy(block.data, "garbage", 7);
  ASSERT_TRUE(dev->Write(0, block.data, block.len).ok());
  EXPECT_TRUE(Contains(ReadSuperblock(dev.get()).status().message(), "bad magic"));
}

TEST(MkfsTest, ConventionalZone0StoresEveryOption) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);
  MkfsOptions o;
  o.label = "vol-1";
  o.aggr_cnv = true;
  o.uid = 1000;
  o.gid = 1001;
  o.perm = 0604;
  o.uuid = SequentialUuid();
  MkfsResult r;
  Status s = Mkfs(dev.get(), o, &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.nr_zones, 32u);
  EXPECT_EQ(r.nr_conv_zones, 4u);
  EXPECT_EQ(r.nr_seq_zones, 28u);
  EXPECT_EQ(r.nr_cnv_files, 1u);
  EXPECT_EQ(r.nr_seq_files, 28u);
  EXPECT_FALSE(r.zone0_sequential);

  auto sb = ReadSuperblock(dev.get());
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->label, "vol-1");
  EXPECT_EQ(sb->uuid, SequentialUuid());
  EXPECT_TRUE(sb->aggr_cnv);
  EXPECT_EQ(sb->uid, 1000u);
  EXPECT_EQ(sb->gid, 1001u);
  EXPECT_EQ(sb->perm, 0604);
  // Byte for byte what Encode makes (and what the golden test pins down).
  EXPECT_EQ(ReadBlock0(dev.get()), sb->Encode());
}

TEST(MkfsTest, DefaultsAndRandomUuid) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);
  MkfsResult r;
  ASSERT_TRUE(Mkfs(dev.get(), MkfsOptions(), &r).ok());
  auto sb = ReadSuperblock(dev.get());
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->features(), 0u);
  EXPECT_EQ(sb->file_uid(), 0u);
  EXPECT_EQ(sb->file_gid(), 0u);
  EXPECT_EQ(sb->file_perm(), 0640);
  EXPECT_EQ(sb->label, "");
  EXPECT_NE(sb->uuid, (std::array<uint8_t, 16>{}));
  EXPECT_EQ(r.superblock.uuid, sb->uuid);
  EXPECT_EQ(r.nr_cnv_files, 3u);
}

TEST(MkfsTest, SequentialZone0IsWrittenThenFinished) {
  auto dev = Open(kSeqOnlyUri);
  ASSERT_NE(dev, nullptr);
  MkfsOptions o;
  o.label = "seq0";
  MkfsResult r;
  Status s = Mkfs(dev.get(), o, &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(r.zone0_sequential);
  EXPECT_EQ(r.nr_cnv_files, 0u);
  EXPECT_EQ(r.nr_seq_files, 31u);
  auto z0 = dev->ReportZone(0);
  ASSERT_TRUE(z0.ok());
  EXPECT_EQ(z0->cond, ZoneCondition::kFull) << "zone 0 must not stay open behind the superblock";
  auto sb = ReadSuperblock(dev.get());
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->label, "seq0");

  // Again with -f: zone 0 is reset, rewritten and finished again.
  o.force = true;
  o.label = "again";
  ASSERT_TRUE(Mkfs(dev.get(), o).ok());
  EXPECT_EQ(ReadSuperblock(dev.get())->label, "again");
  EXPECT_EQ(dev->ReportZone(0)->cond, ZoneCondition::kFull);
}

TEST(MkfsTest, EmptySequentialZone0ReadsAsUnformatted) {
  auto dev = Open(kSeqOnlyUri);
  ASSERT_NE(dev, nullptr);
  auto sb = ReadSuperblock(dev.get());
  EXPECT_EQ(sb.status().err(), EINVAL);
  EXPECT_TRUE(Contains(sb.status().message(), "sequential zone with 0 bytes written"));
  EXPECT_TRUE(Contains(sb.status().message(), "not formatted"));
  // Written past the superblock but not by mkfs: read, and found wanting.
  WriteSeq(dev.get(), 0, 8192);
  EXPECT_TRUE(Contains(ReadSuperblock(dev.get()).status().message(), "bad magic 0xa5a5a5a5"));
}

TEST(MkfsTest, ResetsSequentialZonesAndLeavesConventionalOnes) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);
  WriteSeq(dev.get(), 4, 8192);
  WriteSeq(dev.get(), 20, 4096);
  ASSERT_TRUE(dev->ManageZones(ZoneOp::kFinish, 30, 1).ok());
  // Data in a conventional file zone: mkzonefs leaves it, and so do we.
  Block data;
  std::memset(data.data, 0x5C, data.len);
  ASSERT_TRUE(dev->Write(dev->info().ZoneStart(2), data.data, data.len).ok());

  MkfsOptions o;
  o.force = true;
  MkfsResult r;
  Status s = Mkfs(dev.get(), o, &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r.nr_zones_reset, 3u);
  for (const ZoneInfo& z : Report(dev.get())) {
    if (z.sequential()) {
      EXPECT_EQ(z.cond, ZoneCondition::kEmpty) << "zone at " << z.start;
      EXPECT_EQ(z.wp, z.start);
    }
  }
  Block back;
  ASSERT_TRUE(dev->Read(dev->info().ZoneStart(2), back.data, back.len).ok());
  EXPECT_EQ(back.data[100], 0x5C);
}

TEST(MkfsTest, RefusesWithoutForceAndChangesNothing) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);

  // 1. Data in sequential zones.
  WriteSeq(dev.get(), 5, 12288);
  WriteSeq(dev.get(), 9, 4096);
  auto before = Report(dev.get());
  Status s = Mkfs(dev.get(), MkfsOptions());
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(Contains(s.message(), "sequential zones 5 (12288 bytes written"));
  EXPECT_TRUE(Contains(s.message(), "and 1 more hold data"));
  EXPECT_TRUE(Contains(s.message(), "use -f to overwrite"));
  EXPECT_TRUE(SameZones(before, Report(dev.get())));
  EXPECT_EQ(ReadBlock0(dev.get()), std::vector<uint8_t>(4096, 0));

  // 2. Non-zero bytes where the superblock goes.
  ASSERT_TRUE(dev->ManageAllZones(ZoneOp::kReset).ok());
  Block junk;
  junk.data[517] = 0x42;
  ASSERT_TRUE(dev->Write(0, junk.data, junk.len).ok());
  s = Mkfs(dev.get(), MkfsOptions());
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(Contains(s.message(), "non-zero byte at offset 517"));
  EXPECT_TRUE(Contains(s.message(), "bad magic"));
  EXPECT_EQ(ReadBlock0(dev.get())[517], 0x42);

  // 3. An existing zonefs: named by label and UUID.
  MkfsOptions first;
  first.label = "precious";
  first.force = true;
  first.uuid = SequentialUuid();
  ASSERT_TRUE(Mkfs(dev.get(), first).ok());
  WriteSeq(dev.get(), 7, 4096);
  before = Report(dev.get());
  const std::vector<uint8_t> sb_before = ReadBlock0(dev.get());
  MkfsOptions second;
  second.label = "new";
  s = Mkfs(dev.get(), second);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(Contains(s.message(), "already holds a zonefs file system (label 'precious'"));
  EXPECT_TRUE(Contains(s.message(), "00010203-0405-0607-0809-0a0b0c0d0e0f"));
  EXPECT_TRUE(Contains(s.message(), "sequential zone 7 (4096 bytes written"));
  EXPECT_TRUE(SameZones(before, Report(dev.get())));
  EXPECT_EQ(ReadBlock0(dev.get()), sb_before);

  // 4. -f overwrites.
  second.force = true;
  ASSERT_TRUE(Mkfs(dev.get(), second).ok());
  auto sb = ReadSuperblock(dev.get());
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->label, "new");
  EXPECT_NE(sb->uuid, SequentialUuid());
  EXPECT_EQ(dev->ReportZone(7)->cond, ZoneCondition::kEmpty);
}

TEST(MkfsTest, BadOptionsChangeNothing) {
  auto dev = Open(kConvUri);
  ASSERT_NE(dev, nullptr);
  WriteSeq(dev.get(), 6, 4096);
  const auto before = Report(dev.get());
  MkfsOptions o;
  o.force = true;
  o.label = std::string(65, 'L');
  Status s = Mkfs(dev.get(), o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(Contains(s.message(), "at most 64 bytes"));
  o.label = "ok";
  o.uid = 0xFFFFFFFF;
  EXPECT_EQ(Mkfs(dev.get(), o).err(), EINVAL);
  o.uid.reset();
  o.perm = 020000;
  EXPECT_EQ(Mkfs(dev.get(), o).err(), EINVAL);
  EXPECT_TRUE(SameZones(before, Report(dev.get())));
}

TEST(MkfsTest, UnusableZone0) {
  auto dev = Open(kSeqOnlyUri);
  ASSERT_NE(dev, nullptr);
  ASSERT_NE(dev->faults(), nullptr);
  ASSERT_TRUE(dev->faults()->SetZoneCondition(0, ZoneCondition::kReadOnly).ok());
  MkfsOptions o;
  o.force = true;
  Status s = Mkfs(dev.get(), o);
  EXPECT_EQ(s.err(), EROFS);
  EXPECT_TRUE(Contains(s.message(), "zone 0 is read-only"));
  ASSERT_TRUE(dev->faults()->SetZoneCondition(0, ZoneCondition::kOffline).ok());
  s = Mkfs(dev.get(), o);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(Contains(s.message(), "zone 0 is offline"));
  auto sb = ReadSuperblock(dev.get());
  EXPECT_EQ(sb.status().err(), EIO);
  EXPECT_TRUE(Contains(sb.status().message(), "offline"));
}

TEST(MkfsTest, NoUsableZones) {
  auto dev = Open("mem:?size=16M&zone_size=8M");
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->faults()->SetZoneCondition(1, ZoneCondition::kOffline).ok());
  MkfsOptions o;
  o.force = true;
  Status s = Mkfs(dev.get(), o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(Contains(s.message(), "no usable zones"));
}

TEST(MkfsTest, SmallBlocksAndZoneCapacity) {
  // 512-byte logical blocks and zone capacity below zone size (as ZNS).
  auto dev = Open("mem:?size=64M&zone_size=4M&zone_capacity=3M&block_size=512");
  ASSERT_NE(dev, nullptr);
  MkfsResult r;
  Status s = Mkfs(dev.get(), MkfsOptions(), &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ReadSuperblock(dev.get()).ok());
  EXPECT_EQ(r.nr_seq_files, 15u);
}

class EmuMkfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zfile-format-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = std::string(tmpl) + "/dev";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(dir_).parent_path(), ec);
  }
  void Create(uint32_t conv) {
    EmulatedGeometry g;
    g.size = 128ull << 20;
    g.zone_size = 8ull << 20;
    g.nr_conv_zones = conv;
    g.block_size = 4096;
    Status s = CreateEmuDevice(dir_, g);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::string uri() const { return "emu:" + dir_; }
  std::string dir_;
};

TEST_F(EmuMkfsTest, SuperblockSurvivesReopen) {
  for (uint32_t conv : {2u, 0u}) {
    TearDown();
    SetUp();
    Create(conv);
    {
      auto dev = Open(uri());
      ASSERT_NE(dev, nullptr);
      WriteSeq(dev.get(), 3, 8192);
      EXPECT_EQ(Mkfs(dev.get(), MkfsOptions()).err(), EEXIST);
      MkfsOptions o;
      o.force = true;
      o.label = "emu";
      o.aggr_cnv = true;
      o.gid = 42;
      o.perm = 0660;
      Status s = Mkfs(dev.get(), o);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    auto dev = Open(uri());
    ASSERT_NE(dev, nullptr);
    auto sb = ReadSuperblock(dev.get());
    ASSERT_TRUE(sb.ok()) << "conv=" << conv << ": " << sb.status().ToString();
    EXPECT_EQ(sb->label, "emu");
    EXPECT_TRUE(sb->aggr_cnv);
    EXPECT_FALSE(sb->uid);
    EXPECT_EQ(sb->gid, 42u);
    EXPECT_EQ(sb->perm, 0660);
    EXPECT_EQ(dev->ReportZone(3)->cond, ZoneCondition::kEmpty);
    if (conv == 0) {
      EXPECT_EQ(dev->ReportZone(0)->cond, ZoneCondition::kFull);
    }
    // A formatted device is refused without -f after reopening too.
    Status again = Mkfs(dev.get(), MkfsOptions());
    EXPECT_EQ(again.err(), EEXIST);
    EXPECT_TRUE(Contains(again.message(), "label 'emu'"));
  }
}

}  // namespace
}  // namespace zfile
