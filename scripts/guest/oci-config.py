#!/usr/bin/env python3
"""Prints the OCI runtime-spec config.json of vx86's disk-guest bundle.

The shape follows the OCI runtime specification (config.md, config-linux.md)
and the defaults of `crun spec`; the process prints the OCI-CONTAINER-OK
marker with the hostname and PID it sees inside its namespaces, then, on its
own network namespace's eth0 (put on the guest's bridge by the
createRuntime hook vx86-oci-net), OCI-NET-OK with its address and the page
it fetched from the bridge's side (10.88.0.1).
"""
import json

SCRIPT = (
    "echo OCI-CONTAINER-OK hostname=$(hostname) pid=$$; "
    "addr=$(ip -o -4 addr show dev eth0 | sed -n 's|.* inet \\([0-9.]*\\)/.*|\\1|p'); "
    "page=$(wget -q -O - http://10.88.0.1/); "
    "echo OCI-NET-OK links=$(ls /sys/class/net | tr '\\n' ,) eth0=$addr page=\\\"$page\\\""
)
caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
config = {
    "ociVersion": "1.0.0",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/sh", "-c", SCRIPT],
        "env": ["PATH=/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "vx86-oci",
    "hooks": {"createRuntime": [{"path": "/usr/local/sbin/vx86-oci-net"}]},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {
            "memory": {"limit": 64 * 1024 * 1024},
            "pids": {"limit": 16},
        },
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                        "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                          "/proc/sys", "/proc/sysrq-trigger"],
    },
}
print(json.dumps(config, indent=2))
