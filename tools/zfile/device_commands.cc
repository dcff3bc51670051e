#include "tools/zfile/device_commands.h"
#include "tools/zfile/file_commands.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <memory>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "base/status.h"
#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zone.h"
#include "device/zoned_device.h"
#include "tools/zfile/output.h"

namespace zfile::cli {
namespace {

namespace fs = std::filesystem;

// blkzone reports in 512-byte sectors whatever the logical block size, and
// we keep its units so the two reports can be diffed.
constexpr uint64_t kSectorSize = 512;

// Zone ranges at least this long get a progress bar (on a terminal).
constexpr uint32_t kProgressThreshold = 16;

// The kernel's BLK_ZONE_TYPE_* values.
unsigned KernelType(ZoneType type) {
  switch (type) {
    case ZoneType::kConventional:
      return 0x1;
    case ZoneType::kSeqWriteRequired:
      return 0x2;
    case ZoneType::kSeqWritePreferred:
      return 0x3;
  }
  return 0;
}

std::string LimitText(uint32_t limit) { return limit == 0 ? "none" : std::to_string(limit); }

std::string ZoneRangeText(const DeviceInfo& info) {
  return fmt::format("the device has {} zones (0-{})", info.nr_zones, info.nr_zones - 1);
}

Status CheckZone(const DeviceInfo& info, uint32_t zone) {
  if (zone >= info.nr_zones) {
    return Status(EINVAL, fmt::format("zone {} out of range: {}", zone, ZoneRangeText(info)));
  }
  return Status();
}

Status CheckZoneRange(const DeviceInfo& info, uint32_t first, uint32_t count) {
  if (count == 0) return Status(EINVAL, "--count must be at least 1");
  ZF_RETURN_IF_ERROR(CheckZone(info, first));
  if (count > info.nr_zones - first) {
    return Status(EINVAL, fmt::format("zones {}-{} out of range: {}", first,
                                      uint64_t{first} + count - 1, ZoneRangeText(info)));
  }
  return Status();
}

// ---------------------------------------------------------------------------
// emu create

struct EmuCreateOptions {
  std::string dir;
  uint64_t size = 0;
  uint64_t zone_size = 0;
  uint64_t zone_capacity = 0;
  uint32_t conv = 0;
  uint32_t max_open = 0;
  uint32_t max_active = 0;
  uint32_t block_size = 4096;
  bool force = false;
};

// Removes an emulated device's own files from `dir` (geometry, conditions,
// zone files) and nothing else, so --force cannot take a user's unrelated
// files with it. Does nothing when `dir` holds no device.
Status RemoveEmuDeviceFiles(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "geometry", ec)) return Status();
  static const std::regex kZoneFile("(cnv|seq)-[0-9]+");
  std::vector<fs::path> doomed = {dir / "geometry", dir / "conditions"};
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (std::regex_match(it->path().filename().string(), kZoneFile)) doomed.push_back(it->path());
  }
  if (ec) return ErrnoStatus(ec.value(), "cannot list " + dir.string());
  // The geometry file goes last: if removal stops half-way the directory
  // still reads as a (damaged) device and --force can be run again.
  for (auto it = doomed.rbegin(); it != doomed.rend(); ++it) {
    if (!fs::remove(*it, ec) && ec) return ErrnoStatus(ec.value(), "cannot remove " + it->string());
  }
  return Status();
}

