// zfile: command-line tool for zoned devices and zfile volumes (embedded or served by zfiled).
//
// Exit status: 0 on success, 1 when the operation failed (the reason is
// printed as "zfile: <message>"), 2 for bad usage (unknown option, missing
// argument, malformed size).
#include <cstdio>
#include <exception>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "base/status.h"
#include "tools/zfile/bench_command.h"
#include "tools/zfile/command.h"
#include "tools/zfile/device_commands.h"
#include "tools/zfile/file_commands.h"
#include "tools/zfile/fs_commands.h"

#ifndef ZFILE_VERSION
#define ZFILE_VERSION "unknown"
#endif

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr const char kExamples[] =
    "Examples:\n"
    "  zfile emu create /var/tmp/zdev --size 1G --zone-size 64M --conv 2\n"
    "  zfile info emu:/var/tmp/zdev\n"
    "  zfile report emu:/var/tmp/zdev --zone 2 --count 4\n"
    "  zfile report zbd:/dev/nullb0 --json\n"
    "  zfile open emu:/var/tmp/zdev --zone 3\n"
    "  zfile reset emu:/var/tmp/zdev --all\n"
    "  zfile inject emu:/var/tmp/zdev --zone 5 --offline\n"
    "  zfile mkfs emu:/var/tmp/zdev -L data -o aggr_cnv,perm=0660\n"
    "  zfile ls seq -l --device emu:/var/tmp/zdev\n"
    "  zfile zones --map --device emu:/var/tmp/zdev\n"
    "  zfile cat seq/0 --volume data --socket /run/zfiled/zfiled.sock\n"
    "  zfile bench --file cnv/0 --rw randread --direct --volume data\n"
    "\n"
    "File commands (ls, stat, cat, write, truncate, stats, zones, bench, info --device) work on a "
    "device\nmounted in this process (--device URI) or on a volume of a running zfiled "
    "(--volume NAME,\n--socket PATH).\n"
    "\n"
    "Devices: emu:DIR (emulated, in a directory), mem:?size=1G&zone_size=64M (emulated, in "
    "memory),\nzbd:/dev/X (kernel zoned block device). Sizes take K, M, G, T suffixes.";

int Main(int argc, char** argv) {
  CLI::App app("zfile: zoned-storage file layer in user space", "zfile");
  app.set_version_flag("--version", std::string("zfile ") + ZFILE_VERSION);
  app.require_subcommand(1);
  app.get_formatter()->column_width(32);
  // Same "zfile: " prefix as operation failures, so scripts and people see
  // one error format.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("zfile: {}\nRun 'zfile --help' or 'zfile COMMAND --help' for usage.\n",
                       e.what());
  });

  zfile::cli::CommandTable commands;
  zfile::cli::RegisterDeviceCommands(&app, &commands);
  zfile::cli::RegisterFsCommands(&app, &commands);
  zfile::cli::RegisterFileCommands(&app, &commands);
  zfile::cli::RegisterBenchCommand(&app, &commands);
  // Set after the subcommands exist, which would otherwise inherit it.
  app.footer(kExamples);

  // CLI11 answers a mistyped command with "A subcommand is required", which
  // does not say what was wrong; name the word instead.
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known = known || sub->check_name(argv[1]);
    if (!known) {
      fmt::print(stderr, "zfile: unknown command '{}'\nRun 'zfile --help' for the list.\n",
                 argv[1]);
      return kExitUsage;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    // --help and --version end parsing with code 0; every other parse
    // error is bad usage, whatever number CLI11 gives it.
    return code == 0 ? 0 : kExitUsage;
  }

  const zfile::cli::CommandAction* action = commands.Selected();
  if (action == nullptr) {
    fmt::print(stderr, "zfile: no command given\n");
    return kExitUsage;
  }
  const zfile::Status status = (*action)();
  if (!status.ok()) {
    fmt::print(stderr, "zfile: {}\n", status.ToString());
    return kExitFailure;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    // libzfile reports errors as Status; an exception here is a bug or an
    // allocation failure, and still deserves a message rather than abort().
    std::fprintf(stderr, "zfile: internal error: %s\n", e.what());
    return kExitFailure;
  }
}
