#!/bin/sh
# /sbin/vx86-init on vx86's Debian disk guest: PID 1 after switch_root.
# Mounts the kernel filesystems, runs an OCI bundle with crun, and reboots
# through sysrq (the minbase rootfs has no init system; run vx86/QEMU with
# -no-reboot to make the reboot an exit).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "DEBIAN-ROOTFS-OK $(. /etc/os-release; echo "$PRETTY_NAME") crun $(crun --version | head -n 1)"
cd /bundle && crun run vx86-oci
echo "crun exited with status $?"
echo "GUEST-DONE"
echo 1 > /proc/sys/kernel/sysrq
echo b > /proc/sysrq-trigger
