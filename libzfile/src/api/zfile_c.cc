// The C API (include/zfile/zfile.h) over a VolBackend (api/backend.h): the
// engine in this process, or a client of zfiled. Every entry point catches
// nothing and throws nothing: errors are Status values turned into a
// negative errno plus a thread-local message.
#include "zfile/zfile.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "api/backend.h"
#include "api/zfile_internal.h"
#include "client/client_backend.h"
#include "client/client_uri.h"

struct zfile_vol {
  std::unique_ptr<zfile::VolBackend> backend;
};

struct zfile_file {
  std::unique_ptr<zfile::FileBackend> backend;
};

// Outlives the file handle it was made through, not the volume.
struct zfile_view {
  std::unique_ptr<zfile::ViewBackend> backend;
};

namespace {

thread_local std::string last_error;

int Fail(const zfile::Status& s) {
  last_error = s.ToString();
  return -s.err();
}

int Fail(int err, std::string message) { return Fail(zfile::Status(err, std::move(message))); }

int Ok() {
  last_error.clear();
  return 0;
}

// 0 for OK, else the negative errno with the reason kept for
// zfile_last_error().
int Done(const zfile::Status& s) { return s.ok() ? Ok() : Fail(s); }

template <typename T>
ssize_t Count(const zfile::Result<T>& r) {
  if (!r.ok()) return Fail(r.status());
  last_error.clear();
  return static_cast<ssize_t>(*r);
}

void ToStat(const zfile::FileStat& in, struct zfile_stat* out) {
  std::memset(out, 0, sizeof(*out));
  out->size = in.size;
  out->max_size = in.max_size;
  out->zone_start = in.zone_start;
  out->zone_len = in.zone_len;
  out->ino = in.ino;
  out->blocks = in.blocks;
  out->block_size = in.block_size;
  out->mode = in.mode;
  out->uid = in.uid;
  out->gid = in.gid;
  out->type = (in.mode & 0170000) == 0040000            ? ZFILE_TYPE_DIR
              : in.kind == zfile::FileKind::kSequential ? ZFILE_TYPE_SEQ
                                                        : ZFILE_TYPE_CNV;
  out->cond = zfile::KernelCondition(in.cond);  // zfile_zone_cond's values
}

}  // namespace

