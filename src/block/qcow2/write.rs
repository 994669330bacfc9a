//! qcow2 writes, in QEMU's order (block/qcow2-cluster.c): a guest write to
//! a cluster the image holds with refcount 1 (the COPIED flag) goes in
//! place; any other cluster (unallocated, backed, zero, compressed, or
//! shared with an internal snapshot) gets a new cluster at the end of the
//! file, filled with what the guest wrote and, around it, what the cluster
//! read as before (copy-on-write from the backing file, zeros, the
//! decompressed bytes or the shared copy). An L2 table that is missing or
//! shared is made the same way.
//!
//! Each request then writes its metadata in an order that leaves the file
//! consistent at every step:
//!
//! 1. the data and any new L2 tables (new clusters nothing points to yet);
//! 2. the refcounts of the new clusters (a new refcount block before the
//!    table entry naming it);
//! 3. the L2 entries, then the L1 entries, that point to them;
//! 4. the refcounts of the clusters no longer used, decremented.
//!
//! A kill between any two writes leaves at most counted clusters that
//! nothing points to: leaks, which `qemu-img check` reports as such (exit
//! status 3), never errors. Against a host crash the steps are separated
//! by `fdatasync` barriers (only where a request allocated or freed), as
//! QEMU orders its metadata caches; `cache=unsafe` skips them.

use std::fs::File;
use std::io;

use super::{corrupt, fits, Cluster, Qcow2Image, COPIED, OFFSET_MASK, SECTOR_SIZE};
use crate::block::raw::write_all_at;
use crate::block::{check_range, BlockDevice};

/// What a request changed, to be written out in order by `commit`.
#[derive(Default)]
struct Pending {
    /// Clusters were allocated: a barrier precedes the entries pointing to them.
    allocated: bool,
    /// New L2 tables (host offsets), written whole from the cache.
    new_l2: Vec<u64>,
    /// Changed entries of existing L2 tables: (table offset, index).
    l2_dirty: Vec<(u64, usize)>,
    /// Changed L1 entries.
    l1_dirty: Vec<usize>,
    /// Host byte ranges whose clusters lose a reference.
    frees: Vec<(u64, u64)>,
}

/// Orders the writes before it against those after it, on the host medium.
fn barrier(file: &File, skip: bool) -> io::Result<()> {
    if skip {
        Ok(())
    } else {
        file.sync_data()
    }
}

