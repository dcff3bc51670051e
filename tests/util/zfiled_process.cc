#include "zfiled_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace zfile::testing {
namespace {

using protocol::UniqueFd;
using Clock = std::chrono::steady_clock;

// The end of a log, for error messages: enough to show why a daemon did
// not start without burying the test's own output.
std::string Tail(const std::string& text, size_t max = 4000) {
  if (text.size() <= max) return text;
  size_t cut = text.find('\n', text.size() - max);
  return "...\n" + text.substr(cut == std::string::npos ? text.size() - max : cut + 1);
}

bool Connectable(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || path.size() >= sizeof(sockaddr_un::sun_path)) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// Variables of the test's environment that would make the daemon talk to
// someone else's service manager.
bool Inherited(const char* entry) {
  for (const char* name : {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="}) {
    if (std::strncmp(entry, name, std::strlen(name)) == 0) return false;
  }
  return true;
}

}  // namespace

std::string DefaultZfiledBinary() {
  if (const char* env = std::getenv("ZFILED_BINARY"); env != nullptr && *env != '\0') return env;
#ifdef ZFILED_PATH
  return ZFILED_PATH;
#else
  return "";
#endif
}

std::string ZfiledProcess::Exit::ToString() const {
  std::string s;
  if (exited) {
    s = "exited with status " + std::to_string(code);
  } else if (signal != 0) {
    s = "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  } else {
    s = "not started";
  }
  if (timed_out) s += ", after it did not stop in time";
  return s;
}

ZfiledProcess::~ZfiledProcess() {
  if (pid_ > 0) Kill();
}

Status ZfiledProcess::Start(Options options) {
  if (running()) return Status(EBUSY, "zfiled (pid " + std::to_string(pid_) + ") still runs");
  options_ = std::move(options);
  exit_ = Exit{};
  notes_.clear();
  checked_ = 0;
  notify_.Reset();
  if (options_.binary.empty() || ::access(options_.binary.c_str(), X_OK) != 0) {
    return Status(ENOENT, "no zfiled binary at '" + options_.binary + "'");
  }

  // Everything the child needs is made here: between fork and exec only
  // async-signal-safe calls are allowed (other threads may hold malloc's
  // locks).
  std::vector<std::string> args;
  args.push_back(options_.binary);
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (Inherited(*e)) env.emplace_back(*e);
  }
  for (const auto& [name, value] : options_.env) env.push_back(name + "=" + value);

  if (options_.ready == Ready::kNotify) {
    // An abstract socket: unique, nothing on disk to clean up, and no path
    // length limit to worry about.
    static std::atomic<int> counter{0};
    const std::string name =
        "zfiled-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    notify_.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!notify_.valid()) return ErrnoStatus(errno, "notify socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.c_str(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(notify_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      return ErrnoStatus(errno, "binding the notify socket @" + name);
    }
    env.push_back("NOTIFY_SOCKET=@" + name);
  }
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  UniqueFd log;
  if (!options_.log_path.empty()) {
    log.Reset(::open(options_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log.valid()) return ErrnoStatus(errno, "opening " + options_.log_path);
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    if (options_.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    }
    if (log.valid()) {
      ::dup2(log.get(), STDOUT_FILENO);
      ::dup2(log.get(), STDERR_FILENO);
    }
    // The daemon starts as systemd would start it: no stray descriptors of
    // the test's, default signal handling, nothing blocked.
    ::close_range(3, ~0u, 0);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  pid_ = pid;

  const auto deadline = Clock::now() + options_.ready_timeout;
  while (true) {
    bool ready = false;
    switch (options_.ready) {
      case Ready::kNotify:
        ready = DrainNotify("READY=1", 100);
        break;
      case Ready::kConnect:
        ready = Connectable(options_.socket_path);
        break;
      case Ready::kNone:
        ready = true;
        break;
    }
    if (ready) {
      checked_ = notes_.size();  // WaitNotify looks at what comes next
      return Status::Ok();
    }
    if (Reap(false)) {
      return Status(
          EIO, "zfiled " + exit_.ToString() + " before it was ready; its log:\n" + Tail(Log()));
    }
    if (Clock::now() > deadline) {
      Kill();
      return Status(ETIMEDOUT, "zfiled was not ready within " +
                                   std::to_string(options_.ready_timeout.count()) +
                                   " ms; its log:\n" + Tail(Log()));
    }
    if (options_.ready == Ready::kConnect) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

bool ZfiledProcess::Reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  pid_ = -1;
  // Its last words (STOPPING=1, ...) are still queued on our socket.
  DrainNotify("", 0);
  exit_.exited = WIFEXITED(status);
  exit_.code = exit_.exited ? WEXITSTATUS(status) : -1;
  exit_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return true;
}

bool ZfiledProcess::running() { return pid_ > 0 && !Reap(false); }

bool ZfiledProcess::Signal(int sig) { return running() && ::kill(pid_, sig) == 0; }

bool ZfiledProcess::Pause() {
  if (!Signal(SIGSTOP)) return false;
  // The group stop is reported (WUNTRACED) once all its threads stopped.
  int status = 0;
  pid_t got;
  do {
    got = ::waitpid(pid_, &status, WUNTRACED);
  } while (got < 0 && errno == EINTR);
  return got == pid_ && WIFSTOPPED(status);
}

ZfiledProcess::Exit ZfiledProcess::Stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + timeout;
  while (!Reap(false)) {
    if (Clock::now() > deadline) {
      Kill();
      exit_.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_;
}

ZfiledProcess::Exit ZfiledProcess::Kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Reap(true);
  }
  return exit_;
}

bool ZfiledProcess::DrainNotify(const std::string& what, int timeout_ms) {
  if (!notify_.valid()) return false;
  bool seen = false;
  pollfd pfd{notify_.get(), POLLIN, 0};
  while (::poll(&pfd, 1, seen ? 0 : timeout_ms) > 0) {
    char buf[4096];
    const ssize_t n = ::recv(notify_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) break;
    const std::string msg(buf, static_cast<size_t>(n));
    notes_ += msg + "\n";
    seen = seen || msg.find(what) != std::string::npos;
  }
  return seen;
}

bool ZfiledProcess::WaitNotify(const std::string& what, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    // A match is consumed, so that waiting twice for STATUS=... waits for
    // a second one; what came before is still looked at.
    const size_t pos = notes_.find(what, checked_);
    if (pos != std::string::npos) {
      checked_ = notes_.find('\n', pos) + 1;  // every note ends with one
      return true;
    }
    checked_ = notes_.size();  // notes arrive whole: no match can straddle
    if (Clock::now() >= deadline) return false;
    DrainNotify(what, 100);
  }
}

std::string ZfiledProcess::Log(size_t from) const {
  if (options_.log_path.empty()) return "";
  std::ifstream in(options_.log_path, std::ios::binary);
  if (!in) return "";
  in.seekg(static_cast<std::streamoff>(from));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t ZfiledProcess::LogSize() const {
  if (options_.log_path.empty()) return 0;
  std::ifstream in(options_.log_path, std::ios::binary | std::ios::ate);
  return in ? static_cast<size_t>(in.tellg()) : 0;
}

}  // namespace zfile::testing