Status RunEmuCreate(const EmuCreateOptions& opt) {
  EmulatedGeometry geometry;
  geometry.size = opt.size;
  geometry.zone_size = opt.zone_size;
  geometry.zone_capacity = opt.zone_capacity;
  geometry.nr_conv_zones = opt.conv;
  geometry.block_size = opt.block_size;
  geometry.max_open = opt.max_open;
  geometry.max_active = opt.max_active;
  // Checked before --force removes anything: a typo must not cost a device.
  ZF_RETURN_IF_ERROR(geometry.Validate().WithContext("bad geometry"));

  std::error_code ec;
  // Absolute, so the printed URI works from any directory.
  const fs::path dir = fs::absolute(opt.dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot resolve " + opt.dir);
  if (opt.force) ZF_RETURN_IF_ERROR(RemoveEmuDeviceFiles(dir));

  Status created = CreateEmuDevice(dir.string(), geometry);
  if (!created.ok()) {
    Status with_context =
        created.WithContext("cannot create an emulated device in " + dir.string());
    if (created.err() == EEXIST) {
      return Status(EEXIST, with_context.message() + " (use --force to replace it)");
    }
    return with_context;
  }
  fmt::print(
      "created emu:{}: {}, {} zones of {} (zone capacity {}), {} conventional, "
      "{}-byte blocks, max open {}, max active {}\n",
      dir.string(), FormatSize(geometry.size), geometry.nr_zones(), FormatSize(geometry.zone_size),
      FormatSize(geometry.capacity_of_seq_zone()), geometry.nr_conv_zones, geometry.block_size,
      LimitText(geometry.max_open), LimitText(geometry.max_active));
  return Status();
}

void RegisterEmuCreate(CLI::App* app, CommandTable* table) {
  CLI::App* emu = app->add_subcommand("emu", "Manage emulated zoned devices (emu: URIs)");
  emu->require_subcommand(1);
  auto opt = std::make_shared<EmuCreateOptions>();
  CLI::App* create = emu->add_subcommand(
      "create",
      "Create an emulated zoned device in DIR (zloop layout: one file per zone). "
      "Open it afterwards as emu:DIR.");
  create->add_option("DIR", opt->dir, "Directory to hold the device (created if missing)")
      ->required();
  create->add_option("--size", opt->size, "Device size, a multiple of the zone size (e.g. 1G)")
      ->required()
      ->transform(SizeValidator())
      ->type_name("SIZE");
  create->add_option("--zone-size", opt->zone_size, "Zone size (e.g. 64M)")
      ->required()
      ->transform(SizeValidator())
      ->type_name("SIZE");
  create
      ->add_option("--zone-capacity", opt->zone_capacity,
                   "Writable bytes per sequential zone, at most the zone size (default: zone size)")
      ->transform(SizeValidator())
      ->type_name("SIZE");
  create->add_option("--conv", opt->conv, "Number of conventional zones, placed first")
      ->default_val(0);
  create->add_option("--max-open", opt->max_open, "Max open zones (0: no limit)")->default_val(0);
  create->add_option("--max-active", opt->max_active, "Max active zones (0: no limit)")
      ->default_val(0);
  create->add_option("--block-size", opt->block_size, "Logical block size")
      ->check(CLI::IsMember({512, 4096}))
      ->default_val(4096);
  create->add_flag("--force", opt->force,
                   "Replace a device already in DIR (its zone files are deleted; other files in "
                   "DIR are left alone)");
  create->footer(
      "Example:\n  zfile emu create /var/tmp/zdev --size 1G --zone-size 64M --conv 2 "
      "--max-open 8 --max-active 12");
  table->Add(create, [opt] { return RunEmuCreate(*opt); });
}

// ---------------------------------------------------------------------------
// report

struct ReportOptions {
  std::string uri;
  uint32_t zone = 0;
  uint32_t count = 0;
  bool json = false;
};

void PrintZonesText(const std::vector<ZoneInfo>& zones) {
  std::string out;
  for (const ZoneInfo& z : zones) {
    // Like blkzone: the write pointer is relative to the zone start, and 0
    // for conventional zones, which have none.
    const uint64_t wp_rel = z.sequential() ? z.wp - z.start : 0;
    fmt::format_to(std::back_inserter(out),
                   "  start: 0x{:09x}, len 0x{:06x}, cap 0x{:06x}, wptr 0x{:06x} reset:0 "
                   "non-seq:0, zcond:{:2}({}) [type: {}({})]\n",
                   z.start / kSectorSize, z.len / kSectorSize, z.capacity / kSectorSize,
                   wp_rel / kSectorSize, unsigned{KernelCondition(z.cond)},
                   ConditionShortName(z.cond), KernelType(z.type), TypeName(z.type));
  }
  fmt::print("{}", out);
}

void PrintZonesJson(uint32_t first, const std::vector<ZoneInfo>& zones) {
  JsonWriter json;
  json.BeginArray();
  uint32_t number = first;
  for (const ZoneInfo& z : zones) {
    json.BeginObject();
    json.Key("zone").Uint(number++);
    json.Key("start").Uint(z.start).Key("start_sector").Uint(z.start / kSectorSize);
    json.Key("len").Uint(z.len).Key("len_sectors").Uint(z.len / kSectorSize);
    json.Key("capacity").Uint(z.capacity).Key("capacity_sectors").Uint(z.capacity / kSectorSize);
    // Conventional zones have no write pointer: null rather than a number
    // that looks meaningful.
    if (z.sequential()) {
      json.Key("wp").Uint(z.wp).Key("wp_sector").Uint(z.wp / kSectorSize);
    } else {
      json.Key("wp").Null().Key("wp_sector").Null();
    }
    json.Key("type").String(TypeName(z.type));
    json.Key("condition").String(ConditionName(z.cond));
    json.Key("cond").String(ConditionShortName(z.cond));
    json.EndObject();
  }
  json.EndArray();
  fmt::print("{}", json.Finish());
}

Status RunReport(const ReportOptions& opt) {
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(opt.uri));
  const DeviceInfo& info = dev->info();
  ZF_RETURN_IF_ERROR(CheckZone(info, opt.zone));
  // As blkzone does, a count running past the last zone stops there.
  const uint32_t count =
      opt.count == 0 ? 0 : std::min<uint32_t>(opt.count, info.nr_zones - opt.zone);
  std::vector<ZoneInfo> zones;
  ZF_RETURN_IF_ERROR(dev->ReportZones(opt.zone, count, &zones));
  if (opt.json) {
    PrintZonesJson(opt.zone, zones);
  } else {
    PrintZonesText(zones);
  }
  return Status();
}

