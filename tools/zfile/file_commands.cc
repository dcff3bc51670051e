#include "tools/zfile/file_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/status.h"
#include "tools/zfile/output.h"
#include "zfile/zfile.hpp"

namespace zfile::cli {
namespace {

namespace zapi = ::zfile::api;

// Data moves in chunks of this size: big enough that per-call costs vanish,
// small enough to stay cheap in memory. A multiple of every block size.
constexpr size_t kChunkSize = size_t{1} << 20;
// Cells per line in `zones --map`.
constexpr size_t kMapWidth = 64;

}  // namespace

// ---------------------------------------------------------------------------
// The volume a command works on.

std::string VolumeTarget::Uri() const {
  if (!daemon) return device;
  if (socket.empty()) return "zfiled:" + volume;
  return "unix:" + socket + "?volume=" + volume;
}

void AddDaemonOptions(CLI::App* cmd, VolumeTarget* target, CLI::Option* device_option,
                      CLI::Option* options_option, CLI::Option* raw_device_option) {
  CLI::Option* volume =
      cmd->add_option("--volume", target->volume,
                      "Volume NAME of a running zfiled instead of a device (its socket: --socket, "
                      "else $ZFILED_SOCKET, else /run/zfiled/zfiled.sock)")
          ->type_name("NAME");
  CLI::Option* socket =
      cmd->add_option("--socket", target->socket,
                      "The running zfiled's socket; alone, it means --volume default")
          ->type_name("PATH");
  // Checked by hand rather than with CLI11's excludes()/required(), whose
  // messages ("--device excludes --volume", "--device is required") do not
  // say what the two ways of naming a volume are.
  cmd->callback([target, cmd, device_option, options_option, raw_device_option, volume, socket] {
    const bool daemon = volume->count() > 0 || socket->count() > 0;
    const bool device = device_option->count() > 0;
    const std::string name = cmd->get_name();
    if (raw_device_option != nullptr) {
      const bool raw = raw_device_option->count() > 0;
      if (static_cast<int>(raw) + static_cast<int>(device) + static_cast<int>(daemon) != 1) {
        throw CLI::ValidationError(
            name +
            ": give one of: a device URI (the device itself), --device URI (the volume "
            "on it, mounted in this process), --volume NAME / --socket PATH (a volume of "
            "a running zfiled)");
      }
      if (raw && options_option != nullptr && options_option->count() > 0) {
        throw CLI::ValidationError(name +
                                   ": mount options (-o) go with --device: the device itself "
                                   "is not mounted");
      }
      if (raw) return;
    }
    if (daemon && device) {
      throw CLI::ValidationError(
          name +
          ": give either --device URI (a device mounted in this process) or --volume NAME "
          "/ --socket PATH (a volume of a running zfiled), not both");
    }
    if (!daemon && !device) {
      throw CLI::ValidationError(
          name +
          ": which volume? Give --device URI to mount a device in this process, or "
          "--volume NAME (and --socket PATH) for a volume of a running zfiled");
    }
    if (daemon && options_option != nullptr && options_option->count() > 0) {
      throw CLI::ValidationError(
          name + ": mount options (-o " + target->options +
          ") cannot be given to a volume of zfiled: the daemon's configuration sets them "
          "(zfiled --options, or the volume's options in its configuration file)");
    }
    if (daemon && target->socket.find('?') != std::string::npos) {
      throw CLI::ValidationError(name + ": --socket " + target->socket +
                                 ": a socket path with '?' cannot be named in a zfiled URI");
    }
    target->daemon = daemon;
    // --socket alone: the one volume a quick-start zfiled serves by default.
    if (daemon && volume->count() == 0) target->volume = "default";
  });
}

void AddVolumeOptions(CLI::App* cmd, VolumeTarget* target) {
  CLI::Option* device =
      cmd->add_option("--device,-d", target->device,
                      "Device holding the volume (emu:DIR, mem:?..., zbd:/dev/X), mounted in this "
                      "process for the command")
          ->type_name("URI");
  CLI::Option* options =
      cmd->add_option("-o,--options", target->options,
                      "Mount options with --device, comma-separated: "
                      "errors=remount-ro|zone-ro|zone-offline|repair, explicit-open, "
                      "seq_buffered=writethrough|reject, cache_size=SIZE, ...")
          ->type_name("OPTIONS");
  AddDaemonOptions(cmd, target, device, options);
}

// A failed C API call as a Status. zfile_last_error() is the message; it
// already ends with " (EINVAL: Invalid argument)", which main() adds again
// when it prints a Status, so that suffix is dropped here. Call it before
// any other API call, which would replace the message.
Status ApiError(int ret) {
  const int err = ret < 0 ? -ret : EIO;
  std::string message = zapi::LastError();
  const std::string suffix = Status(err, "").ToString();
  if (message.size() > suffix.size() &&
      message.compare(message.size() - suffix.size(), suffix.size(), suffix) == 0) {
    message.resize(message.size() - suffix.size());
  }
  if (message.empty()) message = "libzfile call failed";
  return Status(err, message);
}

Status Check(int ret) { return ret < 0 ? ApiError(ret) : Status(); }

Result<zapi::Vol> OpenVolume(const VolumeTarget& target) {
  const std::string uri = target.Uri();
  auto [err, vol] =
      zapi::Vol::Open(uri.c_str(), target.options.empty() ? nullptr : target.options.c_str());
  if (err != 0) return ApiError(err);
  return std::move(vol);
}

Result<zapi::File> OpenFile(zapi::Vol& vol, const std::string& path, int flags) {
  auto [err, file] = vol.OpenFile(path.c_str(), flags);
  if (err != 0) return ApiError(err);
  return std::move(file);
}

// Closes explicitly, where the destructors would drop the result: closing
// the volume writes back dirty data and can fail.
Status CloseAll(zapi::File* file, zapi::Vol* vol) {
  Status status;
  if (file != nullptr) status = Check(file->Close());
  const int ret = vol->Close();
  if (status.ok()) status = Check(ret);
  return status;
}

std::string NormalizePath(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return std::string(path);
}

Result<AlignedBuffer> AllocateBuffer(size_t size) {
  void* p = nullptr;
  const int err = posix_memalign(&p, kBufferAlignment, size);
  if (err != 0) return Status(err, "cannot allocate a " + FormatSize(size) + " I/O buffer");
  return AlignedBuffer(static_cast<char*>(p));
}

namespace {

// --stats on the commands that do I/O: a mount made for one command starts
// its counters at zero and loses them at exit, so `zfile stats` in a later
// command cannot show what this one did; this can. (A daemon's volume keeps
// its counters, so there both ways show them.)
void AddStatsFlag(CLI::App* cmd, bool* stats) {
  cmd->add_flag("--stats", *stats,
                "Print the volume's counters (as `zfile stats --json`) to standard error at the "
                "end: this command's own mount with --device, the daemon's volume with --volume");
}

Status PrintStats(zapi::Vol& vol) {
  std::string stats;
  ZF_RETURN_IF_ERROR(Check(vol.Stats(&stats)));
  fmt::print(stderr, "{}\n", stats);
  return Status();
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// ---------------------------------------------------------------------------
// Names and formats of what zfile_stat returns.

std::string_view FileTypeName(int type) {
  switch (type) {
    case ZFILE_TYPE_CNV:
      return "conventional";
    case ZFILE_TYPE_SEQ:
      return "sequential";
    case ZFILE_TYPE_DIR:
      return "directory";
  }
  return "unknown";
}

// The names `zfile report --json` uses for the same conditions.
std::string_view CondName(int cond) {
  switch (cond) {
    case ZFILE_COND_NOT_WP:
      return "not-write-pointer";
    case ZFILE_COND_EMPTY:
      return "empty";
    case ZFILE_COND_IMP_OPEN:
      return "implicit-open";
    case ZFILE_COND_EXP_OPEN:
      return "explicit-open";
    case ZFILE_COND_CLOSED:
      return "closed";
    case ZFILE_COND_READONLY:
      return "readonly";
    case ZFILE_COND_FULL:
      return "full";
    case ZFILE_COND_OFFLINE:
      return "offline";
  }
  return "unknown";
}

bool IsDir(const struct zfile_stat& st) { return st.type == ZFILE_TYPE_DIR; }

// "-rw-r-----", as ls -l prints it.
std::string ModeString(uint32_t mode) {
  std::string s(10, '-');
  if (S_ISDIR(mode)) s[0] = 'd';
  static constexpr char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if ((mode & (0400u >> i)) != 0) s[1 + i] = kRwx[i];
  }
  if ((mode & S_ISUID) != 0) s[3] = (mode & S_IXUSR) != 0 ? 's' : 'S';
  if ((mode & S_ISGID) != 0) s[6] = (mode & S_IXGRP) != 0 ? 's' : 'S';
  if ((mode & S_ISVTX) != 0) s[9] = (mode & S_IXOTH) != 0 ? 't' : 'T';
  return s;
}

std::string Permissions(uint32_t mode) { return fmt::format("{:04o}", mode & 07777u); }

std::string LimitText(uint32_t limit) { return limit == 0 ? "none" : std::to_string(limit); }

std::string SizeText(uint64_t bytes) {
  return fmt::format("{} ({} bytes)", FormatSize(bytes), bytes);
}

// Writes the fields every file and directory has, for ls and stat.
void StatJsonFields(JsonWriter* json, const struct zfile_stat& st) {
  json->Key("type").String(FileTypeName(st.type));
  json->Key("size").Uint(st.size);
  json->Key("mode").Uint(st.mode);
  json->Key("permissions").String(Permissions(st.mode));
  json->Key("mode_string").String(ModeString(st.mode));
  json->Key("uid").Uint(st.uid);
  json->Key("gid").Uint(st.gid);
  json->Key("ino").Uint(st.ino);
  // Directories have no zone.
  if (IsDir(st)) {
    json->Key("cond").Null();
  } else {
    json->Key("max_size").Uint(st.max_size);
    json->Key("cond").String(CondName(st.cond));
  }
}

// ---------------------------------------------------------------------------
// Plain file descriptors.

// Reads until `len` bytes or the end of the input: pipes deliver short
// reads, and every chunk but the last must be whole blocks.
Result<size_t> ReadFull(int fd, char* buf, size_t len, const std::string& name) {
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::read(fd, buf + done, len - done);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read " + name);
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

Status WriteFull(int fd, const char* buf, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write to standard output");
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return Status();
}

// The data source of `write`: a file, or standard input (not closed).
class Input {
 public:
  // "" or "-": standard input.
  static Result<Input> Open(const std::string& path) {
    Input input;
    if (path.empty() || path == "-") {
      input.name_ = "standard input";
      input.fd_ = STDIN_FILENO;
    } else {
      input.name_ = path;
      input.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (input.fd_ < 0) return ErrnoStatus(errno, "cannot open " + path);
      input.owned_ = true;
    }
    struct stat st;
    if (::fstat(input.fd_, &st) == 0 && S_ISREG(st.st_mode)) {
      input.size_known_ = true;
      input.size_ = static_cast<uint64_t>(st.st_size);
    }
    return input;
  }

  Input(Input&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        owned_(std::exchange(other.owned_, false)),
        size_known_(other.size_known_),
        size_(other.size_),
        name_(std::move(other.name_)) {}
  Input& operator=(Input&&) = delete;
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() {
    if (owned_) ::close(fd_);
  }

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  // Regular files tell their size up front, so a write can be checked
  // before it changes anything; pipes only at their end.
  bool size_known() const { return size_known_; }
  uint64_t size() const { return size_; }

 private:
  Input() = default;

  int fd_ = -1;
  bool owned_ = false;
  bool size_known_ = false;
  uint64_t size_ = 0;
  std::string name_;
};

// ---------------------------------------------------------------------------
// ls

struct LsOptions {
  VolumeTarget target;
  std::string path;
  bool long_format = false;
  bool json = false;
};

struct Entry {
  std::string name;
  std::string path;
  struct zfile_stat st = {};
};

// The entries of a directory. The volume's layout is fixed (SPEC: cnv/
// only when there are conventional files, files numbered from 0 in zone
// order), so the counts zfile_vol_info gives name every file.
Result<std::vector<Entry>> ListDirectory(zapi::Vol& vol, const std::string& dir) {
  struct zfile_vol_info info = {};
  ZF_RETURN_IF_ERROR(Check(vol.Info(&info)));
  std::vector<std::string> names;
  if (dir.empty()) {
    if (info.nr_cnv_files > 0) names.push_back("cnv");
    names.push_back("seq");
  } else {
    const uint32_t count = dir == "cnv" ? info.nr_cnv_files : info.nr_seq_files;
    for (uint32_t i = 0; i < count; ++i) names.push_back(std::to_string(i));
  }
  std::vector<Entry> entries;
  entries.reserve(names.size());
  for (std::string& name : names) {
    Entry e;
    e.path = JoinPath(dir, name);
    e.name = std::move(name);
    ZF_RETURN_IF_ERROR(Check(vol.Stat(e.path.c_str(), &e.st)));
    entries.push_back(std::move(e));
  }
  return entries;
}

void PrintLsLong(const std::vector<Entry>& entries) {
  size_t uid_width = 1, gid_width = 1, size_width = 1;
  for (const Entry& e : entries) {
    uid_width = std::max(uid_width, std::to_string(e.st.uid).size());
    gid_width = std::max(gid_width, std::to_string(e.st.gid).size());
    size_width = std::max(size_width, std::to_string(e.st.size).size());
  }
  std::string out;
  for (const Entry& e : entries) {
    fmt::format_to(std::back_inserter(out), "{} {:>{}} {:>{}} {:>{}} {}\n", ModeString(e.st.mode),
                   e.st.uid, uid_width, e.st.gid, gid_width, e.st.size, size_width, e.name);
  }
  fmt::print("{}", out);
}

void PrintLsJson(const std::vector<Entry>& entries) {
  JsonWriter json;
  json.BeginArray();
  for (const Entry& e : entries) {
    json.BeginObject();
    json.Key("name").String(e.name);
    json.Key("path").String(e.path);
    StatJsonFields(&json, e.st);
    json.EndObject();
  }
  json.EndArray();
  fmt::print("{}", json.Finish());
}

Status RunLs(const LsOptions& opt) {
  const std::string path = NormalizePath(opt.path);
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  struct zfile_stat st = {};
  ZF_RETURN_IF_ERROR(Check(vol.Stat(path.c_str(), &st)));
  std::vector<Entry> entries;
  if (IsDir(st)) {
    ZF_ASSIGN_OR_RETURN(entries, ListDirectory(vol, path));
  } else {
    // As ls does, a file lists as itself.
    entries.push_back(Entry{path, path, st});
  }
  ZF_RETURN_IF_ERROR(CloseAll(nullptr, &vol));
  if (opt.json) {
    PrintLsJson(entries);
  } else if (opt.long_format) {
    PrintLsLong(entries);
  } else {
    std::string out;
    for (const Entry& e : entries) fmt::format_to(std::back_inserter(out), "{}\n", e.name);
    fmt::print("{}", out);
  }
  return Status();
}

void RegisterLs(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<LsOptions>();
  CLI::App* cmd = app->add_subcommand("ls", "List the directories or files of a volume");
  cmd->add_option("PATH", opt->path, "Directory (\"\" or /, cnv, seq) or file (default: /)");
  AddVolumeOptions(cmd, &opt->target);
  cmd->add_flag("-l", opt->long_format, "Long format: mode, uid, gid, size in bytes, name");
  cmd->add_flag("--json", opt->json,
                "JSON array: name, path, type, size, mode, uid, gid, max_size and zone condition");
  cmd->footer(
      "Examples:\n"
      "  zfile ls --device emu:/var/tmp/zdev\n"
      "  zfile ls seq -l --volume data --socket /run/zfiled/zfiled.sock");
  table->Add(cmd, [opt] { return RunLs(*opt); });
}

// ---------------------------------------------------------------------------
// stat

struct StatOptions {
  VolumeTarget target;
  std::string path;
  bool json = false;
};

void PrintStatText(const std::string& path, const struct zfile_stat& st) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    fmt::format_to(std::back_inserter(out), "{:<13}{}\n", fmt::format("{}:", key), value);
  };
  line("path", path.empty() ? "/" : path);
  line("type", std::string(FileTypeName(st.type)));
  if (IsDir(st)) {
    line("entries", std::to_string(st.size));
  } else {
    line("size", std::to_string(st.size));
    line("max size", SizeText(st.max_size));
    line("blocks", fmt::format("{} (512-byte units)", st.blocks));
    line("block size", std::to_string(st.block_size));
    line("zone start", SizeText(st.zone_start));
    line("zone length", SizeText(st.zone_len));
    line("condition", std::string(CondName(st.cond)));
  }
  line("inode", std::to_string(st.ino));
  line("mode", fmt::format("{} ({})", Permissions(st.mode), ModeString(st.mode)));
  line("uid", std::to_string(st.uid));
  line("gid", std::to_string(st.gid));
  fmt::print("{}", out);
}

void PrintStatJson(const std::string& path, const struct zfile_stat& st) {
  JsonWriter json;
  json.BeginObject();
  json.Key("path").String(path);
  StatJsonFields(&json, st);
  json.Key("blocks").Uint(st.blocks);
  json.Key("block_size").Uint(st.block_size);
  if (!IsDir(st)) {
    json.Key("zone_start").Uint(st.zone_start);
    json.Key("zone_len").Uint(st.zone_len);
    // The kernel's BLK_ZONE_COND_* number, next to the name.
    json.Key("cond_code").Uint(static_cast<uint64_t>(st.cond));
  }
  json.EndObject();
  fmt::print("{}", json.Finish());
}

Status RunStat(const StatOptions& opt) {
  const std::string path = NormalizePath(opt.path);
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  struct zfile_stat st = {};
  ZF_RETURN_IF_ERROR(Check(vol.Stat(path.c_str(), &st)));
  ZF_RETURN_IF_ERROR(CloseAll(nullptr, &vol));
  if (opt.json) {
    PrintStatJson(path, st);
  } else {
    PrintStatText(path, st);
  }
  return Status();
}

void RegisterStat(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<StatOptions>();
  CLI::App* cmd =
      app->add_subcommand("stat", "Show a file's size, capacity, zone, condition, mode and owner");
  cmd->add_option("PATH", opt->path, "File (cnv/N, seq/N) or directory")->required();
  AddVolumeOptions(cmd, &opt->target);
  cmd->add_flag("--json", opt->json, "JSON object with every field of zfile_stat");
  cmd->footer(
      "Examples:\n"
      "  zfile stat seq/3 --device emu:/var/tmp/zdev --json\n"
      "  zfile stat seq/3 --volume data");
  table->Add(cmd, [opt] { return RunStat(*opt); });
}

// ---------------------------------------------------------------------------
// cat

struct CatOptions {
  VolumeTarget target;
  std::string path;
  bool direct = false;
  uint64_t offset = 0;
  uint64_t length = 0;
  CLI::Option* length_option = nullptr;
  bool stats = false;
};

Status RunCat(const CatOptions& opt) {
  const std::string path = NormalizePath(opt.path);
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  ZF_ASSIGN_OR_RETURN(zapi::File file, OpenFile(vol, path, O_RDONLY | (opt.direct ? O_DIRECT : 0)));
  struct zfile_stat st = {};
  ZF_RETURN_IF_ERROR(Check(file.Stat(&st)));
  // Reads stop at the file size, as they do on zonefs.
  uint64_t end = st.size;
  if (opt.length_option->count() > 0 && opt.length < end && opt.offset < end - opt.length) {
    end = opt.offset + opt.length;
  }
  ZF_ASSIGN_OR_RETURN(AlignedBuffer buf, AllocateBuffer(kChunkSize));
  for (uint64_t pos = opt.offset; pos < end;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkSize, end - pos));
    const ssize_t n = file.PRead(buf.get(), want, pos);
    if (n < 0) return ApiError(static_cast<int>(n));
    if (n == 0) break;  // the file shrank (a zone reset) while we read
    ZF_RETURN_IF_ERROR(WriteFull(STDOUT_FILENO, buf.get(), static_cast<size_t>(n)));
    pos += static_cast<uint64_t>(n);
  }
  if (opt.stats) ZF_RETURN_IF_ERROR(PrintStats(vol));
  return CloseAll(&file, &vol);
}

