// The client backend against a stand-in for zfiled: a small server in this
// test, built on the protocol layer only, that keeps files as byte strings
// and logs every request. It checks what a real daemon cannot show as
// directly: how calls larger than the region are split (block-aligned
// pieces, a short count ends the call, appends report their first
// landing), that views are assembled from scattered arena pages, that
// files and views pin their own session, and what a client sees when the
// daemon goes away. The real daemon is exercised by zfiled_client_test.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client_backend.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"
#include "protocol/unique_fd.h"
#include "zfile/zfile.h"

namespace zfile {
namespace {

namespace proto = zfile::protocol;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kArenaSize = 64 * kPage;

// A handle of the stand-in daemon: the file and whether it was opened with
// O_APPEND.
struct OpenFile {
  std::string path;
  bool append = false;
};

// What the stand-in daemon saw, for the tests to check.
struct Seen {
  std::vector<uint64_t> write_lengths;  // PWRITE and APPEND, in order
  int hellos = 0;
  int closes = 0;
  int unmaps = 0;
};

class FakeDaemon {
 public:
  FakeDaemon() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "zfile-fake-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
    path_ = dir_ + "/zfiled.sock";
    listener_ = proto::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener_.get(), 16) != 0) {
      std::abort();
    }
    acceptor_ = std::thread([this] { Accept(); });
  }

  ~FakeDaemon() {
    Kill();
    ::shutdown(listener_.get(), SHUT_RDWR);
    acceptor_.join();
    for (std::thread& t : sessions_) t.join();
    std::filesystem::remove_all(dir_);
  }

  std::string uri() const { return "unix:" + path_ + "?volume=data"; }

  // Drops every session, as a daemon that dies would.
  void Kill() {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_socks_) ::shutdown(fd, SHUT_RDWR);
  }

  // Appends and writes to "cnv/short" take at most this much per request.
  void set_short_write(uint64_t n) { short_write_ = n; }

  // From now on every APPEND is followed at once by a page of 'Z' from
  // another (imaginary) appender, before the next request is served.
  void set_interloper() { interloper_ = true; }

  Seen seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  std::string file(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return files_[path];
  }

 private:
  void Accept() {
    for (;;) {
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      open_socks_.push_back(fd);
      sessions_.emplace_back([this, fd] { Serve(proto::UniqueFd(fd)); });
    }
  }

  void Serve(proto::UniqueFd sock) {
    proto::FrameReader reader(sock.get());
    proto::SessionLimits limits;
    uint8_t* shm = nullptr;
    std::map<uint64_t, OpenFile> handles;
    uint64_t next_handle = 1;
    proto::UniqueFd arena;
    for (;;) {
      auto got = reader.Read();
      if (!got.ok() || !got->has_value()) break;
      proto::Frame& f = **got;
      auto req = proto::DecodeRequest(f.header, f.payload, limits);
      if (!req.ok()) break;
      std::vector<int> fds;
      proto::Reply reply = Handle(*req, f, &limits, &shm, &handles, &next_handle, &arena, &fds);
      auto bytes = proto::EncodeReply(f.header.request_id, reply);
      if (!bytes.ok() || !proto::SendFrame(sock.get(), *bytes, fds).ok()) break;
    }
    if (shm != nullptr) ::munmap(shm, limits.shm_size);
    // Forgotten before it is closed, so that Kill() never shuts down a
    // descriptor number something else has been given since.
    std::lock_guard<std::mutex> lock(mu_);
    std::erase(open_socks_, sock.get());
  }

  proto::Reply Handle(const proto::Request& any, proto::Frame& f, proto::SessionLimits* limits,
                      uint8_t** shm, std::map<uint64_t, OpenFile>* handles, uint64_t* next_handle,
                      proto::UniqueFd* arena, std::vector<int>* fds) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto* r = std::get_if<proto::HelloRequest>(&any)) {
      ++seen_.hellos;
      proto::HelloReply reply;
      if (r->volume != "data") {
        return proto::ErrorReply<proto::HelloReply>(
            Status(ENOENT, "no volume '" + r->volume + "'"));
      }
      limits->shm_size = r->shm_size;
      *shm = static_cast<uint8_t*>(
          ::mmap(nullptr, r->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, f.fds[0].get(), 0));
      *arena = std::move(proto::CreateShmRegion(kArenaSize).value());
      fds->push_back(arena->get());
      reply.shm_size = r->shm_size;
      reply.has_cache_fd = true;
      reply.cache_page_size = kPage;
      reply.cache_arena_size = kArenaSize;
      reply.volume.block_size = kPage;
      reply.volume.nr_seq_files = 1;
      reply.volume.label = "fake";
      return reply;
    }
    if (auto* r = std::get_if<proto::OpenRequest>(&any)) {
      proto::OpenReply reply;
      reply.handle = (*next_handle)++;
      (*handles)[reply.handle] = OpenFile{r->path, (r->flags & O_APPEND) != 0};
      return reply;
    }
    if (auto* r = std::get_if<proto::CloseRequest>(&any)) {
      ++seen_.closes;
      handles->erase(r->handle);
      return proto::CloseReply{};
    }
    if (auto* r = std::get_if<proto::PwriteRequest>(&any)) {
      const OpenFile& file = handles->at(r->handle);
      std::string& data = files_[file.path];
      const uint64_t n = Cap(file.path, r->length);
      uint64_t offset = r->offset;
      // Sequential files as the engine keeps them: an O_APPEND handle
      // writes at the write pointer, any other only there.
      if (file.path.starts_with("seq/")) {
        if (file.append) offset = data.size();
        if (offset != data.size()) {
          return proto::ErrorReply<proto::PwriteReply>(
              Status(EINVAL, "write at " + std::to_string(offset) +
                                 " is not at the write pointer " + std::to_string(data.size())));
        }
      }
      if (data.size() < offset + n) data.resize(offset + n);
      std::memcpy(data.data() + offset, *shm + r->shm_offset, n);
      proto::PwriteReply reply;
      reply.result = static_cast<int64_t>(n);
      return reply;
    }
    if (auto* r = std::get_if<proto::AppendRequest>(&any)) {
      std::string& data = files_[handles->at(r->handle).path];
      const uint64_t n = Cap(handles->at(r->handle).path, r->length);
      proto::AppendReply reply;
      reply.offset = data.size();
      data.append(reinterpret_cast<const char*>(*shm + r->shm_offset), n);
      // Another appender gets in right behind this one.
      if (interloper_) data.append(kPage, 'Z');
      reply.result = static_cast<int64_t>(n);
      return reply;
    }
    if (auto* r = std::get_if<proto::PreadRequest>(&any)) {
      const std::string& data = files_[handles->at(r->handle).path];
      const uint64_t n =
          r->offset >= data.size() ? 0 : std::min(r->length, data.size() - r->offset);
      if (n > 0) std::memcpy(*shm + r->shm_offset, data.data() + r->offset, n);
      proto::PreadReply reply;
      reply.result = static_cast<int64_t>(n);
      return reply;
    }
    if (auto* r = std::get_if<proto::FstatRequest>(&any)) {
      proto::FstatReply reply;
      reply.stat.size = files_[handles->at(r->handle).path].size();
      reply.stat.type = ZFILE_TYPE_SEQ;
      reply.stat.cond = ZFILE_COND_IMP_OPEN;
      return reply;
    }
    if (auto* r = std::get_if<proto::MapRequest>(&any)) {
      // The view's pages go into the arena in reverse order, so the client
      // must put each extent in its place to see the bytes in order.
      const std::string& data = files_[handles->at(r->handle).path];
      const uint64_t first = r->offset / kPage;
      const uint64_t pages = (r->offset + r->length - 1) / kPage - first + 1;
      void* mem = ::mmap(nullptr, kArenaSize, PROT_READ | PROT_WRITE, MAP_SHARED, arena->get(), 0);
      proto::MapReply reply;
      for (uint64_t i = 0; i < pages; ++i) {
        const uint64_t slot = kArenaSize / kPage - 1 - i;
        const uint64_t from = (first + i) * kPage;
        std::memcpy(static_cast<uint8_t*>(mem) + slot * kPage, data.data() + from,
                    std::min<uint64_t>(kPage, data.size() - from));
        reply.extents.push_back({slot * kPage, kPage});
      }
      ::munmap(mem, kArenaSize);
      reply.view_id = 77;
      reply.start = r->offset % kPage;
      return reply;
    }
    if (std::get_if<proto::UnmapRequest>(&any) != nullptr) {
      ++seen_.unmaps;
      return proto::UnmapReply{};
    }
    if (std::get_if<proto::VolInfoRequest>(&any) != nullptr) {
      proto::VolInfoReply reply;
      reply.volume.label = "fake";
      reply.volume.block_size = kPage;
      return reply;
    }
    return proto::ErrorReply<proto::VolSyncReply>(Status(ENOSYS, "not in the fake"));
  }

  // Logs a write and says how much of it the fake takes.
  uint64_t Cap(const std::string& path, uint64_t len) {
    seen_.write_lengths.push_back(len);
    return path == "cnv/short" ? std::min(len, short_write_.load()) : len;
  }

  std::string dir_;
  std::string path_;
  proto::UniqueFd listener_;
  std::thread acceptor_;
  std::atomic<uint64_t> short_write_{UINT64_MAX};
  std::atomic<bool> interloper_{false};

  std::mutex mu_;
  std::vector<std::thread> sessions_;         // guarded by mu_ (joined after acceptor_)
  std::vector<int> open_socks_;               // guarded by mu_
  std::map<std::string, std::string> files_;  // guarded by mu_
  Seen seen_;                                 // guarded by mu_
};

