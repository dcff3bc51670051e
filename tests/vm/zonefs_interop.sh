#!/usr/bin/env bash
# Fact check of the on-disk format against the kernel: a device formatted by
# `zfile mkfs` mounts as kernel zonefs with the files, owners and mode the
# superblock asks for, and a superblock written by an independent encoder
# (here, Python with zlib, following the kernel's layout) is one that both
# the kernel and zfile accept. Corrupting one byte makes both refuse.
#
# Runs as root next to a zoned null_blk device with the zonefs module loaded:
#
#   tests/vm/run-in-vm.sh --modprobe zonefs -- \
#       tests/vm/zonefs_interop.sh build/default/tools/zfile
#
# The device is $ZFILE_VM_NULLBLK (or the second argument) and must have the
# harness's default geometry or any geometry with conventional zones: 8 MiB
# zones are not assumed, the counts are read from the device. A second
# null_blk device without conventional zones (sequential zone 0) is made
# through configfs when configfs is mounted, and removed at the end.
#
# Exit status: 0 when every check passed, 1 otherwise, 77 when the
# environment cannot run the checks (not root, no zoned device, no zonefs).
# Prints each check and "N passed, M failed" at the end. mkzonefs is not
# packaged in Debian 12, so the reverse check uses the Python encoder above
# instead of mkzonefs.
set -uo pipefail

ZFILE=$(realpath "${1:?usage: zonefs_interop.sh PATH/TO/zfile [DEVICE]}")
DEV=${2:-${ZFILE_VM_NULLBLK:-}}
SKIP=77

skip() {
  echo "zonefs_interop: SKIP: $*" >&2
  exit "$SKIP"
}
[ "$(id -u)" -eq 0 ] || skip "needs root (run it through tests/vm/run-in-vm.sh)"
[ -n "$DEV" ] && [ -b "$DEV" ] || skip "no zoned block device (set ZFILE_VM_NULLBLK or pass one)"
grep -qw zonefs /proc/filesystems || modprobe zonefs 2>/dev/null
grep -qw zonefs /proc/filesystems || skip "the kernel has no zonefs (run-in-vm.sh --modprobe zonefs)"
command -v python3 >/dev/null || skip "python3 is needed for the independent encoder"

MNT=$(mktemp -d "${TMPDIR:-/tmp}/zonefs-interop.XXXXXX")
NULLB1_CFG=
cleanup() {
  mountpoint -q "$MNT" && umount "$MNT"
  rmdir "$MNT" 2>/dev/null
  rm -f "$MNT.err"
  if [ -n "$NULLB1_CFG" ] && [ -d "$NULLB1_CFG" ]; then
    echo 0 >"$NULLB1_CFG/power" 2>/dev/null
    rmdir "$NULLB1_CFG"
  fi
}
trap cleanup EXIT

passed=0
failed=0
check() {  # check DESC ACTUAL EXPECTED
  if [ "$2" == "$3" ]; then
    passed=$((passed + 1))
    echo "ok: $1 ($2)"
  else
    failed=$((failed + 1))
    echo "FAIL: $1: got '$2', expected '$3'" >&2
  fi
}
contains() {  # contains DESC TEXT PATTERN
  if grep -qF -- "$3" <<<"$2"; then
    passed=$((passed + 1))
    echo "ok: $1"
  else
    failed=$((failed + 1))
    echo "FAIL: $1: no '$3' in: $2" >&2
  fi
}

# run ARGS...: runs zfile; $out is its stdout and stderr together, $zrc its
# exit status.
run() {
  out=$("$ZFILE" "$@" 2>&1)
  zrc=$?
}
zone_json() {  # zone_json URI ZONE FIELD
  "$ZFILE" report "$1" --zone "$2" --count 1 --json | python3 -c \
    "import json,sys; z=json.load(sys.stdin)[0]; print(z['$3'] if '$3' != 'used' else z['wp']-z['start'])"
}
ls_count() { find "$1" -mindepth 1 -maxdepth 1 | wc -l; }

URI=zbd:$DEV
BASE=$(basename "$DEV")
ZONE_BYTES=$(($(cat "/sys/block/$BASE/queue/chunk_sectors") * 512))
NR_ZONES=$(cat "/sys/block/$BASE/queue/nr_zones")
NR_CONV=$("$ZFILE" report "$URI" --json | python3 -c \
  "import json,sys; print(sum(1 for z in json.load(sys.stdin) if z['type']=='CONVENTIONAL'))")
