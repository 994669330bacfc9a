//! Packed integer semantics shared by the MMX (64-bit) and SSE2 (128-bit)
//! forms (SDM Vol. 1 9.4, 11.4.3; Vol. 2 PADD*, PSUB*, PCMP*, PMUL*, PACK*,
//! PUNPCK*, shifts). Each function takes the destination value `a`, the
//! source value `b` and the register width `n` in bytes (8 or 16); bits above
//! `n` bytes of the result are zero.

/// Operation codes for [`binop`] (the handlers' const parameter).
pub mod k {
    pub const PADDB: u8 = 0;
    pub const PADDW: u8 = 1;
    pub const PADDD: u8 = 2;
    pub const PADDQ: u8 = 3;
    pub const PSUBB: u8 = 4;
    pub const PSUBW: u8 = 5;
    pub const PSUBD: u8 = 6;
    pub const PSUBQ: u8 = 7;
    pub const PADDSB: u8 = 8;
    pub const PADDSW: u8 = 9;
    pub const PADDUSB: u8 = 10;
    pub const PADDUSW: u8 = 11;
    pub const PSUBSB: u8 = 12;
    pub const PSUBSW: u8 = 13;
    pub const PSUBUSB: u8 = 14;
    pub const PSUBUSW: u8 = 15;
    pub const PMULLW: u8 = 16;
    pub const PMULHW: u8 = 17;
    pub const PMULHUW: u8 = 18;
    pub const PMULUDQ: u8 = 19;
    pub const PMADDWD: u8 = 20;
    pub const PCMPEQB: u8 = 21;
    pub const PCMPEQW: u8 = 22;
    pub const PCMPEQD: u8 = 23;
    pub const PCMPGTB: u8 = 24;
    pub const PCMPGTW: u8 = 25;
    pub const PCMPGTD: u8 = 26;
    pub const PAND: u8 = 27;
    pub const PANDN: u8 = 28;
    pub const POR: u8 = 29;
    pub const PXOR: u8 = 30;
    pub const PACKSSWB: u8 = 31;
    pub const PACKSSDW: u8 = 32;
    pub const PACKUSWB: u8 = 33;
    pub const PUNPCKLBW: u8 = 34;
    pub const PUNPCKLWD: u8 = 35;
    pub const PUNPCKLDQ: u8 = 36;
    pub const PUNPCKLQDQ: u8 = 37;
    pub const PUNPCKHBW: u8 = 38;
    pub const PUNPCKHWD: u8 = 39;
    pub const PUNPCKHDQ: u8 = 40;
    pub const PUNPCKHQDQ: u8 = 41;
    pub const PAVGB: u8 = 42;
    pub const PAVGW: u8 = 43;
    pub const PSADBW: u8 = 44;
    pub const PMINUB: u8 = 45;
    pub const PMAXUB: u8 = 46;
    pub const PMINSW: u8 = 47;
    pub const PMAXSW: u8 = 48;
    pub const PSRLW: u8 = 49;
    pub const PSRLD: u8 = 50;
    pub const PSRLQ: u8 = 51;
    pub const PSRAW: u8 = 52;
    pub const PSRAD: u8 = 53;
    pub const PSLLW: u8 = 54;
    pub const PSLLD: u8 = 55;
    pub const PSLLQ: u8 = 56;
    /// Bitwise logic of the FP forms (ANDPS...): same as the integer ones.
    pub const ANDNPS: u8 = PANDN;
}

/// Width mask for `n` bytes.
#[inline(always)]
fn wmask(n: usize) -> u128 {
    if n >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * n)) - 1
    }
}

/// Applies `f` to each `S`-byte lane (S = 1, 2, 4, 8) of `a` and `b`.
#[inline(always)]
fn lanes<const S: usize>(a: u128, b: u128, n: usize, f: impl Fn(u64, u64) -> u64) -> u128 {
    let bits = 8 * S as u32;
    let m: u64 = if S == 8 { u64::MAX } else { (1u64 << bits) - 1 };
    let mut r = 0u128;
    let mut i = 0;
    while i < n / S {
        let sh = bits * i as u32;
        let x = (a >> sh) as u64 & m;
        let y = (b >> sh) as u64 & m;
        r |= ((f(x, y) & m) as u128) << sh;
        i += 1;
    }
    r
}

#[inline(always)]
fn sx(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}

