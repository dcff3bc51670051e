#!/usr/bin/env bash
# Quick start, part 1: install the dependencies, build, and run zfile on an
# emulated zoned device (./build/quickstart-dev, created on first run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default

ZFILE=build/default/tools/zfile
DEV=${ZFILE_QUICKSTART_DEV:-build/quickstart-dev}
if [ ! -f "$DEV/geometry" ]; then
  "$ZFILE" emu create "$DEV" --size 1G --zone-size 64M --zone-capacity 48M --conv 2 \
    --max-open 8 --max-active 12
fi
echo
"$ZFILE" info "emu:$DEV"
echo
"$ZFILE" report "emu:$DEV" --count 6
cat <<EOT

zfile is built and an emulated zoned device lives in $DEV. Try:
  $ZFILE report emu:$DEV                    # every zone, like blkzone report
  $ZFILE open emu:$DEV --zone 2             # explicitly open a zone
  $ZFILE finish emu:$DEV --zone 3           # fill a zone
  $ZFILE reset emu:$DEV --all               # empty every sequential zone
  $ZFILE inject emu:$DEV --zone 5 --offline # fault injection
  $ZFILE --help
EOT
