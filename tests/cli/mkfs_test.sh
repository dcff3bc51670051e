#!/usr/bin/env bash
# End-to-end checks of `zfile mkfs` on emulated devices.
#
# Usage: mkfs_test.sh PATH/TO/zfile
#
# The superblock is checked in the emu: zone files themselves (zone 0 is
# DIR/cnv-000000 or DIR/seq-000000), at the kernel zonefs byte offsets, so
# these checks do not go through the code that wrote it.
NAME=mkfs_test
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

# zone0 DIR: the file holding zone 0 of an emu device.
zone0() {
  if [ -f "$1/cnv-000000" ]; then echo "$1/cnv-000000"; else echo "$1/seq-000000"; fi
}

# le32 FILE OFFSET: unsigned little-endian 32-bit integer at OFFSET.
le32() {
  od -An -t u4 --endian=little -j "$2" -N 4 "$1" | tr -d ' '
}
le64() {
  od -An -t u8 --endian=little -j "$2" -N 8 "$1" | tr -d ' '
}
# text FILE OFFSET LEN: bytes up to the first NUL.
text() {
  dd if="$1" bs=1 skip="$2" count="$3" status=none | tr -d '\0'
}

# report_json URI ZONE: one zone of `zfile report --json`.
zone_json() {
  "$ZFILE" report "$1" --zone "$2" --count 1 --json
}

# --- format a device with conventional zones ---------------------------------

