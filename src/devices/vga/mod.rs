//! VGA adapter: the IBM VGA register set (sequencer, CRT controller, graphics
//! controller, attribute controller, DAC), four 64 KiB planes with their latches,
//! the Bochs VBE (DISPI) extension with a 16 MiB linear framebuffer, and a renderer
//! that turns it all into a [`Frame`] of 0x00RRGGBB pixels.
//!
//! Register names and behaviour follow the IBM VGA Technical Reference. The machine:
//! - routes ports 0x3B0-0x3DF and 0x1CE/0x1CF here ([`PortDevice`]),
//! - routes physical 0xA0000..=0xBFFFF to [`Vga::mem_read`] / [`Vga::mem_write`],
//! - routes [`LFB_BASE`]..`LFB_BASE + VRAM_SIZE` to [`Vga::lfb_read`] / [`Vga::lfb_write`],
//! - calls [`Vga::render`] at the frontend's frame rate and ships the frame on
//!   when it returns true.
//!
//! The VGA raises no interrupt and has no deadline: the retrace status bits are
//! computed from the virtual time of each 0x3DA read.

mod font;
mod mem;
pub mod regs;
pub mod render;
#[cfg(test)]
mod tests;
pub mod vbe;

use std::path::{Path, PathBuf};

use crate::devices::{Nanos, PortDevice};
pub use font::FONT_8X16;
use regs::*;
pub use vbe::{LFB_BASE, VRAM_SIZE};

/// Size of one VGA plane (map).
pub const PLANE_SIZE: usize = 0x1_0000;

/// Horizontal scan period of the VGA's 25.175/28.322 MHz timings (31.469 kHz).
const LINE_NS: u64 = 31_778;
/// Fraction (in 1/1000) of a scan line during which display enable is active
/// (640 of 800 dot clocks).
const LINE_ACTIVE_PERMILLE: u64 = 800;

/// A rendered screen: `pixels[y * width + x]` is 0x00RRGGBB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u32>,
}

/// Errors from [`screenshot_png`].
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotError {
    #[error("{path}: cannot write screenshot: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot encode PNG: {source}")]
    Png {
        path: PathBuf,
        source: png::EncodingError,
    },
    #[error("{path}: frame is {width}x{height} but holds {len} pixels")]
    BadFrame {
        path: PathBuf,
        width: u32,
        height: u32,
        len: usize,
    },
}

/// Writes `frame` as an 8-bit RGB PNG at `path`.
pub fn screenshot_png(frame: &Frame, path: &Path) -> Result<(), ScreenshotError> {
    let count = frame.width as usize * frame.height as usize;
    if frame.pixels.len() != count || count == 0 {
        return Err(ScreenshotError::BadFrame {
            path: path.to_path_buf(),
            width: frame.width,
            height: frame.height,
            len: frame.pixels.len(),
        });
    }
    let file = std::fs::File::create(path).map_err(|source| ScreenshotError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let png_err = |source| ScreenshotError::Png {
        path: path.to_path_buf(),
        source,
    };
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(png_err)?;
    let mut rgb = Vec::with_capacity(count * 3);
    for &p in &frame.pixels {
        rgb.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
    }
    writer.write_image_data(&rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)
}

/// What the last render showed, to tell whether anything visible changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
struct ShownState {
    cursor_on: bool,
    blink_on: bool,
    width: u32,
    height: u32,
}

/// The VGA adapter with the Bochs VBE extension.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Vga {
    misc_output: u8,
    feature_control: u8,
    video_enable: u8,

    seq_index: u8,
    seq: [u8; SEQ_COUNT],
    crtc_index: u8,
    crtc: [u8; CRTC_COUNT],
    gc_index: u8,
    gc: [u8; GC_COUNT],
    /// Attribute Address register, including the Palette Address Source bit.
    attr_index: u8,
    attr: [u8; ATTR_COUNT],
    /// Attribute flip-flop: false = next 0x3C0 write is an index, true = data.
    attr_flip_flop: bool,

    dac_pel_mask: u8,
    dac_read_index: u8,
    dac_write_index: u8,
    /// Which of R, G, B the next 0x3C9 access addresses (0..=2).
    dac_component: u8,
    dac_state: u8,
    /// RGB triplets as written (6-bit, or 8-bit with the VBE 8-bit DAC).
    #[serde(with = "crate::snapshot::array")]
    dac: [u8; 768],
    /// Components of the entry being written, committed after the third.
    dac_write_latch: [u8; 3],

    /// Planes 0..3, PLANE_SIZE bytes each, back to back.
    #[serde(with = "crate::snapshot::bytes")]
    planes: Vec<u8>,
    /// The four processor latches (one byte per plane).
    latch: [u8; 4],

    vbe: vbe::VbeRegs,
    #[serde(with = "crate::snapshot::bytes")]
    vram: Vec<u8>,

    dirty: bool,
    shown: ShownState,
    /// The last text render showed a character with the blink attribute.
    text_had_blink: bool,
}

