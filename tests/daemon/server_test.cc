// zfiled end to end: the real binary on an emulated device, driven through
// the protocol layer directly (not the client library, so that these tests
// can also send what no honest client would), and watched through a
// NOTIFY_SOCKET of the test's own.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/uri.h"
#include "daemon/server.h"
#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zoned_device.h"
#include "engine/volume.h"
#include "format/mkfs.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"

namespace zfile::daemon {
namespace {

namespace p = protocol;
using p::UniqueFd;

constexpr const char* kGeometry =
    "size=128M&zone_size=8M&zone_capacity=6M&conv=2&block_size=4096&max_open=6&max_active=8";
constexpr uint64_t kShmSize = 1 << 20;

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return addr;
}

// A client speaking the protocol by hand.
class RawClient {
 public:
  // Connects; false if the daemon refuses.
  bool Connect(const std::string& socket) {
    sock_.Reset(socket_fd());
    sockaddr_un addr = Address(socket);
    if (connect(sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
    timeval tv{10, 0};
    setsockopt(sock_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    reader_ = std::make_unique<p::FrameReader>(sock_.get());
    return true;
  }

  // HELLO with a fresh region; the reply.
  p::HelloReply Hello(const std::string& volume = "default") {
    Result<UniqueFd> shm = p::CreateShmRegion(kShmSize);
    EXPECT_TRUE(shm.ok());
    shm_fd_ = std::move(*shm);
    void* addr = mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd_.get(), 0);
    EXPECT_NE(addr, MAP_FAILED);
    shm_ = static_cast<uint8_t*>(addr);
    p::HelloRequest req;
    req.volume = volume;
    req.shm_size = kShmSize;
    int fd = shm_fd_.get();
    std::vector<UniqueFd> fds;
    p::Reply reply = Call(req, {&fd, 1}, &fds);
    auto hello = std::get<p::HelloReply>(reply);
    if (hello.result >= 0) {
      limits_.shm_size = kShmSize;
      limits_.cache_page_size = hello.cache_page_size;
      limits_.cache_arena_size = hello.cache_arena_size;
      if (!fds.empty()) arena_ = std::move(fds[0]);
    }
    return hello;
  }

  // Sends `req` and reads its reply (a failed HELLO reply if the daemon
  // hung up instead, with result -ECONNRESET).
  p::Reply Call(const p::Request& req, std::span<const int> fds = {},
                std::vector<UniqueFd>* got_fds = nullptr) {
    Send(req, fds);
    return Receive(got_fds);
  }

  void Send(const p::Request& req, std::span<const int> fds = {}) {
    Result<std::vector<uint8_t>> frame = p::EncodeRequest(++id_, req);
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    Status s = p::SendFrame(sock_.get(), *frame, fds);
    (void)s;
  }

  p::Reply Receive(std::vector<UniqueFd>* got_fds = nullptr) {
    Result<std::optional<p::Frame>> frame = reader_->Read();
    if (!frame.ok() || !frame->has_value()) {
      p::HelloReply gone;
      gone.result = -ECONNRESET;
      gone.message = frame.ok() ? "closed" : frame.status().ToString();
      return gone;
    }
    Result<p::Reply> reply = p::DecodeReply((*frame)->header, (*frame)->payload, limits_);
    EXPECT_TRUE(reply.ok()) << reply.status().ToString();
    if (!reply.ok()) return p::HelloReply{};
    if (got_fds != nullptr) *got_fds = std::move((*frame)->fds);
    return std::move(*reply);
  }

  // Whether the daemon has closed the connection (reads end of file).
  bool Dropped() {
    char c;
    for (int i = 0; i < 100; ++i) {
      ssize_t n = recv(sock_.get(), &c, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  uint64_t Open(const std::string& path, int flags) {
    p::OpenRequest req;
    req.path = path;
    req.flags = flags;
    auto reply = std::get<p::OpenReply>(Call(req));
    EXPECT_GE(reply.result, 0) << reply.message;
    return reply.handle;
  }

  int sock() const { return sock_.get(); }
  uint8_t* shm() { return shm_; }
  int arena() const { return arena_.get(); }

  ~RawClient() {
    if (shm_ != nullptr) munmap(shm_, kShmSize);
  }

 private:
  static int socket_fd() { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

  UniqueFd sock_;
  std::unique_ptr<p::FrameReader> reader_;
  UniqueFd shm_fd_;
  UniqueFd arena_;
  uint8_t* shm_ = nullptr;
  p::SessionLimits limits_;
  uint64_t id_ = 0;
};

void Fill(uint8_t* buf, size_t len, uint32_t seed) {
  for (size_t i = 0; i < len; ++i) buf[i] = static_cast<uint8_t>((i * 131 + seed * 7 + i / 4096));
}

class ZfiledTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zfiled-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Others must reach the socket (the permission test's 'nobody').
    chmod(dir_.c_str(), 0755);
    device_ = "emu:" + dir_ + "/dev";
    auto uri = Uri::Parse(std::string("emu:?") + kGeometry);
    ASSERT_TRUE(uri.ok());
    EmulatedGeometry g;
    ASSERT_TRUE(g.ReadFromUri(*uri).ok());
    ASSERT_TRUE(CreateEmuDevice(dir_ + "/dev", g).ok());
    {
      auto dev = OpenDevice(device_);
      ASSERT_TRUE(dev.ok()) << dev.status().ToString();
      MkfsOptions mkfs;
      mkfs.uid = 0;
      mkfs.gid = 0;
      mkfs.perm = 0640;
      Status s = Mkfs(dev->get(), mkfs);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    socket_ = dir_ + "/zfiled.sock";
    notify_path_ = dir_ + "/notify";
    notify_.Reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = Address(notify_path_);
    ASSERT_EQ(bind(notify_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  // Starts zfiled with `args` and waits for READY=1.
  void Start(std::vector<std::string> args, const std::string& watchdog_usec = "") {
    log_ = dir_ + "/zfiled.log";
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 2);
      setenv("NOTIFY_SOCKET", notify_path_.c_str(), 1);
      if (!watchdog_usec.empty()) setenv("WATCHDOG_USEC", watchdog_usec.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(ZFILED_PATH));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(ZFILED_PATH, argv.data());
      _exit(127);
    }
    ASSERT_TRUE(WaitNotify("READY=1")) << Log();
  }

  void StartDevice() { Start({"--device", device_, "--socket", socket_, "--foreground"}); }

  // Waits up to 20 s for a notification containing `what`.
  bool WaitNotify(const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{notify_.get(), POLLIN, 0};
      if (poll(&pfd, 1, 200) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(notify_.get(), buf, sizeof(buf), 0);
      if (n <= 0) continue;
      std::string msg(buf, n);
      notes_ += msg + "\n";
      if (msg.find(what) != std::string::npos) return true;
    }
    return false;
  }

  // SIGTERM, then the exit status (-1 unless it exited).
  int Terminate() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string dir_, device_, socket_, notify_path_, log_, notes_;
  UniqueFd notify_;
  pid_t pid_ = -1;
};

TEST_F(ZfiledTest, WriteReadMapThroughSharedMemory) {
  StartDevice();
  RawClient c;
  ASSERT_TRUE(c.Connect(socket_));
  p::HelloReply hello = c.Hello();
  ASSERT_EQ(hello.result, 0) << hello.message;
  EXPECT_EQ(hello.volume.nr_seq_files, 14u);
  ASSERT_TRUE(hello.has_cache_fd);
  ASSERT_GE(c.arena(), 0);

  uint64_t h = c.Open("seq/0", O_RDWR);
  constexpr size_t kLen = 256 << 10;
  Fill(c.shm(), kLen, 1);
  p::PwriteRequest w{.handle = h, .offset = 0, .length = kLen, .rwf = 0, .shm_offset = 0};
  EXPECT_EQ(p::ResultOf(c.Call(w)).result, static_cast<int64_t>(kLen));
  p::AppendRequest a{.handle = h, .length = 4096, .shm_offset = 0};
  auto appended = std::get<p::AppendReply>(c.Call(a));
  EXPECT_EQ(appended.result, 4096);
  EXPECT_EQ(appended.offset, kLen);

  p::PreadRequest r{.handle = h, .offset = 0, .length = kLen, .rwf = 0, .shm_offset = kLen};
  EXPECT_EQ(p::ResultOf(c.Call(r)).result, static_cast<int64_t>(kLen));
  EXPECT_EQ(std::memcmp(c.shm(), c.shm() + kLen, kLen), 0);

  auto st = std::get<p::FstatReply>(c.Call(p::FstatRequest{.handle = h}));
  EXPECT_EQ(st.stat.size, kLen + 4096);
  EXPECT_EQ(st.stat.type, 2u);

  // MAP: put the arena's pages side by side, as the client library does.
  auto map =
      std::get<p::MapReply>(c.Call(p::MapRequest{.handle = h, .offset = 5000, .length = 100000}));
  ASSERT_EQ(map.result, 0) << map.message;
  size_t total = 0;
  for (auto& e : map.extents) total += e.length;
  auto* base =
      static_cast<uint8_t*>(mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  size_t at = 0;
  for (auto& e : map.extents) {
    void* got =
        mmap(base + at, e.length, PROT_READ, MAP_SHARED | MAP_FIXED, c.arena(), e.arena_offset);
    ASSERT_NE(got, MAP_FAILED);
    at += e.length;
  }
  EXPECT_EQ(std::memcmp(base + map.start, c.shm() + 5000, 100000), 0);
  // The arena is read-only for clients.
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c.arena(), 0), MAP_FAILED);
  munmap(base, total);
  EXPECT_EQ(p::ResultOf(c.Call(p::UnmapRequest{.view_id = map.view_id})).result, 0);
  EXPECT_EQ(p::ResultOf(c.Call(p::UnmapRequest{.view_id = map.view_id})).result, -EINVAL);

  EXPECT_EQ(p::ResultOf(c.Call(p::CloseRequest{.handle = h})).result, 0);
  // Handles are not reused, and a closed one names nothing.
  EXPECT_EQ(p::ResultOf(c.Call(p::FsyncRequest{.handle = h})).result, -EBADF);
  EXPECT_NE(c.Open("seq/1", O_RDONLY), h);

  auto stats = std::get<p::VolStatsReply>(c.Call(p::VolStatsRequest{}));
  EXPECT_NE(stats.json.find('{'), std::string::npos);
  EXPECT_EQ(p::ResultOf(c.Call(p::VolSyncRequest{})).result, 0);
  auto stat = std::get<p::StatReply>(c.Call(p::StatRequest{.path = "nope/1"}));
  EXPECT_EQ(stat.result, -ENOENT);
  EXPECT_EQ(Terminate(), 0) << Log();
}

TEST_F(ZfiledTest, UnknownVolumeIsRefusedInWords) {
  StartDevice();
  RawClient c;
  ASSERT_TRUE(c.Connect(socket_));
  p::HelloReply hello = c.Hello("nosuch");
  EXPECT_EQ(hello.result, -ENOENT);
  EXPECT_NE(hello.message.find("nosuch"), std::string::npos);
  EXPECT_TRUE(c.Dropped());
}

TEST_F(ZfiledTest, SecondDaemonOnTheSameSocketRefuses) {
  StartDevice();
  // The device is taken too, but the socket check must not be reached
  // only by luck: use another device.
  std::string other = dir_ + "/dev2";
  auto uri = Uri::Parse(std::string("emu:?") + kGeometry);
  EmulatedGeometry g;
  ASSERT_TRUE(g.ReadFromUri(*uri).ok());
  ASSERT_TRUE(CreateEmuDevice(other, g).ok());
  {
    auto dev = OpenDevice("emu:" + other);
    ASSERT_TRUE(dev.ok());
    ASSERT_TRUE(Mkfs(dev->get(), MkfsOptions{}).ok());
  }
  std::string cmd = std::string(ZFILED_PATH) + " --device emu:" + other + " --socket " + socket_ +
                    " 2>" + dir_ + "/second.log";
  EXPECT_NE(system(cmd.c_str()), 0);
  std::ifstream in(dir_ + "/second.log");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("already listening"), std::string::npos) << ss.str();
}

TEST_F(ZfiledTest, NotifiesAndWritesBackOnSigterm) {
  StartDevice();
  EXPECT_NE(notes_.find("READY=1"), std::string::npos);
  // READY came after the socket listens: connecting works at once.
  RawClient c;
  ASSERT_TRUE(c.Connect(socket_));
  ASSERT_EQ(c.Hello().result, 0);
  // A buffered write to a conventional file stays dirty in the cache; only
  // the shutdown writes it back.
  uint64_t h = c.Open("cnv/0", O_RDWR);
  Fill(c.shm(), 8192, 9);
  p::PwriteRequest w{.handle = h, .offset = 4096, .length = 8192, .rwf = 0, .shm_offset = 0};
  ASSERT_EQ(p::ResultOf(c.Call(w)).result, 8192);
  uint64_t s = c.Open("seq/2", O_WRONLY);
  p::AppendRequest a{.handle = s, .length = 8192, .shm_offset = 0};
  ASSERT_EQ(p::ResultOf(c.Call(a)).result, 8192);

  kill(pid_, SIGTERM);
  EXPECT_TRUE(WaitNotify("STOPPING=1"));
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << Log();
  EXPECT_FALSE(std::filesystem::exists(socket_));

  auto dev = OpenDevice(device_);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  auto vol = Volume::Mount(std::move(*dev), MountOptions{});
  ASSERT_TRUE(vol.ok()) << vol.status().ToString();
  std::vector<uint8_t> want(8192), got(8192);
  Fill(want.data(), want.size(), 9);
  for (const char* path : {"cnv/0", "seq/2"}) {
    auto f = (*vol)->Open(path, O_RDONLY | O_DIRECT);
    ASSERT_TRUE(f.ok());
    uint64_t off = std::string(path) == "cnv/0" ? 4096 : 0;
    auto n = (*f)->PRead(got.data(), got.size(), off, 0);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(*n, got.size());
    EXPECT_EQ(got, want) << path;
  }
}

TEST_F(ZfiledTest, KeepsTheWatchdogFedAndReportsStatus) {
  Start({"--device", device_, "--socket", socket_}, "200000");
  EXPECT_TRUE(WaitNotify("WATCHDOG=1"));
  // The first keep-alive may come before READY; two more must follow
  // within a couple of intervals.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitNotify("WATCHDOG=1"));
  EXPECT_TRUE(WaitNotify("WATCHDOG=1"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_NE(notes_.find("STATUS=serving 1 volume(s) to 0 client(s)"), std::string::npos) << notes_;
  RawClient c;
  ASSERT_TRUE(c.Connect(socket_));
  ASSERT_EQ(c.Hello().result, 0);
  EXPECT_TRUE(WaitNotify("to 1 client(s)")) << notes_;
  EXPECT_EQ(Terminate(), 0);
}

TEST_F(ZfiledTest, SighupReloadsTheLogLevel) {
  std::string config = dir_ + "/zfiled.yaml";
  auto write_config = [&](const char* level) {
    std::ofstream out(config);
    out << "socket: {path: " << socket_ << ", mode: \"0666\"}\nlog_level: " << level
        << "\nvolumes:\n  - {name: default, device: " << device_ << "}\n";
  };
  write_config("info");
  Start({"--config", config});
  write_config("debug");
  kill(pid_, SIGHUP);
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seen = Log().find("log level is now debug") != std::string::npos;
  }
  EXPECT_TRUE(seen) << Log();
  // Debug messages now appear: a session's start is logged at debug.
  RawClient c;
  ASSERT_TRUE(c.Connect(socket_));
  ASSERT_EQ(c.Hello().result, 0);
  EXPECT_EQ(Terminate(), 0);
  EXPECT_NE(Log().find("connected"), std::string::npos) << Log();
}

TEST_F(ZfiledTest, BadClientsAreDroppedOthersCarryOn) {
  StartDevice();
  RawClient good;
  ASSERT_TRUE(good.Connect(socket_));
  ASSERT_EQ(good.Hello().result, 0);
  uint64_t h = good.Open("seq/3", O_RDWR);

  {  // Garbage bytes.
    RawClient bad;
    ASSERT_TRUE(bad.Connect(socket_));
    const char junk[] = "GET / HTTP/1.1\r\nHost: zfiled\r\n\r\n";
    ASSERT_GT(write(bad.sock(), junk, sizeof(junk)), 0);
    EXPECT_TRUE(bad.Dropped());
  }
  {  // A range outside its region.
    RawClient liar;
    ASSERT_TRUE(liar.Connect(socket_));
    ASSERT_EQ(liar.Hello().result, 0);
    uint64_t lh = liar.Open("seq/3", O_RDONLY);
    p::PreadRequest r{
        .handle = lh, .offset = 0, .length = 8192, .rwf = 0, .shm_offset = kShmSize - 4096};
    // The encoder does not check ranges; the daemon's decoder does.
    liar.Send(r);
    EXPECT_TRUE(liar.Dropped());
  }
  {  // A descriptor that is not a sealed memfd: mapping it could SIGBUS us.
    RawClient wrong;
    ASSERT_TRUE(wrong.Connect(socket_));
    UniqueFd zero(open("/dev/zero", O_RDWR | O_CLOEXEC));
    p::HelloRequest hello;
    hello.volume = "default";
    hello.shm_size = kShmSize;
    int fd = zero.get();
    p::Reply reply = wrong.Call(hello, {&fd, 1});
    EXPECT_EQ(p::ResultOf(reply).result, -EPROTO) << p::ResultOf(reply).message;
    EXPECT_TRUE(wrong.Dropped());
  }
  {  // A request before HELLO.
    RawClient rude;
    ASSERT_TRUE(rude.Connect(socket_));
    rude.Send(p::VolInfoRequest{});
    EXPECT_TRUE(rude.Dropped());
  }
  {  // Dies mid-frame, holding a view: its pins must go with it.
    RawClient dying;
    ASSERT_TRUE(dying.Connect(socket_));
    ASSERT_EQ(dying.Hello().result, 0);
    uint64_t dh = dying.Open("seq/3", O_RDONLY);
    Fill(good.shm(), 8192, 3);
    p::PwriteRequest w{.handle = h, .offset = 0, .length = 8192, .rwf = 0, .shm_offset = 0};
    ASSERT_EQ(p::ResultOf(good.Call(w)).result, 8192);
    auto map =
        std::get<p::MapReply>(dying.Call(p::MapRequest{.handle = dh, .offset = 0, .length = 8192}));
    ASSERT_EQ(map.result, 0) << map.message;
    // While the view lives, the zone cannot be reset.
    auto busy = good.Call(p::FtruncateRequest{.handle = h, .size = 0});
    EXPECT_EQ(p::ResultOf(busy).result, -EBUSY);
    Result<std::vector<uint8_t>> frame = p::EncodeRequest(99, p::CloseRequest{.handle = dh});
    ASSERT_TRUE(frame.ok());
    ASSERT_EQ(write(dying.sock(), frame->data(), 10), 10);
  }  // closes the socket mid-frame
  bool reset = false;
  for (int i = 0; i < 100 && !reset; ++i) {
    reset = p::ResultOf(good.Call(p::FtruncateRequest{.handle = h, .size = 0})).result == 0;
    if (!reset) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(reset) << "the dead client's view still pins the zone";
  auto info = std::get<p::VolInfoReply>(good.Call(p::VolInfoRequest{}));
  EXPECT_EQ(info.result, 0);
  EXPECT_EQ(Terminate(), 0) << Log();
  EXPECT_NE(Log().find("dropped"), std::string::npos);
}

// In a child, as uid/gid 65534 with no supplementary groups: HELLO, then
// OPEN `path` read-only, CHMOD it, CHOWN it to root. The exit code says
// what happened: 1 if OPEN was EACCES, plus 2 if CHMOD was EPERM; 100 and
// up for anything unexpected.
int AsNobody(const std::string& socket, const std::string& path) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    RawClient c;
    if (!c.Connect(socket)) _exit(101);
    if (c.Hello().result != 0) _exit(102);
    int code = 0;
    p::OpenRequest o;
    o.path = path;
    o.flags = O_RDONLY;
    int64_t r = p::ResultOf(c.Call(o)).result;
    if (r == -EACCES)
      code |= 1;
    else if (r < 0)
      _exit(103);
    p::ChmodRequest m;
    m.path = path;
    m.mode = 0777;
    if (p::ResultOf(c.Call(m)).result == -EPERM) code |= 2;
    p::ChownRequest ch;
    ch.path = path;
    ch.uid = 0;  // giving a file away is root's alone
    ch.gid = UINT32_MAX;
    if (p::ResultOf(c.Call(ch)).result != -EPERM) _exit(104);
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(ZfiledTest, PermissionsFromPeerCredentials) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  std::string config = dir_ + "/zfiled.yaml";
  {
    std::ofstream out(config);
    out << "socket: {path: " << socket_
        << ", mode: \"0666\"}\nvolumes:\n  - {name: default, device: " << device_ << "}\n";
  }
  Start({"--config", config});
  // 0640 root:root: nobody may neither open nor chmod it.
  EXPECT_EQ(AsNobody(socket_, "seq/4"), 1 | 2) << Log();
  RawClient root;
  ASSERT_TRUE(root.Connect(socket_));
  ASSERT_EQ(root.Hello().result, 0);
  p::ChmodRequest m;
  m.path = "seq/4";
  m.mode = 0666;
  ASSERT_EQ(p::ResultOf(root.Call(m)).result, 0);
  EXPECT_EQ(AsNobody(socket_, "seq/4"), 2) << Log();
  // Once nobody owns it, nobody may chmod it.
  p::ChownRequest ch;
  ch.path = "seq/4";
  ch.uid = 65534;
  ch.gid = 65534;
  ASSERT_EQ(p::ResultOf(root.Call(ch)).result, 0);
  EXPECT_EQ(AsNobody(socket_, "seq/4"), 0) << Log();
  EXPECT_EQ(Terminate(), 0);
}

TEST(MayAccess, OwnerGroupOtherAndRoot) {
  PeerCred user{.pid = 1, .uid = 1000, .gid = 1000, .groups = {1000, 27}};
  EXPECT_TRUE(MayAccess(user, 0600, 1000, 0, 6));
  EXPECT_FALSE(MayAccess(user, 0066, 1000, 1000, 4));  // owner bits win, even if narrower
  EXPECT_TRUE(MayAccess(user, 0040, 0, 27, 4));        // a supplementary group
  EXPECT_FALSE(MayAccess(user, 0040, 0, 27, 2));
  EXPECT_TRUE(MayAccess(user, 0004, 0, 0, 4));
  EXPECT_FALSE(MayAccess(user, 0640, 0, 0, 4));
  PeerCred root{.pid = 1, .uid = 0, .gid = 0, .groups = {0}};
  EXPECT_TRUE(MayAccess(root, 0000, 1000, 1000, 6));
}

}  // namespace
}  // namespace zfile::daemon
