//! The vx86 BIOS (`firmware/bios.bin`, built from `firmware/bios.asm`):
//! the committed image matches its source, and booting it in the machine
//! without any disk produces the vx86 screen (banner on COM1, a running
//! PIT-driven tick count), a filled-in BIOS Data Area and working INT
//! services. The disk services and the built-in boot disk (the default guest)
//! are tested in `tests/bios_disk.rs`.

mod common;

use common::{run_until, Shared};
use std::path::{Path, PathBuf};

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use vx86::devices::i8042::Key;
use vx86::machine::{Machine, MachineConfig, RunExit};

const BIOS: &[u8] = include_bytes!("../firmware/bios.bin");

/// Virtual nanoseconds per PIT tick: 65536 / 1.193182 MHz.
const TICK_NS: u64 = 54_925_493;

fn boot(ram: u64) -> (Machine, Shared) {
    let cfg = MachineConfig {
        ram,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).unwrap();
    m.mem.load_bios("firmware/bios.bin", BIOS).unwrap();
    let serial = Shared::default();
    m.sinks.serial = Some(Box::new(serial.clone()));
    (m, serial)
}

fn rd8(m: &Machine, a: usize) -> u8 {
    m.mem.ram()[a]
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
    // `-i` lets bios.asm find font8x16.inc from any working directory.
    let mut include = root.join("firmware").into_os_string();
    include.push("/");
    let status = std::process::Command::new("nasm")
        .args(["-f", "bin", "-i"])
        .arg(include)
        .arg("-o")
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

/// The built-in boot disk (`firmware/bootdisk.img`) matches `bootdisk.asm`.
#[test]
fn committed_boot_disk_matches_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !nasm_available() {
        eprintln!("SKIPPED firmware::committed_boot_disk_matches_source: nasm not installed, cannot rebuild firmware/bootdisk.asm");
        return;
    }
    let out: PathBuf =
        std::env::temp_dir().join(format!("vx86-bootdisk-{}.img", std::process::id()));
    let status = std::process::Command::new("nasm")
        .args(["-f", "bin", "-o"])
        .arg(&out)
        .arg(root.join("firmware/bootdisk.asm"))
        .status()
        .unwrap();
    assert!(status.success(), "nasm failed on firmware/bootdisk.asm");
    let fresh = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(fresh.len() % 512, 0, "whole sectors");
    assert_eq!(&fresh[510..512], &[0x55, 0xAA], "boot signature");
    assert!(
        fresh == vx86::boot::builtin::BOOT_DISK,
        "firmware/bootdisk.img is stale: run firmware/build.sh and commit the result"
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
    // Longer than both the UART FIFO (16) and the BDA keyboard buffer (15).
    m.serial_in
        .extend(b"hello from the serial console, more than a FIFO full\r");
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
        m.kbc().unwrap().key_event(key, down);
    }
    run_until(&mut m, 12 * TICK_NS);
    let out = serial.text();
    assert!(
        out.contains("hello from the serial console, more than a FIFO full\r\n"),
        "serial input not echoed: {out:?}"
    );
    assert!(out.contains("aB7"), "keyboard input not echoed: {out:?}");
    // Everything was consumed from the BDA keyboard buffer.
    assert_eq!(rd16(&m, 0x41A), rd16(&m, 0x41C));
}

/// Where the service probe lives and leaves its results (segment 0).
const PROBE: u64 = 0x8000;
const E820_BUF: usize = 0x9000;
const RES: usize = 0x9100;

