//! Shifts and rotates: ROL/ROR/RCL/RCR/SHL/SHR/SAR and SHLD/SHRD
//! (SDM Vol. 2B SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD). The count is
//! masked to 5 bits (6 with REX.W); a masked count of 0 changes nothing.

use super::{rd, wr};
use crate::cpu::decode::Op;
use crate::cpu::flags::{size_mask, szp};
use crate::cpu::state::rflags::*;
use crate::cpu::{Bus, Cpu, Res};

pub const ROL: u8 = 0;
pub const ROR: u8 = 1;
pub const RCL: u8 = 2;
pub const RCR: u8 = 3;
pub const SHL: u8 = 4;
pub const SHR: u8 = 5;
pub const SAR: u8 = 7;

/// A masked count of 0 changes no flags and no memory, but a 32-bit register
/// destination is still written, which clears its upper half (as Intel CPUs do).
fn zero_count(cpu: &mut Cpu, op: &Op, a: u64) -> Res {
    if op.o[0] < 16 && op.osz == 4 {
        cpu.set_reg(op.o[0], 4, a);
    }
    Ok(())
}

/// The result, CF, OF and whether SF/ZF/PF follow the result (SHL/SHR/SAR)
/// of rotating or shifting `a` by a masked, non-zero `cnt`; `None` when a
/// rotate through carry comes out as a zero count (RCL/RCR modulo
/// size + 1 for 8/16-bit operands).
#[inline(always)]
fn compute<const K: u8>(sz: u8, a: u64, cnt: u32, cf_in: bool) -> Option<(u64, bool, bool, bool)> {
    let bits = sz as u32 * 8;
    let m = size_mask(sz);
    let msb = |v: u64| (v >> (bits - 1)) & 1 != 0;
    Some(match K {
        ROL => {
            let c = cnt % bits;
            let r = if c == 0 {
                a
            } else {
                ((a << c) | (a >> (bits - c))) & m
            };
            let cf = r & 1 != 0;
            (r, cf, msb(r) ^ cf, false)
        }
        ROR => {
            let c = cnt % bits;
            let r = if c == 0 {
                a
            } else {
                ((a >> c) | (a << (bits - c))) & m
            };
            let cf = msb(r);
            (r, cf, msb(r) ^ ((r >> (bits - 2)) & 1 != 0), false)
        }
        RCL => {
            let c = if bits < 32 { cnt % (bits + 1) } else { cnt };
            if c == 0 {
                return None;
            }
            let wide = (a as u128) | ((cf_in as u128) << bits);
            let n = bits + 1;
            let r = ((wide << c) | (wide >> (n - c))) & ((1u128 << n) - 1);
            let cf = (r >> bits) & 1 != 0;
            let r = (r as u64) & m;
            (r, cf, msb(r) ^ cf, false)
        }
        RCR => {
            let c = if bits < 32 { cnt % (bits + 1) } else { cnt };
            if c == 0 {
                return None;
            }
            let wide = (a as u128) | ((cf_in as u128) << bits);
            let n = bits + 1;
            let r = ((wide >> c) | (wide << (n - c))) & ((1u128 << n) - 1);
            let cf = (r >> bits) & 1 != 0;
            let r = (r as u64) & m;
            (r, cf, msb(r) ^ ((r >> (bits - 2)) & 1 != 0), false)
        }
        SHL => {
            let r = if cnt >= 64 { 0 } else { (a << cnt) & m };
            let cf = if cnt > bits {
                false
            } else {
                (a >> (bits - cnt)) & 1 != 0
            };
            (r, cf, msb(r) ^ cf, true)
        }
        SHR => {
            let r = if cnt >= 64 { 0 } else { a >> cnt };
            let cf = if cnt > bits {
                false
            } else {
                (a >> (cnt - 1)) & 1 != 0
            };
            (r, cf, msb(a), true)
        }
        _ => {
            let sh = 64 - bits;
            let sa = ((a << sh) as i64) >> sh;
            let c = cnt.min(63);
            let r = ((sa >> c) as u64) & m;
            let cf = ((sa >> (c - 1).min(63)) & 1) != 0;
            (r, cf, false, true)
        }
    })
}

