//! What a debugger (the gdb stub, `crate::gdb`) needs from the CPU:
//! breakpoints and watchpoints that do not touch guest memory or guest
//! debug registers, single-stepping, and side-effect-free access to guest
//! memory by linear address.
//!
//! Cost when nothing is armed: [`Cpu::debug`] is `None` and `Cpu::run` takes
//! its normal path (one test per call, not per block); the TLB and the slow
//! memory paths test the same `Option`. When something is armed, `Cpu::run`
//! hands over to [`Cpu::run_debug`], which runs whole blocks as usual unless
//! a breakpoint lies inside the block (or a watchpoint is armed): then it
//! runs the block one instruction at a time, so a breakpoint inside a block
//! stops exactly before its instruction and a watchpoint exactly after the
//! accessing one. Watched pages get no fast TLB tags (see `Cpu::translate`),
//! so every access to them reaches [`Cpu::debug_access`].
//!
//! Single-stepping masks interrupts as QEMU's gdb stub does by default
//! (SSTEP_NOIRQ): a step runs the next instruction of the interrupted code,
//! not an interrupt handler; only a halted CPU takes its interrupt (else a
//! step could never complete).

use super::mmu::Access;
use super::state::{cr0, cr4, efer, rflags, CS};
use super::{exception, vector, Bus, Cpu, Exit};

/// What a watchpoint watches (gdb's Z2, Z3, Z4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    Write,
    Read,
    Access,
}

/// A watched linear range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watchpoint {
    pub addr: u64,
    pub len: u64,
    pub kind: WatchKind,
}

impl Watchpoint {
    fn overlaps(&self, start: u64, len: u64) -> bool {
        start < self.addr.wrapping_add(self.len) && start.wrapping_add(len) > self.addr
    }
}

/// Why the CPU stopped for the debugger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugStop {
    /// About to execute the instruction at a breakpoint (`hw`: set with Z1).
    Breakpoint { hw: bool },
    /// The instruction just executed accessed a watched range.
    Watch { kind: WatchKind, addr: u64 },
    /// One instruction was executed (or an interrupt woke a halted CPU).
    Step,
}

/// Breakpoints and watchpoints the debugger armed, and what stopped the CPU.
/// Addresses are linear (CS base included), as gdb and QEMU use them.
#[derive(Clone, Debug, Default)]
pub struct DebugState {
    pub sw_breakpoints: Vec<u64>,
    pub hw_breakpoints: Vec<u64>,
    pub watchpoints: Vec<Watchpoint>,
    /// Execute exactly one instruction, then stop.
    pub step: bool,
    /// Set when the CPU stopped for the debugger; `run` returns at once
    /// while it is set.
    pub hit: Option<DebugStop>,
}

impl DebugState {
    /// True when nothing would make the CPU stop: the CPU runs without it.
    pub fn is_idle(&self) -> bool {
        self.sw_breakpoints.is_empty()
            && self.hw_breakpoints.is_empty()
            && self.watchpoints.is_empty()
            && !self.step
            && self.hit.is_none()
    }

    fn breakpoint(&self, lin: u64) -> Option<DebugStop> {
        if self.sw_breakpoints.contains(&lin) {
            Some(DebugStop::Breakpoint { hw: false })
        } else if self.hw_breakpoints.contains(&lin) {
            Some(DebugStop::Breakpoint { hw: true })
        } else {
            None
        }
    }

    /// Any breakpoint in the linear range [start, start + len)?
    fn breakpoint_in(&self, start: u64, len: u64) -> bool {
        self.sw_breakpoints
            .iter()
            .chain(&self.hw_breakpoints)
            .any(|&b| b.wrapping_sub(start) < len)
    }

    /// Which fast TLB tags a linear page may have: (read, write). A watched
    /// page has none for the watched kind, so each access takes the slow
    /// path and is checked there.
    pub(crate) fn fast_tags(&self, lpage: u64) -> (bool, bool) {
        let (mut r, mut w) = (true, true);
        for wp in self
            .watchpoints
            .iter()
            .filter(|wp| wp.overlaps(lpage, 0x1000))
        {
            match wp.kind {
                WatchKind::Write => w = false,
                WatchKind::Read | WatchKind::Access => (r, w) = (false, false),
            }
        }
        (r, w)
    }
}

