// A zfiled child process for tests: fork/exec of the built binary with the
// arguments a test gives, its output in a log file, readiness awaited
// through sd_notify (a NOTIFY_SOCKET of the process's own) or by connecting
// to its socket, and a clean stop (SIGTERM, then the exit status).
//
//   ZfiledProcess zfiled;
//   Status s = zfiled.Start({.args = {"--device", uri, "--socket", sock, "--foreground"},
//                            .log_path = dir + "/zfiled.log"});
//   ...  // zfile_vol_open("unix:" + sock + "?volume=default", ...)
//   ZfiledProcess::Exit e = zfiled.Stop();  // e.clean(): exited with status 0
//
// The destructor kills (SIGKILL) a daemon still running, so that a failed
// assertion never leaves one behind; so does the test process's death (the
// child asks for PR_SET_PDEATHSIG). Not thread-safe: one thread drives it.
#ifndef ZFILE_TESTS_UTIL_ZFILED_PROCESS_H_
#define ZFILE_TESTS_UTIL_ZFILED_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "protocol/unique_fd.h"

namespace zfile::testing {

// The zfiled binary tests use: $ZFILED_BINARY when set and not empty, else
// the one the build passed (ZFILED_PATH), else "" (tests then skip).
std::string DefaultZfiledBinary();

class ZfiledProcess {
 public:
  enum class Ready {
    kNotify,   // wait for READY=1 on a NOTIFY_SOCKET of our own
    kConnect,  // wait until `socket_path` accepts a connection
    kNone,     // return as soon as the process runs
  };

  struct Options {
    std::string binary = DefaultZfiledBinary();
    std::vector<std::string> args;  // after argv[0]
    // Standard output and error go here (created, or appended to); empty:
    // inherited from the test.
    std::string log_path;
    // Extra environment (e.g. {"WATCHDOG_USEC", "200000"}); NOTIFY_SOCKET
    // and the WATCHDOG_* variables of the test's own environment are never
    // passed on.
    std::vector<std::pair<std::string, std::string>> env;
    Ready ready = Ready::kNotify;
    std::string socket_path;  // for Ready::kConnect
    std::chrono::milliseconds ready_timeout{30000};
    // The daemon dies (SIGKILL) with the thread that started it: set false
    // to start it from a thread that ends before the daemon should.
    bool die_with_parent = true;
  };

  // How the process ended.
  struct Exit {
    bool exited = false;     // exit() rather than a signal
    int code = -1;           // exit status when exited
    int signal = 0;          // the signal that ended it otherwise
    bool timed_out = false;  // Stop() gave up waiting and killed it
    bool clean() const { return exited && code == 0; }
    std::string ToString() const;
  };

  ZfiledProcess() = default;
  ~ZfiledProcess();
  ZfiledProcess(const ZfiledProcess&) = delete;
  ZfiledProcess& operator=(const ZfiledProcess&) = delete;

  // Starts zfiled and waits until it is ready. A process that exits first,
  // or is not ready in time (then killed), is an error whose message has
  // the exit status and the log's last lines; exit_status() then tells how
  // it ended. EBUSY if one is running already.
  Status Start(Options options);

  // SIGTERM, then waits up to `timeout` for the exit (then SIGKILL). The
  // exit of a process that had ended already is returned as is; with none
  // started, an Exit with exited = false and code -1.
  Exit Stop(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // SIGKILL and reap, at once.
  Exit Kill();
  // Sends `sig` (SIGHUP, ...); false if no process runs.
  bool Signal(int sig);
  // SIGSTOP, returning once every thread of the daemon has stopped: kill()
  // returns before a thread busy on another CPU (spinning on a doorbell)
  // has taken the signal, and that thread may still serve a request.
  // False if no process runs or it did not stop.
  bool Pause();

  // Whether the process still runs (reaps it if it has ended).
  bool running();
  pid_t pid() const { return pid_; }
  // How it ended, after Stop(), Kill(), or a failed Start().
  const Exit& exit_status() const { return exit_; }

  // Waits up to `timeout` for a notification containing `what` (STOPPING=1,
  // WATCHDOG=1, STATUS=...) that came after Start() returned and after the
  // previous match. Ready::kNotify only.
  bool WaitNotify(const std::string& what, std::chrono::milliseconds timeout);
  // Every notification received so far, one per line.
  const std::string& notifications() const { return notes_; }

  // The log file: all of it, or from byte `from` on; its size.
  std::string Log(size_t from = 0) const;
  size_t LogSize() const;
  const std::string& log_path() const { return options_.log_path; }

 private:
  // Reaps the child if it has ended (with `block`, waits for it).
  bool Reap(bool block);
  // Drains the notification socket into notes_; true if `what` came.
  bool DrainNotify(const std::string& what, int timeout_ms);

  Options options_;
  pid_t pid_ = -1;
  Exit exit_;
  protocol::UniqueFd notify_;
  std::string notes_;
  size_t checked_ = 0;  // WaitNotify looked at notes_ up to here
};

}  // namespace zfile::testing

#endif  // ZFILE_TESTS_UTIL_ZFILED_PROCESS_H_