#[inline(always)]
fn sat_s(v: i64, bits: u32) -> u64 {
    let lo = -(1i64 << (bits - 1));
    let hi = (1i64 << (bits - 1)) - 1;
    v.clamp(lo, hi) as u64
}

#[inline(always)]
fn sat_u(v: i64, bits: u32) -> u64 {
    v.clamp(0, (1i64 << bits) - 1) as u64
}

/// Element `i` of size `s` bytes.
#[inline(always)]
fn elem(v: u128, s: usize, i: usize) -> u64 {
    let bits = 8 * s as u32;
    let m = if s == 8 { u64::MAX } else { (1u64 << bits) - 1 };
    (v >> (bits * i as u32)) as u64 & m
}

/// Interleaves elements of size `s` from the low (`high` false) or high half.
fn unpack(a: u128, b: u128, n: usize, s: usize, high: bool) -> u128 {
    let c = n / s;
    let base = if high { c / 2 } else { 0 };
    let bits = 8 * s as u32;
    let mut r = 0u128;
    for i in 0..c / 2 {
        r |= (elem(a, s, base + i) as u128) << (bits * (2 * i) as u32);
        r |= (elem(b, s, base + i) as u128) << (bits * (2 * i + 1) as u32);
    }
    r
}

/// Packs elements of `s` bytes to `s/2` bytes with saturation: `a`'s
/// elements first, then `b`'s.
fn pack(a: u128, b: u128, n: usize, s: usize, unsigned: bool) -> u128 {
    let c = n / s;
    let bits = 8 * s as u32;
    let half = bits / 2;
    let mut r = 0u128;
    for i in 0..2 * c {
        let v = if i < c {
            elem(a, s, i)
        } else {
            elem(b, s, i - c)
        };
        let v = sx(v, bits);
        let p = if unsigned {
            sat_u(v, half)
        } else {
            sat_s(v, half) & ((1u64 << half) - 1)
        };
        r |= (p as u128) << (half * i as u32);
    }
    r
}

/// Logical/arithmetic shift of each lane by `count` (counts above the lane
/// width give 0, or the sign fill for arithmetic shifts).
fn shift<const S: usize>(a: u128, n: usize, count: u64, op: u8) -> u128 {
    let bits = 8 * S as u64;
    lanes::<S>(a, 0, n, |x, _| {
        if count >= bits {
            match op {
                1 if sx(x, bits as u32) < 0 => u64::MAX,
                _ => 0,
            }
        } else {
            match op {
                0 => x >> count,
                1 => (sx(x, bits as u32) >> count) as u64,
                _ => x << count,
            }
        }
    })
}

