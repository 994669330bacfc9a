//! Data movement: MOV (incl. Sreg, CRn, DRn), MOVZX/MOVSX/MOVSXD, LEA, XCHG,
//! BSWAP, CBW.., CWD.., LAHF/SAHF, XLAT, CMOVcc, SETcc, XADD, CMPXCHG,
//! CMPXCHG8B/16B, LDS/LES/LSS/LFS/LGS (SDM Vol. 2).

use super::{operand_size, rd, wr};
use crate::cpu::decode::{Handler, Op, K_IMM, K_MEM, K_OTHER, K_SEG};
use crate::cpu::flags::size_mask;
use crate::cpu::state::rflags::*;
use crate::cpu::state::{CS, SS};
use crate::cpu::{Bus, Cpu, Fault, Res};
use iced_x86::{Instruction, OpKind};

pub fn pick_mov(ins: &Instruction, op: &mut Op) -> Handler {
    let (o0, o1) = (op.o[0], op.o[1]);
    if o0 == K_OTHER || o1 == K_OTHER {
        let r0 = if ins.op0_kind() == OpKind::Register {
            ins.op0_register()
        } else {
            iced_x86::Register::None
        };
        let r1 = if ins.op1_kind() == OpKind::Register {
            ins.op1_register()
        } else {
            iced_x86::Register::None
        };
        if r0.is_cr() {
            return super::system::mov_to_cr;
        }
        if r1.is_cr() {
            return super::system::mov_from_cr;
        }
        if r0.is_dr() {
            return super::system::mov_to_dr;
        }
        if r1.is_dr() {
            return super::system::mov_from_dr;
        }
        return super::system::op_unimplemented;
    }
    if (K_SEG..K_SEG + 6).contains(&o0) {
        return mov_to_sreg;
    }
    if (K_SEG..K_SEG + 6).contains(&o1) {
        // MOV r/m, Sreg: 16-bit store to memory, zero-extended into a register.
        if o0 == K_MEM {
            op.osz = 2;
        }
        return mov_from_sreg;
    }
    if o0 < 16 && o1 < 16 && op.osz == 8 {
        return mov_rr64;
    }
    if o0 < 16 && o1 < 16 && op.osz == 4 {
        return mov_rr32;
    }
    if o0 < 20 && o1 < 20 {
        return mov_rr;
    }
    if o0 < 20 && o1 == K_IMM {
        return mov_ri;
    }
    if o0 < 16 && o1 == K_MEM {
        match op.osz {
            1 => return mov_rm_s::<1>,
            2 => return mov_rm_s::<2>,
            4 => return mov_rm_s::<4>,
            8 => return mov_rm_s::<8>,
            _ => {}
        }
    }
    if o0 == K_MEM && o1 < 16 {
        match op.osz {
            1 => return mov_mr_s::<1>,
            2 => return mov_mr_s::<2>,
            4 => return mov_mr_s::<4>,
            8 => return mov_mr_s::<8>,
            _ => {}
        }
    }
    if o0 == K_MEM && o1 == K_IMM {
        match op.osz {
            1 => return mov_mi_s::<1>,
            2 => return mov_mi_s::<2>,
            4 => return mov_mi_s::<4>,
            8 => return mov_mi_s::<8>,
            _ => {}
        }
    }
    if o0 < 20 && o1 == K_MEM {
        return mov_rm;
    }
    if o0 == K_MEM && o1 < 20 {
        return mov_mr;
    }
    if o0 == K_MEM && o1 == K_IMM {
        return mov_mi;
    }
    mov
}

/// MOV r, m at a compile-time size (no AH..BH destination).
pub fn mov_rm_s<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    let v = cpu.read(bus, op.seg as usize, ea, SZ)?;
    cpu.gpr_set::<SZ>(op.o[0], v);
    Ok(())
}

/// MOV m, r at a compile-time size (no AH..BH source).
pub fn mov_mr_s<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    let v = cpu.gpr_get::<SZ>(op.o[1]);
    cpu.write(bus, op.seg as usize, ea, SZ, v)
}

