#include "daemon/server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/log.h"
#include "daemon/session.h"
#include "device/zoned_device.h"

namespace zfile::daemon {
namespace {

using protocol::UniqueFd;

Result<gid_t> ResolveGroup(const std::string& group) {
  if (!group.empty() && std::all_of(group.begin(), group.end(), ::isdigit)) {
    return static_cast<gid_t>(std::stoul(group));
  }
  std::vector<char> buf(16384);
  struct group entry {};
  struct group* found = nullptr;
  int err;
  while ((err = getgrnam_r(group.c_str(), &entry, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1u << 20)) {
    buf.resize(buf.size() * 2);
  }
  if (err != 0) return ErrnoStatus(err, "looking up group '" + group + "'");
  if (found == nullptr) return Status(EINVAL, "socket group '" + group + "' does not exist");
  return found->gr_gid;
}

sockaddr_un AddressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  return addr;
}

}  // namespace

bool MayAccess(const PeerCred& peer, uint32_t mode, uint32_t uid, uint32_t gid, uint32_t want) {
  if (peer.uid == 0) return true;
  uint32_t bits;
  if (peer.uid == uid) {
    bits = (mode >> 6) & 7;
  } else if (peer.gid == gid ||
             std::find(peer.groups.begin(), peer.groups.end(), gid) != peer.groups.end()) {
    bits = (mode >> 3) & 7;
  } else {
    bits = mode & 7;
  }
  return (bits & want) == want;
}

Result<PeerCred> PeerCredOf(int sock) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoStatus(errno, "SO_PEERCRED");
  }
  PeerCred peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  peer.groups.push_back(cred.gid);
  // The peer's own supplementary groups, as they were at connect(): what
  // the kernel would check for its own accesses. ERANGE says how much room
  // they need (the list can change between calls, hence the loop).
  std::vector<gid_t> groups(64);
  while (true) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || glen / sizeof(gid_t) <= groups.size()) {
      return ErrnoStatus(errno, "SO_PEERGROUPS");
    }
    groups.resize(glen / sizeof(gid_t));
  }
  for (gid_t g : groups) {
    if (std::find(peer.groups.begin(), peer.groups.end(), g) == peer.groups.end()) {
      peer.groups.push_back(g);
    }
  }
  return peer;
}

Server::Server(SessionBounds bounds)
    : bounds_(bounds),
      euid_(geteuid()),
      max_spinners_(std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2))) {}

namespace {

// `n` bytes in words: in the largest binary unit that divides it.
std::string BytesInWords(uint64_t n) {
  constexpr std::pair<uint64_t, const char*> kUnits[] = {{uint64_t{1} << 40, "TiB"},
                                                         {uint64_t{1} << 30, "GiB"},
                                                         {uint64_t{1} << 20, "MiB"},
                                                         {uint64_t{1} << 10, "KiB"}};
  for (const auto& [unit, name] : kUnits) {
    if (n >= unit && n % unit == 0) return std::to_string(n / unit) + " " + name;
  }
  return std::to_string(n) + " bytes";
}

}  // namespace

void BufBudgetHold::Reset() {
  if (server_ != nullptr) std::exchange(server_, nullptr)->GiveBackBufBudget(uid_, bytes_);
}

