// The mem: backend: zone data in process memory, allocated as zones fill.
// "mem:?params" is a fresh device per open; "mem:NAME?params" a named one
// that lives until the process exits and reopens by name with its zones.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device/emu_backend.h"
#include "device/emulated_device.h"
#include "device/zone_store.h"

namespace zfile {
namespace {

class MemZoneStore final : public ZoneStore {
 public:
  MemZoneStore(uint32_t nr_zones, uint64_t zone_size) : zone_size_(zone_size), zones_(nr_zones) {}

  Status Read(uint32_t zone, uint64_t offset, void* buf, size_t len) override {
    const Zone& z = zones_[zone];
    size_t have = offset < z.length ? std::min<size_t>(len, z.length - offset) : 0;
    if (have > 0) std::memcpy(buf, z.data.get() + offset, have);
    std::memset(static_cast<uint8_t*>(buf) + have, 0, len - have);
    return Status();
  }

  Status Write(uint32_t zone, uint64_t offset, const void* buf, size_t len) override {
    Zone& z = zones_[zone];
    ZF_RETURN_IF_ERROR(Allocate(z));
    std::memcpy(z.data.get() + offset, buf, len);
    z.length = std::max<uint64_t>(z.length, offset + len);
    return Status();
  }

  Status SetLength(uint32_t zone, uint64_t len) override {
    Zone& z = zones_[zone];
    if (len == 0) {
      z.data.reset();  // a reset zone gives its memory back
      z.length = 0;
      return Status();
    }
    // A finished or moved write pointer is a length too (a named device
    // reopens from it), so the zone needs its buffer.
    const bool fresh = z.data == nullptr;  // calloc'ed: zeros already
    ZF_RETURN_IF_ERROR(Allocate(z));
    len = std::min(len, zone_size_);
    // Bytes between the old and the new length must read as zeros.
    if (!fresh && len > z.length) std::memset(z.data.get() + z.length, 0, len - z.length);
    z.length = len;
    return Status();
  }

  Status Flush() override { return Status(); }
  Status SaveConditions(const std::vector<ZoneCondition>& conditions) override {
    conditions_ = conditions;
    return Status();
  }

  // What a reopen needs: stored lengths and the last saved conditions.
  std::vector<uint64_t> Lengths() const {
    std::vector<uint64_t> out;
    for (const Zone& z : zones_) out.push_back(z.length);
    return out;
  }
  std::vector<ZoneCondition> Conditions() const {
    return conditions_.empty() ? std::vector<ZoneCondition>(zones_.size(), ZoneCondition::kEmpty)
                               : conditions_;
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  struct Zone {
    std::unique_ptr<uint8_t, Free> data;  // zone_size bytes once written
    uint64_t length = 0;                  // bytes that hold data
  };

  // calloc of a zone-sized block maps fresh zero pages: memory is only
  // touched where data is written, and no byte is copied twice.
  Status Allocate(Zone& z) {
    if (z.data != nullptr) return Status();
    z.data.reset(static_cast<uint8_t*>(std::calloc(1, zone_size_)));
    if (z.data == nullptr) return Status(ENOMEM, "mem: device out of memory");
    return Status();
  }

  const uint64_t zone_size_;
  // One buffer per zone; the device serialises access per zone.
  std::vector<Zone> zones_;
  std::vector<ZoneCondition> conditions_;
};

// A named mem: device outlives its openers, like a RAM disk: it lives until
// the process exits. One opener at a time.
struct NamedMemDevice {
  EmulatedGeometry geometry;
  std::shared_ptr<MemZoneStore> store;
  bool in_use = false;
};

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, NamedMemDevice>& Registry() {
  static auto* registry = new std::map<std::string, NamedMemDevice>();
  return *registry;
}

// Lends a named device's store to one EmulatedDevice and gives it back
// when that device goes.
class LentMemZoneStore final : public ZoneStore {
 public:
  LentMemZoneStore(std::string name, std::shared_ptr<MemZoneStore> store)
      : name_(std::move(name)), store_(std::move(store)) {}
  ~LentMemZoneStore() override {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    Registry()[name_].in_use = false;
  }
  Status Read(uint32_t zone, uint64_t offset, void* buf, size_t len) override {
    return store_->Read(zone, offset, buf, len);
  }
  Status Write(uint32_t zone, uint64_t offset, const void* buf, size_t len) override {
    return store_->Write(zone, offset, buf, len);
  }
  Status SetLength(uint32_t zone, uint64_t len) override { return store_->SetLength(zone, len); }
  Status Flush() override { return store_->Flush(); }
  Status SaveConditions(const std::vector<ZoneCondition>& conditions) override {
    return store_->SaveConditions(conditions);
  }

 private:
  const std::string name_;
  std::shared_ptr<MemZoneStore> store_;
};

}  // namespace

Result<std::unique_ptr<ZonedDevice>> OpenMemDevice(const Uri& uri) {
  ZF_RETURN_IF_ERROR(
      uri.CheckKeys({"size", "zone_size", "zone_capacity", "conv", "block_size", "max_open",
                     "max_active", "workers", "fail_read", "fail_write", "power_cut_after"}));
  EmulatedGeometry g;
  ZF_RETURN_IF_ERROR(g.ReadFromUri(uri));
  EmulatedOptions options;
  ZF_RETURN_IF_ERROR(options.ReadFromUri(uri));
  std::string text = "mem:" + uri.path;
  char sep = '?';
  for (const auto& [k, v] : uri.params) {
    text += sep + k + "=" + v;
    sep = '&';
  }
  const uint32_t n = g.nr_zones();
  if (uri.path.empty()) {
    return MakeEmulatedDevice(g, text, "mem", std::make_unique<MemZoneStore>(n, g.zone_size),
                              std::vector<uint64_t>(n, 0),
                              std::vector<ZoneCondition>(n, ZoneCondition::kEmpty), options);
  }
  // Named: the first open creates it; later opens get the same zones.
  std::shared_ptr<MemZoneStore> store;
  std::vector<uint64_t> lengths;
  std::vector<ZoneCondition> conditions;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    NamedMemDevice& named = Registry()[uri.path];
    if (named.store == nullptr) {
      named.geometry = g;
      named.store = std::make_shared<MemZoneStore>(n, g.zone_size);
    } else if (named.in_use) {
      return Status(EBUSY, "mem:" + uri.path + " is in use by another opener");
    } else if (g.Serialize() != named.geometry.Serialize()) {
      for (const char* key :
           {"size", "zone_size", "zone_capacity", "conv", "block_size", "max_open", "max_active"}) {
        if (uri.params.count(key) != 0) {
          return Status(EINVAL, "mem:" + uri.path +
                                    " already exists with another geometry; "
                                    "reopen it by name alone");
        }
      }
      g = named.geometry;  // reopened by name alone
    }
    named.in_use = true;
    store = named.store;
    lengths = store->Lengths();
    conditions = store->Conditions();
  }
  return MakeEmulatedDevice(g, text, "mem", std::make_unique<LentMemZoneStore>(uri.path, store),
                            lengths, conditions, options);
}

}  // namespace zfile