/// MOV m, imm at a compile-time size.
pub fn mov_mi_s<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    cpu.write(bus, op.seg as usize, ea, SZ, op.imm & size_mask(SZ))
}

/// MOVZX/MOVSX r, m (no AH..BH destination) with compile-time source and
/// destination sizes.
pub fn movx_rm_s<const SIGNED: bool, const SRC: u8, const DST: u8>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
) -> Res {
    let ea = op.ea(cpu);
    let v = cpu.read(bus, op.seg as usize, ea, SRC)?;
    let v = if SIGNED {
        let sh = 64 - 8 * SRC as u32;
        (((v << sh) as i64) >> sh) as u64
    } else {
        v
    };
    cpu.gpr_set::<DST>(op.o[0], v);
    Ok(())
}

/// The handler for MOVZX/MOVSX/MOVSXD (`op.aux` holds the source size).
pub fn pick_movx(signed: bool, op: &Op) -> Handler {
    if op.o[0] < 16 && op.o[1] == K_MEM {
        let h: Option<Handler> = match (signed, op.aux, op.osz) {
            (false, 1, 2) => Some(movx_rm_s::<false, 1, 2>),
            (false, 1, 4) => Some(movx_rm_s::<false, 1, 4>),
            (false, 1, 8) => Some(movx_rm_s::<false, 1, 8>),
            (false, 2, 4) => Some(movx_rm_s::<false, 2, 4>),
            (false, 2, 8) => Some(movx_rm_s::<false, 2, 8>),
            (true, 1, 2) => Some(movx_rm_s::<true, 1, 2>),
            (true, 1, 4) => Some(movx_rm_s::<true, 1, 4>),
            (true, 1, 8) => Some(movx_rm_s::<true, 1, 8>),
            (true, 2, 4) => Some(movx_rm_s::<true, 2, 4>),
            (true, 2, 8) => Some(movx_rm_s::<true, 2, 8>),
            (true, 4, 8) => Some(movx_rm_s::<true, 4, 8>),
            _ => None,
        };
        if let Some(h) = h {
            return h;
        }
    }
    if signed {
        movsx
    } else {
        movzx
    }
}

pub fn mov(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.osz)?;
    wr(cpu, bus, op, op.o[0], op.osz, v)
}

pub fn mov_mi(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    cpu.write(bus, op.seg as usize, ea, op.osz, op.imm & size_mask(op.osz))
}

pub fn mov_rr(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.reg(op.o[1], op.osz);
    cpu.set_reg(op.o[0], op.osz, v);
    Ok(())
}

/// MOV r64, r64 (no byte registers, no merge): the most frequent form in
/// compiled 64-bit code.
pub fn mov_rr64(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.gpr[(op.o[1] & 15) as usize];
    cpu.gpr[(op.o[0] & 15) as usize] = v;
    Ok(())
}

/// MOV r32, r32: the write zero-extends (SDM Vol. 1 3.4.1.1).
pub fn mov_rr32(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.gpr[(op.o[1] & 15) as usize] & 0xFFFF_FFFF;
    cpu.gpr[(op.o[0] & 15) as usize] = v;
    Ok(())
}

pub fn mov_ri(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.set_reg(op.o[0], op.osz, op.imm & size_mask(op.osz));
    Ok(())
}

pub fn mov_rm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    let v = cpu.read(bus, op.seg as usize, ea, op.osz)?;
    cpu.set_reg(op.o[0], op.osz, v);
    Ok(())
}

pub fn mov_mr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    let v = cpu.reg(op.o[1], op.osz);
    cpu.write(bus, op.seg as usize, ea, op.osz, v)
}

fn mov_to_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let s = (op.o[0] - K_SEG) as usize;
    if s == CS {
        return Err(Fault::ud());
    }
    let v = rd(cpu, bus, op, op.o[1], 2)? as u16;
    cpu.load_seg(bus, s, v)?;
    if s == SS {
        cpu.shadow = true;
    }
    Ok(())
}

