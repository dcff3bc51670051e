// How zfile subcommands plug into the tool.
//
// Each group of subcommands (device commands now; file-system and daemon
// commands later) has a Register*Commands function that adds its CLI11
// subcommands to the app and, for each leaf subcommand, an action returning
// a zfile::Status. main() parses the command line, then runs the action of
// the one leaf the user chose. Keeping the work out of CLI11's callbacks means
// a failure is a Status in words (exit 1) and only bad usage goes through
// CLI11's error path (exit 2).
#ifndef ZFILE_TOOLS_ZFILE_COMMAND_H_
#define ZFILE_TOOLS_ZFILE_COMMAND_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/status.h"

namespace zfile::cli {

using CommandAction = std::function<Status()>;

class CommandTable {
 public:
  // Runs `action` when `command` is the subcommand given on the command line.
  void Add(CLI::App* command, CommandAction action) {
    entries_.emplace_back(command, std::move(action));
  }

  // The action of the parsed leaf subcommand, or nullptr when none was given.
  const CommandAction* Selected() const;

 private:
  std::vector<std::pair<CLI::App*, CommandAction>> entries_;
};

// Accepts a size ("4096", "64K", "256M", "1G") and rewrites it as a number of
// bytes, so the option can be bound to a uint64_t. Bad sizes are usage errors
// whose message comes from zfile::ParseSize.
CLI::Validator SizeValidator();

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_COMMAND_H_
