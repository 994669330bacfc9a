#!/usr/bin/env python3
"""Boot-to-container time: vx86 against QEMU TCG, side by side, in one run.

    benches/boot-vs-qemu.py [--vx86 PATH] [--guest-dir DIR] [--runs N] [--only initramfs|disk] [--jit]

Boots the guests that scripts/build-guest.sh made (in $VX86_GUEST_CACHE/out,
default ./guest-cache/out) under `qemu-system-x86_64 -M isapc -cpu qemu64,-apic
-accel tcg` and under vx86 with the same command line, and prints the seconds
from process start to each marker and the vx86/QEMU ratio. Two comparisons:

* "same command line": both get the bzImage (vx86 decompresses it on the host
  and enters through PVH by default; QEMU runs the kernel's own decompressor);
* "same work": both enter through the PVH note (vx86 with the bzImage, QEMU
  with the ELF vmlinux extracted from it), when an uncompressed vmlinux
  (out/vmlinux) exists.

With --jit, vx86 also runs with its JIT tier (`--jit`), as a third row.

QEMU is only a reference to compare against; vx86 never needs it.
"""
import argparse
import os
import subprocess
import sys
import time

GOAL = {"initramfs": "CONTAINER-OK", "disk": "OCI-CONTAINER-OK"}
MARKERS = {
    "initramfs": ["GUEST-BOOT-OK", "CONTAINER-OK", "PIDS-LIMIT-OK", "GUEST-DONE"],
    "disk": ["DISK-ROOT-OK", "DEBIAN-ROOTFS-OK", "OCI-CONTAINER-OK", "GUEST-DONE"],
}


def timed_run(cmd, markers, limit):
    """Runs cmd, returns {marker: seconds} for the markers seen on stdout."""
    start = time.monotonic()
    seen = {}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    buf = b""
    try:
        while True:
            chunk = p.stdout.read1(4096) if hasattr(p.stdout, "read1") else p.stdout.read(1)
            if not chunk:
                break
            buf += chunk
            text = buf.decode("utf-8", "replace")
            for m in markers:
                if m not in seen and m in text:
                    seen[m] = time.monotonic() - start
            if time.monotonic() - start > limit:
                break
    finally:
        p.kill()
        p.wait()
    seen["exit"] = time.monotonic() - start
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vx86", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "vx86"))
    ap.add_argument("--guest-dir", default=os.path.join(
        os.environ.get("VX86_GUEST_CACHE", os.path.join(os.path.dirname(__file__), "..", "guest-cache")), "out"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", choices=["initramfs", "disk"])
    ap.add_argument("--limit", type=float, default=1800.0)
    ap.add_argument("--jit", action="store_true", help="also run vx86 with --jit")
    a = ap.parse_args()
    g = a.guest_dir
    kernel = os.path.join(g, "vmlinuz")
    if not os.path.exists(kernel):
        sys.exit(f"{kernel}: missing; run scripts/build-guest.sh first")
    qemu = "qemu-system-x86_64"
    base_q = [qemu, "-M", "isapc", "-cpu", "qemu64,-apic", "-accel", "tcg"]
    guests = {
        "initramfs": ["-m", "512M", "-initrd", os.path.join(g, "initramfs-ctr.cpio.gz"),
                      "-append", "console=ttyS0 panic=-1", "-nographic", "-no-reboot"],
        "disk": ["-m", "512M", "-initrd", os.path.join(g, "initramfs-disk.cpio.gz"),
                 "-append", "console=ttyS0 panic=-1", "-drive",
                 f"file={os.path.join(g, 'disk.img')},format=raw", "-snapshot",
                 "-nographic", "-no-reboot"],
    }
    vmlinux = os.path.join(g, "vmlinux")
    times = {}
    for name, args in guests.items():
        if a.only and name != a.only:
            continue
        if not all(os.path.exists(x) for x in args if x.startswith(g)):
            print(f"{name}: guest files missing, skipped")
            continue
        configs = [
            ("qemu  bzImage", base_q + ["-kernel", kernel] + args),
            ("vx86  bzImage", [a.vx86, "-kernel", kernel] + args),
        ]
        if a.jit:
            configs.append(("vx86  bzImage --jit", [a.vx86, "--jit", "-kernel", kernel] + args))
        if os.path.exists(vmlinux):
            configs.append(("qemu  PVH vmlinux", base_q + ["-kernel", vmlinux] + args))
        for label, cmd in configs:
            for r in range(a.runs):
                t = timed_run(cmd, MARKERS[name], a.limit)
                cells = "  ".join(f"{m}={t[m]:.2f}s" if m in t else f"{m}=--" for m in MARKERS[name])
                print(f"{name:9} {label:18} run {r + 1}: {cells}", flush=True)
                times[(name, label)] = t
        last = GOAL[name]
        q = times.get((name, "qemu  bzImage"), {}).get(last)
        v = times.get((name, "vx86  bzImage"), {}).get(last)
        qp = times.get((name, "qemu  PVH vmlinux"), {}).get(last)
        vj = times.get((name, "vx86  bzImage --jit"), {}).get(last)
        for tag, vt in (("", v), (" (--jit)", vj)):
            if q and vt:
                print(f"{name:9} ratio vx86{tag}/QEMU to {last}, same command line: {vt / q:.2f}x")
            if qp and vt:
                print(f"{name:9} ratio vx86{tag}/QEMU to {last}, same work (PVH): {vt / qp:.2f}x")


if __name__ == "__main__":
    main()
