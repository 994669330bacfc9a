#!/bin/sh
# /sbin/vx86-init on vx86's Debian disk guest: PID 1 after switch_root.
# Mounts the kernel filesystems, makes the container bridge br0
# (10.88.0.1/24, an HTTP server on it), runs an OCI bundle with crun (its
# createRuntime hook, vx86-oci-net, puts the container on br0), and reboots
# through sysrq (the minbase rootfs has no init system; run vx86/QEMU with
# -no-reboot to make the reboot an exit). The initramfs loaded the bridge
# and veth modules; the minbase rootfs has no iproute2, so the bundle's
# static busybox provides ip and httpd.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
bb=/bundle/rootfs/bin/busybox
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "DEBIAN-ROOTFS-OK $(. /etc/os-release; echo "$PRETTY_NAME") crun $(crun --version | head -n 1)"
$bb ip link set lo up
$bb ip link add name br0 type bridge
$bb ip addr add 10.88.0.1/24 dev br0
$bb ip link set br0 up
mkdir -p /tmp/www
echo "hello from the disk guest's bridge" > /tmp/www/index.html
$bb httpd -p 10.88.0.1:80 -h /tmp/www
cd /bundle && crun run vx86-oci
echo "crun exited with status $?"
echo "GUEST-DONE"
echo 1 > /proc/sys/kernel/sysrq
echo b > /proc/sysrq-trigger
