#include "tools/zfile/bench_command.h"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "base/status.h"
#include "client/client_backend.h"
#include "tools/zfile/file_commands.h"
#include "tools/zfile/output.h"
#include "zfile/zfile.hpp"

namespace zfile::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The longest --runtime taken (11.6 days): far more than a benchmark needs,
// and far from where nanoseconds overflow an int64 (292 years).
constexpr double kMaxRuntimeSeconds = 1e6;

enum class Rw { kWrite, kRead, kRandRead, kRandWrite };

struct RwName {
  std::string_view name;
  Rw rw;
};
constexpr RwName kRwNames[] = {
    {"write", Rw::kWrite},
    {"read", Rw::kRead},
    {"randread", Rw::kRandRead},
    {"randwrite", Rw::kRandWrite},
};

Rw ParseRw(std::string_view name) {
  for (const RwName& r : kRwNames) {
    if (r.name == name) return r.rw;
  }
  return Rw::kRead;  // unreachable: the option's validator accepts the names only
}

bool IsWrite(Rw rw) { return rw == Rw::kWrite || rw == Rw::kRandWrite; }
bool IsRandom(Rw rw) { return rw == Rw::kRandRead || rw == Rw::kRandWrite; }

struct BenchOptions {
  VolumeTarget target;
  std::string path;
  std::string rw = "read";
  uint64_t bs = 4096;
  uint64_t size = 0;
  CLI::Option* size_option = nullptr;
  uint64_t io_limit = 0;
  CLI::Option* io_limit_option = nullptr;
  double runtime = 0;
  bool direct = false;
  bool regbuf = false;
  uint64_t seed = 1;
  bool json = false;
};

// What the job will do, settled before the first I/O so that bad input
// changes nothing.
struct Plan {
  Rw rw = Rw::kRead;
  uint64_t start = 0;   // first byte of the region
  uint64_t blocks = 0;  // --bs blocks in the region
  uint64_t ops = 0;     // at most this many I/Os (fewer if --runtime ends the job)
};

Result<Plan> MakePlan(const BenchOptions& opt, const std::string& path,
                      const struct zfile_stat& st) {
  Plan plan;
  plan.rw = ParseRw(opt.rw);
  const bool write = IsWrite(plan.rw);
  const bool seq_file = st.type == ZFILE_TYPE_SEQ;
  const uint64_t bs = opt.bs;
  const uint64_t block = st.block_size;
  if (st.type == ZFILE_TYPE_DIR) {
    return Status(EISDIR, fmt::format("{}: is a directory; give a file (cnv/N, seq/N)", path));
  }
  if (bs == 0) return Status(EINVAL, "--bs 0: a block size of at least one byte is needed");
  if (opt.direct && bs % block != 0) {
    return Status(EINVAL, fmt::format("{}: --bs {} is not a multiple of the {}-byte block size: "
                                      "--direct I/O must be whole, aligned blocks (nothing was "
                                      "done)",
                                      path, bs, block));
  }
  if (write && seq_file && bs % block != 0) {
    return Status(EINVAL, fmt::format("{}: --bs {} is not a multiple of the {}-byte block size: "
                                      "sequential files take whole blocks (nothing was done)",
                                      path, bs, block));
  }
  if (plan.rw == Rw::kRandWrite && seq_file) {
    return Status(EINVAL, fmt::format("{}: a sequential file takes writes at its write pointer "
                                      "only: use --rw write, or a conventional file (cnv/N) for "
                                      "random writes (nothing was done)",
                                      path));
  }

  // A sequential file is written from its write pointer to its capacity;
  // anything else within its size (a conventional file's size is fixed).
  const bool append = write && seq_file;
  plan.start = append ? st.size : 0;
  const uint64_t room = append ? st.max_size - st.size : st.size;
  const bool size_given = opt.size_option->count() > 0;
  if (size_given && opt.size > room) {
    if (append) {
      return Status(EFBIG,
                    fmt::format("{}: --size {} does not fit: the write pointer is at {} and "
                                "{} bytes are left in the zone (`zfile truncate {} 0` resets "
                                "it; nothing was done)",
                                path, opt.size, st.size, room, path));
    }
    return Status(write ? EFBIG : EINVAL,
                  fmt::format("{}: --size {} is more than the file's {} bytes (nothing was done)",
                              path, opt.size, room));
  }
  const uint64_t length = size_given ? opt.size : room;
  if (length < bs) {
    if (room == 0 && append) {
      return Status(ENOSPC, fmt::format("{}: the zone is full: nothing can be written (`zfile "
                                        "truncate {} 0` resets it)",
                                        path, path));
    }
    if (room == 0) {
      return Status(EINVAL, fmt::format("{}: the file is empty: nothing to read", path));
    }
    return Status(EINVAL, fmt::format("{}: {} bytes to work on are less than one --bs block of {} "
                                      "bytes (nothing was done)",
                                      path, length, bs));
  }
  plan.blocks = length / bs;
  plan.ops = plan.blocks;
  if (opt.io_limit_option->count() > 0) {
    if (opt.io_limit < bs) {
      return Status(EINVAL, fmt::format("{}: --io-limit {} is less than one --bs block of {} "
                                        "bytes (nothing was done)",
                                        path, opt.io_limit, bs));
    }
    plan.ops = opt.io_limit / bs;
    // Other workloads go round the region again; appends cannot.
    if (append && plan.ops > plan.blocks) {
      if (size_given) {
        return Status(EFBIG, fmt::format("{}: --io-limit {} is more than --size {}: appends to a "
                                         "sequential file cannot go round the region again "
                                         "(nothing was done)",
                                         path, opt.io_limit, opt.size));
      }
      return Status(EFBIG,
                    fmt::format("{}: --io-limit {} does not fit: {} bytes are left in the zone "
                                "from the write pointer at {} (nothing was done)",
                                path, opt.io_limit, room, st.size));
    }
  }
  return plan;
}

