// The device contract: every backend (mem, emu, zbd on null_blk and SMR)
// must pass this suite unchanged. Geometry is read from the device, so the
// same tests run on any zoned device; tests that need a device feature (open
// limits, fault injection, reopening) skip, saying why, where it is absent.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "device/emu_backend.h"
#include "device/zoned_device.h"
#include "device_test_util.h"

namespace zfile {
namespace {

using testing::AlignedBuffer;
using testing::BackendParam;
using testing::CheckPattern;
using testing::FillPattern;

// Waits for a batch of asynchronous requests, recording completion order.
class Batch {
 public:
  IoRequest* Add(IoOp op, uint64_t offset, void* buf, size_t len) {
    auto req = std::make_unique<IoRequest>();
    req->op = op;
    req->offset = offset;
    req->buf = buf;
    req->len = len;
    req->on_complete = [this](IoRequest* r) {
      std::lock_guard<std::mutex> lock(mu_);
      order_.push_back(r);
      cv_.notify_all();
    };
    reqs_.push_back(std::move(req));
    return reqs_.back().get();
  }
  void SubmitAll(ZonedDevice* dev) {
    for (auto& r : reqs_) dev->Submit(r.get());
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return order_.size() == reqs_.size(); });
  }
  const std::vector<std::unique_ptr<IoRequest>>& requests() const { return reqs_; }
  std::vector<IoRequest*> completion_order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }

 private:
  std::vector<std::unique_ptr<IoRequest>> reqs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<IoRequest*> order_;
};

class DeviceContract : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override {
    const BackendParam& p = GetParam();
    if (p.kind == "emu") {
      char tmpl[] = "/tmp/zfile-emu-test-XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
      std::filesystem::remove(dir_);
      auto uri = Uri::Parse("emu:?" + p.spec);
      ASSERT_TRUE(uri.ok());
      EmulatedGeometry g;
      ASSERT_TRUE(g.ReadFromUri(*uri).ok());
      Status s = CreateEmuDevice(dir_, g);
      ASSERT_TRUE(s.ok()) << s.ToString();
      uri_ = "emu:" + dir_;
    } else if (p.kind == "zbd") {
      uri_ = "zbd:" + p.spec;
    } else {
      uri_ = p.spec;
    }
    Reopen();
    if (HasFatalFailure()) return;
    // Persistent devices keep state between tests: start from all-empty,
    // with zones an earlier test took out of service brought back.
    if (dev_->faults() != nullptr) {
      std::vector<ZoneInfo> zones;
      ASSERT_TRUE(dev_->ReportZones(0, 0, &zones).ok());
      for (const ZoneInfo& z : zones) {
        if (z.cond == ZoneCondition::kReadOnly || z.cond == ZoneCondition::kOffline) {
          ASSERT_TRUE(
              dev_->faults()->SetZoneCondition(info().ZoneOf(z.start), ZoneCondition::kEmpty).ok());
        }
      }
    }
    Status s = dev_->ManageAllZones(ZoneOp::kReset);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    if (dev_ && GetParam().kind == "zbd") (void)dev_->ManageAllZones(ZoneOp::kReset);
    dev_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  void Reopen() {
    dev_.reset();
    auto dev = OpenDevice(uri_);
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    dev_ = std::move(dev).value();
  }

  const DeviceInfo& info() const { return dev_->info(); }
  uint32_t bs() const { return info().block_size; }
  uint32_t FirstSeq() const { return info().nr_conv_zones; }
  uint32_t NrSeq() const { return info().nr_zones - info().nr_conv_zones; }
  uint64_t Start(uint32_t z) const { return info().ZoneStart(z); }

  ZoneInfo Zone(uint32_t z) {
    auto r = dev_->ReportZone(z);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ZoneInfo{};
  }

  // Writes `len` pattern bytes at `offset`; returns the errno (0 on success).
  int WritePattern(uint64_t offset, size_t len, uint32_t seed = 1) {
    AlignedBuffer buf(len);
    FillPattern(buf.data(), len, offset, seed);
    auto r = dev_->Write(offset, buf.data(), len);
    if (!r.ok()) return r.status().err();
    EXPECT_EQ(*r, len);
    return 0;
  }

  // Reads `len` bytes at `offset` and expects the pattern (or zeros).
  void ExpectPattern(uint64_t offset, size_t len, uint32_t seed = 1) {
    AlignedBuffer buf(len);
    auto r = dev_->Read(offset, buf.data(), len);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(CheckPattern(buf.data(), len, offset, seed), -1) << "at offset " << offset;
  }
  void ExpectZeros(uint64_t offset, size_t len) {
    AlignedBuffer buf(len);
    std::memset(buf.data(), 0xAB, len);
    auto r = dev_->Read(offset, buf.data(), len);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(std::all_of(buf.data(), buf.data() + len, [](uint8_t b) { return b == 0; }))
        << "non-zero bytes at " << offset;
  }

  int ZoneOpErr(ZoneOp op, uint32_t z) { return dev_->ManageZones(op, z, 1).err(); }

  bool scsi() const { return GetParam().dialect == "scsi"; }
  bool emulated() const { return GetParam().kind != "zbd"; }
  // The errno of a write the device itself rejects.
  int Rejected() const { return EIO; }
  // Reads of never-written (or reset) blocks: zeros where the backend
  // promises them, otherwise only that the read succeeds.
  void ExpectUnwritten(uint64_t offset, size_t len) {
    if (emulated()) {
      ExpectZeros(offset, len);
    } else {
      AlignedBuffer buf(len);
      auto r = dev_->Read(offset, buf.data(), len);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
    }
  }

