#!/usr/bin/env bash
# `zfile bench` on an emulated device formatted with `zfile mkfs`: that a
# short job reports what it did and leaves what it wrote on the file, and
# that bad input is refused in words and changes nothing. Speed is not
# checked here (benchmarks under bench/ measure it).
#
# Usage: bench_test.sh PATH/TO/zfile
NAME=bench_test
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

MiB=1048576

# 16 zones of 16 MiB: zone 0 holds the superblock, zone 1 is cnv/0, zones
# 2-15 are seq/0-13.
D=$TMP/dev
V=(--device "emu:$D")
ok "emu create" emu create "$D" --size 256M --zone-size 16M --conv 2
ok "mkfs" mkfs "emu:$D"

# size PATH: the file's size, as `zfile stat --json` says.
size() {
  run stat "$1" --json "${V[@]}"
  jqv .size
}

# --- sequential writes: the file grows by what was written ----------------------------

ok "bench write seq/0" bench --file seq/0 --rw write --bs 1M --size 4M --direct "${V[@]}"
has "text reports the I/Os and bytes" "$out" "4 I/Os, 4194304 bytes (4 MiB)"
has "text names the job" "$out" "seq/0: write, bs 1 MiB, direct, queue depth 1"
has "text has the latency line" "$out" "latency (us): mean"
eq "seq/0 grew by 4 MiB" "$(size seq/0)" $((4 * MiB))

ok "bench write seq/0 --json (appends at the write pointer)" bench --file seq/0 --rw write \
  --bs 512K --size 2M --direct --json "${V[@]}"
eq "json ops, bytes, bs, rw, direct" \
  "$(jqv '[.ops, .bytes, .bs, .rw, .direct, .queue_depth] | join(" ")')" \
  "4 $((2 * MiB)) 524288 write true 1"
eq "json latency count fields" "$(jqv '.lat_ns | keys | join(" ")')" "max mean min p50 p99"
eq "json rates are numbers" "$(jqv '[.bw_bytes, .iops, .elapsed_ns] | map(type) | join(" ")')" \
  "number number number"
eq "latencies in order: min <= p50 <= p99 <= max, mean within" \
  "$(jqv '.lat_ns | .min <= .p50 and .p50 <= .p99 and .p99 <= .max and .min <= .mean and
    .mean <= .max and .min > 0')" true
eq "seq/0 grew by 2 MiB more" "$(size seq/0)" $((6 * MiB))

run_to "$TMP/seq0" cat seq/0 "${V[@]}"
eq "cat seq/0 reads back 6 MiB" "$(wc -c <"$TMP/seq0")" $((6 * MiB))
# Random-looking bytes: about 1 in 256 is a zero, far from an unwritten zone.
nonzero=$(head -c "$MiB" "$TMP/seq0" | tr -d '\0' | wc -c)
eq "what was written is data, not zeroes" "$((nonzero > MiB * 9 / 10))" 1

ok "bench buffered write (no --direct)" bench --file seq/2 --rw write --bs 4K --io-limit 64K \
  "${V[@]}"
has "buffered job says so" "$out" "seq/2: write, bs 4 KiB, buffered"
eq "seq/2 holds 64 KiB after the volume closed" "$(size seq/2)" 65536

# --regbuf embedded: zfile_buf_alloc's memory is plain memory there, and
# nothing goes through a daemon.
ok "bench write --regbuf (embedded)" bench --file seq/5 --rw write --bs 256K --size 1M --direct \
  --regbuf --json "${V[@]}"
eq "--regbuf embedded: ops, flag, no daemon copies" \
  "$(jqv '[.ops, .registered_buffer, .copied_bytes, .zero_copy_bytes] | join(" ")')" \
  "4 true 0 0"
eq "seq/5 grew by 1 MiB" "$(size seq/5)" "$MiB"
ok "bench read --regbuf (embedded)" bench --file seq/5 --rw read --bs 256K --regbuf "${V[@]}"
has "the text says registered buffer" "$out" "seq/5: read, bs 256 KiB, buffered, registered buffer"
eq "and no zfiled line" "$(grep -c "zfiled:" <<<"$out")" 0

# --- reads and conventional files -----------------------------------------------------

# Every block once: randwrite over the first 250 blocks of the fresh
# (all-zero) cnv/0, 250 not a power of two so that the shuffle has values to
# skip. Every block written holds the same pattern; a block written twice
# means another was missed, which stays zero.
ok "bench randwrite cnv/0 --size 1000K (each block once)" bench --file cnv/0 --rw randwrite \
  --bs 4K --size 1000K --direct --json "${V[@]}"
eq "randwrite did 250 I/Os" "$(jqv .ops)" 250
run_to "$TMP/cnv0" cat cnv/0 "${V[@]}"
eq "blocks 0-249 all hold the pattern, blocks 250-511 are still zero" "$(python3 -c '
import sys
d = open(sys.argv[1], "rb").read(2 << 20)
b = [d[i:i + 4096] for i in range(0, len(d), 4096)]
print(any(b[0]), sum(x == b[0] for x in b[:250]), sum(any(x) for x in b[250:]))' "$TMP/cnv0")" \
  "True 250 0"

