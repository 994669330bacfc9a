//! Bochs VBE ("DISPI") extension: an index/data register pair at 0x1CE/0x1CF
//! that sets a linear-framebuffer mode directly, as Bochs' and QEMU's VGA BIOS
//! and Linux's `bochs`/`vesafb` paths use it. Register numbers and bits are the
//! interface's published ones (`VBE_DISPI_INDEX_*`, `VBE_DISPI_*`).

use super::Vga;

/// Physical address of the linear framebuffer.
pub const LFB_BASE: u64 = 0xE000_0000;
/// Video memory behind the LFB and the banked window.
pub const VRAM_SIZE: usize = 16 << 20;

pub const VBE_DISPI_INDEX_ID: u16 = 0x0;
pub const VBE_DISPI_INDEX_XRES: u16 = 0x1;
pub const VBE_DISPI_INDEX_YRES: u16 = 0x2;
pub const VBE_DISPI_INDEX_BPP: u16 = 0x3;
pub const VBE_DISPI_INDEX_ENABLE: u16 = 0x4;
pub const VBE_DISPI_INDEX_BANK: u16 = 0x5;
pub const VBE_DISPI_INDEX_VIRT_WIDTH: u16 = 0x6;
pub const VBE_DISPI_INDEX_VIRT_HEIGHT: u16 = 0x7;
pub const VBE_DISPI_INDEX_X_OFFSET: u16 = 0x8;
pub const VBE_DISPI_INDEX_Y_OFFSET: u16 = 0x9;
pub const VBE_DISPI_INDEX_VIDEO_MEMORY_64K: u16 = 0xA;

/// Interface versions a guest may select by writing the ID register.
pub const VBE_DISPI_ID0: u16 = 0xB0C0;
pub const VBE_DISPI_ID5: u16 = 0xB0C5;

pub const VBE_DISPI_ENABLED: u16 = 0b0000_0001;
/// Reads of XRES/YRES/BPP return the maxima while set.
pub const VBE_DISPI_GETCAPS: u16 = 0b0000_0010;
/// DAC components are 8 bits wide instead of 6.
pub const VBE_DISPI_8BIT_DAC: u16 = 0b0010_0000;
pub const VBE_DISPI_LFB_ENABLED: u16 = 0b0100_0000;
/// Do not clear video memory when enabling.
pub const VBE_DISPI_NOCLEARMEM: u16 = 0b1000_0000;

pub const VBE_DISPI_MAX_XRES: u16 = 2560;
pub const VBE_DISPI_MAX_YRES: u16 = 1600;
pub const VBE_DISPI_MAX_BPP: u16 = 32;

/// The banked window is 64 KiB at 0xA0000 with 64 KiB granularity.
const BANK_SIZE: u32 = 0x1_0000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct VbeRegs {
    pub index: u16,
    pub id: u16,
    pub xres: u16,
    pub yres: u16,
    pub bpp: u16,
    pub enable: u16,
    pub bank: u16,
    pub virt_width: u16,
    pub virt_height: u16,
    pub x_offset: u16,
    pub y_offset: u16,
}

impl VbeRegs {
    pub fn new() -> Self {
        VbeRegs {
            index: 0,
            id: VBE_DISPI_ID5,
            xres: 640,
            yres: 480,
            bpp: 8,
            enable: 0,
            bank: 0,
            virt_width: 640,
            virt_height: 480,
            x_offset: 0,
            y_offset: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enable & VBE_DISPI_ENABLED != 0
    }

    pub fn dac_8bit(&self) -> bool {
        self.enable & VBE_DISPI_8BIT_DAC != 0
    }

    /// Bytes per pixel of the current depth (15 bpp uses 2).
    pub fn bytes_per_pixel(&self) -> u32 {
        (self.bpp as u32).div_ceil(8).max(1)
    }

    /// Bytes per scan line of the virtual screen.
    pub fn line_bytes(&self) -> u32 {
        self.virt_width as u32 * self.bytes_per_pixel()
    }

    /// Virtual height: as many lines as fit in video memory.
    fn recompute_virt_height(&mut self) {
        let lb = self.line_bytes().max(1);
        self.virt_height = (VRAM_SIZE as u32 / lb).min(u16::MAX as u32) as u16;
    }
}

impl Vga {
    pub(crate) fn vbe_read(&self) -> u16 {
        let v = &self.vbe;
        let caps = v.enable & VBE_DISPI_GETCAPS != 0;
        match v.index {
            VBE_DISPI_INDEX_ID => v.id,
            VBE_DISPI_INDEX_XRES if caps => VBE_DISPI_MAX_XRES,
            VBE_DISPI_INDEX_YRES if caps => VBE_DISPI_MAX_YRES,
            VBE_DISPI_INDEX_BPP if caps => VBE_DISPI_MAX_BPP,
            VBE_DISPI_INDEX_XRES => v.xres,
            VBE_DISPI_INDEX_YRES => v.yres,
            VBE_DISPI_INDEX_BPP => v.bpp,
            VBE_DISPI_INDEX_ENABLE => v.enable,
            VBE_DISPI_INDEX_BANK => v.bank,
            VBE_DISPI_INDEX_VIRT_WIDTH => v.virt_width,
            VBE_DISPI_INDEX_VIRT_HEIGHT => v.virt_height,
            VBE_DISPI_INDEX_X_OFFSET => v.x_offset,
            VBE_DISPI_INDEX_Y_OFFSET => v.y_offset,
            VBE_DISPI_INDEX_VIDEO_MEMORY_64K => (VRAM_SIZE >> 16) as u16,
            _ => 0xFFFF,
        }
    }

