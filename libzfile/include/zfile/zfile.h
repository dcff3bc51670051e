/* libzfile: zonefs-style files on zoned block devices, in user space.
 *
 * All calls are thread-safe and return 0 or a count on success, a negative
 * errno on failure; zfile_last_error() then says why in words. Flags use the
 * libc values (O_*, RWF_*). See SPEC.md section 6 and README.md. */
#ifndef ZFILE_ZFILE_H_
#define ZFILE_ZFILE_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
/* zfile_stat and zfile_vol_info name both a struct and a function, as POSIX
 * stat does; C++'s -Wshadow would flag that in every user's build. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif

/* 2: zfile_buf_alloc, zfile_buf_free. */
#define ZFILE_API_VERSION 2

typedef struct zfile_vol zfile_vol;   /* a mounted volume */
typedef struct zfile_file zfile_file; /* an open file */
typedef struct zfile_view zfile_view; /* a pinned read-only view */

enum zfile_file_type {
  ZFILE_TYPE_CNV = 1, /* conventional zone(s): random writes, fixed size */
  ZFILE_TYPE_SEQ = 2, /* sequential zone: append-only, size = write pointer */
  ZFILE_TYPE_DIR = 3  /* the root, cnv/ and seq/ directories (zfile_stat) */
};

/* Zone conditions, with the kernel's BLK_ZONE_COND_* values. */
enum zfile_zone_cond {
  ZFILE_COND_NOT_WP = 0x0,
  ZFILE_COND_EMPTY = 0x1,
  ZFILE_COND_IMP_OPEN = 0x2,
  ZFILE_COND_EXP_OPEN = 0x3,
  ZFILE_COND_CLOSED = 0x4,
  ZFILE_COND_READONLY = 0xD,
  ZFILE_COND_FULL = 0xE,
  ZFILE_COND_OFFLINE = 0xF
};

struct zfile_stat {
  uint64_t size;       /* bytes; a sequential file's write pointer */
  uint64_t max_size;   /* zone capacity */
  uint64_t zone_start; /* byte offset of the file's zone on the device */
  uint64_t zone_len;   /* zone size (sum for aggregated conventional zones) */
  uint64_t ino;        /* as kernel zonefs numbers it */
  uint64_t blocks;     /* 512-byte units, as st_blocks */
  uint32_t block_size; /* logical block size */
  uint32_t mode;       /* S_IFREG/S_IFDIR | permission bits */
  uint32_t uid;
  uint32_t gid;
  int type; /* enum zfile_file_type */
  int cond; /* enum zfile_zone_cond of the file's zone */
};

struct zfile_vol_info {
  uint32_t nr_cnv_files;
  uint32_t nr_seq_files;
  uint32_t block_size;
  uint32_t max_open;     /* device limit, 0 = none */
  uint32_t max_active;   /* device limit, 0 = none */
  uint32_t open_zones;   /* currently open */
  uint32_t active_zones; /* currently active */
  int read_only;
  uint64_t zone_size;
  uint64_t zone_capacity;
  char label[65]; /* NUL-terminated */
  char uuid[37];  /* "8-4-4-4-12" */
};

/* Device URI (mem:, emu:DIR, zbd:/dev/X): embedded engine, exclusive owner
 * of the device. options: zonefs-style mount options, e.g.
 * "errors=zone-ro,explicit-open", or NULL; an unknown option is -EINVAL. */
int zfile_vol_open(const char *uri, const char *options, zfile_vol **vol);
/* Writes back dirty data and unmounts. -EBUSY, and nothing done, while
 * files of the volume are open, views mapped or buffers (zfile_buf_alloc)
 * allocated; any other result means the volume is gone. */
int zfile_vol_close(zfile_vol *vol);
int zfile_vol_sync(zfile_vol *vol);
int zfile_vol_info(zfile_vol *vol, struct zfile_vol_info *info);
/* Counters as a JSON object; returns its length (excluding the NUL), or
 * -ERANGE if len is too small (nothing is written then). */
int zfile_vol_stats(zfile_vol *vol, char *json, size_t len);

/* path "cnv/0", "seq/12"; O_RDONLY/O_WRONLY/O_RDWR, O_DIRECT, O_SYNC,
 * O_DSYNC, O_APPEND, O_TRUNC. */
int zfile_open(zfile_vol *vol, const char *path, int flags, zfile_file **file);
int zfile_close(zfile_file *file);
ssize_t zfile_pread(zfile_file *file, void *buf, size_t len, uint64_t off);
ssize_t zfile_pwrite(zfile_file *file, const void *buf, size_t len, uint64_t off);
ssize_t zfile_pread2(zfile_file *file, void *buf, size_t len, uint64_t off, int rwf);
ssize_t zfile_pwrite2(zfile_file *file, const void *buf, size_t len, uint64_t off, int rwf);
/* Sequential files: write at the write pointer; *off (if not NULL) gets
 * where the data landed. */
ssize_t zfile_append(zfile_file *file, const void *buf, size_t len, uint64_t *off);
int zfile_fsync(zfile_file *file);
int zfile_ftruncate(zfile_file *file, uint64_t size);
int zfile_fstat(zfile_file *file, struct zfile_stat *st);
/* Files and the directories "", "cnv", "seq". */
int zfile_stat(zfile_vol *vol, const char *path, struct zfile_stat *st);
/* Change the in-memory mode/owner, as zonefs does (not persistent).
 * uid/gid (uint32_t)-1: unchanged. */
int zfile_chmod(zfile_vol *vol, const char *path, uint32_t mode);
int zfile_chown(zfile_vol *vol, const char *path, uint32_t uid, uint32_t gid);

/* A read-only, pinned, zero-copy view of [off, off+len), which must lie
 * within the file (EINVAL), of a file open for reading (EACCES). Later
 * writes to the range show through it. While it exists the file's zone
 * cannot be reset or finished (EBUSY), nor the volume closed. Views may pin
 * at most half of the page cache (ENOMEM beyond). */
int zfile_map(zfile_file *file, uint64_t off, size_t len, const void **addr, zfile_view **view);
int zfile_unmap(zfile_view *view);

/* Registered buffers (API version 2). *buf gets size bytes (1 to 1 GiB,
 * -EINVAL otherwise) of zero-filled memory aligned to the page size, which
 * every I/O call of the volume's files takes (O_DIRECT included). Against
 * zfiled, a call whose memory lies wholly inside one such buffer moves its
 * data without a copy: the daemon reads and writes the buffer itself (any
 * other memory is copied through a shared region). Embedded, it is plain
 * memory. zfile_buf_free takes only a pointer zfile_buf_alloc returned for
 * this volume and not yet freed (-EINVAL, nothing done, otherwise); the
 * memory must not be in use by a call of another thread then. */
int zfile_buf_alloc(zfile_vol *vol, size_t size, void **buf);
int zfile_buf_free(zfile_vol *vol, void *buf);

/* ZFILE_API_VERSION of the library at run time. */
int zfile_api_version(void);

/* Why the last failing call on this thread failed, in words ("" if none). */
const char *zfile_last_error(void);

#ifdef __cplusplus
#pragma GCC diagnostic pop
}
#endif

#endif /* ZFILE_ZFILE_H_ */