impl Default for Vga {
    fn default() -> Self {
        Self::new()
    }
}

impl Vga {
    /// A VGA at power-on: registers cleared (the BIOS programs a mode), colour
    /// I/O addressing, palette RAM black, all memory zero.
    pub fn new() -> Self {
        Vga {
            misc_output: MISC_IO_ADDRESS_SELECT,
            feature_control: 0,
            video_enable: 1,
            seq_index: 0,
            seq: [0; SEQ_COUNT],
            crtc_index: 0,
            crtc: [0; CRTC_COUNT],
            gc_index: 0,
            gc: [0; GC_COUNT],
            attr_index: 0,
            attr: [0; ATTR_COUNT],
            attr_flip_flop: false,
            dac_pel_mask: 0xFF,
            dac_read_index: 0,
            dac_write_index: 0,
            dac_component: 0,
            dac_state: DAC_STATE_WRITE,
            dac: [0; 768],
            dac_write_latch: [0; 3],
            planes: vec![0; 4 * PLANE_SIZE],
            latch: [0; 4],
            vbe: vbe::VbeRegs::new(),
            vram: vec![0; VRAM_SIZE],
            dirty: true,
            shown: ShownState::default(),
            text_had_blink: false,
        }
    }

    /// Hardware reset (power cycle): registers, palette and memory cleared.
    pub fn reset(&mut self) {
        *self = Vga::new();
    }

    /// The VGA has no timer and raises no interrupt: its status bits are
    /// computed from the time of each read, so it never needs the CPU stopped.
    pub fn next_deadline(&self) -> Option<Nanos> {
        None
    }

    /// Duration of one displayed frame at the current CRTC vertical timing
    /// (about 14.3 ms in mode 03h); a frontend may render at this rate.
    pub fn frame_period(&self) -> Nanos {
        self.frame_ns()
    }

    /// Loads [`FONT_8X16`] into plane 2 at character map 0 (32 bytes per glyph,
    /// as the character generator reads it), as a VGA BIOS does at POST.
    pub fn load_default_font(&mut self) {
        let plane2 = &mut self.planes[2 * PLANE_SIZE..3 * PLANE_SIZE];
        for (ch, glyph) in FONT_8X16.chunks_exact(font::GLYPH_HEIGHT).enumerate() {
            let at = ch * 32;
            plane2[at..at + 32].fill(0);
            plane2[at..at + font::GLYPH_HEIGHT].copy_from_slice(glyph);
        }
        self.dirty = true;
    }

    /// Programs the registers of a standard mode (see [`regs::MODE_03H`] etc.).
    pub fn set_mode_regs(&mut self, m: &ModeRegs) {
        self.misc_output = m.misc;
        self.seq = m.seq;
        self.crtc = m.crtc;
        self.gc = m.gc;
        self.attr = m.attr;
        self.attr_index = ATTR_INDEX_PAS;
        self.attr_flip_flop = false;
        self.dac_pel_mask = 0xFF;
        self.dirty = true;
    }