  std::map<ZoneCondition, uint32_t> CountConditions() {
    std::vector<ZoneInfo> zones;
    EXPECT_TRUE(dev_->ReportZones(0, 0, &zones).ok());
    std::map<ZoneCondition, uint32_t> n;
    for (const auto& z : zones) n[z.cond]++;
    return n;
  }

  // The device keeps its zones when closed and reopened (emu:, named
  // mem:, kernel devices).
  bool persistent() const { return uri_.rfind("mem:?", 0) != 0; }

  std::string uri_;
  std::string dir_;
  std::unique_ptr<ZonedDevice> dev_;
};

#define SKIP_WITHOUT_FAULTS()                                          \
  if (dev_->faults() == nullptr)                                       \
  GTEST_SKIP() << GetParam().kind                                      \
               << " has no fault injection (kernel devices: null_blk " \
                  "configfs faults are used by the file-layer tests)"

TEST_P(DeviceContract, GeometryIsConsistent) {
  const DeviceInfo& di = info();
  EXPECT_TRUE(di.block_size == 512 || di.block_size == 4096) << di.block_size;
  EXPECT_GT(di.nr_zones, 0u);
  EXPECT_EQ(uint64_t{di.nr_zones} * di.zone_size, di.capacity);
  EXPECT_EQ(di.zone_size % di.block_size, 0u);
  EXPECT_LE(di.zone_capacity, di.zone_size);
  EXPECT_GT(di.zone_capacity, 0u);
  EXPECT_LT(di.nr_conv_zones, di.nr_zones);
  EXPECT_GE(di.max_io_bytes, di.block_size);
  if (di.max_active != 0) {
    EXPECT_LE(di.max_open, di.max_active);
  }
  EXPECT_EQ(di.backend, GetParam().kind);
}

TEST_P(DeviceContract, ReportShowsEveryZoneInOrder) {
  std::vector<ZoneInfo> zones;
  ASSERT_TRUE(dev_->ReportZones(0, 0, &zones).ok());
  ASSERT_EQ(zones.size(), info().nr_zones);
  for (uint32_t z = 0; z < info().nr_zones; ++z) {
    SCOPED_TRACE("zone " + std::to_string(z));
    EXPECT_EQ(zones[z].start, Start(z));
    EXPECT_EQ(zones[z].len, info().zone_size);
    if (z < info().nr_conv_zones) {
      EXPECT_EQ(zones[z].type, ZoneType::kConventional);
      EXPECT_EQ(zones[z].cond, ZoneCondition::kNotWp);
    } else {
      EXPECT_TRUE(zones[z].sequential());
      EXPECT_EQ(zones[z].cond, ZoneCondition::kEmpty);
      EXPECT_EQ(zones[z].wp, zones[z].start);
      EXPECT_EQ(zones[z].capacity, info().zone_capacity);
    }
  }
}

TEST_P(DeviceContract, ReportOfARange) {
  std::vector<ZoneInfo> zones;
  ASSERT_TRUE(dev_->ReportZones(FirstSeq(), 3, &zones).ok());
  ASSERT_EQ(zones.size(), 3u);
  EXPECT_EQ(zones[0].start, Start(FirstSeq()));
  EXPECT_EQ(zones[2].start, Start(FirstSeq() + 2));
  EXPECT_EQ(dev_->ReportZones(info().nr_zones, 1, &zones).err(), EINVAL);
  EXPECT_EQ(dev_->ReportZones(info().nr_zones - 1, 2, &zones).err(), EINVAL);
}

TEST_P(DeviceContract, SequentialWritesAdvanceTheWritePointer) {
  const uint32_t z = FirstSeq();
  ASSERT_EQ(WritePattern(Start(z), bs()), 0);
  ZoneInfo zi = Zone(z);
  EXPECT_EQ(zi.wp, Start(z) + bs());
  EXPECT_EQ(zi.cond, ZoneCondition::kImplicitOpen);
  ASSERT_EQ(WritePattern(Start(z) + bs(), 8 * bs()), 0);
  EXPECT_EQ(Zone(z).wp, Start(z) + 9 * bs());
  ExpectPattern(Start(z), 9 * bs());
}

TEST_P(DeviceContract, ReadsBelowTheWritePointerReturnDataAndAboveSucceed) {
  const uint32_t z = FirstSeq() + 1;
  ASSERT_EQ(WritePattern(Start(z), 2 * bs()), 0);
  ExpectPattern(Start(z), 2 * bs());
  ExpectUnwritten(Start(z) + 2 * bs(), 2 * bs());
  // One read straddling the write pointer.
  AlignedBuffer buf(4 * bs());
  ASSERT_TRUE(dev_->Read(Start(z), buf.data(), 4 * bs()).ok());
  EXPECT_EQ(CheckPattern(buf.data(), 2 * bs(), Start(z), 1), -1);
  if (emulated()) {
    EXPECT_TRUE(
        std::all_of(buf.data() + 2 * bs(), buf.data() + 4 * bs(), [](uint8_t b) { return !b; }));
  }
}

