#!/usr/bin/env bash
# Installs the Debian 12 packages that zfile needs to build, test and benchmark.
# Idempotent: when everything is present it does nothing (and needs no network).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libzbd-dev libnvme-dev liburing-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libfuse3-dev fuse3 libsystemd-dev libcli11-dev
  fio zbd-utils util-linux jq bsdutils python3
  # tests/fuse/fuse_test.sh: strace stalls the device's reads to test the
  # FUSE workers' stop timeout.
  strace
  # tests/daemon/service_test.sh: systemd-analyze (systemd), and /bin/kill
  # (procps), which zfiled.service's ExecReload= runs and verify looks for.
  systemd procps
  # VM tier (tests/vm): Debian's kernel under QEMU with null_blk and scsi_debug.
  qemu-system-x86 busybox-static xz-utils cpio kmod
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
