#include "client/client_backend.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client/client_uri.h"
#include "client/connection.h"
#include "protocol/bulk_copy.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"
#include "zfile/zfile.h"

namespace zfile {

namespace proto = zfile::protocol;

namespace {

std::atomic<uint64_t> zero_copy_bytes{0};
std::atomic<uint64_t> copied_bytes{0};
std::atomic<uint64_t> copied_early_bytes{0};

// Calls made through connections on the doorbell (ClientDoorbellCallsNow).
std::atomic<uint64_t> doorbell_calls{0};

FileStat ToFileStat(const proto::StatInfo& in) {
  FileStat st;
  st.size = in.size;
  st.max_size = in.max_size;
  st.zone_start = in.zone_start;
  st.zone_len = in.zone_len;
  st.block_size = in.block_size;
  st.ino = in.ino;
  st.mode = in.mode;
  st.uid = in.uid;
  st.gid = in.gid;
  // Directories are told apart by their mode (zfile_c.cc's ToStat).
  st.kind = in.type == ZFILE_TYPE_SEQ ? FileKind::kSequential : FileKind::kConventional;
  // The wire carries kernel condition values, and the decoder has refused
  // any other.
  if (!ConditionFromKernel(in.cond, &st.cond)) st.cond = ZoneCondition::kNotWp;
  st.blocks = in.blocks;
  return st;
}

VolumeInfo ToVolumeInfo(const proto::VolumeInfo& in, const std::string& uri) {
  VolumeInfo v;
  v.device_uri = uri;  // the device is the daemon's to name
  v.nr_cnv_files = in.nr_cnv_files;
  v.nr_seq_files = in.nr_seq_files;
  v.block_size = in.block_size;
  v.zone_size = in.zone_size;
  v.zone_capacity = in.zone_capacity;
  v.max_open = in.max_open;
  v.max_active = in.max_active;
  v.open_zones = in.open_zones;
  v.active_zones = in.active_zones;
  v.read_only = in.read_only;
  v.label = in.label;
  v.uuid = in.uuid;
  return v;
}

// A registered buffer (zfile_buf_alloc): a sealed memfd, mapped here, that
// connections register with their sessions as I/O needs it. I/O holds a
// reference while in flight, so a free meanwhile cannot unmap it under a
// copy or the daemon's reply.
struct RegBuf {
  uint64_t key = 0;  // never reused for another buffer (Connection::RegisterBuf)
  proto::UniqueFd fd;
  proto::ShmMapping map;
  // Set first by a free: I/O that sees it no longer registers the buffer
  // anywhere (it copies), so that none is left registered once the free
  // has unregistered it from every connection.
  std::atomic<bool> freed{false};
};

// What a volume, its files and its views share. Files and views keep it
// (and their connection) alive, so that whatever order the C API's objects
// are destroyed in, nothing points at freed memory.
struct ClientState {
  ClientTarget target;
  std::string uri;

  std::mutex mu;
  std::vector<std::shared_ptr<Connection>> pool;  // guarded by mu
  size_t next = 0;                                // guarded by mu: turn when all are busy
  bool closed = false;                            // guarded by mu

  // Open files and mapped views (zfile_vol_close refuses while any).
  // Changed under mu when they go up, so that Close() sees every Open()
  // that has begun.
  std::atomic<int> files{0};
  std::atomic<int> views{0};

