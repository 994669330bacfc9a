//! x87 FPU state and instructions, and the state-management instructions
//! shared with SSE (FXSAVE/FXRSTOR). MMX and SSE instruction semantics live in
//! `cpu::simd`; both families share [`FpuState`], because MMX registers alias
//! the x87 significands (SDM Vol. 1 9.5) and FXSAVE stores both.

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod hostdiff;
pub mod softfloat;
pub mod state;
#[cfg(test)]
mod tests;
pub mod transcendental;
pub mod x87;

use super::decode::{Handler, Op};
use super::state::{cr0, cr4};
use super::{vector, Cpu, Fault, Res};
use iced_x86::Instruction;

/// CPUID.1:EDX bits contributed by the x87 side: FPU (bit 0) and FXSR
/// (bit 24, FXSAVE/FXRSTOR and CR4.OSFXSR).
pub const CPUID_EDX: u32 = super::cpuid::edx1::FPU | super::cpuid::edx1::FXSR;
/// CPUID.1:ECX bits contributed by the x87 side.
pub const CPUID_ECX: u32 = 0;

/// One x87 physical register: 64-bit significand (explicit integer bit) and
/// sign + 15-bit exponent, the double-extended format of SDM Vol. 1 4.2.2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct F80 {
    pub signif: u64,
    pub sign_exp: u16,
}

/// FCW/FSW/FTW bit fields (SDM Vol. 1 8.1.3, 8.1.5, 8.1.7).
pub mod fsw {
    pub const IE: u16 = 1 << 0;
    pub const DE: u16 = 1 << 1;
    pub const ZE: u16 = 1 << 2;
    pub const OE: u16 = 1 << 3;
    pub const UE: u16 = 1 << 4;
    pub const PE: u16 = 1 << 5;
    pub const SF: u16 = 1 << 6;
    pub const ES: u16 = 1 << 7;
    pub const C0: u16 = 1 << 8;
    pub const C1: u16 = 1 << 9;
    pub const C2: u16 = 1 << 10;
    pub const TOP_SHIFT: u16 = 11;
    pub const TOP: u16 = 7 << TOP_SHIFT;
    pub const C3: u16 = 1 << 14;
    pub const B: u16 = 1 << 15;
}

/// Architectural x87/MMX/SSE register state. Field meanings follow the FXSAVE
/// image (SDM Vol. 1 10.5.1, Table 10-2), except that `ftw` is the full
/// 2-bit-per-register tag word (FSTENV layout), not FXSAVE's abridged byte.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FpuState {
    pub fcw: u16,
    /// Status word including TOP in bits 13:11.
    pub fsw: u16,
    /// Full tag word: 2 bits per *physical* register R0..R7 (00 valid,
    /// 01 zero, 10 special, 11 empty).
    pub ftw: u16,
    /// Physical registers R0..R7; ST(i) is `st[(TOP + i) & 7]`.
    pub st: [F80; 8],
    /// Last non-control x87 instruction: opcode (11 bits), instruction and
    /// data pointers with their selectors.
    pub fop: u16,
    pub fip: u64,
    pub fcs: u16,
    pub fdp: u64,
    pub fds: u16,
    pub xmm: [u128; 16],
    pub mxcsr: u32,
}

impl Default for FpuState {
    /// Power-on state (SDM Vol. 3A 9.1.1, Table 9-1): FCW 0040h, FTW 5555h,
    /// MXCSR 1F80h; FINIT later sets FCW 037Fh and FTW FFFFh.
    fn default() -> Self {
        FpuState {
            fcw: 0x40,
            fsw: 0,
            ftw: 0x5555,
            st: [F80::default(); 8],
            fop: 0,
            fip: 0,
            fcs: 0,
            fdp: 0,
            fds: 0,
            xmm: [0; 16],
            mxcsr: 0x1F80,
        }
    }
}

/// Tag values of the full tag word (SDM Vol. 1 8.1.7).
pub mod tag {
    pub const VALID: u16 = 0;
    pub const ZERO: u16 = 1;
    pub const SPECIAL: u16 = 2;
    pub const EMPTY: u16 = 3;
}

