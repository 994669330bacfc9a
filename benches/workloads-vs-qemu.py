#!/usr/bin/env python3
"""Real workloads (issue 18): vx86 against QEMU TCG, side by side, in one run.

    benches/workloads-vs-qemu.py [--vx86 PATH] [--runs N] [--only NAME]
                                 [--grub-seconds S] [--limit S]

Each workload runs under vx86 with `--stats` and under `qemu-system-x86_64
-M isapc -cpu qemu64,-apic -accel tcg,thread=single` (`-M pc` for GRUB, as
benches/grub-vs-qemu.py) with the same command line where vx86 speaks QEMU's
language. Time is the child's CPU time (user + system, from os.wait4), so
other jobs on the machine and the guest's idle time count less than in wall
time; the best of N runs. Guest MIPS are vx86's retired instructions (from
its `--stats` line, printed on SIGTERM too) over vx86's CPU seconds; the
`--stats` line's own MIPS figure (over wall time) is printed beside it.

* installer: Debian's netboot installer ($VX86_GUEST_CACHE/payloads/
  debian-installer-linux and debian-installer-initrd.gz, from
  scripts/fetch-firmware-payloads.sh) booted with -kernel/-initrd, 1 GiB,
  `console=ttyS0` so that its text frontend draws on COM1, until its first
  screen ("Select a language"); then SIGTERM. Busy user space, many
  processes: blocks decoded and TLB misses are printed too.
* grub-menu: GRUB 2 (payloads/grub-menu.img: grub-pc with `set timeout=-1`)
  from vx86's BIOS to its menu, then idling there for --grub-seconds of wall
  time (code and data share pages: SMC invalidations are printed). QEMU's
  side is only the time to the menu (wall seconds, SeaBIOS instead of vx86's
  BIOS); the CPU time of an idle menu is no comparison.
* userland: user space in the Debian container guest (out/vmlinuz and
  out/initramfs-ctr.cpio.gz from scripts/build-guest.sh): a busybox shell
  loop of 300,000 `i=$((i + 1))` and `dd if=/dev/zero bs=1M count=64 |
  sha256sum`, the whole run from power-on to the guest's `reboot -f` (an
  exit under -no-reboot). The guest's own /init has no hook for this: the
  bench appends a second cpio archive to the initramfs (the kernel unpacks
  concatenated archives in order, a later file replacing an earlier one;
  Documentation/driver-api/early-userspace/buffer-format.rst) whose /init
  runs the workload, so the guest image stays as built.

A workload whose files are missing is skipped with the reason. QEMU is only
a reference to compare against; vx86 never needs it.
"""
import argparse
import gzip
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("VX86_GUEST_CACHE", os.path.join(HERE, "..", "guest-cache"))
PAYLOADS = os.path.join(CACHE, "payloads")
OUT = os.path.join(CACHE, "out")
QEMU = ["qemu-system-x86_64", "-accel", "tcg,thread=single"]
QEMU_ISAPC = QEMU + ["-M", "isapc", "-cpu", "qemu64,-apic"]

INSTALLER_SCREEN = rb"Select a language"
GRUB_MENU = rb"GNU GRUB  version 2"
LOOP_ITERATIONS = 300_000
DD_MIB = 64
USERLAND_INIT = f"""#!/bin/busybox sh
# benches/workloads-vs-qemu.py "userland": replaces the container guest's /init.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
echo BENCH-USERLAND-START
i=0
while [ $i -lt {LOOP_ITERATIONS} ]; do i=$((i + 1)); done
echo "BENCH-LOOP-DONE i=$i"
echo "BENCH-SHA256 $(dd if=/dev/zero bs=1M count={DD_MIB} 2>/dev/null | sha256sum)"
echo BENCH-USERLAND-DONE
reboot -f
"""
USERLAND_DONE = rb"BENCH-USERLAND-DONE"


