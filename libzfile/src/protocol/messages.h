// Messages of the zfiled protocol: what each frame's payload holds, and the
// codec between those bytes and C++ structs.
//
// One request per C API call a client forwards (SPEC section 6), one reply
// per request. Payload fields, in order (wire.h says how each is encoded;
// "str<=N" is a string of at most N bytes):
//
//   request                                   reply body (after result, message)
//   HELLO      u32 version, str<=255 volume,  u32 version, u64 shm_size,
//              u64 shm_size  [+1 fd: shm]     bool has_cache_fd, u32 cache_page_size,
//                                             u64 cache_arena_size, VolumeInfo
//                                             [+1 fd: the cache arena if has_cache_fd]
//   VOL_INFO   -                              VolumeInfo
//   VOL_STATS  -                              str<=56K json
//   VOL_SYNC   -                              -
//   OPEN       str<=4096 path, i32 flags      u64 handle
//   CLOSE      u64 handle                     -
//   PREAD      u64 handle, u64 offset,        - (result: bytes read)
//              u64 length, i32 rwf, u64 shm_offset
//   PWRITE     as PREAD                       - (result: bytes written)
//   APPEND     u64 handle, u64 length,        u64 offset (where the data landed)
//              u64 shm_offset
//   FSYNC      u64 handle                     -
//   FTRUNCATE  u64 handle, u64 size           -
//   FSTAT      u64 handle                     StatInfo
//   STAT       str<=4096 path                 StatInfo
//   CHMOD      str<=4096 path, u32 mode       -
//   CHOWN      str<=4096 path, u32 uid,       -
//              u32 gid
//   MAP        u64 handle, u64 offset,        u64 view_id, u64 start,
//              u64 length                     u32 count, count x (u64 arena_offset, u64 length)
//   UNMAP      u64 view_id                    -
//   DOORBELL   u64 size  [+1 fd: doorbell]    -
//              (session version 2 and later; doorbell.h)
//   REGISTER_BUF u64 size [+1 fd: buffer]     u64 buf_id (1..kMaxRegisteredBufs)
//   UNREGISTER_BUF u64 buf_id                 -
//              (both session version 3 and later)
//
// VolumeInfo and StatInfo are their struct's fields in declaration order
// (below; VolumeInfo's label str<=64, uuid str<=36). Also checked: HELLO's
// shm_size (kMinShmSize..kMaxShmSize, 4 KiB multiples), the cache page and
// arena sizes, StatInfo's type and cond, and that MAP extents are whole
// pages inside the arena.
//
// Every reply starts with i64 result (a count, 0, or a negative errno in
// -4095..-1) and str<=4096 message (the reason in words, for
// zfile_last_error()). A failed reply (result < 0) ends there: it has no
// body and carries no descriptor.
//
// Bulk data does not travel in frames. At HELLO the client passes a memfd
// (the connection's shared-memory region, shm_region.h) that both sides
// map; PREAD, PWRITE and APPEND name a range of it, and the decoder refuses
// a range that does not lie inside the region (SessionLimits).
//
// Registered buffers (session version 3). A client may also pass memfds of
// its own with REGISTER_BUF (each sealed as the region is, shm_region.h),
// which the daemon maps and numbers 1..kMaxRegisteredBufs; PREAD, PWRITE
// and APPEND then name a range of one of them by its id in the top 16 bits
// of shm_offset (BufShmOffset): id 0 is the connection's region, as in
// versions 1 and 2, so the encoding of those requests did not change, and
// an older daemon refuses the new offsets as out of its region. The
// decoder checks such a range against the buffer's size as it does ranges
// of the region (SessionLimits::buf_sizes), so an unknown id or a range
// past the buffer's end is EPROTO too. The daemon's
// HELLO reply passes its page-cache memfd (the "arena"); a MAP reply lists
// where in it the view's pages are, page by page runs, which the client maps
// side by side, read-only, to get one contiguous view; `start` is where the
// requested offset falls in the first page.
//
// The decoders are the trust boundary: whatever bytes a peer sends, they
// either return a message every field of which is within its documented
// bounds, or EPROTO with what was wrong, in words. Encoding is canonical:
// a payload that decodes re-encodes to the same bytes.
#ifndef ZFILE_PROTOCOL_MESSAGES_H_
#define ZFILE_PROTOCOL_MESSAGES_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "protocol/frame.h"

