#include "tools/zfile/command.h"

#include "base/uri.h"

namespace zfile::cli {

const CommandAction* CommandTable::Selected() const {
  for (const auto& [command, action] : entries_) {
    if (command->parsed()) return &action;
  }
  return nullptr;
}

CLI::Validator SizeValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        Result<uint64_t> bytes = ParseSize(text, "size");
        if (!bytes.ok()) return bytes.status().message();
        text = std::to_string(*bytes);
        return std::string();
      },
      // No description: the options name their own type (SIZE, OFFSET).
      "", "size");
}

}  // namespace zfile::cli