/// The packed-integer binary operation `K` on `n`-byte registers.
#[inline(always)]
pub fn binop<const K: u8>(a: u128, b: u128, n: usize) -> u128 {
    use k::*;
    let r = match K {
        PADDB => lanes::<1>(a, b, n, |x, y| x.wrapping_add(y)),
        PADDW => lanes::<2>(a, b, n, |x, y| x.wrapping_add(y)),
        PADDD => lanes::<4>(a, b, n, |x, y| x.wrapping_add(y)),
        PADDQ => lanes::<8>(a, b, n, |x, y| x.wrapping_add(y)),
        PSUBB => lanes::<1>(a, b, n, |x, y| x.wrapping_sub(y)),
        PSUBW => lanes::<2>(a, b, n, |x, y| x.wrapping_sub(y)),
        PSUBD => lanes::<4>(a, b, n, |x, y| x.wrapping_sub(y)),
        PSUBQ => lanes::<8>(a, b, n, |x, y| x.wrapping_sub(y)),
        PADDSB => lanes::<1>(a, b, n, |x, y| sat_s(sx(x, 8) + sx(y, 8), 8)),
        PADDSW => lanes::<2>(a, b, n, |x, y| sat_s(sx(x, 16) + sx(y, 16), 16)),
        PADDUSB => lanes::<1>(a, b, n, |x, y| sat_u((x + y) as i64, 8)),
        PADDUSW => lanes::<2>(a, b, n, |x, y| sat_u((x + y) as i64, 16)),
        PSUBSB => lanes::<1>(a, b, n, |x, y| sat_s(sx(x, 8) - sx(y, 8), 8)),
        PSUBSW => lanes::<2>(a, b, n, |x, y| sat_s(sx(x, 16) - sx(y, 16), 16)),
        PSUBUSB => lanes::<1>(a, b, n, |x, y| sat_u(x as i64 - y as i64, 8)),
        PSUBUSW => lanes::<2>(a, b, n, |x, y| sat_u(x as i64 - y as i64, 16)),
        PMULLW => lanes::<2>(a, b, n, |x, y| x.wrapping_mul(y)),
        PMULHW => lanes::<2>(a, b, n, |x, y| ((sx(x, 16) * sx(y, 16)) >> 16) as u64),
        PMULHUW => lanes::<2>(a, b, n, |x, y| (x * y) >> 16),
        PMULUDQ => lanes::<8>(a, b, n, |x, y| (x & 0xFFFF_FFFF) * (y & 0xFFFF_FFFF)),
        PMADDWD => lanes::<4>(a, b, n, |x, y| {
            let lo = sx(x & 0xFFFF, 16) * sx(y & 0xFFFF, 16);
            let hi = sx(x >> 16, 16) * sx(y >> 16, 16);
            (lo + hi) as u64
        }),
        PCMPEQB => lanes::<1>(a, b, n, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPEQW => lanes::<2>(a, b, n, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPEQD => lanes::<4>(a, b, n, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPGTB => lanes::<1>(
            a,
            b,
            n,
            |x, y| if sx(x, 8) > sx(y, 8) { u64::MAX } else { 0 },
        ),
        PCMPGTW => lanes::<2>(
            a,
            b,
            n,
            |x, y| {
                if sx(x, 16) > sx(y, 16) {
                    u64::MAX
                } else {
                    0
                }
            },
        ),
        PCMPGTD => lanes::<4>(
            a,
            b,
            n,
            |x, y| {
                if sx(x, 32) > sx(y, 32) {
                    u64::MAX
                } else {
                    0
                }
            },
        ),
        PAND => a & b,
        PANDN => !a & b,
        POR => a | b,
        PXOR => a ^ b,
        PACKSSWB => pack(a, b, n, 2, false),
        PACKSSDW => pack(a, b, n, 4, false),
        PACKUSWB => pack(a, b, n, 2, true),
        PUNPCKLBW => unpack(a, b, n, 1, false),
        PUNPCKLWD => unpack(a, b, n, 2, false),
        PUNPCKLDQ => unpack(a, b, n, 4, false),
        PUNPCKLQDQ => unpack(a, b, n, 8, false),
        PUNPCKHBW => unpack(a, b, n, 1, true),
        PUNPCKHWD => unpack(a, b, n, 2, true),
        PUNPCKHDQ => unpack(a, b, n, 4, true),
        PUNPCKHQDQ => unpack(a, b, n, 8, true),
        PAVGB => lanes::<1>(a, b, n, |x, y| (x + y + 1) >> 1),
        PAVGW => lanes::<2>(a, b, n, |x, y| (x + y + 1) >> 1),
        PSADBW => lanes::<8>(a, b, n, |x, y| {
            (0..8)
                .map(|i| {
                    let (p, q) = ((x >> (8 * i)) & 0xFF, (y >> (8 * i)) & 0xFF);
                    p.abs_diff(q)
                })
                .sum::<u64>()
        }),
        PMINUB => lanes::<1>(a, b, n, |x, y| x.min(y)),
        PMAXUB => lanes::<1>(a, b, n, |x, y| x.max(y)),
        PMINSW => lanes::<2>(a, b, n, |x, y| if sx(x, 16) < sx(y, 16) { x } else { y }),
        PMAXSW => lanes::<2>(a, b, n, |x, y| if sx(x, 16) > sx(y, 16) { x } else { y }),
        // Shifts by a register/memory count: the whole low 64 bits are the count.
        PSRLW => shift::<2>(a, n, b as u64, 0),
        PSRLD => shift::<4>(a, n, b as u64, 0),
        PSRLQ => shift::<8>(a, n, b as u64, 0),
        PSRAW => shift::<2>(a, n, b as u64, 1),
        PSRAD => shift::<4>(a, n, b as u64, 1),
        PSLLW => shift::<2>(a, n, b as u64, 2),
        PSLLD => shift::<4>(a, n, b as u64, 2),
        PSLLQ => shift::<8>(a, n, b as u64, 2),
        _ => a,
    };
    r & wmask(n)
}

/// PSHUFD / PSHUFW element selection: result element i = source element
/// `imm[2i+1:2i]` of size `s` among the first four elements starting at `base`.
pub fn shuffle4(src: u128, s: usize, base: usize, imm: u8) -> u128 {
    let bits = 8 * s as u32;
    let mut r = 0u128;
    for i in 0..4 {
        let sel = ((imm >> (2 * i)) & 3) as usize;
        r |= (elem(src, s, base + sel) as u128) << (bits * (base + i) as u32);
    }
    r
}

/// PMOVMSKB: the top bit of each byte.
pub fn movmskb(v: u128, n: usize) -> u64 {
    let mut m = 0u64;
    for i in 0..n {
        m |= (((v >> (8 * i + 7)) & 1) as u64) << i;
    }
    m
}

// ---- handlers ----

use super::{mmx_start, rn, src128, src_gpr, src_mm};
use crate::cpu::decode::{Handler, Op};
use crate::cpu::{Bus, Cpu, Res};
use iced_x86::Code as C;

/// `K` on xmm, xmm/m128 (aligned).
pub fn op_x<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let b = src128(cpu, bus, op, 1, true)?;
    let d = rn(op, 0);
    cpu.fpu.xmm[d] = binop::<K>(cpu.fpu.xmm[d], b, 16);
    Ok(())
}

/// `K` on mm, mm/m64 (`M32`: the low-unpack forms read only m32).
pub fn op_m<const K: u8, const M32: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let b = src_mm(cpu, bus, op, 1, if M32 { 4 } else { 8 })?;
    let d = rn(op, 0);
    let r = binop::<K>(cpu.fpu.mmx(d) as u128, b as u128, 8);
    cpu.fpu.set_mmx(d, r as u64);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// Shift by imm8: xmm.
pub fn shift_imm_x<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let d = rn(op, 0);
    cpu.fpu.xmm[d] = binop::<K>(cpu.fpu.xmm[d], (op.imm & 0xFF) as u128, 16);
    Ok(())
}

/// Shift by imm8: mm.
pub fn shift_imm_m<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let d = rn(op, 0);
    let r = binop::<K>(cpu.fpu.mmx(d) as u128, (op.imm & 0xFF) as u128, 8);
    cpu.fpu.set_mmx(d, r as u64);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// PSLLDQ (`LEFT`) / PSRLDQ: byte shifts of the whole register; counts above
/// 15 clear it.
pub fn pshift_dq<const LEFT: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let d = rn(op, 0);
    let n = (op.imm & 0xFF) as u32;
    let x = cpu.fpu.xmm[d];
    cpu.fpu.xmm[d] = if n > 15 {
        0
    } else if LEFT {
        x << (8 * n)
    } else {
        x >> (8 * n)
    };
    Ok(())
}

