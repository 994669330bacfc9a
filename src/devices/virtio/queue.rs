//! The split virtqueue (Virtual I/O Device (VIRTIO) Version 1.0, section
//! 2.4): a descriptor table, the driver's available ring and the device's
//! used ring, all in guest memory, reached only through the bounds-checked
//! [`Dma`] handle.
//!
//! Everything here is guest-controlled: descriptor addresses and lengths,
//! `next` links (which may loop), indirect tables (2.4.5.3), ring indices.
//! A malformed chain is an error the device reports by setting
//! DEVICE_NEEDS_RESET (2.1.2), never a host panic, a hang or an access
//! outside guest RAM: chains are cut at the queue size (or the indirect
//! table's size), nested indirect tables are refused, and every byte goes
//! through [`Dma`].

use crate::memory::{Dma, DmaError};

/// Descriptor flags (2.4.5).
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available ring flag: the driver does not want interrupts (2.4.7).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Largest queue vx86 offers (the driver may choose a smaller power of two).
pub const MAX_QUEUE_SIZE: u16 = 256;
/// Longest indirect table accepted (entries), and the longest chain.
const MAX_INDIRECT: u32 = 1024;

/// What is wrong with a queue the driver set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    Dma(#[from] DmaError),
    #[error("descriptor chain longer than the queue (a loop)")]
    ChainLoop,
    #[error("descriptor index {0} out of range")]
    BadIndex(u16),
    #[error("indirect descriptor table of {0} bytes is not a multiple of 16 or too large")]
    BadIndirect(u32),
    #[error("an indirect descriptor inside an indirect table")]
    NestedIndirect,
    #[error("the driver made {0} more buffers available than the queue holds")]
    AvailOverrun(u16),
}

/// Guest-physical `base + off` for an access of `len` bytes: an address
/// past the end of the 64-bit space (a ring or buffer the driver, or a
/// damaged snapshot, put at its very top) is outside guest RAM, as DMA there
/// would be.
pub fn at(base: u64, off: u64, len: u64) -> Result<u64, QueueError> {
    base.checked_add(off).ok_or(QueueError::Dma(DmaError {
        addr: base,
        len: off.saturating_add(len),
    }))
}

/// One buffer of a chain: guest-physical address, length, device-writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub write: bool,
}

/// A descriptor chain taken from the available ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// The head index, returned in the used ring.
    pub head: u16,
    pub bufs: Vec<Buf>,
}

impl Chain {
    /// Total bytes of the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.bufs
            .iter()
            .filter(|b| !b.write)
            .map(|b| u64::from(b.len))
            .sum()
    }
    /// Total bytes of the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.bufs
            .iter()
            .filter(|b| b.write)
            .map(|b| u64::from(b.len))
            .sum()
    }

    /// Copies the readable buffers' bytes, skipping the first `skip`, into a
    /// vector of at most `max` bytes.
    pub fn read_all(&self, dma: &Dma, skip: u64, max: usize) -> Result<Vec<u8>, QueueError> {
        let mut out = Vec::new();
        let mut skip = skip;
        for b in self.bufs.iter().filter(|b| !b.write) {
            let len = u64::from(b.len);
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = ((len - skip) as usize).min(max - out.len());
            let start = out.len();
            out.resize(start + take, 0);
            dma.read(at(b.addr, skip, take as u64)?, &mut out[start..])?;
            skip = 0;
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    /// Writes `data` across the writable buffers; returns the bytes written
    /// (less than `data.len()` when the buffers are too small).
    pub fn write_all(&self, dma: &mut Dma, data: &[u8]) -> Result<usize, QueueError> {
        let mut done = 0;
        for b in self.bufs.iter().filter(|b| b.write) {
            if done == data.len() {
                break;
            }
            let take = (b.len as usize).min(data.len() - done);
            dma.write(b.addr, &data[done..done + take])?;
            done += take;
        }
        Ok(done)
    }
}

/// One split virtqueue's configuration and the device's position in it:
/// plain data, saved whole in a snapshot (the rings themselves are in guest
/// RAM, which the snapshot holds).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Queue {
    /// Size chosen by the driver (a power of two, at most the maximum).
    pub size: u16,
    pub enabled: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// The next available-ring entry the device will take.
    pub last_avail: u16,
    /// The device's used index (the next used-ring entry it fills).
    pub used_idx: u16,
}

impl Queue {
    pub fn new(max: u16) -> Self {
        Queue {
            size: max,
            ..Default::default()
        }
    }

    /// Back to the state after a device reset (2.1.2), keeping the maximum size.
    pub fn reset(&mut self, max: u16) {
        *self = Queue::new(max);
    }

    pub fn ready(&self) -> bool {
        self.enabled && self.size != 0
    }

    /// The driver's available index.
    fn avail_idx(&self, dma: &Dma) -> Result<u16, QueueError> {
        Ok(dma.read_u16(at(self.avail, 2, 2)?)?)
    }

