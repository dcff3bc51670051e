#include "protocol/messages.h"

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <utility>

#include "protocol/doorbell.h"
#include "protocol/wire.h"

namespace zfile::protocol {
namespace {

// The largest payloads the bounds allow must fit in a frame, so that an
// encoder that respects the bounds never builds an oversize frame.
constexpr size_t kReplyPrefixMax = 8 + 4 + kMaxMessageLen;
static_assert(kReplyPrefixMax + 8 + 8 + 4 + 16 * kMaxMapExtents <= kMaxPayloadSize);
static_assert(kReplyPrefixMax + 4 + kMaxStatsJsonLen <= kMaxPayloadSize);
static_assert(4 + kMaxPathLen + 4 + 4 <= kMaxPayloadSize);
// Extent lengths are each at most the arena; their sum cannot wrap.
static_assert(kMaxCacheArenaSize <= UINT64_MAX / kMaxMapExtents);

// Checks that variant alternative i is the message of type i + 1, which the
// decoders' dispatch tables rely on.
template <typename Variant, size_t... I>
constexpr bool AlternativesInTypeOrder(std::index_sequence<I...>) {
  return ((std::variant_alternative_t<I, Variant>::kType == static_cast<MessageType>(I + 1)) &&
          ...);
}
constexpr size_t kNumTypes = kLastMessageType - kFirstMessageType + 1;
static_assert(std::variant_size_v<Request> == kNumTypes);
static_assert(std::variant_size_v<Reply> == kNumTypes);
static_assert(AlternativesInTypeOrder<Request>(std::make_index_sequence<kNumTypes>()));
static_assert(AlternativesInTypeOrder<Reply>(std::make_index_sequence<kNumTypes>()));

std::string U64String(uint64_t v) { return std::to_string(v); }

// --- Encoding helpers -------------------------------------------------------

// Checks a string field before it is encoded: at most `max_len` bytes
// (`too_long` errno otherwise) and no NUL byte (EINVAL).
Status CheckString(std::string_view field, std::string_view s, size_t max_len, int too_long) {
  if (s.size() > max_len) {
    return Status(too_long, "the " + std::string(field) + " is " + U64String(s.size()) +
                                " bytes long, more than the " + U64String(max_len) +
                                " the protocol allows");
  }
  if (s.find('\0') != std::string_view::npos) {
    return Status(EINVAL, "the " + std::string(field) + " contains a NUL byte");
  }
  return Status::Ok();
}

// A reply message as it goes on the wire: up to its first NUL byte and at
// most kMaxMessageLen bytes, not ending inside a UTF-8 sequence.
std::string_view WireMessage(std::string_view message) {
  message = message.substr(0, message.find('\0'));
  if (message.size() <= kMaxMessageLen) return message;
  size_t len = kMaxMessageLen;
  // Back off over continuation bytes (10xxxxxx) to the start of the
  // character that would be cut, and drop that character.
  while (len > 0 && (static_cast<uint8_t>(message[len]) & 0xC0) == 0x80) --len;
  return message.substr(0, len);
}

// --- Decoding helpers -------------------------------------------------------

// `what` is "[offset, offset + length)" for messages.
std::string RangeText(uint64_t offset, uint64_t length) {
  return "[" + U64String(offset) + ", +" + U64String(length) + ")";
}

// The shared-memory range of a PREAD/PWRITE/APPEND must lie in the region,
// or in the registered buffer its shm_offset names (messages.h). Written so
// that offset + length cannot wrap: a peer that sends offset = 2^64 - 1 is
// told so, not let through.
Status CheckShmRange(const WireReader& r, const SessionLimits& limits, uint64_t shm_offset,
                     uint64_t length) {
  const uint64_t id = BufIdOf(shm_offset);
  if (id != 0) {
    const uint64_t size = id <= limits.buf_sizes.size() ? limits.buf_sizes[id - 1] : 0;
    if (size == 0) {
      return r.Error("shared-memory offset " + U64String(shm_offset) + " names buffer " +
                     U64String(id) + ", which is not registered in this session");
    }
    const uint64_t offset = BufOffsetOf(shm_offset);
    if (offset > size || length > size - offset) {
      return r.Error("range " + RangeText(offset, length) + " is not inside registered buffer " +
                     U64String(id) + " of " + U64String(size) + " bytes");
    }
    return Status::Ok();
  }
  const uint64_t offset = shm_offset;
  if (offset > limits.shm_size || length > limits.shm_size - offset) {
    std::string text = "shared-memory range " + RangeText(offset, length) + " is not inside the " +
                       U64String(limits.shm_size) + "-byte region";
    if (length > UINT64_MAX - offset) text += " (offset + length overflows)";
    if (limits.shm_size == 0) text += " (no region was passed at HELLO)";
    return r.Error(text);
  }
  return Status::Ok();
}

Status CheckShmSize(const WireReader& r, uint64_t size) {
  if (size < kMinShmSize || size > kMaxShmSize || size % kShmAlignment != 0) {
    return r.Error("shared-memory size " + U64String(size) + " is not a multiple of " +
                   U64String(kShmAlignment) + " from " + U64String(kMinShmSize) + " to " +
                   U64String(kMaxShmSize));
  }
  return Status::Ok();
}

Status CheckProtocolVersion(const WireReader& r, uint32_t version) {
  if (version == 0) return r.Error("protocol version 0 does not exist (versions start at 1)");
  return Status::Ok();
}

// --- Volume and file information ------------------------------------------

Status PutVolumeInfo(WireWriter& w, const VolumeInfo& v) {
  ZF_RETURN_IF_ERROR(CheckString("volume label", v.label, kMaxLabelLen, EINVAL));
  ZF_RETURN_IF_ERROR(CheckString("volume UUID", v.uuid, kMaxUuidLen, EINVAL));
  w.U32(v.nr_cnv_files);
  w.U32(v.nr_seq_files);
  w.U32(v.block_size);
  w.U32(v.max_open);
  w.U32(v.max_active);
  w.U32(v.open_zones);
  w.U32(v.active_zones);
  w.Bool(v.read_only);
  w.U64(v.zone_size);
  w.U64(v.zone_capacity);
  w.String(v.label);
  w.String(v.uuid);
  return Status::Ok();
}

Status GetVolumeInfo(WireReader& r, VolumeInfo* v) {
  ZF_RETURN_IF_ERROR(r.U32("count of conventional files", &v->nr_cnv_files));
  ZF_RETURN_IF_ERROR(r.U32("count of sequential files", &v->nr_seq_files));
  ZF_RETURN_IF_ERROR(r.U32("block size", &v->block_size));
  ZF_RETURN_IF_ERROR(r.U32("open zone limit", &v->max_open));
  ZF_RETURN_IF_ERROR(r.U32("active zone limit", &v->max_active));
  ZF_RETURN_IF_ERROR(r.U32("count of open zones", &v->open_zones));
  ZF_RETURN_IF_ERROR(r.U32("count of active zones", &v->active_zones));
  ZF_RETURN_IF_ERROR(r.Bool("read-only flag", &v->read_only));
  ZF_RETURN_IF_ERROR(r.U64("zone size", &v->zone_size));
  ZF_RETURN_IF_ERROR(r.U64("zone capacity", &v->zone_capacity));
  ZF_RETURN_IF_ERROR(r.String("volume label", kMaxLabelLen, &v->label));
  return r.String("volume UUID", kMaxUuidLen, &v->uuid);
}

void PutStatInfo(WireWriter& w, const StatInfo& s) {
  w.U64(s.size);
  w.U64(s.max_size);
  w.U64(s.zone_start);
  w.U64(s.zone_len);
  w.U64(s.ino);
  w.U64(s.blocks);
  w.U32(s.block_size);
  w.U32(s.mode);
  w.U32(s.uid);
  w.U32(s.gid);
  w.U32(s.type);
  w.U32(s.cond);
}

// zfile_file_type and zfile_zone_cond values (include/zfile/zfile.h).
bool IsFileType(uint32_t t) { return t >= 1 && t <= 3; }
bool IsZoneCond(uint32_t c) { return c <= 4 || (c >= 0xD && c <= 0xF); }

Status GetStatInfo(WireReader& r, StatInfo* s) {
  ZF_RETURN_IF_ERROR(r.U64("file size", &s->size));
  ZF_RETURN_IF_ERROR(r.U64("maximum file size", &s->max_size));
  ZF_RETURN_IF_ERROR(r.U64("zone start", &s->zone_start));
  ZF_RETURN_IF_ERROR(r.U64("zone length", &s->zone_len));
  ZF_RETURN_IF_ERROR(r.U64("inode number", &s->ino));
  ZF_RETURN_IF_ERROR(r.U64("block count", &s->blocks));
  ZF_RETURN_IF_ERROR(r.U32("block size", &s->block_size));
  ZF_RETURN_IF_ERROR(r.U32("mode", &s->mode));
  ZF_RETURN_IF_ERROR(r.U32("uid", &s->uid));
  ZF_RETURN_IF_ERROR(r.U32("gid", &s->gid));
  ZF_RETURN_IF_ERROR(r.U32("file type", &s->type));
  if (!IsFileType(s->type)) {
    return r.Error("file type " + U64String(s->type) + " is not 1 (cnv), 2 (seq) or 3 (dir)");
  }
  ZF_RETURN_IF_ERROR(r.U32("zone condition", &s->cond));
  if (!IsZoneCond(s->cond)) {
    return r.Error("zone condition " + U64String(s->cond) + " is not a zone condition");
  }
  return Status::Ok();
}

// --- Requests: Put writes the payload, Get reads and checks it ---------------

Status Put(WireWriter& w, const HelloRequest& m) {
  ZF_RETURN_IF_ERROR(CheckString("volume name", m.volume, kMaxVolumeNameLen, ENAMETOOLONG));
  w.U32(m.protocol_version);
  w.String(m.volume);
  w.U64(m.shm_size);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, HelloRequest* m) {
  ZF_RETURN_IF_ERROR(r.U32("protocol version", &m->protocol_version));
  ZF_RETURN_IF_ERROR(CheckProtocolVersion(r, m->protocol_version));
  ZF_RETURN_IF_ERROR(r.String("volume name", kMaxVolumeNameLen, &m->volume));
  ZF_RETURN_IF_ERROR(r.U64("shared-memory size", &m->shm_size));
  return CheckShmSize(r, m->shm_size);
}

template <MessageType T>
Status Put(WireWriter&, const EmptyRequest<T>&) {
  return Status::Ok();
}
template <MessageType T>
Status Get(WireReader&, const SessionLimits&, EmptyRequest<T>*) {
  return Status::Ok();
}

template <MessageType T>
Status Put(WireWriter& w, const HandleRequest<T>& m) {
  w.U64(m.handle);
  return Status::Ok();
}
template <MessageType T>
Status Get(WireReader& r, const SessionLimits&, HandleRequest<T>* m) {
  return r.U64("handle", &m->handle);
}

Status Put(WireWriter& w, const OpenRequest& m) {
  ZF_RETURN_IF_ERROR(CheckString("path", m.path, kMaxPathLen, ENAMETOOLONG));
  w.String(m.path);
  w.I32(m.flags);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, OpenRequest* m) {
  ZF_RETURN_IF_ERROR(r.String("path", kMaxPathLen, &m->path));
  return r.I32("open flags", &m->flags);
}

template <MessageType T>
Status Put(WireWriter& w, const IoRequest<T>& m) {
  w.U64(m.handle);
  w.U64(m.offset);
  w.U64(m.length);
  w.I32(m.rwf);
  w.U64(m.shm_offset);
  return Status::Ok();
}
template <MessageType T>
Status Get(WireReader& r, const SessionLimits& limits, IoRequest<T>* m) {
  ZF_RETURN_IF_ERROR(r.U64("handle", &m->handle));
  ZF_RETURN_IF_ERROR(r.U64("file offset", &m->offset));
  ZF_RETURN_IF_ERROR(r.U64("length", &m->length));
  ZF_RETURN_IF_ERROR(r.I32("RWF flags", &m->rwf));
  ZF_RETURN_IF_ERROR(r.U64("shared-memory offset", &m->shm_offset));
  return CheckShmRange(r, limits, m->shm_offset, m->length);
}

Status Put(WireWriter& w, const AppendRequest& m) {
  w.U64(m.handle);
  w.U64(m.length);
  w.U64(m.shm_offset);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits& limits, AppendRequest* m) {
  ZF_RETURN_IF_ERROR(r.U64("handle", &m->handle));
  ZF_RETURN_IF_ERROR(r.U64("length", &m->length));
  ZF_RETURN_IF_ERROR(r.U64("shared-memory offset", &m->shm_offset));
  return CheckShmRange(r, limits, m->shm_offset, m->length);
}

Status Put(WireWriter& w, const FtruncateRequest& m) {
  w.U64(m.handle);
  w.U64(m.size);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, FtruncateRequest* m) {
  ZF_RETURN_IF_ERROR(r.U64("handle", &m->handle));
  return r.U64("size", &m->size);
}

Status Put(WireWriter& w, const StatRequest& m) {
  ZF_RETURN_IF_ERROR(CheckString("path", m.path, kMaxPathLen, ENAMETOOLONG));
  w.String(m.path);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, StatRequest* m) {
  return r.String("path", kMaxPathLen, &m->path);
}

Status Put(WireWriter& w, const ChmodRequest& m) {
  ZF_RETURN_IF_ERROR(CheckString("path", m.path, kMaxPathLen, ENAMETOOLONG));
  w.String(m.path);
  w.U32(m.mode);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, ChmodRequest* m) {
  ZF_RETURN_IF_ERROR(r.String("path", kMaxPathLen, &m->path));
  return r.U32("mode", &m->mode);
}

Status Put(WireWriter& w, const ChownRequest& m) {
  ZF_RETURN_IF_ERROR(CheckString("path", m.path, kMaxPathLen, ENAMETOOLONG));
  w.String(m.path);
  w.U32(m.uid);
  w.U32(m.gid);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, ChownRequest* m) {
  ZF_RETURN_IF_ERROR(r.String("path", kMaxPathLen, &m->path));
  ZF_RETURN_IF_ERROR(r.U32("uid", &m->uid));
  return r.U32("gid", &m->gid);
}

Status Put(WireWriter& w, const MapRequest& m) {
  w.U64(m.handle);
  w.U64(m.offset);
  w.U64(m.length);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, MapRequest* m) {
  ZF_RETURN_IF_ERROR(r.U64("handle", &m->handle));
  ZF_RETURN_IF_ERROR(r.U64("file offset", &m->offset));
  return r.U64("length", &m->length);
}

Status Put(WireWriter& w, const UnmapRequest& m) {
  w.U64(m.view_id);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, UnmapRequest* m) {
  return r.U64("view id", &m->view_id);
}

Status Put(WireWriter& w, const DoorbellRequest& m) {
  w.U64(m.size);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, DoorbellRequest* m) {
  ZF_RETURN_IF_ERROR(r.U64("doorbell size", &m->size));
  if (m->size != kDoorbellRegionSize) {
    return r.Error("doorbell size " + U64String(m->size) + " is not the " +
                   U64String(kDoorbellRegionSize) + " bytes the layout needs");
  }
  return Status::Ok();
}

Status Put(WireWriter& w, const RegisterBufRequest& m) {
  w.U64(m.size);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, RegisterBufRequest* m) {
  ZF_RETURN_IF_ERROR(r.U64("buffer size", &m->size));
  return CheckShmSize(r, m->size);
}

Status CheckBufId(const WireReader& r, uint64_t id) {
  if (id == 0 || id > kMaxRegisteredBufs) {
    return r.Error("buffer id " + U64String(id) + " is not from 1 to " +
                   U64String(kMaxRegisteredBufs));
  }
  return Status::Ok();
}

Status Put(WireWriter& w, const UnregisterBufRequest& m) {
  w.U64(m.buf_id);
  return Status::Ok();
}
Status Get(WireReader& r, const SessionLimits&, UnregisterBufRequest* m) {
  ZF_RETURN_IF_ERROR(r.U64("buffer id", &m->buf_id));
  return CheckBufId(r, m->buf_id);
}

// --- Replies: the body after result and message -----------------------------

Status PutBody(WireWriter& w, const HelloReply& m) {
  w.U32(m.protocol_version);
  w.U64(m.shm_size);
  w.Bool(m.has_cache_fd);
  w.U32(m.cache_page_size);
  w.U64(m.cache_arena_size);
  return PutVolumeInfo(w, m.volume);
}
Status GetBody(WireReader& r, const SessionLimits&, HelloReply* m) {
  ZF_RETURN_IF_ERROR(r.U32("protocol version", &m->protocol_version));
  ZF_RETURN_IF_ERROR(CheckProtocolVersion(r, m->protocol_version));
  ZF_RETURN_IF_ERROR(r.U64("shared-memory size", &m->shm_size));
  ZF_RETURN_IF_ERROR(CheckShmSize(r, m->shm_size));
  ZF_RETURN_IF_ERROR(r.Bool("cache descriptor flag", &m->has_cache_fd));
  ZF_RETURN_IF_ERROR(r.U32("cache page size", &m->cache_page_size));
  ZF_RETURN_IF_ERROR(r.U64("cache arena size", &m->cache_arena_size));
  if (m->has_cache_fd) {
    const uint32_t page = m->cache_page_size;
    if (page < kMinCachePageSize || page > kMaxCachePageSize || !std::has_single_bit(page)) {
      return r.Error("cache page size " + U64String(page) + " is not a power of two from " +
                     U64String(kMinCachePageSize) + " to " + U64String(kMaxCachePageSize));
    }
    const uint64_t arena = m->cache_arena_size;
    if (arena == 0 || arena > kMaxCacheArenaSize || arena % page != 0) {
      return r.Error("cache arena size " + U64String(arena) +
                     " is not a nonzero multiple of the page size " + U64String(page) + " up to " +
                     U64String(kMaxCacheArenaSize));
    }
  } else if (m->cache_page_size != 0 || m->cache_arena_size != 0) {
    return r.Error("cache page size " + U64String(m->cache_page_size) + " and arena size " +
                   U64String(m->cache_arena_size) + " without a cache descriptor (must be 0)");
  }
  return GetVolumeInfo(r, &m->volume);
}

template <MessageType T>
Status PutBody(WireWriter&, const ResultReply<T>&) {
  return Status::Ok();
}
template <MessageType T>
Status GetBody(WireReader&, const SessionLimits&, ResultReply<T>*) {
  return Status::Ok();
}

Status PutBody(WireWriter& w, const VolInfoReply& m) { return PutVolumeInfo(w, m.volume); }
Status GetBody(WireReader& r, const SessionLimits&, VolInfoReply* m) {
  return GetVolumeInfo(r, &m->volume);
}

Status PutBody(WireWriter& w, const VolStatsReply& m) {
  ZF_RETURN_IF_ERROR(CheckString("statistics JSON", m.json, kMaxStatsJsonLen, EMSGSIZE));
  w.String(m.json);
  return Status::Ok();
}
Status GetBody(WireReader& r, const SessionLimits&, VolStatsReply* m) {
  return r.String("statistics JSON", kMaxStatsJsonLen, &m->json);
}

Status PutBody(WireWriter& w, const OpenReply& m) {
  w.U64(m.handle);
  return Status::Ok();
}
Status GetBody(WireReader& r, const SessionLimits&, OpenReply* m) {
  return r.U64("handle", &m->handle);
}

Status PutBody(WireWriter& w, const AppendReply& m) {
  w.U64(m.offset);
  return Status::Ok();
}
Status GetBody(WireReader& r, const SessionLimits&, AppendReply* m) {
  return r.U64("landed offset", &m->offset);
}

template <MessageType T>
Status PutBody(WireWriter& w, const StatReplyOf<T>& m) {
  PutStatInfo(w, m.stat);
  return Status::Ok();
}
template <MessageType T>
Status GetBody(WireReader& r, const SessionLimits&, StatReplyOf<T>* m) {
  return GetStatInfo(r, &m->stat);
}

Status PutBody(WireWriter& w, const MapReply& m) {
  if (m.extents.size() > kMaxMapExtents) {
    return Status(EMSGSIZE, "the view's pages form " + U64String(m.extents.size()) +
                                " runs in the cache, more than the " + U64String(kMaxMapExtents) +
                                " a MAP reply can list");
  }
  w.U64(m.view_id);
  w.U64(m.start);
  w.U32(static_cast<uint32_t>(m.extents.size()));
  for (const MapExtent& e : m.extents) {
    w.U64(e.arena_offset);
    w.U64(e.length);
  }
  return Status::Ok();
}

Status PutBody(WireWriter& w, const RegisterBufReply& m) {
  w.U64(m.buf_id);
  return Status::Ok();
}
Status GetBody(WireReader& r, const SessionLimits&, RegisterBufReply* m) {
  ZF_RETURN_IF_ERROR(r.U64("buffer id", &m->buf_id));
  return CheckBufId(r, m->buf_id);
}

// Each extent must be a nonempty run of whole pages inside the arena, so
// that the client's mmap of it can neither fail on alignment nor reach
// past the file; `start` must fall inside the first page.
Status GetBody(WireReader& r, const SessionLimits& limits, MapReply* m) {
  ZF_RETURN_IF_ERROR(r.U64("view id", &m->view_id));
  ZF_RETURN_IF_ERROR(r.U64("start offset", &m->start));
  uint32_t count;
  ZF_RETURN_IF_ERROR(r.U32("extent count", &count));
  if (count == 0 || count > kMaxMapExtents) {
    return r.Error("extent count " + U64String(count) + " is not from 1 to " +
                   U64String(kMaxMapExtents));
  }
  // Checked against what remains before reserving, so that a lying count
  // cannot make us allocate for extents that are not there.
  if (r.remaining() < size_t{count} * 16) {
    return r.Error("truncated: " + U64String(count) + " extents need " +
                   U64String(size_t{count} * 16) + " bytes, " + U64String(r.remaining()) +
                   " remain");
  }
  const uint64_t page = limits.cache_page_size;
  if (page == 0) return r.Error("a view was mapped but no cache arena was shared at HELLO");
  if (m->start >= page) {
    return r.Error("start offset " + U64String(m->start) + " is not inside the first " +
                   U64String(page) + "-byte page");
  }
  m->extents.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    MapExtent e;
    ZF_RETURN_IF_ERROR(r.U64("extent offset", &e.arena_offset));
    ZF_RETURN_IF_ERROR(r.U64("extent length", &e.length));
    const std::string which = "extent " + U64String(i) + " " + RangeText(e.arena_offset, e.length);
    if (e.length == 0 || e.arena_offset % page != 0 || e.length % page != 0) {
      return r.Error(which + " is not a nonempty run of whole " + U64String(page) + "-byte pages");
    }
    if (e.arena_offset > limits.cache_arena_size ||
        e.length > limits.cache_arena_size - e.arena_offset) {
      return r.Error(which + " is not inside the " + U64String(limits.cache_arena_size) +
                     "-byte cache arena");
    }
    m->extents.push_back(e);
  }
  return Status::Ok();
}

// --- Dispatch ---------------------------------------------------------------

template <typename M>
size_t FdCountOf(const M&) {
  return 0;
}
size_t FdCountOf(const HelloRequest&) { return 1; }
size_t FdCountOf(const DoorbellRequest&) { return 1; }
size_t FdCountOf(const RegisterBufRequest&) { return 1; }
size_t FdCountOf(const HelloReply& m) { return m.result >= 0 && m.has_cache_fd ? 1 : 0; }

// Room for the header, the payload (written by `put_payload`), then the
// header: its payload size is known only once the payload is written. The
// frame replaces what `out` held; its capacity is reused.
template <typename PutPayload>
Status EncodeFrameInto(uint64_t request_id, bool reply, MessageType type,
                       const PutPayload& put_payload, size_t fd_count, std::vector<uint8_t>* out) {
  out->assign(kFrameHeaderSize, 0);
  WireWriter w(out);
  ZF_RETURN_IF_ERROR(put_payload(w));
  const size_t payload = out->size() - kFrameHeaderSize;
  if (payload > kMaxPayloadSize) {
    // Unreachable while the bounds respect the static_asserts above.
    return Status(EMSGSIZE, "a " + std::string(MessageTypeName(type)) + " payload of " +
                                U64String(payload) + " bytes is more than the " +
                                U64String(kMaxPayloadSize) + " a frame may carry");
  }
  FrameHeader h;
  h.type = type;
  h.reply = reply;
  h.request_id = request_id;
  h.payload_size = static_cast<uint32_t>(payload);
  h.fd_count = static_cast<uint8_t>(fd_count);
  EncodeFrameHeader(h, *out);
  return Status::Ok();
}

// Checks common to both directions before the fields are read.
Status CheckFrame(const FrameHeader& header, std::span<const uint8_t> payload, bool reply) {
  if (header.reply != reply) {
    return Status(EPROTO,
                  header.Name() + " where a " + (reply ? "reply" : "request") + " was expected");
  }
  if (payload.size() != header.payload_size) {
    return Status(EPROTO, header.Name() + ": the header announces " +
                              U64String(header.payload_size) + " payload bytes, " +
                              U64String(payload.size()) + " were given");
  }
  return Status::Ok();
}

Status CheckFdCount(const FrameHeader& header, size_t expected) {
  if (header.fd_count == expected) return Status::Ok();
  return Status(EPROTO, header.Name() + " must carry " + U64String(expected) +
                            " file descriptor(s), it carries " + U64String(header.fd_count));
}

using DecodeRequestFn = Result<Request> (*)(const FrameHeader&, std::span<const uint8_t>,
                                            const SessionLimits&);
using DecodeReplyFn = Result<Reply> (*)(const FrameHeader&, std::span<const uint8_t>,
                                        const SessionLimits&);

template <typename M>
Result<Request> DecodeRequestAs(const FrameHeader& header, std::span<const uint8_t> payload,
                                const SessionLimits& limits) {
  WireReader r(payload, header.Name());
  M m;
  ZF_RETURN_IF_ERROR(Get(r, limits, &m));
  ZF_RETURN_IF_ERROR(r.Finish());
  ZF_RETURN_IF_ERROR(CheckFdCount(header, FdCountOf(m)));
  return Request(std::move(m));
}

template <typename M>
Result<Reply> DecodeReplyAs(const FrameHeader& header, std::span<const uint8_t> payload,
                            const SessionLimits& limits) {
  WireReader r(payload, header.Name());
  M m;
  ZF_RETURN_IF_ERROR(r.I64("result", &m.result));
  if (m.result < -kMaxErrno) {
    return r.Error("result " + std::to_string(m.result) +
                   " is neither a count nor a negative errno");
  }
  ZF_RETURN_IF_ERROR(r.String("message", kMaxMessageLen, &m.message));
  if (m.result >= 0) ZF_RETURN_IF_ERROR(GetBody(r, limits, &m));
  ZF_RETURN_IF_ERROR(r.Finish());
  ZF_RETURN_IF_ERROR(CheckFdCount(header, FdCountOf(m)));
  return Reply(std::move(m));
}

template <size_t... I>
constexpr std::array<DecodeRequestFn, sizeof...(I)> MakeRequestDecoders(std::index_sequence<I...>) {
  return {&DecodeRequestAs<std::variant_alternative_t<I, Request>>...};
}
template <size_t... I>
constexpr std::array<DecodeReplyFn, sizeof...(I)> MakeReplyDecoders(std::index_sequence<I...>) {
  return {&DecodeReplyAs<std::variant_alternative_t<I, Reply>>...};
}
constexpr auto kRequestDecoders = MakeRequestDecoders(std::make_index_sequence<kNumTypes>());
constexpr auto kReplyDecoders = MakeReplyDecoders(std::make_index_sequence<kNumTypes>());

// Index of `type` in the variants; DecodeFrameHeader has already refused
// values outside the enum, but a caller may build a header by hand.
Result<size_t> TypeIndex(const FrameHeader& header) {
  const auto value = static_cast<uint16_t>(header.type);
  if (value < kFirstMessageType || value > kLastMessageType) {
    return Status(EPROTO, "unknown message type " + U64String(value));
  }
  return size_t{value} - kFirstMessageType;
}

}  // namespace

