// `zfile bench`: a fio-like job (one file, one workload, queue depth 1) run
// through libzfile's public C API, so the figures can be set against fio
// through zfiled's FUSE mount, or the kernel's zonefs, on the same data.
#ifndef ZFILE_TOOLS_ZFILE_BENCH_COMMAND_H_
#define ZFILE_TOOLS_ZFILE_BENCH_COMMAND_H_

#include <CLI/CLI.hpp>

#include "tools/zfile/command.h"

namespace zfile::cli {

void RegisterBenchCommand(CLI::App* app, CommandTable* table);

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_BENCH_COMMAND_H_
