//! The virtio PCI transport, modern (Virtio 1.0 section 4.1): vendor 1AF4h,
//! device 1040h + device ID, revision 1, and one 16 KiB memory BAR holding
//! the four structures the vendor-specific capabilities point at:
//!
//! | BAR offset | structure (cfg_type)                     |
//! |------------|------------------------------------------|
//! | 0x0000     | common configuration (1), 4.1.4.3        |
//! | 0x1000     | ISR status (3), 4.1.4.5                  |
//! | 0x2000     | device-specific configuration (4)        |
//! | 0x3000     | notifications (2), multiplier 4          |
//!
//! Interrupts are INTx (no MSI-X: the machine has no local APIC): the ISR
//! status byte drives the function's INTA line, and a read of it clears
//! both (4.1.4.5.1).

use super::queue::{Queue, MAX_QUEUE_SIZE};
use super::{VirtioDevice, VIRTIO_F_VERSION_1};
use crate::devices::{Ctx, Device, Nanos, Resources};
use crate::memory::Dma;
use crate::pci::{BarKind, ConfigSpace, PciFunction, CAP_ID_VENDOR};
use crate::snapshot::StateError;

pub const VIRTIO_VENDOR: u16 = 0x1AF4;
const BAR: usize = 0;
const BAR_SIZE: u64 = 0x4000;
const COMMON: u64 = 0x0000;
const COMMON_LEN: u64 = 0x38;
const ISR: u64 = 0x1000;
const DEVICE_CFG: u64 = 0x2000;
const DEVICE_CFG_LEN: u64 = 0x100;
const NOTIFY: u64 = 0x3000;
const NOTIFY_MULTIPLIER: u32 = 4;

// virtio_pci_cap cfg_type values (4.1.4).
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
const VIRTIO_PCI_CAP_NOTIFY_CFG: u8 = 2;
const VIRTIO_PCI_CAP_ISR_CFG: u8 = 3;
const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;

// Device status bits (2.1).
pub const STATUS_ACKNOWLEDGE: u8 = 1;
pub const STATUS_DRIVER: u8 = 2;
pub const STATUS_DRIVER_OK: u8 = 4;
pub const STATUS_FEATURES_OK: u8 = 8;
pub const STATUS_NEEDS_RESET: u8 = 0x40;
pub const STATUS_FAILED: u8 = 0x80;

/// ISR status bits (4.1.4.5).
const ISR_QUEUE: u8 = 1;
const ISR_CONFIG: u8 = 2;
/// No MSI-X vector (4.1.5.1.2).
const VIRTIO_MSI_NO_VECTOR: u16 = 0xFFFF;

// Common configuration offsets (4.1.4.3).
mod cc {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0C;
    pub const MSIX_CONFIG: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1A;
    pub const QUEUE_ENABLE: u64 = 0x1C;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1E;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// The transport's saved state (a snapshot's part for a virtio device):
/// everything the driver set up or the device moved, as plain data. The
/// rings themselves are in guest RAM, which the snapshot holds; the device
/// type's own state rides along in `device`. Not saved: what the device
/// was built with (its PCI slot and INTx line, the BAR's size and the
/// capability list, the DMA handle), which the loading machine must have
/// the same.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportState {
    /// The configuration space's 256 bytes; only the guest-writable bits
    /// (command register, BAR address, interrupt line) are put back.
    #[serde(with = "crate::snapshot::array")]
    pub config: [u8; 256],
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub driver_features: u64,
    /// Device status (2.1), NEEDS_RESET included.
    pub status: u8,
    pub config_generation: u8,
    pub queue_select: u16,
    /// ISR status (4.1.4.5): what the INTx line shows until the driver
    /// reads it. (No MSI-X: its vectors always read NO_VECTOR.)
    pub isr: u8,
    /// Each queue's size, enable, ring addresses and the device's cursors
    /// (`last_avail`, `used_idx`); requests complete within the notify that
    /// brought them, so nothing is in flight between two CPU slices.
    pub queues: Vec<Queue>,
    /// [`VirtioDevice::save_state`].
    #[serde(with = "crate::snapshot::bytes")]
    pub device: Vec<u8>,
}

/// A virtio device on the PCI bus.
pub struct VirtioPci<D: VirtioDevice> {
    cfg: ConfigSpace,
    dev: D,
    queues: Vec<Queue>,
    dma: Dma,
    /// The INTx line (a PIRQ line: see `crate::pci::pirq_line`).
    line: u8,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    config_generation: u8,
    queue_select: u16,
    isr: u8,
}

