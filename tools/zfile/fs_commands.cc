#include "tools/zfile/fs_commands.h"

#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/status.h"
#include "device/zone.h"
#include "device/zoned_device.h"
#include "format/mkfs.h"
#include "format/superblock.h"
#include "tools/zfile/output.h"

namespace zfile::cli {
namespace {

// ---------------------------------------------------------------------------
// mkfs

struct MkfsCommandOptions {
  std::string uri;
  std::string label;
  std::vector<std::string> features;  // each -o argument, in order
  bool force = false;
};

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// Like mkzonefs's summary: the device, then the format, so what a user reads
// can be compared with mkzonefs output line by line.
void PrintMkfsSummary(const DeviceInfo& info, const MkfsResult& r) {
  const Superblock& sb = r.superblock;
  std::string out;
  auto line = [&out](const std::string& text) {
    fmt::format_to(std::back_inserter(out), "{}\n", text);
  };
  line(fmt::format("{}: {} 512-byte sectors ({})", info.uri, info.capacity / 512,
                   FormatSize(info.capacity)));
  line(fmt::format("  {} device ({} backend), {}-byte logical blocks", info.model, info.backend,
                   info.block_size));
  line(fmt::format("  {} of {} (zone capacity {})", Plural(r.nr_zones, "zone", "zones"),
                   FormatSize(info.zone_size), FormatSize(info.zone_capacity)));
  line(fmt::format("  {}, {}", Plural(r.nr_conv_zones, "conventional zone", "conventional zones"),
                   Plural(r.nr_seq_zones, "sequential zone", "sequential zones")));
  line(fmt::format("  {}, {}", Plural(r.nr_readonly_zones, "read-only zone", "read-only zones"),
                   Plural(r.nr_offline_zones, "offline zone", "offline zones")));
  line("Format:");
  line(fmt::format("  {} (zone 0, {}, holds the superblock)",
                   Plural(r.nr_zones - r.nr_offline_zones - 1, "usable zone", "usable zones"),
                   r.zone0_sequential ? "sequential, now full" : "conventional"));
  line(fmt::format("  Aggregate conventional zones: {}", sb.aggr_cnv ? "enabled" : "disabled"));
  line(fmt::format("  File UID: {}{}", sb.file_uid(), sb.uid ? "" : " (default)"));
  line(fmt::format("  File GID: {}{}", sb.file_gid(), sb.gid ? "" : " (default)"));
  line(fmt::format("  File access permissions: {:04o}{}", sb.file_perm(),
                   sb.perm ? "" : " (default)"));
  if (!sb.label.empty()) line(fmt::format("  FS label: {}", sb.label));
  line(fmt::format("  FS UUID: {}", sb.UuidString()));
  line(fmt::format("  Files: cnv/ {}, seq/ {}", Plural(r.nr_cnv_files, "file", "files"),
                   Plural(r.nr_seq_files, "file", "files")));
  line(fmt::format("Reset {} that held data; superblock written",
                   Plural(r.nr_zones_reset, "sequential zone", "sequential zones")));
  fmt::print("{}", out);
}

Status RunMkfs(const MkfsCommandOptions& opt) {
  MkfsOptions mkfs;
  mkfs.label = opt.label;
  mkfs.force = opt.force;
  // Options are checked before the device is opened: a typo must not need
  // (or lock) the device.
  for (const std::string& features : opt.features) {
    ZF_RETURN_IF_ERROR(ParseMkfsFeatures(features, &mkfs));
  }
  Superblock check;
  check.label = mkfs.label;
  ZF_RETURN_IF_ERROR(check.Validate().WithContext("-L"));

  // Not an error (the kernel and mkzonefs take 64 bytes), but blkid, and so
  // udev's /dev/disk/by-label, sees only 32 (see format/superblock.h).
  if (mkfs.label.size() > 32) {
    fmt::print(stderr, "zfile: note: blkid shows only the first 32 bytes of a zonefs label\n");
  }

  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(opt.uri));
  MkfsResult result;
  ZF_RETURN_IF_ERROR(Mkfs(dev.get(), mkfs, &result));
  PrintMkfsSummary(dev->info(), result);
  return Status();
}

void RegisterMkfs(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<MkfsCommandOptions>();
  CLI::App* cmd = app->add_subcommand(
      "mkfs",
      "Make a zonefs file system (kernel zonefs format, as mkzonefs): reset the sequential "
      "zones and write the superblock to zone 0");
  cmd->add_option("URI", opt->uri, "Device (emu:DIR, mem:?..., zbd:/dev/X)")->required();
  cmd->add_flag("-f,--force", opt->force,
                "Overwrite a device that holds a file system or data (all sequential zones are "
                "reset)");
  cmd->add_option("-L,--label", opt->label, "File system label, at most 64 bytes")
      ->type_name("LABEL");
  cmd->add_option("-o,--options", opt->features,
                  "Features, comma-separated: aggr_cnv (one file per run of contiguous "
                  "conventional zones), uid=N, gid=N, perm=OCTAL (file owner and mode; default "
                  "0, 0, 0640)")
      ->type_name("FEATURES")
      ->allow_extra_args(false);
  cmd->footer(
      "Without -f, mkfs refuses a device that already holds a zonefs file system, has non-zero "
      "bytes\nwhere the superblock goes, or has sequential zones holding data, and changes "
      "nothing.\n\n"
      "Examples:\n"
      "  zfile mkfs emu:/var/tmp/zdev\n"
      "  zfile mkfs zbd:/dev/nullb0 -f -L data -o aggr_cnv,uid=1000,gid=1000,perm=0660");
  table->Add(cmd, [opt] { return RunMkfs(*opt); });
}

}  // namespace

void RegisterFsCommands(CLI::App* app, CommandTable* table) { RegisterMkfs(app, table); }

}  // namespace zfile::cli