impl Cpu {
    /// Linear address of CS:RIP without limit checks (for breakpoints).
    pub fn pc_linear(&self) -> u64 {
        if self.long64 {
            self.rip
        } else {
            self.seg[CS].base.wrapping_add(self.rip) & 0xFFFF_FFFF
        }
    }

    /// A data access by the guest to linear [lin, lin + size) that passed
    /// its checks: records a watchpoint hit and ends the block after this
    /// instruction. Called only from the slow access paths.
    pub(crate) fn debug_access(&mut self, lin: u64, size: u64, acc: Access) {
        let Some(d) = self.debug.as_mut() else {
            return;
        };
        if d.hit.is_some() {
            return;
        }
        let write = acc == Access::Write;
        let hit = d.watchpoints.iter().find(|wp| {
            let kind_ok = match wp.kind {
                WatchKind::Write => write,
                WatchKind::Read => !write,
                WatchKind::Access => true,
            };
            kind_ok && wp.overlaps(lin, size)
        });
        if let Some(wp) = hit {
            d.hit = Some(DebugStop::Watch {
                kind: wp.kind,
                addr: wp.addr,
            });
            self.stop_block = true;
        }
    }

    /// `run` while the debugger has something armed (see the module doc).
    #[inline(never)]
    pub(super) fn run_debug(&mut self, bus: &mut dyn Bus, until: u64) -> Exit {
        self.stop_request = false;
        let step = self.debug.as_ref().is_some_and(|d| d.step);
        loop {
            if self.debug.as_ref().is_some_and(|d| d.hit.is_some()) {
                return Exit::Stop;
            }
            if self.stop_request {
                if self.triple_fault {
                    self.triple_fault = false;
                    return Exit::TripleFault;
                }
                return Exit::Stop;
            }
            if !step && self.icount >= until {
                return Exit::Budget;
            }
            if !self.shadow && (!step || self.halted) {
                let mut delivered = false;
                if self.nmi_pending && !self.nmi_blocked {
                    self.nmi_pending = false;
                    self.nmi_blocked = true;
                    self.halted = false;
                    delivered = true;
                    if let Err(e) =
                        self.deliver_event(bus, vector::NMI, exception::Source::External)
                    {
                        return e;
                    }
                } else if self.flags.bits & rflags::IF != 0 && bus.intr_pending() {
                    let v = bus.intr_ack();
                    self.halted = false;
                    delivered = true;
                    if let Err(e) = self.deliver_event(bus, v, exception::Source::External) {
                        return e;
                    }
                }
                if delivered && step {
                    self.set_hit(DebugStop::Step);
                    return Exit::Stop;
                }
            }
            if self.halted {
                return Exit::Halted;
            }
            if let Err(e) = self.step_block_debug(bus, step) {
                return e;
            }
            if step {
                self.set_hit(DebugStop::Step);
                return Exit::Stop;
            }
        }
    }

    fn set_hit(&mut self, why: DebugStop) {
        if let Some(d) = self.debug.as_mut() {
            if d.hit.is_none() {
                d.hit = Some(why);
            }
        }
    }

