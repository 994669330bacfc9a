//! MMX/SSE/SSE2 data movement (SDM Vol. 2: MOVAPS, MOVUPS, MOVSS, MOVSD,
//! MOVLPS, MOVHPS, MOVLHPS, MOVHLPS, MOVD/MOVQ, MOVQ2DQ, MOVDQ2Q, MOVMSKPS,
//! MOVMSKPD, PMOVMSKB, MOVNT*, MASKMOVDQU, MASKMOVQ). Moves raise no
//! floating-point exceptions.

use super::*;
use crate::cpu::decode::Op;
use iced_x86::Code as C;

const LO64: u128 = u64::MAX as u128;
const LO32: u128 = u32::MAX as u128;

/// xmm <- xmm/m128 (MOVAPS/MOVAPD/MOVDQA with `A`, MOVUPS/MOVUPD/MOVDQU without).
pub fn load128_x<const A: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src128(cpu, bus, op, 1, A)?;
    cpu.fpu.xmm[rn(op, 0)] = v;
    Ok(())
}

/// xmm/m128 <- xmm (stores; MOVNTPS/MOVNTPD/MOVNTDQ are the aligned form).
pub fn store128_x<const A: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = cpu.fpu.xmm[rn(op, 1)];
    if op.o[0] == K_MEM {
        store128(cpu, bus, op, A, v)
    } else {
        cpu.fpu.xmm[rn(op, 0)] = v;
        Ok(())
    }
}

/// MOVSS/MOVSD xmm, xmm/mN: a register source merges the low element, a
/// memory source zeroes the rest.
pub fn movs_load<const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let m = if N == 4 { LO32 } else { LO64 };
    let d = rn(op, 0);
    if op.o[1] == K_MEM {
        let v = load(cpu, bus, op, N)?;
        cpu.fpu.xmm[d] = v as u128;
    } else {
        let s = cpu.fpu.xmm[rn(op, 1)];
        cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !m) | (s & m);
    }
    Ok(())
}

/// MOVSS/MOVSD xmm/mN, xmm.
pub fn movs_store<const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let m = if N == 4 { LO32 } else { LO64 };
    let s = cpu.fpu.xmm[rn(op, 1)];
    if op.o[0] == K_MEM {
        store(cpu, bus, op, N, s as u64)
    } else {
        let d = rn(op, 0);
        cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !m) | (s & m);
        Ok(())
    }
}

/// MOVLPS/MOVLPD (`HI` false) and MOVHPS/MOVHPD xmm, m64.
pub fn movlh_load<const HI: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = load(cpu, bus, op, 8)? as u128;
    let d = rn(op, 0);
    let x = cpu.fpu.xmm[d];
    cpu.fpu.xmm[d] = if HI {
        (x & LO64) | (v << 64)
    } else {
        (x & !LO64) | v
    };
    Ok(())
}

/// MOVLPS/MOVLPD and MOVHPS/MOVHPD m64, xmm.
pub fn movlh_store<const HI: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let x = cpu.fpu.xmm[rn(op, 1)];
    let v = if HI { (x >> 64) as u64 } else { x as u64 };
    store(cpu, bus, op, 8, v)
}

/// MOVHLPS (low <- source high) and MOVLHPS (high <- source low).
pub fn movhlps(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let (d, s) = (rn(op, 0), cpu.fpu.xmm[rn(op, 1)]);
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !LO64) | (s >> 64);
    Ok(())
}
pub fn movlhps(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let (d, s) = (rn(op, 0), cpu.fpu.xmm[rn(op, 1)]);
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & LO64) | (s << 64);
    Ok(())
}

/// MOVD/MOVQ xmm, r/mN: zero-extended.
pub fn movd_x_rm<const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_gpr(cpu, bus, op, 1, N)?;
    cpu.fpu.xmm[rn(op, 0)] = v as u128;
    Ok(())
}

/// MOVD/MOVQ r/mN, xmm.
pub fn movd_rm_x<const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = cpu.fpu.xmm[rn(op, 1)] as u64;
    let v = if N == 4 { v & 0xFFFF_FFFF } else { v };
    dst_gpr(cpu, bus, op, 0, N, v)
}

