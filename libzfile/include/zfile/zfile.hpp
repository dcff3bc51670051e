// zfile.hpp: C++ RAII types over the libzfile C API (zfile/zfile.h).
//
//   auto [err, vol] = zfile::api::Vol::Open("emu:/var/tmp/zdev");
//   if (err != 0) { std::fprintf(stderr, "%s\n", zfile::api::LastError()); ... }
//   auto opened = vol.OpenFile("seq/0", O_WRONLY | O_DIRECT);
//   zfile::api::Appended a = opened.value.Append(buf, 4096);
//
// Vol, File and View own one C handle each: movable, not copyable, and
// closed by their destructor. The destructor cannot report a failure, so
// call Close()/Unmap() yourself where the result matters (zfile_vol_close
// writes back dirty data and can fail). Close a volume's files and views
// before the volume itself, as the C API requires: declaring the Vol first
// in a scope does that.
//
// Nothing here throws. Calls return what the C function returns (0 or a
// count on success, a negative errno on failure; LastError() says why in
// words), or a small struct carrying that value next to a handle or offset.
// A call on an empty (moved-from or closed) object passes NULL to the C API,
// which fails with -EINVAL.
//
// The types live in zfile::api so they cannot meet the names libzfile uses
// inside (zfile::Volume, zfile::FileHandle, zfile::Status, ...). C++17 or
// later.
#ifndef ZFILE_ZFILE_HPP_
#define ZFILE_ZFILE_HPP_

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <utility>

#include "zfile/zfile.h"

namespace zfile {
namespace api {

// Why the last failing call on this thread failed ("" if none).
inline const char* LastError() noexcept { return zfile_last_error(); }

// ZFILE_API_VERSION of the library loaded at run time; compare with the
// ZFILE_API_VERSION this header came with to detect a mismatch.
inline int ApiVersion() noexcept { return zfile_api_version(); }

// A handle that a call produced, with the call's result: err is 0 on
// success (and `value` holds the handle) or a negative errno (and `value`
// is empty). Works with structured bindings: auto [err, file] = ...
template <typename T>
struct [[nodiscard]] Opened {
  int err = 0;
  T value;

  bool ok() const noexcept { return err == 0; }
  explicit operator bool() const noexcept { return ok(); }
};

// The result of File::Append: ret is the byte count written or a negative
// errno; offset is where the data landed (valid when ret >= 0).
struct [[nodiscard]] Appended {
  ssize_t ret = 0;
  uint64_t offset = 0;

  bool ok() const noexcept { return ret >= 0; }
};

// A read-only, pinned, zero-copy view of a cached file range (zfile_map).
// The pin holds while the View lives; a zone with pinned views cannot be
// reset (EBUSY).
class View {
 public:
  View() noexcept = default;
  // Takes ownership of a view zfile_map returned.
  View(zfile_view* view, const void* addr, size_t len) noexcept
      : view_(view), addr_(addr), len_(len) {}
  ~View() { static_cast<void>(Unmap()); }

  View(View&& other) noexcept
      : view_(std::exchange(other.view_, nullptr)),
        addr_(std::exchange(other.addr_, nullptr)),
        len_(std::exchange(other.len_, 0)) {}
  View& operator=(View&& other) noexcept {
    if (this != &other) {
      static_cast<void>(Unmap());
      view_ = std::exchange(other.view_, nullptr);
      addr_ = std::exchange(other.addr_, nullptr);
      len_ = std::exchange(other.len_, 0);
    }
    return *this;
  }
  View(const View&) = delete;
  View& operator=(const View&) = delete;

  bool valid() const noexcept { return view_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  const void* data() const noexcept { return addr_; }
  size_t size() const noexcept { return len_; }
  zfile_view* get() const noexcept { return view_; }

  // Releases the pin. 0 when there was nothing to unmap.
  int Unmap() noexcept {
    if (view_ == nullptr) return 0;
    const int ret = zfile_unmap(view_);
    view_ = nullptr;
    addr_ = nullptr;
    len_ = 0;
    return ret;
  }

  // Gives up ownership: the caller must zfile_unmap() the result.
  zfile_view* release() noexcept {
    addr_ = nullptr;
    len_ = 0;
    return std::exchange(view_, nullptr);
  }

 private:
  zfile_view* view_ = nullptr;
  const void* addr_ = nullptr;
  size_t len_ = 0;
};

// An open file (zfile_open).
class File {
 public:
  File() noexcept = default;
  // Takes ownership of a file zfile_open returned.
  explicit File(zfile_file* file) noexcept : file_(file) {}
  ~File() { static_cast<void>(Close()); }

