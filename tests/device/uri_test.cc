#include "base/uri.h"

#include <gtest/gtest.h>

namespace zfile {
namespace {

TEST(UriTest, SplitsSchemePathAndParameters) {
  auto uri = Uri::Parse("mem:?size=1G&zone_size=64M");
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  EXPECT_EQ(uri->scheme, "mem");
  EXPECT_EQ(uri->path, "");
  EXPECT_EQ(uri->params.at("size"), "1G");
  EXPECT_EQ(uri->params.at("zone_size"), "64M");

  auto emu = Uri::Parse("emu:/tmp/dev0?workers=4");
  ASSERT_TRUE(emu.ok());
  EXPECT_EQ(emu->scheme, "emu");
  EXPECT_EQ(emu->path, "/tmp/dev0");
  EXPECT_EQ(emu->params.at("workers"), "4");
}

TEST(UriTest, RejectsMalformedUris) {
  for (const char* bad : {"", "/dev/nullb0", ":x", "mem:?size", "mem:?=1", "mem:?a=1&a=2"}) {
    auto uri = Uri::Parse(bad);
    EXPECT_FALSE(uri.ok()) << bad;
    if (!uri.ok()) {
      EXPECT_EQ(uri.status().err(), EINVAL);
      EXPECT_FALSE(uri.status().message().empty());
    }
  }
}

TEST(UriTest, ParsesSizesWithBinarySuffixes) {
  EXPECT_EQ(*ParseSize("4096", "x"), 4096u);
  EXPECT_EQ(*ParseSize("4k", "x"), 4096u);
  EXPECT_EQ(*ParseSize("64M", "x"), 64ull << 20);
  EXPECT_EQ(*ParseSize("1GiB", "x"), 1ull << 30);
  EXPECT_EQ(*ParseSize("2T", "x"), 2ull << 40);
  for (const char* bad : {"", "M", "1.5G", "-1", "12Q", "99999999999999999999", "20000000T"}) {
    auto v = ParseSize(bad, "size");
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("size"), std::string::npos);
    }
  }
}

TEST(UriTest, CheckKeysNamesTheUnknownKey) {
  auto uri = Uri::Parse("mem:?size=1G&zone_sise=64M");
  ASSERT_TRUE(uri.ok());
  Status s = uri->CheckKeys({"size", "zone_size"});
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_NE(s.message().find("zone_sise"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace zfile
