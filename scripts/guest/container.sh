# Runs inside the container (PID namespace, chroot /ctr, cgroup ctr).
# unshare --mount-proc gave the new PID namespace a fresh /proc outside
# the chroot; mount one inside it too (this mount namespace is private).
mount -t proc proc /proc
mount -t tmpfs -o size=1m tmpfs /dev
mknod /dev/null c 1 3
hostname vx86-ctr
echo "CONTAINER-OK hostname=$(hostname) pid=$$ procs=$(ls -d /proc/[0-9]* | wc -l)"
ps
# pids.max is 6: unshare, this shell and the subshell below leave room for
# only a few more processes, so one of these forks must be refused.
( for i in 1 2 3 4 5 6 7 8; do sleep 30 & done ) 2>/tmp/fork.err
if grep -q "can't fork" /tmp/fork.err; then
    echo "PIDS-LIMIT-OK fork refused: $(grep -m 1 "can't fork" /tmp/fork.err)"
else
    echo "PIDS-LIMIT-FAIL every fork succeeded"
fi
killall sleep 2>/dev/null
exit 0
