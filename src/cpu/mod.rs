//! The x86-64 CPU: architectural state, the block-cache run loop, and the
//! glue between the predecoded ops (`decode`), their handlers (`exec`), the
//! MMU (`mmu`) and exception delivery (`exception`).
//!
//! The CPU does not own devices. Port I/O and MMIO go through the [`Bus`]
//! trait, implemented by the machine; the interrupt controller's output is
//! sampled at block boundaries through [`Bus::intr_pending`].

pub mod block_cache;
pub mod cpuid;
pub mod debug;
pub mod decode;
pub mod exception;
pub mod exec;
pub mod flags;
pub mod fpu;
pub mod jit;
pub mod mmu;
pub mod saved;
pub mod seg;
pub mod simd;
pub mod state;
pub mod testbed;

use crate::memory::GuestMemory;
use block_cache::BlockCache;
use flags::Flags;
use mmu::Tlb;
use state::*;
pub use state::{DescTable, Segment};

/// Exception vectors (SDM Vol. 3A 6.15).
pub mod vector {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const MF: u8 = 16;
    pub const AC: u8 = 17;
    pub const MC: u8 = 18;
    pub const XM: u8 = 19;
}

/// A fault or trap raised by an instruction. Faults rewind RIP to the start of
/// the faulting instruction before delivery, so no partial state is visible.
///
/// Packed into 8 bytes with a `bool` niche so that `Result<(), Fault>`, the
/// return type of every handler, fits in one register (a 12-byte result went
/// through memory on every instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    has_error: bool,
    error_code: u32,
}

impl Fault {
    pub const fn new(vector: u8) -> Self {
        Fault {
            vector,
            has_error: false,
            error_code: 0,
        }
    }
    pub const fn code(vector: u8, error: u32) -> Self {
        Fault {
            vector,
            has_error: true,
            error_code: error,
        }
    }
    pub const fn with_error(vector: u8, error: Option<u32>) -> Self {
        match error {
            Some(e) => Self::code(vector, e),
            None => Self::new(vector),
        }
    }
    /// The error code pushed for this exception, if it has one.
    pub const fn error(&self) -> Option<u32> {
        if self.has_error {
            Some(self.error_code)
        } else {
            None
        }
    }
    pub const fn gp(error: u32) -> Self {
        Self::code(vector::GP, error)
    }
    pub const fn ud() -> Self {
        Self::new(vector::UD)
    }
}

const _: () = assert!(std::mem::size_of::<Result<(), Fault>>() == 8);

pub type Res<T = ()> = Result<T, Fault>;

/// What the CPU needs from the machine: ports, device memory, and the INTR line.
pub trait Bus {
    /// Port read; `now` is the CPU's retired-instruction count (virtual time).
    fn io_read(&mut self, port: u16, size: u8, now: u64) -> u32;
    fn io_write(&mut self, port: u16, size: u8, value: u32, now: u64);
    /// Read from a physical address that is not RAM or ROM; `now` as for ports.
    fn mmio_read(&mut self, addr: u64, size: u8, now: u64) -> u64;
    fn mmio_write(&mut self, addr: u64, size: u8, value: u64, now: u64);
    /// True while the interrupt controller asserts INTR.
    fn intr_pending(&mut self) -> bool;
    /// After a port write: the machine must act before the CPU goes on
    /// (an exit request, a reset, a re-planned timer, output to flush). The
    /// OUT/OUTS handlers then end the CPU's run at the next block boundary.
    fn needs_attention(&self) -> bool {
        false
    }
    /// The INTA cycle: the vector of the highest-priority pending interrupt.
    fn intr_ack(&mut self) -> u8;
    /// The local APIC's MSRs (IA32_APIC_BASE, IA32_TSC_DEADLINE, the latter
    /// in virtual nanoseconds): None when the machine has no APIC or the MSR
    /// is not the APIC's.
    fn apic_rdmsr(&mut self, _idx: u32) -> Option<u64> {
        None
    }
    /// Writes an APIC MSR; Some(false) when the value must raise #GP.
    fn apic_wrmsr(&mut self, _idx: u32, _value: u64, _now: u64) -> Option<bool> {
        None
    }
    /// A local APIC exists and is globally enabled (CPUID.1:EDX.APIC, SDM
    /// Vol. 3A 11.4.3).
    fn apic_present(&self) -> bool {
        false
    }
    /// The local APIC's task-priority register, which CR8 reads as its bits
    /// 7:4 (SDM Vol. 3A 11.8.6): None without a local APIC.
    fn apic_tpr(&mut self) -> Option<u8> {
        None
    }
    /// Writes the TPR through CR8; false without a local APIC.
    fn apic_set_tpr(&mut self, _tpr: u8, _now: u64) -> bool {
        false
    }
}

