//! Lazy status flags.
//!
//! Arithmetic instructions do not compute CF/PF/AF/ZF/SF/OF; they record the
//! operation, its operands and its result, and the flags are derived only when
//! something reads them (Jcc, SETcc, PUSHF, ADC, ...). `lazy` says which of the
//! six status flags are to be derived; the others live in `bits`. The carry
//! and overflow formulas are the standard full-adder identities on the most
//! significant bit (SDM Vol. 1 3.4.3.1 defines the flags; the derivations are
//! exact for ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC at every operand size).

use super::state::rflags::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LazyOp {
    /// res = a + b (+ carry in)
    Add,
    /// res = a - b (- borrow in)
    Sub,
    /// AND/OR/XOR/TEST: CF = OF = 0, AF = 0 (undefined on hardware).
    Logic,
    /// Shifts and multiplies: the instruction computed CF and OF itself and
    /// left them in `a` and `b` (all ones for set, zero for clear); SF, ZF
    /// and PF follow the result, AF is 0 (undefined on hardware). Keeping
    /// them lazy saves materializing the previous flags on every SHL/SHR/
    /// SAR/IMUL, which bignum and hash loops issue back to back.
    Given,
}

#[derive(Clone, Copy, Debug)]
pub struct Flags {
    /// RFLAGS; the status bits named in `lazy` are stale.
    pub bits: u64,
    pub lazy: u64,
    pub op: LazyOp,
    /// Operand size in bits minus one (7, 15, 31, 63).
    pub msb: u8,
    pub a: u64,
    pub b: u64,
    pub res: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            bits: FIXED1,
            lazy: 0,
            op: LazyOp::Logic,
            msb: 7,
            a: 0,
            b: 0,
            res: 0,
        }
    }
}

/// Operand masks indexed by size in bytes (mod 16): 1, 2 and 4 bytes get
/// their mask, every other size (8, 10, 16, ...) all ones.
const SIZE_MASKS: [u64; 16] = {
    let mut t = [u64::MAX; 16];
    t[1] = 0xFF;
    t[2] = 0xFFFF;
    t[4] = 0xFFFF_FFFF;
    t
};

/// The mask of an operand of `size` bytes: one table load, no branches (a
/// `match` here compiled to a jump table on every register and memory access).
#[inline(always)]
pub fn size_mask(size: u8) -> u64 {
    SIZE_MASKS[(size & 15) as usize]
}

#[inline(always)]
pub fn msb_of(size: u8) -> u8 {
    size * 8 - 1
}

impl Flags {
    #[inline(always)]
    pub fn set_lazy(&mut self, op: LazyOp, size: u8, a: u64, b: u64, res: u64, which: u64) {
        self.op = op;
        self.msb = msb_of(size);
        self.a = a;
        self.b = b;
        self.res = res;
        self.lazy = which;
    }

    /// Records an ADD-family result; all six flags become lazy.
    #[inline(always)]
    pub fn add(&mut self, size: u8, a: u64, b: u64, res: u64) {
        self.set_lazy(LazyOp::Add, size, a, b, res, STATUS);
    }
    #[inline(always)]
    pub fn sub(&mut self, size: u8, a: u64, b: u64, res: u64) {
        self.set_lazy(LazyOp::Sub, size, a, b, res, STATUS);
    }
    #[inline(always)]
    pub fn logic(&mut self, size: u8, res: u64) {
        self.set_lazy(LazyOp::Logic, size, 0, 0, res, STATUS);
    }
    /// Records a result whose CF and OF the instruction computed; SF/ZF/PF
    /// follow `res`, AF reads 0. All six flags become lazy.
    #[inline(always)]
    pub fn given(&mut self, size: u8, cf: bool, of: bool, res: u64) {
        let all = |b: bool| (b as u64).wrapping_neg();
        self.set_lazy(LazyOp::Given, size, all(cf), all(of), res, STATUS);
    }

    #[inline(always)]
    fn res_m(&self) -> u64 {
        let sh = 63 - self.msb as u32;
        (self.res << sh) >> sh
    }

    #[inline(always)]
    pub fn cf(&self) -> bool {
        if self.lazy & CF == 0 {
            return self.bits & CF != 0;
        }
        let (a, b, r) = (self.a, self.b, self.res);
        let c = match self.op {
            LazyOp::Add => (a & b) | ((a | b) & !r),
            LazyOp::Sub => (!a & b) | ((!a | b) & r),
            LazyOp::Logic => 0,
            LazyOp::Given => a,
        };
        (c >> self.msb) & 1 != 0
    }
    #[inline(always)]
    pub fn zf(&self) -> bool {
        if self.lazy & ZF == 0 {
            return self.bits & ZF != 0;
        }
        self.res_m() == 0
    }
    #[inline(always)]
    pub fn sf(&self) -> bool {
        if self.lazy & SF == 0 {
            return self.bits & SF != 0;
        }
        (self.res >> self.msb) & 1 != 0
    }
    #[inline(always)]
    pub fn of(&self) -> bool {
        if self.lazy & OF == 0 {
            return self.bits & OF != 0;
        }
        let (a, b, r) = (self.a, self.b, self.res);
        let o = match self.op {
            LazyOp::Add => (a ^ r) & (b ^ r),
            LazyOp::Sub => (a ^ b) & (a ^ r),
            LazyOp::Logic => 0,
            LazyOp::Given => b,
        };
        (o >> self.msb) & 1 != 0
    }
    #[inline(always)]
    pub fn pf(&self) -> bool {
        if self.lazy & PF == 0 {
            return self.bits & PF != 0;
        }
        (self.res as u8).count_ones() & 1 == 0
    }
    #[inline(always)]
    pub fn af(&self) -> bool {
        if self.lazy & AF == 0 {
            return self.bits & AF != 0;
        }
        match self.op {
            LazyOp::Logic | LazyOp::Given => false,
            _ => (self.a ^ self.b ^ self.res) & 0x10 != 0,
        }
    }