/// A real-mode program that calls the BIOS services once, as a guest would,
/// and stores what they return at `RES`. It runs as the INT 1Ch user tick
/// handler (called by the BIOS's IRQ0 handler), so it needs no boot disk.
fn service_probe() -> Vec<u8> {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut done = a.create_label();
        let mut e820_loop = a.create_label();
        let mut e820_end = a.create_label();
        let r = |off: usize| word_ptr((RES + off) as u32);
        a.pushad()?;
        a.push(ds)?;
        a.push(es)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.cmp(word_ptr((RES + 0xFE) as u32), 0xBEEF)?;
        a.je(done)?;
        a.mov(word_ptr((RES + 0xFE) as u32), 0xBEEF)?;
        // INT 15h E820h: walk the map into E820_BUF, count at RES+0.
        a.mov(di, E820_BUF as u32)?;
        a.xor(ebx, ebx)?;
        a.mov(r(0), 0)?;
        a.set_label(&mut e820_loop)?;
        a.mov(eax, 0xE820u32)?;
        a.mov(edx, 0x534D_4150u32)?;
        a.mov(ecx, 20u32)?;
        a.int(0x15)?;
        a.jc(e820_end)?;
        a.cmp(eax, 0x534D_4150u32)?;
        a.jne(e820_end)?;
        a.inc(r(0))?;
        a.add(di, 20)?;
        a.test(ebx, ebx)?;
        a.jnz(e820_loop)?;
        a.set_label(&mut e820_end)?;
        // INT 12h, INT 11h
        a.int(0x12)?;
        a.mov(r(2), ax)?;
        a.int(0x11)?;
        a.mov(r(4), ax)?;
        // INT 15h AH=88h (AX, flags)
        a.mov(ah, 0x88)?;
        a.stc()?;
        a.int(0x15)?;
        a.mov(r(6), ax)?;
        a.pushf()?;
        a.pop(r(8))?;
        // INT 15h AX=E801h
        a.mov(ax, 0xE801)?;
        a.int(0x15)?;
        a.mov(r(10), ax)?;
        a.mov(r(12), bx)?;
        a.mov(r(14), cx)?;
        a.mov(r(16), dx)?;
        // INT 15h unknown function
        a.mov(ax, 0x5500)?;
        a.int(0x15)?;
        a.mov(r(18), ax)?;
        a.pushf()?;
        a.pop(r(20))?;
        // INT 1Ah AH=02h time, AH=04h date, AH=00h ticks
        a.mov(ah, 0x02)?;
        a.stc()?;
        a.int(0x1A)?;
        a.mov(r(22), cx)?;
        a.mov(r(24), dx)?;
        a.pushf()?;
        a.pop(r(26))?;
        a.mov(ah, 0x04)?;
        a.int(0x1A)?;
        a.mov(r(28), cx)?;
        a.mov(r(30), dx)?;
        a.mov(ah, 0x00)?;
        a.int(0x1A)?;
        a.mov(r(32), cx)?;
        a.mov(r(34), dx)?;
        // INT 13h read sectors from hard disk 0: no disks, so CF=1 AH=01h
        a.mov(ax, 0x0201)?;
        a.mov(dx, 0x0080)?;
        a.mov(cx, 0x0001)?;
        a.mov(bx, 0x7C00)?;
        a.clc()?;
        a.int(0x13)?;
        a.mov(r(36), ax)?;
        a.pushf()?;
        a.pop(r(38))?;
        // INT 10h AH=0Fh mode
        a.mov(ah, 0x0F)?;
        a.int(0x10)?;
        a.mov(r(40), ax)?;
        a.mov(r(42), bx)?;
        // INT 10h AH=02h/03h cursor, then AH=0Eh teletype advances it
        a.mov(ah, 0x02)?;
        a.mov(bh, 0)?;
        a.mov(dx, 0x1405)?;
        a.int(0x10)?;
        a.mov(ax, 0x0E41)?;
        a.int(0x10)?;
        a.mov(ah, 0x03)?;
        a.mov(bh, 0)?;
        a.int(0x10)?;
        a.mov(r(44), dx)?;
        // teletype at the last cell wraps and scrolls: cursor to row 24, column 0
        a.mov(ah, 0x02)?;
        a.mov(bh, 0)?;
        a.mov(dx, 0x184F)?;
        a.int(0x10)?;
        a.mov(ax, 0x0E42)?;
        a.int(0x10)?;
        a.mov(ah, 0x03)?;
        a.mov(bh, 0)?;
        a.int(0x10)?;
        a.mov(r(46), dx)?;
        // CR LF from column 7 of row 24: column 0, still row 24
        a.mov(ah, 0x02)?;
        a.mov(dx, 0x1807)?;
        a.int(0x10)?;
        a.mov(ax, 0x0E0D)?;
        a.int(0x10)?;
        a.mov(ax, 0x0E0A)?;
        a.int(0x10)?;
        a.mov(ah, 0x03)?;
        a.int(0x10)?;
        a.mov(r(48), dx)?;
        // INT 16h: AH=05h store, AH=01h peek (ZF=0), AH=00h read, AH=01h (ZF=1)
        a.mov(ah, 0x05)?;
        a.mov(cx, 0x1E61)?;
        a.int(0x16)?;
        a.mov(r(50), ax)?;
        a.mov(ah, 0x01)?;
        a.int(0x16)?;
        a.mov(r(52), ax)?;
        a.pushf()?;
        a.pop(r(54))?;
        a.mov(ah, 0x00)?;
        a.int(0x16)?;
        a.mov(r(56), ax)?;
        a.mov(ah, 0x01)?;
        a.int(0x16)?;
        a.pushf()?;
        a.pop(r(58))?;
        // INT 15h AH=24h A20 status / support
        a.mov(ax, 0x2402)?;
        a.int(0x15)?;
        a.mov(r(60), ax)?;
        a.mov(ax, 0x2403)?;
        a.int(0x15)?;
        a.mov(r(62), bx)?;
        // INT 14h AH=03h status of COM1, AH=01h send
        a.mov(ah, 0x03)?;
        a.xor(dx, dx)?;
        a.int(0x14)?;
        a.mov(r(64), ax)?;
        a.mov(ax, 0x0121)?; // '!'
        a.xor(dx, dx)?;
        a.int(0x14)?;
        a.mov(r(66), ax)?;
        a.set_label(&mut done)?;
        a.pop(es)?;
        a.pop(ds)?;
        a.popad()?;
        a.iret()?;
        a.assemble(PROBE)
    }
    build().unwrap()
}

