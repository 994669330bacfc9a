//! The processor's view of display memory through the legacy 0xA0000-0xBFFFF
//! window: memory map select, chain-4 and odd/even addressing, the four write
//! modes, the two read modes and the latches (IBM VGA Technical Reference,
//! "Graphics Controller Registers" and "Sequencer Memory Mode Register").

use super::regs::*;
use super::{Vga, PLANE_SIZE};

/// Replicates bit `plane` of `v` into all 8 bits.
fn expand(v: u8, plane: usize) -> u8 {
    if (v >> plane) & 1 != 0 {
        0xFF
    } else {
        0x00
    }
}

/// Chain-4 plane address of window offset `off`: bits 0-1 pick the plane and
/// are replaced by offset bits 15-14, the inverse of the CRTC's doubleword
/// rotation (MA13-12 into address bits 1-0), so all 64000 bytes of mode 13h
/// land where the CRTC scans them out.
fn chain4_addr(off: usize) -> usize {
    ((off & !3) | ((off >> 14) & 3)) & (PLANE_SIZE - 1)
}

impl Vga {
    /// Offset of `addr` inside the window chosen by Graphics Misc bits 2-3, or
    /// None when `addr` lies outside it (the VGA does not respond).
    fn window_offset(&self, addr: u32) -> Option<u32> {
        let (base, size) = match (self.gc[GC_MISC] & GCMISC_MEMORY_MAP) >> 2 {
            0 => (0xA_0000, 0x2_0000),
            1 => (0xA_0000, 0x1_0000),
            2 => (0xB_0000, 0x8000),
            _ => (0xB_8000, 0x8000),
        };
        let off = addr.checked_sub(base)?;
        (off < size).then_some(off)
    }

    /// Chain-4 mode: address bits 0-1 select the plane and the plane address is
    /// the CPU address with those bits as they are (the CRTC reads it back in
    /// doubleword mode).
    fn chain4(&self) -> bool {
        self.seq[SEQ_MEMORY_MODE] & MEMMODE_CHAIN4 != 0
    }

    /// Reads a byte of the legacy window at physical `addr` (0xA0000..=0xBFFFF).
    /// Every read loads the four latches; read mode 0 returns one plane, read
    /// mode 1 the colour-compare result.
    pub fn mem_read(&mut self, addr: u32) -> u8 {
        if self.vbe.enabled() {
            return self.vbe_bank_read(addr);
        }
        let Some(off) = self.window_offset(addr) else {
            return 0xFF;
        };
        let off = off as usize;
        let (plane_addr, sel) = if self.chain4() {
            (chain4_addr(off), off & 3)
        } else if self.gc[GC_MODE] & GCMODE_ODD_EVEN != 0 {
            let rms = (self.gc[GC_READ_MAP_SELECT] & 0b10) as usize;
            (off & !1 & (PLANE_SIZE - 1), rms | (off & 1))
        } else {
            (
                off & (PLANE_SIZE - 1),
                (self.gc[GC_READ_MAP_SELECT] & 0b11) as usize,
            )
        };
        for p in 0..4 {
            self.latch[p] = self.planes[p * PLANE_SIZE + plane_addr];
        }
        if self.gc[GC_MODE] & GCMODE_READ_MODE_1 != 0 {
            // Colour compare: a result bit is 1 where every plane selected by
            // Color Don't Care matches its Color Compare bit.
            let cc = self.gc[GC_COLOR_COMPARE];
            let dc = self.gc[GC_COLOR_DONT_CARE];
            let mut mismatch = 0u8;
            for p in 0..4 {
                if (dc >> p) & 1 != 0 {
                    mismatch |= self.latch[p] ^ expand(cc, p);
                }
            }
            !mismatch
        } else {
            self.latch[sel]
        }
    }

    /// Writes a byte of the legacy window at physical `addr`, through the write
    /// mode pipeline (rotate, set/reset, logical function, bit mask) into the
    /// planes enabled by Map Mask and the addressing mode.
    pub fn mem_write(&mut self, addr: u32, val: u8) {
        if self.vbe.enabled() {
            self.vbe_bank_write(addr, val);
            return;
        }
        let Some(off) = self.window_offset(addr) else {
            return;
        };
        let off = off as usize;
        let map_mask = self.seq[SEQ_MAP_MASK] & 0x0F;
        let (plane_addr, planes) = if self.chain4() {
            (chain4_addr(off), map_mask & (1 << (off & 3)))
        } else if self.seq[SEQ_MEMORY_MODE] & MEMMODE_ODD_EVEN_DISABLE == 0 {
            // Odd/even: even addresses reach planes 0 and 2, odd ones 1 and 3.
            let sel = if off & 1 == 0 { 0b0101 } else { 0b1010 };
            (off & !1 & (PLANE_SIZE - 1), map_mask & sel)
        } else {
            (off & (PLANE_SIZE - 1), map_mask)
        };
        if planes == 0 {
            return;
        }

        let rotate = self.gc[GC_DATA_ROTATE];
        let rotated = val.rotate_right((rotate & 0b111) as u32);
        let function = (rotate >> 3) & 0b11;
        let set_reset = self.gc[GC_SET_RESET];
        let enable_sr = self.gc[GC_ENABLE_SET_RESET];
        let mut bit_mask = self.gc[GC_BIT_MASK];
        let write_mode = self.gc[GC_MODE] & GCMODE_WRITE_MODE;

        for p in 0..4 {
            if (planes >> p) & 1 == 0 {
                continue;
            }
            let latch = self.latch[p];
            let data = match write_mode {
                0 => {
                    if (enable_sr >> p) & 1 != 0 {
                        expand(set_reset, p)
                    } else {
                        rotated
                    }
                }
                1 => {
                    // Write mode 1: the latches are written unchanged.
                    self.planes[p * PLANE_SIZE + plane_addr] = latch;
                    continue;
                }
                2 => expand(val, p),
                _ => {
                    // Write mode 3: rotated data ANDed with Bit Mask is the mask,
                    // Set/Reset is the data.
                    bit_mask = self.gc[GC_BIT_MASK] & rotated;
                    expand(set_reset, p)
                }
            };
            let data = match function {
                0 => data,
                1 => data & latch,
                2 => data | latch,
                _ => data ^ latch,
            };
            self.planes[p * PLANE_SIZE + plane_addr] = (data & bit_mask) | (latch & !bit_mask);
        }
        self.dirty = true;
    }
}
