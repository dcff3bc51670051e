#!/usr/bin/env bash
# Quick start, part 1: install the dependencies, build, and run zfiled on an
# emulated zoned device (./build/quickstart-dev, created and formatted on
# first run), serving it on ./build/zfiled.sock until Ctrl-C.
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
if [ ! -f "$DEV/geometry" ]; then
  "$ZFILE" emu create "$DEV" --size 1G --zone-size 64M --zone-capacity 48M --conv 2 \
    --max-open 8 --max-active 12
  "$ZFILE" mkfs "emu:$DEV"
fi
echo
"$ZFILE" info "emu:$DEV"

"$ZFILED" --device "emu:$DEV" --name default --socket "$SOCK" --foreground &
ZFILED_PID=$!
# Ctrl-C reaches zfiled too (same process group); SIGTERM to this script is
# passed on. Either way zfiled writes back, closes its zones and exits 0.
trap 'kill -TERM $ZFILED_PID 2>/dev/null || true' TERM
for _ in $(seq 1 100); do
  [ -S "$SOCK" ] && break
  kill -0 $ZFILED_PID 2>/dev/null || break
  sleep 0.1
done
if [ ! -S "$SOCK" ]; then
  echo "zfiled did not start (see its messages above)" >&2
  wait $ZFILED_PID || true
  exit 1
fi

echo
echo "zfiled serves emu:$DEV as volume 'default' on $SOCK. Through it:"
"$ZFILE" ls --socket "$SOCK" -l
cat <<EOT

Try, in another shell, while it runs:
  $ZFILE ls --socket $SOCK seq -l                 # the sequential files
  echo hello | $ZFILE write --socket $SOCK cnv/0  # write through the daemon
  $ZFILE cat --socket $SOCK cnv/0 | head -c 6
  $ZFILE stats --socket $SOCK                     # the volume's counters
  $ZFILE --help
Programs link libzfile and open "unix:$SOCK?volume=default".
Ctrl-C stops zfiled cleanly.
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
