// One client connection of zfiled: HELLO, then requests dispatched to the
// engine, one at a time, until the client leaves or is dropped.
//
// The session owns what the client opened: a table of file handles and one
// of mapped views, keyed by ids that are never reused (a stale id from a
// confused client then names nothing rather than someone else's file), and
// the mapping of the client's shared-memory region. Destroying the session
// releases them all, which is how a client that dies gives back its pins.
#ifndef ZFILE_DAEMON_SESSION_H_
#define ZFILE_DAEMON_SESSION_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "daemon/server.h"
#include "engine/volume.h"
#include "protocol/messages.h"
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
  // the next read sees end of file. Any thread.
  void Interrupt();

  bool done() const { return done_.load(); }

 private:
  // Serves one decoded request (after HELLO); the reply to send.
  protocol::Reply Dispatch(protocol::Request& request);
  // Binds the session to its volume and maps the client's region; a failed
  // reply ends the session.
  protocol::Reply Hello(const protocol::HelloRequest& req, std::vector<protocol::UniqueFd>& fds,
                        bool* send_arena);
  protocol::Reply Open(const protocol::OpenRequest& req);
  protocol::Reply Map(const protocol::MapRequest& req);

  // The handle of `id`, or nullptr.
  FileHandle* HandleOf(uint64_t id);
  // The client's region at `offset` (the decoder checked the range).
  uint8_t* Shm(uint64_t offset) { return shm_ + offset; }

  // Permission to `want` (4 read, 2 write) the file at `path`.
  Status CheckAccess(std::string_view path, uint32_t want);

  Server* const server_;
  const uint64_t id_;
  protocol::UniqueFd sock_;
  const PeerCred peer_;
  std::atomic<bool> done_{false};

  ServedVolume* vol_ = nullptr;  // after HELLO
  protocol::SessionLimits limits_;
  uint8_t* shm_ = nullptr;
  size_t shm_size_ = 0;

  // Views are declared after handles so that they are released first (a
  // view may outlive its handle, but not the volume; order is for tidiness).
  std::map<uint64_t, std::unique_ptr<FileHandle>> handles_;
  std::map<uint64_t, std::unique_ptr<FileView>> views_;
  uint64_t next_handle_ = 1;
  uint64_t next_view_ = 1;
};

}  // namespace zfile::daemon

#endif  // ZFILE_DAEMON_SESSION_H_