/// A bus with nothing on it: ports float high, no interrupts (tests, conformance).
pub struct NullBus;

impl Bus for NullBus {
    fn io_read(&mut self, _: u16, size: u8, _: u64) -> u32 {
        flags::size_mask(size) as u32
    }
    fn io_write(&mut self, _: u16, _: u8, _: u32, _: u64) {}
    fn mmio_read(&mut self, _: u64, size: u8, _: u64) -> u64 {
        flags::size_mask(size)
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64, _: u64) {}
    fn intr_pending(&mut self) -> bool {
        false
    }
    fn intr_ack(&mut self) -> u8 {
        0
    }
}

/// Why `Cpu::run` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The instruction budget ran out.
    Budget,
    /// HLT with interrupts disabled and no NMI possible, or HLT waiting for an interrupt.
    Halted,
    /// Triple fault: the machine must reset (or exit with `-no-reboot`).
    TripleFault,
    /// Something outside asked the CPU to stop (an I/O write requesting exit, reset).
    Stop,
}

/// Model-specific registers an OS touches (SDM Vol. 4).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Msrs {
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub fmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub tsc_aux: u64,
    pub pat: u64,
    pub mtrr_def_type: u64,
    pub mtrr: Vec<(u32, u64)>,
    pub misc_enable: u64,
    pub tsc_offset: u64,
}

/// Counters printed by `--stats`.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub blocks_run: u64,
    pub blocks_decoded: u64,
    /// Blocks retired by a write and revived when their bytes came back
    /// (block_cache module doc) instead of decoded again.
    pub blocks_revived: u64,
    pub tlb_misses: u64,
    pub smc_invalidations: u64,
}

pub struct Cpu {
    pub gpr: [u64; 16],
    pub rip: u64,
    pub flags: Flags,
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
    pub fpu: fpu::FpuState,
    /// The FERR# output (SDM Vol. 1 8.7, Appendix D): set when a waiting x87
    /// instruction finds an unmasked exception pending while CR0.NE=0. On a
    /// PC/AT the chipset turns FERR# into IRQ13: the machine should raise
    /// IRQ13 while this is set and clear it once raised (the guest's handler
    /// then clears the exception with FNCLEX and writes port F0h). vx86 then
    /// behaves as if IGNNE# were asserted: the instruction executes.
    pub ferr: bool,

    // Derived mode bits, recomputed by `update_mode`.
    /// Protected mode and not virtual-8086.
    pub pmode: bool,
    /// 64-bit mode (IA-32e active and CS.L).
    pub long64: bool,
    /// Code size in bits: 16, 32 or 64.
    pub code_bits: u8,
    /// Mask applied to the instruction pointer after each instruction.
    pub ip_mask: u64,
    /// Mask for the stack pointer (SS.B / 64-bit mode).
    pub sp_mask: u64,
    /// Which TLB set: 1 for CPL3 accesses, 0 for supervisor.
    pub mmu_user: usize,
    /// Block-cache key bits for the current mode (see `mode_key`).
    mode: u32,
    /// The jump cache's validity word for the current fetch context (see
    /// [`FetchContexts`]).
    fetch: FetchContexts,
    /// RIP-indexed cache in front of the block cache.
    jump: Vec<decode::JumpEntry>,