void RegisterCat(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<CatOptions>();
  CLI::App* cmd =
      app->add_subcommand("cat", "Copy a file's data to standard output (up to its size)");
  cmd->add_option("PATH", opt->path, "File (cnv/N, seq/N)")->required();
  AddVolumeOptions(cmd, &opt->target);
  cmd->add_flag("--direct", opt->direct,
                "Read with O_DIRECT (offset and length must be multiples of the block size)");
  cmd->add_option("--offset", opt->offset, "Start at this byte offset (e.g. 4K)")
      ->transform(SizeValidator())
      ->type_name("OFFSET");
  opt->length_option =
      cmd->add_option("--length", opt->length, "Read at most this many bytes (default: to the end)")
          ->transform(SizeValidator())
          ->type_name("SIZE");
  AddStatsFlag(cmd, &opt->stats);
  cmd->footer(
      "Examples:\n"
      "  zfile cat seq/0 --device emu:/var/tmp/zdev > seq0.bin\n"
      "  zfile cat cnv/0 --device emu:/var/tmp/zdev --direct --offset 1M --length 64K | xxd\n"
      "  zfile cat seq/0 --volume data > seq0.bin");
  table->Add(cmd, [opt] { return RunCat(*opt); });
}

// ---------------------------------------------------------------------------
// write

