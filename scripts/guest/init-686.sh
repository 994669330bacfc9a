#!/bin/busybox sh
# /init of the 686 guest (scripts/fetch-firmware-payloads.sh, issue 18): a
# static i386 busybox proves user space runs on Debian's 32-bit kernel, prints
# the marker tests/linux686.rs and benches/boot686-vs-qemu.py wait for, and
# reboots (run vx86/QEMU with -no-reboot to make that an exit).
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "vx86-686: $(/bin/busybox uname -m) $(/bin/busybox uname -r), $(/bin/busybox grep -c ^processor /proc/cpuinfo) CPU"
/bin/busybox echo "VX86-686-INIT-DONE"
/bin/busybox reboot -f
