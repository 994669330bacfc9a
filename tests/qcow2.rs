//! qcow2 images made by QEMU's own `qemu-img`/`qemu-io` read back through
//! vx86's backend byte for byte as `qemu-img convert -O raw` reads them:
//! versions 2 and 3, compressed clusters, zero clusters, backing chains with
//! `backing_fmt`. Corrupt images (pointers past the end, a backing loop, a
//! missing backing file, random damage) are refused in one line or fail a
//! read, never panic.
//!
//! Writes: vx86 writes such images (v3, v2, backed, small clusters with a
//! growing refcount table, compressed, zero clusters, an internal
//! snapshot) at random offsets and sizes; `qemu-img check` finds no errors
//! and no leaks, and QEMU reads exactly the bytes written (and the backing
//! file's elsewhere). Data safety: vx86 killed with SIGKILL at random
//! points while a test ROM writes and flushes leaves raw and qcow2 images
//! whose flushed writes are all there and whose metadata has no errors.
//! Tests that need qemu-img skip with a printed reason when it is absent.

mod common;

use std::path::Path;
use std::process::Command;
use vx86::block::{open_drive, DriveSpec};

fn have_qemu_img() -> bool {
    let ok = ["qemu-img", "qemu-io"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        println!("SKIPPED: qemu-img/qemu-io not installed (apt-get install qemu-utils)");
    }
    ok
}

fn sh(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A raw file of `mib` MiB: each sector different.
fn pattern_raw(path: &Path, mib: usize) {
    let b: Vec<u8> = (0..mib << 20)
        .map(|i| (i.wrapping_mul(13) ^ (i / 512) ^ (i >> 16)) as u8)
        .collect();
    std::fs::write(path, b).expect("write raw");
}

fn spec(path: &Path, extra: &str) -> DriveSpec {
    let f = path.display().to_string().replace(',', ",,");
    DriveSpec::parse(&format!("file={f}{extra}")).expect("spec")
}

/// Every byte vx86 reads from `img` equals what `qemu-img convert` makes of it.
fn assert_reads_like_qemu(dir: &common::TempDir, img: &Path) {
    let want_path = dir.join("want.raw");
    sh(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            &img.display().to_string(),
            &want_path.display().to_string(),
        ],
    );
    let want = std::fs::read(&want_path).expect("read converted");
    let mut d = open_drive(&spec(img, ",readonly=on")).expect("open qcow2");
    assert!(d.read_only());
    assert_eq!(
        d.sector_count() * 512,
        want.len() as u64,
        "{}",
        img.display()
    );
    // Odd-sized requests across cluster boundaries, then all of it at once.
    let mut got = vec![0u8; want.len()];
    let mut lba = 0usize;
    let mut n = 1usize;
    while lba * 512 < want.len() {
        let k = n.min(want.len() / 512 - lba);
        d.read_sectors(lba as u64, &mut got[lba * 512..(lba + k) * 512])
            .expect("read");
        lba += k;
        n = n % 37 + 3;
    }
    assert!(
        got == want,
        "{}: bytes differ from qemu-img's",
        img.display()
    );
    let mut all = vec![0u8; want.len()];
    d.read_sectors(0, &mut all).expect("read all");
    assert!(all == want);
}

