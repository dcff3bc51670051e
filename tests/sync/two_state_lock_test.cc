// TwoStateLock and its debug checker.
//
// Timing: these machines are shared and noisy, so nothing here asserts a
// tight bound. Waits for another thread to reach a point poll the lock's
// stats with a generous deadline (WaitUntil), and the fairness bounds are
// two orders of magnitude above what the algorithm needs (kFairnessDelay).
#include "sync/two_state_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "naive_two_state_lock.h"
#include "sync/lock_checker.h"

namespace zfile {
namespace {

using Clock = std::chrono::steady_clock;
using testing::NaiveTwoStateLock;
using std::chrono::milliseconds;
constexpr LockState kB = LockState::kBuffered;
constexpr LockState kD = LockState::kDirect;

// Polls `cond` until it holds or `limit` passes; returns whether it held.
bool WaitUntil(const std::function<bool()>& cond, milliseconds limit = milliseconds(10000)) {
  const auto end = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Call sites pass through, so the checker's reports name the caller.
LockHold MustLock(TwoStateLock& l, LockState s,
                  std::source_location where = std::source_location::current()) {
  auto r = l.Lock(s, where);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : LockHold();
}

TEST(TwoStateLockTest, StateNames) {
  EXPECT_STREQ(LockStateName(kB), "BUFFERED");
  EXPECT_STREQ(LockStateName(kD), "DIRECT");
}

TEST(TwoStateLockTest, HoldIsMovableAndReleasesOnce) {
  TwoStateLock lock("move");
  Result<LockHold> r = lock.Lock(kD);
  ASSERT_TRUE(r.ok());
  LockHold a = std::move(r).value();
  EXPECT_TRUE(a.held());
  EXPECT_EQ(a.state(), kD);
  LockHold b = std::move(a);
  EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_TRUE(b);
  EXPECT_FALSE(lock.TryLock(kB).ok());
  LockHold c;
  c = std::move(b);
  c.Release();
  c.Release();
  EXPECT_FALSE(c.held());
  EXPECT_EQ(c.state(), kD);
  EXPECT_TRUE(lock.TryLock(kB).ok());  // released exactly once: free
}

TEST(TwoStateLockTest, SameStateShares) {
  TwoStateLock lock("share");
  for (LockState s : {kB, kD}) {
    LockHold a = MustLock(lock, s);
    auto b = lock.TryLock(s);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    std::thread t([&] {
      auto c = lock.Lock(s);
      EXPECT_TRUE(c.ok());
    });
    t.join();
  }
}

// N threads take random states through every interface; counters inside the
// critical section check that the states never overlap and that a state is
// actually shared.
TEST(TwoStateLockTest, StressStatesExcludeEachOtherAndShare) {
  TwoStateLock lock("stress");
  std::atomic<int> inside[2] = {0, 0};
  std::atomic<int> max_inside[2] = {0, 0};
  std::atomic<int> overlaps{0};
  std::atomic<uint64_t> entries{0};
  const auto end = Clock::now() + milliseconds(600);
  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    while (Clock::now() < end) {
      const LockState s = rng() % 2 ? kB : kD;
      const int me = s == kD ? 1 : 0;
      LockHold hold;
      bool raw = false;
      switch (rng() % 4) {
        case 0: {
          auto r = lock.TryLock(s);
          if (!r.ok()) {
            EXPECT_EQ(r.status().err(), EAGAIN);
            continue;
          }
          hold = std::move(r).value();
          break;
        }
        case 1: {
          auto r = lock.LockFor(s, std::chrono::microseconds(rng() % 3000));
          if (!r.ok()) {
            EXPECT_EQ(r.status().err(), EAGAIN) << r.status().ToString();
            continue;
          }
          hold = std::move(r).value();
          break;
        }
        case 2:
          lock.lock(s);
          raw = true;
          break;
        default:
          hold = MustLock(lock, s);
      }
      const int n = inside[me].fetch_add(1) + 1;
      if (inside[1 - me].load() != 0) overlaps.fetch_add(1);
      int m = max_inside[me].load();
      while (n > m && !max_inside[me].compare_exchange_weak(m, n)) {
      }
      entries.fetch_add(1);
      if (rng() % 8 == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else {
        for (int i = 0; i < 200; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
      }
      if (inside[1 - me].load() != 0) overlaps.fetch_add(1);
      inside[me].fetch_sub(1);
      if (raw) {
        lock.unlock(s);
      } else {
        hold.Release();
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 4; ++i) threads.emplace_back(worker, 1234 + i);
  for (auto& t : threads) t.join();
  const auto st = lock.stats();
  std::printf(
      "entries %llu, max sharing BUFFERED %d DIRECT %d, slow-path waits %llu, "
      "batches %llu, gate closures %llu, timeouts %llu, max wait %.2f ms\n",
      static_cast<unsigned long long>(entries.load()), max_inside[0].load(), max_inside[1].load(),
      static_cast<unsigned long long>(st.waits), static_cast<unsigned long long>(st.admissions),
      static_cast<unsigned long long>(st.gate_closures),
      static_cast<unsigned long long>(st.timeouts), Ms(st.max_wait));
  EXPECT_EQ(overlaps.load(), 0) << "BUFFERED and DIRECT holders overlapped";
  EXPECT_GE(std::max(max_inside[0].load(), max_inside[1].load()), 2)
      << "no two holders of one state ever overlapped";
  EXPECT_GT(entries.load(), 100u);
  EXPECT_EQ(st.queued_buffered + st.queued_direct, 0u);
  EXPECT_TRUE(lock.TryLock(kB).ok());
  EXPECT_TRUE(lock.TryLock(kD).ok());
}


// A saturating stream of `s` holders: each thread takes a new hold before it
// drops its previous one, so the count never reaches zero while the lock lets
// them join. When it does not (the gate), the thread drops its hold and then
// waits: a thread that waited while holding would deadlock on a fair lock.
// Runs until `stop` or `stop_at`; `holding` counts threads in the stream.
template <typename L>
void RunStream(L& lock, LockState s, std::atomic<int>& holding, const std::atomic<bool>& stop,
               Clock::time_point stop_at) {
  lock.lock(s);
  holding.fetch_add(1);
  while (!stop.load() && Clock::now() < stop_at) {
    for (int i = 0; i < 100; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
    if (lock.try_lock(s)) {
      lock.unlock(s);  // the older hold: the thread still has the new one
    } else {
      lock.unlock(s);
      lock.lock(s);
    }
  }
  lock.unlock(s);
}

struct StreamResult {
  Clock::duration wait;
  bool in_before_stream_stopped;
};

// Starts a stream of `stream_state` with 3 threads, waits until it is
// saturating, then measures how long an acquire of the other state waits.
template <typename L>
StreamResult WaitUnderStream(L& lock, LockState stream_state, Clock::duration stream_limit) {
  std::atomic<int> holding{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> stream;
  const Clock::time_point hard_stop = Clock::now() + milliseconds(20000);
  for (int i = 0; i < 3; ++i) {
    stream.emplace_back([&] { RunStream(lock, stream_state, holding, stop, hard_stop); });
  }
  EXPECT_TRUE(WaitUntil([&] { return holding.load() == 3; }));
  std::this_thread::sleep_for(milliseconds(5));  // the stream has been running for a while
  const Clock::time_point start = Clock::now();
  std::thread stopper([&] {
    while (!stop.load() && Clock::now() < start + stream_limit) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    stop.store(true);
  });
  const LockState other = stream_state == kB ? kD : kB;
  lock.lock(other);
  const Clock::time_point in = Clock::now();
  const bool before = !stop.exchange(true);
  lock.unlock(other);
  stopper.join();
  for (auto& t : stream) t.join();
  return {in - start, before};
}

class StarvationTest : public ::testing::TestWithParam<LockState> {};

TEST_P(StarvationTest, WaiterGetsInUnderSaturatingStream) {
  const LockState stream = GetParam();
  TwoStateLock lock("starve");
  const StreamResult r = WaitUnderStream(lock, stream, milliseconds(5000));
  const auto st = lock.stats();
  std::printf(
      "%s waiter under a %s stream got in after %.2f ms (fairness delay %lld us, "
      "gate closures %llu)\n",
      LockStateName(stream == kB ? kD : kB), LockStateName(stream), Ms(r.wait),
      static_cast<long long>(TwoStateLock::kFairnessDelay.count()),
      static_cast<unsigned long long>(st.gate_closures));
  EXPECT_TRUE(r.in_before_stream_stopped) << "the waiter only got in when the stream stopped";
  EXPECT_LT(r.wait, milliseconds(500));
  EXPECT_GE(st.gate_closures, 1u);
}

INSTANTIATE_TEST_SUITE_P(BothStates, StarvationTest, ::testing::Values(kB, kD),
                         [](const auto& p) { return std::string(LockStateName(p.param)); });

// The same stream against the naive lock: the other state gets in only when
// the stream stops. This is deterministic (the stream's count never reaches
// zero while it runs), and is what the gate prevents above.
TEST(TwoStateLockTest, NaiveLockStarvesUnderSameStream) {
  NaiveTwoStateLock naive;
  const StreamResult r = WaitUnderStream(naive, kB, milliseconds(200));
  std::printf(
      "naive lock: DIRECT waiter under a BUFFERED stream got in after %.2f ms, "
      "only when the stream stopped at 200 ms\n",
      Ms(r.wait));
  EXPECT_FALSE(r.in_before_stream_stopped);
  EXPECT_GE(r.wait, milliseconds(200));
}

// All waiters of a state queued while the lock is held in the other state are
// admitted together, by one hand-over.
TEST(TwoStateLockTest, WaitersOfOneStateAreAdmittedTogether) {
  TwoStateLock lock("batch");
  constexpr int kWaiters = 4;
  LockHold direct = MustLock(lock, kD);
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      LockHold h = MustLock(lock, kB);
      const int n = inside.fetch_add(1) + 1;
      int m = max_inside.load();
      while (n > m && !max_inside.compare_exchange_weak(m, n)) {
      }
      // Stay until every waiter is in (bounded, so a failure cannot hang).
      WaitUntil([&] { return inside.load() == kWaiters; }, milliseconds(5000));
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().queued_buffered == kWaiters; }));
  const auto before = lock.stats();
  direct.Release();
  for (auto& t : waiters) t.join();
  const auto after = lock.stats();
  EXPECT_EQ(max_inside.load(), kWaiters);
  EXPECT_EQ(after.admissions - before.admissions, 1u) << "admitted in more than one batch";
  EXPECT_EQ(after.waits - before.waits, static_cast<uint64_t>(kWaiters));
}

// With both states queued, admission alternates: the queue that waited first
// goes first, the other state's newcomers (queued behind the closed gate)
// next, as one batch each.
TEST(TwoStateLockTest, AdmissionAlternatesBetweenStates) {
  TwoStateLock lock("alternate");
  LockHold direct = MustLock(lock, kD);
  std::mutex mu;
  std::vector<LockState> order;
  std::atomic<int> in_b{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      LockHold h = MustLock(lock, kB);
      {
        std::lock_guard<std::mutex> l(mu);
        order.push_back(kB);
      }
      in_b.fetch_add(1);
      WaitUntil([&] { return in_b.load() == 3; }, milliseconds(5000));
      std::this_thread::sleep_for(milliseconds(5));  // long enough for the D queue to age
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().queued_buffered == 3; }));
  // The BUFFERED queue closes the gate after kFairnessDelay; from then on
  // DIRECT newcomers queue although the lock is held in DIRECT.
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().gate_closed; }));
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      LockHold h = MustLock(lock, kD);
      std::lock_guard<std::mutex> l(mu);
      order.push_back(kD);
    });
  }
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().queued_direct == 2; }));
  direct.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<LockState>{kB, kB, kB, kD, kD}));
  EXPECT_EQ(lock.stats().admissions, 2u);
}

