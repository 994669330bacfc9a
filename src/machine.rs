//! The machine: guest memory, the CPU and the platform's devices (QEMU's
//! `-M isapc`, or `-M pc` with its PCI bus), and the run loop. Data flows one
//! way (STYLE.md): the loop asks the devices for their next deadline, lets
//! the CPU run whole blocks until then, fires the expired timers (PIT -> PIC
//! -> CPU INTR), and hands serial and debug-port bytes to the output sinks.
//!
//! Time (see `crate::time`): in host time the loop runs the CPU in slices
//! sized from its measured speed so that it stops near each deadline, and an
//! idle guest sleeps until the next one; in icount time each slice ends at
//! exactly the instruction where the next deadline falls.

use crate::cpu::{Cpu, Exit};
use crate::devices::ata::AtaChannel;
use crate::devices::debug_port::{
    DebugCon, DebugExit, PostCode, DEBUGCON_PORT, POST_CODE_PORT, SEABIOS_DEBUG_PORT,
};
use crate::devices::i8042::I8042;
use crate::devices::pit::Pit;
use crate::devices::rtc::Rtc;
use crate::devices::sysctl::{CoprocessorErrorClear, SystemControlPortA};
use crate::devices::uart::{Uart, COM1_BASE, COM2_BASE, COM3_BASE, COM4_BASE};
use crate::devices::vga::Vga;
use crate::devices::Device;
use crate::frontend::{DisplayUpdate, HostInput, HostLink};
use crate::memory::GuestMemory;
use crate::platform::{DevId, Platform, PlatformError};
use crate::time::{ClockMode, VirtualClock};
use std::io::Write;
use std::time::{Duration, Instant};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// The guest wrote to isa-debug-exit: exit status (V << 1) | 1.
    DebugExit(i32),
    /// `--max-insns` reached.
    InstructionLimit,
    /// Triple fault with `-no-reboot`.
    TripleFault,
    /// The guest reset the machine (8042 pulse, port 92h) with `-no-reboot`:
    /// QEMU exits with status 0 then, which is how a guest's `reboot` ends a run.
    Reset,
    /// HLT with interrupts disabled: nothing can ever wake the CPU.
    HaltedForever,
    /// The user asked to quit (Ctrl-a x, window closed, signal).
    Quit,
    /// The guest powered off through ACPI (SLP_EN with S5): status 0.
    PowerOff,
}

impl RunExit {
    /// The process exit status, as QEMU would give it.
    pub fn status(&self) -> i32 {
        match self {
            RunExit::DebugExit(s) => *s,
            RunExit::InstructionLimit | RunExit::Quit | RunExit::Reset | RunExit::PowerOff => 0,
            RunExit::TripleFault | RunExit::HaltedForever => 1,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            RunExit::DebugExit(s) => {
                format!("guest requested exit through isa-debug-exit (status {s})")
            }
            RunExit::InstructionLimit => "instruction limit reached".into(),
            RunExit::TripleFault => "guest triple-faulted (shutdown; -no-reboot given)".into(),
            RunExit::Reset => "guest reset the machine (-no-reboot given)".into(),
            RunExit::HaltedForever => "guest halted with interrupts disabled".into(),
            RunExit::Quit => "quit".into(),
            RunExit::PowerOff => "guest powered off (ACPI S5)".into(),
        }
    }
}

/// Where guest output goes.
#[derive(Default)]
pub struct Sinks {
    pub serial: Option<Box<dyn Write + Send>>,
    pub debugcon: Option<Box<dyn Write + Send>>,
    /// One sink per `MachineConfig::debugcons` entry, in the same order
    /// (`None`, or a missing entry, discards that console's bytes).
    pub debugcons: Vec<Option<Box<dyn Write + Send>>>,
}

/// Which board: QEMU's ISA-only PC, or its PC with the i440FX PCI host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MachineType {
    #[default]
    IsaPc,
    Pc,
}

/// Options the machine is built from (filled by `config`).
#[derive(Clone, Debug)]
pub struct MachineConfig {
    pub ram: u64,
    pub machine: MachineType,
    /// The RTC's time at power-on, in Unix seconds.
    pub rtc_base: i64,
    pub no_reboot: bool,
    pub max_insns: Option<u64>,
    pub debug_exit: Option<DebugExit>,
    pub no_block_cache: bool,
    /// The JIT tier: compile a block after this many runs (`--jit`); None
    /// interprets every block.
    pub jit: Option<u32>,
    /// CPUID features removed with `-cpu qemu64,-name`.
    pub features: crate::cpu::cpuid::FeatureMask,
    /// How guest time is kept (host clock, or `-icount`).
    pub clock: ClockMode,
    /// Ports of the extra debug consoles (`-device isa-debugcon,iobase=P`),
    /// each with its own sink in `Sinks::debugcons`. A console at 0xE9, 0x402
    /// or 0x80 takes the port from the built-in console or POST code latch.
    pub debugcons: Vec<u16>,
}

/// 2026-01-01T00:00:00Z: the RTC's fixed start in deterministic runs.
pub const FIXED_RTC_BASE: i64 = 1_767_225_600;

impl Default for MachineConfig {
    /// Deterministic: icount time with a fixed RTC (`-icount
    /// shift=0,sleep=off`); the command line chooses host time by default.
    fn default() -> Self {
        MachineConfig {
            ram: 256 << 20,
            machine: MachineType::IsaPc,
            rtc_base: FIXED_RTC_BASE,
            no_reboot: false,
            max_insns: None,
            debug_exit: None,
            no_block_cache: false,
            jit: None,
            features: Default::default(),
            clock: ClockMode::DETERMINISTIC,
            debugcons: Vec::new(),
        }
    }
}

/// The registered devices the machine itself talks to.
#[derive(Clone, Debug)]
struct Wiring {
    com: [DevId; 4],
    kbc: DevId,
    rtc: DevId,
    vga: DevId,
    ata: [DevId; 2],
    /// Debug consoles whose bytes go to `Sinks::debugcon`.
    debugcon: Vec<DevId>,
    /// The `MachineConfig::debugcons` consoles, in order.
    debugcons: Vec<DevId>,
    piix3: Option<DevId>,
}

