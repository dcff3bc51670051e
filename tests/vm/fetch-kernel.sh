#!/usr/bin/env bash
# Prepare (once) and print the location of the guest kernel + initramfs used by
# run-in-vm.sh.
#
#   tests/vm/fetch-kernel.sh [--cache DIR] [--force] [--install-only]
#
# - installs qemu-system-x86, busybox-static and xz-utils if missing (root);
# - apt-get downloads the Debian kernel package that linux-image-amd64 depends
#   on, unpacks it with dpkg-deb -x into CACHE/KVER/root (no installation),
#   runs busybox depmod on it;
# - extracts the ELF vmlinux from the bzImage (QEMU boots it through its PVH
#   entry, faster than the bzImage under TCG); falls back to the bzImage;
# - builds CACHE/KVER/initramfs.cpio: busybox-static, the closure of the
#   modules needed to mount the shares and create zoned devices, and /init
#   (guest-init.sh). It is rebuilt when this script, guest-init.sh or busybox
#   change.
#
# Prints KEY=VALUE lines on stdout: KVER, KERNEL, INITRD, MODTREE, KDIR.
# Everything else goes to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ZFILE_VM_CACHE:-/var/cache/zfile-vm}
FORCE=0
INSTALL_ONLY=0

# Modules the initramfs must be able to load (their dependency closure,
# including soft dependencies, is computed from modules.dep / .modinfo).
ROOT_MODULES=(
    virtio_pci 9pnet_virtio 9p overlay configfs loop
    null_blk zonefs nvme scsi_debug sd_mod sg
    crct10dif_pclmul crct10dif_generic crc64_rocksoft_generic
)

log() { echo "fetch-kernel: $*" >&2; }
die() { echo "fetch-kernel: ERROR: $*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --cache) [[ $# -ge 2 ]] || die "--cache needs a directory"; CACHE=$2; shift 2 ;;
    --cache=*) CACHE=${1#*=}; shift ;;
    --force) FORCE=1; shift ;;
    --install-only) INSTALL_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

APT_UPDATED=0
apt_update_once() {
    [[ $APT_UPDATED == 1 ]] && return 0
    log "running apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
}

# Install Debian packages whose marker command/file is missing.
ensure_host_packages() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
    [[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" == "install ok installed" ]] ||
        missing+=(busybox-static)
    command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $EUID -eq 0 ]] || die "missing packages ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
        apt_update_once
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed"
    fi
}

# Name of the versioned kernel package behind linux-image-amd64, or "".
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1
}

# The busybox binary that busybox-static installs.
busybox_bin() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        [[ -x $b ]] && { echo "$b"; return 0; }
    done
    die "busybox not found although busybox-static is installed"
}

cat_module() {
    case $1 in
    *.ko.xz) xz -dc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *.ko.zst) zstd -dc "$1" ;;
    *) cat "$1" ;;
    esac
}

