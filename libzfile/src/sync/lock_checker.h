// LockChecker: the debug-build checker of TwoStateLock (a small lockdep).
//
// It tracks, per request, the TwoStateLock holds the request has, and
// reports two kinds of bugs:
//  - Self-deadlock (an error): a request is about to wait for a lock it
//    already holds, in either state. Holding BUFFERED and waiting for DIRECT
//    can never succeed; holding BUFFERED and queueing for BUFFERED behind a
//    closed gate cannot either, since the waiter the gate was closed for
//    waits for this request's hold. The report names the lock and both call
//    sites; the acquire fails with EDEADLK instead of hanging.
//  - Lock-order inversion (a warning): a request holding lock A acquires
//    lock B, and some request earlier held B and acquired A. Run at the same
//    time, the two orders can deadlock. The report names both locks and the
//    call sites of both orders; the acquire proceeds. Each pair of locks is
//    reported once. States do not matter: even two orders that take both
//    locks in BUFFERED state deadlock once waiters close the locks' gates.
//    Only waiting acquires (Lock, LockFor) count as the second lock of an
//    order: a try-lock cannot wait, so it cannot close a cycle.
//
// A request is, by default, the calling thread; ScopedRequest makes a thread
// act for another request (e.g. one that moves between worker threads). A
// hold stays with the request that took it until it is released, on
// whichever thread, or disowned (LockHold::Disown).
//
// The registry is global and guarded by one mutex: this is for debug builds
// only. In release builds (NDEBUG) TwoStateLock never calls the checker, so
// it costs nothing; the functions still exist, and reports never happen.
#ifndef ZFILE_SYNC_LOCK_CHECKER_H_
#define ZFILE_SYNC_LOCK_CHECKER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <source_location>
#include <string>

#include "sync/two_state_lock.h"

namespace zfile {

class LockChecker {
 public:
  static constexpr bool kEnabled = TwoStateLock::kCheckerEnabled;

  using ReportHandler = std::function<void(const std::string&)>;
  // Installs where reports go (an empty function restores the default, which
  // prints to stderr); returns the previous handler. The handler is called
  // without any lock held, on the thread of the offending acquire.
  static ReportHandler SetReportHandler(ReportHandler handler);

  // While alive, the calling thread acts for request `id` (any value but 0;
  // values with the top bit set are reserved for threads). Nests.
  class ScopedRequest {
   public:
    explicit ScopedRequest(uint64_t id);
    ~ScopedRequest();
    ScopedRequest(const ScopedRequest&) = delete;
    ScopedRequest& operator=(const ScopedRequest&) = delete;

   private:
    uint64_t previous_;
  };

  // The request the calling thread acts for.
  static uint64_t CurrentRequest();
  // Number of holds the calling thread's request has (for tests).
  static size_t HoldsOfCurrentRequest();

 private:
  friend class TwoStateLock;
  friend class LockHold;

  struct Deadlock {
    std::string report;   // for the handler
    std::string message;  // for the EDEADLK Status
  };

  // Before a waiting acquire of `lock_id`: checks and records the order of
  // the request's held locks against it; reports an inversion.
  static void CheckOrder(uint64_t lock_id, const std::string& name, LockState s,
                         const std::source_location& where);
  // The request is about to wait for `lock_id` in state `s`: the deadlock,
  // when the request holds the lock. Does not report; the caller does, once
  // it has dropped its own mutex.
  static std::optional<Deadlock> CheckWait(uint64_t lock_id, const std::string& name, LockState s,
                                           const std::source_location& where);
  // Records a hold for the current request; returns its id for OnReleased.
  static uint64_t OnAcquired(uint64_t lock_id, const std::string* name, LockState s,
                             const std::source_location& where);
  // Forgets a hold (released or disowned), whichever thread calls.
  static void OnReleased(uint64_t hold_id);
  // The lock is destroyed: forget the order edges that name it.
  static void ForgetLock(uint64_t lock_id);
  static uint64_t NewLockId();
  static void Report(const std::string& text);
};

}  // namespace zfile

#endif  // ZFILE_SYNC_LOCK_CHECKER_H_
