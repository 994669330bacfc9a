//! SSE/SSE2 conversions (SDM Vol. 2 CVT*, Vol. 1 11.4.4, 11.5.2): between
//! single, double and 32/64-bit integers, rounding with MXCSR.RC or, for the
//! CVTT* forms, truncating; NaN or out-of-range sources give the integer
//! indefinite (sign bit only) with IE.

use super::softfloat::{Env, F32, F64};
use super::*;
use crate::cpu::decode::Op;
use iced_x86::Code as C;

const LO32: u128 = u32::MAX as u128;
const LO64: u128 = u64::MAX as u128;

/// Element kinds.
const I32: u8 = 0;
const S: u8 = 1;
const D: u8 = 2;

/// Converts one element from kind `FROM` to kind `TO` (`trunc`: CVTT*).
#[inline(always)]
fn cvt<const FROM: u8, const TO: u8>(env: &mut Env, v: u64, trunc: bool) -> u64 {
    match (FROM, TO) {
        (I32, S) => env.from_int::<F32>(v as u32 as i32 as i64),
        (I32, D) => env.from_int::<F64>(v as u32 as i32 as i64),
        (S, I32) => env.to_int::<F32>(v, 32, trunc),
        (D, I32) => env.to_int::<F64>(v, 32, trunc),
        (S, D) => env.convert::<F32, F64>(v),
        (D, S) => env.convert::<F64, F32>(v),
        _ => v,
    }
}

#[inline(always)]
fn esize(kind: u8) -> u32 {
    if kind == D {
        64
    } else {
        32
    }
}

/// Converts the first `n` elements of `src` (kind `FROM`) into packed
/// elements of kind `TO`, starting at bit 0.
#[inline(always)]
fn pack_lanes<const FROM: u8, const TO: u8>(env: &mut Env, src: u128, n: u32, trunc: bool) -> u128 {
    let (fs, ts) = (esize(FROM), esize(TO));
    let mut r = 0u128;
    for i in 0..n {
        let v = (src >> (fs * i)) as u64;
        let v = if fs == 32 { v & 0xFFFF_FFFF } else { v };
        let c = cvt::<FROM, TO>(env, v, trunc);
        let c = if ts == 32 { c & 0xFFFF_FFFF } else { c };
        r |= (c as u128) << (ts * i);
    }
    r
}

/// XMM <- XMM/m packed conversions. `SRC`: source bytes read (16 = aligned
/// m128, 8 = m64); the result replaces the whole destination (the unused
/// upper part is zero).
pub fn cvt_x<const FROM: u8, const TO: u8, const SRC: u8, const TRUNC: bool>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
) -> Res {
    cpu.check_sse()?;
    let src = if SRC == 16 {
        src128(cpu, bus, op, 1, true)?
    } else {
        src_low(cpu, bus, op, 1, 8)? as u128
    };
    let n = (SRC as u32 * 8 / esize(FROM)).min(128 / esize(TO));
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = pack_lanes::<FROM, TO>(&mut env, src, n, TRUNC);
    commit(cpu, &env)?;
    cpu.fpu.xmm[rn(op, 0)] = r;
    Ok(())
}

/// Scalar float <-> float (CVTSS2SD, CVTSD2SS): the upper part is kept.
pub fn cvt_scalar<const FROM: u8, const TO: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_low(cpu, bus, op, 1, (esize(FROM) / 8) as u8)?;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let c = cvt::<FROM, TO>(&mut env, v, false);
    commit(cpu, &env)?;
    let d = rn(op, 0);
    let m = if TO == D { LO64 } else { LO32 };
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !m) | (c as u128 & m);
    Ok(())
}

/// CVTSI2SS/CVTSI2SD xmm, r/m32 or r/m64 (`N` bytes); upper part kept.
pub fn cvtsi2f<const TO: u8, const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_gpr(cpu, bus, op, 1, N)?;
    let v = if N == 4 {
        v as u32 as i32 as i64
    } else {
        v as i64
    };
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let c = if TO == D {
        env.from_int::<F64>(v)
    } else {
        env.from_int::<F32>(v)
    };
    commit(cpu, &env)?;
    let d = rn(op, 0);
    let m = if TO == D { LO64 } else { LO32 };
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !m) | (c as u128 & m);
    Ok(())
}

/// CVT(T)SS2SI / CVT(T)SD2SI r32/r64, xmm/m.
pub fn cvtf2si<const FROM: u8, const N: u8, const TRUNC: bool>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
) -> Res {
    cpu.check_sse()?;
    let v = src_low(cpu, bus, op, 1, (esize(FROM) / 8) as u8)?;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let bits = 8 * N as u32;
    let r = if FROM == D {
        env.to_int::<F64>(v, bits, TRUNC)
    } else {
        env.to_int::<F32>(v, bits, TRUNC)
    };
    commit(cpu, &env)?;
    cpu.set_reg(op.o[0], N.max(4), r);
    Ok(())
}