fn mov_from_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.seg[((op.o[1] - K_SEG) as usize).min(5)].selector as u64;
    let sz = if op.o[0] < 20 { op.osz.max(2) } else { 2 };
    let sz = if sz == 2 && op.o[0] < 20 { 2 } else { sz };
    wr(cpu, bus, op, op.o[0], sz, v)
}

pub fn movzx(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.aux)?;
    cpu.set_reg(op.o[0], op.osz, v);
    Ok(())
}

pub fn movsx(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.aux)?;
    let sh = 64 - 8 * op.aux as u32;
    let v = (((v << sh) as i64) >> sh) as u64;
    cpu.set_reg(op.o[0], op.osz, v & size_mask(op.osz));
    Ok(())
}

pub fn lea(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    cpu.set_reg(op.o[0], op.osz, ea & size_mask(op.osz));
    Ok(())
}

pub fn xchg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let b = rd(cpu, bus, op, op.o[1], sz)?;
    // Memory side first so a fault leaves registers untouched.
    if op.o[1] == K_MEM {
        wr(cpu, bus, op, op.o[1], sz, a)?;
        wr(cpu, bus, op, op.o[0], sz, b)
    } else {
        wr(cpu, bus, op, op.o[0], sz, b)?;
        wr(cpu, bus, op, op.o[1], sz, a)
    }
}

pub fn bswap(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.reg(op.o[0], op.osz);
    let r = match op.osz {
        8 => v.swap_bytes(),
        4 => (v as u32).swap_bytes() as u64,
        // BSWAP r16 is undefined; Intel CPUs write zero to the low word.
        _ => 0,
    };
    cpu.set_reg(op.o[0], op.osz, r);
    Ok(())
}

/// CBW/CWDE/CDQE: sign-extend the lower half of the accumulator.
pub fn cbw(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let half = op.osz / 2;
    let v = cpu.reg(0, half);
    let sh = 64 - 8 * half as u32;
    let v = (((v << sh) as i64) >> sh) as u64;
    cpu.set_reg(0, op.osz, v & size_mask(op.osz));
    Ok(())
}

/// CWD/CDQ/CQO: rDX = sign of rAX.
pub fn cwd(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.reg(0, op.osz);
    let neg = (v >> (op.osz as u32 * 8 - 1)) & 1 != 0;
    cpu.set_reg(2, op.osz, if neg { size_mask(op.osz) } else { 0 });
    Ok(())
}

pub fn lahf(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let f = cpu.flags.get() & 0xD5 | FIXED1;
    cpu.set_reg(16, 1, f);
    Ok(())
}

pub fn sahf(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let ah = cpu.reg(16, 1);
    cpu.flags.set_status(SF | ZF | AF | PF | CF, ah);
    Ok(())
}

pub fn xlat(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = cpu.gpr[3].wrapping_add(cpu.gpr[0] & 0xFF) & crate::cpu::decode::amask(op.asz);
    let v = cpu.read(bus, op.seg as usize, ea, 1)?;
    cpu.set_reg(0, 1, v);
    Ok(())
}

pub fn cmov(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = rd(cpu, bus, op, op.o[1], op.osz)?;
    if cpu.flags.cond(op.aux) {
        cpu.set_reg(op.o[0], op.osz, v);
    } else if op.osz == 4 {
        // A 32-bit destination is zero-extended even when not moved.
        let cur = cpu.reg(op.o[0], 4);
        cpu.set_reg(op.o[0], 4, cur);
    }
    Ok(())
}

pub fn setcc(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = cpu.flags.cond(op.aux) as u64;
    wr(cpu, bus, op, op.o[0], 1, v)
}

pub fn xadd(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let b = cpu.reg(op.o[1], sz);
    let r = a.wrapping_add(b);
    if op.o[0] == K_MEM {
        wr(cpu, bus, op, op.o[0], sz, r & size_mask(sz))?;
        cpu.set_reg(op.o[1], sz, a);
    } else {
        // Source first: with the same register twice the sum wins.
        cpu.set_reg(op.o[1], sz, a);
        cpu.set_reg(op.o[0], sz, r & size_mask(sz));
    }
    cpu.flags.add(sz, a, b, r);
    Ok(())
}

