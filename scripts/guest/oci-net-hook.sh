#!/bundle/rootfs/bin/busybox sh
# /usr/local/sbin/vx86-oci-net on vx86's disk guest: crun's createRuntime
# hook (OCI runtime spec, config.md "Hooks"). crun runs it after it has made
# the container's namespaces and before pivot_root, with the container's
# state JSON on stdin. It does what `docker run --network bridge` does: a
# veth pair with one end in the guest's bridge br0 and the other moved into
# the container's network namespace as eth0 at 10.88.0.2/24, default route
# through the bridge's 10.88.0.1. The container itself needs no
# CAP_NET_ADMIN for this.
bb=/bundle/rootfs/bin/busybox
pid=$($bb sed -n 's/.*"pid"[ ]*:[ ]*\([0-9][0-9]*\).*/\1/p')
if [ -z "$pid" ]; then
    echo "vx86-oci-net: no pid in the container state" >&2
    exit 1
fi
# busybox's `ip link add` takes no peer name: the kernel names it vethN.
$bb ip link add name h-oci type veth || exit 1
peer=$($bb ip -o link | $bb sed -n 's/^[0-9]*: \(veth[0-9]*\)@h-oci[:@].*/\1/p' | $bb head -n 1)
[ -n "$peer" ] || { echo "vx86-oci-net: no veth peer" >&2; exit 1; }
$bb ip link set h-oci master br0 || exit 1
$bb ip link set h-oci up
$bb ip link set "$peer" netns "$pid" || exit 1
in_ctr() { $bb nsenter -t "$pid" -n "$bb" "$@"; }
in_ctr ip link set lo up
in_ctr ip link set "$peer" name eth0
in_ctr ip addr add 10.88.0.2/24 dev eth0
in_ctr ip link set eth0 up
in_ctr ip route add default via 10.88.0.1
