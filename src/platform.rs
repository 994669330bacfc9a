//! The platform: every device of the machine behind one registry, and the
//! [`Bus`] the CPU sees. A device is registered with one line
//! ([`Platform::add`] or [`Platform::add_pci`]); from its declared
//! [`Resources`] the platform builds the port table and the MMIO map, routes
//! each access to it with a [`Ctx`], ORs its interrupt outputs into the
//! lines, asks it for its next deadline and catches its timers up.
//!
//! What is not a registered device: the interrupt controllers (the 8259
//! pair, which every line ends at, and with `-cpu qemu64,+apic` the CPU's
//! local APIC and on `-M pc` the I/O APIC beside it, which talk to each
//! other over the APIC bus) and PCI configuration mechanism #1 (ports
//! 0xCF8/0xCFC, which reaches into the registered PCI functions). They are
//! part of the board itself.
//!
//! Interrupt wiring with the APIC (QEMU's): every ISA line goes to the 8259
//! and to the same I/O APIC pin, except IRQ0 which lands on pin 2 (the MADT's
//! interrupt source override); PCI INTx reach both through the PIIX3's PIRQ
//! routing. The 8259's INTR reaches the CPU through LINT0 in ExtINT mode, or
//! directly while the local APIC is globally disabled.

use crate::cpu::Bus;
use crate::devices::{Ctx, Device, Events, IrqLines, Nanos, PortDevice, Resources};
use crate::io::{MmioMap, PortMap, PortTarget};
use crate::pci::{PciAddr, PciFunction};
use crate::time::{ClockMode, VirtualClock};
use std::any::Any;
use std::collections::BTreeMap;

/// What is left in the registry where a device was taken away at run time
/// ([`Platform::remove_pci`]): it decodes nothing and drives nothing.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Removed;

impl Device for Removed {
    fn name(&self) -> &'static str {
        "removed"
    }
    fn resources(&self) -> Resources {
        Resources::default()
    }
    crate::devices::plain_state!();
}

/// A registered device's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DevId(usize);

/// Most devices on one platform (each has one bit in the line masks).
pub const MAX_DEVICES: usize = 64;