def watched(cmd, marker, limit, linger=0.0):
    """Runs cmd with stdout watched for the regex `marker` (None: run to the
    end). `linger` seconds after the marker (or at once) the child gets
    SIGTERM, which vx86 answers by stopping and printing its --stats line.
    Returns (CPU seconds, wall seconds to the marker or None, stdout, stderr)."""
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        out, seen, stop_at = b"", None, None
        fd = p.stdout.fileno()
        while True:
            now = time.monotonic()
            if stop_at is not None and now >= stop_at:
                break
            if now - start > limit:
                print(f"  ({cmd[0]}: gave up after {limit:.0f} s)", flush=True)
                break
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
                if marker is not None and seen is None and re.search(marker, out):
                    seen = time.monotonic() - start
                    stop_at = time.monotonic() + linger
        # Popen's poll()/send_signal() would reap the child and lose its
        # rusage: wait4 and signal by pid only.
        pid, _, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == 0:
            os.kill(p.pid, signal.SIGTERM)
            # Drain what the child writes while it stops (10 s at most).
            give_up = time.monotonic() + 10.0
            while True:
                r, _, _ = select.select([fd], [], [], max(0.0, give_up - time.monotonic()))
                if not r:
                    os.kill(p.pid, signal.SIGKILL)
                    break
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
            _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
        p.stdout.close()
        err.seek(0)
        return (ru.ru_utime + ru.ru_stime, seen, out.decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"))


def stats(stderr):
    """The numbers of vx86's `--stats` line, or None."""
    m = re.search(r"vx86 stats: (\d+) instructions retired in ([\d.]+) s = ([\d.]+) MIPS", stderr)
    if not m:
        return None
    s = {"insns": int(m.group(1)), "wall": float(m.group(2)), "mips_wall": float(m.group(3))}
    for key, rx in [("decoded", r"decoded (\d+)"), ("blocks", r"blocks run (\d+)"),
                    ("tlb_misses", r"TLB misses (\d+)"), ("smc", r"SMC invalidations (\d+)")]:
        m = re.search(rx, stderr)
        if m:
            s[key] = int(m.group(1))
    return s


def best(runs, fn):
    """The run with the least CPU time of `runs` calls of fn (-> tuple)."""
    results = [fn() for _ in range(runs)]
    return min(results, key=lambda r: r[0])


def missing(paths):
    gone = [p for p in paths if not os.path.isfile(p)]
    if gone:
        return ", ".join(gone) + " not found"
    return None


def cpio_newc(files):
    """A newc ("070701") cpio archive of {name: (mode, bytes)} with its trailer
    (the format the kernel's initramfs unpacker reads)."""
    out = bytearray()

    def pad4():
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, (mode, data)) in enumerate(list(files.items()) + [("TRAILER!!!", (0, b""))], 1):
        nb = name.encode() + b"\0"
        fields = [ino if mode else 0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + nb)
        pad4()
        out.extend(data)
        pad4()
    return bytes(out)


def g(x):
    return f"{x:.2f}" if x is not None else "n/a"


def vx86_stats(name, goal, seen, err):
    """vx86's --stats figures when it reached `goal`; else prints why and its stderr tail."""
    s = stats(err)
    if seen is None or s is None:
        print(f"{name}: vx86 did not reach {goal} ({'no --stats line' if s is None else 'marker missing'})")
        print(err.strip()[-2000:])
        return None
    return s


def bench_installer(a, tmp):
    kernel = os.path.join(PAYLOADS, "debian-installer-linux")
    initrd = os.path.join(PAYLOADS, "debian-installer-initrd.gz")
    why = missing([kernel, initrd])
    if why:
        print(f"installer: skipped ({why}; run scripts/fetch-firmware-payloads.sh)")
        return
    args = ["-m", "1G", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0",
            "-nographic", "-no-reboot"]
    vt, vseen, vout, verr = best(a.runs, lambda: watched([a.vx86, "--stats"] + args, INSTALLER_SCREEN, a.limit))
    qt, qseen, _, _ = best(a.runs, lambda: watched(QEMU_ISAPC + args, INSTALLER_SCREEN, a.limit))
    s = vx86_stats("installer", "the language screen", vseen, verr)
    if s is None:
        return
    print(f"installer: to {INSTALLER_SCREEN.decode()!r}: {s['insns']:,} instructions; "
          f"blocks decoded {s.get('decoded', 0):,}, TLB misses {s.get('tlb_misses', 0):,}, "
          f"SMC invalidations {s.get('smc', 0):,}")
    row("installer", s["insns"] / vt / 1e6, s["mips_wall"], vt, qt if qseen is not None else None)


def bench_grub(a, tmp):
    disk = os.path.join(PAYLOADS, "grub-menu.img")
    why = missing([disk])
    if why:
        print(f"grub-menu: skipped ({why}; run scripts/fetch-firmware-payloads.sh)")
        return
    args = ["-m", "512M", "-nographic", "-no-reboot", "-drive", f"file={disk.replace(',', ',,')},format=raw,snapshot=on"]
    vt, vseen, _, verr = best(a.runs, lambda: watched([a.vx86, "--stats"] + args, GRUB_MENU, a.limit,
                                                      linger=a.grub_seconds))
    # QEMU: to the menu only, the fastest of N.
    qmenu = [watched(QEMU + ["-M", "pc", "-cpu", "qemu64,-apic"] + args, GRUB_MENU, a.limit)[1]
             for _ in range(a.runs)]
    qmenu = min((x for x in qmenu if x is not None), default=None)
    s = vx86_stats("grub-menu", "the menu", vseen, verr)
    if s is None:
        return
    print(f"grub-menu: menu after {vseen:.2f} s wall (QEMU, SeaBIOS: {g(qmenu)} s"
          f"{f', {vseen / qmenu:.2f}x' if qmenu else ''}), then {a.grub_seconds:.0f} s idle: "
          f"{s['insns']:,} instructions, SMC invalidations {s.get('smc', 0):,}, "
          f"blocks decoded {s.get('decoded', 0):,}, TLB misses {s.get('tlb_misses', 0):,}")
    row("grub-menu", s["insns"] / vt / 1e6, s["mips_wall"], vt, None)