/// MOVQ xmm, xmm/m64 (F3 0F 7E): zero-extends.
pub fn movq_x_xm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_low(cpu, bus, op, 1, 8)?;
    cpu.fpu.xmm[rn(op, 0)] = v as u128;
    Ok(())
}

/// MOVQ xmm/m64, xmm (66 0F D6): a register destination is zero-extended.
pub fn movq_xm_x(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = cpu.fpu.xmm[rn(op, 1)] as u64;
    if op.o[0] == K_MEM {
        store(cpu, bus, op, 8, v)
    } else {
        cpu.fpu.xmm[rn(op, 0)] = v as u128;
        Ok(())
    }
}

/// MOVD/MOVQ mm, r/mN.
pub fn movd_m_rm<const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let v = src_gpr(cpu, bus, op, 1, N)?;
    cpu.fpu.set_mmx(rn(op, 0), v);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVD/MOVQ r/mN, mm.
pub fn movd_rm_m<const N: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let v = cpu.fpu.mmx(rn(op, 1));
    let v = if N == 4 { v & 0xFFFF_FFFF } else { v };
    dst_gpr(cpu, bus, op, 0, N, v)?;
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVQ mm, mm/m64.
pub fn movq_m_mm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let v = src_mm(cpu, bus, op, 1, 8)?;
    cpu.fpu.set_mmx(rn(op, 0), v);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVQ mm/m64, mm and MOVNTQ m64, mm.
