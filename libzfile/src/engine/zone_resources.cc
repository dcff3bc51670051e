#include "engine/zone_resources.h"

#include <cerrno>
#include <string>

namespace zfile {

ZoneResources::ZoneResources(ZonedDevice* dev, bool explicit_open, VolumeStats* stats)
    : dev_(dev),
      explicit_open_(explicit_open),
      max_open_(dev->info().max_open),
      max_active_(dev->info().max_active),
      stats_(stats) {}

void ZoneResources::Add(ZoneSlot* slot, bool active) {
  std::lock_guard<std::mutex> lock(mu_);
  slot->active = active;
  if (active) ++nr_active_;
  slots_.push_back(slot);
}

ZoneSlot* ZoneResources::IdleImplicitLocked() {
  ZoneSlot* best = nullptr;
  for (ZoneSlot* s : slots_) {
    if (s->state == ZoneSlot::State::kImplicitOpen && s->inflight == 0 &&
        (best == nullptr || s->last_use < best->last_use)) {
      best = s;
    }
  }
  return best;
}

void ZoneResources::SetStateLocked(ZoneSlot* slot, ZoneSlot::State state, bool active) {
  if (slot->state != ZoneSlot::State::kNotOpen) --nr_open_;
  if (slot->active) --nr_active_;
  slot->state = state;
  slot->active = active;
  if (slot->state != ZoneSlot::State::kNotOpen) ++nr_open_;
  if (slot->active) ++nr_active_;
  idle_cv_.notify_all();
}

bool ZoneResources::SomeOpenZoneBusyLocked() const {
  for (const ZoneSlot* s : slots_) {
    if (s->state != ZoneSlot::State::kNotOpen && s->inflight > 0) return true;
  }
  return false;
}

Status ZoneResources::CloseZoneLocked(ZoneSlot* slot, bool empty) {
  Status s = dev_->ManageZones(ZoneOp::kClose, slot->zone, 1);
  if (!s.ok()) {
    // The device may have closed it already (filled, reset, or closed it to
    // make room itself): then only our count was stale.
    auto zone = dev_->ReportZone(slot->zone);
    if (!zone.ok() || zone->open()) return s;
    SetStateLocked(slot, ZoneSlot::State::kNotOpen, zone->cond == ZoneCondition::kClosed);
    return Status();
  }
  stats_->zone_closes++;
  SetStateLocked(slot, ZoneSlot::State::kNotOpen, slot->active && !empty);
  return Status();
}

Status ZoneResources::BeginWrite(ZoneSlot* slot) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (slot->state != ZoneSlot::State::kNotOpen) break;
    if (!slot->active && max_active_ != 0 && nr_active_ >= max_active_) {
      return Status(EBUSY, "the device's active zone limit (" + std::to_string(max_active_) +
                               ") is reached: that many sequential files are partly written; "
                               "finish (truncate to capacity) or reset (truncate to 0) one");
    }
    if (max_open_ == 0 || nr_open_ < max_open_) {
      SetStateLocked(slot, ZoneSlot::State::kImplicitOpen, true);
      break;
    }
    if (ZoneSlot* victim = IdleImplicitLocked()) {
      // A closed zone with data stays active; only its open slot is freed.
      ZF_RETURN_IF_ERROR(CloseZoneLocked(victim, /*empty=*/false));
      continue;
    }
    if (!SomeOpenZoneBusyLocked()) {
      return Status(EBUSY, "the device's open zone limit (" + std::to_string(max_open_) +
                               ") is reached by zones open for writing (explicit-open)");
    }
    idle_cv_.wait(lock);  // every open zone is being written: wait for one
  }
  if (!slot->active) SetStateLocked(slot, slot->state, true);
  ++slot->inflight;
  slot->last_use = ++clock_;
  return Status();
}

void ZoneResources::EndWrite(ZoneSlot* slot, bool full) {
  std::lock_guard<std::mutex> lock(mu_);
  --slot->inflight;
  // A full zone holds no resources (the device closed it). Decided by the
  // last writer out, which sees the final size.
  if (slot->inflight == 0 && full) SetStateLocked(slot, ZoneSlot::State::kNotOpen, false);
  idle_cv_.notify_all();
}

void ZoneResources::Hold(ZoneSlot* slot) {
  std::lock_guard<std::mutex> lock(mu_);
  ++slot->inflight;
}

