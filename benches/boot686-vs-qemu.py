#!/usr/bin/env python3
"""Debian's 32-bit (686) kernel to the end of its init: vx86 against QEMU TCG,
side by side, in one run (issue 18).

    benches/boot686-vs-qemu.py [--vx86 PATH] [--payloads DIR] [--runs N] [--no-before]

Boots $VX86_GUEST_CACHE/payloads/linux-686 with initramfs-686.cpio.gz (both
from scripts/fetch-firmware-payloads.sh: Debian's non-PAE 686 kernel, an XZ
bzImage without a PVH note, and an i386 busybox /init that prints
VX86-686-INIT-DONE and reboots) with the same command line under vx86 and
under `qemu-system-x86_64 -M isapc -cpu qemu64,-apic -accel tcg,thread=single`,
`-no-reboot` making the reboot an exit. Time is the child's CPU time (user +
system) from start to exit; the best of N runs.

Rows:
* "boot to init": the whole boot, the kernel's crypto self-tests included;
* "boot, cryptomgr.notests": the same with the self-tests turned off;
* "crypto self-tests": the difference of the two (they run as one late
  initcall, crypto_algapi_init, between "evm: HMAC attrs" and the end of the
  boot, and nothing else in the boot depends on them);
each for vx86 as it boots by default (the payload decompressed on the host,
the 32-bit vmlinux entered at startup_32 with boot_params) and, unless
--no-before, vx86 --no-host-decompress (the kernel's own XZ decompressor runs
in the guest, as QEMU's does). Guest instructions come from vx86's --stats.

QEMU is only a reference to compare against; vx86 never needs it.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MARKER = "VX86-686-INIT-DONE"
APPEND = "console=ttyS0 panic=-1"


def run(cmd, limit):
    """Runs cmd to its exit (or kills it after limit s): (CPU s, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(limit, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (ru.ru_utime + ru.ru_stime, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"))


def best(cmd, runs, limit):
    """Best CPU time of N runs that reach the marker; None if none did."""
    best_t, insns, how = None, None, ""
    for _ in range(runs):
        t, out, err = run(cmd, limit)
        if MARKER not in out:
            tail = "\n".join(out.strip().splitlines()[-5:])
            print(f"  ({os.path.basename(cmd[0])}: no {MARKER} after {t:.1f} s CPU; last lines:\n{tail})",
                  flush=True)
            continue
        if best_t is None or t < best_t:
            best_t = t
            m = re.search(r"vx86 stats: (\d+) instructions retired", err)
            insns = int(m.group(1)) if m else None
            m = re.search(r"vx86: -kernel: ([^,]+)", err)
            how = m.group(1) if m else ""
    return best_t, insns, how


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vx86", default=os.path.join(ROOT, "target", "release", "vx86"))
    ap.add_argument("--payloads", default=os.path.join(
        os.environ.get("VX86_GUEST_CACHE", os.path.join(ROOT, "guest-cache")), "payloads"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--limit", type=float, default=1200.0, help="seconds before a run is killed")
    ap.add_argument("--no-before", action="store_true",
                    help="skip vx86 --no-host-decompress (the guest-decompressor path)")
    a = ap.parse_args()
    kernel = os.path.join(a.payloads, "linux-686")
    initrd = os.path.join(a.payloads, "initramfs-686.cpio.gz")
    for f in (kernel, initrd):
        if not os.path.exists(f):
            sys.exit(f"{f}: missing; run scripts/fetch-firmware-payloads.sh first")
    common = ["-m", "256M", "-kernel", kernel, "-initrd", initrd, "-nographic", "-no-reboot"]
    qemu = ["qemu-system-x86_64", "-M", "isapc", "-cpu", "qemu64,-apic",
            "-accel", "tcg,thread=single"] + common
    vx = [a.vx86] + common + ["--stats"]
    configs = [("QEMU", qemu), ("vx86", vx)]
    if not a.no_before:
        configs.append(("vx86 --no-host-decompress", vx + ["--no-host-decompress"]))
    res = {}
    for label, cmd in configs:
        for notests in (False, True):
            append = APPEND + (" cryptomgr.notests" if notests else "")
            t, insns, how = best(cmd + ["-append", append], a.runs, a.limit)
            res[(label, notests)] = (t, insns)
            ins = f", {insns / 1e9:.2f} G instructions" if insns else ""
            mips = f", {insns / t / 1e6:.0f} MIPS" if insns and t else ""
            tt = f"{t:.2f} s" if t is not None else "--"
            print(f"{label:27} {'notests' if notests else 'full   '} {tt}{ins}{mips}"
                  f"{'  [' + how + ']' if how else ''}", flush=True)

    def row(name, f):
        cells = []
        q = f("QEMU")
        for label, _ in configs:
            v = f(label)
            if label == "QEMU":
                cells.append(f"QEMU {v:7.2f} s" if v is not None else "QEMU      --")
            elif v is not None and q:
                cells.append(f"{label} {v:7.2f} s ({v / q:.2f}x)")
            else:
                cells.append(f"{label} --")
        print(f"{name:26} " + "   ".join(cells))

    def full(label):
        return res[(label, False)][0]

    def notests(label):
        return res[(label, True)][0]

    def tests(label):
        a_, b_ = full(label), notests(label)
        return a_ - b_ if a_ is not None and b_ is not None else None

    print()
    print("CPU time, vx86/QEMU ratio in parentheses:")
    row("boot to init", full)
    row("boot, cryptomgr.notests", notests)
    row("crypto self-tests", tests)


if __name__ == "__main__":
    main()