struct WriteOptions {
  VolumeTarget target;
  std::string path;
  std::string from;
  bool direct = false;
  bool sync = false;
  bool append = false;
  uint64_t offset = 0;
  bool stats = false;
};

// What was written before a failure, so the user knows what changed.
std::string WrittenNote(uint64_t total, uint64_t first, uint64_t next) {
  if (total == 0) return " (nothing was written)";
  return fmt::format(" ({} bytes were written before this, at offsets {}-{})", total, first,
                     next - 1);
}

// Checks a write whose length is known before anything is written, so that
// bad input changes nothing (SPEC section 9). Rules the engine owns (the
// write pointer, O_APPEND on conventional files) are left to the engine,
// whose messages say more.
Status CheckWriteUpFront(const WriteOptions& opt, const std::string& path,
                         const struct zfile_stat& st, const Input& input) {
  const bool seq = st.type == ZFILE_TYPE_SEQ;
  const uint64_t bs = st.block_size;
  const uint64_t start = opt.append ? st.size : opt.offset;
  if (opt.direct && !opt.append && start % bs != 0) {
    return Status(EINVAL, fmt::format("{}: offset {} is not aligned to the {}-byte block size "
                                      "(--direct writes must be block-aligned)",
                                      path, start, bs));
  }
  if (!input.size_known()) return Status();
  if (opt.direct && input.size() % bs != 0) {
    return Status(EINVAL,
                  fmt::format("{}: {} is {} bytes, which ends with a partial block of {} bytes: "
                              "--direct writes must be whole, aligned {}-byte blocks, and zfile "
                              "does not pad them (nothing was written)",
                              path, input.name(), input.size(), input.size() % bs, bs));
  }
  if (seq && input.size() % bs != 0) {
    return Status(EINVAL, fmt::format("{}: {} is {} bytes, not a whole number of {}-byte blocks: "
                                      "sequential files take whole blocks (nothing was written)",
                                      path, input.name(), input.size(), bs));
  }
  const bool placement_ok = seq ? start == st.size : !opt.append;
  if (placement_ok && (start > st.max_size || input.size() > st.max_size - start)) {
    return Status(EFBIG,
                  fmt::format("{}: {} bytes at offset {} do not fit: the file's maximum size is "
                              "{} bytes (nothing was written)",
                              path, input.size(), start, st.max_size));
  }
  return Status();
}