#[test]
fn services_answer_like_an_at_bios() {
    let (mut m, serial) = boot(128 << 20);
    let code = service_probe();
    m.mem.ram_mut()[PROBE as usize..PROBE as usize + code.len()].copy_from_slice(&code);
    // Let POST and the boot screen finish, then hook INT 1Ch (user tick).
    run_until(&mut m, 40 * TICK_NS);
    m.mem.ram_mut()[0x1C * 4..0x1C * 4 + 4].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    run_until(&mut m, 45 * TICK_NS);
    assert_eq!(rd16(&m, RES + 0xFE), 0xBEEF, "probe did not run");

    // E820: 4 entries, RAM top 128 MiB.
    assert_eq!(rd16(&m, RES), 4, "E820 entry count");
    let entry = |i: usize| {
        let b = E820_BUF + i * 20;
        let q = |o: usize| rd32(&m, b + o) as u64 | (rd32(&m, b + o + 4) as u64) << 32;
        (q(0), q(8), rd32(&m, b + 16))
    };
    assert_eq!(entry(0), (0, 0x9FC00, 1));
    assert_eq!(entry(1), (0x9FC00, 0x400, 2));
    assert_eq!(entry(2), (0xF0000, 0x10000, 2));
    assert_eq!(entry(3), (0x100000, (128 << 20) - 0x100000, 1));

    let res = |off: usize| rd16(&m, RES + off);
    assert_eq!(res(2), 639, "INT 12h");
    assert_eq!(res(4), 0x0220, "INT 11h");
    assert_eq!(
        res(6),
        0xFFFF,
        "INT 15h AH=88h: CMOS 30h/31h, capped at FFFFh"
    );
    assert_eq!(res(8) & 1, 0, "INT 15h AH=88h CF");
    assert_eq!(
        (res(10), res(14)),
        (0x3C00, 0x3C00),
        "E801h AX/CX: 15 MiB in KiB"
    );
    assert_eq!(
        (res(12), res(16)),
        (112 * 16, 112 * 16),
        "E801h BX/DX: 64 KiB blocks above 16 MiB"
    );
    assert_eq!(res(18) >> 8, 0x86, "unknown INT 15h function: AH=86h");
    assert_eq!(res(20) & 1, 1, "unknown INT 15h function: CF=1");
    // RTC 2026-01-01 00:00:00 at reset; the probe ran 41 ticks (2.25 s) later.
    assert_eq!(res(22), 0x0000, "INT 1Ah AH=02h CH:CL = 00:00");
    assert!(
        (0x02..=0x03).contains(&(res(24) >> 8)),
        "INT 1Ah AH=02h DH seconds {:#x}",
        res(24)
    );
    assert_eq!(res(26) & 1, 0, "INT 1Ah AH=02h CF");
    assert_eq!((res(28), res(30)), (0x2026, 0x0101), "INT 1Ah AH=04h date");
    let ticks = (res(32) as u32) << 16 | res(34) as u32;
    assert!((40..=42).contains(&ticks), "INT 1Ah AH=00h ticks {ticks}");
    assert_eq!(res(36) >> 8, 0x01, "INT 13h without disks: AH=01h");
    assert_eq!(res(38) & 1, 1, "INT 13h without disks: CF=1");
    assert_eq!(res(40), 0x5003, "INT 10h AH=0Fh: 80 columns, mode 3");
    assert_eq!(res(42) >> 8, 0, "INT 10h AH=0Fh: page 0");
    assert_eq!(res(44), 0x1406, "teletype advanced the cursor");
    assert_eq!(
        res(46),
        0x1800,
        "teletype wrapped and scrolled at the last cell"
    );
    assert_eq!(res(48), 0x1800, "CR LF on the last row");
    assert_eq!(res(50) & 0xFF, 0, "INT 16h AH=05h stored");
    assert_eq!(res(52), 0x1E61, "INT 16h AH=01h peek");
    assert_eq!(res(54) & 0x40, 0, "INT 16h AH=01h: ZF=0 with a key");
    assert_eq!(res(56), 0x1E61, "INT 16h AH=00h read");
    assert_eq!(res(58) & 0x40, 0x40, "INT 16h AH=01h: ZF=1 when empty");
    assert_eq!(res(60), 0x0001, "INT 15h AX=2402h: A20 enabled");
    assert_eq!(res(62), 0b10, "INT 15h AX=2403h: port 92h supported");
    assert_eq!(
        res(64) >> 8 & 0x60,
        0x60,
        "INT 14h status: THR and TSR empty"
    );
    assert_eq!(res(66) >> 8 & 0x80, 0, "INT 14h send: no time-out");
    assert!(serial.text().contains('!'), "INT 14h AH=01h byte on COM1");
}

