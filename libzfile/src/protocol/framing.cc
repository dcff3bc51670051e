#include "protocol/framing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
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

// A frame that came with more descriptors than any frame may carry (the
// kernel closed those past kMaxFdsPerFrame, we close the rest).
Status TooManyFds() {
  return Status(EPROTO, "more file descriptors arrived than the " +
                            std::to_string(kMaxFdsPerFrame) +
                            " a frame may carry (they were closed)");
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

FrameReader::FrameReader(int sock) : sock_(sock), buf_(kFrameHeaderSize + kMaxPayloadSize) {}

Status FrameReader::Fail(Status status) {
  broken_ = status;
  fd_batches_.clear();
  header_.reset();
  begin_ = end_ = 0;
  buf_.clear();
  buf_.shrink_to_fit();
  return status;
}

size_t FrameReader::FdsBefore(uint64_t pos) const {
  size_t n = 0;
  for (const FdBatch& batch : fd_batches_) {
    if (batch.end > pos) break;
    n += batch.fds.size();
  }
  return n;
}

Status FrameReader::CheckFdsSoFar() const {
  // Every byte received so far up to the end of the current frame is the
  // current frame's; so are the descriptors that came with them.
  uint64_t until = buf_pos_ + end_;
  if (header_) {
    until = std::min(until, buf_pos_ + begin_ + kFrameHeaderSize + header_->payload_size);
  }
  const size_t fds = FdsBefore(until);
  if (fds > kMaxFdsPerFrame) return TooManyFds();
  if (!header_ || fds <= header_->fd_count) return Status::Ok();
  return Status(EPROTO, header_->Name() + " announced " +
                            Count(header_->fd_count, "file descriptor", "file descriptors") +
                            " but " + std::to_string(fds) + " arrived (the extra were closed)");
}

Result<size_t> FrameReader::Receive() {
  iovec iov;
  iov.iov_base = buf_.data() + end_;
  iov.iov_len = buf_.size() - end_;
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
  end_ += static_cast<size_t>(n);
  // Take ownership of every descriptor before looking at anything else, so
  // that each one is closed on whatever path follows.
  FdBatch batch;
  batch.end = buf_pos_ + end_;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      batch.fds.emplace_back(fd);
    }
  }
  const bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (!batch.fds.empty()) fd_batches_.push_back(std::move(batch));
  if (truncated) return TooManyFds();
  return static_cast<size_t>(n);
}

Result<std::optional<Frame>> FrameReader::Read() {
  if (!broken_.ok()) return broken_;
  for (;;) {
    const size_t have = end_ - begin_;
    if (!header_ && have >= kFrameHeaderSize) {
      auto header = DecodeFrameHeader(std::span<const uint8_t>(buf_.data() + begin_, have));
      if (!header.ok()) return Fail(header.status());
      header_ = *header;
      if (Status fds = CheckFdsSoFar(); !fds.ok()) return Fail(fds);
    }
    if (header_ && have >= kFrameHeaderSize + header_->payload_size) break;
    // More is needed. Move the current frame's start to the front, so that
    // the rest of it (bounded by kMaxPayloadSize) fits behind it.
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, have);
      buf_pos_ += begin_;
      begin_ = 0;
      end_ = have;
    }
    auto n = Receive();
    if (!n.ok()) {
      if (n.status().err() == EAGAIN) return n.status();
      return Fail(n.status());
    }
    if (*n == 0) {
      if (!mid_frame()) return std::optional<Frame>();
      if (!header_) {
        return Fail(Status(EPROTO, "the peer closed the connection after " + std::to_string(have) +
                                       " of the " + std::to_string(kFrameHeaderSize) +
                                       " bytes of a frame header"));
      }
      return Fail(Status(EPROTO, "the peer closed the connection after " +
                                     std::to_string(have - kFrameHeaderSize) + " of the " +
                                     std::to_string(header_->payload_size) + " payload bytes of " +
                                     header_->Name()));
    }
    if (Status fds = CheckFdsSoFar(); !fds.ok()) return Fail(fds);
  }
  // The frame is whole: buf_[begin_, frame_end). Its descriptors are those
  // that came with its bytes.
  const size_t size = kFrameHeaderSize + header_->payload_size;
  const uint64_t frame_end = buf_pos_ + begin_ + size;
  std::vector<UniqueFd> fds;
  while (!fd_batches_.empty() && fd_batches_.front().end <= frame_end) {
    for (UniqueFd& fd : fd_batches_.front().fds) fds.push_back(std::move(fd));
    fd_batches_.pop_front();
  }
  if (fds.size() != header_->fd_count) {
    return Fail(Status(EPROTO, header_->Name() + " announced " +
                                   Count(header_->fd_count, "file descriptor", "file descriptors") +
                                   " but " + std::to_string(fds.size()) + " arrived"));
  }
  const uint8_t* payload = buf_.data() + begin_ + kFrameHeaderSize;
  std::optional<Frame> frame(Frame{
      *header_, std::vector<uint8_t>(payload, payload + header_->payload_size), std::move(fds)});
  header_.reset();
  begin_ += size;
  if (begin_ == end_) {
    buf_pos_ += end_;
    begin_ = end_ = 0;
  }
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