Result<BufBudgetHold> Server::TakeBufBudget(uid_t uid, uint64_t bytes, BufUsage session) {
  // Which limit, in words: the buffers' count if that is what one more
  // would pass, their bytes otherwise; and what the client can do about
  // it, which differs: the session's own buffers are its client's to
  // unregister, the uid's and the daemon's may be other clients'.
  auto refuse = [&](const std::string& per, uint64_t max_bufs, uint64_t max_bytes,
                    const std::string& who, const BufUsage& now, const char* remedy) {
    const std::string limit = now.mappings + 1 > max_bufs
                                  ? std::to_string(max_bufs) + " registered buffers"
                                  : BytesInWords(max_bytes) + " of registered buffers";
    return Status(ENOSPC, "registering a buffer of " + BytesInWords(bytes) +
                              " would pass zfiled's limit of " + limit + " " + per + " (" + who +
                              " has " + std::to_string(now.mappings) +
                              (now.mappings == 1 ? " buffer" : " buffers") + " registered, " +
                              BytesInWords(now.bytes) + " in all); " + remedy);
  };
  // A refusal past the uid's or the daemon's limit is logged, for an
  // operator wondering why clients copy; at most once per uid per
  // kBufRefusalLogPeriod, as a client may meet it on every call.
  auto refuse_logged = [&](Status refusal) {
    const auto now = std::chrono::steady_clock::now();
    auto [last, first] = buf_refusal_logged_.try_emplace(uid, now);
    if (first || now - last->second >= kBufRefusalLogPeriod) {
      last->second = now;
      Log().warn("uid {}'s registered buffer refused (logged once per {} s per uid): {}", uid,
                 std::chrono::duration_cast<std::chrono::seconds>(kBufRefusalLogPeriod).count(),
                 refusal.message());
    }
    return refusal;
  };
  std::lock_guard<std::mutex> lock(buf_mu_);
  // The count per session is the session's own (kMaxRegisteredBufs).
  if (session.bytes + bytes > bounds_.max_buf_bytes_per_session) {
    return refuse("per session", UINT64_MAX, bounds_.max_buf_bytes_per_session, "this session",
                  session, "unregister one first");
  }
  constexpr const char* kOthers = "other sessions hold the rest; the client copies meanwhile";
  // Root is not limited per uid (as its sessions are not), only in total.
  auto it = buf_by_uid_.find(uid);
  const BufUsage of_uid = it == buf_by_uid_.end() ? BufUsage{} : it->second;
  if (uid != 0 && (of_uid.mappings + 1 > bounds_.max_buf_mappings_per_uid ||
                   of_uid.bytes + bytes > bounds_.max_buf_bytes_per_uid)) {
    return refuse_logged(refuse("per uid, in all of a uid's sessions",
                                bounds_.max_buf_mappings_per_uid, bounds_.max_buf_bytes_per_uid,
                                "uid " + std::to_string(uid), of_uid, kOthers));
  }
  if (buf_total_.mappings + 1 > bounds_.max_buf_mappings ||
      buf_total_.bytes + bytes > bounds_.max_buf_bytes) {
    return refuse_logged(refuse("in all sessions of all uids", bounds_.max_buf_mappings,
                                bounds_.max_buf_bytes, "zfiled", buf_total_, kOthers));
  }
  BufUsage& held = buf_by_uid_[uid];
  ++held.mappings;
  held.bytes += bytes;
  ++buf_total_.mappings;
  buf_total_.bytes += bytes;
  return BufBudgetHold(this, uid, bytes);
}

void Server::GiveBackBufBudget(uid_t uid, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(buf_mu_);
  auto it = buf_by_uid_.find(uid);
  // Every hold was counted for its uid and in total, so neither can be
  // short; if one is, a hold was given back twice or never taken: say so,
  // and keep the counts from wrapping, which would refuse every buffer
  // from then on.
  if (it == buf_by_uid_.end() || it->second.mappings == 0 || it->second.bytes < bytes ||
      buf_total_.mappings == 0 || buf_total_.bytes < bytes) {
    Log().error(
        "registered buffers' budget: giving back {} bytes of uid {} that it does not hold "
        "(uid {}: {} buffers, {} bytes; all: {} buffers, {} bytes); a bug, ignored",
        bytes, uid, uid, it == buf_by_uid_.end() ? 0 : it->second.mappings,
        it == buf_by_uid_.end() ? 0 : it->second.bytes, buf_total_.mappings, buf_total_.bytes);
  }
  if (it != buf_by_uid_.end()) {
    it->second.mappings -= std::min<uint64_t>(it->second.mappings, 1);
    it->second.bytes -= std::min(it->second.bytes, bytes);
    if (it->second.mappings == 0) buf_by_uid_.erase(it);
  }
  buf_total_.mappings -= std::min<uint64_t>(buf_total_.mappings, 1);
  buf_total_.bytes -= std::min(buf_total_.bytes, bytes);
}

Result<const protocol::UniqueFd*> Server::ArenaFor(const ServedVolume& vol,
                                                   const PeerCred& peer) const {
  if (!vol.arena_ro.valid()) {
    return Status(EOPNOTSUPP, "volume '" + vol.name + "': its cache cannot be shared with clients");
  }
  if (peer.uid != 0 && peer.uid != euid_) {
    return Status(EACCES, "mapped views through zfiled need root or the daemon's uid (" +
                              std::to_string(euid_) + "; this client is uid " +
                              std::to_string(peer.uid) +
                              "): a view maps the volume's whole cache arena");
  }
  return &vol.arena_ro;
}