std::vector<char> Pattern(size_t len, unsigned seed) {
  std::vector<char> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = static_cast<char>((i * 131 + seed * 7 + i / 4096) & 0xff);
  return v;
}

class ClientBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(zfile_vol_open(daemon_.uri().c_str(), nullptr, &vol_), 0) << zfile_last_error();
  }
  void TearDown() override {
    if (vol_ != nullptr) {
      EXPECT_EQ(zfile_vol_close(vol_), 0) << zfile_last_error();
    }
  }
  zfile_file* Open(const char* path) {
    zfile_file* f = nullptr;
    EXPECT_EQ(zfile_open(vol_, path, O_RDWR, &f), 0) << zfile_last_error();
    return f;
  }

  FakeDaemon daemon_;
  zfile_vol* vol_ = nullptr;
};

TEST_F(ClientBackend, HelloCarriesTheVolume) {
  struct zfile_vol_info info;
  ASSERT_EQ(zfile_vol_info(vol_, &info), 0) << zfile_last_error();
  EXPECT_STREQ(info.label, "fake");
  EXPECT_EQ(info.block_size, kPage);
}

TEST_F(ClientBackend, UnknownVolumeIsTheDaemonsError) {
  zfile_vol* v = nullptr;
  std::string uri = daemon_.uri();
  uri.replace(uri.find("volume=data"), 11, "volume=nope");
  EXPECT_EQ(zfile_vol_open(uri.c_str(), nullptr, &v), -ENOENT);
  EXPECT_NE(std::string(zfile_last_error()).find("no volume 'nope'"), std::string::npos)
      << zfile_last_error();
}