    pub halted: bool,
    /// Interrupt shadow after STI, MOV SS, POP SS (SDM Vol. 3A 6.8.3).
    pub shadow: bool,
    pub nmi_pending: bool,
    pub nmi_blocked: bool,
    /// Stop executing the current block after this instruction (SMC, mode change).
    pub stop_block: bool,
    /// Set by the machine to make `run` return at the next block boundary.
    pub stop_request: bool,
    /// The CPU touched the machine (a port, device memory, an APIC MSR), so
    /// the interrupt controller's INTR output may have changed: `run` asks
    /// the bus again at the next block boundary. Between such accesses the
    /// devices do not move while `run` runs, so asking once is enough.
    pub intr_recheck: bool,
    /// [`block_cache::BlockOps::id`] of the block being run (see
    /// `Cpu::invalidate_code`).
    running_block: usize,
    /// A triple fault happened inside an instruction handler (INT n delivery).
    pub triple_fault: bool,
    /// Record exceptions in `captured` instead of delivering them (snippet runs).
    pub capture_faults: bool,
    pub captured: Option<Fault>,
    pub a20_mask: u64,
    /// Retired instructions since reset (the virtual clock in icount mode).
    pub icount: u64,
    /// Guest time, the TSC's time base (a copy of the machine's clock).
    pub clock: crate::time::VirtualClock,
    /// Nesting of exception delivery, for double and triple faults.
    pub(crate) delivering: u8,

    pub mem: GuestMemory,
    pub tlb: Box<Tlb>,
    pub cache: BlockCache,
    pub stats: Stats,
    /// Run one instruction per block and cache nothing (`--no-block-cache`).
    pub no_block_cache: bool,
    /// CPUID features removed by `-cpu qemu64,-name`.
    pub features: cpuid::FeatureMask,
    /// Unimplemented instructions already logged (log each once).
    pub(crate) logged_ud: std::collections::HashSet<u64>,
    /// Breakpoints, watchpoints and stepping armed by a debugger (`debug`);
    /// None whenever nothing is armed, so the normal path runs.
    pub debug: Option<Box<debug::DebugState>>,
    /// The JIT tier (`--jit`); None runs every block in the interpreter.
    pub jit: Option<Box<jit::Jit>>,
    /// The fault of an op a compiled block called (see `jit::call_op`).
    pub(crate) jit_fault: Option<Fault>,
    /// `run_blocks`' budget and INTR sample, for a compiled block that runs
    /// itself again (a loop) instead of returning to the run loop.
    pub(crate) jit_until: u64,
    pub(crate) jit_intr: bool,
}

impl Cpu {
    pub fn new(mem: GuestMemory) -> Self {
        let ram_pages = (mem.ram_size() >> 12) as usize;
        let mut cpu = Cpu {
            gpr: [0; 16],
            rip: 0,
            flags: Flags::default(),
            seg: [Segment::default(); 6],
            gdtr: DescTable::default(),
            idtr: DescTable::default(),
            ldtr: Segment::default(),
            tr: Segment::default(),
            cr0: 0,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            dr: [0; 8],
            msr: Msrs::default(),
            cpl: 0,
            fpu: fpu::FpuState::default(),
            ferr: false,
            pmode: false,
            long64: false,
            code_bits: 16,
            ip_mask: 0xFFFF,
            sp_mask: 0xFFFF,
            mmu_user: 0,
            mode: 0,
            fetch: FetchContexts::default(),
            jump: vec![decode::JumpEntry::default(); decode::JUMP_CACHE],
            halted: false,
            shadow: false,
            nmi_pending: false,
            nmi_blocked: false,
            stop_block: false,
            stop_request: false,
            intr_recheck: false,
            running_block: 0,
            triple_fault: false,
            capture_faults: false,
            captured: None,
            a20_mask: !0,
            icount: 0,
            clock: Default::default(),
            delivering: 0,
            mem,
            tlb: Tlb::new(),
            cache: BlockCache::new(ram_pages),
            stats: Stats::default(),
            no_block_cache: false,
            features: Default::default(),
            logged_ud: Default::default(),
            debug: None,
            jit: None,
            jit_fault: None,
            jit_until: 0,
            jit_intr: false,
        };
        cpu.reset();
        cpu
    }