[ "$NR_CONV" -ge 2 ] || skip "$DEV needs at least 2 conventional zones (has $NR_CONV)"
NR_SEQ=$((NR_ZONES - NR_CONV))
FIRST_SEQ=$NR_CONV
SEQ_CAP=$(zone_json "$URI" "$FIRST_SEQ" capacity)
echo "device $DEV: $NR_ZONES zones of $ZONE_BYTES bytes, $NR_CONV conventional; kernel $(uname -r)"

# --- 1. zfile mkfs -> kernel mount ------------------------------------------
"$ZFILE" reset "$URI" --all >/dev/null
run mkfs "$URI" -L interop -o uid=1234,gid=5678,perm=0604
check "zfile mkfs on a blank device" "$zrc" 0
echo "$out" | sed 's/^/    /'
UUID=$(sed -n 's/^  FS UUID: //p' <<<"$out")

if command -v blkid >/dev/null; then
  probe=$(blkid -p -o export "$DEV" 2>&1)
  contains "blkid sees TYPE=zonefs" "$probe" "TYPE=zonefs"
  contains "blkid sees the label" "$probe" "LABEL=interop"
  # util-linux reads a 32-byte label and the UUID at offset 40 (inside the
  # kernel's 64-byte label, zero here), so it reports no UUID at all.
  check "blkid reports no UUID (its zonefs layout differs from the kernel's)" \
    "$(grep -c '^UUID=' <<<"$probe")" 0
fi

if mount -t zonefs "$DEV" "$MNT" 2>"$MNT.err"; then
  check "kernel mounts the zfile-made superblock" mounted mounted
  check "cnv/ files (zone 0 is the superblock's)" "$(ls_count "$MNT/cnv")" $((NR_CONV - 1))
  check "seq/ files" "$(ls_count "$MNT/seq")" "$NR_SEQ"
  ls -ln "$MNT" "$MNT/cnv" "$MNT/seq" | head -16 | sed 's/^/    /'
  stat "$MNT/seq/0" | sed 's/^/    /'
  check "seq/0 mode uid gid size" "$(stat -c '%a %u %g %s' "$MNT/seq/0")" "604 1234 5678 0"
  check "cnv/0 mode uid gid size" "$(stat -c '%a %u %g %s' "$MNT/cnv/0")" \
    "604 1234 5678 $ZONE_BYTES"
  # As mkzonefs, never format a mounted device, even with -f.
  run mkfs "$URI" -f
  contains "zfile mkfs -f refuses the mounted device" "$out" "EBUSY"
  check "mounted file system intact" "$(stat -c '%a %u' "$MNT/seq/0")" "604 1234"
  # Truncating a sequential file to its capacity finishes its zone: seq/1
  # must be the second sequential zone.
  truncate -s "$SEQ_CAP" "$MNT/seq/1"
  check "seq/1 truncated to capacity" "$(stat -c %s "$MNT/seq/1")" "$SEQ_CAP"
  umount "$MNT"
  check "seq/1 is zone $((FIRST_SEQ + 1)): now full" "$(zone_json "$URI" $((FIRST_SEQ + 1)) condition)" full
else
  check "kernel mounts the zfile-made superblock" "$(cat "$MNT.err")" mounted
  dmesg | grep -i zonefs | tail -3 >&2
fi

# File numbering against zones: data written on the raw device at the start
# of the first sequential zone is the size of seq/0.
dd if=/dev/urandom of="$DEV" bs=4096 count=2 seek=$((FIRST_SEQ * ZONE_BYTES / 4096)) \
  oflag=direct conv=notrunc status=none
if mount -t zonefs "$DEV" "$MNT"; then
  check "seq/0 is zone $FIRST_SEQ: size = its write pointer" "$(stat -c %s "$MNT/seq/0")" 8192
  umount "$MNT"
fi

# zfile now refuses the formatted device without -f and reads it back.
run mkfs "$URI"
check "zfile mkfs without -f refuses a formatted device (exit)" "$zrc" 1
contains "refusal names label and UUID" "$out" "label 'interop', UUID $UUID"
contains "refusal names the zones with data" "$out" "sequential zones $FIRST_SEQ (8192 bytes written"

