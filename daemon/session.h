// One client connection of zfiled: HELLO, then requests dispatched to the
// engine, one at a time, until the client leaves or is dropped.
//
// The session owns what the client opened: a table of file handles and one
// of mapped views, keyed by ids that are never reused (a stale id from a
// confused client then names nothing rather than someone else's file), and
// the mapping of the client's shared-memory region. Destroying the session
// releases them all, which is how a client that dies gives back its pins.
//
// Requests arrive as frames on the socket or, once the client has moved the
// session to the shared-memory doorbell (DOORBELL, protocol/doorbell.h), in
// the doorbell's request slot; either way they are decoded and served by
// the same code, one at a time, and answered on the path they came by.
#ifndef ZFILE_DAEMON_SESSION_H_
#define ZFILE_DAEMON_SESSION_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "daemon/server.h"
#include "engine/volume.h"
#include "protocol/doorbell.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"
#include "protocol/unique_fd.h"

namespace zfile::daemon {

class Session {
 public:
  Session(Server* server, uint64_t id, protocol::UniqueFd sock, PeerCred peer);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Serves the connection until it ends. Runs on the session's thread.
  void Run();

  // Makes Run return after the request in progress (if any) is answered:
  // the next read sees end of file, and a session on the doorbell takes no
  // more rings (it is woken to look). Server::Stop calls it, more than once
  // if the session lingers, since the futex wake can be lost. Any thread.
  void Interrupt();

  bool done() const { return done_.load(); }

 private:
  // How the next request arrives.
  enum class Next {
    kBell,    // the doorbell rang: a request is in its slot
    kSocket,  // the socket is readable (a frame, end of file, an error)
  };
  // With the doorbell set up: waits until it rings or the socket becomes
  // readable (looked at every bounds().doorbell_check_ms, and when
  // Interrupt wakes the session).
  Next WaitForBell();
  // Copies the request frame out of the doorbell's slot into bell_buf_ and
  // checks its header; the header, the payload being the rest of the frame
  // in bell_buf_. EPROTO, in words, for a length out of bounds, a bad
  // header, or a frame that claims descriptors (but for REGISTER_BUF in a
  // version 3 session, whose frame with its descriptor is on the socket:
  // TakeSocketTwin).
  Result<protocol::FrameHeader> TakeBellRequest();
  // For a doorbell request whose descriptors travel on the socket: reads the
  // socket's next frame, which must be the same frame as the slot's
  // (`header`, payload in bell_buf_); its descriptors go to `fds`.
  Status TakeSocketTwin(protocol::FrameReader& reader, const protocol::FrameHeader& header,
                        std::vector<protocol::UniqueFd>* fds);
  // Puts `frame` (a reply) in the doorbell's reply slot and rings.
  void RingReply(std::span<const uint8_t> frame);
  // DOORBELL: maps the client's doorbell region. A failed reply leaves the
  // session on the socket.
  protocol::Reply SetUpDoorbell(const protocol::DoorbellRequest& req,
                                std::vector<protocol::UniqueFd>& fds);

  // Serves one decoded request (after HELLO); the reply to send.
  protocol::Reply Dispatch(protocol::Request& request);
  // Binds the session to its volume and maps the client's region; a failed
  // reply ends the session.
  protocol::Reply Hello(const protocol::HelloRequest& req, std::vector<protocol::UniqueFd>& fds,
                        bool* send_arena);
  protocol::Reply Open(const protocol::OpenRequest& req);
  protocol::Reply Map(const protocol::MapRequest& req);
  // REGISTER_BUF: checks and maps the client's memfd under the lowest free
  // id. Refusals are failed replies, in words, and the session goes on:
  // a bad memfd (EPROTO), one this session has registered already
  // (EEXIST), the session's kMaxRegisteredBufs in use or a budget of
  // SessionBounds spent (ENOSPC).
  protocol::Reply RegisterBuf(const protocol::RegisterBufRequest& req,
                              std::vector<protocol::UniqueFd>& fds);
  // UNREGISTER_BUF: unmaps buffer `id` and gives its budget back.
  protocol::Reply UnregisterBuf(uint64_t id);
  // Unmaps every registered buffer and gives the budget back (the
  // session's end, whichever way it ends).
  void UnregisterAllBufs();

