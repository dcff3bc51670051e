// UniqueFd: sole ownership of a file descriptor, closed on destruction.
//
// The protocol layer receives descriptors from a peer (SCM_RIGHTS) and must
// never leak one, whatever path an error takes: every received descriptor
// goes into a UniqueFd at once, and whoever wants to keep it moves it out.
// (device/ has file-local copies of the same idea; this one is public so
// that the daemon and the client can share it.)
#ifndef ZFILE_PROTOCOL_UNIQUE_FD_H_
#define ZFILE_PROTOCOL_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace zfile::protocol {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives up ownership without closing; returns the descriptor (or -1).
  int Release() { return std::exchange(fd_, -1); }

  // Closes the descriptor held, if any, and takes `fd`. close() errors are
  // ignored: the descriptor is gone either way on Linux, and there is no
  // caller that could act on them.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_UNIQUE_FD_H_
