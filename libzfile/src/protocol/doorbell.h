// The shared-memory doorbell: an optional request/reply path between a
// client and its zfiled session that avoids the socket's wake-ups.
//
// A session that agreed on session version kDoorbellSessionVersion at HELLO
// may send DOORBELL with a memfd of kDoorbellRegionSize bytes (sealed as
// the bulk region is, shm_region.h), laid out as below. From the DOORBELL
// reply on, the client puts each request frame (exactly as EncodeRequest
// makes it, descriptors not allowed) into the request slot and rings; the
// session answers in the reply slot and rings back. The socket stays
// connected: it is how each side notices that the other has gone (end of
// file), and it still serves frames the client sends on it. The one
// exception to "no descriptors" is REGISTER_BUF in a version 3 session:
// its frame (fd_count 1) goes in the slot, the client rings, and then sends
// the same frame with the descriptor on the socket, where the daemon reads
// it; the reply comes in the reply slot. Ringing first matters: a daemon
// that finds the socket readable looks for a ring before reading it, so
// the twin is never taken for a request of its own.
//
//   offset  size   field
//        0     4   request_seq     futex word: the client stores a new
//                                  value once the request slot is written
//       64     4   reply_seq       futex word: the daemon stores the
//                                  request_seq it answered once the reply
//                                  slot is written
//      128     4   request_len     bytes of the frame in the request slot
//      192     4   reply_len       bytes of the frame in the reply slot
//      256     4   daemon_waiting  nonzero while the daemon sleeps on
//                                  request_seq (the client wakes it only then)
//      320     4   client_waiting  nonzero while the client sleeps on
//                                  reply_seq (the daemon wakes it only then)
//      384     8   request_posted  CLOCK_MONOTONIC µs at which the client
//                                  rang (written before request_seq)
//      448     8   reply_posted    CLOCK_MONOTONIC µs at which the daemon
//                                  answered (written before reply_seq)
//      512     8   reply_progress  (request_seq << 32) | bytes: while it
//                                  serves a large PREAD into the bulk
//                                  region (buffered: page by page;
//                                  direct: device piece by piece), the
//                                  daemon stores how many
//                                  of the reply's bytes are already there,
//                                  so that a polling client copies them
//                                  out while the rest is read (written
//                                  after the bytes, before reply_seq;
//                                  the client clears it before it rings
//                                  such a read)
//     4096   72K   request slot
//    77824   72K   reply slot
//
// Words are native-endian (both ends are on one host) and accessed
// atomically; each waiter sets its "waiting" word, re-checks the sequence
// and only then sleeps, and each waker stores the sequence before it reads
// the "waiting" word (all sequentially consistent), so a wake-up is never
// lost. Every sleep is also bounded (FutexWait's timeout), and each side
// looks at the socket on a deadline however its sleeps end: a peer that
// lies in the "waiting" words delays only itself, and a peer that dies is
// noticed.
//
// The two timestamps only tell each side how long the other took, for
// spin_policy.h; a peer that lies in them misleads only its own waits.
// reply_progress is a hint of the same kind: the client copies at most the
// request's length, and what the reply finally counts is all the caller is
// told was read. Bytes past that count may have been copied into the
// caller's buffer (a read that failed after some pages, a lying daemon):
// the buffer past a read's count is scratch.
//
// Neither side trusts the other's words. The daemon in particular reads
// the request length once, bounds it, and copies the frame out of shared
// memory before decoding it: the client may scribble on the region at any
// time.
#ifndef ZFILE_PROTOCOL_DOORBELL_H_
#define ZFILE_PROTOCOL_DOORBELL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "base/status.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/shm_region.h"
#include "protocol/spin_policy.h"
#include "protocol/unique_fd.h"

namespace zfile::protocol {

inline constexpr size_t kDoorbellRequestSeqOffset = 0;
inline constexpr size_t kDoorbellReplySeqOffset = 64;
inline constexpr size_t kDoorbellRequestLenOffset = 128;
inline constexpr size_t kDoorbellReplyLenOffset = 192;
inline constexpr size_t kDoorbellDaemonWaitingOffset = 256;
inline constexpr size_t kDoorbellClientWaitingOffset = 320;
inline constexpr size_t kDoorbellRequestPostedOffset = 384;
inline constexpr size_t kDoorbellReplyPostedOffset = 448;
inline constexpr size_t kDoorbellReplyProgressOffset = 512;
// A PREAD into the bulk region of at least kPipelinedReadMin bytes moves
// reply_progress on every kPipelinedReadPiece bytes or more, as the
// cache's pages are copied or, for a direct read of more than one device
// piece (128 KiB, FileInode), as the pieces are read; the rest only in the
// reply's count.
inline constexpr uint64_t kPipelinedReadPiece = 64 * 1024;
inline constexpr uint64_t kPipelinedReadMin = 2 * kPipelinedReadPiece;
// reply_progress's value for `bytes` of the reply to request `seq`.
inline constexpr uint64_t ReplyProgress(uint32_t seq, uint32_t bytes) {
  return (uint64_t{seq} << 32) | bytes;
}
// Every byte count of a region fits in reply_progress's 32 bits.
static_assert(kMaxShmSize <= UINT32_MAX);
inline constexpr size_t kDoorbellSlotSize = 72 * 1024;
inline constexpr size_t kDoorbellRequestSlotOffset = 4096;
inline constexpr size_t kDoorbellReplySlotOffset = kDoorbellRequestSlotOffset + kDoorbellSlotSize;
inline constexpr uint64_t kDoorbellRegionSize = kDoorbellReplySlotOffset + kDoorbellSlotSize;
// The largest frame either side may put in a slot.
inline constexpr size_t kMaxFrameSize = kFrameHeaderSize + kMaxPayloadSize;
static_assert(kMaxFrameSize <= kDoorbellSlotSize);
static_assert(kDoorbellRegionSize % 4096 == 0);

// A mapping of a doorbell region (read and write), unmapped on destruction.
class DoorbellMap {
 public:
  // Maps kDoorbellRegionSize bytes of `fd`, which the caller has checked
  // (CheckShmRegion) or created (CreateShmRegion).
  static Result<DoorbellMap> Map(int fd);

  DoorbellMap() = default;

  bool mapped() const { return map_.mapped(); }
  uint8_t* base() const { return map_.data(); }

  // The 32-bit word at `offset` (one of the offsets above).
  std::atomic_ref<uint32_t> Word(size_t offset) const {
    return std::atomic_ref<uint32_t>(*WordAddress(offset));
  }
  // The 64-bit word at `offset` (a timestamp).
  std::atomic_ref<uint64_t> Word64(size_t offset) const {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base() + offset));
  }
  uint32_t* WordAddress(size_t offset) const {
    return reinterpret_cast<uint32_t*>(base() + offset);
  }
  uint8_t* RequestSlot() const { return base() + kDoorbellRequestSlotOffset; }
  uint8_t* ReplySlot() const { return base() + kDoorbellReplySlotOffset; }

 private:
  explicit DoorbellMap(ShmMapping map) : map_(std::move(map)) {}
  ShmMapping map_;
};

// Sleeps while *word == expected, at most `timeout_us` microseconds (a
// shared futex: the word may be in memory mapped by another process).
// Returns false when the time ran out, true otherwise (woken, the word
// differed already, or a signal): callers re-check their condition either
// way.
bool FutexWait(uint32_t* word, uint32_t expected, uint32_t timeout_us);
// Wakes one sleeper on *word.
void FutexWake(uint32_t* word);

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_DOORBELL_H_
