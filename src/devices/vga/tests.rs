//! Tests against the IBM VGA reference behaviour: pixels, register values,
//! plane bytes.

use super::regs::*;
use super::vbe::*;
use super::*;

const FRAME_NS: u64 = 449 * LINE_NS; // mode 03h: Vertical Total 0x1BF + 2

fn outb(v: &mut Vga, port: u16, val: u8) {
    v.io_write(port, 1, val as u32, 0);
}

fn inb(v: &mut Vga, port: u16) -> u8 {
    v.io_read(port, 1, 0) as u8
}

fn text_vga() -> Vga {
    let mut v = Vga::new();
    v.set_text_mode_80x25();
    v
}

fn put_char(v: &mut Vga, row: u32, col: u32, ch: u8, attr: u8) {
    let at = 0xB8000 + (row * 80 + col) * 2;
    v.mem_write(at, ch);
    v.mem_write(at + 1, attr);
}

fn vbe_write(v: &mut Vga, index: u16, val: u16) {
    v.io_write(PORT_VBE_INDEX, 2, index as u32, 0);
    v.io_write(PORT_VBE_DATA, 2, val as u32, 0);
}

fn vbe_read(v: &mut Vga, index: u16) -> u16 {
    v.io_write(PORT_VBE_INDEX, 2, index as u32, 0);
    v.io_read(PORT_VBE_DATA, 2, 0) as u16
}

/// EGA colours through the default palette, as 0x00RRGGBB.
const BLUE: u32 = 0x0000AA;
const YELLOW: u32 = 0xFFFF55;
const WHITE: u32 = 0xFFFFFF;
const RED: u32 = 0xAA0000;
const DARK_GREY: u32 = 0x555555;

/// Asserts the 9x16 cell at (row, col) shows `ch` from the built-in font in
/// `fg` on `bg`, with the cursor (all dots fg) on scan lines in `cursor`.
fn assert_cell(f: &Frame, row: u32, col: u32, ch: u8, fg: u32, bg: u32, cursor: &[u32]) {
    for y in 0..16u32 {
        let glyph = FONT_8X16[ch as usize * 16 + y as usize];
        for x in 0..9u32 {
            let on = cursor.contains(&y) || (x < 8 && glyph & (0x80 >> x) != 0);
            let want = if on { fg } else { bg };
            let px = f.pixels[((row * 16 + y) * f.width + col * 9 + x) as usize];
            assert_eq!(px, want, "char {ch:#x} cell ({row},{col}) dot ({x},{y})");
        }
    }
}

#[test]
fn font_has_cp437_glyphs() {
    let glyph = |c: usize| &FONT_8X16[c * 16..c * 16 + 16];
    assert!(glyph(b'A' as usize).iter().any(|&b| b != 0));
    assert!(
        glyph(0xDB).iter().all(|&b| b == 0xFF),
        "0xDB is the full block"
    );
    assert!(glyph(b' ' as usize).iter().all(|&b| b == 0));
    // 'A' of font8x8 is symmetric about its centre columns after bit reversal:
    // its top row 0x0C (LSB-left) becomes 0x30 (MSB-left).
    assert_eq!(glyph(b'A' as usize)[0], 0x30);
    assert_eq!(glyph(b'A' as usize)[1], 0x30, "rows are doubled");
    // Box drawing: 0xC4 is a horizontal line through the cell.
    assert!(glyph(0xC4).contains(&0xFF));
}

#[test]
fn text_mode_renders_glyphs_attributes_and_cursor() {
    let mut v = text_vga();
    put_char(&mut v, 0, 0, b'A', 0x1E); // yellow on blue
    put_char(&mut v, 0, 1, b'g', 0x4F); // white on red
    put_char(&mut v, 1, 0, 0xC4, 0x07); // box-drawing: 9th dot replicated
    let mut f = Frame::default();
    assert!(v.render(&mut f, 0));
    assert_eq!((f.width, f.height), (720, 400));
    // Cursor at location 0, scan lines 13-14 (Cursor Start 0x0D, End 0x0E),
    // visible in the first half of the blink period.
    assert_cell(&f, 0, 0, b'A', YELLOW, BLUE, &[13, 14]);
    assert_cell(&f, 0, 1, b'g', WHITE, RED, &[]);
    // Line Graphics Enable: the 9th dot of 0xC0-0xDF copies the 8th.
    for y in 0..16u32 {
        let g = FONT_8X16[0xC4 * 16 + y as usize];
        let px9 = f.pixels[((16 + y) * 720 + 8) as usize];
        assert_eq!(px9 == 0xAAAAAA, g & 1 != 0, "scan line {y}");
    }
    // Second half of the cursor blink period (frames 8-15): no cursor.
    assert!(v.render(&mut f, 8 * FRAME_NS + 1));
    assert_cell(&f, 0, 0, b'A', YELLOW, BLUE, &[]);
}

