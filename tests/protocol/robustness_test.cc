// Randomized robustness: 100000 mutated and random byte strings go through
// the header and message decoders (and a few hundred through a real
// socket into FrameReader). Nothing may crash or trip ASan/UBSan; every
// input either decodes, in which case it re-encodes to exactly the same
// bytes, or fails with EPROTO and a message.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/frame.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/unique_fd.h"
#include "protocol_samples.h"

namespace zfile::protocol {
namespace {

struct Tally {
  size_t header_errors = 0;
  size_t decode_errors = 0;
  size_t decoded = 0;
};

// Checks the contract on one outcome; returns false (after a failure) to
// stop the run early rather than flood the log.
bool CheckError(const Status& s, const std::vector<uint8_t>& input) {
  if (s.err() == EPROTO && !s.message().empty() && s.message().size() < 1024) return true;
  ADD_FAILURE() << "input of " << input.size() << " bytes: " << s.ToString();
  return false;
}

template <typename Message>
bool CheckDecoded(const Result<std::vector<uint8_t>>& again, const FrameHeader& h,
                  std::span<const uint8_t> payload, const std::vector<uint8_t>& input) {
  if (!again.ok()) {
    ADD_FAILURE() << h.Name() << " decoded but does not re-encode: " << again.status().ToString();
    return false;
  }
  std::vector<uint8_t> expected(kFrameHeaderSize);
  EncodeFrameHeader(h, expected);
  expected.insert(expected.end(), payload.begin(), payload.end());
  if (*again != expected) {
    ADD_FAILURE() << h.Name() << " of " << input.size()
                  << " bytes decoded but re-encodes differently";
    return false;
  }
  return true;
}

// Both directions, so that reply bytes also meet the request decoders.
bool Exercise(const std::vector<uint8_t>& input, const SessionLimits& limits, Tally& tally) {
  auto header = DecodeFrameHeader(input);
  if (!header.ok()) {
    ++tally.header_errors;
    return CheckError(header.status(), input);
  }
  const auto payload = std::span<const uint8_t>(input).subspan(kFrameHeaderSize);
  FrameHeader h = *header;
  for (bool reply : {h.reply, !h.reply}) {
    h.reply = reply;
    if (reply) {
      auto m = DecodeReply(h, payload, limits);
      if (!m.ok()) {
        ++tally.decode_errors;
        if (!CheckError(m.status(), input)) return false;
      } else {
        ++tally.decoded;
        if (!CheckDecoded<Reply>(EncodeReply(h.request_id, *m), h, payload, input)) return false;
      }
    } else {
      auto m = DecodeRequest(h, payload, limits);
      if (!m.ok()) {
        ++tally.decode_errors;
        if (!CheckError(m.status(), input)) return false;
      } else {
        ++tally.decoded;
        if (!CheckDecoded<Request>(EncodeRequest(h.request_id, *m), h, payload, input)) {
          return false;
        }
      }
    }
  }
  return true;
}

// 100000 inputs, in the default build and under ASan/UBSan, which is where
// memory errors show. TSan (several times slower here) looks for data races,
// and this loop has one thread: it runs a quarter.
#if defined(__SANITIZE_THREAD__)
constexpr int kInputs = 25000;
#else
constexpr int kInputs = 100000;
#endif

TEST(RobustnessTest, HundredThousandMutatedAndRandomInputs) {
  const auto samples = testing::SampleFrames();
  std::mt19937_64 rng(20240601);
  Tally tally;
  for (int i = 0; i < kInputs; ++i) {
    std::vector<uint8_t> input;
    if (rng() % 10 < 7) {
      input = testing::PickSample(samples, rng);
      testing::Mutate(input, rng);
    } else {
      input = testing::RandomFrame(rng);
    }
    const SessionLimits limits = i % 4 == 0 ? SessionLimits{} : testing::SampleLimits();
    if (!Exercise(input, limits, tally)) return;
  }
  // The inputs reach every stage: refused headers, refused payloads, and
  // mutations that still decode (e.g. a changed integer field).
  EXPECT_GT(tally.header_errors, size_t{kInputs} / 100);
  EXPECT_GT(tally.decode_errors, size_t{kInputs} / 10);
  EXPECT_GT(tally.decoded, size_t{kInputs} / 100);
  std::printf("[ tally    ] header errors %zu, payload errors %zu, decoded %zu\n",
              tally.header_errors, tally.decode_errors, tally.decoded);
}

// Hostile byte streams through a socket: the reader must end every one with
// frames, an EPROTO, or a clean end of stream, and never hang or crash.
TEST(RobustnessTest, FrameReaderSurvivesHostileStreams) {
  const auto samples = testing::SampleFrames();
  std::mt19937_64 rng(99);
  size_t frames = 0, errors = 0;
  for (int i = 0; i < 400; ++i) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    UniqueFd writer(fds[0]), reader_fd(fds[1]);
    // Two frames back to back, each mutated; small enough for the socket
    // buffer, so no writer thread is needed.
    std::vector<uint8_t> stream;
    for (int k = 0; k < 2; ++k) {
      std::vector<uint8_t> frame = testing::PickSample(samples, rng);
      testing::Mutate(frame, rng);
      stream.insert(stream.end(), frame.begin(), frame.end());
    }
    ASSERT_EQ(::send(writer.get(), stream.data(), stream.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(stream.size()));
    ::shutdown(writer.get(), SHUT_WR);
    FrameReader reader(reader_fd.get());
    for (int reads = 0;; ++reads) {
      ASSERT_LT(reads, 10) << "the reader does not come to an end";
      auto frame = reader.Read();
      if (!frame.ok()) {
        EXPECT_EQ(frame.status().err(), EPROTO) << frame.status().ToString();
        ++errors;
        break;
      }
      if (!frame->has_value()) break;
      ++frames;
      const Frame& f = **frame;
      EXPECT_EQ(f.payload.size(), f.header.payload_size);
      EXPECT_EQ(f.fds.size(), f.header.fd_count);
    }
  }
  EXPECT_GT(frames, 0u);
  EXPECT_GT(errors, 0u);
}

}  // namespace
}  // namespace zfile::protocol
