// zfiled: serves zonefs volumes to local clients (SPEC section 7).
//
//   zfiled --config /etc/zfiled/zfiled.yaml
//   zfiled --device emu:DIR [--name NAME] [--options OPTS] [--socket PATH] [--mount DIR]
//          [--foreground]
//
// The main thread owns the process's life: it starts the server, tells
// systemd (sd_notify) when it is ready, and then waits for signals, which
// every thread blocks so that they arrive here, in order, through a
// signalfd: SIGTERM/SIGINT stop the server cleanly, SIGHUP reloads the log
// level from the configuration file.
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/log.h"
#include "base/status.h"
#include "daemon/config.h"
#include "daemon/server.h"
#include "engine/mount_options.h"
#include "protocol/unique_fd.h"

namespace zfile::daemon {
namespace {

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kCritical:
      return spdlog::level::critical;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "zfiled: %s\n", s.ToString().c_str());
  return 1;
}

// Sends WATCHDOG=1 at half the interval systemd asked for, until stopped.
// A thread of its own rather than the signal loop's timeout, so that the
// keep-alive does not depend on how long a signal's handling takes.
class Watchdog {
 public:
  explicit Watchdog(uint64_t usec) {
    if (usec == 0) return;
    thread_ = std::thread([this, usec] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stop_) {
        sd_notify(0, "WATCHDOG=1");
        cv_.wait_for(lock, std::chrono::microseconds(usec / 2), [this] { return stop_; });
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

void NotifyStatus(const Server& server) {
  std::string status = "STATUS=serving " + std::to_string(server.volumes()) + " volume(s) to " +
                       std::to_string(server.clients()) + " client(s) on " + server.socket_path();
  sd_notify(0, status.c_str());
}

void ReloadLogLevel(const std::string& config_path) {
  if (config_path.empty()) {
    Log().info("SIGHUP: started without --config, no log level to reload");
    return;
  }
  // Only the log level is reloaded: volumes and the socket belong to the
  // running sessions, and changing them needs a restart.
  Result<DaemonConfig> config = LoadConfig(config_path);
  if (!config.ok()) {
    Log().error("SIGHUP: keeping the current log level: {}", config.status().ToString());
    return;
  }
  Log().set_level(ToSpdlog(config->log_level));
  Log().log(spdlog::level::info, "SIGHUP: log level is now {}", LogLevelName(config->log_level));
}

int Main(int argc, char** argv) {
  CLI::App app{"zfiled: serves zonefs volumes on zoned devices to local clients"};
  std::string config_path, device, name = "default", options, socket_path, mount;
  bool foreground = false;
  app.add_option("--config", config_path, "YAML configuration file (config/zfiled.yaml)");
  app.add_option("--device", device, "serve one volume on this device URI (quick start)");
  app.add_option("--name", name, "the volume's name with --device")->capture_default_str();
  app.add_option("--options", options, "mount options with --device, e.g. errors=zone-ro");
  app.add_option("--socket", socket_path, "listening socket (overrides the configuration)");
  app.add_option("--mount", mount, "FUSE mount point with --device");
  app.add_flag("--foreground", foreground,
               "stay in the foreground (zfiled never daemonizes itself: systemd or the shell "
               "runs it)");
  // Hidden: bounds that tests shrink so that they run in seconds. The
  // defaults (SessionBounds) are what a deployment wants.
  SessionBounds bounds;
  app.add_option("--max-sessions-per-uid", bounds.max_sessions_per_uid)->group("");
  app.add_option("--hello-timeout-ms", bounds.hello_timeout_ms)->group("");
  app.add_option("--send-timeout-ms", bounds.send_timeout_ms)->group("");
  app.add_option("--stop-timeout-ms", bounds.stop_timeout_ms)->group("");
  app.add_option("--doorbell-check-ms", bounds.doorbell_check_ms)->group("");
  app.add_option("--max-buf-bytes-per-session", bounds.max_buf_bytes_per_session)->group("");
  app.add_option("--max-buf-mappings-per-uid", bounds.max_buf_mappings_per_uid)->group("");
  app.add_option("--max-buf-bytes-per-uid", bounds.max_buf_bytes_per_uid)->group("");
  app.add_option("--max-buf-mappings", bounds.max_buf_mappings)->group("");
  app.add_option("--max-buf-bytes", bounds.max_buf_bytes)->group("");
  // Hidden too: an experiment's knob (see SessionBounds); the environment
  // lets benchmarks that start zfiled set it without new flags.
  if (const char* spin = std::getenv("ZFILED_DOORBELL_SPIN_US")) {
    bounds.doorbell_spin_us = static_cast<uint32_t>(std::strtoul(spin, nullptr, 10));
  }
  app.add_option("--doorbell-spin-us", bounds.doorbell_spin_us)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (config_path.empty() == device.empty()) {
    return Fail(Status(EINVAL, "give either --config FILE or --device URI"));
  }
  DaemonConfig config;
  if (!config_path.empty()) {
    if (!options.empty() || name != "default" || !mount.empty()) {
      return Fail(Status(EINVAL, "--name, --options and --mount go with --device, not --config"));
    }
    Result<DaemonConfig> loaded = LoadConfig(config_path);
    if (!loaded.ok()) return Fail(loaded.status());
    config = std::move(*loaded);
  } else {
    Result<MountOptions> parsed = MountOptions::Parse(options);
    if (!parsed.ok()) return Fail(parsed.status().WithContext("--options"));
    VolumeConfig vol;
    vol.name = name;
    vol.device = device;
    vol.options = options;
    vol.mount_options = *parsed;
    // Absolute and normalised, as the configuration's mount key is: the
    // mount table and the log should name the same place.
    if (!mount.empty()) {
      std::string abs = std::filesystem::absolute(mount).lexically_normal().string();
      while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
      vol.mount = abs;
    }
    config.volumes.push_back(std::move(vol));
  }
  if (!socket_path.empty()) config.socket.path = socket_path;
  Log().set_level(ToSpdlog(config.log_level));

  // Block the signals before any thread starts, so every thread inherits
  // the mask and they reach the signalfd only.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGPIPE);  // a client gone mid-reply is an error, not a death
  if (pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return Fail(Status(EINVAL, "cannot block signals"));
  }
  protocol::UniqueFd sigfd(signalfd(-1, &mask, SFD_CLOEXEC));
  if (!sigfd.valid()) return Fail(ErrnoStatus(errno, "signalfd"));

  // Each client costs a socket: take the hard limit on descriptors, not the
  // soft one (often 1024, which accept() would hit before max_sessions).
  // zfiled uses poll(), never select(), so large descriptors are fine.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) {
      Log().warn("cannot raise the descriptor limit to {}: {}", nofile.rlim_max, ErrnoName(errno));
    }
  }
  Result<std::unique_ptr<Server>> server = Server::Start(config, bounds);
  if (!server.ok()) {
    sd_notifyf(0, "STATUS=failed to start: %s", server.status().ToString().c_str());
    return Fail(server.status());
  }
  uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) <= 0) watchdog_usec = 0;
  std::optional<Watchdog> watchdog;
  watchdog.emplace(watchdog_usec);
  sd_notify(0, "READY=1");
  NotifyStatus(**server);
  Log().info("zfiled ready: {} volume(s) on {}", (*server)->volumes(), (*server)->socket_path());

  int exit_code = 0;
  size_t last_clients = 0;
  for (bool running = true; running;) {
    pollfd pfd{sigfd.get(), POLLIN, 0};
    int n = poll(&pfd, 1, 1000);
    if (n < 0 && errno != EINTR) {
      Log().error("poll on the signalfd: {}", ErrnoName(errno));
      break;
    }
    if (n > 0) {
      signalfd_siginfo info{};
      if (read(sigfd.get(), &info, sizeof(info)) == sizeof(info)) {
        switch (info.ssi_signo) {
          case SIGTERM:
          case SIGINT:
            Log().info("{}: stopping", info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            running = false;
            break;
          case SIGHUP:
            ReloadLogLevel(config_path);
            break;
          default:
            break;  // SIGPIPE: blocked so that it never kills us
        }
      }
    }
    size_t clients = (*server)->clients();
    if (clients != last_clients) {
      last_clients = clients;
      NotifyStatus(**server);
    }
  }

  sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing requests, writing back dirty data");
  Status stopped = (*server)->Stop();
  watchdog.reset();
  if (!stopped.ok()) {
    Log().error("stopped with an error: {}", stopped.ToString());
    if ((*server)->abandoned_sessions()) {
      // Stop abandoned sessions that are still running (see Server::Stop):
      // no destructor may run under them, so leave at once.
      Log().flush();
      std::fflush(nullptr);
      _exit(1);
    }
    exit_code = 1;
  } else {
    Log().info("zfiled stopped");
  }
  return exit_code;
}

}  // namespace
}  // namespace zfile::daemon

int main(int argc, char** argv) { return zfile::daemon::Main(argc, argv); }
