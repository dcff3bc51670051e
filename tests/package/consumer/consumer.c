/* A C program built against an installed libzfile with pkg-config, as a
 * user would build one (tests/package/package_test.sh drives it).
 *
 * Usage: consumer_c FORMATTED_URI UNFORMATTED_URI
 *
 * Mounts the formatted device, appends one block of 'A' to seq/0 (the test
 * reads it back with the installed zfile tool), and checks the C API's
 * error reporting on an unformatted device, a bad option and a bad path. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zfile/zfile.h>

static int failures;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "consumer.c:%d: check failed: %s: ", __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                          \
      fprintf(stderr, " (last error: '%s')\n", zfile_last_error());          \
      failures++;                                                            \
    }                                                                        \
  } while (0)

int main(int argc, char** argv) {
  zfile_vol* vol = NULL;
  zfile_file* file = NULL;
  struct zfile_vol_info info;
  struct zfile_stat st;
  char* block = NULL;
  char* back = NULL;
  char json[8192];
  uint64_t landed = 1;
  ssize_t n;
  int ret;

  if (argc != 3) {
    fprintf(stderr, "usage: %s FORMATTED_URI UNFORMATTED_URI\n", argv[0]);
    return 2;
  }
  CHECK(zfile_api_version() == ZFILE_API_VERSION, "library API version %d, header %d",
        zfile_api_version(), ZFILE_API_VERSION);

  /* No superblock: the mount fails with EINVAL and says why. */
  ret = zfile_vol_open(argv[2], NULL, &vol);
  CHECK(ret == -EINVAL && vol == NULL, "mounting an unformatted device returned %d", ret);
  CHECK(zfile_last_error()[0] != '\0', "no message for the failed mount");
  ret = zfile_vol_open(argv[1], "no_such_option", &vol);
  CHECK(ret == -EINVAL, "an unknown mount option returned %d", ret);
  CHECK(strstr(zfile_last_error(), "no_such_option") != NULL, "message does not name the option");

  ret = zfile_vol_open(argv[1], NULL, &vol);
  CHECK(ret == 0 && vol != NULL, "mount returned %d", ret);
  if (ret != 0) return 1;
  ret = zfile_vol_info(vol, &info);
  CHECK(ret == 0 && info.nr_seq_files > 0 && info.block_size >= 512, "vol_info returned %d", ret);

  block = malloc(info.block_size);
  back = malloc(info.block_size);
  if (block == NULL || back == NULL) return 1;
  memset(block, 'A', info.block_size);

  ret = zfile_open(vol, "seq/0", O_WRONLY, &file);
  CHECK(ret == 0, "open seq/0 for writing returned %d", ret);
  if (ret == 0) {
    n = zfile_append(file, block, info.block_size, &landed);
    CHECK(n == (ssize_t)info.block_size && landed == 0, "append returned %zd at %llu", n,
          (unsigned long long)landed);
    CHECK(zfile_close(file) == 0, "close");
  }
  ret = zfile_stat(vol, "seq/0", &st);
  CHECK(ret == 0 && st.size == info.block_size && st.type == ZFILE_TYPE_SEQ,
        "stat returned %d, size %llu, type %d", ret, (unsigned long long)st.size, st.type);

  ret = zfile_open(vol, "seq/0", O_RDONLY, &file);
  CHECK(ret == 0, "open seq/0 for reading returned %d", ret);
  if (ret == 0) {
    n = zfile_pread(file, back, info.block_size, 0);
    CHECK(n == (ssize_t)info.block_size && memcmp(block, back, info.block_size) == 0,
          "read back %zd bytes", n);
    CHECK(zfile_close(file) == 0, "close");
  }

  ret = zfile_stat(vol, "seq/999999", &st);
  CHECK(ret == -ENOENT && zfile_last_error()[0] != '\0', "stat of a missing file returned %d", ret);
  ret = zfile_vol_stats(vol, json, sizeof(json));
  CHECK(ret > 0 && json[0] == '{', "vol_stats returned %d", ret);

  ret = zfile_vol_close(vol);
  CHECK(ret == 0, "unmount returned %d", ret);
  free(block);
  free(back);
  if (failures != 0) return 1;
  printf("c consumer: ok\n");
  return 0;
}
