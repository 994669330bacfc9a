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
fn rep<F>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, cmp: bool, zx: u8, body: F) -> Res
where
    F: FnMut(&mut Cpu, &mut dyn Bus) -> Res,
{
    rep_bulk(cpu, bus, op, cmp, zx, |_, _, _| Ok(0), body)
}

/// [`rep`] with a bulk step: `bulk(cpu, bus, n)` may complete up to `n`
/// whole iterations at once (registers advanced, RCX not) and returns how
/// many it did; 0 means "take one ordinary iteration".
#[inline(always)]
fn rep_bulk<B, F>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
    cmp: bool,
    zx: u8,
    mut bulk: B,
    mut body: F,
) -> Res
where
    B: FnMut(&mut Cpu, &mut dyn Bus, u64) -> Res<u64>,
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
        if !cmp {
            let left = (cpu.gpr[1] & am).min(CHUNK - n);
            let done = bulk(cpu, bus, left)?;
            if done > 0 {
                adv(cpu, 1, am, done.wrapping_neg());
                n += done;
                if n >= CHUNK || cpu.stop_request {
                    if cpu.gpr[1] & am != 0 {
                        cpu.rip = cpu.rip.wrapping_sub(op.len as u64) & cpu.ip_mask;
                        cpu.stop_block = true;
                    }
                    return Ok(());
                }
                continue;
            }
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
        // Split only where the split is a function of the guest's state: a
        // full chunk, or a device that needs the machine now. A write that
        // invalidated translated code (`stop_block` alone) ends the block
        // after this instruction but does not split it: whether a page still
        // holds translated code depends on the block cache's history, and a
        // split counts one more instruction, so the virtual clock (and a
        // snapshot restored with empty caches) would drift.
        if n >= CHUNK || cpu.stop_request {
            if cpu.gpr[1] & am != 0 {
                // Not finished: run this instruction again after a boundary.
                cpu.rip = cpu.rip.wrapping_sub(op.len as u64) & cpu.ip_mask;
                cpu.stop_block = true;
            }
            return Ok(());
        }
    }
}

/// How many whole elements of `sz` bytes, starting at offset `off` of an
/// address space masked by `am`, fit before the end of the 4 KiB page of
/// `lin` and before the offset wraps: the extent of one bulk step. An element
/// that would straddle the wrap (a word at offset 0xFFFF) is not whole: the
/// ordinary iteration takes it, and faults on it if it crosses the limit.
#[inline(always)]
fn run_in_page(lin: u64, off: u64, sz: u64, am: u64, n: u64) -> u64 {
    let page_left = (0x1000 - (lin & 0xFFF)) / sz;
    // Bytes from `off` to the top of the address space, minus one (no overflow
    // for a 64-bit space).
    let room = am - off;
    let wrap_left = room / sz + (room % sz == sz - 1) as u64;
    n.min(page_left).min(wrap_left)
}

/// Bulk REP STOS (DF = 0): fills the rest of the destination page at once.
#[inline(always)]
fn stos_bulk(cpu: &mut Cpu, bus: &mut dyn Bus, sz: u8, am: u64, v: u64, n: u64) -> Res<u64> {
    if cpu.flags.bits & DF != 0 {
        return Ok(0);
    }
    let di = cpu.gpr[7] & am;
    let lin = cpu.seg_lin(ES, di, sz, true)?;
    let k = run_in_page(lin, di, sz as u64, am, n);
    if k < 2 {
        return Ok(0);
    }
    // The last element must pass the segment checks too (the range between
    // is then valid for normal and expand-down segments alike). If it does not,
    // the ordinary iterations run up to the element that faults, so the fault
    // is raised with the registers of that iteration (SDM Vol. 2B REP).
    if cpu.seg_lin(ES, di + (k - 1) * sz as u64, sz, true).is_err() {
        return Ok(0);
    }
    let Some(p) = cpu.host_write_ptr(bus, lin)? else {
        return Ok(0);
    };
    // SAFETY: `p` is the host address of `lin` in a writable RAM page without
    // cached code (a fast write tag), and `run_in_page` keeps the k elements
    // of `sz` bytes inside that page.
    unsafe {
        match sz {
            1 => std::ptr::write_bytes(p, v as u8, k as usize),
            2 => (0..k as usize).for_each(|i| (p as *mut u16).add(i).write_unaligned(v as u16)),
            4 => (0..k as usize).for_each(|i| (p as *mut u32).add(i).write_unaligned(v as u32)),
            _ => (0..k as usize).for_each(|i| (p as *mut u64).add(i).write_unaligned(v)),
        }
    }
    adv(cpu, 7, am, k * sz as u64);
    Ok(k)
}