#[test]
fn text_cursor_follows_location_and_shape() {
    let mut v = text_vga();
    put_char(&mut v, 2, 5, b' ', 0x07);
    let loc = 2 * 80 + 5;
    outb(&mut v, 0x3D4, 0x0E);
    outb(&mut v, 0x3D5, (loc >> 8) as u8);
    outb(&mut v, 0x3D4, 0x0F);
    outb(&mut v, 0x3D5, loc as u8);
    outb(&mut v, 0x3D4, 0x0A);
    outb(&mut v, 0x3D5, 0x00); // block cursor, scan lines 0..=15
    outb(&mut v, 0x3D4, 0x0B);
    outb(&mut v, 0x3D5, 0x0F);
    let mut f = Frame::default();
    v.render(&mut f, 0);
    let all: Vec<u32> = (0..16).collect();
    assert_cell(&f, 2, 5, b' ', 0xAAAAAA, 0, &all);
    assert_cell(&f, 0, 0, b' ', 0xAAAAAA, 0, &[]);
    // Cursor Start bit 5 turns it off.
    outb(&mut v, 0x3D4, 0x0A);
    outb(&mut v, 0x3D5, 0x20);
    v.render(&mut f, 0);
    assert_cell(&f, 2, 5, b' ', 0xAAAAAA, 0, &[]);
}

#[test]
fn text_blink_versus_intensity() {
    let mut v = text_vga();
    put_char(&mut v, 0, 0, 0xDB, 0x8F); // full block, blink, white on black
    let mut f = Frame::default();
    v.render(&mut f, 20 * FRAME_NS); // past the cursor's on phase? cursor is at 0
                                     // Frames 16-31: the blink phase is off, the character shows background.
    let px = f.pixels[(3 * 720 + 3) as usize];
    assert_eq!(px, 0x000000);
    assert!(v.render(&mut f, 33 * FRAME_NS));
    assert_eq!(f.pixels[(3 * 720 + 3) as usize], WHITE);
    // Blink disabled: bit 7 is background intensity; full block shows fg, and a
    // space shows the bright background.
    outb(&mut v, 0x3DA, 0); // (write = feature control; harmless)
    inb(&mut v, 0x3DA);
    outb(&mut v, 0x3C0, 0x10 | ATTR_INDEX_PAS);
    outb(&mut v, 0x3C0, 0x0C & !ATTRMODE_BLINK);
    put_char(&mut v, 0, 1, b' ', 0x8F);
    v.render(&mut f, 20 * FRAME_NS);
    assert_eq!(f.pixels[(3 * 720 + 3) as usize], WHITE);
    assert_eq!(f.pixels[(3 * 720 + 9 + 3) as usize], DARK_GREY);
}

#[test]
fn text_uses_font_loaded_into_plane2_by_guest() {
    let mut v = text_vga();
    put_char(&mut v, 0, 0, b'A', 0x07);
    // The BIOS font-load sequence: sequential addressing, plane 2 only,
    // A0000 window, no odd/even.
    outb(&mut v, 0x3C4, 0x02);
    outb(&mut v, 0x3C5, 0x04);
    outb(&mut v, 0x3C4, 0x04);
    outb(&mut v, 0x3C5, 0x06);
    outb(&mut v, 0x3CE, 0x05);
    outb(&mut v, 0x3CF, 0x00);
    outb(&mut v, 0x3CE, 0x06);
    outb(&mut v, 0x3CF, 0x04);
    for row in 0..16 {
        v.mem_write(0xA0000 + b'A' as u32 * 32 + row, 0b1010_0101);
    }
    // Back to text addressing.
    outb(&mut v, 0x3C4, 0x02);
    outb(&mut v, 0x3C5, 0x03);
    outb(&mut v, 0x3C4, 0x04);
    outb(&mut v, 0x3C5, 0x02);
    outb(&mut v, 0x3CE, 0x05);
    outb(&mut v, 0x3CF, 0x10);
    outb(&mut v, 0x3CE, 0x06);
    outb(&mut v, 0x3CF, 0x0E);
    let mut f = Frame::default();
    v.render(&mut f, 8 * FRAME_NS);
    let row: Vec<u32> = (0..9).map(|x| f.pixels[(5 * 720 + x) as usize]).collect();
    let g = 0xAAAAAA;
    assert_eq!(row, vec![g, 0, g, 0, 0, g, 0, g, 0]);
    // Text memory was not disturbed by the font load.
    assert_eq!(v.mem_read(0xB8000), b'A');
}

#[test]
fn mode13h_pixel_goes_through_dac() {
    let mut v = Vga::new();
    v.set_mode_regs(&MODE_13H);
    outb(&mut v, 0x3C8, 5);
    for c in [63, 0, 32] {
        outb(&mut v, 0x3C9, c);
    }
    v.mem_write(0xA0000 + 10 * 320 + 7, 5);
    let mut f = Frame::default();
    assert!(v.render(&mut f, 0));
    // 320x200 shown as 640x400 dots: each pixel is 2x2.
    assert_eq!((f.width, f.height), (640, 400));
    for (x, y) in [(14, 20), (15, 20), (14, 21), (15, 21)] {
        assert_eq!(f.pixels[y * 640 + x], 0xFF0082);
    }
    assert_eq!(f.pixels[20 * 640 + 13], 0);
    assert_eq!(f.pixels[20 * 640 + 16], 0);
    // Read back through chain-4.
    assert_eq!(v.mem_read(0xA0000 + 10 * 320 + 7), 5);
}