// Direct I/O takes the lock at submission and its completion drops it.
TEST(TwoStateLockTest, HoldReleasedOnAnotherThread) {
  TwoStateLock lock("nonowner");
  LockHold hold;
  std::thread submitter([&] { hold = MustLock(lock, kD); });
  submitter.join();
  std::atomic<bool> got_in{false};
  std::thread waiter([&] {
    LockHold h = MustLock(lock, kB);
    got_in.store(true);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().queued_buffered == 1; }));
  EXPECT_FALSE(got_in.load());
  std::thread completion([h = std::move(hold)]() mutable { h.Release(); });
  completion.join();
  waiter.join();
  EXPECT_TRUE(got_in.load());
  EXPECT_TRUE(lock.TryLock(kD).ok());
}

TEST(TwoStateLockTest, TryLock) {
  TwoStateLock lock("cnv/0");
  LockHold direct = MustLock(lock, kD);
  auto busy = lock.TryLock(kB);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().err(), EAGAIN);
  EXPECT_NE(busy.status().message().find("'cnv/0' is held in DIRECT state"), std::string::npos)
      << busy.status().message();
  EXPECT_FALSE(lock.try_lock(kB));
  auto same = lock.TryLock(kD);  // no gate: joins
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  same->Release();
  direct.Release();

  // Gated: a DIRECT waiter closes the gate on BUFFERED newcomers.
  LockHold buffered = MustLock(lock, kB);
  std::thread waiter([&] { LockHold h = MustLock(lock, kD); });
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().gate_closed; }));
  auto gated = lock.TryLock(kB);
  ASSERT_FALSE(gated.ok());
  EXPECT_EQ(gated.status().err(), EAGAIN);
  EXPECT_NE(gated.status().message().find("closed to new BUFFERED holders"), std::string::npos)
      << gated.status().message();
  EXPECT_FALSE(lock.try_lock(kB));
  EXPECT_FALSE(lock.try_lock(kD));
  buffered.Release();
  waiter.join();
  EXPECT_TRUE(lock.TryLock(kB).ok());
}

