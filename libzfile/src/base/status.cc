#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace zfile {

std::string ErrnoName(int err) {
  // strerrorname_np is glibc >= 2.32 (Debian 12 has 2.36).
  const char* name = strerrorname_np(err);
  return name != nullptr ? std::string(name) : std::to_string(err);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_ + " (" + ErrnoName(err_) + ": " + std::strerror(err_) + ")";
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(err_, std::string(context) + ": " + message_);
}

Status ErrnoStatus(int err, std::string_view what) {
  return Status(err, std::string(what) + ": " + std::strerror(err));
}

}  // namespace zfile
