#!/usr/bin/env bash
# End-to-end checks of zfile's file commands (ls, stat, cat, write, truncate,
# info --device, stats, zones) on an emulated device formatted with `zfile mkfs`.
#
# Usage: file_test.sh PATH/TO/zfile
#
# Each command mounts the volume afresh, so every read-back also checks that
# what the previous command wrote survived an unmount and a mount.
NAME=file_test
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# field NAME: the value of "NAME:" in $out (stat, volinfo).
field() {
  sed -n "s/^$1: *//p" <<<"$out"
}

MiB=1048576
ZONE=$((16 * MiB))

# --- a formatted device ---------------------------------------------------------------
# 16 zones of 16 MiB: zone 0 (conventional) holds the superblock, zone 1 is
# cnv/0, zones 2-15 are seq/0-13.

D=$TMP/dev
U=emu:$D
V=(--device "$U")
ok "emu create" emu create "$D" --size 256M --zone-size 16M --conv 2
ok "mkfs" mkfs "$U"

# --- ls -------------------------------------------------------------------------------

ok "ls /" ls "${V[@]}"
eq "root lists cnv and seq" "$out" $'cnv\nseq'
ok "ls / -l" ls / -l "${V[@]}"
has "directories are dr-xr-xr-x" "$out" "dr-xr-xr-x"
ok "ls seq" ls seq "${V[@]}"
eq "seq has 14 files" "$(wc -l <<<"$out")" 14
eq "seq files are numbered from 0" "$(head -1 <<<"$out") $(tail -1 <<<"$out")" "0 13"
ok "ls cnv -l" ls cnv -l "${V[@]}"
eq "ls -l line of a conventional file" "$out" "-rw-r----- 0 0 $ZONE 0"
ok "ls of a file" ls seq/3 "${V[@]}"
eq "a file lists as itself" "$out" "seq/3"
ok "ls seq --json" ls seq --json "${V[@]}"
eq "json entries" "$(jqv length)" 14
eq "json first entry" "$(jqv '.[0] | [.name, .path, .type, .size, .max_size, .cond, .permissions, .uid, .gid] | join(" ")')" \
  "0 seq/0 sequential 0 $ZONE empty 0640 0 0"
ok "ls / --json" ls --json "${V[@]}"
eq "json directory" "$(jqv '.[1] | [.name, .type, .mode_string] | join(" ")')" "seq directory dr-xr-xr-x"
eq "json directory has no zone condition" "$(jqv '.[1].cond')" null

# --- stat -----------------------------------------------------------------------------

ok "stat cnv/0" stat cnv/0 "${V[@]}"
eq "stat type" "$(field type)" conventional
eq "stat size" "$(field size)" "$ZONE"
eq "stat mode" "$(field mode)" "0640 (-rw-r-----)"
eq "stat condition" "$(field condition)" not-write-pointer
ok "stat seq/0 --json" stat seq/0 --json "${V[@]}"
eq "json stat fields" \
  "$(jqv '[.path, .type, .size, .max_size, .zone_start, .zone_len, .block_size, .blocks, .cond, .cond_code, .uid, .gid, .mode_string] | join(" ")')" \
  "seq/0 sequential 0 $ZONE $((2 * ZONE)) $ZONE 4096 0 empty 1 0 0 -rw-r-----"
eq "json stat inode is a number" "$(jqv '.ino | type')" number
ok "stat of a directory" stat seq "${V[@]}"
eq "stat directory type" "$(field type)" directory
eq "stat directory entries" "$(field entries)" 14

# --- cnv round trips ------------------------------------------------------------------

