// Fuzz target for the zfiled wire protocol (SPEC section 10): the frame
// header and message decoders, on inputs that are one frame as it would
// arrive on the socket (24-byte header, then payload).
//
// Built two ways from this one file:
//  - with ZFILE_BUILD_FUZZ=ON and clang, as a libFuzzer binary
//    (fuzz/CMakeLists.txt): `protocol_fuzz -max_total_time=60 CORPUS_DIR`;
//  - always, inside protocol_test, whose driver (tests/protocol/
//    fuzz_driver_test.cc) runs it over a generated corpus so that every CI
//    build executes it, and can write that corpus out as seeds.
//
// Oracles beyond "no crash, no sanitizer report": a refused input is
// refused with EPROTO and a message; an accepted one re-encodes to exactly
// its own bytes (the encoding is canonical), so a decoder that accepts
// something the encoder would write differently, or drops a field, aborts.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "protocol/frame.h"
#include "protocol/messages.h"

namespace {

using namespace zfile::protocol;  // NOLINT(google-build-using-namespace)

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "protocol_fuzz: %s\n", what);
  std::abort();
}

void RequireProtocolError(const zfile::Status& s) {
  Require(s.err() == EPROTO, "a decoder failed with another errno than EPROTO");
  Require(!s.message().empty(), "a decoder failed without a message");
}

// The limits tests/protocol/protocol_samples.cc's samples are valid under,
// so that seeds from there decode; and none at all, as before HELLO.
SessionLimits SessionAfterHello() {
  SessionLimits limits;
  limits.shm_size = 1 << 20;
  limits.cache_page_size = 64 * 1024;
  limits.cache_arena_size = 256 << 20;
  // Registered buffers 1 and 3 (2 is not registered), as in the samples.
  static constexpr uint64_t kBufSizes[] = {1 << 20, 0, 8192};
  limits.buf_sizes = kBufSizes;
  return limits;
}

void RequireSameBytes(const zfile::Result<std::vector<uint8_t>>& again, const FrameHeader& h,
                      std::span<const uint8_t> payload) {
  Require(again.ok(), "a decoded message does not re-encode");
  std::vector<uint8_t> expected(kFrameHeaderSize);
  EncodeFrameHeader(h, expected);
  expected.insert(expected.end(), payload.begin(), payload.end());
  Require(*again == expected, "a decoded message re-encodes to other bytes");
}

void DecodeBothWays(FrameHeader h, std::span<const uint8_t> payload, const SessionLimits& limits) {
  h.reply = false;
  auto request = DecodeRequest(h, payload, limits);
  if (request.ok()) {
    Require(TypeOf(*request) == h.type, "a request decoded as another type");
    RequireSameBytes(EncodeRequest(h.request_id, *request), h, payload);
  } else {
    RequireProtocolError(request.status());
  }
  h.reply = true;
  auto reply = DecodeReply(h, payload, limits);
  if (reply.ok()) {
    Require(TypeOf(*reply) == h.type, "a reply decoded as another type");
    RequireSameBytes(EncodeReply(h.request_id, *reply), h, payload);
  } else {
    RequireProtocolError(reply.status());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  auto header = DecodeFrameHeader(input);
  if (!header.ok()) {
    RequireProtocolError(header.status());
    return 0;
  }
  const auto rest = input.subspan(kFrameHeaderSize);
  // As the header says (a size that disagrees with the rest is refused)...
  DecodeBothWays(*header, rest, SessionAfterHello());
  // ...and with the size made to agree, so that the fuzzer need not guess
  // it to reach the payload decoders.
  if (rest.size() <= kMaxPayloadSize) {
    FrameHeader h = *header;
    h.payload_size = static_cast<uint32_t>(rest.size());
    DecodeBothWays(h, rest, SessionAfterHello());
    DecodeBothWays(h, rest, SessionLimits{});
  }
  return 0;
}
