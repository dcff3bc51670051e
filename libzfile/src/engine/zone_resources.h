// ZoneResources: open/active zone accounting for sequential files.
//
// The device limits how many zones may be open (max_open) and active: open
// or closed with data (max_active). zfile keeps its own count of both and
// acts before the device would refuse, so that no write ever sees the
// device's ETOOMANYREFS/EOVERFLOW:
//  - Without explicit-open, a write to a zone that is not open opens it
//    implicitly. At the open limit, the least recently used implicitly-open
//    zone with no write in flight is closed first; if every open zone has
//    writes in flight, the writer waits for one to finish. A write that
//    would make one zone too many active fails with EBUSY.
//  - With explicit-open, the first writer of a file opens its zone
//    explicitly (EBUSY beyond the open or active limit) and the last
//    writer's close closes it.
// Each sequential file owns one ZoneSlot; all fields are guarded by the
// ZoneResources mutex.
#ifndef ZFILE_ENGINE_ZONE_RESOURCES_H_
#define ZFILE_ENGINE_ZONE_RESOURCES_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "base/status.h"
#include "device/zoned_device.h"
#include "engine/volume_stats.h"

namespace zfile {

struct ZoneSlot {
  enum class State : uint8_t { kNotOpen, kImplicitOpen, kExplicitOpen };
  uint32_t zone = 0;
  State state = State::kNotOpen;
  bool active = false;    // open, or holding data below capacity
  uint32_t inflight = 0;  // writes between BeginWrite and EndWrite
  uint32_t writers = 0;   // explicit-open: handles open for writing
  uint64_t last_use = 0;  // for choosing which idle zone to close
};

class ZoneResources {
 public:
  ZoneResources(ZonedDevice* dev, bool explicit_open, VolumeStats* stats);

  // Registers a slot at mount. `active`: the zone holds data below its
  // capacity. Open zones must have been closed before.
  void Add(ZoneSlot* slot, bool active);

  // Before a write to `slot`'s zone. EBUSY at the active limit, or when
  // every open zone is explicitly open with nothing in flight (no wait
  // could end); device errors from closing another zone as they are.
  Status BeginWrite(ZoneSlot* slot);
  // After it; `full`: the zone is at its capacity (the caller's view once
  // its own write is counted, so the last writer out sees it).
  void EndWrite(ZoneSlot* slot, bool full);

  // explicit-open: a handle opens the file for writing / closes it.
  Status OpenForWrite(ZoneSlot* slot, bool empty, bool full);
  void CloseForWrite(ZoneSlot* slot, bool empty, bool full);

  // A zone command on `slot`'s zone is about to run: the slot must not be
  // chosen as a zone to close meanwhile. Ends with Unhold.
  void Hold(ZoneSlot* slot);
  void Unhold(ZoneSlot* slot);

  // Before finishing `slot`'s zone (held): the device needs an open slot to
  // finish a zone that is not open, so one is freed as BeginWrite would.
  Status PrepareFinish(ZoneSlot* slot);

  // The zone was reset or finished (or went offline/read-only): it holds
  // no resources any more.
  void Released(ZoneSlot* slot);

  // After an error: the slot takes the condition the device reports, so the
  // counts match the device again.
  void Resync(ZoneSlot* slot, ZoneCondition cond);

  // Closes every open zone with no write in flight (unmount).
  Status CloseIdle();

  uint32_t open_zones() const;
  uint32_t active_zones() const;
  bool explicit_open() const { return explicit_open_; }

 private:
  Status CloseZoneLocked(ZoneSlot* slot, bool empty);
  ZoneSlot* IdleImplicitLocked();
  // True when some open zone has work in flight, i.e. waiting for a slot
  // will end.
  bool SomeOpenZoneBusyLocked() const;
  void SetStateLocked(ZoneSlot* slot, ZoneSlot::State state, bool active);

  ZonedDevice* const dev_;
  const bool explicit_open_;
  const uint32_t max_open_;
  const uint32_t max_active_;
  VolumeStats* const stats_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::vector<ZoneSlot*> slots_;
  uint32_t nr_open_ = 0;
  uint32_t nr_active_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace zfile

#endif  // ZFILE_ENGINE_ZONE_RESOURCES_H_