  File(File&& other) noexcept : file_(other.release()) {}
  File& operator=(File&& other) noexcept {
    if (this != &other) {
      static_cast<void>(Close());
      file_ = other.release();
    }
    return *this;
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  bool is_open() const noexcept { return file_ != nullptr; }
  explicit operator bool() const noexcept { return is_open(); }
  zfile_file* get() const noexcept { return file_; }

  // 0 when there was nothing to close.
  int Close() noexcept {
    if (file_ == nullptr) return 0;
    return zfile_close(std::exchange(file_, nullptr));
  }

  // Gives up ownership: the caller must zfile_close() the result.
  zfile_file* release() noexcept { return std::exchange(file_, nullptr); }

  // `rwf`: RWF_* flags (0 for none), as preadv2/pwritev2 take them.
  ssize_t PRead(void* buf, size_t len, uint64_t off, int rwf = 0) noexcept {
    return zfile_pread2(file_, buf, len, off, rwf);
  }
  ssize_t PWrite(const void* buf, size_t len, uint64_t off, int rwf = 0) noexcept {
    return zfile_pwrite2(file_, buf, len, off, rwf);
  }
  // Sequential files: writes at the write pointer.
  Appended Append(const void* buf, size_t len) noexcept {
    Appended result;
    result.ret = zfile_append(file_, buf, len, &result.offset);
    return result;
  }
  int Fsync() noexcept { return zfile_fsync(file_); }
  int Truncate(uint64_t size) noexcept { return zfile_ftruncate(file_, size); }
  int Stat(struct zfile_stat* st) const noexcept { return zfile_fstat(file_, st); }

  Opened<View> Map(uint64_t off, size_t len) noexcept {
    Opened<View> result;
    const void* addr = nullptr;
    zfile_view* view = nullptr;
    result.err = zfile_map(file_, off, len, &addr, &view);
    if (result.err == 0) result.value = View(view, addr, len);
    return result;
  }

 private:
  zfile_file* file_ = nullptr;
};

// A mounted volume (zfile_vol_open).
class Vol {
 public:
  Vol() noexcept = default;
  // Takes ownership of a volume zfile_vol_open returned.
  explicit Vol(zfile_vol* vol) noexcept : vol_(vol) {}
  ~Vol() { static_cast<void>(Close()); }

  Vol(Vol&& other) noexcept : vol_(other.release()) {}
  Vol& operator=(Vol&& other) noexcept {
    if (this != &other) {
      static_cast<void>(Close());
      vol_ = other.release();
    }
    return *this;
  }
  Vol(const Vol&) = delete;
  Vol& operator=(const Vol&) = delete;

  // uri: a device (emu:DIR, mem:?..., zbd:/dev/X) or a daemon's volume;
  // options: zonefs-style mount options or nullptr. See zfile_vol_open.
  static Opened<Vol> Open(const char* uri, const char* options = nullptr) noexcept {
    Opened<Vol> result;
    zfile_vol* vol = nullptr;
    result.err = zfile_vol_open(uri, options, &vol);
    if (result.err == 0) result.value = Vol(vol);
    return result;
  }

  bool is_open() const noexcept { return vol_ != nullptr; }
  explicit operator bool() const noexcept { return is_open(); }
  zfile_vol* get() const noexcept { return vol_; }

  // Writes back dirty data and unmounts. 0 when there was nothing to close.
  // -EBUSY while files are open or views mapped: then nothing happened and
  // this object still owns the volume.
  int Close() noexcept {
    if (vol_ == nullptr) return 0;
    const int ret = zfile_vol_close(vol_);
    if (ret != -EBUSY) vol_ = nullptr;
    return ret;
  }

  // Gives up ownership: the caller must zfile_vol_close() the result.
  zfile_vol* release() noexcept { return std::exchange(vol_, nullptr); }

  int Sync() noexcept { return zfile_vol_sync(vol_); }
  int Info(struct zfile_vol_info* info) const noexcept { return zfile_vol_info(vol_, info); }

  // The counters as JSON into a caller's buffer: the length, or -ERANGE
  // when `len` is too small.
  int Stats(char* json, size_t len) const noexcept { return zfile_vol_stats(vol_, json, len); }
  // The counters as JSON, in a string grown as needed. -ENOMEM if the
  // string cannot grow (rather than std::bad_alloc).
  int Stats(std::string* json) const noexcept {
    // Enough for today's counters; doubled whenever the library needs more.
    size_t len = 4096;
    for (;;) {
      if (!Resize(json, len)) return -ENOMEM;
      const int ret = zfile_vol_stats(vol_, &(*json)[0], json->size());
      if (ret >= 0) {
        json->resize(static_cast<size_t>(ret));
        return ret;
      }
      if (ret != -ERANGE || len >= kMaxStatsLen) {
        json->clear();
        return ret;
      }
      len *= 2;
    }
  }

  Opened<File> OpenFile(const char* path, int flags) noexcept {
    Opened<File> result;
    zfile_file* file = nullptr;
    result.err = zfile_open(vol_, path, flags, &file);
    if (result.err == 0) result.value = File(file);
    return result;
  }

  // Files and the directories "", "cnv", "seq".
  int Stat(const char* path, struct zfile_stat* st) const noexcept {
    return zfile_stat(vol_, path, st);
  }
  int Chmod(const char* path, uint32_t mode) noexcept { return zfile_chmod(vol_, path, mode); }
  // (uint32_t)-1 leaves the uid or gid unchanged.
  int Chown(const char* path, uint32_t uid, uint32_t gid) noexcept {
    return zfile_chown(vol_, path, uid, gid);
  }

 private:
  static constexpr size_t kMaxStatsLen = size_t{16} << 20;

  // std::string reports allocation failure by throwing, which must not
  // escape this noexcept API; builds without exceptions abort instead, as
  // every allocation in such a build does.
  static bool Resize(std::string* s, size_t len) noexcept {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
      s->resize(len);
    } catch (const std::bad_alloc&) {
      return false;
    }
#else
    s->resize(len);
#endif
    return true;
  }

  zfile_vol* vol_ = nullptr;
};

}  // namespace api
}  // namespace zfile

#endif  // ZFILE_ZFILE_HPP_