  // Registered buffers by address. Never held while taking a connection's
  // mu(), which frees take after it.
  std::mutex buf_mu;
  std::map<uintptr_t, std::shared_ptr<RegBuf>> bufs;  // guarded by buf_mu
  uint64_t next_buf_key = 1;                          // guarded by buf_mu
};

Result<std::shared_ptr<Connection>> NewConnection(const ClientState& state) {
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                      Connection::Open(state.target, kClientShmSize));
  return std::shared_ptr<Connection>(std::move(conn));
}

// With conn.mu() held: conn.Call<R>(request), counted for
// ClientDoorbellCallsNow when the connection is on the doorbell (then
// every request of it is rung, bar descriptor-carrying ones, which this
// file never sends through Call).
template <typename R>
Result<R> CallOn(Connection& conn, const proto::Request& request,
                 Connection::ReadSink* sink = nullptr) {
  if (conn.on_doorbell()) doorbell_calls.fetch_add(1, std::memory_order_relaxed);
  return conn.Call<R>(request, sink);
}

// The largest piece of one call sent as one request: the region, rounded
// down to the volume's block size so that split O_DIRECT and sequential
// writes keep every piece block-aligned.
size_t PieceSize(const Connection& conn) {
  const uint64_t region = conn.shm_size();
  const uint64_t block = conn.hello_volume().block_size;
  if (block == 0 || block > region) return region;
  return region - region % block;
}

// With conn.mu() held: sends `request`, whose reply is of type R, for its
// effect only, unless the session is already gone (the daemon then dropped
// whatever the request would have ended along with the session).
template <typename R>
void CallUnlessBroken(Connection& conn, const proto::Request& request) {
  if (!conn.broken()) (void)CallOn<R>(conn, request);
}

// Takes a file or view out of the counts it was added to: its connection's
// pins and the volume's `count` (files or views).
void Uncount(Connection& conn, std::atomic<int>& count) {
  conn.pins().fetch_sub(1);
  count.fetch_sub(1);
}

// What a closing file or unmapped view does: ends it in the daemon with
// `request` (an R comes back; a failure there is not the caller's to see,
// as the object is gone either way), then uncounts it.
template <typename R>
void Release(Connection& conn, const proto::Request& request, std::atomic<int>& count) {
  {
    std::lock_guard<std::mutex> lock(conn.mu());
    CallUnlessBroken<R>(conn, request);
  }
  Uncount(conn, count);
}

class ClientView final : public ViewBackend {
 public:
  ClientView(std::shared_ptr<ClientState> state, std::shared_ptr<Connection> conn, uint64_t view_id,
             void* base, size_t mapped, const void* data, size_t size)
      : state_(std::move(state)),
        conn_(std::move(conn)),
        view_id_(view_id),
        base_(base),
        mapped_(mapped),
        data_(data),
        size_(size) {}

  ~ClientView() override {
    // Our mapping goes first: once the daemon unpins the pages it may reuse
    // them for other data.
    ::munmap(base_, mapped_);
    proto::UnmapRequest req;
    req.view_id = view_id_;
    Release<proto::UnmapReply>(*conn_, req, state_->views);
  }

  const void* data() const override { return data_; }
  size_t size() const override { return size_; }

 private:
  const std::shared_ptr<ClientState> state_;
  const std::shared_ptr<Connection> conn_;
  const uint64_t view_id_;
  void* const base_;
  const size_t mapped_;
  const void* const data_;
  const size_t size_;
};

class ClientFile final : public FileBackend {
 public:
  ClientFile(std::shared_ptr<ClientState> state, std::shared_ptr<Connection> conn, uint64_t handle,
             int flags)
      : state_(std::move(state)),
        conn_(std::move(conn)),
        handle_(handle),
        piece_(PieceSize(*conn_)),
        o_append_((flags & O_APPEND) != 0) {}

  ~ClientFile() override {
    proto::CloseRequest req;
    req.handle = handle_;
    Release<proto::CloseReply>(*conn_, req, state_->files);
  }

  Result<size_t> PRead(void* buf, size_t len, uint64_t offset, int rwf) override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    auto* out = static_cast<uint8_t*>(buf);
    std::shared_ptr<RegBuf> hold;
    const std::optional<uint64_t> direct = ZeroCopyOffset(buf, len, &hold);
    // Bytes the daemon reported ready while this piece was read are in
    // `out` already (Connection::ReadSink).
    Connection::ReadSink sink;
    Result<size_t> moved = InPieces(
        "PREAD", len, direct ? len : piece_,
        [&](size_t done, size_t piece) -> Result<uint64_t> {
          proto::PreadRequest req;
          req.handle = handle_;
          req.offset = offset + done;
          req.length = piece;
          req.rwf = rwf;
          req.shm_offset = direct ? *direct + done : 0;
          sink = {out + done, direct ? 0 : piece, 0};
          ZF_ASSIGN_OR_RETURN(proto::PreadReply reply,
                              CallOn<proto::PreadReply>(*conn_, req, direct ? nullptr : &sink));
          return static_cast<uint64_t>(reply.result);
        },
        [&](size_t done, uint64_t n) {
          if (direct) return;
          const uint64_t early = std::min<uint64_t>(sink.copied, n);
          copied_early_bytes.fetch_add(early, std::memory_order_relaxed);
          if (n > early) std::memcpy(out + done + early, conn_->shm() + early, n - early);
        });
    Count(direct.has_value(), moved);
    return moved;
  }

