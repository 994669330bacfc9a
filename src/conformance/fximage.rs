//! The FP/SIMD part of a test's state as a 512-byte FXSAVE image (SDM Vol. 1
//! 10.5.1, Table 10-2, 64-bit format), and its conversion to and from the
//! emulator's [`FpuState`].
//!
//! The native runner loads the image with FXRSTOR64 before the test code and
//! stores it with FXSAVE64 afterwards (or copies it from the signal frame after
//! a fault); the emulator runner converts it to `FpuState` and back. Using the
//! hardware's own format means the two sides agree on every bit without a
//! second description of the state.

use crate::cpu::fpu::{fsw, FpuState, F80};

/// Byte offsets in the FXSAVE image (SDM Vol. 1 Table 10-2).
pub mod off {
    pub const FCW: usize = 0;
    pub const FSW: usize = 2;
    /// Abridged tag byte: bit i set = physical register Ri is not empty.
    pub const FTW: usize = 4;
    pub const FOP: usize = 6;
    pub const FIP: usize = 8;
    pub const FDP: usize = 16;
    pub const MXCSR: usize = 24;
    pub const MXCSR_MASK: usize = 28;
    /// ST(i)/MM(i) at `ST + 16 * i`, 10 bytes used, in stack (not physical) order.
    pub const ST: usize = 32;
    /// XMM(i) at `XMM + 16 * i`.
    pub const XMM: usize = 160;
}

/// One FXSAVE image.
#[derive(Clone, PartialEq, Eq)]
pub struct FxImage(pub [u8; 512]);

impl Default for FxImage {
    /// The state after FNINIT plus the MXCSR reset value: FCW 037Fh, all
    /// registers empty and zero, MXCSR 1F80h, XMM registers zero.
    fn default() -> Self {
        let mut f = FxImage::zeroed();
        f.set_u16(off::FCW, 0x037F);
        f.set_u32(off::MXCSR, 0x1F80);
        f
    }
}

impl std::fmt::Debug for FxImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FxImage {{ fcw: {:#06x}, fsw: {:#06x}, ftw: {:#04x}, mxcsr: {:#010x}, ",
            self.u16_at(off::FCW),
            self.u16_at(off::FSW),
            self.0[off::FTW],
            self.mxcsr()
        )?;
        for i in 0..8 {
            let (s, e) = self.st(i);
            write!(f, "st{i}: {e:04x}:{s:016x}, ")?;
        }
        for i in 0..16 {
            write!(f, "xmm{i}: {:032x}, ", self.xmm(i))?;
        }
        write!(f, "}}")
    }
}

impl FxImage {
    /// All bytes zero (also the "nothing masked" value of a mask).
    pub fn zeroed() -> FxImage {
        FxImage([0; 512])
    }

