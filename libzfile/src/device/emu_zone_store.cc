// The emu: backend: zone data in files, in the kernel zloop layout.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "device/emu_backend.h"
#include "device/emulated_device.h"
#include "device/zone_store.h"

namespace zfile {
namespace {

namespace fs = std::filesystem;

constexpr const char* kGeometryFile = "geometry";
constexpr const char* kConditionsFile = "conditions";

std::string ZoneFileName(uint32_t zone, bool conventional) {
  char name[32];
  std::snprintf(name, sizeof(name), "%s-%06u", conventional ? "cnv" : "seq", zone);
  return name;
}

// An fd closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Writes `text` to dir/name through a temporary file and a rename, so a
// crash leaves either the old or the new contents.
Status WriteFileAtomically(const std::string& dir, const std::string& name,
                           const std::string& text) {
  const std::string tmp = dir + "/." + name + ".tmp";
  const std::string final_path = dir + "/" + name;
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus(errno, "cannot create " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoStatus(err, "cannot write " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "cannot write " + final_path);
  }
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
  return Status();
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoStatus(errno ? errno : ENOENT, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void RaiseFileLimit() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &lim);
    }
  });
}

class EmuZoneStore final : public ZoneStore {
 public:
  EmuZoneStore(std::string dir, uint32_t nr_zones, uint32_t nr_conv, UniqueFd lock_fd)
      : dir_(std::move(dir)), nr_conv_(nr_conv), lock_fd_(std::move(lock_fd)), fds_(nr_zones) {}

  Status Read(uint32_t zone, uint64_t offset, void* buf, size_t len) override {
    ZF_ASSIGN_OR_RETURN(int fd, Fd(zone));
    auto* out = static_cast<uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd, out + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "read of " + Path(zone));
      if (n == 0) break;  // past the end of the file: never written
      done += static_cast<size_t>(n);
    }
    std::memset(out + done, 0, len - done);
    return Status();
  }

  Status Write(uint32_t zone, uint64_t offset, const void* buf, size_t len) override {
    ZF_ASSIGN_OR_RETURN(int fd, Fd(zone));
    const auto* in = static_cast<const uint8_t*>(buf);
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pwrite(fd, in + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "write of " + Path(zone));
      done += static_cast<size_t>(n);
    }
    MarkDirty(zone);
    return Status();
  }

  Status SetLength(uint32_t zone, uint64_t len) override {
    ZF_ASSIGN_OR_RETURN(int fd, Fd(zone));
    if (::ftruncate(fd, static_cast<off_t>(len)) != 0) {
      return ErrnoStatus(errno, "truncate of " + Path(zone));
    }
    MarkDirty(zone);
    return Status();
  }

  Status Flush() override {
    std::set<uint32_t> dirty;
    {
      std::lock_guard<std::mutex> lock(mu_);
      dirty.swap(dirty_);
    }
    for (uint32_t z : dirty) {
      ZF_ASSIGN_OR_RETURN(int fd, Fd(z));
      if (::fdatasync(fd) != 0) return ErrnoStatus(errno, "fdatasync of " + Path(z));
    }
    return Status();
  }

  Status SaveConditions(const std::vector<ZoneCondition>& conditions) override {
    std::string text =
        "# ZONE CONDITION: zones out of service, and zones open at a clean shutdown\n";
    for (size_t z = 0; z < conditions.size(); ++z) {
      if (conditions[z] == ZoneCondition::kEmpty) continue;
      text += std::to_string(z) + " " + std::string(ConditionName(conditions[z])) + "\n";
    }
    return WriteFileAtomically(dir_, kConditionsFile, text);
  }

 private:
  std::string Path(uint32_t zone) const { return dir_ + "/" + ZoneFileName(zone, zone < nr_conv_); }

  Result<int> Fd(uint32_t zone) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fds_[zone].get() < 0) {
      int fd = ::open(Path(zone).c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return ErrnoStatus(errno, "cannot open " + Path(zone));
      fds_[zone] = UniqueFd(fd);
    }
    return fds_[zone].get();
  }

  void MarkDirty(uint32_t zone) {
    std::lock_guard<std::mutex> lock(mu_);
    dirty_.insert(zone);
  }

  const std::string dir_;
  const uint32_t nr_conv_;
  UniqueFd lock_fd_;  // flock on the geometry file: one owner at a time
  std::mutex mu_;     // guards fds_ and dirty_
  std::vector<UniqueFd> fds_;
  std::set<uint32_t> dirty_;
};