void ZoneResources::Unhold(ZoneSlot* slot) {
  std::lock_guard<std::mutex> lock(mu_);
  --slot->inflight;
  idle_cv_.notify_all();
}

Status ZoneResources::PrepareFinish(ZoneSlot* slot) {
  std::unique_lock<std::mutex> lock(mu_);
  while (slot->state == ZoneSlot::State::kNotOpen && max_open_ != 0 && nr_open_ >= max_open_) {
    if (ZoneSlot* victim = IdleImplicitLocked()) {
      ZF_RETURN_IF_ERROR(CloseZoneLocked(victim, /*empty=*/false));
      continue;
    }
    if (!SomeOpenZoneBusyLocked()) {
      return Status(EBUSY, "the device's open zone limit (" + std::to_string(max_open_) +
                               ") is reached by zones open for writing; finishing a zone "
                               "needs an open slot");
    }
    idle_cv_.wait(lock);
  }
  return Status();
}

Status ZoneResources::OpenForWrite(ZoneSlot* slot, bool empty, bool full) {
  std::lock_guard<std::mutex> lock(mu_);
  if (++slot->writers > 1 || full || slot->state == ZoneSlot::State::kExplicitOpen) {
    return Status();
  }
  if (slot->state == ZoneSlot::State::kNotOpen) {
    if (max_open_ != 0 && nr_open_ >= max_open_) {
      --slot->writers;
      return Status(EBUSY, "the device's open zone limit (" + std::to_string(max_open_) +
                               ") is reached: that many sequential files are open for writing");
    }
    if (empty && max_active_ != 0 && nr_active_ >= max_active_) {
      --slot->writers;
      return Status(
          EBUSY, "the device's active zone limit (" + std::to_string(max_active_) + ") is reached");
    }
  }
  Status s = dev_->ManageZones(ZoneOp::kOpen, slot->zone, 1);
  if (!s.ok()) {
    --slot->writers;
    if (s.err() == ETOOMANYREFS || s.err() == EOVERFLOW) {
      return Status(EBUSY, s.message() + " (zones held open outside this volume?)");
    }
    return s;
  }
  stats_->zone_opens++;
  SetStateLocked(slot, ZoneSlot::State::kExplicitOpen, true);
  return Status();
}

void ZoneResources::CloseForWrite(ZoneSlot* slot, bool empty, bool full) {
  std::lock_guard<std::mutex> lock(mu_);
  if (slot->writers == 0 || --slot->writers > 0) return;
  if (full || slot->state != ZoneSlot::State::kExplicitOpen || slot->inflight > 0) return;
  // Failure leaves the zone open; it is retried at the next close or unmount.
  (void)CloseZoneLocked(slot, empty);
}

void ZoneResources::Released(ZoneSlot* slot) {
  std::lock_guard<std::mutex> lock(mu_);
  SetStateLocked(slot, ZoneSlot::State::kNotOpen, false);
}

void ZoneResources::Resync(ZoneSlot* slot, ZoneCondition cond) {
  std::lock_guard<std::mutex> lock(mu_);
  switch (cond) {
    case ZoneCondition::kImplicitOpen:
      SetStateLocked(slot, ZoneSlot::State::kImplicitOpen, true);
      break;
    case ZoneCondition::kExplicitOpen:
      SetStateLocked(slot, ZoneSlot::State::kExplicitOpen, true);
      break;
    case ZoneCondition::kClosed:
      SetStateLocked(slot, ZoneSlot::State::kNotOpen, true);
      break;
    default:  // empty, full, read-only, offline: no resources
      SetStateLocked(slot, ZoneSlot::State::kNotOpen, false);
      break;
  }
}

Status ZoneResources::CloseIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  Status first;
  for (ZoneSlot* s : slots_) {
    if (s->state != ZoneSlot::State::kNotOpen && s->inflight == 0) {
      auto r = dev_->ReportZone(s->zone);
      const bool empty = r.ok() && r->wp == r->start;
      Status st = CloseZoneLocked(s, empty);
      if (!st.ok() && first.ok()) first = st;
    }
  }
  return first;
}

uint32_t ZoneResources::open_zones() const {
  std::lock_guard<std::mutex> lock(mu_);
  return nr_open_;
}

uint32_t ZoneResources::active_zones() const {
  std::lock_guard<std::mutex> lock(mu_);
  return nr_active_;
}

}  // namespace zfile
