// TwoStateLock slow paths; the algorithm is described in two_state_lock.h.
#include "sync/two_state_lock.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "sync/lock_checker.h"

namespace zfile {

const char* LockStateName(LockState s) { return s == LockState::kDirect ? "DIRECT" : "BUFFERED"; }

void LockHold::Disown() {
  if constexpr (TwoStateLock::kCheckerEnabled) {
    if (check_id_ != 0) LockChecker::OnReleased(check_id_);
  }
  check_id_ = 0;
}

TwoStateLock::TwoStateLock(std::string name)
    : name_(std::move(name)), id_(LockChecker::NewLockId()) {}

TwoStateLock::~TwoStateLock() {
  assert((word_.load(std::memory_order_relaxed) & kCountMask) == 0 &&
         "TwoStateLock destroyed while held");
  assert(queued_[0] == 0 && queued_[1] == 0 && "TwoStateLock destroyed with waiters");
  if constexpr (kCheckerEnabled) LockChecker::ForgetLock(id_);
}

std::string TwoStateLock::Label() const {
  if (!name_.empty()) return "lock '" + name_ + "'";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "lock %p", static_cast<const void*>(this));
  return buf;
}

std::string TwoStateLock::BusyMessage(uint64_t w, LockState s) const {
  const LockState held = StateOf(w);
  if ((w & kCountMask) != 0 && held != s) {
    return Label() + " is held in " + LockStateName(held) + " state";
  }
  return Label() + " is held in " + LockStateName(held) + " state and closed to new " +
         LockStateName(s) + " holders while a " + LockStateName(Other(s)) +
         " request waits its turn";
}

TwoStateLock::Stats TwoStateLock::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  Stats s = stats_;
  s.queued_buffered = queued_[0];
  s.queued_direct = queued_[1];
  s.gate_closed = (word_.load(std::memory_order_relaxed) & kGateBit) != 0;
  return s;
}

// The word the queues call for, given the current word `w` (with the
// caller's own release already subtracted from its count).
//  - Free lock with waiters: admit the queue of the state other than the
//    last held one if it has waiters, else the other queue. This alternates
//    when both states wait.
//  - Held lock: its own state's queue (newcomers that met a closed gate)
//    joins as soon as the gate is open again, i.e. when the other queue has
//    emptied (timeouts) or is young.
//  - The gate is closed while the queue of the state not held is older than
//    kFairnessDelay.
TwoStateLock::Plan TwoStateLock::PlanLocked(uint64_t w, Clock::time_point now) const {
  uint64_t count = w & kCountMask;
  LockState held = StateOf(w);
  uint32_t queued[2] = {queued_[0], queued_[1]};
  Plan p;
  auto aged = [&](LockState s) {
    return queued[Idx(s)] != 0 && now - oldest_[Idx(s)] >= kFairnessDelay;
  };
  if (count == 0) {
    if (queued[Idx(Other(held))] != 0) {
      held = Other(held);
    } else if (queued[Idx(held)] == 0) {
      p.word = StateBit(held);
      return p;
    }
    count = queued[Idx(held)];
    p.admit = Idx(held);
    queued[Idx(held)] = 0;
  } else if (queued[Idx(held)] != 0 && !aged(Other(held))) {
    count += queued[Idx(held)];
    p.admit = Idx(held);
    queued[Idx(held)] = 0;
  }
  p.word = count | StateBit(held) | (queued[0] + queued[1] != 0 ? kWaitersBit : 0) |
           (aged(Other(held)) ? kGateBit : 0);
  return p;
}

void TwoStateLock::ApplyLocked(const Plan& p, uint64_t old_word) {
  if ((p.word & kGateBit) != 0 && (old_word & kGateBit) == 0) ++stats_.gate_closures;
  if (p.admit < 0) return;
  queued_[p.admit] = 0;
  ++batch_[p.admit];
  ++stats_.admissions;
  // Notified under mu_: once an admitted waiter can run, it may release and
  // the owner may destroy the lock, condition variables included.
  cv_[p.admit].notify_all();
}

void TwoStateLock::UpdateLocked(Clock::time_point now) {
  uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    const Plan p = PlanLocked(w, now);
    if (p.word == w && p.admit < 0) return;
    if (word_.compare_exchange_weak(w, p.word, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
      return ApplyLocked(p, w);
    }
  }
}