impl FpuState {
    /// FNINIT state (SDM Vol. 2A FINIT): FCW 037Fh, FSW 0, all tags empty,
    /// pointers and opcode cleared. Register contents are kept.
    pub fn init(&mut self) {
        self.fcw = 0x37F;
        self.fsw = 0;
        self.ftw = 0xFFFF;
        self.fop = 0;
        self.fip = 0;
        self.fcs = 0;
        self.fdp = 0;
        self.fds = 0;
    }

    /// Physical register number of ST(i).
    #[inline(always)]
    pub fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }

    /// The 2-bit tag of physical register `r`.
    #[inline(always)]
    pub fn tag(&self, r: usize) -> u16 {
        (self.ftw >> (2 * (r & 7))) & 3
    }

    #[inline(always)]
    pub fn set_tag(&mut self, r: usize, t: u16) {
        let sh = 2 * (r & 7);
        self.ftw = (self.ftw & !(3 << sh)) | ((t & 3) << sh);
    }

    /// Is ST(i) empty?
    #[inline(always)]
    pub fn st_empty(&self, i: usize) -> bool {
        self.tag(self.phys(i)) == tag::EMPTY
    }

    /// ST(i) (whatever the tag says).
    #[inline(always)]
    pub fn st(&self, i: usize) -> F80 {
        self.st[self.phys(i)]
    }

    /// The tag a value gets when written to a register: 01 zero, 10 special
    /// (NaN, infinity, denormal, unsupported), 00 valid (SDM Vol. 1 8.1.7).
    pub fn tag_of(v: F80) -> u16 {
        use softfloat::Class::*;
        match v.class() {
            Zero => tag::ZERO,
            Normal => tag::VALID,
            _ => tag::SPECIAL,
        }
    }

    /// Writes ST(i) and its tag.
    #[inline]
    pub fn set_st(&mut self, i: usize, v: F80) {
        let r = self.phys(i);
        self.st[r] = v;
        self.set_tag(r, Self::tag_of(v));
    }

    #[inline(always)]
    pub fn set_top(&mut self, t: usize) {
        self.fsw = (self.fsw & !fsw::TOP) | (((t & 7) as u16) << fsw::TOP_SHIFT);
    }

    /// Decrements TOP and writes the new ST(0) (no overflow check).
    #[inline]
    pub fn push(&mut self, v: F80) {
        let t = self.top().wrapping_sub(1) & 7;
        self.set_top(t);
        self.set_st(0, v);
    }

    /// Marks ST(0) empty and increments TOP.
    #[inline]
    pub fn pop(&mut self) {
        let r = self.phys(0);
        self.set_tag(r, tag::EMPTY);
        self.set_top(self.top() + 1);
    }

    /// The full tag word as FSTENV/FSAVE store it: empty stays empty, the
    /// others are recomputed from the register contents (as the host does).
    pub fn full_tag_word(&self) -> u16 {
        let mut w = 0u16;
        for r in 0..8 {
            let t = if self.tag(r) == tag::EMPTY {
                tag::EMPTY
            } else {
                Self::tag_of(self.st[r])
            };
            w |= t << (2 * r);
        }
        w
    }

    /// The abridged tag byte of FXSAVE: bit r set if R(r) is not empty.
    pub fn abridged_tag(&self) -> u8 {
        let mut b = 0u8;
        for r in 0..8 {
            if self.tag(r) != tag::EMPTY {
                b |= 1 << r;
            }
        }
        b
    }

    /// Loads a tag word: only empty/non-empty is kept, the rest is recomputed
    /// from the contents (FLDENV/FRSTOR/FXRSTOR).
    pub fn load_tags(&mut self, nonempty: u8) {
        let mut w = 0u16;
        for r in 0..8 {
            let t = if nonempty & (1 << r) == 0 {
                tag::EMPTY
            } else {
                Self::tag_of(self.st[r])
            };
            w |= t << (2 * r);
        }
        self.ftw = w;
    }

    /// Recomputes ES and B from the exception flags and masks (FLDCW, FLDENV,
    /// FRSTOR, FXRSTOR unmasking a pending flag sets ES, as the host does).
    pub fn update_es(&mut self) {
        if self.fsw & !self.fcw & 0x3F != 0 {
            self.fsw |= fsw::ES | fsw::B;
        } else {
            self.fsw &= !(fsw::ES | fsw::B);
        }
    }

    /// TOP field of the status word.
    #[inline(always)]
    pub fn top(&self) -> usize {
        ((self.fsw & fsw::TOP) >> fsw::TOP_SHIFT) as usize
    }

    /// MMX register `i` (MM0..MM7 alias the significands of R0..R7).
    #[inline(always)]
    pub fn mmx(&self, i: usize) -> u64 {
        self.st[i & 7].signif
    }

    /// Writes MMX register `i`: bits 79:64 of the physical register become all
    /// ones (SDM Vol. 1 9.5.1), and the x87 state enters MMX mode.
    #[inline(always)]
    pub fn set_mmx(&mut self, i: usize, v: u64) {
        self.st[i & 7] = F80 {
            signif: v,
            sign_exp: 0xFFFF,
        };
    }

    /// Every MMX instruction except EMMS sets TOP to 0 and all tags to valid
    /// (SDM Vol. 1 Table 9-3).
    #[inline(always)]
    pub fn enter_mmx(&mut self) {
        self.fsw &= !fsw::TOP;
        self.ftw = 0;
    }

    /// EMMS: all tags empty.
    #[inline(always)]
    pub fn emms(&mut self) {
        self.ftw = 0xFFFF;
    }
}

