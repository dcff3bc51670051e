// A C++ program built against an installed libzfile with find_package(zfile)
// and zfile.hpp, as a user would build one (tests/package/package_test.sh
// drives it; its CMakeLists.txt compiles it as C++17 with warnings as
// errors, so the header must stay clean there too).
//
// Usage: consumer_cxx FORMATTED_URI UNFORMATTED_URI
//
// Writes kText at offset 4096 of cnv/0 (the test reads it back with the
// installed zfile tool) and one block to seq/1, and checks the RAII types:
// moves, explicit and repeated closes, results and errors.
#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <zfile/zfile.hpp>

namespace {

int failures = 0;

void Check(bool ok, int line, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "consumer.cc:%d: check failed: %s (last error: '%s')\n", line, what,
               zfile::api::LastError());
  ++failures;
}

#define CHECK(cond) Check((cond), __LINE__, #cond)

constexpr char kText[] = "written through zfile.hpp";

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FORMATTED_URI UNFORMATTED_URI\n", argv[0]);
    return 2;
  }
  CHECK(zfile::api::ApiVersion() == ZFILE_API_VERSION);

  {
    zfile::api::Opened<zfile::api::Vol> bad = zfile::api::Vol::Open(argv[2]);
    CHECK(!bad.ok() && bad.err == -EINVAL && !bad.value.is_open());
    CHECK(std::strlen(zfile::api::LastError()) > 0);
  }

  // Declared first, so it is closed after the files below.
  auto [err, vol] = zfile::api::Vol::Open(argv[1], nullptr);
  CHECK(err == 0 && vol.is_open());
  if (err != 0) return 1;
  struct zfile_vol_info info = {};
  CHECK(vol.Info(&info) == 0);

  {
    auto opened = vol.OpenFile("cnv/0", O_RDWR);
    CHECK(opened.ok());
    zfile::api::File file = std::move(opened.value);
    CHECK(!opened.value.is_open() && file.is_open());
    const size_t len = sizeof(kText) - 1;
    CHECK(file.PWrite(kText, len, 4096) == static_cast<ssize_t>(len));
    std::vector<char> back(len);
    CHECK(file.PRead(back.data(), len, 4096) == static_cast<ssize_t>(len));
    CHECK(std::memcmp(back.data(), kText, len) == 0);
    CHECK(file.Fsync() == 0);
    CHECK(file.Truncate(0) == -EPERM);  // conventional files have a fixed size
    zfile::api::File moved;
    moved = std::move(file);
    CHECK(!file.is_open() && moved.is_open());
    CHECK(moved.Close() == 0);
    CHECK(moved.Close() == 0);  // nothing left to close
    CHECK(moved.PRead(back.data(), len, 0) == -EINVAL);
  }

  {
    auto [open_err, seq] = vol.OpenFile("seq/1", O_RDWR);
    CHECK(open_err == 0);
    std::vector<char> block(info.block_size, 'B');
    zfile::api::Appended a = seq.Append(block.data(), block.size());
    CHECK(a.ok() && a.ret == static_cast<ssize_t>(block.size()) && a.offset == 0);
    CHECK(seq.PWrite(block.data(), block.size(), 0) == -EINVAL);  // not at the write pointer
    struct zfile_stat st = {};
    CHECK(seq.Stat(&st) == 0 && st.size == block.size() && st.type == ZFILE_TYPE_SEQ);
    // A mapped view shows the data, zero-copy.
    zfile::api::Opened<zfile::api::View> view = seq.Map(0, block.size());
    CHECK(view.ok());
    if (view.ok()) {
      CHECK(view.value.size() == block.size());
      CHECK(std::memcmp(view.value.data(), block.data(), block.size()) == 0);
      CHECK(view.value.Unmap() == 0);
    }
  }

  std::string json;
  CHECK(vol.Stats(&json) > 0 && json.find("\"errors\"") != std::string::npos);
  char tiny[4];
  CHECK(vol.Stats(tiny, sizeof(tiny)) == -ERANGE);
  CHECK(vol.Sync() == 0);
  CHECK(vol.Close() == 0);
  CHECK(!vol.is_open());

  if (failures != 0) return 1;
  std::printf("c++ consumer: ok\n");
  return 0;
}
