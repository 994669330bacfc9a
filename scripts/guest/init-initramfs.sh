#!/bin/busybox sh
# /init of vx86's kernel + initramfs guest (built by scripts/build-guest.sh).
# Mounts the kernel filesystems, starts a container (namespaces + a cgroup v2
# with memory.max and pids.max), prints the markers the integration test
# looks for, and reboots (run vx86/QEMU with -no-reboot to make that an exit).
# Kernel parameter vx86.shell=1 drops into an interactive shell instead.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "GUEST-BOOT-OK kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"

if grep -q 'vx86.shell=1' /proc/cmdline; then
    echo "vx86 guest shell: type 'reboot -f' to leave"
    setsid cttyhack sh
    reboot -f
fi

# The container's cgroup: enable the controllers for children, then limit.
CG=/sys/fs/cgroup/ctr
echo "+memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p $CG
echo 64M > $CG/memory.max
echo 6 > $CG/pids.max
echo "cgroup ctr: memory.max=$(cat $CG/memory.max) pids.max=$(cat $CG/pids.max)"

# Join the cgroup in a child shell, then enter new mount/UTS/IPC/net/PID
# namespaces and chroot into the container's root filesystem.
sh -c "echo \$\$ > $CG/cgroup.procs; exec unshare --mount --uts --ipc --net --pid --fork --mount-proc chroot /ctr /bin/sh /container.sh"
echo "container exited with status $?"
echo "GUEST-DONE"
reboot -f