/// PCI configuration mechanism #1 (PCI 3.0 section 3.2.2.3.2).
const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;
const CONFIG_ENABLE: u32 = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}: too many devices (at most {MAX_DEVICES})")]
    TooMany(&'static str),
    #[error("{0}: its MMIO window {1:#x}..{2:#x} overlaps another device's")]
    MmioOverlap(&'static str, u64, u64),
    #[error("{0}: PCI slot {1:02x}.{2} is taken")]
    SlotTaken(&'static str, u8, u8),
    #[error("{0}: this machine has no PCI bus (use -M pc)")]
    NoPci(&'static str),
    #[error("{0}: no free PCI slot (the bus has 32)")]
    NoFreeSlot(&'static str),
}

/// All devices, and the `Bus` the CPU sees.
pub struct Platform {
    pub clock: VirtualClock,
    pub pic: Pic,
    irqs: IrqLines,
    events: Events,
    devices: Vec<Box<dyn Device>>,
    ports: PortMap,
    mmio: MmioMap,
    /// PCI: CONFIG_ADDRESS and the functions on bus 0 (None on `-M isapc`).
    pci: Option<PciBus>,
    /// The PIIX3, whose PIRQ route registers steer lines 16-19.
    piix3: Option<DevId>,
    /// Host time only: timer ticks (IRQ0 edges) that arrived while the
    /// previous one was still waiting in the PIC's IRR, or several between
    /// two looks at the PIT, re-injected one by one once the first is taken (see [`Platform::reinject_lost_tick`]).
    lost_ticks: u32,
    /// Guest time of the last [`Platform::advance`].
    advanced_to: Nanos,
    /// The APICs (`-cpu qemu64,+apic`), None on the machines without.
    pub apic: Option<Box<Apics>>,
}

use crate::devices::ioapic::IoApic;
use crate::devices::lapic::{ApicMessage, LocalApic};

/// At most this many merged timer ticks are kept for re-injection (3.5 s of
/// the BIOS's 18.2 Hz tick): a guest that leaves IRQ0 unserviced on purpose
/// for longer does not get a burst of stale ticks afterwards.
const MAX_LOST_TICKS: u32 = 64;
/// The PIT's OUT0 line on the PC/AT.
const TIMER_IRQ: u8 = 0;
/// Host time: how soon after a slice boundary a merged tick is offered again
/// while the previous one is still pending.
const LOST_TICK_RETRY_NS: Nanos = 100_000;

use crate::devices::pic::Pic;

/// The APIC bus: the CPU's local APIC and (on `-M pc`) the I/O APIC. A
/// snapshot saves both whole ([`PlatformState::apic`]).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Apics {
    pub lapic: LocalApic,
    pub ioapic: Option<IoApic>,
    /// Messages in flight from the I/O APIC (a reused buffer). Transient,
    /// not saved: every access that fills it delivers it at once
    /// ([`Apics::settle`]), so it is empty between CPU slices.
    #[serde(skip)]
    msgs: Vec<ApicMessage>,
}

impl Apics {
    /// Delivers the I/O APIC's pending messages and the local APIC's EOI
    /// broadcasts until both are quiet.
    fn settle(&mut self) {
        loop {
            for m in self.msgs.drain(..) {
                self.lapic.deliver(m);
            }
            let eois = self.lapic.take_eoi_broadcasts();
            if eois.is_empty() {
                return;
            }
            if let Some(io) = self.ioapic.as_mut() {
                for v in eois {
                    io.eoi(v, &mut self.msgs);
                }
            }
        }
    }

    /// Drives the I/O APIC pin of ISA line `line` (IRQ0 is pin 2, as QEMU's
    /// ioapic_set_irq and the MADT override say; IRQ2, the cascade, has no pin).
    fn set_isa(&mut self, line: u8, level: bool, pulse: bool) {
        let pin = match line {
            0 => 2,
            2 => return,
            l => l,
        };
        if let Some(io) = self.ioapic.as_mut() {
            if pulse {
                io.pulse_pin(pin, &mut self.msgs);
            } else {
                io.set_pin(pin, level, &mut self.msgs);
            }
        }
        self.settle();
    }
}

/// The board's saved state (see [`Platform::save_state`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PlatformState {
    pub pic: Pic,
    pub irqs: IrqLines,
    pub events: Events,
    /// PCI CONFIG_ADDRESS (None without a PCI bus).
    pub pci_config_address: Option<u32>,
    pub devices: Vec<SavedDevice>,
    /// The local APIC and I/O APIC (`-cpu qemu64,+apic`), None on a machine
    /// without them.
    pub apic: Option<Apics>,
}

/// One device's state, with its name to check the board matches.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SavedDevice {
    pub name: String,
    #[serde(with = "crate::snapshot::bytes")]
    pub state: Vec<u8>,
}

/// Why a snapshot's APICs cannot go into this board: one has a local APIC
/// and the other not, or one an I/O APIC and the other not (checked before
/// anything is changed).
fn apic_mismatch(saved: Option<&Apics>, here: Option<&Apics>) -> Option<String> {
    let has = |a: Option<&Apics>| match a {
        None => "no local APIC",
        Some(a) if a.ioapic.is_some() => "a local APIC and an I/O APIC",
        Some(_) => "a local APIC and no I/O APIC",
    };
    let (a, b) = (has(saved), has(here));
    (a != b).then(|| format!("the snapshot's machine has {a}, this one has {b}"))
}

struct PciBus {
    config_address: u32,
    functions: BTreeMap<PciAddr, usize>,
}

impl Platform {
    pub fn new(clock: VirtualClock, pci: bool) -> Self {
        let mut p = Platform {
            clock,
            pic: Pic::new(),
            irqs: IrqLines::default(),
            events: Events::default(),
            devices: Vec::new(),
            ports: PortMap::default(),
            mmio: MmioMap::default(),
            pci: pci.then(|| PciBus {
                config_address: 0,
                functions: BTreeMap::new(),
            }),
            piix3: None,
            lost_ticks: 0,
            advanced_to: 0,
            apic: None,
        };
        p.remap_ports();
        p
    }

    /// Adds the local APIC and, on a machine with PCI, the I/O APIC at
    /// 0xFEC00000 (QEMU's isapc has no I/O APIC).
    pub fn enable_apic(&mut self) {
        let ioapic = self.pci.is_some().then(IoApic::new);
        self.apic = Some(Box::new(Apics {
            lapic: LocalApic::new(),
            ioapic,
            msgs: Vec::new(),
        }));
        // The I/O APIC sees the lines' present levels.
        let routes = self.pirq_routes();
        for line in 0..16u8 {
            let level = self.isa_level(line, &routes);
            if let Some(a) = self.apic.as_mut() {
                a.set_isa(line, level, false);
            }
        }
    }

    /// The APICs' RESET (a CPU reset resets its local APIC; the board's
    /// reset line resets the I/O APIC).
    pub fn reset_apic(&mut self) {
        if let Some(a) = self.apic.as_mut() {
            a.lapic.reset();
            if let Some(io) = a.ioapic.as_mut() {
                io.reset();
            }
            a.msgs.clear();
        }
    }

    /// Whether an interrupt is waiting for the CPU (INTR, through the APIC
    /// when there is one).
    pub fn intr_line(&self) -> bool {
        match &self.apic {
            Some(a) => {
                a.lapic.deliverable().is_some() || (a.lapic.accepts_pic_intr() && self.pic.intr())
            }
            None => self.pic.intr(),
        }
    }

    /// Takes an NMI the local APIC delivered.
    pub fn take_nmi(&mut self) -> bool {
        self.apic.as_mut().is_some_and(|a| a.lapic.take_nmi())
    }

    /// The local APIC's register page, if `addr` is in it.
    fn lapic_offset(&self, addr: u64) -> Option<u32> {
        let base = self.apic.as_ref()?.lapic.mmio_base()?;
        (base..base + crate::devices::lapic::PAGE)
            .contains(&addr)
            .then(|| (addr - base) as u32)
    }

    /// The I/O APIC's window, if `addr` is in it.
    fn ioapic_offset(&self, addr: u64) -> Option<u64> {
        use crate::devices::ioapic::{DEFAULT_BASE, WINDOW};
        self.apic.as_ref()?.ioapic.as_ref()?;
        (DEFAULT_BASE..DEFAULT_BASE + WINDOW)
            .contains(&addr)
            .then(|| addr - DEFAULT_BASE)
    }

    /// After an APIC access: deliver what it set off; a deliverable
    /// interrupt or an NMI stops the CPU's block so it is taken at once.
    fn after_apic_access(&mut self) {
        if let Some(a) = self.apic.as_mut() {
            a.settle();
            if a.lapic.deliverable().is_some() || a.lapic.nmi_pending() {
                self.events.attention = true;
            }
        }
    }
    /// True on a machine with a PCI bus (`-M pc`).
    pub fn has_pci(&self) -> bool {
        self.pci.is_some()
    }

    /// Registers a device: its ports and MMIO windows start decoding now.
    pub fn add<D: Device>(&mut self, dev: D) -> Result<DevId, PlatformError> {
        self.add_boxed(Box::new(dev))
    }

    fn add_boxed(&mut self, dev: Box<dyn Device>) -> Result<DevId, PlatformError> {
        // An entry a hot-unplugged device left ([`Removed`]) is taken first:
        // the machine keeps no id of a removed device, and the line bits
        // went low with it, so add/remove cycles never run out of entries.
        let reuse = self
            .devices
            .iter()
            .position(|d| (d.as_ref() as &dyn Any).is::<Removed>());
        if reuse.is_none() && self.devices.len() >= MAX_DEVICES {
            return Err(PlatformError::TooMany(dev.name()));
        }
        let id = reuse.unwrap_or(self.devices.len());
        let r = dev.resources();
        for w in &r.mmio {
            if !self.mmio_free(w.clone()) {
                return Err(PlatformError::MmioOverlap(dev.name(), w.start, w.end));
            }
        }
        match self.devices.get_mut(id) {
            Some(slot) => *slot = dev,
            None => self.devices.push(dev),
        }
        self.remap();
        let now = self.clock.now(0);
        self.with_dev(id, now, |d, cx| d.power_on(cx));
        Ok(DevId(id))
    }

    /// Whether window `w` is free of every registered device's windows.
    fn mmio_free(&self, w: std::ops::Range<u64>) -> bool {
        let mut probe = MmioMap::default();
        for (i, d) in self.devices.iter().enumerate() {
            for x in d.resources().mmio {
                probe.add(x, i);
            }
        }
        probe.add(w, usize::MAX)
    }

    /// Registers a PCI function at bus 0 `slot`.`func`.
    pub fn add_pci<D: Device>(
        &mut self,
        slot: u8,
        func: u8,
        dev: D,
    ) -> Result<DevId, PlatformError> {
        let name = dev.name();
        let addr = PciAddr { slot, func };
        match &self.pci {
            None => return Err(PlatformError::NoPci(name)),
            Some(b) if b.functions.contains_key(&addr) => {
                return Err(PlatformError::SlotTaken(name, slot, func))
            }
            Some(_) => {}
        }
        let is_piix3 = (&dev as &dyn Any).is::<crate::pci::host::Piix3Isa>();
        let id = self.add(dev)?;
        if let Some(b) = self.pci.as_mut() {
            b.functions.insert(addr, id.0);
        }
        if is_piix3 {
            self.piix3 = Some(id);
        }
        Ok(id)
    }

    /// Takes the PCI function at bus 0 `slot`.0 off the bus (an ACPI eject):
    /// its configuration space reads as absent again (vendor FFFFh), its
    /// ports and MMIO windows stop decoding and its interrupt outputs go
    /// low. Its registry entry becomes an empty [`Removed`] device, so every
    /// other device keeps its id and line bit. Returns the device (for the
    /// machine to flush and close its backend).
    pub fn remove_pci(&mut self, slot: u8) -> Option<Box<dyn Device>> {
        let i = self
            .pci
            .as_mut()?
            .functions
            .remove(&PciAddr { slot, func: 0 })?;
        let dev = std::mem::replace(self.devices.get_mut(i)?, Box::new(Removed));
        for line in 0..crate::devices::IRQ_LINES as u8 {
            self.irqs.set(line, 1 << i, false);
        }
        self.remap();
        self.apply_irqs();
        Some(dev)
    }

    /// The PCI functions present, in slot order.
    pub fn pci_functions(&self) -> Vec<(PciAddr, DevId)> {
        self.pci
            .as_ref()
            .map(|b| b.functions.iter().map(|(a, &i)| (*a, DevId(i))).collect())
            .unwrap_or_default()
    }

    /// The device `id`, as its own type.
    pub fn get<T: Device>(&mut self, id: DevId) -> Option<&mut T> {
        let d: &mut dyn Any = self.devices.get_mut(id.0)?.as_mut();
        d.downcast_mut::<T>()
    }

    /// The first registered device of type `T`.
    pub fn find<T: Device>(&mut self) -> Option<&mut T> {
        self.devices
            .iter_mut()
            .find_map(|d| (d.as_mut() as &mut dyn Any).downcast_mut::<T>())
    }

    /// Runs `f` on the first device of type `T` with a context at `now`
    /// (its interrupt lines and requests take effect as after a guest
    /// access); None when there is no such device.
    pub fn with_first<T: Device, R>(
        &mut self,
        now: Nanos,
        f: impl FnOnce(&mut T, &mut Ctx) -> R,
    ) -> Option<R> {
        let i = self
            .devices
            .iter_mut()
            .position(|d| (d.as_mut() as &mut dyn Any).is::<T>())?;
        self.with_dev(i, now, |d, cx| {
            (d as &mut dyn Any).downcast_mut::<T>().map(|t| f(t, cx))
        })
        .flatten()
    }

    /// The `n`-th registered device of type `T` (registration order).
    pub fn find_nth<T: Device>(&mut self, n: usize) -> Option<&mut T> {
        self.devices
            .iter_mut()
            .filter_map(|d| (d.as_mut() as &mut dyn Any).downcast_mut::<T>())
            .nth(n)
    }

    /// Every device's name and what it decodes (`info qtree`/`info mtree`).
    pub fn describe(&self) -> Vec<(&'static str, Resources)> {
        self.devices
            .iter()
            .map(|d| (d.name(), d.resources()))
            .collect()
    }

    fn remap_ports(&mut self) {
        self.ports.clear();
        for r in [0x20..=0x21, 0xA0..=0xA1, 0x4D0..=0x4D1] {
            self.ports.add(r, PortTarget::Pic);
        }
        if self.pci.is_some() {
            self.ports
                .add(CONFIG_ADDRESS..=CONFIG_ADDRESS + 3, PortTarget::PciConfig);
            self.ports
                .add(CONFIG_DATA..=CONFIG_DATA + 3, PortTarget::PciConfig);
        }
    }

    /// Rebuilds the port table and the MMIO map from every device's resources.
    pub fn remap(&mut self) {
        self.remap_ports();
        self.mmio.clear();
        for (i, d) in self.devices.iter().enumerate() {
            let r = d.resources();
            for p in r.ports {
                self.ports.add(p, PortTarget::Device(i));
            }
            for w in r.mmio {
                // A window that overlaps an earlier one (a guest putting a BAR
                // on top of another) is not decoded, rather than decoded twice.
                self.mmio.add(w, i);
            }
        }
    }

    /// Runs `f` on device `i` with a context at `now`, then applies what it did.
    fn with_dev<R>(
        &mut self,
        i: usize,
        now: Nanos,
        f: impl FnOnce(&mut dyn Device, &mut Ctx) -> R,
    ) -> Option<R> {
        let dev = self.devices.get_mut(i)?;
        let mut cx = Ctx::new(now, 1 << i, &mut self.irqs, &mut self.events);
        let r = f(dev.as_mut(), &mut cx);
        self.after_access();
        Some(r)
    }

    /// Applies line changes to the PIC, remaps, the A20 gate.
    fn after_access(&mut self) {
        if std::mem::take(&mut self.events.remap) {
            self.remap();
        }
        self.apply_irqs();
    }

    /// The level of ISA line `line` at the PIC: its own drivers, plus every
    /// PCI interrupt line the PIIX3 routes to it.
    fn isa_level(&mut self, line: u8, routes: &[Option<u8>; 4]) -> bool {
        self.irqs.level(line)
            || routes.iter().enumerate().any(|(n, r)| {
                *r == Some(line) && self.irqs.level(crate::pci::PIRQ_LINE_BASE + n as u8)
            })
    }

    fn pirq_routes(&mut self) -> [Option<u8>; 4] {
        let Some(id) = self.piix3 else {
            return [None; 4];
        };
        match self.get::<crate::pci::host::Piix3Isa>(id) {
            Some(p) => [p.pirq_irq(0), p.pirq_irq(1), p.pirq_irq(2), p.pirq_irq(3)],
            None => [None; 4],
        }
    }

    fn apply_irqs(&mut self) {
        let (changed, pulsed) = self.irqs.take_changed();
        if changed == 0 && pulsed == 0 {
            return;
        }
        let routes = self.pirq_routes();
        // Lines 16-19 (PIRQA-D) land on whichever ISA lines they are routed to.
        let mut isa = changed & 0xFFFF;
        for n in 0..4 {
            if changed & (1 << (crate::pci::PIRQ_LINE_BASE + n)) != 0 {
                if let Some(irq) = routes[usize::from(n)] {
                    isa |= 1 << irq;
                }
            }
        }
        for line in 0..16u8 {
            if pulsed & (1 << line) != 0 {
                let merged = self.irqs.take_merged(line);
                if line == TIMER_IRQ && self.clock.mode == ClockMode::Host && !self.pic.masked(line)
                {
                    let lost = merged + u32::from(self.pic.request_pending(line));
                    self.lost_ticks = self.lost_ticks.saturating_add(lost).min(MAX_LOST_TICKS);
                }
                self.pic.set_irq(line, true);
                let level = self.isa_level(line, &routes);
                self.pic.set_irq(line, level);
                if let Some(a) = self.apic.as_mut() {
                    a.set_isa(line, level, true);
                }
            } else if isa & (1 << line) != 0 {
                let level = self.isa_level(line, &routes);
                self.pic.set_irq(line, level);
                if let Some(a) = self.apic.as_mut() {
                    a.set_isa(line, level, false);
                }
            }
        }
    }

    /// Drives the CPU's FERR# onto IRQ13 (a board line, not a device's).
    pub fn set_ferr_line(&mut self, level: bool) {
        self.irqs.set(13, 1 << 63, level);
        self.apply_irqs();
    }

    /// The board's state for a snapshot: the PIC, the interrupt lines, the
    /// pending requests, every device's own state in registration order,
    /// and the APICs.
    pub fn save_state(&self) -> Result<PlatformState, crate::snapshot::StateError> {
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            devices.push(SavedDevice {
                name: d.name().to_string(),
                state: d.save_state()?,
            });
        }
        Ok(PlatformState {
            pic: self.pic.clone(),
            irqs: self.irqs.clone(),
            events: self.events.clone(),
            pci_config_address: self.pci.as_ref().map(|p| p.config_address),
            devices,
            apic: self.apic.as_deref().cloned(),
        })
    }

    /// Puts back a [`Platform::save_state`] taken on a board built the same
    /// way (the same devices in the same order).
    pub fn load_state(&mut self, s: PlatformState) -> Result<(), crate::snapshot::StateError> {
        use crate::snapshot::StateError;
        let names: Vec<&str> = self.devices.iter().map(|d| d.name()).collect();
        let saved: Vec<&str> = s.devices.iter().map(|d| d.name.as_str()).collect();
        if names != saved {
            return Err(StateError::Mismatch(format!(
                "the snapshot's devices ({}) are not this machine's ({})",
                saved.join(" "),
                names.join(" ")
            )));
        }
        if s.pci_config_address.is_some() != self.pci.is_some() {
            return Err(StateError::Mismatch(
                "the snapshot's machine and this one differ in having a PCI bus".into(),
            ));
        }
        if let Some(msg) = apic_mismatch(s.apic.as_ref(), self.apic.as_deref()) {
            return Err(StateError::Mismatch(msg));
        }
        for (d, sd) in self.devices.iter_mut().zip(&s.devices) {
            let name = d.name();
            d.load_state(&sd.state)
                .map_err(|e| StateError::Mismatch(format!("device {name}: {e}")))?;
        }
        self.pic = s.pic;
        self.irqs = s.irqs;
        self.events = s.events;
        if let (Some(a), Some(saved)) = (self.apic.as_mut(), s.apic) {
            **a = saved;
        }
        if let (Some(p), Some(a)) = (self.pci.as_mut(), s.pci_config_address) {
            p.config_address = a;
        }
        // BARs and enables came back with the devices' configuration spaces.
        self.remap();
        Ok(())
    }

    /// Catches every device up to `now` and raises the resulting IRQs.
    pub fn advance(&mut self, now: Nanos) {
        for i in 0..self.devices.len() {
            let dev = &mut self.devices[i];
            let mut cx = Ctx::new(now, 1 << i, &mut self.irqs, &mut self.events);
            dev.advance(&mut cx);
        }
        self.after_access();
        if let Some(a) = self.apic.as_mut() {
            a.lapic.advance(now);
        }
        self.advanced_to = now;
        self.reinject_lost_tick();
    }

    /// Host time only, QEMU's `lost_tick_policy=delay` for the PIT (as its
    /// in-kernel PIT does): an 8259 edge input holds one request, so a tick
    /// that arrives while the previous one still waits in the IRR is merged
    /// and lost. On hardware that needs the guest to keep interrupts off for
    /// a whole period; under vx86 with host time it also happens when the
    /// host deschedules vx86 or the guest's interrupts-off stretch (GRUB's
    /// protected-mode code between BIOS calls) runs slower than on hardware,
    /// and a guest counting ticks (the BIOS's 40:6Ch, GRUB's countdown) falls
    /// behind the wall clock. The merged ticks are raised again one by one,
    /// each once the previous one has been taken. Deterministic (icount)
    /// time keeps the 8259's own behaviour: there the guest's timing is the
    /// hardware's.
    fn reinject_lost_tick(&mut self) {
        if self.lost_ticks > 0 && !self.pic.request_pending(TIMER_IRQ) {
            self.lost_ticks -= 1;
            self.pic.set_irq(TIMER_IRQ, true);
            let level = self.irqs.level(TIMER_IRQ);
            self.pic.set_irq(TIMER_IRQ, level);
        }
    }

    /// Merged timer ticks waiting to be raised again (host time).
    pub fn lost_ticks(&self) -> u32 {
        self.lost_ticks
    }

    /// A platform reset: ticks of the old run are not raised in the new one.
    pub fn forget_lost_ticks(&mut self) {
        self.lost_ticks = 0;
    }

    /// The earliest deadline of any device, of the local APIC's timer, and
    /// of a merged timer tick waiting to be raised again.
    pub fn next_deadline(&self) -> Option<Nanos> {
        let apic = self.apic.as_ref().and_then(|a| a.lapic.next_deadline());
        let retry = (self.lost_ticks > 0).then(|| self.advanced_to + LOST_TICK_RETRY_NS);
        self.devices
            .iter()
            .filter_map(|d| d.next_deadline())
            .chain(apic)
            .chain(retry)
            .min()
    }

    /// Takes the requests devices made (exit, reset, FERR# clear); the A20
    /// gate comes back through [`Platform::a20`].
    pub fn take_events(&mut self) -> Events {
        let (a20, gated) = (self.events.a20, self.events.a20_gated);
        let ev = std::mem::take(&mut self.events);
        self.events.a20 = a20;
        self.events.a20_gated = gated;
        ev
    }

    /// Whether anything asked for the machine's attention since the last
    /// [`Platform::take_events`].
    pub fn attention(&self) -> bool {
        self.events.attention
    }

    /// The A20 gate: the OR of the inputs of the devices that gate it (the
    /// 8042's output port, port 92h); on when no device gates it.
    pub fn a20(&self) -> bool {
        !self.events.a20_gated || self.events.a20 != 0
    }

    // ---- PCI configuration mechanism #1 ----

    fn pci_target(&self) -> Option<(usize, usize)> {
        let b = self.pci.as_ref()?;
        let a = b.config_address;
        if a & CONFIG_ENABLE == 0 || (a >> 16) & 0xFF != 0 {
            return None;
        }
        let addr = PciAddr {
            slot: ((a >> 11) & 0x1F) as u8,
            func: ((a >> 8) & 7) as u8,
        };
        let dev = *b.functions.get(&addr)?;
        Some((dev, (a & 0xFC) as usize))
    }

    fn pci_config_read(&mut self, port: u16, size: u8) -> u32 {
        let ones = crate::cpu::flags::size_mask(size) as u32;
        if (CONFIG_ADDRESS..CONFIG_ADDRESS + 4).contains(&port) {
            let v = self.pci.as_ref().map_or(0, |b| b.config_address);
            return if port == CONFIG_ADDRESS && size == 4 {
                v
            } else {
                ones
            };
        }
        let Some((dev, reg)) = self.pci_target() else {
            return ones;
        };
        let off = reg + usize::from(port - CONFIG_DATA);
        match self.devices.get_mut(dev).and_then(|d| d.pci()) {
            Some(f) => f.config().read(off, size) & ones,
            None => ones,
        }
    }

    fn pci_config_write(&mut self, port: u16, size: u8, value: u32) {
        if (CONFIG_ADDRESS..CONFIG_ADDRESS + 4).contains(&port) {
            // Only a dword access to 0xCF8 is CONFIG_ADDRESS; bits 1:0 read 0.
            if port == CONFIG_ADDRESS && size == 4 {
                if let Some(b) = self.pci.as_mut() {
                    b.config_address = value & 0x80FF_FFFC;
                }
            }
            return;
        }
        let Some((dev, reg)) = self.pci_target() else {
            return;
        };
        let off = reg + usize::from(port - CONFIG_DATA);
        let moved = match self.devices.get_mut(dev).and_then(|d| d.pci()) {
            Some(f) => {
                let moved = f.config_mut().write(off, size, value);
                f.config_written(off, size);
                moved
            }
            None => false,
        };
        if moved {
            self.remap();
        }
        // PIRQ routing may have changed: re-evaluate the ISA lines.
        let routes = self.pirq_routes();
        for line in 0..16u8 {
            let level = self.isa_level(line, &routes);
            self.pic.set_irq(line, level);
            if let Some(a) = self.apic.as_mut() {
                a.set_isa(line, level, false);
            }
        }
    }

    /// Writes a PCI function's configuration space as firmware would (BAR
    /// assignment for direct kernel boots).
    pub fn pci_config_write_direct(&mut self, id: DevId, off: usize, size: u8, value: u32) {
        let moved = match self.devices.get_mut(id.0).and_then(|d| d.pci()) {
            Some(f) => {
                let m = f.config_mut().write(off, size, value);
                f.config_written(off, size);
                m
            }
            None => false,
        };
        if moved {
            self.remap();
        }
    }

    /// The function of device `id`, if it is a PCI device.
    pub fn pci_function(&mut self, id: DevId) -> Option<&mut dyn PciFunction> {
        self.devices.get_mut(id.0).and_then(|d| d.pci())
    }

    fn mmio_access(&mut self, addr: u64, size: u8) -> Option<(usize, bool)> {
        let (dev, end) = self.mmio.find(addr)?;
        Some((dev, addr + u64::from(size) <= end))
    }
}

