#!/bin/sh
# run-container NAME ADDR [COMMAND...]: a container on the bridge br0, as
# `docker run --network bridge` makes one: new mount, UTS, IPC, network and
# PID namespaces over the busybox root /ctr, a veth pair with one end in
# br0 and the other as the container's eth0 at ADDR/24, an HTTP server on
# port 80 serving a page that names the container, then COMMAND (default:
# a shell). In the background: run-container web 10.88.0.5 sleep 99999 &
name=$1
addr=$2
if [ -z "$name" ] || [ -z "$addr" ]; then
    echo "usage: run-container NAME 10.88.0.N [COMMAND...]" >&2
    exit 2
fi
shift 2
[ $# -eq 0 ] && set -- sh
/bin/vx86-net
unshare --mount --uts --ipc --net --pid --fork --mount-proc \
    chroot /ctr /bin/sh /net-container.sh "$name" "$addr" "$@" &
pid=$!
# unshare entered the new network namespace itself before forking: move the
# veth's peer into its namespace.
ip link add name "h-$name" type veth
peer=$(ip -o link | sed -n "s/^[0-9]*: \(veth[0-9]*\)@h-$name[:@].*/\1/p" | head -n 1)
ip link set "h-$name" master br0
ip link set "h-$name" up
ip link set "$peer" netns "$pid"
wait "$pid"
