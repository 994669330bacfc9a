#!/bin/sh
# vx86-cdrom: the CD-ROM test (kernel parameter vx86.cdrom=1; the host side
# is tests/cdrom.rs). Loads the ISA ATA driver (pata_legacy, both channels:
# QEMU and vx86 put -cdrom at secondary master), the SCSI CD-ROM driver
# (sr_mod, cdrom) and iso9660, then:
#   CDROM-DEV <the sr device's size in 512-byte sectors>
#   CDROM-SUM <name> sha256=<...>   for every regular file at the disc's top level
#   CDROM-OK                        after umount
for m in $(cat /lib/modules/cdrom-load-order); do
    case $m in
        pata_legacy.ko) insmod "/lib/modules/$m" probe_mask=3 ;;
        *) insmod "/lib/modules/$m" ;;
    esac 2>/dev/null
done
i=0
while [ ! -b /dev/sr0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -b /dev/sr0 ]; then
    echo "CDROM-NO-DEVICE"
    exit 1
fi
echo "CDROM-DEV sr0 $(cat /sys/block/sr0/size)"
mkdir -p /mnt/cd
if ! mount -t iso9660 -o ro /dev/sr0 /mnt/cd; then
    echo "CDROM-MOUNT-FAILED"
    exit 1
fi
for f in /mnt/cd/*; do
    [ -f "$f" ] || continue
    echo "CDROM-SUM ${f##*/} sha256=$(sha256sum "$f" | cut -d' ' -f1)"
done
umount /mnt/cd
echo "CDROM-OK"