// Visits every block of [0, n) once per pass in a scrambled order, as fio's
// random map does by default, so both sides of a comparison touch the same
// blocks; it needs no memory: a bijection of the k-bit integers (2^k >= n)
// is applied to a counter, and the values >= n (fewer than half) skipped.
class BlockShuffle {
 public:
  BlockShuffle(uint64_t n, uint64_t seed)
      : n_(n), bits_(static_cast<int>(std::bit_width(n - 1))), mask_(Mask(bits_)), key_(seed) {}

  uint64_t Next() {
    for (;;) {
      if (counter_ == 0 && started_) NewPass();
      started_ = true;
      const uint64_t x = Mix(counter_);
      counter_ = (counter_ + 1) & mask_;
      if (x < n_) return x;
    }
  }

 private:
  static uint64_t Mask(int bits) { return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1; }

  // A new order for each pass.
  void NewPass() { key_ = key_ * 0x9E3779B97F4A7C15ull + 1; }

  // Odd multipliers and right xorshifts are each a bijection modulo 2^k.
  uint64_t Mix(uint64_t x) const {
    const int shift = std::max(1, bits_ / 2);
    x = (x ^ key_) & mask_;
    x = (x * 0xBF58476D1CE4E5B9ull) & mask_;
    x ^= x >> shift;
    x = (x * 0x94D049BB133111EBull) & mask_;
    x ^= x >> shift;
    return x;
  }

  uint64_t n_;
  int bits_;
  uint64_t mask_;
  uint64_t key_;
  uint64_t counter_ = 0;
  bool started_ = false;
};

// Data that is not all zeroes, in case a layer below treats zeroes apart.
void FillPattern(char* buf, size_t len, uint64_t seed) {
  uint64_t x = seed | 1;
  for (size_t i = 0; i < len; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = static_cast<char>(x);
  }
}

// Latencies in a fixed-size log-linear histogram, as fio and HdrHistogram
// keep them, so a long job needs no more memory than a short one and
// nothing is allocated while it runs: values below 32 ns each have a bucket;
// above, every power of two is cut into 32 equal buckets, so a percentile is
// within 1/32 of the true value. The count, sum, min and max are exact.
class LatencyHistogram {
 public:
  void Add(uint64_t ns) {
    ++buckets_[Index(ns)];
    ++count_;
    sum_ += ns;
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double Mean() const {
    return count_ == 0 ? 0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }

  // The nearest-rank percentile (0 < p <= 1): the middle of the bucket
  // holding it, kept within [min, max] so that min <= p50 <= p99 <= max.
  uint64_t Percentile(double p) const {
    if (count_ == 0) return 0;
    const uint64_t rank = std::clamp<uint64_t>(
        static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_))), 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::clamp(Low(i) + (Width(i) - 1) / 2, min_, max_);
    }
    return max_;  // unreachable: the buckets add up to count_
  }

 private:
  static constexpr int kSubBits = 5;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  // Group 0 holds [0, 32) one value per bucket; group g >= 1 holds
  // [2^(g+4), 2^(g+5)) in 32 buckets of 2^(g-1): up to 2^64 in group 59.
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int shift = static_cast<int>(std::bit_width(v)) - 1 - kSubBits;  // >= 0
    return static_cast<size_t>(shift + 1) * kSub + static_cast<size_t>((v >> shift) - kSub);
  }
  static uint64_t Low(size_t i) {
    const size_t group = i / kSub;
    if (group == 0) return i;
    return (kSub + i % kSub) << (group - 1);
  }
  static uint64_t Width(size_t i) {
    const size_t group = i / kSub;
    return group == 0 ? 1 : uint64_t{1} << (group - 1);
  }

  std::array<uint64_t, kBuckets> buckets_ = {};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;  // ns: --runtime's cap keeps it far from overflowing
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

