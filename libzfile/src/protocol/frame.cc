#include "protocol/frame.h"

#include <cerrno>
#include <cstdio>

#include "protocol/wire.h"

namespace zfile::protocol {
namespace {

Status Malformed(std::string message) {
  return Status(EPROTO, "bad frame header: " + std::move(message));
}

std::string Hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "HELLO";
    case MessageType::kVolInfo:
      return "VOL_INFO";
    case MessageType::kVolStats:
      return "VOL_STATS";
    case MessageType::kVolSync:
      return "VOL_SYNC";
    case MessageType::kOpen:
      return "OPEN";
    case MessageType::kClose:
      return "CLOSE";
    case MessageType::kPread:
      return "PREAD";
    case MessageType::kPwrite:
      return "PWRITE";
    case MessageType::kAppend:
      return "APPEND";
    case MessageType::kFsync:
      return "FSYNC";
    case MessageType::kFtruncate:
      return "FTRUNCATE";
    case MessageType::kFstat:
      return "FSTAT";
    case MessageType::kStat:
      return "STAT";
    case MessageType::kChmod:
      return "CHMOD";
    case MessageType::kChown:
      return "CHOWN";
    case MessageType::kMap:
      return "MAP";
    case MessageType::kUnmap:
      return "UNMAP";
    case MessageType::kDoorbell:
      return "DOORBELL";
    case MessageType::kRegisterBuf:
      return "REGISTER_BUF";
    case MessageType::kUnregisterBuf:
      return "UNREGISTER_BUF";
  }
  return "unknown";
}

std::string FrameHeader::Name() const {
  std::string name(MessageTypeName(type));
  name += reply ? " reply" : " request";
  return name;
}

void EncodeFrameHeader(const FrameHeader& header, std::span<uint8_t> out) {
  uint8_t* p = out.data();
  StoreLe32(p + kMagicOffset, kFrameMagic);
  StoreLe16(p + kVersionOffset, header.version);
  const uint16_t type =
      static_cast<uint16_t>(static_cast<uint16_t>(header.type) | (header.reply ? kReplyBit : 0));
  StoreLe16(p + kTypeOffset, type);
  StoreLe64(p + kRequestIdOffset, header.request_id);
  StoreLe32(p + kPayloadSizeOffset, header.payload_size);
  StoreLe16(p + kFlagsOffset, header.flags);
  p[kFdCountOffset] = header.fd_count;
  p[kReservedOffset] = 0;
}

Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> in) {
  if (in.size() < kFrameHeaderSize) {
    return Malformed("only " + std::to_string(in.size()) + " of its " +
                     std::to_string(kFrameHeaderSize) + " bytes");
  }
  const uint8_t* p = in.data();
  const uint32_t magic = LoadLe32(p + kMagicOffset);
  if (magic != kFrameMagic) {
    return Malformed("magic " + Hex(magic) + " is not zfile's " + Hex(kFrameMagic) +
                     " (is the peer a zfile client or zfiled?)");
  }
  FrameHeader h;
  h.version = LoadLe16(p + kVersionOffset);
  if (h.version != kProtocolVersion) {
    return Malformed("protocol version " + std::to_string(h.version) +
                     " is not supported (this side speaks version " +
                     std::to_string(kProtocolVersion) + ")");
  }
  const uint16_t type = LoadLe16(p + kTypeOffset);
  const uint16_t base = static_cast<uint16_t>(type & ~kReplyBit);
  if (base < kFirstMessageType || base > kLastMessageType) {
    return Malformed("unknown message type " + Hex(type));
  }
  h.type = static_cast<MessageType>(base);
  h.reply = (type & kReplyBit) != 0;
  h.request_id = LoadLe64(p + kRequestIdOffset);
  h.payload_size = LoadLe32(p + kPayloadSizeOffset);
  if (h.payload_size > kMaxPayloadSize) {
    return Malformed(h.Name() + " announces a payload of " + std::to_string(h.payload_size) +
                     " bytes, more than the " + std::to_string(kMaxPayloadSize) + " allowed");
  }
  h.flags = LoadLe16(p + kFlagsOffset);
  if (h.flags != 0) {
    return Malformed(h.Name() + " has unknown flags " + Hex(h.flags) + " (version " +
                     std::to_string(kProtocolVersion) + " defines none)");
  }
  h.fd_count = p[kFdCountOffset];
  if (h.fd_count > kMaxFdsPerFrame) {
    return Malformed(h.Name() + " announces " + std::to_string(h.fd_count) +
                     " file descriptors, more than the " + std::to_string(kMaxFdsPerFrame) +
                     " a frame may carry");
  }
  if (p[kReservedOffset] != 0) {
    return Malformed(h.Name() + " has a nonzero reserved byte " + Hex(p[kReservedOffset]));
  }
  return h;
}

}  // namespace zfile::protocol