head -c 10000 /dev/urandom >"$TMP/r10000"
ok "buffered write to cnv/0" write cnv/0 --from "$TMP/r10000" --offset 4096 "${V[@]}"
eq "write reports bytes and offset" "$out" "wrote 10000 bytes to cnv/0 at offset 4096"
run_to "$TMP/back" cat cnv/0 --offset 4096 --length 10000 "${V[@]}"
eq "cat exit" "$rc" 0
same "cnv/0 read back after a remount" "$TMP/r10000" "$TMP/back"
run_to "$TMP/back" cat cnv/0 --direct --offset 4096 --length 12288 "${V[@]}"
eq "direct cat exit" "$rc" 0
eq "direct cat length" "$(wc -c <"$TMP/back")" 12288
if cmp -s -n 10000 "$TMP/r10000" "$TMP/back"; then pass; else fail "direct read differs from what was written"; fi
run_to "$TMP/back" cat cnv/0 "${V[@]}"
eq "cat of a whole conventional file is its zone size" "$(wc -c <"$TMP/back")" "$ZONE"
printf 'hello, zone' >"$TMP/hello"
set +e
out=$("$ZFILE" write cnv/0 --offset 100 "${V[@]}" <"$TMP/hello" 2>"$TMP/stderr")
rc=$?
set -e
eq "write from standard input" "$rc $out" "0 wrote 11 bytes to cnv/0 at offset 100"
ok "cat a small range" cat cnv/0 --offset 100 --length 11 "${V[@]}"
eq "small range read back" "$out" "hello, zone"
head -c $((3 * MiB + 4096)) /dev/urandom >"$TMP/big"
run_piped "$TMP/big" write cnv/0 --direct --sync --offset 1M "${V[@]}"
eq "direct write of several chunks through a pipe" "$rc $out" \
  "0 wrote $((3 * MiB + 4096)) bytes to cnv/0 at offset $MiB"
run_to "$TMP/back" cat cnv/0 --offset 1M --length $((3 * MiB + 4096)) "${V[@]}"
same "multi-chunk data read back" "$TMP/big" "$TMP/back"

# --- seq round trips ------------------------------------------------------------------

head -c 8192 /dev/urandom >"$TMP/s8192"
ok "direct write to seq/0" write seq/0 --direct --from "$TMP/s8192" "${V[@]}"
eq "seq write report" "$out" "wrote 8192 bytes to seq/0 at offset 0"
ok "buffered append to seq/0" write seq/0 --append --from "$TMP/s8192" "${V[@]}"
eq "append says where it landed" "$out" "appended 8192 bytes to seq/0 at offset 8192"
ok "stat after two writes" stat seq/0 --json "${V[@]}"
eq "seq size is the write pointer" "$(jqv .size)" 16384
eq "seq blocks" "$(jqv .blocks)" 32
cat "$TMP/s8192" "$TMP/s8192" >"$TMP/s16384"
run_to "$TMP/back" cat seq/0 "${V[@]}"
same "seq/0 read back" "$TMP/s16384" "$TMP/back"
run_to "$TMP/back" cat seq/0 --direct "${V[@]}"
same "seq/0 direct read back" "$TMP/s16384" "$TMP/back"
run_to "$TMP/back" cat seq/0 --offset 12K --length 1M "${V[@]}"
eq "reads are clipped at the size" "$(wc -c <"$TMP/back")" 4096
run_to "$TMP/back" cat seq/0 --offset 1M "${V[@]}"
eq "read past the size is empty" "$rc $(wc -c <"$TMP/back")" "0 0"
run_piped "$TMP/s8192" write seq/0 --append --direct "${V[@]}"
eq "direct append from a pipe" "$rc $out" "0 appended 8192 bytes to seq/0 at offset 16384"

# --- sequential write rules -----------------------------------------------------------

fails "write not at the write pointer" 1 "write pointer" write seq/0 --from "$TMP/s8192" "${V[@]}"
has "the error is EINVAL" "$err" "EINVAL"
fails "write beyond the write pointer" 1 "write pointer" \
  write seq/0 --offset 1M --from "$TMP/s8192" "${V[@]}"