Result<std::unique_ptr<Server>> Server::Start(const DaemonConfig& config, SessionBounds bounds) {
  std::unique_ptr<Server> server(new Server(bounds));
  // Stop() on the way out of a failure unmounts what was mounted.
  auto fail = [&](Status s) -> Status {
    Status ignored = server->Stop();
    (void)ignored;
    return s;
  };
  for (const VolumeConfig& vc : config.volumes) {
    Result<std::unique_ptr<ZonedDevice>> dev = OpenDevice(vc.device);
    if (!dev.ok()) return fail(dev.status().WithContext("volume '" + vc.name + "'"));
    Result<std::unique_ptr<Volume>> vol = Volume::Mount(std::move(*dev), vc.mount_options);
    if (!vol.ok()) {
      return fail(
          vol.status().WithContext("mounting volume '" + vc.name + "' (" + vc.device + ")"));
    }
    auto served = std::make_unique<ServedVolume>();
    served->name = vc.name;
    served->volume = std::move(*vol);
    int arena = served->volume->cache().arena_fd();
    if (arena >= 0) {
      // A new open file description, read-only: the client's mapping of it
      // can never be made writable, whatever it tries.
      std::string proc = "/proc/self/fd/" + std::to_string(arena);
      served->arena_ro.Reset(open(proc.c_str(), O_RDONLY | O_CLOEXEC));
      if (!served->arena_ro.valid()) {
        Log().warn("volume '{}': cannot reopen the cache arena read-only ({}); MAP disabled",
                   vc.name, ErrnoName(errno));
      }
    }
    Log().info("volume '{}' mounted from {} ({})", vc.name, vc.device,
               served->volume->Info().options);
    server->volumes_.push_back(std::move(served));
  }
  Status listening = server->Listen(config.socket);
  if (!listening.ok()) return fail(listening);
  for (size_t i = 0; i < config.volumes.size(); ++i) {
    const VolumeConfig& vc = config.volumes[i];
    if (!vc.mount) continue;
    ServedVolume& served = *server->volumes_[i];
    Result<std::unique_ptr<FuseMount>> fuse =
        FuseMount::Start(served.name, served.volume.get(), *vc.mount,
                         std::chrono::milliseconds(bounds.stop_timeout_ms));
    if (!fuse.ok()) return fail(fuse.status());
    served.fuse = std::move(*fuse);
  }
  server->wake_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!server->wake_fd_.valid()) return fail(ErrnoStatus(errno, "eventfd"));
  Server* raw = server.get();
  server->accept_thread_ = std::thread([raw] { raw->AcceptLoop(); });
  Log().info("listening on {}", server->socket_path_);
  return server;
}

Status Server::Listen(const SocketConfig& socket) {
  const std::string& path = socket.path;
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status(EINVAL, "socket path '" + path + "' is empty or too long for a Unix socket");
  }
  sockaddr_un addr = AddressOf(path);
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status(EEXIST, path + " exists and is not a socket; not replacing it");
    }
    // A live daemon answers; a stale socket (a daemon that died) refuses.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe.valid()) return ErrnoStatus(errno, "socket");
    if (connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      return Status(EADDRINUSE, "another zfiled is already listening on " + path);
    }
    if (errno != ECONNREFUSED) return ErrnoStatus(errno, "probing the existing socket " + path);
    if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, "removing the stale socket " + path);
    Log().info("removed the stale socket {}", path);
  } else if (errno != ENOENT) {
    return ErrnoStatus(errno, "lstat " + path);
  }
  listen_fd_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_fd_.valid()) return ErrnoStatus(errno, "socket");
  if (bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "binding " + path);
  }
  socket_path_ = path;
  if (socket.group) {
    Result<gid_t> gid = ResolveGroup(*socket.group);
    if (!gid.ok()) return gid.status();
    if (chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      return ErrnoStatus(errno, "giving " + path + " to group " + *socket.group);
    }
  }
  // Connecting needs write permission on the socket: its mode is the access
  // control for the whole daemon, so set it before anyone can connect.
  if (chmod(path.c_str(), socket.mode) != 0) return ErrnoStatus(errno, "chmod " + path);
  if (listen(listen_fd_.get(), 128) != 0) return ErrnoStatus(errno, "listen on " + path);
  return Status();
}

