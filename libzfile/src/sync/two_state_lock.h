// TwoStateLock: a fair lock with two shared states, BUFFERED and DIRECT.
//
// Every file has one. Buffered I/O holds it in the BUFFERED state and direct
// I/O in the DIRECT state: any number of holders share a state, the two
// states exclude each other (SPEC 5). Unlike a reader/writer lock, neither
// state is exclusive, so parallel direct writes to one file do not serialise.
//
// Contracts:
//  - Same-state acquire of a free lock, or of a lock held in that state with
//    no gate closed, is one compare-and-swap; release is one compare-and-swap
//    unless waiters are queued and the releaser is the last holder.
//  - A hold (LockHold) is a token, not a thread property: it can be moved to
//    and released on any thread (direct I/O takes the lock at submission and
//    a completion drops it).
//  - Fairness: a waiter that has waited kFairnessDelay closes the gate: from
//    then on newcomers of the held state queue too, the holders drain, and
//    the last one admits the whole queue of the other state at once. When
//    both states have waiters, admission alternates, so neither state
//    starves: a waiter waits at most about kFairnessDelay plus the time the
//    holders present when the gate closed (and one batch of the other state)
//    take to release.
//  - A request that waits for a lock it already holds (in either state, or
//    in the same state behind a closed gate) deadlocks. Debug builds detect
//    it (see lock_checker.h) and fail the acquire with EDEADLK; release
//    builds hang. The raw interface (lock/try_lock/unlock) is never checked.
//
// Algorithm. All fast-path state is one 64-bit atomic word:
//
//    bits 0-31  number of holders (the whole admitted batch, when handed over)
//    bit  32    the held state: 0 BUFFERED, 1 DIRECT (stale when free)
//    bit  33    WAITERS: somebody is queued; the last releaser must hand over
//    bit  34    GATE: a queued waiter has waited kFairnessDelay; the fast path
//               fails for everybody, so newcomers of the held state queue
//
// Fast path (inline below): acquire CASes count+1 (setting the state bit when
// the count was 0) if GATE is clear and the lock is free or held in the
// requested state; release CASes count-1 unless it would drop a count of 1
// while WAITERS is set. Everything else goes to the slow path, which runs
// under a mutex that guards the wait queues (a count and a batch number per
// state, one condition variable per state). The slow path changes the word
// only by CAS and recomputes it from the queues every time: enqueueing sets
// WAITERS in the same CAS that checks the lock is still unavailable, so a
// concurrent last release either sees WAITERS (and takes the slow path) or
// makes the waiter's CAS fail; the last releaser replaces "count 1" by
// "count = number of queued waiters of the next state, state = next" in one
// CAS and wakes only that state's condition variable. Hence the count never
// drops to zero while anyone is queued, and a newcomer can never find the
// lock free while others wait. The gate is closed by the waiters themselves
// (each sleeps at most until its queue has waited kFairnessDelay) and is
// recomputed on every change of the queues: after a hand-over it stays
// closed if the queue left behind has already waited kFairnessDelay (with
// both states contending, batches simply alternate), and it opens, letting
// the held back newcomers join, when a timed-out waiter leaves an empty
// queue. The slow path never touches the word's count except by these
// hand-overs, so up to 2^32-1 holders are supported.
#ifndef ZFILE_SYNC_TWO_STATE_LOCK_H_
#define ZFILE_SYNC_TWO_STATE_LOCK_H_

#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <source_location>
#include <string>
#include <utility>

#include "base/status.h"

namespace zfile {

enum class LockState : uint8_t { kBuffered, kDirect };

// "BUFFERED" / "DIRECT".
const char* LockStateName(LockState s);

class TwoStateLock;

// A hold of a TwoStateLock in one state. Move-only; released on destruction
// or by Release(), on any thread. The lock must outlive its holds.
class LockHold {
 public:
  LockHold() = default;
  LockHold(LockHold&& other) noexcept
      : lock_(std::exchange(other.lock_, nullptr)),
        state_(other.state_),
        check_id_(std::exchange(other.check_id_, 0)) {}
  LockHold& operator=(LockHold&& other) noexcept;
  LockHold(const LockHold&) = delete;
  LockHold& operator=(const LockHold&) = delete;
  ~LockHold() { Release(); }

