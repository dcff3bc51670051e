#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and builds two programs
# against that installation the ways users do: a C program with pkg-config
# (PKG_CONFIG_PATH) and a C++ program with find_package(zfile) and
# zfile.hpp. Both run on an emulated device formatted by the installed
# zfile tool, which then reads back what they wrote.
#
# Usage: package_test.sh BUILD_DIR [CMAKE [CC [CXX [GENERATOR [CONFIG [SANITIZE]]]]]]
# (ctest passes them; see tests/CMakeLists.txt)
set -euo pipefail

BUILD=${1:?usage: package_test.sh BUILD_DIR [CMAKE [CC [CXX [GENERATOR [CONFIG [SANITIZE]]]]]]}
CMAKE=${2:-cmake}
CC=${3:-cc}
CXX=${4:-c++}
GENERATOR=${5:-}
CONFIG=${6:-}
SANITIZE=${7:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in pkg-config nm; do
  if ! command -v "$tool" >/dev/null; then
    echo "package_test: $tool is required (scripts/install-deps.sh installs it)" >&2
    exit 1
  fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/zfile-package-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $*" >&2
}

# step DESC CMD...: CMD must succeed; its output is shown only if it fails.
# Later steps depend on earlier ones, so a failed step ends the test.
step() {
  local desc=$1
  shift
  if "$@" >"$TMP/log" 2>&1; then
    pass
  else
    fail "$desc: exit $?"
    sed 's/^/  | /' "$TMP/log" >&2
    echo "$passed passed, $failed failed"
    exit 1
  fi
}

# eq DESC ACTUAL EXPECTED
eq() {
  if [ "$2" == "$3" ]; then pass; else fail "$1: got '$2', expected '$3'"; fi
}

exists() {
  if [ -e "$PREFIX/$1" ]; then pass; else fail "not installed: $1"; fi
}

# --- install ------------------------------------------------------------------------

step "cmake --install" "$CMAKE" --install "$BUILD" --prefix "$PREFIX" ${CONFIG:+--config "$CONFIG"}
for f in bin/zfile include/zfile/zfile.h include/zfile/zfile.hpp; do exists "$f"; done
# GNUInstallDirs picks lib or lib/<multiarch>; find rather than guess.
PC=$(find "$PREFIX" -name zfile.pc -path '*/pkgconfig/*' | head -1)
CONFIG_FILE=$(find "$PREFIX" -name zfileConfig.cmake -path '*/cmake/zfile/*' | head -1)
[ -n "$PC" ] && pass || fail "zfile.pc not installed"
[ -n "$CONFIG_FILE" ] && pass || fail "zfileConfig.cmake not installed"
[ -n "$PC" ] && [ -n "$CONFIG_FILE" ] || {
  echo "$passed passed, $failed failed"
  exit 1
}
LIBDIR=$(dirname "$(dirname "$PC")")
exists "${LIBDIR#"$PREFIX"/}/libzfile.so"
[ -f "$PREFIX/include/zfile/zfile.hpp" ] && ! grep -q '"base/\|"engine/' "$PREFIX/include/zfile/zfile.hpp" &&
  pass || fail "zfile.hpp includes private headers"

# Only the C API leaves the library (the version script's job).
others=$(nm -D --defined-only "$LIBDIR/libzfile.so" | awk '$3 != "" {print $3}' |
  grep -v -e '^zfile_' -e '^ZFILE_' || true)
eq "libzfile.so exports only zfile_* symbols" "$others" ""

export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
# pkg-config ends its output with a space.
eq "pkg-config --libs" "$(pkg-config --libs zfile | sed 's/ *$//')" "-L$LIBDIR -lzfile"
eq "pkg-config --cflags" "$(pkg-config --cflags zfile | sed 's/ *$//')" "-I$PREFIX/include"
[[ "$(pkg-config --modversion zfile)" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] && pass ||
  fail "pkg-config --modversion: $(pkg-config --modversion zfile)"

# --- a device made with the installed tool -----------------------------------------

ZFILE=$PREFIX/bin/zfile
DEV=$TMP/dev
RAW=$TMP/raw
step "emu create" "$ZFILE" emu create "$DEV" --size 128M --zone-size 16M --conv 2
step "mkfs" "$ZFILE" mkfs "emu:$DEV"
step "emu create (left unformatted)" "$ZFILE" emu create "$RAW" --size 64M --zone-size 16M --conv 1

SANFLAGS=()
[ -n "$SANITIZE" ] && SANFLAGS=("-fsanitize=$SANITIZE")

# --- C, with pkg-config --------------------------------------------------------------

# shellcheck disable=SC2046  # pkg-config's output is meant to be split
step "compile the C consumer with pkg-config" \
  "$CC" -std=c11 -Wall -Wextra -Wpedantic -Werror "${SANFLAGS[@]}" \
  "$HERE/consumer/consumer.c" -o "$TMP/consumer_c" \
  $(pkg-config --cflags --libs zfile) "-Wl,-rpath,$(pkg-config --variable=libdir zfile)"
eq "the C consumer uses the installed libzfile" \
  "$(ldd "$TMP/consumer_c" | awk '/libzfile\.so/ {print $3}')" "$LIBDIR/libzfile.so.0"
step "run the C consumer" "$TMP/consumer_c" "emu:$DEV" "emu:$RAW"
eq "C consumer result" "$(cat "$TMP/log")" "c consumer: ok"
head -c 4096 /dev/zero | tr '\0' A >"$TMP/expect_c"
"$ZFILE" cat seq/0 --device "emu:$DEV" >"$TMP/got_c"
cmp -s "$TMP/expect_c" "$TMP/got_c" && pass || fail "seq/0 does not hold the C consumer's block"

# --- C++, with find_package(zfile) ---------------------------------------------------

step "configure the C++ consumer with find_package(zfile)" \
  "$CMAKE" -S "$HERE/consumer" -B "$TMP/cxx" ${GENERATOR:+-G "$GENERATOR"} \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_CXX_FLAGS="${SANFLAGS[*]}" \
  -DCMAKE_EXE_LINKER_FLAGS="${SANFLAGS[*]}"
eq "find_package found the installed package" \
  "$(sed -n 's/^zfile_DIR:PATH=//p' "$TMP/cxx/CMakeCache.txt")" "$(dirname "$CONFIG_FILE")"
step "build the C++ consumer" "$CMAKE" --build "$TMP/cxx"
step "run the C++ consumer" "$TMP/cxx/consumer_cxx" "emu:$DEV" "emu:$RAW"
eq "C++ consumer result" "$(cat "$TMP/log")" "c++ consumer: ok"
eq "cnv/0 holds the C++ consumer's text" \
  "$("$ZFILE" cat cnv/0 --offset 4096 --length 25 --device "emu:$DEV")" "written through zfile.hpp"
eq "seq/1 holds the C++ consumer's block" \
  "$("$ZFILE" stat seq/1 --device "emu:$DEV" | sed -n 's/^size: *//p')" 4096

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