#[test]
fn v2_v3_compressed_zero_and_backed_images_read_as_qemu_reads_them() {
    if !have_qemu_img() {
        return;
    }
    let dir = common::TempDir::new("qcow2-read");
    let raw = dir.join("base.raw");
    pattern_raw(&raw, 6);
    let r = raw.display().to_string();
    let p = |n: &str| dir.join(n).display().to_string();
    // Version 2 (compat=0.10) and 3, with small and default clusters.
    sh(
        "qemu-img",
        &[
            "convert",
            "-O",
            "qcow2",
            "-o",
            "compat=0.10",
            &r,
            &p("v2.qcow2"),
        ],
    );
    sh(
        "qemu-img",
        &[
            "convert",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4096",
            &r,
            &p("v3-4k.qcow2"),
        ],
    );
    // Compressed clusters (raw deflate, as QEMU writes them).
    sh(
        "qemu-img",
        &["convert", "-c", "-O", "qcow2", &r, &p("comp.qcow2")],
    );
    sh(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=2048",
            &r,
            &p("comp-2k.qcow2"),
        ],
    );
    // Zero clusters (v3 zero flag) and an unallocated tail in a sparse image.
    sh(
        "qemu-img",
        &["convert", "-O", "qcow2", &r, &p("zero.qcow2")],
    );
    sh(
        "qemu-io",
        &[
            "-c",
            "write -z 64k 192k",
            "-c",
            "write -P 0x5a 1m 4k",
            &p("zero.qcow2"),
        ],
    );
    sh(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", &p("sparse.qcow2"), "3M"],
    );
    sh(
        "qemu-io",
        &["-c", "write -P 0x11 1m 1k", &p("sparse.qcow2")],
    );
    // Backing chain: raw <- qcow2 (-F raw) <- qcow2 (-F qcow2), each layer
    // writing some clusters, one of them zeroing a backed range; the top
    // is larger than its backing file.
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            &p("mid.qcow2"),
        ],
    );
    sh(
        "qemu-io",
        &[
            "-c",
            "write -P 0xab 128k 8k",
            "-c",
            "write -z 2m 64k",
            &p("mid.qcow2"),
        ],
    );
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            &p("top.qcow2"),
            "8M",
        ],
    );
    sh(
        "qemu-io",
        &[
            "-c",
            "write -P 0xcd 130k 1k",
            "-c",
            "write -P 0xef 7m 64k",
            &p("top.qcow2"),
        ],
    );
    for img in [
        "v2.qcow2",
        "v3-4k.qcow2",
        "comp.qcow2",
        "comp-2k.qcow2",
        "zero.qcow2",
        "sparse.qcow2",
        "mid.qcow2",
        "top.qcow2",
    ] {
        assert_reads_like_qemu(&dir, &dir.join(img));
    }
    // Probed by magic: a qcow2 without format= is qcow2, with -snapshot
    // the guest's writes land in the overlay and the file stays as it was.
    let before = std::fs::read(dir.join("top.qcow2")).expect("read");
    let mut d = open_drive(&spec(&dir.join("top.qcow2"), ",snapshot=on")).expect("snapshot");
    assert!(!d.read_only());
    d.write_sectors(5, &[0x77; 1024]).expect("overlay write");
    let mut b = [0u8; 1024];
    d.read_sectors(5, &mut b).expect("read back");
    assert!(b.iter().all(|&x| x == 0x77));
    d.flush().expect("flush");
    drop(d);
    assert!(std::fs::read(dir.join("top.qcow2")).expect("read") == before);
}

fn open_err(img: &Path, extra: &str) -> String {
    match open_drive(&spec(img, extra)) {
        Ok(_) => panic!("{} opened", img.display()),
        Err(e) => e.to_string(),
    }
}

/// Writes `bytes` at `off` of the file.
fn patch(path: &Path, off: usize, bytes: &[u8]) {
    let mut b = std::fs::read(path).expect("read");
    b[off..off + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, b).expect("write");
}

