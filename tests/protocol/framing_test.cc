// Frames over a real Unix socketpair (framing.h): partial reads and writes,
// end of stream at every awkward place, the payload bound, descriptor
// passing, and that no received descriptor outlives its frame. Also the
// shared-memory region's checks (shm_region.h).
//
// Whether a descriptor was closed is observed from outside: the tests send
// the write end of a pipe and close their own copy; the pipe's read end
// sees end-of-file only once every copy of the write end is closed.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/frame.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"
#include "protocol/unique_fd.h"
#include "protocol/wire.h"
#include "protocol_samples.h"

namespace zfile::protocol {
namespace {

using ::testing::HasSubstr;

struct SocketPair {
  UniqueFd a;  // the sender in most tests
  UniqueFd b;  // the receiver
};

SocketPair MakeSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  SocketPair p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  // A reader that waits for bytes that never come fails the test instead
  // of hanging it.
  timeval tv{10, 0};
  ::setsockopt(p.b.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return p;
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// True when every write end of the pipe has been closed (read() sees EOF
// within `timeout_ms`). Closing is synchronous, so a short wait suffices
// to see that one is still open.
bool AllWriteEndsClosed(const UniqueFd& read_end, int timeout_ms = 1000) {
  pollfd pfd{read_end.get(), POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) != 1) return false;
  char c;
  return ::read(read_end.get(), &c, 1) == 0;
}

void SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// sendmsg() of `bytes` with any descriptors at all: what a broken or
// hostile peer could do, which SendFrame would refuse.
void RawSend(int sock, const std::vector<uint8_t>& bytes, const std::vector<int>& fds = {}) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<unsigned char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ASSERT_EQ(::sendmsg(sock, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()))
      << std::strerror(errno);
}

std::vector<uint8_t> Encode(const Request& r, uint64_t id = 1) {
  auto frame = EncodeRequest(id, r);
  if (!frame.ok()) std::abort();
  return std::move(frame).value();
}

std::vector<uint8_t> Encode(const Reply& r, uint64_t id = 1) {
  auto frame = EncodeReply(id, r);
  if (!frame.ok()) std::abort();
  return std::move(frame).value();
}

// The frame that FrameReader hands out, as bytes again.
std::vector<uint8_t> Reassemble(const Frame& frame) {
  std::vector<uint8_t> out(kFrameHeaderSize);
  EncodeFrameHeader(frame.header, out);
  out.insert(out.end(), frame.payload.begin(), frame.payload.end());
  return out;
}

Frame ReadOne(FrameReader& reader) {
  auto frame = reader.Read();
  EXPECT_TRUE(frame.ok()) << frame.status().ToString();
  if (!frame.ok() || !frame->has_value()) {
    ADD_FAILURE() << "no frame";
    return Frame{};
  }
  return std::move(**frame);
}

void ExpectReadError(FrameReader& reader, int err, const std::string& text) {
  auto frame = reader.Read();
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.status().err(), err) << frame.status().ToString();
  EXPECT_THAT(frame.status().message(), HasSubstr(text));
}

std::vector<uint8_t> BigStatsFrame(uint64_t id) {
  VolStatsReply stats;
  stats.json = std::string(kMaxStatsJsonLen, 'j');
  for (size_t i = 0; i < stats.json.size(); i += 97)
    stats.json[i] = static_cast<char>('a' + i % 26);
  return Encode(Reply(stats), id);
}

// --- Reading ----------------------------------------------------------------