void RegisterReport(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<ReportOptions>();
  CLI::App* cmd = app->add_subcommand(
      "report", "Report zones, one line per zone, as `blkzone report` prints them");
  cmd->footer(
      "start, len, cap and wptr are in 512-byte sectors, as in blkzone; wptr is relative to the\n"
      "zone start (0 for conventional zones).\n\n"
      "Examples:\n"
      "  zfile report emu:/var/tmp/zdev --zone 2 --count 4\n"
      "  zfile report zbd:/dev/nullb0 --json | jq '.[] | select(.condition == \"full\")'");
  cmd->add_option("URI", opt->uri, "Device (emu:DIR, mem:?..., zbd:/dev/X)")->required();
  cmd->add_option("--zone,-z", opt->zone, "First zone to report")->default_val(0);
  cmd->add_option("--count,-c", opt->count, "Number of zones to report (default: to the last)");
  cmd->add_flag("--json", opt->json,
                "JSON array: start, len, capacity, wp in bytes and in sectors (wp absolute, null "
                "for conventional zones), type and condition names");
  table->Add(cmd, [opt] { return RunReport(*opt); });
}

// ---------------------------------------------------------------------------
// info

struct InfoOptions {
  std::string uri;      // the device
  VolumeTarget volume;  // or the volume on a device, or of a daemon
  bool json = false;
};

struct ConditionCounts {
  uint32_t not_wp = 0;
  uint32_t empty = 0;
  uint32_t implicit_open = 0;
  uint32_t explicit_open = 0;
  uint32_t closed = 0;
  uint32_t full = 0;
  uint32_t read_only = 0;
  uint32_t offline = 0;
};

ConditionCounts CountConditions(const std::vector<ZoneInfo>& zones) {
  ConditionCounts c;
  for (const ZoneInfo& z : zones) {
    switch (z.cond) {
      case ZoneCondition::kNotWp:
        ++c.not_wp;
        break;
      case ZoneCondition::kEmpty:
        ++c.empty;
        break;
      case ZoneCondition::kImplicitOpen:
        ++c.implicit_open;
        break;
      case ZoneCondition::kExplicitOpen:
        ++c.explicit_open;
        break;
      case ZoneCondition::kClosed:
        ++c.closed;
        break;
      case ZoneCondition::kFull:
        ++c.full;
        break;
      case ZoneCondition::kReadOnly:
        ++c.read_only;
        break;
      case ZoneCondition::kOffline:
        ++c.offline;
        break;
    }
  }
  return c;
}