impl<D: VirtioDevice> VirtioPci<D> {
    /// The device at PCI `slot` (for its interrupt line), reaching guest
    /// memory through `dma`.
    pub fn new(dev: D, dma: Dma, slot: u8) -> Self {
        let (class, subclass) = dev.pci_class();
        let mut cfg = ConfigSpace::new(
            VIRTIO_VENDOR,
            0x1040 + dev.device_id(),
            class,
            subclass,
            0,
            1,
        );
        cfg.set_subsystem(VIRTIO_VENDOR, 0x1100);
        cfg.set_interrupt_pin(1);
        cfg.add_bar(BAR, BarKind::Mem32, BAR_SIZE);
        let cap = |t: u8, off: u64, len: u64| {
            let mut b = vec![16, t, BAR as u8, 0, 0, 0];
            b.extend_from_slice(&(off as u32).to_le_bytes());
            b.extend_from_slice(&(len as u32).to_le_bytes());
            b
        };
        let n = dev.queue_count();
        cfg.add_capability(
            CAP_ID_VENDOR,
            &cap(VIRTIO_PCI_CAP_COMMON_CFG, COMMON, COMMON_LEN),
            &[],
        );
        cfg.add_capability(CAP_ID_VENDOR, &cap(VIRTIO_PCI_CAP_ISR_CFG, ISR, 4), &[]);
        cfg.add_capability(
            CAP_ID_VENDOR,
            &cap(VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CFG, DEVICE_CFG_LEN),
            &[],
        );
        let mut notify = cap(
            VIRTIO_PCI_CAP_NOTIFY_CFG,
            NOTIFY,
            u64::from(NOTIFY_MULTIPLIER) * n as u64,
        );
        notify[0] = 20;
        notify.extend_from_slice(&NOTIFY_MULTIPLIER.to_le_bytes());
        cfg.add_capability(CAP_ID_VENDOR, &notify, &[]);
        VirtioPci {
            cfg,
            queues: (0..n).map(|_| Queue::new(MAX_QUEUE_SIZE)).collect(),
            dev,
            dma,
            line: crate::pci::pirq_line(slot, 1),
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            queue_select: 0,
            isr: 0,
        }
    }