TEST(FramingTest, EverySampleCrossesASocketpairIntact) {
  SocketPair p = MakeSocketPair();
  const auto frames = testing::SampleFrames();
  std::thread writer([&] {
    auto memfd = CreateShmRegion(4096);
    ASSERT_TRUE(memfd.ok());
    for (const auto& frame : frames) {
      std::vector<int> fds(frame[kFdCountOffset], memfd->get());
      Status s = SendFrame(p.a.get(), frame, fds);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    ::shutdown(p.a.get(), SHUT_WR);
  });
  FrameReader reader(p.b.get());
  for (const auto& expected : frames) {
    Frame frame = ReadOne(reader);
    EXPECT_EQ(Reassemble(frame), expected);
    EXPECT_EQ(frame.fds.size(), frame.header.fd_count);
    for (const UniqueFd& fd : frame.fds) EXPECT_TRUE(fd.valid());
  }
  auto end = reader.Read();
  ASSERT_TRUE(end.ok()) << end.status().ToString();
  EXPECT_FALSE(end->has_value());
  writer.join();
}

TEST(FramingTest, FramesSentByteByByteFromAnotherThreadArriveWhole) {
  SocketPair p = MakeSocketPair();
  auto memfd = CreateShmRegion(8192);
  ASSERT_TRUE(memfd.ok());
  const std::vector<std::vector<uint8_t>> frames = {
      Encode(Request(HelloRequest{1, "data", 8192}), 1),
      Encode(Request(OpenRequest{"seq/7", O_RDWR}), 2),
      Encode(Request(PwriteRequest{3, 4096, 4096, 0, 4096}), 3),
      BigStatsFrame(4),
  };
  std::thread writer([&] {
    std::mt19937_64 rng(7);
    for (size_t f = 0; f < frames.size(); ++f) {
      const auto& bytes = frames[f];
      const bool small = bytes.size() < 1000;
      size_t sent = 0;
      while (sent < bytes.size()) {
        // Single bytes for small frames, random chunks for the big one.
        const size_t n = small ? 1 : std::min(bytes.size() - sent, 1 + size_t(rng() % 4096));
        std::vector<uint8_t> chunk(bytes.begin() + static_cast<ptrdiff_t>(sent),
                                   bytes.begin() + static_cast<ptrdiff_t>(sent + n));
        if (sent == 0 && f == 0) {
          RawSend(p.a.get(), chunk, {memfd->get()});
        } else {
          RawSend(p.a.get(), chunk);
        }
        sent += n;
        if (small) std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    }
  });
  FrameReader reader(p.b.get());
  for (const auto& expected : frames) {
    Frame frame = ReadOne(reader);
    EXPECT_EQ(Reassemble(frame), expected);
  }
  writer.join();
}

TEST(FramingTest, NonBlockingReaderKeepsPartialFramesAcrossEagain) {
  SocketPair p = MakeSocketPair();
  SetNonBlocking(p.b.get());
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EAGAIN, "no complete frame yet");
  EXPECT_FALSE(reader.mid_frame());

  auto memfd = CreateShmRegion(4096);
  ASSERT_TRUE(memfd.ok());
  const auto frame = Encode(Request(HelloRequest{1, "data", 4096}));
  const std::vector<size_t> cuts = {0, 5, kFrameHeaderSize, kFrameHeaderSize + 3, frame.size()};
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    std::vector<uint8_t> part(frame.begin() + static_cast<ptrdiff_t>(cuts[i]),
                              frame.begin() + static_cast<ptrdiff_t>(cuts[i + 1]));
    if (i == 0) {
      RawSend(p.a.get(), part, {memfd->get()});
    } else {
      RawSend(p.a.get(), part);
    }
    if (i + 2 < cuts.size()) {
      ExpectReadError(reader, EAGAIN, "no complete frame yet");
      EXPECT_TRUE(reader.mid_frame());
    }
  }
  Frame got = ReadOne(reader);
  EXPECT_EQ(Reassemble(got), frame);
  EXPECT_EQ(got.fds.size(), 1u);
  EXPECT_FALSE(reader.mid_frame());
}

TEST(FramingTest, EndOfStreamBetweenFramesIsNotAnError) {
  SocketPair p = MakeSocketPair();
  const auto frame = Encode(Request(VolSyncRequest{}));
  ASSERT_TRUE(SendFrame(p.a.get(), frame).ok());
  ::shutdown(p.a.get(), SHUT_WR);
  FrameReader reader(p.b.get());
  EXPECT_EQ(Reassemble(ReadOne(reader)), frame);
  for (int i = 0; i < 2; ++i) {
    auto end = reader.Read();
    ASSERT_TRUE(end.ok()) << end.status().ToString();
    EXPECT_FALSE(end->has_value());
  }
}

TEST(FramingTest, EndOfStreamInsideAHeaderIsAnError) {
  SocketPair p = MakeSocketPair();
  auto frame = Encode(Request(CloseRequest{3}));
  frame.resize(10);
  RawSend(p.a.get(), frame);
  ::shutdown(p.a.get(), SHUT_WR);
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO,
                  "the peer closed the connection after 10 of the 24 bytes of a frame header");
  // The stream cannot be followed any more: the error sticks.
  ExpectReadError(reader, EPROTO, "after 10 of the 24 bytes");
}

