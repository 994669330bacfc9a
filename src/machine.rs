//! The machine: CPU + memory + the ISA devices of QEMU's `-M isapc`, and the
//! run loop. Data flows one way (STYLE.md): the loop asks the devices for
//! their next deadline, lets the CPU run whole blocks until then, fires the
//! expired timers (PIT -> PIC -> CPU INTR), and hands serial and debug-port
//! bytes to the output sinks.

use crate::cpu::{Bus, Cpu, Exit};
use crate::devices::ata::AtaChannel;
use crate::devices::debug_port::{DebugCon, DebugExit, PostCode};
use crate::devices::i8042::I8042;
use crate::devices::pic::Pic;
use crate::devices::pit::Pit;
use crate::devices::rtc::Rtc;
use crate::devices::sysctl::SystemControlPortA as SysCtl;
use crate::devices::uart::Uart;
use crate::devices::vga::Vga;
use crate::devices::{Nanos, PortDevice};
use crate::frontend::{DisplayUpdate, HostInput, HostLink};
use crate::io::{Dev, PortMap};
use crate::memory::GuestMemory;
use crate::time::{earliest, VirtualClock};
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
}

impl RunExit {
    /// The process exit status, as QEMU would give it.
    pub fn status(&self) -> i32 {
        match self {
            RunExit::DebugExit(s) => *s,
            RunExit::InstructionLimit | RunExit::Quit | RunExit::Reset => 0,
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
        }
    }
}

/// Where guest output goes.
#[derive(Default)]
pub struct Sinks {
    pub serial: Option<Box<dyn Write + Send>>,
    pub debugcon: Option<Box<dyn Write + Send>>,
}

/// All devices on the ISA bus, and the `Bus` the CPU sees.
pub struct Platform {
    pub ports: PortMap,
    pub clock: VirtualClock,
    pub pic: Pic,
    pub pit: Pit,
    pub rtc: Rtc,
    pub uart: [Uart; 4],
    pub kbc: I8042,
    pub sysctl: SysCtl,
    pub debugcon: DebugCon,
    pub seabios_con: DebugCon,
    pub debug_exit: Option<DebugExit>,
    pub post: PostCode,
    pub vga: Vga,
    pub ata: [AtaChannel; 2],
    /// Something happened that the run loop must act on (exit, reset, A20).
    pub attention: bool,
    pub a20: bool,
    pub reset_request: bool,
    pub exit_request: Option<i32>,
    /// A guest write to port F0h asked to clear the CPU's FERR# output.
    pub clear_ferr: bool,
}