ok "bench read seq/0 (default --size: the whole file)" bench --file seq/0 --rw read --bs 64K \
  --direct --json "${V[@]}"
eq "read the 6 MiB written" "$(jqv '[.ops, .bytes] | join(" ")')" "96 $((6 * MiB))"
ok "bench randread cnv/0 --io-limit" bench --file cnv/0 --rw randread --bs 4K --direct \
  --io-limit 1M --json "${V[@]}"
eq "randread ops" "$(jqv .ops)" 256
ok "bench randread past one pass" bench --file cnv/0 --rw randread --size 64K \
  --io-limit 256K --json "${V[@]}"
eq "randread goes round the region" "$(jqv .ops)" 64
ok "bench randread --runtime stops it" bench --file cnv/0 --rw randread --io-limit 1T \
  --runtime 0.2 --json "${V[@]}"
eq "some I/O done, and it stopped at about 0.2 s" \
  "$(jqv '.ops > 0 and .elapsed_ns >= 200000000 and .elapsed_ns < 5000000000')" true
ok "bench randwrite cnv/0" bench --file cnv/0 --rw randwrite --bs 4K --direct --io-limit 64K \
  --json "${V[@]}"
eq "randwrite bytes" "$(jqv .bytes)" 65536
eq "a conventional file keeps its size" "$(size cnv/0)" $((16 * MiB))

# --- bad input: refused in words, nothing changed -------------------------------------

fails "bs not a multiple of the block size with --direct" 1 \
  "not a multiple of the 4096-byte block size" \
  bench --file seq/0 --rw write --bs 1000 --direct "${V[@]}"
fails "bs not whole blocks on a sequential file" 1 "sequential files take whole blocks" \
  bench --file seq/0 --rw write --bs 1000 "${V[@]}"
fails "bs 0" 1 "--bs 0" bench --file cnv/0 --bs 0 "${V[@]}"
fails "unknown --rw" 2 "unknown workload; give write, read, randread or randwrite" \
  bench --file seq/0 --rw trim "${V[@]}"
fails "missing file" 1 "no such file 'seq/99'" bench --file seq/99 --rw write "${V[@]}"
fails "a directory" 1 "is a directory" bench --file seq "${V[@]}"
fails "no --file" 2 "--file" bench --rw read "${V[@]}"
fails "no volume" 2 "which volume?" bench --file seq/0
fails "random writes to a sequential file" 1 "write pointer only" \
  bench --file seq/0 --rw randwrite "${V[@]}"
fails "more than the zone has left" 1 "does not fit" \
  bench --file seq/0 --rw write --bs 1M --size 11M --direct "${V[@]}"
fails "--io-limit past the zone: the room left named" 1 \
  "does not fit: 10485760 bytes are left in the zone from the write pointer at 6291456" \
  bench --file seq/0 --rw write --bs 1M --io-limit 11M "${V[@]}"
fails "--io-limit past --size (the zone has room)" 1 \
  "--io-limit 2097152 is more than --size 1048576: appends to a sequential file cannot go round" \
  bench --file seq/0 --rw write --bs 1M --size 1M --io-limit 2M "${V[@]}"
fails "--io-limit below --bs" 1 "seq/0: --io-limit 4096 is less than one --bs block" \
  bench --file seq/0 --rw write --bs 1M --io-limit 4K "${V[@]}"
fails "reading an empty file" 1 "nothing to read" bench --file seq/1 --rw read "${V[@]}"
fails "reading past the size" 1 "more than the file's" \
  bench --file seq/0 --rw read --size 7M "${V[@]}"
fails "negative runtime" 2 "--runtime" bench --file cnv/0 --runtime -1 "${V[@]}"
fails "runtime past the cap (would overflow)" 2 "from 0 to 1000000" \
  bench --file cnv/0 --runtime 1e10 "${V[@]}"
fails "negative seed" 2 "give a whole number" bench --file cnv/0 --seed -1 "${V[@]}"
fails "bad size" 2 "size" bench --file cnv/0 --bs 4Q "${V[@]}"
eq "the refused jobs left seq/0 as it was" "$(size seq/0)" $((6 * MiB))
eq "and seq/1 empty" "$(size seq/1)" 0

# A full zone: writing is refused with the way out.
ok "fill seq/3" bench --file seq/3 --rw write --bs 1M --direct "${V[@]}"
eq "seq/3 full" "$(size seq/3)" $((16 * MiB))
fails "writing a full zone" 1 "zone is full" bench --file seq/3 --rw write "${V[@]}"

# Without --size, --io-limit may take any of the room left in the zone.
ok "--io-limit within the zone, no --size" bench --file seq/4 --rw write --bs 1M --io-limit 2M \
  "${V[@]}"
eq "seq/4 holds 2 MiB" "$(size seq/4)" $((2 * MiB))

finish