/// Every pixel of a full 320x200 mode 13h screen shows, including rows whose
/// CRTC address has MA13-12 set (rows 52 and below, where a chain-4 mapping
/// without the doubleword rotation left the bottom three quarters black).
#[test]
fn mode13h_full_screen_every_row_visible() {
    let mut v = Vga::new();
    v.set_mode_regs(&MODE_13H);
    outb(&mut v, 0x3C8, 1);
    for c in [63, 63, 63] {
        outb(&mut v, 0x3C9, c);
    }
    for y in 0..200u32 {
        for x in 0..320u32 {
            v.mem_write(0xA0000 + y * 320 + x, 1);
        }
    }
    let mut f = Frame::default();
    assert!(v.render(&mut f, 0));
    for y in (0..400).step_by(7) {
        for x in (0..640).step_by(13) {
            assert_eq!(f.pixels[y * 640 + x], 0xFFFFFF, "dot ({x},{y})");
        }
    }
    assert_eq!(v.mem_read(0xA0000 + 199 * 320 + 319), 1);
}

#[test]
fn chain4_layout_matches_unchained_planes() {
    let mut v = Vga::new();
    v.set_mode_regs(&MODE_13H);
    v.mem_write(0xA0000 + 5, 0x77);
    // Chain-4 off (mode X): the byte is in plane 1 at address 4.
    outb(&mut v, 0x3C4, 0x04);
    outb(&mut v, 0x3C5, 0x06);
    outb(&mut v, 0x3CE, 0x04);
    outb(&mut v, 0x3CF, 0x01);
    assert_eq!(v.mem_read(0xA0004), 0x77);
    outb(&mut v, 0x3CF, 0x00);
    assert_eq!(v.mem_read(0xA0004), 0x00);
}

/// Mode 12h with the graphics-controller registers from `gc` (index, value).
fn planar_vga(gc: &[(u8, u8)]) -> Vga {
    let mut v = Vga::new();
    v.set_mode_regs(&MODE_12H);
    v.load_ega_palette();
    for &(i, val) in gc {
        outb(&mut v, 0x3CE, i);
        outb(&mut v, 0x3CF, val);
    }
    v
}

/// Plane bytes at `addr` read with read mode 0 and each Read Map Select.
fn planes_at(v: &mut Vga, addr: u32) -> [u8; 4] {
    let mut out = [0; 4];
    outb(v, 0x3CE, GC_MODE as u8);
    let mode = inb(v, 0x3CF);
    outb(v, 0x3CF, mode & !GCMODE_READ_MODE_1);
    for (p, o) in out.iter_mut().enumerate() {
        outb(v, 0x3CE, GC_READ_MAP_SELECT as u8);
        outb(v, 0x3CF, p as u8);
        *o = v.mem_read(addr);
    }
    outb(v, 0x3CE, GC_MODE as u8);
    outb(v, 0x3CF, mode);
    out
}

#[test]
fn write_mode0_set_reset_rotate_function_and_bit_mask() {
    // Set/reset on all planes: colour 0b1010.
    let mut v = planar_vga(&[(0, 0b1010), (1, 0x0F)]);
    v.mem_write(0xA0000, 0x12);
    assert_eq!(planes_at(&mut v, 0xA0000), [0x00, 0xFF, 0x00, 0xFF]);

    // Enable Set/Reset only for plane 0; others take the rotated CPU byte
    // (rotate right by 4), masked by Bit Mask 0xF0 over the latches.
    let mut v = planar_vga(&[(0, 0b0001), (1, 0b0001), (3, 0x04), (8, 0xF0)]);
    v.mem_write(0xA0000, 0x3C); // latches are zero
    assert_eq!(planes_at(&mut v, 0xA0000), [0xF0, 0xC0, 0xC0, 0xC0]);

    // XOR function against the latches loaded by a read.
    let mut v = planar_vga(&[(3, 0b11 << 3)]);
    v.mem_write(0xA0010, 0xFF);
    v.mem_read(0xA0010); // latch = 0xFF in every plane
    v.mem_write(0xA0010, 0x0F);
    assert_eq!(planes_at(&mut v, 0xA0010), [0xF0; 4]);

    // Map Mask limits the planes written.
    let mut v = planar_vga(&[]);
    outb(&mut v, 0x3C4, 0x02);
    outb(&mut v, 0x3C5, 0b0100);
    v.mem_write(0xA0020, 0x5A);
    assert_eq!(planes_at(&mut v, 0xA0020), [0, 0, 0x5A, 0]);
}

#[test]
fn write_mode1_copies_latches() {
    let mut v = planar_vga(&[(0, 0b0110), (1, 0x0F)]);
    v.mem_write(0xA0100, 0);
    outb(&mut v, 0x3CE, 1);
    outb(&mut v, 0x3CF, 0);
    outb(&mut v, 0x3CE, 5);
    outb(&mut v, 0x3CF, 0x01);
    v.mem_read(0xA0100);
    v.mem_write(0xA0200, 0x00);
    assert_eq!(planes_at(&mut v, 0xA0200), [0x00, 0xFF, 0xFF, 0x00]);
}