TEST(FramingTest, EndOfStreamInsideAPayloadIsAnError) {
  SocketPair p = MakeSocketPair();
  auto frame = Encode(Request(OpenRequest{"seq/1", 0}));  // 13 payload bytes
  frame.resize(kFrameHeaderSize + 5);
  RawSend(p.a.get(), frame);
  ::shutdown(p.a.get(), SHUT_WR);
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO,
                  "the peer closed the connection after 5 of the 13 payload bytes of OPEN request");
  ExpectReadError(reader, EPROTO, "after 5 of the 13 payload bytes");
}

TEST(FramingTest, OversizePayloadIsRefusedWithoutWaitingForIt) {
  SocketPair p = MakeSocketPair();
  FrameHeader h;
  h.type = MessageType::kPwrite;
  h.payload_size = 1 << 20;
  std::vector<uint8_t> bytes(kFrameHeaderSize);
  EncodeFrameHeader(h, bytes);
  bytes.resize(kFrameHeaderSize + 10, 0xab);  // the start of the "payload"
  RawSend(p.a.get(), bytes);
  // The sender keeps the connection open: a reader that waited for the
  // payload would block here (until SO_RCVTIMEO fails it with EAGAIN).
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO,
                  "PWRITE request announces a payload of 1048576 bytes, more than the 65536");
  // The reader takes in whatever has arrived with one recvmsg() (the 10
  // bytes too, into its fixed buffer: nothing is allocated by the
  // header's say-so), and the refusal sticks without another read.
  ExpectReadError(reader, EPROTO, "more than the 65536");
}

TEST(FramingTest, SomethingThatIsNotZfileIsRefused) {
  SocketPair p = MakeSocketPair();
  const std::string http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  RawSend(p.a.get(), std::vector<uint8_t>(http.begin(), http.end()));
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO, "is not zfile's 0x5250465a");
}

// --- Descriptors ------------------------------------------------------------

TEST(FramingTest, PassedMemfdIsTheSameFileOnBothSides) {
  SocketPair p = MakeSocketPair();
  constexpr uint64_t kSize = 64 * 1024;
  auto memfd = CreateShmRegion(kSize);
  ASSERT_TRUE(memfd.ok()) << memfd.status().ToString();
  ASSERT_TRUE(SendFrame(p.a.get(), Encode(Request(HelloRequest{1, "data", kSize})),
                        std::vector<int>{memfd->get()})
                  .ok());
  FrameReader reader(p.b.get());
  Frame frame = ReadOne(reader);
  ASSERT_EQ(frame.fds.size(), 1u);
  auto request = DecodeRequest(frame.header, frame.payload, SessionLimits{});
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  const auto& hello = std::get<HelloRequest>(*request);
  const int theirs = frame.fds[0].get();
  ASSERT_NE(theirs, memfd->get());
  Status check = CheckShmRegion(theirs, hello.shm_size);
  EXPECT_TRUE(check.ok()) << check.ToString();
  EXPECT_TRUE(::fcntl(theirs, F_GETFD) & FD_CLOEXEC);  // received close-on-exec

  struct stat st1, st2;
  ASSERT_EQ(::fstat(memfd->get(), &st1), 0);
  ASSERT_EQ(::fstat(theirs, &st2), 0);
  EXPECT_EQ(st1.st_ino, st2.st_ino);
  EXPECT_EQ(st1.st_dev, st2.st_dev);

  // Written through one descriptor, read through the other, both ways; and
  // through a shared mapping, as the daemon and the client will use it.
  const char hello_text[] = "written by the client";
  ASSERT_EQ(::pwrite(memfd->get(), hello_text, sizeof(hello_text), 1000),
            static_cast<ssize_t>(sizeof(hello_text)));
  char buf[64] = {};
  ASSERT_EQ(::pread(theirs, buf, sizeof(hello_text), 1000),
            static_cast<ssize_t>(sizeof(hello_text)));
  EXPECT_STREQ(buf, hello_text);
  void* map = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, theirs, 0);
  ASSERT_NE(map, MAP_FAILED);
  std::memcpy(static_cast<char*>(map) + kSize - 8, "daemon!", 8);
  ASSERT_EQ(::pread(memfd->get(), buf, 8, kSize - 8), 8);
  EXPECT_STREQ(buf, "daemon!");
  ::munmap(map, kSize);
}

