//! Scan-out: turns the planes (or VBE memory) into a [`Frame`], the way the CRT
//! controller, sequencer and attribute controller walk memory on the hardware:
//! per displayed scan line, the memory address counter advances one character
//! clock at a time, the address is formed per byte/word/doubleword mode, and
//! the fetched bytes go through the attribute controller and the DAC.

use super::regs::*;
use super::{Frame, ShownState, Vga, PLANE_SIZE};
use crate::devices::Nanos;

/// Largest frame the renderer produces, whatever the CRTC says; keeps absurd
/// register values from allocating more than 16 MiB of pixels.
pub const MAX_WIDTH: u32 = 2560;
pub const MAX_HEIGHT: u32 = 1600;

/// Cursor blink: on for 8 frames, off for 8 (IBM: 1/16 of the vertical rate).
const CURSOR_BLINK_FRAMES: u64 = 8;
/// Character blink: on for 16 frames, off for 16 (1/32 of the vertical rate).
const CHAR_BLINK_FRAMES: u64 = 16;

/// Geometry of the legacy (non-VBE) display.
#[derive(Clone, Copy)]
struct Geometry {
    /// Character clocks per scan line (Horizontal Display End + 1).
    clocks: u32,
    /// Dots per character clock (8 or 9).
    dots_per_clock: u32,
    /// Each dot is shown twice (Clocking Mode dot clock / 2).
    div2: bool,
    width: u32,
    height: u32,
}

/// Per-scan-line position of the CRTC counters.
struct LineAddr {
    /// Memory address counter at the start of the line.
    ma: u32,
    /// Row scan counter.
    row_scan: u32,
    /// Horizontal PEL panning in dots for this line.
    pan: u32,
}

impl Vga {
    fn text_mode(&self) -> bool {
        self.attr[ATTR_MODE_CONTROL] & ATTRMODE_GRAPHICS == 0
    }

    fn geometry(&self) -> Geometry {
        let clocks = self.crtc[CRTC_HORIZONTAL_DISPLAY_END] as u32 + 1;
        let dots_per_clock =
            if self.text_mode() && self.seq[SEQ_CLOCKING_MODE] & CLOCKING_8_DOT == 0 {
                9
            } else {
                8
            };
        let div2 = self.seq[SEQ_CLOCKING_MODE] & CLOCKING_DOT_CLOCK_DIV2 != 0;
        let width = clocks * dots_per_clock * if div2 { 2 } else { 1 };
        Geometry {
            clocks,
            dots_per_clock,
            div2,
            width: width.min(MAX_WIDTH),
            height: self.vertical_display_lines().min(MAX_HEIGHT),
        }
    }

    /// Width and height of the next frame.
    fn display_size(&self) -> (u32, u32) {
        if self.vbe.enabled() {
            (
                (self.vbe.xres as u32).clamp(1, MAX_WIDTH),
                (self.vbe.yres as u32).clamp(1, MAX_HEIGHT),
            )
        } else {
            let g = self.geometry();
            (g.width, g.height)
        }
    }

    /// Cursor Start/End allow a visible cursor (not disabled, start <= end).
    fn cursor_enabled(&self) -> bool {
        let cs = self.crtc[CRTC_CURSOR_START];
        cs & CURSOR_OFF == 0 && (cs & 0x1F) <= (self.crtc[CRTC_CURSOR_END] & 0x1F)
    }

    /// Forces the next [`Vga::render`] to redraw (e.g. when the frontend hands
    /// in a different buffer than last time).
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// The characters of the alphanumeric screen, one string per text row
    /// (printable ASCII as is, NUL as a space, anything else as '.'), or None
    /// in graphics and VBE modes. For headless runs and tests that read the
    /// screen.
    pub fn text_rows(&self) -> Option<Vec<String>> {
        if self.vbe.enabled() || !self.text_mode() {
            return None;
        }
        let msl = self.crtc[CRTC_MAX_SCAN_LINE];
        let double = if msl & MSL_DOUBLE_SCAN != 0 { 2 } else { 1 };
        let cell = ((msl & 0x1F) as u32 + 1) * double;
        let lines = self.vertical_display_lines().min(MAX_HEIGHT);
        let cols = self.crtc[CRTC_HORIZONTAL_DISPLAY_END] as u32 + 1;
        let rows = lines / cell;
        let mut out = Vec::with_capacity(rows as usize);
        for r in 0..rows {
            let la = self.line_addr(r * cell, 9);
            let text = (0..cols)
                .map(|c| {
                    let addr = self.crtc_mem_addr(la.ma.wrapping_add(c), 0);
                    match self.plane_byte(0, addr) {
                        0 => ' ',
                        b @ 0x20..=0x7E => b as char,
                        _ => '.',
                    }
                })
                .collect();
            out.push(text);
        }
        Some(out)
    }

