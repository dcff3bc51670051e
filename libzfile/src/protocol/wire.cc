#include "protocol/wire.h"

#include <cerrno>
#include <cstring>

namespace zfile::protocol {

void WireWriter::U16(uint16_t v) {
  uint8_t b[2];
  StoreLe16(b, v);
  out_->insert(out_->end(), b, b + sizeof(b));
}

void WireWriter::U32(uint32_t v) {
  uint8_t b[4];
  StoreLe32(b, v);
  out_->insert(out_->end(), b, b + sizeof(b));
}

void WireWriter::U64(uint64_t v) {
  uint8_t b[8];
  StoreLe64(b, v);
  out_->insert(out_->end(), b, b + sizeof(b));
}

void WireWriter::String(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  out_->insert(out_->end(), s.begin(), s.end());
}

Status WireReader::Error(std::string_view message) const {
  std::string text = what_;
  text += ": ";
  text += message;
  return Status(EPROTO, std::move(text));
}

Status WireReader::Need(std::string_view field, size_t n) const {
  if (remaining() >= n) return Status::Ok();
  return Error("truncated: the " + std::string(field) + " needs " + std::to_string(n) + " bytes, " +
               std::to_string(remaining()) + " remain");
}

Status WireReader::U8(std::string_view field, uint8_t* v) {
  ZF_RETURN_IF_ERROR(Need(field, 1));
  *v = data_[pos_];
  pos_ += 1;
  return Status::Ok();
}

Status WireReader::U16(std::string_view field, uint16_t* v) {
  ZF_RETURN_IF_ERROR(Need(field, 2));
  *v = LoadLe16(data_.data() + pos_);
  pos_ += 2;
  return Status::Ok();
}

Status WireReader::U32(std::string_view field, uint32_t* v) {
  ZF_RETURN_IF_ERROR(Need(field, 4));
  *v = LoadLe32(data_.data() + pos_);
  pos_ += 4;
  return Status::Ok();
}

Status WireReader::U64(std::string_view field, uint64_t* v) {
  ZF_RETURN_IF_ERROR(Need(field, 8));
  *v = LoadLe64(data_.data() + pos_);
  pos_ += 8;
  return Status::Ok();
}

// C++20 defines unsigned-to-signed conversion as modular, so these are the
// exact inverse of WireWriter's casts.
Status WireReader::I32(std::string_view field, int32_t* v) {
  uint32_t u;
  ZF_RETURN_IF_ERROR(U32(field, &u));
  *v = static_cast<int32_t>(u);
  return Status::Ok();
}

Status WireReader::I64(std::string_view field, int64_t* v) {
  uint64_t u;
  ZF_RETURN_IF_ERROR(U64(field, &u));
  *v = static_cast<int64_t>(u);
  return Status::Ok();
}

Status WireReader::Bool(std::string_view field, bool* v) {
  ZF_RETURN_IF_ERROR(Need(field, 1));
  const uint8_t b = data_[pos_];
  if (b > 1) {
    return Error("the " + std::string(field) + " is " + std::to_string(b) +
                 ", not a boolean (0 or 1)");
  }
  *v = b == 1;
  pos_ += 1;
  return Status::Ok();
}

Status WireReader::String(std::string_view field, size_t max_len, std::string* v) {
  const std::string name(field);
  ZF_RETURN_IF_ERROR(Need(name + " length", 4));
  const uint32_t len = LoadLe32(data_.data() + pos_);
  if (len > max_len) {
    return Error("the " + name + " is " + std::to_string(len) + " bytes long, more than the " +
                 std::to_string(max_len) + " allowed");
  }
  if (remaining() - 4 < len) {
    return Error("truncated: the " + name + " needs " + std::to_string(len) + " bytes, " +
                 std::to_string(remaining() - 4) + " remain");
  }
  const uint8_t* begin = data_.data() + pos_ + 4;
  if (len > 0 && std::memchr(begin, 0, len) != nullptr) {
    return Error("the " + name + " contains a NUL byte");
  }
  v->assign(reinterpret_cast<const char*>(begin), len);
  pos_ += 4 + size_t{len};
  return Status::Ok();
}

Status WireReader::Finish() const {
  if (remaining() == 0) return Status::Ok();
  return Error(std::to_string(remaining()) + " bytes of trailing garbage after the last field");
}

}  // namespace zfile::protocol
