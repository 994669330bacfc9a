//! Hardware task switching through a TSS or task gate (SDM Vol. 3A 7.3):
//! JMP/CALL to a TSS or task gate, INT/exception through a task gate, and
//! IRET with NT set. Both 32-bit (type 9/11) and 16-bit (type 1/3) TSSs.

use crate::cpu::seg::Desc;
use crate::cpu::state::rflags::*;
use crate::cpu::state::*;
use crate::cpu::{vector, Bus, Cpu, Fault, Res};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Jmp,
    Call,
    Int,
    Iret,
}

/// Where a TSS keeps each field (SDM Vol. 3A Figure 7-2, 32-bit TSS, and
/// Figure 7-11, the 286 TSS): one table instead of two copies of the code.
struct TssLayout {
    width: u8,
    ip: u64,
    flags: u64,
    gpr: u64,
    seg: u64,
    seg_stride: u64,
    segs: usize,
    ldt: u64,
    cr3: Option<u64>,
}

impl TssLayout {
    fn of(is32: bool) -> TssLayout {
        if is32 {
            TssLayout {
                width: 4,
                ip: 0x20,
                flags: 0x24,
                gpr: 0x28,
                seg: 0x48,
                seg_stride: 4,
                segs: 6,
                ldt: 0x60,
                cr3: Some(0x1C),
            }
        } else {
            // ES, CS, SS, DS only; no FS/GS and no CR3 in a 16-bit TSS.
            TssLayout {
                width: 2,
                ip: 0x0E,
                flags: 0x10,
                gpr: 0x12,
                seg: 0x22,
                seg_stride: 2,
                segs: 4,
                ldt: 0x2A,
                cr3: None,
            }
        }
    }
}

impl Cpu {
    pub fn task_switch_gate(
        &mut self,
        bus: &mut dyn Bus,
        tss_sel: u16,
        reason: Reason,
        error: Option<u32>,
    ) -> Res {
        if tss_sel & 4 != 0 || tss_sel & !3 == 0 {
            return Err(Fault::gp(tss_sel as u32 & 0xFFFC));
        }
        let d = self.read_desc(bus, tss_sel)?;
        self.task_switch(bus, tss_sel, d, reason, error)
    }

    /// IRET with NT=1: return to the task in the back-link field.
    pub fn task_return(&mut self, bus: &mut dyn Bus) -> Res {
        let link = self.read_sys(bus, self.tr.base, 2)? as u16;
        if link & 4 != 0 || link & !3 == 0 {
            return Err(Fault::code(vector::TS, link as u32 & 0xFFFC));
        }
        // A code or data descriptor is "not a busy TSS" too: #TS, not the
        // #GP of a JMP/CALL (SDM Vol. 2A IRET, TASK-RETURN).
        let d = self.read_desc(bus, link)?;
        if d.s() || !matches!(d.typ(), 3 | 11) {
            return Err(Fault::code(vector::TS, link as u32 & 0xFFFC));
        }
        self.task_switch(bus, link, d, Reason::Iret, None)
    }

