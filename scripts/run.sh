#!/usr/bin/env bash
# Quick start, part 1: install the dependencies, build, and run zfiled on an
# emulated zoned device (./build/quickstart-dev, created and formatted on
# first run), serving it on ./build/zfiled.sock and mounting it with FUSE on
# ./build/mnt (where /dev/fuse is usable) until Ctrl-C.
#
#   scripts/run.sh              run until Ctrl-C (or SIGTERM)
#   scripts/run.sh --for SECS   stop zfiled cleanly after SECS seconds (for
#                               scripted runs); exits with zfiled's status
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_FOR=""
if [ $# -gt 0 ]; then
  if [ "$1" = "--for" ] && [ $# -eq 2 ] && [[ "$2" =~ ^[0-9]+$ ]]; then
    RUN_FOR=$2
  else
    echo "usage: scripts/run.sh [--for SECONDS]" >&2
    exit 2
  fi
fi

scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default

ZFILE=build/default/tools/zfile
ZFILED=build/default/daemon/zfiled
DEV=$(realpath -m "${ZFILE_QUICKSTART_DEV:-build/quickstart-dev}")
SOCK=$(realpath -m "${ZFILE_QUICKSTART_SOCKET:-build/zfiled.sock}")
MNT=$(realpath -m "${ZFILE_QUICKSTART_MOUNT:-build/mnt}")
if [ ! -f "$DEV/geometry" ]; then
  "$ZFILE" emu create "$DEV" --size 1G --zone-size 64M --zone-capacity 48M --conv 2 \
    --max-open 8 --max-active 12
  "$ZFILE" mkfs "emu:$DEV"
fi
echo
"$ZFILE" info "emu:$DEV"

MOUNT_ARGS=()
if [ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ]; then
  mkdir -p "$MNT"
  MOUNT_ARGS=(--mount "$MNT")
else
  echo "note: /dev/fuse is missing or not usable here, so no FUSE mount this time" >&2
  echo "      (load the fuse module or install fuse3; the socket works without it)" >&2
fi
"$ZFILED" --device "emu:$DEV" --name default --socket "$SOCK" "${MOUNT_ARGS[@]}" --foreground &
ZFILED_PID=$!
# Ctrl-C reaches zfiled too (same process group); SIGTERM to this script is
# passed on. Either way zfiled writes back, closes its zones and exits 0.
trap 'kill -TERM $ZFILED_PID 2>/dev/null || true' TERM
mounted() { [ ${#MOUNT_ARGS[@]} -eq 0 ] || grep -qF " $MNT fuse" /proc/self/mounts; }
for _ in $(seq 1 100); do
  [ -S "$SOCK" ] && mounted && break
  kill -0 $ZFILED_PID 2>/dev/null || break
  sleep 0.1
done
if [ ! -S "$SOCK" ] || ! mounted; then
  echo "zfiled did not start (see its messages above)" >&2
  kill -TERM $ZFILED_PID 2>/dev/null || true
  wait $ZFILED_PID || true
  exit 1
fi

echo
echo "zfiled serves emu:$DEV as volume 'default' on $SOCK. Through it:"
"$ZFILE" ls --socket "$SOCK" -l
if [ ${#MOUNT_ARGS[@]} -gt 0 ]; then
  cat <<EOT

The volume is also mounted on $MNT, as zonefs would show it:
$(ls -l "$MNT")

Try, in another shell, while it runs:
  ls -li $MNT/seq | head -4                                # a file per zone
  dd if=/dev/urandom of=$MNT/seq/0 bs=1M count=8 oflag=direct,append conv=notrunc  # appends
  stat -c '%n %s bytes' $MNT/seq/0                         # size = write pointer
  dd if=/dev/zero of=$MNT/seq/0 bs=4k count=1 seek=1 conv=notrunc  # not at the
                                                   # write pointer: Invalid argument
  truncate -s 0 $MNT/seq/0                                 # resets the zone
  printf hello | dd of=$MNT/cnv/0 conv=notrunc status=none  # conventional files are
  head -c 5 $MNT/cnv/0; echo                               # written in place
  fio --name=t --filename=$MNT/cnv/0 --direct=1 --rw=randrw --bs=4k --size=16M \\
      --verify=crc32c --verify_state_save=0
EOT
fi
cat <<EOT

And with the zfile tool (or programs linking libzfile, which open
"unix:$SOCK?volume=default"):
  $ZFILE ls --socket $SOCK seq -l                 # the sequential files
  echo hello | $ZFILE write --socket $SOCK cnv/0  # write through the daemon
  $ZFILE cat --socket $SOCK cnv/0 | head -c 6
  $ZFILE stats --socket $SOCK                     # the volume's counters
  $ZFILE --help
Ctrl-C stops zfiled cleanly (it unmounts $MNT first).
EOT

if [ -n "$RUN_FOR" ]; then
  ( sleep "$RUN_FOR"; kill -TERM $ZFILED_PID 2>/dev/null ) &
fi
set +e
wait $ZFILED_PID
rc=$?
# A trapped signal interrupts wait; then wait again for zfiled's own exit.
while kill -0 $ZFILED_PID 2>/dev/null; do
  wait $ZFILED_PID
  rc=$?
done
set -e
[ $rc -eq 0 ] && echo "zfiled stopped cleanly" || echo "zfiled exited with status $rc" >&2
exit $rc