pub struct Machine {
    /// Guest physical memory (the machine's; the CPU and DMA devices hold handles).
    pub mem: GuestMemory,
    pub cpu: Cpu,
    pub plat: Platform,
    pub cfg: MachineConfig,
    pub sinks: Sinks,
    /// Host bytes waiting to go into COM1.
    pub serial_in: std::collections::VecDeque<u8>,
    pub quit: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Instructions skipped while the guest idled (icount time).
    pub idle_insns: u64,
    /// Icount time: the slice quantum (`icount / SLICE`) of the last look
    /// for host serial input (see `input_due`); saved in snapshots.
    pub(crate) fed_quantum: u64,
    /// Channels to the frontend (host input, frames for a window).
    pub host: HostLink,
    host_timer: HostTimer,
    /// The directly booted kernel (`-kernel`), loaded again on a reset as
    /// QEMU does.
    pub kernel: Option<crate::boot::KernelBoot>,
    wiring: Wiring,
    /// Measured guest speed in instructions per host nanosecond (host time:
    /// sizes the slices so the CPU stops near each deadline).
    ips: f64,
    /// Channels that wake an idle machine (network backends' host sockets).
    wakers: Vec<crossbeam_channel::Receiver<()>>,
    /// The virtio network cards, for `--stats`.
    nics: Vec<DevId>,
    /// The virtio disks, for `--stats` and the flush at exit.
    blks: Vec<DevId>,
    /// The next PCI slot a card added at run setup takes (QEMU's order:
    /// the host bridge at 0, the PIIX3 at 1, VGA at 2, then the cards).
    next_slot: u8,
    /// Drives the monitor's `drive_add` opened (`if=none`), by id, until a
    /// `device_add` takes them.
    pending_drives: Vec<PendingDrive>,
    /// Devices `device_add` put on the PCI bus (ACPI hotplug).
    hotplugged: Vec<HotplugDevice>,
    /// Devices were added or removed at run time: a snapshot cannot record
    /// that yet, so `savevm` and `--save-on-exit` refuse.
    pub(crate) hotplug_changed: bool,
    /// The gdb stub (`-gdb`, `-S`), served between slices by `gdb::service`.
    pub gdb: Option<Box<crate::gdb::GdbServer>>,
    /// The monitors' command channel (`-monitor`, `-qmp`, Ctrl-a c).
    pub monitor: Option<crate::monitor::Monitor>,
}

/// A drive opened by the monitor's `drive_add`, not yet in a device.
struct PendingDrive {
    id: String,
    serial: String,
    disk: Box<dyn crate::block::BlockDevice + Send>,
}

/// A device added at run time by `device_add`.
struct HotplugDevice {
    /// Its `id=` (what `device_del` names).
    id: String,
    slot: u8,
    dev: DevId,
}

type VirtioBlkPci = crate::devices::virtio::pci::VirtioPci<crate::devices::virtio::blk::VirtioBlk>;

/// Host-time bookkeeping for frames, the MIPS display and real-time sync.
struct HostTimer {
    start: Instant,
    next_frame: Instant,
    next_mips: Instant,
    mips_icount: u64,
    frame: crate::devices::vga::Frame,
}

impl HostTimer {
    fn new() -> Self {
        let now = Instant::now();
        HostTimer {
            start: now,
            next_frame: now,
            next_mips: now + Duration::from_secs(1),
            mips_icount: 0,
            frame: Default::default(),
        }
    }
}

/// Host time between two frames sent to a window (60 Hz).
const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);
/// Largest lead of virtual over host time tolerated with `align=on`.
const REALTIME_SLACK: Duration = Duration::from_millis(2);

/// Longest stretch the CPU runs without the loop looking at the outside world.
/// With icount time the slices end at multiples of it (and at device
/// deadlines), points of virtual time that do not depend on where the run
/// started: a run restored from a snapshot slices as the uninterrupted run.
const SLICE: u64 = 1_000_000;
/// Host time: the longest slice in guest time, and the shortest in instructions.
const HOST_SLICE_NS: u64 = 2_000_000;
const MIN_HOST_SLICE: u64 = 1_000;
/// Host time: longest sleep of an idle guest before the loop looks around.
const IDLE_WAIT: Duration = Duration::from_millis(10);

/// The PCI slot of the first card added by `-nic`/`-device`/`-drive if=virtio`.
const FIRST_CARD_SLOT: u8 = 3;
/// Slots on the one PCI bus (PCI 3.0: 5 device-number bits).
const PCI_SLOTS: u8 = 32;

/// Machine construction failures.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("--jit: {0}")]
    Jit(String),
}

impl Machine {
    pub fn new(cfg: MachineConfig) -> Result<Self, MachineError> {
        let mem = GuestMemory::new(cfg.ram)?;
        let clock = VirtualClock::new(cfg.clock);
        let mut cpu = Cpu::new(mem.clone());
        cpu.no_block_cache = cfg.no_block_cache;
        if cfg.jit.is_some() {
            cpu.set_jit(cfg.jit).map_err(MachineError::Jit)?;
        }
        cpu.features = cfg.features;
        cpu.clock = clock;
        let mut plat = Platform::new(clock, cfg.machine == MachineType::Pc);
        let wiring = Self::populate(&mut plat, &cfg)?;
        if cfg.features.apic {
            plat.enable_apic();
        }
        Ok(Machine {
            mem,
            cpu,
            plat,
            cfg,
            sinks: Sinks::default(),
            serial_in: Default::default(),
            quit: Default::default(),
            idle_insns: 0,
            fed_quantum: 0,
            host: HostLink {
                input: None,
                display: None,
            },
            host_timer: HostTimer::new(),
            kernel: None,
            wiring,
            ips: 0.1,
            wakers: Vec::new(),
            nics: Vec::new(),
            blks: Vec::new(),
            next_slot: FIRST_CARD_SLOT,
            pending_drives: Vec::new(),
            hotplugged: Vec::new(),
            hotplug_changed: false,
            gdb: None,
            monitor: None,
        })
    }