    /// Renders into `frame` if anything visible changed since the last render
    /// (memory or register writes, the cursor or character blink phase, the
    /// size); returns false and leaves `frame` untouched otherwise.
    pub fn render(&mut self, frame: &mut Frame, now: Nanos) -> bool {
        let frame_no = now / self.frame_ns().max(1);
        let text = !self.vbe.enabled() && self.text_mode();
        let cursor_on =
            text && self.cursor_enabled() && (frame_no / CURSOR_BLINK_FRAMES).is_multiple_of(2);
        let blink_on = text
            && self.attr[ATTR_MODE_CONTROL] & ATTRMODE_BLINK != 0
            && self.text_had_blink
            && (frame_no / CHAR_BLINK_FRAMES).is_multiple_of(2);
        let (width, height) = self.display_size();
        let state = ShownState {
            cursor_on,
            blink_on,
            width,
            height,
        };
        let same_frame = frame.width == width
            && frame.height == height
            && frame.pixels.len() == (width * height) as usize;
        if !self.dirty && state == self.shown && same_frame {
            return false;
        }
        frame.width = width;
        frame.height = height;
        frame.pixels.clear();
        frame.pixels.resize(width as usize * height as usize, 0);

        let blanked = self.attr_index & ATTR_INDEX_PAS == 0
            || self.seq[SEQ_CLOCKING_MODE] & CLOCKING_SCREEN_OFF != 0;
        if self.vbe.enabled() {
            self.render_vbe(frame);
        } else if blanked {
            // Palette RAM is being loaded or the screen is off: the monitor
            // sees black.
        } else if text {
            let blink_phase = (frame_no / CHAR_BLINK_FRAMES).is_multiple_of(2);
            self.text_had_blink = self.render_text(frame, cursor_on, blink_phase);
        } else {
            self.render_graphics(frame);
        }
        self.dirty = false;
        self.shown = state;
        true
    }

    /// The 16-entry colour table: attribute value -> Color Plane Enable ->
    /// palette register -> colour select bits -> DAC.
    fn palette16(&self) -> [u32; 16] {
        let mut lut = [0u32; 16];
        let mode = self.attr[ATTR_MODE_CONTROL];
        let cs = self.attr[ATTR_COLOR_SELECT];
        let plane_enable = self.attr[ATTR_COLOR_PLANE_ENABLE] & 0x0F;
        for (v, out) in lut.iter_mut().enumerate() {
            let p = self.attr[(v as u8 & plane_enable) as usize] & 0x3F;
            let low6 = if mode & ATTRMODE_P54_SELECT != 0 {
                (p & 0x0F) | ((cs & 0b11) << 4)
            } else {
                p
            };
            *out = self.dac_rgb(low6 | ((cs & 0b1100) << 4));
        }
        lut
    }

    fn palette256(&self) -> [u32; 256] {
        let mut lut = [0u32; 256];
        for (i, out) in lut.iter_mut().enumerate() {
            *out = self.dac_rgb(i as u8);
        }
        lut
    }

    /// Line compare (10 bits): the scan line after which the address and row
    /// scan counters restart at 0 (split screen).
    fn line_compare(&self) -> u32 {
        self.crtc[CRTC_LINE_COMPARE] as u32
            | ((self.crtc[CRTC_OVERFLOW] as u32 >> 4 & 1) << 8)
            | ((self.crtc[CRTC_MAX_SCAN_LINE] as u32 >> 6 & 1) << 9)
    }

    /// Horizontal PEL panning in dots for the current mode.
    fn pel_pan(&self, dots_per_clock: u32) -> u32 {
        let v = (self.attr[ATTR_HORIZONTAL_PEL_PANNING] & 0x0F) as u32;
        if self.attr[ATTR_MODE_CONTROL] & ATTRMODE_PEL_WIDTH_8 != 0 {
            v & 0b110
        } else if dots_per_clock == 9 {
            // 9-dot text: 8 means no shift, 0-7 shift by 1-8 dots.
            if v >= 8 {
                0
            } else {
                v + 1
            }
        } else {
            v & 0b111
        }
    }

