// The wire primitives (wire.h) and the frame header (frame.h).
//
// Layouts are checked against bytes written out by hand here, not against
// the encoder's own constants, so that a change to the format cannot pass
// by changing both sides.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/frame.h"
#include "protocol/wire.h"

namespace zfile::protocol {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(std::initializer_list<int> values) {
  std::vector<uint8_t> out;
  for (int v : values) out.push_back(static_cast<uint8_t>(v));
  return out;
}

TEST(WireTest, IntegersAreLittleEndian) {
  std::vector<uint8_t> out;
  WireWriter w(&out);
  w.U8(0x01);
  w.U16(0x0302);
  w.U32(0x07060504);
  w.U64(0x0f0e0d0c0b0a0908);
  w.I32(-2);
  w.I64(-3);
  w.Bool(true);
  w.Bool(false);
  std::vector<uint8_t> expected;
  for (int i = 1; i <= 15; ++i) expected.push_back(static_cast<uint8_t>(i));
  for (int i = 0; i < 4; ++i) expected.push_back(i == 0 ? 0xfe : 0xff);
  for (int i = 0; i < 8; ++i) expected.push_back(i == 0 ? 0xfd : 0xff);
  expected.push_back(1);
  expected.push_back(0);
  EXPECT_EQ(out, expected);

  WireReader r(out, "test");
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  int32_t i32;
  int64_t i64;
  bool t, f;
  ASSERT_TRUE(r.U8("a", &u8).ok());
  ASSERT_TRUE(r.U16("b", &u16).ok());
  ASSERT_TRUE(r.U32("c", &u32).ok());
  ASSERT_TRUE(r.U64("d", &u64).ok());
  ASSERT_TRUE(r.I32("e", &i32).ok());
  ASSERT_TRUE(r.I64("f", &i64).ok());
  ASSERT_TRUE(r.Bool("g", &t).ok());
  ASSERT_TRUE(r.Bool("h", &f).ok());
  EXPECT_TRUE(r.Finish().ok());
  EXPECT_EQ(u8, 0x01);
  EXPECT_EQ(u16, 0x0302);
  EXPECT_EQ(u32, 0x07060504u);
  EXPECT_EQ(u64, 0x0f0e0d0c0b0a0908u);
  EXPECT_EQ(i32, -2);
  EXPECT_EQ(i64, -3);
  EXPECT_TRUE(t);
  EXPECT_FALSE(f);
}

TEST(WireTest, StringsAreLengthPrefixed) {
  std::vector<uint8_t> out;
  WireWriter w(&out);
  w.String("seq/1");
  w.String("");
  EXPECT_EQ(out, Bytes({5, 0, 0, 0, 's', 'e', 'q', '/', '1', 0, 0, 0, 0}));
  WireReader r(out, "test");
  std::string a = "x", b = "y";
  ASSERT_TRUE(r.String("a", 5, &a).ok());
  ASSERT_TRUE(r.String("b", 0, &b).ok());
  EXPECT_TRUE(r.Finish().ok());
  EXPECT_EQ(a, "seq/1");
  EXPECT_EQ(b, "");
}

TEST(WireTest, TruncatedFieldIsNamedAndLeavesOutputAlone) {
  const auto data = Bytes({1, 2, 3});
  WireReader r(data, "OPEN request");
  uint32_t v = 77;
  Status s = r.U32("open flags", &v);
  EXPECT_EQ(s.err(), EPROTO);
  EXPECT_EQ(s.message(), "OPEN request: truncated: the open flags needs 4 bytes, 3 remain");
  EXPECT_EQ(v, 77u);
  EXPECT_EQ(r.remaining(), 3u);  // nothing consumed
  uint16_t w;
  EXPECT_TRUE(r.U16("x", &w).ok());
  EXPECT_EQ(r.U16("y", &w).err(), EPROTO);
  uint64_t big;
  EXPECT_EQ(r.U64("z", &big).err(), EPROTO);
}

TEST(WireTest, StringLongerThanItsBoundIsRefusedBeforeItsBytes) {
  // A length of 2^32 - 1 with nothing after it: the bound, not the
  // truncation, is what the error names.
  const auto data = Bytes({0xff, 0xff, 0xff, 0xff});
  WireReader r(data, "STAT request");
  std::string s;
  Status st = r.String("path", 4096, &s);
  EXPECT_EQ(st.err(), EPROTO);
  EXPECT_THAT(st.message(), HasSubstr("path is 4294967295 bytes long, more than the 4096"));

  const auto over = Bytes({3, 0, 0, 0, 'a', 'b', 'c'});
  WireReader r2(over, "STAT request");
  EXPECT_EQ(r2.String("path", 2, &s).err(), EPROTO);
  WireReader r3(over, "STAT request");
  EXPECT_TRUE(r3.String("path", 3, &s).ok());
}

TEST(WireTest, StringTruncatedOrWithNulIsRefused) {
  const auto shortened = Bytes({4, 0, 0, 0, 'a', 'b'});
  WireReader r(shortened, "m");
  std::string s;
  Status st = r.String("path", 100, &s);
  EXPECT_EQ(st.err(), EPROTO);
  EXPECT_THAT(st.message(), HasSubstr("truncated: the path needs 4 bytes, 2 remain"));

  const auto no_length = Bytes({4, 0});
  WireReader r2(no_length, "m");
  EXPECT_THAT(r2.String("path", 100, &s).message(), HasSubstr("path length needs 4 bytes"));

  const auto nul = Bytes({3, 0, 0, 0, 'a', 0, 'b'});
  WireReader r3(nul, "m");
  st = r3.String("path", 100, &s);
  EXPECT_EQ(st.err(), EPROTO);
  EXPECT_THAT(st.message(), HasSubstr("path contains a NUL byte"));
}

TEST(WireTest, BoolMustBeZeroOrOne) {
  const auto data = Bytes({2});
  WireReader r(data, "m");
  bool b = false;
  Status s = r.Bool("read-only flag", &b);
  EXPECT_EQ(s.err(), EPROTO);
  EXPECT_THAT(s.message(), HasSubstr("read-only flag is 2, not a boolean"));
}

TEST(WireTest, FinishRefusesTrailingBytes) {
  const auto data = Bytes({1, 2, 3});
  WireReader r(data, "CLOSE request");
  uint8_t v;
  ASSERT_TRUE(r.U8("x", &v).ok());
  Status s = r.Finish();
  EXPECT_EQ(s.err(), EPROTO);
  EXPECT_EQ(s.message(), "CLOSE request: 2 bytes of trailing garbage after the last field");
}

// --- Frame header -----------------------------------------------------------

std::vector<uint8_t> HeaderBytes(const FrameHeader& h) {
  std::vector<uint8_t> out(kFrameHeaderSize);
  EncodeFrameHeader(h, out);
  return out;
}

FrameHeader SampleHeader() {
  FrameHeader h;
  h.type = MessageType::kPread;
  h.reply = true;
  h.request_id = 0x1122334455667788;
  h.payload_size = 0x0102;
  h.fd_count = 1;
  return h;
}

TEST(FrameHeaderTest, LayoutIsTheDocumentedOne) {
  // clang-format off
  EXPECT_EQ(HeaderBytes(SampleHeader()),
            Bytes({'Z', 'F', 'P', 'R',                              // magic
                   1, 0,                                            // version
                   7, 0x80,                                         // PREAD | reply
                   0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // request id
                   0x02, 0x01, 0, 0,                                // payload size
                   0, 0,                                            // flags
                   1,                                               // fd count
                   0}));                                            // reserved
  // clang-format on
}

TEST(FrameHeaderTest, RoundTrip) {
  FrameHeader h = SampleHeader();
  auto decoded = DecodeFrameHeader(HeaderBytes(h));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, h);
  EXPECT_EQ(decoded->Name(), "PREAD reply");
  for (uint16_t t = kFirstMessageType; t <= kLastMessageType; ++t) {
    h.type = static_cast<MessageType>(t);
    h.reply = t % 2 == 0;
    decoded = DecodeFrameHeader(HeaderBytes(h));
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, h);
    EXPECT_NE(MessageTypeName(h.type), "unknown");
  }
}

