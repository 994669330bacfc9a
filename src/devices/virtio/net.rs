//! virtio-net (Virtio 1.0 section 5.1): queue 0 receives, queue 1
//! transmits; frames go to and come from a [`NetBackend`]. Offered features:
//! the MAC address and link status in the configuration space, and indirect
//! descriptors. No checksum or segmentation offload: the backend wants whole
//! frames with full checksums, and the guest's stack computes them. Every
//! buffer carries the 12-byte `virtio_net_hdr` first (5.1.6: with
//! VIRTIO_F_VERSION_1 it always has `num_buffers`).

use super::queue::{Queue, QueueError};
use super::VirtioDevice;
use crate::devices::Nanos;
use crate::memory::Dma;
use crate::net::NetBackend;

/// VIRTIO_NET_F_MAC (5): the device has a MAC address in its configuration.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// VIRTIO_NET_F_STATUS (16): the configuration has a link status field.
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// `status` field: link up.
const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// `struct virtio_net_hdr` with `num_buffers` (5.1.6).
pub const NET_HDR_LEN: usize = 12;
/// Largest frame taken from the guest (no GSO: an MTU-sized frame plus a
/// VLAN tag fits well inside); longer ones are cut here and dropped by the
/// backend as malformed.
const MAX_TX_FRAME: usize = 65_536;
/// Frames taken from the guest per notification before the device yields
/// (the rest are taken on the next slice: a flooding guest slows only itself).
const TX_BURST: usize = 256;

const RX: usize = 0;
const TX: usize = 1;

/// Counters the NIC itself keeps (the backend keeps its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames larger than the guest's receive buffer.
    pub rx_dropped_too_big: u64,
}

pub struct VirtioNet {
    mac: [u8; 6],
    backend: Box<dyn NetBackend>,
    /// A frame taken from the backend that waits for a receive buffer.
    pending: Option<Vec<u8>>,
    stats: NicStats,
}

impl VirtioNet {
    pub fn new(mac: [u8; 6], backend: Box<dyn NetBackend>) -> Self {
        VirtioNet {
            mac,
            backend,
            pending: None,
            stats: NicStats::default(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn stats(&self) -> NicStats {
        self.stats
    }

    pub fn backend(&self) -> &dyn NetBackend {
        self.backend.as_ref()
    }

    /// Takes the guest's transmitted frames and hands them to the backend.
    fn transmit(&mut self, q: &mut Queue, dma: &mut Dma, now: Nanos) -> Result<u32, QueueError> {
        let mut used = 0;
        for _ in 0..TX_BURST {
            let Some(chain) = q.pop(dma)? else {
                break;
            };
            let frame = chain.read_all(dma, NET_HDR_LEN as u64, MAX_TX_FRAME)?;
            q.push_used(dma, chain.head, 0)?;
            used |= 1 << TX;
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += frame.len() as u64;
            self.backend.transmit(&frame, now);
        }
        Ok(used)
    }

    /// Places frames from the backend into the guest's receive buffers.
    fn receive(&mut self, q: &mut Queue, dma: &mut Dma) -> Result<u32, QueueError> {
        let mut used = 0;
        loop {
            let frame = match self.pending.take() {
                Some(f) => f,
                None => match self.backend.receive() {
                    Some(f) => f,
                    None => break,
                },
            };
            if !q.has_available(dma)? {
                self.pending = Some(frame);
                break;
            }
            let Some(chain) = q.pop(dma)? else {
                self.pending = Some(frame);
                break;
            };
            let mut buf = Vec::with_capacity(NET_HDR_LEN + frame.len());
            buf.extend_from_slice(&[0; NET_HDR_LEN - 2]);
            // num_buffers: each frame fits one buffer (no MRG_RXBUF).
            buf.extend_from_slice(&1u16.to_le_bytes());
            buf.extend_from_slice(&frame);
            if chain.writable_len() < buf.len() as u64 {
                // The driver's buffer is too small for this frame: drop it,
                // return the buffer unused.
                self.stats.rx_dropped_too_big += 1;
                q.push_used(dma, chain.head, 0)?;
                used |= 1 << RX;
                continue;
            }
            let n = chain.write_all(dma, &buf)?;
            q.push_used(dma, chain.head, n as u32)?;
            used |= 1 << RX;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += frame.len() as u64;
        }
        Ok(used)
    }

    fn split(queues: &mut [Queue]) -> Option<(&mut Queue, &mut Queue)> {
        match queues {
            [rx, tx, ..] => Some((rx, tx)),
            _ => None,
        }
    }
}

impl VirtioDevice for VirtioNet {
    fn device_id(&self) -> u16 {
        1
    }
    fn pci_class(&self) -> (u8, u8) {
        (0x02, 0x00)
    }
    fn name(&self) -> &'static str {
        "virtio-net-pci"
    }
    fn features(&self) -> u64 {
        VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | super::VIRTIO_F_RING_INDIRECT_DESC
    }
    fn queue_count(&self) -> usize {
        2
    }
    /// `struct virtio_net_config`: mac[6], status, max_virtqueue_pairs.
    fn config_read(&self, off: usize, buf: &mut [u8]) {
        let mut c = [0u8; 10];
        c[..6].copy_from_slice(&self.mac);
        c[6..8].copy_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = c.get(off + i).copied().unwrap_or(0);
        }
    }
    fn reset(&mut self) {
        self.pending = None;
    }
    fn notify(
        &mut self,
        q: usize,
        queues: &mut [Queue],
        dma: &mut Dma,
        now: Nanos,
    ) -> Result<u32, QueueError> {
        let Some((rx, tx)) = Self::split(queues) else {
            return Ok(0);
        };
        let mut used = 0;
        if q == TX && tx.ready() {
            used |= self.transmit(tx, dma, now)?;
        }
        // New receive buffers (q == RX), or replies the transmit produced.
        if rx.ready() {
            used |= self.receive(rx, dma)?;
        }
        Ok(used)
    }
    fn poll(&mut self, queues: &mut [Queue], dma: &mut Dma, now: Nanos) -> Result<u32, QueueError> {
        let due = self.backend.next_deadline().is_some_and(|d| now >= d);
        if self.backend.host_pending() || due {
            self.backend.poll(now);
        }
        let Some((rx, tx)) = Self::split(queues) else {
            return Ok(0);
        };
        let mut used = 0;
        // Frames a burst left behind.
        if tx.ready() && tx.has_available(dma)? {
            used |= self.transmit(tx, dma, now)?;
        }
        if rx.ready() {
            used |= self.receive(rx, dma)?;
        }
        Ok(used)
    }
    fn next_deadline(&self) -> Option<Nanos> {
        self.backend.next_deadline()
    }
    fn stats_line(&self) -> Option<String> {
        let s = self.stats;
        Some(format!(
            "virtio-net: tx {} frames/{} bytes, rx {} frames/{} bytes, rx dropped (buffer too small) {}; {}",
            s.tx_frames,
            s.tx_bytes,
            s.rx_frames,
            s.rx_bytes,
            s.rx_dropped_too_big,
            self.backend.stats()
        ))
    }
}
