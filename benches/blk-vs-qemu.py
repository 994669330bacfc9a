#!/usr/bin/env python3
"""Disk throughput inside the guest: vx86 virtio-blk, vx86 ATA and QEMU's
virtio-blk, in one run.

    benches/blk-vs-qemu.py [--vx86 PATH] [--guest-dir DIR] [--mib N] [--rand N]

Boots the Debian container guest (scripts/build-guest.sh) with
`vx86.blk=1 vx86.blkbench=N` on a raw scratch image of 2N MiB (host temp
directory, removed at the end), three times:

* vx86 -M pc, the image on virtio-blk-pci (`-drive ...,if=virtio`, /dev/vda);
* vx86 -M pc, the image on the ATA disk (`-drive ...,if=ide`, pata_legacy, /dev/sda);
* qemu-system-x86_64 -M pc -cpu qemu64,-apic -accel tcg, virtio-blk (/dev/vda);
* when qemu-img is installed, vx86 and QEMU once more on virtio-blk with a
  qcow2 over the raw image (`qemu-img create -f qcow2 -b RAW -F raw`, made
  fresh for each run): reads come from the backing file, the sequential
  write allocates 64 KiB clusters.

In the guest (scripts/guest/blk.sh), all O_DIRECT so the guest's page
cache does not answer: a sequential read of N MiB (dd bs=1M), 4 KiB reads at
R pseudo-random offsets (one busybox dd each), the same loop reading
/dev/zero (the cost of the loop and the dd processes, subtracted to give the
disk's share), and a sequential write of N MiB with fsync. The host times
each phase by the markers on the serial console. Prints MiB/s and IOPS per
configuration and the ratios. QEMU is a reference, never a dependency of vx86.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

PHASES = ["SEQREAD", "RANDREAD", "NOOP", "SEQWRITE"]


class Guest:
    """A VM whose serial console is read line by line; the host time each
    line arrived is kept."""

    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL)
        self.seen = {}
        self.log = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            t = time.monotonic()
            line = raw.decode("utf-8", "replace").strip()
            with self.lock:
                self.log.append(line)
                for word in line.split():
                    if word.startswith("BENCH-") or word.startswith("BLK-"):
                        self.seen.setdefault(word, t)

    def wait_for(self, marker, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with self.lock:
                if marker in self.seen:
                    return self.seen[marker]
            if self.p.poll() is not None:
                with self.lock:
                    return self.seen.get(marker)
            time.sleep(0.02)
        return None

    def stop(self):
        self.p.kill()
        self.p.wait()


def measure(name, cmd, mib, rand, limit):
    g = Guest(cmd)
    out = {}
    try:
        t = {}
        for ph in PHASES:
            for edge in ["START", "DONE"]:
                m = f"BENCH-{ph}-{edge}"
                t[m] = g.wait_for(m, limit)
                if t[m] is None:
                    print(f"{name}: no {m}; last lines: {g.log[-5:]}", flush=True)
                    return out
        span = {ph: t[f"BENCH-{ph}-DONE"] - t[f"BENCH-{ph}-START"] for ph in PHASES}
        out["seqread_mib_s"] = mib / span["SEQREAD"]
        out["seqwrite_mib_s"] = mib / span["SEQWRITE"]
        out["rand_loop_iops"] = rand / span["RANDREAD"]
        io = span["RANDREAD"] - span["NOOP"]
        out["rand_disk_iops"] = rand / io if io > 0 else float("nan")
        out["noop_loop_s"] = span["NOOP"]
    finally:
        g.stop()
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--vx86", default=os.path.join(here, "..", "target", "release", "vx86"))
    ap.add_argument("--guest-dir", default=os.path.join(
        os.environ.get("VX86_GUEST_CACHE", os.path.join(here, "..", "guest-cache")), "out"))
    ap.add_argument("--mib", type=int, default=64, help="MiB read and written sequentially")
    ap.add_argument("--rand", type=int, default=300, help="random 4 KiB reads")
    ap.add_argument("--limit", type=float, default=900.0)
    ap.add_argument("--only", default="", help="comma-separated subset: vx86-virtio,vx86-ata,"
                    "qemu-virtio,vx86-virtio-qcow2,qemu-virtio-qcow2")
    a = ap.parse_args()
    k = os.path.join(a.guest_dir, "vmlinuz")
    i = os.path.join(a.guest_dir, "initramfs-ctr.cpio.gz")
    if not (os.path.exists(k) and os.path.exists(i)):
        sys.exit(f"{a.guest_dir}: no guest; run scripts/build-guest.sh first")

    fd, img = tempfile.mkstemp(prefix="vx86-blkbench-", suffix=".img")
    os.close(fd)
    try:
        with open(img, "wb") as f:
            chunk = bytes(range(256)) * 4096
            for _ in range(2 * a.mib):
                f.write(chunk)

        def common(dev):
            return ["-m", "512M", "-kernel", k, "-initrd", i, "-append",
                    f"console=ttyS0 panic=-1 vx86.blk=1 vx86.blkbench={a.mib} "
                    f"vx86.blkrand={a.rand} vx86.blkdev={dev}",
                    "-nographic", "-no-reboot"]

        qemu = ["qemu-system-x86_64", "-M", "pc", "-cpu", "qemu64,-apic", "-accel", "tcg"]
        runs = {
            "vx86-virtio": [a.vx86, "-M", "pc"] + common("vda")
            + ["-drive", f"file={img},format=raw,if=virtio"],
            "vx86-ata": [a.vx86, "-M", "pc"] + common("sda")
            + ["-drive", f"file={img},format=raw,if=ide"],
            "qemu-virtio": qemu + common("vda") + ["-drive", f"file={img},format=raw,if=virtio"],
        }
        qcow = img + ".qcow2"
        have_qemu_img = subprocess.run(["qemu-img", "--version"], capture_output=True).returncode == 0 \
            if shutil.which("qemu-img") else False
        if have_qemu_img:
            runs["vx86-virtio-qcow2"] = [a.vx86, "-M", "pc"] + common("vda") \
                + ["-drive", f"file={qcow},format=qcow2,if=virtio"]
            runs["qemu-virtio-qcow2"] = qemu + common("vda") \
                + ["-drive", f"file={qcow},format=qcow2,if=virtio"]
        else:
            print("qemu-img not installed: no qcow2 rows", flush=True)
        only = [s for s in a.only.split(",") if s]
        res = {}
        for name, cmd in runs.items():
            if only and name not in only:
                continue
            if name.endswith("-qcow2"):
                if os.path.exists(qcow):
                    os.unlink(qcow)
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", img, "-F", "raw", qcow],
                               check=True)
            t0 = time.monotonic()
            res[name] = r = measure(name, cmd, a.mib, a.rand, a.limit)
            nan = float("nan")
            print(f"{name}: seq read {r.get('seqread_mib_s', nan):.1f} MiB/s, "
                  f"seq write {r.get('seqwrite_mib_s', nan):.1f} MiB/s, "
                  f"random 4k read {r.get('rand_loop_iops', nan):.0f} IOPS with a dd process each "
                  f"({r.get('rand_disk_iops', nan):.0f} IOPS less the loop's own "
                  f"{r.get('noop_loop_s', nan):.1f} s); run {time.monotonic() - t0:.0f} s",
                  flush=True)
        keys = ["seqread_mib_s", "seqwrite_mib_s", "rand_loop_iops", "rand_disk_iops"]
        for a_name, b_name in [("vx86-virtio", "qemu-virtio"), ("vx86-virtio", "vx86-ata"),
                               ("vx86-virtio-qcow2", "qemu-virtio-qcow2"),
                               ("vx86-virtio-qcow2", "vx86-virtio")]:
            x, y = res.get(a_name, {}), res.get(b_name, {})
            for key in keys:
                if key in x and key in y and y[key] > 0:
                    print(f"ratio {a_name}/{b_name} {key}: {x[key] / y[key]:.2f} (higher is better)")
    finally:
        os.unlink(img)
        if os.path.exists(img + ".qcow2"):
            os.unlink(img + ".qcow2")


if __name__ == "__main__":
    main()