impl Bus for Platform {
    fn io_read(&mut self, port: u16, size: u8, icount: u64) -> u32 {
        let now = self.clock.now(icount);
        let v = match self.ports.get(port) {
            PortTarget::None => u32::MAX,
            PortTarget::Pic => self.pic.io_read(port, size, now),
            PortTarget::PciConfig => self.pci_config_read(port, size),
            PortTarget::Device(i) => self
                .with_dev(i, now, |d, cx| d.io_read(port, size, cx))
                .unwrap_or(u32::MAX),
        };
        v & crate::cpu::flags::size_mask(size) as u32
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, icount: u64) {
        let now = self.clock.now(icount);
        match self.ports.get(port) {
            PortTarget::None => {}
            PortTarget::Pic => self.pic.io_write(port, size, value, now),
            PortTarget::PciConfig => self.pci_config_write(port, size, value),
            PortTarget::Device(i) => {
                self.with_dev(i, now, |d, cx| d.io_write(port, size, value, cx));
            }
        }
    }

    fn mmio_read(&mut self, addr: u64, size: u8, icount: u64) -> u64 {
        let now = self.clock.now(icount);
        if let Some(off) = self.lapic_offset(addr) {
            let v = self
                .apic
                .as_mut()
                .map_or(0, |a| a.lapic.read(off & !3, size.min(4), now));
            self.after_apic_access();
            return u64::from(v);
        }
        if let Some(off) = self.ioapic_offset(addr) {
            let v = match self.apic.as_mut().and_then(|a| a.ioapic.as_mut()) {
                Some(io) if size >= 4 => io.read(off),
                _ => 0,
            };
            return u64::from(v);
        }
        match self.mmio_access(addr, size) {
            Some((dev, true)) => self
                .with_dev(dev, now, |d, cx| d.mmio_read(addr, size, cx))
                .unwrap_or(u64::MAX),
            Some((_, false)) => {
                // Straddles the end of a window: one byte at a time.
                let mut v = 0u64;
                for i in 0..u64::from(size) {
                    v |= (self.mmio_read(addr + i, 1, icount) & 0xFF) << (8 * i);
                }
                v
            }
            None => u64::MAX,
        }
    }