    /// CRTC counters for displayed scan line `s`.
    fn line_addr(&self, s: u32, dots_per_clock: u32) -> LineAddr {
        let msl = self.crtc[CRTC_MAX_SCAN_LINE];
        let double = if msl & MSL_DOUBLE_SCAN != 0 { 2 } else { 1 };
        let cell = (msl & 0x1F) as u32 + 1;
        let start = (self.crtc[CRTC_START_ADDRESS_HIGH] as u32) << 8
            | self.crtc[CRTC_START_ADDRESS_LOW] as u32;
        let preset = self.crtc[CRTC_PRESET_ROW_SCAN];
        let stride = self.crtc[CRTC_OFFSET] as u32 * 2;
        let lc = self.line_compare();
        let mut pan = self.pel_pan(dots_per_clock);
        let (base, line) = if s > lc {
            if self.attr[ATTR_MODE_CONTROL] & ATTRMODE_PAN_COMPAT != 0 {
                pan = 0;
            }
            (0, (s - lc - 1) / double)
        } else {
            let byte_pan = (preset >> 5 & 0b11) as u32;
            (
                start.wrapping_add(byte_pan),
                s / double + (preset & 0x1F) as u32,
            )
        };
        LineAddr {
            ma: base.wrapping_add((line / cell).wrapping_mul(stride)),
            row_scan: line % cell,
            pan,
        }
    }

    /// Plane offset the CRTC fetches for memory address counter `ma`:
    /// doubleword mode rotates MA13-12 into bits 1-0, word mode MA13 or MA15
    /// into bit 0 (Address Wrap); CMS/SRS substitute row scan bits 0/1 for
    /// address bits 13/14 (CGA/Hercules interleave).
    fn crtc_mem_addr(&self, ma: u32, row_scan: u32) -> usize {
        let ma = ma & 0xFFFF;
        let mode = self.crtc[CRTC_MODE_CONTROL];
        let mut a = if self.crtc[CRTC_UNDERLINE_LOCATION] & UNDERLINE_DOUBLEWORD != 0 {
            (ma << 2) | (ma >> 12 & 0b11)
        } else if mode & CRTC_MODE_BYTE == 0 {
            let bit0 = if mode & CRTC_MODE_ADDRESS_WRAP != 0 {
                ma >> 15
            } else {
                ma >> 13
            } & 1;
            (ma << 1) | bit0
        } else {
            ma
        };
        if mode & CRTC_MODE_CMS == 0 {
            a = (a & !(1 << 13)) | ((row_scan & 1) << 13);
        }
        if mode & CRTC_MODE_SRS == 0 {
            a = (a & !(1 << 14)) | ((row_scan >> 1 & 1) << 14);
        }
        a as usize & (PLANE_SIZE - 1)
    }

    fn plane_byte(&self, plane: usize, addr: usize) -> u8 {
        self.planes[(plane & 3) * PLANE_SIZE + (addr & (PLANE_SIZE - 1))]
    }

    /// Copies one line of dot colours (already panned) into the frame row,
    /// doubling dots when the dot clock is halved.
    fn emit_line(frame: &mut Frame, y: u32, dots: &[u32], div2: bool) {
        let w = frame.width as usize;
        let row = y as usize * w;
        let Some(out) = frame.pixels.get_mut(row..row + w) else {
            return;
        };
        if div2 {
            for (x, px) in out.iter_mut().enumerate() {
                *px = dots.get(x / 2).copied().unwrap_or(0);
            }
        } else {
            for (x, px) in out.iter_mut().enumerate() {
                *px = dots.get(x).copied().unwrap_or(0);
            }
        }
    }

