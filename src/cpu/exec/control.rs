//! Control transfer: JMP/Jcc/CALL/RET near and far (incl. call gates and
//! task switches), LOOP/JCXZ, INT n/INT3/INTO/INT1, IRET, BOUND
//! (SDM Vol. 2A/2B "Operation" sections; Vol. 3A 5.8 for privilege checks).

use super::rd;
use crate::cpu::decode::{Handler, Op, K_IMM, K_MEM};
use crate::cpu::exception::Source;
use crate::cpu::flags::size_mask;
use crate::cpu::seg::Desc;
use crate::cpu::state::rflags::*;
use crate::cpu::state::*;
use crate::cpu::{vector, Bus, Cpu, Fault, Res};
use iced_x86::Instruction;

/// Signals "deliver this event now" from a handler: the run loop rewinds RIP
/// for faults, so software interrupts deliver directly from the handler.
fn soft_int(cpu: &mut Cpu, bus: &mut dyn Bus, vec: u8, src: Source) -> Res {
    match cpu.deliver_event(bus, vec, src) {
        Ok(()) => Ok(()),
        Err(_) => {
            // Triple fault while delivering: surface as a shutdown.
            cpu.stop_request = true;
            cpu.triple_fault = true;
            Ok(())
        }
    }
}

pub fn pick_jcc(op: &Op) -> Handler {
    const TABLE: [Handler; 16] = [
        jcc::<0>, jcc::<1>, jcc::<2>, jcc::<3>, jcc::<4>, jcc::<5>, jcc::<6>, jcc::<7>, jcc::<8>,
        jcc::<9>, jcc::<10>, jcc::<11>, jcc::<12>, jcc::<13>, jcc::<14>, jcc::<15>,
    ];
    TABLE[(op.aux & 15) as usize]
}

pub fn pick_jmp(ins: &Instruction, op: &mut Op) -> Handler {
    let _ = ins;
    if op.o[0] == K_IMM {
        if op.imm2 != 0
            || matches!(
                ins.op0_kind(),
                iced_x86::OpKind::FarBranch16 | iced_x86::OpKind::FarBranch32
            )
        {
            return jmp_far_imm;
        }
        return jmp_rel;
    }
    if op.o[0] == K_MEM && ins.memory_size().is_far_pointer_mem() {
        op.osz = far_offset_size(ins);
        return jmp_far_mem;
    }
    jmp_rm
}

pub fn pick_call(ins: &Instruction, op: &mut Op) -> Handler {
    if op.o[0] == K_IMM {
        if matches!(
            ins.op0_kind(),
            iced_x86::OpKind::FarBranch16 | iced_x86::OpKind::FarBranch32
        ) {
            return call_far_imm;
        }
        return match op.osz {
            2 => call_rel_s::<2>,
            4 => call_rel_s::<4>,
            8 => call_rel_s::<8>,
            _ => call_rel,
        };
    }
    if op.o[0] == K_MEM && ins.memory_size().is_far_pointer_mem() {
        op.osz = far_offset_size(ins);
        return call_far_mem;
    }
    call_rm
}

/// Offset size of an m16:16 / m16:32 / m16:64 far pointer.
fn far_offset_size(ins: &Instruction) -> u8 {
    match ins.memory_size() {
        iced_x86::MemorySize::SegPtr16 => 2,
        iced_x86::MemorySize::SegPtr32 => 4,
        _ => 8,
    }
}

trait FarPtr {
    fn is_far_pointer_mem(&self) -> bool;
}
impl FarPtr for iced_x86::MemorySize {
    fn is_far_pointer_mem(&self) -> bool {
        matches!(
            self,
            iced_x86::MemorySize::SegPtr16
                | iced_x86::MemorySize::SegPtr32
                | iced_x86::MemorySize::SegPtr64
        )
    }
}

/// Whether a near branch to `target` passes the checks of [`branch`].
#[inline(always)]
pub(crate) fn branch_ok(cpu: &Cpu, target: u64) -> bool {
    if cpu.long64 {
        crate::cpu::mmu::canonical(target)
    } else {
        target <= cpu.seg[CS].limit as u64
    }
}

