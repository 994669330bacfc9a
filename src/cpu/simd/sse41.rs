//! SSE4.1 (SDM Vol. 2): blends, PTEST, PMOVSX/PMOVZX, PMULDQ/PMULLD,
//! PCMPEQQ, PACKUSDW, PMIN/PMAX SB/SD/UW/UD, PHMINPOSUW, PEXTR*/PINSR*,
//! EXTRACTPS/INSERTPS, ROUNDPS/PD/SS/SD, DPPS/DPPD, MPSADBW, MOVNTDQA; and
//! PCMPGTQ from SSE4.2.

use super::softfloat::{Env, Format, F32, F64, PE};
use super::*;
use crate::cpu::decode::Op;
use iced_x86::Code as C;

#[inline(always)]
fn lane(v: u128, s: u32, i: u32) -> u64 {
    let m = if s == 64 { u64::MAX } else { (1u64 << s) - 1 };
    (v >> (s * i)) as u64 & m
}

#[inline(always)]
fn slane(v: u128, s: u32, i: u32) -> i64 {
    ((lane(v, s, i) << (64 - s)) as i64) >> (64 - s)
}

#[inline(always)]
fn put(r: &mut u128, s: u32, i: u32, x: u64) {
    let m = if s == 64 { u64::MAX } else { (1u64 << s) - 1 };
    *r |= ((x & m) as u128) << (s * i);
}

/// Two-operand integer forms on xmm, xmm/m128 (aligned).
pub fn int2<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let mut r = 0u128;
    match K {
        // PMULDQ: signed low dwords of each quadword.
        0 => {
            for i in 0..2 {
                put(
                    &mut r,
                    64,
                    i,
                    (slane(a, 64, i) as i32 as i64).wrapping_mul(slane(b, 64, i) as i32 as i64)
                        as u64,
                );
            }
        }
        // PMULLD
        1 => {
            for i in 0..4 {
                put(&mut r, 32, i, lane(a, 32, i).wrapping_mul(lane(b, 32, i)));
            }
        }
        // PCMPEQQ / PCMPGTQ
        2 | 3 => {
            for i in 0..2 {
                let t = if K == 2 {
                    lane(a, 64, i) == lane(b, 64, i)
                } else {
                    slane(a, 64, i) > slane(b, 64, i)
                };
                put(&mut r, 64, i, if t { u64::MAX } else { 0 });
            }
        }
        // PACKUSDW
        4 => {
            for i in 0..8 {
                let v = if i < 4 {
                    slane(a, 32, i)
                } else {
                    slane(b, 32, i - 4)
                };
                put(&mut r, 16, i, v.clamp(0, 0xFFFF) as u64);
            }
        }
        // PMINSB, PMAXSB, PMINSD, PMAXSD, PMINUW, PMAXUW, PMINUD, PMAXUD
        _ => {
            let (s, signed, max) = match K {
                5 => (8, true, false),
                6 => (8, true, true),
                7 => (32, true, false),
                8 => (32, true, true),
                9 => (16, false, false),
                10 => (16, false, true),
                11 => (32, false, false),
                _ => (32, false, true),
            };
            for i in 0..128 / s {
                let (x, y) = if signed {
                    (slane(a, s, i) as i128, slane(b, s, i) as i128)
                } else {
                    (lane(a, s, i) as i128, lane(b, s, i) as i128)
                };
                let v = if (x < y) != max { x } else { y };
                put(&mut r, s, i, v as u64);
            }
        }
    }
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// PMOVSX/PMOVZX: `S`-bit source elements (the low 128/(D/S) bits of
/// xmm/m) extended to `D` bits.
pub fn pmovx<const S: u32, const D: u32, const SIGNED: bool>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
) -> Res {
    cpu.check_sse()?;
    let n = 128 / D;
    let bytes = (n * S / 8) as u8;
    let src = src_low(cpu, bus, op, 1, bytes)? as u128;
    let mut r = 0u128;
    for i in 0..n {
        let v = if SIGNED {
            slane(src, S, i) as u64
        } else {
            lane(src, S, i)
        };
        put(&mut r, D, i, v);
    }
    cpu.fpu.xmm[rn(op, 0)] = r;
    Ok(())
}