D1=$TMP/dev1
U1=emu:$D1
ok "create dev1" emu create "$D1" --size 256M --zone-size 8M --conv 4
ok "mkfs dev1" mkfs "$U1" -L first -o aggr_cnv,uid=1000,gid=100,perm=0660
has "summary: label" "$out" "FS label: first"
has "summary: files" "$out" "Files: cnv/ 1 file, seq/ 28 files"
has "summary: zones" "$out" "4 conventional zones, 28 sequential zones"
has "summary: perm" "$out" "File access permissions: 0660"
uuid1=$(sed -n 's/^  FS UUID: //p' <<<"$out")
if [[ "$uuid1" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]; then
  pass
else
  fail "summary UUID is not a random UUID: '$uuid1'"
fi

Z0=$(zone0 "$D1")
eq "magic" "$(text "$Z0" 0 4)" "SFOZ"
eq "label at 8" "$(text "$Z0" 8 64)" "first"
eq "features at 88" "$(le64 "$Z0" 88)" 15
eq "uid at 96" "$(le32 "$Z0" 96)" 1000
eq "gid at 100" "$(le32 "$Z0" 100)" 100
eq "perm at 104" "$(le32 "$Z0" 104)" 432  # 0660
uuid_hex=$(od -An -t x1 -j 72 -N 16 "$Z0" | tr -d ' \n')
eq "uuid at 72" "$uuid_hex" "${uuid1//-/}"
eq "reserved bytes are zero" "$(dd if="$Z0" bs=1 skip=108 count=3988 status=none | tr -d '\0' | wc -c)" 0
if command -v python3 >/dev/null; then
  # The kernel's check: crc32_le(~0) over the block with the crc zeroed,
  # which is the bitwise NOT of zlib's CRC-32.
  crc_ok=$(python3 -c '
import sys, zlib, struct
b = bytearray(open(sys.argv[1], "rb").read(4096))
stored = struct.unpack_from("<I", b, 4)[0]
b[4:8] = bytes(4)
print("yes" if stored == (~zlib.crc32(bytes(b))) & 0xFFFFFFFF else "no %08x" % stored)
' "$Z0")
  eq "crc as the kernel computes it" "$crc_ok" yes
else
  echo "note: python3 not found; superblock CRC not checked independently" >&2
fi

# --- refusals change nothing -------------------------------------------------

fails "formatted device without -f" 1 "already holds a zonefs file system (label 'first'" \
  mkfs "$U1" -L second
has "refusal names the UUID" "$err" "$uuid1"
has "refusal says how" "$err" "use -f to overwrite"
eq "label unchanged after refusal" "$(text "$Z0" 8 64)" "first"

printf 'data' | dd of="$D1/seq-000010" bs=4096 conv=sync status=none
fails "refusal lists zones with data" 1 "sequential zone 10 (4096 bytes written" mkfs "$U1"
eq "zone 10 untouched by the refusal" "$(zone_json "$U1" 10 | jq '.[0].wp - .[0].start')" 4096

fails "unknown -o feature" 1 "unknown feature" mkfs "$U1" -f -o aggr_cnv,compress
fails "bad uid" 1 "uid must be a decimal number" mkfs "$U1" -f -o uid=root
fails "bad perm" 1 "octal" mkfs "$U1" -f -o perm=999
fails "label too long" 1 "at most 64 bytes" mkfs "$U1" -f -L "$(printf 'L%.0s' {1..65})"
fails "missing device" 2 "URI" mkfs
fails "no such device" 1 "$TMP/none" mkfs "emu:$TMP/none"
eq "bad options changed nothing" "$(zone_json "$U1" 10 | jq '.[0].wp - .[0].start')" 4096
eq "bad options kept the label" "$(text "$Z0" 8 64)" "first"

# --- -f overwrites -----------------------------------------------------------

ok "mkfs -f" mkfs "$U1" -f -L second
has "summary: one zone reset" "$out" "Reset 1 sequential zone that held data"
has "defaults: uid" "$out" "File UID: 0 (default)"
has "defaults: perm" "$out" "File access permissions: 0640 (default)"
has "no aggr_cnv: 3 cnv files" "$out" "Files: cnv/ 3 files, seq/ 28 files"
eq "new label" "$(text "$Z0" 8 64)" "second"
eq "default features" "$(le64 "$Z0" 88)" 0
eq "default perm written as mkzonefs does" "$(le32 "$Z0" 104)" 416  # 0640
eq "zone 10 reset" "$(zone_json "$U1" 10 | jq -r '.[0].condition')" empty
uuid2=$(sed -n 's/^  FS UUID: //p' <<<"$out")
if [ "$uuid2" != "$uuid1" ]; then pass; else fail "-f kept the old UUID"; fi
ok "64-byte label fits" mkfs "$U1" -f -L "$(printf 'M%.0s' {1..64})"
eq "64-byte label stored" "$(text "$Z0" 8 64)" "$(printf 'M%.0s' {1..64})"

# --- a device without conventional zones: zone 0 is sequential ---------------

D2=$TMP/dev2
U2=emu:$D2
ok "create dev2" emu create "$D2" --size 256M --zone-size 8M
ok "mkfs dev2" mkfs "$U2" -L seqzero
has "summary: no cnv files" "$out" "Files: cnv/ 0 files, seq/ 31 files"
has "summary: zone 0 sequential" "$out" "zone 0, sequential, now full"
eq "zone 0 finished" "$(zone_json "$U2" 0 | jq -r '.[0].condition')" full
eq "magic in sequential zone 0" "$(text "$D2/seq-000000" 0 4)" "SFOZ"
eq "label in sequential zone 0" "$(text "$D2/seq-000000" 8 64)" "seqzero"
fails "sequential zone 0 formatted: refused" 1 "label 'seqzero'" mkfs "$U2"
ok "mkfs -f on sequential zone 0" mkfs "$U2" -f -L again
eq "zone 0 rewritten" "$(text "$D2/seq-000000" 8 64)" "again"
eq "zone 0 full again" "$(zone_json "$U2" 0 | jq -r '.[0].condition')" full

# --- zone 0 unusable ---------------------------------------------------------

D3=$TMP/dev3
ok "create dev3" emu create "$D3" --size 64M --zone-size 8M
ok "zone 0 offline" inject "emu:$D3" --zone 0 --offline
fails "offline zone 0" 1 "zone 0 is offline" mkfs "emu:$D3" -f

finish