#[inline(always)]
fn branch(cpu: &mut Cpu, target: u64) -> Res {
    // In 64-bit mode a non-canonical target faults at the branch (#GP).
    if cpu.long64 {
        if !crate::cpu::mmu::canonical(target) {
            return Err(Fault::gp(0));
        }
    } else if target > cpu.seg[CS].limit as u64 {
        return Err(Fault::gp(0));
    }
    cpu.rip = target;
    Ok(())
}

pub fn jmp_rel(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let t = cpu.rip.wrapping_add(op.imm) & size_mask(op.osz);
    branch(cpu, t)
}

pub fn jmp_rm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let t = rd(cpu, bus, op, op.o[0], op.osz)?;
    branch(cpu, t)
}

/// Jcc with the condition code as a constant, so `Flags::cond` folds to the
/// one flag test the condition needs.
pub fn jcc<const CC: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    if cpu.flags.cond(CC) {
        let t = cpu.rip.wrapping_add(op.imm) & size_mask(op.osz);
        return branch(cpu, t);
    }
    Ok(())
}

pub fn call_rel(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let t = cpu.rip.wrapping_add(op.imm) & size_mask(op.osz);
    let ret = cpu.rip;
    if !cpu.long64 && t > cpu.seg[CS].limit as u64 {
        return Err(Fault::gp(0));
    }
    cpu.push(bus, op.osz, ret)?;
    branch(cpu, t)
}

/// CALL rel at a compile-time operand size.
pub fn call_rel_s<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    // The same checks in the same order as `call_rel`.
    let t = cpu.rip.wrapping_add(op.imm) & size_mask(SZ);
    if !cpu.long64 && t > cpu.seg[CS].limit as u64 {
        return Err(Fault::gp(0));
    }
    cpu.push_s::<SZ>(bus, cpu.rip)?;
    branch(cpu, t)
}

pub fn pick_ret(op: &Op) -> Handler {
    match op.osz {
        2 => ret_near_s::<2>,
        4 => ret_near_s::<4>,
        8 => ret_near_s::<8>,
        _ => ret_near,
    }
}

/// RET / RET imm16 at a compile-time operand size: one stack read; a target
/// outside CS (or non-canonical) faults with rSP unchanged.
pub fn ret_near_s<const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let m = cpu.sp_mask;
    let sp = cpu.gpr[4] & m;
    let t = cpu.read(bus, SS, sp, SZ)?;
    if !branch_ok(cpu, t) {
        return Err(Fault::gp(0));
    }
    let mut nsp = sp.wrapping_add(SZ as u64);
    if op.o[0] == K_IMM {
        nsp = nsp.wrapping_add(op.imm & 0xFFFF);
    }
    cpu.gpr[4] = (cpu.gpr[4] & !m) | (nsp & m);
    cpu.rip = t;
    Ok(())
}

pub fn call_rm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let t = rd(cpu, bus, op, op.o[0], op.osz)?;
    let ret = cpu.rip;
    if cpu.long64 && !crate::cpu::mmu::canonical(t) {
        return Err(Fault::gp(0));
    }
    if !cpu.long64 && t > cpu.seg[CS].limit as u64 {
        return Err(Fault::gp(0));
    }
    let old_sp = cpu.gpr[4];
    cpu.push(bus, op.osz, ret)?;
    branch(cpu, t).inspect_err(|_| cpu.gpr[4] = old_sp)
}

pub fn ret_near(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let t = cpu.peek(bus, 0, op.osz)?;
    if cpu.long64 && !crate::cpu::mmu::canonical(t) {
        return Err(Fault::gp(0));
    }
    if !cpu.long64 && t > cpu.seg[CS].limit as u64 {
        return Err(Fault::gp(0));
    }
    cpu.pop(bus, op.osz)?;
    if op.o[0] == K_IMM {
        let m = cpu.sp_mask;
        cpu.gpr[4] = (cpu.gpr[4] & !m) | (cpu.gpr[4].wrapping_add(op.imm & 0xFFFF) & m);
    }
    cpu.rip = t;
    Ok(())
}

