#!/usr/bin/env bash
# End-to-end checks of the zfile command-line tool on emulated devices.
#
# Usage: cli_test.sh PATH/TO/zfile
#
# Every zfile invocation opens the device afresh, so each check that reads a
# report after a change also checks that the change survived a reopen of
# the emu: directory.
NAME=cli_test
# shellcheck source=tests/cli/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

# info_field URI NAME: the value of "NAME:" in `zfile info URI`.
info_field() {
  "$ZFILE" info "$1" | sed -n "s/^$2: *//p"
}

# report_line URI ZONE: the blkzone-style report line of one zone.
report_line() {
  "$ZFILE" report "$1" --zone "$2" --count 1
}

# cond URI ZONE: the short condition name of a zone ("em", "cl", ...).
cond() {
  report_line "$1" "$2" | sed -n 's/.*zcond: *[0-9]*(\([a-z]*\)).*/\1/p'
}

# wptr URI ZONE: the zone's write pointer as blkzone prints it (hex sectors,
# relative to the zone start).
wptr() {
  report_line "$1" "$2" | sed -n 's/.*wptr \(0x[0-9a-f]*\) .*/\1/p'
}


# --- global options ---------------------------------------------------------

ok "--version" --version
[[ "$out" =~ ^zfile\ [0-9]+\.[0-9]+\.[0-9]+$ ]] && pass || fail "--version prints '$out'"
ok "--help" --help
has "--help lists commands" "$out" "emu"
has "--help has examples" "$out" "zfile report emu:"
ok "inject --help" inject --help
for param in fail_read=OFFSET fail_write=OFFSET power_cut_after=N; do
  has "inject --help names $param" "$out" "$param"
done
fails "no command" 2 "subcommand"
fails "unknown command" 2 "unknown command 'frobnicate'" frobnicate

# --- emu create ---------------------------------------------------------------

D1=$TMP/dev1
U1=emu:$D1
ok "create dev1" emu create "$D1" --size 1G --zone-size 64M --conv 2 --max-open 4 --max-active 6
eq "create summary" "$out" \
  "created emu:$D1: 1 GiB, 16 zones of 64 MiB (zone capacity 64 MiB), 2 conventional, 4096-byte blocks, max open 4, max active 6"
eq "dev1 conventional zone files" "$(find "$D1" -name 'cnv-*' | wc -l)" 2
eq "dev1 sequential zone files" "$(find "$D1" -name 'seq-*' | wc -l)" 14

fails "create over an existing device" 1 "--force" emu create "$D1" --size 1G --zone-size 64M
fails "size not a multiple of the zone size" 1 "not a multiple" \
  emu create "$TMP/bad1" --size 100M --zone-size 64M
[ ! -e "$TMP/bad1" ] && pass || fail "failed create left $TMP/bad1 behind"
fails "zone capacity above zone size" 1 "zone capacity" \
  emu create "$TMP/bad2" --size 1G --zone-size 64M --zone-capacity 128M
fails "only conventional zones" 1 "conventional" \
  emu create "$TMP/bad3" --size 1G --zone-size 64M --conv 16
fails "max open above max active" 1 "max open" \
  emu create "$TMP/bad4" --size 1G --zone-size 64M --max-open 8 --max-active 4
fails "bad size suffix" 2 "bad size" emu create "$TMP/bad5" --size 1Q --zone-size 64M
fails "bad block size" 2 "--block-size" \
  emu create "$TMP/bad6" --size 1G --zone-size 64M --block-size 1000
fails "missing --zone-size" 2 "--zone-size" emu create "$TMP/bad7" --size 1G

# --- info -------------------------------------------------------------------------

eq "info backend" "$(info_field "$U1" backend)" emu
eq "info uri" "$(info_field "$U1" uri)" "$U1"
eq "info zones" "$(info_field "$U1" zones)" 16
eq "info conventional zones" "$(info_field "$U1" 'conventional zones')" 2
eq "info sequential zones" "$(info_field "$U1" 'sequential zones')" 14
eq "info zone size" "$(info_field "$U1" 'zone size')" "64 MiB (67108864 bytes, 131072 sectors)"
eq "info capacity" "$(info_field "$U1" capacity)" "1 GiB (1073741824 bytes, 2097152 sectors)"
eq "info block size" "$(info_field "$U1" 'block size')" 4096
eq "info max open" "$(info_field "$U1" 'max open zones')" 4
eq "info max active" "$(info_field "$U1" 'max active zones')" 6
eq "info empty count" "$(info_field "$U1" '  empty')" 14