    /// Alphanumeric mode. Returns whether any character with the blink
    /// attribute was on screen.
    fn render_text(&self, frame: &mut Frame, cursor_on: bool, blink_phase: bool) -> bool {
        let g = self.geometry();
        let lut = self.palette16();
        let mode = self.attr[ATTR_MODE_CONTROL];
        let blink_enabled = mode & ATTRMODE_BLINK != 0;
        let line_graphics = mode & ATTRMODE_LINE_GRAPHICS != 0;
        let cursor_loc = (self.crtc[CRTC_CURSOR_LOCATION_HIGH] as u32) << 8
            | self.crtc[CRTC_CURSOR_LOCATION_LOW] as u32;
        let cursor_skew = (self.crtc[CRTC_CURSOR_END] >> 5 & 0b11) as u32;
        let cursor_target = cursor_loc.wrapping_add(cursor_skew) & 0xFFFF;
        let cs = (self.crtc[CRTC_CURSOR_START] & 0x1F) as u32;
        let ce = (self.crtc[CRTC_CURSOR_END] & 0x1F) as u32;
        let underline = (self.crtc[CRTC_UNDERLINE_LOCATION] & 0x1F) as u32;
        // Character Map Select: map A (attribute bit 3 = 1) and map B.
        let cms = self.seq[SEQ_CHARACTER_MAP_SELECT];
        let map_a = (cms >> 2 & 0b11) | (cms >> 3 & 0b100);
        let map_b = (cms & 0b11) | (cms >> 2 & 0b100);
        let map_base = |m: u8| -> usize { ((m as usize & 0b11) << 14) | ((m as usize >> 2) << 13) };
        let (base_a, base_b) = (map_base(map_a), map_base(map_b));

        let dpc = g.dots_per_clock as usize;
        let mut dots = vec![0u32; (g.clocks as usize + 1) * dpc];
        let mut any_blink = false;
        for y in 0..g.height {
            let la = self.line_addr(y, g.dots_per_clock);
            let rs = la.row_scan;
            for col in 0..=g.clocks {
                let ma = la.ma.wrapping_add(col) & 0xFFFF;
                let addr = self.crtc_mem_addr(ma, rs);
                let ch = self.plane_byte(0, addr);
                let at = self.plane_byte(1, addr);
                let base = if at & 0b1000 != 0 { base_a } else { base_b };
                let mut glyph = self.plane_byte(2, base + ch as usize * 32 + rs as usize);
                let mut fg = at & 0x0F;
                let mut bg = at >> 4;
                if blink_enabled {
                    bg &= 0b0111;
                    if at & 0x80 != 0 {
                        any_blink = true;
                        if !blink_phase {
                            fg = bg;
                        }
                    }
                }
                // Underline: attribute x000_x001 on the Underline Location line.
                if rs == underline && at & 0x77 == 0x01 {
                    glyph = 0xFF;
                }
                let ninth = if dpc == 9 && line_graphics && (0xC0..=0xDF).contains(&ch) {
                    glyph & 1 != 0
                } else {
                    false
                };
                let cursor_here = cursor_on && ma == cursor_target && rs >= cs && rs <= ce;
                let cell = col as usize * dpc;
                for (i, d) in dots[cell..cell + dpc].iter_mut().enumerate() {
                    let on = cursor_here
                        || if i < 8 {
                            glyph & (0x80 >> i) != 0
                        } else {
                            ninth
                        };
                    *d = lut[if on { fg } else { bg } as usize];
                }
            }
            let pan = la.pan as usize;
            Self::emit_line(frame, y, &dots[pan.min(dots.len())..], g.div2);
        }
        any_blink
    }

