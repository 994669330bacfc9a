//! The ATAPI CD-ROM drive and El Torito boot (issue 13, items 1 and 2).
//!
//! - CDs made from Debian packages by `scripts/fetch-firmware-payloads.sh`
//!   (`isolinux.iso`: isolinux; `grub.iso`: GRUB 2's El Torito image, as
//!   grub-mkrescue makes it), both holding the container guest, boot from
//!   `-cdrom` with vx86's BIOS (and with SeaBIOS) into Linux.
//! - The Debian guest (direct kernel boot, `vx86.cdrom=1`) finds `/dev/sr0`
//!   through `pata_legacy` + `sr_mod`, mounts a data ISO built here with
//!   xorriso and reports each file's SHA-256. (Reads past the last block
//!   never reach the drive from Linux, whose block layer stops at the
//!   capacity; the drive's answer to them, ILLEGAL REQUEST / LBA OUT OF
//!   RANGE, is checked by the unit tests in src/devices/ata.rs and atapi.rs.)
//! - A truncated ISO is refused in one line naming it.
//!
//! Guest material comes from `scripts/build-guest.sh` and
//! `scripts/fetch-firmware-payloads.sh`; without it (or without xorriso) the
//! tests print `SKIPPED:` and pass.

mod common;

use common::guest::{assert_in_order, initramfs_has, need, run_guest};
use common::{have_program, payload, sha256, TempDir};
use std::time::Duration;

/// A guest boot: ~1-2 min in a release build, several in a debug one.
const LIMIT: Duration = Duration::from_secs(20 * 60);

fn boot_cd(iso: &std::path::Path, bios: Option<&std::path::Path>) -> (Option<i32>, String) {
    let iso = iso.display().to_string();
    let mut args = vec![
        "-m",
        "512M",
        "-cdrom",
        &iso,
        "-boot",
        "d",
        "-nographic",
        "-no-reboot",
    ];
    let bios_s;
    if let Some(b) = bios {
        bios_s = b.display().to_string();
        args.extend(["-bios", &bios_s]);
    }
    run_guest(&args, LIMIT)
}