// The reader takes in several frames with one recvmsg() when they are
// there; each must still get the descriptors sent with it, no more.
TEST(FramingTest, BackToBackFramesKeepTheirOwnDescriptors) {
  SocketPair p = MakeSocketPair();
  std::vector<UniqueFd> regions;
  for (int i = 0; i < 3; ++i) regions.push_back(std::move(CreateShmRegion(4096 * (i + 1)).value()));
  HelloReply with_fd;
  with_fd.shm_size = 4096;
  with_fd.has_cache_fd = true;
  with_fd.cache_page_size = 4096;
  with_fd.cache_arena_size = 4096;
  const std::vector<std::vector<uint8_t>> frames = {
      Encode(Reply(with_fd), 1), Encode(Reply(CloseReply{}), 2), Encode(Reply(CloseReply{}), 3),
      Encode(Reply(with_fd), 4), Encode(Reply(with_fd), 5),      Encode(Reply(CloseReply{}), 6),
  };
  size_t next_region = 0;
  std::vector<int> sent_with;  // index into regions, or -1
  for (const auto& frame : frames) {
    if (frame[kFdCountOffset] == 1) {
      const int fd = regions[next_region].get();
      ASSERT_TRUE(SendFrame(p.a.get(), frame, std::vector<int>{fd}).ok());
      sent_with.push_back(static_cast<int>(next_region++));
    } else {
      ASSERT_TRUE(SendFrame(p.a.get(), frame).ok());
      sent_with.push_back(-1);
    }
  }
  FrameReader reader(p.b.get());
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    Frame got = ReadOne(reader);
    EXPECT_EQ(Reassemble(got), frames[i]);
    if (sent_with[i] < 0) {
      EXPECT_TRUE(got.fds.empty());
      continue;
    }
    ASSERT_EQ(got.fds.size(), 1u);
    struct stat mine, theirs;
    ASSERT_EQ(::fstat(regions[static_cast<size_t>(sent_with[i])].get(), &mine), 0);
    ASSERT_EQ(::fstat(got.fds[0].get(), &theirs), 0);
    EXPECT_EQ(mine.st_ino, theirs.st_ino);
  }
  EXPECT_FALSE(reader.mid_frame());
}

// Descriptors sent along with the tail of one frame and the start of the
// next came with the next frame's first byte: they are the next frame's.
TEST(FramingTest, DescriptorsSentWithAFramesFirstByteAreItsOwn) {
  SocketPair p = MakeSocketPair();
  auto region = CreateShmRegion(4096);
  ASSERT_TRUE(region.ok());
  const auto first = Encode(Request(OpenRequest{"seq/0", 0}), 1);
  const auto second = Encode(Request(HelloRequest{1, "data", 4096}), 2);  // announces 1
  std::vector<uint8_t> head(first.begin(), first.begin() + 10);
  std::vector<uint8_t> rest(first.begin() + 10, first.end());
  rest.insert(rest.end(), second.begin(), second.begin() + 5);
  std::vector<uint8_t> tail(second.begin() + 5, second.end());
  RawSend(p.a.get(), head);
  RawSend(p.a.get(), rest, {region->get()});
  RawSend(p.a.get(), tail);
  FrameReader reader(p.b.get());
  Frame one = ReadOne(reader);
  EXPECT_EQ(Reassemble(one), first);
  EXPECT_TRUE(one.fds.empty());
  Frame two = ReadOne(reader);
  EXPECT_EQ(Reassemble(two), second);
  EXPECT_EQ(two.fds.size(), 1u);
}

TEST(FramingTest, UnannouncedDescriptorIsClosed) {
  SocketPair p = MakeSocketPair();
  Pipe pipe = MakePipe();
  RawSend(p.a.get(), Encode(Request(OpenRequest{"seq/0", 0})), {pipe.write.get()});
  pipe.write.Reset();
  FrameReader reader(p.b.get());
  ExpectReadError(
      reader, EPROTO,
      "OPEN request announced 0 file descriptors but 1 arrived (the extra were closed)");
  EXPECT_TRUE(AllWriteEndsClosed(pipe.read));
}

TEST(FramingTest, DescriptorsBeyondTheLimitAreAllClosed) {
  SocketPair p = MakeSocketPair();
  Pipe pipe = MakePipe();
  auto frame = Encode(Request(OpenRequest{"seq/0", 0}));
  frame[kFdCountOffset] = kMaxFdsPerFrame;  // as many as allowed are announced
  RawSend(p.a.get(), frame, std::vector<int>(kMaxFdsPerFrame + 3, pipe.write.get()));
  pipe.write.Reset();
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO,
                  "more file descriptors arrived than the 4 a frame may carry (they were closed)");
  EXPECT_TRUE(AllWriteEndsClosed(pipe.read));
}

