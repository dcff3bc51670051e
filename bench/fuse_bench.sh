#!/usr/bin/env bash
# FUSE mount vs libzfile, same workloads, same daemon, same run:
#
#   bench/fuse_bench.sh [BUILD_DIR] [-n REPS]
#
# On a fresh emu: device served by one zfiled (--mount and --socket):
#   seqwrite  1 MiB direct writes over a whole 512 MiB sequential file
#             (seq/0): 512 I/Os a run, the zone reset (truncated to 0)
#             before each run;
#   randread  4 KiB direct random reads of the first 64 MiB of a prefilled
#             conventional file (cnv/0), each block once (16384 I/Os, or
#             --runtime, if sooner).
# (a) "mount": fio through the mount, ioengine=psync (queue depth 1);
# (b) "client": `zfile bench`, the same job through libzfile's client mode
#     against the same daemon (--socket);
# after one warm-up pair that is not recorded, a and b alternate (a b, then
# b a, ...) for REPS repetitions (default 3). Then zfiled stops and (c)
# "embedded": `zfile bench` with the device mounted in its own process, a
# second baseline, also after one warm-up run (ZFILE_BENCH_NO_EMBEDDED=1
# skips it).
#
# Prints the medians and the ratios mount/client, with the load average
# before and after (measure on a quiet machine; compare within one run).
# Results go to $ZFILE_BENCH_OUT (default BUILD_DIR/bench-results):
# fuse_bench.tsv (every run) and fuse_bench.txt (the table). BUILD_DIR
# defaults to build/default. ZFILE_BENCH_EMU_DIR is where the device is
# made (default /dev/shm where writable, so that the emulated device's
# own cost is memory speed and not the host disk's block allocation, else
# $TMPDIR or /tmp); ZFILE_BENCH_RUNTIME caps each randread run
# in whole seconds (default 10). The mount's p50/p99 are fio's clat
# histogram percentiles (within 1-2%), the client's and embedded's those of
# zfile bench's histogram (within 1/32). Skips (exit 0) where FUSE cannot be
# used.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$ROOT/build/default
REPS=${ZFILE_BENCH_REPS:-3}
while [[ $# -gt 0 ]]; do
  case $1 in
    -n)
      REPS=${2:?-n takes a number of repetitions}
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      BUILD_DIR=$(cd "$1" && pwd)
      shift
      ;;
  esac
done
if ! [[ $REPS =~ ^[1-9][0-9]*$ ]]; then
  echo "fuse_bench: -n $REPS: give a number of repetitions (1 or more)" >&2
  exit 1
fi
RUNTIME=${ZFILE_BENCH_RUNTIME:-10}
# fio takes whole seconds only.
if ! [[ $RUNTIME =~ ^[1-9][0-9]*$ ]]; then
  echo "fuse_bench: ZFILE_BENCH_RUNTIME=$RUNTIME: give a whole number of seconds (1 or more)" >&2
  exit 1
fi
ZFILE=$BUILD_DIR/tools/zfile
ZFILED=$BUILD_DIR/daemon/zfiled
OUT=${ZFILE_BENCH_OUT:-$BUILD_DIR/bench-results}

for bin in "$ZFILE" "$ZFILED"; do
  if [[ ! -x $bin ]]; then
    echo "fuse_bench: $bin not found; build it first:" >&2
    echo "  cmake --preset default && cmake --build build/default --target zfile zfiled" >&2
    exit 1
  fi
done
for tool in fio python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "fuse_bench: $tool is needed (apt-get install $tool)" >&2
    exit 1
  fi
done
if [[ ! -c /dev/fuse || ! -r /dev/fuse || ! -w /dev/fuse ]]; then
  echo "fuse_bench: SKIP: /dev/fuse is missing or not usable" \
    "(load the fuse module, install fuse3)" >&2
  exit 0
fi
if [[ $(id -u) -ne 0 ]] && ! command -v fusermount3 >/dev/null; then
  echo "fuse_bench: SKIP: not root and no fusermount3 (package fuse3) to mount with" >&2
  exit 0
fi

ZONE_MIB=512
RAND_MIB=64
EMU_DIR=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && EMU_DIR=/dev/shm
WORK=$(mktemp -d "${ZFILE_BENCH_EMU_DIR:-$EMU_DIR}/zfile-fuse-bench.XXXXXX")
DEV=$WORK/dev
MNT=$WORK/mnt
SOCK=$WORK/zfiled.sock
LOG=$WORK/zfiled.log
RUNS=$WORK/runs.tsv
DAEMON_PID=
mkdir "$MNT"

mounted() { grep -qF " $MNT fuse.zfile " /proc/self/mounts; }

# alive PID: the process exists and is not a zombie.
alive() {
  local _pid _comm state
  read -r _pid _comm state _ 2>/dev/null <"/proc/$1/stat" || return 1
  [[ $state != Z ]]
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; returns its exit
# status.
stop_pid() {
  local pid=$1 _ status=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    echo "fuse_bench: zfiled still runs 10 s after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

# Never leave a daemon or a mount behind, and never rm -rf into a mount.
cleanup() {
  if [[ -n $DAEMON_PID ]]; then
    stop_pid "$DAEMON_PID" || true
  fi
  if mounted; then
    fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if mounted; then
    echo "fuse_bench: $MNT is still mounted; left $WORK in place" >&2
  else
    rm -rf -- "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
  echo "fuse_bench: $*" >&2
  [[ -s $LOG ]] && sed 's/^/  zfiled: /' "$LOG" | tail -20 >&2
  exit 1
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

start_daemon() {
  "$ZFILED" --device "emu:$DEV" --mount "$MNT" --socket "$SOCK" --foreground 2>"$LOG" &
  DAEMON_PID=$!
  local _
  for _ in $(seq 1 200); do
    grep -q "zfiled ready" "$LOG" && return 0
    alive "$DAEMON_PID" || {
      DAEMON_PID=
      die "zfiled exited at start"
    }
    sleep 0.05
  done
  die "zfiled did not get ready within 10 s"
}

stop_daemon() {
  local status=0
  stop_pid "$DAEMON_PID" || status=$?
  DAEMON_PID=
  [[ $status -eq 0 ]] || die "zfiled exited $status on SIGTERM"
}

# zf ARGS...: zfile, quiet unless it fails.
zf() {
  local out
  out=$("$ZFILE" "$@" 2>&1) || die "zfile $*: $out"
}

# seq_size TARGET...: seq/0's size, to check that a write run wrote the zone.
seq_size() {
  "$ZFILE" stat seq/0 --json "$@" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])'
}

# record WORKLOAD PATH REP JSON_FILE: one line of $RUNS on stdout, from
# fio's JSON (mount) or zfile bench's (client, embedded); fails if the run
# did no I/O.
record() {
  python3 - "$@" <<'EOF'
import json, sys
workload, path, rep, fname = sys.argv[1:]
with open(fname) as f:
    d = json.load(f)
if path == "mount":
    job = d["jobs"][0]
    io = job["write" if workload == "seqwrite" else "read"]
    if io.get("total_ios", 0) == 0 or job.get("error", 0) != 0:
        sys.exit("fuse_bench: fio did no I/O or failed: %s" % fname)
    pct = io["clat_ns"].get("percentile", {})
    row = (io["bw_bytes"], io["iops"], io["lat_ns"]["mean"],
           pct.get("50.000000", 0), pct.get("99.000000", 0), io["io_bytes"])
else:
    lat = d["lat_ns"]
    row = (d["bw_bytes"], d["iops"], lat["mean"], lat["p50"], lat["p99"], d["bytes"])
print("\t".join([workload, path, rep] + ["%.6g" % float(x) for x in row]))
EOF
}

ZONE_BYTES=$((ZONE_MIB << 20))
CLIENT=(--socket "$SOCK")
EMBEDDED=(--device "emu:$DEV")

# run_one WORKLOAD PATH REP: one run; the seq zone is reset first. REP 0
# is a warm-up: checked, not recorded. fio's JSON goes to --output, since
# fio may print notes to stdout too.
run_one() {
  local workload=$1 path=$2 rep=$3 target json=$WORK/$1-$2-$3.json
  if [[ $path == embedded ]]; then target=("${EMBEDDED[@]}"); else target=("${CLIENT[@]}"); fi
  case $workload in
    seqwrite)
      zf truncate seq/0 0 "${target[@]}"
      if [[ $path == mount ]]; then
        # file_append: fio writes from the file's end (the write pointer);
        # without it fio lays the file out anew, and unlinking a zone's file
        # fails (EPERM).
        fio --name=seqwrite --filename="$MNT/seq/0" --rw=write --bs=1M --size="${ZONE_MIB}M" \
          --file_append=1 --direct=1 --ioengine=psync --output-format=json --output="$json" >&2 ||
          die "fio seqwrite failed"
      else
        "$ZFILE" bench --file seq/0 --rw write --bs 1M --size "${ZONE_MIB}M" --direct --json \
          "${target[@]}" >"$json" || die "zfile bench seqwrite failed"
      fi
      local size
      size=$(seq_size "${target[@]}")
      [[ $size -eq $ZONE_BYTES ]] || die "$path seqwrite left seq/0 at $size bytes, not $ZONE_BYTES"
      ;;
    randread)
      if [[ $path == mount ]]; then
        fio --name=randread --filename="$MNT/cnv/0" --rw=randread --bs=4k --size="${RAND_MIB}M" \
          --direct=1 --ioengine=psync --runtime="$RUNTIME" --output-format=json \
          --output="$json" >&2 || die "fio randread failed"
      else
        "$ZFILE" bench --file cnv/0 --rw randread --bs 4K --size "${RAND_MIB}M" --direct \
          --runtime "$RUNTIME" --json "${target[@]}" >"$json" || die "zfile bench randread failed"
      fi
      ;;
  esac
  if [[ $rep -eq 0 ]]; then
    record "$workload" "$path" "$rep" "$json" >/dev/null
  else
    record "$workload" "$path" "$rep" "$json" >>"$RUNS"
  fi
}

