//! String instructions: MOVS/CMPS/STOS/LODS/SCAS/INS/OUTS with REP, REPE and
//! REPNE at every address size (SDM Vol. 2B). A REP instruction runs in chunks:
//! after a chunk with work left it rewinds RIP to itself, so interrupts are
//! taken between iterations and a fault leaves the registers at the
//! iteration that faulted, exactly as the SDM describes.

use crate::cpu::decode::{amask, Op, PFX_REP, PFX_REPNE};
use crate::cpu::flags::size_mask;
use crate::cpu::state::rflags::DF;
use crate::cpu::state::ES;
use crate::cpu::{Bus, Cpu, Res};

const CHUNK: u64 = 4096;

#[inline(always)]
fn step(cpu: &Cpu, sz: u8) -> u64 {
    if cpu.flags.bits & DF != 0 {
        (sz as u64).wrapping_neg()
    } else {
        sz as u64
    }
}

#[inline(always)]
fn adv(cpu: &mut Cpu, r: usize, am: u64, d: u64) {
    let v = cpu.gpr[r].wrapping_add(d) & am;
    cpu.gpr[r] = (cpu.gpr[r] & !am) | v;
    if am == 0xFFFF_FFFF {
        cpu.gpr[r] &= 0xFFFF_FFFF;
    }
}

/// Index registers a REP instruction with a zero count still writes.
const ZX_SI: u8 = 1 << 6;
const ZX_DI: u8 = 1 << 7;

/// Runs `body` once, or under REP up to a chunk of iterations. `cmp` says
/// whether REPE/REPNE termination on ZF applies.
///
/// With a 32-bit address size in 64-bit mode and ECX = 0 the SDM leaves the
/// upper register halves unspecified; the Intel host (measured by `vx86
/// conform host`) writes ECX, and for the storing forms (MOVS, STOS, INS)
/// also the index registers of the destination and source, zero-extending
/// them. `zx` names those index registers as a bit mask of GPR numbers.
#[inline(always)]
fn rep<F>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, cmp: bool, zx: u8, mut body: F) -> Res
where
    F: FnMut(&mut Cpu, &mut dyn Bus) -> Res,
{
    let am = amask(op.asz);
    if op.pfx & (PFX_REP | PFX_REPNE) == 0 {
        return body(cpu, bus);
    }
    let mut n = 0;
    loop {
        if cpu.gpr[1] & am == 0 {
            if n == 0 && am == 0xFFFF_FFFF {
                cpu.gpr[1] &= 0xFFFF_FFFF;
                for r in [6, 7] {
                    if zx & (1 << r) != 0 {
                        cpu.gpr[r] &= 0xFFFF_FFFF;
                    }
                }
            }
            return Ok(());
        }
        body(cpu, bus)?;
        adv(cpu, 1, am, u64::MAX);
        if cmp {
            let zf = cpu.flags.zf();
            if (op.pfx & PFX_REPNE != 0 && zf) || (op.pfx & PFX_REP != 0 && !zf) {
                return Ok(());
            }
        }
        n += 1;
        if n >= CHUNK || cpu.stop_block {
            if cpu.gpr[1] & am != 0 {
                // Not finished: run this instruction again after a boundary.
                cpu.rip = cpu.rip.wrapping_sub(op.len as u64) & cpu.ip_mask;
                cpu.stop_block = true;
            }
            return Ok(());
        }
    }
}

pub fn movs(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let seg = op.seg as usize;
    rep(cpu, bus, op, false, ZX_SI | ZX_DI, |cpu, bus| {
        let v = cpu.read(bus, seg, cpu.gpr[6] & am, sz)?;
        cpu.write(bus, ES, cpu.gpr[7] & am, sz, v)?;
        let d = step(cpu, sz);
        adv(cpu, 6, am, d);
        adv(cpu, 7, am, d);
        Ok(())
    })
}

pub fn stos(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let v = cpu.reg(0, sz);
    rep(cpu, bus, op, false, ZX_DI, |cpu, bus| {
        cpu.write(bus, ES, cpu.gpr[7] & am, sz, v)?;
        let d = step(cpu, sz);
        adv(cpu, 7, am, d);
        Ok(())
    })
}

pub fn lods(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let seg = op.seg as usize;
    rep(cpu, bus, op, false, 0, |cpu, bus| {
        let v = cpu.read(bus, seg, cpu.gpr[6] & am, sz)?;
        cpu.set_reg(0, sz, v);
        let d = step(cpu, sz);
        adv(cpu, 6, am, d);
        Ok(())
    })
}

pub fn cmps(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let seg = op.seg as usize;
    rep(cpu, bus, op, true, 0, |cpu, bus| {
        let a = cpu.read(bus, seg, cpu.gpr[6] & am, sz)?;
        let b = cpu.read(bus, ES, cpu.gpr[7] & am, sz)?;
        cpu.flags.sub(sz, a, b, a.wrapping_sub(b));
        let d = step(cpu, sz);
        adv(cpu, 6, am, d);
        adv(cpu, 7, am, d);
        Ok(())
    })
}

pub fn scas(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let a = cpu.reg(0, sz);
    rep(cpu, bus, op, true, 0, |cpu, bus| {
        let b = cpu.read(bus, ES, cpu.gpr[7] & am, sz)?;
        cpu.flags.sub(sz, a, b, a.wrapping_sub(b));
        let d = step(cpu, sz);
        adv(cpu, 7, am, d);
        Ok(())
    })
}

pub fn ins(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let port = cpu.gpr[2] as u16;
    cpu.check_io(bus, port, sz)?;
    rep(cpu, bus, op, false, ZX_DI, |cpu, bus| {
        let di = cpu.gpr[7] & am;
        let lin = cpu.seg_lin(ES, di, sz, true)?;
        cpu.probe_write(bus, lin, sz)?;
        let v = bus.io_read(port, sz, cpu.icount) as u64 & size_mask(sz);
        cpu.write(bus, ES, di, sz, v)?;
        let d = step(cpu, sz);
        adv(cpu, 7, am, d);
        Ok(())
    })
}

pub fn outs(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let port = cpu.gpr[2] as u16;
    let seg = op.seg as usize;
    cpu.check_io(bus, port, sz)?;
    rep(cpu, bus, op, false, 0, |cpu, bus| {
        let v = cpu.read(bus, seg, cpu.gpr[6] & am, sz)?;
        bus.io_write(port, sz, v as u32, cpu.icount);
        let d = step(cpu, sz);
        adv(cpu, 6, am, d);
        Ok(())
    })
}