struct Results {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t elapsed_ns = 0;
  LatencyHistogram lat;
  // Through zfiled (0 embedded): the bytes the job moved by copying them
  // through the session's shared region, and those the daemon moved in
  // the caller's registered buffer itself.
  uint64_t copied_bytes = 0;
  uint64_t zero_copy_bytes = 0;
};

// The job's I/O buffer: aligned memory, or with --regbuf one from
// zfile_buf_alloc, which a client of zfiled does not copy.
class JobBuffer {
 public:
  static Result<JobBuffer> Allocate(zfile_vol* vol, size_t size, bool registered) {
    JobBuffer b;
    if (!registered) {
      ZF_ASSIGN_OR_RETURN(b.plain_, AllocateBuffer(size));
      b.data_ = b.plain_.get();
      return b;
    }
    void* p = nullptr;
    const int err = zfile_buf_alloc(vol, size, &p);
    if (err != 0) return ApiError(err).WithContext("--regbuf");
    b.vol_ = vol;
    b.data_ = static_cast<char*>(p);
    return b;
  }
  JobBuffer(JobBuffer&& other) noexcept
      : plain_(std::move(other.plain_)),
        vol_(std::exchange(other.vol_, nullptr)),
        data_(std::exchange(other.data_, nullptr)) {}
  JobBuffer& operator=(JobBuffer&&) = delete;
  ~JobBuffer() {
    if (vol_ != nullptr) static_cast<void>(zfile_buf_free(vol_, data_));
  }

  char* get() const { return data_; }

 private:
  JobBuffer() = default;
  AlignedBuffer plain_;
  zfile_vol* vol_ = nullptr;  // set: data_ is a registered buffer of it
  char* data_ = nullptr;
};

double PerSecond(double count, uint64_t ns) {
  return ns == 0 ? 0 : count * 1e9 / static_cast<double>(ns);
}

Result<Results> RunJob(const BenchOptions& opt, const std::string& path, const Plan& plan,
                       const api::Vol& vol, api::File& file) {
  const size_t bs = static_cast<size_t>(opt.bs);
  ZF_ASSIGN_OR_RETURN(JobBuffer buf, JobBuffer::Allocate(vol.get(), bs, opt.regbuf));
  FillPattern(buf.get(), bs, opt.seed);
  const bool write = IsWrite(plan.rw);
  // Through zfiled, a registered buffer is handed to the daemon on its
  // first use; a call of 0 bytes does that here, untimed, so that the first
  // I/O is not charged with it.
  if (opt.regbuf) {
    const uint64_t off = plan.start;
    const ssize_t n = write ? file.PWrite(buf.get(), 0, off) : file.PRead(buf.get(), 0, off);
    if (n < 0) return ApiError(static_cast<int>(n)).WithContext("--regbuf");
  }
  const ClientCopyCounters copies_before = ClientCopyCountersNow();
  BlockShuffle shuffle(plan.blocks, opt.seed);
  const auto runtime =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.runtime));

  Results r;
  const Clock::time_point t0 = Clock::now();
  Clock::time_point now = t0;
  for (uint64_t i = 0; i < plan.ops; ++i) {
    const uint64_t block = IsRandom(plan.rw) ? shuffle.Next() : i % plan.blocks;
    const uint64_t off = plan.start + block * opt.bs;
    const Clock::time_point before = Clock::now();
    const ssize_t n = write ? file.PWrite(buf.get(), bs, off) : file.PRead(buf.get(), bs, off);
    now = Clock::now();
    if (n < 0) {
      const Status error = ApiError(static_cast<int>(n));
      return Status(error.err(), fmt::format("{} (at offset {}, after {} I/Os of {} bytes)",
                                             error.message(), off, r.ops, r.bytes));
    }
    if (static_cast<size_t>(n) != bs) {
      return Status(EIO, fmt::format("{}: short {} at offset {}: {} of {} bytes (after {} I/Os)",
                                     path, write ? "write" : "read", off, n, bs, r.ops));
    }
    r.lat.Add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - before).count()));
    ++r.ops;
    r.bytes += bs;
    if (opt.runtime > 0 && now - t0 >= runtime) break;
  }
  r.elapsed_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0).count());
  const ClientCopyCounters copies = ClientCopyCountersNow();
  r.copied_bytes = copies.copied_bytes - copies_before.copied_bytes;
  r.zero_copy_bytes = copies.zero_copy_bytes - copies_before.zero_copy_bytes;
  return r;
}