#[test]
fn write_mode2_colour_with_bit_mask() {
    let mut v = planar_vga(&[(5, 0x02), (8, 0b0000_1111)]);
    v.mem_write(0xA0000, 0b0101);
    assert_eq!(planes_at(&mut v, 0xA0000), [0x0F, 0x00, 0x0F, 0x00]);
    // Render: the first four pixels keep colour 0, the next four colour 5
    // (magenta through the EGA palette).
    let mut f = Frame::default();
    v.render(&mut f, 0);
    assert_eq!((f.width, f.height), (640, 480));
    assert_eq!(f.pixels[3], 0);
    assert_eq!(f.pixels[4], 0xAA00AA);
    assert_eq!(f.pixels[7], 0xAA00AA);
    assert_eq!(f.pixels[8], 0);
}

#[test]
fn write_mode3_rotated_data_masks_set_reset() {
    let mut v = planar_vga(&[(0, 0b0011), (5, 0x03), (8, 0b0011_1100)]);
    v.mem_write(0xA0000, 0xF0);
    // Effective mask = 0xF0 & 0x3C = 0x30.
    assert_eq!(planes_at(&mut v, 0xA0000), [0x30, 0x30, 0x00, 0x00]);
    // Light cyan (colour 11) pixels for a full byte.
    let mut v = planar_vga(&[(0, 0b1011), (5, 0x03)]);
    v.mem_write(0xA0000 + 80 * 2, 0xFF);
    let mut f = Frame::default();
    v.render(&mut f, 0);
    assert_eq!(f.pixels[2 * 640], 0x55FFFF);
}

#[test]
fn read_mode1_colour_compare() {
    let mut v = planar_vga(&[(5, 0x02)]);
    // Pixels 0-7 of byte 0: colours 10, 10, 3, 3, 10, 0, 10, 2.
    let colours = [10u8, 10, 3, 3, 10, 0, 10, 2];
    for (i, &c) in colours.iter().enumerate() {
        outb(&mut v, 0x3CE, 8);
        outb(&mut v, 0x3CF, 0x80 >> i);
        v.mem_read(0xA0000); // load latches so other pixels survive
        v.mem_write(0xA0000, c);
    }
    outb(&mut v, 0x3CE, 5);
    outb(&mut v, 0x3CF, 0x08); // read mode 1
    outb(&mut v, 0x3CE, 2);
    outb(&mut v, 0x3CF, 10);
    outb(&mut v, 0x3CE, 7);
    outb(&mut v, 0x3CF, 0x0F);
    assert_eq!(v.mem_read(0xA0000), 0b1100_1010);
    // Don't care about planes 1 and 3: colour 2 (0b0010) now matches 10 too,
    // and colour 0 matches as well (only plane 0 and 2 compared: both 0).
    outb(&mut v, 0x3CF, 0b0101);
    assert_eq!(v.mem_read(0xA0000), 0b1100_1111);
}

#[test]
fn memory_map_select_windows() {
    let mut v = planar_vga(&[(6, 0x05)]); // A0000-AFFFF
    v.mem_write(0xB8000, 0x11);
    assert_eq!(v.mem_read(0xB8000), 0xFF, "outside the window");
    let mut t = text_vga(); // B8000-BFFFF
    t.mem_write(0xA0000, 0x22);
    assert_eq!(t.mem_read(0xA0000), 0xFF);
    t.mem_write(0xB8002, b'Z');
    assert_eq!(t.mem_read(0xB8002), b'Z');
    // Odd/even: the attribute byte lives in plane 1 at the even address.
    t.mem_write(0xB8003, 0x4E);
    assert_eq!(t.planes[PLANE_SIZE + 2], 0x4E);
    assert_eq!(t.planes[2], b'Z');
}

#[test]
fn attribute_flip_flop_and_palette_address_source() {
    let mut v = Vga::new();
    inb(&mut v, 0x3DA); // flip-flop -> index
    outb(&mut v, 0x3C0, 0x03); // index 3, PAS = 0
    outb(&mut v, 0x3C0, 0x2A); // data
    assert_eq!(inb(&mut v, 0x3C0), 0x03);
    assert_eq!(inb(&mut v, 0x3C1), 0x2A);
    // The flip-flop is back at "index": this write selects Mode Control.
    outb(&mut v, 0x3C0, 0x10 | ATTR_INDEX_PAS);
    assert_eq!(inb(&mut v, 0x3C0), 0x30);
    // Reading Input Status 1 resets a flip-flop left at "data".
    inb(&mut v, 0x3DA);
    outb(&mut v, 0x3C0, 0x03 | ATTR_INDEX_PAS);
    outb(&mut v, 0x3C0, 0x15); // palette write ignored while PAS = 1
    outb(&mut v, 0x3C0, 0x03);
    assert_eq!(inb(&mut v, 0x3C1), 0x2A);
    // Mono addressing: 0x3DA no longer answers (nor resets), 0x3BA does.
    outb(&mut v, 0x3C2, 0x66); // flip-flop is at "data" after the index write
    assert_eq!(inb(&mut v, 0x3DA), 0xFF);
    outb(&mut v, 0x3C0, 0x11); // still data: register 3
    assert_eq!(inb(&mut v, 0x3C1), 0x11);
    outb(&mut v, 0x3C0, 0x04); // index 4; flip-flop now "data"
    inb(&mut v, 0x3BA);
    outb(&mut v, 0x3C0, 0x05); // index again after the reset
    assert_eq!(inb(&mut v, 0x3C0), 0x05);
}

