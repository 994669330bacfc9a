//! The machine as gdbstub's `Target`: registers in the session's layout
//! (`regs`), memory by linear address through the guest's page tables
//! without side effects (`Cpu::debug_read`/`debug_write`), breakpoints and
//! watchpoints kept by the session and armed in the CPU on resume.

use super::regs::{Regs, X86Vx86, GPR_ORDER_32, GPR_ORDER_64, SEG_ORDER, XML_32, XML_64};
use crate::cpu::debug::{WatchKind, Watchpoint};
use crate::cpu::state::{attr, rflags, CS, FS, GS, SS};
use crate::cpu::Segment;
use crate::machine::Machine;
use gdbstub::common::Signal;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};

/// Most breakpoints or watchpoints of each kind one session may set (a
/// peer cannot grow the lists without bound).
const MAX_POINTS: usize = 256;
/// EFAULT, gdb's "Cannot access memory".
const EFAULT: u8 = 14;

impl Machine {
    fn session_long(&self) -> bool {
        self.gdb.as_ref().is_some_and(|g| g.long)
    }

    /// The CPU's registers in gdb's terms.
    pub(crate) fn gdb_registers(&self, long: bool) -> Regs {
        let c = &self.cpu;
        let mut r = Regs {
            long,
            rip: c.rip,
            eflags: c.rflags() as u32,
            mxcsr: c.fpu.mxcsr,
            fs_base: c.seg[FS].base,
            gs_base: c.seg[GS].base,
            k_gs_base: c.msr.kernel_gs_base,
            // With a local APIC, CR8 is the TPR's priority class (SDM Vol.
            // 3A 11.8.6.1); the CPU's own copy is only used without one.
            cr: [c.cr0, c.cr2, c.cr3, c.cr4, self.cr8()],
            efer: c.efer,
            xmm: c.fpu.xmm,
            ..Default::default()
        };
        let order: &[usize] = if long { &GPR_ORDER_64 } else { &GPR_ORDER_32 };
        for (dst, &src) in r.gpr.iter_mut().zip(order) {
            *dst = c.gpr[src];
        }
        for (dst, &src) in r.seg.iter_mut().zip(&SEG_ORDER) {
            *dst = c.seg[src].selector as u32;
        }
        let f = &c.fpu;
        let top = (f.fsw >> 11) & 7;
        for (i, st) in r.st.iter_mut().enumerate() {
            let p = &f.st[((top as usize) + i) & 7];
            st[..8].copy_from_slice(&p.signif.to_le_bytes());
            st[8..].copy_from_slice(&p.sign_exp.to_le_bytes());
        }
        r.fpu = [
            f.fcw as u32,
            f.fsw as u32,
            f.ftw as u32,
            f.fcs as u32,
            f.fip as u32,
            f.fds as u32,
            f.fdp as u32,
            f.fop as u32,
        ];
        r
    }

    /// CR8 as the guest reads it: the local APIC's TPR[7:4] when the
    /// machine has one, else the CPU's register.
    fn cr8(&self) -> u64 {
        match &self.plat.apic {
            Some(a) => u64::from(a.lapic.tpr() >> 4),
            None => self.cpu.cr8,
        }
    }

