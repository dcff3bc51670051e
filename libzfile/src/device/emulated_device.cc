#include "device/emulated_device.h"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

namespace zfile {

Status EmulatedOptions::ReadFromUri(const Uri& uri) {
  uint64_t v = workers;
  ZF_RETURN_IF_ERROR(uri.GetUint("workers", &v));
  if (v > 64) return Status(EINVAL, "workers=" + std::to_string(v) + " is too many (at most 64)");
  workers = static_cast<unsigned>(v);
  ZF_RETURN_IF_ERROR(uri.GetSize("fail_read", &fail_read_at));
  ZF_RETURN_IF_ERROR(uri.GetSize("fail_write", &fail_write_at));
  ZF_RETURN_IF_ERROR(uri.GetUint("power_cut_after", &power_cut_after));
  return Status();
}

EmulatedDevice::EmulatedDevice(DeviceInfo info, std::vector<ZoneInfo> zones,
                               std::unique_ptr<ZoneStore> store, const EmulatedOptions& options)
    : info_(std::move(info)),
      store_(std::move(store)),
      zone_mu_(new std::shared_mutex[info_.nr_zones]),
      zones_(std::move(zones)) {
  for (ZoneInfo& z : zones_) {
    const ZoneCondition cond = z.cond;
    z.cond = ZoneCondition::kEmpty;
    SetCondLocked(z, cond);  // counts open and closed zones
  }
  // From here until a clean shutdown, the store must describe a power cut:
  // open zones come back closed.
  Status s = SaveConditionsLocked(/*with_open_zones=*/false);
  (void)s;  // the zone state in memory is right; the next save retries
  if (options.fail_read_at != UINT64_MAX) FailNextIo(IoOp::kRead, options.fail_read_at);
  if (options.fail_write_at != UINT64_MAX) FailNextIo(IoOp::kWrite, options.fail_write_at);
  if (options.power_cut_after != UINT64_MAX) PowerCutAfter(options.power_cut_after);
  for (unsigned i = 0; i < options.workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->thread = std::thread([this, raw = w.get()] { WorkerLoop(raw); });
    workers_.push_back(std::move(w));
  }
}

EmulatedDevice::~EmulatedDevice() {
  // Start what is still held: no test is left to release it, and its
  // submitters would wait for ever.
  ReleaseHeldIo(0);
  stopping_ = true;
  for (auto& w : workers_) {
    { std::lock_guard<std::mutex> lock(w->mu); }
    w->cv.notify_all();
  }
  for (auto& w : workers_) w->thread.join();
  // A clean shutdown keeps the device "powered": open zones stay open for
  // the next opener, as on a kernel device. After a power cut they do not.
  std::lock_guard<std::mutex> lock(meta_mu_);
  if (!powered_off_) {
    Status s = SaveConditionsLocked(/*with_open_zones=*/true);
    (void)s;  // nothing to report to from a destructor; zones come back closed
  }
}

void EmulatedDevice::WorkerLoop(Worker* w) {
  for (;;) {
    IoRequest* req = nullptr;
    {
      std::unique_lock<std::mutex> lock(w->mu);
      w->cv.wait(lock, [&] { return !w->queue.empty() || stopping_; });
      if (w->queue.empty()) return;  // stopping, and every queued request has completed
      req = w->queue.front();
      w->queue.pop_front();
    }
    Execute(req);
  }
}

void EmulatedDevice::Submit(IoRequest* req) {
  Status valid = ValidateRequest(*req);
  if (!valid.ok()) {
    req->result = -valid.err();
    req->on_complete(req);
    return;
  }
  if (has_holds_ && HoldIfArmed(req)) return;
  Start(req);
}

void EmulatedDevice::Start(IoRequest* req) {
  if (workers_.empty()) {
    Execute(req);
    return;
  }
  Worker* w = workers_[info_.ZoneOf(req->offset) % workers_.size()].get();
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->queue.push_back(req);
  }
  w->cv.notify_one();
}

