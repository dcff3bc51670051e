// TwoStateLock benchmarks, each against a baseline measured in the same run:
//  - uncontended acquire+release of one state (raw lock/unlock, and the
//    Result/LockHold interface) vs std::shared_mutex lock_shared/unlock_shared;
//  - same-state acquire+release on one shared lock from 1, 2 and 4 threads,
//    vs std::shared_mutex;
//  - the wait of a DIRECT acquirer under a saturating stream of BUFFERED
//    holders (threads that take a new hold before dropping the old one), vs a
//    naive two-state lock without fairness (an atomic count; same-state joins
//    always succeed; the other state spins until the count is zero). The
//    naive lock's waiter starves until the stream stops, so the stream stops
//    after kStreamLimit; the counters are the worst and mean wait and how
//    many waiters got in before the stream stopped.
// After the runs, a summary of two_state/baseline ratios is printed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "naive_two_state_lock.h"
#include "sync/two_state_lock.h"

namespace {

using zfile::LockState;
using zfile::TwoStateLock;
using zfile::testing::NaiveTwoStateLock;
using Clock = std::chrono::steady_clock;
constexpr LockState kB = LockState::kBuffered;
constexpr LockState kD = LockState::kDirect;
constexpr auto kStreamLimit = std::chrono::milliseconds(200);
constexpr int kStreamThreads = 2;


void UncontendedTwoState(benchmark::State& state) {
  TwoStateLock lock("bench");
  for (auto _ : state) {
    lock.lock(kB);
    lock.unlock(kB);
  }
  state.SetItemsProcessed(state.iterations());
}

void UncontendedTwoStateApi(benchmark::State& state) {
  TwoStateLock lock("bench");
  for (auto _ : state) {
    auto hold = lock.Lock(kB);
    benchmark::DoNotOptimize(hold);
  }
  state.SetItemsProcessed(state.iterations());
}

void UncontendedSharedMutex(benchmark::State& state) {
  std::shared_mutex m;
  for (auto _ : state) {
    m.lock_shared();
    m.unlock_shared();
  }
  state.SetItemsProcessed(state.iterations());
}

TwoStateLock& SharedTwoState() {
  static TwoStateLock* lock = new TwoStateLock("bench-shared");
  return *lock;
}
std::shared_mutex& SharedMutex() {
  static std::shared_mutex* m = new std::shared_mutex;
  return *m;
}

void SameStateTwoState(benchmark::State& state) {
  TwoStateLock& lock = SharedTwoState();
  for (auto _ : state) {
    lock.lock(kB);
    lock.unlock(kB);
  }
  state.SetItemsProcessed(state.iterations());
}

void SameStateSharedMutex(benchmark::State& state) {
  std::shared_mutex& m = SharedMutex();
  for (auto _ : state) {
    m.lock_shared();
    m.unlock_shared();
  }
  state.SetItemsProcessed(state.iterations());
}

// One stream thread: always holds at least one hold while the lock lets it
// join; when it does not, drops its hold before waiting (waiting while
// holding would deadlock on a fair lock).
template <typename L>
void RunStream(L& lock, std::atomic<int>& holding, const std::atomic<bool>& stop) {
  lock.lock(kB);
  holding.fetch_add(1);
  while (!stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 100; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
    if (lock.try_lock(kB)) {
      lock.unlock(kB);
    } else {
      lock.unlock(kB);
      lock.lock(kB);
    }
  }
  lock.unlock(kB);
}

template <typename L>
void WorstWait(benchmark::State& state) {
  double worst_us = 0;
  double total_us = 0;
  int in_before_stop = 0;
  for (auto _ : state) {
    L lock;
    std::atomic<int> holding{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> stream;
    for (int i = 0; i < kStreamThreads; ++i) {
      stream.emplace_back([&] { RunStream(lock, holding, stop); });
    }
    while (holding.load() < kStreamThreads) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const Clock::time_point start = Clock::now();
    std::thread stopper([&] {
      while (!stop.load() && Clock::now() < start + kStreamLimit) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      stop.store(true);
    });
    lock.lock(kD);
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    if (!stop.exchange(true)) ++in_before_stop;
    lock.unlock(kD);
    stopper.join();
    for (auto& t : stream) t.join();
    worst_us = std::max(worst_us, us);
    total_us += us;
  }
  state.counters["worst_wait_us"] = worst_us;
  state.counters["mean_wait_us"] = total_us / static_cast<double>(state.iterations());
  state.counters["in_before_stop"] = in_before_stop;
}

// Prints what Google Benchmark prints, then the ratio summary.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      Result& out = results_[r.run_name.function_name + "#" + std::to_string(r.threads)];
      out.iterations = static_cast<double>(r.iterations);
      for (const auto& [name, counter] : r.counters) out.counters[name] = counter.value;
    }
  }

  void PrintSummary() const {
    std::printf("\nTwoStateLock vs baselines (same run)\n");
    auto rate = [&](const std::string& name, int threads) {
      auto it = results_.find(name + "#" + std::to_string(threads));
      if (it == results_.end()) return 0.0;
      auto c = it->second.counters.find("items_per_second");
      return c == it->second.counters.end() ? 0.0 : c->second;
    };
    // Uncontended: time per acquire+release (lower is better).
    const double base = rate("uncontended/shared_mutex", 1);
    for (const char* name : {"uncontended/two_state", "uncontended/two_state_api"}) {
      const double r = rate(name, 1);
      if (r == 0 || base == 0) continue;
      std::printf("  %-56s = %.2fx  (%.1f vs %.1f ns per acquire+release, CPU time)\n",
                  (std::string(name).substr(12) + "/shared_mutex uncontended time").c_str(),
                  base / r, 1e9 / r, 1e9 / base);
    }
    // Same state, shared by threads: throughput (higher is better).
    for (int threads : {1, 2, 4}) {
      const double r = rate("same_state/two_state", threads);
      const double b = rate("same_state/shared_mutex", threads);
      if (r == 0 || b == 0) continue;
      std::printf(
          "  %-56s = %.2fx  (%.1f vs %.1f M acquire+release/s, all threads)\n",
          ("two_state/shared_mutex same-state threads:" + std::to_string(threads) + " throughput")
              .c_str(),
          r / b, r / 1e6, b / 1e6);
    }
    auto counter = [&](const std::string& name, const char* c) {
      auto it = results_.find(name + "#1");
      if (it == results_.end()) return -1.0;
      auto v = it->second.counters.find(c);
      return v == it->second.counters.end() ? -1.0 : v->second;
    };
    const double fair = counter("worst_wait/two_state", "worst_wait_us");
    const double naive = counter("worst_wait/naive", "worst_wait_us");
    if (fair > 0 && naive > 0) {
      std::printf(
          "  %-56s = %.1fx  (%.0f vs %.0f us; mean %.0f vs %.0f us; stream stopped at %lld ms)\n",
          "naive/two_state worst DIRECT wait under BUFFERED stream", naive / fair, naive, fair,
          counter("worst_wait/naive", "mean_wait_us"),
          counter("worst_wait/two_state", "mean_wait_us"),
          static_cast<long long>(kStreamLimit.count()));
      auto iters = [&](const std::string& name) {
        return results_.find(name + "#1")->second.iterations;
      };
      std::printf("  %-56s : two_state %.0f/%.0f, naive %.0f/%.0f\n",
                  "waiters in before the stream stopped",
                  counter("worst_wait/two_state", "in_before_stop"), iters("worst_wait/two_state"),
                  counter("worst_wait/naive", "in_before_stop"), iters("worst_wait/naive"));
    }
  }

 private:
  struct Result {
    double iterations = 0;
    std::map<std::string, double> counters;
  };
  std::map<std::string, Result> results_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("uncontended/two_state", UncontendedTwoState);
  benchmark::RegisterBenchmark("uncontended/two_state_api", UncontendedTwoStateApi);
  benchmark::RegisterBenchmark("uncontended/shared_mutex", UncontendedSharedMutex);
  for (auto* b : {benchmark::RegisterBenchmark("same_state/two_state", SameStateTwoState),
                  benchmark::RegisterBenchmark("same_state/shared_mutex", SameStateSharedMutex)}) {
    b->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
  }
  benchmark::RegisterBenchmark("worst_wait/two_state", WorstWait<TwoStateLock>)
      ->Iterations(20)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("worst_wait/naive", WorstWait<NaiveTwoStateLock>)
      ->Iterations(10)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary();
  benchmark::Shutdown();
  return 0;
}