void Server::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    int n = poll(fds, 2, 1000);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReapLocked(false);
    }
    if (n < 0 && errno != EINTR) {
      Log().error("poll on the listening socket: {}", ErrnoName(errno));
      return;
    }
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      uint64_t count;
      ssize_t ignored = read(wake_fd_.get(), &count, sizeof(count));
      (void)ignored;
    }
    if (n <= 0 || (fds[0].revents & POLLIN) == 0 || stopping_.load()) continue;
    UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) {
      // EMFILE and the like: the client waits in the backlog; do not spin.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        Log().warn("accept: {}", ErrnoName(errno));
        usleep(100 * 1000);
      }
      continue;
    }
    Result<PeerCred> peer = PeerCredOf(conn.get());
    if (!peer.ok()) {
      Log().warn("refusing a client: {}", peer.status().ToString());
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (sessions_.size() >= bounds_.max_sessions) {
      Log().warn("refusing pid {} uid {}: {} clients connected, the limit", peer->pid, peer->uid,
                 sessions_.size());
      continue;
    }
    if (peer->uid != 0) {
      // Sessions that have ended but are not reaped yet do not count.
      const size_t of_uid =
          std::count_if(sessions_.begin(), sessions_.end(),
                        [&](const Running& r) { return r.uid == peer->uid && !r.session->done(); });
      if (of_uid >= bounds_.max_sessions_per_uid) {
        // The protocol has no message before HELLO, so the client learns
        // only that the connection closed; the log says why.
        Log().warn("refusing pid {} uid {}: uid {} has {} clients connected, the limit per uid",
                   peer->pid, peer->uid, peer->uid, of_uid);
        continue;
      }
    }
    Running& running = sessions_.emplace_back();
    running.sock = conn.get();
    running.uid = peer->uid;
    running.pid = peer->pid;
    const pid_t pid = peer->pid;
    const uid_t uid = peer->uid;
    running.session =
        std::make_unique<Session>(this, next_session_id_++, std::move(conn), std::move(*peer));
    Session* session = running.session.get();
    try {
      running.thread = std::thread([session] { session->Run(); });
    } catch (const std::system_error& e) {
      // Out of threads (or memory for one): this client is refused, the
      // others carry on. Destroying the session closes its socket.
      Log().warn("refusing pid {} uid {}: cannot start a thread for it: {}", pid, uid, e.what());
      sessions_.pop_back();
    }
  }
}

void Server::ReapLocked(bool all) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (all || it->session->done()) {
      if (it->thread.joinable()) it->thread.join();
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::SessionEnded() {
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_.get(), &one, sizeof(one));
  (void)ignored;
}