#[test]
fn dac_read_write_auto_increment() {
    let mut v = Vga::new();
    outb(&mut v, 0x3C8, 10);
    assert_eq!(inb(&mut v, 0x3C7), DAC_STATE_WRITE);
    for c in [1, 2, 3, 4, 5, 0xFF] {
        outb(&mut v, 0x3C9, c);
    }
    assert_eq!(inb(&mut v, 0x3C8), 12, "two entries written");
    outb(&mut v, 0x3C7, 10);
    assert_eq!(inb(&mut v, 0x3C7), DAC_STATE_READ);
    let got: Vec<u8> = (0..6).map(|_| inb(&mut v, 0x3C9)).collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5, 0x3F], "6-bit components");
    // The read index advanced to 12 (entry 12 is black).
    assert_eq!(inb(&mut v, 0x3C9), 0);
    // Write index wraps from 255 to 0.
    outb(&mut v, 0x3C8, 255);
    for _ in 0..6 {
        outb(&mut v, 0x3C9, 7);
    }
    outb(&mut v, 0x3C7, 0);
    assert_eq!(inb(&mut v, 0x3C9), 7);
}

#[test]
fn sequencer_gc_crtc_index_data_and_word_writes() {
    let mut v = Vga::new();
    // `out dx, ax` at 0x3C4: index in AL, data in AH.
    v.io_write(0x3C4, 2, 0x0F02, 0);
    assert_eq!(inb(&mut v, 0x3C5), 0x0F);
    v.io_write(0x3CE, 2, 0x4005, 0);
    assert_eq!(v.io_read(0x3CE, 2, 0), 0x4005);
    v.io_write(0x3D4, 2, 0x550C, 0);
    assert_eq!(inb(&mut v, 0x3D5), 0x55);
    assert_eq!(inb(&mut v, 0x3CC), MISC_IO_ADDRESS_SELECT);
    // Unused port in the range reads as ones.
    assert_eq!(v.io_read(0x3B0, 1, 0), 0xFF);
    assert_eq!(
        v.io_read(0x3DE, 4, 0) >> 16,
        0xFFFF,
        "0x3E0/0x3E1 are not VGA ports"
    );
    assert_eq!(v.io_read(PORT_VBE_DATA, 4, 0) >> 16, 0xFFFF);
}

#[test]
fn crtc_protect_bit_guards_registers_0_to_7() {
    let mut v = Vga::new();
    v.set_mode_regs(&MODE_03H); // reg 0x11 = 0x8E: protected
    outb(&mut v, 0x3D4, 0x01);
    outb(&mut v, 0x3D5, 0x10);
    assert_eq!(inb(&mut v, 0x3D5), 0x4F);
    outb(&mut v, 0x3D4, 0x07);
    outb(&mut v, 0x3D5, 0x00);
    assert_eq!(inb(&mut v, 0x3D5), 0x1F & !OVERFLOW_LINE_COMPARE_8);
    outb(&mut v, 0x3D4, 0x11);
    outb(&mut v, 0x3D5, 0x0E);
    outb(&mut v, 0x3D4, 0x01);
    outb(&mut v, 0x3D5, 0x10);
    assert_eq!(inb(&mut v, 0x3D5), 0x10);
}