/// PSHUFD (`W` 0), PSHUFHW (1), PSHUFLW (2) xmm, xmm/m128, imm8.
pub fn pshuf_x<const W: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let s = src128(cpu, bus, op, 1, true)?;
    let imm = op.imm as u8;
    let r = match W {
        0 => shuffle4(s, 4, 0, imm),
        1 => (s & u64::MAX as u128) | shuffle4(s, 2, 4, imm),
        _ => (s & !(u64::MAX as u128)) | shuffle4(s, 2, 0, imm),
    };
    cpu.fpu.xmm[rn(op, 0)] = r;
    Ok(())
}

/// PSHUFW mm, mm/m64, imm8.
pub fn pshufw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let s = src_mm(cpu, bus, op, 1, 8)?;
    let r = shuffle4(s as u128, 2, 0, op.imm as u8);
    cpu.fpu.set_mmx(rn(op, 0), r as u64);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// PEXTRW r, xmm, imm8 (word imm[2:0]), zero-extended.
pub fn pextrw_x(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = (cpu.fpu.xmm[rn(op, 1)] >> (16 * (op.imm & 7))) as u64 & 0xFFFF;
    cpu.set_reg(op.o[0], 8, v);
    Ok(())
}

/// PEXTRW r, mm, imm8 (word imm[1:0]).
pub fn pextrw_m(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let v = (cpu.fpu.mmx(rn(op, 1)) >> (16 * (op.imm & 3))) & 0xFFFF;
    cpu.set_reg(op.o[0], 8, v);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// PINSRW xmm, r32/m16, imm8.
pub fn pinsrw_x(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_sse()?;
    let v = src_gpr(cpu, bus, op, 1, 2)? as u128 & 0xFFFF;
    let sh = 16 * (op.imm & 7) as u32;
    let d = rn(op, 0);
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !(0xFFFFu128 << sh)) | (v << sh);
    Ok(())
}

