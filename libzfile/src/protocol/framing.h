// Frames over a Unix stream socket: reading them incrementally, writing
// them with descriptors attached (SCM_RIGHTS).
//
// Descriptors travel with the first byte of their frame: the writer
// attaches them to the sendmsg() that sends that byte. The reader takes in
// as much as the socket has (up to one largest frame) with each recvmsg(),
// so that a small frame costs one system call, and keeps what comes after
// the frame for the next one. It still knows which frame descriptors
// belong to, because a Unix stream socket never hands out data past a
// message that carried descriptors in the same recvmsg(): whatever
// descriptors one call receives came with its last byte, so they belong to
// the frame that byte is part of. The header's fd_count says how many
// there must be; a frame that arrives with any other number is a protocol
// error, and every descriptor that nobody takes is closed (they live in
// UniqueFds from the moment they arrive).
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

// Reads frames from a connected Unix stream socket (not owned). Nothing
// else may read from the socket while a FrameReader is in use: it may
// already hold bytes of the next frame.
class FrameReader {
 public:
  explicit FrameReader(int sock);
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // The next frame, whole: a header DecodeFrameHeader accepted, its payload
  // and its descriptors. std::nullopt when the peer closed the connection
  // between two frames. Errors:
  //  - EAGAIN (non-blocking socket, or SO_RCVTIMEO): no complete frame yet;
  //    what has arrived is kept, call again when the socket is readable
  //    (or at once: a frame that had already arrived whole with an earlier
  //    one is returned without the socket being readable);
  //  - EPROTO: a bad header (refused as soon as its 24 bytes are in, before
  //    any payload is waited for or allocated), the connection closed in
  //    the middle of a frame, or the wrong number of descriptors (too many
  //    are closed, by the kernel past kMaxFdsPerFrame, by us otherwise);
  //  - the errno of recvmsg() for anything else (ECONNRESET, ...).
  // After any error but EAGAIN the connection's byte stream can no longer
  // be followed: every later call returns the same error, and the caller
  // should drop the connection.
  Result<std::optional<Frame>> Read();

  // Whether part of a frame has been received (a non-blocking caller may
  // time out a peer that stays there).
  bool mid_frame() const { return end_ > begin_ || !fd_batches_.empty(); }

 private:
  // Descriptors from one recvmsg(), and the stream position just past the
  // last byte that call received: they belong to the frame that holds the
  // byte before `end`.
  struct FdBatch {
    uint64_t end = 0;
    std::vector<UniqueFd> fds;
  };

  // One recvmsg() into the free end of buf_; records its descriptors.
  Result<size_t> Receive();
  // Remembers `status` as the connection's fate, drops what was buffered
  // (closing its descriptors) and returns it.
  Status Fail(Status status);
  // How many descriptors have arrived with the stream's bytes before
  // position `pos`.
  size_t FdsBefore(uint64_t pos) const;
  // EPROTO once more descriptors have arrived for the current frame than
  // its header announced (or than any frame may carry).
  Status CheckFdsSoFar() const;

  const int sock_;
  // Received bytes not yet returned: buf_[begin_, end_), of which the
  // current frame starts at begin_. Room for the largest frame, so that a
  // frame always fits once what came before it is moved to the front.
  std::vector<uint8_t> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
  uint64_t buf_pos_ = 0;               // stream position of buf_[0]
  std::optional<FrameHeader> header_;  // the current frame's, once checked
  std::deque<FdBatch> fd_batches_;     // in stream order
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