Status RunWrite(const WriteOptions& opt) {
  const std::string path = NormalizePath(opt.path);
  ZF_ASSIGN_OR_RETURN(Input input, Input::Open(opt.from));
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  const int flags = O_WRONLY | (opt.direct ? O_DIRECT : 0) | (opt.sync ? O_SYNC : 0) |
                    (opt.append ? O_APPEND : 0);
  ZF_ASSIGN_OR_RETURN(zapi::File file, OpenFile(vol, path, flags));
  struct zfile_stat st = {};
  ZF_RETURN_IF_ERROR(Check(file.Stat(&st)));
  ZF_RETURN_IF_ERROR(CheckWriteUpFront(opt, path, st, input));

  // zfile_append says where each append landed; a conventional file opened
  // with O_APPEND goes through pwrite so the engine applies its O_APPEND
  // rule (EINVAL) as it does for any application.
  const bool use_append = opt.append && st.type == ZFILE_TYPE_SEQ;
  const uint64_t bs = st.block_size;
  ZF_ASSIGN_OR_RETURN(AlignedBuffer buf, AllocateBuffer(kChunkSize));
  uint64_t total = 0;
  uint64_t first = opt.offset;
  uint64_t next = opt.offset;
  for (;;) {
    ZF_ASSIGN_OR_RETURN(size_t n, ReadFull(input.fd(), buf.get(), kChunkSize, input.name()));
    if (n == 0) break;
    if (opt.direct && n % bs != 0) {
      return Status(EINVAL,
                    fmt::format("{}: {} ends with a partial block of {} bytes: --direct "
                                "writes must be whole, aligned {}-byte blocks, and zfile "
                                "does not pad them{}",
                                path, input.name(), n % bs, bs, WrittenNote(total, first, next)));
    }
    for (size_t done = 0; done < n;) {
      ssize_t ret = 0;
      uint64_t at = next;
      if (use_append) {
        const zapi::Appended a = file.Append(buf.get() + done, n - done);
        ret = a.ret;
        at = a.offset;
      } else {
        ret = file.PWrite(buf.get() + done, n - done, next);
      }
      if (ret < 0) {
        const Status error = ApiError(static_cast<int>(ret));
        return Status(error.err(), error.message() + WrittenNote(total, first, next));
      }
      // A conventional file takes what fits below its size; the next call
      // then fails with EFBIG, but a call that moves nothing must not spin.
      if (ret == 0) {
        return Status(EIO, fmt::format("{}: write at {} made no progress{}", path, at,
                                       WrittenNote(total, first, next)));
      }
      if (total == 0) first = at;
      done += static_cast<size_t>(ret);
      total += static_cast<uint64_t>(ret);
      next = at + static_cast<uint64_t>(ret);
    }
    if (n < kChunkSize) break;  // ReadFull is short only at the end of the input
  }
  if (opt.stats) ZF_RETURN_IF_ERROR(PrintStats(vol));
  ZF_RETURN_IF_ERROR(CloseAll(&file, &vol));
  if (total == 0) {
    fmt::print("wrote 0 bytes to {}\n", path);
  } else {
    fmt::print("{} {} bytes to {} at offset {}\n", opt.append ? "appended" : "wrote", total, path,
               first);
  }
  return Status();
}