    /// Sets up 80x25 colour text as a VGA BIOS's mode 03h would: registers, the
    /// EGA-compatible 64-colour DAC palette, the built-in font, and a blank screen
    /// (spaces, light grey on black). For booting without a video BIOS.
    pub fn set_text_mode_80x25(&mut self) {
        self.vbe.enable = 0;
        self.set_mode_regs(&MODE_03H);
        self.load_ega_palette();
        self.load_default_font();
        for i in 0..(80 * 25 * 2) {
            // Odd/even: characters in plane 0, attributes in plane 1.
            self.planes[i] = b' ';
            self.planes[PLANE_SIZE + i] = 0x07;
        }
        self.dirty = true;
    }

    /// DAC entries 0-63 with the EGA colours: attribute palette bits 0-2 are the
    /// 2/3-intensity B, G, R and bits 3-5 the 1/3-intensity b, g, r components.
    pub fn load_ega_palette(&mut self) {
        for i in 0..64usize {
            let level = |hi: usize, lo: usize| -> u8 {
                (((i >> hi) & 1) * 0x2A + ((i >> lo) & 1) * 0x15) as u8
            };
            self.dac[i * 3] = level(2, 5);
            self.dac[i * 3 + 1] = level(1, 4);
            self.dac[i * 3 + 2] = level(0, 3);
        }
        self.dirty = true;
    }

    /// Whether the CRTC answers at 0x3Dx (colour) rather than 0x3Bx.
    fn color_addressing(&self) -> bool {
        self.misc_output & MISC_IO_ADDRESS_SELECT != 0
    }

    // ---- CRT timing, for Input Status 1 ------------------------------------

    /// Vertical Total (10 bits) + 2 scan lines, at least 2.
    fn vertical_total_lines(&self) -> u64 {
        let ovf = self.crtc[CRTC_OVERFLOW];
        let vt = self.crtc[CRTC_VERTICAL_TOTAL] as u64
            | ((ovf as u64 & 0x01) << 8)
            | ((ovf as u64 >> 5 & 0x01) << 9);
        vt + 2
    }

    /// Vertical Display End (10 bits) + 1: the number of displayed scan lines.
    pub(crate) fn vertical_display_lines(&self) -> u32 {
        let ovf = self.crtc[CRTC_OVERFLOW];
        let vde = self.crtc[CRTC_VERTICAL_DISPLAY_END] as u32
            | ((ovf as u32 >> 1 & 0x01) << 8)
            | ((ovf as u32 >> 6 & 0x01) << 9);
        vde + 1
    }

    fn vertical_retrace_start(&self) -> u64 {
        let ovf = self.crtc[CRTC_OVERFLOW];
        self.crtc[CRTC_VERTICAL_RETRACE_START] as u64
            | ((ovf as u64 >> 2 & 0x01) << 8)
            | ((ovf as u64 >> 7 & 0x01) << 9)
    }

    /// Duration of one frame in virtual time.
    fn frame_ns(&self) -> u64 {
        self.vertical_total_lines() * LINE_NS
    }

    /// Input Status 1: the beam position is derived from `now`, so the retrace and
    /// display-enable bits toggle with virtual time as on a real monitor timing.
    fn input_status_1(&self, now: Nanos) -> u8 {
        let total = self.vertical_total_lines();
        let in_frame = now % (total * LINE_NS);
        let line = in_frame / LINE_NS;
        let in_line = in_frame % LINE_NS;
        // The retrace lasts until the line counter's low 4 bits match
        // Vertical Retrace End bits 0-3 (IBM: a 4-bit compare).
        let vrs = self.vertical_retrace_start() % total;
        let end_low = (self.crtc[CRTC_VERTICAL_RETRACE_END] & 0x0F) as u64;
        let mut len = end_low.wrapping_sub(vrs) & 0x0F;
        if len == 0 {
            len = 16;
        }
        let retrace = line >= vrs && line < vrs + len;
        let displayed = (self.vertical_display_lines() as u64).min(total);
        let active =
            line < displayed && in_line * 1000 < LINE_NS * LINE_ACTIVE_PERMILLE && !retrace;
        let mut v = 0;
        if !active {
            v |= STATUS1_DISPLAY_DISABLED;
        }
        if retrace {
            v |= STATUS1_VERTICAL_RETRACE;
        }
        v
    }