  Result<size_t> PWrite(const void* buf, size_t len, uint64_t offset, int rwf) override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    const auto* in = static_cast<const uint8_t*>(buf);
    std::shared_ptr<RegBuf> hold;
    const std::optional<uint64_t> direct = ZeroCopyOffset(buf, len, &hold);
    Result<size_t> moved =
        InPieces("PWRITE", len, direct ? len : piece_, [&](size_t done, size_t piece) {
          if (direct) return SendPwrite(offset + done, piece, rwf, *direct + done);
          CopyIn(in + done, piece);
          return SendPwrite(offset + done, piece, rwf, 0);
        });
    Count(direct.has_value(), moved);
    return moved;
  }

  // Only the first piece is an APPEND. Another appender (another session,
  // another process) may land between two requests of ours, so the
  // following pieces are PWRITEs right behind the first one: a sequential
  // file refuses a write that is not at its write pointer, and an
  // interleaving then ends the call short, with every byte reported lying
  // contiguously at *landed, as in embedded mode (which appends in one
  // go). The exception is a handle opened with O_APPEND, whose PWRITEs land
  // at the write pointer wherever they are aimed: there every piece is an
  // APPEND, and one that did not land right behind its predecessor ends the
  // call short (its bytes are in the file past the interloper's, but not
  // counted). A registered buffer goes in one APPEND, as in embedded mode.
  Result<size_t> Append(const void* buf, size_t len, uint64_t* landed) override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    const auto* in = static_cast<const uint8_t*>(buf);
    std::shared_ptr<RegBuf> hold;
    const std::optional<uint64_t> direct = ZeroCopyOffset(buf, len, &hold);
    uint64_t start = 0;
    Result<size_t> moved = InPieces(
        "APPEND", len, direct ? len : piece_, [&](size_t done, size_t piece) -> Result<uint64_t> {
          const uint64_t shm_offset = direct ? *direct + done : 0;
          if (!direct) CopyIn(in + done, piece);
          if (done > 0 && !o_append_) return SendPwrite(start + done, piece, /*rwf=*/0, shm_offset);
          proto::AppendRequest req;
          req.handle = handle_;
          req.length = piece;
          req.shm_offset = shm_offset;
          ZF_ASSIGN_OR_RETURN(proto::AppendReply reply, CallOn<proto::AppendReply>(*conn_, req));
          if (done == 0) {
            start = reply.offset;
          } else if (reply.offset != start + done) {
            return Status(EAGAIN, "another append landed in the middle of this one");
          }
          return static_cast<uint64_t>(reply.result);
        });
    Count(direct.has_value(), moved);
    if (moved.ok() && landed != nullptr) *landed = start;
    return moved;
  }

  Status Fsync() override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    proto::FsyncRequest req;
    req.handle = handle_;
    return CallOn<proto::FsyncReply>(*conn_, req).status();
  }

  Status Truncate(uint64_t size) override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    proto::FtruncateRequest req;
    req.handle = handle_;
    req.size = size;
    return CallOn<proto::FtruncateReply>(*conn_, req).status();
  }

  Status Stat(FileStat* st) override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    proto::FstatRequest req;
    req.handle = handle_;
    ZF_ASSIGN_OR_RETURN(proto::FstatReply reply, CallOn<proto::FstatReply>(*conn_, req));
    *st = ToFileStat(reply.stat);
    return Status::Ok();
  }

  Result<std::unique_ptr<ViewBackend>> Map(uint64_t offset, size_t len) override {
    std::lock_guard<std::mutex> lock(conn_->mu());
    proto::MapRequest req;
    req.handle = handle_;
    req.offset = offset;
    req.length = len;
    ZF_ASSIGN_OR_RETURN(proto::MapReply reply, CallOn<proto::MapReply>(*conn_, req));
    // The daemon now holds the view's pages pinned for us: every failure
    // from here on must give them back.
    auto give_back = [&](Status why) {
      proto::UnmapRequest unmap;
      unmap.view_id = reply.view_id;
      CallUnlessBroken<proto::UnmapReply>(*conn_, unmap);
      return why;
    };
    if (conn_->arena_fd() < 0) {
      return give_back(Status(EOPNOTSUPP,
                              "zfiled passed no cache arena at HELLO, so this process cannot "
                              "map its views"));
    }
    // The decoder checked that the extents are whole pages inside the
    // arena, so this sum cannot overflow.
    uint64_t total = 0;
    for (const proto::MapExtent& e : reply.extents) total += e.length;
    if (reply.start > total || len > total - reply.start) {
      return conn_->Break(
          give_back(Status(EPROTO, "zfiled's view of " + std::to_string(len) + " bytes at " +
                                       std::to_string(reply.start) + " does not fit its " +
                                       std::to_string(total) + " bytes of pages")));
    }
    // One reservation for the whole view, then each run of pages mapped
    // over its part of it: the runs lie side by side in our address space
    // wherever they are in the arena.
    void* base =
        ::mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
      return give_back(ErrnoStatus(errno, "reserving address space for a view"));
    }
    uint64_t pos = 0;
    for (const proto::MapExtent& e : reply.extents) {
      void* at = static_cast<uint8_t*>(base) + pos;
      if (::mmap(at, e.length, PROT_READ, MAP_SHARED | MAP_FIXED, conn_->arena_fd(),
                 static_cast<off_t>(e.arena_offset)) == MAP_FAILED) {
        const int err = errno;
        ::munmap(base, total);
        return give_back(ErrnoStatus(err, "mapping a view from zfiled's cache arena"));
      }
      pos += e.length;
    }
    conn_->pins().fetch_add(1);
    state_->views.fetch_add(1);
    return std::unique_ptr<ViewBackend>(
        std::make_unique<ClientView>(state_, conn_, reply.view_id, base, total,
                                     static_cast<const uint8_t*>(base) + reply.start, len));
  }

 private:
  static Status TooMuch(const char* what, uint64_t n, uint64_t asked) {
    return Status(EPROTO, std::string("zfiled reported ") + std::to_string(n) + " bytes for a " +
                              what + " of " + std::to_string(asked));
  }

  // With mu() held: carries out one call of `len` bytes as requests of at
  // most `piece_size` bytes each, in order. `send(done, piece)` sends the
  // piece that starts `done` bytes into the call and returns how many bytes
  // the daemon says it moved; `received(done, n)` then takes them (a read
  // copies them out of the region). At least one request is sent, so that
  // a call of 0 bytes is still checked by the engine (a write-only handle,
  // ...), as in embedded mode. A short piece ends the call (end of file, a
  // full zone, ...). A failure after some bytes ends it short too: what was
  // done is the caller's, as with a short read(2)/write(2); a failure of
  // the first piece is the call's error. A count larger than the piece
  // breaks the connection (`what` names the request in that error).
  template <typename Send, typename Received>
  Result<size_t> InPieces(const char* what, size_t len, size_t piece_size, Send send,
                          Received received) {
    size_t done = 0;
    do {
      const size_t piece = std::min(len - done, piece_size);
      Result<uint64_t> n = send(done, piece);
      if (!n.ok()) {
        if (done > 0) break;
        return n.status();
      }
      if (*n > piece) return conn_->Break(TooMuch(what, *n, piece));
      received(done, *n);
      done += *n;
      if (*n < piece) break;
    } while (done < len);
    return done;
  }
  template <typename Send>
  Result<size_t> InPieces(const char* what, size_t len, size_t piece_size, Send send) {
    return InPieces(what, len, piece_size, send, [](size_t, uint64_t) {});
  }

  // With mu() held: the shm_offset that names [p, p + len) in a registered
  // buffer of the volume, registering the buffer with this connection's
  // session first if need be; nullopt when the range is not wholly inside
  // one, or the session cannot take it (an older daemon, its limit, ...):
  // the call then copies through the region. `hold` keeps the buffer
  // mapped until the call is done.
  std::optional<uint64_t> ZeroCopyOffset(const void* p, size_t len, std::shared_ptr<RegBuf>* hold) {
    if (!conn_->can_register() || p == nullptr) return std::nullopt;
    const auto addr = reinterpret_cast<uintptr_t>(p);
    {
      std::lock_guard<std::mutex> lock(state_->buf_mu);
      auto it = state_->bufs.upper_bound(addr);
      if (it == state_->bufs.begin()) return std::nullopt;
      --it;
      const uint64_t off = addr - it->first;
      const uint64_t size = it->second->map.size();
      if (off > size || len > size - off) return std::nullopt;
      *hold = it->second;
    }
    const RegBuf& buf = **hold;
    if (buf.freed.load()) return std::nullopt;
    // Counted as a call whether or not the buffer had to be registered:
    // for ClientDoorbellCallsNow, only whether the connection rings matters.
    if (conn_->on_doorbell()) doorbell_calls.fetch_add(1, std::memory_order_relaxed);
    Result<uint64_t> id = conn_->RegisterBuf(buf.key, buf.fd.get(), buf.map.size());
    if (!id.ok()) return std::nullopt;
    return proto::BufShmOffset(*id, addr - reinterpret_cast<uintptr_t>(buf.map.data()));
  }

  // Counts what a call moved, by path (ClientCopyCounters).
  static void Count(bool direct, const Result<size_t>& moved) {
    if (!moved.ok()) return;
    (direct ? zero_copy_bytes : copied_bytes).fetch_add(*moved, std::memory_order_relaxed);
  }

  // With mu() held: the region's first `len` bytes become `data`'s.
  void CopyIn(const uint8_t* data, size_t len) { proto::CopyBulk(conn_->shm(), data, len); }

  // With mu() held: a PWRITE of `len` bytes at `shm_offset` (0: the
  // region's start) to `offset`; the bytes written.
  Result<uint64_t> SendPwrite(uint64_t offset, size_t len, int rwf, uint64_t shm_offset) {
    proto::PwriteRequest req;
    req.handle = handle_;
    req.offset = offset;
    req.length = len;
    req.rwf = rwf;
    req.shm_offset = shm_offset;
    ZF_ASSIGN_OR_RETURN(proto::PwriteReply reply, CallOn<proto::PwriteReply>(*conn_, req));
    return static_cast<uint64_t>(reply.result);
  }

  const std::shared_ptr<ClientState> state_;
  const std::shared_ptr<Connection> conn_;
  const uint64_t handle_;
  const size_t piece_;
  // Opened with O_APPEND: every write of this handle lands at the write
  // pointer (see Append).
  const bool o_append_;
};