LOAD_BEFORE=$(loadavg)
echo "fuse_bench: load average before: $LOAD_BEFORE; $REPS repetitions" >&2

# 2 GiB of 512 MiB zones: zone 0 holds the superblock, zone 1 is cnv/0,
# zones 2-3 are seq/0-1.
zf emu create "$DEV" --size 2G --zone-size "${ZONE_MIB}M" --conv 2
zf mkfs "emu:$DEV"
start_daemon
# Random reads then read data that was written, not holes of the emu files.
zf bench --file cnv/0 --rw write --bs 1M --size "${RAND_MIB}M" --direct "${CLIENT[@]}"

: >"$RUNS"
for workload in seqwrite randread; do
  for path in mount client; do
    echo "fuse_bench: warm-up $workload $path (not recorded)" >&2
    run_one "$workload" "$path" 0
  done
done
for rep in $(seq 1 "$REPS"); do
  for workload in seqwrite randread; do
    if ((rep % 2 == 1)); then order=(mount client); else order=(client mount); fi
    for path in "${order[@]}"; do
      echo "fuse_bench: rep $rep $workload $path" >&2
      run_one "$workload" "$path" "$rep"
    done
  done
done
stop_daemon

if [[ ${ZFILE_BENCH_NO_EMBEDDED:-0} != 1 ]]; then
  for workload in seqwrite randread; do
    echo "fuse_bench: warm-up $workload embedded (not recorded)" >&2
    run_one "$workload" embedded 0
  done
  for rep in $(seq 1 "$REPS"); do
    for workload in seqwrite randread; do
      echo "fuse_bench: rep $rep $workload embedded" >&2
      run_one "$workload" embedded "$rep"
    done
  done