modname_of() {
    local n=${1##*/}
    n=${n%%.ko*}
    echo "${n//-/_}"
}

# Extract the ELF kernel from a bzImage: the payload is an xz stream.
extract_vmlinux() {
    local bz=$1 out=$2 off
    while read -r off; do
        # (not a pipe: tail gets SIGPIPE when xz stops after one stream)
        if xz -dc --single-stream < <(tail -c +"$((off + 1))" "$bz" 2>/dev/null) >"$out.tmp" 2>/dev/null &&
            [[ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
            mv "$out.tmp" "$out"
            return 0
        fi
    done < <(LC_ALL=C grep -obUaP '\xFD\x37\x7A\x58\x5A\x00' "$bz" | cut -d: -f1)
    rm -f "$out.tmp"
    return 1
}

# Unpack the kernel package into $1 (the per-version cache dir).
unpack_kernel() {
    local kdir=$1 pkg=$2 kver=$3 tmp deb
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/zfile-kdl.XXXXXX")
    # apt-get download drops privileges to _apt when it can write the dir.
    chmod 0777 "$tmp"
    log "downloading $pkg"
    if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
        apt_update_once
        (cd "$tmp" && apt-get download -qq "$pkg" >&2) || { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
    fi
    deb=$(ls "$tmp"/*.deb)
    rm -rf "$kdir.partial"
    mkdir -p "$kdir.partial"
    log "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$kdir.partial/root" || { rm -rf "$tmp"; die "dpkg-deb -x $deb failed"; }
    rm -rf "$tmp"
    [[ -d "$kdir.partial/root/lib/modules/$kver" ]] || die "package $pkg has no lib/modules/$kver"
    log "generating modules.dep"
    "$(busybox_bin)" depmod -b "$kdir.partial/root" "$kver" || die "depmod failed"
    local bz="$kdir.partial/root/boot/vmlinuz-$kver"
    [[ -f $bz ]] || die "package $pkg has no boot/vmlinuz-$kver"
    if extract_vmlinux "$bz" "$kdir.partial/vmlinux"; then
        log "extracted ELF vmlinux from the bzImage"
    else
        log "could not extract vmlinux; will boot the bzImage"
    fi
    echo "$pkg" >"$kdir.partial/package"
    rm -rf "$kdir"
    mv "$kdir.partial" "$kdir"
}

# Print the module files (relative to lib/modules/KVER) needed for ROOT_MODULES.
module_closure() {
    local mdir=$1
    local -A path_of=() deps_of=() seen=()
    local -a aliases=()
    local line key name d
    while IFS= read -r line; do
        key=${line%%:*}
        name=$(modname_of "$key")
        path_of[$name]=$key
        deps_of[$name]=${line#*:}
    done <"$mdir/modules.dep"
    local -A builtin=()
    if [[ -f $mdir/modules.builtin ]]; then
        while IFS= read -r line; do builtin[$(modname_of "$line")]=1; done <"$mdir/modules.builtin"
    fi
    local -a queue=("${ROOT_MODULES[@]}")
    while [[ ${#queue[@]} -gt 0 ]]; do
        name=${queue[0]//-/_}
        queue=("${queue[@]:1}")
        [[ -n ${seen[$name]:-} ]] && continue
        seen[$name]=1
        if [[ -z ${path_of[$name]:-} ]]; then
            # a module alias (soft dependencies name crypto algorithms)
            mapfile -t aliases < <(awk -v a="$name" '$1 == "alias" && ($2 == a || $2 == "crypto-" a) { print $3 }' \
                "$mdir/modules.alias" | sort -u)
            if [[ ${#aliases[@]} -gt 0 ]]; then
                queue+=("${aliases[@]}")
            elif [[ -z ${builtin[$name]:-} ]]; then
                die "module $name not found in $mdir (neither module, alias nor built-in)"
            fi
            continue
        fi
        echo "${path_of[$name]}"
        for d in ${deps_of[$name]}; do queue+=("$(modname_of "$d")"); done
        # soft dependencies: "softdep=pre: a b post: c"
        while IFS= read -r line; do
            for d in $line; do
                [[ $d == pre: || $d == post: ]] || queue+=("$d")
            done
        done < <(cat_module "$mdir/${path_of[$name]}" | tr '\0' '\n' | sed -n 's/^softdep=//p')
    done
}

build_initramfs() {
    local kdir=$1 kver=$2 stamp=$3 bb tmp f
    bb=$(busybox_bin)
    tmp=$(mktemp -d "$kdir/initramfs.XXXXXX")
    local mdir="$kdir/root/lib/modules/$kver"
    mkdir -p "$tmp"/{bin,dev,proc,sys,job,lower,upper,newroot,etc,tmp} "$tmp/lib/modules/$kver"
    ln -s bin "$tmp/sbin"
    cp "$bb" "$tmp/bin/busybox"
    while IFS= read -r f; do
        f=${f##*/}
        [[ $f == busybox || -e "$tmp/bin/$f" ]] || ln -s busybox "$tmp/bin/$f"
    done < <("$bb" --list)
    local n=0
    module_closure "$mdir" >"$tmp/modules.list"
    while IFS= read -r f; do
        mkdir -p "$tmp/lib/modules/$kver/$(dirname "$f")"
        cp "$mdir/$f" "$tmp/lib/modules/$kver/$f"
        n=$((n + 1))
    done < <(sort -u "$tmp/modules.list")
    rm -f "$tmp/modules.list"
    cp "$mdir/modules.builtin" "$mdir/modules.order" "$tmp/lib/modules/$kver/" 2>/dev/null || true
    "$bb" depmod -b "$tmp" "$kver" || die "depmod for the initramfs failed"
    install -m 0755 "$HERE/guest-init.sh" "$tmp/init"
    # A console node so that early messages have somewhere to go.
    mknod -m 0600 "$tmp/dev/console" c 5 1 2>/dev/null || true
    (cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) >"$kdir/initramfs.cpio.tmp" ||
        die "cpio failed"
    mv "$kdir/initramfs.cpio.tmp" "$kdir/initramfs.cpio"
    echo "$stamp" >"$kdir/initramfs.stamp"
    rm -rf "$tmp"
    log "built initramfs with $n modules ($(du -h "$kdir/initramfs.cpio" | cut -f1))"
}

main() {
    ensure_host_packages
    [[ $INSTALL_ONLY == 1 ]] && return 0
    mkdir -p "$CACHE" || die "cannot create cache directory $CACHE"
    exec 9>"$CACHE/.lock"
    flock 9 || die "cannot lock $CACHE/.lock"

    local pkg='' kver kdir lists_stamp
    # apt-cache takes a second: remember its answer until the package lists
    # change (apt-get update).
    lists_stamp=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo none)
    if [[ $FORCE == 0 && -f "$CACHE/current" ]]; then
        local stamp_seen pkg_seen
        read -r stamp_seen pkg_seen <"$CACHE/current" || true
        if [[ $stamp_seen == "$lists_stamp" && -n $pkg_seen ]]; then
            pkg=$pkg_seen
        fi
    fi
    [[ -n $pkg ]] || pkg=$(kernel_package)
    if [[ -z $pkg ]]; then
        # No package lists (fresh machine)? Reuse a cached kernel, else update.
        local cached
        cached=$(find "$CACHE" -mindepth 2 -maxdepth 2 -name package -printf '%h\n' 2>/dev/null | sort -V | tail -n 1)
        if [[ -n $cached ]]; then
            pkg=$(cat "$cached/package")
        else
            apt_update_once
            pkg=$(kernel_package)
        fi
    fi
    [[ -n $pkg ]] || die "cannot find the kernel package linux-image-amd64 depends on"
    kver=${pkg#linux-image-}
    kver=${kver%-unsigned}
    kdir="$CACHE/$kver"

    if [[ $FORCE == 1 || ! -f "$kdir/package" ]]; then
        unpack_kernel "$kdir" "$pkg" "$kver"
    fi
    echo "$lists_stamp $pkg" >"$CACHE/current"

    local stamp
    stamp=$(cat "$HERE/guest-init.sh" "${BASH_SOURCE[0]}" "$(busybox_bin)" | sha256sum | cut -d' ' -f1)
    if [[ $FORCE == 1 || ! -f "$kdir/initramfs.cpio" || "$(cat "$kdir/initramfs.stamp" 2>/dev/null)" != "$stamp" ]]; then
        build_initramfs "$kdir" "$kver" "$stamp"
    fi

    local kernel="$kdir/vmlinux"
    [[ -f $kernel ]] || kernel="$kdir/root/boot/vmlinuz-$kver"
    echo "KVER=$kver"
    echo "KDIR=$kdir"
    echo "KERNEL=$kernel"
    echo "INITRD=$kdir/initramfs.cpio"
    echo "MODTREE=$kdir/root/lib/modules/$kver"
}

main
