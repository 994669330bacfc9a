#!/bin/sh
# vx86-blk: the disk test (kernel parameter vx86.blk=1; the host side is
# tests/virtio_blk.rs). Loads virtio_pci + virtio_blk (and pata_legacy +
# sd_mod for an ATA disk), then on /dev/vda (or vx86.blkdev=NAME):
#   BLK-SIZE <512-byte sectors>
#   BLK-SERIAL <the serial VIRTIO_BLK_T_GET_ID returned>
#   BLK-READ sha256=<of the first MiB>
#   copies the first 64 KiB to offset 1 MiB and writes a marker line at
#   offset 1 MiB + 64 KiB, both with fsync (a VIRTIO_BLK_T_FLUSH), then
#   BLK-WRITE-DONE (BLK-WRITE-1 and a second of sleep between the two writes)
# With vx86.blkbench=MIB it instead times, by markers the host timestamps
# (benches/blk-vs-qemu.py): a sequential read of MIB MiB, 4 KiB reads at
# vx86.blkrand=N pseudo-random offsets, and a sequential write of MIB MiB,
# all O_DIRECT so the page cache does not answer.
cmdline=$(cat /proc/cmdline)
arg() { echo "$cmdline" | sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
dev=$(arg vx86.blkdev)
dev=${dev:-vda}
for m in $(cat /lib/modules/blk-load-order); do
    case $m:$dev in
        pata_legacy.ko:sd*) insmod "/lib/modules/$m" probe_mask=3 ;;
        pata_legacy.ko:*|sd_mod.ko:vd*) ;;
        *) insmod "/lib/modules/$m" ;;
    esac 2>/dev/null
done
i=0
while [ ! -b /dev/$dev ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -b /dev/$dev ]; then
    echo "BLK-NO-DISK $dev"
    exit 1
fi
echo "BLK-SIZE $(cat /sys/block/$dev/size)"
mib=$(arg vx86.blkbench)
if [ -n "$mib" ]; then
    n=$(arg vx86.blkrand)
    n=${n:-1000}
    sectors=$(cat /sys/block/$dev/size)
    blocks=$((sectors / 8))
    echo "BENCH-SEQREAD-START"
    dd if=/dev/$dev of=/dev/null bs=1048576 count="$mib" iflag=direct 2>/dev/null
    echo "BENCH-SEQREAD-DONE"
    echo "BENCH-RANDREAD-START"
    x=12345
    i=0
    while [ $i -lt "$n" ]; do
        x=$(((x * 1103515245 + 12345) % 2147483648))
        dd if=/dev/$dev of=/dev/null bs=4096 count=1 skip=$((x % blocks)) iflag=direct 2>/dev/null
        i=$((i + 1))
    done
    echo "BENCH-RANDREAD-DONE"
    echo "BENCH-NOOP-START"
    i=0
    while [ $i -lt "$n" ]; do
        x=$(((x * 1103515245 + 12345) % 2147483648))
        dd if=/dev/zero of=/dev/null bs=4096 count=1 2>/dev/null
        i=$((i + 1))
    done
    echo "BENCH-NOOP-DONE"
    echo "BENCH-SEQWRITE-START"
    dd if=/dev/zero of=/dev/$dev bs=1048576 count="$mib" oflag=direct conv=notrunc,fsync 2>/dev/null
    echo "BENCH-SEQWRITE-DONE"
    exit 0
fi
echo "BLK-SERIAL $(cat /sys/block/$dev/serial 2>/dev/null)"
echo "BLK-READ sha256=$(dd if=/dev/$dev bs=65536 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)"
dd if=/dev/$dev of=/dev/$dev bs=65536 count=1 seek=16 conv=notrunc,fsync 2>/dev/null \
    || echo "BLK-WRITE-FAILED copy"
# A second between the two flushed writes: tests/snapshot.rs cuts the run
# here, and a window of 10^9 instructions (under -icount shift=0) keeps the
# cut valid when a newer Debian kernel moves the boot by millions of them.
echo "BLK-WRITE-1"
sleep 1
printf 'VX86-BLK-WRITE-OK\n' | dd of=/dev/$dev bs=512 seek=2176 conv=notrunc,fsync 2>/dev/null \
    || echo "BLK-WRITE-FAILED marker"
echo "BLK-WRITE-DONE"