    /// The board's devices, one registration line each.
    fn populate(p: &mut Platform, cfg: &MachineConfig) -> Result<Wiring, PlatformError> {
        let mut piix3 = None;
        if cfg.machine == MachineType::Pc {
            p.add_pci(0, 0, crate::pci::host::I440fx::new())?;
            piix3 = Some(p.add_pci(1, 0, crate::pci::host::Piix3Isa::new())?);
        }
        p.add(Pit::new())?;
        let mut rtc = Rtc::new(cfg.rtc_base);
        rtc.set_memory_size(cfg.ram);
        // QEMU's default order (hard disk, floppy, CD-ROM), which firmware of
        // the Bochs lineage (SeaBIOS, the Bochs BIOS) reads from CMOS.
        {
            use crate::devices::rtc::{BOOT_CDROM, BOOT_FLOPPY, BOOT_HARD_DISK};
            rtc.set_boot_order(BOOT_HARD_DISK, BOOT_FLOPPY, BOOT_CDROM);
        }
        let rtc = p.add(rtc)?;
        let com = [
            p.add(Uart::new(COM1_BASE))?,
            p.add(Uart::new(COM2_BASE))?,
            p.add(Uart::new(COM3_BASE))?,
            p.add(Uart::new(COM4_BASE))?,
        ];
        let kbc = p.add(I8042::new())?;
        p.add(SystemControlPortA::new())?;
        let mut debugcon = Vec::new();
        for port in [DEBUGCON_PORT, SEABIOS_DEBUG_PORT] {
            if !cfg.debugcons.contains(&port) {
                debugcon.push(p.add(DebugCon::new(port))?);
            }
        }
        let mut debugcons = Vec::new();
        for &port in &cfg.debugcons {
            debugcons.push(p.add(DebugCon::new(port))?);
        }
        if !cfg.debugcons.contains(&POST_CODE_PORT) {
            p.add(PostCode::new())?;
        }
        p.add(CoprocessorErrorClear)?;
        let vga = p.add(Vga::new())?;
        let ata = [
            p.add(AtaChannel::new(0x1F0, 0x3F6))?,
            p.add(AtaChannel::new(0x170, 0x376))?,
        ];
        if cfg.features.apic && cfg.machine == MachineType::Pc {
            // The ACPI PM registers the FADT describes (with the APIC only).
            p.add(crate::devices::acpi_pm::AcpiPm::new())?;
        }
        if let Some(d) = &cfg.debug_exit {
            p.add(d.clone())?;
        }
        Ok(Wiring {
            com,
            kbc,
            rtc,
            vga,
            ata,
            debugcon,
            debugcons,
            piix3,
        })
    }

    /// A registered device by its handle, as its type.
    fn dev<T: Device>(&mut self, id: DevId) -> Option<&mut T> {
        self.plat.get::<T>(id)
    }

    /// The VGA adapter.
    pub fn vga(&mut self) -> Option<&mut Vga> {
        let id = self.wiring.vga;
        self.dev(id)
    }
    /// The 8042 keyboard controller.
    pub fn kbc(&mut self) -> Option<&mut I8042> {
        let id = self.wiring.kbc;
        self.dev(id)
    }
    /// The RTC / CMOS.
    pub fn rtc(&mut self) -> Option<&mut Rtc> {
        let id = self.wiring.rtc;
        self.dev(id)
    }
    /// IDE channel 0 (primary) or 1 (secondary).
    pub fn ata(&mut self, channel: usize) -> Option<&mut AtaChannel> {
        let id = *self.wiring.ata.get(channel)?;
        self.dev(id)
    }
    /// COM port `n` (0 = COM1).
    pub fn com(&mut self, n: usize) -> Option<&mut Uart> {
        let id = *self.wiring.com.get(n)?;
        self.dev(id)
    }

    pub(crate) fn flush_output(&mut self) {
        let mut buf = Vec::new();
        if let Some(u) = self.com(0) {
            u.drain_output(&mut buf);
        }
        if !buf.is_empty() {
            if let Some(s) = self.sinks.serial.as_mut() {
                let _ = s.write_all(&buf);
                let _ = s.flush();
            }
        }
        buf.clear();
        for id in self.wiring.debugcon.clone() {
            if let Some(d) = self.plat.get::<DebugCon>(id) {
                d.drain_output(&mut buf);
            }
        }
        if !buf.is_empty() {
            if let Some(s) = self.sinks.debugcon.as_mut() {
                let _ = s.write_all(&buf);
                let _ = s.flush();
            }
        }
        for (i, id) in self.wiring.debugcons.clone().into_iter().enumerate() {
            buf.clear();
            if let Some(d) = self.plat.get::<DebugCon>(id) {
                d.drain_output(&mut buf);
            }
            if let Some(Some(s)) = self.sinks.debugcons.get_mut(i) {
                if !buf.is_empty() {
                    let _ = s.write_all(&buf);
                    let _ = s.flush();
                }
            }
        }
    }

    /// Whether queued host input may enter the guest now. Host time: at
    /// every look around. Icount time: at the first look after virtual time
    /// crossed a multiple of `SLICE`, and whenever the CPU halts (the run
    /// loop's Halted arm), so a guest waiting for input gets it at once:
    /// points fixed by the guest's execution alone, so typed bytes reach the
    /// UART at the same instruction in a run restored from a snapshot (which
    /// may start anywhere, between two such points) as in the uninterrupted
    /// run. (The looks at slice ends in between depend on where the run
    /// started.)
    fn input_due(&mut self, icount: u64) -> bool {
        match self.cfg.clock {
            ClockMode::Host => true,
            ClockMode::Icount { .. } => {
                let q = icount / SLICE;
                let due = q != self.fed_quantum;
                self.fed_quantum = q;
                due
            }
        }
    }

    fn feed_serial(&mut self) {
        if self.serial_in.is_empty() {
            return;
        }
        let now = self.plat.clock.now(self.cpu.icount);
        let id = self.wiring.com[0];
        while let Some(&b) = self.serial_in.front() {
            let Some(u) = self.plat.get::<Uart>(id) else {
                break;
            };
            if !u.receive(b, now) {
                break;
            }
            self.serial_in.pop_front();
        }
        // The receiver's interrupt line follows on the next access; catch up now.
        self.plat.advance(now);
    }