TEST_P(DeviceContract, WriteNotAtTheWritePointerFailsWithEio) {
  const uint32_t z = FirstSeq();
  ASSERT_EQ(WritePattern(Start(z), 2 * bs()), 0);
  EXPECT_EQ(WritePattern(Start(z) + 3 * bs(), bs()), Rejected());  // ahead
  EXPECT_EQ(WritePattern(Start(z), bs()), Rejected());             // behind
  EXPECT_EQ(WritePattern(Start(z + 1) + bs(), bs()), Rejected());  // empty zone, not at start
  EXPECT_EQ(Zone(z).wp, Start(z) + 2 * bs());
  EXPECT_EQ(Zone(z + 1).cond, ZoneCondition::kEmpty);
  ExpectPattern(Start(z), 2 * bs());
}

TEST_P(DeviceContract, WritePastCapacityFailsAndFillingMakesTheZoneFull) {
  const uint32_t z = FirstSeq();
  const uint64_t cap = info().zone_capacity;
  // Move the write pointer to one block below capacity with a few big writes.
  uint64_t wp = Start(z);
  const size_t chunk = 1 << 20;
  while (Start(z) + cap - wp > bs()) {
    size_t n = std::min<uint64_t>(chunk, Start(z) + cap - bs() - wp);
    ASSERT_EQ(WritePattern(wp, n), 0) << "at " << wp;
    wp += n;
  }
  if (cap < info().zone_size) {
    // Crossing the capacity inside the zone. (With capacity == zone size
    // the same write crosses into the next zone, which is legal: the block
    // layer splits it at the boundary.)
    EXPECT_EQ(WritePattern(wp, 2 * bs()), Rejected());
    EXPECT_EQ(Zone(z).wp, wp);
  }
  ASSERT_EQ(WritePattern(wp, bs()), 0);
  ZoneInfo zi = Zone(z);
  EXPECT_EQ(zi.cond, ZoneCondition::kFull);
  EXPECT_EQ(zi.wp, Start(z) + cap);
  EXPECT_EQ(WritePattern(Start(z) + cap - bs(), bs()), Rejected());  // the zone is full
  if (cap < info().zone_size) {
    EXPECT_EQ(WritePattern(Start(z) + cap, bs()), Rejected());
  }
  ExpectPattern(Start(z) + cap - 4 * bs(), 4 * bs());
}

TEST_P(DeviceContract, MisalignedOrOutOfRangeIoIsRejectedWithEinval) {
  AlignedBuffer buf(2 * bs());
  const uint64_t s = Start(FirstSeq());
  EXPECT_EQ(dev_->Write(s + 1, buf.data(), bs()).status().err(), EINVAL);
  EXPECT_EQ(dev_->Write(s, buf.data(), bs() - 1).status().err(), EINVAL);
  EXPECT_EQ(dev_->Write(s, buf.data(), 0).status().err(), EINVAL);
  EXPECT_EQ(dev_->Read(s + bs() / 2, buf.data(), bs()).status().err(), EINVAL);
  EXPECT_EQ(dev_->Read(info().capacity, buf.data(), bs()).status().err(), EINVAL);
  EXPECT_EQ(dev_->Read(info().capacity - bs(), buf.data(), 2 * bs()).status().err(), EINVAL);
  EXPECT_EQ(dev_->Append(info().nr_zones, buf.data(), bs()).status().err(), EINVAL);
  EXPECT_EQ(Zone(FirstSeq()).cond, ZoneCondition::kEmpty);
}

TEST_P(DeviceContract, ExplicitOpenCloseFinishResetTransitions) {
  const uint32_t z = FirstSeq();
  // empty -> explicit open -> (close with nothing written) -> empty
  ASSERT_EQ(ZoneOpErr(ZoneOp::kOpen, z), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kExplicitOpen);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kOpen, z), 0);  // open of an open zone is no error
  ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, z), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kEmpty);
  // explicit open, write (stays explicit), close -> closed
  ASSERT_EQ(ZoneOpErr(ZoneOp::kOpen, z), 0);
  ASSERT_EQ(WritePattern(Start(z), bs()), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kExplicitOpen);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, z), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kClosed);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kClose, z), 0);  // close of a closed zone is no error
  // closed -> write -> implicit open -> close -> closed -> open -> explicit
  ASSERT_EQ(WritePattern(Start(z) + bs(), bs()), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kImplicitOpen);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, z), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kClosed);
  EXPECT_EQ(Zone(z).wp, Start(z) + 2 * bs());
  ASSERT_EQ(ZoneOpErr(ZoneOp::kOpen, z), 0);
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kExplicitOpen);
  // implicit open -> explicit open by an open command
  ASSERT_EQ(WritePattern(Start(z + 1), bs()), 0);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kOpen, z + 1), 0);
  EXPECT_EQ(Zone(z + 1).cond, ZoneCondition::kExplicitOpen);
  // finish: open -> full, with the write pointer at the zone end
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, z), 0);
  ZoneInfo zi = Zone(z);
  EXPECT_EQ(zi.cond, ZoneCondition::kFull);
  EXPECT_EQ(zi.wp, Start(z) + info().zone_size);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kFinish, z), 0);  // finish of a full zone is no error
  // data written before the finish is still readable
  ExpectPattern(Start(z), 2 * bs());
  // reset: full -> empty
  ASSERT_EQ(ZoneOpErr(ZoneOp::kReset, z), 0);
  zi = Zone(z);
  EXPECT_EQ(zi.cond, ZoneCondition::kEmpty);
  EXPECT_EQ(zi.wp, Start(z));
  ExpectUnwritten(Start(z), 2 * bs());
  EXPECT_EQ(ZoneOpErr(ZoneOp::kReset, z), 0);  // reset of an empty zone is no error
  // finish of an empty zone -> full; closed -> full
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, z + 2), 0);
  EXPECT_EQ(Zone(z + 2).cond, ZoneCondition::kFull);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, z + 1), 0);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, z + 1), 0);
  EXPECT_EQ(Zone(z + 1).cond, ZoneCondition::kFull);
}

