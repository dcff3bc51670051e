// Runs the protocol fuzz target (fuzz/protocol_fuzz.cc, linked into this
// test) over a generated corpus, so that every build, sanitizer builds
// included, executes it without needing clang or libFuzzer.
//
// With ZFILE_FUZZ_SEED_DIR set, also writes the seed corpus (every sample
// frame) there, one file per frame, as a starting corpus for the libFuzzer
// binary:
//   ZFILE_FUZZ_SEED_DIR=/tmp/seeds build/default/tests/protocol_test
//       --gtest_filter='ProtocolFuzzDriver.*'
//   build/fuzz/fuzz/protocol_fuzz -max_total_time=60 /tmp/corpus /tmp/seeds
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/frame.h"
#include "protocol_samples.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace zfile::protocol {
namespace {

void RunTarget(const std::vector<uint8_t>& input) {
  // data() of an empty vector may be null; libFuzzer never passes null.
  static const uint8_t kEmpty = 0;
  LLVMFuzzerTestOneInput(input.empty() ? &kEmpty : input.data(), input.size());
}

// Fewer under TSan, as in robustness_test.cc: one thread, nothing to race.
#if defined(__SANITIZE_THREAD__)
constexpr int kMutations = 8000;
#else
constexpr int kMutations = 30000;
#endif

TEST(ProtocolFuzzDriver, RunsTheFuzzTargetOverAGeneratedCorpus) {
  const auto seeds = testing::SampleFrames();
  size_t runs = 0;
  for (const auto& seed : seeds) {
    RunTarget(seed);
    // Every cut inside the header, and a few inside the payload.
    for (size_t len = 0; len <= kFrameHeaderSize && len < seed.size(); ++len) {
      RunTarget(std::vector<uint8_t>(seed.begin(), seed.begin() + static_cast<ptrdiff_t>(len)));
    }
    runs += 1 + kFrameHeaderSize;
  }
  std::mt19937_64 rng(4242);
  for (int i = 0; i < kMutations; ++i) {
    std::vector<uint8_t> input;
    if (i % 5 == 0) {
      input = testing::RandomFrame(rng);
    } else {
      input = testing::PickSample(seeds, rng);
      testing::Mutate(input, rng);
    }
    RunTarget(input);
    ++runs;
  }
  EXPECT_GT(runs, size_t{kMutations});  // and nothing aborted
}

TEST(ProtocolFuzzDriver, WritesTheSeedCorpusWhenAsked) {
  const char* dir = std::getenv("ZFILE_FUZZ_SEED_DIR");
  if (dir == nullptr || *dir == '\0') GTEST_SKIP() << "ZFILE_FUZZ_SEED_DIR is not set";
  std::filesystem::create_directories(dir);
  const auto seeds = testing::SampleFrames();
  for (size_t i = 0; i < seeds.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "seed-%03zu", i);
    std::ofstream out(std::filesystem::path(dir) / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(seeds[i].data()),
              static_cast<std::streamsize>(seeds[i].size()));
    ASSERT_TRUE(out.good()) << name;
  }
}

}  // namespace
}  // namespace zfile::protocol