    /// Hands ranges that devices wrote by DMA to the CPU's block cache.
    pub(crate) fn sync_dma(&mut self) {
        for (start, end) in self.mem.take_dma_writes() {
            self.cpu.invalidate_phys(start, end - start);
        }
    }

    /// Platform reset (triple fault without -no-reboot, keyboard-controller
    /// reset): the CPU restarts at the reset vector; RAM keeps its contents.
    /// With `-kernel` the kernel is loaded and entered again instead.
    pub fn reset(&mut self) {
        let icount = self.cpu.icount;
        self.cpu.reset();
        self.plat.forget_lost_ticks();
        self.plat.reset_apic();
        if let Some(k) = self.kernel.take() {
            // It loaded once, so it loads again; if not, the BIOS runs.
            let _ = self.boot_kernel(k);
        }
        self.cpu.icount = icount;
        self.cpu.a20_mask = if self.plat.a20() { !0 } else { !(1 << 20) };
    }

    /// Direct kernel boot (`-kernel`): loads the kernel, initrd and command
    /// line (see `crate::boot`) and leaves the devices as a BIOS would have
    /// left them for it: the VGA in 80x25 text mode, or with `Console::Framebuffer`
    /// in a 32-bpp Bochs VBE linear-framebuffer mode; on `-M pc` the PCI
    /// functions get their BARs and interrupt lines. The PIC, PIT and UARTs
    /// are programmed by the kernel itself.
    pub fn boot_kernel(
        &mut self,
        k: crate::boot::KernelBoot,
    ) -> Result<crate::boot::Booted, crate::boot::BootError> {
        self.setup_pci_as_firmware();
        if let Some(a) = self.plat.apic.as_mut() {
            a.lapic.firmware_setup();
        }
        let booted = crate::boot::load(&mut self.cpu, &k)?;
        if self.plat.apic.as_ref().is_some_and(|a| a.ioapic.is_some()) {
            // Every slot free now (past the PIIX3) is hot-pluggable.
            let taken = self.plat.pci_functions().iter().fold(0u32, |m, (a, _)| {
                m | 1u32.checked_shl(a.slot.into()).unwrap_or(0)
            });
            let hotplug = !taken & !0b11;
            if crate::boot::acpi::install(&mut self.mem, hotplug) {
                if let Some(pm) = self.plat.find::<crate::devices::acpi_pm::AcpiPm>() {
                    pm.set_hotplug_slots(hotplug);
                }
            } else {
                eprintln!("vx86: -kernel: no room for the ACPI tables at 0xE0000 (BIOS image larger than 64 KiB)");
            }
        }
        let now = self.plat.clock.now(self.cpu.icount);
        if let Some(vga) = self.vga() {
            match k.opts.console {
                crate::boot::Console::VgaText => vga.set_text_mode_80x25(),
                crate::boot::Console::Framebuffer { width, height } => {
                    use crate::devices::vga::vbe::*;
                    use crate::devices::PortDevice;
                    let mut dispi = |index: u16, value: u16| {
                        PortDevice::io_write(vga, 0x1CE, 2, index as u32, now);
                        PortDevice::io_write(vga, 0x1CF, 2, value as u32, now);
                    };
                    dispi(VBE_DISPI_INDEX_ENABLE, 0);
                    dispi(VBE_DISPI_INDEX_XRES, width);
                    dispi(VBE_DISPI_INDEX_YRES, height);
                    dispi(VBE_DISPI_INDEX_BPP, 32);
                    dispi(
                        VBE_DISPI_INDEX_ENABLE,
                        VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED,
                    );
                }
            }
        }
        self.kernel = Some(k);
        Ok(booted)
    }

    /// What a PC BIOS does to the PCI bus before it boots an OS (for direct
    /// kernel boots, where no BIOS runs), as vx86's BIOS does it
    /// (`firmware/pci.inc`) and SeaBIOS under QEMU: PIRQ routing, the routed
    /// IRQs level-triggered in the ELCR (PCI interrupts are shared, active
    /// low levels: PIIX3 datasheet 4.1, ELCR1/ELCR2), and every function's
    /// BARs assigned, decoding enabled, bus mastering on and its interrupt
    /// line written.
    pub fn setup_pci_as_firmware(&mut self) {
        if let Some(id) = self.wiring.piix3 {
            if let Some(p) = self.plat.get::<crate::pci::host::Piix3Isa>(id) {
                p.set_default_routing();
            }
            let mut elcr = [0u8; 2];
            for irq in crate::pci::host::DEFAULT_PIRQ_IRQS {
                elcr[usize::from(irq >> 3) & 1] |= 1 << (irq & 7);
            }
            let now = self.plat.clock.now(self.cpu.icount);
            use crate::devices::PortDevice;
            let pic = &mut self.plat.pic;
            for (port, v) in [
                crate::devices::pic::PORT_ELCR_MASTER,
                crate::devices::pic::PORT_ELCR_SLAVE,
            ]
            .into_iter()
            .zip(elcr)
            {
                let old = pic.io_read(port, 1, now) as u8;
                pic.io_write(port, 1, u32::from(old | v), now);
            }
        }
        crate::pci::firmware::assign(&mut self.plat);
    }

    /// Attaches a disk at IDE position `index` (0 primary master, 1 primary
    /// slave, 2 secondary master, 3 secondary slave) and records it in CMOS
    /// as a BIOS setup would (type 47 with its default geometry).
    pub fn attach_drive(
        &mut self,
        index: u8,
        backend: Box<dyn crate::block::BlockDevice + Send>,
    ) -> Result<(), crate::devices::ata::AttachError> {
        let ch = usize::from(index / 2) & 1;
        let unit = usize::from(index % 2);
        let Some(ata) = self.ata(ch) else {
            return Err(crate::devices::ata::AttachError::BadIndex {
                base: 0,
                index: unit,
            });
        };
        ata.attach(unit, backend)?;
        let geometry = ata.default_geometry(unit);
        if let Some(rtc) = self.rtc() {
            rtc.set_hard_disk(index & 3, geometry);
        }
        Ok(())
    }