    fn mmio_write(&mut self, addr: u64, size: u8, value: u64, icount: u64) {
        let now = self.clock.now(icount);
        if let Some(off) = self.lapic_offset(addr) {
            if let Some(a) = self.apic.as_mut() {
                a.lapic.write(off & !3, size.min(4), value as u32, now);
            }
            self.after_apic_access();
            return;
        }
        if let Some(off) = self.ioapic_offset(addr) {
            if let Some(a) = self.apic.as_mut() {
                if let Some(io) = a.ioapic.as_mut() {
                    if size >= 4 {
                        io.write(off, value as u32, &mut a.msgs);
                    }
                }
            }
            self.after_apic_access();
            return;
        }
        match self.mmio_access(addr, size) {
            Some((dev, true)) => {
                self.with_dev(dev, now, |d, cx| d.mmio_write(addr, size, value, cx));
            }
            Some((_, false)) => {
                for i in 0..u64::from(size) {
                    self.mmio_write(addr + i, 1, (value >> (8 * i)) & 0xFF, icount);
                }
            }
            None => {}
        }
    }

    fn intr_pending(&mut self) -> bool {
        self.intr_line()
    }

    fn needs_attention(&self) -> bool {
        self.events.attention
    }

    fn intr_ack(&mut self) -> u8 {
        match self.apic.as_mut() {
            // The local APIC's own requests first; then the 8259 through
            // LINT0 (ExtINT: the 8259 supplies the vector), as QEMU's
            // cpu_get_pic_interrupt.
            Some(a) => {
                if a.lapic.deliverable().is_some() || !a.lapic.accepts_pic_intr() {
                    a.lapic.acknowledge()
                } else {
                    self.pic.acknowledge()
                }
            }
            None => self.pic.acknowledge(),
        }
    }