bool Server::TryStartSpin() {
  int now = spinners_.load(std::memory_order_relaxed);
  while (now < max_spinners_) {
    if (spinners_.compare_exchange_weak(now, now + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

void Server::EndSpin() { spinners_.fetch_sub(1, std::memory_order_relaxed); }

size_t Server::clients() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const Running& r : sessions_) n += r.session->done() ? 0 : 1;
  return n;
}

ServedVolume* Server::FindVolume(const std::string& name) {
  for (auto& v : volumes_) {
    if (v->name == name) return v.get();
  }
  return nullptr;
}

Status Server::Stop() {
  if (stopped_) return Status();
  stopped_ = true;
  stopping_ = true;
  if (wake_fd_.valid()) {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_.get(), &one, sizeof(one));
    (void)ignored;
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  // 1. Nobody new: a client connecting from now on is refused at once
  // rather than left in the backlog of a daemon that will never accept it.
  if (listen_fd_.valid()) {
    listen_fd_.Reset();
    unlink(socket_path_.c_str());
  }
  std::list<Running> sessions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sessions.swap(sessions_);
  }
  // 2. Dirty data to the devices now, while sessions may still run: a
  // session that never ends must not cost the data its client wrote.
  Status first;
  for (auto& v : volumes_) {
    Status s = v->volume->Sync();
    if (!s.ok()) {
      Log().error("volume '{}': writing back dirty data: {}", v->name, s.ToString());
      if (first.ok()) first = s.WithContext("volume '" + v->name + "'");
    }
  }
  // 3. End the sessions. Shutting down reads lets each answer the request
  // it is serving and then see end of file; after a grace, shutting down
  // writes too frees a session blocked sending to a client that does not
  // read its replies.
  if (!sessions.empty()) Log().info("closing {} client sessions", sessions.size());
  // Interrupt shuts down reads and also makes a session waiting on its
  // doorbell stop taking rings, which SHUT_RD alone would not: a client
  // that keeps ringing would otherwise hold up the shutdown.
  for (Running& r : sessions) r.session->Interrupt();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::milliseconds(bounds_.stop_timeout_ms);
  const auto grace =
      start + std::chrono::milliseconds(std::min<uint32_t>(1000, bounds_.stop_timeout_ms / 4));
  bool shut_down_writes = false;
  while (true) {
    const bool all_done = std::all_of(sessions.begin(), sessions.end(),
                                      [](const Running& r) { return r.session->done(); });
    const auto now = std::chrono::steady_clock::now();
    if (all_done || now >= deadline) break;
    if (!shut_down_writes && now >= grace) {
      for (Running& r : sessions) shutdown(r.sock, SHUT_RDWR);
      shut_down_writes = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // Again: Interrupt's futex wake is lost if it lands just before the
    // session goes to sleep (the client owns the futex word, so we cannot
    // change it to make the sleep fail); repeating it bounds that delay to
    // this loop's period rather than the session's sleep.
    for (Running& r : sessions) {
      if (!r.session->done()) r.session->Interrupt();
    }
  }
  size_t stuck = 0;
  for (Running& r : sessions) {
    if (r.session->done()) {
      if (r.thread.joinable()) r.thread.join();
      continue;
    }
    ++stuck;
    Log().error(
        "a session of pid {} uid {} is still running {} ms after shutdown began; "
        "abandoning it",
        r.pid, r.uid, bounds_.stop_timeout_ms);
    // It may be inside the engine: neither it nor the volumes can be
    // destroyed under it. Leaked on purpose; the process is about to end.
    r.thread.detach();
    (void)r.session.release();
  }
  sessions.clear();
  if (stuck == 0) {
    // Every session is gone, and every hold with it: budget still held
    // was never given back, which a daemon that kept running would have
    // refused to other clients for good.
    std::lock_guard<std::mutex> lock(buf_mu_);
    if (buf_total_.mappings != 0 || buf_total_.bytes != 0) {
      Log().error(
          "registered buffers' budget: {} buffers, {} bytes still held with every session "
          "ended; a bug",
          buf_total_.mappings, buf_total_.bytes);
    }
  }
  if (stuck > 0) {
    abandoned_ = true;
    // The FUSE mounts too: their workers use the volumes. The kernel
    // aborts their connections when the process ends; the next start
    // detaches the stale mount points.
    for (auto& v : volumes_) {
      (void)v->fuse.release();
      (void)v.release();
    }
    volumes_.clear();
    return Status(EBUSY, std::to_string(stuck) +
                             " client sessions did not end in time; dirty data was written "
                             "back but the volumes were left mounted");
  }
  // 4. The FUSE mounts, now that no session writes (a write tells the
  // mount's change observer, which must not go away under it): afterwards
  // no file of the volumes is open through them. A mount whose requests do
  // not end in time is abandoned as a session is, and its volume with it
  // (its workers may be inside it); the other volumes are unmounted.
  std::string abandoned_volumes;
  for (auto& v : volumes_) {
    if (!v->fuse) continue;
    // The sessions' time counts: the stop timeout bounds the whole.
    Status s = v->fuse->Stop(start);
    if (s.ok()) {
      v->fuse.reset();
      continue;
    }
    Log().error("volume '{}': {}; leaving the volume mounted", v->name, s.ToString());
    abandoned_ = true;
    abandoned_volumes += (abandoned_volumes.empty() ? "'" : ", '") + v->name + "'";
    (void)v->fuse.release();
    (void)v.release();
  }
  std::erase(volumes_, nullptr);
  // 5. Unmount: write back what was dirtied since the sync, close zones.
  for (auto& v : volumes_) {
    Status s = v->volume->Unmount();
    if (s.ok()) {
      Log().info("volume '{}' unmounted", v->name);
    } else {
      Log().error("volume '{}': unmount: {}", v->name, s.ToString());
      if (first.ok()) first = s.WithContext("volume '" + v->name + "'");
    }
  }
  volumes_.clear();
  if (!abandoned_volumes.empty()) {
    return Status(
        EBUSY, "FUSE requests did not end in time on volume(s) " + abandoned_volumes +
                   "; what was dirty when the shutdown began was written back, but they were left "
                   "mounted");
  }
  return first;
}

Server::~Server() {
  Status s = Stop();
  (void)s;
}

}  // namespace zfile::daemon