  // Releases the hold if it is held; idempotent.
  void Release();
  bool held() const { return lock_ != nullptr; }
  explicit operator bool() const { return held(); }
  // The state the hold was taken in (kept after Release()).
  LockState state() const { return state_; }
  TwoStateLock* lock() const { return lock_; }

  // Debug checker only (no-op in release builds): the hold stops counting as
  // held by the request that took it, because it now belongs to something
  // else (e.g. the completion of an asynchronous direct I/O). Without this, a
  // request that submits direct I/O and then waits for the lock in the other
  // state before the completion releases it is reported as a self-deadlock.
  void Disown();

 private:
  friend class TwoStateLock;
  LockHold(TwoStateLock* lock, LockState state, uint64_t check_id)
      : lock_(lock), state_(state), check_id_(check_id) {}

  TwoStateLock* lock_ = nullptr;
  LockState state_ = LockState::kBuffered;
  uint64_t check_id_ = 0;  // the checker's record of this hold; 0 when none
};

class TwoStateLock {
 public:
  // How long a queued waiter lets newcomers of the held state join before it
  // closes the gate.
  static constexpr std::chrono::microseconds kFairnessDelay{2000};

#ifdef NDEBUG
  static constexpr bool kCheckerEnabled = false;
#else
  static constexpr bool kCheckerEnabled = true;
#endif

  // Slow-path counters, for tests and benchmarks. Kept under the slow-path
  // mutex, so they cost nothing on the fast path (and do not count it).
  struct Stats {
    uint64_t waits = 0;                    // acquires admitted after queueing
    uint64_t timeouts = 0;                 // LockFor calls that gave up after queueing
    uint64_t admissions = 0;               // batches admitted (all queued waiters of a state)
    uint64_t gate_closures = 0;            // times the gate closed
    std::chrono::nanoseconds max_wait{0};  // longest queueing of an admitted waiter
    uint32_t queued_buffered = 0;          // waiters queued now
    uint32_t queued_direct = 0;
    bool gate_closed = false;  // the gate is closed now
  };

  // `name` identifies the lock in checker reports and error messages, e.g.
  // the file's path "cnv/0".
  explicit TwoStateLock(std::string name = "");
  // The lock must be free: no holds, no waiters.
  ~TwoStateLock();
  TwoStateLock(const TwoStateLock&) = delete;
  TwoStateLock& operator=(const TwoStateLock&) = delete;

  // Waits as long as needed. Fails only with EDEADLK from the debug checker.
  Result<LockHold> Lock(LockState s, std::source_location where = std::source_location::current());
  // Never waits: EAGAIN when the lock is not available at once (held in the
  // other state, or its gate is closed).
  Result<LockHold> TryLock(LockState s,
                           std::source_location where = std::source_location::current());
  // Waits at most `timeout`, then EAGAIN (EDEADLK from the debug checker, as
  // Lock). A non-positive timeout never waits.
  Result<LockHold> LockFor(LockState s, std::chrono::nanoseconds timeout,
                           std::source_location where = std::source_location::current());

  // Raw interface for benchmarks and hot paths: no Result, no RAII, no
  // checker. unlock() may be called on any thread, once per successful
  // lock()/try_lock() of the same state.
  bool try_lock(LockState s) { return TryFast(s); }
  void lock(LockState s) {
    if (!TryFast(s)) (void)WaitSlow(s, Clock::time_point::max(), nullptr);  // cannot fail
  }
  void unlock(LockState s);

  const std::string& name() const { return name_; }
  Stats stats() const;

 private:
  friend class LockHold;
  using Clock = std::chrono::steady_clock;

