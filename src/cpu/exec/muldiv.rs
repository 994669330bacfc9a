//! MUL/IMUL (one, two and three operand forms) and DIV/IDIV with #DE
//! (SDM Vol. 2A/2B).

use super::{rd, wr};
use crate::cpu::decode::Op;
use crate::cpu::flags::size_mask;
use crate::cpu::{vector, Bus, Cpu, Fault, Res};

fn sext(v: u64, sz: u8) -> i64 {
    let sh = 64 - 8 * sz as u32;
    ((v << sh) as i64) >> sh
}

/// Writes a double-width result to AX / DX:AX / EDX:EAX / RDX:RAX.
fn store_wide(cpu: &mut Cpu, sz: u8, lo: u64, hi: u64) {
    if sz == 1 {
        cpu.set_reg(0, 2, (lo & 0xFF) | ((hi & 0xFF) << 8));
    } else {
        cpu.set_reg(0, sz, lo);
        cpu.set_reg(2, sz, hi);
    }
}

fn set_mul_flags(cpu: &mut Cpu, sz: u8, lo: u64, overflow: bool) {
    // CF = OF = overflow; SF/ZF/AF/PF are undefined: SF/ZF/PF follow the
    // low half, AF reads 0.
    cpu.flags.given(sz, overflow, overflow, lo);
}

pub fn mul(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let b = rd(cpu, bus, op, op.o[0], sz)? as u128;
    let a = cpu.reg(0, sz) as u128;
    let p = a * b;
    let bits = 8 * sz as u32;
    let lo = (p as u64) & size_mask(sz);
    let hi = ((p >> bits) as u64) & size_mask(sz);
    store_wide(cpu, sz, lo, hi);
    set_mul_flags(cpu, sz, lo, hi != 0);
    Ok(())
}

pub fn imul1(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let b = sext(rd(cpu, bus, op, op.o[0], sz)?, sz) as i128;
    let a = sext(cpu.reg(0, sz), sz) as i128;
    let p = a * b;
    let bits = 8 * sz as u32;
    let lo = (p as u64) & size_mask(sz);
    let hi = ((p >> bits) as u64) & size_mask(sz);
    store_wide(cpu, sz, lo, hi);
    let overflow = p != sext(lo, sz) as i128;
    set_mul_flags(cpu, sz, lo, overflow);
    Ok(())
}

/// IMUL r, r/m and IMUL r, r/m, imm.
pub fn imul_n(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let (a, b) = if op.o[2] != crate::cpu::decode::K_NONE {
        (rd(cpu, bus, op, op.o[1], sz)?, op.imm)
    } else {
        (cpu.reg(op.o[0], sz), rd(cpu, bus, op, op.o[1], sz)?)
    };
    let p = sext(a, sz) as i128 * sext(b & size_mask(sz), sz) as i128;
    let lo = (p as u64) & size_mask(sz);
    wr(cpu, bus, op, op.o[0], sz, lo)?;
    set_mul_flags(cpu, sz, lo, p != sext(lo, sz) as i128);
    Ok(())
}

/// IMUL r, r and IMUL r, r, imm (both operands in registers): the
/// multiply of bignum and hash inner loops.
pub fn imul_r(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let (a, b) = if op.o[2] != crate::cpu::decode::K_NONE {
        (cpu.reg(op.o[1], sz), op.imm)
    } else {
        (cpu.reg(op.o[0], sz), cpu.reg(op.o[1], sz))
    };
    let p = sext(a, sz) as i128 * sext(b & size_mask(sz), sz) as i128;
    let lo = (p as u64) & size_mask(sz);
    cpu.set_reg(op.o[0], sz, lo);
    set_mul_flags(cpu, sz, lo, p != sext(lo, sz) as i128);
    Ok(())
}

pub fn div(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let d = rd(cpu, bus, op, op.o[0], sz)? as u128;
    if d == 0 {
        return Err(Fault::new(vector::DE));
    }
    let bits = 8 * sz as u32;
    let n: u128 = if sz == 1 {
        cpu.reg(0, 2) as u128
    } else {
        ((cpu.reg(2, sz) as u128) << bits) | cpu.reg(0, sz) as u128
    };
    let q = n / d;
    let r = n % d;
    if q > size_mask(sz) as u128 {
        return Err(Fault::new(vector::DE));
    }
    if sz == 1 {
        cpu.set_reg(0, 2, (q as u64 & 0xFF) | ((r as u64 & 0xFF) << 8));
    } else {
        cpu.set_reg(0, sz, q as u64);
        cpu.set_reg(2, sz, r as u64);
    }
    Ok(())
}

pub fn idiv(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let d = sext(rd(cpu, bus, op, op.o[0], sz)?, sz) as i128;
    if d == 0 {
        return Err(Fault::new(vector::DE));
    }
    let bits = 8 * sz as u32;
    let n: i128 = if sz == 1 {
        sext(cpu.reg(0, 2), 2) as i128
    } else {
        let wide = ((cpu.reg(2, sz) as u128) << bits) | cpu.reg(0, sz) as u128;
        let sh = 128 - 2 * bits;
        ((wide << sh) as i128) >> sh
    };
    if n == i128::MIN && d == -1 {
        return Err(Fault::new(vector::DE));
    }
    let q = n / d;
    let r = n % d;
    let max = (size_mask(sz) >> 1) as i128;
    if q > max || q < -max - 1 {
        return Err(Fault::new(vector::DE));
    }
    if sz == 1 {
        cpu.set_reg(0, 2, (q as u64 & 0xFF) | ((r as u64 & 0xFF) << 8));
    } else {
        cpu.set_reg(0, sz, q as u64 & size_mask(sz));
        cpu.set_reg(2, sz, r as u64 & size_mask(sz));
    }
    Ok(())
}
