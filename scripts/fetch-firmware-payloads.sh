#!/usr/bin/env bash
# Fetches the third-party firmware payloads vx86's integration tests boot
# (tests/payloads.rs) from Debian's own packages, and builds the extlinux disk.
#
#   scripts/fetch-firmware-payloads.sh
#
# Everything lands under $VX86_GUEST_CACHE (default: ./guest-cache, git-ignored);
# a second run reuses what exists. Outputs, in $VX86_GUEST_CACHE/payloads/:
#   seabios.bin          SeaBIOS (package seabios, /usr/share/seabios/bios.bin)
#   BIOS-bochs-legacy    the Bochs legacy BIOS (package bochsbios), 64 KiB
#   memtest86+x64.bin    memtest86+ 6.x for x86-64 (package memtest86+,
#                        /boot/memtest86+x64.bin): a Linux boot protocol
#                        image, booted with -kernel
#   memtest86+x64.iso    its hybrid ISO (/usr/lib/memtest86+/memtest86+x64.iso):
#                        an MBR-bootable image, booted as a raw hard disk
#   debian-installer-linux, debian-installer-initrd.gz
#                        the netboot installer's text-frontend kernel and
#                        initrd (package debian-installer-12-netboot-amd64)
#   extlinux.img         raw disk: MBR (syslinux-common mbr.bin), one bootable
#                        ext2 partition with extlinux, syslinux.cfg (SERIAL 0
#                        115200, a SAY marker) and Debian's stock kernel
#                        (linux-image-amd64's versioned package) with
#                        console=ttyS0
#   grub.img             raw disk booted by GRUB 2 from Debian's grub-pc-bin:
#                        boot.img in the MBR, a core.img made with
#                        grub-mkimage (package grub-common) in the gap before
#                        the partition, one ext2 partition (mke2fs -d) with
#                        GRUB's modules, grub.cfg (menu on COM1 and the screen,
#                        `set timeout=5`) and the Debian container guest's
#                        kernel and initramfs from scripts/build-guest.sh
#                        ($VX86_GUEST_CACHE/out/; skipped when not built yet)
#   grub-menu.img        the same with `set timeout=-1`: it stays at the menu
#   isolinux.iso         an El Torito (no-emulation) CD made with xorriso:
#                        Debian's isolinux.bin (package isolinux, with the
#                        boot info table) and ldlinux.c32 (syslinux-common),
#                        isolinux.cfg (SERIAL 0 115200, a SAY marker) booting
#                        the container guest ($VX86_GUEST_CACHE/out/) with
#                        console=ttyS0
#   grub.iso             the same guest on a GRUB 2 El Torito CD: the image
#                        grub-mkrescue would make, built as it does it
#                        (grub-mkimage -O i386-pc-eltorito with biosdisk and
#                        iso9660, the modules under /boot/grub/i386-pc, xorriso
#                        -no-emul-boot -boot-load-size 4 -boot-info-table)
#   linux-686            Debian's 32-bit kernel, the non-PAE 686 flavour
#                        (linux-image-686:i386's versioned package): an XZ
#                        bzImage without a PVH note (issue 18's 686 workload)
#   initramfs-686.cpio.gz  an i386 busybox (busybox-static:i386) /init that
#                        prints VX86-686-INIT-DONE and reboots
#                        (scripts/guest/init-686.sh)
#   Both need the i386 architecture in dpkg (added here, then apt-get update);
#   where that is impossible they are skipped with a message.
#
# Packages come from `apt-get download` (the machine's own apt sources; no
# mirror is named here) and are unpacked with `dpkg-deb -x`: nothing is
# installed on the host. extlinux installs into a mounted filesystem, so the
# disk is built through a loop mount (root); without one the script falls back
# to a FAT partition and the mtools-based installer of the same SYSLINUX core
# (package syslinux, with mtools unpacked beside it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VX86_GUEST_CACHE:-$here/../guest-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
debs=$cache/debs
out=$cache/payloads
mkdir -p "$debs" "$out"

