#!/bin/busybox sh
# /init of vx86's kernel + initramfs guest (built by scripts/build-guest.sh).
# Mounts the kernel filesystems, starts a container (namespaces + a cgroup v2
# with memory.max and pids.max), prints the markers the integration test
# looks for, and reboots (run vx86/QEMU with -no-reboot to make that an exit).
# With a virtio network card (-nic user) eth0 is configured by DHCP first.
# Kernel parameters:
#   vx86.shell=1        an interactive shell instead of the container test
#   vx86.interactive=1  a container on the bridge already running, then a shell
#   vx86.net=1          the network test: DHCP, DNS, two containers on a bridge,
#                       port 8080 published from a container, a download from
#                       the host (vx86.fetch=URL), then NET-READY and waiting
#   vx86.cdrom=1        the CD-ROM test (vx86-cdrom: /dev/sr0 mounted, its
#                       files' checksums), then a reboot
#   vx86.blk=1          the virtio disk test (vx86-blk: /dev/vda read, written,
#                       flushed), then a reboot
#   vx86.pwrbtn=1, vx86.hotplug=1
#                       the ACPI tests (vx86-acpi: the power button's event,
#                       a virtio disk added and removed at run time), then
#                       a power-off
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "GUEST-BOOT-OK kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
cmdline=$(cat /proc/cmdline)
has() { case " $cmdline " in *" $1 "*) return 0 ;; esac; return 1; }

# A virtio NIC (vendor 1af4, class 02): bring the network up.
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1af4 ]; then
        case $(cat "$d/class" 2>/dev/null) in 0x02*) vx86-net; break ;; esac
    fi
done

if has vx86.blk=1; then
    vx86-blk
    reboot -f
fi

if has vx86.pwrbtn=1 || has vx86.hotplug=1; then
    vx86-acpi
    poweroff -f
fi

if has vx86.cdrom=1; then
    vx86-cdrom
    reboot -f
fi

if has vx86.shell=1; then
    echo "vx86 guest shell: type 'reboot -f' to leave"
    setsid cttyhack sh
    reboot -f
fi

if has vx86.interactive=1; then
    (run-container web 10.88.0.2 sleep 2147483647 >/dev/null 2>&1 &)
    echo
    echo "vx86: Debian $(uname -r) with a container 'web' running on the bridge br0"
    echo "      (10.88.0.2, its page: wget -qO- http://10.88.0.2/)."
    echo "      Start another: run-container NAME 10.88.0.N [COMMAND]   Leave: poweroff -f"
    setsid cttyhack sh
    poweroff -f
fi

if has vx86.net=1; then
    vx86-net
    # The answer's address follows the "Name:" line (the server's comes first).
    answer=$(nslookup vx86-test.example 10.0.2.3 2>/dev/null | sed -n '/^Name:/,$ s/^Address: *//p' | tail -n 1)
    echo "DNS-ANSWER vx86-test.example=${answer:-none}"
    # Two containers on br0: ctr2 sends ctr1 a TCP message.
    run-container ctr1 10.88.0.2 sh -c \
        'nc -l -p 5000 | sed "s/^/BRIDGE-MSG-OK ctr1 got: /"; exec sleep 2147483647' &
    run-container ctr2 10.88.0.3 sh -c \
        'sleep 2; echo "hello from $(hostname)" | nc 10.88.0.2 5000; exec sleep 2147483647' &
    # Publish ctr1's port 80 on the guest's port 8080 (docker run -p 8080:80).
    printf '#!/bin/sh\nexec nc 10.88.0.2 80\n' > /bin/fwd-ctr1
    chmod +x /bin/fwd-ctr1
    nc -ll -p 8080 -e /bin/fwd-ctr1 &
    url=$(echo "$cmdline" | sed -n 's/.*vx86.fetch=\([^ ]*\).*/\1/p')
    if [ -n "$url" ]; then
        if wget -q -O /tmp/blob "$url"; then
            echo "FETCH-OK bytes=$(wc -c < /tmp/blob) sha256=$(sha256sum /tmp/blob | cut -d' ' -f1)"
        else
            echo "FETCH-FAILED $url"
        fi
        rm -f /tmp/blob
    fi
    i=0
    while ! wget -q -O /dev/null http://10.88.0.2/ && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
    echo "NET-READY"
    # benches/net-vs-qemu.py: take what the host sends to :9000 (through a
    # hostfwd), then send 64 MiB to the host's port vx86.bench=PORT.
    bport=$(echo "$cmdline" | sed -n 's/.*vx86.bench=\([0-9]*\).*/\1/p')
    if [ -n "$bport" ]; then
        nc -l -p 9000 > /dev/null
        echo "BENCH-RX-DONE"
        dd if=/dev/zero bs=65536 count=1024 2>/dev/null | nc 10.0.2.2 "$bport"
        echo "BENCH-TX-DONE"
    fi
    while true; do sleep 3600; done
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
