//! virtio-blk-pci with Debian's `virtio_blk` driver (issue 13): the
//! container guest, booted with `vx86.blk=1`, reads a known pattern from
//! `/dev/vda`, copies part of it elsewhere and writes a marker, both with
//! fsync (a VIRTIO_BLK_T_FLUSH); the host checks the image's bytes. Under
//! `-snapshot` the same writes leave the image (a compressed qcow2 when
//! qemu-img is installed) untouched; a qcow2 over a raw backing file is
//! written and passes `qemu-img check`. The guests come
//! from `scripts/build-guest.sh`; without them these tests skip.

mod common;

use common::guest::{assert_in_order, initramfs_has, need, run_guest};
use std::time::Duration;

/// A guest run takes ~25 s in a release build; debug builds are slower.
const LIMIT: Duration = Duration::from_secs(20 * 60);
const IMAGE_BYTES: usize = 8 << 20;
const MIB: usize = 1 << 20;

/// The disk: sector `n` holds `n` and a running pattern, so a misplaced or
/// shifted sector changes the guest's checksum.
fn pattern() -> Vec<u8> {
    (0..IMAGE_BYTES)
        .map(|i| (i.wrapping_mul(7) ^ (i / 512)) as u8)
        .collect()
}

fn guest_args(k: &str, i: &str, disk: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        "pc",
        "-m",
        "256M",
        "-kernel",
        k,
        "-initrd",
        i,
        "-append",
        "console=ttyS0 panic=-1 vx86.blk=1",
        "-nographic",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(disk.iter().map(|s| s.to_string()));
    a
}

#[test]
fn guest_reads_the_pattern_and_its_flushed_writes_reach_the_image() {
    let Some(dir) = need(&["vmlinuz", "initramfs-ctr.cpio.gz"]) else {
        return;
    };
    if !initramfs_has(&dir.join("initramfs-ctr.cpio.gz"), "bin/vx86-blk") {
        return;
    }
    let tmp = common::TempDir::new("virtio-blk-rw");
    let img = tmp.join("disk.img");
    let orig = pattern();
    std::fs::write(&img, &orig).expect("write image");
    let drive = format!(
        "file={},format=raw,if=virtio,serial=vx86-blk-test",
        img.display()
    );
    let args = guest_args(
        &dir.join("vmlinuz").display().to_string(),
        &dir.join("initramfs-ctr.cpio.gz").display().to_string(),
        &["-drive", &drive],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, log) = run_guest(&args, LIMIT);
    let want_read = format!("BLK-READ sha256={}", common::sha256(&orig[..MIB]));
    assert_in_order(
        &log,
        &[
            &format!("BLK-SIZE {}", IMAGE_BYTES / 512),
            "BLK-SERIAL vx86-blk-test",
            &want_read,
            "BLK-WRITE-DONE",
        ],
    );
    assert!(!log.contains("BLK-WRITE-FAILED"), "{log}");
    assert_eq!(status, Some(0), "guest reboot -> exit 0 with -no-reboot");
    let now = std::fs::read(&img).expect("read image");
    assert_guest_wrote(&now, &orig);
}

/// The disk after `vx86-blk`: the first 64 KiB copied to 1 MiB, the marker
/// line after it, nothing else changed.
fn assert_guest_wrote(now: &[u8], orig: &[u8]) {
    assert_eq!(now.len(), orig.len());
    assert_eq!(&now[MIB..MIB + 65536], &orig[..65536], "copied 64 KiB");
    let marker = b"VX86-BLK-WRITE-OK\n";
    assert_eq!(&now[MIB + 65536..MIB + 65536 + marker.len()], marker);
    // Nothing else changed.
    assert_eq!(&now[..MIB], &orig[..MIB]);
    assert_eq!(
        &now[MIB + 65536 + 512..],
        &orig[MIB + 65536 + 512..],
        "bytes after the marker sector"
    );
}

