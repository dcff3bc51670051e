#include "client/connection.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "protocol/frame.h"
#include "protocol/shm_region.h"

namespace zfile {

namespace proto = zfile::protocol;

namespace {

// Connection::RegisterBufRequestsSent.
std::atomic<uint64_t> register_buf_requests{0};

// What to try when connect() fails, by errno: the bare strerror() of a
// missing socket does not tell a user that the daemon is not running.
std::string ConnectHint(int err) {
  switch (err) {
    case ENOENT:
      return " (no socket there: is zfiled running, and with this socket? Set ZFILED_SOCKET or "
             "use unix:PATH?volume=NAME to name another)";
    case ECONNREFUSED:
      return " (nothing is listening on it: zfiled is not running)";
    case EACCES:
    case EPERM:
      return " (the socket's mode or group does not let this user in)";
    default:
      return "";
  }
}

// How many fork()s this process is from the one that loaded libzfile: a
// connection made before a fork must not be used by the child (see
// RoundTrip). Counted by a pthread_atfork handler rather than compared with
// getpid() on every call, which is a system call.
std::atomic<uint64_t> fork_generation{0};

void CountFork() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

uint64_t ForkGeneration() {
  static const bool registered = pthread_atfork(nullptr, nullptr, CountFork) == 0;
  (void)registered;
  return fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

Connection::Connection(const ClientTarget& target, proto::UniqueFd sock)
    : target_(target),
      sock_(std::move(sock)),
      reader_(sock_.get()),
      owner_pid_(::getpid()),
      fork_generation_(ForkGeneration()) {
  // secure_getenv, as for ZFILED_SOCKET: a setuid program's caller must not
  // steer how it talks to the daemon.
  if (const char* env = secure_getenv("ZFILE_DOORBELL")) {
    want_doorbell_ = std::strcmp(env, "0") != 0;
  }
  if (const char* env = secure_getenv("ZFILE_REGBUF")) {
    want_regbuf_ = std::strcmp(env, "0") != 0;
  }
  if (const char* env = secure_getenv("ZFILE_DOORBELL_SPIN_US")) {
    spin_ = proto::SpinPolicy(static_cast<uint32_t>(
        std::min<unsigned long>(std::strtoul(env, nullptr, 10), proto::SpinPolicy::kMaxCapUs)));
  }
}

Connection::~Connection() = default;

Result<std::unique_ptr<Connection>> Connection::Open(const ClientTarget& target,
                                                     uint64_t shm_size) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (target.socket_path.size() >= sizeof(addr.sun_path)) {
    return Status(ENAMETOOLONG, "zfiled socket path '" + target.socket_path + "' is longer than " +
                                    std::to_string(sizeof(addr.sun_path) - 1) +
                                    " bytes, the most a Unix socket address holds");
  }
  std::memcpy(addr.sun_path, target.socket_path.data(), target.socket_path.size());
  proto::UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoStatus(errno, "creating a Unix socket");
  int rc;
  do {
    rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    return Status(err, "cannot connect to zfiled at " + target.socket_path + ": " +
                           std::strerror(err) + ConnectHint(err));
  }
  std::unique_ptr<Connection> conn(new Connection(target, std::move(sock)));
  {
    std::lock_guard<std::mutex> lock(conn->mu_);
    ZF_RETURN_IF_ERROR(conn->Hello(shm_size));
  }
  return conn;
}

Status Connection::Hello(uint64_t shm_size) {
  ZF_ASSIGN_OR_RETURN(proto::UniqueFd region, proto::CreateShmRegion(shm_size));
  Result<proto::ShmMapping> shm = proto::ShmMapping::Map(region.get(), shm_size);
  if (!shm.ok()) return ErrnoStatus(shm.status().err(), "mapping the shared-memory region");
  shm_ = std::move(shm).value();

  proto::HelloRequest hello;
  // The highest version whose additions this client will use: version 3
  // means registered buffers, 2 the doorbell.
  const uint32_t version = want_regbuf_     ? proto::kSessionProtocolVersion
                           : want_doorbell_ ? proto::kDoorbellSessionVersion
                                            : 1;
  hello.protocol_version = version;
  hello.volume = target_.volume;
  hello.shm_size = shm_size;
  const int fds[] = {region.get()};
  std::vector<proto::UniqueFd> received;
  ZF_ASSIGN_OR_RETURN(proto::Reply any, RoundTrip(hello, fds, &received));
  auto& reply = std::get<proto::HelloReply>(any);
  Status refused = proto::StatusOf(reply);
  if (!refused.ok()) {
    return Status(refused.err(), "zfiled at " + target_.socket_path + " refused volume '" +
                                     target_.volume + "': " + refused.message());
  }
  if (reply.protocol_version < 1 || reply.protocol_version > version) {
    return Break(Status(EPROTO, "zfiled chose protocol version " +
                                    std::to_string(reply.protocol_version) +
                                    ", which this client does not speak"));
  }
  if (reply.shm_size != shm_size) {
    return Break(Status(EPROTO, "zfiled accepted a shared-memory region of " +
                                    std::to_string(reply.shm_size) + " bytes instead of the " +
                                    std::to_string(shm_size) + " passed"));
  }
  if (reply.has_cache_fd) {
    // The decoder checks views against cache_arena_size; make sure the
    // descriptor really is that long, or a view could map past its end and
    // fault (SIGBUS) when read.
    struct stat st;
    if (received.size() != 1 || ::fstat(received[0].get(), &st) != 0 ||
        static_cast<uint64_t>(st.st_size) < reply.cache_arena_size) {
      return Break(
          Status(EPROTO, "zfiled's cache arena descriptor is missing or shorter than the " +
                             std::to_string(reply.cache_arena_size) + " bytes announced"));
    }
    arena_ = std::move(received[0]);
    limits_.cache_page_size = reply.cache_page_size;
    limits_.cache_arena_size = reply.cache_arena_size;
  }
  hello_volume_ = reply.volume;
  can_register_ = want_regbuf_ && reply.protocol_version >= proto::kRegisteredBufSessionVersion;
  if (want_doorbell_ && reply.protocol_version >= proto::kDoorbellSessionVersion) {
    return SetUpDoorbell();
  }
  return Status::Ok();
}

Status Connection::SetUpDoorbell() {
  // Without a doorbell (no memory for it, the daemon refuses it) requests
  // stay on the socket, which is only slower; only a broken connection
  // fails the HELLO.
  Result<proto::UniqueFd> region = proto::CreateShmRegion(proto::kDoorbellRegionSize);
  if (!region.ok()) return Status::Ok();
  Result<proto::DoorbellMap> bell = proto::DoorbellMap::Map(region->get());
  if (!bell.ok()) return Status::Ok();
  proto::DoorbellRequest req;
  req.size = proto::kDoorbellRegionSize;
  const int fds[] = {region->get()};
  ZF_ASSIGN_OR_RETURN(proto::Reply any, RoundTrip(req, fds, nullptr));
  if (proto::ResultOf(any).result < 0) return Status::Ok();
  recv_buf_.reserve(proto::kMaxFrameSize);
  bell_ = std::move(*bell);
  return Status::Ok();
}

Result<proto::Reply> Connection::RoundTrip(const proto::Request& request, std::span<const int> fds,
                                           std::vector<proto::UniqueFd>* fds_out, ReadSink* sink) {
  if (ForkGeneration() != fork_generation_) return ForkedAway();
  if (!broken_.ok()) return broken_;
  const uint64_t id = next_request_id_++;
  const proto::MessageType type = proto::TypeOf(request);
  // A request the codec refuses (a path too long, ...) is the caller's
  // error; nothing was sent, so the connection stays good.
  ZF_RETURN_IF_ERROR(proto::EncodeRequest(id, request, &send_buf_));
  // Descriptors cannot go through the doorbell; REGISTER_BUF's go with its
  // socket twin (connection.h). HELLO and DOORBELL come before the bell.
  if (bell_.mapped() && fds_out == nullptr &&
      (fds.empty() || type == proto::MessageType::kRegisterBuf)) {
    return BellRoundTrip(id, type, proto::DataBytes(request), fds, sink);
  }
  Status sent = proto::SendFrame(sock_.get(), send_buf_, fds);
  if (!sent.ok()) {
    return Break(Status(sent.err() == EPIPE ? EPIPE : ECONNRESET,
                        "zfiled went away (sending a " + std::string(proto::MessageTypeName(type)) +
                            " request failed: " + sent.message() + ")"));
  }
  auto got = reader_.Read();
  if (!got.ok()) {
    const int err = got.status().err() == EPROTO ? EPROTO : ECONNRESET;
    return Break(Status(err, "zfiled went away (waiting for the " +
                                 std::string(proto::MessageTypeName(type)) +
                                 " reply: " + got.status().message() + ")"));
  }
  if (!got->has_value()) {
    return Break(Status(ECONNRESET, "zfiled went away (it closed the connection before the " +
                                        std::string(proto::MessageTypeName(type)) + " reply)"));
  }
  proto::Frame& f = **got;
  if (!f.header.reply || f.header.request_id != id || f.header.type != type) {
    return Break(Status(EPROTO, "zfiled answered a " + std::string(proto::MessageTypeName(type)) +
                                    " request (id " + std::to_string(id) + ") with a " +
                                    f.header.Name() + " (id " +
                                    std::to_string(f.header.request_id) + ")"));
  }
  auto reply = proto::DecodeReply(f.header, f.payload, limits_);
  if (!reply.ok()) {
    return Break(
        Status(EPROTO, "zfiled sent a bad " + f.header.Name() + ": " + reply.status().message()));
  }
  if (fds_out != nullptr) *fds_out = std::move(f.fds);
  return std::move(reply).value();
}

Result<uint64_t> Connection::RegisterBuf(uint64_t key, int fd, uint64_t size) {
  if (auto it = bufs_.find(key); it != bufs_.end()) return it->second;
  if (!can_register_) {
    return Status(EOPNOTSUPP, "this session with zfiled does not take registered buffers");
  }
  if (bufs_.size() >= proto::kMaxRegisteredBufs) {
    return Status(ENOSPC, "this session has the most registered buffers it may have");
  }
  const auto now = std::chrono::steady_clock::now();
  if (auto it = refused_.find(key); it != refused_.end()) {
    if (now - it->second < kRegisterRetryAfter) {
      return Status(ENOSPC, "zfiled refused to register this buffer less than " +
                                std::to_string(kRegisterRetryAfter.count()) +
                                " ms ago, for want of budget");
    }
    refused_.erase(it);
  }
  proto::RegisterBufRequest req;
  req.size = size;
  const int fds[] = {fd};
  register_buf_requests.fetch_add(1, std::memory_order_relaxed);
  ZF_ASSIGN_OR_RETURN(proto::Reply any, RoundTrip(req, fds, nullptr));
  auto* reply = std::get_if<proto::RegisterBufReply>(&any);
  if (reply == nullptr) return Break(Status(EPROTO, "zfiled answered with another reply type"));
  Status registered = proto::StatusOf(*reply);
  // Only a budget is worth waiting for: other refusals (EEXIST, EPROTO)
  // are not expected of this client, and remembering them would hide a
  // change in the daemon.
  if (registered.err() == ENOSPC) refused_[key] = now;
  ZF_RETURN_IF_ERROR(registered);
  for (const auto& [other_key, id] : bufs_) {
    if (id == reply->buf_id) {
      return Break(
          Status(EPROTO, "zfiled gave buffer id " + std::to_string(id) + " twice in one session"));
    }
  }
  bufs_.emplace(key, reply->buf_id);
  return reply->buf_id;
}

void Connection::UnregisterBuf(uint64_t key) {
  // Keys are never reused: a refusal of this one will not be asked about.
  refused_.erase(key);
  auto it = bufs_.find(key);
  if (it == bufs_.end()) return;
  proto::UnregisterBufRequest req;
  req.buf_id = it->second;
  bufs_.erase(it);
  // The budget this gives back may be enough for buffers refused before.
  refused_.clear();
  // A broken session has lost its buffers along with everything else.
  if (broken_.ok()) (void)Call<proto::UnregisterBufReply>(req);
}

uint64_t Connection::RegisterBufRequestsSent() {
  return register_buf_requests.load(std::memory_order_relaxed);
}

bool Connection::CopyReady(uint32_t seq, ReadSink& sink) {
  const uint64_t progress = bell_.Word64(proto::kDoorbellReplyProgressOffset).load();
  if (progress >> 32 != seq) return false;
  // One piece a look at most: the spin takes a long look for a lost CPU.
  const uint64_t ready = std::min<uint64_t>(
      {progress & 0xffffffffu, sink.length, sink.copied + proto::kPipelinedReadPiece});
  if (ready <= sink.copied) return false;
  std::memcpy(sink.out + sink.copied, shm_.data() + sink.copied, ready - sink.copied);
  sink.copied = ready;
  return true;
}

Result<proto::Reply> Connection::BellRoundTrip(uint64_t id, proto::MessageType type,
                                               uint64_t data_bytes, std::span<const int> fds,
                                               ReadSink* sink) {
  auto name = [&] { return std::string(proto::MessageTypeName(type)); };
  // EncodeRequest makes frames of at most kMaxFrameSize bytes, which fit.
  std::memcpy(bell_.RequestSlot(), send_buf_.data(), send_buf_.size());
  bell_.Word(proto::kDoorbellRequestLenOffset).store(static_cast<uint32_t>(send_buf_.size()));
  const uint32_t seq = ++bell_seq_;
  std::atomic_ref<uint32_t> request_seq = bell_.Word(proto::kDoorbellRequestSeqOffset);
  std::atomic_ref<uint32_t> reply_seq = bell_.Word(proto::kDoorbellReplySeqOffset);
  std::atomic_ref<uint32_t> waiting = bell_.Word(proto::kDoorbellClientWaitingOffset);
  // The word may still hold an earlier read's progress, whose sequence
  // number this request's could match once the counter wraps: cleared
  // while the daemon has nothing in hand (it writes the word only while
  // it serves a request).
  if (sink != nullptr) bell_.Word64(proto::kDoorbellReplyProgressOffset).store(0);
  const uint64_t rang_us = proto::MonotonicMicros();
  bell_.Word64(proto::kDoorbellRequestPostedOffset).store(rang_us);
  request_seq.store(seq);
  // Only a sleeping session needs the system call (doorbell.h says why no
  // ring is lost).
  if (bell_.Word(proto::kDoorbellDaemonWaitingOffset).load() != 0) {
    proto::FutexWake(bell_.WordAddress(proto::kDoorbellRequestSeqOffset));
  }
  doorbell_calls_.fetch_add(1, std::memory_order_relaxed);
  if (!fds.empty()) {
    // After the ring, not before: the daemon, finding the socket readable,
    // looks for a ring first (Session::WaitForBell), so it never takes
    // this frame as a request of the socket's.
    Status sent = proto::SendFrame(sock_.get(), send_buf_, fds);
    if (!sent.ok()) {
      return Break(Status(sent.err() == EPIPE ? EPIPE : ECONNRESET,
                          "zfiled went away (sending a " + name() +
                              " request's descriptor failed: " + sent.message() + ")"));
    }
  }

  auto answered = [&] { return reply_seq.load() == seq; };
  auto answered_or_copy = [&] {
    using Look = proto::SpinPolicy::Look;
    if (answered()) return Look::kDone;
    return sink != nullptr && CopyReady(seq, *sink) ? Look::kWorked : Look::kNotYet;
  };
  const unsigned spin_class = proto::SpinPolicy::ClassOf(data_bytes);
  if (!spin_.Spin(spin_class, answered_or_copy)) {
    // The socket is peeked on a deadline, not after a sleep that timed out:
    // signals (a profiler's SIGPROF, interval timers) and stray wakes end
    // sleeps early, and a client that only peeked after a full timeout
    // would never notice a dead daemon while they keep coming.
    constexpr uint64_t kCheckUs = uint64_t{kDaemonCheckMs} * 1000;
    uint64_t next_check = proto::MonotonicMicros() + kCheckUs;
    while (true) {
      waiting.store(1);
      const uint32_t seen = reply_seq.load();
      if (seen == seq) break;
      const uint64_t now_us = proto::MonotonicMicros();
      if (now_us < next_check) {
        proto::FutexWait(bell_.WordAddress(proto::kDoorbellReplySeqOffset), seen,
                         static_cast<uint32_t>(next_check - now_us));
        if (answered()) break;
        if (proto::MonotonicMicros() < next_check) continue;
      }
      next_check = proto::MonotonicMicros() + kCheckUs;
      // The futex says nothing of a daemon that died: its socket does.
      char byte;
      const ssize_t n = ::recv(sock_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) {
        waiting.store(0);
        return Break(Status(ECONNRESET, "zfiled went away (it closed the connection while the " +
                                            name() + " request was in flight)"));
      }
      if (n > 0) {
        waiting.store(0);
        return Break(Status(EPROTO, "zfiled sent a frame on the socket while the " + name() +
                                        " request was on the doorbell"));
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        const int err = errno;
        waiting.store(0);
        return Break(Status(ECONNRESET, "zfiled went away (waiting for the " + name() +
                                            " reply: " + std::strerror(err) + ")"));
      }
    }
    waiting.store(0);
  }
  spin_.Record(spin_class,
               proto::AnswerTookUs(rang_us, bell_.Word64(proto::kDoorbellReplyPostedOffset).load(),
                                   proto::MonotonicMicros()));
  // Copy the reply out before looking at it, the length read once.
  const uint32_t len = bell_.Word(proto::kDoorbellReplyLenOffset).load();
  if (len < proto::kFrameHeaderSize || len > proto::kMaxFrameSize) {
    return Break(Status(EPROTO, "zfiled put a " + std::to_string(len) + "-byte " + name() +
                                    " reply on the doorbell"));
  }
  recv_buf_.resize(len);
  std::memcpy(recv_buf_.data(), bell_.ReplySlot(), len);
  auto header = proto::DecodeFrameHeader(recv_buf_);
  if (!header.ok()) {
    return Break(Status(EPROTO, "zfiled sent a bad " + name() +
                                    " reply on the doorbell: " + header.status().message()));
  }
  const proto::FrameHeader& h = *header;
  if (!h.reply || h.request_id != id || h.type != type ||
      h.payload_size != len - proto::kFrameHeaderSize || h.fd_count != 0) {
    return Break(Status(EPROTO, "zfiled answered a " + name() + " request (id " +
                                    std::to_string(id) + ") on the doorbell with a " + h.Name() +
                                    " (id " + std::to_string(h.request_id) + ", " +
                                    std::to_string(len) + " bytes)"));
  }
  auto reply = proto::DecodeReply(
      h, std::span<const uint8_t>(recv_buf_).subspan(proto::kFrameHeaderSize), limits_);
  if (!reply.ok()) {
    return Break(Status(EPROTO, "zfiled sent a bad " + h.Name() + ": " + reply.status().message()));
  }
  return std::move(reply).value();
}

Status Connection::ForkedAway() {
  // The child shares the parent's socket, region and doorbell: its
  // requests would overwrite the parent's in the doorbell's slot (one of
  // them never executed, yet both "answered") or interleave with them on
  // the socket. So the child's copy is broken for good, but without
  // Break's shutdown(), which would cut the parent's session too. The
  // volume then opens the child a session of its own for volume-wide
  // requests; files opened before the fork fail.
  broken_ = Status(ECONNRESET, "this connection to zfiled at " + target_.socket_path +
                                   " was opened by pid " + std::to_string(owner_pid_) + "; pid " +
                                   std::to_string(::getpid()) +
                                   " (a child forked since) cannot use it: open the volume "
                                   "again in the child");
  broken_flag_.store(true, std::memory_order_release);
  return broken_;
}

Status Connection::Break(Status why) {
  // The first failure is reported as it is; what comes later says that the
  // connection is gone and why, with the errno of a connection that is.
  broken_ = Status(ECONNRESET, "zfiled went away: the connection to " + target_.socket_path +
                                   " is broken (" + why.message() + ")");
  broken_flag_.store(true, std::memory_order_release);
  // Shut down rather than close: the descriptor number stays ours, so
  // nothing else in the process can get it while reader_ still names it.
  ::shutdown(sock_.get(), SHUT_RDWR);
  return why;
}

}  // namespace zfile
