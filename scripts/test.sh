#!/usr/bin/env bash
# Quick start, part 2: every test tier.
#   1. default build: unit tests, device-contract suite on mem and emu, CLI tests
#   2. VM tier: in a QEMU guest running Debian's kernel (tests/vm), the
#      contract suite on null_blk zoned and scsi_debug SMR, the file-rule
#      suite on null_blk, and interop with the kernel's zonefs
#   3. ASan+UBSan build, then TSan build: the same unit and contract tests
# ZFILE_TEST_SKIP_VM=1 or ZFILE_TEST_SKIP_SANITIZERS=1 skip a tier (for local
# iteration only; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
jobs=$(nproc)
# detect_deadlocks=0: TSan's lock-order detector tracks at most 64 held
# locks per thread and aborts beyond (a 4 MiB write-back holds a lock per
# 64 KiB page); the file locks have their own checker in these builds.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 detect_deadlocks=0"
failed=()

run_preset() {
  local preset=$1
  echo "=== build: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== tests: $preset"
  if ! ctest --preset "$preset" -j "$jobs"; then failed+=("ctest:$preset"); fi
}

# CI shows only the end of this log, so the failures are named (and run once
# more, to tell a flaky test from a broken one) after everything else.
report_failed_tests() {
  local preset=$1 list="build/$1/Testing/Temporary/LastTestsFailed.log"
  [ -f "$list" ] || return 0
  echo "=== failed in $preset: $(tr '\n' ' ' <"$list")"
  echo "=== running them once more:"
  ctest --preset "$preset" --rerun-failed --output-on-failure 2>&1 | tail -n 60 || true
}

run_preset default

# A VM tier's output is also kept in build/vm-NAME.log, so that a failure can
# be shown again at the end of the log, where CI can see it.
run_vm_tier() {
  local name=$1
  shift
  if ! "$@" 2>&1 | tee "build/vm-$name.log"; then failed+=("vm:$name"); fi
}

report_failed_vm_tier() {
  local log="build/vm-$1.log"
  [ -f "$log" ] || return 0
  echo "=== failed in vm:$1: the failures, then the end of its output ($log):"
  grep -n -E -A 3 '^\[  FAILED  \]|Failure$|^FAIL:|ERROR' "$log" | head -n 40 || true
  echo "--- last 20 lines:"
  tail -n 20 "$log"
}

if [ "${ZFILE_TEST_SKIP_VM:-0}" != 1 ]; then
  mkdir -p build
  echo "=== VM tier: device contract on null_blk and scsi_debug (SMR), file rules on null_blk"
  run_vm_tier contract tests/vm/contract.sh build/default
  echo "=== VM tier: kernel zonefs and zfile read each other's volumes"
  run_vm_tier zonefs-interop tests/vm/run-in-vm.sh --no-scsi-debug --modprobe zonefs -- \
    tests/vm/zonefs_interop.sh build/default/tools/zfile
fi

if [ "${ZFILE_TEST_SKIP_SANITIZERS:-0}" != 1 ]; then
  run_preset asan
  run_preset tsan
fi

if [ ${#failed[@]} -ne 0 ]; then
  for tier in "${failed[@]}"; do
    case $tier in
      ctest:*) report_failed_tests "${tier#ctest:}" ;;
      vm:*) report_failed_vm_tier "${tier#vm:}" ;;
    esac
  done
  echo "=== FAILED tiers: ${failed[*]}"
  exit 1
fi
echo "=== all test tiers passed"
