#!/usr/bin/env python3
"""Network throughput and latency: vx86 against QEMU TCG, in one run.

    benches/net-vs-qemu.py [--vx86 PATH] [--guest-dir DIR] [--mib N] [--requests N]

Boots the Debian container guest (scripts/build-guest.sh) with `vx86.net=1`
under vx86 and under `qemu-system-x86_64 -M pc -cpu qemu64,-apic -accel tcg`,
both with `-nic user,model=virtio-net-pci` and two host forwards, and measures:

* host -> guest: N MiB sent to the guest's port 9000 (busybox nc into
  /dev/null), through the forward, the user-mode NAT and the virtio queue;
* guest -> host: N MiB from the guest (`dd | nc 10.0.2.2 PORT`) to a
  listener here on 127.0.0.1;
* HTTP latency: requests to the guest's port 8080, which a proxy in the
  guest passes to a container's httpd on a Linux bridge (the path of
  `docker run -p 8080:80`).

Prints MiB/s and milliseconds for each, and the vx86/QEMU ratios. Only
127.0.0.1 and the guests are involved. QEMU is a reference, never a
dependency of vx86.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Guest:
    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            chunk = self.p.stdout.read1(4096)
            if not chunk:
                return
            with self.lock:
                self.text += chunk.decode("utf-8", "replace")

    def wait_for(self, marker, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self.lock:
                if marker in self.text:
                    return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self):
        self.p.kill()
        self.p.wait()


def measure(name, cmd_for, mib, requests, limit):
    bench_port = free_port()
    fwd_http, fwd_rx = free_port(), free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", bench_port))
    listener.listen(1)
    g = Guest(cmd_for(bench_port, fwd_http, fwd_rx))
    out = {}
    try:
        t0 = time.monotonic()
        if not g.wait_for("NET-READY", limit):
            print(f"{name}: no NET-READY within {limit} s", flush=True)
            return out
        out["boot"] = time.monotonic() - t0
        # HTTP latency through the published port.
        lat = []
        for _ in range(requests):
            t = time.monotonic()
            s = socket.create_connection(("127.0.0.1", fwd_http), timeout=30)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
            s.close()
            if b"hello from container" not in data:
                print(f"{name}: unexpected page {data[:80]!r}", flush=True)
                return out
            lat.append(time.monotonic() - t)
        lat.sort()
        out["http_ms_median"] = 1000 * lat[len(lat) // 2]
        # host -> guest.
        block = b"\0" * 65536
        total = mib * 1024 * 1024
        t = time.monotonic()
        s = socket.create_connection(("127.0.0.1", fwd_rx), timeout=60)
        sent = 0
        while sent < total:
            s.sendall(block)
            sent += len(block)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(limit)
        while s.recv(65536):
            pass
        s.close()
        if not g.wait_for("BENCH-RX-DONE", limit):
            print(f"{name}: the guest did not take the data", flush=True)
            return out
        out["to_guest_mib_s"] = mib / (time.monotonic() - t)
        # guest -> host (the guest sends 64 MiB).
        listener.settimeout(limit)
        c, _ = listener.accept()
        t = time.monotonic()
        got = 0
        c.settimeout(limit)
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            got += len(d)
        c.close()
        secs = time.monotonic() - t
        out["from_guest_mib_s"] = got / (1024 * 1024) / secs
        out["from_guest_bytes"] = got
    finally:
        g.stop()
        listener.close()
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--vx86", default=os.path.join(here, "..", "target", "release", "vx86"))
    ap.add_argument("--guest-dir", default=os.path.join(
        os.environ.get("VX86_GUEST_CACHE", os.path.join(here, "..", "guest-cache")), "out"))
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--limit", type=float, default=600.0)
    a = ap.parse_args()
    k = os.path.join(a.guest_dir, "vmlinuz")
    i = os.path.join(a.guest_dir, "initramfs-ctr.cpio.gz")
    if not (os.path.exists(k) and os.path.exists(i)):
        sys.exit(f"{a.guest_dir}: no guest; run scripts/build-guest.sh first")

    def common(bench, http, rx):
        return ["-m", "512M", "-kernel", k, "-initrd", i, "-append",
                f"console=ttyS0 panic=-1 vx86.net=1 vx86.bench={bench}",
                "-nographic", "-no-reboot", "-nic",
                f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{http}-:8080,"
                f"hostfwd=tcp:127.0.0.1:{rx}-:9000"]

    runs = {
        "vx86": lambda b, h, r: [a.vx86, "-M", "pc"] + common(b, h, r),
        "qemu": lambda b, h, r: ["qemu-system-x86_64", "-M", "pc", "-cpu", "qemu64,-apic",
                                 "-accel", "tcg"] + common(b, h, r),
    }
    res = {}
    for name, cmd in runs.items():
        res[name] = measure(name, cmd, a.mib, a.requests, a.limit)
        r = res[name]
        print(f"{name}: boot to NET-READY {r.get('boot', float('nan')):.1f} s, "
              f"HTTP median {r.get('http_ms_median', float('nan')):.1f} ms, "
              f"host->guest {r.get('to_guest_mib_s', float('nan')):.1f} MiB/s, "
              f"guest->host {r.get('from_guest_mib_s', float('nan')):.1f} MiB/s "
              f"({r.get('from_guest_bytes', 0)} bytes)", flush=True)
    v, q = res.get("vx86", {}), res.get("qemu", {})
    for key, better in [("to_guest_mib_s", "higher"), ("from_guest_mib_s", "higher"),
                        ("http_ms_median", "lower")]:
        if key in v and key in q and q[key] > 0:
            print(f"ratio vx86/QEMU {key}: {v[key] / q[key]:.2f} ({better} is better)")


if __name__ == "__main__":
    main()