pub fn loop_(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let am = crate::cpu::decode::amask(op.asz);
    let c = cpu.gpr[1].wrapping_sub(1) & am;
    cpu.gpr[1] = (cpu.gpr[1] & !am) | c;
    let take = c != 0
        && match op.ins.mnemonic() {
            iced_x86::Mnemonic::Loope => cpu.flags.zf(),
            iced_x86::Mnemonic::Loopne => !cpu.flags.zf(),
            _ => true,
        };
    if take {
        let t = cpu.rip.wrapping_add(op.imm) & size_mask(op.osz);
        return branch(cpu, t);
    }
    Ok(())
}

pub fn jcxz(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let am = crate::cpu::decode::amask(op.asz);
    if cpu.gpr[1] & am == 0 {
        let t = cpu.rip.wrapping_add(op.imm) & size_mask(op.osz);
        return branch(cpu, t);
    }
    Ok(())
}

// ---- software interrupts ----

pub fn int_n(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let v = op.imm as u8;
    if cpu.flags.bits & VM != 0 && cpu.iopl() < 3 {
        return Err(Fault::gp(0));
    }
    soft_int(cpu, bus, v, Source::Soft)
}

pub fn int3(cpu: &mut Cpu, bus: &mut dyn Bus, _op: &Op) -> Res {
    soft_int(cpu, bus, vector::BP, Source::Soft)
}

pub fn int1(cpu: &mut Cpu, bus: &mut dyn Bus, _op: &Op) -> Res {
    soft_int(cpu, bus, vector::DB, Source::Icebp)
}

pub fn into(cpu: &mut Cpu, bus: &mut dyn Bus, _op: &Op) -> Res {
    if cpu.flags.of() {
        return soft_int(cpu, bus, vector::OF, Source::Soft);
    }
    Ok(())
}

pub fn bound(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let idx = cpu.reg(op.o[0], sz);
    let ea = op.ea(cpu);
    let lo = cpu.read(bus, op.seg as usize, ea, sz)?;
    let hi = cpu.read(
        bus,
        op.seg as usize,
        ea.wrapping_add(sz as u64) & crate::cpu::decode::amask(op.asz),
        sz,
    )?;
    let sx = |v: u64| -> i64 {
        let sh = 64 - 8 * sz as u32;
        ((v << sh) as i64) >> sh
    };
    if sx(idx) < sx(lo) || sx(idx) > sx(hi) {
        return Err(Fault::new(vector::BR));
    }
    Ok(())
}

// ---- far transfers ----

fn jmp_far_imm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    far_jump(cpu, bus, op.imm2 as u16, op.imm, op.osz, false)
}

fn read_far_ptr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res<(u16, u64)> {
    let ea = op.ea(cpu);
    let s = op.seg as usize;
    let off = cpu.read(bus, s, ea, op.osz)?;
    let sel = cpu.read(
        bus,
        s,
        ea.wrapping_add(op.osz as u64) & crate::cpu::decode::amask(op.asz),
        2,
    )? as u16;
    Ok((sel, off))
}

fn jmp_far_mem(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let (sel, off) = read_far_ptr(cpu, bus, op)?;
    far_jump(cpu, bus, sel, off, op.osz, false)
}

fn call_far_imm(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    far_jump(cpu, bus, op.imm2 as u16, op.imm, op.osz, true)
}

fn call_far_mem(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let (sel, off) = read_far_ptr(cpu, bus, op)?;
    far_jump(cpu, bus, sel, off, op.osz, true)
}

