//! qcow2 reference counts (qcow2.txt "Host cluster management"): a refcount
//! table of 64-bit entries, each the host offset of a refcount block; a
//! block is one cluster of `2^refcount_order`-bit counts, one per host
//! cluster. A cluster is in use while its count is non-zero; a count of 1
//! lets a writer change the cluster in place (the COPIED flag of the L1/L2
//! entry that points to it says so); more than 1 means an internal snapshot
//! shares it.
//!
//! vx86 keeps the counts exact on every write (no lazy refcounts, the
//! header's dirty bit is never set): a cluster is counted before any L1/L2
//! entry points to it, and uncounted only after no entry does any more, so
//! a crash between the steps leaves at most a leaked cluster (`qemu-img
//! check` reports a leak, exit status 3, never an error).
//!
//! New clusters are taken at the end of the file, past every cluster in use.
//! Changes are made in memory and written out by [`Refcounts::write_blocks`]
//! and [`Refcounts::write_table`] in the order the caller chooses.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;

use super::{be64, corrupt, fits};
use crate::block::raw::{read_exact_at, write_all_at};

/// Refcount table entries: bits 9-63 hold the block's offset (qcow2.txt).
const REFT_OFFSET_MASK: u64 = 0xFFFF_FFFF_FFFF_FE00;
/// The largest refcount table QEMU opens (`QCOW_MAX_REFTABLE_SIZE`, 8 MiB).
pub(super) const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Header field offsets (qcow2.txt "Header").
const HDR_REFCOUNT_TABLE_OFFSET: u64 = 48;

/// The refcount structures of a writable image.
pub(super) struct Refcounts {
    cluster_bits: u32,
    /// log2 of the bits per count: 0..=6 (v2 images: 4, 16-bit counts).
    order: u32,
    table_offset: u64,
    /// Entries: block host offsets, 0 for none.
    table: Vec<u64>,
    /// Block host offset -> its bytes, loaded on first use.
    blocks: HashMap<u64, Vec<u8>>,
    /// Block host offset -> the byte range changed since the last write.
    dirty: HashMap<u64, (usize, usize)>,
    /// Table entries changed in place since the last write.
    table_dirty: BTreeSet<usize>,
    /// The table was moved (grown): written whole, then the header
    /// switched to it, then the old table's clusters freed.
    old_tables: Vec<(u64, u64)>,
    /// Cluster index where the next allocation is tried: past the end of
    /// the file and every cluster taken since opening.
    next_free: u64,
}

impl Refcounts {
    /// Reads and checks the refcount table (`table_clusters` clusters at
    /// `table_offset`): every block it names lies within the file, cluster
    /// aligned. Errors are the problem, for a one-line message.
    pub(super) fn load(
        file: &File,
        file_len: u64,
        cluster_bits: u32,
        order: u32,
        table_offset: u64,
        table_clusters: u32,
    ) -> Result<Refcounts, String> {
        let cs = 1u64 << cluster_bits;
        if order > 6 {
            return Err(format!(
                "refcount_order {order} is out of range (at most 6, 64-bit counts)"
            ));
        }
        let bytes = u64::from(table_clusters) << cluster_bits;
        if table_clusters == 0 || bytes > MAX_REFTABLE_BYTES {
            return Err(format!(
                "refcount table of {table_clusters} clusters is empty or too large"
            ));
        }
        if !table_offset.is_multiple_of(cs) || !fits(table_offset, bytes, file_len) {
            return Err(format!(
                "refcount table at {table_offset:#x} lies outside the file or is misaligned"
            ));
        }
        let mut raw = vec![0u8; bytes as usize];
        read_exact_at(file, &mut raw, table_offset)
            .map_err(|e| format!("cannot read the refcount table: {e}"))?;
        let table: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| be64(c, 0) & REFT_OFFSET_MASK)
            .collect();
        for (i, &off) in table.iter().enumerate() {
            if off != 0 && (!off.is_multiple_of(cs) || !fits(off, cs, file_len)) {
                return Err(format!(
                    "refcount table entry {i} points to {off:#x}, outside the file or misaligned"
                ));
            }
        }
        Ok(Refcounts {
            cluster_bits,
            order,
            table_offset,
            table,
            blocks: HashMap::new(),
            dirty: HashMap::new(),
            table_dirty: BTreeSet::new(),
            old_tables: Vec::new(),
            next_free: file_len.div_ceil(cs),
        })
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Counts per block: cluster bits * 8 / bits per count.
    fn per_block(&self) -> u64 {
        1 << (self.cluster_bits + 3 - self.order)
    }

    /// The largest count an entry holds.
    fn max(&self) -> u64 {
        u64::MAX >> (64 - (1u32 << self.order))
    }

    /// Makes sure the block at `off` is in memory.
    fn load_block(&mut self, file: &File, off: u64) -> io::Result<()> {
        if !self.blocks.contains_key(&off) {
            let mut b = vec![0u8; self.cluster_size() as usize];
            read_exact_at(file, &mut b, off)?;
            self.blocks.insert(off, b);
        }
        Ok(())
    }

