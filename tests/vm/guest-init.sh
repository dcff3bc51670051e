#!/bin/sh
# /init of the zfile test VM's initramfs (runs under busybox sh as PID 1).
#
# Contract with run-in-vm.sh (host side), through the read-write 9p share
# tagged "zfilejob", mounted here at /job:
#   in : /job/config   shell assignments (see run-in-vm.sh write_job)
#        /job/job.sh   bash script run inside the chroot (env + cd + exec CMD)
#   out: /job/stdout /job/stderr   output of CMD
#        /job/guest.env            ZFILE_VM_* variables for job.sh to source
#        /job/rc                   exit status of CMD (written last)
#        /job/setup-error          present if the guest could not run CMD
#        /job/dmesg                guest kernel log after CMD
#        /job/timing               guest uptime at each stage
# The chroot is the host root filesystem (9p tag "hostroot", read-only) under
# a tmpfs-backed overlay.

PATH=/bin:/sbin
export PATH
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1

JOB=/job
NEWROOT=/newroot
job_mounted=0

say() { echo "zfile-vm guest: $*"; }

stage() {
    say "$1"
    if [ "$job_mounted" = 1 ]; then
        read -r up _ </proc/uptime
        echo "$up $1" >>"$JOB/timing"
    fi
}

halt_now() {
    sync
    poweroff -f
    # poweroff -f should not return; make sure PID 1 never exits.
    while :; do sleep 60; done
}

# Report a setup problem to the host and power off.
fail() {
    say "ERROR: $*"
    if [ "$job_mounted" = 1 ]; then
        {
            echo "$*"
            echo "--- last kernel messages ---"
            dmesg | tail -n 8
        } >"$JOB/setup-error"
        dmesg >"$JOB/dmesg" 2>/dev/null
    fi
    halt_now
}

load() {
    modprobe "$@" || fail "modprobe $* failed"
}

# Load a module with user-supplied parameters and reject parameters the
# kernel ignored as unknown (the kernel only warns about them).
load_with_params() {
    mod=$1
    shift
    before=$(dmesg | grep -c "unknown parameter")
    # shellcheck disable=SC2068 # word splitting of the parameter list is intended
    modprobe "$mod" $@ || fail "modprobe $mod $* failed (bad or conflicting parameters?)"
    after=$(dmesg | grep -c "unknown parameter")
    if [ "$after" != "$before" ]; then
        fail "$mod rejected parameters: $(dmesg | grep "unknown parameter" | tail -n $((after - before)) | tr '\n' ' ')"
    fi
}

# --- shared folders -------------------------------------------------------
load virtio_pci
load 9pnet_virtio
load 9p
mkdir -p "$JOB"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none zfilejob "$JOB" ||
    { say "ERROR: cannot mount the job share"; halt_now; }
job_mounted=1
stage "job share mounted"

[ -r "$JOB/config" ] || fail "no $JOB/config from the host"
# shellcheck disable=SC1091
. "$JOB/config"

KVER=$(uname -r)
: >"$JOB/guest.env"
echo "export ZFILE_IN_VM=1" >>"$JOB/guest.env"
echo "export ZFILE_VM_KERNEL=$KVER" >>"$JOB/guest.env"

# --- zoned devices --------------------------------------------------------
load configfs
mount -t configfs configfs /sys/kernel/config || fail "cannot mount configfs"

if [ "${WANT_NULLBLK:-0}" = 1 ]; then
    # shellcheck disable=SC2086 # split the parameter list
    load_with_params null_blk $NULLBLK_PARAMS
    n=0
    while [ ! -b /dev/nullb0 ]; do
        n=$((n + 1))
        [ $n -le 100 ] || fail "null_blk loaded but /dev/nullb0 did not appear"
        sleep 0.1
    done
    echo "export ZFILE_VM_NULLBLK=/dev/nullb0" >>"$JOB/guest.env"
    stage "null_blk loaded: $(cat /sys/block/nullb0/queue/zoned) $(cat /sys/block/nullb0/size) sectors"
fi