void EmulatedDevice::Execute(IoRequest* req) {
  if (powered_off_) {
    req->result = -EIO;
  } else {
    switch (req->op) {
      case IoOp::kRead:
        req->result = ExecuteRead(req->offset, req->buf, req->len);
        break;
      case IoOp::kWrite:
        req->result = ExecuteWrite(req->offset, req->buf, req->len);
        break;
      case IoOp::kAppend:
        req->result = ExecuteAppend(req->offset, req->buf, req->len, &req->landed);
        break;
    }
  }
  // A write is acknowledged only if the power was still on when it finished;
  // the write that uses up a power-cut budget is the last one acknowledged.
  if (req->op != IoOp::kRead && req->result >= 0 &&
      (powered_off_ || writes_until_cut_ != UINT64_MAX)) {
    std::lock_guard<std::mutex> lock(meta_mu_);
    if (powered_off_) {
      req->result = -EIO;
    } else if (writes_until_cut_ != UINT64_MAX && --writes_until_cut_ == 0) {
      writes_until_cut_ = UINT64_MAX;
      powered_off_ = true;
    }
  }
  req->on_complete(req);
}

int64_t EmulatedDevice::ExecuteRead(uint64_t offset, void* buf, size_t len) {
  auto* out = static_cast<uint8_t*>(buf);
  if (const int err = ConsumeInjectedFailure(IoOp::kRead, offset, len); err != 0) return -err;
  size_t done = 0;
  while (done < len) {
    const uint64_t off = offset + done;
    const uint32_t z = info_.ZoneOf(off);
    const uint64_t zone_end = info_.ZoneStart(z) + info_.zone_size;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, zone_end - off));
    std::shared_lock<std::shared_mutex> zone_lock(zone_mu_[z]);
    ZoneInfo zone;
    {
      std::lock_guard<std::mutex> lock(meta_mu_);
      zone = zones_[z];
    }
    if (zone.cond == ZoneCondition::kOffline) return -EIO;
    size_t valid = n;
    if (zone.sequential()) {
      valid = zone.wp > off ? static_cast<size_t>(std::min<uint64_t>(n, zone.wp - off)) : 0;
    }
    if (valid > 0) {
      Status s = store_->Read(z, off - zone.start, out + done, valid);
      if (!s.ok()) return -s.err();
    }
    std::memset(out + done + valid, 0, n - valid);
    done += n;
  }
  return static_cast<int64_t>(len);
}

int64_t EmulatedDevice::ExecuteWrite(uint64_t offset, const void* buf, size_t len) {
  auto* in = static_cast<const uint8_t*>(buf);
  if (const int err = ConsumeInjectedFailure(IoOp::kWrite, offset, len); err != 0) return -err;
  size_t done = 0;
  while (done < len) {
    const uint64_t off = offset + done;
    const uint32_t z = info_.ZoneOf(off);
    const uint64_t zone_end = info_.ZoneStart(z) + info_.zone_size;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, zone_end - off));
    std::unique_lock<std::shared_mutex> zone_lock(zone_mu_[z]);
    int64_t r = WriteInZone(z, off, in + done, n);
    if (r < 0) return r;
    done += n;
  }
  return static_cast<int64_t>(len);
}

int64_t EmulatedDevice::ExecuteAppend(uint64_t offset, const void* buf, size_t len,
                                      uint64_t* landed) {
  const uint32_t z = info_.ZoneOf(offset);
  std::unique_lock<std::shared_mutex> zone_lock(zone_mu_[z]);
  uint64_t wp;
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    if (!zones_[z].sequential()) return -EIO;  // the block layer refuses appends there
    wp = zones_[z].wp;
  }
  if (const int err = ConsumeInjectedFailure(IoOp::kWrite, wp, len); err != 0) return -err;
  // Holding the zone lock, nobody else can move the write pointer: the
  // write below lands exactly at `wp`.
  int64_t r = WriteInZone(z, wp, buf, len);
  if (r >= 0) *landed = wp;
  return r;
}

int64_t EmulatedDevice::WriteInZone(uint32_t z, uint64_t offset, const void* buf, size_t len) {
  ZoneInfo zone;
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    if (powered_off_) return -EIO;
    ZoneInfo& zr = zones_[z];
    if (zr.sequential()) {
      switch (zr.cond) {
        case ZoneCondition::kFull:
        case ZoneCondition::kReadOnly:
        case ZoneCondition::kOffline:
          return -EIO;
        default:
          break;
      }
      if (offset != zr.wp || offset + len > zr.start + zr.capacity) return -EIO;
      if (zr.cond == ZoneCondition::kEmpty || zr.cond == ZoneCondition::kClosed) {
        int r = CheckResourcesLocked(zr);
        if (r != 0) return r;
        SetCondLocked(zr, ZoneCondition::kImplicitOpen);
      }
    }
    zone = zr;
  }
  Status s = store_->Write(z, offset - zone.start, buf, len);
  if (!s.ok()) return -s.err();
  if (zone.sequential()) {
    std::lock_guard<std::mutex> lock(meta_mu_);
    ZoneInfo& zr = zones_[z];
    zr.wp += len;
    if (zr.wp == zr.start + zr.capacity) SetCondLocked(zr, ZoneCondition::kFull);
  }
  return static_cast<int64_t>(len);
}