impl Platform {
    fn new(ram: u64, rtc_base: i64, debug_exit: Option<DebugExit>) -> Self {
        let mut ports = PortMap::default();
        ports.add(0x20..=0x21, Dev::Pic);
        ports.add(0xA0..=0xA1, Dev::Pic);
        ports.add(0x4D0..=0x4D1, Dev::Pic);
        ports.add(0x40..=0x43, Dev::Pit);
        ports.add(0x61..=0x61, Dev::Pit);
        ports.add(0x70..=0x71, Dev::Rtc);
        ports.add(0x3F8..=0x3FF, Dev::Uart0);
        ports.add(0x2F8..=0x2FF, Dev::Uart1);
        ports.add(0x3E8..=0x3EF, Dev::Uart2);
        ports.add(0x2E8..=0x2EF, Dev::Uart3);
        ports.add(0x60..=0x60, Dev::Kbc);
        ports.add(0x64..=0x64, Dev::Kbc);
        ports.add(0x92..=0x92, Dev::SysCtl);
        ports.add(0xE9..=0xE9, Dev::DebugCon);
        ports.add(0x402..=0x402, Dev::DebugCon);
        ports.add(0x80..=0x80, Dev::Post);
        ports.add(0xF0..=0xF0, Dev::FpuErr);
        ports.add(0x3B0..=0x3DF, Dev::Vga);
        ports.add(0x1CE..=0x1CF, Dev::Vga);
        ports.add(0x1F0..=0x1F7, Dev::Ata0);
        ports.add(0x3F6..=0x3F6, Dev::Ata0);
        ports.add(0x170..=0x177, Dev::Ata1);
        ports.add(0x376..=0x376, Dev::Ata1);
        if let Some(d) = &debug_exit {
            let end = d
                .iobase()
                .saturating_add((d.iosize() as u16).saturating_sub(1));
            ports.add(d.iobase()..=end, Dev::DebugExit);
        }
        let mut rtc = Rtc::new(rtc_base);
        rtc.set_memory_size(ram);
        // QEMU's default order (hard disk, floppy, CD-ROM), which firmware of
        // the Bochs lineage (SeaBIOS, the Bochs BIOS) reads from CMOS.
        {
            use crate::devices::rtc::{BOOT_CDROM, BOOT_FLOPPY, BOOT_HARD_DISK};
            rtc.set_boot_order(BOOT_HARD_DISK, BOOT_FLOPPY, BOOT_CDROM);
        }
        Platform {
            ports,
            clock: VirtualClock::default(),
            pic: Pic::new(),
            pit: Pit::new(),
            rtc,
            uart: [
                Uart::new(0x3F8),
                Uart::new(0x2F8),
                Uart::new(0x3E8),
                Uart::new(0x2E8),
            ],
            kbc: I8042::new(),
            sysctl: SysCtl::new(),
            debugcon: DebugCon::new(0xE9),
            seabios_con: DebugCon::new(0x402),
            debug_exit,
            post: PostCode::new(),
            vga: Vga::new(),
            ata: [AtaChannel::new(0x1F0, 0x3F6), AtaChannel::new(0x170, 0x376)],
            attention: false,
            a20: true,
            reset_request: false,
            exit_request: None,
            clear_ferr: false,
        }
    }

    /// Propagates device interrupt outputs to the PIC inputs.
    pub(crate) fn update_irqs(&mut self) {
        self.pic.set_irq(1, self.kbc.irq1());
        self.pic.set_irq(12, self.kbc.irq12());
        self.pic
            .set_irq(4, self.uart[0].irq() || self.uart[2].irq());
        self.pic
            .set_irq(3, self.uart[1].irq() || self.uart[3].irq());
        self.pic.set_irq(8, self.rtc.irq());
        self.pic.set_irq(14, self.ata[0].irq());
        self.pic.set_irq(15, self.ata[1].irq());
    }

    /// Catches every timer up to `now` and raises the resulting IRQs.
    pub fn advance(&mut self, now: Nanos) {
        let edges = self.pit.advance(now);
        if edges > 0 {
            self.pic.set_irq(0, true);
            self.pic.set_irq(0, false);
        }
        self.rtc.advance(now);
        self.kbc.advance(now);
        for u in self.uart.iter_mut() {
            u.advance(now);
        }
        self.update_irqs();
    }

    pub fn next_deadline(&self) -> Option<Nanos> {
        earliest(&[
            self.pit.next_deadline(),
            self.rtc.next_deadline(),
            self.kbc.next_deadline(),
            self.uart[0].next_deadline(),
            self.uart[1].next_deadline(),
            self.uart[2].next_deadline(),
            self.uart[3].next_deadline(),
        ])
    }

    fn after_kbc_or_sysctl(&mut self) {
        let a20 = self.kbc.a20() || self.sysctl.a20();
        if a20 != self.a20 {
            self.a20 = a20;
            self.attention = true;
        }
        if self.kbc.take_reset_request() || self.sysctl.take_reset_request() {
            self.reset_request = true;
            self.attention = true;
        }
    }
}