log() { echo "fetch-firmware-payloads: $*" >&2; }
die() { echo "fetch-firmware-payloads: error: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb dd; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# Downloads a package (by name) into the cache once; prints the .deb path.
# A first failure refreshes the package lists once (a fresh machine has none).
updated=
fetch() {
    local pkg=$1 f
    f=$(ls "$debs"/"${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$f" ]; then
        if ! (cd "$debs" && apt-get download "$pkg" >&2); then
            [ -z "$updated" ] || die "apt-get download $pkg failed"
            updated=1
            apt-get update -qq >&2 || die "apt-get update failed"
            (cd "$debs" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
        fi
        f=$(ls "$debs"/"${pkg}"_*.deb | head -n 1)
    fi
    echo "$f"
}

# Unpacks a package once into $cache/pkg/NAME; prints the directory.
unpack() {
    local pkg=$1 dir=$cache/pkg/$1
    if [ ! -e "$dir/.done" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        dpkg-deb -x "$(fetch "$pkg")" "$dir"
        touch "$dir/.done"
    fi
    echo "$dir"
}

# ---- SeaBIOS and the Bochs legacy BIOS ----
cp "$(unpack seabios)/usr/share/seabios/bios.bin" "$out/seabios.bin"
cp "$(unpack bochsbios)/usr/share/bochs/BIOS-bochs-legacy" "$out/BIOS-bochs-legacy"
log "seabios.bin $(wc -c < "$out/seabios.bin") bytes, BIOS-bochs-legacy $(wc -c < "$out/BIOS-bochs-legacy") bytes"

# ---- memtest86+ ----
mt=$(unpack memtest86+)
cp "$mt/boot/memtest86+x64.bin" "$out/memtest86+x64.bin"
cp "$mt/usr/lib/memtest86+/memtest86+x64.iso" "$out/memtest86+x64.iso"
log "memtest86+x64.bin $(wc -c < "$out/memtest86+x64.bin") bytes, memtest86+x64.iso $(wc -c < "$out/memtest86+x64.iso") bytes"

# ---- The Debian installer (netboot, text frontend): booted with plain -kernel/-initrd ----
di=$(unpack debian-installer-12-netboot-amd64)
dd_=$di/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64
cp "$dd_/linux" "$out/debian-installer-linux"
cp "$dd_/initrd.gz" "$out/debian-installer-initrd.gz"
log "debian-installer-linux $(wc -c < "$out/debian-installer-linux") bytes, initrd $(wc -c < "$out/debian-installer-initrd.gz") bytes"

# ---- Debian's kernel (shared with scripts/build-guest.sh's cache layout) ----
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kernel_pkg" ] && [ -z "$updated" ]; then
    updated=1
    apt-get update -qq >&2 || die "apt-get update failed"
    kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kernel_pkg" ] || die "cannot resolve linux-image-amd64's kernel package (apt-get update?)"
kver=${kernel_pkg#linux-image-}
kroot=$cache/kernel-$kver
if [ ! -f "$kroot/boot/vmlinuz-$kver" ]; then
    log "extracting $kernel_pkg"
    rm -rf "$kroot.tmp" && mkdir -p "$kroot.tmp"
    dpkg-deb -x "$(fetch "$kernel_pkg")" "$kroot.tmp"
    rm -rf "$kroot" && mv "$kroot.tmp" "$kroot"
fi
vmlinuz=$kroot/boot/vmlinuz-$kver

# Little-endian 32-bit value as printf escapes.
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }

# ---- GRUB disks: the container guest booted by GRUB 2 (issue 17's proof) ----
# Built without root and without loop mounts: grub-mkimage makes core.img from
# the package's modules, mke2fs -d fills the ext2 partition, and what
# grub-bios-setup would do (it wants a block device) is done by hand: boot.img's
# code in the MBR (its default kernel_sector 1 points at core.img, whose first
# sector, diskboot.img, carries the default blocklist "sector 2 on", both as
# grub-mkimage leaves them), the boot-drive check replaced by two NOPs for a
# hard disk as grub-bios-setup does.
#
# The kernel is entered with linux16/initrd16 (its 16-bit real-mode setup), so
# that its first output, "early console in setup code" (the `debug` option;
# `loglevel=7` restores the usual console level), comes right after GRUB's
# countdown and the load: through `linux` GRUB enters the 32-bit decompressor,
# which prints nothing in Debian's kernel (no CONFIG_X86_VERBOSE_BOOTUP), and
# the first line would come only after its XZ decompression (4.5 G
# instructions).
guest=$cache/out
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initramfs-ctr.cpio.gz" ]; then
    log "no container guest in $guest (scripts/build-guest.sh builds it): GRUB disks skipped"
else
    grub_stamp="grub-v1 $(cksum < "$guest/vmlinuz") $(cksum < "$guest/initramfs-ctr.cpio.gz")"
    if [ -f "$out/grub.img" ] && [ -f "$out/grub-menu.img" ] \
        && [ "$(cat "$out/grub.stamp" 2>/dev/null)" = "$grub_stamp" ]; then
        log "grub.img, grub-menu.img up to date"
    else
        command -v mke2fs >/dev/null || die "mke2fs not found (package e2fsprogs)"
        grubpc=$(unpack grub-pc-bin)/usr/lib/grub/i386-pc
        mkimage=$(unpack grub-common)/usr/bin/grub-mkimage
        [ -f "$grubpc/boot.img" ] || die "grub-pc-bin has no boot.img"
        core=$out/grub-core.img.tmp
        # What core.img needs to find and read its partition and to show the
        # menu on the serial line; the rest loads from /boot/grub/i386-pc.
        "$mkimage" -O i386-pc -d "$grubpc" -p '(hd0,msdos1)/boot/grub' -o "$core" \
            biosdisk part_msdos ext2 normal serial terminal linux16 linux boot echo test configfile \
            || die "grub-mkimage failed"
        grub_part_start=2048
        grub_disk_mib=32
        grub_part_sectors=$(( grub_disk_mib * 2048 - grub_part_start ))
        core_sectors=$(( ($(stat -c %s "$core") + 511) / 512 ))
        [ $(( core_sectors + 1 )) -le $grub_part_start ] \
            || die "core.img ($core_sectors sectors) does not fit before the partition"
        # make_grub_disk IMAGE TIMEOUT
        make_grub_disk() {
            local img=$1 timeout=$2 root=$out/grub-root.tmp part=$out/grub-part.tmp
            rm -rf "$root" "$part" "$img.tmp"
            mkdir -p "$root/boot/grub/i386-pc"
            cp "$grubpc"/*.mod "$grubpc"/*.lst "$root/boot/grub/i386-pc/"
            cp "$guest/vmlinuz" "$root/vmlinuz"
            cp "$guest/initramfs-ctr.cpio.gz" "$root/initrd.img"
            {
                echo "# vx86 GRUB disk: the menu on COM1 and on the screen, then the"
                echo "# Debian container guest with its console on COM1."
                echo "serial --unit=0 --speed=115200"
                echo "terminal_input serial console"
                echo "terminal_output serial console"
                echo "set default=0"
                echo "set timeout=$timeout"
                echo "menuentry 'Debian container guest (vx86)' {"
                echo "  linux16 /vmlinuz console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 debug loglevel=7 panic=-1"
                echo "  initrd16 /initrd.img"
                echo "}"
            } > "$root/boot/grub/grub.cfg"
            mke2fs -q -F -t ext2 -L vx86grub -d "$root" "$part" $(( grub_part_sectors / 2 ))k \
                || die "mke2fs -d failed (e2fsprogs 1.43 or later is needed)"
            dd if=/dev/zero of="$img.tmp" bs=1M count=0 seek=$grub_disk_mib status=none
            # boot.img's code up to the disk signature (440 bytes), the
            # boot-drive check NOPed, one active Linux partition, 55AA.
            dd if="$grubpc/boot.img" of="$img.tmp" bs=440 count=1 conv=notrunc status=none
            printf '\x90\x90' | dd of="$img.tmp" bs=1 seek=$((0x66)) conv=notrunc status=none
            printf "\\x80\\xfe\\xff\\xff\\x83\\xfe\\xff\\xff$(le32 $grub_part_start)$(le32 $grub_part_sectors)" |
                dd of="$img.tmp" bs=1 seek=446 conv=notrunc status=none
            printf '\x55\xaa' | dd of="$img.tmp" bs=1 seek=510 conv=notrunc status=none
            dd if="$core" of="$img.tmp" bs=512 seek=1 conv=notrunc status=none
            dd if="$part" of="$img.tmp" bs=512 seek=$grub_part_start conv=notrunc status=none
            rm -rf "$root" "$part"
            mv "$img.tmp" "$img"
        }
        make_grub_disk "$out/grub.img" 5
        make_grub_disk "$out/grub-menu.img" -1
        rm -f "$core"
        echo "$grub_stamp" > "$out/grub.stamp"
        log "grub.img, grub-menu.img built ($(basename "$(fetch grub-pc-bin)" .deb))"
    fi
fi

# ---- El Torito CDs: the container guest booted from -cdrom (issue 13) ----
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initramfs-ctr.cpio.gz" ]; then
    log "no container guest in $guest: isolinux.iso, grub.iso skipped"
elif ! command -v xorriso >/dev/null; then
    log "xorriso not found (package xorriso): isolinux.iso, grub.iso skipped"
else
    iso_stamp="iso-v1 $(cksum < "$guest/vmlinuz") $(cksum < "$guest/initramfs-ctr.cpio.gz")"
    if [ -f "$out/isolinux.iso" ] && [ -f "$out/grub.iso" ] \
        && [ "$(cat "$out/iso.stamp" 2>/dev/null)" = "$iso_stamp" ]; then
        log "isolinux.iso, grub.iso up to date"
    else
        root=$out/iso-root.tmp
        rm -rf "$root" && mkdir -p "$root/isolinux"
        cp "$(unpack isolinux)/usr/lib/ISOLINUX/isolinux.bin" "$root/isolinux/"
        cp "$(unpack syslinux-common)/usr/lib/syslinux/modules/bios/ldlinux.c32" "$root/isolinux/"
        cp "$guest/vmlinuz" "$root/vmlinuz"
        cp "$guest/initramfs-ctr.cpio.gz" "$root/initrd.img"
        {
            echo "SERIAL 0 115200"
            echo "SAY vx86-isolinux-marker: isolinux.cfg read"
            echo "DEFAULT guest"
            echo "PROMPT 0"
            echo "TIMEOUT 1"
            echo "LABEL guest"
            echo "  KERNEL /vmlinuz"
            echo "  APPEND initrd=/initrd.img console=ttyS0 panic=-1"
        } > "$root/isolinux/isolinux.cfg"
        xorriso -as mkisofs -quiet -R -V VX86ISOLINUX -o "$out/isolinux.iso.tmp" \
            -b isolinux/isolinux.bin -c isolinux/boot.cat \
            -no-emul-boot -boot-load-size 4 -boot-info-table "$root" >&2 \
            || die "xorriso (isolinux.iso) failed"
        mv "$out/isolinux.iso.tmp" "$out/isolinux.iso"
        rm -rf "$root" && mkdir -p "$root/boot/grub/i386-pc"
        grubpc=$(unpack grub-pc-bin)/usr/lib/grub/i386-pc
        mkimage=$(unpack grub-common)/usr/bin/grub-mkimage
        cp "$grubpc"/*.mod "$grubpc"/*.lst "$root/boot/grub/i386-pc/"
        "$mkimage" -O i386-pc-eltorito -d "$grubpc" -p /boot/grub \
            -o "$root/boot/grub/i386-pc/eltorito.img" \
            biosdisk iso9660 normal serial terminal linux echo test configfile \
            || die "grub-mkimage (eltorito) failed"
        cp "$guest/vmlinuz" "$root/vmlinuz"
        cp "$guest/initramfs-ctr.cpio.gz" "$root/initrd.img"
        {
            echo "serial --unit=0 --speed=115200"
            echo "terminal_input serial console"
            echo "terminal_output serial console"
            echo "echo vx86-grub-iso-marker: grub.cfg read from \$root"
            echo "set default=0"
            echo "set timeout=0"
            echo "menuentry 'Debian container guest (vx86 CD)' {"
            echo "  linux /vmlinuz console=ttyS0 panic=-1"
            echo "  initrd /initrd.img"
            echo "}"
        } > "$root/boot/grub/grub.cfg"
        xorriso -as mkisofs -quiet -R -V VX86GRUB -o "$out/grub.iso.tmp" \
            -b boot/grub/i386-pc/eltorito.img -c boot/grub/boot.cat \
            -no-emul-boot -boot-load-size 4 -boot-info-table "$root" >&2 \
            || die "xorriso (grub.iso) failed"
        mv "$out/grub.iso.tmp" "$out/grub.iso"
        rm -rf "$root"
        echo "$iso_stamp" > "$out/iso.stamp"
        log "isolinux.iso $(wc -c < "$out/isolinux.iso") bytes, grub.iso $(wc -c < "$out/grub.iso") bytes"
    fi
fi

# ---- Debian's 32-bit 686 kernel and an i386 busybox initramfs (issue 18) ----
# The i386 packages are only listed once dpkg knows the architecture. They
# are kept apart from $debs, whose name-only look-ups (here and in
# build-guest.sh) must keep finding the amd64 busybox-static.
debs_i386=$cache/debs-i386
mkdir -p "$debs_i386"
fetch_i386() {
    local pkg=$1 f
    f=$(ls "$debs_i386"/"${pkg}"_*_i386.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$f" ]; then
        (cd "$debs_i386" && apt-get download "$pkg:i386" >&2) || return 1
        f=$(ls "$debs_i386"/"${pkg}"_*_i386.deb | head -n 1)
    fi
    echo "$f"
}
k686_pkg=
if dpkg --print-foreign-architectures | grep -qx i386 \
    || { dpkg --add-architecture i386 2>/dev/null && apt-get update -qq >&2; }; then
    k686_pkg=$(apt-cache depends linux-image-686:i386 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub(/:i386$/, "", $2); print $2; exit}')
    if [ -z "$k686_pkg" ]; then
        apt-get update -qq >&2 || true
        k686_pkg=$(apt-cache depends linux-image-686:i386 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub(/:i386$/, "", $2); print $2; exit}')
    fi
fi
if [ -z "$k686_pkg" ]; then
    log "no i386 package lists (dpkg --add-architecture i386 and apt-get update need root and the archive): linux-686 skipped"
else
    k686_stamp="686-v1 $k686_pkg $(cksum < "$here/guest/init-686.sh")"
    if [ -f "$out/linux-686" ] && [ -f "$out/initramfs-686.cpio.gz" ] \
        && [ "$(cat "$out/linux-686.stamp" 2>/dev/null)" = "$k686_stamp" ]; then
        log "linux-686, initramfs-686.cpio.gz up to date"
    else
        # A failure here skips only this pair: the extlinux disk below still builds.
        if ! kdeb=$(fetch_i386 "$k686_pkg") || ! bdeb=$(fetch_i386 busybox-static); then
            log "apt-get download of $k686_pkg:i386 or busybox-static:i386 failed: linux-686 skipped"
        else
            tmp=$cache/pkg/686.tmp
            rm -rf "$tmp" && mkdir -p "$tmp/k" "$tmp/b" "$tmp/rd/bin" "$tmp/rd/proc" "$tmp/rd/sys" "$tmp/rd/dev"
            dpkg-deb -x "$kdeb" "$tmp/k"
            dpkg-deb -x "$bdeb" "$tmp/b"
            cp "$tmp/k/boot/vmlinuz-${k686_pkg#linux-image-}" "$out/linux-686"
            cp "$tmp/b/bin/busybox" "$tmp/rd/bin/busybox"
            cp "$here/guest/init-686.sh" "$tmp/rd/init"
            chmod 755 "$tmp/rd/init" "$tmp/rd/bin/busybox"
            (cd "$tmp/rd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n) \
                > "$out/initramfs-686.cpio.gz"
            rm -rf "$tmp"
            echo "$k686_stamp" > "$out/linux-686.stamp"
            log "linux-686 ($k686_pkg) $(wc -c < "$out/linux-686") bytes, initramfs-686.cpio.gz $(wc -c < "$out/initramfs-686.cpio.gz") bytes"
        fi
    fi
fi

# ---- The extlinux disk ----
img=$out/extlinux.img
stamp="$kver extlinux-v4"
if [ -f "$img" ] && [ "$(cat "$out/extlinux.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "extlinux.img up to date"
    exit 0
fi
common=$(unpack syslinux-common)
mbr=$common/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "syslinux-common has no mbr.bin"

# Disk: 64 MiB, one partition from 1 MiB (LBA 2048) to the end.
disk_mib=64
part_start=2048
part_sectors=$(( disk_mib * 2048 - part_start ))
rm -f "$img.tmp"
dd if=/dev/zero of="$img.tmp" bs=1M count=0 seek=$disk_mib status=none

# SYSLINUX prints SAY while it parses the file, before SERIAL takes effect: the
# marker reaches the VGA text screen; its banner and "Loading /vmlinuz... ok"
# reach COM1.
cfg() {
    cat <<EOF
SERIAL 0 115200
SAY vx86-extlinux-marker: syslinux.cfg read
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  APPEND console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 panic=-1
EOF
}


# MBR boot code + one active partition entry of type $1 + 55AA.
write_mbr() {
    dd if="$mbr" of="$img.tmp" conv=notrunc status=none
    # Entry 0: active, CHS fields FE FF FF (use LBA), type, LBA start, length.
    printf "\\x80\\xfe\\xff\\xff\\x$1\\xfe\\xff\\xff$(le32 $part_start)$(le32 $part_sectors)" |
        dd of="$img.tmp" bs=1 seek=446 conv=notrunc status=none
    printf '\x55\xaa' | dd of="$img.tmp" bs=1 seek=510 conv=notrunc status=none
}

part=$out/part.tmp
rm -f "$part"
dd if=/dev/zero of="$part" bs=512 count=0 seek=$part_sectors status=none
built=
mnt=$(mktemp -d)
if command -v mkfs.ext2 >/dev/null && mkfs.ext2 -q -F -L vx86boot "$part" \
    && mount -o loop "$part" "$mnt" 2>/dev/null; then
    ext=$(unpack extlinux)
    trap 'umount "$mnt" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true' EXIT
    mkdir -p "$mnt/boot/syslinux"
    cp "$vmlinuz" "$mnt/vmlinuz"
    cfg > "$mnt/boot/syslinux/syslinux.cfg"
    "$ext/usr/bin/extlinux" --install "$mnt/boot/syslinux" >&2
    sync
    umount "$mnt"
    trap - EXIT
    write_mbr 83
    built=extlinux
else
    log "no loop mount: building a FAT partition with syslinux (mtools) instead"
    mt=$(unpack mtools)
    sl=$(unpack syslinux)
    export PATH="$mt/usr/bin:$PATH"
    export MTOOLS_SKIP_CHECK=1
    rm -f "$part" && dd if=/dev/zero of="$part" bs=512 count=0 seek=$part_sectors status=none
    mformat -i "$part" -v VX86BOOT -F ::
    mmd -i "$part" ::/boot ::/boot/syslinux
    mcopy -i "$part" "$vmlinuz" ::/vmlinuz
    cfg > "$out/syslinux.cfg.tmp"
    mcopy -i "$part" "$out/syslinux.cfg.tmp" ::/boot/syslinux/syslinux.cfg
    rm -f "$out/syslinux.cfg.tmp"
    "$sl/usr/bin/syslinux" --install --directory /boot/syslinux "$part" >&2
    write_mbr 0c
    built=syslinux-fat
fi
rmdir "$mnt" 2>/dev/null || true
dd if="$part" of="$img.tmp" bs=512 seek=$part_start conv=notrunc status=none
rm -f "$part"
mv "$img.tmp" "$img"
echo "$stamp" > "$out/extlinux.stamp"
echo "$built" > "$out/extlinux.installer"
log "extlinux.img built ($built, kernel $kver)"