impl Qcow2Image {
    /// Writes `buf` (whole sectors) at sector `lba`.
    pub(super) fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        if self.rc.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "qcow2 image opened read-only",
            ));
        }
        if self.broken {
            return Err(io::Error::other(
                "an earlier host I/O error interrupted a metadata update; writes are refused",
            ));
        }
        check_range(self.sector_count(), lba, buf.len())?;
        self.trim_caches();
        let cs = self.cluster_size();
        let mut p = Pending::default();
        let mut pos = lba * SECTOR_SIZE as u64;
        let mut done = 0;
        let mut result = Ok(());
        while done < buf.len() {
            let room = (cs - (pos & (cs - 1))) as usize;
            let n = room.min(buf.len() - done);
            let Some(chunk) = buf.get(done..done + n) else {
                break;
            };
            // A refused cluster fails the request; what was written before
            // it is still committed, so memory and file agree.
            if let Err(e) = self.write_in_cluster(pos, chunk, &mut p) {
                result = Err(e);
                break;
            }
            done += n;
            pos += n as u64;
        }
        if let Err(e) = self.commit(p) {
            self.broken = true;
            return Err(e);
        }
        if self.write_through && result.is_ok() {
            self.file.sync_data()?;
        }
        result
    }

    /// The refcount of the host cluster at byte `off`.
    fn refcount(&mut self, off: u64) -> io::Result<u64> {
        let idx = off >> self.cluster_bits;
        match self.rc.as_mut() {
            Some(rc) => rc.get(&self.file, idx),
            None => Err(io::ErrorKind::PermissionDenied.into()),
        }
    }

    /// A new cluster at the end of the file, counted (in memory).
    fn alloc(&mut self) -> io::Result<u64> {
        let off = match self.rc.as_mut() {
            Some(rc) => rc.alloc(&self.file)?,
            None => return Err(io::ErrorKind::PermissionDenied.into()),
        };
        self.file_len = self.file_len.max(off + self.cluster_size());
        Ok(off)
    }

    /// The L2 table for L1 entry `i`, made writable: one with refcount 1
    /// as it is, a shared one copied, a missing one created (in the cache;
    /// `commit` writes it).
    fn writable_l2(&mut self, i: usize, p: &mut Pending) -> io::Result<u64> {
        let e = self.l1.get(i).copied().unwrap_or(0);
        let old = self.l2_offset(i)?;
        if let Some(off) = old {
            if p.new_l2.contains(&off) {
                return Ok(off);
            }
            let n = self.refcount(off)?;
            if e & COPIED != 0 && n == 1 {
                return Ok(off);
            }
            if n == 0 || e & COPIED != 0 {
                // In use with a count of 0 (a later allocation could take
                // it), or marked unshared while shared: changing it would
                // corrupt something.
                return Err(corrupt(format!(
                    "L2 table at {off:#x} has refcount {n} (L1 entry {i} COPIED flag {})",
                    e >> 63
                )));
            }
        }
        let table = match old {
            Some(off) => {
                self.cache_l2(off)?;
                self.l2_cache.get(&off).cloned().unwrap_or_default()
            }
            None => vec![0; (self.cluster_size() / 8) as usize],
        };
        let new = self.alloc()?;
        self.l2_cache.insert(new, table);
        p.new_l2.push(new);
        p.allocated = true;
        if let Some(slot) = self.l1.get_mut(i) {
            *slot = new | COPIED;
        }
        p.l1_dirty.push(i);
        if let Some(off) = old {
            p.frees.push((off, self.cluster_size()));
        }
        Ok(new)
    }

    /// The host bytes the cluster behind L2 entry `e` holds, to be freed
    /// when the entry is replaced; checks they are counted.
    fn held_range(&mut self, e: u64, old: Cluster) -> io::Result<Option<(u64, u64)>> {
        let cs = self.cluster_size();
        let range = match old {
            Cluster::Unallocated => return Ok(None),
            Cluster::Data(off) => (off, cs),
            Cluster::Zero => {
                // A v3 zero cluster may keep its (preallocated) host cluster.
                let off = e & OFFSET_MASK;
                if off == 0 {
                    return Ok(None);
                }
                if !off.is_multiple_of(cs) || !fits(off, cs, self.file_len.next_multiple_of(cs)) {
                    return Err(corrupt(format!(
                        "zero cluster at {off:#x} lies outside the file or is misaligned"
                    )));
                }
                (off, cs)
            }
            Cluster::Compressed { offset, .. } => {
                // As QEMU frees it: the whole 512-byte sectors the
                // descriptor names (qcow2_free_any_cluster).
                let x = 62 - (self.cluster_bits - 8);
                let sectors = ((e & ((1u64 << 62) - 1)) >> x) + 1;
                (offset & !511, sectors * 512)
            }
        };
        let (start, len) = range;
        let mut c = start & !(cs - 1);
        while c < start + len {
            let n = self.refcount(c)?;
            if n == 0 {
                return Err(corrupt(format!(
                    "host cluster at {c:#x} is in use but its refcount is 0"
                )));
            }
            c += cs;
        }
        Ok(Some(range))
    }

    /// Writes `data` at guest byte `pos`, all within one cluster.
    fn write_in_cluster(&mut self, pos: u64, data: &[u8], p: &mut Pending) -> io::Result<()> {
        let cs = self.cluster_size();
        let in_cluster = pos & (cs - 1);
        let l2_bits = self.cluster_bits - 3;
        let l1_index = (pos >> (self.cluster_bits + l2_bits)) as usize;
        let l2_index = ((pos >> self.cluster_bits) & ((1 << l2_bits) - 1)) as usize;
        let l2_off = self.writable_l2(l1_index, p)?;
        let e = self.l2_entry(l2_off, l2_index)?;
        let old = self.decode_l2(e)?;
        if let Cluster::Data(off) = old {
            if e & COPIED != 0 {
                // COPIED claims a refcount of exactly 1: 0 would let a
                // later allocation hand the cluster out again, more than 1
                // means a snapshot shares it. Either way: refuse.
                let n = self.refcount(off)?;
                if n != 1 {
                    return Err(corrupt(format!(
                        "data cluster at {off:#x} is marked COPIED but its refcount is {n}"
                    )));
                }
                write_all_at(&self.file, data, off + in_cluster)?;
                self.file_len = self.file_len.max(off + in_cluster + data.len() as u64);
                return Ok(());
            }
        }
        let held = self.held_range(e, old)?;
        let mut whole = Vec::new();
        let bytes: &[u8] = if data.len() as u64 == cs {
            data
        } else {
            whole.resize(cs as usize, 0);
            self.read_in_cluster(pos - in_cluster, &mut whole)?;
            let at = in_cluster as usize;
            if let Some(dst) = whole.get_mut(at..at + data.len()) {
                dst.copy_from_slice(data);
            }
            &whole
        };
        let new = self.alloc()?;
        write_all_at(&self.file, bytes, new)?;
        p.allocated = true;
        if let Some(t) = self.l2_cache.get_mut(&l2_off) {
            if let Some(slot) = t.get_mut(l2_index) {
                *slot = new | COPIED;
            }
        }
        if !p.new_l2.contains(&l2_off) {
            p.l2_dirty.push((l2_off, l2_index));
        }
        if let Some(r) = held {
            p.frees.push(r);
        }
        Ok(())
    }

    /// Writes what a request changed, in the order the module doc gives.
    fn commit(&mut self, p: Pending) -> io::Result<()> {
        let file = &self.file;
        let skip = self.ignore_flush;
        let Some(rc) = self.rc.as_mut() else {
            return Ok(());
        };
        // 1. New L2 tables (the data is written already).
        for off in &p.new_l2 {
            let raw: Vec<u8> = self
                .l2_cache
                .get(off)
                .map(|t| t.iter().flat_map(|e| e.to_be_bytes()).collect())
                .unwrap_or_default();
            write_all_at(file, &raw, *off)?;
        }
        // 2. Refcounts; a changed table only once the blocks it names are durable.
        rc.write_blocks(file)?;
        let mut frees = p.frees;
        if rc.table_changed() {
            barrier(file, skip)?;
            frees.extend(rc.write_table(file, || barrier(file, skip))?);
        }
        // 3. The entries that point to the new clusters.
        if p.allocated {
            barrier(file, skip)?;
        }
        for (t, j) in p.l2_dirty {
            let e = self
                .l2_cache
                .get(&t)
                .and_then(|v| v.get(j))
                .copied()
                .unwrap_or(0);
            write_all_at(file, &e.to_be_bytes(), t + 8 * j as u64)?;
        }
        for i in p.l1_dirty {
            let e = self.l1.get(i).copied().unwrap_or(0);
            write_all_at(file, &e.to_be_bytes(), self.l1_offset + 8 * i as u64)?;
        }
        // 4. Clusters nothing points to any more.
        if !frees.is_empty() {
            barrier(file, skip)?;
            for (start, len) in frees {
                match rc.free(file, start, len) {
                    // Already inconsistent (counted too low): leave it.
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
                    r => r?,
                }
            }
            rc.write_blocks(file)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{be32, be64, L2_COMPRESSED, QCOW2_MAGIC};
    use super::*;
    use crate::block::test_util::TempFile;
    use crate::block::RawImage;
    use std::collections::HashMap;

    /// A fresh image as `qemu-img create` lays it out: header, refcount
    /// table, one refcount block, L1 table; all counted once. `backing`: a
    /// raw backing file's name.
    fn create(
        size: u64,
        cluster_bits: u32,
        order: u32,
        version: u32,
        backing: Option<&str>,
    ) -> Vec<u8> {
        let cs = 1usize << cluster_bits;
        let per_l1 = 1u64 << (2 * cluster_bits - 3);
        let l1_size = size.div_ceil(per_l1) as usize;
        let l1_clusters = (l1_size * 8).div_ceil(cs).max(1);
        let mut f = vec![0u8; (3 + l1_clusters) * cs];
        let put32 =
            |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_be_bytes());
        let put64 =
            |f: &mut Vec<u8>, at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_be_bytes());
        f[..4].copy_from_slice(&QCOW2_MAGIC);
        put32(&mut f, 4, version);
        put32(&mut f, 20, cluster_bits);
        put64(&mut f, 24, size);
        put32(&mut f, 36, l1_size as u32);
        put64(&mut f, 40, 3 * cs as u64);
        put64(&mut f, 48, cs as u64);
        put32(&mut f, 56, 1);
        if version == 3 {
            put32(&mut f, 96, order);
            put32(&mut f, 100, 104);
        }
        if let Some(name) = backing {
            f[0x100..0x100 + name.len()].copy_from_slice(name.as_bytes());
            put64(&mut f, 8, 0x100);
            put32(&mut f, 16, name.len() as u32);
        }
        // Refcount table -> the block at cluster 2, counting clusters 0..3+l1.
        put64(&mut f, cs, 2 * cs as u64);
        let bits = 1usize << order;
        for c in 0..3 + l1_clusters {
            if bits >= 8 {
                let n = bits / 8;
                f[2 * cs + c * n + n - 1] = 1;
            } else {
                f[2 * cs + c * bits / 8] |= 1 << ((c * bits) % 8);
            }
        }
        f
    }

    /// Counts references the way `qemu-img check` does (header, L1, L2,
    /// data, compressed sectors, refcount table and blocks) and compares
    /// them with the stored counts and the COPIED flags: (errors, leaks).
    fn check(path: &std::path::Path) -> (usize, usize) {
        let f = std::fs::read(path).expect("read image");
        let cb = be32(&f, 20);
        let cs = 1u64 << cb;
        let version = be32(&f, 4);
        let order = if version == 3 { be32(&f, 96) } else { 4 };
        let bits = 1u64 << order;
        let (l1_size, l1_off) = (be32(&f, 36) as u64, be64(&f, 40));
        let (rt_off, rt_cl) = (be64(&f, 48), u64::from(be32(&f, 56)));
        let mut refs: HashMap<u64, u64> = HashMap::new();
        let mut add = |start: u64, len: u64| {
            for c in start / cs..(start + len).div_ceil(cs) {
                *refs.entry(c).or_default() += 1;
            }
        };
        add(0, cs);
        add(l1_off, l1_size * 8);
        add(rt_off, rt_cl * cs);
        let per_block = cs * 8 / bits;
        let stored = |c: u64| -> u64 {
            let r = c / per_block;
            if r >= rt_cl * cs / 8 {
                return 0;
            }
            let b = be64(&f, (rt_off + 8 * r) as usize) & !511;
            if b == 0 {
                return 0;
            }
            let i = c % per_block;
            let bit = b * 8 + i * bits;
            let mut v = 0u64;
            if bits >= 8 {
                for k in 0..bits / 8 {
                    v = (v << 8) | u64::from(f.get((bit / 8 + k) as usize).copied().unwrap_or(0));
                }
            } else {
                let byte = u64::from(f.get((bit / 8) as usize).copied().unwrap_or(0));
                v = (byte >> (bit % 8)) & ((1 << bits) - 1);
            }
            v
        };
        for r in 0..rt_cl * cs / 8 {
            let b = be64(&f, (rt_off + 8 * r) as usize) & !511;
            if b != 0 {
                add(b, cs);
            }
        }
        let mut errors = 0;
        for i in 0..l1_size {
            let e = be64(&f, (l1_off + 8 * i) as usize);
            let l2 = e & OFFSET_MASK;
            if l2 == 0 {
                continue;
            }
            add(l2, cs);
            if (e >> 63 == 1) != (stored(l2 / cs) == 1) {
                errors += 1;
            }
            for j in 0..cs / 8 {
                let e = be64(&f, (l2 + 8 * j) as usize);
                if e & L2_COMPRESSED != 0 {
                    let x = 62 - (cb - 8);
                    let off = e & ((1 << x) - 1);
                    let sectors = ((e & ((1 << 62) - 1)) >> x) + 1;
                    add(off & !511, sectors * 512);
                } else if e & OFFSET_MASK != 0 {
                    add(e & OFFSET_MASK, cs);
                    if (e >> 63 == 1) != (stored((e & OFFSET_MASK) / cs) == 1) {
                        errors += 1;
                    }
                }
            }
        }
        let last = (f.len() as u64).div_ceil(cs) + rt_cl * cs / 8 * per_block;
        let mut leaks = 0;
        let top = refs
            .keys()
            .copied()
            .max()
            .unwrap_or(0)
            .max((f.len() as u64).div_ceil(cs));
        for c in 0..=top.min(last) {
            let (s, r) = (stored(c), refs.get(&c).copied().unwrap_or(0));
            if s < r {
                errors += 1;
            } else if s > r {
                leaks += 1;
            }
        }
        (errors, leaks)
    }

    /// A xorshift generator: the same writes every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Random writes (1 to 70 sectors, anywhere) against a shadow copy,
    /// read back as they go, through a fresh open, and counted: no errors,
    /// no leaks. Small clusters and wide counts make the refcount table
    /// grow several times; 1-bit counts and version 2 are covered too.
    #[test]
    fn random_writes_match_a_shadow_and_keep_refcounts_exact() {
        let base: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 512) as u8).collect();
        let raw = TempFile::with_contents(&base);
        let raw_name = raw.0.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for (cb, order, version, backed, ops) in [
            (9, 6, 3, false, 400),
            (9, 0, 3, true, 300),
            (12, 4, 2, true, 300),
            (16, 4, 3, false, 100),
            (10, 3, 3, true, 300),
        ] {
            let size = 3u64 << 20;
            let img = TempFile::with_contents(&create(
                size,
                cb,
                order,
                version,
                backed.then_some(raw_name),
            ));
            let mut shadow = vec![0u8; size as usize];
            if backed {
                shadow[..base.len()].copy_from_slice(&base);
            }
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(cb * 7 + order));
            {
                let mut q = Qcow2Image::open_writable(&img.0).expect("open");
                assert!(!q.read_only());
                for op in 0..ops {
                    let n = (1 + rng.next() % 70) as usize;
                    let lba = rng.next() % (size / 512 - n as u64);
                    let v = rng.next() as u8;
                    let data: Vec<u8> = (0..n * 512).map(|i| v ^ (i / 3) as u8).collect();
                    q.write_sectors(lba, &data).expect("write");
                    let at = lba as usize * 512;
                    shadow[at..at + data.len()].copy_from_slice(&data);
                    if op % 16 == 0 {
                        let mut back = vec![0u8; 96 * 512];
                        let l = lba.saturating_sub(13).min(size / 512 - 96);
                        q.read_sectors(l, &mut back).expect("read");
                        let s = l as usize * 512;
                        assert!(back == shadow[s..s + back.len()], "cb {cb} op {op}");
                    }
                }
                q.flush().expect("flush");
            }
            let mut q = Qcow2Image::open(&img.0).expect("reopen");
            let mut all = vec![0u8; size as usize];
            q.read_sectors(0, &mut all).expect("read all");
            assert!(all == shadow, "cluster_bits {cb} order {order} v{version}");
            drop(q);
            assert_eq!(check(&img.0), (0, 0), "cluster_bits {cb} order {order}");
            if order == 6 {
                // 64 counts a block, 64 blocks a table cluster: 2 MiB of
                // file outgrew the first table, which moved.
                let f = std::fs::read(&img.0).expect("read");
                assert_ne!(be64(&f, 48), 1 << cb, "the refcount table did not grow");
            }
        }
    }

    /// Writing over zero and compressed clusters makes them normal ones
    /// (the rest of the cluster copied), and frees the compressed bytes.
    #[test]
    fn zero_and_compressed_clusters_are_rewritten() {
        let cb = 9;
        let mut f = create(8 * 512, cb, 4, 3, None);
        // L2 table at cluster 4 with a zero cluster (0) and a compressed one
        // (1) whose deflate bytes sit in cluster 5; both counted.
        let plain: Vec<u8> = (0..512).map(|i| (i % 253) as u8).collect();
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut z = Vec::with_capacity(600);
        c.compress_vec(&plain, &mut z, flate2::FlushCompress::Finish)
            .expect("deflate");
        assert!(z.len() <= 512);
        f.resize(6 * 512, 0);
        f[5 * 512..5 * 512 + z.len()].copy_from_slice(&z);
        f[3 * 512..3 * 512 + 8].copy_from_slice(&(COPIED | (4 * 512)).to_be_bytes());
        f[4 * 512..4 * 512 + 8].copy_from_slice(&1u64.to_be_bytes());
        f[4 * 512 + 8..4 * 512 + 16].copy_from_slice(&(L2_COMPRESSED | (5 * 512)).to_be_bytes());
        f[2 * 512 + 9] = 1;
        f[2 * 512 + 11] = 1;
        let img = TempFile::with_contents(&f);
        assert_eq!(check(&img.0), (0, 0));
        let mut q = Qcow2Image::open_writable(&img.0).expect("open");
        q.write_sectors(0, &[0; 0]).expect("empty write");
        // Both clusters, whole.
        q.write_sectors(0, &[0xAB; 1024]).expect("write");
        let mut b = vec![0u8; 1536];
        q.read_sectors(0, &mut b).expect("read");
        assert!(b[..1024].iter().all(|&x| x == 0xAB));
        assert!(b[1024..].iter().all(|&x| x == 0));
        drop(q);
        assert_eq!(check(&img.0), (0, 0));
        // Bigger clusters to see the copy around a partial write.
        let mut f = create(8 * 1024, 10, 4, 3, None);
        let plain: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut z = Vec::with_capacity(1200);
        c.compress_vec(&plain, &mut z, flate2::FlushCompress::Finish)
            .expect("deflate");
        f.resize(6 * 1024, 0);
        f[5 * 1024..5 * 1024 + z.len()].copy_from_slice(&z);
        f[3 * 1024..3 * 1024 + 8].copy_from_slice(&(COPIED | (4 * 1024)).to_be_bytes());
        // x = 62 - (10 - 8) = 60 offset bits; additional sectors above.
        let extra = (z.len() as u64).div_ceil(512) - 1;
        f[4 * 1024..4 * 1024 + 8]
            .copy_from_slice(&(L2_COMPRESSED | (extra << 60) | (5 * 1024)).to_be_bytes());
        f[2 * 1024 + 9] = 1;
        f[2 * 1024 + 11] = 1;
        let img = TempFile::with_contents(&f);
        assert_eq!(check(&img.0), (0, 0));
        let mut q = Qcow2Image::open_writable(&img.0).expect("open");
        q.write_sectors(1, &[0xCD; 512]).expect("write");
        let mut b = vec![0u8; 1024];
        q.read_sectors(0, &mut b).expect("read");
        assert_eq!(&b[..512], &plain[..512]);
        assert!(b[512..].iter().all(|&x| x == 0xCD));
        drop(q);
        assert_eq!(check(&img.0), (0, 0));
    }

    /// A cluster in use whose refcount is 0, or marked COPIED while
    /// shared: the write fails with an I/O error and the file is unchanged;
    /// reads still work.
    #[test]
    fn a_wrong_refcount_fails_the_write_and_changes_nothing() {
        let img = TempFile::with_contents(&create(64 * 512, 9, 4, 3, None));
        {
            let mut q = Qcow2Image::open_writable(&img.0).expect("open");
            q.write_sectors(3, &[0x11; 512]).expect("write");
        }
        assert_eq!(check(&img.0), (0, 0));
        let good = std::fs::read(&img.0).expect("read");
        // Clusters: 0-3 metadata, 4 the L2 table, 5 the data (16-bit counts).
        assert_eq!(&good[2 * 512 + 10..2 * 512 + 12], &[0, 1]);
        for (at, v) in [(2 * 512 + 11, 0u8), (2 * 512 + 11, 2), (2 * 512 + 9, 0)] {
            let mut bad = good.clone();
            bad[at] = v;
            std::fs::write(&img.0, &bad).expect("write");
            let mut q = Qcow2Image::open_writable(&img.0).expect("open");
            let e = q.write_sectors(3, &[0x22; 512]).expect_err("refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            assert!(e.to_string().contains("refcount"), "{e}");
            let mut b = [0u8; 512];
            q.read_sectors(3, &mut b).expect("read");
            assert_eq!(b, [0x11; 512]);
            drop(q);
            assert!(
                std::fs::read(&img.0).expect("read") == bad,
                "byte {at} = {v}"
            );
        }
    }

    /// A read-only open refuses writes; a writable one locks the file.
    #[test]
    fn read_only_refuses_and_a_writer_locks() {
        let img = TempFile::with_contents(&create(64 * 512, 9, 4, 3, None));
        let mut ro = Qcow2Image::open(&img.0).expect("open");
        assert!(ro.read_only());
        assert_eq!(
            ro.write_sectors(0, &[0; 512]).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(matches!(
            Qcow2Image::open_writable(&img.0),
            Err(crate::block::BlockError::Locked { .. })
        ));
        drop(ro);
        let _w = Qcow2Image::open_writable(&img.0).expect("open");
        assert!(matches!(
            Qcow2Image::open(&img.0),
            Err(crate::block::BlockError::Locked { .. })
        ));
        assert!(RawImage::open(&img.0, true).is_err());
    }
}
