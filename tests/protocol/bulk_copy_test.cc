#include "protocol/bulk_copy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace zfile::protocol {
namespace {

// CopyBulk is memcpy, whatever the size and the alignment of either end:
// every byte of [dst, dst+n) becomes src's and no byte around it changes.
// Sizes below, at and above kStreamingCopyMin, with heads and tails that
// do not fill a 64-byte round; n 0 with null pointers. (Whether the
// streaming path and its fence ran is not visible here; the benchmark
// shows the first, and the fence is in the code.)
TEST(BulkCopyTest, CopiesExactlyTheBytesAskedForAtAnyAlignment) {
  const size_t sizes[] = {0,
                          1,
                          63,
                          4096,
                          kStreamingCopyMin - 1,
                          kStreamingCopyMin,
                          kStreamingCopyMin + 1,
                          kStreamingCopyMin + 63,
                          kStreamingCopyMin + 65,
                          kStreamingCopyMin + 127,
                          1 << 20};
  constexpr size_t kGuard = 128;
  for (size_t n : sizes) {
    for (size_t dst_shift : {0, 1, 8, 15, 16, 33}) {
      for (size_t src_shift : {0, 3, 16}) {
        std::vector<uint8_t> src(n + src_shift);
        for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + n + 7);
        std::vector<uint8_t> dst(n + dst_shift + 2 * kGuard, 0x5A);
        // src.data() is null for n 0 and no shift.
        CopyBulk(dst.data() + kGuard + dst_shift, src.data() + src_shift, n);
        // memcmp first: byte by byte only to say where (ASan runs this).
        const uint8_t* at = dst.data() + kGuard + dst_shift;
        if (n > 0 && std::memcmp(at, src.data() + src_shift, n) == 0 &&
            std::all_of(dst.begin(), dst.begin() + kGuard + dst_shift,
                        [](uint8_t b) { return b == 0x5A; }) &&
            std::all_of(dst.begin() + kGuard + dst_shift + n, dst.end(),
                        [](uint8_t b) { return b == 0x5A; })) {
          continue;
        }
        for (size_t i = 0; i < kGuard + dst_shift; ++i) {
          ASSERT_EQ(dst[i], 0x5A) << "byte " << i << " before the copy, n " << n;
        }
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(dst[kGuard + dst_shift + i], src[src_shift + i])
              << "byte " << i << " of " << n << ", dst+" << dst_shift << ", src+" << src_shift;
        }
        for (size_t i = kGuard + dst_shift + n; i < dst.size(); ++i) {
          ASSERT_EQ(dst[i], 0x5A) << "byte " << i << " after the copy, n " << n;
        }
      }
    }
  }
}

}  // namespace
}  // namespace zfile::protocol