    fn apic_rdmsr(&mut self, idx: u32) -> Option<u64> {
        use crate::cpu::state::msr::{IA32_APIC_BASE, IA32_TSC_DEADLINE};
        let a = self.apic.as_ref()?;
        match idx {
            IA32_APIC_BASE => Some(a.lapic.apic_base()),
            IA32_TSC_DEADLINE => Some(a.lapic.tsc_deadline()),
            _ => None,
        }
    }

    fn apic_wrmsr(&mut self, idx: u32, value: u64, icount: u64) -> Option<bool> {
        use crate::cpu::state::msr::{IA32_APIC_BASE, IA32_TSC_DEADLINE};
        let now = self.clock.now(icount);
        let a = self.apic.as_mut()?;
        let ok = match idx {
            IA32_APIC_BASE => a.lapic.set_apic_base(value),
            IA32_TSC_DEADLINE => {
                a.lapic.set_tsc_deadline(value, now);
                true
            }
            _ => return None,
        };
        // The timer may have moved: the machine re-plans its next stop.
        self.events.attention = true;
        self.after_apic_access();
        Some(ok)
    }

    fn apic_present(&self) -> bool {
        self.apic
            .as_ref()
            .is_some_and(|a| a.lapic.globally_enabled())
    }

    fn apic_tpr(&mut self) -> Option<u8> {
        // TPR reads do not depend on time.
        let now = self.advanced_to;
        let a = self.apic.as_mut()?;
        Some(a.lapic.read(crate::devices::lapic::reg::TPR, 4, now) as u8)
    }