head -c 5000 /dev/urandom >"$TMP/u5000"
fails "unaligned direct write" 1 "aligned" write seq/1 --direct --from "$TMP/u5000" "${V[@]}"
run stat seq/1 --json "${V[@]}"
eq "a refused write changes nothing" "$(jqv .size)" 0
run_piped "$TMP/u5000" write seq/1 --direct "${V[@]}"
check_failure "unaligned direct write through a pipe" 1 "aligned"
head -c $((MiB + 100)) /dev/urandom >"$TMP/u1m"
run_piped "$TMP/u1m" write seq/2 --direct "${V[@]}"
check_failure "partial final block after a full chunk" 1 "partial block of 100 bytes"
has "the error says what was written" "$err" "$MiB bytes were written"
fails "unaligned buffered write to a sequential file" 1 "whole blocks" \
  write seq/1 --from "$TMP/u5000" "${V[@]}"
fails "unaligned direct offset" 1 "aligned" \
  write cnv/0 --direct --offset 100 --from "$TMP/s8192" "${V[@]}"
fails "write past the maximum size" 1 "EFBIG" \
  write cnv/0 --offset $((ZONE - 4096)) --from "$TMP/s8192" "${V[@]}"

fails "truncate to another size" 1 "EPERM" truncate seq/0 4096 "${V[@]}"
has "truncate error says what is allowed" "$err" "truncated to 0"
fails "truncate a conventional file" 1 "EPERM" truncate cnv/0 0 "${V[@]}"
ok "truncate to 0 resets" truncate seq/0 0 "${V[@]}"
eq "truncate report" "$out" "seq/0: size 0 (zone reset)"
run stat seq/0 --json "${V[@]}"
eq "reset file is empty" "$(jqv .size) $(jqv .cond)" "0 empty"
ok "write at 0 after the reset" write seq/0 --direct --from "$TMP/s8192" "${V[@]}"
ok "truncate to the capacity finishes" truncate seq/3 16M "${V[@]}"
run stat seq/3 --json "${V[@]}"
eq "finished file is full" "$(jqv .size) $(jqv .cond)" "$ZONE full"
fails "write to a full file" 1 "EFBIG" write seq/3 --append --from "$TMP/s8192" "${V[@]}"

fails "O_APPEND on a conventional file" 1 "O_APPEND" \
  write cnv/0 --append --from "$TMP/s8192" "${V[@]}"
has "O_APPEND error is EINVAL" "$err" "EINVAL"
fails "--append with --offset" 2 "excludes" \
  write seq/0 --append --offset 4096 --from "$TMP/s8192" "${V[@]}"

# --- errors ---------------------------------------------------------------------------

fails "unknown file" 1 "no such file" stat seq/99 "${V[@]}"
has "unknown file is ENOENT" "$err" "ENOENT"
fails "unknown file (cat)" 1 "no such file" cat nope/1 "${V[@]}"
fails "unknown directory (ls)" 1 "no such file" ls nope "${V[@]}"
fails "bad mount option" 1 "frobnicate" ls "${V[@]}" -o frobnicate
fails "bad mount option value" 1 "errors" ls "${V[@]}" -o errors=sometimes
fails "missing --device" 2 "--device" ls
fails "missing input file" 1 "cannot open" write seq/5 --from "$TMP/nowhere" "${V[@]}"
ok "emu create (unformatted)" emu create "$TMP/raw" --size 64M --zone-size 16M --conv 1
fails "unformatted device" 1 "cannot mount" ls --device "emu:$TMP/raw"

# --- info --device and stats ----------------------------------------------------------------

ok "info --device (the volume)" info "${V[@]}"
eq "volinfo files" "$(field 'conventional files') $(field 'sequential files')" "1 14"
eq "volinfo block size" "$(field 'block size')" 4096
eq "volinfo zone size" "$(field 'zone size')" "16 MiB ($ZONE bytes)"
eq "volinfo read-only" "$(field read-only)" no
ok "info --device --json" info --json "${V[@]}"
eq "json volinfo" "$(jqv '[.nr_cnv_files, .nr_seq_files, .zone_capacity, .max_open, .read_only] | join(" ")')" \
  "1 14 $ZONE 0 false"
