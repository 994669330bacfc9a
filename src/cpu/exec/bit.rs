//! BT/BTS/BTR/BTC, BSF/BSR, POPCNT (SDM Vol. 2A).

use super::{rd, wr};
use crate::cpu::decode::{Op, K_MEM};
use crate::cpu::state::rflags::*;
use crate::cpu::{Bus, Cpu, Res};

/// BT (K=0), BTS (1), BTR (2), BTC (3). With a register bit offset and a
/// memory operand the offset addresses a bit string (signed, unbounded).
pub fn bt<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let bits = 8 * sz as u64;
    let off = rd(cpu, bus, op, op.o[1], sz)?;
    let (val, bit, ea) = if op.o[0] == K_MEM && op.o[1] < 20 {
        let sh = 64 - bits as u32;
        let soff = ((off << sh) as i64) >> sh;
        let byte_disp = (soff >> (bits.trailing_zeros())) * sz as i64;
        let ea = op.ea(cpu).wrapping_add(byte_disp as u64) & crate::cpu::decode::amask(op.asz);
        let v = cpu.read(bus, op.seg as usize, ea, sz)?;
        (v, off & (bits - 1), Some(ea))
    } else {
        (rd(cpu, bus, op, op.o[0], sz)?, off & (bits - 1), None)
    };
    let cf = (val >> bit) & 1;
    if K != 0 {
        let nv = match K {
            1 => val | (1 << bit),
            2 => val & !(1 << bit),
            _ => val ^ (1 << bit),
        };
        match ea {
            Some(ea) => cpu.write(bus, op.seg as usize, ea, sz, nv)?,
            None => wr(cpu, bus, op, op.o[0], sz, nv)?,
        }
    }
    cpu.flags.set_status(CF, cf);
    Ok(())
}

pub fn bsf(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.osz)?;
    if v == 0 {
        cpu.flags.set_status(ZF, ZF);
    } else {
        cpu.set_reg(op.o[0], op.osz, v.trailing_zeros() as u64);
        cpu.flags.set_status(ZF, 0);
    }
    Ok(())
}

pub fn bsr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.osz)?;
    if v == 0 {
        cpu.flags.set_status(ZF, ZF);
    } else {
        cpu.set_reg(op.o[0], op.osz, 63 - v.leading_zeros() as u64);
        cpu.flags.set_status(ZF, 0);
    }
    Ok(())
}

pub fn popcnt(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.osz)?;
    cpu.set_reg(op.o[0], op.osz, v.count_ones() as u64);
    cpu.flags.set_status(STATUS, if v == 0 { ZF } else { 0 });
    Ok(())
}