void RegisterWrite(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<WriteOptions>();
  CLI::App* cmd = app->add_subcommand(
      "write", "Write standard input (or a file) to a file of the volume, in 1 MiB chunks");
  cmd->add_option("PATH", opt->path, "File (cnv/N, seq/N)")->required();
  AddVolumeOptions(cmd, &opt->target);
  cmd->add_option("--from", opt->from, "Read the data from FILE (default: standard input)")
      ->type_name("FILE");
  cmd->add_flag("--direct", opt->direct,
                "Write with O_DIRECT: the offset and the data must be whole blocks");
  cmd->add_flag("--sync", opt->sync, "Open with O_SYNC: each write is on the device on return");
  CLI::Option* append =
      cmd->add_flag("--append", opt->append,
                    "Open with O_APPEND: sequential files take the data at their write pointer "
                    "(conventional files refuse it, as on zonefs)");
  cmd->add_option("--offset", opt->offset,
                  "Write at this byte offset (default 0; a sequential file's must be its size)")
      ->transform(SizeValidator())
      ->type_name("OFFSET")
      ->excludes(append);
  AddStatsFlag(cmd, &opt->stats);
  cmd->footer(
      "Sequential files take whole blocks at the write pointer only; conventional files take "
      "any\nwrite below their size. Prints how many bytes were written and where.\n\n"
      "Examples:\n"
      "  zfile write cnv/0 --device emu:/var/tmp/zdev --from data.bin --offset 1M\n"
      "  head -c 64K /dev/urandom | zfile write seq/0 --device emu:/var/tmp/zdev --append "
      "--direct\n"
      "  zfile write seq/1 --volume data --append --sync --from data.bin");
  table->Add(cmd, [opt] { return RunWrite(*opt); });
}

