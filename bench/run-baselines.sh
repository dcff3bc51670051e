#!/usr/bin/env bash
# Raw device baselines: runs device_bench and prints one table.
#
#   bench/run-baselines.sh [BUILD_DIR] [-- DEVICE_BENCH_ARGS...]
#
# 1. On this machine: the mem: and emu: backends.
# 2. If tests/vm/run-in-vm.sh exists: the zbd: backend on null_blk, in a
#    QEMU guest (or on the host if its kernel has null_blk; see that script).
#    Under TCG emulation these figures are low and noisy (+-20-30% between
#    runs and boots): compare them with each other, within one run.
#
# BUILD_DIR defaults to build/default. Results go to
# $ZFILE_BENCH_OUT (default BUILD_DIR/bench-results): host.json, zbd.json
# (Google Benchmark JSON) and table.txt. ZFILE_BENCH_NULLBLK overrides the
# null_blk module parameters; ZFILE_BENCH_NO_VM=1 skips step 2.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$ROOT/build/default
if [[ $# -gt 0 && $1 != -- ]]; then
  BUILD_DIR=$(cd "$1" && pwd)
  shift
fi
[[ ${1:-} == -- ]] && shift
EXTRA_ARGS=("$@")

BENCH=$BUILD_DIR/bench/device_bench
VM=$ROOT/tests/vm/run-in-vm.sh
OUT=${ZFILE_BENCH_OUT:-$BUILD_DIR/bench-results}
# 64 MiB zones, as in the fio figures of the null_blk notes; max_sectors=256
# lets one command carry 128 KiB (the zbd backend splits larger I/O).
NULLBLK=${ZFILE_BENCH_NULLBLK:-nr_devices=1 zoned=1 gb=1 zone_size=64 zone_nr_conv=1 memory_backed=1 bs=4096 max_sectors=256}

[[ -x $BENCH ]] || {
  echo "run-baselines: $BENCH not found; build it first:" >&2
  echo "  cmake --preset default && cmake --build build/default --target device_bench" >&2
  exit 1
}
mkdir -p "$OUT"
rm -f "$OUT/host.json" "$OUT/zbd.json" "$OUT/table.txt"
# The emu: device lives here; removed even if the run is interrupted.
EMU_PARENT=$(mktemp -d "${ZFILE_BENCH_EMU_DIR:-${TMPDIR:-/tmp}}/zfile-baselines.XXXXXX")
trap 'rm -rf -- "$EMU_PARENT"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "load average before the run:$(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/ /')" >&2

echo "== host: mem, emu" >&2
ZFILE_BENCH_EMU_DIR=$EMU_PARENT "$BENCH" --benchmark_filter='^seq_[a-z]+/(mem|emu)/' --benchmark_format=console \
  --benchmark_out="$OUT/host.json" --benchmark_out_format=json "${EXTRA_ARGS[@]}"

if [[ ${ZFILE_BENCH_NO_VM:-0} != 1 && -x $VM ]]; then
  echo "== zbd on null_blk ($NULLBLK)" >&2
  # Inside the guest, the host's files are seen through a throw-away overlay:
  # the JSON comes back on stdout, the console output on stderr.
  # shellcheck disable=SC2016  # expanded by the guest's shell
  if ! "$VM" --nullblk "$NULLBLK" --no-scsi-debug --timeout 1200 -- sh -c '
      ZFILE_BENCH_ZBD=$ZFILE_VM_NULLBLK "$0" --benchmark_filter="^seq_[a-z]+/zbd-" \
        --benchmark_format=console --benchmark_out=/tmp/zfile-zbd-bench.json \
        --benchmark_out_format=json "$@" >&2 &&
      cat /tmp/zfile-zbd-bench.json' "$BENCH" "${EXTRA_ARGS[@]}" >"$OUT/zbd.json"; then
    echo "run-baselines: the null_blk run failed; the table has the host only" >&2
    rm -f "$OUT/zbd.json"
  fi
else
  echo "== zbd skipped (no tests/vm/run-in-vm.sh, or ZFILE_BENCH_NO_VM=1)" >&2
fi

# backend, op, bs, qd, MB/s (10^6 bytes per second, wall clock). With
# --benchmark_repetitions the median is shown.
python3 - "$OUT"/host.json "$OUT"/zbd.json <<'EOF' | tee "$OUT/table.txt"
import json, os, sys

rows = {}
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    with open(path) as f:
        for b in json.load(f)["benchmarks"]:
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            op, backend, bs, qd = b["run_name"].split("/")[:4]
            key = (backend, op, int(bs.split(":")[1]), int(qd.split(":")[1]))
            if b.get("error_occurred"):
                rows[key] = "error: " + b.get("error_message", "?")
            elif key not in rows or b.get("run_type") == "aggregate":
                rows[key] = "%.1f" % (b["bytes_per_second"] / 1e6)

order = {"mem": 0, "emu": 1}
print("%-12s %-9s %8s %3s %10s" % ("backend", "op", "bs", "qd", "MB/s"))
for key in sorted(rows, key=lambda k: (order.get(k[0], 2), k[0], k[1] != "seq_write", k[2], k[3])):
    backend, op, bs, qd = key
    size = "%dK" % (bs // 1024) if bs < 1 << 20 else "%dM" % (bs >> 20)
    print("%-12s %-9s %8s %3d %10s" % (backend, op[4:], size, qd, rows[key]))
EOF