void TwoStateLock::UnlockSlow() {
  std::lock_guard<std::mutex> l(mu_);
  const Clock::time_point now = Clock::now();
  uint64_t w = word_.load(std::memory_order_relaxed);
  for (;;) {
    assert((w & kCountMask) != 0);
    const Plan p = PlanLocked(w - 1, now);
    if (word_.compare_exchange_weak(w, p.word, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
      return ApplyLocked(p, w);
    }
  }
}

Status TwoStateLock::WaitSlow(LockState s, Clock::time_point deadline,
                              const std::source_location* where) {
  std::unique_lock<std::mutex> l(mu_);
  const int me = Idx(s);
  const Clock::time_point start = Clock::now();
  uint64_t w = word_.load(std::memory_order_relaxed);
  bool checked = false;
  uint64_t ticket = 0;
  for (;;) {
    if (const uint64_t next = Joined(w, s); next != 0) {
      if (word_.compare_exchange_weak(w, next, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return Status::Ok();
      }
      continue;
    }
    if (start >= deadline) return Status(EAGAIN, BusyMessage(w, s));
    if constexpr (kCheckerEnabled) {
      if (where != nullptr && !checked) {
        checked = true;
        auto deadlock = LockChecker::CheckWait(id_, name_, s, *where);
        if (deadlock) {
          l.unlock();
          LockChecker::Report(deadlock->report);
          return Status(EDEADLK, deadlock->message);
        }
      }
    }
    // Enqueue, and set WAITERS in the same CAS that confirms the lock is
    // still unavailable in the word we planned from.
    const Clock::time_point saved_oldest = oldest_[me];
    if (queued_[me]++ == 0) oldest_[me] = start;
    const Plan p = PlanLocked(w, start);
    if (word_.compare_exchange_strong(w, p.word, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      ticket = batch_[me];
      ApplyLocked(p, w);
      break;
    }
    --queued_[me];
    oldest_[me] = saved_oldest;
  }

  bool closed_gate = false;
  for (;;) {
    if (batch_[me] != ticket) {
      ++stats_.waits;
      stats_.max_wait = std::max<std::chrono::nanoseconds>(stats_.max_wait, Clock::now() - start);
      return Status::Ok();
    }
    const Clock::time_point now = Clock::now();
    const Clock::time_point gate_at = oldest_[me] + kFairnessDelay;
    if (now >= deadline) {
      --queued_[me];
      ++stats_.timeouts;
      UpdateLocked(now);  // may open the gate, admit same-state newcomers, clear WAITERS
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - start);
      return Status(EAGAIN, "gave up after " + std::to_string(us.count()) + " us waiting for " +
                                Label() + " in " + LockStateName(s) + " state (" +
                                BusyMessage(word_.load(std::memory_order_relaxed), s) + ")");
    }
    if (now >= gate_at && !closed_gate) {
      // Our queue has waited long enough: close the gate, unless the lock
      // is held in our own state (then the other queue is the one to close
      // it, and the next hand-over recomputes it for us).
      closed_gate = true;
      UpdateLocked(now);
      continue;
    }
    const Clock::time_point wake = now < gate_at ? std::min(gate_at, deadline) : deadline;
    if (wake == Clock::time_point::max()) {
      cv_[me].wait(l);
    } else {
      cv_[me].wait_until(l, wake);
    }
  }
}

Result<LockHold> TwoStateLock::Acquire(LockState s, bool may_wait, Clock::time_point deadline,
                                       const std::source_location& where) {
  if constexpr (kCheckerEnabled) {
    // Try-locks never wait, so they cannot take part in a deadlock cycle.
    if (may_wait) LockChecker::CheckOrder(id_, name_, s, where);
  }
  if (!TryFast(s)) {
    if (!may_wait) return Status(EAGAIN, BusyMessage(word_.load(std::memory_order_relaxed), s));
    ZF_RETURN_IF_ERROR(WaitSlow(s, deadline, &where));
  }
  uint64_t check_id = 0;
  if constexpr (kCheckerEnabled) check_id = LockChecker::OnAcquired(id_, &name_, s, where);
  return LockHold(this, s, check_id);
}

Result<LockHold> TwoStateLock::Lock(LockState s, std::source_location where) {
  return Acquire(s, true, Clock::time_point::max(), where);
}

Result<LockHold> TwoStateLock::TryLock(LockState s, std::source_location where) {
  return Acquire(s, false, Clock::time_point::max(), where);
}

Result<LockHold> TwoStateLock::LockFor(LockState s, std::chrono::nanoseconds timeout,
                                       std::source_location where) {
  const Clock::time_point now = Clock::now();
  Clock::time_point deadline = now;
  if (timeout > Clock::time_point::max() - now) {
    deadline = Clock::time_point::max();
  } else if (timeout > std::chrono::nanoseconds::zero()) {
    deadline = now + std::chrono::duration_cast<Clock::duration>(timeout);
  }
  return Acquire(s, true, deadline, where);
}

void TwoStateLock::ReleaseHold(LockState s, uint64_t check_id) {
  // Forget the hold before the lock can go to someone else, so that the
  // acquiring request, if it continues on another thread, is never seen
  // holding what it no longer holds.
  if constexpr (kCheckerEnabled) {
    if (check_id != 0) LockChecker::OnReleased(check_id);
  }
  (void)check_id;
  unlock(s);
}

}  // namespace zfile