fn be64_at(path: &Path, off: usize) -> u64 {
    let b = std::fs::read(path).expect("read");
    u64::from_be_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

#[test]
fn corrupt_images_are_refused_in_one_line_naming_the_file() {
    if !have_qemu_img() {
        return;
    }
    let dir = common::TempDir::new("qcow2-bad");
    let raw = dir.join("base.raw");
    pattern_raw(&raw, 1);
    let p = |n: &str| dir.join(n).display().to_string();
    sh(
        "qemu-img",
        &["convert", "-O", "qcow2", &p("base.raw"), &p("good.qcow2")],
    );
    let fresh = |name: &str| {
        let path = dir.join(name);
        std::fs::copy(dir.join("good.qcow2"), &path).expect("copy");
        path
    };
    let check = |path: &Path, want: &str| {
        let e = open_err(path, ",readonly=on");
        assert!(
            e.starts_with(&format!("disk image {}:", path.display())) && e.contains(want),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    };
    // L1 table past the end of the file.
    let f = fresh("l1.qcow2");
    patch(&f, 40, &(1u64 << 40).to_be_bytes());
    check(&f, "L1 table");
    // An L1 entry (an L2 table) past the end.
    let f = fresh("l2.qcow2");
    let l1 = be64_at(&f, 40) as usize;
    patch(&f, l1, &((1u64 << 63) | (1 << 40)).to_be_bytes());
    check(&f, "L1 entry 0");
    // A data cluster past the end.
    let f = fresh("data.qcow2");
    let l2 = (be64_at(&f, l1) & 0x00FF_FFFF_FFFF_FE00) as usize;
    patch(&f, l2, &((1u64 << 63) | (1 << 40)).to_be_bytes());
    check(&f, "outside the file");
    // Bad cluster size, version, truncation, not qcow2 at all.
    let f = fresh("cbits.qcow2");
    patch(&f, 20, &30u32.to_be_bytes());
    check(&f, "cluster_bits 30");
    let f = fresh("ver.qcow2");
    patch(&f, 4, &9u32.to_be_bytes());
    check(&f, "version 9");
    let f = dir.join("short.qcow2");
    std::fs::write(&f, b"QFI\xfb\0\0\0\x03").expect("write");
    check(&f, "shorter than a qcow2 header");
    let e = open_err(&raw, ",format=qcow2,readonly=on");
    assert!(e.contains("not a qcow2 image"), "{e}");
    // A missing backing file, and two images backing each other.
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            &p("miss.qcow2"),
        ],
    );
    std::fs::rename(dir.join("base.raw"), dir.join("gone.raw")).expect("rename");
    check(&dir.join("miss.qcow2"), "backing file");
    std::fs::rename(dir.join("gone.raw"), dir.join("base.raw")).expect("rename");
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "c.qcow2",
            "-F",
            "qcow2",
            "-u",
            &p("a.qcow2"),
            "1M",
        ],
    );
    sh(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "c.qcow2",
            "-F",
            "qcow2",
            "-u",
            &p("b.qcow2"),
            "1M",
        ],
    );
    for (img, to) in [("a.qcow2", "b.qcow2"), ("b.qcow2", "a.qcow2")] {
        let path = dir.join(img);
        let off = be64_at(&path, 8) as usize;
        patch(&path, off, to.as_bytes());
    }
    check(&dir.join("a.qcow2"), "loops");
    // Refcounts dirty after a crash with lazy refcounts: readable, but a
    // writer is refused until `qemu-img check -r all` repaired them; the
    // refusal leaves the file as it was.
    let f = fresh("dirty.qcow2");
    let incompat = be64_at(&f, 72);
    patch(&f, 72, &(incompat | 1).to_be_bytes());
    let before = std::fs::read(&f).expect("read");
    let e = open_err(&f, "");
    assert!(
        e.starts_with(&format!("disk image {}:", f.display()))
            && e.contains("qemu-img check -r all"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    assert!(open_drive(&spec(&f, ",readonly=on")).is_ok());
    // A refcount table past the end of the file, or an entry of it.
    let f = fresh("rt.qcow2");
    patch(&f, 48, &(1u64 << 40).to_be_bytes());
    let e = open_err(&f, "");
    assert!(e.contains("refcount table at"), "{e}");
    let f = fresh("rb.qcow2");
    let rt = be64_at(&f, 48) as usize;
    patch(&f, rt, &(1u64 << 40).to_be_bytes());
    let e = open_err(&f, "");
    assert!(e.contains("refcount table entry 0"), "{e}");
    assert!(std::fs::read(dir.join("dirty.qcow2")).expect("read") == before);
}

/// Random damage to the metadata of small images: opening and reading
/// never panic (errors are fine).
#[test]
fn random_damage_never_panics() {
    if !have_qemu_img() {
        return;
    }
    let dir = common::TempDir::new("qcow2-fuzz");
    pattern_raw(&dir.join("base.raw"), 1);
    let p = |n: &str| dir.join(n).display().to_string();
    sh(
        "qemu-img",
        &[
            "convert",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4096",
            &p("base.raw"),
            &p("a.qcow2"),
        ],
    );
    sh(
        "qemu-img",
        &[
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=4096",
            &p("base.raw"),
            &p("c.qcow2"),
        ],
    );
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut opened, mut refused, mut written) = (0, 0, 0);
    for seed in ["a.qcow2", "c.qcow2"] {
        let orig = std::fs::read(dir.join(seed)).expect("read");
        // The metadata: header, L1, the first L2 tables, refcounts.
        let meta = orig.len().min(6 * 4096);
        for round in 0..300 {
            let mut b = orig.clone();
            for _ in 0..1 + rnd() % 4 {
                let at = (rnd() as usize) % meta;
                b[at] = rnd() as u8;
            }
            if round % 7 == 0 {
                b.truncate((rnd() as usize) % orig.len());
            }
            let f = dir.join("fuzz.qcow2");
            std::fs::write(&f, &b).expect("write");
            match open_drive(&spec(&f, ",format=qcow2,readonly=on")) {
                Ok(mut d) => {
                    opened += 1;
                    let n = d.sector_count().min(2048);
                    let mut buf = vec![0u8; 64 * 512];
                    let mut lba = 0;
                    while lba + 64 <= n {
                        let _ = d.read_sectors(lba, &mut buf);
                        lba += 64;
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert!(!e.to_string().contains('\n'), "{e}");
                }
            }
            // Opened for writing, the same damage: writes fail or
            // succeed, never panic (every other round: they fsync).
            if round % 2 == 1 {
                continue;
            }
            match open_drive(&spec(&f, ",format=qcow2")) {
                Ok(mut d) => {
                    written += 1;
                    let n = d.sector_count().min(2048);
                    let buf = vec![0x5Au8; 24 * 512];
                    let mut lba = round as u64 % 7;
                    while lba + 24 <= n {
                        let _ = d.write_sectors(lba, &buf);
                        let _ = d.read_sectors(lba, &mut [0u8; 512]);
                        lba += 331;
                    }
                    let _ = d.flush();
                }
                Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
            }
        }
    }
    println!(
        "random damage: {opened} opened and read, {refused} refused, {written} opened and written"
    );
    assert!(opened > 0 && refused > 0 && written > 0);
}

/// `qemu-img check`: its exit status (0 clean, 2 errors, 3 leaks only) and
/// what it printed.
fn qemu_check(img: &Path) -> (i32, String) {
    let o = Command::new("qemu-img")
        .arg("check")
        .arg(img)
        .output()
        .expect("qemu-img check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// What QEMU reads from `img` (`extra`: e.g. `-l snapshot.name=s1`).
fn qemu_reads(dir: &common::TempDir, img: &Path, extra: &[&str]) -> Vec<u8> {
    let out = dir.join("qemu-reads.raw");
    let o = Command::new("qemu-img")
        .arg("convert")
        .args(extra)
        .args(["-O", "raw"])
        .arg(img)
        .arg(&out)
        .output()
        .expect("qemu-img convert");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = std::fs::read(&out).expect("read");
    let _ = std::fs::remove_file(&out);
    b
}

/// xorshift: the same sequence every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `ops` writes through vx86's backend at random sector offsets, 1 to
/// `max` sectors each (every 8th a run of whole 64 KiB-aligned clusters),
/// mirrored in `shadow`; reads back a window after each write.
fn random_writes(img: &Path, shadow: &mut [u8], rng: &mut Rng, ops: usize, max: u64) {
    let mut d = open_drive(&spec(img, "")).expect("open for writing");
    assert!(!d.read_only());
    let sectors = shadow.len() as u64 / 512;
    for op in 0..ops {
        let (lba, n) = if op % 8 == 7 {
            let n = 128 * (1 + rng.next() % 3);
            ((rng.next() % (sectors / 128 - 3)) * 128, n)
        } else {
            let n = 1 + rng.next() % max;
            (rng.next() % (sectors - n), n)
        };
        let v = rng.next() as u8;
        let data: Vec<u8> = (0..n as usize * 512)
            .map(|i| v.wrapping_add((i / 7) as u8))
            .collect();
        d.write_sectors(lba, &data).expect("write");
        let at = lba as usize * 512;
        shadow[at..at + data.len()].copy_from_slice(&data);
        let w = lba.saturating_sub(3).min(sectors - 16);
        let mut back = vec![0u8; 16 * 512];
        d.read_sectors(w, &mut back).expect("read back");
        let s = w as usize * 512;
        assert!(
            back == shadow[s..s + back.len()],
            "op {op}: read back differs"
        );
    }
    d.flush().expect("flush");
}

#[test]
fn vx86_writes_pass_qemu_img_check_and_qemu_reads_them() {
    if !have_qemu_img() {
        return;
    }
    let dir = common::TempDir::new("qcow2-write");
    pattern_raw(&dir.join("base.raw"), 6);
    let p = |n: &str| dir.join(n).display().to_string();
    let img = |args: &[&str]| sh("qemu-img", args);
    img(&["create", "-q", "-f", "qcow2", &p("v3.qcow2"), "8M"]);
    img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "compat=0.10",
        &p("v2.qcow2"),
        "8M",
    ]);
    // Backed by the raw file, and bigger than it.
    img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        &p("backed.qcow2"),
        "8M",
    ]);
    // 512-byte clusters and 64-bit counts: the refcount table outgrows its
    // cluster and moves, repeatedly.
    img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=512,refcount_bits=64",
        &p("small.qcow2"),
        "8M",
    ]);
    // 1-bit counts, v2-style 4 KiB clusters with a backing file.
    img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096,refcount_bits=1",
        "-b",
        "base.raw",
        "-F",
        "raw",
        &p("bit.qcow2"),
    ]);
    // Compressed clusters rewritten as normal ones.
    img(&[
        "convert",
        "-c",
        "-O",
        "qcow2",
        &p("base.raw"),
        &p("comp.qcow2"),
    ]);
    // Zero clusters, allocated (write -z) and not (-u: unmapped).
    img(&["convert", "-O", "qcow2", &p("base.raw"), &p("zero.qcow2")]);
    sh(
        "qemu-io",
        &[
            "-c",
            "write -z 64k 256k",
            "-c",
            "write -z -u 1m 512k",
            &p("zero.qcow2"),
        ],
    );
    // lazy_refcounts=on: vx86 keeps them exact all the same.
    img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "lazy_refcounts=on",
        &p("lazy.qcow2"),
        "8M",
    ]);
    // An internal snapshot: every cluster shared, writes must copy.
    img(&["convert", "-O", "qcow2", &p("base.raw"), &p("snap.qcow2")]);
    img(&["snapshot", "-c", "s1", &p("snap.qcow2")]);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for name in [
        "v3.qcow2",
        "v2.qcow2",
        "backed.qcow2",
        "small.qcow2",
        "bit.qcow2",
        "comp.qcow2",
        "zero.qcow2",
        "lazy.qcow2",
        "snap.qcow2",
    ] {
        let path = dir.join(name);
        let before = qemu_reads(&dir, &path, &[]);
        let mut shadow = before.clone();
        // Two sessions: the second reopens what the first wrote.
        for session in 0..2 {
            random_writes(&path, &mut shadow, &mut rng, 60, 150);
            let (code, out) = qemu_check(&path);
            assert_eq!(code, 0, "{name} session {session}: {out}");
            assert!(out.contains("No errors were found"), "{name}: {out}");
            assert!(
                qemu_reads(&dir, &path, &[]) == shadow,
                "{name} session {session}: QEMU reads other bytes than vx86 wrote"
            );
        }
        assert_reads_like_qemu(&dir, &path);
        // QEMU goes on writing what vx86 wrote.
        sh(
            "qemu-io",
            &[
                "-c",
                "write -P 0x3c 4000k 200k",
                &path.display().to_string(),
            ],
        );
        shadow[4000 << 10..4200 << 10].fill(0x3c);
        let (code, out) = qemu_check(&path);
        assert_eq!(code, 0, "{name} after qemu-io: {out}");
        assert_reads_like_qemu(&dir, &path);
        assert!(
            qemu_reads(&dir, &path, &[]) == shadow,
            "{name} after qemu-io"
        );
        if name == "snap.qcow2" {
            let s1 = qemu_reads(&dir, &path, &["-l", "snapshot.name=s1"]);
            assert!(s1 == before, "the snapshot's bytes changed");
        }
    }
}