class ClientVolume final : public VolBackend {
 public:
  explicit ClientVolume(std::shared_ptr<ClientState> state) : state_(std::move(state)) {}

  Status Close() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    {
      std::lock_guard<std::mutex> bufs_lock(state_->buf_mu);
      if (!state_->bufs.empty()) {
        return Status(EBUSY, "the volume has " + std::to_string(state_->bufs.size()) +
                                 " registered buffer(s) still allocated; free them "
                                 "(zfile_buf_free) before closing the volume");
      }
    }
    const int files = state_->files.load();
    const int views = state_->views.load();
    // "still open", as the embedded engine's refusal (Volume::Unmount)
    // says, so that callers find the same words in both modes.
    if (files > 0 || views > 0) {
      return Status(EBUSY, "volume '" + state_->target.volume +
                               "' of zfiled: " + std::to_string(files) + " open file(s) and " +
                               std::to_string(views) +
                               " mapped view(s) still open in this process; close and unmap "
                               "them before closing the volume");
    }
    // The daemon keeps the volume mounted; ending the sessions is all a
    // client's close does. Dirty data is the daemon's to write back.
    state_->pool.clear();
    state_->closed = true;
    return Status::Ok();
  }

  Status Sync() override {
    return VolumeCall<proto::VolSyncReply>(proto::VolSyncRequest{}).status();
  }

  Result<VolumeInfo> Info() override {
    ZF_ASSIGN_OR_RETURN(proto::VolInfoReply reply,
                        VolumeCall<proto::VolInfoReply>(proto::VolInfoRequest{}));
    return ToVolumeInfo(reply.volume, state_->uri);
  }

  Result<std::string> StatsJson() override {
    ZF_ASSIGN_OR_RETURN(proto::VolStatsReply reply,
                        VolumeCall<proto::VolStatsReply>(proto::VolStatsRequest{}));
    return std::move(reply.json);
  }

  Result<std::unique_ptr<FileBackend>> Open(std::string_view path, int flags) override {
    proto::OpenRequest req;
    req.path = std::string(path);
    req.flags = flags;
    // Retried once, like VolumeCall, when the session was found dead: the
    // daemon dropped whatever that session held, so nothing is opened
    // twice.
    for (int attempt = 0;; ++attempt) {
      ZF_ASSIGN_OR_RETURN(std::shared_ptr<Connection> conn, ConnectionForFile());
      Result<proto::OpenReply> reply = Status(EIO, "not sent");
      {
        std::lock_guard<std::mutex> lock(conn->mu());
        reply = CallOn<proto::OpenReply>(*conn, req);
      }
      if (reply.ok()) {
        return std::unique_ptr<FileBackend>(
            std::make_unique<ClientFile>(state_, conn, reply->handle, flags));
      }
      // ConnectionForFile counted the file in; it did not open.
      Uncount(*conn, state_->files);
      if (!conn->broken() || attempt > 0) return reply.status();
    }
  }

  Status Stat(std::string_view path, FileStat* st) override {
    proto::StatRequest req;
    req.path = std::string(path);
    ZF_ASSIGN_OR_RETURN(proto::StatReply reply, VolumeCall<proto::StatReply>(req));
    *st = ToFileStat(reply.stat);
    return Status::Ok();
  }

  Status Chmod(std::string_view path, uint32_t mode) override {
    proto::ChmodRequest req;
    req.path = std::string(path);
    req.mode = mode;
    return VolumeCall<proto::ChmodReply>(req).status();
  }

  Result<void*> BufAlloc(size_t size) override {
    ZF_ASSIGN_OR_RETURN(const size_t rounded, BufAllocSize(size));
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      ZF_RETURN_IF_ERROR(CheckOpen());
    }
    auto buf = std::make_shared<RegBuf>();
    ZF_ASSIGN_OR_RETURN(buf->fd, proto::CreateShmRegion(rounded));
    ZF_ASSIGN_OR_RETURN(buf->map, proto::ShmMapping::Map(buf->fd.get(), rounded));
    void* addr = buf->map.data();
    std::lock_guard<std::mutex> lock(state_->buf_mu);
    buf->key = state_->next_buf_key++;
    state_->bufs.emplace(reinterpret_cast<uintptr_t>(addr), std::move(buf));
    return addr;
  }

  Status BufFree(void* p) override {
    std::shared_ptr<RegBuf> buf;
    {
      std::lock_guard<std::mutex> lock(state_->buf_mu);
      auto it = state_->bufs.find(reinterpret_cast<uintptr_t>(p));
      if (it == state_->bufs.end()) {
        return Status(EINVAL,
                      "zfile_buf_free: this pointer is not a buffer zfile_buf_alloc returned "
                      "for this volume (or it was freed already)");
      }
      buf = std::move(it->second);
      state_->bufs.erase(it);
    }
    buf->freed.store(true);
    // Every connection a file or view may use is in the pool (broken ones
    // aside, whose sessions are gone and took their buffers along).
    std::vector<std::shared_ptr<Connection>> pool;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      pool = state_->pool;
    }
    for (const auto& conn : pool) {
      std::lock_guard<std::mutex> lock(conn->mu());
      conn->UnregisterBuf(buf->key);
    }
    // The memory goes when the last I/O still using it lets go of `buf`.
    return Status::Ok();
  }

  Status Chown(std::string_view path, uint32_t uid, uint32_t gid) override {
    proto::ChownRequest req;
    req.path = std::string(path);
    req.uid = uid;
    req.gid = gid;
    return VolumeCall<proto::ChownReply>(req).status();
  }

 private:
  // A connection and its lock, held for one request.
  struct Held {
    std::shared_ptr<Connection> conn;
    std::unique_lock<std::mutex> lock;
  };

  // With state_->mu held: forgets connections whose stream broke (the files
  // and views on them keep theirs, and fail), so that a restarted daemon
  // gets new sessions.
  void DropBroken() {
    auto& pool = state_->pool;
    pool.erase(std::remove_if(pool.begin(), pool.end(),
                              [](const std::shared_ptr<Connection>& c) { return c->broken(); }),
               pool.end());
  }

  Status CheckOpen() const {
    if (state_->closed) return Status(EBADF, "the volume is closed");
    return Status::Ok();
  }

  // Runs a request that is not about an open file. Every such request is
  // idempotent, so one whose session turns out to be dead (a daemon that
  // restarted since) is sent once more on a new session; only then does
  // the caller see the failure.
  template <typename R>
  Result<R> VolumeCall(const proto::Request& request) {
    for (int attempt = 0;; ++attempt) {
      ZF_ASSIGN_OR_RETURN(Held held, AnyConnection());
      Result<R> reply = CallOn<R>(*held.conn, request);
      if (reply.ok() || !held.conn->broken() || attempt > 0) return reply;
    }
  }

  // For a request that is not about an open file: an idle connection if
  // there is one, else a new one while the pool has room, else the next
  // in turn (waited for).
  Result<Held> AnyConnection() {
    std::shared_ptr<Connection> conn;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      ZF_RETURN_IF_ERROR(CheckOpen());
      DropBroken();
      for (const auto& c : state_->pool) {
        std::unique_lock<std::mutex> held(c->mu(), std::try_to_lock);
        if (held.owns_lock()) return Held{c, std::move(held)};
      }
      if (state_->pool.size() < kMaxClientConnections) {
        ZF_ASSIGN_OR_RETURN(conn, NewConnection(*state_));
        state_->pool.push_back(conn);
        return Held{conn, std::unique_lock<std::mutex>(conn->mu())};
      }
      conn = state_->pool[state_->next++ % state_->pool.size()];
    }
    // Waited for without the volume's lock, which Open() and the other
    // volume calls need meanwhile.
    return Held{conn, std::unique_lock<std::mutex>(conn->mu())};
  }

  // The connection a new file is pinned to: the least used one, or a new
  // one while every existing one has users and the pool has room. Counts
  // the file in (on the connection and the volume) before returning.
  Result<std::shared_ptr<Connection>> ConnectionForFile() {
    std::lock_guard<std::mutex> lock(state_->mu);
    ZF_RETURN_IF_ERROR(CheckOpen());
    DropBroken();
    std::shared_ptr<Connection> best;
    for (const auto& c : state_->pool) {
      if (best == nullptr || c->pins().load() < best->pins().load()) best = c;
    }
    if (best == nullptr ||
        (best->pins().load() > 0 && state_->pool.size() < kMaxClientConnections)) {
      ZF_ASSIGN_OR_RETURN(best, NewConnection(*state_));
      state_->pool.push_back(best);
    }
    best->pins().fetch_add(1);
    state_->files.fetch_add(1);
    return best;
  }

  const std::shared_ptr<ClientState> state_;
};

}  // namespace