    /// Attaches a CD-ROM drive with `medium` (or an empty one) at IDE
    /// position `index`, as [`Machine::attach_drive`] places disks. It gets
    /// no CMOS disk entry: a BIOS finds ATAPI drives by probing.
    pub fn attach_cdrom(
        &mut self,
        index: u8,
        medium: Option<Box<dyn crate::block::BlockDevice + Send>>,
    ) -> Result<(), crate::devices::ata::AttachError> {
        let ch = usize::from(index / 2) & 1;
        let unit = usize::from(index % 2);
        let Some(ata) = self.ata(ch) else {
            return Err(crate::devices::ata::AttachError::BadIndex {
                base: 0,
                index: unit,
            });
        };
        ata.attach_cdrom(unit, crate::devices::atapi::Cdrom::new(medium))
    }

    /// The boot order the BIOS reads from CMOS (`-boot order=...`): up to
    /// three of [`crate::devices::rtc::BOOT_HARD_DISK`], `BOOT_CDROM`,
    /// `BOOT_FLOPPY`.
    pub fn set_boot_order(&mut self, order: &[u8]) {
        let at = |i: usize| order.get(i).copied().unwrap_or(0);
        if let Some(rtc) = self.rtc() {
            rtc.set_boot_order(at(0), at(1), at(2));
        }
    }

    /// QEMU's `system_powerdown`: presses the ACPI power button (PWRBTN_STS,
    /// raising the SCI when the guest enabled it). Machines without ACPI
    /// (no `+apic`, or `-M isapc`) have no power button: an error line.
    pub fn system_powerdown(&mut self) -> Result<(), String> {
        let now = self.plat.clock.now(self.cpu.icount);
        self.plat
            .with_first::<crate::devices::acpi_pm::AcpiPm, _>(now, |pm, cx| {
                pm.press_power_button(cx)
            })
            .ok_or_else(|| {
                "not supported: this machine has no ACPI, so it has no power button for the \
                 guest to act on (ACPI needs -M pc -cpu qemu64,+apic; use quit, or the guest's \
                 own poweroff)"
                    .to_string()
            })
    }

    /// Writes every disk's cached data to its file (at exit).
    pub fn flush_disks(&mut self) -> std::io::Result<()> {
        let a = self.ata(0).map_or(Ok(()), |c| c.flush_all());
        let b = self.ata(1).map_or(Ok(()), |c| c.flush_all());
        let mut r = a.and(b);
        for n in 0..self.blks.len() {
            if let Some(d) = self.virtio_blk(n) {
                r = r.and(d.device_mut().flush());
            }
        }
        for h in 0..self.hotplugged.len() {
            let id = self.hotplugged[h].dev;
            if let Some(d) = self.plat.get::<VirtioBlkPci>(id) {
                r = r.and(d.device_mut().flush());
            }
        }
        r
    }

    /// The monitor's `drive_add`: opens a drive (`-drive` syntax, `if=none`
    /// and an `id` required, raw or qcow2 as the block layer probes it) for
    /// a later `device_add`.
    pub fn drive_add(&mut self, opts: &str) -> Result<(), String> {
        let spec = crate::block::drive_spec::DriveSpec::parse(opts).map_err(|e| e.to_string())?;
        let Some(id) = spec.id.clone() else {
            return Err("the drive needs an id (id=NAME)".into());
        };
        if spec.interface != crate::block::drive_spec::Interface::None || spec.cdrom {
            return Err("only if=none drives can be added at run time (then device_add)".into());
        }
        if self.pending_drives.iter().any(|d| d.id == id) {
            return Err(format!("a drive with id '{id}' already exists"));
        }
        let disk = crate::block::open_drive(&spec).map_err(|e| e.to_string())?;
        self.pending_drives.push(PendingDrive {
            id,
            serial: spec.serial.unwrap_or_default(),
            disk,
        });
        Ok(())
    }