TEST(FramingTest, MissingDescriptorIsAnError) {
  SocketPair p = MakeSocketPair();
  RawSend(p.a.get(), Encode(Request(HelloRequest{1, "data", 4096})));  // announces 1
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO, "HELLO request announced 1 file descriptor but 0 arrived");
}

TEST(FramingTest, DescriptorsOfARefusedHeaderAreClosed) {
  SocketPair p = MakeSocketPair();
  Pipe pipe = MakePipe();
  auto frame = Encode(Request(HelloRequest{1, "data", 4096}));
  frame[kVersionOffset] = 9;
  RawSend(p.a.get(), frame, {pipe.write.get()});
  pipe.write.Reset();
  FrameReader reader(p.b.get());
  ExpectReadError(reader, EPROTO, "protocol version 9 is not supported");
  EXPECT_TRUE(AllWriteEndsClosed(pipe.read));
}

TEST(FramingTest, DescriptorsTheDecoderRefusesAreClosedWithTheFrame) {
  SocketPair p = MakeSocketPair();
  Pipe pipe = MakePipe();
  auto frame = Encode(Request(OpenRequest{"seq/0", 0}));
  frame[kFdCountOffset] = 1;  // consistent framing, but OPEN carries none
  RawSend(p.a.get(), frame, {pipe.write.get()});
  pipe.write.Reset();
  FrameReader reader(p.b.get());
  {
    Frame got = ReadOne(reader);
    ASSERT_EQ(got.fds.size(), 1u);
    auto request = DecodeRequest(got.header, got.payload, SessionLimits{});
    ASSERT_FALSE(request.ok());
    EXPECT_THAT(request.status().message(), HasSubstr("OPEN request must carry 0"));
    EXPECT_FALSE(AllWriteEndsClosed(pipe.read, 10));  // still held by the frame
  }
  EXPECT_TRUE(AllWriteEndsClosed(pipe.read));
}

// --- Writing ----------------------------------------------------------------

TEST(FramingTest, WritersRefuseMalformedFrames) {
  SocketPair p = MakeSocketPair();
  FrameWriter writer(p.a.get());
  const auto hello = Encode(Request(HelloRequest{1, "data", 4096}));
  Status s = writer.Enqueue(hello);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_THAT(s.message(), HasSubstr("announces 1 descriptor, 0 given"));
  s = SendFrame(p.a.get(), hello);
  EXPECT_EQ(s.err(), EINVAL);
  auto longer = Encode(Request(CloseRequest{1}));
  longer.push_back(0);
  s = writer.Enqueue(longer);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_THAT(s.message(), HasSubstr("33 bytes for a frame of 32"));
  s = SendFrame(p.a.get(), std::vector<uint8_t>(10));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_THAT(s.message(), HasSubstr("refusing to send"));
  EXPECT_FALSE(writer.pending());
  // Nothing reached the socket.
  uint8_t byte;
  EXPECT_LT(::recv(p.b.get(), &byte, 1, MSG_DONTWAIT), 0);
}