/// isolinux (Debian's isolinux.bin with the boot info table) loaded by vx86's
/// El Torito boot, reading its config, kernel and initramfs through INT 13h
/// AH=42h on drive E0h, boots the container guest to CONTAINER-OK.
#[test]
fn isolinux_cd_boots_the_guest_with_vx86_bios() {
    let Some(iso) = payload("isolinux.iso") else {
        return;
    };
    let (code, log) = boot_cd(&iso, None);
    assert_in_order(
        &log,
        &[
            "Booting from DVD/CD...",
            "ISOLINUX 6.04",
            "Loading /vmlinuz... ok",
            "Loading /initrd.img...ok",
            "GUEST-BOOT-OK",
            "CONTAINER-OK",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
}

/// GRUB 2's El Torito image (cdboot.img + core.img with biosdisk and
/// iso9660): it asks for the boot drive's El Torito status (AH=4Bh), reads
/// the ISO 9660 file system in 2048-byte sectors and boots the guest.
#[test]
fn grub_cd_boots_the_guest_with_vx86_bios() {
    let Some(iso) = payload("grub.iso") else {
        return;
    };
    let (code, log) = boot_cd(&iso, None);
    assert_in_order(
        &log,
        &[
            "Booting from DVD/CD...",
            "vx86-grub-iso-marker: grub.cfg read from hd96",
            "GUEST-BOOT-OK",
            "CONTAINER-OK",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
}

/// SeaBIOS (Debian's) finds the ATAPI drive on its own and boots the same CD.
#[test]
fn isolinux_cd_boots_the_guest_with_seabios() {
    let (Some(iso), Some(bios)) = (payload("isolinux.iso"), payload("seabios.bin")) else {
        return;
    };
    let (code, log) = boot_cd(&iso, Some(&bios));
    assert_in_order(
        &log,
        &[
            "ISOLINUX 6.04",
            "Loading /vmlinuz... ok",
            "GUEST-BOOT-OK",
            "CONTAINER-OK",
        ],
    );
    assert_eq!(code, Some(0), "{log}");
}

/// Files for the data CD: sizes that end mid-block and span many blocks.
fn data_files() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..3_000_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vec![
        ("BIG.BIN", big),
        ("HELLO.TXT", b"hello from the vx86 CD-ROM\n".to_vec()),
    ]
}

/// The Debian guest on `-M isapc` (and `-M pc`) finds the CD as /dev/sr0
/// (pata_legacy at 170h, sr_mod), mounts the iso9660 file system, and every
/// file's checksum matches.
#[test]
fn debian_guest_mounts_a_data_cd_and_checks_its_files() {
    let Some(dir) = need(&["vmlinuz", "initramfs-ctr.cpio.gz"]) else {
        return;
    };
    if !initramfs_has(&dir.join("initramfs-ctr.cpio.gz"), "bin/vx86-cdrom") {
        eprintln!(
            "SKIPPED: the guest initramfs predates vx86.cdrom=1; rerun scripts/build-guest.sh"
        );
        return;
    }
    if !have_program("xorriso", "-version") {
        eprintln!("SKIPPED: xorriso not found (package xorriso)");
        return;
    }
    let tmp = TempDir::new("cdrom-data");
    let root = tmp.join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let files = data_files();
    for (name, data) in &files {
        std::fs::write(root.join(name), data).expect("write file");
    }
    let iso = tmp.join("data.iso");
    let st = std::process::Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "VX86DATA", "-o"])
        .arg(&iso)
        .arg(&root)
        .status()
        .expect("run xorriso");
    assert!(st.success(), "xorriso failed");
    let blocks = std::fs::metadata(&iso).expect("iso").len() / 2048;
    let k = dir.join("vmlinuz").display().to_string();
    let i = dir.join("initramfs-ctr.cpio.gz").display().to_string();
    let iso_s = iso.display().to_string();
    for machine in ["isapc", "pc"] {
        let (code, log) = run_guest(
            &[
                "-M",
                machine,
                "-m",
                "256M",
                "-kernel",
                &k,
                "-initrd",
                &i,
                "-append",
                "console=ttyS0 panic=-1 vx86.cdrom=1",
                "-cdrom",
                &iso_s,
                "-nographic",
                "-no-reboot",
            ],
            LIMIT,
        );
        let mut markers = vec![format!("CDROM-DEV sr0 {}", blocks * 4)];
        for (name, data) in &files {
            markers.push(format!("CDROM-SUM {} sha256={}", name, sha256(data)));
        }
        markers.push("CDROM-OK".into());
        let m: Vec<&str> = markers.iter().map(String::as_str).collect();
        assert_in_order(&log, &m);
        assert_eq!(code, Some(0), "-M {machine}: {log}");
    }
}

/// A truncated ISO (size not whole 2048-byte blocks, or fewer blocks than
/// its volume descriptor claims) is refused in one line naming the file,
/// exit status 1, before the machine runs.
#[test]
fn truncated_isos_are_refused_in_one_line() {
    let tmp = TempDir::new("cdrom-bad");
    let mut iso = vec![0u8; 20 * 2048];
    iso[16 * 2048] = 1;
    iso[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"CD001");
    iso[16 * 2048 + 80..16 * 2048 + 84].copy_from_slice(&40u32.to_le_bytes());
    iso[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&2048u16.to_le_bytes());
    let short = tmp.join("short.iso");
    std::fs::write(&short, &iso).expect("write");
    let odd = tmp.join("odd.iso");
    std::fs::write(&odd, &iso[..iso.len() - 100]).expect("write");
    for (path, what) in [
        (
            &short,
            "its ISO 9660 volume claims 40 blocks of 2048 bytes but the file has 20",
        ),
        (&odd, "is not a multiple of the 2048-byte CD sector size"),
    ] {
        let o = common::vx86()
            .args(["-display", "none", "-serial", "none", "-cdrom"])
            .arg(path)
            .output()
            .expect("run vx86");
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(o.status.code(), Some(1), "{lines:?}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("vx86: CD image {}: ", path.display())),
            "{lines:?}"
        );
        assert!(lines[0].contains(what), "{lines:?}");
    }
}