TEST_F(ClientBackend, LargeWriteAndReadAreSplitIntoRegionPieces) {
  zfile_file* f = Open("cnv/0");
  const size_t len = 2 * kClientShmSize + 3 * kPage;  // 3 pieces
  auto data = Pattern(len, 1);
  ASSERT_EQ(zfile_pwrite(f, data.data(), len, kPage), ssize_t(len)) << zfile_last_error();
  const std::vector<uint64_t> expect = {kClientShmSize, kClientShmSize, 3 * kPage};
  EXPECT_EQ(daemon_.seen().write_lengths, expect);
  std::vector<char> back(len);
  ASSERT_EQ(zfile_pread(f, back.data(), len, kPage), ssize_t(len)) << zfile_last_error();
  EXPECT_EQ(back, data);
  // Reading past the end stops at the first short piece.
  ASSERT_EQ(zfile_pread(f, back.data(), len, 2 * kPage), ssize_t(len - kPage));
  EXPECT_EQ(zfile_close(f), 0);
}

// The fake speaks session version 1, as a daemon from before registered
// buffers does: a registered buffer is then copied through the region, in
// the same region-sized pieces as any memory, and its bytes arrive.
TEST_F(ClientBackend, RegisteredBufferIsCopiedForAnOlderDaemon) {
  zfile_file* f = Open("cnv/0");
  const size_t len = kClientShmSize + 2 * kPage;  // 2 pieces
  void* b = nullptr;
  ASSERT_EQ(zfile_buf_alloc(vol_, len, &b), 0) << zfile_last_error();
  auto data = Pattern(len, 9);
  std::memcpy(b, data.data(), len);
  const ClientCopyCounters before = ClientCopyCountersNow();
  ASSERT_EQ(zfile_pwrite(f, b, len, 0), ssize_t(len)) << zfile_last_error();
  const std::vector<uint64_t> expect = {kClientShmSize, 2 * kPage};
  EXPECT_EQ(daemon_.seen().write_lengths, expect);
  std::memset(b, 0, len);
  ASSERT_EQ(zfile_pread(f, b, len, 0), ssize_t(len)) << zfile_last_error();
  EXPECT_EQ(std::memcmp(b, data.data(), len), 0);
  const ClientCopyCounters after = ClientCopyCountersNow();
  EXPECT_EQ(after.copied_bytes - before.copied_bytes, 2 * len);
  EXPECT_EQ(after.zero_copy_bytes, before.zero_copy_bytes);
  EXPECT_EQ(zfile_close(f), 0);
  // Closing the volume waits for the buffer to be freed.
  EXPECT_EQ(zfile_vol_close(vol_), -EBUSY);
  EXPECT_EQ(zfile_buf_free(vol_, b), 0) << zfile_last_error();
  EXPECT_EQ(zfile_buf_free(vol_, b), -EINVAL);
}