#[test]
fn vbe_800x600x32_lfb_pixel() {
    let mut v = Vga::new();
    assert_eq!(vbe_read(&mut v, VBE_DISPI_INDEX_ID), 0xB0C5);
    assert_eq!(vbe_read(&mut v, VBE_DISPI_INDEX_VIDEO_MEMORY_64K), 256);
    vbe_write(&mut v, VBE_DISPI_INDEX_XRES, 800);
    vbe_write(&mut v, VBE_DISPI_INDEX_YRES, 600);
    vbe_write(&mut v, VBE_DISPI_INDEX_BPP, 32);
    vbe_write(
        &mut v,
        VBE_DISPI_INDEX_ENABLE,
        VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED,
    );
    assert_eq!(vbe_read(&mut v, VBE_DISPI_INDEX_VIRT_WIDTH), 800);
    assert_eq!(
        vbe_read(&mut v, VBE_DISPI_INDEX_VIRT_HEIGHT) as usize,
        VRAM_SIZE / 3200
    );
    // Resolution is locked while enabled.
    vbe_write(&mut v, VBE_DISPI_INDEX_XRES, 1024);
    assert_eq!(vbe_read(&mut v, VBE_DISPI_INDEX_XRES), 800);
    let off = (20 * 800 + 10) * 4;
    for (i, b) in [0x56, 0x34, 0x12, 0x00].into_iter().enumerate() {
        v.lfb_write(off + i as u32, b);
    }
    assert_eq!(v.lfb_read(off), 0x56);
    let mut f = Frame::default();
    assert!(v.render(&mut f, 0));
    assert_eq!((f.width, f.height), (800, 600));
    assert_eq!(f.pixels[20 * 800 + 10], 0x123456);
    assert_eq!(f.pixels[20 * 800 + 11], 0);
    // Y_OFFSET pans the virtual screen: the pixel moves up 5 lines.
    vbe_write(&mut v, VBE_DISPI_INDEX_Y_OFFSET, 5);
    assert!(v.render(&mut f, 0));
    assert_eq!(f.pixels[15 * 800 + 10], 0x123456);
    // Banked window: bank 1 at A0000 is VRAM 0x10000.
    vbe_write(&mut v, VBE_DISPI_INDEX_BANK, 1);
    v.mem_write(0xA0004, 0x99);
    assert_eq!(v.lfb_read(0x10004), 0x99);
    assert_eq!(v.mem_read(0xA0004), 0x99);
    // GETCAPS reports the maxima.
    vbe_write(
        &mut v,
        VBE_DISPI_INDEX_ENABLE,
        VBE_DISPI_ENABLED | VBE_DISPI_GETCAPS | VBE_DISPI_NOCLEARMEM,
    );
    assert_eq!(vbe_read(&mut v, VBE_DISPI_INDEX_XRES), VBE_DISPI_MAX_XRES);
}

