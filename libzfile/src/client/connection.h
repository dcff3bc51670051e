// One session with zfiled: a Unix stream socket, the shared-memory region
// passed at HELLO (bulk data), and the daemon's cache arena received in the
// HELLO reply (mapped views).
//
// A Connection carries one request at a time: the caller holds mu() across
// filling the region, Call(), and reading the region back, so that no other
// request can reuse the region in between. The daemon keeps open files and
// views per session, so whatever a connection opened must be used, closed
// and unmapped through that same connection.
//
// When the daemon speaks session version 2, the connection moves its
// requests to a shared-memory doorbell (protocol/doorbell.h) right after
// HELLO: a request is written to the doorbell's slot and a futex is rung
// instead of a frame being sent, which saves the socket's wake-ups (about
// half the round trip). The socket stays for HELLO and DOORBELL, which
// carry descriptors, and tells that the daemon has gone: a client waiting
// on the doorbell looks at it every kDaemonCheckMs. Environment, read when a
// connection opens: ZFILE_DOORBELL=0 keeps requests on the socket;
// ZFILE_DOORBELL_SPIN_US=N caps how long a reply is busy-waited for before
// the client sleeps (protocol/spin_policy.h learns how long, per request
// size; default 1000, at most 1000; 0 never spins).
//
// When the daemon speaks session version 3 (and ZFILE_REGBUF is not 0), the
// connection can register the volume's registered buffers (client_backend.h)
// with its session, lazily, so that I/O on them names them instead of the
// region (no copy). REGISTER_BUF carries a descriptor: on the doorbell it
// rings with the frame in the slot and sends the same frame with the
// descriptor on the socket (the daemon reads it there).
//
// A connection belongs to the process that opened it. In a child forked
// since, every Call() fails with ECONNRESET saying so, and the parent's
// session is left alone: the child would share the parent's socket, region
// and doorbell, and its requests would be lost or mixed with the parent's.
//
// Once the stream breaks (the daemon closed it, a send or receive failed,
// or the daemon sent something the decoder refused) the connection is dead
// for good: every later Call() fails with ECONNRESET saying "zfiled went
// away" and why.
#ifndef ZFILE_CLIENT_CONNECTION_H_
#define ZFILE_CLIENT_CONNECTION_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"
#include "client/client_uri.h"
#include "protocol/doorbell.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"
#include "protocol/spin_policy.h"
#include "protocol/unique_fd.h"

namespace zfile {

class Connection {
 public:
  // Connects to target.socket_path and opens a session on target.volume
  // with a region of `shm_size` bytes. A daemon that is not there gives
  // ENOENT or ECONNREFUSED (EACCES for a socket the user may not use) with
  // the socket path in the message; the daemon's refusal of the HELLO (an
  // unknown volume, ...) comes back as it sent it.
  static Result<std::unique_ptr<Connection>> Open(const ClientTarget& target, uint64_t shm_size);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  std::mutex& mu() { return mu_; }

  // Where the bytes of a PREAD into the region go while its reply is
  // awaited: a doorbell client that polls copies each piece the daemon
  // reports in reply_progress (doorbell.h) to `out`, at most `length`
  // bytes; the first `copied` bytes of the region are there. The caller
  // copies the rest once the reply says how many were read.
  struct ReadSink {
    uint8_t* out = nullptr;
    uint64_t length = 0;
    uint64_t copied = 0;
  };

  // With mu() held: sends `request` and waits for its reply, of type R (the
  // reply type of the request). The reply's own failure is its errno and
  // message; a broken stream is ECONNRESET/EPIPE ("zfiled went away").
  // `sink`, for a PREAD into the region, takes its bytes early.
  template <typename R>
  Result<R> Call(const protocol::Request& request, ReadSink* sink = nullptr) {
    ZF_ASSIGN_OR_RETURN(protocol::Reply reply, RoundTrip(request, {}, nullptr, sink));
    // RoundTrip checked that the reply's type is the request's.
    R* typed = std::get_if<R>(&reply);
    if (typed == nullptr) return Break(Status(EPROTO, "zfiled answered with another reply type"));
    ZF_RETURN_IF_ERROR(protocol::StatusOf(*typed));
    return std::move(*typed);
  }

  // The region, shm_size() bytes, read and written with mu() held.
  uint8_t* shm() const { return shm_.data(); }
  uint64_t shm_size() const { return shm_.size(); }

  // The daemon's cache arena (-1 when it passed none: views then fail) and
  // its page size.
  int arena_fd() const { return arena_.get(); }
  uint32_t cache_page_size() const { return limits_.cache_page_size; }

  // The volume as the HELLO reply described it.
  const protocol::VolumeInfo& hello_volume() const { return hello_volume_; }

  // Whether requests go through the doorbell, and how many have (readable
  // without mu()).
  bool on_doorbell() const { return bell_.mapped(); }
  uint64_t doorbell_calls() const { return doorbell_calls_.load(std::memory_order_relaxed); }