// Decodes `bytes` and expects EPROTO with `text` in the message.
void ExpectRefused(const std::vector<uint8_t>& bytes, const std::string& text) {
  auto decoded = DecodeFrameHeader(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().err(), EPROTO);
  EXPECT_THAT(decoded.status().message(), HasSubstr(text));
}

TEST(FrameHeaderTest, RefusesShortBuffer) {
  auto bytes = HeaderBytes(SampleHeader());
  for (size_t len = 0; len < kFrameHeaderSize; ++len) {
    ExpectRefused(std::vector<uint8_t>(bytes.begin(), bytes.begin() + len),
                  "only " + std::to_string(len) + " of its 24 bytes");
  }
}

TEST(FrameHeaderTest, RefusesWrongMagic) {
  auto bytes = HeaderBytes(SampleHeader());
  bytes[0] = 'z';
  ExpectRefused(bytes, "magic 0x5250467a is not zfile's 0x5250465a");
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ExpectRefused(std::vector<uint8_t>(http.begin(), http.end()), "is not zfile's");
}

TEST(FrameHeaderTest, RefusesUnsupportedVersion) {
  FrameHeader h = SampleHeader();
  h.version = 2;
  ExpectRefused(HeaderBytes(h), "protocol version 2 is not supported (this side speaks version 1)");
  h.version = 0;
  ExpectRefused(HeaderBytes(h), "protocol version 0 is not supported");
}