    /// All-points-addressable modes: planar 16-colour, CGA interleaved
    /// 4-colour (Shift Register Interleave) and 256-colour (chain-4 / mode X).
    fn render_graphics(&self, frame: &mut Frame) {
        let g = self.geometry();
        let gc_mode = self.gc[GC_MODE];
        let shift256 = gc_mode & GCMODE_SHIFT_256 != 0;
        let interleave = gc_mode & GCMODE_SHIFT_INTERLEAVE != 0;
        let pel8 = self.attr[ATTR_MODE_CONTROL] & ATTRMODE_PEL_WIDTH_8 != 0;
        let lut16 = self.palette16();
        let lut256 = self.palette256();
        let count_by = if self.crtc[CRTC_UNDERLINE_LOCATION] & UNDERLINE_COUNT_BY_4 != 0 {
            4
        } else if self.crtc[CRTC_MODE_CONTROL] & CRTC_MODE_COUNT_BY_2 != 0 {
            2
        } else {
            1
        };
        let mut dots = vec![0u32; (g.clocks as usize + 1) * 8];
        for y in 0..g.height {
            let la = self.line_addr(y, 8);
            for c in 0..=g.clocks {
                let ma = la.ma.wrapping_add(c / count_by);
                let addr = self.crtc_mem_addr(ma, la.row_scan);
                let b = [
                    self.plane_byte(0, addr),
                    self.plane_byte(1, addr),
                    self.plane_byte(2, addr),
                    self.plane_byte(3, addr),
                ];
                let cell = c as usize * 8;
                let out = &mut dots[cell..cell + 8];
                if shift256 {
                    // Four 8-bit pixels per clock, each two dots wide.
                    for (i, d) in out.iter_mut().enumerate() {
                        let v = b[i / 2];
                        *d = if pel8 {
                            lut256[v as usize]
                        } else {
                            lut16[(v & 0x0F) as usize]
                        };
                    }
                } else if interleave {
                    // Planes 0/1 (and 2/3 for the high bits) each give four
                    // 2-bit pixels, MSB pair first.
                    for (i, d) in out.iter_mut().enumerate() {
                        let (lo, hi) = if i < 4 { (b[0], b[2]) } else { (b[1], b[3]) };
                        let sh = 6 - 2 * (i as u32 % 4);
                        let v = (lo >> sh & 0b11) | ((hi >> sh & 0b11) << 2);
                        *d = lut16[v as usize];
                    }
                } else {
                    for (i, d) in out.iter_mut().enumerate() {
                        let bit = 7 - i as u32;
                        let v = (b[0] >> bit & 1)
                            | (b[1] >> bit & 1) << 1
                            | (b[2] >> bit & 1) << 2
                            | (b[3] >> bit & 1) << 3;
                        *d = lut16[v as usize];
                    }
                }
            }
            let pan = la.pan as usize;
            Self::emit_line(frame, y, &dots[pan.min(dots.len())..], g.div2);
        }
    }

    /// VBE linear modes: pixels from VRAM at (X_OFFSET, Y_OFFSET) of the
    /// virtual screen; 8 bpp through the DAC, the others direct colour
    /// (15 = x:5:5:5, 16 = 5:6:5, 24 = B,G,R, 32 = B,G,R,x).
    fn render_vbe(&self, frame: &mut Frame) {
        let bpp = self.vbe.bpp;
        let bytes = self.vbe.bytes_per_pixel() as usize;
        let line = self.vbe.line_bytes() as usize;
        let lut = self.palette256();
        let w = frame.width as usize;
        let origin = self.vbe.y_offset as usize * line + self.vbe.x_offset as usize * bytes;
        for y in 0..frame.height as usize {
            let row = origin + y * line;
            let Some(out) = frame.pixels.get_mut(y * w..(y + 1) * w) else {
                return;
            };
            // Fast path: a whole 32-bpp row inside VRAM.
            if bpp == 32 {
                if let Some(src) = self.vram.get(row..row + w * 4) {
                    for (px, p) in out.iter_mut().zip(src.chunks_exact(4)) {
                        *px = u32::from_le_bytes([p[0], p[1], p[2], 0]);
                    }
                    continue;
                }
            }
            for (x, px) in out.iter_mut().enumerate() {
                let at = row + x * bytes;
                let Some(p) = self.vram.get(at..at + bytes) else {
                    *px = 0;
                    continue;
                };
                *px = match (bpp, p) {
                    (8, [v]) => lut[*v as usize],
                    (15, [lo, hi]) => {
                        let v = u16::from_le_bytes([*lo, *hi]) as u32;
                        let c5 = |s: u32| -> u32 {
                            let c = v >> s & 0x1F;
                            (c << 3) | (c >> 2)
                        };
                        (c5(10) << 16) | (c5(5) << 8) | c5(0)
                    }
                    (16, [lo, hi]) => {
                        let v = u16::from_le_bytes([*lo, *hi]) as u32;
                        let r = v >> 11 & 0x1F;
                        let g = v >> 5 & 0x3F;
                        let b = v & 0x1F;
                        (((r << 3) | (r >> 2)) << 16)
                            | (((g << 2) | (g >> 4)) << 8)
                            | (b << 3)
                            | (b >> 2)
                    }
                    (24, [b, g, r]) | (32, [b, g, r, _]) => {
                        (*r as u32) << 16 | (*g as u32) << 8 | *b as u32
                    }
                    _ => 0,
                };
            }
        }
    }
}