void PrintText(const BenchOptions& opt, const std::string& path, const Results& r) {
  const double mib_s = PerSecond(static_cast<double>(r.bytes), r.elapsed_ns) / (1 << 20);
  const auto us = [](double ns) { return ns / 1000.0; };
  std::string out;
  fmt::format_to(std::back_inserter(out), "{}: {}, bs {}, {}{}, queue depth 1\n", path, opt.rw,
                 FormatSize(opt.bs), opt.direct ? "direct" : "buffered",
                 opt.regbuf ? ", registered buffer" : "");
  fmt::format_to(std::back_inserter(out), "  done:         {} I/Os, {} bytes ({}) in {:.3f} s\n",
                 r.ops, r.bytes, FormatSize(r.bytes), static_cast<double>(r.elapsed_ns) / 1e9);
  fmt::format_to(std::back_inserter(out), "  bandwidth:    {:.1f} MiB/s ({:.1f} MB/s)\n", mib_s,
                 PerSecond(static_cast<double>(r.bytes), r.elapsed_ns) / 1e6);
  fmt::format_to(std::back_inserter(out), "  iops:         {:.1f}\n",
                 PerSecond(static_cast<double>(r.ops), r.elapsed_ns));
  fmt::format_to(std::back_inserter(out),
                 "  latency (us): mean {:.1f}, p50 {:.1f}, p99 {:.1f}, min {:.1f}, max {:.1f}\n",
                 us(r.lat.Mean()), us(static_cast<double>(r.lat.Percentile(0.5))),
                 us(static_cast<double>(r.lat.Percentile(0.99))),
                 us(static_cast<double>(r.lat.min())), us(static_cast<double>(r.lat.max())));
  if (r.copied_bytes != 0 || r.zero_copy_bytes != 0) {
    fmt::format_to(std::back_inserter(out),
                   "  zfiled:       {} bytes copied through the shared region, {} moved without a "
                   "copy\n",
                   r.copied_bytes, r.zero_copy_bytes);
  }
  fmt::print("{}", out);
}

void PrintJson(const BenchOptions& opt, const std::string& path, const Results& r) {
  JsonWriter json;
  json.BeginObject();
  json.Key("file").String(path);
  json.Key("rw").String(opt.rw);
  json.Key("bs").Uint(opt.bs);
  json.Key("direct").Bool(opt.direct);
  json.Key("registered_buffer").Bool(opt.regbuf);
  json.Key("queue_depth").Uint(1);
  json.Key("ops").Uint(r.ops);
  json.Key("bytes").Uint(r.bytes);
  json.Key("elapsed_ns").Uint(r.elapsed_ns);
  json.Key("bw_bytes").Double(PerSecond(static_cast<double>(r.bytes), r.elapsed_ns));
  json.Key("iops").Double(PerSecond(static_cast<double>(r.ops), r.elapsed_ns));
  json.Key("lat_ns").BeginObject();
  json.Key("mean").Double(r.lat.Mean());
  json.Key("p50").Uint(r.lat.Percentile(0.5));
  json.Key("p99").Uint(r.lat.Percentile(0.99));
  json.Key("min").Uint(r.lat.min());
  json.Key("max").Uint(r.lat.max());
  json.EndObject();
  json.Key("copied_bytes").Uint(r.copied_bytes);
  json.Key("zero_copy_bytes").Uint(r.zero_copy_bytes);
  json.EndObject();
  fmt::print("{}", json.Finish());
}