pub fn movq_mm_m(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let v = cpu.fpu.mmx(rn(op, 1));
    if op.o[0] == K_MEM {
        store(cpu, bus, op, 8, v)?;
    } else {
        cpu.fpu.set_mmx(rn(op, 0), v);
    }
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVQ2DQ xmm, mm.
pub fn movq2dq(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    sse_mmx_start(cpu)?;
    cpu.fpu.xmm[rn(op, 0)] = cpu.fpu.mmx(rn(op, 1)) as u128;
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVDQ2Q mm, xmm.
pub fn movdq2q(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    sse_mmx_start(cpu)?;
    let v = cpu.fpu.xmm[rn(op, 1)] as u64;
    cpu.fpu.set_mmx(rn(op, 0), v);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVMSKPS (`S` = 4) and MOVMSKPD (`S` = 8): element sign bits into a GPR.
pub fn movmsk<const S: u32>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let x = cpu.fpu.xmm[rn(op, 1)];
    let mut m = 0u64;
    for i in 0..16 / S {
        m |= (((x >> (8 * S * (i + 1) - 1)) & 1) as u64) << i;
    }
    cpu.set_reg(op.o[0], 8, m);
    Ok(())
}

/// PMOVMSKB r, xmm.
pub fn pmovmskb_x(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let m = super::int::movmskb(cpu.fpu.xmm[rn(op, 1)], 16);
    cpu.set_reg(op.o[0], 8, m);
    Ok(())
}

/// PMOVMSKB r, mm.
pub fn pmovmskb_m(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let m = super::int::movmskb(cpu.fpu.mmx(rn(op, 1)) as u128, 8);
    cpu.set_reg(op.o[0], 8, m);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// MOVNTI m32/m64, r: an ordinary store for an interpreter.
pub fn movnti(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.reg(op.o[1], op.osz);
    store(cpu, bus, op, op.osz, v)
}

/// MASKMOVDQU / MASKMOVQ: store the bytes of the first operand whose mask
/// byte (second operand) has its top bit set, at DS:rDI (segment
/// overridable). The whole range is probed first so a fault writes nothing.
fn maskmov(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, data: u128, mask: u128, n: u8) -> Res {
    let di = cpu.gpr[7] & crate::cpu::decode::amask(op.asz);
    let lin = cpu.seg_lin(op.seg as usize, di, n, true)?;
    if mask_any(mask, n) {
        cpu.probe_write(bus, lin, n)?;
    }
    for i in 0..n as u64 {
        if (mask >> (8 * i + 7)) & 1 != 0 {
            let b = (data >> (8 * i)) as u64 & 0xFF;
            cpu.write_lin(bus, lin.wrapping_add(i), 1, b)?;
        }
    }
    Ok(())
}

fn mask_any(mask: u128, n: u8) -> bool {
    (0..n as u32).any(|i| (mask >> (8 * i + 7)) & 1 != 0)
}

pub fn maskmovdqu(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let (d, m) = (cpu.fpu.xmm[rn(op, 1)], cpu.fpu.xmm[rn(op, 2)]);
    maskmov(cpu, bus, op, d, m, 16)
}

pub fn maskmovq(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let (d, m) = (cpu.fpu.mmx(rn(op, 1)), cpu.fpu.mmx(rn(op, 2)));
    maskmov(cpu, bus, op, d as u128, m as u128, 8)?;
    cpu.fpu.enter_mmx();
    Ok(())
}

/// The data-movement forms.
pub fn pick(code: C, ins: &Instruction, op: &mut Op) -> Option<Handler> {
    Some(match code {
        C::Movaps_xmm_xmmm128 | C::Movapd_xmm_xmmm128 | C::Movdqa_xmm_xmmm128 => load128_x::<true>,
        C::Movups_xmm_xmmm128 | C::Movupd_xmm_xmmm128 | C::Movdqu_xmm_xmmm128 => load128_x::<false>,
        C::Movaps_xmmm128_xmm
        | C::Movapd_xmmm128_xmm
        | C::Movdqa_xmmm128_xmm
        | C::Movntps_m128_xmm
        | C::Movntpd_m128_xmm
        | C::Movntdq_m128_xmm => store128_x::<true>,
        C::Movups_xmmm128_xmm | C::Movupd_xmmm128_xmm | C::Movdqu_xmmm128_xmm => {
            store128_x::<false>
        }
        C::Movss_xmm_xmmm32 => movs_load::<4>,
        C::Movsd_xmm_xmmm64 => movs_load::<8>,
        C::Movss_xmmm32_xmm => movs_store::<4>,
        C::Movsd_xmmm64_xmm => movs_store::<8>,
        C::Movlps_xmm_m64 | C::Movlpd_xmm_m64 => movlh_load::<false>,
        C::Movhps_xmm_m64 | C::Movhpd_xmm_m64 => movlh_load::<true>,
        C::Movlps_m64_xmm | C::Movlpd_m64_xmm => movlh_store::<false>,
        C::Movhps_m64_xmm | C::Movhpd_m64_xmm => movlh_store::<true>,
        C::Movhlps_xmm_xmm => movhlps,
        C::Movlhps_xmm_xmm => movlhps,
        C::Movd_xmm_rm32 => movd_x_rm::<4>,
        C::Movq_xmm_rm64 => movd_x_rm::<8>,
        C::Movd_rm32_xmm => movd_rm_x::<4>,
        C::Movq_rm64_xmm => movd_rm_x::<8>,
        C::Movq_xmm_xmmm64 => movq_x_xm,
        C::Movq_xmmm64_xmm => movq_xm_x,
        C::Movd_mm_rm32 => movd_m_rm::<4>,
        C::Movq_mm_rm64 => movd_m_rm::<8>,
        C::Movd_rm32_mm => movd_rm_m::<4>,
        C::Movq_rm64_mm => movd_rm_m::<8>,
        C::Movq_mm_mmm64 => movq_m_mm,
        C::Movq_mmm64_mm | C::Movntq_m64_mm => movq_mm_m,
        C::Movq2dq_xmm_mm => movq2dq,
        C::Movdq2q_mm_xmm => movdq2q,
        C::Movmskps_r32_xmm | C::Movmskps_r64_xmm => movmsk::<4>,
        C::Movmskpd_r32_xmm | C::Movmskpd_r64_xmm => movmsk::<8>,
        C::Pmovmskb_r32_xmm | C::Pmovmskb_r64_xmm => pmovmskb_x,
        C::Pmovmskb_r32_mm | C::Pmovmskb_r64_mm => pmovmskb_m,
        C::Movnti_m32_r32 | C::Movnti_m64_r64 => {
            op.osz = if code == C::Movnti_m64_r64 { 8 } else { 4 };
            movnti
        }
        C::Maskmovdqu_rDI_xmm_xmm | C::Maskmovq_rDI_mm_mm => {
            op.seg = match ins.memory_segment() {
                r if r.is_segment_register() => (r as u32 - iced_x86::Register::ES as u32) as u8,
                _ => 3,
            };
            if code == C::Maskmovq_rDI_mm_mm {
                maskmovq
            } else {
                maskmovdqu
            }
        }
        _ => return None,
    })
}