MessageType TypeOf(const Request& request) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, request);
}

uint64_t DataBytes(const Request& request) {
  if (const auto* m = std::get_if<PreadRequest>(&request)) return m->length;
  if (const auto* m = std::get_if<PwriteRequest>(&request)) return m->length;
  if (const auto* m = std::get_if<AppendRequest>(&request)) return m->length;
  return 0;
}

MessageType TypeOf(const Reply& reply) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, reply);
}

const ReplyResult& ResultOf(const Reply& reply) {
  return std::visit([](const auto& m) -> const ReplyResult& { return m; }, reply);
}

size_t FdCount(const Request& request) {
  return std::visit([](const auto& m) { return FdCountOf(m); }, request);
}

size_t FdCount(const Reply& reply) {
  return std::visit([](const auto& m) { return FdCountOf(m); }, reply);
}

Status StatusOf(const ReplyResult& result) {
  if (result.result >= 0) return Status::Ok();
  const int err = result.result < -kMaxErrno ? EPROTO : static_cast<int>(-result.result);
  std::string message = result.message;
  if (message.empty()) message = std::strerror(err);
  return Status(err, std::move(message));
}

Status EncodeRequest(uint64_t request_id, const Request& request, std::vector<uint8_t>* out) {
  return std::visit(
      [&](const auto& m) {
        return EncodeFrameInto(
            request_id, /*reply=*/false, m.kType, [&](WireWriter& w) { return Put(w, m); },
            FdCountOf(m), out);
      },
      request);
}