    fn apic_set_tpr(&mut self, tpr: u8, icount: u64) -> bool {
        let now = self.clock.now(icount);
        let Some(a) = self.apic.as_mut() else {
            return false;
        };
        a.lapic
            .write(crate::devices::lapic::reg::TPR, 4, u32::from(tpr), now);
        self.after_apic_access();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ClockMode;

    /// Programs the master 8259 as the BIOS does (vector 08h, edge inputs).
    fn bios_pic(p: &mut Platform) {
        let pic = &mut p.pic;
        for (port, value) in [(0x20, 0x11), (0x21, 0x08), (0x21, 0x04), (0x21, 0x01)] {
            PortDevice::io_write(pic, port, 1, value, 0);
        }
        for (port, value) in [(0xA0, 0x11), (0xA1, 0x70), (0xA1, 0x02), (0xA1, 0x01)] {
            PortDevice::io_write(pic, port, 1, value, 0);
        }
    }

    fn tick(p: &mut Platform) {
        p.irqs.pulse(TIMER_IRQ);
        p.apply_irqs();
    }

    /// A device with nothing but a name, for registry tests.
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Plain;
    impl Device for Plain {
        fn name(&self) -> &'static str {
            "plain"
        }
        fn resources(&self) -> Resources {
            Resources::default()
        }
        crate::devices::plain_state!();
    }