fi
LOAD_AFTER=$(loadavg)

mkdir -p "$OUT"
cp "$RUNS" "$OUT/fuse_bench.tsv"
python3 - "$RUNS" "$REPS" "$LOAD_BEFORE" "$LOAD_AFTER" "$ZONE_MIB" "$((RAND_MIB * 256))" \
  <<'EOF' | tee "$OUT/fuse_bench.txt"
import statistics, sys
runs, reps, load_before, load_after, seq_ios, rand_ios = sys.argv[1:]
cols = {}
bw_by_rep = {}
for line in open(runs):
    w, p, rep, bw, iops, mean, p50, p99, _ = line.split("\t")
    cols.setdefault((w, p), []).append([float(x) for x in (bw, iops, mean, p50, p99)])
    bw_by_rep[(w, p, rep)] = float(bw)
def med(w, p):
    rows = cols.get((w, p))
    return [statistics.median(r[i] for r in rows) for i in range(5)] if rows else None
print("medians of %s runs (after a warm-up); seqwrite %s x 1 MiB, randread up to %s x 4 KiB"
      % (reps, seq_ios, rand_ios))
print("MiB/s, IOPS, latency in us (mean, p50, p99; mount: fio's clat histogram, within 1-2%;")
print("client, embedded: zfile bench's histogram, within 1/32)")
print("%-9s %-9s %9s %9s %9s %9s %9s" % ("workload", "path", "MiB/s", "IOPS", "mean", "p50", "p99"))
for w in ("seqwrite", "randread"):
    for p in ("mount", "client", "embedded"):
        m = med(w, p)
        if m:
            print("%-9s %-9s %9.1f %9.0f %9.1f %9.1f %9.1f" % (
                w, p, m[0] / 2**20, m[1], m[2] / 1e3, m[3] / 1e3, m[4] / 1e3))
print()
print("ratio mount/client (bandwidth; >1: the mount is faster), and mean latency:")
for w in ("seqwrite", "randread"):
    a, b = med(w, "mount"), med(w, "client")
    pairs = [bw_by_rep[(w, "mount", r)] / bw_by_rep[(w, "client", r)]
             for (w2, p, r) in bw_by_rep if w2 == w and p == "mount"]
    line = "%-9s bandwidth %.2f (%.2f-%.2f per pair)  latency %.2f" % (
        w, a[0] / b[0], min(pairs), max(pairs), a[2] / b[2])
    c = med(w, "embedded")
    if c:
        line += "   (mount/embedded bandwidth %.2f)" % (a[0] / c[0])
    print(line)
print()
print("load average: before %s, after %s (nproc %s)" % (
    load_before, load_after, __import__("os").cpu_count()))
EOF