ok "info --json" info "$U1" --json
eq "json nr_zones" "$(jqv .nr_zones)" 16
eq "json nr_conv_zones" "$(jqv .nr_conv_zones)" 2
eq "json zone_size" "$(jqv .zone_size)" 67108864
eq "json capacity" "$(jqv .capacity)" 1073741824
eq "json max_open" "$(jqv .max_open)" 4
eq "json backend" "$(jqv .backend)" emu
eq "json native_append is a boolean" "$(jqv '.native_append | type')" boolean
eq "json empty zones" "$(jqv .zones.empty)" 14
eq "json not_wp zones" "$(jqv .zones.not_wp)" 2

D2=$TMP/dev2
U2=emu:$D2
ok "create dev2 (512-byte blocks, smaller capacity)" \
  emu create "$D2" --size 64M --zone-size 8M --zone-capacity 6M --block-size 512
eq "dev2 max open" "$(info_field "$U2" 'max open zones')" none
eq "dev2 max active" "$(info_field "$U2" 'max active zones')" none
eq "dev2 block size" "$(info_field "$U2" 'block size')" 512
eq "dev2 zone capacity" "$(info_field "$U2" 'zone capacity')" "6 MiB (6291456 bytes, 12288 sectors)"

# --- report -------------------------------------------------------------------------

ok "report" report "$U1"
eq "report has one line per zone" "$(wc -l <<<"$out")" 16
eq "report conventional line" "$(sed -n 1p <<<"$out")" \
  "  start: 0x000000000, len 0x020000, cap 0x020000, wptr 0x000000 reset:0 non-seq:0, zcond: 0(nw) [type: 1(CONVENTIONAL)]"
eq "report sequential line" "$(sed -n 3p <<<"$out")" \
  "  start: 0x000040000, len 0x020000, cap 0x020000, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]"
eq "report last line" "$(sed -n 16p <<<"$out")" \
  "  start: 0x0001e0000, len 0x020000, cap 0x020000, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]"
eq "report of a capacity below the zone size" "$(report_line "$U2" 1)" \
  "  start: 0x000004000, len 0x004000, cap 0x003000, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]"
ok "report --zone --count" report "$U1" --zone 2 --count 3
eq "report --count 3 lines" "$(wc -l <<<"$out")" 3
has "report --zone 2 starts at zone 2" "$(sed -n 1p <<<"$out")" "start: 0x000040000,"
ok "report --count past the end" report "$U1" --zone 14 --count 10
eq "report --count stops at the last zone" "$(wc -l <<<"$out")" 2
fails "report zone out of range" 1 "out of range: the device has 16 zones (0-15)" \
  report "$U1" --zone 16

ok "report --json" report "$U1" --json
eq "json report length" "$(jqv length)" 16
eq "json zone number" "$(jqv '.[2].zone')" 2
eq "json start bytes" "$(jqv '.[2].start')" 134217728
eq "json start sectors" "$(jqv '.[2].start_sector')" 262144
eq "json len" "$(jqv '.[2].len')" 67108864
eq "json len sectors" "$(jqv '.[2].len_sectors')" 131072
eq "json capacity" "$(jqv '.[2].capacity')" 67108864
eq "json wp of an empty zone" "$(jqv '.[2].wp')" 134217728
eq "json wp of a conventional zone" "$(jqv '.[0].wp')" null
eq "json type" "$(jqv '.[0].type') $(jqv '.[2].type')" "CONVENTIONAL SEQ_WRITE_REQUIRED"
eq "json condition" "$(jqv '.[0].condition') $(jqv '.[2].condition')" "not-write-pointer empty"
ok "report --json of dev2" report "$U2" --json --zone 1 --count 1
eq "json capacity below zone size" "$(jqv '.[0].capacity') $(jqv '.[0].capacity_sectors')" \
  "6291456 12288"

