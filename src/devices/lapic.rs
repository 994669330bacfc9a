//! The local APIC of the one CPU, in xAPIC mode (SDM Vol. 3A chapter 11,
//! "Advanced Programmable Interrupt Controller (APIC)", chapter 12 in later
//! editions). Register names and offsets are those of SDM Table 11-1.
//!
//! What it does: holds the 256-bit IRR/ISR/TMR with priority arbitration
//! against the TPR/PPR (11.8.3), accepts messages from the I/O APIC and
//! from its own ICR (self IPIs; INIT and SIPI are recorded for SMP), runs
//! the LVT timer in one-shot, periodic and TSC-deadline modes on the
//! machine's virtual clock (11.5.4), and reports send/receive errors in the
//! ESR (11.5.3). LINT0 in ExtINT mode passes the 8259's INTR through
//! (virtual wire mode, 11.5.1 and the MP spec 3.6.2.2); the platform asks
//! [`LocalApic::accepts_pic_intr`].
//!
//! Where the SDM leaves a choice, vx86 does what QEMU 7.2 does: version
//! 0x00050014 (six LVT entries, no CMCI), a 1 GHz APIC bus clock (timer
//! ticks are nanoseconds before the divider), a timer period of
//! `initial count + 1` ticks, sub-dword accesses reading 0, and the BSP's
//! LINT0 reset to ExtINT unmasked so that the 8259 reaches a CPU whose
//! firmware never programmed the APIC.

use super::Nanos;

/// IA32_APIC_BASE (MSR 0x1B) bit 8: this is the bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE bit 11: the APIC is globally enabled (11.4.3).
pub const APIC_BASE_EN: u64 = 1 << 11;
/// IA32_APIC_BASE bits 35:12 (MAXPHYADDR 36 as QEMU's qemu64): the 4-KByte
/// aligned base of the register page.
pub const APIC_BASE_ADDR_MASK: u64 = 0x0000_000F_FFFF_F000;
/// The register page's base after reset (11.4.1).
pub const DEFAULT_BASE: u64 = 0xFEE0_0000;
/// Size of the register page.
pub const PAGE: u64 = 0x1000;

/// Register offsets in the page (SDM Table 11-1).
pub mod reg {
    pub const ID: u32 = 0x020;
    pub const VERSION: u32 = 0x030;
    pub const TPR: u32 = 0x080;
    pub const APR: u32 = 0x090;
    pub const PPR: u32 = 0x0A0;
    pub const EOI: u32 = 0x0B0;
    pub const RRD: u32 = 0x0C0;
    pub const LDR: u32 = 0x0D0;
    pub const DFR: u32 = 0x0E0;
    pub const SVR: u32 = 0x0F0;
    pub const ISR0: u32 = 0x100;
    pub const TMR0: u32 = 0x180;
    pub const IRR0: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const ICR_LO: u32 = 0x300;
    pub const ICR_HI: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_THERMAL: u32 = 0x330;
    pub const LVT_PERF: u32 = 0x340;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_ICR: u32 = 0x380;
    pub const TIMER_CCR: u32 = 0x390;
    pub const TIMER_DCR: u32 = 0x3E0;
}

/// Version register: version 0x14 (integrated APIC), max LVT entry 5 (QEMU).
pub const VERSION: u32 = 0x0005_0014;

/// SVR bit 8: APIC software enable (11.4.7.2).
pub const SVR_ENABLE: u32 = 1 << 8;
/// SVR bits vx86 keeps: vector and enable (QEMU: no focus check bit 9, no
/// EOI-broadcast suppression bit 12, which version 0x14 does not offer).
const SVR_WRITABLE: u32 = 0x1FF;

/// LVT and ICR fields (11.5.1, Figure 11-8; 11.6.1, Figure 11-12).
pub const LVT_MASKED: u32 = 1 << 16;
pub const LVT_LEVEL: u32 = 1 << 15;
pub const LVT_REMOTE_IRR: u32 = 1 << 14;
pub const LVT_DELIVERY_STATUS: u32 = 1 << 12;
const VECTOR: u32 = 0xFF;
/// LVT timer mode, bits 18:17 (11.5.4).
const TIMER_MODE_SHIFT: u32 = 17;
pub const TIMER_ONE_SHOT: u32 = 0;
pub const TIMER_PERIODIC: u32 = 1;
pub const TIMER_TSC_DEADLINE: u32 = 2;

/// Delivery modes (bits 10:8 of an LVT entry, ICR or I/O APIC redirection
/// entry; 11.6.1).
pub mod delivery {
    pub const FIXED: u8 = 0b000;
    pub const LOWEST_PRIORITY: u8 = 0b001;
    pub const SMI: u8 = 0b010;
    pub const NMI: u8 = 0b100;
    pub const INIT: u8 = 0b101;
    pub const STARTUP: u8 = 0b110;
    pub const EXTINT: u8 = 0b111;
}

/// ESR bits (11.5.3, Figure 11-9).
pub mod esr {
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    pub const RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
    pub const ILLEGAL_REGISTER_ADDRESS: u32 = 1 << 7;
}

/// ICR destination shorthand, bits 19:18 (11.6.1).
const SHORTHAND_NONE: u32 = 0;
const SHORTHAND_SELF: u32 = 1;
const SHORTHAND_ALL_INCLUDING_SELF: u32 = 2;
/// ICR bit 11: logical destination mode.
const ICR_DEST_LOGICAL: u32 = 1 << 11;
/// ICR bits of the low word that are kept (delivery status bit 12 reads 0:
/// vx86 delivers at once; bits 13, 16, 17, 20-31 are reserved).
const ICR_LO_WRITABLE: u32 = 0x000C_CFFF;
/// DFR model, bits 31:28: 1111b flat, 0000b cluster (11.6.2.2).
const DFR_FLAT: u32 = 0xF;

/// A message on the APIC bus (from the I/O APIC or an ICR): what
/// 11.6.1/11.6.2 and the 82093AA redirection entry describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicMessage {
    pub vector: u8,
    pub delivery: u8,
    /// Logical (true) or physical destination mode.
    pub logical: bool,
    pub dest: u8,
    /// Level triggered (the TMR bit is set, and the EOI is broadcast).
    pub level: bool,
}