    /// DISPI data write. Resolution and depth change only while the extension
    /// is disabled; out-of-range values are ignored, so any value is harmless.
    pub(crate) fn vbe_write(&mut self, val: u16) {
        let enabled = self.vbe.enabled();
        match self.vbe.index {
            VBE_DISPI_INDEX_ID if (VBE_DISPI_ID0..=VBE_DISPI_ID5).contains(&val) => {
                self.vbe.id = val;
            }
            VBE_DISPI_INDEX_XRES if !enabled && (1..=VBE_DISPI_MAX_XRES).contains(&val) => {
                self.vbe.xres = val;
            }
            VBE_DISPI_INDEX_YRES if !enabled && (1..=VBE_DISPI_MAX_YRES).contains(&val) => {
                self.vbe.yres = val;
            }
            VBE_DISPI_INDEX_BPP if !enabled => {
                let bpp = if val == 0 { 8 } else { val };
                if matches!(bpp, 8 | 15 | 16 | 24 | 32) {
                    self.vbe.bpp = bpp;
                }
            }
            VBE_DISPI_INDEX_ENABLE => self.vbe_enable_write(val),
            VBE_DISPI_INDEX_BANK => {
                let banks = (VRAM_SIZE as u32 / BANK_SIZE) as u16;
                if val < banks {
                    self.vbe.bank = val;
                }
            }
            VBE_DISPI_INDEX_VIRT_WIDTH if val >= 1 => {
                self.vbe.virt_width = val;
                self.vbe.recompute_virt_height();
            }
            VBE_DISPI_INDEX_X_OFFSET => self.vbe.x_offset = val,
            VBE_DISPI_INDEX_Y_OFFSET => self.vbe.y_offset = val,
            _ => {}
        }
        self.dirty = true;
    }

    fn vbe_enable_write(&mut self, val: u16) {
        let was = self.vbe.enabled();
        let on = val & VBE_DISPI_ENABLED != 0;
        if on && !was {
            // Entering a mode: the virtual screen starts as the visible one.
            self.vbe.virt_width = self.vbe.xres;
            self.vbe.recompute_virt_height();
            self.vbe.x_offset = 0;
            self.vbe.y_offset = 0;
            self.vbe.bank = 0;
            if val & VBE_DISPI_NOCLEARMEM == 0 {
                let used = (self.vbe.line_bytes() as usize * self.vbe.yres as usize).min(VRAM_SIZE);
                self.vram[..used].fill(0);
            }
        }
        self.vbe.enable = val;
    }

    /// Offset into VRAM of a banked-window address (0xA0000-0xAFFFF only).
    fn vbe_bank_offset(&self, addr: u32) -> Option<usize> {
        let off = addr.checked_sub(0xA_0000)?;
        if off >= BANK_SIZE {
            return None;
        }
        let at = self.vbe.bank as usize * BANK_SIZE as usize + off as usize;
        (at < VRAM_SIZE).then_some(at)
    }

    pub(crate) fn vbe_bank_read(&self, addr: u32) -> u8 {
        self.vbe_bank_offset(addr)
            .and_then(|at| self.vram.get(at).copied())
            .unwrap_or(0xFF)
    }

    pub(crate) fn vbe_bank_write(&mut self, addr: u32, val: u8) {
        if let Some(b) = self
            .vbe_bank_offset(addr)
            .and_then(|at| self.vram.get_mut(at))
        {
            *b = val;
            self.dirty = true;
        }
    }

    /// Reads a byte of the linear framebuffer (`offset` from [`LFB_BASE`]);
    /// beyond VRAM reads as 0xFF.
    pub fn lfb_read(&mut self, offset: u32) -> u8 {
        self.vram.get(offset as usize).copied().unwrap_or(0xFF)
    }

    /// Writes a byte of the linear framebuffer; beyond VRAM is ignored.
    pub fn lfb_write(&mut self, offset: u32, val: u8) {
        if let Some(b) = self.vram.get_mut(offset as usize) {
            *b = val;
            self.dirty = true;
        }
    }

    /// Reads `buf.len()` bytes from the LFB at `offset` (bytes beyond VRAM read
    /// as 0xFF). For wide guest accesses and string moves.
    pub fn lfb_read_bytes(&mut self, offset: u32, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.vram.get(offset as usize + i).copied().unwrap_or(0xFF);
        }
    }

    /// Writes `data` to the LFB at `offset`; bytes beyond VRAM are dropped.
    pub fn lfb_write_bytes(&mut self, offset: u32, data: &[u8]) {
        let start = (offset as usize).min(VRAM_SIZE);
        let end = (start + data.len()).min(VRAM_SIZE);
        if let (Some(dst), Some(src)) = (self.vram.get_mut(start..end), data.get(..end - start)) {
            dst.copy_from_slice(src);
            self.dirty = true;
        }
    }
}