/// PTEST: ZF = (a AND b) == 0, CF = (NOT a AND b) == 0; AF, OF, PF, SF cleared.
pub fn ptest(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let a = cpu.fpu.xmm[rn(op, 0)];
    use crate::cpu::state::rflags::{AF, CF, OF, PF, SF, ZF};
    let v = if a & b == 0 { ZF } else { 0 } | if !a & b == 0 { CF } else { 0 };
    cpu.flags.set_status(ZF | PF | CF | OF | SF | AF, v);
    Ok(())
}

/// PHMINPOSUW: the smallest unsigned word and its index (lowest on ties).
pub fn phminposuw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let mut best = (lane(b, 16, 0), 0u64);
    for i in 1..8 {
        let v = lane(b, 16, i);
        if v < best.0 {
            best = (v, i as u64);
        }
    }
    cpu.fpu.xmm[rn(op, 0)] = (best.0 | best.1 << 16) as u128;
    Ok(())
}

/// BLENDPS (`S` 32), BLENDPD (64), PBLENDW (16) with imm8; with `V`, the
/// variable forms (BLENDVPS/PD, PBLENDVB with `S` 8) select by the top bit of
/// each XMM0 element.
pub fn blend<const S: u32, const V: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let mask = cpu.fpu.xmm[0];
    let mut r = 0u128;
    for i in 0..128 / S {
        let sel = if V {
            (mask >> (S * i + S - 1)) & 1 != 0
        } else {
            (op.imm >> i) & 1 != 0
        };
        put(
            &mut r,
            S,
            i,
            if sel { lane(b, S, i) } else { lane(a, S, i) },
        );
    }
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// PEXTRB/PEXTRW(m16 form)/PEXTRD/PEXTRQ/EXTRACTPS r/m, xmm, imm8: a
/// register destination is zero-extended.
pub fn pextr<const S: u32>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let x = cpu.fpu.xmm[rn(op, 1)];
    let i = (op.imm as u32) & (128 / S - 1);
    let v = lane(x, S, i);
    if op.o[0] == K_MEM {
        store(cpu, bus, op, (S / 8) as u8, v)
    } else {
        cpu.set_reg(op.o[0], 8, v);
        Ok(())
    }
}

/// PINSRB/PINSRD/PINSRQ xmm, r/m, imm8.
pub fn pinsr<const S: u32>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_gpr(cpu, bus, op, 1, (S / 8) as u8)?;
    let i = (op.imm as u32) & (128 / S - 1);
    let d = rn(op, 0);
    let m: u128 = if S == 64 {
        u64::MAX as u128
    } else {
        ((1u128 << S) - 1) << (S * i)
    };
    let m = if S == 64 { m << (64 * i) } else { m };
    let mut ins = 0u128;
    put(&mut ins, S, i, v);
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !m) | ins;
    Ok(())
}