extern "C" {

int zfile_vol_open(const char* uri, const char* options, zfile_vol** vol) {
  if (uri == nullptr || vol == nullptr) return Fail(EINVAL, "zfile_vol_open: NULL argument");
  *vol = nullptr;
  const char* opts = options == nullptr ? "" : options;
  // "zfiled:NAME" and "unix:PATH?volume=NAME" name a daemon's volume;
  // anything else is a device this process mounts itself.
  auto opened = zfile::IsClientUri(uri) ? zfile::OpenClientVolume(uri, opts)
                                        : zfile::OpenEmbeddedVolume(uri, opts);
  if (!opened.ok()) return Fail(opened.status());
  auto* v = new (std::nothrow) zfile_vol;
  if (v == nullptr) return Fail(ENOMEM, "out of memory");
  v->backend = std::move(opened).value();
  *vol = v;
  return Ok();
}

int zfile_vol_close(zfile_vol* vol) {
  if (vol == nullptr) return Fail(EINVAL, "zfile_vol_close: NULL volume");
  zfile::Status s = vol->backend->Close();
  // Refused (files open, views mapped): nothing happened, and the volume
  // stays usable.
  if (s.err() == EBUSY) return Fail(s);
  delete vol;
  return Done(s);
}

int zfile_vol_sync(zfile_vol* vol) {
  if (vol == nullptr) return Fail(EINVAL, "zfile_vol_sync: NULL volume");
  return Done(vol->backend->Sync());
}

int zfile_vol_info(zfile_vol* vol, struct zfile_vol_info* info) {
  if (vol == nullptr || info == nullptr) return Fail(EINVAL, "zfile_vol_info: NULL argument");
  auto got = vol->backend->Info();
  if (!got.ok()) return Fail(got.status());
  const zfile::VolumeInfo& v = *got;
  std::memset(info, 0, sizeof(*info));
  info->nr_cnv_files = v.nr_cnv_files;
  info->nr_seq_files = v.nr_seq_files;
  info->block_size = v.block_size;
  info->max_open = v.max_open;
  info->max_active = v.max_active;
  info->open_zones = v.open_zones;
  info->active_zones = v.active_zones;
  info->read_only = v.read_only ? 1 : 0;
  info->zone_size = v.zone_size;
  info->zone_capacity = v.zone_capacity;
  std::strncpy(info->label, v.label.c_str(), sizeof(info->label) - 1);
  std::strncpy(info->uuid, v.uuid.c_str(), sizeof(info->uuid) - 1);
  return Ok();
}

int zfile_vol_stats(zfile_vol* vol, char* json, size_t len) {
  if (vol == nullptr || json == nullptr) return Fail(EINVAL, "zfile_vol_stats: NULL argument");
  auto got = vol->backend->StatsJson();
  if (!got.ok()) return Fail(got.status());
  const std::string& s = *got;
  if (s.size() + 1 > len) {
    return Fail(ERANGE, "zfile_vol_stats: buffer of " + std::to_string(len) +
                            " bytes is too small (need " + std::to_string(s.size() + 1) + ")");
  }
  std::memcpy(json, s.c_str(), s.size() + 1);
  last_error.clear();
  return static_cast<int>(s.size());
}

int zfile_open(zfile_vol* vol, const char* path, int flags, zfile_file** file) {
  if (vol == nullptr || path == nullptr || file == nullptr) {
    return Fail(EINVAL, "zfile_open: NULL argument");
  }
  *file = nullptr;
  auto h = vol->backend->Open(path, flags);
  if (!h.ok()) return Fail(h.status());
  auto* f = new (std::nothrow) zfile_file;
  if (f == nullptr) return Fail(ENOMEM, "out of memory");
  f->backend = std::move(h).value();
  *file = f;
  return Ok();
}

int zfile_close(zfile_file* file) {
  if (file == nullptr) return Fail(EINVAL, "zfile_close: NULL file");
  delete file;
  return Ok();
}

ssize_t zfile_pread(zfile_file* file, void* buf, size_t len, uint64_t off) {
  return zfile_pread2(file, buf, len, off, 0);
}

ssize_t zfile_pwrite(zfile_file* file, const void* buf, size_t len, uint64_t off) {
  return zfile_pwrite2(file, buf, len, off, 0);
}

ssize_t zfile_pread2(zfile_file* file, void* buf, size_t len, uint64_t off, int rwf) {
  if (file == nullptr || (buf == nullptr && len != 0))
    return Fail(EINVAL, "zfile_pread: NULL argument");
  return Count(file->backend->PRead(buf, len, off, rwf));
}

ssize_t zfile_pwrite2(zfile_file* file, const void* buf, size_t len, uint64_t off, int rwf) {
  if (file == nullptr || (buf == nullptr && len != 0))
    return Fail(EINVAL, "zfile_pwrite: NULL argument");
  return Count(file->backend->PWrite(buf, len, off, rwf));
}

ssize_t zfile_append(zfile_file* file, const void* buf, size_t len, uint64_t* off) {
  if (file == nullptr || (buf == nullptr && len != 0))
    return Fail(EINVAL, "zfile_append: NULL argument");
  uint64_t landed = 0;
  auto r = file->backend->Append(buf, len, &landed);
  if (r.ok() && off != nullptr) *off = landed;
  return Count(r);
}

int zfile_fsync(zfile_file* file) {
  if (file == nullptr) return Fail(EINVAL, "zfile_fsync: NULL file");
  return Done(file->backend->Fsync());
}

int zfile_ftruncate(zfile_file* file, uint64_t size) {
  if (file == nullptr) return Fail(EINVAL, "zfile_ftruncate: NULL file");
  return Done(file->backend->Truncate(size));
}

int zfile_fstat(zfile_file* file, struct zfile_stat* st) {
  if (file == nullptr || st == nullptr) return Fail(EINVAL, "zfile_fstat: NULL argument");
  zfile::FileStat fs;
  zfile::Status s = file->backend->Stat(&fs);
  if (!s.ok()) return Fail(s);
  ToStat(fs, st);
  return Ok();
}

int zfile_stat(zfile_vol* vol, const char* path, struct zfile_stat* st) {
  if (vol == nullptr || path == nullptr || st == nullptr)
    return Fail(EINVAL, "zfile_stat: NULL argument");
  zfile::FileStat fs;
  zfile::Status s = vol->backend->Stat(path, &fs);
  if (!s.ok()) return Fail(s);
  ToStat(fs, st);
  return Ok();
}

int zfile_chmod(zfile_vol* vol, const char* path, uint32_t mode) {
  if (vol == nullptr || path == nullptr) return Fail(EINVAL, "zfile_chmod: NULL argument");
  return Done(vol->backend->Chmod(path, mode));
}

int zfile_chown(zfile_vol* vol, const char* path, uint32_t uid, uint32_t gid) {
  if (vol == nullptr || path == nullptr) return Fail(EINVAL, "zfile_chown: NULL argument");
  return Done(vol->backend->Chown(path, uid, gid));
}

int zfile_map(zfile_file* file, uint64_t off, size_t len, const void** addr, zfile_view** view) {
  if (addr != nullptr) *addr = nullptr;
  if (view != nullptr) *view = nullptr;
  if (file == nullptr || addr == nullptr || view == nullptr) {
    return Fail(EINVAL, "zfile_map: NULL argument");
  }
  auto mapped = file->backend->Map(off, len);
  if (!mapped.ok()) return Fail(mapped.status());
  auto* v = new (std::nothrow) zfile_view;
  if (v == nullptr) return Fail(ENOMEM, "out of memory");
  v->backend = std::move(mapped).value();
  *addr = v->backend->data();
  *view = v;
  return Ok();
}

int zfile_unmap(zfile_view* view) {
  if (view == nullptr) return Fail(EINVAL, "zfile_unmap: NULL view");
  delete view;
  return Ok();
}

int zfile_buf_alloc(zfile_vol* vol, size_t size, void** buf) {
  if (buf != nullptr) *buf = nullptr;
  if (vol == nullptr || buf == nullptr) return Fail(EINVAL, "zfile_buf_alloc: NULL argument");
  auto got = vol->backend->BufAlloc(size);
  if (!got.ok()) return Fail(got.status());
  *buf = *got;
  return Ok();
}

int zfile_buf_free(zfile_vol* vol, void* buf) {
  if (vol == nullptr || buf == nullptr) return Fail(EINVAL, "zfile_buf_free: NULL argument");
  return Done(vol->backend->BufFree(buf));
}

const char* zfile_last_error(void) { return last_error.c_str(); }

int zfile_api_version(void) { return ZFILE_API_VERSION; }

}  // extern "C"

namespace zfile {
Volume* InternalVolume(zfile_vol* vol) { return vol == nullptr ? nullptr : vol->backend->engine(); }
}  // namespace zfile
