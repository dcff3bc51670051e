#include "base/uri.h"

#include <cctype>
#include <cerrno>
#include <charconv>

namespace zfile {

Result<uint64_t> ParseUint(std::string_view text, std::string_view what) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    return Status(EINVAL, "bad " + std::string(what) + " '" + std::string(text) +
                              "': expected a non-negative integer");
  }
  return v;
}

Result<uint64_t> ParseSize(std::string_view text, std::string_view what) {
  std::string_view digits = text;
  size_t end = 0;
  while (end < digits.size() && std::isdigit(static_cast<unsigned char>(digits[end]))) ++end;
  std::string suffix;
  for (char c : digits.substr(end)) suffix += static_cast<char>(std::toupper(c));
  digits = digits.substr(0, end);
  unsigned shift = 0;
  if (suffix.empty() || suffix == "B") {
    shift = 0;
  } else if (suffix == "K" || suffix == "KB" || suffix == "KIB") {
    shift = 10;
  } else if (suffix == "M" || suffix == "MB" || suffix == "MIB") {
    shift = 20;
  } else if (suffix == "G" || suffix == "GB" || suffix == "GIB") {
    shift = 30;
  } else if (suffix == "T" || suffix == "TB" || suffix == "TIB") {
    shift = 40;
  } else {
    return Status(EINVAL, "bad " + std::string(what) + " '" + std::string(text) +
                              "': expected a size such as 4096, 64K, 256M or 1G");
  }
  auto v = ParseUint(digits, what);
  if (!v.ok()) {
    return Status(EINVAL, "bad " + std::string(what) + " '" + std::string(text) +
                              "': expected a size such as 4096, 64K, 256M or 1G");
  }
  if (shift > 0 && (*v >> (64 - shift)) != 0) {
    return Status(EINVAL, "bad " + std::string(what) + " '" + std::string(text) + "': too large");
  }
  return *v << shift;
}

Result<Uri> Uri::Parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status(EINVAL, "bad device URI '" + std::string(text) +
                              "': expected SCHEME:PATH, e.g. emu:/path/to/dir, "
                              "mem:?size=1G&zone_size=64M or zbd:/dev/nullb0");
  }
  Uri uri;
  uri.scheme = std::string(text.substr(0, colon));
  std::string_view rest = text.substr(colon + 1);
  auto q = rest.find('?');
  uri.path = std::string(rest.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (kv.empty()) continue;
      auto eq = kv.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return Status(EINVAL, "bad device URI '" + std::string(text) + "': parameter '" +
                                  std::string(kv) + "' is not KEY=VALUE");
      }
      std::string key(kv.substr(0, eq));
      if (uri.params.count(key) != 0) {
        return Status(EINVAL, "bad device URI '" + std::string(text) + "': parameter '" + key +
                                  "' given twice");
      }
      uri.params[key] = std::string(kv.substr(eq + 1));
    }
  }
  return uri;
}

Status Uri::CheckKeys(const std::set<std::string>& known) const {
  for (const auto& [key, value] : params) {
    if (known.count(key) == 0) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return Status(EINVAL, "unknown parameter '" + key + "' for " + scheme +
                                ": devices (known: " + list + ")");
    }
  }
  return Status();
}

Status Uri::GetSize(const std::string& key, uint64_t* out) const {
  auto it = params.find(key);
  if (it == params.end()) return Status();
  ZF_ASSIGN_OR_RETURN(*out, ParseSize(it->second, key));
  return Status();
}

Status Uri::GetUint(const std::string& key, uint64_t* out) const {
  auto it = params.find(key);
  if (it == params.end()) return Status();
  ZF_ASSIGN_OR_RETURN(*out, ParseUint(it->second, key));
  return Status();
}

}  // namespace zfile