Result<std::vector<uint8_t>> EncodeRequest(uint64_t request_id, const Request& request) {
  std::vector<uint8_t> out;
  ZF_RETURN_IF_ERROR(EncodeRequest(request_id, request, &out));
  return out;
}

Result<std::vector<uint8_t>> EncodeReply(uint64_t request_id, const Reply& reply) {
  return std::visit(
      [&](const auto& m) {
        auto put = [&](WireWriter& w) -> Status {
          if (m.result < -kMaxErrno) {
            return Status(EINVAL, "reply result " + std::to_string(m.result) +
                                      " is neither a count nor a negative errno");
          }
          w.I64(m.result);
          w.String(WireMessage(m.message));
          if (m.result < 0) return Status::Ok();
          return PutBody(w, m);
        };
        std::vector<uint8_t> out;
        Status st = EncodeFrameInto(request_id, /*reply=*/true, m.kType, put, FdCountOf(m), &out);
        if (!st.ok()) return Result<std::vector<uint8_t>>(std::move(st));
        return Result<std::vector<uint8_t>>(std::move(out));
      },
      reply);
}

Result<Request> DecodeRequest(const FrameHeader& header, std::span<const uint8_t> payload,
                              const SessionLimits& limits) {
  ZF_RETURN_IF_ERROR(CheckFrame(header, payload, /*reply=*/false));
  ZF_ASSIGN_OR_RETURN(const size_t index, TypeIndex(header));
  return kRequestDecoders[index](header, payload, limits);
}

Result<Reply> DecodeReply(const FrameHeader& header, std::span<const uint8_t> payload,
                          const SessionLimits& limits) {
  ZF_RETURN_IF_ERROR(CheckFrame(header, payload, /*reply=*/true));
  ZF_ASSIGN_OR_RETURN(const size_t index, TypeIndex(header));
  return kReplyDecoders[index](header, payload, limits);
}

}  // namespace zfile::protocol
