//! Protected-mode segmentation: descriptor fetch from the GDT/LDT, segment
//! register loads with their checks (SDM Vol. 3A 5.x and the MOV/POP Sreg,
//! LDS.. pseudo-code in Vol. 2), and the TSS stack lookup for privilege changes.

use super::state::*;
use super::{vector, Bus, Cpu, Fault, Res};

/// A raw 8-byte descriptor.
#[derive(Clone, Copy, Debug, Default)]
pub struct Desc {
    pub lo: u32,
    pub hi: u32,
}

impl Desc {
    pub fn present(&self) -> bool {
        self.hi & (1 << 15) != 0
    }
    pub fn dpl(&self) -> u8 {
        ((self.hi >> 13) & 3) as u8
    }
    /// S bit: code/data (true) or system (false).
    pub fn s(&self) -> bool {
        self.hi & (1 << 12) != 0
    }
    pub fn typ(&self) -> u8 {
        ((self.hi >> 8) & 0xF) as u8
    }
    pub fn is_code(&self) -> bool {
        self.s() && self.typ() & 8 != 0
    }
    pub fn conforming(&self) -> bool {
        self.is_code() && self.typ() & 4 != 0
    }
    pub fn readable(&self) -> bool {
        self.is_code() && self.typ() & 2 != 0
    }
    pub fn writable_data(&self) -> bool {
        self.s() && self.typ() & 8 == 0 && self.typ() & 2 != 0
    }
    pub fn long(&self) -> bool {
        self.hi & (1 << 21) != 0
    }
    pub fn to_segment(&self, sel: u16) -> Segment {
        descriptor_to_segment(sel, self.lo, self.hi)
    }
    /// Gate fields (SDM Vol. 3A 5.8.3, 6.11).
    pub fn gate_selector(&self) -> u16 {
        (self.lo >> 16) as u16
    }
    pub fn gate_offset(&self) -> u32 {
        (self.lo & 0xFFFF) | (self.hi & 0xFFFF_0000)
    }
}

impl Cpu {
    /// Linear address of a descriptor and whether it lies inside its table.
    fn desc_addr(&self, sel: u16) -> Option<u64> {
        let index = (sel & !7) as u64;
        let (base, limit) = if sel & 4 != 0 {
            if self.ldtr.selector & !3 == 0 || !self.ldtr.present() {
                return None;
            }
            (self.ldtr.base, self.ldtr.limit as u64)
        } else {
            (self.gdtr.base, self.gdtr.limit as u64)
        };
        if index + 7 > limit {
            return None;
        }
        Some(base.wrapping_add(index))
    }

    /// Reads the descriptor for `sel`; #GP(sel) if it is outside the table.
    pub fn read_desc(&mut self, bus: &mut dyn Bus, sel: u16) -> Res<Desc> {
        let addr = self.desc_addr(sel).ok_or(Fault::gp(sel as u32 & 0xFFFC))?;
        let lo = self.read_sys(bus, addr, 4)? as u32;
        let hi = self.read_sys(bus, addr + 4, 4)? as u32;
        Ok(Desc { lo, hi })
    }

    /// Reads the upper half of a 16-byte system descriptor (long mode).
    pub fn read_desc_high(&mut self, bus: &mut dyn Bus, sel: u16) -> Res<u32> {
        let addr = self
            .desc_addr(sel.wrapping_add(8))
            .ok_or(Fault::gp(sel as u32 & 0xFFFC))?;
        Ok(self.read_sys(bus, addr, 4)? as u32)
    }

    /// Sets the accessed bit of a descriptor in memory (SDM Vol. 3A 3.4.5.1)
    /// by writing the access-rights byte (offset 5) alone, as Bochs does: a
    /// #PF on a read-only descriptor table reports that byte's address in
    /// CR2 (test-roms/sys/pgcorner.asm).
    pub fn set_desc_accessed(&mut self, bus: &mut dyn Bus, sel: u16, d: &Desc) -> Res {
        if d.hi & (1 << 8) == 0 {
            if let Some(addr) = self.desc_addr(sel) {
                self.write_sys(bus, addr + 5, 1, ((d.hi >> 8) as u8 | 1) as u64)?;
            }
        }
        Ok(())
    }