    /// One block (or one instruction when stepping) with breakpoint checks.
    fn step_block_debug(&mut self, bus: &mut dyn Bus, step: bool) -> Result<(), Exit> {
        let in_shadow = self.shadow;
        self.shadow = false;
        self.stop_block = false;
        if !step {
            let bp = self
                .debug
                .as_ref()
                .and_then(|d| d.breakpoint(self.pc_linear()));
            if let Some(why) = bp {
                // Not executed: the shadow still covers it when resumed.
                self.shadow = in_shadow;
                self.set_hit(why);
                return Ok(());
            }
        }
        let ops = match self.fetch_block(bus) {
            Ok(ops) => ops,
            Err(f) => {
                return self.deliver_event(bus, f.vector, exception::Source::Fault(f.error()))
            }
        };
        self.stats.blocks_run += 1;
        if step || in_shadow || self.flags.bits & rflags::TF != 0 {
            return self.step_one(bus, &ops);
        }
        let len: u64 = ops.iter().map(|op| op.len as u64).sum();
        let exact = self
            .debug
            .as_ref()
            .is_some_and(|d| !d.watchpoints.is_empty() || d.breakpoint_in(self.pc_linear(), len));
        for (i, op) in ops.iter().enumerate() {
            if exact && i > 0 {
                let bp = self
                    .debug
                    .as_ref()
                    .and_then(|d| d.breakpoint(self.pc_linear()));
                if let Some(why) = bp {
                    self.set_hit(why);
                    return Ok(());
                }
            }
            let start = self.rip;
            self.rip = start.wrapping_add(op.len as u64) & self.ip_mask;
            // A fused op runs the Jcc after it too: alone, each stops exactly.
            let exec = if exact && op.pfx & super::decode::PFX_FUSED != 0 {
                super::exec::alu::unfused(op)
            } else {
                op.exec
            };
            if let Err(f) = exec(self, bus, op) {
                self.rip = start;
                return self.deliver_event(bus, f.vector, exception::Source::Fault(f.error()));
            }
            self.icount += 1;
            if self.stop_block {
                break;
            }
        }
        Ok(())
    }

    /// Translates a linear address as the CPU would, for the debugger:
    /// no accessed/dirty bits set, no fault, no TLB fill, no permission
    /// check (a debugger reads supervisor pages too). None when unmapped.
    pub fn debug_translate(&self, lin: u64) -> Option<u64> {
        let lin = if self.efer & efer::LMA != 0 {
            lin
        } else {
            lin & 0xFFFF_FFFF
        };
        let phys = if self.cr0 & cr0::PG == 0 {
            lin
        } else if self.cr4 & cr4::PAE == 0 {
            // 32-bit paging (SDM Vol. 3A 4.3).
            let pde = self.debug_phys_u64((self.cr3 & 0xFFFF_F000) | ((lin >> 20) & 0xFFC), 4)?;
            if pde & 1 == 0 {
                return None;
            }
            if pde & 0x80 != 0 && self.cr4 & cr4::PSE != 0 {
                (pde & 0xFFC0_0000) | ((pde & 0x1F_E000) << 19) | (lin & 0x3F_FFFF)
            } else {
                let pte = self.debug_phys_u64((pde & 0xFFFF_F000) | ((lin >> 10) & 0xFFC), 4)?;
                if pte & 1 == 0 {
                    return None;
                }
                (pte & 0xFFFF_F000) | (lin & 0xFFF)
            }
        } else {
            // PAE (SDM 4.4) or 4-level (SDM 4.5) paging.
            const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
            let (mut table, mut level) = if self.efer & efer::LMA != 0 {
                (self.cr3 & ADDR, 4)
            } else {
                let pdpte =
                    self.debug_phys_u64((self.cr3 & 0xFFFF_FFE0) | ((lin >> 27) & 0x18), 8)?;
                if pdpte & 1 == 0 {
                    return None;
                }
                (pdpte & ADDR, 2)
            };
            loop {
                let shift = 12 + 9 * (level - 1);
                let e = self.debug_phys_u64(table | ((lin >> shift) & 0x1FF) << 3, 8)?;
                if e & 1 == 0 {
                    return None;
                }
                if level == 1 || (e & 0x80 != 0 && level <= 3) {
                    let mask = (1u64 << shift) - 1;
                    break (e & ADDR & !mask) | (lin & mask);
                }
                table = e & ADDR;
                level -= 1;
            }
        };
        Some(phys & self.a20_mask)
    }

    /// A little-endian value of `size` bytes from guest RAM or ROM (page
    /// tables), None for device memory: the debugger never touches devices.
    fn debug_phys_u64(&self, addr: u64, size: u64) -> Option<u64> {
        let addr = addr & self.a20_mask;
        let mut v = 0u64;
        for i in 0..size {
            v |= (self.mem.read_u8(addr + i)? as u64) << (8 * i);
        }
        Some(v)
    }

