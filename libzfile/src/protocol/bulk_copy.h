// Copies of file data into and out of memory that another process shares
// (a connection's region, shm_region.h).
//
// Why not plain memcpy: below glibc's non-temporal threshold (a share of
// the last-level cache, tens of MiB) memcpy stores through the cache. A
// store to a line first reads it in for ownership, and a region's lines
// are often in the peer's cache, left there by the previous request the
// peer served; after the copy they sit dirty in this CPU's cache, and the
// peer has to fetch them back from there. Streaming stores write whole
// lines to memory without reading them first, so neither side pulls lines
// from the other.
//
// Used where the peer reads what is copied next: the client copying a
// write's data into the region. On the 2-CPU test machine that took 1 MiB
// plain-buffer appends from 0.71-0.82x of embedded mode to 0.82-0.92x
// (four runs each, alternating, client_bench). Not where this process
// reads next: copying a read out of the region with streaming stores was
// slower (cached 1 MiB reads 0.53-0.55x against 0.52-0.62x), since the
// caller's buffer is then not in its cache.
#ifndef ZFILE_PROTOCOL_BULK_COPY_H_
#define ZFILE_PROTOCOL_BULK_COPY_H_

#include <cstddef>

namespace zfile::protocol {

inline constexpr size_t kStreamingCopyMin = 64 * 1024;

// Copies `n` bytes from `src` to `dst` (which must not overlap), as
// memcpy does (either may be null when `n` is 0); with streaming stores
// when `n` is at least kStreamingCopyMin on x86-64, followed by a fence,
// so that on return the copy is ordered before this thread's later stores
// as a memcpy's is (a release store still publishes it to the peer).
void CopyBulk(void* dst, const void* src, size_t n);

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_BULK_COPY_H_