# --- zone operations ---------------------------------------------------------------

D3=$TMP/dev3
U3=emu:$D3
ok "create dev3" emu create "$D3" --size 1G --zone-size 64M --conv 2 --max-open 4 --max-active 6

# A write pointer moved inside the zone gives a closed zone to work on.
ok "inject --wp 64K" inject "$U3" --zone 5 --wp 64K
eq "zone 5 closed after a partial fill" "$(cond "$U3" 5)" cl
eq "zone 5 wptr 64K" "$(wptr "$U3" 5)" 0x000080
ok "close a closed zone" close "$U3" --zone 5
eq "zone 5 still closed" "$(cond "$U3" 5)" cl
ok "open a closed zone" open "$U3" --zone 5
ok "finish zone 5" finish "$U3" --zone 5
eq "zone 5 full" "$(cond "$U3" 5)" fu
eq "zone 5 wptr at the end" "$(wptr "$U3" 5)" 0x020000
ok "reset zone 5" reset "$U3" --zone 5
eq "zone 5 empty" "$(cond "$U3" 5)" em
eq "zone 5 wptr at the start" "$(wptr "$U3" 5)" 0x000000

ok "open an empty zone" open "$U3" --zone 2
fails "close an empty zone (EIO as on null_blk)" 1 "EIO" close "$U3" --zone 3
# Zones 2-5 take the 4 open slots, so zone 6 is refused: the opens are real.
fails "open beyond max open" 1 "ETOOMANYREFS" open "$U3" --zone 2 --count 5
fails "reset a conventional zone" 1 "zone 0" reset "$U3" --zone 0
# Open zones stay open from one command to the next, as on a kernel device
# (emu keeps them across a clean close; only a power cut closes them).
eq "zones 2-5 still explicitly open in a later process" \
  "$(cond "$U3" 2) $(cond "$U3" 5) $(cond "$U3" 6)" "oe oe em"
fails "finish needs an open slot while 4 zones are open" 1 "open zone limit (4)" \
  finish "$U3" --zone 8
ok "close --all" close "$U3" --all
eq "close --all leaves empty open zones empty" "$(cond "$U3" 2) $(cond "$U3" 5)" "em em"

ok "finish a range" finish "$U3" --zone 8 --count 2
eq "range: zones 8, 9 full, 10 empty" \
  "$(cond "$U3" 8) $(cond "$U3" 9) $(cond "$U3" 10)" "fu fu em"
ok "inject --wp zone 11" inject "$U3" --zone 11 --wp 4K
ok "inject --wp zone 12" inject "$U3" --zone 12 --wp 8K
ok "finish --all" finish "$U3" --all
eq "finish --all fills closed zones, leaves empty ones" \
  "$(cond "$U3" 11) $(cond "$U3" 12) $(cond "$U3" 13)" "fu fu em"
ok "reset --all" reset "$U3" --all
run info "$U3" --json
eq "reset --all empties every sequential zone" "$(jqv .zones.empty) $(jqv .zones.full)" "14 0"

fails "zone op without --zone or --all" 2 "exactly 1" reset "$U3"
fails "zone op with both --zone and --all" 2 "exactly 1" reset "$U3" --zone 2 --all
fails "--count without --zone" 2 "requires" reset "$U3" --count 2 --all
fails "--count 0" 1 "at least 1" reset "$U3" --zone 2 --count 0
fails "zone op out of range" 1 "zone 16 out of range: the device has 16 zones (0-15)" \
  reset "$U3" --zone 16
fails "zone range out of range" 1 "zones 10-19 out of range" open "$U3" --zone 10 --count 10

# --- fault injection -----------------------------------------------------------------

