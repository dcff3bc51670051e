// The message codec (messages.h): every type round-trips, and every decoder
// refuses, with EPROTO and a message in words, what a lying or broken peer
// could send.
#include <fcntl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/doorbell.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/wire.h"
#include "protocol_samples.h"

namespace zfile::protocol {
namespace {

using ::testing::HasSubstr;
using testing::SampleLimits;

std::span<const uint8_t> PayloadOf(const std::vector<uint8_t>& frame) {
  return std::span<const uint8_t>(frame).subspan(kFrameHeaderSize);
}

// Decodes a whole frame as the header says (request or reply).
Result<Request> DecodeRequestFrame(const std::vector<uint8_t>& frame,
                                   const SessionLimits& limits = SampleLimits()) {
  ZF_ASSIGN_OR_RETURN(FrameHeader h, DecodeFrameHeader(frame));
  return DecodeRequest(h, PayloadOf(frame), limits);
}
Result<Reply> DecodeReplyFrame(const std::vector<uint8_t>& frame,
                               const SessionLimits& limits = SampleLimits()) {
  ZF_ASSIGN_OR_RETURN(FrameHeader h, DecodeFrameHeader(frame));
  return DecodeReply(h, PayloadOf(frame), limits);
}
// OK or the error of decoding `frame` in the direction its header says.
Status DecodeEither(const std::vector<uint8_t>& frame,
                    const SessionLimits& limits = SampleLimits()) {
  auto h = DecodeFrameHeader(frame);
  if (!h.ok()) return h.status();
  if (h->reply) return DecodeReplyFrame(frame, limits).status();
  return DecodeRequestFrame(frame, limits).status();
}

// A frame written field by field, for payloads the encoders would refuse.
std::vector<uint8_t> Craft(MessageType type, bool reply,
                           const std::function<void(WireWriter&)>& body, uint8_t fd_count = 0) {
  std::vector<uint8_t> out(kFrameHeaderSize);
  WireWriter w(&out);
  body(w);
  FrameHeader h;
  h.type = type;
  h.reply = reply;
  h.request_id = 1;
  h.payload_size = static_cast<uint32_t>(out.size() - kFrameHeaderSize);
  h.fd_count = fd_count;
  EncodeFrameHeader(h, out);
  return out;
}

// A successful reply prefix: result and message.
void Ok(WireWriter& w, int64_t result = 0) {
  w.I64(result);
  w.String("");
}

void WriteVolumeInfo(WireWriter& w, bool read_only_byte_2 = false, size_t label_len = 4,
                     size_t uuid_len = 36) {
  for (int i = 0; i < 7; ++i) w.U32(static_cast<uint32_t>(i));
  w.U8(read_only_byte_2 ? 2 : 0);
  w.U64(1 << 20);
  w.U64(1 << 20);
  w.String(std::string(label_len, 'l'));
  w.String(std::string(uuid_len, 'u'));
}

void ExpectProtocolError(const Status& s, const std::string& text) {
  EXPECT_EQ(s.err(), EPROTO) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr(text));
}

// --- Round trips ------------------------------------------------------------

TEST(MessagesTest, EveryRequestTypeRoundTrips) {
  std::set<MessageType> seen;
  uint64_t id = 100;
  for (const Request& request : testing::SampleRequests()) {
    SCOPED_TRACE(std::string(MessageTypeName(TypeOf(request))));
    auto frame = EncodeRequest(id, request);
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    auto header = DecodeFrameHeader(*frame);
    ASSERT_TRUE(header.ok()) << header.status().ToString();
    EXPECT_EQ(header->type, TypeOf(request));
    EXPECT_FALSE(header->reply);
    EXPECT_EQ(header->request_id, id);
    EXPECT_EQ(header->payload_size, frame->size() - kFrameHeaderSize);
    EXPECT_EQ(header->fd_count, FdCount(request));
    auto decoded = DecodeRequest(*header, PayloadOf(*frame), SampleLimits());
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_TRUE(*decoded == request);
    // Canonical: what decodes re-encodes to the same bytes.
    auto again = EncodeRequest(id, *decoded);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *frame);
    seen.insert(TypeOf(request));
    ++id;
  }
  EXPECT_EQ(seen.size(), size_t{kLastMessageType});
}

