// How long one end of a doorbell (doorbell.h) busy-waits for the other
// before it sleeps on the futex.
//
// Sleeping is not free: the peer's FUTEX_WAKE has to bring this thread's
// CPU back, and on a machine whose idle CPUs halt (a virtual machine
// above all) that alone costs 50-100 µs, ten times a small request. So a
// waiter spins while the answer is likely to come soon, and sleeps
// otherwise. "Soon" is learned per request size, as blk-mq's hybrid
// polling learns it per size: an average (EWMA, weight 1/4) of how long
// answers of that size took, from the peer's own timestamp. A wait whose
// average is under the cap is spun for twice the average and a little
// (at most the cap), which catches all but the stragglers; a wait whose
// average is over the cap sleeps at once. A size never seen yet is spun
// for kProbeUs, to learn it. The peer's timestamp still counts its own
// wake-up when it slept; that is right, since it is what this side waits.
//
// Spinning pays only with a CPU to spare. On a busy machine a spinner
// takes the CPU from someone who has work (the peer, perhaps), so it
// yields the CPU every kYieldEveryUs, and when it finds it has lost the
// CPU (its clock jumped more than kPreemptedUs between two looks) it
// stops and no wait spins for the next kBusyBackoffUs; then one probes
// again. Answers slowed by the load also push the averages over the cap.
//
// Not thread-safe: each side of one doorbell owns one (a doorbell carries
// one request at a time).
#ifndef ZFILE_PROTOCOL_SPIN_POLICY_H_
#define ZFILE_PROTOCOL_SPIN_POLICY_H_

#include <sched.h>

#include <array>
#include <cstdint>
#include <type_traits>

namespace zfile::protocol {

uint64_t MonotonicMicros();

// A spin-wait hint to the CPU.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

class SpinPolicy {
 public:
  // Sizes are grouped by power of two from 4 KiB (and below) to 16 MiB
  // (and above).
  static constexpr unsigned kClasses = 13;
  static constexpr uint32_t kProbeUs = 50;
  static constexpr uint32_t kSlackUs = 20;
  static constexpr uint32_t kYieldEveryUs = 20;
  static constexpr uint32_t kPreemptedUs = 500;
  static constexpr uint32_t kBusyBackoffUs = 20000;
  // The largest cap that is honoured (larger ones are cut to it).
  static constexpr uint32_t kMaxCapUs = 1000;
  // Looks at done() between two readings of the clock.
  static constexpr int kLooksPerClockRead = 64;
  static constexpr uint32_t kDefaultCapUs = 1000;

  // `cap_us` 0 never spins.
  explicit SpinPolicy(uint32_t cap_us = kDefaultCapUs);

  // The class of a wait for an answer that moves `bytes` of data.
  static unsigned ClassOf(uint64_t bytes);

  // How long a wait of class `cls` would spin now (0: it sleeps at once).
  uint32_t BudgetUs(unsigned cls) const;
  // What a look at a wait's condition found. A done() that returns bool
  // says only whether the wait is over; one that returns Look may also
  // have done some work while it waited (the client copies a read's
  // first pieces out), whose time is not taken for a lost CPU.
  enum class Look { kNotYet, kWorked, kDone };

  // Busy-waits for `done()` (looked at first, whatever the budget) for at
  // most BudgetUs(cls): whether it became true.
  template <typename Done>
  bool Spin(unsigned cls, Done done);
  // The answer of class `cls` took `took_us` (whether or not it was spun
  // for).
  void Record(unsigned cls, uint64_t took_us);

  uint32_t cap_us() const { return cap_us_; }
  // The average answer time of class `cls` in µs, rounded up (0 until one
  // is recorded).
  uint64_t AverageUs(unsigned cls) const;
  // What the spins came to, for tests and benchmarks.
  struct Counts {
    uint64_t spins = 0;      // waits that spun
    uint64_t hits = 0;       // ... and saw the answer while spinning
    uint64_t preempted = 0;  // ... and lost the CPU (a back-off began)
  };
  const Counts& counts() const { return counts_; }
  // Whether spinning is off for a while because a spin lost its CPU.
  bool backing_off() const { return MonotonicMicros() < busy_until_us_; }

 private:
  template <typename Done>
  static Look LookAt(Done& done) {
    if constexpr (std::is_same_v<decltype(done()), Look>) {
      return done();
    } else {
      return done() ? Look::kDone : Look::kNotYet;
    }
  }
  template <typename Done>
  bool Preempted(uint64_t now, Done& done) {
    busy_until_us_ = now + kBusyBackoffUs;
    ++counts_.preempted;
    if (LookAt(done) != Look::kDone) return false;
    ++counts_.hits;
    return true;
  }

  uint32_t cap_us_;
  uint64_t busy_until_us_ = 0;
  Counts counts_;
  std::array<uint64_t, kClasses> average_16ths_{};
};

// How long an answer took, from `start_us` (when the request was posted,
// our clock) to `posted_us` (when the peer says it posted the answer): the
// peer's word is not trusted, only used when it lies within [start_us,
// now_us], and otherwise now_us is.
uint64_t AnswerTookUs(uint64_t start_us, uint64_t posted_us, uint64_t now_us);

template <typename Done>
bool SpinPolicy::Spin(unsigned cls, Done done) {
  if (LookAt(done) == Look::kDone) return true;
  const uint32_t budget_us = BudgetUs(cls);
  if (budget_us == 0) return false;
  ++counts_.spins;
  uint64_t now = MonotonicMicros();
  const uint64_t until = now + budget_us;
  uint64_t next_yield = now + kYieldEveryUs;
  while (true) {
    bool worked = false;
    for (int i = 0; i < kLooksPerClockRead; ++i) {
      CpuRelax();
      const Look look = LookAt(done);
      if (look == Look::kDone) {
        ++counts_.hits;
        return true;
      }
      worked |= look == Look::kWorked;
    }
    const uint64_t before = now;
    now = MonotonicMicros();
    // Time spent working is not a lost CPU (a real loss then goes
    // unnoticed for one round of looks).
    if (!worked && now - before > kPreemptedUs) return Preempted(now, done);
    if (now >= until) return false;
    if (now >= next_yield) {
      ::sched_yield();
      const uint64_t yielded = now;
      now = MonotonicMicros();
      if (now - yielded > kPreemptedUs) return Preempted(now, done);
      next_yield = now + kYieldEveryUs;
    }
  }
}

}  // namespace zfile::protocol

#endif  // ZFILE_PROTOCOL_SPIN_POLICY_H_