TEST(FrameHeaderTest, RefusesUnknownType) {
  auto bytes = HeaderBytes(SampleHeader());
  for (uint16_t type : {0x0000, 0x0015, 0x00ff, 0x8000, 0x8015, 0xffff}) {
    StoreLe16(bytes.data() + kTypeOffset, type);
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%x", type);
    ExpectRefused(bytes, std::string("unknown message type ") + hex);
  }
}

TEST(FrameHeaderTest, RefusesPayloadOverTheLimit) {
  FrameHeader h = SampleHeader();
  h.payload_size = kMaxPayloadSize;
  EXPECT_TRUE(DecodeFrameHeader(HeaderBytes(h)).ok());
  h.payload_size = kMaxPayloadSize + 1;
  ExpectRefused(HeaderBytes(h),
                "PREAD reply announces a payload of 65537 bytes, more than the 65536 allowed");
  h.payload_size = UINT32_MAX;
  ExpectRefused(HeaderBytes(h), "payload of 4294967295 bytes");
}

TEST(FrameHeaderTest, RefusesFlagsFdsAndReservedByte) {
  FrameHeader h = SampleHeader();
  h.flags = 4;
  ExpectRefused(HeaderBytes(h), "unknown flags 0x4");
  h.flags = 0;
  h.fd_count = kMaxFdsPerFrame;
  EXPECT_TRUE(DecodeFrameHeader(HeaderBytes(h)).ok());
  h.fd_count = kMaxFdsPerFrame + 1;
  ExpectRefused(HeaderBytes(h), "announces 5 file descriptors, more than the 4");
  h.fd_count = 0;
  auto bytes = HeaderBytes(h);
  bytes[kReservedOffset] = 0x20;
  ExpectRefused(bytes, "nonzero reserved byte 0x20");
}

TEST(FrameHeaderTest, IgnoresBytesAfterTheHeader) {
  auto bytes = HeaderBytes(SampleHeader());
  bytes.resize(100, 0xee);
  auto decoded = DecodeFrameHeader(bytes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, SampleHeader());
}

}  // namespace
}  // namespace zfile::protocol
