// Output helpers shared by every zfile subcommand: human-readable sizes, a
// minimal JSON writer and a terminal progress bar.
#ifndef ZFILE_TOOLS_ZFILE_OUTPUT_H_
#define ZFILE_TOOLS_ZFILE_OUTPUT_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zfile::cli {

// "64 MiB", "1 GiB", "1536 KiB", "4097 bytes": exact, never rounded, so the
// figure a user reads is the figure the device has.
std::string FormatSize(uint64_t bytes);

// Builds one JSON document. Keeps just enough state to place commas, so
// callers write values in order without a DOM; the tool's data is small and
// flat, and Debian 12 has no JSON library we would otherwise need.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Names the next value; only inside an object.
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  // The document, newline-terminated, with two-space indentation.
  std::string Finish() const { return out_ + "\n"; }

 private:
  // Emits the separator and indentation a new value or key needs.
  void BeforeValue();
  void Indent();

  struct Level {
    bool is_object = false;
    bool empty = true;
  };
  std::string out_;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

// A one-line progress bar on stderr, drawn only when stderr is a terminal
// (so logs and pipes stay clean). The destructor ends the line, so a bar
// interrupted by an error does not leave the cursor mid-line.
class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool enabled() const { return enabled_; }
  void Update(uint64_t done);

 private:
  void Draw(uint64_t done);

  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  unsigned last_permille_ = ~0u;
  std::chrono::steady_clock::time_point last_draw_;
};

// True when stderr is a terminal: progress output is only for people.
bool StderrIsTerminal();

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_OUTPUT_H_
