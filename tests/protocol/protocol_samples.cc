#include "protocol_samples.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <string>

#include "protocol/doorbell.h"
#include "protocol/wire.h"

namespace zfile::protocol::testing {
namespace {

constexpr uint64_t kShm = 1 << 20;
constexpr uint32_t kPage = 64 * 1024;
constexpr uint64_t kArena = 256ull << 20;

VolumeInfo SampleVolume() {
  VolumeInfo v;
  v.nr_cnv_files = 1;
  v.nr_seq_files = 123;
  v.block_size = 4096;
  v.max_open = 14;
  v.max_active = 14;
  v.open_zones = 3;
  v.active_zones = 5;
  v.read_only = true;
  v.zone_size = 256ull << 20;
  v.zone_capacity = 192ull << 20;
  v.label = std::string(kMaxLabelLen, 'L');
  v.uuid = "01234567-89ab-cdef-0123-456789abcdef";
  return v;
}

StatInfo SampleStat() {
  StatInfo s;
  s.size = 12345 * 4096;
  s.max_size = 192ull << 20;
  s.zone_start = 7 * (256ull << 20);
  s.zone_len = 256ull << 20;
  s.ino = 42;
  s.blocks = 12345 * 8;
  s.block_size = 4096;
  s.mode = 0100640;
  s.uid = 1000;
  s.gid = UINT32_MAX;
  s.type = 2;
  s.cond = 0xE;
  return s;
}

template <typename R>
R Failed(int err, std::string message) {
  return ErrorReply<R>(Status(err, std::move(message)));
}

}  // namespace

SessionLimits SampleLimits() {
  SessionLimits limits;
  limits.shm_size = kShm;
  limits.cache_page_size = kPage;
  limits.cache_arena_size = kArena;
  // Registered buffers 1 (the region's size) and 3 (8 KiB); 2 is not
  // registered. fuzz/protocol_fuzz.cc's limits say the same.
  static constexpr uint64_t kBufSizes[] = {kShm, 0, 8192};
  limits.buf_sizes = kBufSizes;
  return limits;
}

std::vector<Request> SampleRequests() {
  std::vector<Request> out;
  out.push_back(HelloRequest{kProtocolVersion, "data", kShm});
  out.push_back(HelloRequest{7, std::string(kMaxVolumeNameLen, 'v'), kMaxShmSize});
  out.push_back(HelloRequest{1, "", kMinShmSize});
  out.push_back(VolInfoRequest{});
  out.push_back(VolStatsRequest{});
  out.push_back(VolSyncRequest{});
  out.push_back(OpenRequest{"seq/12", O_WRONLY | O_DIRECT | O_APPEND});
  out.push_back(OpenRequest{std::string(kMaxPathLen, 'p'), -1});
  out.push_back(OpenRequest{"", 0});
  out.push_back(CloseRequest{UINT64_MAX});
  out.push_back(PreadRequest{1, 4096, 65536, 0, 0});
  out.push_back(PreadRequest{2, UINT64_MAX, kShm, -1, 0});  // the whole region
  out.push_back(PwriteRequest{3, 0, 4096, 0x10, kShm - 4096});
  out.push_back(PwriteRequest{3, 8192, 0, 0, kShm});  // empty, at the very end
  out.push_back(AppendRequest{4, 1 << 19, 1 << 19});
  out.push_back(FsyncRequest{5});
  out.push_back(FtruncateRequest{6, 192ull << 20});
  out.push_back(FstatRequest{7});
  out.push_back(StatRequest{"cnv"});
  out.push_back(StatRequest{""});
  out.push_back(ChmodRequest{"seq/0", 0600});
  out.push_back(ChownRequest{"seq/1", UINT32_MAX, 100});
  out.push_back(MapRequest{8, 65536 + 17, 1 << 20});
  out.push_back(UnmapRequest{UINT64_MAX - 1});
  out.push_back(DoorbellRequest{kDoorbellRegionSize});
  out.push_back(PreadRequest{1, 0, kShm, 0, BufShmOffset(1, 0)});  // all of buffer 1
  out.push_back(PwriteRequest{2, 4096, 4096, 0, BufShmOffset(3, 4096)});
  out.push_back(AppendRequest{4, 0, BufShmOffset(3, 8192)});  // empty, at buffer 3's end
  out.push_back(RegisterBufRequest{kShm});
  out.push_back(RegisterBufRequest{kMaxShmSize});
  out.push_back(UnregisterBufRequest{kMaxRegisteredBufs});
  return out;
}

std::vector<Reply> SampleReplies() {
  std::vector<Reply> out;

  HelloReply hello;
  hello.shm_size = kShm;
  hello.has_cache_fd = true;
  hello.cache_page_size = kPage;
  hello.cache_arena_size = kArena;
  hello.volume = SampleVolume();
  out.push_back(hello);
  HelloReply bare;  // a cache without an fd: no views for clients
  bare.result = 0;
  bare.message = "the page cache has no memfd: mapped views are not available";
  bare.protocol_version = 3;
  bare.shm_size = kMinShmSize;
  out.push_back(bare);
  out.push_back(Failed<HelloReply>(ENOENT, "no volume \"nope\" in /etc/zfiled/zfiled.yaml"));

  VolInfoReply info;
  info.volume = SampleVolume();
  out.push_back(info);
  VolInfoReply empty_info;  // all zeros, empty strings
  out.push_back(empty_info);
  out.push_back(Failed<VolInfoReply>(EIO, "volume is shutting down"));

  VolStatsReply stats;
  stats.json = R"({"reads":1,"writes":2,"dio_fallbacks":0})";
  out.push_back(stats);
  VolStatsReply big_stats;
  big_stats.json = std::string(kMaxStatsJsonLen, ' ');
  out.push_back(big_stats);
  out.push_back(Failed<VolStatsReply>(ERANGE, "statistics do not fit"));

  out.push_back(VolSyncReply{});
  out.push_back(Failed<VolSyncReply>(EIO, "seq/3: write-back failed"));

  OpenReply open;
  open.handle = 99;
  out.push_back(open);
  out.push_back(Failed<OpenReply>(EACCES, "seq/3: permission denied for uid 1000"));
  out.push_back(Failed<OpenReply>(EINVAL, std::string(kMaxMessageLen, 'm')));

  out.push_back(Failed<CloseReply>(EBADF, "handle 7 is not open"));
  out.push_back(CloseReply{});

  PreadReply pread;
  pread.result = kShm;
  out.push_back(pread);
  out.push_back(Failed<PreadReply>(EAGAIN, "RWF_NOWAIT read would wait for the device"));

  PwriteReply pwrite;
  pwrite.result = 4096;
  out.push_back(pwrite);
  out.push_back(Failed<PwriteReply>(EFBIG, "seq/2: write past the zone capacity"));

  AppendReply append;
  append.result = 1 << 19;
  append.offset = UINT64_MAX - (1 << 19);
  out.push_back(append);
  out.push_back(Failed<AppendReply>(kMaxErrno, "the largest errno"));

  out.push_back(FsyncReply{});
  out.push_back(Failed<FsyncReply>(EIO, "zone 4 went offline"));
  out.push_back(FtruncateReply{});
  out.push_back(Failed<FtruncateReply>(EPERM, "seq/4: truncate to 5 is neither 0 nor capacity"));

  FstatReply fstat;
  fstat.stat = SampleStat();
  out.push_back(fstat);
  out.push_back(Failed<FstatReply>(EBADF, "handle 9 is not open"));
  StatReply stat;
  stat.stat = SampleStat();
  stat.stat.type = 3;
  stat.stat.cond = 0;
  out.push_back(stat);
  out.push_back(Failed<StatReply>(ENOENT, "seq/999: no such file"));

  out.push_back(ChmodReply{});
  out.push_back(Failed<ChmodReply>(EPERM, "only the owner or root may chmod"));
  out.push_back(ChownReply{});
  out.push_back(Failed<ChownReply>(EPERM, "only root may chown"));

  MapReply map;
  map.view_id = 1;
  map.start = 17;
  map.extents = {{0, kPage}, {kArena - 2 * kPage, 2 * kPage}, {5 * kPage, kPage}};
  out.push_back(map);
  MapReply big_map;
  big_map.view_id = UINT64_MAX;
  big_map.start = kPage - 1;
  // As scattered as a reply can be: single pages in descending order.
  for (size_t i = 0; i < kMaxMapExtents; ++i) {
    big_map.extents.push_back({(kMaxMapExtents - 1 - i) * kPage, kPage});
  }
  out.push_back(big_map);
  out.push_back(Failed<MapReply>(ENOMEM, "views may pin at most half of the page cache"));

  out.push_back(UnmapReply{});
  out.push_back(Failed<UnmapReply>(EINVAL, "view 5 does not exist"));
  out.push_back(DoorbellReply{});
  out.push_back(Failed<DoorbellReply>(EPROTO, "a second DOORBELL"));
  RegisterBufReply reg;
  reg.buf_id = kMaxRegisteredBufs;
  out.push_back(reg);
  out.push_back(Failed<RegisterBufReply>(ENOSPC, "64 buffers registered, the limit per session"));
  out.push_back(UnregisterBufReply{});
  out.push_back(Failed<UnregisterBufReply>(EINVAL, "no buffer has id 9"));
  return out;
}

std::vector<std::vector<uint8_t>> SampleFrames() {
  std::vector<std::vector<uint8_t>> out;
  uint64_t id = 1;
  for (const Request& r : SampleRequests()) {
    auto frame = EncodeRequest(id++, r);
    if (!frame.ok()) std::abort();  // the samples are valid by construction
    out.push_back(std::move(frame).value());
  }
  for (const Reply& r : SampleReplies()) {
    auto frame = EncodeReply(id++ * 0x0101010101ull, r);
    if (!frame.ok()) std::abort();
    out.push_back(std::move(frame).value());
  }
  return out;
}

std::vector<uint8_t> PickSample(const std::vector<std::vector<uint8_t>>& samples,
                                std::mt19937_64& rng) {
  std::vector<uint8_t> frame = samples[rng() % samples.size()];
  constexpr size_t kCut = 4096;
  if (frame.size() > kCut && rng() % 32 != 0) frame.resize(rng() % kCut);
  return frame;
}

void FixPayloadSize(std::vector<uint8_t>& frame) {
  if (frame.size() < kFrameHeaderSize) return;
  StoreLe32(frame.data() + kPayloadSizeOffset,
            static_cast<uint32_t>(frame.size() - kFrameHeaderSize));
}

void Mutate(std::vector<uint8_t>& frame, std::mt19937_64& rng) {
  static constexpr uint64_t kInteresting[] = {0,
                                              1,
                                              2,
                                              0x7f,
                                              0x80,
                                              0xff,
                                              4095,
                                              4096,
                                              4097,
                                              65536,
                                              65537,
                                              kMaxStatsJsonLen + 1,
                                              kMaxMapExtents + 1,
                                              0x7fffffff,
                                              0x80000000,
                                              0xffffffff,
                                              uint64_t{1} << 32,
                                              INT64_MAX,
                                              uint64_t{INT64_MAX} + 1,
                                              UINT64_MAX - 4095,
                                              UINT64_MAX};
  auto below = [&rng](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int round = 0; round < rounds; ++round) {
    switch (rng() % 8) {
      case 0:  // flip a bit
        if (!frame.empty()) frame[below(frame.size())] ^= static_cast<uint8_t>(1 << (rng() % 8));
        break;
      case 1:  // a random byte
        if (!frame.empty()) frame[below(frame.size())] = static_cast<uint8_t>(rng());
        break;
      case 2: {  // an interesting integer of 1, 2, 4 or 8 bytes
        const size_t width = size_t{1} << (rng() % 4);
        if (frame.size() < width) break;
        const uint64_t v = kInteresting[below(std::size(kInteresting))];
        const size_t at = below(frame.size() - width + 1);
        for (size_t i = 0; i < width; ++i) frame[at + i] = static_cast<uint8_t>(v >> (8 * i));
        break;
      }
      case 3: {  // insert random bytes
        const size_t at = below(frame.size() + 1);
        const size_t n = 1 + below(16);
        for (size_t i = 0; i < n; ++i) {
          frame.insert(frame.begin() + static_cast<ptrdiff_t>(at), static_cast<uint8_t>(rng()));
        }
        break;
      }
      case 4: {  // delete a few bytes
        if (frame.empty()) break;
        const size_t at = below(frame.size());
        const size_t n = std::min(frame.size() - at, 1 + below(16));
        frame.erase(frame.begin() + static_cast<ptrdiff_t>(at),
                    frame.begin() + static_cast<ptrdiff_t>(at + n));
        break;
      }
      case 5:  // truncate
        frame.resize(below(frame.size() + 1));
        break;
      case 6: {  // append garbage
        const size_t n = 1 + below(64);
        for (size_t i = 0; i < n; ++i) frame.push_back(static_cast<uint8_t>(rng()));
        break;
      }
      case 7:  // change the message type, keeping the payload
        if (frame.size() >= kFrameHeaderSize) {
          const uint16_t type = static_cast<uint16_t>(1 + rng() % kLastMessageType) |
                                static_cast<uint16_t>(rng() % 2 ? kReplyBit : 0);
          StoreLe16(frame.data() + kTypeOffset, type);
        }
        break;
    }
  }
  if (rng() % 2) FixPayloadSize(frame);
}

std::vector<uint8_t> RandomFrame(std::mt19937_64& rng) {
  std::vector<uint8_t> frame(rng() % 256);
  for (uint8_t& b : frame) b = static_cast<uint8_t>(rng());
  if (frame.size() >= kFrameHeaderSize && rng() % 4 != 0) {
    FrameHeader h;
    h.type = static_cast<MessageType>(1 + rng() % kLastMessageType);
    h.reply = rng() % 2 != 0;
    h.request_id = rng();
    h.payload_size = static_cast<uint32_t>(frame.size() - kFrameHeaderSize);
    h.fd_count = static_cast<uint8_t>(rng() % 4 == 0 ? 1 : 0);
    EncodeFrameHeader(h, frame);
  }
  return frame;
}

}  // namespace zfile::protocol::testing
