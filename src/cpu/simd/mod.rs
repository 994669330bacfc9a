//! MMX, SSE and SSE2 instructions (SDM Vol. 1 chapters 9-11). The register
//! state lives in [`crate::cpu::fpu::FpuState`] (XMM0-15, MXCSR, and the MMX
//! registers aliased onto the x87 significands).
//!
//! Decoding: [`handler_for`] rewrites the operand descriptors of an [`Op`] so
//! that an XMM or MMX register operand holds its register number (0..15);
//! general registers keep their descriptor and memory operands stay
//! [`K_MEM`]. Handlers know each operand's kind from their form, so they never
//! look at `op.ins` on the hot path.
//!
//! Families: [`mov`] (data movement), [`int`] (packed integer), [`fp`]
//! (packed/scalar floating point, compares, logic, shuffles, MXCSR),
//! [`convert`] (CVT*), [`sse3`], [`ssse3`] (the later packed-integer forms,
//! reached through [`int`]), [`softfloat`] (the IEEE arithmetic they all use).

pub mod convert;
pub mod fp;
pub mod int;
pub mod mov;
pub mod softfloat;
pub mod sse3;
pub mod sse41;
pub mod ssse3;

use super::decode::{Handler, Op, K_MEM};
use super::state::cr4;
use super::{vector, Bus, Cpu, Fault, Res};
use iced_x86::{Instruction, OpKind};

/// CPUID.1:EDX bits contributed by this module: MMX (23), SSE (25), SSE2 (26).
pub const CPUID_EDX: u32 = (1 << 23) | (1 << 25) | (1 << 26);
/// CPUID.1:ECX bits contributed by this module: SSE3 (bit 0; its x87 member
/// FISTTP lives in `cpu::fpu`, all eleven instructions are host-exact under
/// `vx86 conform host`) and SSSE3 (9). SSE4.1 (bit 19) waits for DPPS/DPPD to
/// match the host's NaN and flag rules, and SSE4.2 (bit 20) for PCMPxSTRx and
/// CRC32: glibc selects routines by these bits, so a half-done extension
/// must not be advertised. MONITOR/MWAIT (bit 3) are not implemented.
pub const CPUID_ECX: u32 = (1 << 0) | (1 << 9);

/// MXCSR bits software may set (SDM Vol. 1 11.6.6): 15:0, DAZ included;
/// LDMXCSR/FXRSTOR of any bit outside it raises #GP(0). Reported in the
/// FXSAVE image's MXCSR_MASK field.
pub const MXCSR_MASK: u32 = 0xFFFF;

// ---- availability and exceptions ----

/// Start of every MMX instruction: CR0.EM raises #UD, CR0.TS #NM, and a
/// pending unmasked x87 exception #MF (SDM Vol. 1 9.6.1, Vol. 2 "#MF If there
/// is a pending FPU exception").
#[inline(always)]
pub(crate) fn mmx_start(cpu: &Cpu) -> Res {
    cpu.check_mmx()?;
    if cpu.fpu.fsw & super::fpu::fsw::ES != 0 {
        return Err(Fault::new(vector::MF));
    }
    Ok(())
}

/// SSE instructions that read or write an MMX register: the SSE checks, then
/// the pending-x87-exception check.
#[inline(always)]
pub(crate) fn sse_mmx_start(cpu: &Cpu) -> Res {
    cpu.check_sse()?;
    if cpu.fpu.fsw & super::fpu::fsw::ES != 0 {
        return Err(Fault::new(vector::MF));
    }
    Ok(())
}

/// The exception an unmasked SIMD floating-point exception raises: #XM with
/// CR4.OSXMMEXCPT set, else #UD (SDM Vol. 3A 6.15, interrupt 19).
#[inline]
pub(crate) fn simd_fp_fault(cpu: &Cpu) -> Fault {
    if cpu.cr4 & cr4::OSXMMEXCPT != 0 {
        Fault::new(vector::XM)
    } else {
        Fault::ud()
    }
}

/// Applies the flags an SSE floating-point instruction raised (SDM Vol. 1
/// 11.5.2): an unmasked pre-computation exception (IE, DE, ZE) in any element
/// sets only the pre-computation flags and faults; otherwise an unmasked
/// post-computation exception sets all flags and faults; otherwise all flags
/// are set and the caller writes the result. On a fault the destination is
/// not modified.
#[inline]
pub(crate) fn commit(cpu: &mut Cpu, env: &softfloat::Env) -> Res {
    let unmasked = env.flags & !env.masks & 0x3F;
    if unmasked & softfloat::PRE != 0 {
        cpu.fpu.mxcsr |= env.flags & softfloat::PRE;
        return Err(simd_fp_fault(cpu));
    }
    cpu.fpu.mxcsr |= env.flags & 0x3F;
    if unmasked != 0 {
        return Err(simd_fp_fault(cpu));
    }
    Ok(())
}

// ---- operand access ----

/// Linear address of the memory operand for an access of `size` bytes.
#[inline(always)]
pub(crate) fn mem_lin(cpu: &Cpu, op: &Op, size: u8, write: bool) -> Res<u64> {
    let ea = op.ea(cpu);
    cpu.seg_lin(op.seg as usize, ea, size, write)
}

