#!/usr/bin/env bash
# Run a command as root next to kernel zoned block devices.
#
#   tests/vm/run-in-vm.sh [OPTIONS] [--] CMD [ARGS...]
#
# Boots Debian's kernel under QEMU, loads null_blk (zoned) and scsi_debug
# (host-managed SMR), and runs CMD in a chroot of this machine's root
# filesystem (9p, read-only, with a tmpfs overlay: writes stay in the guest) in
# the current directory. CMD's stdout/stderr go to this script's
# stdout/stderr; the exit status is CMD's, or 125 if the VM failed to boot,
# the guest could not set up the devices, or the timeout expired.
#
# Inside, CMD sees ZFILE_IN_VM=1, ZFILE_VM_NULLBLK=/dev/nullb0 and
# ZFILE_VM_SMR=/dev/sdX (when those devices were requested).
#
# Options:
#   --nullblk "PARAMS"    null_blk module parameters (default below)
#   --no-nullblk          do not load null_blk
#   --scsi-debug "PARAMS" scsi_debug module parameters (default below)
#   --no-scsi-debug       do not load scsi_debug
#   --modprobe "MOD [PARAMS]"  load another module before CMD (repeatable),
#                         e.g. --modprobe zonefs
#   --env NAME[=VALUE]    pass host variable NAME (or set it) into CMD's
#                         environment (repeatable); PATH HOME LANG LC_ALL TZ
#                         TMPDIR are passed when set
#   --mem MB              guest memory (default 2048)
#   --smp N               guest CPUs (default: host CPUs, at most 8)
#   --timeout SECONDS     whole run, boot included (default 1800)
#   --cache DIR           kernel/initramfs cache
#                         (default ${ZFILE_VM_CACHE:-/var/cache/zfile-vm})
#   --accel auto|tcg|kvm  default auto: KVM if /dev/kvm works and is not PVM
#   --clean-tmp           mount an empty tmpfs on /tmp (default: /tmp is the
#                         host's /tmp seen through the overlay)
#   --qemu-arg ARG        extra QEMU argument (repeatable), e.g. for NVMe ZNS
#   --dmesg FILE          save the guest kernel log to FILE after the run
#   --keep                keep the job directory (console log, dmesg) and
#                         print its path
#   --verbose             print the guest console and timings to stderr
#   --vm | --host         force VM or host mode (default auto, see below;
#                         or ZFILE_VM_MODE=vm|host|auto)
#   -h, --help            this text
#
# Host mode: if this machine's kernel can load null_blk/scsi_debug itself
# (root, modprobe, CONFIG_BLK_DEV_ZONED, modules present and not loaded yet),
# the devices are created here and CMD runs directly on the host with
# ZFILE_VM_HOST=1 instead of ZFILE_IN_VM=1; the modules are unloaded after.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DEFAULT_NULLBLK="nr_devices=1 zoned=1 zone_size=8 zone_capacity=6 zone_nr_conv=4 gb=1 memory_backed=1 bs=4096 zone_max_open=6 zone_max_active=8 max_sectors=256"
DEFAULT_SCSI_DEBUG="zbc=host-managed zone_size_mb=8 dev_size_mb=256 zone_nr_conv=4 sector_size=512 zone_max_open=6"

WANT_NULLBLK=1
NULLBLK_PARAMS=$DEFAULT_NULLBLK
WANT_SCSI_DEBUG=1
SCSI_DEBUG_PARAMS=$DEFAULT_SCSI_DEBUG
MEM=2048
SMP=
TIMEOUT=1800
CACHE=${ZFILE_VM_CACHE:-/var/cache/zfile-vm}
ACCEL=auto
CLEAN_TMP=0
DMESG_FILE=
KEEP=0
VERBOSE=0
MODE=${ZFILE_VM_MODE:-auto}
ENV_NAMES=()
EXTRA_MODULES=()
QEMU_EXTRA=()

