//! The BIOS on COM1 (firmware/sercon.inc): its banner, the boot device it
//! tries and why a try failed, as SeaBIOS prints them under `qemu
//! -nographic`; INT 10h text mirrored to COM1 with cursor moves as VT100
//! controls and colours as SGR, until the guest programs COM1 itself.

mod common;

use common::{run_until, Shared};
use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use vx86::machine::{Machine, MachineConfig};

/// Virtual nanoseconds per PIT tick: 65536 / 1.193182 MHz.
const TICK_NS: u64 = 54_925_493;

/// What the BIOS prints before it hands a hard disk its boot sector.
const BOOT_PREFIX: &str = "vx86 BIOS (version 0.1, 11/24/26)\r\nBooting from Hard Disk...\r\n";

fn machine() -> (Machine, Shared) {
    let mut m = Machine::new(MachineConfig {
        ram: 32 << 20,
        ..MachineConfig::default()
    })
    .unwrap();
    vx86::boot::builtin::load_bios(&mut m).unwrap();
    let serial = Shared::default();
    m.sinks.serial = Some(Box::new(serial.clone()));
    (m, serial)
}

/// A 512-byte boot sector from `body` (assembled at 0000:7C00), signed.
fn sector(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    body(&mut a).unwrap();
    let mut s = a.assemble(0x7C00).unwrap();
    assert!(s.len() <= 510, "boot sector code is {} bytes", s.len());
    s.resize(512, 0);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn attach(m: &mut Machine, sector: Vec<u8>) {
    let mut disk = sector;
    disk.resize(64 * 512, 0);
    m.attach_drive(0, Box::new(vx86::block::MemImage::writable(disk)))
        .unwrap();
}

fn teletype(a: &mut CodeAssembler, text: &[u8]) -> Result<(), IcedError> {
    for &c in text {
        a.mov(ax, 0x0E00u32 | c as u32)?;
        a.mov(bx, 0x0007u32)?;
        a.int(0x10)?;
    }
    Ok(())
}

fn set_cursor(a: &mut CodeAssembler, row: u8, col: u8) -> Result<(), IcedError> {
    a.mov(ah, 0x02)?;
    a.mov(bh, 0)?;
    a.mov(dx, (row as u32) << 8 | col as u32)?;
    a.int(0x10)
}

fn idle(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut l = a.create_label();
    a.sti()?;
    a.set_label(&mut l)?;
    a.hlt()?;
    a.jmp(l)
}

/// 115200 8N1 with FIFOs, DTR and RTS: what a bootloader's serial setup
/// writes (the same line settings POST chose, but MCR without OUT1).
fn program_com1(a: &mut CodeAssembler) -> Result<(), IcedError> {
    for (reg, val) in [
        (1u32, 0x00u32),
        (3, 0x80),
        (0, 0x01),
        (1, 0x00),
        (3, 0x03),
        (2, 0x07),
        (4, 0x03),
    ] {
        a.mov(dx, 0x3F8 + reg)?;
        a.mov(al, val)?;
        a.out(dx, al)?;
    }
    Ok(())
}

fn com1_direct(a: &mut CodeAssembler, text: &[u8]) -> Result<(), IcedError> {
    a.mov(dx, 0x3F8u32)?;
    for &c in text {
        a.mov(al, c as u32)?;
        a.out(dx, al)?;
    }
    Ok(())
}

#[test]
fn int10_text_is_mirrored_with_cursor_moves_and_colours_until_the_guest_programs_com1() {
    let (mut m, serial) = machine();
    attach(
        &mut m,
        sector(|a| {
            // Row 2 (under the banner and the boot line): plain teletype.
            teletype(a, b"Hi\r\n")?;
            // AH=09h: three yellow-on-blue X at row 5, column 10.
            set_cursor(a, 5, 10)?;
            a.mov(ax, 0x0958u32)?;
            a.mov(bx, 0x001Eu32)?;
            a.mov(cx, 3u32)?;
            a.int(0x10)?;
            // AH=0Ah: a box corner (CP437 C9h) two rows up at column 0 ...
            set_cursor(a, 3, 0)?;
            a.mov(ax, 0x0AC9u32)?;
            a.mov(bx, 0u32)?;
            a.mov(cx, 1u32)?;
            a.int(0x10)?;
            // ... overwritten by a teletype Z (AH=0Ah did not move the cursor).
            teletype(a, b"Z12")?;
            // One column back: BS.
            set_cursor(a, 3, 2)?;
            teletype(a, b"3")?;
            // Teletype across the end of row 10: the line wraps.
            set_cursor(a, 10, 78)?;
            teletype(a, b"abc")?;
            // The guest takes COM1 over: INT 10h text stays on screen only.
            program_com1(a)?;
            teletype(a, b"screen only")?;
            com1_direct(a, b"ok\r\n")?;
            idle(a)
        }),
    );
    run_until(&mut m, 5 * TICK_NS);
    let got = serial.bytes();
    let mut want = BOOT_PREFIX.as_bytes().to_vec();
    want.extend_from_slice(b"Hi\r\n");
    // SGR bold yellow on blue (VGA 1Eh), from row 3 two rows down, 10
    // columns right.
    want.extend_from_slice(b"\x1b[0;1;33;44m\n\n\x1b[10CXXX");
    // Default colours (the cell keeps attribute 07h), column 0, two rows up,
    // U+2554 in UTF-8; back to column 0 for the Z; "12", then one column
    // back (BS) for the 3.
    want.extend_from_slice("\x1b[0m\r\x1b[2A\u{2554}\rZ12\x083".as_bytes());
    // Seven rows down (the column is unknown after LF: CR, 78 right), the
    // wrap as CR LF.
    want.extend_from_slice(b"\n\n\n\n\n\n\n\r\x1b[78Cab\r\nc");
    want.extend_from_slice(b"ok\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "COM1 bytes"
    );
    // The screen has everything, including what COM1 no longer got.
    let rows = m.vga().unwrap().text_rows().unwrap();
    assert!(
        rows[0].starts_with("vx86 BIOS (version 0.1, 11/24/26)"),
        "{rows:?}"
    );
    assert!(rows[1].starts_with("Booting from Hard Disk..."), "{rows:?}");
    assert!(rows[2].starts_with("Hi"), "{rows:?}");
    assert!(rows[11].starts_with("cscreen only"), "{rows:?}");
}

#[test]
fn a_disk_without_a_boot_sector_is_reported_like_seabios() {
    let (mut m, serial) = machine();
    m.attach_drive(
        0,
        Box::new(vx86::block::MemImage::writable(vec![0; 64 * 512])),
    )
    .unwrap();
    run_until(&mut m, 5 * TICK_NS);
    let out = serial.text();
    let want = format!("{BOOT_PREFIX}Boot failed: not a bootable disk\r\n\r\n");
    assert!(out.starts_with(&want), "{out:?}");
    assert!(out.contains("No bootable device."), "{out:?}");
}

/// A 2 KiB option ROM at C800h whose init hooks INT 19h with a handler that
/// writes "ROM boot" to COM1 and idles.
fn int19_option_rom() -> Vec<u8> {
    fn build(handler_at: u16) -> Result<(Vec<u8>, u16), IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut handler = a.create_label();
        a.db(&[0x55, 0xAA, 4])?;
        a.push(ds)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(word_ptr(0x19u32 * 4), handler_at as u32)?;
        a.mov(word_ptr(0x19u32 * 4 + 2), 0xC800u32)?;
        a.pop(ds)?;
        a.retf()?;
        a.set_label(&mut handler)?;
        com1_direct(&mut a, b"ROM boot\r\n")?;
        idle(&mut a)?;
        let res = a.assemble_options(0, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let at = res.label_ip(&handler)? as u16;
        let mut rom = res.inner.code_buffer;
        rom.resize(2048, 0);
        let sum = rom.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        rom[2047] = 0u8.wrapping_sub(sum);
        Ok((rom, at))
    }
    let (_, at) = build(0).unwrap();
    let (rom, again) = build(at).unwrap();
    assert_eq!(at, again);
    rom
}

#[test]
fn an_option_rom_that_hooks_int19_is_announced() {
    let (mut m, serial) = machine();
    let rom = int19_option_rom();
    m.mem.ram_mut()[0xC8000..0xC8000 + rom.len()].copy_from_slice(&rom);
    run_until(&mut m, 3 * TICK_NS);
    assert_eq!(
        serial.text(),
        "vx86 BIOS (version 0.1, 11/24/26)\r\nBooting from ROM...\r\nROM boot\r\n"
    );
}

/// The default guest from the command line, as a `-nographic` user sees it:
/// the BIOS's banner and boot line, then the boot disk, which programs COM1
/// itself (its own lines are not doubled by the mirror).
#[test]
fn nographic_default_guest_shows_the_bios_then_the_boot_disk() {
    let out = common::vx86()
        .args(["-nographic", "--max-insns", "300000000"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run vx86");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "{BOOT_PREFIX} vx86 boot disk  -  the built-in default guest\r\nBooted from drive 80h"
    );
    assert!(stdout.starts_with(&want), "{stdout:?}");
    assert_eq!(stdout.matches("vx86 boot disk").count(), 1, "{stdout:?}");
}
