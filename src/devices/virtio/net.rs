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
use crate::snapshot::StateError;

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

/// What a snapshot holds of a virtio network card beyond its transport.
/// The link is always up (there is no `set_link`), so the configuration
/// space is the MAC's. The `--stats` counters are this process's and not
/// saved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetState {
    /// The card's MAC (checked on load: the guest knows it).
    pub mac: [u8; 6],
    /// A frame taken from the backend that waits for a receive buffer.
    pub pending: Option<Vec<u8>>,
    /// [`NetBackend::save_state`]: the virtual network's side.
    #[serde(with = "crate::snapshot::bytes")]
    pub backend: Vec<u8>,
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
    fn save_state(&self) -> Result<Vec<u8>, StateError> {
        crate::snapshot::encode(&NetState {
            mac: self.mac,
            pending: self.pending.clone(),
            backend: self.backend.save_state()?,
        })
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), StateError> {
        let s: NetState = crate::snapshot::decode(state)?;
        if s.mac != self.mac {
            return Err(StateError::Mismatch(format!(
                "the snapshot's card has MAC {}, this one {}",
                crate::net::wire::mac_text(s.mac),
                crate::net::wire::mac_text(self.mac)
            )));
        }
        self.backend.load_state(&s.backend)?;
        self.pending = s.pending;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::pci::{VirtioPci, STATUS_DRIVER_OK, STATUS_FEATURES_OK};
    use crate::devices::{Ctx, Device, Events, IrqLines};
    use crate::memory::GuestMemory;
    use crate::pci::{PciFunction, BAR0, CMD_BUS_MASTER, CMD_MEMORY, COMMAND};

    /// A backend that echoes every frame back and makes up frames of its own.
    struct Echo {
        queue: std::collections::VecDeque<Vec<u8>>,
        seen: u64,
        rng: u64,
    }
    impl NetBackend for Echo {
        fn transmit(&mut self, frame: &[u8], _now: Nanos) {
            self.seen += 1;
            if self.queue.len() < 64 {
                self.queue.push_back(frame.to_vec());
            }
        }
        fn receive(&mut self) -> Option<Vec<u8>> {
            self.queue.pop_front()
        }
        fn poll(&mut self, _now: Nanos) {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let len = (self.rng % 3000) as usize;
            if self.queue.len() < 64 {
                self.queue.push_back(vec![self.rng as u8; len]);
            }
        }
        fn next_deadline(&self) -> Option<Nanos> {
            Some(0)
        }
        fn host_pending(&self) -> bool {
            true
        }
        fn host_wakeup(&self) -> crossbeam_channel::Receiver<()> {
            crossbeam_channel::never()
        }
        fn stats(&self) -> crate::net::NetStats {
            crate::net::NetStats::default()
        }
        fn snapshot_config(&self) -> String {
            "echo".into()
        }
        fn save_state(&self) -> Result<Vec<u8>, StateError> {
            crate::snapshot::encode(&(&self.queue, self.seen, self.rng))
        }
        fn load_state(&mut self, state: &[u8]) -> Result<(), StateError> {
            (self.queue, self.seen, self.rng) = crate::snapshot::decode(state)?;
            Ok(())
        }
    }

    const BAR_AT: u64 = 0xFE00_0000;

    struct Rig {
        mem: GuestMemory,
        dev: VirtioPci<VirtioNet>,
        irqs: IrqLines,
        ev: Events,
    }

    impl Rig {
        fn new(seed: u64) -> Rig {
            let mem = GuestMemory::new(4 << 20).expect("ram");
            let echo = Echo {
                queue: Default::default(),
                seen: 0,
                rng: seed | 1,
            };
            let mut dev = VirtioPci::new(
                VirtioNet::new([0x52, 0x54, 0, 0x12, 0x34, 0x56], Box::new(echo)),
                mem.dma(),
                3,
            );
            dev.config_mut().write(BAR0, 4, BAR_AT as u32);
            dev.config_mut()
                .write(COMMAND, 2, u32::from(CMD_MEMORY | CMD_BUS_MASTER));
            Rig {
                mem,
                dev,
                irqs: IrqLines::default(),
                ev: Events::default(),
            }
        }
        fn w(&mut self, off: u64, size: u8, v: u64) {
            let mut cx = Ctx::new(1000, 1, &mut self.irqs, &mut self.ev);
            self.dev.mmio_write(BAR_AT + off, size, v, &mut cx);
        }
        fn r(&mut self, off: u64, size: u8) -> u64 {
            let mut cx = Ctx::new(1000, 1, &mut self.irqs, &mut self.ev);
            self.dev.mmio_read(BAR_AT + off, size, &mut cx)
        }
        fn advance(&mut self) {
            let mut cx = Ctx::new(2000, 1, &mut self.irqs, &mut self.ev);
            self.dev.advance(&mut cx);
        }
        /// The driver's side of 3.1.1 with queues at the given addresses.
        fn bring_up(&mut self, size: u16, rings: [(u64, u64, u64); 2]) {
            self.w(0x14, 1, 0);
            self.w(0x14, 1, 1 | 2);
            self.w(0x08, 4, 1);
            self.w(0x0C, 4, 1); // VERSION_1
            self.w(0x08, 4, 0);
            self.w(
                0x0C,
                4,
                (VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS) as u32 as u64,
            );
            self.w(0x14, 1, u64::from(1 | 2 | STATUS_FEATURES_OK));
            for (q, (d, a, u)) in rings.iter().enumerate() {
                self.w(0x16, 2, q as u64);
                self.w(0x18, 2, u64::from(size));
                self.w(0x20, 4, d & 0xFFFF_FFFF);
                self.w(0x24, 4, d >> 32);
                self.w(0x28, 8, *a);
                self.w(0x30, 8, *u);
                self.w(0x1C, 2, 1);
            }
            self.w(
                0x14,
                1,
                u64::from(1 | 2 | STATUS_FEATURES_OK | STATUS_DRIVER_OK),
            );
        }
    }

    #[test]
    fn a_well_formed_driver_sends_and_receives() {
        let mut rig = Rig::new(7);
        assert_eq!(rig.r(0x12, 2), 2, "two queues");
        assert_eq!(
            rig.r(0x2000, 4),
            0x1200_5452,
            "MAC bytes in the device config"
        );
        let rx = (0x10000, 0x11000, 0x12000);
        let tx = (0x20000, 0x21000, 0x22000);
        rig.bring_up(8, [rx, tx]);
        assert_eq!(
            rig.r(0x14, 1) as u8 & STATUS_FEATURES_OK,
            STATUS_FEATURES_OK
        );
        let mut dma = rig.mem.dma();
        let desc =
            |dma: &mut crate::memory::Dma, table: u64, i: u64, addr: u64, len: u32, flags: u16| {
                let mut d = addr.to_le_bytes().to_vec();
                d.extend_from_slice(&len.to_le_bytes());
                d.extend_from_slice(&flags.to_le_bytes());
                d.extend_from_slice(&0u16.to_le_bytes());
                dma.write(table + 16 * i, &d).expect("desc");
            };
        // One receive buffer, one frame to send (header + 60 bytes).
        desc(&mut dma, rx.0, 0, 0x30000, 2048, 2);
        dma.write_u16(rx.1 + 4, 0).expect("ring");
        dma.write_u16(rx.1 + 2, 1).expect("idx");
        let mut frame = vec![0u8; NET_HDR_LEN];
        frame.extend((0..60).map(|i| i as u8));
        dma.write(0x40000, &frame).expect("frame");
        desc(&mut dma, tx.0, 0, 0x40000, frame.len() as u32, 0);
        dma.write_u16(tx.1 + 4, 0).expect("ring");
        dma.write_u16(tx.1 + 2, 1).expect("idx");
        rig.w(0x3000 + 4, 2, 1); // notify TX
                                 // TX used, and the echo landed in the receive buffer.
        assert_eq!(dma.read_u16(tx.2 + 2).expect("used idx"), 1);
        assert_eq!(dma.read_u16(rx.2 + 2).expect("used idx"), 1);
        assert_eq!(
            dma.read_u32(rx.2 + 8).expect("len") as usize,
            NET_HDR_LEN + 60
        );
        let mut got = vec![0u8; 60];
        dma.read(0x30000 + NET_HDR_LEN as u64, &mut got)
            .expect("read");
        assert_eq!(got, frame[NET_HDR_LEN..]);
        // The interrupt: ISR bit 0 and the INTA line (PIRQ of slot 3), cleared by reading.
        let line = crate::pci::pirq_line(3, 1);
        assert!(rig.irqs.level(line));
        assert_eq!(rig.r(0x1000, 1), 1);
        assert!(!rig.irqs.level(line));
        assert_eq!(rig.r(0x1000, 1), 0);
    }

    /// The card's state (transport, the frame waiting for a receive
    /// buffer, the backend's state) goes through a snapshot: a card loaded
    /// from it over a copy of guest RAM saves the same bytes; a card with
    /// another MAC refuses it.
    #[test]
    fn state_round_trips_with_the_backend_and_checks_the_mac() {
        let mut rig = Rig::new(7);
        rig.bring_up(
            8,
            [(0x10000, 0x11000, 0x12000), (0x20000, 0x21000, 0x22000)],
        );
        // The backend makes up a frame; with no receive buffer it waits.
        rig.advance();
        let saved = rig.dev.save_state().expect("save");
        let state: crate::devices::virtio::pci::TransportState =
            crate::snapshot::decode(&saved).expect("decode");
        let card: NetState = crate::snapshot::decode(&state.device).expect("decode");
        assert!(card.pending.is_some(), "a frame waits for a buffer");

        let mut copy = Rig::new(1);
        copy.mem.ram_mut().copy_from_slice(rig.mem.ram());
        copy.dev.load_state(&saved).expect("load");
        assert_eq!(copy.dev.save_state().expect("save"), saved);

        let echo = Echo {
            queue: Default::default(),
            seen: 0,
            rng: 1,
        };
        let nic = VirtioNet::new([0x52, 0x54, 0, 0x12, 0x34, 0x57], Box::new(echo));
        let mut other = VirtioPci::new(nic, copy.mem.dma(), 3);
        let e = other.load_state(&saved).expect_err("another MAC");
        assert!(
            e.to_string()
                .contains("MAC 52:54:00:12:34:56, this one 52:54:00:12:34:57"),
            "{e}"
        );
    }

    #[test]
    fn random_queues_and_packets_never_hurt_the_host() {
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let mut rig = Rig::new(next());
            // Rings anywhere: inside RAM, straddling its end, far outside.
            let addr = |n: u64| match n % 4 {
                0 => n % (4 << 20),
                1 => (4 << 20) - (n % 64),
                2 => n,
                _ => (n % 0x20_0000) & !0xF,
            };
            let rings = [
                (addr(next()), addr(next()), addr(next())),
                (addr(next()), addr(next()), addr(next())),
            ];
            let size = 1u16 << (next() % 9);
            rig.bring_up(size, rings);
            // Random bytes over the first 2 MiB: descriptor tables, rings,
            // indirect tables, lengths, loops all made up.
            let mut dma = rig.mem.dma();
            let mut junk = vec![0u8; 64 * 1024];
            for _ in 0..8 {
                for b in junk.iter_mut() {
                    *b = next() as u8;
                }
                let at = next() % (2 << 20);
                let _ = dma.write(at, &junk);
            }
            for step in 0..50 {
                match next() % 4 {
                    0 => rig.w(0x3000, 2, 0),
                    1 => rig.w(0x3004, 2, 1),
                    2 => rig.advance(),
                    _ => {
                        let off = next() % 0x4000;
                        let size = [1u8, 2, 4, 8][(next() % 4) as usize];
                        if step % 2 == 0 {
                            let v = next();
                            rig.w(off, size, v);
                        } else {
                            rig.r(off, size);
                        }
                    }
                }
            }
        }
    }
}