TEST_P(DeviceContract, InvalidZoneTransitionsFail) {
  const uint32_t z = FirstSeq();
  EXPECT_EQ(ZoneOpErr(ZoneOp::kClose, z), scsi() ? 0 : EIO);  // empty
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kEmpty);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, z), 0);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kOpen, z), scsi() ? 0 : EIO);   // full
  EXPECT_EQ(ZoneOpErr(ZoneOp::kClose, z), scsi() ? 0 : EIO);  // full
  EXPECT_EQ(WritePattern(Start(z), bs()), Rejected());        // full
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kFull);              // whatever the device said
  EXPECT_EQ(dev_->ManageZones(ZoneOp::kReset, info().nr_zones, 1).err(), EINVAL);
  EXPECT_EQ(dev_->ManageZones(ZoneOp::kReset, info().nr_zones - 1, 2).err(), EINVAL);
}

TEST_P(DeviceContract, ConventionalZonesTakeRandomWritesAndNoZoneCommands) {
  if (info().nr_conv_zones == 0) GTEST_SKIP() << "device has no conventional zones";
  const uint64_t s = Start(0);
  ASSERT_EQ(WritePattern(s + 10 * bs(), 2 * bs(), 7), 0);
  ASSERT_EQ(WritePattern(s + 2 * bs(), bs(), 7), 0);
  ASSERT_EQ(WritePattern(s + 10 * bs(), bs(), 9), 0);  // overwrite
  ExpectPattern(s + 2 * bs(), bs(), 7);
  ExpectPattern(s + 10 * bs(), bs(), 9);
  ExpectPattern(s + 11 * bs(), bs(), 7);
  ZoneInfo zi = Zone(0);
  EXPECT_EQ(zi.cond, ZoneCondition::kNotWp);
  for (ZoneOp op : {ZoneOp::kReset, ZoneOp::kOpen, ZoneOp::kClose, ZoneOp::kFinish}) {
    EXPECT_NE(ZoneOpErr(op, 0), 0) << ZoneOpName(op);
  }
  AlignedBuffer buf(bs());
  EXPECT_NE(dev_->Append(0, buf.data(), bs()).status().err(), 0);
  ExpectPattern(s + 2 * bs(), bs(), 7);
}

TEST_P(DeviceContract, ImplicitOpensBeyondTheOpenLimitCloseAnotherZone) {
  if (info().max_open == 0) GTEST_SKIP() << "device has no open zone limit";
  const uint32_t limit = info().max_open;
  const uint32_t want = std::min(limit + 2, info().max_active ? info().max_active : limit + 2);
  ASSERT_LE(want, NrSeq());
  for (uint32_t i = 0; i < want; ++i) {
    ASSERT_EQ(WritePattern(Start(FirstSeq() + i), bs()), 0) << "zone " << FirstSeq() + i;
  }
  auto n = CountConditions();
  EXPECT_LE(n[ZoneCondition::kImplicitOpen], limit);
  EXPECT_EQ(n[ZoneCondition::kImplicitOpen] + n[ZoneCondition::kClosed], want);
  for (uint32_t i = 0; i < want; ++i) ExpectPattern(Start(FirstSeq() + i), bs());
}

TEST_P(DeviceContract, ExplicitOpenBeyondTheOpenLimitFails) {
  if (info().max_open == 0) GTEST_SKIP() << "device has no open zone limit";
  const uint32_t limit = info().max_open;
  ASSERT_LT(limit + 1, NrSeq());
  for (uint32_t i = 0; i < limit; ++i) ASSERT_EQ(ZoneOpErr(ZoneOp::kOpen, FirstSeq() + i), 0);
  const uint32_t extra = FirstSeq() + limit;
  EXPECT_EQ(ZoneOpErr(ZoneOp::kOpen, extra), ETOOMANYREFS);
  // Explicitly-open zones are never closed to make room: a write fails too.
  EXPECT_EQ(WritePattern(Start(extra), bs()), ETOOMANYREFS);
  EXPECT_EQ(Zone(extra).cond, ZoneCondition::kEmpty);
  // Closing one frees a slot.
  ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, FirstSeq()), 0);
  EXPECT_EQ(WritePattern(Start(extra), bs()), 0);
}

TEST_P(DeviceContract, ActiveLimitFailsWithEoverflow) {
  if (info().max_active == 0) GTEST_SKIP() << "device has no active zone limit";
  const uint32_t limit = info().max_active;
  ASSERT_LT(limit + 1, NrSeq());
  for (uint32_t i = 0; i < limit; ++i) {
    ASSERT_EQ(WritePattern(Start(FirstSeq() + i), bs()), 0) << "zone " << FirstSeq() + i;
    ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, FirstSeq() + i), 0);
  }
  const uint32_t extra = FirstSeq() + limit;
  EXPECT_EQ(WritePattern(Start(extra), bs()), EOVERFLOW);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kOpen, extra), EOVERFLOW);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kFinish, extra), EOVERFLOW);
  EXPECT_EQ(Zone(extra).cond, ZoneCondition::kEmpty);
  // Closed zones can still be written (they are already active).
  EXPECT_EQ(WritePattern(Start(FirstSeq()) + bs(), bs()), 0);
  // Finishing (or resetting) one releases its active slot.
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, FirstSeq()), 0);
  EXPECT_EQ(WritePattern(Start(extra), bs()), 0);
}

