//! SSE3 (SDM Vol. 2: ADDSUBPS/PD, HADDPS/PD, HSUBPS/PD, MOVDDUP, MOVSHDUP,
//! MOVSLDUP, LDDQU). FISTTP, the x87 member of SSE3, belongs to `cpu::fpu`.

use super::softfloat::{Env, F32, F64};
use super::*;
use crate::cpu::decode::Op;
use iced_x86::Code as C;

/// ADDSUBPS (`D` false) / ADDSUBPD: even elements subtract, odd ones add.
pub fn addsub<const D: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = if D {
        let lo = env.add::<F64>(a as u64, b as u64, true);
        let hi = env.add::<F64>((a >> 64) as u64, (b >> 64) as u64, false);
        (hi as u128) << 64 | lo as u128
    } else {
        let mut r = 0u128;
        for i in 0..4 {
            let (x, y) = ((a >> (32 * i)) as u32 as u64, (b >> (32 * i)) as u32 as u64);
            r |= (env.add::<F32>(x, y, i % 2 == 0) as u32 as u128) << (32 * i);
        }
        r
    };
    commit(cpu, &env)?;
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// HADDPS/HSUBPS (`D` false) and HADDPD/HSUBPD: adjacent pairs of the
/// destination, then of the source.
pub fn hadd<const D: bool, const SUB: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = if D {
        let lo = env.add::<F64>(a as u64, (a >> 64) as u64, SUB);
        let hi = env.add::<F64>(b as u64, (b >> 64) as u64, SUB);
        (hi as u128) << 64 | lo as u128
    } else {
        let e = |v: u128, i: u32| (v >> (32 * i)) as u32 as u64;
        let r0 = env.add::<F32>(e(a, 0), e(a, 1), SUB);
        let r1 = env.add::<F32>(e(a, 2), e(a, 3), SUB);
        let r2 = env.add::<F32>(e(b, 0), e(b, 1), SUB);
        let r3 = env.add::<F32>(e(b, 2), e(b, 3), SUB);
        r0 as u32 as u128
            | (r1 as u32 as u128) << 32
            | (r2 as u32 as u128) << 64
            | (r3 as u32 as u128) << 96
    };
    commit(cpu, &env)?;
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// MOVDDUP xmm, xmm/m64.
pub fn movddup(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_low(cpu, bus, op, 1, 8)? as u128;
    cpu.fpu.xmm[rn(op, 0)] = v | v << 64;
    Ok(())
}

/// MOVSHDUP (`HI`) / MOVSLDUP xmm, xmm/m128.
pub fn movsdup<const HI: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let s = src128(cpu, bus, op, 1, true)?;
    let k = if HI { 1 } else { 0 };
    let e = |i: u32| (s >> (32 * (i + k))) as u32 as u128;
    cpu.fpu.xmm[rn(op, 0)] = e(0) | e(0) << 32 | e(2) << 64 | e(2) << 96;
    Ok(())
}

/// The SSE3 forms.
pub fn pick(code: C, _op: &mut Op) -> Option<Handler> {
    Some(match code {
        C::Addsubps_xmm_xmmm128 => addsub::<false>,
        C::Addsubpd_xmm_xmmm128 => addsub::<true>,
        C::Haddps_xmm_xmmm128 => hadd::<false, false>,
        C::Hsubps_xmm_xmmm128 => hadd::<false, true>,
        C::Haddpd_xmm_xmmm128 => hadd::<true, false>,
        C::Hsubpd_xmm_xmmm128 => hadd::<true, true>,
        C::Movddup_xmm_xmmm64 => movddup,
        C::Movshdup_xmm_xmmm128 => movsdup::<true>,
        C::Movsldup_xmm_xmmm128 => movsdup::<false>,
        C::Lddqu_xmm_m128 => super::mov::load128_x::<false>,
        _ => return None,
    })
}