ClientCopyCounters ClientCopyCountersNow() {
  return {zero_copy_bytes.load(std::memory_order_relaxed),
          copied_bytes.load(std::memory_order_relaxed),
          copied_early_bytes.load(std::memory_order_relaxed)};
}

uint64_t ClientRegisterBufRequestsNow() { return Connection::RegisterBufRequestsSent(); }

uint64_t ClientDoorbellCallsNow() { return doorbell_calls.load(std::memory_order_relaxed); }

Result<std::unique_ptr<VolBackend>> OpenClientVolume(std::string_view uri,
                                                     std::string_view options) {
  ZF_ASSIGN_OR_RETURN(ClientTarget target, ParseClientUri(uri));
  if (!options.empty()) {
    return Status(EINVAL, "'" + std::string(uri) + "': mount options '" + std::string(options) +
                              "' cannot be given to a client of zfiled: the daemon's "
                              "configuration owns them (pass NULL or \"\")");
  }
  auto state = std::make_shared<ClientState>();
  state->target = std::move(target);
  state->uri = std::string(uri);
  // The first session is opened now, so that a daemon that is not running
  // or does not know the volume is an error of zfile_vol_open itself.
  ZF_ASSIGN_OR_RETURN(std::shared_ptr<Connection> first, NewConnection(*state));
  state->pool.push_back(std::move(first));
  return std::unique_ptr<VolBackend>(std::make_unique<ClientVolume>(std::move(state)));
}

}  // namespace zfile