EXIT_VM_FAILURE=125

log() { echo "zfile-vm: $*" >&2; }
die() { echo "zfile-vm: ERROR: $*" >&2; exit "$EXIT_VM_FAILURE"; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
    echo "Default --nullblk:    $DEFAULT_NULLBLK"
    echo "Default --scsi-debug: $DEFAULT_SCSI_DEBUG"
}

need_arg() { [[ $2 -ge 2 ]] || die "option $1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --nullblk) need_arg "$1" $#; WANT_NULLBLK=1; NULLBLK_PARAMS=$2; shift 2 ;;
    --no-nullblk) WANT_NULLBLK=0; shift ;;
    --scsi-debug) need_arg "$1" $#; WANT_SCSI_DEBUG=1; SCSI_DEBUG_PARAMS=$2; shift 2 ;;
    --no-scsi-debug) WANT_SCSI_DEBUG=0; shift ;;
    --modprobe) need_arg "$1" $#; EXTRA_MODULES+=("$2"); shift 2 ;;
    --env) need_arg "$1" $#; ENV_NAMES+=("$2"); shift 2 ;;
    --mem) need_arg "$1" $#; MEM=$2; shift 2 ;;
    --smp) need_arg "$1" $#; SMP=$2; shift 2 ;;
    --timeout) need_arg "$1" $#; TIMEOUT=$2; shift 2 ;;
    --cache) need_arg "$1" $#; CACHE=$2; shift 2 ;;
    --accel) need_arg "$1" $#; ACCEL=$2; shift 2 ;;
    --clean-tmp) CLEAN_TMP=1; shift ;;
    --qemu-arg) need_arg "$1" $#; QEMU_EXTRA+=("$2"); shift 2 ;;
    --dmesg) need_arg "$1" $#; DMESG_FILE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --verbose | -v) VERBOSE=1; shift ;;
    --vm) MODE=vm; shift ;;
    --host) MODE=host; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) break ;;
    esac