    /// Reads guest memory at linear `lin` for the debugger into `buf`;
    /// returns how many bytes were readable (stops at an unmapped page or
    /// device memory).
    pub fn debug_read(&self, lin: u64, buf: &mut [u8]) -> usize {
        for (i, b) in buf.iter_mut().enumerate() {
            let byte = self
                .debug_translate(lin.wrapping_add(i as u64))
                .and_then(|p| self.mem.read_u8(p));
            match byte {
                Some(v) => *b = v,
                None => return i,
            }
        }
        buf.len()
    }

    /// Writes guest RAM at linear `lin` for the debugger (ROM and device
    /// memory are refused); blocks decoded from the bytes are dropped.
    /// Returns false, having written nothing, when any byte is not RAM.
    pub fn debug_write(&mut self, lin: u64, data: &[u8]) -> bool {
        let mut phys = Vec::with_capacity(data.len());
        for i in 0..data.len() as u64 {
            match self.debug_translate(lin.wrapping_add(i)) {
                Some(p) if self.mem.is_ram(p) => phys.push(p),
                _ => return false,
            }
        }
        for (&p, &b) in phys.iter().zip(data) {
            self.mem.write_u8(p, b);
            self.invalidate_phys(p, 1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestMemory;

    fn put32(cpu: &mut Cpu, addr: u64, v: u32) {
        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
            cpu.mem.write_u8(addr + i as u64, b);
        }
    }

    fn get32(cpu: &Cpu, addr: u64) -> u32 {
        let b: Vec<u8> = (0..4)
            .map(|i| cpu.mem.read_u8(addr + i).unwrap_or(0))
            .collect();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// 32-bit paging: 0x400000 -> 0x5000; the debugger reads and writes
    /// through it and leaves the accessed/dirty bits alone.
    #[test]
    fn debug_access_walks_page_tables_without_side_effects() {
        let mut cpu = Cpu::new(GuestMemory::new_flat(4 << 20).expect("memory"));
        put32(&mut cpu, 0x1000 + 4, 0x2000 | 1 | 2); // PDE 1: present, writable
        put32(&mut cpu, 0x2000, 0x5000 | 1 | 2); // PTE 0
        put32(&mut cpu, 0x5000, 0xDEAD_BEEF);
        cpu.cr3 = 0x1000;
        cpu.cr0 |= cr0::PE | cr0::PG;
        cpu.update_mode();
        let mut buf = [0u8; 4];
        assert_eq!(cpu.debug_read(0x40_0000, &mut buf), 4);
        assert_eq!(u32::from_le_bytes(buf), 0xDEAD_BEEF);
        assert!(cpu.debug_write(0x40_0002, &[0x34, 0x12]));
        assert_eq!(get32(&cpu, 0x5000), 0x1234_BEEF);
        assert_eq!(get32(&cpu, 0x1004), 0x2003, "PDE: no accessed bit");
        assert_eq!(get32(&cpu, 0x2000), 0x5003, "PTE: no accessed or dirty bit");
        // Not present: nothing read, nothing written, no fault recorded.
        assert_eq!(cpu.debug_read(0x80_0000, &mut buf), 0);
        assert!(!cpu.debug_write(0x80_0000, &[1]));
        // A read running into an unmapped page stops there.
        let mut long = [0u8; 8];
        assert_eq!(cpu.debug_read(0x40_0FFC, &mut long), 4);
        assert_eq!(cpu.cr2, 0);
    }

    #[test]
    fn watched_pages_lose_their_fast_tags() {
        let d = DebugState {
            watchpoints: vec![Watchpoint {
                addr: 0x1FFE,
                len: 4,
                kind: WatchKind::Write,
            }],
            ..Default::default()
        };
        assert_eq!(d.fast_tags(0x1000), (true, false));
        assert_eq!(
            d.fast_tags(0x2000),
            (true, false),
            "the range crosses into it"
        );
        assert_eq!(d.fast_tags(0x3000), (true, true));
        assert!(!d.is_idle());
        assert!(DebugState::default().is_idle());
    }
}