Result<std::vector<ZoneCondition>> ReadConditions(const std::string& dir, uint32_t nr_zones) {
  std::vector<ZoneCondition> conds(nr_zones, ZoneCondition::kEmpty);
  const std::string path = dir + "/" + kConditionsFile;
  if (!fs::exists(path)) return conds;
  ZF_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    uint64_t zone = 0;
    std::string name;
    if (!(fields >> zone >> name) || zone >= nr_zones) {
      return Status(EINVAL, path + ":" + std::to_string(lineno) +
                                ": expected 'ZONE readonly' or "
                                "'ZONE offline' with a zone below " +
                                std::to_string(nr_zones));
    }
    auto cond = ParseCondition(name);
    if (!cond.ok() ||
        (*cond != ZoneCondition::kReadOnly && *cond != ZoneCondition::kOffline &&
         *cond != ZoneCondition::kImplicitOpen && *cond != ZoneCondition::kExplicitOpen)) {
      return Status(EINVAL, path + ":" + std::to_string(lineno) + ": unknown condition '" + name +
                                "' (expected readonly, offline, implicit-open or explicit-open)");
    }
    conds[zone] = *cond;
  }
  return conds;
}

}  // namespace

Status CreateEmuDevice(const std::string& dir, const EmulatedGeometry& g) {
  ZF_RETURN_IF_ERROR(g.Validate());
  std::error_code ec;
  const bool existed = fs::exists(dir, ec);
  if (existed) {
    if (!fs::is_directory(dir, ec)) return Status(ENOTDIR, dir + " exists and is not a directory");
    if (fs::exists(dir + "/" + kGeometryFile)) {
      return Status(EEXIST, dir + " already holds an emulated zoned device");
    }
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("cnv-", 0) == 0 || name.rfind("seq-", 0) == 0) {
        return Status(EEXIST, dir + " already holds zone files (" + name + ")");
      }
    }
  } else if (!fs::create_directories(dir, ec)) {
    return Status(ec.value() ? ec.value() : EIO,
                  "cannot create directory " + dir + ": " + ec.message());
  }
  std::vector<std::string> created;
  auto undo = [&](Status s) {
    for (const auto& p : created) ::unlink(p.c_str());
    if (!existed) fs::remove(dir, ec);
    return s;
  };
  for (uint32_t z = 0; z < g.nr_zones(); ++z) {
    const bool conv = z < g.nr_conv_zones;
    const std::string path = dir + "/" + ZoneFileName(z, conv);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) return undo(ErrnoStatus(errno, "cannot create " + path));
    created.push_back(path);
    if (conv && ::ftruncate(fd.get(), static_cast<off_t>(g.zone_size)) != 0) {
      return undo(ErrnoStatus(errno, "cannot size " + path));
    }
  }
  // The geometry file goes last: a directory is a device once it has one.
  Status s = WriteFileAtomically(dir, kGeometryFile, g.Serialize());
  if (!s.ok()) return undo(s);
  return Status();
}

Result<std::unique_ptr<ZonedDevice>> OpenEmuDevice(const Uri& uri) {
  ZF_RETURN_IF_ERROR(uri.CheckKeys({"workers", "fail_read", "fail_write", "power_cut_after"}));
  if (uri.path.empty()) return Status(EINVAL, "emu: needs a directory (emu:/path/to/dir)");
  const std::string dir = uri.path;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status(ENOENT, "no emulated device at " + dir +
                              ": no such directory (create one with "
                              "'zfile emu create " +
                              dir + " --size 1G --zone-size 64M')");
  }
  const std::string geometry_path = dir + "/" + kGeometryFile;
  UniqueFd lock_fd(::open(geometry_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (lock_fd.get() < 0) {
    return ErrnoStatus(errno, dir + " is not an emulated zoned device (no geometry file)");
  }
  if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status(EBUSY, dir + " is in use by another process");
  }
  ZF_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(geometry_path));
  ZF_ASSIGN_OR_RETURN(EmulatedGeometry g, EmulatedGeometry::Parse(text, geometry_path));
  EmulatedOptions options;
  options.workers = 2;
  ZF_RETURN_IF_ERROR(options.ReadFromUri(uri));
  RaiseFileLimit();

  const uint32_t n = g.nr_zones();
  std::vector<uint64_t> lengths(n, 0);
  for (uint32_t z = 0; z < n; ++z) {
    const bool conv = z < g.nr_conv_zones;
    const std::string path = dir + "/" + ZoneFileName(z, conv);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return ErrnoStatus(errno, "damaged emulated device: zone file " + path);
    }
    if (conv) {
      // zloop keeps conventional zone files zone-sized; repair a short one.
      if (static_cast<uint64_t>(st.st_size) != g.zone_size &&
          ::truncate(path.c_str(), static_cast<off_t>(g.zone_size)) != 0) {
        return ErrnoStatus(errno, "cannot size " + path);
      }
    } else {
      lengths[z] = static_cast<uint64_t>(st.st_size);
    }
  }
  ZF_ASSIGN_OR_RETURN(std::vector<ZoneCondition> conds, ReadConditions(dir, n));
  std::string text_uri = "emu:" + dir;
  auto store = std::make_unique<EmuZoneStore>(dir, n, g.nr_conv_zones, std::move(lock_fd));
  auto dev = MakeEmulatedDevice(g, text_uri, "emu", std::move(store), lengths, conds, options);
  if (!dev.ok()) return dev.status().WithContext("damaged emulated device " + dir);
  return dev;
}

}  // namespace zfile
