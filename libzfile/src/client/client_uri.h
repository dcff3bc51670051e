// Where a client of zfiled connects: the URIs zfile_vol_open() accepts for
// client mode (SPEC section 6), as opposed to device URIs.
//
//   zfiled:NAME                 volume NAME of the daemon at the default
//                               socket ($ZFILED_SOCKET when set and not
//                               empty and the process is not setuid/
//                               setgid/AT_SECURE, else
//                               /run/zfiled/zfiled.sock)
//   unix:PATH?volume=NAME       volume NAME of the daemon listening on PATH
#ifndef ZFILE_CLIENT_CLIENT_URI_H_
#define ZFILE_CLIENT_CLIENT_URI_H_

#include <string>
#include <string_view>

#include "base/status.h"

namespace zfile {

inline constexpr char kDefaultZfiledSocket[] = "/run/zfiled/zfiled.sock";
inline constexpr char kZfiledSocketEnv[] = "ZFILED_SOCKET";

struct ClientTarget {
  std::string socket_path;
  std::string volume;
};

// Whether `uri` names a daemon rather than a device (its scheme is
// "zfiled" or "unix"); says nothing about whether the rest is well formed.
bool IsClientUri(std::string_view uri);

// The socket and volume `uri` names. EINVAL, saying what is wrong and what
// was expected, for anything else: another scheme, an empty or malformed
// volume name, a unix: URI without a path or volume, unknown parameters.
// Reads ZFILED_SOCKET for the zfiled: form, through secure_getenv(): a
// privileged (AT_SECURE) process ignores it and uses kDefaultZfiledSocket.
Result<ClientTarget> ParseClientUri(std::string_view uri);

}  // namespace zfile

#endif  // ZFILE_CLIENT_CLIENT_URI_H_