impl Bus for Platform {
    fn io_read(&mut self, port: u16, size: u8, icount: u64) -> u32 {
        let now = self.clock.now(icount);
        let v = match self.ports.get(port) {
            Dev::None | Dev::BiosTrap => u32::MAX,
            Dev::Ata0 | Dev::Ata1 => {
                let i = (self.ports.get(port) == Dev::Ata1) as usize;
                let v = self.ata[i].io_read(port, size, now);
                self.update_irqs();
                v
            }
            Dev::Vga => self.vga.io_read(port, size, now),
            Dev::Pic => self.pic.io_read(port, size, now),
            Dev::Pit => self.pit.io_read(port, size, now),
            Dev::Rtc => {
                let v = self.rtc.io_read(port, size, now);
                self.pic.set_irq(8, self.rtc.irq());
                v
            }
            Dev::Uart0 | Dev::Uart1 | Dev::Uart2 | Dev::Uart3 => {
                let i = self.ports.get(port) as usize - Dev::Uart0 as usize;
                let v = self.uart[i & 3].io_read(port, size, now);
                self.update_irqs();
                v
            }
            Dev::Kbc => {
                let v = self.kbc.io_read(port, size, now);
                self.update_irqs();
                v
            }
            Dev::SysCtl => self.sysctl.io_read(port, size, now),
            Dev::DebugCon if port == 0x402 => self.seabios_con.io_read(port, size, now),
            Dev::DebugCon => self.debugcon.io_read(port, size, now),
            Dev::DebugExit | Dev::FpuErr => u32::MAX,
            Dev::Post => self.post.io_read(port, size, now),
        };
        v & crate::cpu::flags::size_mask(size) as u32
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, icount: u64) {
        let now = self.clock.now(icount);
        match self.ports.get(port) {
            Dev::None | Dev::BiosTrap => {}
            Dev::Ata0 | Dev::Ata1 => {
                let i = (self.ports.get(port) == Dev::Ata1) as usize;
                self.ata[i].io_write(port, size, value, now);
                self.update_irqs();
            }
            Dev::Vga => self.vga.io_write(port, size, value, now),
            Dev::Pic => self.pic.io_write(port, size, value, now),
            Dev::Pit => {
                self.pit.io_write(port, size, value, now);
                // Reprogramming may move the next deadline: re-plan.
                self.attention = true;
            }
            Dev::Rtc => {
                self.rtc.io_write(port, size, value, now);
                self.pic.set_irq(8, self.rtc.irq());
                self.attention = true;
            }
            Dev::Uart0 | Dev::Uart1 | Dev::Uart2 | Dev::Uart3 => {
                let i = self.ports.get(port) as usize - Dev::Uart0 as usize;
                self.uart[i & 3].io_write(port, size, value, now);
                self.update_irqs();
                self.attention = true;
            }
            Dev::Kbc => {
                self.kbc.io_write(port, size, value, now);
                self.update_irqs();
                self.after_kbc_or_sysctl();
            }
            Dev::SysCtl => {
                self.sysctl.io_write(port, size, value, now);
                self.after_kbc_or_sysctl();
            }
            Dev::DebugCon => {
                if port == 0x402 {
                    self.seabios_con.io_write(port, size, value, now);
                } else {
                    self.debugcon.io_write(port, size, value, now);
                }
                self.attention = true;
            }
            Dev::DebugExit => {
                if let Some(d) = self.debug_exit.as_mut() {
                    d.io_write(port, size, value, now);
                    if let Some(code) = d.take_exit_request() {
                        self.exit_request = Some(code);
                        self.attention = true;
                    }
                }
            }
            Dev::Post => self.post.io_write(port, size, value, now),
            Dev::FpuErr => {
                // PC/AT: a write to F0h clears the FERR# latch (and IRQ13).
                self.clear_ferr = true;
                self.attention = true;
            }
        }
    }

    fn mmio_read(&mut self, addr: u64, size: u8) -> u64 {
        let mut v = 0u64;
        for i in 0..size as u64 {
            let a = addr + i;
            let b = if crate::memory::VGA_WINDOW.contains(&a) {
                self.vga.mem_read(a as u32)
            } else if (crate::memory::LFB_BASE..crate::memory::LFB_BASE + crate::memory::LFB_SIZE)
                .contains(&a)
            {
                self.vga.lfb_read((a - crate::memory::LFB_BASE) as u32)
            } else {
                0xFF
            };
            v |= (b as u64) << (8 * i);
        }
        v
    }

    fn mmio_write(&mut self, addr: u64, size: u8, value: u64) {
        for i in 0..size as u64 {
            let a = addr + i;
            let b = (value >> (8 * i)) as u8;
            if crate::memory::VGA_WINDOW.contains(&a) {
                self.vga.mem_write(a as u32, b);
            } else if (crate::memory::LFB_BASE..crate::memory::LFB_BASE + crate::memory::LFB_SIZE)
                .contains(&a)
            {
                self.vga.lfb_write((a - crate::memory::LFB_BASE) as u32, b);
            }
        }
    }