TEST(MessagesTest, EveryReplyTypeRoundTripsInSuccessAndFailure) {
  std::set<MessageType> succeeded, failed;
  uint64_t id = UINT64_MAX;
  for (const Reply& reply : testing::SampleReplies()) {
    SCOPED_TRACE(std::string(MessageTypeName(TypeOf(reply))));
    auto frame = EncodeReply(id, reply);
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    auto header = DecodeFrameHeader(*frame);
    ASSERT_TRUE(header.ok()) << header.status().ToString();
    EXPECT_EQ(header->type, TypeOf(reply));
    EXPECT_TRUE(header->reply);
    EXPECT_EQ(header->request_id, id);
    EXPECT_EQ(header->fd_count, FdCount(reply));
    auto decoded = DecodeReply(*header, PayloadOf(*frame), SampleLimits());
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_TRUE(*decoded == reply);
    auto again = EncodeReply(id, *decoded);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *frame);
    (ResultOf(reply).result < 0 ? failed : succeeded).insert(TypeOf(reply));
    --id;
  }
  EXPECT_EQ(succeeded.size(), size_t{kLastMessageType});
  EXPECT_EQ(failed.size(), size_t{kLastMessageType});
}

TEST(MessagesTest, FailedRepliesCarryNoBodyAndNoDescriptor) {
  HelloReply hello = ErrorReply<HelloReply>(Status(ENOENT, "no such volume"));
  hello.has_cache_fd = true;  // ignored: a failed reply has no body
  hello.cache_page_size = 4096;
  auto frame = EncodeReply(1, hello);
  ASSERT_TRUE(frame.ok());
  // result (8) + message length (4) + "no such volume" (14).
  EXPECT_EQ(frame->size(), kFrameHeaderSize + 8 + 4 + 14);
  EXPECT_EQ((*frame)[kFdCountOffset], 0);
  auto decoded = DecodeReplyFrame(*frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& got = std::get<HelloReply>(*decoded);
  EXPECT_EQ(got.result, -ENOENT);
  EXPECT_EQ(got.message, "no such volume");
  EXPECT_FALSE(got.has_cache_fd);
  EXPECT_EQ(got.cache_page_size, 0u);
}

TEST(MessagesTest, ErrorReplyAndStatusOf) {
  auto reply = ErrorReply<OpenReply>(Status(EACCES, "seq/3: permission denied"));
  EXPECT_EQ(reply.result, -EACCES);
  Status s = StatusOf(reply);
  EXPECT_EQ(s.err(), EACCES);
  EXPECT_EQ(s.message(), "seq/3: permission denied");
  reply.message.clear();
  EXPECT_EQ(StatusOf(reply).message(), std::strerror(EACCES));
  reply.result = 5;
  EXPECT_TRUE(StatusOf(reply).ok());
  Reply variant = reply;
  EXPECT_EQ(ResultOf(variant).result, 5);
  EXPECT_EQ(TypeOf(variant), MessageType::kOpen);
}

TEST(MessagesTest, DescriptorCounts) {
  EXPECT_EQ(FdCount(Request(HelloRequest{})), 1u);
  EXPECT_EQ(FdCount(Request(OpenRequest{})), 0u);
  HelloReply hello;
  EXPECT_EQ(FdCount(Reply(hello)), 0u);
  hello.has_cache_fd = true;
  EXPECT_EQ(FdCount(Reply(hello)), 1u);
  hello.result = -EIO;
  EXPECT_EQ(FdCount(Reply(hello)), 0u);
  EXPECT_EQ(FdCount(Reply(MapReply{})), 0u);
}

// --- Malformed payloads -----------------------------------------------------

TEST(MessagesTest, EveryTruncationOfEverySampleIsRefused) {
  size_t checked = 0;
  for (const auto& frame : testing::SampleFrames()) {
    auto header = DecodeFrameHeader(frame);
    ASSERT_TRUE(header.ok());
    const auto payload = PayloadOf(frame);
    // The header is adjusted rather than the frame copied. Every cut of the
    // first and last 4 KiB of a payload; in the uniform middle of the two
    // big samples (a 56 KiB JSON string, 3072 extents), every 13th.
    for (size_t len = 0; len < payload.size(); ++len) {
      if (len > 4096 && len + 4096 < payload.size() && len % 13 != 0) continue;
      FrameHeader h = *header;
      h.payload_size = static_cast<uint32_t>(len);
      const Status s = h.reply ? DecodeReply(h, payload.first(len), SampleLimits()).status()
                               : DecodeRequest(h, payload.first(len), SampleLimits()).status();
      if (s.err() != EPROTO || s.message().find("truncated") == std::string::npos) {
        ADD_FAILURE() << h.Name() << " of " << payload.size() << " payload bytes cut to " << len
                      << ": " << s.ToString();
        return;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 30000u);
}

TEST(MessagesTest, TrailingGarbageIsRefused) {
  for (const auto& frame : testing::SampleFrames()) {
    for (size_t extra : {1, 7, 100}) {
      std::vector<uint8_t> longer = frame;
      longer.resize(frame.size() + extra, 0);
      testing::FixPayloadSize(longer);
      if (longer.size() - kFrameHeaderSize > kMaxPayloadSize) continue;
      ExpectProtocolError(DecodeEither(longer),
                          std::to_string(extra) + " bytes of trailing garbage");
    }
  }
}

TEST(MessagesTest, DirectionAndPayloadSizeMustMatchTheHeader) {
  auto request = EncodeRequest(1, OpenRequest{"seq/0", O_RDONLY});
  ASSERT_TRUE(request.ok());
  ExpectProtocolError(DecodeReplyFrame(*request).status(),
                      "OPEN request where a reply was expected");
  auto reply = EncodeReply(1, OpenReply{});
  ASSERT_TRUE(reply.ok());
  ExpectProtocolError(DecodeRequestFrame(*reply).status(),
                      "OPEN reply where a request was expected");

  auto header = DecodeFrameHeader(*request);
  ASSERT_TRUE(header.ok());
  ExpectProtocolError(DecodeRequest(*header, PayloadOf(*request).first(3), SampleLimits()).status(),
                      "the header announces 13 payload bytes, 3 were given");
  FrameHeader bogus = *header;
  bogus.type = static_cast<MessageType>(99);
  ExpectProtocolError(DecodeRequest(bogus, PayloadOf(*request), SampleLimits()).status(),
                      "unknown message type 99");
}

TEST(MessagesTest, DescriptorCountMustMatchTheMessage) {
  auto hello = EncodeRequest(1, HelloRequest{1, "data", 1 << 20});
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ((*hello)[kFdCountOffset], 1);
  (*hello)[kFdCountOffset] = 0;
  ExpectProtocolError(DecodeRequestFrame(*hello).status(),
                      "HELLO request must carry 1 file descriptor(s), it carries 0");

  auto open = EncodeRequest(1, OpenRequest{"seq/0", O_RDONLY});
  ASSERT_TRUE(open.ok());
  (*open)[kFdCountOffset] = 1;
  ExpectProtocolError(DecodeRequestFrame(*open).status(),
                      "OPEN request must carry 0 file descriptor(s), it carries 1");

  HelloReply reply;
  reply.shm_size = 1 << 20;
  reply.has_cache_fd = true;
  reply.cache_page_size = 4096;
  reply.cache_arena_size = 1 << 20;
  auto frame = EncodeReply(1, reply);
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ((*frame)[kFdCountOffset], 1);
  (*frame)[kFdCountOffset] = 0;
  ExpectProtocolError(DecodeReplyFrame(*frame).status(),
                      "HELLO reply must carry 1 file descriptor(s), it carries 0");
  auto failed = EncodeReply(1, ErrorReply<HelloReply>(Status(EIO, "x")));
  ASSERT_TRUE(failed.ok());
  (*failed)[kFdCountOffset] = 1;
  ExpectProtocolError(DecodeReplyFrame(*failed).status(), "must carry 0 file descriptor(s)");
}

TEST(MessagesTest, StringsOverTheirBoundAreRefused) {
  auto path = [](size_t len) {
    return Craft(MessageType::kOpen, false, [len](WireWriter& w) {
      w.String(std::string(len, 'p'));
      w.I32(0);
    });
  };
  EXPECT_TRUE(DecodeRequestFrame(path(kMaxPathLen)).ok());
  ExpectProtocolError(DecodeRequestFrame(path(kMaxPathLen + 1)).status(),
                      "OPEN request: the path is 4097 bytes long, more than the 4096 allowed");
  for (MessageType t : {MessageType::kStat, MessageType::kChmod, MessageType::kChown}) {
    auto frame = Craft(t, false, [](WireWriter& w) {
      w.String(std::string(kMaxPathLen + 1, 'p'));
      w.U64(0);  // mode, or uid and gid
    });
    ExpectProtocolError(DecodeRequestFrame(frame).status(), "path is 4097 bytes long");
  }
  auto volume = Craft(
      MessageType::kHello, false,
      [](WireWriter& w) {
        w.U32(1);
        w.String(std::string(kMaxVolumeNameLen + 1, 'v'));
        w.U64(1 << 20);
      },
      1);
  ExpectProtocolError(DecodeRequestFrame(volume).status(),
                      "volume name is 256 bytes long, more than the 255 allowed");
  auto message = Craft(MessageType::kClose, true, [](WireWriter& w) {
    w.I64(-EIO);
    w.String(std::string(kMaxMessageLen + 1, 'm'));
  });
  ExpectProtocolError(DecodeReplyFrame(message).status(),
                      "CLOSE reply: the message is 4097 bytes long, more than the 4096 allowed");
  auto json = Craft(MessageType::kVolStats, true, [](WireWriter& w) {
    Ok(w);
    w.String(std::string(kMaxStatsJsonLen + 1, ' '));
  });
  ExpectProtocolError(DecodeReplyFrame(json).status(), "statistics JSON is 57345 bytes long");
  auto label = Craft(MessageType::kVolInfo, true, [](WireWriter& w) {
    Ok(w);
    WriteVolumeInfo(w, false, kMaxLabelLen + 1);
  });
  ExpectProtocolError(DecodeReplyFrame(label).status(), "volume label is 65 bytes long");
  auto uuid = Craft(MessageType::kVolInfo, true, [](WireWriter& w) {
    Ok(w);
    WriteVolumeInfo(w, false, 4, kMaxUuidLen + 1);
  });
  ExpectProtocolError(DecodeReplyFrame(uuid).status(), "volume UUID is 37 bytes long");
}

TEST(MessagesTest, AbsurdLengthsAreRefusedBeforeAnythingIsAllocated) {
  auto path = Craft(MessageType::kStat, false, [](WireWriter& w) { w.U32(0xffffffff); });
  ExpectProtocolError(DecodeRequestFrame(path).status(), "path is 4294967295 bytes long");
  auto extents = Craft(MessageType::kMap, true, [](WireWriter& w) {
    Ok(w);
    w.U64(1);
    w.U64(0);
    w.U32(0xffffffff);
  });
  ExpectProtocolError(DecodeReplyFrame(extents).status(),
                      "extent count 4294967295 is not from 1 to 3072");
  auto few = Craft(MessageType::kMap, true, [](WireWriter& w) {
    Ok(w);
    w.U64(1);
    w.U64(0);
    w.U32(3000);
    w.U64(0);
    w.U64(65536);
  });
  ExpectProtocolError(DecodeReplyFrame(few).status(),
                      "truncated: 3000 extents need 48000 bytes, 16 remain");
}

TEST(MessagesTest, EncodersRefuseFieldsOutOfBounds) {
  auto s = EncodeRequest(1, OpenRequest{std::string(kMaxPathLen + 1, 'p'), 0}).status();
  EXPECT_EQ(s.err(), ENAMETOOLONG);
  EXPECT_THAT(s.message(), HasSubstr("path is 4097 bytes long"));
  EXPECT_EQ(EncodeRequest(1, StatRequest{std::string(kMaxPathLen + 1, 'p')}).status().err(),
            ENAMETOOLONG);
  EXPECT_EQ(EncodeRequest(1, ChmodRequest{std::string(kMaxPathLen + 1, 'p'), 0}).status().err(),
            ENAMETOOLONG);
  EXPECT_EQ(EncodeRequest(1, ChownRequest{std::string(kMaxPathLen + 1, 'p'), 0, 0}).status().err(),
            ENAMETOOLONG);
  EXPECT_EQ(EncodeRequest(1, HelloRequest{1, std::string(256, 'v'), 4096}).status().err(),
            ENAMETOOLONG);
  s = EncodeRequest(1, OpenRequest{std::string("seq/1\0x", 7), 0}).status();
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_THAT(s.message(), HasSubstr("path contains a NUL byte"));

  VolInfoReply info;
  info.volume.label = std::string(kMaxLabelLen + 1, 'l');
  EXPECT_EQ(EncodeReply(1, info).status().err(), EINVAL);
  VolStatsReply stats;
  stats.json = std::string(kMaxStatsJsonLen + 1, ' ');
  EXPECT_EQ(EncodeReply(1, stats).status().err(), EMSGSIZE);
  MapReply map;
  map.extents.resize(kMaxMapExtents + 1, MapExtent{0, 65536});
  s = EncodeReply(1, map).status();
  EXPECT_EQ(s.err(), EMSGSIZE);
  EXPECT_THAT(s.message(), HasSubstr("3073 runs"));
  CloseReply bad;
  bad.result = -kMaxErrno - 1;
  EXPECT_EQ(EncodeReply(1, bad).status().err(), EINVAL);
}

TEST(MessagesTest, ReplyMessagesAreCutNotRefused) {
  auto round_trip = [](std::string message) {
    CloseReply reply;
    reply.result = -EIO;
    reply.message = std::move(message);
    auto frame = EncodeReply(1, reply);
    EXPECT_TRUE(frame.ok());
    auto decoded = DecodeReplyFrame(*frame);
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    return ResultOf(*decoded).message;
  };
  EXPECT_EQ(round_trip(std::string(5000, 'm')), std::string(kMaxMessageLen, 'm'));
  // "é" is 2 bytes; one that straddles the bound goes whole.
  const std::string accent = "\xc3\xa9";
  EXPECT_EQ(round_trip(std::string(kMaxMessageLen - 1, 'a') + accent + "zzz"),
            std::string(kMaxMessageLen - 1, 'a'));
  EXPECT_EQ(round_trip(std::string(kMaxMessageLen - 2, 'a') + accent + "zzz"),
            std::string(kMaxMessageLen - 2, 'a') + accent);
  EXPECT_EQ(round_trip(std::string("before\0after", 12)), "before");
}

TEST(MessagesTest, ReplyResultMustBeACountOrAnErrno) {
  for (int64_t result : {-kMaxErrno - 1, int64_t{INT64_MIN}, int64_t{-1000000}}) {
    auto frame = Craft(MessageType::kFsync, true, [result](WireWriter& w) {
      w.I64(result);
      w.String("");
    });
    ExpectProtocolError(
        DecodeReplyFrame(frame).status(),
        "result " + std::to_string(result) + " is neither a count nor a negative errno");
  }
  auto max = Craft(MessageType::kFsync, true, [](WireWriter& w) { Ok(w, INT64_MAX); });
  EXPECT_TRUE(DecodeReplyFrame(max).ok());
}

// --- Shared-memory ranges ---------------------------------------------------

Status DecodeIo(MessageType type, uint64_t shm_offset, uint64_t length,
                const SessionLimits& limits = SampleLimits()) {
  std::vector<uint8_t> frame;
  if (type == MessageType::kAppend) {
    frame = Craft(type, false, [&](WireWriter& w) {
      w.U64(1);
      w.U64(length);
      w.U64(shm_offset);
    });
  } else {
    frame = Craft(type, false, [&](WireWriter& w) {
      w.U64(1);
      w.U64(0);
      w.U64(length);
      w.I32(0);
      w.U64(shm_offset);
    });
  }
  return DecodeRequestFrame(frame, limits).status();
}

TEST(MessagesTest, SharedMemoryRangesMustLieInTheRegion) {
  const uint64_t shm = SampleLimits().shm_size;
  for (MessageType t : {MessageType::kPread, MessageType::kPwrite, MessageType::kAppend}) {
    SCOPED_TRACE(std::string(MessageTypeName(t)));
    EXPECT_TRUE(DecodeIo(t, 0, shm).ok());
    EXPECT_TRUE(DecodeIo(t, shm - 1, 1).ok());
    EXPECT_TRUE(DecodeIo(t, shm, 0).ok());
    ExpectProtocolError(DecodeIo(t, shm, 1),
                        std::string(MessageTypeName(t)) +
                            " request: shared-memory range [1048576, +1) is not inside the "
                            "1048576-byte region");
    ExpectProtocolError(DecodeIo(t, 0, shm + 1), "range [0, +1048577) is not inside");
    ExpectProtocolError(DecodeIo(t, shm + 1, 0), "range [1048577, +0) is not inside");
    ExpectProtocolError(DecodeIo(t, 4096, shm), "is not inside");
    // offset + length wraps around 2^64 and would look small.
    ExpectProtocolError(DecodeIo(t, kBufOffsetMask, 2), "not inside");
    ExpectProtocolError(DecodeIo(t, 4096, UINT64_MAX - 4095), "(offset + length overflows)");
    ExpectProtocolError(DecodeIo(t, kBufOffsetMask, UINT64_MAX), "overflows");
    // Offsets with any of the top 16 bits set name registered buffers
    // (version 3); there are none in this session's limits but 1 and 3.
    ExpectProtocolError(DecodeIo(t, UINT64_MAX, 2), "names buffer 65535");
    ExpectProtocolError(DecodeIo(t, UINT64_MAX, UINT64_MAX), "names buffer 65535");
    // Before HELLO there is no region at all.
    SessionLimits none;
    EXPECT_TRUE(DecodeIo(t, 0, 0, none).ok());
    ExpectProtocolError(DecodeIo(t, 0, 1, none), "(no region was passed at HELLO)");
  }
}

TEST(MessagesTest, RegisteredBufferRangesMustLieInTheirBuffer) {
  const uint64_t kShm = SampleLimits().shm_size;
  // SampleLimits: buffer 1 of 1 MiB, 2 not registered, 3 of 8 KiB.
  for (MessageType t : {MessageType::kPread, MessageType::kPwrite, MessageType::kAppend}) {
    SCOPED_TRACE(std::string(MessageTypeName(t)));
    EXPECT_TRUE(DecodeIo(t, BufShmOffset(1, 0), kShm).ok());
    EXPECT_TRUE(DecodeIo(t, BufShmOffset(3, 4096), 4096).ok());
    EXPECT_TRUE(DecodeIo(t, BufShmOffset(3, 8192), 0).ok());
    ExpectProtocolError(DecodeIo(t, BufShmOffset(3, 4096), 4097),
                        "range [4096, +4097) is not inside registered buffer 3 of 8192 bytes");
    ExpectProtocolError(DecodeIo(t, BufShmOffset(3, 8193), 0), "not inside registered buffer 3");
    ExpectProtocolError(DecodeIo(t, BufShmOffset(1, 1), UINT64_MAX),
                        "not inside registered buffer 1");
    ExpectProtocolError(DecodeIo(t, BufShmOffset(3, kBufOffsetMask), UINT64_MAX),
                        "not inside registered buffer 3");
    ExpectProtocolError(DecodeIo(t, BufShmOffset(2, 0), 1),
                        "names buffer 2, which is not registered in this session");
    ExpectProtocolError(DecodeIo(t, BufShmOffset(4, 0), 0), "names buffer 4, which is not");
    ExpectProtocolError(DecodeIo(t, BufShmOffset(0xFFFF, 0), 0), "names buffer 65535");
    ExpectProtocolError(DecodeIo(t, UINT64_MAX, 0), "names buffer 65535");
    // Without registered buffers (before HELLO, or an older session's
    // limits) every buffer id is refused.
    SessionLimits none;
    none.shm_size = kShm;
    ExpectProtocolError(DecodeIo(t, BufShmOffset(1, 0), 0, none), "is not registered");
  }
}

TEST(MessagesTest, RegisterAndUnregisterBufAreChecked) {
  auto reg = [](uint64_t size, uint8_t fds) {
    return Craft(
        MessageType::kRegisterBuf, false, [=](WireWriter& w) { w.U64(size); }, fds);
  };
  EXPECT_TRUE(DecodeRequestFrame(reg(kMinShmSize, 1)).ok());
  EXPECT_TRUE(DecodeRequestFrame(reg(kMaxShmSize, 1)).ok());
  for (uint64_t size :
       {uint64_t{0}, uint64_t{4095}, uint64_t{4097}, kMaxShmSize + 4096, uint64_t{UINT64_MAX}}) {
    ExpectProtocolError(DecodeRequestFrame(reg(size, 1)).status(),
                        "shared-memory size " + std::to_string(size) + " is not a multiple of");
  }
  // Its memfd comes with it, and only that.
  ExpectProtocolError(DecodeRequestFrame(reg(4096, 0)).status(), "must carry 1 file descriptor");
  ExpectProtocolError(DecodeRequestFrame(reg(4096, 2)).status(), "must carry 1 file descriptor");
  EXPECT_EQ(FdCount(Request(RegisterBufRequest{})), 1u);
  EXPECT_EQ(FdCount(Reply(RegisterBufReply{})), 0u);

  auto unreg = [](uint64_t id) {
    return Craft(MessageType::kUnregisterBuf, false, [=](WireWriter& w) { w.U64(id); });
  };
  EXPECT_TRUE(DecodeRequestFrame(unreg(1)).ok());
  EXPECT_TRUE(DecodeRequestFrame(unreg(kMaxRegisteredBufs)).ok());
  for (uint64_t id : {uint64_t{0}, kMaxRegisteredBufs + 1, uint64_t{UINT64_MAX}}) {
    ExpectProtocolError(DecodeRequestFrame(unreg(id)).status(),
                        "buffer id " + std::to_string(id) + " is not from 1 to 64");
  }
  // The reply's id is checked the same way.
  auto reply = [](uint64_t id) {
    return Craft(MessageType::kRegisterBuf, true, [=](WireWriter& w) {
      Ok(w);
      w.U64(id);
    });
  };
  EXPECT_TRUE(DecodeReplyFrame(reply(7)).ok());
  ExpectProtocolError(DecodeReplyFrame(reply(0)).status(), "buffer id 0 is not from 1 to 64");
  ExpectProtocolError(DecodeReplyFrame(reply(65)).status(), "buffer id 65");
}

TEST(MessagesTest, HelloRequestIsChecked) {
  auto hello = [](uint32_t version, uint64_t shm) {
    return Craft(
        MessageType::kHello, false,
        [=](WireWriter& w) {
          w.U32(version);
          w.String("data");
          w.U64(shm);
        },
        1);
  };
  EXPECT_TRUE(DecodeRequestFrame(hello(1, kMinShmSize)).ok());
  EXPECT_TRUE(DecodeRequestFrame(hello(99, kMaxShmSize)).ok());
  for (uint64_t shm : {uint64_t{0}, uint64_t{4095}, uint64_t{4097}, uint64_t{(1 << 20) + 1},
                       kMaxShmSize + 4096, uint64_t{UINT64_MAX}}) {
    ExpectProtocolError(DecodeRequestFrame(hello(1, shm)).status(),
                        "shared-memory size " + std::to_string(shm) + " is not a multiple of");
  }
  ExpectProtocolError(DecodeRequestFrame(hello(0, 4096)).status(), "protocol version 0");
}

TEST(MessagesTest, DoorbellRequestIsChecked) {
  auto doorbell = [](uint64_t size, uint8_t fds) {
    return Craft(
        MessageType::kDoorbell, false, [=](WireWriter& w) { w.U64(size); }, fds);
  };
  EXPECT_TRUE(DecodeRequestFrame(doorbell(kDoorbellRegionSize, 1)).ok());
  for (uint64_t size : {uint64_t{0}, kDoorbellRegionSize - 4096, kDoorbellRegionSize + 4096,
                        uint64_t{UINT64_MAX}}) {
    ExpectProtocolError(DecodeRequestFrame(doorbell(size, 1)).status(),
                        "doorbell size " + std::to_string(size) + " is not the");
  }
  // Its region comes with it, or it is refused.
  EXPECT_FALSE(DecodeRequestFrame(doorbell(kDoorbellRegionSize, 0)).ok());
  EXPECT_EQ(FdCount(Request(DoorbellRequest{})), 1u);
  EXPECT_EQ(FdCount(Reply(DoorbellReply{})), 0u);
}

std::vector<uint8_t> HelloReplyFrame(bool has_fd, uint32_t page, uint64_t arena,
                                     uint64_t shm = 1 << 20, uint8_t flag_byte = 255) {
  return Craft(
      MessageType::kHello, true,
      [=](WireWriter& w) {
        Ok(w);
        w.U32(1);
        w.U64(shm);
        w.U8(flag_byte != 255 ? flag_byte : (has_fd ? 1 : 0));
        w.U32(page);
        w.U64(arena);
        WriteVolumeInfo(w);
      },
      has_fd ? 1 : 0);
}

TEST(MessagesTest, HelloReplyIsChecked) {
  EXPECT_TRUE(DecodeReplyFrame(HelloReplyFrame(true, 4096, 4096)).ok());
  EXPECT_TRUE(DecodeReplyFrame(HelloReplyFrame(true, 1 << 20, kMaxCacheArenaSize)).ok());
  EXPECT_TRUE(DecodeReplyFrame(HelloReplyFrame(false, 0, 0)).ok());
  for (uint32_t page : {0u, 2048u, 3000u, 12288u, 2u << 20}) {
    ExpectProtocolError(DecodeReplyFrame(HelloReplyFrame(true, page, 1 << 30)).status(),
                        "cache page size " + std::to_string(page) + " is not a power of two");
  }
  for (uint64_t arena : {uint64_t{0}, uint64_t{4096 * 3 + 1}, kMaxCacheArenaSize + 4096}) {
    ExpectProtocolError(DecodeReplyFrame(HelloReplyFrame(true, 4096, arena)).status(),
                        "cache arena size " + std::to_string(arena));
  }
  ExpectProtocolError(DecodeReplyFrame(HelloReplyFrame(false, 4096, 0)).status(),
                      "without a cache descriptor (must be 0)");
  ExpectProtocolError(DecodeReplyFrame(HelloReplyFrame(false, 0, 4096)).status(),
                      "without a cache descriptor");
  ExpectProtocolError(DecodeReplyFrame(HelloReplyFrame(false, 0, 0, 100)).status(),
                      "shared-memory size 100");
  ExpectProtocolError(DecodeReplyFrame(HelloReplyFrame(false, 0, 0, 4096, 2)).status(),
                      "cache descriptor flag is 2, not a boolean");
  auto read_only = Craft(MessageType::kVolInfo, true, [](WireWriter& w) {
    Ok(w);
    WriteVolumeInfo(w, /*read_only_byte_2=*/true);
  });
  ExpectProtocolError(DecodeReplyFrame(read_only).status(), "read-only flag is 2");
}

std::vector<uint8_t> MapReplyFrame(uint64_t start, const std::vector<MapExtent>& extents) {
  return Craft(MessageType::kMap, true, [&](WireWriter& w) {
    Ok(w);
    w.U64(7);
    w.U64(start);
    w.U32(static_cast<uint32_t>(extents.size()));
    for (const MapExtent& e : extents) {
      w.U64(e.arena_offset);
      w.U64(e.length);
    }
  });
}

TEST(MessagesTest, MapExtentsMustBeWholePagesInsideTheArena) {
  const uint64_t page = SampleLimits().cache_page_size;    // 64 KiB
  const uint64_t arena = SampleLimits().cache_arena_size;  // 256 MiB
  EXPECT_TRUE(DecodeReplyFrame(MapReplyFrame(page - 1, {{arena - page, page}})).ok());
  EXPECT_TRUE(DecodeReplyFrame(MapReplyFrame(0, {{0, arena}})).ok());
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {})).status(),
                      "extent count 0 is not from 1 to 3072");
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(page, {{0, page}})).status(),
                      "start offset 65536 is not inside the first 65536-byte page");
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{0, page}, {page, 0}})).status(),
                      "extent 1 [65536, +0) is not a nonempty run of whole 65536-byte pages");
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{4096, page}})).status(),
                      "not a nonempty run of whole");
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{0, page + 1}})).status(),
                      "not a nonempty run of whole");
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{arena, page}})).status(),
                      "extent 0 [268435456, +65536) is not inside the 268435456-byte cache arena");
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{arena - page, 2 * page}})).status(),
                      "is not inside the");
  // A page-aligned length so large that offset + length wraps to 0.
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{page, UINT64_MAX - page + 1}})).status(),
                      "is not inside the");
  // No arena was shared at HELLO: no view can be described.
  SessionLimits none = SampleLimits();
  none.cache_page_size = 0;
  none.cache_arena_size = 0;
  ExpectProtocolError(DecodeReplyFrame(MapReplyFrame(0, {{0, page}}), none).status(),
                      "no cache arena was shared at HELLO");
}