/// The words test-roms/diskwrite.asm writes at LBA `l` in write `n` of run `r`.
fn rom_sector(r: u16, n: u16, l: u16) -> [u8; 512] {
    let mut s = [0u8; 512];
    for i in 0..256u16 {
        let w = match i {
            0 => 0x5856,
            1 => r,
            2 => n,
            3 => l,
            _ => (i.wrapping_mul(0x9E37) ^ n).wrapping_add(l),
        };
        s[2 * i as usize..2 * i as usize + 2].copy_from_slice(&w.to_le_bytes());
    }
    s
}

/// The ROM's slot (4 KiB unit) of each write `n` = 1.. of run `r`.
fn rom_slots(r: u16, count: usize) -> Vec<u16> {
    let mut x = r;
    let mut v = vec![0];
    for _ in 0..count {
        x = x.wrapping_mul(0x6255).wrapping_add(0x3619);
        let s = (x >> 4) & 0x0FFF;
        v.push(if s == 0 { 1 } else { s });
    }
    v
}

/// Checks a disk after run `r` was killed: `flushed` is the last write the
/// ROM saw flushed. Every 4 KiB slot holds what the last flushed write to
/// it wrote (or what it held before, if none did), or, sector by sector,
/// a later write to that slot: never anything else.
fn check_killed_disk(before: &[u8], after: &[u8], r: u16, flushed: u16, what: &str) -> usize {
    assert_eq!(before.len(), after.len(), "{what}");
    let slots = rom_slots(r, 65535);
    let mut last: Vec<Option<u16>> = vec![None; 4096];
    for (n, &s) in slots.iter().enumerate().take(flushed as usize + 1).skip(1) {
        last[s as usize] = Some(n as u16);
    }
    let mut newer = 0;
    for lba in 0..(after.len() / 512) {
        let got = &after[lba * 512..lba * 512 + 512];
        let slot = lba / 8;
        if slot == 0 || slot >= 4096 {
            if lba > 0 {
                assert!(
                    got == &before[lba * 512..lba * 512 + 512],
                    "{what}: LBA {lba} changed"
                );
            }
            continue;
        }
        let want = last[slot].map(|n| rom_sector(r, n, lba as u16));
        match want {
            Some(w) if got == w => continue,
            None if got == &before[lba * 512..lba * 512 + 512] => continue,
            _ => {}
        }
        // Otherwise only a write after the last flush may be there.
        let n = u16::from_le_bytes([got[4], got[5]]);
        let ok = n > flushed
            && slots.get(n as usize) == Some(&(slot as u16))
            && got == rom_sector(r, n, lba as u16);
        assert!(
            ok,
            "{what}: LBA {lba} (slot {slot}) holds neither the flushed write {want_n:?} nor a later one (word 2 = {n}, flushed up to {flushed})",
            want_n = last[slot]
        );
        newer += 1;
    }
    newer
}