namespace zfile::protocol {

// Bounds of the variable-size fields.
inline constexpr size_t kMaxPathLen = 4096;
inline constexpr size_t kMaxVolumeNameLen = 255;
inline constexpr size_t kMaxMessageLen = 4096;
inline constexpr size_t kMaxLabelLen = 64;  // zfile_vol_info.label without its NUL
inline constexpr size_t kMaxUuidLen = 36;   // "8-4-4-4-12"
inline constexpr size_t kMaxStatsJsonLen = 56 * 1024;
// A view whose pages are scattered over more runs than this cannot be
// described in one reply; the daemon refuses such a MAP (EMSGSIZE).
inline constexpr size_t kMaxMapExtents = 3072;

// The shared-memory region: a whole number of 4 KiB pages, 4 KiB to 1 GiB.
inline constexpr uint64_t kShmAlignment = 4096;
inline constexpr uint64_t kMinShmSize = 4096;
inline constexpr uint64_t kMaxShmSize = uint64_t{1} << 30;

// Registered buffers: at most kMaxRegisteredBufs per session, each sized as
// the region may be. A PREAD/PWRITE/APPEND names buffer `id` (0: the
// region) at byte `offset` with shm_offset = id << kBufIdShift | offset.
// Each is a mapping in the daemon, whose mappings (vm.max_map_count) and
// address space every client shares, so the cap is small; the daemon also
// caps the bytes per session and keeps budgets per uid and in total
// (daemon/server.h, SessionBounds), refusing with ENOSPC, after which a
// client copies through its region. The cap was 256 in the first daemons
// that took registered buffers: a client that keeps at most 64 registered
// never gets a higher id from them (the lowest free id is given), and a
// daemon refuses the 65th registration of an older client with ENOSPC.
inline constexpr uint64_t kMaxRegisteredBufs = 64;
inline constexpr int kBufIdShift = 48;
inline constexpr uint64_t kBufOffsetMask = (uint64_t{1} << kBufIdShift) - 1;
static_assert(kMaxShmSize <= kBufOffsetMask);
constexpr uint64_t BufShmOffset(uint64_t id, uint64_t offset) { return id << kBufIdShift | offset; }
constexpr uint64_t BufIdOf(uint64_t shm_offset) { return shm_offset >> kBufIdShift; }
constexpr uint64_t BufOffsetOf(uint64_t shm_offset) { return shm_offset & kBufOffsetMask; }

// The cache arena: pages are a power of two from 4 KiB to 1 MiB (the page
// cache's own bounds), the arena at most 256 TiB (which keeps every sum of
// extent lengths far from overflowing).
inline constexpr uint32_t kMinCachePageSize = 4096;
inline constexpr uint32_t kMaxCachePageSize = 1u << 20;
inline constexpr uint64_t kMaxCacheArenaSize = uint64_t{1} << 48;

// Largest errno a reply may carry (the kernel's MAX_ERRNO).
inline constexpr int64_t kMaxErrno = 4095;

// What a session agreed at HELLO, against which later messages are
// checked. Before HELLO everything is 0, so every shared-memory range but
// an empty one at offset 0 is refused.
struct SessionLimits {
  // The client's region (HELLO request).
  uint64_t shm_size = 0;
  // The daemon's cache arena (HELLO reply); 0 when none was passed.
  uint32_t cache_page_size = 0;
  uint64_t cache_arena_size = 0;
  // The sizes of the registered buffers, buf_sizes[id - 1] for buffer id,
  // 0 for an id not registered (the daemon's table; empty on the client,
  // which decodes no requests).
  std::span<const uint64_t> buf_sizes;
};

// zfile_vol_info (include/zfile/zfile.h), as the wire carries it.
struct VolumeInfo {
  uint32_t nr_cnv_files = 0;
  uint32_t nr_seq_files = 0;
  uint32_t block_size = 0;
  uint32_t max_open = 0;
  uint32_t max_active = 0;
  uint32_t open_zones = 0;
  uint32_t active_zones = 0;
  bool read_only = false;
  uint64_t zone_size = 0;
  uint64_t zone_capacity = 0;
  std::string label;  // at most kMaxLabelLen bytes
  std::string uuid;   // at most kMaxUuidLen bytes
  bool operator==(const VolumeInfo&) const = default;
};

// zfile_stat, as the wire carries it. `type` is a zfile_file_type (1-3),
// `cond` a zfile_zone_cond; the decoder refuses other values.
struct StatInfo {
  uint64_t size = 0;
  uint64_t max_size = 0;
  uint64_t zone_start = 0;
  uint64_t zone_len = 0;
  uint64_t ino = 0;
  uint64_t blocks = 0;
  uint32_t block_size = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t type = 1;
  uint32_t cond = 0;
  bool operator==(const StatInfo&) const = default;
};

// A run of whole cache pages in the arena: [arena_offset, +length).
struct MapExtent {
  uint64_t arena_offset = 0;
  uint64_t length = 0;
  bool operator==(const MapExtent&) const = default;
};

// --- Requests ---------------------------------------------------------------

struct HelloRequest {
  static constexpr MessageType kType = MessageType::kHello;
  // The highest protocol version the client speaks (at least 1). The frame
  // header carries the version the frame is encoded in; the reply says
  // which version the session uses.
  uint32_t protocol_version = kProtocolVersion;
  std::string volume;     // the volume's name in the daemon's configuration
  uint64_t shm_size = 0;  // of the memfd passed with the frame
  bool operator==(const HelloRequest&) const = default;
};

// VOL_INFO, VOL_STATS, VOL_SYNC: no fields.
template <MessageType T>
struct EmptyRequest {
  static constexpr MessageType kType = T;
  bool operator==(const EmptyRequest&) const = default;
};
using VolInfoRequest = EmptyRequest<MessageType::kVolInfo>;
using VolStatsRequest = EmptyRequest<MessageType::kVolStats>;
using VolSyncRequest = EmptyRequest<MessageType::kVolSync>;

// CLOSE, FSYNC, FSTAT: the handle OPEN returned.
template <MessageType T>
struct HandleRequest {
  static constexpr MessageType kType = T;
  uint64_t handle = 0;
  bool operator==(const HandleRequest&) const = default;
};
using CloseRequest = HandleRequest<MessageType::kClose>;
using FsyncRequest = HandleRequest<MessageType::kFsync>;
using FstatRequest = HandleRequest<MessageType::kFstat>;

struct OpenRequest {
  static constexpr MessageType kType = MessageType::kOpen;
  std::string path;   // "seq/3"
  int32_t flags = 0;  // O_* as libc defines them
  bool operator==(const OpenRequest&) const = default;
};

// PREAD, PWRITE: `length` bytes at file offset `offset`, to or from the
// shared-memory region at `shm_offset`.
template <MessageType T>
struct IoRequest {
  static constexpr MessageType kType = T;
  uint64_t handle = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  int32_t rwf = 0;  // RWF_* as libc defines them
  uint64_t shm_offset = 0;
  bool operator==(const IoRequest&) const = default;
};
using PreadRequest = IoRequest<MessageType::kPread>;
using PwriteRequest = IoRequest<MessageType::kPwrite>;

struct AppendRequest {
  static constexpr MessageType kType = MessageType::kAppend;
  uint64_t handle = 0;
  uint64_t length = 0;
  uint64_t shm_offset = 0;
  bool operator==(const AppendRequest&) const = default;
};

struct FtruncateRequest {
  static constexpr MessageType kType = MessageType::kFtruncate;
  uint64_t handle = 0;
  uint64_t size = 0;
  bool operator==(const FtruncateRequest&) const = default;
};

struct StatRequest {
  static constexpr MessageType kType = MessageType::kStat;
  std::string path;
  bool operator==(const StatRequest&) const = default;
};

struct ChmodRequest {
  static constexpr MessageType kType = MessageType::kChmod;
  std::string path;
  uint32_t mode = 0;
  bool operator==(const ChmodRequest&) const = default;
};

struct ChownRequest {
  static constexpr MessageType kType = MessageType::kChown;
  std::string path;
  uint32_t uid = 0;  // (uint32_t)-1: unchanged
  uint32_t gid = 0;
  bool operator==(const ChownRequest&) const = default;
};

struct MapRequest {
  static constexpr MessageType kType = MessageType::kMap;
  uint64_t handle = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const MapRequest&) const = default;
};