TEST(TwoStateLockTest, LockForTimesOutAndLeavesLockConsistent) {
  TwoStateLock lock("timed");
  LockHold direct = MustLock(lock, kD);
  // A blocking waiter queued first must not lose its wake-up when a timed
  // waiter of the same state leaves the queue.
  std::atomic<bool> blocked_in{false};
  std::thread blocked([&] {
    LockHold h = MustLock(lock, kB);
    blocked_in.store(true);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().queued_buffered == 1; }));
  std::thread timed([&] {
    const auto start = Clock::now();
    auto r = lock.LockFor(kB, milliseconds(30));
    const auto waited = Clock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().err(), EAGAIN);
    EXPECT_NE(r.status().message().find("held in DIRECT state"), std::string::npos)
        << r.status().message();
    EXPECT_GE(waited, milliseconds(30));
  });
  timed.join();
  EXPECT_EQ(lock.stats().timeouts, 1u);
  EXPECT_EQ(lock.stats().queued_buffered, 1u);
  EXPECT_FALSE(blocked_in.load());
  direct.Release();
  blocked.join();
  EXPECT_TRUE(blocked_in.load());

  // A timed waiter that gives up after closing the gate must reopen it and
  // admit the newcomers it held back, while the lock is still held.
  LockHold buffered = MustLock(lock, kB);
  std::thread gater([&] {
    auto r = lock.LockFor(kD, milliseconds(100));
    EXPECT_FALSE(r.ok());
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().gate_closed; }));
  std::atomic<bool> newcomer_in{false};
  std::thread newcomer([&] {
    LockHold h = MustLock(lock, kB);
    newcomer_in.store(true);
  });
  gater.join();
  // The gate was closed for at most the 100 ms of the timed waiter. The
  // newcomer gets in while `buffered` is still held.
  EXPECT_TRUE(WaitUntil([&] { return newcomer_in.load(); }));
  newcomer.join();
  EXPECT_FALSE(lock.stats().gate_closed);
  buffered.Release();

  // Zero timeout: a try.
  LockHold d2 = MustLock(lock, kD);
  std::thread zero(
      [&] { EXPECT_EQ(lock.LockFor(kB, std::chrono::nanoseconds(0)).status().err(), EAGAIN); });
  zero.join();
  d2.Release();
  // Succeeds when the lock comes free in time.
  LockHold d3 = MustLock(lock, kD);
  std::thread in_time([&] {
    auto r = lock.LockFor(kB, milliseconds(20000));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().queued_buffered == 1; }));
  d3.Release();
  in_time.join();
}