/// Kills vx86 with SIGKILL at a random point while test-roms/diskwrite.bin
/// writes 4 KiB at pseudo-random places and flushes every 4th write; the
/// run id goes in LBA 0. Returns the last write the ROM reported flushed.
fn kill_during_writes(dir: &common::TempDir, drive: &str, delay_ms: u64) -> u16 {
    let rom = format!("{}/test-roms/diskwrite.bin", env!("CARGO_MANIFEST_DIR"));
    let log = dir.join("debugcon.log");
    let _ = std::fs::remove_file(&log);
    let mut child = common::vx86()
        .args([
            "-M", "isapc", "-display", "none", "-serial", "none", "-bios", &rom,
        ])
        .args(["-drive", drive])
        .arg("-debugcon")
        .arg(format!("file:{}", log.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vx86");
    let start = std::time::Instant::now();
    // Running: the first flush reported. Then a random while longer.
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains('F') || start.elapsed().as_secs() > 60 {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("vx86 exited early ({st}): {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    child.kill().expect("kill -9");
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("debugcon log");
    assert!(
        !text.lines().any(|l| l.starts_with('E')),
        "the ROM saw a disk error: {text}"
    );
    // The last whole line: a line cut by the kill does not count.
    text.split_inclusive('\n')
        .rev()
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.trim().strip_prefix('F'))
        .filter_map(|n| u16::from_str_radix(n, 16).ok())
        .next()
        .expect("no flush reported")
}

/// Data safety (issue 13): 28 kills of vx86 at random points during guest
/// writes, on a raw image and on four qcow2 images (v3 backed by a raw
/// file, v2 with 4 KiB clusters, 512-byte clusters whose refcount table
/// keeps growing, 1-bit refcounts), each image reused run after run. After
/// each kill: every write the guest had flushed is there, nothing but
/// later writes changed, `qemu-img check` finds no errors (leaked clusters
/// at most, reported as leaks). Under -snapshot the file never changes.
#[test]
fn kill_9_during_guest_writes_never_corrupts() {
    let dir = common::TempDir::new("qcow2-kill");
    let have_qemu = have_qemu_img();
    let base: Vec<u8> = (0..16usize << 20)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8 | 1)
        .collect();
    std::fs::write(dir.join("disk.raw"), &base).expect("write raw");
    let p = |n: &str| dir.join(n).display().to_string();
    let mut images = vec![("disk.raw", "raw")];
    if have_qemu {
        std::fs::write(dir.join("base.raw"), &base).expect("write base");
        sh(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                "base.raw",
                "-F",
                "raw",
                &p("v3.qcow2"),
            ],
        );
        sh(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                "compat=0.10,cluster_size=4096",
                &p("v2.qcow2"),
                "16M",
            ],
        );
        sh(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                "cluster_size=512,refcount_bits=64",
                &p("small.qcow2"),
                "16M",
            ],
        );
        sh(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                "refcount_bits=1",
                "-b",
                "base.raw",
                "-F",
                "raw",
                &p("bit.qcow2"),
            ],
        );
        images.extend([
            ("v3.qcow2", "qcow2"),
            ("v2.qcow2", "qcow2"),
            ("small.qcow2", "qcow2"),
            ("bit.qcow2", "qcow2"),
        ]);
    }
    let read_disk = |name: &str| -> Vec<u8> {
        if name.ends_with(".raw") {
            std::fs::read(dir.join(name)).expect("read raw")
        } else {
            qemu_reads(&dir, &dir.join(name), &[])
        }
    };
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let runs_per_image = if have_qemu { 6 } else { 20 };
    let (mut run_id, mut leaky, mut later) = (0u16, 0, 0);
    let start = std::time::Instant::now();
    for (name, fmt) in &images {
        for _ in 0..runs_per_image {
            run_id += 1;
            // The run id in LBA 0, written as a guest would.
            {
                let mut d = open_drive(&spec(&dir.join(name), "")).expect("open");
                let mut s = [0u8; 512];
                s[..2].copy_from_slice(&run_id.to_le_bytes());
                d.write_sectors(0, &s).expect("write LBA 0");
                d.flush().expect("flush");
            }
            let before = read_disk(name);
            let drive = format!("file={},format={fmt},if=ide,index=0", p(name));
            let delay = rng.next() % 400;
            let flushed = kill_during_writes(&dir, &drive, delay);
            if fmt == &"qcow2" {
                let (code, out) = qemu_check(&dir.join(name));
                assert!(
                    code == 0 || (code == 3 && out.contains("leaked clusters") && !out.contains("ERROR")),
                    "{name} run {run_id} (killed {delay} ms after the first flush): qemu-img check exit {code}: {out}"
                );
                leaky += usize::from(code == 3);
            }
            let after = read_disk(name);
            later += check_killed_disk(
                &before,
                &after,
                run_id,
                flushed,
                &format!("{name} run {run_id}"),
            );
        }
    }
    // The leaks repair as leaks do: then the images are clean.
    for (name, fmt) in &images {
        if fmt == &"qcow2" {
            let o = Command::new("qemu-img")
                .args(["check", "-q", "-r", "leaks"])
                .arg(dir.join(name))
                .output()
                .expect("qemu-img check -r leaks");
            assert!(o.status.success(), "{name}: {o:?}");
            let (code, out) = qemu_check(&dir.join(name));
            assert_eq!(code, 0, "{name} after -r leaks: {out}");
        }
    }
    // -snapshot: the guest writes and flushes into memory; the file stays.
    if have_qemu {
        let before = std::fs::read(dir.join("v3.qcow2")).expect("read");
        let drive = format!("file={},if=ide,index=0,snapshot=on", p("v3.qcow2"));
        kill_during_writes(&dir, &drive, 100);
        assert!(std::fs::read(dir.join("v3.qcow2")).expect("read") == before);
    }
    println!(
        "{run_id} kills in {:.1} s: {leaky} qcow2 images with leaked clusters only, {later} sectors of unflushed later writes seen",
        start.elapsed().as_secs_f64()
    );
}
