//! SSE/SSE2 floating point: packed and scalar arithmetic, MIN/MAX, SQRT,
//! RCP/RSQRT, CMPcc, (U)COMIS, logic, shuffles and unpacks, LDMXCSR/STMXCSR
//! (SDM Vol. 1 10.4, 11.4; Vol. 2 per instruction).

use super::int::{binop, k as ik};
use super::softfloat::{Env, Format, F32, F64};
use super::*;
use crate::cpu::decode::Op;
use iced_x86::Code as C;
use std::cmp::Ordering;

/// Element layout of a form: packed single, scalar single, packed double,
/// scalar double.
pub const PS: u8 = 0;
pub const SS: u8 = 1;
pub const PD: u8 = 2;
pub const SD: u8 = 3;

/// Arithmetic operations.
pub const ADD: u8 = 0;
pub const SUB: u8 = 1;
pub const MUL: u8 = 2;
pub const DIV: u8 = 3;
pub const MIN: u8 = 4;
pub const MAX: u8 = 5;
pub const SQRT: u8 = 6;

#[inline(always)]
fn lane_op<F: Format, const OP: u8>(env: &mut Env, a: u64, b: u64) -> u64 {
    match OP {
        ADD => env.add::<F>(a, b, false),
        SUB => env.add::<F>(a, b, true),
        MUL => env.mul::<F>(a, b),
        DIV => env.div::<F>(a, b),
        MIN => env.min_max::<F>(a, b, false),
        MAX => env.min_max::<F>(a, b, true),
        _ => env.sqrt::<F>(b),
    }
}

/// Reads the source of a form with layout `T` (operand 1): xmm/m128
/// (aligned) for packed forms, xmm/m32 or xmm/m64 for scalar ones.
#[inline(always)]
fn fsrc<const T: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res<u128> {
    match T {
        PS | PD => src128(cpu, bus, op, 1, true),
        SS => Ok(src_low(cpu, bus, op, 1, 4)? as u128),
        _ => Ok(src_low(cpu, bus, op, 1, 8)? as u128),
    }
}

/// Applies `f` per element of layout `T`; scalar forms keep the upper
/// elements of `a`.
#[inline(always)]
fn per_lane<const T: u8>(
    env: &mut Env,
    a: u128,
    b: u128,
    mut f32op: impl FnMut(&mut Env, u64, u64) -> u64,
    mut f64op: impl FnMut(&mut Env, u64, u64) -> u64,
) -> u128 {
    match T {
        PS => {
            let mut r = 0u128;
            for i in 0..4 {
                let (x, y) = ((a >> (32 * i)) as u32, (b >> (32 * i)) as u32);
                r |= (f32op(env, x as u64, y as u64) as u32 as u128) << (32 * i);
            }
            r
        }
        SS => {
            let v = f32op(env, a as u32 as u64, b as u32 as u64) as u32;
            (a & !(u32::MAX as u128)) | v as u128
        }
        PD => {
            let lo = f64op(env, a as u64, b as u64);
            let hi = f64op(env, (a >> 64) as u64, (b >> 64) as u64);
            (hi as u128) << 64 | lo as u128
        }
        _ => {
            let v = f64op(env, a as u64, b as u64);
            (a & !(u64::MAX as u128)) | v as u128
        }
    }
}

/// ADD/SUB/MUL/DIV/MIN/MAX/SQRT in layout `T`.
pub fn arith<const OP: u8, const T: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = fsrc::<T>(cpu, bus, op)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = per_lane::<T>(&mut env, a, b, lane_op::<F32, OP>, lane_op::<F64, OP>);
    commit(cpu, &env)?;
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// The eight CMPPS predicates (imm8[2:0], SDM Vol. 2 CMPPS Table 3-1):
/// EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD; LT/LE/NLT/NLE signal on QNaNs.
fn predicate<F: Format>(env: &mut Env, a: u64, b: u64, imm: u8) -> bool {
    let p = imm & 7;
    let o = env.compare::<F>(a, b, matches!(p, 1 | 2 | 5 | 6));
    match p {
        0 => o == Some(Ordering::Equal),
        1 => o == Some(Ordering::Less),
        2 => matches!(o, Some(Ordering::Less | Ordering::Equal)),
        3 => o.is_none(),
        4 => o != Some(Ordering::Equal),
        5 => o != Some(Ordering::Less),
        6 => !matches!(o, Some(Ordering::Less | Ordering::Equal)),
        _ => o.is_some(),
    }
}