// Captures checker reports for the duration of a test.
class ReportCapture {
 public:
  ReportCapture()
      : previous_(LockChecker::SetReportHandler([this](const std::string& r) {
          std::lock_guard<std::mutex> l(mu_);
          reports_.push_back(r);
        })) {}
  ~ReportCapture() { LockChecker::SetReportHandler(previous_); }
  std::vector<std::string> reports() {
    std::lock_guard<std::mutex> l(mu_);
    return reports_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> reports_;
  LockChecker::ReportHandler previous_;
};

#define SKIP_WITHOUT_CHECKER()                                                        \
  if (!TwoStateLock::kCheckerEnabled)                                                 \
  GTEST_SKIP() << "the lock checker is compiled out in this build (NDEBUG); run the " \
                  "asan or tsan preset"

bool Contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}
std::string AtLine(int line) { return "two_state_lock_test.cc:" + std::to_string(line); }

TEST(LockCheckerTest, SelfDeadlockIsReportedWithBothCallSites) {
  SKIP_WITHOUT_CHECKER();
  ReportCapture capture;
  TwoStateLock lock("cnv/0");
  const int held_line = __LINE__ + 1;
  LockHold b = MustLock(lock, kB);
  const int wait_line = __LINE__ + 1;
  auto r = lock.Lock(kD);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().err(), EDEADLK);
  EXPECT_TRUE(Contains(r.status().message(), "'cnv/0'")) << r.status().message();
  const auto reports = capture.reports();
  ASSERT_EQ(reports.size(), 1u);
  std::printf("%s\n", reports[0].c_str());
  EXPECT_TRUE(Contains(reports[0], "self-deadlock on 'cnv/0'")) << reports[0];
  EXPECT_TRUE(Contains(reports[0], AtLine(held_line))) << reports[0];
  EXPECT_TRUE(Contains(reports[0], AtLine(wait_line))) << reports[0];
  // A timed wait would time out at best: also a self-deadlock.
  EXPECT_EQ(lock.LockFor(kD, milliseconds(10)).status().err(), EDEADLK);
  // A try never waits: EAGAIN, no report.
  EXPECT_EQ(lock.TryLock(kD).status().err(), EAGAIN);
  EXPECT_EQ(capture.reports().size(), 2u);
  // Same state, gate open: joins.
  EXPECT_TRUE(lock.Lock(kB).ok());
  EXPECT_EQ(LockChecker::HoldsOfCurrentRequest(), 1u);
}