#[test]
fn vbe_16bpp_and_8bpp_formats() {
    let mut v = Vga::new();
    vbe_write(&mut v, VBE_DISPI_INDEX_XRES, 64);
    vbe_write(&mut v, VBE_DISPI_INDEX_YRES, 8);
    vbe_write(&mut v, VBE_DISPI_INDEX_BPP, 16);
    vbe_write(&mut v, VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
    v.lfb_write_bytes(2, &0xF800u16.to_le_bytes()); // pure red, pixel 1
    let mut f = Frame::default();
    v.render(&mut f, 0);
    assert_eq!(f.pixels[1], 0xFF0000);
    vbe_write(&mut v, VBE_DISPI_INDEX_ENABLE, 0);
    vbe_write(&mut v, VBE_DISPI_INDEX_BPP, 8);
    vbe_write(
        &mut v,
        VBE_DISPI_INDEX_ENABLE,
        VBE_DISPI_ENABLED | VBE_DISPI_8BIT_DAC,
    );
    outb(&mut v, 0x3C8, 9);
    for c in [0x80, 0x81, 0x82] {
        outb(&mut v, 0x3C9, c);
    }
    v.lfb_write(3, 9);
    v.render(&mut f, 0);
    assert_eq!(f.pixels[3], 0x808182, "8-bit DAC components");
}

#[test]
fn dirty_tracking_skips_unchanged_frames() {
    let mut v = text_vga();
    let mut f = Frame::default();
    assert!(v.render(&mut f, 0));
    assert!(!v.render(&mut f, 0), "nothing changed");
    assert!(!v.render(&mut f, FRAME_NS), "same cursor phase");
    put_char(&mut v, 3, 3, b'x', 0x07);
    assert!(v.render(&mut f, FRAME_NS));
    assert!(!v.render(&mut f, 2 * FRAME_NS));
    // Register write.
    outb(&mut v, 0x3D4, 0x0C);
    outb(&mut v, 0x3D5, 0x00);
    assert!(v.render(&mut f, 2 * FRAME_NS));
    // Cursor blink phase flips after 8 frames.
    assert!(v.render(&mut f, 8 * FRAME_NS));
    assert!(!v.render(&mut f, 9 * FRAME_NS));
    // Reads do not dirty.
    v.mem_read(0xB8000);
    inb(&mut v, 0x3DA);
    assert!(!v.render(&mut f, 9 * FRAME_NS));
}

#[test]
fn input_status1_retrace_toggles_with_time() {
    let mut v = text_vga();
    let status = |v: &mut Vga, t: u64| v.io_read(0x3DA, 1, t) as u8;
    // Mode 03h: Vertical Retrace Start 0x19C (line 412), End low nibble 0xE.
    let line = |n: u64| n * LINE_NS;
    assert_eq!(status(&mut v, line(0)) & STATUS1_VERTICAL_RETRACE, 0);
    assert_eq!(status(&mut v, line(0)) & STATUS1_DISPLAY_DISABLED, 0);
    assert_ne!(
        status(&mut v, line(0) + LINE_NS * 9 / 10) & STATUS1_DISPLAY_DISABLED,
        0
    );
    assert_ne!(status(&mut v, line(412)) & STATUS1_VERTICAL_RETRACE, 0);
    assert_ne!(status(&mut v, line(413)) & STATUS1_DISPLAY_DISABLED, 0);
    assert_eq!(status(&mut v, line(414)) & STATUS1_VERTICAL_RETRACE, 0);
    // Next frame, same phase.
    assert_ne!(
        status(&mut v, FRAME_NS + line(412)) & STATUS1_VERTICAL_RETRACE,
        0
    );
    // Polling loops see both values within one frame.
    let mut seen = [false; 2];
    for step in 0..(449 * 4) {
        let s = status(&mut v, step * LINE_NS / 4);
        seen[(s & STATUS1_VERTICAL_RETRACE != 0) as usize] = true;
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn line_compare_splits_the_screen() {
    let mut v = text_vga();
    put_char(&mut v, 0, 0, 0xDB, 0x0F);
    // Start address at row 5 (blank), line compare at scan line 199: the
    // lower half restarts from address 0 (the block).
    outb(&mut v, 0x3D4, 0x0C);
    outb(&mut v, 0x3D5, 0x01);
    outb(&mut v, 0x3D4, 0x0D);
    outb(&mut v, 0x3D5, 0x90);
    outb(&mut v, 0x3D4, 0x18);
    outb(&mut v, 0x3D5, 199);
    outb(&mut v, 0x3D4, 0x07);
    let ovf = inb(&mut v, 0x3D5);
    outb(&mut v, 0x3D5, ovf & !OVERFLOW_LINE_COMPARE_8);
    outb(&mut v, 0x3D4, 0x09);
    let msl = inb(&mut v, 0x3D5);
    outb(&mut v, 0x3D5, msl & !MSL_LINE_COMPARE_9);
    let mut f = Frame::default();
    v.render(&mut f, 8 * FRAME_NS);
    assert_eq!(f.pixels[2], 0);
    assert_eq!(f.pixels[200 * 720 + 2], WHITE);
}

#[test]
fn absurd_register_values_never_panic() {
    let mut v = text_vga();
    let mut f = Frame::default();
    let mut seed: u32 = 0x1234_5678;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for round in 0..60u64 {
        for _ in 0..64 {
            let port = 0x3B0 + (rnd() % 0x30) as u16;
            v.io_write(port, 1, rnd(), round);
            let _ = v.io_read(port, 1 + (rnd() % 4) as u8, round);
        }
        for _ in 0..8 {
            vbe_write(&mut v, (rnd() % 12) as u16, rnd() as u16);
        }
        for _ in 0..64 {
            let a = 0xA0000 + rnd() % 0x20000;
            v.mem_write(a, rnd() as u8);
            v.mem_read(a);
            v.lfb_write(rnd(), 1);
            v.lfb_read(rnd());
        }
        v.render(&mut f, round * 1_000_000_007);
        assert!(f.width >= 1 && f.width <= render::MAX_WIDTH);
        assert!(f.height >= 1 && f.height <= render::MAX_HEIGHT);
        assert_eq!(f.pixels.len(), (f.width * f.height) as usize);
    }
    // All-ones CRTC, sequencer, GC and attribute registers.
    v.io_write(PORT_VBE_INDEX, 2, VBE_DISPI_INDEX_ENABLE as u32, 0);
    v.io_write(PORT_VBE_DATA, 2, 0, 0);
    outb(&mut v, 0x3C2, 0xFF);
    for i in 0..=0xFF {
        v.io_write(0x3D4, 2, 0xFF00 | i, 0);
        v.io_write(0x3C4, 2, 0xFF00 | i, 0);
        v.io_write(0x3CE, 2, 0xFF00 | i, 0);
        inb(&mut v, 0x3DA);
        outb(&mut v, 0x3C0, i as u8);
        outb(&mut v, 0x3C0, 0xFF);
    }
    v.render(&mut f, 0);
    assert!(f.width <= render::MAX_WIDTH && f.height <= render::MAX_HEIGHT);
    let _ = v.io_read(0x3DA, 1, u64::MAX);
    v.render(&mut f, u64::MAX);
}

#[test]
fn screenshot_png_round_trip() {
    let frame = Frame {
        width: 3,
        height: 2,
        pixels: vec![0x112233, 0x445566, 0x778899, 0xAABBCC, 0xDDEEFF, 0x000001],
    };
    let path = std::env::temp_dir().join(format!("vx86-vga-test-{}.png", std::process::id()));
    screenshot_png(&frame, &path).expect("write png");
    let file = std::fs::File::open(&path).expect("open png");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    assert_eq!((info.width, info.height), (3, 2));
    assert_eq!(&buf[..6], &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
    assert_eq!(&buf[15..18], &[0x00, 0x00, 0x01]);
    let _ = std::fs::remove_file(&path);
    let bad = Frame {
        width: 4,
        height: 4,
        pixels: vec![0; 3],
    };
    let err = screenshot_png(&bad, &path).unwrap_err();
    assert!(err.to_string().contains("4x4"));
}

/// The EGA-palette colour of a 6-bit attribute palette value (rgbRGB).
fn ega(p: u8) -> u32 {
    let level = |hi: u8, lo: u8| -> u32 {
        let v = ((p >> hi) & 1) as u32 * 0x2A + ((p >> lo) & 1) as u32 * 0x15;
        (v << 2) | (v >> 4)
    };
    (level(2, 5) << 16) | (level(1, 4) << 8) | level(0, 3)
}

#[test]
fn cga_mode4_interleaved_banks_and_2bit_pixels() {
    let mut v = Vga::new();
    v.set_mode_regs(&MODE_04H);
    v.load_ega_palette();
    // CGA layout: even lines at B8000, odd lines at BA000; 4 pixels a byte.
    v.mem_write(0xB8000, 0b11_10_01_00);
    v.mem_write(0xB8001, 0b01_01_01_01);
    v.mem_write(0xBA000, 0xFF);
    let mut f = Frame::default();
    v.render(&mut f, 0);
    assert_eq!((f.width, f.height), (640, 400));
    let px = |x: usize, y: usize| f.pixels[y * 640 + x];
    // Each CGA pixel is 2 dots wide and 2 scan lines high.
    let want = [
        0,
        ega(MODE_04H.attr[1]),
        ega(MODE_04H.attr[2]),
        ega(MODE_04H.attr[3]),
    ];
    for (i, c) in [3usize, 2, 1, 0].into_iter().enumerate() {
        assert_eq!(px(2 * i, 0), want[c], "pixel {i}");
        assert_eq!(px(2 * i + 1, 1), want[c], "pixel {i}");
    }
    assert_eq!(px(8, 0), want[1], "second byte (plane 1)");
    assert_eq!(px(0, 2), want[3], "odd line from the second bank");
    assert_eq!(px(0, 3), want[3]);
}

#[test]
fn horizontal_pel_panning_shifts_graphics() {
    let mut v = planar_vga(&[(5, 0x02), (8, 0b0001_0000)]);
    v.mem_write(0xA0000, 15); // pixel 3 white
    let mut f = Frame::default();
    v.render(&mut f, 0);
    assert_eq!(f.pixels[3], WHITE);
    inb(&mut v, 0x3DA);
    outb(&mut v, 0x3C0, 0x13 | ATTR_INDEX_PAS);
    outb(&mut v, 0x3C0, 2);
    assert!(v.render(&mut f, 0));
    assert_eq!(f.pixels[1], WHITE);
    assert_eq!(f.pixels[3], 0);
}

#[test]
fn text_rows_reads_the_screen() {
    let mut v = text_vga();
    for (i, b) in b"login:".iter().enumerate() {
        put_char(&mut v, 24, i as u32, *b, 0x07);
    }
    put_char(&mut v, 0, 79, 0xDB, 0x07);
    let rows = v.text_rows().expect("text mode");
    assert_eq!(rows.len(), 25);
    assert!(rows[24].starts_with("login: "));
    assert_eq!(rows[24].len(), 80);
    assert!(rows[0].ends_with(" ."));
    let mut g = Vga::new();
    g.set_mode_regs(&MODE_13H);
    assert_eq!(g.text_rows(), None);
}

#[test]
fn text_geometry_follows_crtc_and_clocking_mode() {
    let mut v = text_vga();
    // 8-line cells (Maximum Scan Line 7): 80x50.
    outb(&mut v, 0x3D4, 0x09);
    outb(&mut v, 0x3D5, 0x47);
    put_char(&mut v, 49, 0, b'Q', 0x07);
    let rows = v.text_rows().expect("text");
    assert_eq!(rows.len(), 50);
    assert!(rows[49].starts_with('Q'));
    let mut f = Frame::default();
    v.render(&mut f, 8 * FRAME_NS);
    assert_eq!((f.width, f.height), (720, 400));
    // Row 49 starts at scan line 392 and shows the top 8 lines of 'Q'.
    for y in 0..8u32 {
        let g = FONT_8X16[b'Q' as usize * 16 + y as usize];
        for x in 0..8u32 {
            let on = f.pixels[((392 + y) * 720 + x) as usize] != 0;
            assert_eq!(on, g & (0x80 >> x) != 0, "dot ({x},{y})");
        }
    }
    // 8-dot characters: 640 wide.
    outb(&mut v, 0x3C4, 0x01);
    outb(&mut v, 0x3C5, CLOCKING_8_DOT);
    v.render(&mut f, 8 * FRAME_NS);
    assert_eq!(f.width, 640);
    // 40 columns with the dot clock halved (mode 01h style): 40x9 dots shown
    // twice, offset 20 words a row.
    outb(&mut v, 0x3C5, CLOCKING_DOT_CLOCK_DIV2);
    outb(&mut v, 0x3D4, 0x11);
    outb(&mut v, 0x3D5, 0x0E); // unprotect
    outb(&mut v, 0x3D4, 0x01);
    outb(&mut v, 0x3D5, 0x27);
    outb(&mut v, 0x3D4, 0x13);
    outb(&mut v, 0x3D5, 0x14);
    let rows = v.text_rows().expect("text");
    assert_eq!(rows[0].len(), 40);
    v.render(&mut f, 8 * FRAME_NS);
    assert_eq!(f.width, 720);
}