void PrintInfoText(const DeviceInfo& info, const ConditionCounts& c) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    fmt::format_to(std::back_inserter(out), "{:<22}{}\n", fmt::format("{}:", key), value);
  };
  auto sized = [](uint64_t bytes) {
    return fmt::format("{} ({} bytes, {} sectors)", FormatSize(bytes), bytes, bytes / kSectorSize);
  };
  line("uri", info.uri);
  line("backend", info.backend);
  line("model", info.model);
  line("capacity", sized(info.capacity));
  line("zone size", sized(info.zone_size));
  line("zone capacity", sized(info.zone_capacity));
  line("zones", std::to_string(info.nr_zones));
  line("conventional zones", std::to_string(info.nr_conv_zones));
  line("sequential zones", std::to_string(info.nr_zones - info.nr_conv_zones));
  line("block size", std::to_string(info.block_size));
  line("max open zones", LimitText(info.max_open));
  line("max active zones", LimitText(info.max_active));
  line("max I/O", fmt::format("{} ({} bytes)", FormatSize(info.max_io_bytes), info.max_io_bytes));
  line("native append", info.native_append ? "yes" : "no");
  out += "zone conditions:\n";
  line("  empty", std::to_string(c.empty));
  line("  implicit open", std::to_string(c.implicit_open));
  line("  explicit open", std::to_string(c.explicit_open));
  line("  closed", std::to_string(c.closed));
  line("  full", std::to_string(c.full));
  line("  read-only", std::to_string(c.read_only));
  line("  offline", std::to_string(c.offline));
  line("  not write pointer", std::to_string(c.not_wp));
  fmt::print("{}", out);
}

void PrintInfoJson(const DeviceInfo& info, const ConditionCounts& c) {
  JsonWriter json;
  json.BeginObject();
  json.Key("uri").String(info.uri);
  json.Key("backend").String(info.backend);
  json.Key("model").String(info.model);
  json.Key("capacity").Uint(info.capacity);
  json.Key("zone_size").Uint(info.zone_size);
  json.Key("zone_capacity").Uint(info.zone_capacity);
  json.Key("nr_zones").Uint(info.nr_zones);
  json.Key("nr_conv_zones").Uint(info.nr_conv_zones);
  json.Key("block_size").Uint(info.block_size);
  // 0 means no limit, as in the kernel's max_open_zones/max_active_zones.
  json.Key("max_open").Uint(info.max_open);
  json.Key("max_active").Uint(info.max_active);
  json.Key("max_io_bytes").Uint(info.max_io_bytes);
  json.Key("native_append").Bool(info.native_append);
  json.Key("zones").BeginObject();
  json.Key("empty").Uint(c.empty);
  json.Key("implicit_open").Uint(c.implicit_open);
  json.Key("explicit_open").Uint(c.explicit_open);
  json.Key("closed").Uint(c.closed);
  json.Key("full").Uint(c.full);
  json.Key("readonly").Uint(c.read_only);
  json.Key("offline").Uint(c.offline);
  json.Key("not_wp").Uint(c.not_wp);
  json.EndObject();
  json.EndObject();
  fmt::print("{}", json.Finish());
}

Status RunInfo(const InfoOptions& opt) {
  if (opt.uri.empty()) return RunVolumeInfo(opt.volume, opt.json);
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(opt.uri));
  std::vector<ZoneInfo> zones;
  ZF_RETURN_IF_ERROR(dev->ReportZones(0, 0, &zones));
  const ConditionCounts counts = CountConditions(zones);
  if (opt.json) {
    PrintInfoJson(dev->info(), counts);
  } else {
    PrintInfoText(dev->info(), counts);
  }
  return Status();
}

void RegisterInfo(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* cmd = app->add_subcommand(
      "info",
      "Show a device's geometry and limits, and how many zones are in each condition (URI); "
      "or the volume on it (--device URI) or of a running zfiled (--volume NAME): files, sizes, "
      "zone limits and use, label, UUID");
  auto* uri = cmd->add_option("URI", opt->uri, "Device (emu:DIR, mem:?..., zbd:/dev/X)");
  auto* device = cmd->add_option("--device,-d", opt->volume.device,
                                 "Show the volume on this device instead (mounted for the command)")
                     ->type_name("URI");
  auto* options = cmd->add_option("-o,--options", opt->volume.options, "Mount options for --device")
                      ->type_name("OPTIONS");
  AddDaemonOptions(cmd, &opt->volume, device, options, uri);
  cmd->add_flag("--json", opt->json, "JSON object (max_open/max_active 0: no limit)");
  cmd->footer(
      "Examples:\n  zfile info emu:/var/tmp/zdev --json        # the device\n"
      "  zfile info --device emu:/var/tmp/zdev      # the volume on it\n"
      "  zfile info --volume data                   # a volume of a running zfiled");
  table->Add(cmd, [opt] { return RunInfo(*opt); });
}

