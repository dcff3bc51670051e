#!/usr/bin/env bash
# VM tier: runs the device-contract suite on the zbd: backend against the
# guest's null_blk zoned device and scsi_debug host-managed SMR disk, and the
# file-rule suite on a volume formatted on null_blk, and the errors= matrix
# on a configfs null_blk with null_blk's own fault injection (the same suites
# the default build runs on mem: and emu:), in one boot.
#   tests/vm/contract.sh BUILD_DIR [extra gtest args]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "${1:?usage: contract.sh BUILD_DIR}" && pwd)
shift
TEST="$BUILD/tests/device_contract_test"
FILES="$BUILD/tests/file_rules_test"
for t in "$TEST" "$FILES"; do
  [ -x "$t" ] || { echo "contract.sh: $t not built" >&2; exit 1; }
done

# Both devices in one boot; the suite's zbd instances are named after them.
exec "$HERE/run-in-vm.sh" -- /bin/sh -c '
  set -e
  [ -n "$ZFILE_VM_NULLBLK" ] && [ -n "$ZFILE_VM_SMR" ] || { echo "zoned devices missing in the guest" >&2; exit 1; }
  export ZFILE_TEST_ZBD_DEVICES="$ZFILE_VM_NULLBLK,$ZFILE_VM_SMR"
  rc=0
  "$0" --gtest_filter="*zbd_*" --gtest_brief=1 || rc=1
  ZFILE_TEST_ZBD_VOLUME="$ZFILE_VM_NULLBLK" "$1" --gtest_filter="*zbd_*" --gtest_brief=1 || rc=1
  # The errors= matrix with null_blk'"'"'s own fault injection: a second null_blk
  # made through configfs (zone_readonly, zone_offline, badblocks).
  cfg=/sys/kernel/config/nullb/zfile_faults
  mkdir "$cfg"
  for kv in zoned=1 zone_size=8 zone_capacity=6 zone_nr_conv=4 size=256 blocksize=4096 \
            memory_backed=1 max_sectors=256 zone_max_open=6 zone_max_active=8 power=1; do
    echo "${kv#*=}" >"$cfg/${kv%%=*}"
  done
  i=0
  while [ ! -b /dev/zfile_faults ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  ZFILE_TEST_ZBD_VOLUME=/dev/zfile_faults ZFILE_TEST_NULLB_CONFIGFS="$cfg" \
    "$1" --gtest_filter="*ErrorPolicy*zbd_*" --gtest_brief=1 || rc=1
  echo 0 >"$cfg/power"
  rmdir "$cfg"
  exit $rc
' "$TEST" "$FILES"