    /// The count of host cluster `idx` (0 where no block covers it).
    pub(super) fn get(&mut self, file: &File, idx: u64) -> io::Result<u64> {
        let r = idx / self.per_block();
        let Some(&off) = self.table.get(r as usize) else {
            return Ok(0);
        };
        if off == 0 {
            return Ok(0);
        }
        self.load_block(file, off)?;
        let i = (idx % self.per_block()) as usize;
        let bits = 1usize << self.order;
        let b = self.blocks.get(&off).map_or(&[][..], Vec::as_slice);
        Ok(if bits >= 8 {
            let n = bits / 8;
            b.get(i * n..i * n + n)
                .map_or(0, |s| s.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
        } else {
            // Sub-byte counts: the lowest bits of a byte come first (as QEMU).
            let per_byte = 8 / bits;
            let byte = b.get(i / per_byte).copied().unwrap_or(0);
            u64::from(byte >> ((i % per_byte) * bits)) & self.max()
        })
    }

    /// Sets the count of host cluster `idx`; the block covering it must exist.
    fn set(&mut self, file: &File, idx: u64, value: u64) -> io::Result<()> {
        if value > self.max() {
            return Err(corrupt(format!(
                "refcount of host cluster {idx} would exceed {}",
                self.max()
            )));
        }
        let r = idx / self.per_block();
        let off = self.table.get(r as usize).copied().unwrap_or(0);
        if off == 0 {
            return Err(corrupt(format!(
                "no refcount block covers host cluster {idx}"
            )));
        }
        self.load_block(file, off)?;
        let i = (idx % self.per_block()) as usize;
        let bits = 1usize << self.order;
        let max = self.max();
        let b = self
            .blocks
            .get_mut(&off)
            .ok_or_else(|| corrupt("refcount block vanished".into()))?;
        let (lo, hi) = if bits >= 8 {
            let n = bits / 8;
            let s = b
                .get_mut(i * n..i * n + n)
                .ok_or_else(|| corrupt("refcount index out of range".into()))?;
            s.copy_from_slice(&value.to_be_bytes()[8 - n..]);
            (i * n, i * n + n)
        } else {
            let per_byte = 8 / bits;
            let shift = (i % per_byte) * bits;
            let byte = b
                .get_mut(i / per_byte)
                .ok_or_else(|| corrupt("refcount index out of range".into()))?;
            let mask = (max as u8) << shift;
            *byte = (*byte & !mask) | (((value as u8) << shift) & mask);
            (i / per_byte, i / per_byte + 1)
        };
        let d = self.dirty.entry(off).or_insert((lo, hi));
        *d = (d.0.min(lo), d.1.max(hi));
        Ok(())
    }

    /// Takes a free cluster at the end of the file and counts it (in
    /// memory); returns its host offset. A block or a bigger table it needs
    /// is laid out first, right there.
    pub(super) fn alloc(&mut self, file: &File) -> io::Result<u64> {
        loop {
            let idx = self.next_free;
            let r = (idx / self.per_block()) as usize;
            if r >= self.table.len() {
                self.grow_table(file, r + 1)?;
                continue;
            }
            if self.table.get(r).copied().unwrap_or(0) == 0 {
                // A new block describing its own range, placed at the first
                // cluster of what it is needed for: it counts itself.
                let off = idx << self.cluster_bits;
                self.blocks
                    .insert(off, vec![0; self.cluster_size() as usize]);
                self.dirty.insert(off, (0, self.cluster_size() as usize));
                if let Some(e) = self.table.get_mut(r) {
                    *e = off;
                }
                self.table_dirty.insert(r);
                self.set(file, idx, 1)?;
                self.next_free += 1;
                continue;
            }
            self.next_free += 1;
            // Something counted past the end of the file (a leak of an
            // earlier crash, or preallocation): skip it.
            if self.get(file, idx)? == 0 {
                self.set(file, idx, 1)?;
                return Ok(idx << self.cluster_bits);
            }
        }
    }

    /// Moves the table to the end of the file with room for at least
    /// `need` entries (doubling), the blocks that count its clusters laid
    /// out right after it (QEMU's `alloc_refcount_block` does the same).
    fn grow_table(&mut self, file: &File, need: usize) -> io::Result<()> {
        let per_cluster = (self.cluster_size() / 8) as usize;
        let per_block = self.per_block();
        let start = self.next_free;
        let mut entries = need.max(self.table.len() * 2).next_multiple_of(per_cluster);
        let (n_tab, n_blk, first_r, last_r) = loop {
            let n_tab = (entries / per_cluster) as u64;
            let mut n_blk = 0u64;
            // Blocks for the table's clusters, and for those blocks: a fixpoint.
            let (first_r, last_r) = loop {
                let end = start + n_tab + n_blk;
                let (first_r, last_r) = (start / per_block, (end - 1) / per_block);
                let missing = (first_r..=last_r)
                    .filter(|&r| self.table.get(r as usize).copied().unwrap_or(0) == 0)
                    .count() as u64;
                if missing == n_blk {
                    break (first_r, last_r);
                }
                n_blk = missing;
            };
            // One spare entry so the next allocation after these fits too.
            if (last_r as usize) + 1 < entries {
                break (n_tab, n_blk, first_r, last_r);
            }
            entries = (last_r as usize + 2).next_multiple_of(per_cluster);
        };
        if (entries as u64) * 8 > MAX_REFTABLE_BYTES {
            return Err(corrupt(
                "the refcount table would grow past 8 MiB (the image is too big)".into(),
            ));
        }
        let end = start + n_tab + n_blk;
        for c in start..end {
            if self.get(file, c)? != 0 {
                return Err(corrupt(format!(
                    "host cluster {c} past the end of the file is counted in use"
                )));
            }
        }
        let mut table = self.table.clone();
        table.resize(entries, 0);
        let mut b = start + n_tab;
        for r in first_r..=last_r {
            if let Some(e) = table.get_mut(r as usize).filter(|e| **e == 0) {
                let off = b << self.cluster_bits;
                *e = off;
                self.blocks
                    .insert(off, vec![0; self.cluster_size() as usize]);
                self.dirty.insert(off, (0, self.cluster_size() as usize));
                b += 1;
            }
        }
        let old_clusters = (self.table.len() as u64 * 8).div_ceil(self.cluster_size());
        self.old_tables.push((self.table_offset, old_clusters));
        self.table = table;
        self.table_offset = start << self.cluster_bits;
        self.table_dirty.clear();
        for c in start..end {
            self.set(file, c, 1)?;
        }
        self.next_free = end;
        Ok(())
    }

    /// Decrements the count of every host cluster that bytes `start ..
    /// start + len` touch (in memory). A count already 0 is corruption:
    /// nothing is changed then.
    pub(super) fn free(&mut self, file: &File, start: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let first = start >> self.cluster_bits;
        let last = (start + len - 1) >> self.cluster_bits;
        for c in first..=last {
            if self.get(file, c)? == 0 {
                return Err(corrupt(format!(
                    "freeing host cluster {c} whose refcount is already 0"
                )));
            }
        }
        for c in first..=last {
            let v = self.get(file, c)?;
            self.set(file, c, v - 1)?;
        }
        Ok(())
    }

    /// Writes the changed parts of the blocks (new blocks whole).
    pub(super) fn write_blocks(&mut self, file: &File) -> io::Result<()> {
        for (off, (lo, hi)) in std::mem::take(&mut self.dirty) {
            if let Some(part) = self.blocks.get(&off).and_then(|b| b.get(lo..hi)) {
                write_all_at(file, part, off + lo as u64)?;
            }
        }
        Ok(())
    }

    /// True when the table must be written (new blocks in it, or moved).
    /// The caller makes the blocks durable first.
    pub(super) fn table_changed(&self) -> bool {
        !self.table_dirty.is_empty() || !self.old_tables.is_empty()
    }

    /// Writes the table: the changed entries in place, or a moved table
    /// whole, then (after `barrier`) the header fields that point to it.
    /// Returns the old tables' host ranges, to be freed once the header is
    /// durable.
    pub(super) fn write_table(
        &mut self,
        file: &File,
        barrier: impl Fn() -> io::Result<()>,
    ) -> io::Result<Vec<(u64, u64)>> {
        let entry = |e: u64| e.to_be_bytes();
        if self.old_tables.is_empty() {
            for i in std::mem::take(&mut self.table_dirty) {
                let e = self.table.get(i).copied().unwrap_or(0);
                write_all_at(file, &entry(e), self.table_offset + 8 * i as u64)?;
            }
            return Ok(Vec::new());
        }
        let clusters = (self.table.len() as u64 * 8).div_ceil(self.cluster_size());
        let mut raw = Vec::with_capacity((clusters << self.cluster_bits) as usize);
        for &e in &self.table {
            raw.extend_from_slice(&entry(e));
        }
        raw.resize((clusters << self.cluster_bits) as usize, 0);
        write_all_at(file, &raw, self.table_offset)?;
        barrier()?;
        // refcount_table_offset (8 bytes) and refcount_table_clusters (4)
        // are adjacent: one write switches to the new table.
        let mut hdr = [0u8; 12];
        hdr[..8].copy_from_slice(&self.table_offset.to_be_bytes());
        hdr[8..].copy_from_slice(&(clusters as u32).to_be_bytes());
        write_all_at(file, &hdr, HDR_REFCOUNT_TABLE_OFFSET)?;
        self.table_dirty.clear();
        Ok(std::mem::take(&mut self.old_tables)
            .into_iter()
            .map(|(off, n)| (off, n << self.cluster_bits))
            .collect())
    }
}