/// A qcow2 made by `qemu-img create -b disk.raw -F raw` (so every guest
/// write copies the rest of its 64 KiB cluster from the backing file): the
/// guest reads the backing pattern through it and writes with fsync; then
/// `qemu-img check` finds no errors or leaks, `qemu-img convert` reads the
/// guest's bytes over the backing file's, and the backing file is untouched.
#[test]
fn guest_writes_a_backed_qcow2_that_qemu_img_checks_clean() {
    let Some(dir) = need(&["vmlinuz", "initramfs-ctr.cpio.gz"]) else {
        return;
    };
    if !initramfs_has(&dir.join("initramfs-ctr.cpio.gz"), "bin/vx86-blk") {
        return;
    }
    if !common::have_program("qemu-img", "--version") {
        println!("SKIPPED: qemu-img not installed (apt-get install qemu-utils)");
        return;
    }
    let tmp = common::TempDir::new("virtio-blk-qcow2");
    let orig = pattern();
    std::fs::write(tmp.join("disk.raw"), &orig).expect("write image");
    let qcow = tmp.join("disk.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-b", "disk.raw", "-F", "raw"])
        .arg(&qcow)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "qemu-img create");
    let drive = format!("file={},if=virtio", qcow.display());
    let args = guest_args(
        &dir.join("vmlinuz").display().to_string(),
        &dir.join("initramfs-ctr.cpio.gz").display().to_string(),
        &["-drive", &drive],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, log) = run_guest(&args, LIMIT);
    let want_read = format!("BLK-READ sha256={}", common::sha256(&orig[..MIB]));
    assert_in_order(&log, &[&want_read, "BLK-WRITE-DONE"]);
    assert!(!log.contains("BLK-WRITE-FAILED"), "{log}");
    assert_eq!(status, Some(0));
    let check = std::process::Command::new("qemu-img")
        .arg("check")
        .arg(&qcow)
        .output()
        .expect("qemu-img check");
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let out = tmp.join("now.raw");
    let conv = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&qcow)
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(conv, "qemu-img convert");
    assert_guest_wrote(&std::fs::read(&out).expect("read"), &orig);
    assert!(std::fs::read(tmp.join("disk.raw")).expect("read") == orig);
}

/// `-snapshot`, the `-drive if=none` + `-device` spelling, and (when
/// qemu-img is installed) a compressed qcow2 found by probing: the guest
/// reads the pattern, its writes go to memory, the file keeps its bytes.
#[test]
fn snapshot_keeps_the_image_untouched_with_the_device_spelling() {
    let Some(dir) = need(&["vmlinuz", "initramfs-ctr.cpio.gz"]) else {
        return;
    };
    if !initramfs_has(&dir.join("initramfs-ctr.cpio.gz"), "bin/vx86-blk") {
        return;
    }
    let tmp = common::TempDir::new("virtio-blk-snap");
    let raw = tmp.join("disk.img");
    let orig = pattern();
    std::fs::write(&raw, &orig).expect("write image");
    let qcow = tmp.join("disk.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["convert", "-q", "-c", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow)
        .status()
        .is_ok_and(|s| s.success());
    let (img, fmt) = if made {
        (qcow, "")
    } else {
        println!("SKIPPED part: qemu-img not installed, the raw image stands in for a qcow2");
        (raw, ",format=raw")
    };
    let before = std::fs::read(&img).expect("read image");
    let drive = format!("file={}{fmt},if=none,id=d0", img.display());
    let args = guest_args(
        &dir.join("vmlinuz").display().to_string(),
        &dir.join("initramfs-ctr.cpio.gz").display().to_string(),
        &[
            "-drive",
            &drive,
            "-device",
            "virtio-blk-pci,drive=d0",
            "-snapshot",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, log) = run_guest(&args, LIMIT);
    let want_read = format!("BLK-READ sha256={}", common::sha256(&orig[..MIB]));
    assert_in_order(&log, &[&want_read, "BLK-WRITE-DONE"]);
    assert!(!log.contains("BLK-WRITE-FAILED"), "{log}");
    assert_eq!(status, Some(0));
    assert!(
        std::fs::read(&img).expect("read image") == before,
        "-snapshot: the image changed"
    );
}

/// A virtio disk on the ISA PC, or a -device naming no drive: one line, exit 1.
#[test]
fn virtio_disk_errors_are_one_line() {
    let tmp = common::TempDir::new("virtio-blk-err");
    let img = tmp.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 16]).expect("write image");
    let drive = format!("file={},format=raw,if=virtio", img.display());
    let none = format!("file={},format=raw,if=none,id=x", img.display());
    for (args, want) in [
        (
            vec!["-M", "isapc", "-drive", drive.as_str()],
            "a virtio disk (virtio-blk-pci) needs a PCI bus; use -M pc",
        ),
        (
            vec!["-M", "pc", "-device", "virtio-blk-pci,drive=nope"],
            "drive=nope: no -drive with id=nope",
        ),
        (
            vec![
                "-M",
                "pc",
                "-drive",
                none.as_str(),
                "-device",
                "virtio-blk-pci,drive=x,speed=9",
            ],
            "speed=9: unknown option",
        ),
    ] {
        let out = common::vx86()
            .args(&args)
            .args(["-display", "none", "--max-insns", "1000"])
            .output()
            .expect("run vx86");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
