#include "tools/zfile/output.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include <fmt/format.h>

namespace zfile::cli {

std::string FormatSize(uint64_t bytes) {
  static constexpr struct {
    unsigned shift;
    const char* unit;
  } kUnits[] = {{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  if (bytes != 0) {
    for (const auto& u : kUnits) {
      const uint64_t unit = uint64_t{1} << u.shift;
      if (bytes >= unit && bytes % unit == 0) return fmt::format("{} {}", bytes >> u.shift, u.unit);
    }
  }
  return fmt::format("{} bytes", bytes);
}

namespace {

void AppendEscaped(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          *out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace

void JsonWriter::Indent() {
  out_.push_back('\n');
  out_.append(2 * levels_.size(), ' ');
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    // The key already placed the separator; the value follows ": ".
    after_key_ = false;
    return;
  }
  if (levels_.empty()) return;
  if (!levels_.back().empty) out_.push_back(',');
  levels_.back().empty = false;
  Indent();
}

JsonWriter& JsonWriter::BeginObject() {
  BeforeValue();
  out_.push_back('{');
  levels_.push_back({true, true});
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  const bool empty = levels_.back().empty;
  levels_.pop_back();
  if (!empty) Indent();
  out_.push_back('}');
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  BeforeValue();
  out_.push_back('[');
  levels_.push_back({false, true});
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  const bool empty = levels_.back().empty;
  levels_.pop_back();
  if (!empty) Indent();
  out_.push_back(']');
  return *this;
}

JsonWriter& JsonWriter::Key(std::string_view key) {
  BeforeValue();
  AppendEscaped(&out_, key);
  out_ += ": ";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(std::string_view value) {
  BeforeValue();
  AppendEscaped(&out_, value);
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t value) {
  BeforeValue();
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::Double(double value) {
  BeforeValue();
  // JSON has no NaN or infinity; a rate over no time is reported as 0.
  out_ += std::isfinite(value) ? fmt::format("{:.6g}", value) : "0";
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(StderrIsTerminal() && total > 0) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', stderr);
}

void ProgressBar::Update(uint64_t done) {
  if (!enabled_) return;
  const unsigned permille = static_cast<unsigned>(done * 1000 / total_);
  const auto now = std::chrono::steady_clock::now();
  // Redrawing on every step would make a fast device wait on the terminal;
  // a few redraws per second are enough for a person, and the final state
  // is always drawn so the bar never stops short of 100%.
  if (done != total_ &&
      (permille == last_permille_ || now - last_draw_ < std::chrono::milliseconds(50))) {
    return;
  }
  last_permille_ = permille;
  last_draw_ = now;
  Draw(done);
}

void ProgressBar::Draw(uint64_t done) {
  constexpr unsigned kWidth = 40;
  const unsigned filled = static_cast<unsigned>(done * kWidth / total_);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  fmt::print(stderr, "\r{} [{}] {}/{} zones ({}%)", label_, bar, done, total_, done * 100 / total_);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace zfile::cli
