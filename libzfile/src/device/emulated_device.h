// EmulatedDevice: a zoned device in software, behaving like null_blk zoned.
//
// It implements the zone state machine (empty, implicit/explicit open,
// closed, full, read-only, offline), the open/active limits with null_blk's
// rules (an implicitly-open zone is closed to make room for another; an
// explicitly-open one never is), zone append, and fault injection. Data
// lives in a ZoneStore: memory for mem:, zone files for emu:.
//
// Execution: with `workers` = 0 a request runs on the submitting thread
// (like null_blk with irqmode=0); otherwise each zone is bound to one of
// `workers` threads, whose FIFO gives per-zone submission order.
#ifndef ZFILE_DEVICE_EMULATED_DEVICE_H_
#define ZFILE_DEVICE_EMULATED_DEVICE_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

#include "device/emulated_geometry.h"
#include "device/zone_store.h"
#include "device/zoned_device.h"

namespace zfile {

struct EmulatedOptions {
  unsigned workers = 0;
  // Armed faults from URI parameters (fail_read=, fail_write=,
  // power_cut_after=); UINT64_MAX: none.
  uint64_t fail_read_at = UINT64_MAX;
  uint64_t fail_write_at = UINT64_MAX;
  uint64_t power_cut_after = UINT64_MAX;

  // Reads workers, fail_read, fail_write, power_cut_after.
  Status ReadFromUri(const Uri& uri);
};

class EmulatedDevice final : public ZonedDevice, public FaultInjector {
 public:
  // `zones` gives the initial state of every zone (from the store's
  // contents). The store is told at once to forget open zones (a crash is
  // a power cycle) and, at a clean destruction, to remember them.
  EmulatedDevice(DeviceInfo info, std::vector<ZoneInfo> zones, std::unique_ptr<ZoneStore> store,
                 const EmulatedOptions& options);
  ~EmulatedDevice() override;

  const DeviceInfo& info() const override { return info_; }
  Status ReportZones(uint32_t first, uint32_t count, std::vector<ZoneInfo>* zones) override;
  Status ManageZones(ZoneOp op, uint32_t first, uint32_t count) override;
  Status ManageAllZones(ZoneOp op) override;
  void Submit(IoRequest* req) override;
  Status Flush() override;
  FaultInjector* faults() override { return this; }

  // FaultInjector
  Status SetZoneCondition(uint32_t zone, ZoneCondition cond) override;
  Status MoveWritePointer(uint32_t zone, uint64_t wp) override;
  void FailNextIoWith(IoOp op, uint64_t offset, int err) override;
  void FailNextReport() override;
  void HoldNextIo(IoOp op, uint64_t offset) override;
  size_t HeldIoCount() const override;
  void ReleaseHeldIo(size_t count) override;
  void ReleaseLastHeldIo() override;
  void PowerCutAfter(uint64_t writes) override;
  bool powered_off() const override { return powered_off_.load(); }
  Status PowerOn() override;

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<IoRequest*> queue;
    std::thread thread;
  };

  void WorkerLoop(Worker* w);
  // Runs `req` (valid, not held) inline or queues it to its zone's worker.
  void Start(IoRequest* req);
  void Execute(IoRequest* req);
  int64_t ExecuteRead(uint64_t offset, void* buf, size_t len);
  int64_t ExecuteWrite(uint64_t offset, const void* buf, size_t len);
  int64_t ExecuteAppend(uint64_t offset, const void* buf, size_t len, uint64_t* landed);
  // Write of [offset, offset+len) inside zone `z`, holding the zone's lock.
  int64_t WriteInZone(uint32_t z, uint64_t offset, const void* buf, size_t len);

  // Zone state, under meta_mu_.
  void SetCondLocked(ZoneInfo& zone, ZoneCondition cond);
  int CheckActiveLocked() const;           // 0 or -EOVERFLOW
  int CheckOpenLocked(uint32_t for_zone);  // 0 or -errno; may close an implicit-open zone
  int CheckResourcesLocked(ZoneInfo& zone);
  int ZoneOpLocked(ZoneOp op, ZoneInfo& zone);
  // The errno of an armed failure of this I/O (taken: it fires once), or 0.
  int ConsumeInjectedFailure(IoOp op, uint64_t offset, size_t len);
  // Takes `req` into held_ if a hold is armed for it, requests are held
  // already or being released (HoldNextIo); false when it is to run now.
  bool HoldIfArmed(IoRequest* req);
  // Records read-only/offline zones, and open zones when `with_open_zones`.
  Status SaveConditionsLocked(bool with_open_zones);

  const DeviceInfo info_;
  std::unique_ptr<ZoneStore> store_;

  // Zone data order: a zone's writers and management ops hold its lock
  // exclusively, readers shared. Lock order: zone lock, then meta_mu_.
  std::unique_ptr<std::shared_mutex[]> zone_mu_;

  mutable std::mutex meta_mu_;
  std::vector<ZoneInfo> zones_;
  uint32_t nr_imp_open_ = 0, nr_exp_open_ = 0, nr_closed_ = 0;
  uint32_t imp_close_cursor_ = 0;
  struct InjectedFailure {
    IoOp op;
    uint64_t block;
    int err;
  };
  std::vector<InjectedFailure> failures_;
  std::atomic<bool> has_failures_{false};
  bool fail_next_report_ = false;  // FailNextReport
  // HoldNextIo: the armed holds (op, block), the requests held, and how
  // many ReleaseHeldIo calls are starting some (requests submitted
  // meanwhile are held, to start behind them).
  std::vector<std::pair<IoOp, uint64_t>> holds_;
  std::deque<IoRequest*> held_;
  int releasing_ = 0;
  std::mutex release_mu_;  // one release at a time, so they start in order
  std::atomic<bool> has_holds_{false};

  std::atomic<bool> powered_off_{false};
  std::atomic<uint64_t> writes_until_cut_{UINT64_MAX};

  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
};

// Builds an emulated device from its geometry and what its store holds:
// `lengths[z]` is sequential zone z's stored length (its write pointer
// offset), `conditions[z]` kReadOnly/kOffline for zones taken out of service,
// kImplicitOpen/kExplicitOpen for zones open at a clean shutdown (kEmpty
// otherwise). Both have one entry per zone. EINVAL (naming the zone)
// when a stored length cannot be a write pointer.
Result<std::unique_ptr<ZonedDevice>> MakeEmulatedDevice(
    const EmulatedGeometry& geometry, std::string uri, std::string backend,
    std::unique_ptr<ZoneStore> store, const std::vector<uint64_t>& lengths,
    const std::vector<ZoneCondition>& conditions, const EmulatedOptions& options);

}  // namespace zfile

#endif  // ZFILE_DEVICE_EMULATED_DEVICE_H_
