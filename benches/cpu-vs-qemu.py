#!/usr/bin/env python3
"""CPU-bound guest code: vx86 against QEMU TCG, side by side, in one run.

    benches/cpu-vs-qemu.py [--vx86 PATH] [--runs N] [--only loop|callret] [--jit]

Runs the benchmark ROMs in test-roms/ (loop.bin: a sieve and a bitwise CRC-32,
ALU/load/store; callret.bin: nested CALL/PUSH/POP/RET) under vx86 with
deterministic time (`-icount shift=0,sleep=off`) and under
`qemu-system-x86_64 -M isapc -accel tcg,thread=single`, both as `-bios ROM`
with `isa-debug-exit` on port 0xF4. The instruction count comes from vx86's
`--stats` line (the ROMs are deterministic, so QEMU retires the same
instructions); time is the child's CPU time (user + system), minus the CPU
time of a ROM that exits at once (process start-up, machine creation).
Prints guest MIPS for each and the vx86/QEMU speed ratio; the best of N runs.
With --jit, each ROM also runs with vx86's JIT tier (`--jit`), whose output
and instruction count must equal the interpreter's.

QEMU is only a reference to compare against; vx86 never needs it.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ROMS = {"loop": "test-roms/loop.bin", "callret": "test-roms/callret.bin"}


def cpu_time(cmd):
    """Runs cmd; returns (CPU seconds of the child, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, _, ru = os.wait4(p.pid, 0)
        out.seek(0)
        err.seek(0)
        return ru.ru_utime + ru.ru_stime, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


def exit_rom(path):
    """A 64 KiB BIOS image whose reset vector writes 0 to port 0xF4 at once."""
    img = bytearray(b"\xff" * 0x10000)
    img[0xFFF0:0xFFF5] = bytes([0x30, 0xC0, 0xE6, 0xF4, 0xF4])  # xor al,al; out 0xF4,al; hlt
    with open(path, "wb") as f:
        f.write(img)


def vx86_cmd(vx86, rom):
    return [vx86, "-bios", rom, "-M", "isapc", "-m", "32M", "-display", "none",
            "-debugcon", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-icount", "shift=0,sleep=off", "--stats", "-no-reboot"]


def qemu_cmd(rom):
    return ["qemu-system-x86_64", "-M", "isapc", "-cpu", "qemu64,-apic", "-m", "32M",
            "-accel", "tcg,thread=single", "-bios", rom, "-display", "none",
            "-debugcon", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-no-reboot"]


def best(cmd, runs):
    times, out, err = [], "", ""
    for _ in range(runs):
        t, out, err = cpu_time(cmd)
        times.append(t)
    return min(times), out, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vx86", default=os.path.join(ROOT, "target", "release", "vx86"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=sorted(ROMS))
    ap.add_argument("--jit", action="store_true", help="also run each ROM with --jit")
    args = ap.parse_args()
    names = [args.only] if args.only else list(ROMS)
    with tempfile.TemporaryDirectory() as tmp:
        base_rom = os.path.join(tmp, "exit.bin")
        exit_rom(base_rom)
        vx_base, _, _ = best(vx86_cmd(args.vx86, base_rom), args.runs)
        q_base, _, _ = best(qemu_cmd(base_rom), args.runs)
        print(f"start-up CPU time subtracted: vx86 {vx_base:.3f} s, QEMU {q_base:.3f} s")
        print(f"{'ROM':<10} {'instructions':>14} {'vx86 s':>8} {'vx86 MIPS':>10} {'QEMU s':>8} {'QEMU MIPS':>10} {'vx86/QEMU':>10}")
        for name in names:
            rom = os.path.join(ROOT, ROMS[name])
            vt, vout, verr = best(vx86_cmd(args.vx86, rom), args.runs)
            m = re.search(r"vx86 stats: (\d+) instructions retired", verr)
            if not m:
                sys.exit(f"{name}: no --stats line from vx86:\n{verr}")
            insns = int(m.group(1))
            qt, qout, _ = best(qemu_cmd(rom), args.runs)
            if qout.strip() != vout.strip():
                sys.exit(f"{name}: outputs differ: vx86 {vout.strip()!r}, QEMU {qout.strip()!r}")
            vt = max(vt - vx_base, 1e-6)
            qt = max(qt - q_base, 1e-6)
            vm, qm = insns / vt / 1e6, insns / qt / 1e6
            print(f"{name:<10} {insns:>14,} {vt:>8.3f} {vm:>10.1f} {qt:>8.3f} {qm:>10.1f} {vm / qm:>9.3f}x")
            if args.jit:
                jt, jout, jerr = best(vx86_cmd(args.vx86, rom) + ["--jit"], args.runs)
                jm = re.search(r"vx86 stats: (\d+) instructions retired", jerr)
                if jout.strip() != vout.strip() or not jm or int(jm.group(1)) != insns:
                    sys.exit(f"{name}: --jit differs from the interpreter:\n{jout}\n{jerr}")
                jt = max(jt - vx_base, 1e-6)
                jmips = insns / jt / 1e6
                print(f"{name + ' jit':<10} {insns:>14,} {jt:>8.3f} {jmips:>10.1f} {qt:>8.3f} {qm:>10.1f} {jmips / qm:>9.3f}x")


if __name__ == "__main__":
    main()