/// Sets the flags of a non-zero-count shift or rotate.
#[inline(always)]
fn set_flags(cpu: &mut Cpu, sz: u8, res: u64, cf: bool, of: bool, full: bool) {
    if full {
        // Shifts set SF/ZF/PF from the result; AF is undefined (reads 0).
        cpu.flags.given(sz, cf, of, res);
    } else {
        let mut f = 0;
        if cf {
            f |= CF;
        }
        if of {
            f |= OF;
        }
        cpu.flags.set_status(CF | OF, f);
    }
}

/// Generic form: register or memory destination, count in CL or an immediate.
pub fn shift<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let cnt_raw = rd(cpu, bus, op, op.o[1], 1)? as u32;
    let cnt = cnt_raw & if sz == 8 { 0x3F } else { 0x1F };
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    if cnt == 0 {
        return zero_count(cpu, op, a);
    }
    let cf_in = cpu.flags.cf();
    let Some((res, cf, of, full)) = compute::<K>(sz, a, cnt, cf_in) else {
        return zero_count(cpu, op, a);
    };
    wr(cpu, bus, op, op.o[0], sz, res)?;
    set_flags(cpu, sz, res, cf, of, full);
    Ok(())
}

/// SHL/SHR/SAR/ROL/ROR of a general register by an immediate count: the
/// form compiled bignum, hash and address arithmetic is made of (SHA-256's
/// rounds are mostly ROR r32, imm). Not RCL/RCR: they read CF.
pub fn shift_ri<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let cnt = (op.imm as u32) & if sz == 8 { 0x3F } else { 0x1F };
    let a = cpu.reg(op.o[0], sz);
    if cnt == 0 {
        return zero_count(cpu, op, a);
    }
    let Some((res, cf, of, full)) = compute::<K>(sz, a, cnt, false) else {
        return zero_count(cpu, op, a);
    };
    cpu.set_reg(op.o[0], sz, res);
    set_flags(cpu, sz, res, cf, of, full);
    Ok(())
}

/// The handler for a shift or rotate form.
pub fn pick<const K: u8>(op: &Op) -> crate::cpu::decode::Handler {
    if matches!(K, SHL | SHR | SAR | ROL | ROR)
        && op.o[0] < 20
        && op.o[1] == crate::cpu::decode::K_IMM
    {
        shift_ri::<K>
    } else {
        shift::<K>
    }
}

fn double_shift(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, left: bool) -> Res {
    let sz = op.osz;
    let bits = sz as u32 * 8;
    let m = size_mask(sz);
    let cnt_raw = rd(cpu, bus, op, op.o[2], 1)? as u32;
    let cnt = cnt_raw & if sz == 8 { 0x3F } else { 0x1F };
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let b = cpu.reg(op.o[1], sz);
    if cnt == 0 {
        return zero_count(cpu, op, a);
    }
    // Concatenate dest:src (left) or src:dest (right) in 128 bits; for 16-bit
    // operands with counts above 16 the pattern repeats as Intel CPUs do.
    let (res, cf) = if left {
        let wide: u128 = ((a as u128) << bits) | b as u128;
        let wide = if bits == 16 {
            (wide << 32) | ((a as u128) << 16) | b as u128
        } else {
            wide
        };
        let total = if bits == 16 { 64 } else { 2 * bits };
        let r = (wide << cnt) >> (total - bits);
        let cf = (wide >> (total - cnt)) & 1 != 0;
        ((r as u64) & m, cf)
    } else {
        let wide: u128 = ((b as u128) << bits) | a as u128;
        let wide = if bits == 16 {
            wide | ((a as u128) << 32) | ((b as u128) << 48)
        } else {
            wide
        };
        let r = wide >> cnt;
        let cf = (wide >> (cnt - 1)) & 1 != 0;
        ((r as u64) & m, cf)
    };
    wr(cpu, bus, op, op.o[0], sz, res)?;
    let of = ((res ^ a) >> (bits - 1)) & 1 != 0;
    let mut f = szp(sz, res);
    if cf {
        f |= CF;
    }
    if of {
        f |= OF;
    }
    cpu.flags.set_status(CF | OF | SF | ZF | PF | AF, f);
    Ok(())
}

pub fn shld(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    double_shift(cpu, bus, op, true)
}

pub fn shrd(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    double_shift(cpu, bus, op, false)
}