TEST_P(DeviceContract, ManageAllZones) {
  for (uint32_t i = 0; i < 3; ++i) ASSERT_EQ(WritePattern(Start(FirstSeq() + i), bs()), 0);
  ASSERT_TRUE(dev_->ManageAllZones(ZoneOp::kClose).ok());
  auto n = CountConditions();
  EXPECT_EQ(n[ZoneCondition::kClosed], 3u);
  EXPECT_EQ(n[ZoneCondition::kImplicitOpen] + n[ZoneCondition::kExplicitOpen], 0u);
  ASSERT_TRUE(dev_->ManageAllZones(ZoneOp::kFinish).ok());
  n = CountConditions();
  EXPECT_EQ(n[ZoneCondition::kFull], 3u);
  ASSERT_TRUE(dev_->ManageAllZones(ZoneOp::kReset).ok());
  n = CountConditions();
  EXPECT_EQ(n[ZoneCondition::kEmpty], NrSeq());
}

TEST_P(DeviceContract, QueueDepthAboveOneCompletesInOrderPerZone) {
  constexpr int kPerZone = 32;
  constexpr int kZones = 3;
  const size_t len = 4 * bs();
  std::vector<AlignedBuffer> bufs;
  bufs.reserve(kPerZone * kZones);
  Batch batch;
  // Interleave submissions across zones so per-zone order is not trivially
  // the global order.
  for (int i = 0; i < kPerZone; ++i) {
    for (int z = 0; z < kZones; ++z) {
      const uint64_t off = Start(FirstSeq() + z) + i * len;
      bufs.emplace_back(len);
      FillPattern(bufs.back().data(), len, off, 3);
      batch.Add(IoOp::kWrite, off, bufs.back().data(), len);
    }
  }
  batch.SubmitAll(dev_.get());
  batch.Wait();
  std::map<uint32_t, uint64_t> last_completed;
  for (IoRequest* r : batch.completion_order()) {
    ASSERT_EQ(r->result, static_cast<int64_t>(len)) << "write at " << r->offset;
    const uint32_t z = info().ZoneOf(r->offset);
    if (last_completed.count(z)) {
      EXPECT_GT(r->offset, last_completed[z]) << "zone " << z;
    }
    last_completed[z] = r->offset;
  }
  for (int z = 0; z < kZones; ++z) {
    EXPECT_EQ(Zone(FirstSeq() + z).wp, Start(FirstSeq() + z) + kPerZone * len);
    ExpectPattern(Start(FirstSeq() + z), kPerZone * len, 3);
  }
  // Reads at depth: all the data back at once.
  Batch reads;
  std::vector<AlignedBuffer> rbufs;
  rbufs.reserve(kPerZone * kZones);
  for (int z = 0; z < kZones; ++z) {
    for (int i = 0; i < kPerZone; ++i) {
      rbufs.emplace_back(len);
      reads.Add(IoOp::kRead, Start(FirstSeq() + z) + i * len, rbufs.back().data(), len);
    }
  }
  reads.SubmitAll(dev_.get());
  reads.Wait();
  for (size_t i = 0; i < reads.requests().size(); ++i) {
    const IoRequest& r = *reads.requests()[i];
    ASSERT_EQ(r.result, static_cast<int64_t>(len));
    EXPECT_EQ(CheckPattern(rbufs[i].data(), len, r.offset, 3), -1) << "read at " << r.offset;
  }
}

TEST_P(DeviceContract, ZoneAppendReportsWhereDataLanded) {
  const uint32_t z = FirstSeq();
  AlignedBuffer a(2 * bs()), b(bs());
  std::memset(a.data(), 0xA1, a.size());
  std::memset(b.data(), 0xB2, b.size());
  auto first = dev_->Append(z, a.data(), a.size());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, Start(z));
  auto second = dev_->Append(z, b.data(), b.size());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, Start(z) + 2 * bs());
  EXPECT_EQ(Zone(z).wp, Start(z) + 3 * bs());
  AlignedBuffer r(3 * bs());
  ASSERT_TRUE(dev_->Read(Start(z), r.data(), r.size()).ok());
  EXPECT_EQ(r.data()[0], 0xA1);
  EXPECT_EQ(r.data()[2 * bs() - 1], 0xA1);
  EXPECT_EQ(r.data()[2 * bs()], 0xB2);
}