    /// Power-on / RESET state (SDM Vol. 3A 9.1.1, Table 9-1).
    pub fn reset(&mut self) {
        self.gpr = [0; 16];
        self.gpr[2] = 0x0000_0663; // EDX: family/model/stepping
        self.rip = 0xFFF0;
        self.flags = Flags::default();
        let data = Segment {
            selector: 0,
            base: 0,
            limit: 0xFFFF,
            attr: attr::P | attr::S | attr::TYPE_RW | attr::TYPE_ACCESSED,
        };
        self.seg = [data; 6];
        self.seg[CS] = Segment {
            selector: 0xF000,
            base: 0xFFFF_0000,
            limit: 0xFFFF,
            attr: attr::P | attr::S | attr::TYPE_CODE | attr::TYPE_RW | attr::TYPE_ACCESSED,
        };
        self.gdtr = DescTable {
            base: 0,
            limit: 0xFFFF,
        };
        self.idtr = DescTable {
            base: 0,
            limit: 0xFFFF,
        };
        self.ldtr = Segment {
            selector: 0,
            base: 0,
            limit: 0xFFFF,
            attr: attr::P | 2,
        };
        self.tr = Segment {
            selector: 0,
            base: 0,
            limit: 0xFFFF,
            attr: attr::P | 11,
        };
        self.cr0 = cr0::ET | cr0::CD | cr0::NW;
        self.cr2 = 0;
        self.cr3 = 0;
        self.cr4 = 0;
        self.cr8 = 0;
        self.efer = 0;
        self.dr = [0, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400];
        self.msr = Msrs {
            pat: 0x0007_0406_0007_0406,
            misc_enable: 1,
            ..Msrs::default()
        };
        self.cpl = 0;
        self.fpu = fpu::FpuState::default();
        self.ferr = false;
        self.halted = false;
        self.shadow = false;
        self.nmi_pending = false;
        self.nmi_blocked = false;
        self.delivering = 0;
        self.a20_mask = !0;
        self.update_mode();
        self.tlb.flush_all();
    }

    /// Recomputes the derived mode bits after CR0, EFER, CS, SS or RFLAGS.VM change.
    pub fn update_mode(&mut self) {
        let pe = self.cr0 & cr0::PE != 0;
        let vm = self.flags.bits & rflags::VM != 0;
        self.pmode = pe && !vm;
        let lma = self.efer & efer::LMA != 0;
        self.long64 = lma && self.seg[CS].long() && pe;
        self.code_bits = if self.long64 {
            64
        } else if self.pmode && self.seg[CS].big() {
            32
        } else {
            16
        };
        self.ip_mask = match self.code_bits {
            64 => u64::MAX,
            32 => 0xFFFF_FFFF,
            _ => 0xFFFF,
        };
        // The stack-address size is SS.B's in real mode too: protected mode
        // can leave a B=1 cache behind and real-mode loads of SS change only
        // the selector and base ("big real" stack; SDM Vol. 3A 9.9.2 has
        // software reload SS with a 16-bit descriptor first; Bochs does the
        // same, test-roms/sys/stack.asm). V86 loads always make B=0.
        self.sp_mask = if self.long64 {
            u64::MAX
        } else if !vm && self.seg[SS].big() {
            0xFFFF_FFFF
        } else {
            0xFFFF
        };
        if vm {
            self.cpl = 3;
        } else if !pe {
            self.cpl = 0;
        }
        self.mmu_user = (self.cpl == 3) as usize;
        self.mode = self.compute_mode_key();
        let ctx = (self.mode, self.seg[CS].base, self.seg[CS].limit);
        let moved = self.fetch.enter(ctx) as u64;
        let count = (self.tlb.jump_key >> mmu::JUMP_CTX_BITS).wrapping_add(moved);
        self.tlb.jump_key = (count << mmu::JUMP_CTX_BITS) | self.fetch.id;
    }