TEST(MessagesTest, StatTypeAndConditionAreChecked) {
  auto stat = [](uint32_t type, uint32_t cond) {
    return Craft(MessageType::kStat, true, [=](WireWriter& w) {
      Ok(w);
      for (int i = 0; i < 6; ++i) w.U64(0);
      for (int i = 0; i < 4; ++i) w.U32(0);
      w.U32(type);
      w.U32(cond);
    });
  };
  for (uint32_t cond : {0x0u, 0x1u, 0x2u, 0x3u, 0x4u, 0xDu, 0xEu, 0xFu}) {
    EXPECT_TRUE(DecodeReplyFrame(stat(1, cond)).ok()) << cond;
  }
  EXPECT_TRUE(DecodeReplyFrame(stat(3, 0)).ok());
  ExpectProtocolError(DecodeReplyFrame(stat(0, 0)).status(), "file type 0 is not 1 (cnv)");
  ExpectProtocolError(DecodeReplyFrame(stat(4, 0)).status(), "file type 4");
  for (uint32_t cond : {0x5u, 0xCu, 0x10u, 0xffffffffu}) {
    ExpectProtocolError(DecodeReplyFrame(stat(1, cond)).status(),
                        "zone condition " + std::to_string(cond) + " is not a zone condition");
  }
}

}  // namespace
}  // namespace zfile::protocol
