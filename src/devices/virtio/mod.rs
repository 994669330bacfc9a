//! Virtio devices (Virtual I/O Device (VIRTIO) Version 1.0, OASIS): the
//! split virtqueue ([`queue`]), the PCI transport with the capability
//! layout Linux's `virtio_pci` (modern) driver looks for ([`pci`]), and the
//! device types ([`net`], [`blk`]). A device type implements [`VirtioDevice`]; the
//! transport makes it a PCI function.

pub mod blk;
pub mod net;
pub mod pci;
pub mod queue;

use crate::devices::Nanos;
use crate::memory::Dma;
use crate::snapshot::StateError;
use queue::{Queue, QueueError};

/// VIRTIO_F_VERSION_1 (6): a 1.0 device (no legacy interface).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// VIRTIO_F_RING_INDIRECT_DESC (2.4.5.3).
pub const VIRTIO_F_RING_INDIRECT_DESC: u64 = 1 << 28;

/// What a device type gives the transport.
pub trait VirtioDevice: Send + 'static {
    /// Virtio device ID (5: 1 network card, 2 block device).
    fn device_id(&self) -> u16;
    /// PCI class, subclass.
    fn pci_class(&self) -> (u8, u8);
    fn name(&self) -> &'static str;
    /// Feature bits the device offers (the transport adds VERSION_1).
    fn features(&self) -> u64;
    fn queue_count(&self) -> usize;
    /// Reads the device-specific configuration at `off`.
    fn config_read(&self, off: usize, buf: &mut [u8]);
    fn config_write(&mut self, _off: usize, _data: &[u8]) {}
    /// The driver set DRIVER_OK with these features.
    fn activate(&mut self, _features: u64) {}
    /// A device reset (status 0): forget queue state and pending work.
    fn reset(&mut self);
    /// The driver notified queue `q`. Returns the queues (a bit each) whose
    /// buffers were used: the transport interrupts for them unless the
    /// driver suppressed it.
    fn notify(
        &mut self,
        q: usize,
        queues: &mut [Queue],
        dma: &mut Dma,
        now: Nanos,
    ) -> Result<u32, QueueError>;
    /// Work that does not come from the driver (received packets, timers);
    /// returns the queues used, as `notify`.
    fn poll(&mut self, queues: &mut [Queue], dma: &mut Dma, now: Nanos) -> Result<u32, QueueError>;
    fn next_deadline(&self) -> Option<Nanos> {
        None
    }
    /// One line of counters for `--stats`.
    fn stats_line(&self) -> Option<String> {
        None
    }
    /// The device type's own state for a snapshot (the transport saves the
    /// queues and registers around it), as plain data; host resources (the
    /// disk image, the network backend's sockets) are not part of it.
    fn save_state(&self) -> Result<Vec<u8>, StateError>;
    /// Puts back what [`VirtioDevice::save_state`] returned, keeping the
    /// host resources the device was built with; refuses (changing
    /// nothing) a state that does not fit them.
    fn load_state(&mut self, state: &[u8]) -> Result<(), StateError>;
}