    /// Whether the driver asked not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT).
    pub fn interrupt_suppressed(&self, dma: &Dma) -> bool {
        dma.read_u16(self.avail)
            .is_ok_and(|f| f & VIRTQ_AVAIL_F_NO_INTERRUPT != 0)
    }

    /// True when the driver has made a buffer available that the device has
    /// not taken.
    pub fn has_available(&self, dma: &Dma) -> Result<bool, QueueError> {
        if !self.ready() {
            return Ok(false);
        }
        let idx = self.avail_idx(dma)?;
        let pending = idx.wrapping_sub(self.last_avail);
        if pending > self.size {
            return Err(QueueError::AvailOverrun(pending));
        }
        Ok(pending != 0)
    }

    fn read_desc(dma: &Dma, table: u64, i: u32) -> Result<(u64, u32, u16, u16), QueueError> {
        let mut d = [0u8; 16];
        dma.read(at(table, u64::from(i) * 16, 16)?, &mut d)?;
        let addr = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let len = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        let flags = u16::from_le_bytes([d[12], d[13]]);
        let next = u16::from_le_bytes([d[14], d[15]]);
        Ok((addr, len, flags, next))
    }

    /// Takes the next available chain, if any (and advances past it).
    pub fn pop(&mut self, dma: &Dma) -> Result<Option<Chain>, QueueError> {
        if !self.has_available(dma)? {
            return Ok(None);
        }
        let slot = u64::from(self.last_avail % self.size);
        let head = dma.read_u16(at(self.avail, 4 + 2 * slot, 2)?)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        let chain = self.walk(dma, head)?;
        Ok(Some(chain))
    }

