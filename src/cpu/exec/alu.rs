//! ADD/OR/ADC/SBB/AND/SUB/XOR/CMP/TEST, INC/DEC/NEG/NOT (SDM Vol. 2A/2B).
//! Flags are left lazy (see `cpu::flags`).

use super::{rd, wr};
use crate::cpu::decode::{Handler, Op};
use crate::cpu::flags::{size_mask, LazyOp};
use crate::cpu::state::rflags::{CF, STATUS};
use crate::cpu::{Bus, Cpu, Res};

pub const ADD: u8 = 0;
pub const OR: u8 = 1;
pub const ADC: u8 = 2;
pub const SBB: u8 = 3;
pub const AND: u8 = 4;
pub const SUB: u8 = 5;
pub const XOR: u8 = 6;
pub const CMP: u8 = 7;
pub const TEST: u8 = 8;

pub fn pick_alu<const K: u8>(op: &Op, reg_reg: bool) -> Handler {
    if reg_reg {
        alu_rr::<K>
    } else if op.o[0] < 20 && op.o[1] == crate::cpu::decode::K_IMM {
        alu_ri::<K>
    } else {
        alu::<K>
    }
}

#[inline(always)]
fn compute<const K: u8>(cpu: &mut Cpu, sz: u8, a: u64, b: u64) -> u64 {
    match K {
        ADD => {
            let r = a.wrapping_add(b);
            cpu.flags.add(sz, a, b, r);
            r
        }
        ADC => {
            let c = cpu.flags.cf() as u64;
            let r = a.wrapping_add(b).wrapping_add(c);
            cpu.flags.add(sz, a, b, r);
            r
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b);
            cpu.flags.sub(sz, a, b, r);
            r
        }
        SBB => {
            let c = cpu.flags.cf() as u64;
            let r = a.wrapping_sub(b).wrapping_sub(c);
            cpu.flags.sub(sz, a, b, r);
            r
        }
        AND | TEST => {
            let r = a & b;
            cpu.flags.logic(sz, r);
            r
        }
        OR => {
            let r = a | b;
            cpu.flags.logic(sz, r);
            r
        }
        _ => {
            let r = a ^ b;
            cpu.flags.logic(sz, r);
            r
        }
    }
}

/// Generic form: any operand kinds.
pub fn alu<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let m = size_mask(sz);
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let b = rd(cpu, bus, op, op.o[1], sz)? & m;
    if K == CMP || K == TEST {
        compute::<K>(cpu, sz, a, b);
        return Ok(());
    }
    // Compute into a scratch flag state so a faulting write leaves flags alone.
    let saved = cpu.flags;
    let r = compute::<K>(cpu, sz, a, b);
    if let Err(e) = wr(cpu, bus, op, op.o[0], sz, r & m) {
        cpu.flags = saved;
        return Err(e);
    }
    Ok(())
}

/// Register, register.
pub fn alu_rr<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = cpu.reg(op.o[0], sz);
    let b = cpu.reg(op.o[1], sz);
    let r = compute::<K>(cpu, sz, a, b);
    if K != CMP && K != TEST {
        cpu.set_reg(op.o[0], sz, r);
    }
    Ok(())
}

/// Register, immediate.
pub fn alu_ri<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = cpu.reg(op.o[0], sz);
    let b = op.imm & size_mask(sz);
    let r = compute::<K>(cpu, sz, a, b);
    if K != CMP && K != TEST {
        cpu.set_reg(op.o[0], sz, r);
    }
    Ok(())
}

fn incdec(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, dec: bool) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let r = if dec {
        a.wrapping_sub(1)
    } else {
        a.wrapping_add(1)
    };
    wr(cpu, bus, op, op.o[0], sz, r & size_mask(sz))?;
    // INC/DEC leave CF alone (SDM Vol. 2A INC "Flags Affected").
    // Only CF must survive; the other five become lazy again below.
    let cf = cpu.flags.cf() as u64;
    cpu.flags.bits = (cpu.flags.bits & !CF) | cf;
    let kind = if dec { LazyOp::Sub } else { LazyOp::Add };
    cpu.flags.set_lazy(kind, sz, a, 1, r, STATUS & !CF);
    Ok(())
}

pub fn inc(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    incdec(cpu, bus, op, false)
}

pub fn dec(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    incdec(cpu, bus, op, true)
}

pub fn neg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let r = 0u64.wrapping_sub(a);
    wr(cpu, bus, op, op.o[0], sz, r & size_mask(sz))?;
    cpu.flags.sub(sz, 0, a, r);
    Ok(())
}

pub fn not(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    wr(cpu, bus, op, op.o[0], sz, !a & size_mask(sz))
}