/// Far JMP/CALL in every mode (SDM Vol. 2A JMP and CALL "Operation").
fn far_jump(cpu: &mut Cpu, bus: &mut dyn Bus, sel: u16, off: u64, osz: u8, call: bool) -> Res {
    let off = off & size_mask(osz);
    if !cpu.pmode {
        if call {
            let (cs, ip) = (cpu.seg[CS].selector as u64, cpu.rip);
            let old = cpu.gpr[4];
            cpu.push(bus, osz, cs)?;
            if let Err(e) = cpu.push(bus, osz, ip) {
                cpu.gpr[4] = old;
                return Err(e);
            }
        }
        if off > cpu.seg[CS].limit as u64 && cpu.flags.bits & VM == 0 && cpu.cr0 & cr0::PE == 0 {
            // Real mode: the limit check uses the current CS limit.
            return Err(Fault::gp(0));
        }
        cpu.load_seg_real(CS, sel);
        cpu.rip = off;
        cpu.stop_block = true;
        return Ok(());
    }
    if sel & !3 == 0 {
        return Err(Fault::gp(0));
    }
    let d = cpu.read_desc(bus, sel)?;
    let err = Fault::gp(sel as u32 & 0xFFFC);
    let rpl = (sel & 3) as u8;
    if d.is_code() {
        if d.conforming() {
            if d.dpl() > cpu.cpl {
                return Err(err);
            }
        } else if rpl > cpu.cpl || d.dpl() != cpu.cpl {
            return Err(err);
        }
        if !d.present() {
            return Err(Fault::code(vector::NP, sel as u32 & 0xFFFC));
        }
        let seg = d.to_segment(sel);
        let lm_code = cpu.efer & efer::LMA != 0 && d.long();
        if !lm_code && off > seg.limit as u64 {
            return Err(Fault::gp(0));
        }
        if call {
            let (cs, ip) = (cpu.seg[CS].selector as u64, cpu.rip);
            let old = cpu.gpr[4];
            cpu.push(bus, osz, cs)?;
            if let Err(e) = cpu.push(bus, osz, ip) {
                cpu.gpr[4] = old;
                return Err(e);
            }
        }
        cpu.set_desc_accessed(bus, sel, &d)?;
        let cpl = cpu.cpl;
        cpu.set_cs(sel, &d, cpl);
        cpu.rip = off;
        cpu.stop_block = true;
        return Ok(());
    }
    // System descriptors: call gate, task gate, TSS.
    if d.dpl() < cpu.cpl || d.dpl() < rpl {
        return Err(err);
    }
    match d.typ() {
        4 | 12 => call_gate(cpu, bus, sel, d, call),
        5 => {
            if !d.present() {
                return Err(Fault::code(vector::NP, sel as u32 & 0xFFFC));
            }
            let reason = if call {
                super::task::Reason::Call
            } else {
                super::task::Reason::Jmp
            };
            cpu.task_switch_gate(bus, d.gate_selector(), reason, None)
        }
        1 | 9 if cpu.efer & efer::LMA == 0 => {
            let reason = if call {
                super::task::Reason::Call
            } else {
                super::task::Reason::Jmp
            };
            cpu.task_switch(bus, sel, d, reason, None)
        }
        _ => Err(err),
    }
}