impl Cpu {
    /// WAIT/FWAIT (SDM Vol. 3A 2.5, Table 2-2): #NM only if CR0.MP and CR0.TS.
    #[inline(always)]
    pub fn check_wait(&self) -> Res {
        if self.cr0 & (cr0::MP | cr0::TS) == (cr0::MP | cr0::TS) {
            return Err(Fault::new(vector::NM));
        }
        Ok(())
    }

    /// The pending-exception check of every waiting x87 instruction (SDM Vol.
    /// 1 8.6, Vol. 3A 2.5 CR0.NE): with FSW.ES set, CR0.NE=1 raises #MF before
    /// the instruction; CR0.NE=0 is the PC/AT path, which asserts FERR# (the
    /// machine routes [`Cpu::ferr`] to IRQ13) and carries on as if IGNNE#
    /// were asserted.
    #[inline(always)]
    pub fn fpu_pending(&mut self) -> Res {
        if self.fpu.fsw & fsw::ES != 0 {
            if self.cr0 & cr0::NE != 0 {
                return Err(Fault::new(vector::MF));
            }
            if !self.ferr {
                self.ferr = true;
                // Let the machine raise IRQ13 at the next block boundary.
                self.stop_request = true;
            }
        }
        Ok(())
    }

    /// Device-not-available checks for x87 instructions (SDM Vol. 3A 2.5,
    /// Table 2-2): CR0.EM or CR0.TS raise #NM.
    #[inline(always)]
    pub fn check_x87(&self) -> Res {
        if self.cr0 & (cr0::EM | cr0::TS) != 0 {
            return Err(Fault::new(vector::NM));
        }
        Ok(())
    }

    /// Availability checks for SSE/SSE2 instructions (SDM Vol. 3A 13.1,
    /// Table 2-2): CR0.EM or CR4.OSFXSR clear raise #UD, then CR0.TS raises #NM.
    #[inline(always)]
    pub fn check_sse(&self) -> Res {
        if self.cr0 & cr0::EM != 0 || self.cr4 & cr4::OSFXSR == 0 {
            return Err(Fault::ud());
        }
        if self.cr0 & cr0::TS != 0 {
            return Err(Fault::new(vector::NM));
        }
        Ok(())
    }

    /// Availability checks for MMX instructions (SDM Vol. 1 9.6.1): CR0.EM
    /// raises #UD, CR0.TS raises #NM.
    #[inline(always)]
    pub fn check_mmx(&self) -> Res {
        if self.cr0 & cr0::EM != 0 {
            return Err(Fault::ud());
        }
        if self.cr0 & cr0::TS != 0 {
            return Err(Fault::new(vector::NM));
        }
        Ok(())
    }
}

/// Handlers for x87 instructions and the state instructions (FXSAVE,
/// FXRSTOR, FSAVE, FRSTOR, FSTENV, FLDENV, ...); `None` if not one of them.
pub fn handler_for(ins: &Instruction, op: &mut Op) -> Option<Handler> {
    x87::handler_for(ins, op)
}