    /// The device type behind the transport.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device type behind the transport, to change (flush at exit).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    pub fn status(&self) -> u8 {
        self.status
    }

    fn offered(&self) -> u64 {
        self.dev.features() | VIRTIO_F_VERSION_1
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset(MAX_QUEUE_SIZE);
        }
        self.dev.reset();
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.driver_features = 0;
        self.status = 0;
        self.queue_select = 0;
        self.isr = 0;
    }

    fn selected(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(usize::from(self.queue_select))
    }

    fn drive_irq(&mut self, cx: &mut Ctx) {
        let level = self.isr != 0 && self.cfg.intx_enabled();
        self.cfg.set_interrupt_status(self.isr != 0);
        cx.set_irq(self.line, level);
    }

    /// After device work: interrupt for used buffers, or NEEDS_RESET on a
    /// broken queue (2.1.2: the device tells the driver with a configuration
    /// change interrupt).
    fn after_work(&mut self, r: Result<u32, super::queue::QueueError>, cx: &mut Ctx) {
        match r {
            Ok(used) => {
                let wanted = self
                    .queues
                    .iter()
                    .enumerate()
                    .any(|(i, q)| used & (1 << i) != 0 && !q.interrupt_suppressed(&self.dma));
                if wanted {
                    self.isr |= ISR_QUEUE;
                }
            }
            Err(_) => {
                if self.status & STATUS_NEEDS_RESET == 0 {
                    self.status |= STATUS_NEEDS_RESET;
                    self.isr |= ISR_CONFIG;
                }
            }
        }
        self.drive_irq(cx);
    }

    /// The transport's state and the device type's, for a snapshot.
    pub fn save(&self) -> Result<TransportState, StateError> {
        Ok(TransportState {
            config: *self.cfg.bytes(),
            device_feature_select: self.device_feature_select,
            driver_feature_select: self.driver_feature_select,
            driver_features: self.driver_features,
            status: self.status,
            config_generation: self.config_generation,
            queue_select: self.queue_select,
            isr: self.isr,
            queues: self.queues.clone(),
            device: self.dev.save_state()?,
        })
    }

    /// Puts back a [`VirtioPci::save`] (checked first: a state that does
    /// not fit this device changes nothing). Queue addresses are taken as
    /// they are: a ring outside guest RAM is what a driver could set up too,
    /// and the first access to it sets NEEDS_RESET (2.1.2).
    pub fn restore(&mut self, s: TransportState) -> Result<(), StateError> {
        if s.queues.len() != self.queues.len() {
            return Err(StateError::Mismatch(format!(
                "the snapshot's device has {} queues, this one {}",
                s.queues.len(),
                self.queues.len()
            )));
        }
        if let Some((i, q)) = s
            .queues
            .iter()
            .enumerate()
            .find(|(_, q)| !q.size.is_power_of_two() || q.size > MAX_QUEUE_SIZE)
        {
            return Err(StateError::Mismatch(format!(
                "queue {i} has size {} (not a power of two up to {MAX_QUEUE_SIZE})",
                q.size
            )));
        }
        self.dev.load_state(&s.device)?;
        self.cfg.restore_writable(&s.config);
        self.device_feature_select = s.device_feature_select;
        self.driver_feature_select = s.driver_feature_select;
        self.driver_features = s.driver_features;
        self.status = s.status;
        self.config_generation = s.config_generation;
        self.queue_select = s.queue_select;
        self.isr = s.isr;
        self.queues = s.queues;
        // The line's level comes back with the board's lines; the status
        // register's interrupt bit follows the ISR as in `drive_irq`.
        self.cfg.set_interrupt_status(self.isr != 0);
        Ok(())
    }

    fn live(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0 && self.status & STATUS_NEEDS_RESET == 0
    }

    fn common_read(&mut self, off: u64) -> u64 {
        let q = self.queues.get(usize::from(self.queue_select));
        match off {
            cc::DEVICE_FEATURE_SELECT => u64::from(self.device_feature_select),
            cc::DEVICE_FEATURE => match self.device_feature_select {
                0 => self.offered() & 0xFFFF_FFFF,
                1 => self.offered() >> 32,
                _ => 0,
            },
            cc::DRIVER_FEATURE_SELECT => u64::from(self.driver_feature_select),
            cc::DRIVER_FEATURE => match self.driver_feature_select {
                0 => self.driver_features & 0xFFFF_FFFF,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            cc::MSIX_CONFIG => u64::from(VIRTIO_MSI_NO_VECTOR),
            cc::NUM_QUEUES => self.queues.len() as u64,
            cc::DEVICE_STATUS => u64::from(self.status),
            cc::CONFIG_GENERATION => u64::from(self.config_generation),
            cc::QUEUE_SELECT => u64::from(self.queue_select),
            cc::QUEUE_SIZE => q.map_or(0, |q| u64::from(q.size)),
            cc::QUEUE_MSIX_VECTOR => u64::from(VIRTIO_MSI_NO_VECTOR),
            cc::QUEUE_ENABLE => q.map_or(0, |q| u64::from(q.enabled)),
            cc::QUEUE_NOTIFY_OFF => u64::from(self.queue_select),
            cc::QUEUE_DESC => q.map_or(0, |q| q.desc),
            cc::QUEUE_DRIVER => q.map_or(0, |q| q.avail),
            cc::QUEUE_DEVICE => q.map_or(0, |q| q.used),
            _ => 0,
        }
    }

    /// Reads `size` bytes at `off` of the common configuration: the fields
    /// overlapping the access, byte by byte (a driver reads a 64-bit address
    /// as two 32-bit halves).
    fn common_read_sized(&mut self, off: u64, size: u8) -> u64 {
        let mut v = 0u64;
        for i in 0..u64::from(size) {
            let o = off + i;
            let field = field_of(o);
            let byte = (self.common_read(field) >> (8 * (o - field))) & 0xFF;
            v |= byte << (8 * i);
        }
        v
    }

    fn common_write(&mut self, off: u64, size: u8, value: u64, cx: &mut Ctx) {
        let field = field_of(off);
        // Partial writes of the 64-bit addresses (two 32-bit halves) merge.
        let shift = 8 * (off - field);
        let merge = |old: u64| -> u64 {
            let mask = crate::cpu::flags::size_mask(size) << shift;
            (old & !mask) | ((value << shift) & mask)
        };
        match field {
            cc::DEVICE_FEATURE_SELECT => self.device_feature_select = value as u32,
            cc::DRIVER_FEATURE_SELECT => self.driver_feature_select = value as u32,
            cc::DRIVER_FEATURE if self.status & STATUS_FEATURES_OK == 0 => {
                match self.driver_feature_select {
                    0 => {
                        self.driver_features =
                            (self.driver_features & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xFFFF_FFFF) | ((value & 0xFFFF_FFFF) << 32)
                    }
                    _ => {}
                }
            }
            cc::DEVICE_STATUS => self.write_status(value as u8, cx),
            cc::QUEUE_SELECT => self.queue_select = value as u16,
            cc::QUEUE_SIZE => {
                if let Some(q) = self.selected() {
                    let v = value as u16;
                    // A power of two no larger than the maximum (2.4).
                    if !q.enabled && v.is_power_of_two() && v <= MAX_QUEUE_SIZE {
                        q.size = v;
                    }
                }
            }
            cc::QUEUE_ENABLE => {
                if let Some(q) = self.selected() {
                    if value & 1 == 1 {
                        q.enabled = true;
                    }
                }
            }
            cc::QUEUE_DESC | cc::QUEUE_DRIVER | cc::QUEUE_DEVICE => {
                if let Some(q) = self.selected() {
                    if !q.enabled {
                        let slot = match field {
                            cc::QUEUE_DESC => &mut q.desc,
                            cc::QUEUE_DRIVER => &mut q.avail,
                            _ => &mut q.used,
                        };
                        *slot = merge(*slot);
                    }
                }
            }
            // MSI-X vectors cannot be set: reads say NO_VECTOR.
            _ => {}
        }
    }

    fn write_status(&mut self, v: u8, cx: &mut Ctx) {
        if v == 0 {
            self.reset();
            self.drive_irq(cx);
            return;
        }
        let mut v = v;
        if v & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            // 3.1.1: FEATURES_OK only sticks for a subset of what was offered
            // that includes VERSION_1.
            let ok = self.driver_features & !self.offered() == 0
                && self.driver_features & VIRTIO_F_VERSION_1 != 0;
            if !ok {
                v &= !STATUS_FEATURES_OK;
            }
        }
        let was_live = self.live();
        // NEEDS_RESET is the device's to set.
        self.status = (v & !STATUS_NEEDS_RESET) | (self.status & STATUS_NEEDS_RESET);
        if !was_live && self.live() {
            self.dev.activate(self.driver_features);
        }
    }
}

