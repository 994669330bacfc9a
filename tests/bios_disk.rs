//! vx86's BIOS disk services on the emulated ATA disks: POST detection (BDA
//! 0475h, INT 41h table), INT 13h CHS and EDD functions with their error
//! codes, INT 19h boot order and the "No bootable device" message, and the
//! built-in boot disk (the default guest) booted through INT 19h -> INT 13h.

mod common;

use common::{rd16, rd32, rd8, run_until, Shared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iced_x86::code_asm::*;
use vx86::block::{BlockDevice, MemImage};
use vx86::devices::i8042::Key;
use vx86::machine::{Machine, MachineConfig, RunExit};

/// Virtual nanoseconds per PIT tick: 65536 / 1.193182 MHz.
const TICK_NS: u64 = 54_925_493;

/// A disk whose sector `n` starts with `n` as a little-endian u64 followed by
/// 0xA5 bytes, without storing it; written sectors are kept in a map.
struct PatternDisk {
    sectors: u64,
    written: Written,
}

/// The sectors a [`PatternDisk`] was written, shared with the test.
type Written = Arc<Mutex<HashMap<u64, Vec<u8>>>>;

impl PatternDisk {
    fn new(sectors: u64) -> (PatternDisk, Written) {
        let written = Arc::new(Mutex::new(HashMap::new()));
        (
            PatternDisk {
                sectors,
                written: written.clone(),
            },
            written,
        )
    }
}

fn pattern(n: u64) -> Vec<u8> {
    let mut s = vec![0xA5u8; 512];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}

impl BlockDevice for PatternDisk {
    fn sector_count(&self) -> u64 {
        self.sectors
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if lba + (buf.len() / 512) as u64 > self.sectors {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let w = self.written.lock().unwrap();
        for (i, chunk) in buf.chunks_exact_mut(512).enumerate() {
            let n = lba + i as u64;
            match w.get(&n) {
                Some(s) => chunk.copy_from_slice(s),
                None => chunk.copy_from_slice(&pattern(n)),
            }
        }
        Ok(())
    }
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> std::io::Result<()> {
        if lba + (buf.len() / 512) as u64 > self.sectors {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let mut w = self.written.lock().unwrap();
        for (i, chunk) in buf.chunks_exact(512).enumerate() {
            w.insert(lba + i as u64, chunk.to_vec());
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn read_only(&self) -> bool {
        false
    }
}

fn machine() -> (Machine, Shared) {
    let mut m = Machine::new(MachineConfig {
        ram: 64 << 20,
        ..MachineConfig::default()
    })
    .unwrap();
    vx86::boot::builtin::load_bios(&mut m).unwrap();
    let serial = Shared::default();
    m.sinks.serial = Some(Box::new(serial.clone()));
    (m, serial)
}

fn screen(m: &mut Machine) -> String {
    m.vga().unwrap().text_rows().unwrap_or_default().join("\n")
}

/// A boot sector that writes "booted DL=xx" to port E9h and records DL at 0000:0600.
fn boot_sector() -> Vec<u8> {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut idle = a.create_label();
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(byte_ptr(0x600u32), dl)?;
        a.mov(al, dl)?;
        a.out(0xE9, al)?;
        a.sti()?;
        a.set_label(&mut idle)?;
        a.hlt()?;
        a.jmp(idle)?;
        let mut s = a.assemble(0x7C00)?;
        s.resize(512, 0);
        s[510] = 0x55;
        s[511] = 0xAA;
        Ok(s)
    }
    build().unwrap()
}

#[test]
fn builtin_boot_disk_is_the_default_guest() {
    let (mut m, serial) = machine();
    vx86::boot::builtin::attach_boot_disk(&mut m).unwrap();
    run_until(&mut m, 30 * TICK_NS);
    let out = serial.text();
    assert!(
        out.contains(" vx86 boot disk  -  the built-in default guest\r\n"),
        "{out:?}"
    );
    assert!(
        out.contains(
            "Booted from drive 80h: INT 19h loaded sector 0, INT 13h AH=42h (EDD) the rest."
        ),
        "{out:?}"
    );
    let sectors = vx86::boot::builtin::BOOT_DISK.len() / 512;
    assert!(
        out.contains(&format!(
            "Disk: {sectors} sectors, CHS 1/16/63, hard disks: 1"
        )),
        "{out:?}"
    );
    assert!(
        out.contains("Memory: 639 KiB base, 64 MiB total"),
        "{out:?}"
    );
    assert!(out.contains("uptime 1 s  RTC 00:00:01"), "{out:?}");
    assert!(!out.contains("No bootable"), "{out:?}");
    let scr = screen(&mut m);
    assert!(scr.contains("vx86 boot disk"), "screen: {scr}");
    assert!(scr.contains("uptime 1 s"), "screen: {scr}");

    // Keyboard and COM1 input are echoed on COM1 and on screen.
    m.serial_in
        .extend(b"typed on COM1, longer than the 16-byte FIFO\r");
    run_until(&mut m, 35 * TICK_NS);
    for (key, down) in [
        (Key::H, true),
        (Key::H, false),
        (Key::I, true),
        (Key::I, false),
    ] {
        m.kbc().unwrap().key_event(key, down);
    }
    run_until(&mut m, 40 * TICK_NS);
    let out = serial.text();
    assert!(
        out.contains("typed on COM1, longer than the 16-byte FIFO\r\n"),
        "{out:?}"
    );
    assert!(out.contains("hi"), "{out:?}");
    let scr = screen(&mut m);
    assert!(
        scr.contains("typed on COM1, longer than the 16-byte FIFO"),
        "screen: {scr}"
    );
    assert!(scr.contains("hi"), "screen: {scr}");
}

#[test]
fn disk_without_boot_signature_says_no_bootable_device() {
    let (mut m, serial) = machine();
    m.ata(0)
        .unwrap()
        .attach(0, Box::new(MemImage::writable(vec![0; 64 * 512])))
        .unwrap();
    run_until(&mut m, 10 * TICK_NS);
    let out = serial.text();
    assert!(out.contains("No bootable device."), "{out:?}");
    assert!(!out.contains("No bootable disk found."), "{out:?}");
    assert!(
        screen(&mut m).contains("No bootable device."),
        "{}",
        screen(&mut m)
    );
    assert_eq!(rd8(&m, 0x475), 1, "BDA: one hard disk");
    // The guest waits (HLT with interrupts on), it does not hang: a key retries.
    m.kbc().unwrap().key_event(Key::Space, true);
    m.kbc().unwrap().key_event(Key::Space, false);
    run_until(&mut m, 20 * TICK_NS);
    assert_eq!(serial.text().matches("No bootable device.").count(), 2);
}

#[test]
fn boots_the_first_disk_with_a_signature_on_any_channel() {
    let (mut m, _serial) = machine();
    let debugcon = Shared::default();
    m.sinks.debugcon = Some(Box::new(debugcon.clone()));
    let mut bootable = vec![0u8; 32 * 512];
    bootable[..512].copy_from_slice(&boot_sector());
    // 80h: no signature (primary master); 81h: primary slave absent, so the
    // secondary master is 81h and boots; 82h: secondary slave, also bootable.
    m.ata(0)
        .unwrap()
        .attach(0, Box::new(MemImage::writable(vec![0; 32 * 512])))
        .unwrap();
    m.ata(1)
        .unwrap()
        .attach(0, Box::new(MemImage::writable(bootable.clone())))
        .unwrap();
    m.ata(1)
        .unwrap()
        .attach(1, Box::new(MemImage::writable(bootable)))
        .unwrap();
    run_until(&mut m, 5 * TICK_NS);
    assert_eq!(rd8(&m, 0x475), 3, "BDA: three hard disks");
    assert_eq!(rd8(&m, 0x600), 0x81, "booted drive in DL");
    assert_eq!(debugcon.bytes(), vec![0x81]);
}

/// Where the INT 13h probe lives, its buffers and its results (segment 0).
const PROBE: u64 = 0x8000;
const RES: usize = 0x9000;
const EDD_BUF: usize = 0x9200;
const DAP: usize = 0x9300;
const BUF_A: usize = 0x20000; // 2000:0000
const BUF_B: usize = 0x30000; // 3000:0000

/// A real-mode program (the INT 1Ch user tick handler, runs once) that calls
/// INT 13h as a bootloader would and stores AX, flags and the interesting
/// registers at RES.
fn disk_probe() -> Vec<u8> {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut done = a.create_label();
        let mut slot = 0usize;
        a.pushad()?;
        a.push(ds)?;
        a.push(es)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.cmp(word_ptr((RES + 0x1FE) as u32), 0xBEEF)?;
        a.je(done)?;
        a.mov(word_ptr((RES + 0x1FE) as u32), 0xBEEF)?;
        // Saves AX, FLAGS, BX, CX, DX in five result words.
        fn save(a: &mut CodeAssembler, slot: &mut usize) -> Result<(), IcedError> {
            let at = |i: usize| word_ptr((RES + 2 * i) as u32);
            a.push(ax)?;
            a.pushf()?;
            a.xor(ax, ax)?;
            a.mov(ds, ax)?;
            a.pop(at(*slot + 1))?;
            a.pop(at(*slot))?;
            a.mov(at(*slot + 2), bx)?;
            a.mov(at(*slot + 3), cx)?;
            a.mov(at(*slot + 4), dx)?;
            *slot += 5;
            Ok(())
        }
        fn dap(
            a: &mut CodeAssembler,
            size: u32,
            count: u32,
            seg_off: u32,
            lba: u32,
        ) -> Result<(), IcedError> {
            a.mov(byte_ptr(DAP as u32), size)?;
            a.mov(byte_ptr(DAP as u32 + 1), 0)?;
            a.mov(word_ptr(DAP as u32 + 2), count)?;
            a.mov(dword_ptr(DAP as u32 + 4), seg_off)?;
            a.mov(dword_ptr(DAP as u32 + 8), lba)?;
            a.mov(dword_ptr(DAP as u32 + 12), 0)?;
            a.mov(si, DAP as u32)?;
            a.mov(dl, 0x80)?;
            Ok(())
        }
        // 0: AH=08h parameters
        a.mov(ah, 0x08)?;
        a.mov(dl, 0x80)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 5: AH=15h type
        a.mov(ah, 0x15)?;
        a.mov(dl, 0x80)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 10: AH=41h extensions check
        a.mov(ah, 0x41)?;
        a.mov(bx, 0x55AA)?;
        a.mov(dl, 0x80)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 15: AH=48h extended parameters, EDD 3.0 sized buffer
        a.mov(word_ptr(EDD_BUF as u32), 0x42)?;
        a.mov(ah, 0x48)?;
        a.mov(dl, 0x80)?;
        a.mov(si, EDD_BUF as u32)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 20: AH=42h read 3 sectors at LBA 1000 to 2000:0000
        dap(&mut a, 0x10, 3, 0x2000_0000, 1000)?;
        a.mov(ah, 0x42)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 25: AH=02h CHS read C=2 H=5 S=10 (2 sectors) to 3000:0000
        a.mov(ax, 0x3000)?;
        a.mov(es, ax)?;
        a.mov(ax, 0x0202)?;
        a.mov(cx, 0x020A)?;
        a.mov(dx, 0x0580)?;
        a.xor(bx, bx)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 30: AH=43h write 1 sector at LBA 77 from 2000:0000 (holds LBA 1000)
        dap(&mut a, 0x10, 1, 0x2000_0000, 77)?;
        a.mov(ax, 0x4300)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 35: AH=42h read past the end: AH=04h
        dap(&mut a, 0x10, 2, 0x2000_0000, 2_000_000)?;
        a.mov(ah, 0x42)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        a.mov(ax, word_ptr(DAP as u32 + 2))?;
        a.mov(word_ptr((RES + 0x100) as u32), ax)?; // blocks moved: 0
                                                    // 40: AH=01h status of the last operation: AL=04h
        a.mov(ah, 0x01)?;
        a.mov(dl, 0x80)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 45: AH=02h with sector 0: invalid (AH=01h)
        a.mov(ax, 0x0201)?;
        a.mov(cx, 0x0000)?;
        a.mov(dx, 0x0080)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 50: drive 81h does not exist
        a.mov(ax, 0x0201)?;
        a.mov(cx, 0x0001)?;
        a.mov(dx, 0x0081)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 55: unknown function AH=77h
        a.mov(ah, 0x77)?;
        a.mov(dl, 0x80)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 60: AH=42h with a 64-bit flat buffer (FFFF:FFFF, 18h-byte DAP) at 3000:0400
        dap(&mut a, 0x18, 1, 0xFFFF_FFFF, 5)?;
        a.mov(dword_ptr(DAP as u32 + 0x10), (BUF_B + 0x400) as u32)?;
        a.mov(dword_ptr(DAP as u32 + 0x14), 0)?;
        a.mov(ah, 0x42)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 65: AH=44h verify, AH=47h seek
        dap(&mut a, 0x10, 8, 0x2000_0000, 100)?;
        a.mov(ah, 0x44)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        dap(&mut a, 0x10, 0, 0, 1_228_799)?;
        a.mov(ah, 0x47)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 75: AH=00h reset
        a.mov(ah, 0x00)?;
        a.mov(dl, 0x80)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 80: read the written sector back to 3000:1000
        dap(&mut a, 0x10, 1, 0x3000_1000, 77)?;
        a.mov(ah, 0x42)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        // 85: AH=42h with a flat buffer above 1 MiB (2 MiB + 1000h), 2 sectors
        // from LBA 9, with a caller GDTR (limit 1234h, base 00567890h) that
        // must survive; the GDTR after the call is stored at RES+110h.
        a.mov(word_ptr((RES + 0x120) as u32), 0x1234)?;
        a.mov(dword_ptr((RES + 0x122) as u32), 0x0056_7890)?;
        a.lgdt(dword_ptr((RES + 0x120) as u32))?;
        dap(&mut a, 0x18, 2, 0xFFFF_FFFF, 9)?;
        a.mov(dword_ptr(DAP as u32 + 0x10), FLAT_BUF as u32)?;
        a.mov(dword_ptr(DAP as u32 + 0x14), 0)?;
        a.mov(ah, 0x42)?;
        a.int(0x13)?;
        save(&mut a, &mut slot)?;
        a.sgdt(dword_ptr((RES + 0x110) as u32))?;
        a.set_label(&mut done)?;
        a.pop(es)?;
        a.pop(ds)?;
        a.popad()?;
        a.iret()?;
        a.assemble(PROBE)
    }
    build().unwrap()
}

/// A buffer above 1 MiB, reached through the DAP's 64-bit flat address.
const FLAT_BUF: usize = 0x20_1000;

#[test]
fn int13_services_on_an_ata_disk() {
    let (mut m, _serial) = machine();
    // 600 MiB: above 504 MiB, so AH=08h reports the LBA-assist translation.
    let sectors = 600 * 2048;
    let (disk, written) = PatternDisk::new(sectors);
    m.ata(0).unwrap().attach(0, Box::new(disk)).unwrap();
    let code = disk_probe();
    m.mem.ram_mut()[PROBE as usize..PROBE as usize + code.len()].copy_from_slice(&code);
    run_until(&mut m, 3 * TICK_NS);
    m.mem.ram_mut()[0x1C * 4..0x1C * 4 + 4].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    run_until(&mut m, 5 * TICK_NS);
    assert_eq!(rd16(&m, RES + 0x1FE), 0xBEEF, "probe did not run");
    let r = |i: usize| rd16(&m, RES + 2 * i);
    let cf = |i: usize| r(i + 1) & 1;

    assert_eq!(rd8(&m, 0x475), 1, "BDA 0475h: one hard disk");
    // INT 41h -> fixed disk parameter table of drive 80h: 609 cylinders, 32 heads, 63 sectors.
    let fdpt = (rd16(&m, 0x41 * 4 + 2) as usize) * 16 + rd16(&m, 0x41 * 4) as usize;
    assert_eq!(rd16(&m, fdpt), 609, "FDPT cylinders");
    assert_eq!(rd8(&m, fdpt + 2), 32, "FDPT heads");
    assert_eq!(rd8(&m, fdpt + 14), 63, "FDPT sectors per track");
    assert_eq!(rd8(&m, fdpt + 8), 0x08, "FDPT control: more than 8 heads");

    // AH=08h: 609 cylinders (max 608 = 260h), 32 heads, 63 sectors, 1 drive.
    assert_eq!((r(0) >> 8, cf(0)), (0, 0), "AH=08h status");
    assert_eq!(
        r(3),
        0x60BF,
        "AH=08h CX: cylinder low 60h, CL = 63 | (2 << 6)"
    );
    assert_eq!(r(4), 0x1F01, "AH=08h DX: max head 31, one drive");
    // AH=15h: fixed disk, CX:DX = 609 * 32 * 63 sectors.
    assert_eq!((r(5) >> 8, cf(5)), (0x03, 0), "AH=15h");
    assert_eq!((u32::from(r(8)) << 16) | u32::from(r(9)), 609 * 32 * 63);
    // AH=41h: EDD 3.0, functions bits 0 and 2.
    assert_eq!(
        (r(10) >> 8, cf(10), r(12), r(13)),
        (0x30, 0, 0xAA55, 0x0005)
    );
    // AH=48h: EDD 3.0 buffer.
    assert_eq!(cf(15), 0, "AH=48h CF");
    assert_eq!(rd16(&m, EDD_BUF), 0x42, "AH=48h size");
    assert_eq!(
        rd32(&m, EDD_BUF + 16) as u64 | (rd32(&m, EDD_BUF + 20) as u64) << 32,
        sectors,
        "AH=48h total sectors"
    );
    assert_eq!(rd16(&m, EDD_BUF + 24), 512, "bytes per sector");
    assert_eq!(rd16(&m, EDD_BUF + 0x1E), 0xBEDD, "device path key");
    assert_eq!(
        &m.mem.ram()[EDD_BUF + 0x24..EDD_BUF + 0x30],
        b"ISA ATA     "
    );
    assert_eq!(rd16(&m, EDD_BUF + 0x30), 0x1F0, "interface path: base port");
    let sum = m.mem.ram()[EDD_BUF + 0x1E..EDD_BUF + 0x42]
        .iter()
        .fold(0u8, |s, &b| s.wrapping_add(b));
    assert_eq!(sum, 0, "device path checksum");
    let dpte = (rd16(&m, EDD_BUF + 28) as usize) * 16 + rd16(&m, EDD_BUF + 26) as usize;
    assert_eq!(
        (rd16(&m, dpte), rd16(&m, dpte + 2)),
        (0x1F0, 0x3F6),
        "DPTE ports"
    );
    assert_eq!(rd8(&m, dpte + 4), 0xE0, "DPTE head prefix: LBA, master");
    assert_eq!(rd8(&m, dpte + 6), 14, "DPTE IRQ");
    // AH=42h: three sectors from LBA 1000.
    assert_eq!((r(20) >> 8, cf(20)), (0, 0), "AH=42h");
    for i in 0..3usize {
        assert_eq!(
            rd32(&m, BUF_A + 512 * i),
            1000 + i as u32,
            "AH=42h sector {i}"
        );
        assert_eq!(rd8(&m, BUF_A + 512 * i + 100), 0xA5);
    }
    // AH=02h: C=2 H=5 S=10 is LBA (2 * 32 + 5) * 63 + 9 = 4356; AL = sectors read.
    assert_eq!((r(25), cf(25)), (0x0002, 0), "AH=02h AX, CF");
    assert_eq!(rd32(&m, BUF_B), 4356);
    assert_eq!(rd32(&m, BUF_B + 512), 4357);
    // AH=43h wrote LBA 77 with the contents of LBA 1000.
    assert_eq!((r(30) >> 8, cf(30)), (0, 0), "AH=43h");
    assert_eq!(written.lock().unwrap().get(&77), Some(&pattern(1000)));
    // Past the end: AH=04h, CF=1, no blocks moved; AH=01h then reports 04h.
    assert_eq!((r(35) >> 8, cf(35)), (0x04, 1), "AH=42h past the end");
    assert_eq!(
        rd16(&m, RES + 0x100),
        0,
        "DAP block count after the failure"
    );
    assert_eq!((r(40), cf(40)), (0x0004, 1), "AH=01h: last status 04h");
    assert_eq!((r(45) >> 8, cf(45)), (0x01, 1), "AH=02h sector 0");
    assert_eq!((r(50) >> 8, cf(50)), (0x01, 1), "drive 81h absent");
    assert_eq!((r(55) >> 8, cf(55)), (0x01, 1), "AH=77h");
    // 64-bit flat buffer address.
    assert_eq!((r(60) >> 8, cf(60)), (0, 0), "AH=42h flat buffer");
    assert_eq!(rd32(&m, BUF_B + 0x400), 5);
    assert_eq!((r(65) >> 8, cf(65)), (0, 0), "AH=44h verify");
    assert_eq!(
        (r(70) >> 8, cf(70)),
        (0, 0),
        "AH=47h seek to the last sector"
    );
    assert_eq!((r(75) >> 8, cf(75)), (0, 0), "AH=00h reset");
    assert_eq!((r(80) >> 8, cf(80)), (0, 0), "read back");
    assert_eq!(
        rd32(&m, BUF_B + 0x1000),
        1000,
        "LBA 77 now holds what was written"
    );
    assert_eq!(rd8(&m, 0x474), 0, "BDA 0474h: last status");
    assert_eq!(
        (r(85) >> 8, cf(85)),
        (0, 0),
        "AH=42h to a flat buffer above 1 MiB"
    );
    assert_eq!(rd32(&m, FLAT_BUF), 9);
    assert_eq!(rd32(&m, FLAT_BUF + 512), 10);
    assert_eq!(
        (rd16(&m, RES + 0x110), rd32(&m, RES + 0x112) & 0x00FF_FFFF),
        (0x1234, 0x56_7890),
        "the caller's GDTR survives the unreal-mode transfer"
    );
}

/// INT 13h with every AH and random other registers never takes the emulator
/// down: the guest just gets an answer (or a guest-level fault).
#[test]
fn int13_with_arbitrary_registers_is_guest_behaviour() {
    fn build(seed: u32) -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut top = a.create_label();
        let mut done = a.create_label();
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.cmp(word_ptr(0x9000u32), 0xBEEF)?;
        a.je(done)?;
        a.mov(word_ptr(0x9000u32), 0xBEEF)?;
        a.mov(ebp, seed)?;
        a.mov(word_ptr(0x9002u32), 0)?;
        a.set_label(&mut top)?;
        // xorshift32 in EBP feeds AX, BX, CX, DX, SI, DI, ES, DS
        for r in [eax, ebx, ecx, edx, esi, edi] {
            a.mov(r, ebp)?;
            a.shl(ebp, 13)?;
            a.xor(ebp, r)?;
            a.mov(r, ebp)?;
            a.shr(r, 17)?;
            a.xor(ebp, r)?;
            a.mov(r, ebp)?;
            a.shl(r, 5)?;
            a.xor(ebp, r)?;
            a.mov(r, ebp)?;
        }
        a.push(ebp)?;
        a.push(ds)?;
        a.push(es)?;
        a.and(dl, 0x83)?; // mostly disks that exist
        a.mov(es, si)?;
        a.int(0x13)?;
        a.pop(es)?;
        a.pop(ds)?;
        a.pop(ebp)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.inc(word_ptr(0x9002u32))?;
        a.cmp(word_ptr(0x9002u32), 400)?;
        a.jb(top)?;
        a.set_label(&mut done)?;
        a.iret()?;
        a.assemble(PROBE)
    }
    let (mut m, _serial) = machine();
    m.ata(0)
        .unwrap()
        .attach(0, Box::new(MemImage::writable(vec![0x11; 256 * 512])))
        .unwrap();
    let code = build(0x1234_5678).unwrap();
    m.mem.ram_mut()[PROBE as usize..PROBE as usize + code.len()].copy_from_slice(&code);
    run_until(&mut m, 3 * TICK_NS);
    m.mem.ram_mut()[0x1C * 4..0x1C * 4 + 4].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    // Whatever the calls did to memory, the emulator keeps running.
    m.cfg.max_insns = Some(40 * TICK_NS);
    let exit = m.run();
    assert!(
        matches!(
            exit,
            RunExit::InstructionLimit | RunExit::HaltedForever | RunExit::TripleFault
        ),
        "{exit:?}"
    );
}
