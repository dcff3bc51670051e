#!/usr/bin/env bash
# ls is under test here, not a way to list files:
# shellcheck disable=SC2012

# zfiled's FUSE front end (SPEC sections 4, 7, 9): the real zfiled with
# --mount on an emu device, used through the mount by standard tools (ls,
# stat, cat, dd, truncate, touch, rm, mv, mkdir, chmod, chown, df, fio), as
# kernel zonefs would be. Then SIGTERM (unmounts, exits 0) and kill -9 (a
# stale mount, detached by the next start).
#
#   fuse_test.sh PATH/TO/zfile PATH/TO/zfiled
#
# Exits 77 (skipped) where FUSE cannot be used: no /dev/fuse, or no right to
# mount (not root and no fusermount3).
NAME=fuse_test
ZFILED=${2:?usage: $NAME.sh PATH/TO/zfile PATH/TO/zfiled}
if [ ! -c /dev/fuse ] || [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then
  echo "$NAME: SKIP: /dev/fuse is missing or not usable (load the fuse module, install fuse3)"
  exit 77
fi
if [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null; then
  echo "$NAME: SKIP: not root and no fusermount3 (package fuse3) to mount with"
  exit 77
fi
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/../cli/lib.sh" "$@"

M=$TMP/mnt
D=$TMP/dev
U=emu:$D
S=$TMP/zfiled.sock
LOG=$TMP/zfiled.log
DAEMON_PID=
mkdir "$M"
# Others (the unprivileged user below) must reach the mount point.
chmod 0755 "$TMP"

# Never leave a daemon or a mount behind, and never rm -rf into a mount.
cleanup() {
  if [ -n "$DAEMON_PID" ]; then
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  if grep -qF " $M " /proc/self/mounts; then
    fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# start_daemon [URI]: runs zfiled with the mount (on $U by default);
# returns once it is ready (it says so after the mount and the socket are
# up).
start_daemon() {
  : >"$LOG"
  "$ZFILED" --device "${1:-$U}" --mount "$M" --socket "$S" --foreground 2>"$LOG" &
  DAEMON_PID=$!
  local _
  for _ in $(seq 1 200); do
    if grep -q "zfiled ready" "$LOG"; then return 0; fi
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      wait "$DAEMON_PID" || true
      DAEMON_PID=
      echo "$NAME: zfiled exited at start:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "$NAME: zfiled did not get ready within 10 s:" >&2
  cat "$LOG" >&2
  exit 1
}

mounted() { grep -qF " $M fuse.zfile " /proc/self/mounts; }

# sh_fails DESC PATTERN CMD...: the command must fail with PATTERN (the
# strerror text the tools print) on stderr.
sh_fails() {
  local desc=$1 pattern=$2
  shift 2
  set +e
  "$@" >/dev/null 2>"$TMP/stderr"
  local rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    fail "$desc: succeeded"
  elif ! grep -qF -- "$pattern" "$TMP/stderr"; then
    fail "$desc: no '$pattern' in: $(cat "$TMP/stderr")"
  else
    pass
  fi
}
# sh_ok DESC CMD...
sh_ok() {
  local desc=$1
  shift
  if "$@" >/dev/null 2>"$TMP/stderr"; then pass; else fail "$desc: $(cat "$TMP/stderr")"; fi
}

ok "emu create" emu create "$D" --size 256M --zone-size 16M --conv 2
ok "mkfs" mkfs "$U"
head -c 1M /dev/urandom >"$TMP/r1m"
head -c 4096 /dev/urandom >"$TMP/r4k"

start_daemon
eq "mounted" "$(mounted && echo yes)" "yes"

# --- the tree -------------------------------------------------------------------------
eq "root lists cnv and seq" "$(ls "$M" | tr '\n' ' ')" "cnv seq "
eq "cnv/ holds 0" "$(ls "$M/cnv" | tr '\n' ' ')" "0 "
eq "seq/ holds 0..13" "$(ls -v "$M/seq" | tr '\n' ' ')" "$(seq -s ' ' 0 13) "
# zonefs numbers a file's inode by its zone, the directories after them.
eq "cnv/0 inode, size, blocks, mode, owner" "$(stat -c '%i %s %b %a %u:%g %F' "$M/cnv/0")" \
  "1 16777216 32768 640 0:0 regular file"
eq "seq/0 inode, size, mode" "$(stat -c '%i %s %b %a' "$M/seq/0")" "2 0 0 640"
eq "seq/13 inode" "$(stat -c %i "$M/seq/13")" "15"
run stat seq/5 --volume default --socket "$S" --json
eq "st_ino as the engine numbers it" "$(stat -c %i "$M/seq/5")" "$(jqv .ino)"
eq "directories are 0555" "$(stat -c '%a %F' "$M/seq")" "555 directory"
eq "ls -i shows zonefs numbers" "$(ls -i "$M/seq" | awk '$2 == "3" {print $1}')" "5"

# statfs as zonefs: 15 zones of 4096 blocks, the conventional one full.
eq "statfs" "$(stat -f -c '%S %b %f %c %d %l' "$M")" "4096 61440 57344 15 0 16"

# --- reads and writes -----------------------------------------------------------------
sh_ok "buffered dd to seq/0" dd if="$TMP/r1m" of="$M/seq/0" bs=64k
eq "seq/0 size and blocks follow the write pointer" "$(stat -c '%s %b' "$M/seq/0")" "1048576 2048"
same "cat seq/0" <(cat "$M/seq/0") "$TMP/r1m"
sh_ok "O_DIRECT O_APPEND dd to seq/0" \
  dd if="$TMP/r1m" of="$M/seq/0" bs=128k oflag=direct,append conv=notrunc
eq "seq/0 grew" "$(stat -c %s "$M/seq/0")" "2097152"
same "second MiB of seq/0" <(tail -c 1M "$M/seq/0") "$TMP/r1m"
sh_ok "O_SYNC dd to seq/1" dd if="$TMP/r1m" of="$M/seq/1" bs=256k oflag=sync
same "seq/1" "$M/seq/1" "$TMP/r1m"
# counter NAME: the daemon's volume counter NAME (zfile stats).
counter() {
  run stats --volume default --socket "$S" --json
  jqv ".$1"
}
before=$(counter direct_write_bytes)
sh_ok "O_DIRECT dd to cnv/0" dd if="$TMP/r1m" of="$M/cnv/0" bs=1M seek=1 oflag=direct conv=notrunc
eq "O_DIRECT reached the engine's direct path" "$(($(counter direct_write_bytes) - before))" \
  "1048576"
same "cnv/0 second MiB" <(dd if="$M/cnv/0" bs=1M skip=1 count=1 iflag=direct 2>/dev/null) \
  "$TMP/r1m"
before=$(counter writethrough_writes)
sh_ok "O_SYNC dd to cnv/0" dd if="$TMP/r4k" of="$M/cnv/0" bs=4k seek=1 oflag=sync conv=notrunc
eq "O_SYNC reached the engine as write-through" \
  "$(($(counter writethrough_writes) > before ? 1 : 0))" "1"
same "cnv/0 block 1" <(dd if="$M/cnv/0" bs=4k skip=1 count=1 2>/dev/null) "$TMP/r4k"
before=$(counter buffered_write_bytes)
sh_ok "buffered dd to cnv/0" dd if="$TMP/r4k" of="$M/cnv/0" bs=4k seek=2 conv=notrunc
eq "a plain write is buffered in the engine" "$(($(counter buffered_write_bytes) - before))" "4096"

# --- zonefs's refusals ----------------------------------------------------------------
sh_fails "write not at the write pointer: EINVAL" "Invalid argument" \
  dd if="$TMP/r4k" of="$M/seq/0" bs=4k seek=3 conv=notrunc
sh_fails "unaligned sequential write: EINVAL" "Invalid argument" \
  dd if="$TMP/r4k" of="$M/seq/4" bs=100 count=1
sh_fails "O_APPEND on a conventional file: EINVAL" "Invalid argument" \
  dd if="$TMP/r4k" of="$M/cnv/0" bs=4k oflag=append conv=notrunc
sh_fails "truncate of a conventional file: EPERM" "Operation not permitted" \
  truncate -s 0 "$M/cnv/0"
sh_fails "truncate to another size: EPERM" "Operation not permitted" truncate -s 5M "$M/seq/1"
sh_ok "truncate to capacity finishes" truncate -s 16M "$M/seq/1"
eq "finished seq/1 is full" "$(stat -c %s "$M/seq/1")" "16777216"
sh_fails "write past capacity: EFBIG" "File too large" \
  dd if="$TMP/r4k" of="$M/seq/1" bs=4k oflag=append conv=notrunc
sh_ok "truncate to 0 resets" truncate -s 0 "$M/seq/1"
eq "reset seq/1 is empty" "$(stat -c '%s %b' "$M/seq/1")" "0 0"
sh_fails "create: EPERM" "Operation not permitted" touch "$M/seq/new"
sh_fails "unlink: EPERM" "Operation not permitted" rm -f "$M/seq/3"
sh_fails "rename: EPERM" "Operation not permitted" mv "$M/seq/3" "$M/seq/x"
sh_fails "mkdir: EPERM" "Operation not permitted" mkdir "$M/seq/d"
sh_fails "rmdir: EPERM" "Operation not permitted" rmdir "$M/seq"
sh_ok "touch of a file changes nothing" touch "$M/seq/3"

# --- chmod, chown and permissions -----------------------------------------------------
sh_ok "chmod" chmod 0604 "$M/seq/3"
sh_ok "chown" chown 12:34 "$M/seq/3"
eq "chmod/chown seen by stat" "$(stat -c '%a %u:%g' "$M/seq/3")" "604 12:34"
run stat seq/3 --volume default --socket "$S" --json
eq "chmod/chown reached the engine" "$(jqv '"\(.permissions) \(.uid):\(.gid)"')" "0604 12:34"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  sh_fails "others may not read a 0640 file" "Permission denied" "${nobody[@]}" cat "$M/seq/0"
  sh_ok "others may read a 0604 file" "${nobody[@]}" cat "$M/seq/3"
  sh_fails "others may not write it" "Permission denied" \
    "${nobody[@]}" dd if="$TMP/r4k" of="$M/seq/3" bs=4k conv=notrunc
  sh_fails "others may not chmod it" "Operation not permitted" "${nobody[@]}" chmod 0666 "$M/seq/3"
fi

# --- mappings: coherent with writes made through any path ---------------------------
if command -v python3 >/dev/null; then
  # Mappings are the one place the kernel caches file data. A write through
  # the daemon's socket (another path) must show in a private and in a
  # shared mapping (the notifier invalidates them shortly after the write);
  # a shared writable mapping of a conventional file writes back through the
  # engine (msync); one of a sequential file cannot (msync: EINVAL, the file
  # unchanged), since its write-back is not at the write pointer.
  head -c 4096 /dev/zero | tr '\0' 'Z' >"$TMP/z4k"
  set +e
  out=$(python3 - "$M" "$ZFILE" "$S" "$TMP/z4k" <<'EOF'
import mmap, os, subprocess, sys, time
mnt, zfile, sock, src = sys.argv[1:]
def wait_for(m, want):
    for _ in range(100):
        if m[4096:4100] == want:
            return True
        time.sleep(0.01)
    return False
fd = os.open(mnt + "/cnv/0", os.O_RDWR)
private = mmap.mmap(fd, 8192, mmap.MAP_PRIVATE, mmap.PROT_READ)
shared = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
print(private[4096:4100] != b"ZZZZ", shared[4096:4100] != b"ZZZZ")
subprocess.run([zfile, "write", "cnv/0", "--offset", "4096", "--from", src,
                "--volume", "default", "--socket", sock], check=True,
               stdout=subprocess.DEVNULL)
print(wait_for(private, b"ZZZZ"), wait_for(shared, b"ZZZZ"))
shared[4096:4100] = b"MMAP"
shared.flush()
got = subprocess.run([zfile, "cat", "cnv/0", "--volume", "default", "--socket", sock],
                     check=True, capture_output=True).stdout[4096:4100]
print(got == b"MMAP", wait_for(private, b"MMAP"))
sfd = os.open(mnt + "/seq/0", os.O_RDWR)
before = os.pread(sfd, 4096, 0)
seq = mmap.mmap(sfd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
seq[0:4] = b"SEQ!"
try:
    seq.flush()
    print("seq-msync-ok")
except OSError as e:
    print("seq-msync-" + ("EINVAL" if e.errno == 22 else str(e.errno)))
print(os.pread(sfd, 4096, 0) == before)
EOF
  )
  set -e
  eq "mappings: private and shared" "$(sed -n 1p <<<"$out")" "True True"
  eq "mappings see a write made through the socket" "$(sed -n 2p <<<"$out")" "True True"
  eq "a shared mapping writes back through the engine" "$(sed -n 3p <<<"$out")" "True True"
  eq "a sequential file's shared mapping cannot write back" \
    "$(sed -n 4,5p <<<"$out" | tr '\n' ' ')" "seq-msync-EINVAL True "
fi

# --- fio with verification ------------------------------------------------------------
if command -v fio >/dev/null; then
  sh_ok "fio randwrite verify=crc32c on cnv/0" fio --name=verify --filename="$M/cnv/0" \
    --rw=randwrite --bs=4k --size=8M --direct=1 --ioengine=psync --verify=crc32c \
    --do_verify=1 --numjobs=1 --verify_state_save=0
  # Four writers at once on one file (FOPEN_PARALLEL_DIRECT_WRITES: the
  # kernel lets them in together), each on its own range, each verified.
  sh_ok "fio 4 parallel direct writers verify=crc32c on cnv/0" fio --name=par \
    --filename="$M/cnv/0" --rw=randwrite --bs=16k --size=2M --offset_increment=2M \
    --numjobs=4 --direct=1 --ioengine=psync --verify=crc32c --do_verify=1 \
    --verify_state_save=0
  sh_ok "fio parallel direct reads" fio --name=reads --filename="$M/cnv/0" --rw=randread \
    --bs=4k --size=8M --direct=1 --ioengine=psync --numjobs=4 --runtime=1 --time_based
fi

# --- SIGTERM: unmount and exit 0; the data stays -------------------------------------
exec 7<"$M/seq/0"  # a file still open at SIGTERM must not stop the unmount
kill -TERM "$DAEMON_PID"
set +e
wait "$DAEMON_PID"
status=$?
set -e
DAEMON_PID=
exec 7<&-
eq "SIGTERM exits 0" "$status" "0"
eq "SIGTERM unmounted" "$(mounted && echo mounted || echo gone)" "gone"

start_daemon
same "seq/0 after a restart" <(head -c 1M "$M/seq/0") "$TMP/r1m"

# --- kill -9: a stale mount, cleaned up by the next start --------------------------------
{
  kill -KILL "$DAEMON_PID"
  wait "$DAEMON_PID" || true
} 2>/dev/null  # bash's "Killed" notice
DAEMON_PID=
sh_fails "kill -9 leaves a stale mount" "not connected" stat "$M"
start_daemon
has "the next start says it detached it" "$(cat "$LOG")" "stale FUSE mount"
eq "mounted again" "$(ls "$M" | tr '\n' ' ')" "cnv seq "
eq "one mount, not two" "$(grep -cF " $M " /proc/self/mounts)" "1"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "zfiled exited $? on the SIGTERM after the clean-up"
DAEMON_PID=

# --- the configuration's mount: key -----------------------------------------------
cat >"$TMP/zfiled.yaml" <<EOF
socket: {path: $S}
volumes:
  - {name: data, device: "$U", mount: $M}
EOF
: >"$LOG"
"$ZFILED" --config "$TMP/zfiled.yaml" --foreground 2>"$LOG" &
DAEMON_PID=$!
for _ in $(seq 1 200); do
  if grep -q "zfiled ready" "$LOG" || ! kill -0 "$DAEMON_PID" 2>/dev/null; then break; fi
  sleep 0.05
done
eq "--config with a mount: key mounts" "$(grep -F " $M " /proc/self/mounts | cut -d' ' -f1,3)" \
  "zfile:data fuse.zfile"
same "the data through it" <(head -c 1M "$M/seq/0") "$TMP/r1m"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "zfiled --config exited $? on SIGTERM: $(cat "$LOG")"
DAEMON_PID=

# --- unmounted from outside: the daemon carries on and stops cleanly ------------------
start_daemon
sh_ok "umount from outside" umount "$M"
sleep 0.2
run ls seq --volume default --socket "$S"
eq "still served on the socket" "$rc $(wc -l <<<"$out")" "0 14"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || fail "zfiled exited $? on SIGTERM after an outside umount: $(cat "$LOG")"
DAEMON_PID=
has "it says so" "$(cat "$LOG")" "unmounted from outside"

# --- bad mount points: a clear error, nothing left mounted --------------------------------
set +e
"$ZFILED" --device "$U" --mount "$TMP/none" --socket "$S" --foreground 2>"$TMP/stderr"
rc=$?
set -e
eq "a missing mount point fails" "$rc" "1"
has "and says which" "$(cat "$TMP/stderr")" "mount point $TMP/none"
set +e
"$ZFILED" --device "$U" --mount "$TMP/r4k" --socket "$S" --foreground 2>"$TMP/stderr"
rc=$?
set -e
eq "a file as mount point fails" "$rc" "1"
has "as not a directory" "$(cat "$TMP/stderr")" "not a directory"

# --- errors=remount-ro: an I/O error makes the mount read-only for writers -------------
# seq/6 is zone 8: its first block fails to write.
start_daemon "$U?fail_write=$((8 * 16 * 1024 * 1024))"
sh_fails "the injected write error" "Input/output error" \
  dd if="$TMP/r4k" of="$M/seq/6" bs=4k oflag=direct conv=notrunc
sh_fails "then writes are refused: EROFS" "Read-only file system" \
  dd if="$TMP/r4k" of="$M/cnv/0" bs=4k conv=notrunc
sh_fails "and truncate" "Read-only file system" truncate -s 0 "$M/seq/0"
same "reads still work" <(head -c 1M "$M/seq/0") "$TMP/r1m"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true  # the I/O error may make the exit status 1
DAEMON_PID=
eq "unmounted after the error" "$(mounted && echo mounted || echo gone)" "gone"

finish
