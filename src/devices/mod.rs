//! Platform devices, one chip per file (names and registers from each datasheet).
//!
//! Every device is a plain struct that owns its registers and reset state, and
//! implements [`Device`]: it declares in one place what it decodes (ports,
//! MMIO windows) and which interrupt lines it drives ([`Device::resources`]),
//! answers accesses, catches its timers up ([`Device::advance`]) and says when
//! it next needs to run ([`Device::next_deadline`]). The platform
//! (`crate::platform`) registers each device with one line and routes to it.
//!
//! Devices never call each other. Anything that crosses a device boundary (an
//! interrupt line, a CPU reset request, the A20 gate, an exit request) goes
//! through the [`Ctx`] of the access, which the platform then acts on.
//!
//! Time: devices see virtual time ([`Nanos`]) on every access and catch up lazily
//! (no per-instruction ticking); a device with a timer reports its next deadline so
//! the machine's scheduler can stop the CPU exactly then.

pub mod acpi_pm;

/// Implements [`Device::save_state`] and [`Device::load_state`] for a device
/// whose struct is all plain data (every field derives serde): the state is
/// the struct itself, and loading replaces it whole.
macro_rules! plain_state {
    () => {
        fn save_state(&self) -> Result<Vec<u8>, crate::snapshot::StateError> {
            crate::snapshot::encode(self)
        }
        fn load_state(&mut self, state: &[u8]) -> Result<(), crate::snapshot::StateError> {
            *self = crate::snapshot::decode(state)?;
            Ok(())
        }
    };
}
pub(crate) use plain_state;

pub mod ata;
pub mod atapi;
pub mod vga;

pub mod debug_port;
pub mod i8042;
pub mod ioapic;
pub mod lapic;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod sysctl;
pub mod uart;
pub mod virtio;

use std::any::Any;
use std::ops::{Range, RangeInclusive};

/// Virtual time in nanoseconds since machine reset.
pub type Nanos = u64;

/// A chip's register interface on the port I/O bus, at virtual time `now`.
/// `size` is the access width in bytes (1, 2 or 4). Reads of bits a device
/// does not drive return ones, as on the ISA bus. (The chips implement this
/// for their unit tests and the [`Device`] glue; it knows nothing of IRQs.)
pub trait PortDevice {
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32;
    fn io_write(&mut self, port: u16, size: u8, value: u32, now: Nanos);
}

/// Number of interrupt input lines the platform routes (ISA IRQ 0-15 and,
/// for an I/O APIC, pins 16-23).
pub const IRQ_LINES: usize = 24;

/// What a device decodes and drives, declared once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// I/O port ranges.
    pub ports: Vec<RangeInclusive<u16>>,
    /// Physical MMIO windows.
    pub mmio: Vec<Range<u64>>,
    /// Interrupt lines the device drives (ISA IRQ numbers).
    pub irqs: Vec<u8>,
}

impl Resources {
    pub fn ports(mut self, r: RangeInclusive<u16>) -> Self {
        self.ports.push(r);
        self
    }
    pub fn mmio(mut self, r: Range<u64>) -> Self {
        self.mmio.push(r);
        self
    }
    pub fn irq(mut self, line: u8) -> Self {
        self.irqs.push(line);
        self
    }
}

/// A device on the platform. Only `name` and `resources` are required; the
/// rest defaults to a device that ignores the access (reads float high).
pub trait Device: Any + Send {
    /// Short name, as QEMU's `info qtree` would show it.
    fn name(&self) -> &'static str;
    /// What the device decodes now (asked again when [`Ctx::remap`] is called,
    /// e.g. after a PCI BAR moved).
    fn resources(&self) -> Resources;
    fn io_read(&mut self, _port: u16, _size: u8, _cx: &mut Ctx) -> u32 {
        u32::MAX
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32, _cx: &mut Ctx) {}
    /// Sized MMIO read (1, 2, 4 or 8 bytes, within one declared window).
    fn mmio_read(&mut self, _addr: u64, size: u8, _cx: &mut Ctx) -> u64 {
        crate::cpu::flags::size_mask(size)
    }
    fn mmio_write(&mut self, _addr: u64, _size: u8, _value: u64, _cx: &mut Ctx) {}
    /// Drives the device's initial outputs (interrupt lines, A20) when it is
    /// registered.
    fn power_on(&mut self, _cx: &mut Ctx) {}
    /// Catches timers up to `cx.now`, raising what fell due.
    fn advance(&mut self, _cx: &mut Ctx) {}
    /// The next virtual time the device must run at, if any.
    fn next_deadline(&self) -> Option<Nanos> {
        None
    }
    /// The device as a PCI function (configuration space), if it is one.
    fn pci(&mut self) -> Option<&mut dyn crate::pci::PciFunction> {
        None
    }
    /// The device's registers and internal state as plain data, for a
    /// snapshot (`crate::snapshot`); host resources (files, sockets) are not
    /// part of it. Required: every device of the machine is saved, so any
    /// machine can be snapshotted (a plain-data device uses `plain_state!`).
    fn save_state(&self) -> Result<Vec<u8>, crate::snapshot::StateError>;
    /// Puts back what [`Device::save_state`] returned, keeping the host
    /// resources the device was built with.
    fn load_state(&mut self, state: &[u8]) -> Result<(), crate::snapshot::StateError>;
}

