// Client mode without a daemon: the URIs zfile_vol_open() takes for it,
// the refusal of mount options, and the errors a user sees when zfiled is
// not there (in words, naming the socket).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "client/client_uri.h"
#include "protocol/unique_fd.h"
#include "zfile/zfile.h"

namespace zfile {
namespace {

// Sets or clears ZFILED_SOCKET for one test and puts it back afterwards.
class ScopedSocketEnv {
 public:
  explicit ScopedSocketEnv(const char* value) {
    const char* old = std::getenv(kZfiledSocketEnv);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value == nullptr) {
      ::unsetenv(kZfiledSocketEnv);
    } else {
      ::setenv(kZfiledSocketEnv, value, 1);
    }
  }
  ~ScopedSocketEnv() {
    if (had_) {
      ::setenv(kZfiledSocketEnv, old_.c_str(), 1);
    } else {
      ::unsetenv(kZfiledSocketEnv);
    }
  }

 private:
  bool had_ = false;
  std::string old_;
};

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "zfile-client-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

TEST(ClientUri, RecognisesTheClientSchemes) {
  EXPECT_TRUE(IsClientUri("zfiled:data"));
  EXPECT_TRUE(IsClientUri("unix:/run/x.sock?volume=data"));
  EXPECT_FALSE(IsClientUri("emu:/var/lib/zfile/dev0"));
  EXPECT_FALSE(IsClientUri("mem:?size=1G&zone_size=64M"));
  EXPECT_FALSE(IsClientUri("zbd:/dev/nullb0"));
}

TEST(ClientUri, ZfiledNameUsesTheDefaultSocket) {
  ScopedSocketEnv env(nullptr);
  auto t = ParseClientUri("zfiled:data");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->socket_path, "/run/zfiled/zfiled.sock");
  EXPECT_EQ(t->volume, "data");
}

TEST(ClientUri, ZfiledSocketEnvOverridesTheDefault) {
  ScopedSocketEnv env("/tmp/elsewhere.sock");
  auto t = ParseClientUri("zfiled:vol-1.a_b");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->socket_path, "/tmp/elsewhere.sock");
  EXPECT_EQ(t->volume, "vol-1.a_b");
}

TEST(ClientUri, EmptyZfiledSocketEnvMeansTheDefault) {
  ScopedSocketEnv env("");
  auto t = ParseClientUri("zfiled:data");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->socket_path, "/run/zfiled/zfiled.sock");
}

TEST(ClientUri, UnixPathAndVolume) {
  auto t = ParseClientUri("unix:/srv/zfiled.sock?volume=data");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->socket_path, "/srv/zfiled.sock");
  EXPECT_EQ(t->volume, "data");
}

TEST(ClientUri, BadFormsAreEinvalInWords) {
  const struct {
    const char* uri;
    const char* says;
  } cases[] = {
      {"zfiled:", "volume name is empty"},
      {"zfiled:a/b", "characters other than"},
      {"zfiled:..", "not a volume name"},
      {"zfiled:a?socket=/x", "characters other than"},
      {"unix:?volume=data", "socket path is empty"},
      {"unix:/x.sock", "no volume=NAME"},
      {"unix:/x.sock?volume=", "volume name is empty"},
      {"unix:/x.sock?volume=a&mode=1", "unknown parameter 'mode'"},
      {"unix:/x.sock?volume", "not KEY=VALUE"},
      {"unix:/x.sock?volume=a&volume=b", "given twice"},
      {"emu:/dir", "not a zfiled URI"},
  };
  for (const auto& c : cases) {
    auto t = ParseClientUri(c.uri);
    ASSERT_FALSE(t.ok()) << c.uri;
    EXPECT_EQ(t.status().err(), EINVAL) << c.uri;
    EXPECT_NE(t.status().message().find(c.says), std::string::npos)
        << c.uri << ": " << t.status().message();
    EXPECT_NE(t.status().message().find("expected zfiled:NAME"), std::string::npos)
        << t.status().message();
  }
  const std::string long_name = "zfiled:" + std::string(256, 'a');
  EXPECT_EQ(ParseClientUri(long_name).status().err(), EINVAL);
}

TEST(ClientVolOpen, MountOptionsAreRefused) {
  zfile_vol* v = nullptr;
  EXPECT_EQ(zfile_vol_open("unix:/nonexistent/zfiled.sock?volume=data", "errors=zone-ro", &v),
            -EINVAL);
  EXPECT_EQ(v, nullptr);
  const std::string why = zfile_last_error();
  EXPECT_NE(why.find("daemon's configuration owns them"), std::string::npos) << why;
  EXPECT_NE(why.find("errors=zone-ro"), std::string::npos) << why;
}

TEST(ClientVolOpen, BadUriIsEinval) {
  zfile_vol* v = nullptr;
  EXPECT_EQ(zfile_vol_open("unix:/x.sock", nullptr, &v), -EINVAL);
  EXPECT_NE(std::string(zfile_last_error()).find("volume=NAME"), std::string::npos)
      << zfile_last_error();
  EXPECT_EQ(v, nullptr);
}

TEST(ClientVolOpen, MissingSocketIsEnoentNamingIt) {
  const std::string dir = TempDir();
  const std::string sock = dir + "/zfiled.sock";
  zfile_vol* v = nullptr;
  // NULL and "" are both "no options".
  for (const char* opts : {static_cast<const char*>(nullptr), ""}) {
    EXPECT_EQ(zfile_vol_open(("unix:" + sock + "?volume=data").c_str(), opts, &v), -ENOENT);
    const std::string why = zfile_last_error();
    EXPECT_NE(why.find(sock), std::string::npos) << why;
    EXPECT_NE(why.find("is zfiled running"), std::string::npos) << why;
    EXPECT_EQ(v, nullptr);
  }
  std::filesystem::remove_all(dir);
}

TEST(ClientVolOpen, ZfiledFormFollowsTheEnvironment) {
  const std::string dir = TempDir();
  const std::string sock = dir + "/other.sock";
  ScopedSocketEnv env(sock.c_str());
  zfile_vol* v = nullptr;
  EXPECT_EQ(zfile_vol_open("zfiled:data", nullptr, &v), -ENOENT);
  EXPECT_NE(std::string(zfile_last_error()).find(sock), std::string::npos) << zfile_last_error();
  std::filesystem::remove_all(dir);
}

TEST(ClientVolOpen, SocketWithoutListenerIsEconnrefused) {
  const std::string dir = TempDir();
  const std::string sock = dir + "/dead.sock";
  // A socket file nobody listens on: what a daemon that died leaves.
  protocol::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  sock.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  zfile_vol* v = nullptr;
  EXPECT_EQ(zfile_vol_open(("unix:" + sock + "?volume=data").c_str(), nullptr, &v), -ECONNREFUSED);
  const std::string why = zfile_last_error();
  EXPECT_NE(why.find(sock), std::string::npos) << why;
  EXPECT_NE(why.find("zfiled is not running"), std::string::npos) << why;
  EXPECT_EQ(v, nullptr);
  std::filesystem::remove_all(dir);
}

TEST(ClientVolOpen, OverlongSocketPathIsEnametoolong) {
  zfile_vol* v = nullptr;
  const std::string uri = "unix:/" + std::string(200, 's') + "?volume=data";
  EXPECT_EQ(zfile_vol_open(uri.c_str(), nullptr, &v), -ENAMETOOLONG);
  EXPECT_NE(std::string(zfile_last_error()).find("longer than"), std::string::npos)
      << zfile_last_error();
}

}  // namespace
}  // namespace zfile