/// Bulk REP MOVS (DF = 0): copies up to the end of the nearer page end.
#[inline(always)]
fn movs_bulk(cpu: &mut Cpu, bus: &mut dyn Bus, seg: usize, sz: u8, am: u64, n: u64) -> Res<u64> {
    if cpu.flags.bits & DF != 0 {
        return Ok(0);
    }
    let (si, di) = (cpu.gpr[6] & am, cpu.gpr[7] & am);
    let src = cpu.seg_lin(seg, si, sz, false)?;
    let dst = cpu.seg_lin(ES, di, sz, true)?;
    let k = run_in_page(
        dst,
        di,
        sz as u64,
        am,
        run_in_page(src, si, sz as u64, am, n),
    );
    if k < 2 {
        return Ok(0);
    }
    // As in `stos_bulk`: a limit violation inside the run is left to the
    // ordinary iterations, which fault at the right element.
    let last = (k - 1) * sz as u64;
    if cpu.seg_lin(seg, si + last, sz, false).is_err()
        || cpu.seg_lin(ES, di + last, sz, true).is_err()
    {
        return Ok(0);
    }
    let Some(s) = cpu.host_read_ptr(bus, src)? else {
        return Ok(0);
    };
    let Some(d) = cpu.host_write_ptr(bus, dst)? else {
        return Ok(0);
    };
    let bytes = (k * sz as u64) as usize;
    // SAFETY: `s` and `d` are host addresses inside a readable RAM/ROM page
    // and a writable code-free RAM page (fast TLB tags); `run_in_page` keeps
    // `bytes` inside both pages. Overlapping ranges are copied element by
    // element in order, exactly as the iterations would.
    unsafe {
        let disjoint = (d as usize) >= (s as usize) + bytes || (s as usize) >= (d as usize) + bytes;
        if disjoint {
            std::ptr::copy_nonoverlapping(s, d, bytes);
        } else {
            let z = sz as usize;
            for i in 0..k as usize {
                match z {
                    1 => *d.add(i) = *s.add(i),
                    2 => (d as *mut u16)
                        .add(i)
                        .write_unaligned((s as *const u16).add(i).read_unaligned()),
                    4 => (d as *mut u32)
                        .add(i)
                        .write_unaligned((s as *const u32).add(i).read_unaligned()),
                    _ => (d as *mut u64)
                        .add(i)
                        .write_unaligned((s as *const u64).add(i).read_unaligned()),
                }
            }
        }
    }
    adv(cpu, 6, am, k * sz as u64);
    adv(cpu, 7, am, k * sz as u64);
    Ok(k)
}

pub fn movs(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let am = amask(op.asz);
    let seg = op.seg as usize;
    let bulk = |cpu: &mut Cpu, bus: &mut dyn Bus, n| movs_bulk(cpu, bus, seg, sz, am, n);
    rep_bulk(cpu, bus, op, false, ZX_SI | ZX_DI, bulk, |cpu, bus| {
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
    let bulk = |cpu: &mut Cpu, bus: &mut dyn Bus, n| stos_bulk(cpu, bus, sz, am, v, n);
    rep_bulk(cpu, bus, op, false, ZX_DI, bulk, |cpu, bus| {
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
        cpu.intr_recheck = true;
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
        cpu.intr_recheck = true;
        if bus.needs_attention() {
            cpu.stop_request = true;
            cpu.stop_block = true;
        }
        let d = step(cpu, sz);
        adv(cpu, 6, am, d);
        Ok(())
    })
}
