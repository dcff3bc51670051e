#!/usr/bin/env bash
# Checks config/zfiled.service without installing or starting it:
# `systemd-analyze verify` accepts it and says nothing about it, the
# directives the daemon relies on are there, and its hardening (as
# `systemd-analyze security` scores it) does not slip.
#
# Usage: service_test.sh PATH/TO/zfiled.service
#
# zfiled is not installed at /usr/bin/zfiled on a build machine, and verify
# refuses a unit whose ExecStart= is not an executable, so it checks a copy
# whose ExecStart= runs /bin/true with the same arguments. That is the only
# difference, which the test checks too.
set -uo pipefail

UNIT=${1:?usage: service_test.sh PATH/TO/zfiled.service}
EXEC="/usr/bin/zfiled --config /etc/zfiled/zfiled.yaml"
# The highest exposure `systemd-analyze security` may give (0.0 to 10.0,
# lower is safer, as tenths); the unit scores 2.4 today.
MAX_EXPOSURE=30

failures=0
pass() { echo "ok: $1"; }
fail() {
  echo "FAIL: $1"
  failures=$((failures + 1))
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "FAIL: systemd-analyze is not installed, so the unit cannot be verified." \
    "It comes with the Debian package systemd; scripts/install-deps.sh installs it."
  exit 1
fi
[[ -r "$UNIT" ]] || { echo "FAIL: cannot read $UNIT"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# in_section SECTION LINE: whether LINE is a line of [SECTION], exactly.
in_section() {
  awk -v sec="[$1]" -v want="$2" '
    /^\[/ { cur = $0; next }
    cur == sec && $0 == want { found = 1 }
    END { exit !found }' "$UNIT"
}

# --- verify --------------------------------------------------------------------

if in_section Service "ExecStart=$EXEC"; then
  pass "ExecStart=$EXEC"
else
  fail "no line 'ExecStart=$EXEC' in [Service]; this test rewrites that line"
fi
copy="$tmp/zfiled.service"
sed "s|^ExecStart=/usr/bin/zfiled |ExecStart=/bin/true |" "$UNIT" >"$copy"
changed=$(diff "$UNIT" "$copy" | grep -c '^>')
if [[ "$changed" == 1 ]]; then
  pass "the copy differs in ExecStart= only"
else
  fail "the copy differs from the unit in $changed lines, not 1"
fi

# verify prints its findings (unknown keys, bad values, missing commands) to
# stderr and still exits 0 for most of them, so its output is what counts.
# Lines about other units (the ones this unit pulls in) are shown, not held
# against this one.
out=$(systemd-analyze verify --man=no "$copy" 2>&1)
rc=$?
ours=$(grep -F "zfiled" <<<"$out")
others=$(grep -vF "zfiled" <<<"$out")
[[ -n "$others" ]] && echo "note: systemd-analyze verify said about other units:" && echo "$others"
if [[ $rc -eq 0 && -z "$ours" ]]; then
  pass "systemd-analyze verify accepts the unit and has nothing to say about it"
else
  fail "systemd-analyze verify (exit $rc) says about the unit:"
  echo "$ours"
fi

# The check above is only as good as verify's habit of naming the unit in
# what it prints: a copy with a misspelt key must draw a line that names it.
sed 's/^ProtectHome=yes$/ProtectHome=yes\nProtectHomee=yes/' "$copy" >"$tmp/broken.service"
if systemd-analyze verify --man=no "$tmp/broken.service" 2>&1 |
  grep -F "broken.service" | grep -qF "ProtectHomee"; then
  pass "systemd-analyze verify names the unit when it finds something (control)"
else
  fail "systemd-analyze verify said nothing naming a unit with an unknown key: its output" \
    "is not what this test expects, so the check above proves nothing"
fi

# --- the FUSE drop-in ---------------------------------------------------------------
# config/zfiled-fuse.conf (installed as zfiled.service.d/fuse.conf) must
# verify with the unit, and must turn off every setting of the unit that
# gives the service a mount namespace of its own (which would hide its FUSE
# mounts from the host).
dropin="$(dirname "$UNIT")/zfiled-fuse.conf"
mkdir -p "$tmp/zfiled.service.d"
cp "$dropin" "$tmp/zfiled.service.d/fuse.conf"
out=$(systemd-analyze verify --man=no "$copy" 2>&1)
rc=$?
ours=$(grep -F "zfiled" <<<"$out")
if [[ $rc -eq 0 && -z "$ours" ]]; then
  pass "systemd-analyze verify accepts the unit with the FUSE drop-in"
else
  fail "systemd-analyze verify (exit $rc) with the FUSE drop-in says:"
  echo "$ours"
fi
for key in ProtectSystem ProtectHome PrivateTmp ProtectKernelTunables ProtectKernelModules \
  ProtectKernelLogs ProtectControlGroups PrivateDevices PrivateMounts ProtectProc ProcSubset \
  PrivateIPC ReadWritePaths ReadOnlyPaths InaccessiblePaths BindPaths BindReadOnlyPaths \
  TemporaryFileSystem MountFlags; do
  grep -q "^$key=" "$UNIT" || continue
  last=$(grep "^$key=" "$dropin" | tail -n 1)
  case "$last" in
    "$key=" | "$key=no" | "$key=false" | "$key=shared") pass "the FUSE drop-in resets $key=" ;;
    *) fail "the FUSE drop-in does not turn off $key= (a mount namespace hides FUSE mounts)" ;;
  esac
done
if grep -q "^PrivateNetwork=yes" "$UNIT"; then
  if grep -qx "PrivateMounts=no" "$dropin"; then
    pass "the FUSE drop-in says PrivateMounts=no (PrivateNetwork= implies it otherwise)"
  else
    fail "the FUSE drop-in lacks PrivateMounts=no, which PrivateNetwork=yes implies otherwise"
  fi
fi
rm -rf "$tmp/zfiled.service.d"

# --- directives the daemon relies on -------------------------------------------

expect() {
  local section=$1 line=$2
  if in_section "$section" "$line"; then
    pass "[$section] $line"
  else
    fail "no line '$line' in [$section]"
  fi
}
expect Service "Type=notify"
expect Service "NotifyAccess=main"
expect Service "WatchdogSec=30s"
# shellcheck disable=SC2016 # $MAINPID is systemd's, not the shell's
expect Service 'ExecReload=/bin/kill -HUP $MAINPID'
expect Service "Restart=on-failure"
expect Service "RuntimeDirectory=zfiled"
expect Service "StateDirectory=zfiled"
expect Service "ProtectSystem=strict"
expect Service "ProtectHome=yes"
expect Service "PrivateTmp=yes"
expect Service "NoNewPrivileges=yes"
expect Service "ProtectKernelTunables=yes"
expect Service "ProtectKernelModules=yes"
expect Service "ProtectControlGroups=yes"
expect Service "RestrictAddressFamilies=AF_UNIX"
expect Service "LockPersonality=yes"
expect Service "MemoryDenyWriteExecute=yes"
expect Service "DevicePolicy=closed"
expect Service "DeviceAllow=block-nullb rw"
expect Service "DeviceAllow=block-blkext rw"
expect Service "DeviceAllow=/dev/fuse rw"
expect Install "WantedBy=multi-user.target"

# The socket of the example configuration beside the unit is in the runtime
# directory, the one place under /run the daemon may write. (The default in
# daemon/config.h is the same; daemon_config_test checks that.)
example="$(dirname "$UNIT")/zfiled.yaml"
if grep -qE '^  path: /run/zfiled/[^/]+$' "$example"; then
  pass "the example's socket is in RuntimeDirectory=zfiled"
else
  fail "$example: the socket path is not a file in /run/zfiled (RuntimeDirectory=zfiled)"
fi

# --- exposure --------------------------------------------------------------------

out=$(systemd-analyze security --offline=true --threshold="$MAX_EXPOSURE" "$copy" 2>&1)
rc=$?
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
if [[ $rc -eq 0 && -n "$level" ]]; then
  pass "systemd-analyze security: exposure $level (at most $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)))"
else
  fail "systemd-analyze security (exit $rc): exposure '${level:-?}', more than" \
    "$((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)); what it holds against the unit:"
  grep '✗' <<<"$out"
fi

if [[ $failures -ne 0 ]]; then
  echo "service_test: $failures check(s) failed"
  exit 1
fi
echo "service_test: all checks passed"