# --- 2. aggr_cnv --------------------------------------------------------------
run mkfs "$URI" -f -o aggr_cnv
check "zfile mkfs -f -o aggr_cnv" "$zrc" 0
check "zone $FIRST_SEQ reset by mkfs -f" "$(zone_json "$URI" "$FIRST_SEQ" used)" 0
if mount -t zonefs "$DEV" "$MNT"; then
  check "aggr_cnv: one cnv file" "$(ls_count "$MNT/cnv")" 1
  check "aggr_cnv: cnv/0 spans zones 1-$((NR_CONV - 1))" "$(stat -c %s "$MNT/cnv/0")" \
    $(((NR_CONV - 1) * ZONE_BYTES))
  check "defaults: mode uid gid" "$(stat -c '%a %u %g' "$MNT/seq/0")" "640 0 0"
  umount "$MNT"
else
  check "kernel mounts aggr_cnv" failed mounted
fi

# --- 3. CRC: both sides refuse a corrupted superblock ------------------------
echo 3 >/proc/sys/vm/drop_caches
python3 - "$DEV" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
b = bytearray(os.pread(fd, 4096, 0))
b[8] ^= 0x01  # first byte of the label; CRC left as it was
os.pwrite(fd, bytes(b), 0)
os.fsync(fd)
os.close(fd)
EOF
echo 3 >/proc/sys/vm/drop_caches
if mount -t zonefs "$DEV" "$MNT" 2>/dev/null; then
  umount "$MNT"
  check "kernel refuses a superblock with a bad CRC" mounted refused
else
  check "kernel refuses a superblock with a bad CRC" refused refused
  dmesg | grep -i "zonefs.*checksum" | tail -1 | sed 's/^/    /'
fi
run mkfs "$URI"
contains "zfile sees the checksum mismatch" "$out" "checksum mismatch"

# --- 4. independent encoder -> kernel and zfile -------------------------------
# Built from the kernel's layout with Python's zlib: crc32_le(~0, block with
# crc zeroed) == ~zlib.crc32(block).
python3 - "$DEV" <<'EOF'
import os, struct, sys, zlib
b = bytearray(4096)
struct.pack_into("<I", b, 0, 0x5A4F4653)
b[8:8 + 11] = b"from-python"
b[72:88] = bytes.fromhex("00112233445566778899aabbccddeeff")
struct.pack_into("<Q", b, 88, 0b1010)  # uid + perm features
struct.pack_into("<III", b, 96, 4321, 0, 0o600)
struct.pack_into("<I", b, 4, ~zlib.crc32(bytes(b)) & 0xFFFFFFFF)
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, bytes(b), 0)
os.fsync(fd)
os.close(fd)
EOF
echo 3 >/proc/sys/vm/drop_caches
if mount -t zonefs "$DEV" "$MNT"; then
  check "kernel mounts the Python-made superblock" mounted mounted
  check "its uid and perm" "$(stat -c '%a %u %g' "$MNT/seq/0")" "600 4321 0"
  umount "$MNT"
else
  check "kernel mounts the Python-made superblock" refused mounted
fi
run mkfs "$URI"
contains "zfile decodes the Python-made superblock" "$out" \
  "label 'from-python', UUID 00112233-4455-6677-8899-aabbccddeeff"

# --- 5. sequential zone 0 (null_blk without conventional zones) --------------
CFG=/sys/kernel/config/nullb
if [ -d "$CFG" ] && [ ! -e /dev/nullb1 ]; then
  NULLB1_CFG=$CFG/nullb1
  mkdir "$NULLB1_CFG" &&
    echo 1 >"$NULLB1_CFG/zoned" &&
    echo 8 >"$NULLB1_CFG/zone_size" &&
    echo 0 >"$NULLB1_CFG/zone_nr_conv" &&
    echo 128 >"$NULLB1_CFG/size" &&
    echo 4096 >"$NULLB1_CFG/blocksize" &&
    echo 1 >"$NULLB1_CFG/memory_backed" &&
    echo 1 >"$NULLB1_CFG/power"
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/nullb1 ] && break; sleep 0.2; done
fi
if [ -b /dev/nullb1 ]; then
  run mkfs zbd:/dev/nullb1 -L seqzero
  check "zfile mkfs with a sequential zone 0" "$zrc" 0
  [ "$zrc" -eq 0 ] || echo "$out" | sed 's/^/    /' >&2
  check "zone 0 finished after the superblock" "$(zone_json zbd:/dev/nullb1 0 condition)" full
  if mount -t zonefs /dev/nullb1 "$MNT"; then
    check "kernel mounts it" mounted mounted
    check "no cnv/ directory" "$(test -e "$MNT/cnv" && echo present || echo absent)" absent
    check "seq/ files (zone 0 excluded)" "$(ls_count "$MNT/seq")" 15
    umount "$MNT"
  else
    check "kernel mounts a sequential zone 0 superblock" refused mounted
  fi
  run mkfs zbd:/dev/nullb1
  contains "zfile reads the superblock in sequential zone 0" "$out" "label 'seqzero'"