// ---------------------------------------------------------------------------
// reset, open, close, finish

struct ZoneOpOptions {
  std::string uri;
  uint32_t zone = 0;
  uint32_t count = 1;
  bool all = false;
};

Status RunZoneOp(ZoneOp op, const ZoneOpOptions& opt) {
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(opt.uri));
  // The device's messages name the operation and the zone; the URI says
  // which device, for scripts that work on several.
  if (opt.all) return dev->ManageAllZones(op).WithContext(opt.uri);
  ZF_RETURN_IF_ERROR(CheckZoneRange(dev->info(), opt.zone, opt.count));
  ProgressBar progress(std::string(ZoneOpName(op)), opt.count);
  if (opt.count < kProgressThreshold || !progress.enabled()) {
    return dev->ManageZones(op, opt.zone, opt.count).WithContext(opt.uri);
  }
  // One zone per call so the bar moves with the work actually done; the
  // result is the same as one ManageZones call (zone order, stop at the
  // first failure).
  for (uint32_t done = 0; done < opt.count; ++done) {
    ZF_RETURN_IF_ERROR(dev->ManageZones(op, opt.zone + done, 1).WithContext(opt.uri));
    progress.Update(done + 1);
  }
  return Status();
}

void RegisterZoneOp(CLI::App* app, CommandTable* table, ZoneOp op, const std::string& help) {
  auto opt = std::make_shared<ZoneOpOptions>();
  const std::string name(ZoneOpName(op));
  CLI::App* cmd = app->add_subcommand(name, help);
  cmd->add_option("URI", opt->uri, "Device (emu:DIR, mem:?..., zbd:/dev/X)")->required();
  CLI::Option_group* which = cmd->add_option_group("zones", "Which zones (exactly one of)");
  CLI::Option* zone = which->add_option("--zone,-z", opt->zone, "First zone");
  which->add_flag("--all,-a", opt->all, "Every sequential zone that accepts the operation");
  which->require_option(1);
  cmd->add_option("--count,-c", opt->count, "Number of zones from --zone")
      ->default_val(1)
      ->needs(zone);
  cmd->footer(
      fmt::format("On a terminal, {0} of {1} zones or more shows a progress bar.\n\n"
                  "Examples:\n"
                  "  zfile {0} emu:/var/tmp/zdev --zone 3\n"
                  "  zfile {0} emu:/var/tmp/zdev --zone 2 --count 8\n"
                  "  zfile {0} zbd:/dev/nullb0 --all",
                  name, kProgressThreshold));
  table->Add(cmd, [op, opt] { return RunZoneOp(op, *opt); });
}

// ---------------------------------------------------------------------------
// inject

struct InjectOptions {
  std::string uri;
  uint32_t zone = 0;
  bool offline = false;
  bool readonly = false;
  bool online = false;
  uint64_t wp = 0;
  CLI::Option* wp_option = nullptr;
};

