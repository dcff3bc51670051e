// Helpers shared by the device tests: backends under test, aligned buffers,
// data patterns.
#ifndef ZFILE_TESTS_DEVICE_DEVICE_TEST_UTIL_H_
#define ZFILE_TESTS_DEVICE_DEVICE_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace zfile::testing {

// One device configuration the contract suite runs against.
struct BackendParam {
  std::string name;  // gtest-safe: letters, digits, underscores
  std::string kind;  // "mem", "emu", "zbd"
  std::string spec;  // mem: URI; emu: geometry as URI parameters; zbd: device path
  // How the device reports what the contract leaves to it: "nullblk"
  // (emulated backends and null_blk) or "scsi" (SMR disks through sd).
  std::string dialect = "nullblk";
};

inline void PrintTo(const BackendParam& p, std::ostream* os) {
  *os << p.name << " (" << p.spec << ")";
}

// mem and emu always, in the geometry null_blk gets in the VM tier (and a
// 512-byte variant without limits, like the scsi_debug SMR disk); zbd
// devices listed in ZFILE_TEST_ZBD_DEVICES (comma-separated paths).
std::vector<BackendParam> BackendsUnderTest();

// Block-aligned (4096) heap buffer, as O_DIRECT needs.
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t len)
      : len_(len), data_(static_cast<uint8_t*>(std::aligned_alloc(4096, RoundUp(len)))) {
    std::memset(data_.get(), 0, RoundUp(len));
  }
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return len_; }

 private:
  static size_t RoundUp(size_t n) { return (n + 4095) / 4096 * 4096 + (n == 0 ? 4096 : 0); }
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  size_t len_;
  std::unique_ptr<uint8_t, Free> data_;
};

// Fills `buf` with bytes derived from (seed, absolute offset of each byte),
// so a misplaced block is detected.
void FillPattern(uint8_t* buf, size_t len, uint64_t offset, uint32_t seed);
// First mismatching byte index, or -1.
int64_t CheckPattern(const uint8_t* buf, size_t len, uint64_t offset, uint32_t seed);

}  // namespace zfile::testing

#endif  // ZFILE_TESTS_DEVICE_DEVICE_TEST_UTIL_H_