TEST_P(DeviceContract, ConcurrentAppendsLandContiguouslyWithoutOverlap) {
  const uint32_t z = FirstSeq() + 1;
  constexpr int kN = 32;
  const size_t len = 2 * bs();
  std::vector<AlignedBuffer> bufs;
  bufs.reserve(kN);
  Batch batch;
  for (int i = 0; i < kN; ++i) {
    bufs.emplace_back(len);
    std::memset(bufs.back().data(), i + 1, len);
    batch.Add(IoOp::kAppend, Start(z), bufs.back().data(), len);
  }
  batch.SubmitAll(dev_.get());
  batch.Wait();
  std::vector<uint64_t> landed;
  for (int i = 0; i < kN; ++i) {
    const IoRequest& r = *batch.requests()[i];
    ASSERT_EQ(r.result, static_cast<int64_t>(len)) << "append " << i;
    landed.push_back(r.landed);
    AlignedBuffer check(len);
    ASSERT_TRUE(dev_->Read(r.landed, check.data(), len).ok());
    EXPECT_TRUE(
        std::all_of(check.data(), check.data() + len, [i](uint8_t v) { return v == i + 1; }))
        << "append " << i << " at " << r.landed;
  }
  std::sort(landed.begin(), landed.end());
  for (int i = 0; i < kN; ++i) EXPECT_EQ(landed[i], Start(z) + i * len);
  EXPECT_EQ(Zone(z).wp, Start(z) + kN * len);
}

TEST_P(DeviceContract, AppendPastCapacityFails) {
  const uint32_t z = FirstSeq();
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, z), 0);
  AlignedBuffer b(bs());
  EXPECT_EQ(dev_->Append(z, b.data(), bs()).status().err(), EIO);
}

TEST_P(DeviceContract, IoLargerThanTheDeviceLimitIsSplitInOrder) {
  const size_t len = std::min<uint64_t>(info().zone_capacity,
                                        std::max<uint64_t>(4ull * info().max_io_bytes, 1 << 20));
  const size_t rounded = len / bs() * bs();
  const uint32_t z = FirstSeq() + 2;
  ASSERT_EQ(WritePattern(Start(z), rounded, 5), 0);
  EXPECT_EQ(Zone(z).wp, Start(z) + rounded);
  ExpectPattern(Start(z), rounded, 5);
}

TEST_P(DeviceContract, FlushSucceeds) {
  ASSERT_EQ(WritePattern(Start(FirstSeq()), bs()), 0);
  Status s = dev_->Flush();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_P(DeviceContract, ManyThreadsOnManyZones) {
  constexpr int kThreads = 4;
  constexpr int kWrites = 16;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t z = FirstSeq() + t;
      AlignedBuffer buf(bs());
      for (int i = 0; i < kWrites; ++i) {
        const uint64_t off = Start(z) + i * bs();
        FillPattern(buf.data(), bs(), off, 11);
        if (!dev_->Write(off, buf.data(), bs()).ok()) failures++;
        if (!dev_->Read(Start(z), buf.data(), bs()).ok()) failures++;
        std::vector<ZoneInfo> zones;
        if (!dev_->ReportZones(0, 0, &zones).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) ExpectPattern(Start(FirstSeq() + t), kWrites * bs(), 11);
}

// ---- Reopening (devices that keep their state across a restart) ----

TEST_P(DeviceContract, ZoneStateSurvivesReopen) {
  if (!persistent()) GTEST_SKIP() << "an unnamed mem: device lives only as long as its opener";
  const uint32_t z = FirstSeq();
  ASSERT_EQ(WritePattern(Start(z), 3 * bs()), 0);  // implicit open
  ASSERT_EQ(ZoneOpErr(ZoneOp::kOpen, z + 1), 0);   // explicit open, empty
  ASSERT_EQ(WritePattern(Start(z + 2), bs()), 0);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kFinish, z + 2), 0);  // full
  ASSERT_EQ(WritePattern(Start(z + 3), 2 * bs()), 0);
  ASSERT_EQ(ZoneOpErr(ZoneOp::kClose, z + 3), 0);  // closed
  if (info().nr_conv_zones > 0) {
    ASSERT_EQ(WritePattern(Start(0) + 5 * bs(), bs(), 4), 0);
  }
  ASSERT_TRUE(dev_->Flush().ok());
  Reopen();
  ASSERT_NE(dev_, nullptr);
  // The device stayed powered: open zones are still open (emu keeps them
  // across a clean close; a power cut closes them, see PowerCut below).
  ZoneInfo a = Zone(z);
  EXPECT_EQ(a.cond, ZoneCondition::kImplicitOpen);
  EXPECT_EQ(Zone(z + 1).cond, ZoneCondition::kExplicitOpen);
  EXPECT_EQ(a.wp, Start(z) + 3 * bs());
  EXPECT_EQ(Zone(z + 2).cond, ZoneCondition::kFull);
  EXPECT_EQ(Zone(z + 3).cond, ZoneCondition::kClosed);
  EXPECT_EQ(Zone(z + 3).wp, Start(z + 3) + 2 * bs());
  ExpectPattern(Start(z), 3 * bs());
  ExpectPattern(Start(z + 3), 2 * bs());
  if (info().nr_conv_zones > 0) ExpectPattern(Start(0) + 5 * bs(), bs(), 4);
  // Writing continues at the write pointer.
  EXPECT_EQ(WritePattern(Start(z) + 3 * bs(), bs()), 0);
}

TEST_P(DeviceContract, EmuDeviceIsOwnedByOneOpener) {
  if (GetParam().kind == "zbd" || !persistent()) {
    GTEST_SKIP() << "exclusive ownership is tested on emu: and named mem:";
  }
  auto second = OpenDevice(uri_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().err(), EBUSY);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
}

// ---- Fault injection (emulated backends) ----