/// Interrupt lines with every device's output ORed in (ISA lines are shared
/// by COM1/COM3, PCI INTx by several functions): `levels[line]` holds one bit
/// per driving device.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct IrqLines {
    levels: [u64; IRQ_LINES],
    /// Lines whose combined level may have changed since `take_changed`.
    changed: u32,
    /// Lines pulsed (an edge: up and down again) since `take_changed`.
    pulsed: u32,
    /// Edges on each line beyond the first since `take_changed`: all of them
    /// reach the PIC as one (see `Platform::reinject_lost_tick`).
    merged: [u32; 16],
}

impl IrqLines {
    pub fn set(&mut self, line: u8, source: u64, level: bool) {
        let Some(l) = self.levels.get_mut(usize::from(line)) else {
            return;
        };
        let old = *l != 0;
        if level {
            *l |= source;
        } else {
            *l &= !source;
        }
        if (*l != 0) != old {
            self.changed |= 1 << line;
        }
    }
    pub fn pulse(&mut self, line: u8) {
        self.pulses(line, 1);
    }
    /// `n` edges on `line` since the last call (a timer that fell behind).
    pub fn pulses(&mut self, line: u8, n: u32) {
        if n == 0 || usize::from(line) >= IRQ_LINES {
            return;
        }
        if let Some(m) = self.merged.get_mut(usize::from(line)) {
            let extra = if self.pulsed & (1 << line) != 0 {
                n
            } else {
                n - 1
            };
            *m = m.saturating_add(extra);
        }
        self.pulsed |= 1 << line;
    }
    /// Edges on `line` merged into one since the last call.
    pub fn take_merged(&mut self, line: u8) -> u32 {
        self.merged
            .get_mut(usize::from(line))
            .map_or(0, std::mem::take)
    }
    /// The combined level of a line.
    pub fn level(&self, line: u8) -> bool {
        self.levels.get(usize::from(line)).is_some_and(|&l| l != 0)
    }
    /// Lines that changed and lines that were pulsed since the last call.
    pub fn take_changed(&mut self) -> (u32, u32) {
        (
            std::mem::take(&mut self.changed),
            std::mem::take(&mut self.pulsed),
        )
    }
}

/// Requests to the machine made during device accesses.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Events {
    /// End the CPU's run at the next block boundary (something to act on).
    pub attention: bool,
    pub reset: bool,
    pub exit: Option<i32>,
    /// The guest powered the machine off (ACPI S5).
    pub poweroff: bool,
    /// The CPU's FERR# latch is to be cleared (port F0h).
    pub clear_ferr: bool,
    /// A device changed what it decodes.
    pub remap: bool,
    /// Devices asserting the A20 gate (one bit each; the gate is their OR).
    pub a20: u64,
    /// Some device gates A20 (else the gate is simply on).
    pub a20_gated: bool,
}

/// The context of one device access: the time, and the platform's lines.
pub struct Ctx<'a> {
    pub now: Nanos,
    /// This device's bit in the line masks.
    source: u64,
    irqs: &'a mut IrqLines,
    events: &'a mut Events,
}

impl<'a> Ctx<'a> {
    pub fn new(now: Nanos, source: u64, irqs: &'a mut IrqLines, events: &'a mut Events) -> Self {
        Ctx {
            now,
            source,
            irqs,
            events,
        }
    }
    /// Drives this device's output on `line` to `level`.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        self.irqs.set(line, self.source, level);
    }
    /// An edge on `line` (the PIT's OUT0 rising edges, in the ISA wiring).
    pub fn pulse_irq(&mut self, line: u8) {
        self.irqs.pulse(line);
    }
    /// `n` edges on `line` that fell due since the last call.
    pub fn pulse_irq_n(&mut self, line: u8, n: u32) {
        self.irqs.pulses(line, n);
    }
    /// The device's timing changed: the machine re-plans its next stop.
    pub fn replan(&mut self) {
        self.events.attention = true;
    }
    /// The device has output for the machine to flush soon.
    pub fn output_ready(&mut self) {
        self.events.attention = true;
    }
    pub fn request_reset(&mut self) {
        self.events.reset = true;
        self.events.attention = true;
    }
    /// Ends the run with this process exit status (the first request wins).
    pub fn request_exit(&mut self, status: i32) {
        if self.events.exit.is_none() {
            self.events.exit = Some(status);
        }
        self.events.attention = true;
    }
    /// The machine is to power off (ACPI S5): the run ends with status 0.
    pub fn request_poweroff(&mut self) {
        self.events.poweroff = true;
        self.events.attention = true;
    }
    /// This device's input to the A20 gate.
    pub fn set_a20(&mut self, on: bool) {
        let old = !self.events.a20_gated || self.events.a20 != 0;
        self.events.a20_gated = true;
        if on {
            self.events.a20 |= self.source;
        } else {
            self.events.a20 &= !self.source;
        }
        if (self.events.a20 != 0) != old {
            self.events.attention = true;
        }
    }
    pub fn clear_ferr(&mut self) {
        self.events.clear_ferr = true;
        self.events.attention = true;
    }
    /// The device's ports or MMIO windows moved: the platform re-reads
    /// [`Device::resources`].
    pub fn remap(&mut self) {
        self.events.remap = true;
        self.events.attention = true;
    }
}
