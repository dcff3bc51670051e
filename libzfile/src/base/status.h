// Status and Result<T>: the error currency of libzfile.
//
// A Status is either OK or an errno value with a human-readable message. The
// errno is what a C API caller receives (negated); the message is what the
// CLI and the daemon print. Nothing in libzfile throws across a layer
// boundary: functions that can fail return Status or Result<T>.
#ifndef ZFILE_BASE_STATUS_H_
#define ZFILE_BASE_STATUS_H_

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zfile {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(int err, std::string message) : err_(err), message_(std::move(message)) {
    assert(err > 0 && "Status errno must be a positive errno value");
  }

  static Status Ok() { return Status(); }

  bool ok() const { return err_ == 0; }
  // Positive errno value; 0 when ok().
  int err() const { return err_; }
  const std::string& message() const { return message_; }

  // "message (EINVAL: Invalid argument)" or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "context: message".
  Status WithContext(std::string_view context) const;

 private:
  int err_ = 0;
  std::string message_;
};

// Symbolic errno name ("EINVAL"), or the number when unknown.
std::string ErrnoName(int err);

// Status from errno after a failed libc call: "what: strerror".
Status ErrnoStatus(int err, std::string_view what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an OK Status has no value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace zfile

#define ZF_CONCAT_INNER_(a, b) a##b
#define ZF_CONCAT_(a, b) ZF_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define ZF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::zfile::Status zf_status_ = (expr);     \
    if (!zf_status_.ok()) return zf_status_; \
  } while (0)

// `lhs = value of expr` (a Result<T>), or return its Status.
#define ZF_ASSIGN_OR_RETURN(lhs, expr) \
  ZF_ASSIGN_OR_RETURN_IMPL_(ZF_CONCAT_(zf_result_, __LINE__), lhs, expr)
#define ZF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // ZFILE_BASE_STATUS_H_
