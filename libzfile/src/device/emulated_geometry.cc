#include "device/emulated_geometry.h"

#include <cerrno>
#include <sstream>

namespace zfile {
namespace {

std::string Bytes(uint64_t v) { return std::to_string(v); }

}  // namespace

Status EmulatedGeometry::Validate() const {
  if (block_size != 512 && block_size != 4096) {
    return Status(EINVAL, "block size " + std::to_string(block_size) + " is not 512 or 4096");
  }
  if (zone_size == 0 || zone_size % block_size != 0) {
    return Status(EINVAL, "zone size " + Bytes(zone_size) + " is not a non-zero multiple of the " +
                              std::to_string(block_size) + "-byte block size");
  }
  if (size == 0 || size % zone_size != 0) {
    return Status(EINVAL, "device size " + Bytes(size) + " is not a multiple of the zone size " +
                              Bytes(zone_size) + " (it must hold a whole number of zones)");
  }
  if (size / zone_size > UINT32_MAX) return Status(EINVAL, "too many zones");
  if (zone_capacity != 0 && (zone_capacity > zone_size || zone_capacity % block_size != 0)) {
    return Status(EINVAL, "zone capacity " + Bytes(zone_capacity) +
                              " must be a multiple of the block size and at most the zone size " +
                              Bytes(zone_size));
  }
  if (nr_conv_zones >= nr_zones()) {
    return Status(EINVAL, std::to_string(nr_conv_zones) +
                              " conventional zones leave no sequential "
                              "zone on a device of " +
                              std::to_string(nr_zones()) + " zones");
  }
  if (max_active != 0 && max_open > max_active) {
    return Status(EINVAL, "max open zones (" + std::to_string(max_open) +
                              ") exceeds max active zones (" + std::to_string(max_active) + ")");
  }
  return Status();
}

Status EmulatedGeometry::ReadFromUri(const Uri& uri) {
  uint64_t v = 0;
  ZF_RETURN_IF_ERROR(uri.GetSize("size", &size));
  ZF_RETURN_IF_ERROR(uri.GetSize("zone_size", &zone_size));
  ZF_RETURN_IF_ERROR(uri.GetSize("zone_capacity", &zone_capacity));
  struct {
    const char* key;
    uint32_t* field;
  } counts[] = {{"conv", &nr_conv_zones},
                {"block_size", &block_size},
                {"max_open", &max_open},
                {"max_active", &max_active}};
  for (auto& c : counts) {
    if (uri.params.count(c.key) == 0) continue;
    ZF_RETURN_IF_ERROR(uri.GetUint(c.key, &v));
    if (v > UINT32_MAX) return Status(EINVAL, std::string(c.key) + " is too large");
    *c.field = static_cast<uint32_t>(v);
  }
  return Validate();
}

std::string EmulatedGeometry::Serialize() const {
  std::ostringstream out;
  out << "# zfile emulated zoned device (zloop layout); do not edit\n"
      << "version=1\n"
      << "size=" << size << "\n"
      << "zone_size=" << zone_size << "\n"
      << "zone_capacity=" << capacity_of_seq_zone() << "\n"
      << "conv=" << nr_conv_zones << "\n"
      << "block_size=" << block_size << "\n"
      << "max_open=" << max_open << "\n"
      << "max_active=" << max_active << "\n";
  return out.str();
}

Result<EmulatedGeometry> EmulatedGeometry::Parse(const std::string& text,
                                                 const std::string& source) {
  Uri as_uri;  // reuse the URI parameter readers for the key=value lines
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return Status(EINVAL, source + ":" + std::to_string(lineno) + ": expected key=value");
    }
    as_uri.params[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (as_uri.params["version"] != "1") {
    return Status(EINVAL, source + ": unsupported geometry version '" + as_uri.params["version"] +
                              "' (expected 1)");
  }
  as_uri.params.erase("version");
  as_uri.scheme = "emu";
  Status known = as_uri.CheckKeys(
      {"size", "zone_size", "zone_capacity", "conv", "block_size", "max_open", "max_active"});
  if (!known.ok()) return known.WithContext(source);
  for (const char* required : {"size", "zone_size", "block_size"}) {
    if (as_uri.params.count(required) == 0) {
      return Status(EINVAL, source + ": missing '" + required + "'");
    }
  }
  EmulatedGeometry g;
  Status s = g.ReadFromUri(as_uri);
  if (!s.ok()) return s.WithContext(source);
  return g;
}

}  // namespace zfile