void EmulatedDevice::SetCondLocked(ZoneInfo& zone, ZoneCondition cond) {
  auto count = [this](ZoneCondition c) -> uint32_t* {
    switch (c) {
      case ZoneCondition::kImplicitOpen:
        return &nr_imp_open_;
      case ZoneCondition::kExplicitOpen:
        return &nr_exp_open_;
      case ZoneCondition::kClosed:
        return &nr_closed_;
      default:
        return nullptr;
    }
  };
  if (uint32_t* c = count(zone.cond)) --*c;
  zone.cond = cond;
  if (uint32_t* c = count(cond)) ++*c;
}

int EmulatedDevice::CheckActiveLocked() const {
  if (info_.max_active == 0) return 0;
  if (nr_imp_open_ + nr_exp_open_ + nr_closed_ < info_.max_active) return 0;
  return -EOVERFLOW;
}

int EmulatedDevice::CheckOpenLocked(uint32_t for_zone) {
  if (info_.max_open == 0) return 0;
  if (nr_imp_open_ + nr_exp_open_ < info_.max_open) return 0;
  // Like null_blk: make room by closing an implicitly-open zone, round
  // robin. A zone whose lock is held (I/O or management in progress on it)
  // is passed over rather than changed under its user's feet.
  if (nr_imp_open_ > 0 && CheckActiveLocked() == 0) {
    const uint32_t n = info_.nr_zones;
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t z = (imp_close_cursor_ + i) % n;
      if (z == for_zone || zones_[z].cond != ZoneCondition::kImplicitOpen) continue;
      if (!zone_mu_[z].try_lock()) continue;
      ZoneInfo& victim = zones_[z];
      SetCondLocked(victim,
                    victim.wp == victim.start ? ZoneCondition::kEmpty : ZoneCondition::kClosed);
      zone_mu_[z].unlock();
      imp_close_cursor_ = (z + 1) % n;
      return 0;
    }
  }
  return -ETOOMANYREFS;
}

int EmulatedDevice::CheckResourcesLocked(ZoneInfo& zone) {
  const uint32_t z = info_.ZoneOf(zone.start);
  switch (zone.cond) {
    case ZoneCondition::kEmpty: {
      int r = CheckActiveLocked();
      return r != 0 ? r : CheckOpenLocked(z);
    }
    case ZoneCondition::kClosed:
      return CheckOpenLocked(z);
    default:
      return 0;
  }
}

int EmulatedDevice::ZoneOpLocked(ZoneOp op, ZoneInfo& zone) {
  if (!zone.sequential()) return -EIO;
  if (zone.cond == ZoneCondition::kReadOnly || zone.cond == ZoneCondition::kOffline) return -EIO;
  switch (op) {
    case ZoneOp::kReset:
      SetCondLocked(zone, ZoneCondition::kEmpty);
      zone.wp = zone.start;
      return 0;
    case ZoneOp::kOpen:
      switch (zone.cond) {
        case ZoneCondition::kExplicitOpen:
          return 0;
        case ZoneCondition::kEmpty:
        case ZoneCondition::kClosed: {
          int r = CheckResourcesLocked(zone);
          if (r != 0) return r;
          break;
        }
        case ZoneCondition::kImplicitOpen:
          break;
        default:
          return -EIO;  // full
      }
      SetCondLocked(zone, ZoneCondition::kExplicitOpen);
      return 0;
    case ZoneOp::kClose:
      switch (zone.cond) {
        case ZoneCondition::kClosed:
          return 0;
        case ZoneCondition::kImplicitOpen:
        case ZoneCondition::kExplicitOpen:
          SetCondLocked(zone,
                        zone.wp == zone.start ? ZoneCondition::kEmpty : ZoneCondition::kClosed);
          return 0;
        default:
          return -EIO;  // empty or full: null_blk refuses
      }
    case ZoneOp::kFinish:
      switch (zone.cond) {
        case ZoneCondition::kFull:
          return 0;
        case ZoneCondition::kEmpty:
        case ZoneCondition::kClosed: {
          int r = CheckResourcesLocked(zone);
          if (r != 0) return r;
          break;
        }
        default:
          break;
      }
      SetCondLocked(zone, ZoneCondition::kFull);
      zone.wp = zone.start + zone.len;  // null_blk reports a finished zone's wp at its end
      return 0;
  }
  return -EINVAL;
}

