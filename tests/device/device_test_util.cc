#include "device_test_util.h"

#include <cctype>
#include <sstream>

namespace zfile::testing {

std::vector<BackendParam> BackendsUnderTest() {
  // The VM tier gives null_blk: 1 GiB, 8 MiB zones of 6 MiB capacity, 4
  // conventional, 4096-byte blocks, max open 6, max active 8.
  const std::string nullblk_like =
      "size=1G&zone_size=8M&zone_capacity=6M&conv=4&block_size=4096&max_open=6&max_active=8";
  const std::string smr_like = "size=256M&zone_size=8M&conv=4&block_size=512";
  std::vector<BackendParam> out = {
      {"mem", "mem", "mem:?" + nullblk_like},
      {"mem_512_workers", "mem", "mem:?" + smr_like + "&workers=3"},
      // A named mem: device lives as long as the process and reopens by name.
      {"mem_named", "mem", "mem:contract-suite?" + nullblk_like + "&workers=2"},
      {"emu", "emu", nullblk_like},
      {"emu_512", "emu", smr_like},
  };
  if (const char* env = std::getenv("ZFILE_TEST_ZBD_DEVICES")) {
    std::stringstream list(env);
    std::string path;
    while (std::getline(list, path, ',')) {
      if (path.empty()) continue;
      std::string name = "zbd_";
      for (char c : path.substr(path.rfind('/') + 1)) name += std::isalnum(c) ? c : '_';
      // sd devices speak ZBC: see the dialect notes in the contract suite.
      const bool scsi = path.rfind("/dev/sd", 0) == 0;
      out.push_back({name, "zbd", path, scsi ? "scsi" : "nullblk"});
    }
  }
  return out;
}

static uint8_t PatternByte(uint64_t offset, uint32_t seed) {
  uint64_t x = (offset / 8) * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull + 1;
  x ^= x >> 29;
  return static_cast<uint8_t>(x >> (8 * (offset % 8)));
}

void FillPattern(uint8_t* buf, size_t len, uint64_t offset, uint32_t seed) {
  for (size_t i = 0; i < len; ++i) buf[i] = PatternByte(offset + i, seed);
}

int64_t CheckPattern(const uint8_t* buf, size_t len, uint64_t offset, uint32_t seed) {
  for (size_t i = 0; i < len; ++i) {
    if (buf[i] != PatternByte(offset + i, seed)) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace zfile::testing