/// Transfer through a call gate, with a stack switch for a more privileged
/// target (SDM Vol. 3A 5.8.5, 5.8.6).
fn call_gate(cpu: &mut Cpu, bus: &mut dyn Bus, gsel: u16, g: Desc, call: bool) -> Res {
    if !g.present() {
        return Err(Fault::code(vector::NP, gsel as u32 & 0xFFFC));
    }
    let long = cpu.efer & efer::LMA != 0;
    let mut target = g.gate_offset() as u64;
    if long {
        if g.typ() != 12 {
            return Err(Fault::gp(gsel as u32 & 0xFFFC));
        }
        let upper = cpu.read_desc_high(bus, gsel)?;
        target |= (upper as u64) << 32;
    }
    let gate32 = g.typ() == 12;
    if !gate32 {
        target &= 0xFFFF;
    }
    let csel = g.gate_selector();
    if csel & !3 == 0 {
        return Err(Fault::gp(0));
    }
    let d = cpu.read_desc(bus, csel)?;
    let err = Fault::gp(csel as u32 & 0xFFFC);
    if !d.is_code() || d.dpl() > cpu.cpl || (long && (!d.long() || d.hi & (1 << 22) != 0)) {
        return Err(err);
    }
    // JMP through a call gate never changes privilege: a non-conforming
    // target must have DPL = CPL (SDM Vol. 2A JMP, call gate: "#GP(code
    // segment selector)"; test-roms/sys/gates.asm).
    if !call && !d.conforming() && d.dpl() != cpu.cpl {
        return Err(err);
    }
    if !d.present() {
        return Err(Fault::code(vector::NP, csel as u32 & 0xFFFC));
    }
    let size: u8 = if long {
        8
    } else if gate32 {
        4
    } else {
        2
    };
    let old_cs = cpu.seg[CS].selector as u64;
    let old_ip = cpu.rip;
    if call && !d.conforming() && d.dpl() < cpu.cpl {
        // More privileged: new stack from the TSS, copy parameters.
        let new_cpl = d.dpl();
        let (ss, sp) = cpu.tss_stack(bus, new_cpl)?;
        let old_ss = cpu.seg[SS].selector as u64;
        let old_sp = cpu.gpr[4];
        let params = if long { 0 } else { (g.hi & 0x1F) as u64 };
        let mut copied = Vec::with_capacity(params as usize);
        for i in 0..params {
            copied.push(cpu.peek(bus, i * size as u64, size)?);
        }
        let (new_ss, sp_mask) = if long {
            (
                Segment {
                    selector: new_cpl as u16,
                    base: 0,
                    limit: 0,
                    attr: attr::DB | attr::P | attr::S | attr::TYPE_RW,
                },
                u64::MAX,
            )
        } else {
            let ssd = cpu.check_new_ss(bus, ss, new_cpl)?;
            let s = ssd.to_segment(ss);
            let m = if s.big() { 0xFFFF_FFFF } else { 0xFFFF };
            (s, m)
        };
        // The full ESP is pushed, not ESP masked by the old stack's size:
        // SDM Vol. 2A CALL, MORE-PRIVILEGE ("Push(oldESP)"; a 16-bit gate
        // pushes its low word, which the write size does).
        let mut frame = vec![old_ss, old_sp & 0xFFFF_FFFF];
        frame.extend(copied.iter().rev());
        frame.push(old_cs);
        frame.push(old_ip);
        let mut nsp = if long { sp } else { sp & sp_mask };
        for v in frame {
            nsp = nsp.wrapping_sub(size as u64) & sp_mask;
            let lin = if long {
                nsp
            } else {
                new_ss.base.wrapping_add(nsp) & 0xFFFF_FFFF
            };
            cpu.write_lin_slow(bus, lin, size, v, new_cpl == 3)?;
        }
        cpu.seg[SS] = new_ss;
        // ESP <- NewESP from the TSS, whole, then the pushes (SDM Vol. 2A
        // CALL, MORE-PRIVILEGE): a 16-bit new stack moves SP only.
        cpu.gpr[4] = if long {
            nsp
        } else {
            (sp & 0xFFFF_FFFF & !sp_mask) | nsp
        };
        cpu.set_cs(csel, &d, new_cpl);
    } else {
        if call {
            let old = cpu.gpr[4];
            cpu.push(bus, size, old_cs)?;
            if let Err(e) = cpu.push(bus, size, old_ip) {
                cpu.gpr[4] = old;
                return Err(e);
            }
        }
        let cpl = cpu.cpl;
        cpu.set_cs(csel, &d, cpl);
    }
    cpu.rip = target;
    cpu.stop_block = true;
    Ok(())
}

/// The code segment a far return or IRET goes back to, with the checks both
/// share (SDM Vol. 2B RET and Vol. 2A IRET: RPL >= CPL, DPL rules, present).
fn return_code_desc(cpu: &mut Cpu, bus: &mut dyn Bus, sel: u16) -> Res<Desc> {
    if sel & !3 == 0 {
        return Err(Fault::gp(0));
    }
    let d = cpu.read_desc(bus, sel)?;
    let rpl = (sel & 3) as u8;
    if !d.is_code()
        || rpl < cpu.cpl
        || (d.conforming() && d.dpl() > rpl)
        || (!d.conforming() && d.dpl() != rpl)
    {
        return Err(Fault::gp(sel as u32 & 0xFFFC));
    }
    if !d.present() {
        return Err(Fault::code(vector::NP, sel as u32 & 0xFFFC));
    }
    Ok(d)
}