struct UnmapRequest {
  static constexpr MessageType kType = MessageType::kUnmap;
  uint64_t view_id = 0;
  bool operator==(const UnmapRequest&) const = default;
};

// Moves the session's later requests to a shared-memory doorbell: a memfd
// of `size` bytes (exactly kDoorbellRegionSize, doorbell.h) laid out as
// doorbell.h says, passed with the frame. Only in sessions that agreed on
// version kDoorbellSessionVersion or later, and at most once.
struct DoorbellRequest {
  static constexpr MessageType kType = MessageType::kDoorbell;
  uint64_t size = 0;
  bool operator==(const DoorbellRequest&) const = default;
};

// Registers the memfd passed with the frame, `size` bytes (kMinShmSize to
// kMaxShmSize, a multiple of kShmAlignment), as a buffer later requests may
// name (see "Registered buffers" above). Session version 3 and later. On
// the doorbell, the frame with its descriptor goes on the socket and the
// same frame (fd_count 1) in the doorbell's slot tells the daemon to read
// it there (doorbell.h).
struct RegisterBufRequest {
  static constexpr MessageType kType = MessageType::kRegisterBuf;
  uint64_t size = 0;
  bool operator==(const RegisterBufRequest&) const = default;
};

// Forgets buffer `buf_id`; the daemon unmaps it.
struct UnregisterBufRequest {
  static constexpr MessageType kType = MessageType::kUnregisterBuf;
  uint64_t buf_id = 0;
  bool operator==(const UnregisterBufRequest&) const = default;
};