    fn intr_pending(&mut self) -> bool {
        self.pic.intr()
    }

    fn needs_attention(&self) -> bool {
        self.attention
    }

    fn intr_ack(&mut self) -> u8 {
        self.pic.acknowledge()
    }
}

/// Options the machine is built from (filled by `config`).
#[derive(Clone, Debug)]
pub struct MachineConfig {
    pub ram: u64,
    pub rtc_base: i64,
    pub no_reboot: bool,
    pub max_insns: Option<u64>,
    pub debug_exit: Option<DebugExit>,
    pub no_block_cache: bool,
    /// CPUID features removed with `-cpu qemu64,-name`.
    pub features: crate::cpu::cpuid::FeatureMask,
    /// Keep virtual time from running ahead of host time (`--realtime`):
    /// idle guests then wait in real time. Off by default: runs are
    /// deterministic, time advances only with retired instructions.
    pub realtime: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            ram: 256 << 20,
            // 2026-01-01T00:00:00Z: a fixed RTC epoch keeps runs deterministic.
            rtc_base: 1_767_225_600,
            no_reboot: false,
            max_insns: None,
            debug_exit: None,
            no_block_cache: false,
            features: Default::default(),
            realtime: false,
        }
    }
}

pub struct Machine {
    pub cpu: Cpu,
    pub plat: Platform,
    pub cfg: MachineConfig,
    pub sinks: Sinks,
    /// Host bytes waiting to go into COM1.
    pub serial_in: std::collections::VecDeque<u8>,
    pub quit: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub idle_insns: u64,
    /// Channels to the frontend (host input, frames for a window).
    pub host: HostLink,
    host_timer: HostTimer,
    /// The directly booted kernel (`-kernel`), loaded again on a reset as
    /// QEMU does.
    pub kernel: Option<crate::boot::KernelBoot>,
}

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
/// Largest lead of virtual over host time tolerated in real-time mode.
const REALTIME_SLACK: Duration = Duration::from_millis(2);

/// Longest stretch the CPU runs without the loop looking at the outside world.
const SLICE: u64 = 1_000_000;

impl Machine {
    pub fn new(cfg: MachineConfig) -> Result<Self, crate::memory::MemoryError> {
        let mem = GuestMemory::new(cfg.ram)?;
        let mut cpu = Cpu::new(mem);
        cpu.no_block_cache = cfg.no_block_cache;
        cpu.features = cfg.features;
        let plat = Platform::new(cfg.ram, cfg.rtc_base, cfg.debug_exit.clone());
        Ok(Machine {
            cpu,
            plat,
            cfg,
            sinks: Sinks::default(),
            serial_in: Default::default(),
            quit: Default::default(),
            idle_insns: 0,
            host: HostLink {
                input: None,
                display: None,
            },
            host_timer: HostTimer::new(),
            kernel: None,
        })
    }

    fn flush_output(&mut self) {
        let mut buf = Vec::new();
        self.plat.uart[0].drain_output(&mut buf);
        if !buf.is_empty() {
            if let Some(s) = self.sinks.serial.as_mut() {
                let _ = s.write_all(&buf);
                let _ = s.flush();
            }
        }
        buf.clear();
        self.plat.debugcon.drain_output(&mut buf);
        self.plat.seabios_con.drain_output(&mut buf);
        if !buf.is_empty() {
            if let Some(s) = self.sinks.debugcon.as_mut() {
                let _ = s.write_all(&buf);
                let _ = s.flush();
            }
        }
    }

    fn feed_serial(&mut self) {
        let now = self.plat.clock.now(self.cpu.icount);
        while let Some(&b) = self.serial_in.front() {
            if !self.plat.uart[0].receive(b, now) {
                break;
            }
            self.serial_in.pop_front();
        }
        self.plat.update_irqs();
    }