    // ---- Byte-wide port access ---------------------------------------------

    fn read_port_u8(&mut self, port: u16, now: Nanos) -> u8 {
        let color = self.color_addressing();
        match port {
            PORT_ATTR_INDEX => self.attr_index,
            PORT_ATTR_DATA_READ => self.attr.get(self.attr_reg()).copied().unwrap_or(0),
            PORT_MISC_WRITE_STATUS0 => STATUS0_SWITCH_SENSE,
            PORT_VIDEO_ENABLE => self.video_enable,
            PORT_SEQ_INDEX => self.seq_index,
            PORT_SEQ_DATA => self
                .seq
                .get(self.seq_index as usize)
                .copied()
                .unwrap_or(0xFF),
            PORT_DAC_PEL_MASK => self.dac_pel_mask,
            PORT_DAC_READ_INDEX => self.dac_state,
            PORT_DAC_WRITE_INDEX => self.dac_write_index,
            PORT_DAC_DATA => self.dac_data_read(),
            PORT_FEATURE_READ => self.feature_control,
            PORT_MISC_READ => self.misc_output,
            PORT_GC_INDEX => self.gc_index,
            PORT_GC_DATA => self.gc.get(self.gc_index as usize).copied().unwrap_or(0xFF),
            PORT_CRTC_INDEX_COLOR if color => self.crtc_index,
            PORT_CRTC_INDEX_MONO if !color => self.crtc_index,
            PORT_CRTC_DATA_COLOR if color => self.crtc_read(),
            PORT_CRTC_DATA_MONO if !color => self.crtc_read(),
            PORT_STATUS1_COLOR if color => self.status1_read(now),
            PORT_STATUS1_MONO if !color => self.status1_read(now),
            _ => 0xFF,
        }
    }

    fn write_port_u8(&mut self, port: u16, val: u8) {
        let color = self.color_addressing();
        match port {
            PORT_ATTR_INDEX => self.attr_write(val),
            PORT_MISC_WRITE_STATUS0 => {
                self.misc_output = val;
                self.dirty = true;
            }
            PORT_VIDEO_ENABLE => self.video_enable = val & 1,
            PORT_SEQ_INDEX => self.seq_index = val & 0x07,
            PORT_SEQ_DATA => {
                if let Some(r) = self.seq.get_mut(self.seq_index as usize) {
                    *r = val;
                    self.dirty = true;
                }
            }
            PORT_DAC_PEL_MASK => {
                self.dac_pel_mask = val;
                self.dirty = true;
            }
            PORT_DAC_READ_INDEX => {
                self.dac_read_index = val;
                self.dac_component = 0;
                self.dac_state = DAC_STATE_READ;
            }
            PORT_DAC_WRITE_INDEX => {
                self.dac_write_index = val;
                self.dac_component = 0;
                self.dac_state = DAC_STATE_WRITE;
            }
            PORT_DAC_DATA => self.dac_data_write(val),
            PORT_GC_INDEX => self.gc_index = val & 0x0F,
            PORT_GC_DATA => {
                if let Some(r) = self.gc.get_mut(self.gc_index as usize) {
                    *r = val;
                    self.dirty = true;
                }
            }
            PORT_CRTC_INDEX_COLOR if color => self.crtc_index = val & 0x3F,
            PORT_CRTC_INDEX_MONO if !color => self.crtc_index = val & 0x3F,
            PORT_CRTC_DATA_COLOR if color => self.crtc_write(val),
            PORT_CRTC_DATA_MONO if !color => self.crtc_write(val),
            // Feature Control is written at the Input Status 1 address.
            PORT_STATUS1_COLOR if color => self.feature_control = val,
            PORT_STATUS1_MONO if !color => self.feature_control = val,
            _ => {}
        }
    }