/// INSERTPS xmm, xmm/m32, imm8: source element imm[7:6] (register source)
/// into element imm[5:4], then elements in imm[3:0] zeroed.
pub fn insertps(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let imm = op.imm as u32;
    let v = if op.o[1] == K_MEM {
        load(cpu, bus, op, 4)?
    } else {
        lane(cpu.fpu.xmm[rn(op, 1)], 32, (imm >> 6) & 3)
    };
    let d = rn(op, 0);
    let dst = (imm >> 4) & 3;
    let mut r = cpu.fpu.xmm[d] & !((u32::MAX as u128) << (32 * dst));
    put(&mut r, 32, dst, v);
    for i in 0..4 {
        if imm & (1 << i) != 0 {
            r &= !((u32::MAX as u128) << (32 * i));
        }
    }
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// ROUNDPS/PD/SS/SD: round to an integral value; imm[1:0] rounding mode
/// unless imm[2] (then MXCSR.RC); imm[3] suppresses PE. SNaN -> IE, quieted.
fn round_elem<F: Format>(env: &mut Env, x: u64, imm: u8) -> u64 {
    let rc = if imm & 4 != 0 { env.rc } else { imm & 3 };
    let before = env.flags;
    let r = env.round_to_int::<F>(x, rc);
    if imm & 8 != 0 {
        env.flags = (env.flags & !PE) | (before & PE);
    }
    r
}

pub fn round<const T: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = match T {
        0 | 2 => src128(cpu, bus, op, 1, true)?,
        1 => src_low(cpu, bus, op, 1, 4)? as u128,
        _ => src_low(cpu, bus, op, 1, 8)? as u128,
    };
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let imm = op.imm as u8;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let r = match T {
        0 => {
            let mut r = 0u128;
            for i in 0..4 {
                put(
                    &mut r,
                    32,
                    i,
                    round_elem::<F32>(&mut env, lane(b, 32, i), imm),
                );
            }
            r
        }
        1 => (a & !(u32::MAX as u128)) | round_elem::<F32>(&mut env, lane(b, 32, 0), imm) as u128,
        2 => {
            let lo = round_elem::<F64>(&mut env, b as u64, imm);
            let hi = round_elem::<F64>(&mut env, (b >> 64) as u64, imm);
            (hi as u128) << 64 | lo as u128
        }
        _ => (a & !(u64::MAX as u128)) | round_elem::<F64>(&mut env, b as u64, imm) as u128,
    };
    commit(cpu, &env)?;
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// DPPS (`D` false) / DPPD: products of the elements selected by imm[7:4]
/// (others +0.0), summed pairwise ((p0+p1)+(p2+p3)), each step rounded, and
/// the sum written to the elements selected by imm[3:0] (others +0.0).
pub fn dp<const D: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let imm = op.imm as u32;
    let mut env = Env::from_mxcsr(cpu.fpu.mxcsr);
    let mut r = 0u128;
    if D {
        let mut p = [0u64; 2];
        for (i, pi) in p.iter_mut().enumerate() {
            if imm & (16 << i) != 0 {
                *pi = env.mul::<F64>(lane(a, 64, i as u32), lane(b, 64, i as u32));
            }
        }
        let s = env.add::<F64>(p[0], p[1], false);
        for i in 0..2 {
            if imm & (1 << i) != 0 {
                put(&mut r, 64, i, s);
            }
        }
    } else {
        let mut p = [0u64; 4];
        for (i, pi) in p.iter_mut().enumerate() {
            if imm & (16 << i) != 0 {
                *pi = env.mul::<F32>(lane(a, 32, i as u32), lane(b, 32, i as u32));
            }
        }
        let t1 = env.add::<F32>(p[0], p[1], false);
        let t2 = env.add::<F32>(p[2], p[3], false);
        let s = env.add::<F32>(t1, t2, false);
        for i in 0..4 {
            if imm & (1 << i) != 0 {
                put(&mut r, 32, i, s);
            }
        }
    }
    commit(cpu, &env)?;
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// MPSADBW: eight sums of absolute differences of 4-byte groups.
pub fn mpsadbw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    let a = cpu.fpu.xmm[d];
    let imm = op.imm as u32;
    let (ao, bo) = (4 * ((imm >> 2) & 1), 4 * (imm & 3));
    let mut r = 0u128;
    for i in 0..8 {
        let s: u64 = (0..4)
            .map(|j| lane(a, 8, ao + i + j).abs_diff(lane(b, 8, bo + j)))
            .sum();
        put(&mut r, 16, i, s);
    }
    cpu.fpu.xmm[d] = r;
    Ok(())
}