    /// The word a jump-cache entry must carry to be valid now: TLB flushes
    /// and fetch-context epochs so far, and the current context's slot
    /// ([`mmu::Tlb::jump_key`]).
    #[inline(always)]
    pub(crate) fn jump_gen(&self) -> u64 {
        self.tlb.jump_key
    }

    /// The mode bits that change how bytes decode and how handlers behave; part
    /// of the block-cache key.
    #[inline(always)]
    pub fn mode_key(&self) -> u32 {
        self.mode
    }

    fn compute_mode_key(&self) -> u32 {
        (self.code_bits as u32)
            | ((self.sp_mask == 0xFFFF) as u32) << 7
            | (self.cpl as u32) << 8
            | (self.pmode as u32) << 10
            | ((self.flags.bits & rflags::VM != 0) as u32) << 11
            | ((self.efer & efer::LMA != 0) as u32) << 12
    }

    // ---- registers ----

    /// Reads a register operand: 0..15 are the GPRs, 16..19 are AH, CH, DH, BH.
    #[inline(always)]
    pub fn reg(&self, r: u8, size: u8) -> u64 {
        if r >= 16 {
            return (self.gpr[(r & 3) as usize] >> 8) & 0xFF;
        }
        self.gpr[(r & 15) as usize] & flags::size_mask(size)
    }

    /// Writes a register operand with the SDM's merge rules: 32-bit writes
    /// zero-extend, 8/16-bit writes keep the upper bits (Vol. 1 3.4.1.1).
    #[inline(always)]
    pub fn set_reg(&mut self, r: u8, size: u8, v: u64) {
        if r >= 16 {
            let g = &mut self.gpr[(r & 3) as usize];
            *g = (*g & !0xFF00) | ((v & 0xFF) << 8);
            return;
        }
        let g = &mut self.gpr[(r & 15) as usize];
        *g = match size {
            1 => (*g & !0xFF) | (v & 0xFF),
            2 => (*g & !0xFFFF) | (v & 0xFFFF),
            4 => v & 0xFFFF_FFFF,
            _ => v,
        };
    }

    /// Reads general register `r` (0..15, never AH..BH) at a size known at
    /// compile time: one load and a constant mask, no branches.
    #[inline(always)]
    pub fn gpr_get<const SZ: u8>(&self, r: u8) -> u64 {
        self.gpr[(r & 15) as usize] & flags::size_mask(SZ)
    }

    /// Writes general register `r` (0..15) at a compile-time size, with the
    /// merge rules of [`Cpu::set_reg`].
    #[inline(always)]
    pub fn gpr_set<const SZ: u8>(&mut self, r: u8, v: u64) {
        let g = &mut self.gpr[(r & 15) as usize];
        *g = match SZ {
            1 => (*g & !0xFF) | (v & 0xFF),
            2 => (*g & !0xFFFF) | (v & 0xFFFF),
            4 => v & 0xFFFF_FFFF,
            _ => v,
        };
    }

    pub fn rflags(&self) -> u64 {
        self.flags.get()
    }

    pub fn iopl(&self) -> u8 {
        ((self.flags.bits >> 12) & 3) as u8
    }

    /// Loads a segment register in real mode or V86 mode (no descriptor).
    pub fn load_seg_real(&mut self, s: usize, sel: u16) {
        let keep = self.seg[s];
        self.seg[s] = Segment::real(sel, &keep);
        if self.flags.bits & rflags::VM != 0 {
            self.seg[s].limit = 0xFFFF;
            self.seg[s].attr =
                attr::P | attr::S | attr::TYPE_RW | attr::TYPE_ACCESSED | (3 << attr::DPL_SHIFT);
            if s == CS {
                self.seg[s].attr |= attr::TYPE_CODE;
            }
        }
        if s == CS || s == SS {
            self.update_mode();
        }
    }

    // ---- the run loop ----