[[ "$(jqv .uuid)" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] && pass ||
  fail "volume uuid: $(jqv .uuid)"
fails "info with both a URI and --device" 2 "give one of" info "$U" "${V[@]}"
fails "info with neither a URI nor --device" 2 "give one of" info

ok "stats --json" stats --json "${V[@]}"
eq "stats of a fresh mount" "$(jqv '[.direct_write_ops, .buffered_write_ops, .zone_resets] | join(" ")')" "0 0 0"
ok "stats text" stats "${V[@]}"
has "stats text lists counters" "$out" "direct_write_bytes:"
ok "write --stats" write seq/4 --direct --stats --from "$TMP/s16384" "${V[@]}"
eq "direct write counters moved" \
  "$(jqv '[.direct_write_ops, .direct_write_bytes, .buffered_write_ops] | join(" ")' "$err")" "1 16384 0"
ok "buffered append --stats" write seq/4 --append --stats --from "$TMP/s8192" "${V[@]}"
eq "buffered write counters moved" \
  "$(jqv '[.buffered_write_bytes, .writethrough_writes >= 1] | join(" ")' "$err")" "8192 true"
run_to "$TMP/back" cat seq/4 --stats "${V[@]}"
eq "read counters moved" "$(jqv '.buffered_read_bytes' "$err")" 24576
ok "truncate --stats" truncate seq/4 0 --stats "${V[@]}"
eq "zone reset counted" "$(jqv '.zone_resets' "$err")" 1

# --- zones ----------------------------------------------------------------------------
# seq/0 holds 8K, seq/3 is full; make seq/6 half full and seq/8 read-only.

ok "inject: seq/6 half written" inject "$U" --zone 8 --wp 8M
ok "inject: seq/8 read-only" inject "$U" --zone 10 --readonly
ok "zones" zones "${V[@]}"
eq "zones table has a line per file" "$(wc -l <<<"$out")" 14
has "zones table: half-written file" "$(sed -n 7p <<<"$out")" " 50%"
ok "zones --json" zones --json "${V[@]}"
eq "json zones" "$(jqv '[.[6].size, .[3].cond, .[8].cond] | join(" ")')" "$((8 * MiB)) full readonly"
ok "zones --map (ascii)" zones --map --charset ascii "${V[@]}"
# seq/0 (8K) and seq/2 (the 1 MiB chunk written before the partial block
# was refused) get the lowest mark, seq/3 is full, seq/6 half, seq/8 'R'.
eq "ascii map row" "$(sed -n 2p <<<"$out")" " 0 :.:@..+.R....."
has "ascii map legend" "$out" "legend: . empty  :-=+*#% 1/8 to 7/8 written  @ full  R read-only  X offline"
has "ascii map summary" "$out" "9 empty, 3 partly written, 1 full, 1 read-only, 0 offline"
ok "zones --map (utf8)" zones --map --charset utf8 "${V[@]}"
eq "utf8 map row" "$(sed -n 2p <<<"$out")" " 0 ▁·▁█··▄·R·····"
ok "zones --map into a pipe is ascii" zones --map "${V[@]}"
has "auto charset off a terminal" "$(sed -n 2p <<<"$out")" ":.:@..+.R"
if command -v script >/dev/null; then
  # script(1) gives zfile a terminal: block elements in a UTF-8 locale only.
  # tty_map LANG: the map as a terminal in that locale gets it.
  tty_map() {
    env -u LC_ALL -u LC_CTYPE LANG="$1" \
      script -qec "$(printf '%q ' "$ZFILE" zones --map "${V[@]}")" /dev/null | tr -d '\r'
  }
  has "auto charset on a UTF-8 terminal" "$(tty_map C.UTF-8)" "▁·▁█··▄·R"
  has "auto charset on a non-UTF-8 terminal" "$(tty_map C)" ":.:@..+.R"
else
  echo "note: script(1) not found; terminal detection of zones --map not checked" >&2
fi

finish