/// An INIT or start-up IPI this CPU sent (kept for SMP: no other CPU yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartupIpi {
    pub delivery: u8,
    pub vector: u8,
    pub dest: u8,
}

/// How many sent INIT/SIPI messages are remembered.
const STARTUP_LOG: usize = 16;

/// 256 vectors, one bit each (the IRR, ISR and TMR, SDM 11.8.4): eight
/// 32-bit words, bit `v & 31` of word `v >> 5`, as the register page shows
/// them, and as they are saved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Bits256([u32; 8]);

impl Bits256 {
    fn set(&mut self, v: u8, on: bool) {
        let (w, b) = (usize::from(v >> 5), v & 31);
        if on {
            self.0[w] |= 1 << b;
        } else {
            self.0[w] &= !(1 << b);
        }
    }
    fn get(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    /// The highest vector set.
    fn highest(&self) -> Option<u8> {
        (0..8).rev().find_map(|w| {
            let x = self.0[w];
            (x != 0).then(|| (w as u8) * 32 + (31 - x.leading_zeros() as u8))
        })
    }
}

/// Which LVT entry (index into `lvt`), in register order from 0x320.
const LVT_TIMER_IDX: usize = 0;
const LVT_LINT0_IDX: usize = 3;
const LVT_LINT1_IDX: usize = 4;
const LVT_ERROR_IDX: usize = 5;
const LVT_ENTRIES: usize = 6;

/// The local APIC's registers (plain state, saved whole in a snapshot).
///
/// The timer's times (`load_time`, `next_fire`, `tsc_deadline`) are absolute
/// virtual nanoseconds since power-on, on the machine's clock, which a
/// snapshot restores with the CPU's instruction count (and, in host time,
/// resumes at the saved guest time): after a restore the current count reads
/// the same and the timer fires at the same virtual time as without the cut
/// (11.5.4). IA32_APIC_BASE (`base`, with EN and BSP) lives here and not in
/// the CPU's MSRs, and so does IA32_TSC_DEADLINE (virtual ns; the guest's
/// TSC offset is the CPU's, in its saved MSRs). No x2APIC state exists: vx86
/// does not offer x2APIC mode.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LocalApic {
    /// IA32_APIC_BASE: base address, EN and BSP bits.
    base: u64,
    /// APIC ID, bits 31:24 of the ID register.
    id: u8,
    tpr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: Bits256,
    irr: Bits256,
    tmr: Bits256,
    /// The ESR as software reads it (latched by the last ESR write).
    esr: u32,
    /// Errors detected since the last ESR write.
    esr_pending: u32,
    icr_lo: u32,
    icr_hi: u32,
    /// Timer, thermal, performance, LINT0, LINT1, error.
    lvt: [u32; LVT_ENTRIES],
    initial_count: u32,
    divide_config: u32,
    /// When the initial count was written (virtual ns).
    load_time: Nanos,
    /// The timer's next expiry (one-shot/periodic or TSC deadline).
    next_fire: Option<Nanos>,
    /// IA32_TSC_DEADLINE in virtual nanoseconds (0: disarmed).
    tsc_deadline: Nanos,
    /// An NMI was delivered (the CPU takes it through the machine).
    nmi: bool,
    /// INIT/SIPI messages sent, oldest first.
    startup: Vec<StartupIpi>,
    /// Vectors whose level-triggered EOI the I/O APIC must see. Transient,
    /// not saved: the platform hands them to the I/O APIC right after the
    /// EOI write that queued them (`Apics::settle`), so it is empty between
    /// two CPU slices, where snapshots are taken.
    #[serde(skip)]
    eoi_broadcast: Vec<u8>,
}

impl Default for LocalApic {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalApic {
    pub fn new() -> Self {
        Self::power_up(0)
    }

    /// Power-up / RESET state (SDM 11.4.7.1): IA32_APIC_BASE at 0xFEE00000
    /// with EN and BSP set, IRR/ISR/TMR/ICR/LDR/TPR 0, timer counts 0, DFR
    /// all ones, LVT entries masked, SVR 0x000000FF (software disabled).
    /// LINT0 is ExtINT unmasked, as QEMU resets the BSP's (virtual wire).
    pub fn reset(&mut self) {
        *self = Self::power_up(self.id);
    }

    /// The RESET state with the given APIC ID (the ID survives INIT/RESET).
    fn power_up(id: u8) -> Self {
        let mut a = LocalApic {
            base: DEFAULT_BASE | APIC_BASE_EN | APIC_BASE_BSP,
            id,
            tpr: 0,
            ldr: 0,
            dfr: u32::MAX,
            svr: 0xFF,
            isr: Bits256::default(),
            irr: Bits256::default(),
            tmr: Bits256::default(),
            esr: 0,
            esr_pending: 0,
            icr_lo: 0,
            icr_hi: 0,
            lvt: [LVT_MASKED; LVT_ENTRIES],
            initial_count: 0,
            divide_config: 0,
            load_time: 0,
            next_fire: None,
            tsc_deadline: 0,
            nmi: false,
            startup: Vec::new(),
            eoi_broadcast: Vec::new(),
        };
        a.lvt[LVT_LINT0_IDX] = u32::from(delivery::EXTINT) << 8;
        a
    }

    /// What SeaBIOS leaves in the BSP's APIC before it starts a kernel (its
    /// smp_setup): software enabled with spurious vector 0xFF, LINT0 ExtINT
    /// (the 8259, virtual wire mode) and LINT1 NMI. Direct kernel boots get
    /// this state, so a guest sees what it sees under QEMU.
    pub fn firmware_setup(&mut self) {
        self.svr = SVR_ENABLE | 0xFF;
        self.lvt[LVT_LINT0_IDX] = LVT_LEVEL | (u32::from(delivery::EXTINT) << 8);
        self.lvt[LVT_LINT1_IDX] = u32::from(delivery::NMI) << 8;
    }