/// The offset of the common-configuration field containing byte `off`.
fn field_of(off: u64) -> u64 {
    match off {
        0x00..=0x0F => off & !3,
        0x10..=0x13 | 0x16..=0x1F => off & !1,
        0x20..=0x37 => off & !7,
        o => o,
    }
}

impl<D: VirtioDevice> PciFunction for VirtioPci<D> {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}

impl<D: VirtioDevice> Device for VirtioPci<D> {
    fn name(&self) -> &'static str {
        self.dev.name()
    }
    fn resources(&self) -> Resources {
        let mut r = self.cfg.bar_resources();
        r.irqs.push(self.line);
        r
    }
    fn mmio_read(&mut self, addr: u64, size: u8, cx: &mut Ctx) -> u64 {
        let Some((_, off)) = self.cfg.bar_hit(BarKind::Mem32, addr) else {
            return crate::cpu::flags::size_mask(size);
        };
        match off {
            o if o < COMMON + COMMON_LEN => self.common_read_sized(o - COMMON, size),
            o if (ISR..ISR + 4).contains(&o) => {
                // Reading the ISR acknowledges the interrupt.
                let v = if o == ISR { self.isr } else { 0 };
                self.isr = 0;
                self.drive_irq(cx);
                u64::from(v)
            }
            o if (DEVICE_CFG..DEVICE_CFG + DEVICE_CFG_LEN).contains(&o) => {
                let mut b = [0u8; 8];
                let n = usize::from(size.clamp(1, 8));
                self.dev.config_read((o - DEVICE_CFG) as usize, &mut b[..n]);
                u64::from_le_bytes(b)
            }
            _ => 0,
        }
    }
    fn mmio_write(&mut self, addr: u64, size: u8, value: u64, cx: &mut Ctx) {
        let Some((_, off)) = self.cfg.bar_hit(BarKind::Mem32, addr) else {
            return;
        };
        match off {
            o if o < COMMON + COMMON_LEN => self.common_write(o - COMMON, size, value, cx),
            o if (DEVICE_CFG..DEVICE_CFG + DEVICE_CFG_LEN).contains(&o) => {
                let b = value.to_le_bytes();
                let n = usize::from(size.clamp(1, 8));
                self.dev.config_write((o - DEVICE_CFG) as usize, &b[..n]);
            }
            o if (NOTIFY..NOTIFY + u64::from(NOTIFY_MULTIPLIER) * self.queues.len() as u64)
                .contains(&o) =>
            {
                let q = ((o - NOTIFY) / u64::from(NOTIFY_MULTIPLIER)) as usize;
                if self.live() && self.cfg.bus_master() {
                    let r = self.dev.notify(q, &mut self.queues, &mut self.dma, cx.now);
                    self.after_work(r, cx);
                    // Work may have set new deadlines (network timers).
                    cx.replan();
                }
            }
            _ => {}
        }
    }
    fn advance(&mut self, cx: &mut Ctx) {
        if self.live() && self.cfg.bus_master() {
            let r = self.dev.poll(&mut self.queues, &mut self.dma, cx.now);
            self.after_work(r, cx);
        }
    }
    fn next_deadline(&self) -> Option<Nanos> {
        if self.live() {
            self.dev.next_deadline()
        } else {
            None
        }
    }
    fn pci(&mut self) -> Option<&mut dyn PciFunction> {
        Some(self)
    }
    fn save_state(&self) -> Result<Vec<u8>, StateError> {
        crate::snapshot::encode(&self.save()?)
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), StateError> {
        self.restore(crate::snapshot::decode(state)?)
    }
}
