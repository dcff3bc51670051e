// File subcommands of zfile: ls, stat, cat, write, truncate, stats, zones (and the volume
// half of info)
// and zones. They mount a volume and work on its files through the public
// C API (zfile/zfile.hpp over zfile/zfile.h) only, never the engine, so
// they behave exactly as an application linking libzfile would, and will
// work unchanged against a daemon once zfile_vol_open accepts its URIs.
#ifndef ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_
#define ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <string>

#include "base/status.h"

#include "tools/zfile/command.h"

namespace zfile::cli {

void RegisterFileCommands(CLI::App* app, CommandTable* table);

// `zfile info --device URI`: the volume on the device (files, sizes, zone
// limits and use, label, UUID), mounted in this process for the command.
Status RunVolumeInfo(const std::string& device, const std::string& options, bool json);

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_
