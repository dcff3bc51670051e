#include "daemon/session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "protocol/framing.h"
#include "protocol/shm_region.h"

namespace zfile::daemon {
namespace {

using protocol::Reply;
using protocol::Request;

// zfile_file_type values (zfile.h), which the wire carries as numbers; zone
// conditions travel as their kernel values (KernelCondition).
constexpr uint32_t kTypeCnv = 1, kTypeSeq = 2, kTypeDir = 3;

protocol::StatInfo ToWire(const FileStat& st) {
  protocol::StatInfo out;
  out.size = st.size;
  out.max_size = st.max_size;
  out.zone_start = st.zone_start;
  out.zone_len = st.zone_len;
  out.ino = st.ino;
  out.blocks = st.blocks;
  out.block_size = st.block_size;
  out.mode = st.mode;
  out.uid = st.uid;
  out.gid = st.gid;
  out.type = S_ISDIR(st.mode) ? kTypeDir : st.kind == FileKind::kSequential ? kTypeSeq : kTypeCnv;
  out.cond = KernelCondition(st.cond);
  return out;
}

protocol::VolumeInfo ToWire(const zfile::VolumeInfo& info) {
  protocol::VolumeInfo out;
  out.nr_cnv_files = info.nr_cnv_files;
  out.nr_seq_files = info.nr_seq_files;
  out.block_size = info.block_size;
  out.max_open = info.max_open;
  out.max_active = info.max_active;
  out.open_zones = info.open_zones;
  out.active_zones = info.active_zones;
  out.read_only = info.read_only;
  out.zone_size = info.zone_size;
  out.zone_capacity = info.zone_capacity;
  // The superblock bounds both; cut anyway so that a surprise cannot make
  // every HELLO fail to encode.
  out.label = info.label.substr(0, protocol::kMaxLabelLen);
  out.uuid = info.uuid.substr(0, protocol::kMaxUuidLen);
  return out;
}

// A failed reply of the same type as `reply`.
Reply ErrorLike(const Reply& reply, const Status& status) {
  return std::visit(
      [&](const auto& r) -> Reply {
        return protocol::ErrorReply<std::decay_t<decltype(r)>>(status);
      },
      reply);
}

template <typename R>
Reply Done(Status status) {
  if (!status.ok()) return protocol::ErrorReply<R>(status);
  return R{};
}

template <typename R>
Reply Count(const Result<size_t>& n) {
  if (!n.ok()) return protocol::ErrorReply<R>(n.status());
  R reply;
  reply.result = static_cast<int64_t>(*n);
  return reply;
}

Status NoHandle(uint64_t id) {
  return Status(EBADF, "no open file has handle " + std::to_string(id) + " in this session");
}

}  // namespace

Session::Session(Server* server, uint64_t id, protocol::UniqueFd sock, PeerCred peer)
    : server_(server), id_(id), sock_(std::move(sock)), peer_(std::move(peer)) {
  limits_.buf_sizes = buf_sizes_;
  spin_ = protocol::SpinPolicy(server_->bounds_.doorbell_spin_us);
  // A client that stops reading its replies must not hold this thread (and
  // its pins) forever: the send times out and the session is dropped.
  timeval tv{};
  tv.tv_sec = server_->bounds_.send_timeout_ms / 1000;
  tv.tv_usec = (server_->bounds_.send_timeout_ms % 1000) * 1000;
  if (setsockopt(sock_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
    Log().warn("session {}: SO_SNDTIMEO: {}", id_, ErrnoName(errno));
  }
  // Until HELLO, a client that sends nothing for hello_timeout_ms is
  // dropped (the read times out): idle connections must not hold slots.
  // Cleared once HELLO is done.
  const uint32_t hello_ms = server_->bounds_.hello_timeout_ms;
  timeval hello_tv{};
  hello_tv.tv_sec = hello_ms / 1000;
  hello_tv.tv_usec = (hello_ms % 1000) * 1000;
  if (setsockopt(sock_.get(), SOL_SOCKET, SO_RCVTIMEO, &hello_tv, sizeof(hello_tv)) != 0) {
    Log().warn("session {}: SO_RCVTIMEO: {}", id_, ErrnoName(errno));
  }
}

Session::~Session() {
  // Views first (they pin cache pages), then handles (ending explicit-open
  // writing), then the client's memory.
  views_.clear();
  handles_.clear();
  UnregisterAllBufs();
  shm_.Reset();
}

void Session::Interrupt() {
  shutdown(sock_.get(), SHUT_RD);
  interrupted_.store(true);
  // A session asleep on its doorbell would see the shutdown only at its next
  // look at the socket; wake it now. The mapping outlives this call (it is
  // unmapped by the destructor, after the thread is joined).
  if (uint32_t* word = bell_request_seq_.load()) protocol::FutexWake(word);
}

void Session::Run() {
  Log().debug("session {}: client pid {} uid {} gid {} connected", id_, peer_.pid, peer_.uid,
              peer_.gid);
  protocol::FrameReader reader(sock_.get());
  std::string why = "client closed the connection";
  while (true) {
    // The request: from the doorbell's slot (copied out into bell_buf_,
    // payload after the header) or a frame from the socket.
    protocol::FrameHeader header;
    std::span<const uint8_t> payload;
    std::vector<protocol::UniqueFd> fds;
    std::optional<protocol::Frame> frame;
    // Bytes the reader already holds (the client may send several frames
    // in one go) do not make the socket readable again, so the doorbell
    // wait would never look at them: read them first.
    const bool via_bell = bell_.mapped() && !reader.mid_frame() && WaitForBell() == Next::kBell;
    if (via_bell && replied_us_ != 0) {
      spin_.Record(gap_class_,
                   protocol::AnswerTookUs(
                       replied_us_, bell_.Word64(protocol::kDoorbellRequestPostedOffset).load(),
                       protocol::MonotonicMicros()));
    }
    replied_us_ = 0;
    if (via_bell) {
      Result<protocol::FrameHeader> taken = TakeBellRequest();
      if (!taken.ok()) {
        why = "dropped: " + taken.status().ToString();
        break;
      }
      header = *taken;
      payload = std::span<const uint8_t>(bell_buf_).subspan(protocol::kFrameHeaderSize,
                                                            header.payload_size);
      if (header.fd_count != 0) {
        Status twin = TakeSocketTwin(reader, header, &fds);
        if (!twin.ok()) {
          why = "dropped: " + twin.ToString();
          break;
        }
      }
    } else {
      Result<std::optional<protocol::Frame>> got = reader.Read();
      if (!got.ok()) {
        why = got.status().err() == EAGAIN && vol_ == nullptr
                  ? "dropped: no HELLO within " +
                        std::to_string(server_->bounds_.hello_timeout_ms) + " ms"
                  : "dropped: " + got.status().ToString();
        break;
      }
      if (!got->has_value()) break;
      frame = std::move(*got);
      header = frame->header;
      payload = frame->payload;
      fds = std::move(frame->fds);
    }
    Result<Request> request = protocol::DecodeRequest(header, payload, limits_);
    if (!request.ok()) {
      why = "dropped: " + request.status().ToString();
      break;
    }
    gap_class_ = protocol::SpinPolicy::ClassOf(protocol::DataBytes(*request));
    const bool hello = std::holds_alternative<protocol::HelloRequest>(*request);
    if (hello != (vol_ == nullptr)) {
      why = hello ? "dropped: a second HELLO" : "dropped: a request before HELLO";
      break;
    }
    const bool doorbell = std::holds_alternative<protocol::DoorbellRequest>(*request);
    if (doorbell && (via_bell || bell_.mapped() || session_version_ < 2)) {
      why = bell_.mapped() ? "dropped: a second DOORBELL"
                           : "dropped: DOORBELL in a session of protocol version " +
                                 std::to_string(session_version_);
      break;
    }
    const bool buf_request = std::holds_alternative<protocol::RegisterBufRequest>(*request) ||
                             std::holds_alternative<protocol::UnregisterBufRequest>(*request);
    if (buf_request && session_version_ < protocol::kRegisteredBufSessionVersion) {
      why = "dropped: " + header.Name() + " in a session of protocol version " +
            std::to_string(session_version_) + " (registered buffers need version " +
            std::to_string(protocol::kRegisteredBufSessionVersion) + ")";
      break;
    }
    serving_bell_ = via_bell;
    bool send_arena = false;
    bool drop = false;
    Reply reply;
    if (hello) {
      reply = Hello(std::get<protocol::HelloRequest>(*request), fds, &send_arena);
      // A refused HELLO ends the session once the client knows why.
      drop = protocol::ResultOf(reply).result < 0;
    } else if (doorbell) {
      reply = SetUpDoorbell(std::get<protocol::DoorbellRequest>(*request), fds);
    } else if (auto* reg = std::get_if<protocol::RegisterBufRequest>(&*request)) {
      reply = RegisterBuf(*reg, fds);
    } else {
      reply = Dispatch(*request);
    }
    Result<std::vector<uint8_t>> bytes = protocol::EncodeReply(header.request_id, reply);
    if (!bytes.ok()) {
      send_arena = false;
      bytes = protocol::EncodeReply(header.request_id, ErrorLike(reply, bytes.status()));
    }
    if (!bytes.ok()) {
      why = "dropped: cannot encode a reply: " + bytes.status().ToString();
      break;
    }
    if (via_bell) {
      RingReply(*bytes);
      continue;
    }
    std::vector<int> out_fds;
    if (send_arena) out_fds.push_back(vol_->arena_ro.get());
    Status sent = protocol::SendFrame(sock_.get(), *bytes, out_fds);
    if (!sent.ok()) {
      why = "dropped: sending a reply: " + sent.ToString();
      break;
    }
    if (drop) {
      why = "HELLO refused: " + protocol::ResultOf(reply).message;
      break;
    }
    if (hello) {
      // Past HELLO a client may idle as long as it likes.
      timeval none{};
      if (setsockopt(sock_.get(), SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none)) != 0) {
        why = "dropped: clearing SO_RCVTIMEO: " + ErrnoName(errno);
        break;
      }
    }
  }
  // A client that merely left is routine; one that was dropped is worth a
  // warning, since it is either broken or hostile.
  const size_t handles = handles_.size(), views = views_.size();
  if (why.rfind("dropped", 0) == 0) {
    Log().warn("session {} (pid {} uid {}): {}; closing {} files, {} views", id_, peer_.pid,
               peer_.uid, why, handles, views);
  } else {
    Log().debug("session {} (pid {}): {}; closing {} files, {} views", id_, peer_.pid, why, handles,
                views);
  }
  views_.clear();
  handles_.clear();
  UnregisterAllBufs();
  // The client sees the end at once; the descriptor itself is closed when
  // the server reaps the session (Interrupt may still use it until then).
  shutdown(sock_.get(), SHUT_RDWR);
  done_ = true;
  server_->SessionEnded();
}

Session::Next Session::WaitForBell() {
  std::atomic_ref<uint32_t> request_seq = bell_.Word(protocol::kDoorbellRequestSeqOffset);
  std::atomic_ref<uint32_t> waiting = bell_.Word(protocol::kDoorbellDaemonWaitingOffset);
  // Once interrupted (Stop), the socket path takes over whatever the client
  // does: it reads end of file there. interrupted_ is looked at before any
  // ring is taken, so a client that keeps ringing cannot keep the session
  // (and with it the daemon's shutdown) going.
  if (interrupted_.load()) return Next::kSocket;
  // Any change of request_seq is a ring: its value means nothing to us but
  // that (the client may store what it likes there and confuses only
  // itself).
  auto rung = [&] { return request_seq.load() != bell_seq_; };
  const uint64_t check_us =
      uint64_t{std::clamp<uint32_t>(server_->bounds_.doorbell_check_ms, 1, kMaxDoorbellCheckMs)} *
      1000;
  // The server's spinner cap is asked only when this wait would spin.
  auto arrived = [&] { return interrupted_.load() || rung(); };
  bool rang;
  if (spin_.BudgetUs(gap_class_) != 0 && server_->TryStartSpin()) {
    rang = spin_.Spin(gap_class_, arrived);
    server_->EndSpin();
  } else {
    rang = arrived();
  }
  if (rang) {
    if (interrupted_.load()) return Next::kSocket;
    bell_seq_ = request_seq.load();
    return Next::kBell;
  }
  // The socket is looked at on a deadline, however the sleeps end (a
  // client can wake us without ringing). Each look that finds nothing
  // doubles the interval up to the idle cap: every idle session waking 20
  // times a second cost a third of a core at 1000 sessions. The interval
  // starts over at every request, since WaitForBell is entered anew.
  const uint64_t idle_cap_us = std::max<uint64_t>(check_us, uint64_t{kDoorbellIdleCheckMs} * 1000);
  uint64_t interval_us = check_us;
  uint64_t next_check = protocol::MonotonicMicros() + interval_us;
  while (true) {
    // Announce the sleep, then look once more: a client that rang in
    // between either sees `waiting` and wakes us, or we see its ring here.
    waiting.store(1);
    const uint32_t seen = request_seq.load();
    if (seen != bell_seq_ && !interrupted_.load()) {
      waiting.store(0);
      bell_seq_ = seen;
      return Next::kBell;
    }
    const uint64_t now_us = protocol::MonotonicMicros();
    if (seen == bell_seq_ && !interrupted_.load() && now_us < next_check) {
      protocol::FutexWait(bell_.WordAddress(protocol::kDoorbellRequestSeqOffset), seen,
                          static_cast<uint32_t>(next_check - now_us));
    }
    waiting.store(0);
    if (interrupted_.load()) return Next::kSocket;
    const uint32_t now = request_seq.load();
    if (now != bell_seq_) {
      bell_seq_ = now;
      return Next::kBell;
    }
    if (protocol::MonotonicMicros() < next_check) continue;
    // Has the client gone (end of file), or sent a frame on the socket
    // after all? Either way the socket path reads it.
    // (Only when poll says so: a blocking read on an idle client's socket
    // would stop us hearing the doorbell.)
    pollfd pfd{sock_.get(), POLLIN | POLLRDHUP, 0};
    if (poll(&pfd, 1, 0) > 0) {
      // A REGISTER_BUF's client rings before it sends the frame's socket
      // twin (TakeSocketTwin), so a ring seen now comes first: the socket
      // path must not take the twin as a request of its own.
      const uint32_t latest = request_seq.load();
      if (latest != bell_seq_ && !interrupted_.load()) {
        bell_seq_ = latest;
        return Next::kBell;
      }
      return Next::kSocket;
    }
    interval_us = std::min(interval_us * 2, idle_cap_us);
    next_check = protocol::MonotonicMicros() + interval_us;
  }
}

Result<protocol::FrameHeader> Session::TakeBellRequest() {
  // The length is read once and bounded, and the frame copied out before
  // anything in it is looked at: the client may change the slot under us.
  const uint32_t len = bell_.Word(protocol::kDoorbellRequestLenOffset).load();
  if (len < protocol::kFrameHeaderSize || len > protocol::kMaxFrameSize) {
    return Status(EPROTO, "a doorbell request of " + std::to_string(len) + " bytes (a frame is " +
                              std::to_string(protocol::kFrameHeaderSize) + " to " +
                              std::to_string(protocol::kMaxFrameSize) + " bytes)");
  }
  bell_buf_.resize(len);
  std::memcpy(bell_buf_.data(), bell_.RequestSlot(), len);
  ZF_ASSIGN_OR_RETURN(protocol::FrameHeader header, protocol::DecodeFrameHeader(bell_buf_));
  if (header.reply) return Status(EPROTO, "a " + header.Name() + " in the doorbell's request slot");
  if (header.payload_size != len - protocol::kFrameHeaderSize) {
    return Status(EPROTO, "a doorbell " + header.Name() + " announces " +
                              std::to_string(header.payload_size) + " payload bytes in a " +
                              std::to_string(len) + "-byte frame");
  }
  const bool twin = header.type == protocol::MessageType::kRegisterBuf &&
                    session_version_ >= protocol::kRegisteredBufSessionVersion &&
                    header.fd_count == 1;
  if (header.fd_count != 0 && !twin) {
    return Status(EPROTO, "a doorbell " + header.Name() +
                              " claims descriptors, which only the socket can carry");
  }
  return header;
}

Status Session::TakeSocketTwin(protocol::FrameReader& reader, const protocol::FrameHeader& header,
                               std::vector<protocol::UniqueFd>* fds) {
  // The client sends the frame on the socket right after it rings, so this
  // read waits briefly on an honest client; a dishonest one holds only its
  // own session's thread, as one that stops mid-frame on the socket does.
  Result<std::optional<protocol::Frame>> got = reader.Read();
  if (!got.ok()) return got.status();
  if (!got->has_value()) {
    return Status(EPROTO, "the " + header.Name() +
                              " rung on the doorbell was not on the socket (end of file)");
  }
  protocol::Frame& frame = **got;
  const auto slot_payload =
      std::span<const uint8_t>(bell_buf_).subspan(protocol::kFrameHeaderSize, header.payload_size);
  if (frame.header.type != header.type || frame.header.request_id != header.request_id ||
      frame.header.reply || frame.header.fd_count != header.fd_count ||
      !std::equal(frame.payload.begin(), frame.payload.end(), slot_payload.begin(),
                  slot_payload.end())) {
    return Status(EPROTO, "the " + header.Name() + " rung on the doorbell (id " +
                              std::to_string(header.request_id) +
                              ") is not the frame on the socket (a " + frame.header.Name() +
                              ", id " + std::to_string(frame.header.request_id) + ")");
  }
  *fds = std::move(frame.fds);
  return Status::Ok();
}

void Session::RingReply(std::span<const uint8_t> frame) {
  // EncodeReply makes frames of at most kMaxFrameSize bytes, which fit.
  std::memcpy(bell_.ReplySlot(), frame.data(), frame.size());
  bell_.Word(protocol::kDoorbellReplyLenOffset).store(static_cast<uint32_t>(frame.size()));
  replied_us_ = protocol::MonotonicMicros();
  bell_.Word64(protocol::kDoorbellReplyPostedOffset).store(replied_us_);
  bell_.Word(protocol::kDoorbellReplySeqOffset).store(bell_seq_);
  if (bell_.Word(protocol::kDoorbellClientWaitingOffset).load() != 0) {
    protocol::FutexWake(bell_.WordAddress(protocol::kDoorbellReplySeqOffset));
  }
}

Reply Session::SetUpDoorbell(const protocol::DoorbellRequest& req,
                             std::vector<protocol::UniqueFd>& fds) {
  using R = protocol::DoorbellReply;
  // The decoder checked the size and that one descriptor came.
  Status ok = protocol::CheckShmRegion(fds.at(0).get(), req.size);
  if (!ok.ok()) return protocol::ErrorReply<R>(ok);
  Result<protocol::DoorbellMap> bell = protocol::DoorbellMap::Map(fds[0].get());
  if (!bell.ok()) return protocol::ErrorReply<R>(bell.status());
  bell_ = std::move(*bell);
  // Whatever the client left in the words: the next ring is any change.
  bell_seq_ = bell_.Word(protocol::kDoorbellRequestSeqOffset).load();
  bell_buf_.reserve(protocol::kMaxFrameSize);
  bell_request_seq_.store(bell_.WordAddress(protocol::kDoorbellRequestSeqOffset));
  Log().debug("session {}: requests move to the shared-memory doorbell", id_);
  return R{};
}

Reply Session::RegisterBuf(const protocol::RegisterBufRequest& req,
                           std::vector<protocol::UniqueFd>& fds) {
  using R = protocol::RegisterBufReply;
  // The decoder checked the size and that one descriptor came. Every
  // check comes before the mapping, which is what the limits protect.
  const auto free_slot = std::find(buf_sizes_.begin(), buf_sizes_.end(), uint64_t{0});
  if (free_slot == buf_sizes_.end()) {
    return protocol::ErrorReply<R>(
        Status(ENOSPC, "this session has " + std::to_string(protocol::kMaxRegisteredBufs) +
                           " buffers registered, the limit per session; unregister one first"));
  }
  protocol::ShmIdentity identity;
  Status ok = protocol::CheckShmRegion(fds.at(0).get(), req.size, &identity);
  if (!ok.ok()) return protocol::ErrorReply<R>(ok);
  // A memfd mapped twice would cost two mappings for one buffer: nothing a
  // client needs, and a way to fill the count with one memfd.
  BufUsage session;
  for (size_t i = 0; i < bufs_.size(); ++i) {
    if (buf_sizes_[i] == 0) continue;
    ++session.mappings;
    session.bytes += buf_sizes_[i];
    if (bufs_[i].identity == identity) {
      return protocol::ErrorReply<R>(
          Status(EEXIST, "this memfd is registered in this session already, as buffer " +
                             std::to_string(i + 1) + "; a memfd is registered once per session"));
    }
  }
  Result<BufBudgetHold> budget = server_->TakeBufBudget(peer_.uid, req.size, session);
  if (!budget.ok()) return protocol::ErrorReply<R>(budget.status());
  Result<protocol::ShmMapping> mapped = protocol::ShmMapping::Map(fds[0].get(), req.size);
  if (!mapped.ok()) return protocol::ErrorReply<R>(mapped.status());
  const size_t index = static_cast<size_t>(free_slot - buf_sizes_.begin());
  bufs_[index].budget = std::move(*budget);
  bufs_[index].map = std::move(*mapped);
  bufs_[index].identity = identity;
  buf_sizes_[index] = req.size;
  R reply;
  reply.buf_id = index + 1;
  return reply;
}

Reply Session::UnregisterBuf(uint64_t id) {
  // The decoder checked that the id is in 1..kMaxRegisteredBufs.
  const size_t index = id - 1;
  if (buf_sizes_[index] == 0) {
    return protocol::ErrorReply<protocol::UnregisterBufReply>(
        Status(EINVAL, "no buffer has id " + std::to_string(id) +
                           " in this session (never registered, or unregistered)"));
  }
  bufs_[index].Reset();
  buf_sizes_[index] = 0;
  return protocol::UnregisterBufReply{};
}

void Session::UnregisterAllBufs() {
  for (RegisteredBuf& buf : bufs_) buf.Reset();
  buf_sizes_.fill(0);
}

Reply Session::Hello(const protocol::HelloRequest& req, std::vector<protocol::UniqueFd>& fds,
                     bool* send_arena) {
  using R = protocol::HelloReply;
  ServedVolume* vol = server_->FindVolume(req.volume);
  if (vol == nullptr) {
    return protocol::ErrorReply<R>(
        Status(ENOENT, "zfiled serves no volume named '" + req.volume + "'"));
  }
  if (fds.size() != 1) return protocol::ErrorReply<R>(Status(EPROTO, "HELLO without its memfd"));
  Status shm_ok = protocol::CheckShmRegion(fds[0].get(), req.shm_size);
  if (!shm_ok.ok()) return protocol::ErrorReply<R>(shm_ok);
  Result<protocol::ShmMapping> shm = protocol::ShmMapping::Map(fds[0].get(), req.shm_size);
  if (!shm.ok()) {
    return protocol::ErrorReply<R>(ErrnoStatus(shm.status().err(), "mapping the client's memfd"));
  }
  shm_ = std::move(shm).value();
  vol_ = vol;

  R reply;
  reply.protocol_version =
      std::min<uint32_t>(req.protocol_version, protocol::kSessionProtocolVersion);
  session_version_ = reply.protocol_version;
  reply.shm_size = req.shm_size;
  limits_.shm_size = req.shm_size;
  // Only peers that may read every file get the arena (Server::ArenaFor);
  // the others' MAP fails with its reason.
  if (server_->ArenaFor(*vol, peer_).ok()) {
    reply.has_cache_fd = true;
    reply.cache_page_size = vol->volume->cache().options().page_size;
    reply.cache_arena_size = vol->volume->cache().arena_size();
    limits_.cache_page_size = reply.cache_page_size;
    limits_.cache_arena_size = reply.cache_arena_size;
    *send_arena = true;
  }
  reply.volume = ToWire(vol->volume->Info());
  Log().info("session {}: pid {} uid {} uses volume '{}'", id_, peer_.pid, peer_.uid, vol->name);
  return reply;
}

FileHandle* Session::HandleOf(uint64_t id) {
  auto it = handles_.find(id);
  return it == handles_.end() ? nullptr : it->second.get();
}

Status Session::CheckAccess(std::string_view path, uint32_t want) {
  ZF_ASSIGN_OR_RETURN(FileInode * inode, vol_->volume->Lookup(path));
  FileStat st;
  inode->Stat(&st);
  if (MayAccess(peer_, st.mode, st.uid, st.gid, want)) return Status();
  const char* what = want == 6 ? "reading and writing" : want == 2 ? "writing" : "reading";
  char mode[8];
  snprintf(mode, sizeof(mode), "%04o", st.mode & 07777);
  return Status(EACCES, std::string(path) + ": uid " + std::to_string(peer_.uid) +
                            " may not open it for " + what + " (mode " + mode + ", owner " +
                            std::to_string(st.uid) + ":" + std::to_string(st.gid) + ")");
}

Reply Session::Open(const protocol::OpenRequest& req) {
  using R = protocol::OpenReply;
  if (handles_.size() >= server_->bounds_.max_handles) {
    return protocol::ErrorReply<R>(Status(
        EMFILE, "this session has " + std::to_string(handles_.size()) + " files open, the limit"));
  }
  uint32_t want = 0;
  switch (req.flags & O_ACCMODE) {
    case O_RDONLY:
      want = 4;
      break;
    case O_WRONLY:
      want = 2;
      break;
    default:
      want = 6;
      break;
  }
  if ((req.flags & O_TRUNC) != 0) want |= 2;
  Status access = CheckAccess(req.path, want);
  if (!access.ok()) return protocol::ErrorReply<R>(access);
  Result<std::unique_ptr<FileHandle>> handle = vol_->volume->Open(req.path, req.flags);
  if (!handle.ok()) return protocol::ErrorReply<R>(handle.status());
  R reply;
  reply.handle = next_handle_++;
  handles_.emplace(reply.handle, std::move(*handle));
  return reply;
}

Reply Session::Map(const protocol::MapRequest& req) {
  using R = protocol::MapReply;
  FileHandle* handle = HandleOf(req.handle);
  if (handle == nullptr) return protocol::ErrorReply<R>(NoHandle(req.handle));
  if (Result<const protocol::UniqueFd*> arena = server_->ArenaFor(*vol_, peer_); !arena.ok()) {
    return protocol::ErrorReply<R>(arena.status());
  }
  if (views_.size() >= server_->bounds_.max_views) {
    return protocol::ErrorReply<R>(Status(
        ENOMEM, "this session has " + std::to_string(views_.size()) + " views mapped, the limit"));
  }
  Result<std::unique_ptr<FileView>> view = handle->Map(req.offset, req.length);
  if (!view.ok()) return protocol::ErrorReply<R>(view.status());
  std::vector<CacheView::Extent> extents = (*view)->extents();
  if (extents.size() > protocol::kMaxMapExtents || extents.empty()) {
    // Dropping the view here releases its pins at once.
    return protocol::ErrorReply<R>(
        Status(EMSGSIZE, "the view's pages lie in " + std::to_string(extents.size()) +
                             " runs of the cache, more than one reply can list (" +
                             std::to_string(protocol::kMaxMapExtents) + "); map less at a time"));
  }
  R reply;
  reply.view_id = next_view_++;
  reply.start = (*view)->start();
  reply.extents.reserve(extents.size());
  for (const CacheView::Extent& e : extents) reply.extents.push_back({e.arena_offset, e.length});
  views_.emplace(reply.view_id, std::move(*view));
  return reply;
}

Result<size_t> Session::PRead(FileHandle& h, const protocol::PreadRequest& req) {
  uint8_t* const dst = Shm(req.shm_offset);
  // Only a client polling the doorbell can use the progress (it is
  // published whether or not this one polls), and only one that has to
  // copy out of the region: a registered buffer is the caller's own,
  // filled in place. Buffered reads tell of it page by page; direct ones
  // piece by piece (ZonedDevice::ReadInPieces).
  if (!serving_bell_ || protocol::BufIdOf(req.shm_offset) != 0 ||
      req.length < protocol::kPipelinedReadMin) {
    return h.PRead(dst, req.length, req.offset, req.rwf);
  }
  struct Publisher {
    std::atomic_ref<uint64_t> word;
    uint32_t seq;
    uint64_t published;
  } pub{bell_.Word64(protocol::kDoorbellReplyProgressOffset), bell_seq_, 0};
  // Stored every kPipelinedReadPiece bytes or more (at the cache's page
  // ends): often enough for the client to keep up, seldom enough that the
  // stores cost nothing. One captured pointer: std::function keeps it
  // without allocating.
  const ReadProgress progress = [p = &pub](uint64_t bytes) {
    if (bytes - p->published < protocol::kPipelinedReadPiece) return;
    p->published = bytes;
    p->word.store(protocol::ReplyProgress(p->seq, static_cast<uint32_t>(bytes)));
  };
  return h.PRead(dst, req.length, req.offset, req.rwf, &progress);
}

Reply Session::Dispatch(Request& request) {
  Volume& vol = *vol_->volume;
  return std::visit(
      [&](auto& req) -> Reply {
        using T = std::decay_t<decltype(req)>;
        namespace p = protocol;
        if constexpr (std::is_same_v<T, p::HelloRequest>) {
          return p::ErrorReply<p::HelloReply>(Status(EPROTO, "a second HELLO"));
        } else if constexpr (std::is_same_v<T, p::VolInfoRequest>) {
          p::VolInfoReply reply;
          reply.volume = ToWire(vol.Info());
          return reply;
        } else if constexpr (std::is_same_v<T, p::VolStatsRequest>) {
          p::VolStatsReply reply;
          reply.json = vol.StatsJson();
          return reply;
        } else if constexpr (std::is_same_v<T, p::VolSyncRequest>) {
          return Done<p::VolSyncReply>(vol.Sync());
        } else if constexpr (std::is_same_v<T, p::OpenRequest>) {
          return Open(req);
        } else if constexpr (std::is_same_v<T, p::CloseRequest>) {
          if (handles_.erase(req.handle) == 0)
            return p::ErrorReply<p::CloseReply>(NoHandle(req.handle));
          return p::CloseReply{};
        } else if constexpr (std::is_same_v<T, p::PreadRequest>) {
          FileHandle* h = HandleOf(req.handle);
          if (h == nullptr) return p::ErrorReply<p::PreadReply>(NoHandle(req.handle));
          return Count<p::PreadReply>(PRead(*h, req));
        } else if constexpr (std::is_same_v<T, p::PwriteRequest>) {
          FileHandle* h = HandleOf(req.handle);
          if (h == nullptr) return p::ErrorReply<p::PwriteReply>(NoHandle(req.handle));
          return Count<p::PwriteReply>(
              h->PWrite(Shm(req.shm_offset), req.length, req.offset, req.rwf));
        } else if constexpr (std::is_same_v<T, p::AppendRequest>) {
          FileHandle* h = HandleOf(req.handle);
          if (h == nullptr) return p::ErrorReply<p::AppendReply>(NoHandle(req.handle));
          uint64_t landed = 0;
          Result<size_t> n = h->Append(Shm(req.shm_offset), req.length, &landed);
          if (!n.ok()) return p::ErrorReply<p::AppendReply>(n.status());
          p::AppendReply reply;
          reply.result = static_cast<int64_t>(*n);
          reply.offset = landed;
          return reply;
        } else if constexpr (std::is_same_v<T, p::FsyncRequest>) {
          FileHandle* h = HandleOf(req.handle);
          if (h == nullptr) return p::ErrorReply<p::FsyncReply>(NoHandle(req.handle));
          return Done<p::FsyncReply>(h->Fsync());
        } else if constexpr (std::is_same_v<T, p::FtruncateRequest>) {
          // Permission was checked at OPEN; the engine refuses a handle not
          // open for writing (EBADF), as ftruncate(2) does.
          FileHandle* h = HandleOf(req.handle);
          if (h == nullptr) return p::ErrorReply<p::FtruncateReply>(NoHandle(req.handle));
          return Done<p::FtruncateReply>(h->Truncate(req.size));
        } else if constexpr (std::is_same_v<T, p::FstatRequest>) {
          FileHandle* h = HandleOf(req.handle);
          if (h == nullptr) return p::ErrorReply<p::FstatReply>(NoHandle(req.handle));
          FileStat st;
          h->Stat(&st);
          p::FstatReply reply;
          reply.stat = ToWire(st);
          return reply;
        } else if constexpr (std::is_same_v<T, p::StatRequest>) {
          // stat(2) needs search permission on the directories only, and
          // zonefs's directories are 0555: anyone may stat.
          FileStat st;
          Status s = vol.StatPath(req.path, &st);
          if (!s.ok()) return p::ErrorReply<p::StatReply>(s);
          p::StatReply reply;
          reply.stat = ToWire(st);
          return reply;
        } else if constexpr (std::is_same_v<T, p::ChmodRequest>) {
          Result<FileInode*> inode = vol.Lookup(req.path);
          if (!inode.ok()) return p::ErrorReply<p::ChmodReply>(inode.status());
          FileStat st;
          (*inode)->Stat(&st);
          if (peer_.uid != 0 && peer_.uid != st.uid) {
            return p::ErrorReply<p::ChmodReply>(Status(EPERM, req.path + ": only its owner (uid " +
                                                                  std::to_string(st.uid) +
                                                                  ") or root may change its mode"));
          }
          return Done<p::ChmodReply>((*inode)->Chmod(req.mode));
        } else if constexpr (std::is_same_v<T, p::ChownRequest>) {
          Result<FileInode*> inode = vol.Lookup(req.path);
          if (!inode.ok()) return p::ErrorReply<p::ChownReply>(inode.status());
          FileStat st;
          (*inode)->Stat(&st);
          // As chown(2): only root gives a file away; the owner may change
          // its group to one of its own groups.
          const bool uid_same = req.uid == UINT32_MAX || req.uid == st.uid;
          const bool gid_ok =
              req.gid == UINT32_MAX || req.gid == st.gid ||
              std::find(peer_.groups.begin(), peer_.groups.end(), req.gid) != peer_.groups.end();
          if (peer_.uid != 0 && !(peer_.uid == st.uid && uid_same && gid_ok)) {
            return p::ErrorReply<p::ChownReply>(
                Status(EPERM, req.path + ": uid " + std::to_string(peer_.uid) +
                                  " may not change its owner or group to " +
                                  std::to_string(static_cast<int32_t>(req.uid)) + ":" +
                                  std::to_string(static_cast<int32_t>(req.gid)) +
                                  " (only root may give a file away)"));
          }
          return Done<p::ChownReply>((*inode)->Chown(req.uid, req.gid));
        } else if constexpr (std::is_same_v<T, p::MapRequest>) {
          return Map(req);
        } else if constexpr (std::is_same_v<T, p::DoorbellRequest>) {
          return p::ErrorReply<p::DoorbellReply>(Status(EPROTO, "DOORBELL is handled by Run"));
        } else if constexpr (std::is_same_v<T, p::RegisterBufRequest>) {
          return p::ErrorReply<p::RegisterBufReply>(
              Status(EPROTO, "REGISTER_BUF is handled by Run"));
        } else if constexpr (std::is_same_v<T, p::UnregisterBufRequest>) {
          return UnregisterBuf(req.buf_id);
        } else if constexpr (std::is_same_v<T, p::UnmapRequest>) {
          if (views_.erase(req.view_id) == 0) {
            return p::ErrorReply<p::UnmapReply>(Status(
                EINVAL, "no view has id " + std::to_string(req.view_id) + " in this session"));
          }
          return p::UnmapReply{};
        }
      },
      request);
}

}  // namespace zfile::daemon
