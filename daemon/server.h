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
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "daemon/config.h"
#include "daemon/fuse_mount.h"
#include "engine/volume.h"
#include "protocol/spin_policy.h"
#include "protocol/unique_fd.h"

namespace zfile::daemon {

// Per-session bounds, so that one client cannot exhaust the daemon's
// descriptors, memory or cache pins, and one user cannot lock the others
// out. Tests set small values.
struct SessionBounds {
  uint32_t max_handles = 4096;  // open files (EMFILE beyond)
  uint32_t max_views = 1024;    // mapped views (ENOMEM beyond)
  // Connected clients; beyond it a new connection is closed at once, so
  // that clients which connect and idle cannot use up the threads.
  uint32_t max_sessions = 1024;
  // Connected clients of one uid (root's are not counted): beyond it the
  // uid's new connections are closed at once (logged at warn), so that one
  // user's idle connections cannot take every one of max_sessions.
  uint32_t max_sessions_per_uid = 64;
  // A client that has not completed HELLO this long after connecting is
  // dropped (0: never), so that an idle connection costs a slot only
  // briefly. Enforced by the session (SO_RCVTIMEO until HELLO).
  uint32_t hello_timeout_ms = 5000;
  // A client that does not read its replies for this long is dropped.
  uint32_t send_timeout_ms = 10000;
  // How long Stop waits for the sessions to end once their sockets are
  // shut down, and then for the FUSE mounts' requests; those still running
  // then are stuck (in the engine: a hung device) and are abandoned, see
  // Stop.
  uint32_t stop_timeout_ms = 10000;
  // A session on the shared-memory doorbell (protocol/doorbell.h) sleeps on
  // a futex, which the client's death does not wake: it looks at its
  // socket this long after its last request, then at intervals that double
  // while the client stays idle, up to kDoorbellIdleCheckMs (or this, if
  // longer). So an idle session wakes about once a second rather than 20
  // times, and a dead client's pins go within that long (a stopgap until
  // the session can block on the socket itself; review F4). At most
  // kMaxDoorbellCheckMs (larger values are cut to it).
  uint32_t doorbell_check_ms = 50;
  // The longest a doorbell session busy-waits for the next request before
  // it sleeps (0: never). Within it, protocol/spin_policy.h learns how long
  // the client takes to come back and spins only while that is short;
  // at most max(1, CPUs / 2) sessions spin at once (Server::TryStartSpin).
  // At most kMaxDoorbellSpinUs (larger values are cut to it).
  uint32_t doorbell_spin_us = protocol::SpinPolicy::kDefaultCapUs;

  // Registered buffers (REGISTER_BUF): each is one mapping of a client's
  // memfd in the daemon, of up to 1 GiB, for as long as the client keeps it
  // registered. Mappings (vm.max_map_count, 65530 by default) and address
  // space are the whole daemon's, and so are the shmem pages it faults in
  // when it reads into a sparse buffer, so they are budgeted per session,
  // per uid and in total; past a limit REGISTER_BUF answers ENOSPC, saying
  // which, and the client copies through its region instead. A session
  // also has at most protocol::kMaxRegisteredBufs (64) buffers.
  //
  // Bytes of one session's buffers: 4 GiB is 64 buffers of 64 MiB, or four
  // of the largest.
  uint64_t max_buf_bytes_per_session = uint64_t{4} << 30;
  // Mappings and bytes of one uid's buffers in all its sessions (root's are
  // not limited per uid, as its sessions are not, but count in the total).
  // A client process registers a buffer once per connection that uses it
  // (at most kMaxClientConnections = 4), so 256 is one process with 64
  // buffers busy on all four connections; 16 uids fill the total. 64 GiB
  // is what a uid's regions can already reach (max_sessions_per_uid 64 x
  // 1 GiB), so registered buffers at most double a user's cost to the
  // daemon.
  uint32_t max_buf_mappings_per_uid = 256;
  uint64_t max_buf_bytes_per_uid = uint64_t{64} << 30;
  // Mappings and bytes of all sessions' buffers. 4096 mappings are 1/16 of
  // the default vm.max_map_count, which leaves the rest to what the daemon
  // cannot do without: the sessions' regions and doorbells, the threads'
  // stacks (about four mappings per session with the region, doorbell and
  // stack guard, so 4096 at max_sessions), the engine's buffers and the
  // cache arena. 1 TiB is 1/128 of a 47-bit user address space. It is no
  // bound on memory: the pages the daemon faults in by reading into a
  // sparse buffer are charged to it, as for the regions; the bytes per
  // uid keep one user's share of that near what its regions allow.
  uint32_t max_buf_mappings = 4096;
  uint64_t max_buf_bytes = uint64_t{1} << 40;
};

// Caps of the doorbell knobs above, applied where they are used: a spin of
// seconds would burn a core per session for nothing, and a check interval
// of more than a minute would keep a dead client's pins that long (and
// beyond about 4.29 M ms would overflow the 32-bit microseconds).
inline constexpr uint32_t kMaxDoorbellSpinUs = protocol::SpinPolicy::kMaxCapUs;
inline constexpr uint32_t kMaxDoorbellCheckMs = 60000;
// The longest a doorbell session that has been idle a while goes without
// looking at its socket (unless doorbell_check_ms is longer).
inline constexpr uint32_t kDoorbellIdleCheckMs = 1000;

// A mounted volume as the server serves it.
struct ServedVolume {
  std::string name;
  std::unique_ptr<Volume> volume;
  // The cache arena reopened read-only: what the clients that ArenaFor
  // allows get at HELLO, so that they can map cache pages but never write
  // them (the arena's file is mode 0600 and size-sealed, so the descriptor
  // cannot be reopened writable by anyone else either). Invalid when the
  // cache has no arena descriptor (MAP then fails with EOPNOTSUPP).
  protocol::UniqueFd arena_ro;
  // The FUSE mount of a volume with a mount point (VolumeConfig::mount);
  // declared after `volume`, which it uses, so that it goes first.
  std::unique_ptr<FuseMount> fuse;
};

// What the peer is: SO_PEERCRED and SO_PEERGROUPS, the credentials of the
// process as they were when it connected.
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, gid included
};