    /// The full RFLAGS value.
    #[inline]
    pub fn get(&self) -> u64 {
        if self.lazy == 0 {
            return self.bits;
        }
        let mut f = self.bits & !self.lazy;
        let l = self.lazy;
        if l & CF != 0 && self.cf() {
            f |= CF;
        }
        if l & PF != 0 && self.pf() {
            f |= PF;
        }
        if l & AF != 0 && self.af() {
            f |= AF;
        }
        if l & ZF != 0 && self.zf() {
            f |= ZF;
        }
        if l & SF != 0 && self.sf() {
            f |= SF;
        }
        if l & OF != 0 && self.of() {
            f |= OF;
        }
        f
    }

    /// Replaces RFLAGS wholesale (the caller has already applied any
    /// privilege-dependent masking).
    #[inline]
    pub fn set(&mut self, v: u64) {
        self.bits = v | FIXED1;
        self.lazy = 0;
    }

    /// Materializes the lazy flags, then sets/clears the given status bits.
    #[inline]
    pub fn set_status(&mut self, mask: u64, v: u64) {
        let f = self.get();
        self.bits = (f & !mask) | (v & mask);
        self.lazy = 0;
    }

    #[inline(always)]
    pub fn set_cf(&mut self, c: bool) {
        let f = self.get();
        self.bits = (f & !CF) | c as u64;
        self.lazy = 0;
    }

    /// Condition codes 0..15 as in Jcc/SETcc/CMOVcc (SDM Vol. 1 B.1).
    #[inline(always)]
    pub fn cond(&self, cc: u8) -> bool {
        let r = match cc >> 1 {
            0 => self.of(),
            1 => self.cf(),
            2 => self.zf(),
            3 => self.cf() || self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => self.sf() != self.of(),
            _ => self.zf() || (self.sf() != self.of()),
        };
        r ^ (cc & 1 != 0)
    }
}

/// Parity flag of the low byte: set if the number of one bits is even.
#[inline(always)]
pub fn parity(v: u64) -> bool {
    (v as u8).count_ones() & 1 == 0
}

/// The PF/ZF/SF bits for a result of `size` bytes, as an RFLAGS fragment.
#[inline(always)]
pub fn szp(size: u8, res: u64) -> u64 {
    let m = size_mask(size);
    let mut f = 0;
    if res & m == 0 {
        f |= ZF;
    }
    if (res >> msb_of(size)) & 1 != 0 {
        f |= SF;
    }
    if parity(res) {
        f |= PF;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_carry_and_overflow_8bit() {
        let mut f = Flags::default();
        f.add(1, 0x7F, 1, 0x80);
        assert!(!f.cf() && f.of() && f.sf() && !f.zf() && f.af());
        f.add(1, 0xFF, 1, 0x100);
        assert!(f.cf() && !f.of() && f.zf() && !f.sf() && f.pf());
    }

    #[test]
    fn sub_borrow_and_overflow_32bit() {
        let mut f = Flags::default();
        f.sub(4, 0, 1, 0u64.wrapping_sub(1));
        assert!(f.cf() && !f.of() && f.sf());
        f.sub(4, 0x8000_0000, 1, 0x7FFF_FFFF);
        assert!(!f.cf() && f.of() && !f.sf());
        assert!(f.cond(0)); // JO
        assert!(f.cond(0xC)); // JL: SF != OF
    }

    #[test]
    fn given_flags_match_the_eager_form() {
        for (sz, cf, of, res) in [
            (1u8, true, false, 0x80u64),
            (2, false, true, 0x1_0000),
            (4, true, true, 0x3),
            (8, false, false, 0x8000_0000_0000_0000),
        ] {
            let mut f = Flags::default();
            f.set(FIXED1 | AF | CF | OF);
            f.given(sz, cf, of, res);
            let mut want = FIXED1 | szp(sz, res);
            if cf {
                want |= CF;
            }
            if of {
                want |= OF;
            }
            assert_eq!(f.get(), want, "size {sz} res {res:#x}");
            assert_eq!((f.cf(), f.of(), f.af()), (cf, of, false));
        }
    }

    #[test]
    fn inc_keeps_carry() {
        let mut f = Flags::default();
        f.set(FIXED1 | CF);
        let cf = f.cf();
        f.set_lazy(LazyOp::Add, 2, 0xFFFF, 1, 0x10000, STATUS & !CF);
        f.bits = (f.bits & !CF) | cf as u64;
        assert!(f.cf() && f.zf() && f.get() & CF != 0);
    }
}
