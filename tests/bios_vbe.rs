//! vx86's BIOS VBE 2.0 services (INT 10h AH=4Fh) on the Bochs VBE device:
//! controller and mode information, setting linear-framebuffer and banked
//! modes, the window function, and the way back to text mode with a working
//! teletype.

use iced_x86::code_asm::*;
use vx86::machine::{Machine, MachineConfig, RunExit};

const TICK_NS: u64 = 54_925_493;
const PROBE: u64 = 0x8000;
const RES: usize = 0x9000;
const CTRL_INFO: usize = 0x20000; // 2000:0000
const MODE_INFO: usize = 0x21000; // 2100:0000, 256 bytes per query
const DAC_READ: usize = RES + 0x100;

fn rd8(m: &Machine, a: usize) -> u8 {
    m.mem.ram()[a]
}
fn rd16(m: &Machine, a: usize) -> u16 {
    u16::from_le_bytes([rd8(m, a), rd8(m, a + 1)])
}
fn rd32(m: &Machine, a: usize) -> u32 {
    u32::from_le_bytes([rd8(m, a), rd8(m, a + 1), rd8(m, a + 2), rd8(m, a + 3)])
}

fn probe() -> Vec<u8> {
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
        fn save(
            a: &mut CodeAssembler,
            slot: &mut usize,
            r: AsmRegister16,
        ) -> Result<(), IcedError> {
            a.mov(word_ptr((RES + 2 * *slot) as u32), r)?;
            *slot += 1;
            Ok(())
        }
        fn dispi(a: &mut CodeAssembler, slot: &mut usize, index: u32) -> Result<(), IcedError> {
            a.mov(dx, 0x1CEu32)?;
            a.mov(ax, index)?;
            a.out(dx, ax)?;
            a.inc(dx)?;
            a.in_(ax, dx)?;
            save(a, slot, ax)
        }
        // 0: 4F00h into a "VBE2" buffer
        a.mov(ax, (CTRL_INFO >> 4) as u32)?;
        a.mov(es, ax)?;
        a.mov(di, 0u32)?;
        a.mov(dword_ptr(0u32).es(), 0x3245_4256u32)?; // "VBE2"
        a.mov(ax, 0x4F00u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        // 1, 2, 3: 4F01h for 118h, 140h, and an unknown mode
        a.mov(ax, (MODE_INFO >> 4) as u32)?;
        a.mov(es, ax)?;
        for (mode, off) in [(0x118u32, 0u32), (0x140, 0x100), (0x199, 0x200)] {
            a.mov(di, off)?;
            a.mov(cx, mode)?;
            a.mov(ax, 0x4F01u32)?;
            a.int(0x10)?;
            save(&mut a, &mut slot, ax)?;
        }
        // 4: 4F02h 101h (640x480x8, banked); 5-8: DISPI xres, yres, bpp, enable
        a.mov(ax, 0x4F02u32)?;
        a.mov(bx, 0x0101u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        for idx in [1u32, 2, 3, 4] {
            dispi(&mut a, &mut slot, idx)?;
        }
        // The DAC the 8-bit mode loaded: entries 01h, 11h, 53h (R, G, B
        // through ports 3C7h/3C9h) at DAC_READ.
        for (k, entry) in [0x01u32, 0x11, 0x53].into_iter().enumerate() {
            a.mov(dx, 0x3C7u32)?;
            a.mov(al, entry)?;
            a.out(dx, al)?;
            a.mov(dx, 0x3C9u32)?;
            for c in 0..3u32 {
                a.in_(al, dx)?;
                a.mov(byte_ptr(DAC_READ as u32 + 3 * k as u32 + c), al)?;
            }
        }
        // 9: 4F05h window A to bank 1, then write A000:0010
        a.mov(ax, 0x4F05u32)?;
        a.mov(bx, 0x0000u32)?;
        a.mov(dx, 0x0001u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        a.mov(ax, 0xA000u32)?;
        a.mov(es, ax)?;
        a.mov(byte_ptr(0x10u32).es(), 0x5A)?;
        // 10, 11: 4F05h get -> DX
        a.mov(ax, 0x4F05u32)?;
        a.mov(bx, 0x0100u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        save(&mut a, &mut slot, dx)?;
        // 12, 13: 4F03h
        a.mov(ax, 0x4F03u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        save(&mut a, &mut slot, bx)?;
        // 14: 4F02h C118h (1024x768x24, LFB, keep memory); 15-18 DISPI regs
        a.mov(ax, 0x4F02u32)?;
        a.mov(bx, 0xC118u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        for idx in [1u32, 2, 3, 4] {
            dispi(&mut a, &mut slot, idx)?;
        }
        // 19, 20: 4F03h
        a.mov(ax, 0x4F03u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        save(&mut a, &mut slot, bx)?;
        // 21: 4F02h with a VGA mode (3): back to text; 22: DISPI enable
        a.mov(ax, 0x4F02u32)?;
        a.mov(bx, 0x0003u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        dispi(&mut a, &mut slot, 4)?;
        // 23: AH=0Fh; 24: teletype 'Z' at 5,5 then read it back with AH=08h; 25: cursor
        a.mov(ah, 0x0F)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        a.mov(ah, 0x02)?;
        a.mov(bh, 0)?;
        a.mov(dx, 0x0505u32)?;
        a.int(0x10)?;
        a.mov(ax, 0x0E5Au32)?;
        a.int(0x10)?;
        a.mov(ah, 0x02)?;
        a.mov(bh, 0)?;
        a.mov(dx, 0x0505u32)?;
        a.int(0x10)?;
        a.mov(ah, 0x08)?;
        a.mov(bh, 0)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
        // 26: unsupported VBE function 4F77h
        a.mov(ax, 0x4F77u32)?;
        a.int(0x10)?;
        save(&mut a, &mut slot, ax)?;
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
fn vbe_2_modes_on_the_bochs_vbe_device() {
    let mut m = Machine::new(MachineConfig {
        ram: 32 << 20,
        ..MachineConfig::default()
    })
    .unwrap();
    vx86::boot::builtin::load_bios(&mut m).unwrap();
    let code = probe();
    m.mem.ram_mut()[PROBE as usize..PROBE as usize + code.len()].copy_from_slice(&code);
    m.cfg.max_insns = Some(3 * TICK_NS);
    assert_eq!(m.run(), RunExit::InstructionLimit);
    m.mem.ram_mut()[0x1C * 4..0x1C * 4 + 4].copy_from_slice(&[0x00, 0x80, 0x00, 0x00]);
    m.cfg.max_insns = Some(5 * TICK_NS);
    assert_eq!(m.run(), RunExit::InstructionLimit);
    assert_eq!(rd16(&m, RES + 0x1FE), 0xBEEF, "probe did not run");
    let banked_byte = m.vga().unwrap().lfb_read(0x1_0010);
    let r = |i: usize| rd16(&m, RES + 2 * i);

    // Controller information.
    assert_eq!(r(0), 0x004F, "4F00h");
    assert_eq!(&m.mem.ram()[CTRL_INFO..CTRL_INFO + 4], b"VESA");
    assert_eq!(rd16(&m, CTRL_INFO + 4), 0x0200, "VBE 2.0");
    assert_eq!(rd16(&m, CTRL_INFO + 18), 256, "16 MiB in 64 KiB blocks");
    let far = |a: usize| (rd16(&m, a + 2) as usize) * 16 + rd16(&m, a) as usize;
    let oem = far(CTRL_INFO + 6);
    assert_eq!(&m.mem.ram()[oem..oem + 4], b"vx86");
    let list = far(CTRL_INFO + 14);
    let modes: Vec<u16> = (0..)
        .map(|i| rd16(&m, list + 2 * i))
        .take_while(|&w| w != 0xFFFF)
        .take(64)
        .collect();
    for want in [
        0x101u16, 0x111, 0x112, 0x140, 0x103, 0x114, 0x115, 0x141, 0x105, 0x117, 0x118, 0x142,
    ] {
        assert!(
            modes.contains(&want),
            "mode {want:#x} missing from {modes:x?}"
        );
    }

    // Mode information: 1024x768x24 and 640x480x32.
    assert_eq!((r(1), r(2), r(3)), (0x004F, 0x004F, 0x014F), "4F01h");
    let mi = MODE_INFO;
    assert_eq!(
        rd16(&m, mi) & 0x9B,
        0x9B,
        "attributes: supported, colour, graphics, LFB"
    );
    assert_eq!((rd16(&m, mi + 18), rd16(&m, mi + 20)), (1024, 768));
    assert_eq!(rd8(&m, mi + 25), 24, "bits per pixel");
    assert_eq!(rd16(&m, mi + 16), 1024 * 3, "bytes per scan line");
    assert_eq!(rd8(&m, mi + 27), 6, "direct colour");
    assert_eq!(
        &m.mem.ram()[mi + 31..mi + 37],
        &[8, 16, 8, 8, 8, 0],
        "RGB masks"
    );
    assert_eq!(
        rd32(&m, mi + 40) as u64,
        vx86::devices::vga::LFB_BASE,
        "PhysBasePtr is the device's LFB"
    );
    assert_eq!(rd16(&m, mi + 8), 0xA000, "window A segment");
    let mi32 = MODE_INFO + 0x100;
    assert_eq!(
        (rd16(&m, mi32 + 18), rd16(&m, mi32 + 20), rd8(&m, mi32 + 25)),
        (640, 480, 32)
    );
    assert_eq!(rd16(&m, mi32 + 16), 640 * 4);
    assert_eq!(
        &m.mem.ram()[mi32 + 37..mi32 + 39],
        &[8, 24],
        "reserved byte"
    );
    assert_eq!(
        rd8(&m, mi32 + 29),
        ((16u32 << 20) / (640 * 4 * 480) - 1) as u8,
        "image pages"
    );

    // 101h banked: DISPI 640x480x8, enabled without the LFB bit.
    assert_eq!(r(4), 0x004F, "4F02h 101h");
    assert_eq!((r(5), r(6), r(7)), (640, 480, 8));
    assert_eq!(r(8) & 0x41, 0x01, "enabled, no LFB");
    // 8 bpp: the mode 13h palette (6-bit DAC values): 01h EGA blue, 11h the
    // second grey, 53h cube entry 51 = red step 1, green 2, blue 3.
    assert_eq!(
        &m.mem.ram()[DAC_READ..DAC_READ + 9],
        &[0, 0, 0x2A, 7, 7, 7, 12, 25, 38],
        "DAC after 4F02h 101h"
    );
    assert_eq!(
        (r(9), r(10), r(11)),
        (0x004F, 0x004F, 1),
        "4F05h set / get bank 1"
    );
    assert_eq!((r(12), r(13)), (0x004F, 0x0101), "4F03h");
    // C118h: LFB and keep memory; the byte written through bank 1 survived.
    assert_eq!(r(14), 0x004F, "4F02h C118h");
    assert_eq!((r(15), r(16), r(17)), (1024, 768, 24));
    assert_eq!(r(18) & 0xC1, 0xC1, "enabled, LFB, no clear");
    assert_eq!(banked_byte, 0x5A, "bank 1 offset 10h = VRAM 10010h");
    assert_eq!((r(19), r(20)), (0x004F, 0x4118), "4F03h with the LFB bit");
    // Back to text mode 3: DISPI off, teletype works.
    assert_eq!(r(21), 0x004F, "4F02h 3");
    assert_eq!(r(22) & 1, 0, "DISPI disabled");
    assert_eq!(r(23) & 0xFF, 0x03, "AH=0Fh: mode 3");
    assert_eq!(r(24) & 0xFF, u16::from(b'Z'), "teletype after leaving VBE");
    assert_ne!(r(26), 0x004F, "4F77h is not supported");
    assert!(
        m.vga().unwrap().text_rows().is_some(),
        "text mode on the VGA"
    );
}