    /// Reading Input Status 1 also resets the attribute flip-flop to "index".
    fn status1_read(&mut self, now: Nanos) -> u8 {
        self.attr_flip_flop = false;
        self.input_status_1(now)
    }

    fn crtc_read(&self) -> u8 {
        self.crtc
            .get(self.crtc_index as usize)
            .copied()
            .unwrap_or(0xFF)
    }

    /// CRTC data write; with Vertical Retrace End bit 7 set, registers 0-7 are
    /// read-only except the line compare bit 8 of Overflow.
    fn crtc_write(&mut self, val: u8) {
        let idx = self.crtc_index as usize;
        let protect = self.crtc[CRTC_VERTICAL_RETRACE_END] & VRE_PROTECT != 0;
        if protect && idx < 8 {
            if idx == CRTC_OVERFLOW {
                let r = &mut self.crtc[CRTC_OVERFLOW];
                *r = (*r & !OVERFLOW_LINE_COMPARE_8) | (val & OVERFLOW_LINE_COMPARE_8);
                self.dirty = true;
            }
            return;
        }
        if let Some(r) = self.crtc.get_mut(idx) {
            *r = val;
            self.dirty = true;
        }
    }

    /// The attribute register addressed by the Attribute Address register.
    fn attr_reg(&self) -> usize {
        (self.attr_index & 0x1F) as usize
    }

    /// 0x3C0 write: the flip-flop alternates index and data. Palette registers
    /// (0x00-0x0F) take writes only while Palette Address Source is 0.
    fn attr_write(&mut self, val: u8) {
        if !self.attr_flip_flop {
            self.attr_index = val & 0x3F;
            self.dirty = true;
        } else {
            let idx = self.attr_reg();
            let pas = self.attr_index & ATTR_INDEX_PAS != 0;
            if !(idx < 0x10 && pas) {
                if let Some(r) = self.attr.get_mut(idx) {
                    *r = val;
                    self.dirty = true;
                }
            }
        }
        self.attr_flip_flop = !self.attr_flip_flop;
    }

    /// Bits a DAC component keeps: 6, or 8 with the VBE 8-bit DAC enabled.
    fn dac_component_mask(&self) -> u8 {
        if self.vbe.dac_8bit() {
            0xFF
        } else {
            0x3F
        }
    }

    /// 0x3C9 write: R, G, B in turn; the entry is stored and the write index
    /// advances after the third.
    fn dac_data_write(&mut self, val: u8) {
        let c = (self.dac_component % 3) as usize;
        self.dac_write_latch[c] = val & self.dac_component_mask();
        if c == 2 {
            let at = self.dac_write_index as usize * 3;
            self.dac[at..at + 3].copy_from_slice(&self.dac_write_latch);
            self.dac_write_index = self.dac_write_index.wrapping_add(1);
            self.dac_component = 0;
            self.dirty = true;
        } else {
            self.dac_component = c as u8 + 1;
        }
    }

    /// 0x3C9 read: R, G, B of the read index in turn, advancing after the third.
    fn dac_data_read(&mut self) -> u8 {
        let c = (self.dac_component % 3) as usize;
        let v = self.dac[self.dac_read_index as usize * 3 + c];
        if c == 2 {
            self.dac_read_index = self.dac_read_index.wrapping_add(1);
            self.dac_component = 0;
        } else {
            self.dac_component = c as u8 + 1;
        }
        v
    }

    /// DAC entry `i` as 0x00RRGGBB (6-bit components scaled to 8 bits).
    pub(crate) fn dac_rgb(&self, i: u8) -> u32 {
        let at = (i & self.dac_pel_mask) as usize * 3;
        let scale = |v: u8| -> u32 {
            if self.vbe.dac_8bit() {
                v as u32
            } else {
                let v = (v & 0x3F) as u32;
                (v << 2) | (v >> 4)
            }
        };
        (scale(self.dac[at]) << 16) | (scale(self.dac[at + 1]) << 8) | scale(self.dac[at + 2])
    }
}