    /// Platform reset (triple fault without -no-reboot, keyboard-controller
    /// reset): the CPU restarts at the reset vector; RAM keeps its contents.
    /// With `-kernel` the kernel is loaded and entered again instead.
    pub fn reset(&mut self) {
        let icount = self.cpu.icount;
        self.cpu.reset();
        if let Some(k) = self.kernel.take() {
            // It loaded once, so it loads again; if not, the BIOS runs.
            let _ = self.boot_kernel(k);
        }
        self.cpu.icount = icount;
        self.cpu.a20_mask = if self.plat.a20 { !0 } else { !(1 << 20) };
    }

    /// Direct kernel boot (`-kernel`): loads the kernel, initrd and command
    /// line (see `crate::boot`) and leaves the devices as a BIOS would have
    /// left them for it: the VGA in 80x25 text mode, or with `Console::Framebuffer`
    /// in a 32-bpp Bochs VBE linear-framebuffer mode. The PIC, PIT and UARTs
    /// are programmed by the kernel itself.
    pub fn boot_kernel(
        &mut self,
        k: crate::boot::KernelBoot,
    ) -> Result<crate::boot::Booted, crate::boot::BootError> {
        let booted = crate::boot::load(&mut self.cpu, &k)?;
        match k.opts.console {
            crate::boot::Console::VgaText => self.plat.vga.set_text_mode_80x25(),
            crate::boot::Console::Framebuffer { width, height } => {
                use crate::devices::vga::vbe::*;
                let now = self.plat.clock.now(self.cpu.icount);
                let mut dispi = |index: u16, value: u16| {
                    self.plat.vga.io_write(0x1CE, 2, index as u32, now);
                    self.plat.vga.io_write(0x1CF, 2, value as u32, now);
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
        self.kernel = Some(k);
        Ok(booted)
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
        self.plat.ata[ch].attach(unit, backend)?;
        let geometry = self.plat.ata[ch].default_geometry(unit);
        self.plat.rtc.set_hard_disk(index & 3, geometry);
        Ok(())
    }

    /// Writes every disk's cached data to its file (at exit).
    pub fn flush_disks(&mut self) -> std::io::Result<()> {
        let a = self.plat.ata[0].flush_all();
        let b = self.plat.ata[1].flush_all();
        a.and(b)
    }

    /// Applies one host event; returns true for Quit.
    fn take_input(&mut self, ev: HostInput) -> bool {
        match ev {
            HostInput::Serial(bytes) => self.serial_in.extend(bytes),
            HostInput::Key(k, pressed) => {
                self.plat.kbc.key_event(k, pressed);
                self.plat.update_irqs();
            }
            HostInput::Quit => return true,
        }
        false
    }

    /// Takes host input, sends frames and speed to a window, and in
    /// real-time mode waits while virtual time is ahead of host time. Called
    /// between CPU slices; returns true when the user asked to quit.
    fn poll_host(&mut self) -> bool {
        while let Some(ev) = self.host.input.as_ref().and_then(|rx| rx.try_recv().ok()) {
            if self.take_input(ev) {
                return true;
            }
        }
        let t = Instant::now();
        if let Some(tx) = &self.host.display {
            if t >= self.host_timer.next_frame {
                self.host_timer.next_frame = t + FRAME_INTERVAL;
                let now = self.plat.clock.now(self.cpu.icount);
                if self.plat.vga.render(&mut self.host_timer.frame, now) {
                    let _ = tx.try_send(DisplayUpdate::Frame(self.host_timer.frame.clone()));
                }
            }
            if t >= self.host_timer.next_mips {
                let retired = self.cpu.icount - self.idle_insns;
                let secs = (t - self.host_timer.next_mips + Duration::from_secs(1)).as_secs_f64();
                let mips = retired.saturating_sub(self.host_timer.mips_icount) as f64 / secs / 1e6;
                self.host_timer.mips_icount = retired;
                self.host_timer.next_mips = t + Duration::from_secs(1);
                let _ = tx.try_send(DisplayUpdate::Mips(mips));
            }
        }
        if self.cfg.realtime {
            let virt = Duration::from_nanos(self.plat.clock.now(self.cpu.icount));
            let real = t - self.host_timer.start;
            if virt > real + REALTIME_SLACK {
                self.flush_output();
                // Wait out the lead, but wake at once for host input.
                let wait = (virt - real).min(Duration::from_millis(100));
                let ev = match &self.host.input {
                    Some(rx) => rx.recv_timeout(wait).ok(),
                    None => {
                        std::thread::sleep(wait);
                        None
                    }
                };
                if let Some(ev) = ev {
                    return self.take_input(ev);
                }
            }
        }
        false
    }

    /// Runs until the guest or the user ends the run.
    pub fn run(&mut self) -> RunExit {
        let exit = self.run_inner();
        if let Some(tx) = &self.host.display {
            let _ = tx.send(DisplayUpdate::Stopped(exit.describe()));
        }
        exit
    }

    fn run_inner(&mut self) -> RunExit {
        loop {
            if self.quit.load(std::sync::atomic::Ordering::Relaxed)
                || crate::frontend::signal_quit()
                || self.poll_host()
            {
                self.flush_output();
                return RunExit::Quit;
            }
            let icount = self.cpu.icount;
            let now = self.plat.clock.now(icount);
            self.plat.advance(now);
            self.feed_serial();
            let mut until = icount + SLICE;
            if let Some(d) = self.plat.next_deadline() {
                until = until.min(self.plat.clock.insns_until(d).max(icount + 1));
            }
            if let Some(m) = self.cfg.max_insns {
                if icount >= m {
                    self.flush_output();
                    return RunExit::InstructionLimit;
                }
                until = until.min(m);
            }
            let exit = self.cpu.run(&mut self.plat, until);
            // FERR# drives IRQ13 on the PC/AT (CR0.NE=0 error reporting).
            if std::mem::take(&mut self.plat.clear_ferr) {
                self.cpu.ferr = false;
            }
            self.plat.pic.set_irq(13, self.cpu.ferr);
            if self.plat.attention {
                self.plat.attention = false;
                let a20_mask = if self.plat.a20 { !0 } else { !(1 << 20) };
                if a20_mask != self.cpu.a20_mask {
                    // Cached translations and blocks were made with the old gate.
                    self.cpu.a20_mask = a20_mask;
                    self.cpu.tlb.flush_all();
                }
                self.flush_output();
                if let Some(code) = self.plat.exit_request.take() {
                    return RunExit::DebugExit(code);
                }
                if self.plat.reset_request {
                    self.plat.reset_request = false;
                    if self.cfg.no_reboot {
                        return RunExit::Reset;
                    }
                    self.reset();
                    continue;
                }
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
                    let if_set = self.cpu.flags.bits & crate::cpu::state::rflags::IF != 0;
                    if !if_set && !self.cpu.nmi_pending {
                        self.flush_output();
                        return RunExit::HaltedForever;
                    }
                    // Skip idle time to the next device deadline.
                    let now = self.plat.clock.now(self.cpu.icount);
                    self.plat.advance(now);
                    if !self.plat.pic.intr() {
                        let target = self
                            .plat
                            .next_deadline()
                            .map(|d| self.plat.clock.insns_until(d));
                        let target = match (target, self.cfg.max_insns) {
                            (Some(t), Some(m)) => Some(t.min(m)),
                            (t, None) => t,
                            (None, Some(m)) => Some(m),
                        };
                        match target {
                            Some(t) if t > self.cpu.icount => {
                                self.idle_insns += t - self.cpu.icount;
                                self.cpu.icount = t;
                            }
                            Some(_) => {}
                            None => {
                                if self.serial_in.is_empty() {
                                    // Nothing scheduled: wait a little for host input.
                                    self.flush_output();
                                    std::thread::sleep(std::time::Duration::from_millis(1));
                                    let mut step = 1000;
                                    if self.cfg.realtime {
                                        // Idle time is real time: catch the clock up.
                                        let real =
                                            self.host_timer.start.elapsed().as_nanos() as u64;
                                        let virt = self.plat.clock.now(self.cpu.icount);
                                        step = step.max(
                                            real.saturating_sub(virt)
                                                / self.plat.clock.ns_per_insn.max(1),
                                        );
                                    }
                                    self.cpu.icount += step;
                                    self.idle_insns += step;
                                }
                            }
                        }
                    }
                }
            }
            self.flush_output();
        }
    }
}