    /// Follows a chain from `head`, expanding one level of indirect table.
    fn walk(&self, dma: &Dma, head: u16) -> Result<Chain, QueueError> {
        let mut chain = Chain {
            head,
            bufs: Vec::new(),
        };
        if head >= self.size {
            return Err(QueueError::BadIndex(head));
        }
        let mut i = head;
        let mut steps = 0u32;
        loop {
            steps += 1;
            if steps > u32::from(self.size) {
                return Err(QueueError::ChainLoop);
            }
            let (addr, len, flags, next) = Self::read_desc(dma, self.desc, u32::from(i))?;
            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                // 2.4.5.3.1: the table's descriptors form the chain; the
                // indirect descriptor's own NEXT is ignored after it.
                if len % 16 != 0 || len / 16 > MAX_INDIRECT || len == 0 {
                    return Err(QueueError::BadIndirect(len));
                }
                let n = len / 16;
                let mut j = 0u32;
                let mut isteps = 0u32;
                loop {
                    isteps += 1;
                    if isteps > n {
                        return Err(QueueError::ChainLoop);
                    }
                    let (a, l, f, nx) = Self::read_desc(dma, addr, j)?;
                    if f & VIRTQ_DESC_F_INDIRECT != 0 {
                        return Err(QueueError::NestedIndirect);
                    }
                    chain.bufs.push(Buf {
                        addr: a,
                        len: l,
                        write: f & VIRTQ_DESC_F_WRITE != 0,
                    });
                    if f & VIRTQ_DESC_F_NEXT == 0 {
                        break;
                    }
                    if u32::from(nx) >= n {
                        return Err(QueueError::BadIndex(nx));
                    }
                    j = u32::from(nx);
                }
                return Ok(chain);
            }
            chain.bufs.push(Buf {
                addr,
                len,
                write: flags & VIRTQ_DESC_F_WRITE != 0,
            });
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            if next >= self.size {
                return Err(QueueError::BadIndex(next));
            }
            i = next;
        }
    }

    /// Returns a chain to the driver: a used-ring entry with the bytes written.
    pub fn push_used(&mut self, dma: &mut Dma, head: u16, len: u32) -> Result<(), QueueError> {
        let slot = u64::from(self.used_idx % self.size.max(1));
        let id_at = at(self.used, 4 + 8 * slot, 4)?;
        let len_at = at(self.used, 8 + 8 * slot, 4)?;
        let idx = at(self.used, 2, 2)?;
        dma.write_u32(id_at, u32::from(head))?;
        dma.write_u32(len_at, len)?;
        self.used_idx = self.used_idx.wrapping_add(1);
        // The index is written after the entry (2.4.8.2), as the driver
        // reads the entry only once it sees the index move.
        dma.write_u16(idx, self.used_idx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestMemory;

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;

    fn setup(size: u16) -> (GuestMemory, Dma, Queue) {
        let mem = GuestMemory::new(2 << 20).expect("ram");
        let dma = mem.dma();
        let mut q = Queue::new(size);
        q.desc = DESC;
        q.avail = AVAIL;
        q.used = USED;
        q.enabled = true;
        (mem, dma, q)
    }

    fn desc(dma: &mut Dma, table: u64, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = Vec::new();
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&next.to_le_bytes());
        dma.write(table + 16 * i, &d).expect("desc");
    }

    fn make_available(dma: &mut Dma, slot: u16, head: u16, idx: u16) {
        dma.write_u16(AVAIL + 4 + 2 * u64::from(slot), head)
            .expect("ring");
        dma.write_u16(AVAIL + 2, idx).expect("idx");
    }

    #[test]
    fn chains_are_walked_and_returned() {
        let (_m, mut dma, mut q) = setup(8);
        desc(&mut dma, DESC, 0, 0x10000, 12, VIRTQ_DESC_F_NEXT, 1);
        desc(&mut dma, DESC, 1, 0x11000, 100, VIRTQ_DESC_F_WRITE, 0);
        make_available(&mut dma, 0, 0, 1);
        let c = q.pop(&dma).expect("ok").expect("a chain");
        assert_eq!(c.head, 0);
        assert_eq!(c.readable_len(), 12);
        assert_eq!(c.writable_len(), 100);
        assert_eq!(c.write_all(&mut dma, &[7; 150]).expect("write"), 100);
        q.push_used(&mut dma, c.head, 100).expect("used");
        assert_eq!(dma.read_u16(USED + 2).expect("idx"), 1);
        assert_eq!(dma.read_u32(USED + 8).expect("len"), 100);
        assert!(q.pop(&dma).expect("ok").is_none());
    }

    #[test]
    fn loops_bad_indices_and_bad_addresses_are_errors() {
        let (_m, mut dma, mut q) = setup(4);
        desc(&mut dma, DESC, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 1);
        desc(&mut dma, DESC, 1, 0x10000, 4, VIRTQ_DESC_F_NEXT, 0);
        make_available(&mut dma, 0, 0, 1);
        assert_eq!(q.pop(&dma), Err(QueueError::ChainLoop));
        let (_m, mut dma, mut q) = setup(4);
        desc(&mut dma, DESC, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 9);
        make_available(&mut dma, 0, 0, 1);
        assert_eq!(q.pop(&dma), Err(QueueError::BadIndex(9)));
        // A descriptor table outside RAM.
        let (_m, mut dma, mut q) = setup(4);
        q.desc = 0xFFFF_FFFF_0000;
        make_available(&mut dma, 0, 0, 1);
        assert!(matches!(q.pop(&dma), Err(QueueError::Dma(_))));
        // The driver claims more buffers than the queue holds.
        let (_m, mut dma, q) = setup(4);
        make_available(&mut dma, 0, 0, 9);
        assert_eq!(q.has_available(&dma), Err(QueueError::AvailOverrun(9)));
    }

    /// Rings and buffers at the very top of the 64-bit space (a driver's
    /// choice, or a damaged snapshot's) are DMA errors, never an overflow.
    #[test]
    fn rings_at_the_top_of_the_address_space_are_errors() {
        let top = u64::MAX - 1;
        let dma_err = |r: Result<Option<Chain>, QueueError>| matches!(r, Err(QueueError::Dma(_)));
        // The descriptor table: entry 7 lies past 2^64.
        let (_m, mut dma, mut q) = setup(8);
        q.desc = top;
        make_available(&mut dma, 0, 7, 1);
        assert!(dma_err(q.pop(&dma)));
        // The available ring's index.
        let (_m, dma, mut q) = setup(8);
        q.avail = top;
        assert!(dma_err(q.pop(&dma)));
        // The used ring.
        let (_m, mut dma, mut q) = setup(8);
        q.used = top;
        q.used_idx = 5;
        assert!(matches!(
            q.push_used(&mut dma, 0, 1),
            Err(QueueError::Dma(_))
        ));
        // A buffer that ends past 2^64.
        let c = Chain {
            head: 0,
            bufs: vec![Buf {
                addr: u64::MAX - 4,
                len: 64,
                write: false,
            }],
        };
        assert!(matches!(c.read_all(&dma, 8, 64), Err(QueueError::Dma(_))));
    }

    #[test]
    fn indirect_tables() {
        let (_m, mut dma, mut q) = setup(4);
        let table = 0x8000;
        desc(&mut dma, table, 0, 0x10000, 12, VIRTQ_DESC_F_NEXT, 1);
        desc(&mut dma, table, 1, 0x11000, 64, 0, 0);
        desc(&mut dma, DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        make_available(&mut dma, 0, 0, 1);
        let c = q.pop(&dma).expect("ok").expect("chain");
        assert_eq!(c.bufs.len(), 2);
        assert_eq!(c.readable_len(), 76);
        // Nested and looping indirect tables are refused.
        desc(&mut dma, table, 1, 0x9000, 16, VIRTQ_DESC_F_INDIRECT, 0);
        make_available(&mut dma, 1, 0, 2);
        assert_eq!(q.pop(&dma), Err(QueueError::NestedIndirect));
        desc(&mut dma, table, 1, 0x11000, 64, VIRTQ_DESC_F_NEXT, 0);
        make_available(&mut dma, 2, 0, 3);
        assert_eq!(q.pop(&dma), Err(QueueError::ChainLoop));
        desc(&mut dma, DESC, 0, table, 33, VIRTQ_DESC_F_INDIRECT, 0);
        make_available(&mut dma, 3, 0, 4);
        assert_eq!(q.pop(&dma), Err(QueueError::BadIndirect(33)));
    }
}