else
  echo "note: no configfs null_blk; sequential zone 0 not checked on the kernel" >&2
fi

# --- Data both ways: what zfile writes, the kernel reads; what the kernel
# writes (io_uring direct writes: synchronous O_DIRECT hits a 6.1 bug),
# zfile reads.
run mkfs -f "$URI"
check "zfile mkfs -f for the data exchange" "$zrc" 0
DATA=$(mktemp -d "${TMPDIR:-/tmp}/zonefs-data.XXXXXX")
head -c $((3 * 1024 * 1024)) /dev/urandom >"$DATA/seq.in"
head -c 100000 /dev/urandom >"$DATA/cnv.in"
run write --device "$URI" seq/2 --direct --append --from "$DATA/seq.in"
check "zfile appends 3 MiB to seq/2" "$zrc" 0
run write --device "$URI" seq/3 --from "$DATA/seq.in"
check "zfile writes seq/3 buffered (written through)" "$zrc" 0
run write --device "$URI" cnv/1 --offset 12345 --from "$DATA/cnv.in"
check "zfile writes cnv/1 at an unaligned offset" "$zrc" 0
if mount -t zonefs "$DEV" "$MNT" 2>"$MNT.err"; then
  check "kernel sees seq/2's size" "$(stat -c %s "$MNT/seq/2")" $((3 * 1024 * 1024))
  check "kernel reads zfile's direct appends" "$(cmp "$MNT/seq/2" "$DATA/seq.in" && echo same)" same
  check "kernel reads zfile's write-through" "$(cmp "$MNT/seq/3" "$DATA/seq.in" && echo same)" same
  check "kernel reads zfile's conventional write" \
    "$(cmp <(dd if="$MNT/cnv/1" bs=1 skip=12345 count=100000 status=none) "$DATA/cnv.in" && echo same)" same
  # The kernel writes: sequential io_uring direct writes with fio, and a
  # buffered write into a conventional file.
  fio --name=kwrite --filename="$MNT/seq/4" --rw=write --bs=128k --size=2M --direct=1 \
    --ioengine=io_uring --iodepth=4 --zonemode=none --create_on_open=1 \
    --file_service_type=sequential --filesize=2M --buffer_pattern=0x5a --output=/dev/null
  check "kernel io_uring writes to seq/4 (fio)" "$(stat -c %s "$MNT/seq/4")" $((2 * 1024 * 1024))
  cp "$MNT/seq/4" "$DATA/seq4.kernel"
  dd if="$DATA/cnv.in" of="$MNT/cnv/2" bs=4096 seek=3 conv=notrunc,fsync status=none
  umount "$MNT"
  out=$("$ZFILE" cat --device "$URI" seq/4 2>&1 >"$DATA/seq4.zfile")
  check "zfile reads the kernel's io_uring writes" \
    "$(cmp "$DATA/seq4.zfile" "$DATA/seq4.kernel" && echo same)" same
  check "zfile sees seq/4's size" "$("$ZFILE" stat --device "$URI" seq/4 --json | jq -r .size)" \
    $((2 * 1024 * 1024))
  "$ZFILE" cat --device "$URI" cnv/2 --offset $((3 * 4096)) --length 100000 >"$DATA/cnv2.zfile"
  check "zfile reads the kernel's buffered conventional write" \
    "$(cmp "$DATA/cnv2.zfile" "$DATA/cnv.in" && echo same)" same
else
  check "kernel mounts the volume for the data exchange" "refused: $(cat "$MNT.err")" mounted
fi
rm -rf "$DATA"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
