// ZfiledProcess (zfiled_process.h) against the real zfiled: readiness by
// sd_notify and by connecting, the exit status of a clean stop, of a kill
// and of a daemon that refuses to start, and notifications after start.
#include "zfiled_process.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/zoned_device.h"
#include "format/mkfs.h"

namespace zfile::testing {
namespace {

using std::chrono::seconds;

class ZfiledProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DefaultZfiledBinary().empty()) GTEST_SKIP() << "zfiled is not built";
    char tmpl[] = "/tmp/zfiled-process-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto uri = Uri::Parse("emu:?size=64M&zone_size=8M&conv=2");
    ASSERT_TRUE(uri.ok());
    EmulatedGeometry g;
    ASSERT_TRUE(g.ReadFromUri(*uri).ok());
    ASSERT_TRUE(CreateEmuDevice(dir_ + "/dev", g).ok());
    auto dev = OpenDevice("emu:" + dir_ + "/dev");
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    Status s = Mkfs(dev->get(), MkfsOptions{});
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  ZfiledProcess::Options Daemon(ZfiledProcess::Ready ready) const {
    ZfiledProcess::Options o;
    o.args = {"--device", "emu:" + dir_ + "/dev", "--socket", dir_ + "/zfiled.sock",
              "--foreground"};
    o.log_path = dir_ + "/zfiled.log";
    o.ready = ready;
    o.socket_path = dir_ + "/zfiled.sock";
    return o;
  }

  std::string dir_;
};

TEST_F(ZfiledProcessTest, NotifiedReadyThenStopsCleanlyOnSigterm) {
  ZfiledProcess zfiled;
  Status s = zfiled.Start(Daemon(ZfiledProcess::Ready::kNotify));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(zfiled.running());
  EXPECT_NE(zfiled.notifications().find("READY=1"), std::string::npos);
  EXPECT_EQ(zfiled.Start(Daemon(ZfiledProcess::Ready::kNotify)).err(), EBUSY);
  // SIGHUP without --config: logged, and the daemon carries on.
  EXPECT_TRUE(zfiled.Signal(SIGHUP));
  EXPECT_TRUE(zfiled.running());
  const ZfiledProcess::Exit exit = zfiled.Stop();
  EXPECT_TRUE(exit.clean()) << exit.ToString() << "\n" << zfiled.Log();
  EXPECT_FALSE(zfiled.running());
  EXPECT_NE(zfiled.notifications().find("STOPPING=1"), std::string::npos);
  EXPECT_NE(zfiled.Log().find("zfiled stopped"), std::string::npos) << zfiled.Log();
  // Stopping again gives the same exit.
  EXPECT_TRUE(zfiled.Stop().clean());
}

TEST_F(ZfiledProcessTest, ConnectReadinessAndKill) {
  ZfiledProcess zfiled;
  Status s = zfiled.Start(Daemon(ZfiledProcess::Ready::kConnect));
  ASSERT_TRUE(s.ok()) << s.ToString();
  const ZfiledProcess::Exit exit = zfiled.Kill();
  EXPECT_FALSE(exit.exited);
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_NE(exit.ToString().find("signal 9"), std::string::npos) << exit.ToString();
}

TEST_F(ZfiledProcessTest, ARefusalToStartIsAnErrorWithTheLog) {
  ZfiledProcess zfiled;
  ZfiledProcess::Options o = Daemon(ZfiledProcess::Ready::kNotify);
  o.args.push_back("--options");
  o.args.push_back("bogus");
  Status s = zfiled.Start(o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bogus"), std::string::npos) << s.ToString();
  EXPECT_TRUE(zfiled.exit_status().exited);
  EXPECT_EQ(zfiled.exit_status().code, 1);
  EXPECT_FALSE(zfiled.running());
}

TEST_F(ZfiledProcessTest, WaitNotifySeesWatchdogKeepAlives) {
  ZfiledProcess zfiled;
  ZfiledProcess::Options o = Daemon(ZfiledProcess::Ready::kNotify);
  o.env.push_back({"WATCHDOG_USEC", "200000"});
  ASSERT_TRUE(zfiled.Start(o).ok()) << zfiled.Log();
  EXPECT_TRUE(zfiled.WaitNotify("WATCHDOG=1", seconds(10)));
  EXPECT_TRUE(zfiled.WaitNotify("WATCHDOG=1", seconds(10)));  // a second one
  EXPECT_TRUE(zfiled.Stop().clean()) << zfiled.Log();
}

TEST_F(ZfiledProcessTest, AMissingBinaryIsEnoent) {
  ZfiledProcess zfiled;
  ZfiledProcess::Options o = Daemon(ZfiledProcess::Ready::kNotify);
  o.binary = dir_ + "/no-such-zfiled";
  EXPECT_EQ(zfiled.Start(o).err(), ENOENT);
}

}  // namespace
}  // namespace zfile::testing
