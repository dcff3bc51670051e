#!/usr/bin/env bash
# Example: inside the VM, create a second zoned null_blk device through
# configfs and inject faults (read-only zone, offline zone, bad blocks).
#
#   tests/vm/run-in-vm.sh --no-scsi-debug -- bash tests/vm/examples/nullblk-fault-injection.sh
#
# Facts for Debian's 6.1 kernel:
# - the disk is named after the configfs directory (/dev/<name>), not nullbN;
# - size is in MB; zone_size/zone_capacity in MB; blocksize in bytes;
# - zone_readonly/zone_offline take a sector inside the zone and only work
#   once the device is powered on;
# - badblocks takes "+START-END" / "-START-END" (sectors);
# - blkzone shows a meaningless write pointer for ro/offline zones.
set -euo pipefail

name=${1:-zfi}
d=/sys/kernel/config/nullb/$name
[[ -d /sys/kernel/config/nullb ]] || { echo "null_blk configfs not available (modprobe null_blk first)" >&2; exit 1; }

mkdir "$d"
echo 1 >"$d/zoned"
echo 8 >"$d/zone_size"        # MB
echo 6 >"$d/zone_capacity"    # MB
echo 4 >"$d/zone_nr_conv"
echo 256 >"$d/size"           # MB
echo 4096 >"$d/blocksize"
echo 1 >"$d/memory_backed"
echo 256 >"$d/max_sectors"
echo 1 >"$d/power"
dev=/dev/$name
for _ in $(seq 50); do [[ -b $dev ]] && break; sleep 0.1; done
[[ -b $dev ]] || { echo "$dev did not appear" >&2; exit 1; }

zone_sectors=$((8 * 2048))
echo $((5 * zone_sectors)) >"$d/zone_readonly"
echo $((6 * zone_sectors)) >"$d/zone_offline"
echo "+$((7 * zone_sectors))-$((7 * zone_sectors + 7))" >"$d/badblocks"
blkzone report -o $((4 * zone_sectors)) -c 4 "$dev"

rc=0
for z in 5 6 7; do
    if dd if=/dev/zero of="$dev" bs=4096 count=1 seek=$((z * zone_sectors / 8)) oflag=direct status=none 2>/dev/null; then
        echo "zone $z: write unexpectedly succeeded"
        rc=1
    else
        echo "zone $z: write failed as expected"
    fi
done

echo 0 >"$d/power"
rmdir "$d"
exit "$rc"