def bench_userland(a, tmp):
    kernel = os.path.join(OUT, "vmlinuz")
    base = os.path.join(OUT, "initramfs-ctr.cpio.gz")
    why = missing([kernel, base])
    if why:
        print(f"userland: skipped ({why}; run scripts/build-guest.sh initramfs)")
        return
    initrd = os.path.join(tmp, "initramfs-userland.cpio.gz")
    with open(base, "rb") as f:
        img = f.read()
    img += b"\0" * (-len(img) % 4)
    img += gzip.compress(cpio_newc({"init": (0o100755, USERLAND_INIT.encode())}), mtime=0)
    with open(initrd, "wb") as f:
        f.write(img)
    args = ["-m", "512M", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1",
            "-nographic", "-no-reboot"]
    vt, vseen, vout, verr = best(a.runs, lambda: watched([a.vx86, "--stats"] + args, None, a.limit))
    qt, qseen, qout, _ = best(a.runs, lambda: watched(QEMU_ISAPC + args, None, a.limit))
    s = stats(verr)
    want = f"BENCH-LOOP-DONE i={LOOP_ITERATIONS}"
    for who, out in [("vx86", vout), ("QEMU", qout)]:
        if want not in out or "BENCH-USERLAND-DONE" not in out:
            print(f"userland: {who} did not finish the workload:\n{out[-2000:]}")
            return
    sums = [re.search(r"BENCH-SHA256 ([0-9a-f]{64})", o) for o in (vout, qout)]
    if not all(sums) or sums[0].group(1) != sums[1].group(1):
        print(f"userland: the sha256 sums differ: {[x and x.group(1) for x in sums]}")
        return
    if s is None:
        print("userland: no --stats line from vx86")
        return
    print(f"userland: {LOOP_ITERATIONS:,}-iteration shell loop + {DD_MIB} MiB through sha256sum, "
          f"power-on to reboot: {s['insns']:,} instructions; blocks decoded {s.get('decoded', 0):,}, "
          f"TLB misses {s.get('tlb_misses', 0):,}")
    row("userland", s["insns"] / vt / 1e6, s["mips_wall"], vt, qt)


ROWS = []


def row(name, mips_cpu, mips_wall, vt, qt):
    ROWS.append((name, mips_cpu, mips_wall, vt, qt))
    qemu = f"QEMU {qt:.2f} s CPU, {vt / qt:.2f}x" if qt else "QEMU n/a"
    print(f"  {name}: vx86 {vt:.2f} s CPU ({mips_cpu:.1f} MIPS), {qemu}", flush=True)


WORKLOADS = {"installer": bench_installer, "grub-menu": bench_grub, "userland": bench_userland}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vx86", default=os.path.join(HERE, "..", "target", "release", "vx86"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", choices=list(WORKLOADS))
    ap.add_argument("--grub-seconds", type=float, default=20.0,
                    help="wall seconds GRUB idles at its menu (default 20)")
    ap.add_argument("--limit", type=float, default=1200.0,
                    help="wall seconds a run may take before it is given up (default 1200)")
    a = ap.parse_args()
    if not os.access(a.vx86, os.X_OK):
        sys.exit(f"{a.vx86}: not an executable; build it with `cargo build --release`")
    with tempfile.TemporaryDirectory(prefix="vx86-bench-") as tmp:
        for name, fn in WORKLOADS.items():
            if a.only in (None, name):
                fn(a, tmp)
    if ROWS:
        print(f"\n{'workload':<10} {'vx86 MIPS':>9} {'(wall)':>7} {'vx86 s':>8} {'QEMU s':>8} {'vx86/QEMU':>10}"
              f"   (CPU time, best of {a.runs})")
        for name, mc, mw, vt, qt in ROWS:
            ratio = f"{vt / qt:9.2f}x" if qt else f"{'n/a':>10}"
            print(f"{name:<10} {mc:>9.1f} {mw:>7.1f} {vt:>8.2f} {g(qt):>8} {ratio}")


if __name__ == "__main__":
    main()