TEST_F(ClientBackend, ShortWriteEndsTheCall) {
  daemon_.set_short_write(kPage);
  zfile_file* f = Open("cnv/short");
  auto data = Pattern(kClientShmSize + kPage, 2);
  // The first piece is taken in part: the call returns that and sends no
  // second piece.
  EXPECT_EQ(zfile_pwrite(f, data.data(), data.size(), 0), ssize_t(kPage));
  EXPECT_EQ(daemon_.seen().write_lengths.size(), 1u);
  EXPECT_EQ(zfile_close(f), 0);
}

TEST_F(ClientBackend, LargeAppendLandsContiguouslyAndReportsTheFirstOffset) {
  zfile_file* f = Open("seq/0");
  auto head = Pattern(2 * kPage, 3);
  uint64_t where = 99;
  ASSERT_EQ(zfile_append(f, head.data(), head.size(), &where), ssize_t(head.size()));
  EXPECT_EQ(where, 0u);
  auto big = Pattern(kClientShmSize + 5 * kPage, 4);
  ASSERT_EQ(zfile_append(f, big.data(), big.size(), &where), ssize_t(big.size()))
      << zfile_last_error();
  EXPECT_EQ(where, head.size());
  const std::vector<uint64_t> expect = {2 * kPage, kClientShmSize, 5 * kPage};
  EXPECT_EQ(daemon_.seen().write_lengths, expect);
  std::string want(head.begin(), head.end());
  want.append(big.begin(), big.end());
  EXPECT_EQ(daemon_.file("seq/0"), want);
  struct zfile_stat st;
  ASSERT_EQ(zfile_fstat(f, &st), 0) << zfile_last_error();
  EXPECT_EQ(st.size, want.size());
  EXPECT_EQ(st.type, ZFILE_TYPE_SEQ);
  EXPECT_EQ(st.cond, ZFILE_COND_IMP_OPEN);
  EXPECT_EQ(zfile_close(f), 0);
}

// An append larger than the region is more than one request; another
// appender that lands between them must not end up inside the range the
// call reports. The call stops short instead, at the bytes that are
// contiguous at the offset it reports.
TEST_F(ClientBackend, AppendInterleavedByAnotherAppenderEndsShort) {
  daemon_.set_interloper();
  for (const int flags : {O_RDWR, O_RDWR | O_APPEND}) {
    SCOPED_TRACE(flags);
    const std::string path = (flags & O_APPEND) != 0 ? "seq/1" : "seq/0";
    zfile_file* f = nullptr;
    ASSERT_EQ(zfile_open(vol_, path.c_str(), flags, &f), 0) << zfile_last_error();
    auto data = Pattern(kClientShmSize + 4 * kPage, 6);
    uint64_t where = 99;
    EXPECT_EQ(zfile_append(f, data.data(), data.size(), &where), ssize_t(kClientShmSize))
        << zfile_last_error();
    EXPECT_EQ(where, 0u);
    const std::string file = daemon_.file(path);
    ASSERT_GE(file.size(), kClientShmSize + kPage);
    EXPECT_EQ(file.compare(0, kClientShmSize, data.data(), kClientShmSize), 0);
    EXPECT_EQ(file.substr(kClientShmSize, kPage), std::string(kPage, 'Z'));
    EXPECT_EQ(zfile_close(f), 0);
  }
}

