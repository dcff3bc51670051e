// File subcommands of zfile: ls, stat, cat, write, truncate, stats, zones
// (and the volume half of info). They work on a volume's files through the
// public C API (zfile/zfile.hpp over zfile/zfile.h) only, never the engine,
// so they behave exactly as an application linking libzfile would: on a
// device mounted in this process (--device URI), or on a volume a running
// zfiled serves (--volume NAME, --socket PATH), which is only another URI
// for zfile_vol_open.
#ifndef ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_
#define ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "tools/zfile/command.h"
#include "zfile/zfile.hpp"

namespace zfile::cli {

// The volume a file command works on, as the user named it: a device to
// mount in this process (embedded, exclusive), or a volume of a running
// zfiled.
struct VolumeTarget {
  std::string device;
  std::string options;  // mount options, embedded only
  std::string volume;   // a daemon's volume name ("default" with --socket alone)
  std::string socket;   // the daemon's socket ("" = $ZFILED_SOCKET or the default)
  bool daemon = false;  // --volume or --socket was given

  // The URI zfile_vol_open takes: the device, "zfiled:NAME", or
  // "unix:SOCKET?volume=NAME".
  std::string Uri() const;
};

void RegisterFileCommands(CLI::App* app, CommandTable* table);

// Adds --volume NAME and --socket PATH to `cmd`, and a check, run when the
// command line is parsed, that exactly one of --device and the daemon
// options was given and that no mount options go to a daemon: a usage error
// (exit 2) in words otherwise. `device_option` names a device for the
// volume (--device), `options_option` its mount options. A command that can
// also work on a device itself, not its volume (`info URI`), passes that
// option as `raw_device_option`: then exactly one of the three is needed.
void AddDaemonOptions(CLI::App* cmd, VolumeTarget* target, CLI::Option* device_option,
                      CLI::Option* options_option, CLI::Option* raw_device_option = nullptr);

// --device URI and -o OPTIONS (a volume mounted in this process) with the
// daemon options above, as every command on a volume's files takes them.
void AddVolumeOptions(CLI::App* cmd, VolumeTarget* target);

// A failed C API call (a negative errno) as a Status in the words of
// zfile_last_error(). Call it before any other API call, which would replace
// the message.
Status ApiError(int ret);
// Status() for a count or 0, ApiError for a negative errno.
Status Check(int ret);

Result<api::Vol> OpenVolume(const VolumeTarget& target);
Result<api::File> OpenFile(api::Vol& vol, const std::string& path, int flags);

// Closes the file (if any), then the volume, explicitly: closing the volume
// writes back dirty data and can fail, which the destructors would hide.
Status CloseAll(api::File* file, api::Vol* vol);

// "seq/3" from "/seq/3/", so paths print as the API names them.
std::string NormalizePath(std::string_view path);

// I/O buffers are aligned for O_DIRECT whatever the device's block size.
inline constexpr size_t kBufferAlignment = 4096;

struct FreeBuffer {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, FreeBuffer>;

// `size` bytes aligned to kBufferAlignment, or an error in words.
Result<AlignedBuffer> AllocateBuffer(size_t size);

// `zfile info --device URI` or `--volume NAME`: the volume (files, sizes,
// zone limits and use, label, UUID), mounted in this process for the command
// or asked of the daemon.
Status RunVolumeInfo(const VolumeTarget& target, bool json);

}  // namespace zfile::cli

#endif  // ZFILE_TOOLS_ZFILE_FILE_COMMANDS_H_
