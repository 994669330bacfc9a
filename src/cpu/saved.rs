//! The CPU's architectural state as plain data, apart from its caches, for
//! snapshots (`crate::snapshot`). `Cpu` keeps registers beside the TLB, the
//! block and jump caches, statistics and the memory handle; [`CpuState`]
//! copies out only what the SDM defines (plus vx86's pending-event latches),
//! and [`Cpu::load_state`] puts it back and drops every cache, which the run
//! loop then rebuilds from guest memory.

use super::fpu::FpuState;
use super::state::{DescTable, Segment};
use super::{Cpu, Msrs};
use serde::{Deserialize, Serialize};

/// Everything a restored CPU needs to continue exactly where it stopped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CpuState {
    pub gpr: [u64; 16],
    pub rip: u64,
    /// RFLAGS with the lazily computed status flags materialized.
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS with their descriptor caches (SDM Vol. 3A 3.4.3).
    pub seg: [Segment; 6],
    pub gdtr: DescTable,
    pub idtr: DescTable,
    pub ldtr: Segment,
    pub tr: Segment,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub dr: [u64; 8],
    pub msr: Msrs,
    pub cpl: u8,
    /// x87, MMX and SSE registers, MXCSR.
    pub fpu: FpuState,
    pub ferr: bool,
    pub halted: bool,
    /// The interrupt shadow of STI / MOV SS (SDM Vol. 3A 6.8.3).
    pub shadow: bool,
    pub nmi_pending: bool,
    pub nmi_blocked: bool,
    pub a20_mask: u64,
    /// Retired instructions since power-on: the virtual clock in icount mode.
    pub icount: u64,
}

impl Cpu {
    /// The architectural state (between blocks: no instruction is half done).
    pub fn save_state(&self) -> CpuState {
        CpuState {
            gpr: self.gpr,
            rip: self.rip,
            rflags: self.flags.get(),
            seg: self.seg,
            gdtr: self.gdtr,
            idtr: self.idtr,
            ldtr: self.ldtr,
            tr: self.tr,
            cr0: self.cr0,
            cr2: self.cr2,
            cr3: self.cr3,
            cr4: self.cr4,
            cr8: self.cr8,
            efer: self.efer,
            dr: self.dr,
            msr: self.msr.clone(),
            cpl: self.cpl,
            fpu: self.fpu.clone(),
            ferr: self.ferr,
            halted: self.halted,
            shadow: self.shadow,
            nmi_pending: self.nmi_pending,
            nmi_blocked: self.nmi_blocked,
            a20_mask: self.a20_mask,
            icount: self.icount,
        }
    }

    /// Puts back a saved state; the TLB, block cache and jump cache are
    /// emptied (they describe the memory and mode this CPU had before).
    pub fn load_state(&mut self, s: &CpuState) {
        self.gpr = s.gpr;
        self.rip = s.rip;
        self.flags.set(s.rflags);
        self.seg = s.seg;
        self.gdtr = s.gdtr;
        self.idtr = s.idtr;
        self.ldtr = s.ldtr;
        self.tr = s.tr;
        self.cr0 = s.cr0;
        self.cr2 = s.cr2;
        self.cr3 = s.cr3;
        self.cr4 = s.cr4;
        self.cr8 = s.cr8;
        self.efer = s.efer;
        self.dr = s.dr;
        self.msr = s.msr.clone();
        self.cpl = s.cpl;
        self.fpu = s.fpu.clone();
        self.ferr = s.ferr;
        self.halted = s.halted;
        self.shadow = s.shadow;
        self.nmi_pending = s.nmi_pending;
        self.nmi_blocked = s.nmi_blocked;
        self.a20_mask = s.a20_mask;
        self.icount = s.icount;
        self.stop_block = false;
        self.stop_request = false;
        self.triple_fault = false;
        self.delivering = 0;
        self.update_mode();
        self.flush_caches();
    }

    /// Empties the TLB, the block cache and the jump cache.
    pub fn flush_caches(&mut self) {
        self.tlb.flush_all();
        self.cache.clear();
        self.jump
            .iter_mut()
            .for_each(|e| *e = super::decode::JumpEntry::default());
    }
}