Status EmulatedDevice::ReportZones(uint32_t first, uint32_t count, std::vector<ZoneInfo>* zones) {
  if (count == 0 && first < info_.nr_zones) count = info_.nr_zones - first;
  ZF_RETURN_IF_ERROR(ValidateZoneRange(first, count));
  std::lock_guard<std::mutex> lock(meta_mu_);
  if (powered_off_) return Status(EIO, "device is powered off (injected power cut)");
  if (fail_next_report_) {
    fail_next_report_ = false;
    return Status(EIO, "zone report failed (injected)");
  }
  zones->assign(zones_.begin() + first, zones_.begin() + first + count);
  return Status();
}

Status EmulatedDevice::ManageZones(ZoneOp op, uint32_t first, uint32_t count) {
  ZF_RETURN_IF_ERROR(ValidateZoneRange(first, count));
  for (uint32_t z = first; z < first + count; ++z) {
    std::unique_lock<std::shared_mutex> zone_lock(zone_mu_[z]);
    int r;
    ZoneInfo before;
    {
      std::lock_guard<std::mutex> lock(meta_mu_);
      before = zones_[z];
      r = powered_off_ ? -EIO : ZoneOpLocked(op, zones_[z]);
    }
    if (r == 0 && op == ZoneOp::kReset) {
      ZF_RETURN_IF_ERROR(store_->SetLength(z, 0));
    } else if (r == 0 && op == ZoneOp::kFinish) {
      ZF_RETURN_IF_ERROR(store_->SetLength(z, info_.zone_size));
    }
    if (r != 0) {
      if (powered_off_) return Status(EIO, "device is powered off (injected power cut)");
      return ZoneOpError(op, z, -r, &before);
    }
  }
  return Status();
}

Status EmulatedDevice::ManageAllZones(ZoneOp op) {
  // The NVMe "select all" sets: reset takes every zone with data or
  // resources, open the closed ones, close the open ones, finish the open
  // and closed ones. Read-only and offline zones are never selected.
  std::vector<uint32_t> selected;
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    for (const ZoneInfo& z : zones_) {
      if (!z.sequential()) continue;
      bool pick = false;
      switch (op) {
        case ZoneOp::kReset:
          pick = z.active() || z.cond == ZoneCondition::kFull;
          break;
        case ZoneOp::kOpen:
          pick = z.cond == ZoneCondition::kClosed;
          break;
        case ZoneOp::kClose:
          pick = z.open();
          break;
        case ZoneOp::kFinish:
          pick = z.active();
          break;
      }
      if (pick) selected.push_back(info_.ZoneOf(z.start));
    }
  }
  for (uint32_t z : selected) ZF_RETURN_IF_ERROR(ManageZones(op, z, 1));
  return Status();
}

Status EmulatedDevice::Flush() {
  if (powered_off_) return Status(EIO, "flush failed: device is powered off (injected power cut)");
  return store_->Flush();
}

Status EmulatedDevice::SaveConditionsLocked(bool with_open_zones) {
  std::vector<ZoneCondition> conds(zones_.size(), ZoneCondition::kEmpty);
  for (size_t i = 0; i < zones_.size(); ++i) {
    const ZoneCondition c = zones_[i].cond;
    if (c == ZoneCondition::kReadOnly || c == ZoneCondition::kOffline ||
        (with_open_zones && zones_[i].open())) {
      conds[i] = c;
    }
  }
  return store_->SaveConditions(conds);
}

Status EmulatedDevice::SetZoneCondition(uint32_t zone, ZoneCondition cond) {
  ZF_RETURN_IF_ERROR(ValidateZoneRange(zone, 1));
  if (cond != ZoneCondition::kReadOnly && cond != ZoneCondition::kOffline &&
      cond != ZoneCondition::kEmpty) {
    return Status(EINVAL, "a zone can only be made readonly, offline or brought back empty, not " +
                              std::string(ConditionName(cond)));
  }
  std::unique_lock<std::shared_mutex> zone_lock(zone_mu_[zone]);
  std::lock_guard<std::mutex> lock(meta_mu_);
  ZoneInfo& z = zones_[zone];
  if (!z.sequential()) {
    return Status(EINVAL, "zone " + std::to_string(zone) +
                              " is conventional: only sequential zones can change condition");
  }
  if (cond == ZoneCondition::kEmpty) {
    ZF_RETURN_IF_ERROR(store_->SetLength(zone, 0));
    z.wp = z.start;
  }
  SetCondLocked(z, cond);
  return SaveConditionsLocked(/*with_open_zones=*/false);
}

