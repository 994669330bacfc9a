//! Exception and interrupt delivery through the IVT (real mode), the IDT
//! (protected mode, incl. V86 and privilege switches through the TSS) and the
//! 64-bit IDT (IA-32e mode, with IST). Double and triple faults follow SDM
//! Vol. 3A 6.15 (Table 6-5, conditions for generating a double fault).

use super::seg::Desc;
use super::state::*;
use super::{vector, Bus, Cpu, Exit, Fault, Res};

/// Where an event comes from: it decides error codes, DPL checks and the RIP pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A fault; RIP already points at the faulting instruction.
    Fault(Option<u32>),
    /// A trap after an instruction (single-step, INT3 and INTO handled as Soft).
    Trap,
    /// INT n, INT3, INTO: gate DPL is checked against CPL.
    Soft,
    /// INT1 (ICEBP): like a trap, without the DPL check.
    Icebp,
    /// A hardware interrupt (PIC) or NMI.
    External,
}

fn contributory(v: u8) -> bool {
    matches!(v, 0 | 10 | 11 | 12 | 13)
}

impl Cpu {
    /// Delivers an event, escalating to #DF and triple fault as the SDM says.
    pub fn deliver_event(&mut self, bus: &mut dyn Bus, vec: u8, src: Source) -> Result<(), Exit> {
        if self.capture_faults {
            let error = if let Source::Fault(e) = src { e } else { None };
            self.captured = Some(Fault::with_error(vec, error));
            self.stop_request = true;
            return Ok(());
        }
        self.halted = false;
        // Event delivery takes time: count it on the virtual clock, so a guest
        // stuck in a fault loop still reaches the instruction budget.
        self.icount += 1;
        let mut vec = vec;
        let mut src = src;
        for _ in 0..4 {
            match self.deliver(bus, vec, src) {
                Ok(()) => return Ok(()),
                Err(f2) => {
                    let f2 = Self::raised_during(f2, src);
                    if vec == vector::DF {
                        return Err(Exit::TripleFault);
                    }
                    // Only an exception combines into #DF: a fault while
                    // delivering INT n or an external interrupt is delivered
                    // on its own, whatever the vector number (SDM Vol. 3A
                    // 6.15, Table 6-5 lists exception classes; INT 0Dh with a
                    // not-present gate is #NP, test-roms/sys/faults.asm).
                    let first_exc = matches!(src, Source::Fault(_));
                    let first_pf = first_exc && vec == vector::PF;
                    let df = (first_exc && contributory(vec) && contributory(f2.vector))
                        || (first_pf && (f2.vector == vector::PF || contributory(f2.vector)));
                    if df {
                        vec = vector::DF;
                        src = Source::Fault(Some(0));
                    } else {
                        vec = f2.vector;
                        src = Source::Fault(f2.error());
                    }
                }
            }
        }
        Err(Exit::TripleFault)
    }

    fn deliver(&mut self, bus: &mut dyn Bus, vec: u8, src: Source) -> Res {
        let error = match src {
            Source::Fault(e) => e,
            _ => None,
        };
        if self.cr0 & cr0::PE == 0 {
            return self.deliver_real(bus, vec);
        }
        if self.efer & efer::LMA != 0 {
            return self.deliver_long(bus, vec, src, error);
        }
        self.deliver_protected(bus, vec, src, error)
    }

    /// Real mode: IVT entry at IDTR.base + 4n; push FLAGS, CS, IP (SDM Vol. 3A 20.1.4).
    fn deliver_real(&mut self, bus: &mut dyn Bus, vec: u8) -> Res {
        let off = vec as u64 * 4;
        if off + 3 > self.idtr.limit as u64 {
            return Err(Fault::gp(0));
        }
        let ip = self.read_sys(bus, self.idtr.base + off, 2)?;
        let cs = self.read_sys(bus, self.idtr.base + off + 2, 2)? as u16;
        let fl = self.flags.get();
        self.push(bus, 2, fl & 0xFFFF)?;
        self.push(bus, 2, self.seg[CS].selector as u64)?;
        self.push(bus, 2, self.rip & 0xFFFF)?;
        self.flags.bits = fl & !(rflags::IF | rflags::TF | rflags::AC | rflags::RF);
        self.flags.lazy = 0;
        self.load_seg_real(CS, cs);
        self.rip = ip;
        Ok(())
    }

