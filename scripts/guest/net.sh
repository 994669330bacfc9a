#!/bin/sh
# vx86-net: the guest's network. Loads the modules (virtio NIC, bridge,
# veth), configures eth0 by DHCP from vx86's (or QEMU's) user networking,
# and makes the bridge br0 (10.88.0.1/24) that containers join with veth
# pairs (run-container). Safe to run twice.
[ -e /sys/class/net/br0 ] && exit 0
for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m" 2>/dev/null
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    udhcpc -i eth0 -n -q -t 5 -T 1 -s /bin/udhcpc.script 2>/dev/null \
        || echo "vx86-net: no DHCP answer on eth0"
fi
ip link add name br0 type bridge
ip addr add 10.88.0.1/24 dev br0
ip link set br0 up
echo 1 > /proc/sys/net/ipv4/ip_forward
