//! virtio-blk (Virtio 1.0 section 5.2): one request queue over a
//! [`BlockDevice`]. A request is a descriptor chain (5.2.6): a 16-byte
//! device-readable header (`type`, `reserved`, `sector`), the data (readable
//! for OUT, writable for IN and GET_ID), and a last device-writable byte the
//! device sets to the status. Requests complete synchronously in the notify
//! that brought them: the backend is a host file, and the guest waits for the
//! interrupt anyway.
//!
//! Offered features: FLUSH (the guest's cache flushes reach the host file as
//! an fsync, 5.2.6.2), SEG_MAX, BLK_SIZE, RO for a read-only drive, and
//! indirect descriptors. A guest error in one request (bad sector range, a
//! write to a read-only disk, a malformed chain) is a per-request
//! VIRTIO_BLK_S_IOERR or UNSUPP; only a broken queue sets NEEDS_RESET.

use super::queue::{Chain, Queue, QueueError};
use super::VirtioDevice;
use crate::block::{BlockDevice, SECTOR_SIZE};
use crate::devices::Nanos;
use crate::memory::Dma;
use crate::snapshot::StateError;

/// VIRTIO_BLK_F_SEG_MAX (2): `seg_max` in the configuration is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// VIRTIO_BLK_F_RO (5): the disk is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// VIRTIO_BLK_F_BLK_SIZE (6): `blk_size` in the configuration is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// VIRTIO_BLK_F_FLUSH (9): the device takes VIRTIO_BLK_T_FLUSH.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

// Request types (5.2.6).
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

// Status values (5.2.6).
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// The request header: type, reserved, sector (5.2.6).
const REQ_HDR_LEN: u64 = 16;
/// The GET_ID answer: 20 bytes, NUL-padded (VIRTIO_BLK_ID_BYTES).
const ID_BYTES: usize = 20;
/// Segments per request the driver may use (`seg_max`): the queue size less
/// the header and status descriptors, as QEMU offers.
const SEG_MAX: u32 = super::queue::MAX_QUEUE_SIZE as u32 - 2;
/// Largest data transfer accepted in one request. Linux sends at most
/// `max_sectors` (1280 KiB by default); a guest asking for more than this
/// gets IOERR rather than a host allocation of its choosing.
const MAX_TRANSFER: u64 = 32 << 20;
/// Requests taken per notification (the queue cannot hold more).
const BURST: usize = super::queue::MAX_QUEUE_SIZE as usize;

/// Counters for `--stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    /// Requests answered with IOERR or UNSUPP.
    pub errors: u64,
}

/// What a snapshot holds of a virtio disk beyond its transport: what the
/// guest was told about the disk (checked on load against the disk this
/// run opened; the image's contents and its `-snapshot` overlay are the
/// snapshot's drive records and overlays). Nothing else: requests complete
/// within the notify that brought them, so none is in flight between two
/// CPU slices. The `--stats` counters are this process's and not saved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlkState {
    /// Capacity in 512-byte sectors (the configuration's `capacity`).
    pub sectors: u64,
    /// VIRTIO_BLK_F_RO offered.
    pub read_only: bool,
    /// GET_ID's answer (`serial=`).
    pub id: [u8; ID_BYTES],
}

pub struct VirtioBlk {
    disk: Box<dyn BlockDevice + Send>,
    /// GET_ID's answer (`serial=`), NUL-padded.
    id: [u8; ID_BYTES],
    stats: BlkStats,
}

impl VirtioBlk {
    /// A virtio disk over `disk`; `serial` (at most 20 bytes, longer is cut)
    /// is what VIRTIO_BLK_T_GET_ID returns.
    pub fn new(disk: Box<dyn BlockDevice + Send>, serial: &str) -> Self {
        let mut id = [0u8; ID_BYTES];
        for (d, s) in id.iter_mut().zip(serial.bytes()) {
            *d = s;
        }
        VirtioBlk {
            disk,
            id,
            stats: BlkStats::default(),
        }
    }

