#!/bin/busybox sh
# /init of vx86's disk guest initramfs (built by scripts/build-guest.sh):
# loads the ISA ATA driver (pata_legacy, probe_mask=3: both legacy ports,
# 0x1F0 and 0x170, as on QEMU's isapc) with the SCSI disk and ext4 modules,
# in dependency order, then switch_roots into the Debian rootfs on /dev/sda.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/load-order); do
    case $m in
        pata_legacy.ko) insmod /lib/modules/$m probe_mask=3 ;;
        *) insmod /lib/modules/$m ;;
    esac || echo "initramfs: insmod $m failed"
done
i=0
while [ ! -b /dev/sda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 /dev/sda /newroot; then
    echo "initramfs: cannot mount /dev/sda"; ls /dev; sleep 1; reboot -f
fi
echo "DISK-ROOT-OK"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/vx86-init
