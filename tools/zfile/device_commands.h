// Device subcommands of zfile: emu create, report, info, reset/open/close/
// finish and inject. They talk to a ZonedDevice directly (no file system).
#ifndef ZFILE_TOOLS_ZFILE_DEVICE_COMMANDS_H_
#define ZFILE_TOOLS_ZFILE_DEVICE_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "tools/zfile/command.h"

namespace zfile::cli {

void RegisterDeviceCommands(CLI::App* app, CommandTable* table);

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_DEVICE_COMMANDS_H_
