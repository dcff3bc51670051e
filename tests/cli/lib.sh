# Shared helpers of the zfile shell tests. Source it after setting NAME:
#   NAME=cli_test; source "$(dirname "$0")/lib.sh" "$@"
# It takes the zfile binary as $1, makes $TMP (removed at exit), and defines
# the checks; each check counts a pass or prints a FAIL line. `finish` prints
# "N passed, M failed" and sets the exit status.
set -euo pipefail

ZFILE=${1:?usage: $NAME.sh PATH/TO/zfile}
if ! command -v jq >/dev/null; then
  echo "$NAME: jq is required to check --json output (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/zfile-$NAME.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $*" >&2
}

# run ARGS...: runs zfile; sets $out (stdout), $err (stderr) and $rc.
run() {
  set +e
  out=$("$ZFILE" "$@" 2>"$TMP/stderr")
  rc=$?
  set -e
  err=$(<"$TMP/stderr")
}

# run_to FILE ARGS...: runs zfile with stdout into FILE (binary data); sets
# $err and $rc.
run_to() {
  local file=$1
  shift
  set +e
  "$ZFILE" "$@" >"$file" 2>"$TMP/stderr"
  rc=$?
  set -e
  err=$(<"$TMP/stderr")
}

# run_piped SRC ARGS...: runs zfile with SRC coming through a pipe (so zfile
# cannot know its size up front); sets $out, $err and $rc.
run_piped() {
  local src=$1
  shift
  set +e
  out=$(cat "$src" | "$ZFILE" "$@" 2>"$TMP/stderr")
  rc=$?
  set -e
  err=$(<"$TMP/stderr")
}

# ok DESC ARGS...: zfile ARGS must succeed.
ok() {
  local desc=$1
  shift
  run "$@"
  if [ "$rc" -eq 0 ]; then pass; else fail "$desc: exit $rc: $err"; fi
}

# check_failure DESC CODE PATTERN: the last run must have exited CODE with an
# error starting with "zfile: " that contains PATTERN (fixed string, any case).
check_failure() {
  local desc=$1 code=$2 pattern=$3
  if [ "$rc" -ne "$code" ]; then
    fail "$desc: exit $rc, expected $code (stderr: $err)"
  elif [[ "$err" != zfile:* ]]; then
    fail "$desc: error does not start with 'zfile: ': $err"
  elif ! grep -qiF -- "$pattern" <<<"$err"; then
    fail "$desc: error lacks '$pattern': $err"
  else
    pass
  fi
}

# fails DESC CODE PATTERN ARGS...: zfile ARGS must fail that way.
fails() {
  local desc=$1 code=$2 pattern=$3
  shift 3
  run "$@"
  check_failure "$desc" "$code" "$pattern"
}

# eq DESC ACTUAL EXPECTED
eq() {
  if [ "$2" == "$3" ]; then pass; else fail "$1: got '$2', expected '$3'"; fi
}

# has DESC TEXT PATTERN: TEXT contains the fixed string PATTERN.
has() {
  if grep -qF -- "$3" <<<"$2"; then pass; else fail "$1: no '$3' in: $2"; fi
}

# same DESC FILE1 FILE2: the files hold the same bytes.
same() {
  if cmp -s "$2" "$3"; then pass; else fail "$1: $2 and $3 differ"; fi
}

# jqv FILTER [TEXT]: applies FILTER to TEXT (default $out); "JQ-ERROR" when
# it is not JSON.
jqv() {
  jq -r "$1" <<<"${2-$out}" 2>/dev/null || echo "JQ-ERROR"
}

# wait_ready: waits for the zfiled started as $DAEMON_PID (its messages in
# $LOG) to log that it is ready, which it does only once its socket
# listens (and its FUSE mount, if any, is up); exits the test, with the log,
# if zfiled exits first or is not ready within 10 s.
wait_ready() {
  local _
  for _ in $(seq 1 200); do
    if grep -q "zfiled ready" "$LOG"; then return 0; fi
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      wait "$DAEMON_PID" || true
      DAEMON_PID=
      echo "$NAME: zfiled exited at start:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "$NAME: zfiled did not get ready within 10 s:" >&2
  cat "$LOG" >&2
  exit 1
}

# finish: the closing count; the exit status says whether anything failed.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