// Alternative i is the request of MessageType i + 1 (checked at compile
// time in messages.cc).
using Request = std::variant<HelloRequest, VolInfoRequest, VolStatsRequest, VolSyncRequest,
                             OpenRequest, CloseRequest, PreadRequest, PwriteRequest, AppendRequest,
                             FsyncRequest, FtruncateRequest, FstatRequest, StatRequest,
                             ChmodRequest, ChownRequest, MapRequest, UnmapRequest, DoorbellRequest,
                             RegisterBufRequest, UnregisterBufRequest>;

// --- Replies ----------------------------------------------------------------

// What every reply starts with. When result < 0 the reply's other fields
// are not sent and keep their defaults.
struct ReplyResult {
  int64_t result = 0;   // count or 0; -errno on failure
  std::string message;  // why, in words; usually empty on success
  bool operator==(const ReplyResult&) const = default;
};

struct HelloReply : ReplyResult {
  static constexpr MessageType kType = MessageType::kHello;
  uint32_t protocol_version = kProtocolVersion;  // the session's
  uint64_t shm_size = 0;                         // the region, as accepted
  // Whether the cache arena's memfd comes with the reply (a cache without
  // one cannot give other processes views: MAP then fails).
  bool has_cache_fd = false;
  uint32_t cache_page_size = 0;   // 0 without the fd
  uint64_t cache_arena_size = 0;  // 0 without the fd
  VolumeInfo volume;
  bool operator==(const HelloReply&) const = default;
};

// Replies with nothing but the result.
template <MessageType T>
struct ResultReply : ReplyResult {
  static constexpr MessageType kType = T;
  bool operator==(const ResultReply&) const = default;
};
using VolSyncReply = ResultReply<MessageType::kVolSync>;
using CloseReply = ResultReply<MessageType::kClose>;
using PreadReply = ResultReply<MessageType::kPread>;    // result: bytes read
using PwriteReply = ResultReply<MessageType::kPwrite>;  // result: bytes written
using FsyncReply = ResultReply<MessageType::kFsync>;
using FtruncateReply = ResultReply<MessageType::kFtruncate>;
using ChmodReply = ResultReply<MessageType::kChmod>;
using ChownReply = ResultReply<MessageType::kChown>;
using UnmapReply = ResultReply<MessageType::kUnmap>;
using DoorbellReply = ResultReply<MessageType::kDoorbell>;
using UnregisterBufReply = ResultReply<MessageType::kUnregisterBuf>;

struct RegisterBufReply : ReplyResult {
  static constexpr MessageType kType = MessageType::kRegisterBuf;
  uint64_t buf_id = 0;  // 1..kMaxRegisteredBufs
  bool operator==(const RegisterBufReply&) const = default;
};

struct VolInfoReply : ReplyResult {
  static constexpr MessageType kType = MessageType::kVolInfo;
  VolumeInfo volume;
  bool operator==(const VolInfoReply&) const = default;
};

struct VolStatsReply : ReplyResult {
  static constexpr MessageType kType = MessageType::kVolStats;
  std::string json;
  bool operator==(const VolStatsReply&) const = default;
};