  static constexpr uint64_t kCountMask = 0xFFFF'FFFFull;
  static constexpr uint64_t kDirectBit = 1ull << 32;
  static constexpr uint64_t kWaitersBit = 1ull << 33;
  static constexpr uint64_t kGateBit = 1ull << 34;

  static constexpr uint64_t StateBit(LockState s) {
    return s == LockState::kDirect ? kDirectBit : 0;
  }
  static constexpr LockState StateOf(uint64_t w) {
    return (w & kDirectBit) != 0 ? LockState::kDirect : LockState::kBuffered;
  }
  static constexpr int Idx(LockState s) { return s == LockState::kDirect ? 1 : 0; }
  static constexpr LockState Other(LockState s) {
    return s == LockState::kDirect ? LockState::kBuffered : LockState::kDirect;
  }
  // The word after `s` joins, or 0 when `s` cannot join without waiting.
  static constexpr uint64_t Joined(uint64_t w, LockState s) {
    if ((w & kCountMask) == 0) {
      return (w & (kWaitersBit | kGateBit)) == 0 ? (StateBit(s) | 1) : 0;
    }
    return (w & (kGateBit | kDirectBit)) == StateBit(s) ? w + 1 : 0;
  }

  bool TryFast(LockState s) {
    uint64_t w = word_.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t next = Joined(w, s);
      if (next == 0) return false;
      if (word_.compare_exchange_weak(w, next, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  // What the slow path does to the word and the queues, computed under mu_.
  struct Plan {
    uint64_t word = 0;
    int admit = -1;  // Idx() of the state whose queue is admitted, or -1
  };
  Plan PlanLocked(uint64_t w, Clock::time_point now) const;
  void ApplyLocked(const Plan& p, uint64_t old_word);
  void UpdateLocked(Clock::time_point now);

  // Queues until admitted or `deadline`. `where` is null for the raw
  // interface (no checker).
  Status WaitSlow(LockState s, Clock::time_point deadline, const std::source_location* where);
  void UnlockSlow();
  Result<LockHold> Acquire(LockState s, bool may_wait, Clock::time_point deadline,
                           const std::source_location& where);
  void ReleaseHold(LockState s, uint64_t check_id);
  std::string Label() const;
  std::string BusyMessage(uint64_t w, LockState s) const;

  std::atomic<uint64_t> word_{0};
  const std::string name_;
  const uint64_t id_;  // the checker's identity for this lock (never reused)

  mutable std::mutex mu_;
  uint32_t queued_[2] = {0, 0};    // waiters queued, by state
  uint64_t batch_[2] = {0, 0};     // admissions so far, by state: a waiter's ticket
  Clock::time_point oldest_[2];    // when the first waiter of the queue arrived
  std::condition_variable cv_[2];  // waiters of one state
  Stats stats_;
};

inline void TwoStateLock::unlock(LockState s) {
  uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    assert((w & kCountMask) != 0 && "unlock of a free TwoStateLock");
    assert(StateOf(w) == s && "unlock of a TwoStateLock in the state it is not held in");
    (void)s;
    if ((w & kCountMask) == 1 && (w & kWaitersBit) != 0) return UnlockSlow();
    if (word_.compare_exchange_weak(w, w - 1, std::memory_order_release,
                                    std::memory_order_relaxed)) {
      return;
    }
  }
}

inline void LockHold::Release() {
  if (lock_ != nullptr) std::exchange(lock_, nullptr)->ReleaseHold(state_, check_id_);
  check_id_ = 0;
}

inline LockHold& LockHold::operator=(LockHold&& other) noexcept {
  if (this != &other) {
    Release();
    lock_ = std::exchange(other.lock_, nullptr);
    state_ = other.state_;
    check_id_ = std::exchange(other.check_id_, 0);
  }
  return *this;
}

}  // namespace zfile

#endif  // ZFILE_SYNC_TWO_STATE_LOCK_H_
