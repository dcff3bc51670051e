// Zone resources under concurrency and errors: the open/active accounting
// stays equal to the device's, nothing waits forever, and refusals change
// nothing. Each test reproduces a bug found in review.
#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "device/zoned_device.h"
#include "volume_fixture.h"

namespace zfile::testing {
namespace {

class ZoneResourcesTest : public VolumeTest {
 protected:
  struct zfile_vol_info Info() {
    struct zfile_vol_info info {};
    EXPECT_EQ(zfile_vol_info(vol_, &info), 0);
    return info;
  }
  // Runs `fn` on a thread; fails the test (instead of hanging it) if it
  // does not return within a generous bound.
  template <typename Fn>
  auto WithinSeconds(int seconds, Fn fn) -> decltype(fn()) {
    auto task = std::make_shared<std::packaged_task<decltype(fn())()>>(fn);
    auto result = task->get_future();
    std::thread([task] { (*task)(); }).detach();
    if (result.wait_for(std::chrono::seconds(seconds)) != std::future_status::ready) {
      ADD_FAILURE() << "did not return within " << seconds << " s (waits forever?)";
      std::_Exit(1);  // the stuck thread holds locks: nothing else can run
    }
    return result.get();
  }
  bool emulated() const { return GetParam().kind != "zbd"; }
};

TEST_P(ZoneResourcesTest, ZonesFilledByConcurrentDirectAppendsGiveBackTheirResources) {
  constexpr int kThreads = 8;
  constexpr size_t kChunk = 64 * 1024;
  // More zones than the open (6) and active (8) limits, one after another.
  for (int file = 0; file < 10; ++file) {
    const std::string path = "seq/" + std::to_string(file);
    zfile_file* f = Open(path.c_str(), O_WRONLY | O_DIRECT);
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        auto buf = MakeBuf(kChunk);
        for (;;) {
          ssize_t r = zfile_append(f, buf.get(), kChunk, nullptr);
          if (r == -EFBIG) return;
          if (r != ssize_t(kChunk)) {
            errors++;
            return;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(errors.load(), 0) << path << ": " << zfile_last_error();
    EXPECT_EQ(StatOf(vol_, path.c_str()).size, kZoneCap);
    struct zfile_vol_info info = Info();
    EXPECT_EQ(info.open_zones, 0u) << "after filling " << path;
    EXPECT_EQ(info.active_zones, 0u) << "after filling " << path;
  }
}

TEST_P(ZoneResourcesTest, AWriterWithNoOpenSlotLeftGetsEbusyNotAHang) {
  MountOrDie("explicit-open");
  zfile_file* first = Open("seq/0", O_WRONLY | O_DIRECT);
  ASSERT_EQ(zfile_ftruncate(first, 0), 0);  // the reset gives its open slot back
  for (int i = 1; i <= 6; ++i) Open(("seq/" + std::to_string(i)).c_str(), O_WRONLY | O_DIRECT);
  EXPECT_EQ(Info().open_zones, 6u);
  std::string why;  // zfile_last_error() is per thread
  ssize_t r = WithinSeconds(20, [&] {
    ssize_t n = WritePattern(first, 0, kBlock, 1);
    why = zfile_last_error();
    return n;
  });
  EXPECT_EQ(r, -EBUSY);
  EXPECT_NE(why.find("open zone limit"), std::string::npos) << why;
  EXPECT_EQ(StatOf(vol_, "seq/0").size, 0u);
}

TEST_P(ZoneResourcesTest, FinishingAFullZoneNeedsNoOpenSlot) {
  MountOrDie("explicit-open");
  zfile_file* f = Open("seq/0", O_WRONLY | O_DIRECT);
  ASSERT_EQ(zfile_ftruncate(f, kZoneCap), 0);
  for (int i = 1; i <= 6; ++i) Open(("seq/" + std::to_string(i)).c_str(), O_WRONLY | O_DIRECT);
  EXPECT_EQ(WithinSeconds(20, [&] { return zfile_ftruncate(f, kZoneCap); }), 0);
}

TEST_P(ZoneResourcesTest, ResetsRacingWithZoneClosingGiveNoSpuriousErrors) {
  MountOrDie("errors=repair");
  // Six files open (the limit); a seventh writer must close one, while
  // seq/0 is reset over and over: a reset zone must never be "closed".
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(
        WritePattern(Open(("seq/" + std::to_string(i)).c_str(), O_WRONLY | O_DIRECT), 0, kBlock, 1),
        ssize_t(kBlock));
  }
  zfile_file* a = Open("seq/0", O_WRONLY | O_DIRECT);
  zfile_file* b = Open("seq/6", O_WRONLY | O_DIRECT);
  std::atomic<bool> stop{false};
  std::atomic<int> errors_a{0}, errors_b{0};
  std::thread ta([&] {
    auto buf = MakeBuf(kBlock);
    for (int i = 0; i < 2000; ++i) {
      if (zfile_append(a, buf.get(), kBlock, nullptr) != ssize_t(kBlock)) errors_a++;
      if (zfile_ftruncate(a, 0) != 0) errors_a++;
    }
    stop = true;
  });
  std::thread tb([&] {
    auto buf = MakeBuf(kBlock);
    while (!stop) {
      ssize_t r = zfile_append(b, buf.get(), kBlock, nullptr);
      if (r == -EFBIG) {
        if (zfile_ftruncate(b, 0) != 0) errors_b++;
      } else if (r != ssize_t(kBlock)) {
        errors_b++;
      }
    }
  });
  ta.join();
  tb.join();
  EXPECT_EQ(errors_a.load(), 0);
  EXPECT_EQ(errors_b.load(), 0);
  EXPECT_LE(Info().open_zones, 6u);
}

TEST_P(ZoneResourcesTest, AFileTakenDownByThePolicyGivesBackItsOpenZone) {
  if (!emulated()) GTEST_SKIP() << "needs the emulated backends' fault injection";
  MountOrDie("explicit-open,errors=zone-ro",
             MountFault(IoOp::kWrite, kFirstSeqZone * kZoneSize + kBlock));
  zfile_file* f = Open("seq/0", O_WRONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, kBlock, 1), ssize_t(kBlock));
  ArmFault(IoOp::kWrite, kFirstSeqZone * kZoneSize + kBlock);
  EXPECT_EQ(WritePattern(f, kBlock, kBlock, 1), -EIO);
  EXPECT_EQ(Info().open_zones, 0u);
  // All six open slots are usable by other files.
  for (int i = 1; i <= 6; ++i) {
    zfile_file* g = nullptr;
    EXPECT_EQ(zfile_open(vol_, ("seq/" + std::to_string(i)).c_str(), O_WRONLY, &g), 0)
        << zfile_last_error();
    if (g != nullptr) open_files_.push_back(g);
  }
  EXPECT_EQ(Info().open_zones, 6u);
}

TEST_P(ZoneResourcesTest, ARefusedTruncatingOpenKeepsTheData) {
  MountOrDie("explicit-open");
  zfile_file* f = Open("seq/0", O_WRONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(f, 0, kBlock, 1), ssize_t(kBlock));
  open_files_.pop_back();
  ASSERT_EQ(zfile_close(f), 0);
  for (int i = 1; i <= 6; ++i) Open(("seq/" + std::to_string(i)).c_str(), O_WRONLY | O_DIRECT);
  zfile_file* t = nullptr;
  EXPECT_EQ(zfile_open(vol_, "seq/0", O_WRONLY | O_TRUNC, &t), -EBUSY);
  EXPECT_EQ(StatOf(vol_, "seq/0").size, kBlock);
}

TEST_P(ZoneResourcesTest, AReadErrorDoesNotFailAppendsInFlight) {
  if (!emulated()) GTEST_SKIP() << "needs the emulated backends' fault injection";
  const std::string fault = MountFault(IoOp::kRead, kFirstSeqZone * kZoneSize);
  MountOrDie("errors=repair", "workers=2" + (fault.empty() ? "" : "&" + fault));
  zfile_file* w = Open("seq/0", O_WRONLY | O_DIRECT);
  zfile_file* r = Open("seq/0", O_RDONLY | O_DIRECT);
  ASSERT_EQ(WritePattern(w, 0, kBlock, 1), ssize_t(kBlock));
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto buf = MakeBuf(kBlock);
      while (!stop) {
        ssize_t n = zfile_append(w, buf.get(), kBlock, nullptr);
        if (n == -EFBIG) return;
        if (n != ssize_t(kBlock)) {
          failed++;
        } else {
          done++;
        }
      }
    });
  }
  while (done.load() < 200) std::this_thread::yield();
  ArmFault(IoOp::kRead, kFirstSeqZone * kZoneSize);
  auto buf = MakeBuf(kBlock);
  EXPECT_EQ(zfile_pread(r, buf.get(), kBlock, 0), -EIO);
  const int before = done.load();
  while (done.load() < before + 200 && done.load() * kBlock < kZoneCap - 64 * kBlock) {
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ZoneResourcesTest, ::testing::ValuesIn(VolumesUnderTest()),
                         [](const ::testing::TestParamInfo<VolumeParam>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace zfile::testing
