#include "protocol/bulk_copy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace zfile::protocol {
namespace {

// CopyBulk is memcpy, whatever the size and the alignment of either end:
// every byte of [dst, dst+n) becomes src's and no byte around it changes.
// Sizes below, at and above kStreamingCopyMin, with heads and tails that
// do not fill a 16-byte store or a 64-byte round.
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
                          1 << 20};
  constexpr size_t kGuard = 128;
  for (size_t n : sizes) {
    for (size_t dst_shift : {0, 1, 8, 15, 16, 33}) {
      for (size_t src_shift : {0, 3, 16}) {
        std::vector<uint8_t> src(n + src_shift);
        for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + n + 7);
        std::vector<uint8_t> dst(n + dst_shift + 2 * kGuard, 0x5A);
        CopyBulk(dst.data() + kGuard + dst_shift, src.data() + src_shift, n);
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