TEST(LockCheckerTest, SameStateBehindClosedGateIsSelfDeadlock) {
  SKIP_WITHOUT_CHECKER();
  ReportCapture capture;
  TwoStateLock lock("cnv/1");
  LockHold b = MustLock(lock, kB);
  std::thread waiter([&] { LockHold h = MustLock(lock, kD); });
  ASSERT_TRUE(WaitUntil([&] { return lock.stats().gate_closed; }));
  auto r = lock.Lock(kB);
  EXPECT_EQ(r.status().err(), EDEADLK);
  b.Release();
  waiter.join();
  const auto reports = capture.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(Contains(reports[0], "gate is closed")) << reports[0];
}

TEST(LockCheckerTest, LockOrderInversionIsReportedWithBothOrders) {
  SKIP_WITHOUT_CHECKER();
  ReportCapture capture;
  TwoStateLock a("seq/0");
  TwoStateLock b("seq/1");
  int ab_first = 0, ab_second = 0, ba_first = 0, ba_second = 0;
  std::thread earlier([&] {
    ab_first = __LINE__ + 1;
    LockHold ha = MustLock(a, kB);
    ab_second = __LINE__ + 1;
    LockHold hb = MustLock(b, kD);
  });
  earlier.join();
  EXPECT_TRUE(capture.reports().empty());
  {
    ba_first = __LINE__ + 1;
    LockHold hb = MustLock(b, kB);
    ba_second = __LINE__ + 1;
    auto ha = a.Lock(kB);
    EXPECT_TRUE(ha.ok()) << "an inversion is a warning: the acquire proceeds";
  }
  const auto reports = capture.reports();
  ASSERT_EQ(reports.size(), 1u);
  std::printf("%s\n", reports[0].c_str());
  EXPECT_TRUE(Contains(reports[0], "lock-order inversion")) << reports[0];
  EXPECT_TRUE(Contains(reports[0], "'seq/0'") && Contains(reports[0], "'seq/1'")) << reports[0];
  for (int line : {ab_first, ab_second, ba_first, ba_second}) {
    EXPECT_TRUE(Contains(reports[0], AtLine(line))) << line << "\n" << reports[0];
  }
  // Reported once per pair.
  {
    LockHold hb = MustLock(b, kB);
    LockHold ha = MustLock(a, kB);
  }
  EXPECT_EQ(capture.reports().size(), 1u);
}