    // ---- IA32_APIC_BASE, IA32_TSC_DEADLINE ----

    /// IA32_APIC_BASE (MSR 0x1B).
    pub fn apic_base(&self) -> u64 {
        self.base
    }

    /// Writes IA32_APIC_BASE; false when the value must raise #GP (reserved
    /// bits, SDM Vol. 4 Table 2-2). Clearing EN disables the APIC globally
    /// (11.4.3): it then acts as if absent until a reset, as on P6 and later
    /// processors and in QEMU.
    pub fn set_apic_base(&mut self, v: u64) -> bool {
        // Bit 10 is x2APIC enable: not offered. Bits 0-7, 9 are reserved.
        if v & !(APIC_BASE_ADDR_MASK | APIC_BASE_EN | APIC_BASE_BSP) != 0 {
            return false;
        }
        if !self.globally_enabled() {
            // 11.4.3: once disabled, only a reset enables it again.
            return true;
        }
        let bsp = self.base & APIC_BASE_BSP;
        self.base = (v & (APIC_BASE_ADDR_MASK | APIC_BASE_EN)) | bsp;
        if !self.globally_enabled() {
            // The APIC's state is that of a reset, kept disabled.
            let base = self.base;
            self.reset();
            self.base = base;
            self.lvt[LVT_LINT0_IDX] = LVT_MASKED;
        }
        true
    }

    /// IA32_APIC_BASE.EN: the APIC exists for the CPU (CPUID.1:EDX.APIC).
    pub fn globally_enabled(&self) -> bool {
        self.base & APIC_BASE_EN != 0
    }

    /// The register page's base address while the APIC is enabled.
    pub fn mmio_base(&self) -> Option<u64> {
        self.globally_enabled()
            .then_some(self.base & APIC_BASE_ADDR_MASK)
    }

    /// IA32_TSC_DEADLINE (MSR 0x6E0) as virtual nanoseconds; reads 0 outside
    /// TSC-deadline mode and once it fired (11.5.4.1).
    pub fn tsc_deadline(&self) -> Nanos {
        if self.timer_mode() == TIMER_TSC_DEADLINE {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// Writes IA32_TSC_DEADLINE (in virtual ns; 0 disarms). Ignored outside
    /// TSC-deadline mode (11.5.4.1).
    pub fn set_tsc_deadline(&mut self, deadline: Nanos, now: Nanos) {
        if self.timer_mode() != TIMER_TSC_DEADLINE {
            return;
        }
        self.tsc_deadline = deadline;
        self.next_fire = (deadline != 0).then_some(deadline);
        self.advance(now);
    }

    // ---- the register page ----

    /// A read of the register page at `offset` (0..0xFFF). Sub-dword reads
    /// return 0 (QEMU); the SDM wants aligned 32-bit accesses (11.4.1).
    /// The task-priority register (CR8 is its bits 7:4 in 64-bit mode);
    /// reading it has no side effects, unlike [`LocalApic::read`].
    pub fn tpr(&self) -> u8 {
        self.tpr
    }

    pub fn read(&mut self, offset: u32, size: u8, now: Nanos) -> u32 {
        if size < 4 {
            return 0;
        }
        let r = offset & 0xFF0;
        match r {
            reg::ID => u32::from(self.id) << 24,
            reg::VERSION => VERSION,
            reg::TPR => u32::from(self.tpr),
            // Arbitration priority: vx86 has no APIC-bus arbitration (QEMU 0).
            reg::APR => 0,
            reg::PPR => u32::from(self.ppr()),
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            0x100..=0x170 => self.isr.0[((r - reg::ISR0) >> 4) as usize],
            0x180..=0x1F0 => self.tmr.0[((r - reg::TMR0) >> 4) as usize],
            0x200..=0x270 => self.irr.0[((r - reg::IRR0) >> 4) as usize],
            reg::ESR => self.esr,
            reg::ICR_LO => self.icr_lo,
            reg::ICR_HI => self.icr_hi,
            0x320..=0x370 => self.lvt[((r - reg::LVT_TIMER) >> 4) as usize],
            reg::TIMER_ICR => self.initial_count,
            reg::TIMER_CCR => self.current_count(now),
            reg::TIMER_DCR => self.divide_config,
            // EOI is write-only, RRD unsupported (11.4.8): both read 0.
            reg::EOI | reg::RRD => 0,
            _ => {
                self.error(esr::ILLEGAL_REGISTER_ADDRESS);
                0
            }
        }
    }

    /// A write to the register page (sub-dword writes are ignored, as QEMU).
    pub fn write(&mut self, offset: u32, size: u8, v: u32, now: Nanos) {
        if size < 4 {
            return;
        }
        self.advance(now);
        let r = offset & 0xFF0;
        match r {
            reg::ID => self.id = (v >> 24) as u8,
            reg::TPR => self.tpr = v as u8,
            reg::EOI => self.eoi(),
            reg::LDR => self.ldr = v & 0xFF00_0000,
            reg::DFR => self.dfr = v | 0x0FFF_FFFF,
            reg::SVR => {
                self.svr = v & SVR_WRITABLE;
                if !self.software_enabled() {
                    // 11.4.7.2: software disable masks every LVT entry.
                    for e in &mut self.lvt {
                        *e |= LVT_MASKED;
                    }
                }
            }
            reg::ESR => {
                // 11.5.3: a write latches the errors since the last write.
                self.esr = std::mem::take(&mut self.esr_pending);
            }
            reg::ICR_LO => {
                self.icr_lo = v & ICR_LO_WRITABLE;
                self.send_ipi();
            }
            reg::ICR_HI => self.icr_hi = v & 0xFF00_0000,
            0x320..=0x370 => self.write_lvt(((r - reg::LVT_TIMER) >> 4) as usize, v, now),
            reg::TIMER_ICR => {
                if self.timer_mode() != TIMER_TSC_DEADLINE {
                    self.initial_count = v;
                    self.load_time = now;
                    self.plan_timer(now);
                }
            }
            reg::TIMER_DCR => {
                self.divide_config = v & 0b1011;
                self.plan_timer(now);
            }
            // Read-only registers: writes are ignored.
            reg::VERSION | reg::APR | reg::PPR | reg::RRD | reg::TIMER_CCR => {}
            0x100..=0x270 => {}
            _ => self.error(esr::ILLEGAL_REGISTER_ADDRESS),
        }
    }

    /// Writable bits of each LVT entry (Figure 11-8): vector, delivery mode
    /// where the entry has one, polarity/trigger on LINT0/1, mask, and the
    /// timer mode.
    fn write_lvt(&mut self, n: usize, v: u32, now: Nanos) {
        let keep = match n {
            LVT_TIMER_IDX => 0x0007_00FF,
            LVT_LINT0_IDX | LVT_LINT1_IDX => 0x0001_A7FF,
            LVT_ERROR_IDX => 0x0001_00FF,
            _ => 0x0001_07FF,
        };
        let mut v = v & keep;
        if !self.software_enabled() {
            v |= LVT_MASKED;
        }
        let Some(e) = self.lvt.get_mut(n) else {
            return;
        };
        let old = *e;
        // Remote IRR (LINT0/1) and delivery status are read-only.
        *e = v | (old & LVT_REMOTE_IRR);
        if n == LVT_TIMER_IDX {
            let mode = |x: u32| (x >> TIMER_MODE_SHIFT) & 3;
            if mode(old) != mode(v) {
                // 11.5.4.1: a mode change disarms the timer.
                self.initial_count = 0;
                self.tsc_deadline = 0;
                self.next_fire = None;
            }
            self.plan_timer(now);
        }
    }

    // ---- priorities (11.8.3.1) ----

    /// The processor-priority register: TPR, or the class of the highest
    /// in-service vector if that is higher.
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        if (self.tpr >> 4) >= (isrv >> 4) {
            self.tpr
        } else {
            isrv & 0xF0
        }
    }

    fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The highest requested vector whose class is above the PPR's, while
    /// the APIC is enabled (11.8.3).
    pub fn deliverable(&self) -> Option<u8> {
        if !self.globally_enabled() || !self.software_enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        ((v >> 4) > (self.ppr() >> 4)).then_some(v)
    }

    /// INTA: the CPU takes the highest deliverable vector (IRR -> ISR), or the
    /// spurious vector if none is deliverable any more (11.9).
    pub fn acknowledge(&mut self) -> u8 {
        match self.deliverable() {
            Some(v) => {
                self.irr.set(v, false);
                self.isr.set(v, true);
                v
            }
            None => self.svr as u8,
        }
    }

    /// Whether the 8259's INTR reaches the CPU: directly while the APIC is
    /// globally disabled, else through LINT0 in ExtINT mode unmasked (QEMU's
    /// apic_accept_pic_intr).
    pub fn accepts_pic_intr(&self) -> bool {
        if !self.globally_enabled() {
            return true;
        }
        let l = self.lvt[LVT_LINT0_IDX];
        l & LVT_MASKED == 0 && ((l >> 8) & 7) as u8 == delivery::EXTINT
    }

    /// EOI (11.8.5): clears the highest in-service bit; a level-triggered
    /// vector (TMR set) is broadcast to the I/O APIC.
    fn eoi(&mut self) {
        let Some(v) = self.isr.highest() else {
            return;
        };
        self.isr.set(v, false);
        if self.tmr.get(v) {
            self.eoi_broadcast.push(v);
        }
    }

    /// Vectors whose EOI the I/O APIC must see, oldest first.
    pub fn take_eoi_broadcasts(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.eoi_broadcast)
    }