// ---------------------------------------------------------------------------
// truncate

struct TruncateOptions {
  VolumeTarget target;
  std::string path;
  uint64_t size = 0;
  bool stats = false;
};

Status RunTruncate(const TruncateOptions& opt) {
  const std::string path = NormalizePath(opt.path);
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  ZF_ASSIGN_OR_RETURN(zapi::File file, OpenFile(vol, path, O_WRONLY));
  ZF_RETURN_IF_ERROR(Check(file.Truncate(opt.size)));
  if (opt.stats) ZF_RETURN_IF_ERROR(PrintStats(vol));
  ZF_RETURN_IF_ERROR(CloseAll(&file, &vol));
  fmt::print("{}: size {}{}\n", path, opt.size, opt.size == 0 ? " (zone reset)" : " (zone full)");
  return Status();
}

void RegisterTruncate(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<TruncateOptions>();
  CLI::App* cmd = app->add_subcommand(
      "truncate", "Truncate a sequential file: to 0 resets its zone, to its capacity finishes it");
  cmd->add_option("PATH", opt->path, "Sequential file (seq/N)")->required();
  cmd->add_option("SIZE", opt->size, "0 or the file's maximum size (e.g. 64M)")
      ->required()
      ->transform(SizeValidator());
  AddVolumeOptions(cmd, &opt->target);
  AddStatsFlag(cmd, &opt->stats);
  cmd->footer(
      "Any other size, and any conventional file, is refused (EPERM), as on zonefs.\n\n"
      "Examples:\n  zfile truncate seq/3 0 --device emu:/var/tmp/zdev\n"
      "  zfile truncate seq/3 0 --volume data");
  table->Add(cmd, [opt] { return RunTruncate(*opt); });
}

// ---------------------------------------------------------------------------
// info --device (the volume)

struct VolInfoOptions {
  VolumeTarget target;
  bool json = false;
};

void PrintVolInfoText(const VolumeTarget& target, const struct zfile_vol_info& info) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    fmt::format_to(std::back_inserter(out), "{:<21}{}\n", fmt::format("{}:", key), value);
  };
  // A daemon does not say which device holds its volume; its name and
  // socket are what the user gave.
  if (target.daemon) {
    line("volume", target.volume);
    line("zfiled socket", target.socket.empty() ? "(default)" : target.socket);
  } else {
    line("device", target.device);
  }
  line("label", info.label[0] == '\0' ? "(none)" : std::string(info.label));
  line("uuid", info.uuid);
  line("conventional files", std::to_string(info.nr_cnv_files));
  line("sequential files", std::to_string(info.nr_seq_files));
  line("block size", std::to_string(info.block_size));
  line("zone size", SizeText(info.zone_size));
  line("zone capacity", SizeText(info.zone_capacity));
  line("max open zones", LimitText(info.max_open));
  line("max active zones", LimitText(info.max_active));
  line("open zones", std::to_string(info.open_zones));
  line("active zones", std::to_string(info.active_zones));
  line("read-only", info.read_only != 0 ? "yes" : "no");
  fmt::print("{}", out);
}

void PrintVolInfoJson(const VolumeTarget& target, const struct zfile_vol_info& info) {
  JsonWriter json;
  json.BeginObject();
  if (target.daemon) {
    json.Key("volume").String(target.volume);
  } else {
    json.Key("device").String(target.device);
  }
  json.Key("label").String(info.label);
  json.Key("uuid").String(info.uuid);
  json.Key("nr_cnv_files").Uint(info.nr_cnv_files);
  json.Key("nr_seq_files").Uint(info.nr_seq_files);
  json.Key("block_size").Uint(info.block_size);
  json.Key("zone_size").Uint(info.zone_size);
  json.Key("zone_capacity").Uint(info.zone_capacity);
  // 0 means no limit, as in `zfile info --json`.
  json.Key("max_open").Uint(info.max_open);
  json.Key("max_active").Uint(info.max_active);
  json.Key("open_zones").Uint(info.open_zones);
  json.Key("active_zones").Uint(info.active_zones);
  json.Key("read_only").Bool(info.read_only != 0);
  json.EndObject();
  fmt::print("{}", json.Finish());
}

Status RunVolInfo(const VolInfoOptions& opt) {
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  struct zfile_vol_info info = {};
  ZF_RETURN_IF_ERROR(Check(vol.Info(&info)));
  ZF_RETURN_IF_ERROR(CloseAll(nullptr, &vol));
  if (opt.json) {
    PrintVolInfoJson(opt.target, info);
  } else {
    PrintVolInfoText(opt.target, info);
  }
  return Status();
}

}  // namespace

Status RunVolumeInfo(const VolumeTarget& target, bool json) {
  VolInfoOptions opt;
  opt.target = target;
  opt.json = json;
  return RunVolInfo(opt);
}