#[test]
fn ctrl_alt_del_reboots() {
    let (mut m, serial) = boot(16 << 20);
    run_until(&mut m, 3 * TICK_NS);
    assert_eq!(serial.text().matches("vx86 BIOS 0.1").count(), 1);
    for (key, down) in [
        (Key::ControlLeft, true),
        (Key::AltLeft, true),
        (Key::Delete, true),
        (Key::Delete, false),
        (Key::AltLeft, false),
        (Key::ControlLeft, false),
    ] {
        m.kbc().unwrap().key_event(key, down);
    }
    run_until(&mut m, 8 * TICK_NS);
    let out = serial.text();
    assert_eq!(
        out.matches("vx86 BIOS 0.1").count(),
        2,
        "no second POST: {out:?}"
    );
    // The keyboard still works after the warm boot.
    m.kbc().unwrap().key_event(Key::Z, true);
    m.kbc().unwrap().key_event(Key::Z, false);
    run_until(&mut m, 12 * TICK_NS);
    let out = serial.text();
    let after = &out[out.rfind("vx86 BIOS 0.1").unwrap_or(0)..];
    assert!(after.contains('z'), "keyboard dead after reboot: {after:?}");
}

/// A boot sector that prints a line on COM1, records the boot drive at
/// 0000:0600 and halts with interrupts on.
fn boot_sector() -> Vec<u8> {
    const MSG_AT: usize = 0x100;
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut next = a.create_label();
        let mut done = a.create_label();
        let mut idle = a.create_label();
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(byte_ptr(0x600u32), dl)?;
        a.mov(si, 0x7C00u32 + MSG_AT as u32)?;
        a.mov(dx, 0x3F8u32)?;
        a.set_label(&mut next)?;
        a.lodsb()?;
        a.test(al, al)?;
        a.jz(done)?;
        a.out(dx, al)?;
        a.jmp(next)?;
        a.set_label(&mut done)?;
        a.sti()?;
        a.set_label(&mut idle)?;
        a.hlt()?;
        a.jmp(idle)?;
        let mut s = a.assemble(0x7C00)?;
        s.resize(512, 0);
        let msg = b"boot sector running\r\n\0";
        s[MSG_AT..MSG_AT + msg.len()].copy_from_slice(msg);
        s[510] = 0x55;
        s[511] = 0xAA;
        Ok(s)
    }
    build().unwrap()
}