    pub fn stats(&self) -> BlkStats {
        self.stats
    }

    /// The disk image behind the device (a snapshot records it).
    pub fn disk(&self) -> &(dyn BlockDevice + Send) {
        self.disk.as_ref()
    }

    /// The disk image, to put a snapshot's `-snapshot` overlay back into.
    pub fn disk_mut(&mut self) -> &mut (dyn BlockDevice + Send) {
        self.disk.as_mut()
    }

    fn state(&self) -> BlkState {
        BlkState {
            sectors: self.disk.sector_count(),
            read_only: self.disk.read_only(),
            id: self.id,
        }
    }

    /// Makes completed writes durable (at exit).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.disk.flush()
    }

    /// Carries out one request; returns the status and the bytes written
    /// into the driver's buffers (data only; the status byte is added by
    /// the caller).
    fn execute(&mut self, chain: &Chain, dma: &mut Dma) -> Result<(u8, u64), QueueError> {
        if chain.readable_len() < REQ_HDR_LEN {
            return Ok((VIRTIO_BLK_S_IOERR, 0));
        }
        let hdr = chain.read_all(dma, 0, REQ_HDR_LEN as usize)?;
        let le32 = |b: &[u8]| b.try_into().map(u32::from_le_bytes).unwrap_or(0);
        let le64 = |b: &[u8]| b.try_into().map(u64::from_le_bytes).unwrap_or(0);
        let kind = hdr.get(0..4).map_or(u32::MAX, le32);
        let sector = hdr.get(8..16).map_or(u64::MAX, le64);
        // The last writable byte is the status: data gets the rest.
        let data_in = chain.writable_len().saturating_sub(1);
        match kind {
            VIRTIO_BLK_T_IN => {
                let Some(len) = self.transfer_len(sector, data_in) else {
                    return Ok((VIRTIO_BLK_S_IOERR, 0));
                };
                let mut buf = vec![0u8; len];
                if self.disk.read_sectors(sector, &mut buf).is_err() {
                    return Ok((VIRTIO_BLK_S_IOERR, 0));
                }
                let n = chain.write_all(dma, &buf)?;
                self.stats.reads += 1;
                self.stats.read_bytes += len as u64;
                Ok((VIRTIO_BLK_S_OK, n as u64))
            }
            VIRTIO_BLK_T_OUT => {
                // 5.2.6.2: a read-only device fails writes.
                if self.disk.read_only() {
                    return Ok((VIRTIO_BLK_S_IOERR, 0));
                }
                let data_out = chain.readable_len() - REQ_HDR_LEN;
                let Some(len) = self.transfer_len(sector, data_out) else {
                    return Ok((VIRTIO_BLK_S_IOERR, 0));
                };
                let buf = chain.read_all(dma, REQ_HDR_LEN, len)?;
                if buf.len() != len || self.disk.write_sectors(sector, &buf).is_err() {
                    return Ok((VIRTIO_BLK_S_IOERR, 0));
                }
                self.stats.writes += 1;
                self.stats.write_bytes += len as u64;
                Ok((VIRTIO_BLK_S_OK, 0))
            }
            VIRTIO_BLK_T_FLUSH => {
                self.stats.flushes += 1;
                match self.disk.flush() {
                    Ok(()) => Ok((VIRTIO_BLK_S_OK, 0)),
                    Err(_) => Ok((VIRTIO_BLK_S_IOERR, 0)),
                }
            }
            VIRTIO_BLK_T_GET_ID => {
                let take = (data_in as usize).min(ID_BYTES);
                let n = chain.write_all(dma, self.id.get(..take).unwrap_or(&[]))?;
                Ok((VIRTIO_BLK_S_OK, n as u64))
            }
            _ => Ok((VIRTIO_BLK_S_UNSUPP, 0)),
        }
    }

    /// The byte count of a data transfer of `len` bytes at `sector`, if it is
    /// whole sectors, within the disk and not over [`MAX_TRANSFER`].
    fn transfer_len(&self, sector: u64, len: u64) -> Option<usize> {
        if len == 0 || !len.is_multiple_of(SECTOR_SIZE as u64) || len > MAX_TRANSFER {
            return None;
        }
        let end = sector.checked_add(len / SECTOR_SIZE as u64)?;
        (end <= self.disk.sector_count()).then_some(len as usize)
    }

    /// Sets the status byte: the last byte of the last writable buffer.
    fn write_status(chain: &Chain, dma: &mut Dma, status: u8) -> Result<bool, QueueError> {
        let Some(b) = chain.bufs.iter().rev().find(|b| b.write && b.len > 0) else {
            return Ok(false);
        };
        let last = super::queue::at(b.addr, u64::from(b.len) - 1, 1)?;
        dma.write(last, &[status])?;
        Ok(true)
    }

    fn process(&mut self, q: &mut Queue, dma: &mut Dma) -> Result<u32, QueueError> {
        let mut used = 0;
        for _ in 0..BURST {
            let Some(chain) = q.pop(dma)? else {
                break;
            };
            let (status, n) = self.execute(&chain, dma)?;
            if status != VIRTIO_BLK_S_OK {
                self.stats.errors += 1;
            }
            // A chain with no writable byte cannot carry a status: it is
            // returned with nothing written.
            let len = if Self::write_status(&chain, dma, status)? {
                n + 1
            } else {
                0
            };
            q.push_used(dma, chain.head, len as u32)?;
            used |= 1;
        }
        Ok(used)
    }
}