/// CMPPS/CMPSS/CMPPD/CMPSD xmm, xmm/m, imm8: all-ones or all-zeros masks.
pub fn cmp<const T: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = fsrc::<T>(cpu, bus, op)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let imm = op.imm as u8;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = per_lane::<T>(
        &mut env,
        a,
        b,
        |e, x, y| {
            if predicate::<F32>(e, x, y, imm) {
                u32::MAX as u64
            } else {
                0
            }
        },
        |e, x, y| {
            if predicate::<F64>(e, x, y, imm) {
                u64::MAX
            } else {
                0
            }
        },
    );
    commit(cpu, &env)?;
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// COMISS/UCOMISS (`D` false) and COMISD/UCOMISD: ZF/PF/CF from the
/// comparison (unordered 111, less 001, equal 100, greater 000); OF, SF and
/// AF cleared. `SIGNAL`: COMIS* raise IE on QNaNs too.
pub fn comis<const D: bool, const SIGNAL: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let a = cpu.fpu.xmm[rn(op, 0)];
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let o = if D {
        let b = src_low(cpu, bus, op, 1, 8)?;
        env.compare::<F64>(a as u64, b, SIGNAL)
    } else {
        let b = src_low(cpu, bus, op, 1, 4)?;
        env.compare::<F32>(a as u32 as u64, b, SIGNAL)
    };
    commit(cpu, &env)?;
    use crate::cpu::state::rflags::{AF, CF, OF, PF, SF, ZF};
    let v = match o {
        None => ZF | PF | CF,
        Some(Ordering::Less) => CF,
        Some(Ordering::Equal) => ZF,
        Some(Ordering::Greater) => 0,
    };
    cpu.flags.set_status(ZF | PF | CF | OF | SF | AF, v);
    Ok(())
}

/// Bitwise and unpack forms on xmm, xmm/m128 with no FP semantics
/// (ANDPS, ANDNPS, ORPS, XORPS, UNPCKLPS, ... and their PD twins).
pub fn bitwise<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    cpu.fpu.xmm[d] = binop::<K>(cpu.fpu.xmm[d], b, 16);
    Ok(())
}

/// SHUFPS xmm1, xmm2/m128, imm8: two elements of xmm1, then two of the source.
pub fn shufps(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let imm = op.imm as u32;
    let e = |v: u128, s: u32| (v >> (32 * (s & 3))) as u32 as u128;
    cpu.fpu.xmm[d] = e(a, imm) | e(a, imm >> 2) << 32 | e(b, imm >> 4) << 64 | e(b, imm >> 6) << 96;
    Ok(())
}

/// SHUFPD xmm1, xmm2/m128, imm8.
pub fn shufpd(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let imm = op.imm as u32;
    let e = |v: u128, s: u32| (v >> (64 * (s & 1))) as u64 as u128;
    cpu.fpu.xmm[d] = e(a, imm) | e(b, imm >> 1) << 64;
    Ok(())
}

/// RCPPS/RCPSS (`RSQRT` false) and RSQRTPS/RSQRTSS: approximations with a
/// relative error of at most 1.5 * 2^-12 (SDM Vol. 2 RCPPS). They raise no
/// exceptions and ignore MXCSR: denormal sources count as zeros and tiny
/// results are flushed to zero. vx86 returns the exact value truncated to 12
/// significand bits, which is within the architectural bound (the exact bits
/// are model-specific).
fn approx(x: u32, rsqrt: bool) -> u32 {
    let sign = x & 0x8000_0000;
    let exp = (x >> 23) & 0xFF;
    let mant = x & 0x7F_FFFF;
    if exp == 0xFF && mant != 0 {
        return x | 0x40_0000;
    }
    if exp == 0 {
        return sign | 0x7F80_0000;
    }
    if rsqrt && sign != 0 {
        return 0xFFC0_0000;
    }
    if exp == 0xFF {
        return sign;
    }
    let v = f32::from_bits(x & 0x7FFF_FFFF) as f64;
    let r = if rsqrt { 1.0 / v.sqrt() } else { 1.0 / v };
    let b = (r as f32).to_bits();
    if (b >> 23) & 0xFF == 0 {
        return sign;
    }
    sign | (b & 0xFFFF_F800)
}

pub fn rcp<const RSQRT: bool, const SCALAR: bool>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
) -> Res {
    cpu.check_sse()?;
    let d = rn(op, 0);
    if SCALAR {
        let b = src_low(cpu, bus, op, 1, 4)? as u32;
        let a = cpu.fpu.xmm[d];
        cpu.fpu.xmm[d] = (a & !(u32::MAX as u128)) | approx(b, RSQRT) as u128;
    } else {
        let b = src128(cpu, bus, op, 1, true)?;
        let mut r = 0u128;
        for i in 0..4 {
            r |= (approx((b >> (32 * i)) as u32, RSQRT) as u128) << (32 * i);
        }
        cpu.fpu.xmm[d] = r;
    }
    Ok(())
}