    /// The EXT bit of an error code raised while delivering `src`: set for
    /// every event but INT n, INT3 and INTO, that is for external interrupts
    /// and for exceptions too (SDM Vol. 3A 6.13: "an event external to the
    /// program, such as an interrupt or an earlier exception"). A #UD whose
    /// gate is not present is #NP(IDT index | 3), test-roms/sys/dfault.asm.
    fn ext(src: Source) -> u32 {
        !matches!(src, Source::Soft) as u32
    }

    /// A fault raised while delivering `src`, with EXT set in its error code
    /// when `src` is not INT n/INT3/INTO (SDM Vol. 3A 6.13): this covers the
    /// faults of every step of delivery alike, the TSS stack (`tss_stack`),
    /// the new SS (`check_new_ss`), stack limits and task switches, as
    /// Bochs's `exception()` does. Page-fault error codes have no EXT bit.
    fn raised_during(f: Fault, src: Source) -> Fault {
        match f.error() {
            Some(e) if f.vector != vector::PF => Fault::code(f.vector, e | Self::ext(src)),
            _ => f,
        }
    }

    fn idt_error(vec: u8, src: Source) -> u32 {
        (vec as u32) * 8 + 2 + Self::ext(src)
    }

    /// Protected mode (incl. from V86): interrupt/trap gates, task gates
    /// (SDM Vol. 3A 6.12, Vol. 2A INT n "Operation").
    fn deliver_protected(
        &mut self,
        bus: &mut dyn Bus,
        vec: u8,
        src: Source,
        error: Option<u32>,
    ) -> Res {
        let off = vec as u64 * 8;
        let idt_err = Fault::gp(Self::idt_error(vec, src));
        if off + 7 > self.idtr.limit as u64 {
            return Err(idt_err);
        }
        let lo = self.read_sys(bus, self.idtr.base + off, 4)? as u32;
        let hi = self.read_sys(bus, self.idtr.base + off + 4, 4)? as u32;
        let gate = Desc { lo, hi };
        let typ = gate.typ();
        if gate.s() || !matches!(typ, 5 | 6 | 7 | 14 | 15) {
            return Err(idt_err);
        }
        if matches!(src, Source::Soft) && gate.dpl() < self.cpl {
            return Err(idt_err);
        }
        if !gate.present() {
            return Err(Fault::code(vector::NP, Self::idt_error(vec, src)));
        }
        if typ == 5 {
            return self.task_switch_gate(
                bus,
                gate.gate_selector(),
                super::exec::task::Reason::Int,
                error,
            );
        }
        let gate32 = typ & 8 != 0;
        let trap = typ & 1 != 0;
        let sel = gate.gate_selector();
        let ext = Self::ext(src);
        if sel & !3 == 0 {
            return Err(Fault::gp(ext));
        }
        let d = self
            .read_desc(bus, sel)
            .map_err(|_| Fault::gp((sel as u32 & 0xFFFC) | ext))?;
        if !d.is_code() || d.dpl() > self.cpl {
            return Err(Fault::gp((sel as u32 & 0xFFFC) | ext));
        }
        if !d.present() {
            return Err(Fault::code(vector::NP, (sel as u32 & 0xFFFC) | ext));
        }
        let offset = if gate32 {
            gate.gate_offset() as u64
        } else {
            (gate.gate_offset() & 0xFFFF) as u64
        };
        let new_seg = d.to_segment(sel);
        if offset > new_seg.limit as u64 {
            return Err(Fault::gp(ext));
        }
        let old_flags = self.flags.get();
        let vm = old_flags & rflags::VM != 0;
        let size: u8 = if gate32 { 4 } else { 2 };
        let old_cs = self.seg[CS].selector as u64;
        let old_ip = self.rip;
        if !d.conforming() && d.dpl() < self.cpl {
            // Inter-privilege: switch to the inner stack from the TSS.
            let new_cpl = d.dpl();
            if vm && new_cpl != 0 {
                return Err(Fault::gp(sel as u32 & 0xFFFC));
            }
            let (ss, sp) = self.tss_stack(bus, new_cpl)?;
            let ssd = self.check_new_ss(bus, ss, new_cpl)?;
            let new_ss = ssd.to_segment(ss);
            let old_ss = self.seg[SS].selector as u64;
            let old_sp = self.gpr[4];
            let sp_mask: u64 = if new_ss.big() { 0xFFFF_FFFF } else { 0xFFFF };
            // Build the frame on the new stack before committing anything.
            let mut frame: Vec<u64> = Vec::with_capacity(10);
            if vm {
                frame.extend([
                    self.seg[GS].selector as u64,
                    self.seg[FS].selector as u64,
                    self.seg[DS].selector as u64,
                    self.seg[ES].selector as u64,
                ]);
            }
            // The whole ESP is pushed whatever the old stack's size (a
            // 32-bit gate stores 32 bits; the write size truncates a 16-bit
            // one): SDM Vol. 2A INT n, INTER-PRIVILEGE-LEVEL-INTERRUPT pushes
            // "ESP" (Bochs pushes ESP too). Masking with the old stack size
            // lost ESP[31:16] when the interrupted code ran on a 16-bit stack.
            frame.extend([old_ss, old_sp & 0xFFFF_FFFF, old_flags, old_cs, old_ip]);
            if let Some(e) = error {
                frame.push(e as u64);
            }
            let mut nsp = sp;
            for v in frame.iter() {
                nsp = nsp.wrapping_sub(size as u64) & sp_mask;
                let lin = new_ss.base.wrapping_add(nsp) & 0xFFFF_FFFF;
                self.write_lin_slow(bus, lin, size, *v, false)?;
            }
            self.seg[SS] = new_ss;
            // ESP is loaded whole from the TSS, then the pushes move SP only
            // when the new stack is 16-bit: SDM Vol. 2A INT n,
            // INTER-PRIVILEGE-LEVEL-INTERRUPT ("ESP <- NewESP"). Bochs keeps
            // the interrupted ESP[31:16] instead (test-roms/sys/stack.expected).
            self.gpr[4] = (sp & 0xFFFF_FFFF & !sp_mask) | (nsp & sp_mask);
            if vm {
                for s in [ES, DS, FS, GS] {
                    self.seg[s] = Segment::default();
                }
            }
            self.enter_handler(old_flags, trap, sel, &d, new_cpl);
        } else {
            if vm {
                return Err(Fault::gp(sel as u32 & 0xFFFC));
            }
            let mut frame = vec![old_flags, old_cs, old_ip];
            if let Some(e) = error {
                frame.push(e as u64);
            }
            // Check the whole frame fits before writing (precise faults).
            let total = size as u64 * frame.len() as u64;
            let sp = self.gpr[4];
            let top = sp.wrapping_sub(total) & self.sp_mask;
            self.seg_lin(SS, top, size, true)?;
            for v in frame {
                self.push(bus, size, v)?;
            }
            let cpl = self.cpl;
            self.enter_handler(old_flags, trap, sel, &d, cpl);
        }
        self.rip = offset;
        Ok(())
    }

