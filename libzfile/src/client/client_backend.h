// libzfile as a client of zfiled (issue 5): the C API's VolBackend over the
// daemon's protocol, so that zfile_vol_open("zfiled:NAME", ...) and
// "unix:PATH?volume=NAME" work with the C API unchanged.
//
// Connections: a volume keeps a small pool of sessions with the daemon (at
// most kMaxClientConnections, made on demand), each with its own socket
// and shared-memory region. The daemon keeps open files and views per
// session, so a file is pinned to the connection that opened it, and its
// views to that same connection; a new file goes to the least used
// connection, opening another while the pool has room, so that threads
// working on different files do not queue behind one socket. Each request
// holds its connection for its duration (one request in flight per
// connection); a call larger than the region is sent as region-sized
// pieces under one hold, so this process's other threads cannot slip a
// request of the same connection in between the pieces.
//
// Bulk data moves through the region: one copy in (writes) or out (reads)
// per call and direction, never through the socket; or, for a call whose
// memory lies wholly inside a registered buffer (zfile_buf_alloc: a sealed
// memfd per buffer), through that buffer itself, which each connection
// registers with its session the first time it does I/O on it (session
// version 3; older daemons and ZFILE_REGBUF=0 get the copy). Such a call
// goes as one request however large, as in embedded mode.
#ifndef ZFILE_CLIENT_CLIENT_BACKEND_H_
#define ZFILE_CLIENT_CLIENT_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "api/backend.h"
#include "base/status.h"

namespace zfile {

inline constexpr size_t kMaxClientConnections = 4;
inline constexpr uint64_t kClientShmSize = uint64_t{8} << 20;

// Bytes that client-mode calls of this process moved without a copy
// (registered buffers) and through the region, for tests and benchmarks.
// copied_early_bytes: those of copied_bytes that a read copied out while
// the daemon was still reading the rest (Connection::ReadSink).
struct ClientCopyCounters {
  uint64_t zero_copy_bytes = 0;
  uint64_t copied_bytes = 0;
  uint64_t copied_early_bytes = 0;
};
ClientCopyCounters ClientCopyCountersNow();

// REGISTER_BUF requests that client-mode connections of this process have
// sent, for tests (a buffer refused for want of budget is not offered on
// every call: Connection::RegisterBuf).
uint64_t ClientRegisterBufRequestsNow();

// Calls that client-mode connections of this process have made while on
// the shared-memory doorbell rather than on the socket, for tests. Every
// request of such a connection is rung, so this counts calls, not rings: a
// call on a registered buffer counts once more, whether or not it had to
// register the buffer first.
uint64_t ClientDoorbellCallsNow();

// Connects to the daemon `uri` names (client_uri.h) and opens a session on
// its volume. `options` must be empty (EINVAL otherwise): the daemon's
// configuration owns the mount options.
Result<std::unique_ptr<VolBackend>> OpenClientVolume(std::string_view uri,
                                                     std::string_view options);

}  // namespace zfile

#endif  // ZFILE_CLIENT_CLIENT_BACKEND_H_
