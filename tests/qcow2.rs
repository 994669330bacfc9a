//! qcow2 images made by QEMU's own `qemu-img`/`qemu-io` read back through
//! vx86's backend byte for byte as `qemu-img convert -O raw` reads them:
//! versions 2 and 3, compressed clusters, zero clusters, backing chains with
//! `backing_fmt`. Corrupt images (pointers past the end, a backing loop, a
//! missing backing file, random damage) are refused in one line or fail a
//! read, never panic. Tests that need qemu-img skip with a printed reason
//! when it is absent.

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
    // A writable open without -snapshot is refused before anything is read.
    let before = std::fs::read(dir.join("good.qcow2")).expect("read");
    let e = open_err(&dir.join("good.qcow2"), "");
    assert!(
        e.contains("qcow2 write is not supported yet; use -snapshot or readonly=on"),
        "{e}"
    );
    assert!(std::fs::read(dir.join("good.qcow2")).expect("read") == before);
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
    let (mut opened, mut refused) = (0, 0);
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
        }
    }
    println!("random damage: {opened} opened and read, {refused} refused");
    assert!(opened > 0 && refused > 0);
}