    /// Hot-plug cycles reuse the entry a removed device left: 200 adds and
    /// removes on one slot never reach the registry's cap, the new device
    /// answers on the slot, and the other devices keep their ids.
    #[test]
    fn removed_entries_are_reused_by_later_adds() {
        let mut p = Platform::new(VirtualClock::new(ClockMode::DETERMINISTIC), true);
        let before = p.devices.len();
        let other = p.add(Plain).expect("add");
        for _ in 0..200 {
            let id = p.add_pci(5, 0, Plain).expect("add on slot 5");
            assert!(id.0 <= before + 1, "entry {} not reused", id.0);
            assert_eq!(p.remove_pci(5).map(|d| d.name()), Some("plain"));
            assert!(p.remove_pci(5).is_none(), "slot 5 is empty");
        }
        assert_eq!(p.devices.len(), before + 2);
        assert!(p.get::<Plain>(other).is_some());
    }

    /// Host time: a tick merged into a pending one is raised again once the
    /// first is taken, and only then; a reset forgets it.
    #[test]
    fn host_time_reinjects_a_merged_timer_tick() {
        let mut p = Platform::new(VirtualClock::new(ClockMode::Host), false);
        bios_pic(&mut p);
        tick(&mut p);
        tick(&mut p);
        assert_eq!(p.lost_ticks(), 1);
        assert_eq!(p.next_deadline(), Some(LOST_TICK_RETRY_NS));
        // Still pending: nothing is raised on top of it.
        p.advance(1_000);
        assert_eq!(p.lost_ticks(), 1);
        assert_eq!(p.pic.acknowledge(), 0x08);
        assert!(!p.pic.request_pending(TIMER_IRQ));
        p.advance(2_000);
        assert_eq!(p.lost_ticks(), 0);
        assert!(p.pic.request_pending(TIMER_IRQ));
        assert_eq!(p.next_deadline(), None);
        tick(&mut p);
        p.forget_lost_ticks();
        assert_eq!(p.lost_ticks(), 0);
        // Three edges between two looks at the PIT (vx86 descheduled by
        // the host for more than two periods): one reaches the PIC, two wait.
        PortDevice::io_write(&mut p.pic, 0x20, 1, 0x20, 0);
        assert_eq!(p.pic.acknowledge(), 0x08);
        p.irqs.pulses(TIMER_IRQ, 3);
        p.apply_irqs();
        assert_eq!(p.lost_ticks(), 2);
    }

