// Logging: one spdlog logger for the whole library, named "zfile".
//
// It writes to stderr (no colours, so journald and log files stay clean)
// at level "info" unless ZFILE_LOG_LEVEL names another spdlog level (an
// unknown name keeps "info" and says so). Log() may be used from any
// thread; so may AddLogSink/RemoveLogSink (the daemon's journal, tests that
// capture what was logged) and set_level.
#ifndef ZFILE_BASE_LOG_H_
#define ZFILE_BASE_LOG_H_

#include <spdlog/spdlog.h>

#include <memory>

namespace zfile {

spdlog::logger& Log();

// Extra destinations besides stderr, thread-safe against logging.
void AddLogSink(std::shared_ptr<spdlog::sinks::sink> sink);
void RemoveLogSink(const std::shared_ptr<spdlog::sinks::sink>& sink);

}  // namespace zfile

#endif  // ZFILE_BASE_LOG_H_