/// The stack segment popped by a return to an outer privilege level `rpl`.
fn return_ss(cpu: &mut Cpu, bus: &mut dyn Bus, nss: u16, rpl: u8) -> Res<Segment> {
    if nss & !3 == 0 {
        return Err(Fault::gp(0));
    }
    let ssd = cpu.read_desc(bus, nss)?;
    if (nss & 3) as u8 != rpl || ssd.dpl() != rpl || !ssd.writable_data() {
        return Err(Fault::gp(nss as u32 & 0xFFFC));
    }
    if !ssd.present() {
        return Err(Fault::code(vector::SS, nss as u32 & 0xFFFC));
    }
    Ok(ssd.to_segment(nss))
}

/// RETF (imm16): same privilege or return to an outer level (SDM Vol. 2B RET).
pub fn ret_far(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let imm = if op.o[0] == K_IMM { op.imm & 0xFFFF } else { 0 };
    let ip = cpu.peek(bus, 0, sz)? & size_mask(sz);
    let sel = cpu.peek(bus, sz as u64, sz)? as u16;
    if !cpu.pmode {
        cpu.load_seg_real(CS, sel);
        cpu.rip = ip;
        let m = cpu.sp_mask;
        cpu.gpr[4] = (cpu.gpr[4] & !m) | (cpu.gpr[4].wrapping_add(2 * sz as u64 + imm) & m);
        cpu.stop_block = true;
        return Ok(());
    }
    let d = return_code_desc(cpu, bus, sel)?;
    let rpl = (sel & 3) as u8;
    let m = cpu.sp_mask;
    if rpl == cpu.cpl {
        cpu.set_cs(sel, &d, rpl);
        cpu.rip = ip;
        cpu.gpr[4] = (cpu.gpr[4] & !m) | (cpu.gpr[4].wrapping_add(2 * sz as u64 + imm) & m);
    } else {
        let nsp = cpu.peek(bus, 2 * sz as u64 + imm, sz)?;
        let nss = cpu.peek(bus, 3 * sz as u64 + imm, sz)? as u16;
        let long = cpu.efer & efer::LMA != 0 && d.long();
        if long && nss & !3 == 0 {
            cpu.set_cs(sel, &d, rpl);
            cpu.seg[SS] = Segment {
                selector: nss,
                base: 0,
                limit: 0,
                attr: attr::DB,
            };
        } else {
            let ss = return_ss(cpu, bus, nss, rpl)?;
            cpu.set_cs(sel, &d, rpl);
            cpu.seg[SS] = ss;
        }
        cpu.update_mode();
        let m = cpu.sp_mask;
        cpu.gpr[4] = (cpu.gpr[4] & !m) | (nsp.wrapping_add(imm) & m);
        cpu.rip = ip;
        cpu.null_inaccessible_segs();
    }
    cpu.stop_block = true;
    Ok(())
}