Status RunBench(const BenchOptions& opt) {
  const std::string path = NormalizePath(opt.path);
  ZF_ASSIGN_OR_RETURN(api::Vol vol, OpenVolume(opt.target));
  struct zfile_stat st = {};
  ZF_RETURN_IF_ERROR(Check(vol.Stat(path.c_str(), &st)));
  ZF_ASSIGN_OR_RETURN(Plan plan, MakePlan(opt, path, st));
  const int flags = (IsWrite(plan.rw) ? O_WRONLY : O_RDONLY) | (opt.direct ? O_DIRECT : 0);
  ZF_ASSIGN_OR_RETURN(api::File file, OpenFile(vol, path, flags));
  ZF_ASSIGN_OR_RETURN(Results results, RunJob(opt, path, plan, vol, file));
  ZF_RETURN_IF_ERROR(CloseAll(&file, &vol));
  if (opt.json) {
    PrintJson(opt, path, results);
  } else {
    PrintText(opt, path, results);
  }
  return Status();
}

CLI::Validator RwValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        for (const RwName& r : kRwNames) {
          if (r.name == text) return std::string();
        }
        return text + ": unknown workload; give write, read, randread or randwrite";
      },
      "", "rw");
}

// CLI11's NonNegativeNumber would answer -1 with the range up to DBL_MAX
// written out in full.
CLI::Validator SecondsValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(value) || value < 0 ||
            value > kMaxRuntimeSeconds) {
          return text + ": give a number of seconds from 0 to 1000000 (e.g. 5, 0.5)";
        }
        return std::string();
      },
      "", "seconds");
}

// CLI11 would take -1 for an unsigned option and wrap it round.
CLI::Validator UnsignedValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
          return text + ": give a whole number, 0 or more";
        }
        return std::string();
      },
      "", "unsigned");
}

}  // namespace

void RegisterBenchCommand(CLI::App* app, CommandTable* table) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd = app->add_subcommand(
      "bench",
      "Time a fio-like job on one file through libzfile: bandwidth, IOPS, latency (queue depth 1)");
  cmd->add_option("--file", opt->path, "The file to work on (cnv/N, seq/N)")
      ->required()
      ->type_name("PATH");
  AddVolumeOptions(cmd, &opt->target);
  cmd->add_option("--rw", opt->rw,
                  "write (sequential; a sequential file from its write pointer), read, randread, "
                  "randwrite (conventional files only)")
      ->type_name("WORKLOAD")
      ->transform(RwValidator())
      ->default_val("read");
  cmd->add_option("--bs", opt->bs, "Bytes per I/O (default 4K)")
      ->transform(SizeValidator())
      ->type_name("SIZE");
  opt->size_option =
      cmd->add_option("--size", opt->size,
                      "Bytes of the file to work on (default: the file's size; for writes to a "
                      "sequential file, what is left of its zone)")
          ->transform(SizeValidator())
          ->type_name("SIZE");
  opt->io_limit_option =
      cmd->add_option("--io-limit", opt->io_limit,
                      "Stop after this many bytes, rounded down to whole --bs blocks (default: "
                      "--size once; reads and writes to a conventional file go round again)")
          ->transform(SizeValidator())
          ->type_name("SIZE");
  cmd->add_option("--runtime", opt->runtime,
                  "Stop after this many seconds, if sooner (at most 1000000)")
      ->check(SecondsValidator())
      ->type_name("SECONDS");
  cmd->add_flag("--direct", opt->direct,
                "Open with O_DIRECT (--bs must be a multiple of the block size)");
  cmd->add_flag("--regbuf", opt->regbuf,
                "Do the I/O from a buffer of zfile_buf_alloc: through zfiled, the daemon moves "
                "the data in it itself, with no copy through the shared region");
  cmd->add_option("--seed", opt->seed, "Seed of the random order and of the data written")
      ->check(UnsignedValidator())
      ->type_name("N");
  cmd->add_flag("--json", opt->json,
                "JSON object: ops, bytes, elapsed_ns, bw_bytes (per second), iops, lat_ns (mean, "
                "p50, p99, min, max; percentiles within 1/32), copied_bytes and zero_copy_bytes "
                "(through zfiled; 0 embedded)");
  cmd->footer(
      "One I/O at a time (queue depth 1, as fio's psync engine), timed from before the first to "
      "after\nthe last; opening and closing the volume are not timed. Random workloads touch "
      "each block of\nthe region once per pass. As fio by default, writes end with no fsync. "
      "Writes change the\nfile: a sequential file grows by what was written.\n\n"
      "Examples:\n"
      "  zfile bench --file seq/0 --rw write --bs 1M --direct --device emu:/var/tmp/zdev\n"
      "  zfile bench --file cnv/0 --rw randread --bs 4K --direct --runtime 5 --volume data "
      "--json");
  table->Add(cmd, [opt] { return RunBench(*opt); });
}

}  // namespace zfile::cli