namespace {

// ---------------------------------------------------------------------------
// stats

struct StatsOptions {
  VolumeTarget target;
  bool json = false;
};

struct JsonField {
  std::string key;
  std::string value;
};

// Reads the flat object zfile_vol_stats returns ({"name": scalar, ...}) for
// the text listing. Anything else (nesting, malformed text) returns false
// and the caller prints the JSON as it came.
bool ParseFlatJsonObject(std::string_view text, std::vector<JsonField>* fields) {
  size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  auto parse_string = [&](std::string* out) {
    if (i >= text.size() || text[i] != '"') return false;
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\') {
        if (++i >= text.size()) return false;
        const char c = text[i];
        out->push_back(c == 'n' ? '\n' : c == 't' ? '\t' : c);
      } else {
        out->push_back(text[i]);
      }
    }
    if (i >= text.size()) return false;
    ++i;  // the closing quote
    return true;
  };
  skip_space();
  if (i >= text.size() || text[i] != '{') return false;
  ++i;
  skip_space();
  if (i < text.size() && text[i] == '}') return true;
  while (i < text.size()) {
    JsonField field;
    skip_space();
    if (!parse_string(&field.key)) return false;
    skip_space();
    if (i >= text.size() || text[i] != ':') return false;
    ++i;
    skip_space();
    if (i < text.size() && text[i] == '"') {
      if (!parse_string(&field.value)) return false;
    } else {
      const size_t start = i;
      while (i < text.size() && text[i] != ',' && text[i] != '}' &&
             !std::isspace(static_cast<unsigned char>(text[i]))) {
        if (text[i] == '{' || text[i] == '[') return false;
        ++i;
      }
      if (i == start) return false;
      field.value = std::string(text.substr(start, i - start));
    }
    fields->push_back(std::move(field));
    skip_space();
    if (i >= text.size()) return false;
    if (text[i] == '}') return true;
    if (text[i] != ',') return false;
    ++i;
  }
  return false;
}

Status RunStats(const StatsOptions& opt) {
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  std::string stats;
  ZF_RETURN_IF_ERROR(Check(vol.Stats(&stats)));
  ZF_RETURN_IF_ERROR(CloseAll(nullptr, &vol));
  std::vector<JsonField> fields;
  if (opt.json || !ParseFlatJsonObject(stats, &fields)) {
    fmt::print("{}\n", stats);
    return Status();
  }
  size_t width = 0;
  for (const JsonField& f : fields) width = std::max(width, f.key.size());
  std::string out;
  for (const JsonField& f : fields) {
    fmt::format_to(std::back_inserter(out), "{:<{}} {}\n", f.key + ":", width + 1, f.value);
  }
  fmt::print("{}", out);
  return Status();
}

void RegisterStats(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<StatsOptions>();
  CLI::App* cmd = app->add_subcommand(
      "stats",
      "Show the volume's counters (I/O bytes and operations, cache, zone operations, errors)");
  AddVolumeOptions(cmd, &opt->target);
  cmd->add_flag("--json", opt->json, "The JSON object zfile_vol_stats returns");
  cmd->footer(
      "With --volume the counters are the daemon's for that volume, since it mounted it. With "
      "--device\nthey cover this command's own mount, which has done no I/O yet: use --stats on "
      "cat, write or\ntruncate to see what one command did.\n\n"
      "Examples:\n"
      "  zfile stats --volume data\n"
      "  zfile stats --device emu:/var/tmp/zdev --json | jq .zone_resets");
  table->Add(cmd, [opt] { return RunStats(*opt); });
}

// ---------------------------------------------------------------------------
// zones

struct ZonesOptions {
  VolumeTarget target;
  bool map = false;
  bool json = false;
  std::string charset = "auto";
};

struct SeqFile {
  std::string path;
  struct zfile_stat st = {};
};

