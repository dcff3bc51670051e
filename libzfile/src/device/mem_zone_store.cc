// The mem: backend: zone data in process memory, allocated as zones fill.
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "device/emu_backend.h"
#include "device/emulated_device.h"
#include "device/zone_store.h"

namespace zfile {
namespace {

class MemZoneStore final : public ZoneStore {
 public:
  explicit MemZoneStore(uint32_t nr_zones) : zones_(nr_zones) {}

  Status Read(uint32_t zone, uint64_t offset, void* buf, size_t len) override {
    const std::vector<uint8_t>& data = zones_[zone];
    size_t have = offset < data.size() ? std::min<size_t>(len, data.size() - offset) : 0;
    if (have > 0) std::memcpy(buf, data.data() + offset, have);
    std::memset(static_cast<uint8_t*>(buf) + have, 0, len - have);
    return Status();
  }

  Status Write(uint32_t zone, uint64_t offset, const void* buf, size_t len) override {
    std::vector<uint8_t>& data = zones_[zone];
    if (data.size() < offset + len) data.resize(offset + len);
    std::memcpy(data.data() + offset, buf, len);
    return Status();
  }

  Status SetLength(uint32_t zone, uint64_t len) override {
    // Growing needs no memory: unwritten bytes read as zeros anyway.
    std::vector<uint8_t>& data = zones_[zone];
    if (len < data.size()) {
      data.resize(len);
      if (len == 0) data.shrink_to_fit();
    }
    return Status();
  }

  Status Flush() override { return Status(); }
  Status SaveConditions(const std::vector<ZoneCondition>&) override { return Status(); }

 private:
  // One buffer per zone; the device serialises access per zone.
  std::vector<std::vector<uint8_t>> zones_;
};

}  // namespace

Result<std::unique_ptr<ZonedDevice>> OpenMemDevice(const Uri& uri) {
  if (!uri.path.empty()) {
    return Status(EINVAL, "mem: takes no path, only parameters (mem:?size=1G&zone_size=64M)");
  }
  ZF_RETURN_IF_ERROR(
      uri.CheckKeys({"size", "zone_size", "zone_capacity", "conv", "block_size", "max_open",
                     "max_active", "workers", "fail_read", "fail_write", "power_cut_after"}));
  EmulatedGeometry g;
  ZF_RETURN_IF_ERROR(g.ReadFromUri(uri));
  EmulatedOptions options;
  ZF_RETURN_IF_ERROR(options.ReadFromUri(uri));
  std::string text = "mem:";
  if (!uri.params.empty()) {
    char sep = '?';
    for (const auto& [k, v] : uri.params) {
      text += sep + k + "=" + v;
      sep = '&';
    }
  }
  const uint32_t n = g.nr_zones();
  return MakeEmulatedDevice(g, text, "mem", std::make_unique<MemZoneStore>(n),
                            std::vector<uint64_t>(n, 0),
                            std::vector<ZoneCondition>(n, ZoneCondition::kEmpty), options);
}

}  // namespace zfile