    pub fn u16_at(&self, o: usize) -> u16 {
        u16::from_le_bytes([self.0[o], self.0[o + 1]])
    }
    pub fn set_u16(&mut self, o: usize, v: u16) {
        self.0[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }
    pub fn u32_at(&self, o: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[o..o + 4]);
        u32::from_le_bytes(b)
    }
    pub fn set_u32(&mut self, o: usize, v: u32) {
        self.0[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    pub fn u64_at(&self, o: usize) -> u64 {
        let mut b = [0; 8];
        b.copy_from_slice(&self.0[o..o + 8]);
        u64::from_le_bytes(b)
    }
    pub fn set_u64(&mut self, o: usize, v: u64) {
        self.0[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }

    pub fn mxcsr(&self) -> u32 {
        self.u32_at(off::MXCSR)
    }
    pub fn set_mxcsr(&mut self, v: u32) {
        self.set_u32(off::MXCSR, v)
    }
    pub fn xmm(&self, i: usize) -> u128 {
        let o = off::XMM + 16 * (i & 15);
        let mut b = [0; 16];
        b.copy_from_slice(&self.0[o..o + 16]);
        u128::from_le_bytes(b)
    }
    pub fn set_xmm(&mut self, i: usize, v: u128) {
        let o = off::XMM + 16 * (i & 15);
        self.0[o..o + 16].copy_from_slice(&v.to_le_bytes());
    }
    /// ST(i) as (significand, sign+exponent).
    pub fn st(&self, i: usize) -> (u64, u16) {
        let o = off::ST + 16 * (i & 7);
        (self.u64_at(o), self.u16_at(o + 8))
    }
    pub fn set_st(&mut self, i: usize, signif: u64, sign_exp: u16) {
        let o = off::ST + 16 * (i & 7);
        self.set_u64(o, signif);
        self.set_u16(o + 8, sign_exp);
    }

    /// Sets MMX register `i` as an MMX write would leave it: significand `v`,
    /// exponent bits all ones, TOP = 0 and every tag valid.
    pub fn set_mmx(&mut self, i: usize, v: u64) {
        self.set_st(i, v, 0xFFFF);
        let fsw = self.u16_at(off::FSW) & !(7 << 11);
        self.set_u16(off::FSW, fsw);
        self.0[off::FTW] = 0xFF;
    }

    /// The image of `s`, as FXSAVE64 would store it.
    pub fn from_state(s: &FpuState) -> FxImage {
        let mut f = FxImage::zeroed();
        f.set_u16(off::FCW, s.fcw);
        // FSW.B mirrors ES on current processors (SDM Vol. 1 8.1.3.1).
        let b = if s.fsw & fsw::ES != 0 { fsw::B } else { 0 };
        f.set_u16(off::FSW, (s.fsw & !fsw::B) | b);
        let mut abridged = 0u8;
        for p in 0..8 {
            if (s.ftw >> (2 * p)) & 3 != 3 {
                abridged |= 1 << p;
            }
        }
        f.0[off::FTW] = abridged;
        f.set_u16(off::FOP, s.fop & 0x7FF);
        f.set_u64(off::FIP, s.fip);
        f.set_u64(off::FDP, s.fdp);
        f.set_u32(off::MXCSR, s.mxcsr);
        f.set_u32(off::MXCSR_MASK, crate::cpu::simd::MXCSR_MASK);
        let top = s.top();
        for i in 0..8 {
            let r = s.st[(top + i) & 7];
            f.set_st(i, r.signif, r.sign_exp);
        }
        for (i, x) in s.xmm.iter().enumerate() {
            f.set_xmm(i, *x);
        }
        f
    }

    /// Loads this image into `s`, as FXRSTOR64 would (the full tag word is
    /// recomputed from the abridged one and the register contents, SDM Vol. 1
    /// 10.5.1.1 / FXRSTOR).
    pub fn to_state(&self, s: &mut FpuState) {
        s.fcw = self.u16_at(off::FCW);
        s.fsw = self.u16_at(off::FSW);
        s.fop = self.u16_at(off::FOP) & 0x7FF;
        s.fip = self.u64_at(off::FIP);
        s.fdp = self.u64_at(off::FDP);
        s.mxcsr = self.mxcsr();
        let top = s.top();
        for i in 0..8 {
            let (signif, sign_exp) = self.st(i);
            s.st[(top + i) & 7] = F80 { signif, sign_exp };
        }
        let abridged = self.0[off::FTW];
        let mut ftw = 0u16;
        for p in 0..8 {
            let tag = if abridged & (1 << p) == 0 {
                3
            } else {
                full_tag(s.st[p])
            };
            ftw |= tag << (2 * p);
        }
        s.ftw = ftw;
        for (i, x) in s.xmm.iter_mut().enumerate() {
            *x = self.xmm(i);
        }
    }
}

/// The 2-bit tag of a non-empty register from its contents (SDM Vol. 1 8.1.7):
/// 00 valid, 01 zero, 10 special (NaN, infinity, denormal, unnormal).
fn full_tag(r: F80) -> u16 {
    let exp = r.sign_exp & 0x7FFF;
    if exp == 0x7FFF {
        2
    } else if exp == 0 {
        if r.signif == 0 {
            1
        } else {
            2
        }
    } else if r.signif >> 63 == 0 {
        2
    } else {
        0
    }
}

/// The parts of the image `compare` checks: FCW, FSW, the abridged tag byte,
/// MXCSR, the eight 80-bit registers and XMM0-15 (FOP, FIP, FDP and
/// MXCSR_MASK are not compared). Each entry: (name, offset, length).
pub fn compared_fields() -> Vec<(String, usize, usize)> {
    let mut v = vec![
        ("fcw".to_string(), off::FCW, 2),
        ("fsw".to_string(), off::FSW, 2),
        ("ftw".to_string(), off::FTW, 1),
        ("mxcsr".to_string(), off::MXCSR, 4),
    ];
    for i in 0..8 {
        v.push((format!("st{i}"), off::ST + 16 * i, 10));
    }
    for i in 0..16 {
        v.push((format!("xmm{i}"), off::XMM + 16 * i, 16));
    }
    v
}

/// Differences between two images in the compared fields, ignoring bits set in
/// `undefined`.
pub fn diff(native: &FxImage, emu: &FxImage, undefined: &FxImage) -> Vec<String> {
    let mut out = Vec::new();
    for (name, o, len) in compared_fields() {
        let differs = (o..o + len).any(|k| (native.0[k] ^ emu.0[k]) & !undefined.0[k] != 0);
        if differs {
            let hex = |f: &FxImage| {
                f.0[o..o + len]
                    .iter()
                    .rev()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            };
            out.push(format!(
                "{name}: native {} emulated {}",
                hex(native),
                hex(emu)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_image() {
        let mut s = FpuState {
            fcw: 0x027F,
            fsw: 5 << 11 | 0x21,
            mxcsr: 0x9FC0,
            ..FpuState::default()
        };
        s.xmm[3] = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210;
        s.st[5] = F80 {
            signif: 0x8000_0000_0000_0000,
            sign_exp: 0x3FFF,
        };
        s.st[6] = F80 {
            signif: 0,
            sign_exp: 0x8000,
        };
        // R5 valid, R6 zero, others empty.
        s.ftw = 0xD3FF;
        let img = FxImage::from_state(&s);
        // TOP = 5: ST(0) is R5, ST(1) is R6.
        assert_eq!(img.st(0), (0x8000_0000_0000_0000, 0x3FFF));
        assert_eq!(img.st(1), (0, 0x8000));
        assert_eq!(img.0[off::FTW], 0b0110_0000);
        let mut t = FpuState::default();
        img.to_state(&mut t);
        assert_eq!(t.ftw, s.ftw);
        assert_eq!(t.st, s.st);
        assert_eq!(t.xmm, s.xmm);
        assert_eq!((t.fcw, t.fsw, t.mxcsr), (s.fcw, s.fsw, s.mxcsr));
    }

    #[test]
    fn diff_honours_the_mask() {
        let a = FxImage::default();
        let mut b = FxImage::default();
        b.set_xmm(2, 1 << 70);
        assert_eq!(diff(&a, &b, &FxImage::zeroed()).len(), 1);
        let mut m = FxImage::zeroed();
        m.set_xmm(2, u128::MAX << 64);
        assert!(diff(&a, &b, &m).is_empty());
        b.set_mxcsr(0x1F81);
        assert!(diff(&a, &b, &m)[0].starts_with("mxcsr"));
    }
}
