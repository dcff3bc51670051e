#include "client/client_uri.h"

#include <cerrno>
#include <cstdlib>

#include "base/uri.h"
#include "protocol/messages.h"

namespace zfile {
namespace {

constexpr std::string_view kExpected =
    "expected zfiled:NAME or unix:/path/to/zfiled.sock?volume=NAME";

Status Bad(std::string_view uri, std::string_view why) {
  return Status(EINVAL, "bad zfiled URI '" + std::string(uri) + "': " + std::string(why) + " (" +
                            std::string(kExpected) + ")");
}

// The daemon's configuration takes volume names of [A-Za-z0-9_.-]+ (not
// "." or ".."); refusing anything else here gives the user the reason at
// once instead of a round trip that ends in "no such volume".
Status CheckVolumeName(std::string_view uri, std::string_view name) {
  if (name.empty()) return Bad(uri, "the volume name is empty");
  if (name.size() > protocol::kMaxVolumeNameLen) {
    return Bad(uri, "the volume name is longer than " +
                        std::to_string(protocol::kMaxVolumeNameLen) + " bytes");
  }
  if (name == "." || name == "..")
    return Bad(uri, "'" + std::string(name) + "' is not a volume name");
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return Bad(uri, "the volume name '" + std::string(name) +
                          "' has characters other than letters, digits, '_', '.' and '-'");
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsClientUri(std::string_view uri) {
  return uri.starts_with("zfiled:") || uri.starts_with("unix:");
}

Result<ClientTarget> ParseClientUri(std::string_view uri) {
  ClientTarget target;
  if (uri.starts_with("zfiled:")) {
    const std::string_view name = uri.substr(7);
    ZF_RETURN_IF_ERROR(CheckVolumeName(uri, name));
    target.volume = std::string(name);
    // secure_getenv: in a setuid/setgid (or otherwise privileged, AT_SECURE)
    // program linked with libzfile, the environment belongs to the
    // unprivileged caller, who must not be able to point the program at a
    // daemon of its own choosing; such programs use the default socket.
    const char* env = ::secure_getenv(kZfiledSocketEnv);
    target.socket_path = env != nullptr && env[0] != '\0' ? env : kDefaultZfiledSocket;
    return target;
  }
  if (!uri.starts_with("unix:")) return Bad(uri, "not a zfiled URI");
  auto parsed = Uri::Parse(uri);
  if (!parsed.ok()) return Bad(uri, parsed.status().message());
  if (parsed->path.empty()) return Bad(uri, "the socket path is empty");
  for (const auto& [key, value] : parsed->params) {
    if (key != "volume") return Bad(uri, "unknown parameter '" + key + "'");
  }
  auto volume = parsed->params.find("volume");
  if (volume == parsed->params.end()) return Bad(uri, "no volume=NAME parameter");
  ZF_RETURN_IF_ERROR(CheckVolumeName(uri, volume->second));
  target.socket_path = parsed->path;
  target.volume = volume->second;
  return target;
}

}  // namespace zfile