/// A 2 KiB option ROM for segment C800h whose init hooks INT 13h with a
/// one-sector "disk 80h" holding `sector`; every other request fails.
fn disk_option_rom(sector: &[u8]) -> Vec<u8> {
    const SECTOR_AT: usize = 0x200;
    /// Assembles the ROM with the INT 13h handler at `handler_at`; returns the
    /// image and where the handler really landed.
    fn build(sector: &[u8], handler_at: u16) -> Result<(Vec<u8>, u16), IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut handler = a.create_label();
        let mut fail = a.create_label();
        a.db(&[0x55, 0xAA, 4])?; // signature, 4 x 512 bytes
                                 // init entry at offset 3
        a.push(ds)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(ax, handler_at as u32)?;
        a.mov(word_ptr(0x13u32 * 4), ax)?;
        a.mov(word_ptr(0x13u32 * 4 + 2), 0xC800u32)?;
        a.pop(ds)?;
        a.retf()?;
        a.set_label(&mut handler)?;
        a.cmp(ah, 0x02)?;
        a.jne(fail)?;
        a.cmp(dl, 0x80)?;
        a.jne(fail)?;
        a.push(ds)?;
        a.push(si)?;
        a.push(di)?;
        a.push(cx)?;
        a.push(cs)?;
        a.pop(ds)?;
        a.mov(si, SECTOR_AT as u32)?;
        a.mov(di, bx)?;
        a.mov(cx, 256u32)?;
        a.cld()?;
        a.rep().movsw()?;
        a.pop(cx)?;
        a.pop(di)?;
        a.pop(si)?;
        a.pop(ds)?;
        a.mov(ax, 0x0001u32)?; // AH = 0 ok, AL = 1 sector
        a.clc()?;
        a.retf_1(2)?;
        a.set_label(&mut fail)?;
        a.mov(ah, 0x01)?;
        a.stc()?;
        a.retf_1(2)?;
        // Offsets are relative to the segment: assemble at 0.
        let res = a.assemble_options(0, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let at = res.label_ip(&handler)? as u16;
        let mut rom = res.inner.code_buffer;
        rom.resize(2048, 0);
        rom[SECTOR_AT..SECTOR_AT + sector.len()].copy_from_slice(sector);
        let sum = rom.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        rom[2047] = 0u8.wrapping_sub(sum);
        Ok((rom, at))
    }
    let (_, at) = build(sector, 0).unwrap();
    let (rom, again) = build(sector, at).unwrap();
    assert_eq!(at, again);
    rom
}