/// PINSRW mm, r32/m16, imm8.
pub fn pinsrw_m(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    mmx_start(cpu)?;
    let v = src_gpr(cpu, bus, op, 1, 2)? & 0xFFFF;
    let sh = 16 * (op.imm & 3) as u32;
    let d = rn(op, 0);
    let r = (cpu.fpu.mmx(d) & !(0xFFFFu64 << sh)) | (v << sh);
    cpu.fpu.set_mmx(d, r);
    cpu.fpu.enter_mmx();
    Ok(())
}

/// EMMS: all x87 tags empty (SDM Vol. 2 EMMS); the host also leaves TOP = 0,
/// as after any MMX instruction.
pub fn emms(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    mmx_start(cpu)?;
    cpu.fpu.enter_mmx();
    cpu.fpu.emms();
    Ok(())
}

macro_rules! xm {
    ($code:expr, $x:ident, $m:ident, $k:ident, $op:ident) => {
        if $code == C::$x {
            return Some(op_x::<{ k::$k }>);
        }
        if $code == C::$m {
            return Some(op_m::<{ k::$k }, false>);
        }
    };
}

/// The packed-integer forms (MMX and SSE2).
pub fn pick(code: C, _op: &mut Op) -> Option<Handler> {
    xm!(code, Paddb_xmm_xmmm128, Paddb_mm_mmm64, PADDB, op);
    xm!(code, Paddw_xmm_xmmm128, Paddw_mm_mmm64, PADDW, op);
    xm!(code, Paddd_xmm_xmmm128, Paddd_mm_mmm64, PADDD, op);
    xm!(code, Paddq_xmm_xmmm128, Paddq_mm_mmm64, PADDQ, op);
    xm!(code, Psubb_xmm_xmmm128, Psubb_mm_mmm64, PSUBB, op);
    xm!(code, Psubw_xmm_xmmm128, Psubw_mm_mmm64, PSUBW, op);
    xm!(code, Psubd_xmm_xmmm128, Psubd_mm_mmm64, PSUBD, op);
    xm!(code, Psubq_xmm_xmmm128, Psubq_mm_mmm64, PSUBQ, op);
    xm!(code, Paddsb_xmm_xmmm128, Paddsb_mm_mmm64, PADDSB, op);
    xm!(code, Paddsw_xmm_xmmm128, Paddsw_mm_mmm64, PADDSW, op);
    xm!(code, Paddusb_xmm_xmmm128, Paddusb_mm_mmm64, PADDUSB, op);
    xm!(code, Paddusw_xmm_xmmm128, Paddusw_mm_mmm64, PADDUSW, op);
    xm!(code, Psubsb_xmm_xmmm128, Psubsb_mm_mmm64, PSUBSB, op);
    xm!(code, Psubsw_xmm_xmmm128, Psubsw_mm_mmm64, PSUBSW, op);
    xm!(code, Psubusb_xmm_xmmm128, Psubusb_mm_mmm64, PSUBUSB, op);
    xm!(code, Psubusw_xmm_xmmm128, Psubusw_mm_mmm64, PSUBUSW, op);
    xm!(code, Pmullw_xmm_xmmm128, Pmullw_mm_mmm64, PMULLW, op);
    xm!(code, Pmulhw_xmm_xmmm128, Pmulhw_mm_mmm64, PMULHW, op);
    xm!(code, Pmulhuw_xmm_xmmm128, Pmulhuw_mm_mmm64, PMULHUW, op);
    xm!(code, Pmuludq_xmm_xmmm128, Pmuludq_mm_mmm64, PMULUDQ, op);
    xm!(code, Pmaddwd_xmm_xmmm128, Pmaddwd_mm_mmm64, PMADDWD, op);
    xm!(code, Pcmpeqb_xmm_xmmm128, Pcmpeqb_mm_mmm64, PCMPEQB, op);
    xm!(code, Pcmpeqw_xmm_xmmm128, Pcmpeqw_mm_mmm64, PCMPEQW, op);
    xm!(code, Pcmpeqd_xmm_xmmm128, Pcmpeqd_mm_mmm64, PCMPEQD, op);
    xm!(code, Pcmpgtb_xmm_xmmm128, Pcmpgtb_mm_mmm64, PCMPGTB, op);
    xm!(code, Pcmpgtw_xmm_xmmm128, Pcmpgtw_mm_mmm64, PCMPGTW, op);
    xm!(code, Pcmpgtd_xmm_xmmm128, Pcmpgtd_mm_mmm64, PCMPGTD, op);
    xm!(code, Pand_xmm_xmmm128, Pand_mm_mmm64, PAND, op);
    xm!(code, Pandn_xmm_xmmm128, Pandn_mm_mmm64, PANDN, op);
    xm!(code, Por_xmm_xmmm128, Por_mm_mmm64, POR, op);
    xm!(code, Pxor_xmm_xmmm128, Pxor_mm_mmm64, PXOR, op);
    xm!(code, Packsswb_xmm_xmmm128, Packsswb_mm_mmm64, PACKSSWB, op);
    xm!(code, Packssdw_xmm_xmmm128, Packssdw_mm_mmm64, PACKSSDW, op);
    xm!(code, Packuswb_xmm_xmmm128, Packuswb_mm_mmm64, PACKUSWB, op);
    xm!(
        code,
        Punpckhbw_xmm_xmmm128,
        Punpckhbw_mm_mmm64,
        PUNPCKHBW,
        op
    );
    xm!(
        code,
        Punpckhwd_xmm_xmmm128,
        Punpckhwd_mm_mmm64,
        PUNPCKHWD,
        op
    );
    xm!(
        code,
        Punpckhdq_xmm_xmmm128,
        Punpckhdq_mm_mmm64,
        PUNPCKHDQ,
        op
    );
    xm!(code, Pavgb_xmm_xmmm128, Pavgb_mm_mmm64, PAVGB, op);
    xm!(code, Pavgw_xmm_xmmm128, Pavgw_mm_mmm64, PAVGW, op);
    xm!(code, Psadbw_xmm_xmmm128, Psadbw_mm_mmm64, PSADBW, op);
    xm!(code, Pminub_xmm_xmmm128, Pminub_mm_mmm64, PMINUB, op);
    xm!(code, Pmaxub_xmm_xmmm128, Pmaxub_mm_mmm64, PMAXUB, op);
    xm!(code, Pminsw_xmm_xmmm128, Pminsw_mm_mmm64, PMINSW, op);
    xm!(code, Pmaxsw_xmm_xmmm128, Pmaxsw_mm_mmm64, PMAXSW, op);
    xm!(code, Psrlw_xmm_xmmm128, Psrlw_mm_mmm64, PSRLW, op);
    xm!(code, Psrld_xmm_xmmm128, Psrld_mm_mmm64, PSRLD, op);
    xm!(code, Psrlq_xmm_xmmm128, Psrlq_mm_mmm64, PSRLQ, op);
    xm!(code, Psraw_xmm_xmmm128, Psraw_mm_mmm64, PSRAW, op);
    xm!(code, Psrad_xmm_xmmm128, Psrad_mm_mmm64, PSRAD, op);
    xm!(code, Psllw_xmm_xmmm128, Psllw_mm_mmm64, PSLLW, op);
    xm!(code, Pslld_xmm_xmmm128, Pslld_mm_mmm64, PSLLD, op);
    xm!(code, Psllq_xmm_xmmm128, Psllq_mm_mmm64, PSLLQ, op);
    Some(match code {
        C::Punpcklbw_xmm_xmmm128 => op_x::<{ k::PUNPCKLBW }>,
        C::Punpcklwd_xmm_xmmm128 => op_x::<{ k::PUNPCKLWD }>,
        C::Punpckldq_xmm_xmmm128 => op_x::<{ k::PUNPCKLDQ }>,
        C::Punpcklqdq_xmm_xmmm128 => op_x::<{ k::PUNPCKLQDQ }>,
        C::Punpckhqdq_xmm_xmmm128 => op_x::<{ k::PUNPCKHQDQ }>,
        C::Punpcklbw_mm_mmm32 => op_m::<{ k::PUNPCKLBW }, true>,
        C::Punpcklwd_mm_mmm32 => op_m::<{ k::PUNPCKLWD }, true>,
        C::Punpckldq_mm_mmm32 => op_m::<{ k::PUNPCKLDQ }, true>,
        C::Psrlw_xmm_imm8 => shift_imm_x::<{ k::PSRLW }>,
        C::Psrld_xmm_imm8 => shift_imm_x::<{ k::PSRLD }>,
        C::Psrlq_xmm_imm8 => shift_imm_x::<{ k::PSRLQ }>,
        C::Psraw_xmm_imm8 => shift_imm_x::<{ k::PSRAW }>,
        C::Psrad_xmm_imm8 => shift_imm_x::<{ k::PSRAD }>,
        C::Psllw_xmm_imm8 => shift_imm_x::<{ k::PSLLW }>,
        C::Pslld_xmm_imm8 => shift_imm_x::<{ k::PSLLD }>,
        C::Psllq_xmm_imm8 => shift_imm_x::<{ k::PSLLQ }>,
        C::Psrlw_mm_imm8 => shift_imm_m::<{ k::PSRLW }>,
        C::Psrld_mm_imm8 => shift_imm_m::<{ k::PSRLD }>,
        C::Psrlq_mm_imm8 => shift_imm_m::<{ k::PSRLQ }>,
        C::Psraw_mm_imm8 => shift_imm_m::<{ k::PSRAW }>,
        C::Psrad_mm_imm8 => shift_imm_m::<{ k::PSRAD }>,
        C::Psllw_mm_imm8 => shift_imm_m::<{ k::PSLLW }>,
        C::Pslld_mm_imm8 => shift_imm_m::<{ k::PSLLD }>,
        C::Psllq_mm_imm8 => shift_imm_m::<{ k::PSLLQ }>,
        C::Pslldq_xmm_imm8 => pshift_dq::<true>,
        C::Psrldq_xmm_imm8 => pshift_dq::<false>,
        C::Pshufd_xmm_xmmm128_imm8 => pshuf_x::<0>,
        C::Pshufhw_xmm_xmmm128_imm8 => pshuf_x::<1>,
        C::Pshuflw_xmm_xmmm128_imm8 => pshuf_x::<2>,
        C::Pshufw_mm_mmm64_imm8 => pshufw,
        C::Pextrw_r32_xmm_imm8 | C::Pextrw_r64_xmm_imm8 => pextrw_x,
        C::Pextrw_r32_mm_imm8 | C::Pextrw_r64_mm_imm8 => pextrw_m,
        C::Pinsrw_xmm_r32m16_imm8 | C::Pinsrw_xmm_r64m16_imm8 => pinsrw_x,
        C::Pinsrw_mm_r32m16_imm8 | C::Pinsrw_mm_r64m16_imm8 => pinsrw_m,
        C::Emms => emms,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::k::*;
    use super::*;

    #[test]
    fn saturation_and_packs() {
        assert_eq!(binop::<PADDSB>(0x7F, 0x01, 8), 0x7F);
        assert_eq!(binop::<PADDUSB>(0xFF, 0x01, 8), 0xFF);
        assert_eq!(binop::<PSUBUSW>(0x0001, 0x0002, 8), 0);
        assert_eq!(binop::<PSUBSW>(0x8000, 0x0001, 8), 0x8000);
        // packsswb mm: words 0x0100 (->7F), 0xFF00 (-> 80)
        assert_eq!(binop::<PACKSSWB>(0xFF00_0100, 0, 8), 0x807F);
        assert_eq!(
            binop::<PACKUSWB>(0xFF00_0100, 0x0000_0042, 8),
            0x0042_0000_00FF
        );
    }

    #[test]
    fn unpacks_respect_the_width() {
        assert_eq!(binop::<PUNPCKLBW>(0x0201, 0x0B0A, 8), 0x0B02_0A01);
        assert_eq!(
            binop::<PUNPCKHDQ>(0x2222_2222_1111_1111, 0x4444_4444_3333_3333, 8),
            0x4444_4444_2222_2222
        );
        assert_eq!(binop::<PUNPCKHQDQ>(5 << 64, 7 << 64, 16), (7 << 64) | 5);
    }

    #[test]
    fn shifts_and_multiplies() {
        assert_eq!(binop::<PSRAW>(0x8000, 16, 8), 0xFFFF);
        assert_eq!(binop::<PSLLQ>(1, 64, 8), 0);
        assert_eq!(binop::<PMADDWD>(0x0002_0003, 0x0004_0005, 8), 23);
        assert_eq!(
            binop::<PMULUDQ>(0xFFFF_FFFF, 0xFFFF_FFFF, 8),
            0xFFFF_FFFE_0000_0001
        );
        assert_eq!(binop::<PSADBW>(0x0102, 0x0300, 8), 4);
        assert_eq!(movmskb(0x80FF_0000, 8), 0b1100);
    }
}