done
[[ $# -gt 0 ]] || die "no command given; usage: $0 [OPTIONS] -- CMD [ARGS...]"

[[ $MEM =~ ^[0-9]+$ ]] || die "--mem must be a number of MB, got '$MEM'"
[[ $TIMEOUT =~ ^[0-9]+$ && $TIMEOUT -gt 0 ]] || die "--timeout must be a positive number of seconds, got '$TIMEOUT'"
if [[ -z $SMP ]]; then
    SMP=$(nproc)
    [[ $SMP -le 8 ]] || SMP=8
fi
[[ $SMP =~ ^[0-9]+$ && $SMP -gt 0 ]] || die "--smp must be a positive number, got '$SMP'"
case $ACCEL in auto | tcg | kvm) ;; *) die "--accel must be auto, tcg or kvm" ;; esac
case $MODE in auto | vm | host) ;; *) die "ZFILE_VM_MODE must be auto, vm or host" ;; esac
for e in "${ENV_NAMES[@]}"; do
    [[ ${e%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env: bad variable name in '$e'"
done

# Single-quote a string for sh/bash.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------------------
# host mode
# ---------------------------------------------------------------------------

kernel_config_has() {
    local opt=$1 cfg
    cfg="/boot/config-$(uname -r)"
    if [[ -r $cfg ]]; then
        grep -Eq "^$opt=(y|m)$" "$cfg"
    elif [[ -r /proc/config.gz ]]; then
        gzip -dc /proc/config.gz | grep -Eq "^$opt=(y|m)$"
    else
        return 1
    fi
}

module_available_on_host() {
    [[ ! -e /sys/module/$1 ]] && modprobe -n -q "$1" 2>/dev/null
}

host_can_run() {
    [[ $EUID -eq 0 ]] || return 1
    command -v modprobe >/dev/null 2>&1 || return 1
    kernel_config_has CONFIG_BLK_DEV_ZONED || return 1
    if [[ $WANT_NULLBLK == 1 ]]; then module_available_on_host null_blk || return 1; fi
    if [[ $WANT_SCSI_DEBUG == 1 ]]; then module_available_on_host scsi_debug || return 1; fi
    local m
    for m in "${EXTRA_MODULES[@]}"; do
        m=${m%% *}
        [[ -e /sys/module/${m//-/_} ]] || modprobe -n -q "$m" 2>/dev/null || return 1
    done
    return 0
}

find_scsi_debug_disk() {
    local q d
    for q in /sys/block/*/queue/zoned; do
        [[ -r $q && "$(<"$q")" == host-managed ]] || continue
        d=${q%/queue/zoned}
        [[ "$(cat "$d/device/model" 2>/dev/null)" == scsi_debug* ]] || continue
        echo "${d##*/}"
        return 0
    done
    return 1
}

HOST_LOADED=()
host_cleanup() {
    local i
    if command -v udevadm >/dev/null 2>&1; then udevadm settle 2>/dev/null || true; fi
    for ((i = ${#HOST_LOADED[@]} - 1; i >= 0; i--)); do
        modprobe -r "${HOST_LOADED[i]}" 2>/dev/null ||
            log "warning: could not unload ${HOST_LOADED[i]} (still in use?)"
    done
}

host_load() {
    local mod=$1
    shift
    [[ -e /sys/module/${mod//-/_} ]] && die "$mod is already loaded on this host; unload it (modprobe -r $mod) or use --vm"
    # shellcheck disable=SC2068 # the parameter list is split on purpose
    modprobe "$mod" $@ || die "modprobe $mod $* failed on the host"
    HOST_LOADED+=("$mod")
}

run_on_host() {
    [[ $EUID -eq 0 ]] || die "host mode needs root"
    command -v modprobe >/dev/null 2>&1 || die "host mode needs modprobe (package kmod)"
    kernel_config_has CONFIG_BLK_DEV_ZONED ||
        die "host mode: this kernel ($(uname -r)) has no CONFIG_BLK_DEV_ZONED (or no /boot/config-*); use the VM"
    trap host_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local n
    modprobe configfs 2>/dev/null || true
    if [[ -d /sys/kernel/config ]] && ! mountpoint -q /sys/kernel/config; then
        mount -t configfs configfs /sys/kernel/config || log "warning: cannot mount configfs"
    fi
    if [[ $WANT_NULLBLK == 1 ]]; then
        # shellcheck disable=SC2086
        host_load null_blk $NULLBLK_PARAMS
        for ((n = 0; n < 100; n++)); do [[ -b /dev/nullb0 ]] && break; sleep 0.1; done
        [[ -b /dev/nullb0 ]] || die "null_blk loaded but /dev/nullb0 did not appear"
        export ZFILE_VM_NULLBLK=/dev/nullb0
    fi
    if [[ $WANT_SCSI_DEBUG == 1 ]]; then
        modprobe sd_mod 2>/dev/null || true
        modprobe sg 2>/dev/null || true
        # shellcheck disable=SC2086
        host_load scsi_debug $SCSI_DEBUG_PARAMS
        local smr=
        for ((n = 0; n < 150; n++)); do smr=$(find_scsi_debug_disk) && break; sleep 0.1; done
        [[ -n $smr ]] || die "scsi_debug loaded but no host-managed scsi_debug disk appeared"
        export ZFILE_VM_SMR=/dev/$smr
    fi
    local m
    for m in "${EXTRA_MODULES[@]}"; do
        # shellcheck disable=SC2086
        [[ -e /sys/module/${m%% *} ]] || host_load $m
    done
    for m in "${ENV_NAMES[@]}"; do
        [[ $m == *=* ]] && export "${m%%=*}=${m#*=}"
    done
    export ZFILE_VM_HOST=1
    local rc=0
    timeout -k 10 "$TIMEOUT" "$@" || rc=$?
    if [[ $rc == 124 ]]; then
        log "ERROR: command timed out after $TIMEOUT s"
        exit "$EXIT_VM_FAILURE"
    fi
    exit "$rc"
}

# ---------------------------------------------------------------------------
# VM mode
# ---------------------------------------------------------------------------

JOB=
QEMU_PID=
TAIL_PIDS=()

vm_cleanup() {
    local p
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    for p in "${TAIL_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -n $JOB && -d $JOB ]]; then
        if [[ $KEEP == 1 ]]; then
            log "job directory kept: $JOB"
        else
            rm -rf "$JOB"
        fi
    fi
}

# Write the job description read by guest-init.sh and the script run in the
# chroot.
write_job() {
    local modtree=$1 e name m
    shift
    {
        echo "WANT_NULLBLK=$WANT_NULLBLK"
        echo "NULLBLK_PARAMS=$(shq "$NULLBLK_PARAMS")"
        echo "WANT_SCSI_DEBUG=$WANT_SCSI_DEBUG"
        echo "SCSI_DEBUG_PARAMS=$(shq "$SCSI_DEBUG_PARAMS")"
        echo "CLEAN_TMP=$CLEAN_TMP"
        echo "MODTREE=$(shq "$modtree")"
    } >"$JOB/config"
    : >"$JOB/modprobe.list"
    for m in "${EXTRA_MODULES[@]}"; do echo "$m" >>"$JOB/modprobe.list"; done

    {
        echo "# generated by run-in-vm.sh"
        for name in PATH HOME LANG LC_ALL TZ TMPDIR; do
            [[ -n ${!name+x} ]] && echo "export $name=$(shq "${!name}")"
        done
        [[ -n ${PATH+x} ]] || echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        echo "export USER=root LOGNAME=root"
        for e in "${ENV_NAMES[@]}"; do
            if [[ $e == *=* ]]; then
                echo "export ${e%%=*}=$(shq "${e#*=}")"
            elif [[ -n ${!e+x} ]]; then
                echo "export $e=$(shq "${!e}")"
            fi
        done
        echo ". /run/zfile-vm/guest.env"
        echo "cd -- $(shq "$PWD") || { echo \"zfile-vm: cannot cd to $PWD in the guest\" >&2; exit 125; }"
        printf 'exec'
        for e in "$@"; do printf ' %s' "$(shq "$e")"; done
        printf '\n'
    } >"$JOB/job.sh"
    : >"$JOB/stdout"
    : >"$JOB/stderr"
    : >"$JOB/console.log"
}

pick_accel() {
    case $ACCEL in
    tcg) echo tcg ;;
    kvm) echo kvm ;;
    auto)
        if [[ -r /dev/kvm && -w /dev/kvm && ! -e /sys/module/kvm_pvm ]]; then
            echo kvm
        else
            echo tcg
        fi
        ;;
    esac
}

show_console_tail() {
    if [[ -s $JOB/console.log ]]; then
        echo "--- last lines of the guest console ---" >&2
        tail -n 30 "$JOB/console.log" >&2
    fi
    if [[ -s $JOB/qemu.log ]]; then
        echo "--- qemu messages ---" >&2
        tail -n 20 "$JOB/qemu.log" >&2
    fi
}

run_in_vm() {
    [[ $EUID -eq 0 ]] || die "VM mode needs root (apt-get installs, 9p export of / with passthrough)"
    [[ -d /proc/self && -x /bin/bash && -x /usr/bin/env ]] || die "host root lacks /bin/bash or /usr/bin/env"

    local info kver='' kernel='' initrd='' modtree='' key val
    info=$("$HERE/fetch-kernel.sh" --cache "$CACHE") || die "preparing the guest kernel failed (see above)"
    while IFS='=' read -r key val; do
        case $key in
        KVER) kver=$val ;;
        KERNEL) kernel=$val ;;
        INITRD) initrd=$val ;;
        MODTREE) modtree=$val ;;
        esac
    done <<<"$info"
    [[ -f $kernel && -f $initrd ]] || die "fetch-kernel.sh gave no kernel/initramfs"

    trap vm_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    JOB=$(mktemp -d "${TMPDIR:-/tmp}/zfile-vm.XXXXXX")
    [[ $JOB != *,* ]] || die "job directory path must not contain a comma: $JOB"
    write_job "$modtree" "$@"

    local accel cpu
    accel=$(pick_accel)
    if [[ $accel == kvm ]]; then
        accel=kvm
        cpu=host
    else
        accel=tcg,thread=multi
        cpu=max
    fi

    local qemu=(
        qemu-system-x86_64
        -nodefaults -no-user-config -display none -vga none -monitor none -no-reboot
        -accel "$accel" -cpu "$cpu" -smp "$SMP" -m "$MEM"
        -kernel "$kernel" -initrd "$initrd"
        -append "console=ttyS0 panic=-1 rdinit=/init mitigations=off quiet"
        -serial "file:$JOB/console.log"
        -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap"
        -virtfs "local,path=$JOB,mount_tag=zfilejob,security_model=passthrough,multidevs=remap"
        "${QEMU_EXTRA[@]}"
    )

    local t0 t1
    t0=$(date +%s.%N)
    [[ $VERBOSE == 1 ]] && log "booting $kver ($accel, $SMP CPUs, $MEM MB)"
    timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null >"$JOB/qemu.log" 2>&1 &
    QEMU_PID=$!
    tail -n +1 -f --pid="$QEMU_PID" "$JOB/stdout" &
    TAIL_PIDS+=($!)
    tail -n +1 -f --pid="$QEMU_PID" "$JOB/stderr" >&2 &
    TAIL_PIDS+=($!)
    if [[ $VERBOSE == 1 ]]; then
        tail -n +1 -f --pid="$QEMU_PID" "$JOB/console.log" >&2 &
        TAIL_PIDS+=($!)
    fi

    local qstatus=0 p
    wait "$QEMU_PID" || qstatus=$?
    QEMU_PID=
    for p in "${TAIL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    TAIL_PIDS=()
    t1=$(date +%s.%N)
    if [[ $VERBOSE == 1 ]]; then
        log "VM ran $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; guest timings (uptime):"
        sed 's/^/    /' "$JOB/timing" >&2 2>/dev/null || true
    fi

    if [[ -n $DMESG_FILE && -f $JOB/dmesg ]]; then
        cp "$JOB/dmesg" "$DMESG_FILE" || log "warning: cannot write $DMESG_FILE"
    fi

    if [[ -s $JOB/rc ]]; then
        local rc
        rc=$(<"$JOB/rc")
        [[ $rc =~ ^[0-9]+$ ]] || die "guest wrote a bad exit status '$rc'"
        exit "$rc"
    fi
    if [[ -s $JOB/setup-error ]]; then
        log "ERROR: guest setup failed:"
        sed 's/^/    /' "$JOB/setup-error" >&2
        exit "$EXIT_VM_FAILURE"
    fi
    if [[ $qstatus == 124 || $qstatus == 137 ]]; then
        log "ERROR: timed out after $TIMEOUT s (VM killed)"
        show_console_tail
        exit "$EXIT_VM_FAILURE"
    fi
    log "ERROR: the VM stopped without running the command (qemu exit status $qstatus)"
    show_console_tail
    exit "$EXIT_VM_FAILURE"
}

case $MODE in
host) run_on_host "$@" ;;
vm) run_in_vm "$@" ;;
auto)
    if host_can_run; then
        log "this kernel supports zoned null_blk/scsi_debug: running on the host (--vm to force a VM)"
        run_on_host "$@"
    else
        run_in_vm "$@"
    fi
    ;;
esac