    /// The monitor's `device_add virtio-blk-pci,drive=ID[,id=DEVID][,addr=N]`:
    /// puts a virtio disk over drive `ID` in a free hot-pluggable slot (or
    /// slot N) and tells the guest through ACPI (PCI_UP, GPE0 bit 1), as
    /// QEMU's i440FX does; Linux's acpiphp then enumerates the slot.
    pub fn device_add(&mut self, opts: &str) -> Result<(), String> {
        let mut parts = opts.split(',');
        let first = parts.next().unwrap_or("");
        let mut driver = first.strip_prefix("driver=").unwrap_or(first).to_string();
        let (mut drive, mut id, mut addr) = (None, None, None);
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k {
                "drive" => drive = Some(v.to_string()),
                "id" => id = Some(v.to_string()),
                "addr" => addr = Some(v.to_string()),
                "driver" => driver = v.to_string(),
                _ => return Err(format!("'{driver}' has no property '{k}'")),
            }
        }
        if driver != "virtio-blk-pci" {
            return Err(format!(
                "'{driver}' cannot be added at run time (vx86 hot-plugs virtio-blk-pci only)"
            ));
        }
        let Some(drive) = drive else {
            return Err("virtio-blk-pci needs drive=ID (a drive_add ... if=none,id=ID)".into());
        };
        let hotplug = self
            .plat
            .find::<crate::devices::acpi_pm::AcpiPm>()
            .map_or(0, |pm| pm.hotplug_slots());
        if hotplug == 0 {
            return Err("this machine has no ACPI PCI hotplug (it needs -M pc -cpu \
                        qemu64,+apic and a -kernel boot, whose ACPI tables describe the slots)"
                .into());
        }
        let id = id.unwrap_or_else(|| drive.clone());
        if self.hotplugged.iter().any(|h| h.id == id) {
            return Err(format!("duplicate ID '{id}' for device"));
        }
        let taken = self.plat.pci_functions().iter().fold(0u32, |m, (a, _)| {
            m | 1u32.checked_shl(a.slot.into()).unwrap_or(0)
        });
        let free = hotplug & !taken;
        let slot = match addr {
            Some(a) => {
                let a = a.split('.').next().unwrap_or("");
                let a = a.strip_prefix("0x").unwrap_or(a);
                let n = u8::from_str_radix(a, 16)
                    .ok()
                    .filter(|&n| n < PCI_SLOTS)
                    .ok_or_else(|| format!("bad PCI address '{a}' (a slot 0-1f)"))?;
                if free & (1 << n) == 0 {
                    return Err(format!("PCI slot {n:#x} is not a free hot-pluggable slot"));
                }
                n
            }
            None => match (0..PCI_SLOTS).find(|&n| free & (1 << n) != 0) {
                Some(n) => n,
                None => return Err("no free hot-pluggable PCI slot".into()),
            },
        };
        let Some(at) = self.pending_drives.iter().position(|d| d.id == drive) else {
            return Err(format!("no drive '{drive}' (add it with drive_add first)"));
        };
        let d = self.pending_drives.remove(at);
        let blk = crate::devices::virtio::blk::VirtioBlk::new(d.disk, &d.serial);
        let dev = crate::devices::virtio::pci::VirtioPci::new(blk, self.mem.dma(), slot);
        let dev = self.plat.add_pci(slot, 0, dev).map_err(|e| e.to_string())?;
        self.hotplug_changed = true;
        self.hotplugged.push(HotplugDevice { id, slot, dev });
        let now = self.plat.clock.now(self.cpu.icount);
        self.plat
            .with_first::<crate::devices::acpi_pm::AcpiPm, _>(now, |pm, cx| pm.plug(slot, cx));
        Ok(())
    }

    /// The monitor's `device_del DEVID`: asks the guest to eject a device
    /// `device_add` added (PCI_DOWN, GPE0 bit 1: an ACPI eject request). It
    /// goes when the guest writes B0EJ; then its drive is flushed and closed.
    pub fn device_del(&mut self, id: &str) -> Result<(), String> {
        let Some(slot) = self.hotplugged.iter().find(|h| h.id == id).map(|h| h.slot) else {
            return Err(format!(
                "Device '{id}' not found (only devices device_add added can be removed)"
            ));
        };
        let now = self.plat.clock.now(self.cpu.icount);
        self.plat
            .with_first::<crate::devices::acpi_pm::AcpiPm, _>(now, |pm, cx| {
                pm.request_unplug(slot, cx)
            });
        Ok(())
    }

    /// Takes off the bus the devices the guest ejected (B0EJ), flushing
    /// and closing their drives.
    fn remove_ejected(&mut self) {
        if self.hotplugged.is_empty() {
            return;
        }
        let now = self.plat.clock.now(self.cpu.icount);
        let ejected = self
            .plat
            .with_first::<crate::devices::acpi_pm::AcpiPm, _>(now, |pm, _| pm.take_ejected())
            .unwrap_or(0);
        if ejected == 0 {
            return;
        }
        let mut keep = Vec::new();
        for h in std::mem::take(&mut self.hotplugged) {
            if ejected & (1u32 << h.slot) == 0 {
                keep.push(h);
                continue;
            }
            let Some(dev) = self.plat.remove_pci(h.slot) else {
                continue;
            };
            let any: Box<dyn std::any::Any> = dev;
            if let Ok(mut blk) = any.downcast::<VirtioBlkPci>() {
                if let Err(e) = blk.device_mut().flush() {
                    eprintln!("vx86: device_del {}: flushing its drive: {e}", h.id);
                }
            }
        }
        self.hotplugged = keep;
    }

    /// Renders the screen as it is now (for `--screenshot-on-exit`).
    pub fn screenshot(&mut self) -> crate::devices::vga::Frame {
        let mut frame = crate::devices::vga::Frame::default();
        let now = self.plat.clock.now(self.cpu.icount);
        if let Some(vga) = self.vga() {
            vga.invalidate();
            vga.render(&mut frame, now);
        }
        frame
    }

    /// Applies one host event; returns true for Quit.
    fn take_input(&mut self, ev: HostInput) -> bool {
        match ev {
            HostInput::Serial(bytes) => self.serial_in.extend(bytes),
            HostInput::Key(k, pressed) => {
                if let Some(kbc) = self.kbc() {
                    kbc.key_event(k, pressed);
                }
                let now = self.plat.clock.now(self.cpu.icount);
                self.plat.advance(now);
            }
            HostInput::Quit => return true,
        }
        false
    }

    /// Waits up to `wait` of host time for host input or a network backend's
    /// wake-up; returns true for Quit.
    fn wait_for_input(&mut self, wait: Duration) -> bool {
        self.flush_output();
        let mut sel = crossbeam_channel::Select::new();
        let input = self.host.input.as_ref().map(|rx| sel.recv(rx));
        for w in &self.wakers {
            sel.recv(w);
        }
        if input.is_none() && self.wakers.is_empty() {
            std::thread::sleep(wait);
            return false;
        }
        let ev = match sel.select_timeout(wait) {
            Ok(op) if Some(op.index()) == input => match &self.host.input {
                Some(rx) => op.recv(rx).ok(),
                None => None,
            },
            Ok(op) => {
                // A backend has host data: take the token; the NIC polls it
                // when the loop catches the devices up.
                if let Some(w) = self.wakers.get(op.index() - usize::from(input.is_some())) {
                    let _ = op.recv(w);
                }
                None
            }
            Err(_) => None,
        };
        match ev {
            Some(ev) => self.take_input(ev),
            None => false,
        }
    }

    /// A channel whose messages wake an idle machine (host-side threads:
    /// network backends, the gdb stub).
    pub fn add_waker(&mut self, rx: crossbeam_channel::Receiver<()>) {
        self.wakers.push(rx);
    }

    /// Adds a virtio-net-pci card on the PCI bus (slot 3 for the first, as
    /// QEMU places it) with `backend` behind it.
    pub fn add_virtio_net(
        &mut self,
        mac: [u8; 6],
        backend: Box<dyn crate::net::NetBackend>,
    ) -> Result<DevId, PlatformError> {
        let slot = self.take_slot("virtio-net-pci")?;
        let waker = backend.host_wakeup();
        let nic = crate::devices::virtio::net::VirtioNet::new(mac, backend);
        let dev = crate::devices::virtio::pci::VirtioPci::new(nic, self.mem.dma(), slot);
        let id = self.plat.add_pci(slot, 0, dev)?;
        self.wakers.push(waker);
        self.nics.push(id);
        Ok(id)
    }

    /// The next free PCI slot for a card.
    fn take_slot(&mut self, name: &'static str) -> Result<u8, PlatformError> {
        if self.next_slot >= PCI_SLOTS {
            return Err(PlatformError::NoFreeSlot(name));
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        Ok(slot)
    }

    /// Adds a virtio-blk-pci disk on the PCI bus (the next free slot) over
    /// `disk`; `serial` is its GET_ID string. `-M pc` only: on the ISA PC
    /// this is [`PlatformError::NoPci`].
    pub fn add_virtio_blk(
        &mut self,
        disk: Box<dyn crate::block::BlockDevice + Send>,
        serial: &str,
    ) -> Result<DevId, PlatformError> {
        if self.cfg.machine != MachineType::Pc {
            return Err(PlatformError::NoPci("virtio-blk-pci"));
        }
        let slot = self.take_slot("virtio-blk-pci")?;
        let blk = crate::devices::virtio::blk::VirtioBlk::new(disk, serial);
        let dev = crate::devices::virtio::pci::VirtioPci::new(blk, self.mem.dma(), slot);
        let id = self.plat.add_pci(slot, 0, dev)?;
        self.blks.push(id);
        Ok(id)
    }

    /// The `n`-th virtio disk.
    pub fn virtio_blk(
        &mut self,
        n: usize,
    ) -> Option<&mut crate::devices::virtio::pci::VirtioPci<crate::devices::virtio::blk::VirtioBlk>>
    {
        let id = *self.blks.get(n)?;
        self.plat.get(id)
    }

    /// One `--stats` line per virtio disk.
    pub fn blk_stats(&mut self) -> Vec<String> {
        use crate::devices::virtio::VirtioDevice;
        (0..self.blks.len())
            .filter_map(|n| self.virtio_blk(n).and_then(|d| d.device().stats_line()))
            .collect()
    }

    /// The `n`-th network card.
    pub fn virtio_net(
        &mut self,
        n: usize,
    ) -> Option<&mut crate::devices::virtio::pci::VirtioPci<crate::devices::virtio::net::VirtioNet>>
    {
        let id = *self.nics.get(n)?;
        self.plat.get(id)
    }

    /// One `--stats` line per network card.
    pub fn nic_stats(&mut self) -> Vec<String> {
        use crate::devices::virtio::VirtioDevice;
        (0..self.nics.len())
            .filter_map(|n| self.virtio_net(n).and_then(|d| d.device().stats_line()))
            .collect()
    }

    /// Takes host input, sends frames and speed to a window, and with
    /// `-icount ...,align=on` waits while virtual time is ahead of host time.
    /// Called between CPU slices; returns true when the user asked to quit.
    pub(crate) fn poll_host(&mut self) -> bool {
        while let Some(ev) = self.host.input.as_ref().and_then(|rx| rx.try_recv().ok()) {
            if self.take_input(ev) {
                return true;
            }
        }
        let t = Instant::now();
        if self.host.display.is_some() {
            if t >= self.host_timer.next_frame {
                self.host_timer.next_frame = t + FRAME_INTERVAL;
                let now = self.plat.clock.now(self.cpu.icount);
                let mut frame = std::mem::take(&mut self.host_timer.frame);
                let changed = self.vga().is_some_and(|v| v.render(&mut frame, now));
                if changed {
                    if let Some(tx) = &self.host.display {
                        let _ = tx.try_send(DisplayUpdate::Frame(frame.clone()));
                    }
                }
                self.host_timer.frame = frame;
            }
            if t >= self.host_timer.next_mips {
                let retired = self.cpu.icount - self.idle_insns;
                let secs = (t - self.host_timer.next_mips + Duration::from_secs(1)).as_secs_f64();
                let mips = retired.saturating_sub(self.host_timer.mips_icount) as f64 / secs / 1e6;
                self.host_timer.mips_icount = retired;
                self.host_timer.next_mips = t + Duration::from_secs(1);
                if let Some(tx) = &self.host.display {
                    let _ = tx.try_send(DisplayUpdate::Mips(mips));
                }
            }
        }
        if let ClockMode::Icount { align: true, .. } = self.cfg.clock {
            let virt = Duration::from_nanos(self.plat.clock.now(self.cpu.icount));
            let real = t - self.host_timer.start;
            if virt > real + REALTIME_SLACK {
                // Wait out the lead, but wake at once for host input.
                return self.wait_for_input((virt - real).min(Duration::from_millis(100)));
            }
        }
        false
    }

    /// Takes `d` of host time out of the frame, speed and `align=on`
    /// bookkeeping (the monitor stopped the machine for that long).
    pub(crate) fn hold_host_timer(&mut self, d: Duration) {
        self.host_timer.start += d;
    }

    /// Runs until the guest or the user ends the run.
    pub fn run(&mut self) -> RunExit {
        // Host time starts when the guest does, not when the machine was built.
        self.host_timer = HostTimer::new();
        if self.cfg.clock == ClockMode::Host && self.cpu.icount == 0 {
            self.plat.clock.restart();
            self.cpu.clock = self.plat.clock;
        }
        let exit = self.run_inner();
        if let Some(tx) = &self.host.display {
            let _ = tx.send(DisplayUpdate::Stopped(exit.describe()));
        }
        exit
    }

    /// How far the CPU may run from `icount` before the loop must look at the
    /// devices again.
    fn plan(&self, icount: u64, now: crate::devices::Nanos) -> u64 {
        let deadline = self.plat.next_deadline();
        let until = match self.cfg.clock {
            ClockMode::Icount { .. } => {
                let mut until = (icount / SLICE + 1) * SLICE;
                if let Some(d) = deadline {
                    until = until.min(self.plat.clock.insns_until(d).max(icount + 1));
                }
                until
            }
            ClockMode::Host => {
                let ns = deadline
                    .map_or(HOST_SLICE_NS, |d| d.saturating_sub(now))
                    .min(HOST_SLICE_NS);
                let n = (ns as f64 * self.ips) as u64;
                icount + n.clamp(MIN_HOST_SLICE, SLICE)
            }
        };
        match self.cfg.max_insns {
            Some(m) => until.min(m),
            None => until,
        }
    }

    fn run_inner(&mut self) -> RunExit {
        loop {
            if let Some(exit) = crate::monitor::service(self) {
                self.flush_output();
                return exit;
            }
            if self.quit.load(std::sync::atomic::Ordering::Relaxed)
                || crate::frontend::signal_quit()
                || self.poll_host()
            {
                self.flush_output();
                return RunExit::Quit;
            }
            if self.gdb.is_some() {
                if let Some(r) = crate::gdb::service(self) {
                    self.flush_output();
                    return r;
                }
            }
            self.sync_dma();
            let icount = self.cpu.icount;
            let now = self.plat.clock.now(icount);
            self.plat.advance(now);
            if self.input_due(icount) {
                self.feed_serial();
            }
            if let Some(m) = self.cfg.max_insns {
                if icount >= m {
                    self.flush_output();
                    return RunExit::InstructionLimit;
                }
            }
            let until = self.plan(icount, now);
            let started = Instant::now();
            let exit = self.cpu.run(&mut self.plat, until);
            if self.cfg.clock == ClockMode::Host {
                // Track the guest's speed for the next slice's size.
                let ran = self.cpu.icount - icount;
                let ns = started.elapsed().as_nanos() as f64;
                if ran > 1000 && ns > 0.0 {
                    // Down at once (a slice that ran long, e.g. MMIO-heavy
                    // code after a fast loop, delays every timer by its
                    // overrun), up gradually.
                    let measured = ran as f64 / ns;
                    self.ips = if measured < 0.5 * self.ips {
                        measured
                    } else {
                        0.8 * self.ips + 0.2 * measured
                    };
                }
            }
            // FERR# drives IRQ13 on the PC/AT (CR0.NE=0 error reporting).
            self.sync_dma();
            if let Some(r) = self.act_on_events() {
                return r;
            }
            match exit {
                Exit::Budget | Exit::Stop => {}
                Exit::TripleFault => {
                    if self.cfg.no_reboot {
                        self.flush_output();
                        return RunExit::TripleFault;
                    }
                    self.reset();
                }
                Exit::Halted => {
                    // Input for a guest that waits for it (see `input_due`).
                    self.feed_serial();
                    let if_set = self.cpu.flags.bits & crate::cpu::state::rflags::IF != 0;
                    if !if_set && !self.cpu.nmi_pending {
                        self.flush_output();
                        return RunExit::HaltedForever;
                    }
                    if self.idle() {
                        self.flush_output();
                        return RunExit::Quit;
                    }
                }
            }
            self.flush_output();
        }
    }

    /// Acts on what devices asked for during the last slice; `Some` ends the run.
    fn act_on_events(&mut self) -> Option<RunExit> {
        let ev = self.plat.take_events();
        if self.plat.take_nmi() {
            self.cpu.nmi_pending = true;
        }
        if ev.clear_ferr {
            self.cpu.ferr = false;
        }
        self.plat.set_ferr_line(self.cpu.ferr);
        if !ev.attention {
            return None;
        }
        self.remove_ejected();
        let a20_mask = if self.plat.a20() { !0 } else { !(1 << 20) };
        if a20_mask != self.cpu.a20_mask {
            // Cached translations and blocks were made with the old gate.
            self.cpu.a20_mask = a20_mask;
            self.cpu.tlb.flush_all();
        }
        self.flush_output();
        if let Some(code) = ev.exit {
            return Some(RunExit::DebugExit(code));
        }
        if ev.poweroff {
            return Some(RunExit::PowerOff);
        }
        if ev.reset {
            if self.cfg.no_reboot {
                return Some(RunExit::Reset);
            }
            self.reset();
        }
        None
    }

    /// The CPU halted with interrupts enabled: let time pass until something
    /// can wake it. Returns true when the user asked to quit meanwhile.
    fn idle(&mut self) -> bool {
        let now = self.plat.clock.now(self.cpu.icount);
        self.plat.advance(now);
        if self.plat.intr_line() {
            return false;
        }
        if self.plat.take_nmi() {
            self.cpu.nmi_pending = true;
            return false;
        }
        let deadline = self.plat.next_deadline();
        match self.cfg.clock {
            ClockMode::Host => {
                let wait = deadline.map_or(IDLE_WAIT, |d| {
                    Duration::from_nanos(d.saturating_sub(now)).min(IDLE_WAIT)
                });
                if !wait.is_zero() {
                    return self.wait_for_input(wait);
                }
                false
            }
            ClockMode::Icount { sleep, .. } => {
                let target = deadline.map(|d| self.plat.clock.insns_until(d));
                let target = match (target, self.cfg.max_insns) {
                    (Some(t), Some(m)) => Some(t.min(m)),
                    (t, None) => t,
                    (None, Some(m)) => Some(m),
                };
                let icount = self.cpu.icount;
                let step = match target {
                    Some(t) if t > icount => t - icount,
                    Some(_) => return false,
                    // Nothing scheduled: wait a little for host input.
                    None => {
                        if self.serial_in.is_empty()
                            && self.wait_for_input(Duration::from_millis(1))
                        {
                            return true;
                        }
                        1000
                    }
                };
                if sleep {
                    // Idle time passes in real time: sleep until host time
                    // reaches the target's virtual time (waking for input).
                    let virt = self.plat.clock.now(icount + step);
                    let real = self.host_timer.start.elapsed().as_nanos() as u64;
                    if virt > real {
                        let wait = Duration::from_nanos(virt - real).min(IDLE_WAIT);
                        if self.wait_for_input(wait) {
                            return true;
                        }
                        // Woken early: advance only as far as host time got.
                        let real = self.host_timer.start.elapsed().as_nanos() as u64;
                        let reached = self
                            .plat
                            .clock
                            .insns_until(real)
                            .clamp(icount, icount + step);
                        self.idle_insns += reached - icount;
                        self.cpu.icount = reached;
                        return false;
                    }
                }
                self.idle_insns += step;
                self.cpu.icount += step;
                false
            }
        }
    }
}