    /// Writes gdb's register values back (a `G` packet).
    fn gdb_set_registers(&mut self, r: &Regs) {
        let c = &mut self.cpu;
        if r.long {
            for (&dst, &v) in GPR_ORDER_64.iter().zip(&r.gpr) {
                c.gpr[dst] = v;
            }
            c.rip = r.rip;
            c.msr.kernel_gs_base = r.k_gs_base;
            let icount = c.icount;
            if !crate::cpu::Bus::apic_set_tpr(&mut self.plat, ((r.cr[4] & 0xF) << 4) as u8, icount)
            {
                c.cr8 = r.cr[4];
            }
            // A lower TPR may unmask a pending interrupt.
            c.intr_recheck = true;
        } else {
            for (&dst, &v) in GPR_ORDER_32.iter().zip(&r.gpr) {
                c.gpr[dst] = v & 0xFFFF_FFFF;
            }
            c.rip = r.rip & 0xFFFF_FFFF;
        }
        c.flags
            .set(r.eflags as u64 & !(rflags::VM | rflags::RF) | c.rflags() & rflags::VM);
        c.cr0 = r.cr[0];
        c.cr2 = r.cr[1];
        c.cr3 = r.cr[2];
        c.cr4 = r.cr[3];
        c.efer = r.efer;
        let f = &mut c.fpu;
        f.fcw = r.fpu[0] as u16;
        f.fsw = r.fpu[1] as u16;
        f.ftw = r.fpu[2] as u16;
        f.fcs = r.fpu[3] as u16;
        f.fip = r.fpu[4] as u64;
        f.fds = r.fpu[5] as u16;
        f.fdp = r.fpu[6] as u64;
        f.fop = r.fpu[7] as u16;
        let top = (f.fsw >> 11) & 7;
        for (i, st) in r.st.iter().enumerate() {
            let p = &mut f.st[((top as usize) + i) & 7];
            let mut lo = [0u8; 8];
            lo.copy_from_slice(&st[..8]);
            p.signif = u64::from_le_bytes(lo);
            p.sign_exp = u16::from_le_bytes([st[8], st[9]]);
        }
        let n = if r.long { 16 } else { 8 };
        f.xmm[..n].copy_from_slice(&r.xmm[..n]);
        f.mxcsr = r.mxcsr;
        for (&s, &sel) in SEG_ORDER.iter().zip(&r.seg) {
            let sel = sel as u16;
            if self.cpu.seg[s].selector != sel {
                self.gdb_load_segment(s, sel);
            }
        }
        self.cpu.seg[FS].base = r.fs_base;
        self.cpu.seg[GS].base = r.gs_base;
        self.cpu.update_mode();
        self.cpu.tlb.flush_all();
    }

    /// A segment register changed by the debugger: in real and V86 mode
    /// the base follows the selector; in protected mode the descriptor is
    /// read (without setting its accessed bit). A selector whose descriptor
    /// cannot be read changes only the selector.
    fn gdb_load_segment(&mut self, s: usize, sel: u16) {
        let c = &mut self.cpu;
        if !c.pmode {
            c.load_seg_real(s, sel);
            return;
        }
        let (base, limit) = if sel & 4 != 0 {
            (c.ldtr.base, c.ldtr.limit as u64)
        } else {
            (c.gdtr.base, c.gdtr.limit as u64)
        };
        let index = (sel & !7) as u64;
        let mut d = [0u8; 8];
        let ok = (sel & !3 != 0 || s == CS || s == SS)
            && index + 7 <= limit
            && c.debug_read(base.wrapping_add(index), &mut d) == 8;
        if ok {
            let lo = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            let hi = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            c.seg[s] = crate::cpu::state::descriptor_to_segment(sel, lo, hi);
        } else if sel & !3 == 0 {
            // A null selector: an unusable segment.
            c.seg[s] = Segment {
                selector: sel,
                attr: c.seg[s].attr & !attr::P,
                ..c.seg[s]
            };
        } else {
            c.seg[s].selector = sel;
        }
    }

    fn points(&mut self) -> Option<&mut crate::cpu::debug::DebugState> {
        self.gdb.as_mut().map(|g| &mut g.armed)
    }
}

impl Target for Machine {
    type Arch = X86Vx86;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_target_description_xml_override(
        &mut self,
    ) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }
}

impl TargetDescriptionXmlOverride for Machine {
    fn target_description_xml(
        &self,
        _annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let xml = if self.session_long() { XML_64 } else { XML_32 }.as_bytes();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(xml.len());
        let end = start.saturating_add(length.min(buf.len())).min(xml.len());
        let part = xml.get(start..end).unwrap_or_default();
        if let Some(dst) = buf.get_mut(..part.len()) {
            dst.copy_from_slice(part);
        }
        Ok(part.len())
    }
}

impl SingleThreadBase for Machine {
    fn read_registers(&mut self, regs: &mut Regs) -> TargetResult<(), Self> {
        *regs = self.gdb_registers(self.session_long());
        Ok(())
    }

