// Primitive encoders and decoders of the zfiled wire protocol.
//
// Every field on the wire is explicit: fixed-width little-endian integers
// (bytes assembled with shifts, never a memcpy of a struct, so padding and
// host byte order cannot leak into the format), booleans as one byte that is
// 0 or 1, and strings as a u32 byte count followed by that many bytes, with
// no terminator. Each string field has a bound, checked before its bytes
// are touched, and no string may contain a NUL byte: they end up as C
// strings (paths, zfile_last_error()) where a NUL would silently cut them.
//
// WireWriter appends to a byte vector and cannot fail; bounds are for the
// caller to check first (the message encoders do). WireReader walks a
// received payload and turns every way it can be malformed into an EPROTO
// Status that names the message and the field, so that the daemon can log
// why it dropped a client and a client can say what the daemon sent.
#ifndef ZFILE_PROTOCOL_WIRE_H_
#define ZFILE_PROTOCOL_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace zfile::protocol {

// Little-endian stores and loads of fixed-width integers at `p`.
inline void StoreLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void StoreLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void StoreLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint16_t LoadLe16(const uint8_t* p) {
  return static_cast<uint16_t>(uint16_t{p[0]} | uint16_t{p[1]} << 8);
}
inline uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t LoadLe64(const uint8_t* p) {
  return uint64_t{LoadLe32(p)} | uint64_t{LoadLe32(p + 4)} << 32;
}

// Appends fields to `out` (not owned; must outlive the writer).
class WireWriter {
 public:
  explicit WireWriter(std::vector<uint8_t>* out) : out_(out) {}

  void U8(uint8_t v) { out_->push_back(v); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  void U64(uint64_t v);
  // Signed values travel as their two's-complement bit pattern.
  void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  // u32 length, then the bytes. The caller has checked the field's bound
  // (and that it has no NUL byte); the length must fit in 32 bits.
  void String(std::string_view s);

 private:
  std::vector<uint8_t>* out_;
};

// Reads fields in order from `data` (not owned; must outlive the reader).
// Every getter either fills its output and advances, or returns EPROTO and
// leaves the output and the position alone. `what` names the message in
// errors ("OPEN request"; copied, so a temporary will do); `field` names
// the field ("path").
class WireReader {
 public:
  WireReader(std::span<const uint8_t> data, std::string what)
      : data_(data), what_(std::move(what)) {}

  Status U8(std::string_view field, uint8_t* v);
  Status U16(std::string_view field, uint16_t* v);
  Status U32(std::string_view field, uint32_t* v);
  Status U64(std::string_view field, uint64_t* v);
  Status I32(std::string_view field, int32_t* v);
  Status I64(std::string_view field, int64_t* v);
  // A byte that must be 0 or 1.
  Status Bool(std::string_view field, bool* v);
  // A string of at most `max_len` bytes with no NUL byte. The length is
  // checked against the bound before it is checked against what remains,
  // so an absurd length is reported as such, not as a truncation.
  Status String(std::string_view field, size_t max_len, std::string* v);

  // OK when every byte has been read; EPROTO naming the trailing garbage
  // otherwise. Decoders call it last.
  Status Finish() const;

  size_t remaining() const { return data_.size() - pos_; }

  // EPROTO "<what>: <message>", for checks the decoder makes on values.
  Status Error(std::string_view message) const;

 private:
  // EPROTO unless `n` more bytes remain for `field`.
  Status Need(std::string_view field, size_t n) const;

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_WIRE_H_