class Session;
class Server;

// One registered buffer's share of the daemon-wide budgets (SessionBounds
// max_buf_*): one mapping and its bytes, counted for its session's uid and
// in total from Server::TakeBufBudget until the hold is reset or
// destroyed, whichever way the buffer goes (UNREGISTER_BUF, the session's
// end, the client killed). The server must outlive it: a Stop that
// abandons sessions leaks them with their holds, and zfiled then _exits
// rather than destroy the server under them.
class BufBudgetHold {
 public:
  BufBudgetHold() = default;
  ~BufBudgetHold() { Reset(); }
  BufBudgetHold(BufBudgetHold&& other) noexcept
      : server_(std::exchange(other.server_, nullptr)), uid_(other.uid_), bytes_(other.bytes_) {}
  BufBudgetHold& operator=(BufBudgetHold&& other) noexcept {
    if (this != &other) {
      Reset();
      server_ = std::exchange(other.server_, nullptr);
      uid_ = other.uid_;
      bytes_ = other.bytes_;
    }
    return *this;
  }
  BufBudgetHold(const BufBudgetHold&) = delete;
  BufBudgetHold& operator=(const BufBudgetHold&) = delete;

  // Gives the share back (nothing if none is held).
  void Reset();

 private:
  friend class Server;
  BufBudgetHold(Server* server, uid_t uid, uint64_t bytes)
      : server_(server), uid_(uid), bytes_(bytes) {}

  Server* server_ = nullptr;
  uid_t uid_ = 0;
  uint64_t bytes_ = 0;
};

// What registered buffers hold of a budget.
struct BufUsage {
  uint64_t mappings = 0;
  uint64_t bytes = 0;
};

class Server {
 public:
  // Mounts every volume of `config`, listens on its socket, and mounts
  // each volume that has a mount point there with FUSE. Fails, with
  // everything mounted so far unmounted again, if a device does not mount,
  // the socket's directory is missing, or another daemon already listens
  // on the socket (EADDRINUSE).
  static Result<std::unique_ptr<Server>> Start(const DaemonConfig& config,
                                               SessionBounds bounds = {});

  // Stops (see Stop) if not done yet.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Shuts down in the order that keeps data and new clients safe:
  //  1. stops accepting: the listening socket is closed and its file
  //     removed, so that a client connecting now fails at once
  //     (ENOENT/ECONNREFUSED) instead of hanging in the backlog;
  //  2. writes back every volume's dirty data (Sync) while sessions may
  //     still be running, so that a stuck session cannot lose it;
  //  3. ends the sessions: each answers the request it is serving (reads
  //     are shut down), then, after a short grace, the sockets are shut
  //     down both ways so that a session blocked sending to a client that
  //     does not read gives up; sessions are joined for up to
  //     bounds.stop_timeout_ms;
  //  4. unmounts the FUSE mounts (lazily: the names go at once, programs
  //     with files open get ENOTCONN) and closes the files they had open,
  //     waiting for the requests they serve until bounds.stop_timeout_ms
  //     has passed since step 3 began (one timeout for the sessions and
  //     every mount; a mount reached after it still gets a quarter of it,
  //     at most 1 s: FuseMount::Stop);
  //  5. unmounts the volumes (writing back what was dirtied since 2, and
  //     closing zones).
  // The first error is returned; the others are logged. If sessions are
  // still running at the deadline, they are logged and abandoned (their
  // threads detached, and they and every volume deliberately leaked, since
  // they may be inside the engine); if a mount's FUSE requests are, that
  // mount and its own volume are (the other volumes are unmounted). Either
  // way EBUSY is returned: the caller must then end the process without
  // running destructors (_exit); see abandoned_sessions().
  Status Stop();
  // Whether Stop abandoned sessions or FUSE requests that did not end in
  // time.
  bool abandoned_sessions() const { return abandoned_; }

