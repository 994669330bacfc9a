//! The vx86 BIOS (`firmware/bios.bin`, built from `firmware/bios.asm`):
//! the committed image matches its source, and booting it in the machine
//! produces the banner on COM1, a running PIT-driven tick count, a filled-in
//! BIOS Data Area and working INT services.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vx86::devices::i8042::Key;
use vx86::machine::{Machine, MachineConfig, RunExit};

const BIOS: &[u8] = include_bytes!("../firmware/bios.bin");

/// Virtual nanoseconds per PIT tick: 65536 / 1.193182 MHz.
const TICK_NS: u64 = 54_925_493;

/// A `Write + Send` sink the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn boot(ram: u64) -> (Machine, Shared) {
    let cfg = MachineConfig {
        ram,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).unwrap();
    m.cpu.mem.load_bios("firmware/bios.bin", BIOS).unwrap();
    let serial = Shared::default();
    m.sinks.serial = Some(Box::new(serial.clone()));
    (m, serial)
}

/// Runs until virtual time (= instruction count at 1 ns per instruction,
/// HLT time included) reaches `until`.
fn run_until(m: &mut Machine, until: u64) {
    m.cfg.max_insns = Some(until);
    assert_eq!(m.run(), RunExit::InstructionLimit);
}

fn rd8(m: &Machine, a: usize) -> u8 {
    m.cpu.mem.ram()[a]
}
fn rd16(m: &Machine, a: usize) -> u16 {
    u16::from_le_bytes([rd8(m, a), rd8(m, a + 1)])
}
fn rd32(m: &Machine, a: usize) -> u32 {
    u32::from_le_bytes([rd8(m, a), rd8(m, a + 1), rd8(m, a + 2), rd8(m, a + 3)])
}

fn nasm_available() -> bool {
    std::process::Command::new("nasm")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn committed_image_matches_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !nasm_available() {
        eprintln!("SKIPPED firmware::committed_image_matches_source: nasm not installed, cannot rebuild firmware/bios.asm");
        return;
    }
    let out: PathBuf = std::env::temp_dir().join(format!("vx86-bios-{}.bin", std::process::id()));
    let status = std::process::Command::new("nasm")
        .args(["-f", "bin", "-o"])
        .arg(&out)
        .arg(root.join("firmware/bios.asm"))
        .status()
        .unwrap();
    assert!(status.success(), "nasm failed on firmware/bios.asm");
    let fresh = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(fresh.len(), 65536);
    assert!(
        fresh == BIOS,
        "firmware/bios.bin is stale: run firmware/build.sh and commit the result"
    );
}

#[test]
fn image_layout() {
    assert_eq!(BIOS.len(), 65536);
    // F000:FFF0: JMP FAR F000:post
    assert_eq!(BIOS[0xFFF0], 0xEA);
    assert_eq!(&BIOS[0xFFF3..0xFFF5], &[0x00, 0xF0]);
    assert_eq!(&BIOS[0xFFF5..0xFFFD], b"11/24/26");
    assert_eq!(BIOS[0xFFFE], 0xFC, "model byte: PC/AT");
    // Unused space is erased-ROM 0xFF just below the reset vector.
    assert_eq!(BIOS[0xFFEF], 0xFF);
}

#[test]
fn boots_to_banner_and_ticks() {
    let (mut m, serial) = boot(256 << 20);
    run_until(&mut m, 30 * TICK_NS);
    let out = serial.text();
    assert!(out.contains("vx86 BIOS 0.1"), "no banner on COM1: {out:?}");
    assert!(
        out.contains("Memory: 639 KiB base, 261120 KiB extended, 256 MiB total"),
        "{out:?}"
    );
    assert!(out.contains("No bootable disk found."), "{out:?}");
    // The RTC epoch of the default config is midnight, so POST starts the
    // tick count near 0; 30 tick periods later IRQ0 has counted them.
    let ticks = rd32(&m, 0x46C);
    assert!((25..=31).contains(&ticks), "tick count {ticks}");
    assert!(out.contains("uptime 1 s  RTC 00:00:01"), "{out:?}");
}

#[test]
fn bios_data_area_after_post() {
    let (mut m, _serial) = boot(64 << 20);
    run_until(&mut m, 2 * TICK_NS);
    assert_eq!(rd16(&m, 0x400), 0x3F8, "COM1 base");
    assert_eq!(rd16(&m, 0x40E), 0x9FC0, "EBDA segment");
    assert_eq!(rd8(&m, 0x9FC00), 1, "EBDA size in KiB");
    assert_eq!(
        rd16(&m, 0x410),
        0x0220,
        "equipment: 1 serial port, 80x25 colour"
    );
    assert_eq!(rd16(&m, 0x413), 639, "conventional memory KiB");
    assert_eq!(rd16(&m, 0x480), 0x1E, "keyboard buffer start");
    assert_eq!(rd16(&m, 0x482), 0x3E, "keyboard buffer end");
    assert_eq!(rd16(&m, 0x41A), rd16(&m, 0x41C), "keyboard buffer empty");
    assert_eq!(rd8(&m, 0x449), 3, "video mode");
    assert_eq!(rd16(&m, 0x44A), 80, "columns");
    assert_eq!(rd16(&m, 0x463), 0x3D4, "CRTC base");
    assert_eq!(rd8(&m, 0x484), 24, "rows - 1");
    // The idle screen left the cursor at the start of the echo area (row 10).
    assert_eq!(rd16(&m, 0x450), 10 << 8);
    // IVT: timer, keyboard, video and boot vectors point into the ROM.
    for v in [0x08usize, 0x09, 0x10, 0x13, 0x15, 0x16, 0x19, 0x1A] {
        assert_eq!(rd16(&m, v * 4 + 2), 0xF000, "INT {v:02X}h segment");
        assert!(rd16(&m, v * 4) < 0xFFF0, "INT {v:02X}h offset");
    }
    // Default handlers are distinct from the real ones.
    assert_ne!(rd16(&m, 0x08 * 4), rd16(&m, 0x09 * 4));
}

#[test]
fn echoes_serial_and_keyboard_input() {
    let (mut m, serial) = boot(32 << 20);
    run_until(&mut m, 3 * TICK_NS);
    m.serial_in.extend(b"hi\r");
    run_until(&mut m, 6 * TICK_NS);
    for (key, down) in [
        (Key::A, true),
        (Key::A, false),
        (Key::ShiftLeft, true),
        (Key::B, true),
        (Key::B, false),
        (Key::ShiftLeft, false),
        (Key::Digit7, true),
        (Key::Digit7, false),
    ] {
        m.plat.kbc.key_event(key, down);
    }
    run_until(&mut m, 12 * TICK_NS);
    let out = serial.text();
    assert!(out.contains("hi\r\n"), "serial input not echoed: {out:?}");
    assert!(out.contains("aB7"), "keyboard input not echoed: {out:?}");
    // Everything was consumed from the BDA keyboard buffer.
    assert_eq!(rd16(&m, 0x41A), rd16(&m, 0x41C));
}