    /// Common tail of gate delivery: TF, NT, VM, RF (and IF for interrupt
    /// gates) clear, CS and CPL from the handler's code segment (SDM Vol. 3A 6.12.1.3).
    fn enter_handler(&mut self, old_flags: u64, trap: bool, sel: u16, d: &Desc, cpl: u8) {
        let clear =
            rflags::TF | rflags::NT | rflags::VM | rflags::RF | if trap { 0 } else { rflags::IF };
        self.flags.bits = old_flags & !clear;
        self.flags.lazy = 0;
        self.set_cs(sel, d, cpl);
    }

    /// IA-32e mode: 16-byte gates, optional IST, 64-bit frame always with SS:RSP,
    /// stack aligned to 16 (SDM Vol. 3A 6.14).
    fn deliver_long(&mut self, bus: &mut dyn Bus, vec: u8, src: Source, error: Option<u32>) -> Res {
        let off = vec as u64 * 16;
        let idt_err = Fault::gp(Self::idt_error(vec, src));
        if off + 15 > self.idtr.limit as u64 {
            return Err(idt_err);
        }
        let lo = self.read_sys(bus, self.idtr.base + off, 4)? as u32;
        let hi = self.read_sys(bus, self.idtr.base + off + 4, 4)? as u32;
        let upper = self.read_sys(bus, self.idtr.base + off + 8, 4)?;
        let gate = Desc { lo, hi };
        let typ = gate.typ();
        if gate.s() || !matches!(typ, 14 | 15) {
            return Err(idt_err);
        }
        if matches!(src, Source::Soft) && gate.dpl() < self.cpl {
            return Err(idt_err);
        }
        if !gate.present() {
            return Err(Fault::code(vector::NP, Self::idt_error(vec, src)));
        }
        let ext = Self::ext(src);
        let sel = gate.gate_selector();
        if sel & !3 == 0 {
            return Err(Fault::gp(ext));
        }
        let d = self
            .read_desc(bus, sel)
            .map_err(|_| Fault::gp((sel as u32 & 0xFFFC) | ext))?;
        if !d.is_code() || !d.long() || d.hi & (1 << 22) != 0 || d.dpl() > self.cpl {
            return Err(Fault::gp((sel as u32 & 0xFFFC) | ext));
        }
        if !d.present() {
            return Err(Fault::code(vector::NP, (sel as u32 & 0xFFFC) | ext));
        }
        let target = (gate.gate_offset() as u64) | (upper << 32);
        if !super::mmu::canonical(target) {
            return Err(Fault::gp(ext));
        }
        let ist = (hi & 7) as u64;
        let new_cpl = if d.conforming() { self.cpl } else { d.dpl() };
        let old_flags = self.flags.get();
        let old_ss = self.seg[SS].selector as u64;
        let old_rsp = self.gpr[4];
        let old_cs = self.seg[CS].selector as u64;
        let old_rip = self.rip;
        let mut rsp = if ist != 0 {
            self.read_sys(bus, self.tr.base + 0x24 + (ist - 1) * 8, 8)?
        } else if new_cpl != self.cpl {
            self.tss_stack(bus, new_cpl)?.1
        } else {
            old_rsp
        };
        if old_flags & rflags::VM != 0 {
            return Err(Fault::gp(sel as u32 & 0xFFFC));
        }
        rsp &= !0xF;
        let mut frame = vec![old_ss, old_rsp, old_flags, old_cs, old_rip];
        if let Some(e) = error {
            frame.push(e as u64);
        }
        for v in frame {
            rsp = rsp.wrapping_sub(8);
            if !super::mmu::canonical(rsp) {
                return Err(Fault::code(vector::SS, 0));
            }
            self.write_lin_slow(bus, rsp, 8, v, false)?;
        }
        if new_cpl != self.cpl {
            self.seg[SS] = Segment {
                selector: new_cpl as u16,
                base: 0,
                limit: 0,
                attr: attr::DB | attr::P | attr::S | attr::TYPE_RW,
            };
        }
        self.gpr[4] = rsp;
        self.enter_handler(old_flags, typ & 1 != 0, sel, &d, new_cpl);
        self.rip = target;
        Ok(())
    }
}