TEST_P(DeviceContract, OfflineZoneFailsEveryIo) {
  SKIP_WITHOUT_FAULTS();
  const uint32_t z = FirstSeq();
  ASSERT_EQ(WritePattern(Start(z), bs()), 0);
  ASSERT_TRUE(dev_->faults()->SetZoneCondition(z, ZoneCondition::kOffline).ok());
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kOffline);
  EXPECT_EQ(WritePattern(Start(z) + bs(), bs()), EIO);
  AlignedBuffer buf(bs());
  EXPECT_EQ(dev_->Read(Start(z), buf.data(), bs()).status().err(), EIO);
  for (ZoneOp op : {ZoneOp::kReset, ZoneOp::kOpen, ZoneOp::kClose, ZoneOp::kFinish}) {
    EXPECT_EQ(ZoneOpErr(op, z), EIO) << ZoneOpName(op);
  }
  // Reset-all passes over it.
  ASSERT_TRUE(dev_->ManageAllZones(ZoneOp::kReset).ok());
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kOffline);
  // Only sequential zones change condition.
  if (info().nr_conv_zones > 0) {
    EXPECT_EQ(dev_->faults()->SetZoneCondition(0, ZoneCondition::kOffline).err(), EINVAL);
  }
  EXPECT_EQ(dev_->faults()->SetZoneCondition(z, ZoneCondition::kFull).err(), EINVAL);
}

TEST_P(DeviceContract, ReadOnlyZoneIsReadableButNotWritable) {
  SKIP_WITHOUT_FAULTS();
  const uint32_t z = FirstSeq();
  ASSERT_EQ(WritePattern(Start(z), 2 * bs()), 0);
  ASSERT_TRUE(dev_->faults()->SetZoneCondition(z, ZoneCondition::kReadOnly).ok());
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kReadOnly);
  ExpectPattern(Start(z), 2 * bs());
  EXPECT_EQ(WritePattern(Start(z) + 2 * bs(), bs()), EIO);
  EXPECT_EQ(ZoneOpErr(ZoneOp::kReset, z), EIO);
  // Read-only and offline zones use no open/active resources.
  auto n = CountConditions();
  EXPECT_EQ(n[ZoneCondition::kImplicitOpen], 0u);
  // Back in service: a fresh empty zone.
  ASSERT_TRUE(dev_->faults()->SetZoneCondition(z, ZoneCondition::kEmpty).ok());
  EXPECT_EQ(Zone(z).cond, ZoneCondition::kEmpty);
  EXPECT_EQ(WritePattern(Start(z), bs()), 0);
}

TEST_P(DeviceContract, FaultConditionsSurviveReopen) {
  SKIP_WITHOUT_FAULTS();
  if (!persistent()) GTEST_SKIP() << "an unnamed mem: device does not survive a reopen";
  ASSERT_TRUE(dev_->faults()->SetZoneCondition(FirstSeq(), ZoneCondition::kReadOnly).ok());
  ASSERT_TRUE(dev_->faults()->SetZoneCondition(FirstSeq() + 1, ZoneCondition::kOffline).ok());
  Reopen();
  EXPECT_EQ(Zone(FirstSeq()).cond, ZoneCondition::kReadOnly);
  EXPECT_EQ(Zone(FirstSeq() + 1).cond, ZoneCondition::kOffline);
}

TEST_P(DeviceContract, InjectedIoFailureHitsOnlyTheNextIoAtThatBlock) {
  SKIP_WITHOUT_FAULTS();
  const uint32_t z = FirstSeq();
  dev_->faults()->FailNextIo(IoOp::kWrite, Start(z) + bs());
  ASSERT_EQ(WritePattern(Start(z), bs()), 0);  // does not touch the block
  EXPECT_EQ(WritePattern(Start(z) + bs(), 2 * bs()), EIO);
  EXPECT_EQ(Zone(z).wp, Start(z) + bs());  // nothing was written
  EXPECT_EQ(WritePattern(Start(z) + bs(), 2 * bs()), 0);
  ExpectPattern(Start(z), 3 * bs());

  dev_->faults()->FailNextIo(IoOp::kRead, Start(z) + 2 * bs());
  AlignedBuffer buf(3 * bs());
  EXPECT_EQ(dev_->Read(Start(z), buf.data(), 3 * bs()).status().err(), EIO);
  ExpectPattern(Start(z), 3 * bs());

  dev_->faults()->FailNextIo(IoOp::kAppend, Start(z) + 3 * bs());
  EXPECT_EQ(dev_->Append(z, buf.data(), bs()).status().err(), EIO);
  EXPECT_TRUE(dev_->Append(z, buf.data(), bs()).ok());
}