#[test]
fn int19_boots_a_sector_from_an_option_rom_disk() {
    let (mut m, serial) = boot(16 << 20);
    let rom = disk_option_rom(&boot_sector());
    m.mem.ram_mut()[0xC8000..0xC8000 + rom.len()].copy_from_slice(&rom);
    run_until(&mut m, 3 * TICK_NS);
    let out = serial.text();
    assert!(out.contains("boot sector running\r\n"), "{out:?}");
    assert!(!out.contains("No bootable disk found."), "{out:?}");
    assert_eq!(rd8(&m, 0x600), 0x80, "boot drive in DL");
    assert_eq!(rd16(&m, 0x7DFE), 0xAA55);
}

#[test]
fn shutdown_code_0a_resumes_through_0040_0067() {
    let (mut m, _serial) = boot(16 << 20);
    let debugcon = Shared::default();
    m.sinks.debugcon = Some(Box::new(debugcon.clone()));
    // A 286-style "return from protected mode": CMOS 0Fh = 0Ah and the
    // resume address at 0040:0067, as an OS leaves them before resetting.
    let mut code = vec![0xB0, b'R', 0xE6, 0xE9]; // mov al,'R'; out 0E9h,al
    code.extend([0xF4, 0xEB, 0xFD]); // hlt; jmp $-1
    m.mem.ram_mut()[0x8000..0x8000 + code.len()].copy_from_slice(&code);
    m.mem.ram_mut()[0x467..0x46B].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    m.rtc().unwrap().cmos_write_raw(0x0F, 0x0A);
    // The resumed code halts with interrupts off (POST runs with CLI).
    m.cfg.max_insns = Some(TICK_NS);
    assert_eq!(m.run(), RunExit::HaltedForever);
    assert_eq!(debugcon.text(), "R", "POST did not resume at 0000:8000");
    assert_eq!(
        m.rtc().unwrap().cmos_read_raw(0x0F),
        0,
        "shutdown code cleared"
    );
}

