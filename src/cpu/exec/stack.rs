//! PUSH/POP (incl. segment registers), PUSHA/POPA, PUSHF/POPF with the IOPL
//! and VM rules, ENTER/LEAVE (SDM Vol. 2B).

use super::{rd, wr};
use crate::cpu::decode::{Handler, Op, K_MEM, K_SEG};
use crate::cpu::flags::size_mask;
use crate::cpu::state::rflags::*;
use crate::cpu::state::{cr4, SS};
use crate::cpu::{Bus, Cpu, Fault, Res};
use iced_x86::Instruction;

impl Cpu {
    /// Pushes `size` bytes on SS:rSP (SDM Vol. 1 6.2).
    #[inline]
    pub fn push(&mut self, bus: &mut dyn Bus, size: u8, v: u64) -> Res {
        let m = self.sp_mask;
        let sp = self.gpr[4].wrapping_sub(size as u64) & m;
        self.write(bus, SS, sp, size, v)?;
        self.gpr[4] = (self.gpr[4] & !m) | sp;
        Ok(())
    }

    #[inline]
    pub fn pop(&mut self, bus: &mut dyn Bus, size: u8) -> Res<u64> {
        let m = self.sp_mask;
        let sp = self.gpr[4] & m;
        let v = self.read(bus, SS, sp, size)?;
        self.gpr[4] = (self.gpr[4] & !m) | (sp.wrapping_add(size as u64) & m);
        Ok(v)
    }

    /// [`Cpu::push`] at a compile-time size.
    #[inline(always)]
    pub fn push_s<const SZ: u8>(&mut self, bus: &mut dyn Bus, v: u64) -> Res {
        let m = self.sp_mask;
        let sp = self.gpr[4].wrapping_sub(SZ as u64) & m;
        self.write(bus, SS, sp, SZ, v)?;
        self.gpr[4] = (self.gpr[4] & !m) | sp;
        Ok(())
    }

    /// [`Cpu::pop`] at a compile-time size.
    #[inline(always)]
    pub fn pop_s<const SZ: u8>(&mut self, bus: &mut dyn Bus) -> Res<u64> {
        let m = self.sp_mask;
        let sp = self.gpr[4] & m;
        let v = self.read(bus, SS, sp, SZ)?;
        self.gpr[4] = (self.gpr[4] & !m) | (sp.wrapping_add(SZ as u64) & m);
        Ok(v)
    }

    /// Reads the stack `off` bytes above rSP without popping.
    pub fn peek(&mut self, bus: &mut dyn Bus, off: u64, size: u8) -> Res<u64> {
        let sp = self.gpr[4].wrapping_add(off) & self.sp_mask;
        self.read(bus, SS, sp, size)
    }
}

/// Stack operand size of PUSH/POP: from iced's stack-pointer increment.
fn stack_size(ins: &Instruction) -> u8 {
    ins.stack_pointer_increment().unsigned_abs().clamp(2, 8) as u8
}

pub fn pick_push(ins: &Instruction, op: &mut Op) -> Handler {
    op.osz = stack_size(ins);
    if op.o[0] < 16 {
        match op.osz {
            2 => return push_rs::<2>,
            4 => return push_rs::<4>,
            8 => return push_rs::<8>,
            _ => {}
        }
    }
    if op.o[0] < 20 {
        push_r
    } else if (K_SEG..K_SEG + 6).contains(&op.o[0]) {
        push_sreg
    } else {
        push
    }
}

pub fn pick_pop(ins: &Instruction, op: &mut Op) -> Handler {
    op.osz = stack_size(ins);
    if op.o[0] < 16 {
        match op.osz {
            2 => return pop_rs::<2>,
            4 => return pop_rs::<4>,
            8 => return pop_rs::<8>,
            _ => {}
        }
    }
    if op.o[0] < 20 {
        pop_r
    } else if (K_SEG..K_SEG + 6).contains(&op.o[0]) {
        pop_sreg
    } else {
        pop_m
    }
}

