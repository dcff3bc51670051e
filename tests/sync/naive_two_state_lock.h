// A naive two-state lock, the baseline the fairness gate is measured
// against (tests/sync and bench/lock_bench): the bcachefs algorithm, one
// signed counter, same-state joins always succeed and the other state spins
// until the count is zero, so a steady stream of one state starves the other.
#ifndef ZFILE_TESTS_SYNC_NAIVE_TWO_STATE_LOCK_H_
#define ZFILE_TESTS_SYNC_NAIVE_TWO_STATE_LOCK_H_

#include <atomic>
#include <cstdint>
#include <thread>

#include "sync/two_state_lock.h"

namespace zfile::testing {

class NaiveTwoStateLock {
 public:
  bool try_lock(LockState s) {
    int64_t v = v_.load(std::memory_order_relaxed);
    const int64_t d = s == LockState::kDirect ? 1 : -1;
    for (;;) {
      if (v != 0 && (v > 0) != (d > 0)) return false;
      if (v_.compare_exchange_weak(v, v + d, std::memory_order_acquire)) return true;
    }
  }
  void lock(LockState s) {
    while (!try_lock(s)) std::this_thread::yield();
  }
  void unlock(LockState s) {
    v_.fetch_sub(s == LockState::kDirect ? 1 : -1, std::memory_order_release);
  }

 private:
  std::atomic<int64_t> v_{0};  // > 0: DIRECT holders; < 0: BUFFERED holders
};

}  // namespace zfile::testing

#endif  // ZFILE_TESTS_SYNC_NAIVE_TWO_STATE_LOCK_H_