impl VirtioDevice for VirtioBlk {
    fn device_id(&self) -> u16 {
        2
    }
    fn pci_class(&self) -> (u8, u8) {
        // Mass storage, "other" (as QEMU's virtio-blk-pci).
        (0x01, 0x00)
    }
    fn name(&self) -> &'static str {
        "virtio-blk-pci"
    }
    fn features(&self) -> u64 {
        let ro = if self.disk.read_only() {
            VIRTIO_BLK_F_RO
        } else {
            0
        };
        VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH
            | ro
            | super::VIRTIO_F_RING_INDIRECT_DESC
    }
    fn queue_count(&self) -> usize {
        1
    }
    /// `struct virtio_blk_config` (5.2.4): capacity (le64, 512-byte
    /// sectors), size_max, seg_max, geometry (cylinders, heads, sectors),
    /// blk_size.
    fn config_read(&self, off: usize, buf: &mut [u8]) {
        let mut c = [0u8; 24];
        c[0..8].copy_from_slice(&self.disk.sector_count().to_le_bytes());
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        c[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = c.get(off + i).copied().unwrap_or(0);
        }
    }
    fn reset(&mut self) {}
    fn notify(
        &mut self,
        q: usize,
        queues: &mut [Queue],
        dma: &mut Dma,
        _now: Nanos,
    ) -> Result<u32, QueueError> {
        match queues.get_mut(q) {
            Some(queue) if q == 0 && queue.ready() => self.process(queue, dma),
            _ => Ok(0),
        }
    }
    fn poll(
        &mut self,
        _queues: &mut [Queue],
        _dma: &mut Dma,
        _now: Nanos,
    ) -> Result<u32, QueueError> {
        Ok(0)
    }
    fn save_state(&self) -> Result<Vec<u8>, StateError> {
        crate::snapshot::encode(&self.state())
    }
    fn load_state(&mut self, state: &[u8]) -> Result<(), StateError> {
        let saved: BlkState = crate::snapshot::decode(state)?;
        let here = self.state();
        if saved != here {
            let show = |s: &BlkState| {
                let serial = String::from_utf8_lossy(&s.id);
                format!(
                    "{} sectors{}, serial '{}'",
                    s.sectors,
                    if s.read_only { " read-only" } else { "" },
                    serial.trim_end_matches('\0')
                )
            };
            return Err(StateError::Mismatch(format!(
                "the snapshot's disk has {}, this one {}",
                show(&saved),
                show(&here)
            )));
        }
        Ok(())
    }
    fn stats_line(&self) -> Option<String> {
        let s = self.stats;
        Some(format!(
            "virtio-blk: {} reads/{} bytes, {} writes/{} bytes, {} flushes, {} failed requests",
            s.reads, s.read_bytes, s.writes, s.write_bytes, s.flushes, s.errors
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemImage;
    use crate::devices::virtio::pci::{VirtioPci, STATUS_DRIVER_OK, STATUS_FEATURES_OK};
    use crate::devices::{Ctx, Device, Events, IrqLines};
    use crate::memory::GuestMemory;
    use crate::pci::{PciFunction, BAR0, CMD_BUS_MASTER, CMD_MEMORY, COMMAND};

    const BAR_AT: u64 = 0xFE00_0000;
    const DESC: u64 = 0x10000;
    const AVAIL: u64 = 0x11000;
    const USED: u64 = 0x12000;

    struct Rig {
        mem: GuestMemory,
        dev: VirtioPci<VirtioBlk>,
        irqs: IrqLines,
        ev: Events,
        next: u16,
    }

    impl Rig {
        fn new(disk: Box<dyn BlockDevice + Send>) -> Rig {
            let mem = GuestMemory::new(4 << 20).expect("ram");
            let mut dev = VirtioPci::new(VirtioBlk::new(disk, "vx86-serial"), mem.dma(), 4);
            dev.config_mut().write(BAR0, 4, BAR_AT as u32);
            dev.config_mut()
                .write(COMMAND, 2, u32::from(CMD_MEMORY | CMD_BUS_MASTER));
            let mut rig = Rig {
                mem,
                dev,
                irqs: IrqLines::default(),
                ev: Events::default(),
                next: 0,
            };
            rig.w(0x14, 1, 0);
            rig.w(0x14, 1, 1 | 2);
            rig.w(0x08, 4, 1);
            rig.w(0x0C, 4, 1);
            rig.w(0x08, 4, 0);
            rig.w(0x0C, 4, VIRTIO_BLK_F_FLUSH);
            rig.w(0x14, 1, u64::from(1 | 2 | STATUS_FEATURES_OK));
            rig.w(0x16, 2, 0);
            rig.w(0x18, 2, 16);
            rig.w(0x20, 8, DESC);
            rig.w(0x28, 8, AVAIL);
            rig.w(0x30, 8, USED);
            rig.w(0x1C, 2, 1);
            rig.w(
                0x14,
                1,
                u64::from(1 | 2 | STATUS_FEATURES_OK | STATUS_DRIVER_OK),
            );
            rig
        }
        fn w(&mut self, off: u64, size: u8, v: u64) {
            let mut cx = Ctx::new(1000, 1, &mut self.irqs, &mut self.ev);
            self.dev.mmio_write(BAR_AT + off, size, v, &mut cx);
        }
        fn r(&mut self, off: u64, size: u8) -> u64 {
            let mut cx = Ctx::new(1000, 1, &mut self.irqs, &mut self.ev);
            self.dev.mmio_read(BAR_AT + off, size, &mut cx)
        }
        /// Submits a request of type `kind` at `sector` with `data` (OUT) or
        /// `in_len` bytes to fill (IN/GET_ID); returns (status, used len, data).
        fn request(
            &mut self,
            kind: u32,
            sector: u64,
            data: &[u8],
            in_len: u32,
        ) -> (u8, u32, Vec<u8>) {
            let mut dma = self.mem.dma();
            let mut hdr = kind.to_le_bytes().to_vec();
            hdr.extend_from_slice(&0u32.to_le_bytes());
            hdr.extend_from_slice(&sector.to_le_bytes());
            dma.write(0x20000, &hdr).expect("hdr");
            dma.write(0x21000, data).expect("data");
            let mut descs = vec![(0x20000u64, 16u32, 1u16)];
            if !data.is_empty() {
                descs.push((0x21000, data.len() as u32, 1));
            }
            if in_len > 0 {
                descs.push((0x30000, in_len, 1 | 2));
            }
            descs.push((0x40000, 1, 2));
            for (i, (addr, len, flags)) in descs.iter().enumerate() {
                let last = i + 1 == descs.len();
                let mut d = addr.to_le_bytes().to_vec();
                d.extend_from_slice(&len.to_le_bytes());
                let f = if last { flags & !1 } else { *flags };
                d.extend_from_slice(&f.to_le_bytes());
                d.extend_from_slice(&((i + 1) as u16).to_le_bytes());
                dma.write(DESC + 16 * i as u64, &d).expect("desc");
            }
            let slot = self.next % 16;
            dma.write_u16(AVAIL + 4 + 2 * u64::from(slot), 0)
                .expect("ring");
            self.next = self.next.wrapping_add(1);
            dma.write_u16(AVAIL + 2, self.next).expect("idx");
            dma.write(0x40000, &[0xEE]).expect("status");
            self.w(0x3000, 2, 0);
            assert_eq!(dma.read_u16(USED + 2).expect("used idx"), self.next);
            let len = dma
                .read_u32(USED + 4 + 8 * u64::from(slot) + 4)
                .expect("len");
            let mut st = [0u8];
            dma.read(0x40000, &mut st).expect("status");
            let mut got = vec![0u8; in_len as usize];
            dma.read(0x30000, &mut got).expect("in");
            (st[0], len, got)
        }
    }

    fn patterned(sectors: usize) -> Vec<u8> {
        (0..sectors * 512)
            .map(|i| (i / 512 + i % 7) as u8)
            .collect()
    }

    #[test]
    fn reads_writes_flushes_and_identifies() {
        let image = patterned(64);
        let mut rig = Rig::new(Box::new(MemImage::writable(image.clone())));
        assert_eq!(rig.r(0x2000, 4), 64, "capacity low");
        assert_eq!(rig.r(0x2000 + 20, 4), 512, "blk_size");
        let (st, len, got) = rig.request(VIRTIO_BLK_T_IN, 3, &[], 1024);
        assert_eq!((st, len), (VIRTIO_BLK_S_OK, 1025));
        assert_eq!(got, image[3 * 512..5 * 512]);
        let (st, _, _) = rig.request(VIRTIO_BLK_T_OUT, 10, &[0x5A; 512], 0);
        assert_eq!(st, VIRTIO_BLK_S_OK);
        let (st, _, got) = rig.request(VIRTIO_BLK_T_IN, 10, &[], 512);
        assert_eq!(st, VIRTIO_BLK_S_OK);
        assert!(got.iter().all(|&b| b == 0x5A));
        assert_eq!(
            rig.request(VIRTIO_BLK_T_FLUSH, 0, &[], 0).0,
            VIRTIO_BLK_S_OK
        );
        let (st, len, got) = rig.request(VIRTIO_BLK_T_GET_ID, 0, &[], 20);
        assert_eq!((st, len), (VIRTIO_BLK_S_OK, 21));
        assert_eq!(&got[..11], b"vx86-serial");
        assert_eq!(rig.request(99, 0, &[], 0).0, VIRTIO_BLK_S_UNSUPP);
        let s = rig.dev.device().stats();
        assert_eq!((s.reads, s.writes, s.flushes, s.errors), (2, 1, 1, 1));
        // Interrupt raised and acknowledged by the ISR read.
        assert_eq!(rig.r(0x1000, 1), 1);
    }

    #[test]
    fn bad_requests_fail_one_by_one() {
        let mut rig = Rig::new(Box::new(MemImage::writable(patterned(8))));
        // Past the end, straddling the end, odd lengths, a huge sector.
        assert_eq!(
            rig.request(VIRTIO_BLK_T_IN, 8, &[], 512).0,
            VIRTIO_BLK_S_IOERR
        );
        assert_eq!(
            rig.request(VIRTIO_BLK_T_IN, 7, &[], 1024).0,
            VIRTIO_BLK_S_IOERR
        );
        assert_eq!(
            rig.request(VIRTIO_BLK_T_IN, 0, &[], 100).0,
            VIRTIO_BLK_S_IOERR
        );
        assert_eq!(
            rig.request(VIRTIO_BLK_T_OUT, u64::MAX, &[0; 512], 0).0,
            VIRTIO_BLK_S_IOERR
        );
        // The device is still live and serves the next good request.
        assert_eq!(rig.request(VIRTIO_BLK_T_IN, 0, &[], 512).0, VIRTIO_BLK_S_OK);
        assert_eq!(
            rig.dev.status() & crate::devices::virtio::pci::STATUS_NEEDS_RESET,
            0
        );
    }

    /// The transport and the disk's state go through a snapshot: a device
    /// loaded from it (over a copy of guest RAM) serves the next request as
    /// the original does and saves the same bytes; a state that does not
    /// fit (another disk, a queue of impossible size) is refused; one whose
    /// rings lie outside RAM loads, and the first notify sets NEEDS_RESET
    /// (no host panic).
    #[test]
    fn state_round_trips_and_bad_states_are_refused_or_harmless() {
        use crate::devices::virtio::pci::{TransportState, STATUS_NEEDS_RESET};
        let mut rig = Rig::new(Box::new(MemImage::writable(patterned(64))));
        rig.request(VIRTIO_BLK_T_IN, 3, &[], 1024);
        rig.request(VIRTIO_BLK_T_GET_ID, 0, &[], 20);
        let saved = rig.dev.save_state().expect("save");

        let mut copy = Rig::new(Box::new(MemImage::writable(patterned(64))));
        copy.mem.ram_mut().copy_from_slice(rig.mem.ram());
        copy.dev.load_state(&saved).expect("load");
        copy.next = rig.next;
        assert_eq!(copy.dev.save_state().expect("save"), saved);
        assert_eq!(
            copy.request(VIRTIO_BLK_T_IN, 5, &[], 512),
            rig.request(VIRTIO_BLK_T_IN, 5, &[], 512)
        );

        let mut small = Rig::new(Box::new(MemImage::writable(patterned(32))));
        let e = small.dev.load_state(&saved).expect_err("another disk");
        assert!(
            e.to_string().contains(
                "the snapshot's disk has 64 sectors, serial 'vx86-serial', this one 32 sectors"
            ),
            "{e}"
        );

        let state: TransportState = crate::snapshot::decode(&saved).expect("decode");
        let mut odd = state.clone();
        odd.queues[0].size = 3;
        let e = copy
            .dev
            .load_state(&crate::snapshot::encode(&odd).expect("encode"))
            .expect_err("size 3");
        assert!(e.to_string().contains("queue 0 has size 3"), "{e}");

        let mut far = state;
        let q = &mut far.queues[0];
        (q.desc, q.avail, q.used) = (u64::MAX - 1, u64::MAX - 3, u64::MAX);
        copy.dev
            .load_state(&crate::snapshot::encode(&far).expect("encode"))
            .expect("rings anywhere load");
        copy.w(0x3000, 2, 0);
        assert_ne!(copy.dev.status() & STATUS_NEEDS_RESET, 0);
        assert_eq!(copy.r(0x1000, 1) & 2, 2, "a configuration change interrupt");
    }

    #[test]
    fn read_only_disk_refuses_writes_with_ioerr() {
        let img: &'static [u8] = Box::leak(patterned(8).into_boxed_slice());
        let mut rig = Rig::new(Box::new(MemImage::read_only(img)));
        assert_ne!(rig.r(0x04, 4) & VIRTIO_BLK_F_RO, 0, "RO offered");
        assert_eq!(
            rig.request(VIRTIO_BLK_T_OUT, 0, &[1; 512], 0).0,
            VIRTIO_BLK_S_IOERR
        );
        let (st, _, got) = rig.request(VIRTIO_BLK_T_IN, 0, &[], 512);
        assert_eq!(st, VIRTIO_BLK_S_OK);
        assert_eq!(got, patterned(1));
    }
}