/// The SSE4.1 forms (and PCMPGTQ).
pub fn pick(code: C, _op: &mut Op) -> Option<Handler> {
    Some(match code {
        C::Pmuldq_xmm_xmmm128 => int2::<0>,
        C::Pmulld_xmm_xmmm128 => int2::<1>,
        C::Pcmpeqq_xmm_xmmm128 => int2::<2>,
        C::Pcmpgtq_xmm_xmmm128 => int2::<3>,
        C::Packusdw_xmm_xmmm128 => int2::<4>,
        C::Pminsb_xmm_xmmm128 => int2::<5>,
        C::Pmaxsb_xmm_xmmm128 => int2::<6>,
        C::Pminsd_xmm_xmmm128 => int2::<7>,
        C::Pmaxsd_xmm_xmmm128 => int2::<8>,
        C::Pminuw_xmm_xmmm128 => int2::<9>,
        C::Pmaxuw_xmm_xmmm128 => int2::<10>,
        C::Pminud_xmm_xmmm128 => int2::<11>,
        C::Pmaxud_xmm_xmmm128 => int2::<12>,
        C::Pmovsxbw_xmm_xmmm64 => pmovx::<8, 16, true>,
        C::Pmovsxbd_xmm_xmmm32 => pmovx::<8, 32, true>,
        C::Pmovsxbq_xmm_xmmm16 => pmovx::<8, 64, true>,
        C::Pmovsxwd_xmm_xmmm64 => pmovx::<16, 32, true>,
        C::Pmovsxwq_xmm_xmmm32 => pmovx::<16, 64, true>,
        C::Pmovsxdq_xmm_xmmm64 => pmovx::<32, 64, true>,
        C::Pmovzxbw_xmm_xmmm64 => pmovx::<8, 16, false>,
        C::Pmovzxbd_xmm_xmmm32 => pmovx::<8, 32, false>,
        C::Pmovzxbq_xmm_xmmm16 => pmovx::<8, 64, false>,
        C::Pmovzxwd_xmm_xmmm64 => pmovx::<16, 32, false>,
        C::Pmovzxwq_xmm_xmmm32 => pmovx::<16, 64, false>,
        C::Pmovzxdq_xmm_xmmm64 => pmovx::<32, 64, false>,
        C::Ptest_xmm_xmmm128 => ptest,
        C::Phminposuw_xmm_xmmm128 => phminposuw,
        C::Blendps_xmm_xmmm128_imm8 => blend::<32, false>,
        C::Blendpd_xmm_xmmm128_imm8 => blend::<64, false>,
        C::Pblendw_xmm_xmmm128_imm8 => blend::<16, false>,
        C::Blendvps_xmm_xmmm128 => blend::<32, true>,
        C::Blendvpd_xmm_xmmm128 => blend::<64, true>,
        C::Pblendvb_xmm_xmmm128 => blend::<8, true>,
        C::Pextrb_r32m8_xmm_imm8 | C::Pextrb_r64m8_xmm_imm8 => pextr::<8>,
        C::Pextrw_r32m16_xmm_imm8 | C::Pextrw_r64m16_xmm_imm8 => pextr::<16>,
        C::Pextrd_rm32_xmm_imm8 | C::Extractps_rm32_xmm_imm8 | C::Extractps_r64m32_xmm_imm8 => {
            pextr::<32>
        }
        C::Pextrq_rm64_xmm_imm8 => pextr::<64>,
        C::Pinsrb_xmm_r32m8_imm8 | C::Pinsrb_xmm_r64m8_imm8 => pinsr::<8>,
        C::Pinsrd_xmm_rm32_imm8 => pinsr::<32>,
        C::Pinsrq_xmm_rm64_imm8 => pinsr::<64>,
        C::Insertps_xmm_xmmm32_imm8 => insertps,
        C::Roundps_xmm_xmmm128_imm8 => round::<0>,
        C::Roundss_xmm_xmmm32_imm8 => round::<1>,
        C::Roundpd_xmm_xmmm128_imm8 => round::<2>,
        C::Roundsd_xmm_xmmm64_imm8 => round::<3>,
        C::Dpps_xmm_xmmm128_imm8 => dp::<false>,
        C::Dppd_xmm_xmmm128_imm8 => dp::<true>,
        C::Mpsadbw_xmm_xmmm128_imm8 => mpsadbw,
        C::Movntdqa_xmm_m128 => super::mov::load128_x::<true>,
        _ => return None,
    })
}