    fn write_registers(&mut self, regs: &Regs) -> TargetResult<(), Self> {
        if regs.long != self.session_long() {
            return Err(TargetError::NonFatal);
        }
        self.gdb_set_registers(regs);
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let n = self.cpu.debug_read(start, data);
        if n == 0 && !data.is_empty() {
            return Err(TargetError::Errno(EFAULT));
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        if self.cpu.debug_write(start, data) {
            Ok(())
        } else {
            Err(TargetError::Errno(EFAULT))
        }
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for Machine {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        if let Some(p) = self.points() {
            p.step = false;
        }
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Machine {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        if let Some(p) = self.points() {
            p.step = true;
        }
        Ok(())
    }
}

impl Breakpoints for Machine {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

/// Adds `addr` to a breakpoint list (no duplicates, bounded).
fn add_point(list: &mut Vec<u64>, addr: u64) -> bool {
    if !list.contains(&addr) {
        if list.len() >= MAX_POINTS {
            return false;
        }
        list.push(addr);
    }
    true
}

fn remove_point(list: &mut Vec<u64>, addr: u64) -> bool {
    let before = list.len();
    list.retain(|&a| a != addr);
    list.len() != before
}

impl SwBreakpoint for Machine {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points()
            .is_some_and(|p| add_point(&mut p.sw_breakpoints, addr)))
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points()
            .is_some_and(|p| remove_point(&mut p.sw_breakpoints, addr)))
    }
}

impl HwBreakpoint for Machine {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points()
            .is_some_and(|p| add_point(&mut p.hw_breakpoints, addr)))
    }
    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .points()
            .is_some_and(|p| remove_point(&mut p.hw_breakpoints, addr)))
    }
}

fn watch_kind(k: gdbstub::target::ext::breakpoints::WatchKind) -> WatchKind {
    use gdbstub::target::ext::breakpoints::WatchKind as G;
    match k {
        G::Write => WatchKind::Write,
        G::Read => WatchKind::Read,
        G::ReadWrite => WatchKind::Access,
    }
}

impl HwWatchpoint for Machine {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: gdbstub::target::ext::breakpoints::WatchKind,
    ) -> TargetResult<bool, Self> {
        let wp = Watchpoint {
            addr,
            len,
            kind: watch_kind(kind),
        };
        Ok(self.points().is_some_and(|p| {
            if len == 0 || p.watchpoints.len() >= MAX_POINTS {
                return false;
            }
            if !p.watchpoints.contains(&wp) {
                p.watchpoints.push(wp);
            }
            true
        }))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: gdbstub::target::ext::breakpoints::WatchKind,
    ) -> TargetResult<bool, Self> {
        let wp = Watchpoint {
            addr,
            len,
            kind: watch_kind(kind),
        };
        Ok(self.points().is_some_and(|p| {
            let before = p.watchpoints.len();
            p.watchpoints.retain(|w| *w != wp);
            p.watchpoints.len() != before
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::devices::lapic::{reg, DEFAULT_BASE};
    use crate::machine::{Machine, MachineConfig};

    /// With a local APIC, gdb's cr8 is the TPR's class both ways (the CPU's
    /// own copy goes stale there); without one it is the CPU's register.
    #[test]
    fn gdb_cr8_is_the_apic_tpr_class() {
        let mut cfg = MachineConfig {
            ram: 16 << 20,
            ..MachineConfig::default()
        };
        cfg.features.apic = true;
        let mut m = Machine::new(cfg).expect("machine");
        let tpr = DEFAULT_BASE + u64::from(reg::TPR);
        crate::cpu::Bus::mmio_write(&mut m.plat, tpr, 4, 0x70, 0);
        m.cpu.cr8 = 2;
        let mut r = m.gdb_registers(true);
        assert_eq!(r.cr[4], 7, "read from the TPR");
        r.cr[4] = 0xC;
        m.gdb_set_registers(&r);
        assert_eq!(crate::cpu::Bus::mmio_read(&mut m.plat, tpr, 4, 0), 0xC0);

        let mut plain = Machine::new(MachineConfig {
            ram: 16 << 20,
            ..MachineConfig::default()
        })
        .expect("machine");
        plain.cpu.cr8 = 5;
        let mut r = plain.gdb_registers(true);
        assert_eq!(r.cr[4], 5);
        r.cr[4] = 6;
        plain.gdb_set_registers(&r);
        assert_eq!(plain.cpu.cr8, 6);
    }
}