TEST(LockCheckerTest, HoldReleasedOnAnotherThreadLeavesItsRequest) {
  SKIP_WITHOUT_CHECKER();
  ReportCapture capture;
  TwoStateLock lock("handoff");
  LockHold h = MustLock(lock, kB);
  EXPECT_EQ(LockChecker::HoldsOfCurrentRequest(), 1u);
  std::thread([h = std::move(h)]() mutable { h.Release(); }).join();
  EXPECT_EQ(LockChecker::HoldsOfCurrentRequest(), 0u);
  EXPECT_TRUE(lock.Lock(kD).ok());  // no stale hold: no false self-deadlock
  EXPECT_TRUE(capture.reports().empty());
}

TEST(LockCheckerTest, DisownedHoldDoesNotCountAsSelfDeadlock) {
  SKIP_WITHOUT_CHECKER();
  ReportCapture capture;
  TwoStateLock lock("aio");
  LockHold submitted = MustLock(lock, kD);
  submitted.Disown();  // belongs to the completion from now on
  EXPECT_EQ(LockChecker::HoldsOfCurrentRequest(), 0u);
  std::thread completion([h = std::move(submitted)]() mutable {
    std::this_thread::sleep_for(milliseconds(20));
    h.Release();
  });
  EXPECT_TRUE(lock.Lock(kB).ok());  // waits for the completion
  completion.join();
  EXPECT_TRUE(capture.reports().empty());
}

TEST(LockCheckerTest, RequestsAreScoped) {
  SKIP_WITHOUT_CHECKER();
  ReportCapture capture;
  TwoStateLock lock("scoped");
  LockHold h;
  {
    LockChecker::ScopedRequest request(42);
    h = MustLock(lock, kB);
    EXPECT_EQ(LockChecker::CurrentRequest(), 42u);
  }
  // Request 42 holds it, not this thread, which may therefore wait for it
  // while another thread acting for request 42 drops the hold.
  EXPECT_EQ(LockChecker::HoldsOfCurrentRequest(), 0u);
  std::thread other([&] {
    LockChecker::ScopedRequest request(42);
    EXPECT_EQ(LockChecker::HoldsOfCurrentRequest(), 1u);
    std::this_thread::sleep_for(milliseconds(10));
    h.Release();
  });
  EXPECT_TRUE(lock.Lock(kD).ok());
  other.join();
  EXPECT_TRUE(capture.reports().empty());
}

}  // namespace
}  // namespace zfile