/// Reads the 128-bit memory operand; `align`: the legacy-SSE 16-byte
/// alignment rule (#GP(0), SDM Vol. 1 11.6.7).
#[inline(always)]
pub(crate) fn load128(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, align: bool) -> Res<u128> {
    let lin = mem_lin(cpu, op, 16, false)?;
    if align && lin & 15 != 0 {
        return Err(Fault::gp(0));
    }
    let lo = cpu.read_lin(bus, lin, 8)?;
    let hi = cpu.read_lin(bus, lin.wrapping_add(8), 8)?;
    Ok((hi as u128) << 64 | lo as u128)
}

/// Writes the 128-bit memory operand. Both halves are probed first, so a
/// fault on the second leaves memory unchanged.
#[inline(always)]
pub(crate) fn store128(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, align: bool, v: u128) -> Res {
    let lin = mem_lin(cpu, op, 16, true)?;
    if align && lin & 15 != 0 {
        return Err(Fault::gp(0));
    }
    cpu.probe_write(bus, lin, 16)?;
    cpu.write_lin(bus, lin, 8, v as u64)?;
    cpu.write_lin(bus, lin.wrapping_add(8), 8, (v >> 64) as u64)
}

/// Reads `size` (1..8) bytes of the memory operand.
#[inline(always)]
pub(crate) fn load(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, size: u8) -> Res<u64> {
    let ea = op.ea(cpu);
    cpu.read(bus, op.seg as usize, ea, size)
}

/// Writes `size` (1..8) bytes of the memory operand.
#[inline(always)]
pub(crate) fn store(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, size: u8, v: u64) -> Res {
    let ea = op.ea(cpu);
    cpu.write(bus, op.seg as usize, ea, size, v)
}

/// Operand `i` as xmm/m128.
#[inline(always)]
pub(crate) fn src128(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
    i: usize,
    align: bool,
) -> Res<u128> {
    let k = op.o[i % 3];
    if k == K_MEM {
        load128(cpu, bus, op, align)
    } else {
        Ok(cpu.fpu.xmm[(k & 15) as usize])
    }
}

/// Operand `i` as xmm/m`size` (the low `size` bytes of a register).
#[inline(always)]
pub(crate) fn src_low(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, i: usize, size: u8) -> Res<u64> {
    let k = op.o[i % 3];
    if k == K_MEM {
        load(cpu, bus, op, size)
    } else {
        let v = cpu.fpu.xmm[(k & 15) as usize] as u64;
        Ok(if size >= 8 {
            v
        } else {
            v & ((1u64 << (8 * size)) - 1)
        })
    }
}

/// Operand `i` as mm/m64 (or mm/m32 with `size` 4).
#[inline(always)]
pub(crate) fn src_mm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, i: usize, size: u8) -> Res<u64> {
    let k = op.o[i % 3];
    if k == K_MEM {
        load(cpu, bus, op, size)
    } else {
        Ok(cpu.fpu.mmx((k & 7) as usize))
    }
}

/// Operand `i` as a general register or memory of `size` bytes.
#[inline(always)]
pub(crate) fn src_gpr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, i: usize, size: u8) -> Res<u64> {
    let k = op.o[i % 3];
    if k == K_MEM {
        load(cpu, bus, op, size)
    } else {
        Ok(cpu.reg(k, size))
    }
}

/// Writes `v` to operand `i` as a general register (zero-extending 32-bit
/// writes) or memory of `size` bytes.
#[inline(always)]
pub(crate) fn dst_gpr(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
    i: usize,
    size: u8,
    v: u64,
) -> Res {
    let k = op.o[i % 3];
    if k == K_MEM {
        store(cpu, bus, op, size, v)
    } else {
        cpu.set_reg(k, size.max(4), v);
        Ok(())
    }
}

/// Register number of operand `i` (XMM: 0..15, MMX: 0..7).
#[inline(always)]
pub(crate) fn rn(op: &Op, i: usize) -> usize {
    (op.o[i % 3] & 15) as usize
}

/// Handlers for MMX/SSE/SSE2 instructions; `None` if not one of them.
pub fn handler_for(ins: &Instruction, op: &mut Op) -> Option<Handler> {
    for i in 0..ins.op_count().min(3) {
        if ins.op_kind(i) == OpKind::Register {
            let r = ins.op_register(i);
            if r.is_xmm() {
                op.o[i as usize] = (r as u32 - iced_x86::Register::XMM0 as u32) as u8;
            } else if r.is_mm() {
                op.o[i as usize] = (r as u32 - iced_x86::Register::MM0 as u32) as u8;
            }
        }
    }
    let code = ins.code();
    mov::pick(code, ins, op)
        .or_else(|| int::pick(code, op))
        .or_else(|| fp::pick(code, op))
        .or_else(|| convert::pick(code, op))
        .or_else(|| sse3::pick(code, op))
        .or_else(|| sse41::pick(code, op))
}

#[cfg(test)]
mod tests;