# The disk model of scsi_debug is "scsi_debug" (padded with blanks).
find_smr() {
    for q in /sys/block/*/queue/zoned; do
        [ -r "$q" ] || continue
        [ "$(cat "$q")" = host-managed ] || continue
        d=${q%/queue/zoned}
        model=$(cat "$d/device/model" 2>/dev/null)
        case "$model" in
        scsi_debug*) echo "${d##*/}"; return 0 ;;
        esac
    done
    return 1
}

if [ "${WANT_SCSI_DEBUG:-0}" = 1 ]; then
    # No udev here: load the upper-level drivers explicitly.
    load sd_mod
    load sg
    # shellcheck disable=SC2086 # split the parameter list
    load_with_params scsi_debug $SCSI_DEBUG_PARAMS
    n=0
    while ! smr=$(find_smr); do
        n=$((n + 1))
        [ $n -le 150 ] || fail "scsi_debug loaded but no host-managed scsi_debug disk appeared (is zbc=host-managed set?)"
        sleep 0.1
    done
    echo "export ZFILE_VM_SMR=/dev/$smr" >>"$JOB/guest.env"
    stage "scsi_debug loaded: /dev/$smr"
fi

# Extra modules asked for with --modprobe, one "NAME PARAMS..." per line.
if [ -s "$JOB/modprobe.list" ]; then
    while read -r line; do
        [ -n "$line" ] || continue
        # shellcheck disable=SC2086
        load_with_params $line
    done <"$JOB/modprobe.list"
fi

# --- root filesystem: host root (ro 9p) + tmpfs overlay -------------------
mkdir -p /lower /upper "$NEWROOT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostroot /lower ||
    fail "cannot mount the host root share"
mount -t tmpfs -o mode=0755 upper /upper || fail "cannot mount tmpfs for the overlay"
mkdir -p /upper/data /upper/work
load overlay
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay "$NEWROOT" ||
    fail "cannot mount the overlay root"

R=$NEWROOT
mount -t proc proc "$R/proc" || fail "cannot mount /proc in the chroot"
mount -t sysfs sysfs "$R/sys" || fail "cannot mount /sys in the chroot"
mount -t configfs configfs "$R/sys/kernel/config" || fail "cannot mount configfs in the chroot"
mount -t devtmpfs devtmpfs "$R/dev" || fail "cannot mount /dev in the chroot"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts "$R/dev/pts" || fail "cannot mount devpts"
mount -t tmpfs -o mode=1777 shm "$R/dev/shm"
[ -e "$R/dev/fd" ] || ln -s /proc/self/fd "$R/dev/fd"
[ -e "$R/dev/stdin" ] || ln -s /proc/self/fd/0 "$R/dev/stdin"
[ -e "$R/dev/stdout" ] || ln -s /proc/self/fd/1 "$R/dev/stdout"
[ -e "$R/dev/stderr" ] || ln -s /proc/self/fd/2 "$R/dev/stderr"
if [ "${CLEAN_TMP:-0}" = 1 ]; then
    mount -t tmpfs -o mode=1777 tmp "$R/tmp" || fail "cannot mount /tmp"
fi
mount -t tmpfs -o mode=0755 run "$R/run" || fail "cannot mount /run"
mkdir -p "$R/run/zfile-vm"
mount --bind "$JOB" "$R/run/zfile-vm" || fail "cannot bind the job share into the chroot"
mount -t debugfs debugfs "$R/sys/kernel/debug" 2>/dev/null
# The full module tree of this kernel (unpacked on the host, in the cache) so
# that CMD can modprobe more modules (busybox modprobe).
if [ -n "${MODTREE:-}" ] && [ -d "$R$MODTREE" ]; then
    mkdir -p "$R/lib/modules/$KVER"
    mount --bind "$R$MODTREE" "$R/lib/modules/$KVER"
fi
stage "root ready"

# --- run CMD --------------------------------------------------------------
chroot "$R" /usr/bin/env -i /bin/bash --noprofile --norc /run/zfile-vm/job.sh \
    </dev/null >"$JOB/stdout" 2>"$JOB/stderr"
rc=$?
stage "command exited with status $rc"
dmesg >"$JOB/dmesg" 2>/dev/null
echo "$rc" >"$JOB/rc.tmp" && mv "$JOB/rc.tmp" "$JOB/rc"
halt_now