Status RunInject(const InjectOptions& opt) {
  // Kernel devices are refused before they are opened: opening one may
  // need privileges, and the answer would be the same.
  Result<Uri> uri = Uri::Parse(opt.uri);
  if (uri.ok() && (uri->scheme == "zbd" || uri->scheme == "nvme")) {
    return Status(EOPNOTSUPP, fmt::format("{}: the {} backend has no fault injection (only "
                                          "emulated devices, emu: and mem:, have it)",
                                          opt.uri, uri->scheme));
  }
  ZF_ASSIGN_OR_RETURN(std::unique_ptr<ZonedDevice> dev, OpenDevice(opt.uri));
  const DeviceInfo& info = dev->info();
  FaultInjector* faults = dev->faults();
  if (faults == nullptr) {
    return Status(EOPNOTSUPP, fmt::format("{}: the {} backend has no fault injection (only "
                                          "emulated devices, emu: and mem:, have it)",
                                          info.uri, info.backend));
  }
  ZF_RETURN_IF_ERROR(CheckZone(info, opt.zone));
  ZF_ASSIGN_OR_RETURN(ZoneInfo z, dev->ReportZone(opt.zone));
  if (!z.sequential()) {
    return Status(EINVAL, fmt::format("zone {} is conventional: faults can only be injected "
                                      "into sequential zones (the first is zone {})",
                                      opt.zone, info.nr_conv_zones));
  }
  const std::string context = fmt::format("inject into zone {}", opt.zone);
  if (opt.wp_option->count() > 0) {
    if (opt.wp > z.capacity) {
      return Status(EINVAL, fmt::format("{}: write pointer offset {} is beyond the zone "
                                        "capacity of {} bytes",
                                        context, opt.wp, z.capacity));
    }
    if (opt.wp % info.block_size != 0) {
      return Status(EINVAL, fmt::format("{}: write pointer offset {} is not a multiple of the "
                                        "{}-byte block size",
                                        context, opt.wp, info.block_size));
    }
    ZF_RETURN_IF_ERROR(faults->MoveWritePointer(opt.zone, z.start + opt.wp).WithContext(context));
    fmt::print("zone {}: write pointer moved to offset {} (was {})\n", opt.zone, opt.wp,
               z.wp - z.start);
    return Status();
  }
  const ZoneCondition cond = opt.offline    ? ZoneCondition::kOffline
                             : opt.readonly ? ZoneCondition::kReadOnly
                                            : ZoneCondition::kEmpty;
  ZF_RETURN_IF_ERROR(faults->SetZoneCondition(opt.zone, cond).WithContext(context));
  fmt::print("zone {}: {}\n", opt.zone, ConditionName(cond));
  return Status();
}

void RegisterInject(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<InjectOptions>();
  CLI::App* cmd = app->add_subcommand(
      "inject",
      "Inject a fault into a sequential zone of an emulated device (emu: keeps it across "
      "reopens)");
  cmd->add_option("URI", opt->uri, "Emulated device (emu:DIR or mem:?...)")->required();
  cmd->add_option("--zone,-z", opt->zone, "Zone to act on")->required();
  CLI::Option_group* what = cmd->add_option_group("fault", "Which fault (exactly one of)");
  what->add_flag("--offline", opt->offline, "Take the zone offline (reads and writes fail)");
  what->add_flag("--readonly", opt->readonly, "Make the zone read-only (writes fail)");
  what->add_flag("--online", opt->online, "Return the zone to service as an empty zone");
  opt->wp_option =
      what->add_option("--wp", opt->wp,
                       "Move the write pointer to OFFSET bytes from the zone start (e.g. 64K), "
                       "behind the user's back: data above it is lost")
          ->transform(SizeValidator())
          ->type_name("OFFSET");
  what->require_option(1);
  cmd->footer(
      "One-shot faults are armed through URI parameters, for the program that opens the "
      "device:\n"
      "  fail_read=OFFSET      the next read touching the block at byte OFFSET fails with EIO\n"
      "  fail_write=OFFSET     the next write touching the block at byte OFFSET fails with EIO\n"
      "  power_cut_after=N     power is cut after N more writes complete; later I/O fails\n"
      "e.g. emu:/var/tmp/zdev?fail_write=1M\n"
      "\n"
      "Examples:\n"
      "  zfile inject emu:/var/tmp/zdev --zone 5 --offline\n"
      "  zfile inject emu:/var/tmp/zdev --zone 5 --wp 64K");
  table->Add(cmd, [opt] { return RunInject(*opt); });
}

}  // namespace

void RegisterDeviceCommands(CLI::App* app, CommandTable* table) {
  RegisterEmuCreate(app, table);
  RegisterReport(app, table);
  RegisterInfo(app, table);
  RegisterZoneOp(app, table, ZoneOp::kReset,
                 "Reset zones: write pointer back to the zone start, data discarded");
  RegisterZoneOp(app, table, ZoneOp::kOpen, "Open zones explicitly");
  RegisterZoneOp(app, table, ZoneOp::kClose, "Close open zones");
  RegisterZoneOp(app, table, ZoneOp::kFinish, "Finish zones: write pointer to the end, zone full");
  RegisterInject(app, table);
}

}  // namespace zfile::cli
