// File subcommands of zfile: ls, stat, cat, write, truncate, volinfo, stats
// and zones. They mount a volume and work on its files through the public
// C API (zfile/zfile.hpp over zfile/zfile.h) only, never the engine, so
// they behave exactly as an application linking libzfile would, and will
// work unchanged against a daemon once zfile_vol_open accepts its URIs.
#ifndef ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_
#define ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "tools/zfile/command.h"

namespace zfile::cli {

void RegisterFileCommands(CLI::App* app, CommandTable* table);

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_
