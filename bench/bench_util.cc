#include "bench_util.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zoned_device.h"
#include "format/mkfs.h"

namespace zfile::bench {

Buf Aligned(size_t n, uint8_t fill) {
  Buf b(static_cast<uint8_t*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096)));
  std::memset(b.get(), fill, n);
  return b;
}

ScratchDevices::ScratchDevices(const std::string& tag, const char* geometry) {
  const char* parent = std::getenv("ZFILE_BENCH_EMU_DIR");
  std::string tmpl = std::string(parent != nullptr ? parent : "/tmp") + "/zfile-" + tag + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror(("mkdtemp " + tmpl).c_str());
    return;
  }
  dir_ = tmpl;
  geometry_ = geometry;
  const std::string emu_dir = dir_ + "/dev";
  auto uri = Uri::Parse(std::string("emu:?") + geometry);
  EmulatedGeometry g;
  if (!uri.ok() || !g.ReadFromUri(*uri).ok() || !CreateEmuDevice(emu_dir, g).ok()) {
    std::fprintf(stderr, "cannot create the emu device in %s\n", emu_dir.c_str());
    return;
  }
  devices_.push_back({"mem", "mem:" + tag + "?" + geometry});
  devices_.push_back({"emu", "emu:" + emu_dir});
}

Result<BenchDevice> ScratchDevices::AddEmu(const std::string& name) {
  if (dir_.empty()) return Status(ENOENT, "no scratch directory");
  const std::string emu_dir = dir_ + "/" + name;
  ZF_ASSIGN_OR_RETURN(Uri uri, Uri::Parse("emu:?" + geometry_));
  EmulatedGeometry g;
  ZF_RETURN_IF_ERROR(g.ReadFromUri(uri));
  ZF_RETURN_IF_ERROR(CreateEmuDevice(emu_dir, g));
  return BenchDevice{name, "emu:" + emu_dir};
}

ScratchDevices::~ScratchDevices() {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool Check(const Status& s, benchmark::State& state) {
  if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  return s.ok();
}

Status FormatDevice(const std::string& uri) {
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(uri));
  MkfsOptions o;
  o.force = true;
  return Mkfs(dev.get(), o);
}

zfile_vol* FormatAndMount(const BenchDevice& bd, const char* options, benchmark::State& state) {
  if (!Check(FormatDevice(bd.uri), state)) return nullptr;
  zfile_vol* vol = nullptr;
  if (zfile_vol_open(bd.uri.c_str(), options, &vol) != 0) {
    state.SkipWithError(zfile_last_error());
    return nullptr;
  }
  return vol;
}

namespace {

// The last lines of a daemon's log, to say why it did not come up.
std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

}  // namespace

Result<std::unique_ptr<Zfiled>> Zfiled::Start(const std::string& binary,
                                              const std::string& device_uri,
                                              const std::string& dir) {
  std::unique_ptr<Zfiled> d(new Zfiled());
  d->device_uri_ = device_uri;
  const std::string socket = dir + "/zfiled.sock";
  d->client_uri_ = "unix:" + socket + "?volume=bench";
  d->log_path_ = dir + "/zfiled.log";
  // posix_spawn rather than fork: this process may have threads (device
  // workers) and only async-signal-safe calls are allowed after fork.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, d->log_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<std::string> args = {binary,  "--device", device_uri, "--name",
                                   "bench", "--socket", socket,     "--foreground"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return ErrnoStatus(rc, "starting " + binary);
  d->pid_ = pid;
  // Ready when a client gets in: the socket alone may be a stale one.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      d->pid_ = -1;
      return Status(ECHILD, binary + " exited before serving (status " + std::to_string(status) +
                                "); its log:\n" + Tail(d->log_path_));
    }
    zfile_vol* vol = nullptr;
    if (zfile_vol_open(d->client_uri_.c_str(), "", &vol) == 0) {
      zfile_vol_close(vol);
      return d;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status(ETIMEDOUT,
                    binary + " did not serve within 10 s; its log:\n" + Tail(d->log_path_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Zfiled::~Zfiled() { Stop(); }

void Zfiled::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  // SIGTERM unmounts cleanly (dirty data written back); a daemon stuck for
  // 10 s is killed so that the benchmark still ends.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "zfiled (pid %d) ignored SIGTERM for 10 s: killing it\n", pid_);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

uint64_t VolStat(zfile_vol* vol, std::string_view key) {
  char json[4096];
  if (zfile_vol_stats(vol, json, sizeof json) < 0) return 0;
  const std::string needle = "\"" + std::string(key) + "\":";
  const char* at = std::strstr(json, needle.c_str());
  return at == nullptr ? 0 : std::strtoull(at + needle.size(), nullptr, 10);
}

RecordingReporter::RecordingReporter()
    : ConsoleReporter(::isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}

void RecordingReporter::ReportRuns(const std::vector<Run>& reported) {
  std::vector<Run> runs = reported;
  if (annotate_) {
    for (Run& r : runs) {
      if (!r.error_occurred) annotate_(&r, *this);
    }
  }
  ConsoleReporter::ReportRuns(runs);
  for (const Run& r : runs) {
    if (r.error_occurred) continue;
    const bool aggregate = r.run_type == Run::RT_Aggregate;
    if (aggregate && r.aggregate_name != "median") continue;
    const std::string& name = r.run_name.function_name;
    if (!aggregate && r.repetitions > 1 && runs_.count(name) != 0) continue;  // wait for the median
    runs_.insert_or_assign(name, r);
  }
}

const RecordingReporter::Run* RecordingReporter::Find(const std::string& name) const {
  auto it = runs_.find(name);
  return it == runs_.end() ? nullptr : &it->second;
}

double RecordingReporter::Counter(const std::string& name, const std::string& counter) const {
  const Run* r = Find(name);
  if (r == nullptr) return 0;
  auto it = r->counters.find(counter);
  return it == r->counters.end() ? 0 : it->second.value;
}

double RecordingReporter::RealTime(const std::string& name) const {
  const Run* r = Find(name);
  return r == nullptr ? 0 : r->GetAdjustedRealTime();
}

void RunAndSummarize(int argc, char** argv,
                     const std::function<void(const RecordingReporter&)>& summary,
                     RecordingReporter::Annotate annotate) {
  benchmark::Initialize(&argc, argv);
  RecordingReporter reporter;
  reporter.set_annotate(std::move(annotate));
  benchmark::RunSpecifiedBenchmarks(&reporter);
  summary(reporter);
  benchmark::Shutdown();
}

}  // namespace zfile::bench
