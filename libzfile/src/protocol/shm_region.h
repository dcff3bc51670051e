// The per-connection shared-memory region that carries bulk data.
//
// The client creates it (a memfd), passes it at HELLO, and both sides map
// it; PREAD/PWRITE/APPEND name ranges of it (messages.h). The daemon maps
// memory that a possibly hostile process controls, so before mapping it
// checks that the descriptor is a memfd whose size cannot shrink: a client
// that truncated the file under a mapping would otherwise make the daemon
// die of SIGBUS on its next access.
#ifndef ZFILE_PROTOCOL_SHM_REGION_H_
#define ZFILE_PROTOCOL_SHM_REGION_H_

#include <cstdint>

#include "base/status.h"
#include "protocol/unique_fd.h"

namespace zfile::protocol {

// A new region of `size` bytes (a multiple of kShmAlignment from kMinShmSize
// to kMaxShmSize, EINVAL otherwise): a close-on-exec memfd, sealed against
// shrinking and growing, and against further seals.
Result<UniqueFd> CreateShmRegion(uint64_t size);

// OK when `fd` can serve as a region of `size` bytes: a memfd opened for
// reading and writing, at least `size` bytes long, sealed against
// shrinking and not against writes. EPROTO, saying which, otherwise.
Status CheckShmRegion(int fd, uint64_t size);

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_SHM_REGION_H_