    /// Runs blocks until `icount` reaches `until`, the CPU halts, or something
    /// stops it. Interrupts are sampled only between blocks.
    pub fn run(&mut self, bus: &mut dyn Bus, until: u64) -> Exit {
        if self.debug.is_some() {
            return self.run_debug(bus, until);
        }
        self.stop_request = false;
        while self.icount < until {
            if self.stop_request {
                if self.triple_fault {
                    self.triple_fault = false;
                    return Exit::TripleFault;
                }
                return Exit::Stop;
            }
            if !self.shadow {
                if self.nmi_pending && !self.nmi_blocked {
                    self.nmi_pending = false;
                    self.nmi_blocked = true;
                    self.halted = false;
                    if let Err(e) =
                        self.deliver_event(bus, vector::NMI, exception::Source::External)
                    {
                        return e;
                    }
                } else if self.flags.bits & rflags::IF != 0 && bus.intr_pending() {
                    let v = bus.intr_ack();
                    self.halted = false;
                    if let Err(e) = self.deliver_event(bus, v, exception::Source::External) {
                        return e;
                    }
                }
            }
            if self.halted {
                return Exit::Halted;
            }
            // What INTR says now stays true until the CPU touches the bus
            // (devices advance only between runs).
            self.intr_recheck = false;
            let intr = bus.intr_pending();
            if let Err(e) = self.run_blocks(bus, until, intr) {
                return e;
            }
        }
        Exit::Budget
    }

    /// Runs blocks back to back while nothing can change what happens at the
    /// boundary between them: returns to `run`'s checks when the budget is
    /// spent, a stop or NMI is pending, an interrupt shadow begins, the CPU
    /// halted or touched the bus, or INTR is asserted and IF is set.
    #[inline(always)]
    fn run_blocks(&mut self, bus: &mut dyn Bus, until: u64, intr: bool) -> Result<(), Exit> {
        self.jit_until = until;
        self.jit_intr = intr;
        loop {
            self.step_block(bus)?;
            if self.icount >= until
                || self.stop_request
                || self.shadow
                || self.halted
                || self.nmi_pending
                || self.intr_recheck
                || (intr && self.flags.bits & rflags::IF != 0)
            {
                return Ok(());
            }
        }
    }

    /// Finds (or decodes) the block at CS:RIP and runs it.
    #[inline(always)]
    fn step_block(&mut self, bus: &mut dyn Bus) -> Result<(), Exit> {
        // In an interrupt shadow (after STI, MOV SS, POP SS) only the one
        // shadowed instruction runs before interrupts are sampled again, so
        // `sti; nop; cli` opens a real interrupt window (SDM Vol. 3A 6.8.3).
        let in_shadow = self.shadow;
        self.shadow = false;
        self.stop_block = false;
        let ops = match self.fetch_block(bus) {
            Ok(ops) => ops,
            Err(f) => {
                return self.deliver_event(bus, f.vector, exception::Source::Fault(f.error()))
            }
        };
        self.stats.blocks_run += 1;
        self.running_block = ops.id();
        if in_shadow || self.flags.bits & rflags::TF != 0 {
            return self.step_one(bus, &ops);
        }
        if let Some(jit) = self.jit.as_mut() {
            match jit.lookup(ops.id(), &ops) {
                jit::Lookup::Run(f) => return self.run_compiled(bus, f, ops.as_ptr()),
                jit::Lookup::Compile => {
                    if let Some(f) = self.jit_compile(bus, &ops) {
                        return self.run_compiled(bus, f, ops.as_ptr());
                    }
                }
                jit::Lookup::Interpret => {}
            }
        }
        // The hot loop: per op the handler, RIP from the block's start (no
        // chain through the previous op's RIP), the count and the stop flag.
        let base = self.rip;
        let mask = self.ip_mask;
        for op in ops.iter() {
            self.rip = base.wrapping_add(op.end as u64) & mask;
            if let Err(f) = (op.exec)(self, bus, op) {
                self.rip = base.wrapping_add(op.end as u64).wrapping_sub(op.len as u64) & mask;
                return self.deliver_event(bus, f.vector, exception::Source::Fault(f.error()));
            }
            self.icount += 1;
            if self.stop_block {
                break;
            }
        }
        Ok(())
    }

