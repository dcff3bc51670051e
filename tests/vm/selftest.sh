#!/usr/bin/env bash
# Self-test of run-in-vm.sh: boots the VM a few times (about 1-2 minutes on
# an idle 2-core machine) and checks devices, limits, exit statuses, the
# timeout, parameter checking, host binaries and configfs fault injection.
#
#   tests/vm/selftest.sh [extra run-in-vm.sh options]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=("$HERE/run-in-vm.sh" "$@")
PASS=0
FAIL=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/zfile-vm-selftest.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

ok() { echo "PASS: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
check() { # check DESCRIPTION CONDITION...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
has() { grep -q -- "$2" "$1"; }

# 1. the command from the issue: devices, zone reports, configfs, exit 3
# shellcheck disable=SC2016 # expanded in the guest
"${RUN[@]}" -- sh -c 'cat /sys/block/nullb0/queue/zoned; blkzone report /dev/nullb0 | head -3; ls /sys/kernel/config; echo $ZFILE_VM_SMR; blkzone report $ZFILE_VM_SMR | head -3; exit 3' \
    >"$TMP/out1" 2>"$TMP/err1"
rc=$?
check "exit status 3 propagates (got $rc)" test "$rc" = 3
check "null_blk is host-managed" has "$TMP/out1" '^host-managed$'
check "two zone reports" test "$(grep -c 'CONVENTIONAL' "$TMP/out1")" = 6
check "configfs has nullb" has "$TMP/out1" '^nullb$'
check "ZFILE_VM_SMR is a /dev/sd* disk" has "$TMP/out1" '^/dev/sd[a-z]*$'

# 2. a host-built binary, cwd, environment, limits, failing status
cd "$TMP" || exit 1
cat >prog.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    char cwd[4096];
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd));
    printf("filter=%s\n", getenv("GTEST_FILTER") ? getenv("GTEST_FILTER") : "(unset)");
    printf("in_vm=%s\n", getenv("ZFILE_IN_VM") ? getenv("ZFILE_IN_VM") : "(unset)");
    return 42;
}
EOF
if command -v cc >/dev/null 2>&1 && cc -O2 -o prog prog.c; then
    cat >t2.sh <<'EOF'
echo "max_sectors_kb=$(cat /sys/block/nullb0/queue/max_sectors_kb)"
echo "zone_append_max_bytes=$(cat /sys/block/nullb0/queue/zone_append_max_bytes)"
echo "features=$(cat /sys/kernel/config/nullb/features)"
exec ./prog
EOF
    GTEST_FILTER='A.*:B.c' "${RUN[@]}" --no-scsi-debug --env GTEST_FILTER -- bash t2.sh >"$TMP/out2" 2>"$TMP/err2"
    rc=$?
    check "failing status 42 propagates (got $rc)" test "$rc" = 42
    check "cwd is the host's \$PWD" has "$TMP/out2" "^cwd=$TMP\$"
    check "--env passes GTEST_FILTER" has "$TMP/out2" '^filter=A\.\*:B\.c$'
    check "ZFILE_IN_VM=1" has "$TMP/out2" '^in_vm=1$'
    kb=$(sed -n 's/^max_sectors_kb=//p' "$TMP/out2")
    check "max_sectors_kb >= 128 (got $kb)" test "${kb:-0}" -ge 128
    check "zone_append_max_bytes readable" has "$TMP/out2" '^zone_append_max_bytes=[0-9][0-9]*$'
    check "configfs offers zone_offline/zone_readonly" has "$TMP/out2" 'zone_offline.*zone_readonly'
else
    bad "no C compiler to build the host binary test"
fi
cd / || exit 1

# 3. timeout gives 125
"${RUN[@]}" --no-scsi-debug --timeout 12 -- sleep 600 >"$TMP/out3" 2>"$TMP/err3"
rc=$?
check "timeout gives 125 (got $rc)" test "$rc" = 125
check "timeout is reported" has "$TMP/err3" 'timed out'

# 4. a misspelled module parameter is a setup error (125)
"${RUN[@]}" --no-scsi-debug --nullblk "nr_devices=1 zoned=1 zone_sise=8" -- true >"$TMP/out4" 2>"$TMP/err4"
rc=$?
check "unknown null_blk parameter gives 125 (got $rc)" test "$rc" = 125
check "unknown parameter is reported" has "$TMP/err4" "unknown parameter 'zone_sise'"

# 5. configfs fault injection
"${RUN[@]}" --no-scsi-debug -- bash "$HERE/examples/nullblk-fault-injection.sh" >"$TMP/out5" 2>"$TMP/err5"
rc=$?
check "fault injection example passes (got $rc)" test "$rc" = 0
check "read-only and offline zones reported" has "$TMP/out5" 'zcond:15(of)'

echo "selftest: $PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
