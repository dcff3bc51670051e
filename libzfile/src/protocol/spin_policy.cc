#include "protocol/spin_policy.h"

#include <time.h>

#include <algorithm>
#include <bit>

namespace zfile::protocol {

SpinPolicy::SpinPolicy(uint32_t cap_us) : cap_us_(std::min(cap_us, kMaxCapUs)) {}

unsigned SpinPolicy::ClassOf(uint64_t bytes) {
  if (bytes <= 4096) return 0;
  // ceil(log2(bytes)) - 12: 8 KiB is class 1, 16 MiB class 12.
  const unsigned log2 = static_cast<unsigned>(std::bit_width(bytes - 1));
  return std::min(log2 - 12, kClasses - 1);
}

uint32_t SpinPolicy::BudgetUs(unsigned cls) const {
  if (cap_us_ == 0 || backing_off()) return 0;
  const uint64_t average = AverageUs(cls);
  if (average == 0) return std::min(kProbeUs, cap_us_);
  if (average > cap_us_) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(2 * average + kSlackUs, cap_us_));
}

uint64_t SpinPolicy::AverageUs(unsigned cls) const {
  const uint64_t sixteenths = average_16ths_[std::min(cls, kClasses - 1)];
  return sixteenths == 0 ? 0 : sixteenths / 16 + 1;
}

void SpinPolicy::Record(unsigned cls, uint64_t took_us) {
  uint64_t& average = average_16ths_[std::min(cls, kClasses - 1)];
  // Clamped so that one huge wait (a stopped peer) cannot hold spinning
  // off for long: the average comes back under the cap within a few
  // answers once they are quick again. Kept in sixteenths of a µs so that
  // the weighting does not round small waits away; never 0 once recorded.
  const uint64_t sample = std::min<uint64_t>(took_us, 4 * kMaxCapUs) * 16 + 1;
  average = average == 0 ? sample : average - average / 4 + sample / 4;
  if (average == 0) average = 1;
}

uint64_t MonotonicMicros() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

uint64_t AnswerTookUs(uint64_t start_us, uint64_t posted_us, uint64_t now_us) {
  if (posted_us >= start_us && posted_us <= now_us) return posted_us - start_us;
  return now_us - start_us;
}

}  // namespace zfile::protocol
