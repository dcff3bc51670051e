// What it costs this machine to hand a buffer from one CPU to another:
// the bound on client mode with plain buffers, where one process writes
// the shared region and the other reads it (a read: zfiled fills it, the
// client copies it out; a write: the other way round).
//
// Each iteration writes `bs` bytes into a buffer X (a copy from S) and
// then copies X into D, either on one thread ("same-cpu") or with the
// second copy on a thread pinned to the other CPU ("cross-cpu"), which
// waits for X and hands it back. The ratio of the two is the handoff's
// price: on bare metal with a shared cache it is near 1; on a virtual
// machine whose two vCPUs the host places far apart (or on SMT siblings),
// it is higher, and it moves from run to run with the placement.
//
//   build/default/bench/handoff_bench --benchmark_repetitions=8
//       --benchmark_enable_random_interleaving=true   (one command)
//
// The threads are pinned to the first two CPUs the process may use; with
// fewer than two the cross-cpu rows are skipped.
#include <pthread.h>
#include <sched.h>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace {

using zfile::bench::Aligned;
using zfile::bench::Buf;

// The first two CPUs this process may run on (fewer when it may run on
// fewer).
std::vector<int> TwoCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

bool PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// Restores the calling thread's CPU mask when it goes.
class ScopedAffinity {
 public:
  ScopedAffinity() { ok_ = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) == 0; }
  ~ScopedAffinity() {
    if (ok_) pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
  }
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

void SameCpu(benchmark::State& state) {
  const size_t bs = static_cast<size_t>(state.range(0));
  const std::vector<int> cpus = TwoCpus();
  ScopedAffinity restore;
  if (cpus.empty() || !PinTo(cpus[0])) {
    state.SkipWithError("cannot pin the thread to a CPU");
    return;
  }
  Buf s = Aligned(bs, 1), x = Aligned(bs, 2), d = Aligned(bs, 3);
  for (auto _ : state) {
    std::memcpy(x.get(), s.get(), bs);
    std::memcpy(d.get(), x.get(), bs);
    benchmark::DoNotOptimize(d.get());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
}

void CrossCpu(benchmark::State& state) {
  const size_t bs = static_cast<size_t>(state.range(0));
  const std::vector<int> cpus = TwoCpus();
  if (cpus.size() < 2) {
    state.SkipWithError("fewer than two CPUs to hand the buffer between");
    return;
  }
  ScopedAffinity restore;
  if (!PinTo(cpus[0])) {
    state.SkipWithError("cannot pin the thread to a CPU");
    return;
  }
  Buf s = Aligned(bs, 1), x = Aligned(bs, 2), d = Aligned(bs, 3);
  // turn: 0, the writer's; 1, the copier's; 2, stop.
  std::atomic<int> turn{0};
  std::atomic<bool> pinned{true};
  std::thread copier([&] {
    if (!PinTo(cpus[1])) pinned = false;
    while (true) {
      int t;
      while ((t = turn.load(std::memory_order_acquire)) == 0) {
      }
      if (t == 2) return;
      std::memcpy(d.get(), x.get(), bs);
      turn.store(0, std::memory_order_release);
    }
  });
  for (auto _ : state) {
    std::memcpy(x.get(), s.get(), bs);
    turn.store(1, std::memory_order_release);
    while (turn.load(std::memory_order_acquire) != 0) {
    }
  }
  turn.store(2, std::memory_order_release);
  copier.join();
  if (!pinned) state.SkipWithError("cannot pin the copier to the second CPU");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bs));
}

BENCHMARK(SameCpu)
    ->Name("handoff/same-cpu")
    ->Arg(64 << 10)
    ->Arg(1 << 20)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(CrossCpu)
    ->Name("handoff/cross-cpu")
    ->Arg(64 << 10)
    ->Arg(1 << 20)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
