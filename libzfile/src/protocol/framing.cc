#include "protocol/framing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace zfile::protocol {
namespace {

// Room for the most descriptors a frame may carry. A peer that sends more
// gets MSG_CTRUNC, and the kernel closes the ones that did not fit.
constexpr size_t kControlSize = CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame);

std::string Count(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Checks that an outgoing `frame` is exactly one well-formed frame that
// announces `nfds` descriptors. This guards against our own bugs: a
// mismatch would desynchronise the peer.
Status CheckOutgoing(std::span<const uint8_t> frame, size_t nfds) {
  auto header = DecodeFrameHeader(frame);
  if (!header.ok()) return Status(EINVAL, "refusing to send: " + header.status().message());
  if (frame.size() != kFrameHeaderSize + header->payload_size) {
    return Status(EINVAL, "refusing to send " + header->Name() + ": " +
                              std::to_string(frame.size()) + " bytes for a frame of " +
                              std::to_string(kFrameHeaderSize + header->payload_size));
  }
  if (header->fd_count != nfds) {
    return Status(EINVAL, "refusing to send " + header->Name() + ": it announces " +
                              Count(header->fd_count, "descriptor", "descriptors") + ", " +
                              std::to_string(nfds) + " given");
  }
  return Status::Ok();
}

// One sendmsg() of `data`, with `fds` attached when not empty; retried on
// EINTR. Returns the bytes sent (possibly fewer than data.size()).
Result<size_t> SendSome(int sock, std::span<const uint8_t> data, std::span<const int> fds) {
  // CheckOutgoing has bounded fds by the header's fd_count; kept here too
  // because the control buffer below is sized for no more.
  if (fds.size() > kMaxFdsPerFrame) {
    return Status(EINVAL, "refusing to send " + std::to_string(fds.size()) +
                              " descriptors with one frame (at most " +
                              std::to_string(kMaxFdsPerFrame) + ")");
  }
  iovec iov;
  iov.iov_base = const_cast<uint8_t*>(data.data());
  iov.iov_len = data.size();
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char control[kControlSize] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return Status(EAGAIN, "the socket cannot take more bytes yet");
    }
    if (err == EPIPE) return Status(EPIPE, "the peer has closed the connection");
    return ErrnoStatus(err, "sendmsg");
  }
  return static_cast<size_t>(n);
}

}  // namespace

// --- FrameReader ------------------------------------------------------------

Status FrameReader::Fail(Status status) {
  broken_ = status;
  fds_.clear();
  payload_.clear();
  payload_.shrink_to_fit();
  return status;
}

Status FrameReader::CheckFdsSoFar() const {
  if (!header_ || fds_.size() <= header_->fd_count) return Status::Ok();
  return Status(EPROTO, header_->Name() + " announced " +
                            Count(header_->fd_count, "file descriptor", "file descriptors") +
                            " but " + std::to_string(fds_.size()) +
                            " arrived (the extra were closed)");
}

Result<size_t> FrameReader::Receive(uint8_t* dst, size_t len) {
  iovec iov;
  iov.iov_base = dst;
  iov.iov_len = len;
  alignas(cmsghdr) unsigned char control[kControlSize];
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(sock_, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return Status(EAGAIN, "no complete frame yet");
    return ErrnoStatus(err, "recvmsg");
  }
  // Take ownership of every descriptor before looking at anything else, so
  // that each one is closed on whatever path follows.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      fds_.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || fds_.size() > kMaxFdsPerFrame) {
    return Status(EPROTO, "more file descriptors arrived than the " +
                              std::to_string(kMaxFdsPerFrame) +
                              " a frame may carry (they were closed)");
  }
  return static_cast<size_t>(n);
}

