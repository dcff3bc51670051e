#!/usr/bin/env bash
# zfile's file commands against a running zfiled (--volume NAME, --socket
# PATH): the real daemon serves two emulated devices formatted with `zfile
# mkfs`, and what the commands print through it is checked against what the
# same commands print embedded (--device) on the same data.
#
# Usage: daemon_cli_test.sh PATH/TO/zfile PATH/TO/zfiled
NAME=daemon_cli_test
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
ZFILED=${2:?usage: $NAME.sh PATH/TO/zfile PATH/TO/zfiled}

MiB=1048576

# --- the daemon -----------------------------------------------------------------------

S=$TMP/zfiled.sock
LOG=$TMP/zfiled.log
DAEMON_PID=

# A daemon left running (a failed check under set -e) must not outlive the
# test or keep $TMP busy.
cleanup() {
  if [ -n "$DAEMON_PID" ]; then
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# start_daemon: runs zfiled on $TMP/zfiled.yaml and returns once it has said
# it is ready, which it logs only after its socket listens.
start_daemon() {
  : >"$LOG"
  "$ZFILED" --config "$TMP/zfiled.yaml" --foreground 2>"$LOG" &
  DAEMON_PID=$!
  wait_ready
}

# stop_daemon: SIGTERM, which must write back dirty data and exit 0.
stop_daemon() {
  kill -TERM "$DAEMON_PID"
  set +e
  wait "$DAEMON_PID"
  local status=$?
  set -e
  DAEMON_PID=
  if [ "$status" -eq 0 ]; then pass; else fail "zfiled exited $status on SIGTERM: $(cat "$LOG")"; fi
}

# --- two formatted devices ------------------------------------------------------------
# 16 zones of 16 MiB each: zone 0 holds the superblock, zone 1 is cnv/0,
# zones 2-15 are seq/0-13. "data" gets the traffic; "default" is there to
# show that counters are per volume and that --socket alone means it.

D=$TMP/dev
U=emu:$D
E=(--device "$U")
D2=$TMP/dev2
ok "emu create" emu create "$D" --size 256M --zone-size 16M --conv 2
ok "mkfs" mkfs "$U"
ok "emu create (second)" emu create "$D2" --size 256M --zone-size 16M --conv 2
ok "mkfs (second)" mkfs "emu:$D2" -L other

cat >"$TMP/zfiled.yaml" <<EOF
socket:
  path: $S
  mode: "0660"
volumes:
  - name: data
    device: $U
  - name: default
    device: emu:$D2
EOF

# Some data, written embedded before the daemon starts.
head -c 10000 /dev/urandom >"$TMP/r10000"
head -c 8192 /dev/urandom >"$TMP/s8192"
ok "embedded write to cnv/0" write cnv/0 --from "$TMP/r10000" --offset 4096 "${E[@]}"
ok "embedded write to seq/0" write seq/0 --direct --from "$TMP/s8192" "${E[@]}"

# What the read-only commands print embedded, to compare with the daemon's.
declare -A embedded
readonly_commands=(
  "ls"
  "ls / -l"
  "ls seq -l"
  "ls cnv --json"
  "ls seq --json"
  "stat seq/0"
  "stat seq/0 --json"
  "stat cnv/0 --json"
  "stat seq --json"
  "zones"
  "zones --json"
  "zones --map --charset ascii"
)
for c in "${readonly_commands[@]}"; do
  # shellcheck disable=SC2086  # the command's words
  run $c "${E[@]}"
  if [ "$rc" -ne 0 ]; then fail "embedded $c: exit $rc: $err"; fi
  embedded[$c]=$out
done
run_to "$TMP/seq0.embedded" cat seq/0 "${E[@]}"
eq "embedded cat seq/0" "$rc" 0
ok "embedded info --device" info --json "${E[@]}"
embedded_info=$(jqv 'del(.device)')

start_daemon
V=(--volume data --socket "$S")

# --- the same answers through the daemon ----------------------------------------------

for c in "${readonly_commands[@]}"; do
  # shellcheck disable=SC2086
  run $c "${V[@]}"
  eq "'$c' through zfiled: exit" "$rc" 0
  eq "'$c' through zfiled prints what it prints embedded" "$out" "${embedded[$c]}"
done
run_to "$TMP/seq0.daemon" cat seq/0 "${V[@]}"
eq "cat seq/0 through zfiled: exit" "$rc" 0
same "cat seq/0 through zfiled" "$TMP/seq0.embedded" "$TMP/seq0.daemon"
run_to "$TMP/back" cat cnv/0 --offset 4096 --length 10000 "${V[@]}"
same "cat cnv/0 range through zfiled" "$TMP/r10000" "$TMP/back"
ok "info --volume" info --json "${V[@]}"
eq "info --volume is the volume's info" "$(jqv 'del(.volume)')" "$embedded_info"
eq "info --volume names the volume" "$(jqv .volume)" data
ok "info --volume, text" info "${V[@]}"
has "info text names the volume" "$out" "volume:"
has "info text names the socket" "$out" "$S"

# zfiled:NAME, with the socket from the environment.
set +e
out=$(ZFILED_SOCKET=$S "$ZFILE" ls seq --volume data 2>"$TMP/stderr")
rc=$?
set -e
eq "--volume without --socket uses \$ZFILED_SOCKET" "$rc $(wc -l <<<"$out")" "0 14"
# --socket alone: the volume called "default", here the second device.
ok "--socket alone" info --json --socket "$S"
eq "--socket alone is volume default" "$(jqv '[.volume, .label] | join(" ")')" "default other"

# --- writes through the daemon --------------------------------------------------------

ok "stats --volume" stats --json "${V[@]}"
direct_before=$(jqv .direct_write_bytes)
direct_ops_before=$(jqv .direct_write_ops)
resets_before=$(jqv .zone_resets)
ok "stats of the other volume" stats --json --volume default --socket "$S"
other_before=$(jqv '[.direct_write_bytes, .buffered_write_bytes, .zone_resets] | join(" ")')

head -c $((2 * MiB)) /dev/urandom >"$TMP/s2m"
ok "direct sync append through zfiled" write seq/1 --append --direct --sync --from "$TMP/s2m" "${V[@]}"
eq "append says where it landed" "$out" "appended $((2 * MiB)) bytes to seq/1 at offset 0"
ok "buffered append through zfiled" write seq/1 --append --from "$TMP/s8192" "${V[@]}"
eq "second append lands after the first" "$out" "appended 8192 bytes to seq/1 at offset $((2 * MiB))"
cat "$TMP/s2m" "$TMP/s8192" >"$TMP/seq1.expected"
run_to "$TMP/back" cat seq/1 "${V[@]}"
same "seq/1 read back through zfiled" "$TMP/seq1.expected" "$TMP/back"
run_to "$TMP/back" cat seq/1 --direct "${V[@]}"
same "seq/1 direct read back through zfiled" "$TMP/seq1.expected" "$TMP/back"
printf 'hello, daemon' >"$TMP/hello"
run_piped "$TMP/hello" write cnv/0 --offset 100 "${V[@]}"
eq "write from a pipe through zfiled" "$rc $out" "0 wrote 13 bytes to cnv/0 at offset 100"
ok "small range through zfiled" cat cnv/0 --offset 100 --length 13 "${V[@]}"
eq "small range read back" "$out" "hello, daemon"
ok "stat seq/1 through zfiled" stat seq/1 --json "${V[@]}"
eq "seq/1 size" "$(jqv .size)" $((2 * MiB + 8192))

# The daemon's counters outlive each command and belong to the volume.
ok "stats --volume after the writes" stats --json "${V[@]}"
eq "direct bytes counted across commands" "$(jqv .direct_write_bytes)" \
  $((direct_before + 2 * MiB))
eq "direct ops counted across commands" "$(jqv .direct_write_ops)" $((direct_ops_before + 2))
ok "truncate through zfiled" truncate seq/2 16M "${V[@]}"
eq "truncate report" "$out" "seq/2: size 16777216 (zone full)"
ok "truncate to 0 through zfiled" truncate seq/2 0 "${V[@]}"
ok "stats --volume after a reset" stats --json "${V[@]}"
eq "the reset is counted" "$(jqv .zone_resets)" $((resets_before + 1))
ok "stats of the other volume again" stats --json --volume default --socket "$S"
eq "the other volume's counters did not move" \
  "$(jqv '[.direct_write_bytes, .buffered_write_bytes, .zone_resets] | join(" ")')" "$other_before"
ok "stats --volume, text" stats "${V[@]}"
has "stats text lists counters" "$out" "direct_write_bytes:"
run write seq/3 --direct --from "$TMP/s8192" --stats "${V[@]}"
eq "write --stats through zfiled: exit" "$rc" 0
eq "write --stats prints the volume's counters" "$(jqv .direct_write_bytes "$err")" \
  $((direct_before + 2 * MiB + 8192))

# --- errors through the daemon, in words, changing nothing ----------------------------

fails "misplaced sequential write through zfiled" 1 "write pointer" \
  write seq/1 --from "$TMP/s8192" "${V[@]}"
head -c $((17 * MiB)) /dev/zero >"$TMP/z17m"
fails "write larger than the file through zfiled" 1 "maximum size" \
  write seq/4 --from "$TMP/z17m" "${V[@]}"
fails "truncate to another size through zfiled" 1 "EPERM" truncate seq/1 4096 "${V[@]}"
fails "unknown path through zfiled" 1 "no such file" stat seq/99 "${V[@]}"
ok "stat seq/1 after the refused writes" stat seq/1 --json "${V[@]}"
eq "refused writes changed nothing" "$(jqv .size)" $((2 * MiB + 8192))
ok "stat seq/4 after the refused writes" stat seq/4 --json "${V[@]}"
eq "seq/4 still empty" "$(jqv .size)" 0

fails "unknown volume" 1 "nope" ls --volume nope --socket "$S"
fails "unknown volume, write" 1 "nope" write seq/5 --from "$TMP/s8192" --volume nope --socket "$S"
fails "no daemon on that socket" 1 "zfiled running" ls --volume data --socket "$TMP/none.sock"
fails "no daemon on that socket, write" 1 "zfiled running" \
  write seq/5 --from "$TMP/s8192" --volume data --socket "$TMP/none.sock"
set +e
out=$(ZFILED_SOCKET=$TMP/none.sock "$ZFILE" stats --volume data 2>"$TMP/stderr")
rc=$?
set -e
err=$(<"$TMP/stderr")
check_failure "no daemon at \$ZFILED_SOCKET" 1 "zfiled running"
ok "stat seq/5 after the failed writes" stat seq/5 --json "${V[@]}"
eq "writes to no daemon changed nothing" "$(jqv .size)" 0

# The daemon owns the device: an embedded mount is refused, and says so.
fails "embedded mount of a served device" 1 "in use by another process" ls "${E[@]}"

# --- zfile bench through the daemon (client mode) ------------------------------------

ok "bench write through zfiled" bench --file seq/6 --rw write --bs 1M --size 2M --direct --json \
  "${V[@]}"
eq "bench write through zfiled: ops, bytes" "$(jqv '[.ops, .bytes] | join(" ")')" "2 $((2 * MiB))"
eq "a plain buffer's bytes are copied through the region" \
  "$(jqv '[.registered_buffer, .copied_bytes, .zero_copy_bytes] | join(" ")')" \
  "false $((2 * MiB)) 0"
ok "stat seq/6 after bench" stat seq/6 --json "${V[@]}"
eq "seq/6 grew by what bench wrote" "$(jqv .size)" $((2 * MiB))
ok "bench randread through zfiled" bench --file seq/6 --rw randread --direct --json "${V[@]}"
eq "bench randread through zfiled: each block once" "$(jqv .ops)" 512
fails "bench with a bs of no whole blocks through zfiled" 1 "block size" \
  bench --file seq/6 --rw write --bs 6K --direct "${V[@]}"
ok "stat seq/6 after the refused bench" stat seq/6 --json "${V[@]}"
eq "the refused bench changed nothing" "$(jqv .size)" $((2 * MiB))

# --regbuf: a buffer of zfile_buf_alloc, which the daemon fills and reads
# itself: nothing is copied through the region.
ok "bench write --regbuf through zfiled" bench --file seq/7 --rw write --bs 1M --size 3M \
  --direct --regbuf --json "${V[@]}"
eq "--regbuf write: no copy" \
  "$(jqv '[.registered_buffer, .bytes, .copied_bytes, .zero_copy_bytes] | join(" ")')" \
  "true $((3 * MiB)) 0 $((3 * MiB))"
ok "bench read --regbuf through zfiled" bench --file seq/7 --rw read --bs 512K --direct --regbuf \
  "${V[@]}"
has "--regbuf read says so" "$out" "seq/7: read, bs 512 KiB, direct, registered buffer"
has "--regbuf read: no copy" "$out" "0 bytes copied through the shared region, $((3 * MiB)) moved"
run_to "$TMP/seq7" cat seq/7 "${V[@]}"
eq "seq/7 holds the 3 MiB --regbuf wrote" "$rc $(wc -c <"$TMP/seq7")" "0 $((3 * MiB))"
nonzero=$(tr -d '\0' <"$TMP/seq7" | wc -c)
eq "and they are the job's data, not zeroes" "$((nonzero > 3 * MiB * 9 / 10))" 1

# --- usage errors: which volume, and mount options ------------------------------------

fails "--device and --volume" 2 "not both" ls --volume data "${E[@]}"
fails "--device and --socket" 2 "not both" cat seq/0 --socket "$S" "${E[@]}"
fails "no volume at all" 2 "which volume" ls seq
fails "no volume at all (write)" 2 "--volume NAME" write seq/0 --from "$TMP/s8192"
fails "mount options for a daemon volume" 2 "configuration" ls -o explicit-open "${V[@]}"
fails "mount options for a daemon volume (info)" 2 "mount options" info -o explicit-open "${V[@]}"
fails "info with a device and a volume" 2 "give one of" info "$U" --volume data
fails "mkfs is for devices only" 2 "volume" mkfs "$U" --volume data
fails "report is for devices only" 2 "volume" report "$U" --volume data --socket "$S"
run --help
has "top-level help mentions --volume" "$out" "--volume NAME"
for c in ls stat cat write truncate stats zones info bench; do
  run "$c" --help
  if grep -qF -- "--volume" <<<"$out" && grep -qF -- "--socket" <<<"$out"; then pass; else
    fail "$c --help does not show --volume and --socket: $out"
  fi
done

# --- SIGTERM, then the data is on the device ------------------------------------------

stop_daemon
has "zfiled logged its stop" "$(cat "$LOG")" "zfiled stopped"
fails "after the daemon stopped" 1 "zfiled" ls --volume data --socket "$S"
run_to "$TMP/back" cat seq/1 "${E[@]}"
same "seq/1 on the device after SIGTERM" "$TMP/seq1.expected" "$TMP/back"
ok "embedded small range after SIGTERM" cat cnv/0 --offset 100 --length 13 "${E[@]}"
eq "cnv/0 bytes written through zfiled" "$out" "hello, daemon"
run_to "$TMP/back" cat cnv/0 --offset 4096 --length 10000 "${E[@]}"
same "cnv/0 bytes written embedded are intact" "$TMP/r10000" "$TMP/back"
ok "embedded stat seq/2 after SIGTERM" stat seq/2 --json "${E[@]}"
eq "seq/2 reset through zfiled" "$(jqv '[.size, .cond] | join(" ")')" "0 empty"
ok "embedded stat seq/5" stat seq/5 --json "${E[@]}"
eq "seq/5 never written" "$(jqv .size)" 0

finish
