# Runs as a container's first process (run-container): takes the veth that
# arrives in this network namespace as eth0, serves /tmp/www on port 80,
# then runs the container's command.
name=$1
addr=$2
shift 2
mount -t proc proc /proc
mount -t tmpfs -o size=1m tmpfs /tmp
mount -t tmpfs -o size=1m tmpfs /dev
mknod /dev/null c 1 3
hostname "$name"
i=0
dev=
while [ -z "$dev" ] && [ $i -lt 100 ]; do
    dev=$(ip -o link | sed -n 's/^[0-9]*: \(veth[0-9]*\)[@:].*/\1/p' | head -n 1)
    [ -z "$dev" ] && sleep 0.1
    i=$((i + 1))
done
ip link set lo up
ip link set "$dev" name eth0
ip link set eth0 up
ip addr add "$addr/24" dev eth0
ip route add default via 10.88.0.1
mkdir -p /tmp/www
echo "hello from container $(hostname) at $addr" > /tmp/www/index.html
httpd -p 80 -h /tmp/www
exec "$@"