/// Whether `port` belongs to the VGA's 8-bit register file.
fn is_vga_port(port: u16) -> bool {
    (0x3B0..=0x3DF).contains(&port)
}

impl PortDevice for Vga {
    /// 16/32-bit accesses to the VGA registers act as consecutive byte accesses
    /// (e.g. `out dx, ax` to 0x3C4 writes index then data); the DISPI registers
    /// are 16 bits wide. Undriven bits read as ones.
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32 {
        let size = size.clamp(1, 4) as u32;
        if port == PORT_VBE_INDEX || port == PORT_VBE_DATA {
            let v = if port == PORT_VBE_INDEX {
                self.vbe.index
            } else {
                self.vbe_read()
            } as u32;
            return match size {
                1 => v & 0xFF,
                2 => v,
                _ => v | 0xFFFF_0000,
            };
        }
        let mut v = 0u32;
        for i in 0..size {
            let p = port.wrapping_add(i as u16);
            let b = if is_vga_port(p) {
                self.read_port_u8(p, now)
            } else {
                0xFF
            };
            v |= (b as u32) << (8 * i);
        }
        v
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, _now: Nanos) {
        let size = size.clamp(1, 4) as u32;
        if port == PORT_VBE_INDEX {
            self.vbe.index = value as u16;
            return;
        }
        if port == PORT_VBE_DATA {
            self.vbe_write(value as u16);
            return;
        }
        for i in 0..size {
            let p = port.wrapping_add(i as u16);
            if is_vga_port(p) {
                self.write_port_u8(p, (value >> (8 * i)) as u8);
            }
        }
    }
}

/// The VGA decodes its register ports, the Bochs VBE DISPI ports and two
/// memory windows: the legacy A0000h-BFFFFh aperture (planar memory through
/// the graphics controller) and the VBE linear framebuffer.
impl crate::devices::Device for Vga {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "VGA"
    }
    fn resources(&self) -> crate::devices::Resources {
        use crate::memory::{LFB_SIZE, VGA_WINDOW};
        crate::devices::Resources::default()
            .ports(0x3B0..=0x3DF)
            .ports(PORT_VBE_INDEX..=PORT_VBE_DATA)
            .mmio(VGA_WINDOW)
            .mmio(LFB_BASE..LFB_BASE + LFB_SIZE)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut crate::devices::Ctx) -> u32 {
        PortDevice::io_read(self, port, size, cx.now)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut crate::devices::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
    }
    /// Planar memory goes byte by byte through the latches and the graphics
    /// controller (that is what the hardware does for each byte of a wider
    /// access); the LFB is plain memory and is copied whole.
    fn mmio_read(&mut self, addr: u64, size: u8, _cx: &mut crate::devices::Ctx) -> u64 {
        let n = usize::from(size.clamp(1, 8));
        let mut b = [0xFFu8; 8];
        if addr >= LFB_BASE {
            self.lfb_read_bytes((addr - LFB_BASE) as u32, &mut b[..n]);
        } else {
            for (i, v) in b.iter_mut().enumerate().take(n) {
                *v = self.mem_read(addr as u32 + i as u32);
            }
        }
        u64::from_le_bytes(b) & crate::cpu::flags::size_mask(size)
    }
    fn mmio_write(&mut self, addr: u64, size: u8, value: u64, _cx: &mut crate::devices::Ctx) {
        let n = usize::from(size.clamp(1, 8));
        let b = value.to_le_bytes();
        if addr >= LFB_BASE {
            self.lfb_write_bytes((addr - LFB_BASE) as u32, &b[..n]);
        } else {
            for (i, v) in b.iter().enumerate().take(n) {
                self.mem_write(addr as u32 + i as u32, *v);
            }
        }
    }
}