/// CVTPI2PS xmm, mm/m64: two int32 into the low two singles; upper kept.
/// An MMX register source makes the x87 -> MMX transition.
pub fn cvtpi2ps(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    // A memory source is not an MMX operation: no pending-x87 check.
    if op.o[1] == K_MEM {
        cpu.check_sse()?;
    } else {
        sse_mmx_start(cpu)?;
    }
    let src = src_mm(cpu, bus, op, 1, 8)?;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = pack_lanes::<I32, S>(&mut env, src as u128, 2, false);
    if op.o[1] != K_MEM {
        cpu.fpu.enter_mmx();
    }
    commit(cpu, &env)?;
    let d = rn(op, 0);
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !LO64) | r;
    Ok(())
}

/// CVTPI2PD xmm, mm/m64: exact; the MMX transition only for a register source.
pub fn cvtpi2pd(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    // A memory source is not an MMX operation: no pending-x87 check.
    if op.o[1] == K_MEM {
        cpu.check_sse()?;
    } else {
        sse_mmx_start(cpu)?;
    }
    let src = src_mm(cpu, bus, op, 1, 8)?;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = pack_lanes::<I32, D>(&mut env, src as u128, 2, false);
    commit(cpu, &env)?;
    cpu.fpu.xmm[rn(op, 0)] = r;
    if op.o[1] != K_MEM {
        cpu.fpu.enter_mmx();
    }
    Ok(())
}

/// CVT(T)PS2PI mm, xmm/m64 and CVT(T)PD2PI mm, xmm/m128: two int32 into an
/// MMX register (always the MMX transition).
pub fn cvt2pi<const FROM: u8, const TRUNC: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    sse_mmx_start(cpu)?;
    let src = if FROM == D {
        src128(cpu, bus, op, 1, true)?
    } else {
        src_low(cpu, bus, op, 1, 8)? as u128
    };
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = pack_lanes::<FROM, I32>(&mut env, src, 2, TRUNC);
    // The x87 -> MMX transition happens even if the conversion then faults.
    cpu.fpu.enter_mmx();
    commit(cpu, &env)?;
    cpu.fpu.set_mmx(rn(op, 0), r as u64);
    Ok(())
}

/// The conversion forms.
pub fn pick(code: C, _op: &mut Op) -> Option<Handler> {
    Some(match code {
        C::Cvtdq2ps_xmm_xmmm128 => cvt_x::<I32, S, 16, false>,
        C::Cvtps2dq_xmm_xmmm128 => cvt_x::<S, I32, 16, false>,
        C::Cvttps2dq_xmm_xmmm128 => cvt_x::<S, I32, 16, true>,
        C::Cvtdq2pd_xmm_xmmm64 => cvt_x::<I32, D, 8, false>,
        C::Cvtpd2dq_xmm_xmmm128 => cvt_x::<D, I32, 16, false>,
        C::Cvttpd2dq_xmm_xmmm128 => cvt_x::<D, I32, 16, true>,
        C::Cvtps2pd_xmm_xmmm64 => cvt_x::<S, D, 8, false>,
        C::Cvtpd2ps_xmm_xmmm128 => cvt_x::<D, S, 16, false>,
        C::Cvtss2sd_xmm_xmmm32 => cvt_scalar::<S, D>,
        C::Cvtsd2ss_xmm_xmmm64 => cvt_scalar::<D, S>,
        C::Cvtsi2ss_xmm_rm32 => cvtsi2f::<S, 4>,
        C::Cvtsi2ss_xmm_rm64 => cvtsi2f::<S, 8>,
        C::Cvtsi2sd_xmm_rm32 => cvtsi2f::<D, 4>,
        C::Cvtsi2sd_xmm_rm64 => cvtsi2f::<D, 8>,
        C::Cvtss2si_r32_xmmm32 => cvtf2si::<S, 4, false>,
        C::Cvtss2si_r64_xmmm32 => cvtf2si::<S, 8, false>,
        C::Cvttss2si_r32_xmmm32 => cvtf2si::<S, 4, true>,
        C::Cvttss2si_r64_xmmm32 => cvtf2si::<S, 8, true>,
        C::Cvtsd2si_r32_xmmm64 => cvtf2si::<D, 4, false>,
        C::Cvtsd2si_r64_xmmm64 => cvtf2si::<D, 8, false>,
        C::Cvttsd2si_r32_xmmm64 => cvtf2si::<D, 4, true>,
        C::Cvttsd2si_r64_xmmm64 => cvtf2si::<D, 8, true>,
        C::Cvtpi2ps_xmm_mmm64 => cvtpi2ps,
        C::Cvtpi2pd_xmm_mmm64 => cvtpi2pd,
        C::Cvtps2pi_mm_xmmm64 => cvt2pi::<S, false>,
        C::Cvttps2pi_mm_xmmm64 => cvt2pi::<S, true>,
        C::Cvtpd2pi_mm_xmmm128 => cvt2pi::<D, false>,
        C::Cvttpd2pi_mm_xmmm128 => cvt2pi::<D, true>,
        _ => return None,
    })
}