// ReadInPieces: the bytes of one Read(), told prefix by prefix in order,
// each after its bytes are in the buffer; the last piece may be short.
TEST_P(DeviceContract, ReadInPiecesTellsEachPrefixAfterItsBytes) {
  const uint32_t z = FirstSeq();
  const size_t piece = 4 * bs();
  const size_t len = 10 * bs();
  const size_t many = 7 * bs();
  ASSERT_EQ(WritePattern(Start(z), std::max(len, many)), 0);
  AlignedBuffer buf(len);
  std::memset(buf.data(), 0xAB, len);
  std::vector<uint64_t> told;
  auto r = dev_->ReadInPieces(Start(z), buf.data(), len, piece, [&](uint64_t n) {
    EXPECT_EQ(CheckPattern(buf.data(), n, Start(z), 1), -1) << "told of " << n;
    told.push_back(n);
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, len);
  EXPECT_EQ(told, (std::vector<uint64_t>{piece, 2 * piece, len}));
  EXPECT_EQ(CheckPattern(buf.data(), len, Start(z), 1), -1);
  // Block by block.
  AlignedBuffer all(many);
  told.clear();
  r = dev_->ReadInPieces(Start(z), all.data(), many, bs(), [&](uint64_t n) { told.push_back(n); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(told.size(), many / bs());
  for (size_t i = 0; i < told.size(); ++i) EXPECT_EQ(told[i], (i + 1) * bs());
  EXPECT_EQ(CheckPattern(all.data(), many, Start(z), 1), -1);
}

// A failed piece fails the read with the device's error, naming the
// piece, and nothing is told from it on.
TEST_P(DeviceContract, ReadInPiecesStopsTellingAtAFailedPiece) {
  SKIP_WITHOUT_FAULTS();
  const uint32_t z = FirstSeq();
  const size_t piece = 2 * bs();
  ASSERT_EQ(WritePattern(Start(z), 4 * piece), 0);
  dev_->faults()->FailNextIo(IoOp::kRead, Start(z) + piece);
  AlignedBuffer buf(4 * piece);
  std::vector<uint64_t> told;
  auto r = dev_->ReadInPieces(Start(z), buf.data(), 4 * piece, piece,
                              [&](uint64_t n) { told.push_back(n); });
  EXPECT_EQ(r.status().err(), EIO);
  EXPECT_NE(r.status().message().find("at offset " + std::to_string(Start(z) + piece)),
            std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(told, std::vector<uint64_t>{piece});
}

TEST_P(DeviceContract, ReadInPiecesOfPartBlocksIsRefusedBeforeReading) {
  AlignedBuffer buf(4 * bs());
  bool told = false;
  for (size_t piece : {size_t{0}, size_t{bs() / 2}, size_t{bs() + bs() / 2}}) {
    auto r = dev_->ReadInPieces(Start(FirstSeq()), buf.data(), 4 * bs(), piece,
                                [&](uint64_t) { told = true; });
    EXPECT_EQ(r.status().err(), EINVAL) << piece;
    EXPECT_NE(r.status().message().find("blocks"), std::string::npos) << r.status().ToString();
  }
  EXPECT_FALSE(told);
}

TEST_P(DeviceContract, WritePointerMovedBehindTheLayersBack) {
  SKIP_WITHOUT_FAULTS();
  const uint32_t z = FirstSeq();
  ASSERT_EQ(WritePattern(Start(z), 4 * bs()), 0);
  ASSERT_TRUE(dev_->faults()->MoveWritePointer(z, Start(z) + 2 * bs()).ok());
  EXPECT_EQ(Zone(z).wp, Start(z) + 2 * bs());
  ExpectPattern(Start(z), 2 * bs());
  ExpectZeros(Start(z) + 2 * bs(), 2 * bs());
  EXPECT_EQ(WritePattern(Start(z) + 4 * bs(), bs()), EIO);
  EXPECT_EQ(WritePattern(Start(z) + 2 * bs(), bs()), 0);
  // Forward: the skipped range reads as zeros.
  ASSERT_TRUE(dev_->faults()->MoveWritePointer(z, Start(z) + 8 * bs()).ok());
  ExpectZeros(Start(z) + 3 * bs(), 5 * bs());
  EXPECT_EQ(WritePattern(Start(z) + 8 * bs(), bs()), 0);
  EXPECT_EQ(dev_->faults()->MoveWritePointer(z, Start(z) + info().zone_capacity + bs()).err(),
            EINVAL);
}

TEST_P(DeviceContract, PowerCutDropsUnacknowledgedWrites) {
  SKIP_WITHOUT_FAULTS();
  const uint32_t z = FirstSeq();
  constexpr int kN = 10;
  constexpr int kKept = 3;
  dev_->faults()->PowerCutAfter(kKept);
  std::vector<AlignedBuffer> bufs;
  bufs.reserve(kN);
  Batch batch;
  for (int i = 0; i < kN; ++i) {
    const uint64_t off = Start(z) + i * bs();
    bufs.emplace_back(bs());
    FillPattern(bufs.back().data(), bs(), off, 2);
    batch.Add(IoOp::kWrite, off, bufs.back().data(), bs());
  }
  batch.SubmitAll(dev_.get());
  batch.Wait();
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(batch.requests()[i]->result, i < kKept ? int64_t(bs()) : -EIO) << "write " << i;
  }
  EXPECT_TRUE(dev_->faults()->powered_off());
  std::vector<ZoneInfo> zones;
  EXPECT_EQ(dev_->ReportZones(0, 0, &zones).err(), EIO);
  EXPECT_EQ(dev_->Flush().err(), EIO);
  if (persistent()) {
    Reopen();  // the media outlives the device object
  } else {
    ASSERT_TRUE(dev_->faults()->PowerOn().ok());
  }
  ZoneInfo zi = Zone(z);
  EXPECT_EQ(zi.wp, Start(z) + kKept * bs());
  EXPECT_EQ(zi.cond, ZoneCondition::kClosed);
  ExpectPattern(Start(z), kKept * bs(), 2);
  EXPECT_EQ(WritePattern(Start(z) + kKept * bs(), bs()), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceContract,
                         ::testing::ValuesIn(testing::BackendsUnderTest()),
                         [](const ::testing::TestParamInfo<BackendParam>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace zfile