/// A probe (INT 1Ch handler, runs once) for the INT 10h text functions that
/// touch video memory: write char/attr, read back, scroll up/down, teletype
/// wrap with scroll. Results are words at `VRES`: [0] = the first read-back,
/// then rows 10-24 of column 0 after scrolling up 2, after scrolling down 1,
/// and finally three cells around the teletype wrap.
const VRES: usize = 0x9200;
fn video_probe() -> Vec<u8> {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut done = a.create_label();
        let mut slot = 0usize;
        a.pushad()?;
        a.push(ds)?;
        a.push(es)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.cmp(word_ptr((VRES + 0xFE) as u32), 0xBEEF)?;
        a.je(done)?;
        a.mov(word_ptr((VRES + 0xFE) as u32), 0xBEEF)?;
        fn cursor(a: &mut CodeAssembler, row: u32, col: u32) -> Result<(), IcedError> {
            a.mov(ah, 0x02)?;
            a.mov(bh, 0)?;
            a.mov(dx, row << 8 | col)?;
            a.int(0x10)
        }
        fn read(
            a: &mut CodeAssembler,
            slot: &mut usize,
            row: u32,
            col: u32,
        ) -> Result<(), IcedError> {
            cursor(a, row, col)?;
            a.mov(ah, 0x08)?;
            a.mov(bh, 0)?;
            a.int(0x10)?;
            a.mov(word_ptr((VRES + 2 * *slot) as u32), ax)?;
            *slot += 1;
            Ok(())
        }
        // write 'Q' in 1Eh at 0,0 and read it back
        cursor(&mut a, 0, 0)?;
        a.mov(ax, 0x0951)?;
        a.mov(bx, 0x001E)?;
        a.mov(cx, 1)?;
        a.int(0x10)?;
        read(&mut a, &mut slot, 0, 0)?;
        // rows 10-24, column 0: 'a'.. in attribute 02h
        for row in 10..=24u32 {
            cursor(&mut a, row, 0)?;
            a.mov(ax, 0x0900 | (u32::from(b'a') + row - 10))?;
            a.mov(bx, 0x0002)?;
            a.mov(cx, 1)?;
            a.int(0x10)?;
        }
        // scroll rows 10-24 up 2, blank lines in 70h
        a.mov(ax, 0x0602)?;
        a.mov(bh, 0x70)?;
        a.mov(cx, 0x0A00)?;
        a.mov(dx, 0x184F)?;
        a.int(0x10)?;
        for row in 10..=24 {
            read(&mut a, &mut slot, row, 0)?;
        }
        // scroll the same window down 1, blank line in 17h
        a.mov(ax, 0x0701)?;
        a.mov(bh, 0x17)?;
        a.mov(cx, 0x0A00)?;
        a.mov(dx, 0x184F)?;
        a.int(0x10)?;
        for row in 10..=24 {
            read(&mut a, &mut slot, row, 0)?;
        }
        // teletype 'X' 'Y' from 24,78: 'Y' fills the last cell, the wrap scrolls
        cursor(&mut a, 24, 78)?;
        a.mov(ax, 0x0E58)?;
        a.int(0x10)?;
        a.mov(ax, 0x0E59)?;
        a.int(0x10)?;
        a.mov(ah, 0x03)?;
        a.mov(bh, 0)?;
        a.int(0x10)?;
        a.mov(word_ptr((VRES + 2 * slot) as u32), dx)?;
        slot += 1;
        read(&mut a, &mut slot, 23, 78)?;
        read(&mut a, &mut slot, 23, 79)?;
        read(&mut a, &mut slot, 24, 0)?;
        a.set_label(&mut done)?;
        a.pop(es)?;
        a.pop(ds)?;
        a.popad()?;
        a.iret()?;
        a.assemble(PROBE)
    }
    build().unwrap()
}

#[test]
fn int10_text_functions_on_video_memory() {
    let (mut m, _serial) = boot(16 << 20);
    let code = video_probe();
    m.mem.ram_mut()[PROBE as usize..PROBE as usize + code.len()].copy_from_slice(&code);
    run_until(&mut m, 3 * TICK_NS);
    m.mem.ram_mut()[0x1C * 4..0x1C * 4 + 4].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    run_until(&mut m, 5 * TICK_NS);
    assert_eq!(rd16(&m, VRES + 0xFE), 0xBEEF, "probe did not run");
    let w = |i: usize| rd16(&m, VRES + 2 * i);
    if w(0) == 0xFFFF {
        eprintln!(
            "SKIPPED firmware::int10_text_functions_on_video_memory: this machine has no VGA memory at B8000h"
        );
        return;
    }
    assert_eq!(w(0), 0x1E51, "INT 10h AH=09h/08h round trip");
    let cell = |row: u16| 0x0200 | (u16::from(b'a') + row - 10);
    // after scrolling up 2: rows 10-22 hold 'c'..'o', rows 23-24 blank in 70h
    for row in 10..=24u16 {
        let want = if row <= 22 { cell(row + 2) } else { 0x7020 };
        assert_eq!(w(1 + usize::from(row - 10)), want, "scroll up, row {row}");
    }
    // after scrolling down 1: row 10 blank in 17h, the rest moved down one
    for row in 10..=24u16 {
        let want = match row {
            10 => 0x1720,
            11..=23 => cell(row + 1),
            _ => 0x7020,
        };
        assert_eq!(
            w(16 + usize::from(row - 10)),
            want,
            "scroll down, row {row}"
        );
    }
    assert_eq!(
        w(31),
        0x1800,
        "teletype cursor after wrapping at the last cell"
    );
    assert_eq!(
        w(32) & 0xFF,
        u16::from(b'X'),
        "row 23 col 78 after the scroll"
    );
    assert_eq!(
        w(33) & 0xFF,
        u16::from(b'Y'),
        "row 23 col 79 after the scroll"
    );
    assert_eq!(w(34), 0x0720, "new blank line");
}