TEST(FramingTest, NonBlockingWriterQueuesAndResumesInOrder) {
  SocketPair p = MakeSocketPair();
  SetNonBlocking(p.a.get());
  const int small = 4096;
  ::setsockopt(p.a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  Pipe pipe = MakePipe();
  constexpr int kFrames = 24;
  std::vector<std::vector<uint8_t>> sent;
  FrameWriter writer(p.a.get());
  for (int i = 0; i < kFrames; ++i) {
    if (i % 6 == 5) {
      HelloReply hello;
      hello.shm_size = 4096;
      hello.has_cache_fd = true;
      hello.cache_page_size = 4096;
      hello.cache_arena_size = 4096;
      sent.push_back(Encode(Reply(hello), i));
      ASSERT_TRUE(writer.Enqueue(sent.back(), std::vector<int>{pipe.write.get()}).ok());
    } else {
      sent.push_back(BigStatsFrame(i));
      ASSERT_TRUE(writer.Enqueue(sent.back()).ok());
    }
  }
  pipe.write.Reset();  // the writer holds duplicates until they are sent

  Status first = writer.Flush();
  EXPECT_EQ(first.err(), EAGAIN) << first.ToString();  // 1.3 MB do not fit
  EXPECT_TRUE(writer.pending());

  std::thread reader_thread([&] {
    FrameReader reader(p.b.get());
    for (int i = 0; i < kFrames; ++i) {
      Frame frame = ReadOne(reader);
      EXPECT_EQ(Reassemble(frame), sent[i]) << "frame " << i;
      EXPECT_EQ(frame.fds.size(), i % 6 == 5 ? 1u : 0u);
    }
  });
  while (true) {
    Status s = writer.Flush();
    if (s.ok()) break;
    ASSERT_EQ(s.err(), EAGAIN) << s.ToString();
    pollfd pfd{p.a.get(), POLLOUT, 0};
    ::poll(&pfd, 1, 1000);
  }
  EXPECT_FALSE(writer.pending());
  reader_thread.join();
  // Every copy of the pipe's write end went with a frame that is gone now.
  EXPECT_TRUE(AllWriteEndsClosed(pipe.read));
}

TEST(FramingTest, WritingToAGonePeerIsEpipeNotSigpipe) {
  SocketPair p = MakeSocketPair();
  p.b.Reset();
  const auto frame = Encode(Request(VolInfoRequest{}));
  Status s = SendFrame(p.a.get(), frame);
  EXPECT_EQ(s.err(), EPIPE) << s.ToString();
  FrameWriter writer(p.a.get());
  ASSERT_TRUE(writer.Enqueue(frame).ok());
  s = writer.Flush();
  EXPECT_EQ(s.err(), EPIPE);
  EXPECT_THAT(s.message(), HasSubstr("the peer has closed the connection"));
  EXPECT_EQ(writer.Flush().err(), EPIPE);  // sticks
}

// --- Shared-memory region ---------------------------------------------------

TEST(ShmRegionTest, CreatedRegionsPassTheCheckAndAreSealed) {
  auto fd = CreateShmRegion(1 << 20);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_TRUE(CheckShmRegion(fd->get(), 1 << 20).ok());
  EXPECT_TRUE(CheckShmRegion(fd->get(), 4096).ok());
  EXPECT_NE(::ftruncate(fd->get(), 4096), 0);     // cannot shrink
  EXPECT_NE(::ftruncate(fd->get(), 2 << 20), 0);  // nor grow
  Status s = CheckShmRegion(fd->get(), 2 << 20);
  EXPECT_EQ(s.err(), EPROTO);
  EXPECT_THAT(s.message(), HasSubstr("is 1048576 bytes long, less than the 2097152 announced"));
}

TEST(ShmRegionTest, CreateRefusesBadSizes) {
  for (uint64_t size : {uint64_t{0}, uint64_t{4095}, uint64_t{6000}, kMaxShmSize + 4096}) {
    auto fd = CreateShmRegion(size);
    ASSERT_FALSE(fd.ok());
    EXPECT_EQ(fd.status().err(), EINVAL);
  }
}

TEST(ShmRegionTest, CheckRefusesDescriptorsThatCouldHurtTheDaemon) {
  auto expect_refused = [](int fd, const std::string& text) {
    Status s = CheckShmRegion(fd, 4096);
    EXPECT_EQ(s.err(), EPROTO) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(text));
  };
  Pipe pipe = MakePipe();
  expect_refused(pipe.write.get(), "is not a memfd (not even a regular file)");

  UniqueFd unsealed(::memfd_create("t", MFD_CLOEXEC));  // sealing not allowed
  ASSERT_EQ(::ftruncate(unsealed.get(), 4096), 0);
  expect_refused(unsealed.get(), "is not sealed against shrinking");
  UniqueFd sealable(::memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(sealable.get(), 4096), 0);
  expect_refused(sealable.get(), "is not sealed against shrinking");

  UniqueFd write_sealed(::memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(write_sealed.get(), 4096), 0);
  ASSERT_EQ(::fcntl(write_sealed.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE), 0);
  expect_refused(write_sealed.get(), "is sealed against writes");

  auto good = CreateShmRegion(4096);
  ASSERT_TRUE(good.ok());
  const std::string proc = "/proc/self/fd/" + std::to_string(good->get());
  UniqueFd read_only(::open(proc.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(read_only.valid());
  expect_refused(read_only.get(), "is not open for reading and writing");

  char path[] = "/tmp/zfile-shm-test-XXXXXX";
  UniqueFd file(::mkstemp(path));
  ASSERT_TRUE(file.valid());
  ::unlink(path);
  ASSERT_EQ(::ftruncate(file.get(), 4096), 0);
  expect_refused(file.get(), "the shared-memory descriptor");
}

}  // namespace
}  // namespace zfile::protocol
