// zfiled's server: the mounted volumes, the listening Unix socket, and one
// session (one thread) per connected client.
//
// A session speaks the protocol of libzfile/src/protocol (messages.h): HELLO
// first, then one request at a time, each answered before the next is read.
// Serving requests in order on the connection's own thread keeps a session's
// outstanding work bounded by construction (one request), and lets a slow or
// hostile client cost nothing but its own thread; the socket's buffer is
// what a flooding client fills, and then it simply blocks.
//
// Bulk data moves between the engine and the client's shared-memory region
// directly: the engine reads into, or writes from, the mapped region, so
// the daemon adds no copy of its own.
//
// Everything a session opened (file handles, mapped views, the region's
// mapping) belongs to the session and is released when it ends, however it
// ends: the client closes, dies, or is dropped for a protocol violation.
#ifndef ZFILE_DAEMON_SERVER_H_
#define ZFILE_DAEMON_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "daemon/config.h"
#include "engine/volume.h"
#include "protocol/unique_fd.h"

namespace zfile::daemon {

// Per-session bounds, so that one client cannot exhaust the daemon's
// descriptors, memory or cache pins.
struct SessionBounds {
  uint32_t max_handles = 4096;  // open files (EMFILE beyond)
  uint32_t max_views = 1024;    // mapped views (ENOMEM beyond)
  // Connected clients; beyond it a new connection is closed at once, so
  // that clients which connect and idle cannot use up the threads.
  uint32_t max_sessions = 1024;
  // A client that does not read its replies for this long is dropped.
  uint32_t send_timeout_ms = 10000;
};

// A mounted volume as the server serves it.
struct ServedVolume {
  std::string name;
  std::unique_ptr<Volume> volume;
  // The cache arena reopened read-only: what clients get at HELLO, so that
  // a client can map cache pages but never write them. Invalid when the
  // cache has no arena descriptor (MAP then fails with EOPNOTSUPP).
  protocol::UniqueFd arena_ro;
};

class Session;

class Server {
 public:
  // Mounts every volume of `config` and listens on its socket. Fails, with
  // everything mounted so far unmounted again, if a device does not mount,
  // the socket's directory is missing, or another daemon already listens
  // on the socket (EADDRINUSE).
  static Result<std::unique_ptr<Server>> Start(const DaemonConfig& config,
                                               SessionBounds bounds = {});

  // Stops (see Stop) if not done yet.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting, lets each session finish the request it is serving,
  // ends every session (closing its handles, releasing its views), then
  // unmounts the volumes (writing back dirty data, closing zones). The
  // first unmount error is returned; the others are logged.
  Status Stop();

  size_t clients() const;
  size_t volumes() const { return volumes_.size(); }
  const std::string& socket_path() const { return socket_path_; }

 private:
  Server(SessionBounds bounds);
  Status Listen(const SocketConfig& socket);
  void AcceptLoop();
  // Called by a session's thread as it ends: wakes AcceptLoop to reap it.
  void SessionEnded();
  // Joins the threads of sessions that have ended.
  void ReapLocked(bool all);

  ServedVolume* FindVolume(const std::string& name);
  friend class Session;

  const SessionBounds bounds_;
  std::vector<std::unique_ptr<ServedVolume>> volumes_;
  std::string socket_path_;
  protocol::UniqueFd listen_fd_;
  protocol::UniqueFd wake_fd_;  // eventfd: stop, or a session to reap
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;

  struct Running {
    std::unique_ptr<Session> session;
    std::thread thread;
  };
  mutable std::mutex mu_;
  std::list<Running> sessions_;  // guarded by mu_
  uint64_t next_session_id_ = 1;
};

// What the peer is, from SO_PEERCRED and the group database.
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, gid included
};

// Whether `peer` may access a file of `mode` owned by uid:gid for `want`
// (a mask of 4 = read, 2 = write), as the kernel's generic_permission
// decides it: root may do anything, otherwise the owner's bits apply to
// the owner, the group's bits to members, the others' bits to the rest.
bool MayAccess(const PeerCred& peer, uint32_t mode, uint32_t uid, uint32_t gid, uint32_t want);

// SO_PEERCRED of a connected Unix socket, plus the peer uid's groups.
Result<PeerCred> PeerCredOf(int sock);

}  // namespace zfile::daemon

#endif  // ZFILE_DAEMON_SERVER_H_
