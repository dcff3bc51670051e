// Frames of the zfiled protocol: the fixed header in front of every message.
//
// A client and zfiled talk over a Unix stream socket in frames. Each frame
// is a 24-byte header followed by `payload_size` bytes of payload (the
// message's fields, see messages.h). Integers are little-endian:
//
//   offset  size  field
//        0     4  magic         0x5250465a ("ZFPR" on the wire)
//        4     2  version       kProtocolVersion; anything else is refused
//        6     2  type          MessageType; replies have kReplyBit set
//        8     8  request_id    chosen by the client, echoed by the reply
//       16     4  payload_size  at most kMaxPayloadSize
//       20     2  flags         none defined in version 1: must be 0
//       22     1  fd_count      descriptors sent with the frame (SCM_RIGHTS)
//       23     1  reserved      must be 0
//
// The size bound is what lets a reader allocate the payload only after the
// header has been checked: a peer cannot make the other side reserve more
// than 64 KiB per frame. Bulk data never travels in frames; it moves through
// the connection's shared-memory region (messages.h).
//
// fd_count is part of the header so that a reader knows how many
// descriptors must have arrived with the frame: one that went missing (or
// one too many) is a protocol error rather than a silent mismatch.
//
// Protocol errors are EPROTO with a message in words: a peer that sends a
// malformed frame is dropped, and the message says why in the log.
#ifndef ZFILE_PROTOCOL_FRAME_H_
#define ZFILE_PROTOCOL_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "protocol/unique_fd.h"

namespace zfile::protocol {

inline constexpr uint32_t kFrameMagic = 0x5250465a;
inline constexpr uint16_t kProtocolVersion = 1;
// The session protocol versions a HELLO negotiates (HelloRequest and
// HelloReply protocol_version), distinct from the frame format above, which
// is the same in every session version:
//   1  requests and replies travel as frames on the socket;
//   2  adds DOORBELL, by which the client may move its requests and their
//      replies to a shared-memory doorbell (doorbell.h);
//   3  adds REGISTER_BUF and UNREGISTER_BUF: the client's registered buffers,
//      which PREAD/PWRITE/APPEND may name instead of the region (messages.h).
// A daemon answers with the lower of its own and the client's, so old
// clients and old daemons keep version 1.
inline constexpr uint32_t kSessionProtocolVersion = 3;
inline constexpr uint32_t kDoorbellSessionVersion = 2;
inline constexpr uint32_t kRegisteredBufSessionVersion = 3;
inline constexpr size_t kFrameHeaderSize = 24;
inline constexpr uint32_t kMaxPayloadSize = 64 * 1024;
inline constexpr size_t kMaxFdsPerFrame = 4;

// Byte offsets of the header fields (tests check the layout against these).
inline constexpr size_t kMagicOffset = 0;
inline constexpr size_t kVersionOffset = 4;
inline constexpr size_t kTypeOffset = 6;
inline constexpr size_t kRequestIdOffset = 8;
inline constexpr size_t kPayloadSizeOffset = 16;
inline constexpr size_t kFlagsOffset = 20;
inline constexpr size_t kFdCountOffset = 22;
inline constexpr size_t kReservedOffset = 23;

// One request type per call of the C API (SPEC section 6) that a client
// forwards to the daemon, plus HELLO, which opens a session. A reply has
// the type of its request with kReplyBit set. The values are wire format:
// never renumber, only append.
enum class MessageType : uint16_t {
  kHello = 1,
  kVolInfo = 2,
  kVolStats = 3,
  kVolSync = 4,
  kOpen = 5,
  kClose = 6,
  kPread = 7,
  kPwrite = 8,
  kAppend = 9,
  kFsync = 10,
  kFtruncate = 11,
  kFstat = 12,
  kStat = 13,
  kChmod = 14,
  kChown = 15,
  kMap = 16,
  kUnmap = 17,
  kDoorbell = 18,       // session version 2 (see kSessionProtocolVersion)
  kRegisterBuf = 19,    // session version 3
  kUnregisterBuf = 20,  // session version 3
};
inline constexpr uint16_t kFirstMessageType = 1;
inline constexpr uint16_t kLastMessageType = 20;
inline constexpr uint16_t kReplyBit = 0x8000;

// "HELLO", "PREAD", ...; "unknown" for values outside the enum.
std::string_view MessageTypeName(MessageType type);

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kHello;
  bool reply = false;
  uint64_t request_id = 0;
  uint32_t payload_size = 0;
  uint16_t flags = 0;
  uint8_t fd_count = 0;

  // "OPEN request", "OPEN reply": how messages name a frame.
  std::string Name() const;

  bool operator==(const FrameHeader&) const = default;
};

// Writes `header` into the first kFrameHeaderSize bytes of `out`, which
// must have room for them. Does not check the values: encoding what the
// decoder would refuse is how tests make bad frames.
void EncodeFrameHeader(const FrameHeader& header, std::span<uint8_t> out);

// Decodes and checks the first kFrameHeaderSize bytes of `in` (bytes after
// them are ignored). EPROTO, saying what is wrong, for a short buffer, a
// wrong magic, another version, an unknown type, a payload over
// kMaxPayloadSize, unknown flags, too many descriptors or a nonzero
// reserved byte.
Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> in);

// A frame as received: its header, exactly header.payload_size bytes of
// payload, and exactly header.fd_count descriptors (owned: whatever nobody
// takes out is closed with the frame).
struct Frame {
  FrameHeader header;
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;
};

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_FRAME_H_