/// IRET/IRETD/IRETQ (SDM Vol. 2A IRET "Operation").
pub fn iret(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    cpu.stop_block = true;
    cpu.nmi_blocked = false;
    let cur = cpu.flags.get();
    if cpu.cr0 & cr0::PE == 0 || cur & VM != 0 {
        if cur & VM != 0 && cpu.iopl() < 3 {
            return Err(Fault::gp(0));
        }
        let ip = cpu.peek(bus, 0, sz)?;
        let cs = cpu.peek(bus, sz as u64, sz)? as u16;
        let fl = cpu.peek(bus, 2 * sz as u64, sz)?;
        if ip > cpu.seg[CS].limit as u64 && cur & VM == 0 {
            return Err(Fault::gp(0));
        }
        for _ in 0..3 {
            cpu.pop(bus, sz)?;
        }
        // Reserved bits 1, 3, 5 and 15 are never loaded (bit 1 stays set).
        let mut mask = if sz == 2 { 0x7FD5 } else { 0x257FD5 };
        if cur & VM != 0 {
            mask &= !(IOPL | VM | VIF | VIP);
        }
        cpu.flags.set((cur & !mask) | (fl & mask));
        cpu.load_seg_real(CS, cs);
        cpu.rip = ip & size_mask(sz);
        cpu.update_mode();
        return Ok(());
    }
    if cur & NT != 0 && cpu.efer & efer::LMA == 0 {
        return cpu.task_return(bus);
    }
    let ip = cpu.peek(bus, 0, sz)?;
    let sel = cpu.peek(bus, sz as u64, sz)? as u16;
    let fl = cpu.peek(bus, 2 * sz as u64, sz)?;
    if fl & VM != 0 && cpu.cpl == 0 && sz == 4 && cpu.efer & efer::LMA == 0 {
        return iret_to_v86(cpu, bus, ip, sel, fl);
    }
    let d = return_code_desc(cpu, bus, sel)?;
    let rpl = (sel & 3) as u8;
    let long = cpu.efer & efer::LMA != 0;
    let new_flags = |cpu: &Cpu, fl: u64| -> u64 {
        let mut mask = CF | PF | AF | ZF | SF | TF | DF | OF | NT;
        if sz >= 4 {
            mask |= RF | AC | ID | VIF | VIP;
        }
        if cpu.cpl == 0 {
            mask |= IOPL;
        }
        if cpu.cpl <= cpu.iopl() {
            mask |= IF;
        }
        let mask = mask & size_mask(sz);
        (cur & !mask) | (fl & mask)
    };
    if rpl == cpu.cpl && !(long && sz == 8) {
        let seg = d.to_segment(sel);
        if !(long && d.long()) && ip > seg.limit as u64 {
            return Err(Fault::gp(0));
        }
        for _ in 0..3 {
            cpu.pop(bus, sz)?;
        }
        let nf = new_flags(cpu, fl);
        cpu.flags.set(nf);
        cpu.set_cs(sel, &d, rpl);
        cpu.rip = ip & size_mask(sz);
        return Ok(());
    }
    // Return to an outer level, or any IRETQ: SS:rSP are popped too.
    let nsp = cpu.peek(bus, 3 * sz as u64, sz)?;
    let nss = cpu.peek(bus, 4 * sz as u64, sz)? as u16;
    let nf = new_flags(cpu, fl);
    if long && nss & !3 == 0 && (d.long() && rpl != 3) {
        cpu.set_cs(sel, &d, rpl);
        cpu.seg[SS] = Segment {
            selector: nss,
            base: 0,
            limit: 0,
            attr: attr::DB | attr::P | attr::S | attr::TYPE_RW | ((rpl as u16) << attr::DPL_SHIFT),
        };
    } else {
        if nss & !3 == 0 {
            return Err(Fault::gp(0));
        }
        let ss = return_ss(cpu, bus, nss, rpl)?;
        cpu.set_cs(sel, &d, rpl);
        cpu.seg[SS] = ss;
    }
    cpu.flags.set(nf);
    cpu.update_mode();
    let m = cpu.sp_mask;
    cpu.gpr[4] = if cpu.long64 || long {
        nsp & size_mask(sz.max(4))
    } else {
        (cpu.gpr[4] & !m) | (nsp & m)
    };
    if long && sz == 8 {
        cpu.gpr[4] = nsp;
    }
    cpu.rip = ip & size_mask(sz);
    if rpl > 0 {
        cpu.null_inaccessible_segs();
    }
    Ok(())
}

/// IRET from CPL0 with VM set in the popped EFLAGS: enter virtual-8086 mode
/// (SDM Vol. 2A IRET, RETURN-TO-VIRTUAL-8086-MODE).
fn iret_to_v86(cpu: &mut Cpu, bus: &mut dyn Bus, ip: u64, cs: u16, fl: u64) -> Res {
    let mut vals = [0u64; 6];
    for (i, v) in vals.iter_mut().enumerate() {
        *v = cpu.peek(bus, 12 + 4 * i as u64, 4)?;
    }
    let [esp, ss, es, ds, fs, gs] = vals;
    cpu.flags.set(fl | VM);
    cpu.update_mode();
    for (s, v) in [
        (CS, cs as u64),
        (SS, ss),
        (ES, es),
        (DS, ds),
        (FS, fs),
        (GS, gs),
    ] {
        cpu.load_seg_real(s, v as u16);
    }
    cpu.gpr[4] = esp & 0xFFFF_FFFF;
    cpu.rip = ip & 0xFFFF;
    cpu.cpl = 3;
    cpu.update_mode();
    Ok(())
}
