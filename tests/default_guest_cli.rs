//! `vx86` with nothing to boot named runs the built-in default guest: the
//! BIOS boots the embedded boot disk, whose banner and clock reach stdout
//! (COM1) and whose screen `--screenshot-on-exit` renders, compared pixel
//! for pixel with a reviewed image.

mod common;

use common::read_png;

#[test]
fn no_arguments_boot_the_builtin_disk() {
    let png = std::env::temp_dir().join(format!("vx86-default-{}.png", std::process::id()));
    let out = common::vx86()
        .args([
            "-display",
            "none",
            "--max-insns",
            "1500000000",
            "--screenshot-on-exit",
        ])
        .arg(&png)
        .output()
        .expect("run vx86");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(" vx86 boot disk  -  the built-in default guest\r\n"),
        "{stdout:?}"
    );
    assert!(stdout.contains("Booted from drive 80h"), "{stdout:?}");
    assert!(stdout.contains("uptime 1 s  RTC 00:00:01"), "{stdout:?}");
    // The screen after 1.5 G instructions is deterministic (virtual time): it
    // must match, pixel for pixel, the reviewed image in tests/data (80x25
    // text in 9x16 cells: the green banner row, the boot report, the PIT
    // clock at "uptime 1 s").
    let (w, h, got) = read_png(&png);
    let want_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/default-guest-1.5G.png"
    );
    let (ew, eh, want) = read_png(std::path::Path::new(want_path));
    assert_eq!((w, h), (ew, eh), "screenshot size");
    let differ: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    assert!(
        differ.is_empty(),
        "{} pixels differ from {want_path}, first at ({}, {}): got {:06x} want {:06x}; the screenshot is at {}",
        differ.len(),
        differ[0] % w,
        differ[0] / w,
        got[differ[0]],
        want[differ[0]],
        png.display()
    );
    let _ = std::fs::remove_file(&png);
}

#[test]
fn a_bios_without_a_disk_gets_no_builtin_disk() {
    // -bios names the firmware: the built-in disk is not added, so vx86's own
    // BIOS shows its no-disk screen.
    let bios = concat!(env!("CARGO_MANIFEST_DIR"), "/firmware/bios.bin");
    let out = common::vx86()
        .args([
            "-bios",
            bios,
            "-display",
            "none",
            "--max-insns",
            "500000000",
        ])
        .output()
        .expect("run vx86");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("No bootable disk found."), "{stdout:?}");
    assert!(!stdout.contains("vx86 boot disk"), "{stdout:?}");
}
