#include "base/log.h"

#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace zfile {
namespace {

constexpr const char* kPattern = "%Y-%m-%d %H:%M:%S.%e zfile %l: %v";

// The logger's only direct sink: sinks come and go inside it under its own
// mutex, while spdlog's sink vector stays untouched after construction.
// Never destroyed, so logging works during static destruction too.
const std::shared_ptr<spdlog::sinks::dist_sink_mt>& Sinks() {
  static auto* const sinks = new std::shared_ptr<spdlog::sinks::dist_sink_mt>(
      std::make_shared<spdlog::sinks::dist_sink_mt>());
  return *sinks;
}

}  // namespace

spdlog::logger& Log() {
  // Not registered with spdlog's global registry: an application that uses
  // spdlog itself keeps its own "zfile" name free.
  static spdlog::logger* const logger = [] {
    Sinks()->add_sink(std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto* l = new spdlog::logger("zfile", Sinks());
    l->set_pattern(kPattern);
    l->set_level(spdlog::level::info);
    if (const char* env = std::getenv("ZFILE_LOG_LEVEL")) {
      const spdlog::level::level_enum level = spdlog::level::from_str(env);
      // from_str() maps every unknown name to "off", which would hide all.
      if (level != spdlog::level::off || std::string(env) == "off") {
        l->set_level(level);
      } else {
        l->warn(
            "ZFILE_LOG_LEVEL={} is not a level (trace, debug, info, warn, error, critical, "
            "off); logging at info",
            env);
      }
    }
    return l;
  }();
  return *logger;
}

void AddLogSink(std::shared_ptr<spdlog::sinks::sink> sink) {
  sink->set_pattern(kPattern);
  Sinks()->add_sink(std::move(sink));
}

void RemoveLogSink(const std::shared_ptr<spdlog::sinks::sink>& sink) { Sinks()->remove_sink(sink); }

}  // namespace zfile