    /// Runs only the first op of a block: the instruction in an interrupt
    /// shadow, or one instruction under TF with its single-step trap after it
    /// (SDM Vol. 3A 17.3.1.4).
    #[inline(never)]
    fn step_one(&mut self, bus: &mut dyn Bus, ops: &[decode::Op]) -> Result<(), Exit> {
        let single = self.flags.bits & rflags::TF != 0;
        let Some(op) = ops.first() else {
            return Ok(());
        };
        let start = self.rip;
        self.rip = start.wrapping_add(op.len as u64) & self.ip_mask;
        // A fused op would run the Jcc after it too: run the first instruction alone.
        let exec = if op.pfx & decode::PFX_FUSED != 0 {
            exec::alu::unfused(op)
        } else {
            op.exec
        };
        if let Err(f) = exec(self, bus, op) {
            self.rip = start;
            return self.deliver_event(bus, f.vector, exception::Source::Fault(f.error()));
        }
        self.icount += 1;
        if single {
            self.dr[6] |= 1 << 14;
            return self.deliver_event(bus, vector::DB, exception::Source::Trap);
        }
        Ok(())
    }
}

/// What the jump cache's RIP -> block mapping depends on besides the TLB and
/// the block cache: the mode key, CS base and CS limit (a "fetch context").
/// The last few contexts keep small ids, and a jump-cache entry records the
/// id it was filled under, so that switching between them (GRUB and
/// real-mode BIOS calls go protected -> real -> BIOS segment -> back on every
/// keyboard poll; an OS goes kernel <-> user) finds the entries of each still
/// there instead of emptying the whole jump cache on every switch. Reusing a
/// slot for a new context moves the jump key's count ([`mmu::Tlb::jump_key`]),
/// which retires every entry.
#[derive(Clone, Debug)]
struct FetchContexts {
    slots: [(u32, u64, u32); 1 << FetchContexts::BITS],
    /// Slot of the current context.
    id: u64,
    /// The slot the next new context takes (round robin).
    next: usize,
}

impl FetchContexts {
    const BITS: u32 = mmu::JUMP_CTX_BITS;

    /// Makes `ctx` the current context; true when that reused a slot, which
    /// retires every jump-cache entry (the caller moves the jump key).
    #[inline]
    fn enter(&mut self, ctx: (u32, u64, u32)) -> bool {
        let cur = self.id as usize & (self.slots.len() - 1);
        if self.slots.get(cur) == Some(&ctx) {
            return false;
        }
        if let Some(i) = self.slots.iter().position(|c| *c == ctx) {
            self.id = i as u64;
            return false;
        }
        let i = self.next & (self.slots.len() - 1);
        self.next = i + 1;
        if let Some(s) = self.slots.get_mut(i) {
            *s = ctx;
        }
        self.id = i as u64;
        true
    }
}

impl Default for FetchContexts {
    fn default() -> Self {
        FetchContexts {
            // No real context has mode key u32::MAX.
            slots: [(u32::MAX, 0, 0); 1 << FetchContexts::BITS],
            id: 0,
            next: 0,
        }
    }
}

#[cfg(test)]
mod fetch_context_tests {
    use super::FetchContexts;

    /// Switching among a few contexts reuses no slot (the jump cache's
    /// entries of each stay valid); a ninth distinct context reuses a slot
    /// (every entry retires), and a context always gets the slot that holds it.
    #[test]
    fn recent_contexts_keep_their_ids() {
        let mut f = FetchContexts::default();
        let ctx = |i: u64| (0x420, i << 4, 0xFFFF);
        for i in 0..8 {
            assert!(f.enter(ctx(i)), "a new context takes a slot");
        }
        for round in 0..3 {
            for i in (0..8).rev() {
                assert!(!f.enter(ctx(i)), "no slot reused among 8 contexts");
                assert_eq!(f.id, i, "round {round}");
            }
        }
        assert!(f.enter(ctx(8)), "a new context retires the old entries");
        assert!(!f.enter(ctx(8)));
        let id = f.id;
        assert!(!f.enter(ctx(7)));
        assert!(!f.enter(ctx(8)));
        assert_eq!(f.id, id);
    }
}
