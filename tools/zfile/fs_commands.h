// File-system subcommands of zfile: mkfs (more as the engine lands). They
// work on the zonefs format in zone 0 of a device.
#ifndef ZFILE_TOOLS_ZFILE_FS_COMMANDS_H_
#define ZFILE_TOOLS_ZFILE_FS_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "tools/zfile/command.h"

namespace zfile::cli {

void RegisterFsCommands(CLI::App* app, CommandTable* table);

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_FS_COMMANDS_H_
