#!/usr/bin/env bash
# Builds vx86's Debian guests from Debian's own packages (Linux host with apt).
#
#   scripts/build-guest.sh [initramfs|disk|all]     (default: all)
#
# Everything is cached under $VX86_GUEST_CACHE (default: ./guest-cache); a
# second run with the same packages reuses what exists. Outputs, in
# $VX86_GUEST_CACHE/out/:
#   vmlinuz                  Debian's stock amd64 kernel (linux-image-amd64)
#   initramfs-ctr.cpio.gz    busybox /init that runs a namespaced, cgroup-limited container
#   initramfs-disk.cpio.gz   busybox /init that loads the ATA + ext4 modules and switch_roots
#   disk.img                 raw ext4 image: debootstrap --variant=minbase --include=crun bookworm
#
# Packages come from `apt-get download` (the machine's own apt sources; no
# mirror is named here). debootstrap needs a mirror argument: it is read from
# the machine's apt sources at run time. Needs: apt-get, dpkg-deb, cpio, gzip,
# kmod (modinfo), and for the disk guest debootstrap, e2fsprogs, python3, root.
set -euo pipefail

what=${1:-all}
here=$(cd "$(dirname "$0")" && pwd)
cache=${VX86_GUEST_CACHE:-$here/../guest-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
debs=$cache/debs
out=$cache/out
mkdir -p "$debs" "$out"

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb cpio gzip; do
    command -v "$tool" >/dev/null || die "$tool not found (install it with apt-get)"
done

# Downloads a package (by name) into the cache once; prints the .deb path.
fetch() {
    local pkg=$1 f
    f=$(ls "$debs"/"${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$f" ]; then
        (cd "$debs" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
        f=$(ls "$debs"/"${pkg}"_*.deb | head -n 1)
    fi
    echo "$f"
}

# linux-image-amd64 is a metapackage: the kernel is the versioned package it depends on.
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-amd64's kernel package (apt-get update?)"
kver=${kernel_pkg#linux-image-}
kroot=$cache/kernel-$kver
if [ ! -f "$kroot/boot/vmlinuz-$kver" ]; then
    log "extracting $kernel_pkg"
    rm -rf "$kroot.tmp" && mkdir -p "$kroot.tmp"
    dpkg-deb -x "$(fetch "$kernel_pkg")" "$kroot.tmp"
    rm -rf "$kroot" && mv "$kroot.tmp" "$kroot"
fi
cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$kver" > "$out/kernel-version"
# The ELF vmlinux inside the bzImage (setup header payload_offset/length,
# boot.rst), for comparing with `qemu -kernel vmlinux` (benches/boot-vs-qemu.py).
if [ ! -s "$out/vmlinux" ] || [ "$out/vmlinuz" -nt "$out/vmlinux" ]; then
    python3 - "$out/vmlinuz" "$out/vmlinux" <<'PY' || log "could not extract vmlinux (only the benchmark needs it)"
import gzip, lzma, struct, sys
b = open(sys.argv[1], "rb").read()
setup_sects = b[0x1F1] or 4
off, length = struct.unpack_from("<II", b, 0x248)
payload = b[(setup_sects + 1) * 512 + off:][:length]
if payload[:6] == b"\xfd7zXZ\x00":
    # One stream; the 4 bytes after it are the kernel's size trailer.
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
elif payload[:2] == b"\x1f\x8b":
    elf = gzip.decompress(payload)
else:
    sys.exit("unknown payload compression")
open(sys.argv[2], "wb").write(elf)
PY
fi

bbroot=$cache/busybox
if [ ! -x "$bbroot/bin/busybox" ]; then
    rm -rf "$bbroot" && mkdir -p "$bbroot"
    dpkg-deb -x "$(fetch busybox-static)" "$bbroot"
fi
busybox=$bbroot/bin/busybox

# Writes a gzip'ed newc cpio of directory $1 to $2 (owned by root, as the kernel expects).
# Reproducible: every file gets the same mtime and cpio's --reproducible drops
# inode and device numbers, so the same packages give the same bytes on any
# machine, and with them the same guest run, instruction for instruction.
mkcpio() {
    find "$1" -exec touch -h -d @0 {} +
    (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n > "$2.tmp"
    mv "$2.tmp" "$2"
}

# A minimal busybox tree: /bin/busybox plus the directories a root needs.
busybox_tree() {
    mkdir -p "$1"/bin "$1"/proc "$1"/sys "$1"/dev "$1"/tmp "$1"/etc
    cp "$busybox" "$1/bin/busybox"
    ln -sf busybox "$1/bin/sh"
}

# module_list FILE WHAT MODULE...: copies MODULE... and their dependencies
# (in load order) into the initramfs tree $t and lists them in
# $t/lib/modules/FILE, which the guest script for that test loads.
module_list() {
    local list=$t/lib/modules/$1 what=$2
    shift 2
    : > "$list"
    for p in $(resolve_modules "$@"); do
        cp "$p" "$t/lib/modules/"
        basename "$p" >> "$list"
    done
    log "container initramfs ${what}modules: $(tr '\n' ' ' < "$list")"
}

build_initramfs() {
    local t=$cache/initramfs-ctr
    rm -rf "$t" && mkdir -p "$t/lib/modules"
    busybox_tree "$t"
    install -m 755 "$here/guest/init-initramfs.sh" "$t/init"
    install -m 755 "$here/guest/net.sh" "$t/bin/vx86-net"
    install -m 755 "$here/guest/udhcpc.script" "$t/bin/udhcpc.script"
    install -m 755 "$here/guest/run-container.sh" "$t/bin/run-container"
    install -m 755 "$here/guest/blk.sh" "$t/bin/vx86-blk"
    install -m 755 "$here/guest/cdrom.sh" "$t/bin/vx86-cdrom"
    install -m 755 "$here/guest/acpi.sh" "$t/bin/vx86-acpi"
    # Networking, loaded when the machine has a PCI bus: the virtio NIC,
    # the bridge and veth pairs the containers are joined by.
    module_list load-order "" virtio_pci virtio_net bridge veth
    # A disk test (vx86.blk=1): the virtio-blk driver over the same transport,
    # and, for benches/blk-vs-qemu.py's comparison, the ISA ATA disk driver.
    module_list blk-load-order "disk " virtio_pci virtio_blk pata_legacy sd_mod
    # The CD-ROM test (vx86.cdrom=1): the ISA ATA driver, the SCSI CD-ROM
    # driver and iso9660.
    module_list cdrom-load-order "CD-ROM " pata_legacy sr_mod isofs
    # The ACPI tests (vx86.pwrbtn=1, vx86.hotplug=1): the ACPI power button
    # driver, evdev to read its event, and the virtio disk driver.
    module_list acpi-load-order "ACPI " button evdev virtio_pci virtio_blk
    # The container's root filesystem: its own busybox, nothing shared.
    busybox_tree "$t/ctr"
    for a in sh mount mknod hostname ps ls wc grep head sleep killall cat echo \
             ip nc httpd wget sha256sum mkdir sed; do
        ln -sf busybox "$t/ctr/bin/$a"
    done
    install -m 644 "$here/guest/container.sh" "$t/ctr/container.sh"
    install -m 644 "$here/guest/net-container.sh" "$t/ctr/net-container.sh"
    mkcpio "$t" "$out/initramfs-ctr.cpio.gz"
    log "wrote $out/initramfs-ctr.cpio.gz ($(stat -c %s "$out/initramfs-ctr.cpio.gz") bytes)"
}

# Prints the module files needed for modules $@ (dependencies first), resolved
# from each module's .modinfo `depends` field (Debian ships no modules.dep).
resolve_modules() {
    command -v modinfo >/dev/null || die "modinfo not found (apt-get install kmod)"
    local mdir=$kroot/lib/modules/$kver
    declare -A seen=()
    local order=()
    visit() {
        local name=$1 path dep
        [ -n "${seen[$name]:-}" ] && return 0
        seen[$name]=1
        path=$(find "$mdir/kernel" -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" | head -n 1)
        if [ -z "$path" ]; then
            alt=${name//_/-}
            path=$(find "$mdir/kernel" -name "$alt.ko" | head -n 1)
        fi
        [ -n "$path" ] || die "module $name not found in $mdir"
        for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
            visit "$dep"
        done
        order+=("$path")
    }
    for m in "$@"; do visit "$m"; done
    printf '%s\n' "${order[@]}"
}

build_disk() {
    command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
    command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
    [ "$(id -u)" = 0 ] || die "the disk guest needs root (debootstrap)"
    # The disk's initramfs: modules for the ISA ATA controller and ext4, and
    # the bridge and veth that the OCI container's network needs (the
    # rootfs has no /lib/modules: the initramfs loads them all).
    local t=$cache/initramfs-disk
    rm -rf "$t" && mkdir -p "$t/lib/modules"
    busybox_tree "$t"
    local list=$t/lib/modules/load-order
    : > "$list"
    for p in $(resolve_modules pata_legacy sd_mod ext4 crc32c_generic bridge veth); do
        cp "$p" "$t/lib/modules/"
        basename "$p" >> "$list"
    done
    log "disk initramfs modules: $(wc -l < "$list") ($(tr '\n' ' ' < "$list"))"
    install -m 755 "$here/guest/init-disk.sh" "$t/init"
    mkcpio "$t" "$out/initramfs-disk.cpio.gz"

    local rootfs=$cache/rootfs
    if [ ! -x "$rootfs/usr/bin/crun" ]; then
        local mirror
        mirror=$(apt_mirror)
        [ -n "$mirror" ] || die "no Debian mirror found in the apt sources"
        log "debootstrap bookworm from the machine's apt source"
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include=crun bookworm "$rootfs" "$mirror" >&2 \
            || die "debootstrap failed"
    fi
    # The OCI bundle: a busybox root and a runtime-spec config.json (the
    # defaults `crun spec` writes: namespaces, /proc, /dev, /sys, cgroup).
    local bundle=$rootfs/bundle
    rm -rf "$bundle" && mkdir -p "$bundle"
    busybox_tree "$bundle/rootfs"
    ln -sf busybox "$bundle/rootfs/bin/hostname"
    python3 "$here/guest/oci-config.py" > "$bundle/config.json" || die "writing config.json failed"
    install -m 755 "$here/guest/vx86-init-disk.sh" "$rootfs/sbin/vx86-init"
    install -D -m 755 "$here/guest/oci-net-hook.sh" "$rootfs/usr/local/sbin/vx86-oci-net"
    rm -f "$out/disk.img.tmp"
    truncate -s 1G "$out/disk.img.tmp"
    mkfs.ext4 -q -F -L vx86root -d "$rootfs" "$out/disk.img.tmp" || die "mkfs.ext4 failed"
    mv "$out/disk.img.tmp" "$out/disk.img"
    log "wrote $out/disk.img"
}

# The first http(s) Debian URI of the machine's apt sources (deb822 or one-line).
apt_mirror() {
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}'
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '/^deb / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
    } | grep -v -- '-security' | head -n 1 || true
}

case $what in
    initramfs) build_initramfs ;;
    disk) build_disk ;;
    all) build_initramfs; build_disk ;;
    *) die "unknown target '$what' (initramfs, disk or all)" ;;
esac
log "done: $out"