Status EmulatedDevice::MoveWritePointer(uint32_t zone, uint64_t wp) {
  ZF_RETURN_IF_ERROR(ValidateZoneRange(zone, 1));
  std::unique_lock<std::shared_mutex> zone_lock(zone_mu_[zone]);
  std::lock_guard<std::mutex> lock(meta_mu_);
  ZoneInfo& z = zones_[zone];
  if (!z.sequential()) return Status(EINVAL, "zone " + std::to_string(zone) + " is conventional");
  if (z.cond == ZoneCondition::kReadOnly || z.cond == ZoneCondition::kOffline) {
    return Status(EINVAL,
                  "zone " + std::to_string(zone) + " is " + std::string(ConditionName(z.cond)));
  }
  if (wp < z.start || wp > z.start + z.capacity || wp % info_.block_size != 0) {
    return Status(EINVAL, "write pointer " + std::to_string(wp) +
                              " is not a block-aligned offset "
                              "within zone " +
                              std::to_string(zone) + "'s capacity");
  }
  ZF_RETURN_IF_ERROR(store_->SetLength(zone, wp - z.start));
  z.wp = wp;
  if (wp == z.start) {
    SetCondLocked(z, ZoneCondition::kEmpty);
  } else if (wp == z.start + z.capacity) {
    SetCondLocked(z, ZoneCondition::kFull);
  } else if (z.cond == ZoneCondition::kEmpty || z.cond == ZoneCondition::kFull) {
    // Needs an active slot it may not get: a moved write pointer is a
    // fault, and faults do not respect limits.
    SetCondLocked(z, ZoneCondition::kClosed);
  }
  return Status();
}

void EmulatedDevice::FailNextIoWith(IoOp op, uint64_t offset, int err) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  failures_.push_back(
      {op == IoOp::kAppend ? IoOp::kWrite : op, offset / info_.block_size, err > 0 ? err : EIO});
  has_failures_ = true;
}

int EmulatedDevice::ConsumeInjectedFailure(IoOp op, uint64_t offset, size_t len) {
  if (!has_failures_) return 0;
  std::lock_guard<std::mutex> lock(meta_mu_);
  const uint64_t first = offset / info_.block_size;
  const uint64_t last = (offset + len - 1) / info_.block_size;
  for (auto it = failures_.begin(); it != failures_.end(); ++it) {
    if (it->op == op && it->block >= first && it->block <= last) {
      const int err = it->err;
      failures_.erase(it);
      has_failures_ = !failures_.empty();
      return err;
    }
  }
  return 0;
}

void EmulatedDevice::FailNextReport() {
  std::lock_guard<std::mutex> lock(meta_mu_);
  fail_next_report_ = true;
}

void EmulatedDevice::HoldNextIo(IoOp op, uint64_t offset) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  holds_.emplace_back(op == IoOp::kAppend ? IoOp::kWrite : op, offset / info_.block_size);
  has_holds_ = true;
}

bool EmulatedDevice::HoldIfArmed(IoRequest* req) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  if (held_.empty() && releasing_ == 0) {
    const IoOp op = req->op == IoOp::kAppend ? IoOp::kWrite : req->op;
    const uint64_t first = req->offset / info_.block_size;
    const uint64_t last = (req->offset + std::max<size_t>(req->len, 1) - 1) / info_.block_size;
    auto armed = std::find_if(holds_.begin(), holds_.end(), [&](const auto& h) {
      return h.first == op && h.second >= first && h.second <= last;
    });
    if (armed == holds_.end()) return false;
    holds_.erase(armed);
  }
  held_.push_back(req);
  return true;
}

size_t EmulatedDevice::HeldIoCount() const {
  std::lock_guard<std::mutex> lock(meta_mu_);
  return held_.size();
}