/// PUSH r (a general register, not AH..BH) at a compile-time stack size.
pub fn push_rs<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.gpr_get::<SZ>(op.o[0]);
    cpu.push_s::<SZ>(bus, v)
}

/// POP r at a compile-time stack size; POP rSP loads the popped value.
pub fn pop_rs<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.pop_s::<SZ>(bus)?;
    cpu.gpr_set::<SZ>(op.o[0], v);
    Ok(())
}

fn push_r(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.reg(op.o[0], op.osz);
    cpu.push(bus, op.osz, v)
}

fn push(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[0], op.osz)?;
    cpu.push(bus, op.osz, v)
}

fn push_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.seg[((op.o[0] - K_SEG) as usize).min(5)].selector as u64;
    if op.osz == 2 {
        return cpu.push(bus, 2, v);
    }
    // A 32/64-bit push of a segment register writes only the low 16 bits on
    // current Intel processors (SDM Vol. 2B PUSH), the rest of the slot is kept.
    let m = cpu.sp_mask;
    let sp = cpu.gpr[4].wrapping_sub(op.osz as u64) & m;
    cpu.seg_lin(SS, sp, op.osz, true)?;
    cpu.write(bus, SS, sp, 2, v)?;
    cpu.gpr[4] = (cpu.gpr[4] & !m) | sp;
    Ok(())
}

fn pop_r(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.pop(bus, op.osz)?;
    cpu.set_reg(op.o[0], op.osz, v);
    Ok(())
}

fn pop_m(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let old = cpu.gpr[4];
    let v = cpu.pop(bus, op.osz)?;
    // The destination address is computed after rSP is incremented.
    if let Err(e) = wr(cpu, bus, op, K_MEM, op.osz, v) {
        cpu.gpr[4] = old;
        return Err(e);
    }
    Ok(())
}

/// POP Sreg. The stack pointer moves by the stack-address size of the stack
/// the value was popped from: POP SS that loads a 32-bit stack segment while
/// on a 16-bit one adds the operand size to SP, not ESP, and the reverse
/// (SDM Vol. 2B POP: "the stack-address size ... of the current stack when
/// the pop is performed"; Bochs does the same). The selector is read first
/// and rSP moves only after the load succeeds, so a fault leaves both intact.
fn pop_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let s = ((op.o[0] - K_SEG) as usize).min(5);
    let m = cpu.sp_mask;
    let sp = cpu.gpr[4] & m;
    let v = cpu.read(bus, SS, sp, op.osz)? as u16;
    cpu.load_seg(bus, s, v)?;
    cpu.gpr[4] = (cpu.gpr[4] & !m) | (sp.wrapping_add(op.osz as u64) & m);
    if s == SS {
        cpu.shadow = true;
    }
    Ok(())
}

pub fn pusha(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz.clamp(2, 4);
    let m = cpu.sp_mask;
    let top = cpu.gpr[4].wrapping_sub(8 * sz as u64) & m;
    cpu.seg_lin(SS, top, sz, true)?;
    let sp0 = cpu.gpr[4];
    for r in 0..8u8 {
        let v = if r == 4 { sp0 } else { cpu.gpr[r as usize] };
        cpu.push(bus, sz, v & size_mask(sz))?;
    }
    Ok(())
}

pub fn popa(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz.clamp(2, 4);
    let mut vals = [0u64; 8];
    for (i, v) in vals.iter_mut().enumerate() {
        *v = cpu.peek(bus, (i as u64) * sz as u64, sz)?;
    }
    for (i, r) in (0..8u8).rev().enumerate() {
        if r != 4 {
            cpu.set_reg(r, sz, vals[i]);
        }
    }
    let m = cpu.sp_mask;
    cpu.gpr[4] = (cpu.gpr[4] & !m) | (cpu.gpr[4].wrapping_add(8 * sz as u64) & m);
    Ok(())
}