  // The cache arena descriptor that the session of `peer` on `vol` gets at
  // HELLO, or why it gets none (MAP then fails with that error):
  //  - EOPNOTSUPP when the volume's cache has no shareable descriptor;
  //  - EACCES unless the peer is root or the daemon's own effective uid:
  //    the arena holds the cached pages of every file of the volume,
  //    whatever their permissions, and a mapping of it cannot be narrowed
  //    to the files the peer may read. Those peers can already read every
  //    file (root) or the daemon's memory (its own uid).
  // The same answer for the same (vol, peer) for the server's life.
  Result<const protocol::UniqueFd*> ArenaFor(const ServedVolume& vol, const PeerCred& peer) const;

  // One more registered buffer of `bytes` for a session of `uid` whose
  // buffers are `session` already: its hold, or ENOSPC saying in words
  // which limit it would pass (the session's bytes, its uid's mappings or
  // bytes, the daemon's), and nothing is taken. Any thread.
  Result<BufBudgetHold> TakeBufBudget(uid_t uid, uint64_t bytes, BufUsage session);

  const SessionBounds& bounds() const { return bounds_; }
  size_t clients() const;
  size_t volumes() const { return volumes_.size(); }
  const std::string& socket_path() const { return socket_path_; }

 private:
  Server(SessionBounds bounds);
  Status Listen(const SocketConfig& socket);
  void AcceptLoop();
  // Called by a session's thread as it ends: wakes AcceptLoop to reap it.
  void SessionEnded();
  // Whether a session may busy-wait for its client now; if so it calls
  // EndSpin when it stops. Spinners are capped so that many busy sessions
  // cannot take every CPU from the engine's and each other's work.
  bool TryStartSpin();
  void EndSpin();
  // Joins the threads of sessions that have ended.
  void ReapLocked(bool all);

  ServedVolume* FindVolume(const std::string& name);
  friend class Session;
  friend class BufBudgetHold;
  void GiveBackBufBudget(uid_t uid, uint64_t bytes);

  const SessionBounds bounds_;
  const uid_t euid_;  // the daemon's; its peers may map the cache arena
  std::vector<std::unique_ptr<ServedVolume>> volumes_;
  std::string socket_path_;
  protocol::UniqueFd listen_fd_;
  protocol::UniqueFd wake_fd_;  // eventfd: stop, or a session to reap
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  const int max_spinners_;
  std::atomic<int> spinners_{0};
  bool stopped_ = false;
  bool abandoned_ = false;  // see Stop

  // Registered buffers' budgets (TakeBufBudget). A mutex of their own:
  // holds are given back by sessions' threads as they end, and by the
  // reaping under mu_. Declared before the sessions, which hold budget,
  // so that they outlive them.
  std::mutex buf_mu_;
  BufUsage buf_total_;                    // guarded by buf_mu_
  std::map<uid_t, BufUsage> buf_by_uid_;  // guarded by buf_mu_; no zero entries
  // When each uid's refusal past a per-uid or total limit was last logged
  // (guarded by buf_mu_); an entry per uid ever refused, as few as uids.
  static constexpr std::chrono::seconds kBufRefusalLogPeriod{10};
  std::map<uid_t, std::chrono::steady_clock::time_point> buf_refusal_logged_;

  struct Running {
    std::unique_ptr<Session> session;
    std::thread thread;
    // The session's socket, owned by the session and open until it is
    // destroyed (so usable while this entry exists): Stop shuts it down.
    int sock = -1;
    uid_t uid = 0;
    pid_t pid = 0;
  };
  mutable std::mutex mu_;
  std::list<Running> sessions_;  // guarded by mu_
  uint64_t next_session_id_ = 1;
};

// Whether `peer` may access a file of `mode` owned by uid:gid for `want`
// (a mask of 4 = read, 2 = write), as the kernel's generic_permission
// decides it: root may do anything, otherwise the owner's bits apply to
// the owner, the group's bits to members, the others' bits to the rest.
bool MayAccess(const PeerCred& peer, uint32_t mode, uint32_t uid, uint32_t gid, uint32_t want);

// SO_PEERCRED of a connected Unix socket, plus the peer's own supplementary
// groups (SO_PEERGROUPS), as the kernel would use them for the peer's own
// accesses; never the group database's idea of its uid, which a process
// can have dropped groups from (setgroups) or added to (newgrp).
Result<PeerCred> PeerCredOf(int sock);

}  // namespace zfile::daemon

#endif  // ZFILE_DAEMON_SERVER_H_