  // Whether the session can take registered buffers (version 3 agreed and
  // not turned off by ZFILE_REGBUF=0).
  bool can_register() const { return can_register_; }
  // With mu() held: the session's id for the buffer the volume knows as
  // `key` (never reused for another buffer), a memfd `fd` of `size` bytes,
  // registering it first if it is not yet. A refusal (the session's limit,
  // a connection that cannot register) is an error and changes nothing.
  // A buffer the daemon refused with ENOSPC (a budget of its, which only it
  // knows) is refused again here without asking, until this connection
  // unregisters a buffer or kRegisterRetryAfter has passed: otherwise
  // every call on it would cost one more round trip passing its fd.
  Result<uint64_t> RegisterBuf(uint64_t key, int fd, uint64_t size);
  // With mu() held: unregisters buffer `key` if this session has it.
  void UnregisterBuf(uint64_t key);
  static constexpr std::chrono::milliseconds kRegisterRetryAfter{1000};

  // REGISTER_BUF requests sent by every connection of this process, for
  // tests.
  static uint64_t RegisterBufRequestsSent();

  // How often a client waiting for a doorbell reply checks that the daemon
  // is still there.
  static constexpr uint32_t kDaemonCheckMs = 10;

  // Whether the stream has broken (readable without mu()).
  bool broken() const { return broken_flag_.load(std::memory_order_acquire); }

  // How many open files and views use this connection; the volume opens
  // new files on the least used one.
  std::atomic<int>& pins() { return pins_; }

  // With mu() held: marks the connection dead because of `why` (a reply
  // that makes no sense, ...) and returns `why` for the caller to report.
  Status Break(Status why);

 private:
  Connection(const ClientTarget& target, protocol::UniqueFd sock);

  Status Hello(uint64_t shm_size);
  // After a version 2 HELLO: sends DOORBELL with a new doorbell region and
  // moves to it if the daemon agrees (staying on the socket if it refuses).
  Status SetUpDoorbell();
  // In a child forked after the connection was made: marks the child's copy
  // broken (leaving the parent's session alone) and says why.
  Status ForkedAway();
  // RoundTrip's doorbell half: the request is already encoded in send_buf_.
  // `fds`, if any, go with the same frame on the socket once it has rung.
  // `data_bytes` (protocol::DataBytes) picks the spin class.
  Result<protocol::Reply> BellRoundTrip(uint64_t id, protocol::MessageType type,
                                        uint64_t data_bytes, std::span<const int> fds,
                                        ReadSink* sink);
  // Copies to `sink` what reply_progress says of request `seq` that it has
  // not copied yet, at most kPipelinedReadPiece bytes (it runs inside a
  // spin: SpinPolicy::Spin); whether it copied anything.
  bool CopyReady(uint32_t seq, ReadSink& sink);
  // Sends `request` with `fds`, reads the reply, and checks that it answers
  // the request (id and type). Descriptors that came with the reply go to
  // `fds_out` (dropped when it is null); `sink` is Call's.
  Result<protocol::Reply> RoundTrip(const protocol::Request& request, std::span<const int> fds,
                                    std::vector<protocol::UniqueFd>* fds_out,
                                    ReadSink* sink = nullptr);
  const ClientTarget target_;
  protocol::UniqueFd sock_;
  protocol::FrameReader reader_;
  std::mutex mu_;

  // Guarded by mu_.
  uint64_t next_request_id_ = 1;
  std::vector<uint8_t> send_buf_;  // every request is encoded here
  Status broken_;
  protocol::SessionLimits limits_;
  uint32_t bell_seq_ = 0;              // the last request_seq rung
  std::vector<uint8_t> recv_buf_;      // doorbell replies, copied out of the slot
  std::map<uint64_t, uint64_t> bufs_;  // registered buffers: key -> the session's id
  // Buffers the daemon refused with ENOSPC: key -> when (RegisterBuf).
  std::map<uint64_t, std::chrono::steady_clock::time_point> refused_;

  std::atomic<bool> broken_flag_{false};
  std::atomic<uint64_t> doorbell_calls_{0};
  std::atomic<int> pins_{0};

  // Set at HELLO, then read only.
  protocol::ShmMapping shm_;  // the bulk region
  protocol::UniqueFd arena_;
  protocol::VolumeInfo hello_volume_;
  protocol::DoorbellMap bell_;      // unmapped: requests go on the socket
  const pid_t owner_pid_;           // the process that opened it
  const uint64_t fork_generation_;  // ... and how many forks from libzfile's first
  bool want_doorbell_ = true;
  bool want_regbuf_ = true;
  bool can_register_ = false;
  protocol::SpinPolicy spin_;  // guarded by mu_
};

}  // namespace zfile

#endif  // ZFILE_CLIENT_CONNECTION_H_