D4=$TMP/dev4
U4=emu:$D4
ok "create dev4" emu create "$D4" --size 512M --zone-size 32M --conv 1
ok "inject --offline" inject "$U4" --zone 3 --offline
eq "zone 3 offline" "$(cond "$U4" 3)" ol
has "offline report line" "$(report_line "$U4" 3)" "zcond:15(ol) [type: 2(SEQ_WRITE_REQUIRED)]"
ok "inject --readonly" inject "$U4" --zone 4 --readonly
eq "zone 4 read-only" "$(cond "$U4" 4)" ro
has "read-only report line" "$(report_line "$U4" 4)" "zcond:13(ro)"
ok "inject --wp 8K" inject "$U4" --zone 6 --wp 8K
eq "zone 6 wptr 8K" "$(wptr "$U4" 6)" 0x000010
run report "$U4" --json
eq "json conditions after inject" \
  "$(jqv '.[3].condition') $(jqv '.[4].condition') $(jqv '.[6].condition')" \
  "offline readonly closed"
eq "json wp after inject" "$(jqv '.[6].wp - .[6].start')" 8192
eq "info counts offline zones" "$(info_field "$U4" '  offline')" 1
eq "info counts read-only zones" "$(info_field "$U4" '  read-only')" 1
eq "info counts closed zones" "$(info_field "$U4" '  closed')" 1
eq "info counts empty zones" "$(info_field "$U4" '  empty')" 12
ok "reset --all with faulty zones" reset "$U4" --all
eq "reset --all skips offline and read-only zones" \
  "$(cond "$U4" 3) $(cond "$U4" 4) $(cond "$U4" 6)" "ol ro em"
ok "inject --online" inject "$U4" --zone 3 --online
eq "zone 3 back in service" "$(cond "$U4" 3)" em
eq "zone 4 still read-only" "$(cond "$U4" 4)" ro

fails "inject into a conventional zone" 1 "conventional" inject "$U4" --zone 0 --offline
fails "inject out of range" 1 "out of range" inject "$U4" --zone 16 --offline
fails "inject unaligned wp" 1 "not a multiple" inject "$U4" --zone 7 --wp 1000
fails "inject wp past capacity" 1 "beyond the zone capacity" inject "$U4" --zone 7 --wp 33M
fails "inject without a fault" 2 "exactly 1" inject "$U4" --zone 7
fails "inject two faults" 2 "exactly 1" inject "$U4" --zone 7 --offline --readonly
fails "inject on zbd" 1 "no fault injection" inject zbd:/dev/nullb0 --zone 1 --offline
ok "inject on mem" inject 'mem:?size=64M&zone_size=8M' --zone 1 --offline

# --force replaces the device, injected faults included, and keeps other files.
mkdir -p "$D4" && echo keep >"$D4/notes.txt"
ok "create --force" emu create "$D4" --size 256M --zone-size 32M --force
eq "--force new geometry" "$(info_field "$U4" zones)" 8
eq "--force clears faults" "$(cond "$U4" 4)" em
[ -f "$D4/notes.txt" ] && pass || fail "--force removed a file that is not the device's"

# --- device errors ---------------------------------------------------------------------

fails "URI without a scheme" 1 "bad device URI" info "$D1"
fails "unknown scheme" 1 "unknown device scheme" info "foo:$D1"
fails "unknown URI parameter" 1 "unknown parameter" info "$U1?bogus=1"
fails "missing directory" 1 "No such file" info "emu:$TMP/nowhere"
fails "missing directory (report)" 1 "No such file" report "emu:$TMP/nowhere"

# --- progress bar ----------------------------------------------------------------------

D5=$TMP/dev5
U5=emu:$D5
ok "create dev5" emu create "$D5" --size 2G --zone-size 32M
ok "finish 32 zones without a terminal" finish "$U5" --zone 0 --count 32
eq "no progress output without a terminal" "$err" ""
run info "$U5" --json
eq "32 zones full" "$(jqv .zones.full)" 32
if command -v script >/dev/null; then
  # script(1) gives zfile a terminal, so it draws the bar zone by zone.
  tty_out=$(script -qec "$(printf '%q ' "$ZFILE" reset "$U5" --zone 0 --count 32)" /dev/null |
    tr '\r' '\n' || true)
  has "progress bar on a terminal" "$tty_out" "32/32 zones (100%)"
  run info "$U5" --json
  eq "zone-by-zone reset emptied 32 zones" "$(jqv .zones.empty)" 64
else
  echo "note: script(1) not found; progress bar not checked" >&2
fi

finish