struct OpenReply : ReplyResult {
  static constexpr MessageType kType = MessageType::kOpen;
  uint64_t handle = 0;
  bool operator==(const OpenReply&) const = default;
};

struct AppendReply : ReplyResult {  // result: bytes written
  static constexpr MessageType kType = MessageType::kAppend;
  uint64_t offset = 0;  // where the data landed
  bool operator==(const AppendReply&) const = default;
};

// FSTAT, STAT.
template <MessageType T>
struct StatReplyOf : ReplyResult {
  static constexpr MessageType kType = T;
  StatInfo stat;
  bool operator==(const StatReplyOf&) const = default;
};
using FstatReply = StatReplyOf<MessageType::kFstat>;
using StatReply = StatReplyOf<MessageType::kStat>;

struct MapReply : ReplyResult {
  static constexpr MessageType kType = MessageType::kMap;
  uint64_t view_id = 0;
  uint64_t start = 0;              // offset of the view's first byte in extents[0]
  std::vector<MapExtent> extents;  // 1 to kMaxMapExtents runs of whole pages
  bool operator==(const MapReply&) const = default;
};

// Alternative i is the reply to MessageType i + 1.
using Reply = std::variant<HelloReply, VolInfoReply, VolStatsReply, VolSyncReply, OpenReply,
                           CloseReply, PreadReply, PwriteReply, AppendReply, FsyncReply,
                           FtruncateReply, FstatReply, StatReply, ChmodReply, ChownReply, MapReply,
                           UnmapReply, DoorbellReply, RegisterBufReply, UnregisterBufReply>;

MessageType TypeOf(const Request& request);
// The bytes of file data a request moves (PREAD, PWRITE, APPEND), 0 for
// the others.
uint64_t DataBytes(const Request& request);
MessageType TypeOf(const Reply& reply);

// The result fields of any reply.
const ReplyResult& ResultOf(const Reply& reply);

// How many descriptors go with the message: 1 for HELLO, DOORBELL and
// REGISTER_BUF requests and for successful HELLO replies with has_cache_fd; 0 otherwise.
size_t FdCount(const Request& request);
size_t FdCount(const Reply& reply);

// A failed reply of type R for `status` (which must not be OK).
template <typename R>
R ErrorReply(const Status& status) {
  R reply;
  reply.result = -static_cast<int64_t>(status.err());
  reply.message = status.message();
  return reply;
}

// OK for result >= 0; Status(-result, message) otherwise.
Status StatusOf(const ReplyResult& result);

// --- Codec ------------------------------------------------------------------

// A complete frame (header and payload) ready for SendFrame or FrameWriter,
// with fd_count set to FdCount(message); the caller passes that many
// descriptors along. Fails, sending nothing, when a field is out of its
// bounds: ENAMETOOLONG for a path or volume name that is too long, EINVAL
// for a string with a NUL byte or a result below -kMaxErrno, EMSGSIZE for
// a stats JSON or an extent list that does not fit. A reply's message is
// never a reason to fail: it is cut at its first NUL byte and to
// kMaxMessageLen bytes (not inside a UTF-8 sequence).
Result<std::vector<uint8_t>> EncodeRequest(uint64_t request_id, const Request& request);
// The same into `out`, whose capacity is reused (a connection encodes
// every request into one buffer). On failure `out` holds no frame.
Status EncodeRequest(uint64_t request_id, const Request& request, std::vector<uint8_t>* out);
Result<std::vector<uint8_t>> EncodeReply(uint64_t request_id, const Reply& reply);

// Decodes the payload of a request frame (header.reply false) and checks
// every field, shared-memory ranges against `limits.shm_size` (or the
// registered buffer's size, limits.buf_sizes), and that the
// frame carries FdCount(result) descriptors. `payload` must be
// header.payload_size bytes. EPROTO on any violation.
Result<Request> DecodeRequest(const FrameHeader& header, std::span<const uint8_t> payload,
                              const SessionLimits& limits);

// The same for reply frames; MAP extents are checked against the cache
// arena of `limits`. Whether the reply answers the request it should is
// for the caller (request_id, type) to check.
Result<Reply> DecodeReply(const FrameHeader& header, std::span<const uint8_t> payload,
                          const SessionLimits& limits);

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_MESSAGES_H_