// Two processes' worth of appenders (a volume handle each, so a session
// each) append calls larger than the region to one file at once: whatever
// a call reports must hold its own data only, whole. A short count is
// fine (that is how an interleaving shows); every byte the file has was
// reported by one call or the other.
TEST_F(ClientBackend, ConcurrentLargeAppendsNeverInterleaveInAReportedRange) {
  constexpr size_t kLen = kClientShmSize + kClientShmSize / 2;  // 12 MiB: 2 pieces
  constexpr int kRounds = 4;
  struct Landed {
    uint64_t where;
    size_t len;
    unsigned seed;
  };
  std::mutex mu;
  std::vector<Landed> landed;
  std::atomic<int> failures{0};
  auto appender = [&](unsigned seed) {
    zfile_vol* vol = nullptr;
    if (zfile_vol_open(daemon_.uri().c_str(), nullptr, &vol) != 0) {
      ++failures;
      return;
    }
    zfile_file* f = nullptr;
    if (zfile_open(vol, "seq/0", O_RDWR, &f) != 0) {
      ++failures;
    } else {
      for (int round = 0; round < kRounds; ++round) {
        auto data = Pattern(kLen, seed + 2 * round);
        uint64_t where = 0;
        const ssize_t n = zfile_append(f, data.data(), data.size(), &where);
        if (n <= 0 || size_t(n) > kLen) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        landed.push_back({where, size_t(n), seed + 2 * round});
      }
      if (zfile_close(f) != 0) ++failures;
    }
    if (zfile_vol_close(vol) != 0) ++failures;
  };
  std::thread a(appender, 10), b(appender, 11);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string file = daemon_.file("seq/0");
  size_t reported = 0;
  for (const Landed& l : landed) {
    SCOPED_TRACE("call of seed " + std::to_string(l.seed) + " at " + std::to_string(l.where));
    reported += l.len;
    ASSERT_LE(l.where + l.len, file.size());
    const auto want = Pattern(kLen, l.seed);
    EXPECT_EQ(file.compare(l.where, l.len, want.data(), l.len), 0);
  }
  EXPECT_EQ(reported, file.size());
}

TEST_F(ClientBackend, ViewIsAssembledFromScatteredArenaPages) {
  zfile_file* f = Open("seq/0");
  auto data = Pattern(5 * kPage, 5);
  uint64_t where = 0;
  ASSERT_EQ(zfile_append(f, data.data(), data.size(), &where), ssize_t(data.size()));
  const void* addr = nullptr;
  zfile_view* view = nullptr;
  const uint64_t off = kPage + 100;
  const size_t len = 3 * kPage;
  ASSERT_EQ(zfile_map(f, off, len, &addr, &view), 0) << zfile_last_error();
  EXPECT_EQ(std::memcmp(addr, data.data() + off, len), 0);
  // A view outlives its file, and keeps the volume from closing.
  EXPECT_EQ(zfile_close(f), 0);
  EXPECT_EQ(zfile_vol_close(vol_), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("1 mapped view"), std::string::npos)
      << zfile_last_error();
  EXPECT_EQ(zfile_unmap(view), 0);
  EXPECT_EQ(daemon_.seen().unmaps, 1);
}

TEST_F(ClientBackend, OpenFileKeepsTheVolumeOpen) {
  zfile_file* f = Open("cnv/0");
  EXPECT_EQ(zfile_vol_close(vol_), -EBUSY);
  EXPECT_NE(std::string(zfile_last_error()).find("1 open file"), std::string::npos)
      << zfile_last_error();
  EXPECT_EQ(zfile_close(f), 0);
  EXPECT_EQ(daemon_.seen().closes, 1);
}

TEST_F(ClientBackend, FilesSpreadOverUpToFourSessions) {
  std::vector<zfile_file*> files;
  for (int i = 0; i < 6; ++i) files.push_back(Open("cnv/0"));
  // The volume's first session, then one more per file while the pool
  // has room.
  EXPECT_EQ(daemon_.seen().hellos, int(kMaxClientConnections));
  // Concurrent writers on their own files all get their data through.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (size_t i = 0; i < files.size(); ++i) {
    threads.emplace_back([&, i] {
      auto data = Pattern(4 * kPage, unsigned(i));
      for (int k = 0; k < 50; ++k) {
        if (zfile_pwrite(files[i], data.data(), data.size(), i * 4 * kPage) != ssize_t(data.size()))
          ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (zfile_file* f : files) EXPECT_EQ(zfile_close(f), 0);
}

TEST_F(ClientBackend, DaemonGoingAwayIsEconnresetInWords) {
  zfile_file* f = Open("cnv/0");
  char buf[16] = {};
  daemon_.Kill();
  const ssize_t r = zfile_pwrite(f, buf, sizeof(buf), 0);
  EXPECT_TRUE(r == -ECONNRESET || r == -EPIPE) << r;
  EXPECT_NE(std::string(zfile_last_error()).find("zfiled went away"), std::string::npos)
      << zfile_last_error();
  // Later calls on the dead session say so too.
  EXPECT_EQ(zfile_pread(f, buf, sizeof(buf), 0), -ECONNRESET);
  EXPECT_NE(std::string(zfile_last_error()).find("zfiled went away"), std::string::npos)
      << zfile_last_error();
  // Closing the file and the volume still works: there is nothing left to
  // tell the daemon.
  EXPECT_EQ(zfile_close(f), 0);
}

}  // namespace
}  // namespace zfile
