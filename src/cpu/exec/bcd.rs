//! Decimal and ASCII adjust: DAA/DAS/AAA/AAS/AAM/AAD (SDM Vol. 2A), legal
//! outside 64-bit mode only (the decoder reports them invalid there).

use crate::cpu::decode::Op;
use crate::cpu::flags::szp;
use crate::cpu::state::rflags::*;
use crate::cpu::{vector, Bus, Cpu, Fault, Res};

pub fn daa(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let old_al = cpu.reg(0, 1);
    let old_cf = cpu.flags.cf();
    let mut al = old_al;
    let mut cf = false;
    let mut af = false;
    if al & 0xF > 9 || cpu.flags.af() {
        al = (al + 6) & 0xFF;
        cf = old_cf || old_al + 6 > 0xFF;
        af = true;
    }
    if old_al > 0x99 || old_cf {
        al = (al + 0x60) & 0xFF;
        cf = true;
    }
    cpu.set_reg(0, 1, al);
    let f = szp(1, al) | if cf { CF } else { 0 } | if af { AF } else { 0 };
    cpu.flags.set_status(STATUS, f);
    Ok(())
}

pub fn das(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let old_al = cpu.reg(0, 1);
    let old_cf = cpu.flags.cf();
    let mut al = old_al;
    let mut cf = false;
    let mut af = false;
    if al & 0xF > 9 || cpu.flags.af() {
        cf = old_cf || al < 6;
        al = al.wrapping_sub(6) & 0xFF;
        af = true;
    }
    if old_al > 0x99 || old_cf {
        al = al.wrapping_sub(0x60) & 0xFF;
        cf = true;
    }
    cpu.set_reg(0, 1, al);
    let f = szp(1, al) | if cf { CF } else { 0 } | if af { AF } else { 0 };
    cpu.flags.set_status(STATUS, f);
    Ok(())
}

fn ascii_adjust(cpu: &mut Cpu, add: bool) {
    let ax = cpu.reg(0, 2);
    let al = ax & 0xFF;
    let adj = al & 0xF > 9 || cpu.flags.af();
    let nax = if adj {
        // 386 and later: AX +/- 6 carries into AH, then AH +/- 1.
        let t = if add {
            ax.wrapping_add(0x106)
        } else {
            ax.wrapping_sub(6).wrapping_sub(0x100)
        } & 0xFFFF;
        t & 0xFF0F
    } else {
        ax & 0xFF0F
    };
    cpu.set_reg(0, 2, nax);
    let f = szp(1, nax) | if adj { CF | AF } else { 0 };
    cpu.flags.set_status(STATUS, f);
}

pub fn aaa(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    ascii_adjust(cpu, true);
    Ok(())
}

pub fn aas(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    ascii_adjust(cpu, false);
    Ok(())
}

pub fn aam(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let base = op.imm & 0xFF;
    if base == 0 {
        return Err(Fault::new(vector::DE));
    }
    let al = cpu.reg(0, 1);
    let r = ((al / base) << 8) | (al % base);
    cpu.set_reg(0, 2, r);
    cpu.flags.set_status(STATUS, szp(1, r));
    Ok(())
}

pub fn aad(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let base = op.imm & 0xFF;
    let ax = cpu.reg(0, 2);
    let al = ((ax & 0xFF) + ((ax >> 8) & 0xFF) * base) & 0xFF;
    cpu.set_reg(0, 2, al);
    cpu.flags.set_status(STATUS, szp(1, al));
    Ok(())
}
