// libzfile's client mode against the real zfiled (daemon/): starts the
// daemon on a fresh emu device and drives it through the unchanged C API.
// Skipped, saying why, when the daemon binary has not been built.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zoned_device.h"
#include "format/mkfs.h"
#include "zfile/zfile.h"

#ifndef ZFILED_BINARY
#define ZFILED_BINARY ""
#endif

namespace zfile {
namespace {

constexpr const char* kGeometry =
    "size=256M&zone_size=32M&zone_capacity=24M&conv=2&block_size=4096&max_open=6&max_active=8";
constexpr size_t kBlock = 4096;

// $ZFILED_BINARY, else the one this build tree would produce.
std::string DaemonBinary() {
  const char* env = std::getenv("ZFILED_BINARY");
  return env != nullptr && env[0] != '\0' ? env : ZFILED_BINARY;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<char, AlignedFree>;

Buffer Pattern(size_t len, unsigned seed) {
  Buffer b(static_cast<char*>(std::aligned_alloc(kBlock, len)));
  for (size_t i = 0; i < len; ++i) b.get()[i] = static_cast<char>((i * 31 + seed * 11) & 0xff);
  return b;
}

class ZfiledClient : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string binary = DaemonBinary();
    if (binary.empty() || ::access(binary.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "zfiled is not built (looked for '" << binary
                   << "'; set ZFILED_BINARY to use another): client-mode integration not run";
    }
    char tmpl[] = "/tmp/zfile-client-it-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const std::string dev_dir = dir_ + "/dev";
    auto uri = Uri::Parse(std::string("emu:?") + kGeometry);
    ASSERT_TRUE(uri.ok());
    EmulatedGeometry g;
    ASSERT_TRUE(g.ReadFromUri(*uri).ok());
    Status s = CreateEmuDevice(dev_dir, g);
    ASSERT_TRUE(s.ok()) << s.ToString();
    {
      auto dev = OpenDevice("emu:" + dev_dir);
      ASSERT_TRUE(dev.ok()) << dev.status().ToString();
      s = Mkfs(dev->get(), MkfsOptions{});
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    socket_ = dir_ + "/zfiled.sock";
    device_ = "emu:" + dev_dir;
    binary_ = binary;
    StartDaemon();
  }

  // Starts zfiled on the test's device and socket and waits until it
  // accepts connections.
  void StartDaemon() {
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::execl(binary_.c_str(), binary_.c_str(), "--device", device_.c_str(), "--socket",
              socket_.c_str(), "--name", "data", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (Connectable()) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "zfiled exited at start (status " << status << ")";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "zfiled did not listen on " << socket_ << " within 10 s";
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "zfiled status " << status;
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  bool Connectable() const {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socket_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }

  std::string uri() const { return "unix:" + socket_ + "?volume=data"; }

  std::string dir_;
  std::string socket_;
  std::string device_;
  std::string binary_;
  pid_t pid_ = -1;
};

TEST_F(ZfiledClient, ReadWriteAppendStatMapClose) {
  zfile_vol* vol = nullptr;
  ASSERT_EQ(zfile_vol_open(uri().c_str(), nullptr, &vol), 0) << zfile_last_error();
  struct zfile_vol_info info;
  ASSERT_EQ(zfile_vol_info(vol, &info), 0) << zfile_last_error();
  EXPECT_EQ(info.block_size, kBlock);
  EXPECT_EQ(info.nr_cnv_files, 1u);  // zone 0 holds the superblock
  // Conventional file: a random write and its read back.
  zfile_file* cnv = nullptr;
  ASSERT_EQ(zfile_open(vol, "cnv/0", O_RDWR, &cnv), 0) << zfile_last_error();
  auto data = Pattern(3 * kBlock, 1);
  ASSERT_EQ(zfile_pwrite(cnv, data.get(), 3 * kBlock, kBlock), ssize_t(3 * kBlock))
      << zfile_last_error();
  auto back = Pattern(3 * kBlock, 9);
  ASSERT_EQ(zfile_pread(cnv, back.get(), 3 * kBlock, kBlock), ssize_t(3 * kBlock))
      << zfile_last_error();
  EXPECT_EQ(std::memcmp(back.get(), data.get(), 3 * kBlock), 0);
  EXPECT_EQ(zfile_close(cnv), 0);

  // Sequential file: direct appends land at the write pointer, one of them
  // larger than the client's shared-memory region.
  zfile_file* seq = nullptr;
  ASSERT_EQ(zfile_open(vol, "seq/0", O_RDWR | O_DIRECT, &seq), 0) << zfile_last_error();
  uint64_t where = 1;
  auto head = Pattern(2 * kBlock, 2);
  ASSERT_EQ(zfile_append(seq, head.get(), 2 * kBlock, &where), ssize_t(2 * kBlock))
      << zfile_last_error();
  EXPECT_EQ(where, 0u);
  const size_t big_len = 10 << 20;  // more than the 8 MiB region: sent in pieces
  auto big = Pattern(big_len, 3);
  ASSERT_EQ(zfile_append(seq, big.get(), big_len, &where), ssize_t(big_len)) << zfile_last_error();
  EXPECT_EQ(where, 2 * kBlock);
  // A misplaced sequential write is the engine's EINVAL, in words.
  EXPECT_EQ(zfile_pwrite(seq, head.get(), kBlock, 0), -EINVAL);
  EXPECT_STRNE(zfile_last_error(), "");

  struct zfile_stat st;
  ASSERT_EQ(zfile_fstat(seq, &st), 0) << zfile_last_error();
  EXPECT_EQ(st.size, 2 * kBlock + big_len);
  EXPECT_EQ(st.type, ZFILE_TYPE_SEQ);
  ASSERT_EQ(zfile_stat(vol, "seq/0", &st), 0) << zfile_last_error();
  EXPECT_EQ(st.size, 2 * kBlock + big_len);
  EXPECT_EQ(zfile_stat(vol, "seq/99999", &st), -ENOENT);

  // Read back across the two appends.
  auto all = Pattern(2 * kBlock + big_len, 0);
  ASSERT_EQ(zfile_pread(seq, all.get(), 2 * kBlock + big_len, 0), ssize_t(2 * kBlock + big_len))
      << zfile_last_error();
  EXPECT_EQ(std::memcmp(all.get(), head.get(), 2 * kBlock), 0);
  EXPECT_EQ(std::memcmp(all.get() + 2 * kBlock, big.get(), big_len), 0);

  // A mapped view shows the same bytes, from the daemon's cache.
  const void* addr = nullptr;
  zfile_view* view = nullptr;
  const uint64_t off = kBlock + 123;
  const size_t len = 64 * kBlock;
  ASSERT_EQ(zfile_map(seq, off, len, &addr, &view), 0) << zfile_last_error();
  EXPECT_EQ(std::memcmp(addr, all.get() + off, len), 0);
  EXPECT_EQ(zfile_close(seq), 0);
  EXPECT_EQ(zfile_vol_close(vol), -EBUSY);  // the view is still mapped
  EXPECT_EQ(zfile_unmap(view), 0);

  char json[64 * 1024];
  EXPECT_GT(zfile_vol_stats(vol, json, sizeof(json)), 0) << zfile_last_error();
  EXPECT_EQ(zfile_vol_sync(vol), 0) << zfile_last_error();
  EXPECT_EQ(zfile_vol_close(vol), 0) << zfile_last_error();

  // The daemon keeps the volume: a new client sees the data, through the
  // zfiled:NAME form this time.
  ::setenv("ZFILED_SOCKET", socket_.c_str(), 1);
  ASSERT_EQ(zfile_vol_open("zfiled:data", "", &vol), 0) << zfile_last_error();
  ::unsetenv("ZFILED_SOCKET");
  ASSERT_EQ(zfile_stat(vol, "seq/0", &st), 0) << zfile_last_error();
  EXPECT_EQ(st.size, 2 * kBlock + big_len);
  EXPECT_EQ(zfile_vol_close(vol), 0) << zfile_last_error();
}

TEST_F(ZfiledClient, ThreadsAppendToTheirOwnFiles) {
  zfile_vol* vol = nullptr;
  ASSERT_EQ(zfile_vol_open(uri().c_str(), nullptr, &vol), 0) << zfile_last_error();
  constexpr int kThreads = 4;
  constexpr size_t kChunk = 1 << 20;
  constexpr int kChunks = 6;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      zfile_file* f = nullptr;
      const std::string path = "seq/" + std::to_string(t);
      if (zfile_open(vol, path.c_str(), O_RDWR | O_DIRECT, &f) != 0) {
        errors[t] = zfile_last_error();
        return;
      }
      auto data = Pattern(kChunk, unsigned(t));
      for (int k = 0; k < kChunks; ++k) {
        uint64_t where = 0;
        if (zfile_append(f, data.get(), kChunk, &where) != ssize_t(kChunk) || where != k * kChunk) {
          errors[t] = "append " + std::to_string(k) + ": " + zfile_last_error();
          break;
        }
      }
      auto back = Pattern(kChunk, 99);
      for (int k = 0; k < kChunks && errors[t].empty(); ++k) {
        if (zfile_pread(f, back.get(), kChunk, k * kChunk) != ssize_t(kChunk) ||
            std::memcmp(back.get(), data.get(), kChunk) != 0) {
          errors[t] = "read back " + std::to_string(k) + ": " + zfile_last_error();
        }
      }
      zfile_close(f);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  EXPECT_EQ(zfile_vol_close(vol), 0) << zfile_last_error();
}

TEST_F(ZfiledClient, DaemonDeathIsEconnresetInWords) {
  zfile_vol* vol = nullptr;
  ASSERT_EQ(zfile_vol_open(uri().c_str(), nullptr, &vol), 0) << zfile_last_error();
  zfile_file* f = nullptr;
  ASSERT_EQ(zfile_open(vol, "cnv/0", O_RDWR, &f), 0) << zfile_last_error();
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  char buf[kBlock] = {};
  const ssize_t r = zfile_pwrite(f, buf, sizeof(buf), 0);
  EXPECT_TRUE(r == -ECONNRESET || r == -EPIPE) << r << ": " << zfile_last_error();
  EXPECT_NE(std::string(zfile_last_error()).find("zfiled went away"), std::string::npos)
      << zfile_last_error();
  // A volume call that needs a new session finds nobody listening.
  struct zfile_stat st;
  EXPECT_EQ(zfile_stat(vol, "cnv/0", &st), -ECONNREFUSED);
  EXPECT_NE(std::string(zfile_last_error()).find(socket_), std::string::npos) << zfile_last_error();
  EXPECT_EQ(zfile_close(f), 0);

  // Once zfiled is back, the same volume handle carries on with new
  // sessions.
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_EQ(zfile_stat(vol, "cnv/0", &st), 0) << zfile_last_error();
  ASSERT_EQ(zfile_open(vol, "cnv/0", O_RDWR, &f), 0) << zfile_last_error();
  EXPECT_EQ(zfile_pwrite(f, buf, sizeof(buf), 0), ssize_t(sizeof(buf))) << zfile_last_error();
  EXPECT_EQ(zfile_close(f), 0);
  EXPECT_EQ(zfile_vol_close(vol), 0) << zfile_last_error();
}

TEST_F(ZfiledClient, UnknownVolumeIsRefused) {
  zfile_vol* vol = nullptr;
  EXPECT_LT(zfile_vol_open(("unix:" + socket_ + "?volume=nope").c_str(), nullptr, &vol), 0);
  EXPECT_NE(std::string(zfile_last_error()).find("nope"), std::string::npos) << zfile_last_error();
  EXPECT_EQ(vol, nullptr);
}

}  // namespace
}  // namespace zfile