  // PREAD into the region or a registered buffer. A large buffered read
  // into the region for a request rung on the doorbell publishes its
  // progress in reply_progress (doorbell.h) as the engine copies it, so
  // that the client copies it out while the rest is read. It is still one
  // read of the file (one hold of its lock, all or nothing for
  // RWF_NOWAIT); a direct read publishes nothing.
  Result<size_t> PRead(FileHandle& h, const protocol::PreadRequest& req);
  // The handle of `id`, or nullptr.
  FileHandle* HandleOf(uint64_t id);
  // Where a request's shm_offset points: the client's region, or the
  // registered buffer its top bits name (messages.h). The decoder checked
  // the range against the region's or the buffer's size.
  uint8_t* Shm(uint64_t shm_offset) {
    const uint64_t id = protocol::BufIdOf(shm_offset);
    if (id == 0) return shm_.data() + shm_offset;
    return bufs_[id - 1].map.data() + protocol::BufOffsetOf(shm_offset);
  }

  // Permission to `want` (4 read, 2 write) the file at `path`.
  Status CheckAccess(std::string_view path, uint32_t want);

  Server* const server_;
  const uint64_t id_;
  protocol::UniqueFd sock_;
  const PeerCred peer_;
  std::atomic<bool> done_{false};

  ServedVolume* vol_ = nullptr;  // after HELLO
  protocol::SessionLimits limits_;
  protocol::ShmMapping shm_;      // the client's region, from HELLO
  uint32_t session_version_ = 0;  // agreed at HELLO

  // A registered buffer: its mapping, which memfd it is (a memfd is
  // registered once per session), and its share of the server's budget,
  // given back only once it is unmapped (Reset, or the destructor: members
  // go in reverse order).
  struct RegisteredBuf {
    BufBudgetHold budget;
    protocol::ShmMapping map;
    protocol::ShmIdentity identity;
    void Reset() {
      map.Reset();
      budget.Reset();
      identity = {};
    }
  };
  // Registered buffers by id - 1, and their sizes for the decoder
  // (limits_.buf_sizes points at buf_sizes_; 0 for a free id). Ids are
  // reused, lowest first: only this session's client names them, and a
  // stale id confuses only that client.
  std::array<RegisteredBuf, protocol::kMaxRegisteredBufs> bufs_;
  std::array<uint64_t, protocol::kMaxRegisteredBufs> buf_sizes_{};

  // The doorbell, once DOORBELL set it up (mapped until the session is
  // destroyed, so that Interrupt may wake it at any time).
  protocol::DoorbellMap bell_;
  std::atomic<uint32_t*> bell_request_seq_{nullptr};  // for Interrupt
  std::atomic<bool> interrupted_{false};
  uint32_t bell_seq_ = 0;          // the request_seq last served
  bool serving_bell_ = false;      // the request in hand came by the doorbell
  std::vector<uint8_t> bell_buf_;  // the request, copied out of the slot
  // How long to spin for the next ring: learned per size of the request
  // last answered (what the client does next, copying its data out, takes
  // time by that size), from when the reply was rung (replied_us_, 0 when
  // it went on the socket).
  protocol::SpinPolicy spin_;
  unsigned gap_class_ = 0;
  uint64_t replied_us_ = 0;

  // Views are declared after handles so that they are released first (a
  // view may outlive its handle, but not the volume; order is for tidiness).
  std::map<uint64_t, std::unique_ptr<FileHandle>> handles_;
  std::map<uint64_t, std::unique_ptr<FileView>> views_;
  uint64_t next_handle_ = 1;
  uint64_t next_view_ = 1;
};

}  // namespace zfile::daemon

#endif  // ZFILE_DAEMON_SESSION_H_