Result<std::optional<Frame>> FrameReader::Read() {
  if (!broken_.ok()) return broken_;
  while (header_have_ < kFrameHeaderSize) {
    auto n = Receive(header_buf_ + header_have_, kFrameHeaderSize - header_have_);
    if (!n.ok()) {
      if (n.status().err() == EAGAIN) return n.status();
      return Fail(n.status());
    }
    if (*n == 0) {
      if (!mid_frame()) return std::optional<Frame>();
      return Fail(Status(
          EPROTO, "the peer closed the connection after " + std::to_string(header_have_) +
                      " of the " + std::to_string(kFrameHeaderSize) + " bytes of a frame header"));
    }
    header_have_ += *n;
  }
  if (!header_) {
    auto header = DecodeFrameHeader(header_buf_);
    if (!header.ok()) return Fail(header.status());
    header_ = *header;
    if (Status fds = CheckFdsSoFar(); !fds.ok()) return Fail(fds);
    // Bounded by kMaxPayloadSize: DecodeFrameHeader refused anything more.
    payload_.resize(header_->payload_size);
  }
  while (payload_have_ < payload_.size()) {
    auto n = Receive(payload_.data() + payload_have_, payload_.size() - payload_have_);
    if (!n.ok()) {
      if (n.status().err() == EAGAIN) return n.status();
      return Fail(n.status());
    }
    if (*n == 0) {
      return Fail(Status(EPROTO, "the peer closed the connection after " +
                                     std::to_string(payload_have_) + " of the " +
                                     std::to_string(payload_.size()) + " payload bytes of " +
                                     header_->Name()));
    }
    payload_have_ += *n;
    if (Status fds = CheckFdsSoFar(); !fds.ok()) return Fail(fds);
  }
  if (fds_.size() != header_->fd_count) {
    return Fail(Status(EPROTO, header_->Name() + " announced " +
                                   Count(header_->fd_count, "file descriptor", "file descriptors") +
                                   " but " + std::to_string(fds_.size()) + " arrived"));
  }
  std::optional<Frame> frame(Frame{*header_, std::move(payload_), std::move(fds_)});
  header_have_ = 0;
  header_.reset();
  payload_.clear();
  payload_have_ = 0;
  fds_.clear();
  return frame;
}

// --- FrameWriter ------------------------------------------------------------

Status FrameWriter::Enqueue(std::vector<uint8_t> frame, std::span<const int> fds) {
  ZF_RETURN_IF_ERROR(CheckOutgoing(frame, fds.size()));
  Outgoing out;
  for (int fd : fds) {
    const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
      return ErrnoStatus(errno, "duplicating descriptor " + std::to_string(fd) + " to send");
    }
    out.fds.emplace_back(dup);
  }
  out.bytes = std::move(frame);
  queue_.push_back(std::move(out));
  return Status::Ok();
}

Status FrameWriter::Flush() {
  if (!broken_.ok()) return broken_;
  while (!queue_.empty()) {
    Outgoing& out = queue_.front();
    std::vector<int> raw;
    if (out.sent == 0) {
      for (const UniqueFd& fd : out.fds) raw.push_back(fd.get());
    }
    auto n = SendSome(sock_, std::span<const uint8_t>(out.bytes).subspan(out.sent), raw);
    if (!n.ok()) {
      if (n.status().err() != EAGAIN) broken_ = n.status();
      return n.status();
    }
    out.sent += *n;
    // Once any byte is out, the kernel holds its own references to the
    // descriptors: ours can go.
    if (*n > 0) out.fds.clear();
    if (out.sent == out.bytes.size()) queue_.pop_front();
  }
  return Status::Ok();
}

// --- SendFrame --------------------------------------------------------------

Status SendFrame(int sock, std::span<const uint8_t> frame, std::span<const int> fds) {
  ZF_RETURN_IF_ERROR(CheckOutgoing(frame, fds.size()));
  size_t sent = 0;
  while (sent < frame.size()) {
    auto n = SendSome(sock, frame.subspan(sent), sent == 0 ? fds : std::span<const int>());
    if (!n.ok()) return n.status();
    sent += *n;
  }
  return Status::Ok();
}

}  // namespace zfile::protocol