pub fn pushf(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let mut f = cpu.flags.get();
    if f & VM != 0 && cpu.iopl() < 3 {
        if cpu.cr4 & cr4::VME != 0 && op.osz == 2 {
            // VME: IF image comes from VIF (SDM Vol. 3A 20.4).
            f = (f & !IF) | if f & VIF != 0 { IF } else { 0 } | IOPL;
        } else {
            return Err(Fault::gp(0));
        }
    }
    // The pushed image has VM and RF clear.
    cpu.push(bus, op.osz, f & !(VM | RF) & size_mask(op.osz))
}

pub fn popf(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let cur = cpu.flags.get();
    let vm = cur & VM != 0;
    if vm && cpu.iopl() < 3 {
        if cpu.cr4 & cr4::VME != 0 && sz == 2 {
            let v = cpu.peek(bus, 0, 2)?;
            if (v & TF != 0) || (v & IF != 0 && cur & VIP != 0) {
                return Err(Fault::gp(0));
            }
            cpu.pop(bus, 2)?;
            let keep = IOPL | IF;
            let mut nf = (cur & !0xFFFF) | (cur & keep) | (v & 0xFFFF & !keep);
            nf = (nf & !VIF) | if v & IF != 0 { VIF } else { 0 };
            cpu.flags.set(nf);
            return Ok(());
        }
        return Err(Fault::gp(0));
    }
    let v = cpu.pop(bus, sz)?;
    let mut changeable = CF | PF | AF | ZF | SF | TF | DF | OF | NT;
    if sz >= 4 {
        changeable |= AC | ID;
    }
    if cpu.cpl == 0 && !vm {
        changeable |= IOPL;
    }
    if cpu.cpl <= cpu.iopl() || vm {
        changeable |= IF;
    }
    let mask = changeable & size_mask(sz);
    let nf = (cur & !mask) | (v & mask);
    cpu.flags.set(nf & !RF);
    Ok(())
}

pub fn enter(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let alloc = op.imm & 0xFFFF;
    let level = op.imm2 & 0x1F;
    let m = cpu.sp_mask;
    let bp_mask = if cpu.long64 { u64::MAX } else { m };
    let old = (cpu.gpr[4], cpu.gpr[5]);
    let res = (|| -> Res {
        let rbp = cpu.gpr[5];
        cpu.push(bus, sz, rbp & size_mask(sz))?;
        let frame = cpu.gpr[4] & m;
        if level > 0 {
            let mut bp = rbp;
            for _ in 1..level {
                bp = bp.wrapping_sub(sz as u64) & bp_mask;
                let v = cpu.read(bus, SS, bp & m, sz)?;
                cpu.push(bus, sz, v)?;
            }
            cpu.push(bus, sz, frame)?;
        }
        let nsp = cpu.gpr[4].wrapping_sub(alloc) & m;
        // The final stack pointer must be writable (SDM: #SS if it would fault).
        cpu.seg_lin(SS, nsp, 1, true)?;
        cpu.set_reg(5, sz.min(if cpu.long64 { 8 } else { 4 }), frame);
        if sz == 2 {
            cpu.gpr[5] = (cpu.gpr[5] & !0xFFFF) | (frame & 0xFFFF);
        }
        cpu.gpr[4] = (cpu.gpr[4] & !m) | nsp;
        Ok(())
    })();
    if res.is_err() {
        cpu.gpr[4] = old.0;
        cpu.gpr[5] = old.1;
    }
    res
}

pub fn leave(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let m = cpu.sp_mask;
    let bp = cpu.gpr[5] & m;
    let v = cpu.read(bus, SS, bp, op.osz)?;
    cpu.gpr[4] = (cpu.gpr[4] & !m) | (bp.wrapping_add(op.osz as u64) & m);
    cpu.set_reg(5, op.osz, v);
    Ok(())
}
