//! MMX, SSE and SSE2 instructions (SDM Vol. 1 chapters 9-11). The register
//! state lives in [`crate::cpu::fpu::FpuState`] (XMM0-15, MXCSR, and the MMX
//! registers aliased onto the x87 significands).

use super::decode::{Handler, Op};
use iced_x86::Instruction;

/// CPUID.1:EDX bits contributed by this module (MMX, SSE, SSE2 when complete).
pub const CPUID_EDX: u32 = 0;
/// CPUID.1:ECX bits contributed by this module (SSE3, SSSE3, ... when complete).
pub const CPUID_ECX: u32 = 0;

/// MXCSR bits software may set (SDM Vol. 1 11.6.6): 15:0, DAZ included;
/// LDMXCSR/FXRSTOR of any bit outside it raises #GP(0). Reported in the
/// FXSAVE image's MXCSR_MASK field.
pub const MXCSR_MASK: u32 = 0xFFFF;

/// Handlers for MMX/SSE/SSE2 instructions; `None` if not one of them.
pub fn handler_for(_ins: &Instruction, _op: &mut Op) -> Option<Handler> {
    None
}