void EmulatedDevice::ReleaseHeldIo(size_t count) {
  std::lock_guard<std::mutex> one_at_a_time(release_mu_);
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    ++releasing_;
    has_holds_ = true;
    if (count == 0) holds_.clear();
  }
  for (size_t started = 0;; ++started) {
    IoRequest* req = nullptr;
    {
      // Stops under the lock that finds nothing left to start: a request
      // submitted after that is not held (unless armed), and one before
      // it was held and is started here.
      std::lock_guard<std::mutex> lock(meta_mu_);
      if (held_.empty() || (count != 0 && started == count)) {
        --releasing_;
        has_holds_ = !holds_.empty() || !held_.empty() || releasing_ != 0;
        return;
      }
      req = held_.front();
      held_.pop_front();
    }
    Start(req);
  }
}

void EmulatedDevice::ReleaseLastHeldIo() {
  std::lock_guard<std::mutex> one_at_a_time(release_mu_);
  IoRequest* req = nullptr;
  {
    std::lock_guard<std::mutex> lock(meta_mu_);
    if (held_.empty()) return;
    req = held_.back();
    held_.pop_back();
    has_holds_ = !holds_.empty() || !held_.empty() || releasing_ != 0;
  }
  Start(req);
}

void EmulatedDevice::PowerCutAfter(uint64_t writes) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  if (writes == 0) {
    powered_off_ = true;
    writes_until_cut_ = UINT64_MAX;
  } else {
    writes_until_cut_ = writes;
  }
}

Status EmulatedDevice::PowerOn() {
  std::lock_guard<std::mutex> lock(meta_mu_);
  for (ZoneInfo& z : zones_) {
    if (z.open()) {
      SetCondLocked(z, z.wp == z.start ? ZoneCondition::kEmpty : ZoneCondition::kClosed);
    }
  }
  writes_until_cut_ = UINT64_MAX;
  powered_off_ = false;
  return Status();
}

Result<std::unique_ptr<ZonedDevice>> MakeEmulatedDevice(
    const EmulatedGeometry& g, std::string uri, std::string backend,
    std::unique_ptr<ZoneStore> store, const std::vector<uint64_t>& lengths,
    const std::vector<ZoneCondition>& conditions, const EmulatedOptions& options) {
  DeviceInfo info;
  info.uri = std::move(uri);
  info.backend = std::move(backend);
  info.model = "host-managed";
  info.capacity = g.size;
  info.zone_size = g.zone_size;
  info.zone_capacity = g.capacity_of_seq_zone();
  info.nr_zones = g.nr_zones();
  info.nr_conv_zones = g.nr_conv_zones;
  info.block_size = g.block_size;
  info.max_open = g.max_open;
  info.max_active = g.max_active;
  info.max_io_bytes = 1u << 30;  // no device command limit: nothing to split
  info.native_append = true;

  std::vector<ZoneInfo> zones(info.nr_zones);
  for (uint32_t i = 0; i < info.nr_zones; ++i) {
    ZoneInfo& z = zones[i];
    z.start = info.ZoneStart(i);
    z.len = g.zone_size;
    if (i < g.nr_conv_zones) {
      z.type = ZoneType::kConventional;
      z.cond = ZoneCondition::kNotWp;
      z.capacity = g.zone_size;
      z.wp = z.start + z.len;
      continue;
    }
    z.type = ZoneType::kSeqWriteRequired;
    z.capacity = info.zone_capacity;
    const uint64_t len = lengths[i];
    // A finished zone is stored zone-sized (zloop), one filled by writes
    // capacity-sized; anything else past the capacity is damage.
    if ((len > z.capacity && len != z.len) || len % g.block_size != 0) {
      return Status(EINVAL, "zone " + std::to_string(i) + " holds " + std::to_string(len) +
                                " bytes, which is not a valid write pointer (capacity " +
                                std::to_string(z.capacity) + ", block size " +
                                std::to_string(g.block_size) + ")");
    }
    z.wp = z.start + len;
    const ZoneCondition saved = conditions[i];
    if (saved == ZoneCondition::kReadOnly || saved == ZoneCondition::kOffline) {
      z.cond = saved;
    } else if ((saved == ZoneCondition::kImplicitOpen || saved == ZoneCondition::kExplicitOpen) &&
               len < z.capacity) {
      z.cond = saved;  // still open after a clean shutdown
    } else if (len == 0) {
      z.cond = ZoneCondition::kEmpty;
    } else if (len >= z.capacity) {
      z.cond = ZoneCondition::kFull;
    } else {
      z.cond = ZoneCondition::kClosed;
    }
  }
  return std::unique_ptr<ZonedDevice>(
      new EmulatedDevice(std::move(info), std::move(zones), std::move(store), options));
}

}  // namespace zfile