    /// The APICs go through the board's saved state: a restored board has
    /// the same local APIC (timer armed at the same virtual time) and I/O
    /// APIC; a board without APICs, or with only a local APIC, refuses the
    /// state naming the difference, and so does an APIC board given a state
    /// without one.
    #[test]
    fn apic_state_is_saved_and_a_board_without_it_refuses_it() {
        use crate::devices::lapic::reg;
        let clock = || VirtualClock::new(ClockMode::DETERMINISTIC);
        let mut p = Platform::new(clock(), true);
        p.enable_apic();
        let lapic = crate::devices::lapic::DEFAULT_BASE;
        Bus::mmio_write(&mut p, lapic + u64::from(reg::SVR), 4, 0x1FF, 0);
        Bus::mmio_write(&mut p, lapic + u64::from(reg::LVT_TIMER), 4, 0x40, 0);
        Bus::mmio_write(&mut p, lapic + u64::from(reg::TIMER_ICR), 4, 5000, 100);
        // Pin 4 level triggered, vector 0x44, asserted: in Remote IRR.
        let io = crate::devices::ioapic::DEFAULT_BASE;
        Bus::mmio_write(&mut p, io, 4, 0x18, 100);
        Bus::mmio_write(&mut p, io + 0x10, 4, 0x8044, 100);
        p.irqs.set(4, 1, true);
        p.apply_irqs();
        assert_eq!(Bus::intr_ack(&mut p), 0x44);
        let saved = p.save_state().expect("save");
        let bytes = crate::snapshot::encode(&saved).expect("encode");

        let mut q = Platform::new(clock(), true);
        q.enable_apic();
        q.load_state(crate::snapshot::decode(&bytes).expect("decode"))
            .expect("load");
        let again = crate::snapshot::encode(&q.save_state().expect("save")).expect("encode");
        assert_eq!(again, bytes);
        assert_eq!(q.next_deadline(), Some(100 + 5001 * 2));
        let ccr = u64::from(reg::TIMER_CCR);
        assert_eq!(Bus::mmio_read(&mut q, lapic + ccr, 4, 1100), 4500);
        assert_eq!(
            Bus::mmio_read(&mut q, io + 0x10, 4, 0),
            0xC044,
            "Remote IRR"
        );

        let mut none = Platform::new(clock(), true);
        let e = none
            .load_state(crate::snapshot::decode(&bytes).expect("decode"))
            .expect_err("no APIC here");
        assert_eq!(
            e.to_string(),
            "the snapshot's machine has a local APIC and an I/O APIC, this one has no local APIC"
        );
        let plain = crate::snapshot::encode(&none.save_state().expect("save")).expect("encode");
        let e = q
            .load_state(crate::snapshot::decode(&plain).expect("decode"))
            .expect_err("APIC here");
        assert!(
            e.to_string()
                .contains("has no local APIC, this one has a local APIC and an I/O APIC"),
            "{e}"
        );
    }

    /// Deterministic time keeps the 8259's behaviour: the merged tick is gone,
    /// and a masked line's ticks are not counted either.
    /// CR8 is the local APIC's TPR class in 64-bit mode (SDM Vol. 3A
    /// 11.8.6.1): MOV to CR8 writes TPR[7:4] (TPR[3:0] cleared), MOV from
    /// CR8 reads TPR[7:4], whichever way the TPR was written.
    #[test]
    fn cr8_is_the_tpr_priority_class() {
        use crate::devices::lapic::reg;
        let mut p = Platform::new(VirtualClock::new(ClockMode::DETERMINISTIC), true);
        p.enable_apic();
        let tpr = crate::devices::lapic::DEFAULT_BASE + u64::from(reg::TPR);
        let mut cpu = crate::cpu::Cpu::new_bare(1 << 20);
        cpu.setup_long(0, 0x10000, &[(0x1000, 0x1000, false, true)]);
        let run = |cpu: &mut crate::cpu::Cpu, p: &mut Platform, code: &[u8]| {
            cpu.mem.ram_mut()[0x1000..0x1000 + code.len()].copy_from_slice(code);
            cpu.cache.clear();
            cpu.rip = 0x1000;
            cpu.halted = false;
            let until = cpu.icount + 16;
            cpu.run(p, until);
        };
        // mov eax, 9; mov cr8, rax; mov rbx, cr8; hlt
        let set = [
            0xB8, 9, 0, 0, 0, 0x44, 0x0F, 0x22, 0xC0, 0x44, 0x0F, 0x20, 0xC3, 0xF4,
        ];
        Bus::mmio_write(&mut p, tpr, 4, 0x0F, 0);
        run(&mut cpu, &mut p, &set);
        assert_eq!(Bus::mmio_read(&mut p, tpr, 4, 0), 0x90);
        assert_eq!(cpu.gpr[3], 9);
        // The TPR written through the register page: mov rcx, cr8; hlt
        Bus::mmio_write(&mut p, tpr, 4, 0x35, 0);
        run(&mut cpu, &mut p, &[0x44, 0x0F, 0x20, 0xC1, 0xF4]);
        assert_eq!(cpu.gpr[1], 3);
        // Without a local APIC CR8 is a register of its own.
        let mut plain = Platform::new(VirtualClock::new(ClockMode::DETERMINISTIC), true);
        run(&mut cpu, &mut plain, &set);
        assert_eq!((cpu.cr8, cpu.gpr[3]), (9, 9));
    }

    #[test]
    fn icount_time_and_masked_lines_merge_ticks_as_the_8259_does() {
        let mut p = Platform::new(VirtualClock::new(ClockMode::DETERMINISTIC), false);
        bios_pic(&mut p);
        tick(&mut p);
        tick(&mut p);
        assert_eq!(p.lost_ticks(), 0);
        let mut p = Platform::new(VirtualClock::new(ClockMode::Host), false);
        bios_pic(&mut p);
        PortDevice::io_write(&mut p.pic, 0x21, 1, 0x01, 0);
        tick(&mut p);
        tick(&mut p);
        p.irqs.pulses(TIMER_IRQ, 3);
        p.apply_irqs();
        assert_eq!(p.lost_ticks(), 0);
    }
}