// Marks for `--map`: how full a zone is, in nine steps from empty to full
// (the UTF-8 set is the block elements, rising with the fill), and two
// conditions that matter more than the fill.
struct MapGlyphs {
  const char* levels[9];
  const char* readonly;
  const char* offline;
};
// · ▁ ▂ ▃ ▄ ▅ ▆ ▇ █ : an empty zone gets a dot, not a blank, so the grid
// stays visible.
constexpr MapGlyphs kUtf8Glyphs = {
    {"\u00b7", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"},
    "R",
    "X"};
constexpr MapGlyphs kAsciiGlyphs = {{".", ":", "-", "=", "+", "*", "#", "%", "@"}, "R", "X"};

// 0: empty, 8: full, 1-7: partly written in eighths (rounded down, so a
// zone shows full only when it is).
int FillLevel(uint64_t size, uint64_t capacity) {
  if (size == 0) return 0;
  if (size >= capacity) return 8;
  return 1 + static_cast<int>(size * 7 / capacity);
}

const char* Glyph(const MapGlyphs& g, const struct zfile_stat& st) {
  if (st.cond == ZFILE_COND_OFFLINE) return g.offline;
  if (st.cond == ZFILE_COND_READONLY) return g.readonly;
  return g.levels[FillLevel(st.size, st.max_size)];
}

bool LocaleIsUtf8() {
  // The first of these that is set decides, as in setlocale(LC_CTYPE, "").
  for (const char* var : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* value = std::getenv(var);
    if (value == nullptr || *value == '\0') continue;
    std::string lower(value);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower.find("utf-8") != std::string::npos || lower.find("utf8") != std::string::npos;
  }
  return false;
}

// Block elements only where they will render: a UTF-8 terminal. Files and
// pipes get ASCII unless asked, so logs stay readable anywhere.
bool UseUtf8(const std::string& charset) {
  if (charset == "utf8") return true;
  if (charset == "ascii") return false;
  return isatty(STDOUT_FILENO) == 1 && LocaleIsUtf8();
}

void PrintZonesMap(const std::vector<SeqFile>& files, const MapGlyphs& g) {
  std::string out;
  if (files.empty()) {
    fmt::print("no sequential files\n");
    return;
  }
  const uint64_t capacity = files.front().st.max_size;
  fmt::format_to(std::back_inserter(out), "seq/0-{}: {} sequential files of {}\n", files.size() - 1,
                 files.size(), FormatSize(capacity));
  const size_t label_width = std::to_string(files.size() - 1).size();
  uint32_t empty = 0, partial = 0, full = 0, readonly = 0, offline = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (i % kMapWidth == 0) {
      if (i != 0) out += '\n';
      fmt::format_to(std::back_inserter(out), "{:>{}} ", i, label_width);
    }
    const struct zfile_stat& st = files[i].st;
    out += Glyph(g, st);
    if (st.cond == ZFILE_COND_OFFLINE) {
      ++offline;
    } else if (st.cond == ZFILE_COND_READONLY) {
      ++readonly;
    } else {
      const int level = FillLevel(st.size, st.max_size);
      if (level == 0) {
        ++empty;
      } else if (level == 8) {
        ++full;
      } else {
        ++partial;
      }
    }
  }
  out += '\n';
  std::string filling;
  for (int level = 1; level <= 7; ++level) filling += g.levels[level];
  fmt::format_to(std::back_inserter(out),
                 "legend: {} empty  {} 1/8 to 7/8 written  {} full  {} read-only  {} offline\n",
                 g.levels[0], filling, g.levels[8], g.readonly, g.offline);
  fmt::format_to(std::back_inserter(out),
                 "{} empty, {} partly written, {} full, {} read-only, {} offline\n", empty, partial,
                 full, readonly, offline);
  fmt::print("{}", out);
}

void PrintZonesTable(const std::vector<SeqFile>& files) {
  std::string out;
  size_t path_width = 0, size_width = 0;
  for (const SeqFile& f : files) {
    path_width = std::max(path_width, f.path.size());
    size_width = std::max(size_width, std::to_string(f.st.max_size).size());
  }
  for (const SeqFile& f : files) {
    const uint64_t percent = f.st.max_size == 0 ? 0 : f.st.size * 100 / f.st.max_size;
    fmt::format_to(std::back_inserter(out), "{:<{}} {:>{}} / {:<{}} {:>3}%  {}\n", f.path,
                   path_width, f.st.size, size_width, f.st.max_size, size_width, percent,
                   CondName(f.st.cond));
  }
  fmt::print("{}", out);
}

void PrintZonesJson(const std::vector<SeqFile>& files) {
  JsonWriter json;
  json.BeginArray();
  for (const SeqFile& f : files) {
    json.BeginObject();
    json.Key("path").String(f.path);
    json.Key("zone_start").Uint(f.st.zone_start);
    json.Key("size").Uint(f.st.size);
    json.Key("max_size").Uint(f.st.max_size);
    json.Key("cond").String(CondName(f.st.cond));
    json.EndObject();
  }
  json.EndArray();
  fmt::print("{}", json.Finish());
}

Status RunZones(const ZonesOptions& opt) {
  ZF_ASSIGN_OR_RETURN(zapi::Vol vol, OpenVolume(opt.target));
  struct zfile_vol_info info = {};
  ZF_RETURN_IF_ERROR(Check(vol.Info(&info)));
  std::vector<SeqFile> files(info.nr_seq_files);
  for (uint32_t i = 0; i < info.nr_seq_files; ++i) {
    files[i].path = fmt::format("seq/{}", i);
    ZF_RETURN_IF_ERROR(Check(vol.Stat(files[i].path.c_str(), &files[i].st)));
  }
  ZF_RETURN_IF_ERROR(CloseAll(nullptr, &vol));
  if (opt.json) {
    PrintZonesJson(files);
  } else if (opt.map) {
    PrintZonesMap(files, UseUtf8(opt.charset) ? kUtf8Glyphs : kAsciiGlyphs);
  } else {
    PrintZonesTable(files);
  }
  return Status();
}

void RegisterZones(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<ZonesOptions>();
  CLI::App* cmd = app->add_subcommand(
      "zones", "Show how full each sequential file (zone) is: a table, or a map with --map");
  AddVolumeOptions(cmd, &opt->target);
  CLI::Option* map = cmd->add_flag("--map", opt->map,
                                   "A picture: one mark per zone, 64 per line, rising with the "
                                   "fill; R read-only, X offline");
  cmd->add_flag("--json", opt->json, "JSON array: path, zone_start, size, max_size, cond")
      ->excludes(map);
  cmd->add_option("--charset", opt->charset,
                  "Marks for --map: utf8 (block elements), ascii (.:-=+*#%@), or auto (utf8 on a "
                  "UTF-8 terminal)")
      ->check(CLI::IsMember({"auto", "utf8", "ascii"}))
      ->default_val("auto");
  cmd->footer(
      "Examples:\n  zfile zones --map --device emu:/var/tmp/zdev\n"
      "  zfile zones --map --volume data");
  table->Add(cmd, [opt] { return RunZones(*opt); });
}

}  // namespace

void RegisterFileCommands(CLI::App* app, CommandTable* table) {
  RegisterLs(app, table);
  RegisterStat(app, table);
  RegisterCat(app, table);
  RegisterWrite(app, table);
  RegisterTruncate(app, table);
  RegisterStats(app, table);
  RegisterZones(app, table);
}

}  // namespace zfile::cli
