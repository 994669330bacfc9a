#!/usr/bin/env python3
"""GRUB-booted container guest: vx86 (its own BIOS) against QEMU TCG (SeaBIOS),
side by side, in one run, with the time a person sees.

    benches/grub-vs-qemu.py [--vx86 PATH] [--disk IMG] [--runs N]

Boots $VX86_GUEST_CACHE/payloads/grub.img (scripts/fetch-firmware-payloads.sh:
GRUB 2 from Debian's grub-pc-bin, `set timeout=5`, the Debian container guest)
under `vx86 -m 512M -nographic` (default, host-clock time) and under
`qemu-system-x86_64 -M pc -cpu qemu64,-apic -accel tcg` with the same disk, and
prints, in wall seconds:

* menu:      process start to GRUB's first menu draw on COM1
* countdown: the menu's first draw to the countdown's end ("Booting `...'")
* load:      the countdown's end to the kernel's first output ("early console
             in setup code": GRUB reads and copies the kernel and initramfs)
* kernel:    the kernel's first output to "Linux version" (the kernel's own
             XZ decompression; nothing is decompressed on the host on this path)
* total:     process start to CONTAINER-OK

and the vx86/QEMU ratio of each. QEMU is only a reference; vx86 never needs it.
"""
import argparse
import os
import re
import subprocess
import sys
import time

# QEMU's SeaBIOS mirrors INT 10h text to COM1 as well, so the kernel's
# setup-code line (written through the BIOS and the UART) arrives doubled there.
MARKERS = [
    ("menu", rb"GNU GRUB  version 2"),
    ("countdown_end", rb"Booting `"),
    ("kernel_first", rb"early console in setup code|eeaarrllyy  ccoonnssoollee"),
    ("linux", rb"Linux version"),
    ("ok", rb"CONTAINER-OK"),
]


def timed_run(cmd, limit):
    """Runs cmd; returns {marker: seconds since start} for the markers seen."""
    start = time.monotonic()
    seen = {}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    buf = b""
    try:
        while time.monotonic() - start < limit:
            chunk = p.stdout.read1(4096)
            if not chunk:
                break
            buf += chunk
            now = time.monotonic() - start
            for name, rx in MARKERS:
                if name not in seen and re.search(rx, buf):
                    seen[name] = now
            if "ok" in seen:
                break
    finally:
        p.kill()
        p.wait()
    return seen


def phases(seen):
    def span(a, b):
        return seen[b] - seen[a] if a in seen and b in seen else None
    return {
        "menu": seen.get("menu"),
        "countdown": span("menu", "countdown_end"),
        "load": span("countdown_end", "kernel_first"),
        "kernel": span("kernel_first", "linux"),
        "total": seen.get("ok"),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    cache = os.environ.get("VX86_GUEST_CACHE", os.path.join(here, "..", "guest-cache"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--vx86", default=os.path.join(here, "..", "target", "release", "vx86"))
    ap.add_argument("--disk", default=os.path.join(cache, "payloads", "grub.img"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--limit", type=float, default=400.0)
    a = ap.parse_args()
    if not os.path.isfile(a.disk):
        sys.exit(f"{a.disk}: not found; run scripts/fetch-firmware-payloads.sh")
    drive = ["-drive", f"file={a.disk},format=raw,snapshot=on"]
    cmds = {
        "vx86": [a.vx86, "-m", "512M", "-nographic", "-no-reboot"] + drive,
        "qemu": ["qemu-system-x86_64", "-M", "pc", "-cpu", "qemu64,-apic", "-accel", "tcg",
                 "-m", "512M", "-nographic", "-no-reboot"] + drive,
    }
    best = {}
    for run in range(a.runs):
        for who, cmd in cmds.items():
            ph = phases(timed_run(cmd, a.limit))
            print(f"run {run + 1} {who}: " + ", ".join(
                f"{k} {v:.2f} s" if v is not None else f"{k} -" for k, v in ph.items()), flush=True)
            for k, v in ph.items():
                if v is not None and (k not in best.setdefault(who, {}) or v < best[who][k]):
                    best[who][k] = v
    print(f"\n{'phase':<10} {'vx86 s':>8} {'QEMU s':>8} {'vx86/QEMU':>10}   (best of {a.runs})")
    for k in ["menu", "countdown", "load", "kernel", "total"]:
        v, q = best.get("vx86", {}).get(k), best.get("qemu", {}).get(k)
        fmt = lambda x: f"{x:8.2f}" if x is not None else f"{'-':>8}"
        ratio = f"{v / q:10.2f}" if v is not None and q else f"{'-':>10}"
        print(f"{k:<10} {fmt(v)} {fmt(q)} {ratio}")


if __name__ == "__main__":
    main()
