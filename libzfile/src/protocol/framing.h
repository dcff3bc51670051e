// Frames over a Unix stream socket: reading them incrementally, writing
// them with descriptors attached (SCM_RIGHTS).
//
// Descriptors travel with the first byte of their frame: the writer
// attaches them to the sendmsg() that sends that byte, and the reader never
// asks the kernel for more bytes than the current frame still needs, so the
// descriptors it receives always belong to the frame it is reading. The
// header's fd_count says how many there must be; a frame that arrives with
// any other number is a protocol error, and every descriptor that nobody
// takes is closed (they live in UniqueFds from the moment they arrive).
//
// Both sides work on blocking sockets (one call, one whole frame) and on
// non-blocking ones (EAGAIN when the socket has no more to give or take;
// the state is kept and the next call resumes), so that the daemon can
// drive many connections from one event loop and a client can simply block.
// Neither class is thread-safe: one reader and one writer per connection,
// each used by one thread at a time.
#ifndef ZFILE_PROTOCOL_FRAMING_H_
#define ZFILE_PROTOCOL_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "base/status.h"
#include "protocol/frame.h"
#include "protocol/unique_fd.h"

namespace zfile::protocol {

// Reads frames from a connected Unix stream socket (not owned).
class FrameReader {
 public:
  explicit FrameReader(int sock) : sock_(sock) {}
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // The next frame, whole: a header DecodeFrameHeader accepted, its payload
  // and its descriptors. std::nullopt when the peer closed the connection
  // between two frames. Errors:
  //  - EAGAIN (non-blocking socket, or SO_RCVTIMEO): no complete frame yet;
  //    what has arrived is kept, call again when the socket is readable;
  //  - EPROTO: a bad header (refused before any payload is read or
  //    allocated), the connection closed in the middle of a frame, or the
  //    wrong number of descriptors (too many are closed, by the kernel past
  //    kMaxFdsPerFrame, by us otherwise);
  //  - the errno of recvmsg() for anything else (ECONNRESET, ...).
  // After any error but EAGAIN the connection's byte stream can no longer
  // be followed: every later call returns the same error, and the caller
  // should drop the connection.
  Result<std::optional<Frame>> Read();

  // Whether part of a frame has been received (a non-blocking caller may
  // time out a peer that stays there).
  bool mid_frame() const { return header_have_ > 0 || !fds_.empty(); }

 private:
  // One recvmsg() of up to `len` bytes into `dst`, collecting descriptors.
  Result<size_t> Receive(uint8_t* dst, size_t len);
  // Remembers `status` as the connection's fate, drops the partial frame
  // (closing its descriptors) and returns it.
  Status Fail(Status status);
  // EPROTO once more descriptors have arrived than the header announced.
  Status CheckFdsSoFar() const;

  const int sock_;
  uint8_t header_buf_[kFrameHeaderSize] = {};
  size_t header_have_ = 0;
  std::optional<FrameHeader> header_;  // once all of header_buf_ is checked
  std::vector<uint8_t> payload_;
  size_t payload_have_ = 0;
  std::vector<UniqueFd> fds_;
  Status broken_;
};

// Writes frames to a connected Unix stream socket (not owned), queueing
// what a non-blocking socket cannot take yet.
class FrameWriter {
 public:
  explicit FrameWriter(int sock) : sock_(sock) {}
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  // Queues one complete frame (as EncodeRequest/EncodeReply make it) and
  // the descriptors to send with it. The descriptors are duplicated: the
  // caller keeps its own and may close them at once. EINVAL, queueing
  // nothing, when `frame` is not one well-formed frame or its header's
  // fd_count is not fds.size().
  Status Enqueue(std::vector<uint8_t> frame, std::span<const int> fds = {});

  // Sends queued frames, in order, until none is left (OK), the socket
  // cannot take more (EAGAIN: call again when it is writable), or an error:
  // EPIPE when the peer has gone (no SIGPIPE is raised), the errno of
  // sendmsg() otherwise. After an error but EAGAIN every later call
  // returns the same error.
  Status Flush();

  bool pending() const { return !queue_.empty(); }

 private:
  struct Outgoing {
    std::vector<uint8_t> bytes;
    size_t sent = 0;
    std::vector<UniqueFd> fds;  // sent with the first byte, then closed
  };

  const int sock_;
  std::deque<Outgoing> queue_;
  Status broken_;
};

// Sends one complete frame with its descriptors on a blocking socket and
// returns once it is all sent; the descriptors stay the caller's. EINVAL
// for a malformed frame (as FrameWriter::Enqueue); otherwise the errno of
// sendmsg() (EPIPE when the peer has gone; EAGAIN when SO_SNDTIMEO expired
// or the socket is non-blocking, in which case part of the frame may have
// been sent and the connection must be dropped).
Status SendFrame(int sock, std::span<const uint8_t> frame, std::span<const int> fds = {});

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_FRAMING_H_
