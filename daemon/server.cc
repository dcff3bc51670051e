#include "daemon/server.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
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
  // The kernel does not tell us the peer's supplementary groups; the group
  // database's view of its uid is what a file server (NFS's AUTH_SYS
  // mapping, for one) uses instead.
  std::vector<char> buf(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (getpwuid_r(cred.uid, &entry, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    int n = 64;
    std::vector<gid_t> groups(n);
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) {
      groups.resize(n);
      if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) n = 0;
    }
    groups.resize(n);
    for (gid_t g : groups) {
      if (std::find(peer.groups.begin(), peer.groups.end(), g) == peer.groups.end()) {
        peer.groups.push_back(g);
      }
    }
  }
  return peer;
}

Server::Server(SessionBounds bounds) : bounds_(bounds) {}

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
    Running& running = sessions_.emplace_back();
    running.session =
        std::make_unique<Session>(this, next_session_id_++, std::move(conn), std::move(*peer));
    Session* session = running.session.get();
    running.thread = std::thread([session] { session->Run(); });
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
  // No new sessions now. Each running one answers the request it is
  // serving, then sees end of file and releases what its client held.
  std::list<Running> sessions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sessions.swap(sessions_);
  }
  if (!sessions.empty()) Log().info("closing {} client sessions", sessions.size());
  for (Running& r : sessions) r.session->Interrupt();
  for (Running& r : sessions) {
    if (r.thread.joinable()) r.thread.join();
  }
  sessions.clear();
  if (listen_fd_.valid()) {
    listen_fd_.Reset();
    unlink(socket_path_.c_str());
  }
  Status first;
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
  return first;
}

Server::~Server() {
  Status s = Stop();
  (void)s;
}

}  // namespace zfile::daemon