/// Mode 13h through INT 10h: the BDA describes 320x200x256 (40x25 text), a
/// pixel written with AH=0Ch reads back with AH=0Dh, teletype draws the 8x8
/// glyph in the colour given in BL. Video memory checks skip without VGA.
#[test]
fn int10_mode_13h() {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut done = a.create_label();
        a.pushad()?;
        a.push(ds)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.cmp(word_ptr((VRES + 0xFE) as u32), 0xBEEF)?;
        a.je(done)?;
        a.mov(word_ptr((VRES + 0xFE) as u32), 0xBEEF)?;
        a.mov(ax, 0x0013u32)?;
        a.int(0x10)?;
        a.mov(ah, 0x0F)?;
        a.int(0x10)?;
        a.mov(word_ptr(VRES as u32), ax)?;
        // pixel (100, 50) = 2Ah, read back
        a.mov(ax, 0x0C2Au32)?;
        a.mov(cx, 100u32)?;
        a.mov(dx, 50u32)?;
        a.int(0x10)?;
        a.mov(ax, 0x0D00u32)?;
        a.int(0x10)?;
        a.mov(word_ptr(VRES as u32 + 2), ax)?;
        // teletype 'I' in colour 0Fh at 0,0; pixel (3,2) is in its stem
        a.mov(ax, 0x0E49u32)?;
        a.mov(bx, 0x000Fu32)?;
        a.int(0x10)?;
        a.mov(ax, 0x0D00u32)?;
        a.mov(cx, 3u32)?;
        a.mov(dx, 2u32)?;
        a.int(0x10)?;
        a.mov(word_ptr(VRES as u32 + 4), ax)?;
        a.mov(ax, 0x0D00u32)?;
        a.mov(cx, 0u32)?;
        a.mov(dx, 2u32)?;
        a.int(0x10)?;
        a.mov(word_ptr(VRES as u32 + 6), ax)?;
        a.set_label(&mut done)?;
        a.pop(ds)?;
        a.popad()?;
        a.iret()?;
        a.assemble(PROBE)
    }
    let (mut m, _serial) = boot(16 << 20);
    let code = build().unwrap();
    m.mem.ram_mut()[PROBE as usize..PROBE as usize + code.len()].copy_from_slice(&code);
    run_until(&mut m, 3 * TICK_NS);
    m.mem.ram_mut()[0x1C * 4..0x1C * 4 + 4].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    run_until(&mut m, 5 * TICK_NS);
    assert_eq!(rd16(&m, VRES + 0xFE), 0xBEEF, "probe did not run");
    assert_eq!(rd8(&m, 0x449), 0x13, "BDA video mode");
    assert_eq!(rd16(&m, 0x44A), 40, "BDA text columns");
    assert_eq!(rd16(&m, VRES), 0x2813, "AH=0Fh: 40 columns, mode 13h");
    if rd16(&m, VRES + 2) & 0xFF == 0xFF {
        eprintln!("SKIPPED video memory part of firmware::int10_mode_13h: no VGA memory at A0000h");
        return;
    }
    assert_eq!(
        rd16(&m, VRES + 2) & 0xFF,
        0x2A,
        "AH=0Dh reads the AH=0Ch pixel"
    );
    assert_eq!(
        rd16(&m, VRES + 4) & 0xFF,
        0x0F,
        "glyph 'I' stem pixel in colour BL"
    );
    assert_eq!(rd16(&m, VRES + 6) & 0xFF, 0x00, "glyph background");
}