/// LDMXCSR m32: reserved bits set raise #GP(0) (SDM Vol. 2 LDMXCSR).
pub fn ldmxcsr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = load(cpu, bus, op, 4)? as u32;
    if v & !MXCSR_MASK != 0 {
        return Err(Fault::gp(0));
    }
    cpu.fpu.mxcsr = v;
    Ok(())
}

/// STMXCSR m32.
pub fn stmxcsr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = cpu.fpu.mxcsr as u64;
    store(cpu, bus, op, 4, v)
}

macro_rules! four {
    ($code:expr, $op:ident, $ps:ident, $ss:ident, $pd:ident, $sd:ident) => {
        match $code {
            C::$ps => return Some(arith::<$op, PS>),
            C::$ss => return Some(arith::<$op, SS>),
            C::$pd => return Some(arith::<$op, PD>),
            C::$sd => return Some(arith::<$op, SD>),
            _ => {}
        }
    };
}

/// The floating-point, logic and shuffle forms.
pub fn pick(code: C, _op: &mut Op) -> Option<Handler> {
    four!(
        code,
        ADD,
        Addps_xmm_xmmm128,
        Addss_xmm_xmmm32,
        Addpd_xmm_xmmm128,
        Addsd_xmm_xmmm64
    );
    four!(
        code,
        SUB,
        Subps_xmm_xmmm128,
        Subss_xmm_xmmm32,
        Subpd_xmm_xmmm128,
        Subsd_xmm_xmmm64
    );
    four!(
        code,
        MUL,
        Mulps_xmm_xmmm128,
        Mulss_xmm_xmmm32,
        Mulpd_xmm_xmmm128,
        Mulsd_xmm_xmmm64
    );
    four!(
        code,
        DIV,
        Divps_xmm_xmmm128,
        Divss_xmm_xmmm32,
        Divpd_xmm_xmmm128,
        Divsd_xmm_xmmm64
    );
    four!(
        code,
        MIN,
        Minps_xmm_xmmm128,
        Minss_xmm_xmmm32,
        Minpd_xmm_xmmm128,
        Minsd_xmm_xmmm64
    );
    four!(
        code,
        MAX,
        Maxps_xmm_xmmm128,
        Maxss_xmm_xmmm32,
        Maxpd_xmm_xmmm128,
        Maxsd_xmm_xmmm64
    );
    four!(
        code,
        SQRT,
        Sqrtps_xmm_xmmm128,
        Sqrtss_xmm_xmmm32,
        Sqrtpd_xmm_xmmm128,
        Sqrtsd_xmm_xmmm64
    );
    Some(match code {
        C::Cmpps_xmm_xmmm128_imm8 => cmp::<PS>,
        C::Cmpss_xmm_xmmm32_imm8 => cmp::<SS>,
        C::Cmppd_xmm_xmmm128_imm8 => cmp::<PD>,
        C::Cmpsd_xmm_xmmm64_imm8 => cmp::<SD>,
        C::Comiss_xmm_xmmm32 => comis::<false, true>,
        C::Ucomiss_xmm_xmmm32 => comis::<false, false>,
        C::Comisd_xmm_xmmm64 => comis::<true, true>,
        C::Ucomisd_xmm_xmmm64 => comis::<true, false>,
        C::Andps_xmm_xmmm128 | C::Andpd_xmm_xmmm128 => bitwise::<{ ik::PAND }>,
        C::Andnps_xmm_xmmm128 | C::Andnpd_xmm_xmmm128 => bitwise::<{ ik::ANDNPS }>,
        C::Orps_xmm_xmmm128 | C::Orpd_xmm_xmmm128 => bitwise::<{ ik::POR }>,
        C::Xorps_xmm_xmmm128 | C::Xorpd_xmm_xmmm128 => bitwise::<{ ik::PXOR }>,
        C::Unpcklps_xmm_xmmm128 => bitwise::<{ ik::PUNPCKLDQ }>,
        C::Unpckhps_xmm_xmmm128 => bitwise::<{ ik::PUNPCKHDQ }>,
        C::Unpcklpd_xmm_xmmm128 => bitwise::<{ ik::PUNPCKLQDQ }>,
        C::Unpckhpd_xmm_xmmm128 => bitwise::<{ ik::PUNPCKHQDQ }>,
        C::Shufps_xmm_xmmm128_imm8 => shufps,
        C::Shufpd_xmm_xmmm128_imm8 => shufpd,
        C::Rcpps_xmm_xmmm128 => rcp::<false, false>,
        C::Rcpss_xmm_xmmm32 => rcp::<false, true>,
        C::Rsqrtps_xmm_xmmm128 => rcp::<true, false>,
        C::Rsqrtss_xmm_xmmm32 => rcp::<true, true>,
        C::Ldmxcsr_m32 => ldmxcsr,
        C::Stmxcsr_m32 => stmxcsr,
        _ => return None,
    })
}
