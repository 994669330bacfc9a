//! x87 FPU, MMX and SSE state. The instruction families arrive with the
//! floating-point issue; until then these encodings raise #UD (logged once)
//! and CPUID does not advertise FPU/MMX/FXSR/SSE.

use crate::cpu::decode::{Handler, Op};
use iced_x86::Instruction;

/// CPUID.1:EDX bits contributed by this module (none yet).
pub const CPUID_EDX: u32 = 0;
/// CPUID.1:ECX bits contributed by this module (none yet).
pub const CPUID_ECX: u32 = 0;

/// Architectural x87/SSE register state (the FXSAVE image, SDM Vol. 1 10.5.1).
#[derive(Clone, Debug)]
pub struct FpuState {
    pub fcw: u16,
    pub fsw: u16,
    pub ftw: u16,
    pub st: [[u8; 10]; 8],
    pub xmm: [u128; 16],
    pub mxcsr: u32,
}

impl Default for FpuState {
    fn default() -> Self {
        FpuState {
            fcw: 0x40,
            fsw: 0,
            ftw: 0x5555,
            st: [[0; 10]; 8],
            xmm: [0; 16],
            mxcsr: 0x1F80,
        }
    }
}

pub fn handler_for(_ins: &Instruction, _op: &mut Op) -> Option<Handler> {
    None
}
