//! x87 FPU state and instructions, and the state-management instructions
//! shared with SSE (FXSAVE/FXRSTOR). MMX and SSE instruction semantics live in
//! `cpu::simd`; both families share [`FpuState`], because MMX registers alias
//! the x87 significands (SDM Vol. 1 9.5) and FXSAVE stores both.

use super::decode::{Handler, Op};
use super::state::{cr0, cr4};
use super::{vector, Cpu, Fault, Res};
use iced_x86::Instruction;

/// CPUID.1:EDX bits contributed by the x87 side (FPU, FXSR when complete).
pub const CPUID_EDX: u32 = 0;
/// CPUID.1:ECX bits contributed by the x87 side.
pub const CPUID_ECX: u32 = 0;

/// One x87 physical register: 64-bit significand (explicit integer bit) and
/// sign + 15-bit exponent, the double-extended format of SDM Vol. 1 4.2.2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Debug)]
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

impl FpuState {
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
pub fn handler_for(_ins: &Instruction, _op: &mut Op) -> Option<Handler> {
    None
}