    /// MOV/POP/LxS to a data segment register or SS, with all protected-mode
    /// checks (SDM Vol. 2B MOV "Operation"). Real and V86 mode just shift.
    pub fn load_seg(&mut self, bus: &mut dyn Bus, s: usize, sel: u16) -> Res {
        if !self.pmode {
            self.load_seg_real(s, sel);
            return Ok(());
        }
        let s = s.min(5);
        if sel & !3 == 0 {
            // Null selector: allowed for data segments; for SS only in 64-bit
            // mode at CPL < 3 (SDM Vol. 3A 5.4.1.1).
            if s == SS && !(self.long64 && self.cpl != 3 && (sel & 3) as u8 == self.cpl) {
                return Err(Fault::gp(0));
            }
            // Intel clears the base of a null FS/GS too (AMD keeps it).
            self.seg[s] = Segment {
                selector: sel,
                base: 0,
                limit: 0,
                attr: 0,
            };
            if s == SS {
                self.seg[s].attr = attr::DB;
                self.update_mode();
            }
            return Ok(());
        }
        let d = self.read_desc(bus, sel)?;
        let rpl = (sel & 3) as u8;
        let err = Fault::gp(sel as u32 & 0xFFFC);
        if s == SS {
            if rpl != self.cpl || !d.writable_data() || d.dpl() != self.cpl {
                return Err(err);
            }
            if !d.present() {
                return Err(Fault::code(vector::SS, sel as u32 & 0xFFFC));
            }
        } else {
            if !d.s() || (d.is_code() && !d.readable()) {
                return Err(err);
            }
            if !d.conforming() && (rpl > d.dpl() || self.cpl > d.dpl()) {
                return Err(err);
            }
            if !d.present() {
                return Err(Fault::code(vector::NP, sel as u32 & 0xFFFC));
            }
        }
        self.set_desc_accessed(bus, sel, &d)?;
        self.seg[s] = d.to_segment(sel);
        self.seg[s].attr |= attr::TYPE_ACCESSED;
        if s == SS {
            self.update_mode();
        }
        Ok(())
    }

    /// Loads CS from a code-segment descriptor already checked by the caller,
    /// setting CPL (SDM Vol. 3A 5.8).
    pub fn set_cs(&mut self, sel: u16, d: &Desc, cpl: u8) {
        self.seg[CS] = d.to_segment((sel & !3) | cpl as u16);
        self.seg[CS].attr |= attr::TYPE_ACCESSED;
        self.cpl = cpl;
        self.update_mode();
    }

    /// The stack for privilege level `dpl` from the current TSS
    /// (SDM Vol. 3A 7.2.1 for 32/16-bit TSS, 7.7 for the 64-bit TSS).
    pub fn tss_stack(&mut self, bus: &mut dyn Bus, dpl: u8) -> Res<(u16, u64)> {
        let typ = self.tr.attr & 0xF;
        let ts = |sel: u16| Fault::code(vector::TS, sel as u32 & 0xFFFC);
        if self.efer & efer::LMA != 0 {
            let off = 4 + 8 * dpl as u64;
            if off + 7 > self.tr.limit as u64 {
                return Err(ts(self.tr.selector));
            }
            let rsp = self.read_sys(bus, self.tr.base + off, 8)?;
            return Ok((dpl as u16, rsp));
        }
        if typ & 8 != 0 {
            let off = 4 + 8 * dpl as u64;
            if off + 5 > self.tr.limit as u64 {
                return Err(ts(self.tr.selector));
            }
            let esp = self.read_sys(bus, self.tr.base + off, 4)?;
            let ss = self.read_sys(bus, self.tr.base + off + 4, 2)? as u16;
            Ok((ss, esp))
        } else {
            let off = 2 + 4 * dpl as u64;
            if off + 3 > self.tr.limit as u64 {
                return Err(ts(self.tr.selector));
            }
            let sp = self.read_sys(bus, self.tr.base + off, 2)?;
            let ss = self.read_sys(bus, self.tr.base + off + 2, 2)? as u16;
            Ok((ss, sp))
        }
    }

    /// Checks and returns a new SS for a stack switch to privilege `dpl`.
    pub fn check_new_ss(&mut self, bus: &mut dyn Bus, ss: u16, dpl: u8) -> Res<Desc> {
        let ts = Fault::code(vector::TS, ss as u32 & 0xFFFC);
        if ss & !3 == 0 {
            return Err(ts);
        }
        let d = self.read_desc(bus, ss).map_err(|_| ts)?;
        if (ss & 3) as u8 != dpl || d.dpl() != dpl || !d.writable_data() {
            return Err(ts);
        }
        if !d.present() {
            return Err(Fault::code(vector::SS, ss as u32 & 0xFFFC));
        }
        Ok(d)
    }

    /// After a return to an outer privilege level, data segment registers the
    /// new CPL may not use become null (SDM Vol. 2B RET, "RETURN-TO-OUTER-PRIVILEGE").
    pub fn null_inaccessible_segs(&mut self) {
        for s in [ES, DS, FS, GS] {
            let sg = self.seg[s];
            let conforming_code = sg.is_code() && sg.attr & attr::TYPE_EC != 0;
            if sg.attr & attr::S != 0 && !conforming_code && sg.dpl() < self.cpl {
                self.seg[s] = Segment {
                    selector: 0,
                    base: 0,
                    limit: 0,
                    attr: 0,
                };
            }
        }
    }
}