    /// Whether an NMI waits to be taken.
    pub fn nmi_pending(&self) -> bool {
        self.nmi
    }

    /// Takes a pending NMI (delivered by the ICR, LINT0/1 or the I/O APIC).
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi)
    }

    /// The INIT and start-up IPIs sent so far (for SMP bring-up).
    pub fn startup_ipis(&self) -> &[StartupIpi] {
        &self.startup
    }

    /// Raises an error in the ESR and, unless masked, the error LVT
    /// interrupt (11.5.3).
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let e = self.lvt[LVT_ERROR_IDX];
        if e & LVT_MASKED == 0 {
            let v = (e & VECTOR) as u8;
            if v >= 16 {
                self.set_irr(v, false);
            } else {
                self.esr_pending |= esr::RECEIVE_ILLEGAL_VECTOR;
            }
        }
    }

    /// Requests fixed vector `v` (edge or level: the TMR bit follows).
    /// Vectors 0-15 are illegal (11.5.2): an error, nothing requested.
    fn accept_fixed(&mut self, v: u8, level: bool) {
        if v < 16 {
            self.error(esr::RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.set_irr(v, level);
    }

    fn set_irr(&mut self, v: u8, level: bool) {
        self.irr.set(v, true);
        self.tmr.set(v, level);
    }

    /// Whether a message addressed to `dest` in this mode is for this APIC
    /// (11.6.2: physical ID or broadcast 0xFF; logical flat or cluster).
    pub fn matches(&self, logical: bool, dest: u8) -> bool {
        if !logical {
            return dest == 0xFF || dest == self.id;
        }
        if dest == 0xFF {
            return true;
        }
        let ldr = (self.ldr >> 24) as u8;
        if self.dfr >> 28 == DFR_FLAT {
            ldr & dest != 0
        } else {
            (ldr >> 4) == (dest >> 4) && (ldr & dest & 0xF) != 0
        }
    }

    /// A message from the APIC bus (the I/O APIC, or this APIC's own ICR).
    pub fn deliver(&mut self, m: ApicMessage) {
        if !self.globally_enabled() || !self.matches(m.logical, m.dest) {
            return;
        }
        self.accept(m);
    }

    /// A message for this APIC, by delivery mode (11.6.1). With one CPU
    /// lowest-priority delivery picks it.
    fn accept(&mut self, m: ApicMessage) {
        match m.delivery {
            delivery::FIXED | delivery::LOWEST_PRIORITY => self.accept_fixed(m.vector, m.level),
            delivery::NMI => self.nmi = true,
            delivery::INIT | delivery::STARTUP => {
                // For this CPU itself an INIT would reset it; with no other
                // CPU the message is only recorded (see below).
            }
            // SMI, ExtINT (the 8259 path is LINT0) and reserved modes: dropped.
            _ => {}
        }
    }

    /// Sends the IPI the ICR now describes (11.6.1).
    fn send_ipi(&mut self) {
        let lo = self.icr_lo;
        let mode = ((lo >> 8) & 7) as u8;
        let vector = (lo & VECTOR) as u8;
        let dest = (self.icr_hi >> 24) as u8;
        let logical = lo & ICR_DEST_LOGICAL != 0;
        let level = lo & (1 << 15) != 0;
        let shorthand = (lo >> 18) & 3;
        if matches!(mode, delivery::INIT | delivery::STARTUP) {
            // INIT level de-assert (level trigger, level 0) does nothing.
            if !(mode == delivery::INIT && level && lo & (1 << 14) == 0) {
                if self.startup.len() >= STARTUP_LOG {
                    self.startup.remove(0);
                }
                self.startup.push(StartupIpi {
                    delivery: mode,
                    vector,
                    dest,
                });
            }
            return;
        }
        if matches!(mode, delivery::FIXED | delivery::LOWEST_PRIORITY) && vector < 16 {
            self.error(esr::SEND_ILLEGAL_VECTOR);
            return;
        }
        let to_self = match shorthand {
            SHORTHAND_NONE => self.matches(logical, dest),
            SHORTHAND_SELF | SHORTHAND_ALL_INCLUDING_SELF => true,
            _ => false,
        };
        if to_self {
            // IPIs are edge triggered (the trigger bit only qualifies INIT).
            self.accept(ApicMessage {
                vector,
                delivery: mode,
                logical,
                dest,
                level: false,
            });
        }
    }

    // ---- LINT0/LINT1 as delivered through the LVT (11.5.1) ----

    /// A rising edge (or asserted level) on LINT1; the board wires nothing to
    /// it but firmware sets it up as NMI.
    pub fn lint1(&mut self) {
        self.local_interrupt(LVT_LINT1_IDX);
    }

    fn local_interrupt(&mut self, n: usize) {
        let e = self.lvt[n];
        if e & LVT_MASKED != 0 {
            return;
        }
        let vector = (e & VECTOR) as u8;
        match ((e >> 8) & 7) as u8 {
            delivery::FIXED => self.accept_fixed(vector, false),
            delivery::NMI => self.nmi = true,
            _ => {}
        }
    }

    // ---- the timer (11.5.4) ----

    fn timer_mode(&self) -> u32 {
        (self.lvt[LVT_TIMER_IDX] >> TIMER_MODE_SHIFT) & 3
    }

    /// log2 of the divider from the divide configuration register (Figure
    /// 11-10): bits 3,1:0 = 111b divide by 1, else by 2^(value+1).
    fn count_shift(&self) -> u32 {
        let v = (self.divide_config & 3) | ((self.divide_config >> 1) & 4);
        (v + 1) & 7
    }

    /// Ticks of one period (or of the one shot): QEMU counts `initial + 1`.
    fn period_ticks(&self) -> u64 {
        u64::from(self.initial_count) + 1
    }

    /// The current-count register.
    pub fn current_count(&self, now: Nanos) -> u32 {
        if self.initial_count == 0 || self.timer_mode() == TIMER_TSC_DEADLINE {
            return 0;
        }
        let ticks = now.saturating_sub(self.load_time) >> self.count_shift();
        if self.timer_mode() == TIMER_PERIODIC {
            (u64::from(self.initial_count) - ticks % self.period_ticks()) as u32
        } else {
            u64::from(self.initial_count).saturating_sub(ticks) as u32
        }
    }

    /// Sets `next_fire` for the counting modes from the load time.
    fn plan_timer(&mut self, now: Nanos) {
        match self.timer_mode() {
            TIMER_TSC_DEADLINE => {
                self.next_fire = (self.tsc_deadline != 0).then_some(self.tsc_deadline)
            }
            TIMER_ONE_SHOT | TIMER_PERIODIC if self.initial_count != 0 => {
                let shift = self.count_shift();
                let ticks = now.saturating_sub(self.load_time) >> shift;
                let p = self.period_ticks();
                let next = if self.timer_mode() == TIMER_PERIODIC {
                    (ticks / p + 1) * p
                } else if ticks < p {
                    p
                } else {
                    self.next_fire = None;
                    return;
                };
                self.next_fire = Some(self.load_time.saturating_add(next << shift));
            }
            // Mode 11b is reserved; a zero count stops the timer.
            _ => self.next_fire = None,
        }
    }

    /// When the timer next expires.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.next_fire
    }

    /// Catches the timer up to `now`: an expiry requests the LVT timer
    /// vector unless masked (the count runs on masked, 11.5.4).
    pub fn advance(&mut self, now: Nanos) {
        let Some(t) = self.next_fire else {
            return;
        };
        if now < t {
            return;
        }
        match self.timer_mode() {
            TIMER_TSC_DEADLINE => {
                self.tsc_deadline = 0;
                self.next_fire = None;
            }
            TIMER_PERIODIC => self.plan_timer(now),
            _ => self.next_fire = None,
        }
        let e = self.lvt[LVT_TIMER_IDX];
        if e & LVT_MASKED == 0 {
            self.accept_fixed((e & VECTOR) as u8, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> LocalApic {
        let mut a = LocalApic::new();
        a.write(reg::SVR, 4, SVR_ENABLE | 0xFF, 0);
        a
    }

    #[test]
    fn reset_state_per_sdm_and_qemu() {
        let mut a = LocalApic::new();
        assert_eq!(a.apic_base(), 0xFEE0_0900);
        assert_eq!(a.read(reg::VERSION, 4, 0), 0x0005_0014);
        assert_eq!(a.read(reg::SVR, 4, 0), 0xFF);
        assert_eq!(a.read(reg::DFR, 4, 0), 0xFFFF_FFFF);
        assert_eq!(a.read(reg::LVT_TIMER, 4, 0), LVT_MASKED);
        assert_eq!(a.read(reg::LVT_LINT0, 4, 0), 0x700);
        assert_eq!(a.read(reg::LVT_ERROR, 4, 0), LVT_MASKED);
        assert!(a.accepts_pic_intr());
        assert_eq!(a.deliverable(), None);
    }

    #[test]
    fn id_ldr_dfr_keep_only_their_fields() {
        let mut a = LocalApic::new();
        a.write(reg::ID, 4, 0x0312_3456, 0);
        assert_eq!(a.read(reg::ID, 4, 0), 0x0300_0000);
        a.write(reg::LDR, 4, 0x8012_3456, 0);
        assert_eq!(a.read(reg::LDR, 4, 0), 0x8000_0000);
        a.write(reg::DFR, 4, 0, 0);
        assert_eq!(a.read(reg::DFR, 4, 0), 0x0FFF_FFFF);
        // Version is read-only.
        a.write(reg::VERSION, 4, 0, 0);
        assert_eq!(a.read(reg::VERSION, 4, 0), VERSION);
    }

    #[test]
    fn sub_dword_accesses_read_zero_and_are_ignored() {
        let mut a = LocalApic::new();
        assert_eq!(a.read(reg::VERSION, 1, 0), 0);
        a.write(reg::TPR, 1, 0x20, 0);
        assert_eq!(a.read(reg::TPR, 4, 0), 0);
    }

    #[test]
    fn tpr_and_ppr_follow_the_highest_in_service_class() {
        let mut a = enabled();
        a.write(reg::TPR, 4, 0x35, 0);
        assert_eq!(a.read(reg::PPR, 4, 0), 0x35);
        a.deliver(ApicMessage {
            vector: 0x51,
            delivery: delivery::FIXED,
            logical: false,
            dest: 0,
            level: false,
        });
        assert_eq!(a.acknowledge(), 0x51);
        // ISRV class 5 > TPR class 3: PPR = 0x50.
        assert_eq!(a.read(reg::PPR, 4, 0), 0x50);
        a.write(reg::EOI, 4, 0, 0);
        assert_eq!(a.read(reg::PPR, 4, 0), 0x35);
    }

    fn fixed(a: &mut LocalApic, v: u8, level: bool) {
        a.deliver(ApicMessage {
            vector: v,
            delivery: delivery::FIXED,
            logical: false,
            dest: 0,
            level,
        });
    }

    #[test]
    fn irr_isr_tmr_priority_arbitration_and_eoi() {
        let mut a = enabled();
        fixed(&mut a, 0x41, false);
        fixed(&mut a, 0x62, true);
        assert_eq!(a.read(reg::IRR0 + 0x20, 4, 0), 1 << 1);
        assert_eq!(a.read(reg::IRR0 + 0x30, 4, 0), 1 << 2);
        assert_eq!(a.read(reg::TMR0 + 0x30, 4, 0), 1 << 2);
        // Highest first.
        assert_eq!(a.deliverable(), Some(0x62));
        assert_eq!(a.acknowledge(), 0x62);
        assert_eq!(a.read(reg::ISR0 + 0x30, 4, 0), 1 << 2);
        // 0x41 is of a lower class than the in-service 0x62: held.
        assert_eq!(a.deliverable(), None);
        a.write(reg::EOI, 4, 0, 0);
        assert_eq!(a.take_eoi_broadcasts(), vec![0x62]);
        assert_eq!(a.deliverable(), Some(0x41));
        // Same class as an in-service vector is held too.
        assert_eq!(a.acknowledge(), 0x41);
        fixed(&mut a, 0x4F, false);
        assert_eq!(a.deliverable(), None);
        a.write(reg::EOI, 4, 0, 0);
        assert!(a.take_eoi_broadcasts().is_empty());
        assert_eq!(a.deliverable(), Some(0x4F));
        // TPR masks classes at or below it.
        a.write(reg::TPR, 4, 0x40, 0);
        assert_eq!(a.deliverable(), None);
        assert_eq!(a.acknowledge(), 0xFF, "spurious vector");
    }

    #[test]
    fn software_disabled_holds_requests_and_masks_lvts() {
        let mut a = LocalApic::new();
        fixed(&mut a, 0x30, false);
        assert_eq!(a.deliverable(), None);
        a.write(reg::LVT_TIMER, 4, 0x40, 0);
        assert_eq!(a.read(reg::LVT_TIMER, 4, 0), LVT_MASKED | 0x40);
        a.write(reg::SVR, 4, 0x1FF, 0);
        assert_eq!(a.deliverable(), Some(0x30));
        a.write(reg::LVT_TIMER, 4, 0x40, 0);
        assert_eq!(a.read(reg::LVT_TIMER, 4, 0), 0x40);
        a.write(reg::SVR, 4, 0xFF, 0);
        assert_eq!(a.read(reg::LVT_TIMER, 4, 0), LVT_MASKED | 0x40);
        assert!(!a.accepts_pic_intr(), "LINT0 masked by the disable");
    }

    #[test]
    fn esr_latches_on_write_and_raises_the_error_lvt() {
        let mut a = enabled();
        a.write(reg::LVT_ERROR, 4, 0xFE, 0);
        a.write(reg::ICR_LO, 4, 0x0004_0005, 0); // self IPI, vector 5
        assert_eq!(a.read(reg::ESR, 4, 0), 0, "not latched yet");
        a.write(reg::ESR, 4, 0, 0);
        assert_eq!(a.read(reg::ESR, 4, 0), esr::SEND_ILLEGAL_VECTOR);
        assert_eq!(a.deliverable(), Some(0xFE));
        a.read(0x3F0, 4, 0); // reserved offset
        a.write(reg::ESR, 4, 0, 0);
        assert_eq!(a.read(reg::ESR, 4, 0), esr::ILLEGAL_REGISTER_ADDRESS);
        a.write(reg::ESR, 4, 0, 0);
        assert_eq!(a.read(reg::ESR, 4, 0), 0);
    }

    #[test]
    fn icr_self_nmi_init_sipi_and_destinations() {
        let mut a = enabled();
        a.write(reg::ICR_HI, 4, 0xFF12_3456, 0);
        assert_eq!(a.read(reg::ICR_HI, 4, 0), 0xFF00_0000);
        a.write(reg::ICR_LO, 4, 0x0004_0040, 0); // self, fixed 0x40
        assert_eq!(a.read(reg::ICR_LO, 4, 0), 0x0004_0040);
        assert_eq!(a.acknowledge(), 0x40);
        a.write(reg::EOI, 4, 0, 0);
        // All-excluding-self reaches nobody with one CPU.
        a.write(reg::ICR_LO, 4, 0x000C_0041, 0);
        assert_eq!(a.deliverable(), None);
        // Physical destination: ID 0 matches, 1 does not.
        a.write(reg::ICR_HI, 4, 0x0100_0000, 0);
        a.write(reg::ICR_LO, 4, 0x42, 0);
        assert_eq!(a.deliverable(), None);
        a.write(reg::ICR_HI, 4, 0, 0);
        a.write(reg::ICR_LO, 4, 0x43, 0);
        assert_eq!(a.deliverable(), Some(0x43));
        // NMI to self.
        a.write(reg::ICR_LO, 4, 0x0004_0400, 0);
        assert!(a.take_nmi());
        // INIT (assert), INIT de-assert, SIPI: recorded, not delivered.
        a.write(reg::ICR_HI, 4, 0x0100_0000, 0);
        a.write(reg::ICR_LO, 4, 0x0000_4500, 0);
        a.write(reg::ICR_LO, 4, 0x0000_8500, 0);
        a.write(reg::ICR_LO, 4, 0x0000_0608, 0);
        assert_eq!(
            a.startup_ipis(),
            &[
                StartupIpi {
                    delivery: delivery::INIT,
                    vector: 0,
                    dest: 1
                },
                StartupIpi {
                    delivery: delivery::STARTUP,
                    vector: 8,
                    dest: 1
                }
            ]
        );
    }

    #[test]
    fn logical_flat_and_cluster_destinations() {
        let mut a = enabled();
        a.write(reg::LDR, 4, 0x0400_0000, 0);
        assert!(a.matches(true, 0x04) && a.matches(true, 0x0C) && !a.matches(true, 0x02));
        a.write(reg::DFR, 4, 0x0FFF_FFFF, 0); // cluster
        a.write(reg::LDR, 4, 0x2100_0000, 0);
        assert!(a.matches(true, 0x23) && !a.matches(true, 0x13) && !a.matches(true, 0x22));
        assert!(a.matches(true, 0xFF));
    }

    #[test]
    fn apic_base_relocation_disable_and_reserved_bits() {
        let mut a = enabled();
        assert!(!a.set_apic_base(0xFEE0_0000 | APIC_BASE_EN | (1 << 10)));
        assert!(a.set_apic_base(0xFED0_0000 | APIC_BASE_EN));
        assert_eq!(a.mmio_base(), Some(0xFED0_0000));
        assert_eq!(a.apic_base(), 0xFED0_0000 | APIC_BASE_EN | APIC_BASE_BSP);
        assert!(a.set_apic_base(0xFEE0_0000));
        assert_eq!(a.mmio_base(), None);
        assert!(a.accepts_pic_intr());
        // Stays disabled until reset.
        assert!(a.set_apic_base(0xFEE0_0000 | APIC_BASE_EN));
        assert!(!a.globally_enabled());
        a.reset();
        assert!(a.globally_enabled());
    }

    #[test]
    fn divide_configuration_values() {
        let mut a = enabled();
        for (dcr, shift) in [(0b0000, 1), (0b0001, 2), (0b0010, 3), (0b0011, 4)] {
            a.write(reg::TIMER_DCR, 4, dcr, 0);
            assert_eq!(a.count_shift(), shift);
        }
        for (dcr, shift) in [(0b1000, 5), (0b1001, 6), (0b1010, 7), (0b1011, 0)] {
            a.write(reg::TIMER_DCR, 4, dcr, 0);
            assert_eq!(a.count_shift(), shift);
        }
        a.write(reg::TIMER_DCR, 4, 0xFFFF_FFFF, 0);
        assert_eq!(a.read(reg::TIMER_DCR, 4, 0), 0b1011);
    }

    #[test]
    fn one_shot_timer_counts_down_and_fires_once() {
        let mut a = enabled();
        a.write(reg::TIMER_DCR, 4, 0b0000, 0); // divide by 2
        a.write(reg::LVT_TIMER, 4, 0x30, 0);
        a.write(reg::TIMER_ICR, 4, 100, 1000);
        assert_eq!(a.read(reg::TIMER_CCR, 4, 1000), 100);
        assert_eq!(a.read(reg::TIMER_CCR, 4, 1100), 50);
        assert_eq!(a.next_deadline(), Some(1000 + 101 * 2));
        a.advance(1201);
        assert_eq!(a.deliverable(), None);
        a.advance(1202);
        assert_eq!(a.deliverable(), Some(0x30));
        assert_eq!(a.read(reg::TIMER_CCR, 4, 1300), 0);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn periodic_timer_reloads() {
        let mut a = enabled();
        a.write(reg::TIMER_DCR, 4, 0b1011, 0); // divide by 1
        a.write(reg::LVT_TIMER, 4, (TIMER_PERIODIC << 17) | 0x31, 0);
        a.write(reg::TIMER_ICR, 4, 9, 0);
        assert_eq!(a.next_deadline(), Some(10));
        a.advance(10);
        assert_eq!(a.acknowledge(), 0x31);
        a.write(reg::EOI, 4, 0, 10);
        assert_eq!(a.next_deadline(), Some(20));
        assert_eq!(a.read(reg::TIMER_CCR, 4, 13), 6);
        // A late catch-up fires once and plans the next period.
        a.advance(47);
        assert_eq!(a.next_deadline(), Some(50));
        assert_eq!(a.deliverable(), Some(0x31));
        // Zero stops it; masked entries count without interrupting.
        a.write(reg::TIMER_ICR, 4, 0, 50);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn tsc_deadline_mode() {
        let mut a = enabled();
        a.set_tsc_deadline(500, 0);
        assert_eq!(a.tsc_deadline(), 0, "ignored outside deadline mode");
        a.write(reg::LVT_TIMER, 4, (TIMER_TSC_DEADLINE << 17) | 0x32, 0);
        a.write(reg::TIMER_ICR, 4, 1234, 0);
        assert_eq!(a.read(reg::TIMER_ICR, 4, 0), 0, "initial count ignored");
        a.set_tsc_deadline(500, 0);
        assert_eq!(a.tsc_deadline(), 500);
        assert_eq!(a.next_deadline(), Some(500));
        a.advance(500);
        assert_eq!(a.deliverable(), Some(0x32));
        assert_eq!(a.tsc_deadline(), 0);
        // A deadline in the past fires at once.
        a.acknowledge();
        a.write(reg::EOI, 4, 0, 600);
        a.set_tsc_deadline(10, 600);
        assert_eq!(a.deliverable(), Some(0x32));
        // Leaving the mode disarms.
        a.set_tsc_deadline(900, 600);
        a.write(reg::LVT_TIMER, 4, 0x32, 600);
        assert_eq!(a.next_deadline(), None);
    }

    /// A snapshot's round trip through postcard, into a fresh APIC.
    fn restored(a: &LocalApic) -> LocalApic {
        let bytes = crate::snapshot::encode(a).expect("encode");
        crate::snapshot::decode(&bytes).expect("decode")
    }

    /// Saved mid-count, a one-shot timer reads the same current count and
    /// fires at the same virtual time as the APIC it was saved from; the
    /// IRR/ISR/TMR, TPR, LVT and ICR come back with it (11.5.4, 11.8.4).
    #[test]
    fn saved_state_keeps_the_timer_deadline_and_the_vector_bits() {
        let mut a = enabled();
        a.write(reg::TPR, 4, 0x20, 0);
        a.write(reg::ICR_HI, 4, 0x0300_0000, 0);
        fixed(&mut a, 0x62, true);
        assert_eq!(a.acknowledge(), 0x62);
        fixed(&mut a, 0x51, false);
        a.write(reg::TIMER_DCR, 4, 0b0001, 0); // divide by 4
        a.write(reg::LVT_TIMER, 4, 0x30, 0);
        a.write(reg::TIMER_ICR, 4, 1000, 500);
        let mut b = restored(&a);
        for off in (0..0x400).step_by(0x10) {
            let (x, y) = (a.read(off, 4, 1700), b.read(off, 4, 1700));
            assert_eq!(x, y, "register {off:#x}");
        }
        assert_eq!(b.read(reg::TIMER_CCR, 4, 1700), 700);
        assert_eq!(b.next_deadline(), Some(500 + 1001 * 4));
        assert_eq!(b.ppr(), 0x60);
        b.advance(500 + 1001 * 4 - 1);
        assert_eq!(b.read(reg::IRR0 + 0x10, 4, 0), 0, "not before its time");
        b.advance(500 + 1001 * 4);
        assert_eq!(b.read(reg::IRR0 + 0x10, 4, 0), 1 << 16, "vector 0x30");
        // The EOI of the in-service level vector is still broadcast.
        b.write(reg::EOI, 4, 0, 5000);
        assert_eq!(b.take_eoi_broadcasts(), vec![0x62]);
        assert_eq!(b.deliverable(), Some(0x51));
    }

    /// Periodic and TSC-deadline timers, a pending NMI, a relocated and a
    /// globally disabled APIC base survive the round trip; the EOI broadcast
    /// queue (transient) is not saved.
    #[test]
    fn saved_state_keeps_modes_nmi_and_apic_base() {
        let mut a = enabled();
        a.write(reg::TIMER_DCR, 4, 0b1011, 0);
        a.write(reg::LVT_TIMER, 4, (TIMER_PERIODIC << 17) | 0x31, 0);
        a.write(reg::TIMER_ICR, 4, 9, 0);
        a.advance(25);
        let b = restored(&a);
        assert_eq!(b.next_deadline(), Some(30));
        assert_eq!(b.current_count(27), a.current_count(27));
        assert_eq!(b.deliverable(), Some(0x31));

        a.write(reg::LVT_TIMER, 4, (TIMER_TSC_DEADLINE << 17) | 0x32, 30);
        a.set_tsc_deadline(12_345, 30);
        a.write(reg::ICR_LO, 4, 0x0004_0400, 30); // self NMI
        assert!(a.set_apic_base(0xFED0_0000 | APIC_BASE_EN));
        fixed(&mut a, 0x70, true);
        a.acknowledge();
        a.acknowledge();
        a.write(reg::EOI, 4, 0, 40);
        let mut b = restored(&a);
        assert_eq!(b.tsc_deadline(), 12_345);
        assert_eq!(b.next_deadline(), Some(12_345));
        assert_eq!(b.mmio_base(), Some(0xFED0_0000));
        assert!(b.take_nmi());
        assert!(b.take_eoi_broadcasts().is_empty(), "transient: not saved");
        assert_eq!(a.take_eoi_broadcasts(), vec![0x70]);

        assert!(a.set_apic_base(0xFEE0_0000));
        let b = restored(&a);
        assert!(!b.globally_enabled());
        assert_eq!(b.apic_base(), 0xFEE0_0000 | APIC_BASE_BSP);
    }

    #[test]
    fn lint0_extint_and_lint1_nmi() {
        let mut a = enabled();
        assert!(a.accepts_pic_intr());
        a.write(reg::LVT_LINT0, 4, LVT_MASKED | 0x700, 0);
        assert!(!a.accepts_pic_intr());
        a.write(reg::LVT_LINT1, 4, 0x400, 0);
        a.lint1();
        assert!(a.take_nmi());
    }
}