pub fn cmpxchg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let dst = rd(cpu, bus, op, op.o[0], sz)?;
    let acc = cpu.reg(0, sz);
    let r = acc.wrapping_sub(dst);
    if acc == dst {
        let src = cpu.reg(op.o[1], sz);
        wr(cpu, bus, op, op.o[0], sz, src)?;
    } else {
        // A memory destination is written back with its own value (a locked
        // RMW cycle); a register destination is left untouched.
        if op.o[0] == K_MEM {
            wr(cpu, bus, op, op.o[0], sz, dst)?;
        }
        cpu.set_reg(0, sz, dst);
    }
    cpu.flags.sub(sz, acc, dst, r);
    Ok(())
}

pub fn cmpxchg8b(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    let s = op.seg as usize;
    let v = cpu.read(bus, s, ea, 8)?;
    let cmp = (cpu.gpr[0] & 0xFFFF_FFFF) | (cpu.gpr[2] << 32);
    if v == cmp {
        let new = (cpu.gpr[3] & 0xFFFF_FFFF) | (cpu.gpr[1] << 32);
        cpu.write(bus, s, ea, 8, new)?;
        cpu.flags.set_status(ZF, ZF);
    } else {
        cpu.write(bus, s, ea, 8, v)?;
        cpu.set_reg(0, 4, v & 0xFFFF_FFFF);
        cpu.set_reg(2, 4, v >> 32);
        cpu.flags.set_status(ZF, 0);
    }
    Ok(())
}

pub fn cmpxchg16b(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let ea = op.ea(cpu);
    if ea & 15 != 0 {
        return Err(Fault::gp(0));
    }
    let s = op.seg as usize;
    let lo = cpu.read(bus, s, ea, 8)?;
    let hi = cpu.read(bus, s, ea + 8, 8)?;
    if lo == cpu.gpr[0] && hi == cpu.gpr[2] {
        cpu.seg_lin(s, ea, 16, true)?;
        let (b, c) = (cpu.gpr[3], cpu.gpr[1]);
        cpu.write(bus, s, ea, 8, b)?;
        cpu.write(bus, s, ea + 8, 8, c)?;
        cpu.flags.set_status(ZF, ZF);
    } else {
        cpu.write(bus, s, ea, 8, lo)?;
        cpu.write(bus, s, ea + 8, 8, hi)?;
        cpu.gpr[0] = lo;
        cpu.gpr[2] = hi;
        cpu.flags.set_status(ZF, 0);
    }
    Ok(())
}

/// SALC (undocumented D6, outside 64-bit mode): AL = CF ? 0xFF : 0.
pub fn salc(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let v = if cpu.flags.cf() { 0xFF } else { 0 };
    cpu.set_reg(0, 1, v);
    Ok(())
}

pub fn nop(_cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    Ok(())
}

/// LDS/LES/LSS/LFS/LGS: load a far pointer (offset, then selector).
pub fn lxs(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let ea = op.ea(cpu);
    let s = op.seg as usize;
    let off = cpu.read(bus, s, ea, sz)?;
    let sel = cpu.read(
        bus,
        s,
        ea.wrapping_add(sz as u64) & crate::cpu::decode::amask(op.asz),
        2,
    )? as u16;
    let target = match op.ins.mnemonic() {
        iced_x86::Mnemonic::Les => 0,
        iced_x86::Mnemonic::Lss => 2,
        iced_x86::Mnemonic::Lds => 3,
        iced_x86::Mnemonic::Lfs => 4,
        _ => 5,
    };
    cpu.load_seg(bus, target, sel)?;
    cpu.set_reg(op.o[0], sz, off);
    Ok(())
}

#[allow(dead_code)]
fn _sizes(ins: &Instruction) -> u8 {
    operand_size(ins, 0)
}