    pub fn task_switch(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        d: Desc,
        reason: Reason,
        error: Option<u32>,
    ) -> Res {
        let ts_err = Fault::code(vector::TS, sel as u32 & 0xFFFC);
        let want_busy = reason == Reason::Iret;
        let typ = d.typ();
        let busy = typ & 2 != 0;
        if d.s() || !matches!(typ, 1 | 3 | 9 | 11) || busy != want_busy {
            return Err(Fault::gp(sel as u32 & 0xFFFC));
        }
        if !d.present() {
            return Err(Fault::code(vector::NP, sel as u32 & 0xFFFC));
        }
        let new = d.to_segment(sel);
        let new32 = typ & 8 != 0;
        if new.limit < if new32 { 0x67 } else { 0x2B } {
            return Err(ts_err);
        }
        // Save the outgoing task's state.
        let old = self.tr;
        let old32 = old.attr & 8 != 0;
        let mut fl = self.flags.get();
        if matches!(reason, Reason::Jmp | Reason::Iret) {
            fl &= !NT;
        }
        let ol = TssLayout::of(old32);
        let w = ol.width;
        let m = crate::cpu::flags::size_mask(w);
        self.write_sys(bus, old.base + ol.ip, w, self.rip & m)?;
        self.write_sys(bus, old.base + ol.flags, w, fl & m)?;
        for i in 0..8u64 {
            self.write_sys(
                bus,
                old.base + ol.gpr + w as u64 * i,
                w,
                self.gpr[i as usize] & m,
            )?;
        }
        for s in 0..ol.segs {
            self.write_sys(
                bus,
                old.base + ol.seg + ol.seg_stride * s as u64,
                2,
                self.seg[s].selector as u64,
            )?;
        }
        // Read the incoming task's state.
        let b = new.base;
        let nl = TssLayout::of(new32);
        let w = nl.width;
        let eip = self.read_sys(bus, b + nl.ip, w)?;
        let nfl = self.read_sys(bus, b + nl.flags, w)?;
        // From a 16-bit TSS the upper halves of the registers are "modified
        // and not maintained" (SDM Vol. 3A 7.6): they read back as 0xFFFF,
        // as under Bochs (test-roms/sys/tasks.asm).
        let upper = if new32 { 0 } else { 0xFFFF_0000 };
        let mut regs = [0u64; 8];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = upper | self.read_sys(bus, b + nl.gpr + w as u64 * i as u64, w)?;
        }
        let mut sels = [0u16; 6];
        for (i, sv) in sels.iter_mut().take(nl.segs).enumerate() {
            *sv = self.read_sys(bus, b + nl.seg + nl.seg_stride * i as u64, 2)? as u16;
        }
        let ldt = self.read_sys(bus, b + nl.ldt, 2)? as u16;
        let cr3 = match nl.cr3 {
            Some(off) => Some(self.read_sys(bus, b + off, 4)?),
            None => None,
        };
        // Busy bits and back link.
        if matches!(reason, Reason::Jmp | Reason::Iret) {
            let od = self.read_desc(bus, old.selector)?;
            self.write_desc_hi(bus, old.selector, od.hi & !(1 << 9))?;
        }
        if reason != Reason::Iret {
            self.write_desc_hi(bus, sel, d.hi | (1 << 9))?;
        }
        let mut nfl = nfl;
        if matches!(reason, Reason::Call | Reason::Int) {
            nfl |= NT;
            self.write_sys(bus, b, 2, old.selector as u64)?;
        }
        // Commit: TR, CR3, registers, flags.
        self.tr = new;
        self.tr.attr |= 2; // busy
        if let Some(cr3) = cr3 {
            if self.cr0 & cr0::PG != 0 && cr3 != self.cr3 {
                self.cr3 = cr3;
                self.tlb.flush_non_global();
            }
        }
        self.rip = eip;
        self.flags.set(nfl | FIXED1);
        for (i, r) in regs.iter().enumerate() {
            self.gpr[i] = *r;
        }
        self.cr0 |= cr0::TS;
        // Segment registers: V86 task or protected-mode task.
        if nfl & VM != 0 {
            self.update_mode();
            for (s, v) in sels.iter().enumerate() {
                self.load_seg_real(s, *v);
            }
            self.cpl = 3;
            self.update_mode();
        } else {
            // LDT first, then CS (sets CPL), then the data segments.
            self.load_ldt(bus, ldt)
                .map_err(|_| Fault::code(vector::TS, ldt as u32 & 0xFFFC))?;
            let csel = sels[CS];
            if csel & !3 == 0 {
                return Err(Fault::code(vector::TS, 0));
            }
            let cd = self
                .read_desc(bus, csel)
                .map_err(|_| Fault::code(vector::TS, csel as u32 & 0xFFFC))?;
            if !cd.is_code() {
                return Err(Fault::code(vector::TS, csel as u32 & 0xFFFC));
            }
            if !cd.present() {
                return Err(Fault::code(vector::NP, csel as u32 & 0xFFFC));
            }
            self.cr0 |= cr0::PE;
            self.flags.bits &= !VM;
            self.set_cs(csel, &cd, (csel & 3) as u8);
            for s in [SS, DS, ES, FS, GS] {
                self.load_seg(bus, s, sels[s]).map_err(|f| {
                    if f.vector == vector::GP {
                        Fault::code(vector::TS, f.error().unwrap_or(0))
                    } else {
                        f
                    }
                })?;
            }
        }
        self.update_mode();
        if let Some(e) = error {
            let sz = if new32 { 4 } else { 2 };
            self.push(bus, sz, e as u64)?;
        }
        self.stop_block = true;
        Ok(())
    }

    fn write_desc_hi(&mut self, bus: &mut dyn Bus, sel: u16, hi: u32) -> Res {
        let base = if sel & 4 != 0 {
            self.ldtr.base
        } else {
            self.gdtr.base
        };
        self.write_sys(bus, base + (sel & !7) as u64 + 4, 4, hi as u64)
    }

    /// LLDT semantics without the CPL check (also used by task switches).
    pub fn load_ldt(&mut self, bus: &mut dyn Bus, sel: u16) -> Res {
        if sel & !3 == 0 {
            self.ldtr = Segment {
                selector: sel,
                base: 0,
                limit: 0,
                attr: 0,
            };
            return Ok(());
        }
        if sel & 4 != 0 {
            return Err(Fault::gp(sel as u32 & 0xFFFC));
        }
        let d = self.read_desc(bus, sel)?;
        if d.s() || d.typ() != 2 {
            return Err(Fault::gp(sel as u32 & 0xFFFC));
        }
        if !d.present() {
            return Err(Fault::code(vector::NP, sel as u32 & 0xFFFC));
        }
        let mut s = d.to_segment(sel);
        if self.efer & efer::LMA != 0 {
            s.base |= (self.read_desc_high(bus, sel)? as u64) << 32;
        }
        self.ldtr = s;
        Ok(())
    }
}
