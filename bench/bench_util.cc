#include "bench_util.h"

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/uri.h"
#include "device/emu_backend.h"
#include "device/emulated_geometry.h"
#include "device/zoned_device.h"
#include "format/mkfs.h"

namespace zfile::bench {

Buf Aligned(size_t n, uint8_t fill) {
  Buf b(static_cast<uint8_t*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096)));
  std::memset(b.get(), fill, n);
  return b;
}

ScratchDevices::ScratchDevices(const std::string& tag, const char* geometry) {
  const char* parent = std::getenv("ZFILE_BENCH_EMU_DIR");
  std::string tmpl = std::string(parent != nullptr ? parent : "/tmp") + "/zfile-" + tag + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror(("mkdtemp " + tmpl).c_str());
    return;
  }
  dir_ = tmpl;
  const std::string emu_dir = dir_ + "/dev";
  auto uri = Uri::Parse(std::string("emu:?") + geometry);
  EmulatedGeometry g;
  if (!uri.ok() || !g.ReadFromUri(*uri).ok() || !CreateEmuDevice(emu_dir, g).ok()) {
    std::fprintf(stderr, "cannot create the emu device in %s\n", emu_dir.c_str());
    return;
  }
  devices_.push_back({"mem", "mem:" + tag + "?" + geometry});
  devices_.push_back({"emu", "emu:" + emu_dir});
}

ScratchDevices::~ScratchDevices() {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool Check(const Status& s, benchmark::State& state) {
  if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  return s.ok();
}

zfile_vol* FormatAndMount(const BenchDevice& bd, const char* options, benchmark::State& state) {
  {
    auto dev = OpenDevice(bd.uri);
    if (!dev.ok()) {
      state.SkipWithError(dev.status().ToString().c_str());
      return nullptr;
    }
    MkfsOptions o;
    o.force = true;
    if (!Check(Mkfs(dev->get(), o), state)) return nullptr;
  }
  zfile_vol* vol = nullptr;
  if (zfile_vol_open(bd.uri.c_str(), options, &vol) != 0) {
    state.SkipWithError(zfile_last_error());
    return nullptr;
  }
  return vol;
}

uint64_t VolStat(zfile_vol* vol, std::string_view key) {
  char json[4096];
  if (zfile_vol_stats(vol, json, sizeof json) < 0) return 0;
  const std::string needle = "\"" + std::string(key) + "\":";
  const char* at = std::strstr(json, needle.c_str());
  return at == nullptr ? 0 : std::strtoull(at + needle.size(), nullptr, 10);
}

void RecordingReporter::ReportRuns(const std::vector<Run>& runs) {
  ConsoleReporter::ReportRuns(runs);
  for (const Run& r : runs) {
    if (r.error_occurred) continue;
    const bool aggregate = r.run_type == Run::RT_Aggregate;
    if (aggregate && r.aggregate_name != "median") continue;
    const std::string& name = r.run_name.function_name;
    if (!aggregate && r.repetitions > 1 && runs_.count(name) != 0) continue;  // wait for the median
    runs_.insert_or_assign(name, r);
  }
}

const RecordingReporter::Run* RecordingReporter::Find(const std::string& name) const {
  auto it = runs_.find(name);
  return it == runs_.end() ? nullptr : &it->second;
}

double RecordingReporter::Counter(const std::string& name, const std::string& counter) const {
  const Run* r = Find(name);
  if (r == nullptr) return 0;
  auto it = r->counters.find(counter);
  return it == r->counters.end() ? 0 : it->second.value;
}

double RecordingReporter::RealTime(const std::string& name) const {
  const Run* r = Find(name);
  return r == nullptr ? 0 : r->GetAdjustedRealTime();
}

void RunAndSummarize(int argc, char** argv,
                     const std::function<void(const RecordingReporter&)>& summary) {
  benchmark::Initialize(&argc, argv);
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  summary(reporter);
  benchmark::Shutdown();
}

}  // namespace zfile::bench
