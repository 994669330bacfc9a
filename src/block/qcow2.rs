//! qcow2 images (QEMU's `docs/interop/qcow2.txt`, versions 2 and 3): the
//! two-level cluster map (L1 table -> L2 tables -> data clusters), zero
//! clusters, deflate-compressed clusters, a backing file for clusters the
//! image does not hold, and writes ([`write`]) with exact reference counts
//! ([`refcount`]) that `qemu-img check` accepts.
//!
//! Everything in the file is untrusted: every offset read from it is
//! checked against the file's length and the cluster alignment the spec
//! requires before it is used, all the metadata is checked when the image
//! is opened (a corrupt image is refused in one line naming the file), and
//! what could still go wrong at run time is an I/O error the guest sees as
//! a failed request. A backing file is only ever read.

mod refcount;
mod write;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::raw::{read_exact_at, write_all_at};
use super::{check_range, BlockDevice, BlockError, RawImage, SECTOR_SIZE};
use refcount::Refcounts;

/// "QFI\xfb" (qcow2.txt: header `magic`).
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// Smallest and largest `cluster_bits` QEMU creates and accepts (512 B to 2 MiB).
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/// Version 2 headers are 72 bytes; version 3 headers at least 104.
const V2_HEADER_LEN: u64 = 72;
const V3_MIN_HEADER_LEN: u32 = 104;
/// The largest L1 table QEMU opens (32 MiB, `QCOW_MAX_L1_SIZE`).
const MAX_L1_BYTES: u64 = 32 << 20;
/// The largest virtual disk accepted (QEMU's `QCOW_MAX_DISK_SIZE`-like bound:
/// 2^56 bytes leaves the sector arithmetic far from overflow).
const MAX_VIRTUAL_SIZE: u64 = 1 << 56;
/// Backing chains longer than this are refused (a loop, or absurd).
const MAX_BACKING_DEPTH: usize = 16;
/// L2 tables kept in memory at once.
const L2_CACHE_TABLES: usize = 64;

// Incompatible feature bits (v3 header, qcow2.txt).
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
// Autoclear feature bit 0: the bitmaps extension is consistent.
const AUTOCLEAR_BITMAPS: u64 = 1 << 0;

// Header extension types (qcow2.txt "Header extensions").
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;

/// L1 and L2 entries: bits 9-55 hold a host offset (qcow2.txt).
const OFFSET_MASK: u64 = 0x00FF_FFFF_FFFF_FE00;
/// L1 and L2 entries bit 63: the cluster's refcount is exactly 1, so it
/// may be written in place (qcow2.txt "COPIED" flag).
const COPIED: u64 = 1 << 63;
/// L2 entry bit 62: the cluster is compressed.
const L2_COMPRESSED: u64 = 1 << 62;
/// Standard L2 entry bit 0 (v3): the cluster reads as zeros.
const L2_ZERO: u64 = 1;

/// What a guest offset maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cluster {
    /// Not in this image: the backing file's bytes, or zeros.
    Unallocated,
    /// Reads as zeros (v3 zero flag).
    Zero,
    /// Data at this host offset.
    Data(u64),
    /// Deflate data at `offset`, `len` bytes (a bound: the stream may end sooner).
    Compressed { offset: u64, len: u64 },
}

/// A qcow2 image: read-only, or writable (then `rc` holds the refcounts).
pub struct Qcow2Image {
    file: File,
    path: PathBuf,
    /// The file's length, and past it every cluster allocated since.
    file_len: u64,
    cluster_bits: u32,
    /// Virtual size in bytes.
    size: u64,
    l1: Vec<u64>,
    l1_offset: u64,
    /// L2 table host offset -> its entries.
    l2_cache: HashMap<u64, Vec<u64>>,
    backing: Option<Box<dyn BlockDevice + Send>>,
    /// The last decompressed cluster: (host offset, bytes).
    compressed_cache: Option<(u64, Vec<u8>)>,
    /// Present when the image is open for writing.
    rc: Option<Refcounts>,
    /// `cache=writethrough`/`directsync`: each write is durable when it completes.
    write_through: bool,
    /// `cache=unsafe`: no host flushes at all (neither guest flushes nor
    /// the ordering barriers of allocating writes).
    ignore_flush: bool,
    /// A host I/O error left the metadata half written: writes are refused.
    broken: bool,
}

/// Reads a big-endian u32/u64 at `off` of `b` (0 past the end; the header
/// length is checked before any field is read).
fn be32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}
fn be64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

impl Qcow2Image {
    /// Opens `path` (a qcow2 file) read-only with its backing chain,
    /// checking all of its metadata.
    pub fn open(path: &Path) -> Result<Qcow2Image, BlockError> {
        Self::open_chain(path, &mut Vec::new(), false)
    }

    /// Opens `path` for reading and writing (the backing chain read-only),
    /// checking its metadata and refcount table; the file is locked
    /// against other writers and readers, as a raw image is.
    pub fn open_writable(path: &Path) -> Result<Qcow2Image, BlockError> {
        Self::open_chain(path, &mut Vec::new(), true)
    }

    /// With `on`, each write reaches the host medium before it completes
    /// (QEMU `cache=writethrough`).
    pub fn set_write_through(&mut self, on: bool) {
        self.write_through = on;
    }

    /// With `on` (QEMU `cache=unsafe`), flushes and the write-ordering
    /// barriers are skipped: faster, still safe against vx86 being killed,
    /// but a host crash can leave refcount errors.
    pub fn set_ignore_flush(&mut self, on: bool) {
        self.ignore_flush = on;
    }

    fn open_chain(
        path: &Path,
        chain: &mut Vec<PathBuf>,
        writable: bool,
    ) -> Result<Qcow2Image, BlockError> {
        let bad = |problem: String| BlockError::Qcow2 {
            path: path.to_path_buf(),
            problem,
        };
        let open_err = |err: io::Error| BlockError::Open {
            path: path.to_path_buf(),
            err,
        };
        let file = open_locked(path, writable)?;
        let file_len = file.metadata().map_err(open_err)?.len();
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if chain.contains(&canon) {
            return Err(bad("its backing chain loops back to itself".into()));
        }
        if chain.len() >= MAX_BACKING_DEPTH {
            return Err(bad(format!(
                "backing chain deeper than {MAX_BACKING_DEPTH} files"
            )));
        }
        chain.push(canon);
        let mut hdr = vec![0u8; V2_HEADER_LEN as usize];
        if file_len < V2_HEADER_LEN || read_exact_at(&file, &mut hdr, 0).is_err() {
            return Err(bad("file shorter than a qcow2 header".into()));
        }
        if hdr.get(0..4) != Some(&QCOW2_MAGIC[..]) {
            return Err(bad("not a qcow2 image (no QFI\\xfb magic)".into()));
        }
        let version = be32(&hdr, 4);
        if version != 2 && version != 3 {
            return Err(bad(format!(
                "qcow2 version {version} is not supported (only 2 and 3)"
            )));
        }
        let backing_offset = be64(&hdr, 8);
        let backing_len = be32(&hdr, 16);
        let cluster_bits = be32(&hdr, 20);
        let size = be64(&hdr, 24);
        let crypt = be32(&hdr, 32);
        let l1_size = be32(&hdr, 36);
        let l1_offset = be64(&hdr, 40);
        let refcount_table_offset = be64(&hdr, 48);
        let refcount_table_clusters = be32(&hdr, 56);
        let nb_snapshots = be32(&hdr, 60);
        // Version 2: 16-bit refcounts; version 3 says (below).
        let mut refcount_order = 4;
        let mut clear_autoclear = false;
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(bad(format!(
                "cluster_bits {cluster_bits} out of range 9..21"
            )));
        }
        if crypt != 0 {
            return Err(bad("encrypted images are not supported".into()));
        }
        if size > MAX_VIRTUAL_SIZE {
            return Err(bad(format!("virtual size {size} bytes is too large")));
        }
        let cluster = 1u64 << cluster_bits;
        // The header, extensions and everything else are found within the
        // file: the cluster maps are checked below.
        let mut header_len = V2_HEADER_LEN;
        if version == 3 {
            let mut v3 = vec![0u8; (V3_MIN_HEADER_LEN as u64 - V2_HEADER_LEN) as usize];
            if read_exact_at(&file, &mut v3, V2_HEADER_LEN).is_err() {
                return Err(bad("file shorter than a version 3 header".into()));
            }
            let incompat = be64(&v3, 0);
            let autoclear = be64(&v3, 88 - 72);
            refcount_order = be32(&v3, 96 - 72);
            let hlen = be32(&v3, 100 - 72);
            if hlen < V3_MIN_HEADER_LEN || u64::from(hlen) > cluster {
                return Err(bad(format!("header_length {hlen} out of range")));
            }
            header_len = u64::from(hlen);
            if incompat & INCOMPAT_CORRUPT != 0 {
                return Err(bad(
                    "marked corrupt by QEMU (repair it with `qemu-img check -r all`)".into(),
                ));
            }
            if incompat & INCOMPAT_DATA_FILE != 0 {
                return Err(bad("external data files are not supported".into()));
            }
            if incompat & INCOMPAT_EXTL2 != 0 {
                return Err(bad("extended L2 entries are not supported".into()));
            }
            if incompat & INCOMPAT_COMPRESSION != 0 {
                // compression_type at byte 104: 0 deflate, 1 zstd.
                let mut ct = [0u8];
                if header_len <= 104 || read_exact_at(&file, &mut ct, 104).is_err() {
                    return Err(bad("compression type bit set without the field".into()));
                }
                if ct[0] != 0 {
                    return Err(bad(format!(
                        "compression type {} is not supported (only deflate)",
                        ct[0]
                    )));
                }
            }
            if writable && incompat & INCOMPAT_DIRTY != 0 {
                return Err(bad(
                    "its refcounts are dirty (lazy refcounts, not closed cleanly): repair it \
                     with `qemu-img check -r all` before writing to it"
                        .into(),
                ));
            }
            if writable && autoclear & AUTOCLEAR_BITMAPS != 0 {
                return Err(bad(
                    "it has persistent dirty bitmaps, which vx86 cannot keep up to date \
                     (use -snapshot, or remove them with `qemu-img bitmap --remove`)"
                        .into(),
                ));
            }
            clear_autoclear = writable && autoclear != 0;
            let known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE;
            let known = known | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
            if incompat & !known != 0 {
                return Err(bad(format!(
                    "unknown incompatible features {:#x}",
                    incompat & !known
                )));
            }
        }
        if nb_snapshots > 0 {
            // Internal snapshots do not change what the active L1 maps.
            eprintln!(
                "vx86: note: disk image {}: {nb_snapshots} internal snapshot(s) ignored (the current state is used)",
                path.display()
            );
        }
        let backing_fmt = read_extensions(&file, header_len, cluster).map_err(bad)?;

        // L1: enough entries for the virtual size, within the file.
        let l2_bits = cluster_bits - 3;
        let per_l1 = 1u64 << (cluster_bits + l2_bits);
        let need_l1 = size.div_ceil(per_l1);
        if u64::from(l1_size) < need_l1 {
            return Err(bad(format!(
                "L1 table of {l1_size} entries is too small for {size} bytes"
            )));
        }
        let l1_bytes = u64::from(l1_size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(bad(format!("L1 table of {l1_size} entries is too large")));
        }
        if l1_size > 0
            && (!l1_offset.is_multiple_of(cluster) || !fits(l1_offset, l1_bytes, file_len))
        {
            return Err(bad(format!(
                "L1 table at {l1_offset:#x} lies outside the file or is misaligned"
            )));
        }
        let mut raw_l1 = vec![0u8; l1_bytes as usize];
        read_exact_at(&file, &mut raw_l1, l1_offset)
            .map_err(|e| bad(format!("cannot read the L1 table: {e}")))?;
        // Only the entries the virtual size reaches matter.
        let l1: Vec<u64> = raw_l1
            .chunks_exact(8)
            .take(need_l1 as usize)
            .map(|c| be64(c, 0))
            .collect();

        let backing = if backing_offset != 0 {
            if backing_len == 0 || backing_len > 1023 {
                return Err(bad(format!("backing file name of {backing_len} bytes")));
            }
            let mut name = vec![0u8; backing_len as usize];
            if !fits(backing_offset, u64::from(backing_len), file_len)
                || read_exact_at(&file, &mut name, backing_offset).is_err()
            {
                return Err(bad("backing file name lies outside the file".into()));
            }
            let name = String::from_utf8(name)
                .map_err(|_| bad("backing file name is not UTF-8".into()))?;
            // A relative name is relative to the image's directory (as QEMU).
            let bpath = match Path::new(&name) {
                p if p.is_absolute() => p.to_path_buf(),
                p => path.parent().unwrap_or(Path::new(".")).join(p),
            };
            if !bpath.exists() {
                return Err(bad(format!("backing file {} is missing", bpath.display())));
            }
            Some(open_backing(&bpath, backing_fmt.as_deref(), chain)?)
        } else {
            None
        };

        // Refcounts matter to a writer only: checked (and later read) then.
        let rc = if writable {
            let rc = Refcounts::load(
                &file,
                file_len,
                cluster_bits,
                refcount_order,
                refcount_table_offset,
                refcount_table_clusters,
            )
            .map_err(bad)?;
            Some(rc)
        } else {
            None
        };
        let mut img = Qcow2Image {
            file,
            path: path.to_path_buf(),
            file_len,
            cluster_bits,
            size,
            l1,
            l1_offset,
            l2_cache: HashMap::new(),
            backing,
            compressed_cache: None,
            rc,
            write_through: false,
            ignore_flush: false,
            broken: false,
        };
        img.check_maps().map_err(bad)?;
        if clear_autoclear {
            // qcow2.txt: a writer that does not know an autoclear feature
            // clears its bit before it changes the image.
            write_all_at(&img.file, &0u64.to_be_bytes(), 88)
                .map_err(|e| bad(format!("cannot clear the autoclear features: {e}")))?;
        }
        Ok(img)
    }

    /// The host file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Checks every L1 and L2 entry the virtual size reaches: table and data
    /// offsets aligned and inside the file, compressed extents inside it.
    fn check_maps(&mut self) -> Result<(), String> {
        let l2_entries = self.cluster_size() / 8;
        for i in 0..self.l1.len() {
            let Some(l2_off) = self.l2_offset(i).map_err(|e| e.to_string())? else {
                continue;
            };
            self.cache_l2(l2_off).map_err(|e| e.to_string())?;
            // Taken out of the cache (it is cleared below anyway): no copy.
            let table = self.l2_cache.remove(&l2_off).unwrap_or_default();
            for j in 0..l2_entries as usize {
                let e = table.get(j).copied().unwrap_or(0);
                self.decode_l2(e)
                    .map_err(|err| format!("L2 table at {l2_off:#x} entry {j}: {err}"))?;
            }
            self.l2_cache.clear();
        }
        Ok(())
    }

    /// The L2 table offset of L1 entry `i` (None: unallocated).
    fn l2_offset(&self, i: usize) -> io::Result<Option<u64>> {
        let e = self.l1.get(i).copied().unwrap_or(0);
        let off = e & OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        if !off.is_multiple_of(self.cluster_size())
            || !fits(off, self.cluster_size(), self.file_len)
        {
            return Err(corrupt(format!(
                "L1 entry {i} points to {off:#x}, outside the file or misaligned"
            )));
        }
        Ok(Some(off))
    }

    /// Makes sure the L2 table at `off` is in the cache. The cache is
    /// trimmed between requests only ([`Self::trim_caches`]), so the tables
    /// a write changes stay in memory until it has written them.
    fn cache_l2(&mut self, off: u64) -> io::Result<()> {
        if self.l2_cache.contains_key(&off) {
            return Ok(());
        }
        let mut raw = vec![0u8; self.cluster_size() as usize];
        read_exact_at(&self.file, &mut raw, off)?;
        let t: Vec<u64> = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
        self.l2_cache.insert(off, t);
        Ok(())
    }

    /// Bounds the L2 cache (called before each request).
    fn trim_caches(&mut self) {
        if self.l2_cache.len() >= L2_CACHE_TABLES {
            self.l2_cache.clear();
        }
    }

    /// Entry `j` of the L2 table at `off`, read through the cache without
    /// copying the table (a lookup per cluster the guest reads).
    fn l2_entry(&mut self, off: u64, j: usize) -> io::Result<u64> {
        self.cache_l2(off)?;
        Ok(self
            .l2_cache
            .get(&off)
            .and_then(|t| t.get(j))
            .copied()
            .unwrap_or(0))
    }

    /// What an L2 entry says (qcow2.txt "Cluster mapping").
    fn decode_l2(&self, e: u64) -> io::Result<Cluster> {
        let cs = self.cluster_size();
        if e & L2_COMPRESSED != 0 {
            // Compressed descriptor: x = 62 - (cluster_bits - 8) offset bits,
            // then the count of additional 512-byte sectors.
            let x = 62 - (self.cluster_bits - 8);
            let offset = e & ((1u64 << x) - 1);
            let sectors = ((e & ((1u64 << 62) - 1)) >> x) + 1;
            let len = sectors * 512 - (offset & 511);
            if offset == 0 || offset >= self.file_len {
                return Err(corrupt(format!(
                    "compressed cluster at {offset:#x} lies outside the file"
                )));
            }
            // The last sector may run past the end of the file.
            let len = len.min(self.file_len - offset);
            return Ok(Cluster::Compressed { offset, len });
        }
        let off = e & OFFSET_MASK;
        if e & L2_ZERO != 0 {
            return Ok(Cluster::Zero);
        }
        if off == 0 {
            return Ok(Cluster::Unallocated);
        }
        if !off.is_multiple_of(cs) || off >= self.file_len {
            return Err(corrupt(format!(
                "data cluster at {off:#x} lies outside the file or is misaligned"
            )));
        }
        Ok(Cluster::Data(off))
    }

    /// The mapping of the cluster holding guest byte `pos`.
    fn lookup(&mut self, pos: u64) -> io::Result<Cluster> {
        let l2_bits = self.cluster_bits - 3;
        let l1_index = (pos >> (self.cluster_bits + l2_bits)) as usize;
        let l2_index = ((pos >> self.cluster_bits) & ((1 << l2_bits) - 1)) as usize;
        let Some(l2_off) = self.l2_offset(l1_index)? else {
            return Ok(Cluster::Unallocated);
        };
        let e = self.l2_entry(l2_off, l2_index)?;
        self.decode_l2(e)
    }

    /// Reads host bytes at `off`; bytes past the end of the file read as
    /// zeros (a data cluster's tail may not have been written out).
    fn read_host(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let avail = self.file_len.saturating_sub(off).min(buf.len() as u64) as usize;
        let (head, tail) = buf.split_at_mut(avail);
        read_exact_at(&self.file, head, off)?;
        tail.fill(0);
        Ok(())
    }

    fn decompress(&mut self, offset: u64, len: u64) -> io::Result<&[u8]> {
        let cs = self.cluster_size() as usize;
        let hit = matches!(&self.compressed_cache, Some((o, _)) if *o == offset);
        if !hit {
            let mut raw = vec![0u8; len as usize];
            read_exact_at(&self.file, &mut raw, offset)?;
            // QEMU writes raw deflate (no zlib header), one cluster's worth.
            let mut out = vec![0u8; cs];
            let mut d = flate2::Decompress::new(false);
            let status = d
                .decompress(&raw, &mut out, flate2::FlushDecompress::Finish)
                .map_err(|e| corrupt(format!("compressed cluster at {offset:#x}: {e}")))?;
            // As QEMU: the stream must fill the whole cluster.
            let _ = status;
            if d.total_out() as usize != cs {
                return Err(corrupt(format!(
                    "compressed cluster at {offset:#x} is truncated"
                )));
            }
            self.compressed_cache = Some((offset, out));
        }
        Ok(self
            .compressed_cache
            .as_ref()
            .map_or(&[][..], |(_, b)| b.as_slice()))
    }

    /// Reads `buf.len()` bytes (whole sectors) at sector-aligned guest
    /// byte `pos`, all within one cluster.
    fn read_in_cluster(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let in_cluster = (pos & (self.cluster_size() - 1)) as usize;
        match self.lookup(pos)? {
            Cluster::Zero => buf.fill(0),
            Cluster::Data(off) => self.read_host(off + in_cluster as u64, buf)?,
            Cluster::Compressed { offset, len } => {
                let data = self.decompress(offset, len)?;
                let src = data
                    .get(in_cluster..in_cluster + buf.len())
                    .ok_or_else(|| corrupt("compressed cluster too short".into()))?;
                buf.copy_from_slice(src);
            }
            Cluster::Unallocated => match &mut self.backing {
                None => buf.fill(0),
                Some(b) => {
                    // The backing file may be shorter than this image: past
                    // its end the image reads zeros.
                    let lba = pos / SECTOR_SIZE as u64;
                    let have = b.sector_count().saturating_sub(lba);
                    let n = (have.min((buf.len() / SECTOR_SIZE) as u64) as usize) * SECTOR_SIZE;
                    let (head, tail) = buf.split_at_mut(n);
                    if !head.is_empty() {
                        b.read_sectors(lba, head)?;
                    }
                    tail.fill(0);
                }
            },
        }
        Ok(())
    }
}

/// Opens the image file, locked as [`RawImage`] locks: exclusively for a
/// writer, shared for a reader.
fn open_locked(path: &Path, writable: bool) -> Result<File, BlockError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|err| {
            if writable && err.kind() == io::ErrorKind::PermissionDenied {
                BlockError::ReadOnlyFile {
                    path: path.to_path_buf(),
                }
            } else {
                BlockError::Open {
                    path: path.to_path_buf(),
                    err,
                }
            }
        })?;
    let locked = if writable {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match locked {
        Ok(()) | Err(std::fs::TryLockError::Error(_)) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BlockError::Locked {
            path: path.to_path_buf(),
            writable,
        }),
    }
}

/// `off .. off + len` lies within a file of `file_len` bytes.
fn fits(off: u64, len: u64, file_len: u64) -> bool {
    off.checked_add(len).is_some_and(|end| end <= file_len)
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Walks the header extensions (after the header, up to the first
/// cluster's end); returns the backing file format, if one is named.
fn read_extensions(file: &File, header_len: u64, cluster: u64) -> Result<Option<String>, String> {
    let mut off = header_len;
    let mut fmt = None;
    // Extensions live in the first cluster (qcow2.txt).
    while off + 8 <= cluster {
        let mut h = [0u8; 8];
        if read_exact_at(file, &mut h, off).is_err() {
            // A tiny file whose first cluster is not all there: no extensions.
            break;
        }
        let kind = be32(&h, 0);
        let len = u64::from(be32(&h, 4));
        if kind == EXT_END {
            break;
        }
        if !fits(off + 8, len, cluster) {
            return Err(format!(
                "header extension {kind:#x} of {len} bytes runs past the first cluster"
            ));
        }
        if kind == EXT_BACKING_FORMAT {
            let mut b = vec![0u8; len as usize];
            read_exact_at(file, &mut b, off + 8)
                .map_err(|e| format!("cannot read the backing format: {e}"))?;
            fmt = Some(String::from_utf8_lossy(&b).into_owned());
        }
        off += 8 + len.next_multiple_of(8);
    }
    Ok(fmt)
}

/// Opens a backing file: `backing_fmt` if the image names one (raw or
/// qcow2), else probed by its magic as QEMU does.
fn open_backing(
    path: &Path,
    fmt: Option<&str>,
    chain: &mut Vec<PathBuf>,
) -> Result<Box<dyn BlockDevice + Send>, BlockError> {
    let is_qcow2 = match fmt {
        Some("qcow2") => true,
        Some("raw") => false,
        Some(other) => {
            return Err(BlockError::Qcow2 {
                path: path.to_path_buf(),
                problem: format!("backing format '{other}' is not supported (raw or qcow2)"),
            })
        }
        None => super::probe::probe(path) == Some(super::probe::ImageFormat::Qcow2),
    };
    if is_qcow2 {
        Ok(Box::new(Qcow2Image::open_chain(path, chain, false)?))
    } else {
        Ok(Box::new(RawImage::open(path, true)?))
    }
}

impl BlockDevice for Qcow2Image {
    fn host_path(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    fn format(&self) -> &'static str {
        "qcow2"
    }

    fn sector_count(&self) -> u64 {
        self.size.div_ceil(SECTOR_SIZE as u64)
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.sector_count(), lba, buf.len())?;
        self.trim_caches();
        let cs = self.cluster_size();
        let mut pos = lba * SECTOR_SIZE as u64;
        let mut done = 0;
        while done < buf.len() {
            let room = (cs - (pos & (cs - 1))) as usize;
            let n = room.min(buf.len() - done);
            let Some(chunk) = buf.get_mut(done..done + n) else {
                break;
            };
            self.read_in_cluster(pos, chunk)?;
            done += n;
            pos += n as u64;
        }
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        self.write(lba, buf)
    }

    /// Every write has put its data and metadata in the file when it
    /// completes: a flush is an fsync.
    fn flush(&mut self) -> io::Result<()> {
        if self.rc.is_none() || self.ignore_flush {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn read_only(&self) -> bool {
        self.rc.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::test_util::TempFile;

    /// A version 3 image by hand (qcow2.txt), 512-byte clusters, 4 clusters
    /// of virtual size: cluster 0 data, 1 zero flag, 2 compressed, 3
    /// unallocated. Layout: header at 0, L1 at 0x200, L2 at 0x400, data at
    /// 0x600, compressed bytes at 0x800.
    fn hand_made(compressed: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 0x800];
        f[..4].copy_from_slice(&QCOW2_MAGIC);
        f[4..8].copy_from_slice(&3u32.to_be_bytes());
        f[20..24].copy_from_slice(&9u32.to_be_bytes());
        f[24..32].copy_from_slice(&(4u64 * 512).to_be_bytes());
        f[36..40].copy_from_slice(&1u32.to_be_bytes());
        f[40..48].copy_from_slice(&0x200u64.to_be_bytes());
        f[100..104].copy_from_slice(&104u32.to_be_bytes());
        f[0x200..0x208].copy_from_slice(&((1u64 << 63) | 0x400).to_be_bytes());
        let l2 = |i: usize, v: u64, f: &mut Vec<u8>| {
            f[0x400 + 8 * i..0x408 + 8 * i].copy_from_slice(&v.to_be_bytes())
        };
        l2(0, (1 << 63) | 0x600, &mut f);
        l2(1, 1, &mut f);
        // Compressed: offset in the low x = 62 - (9 - 8) = 61 bits, then
        // additional sectors (0: it fits in one).
        assert!(compressed.len() <= 512);
        l2(2, L2_COMPRESSED | 0x800, &mut f);
        f[0x600..0x800].fill(0xAA);
        f.extend_from_slice(compressed);
        f
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut out = Vec::with_capacity(1024);
        c.compress_vec(data, &mut out, flate2::FlushCompress::Finish)
            .expect("deflate");
        out
    }

    #[test]
    fn data_zero_compressed_and_unallocated_clusters() {
        let plain: Vec<u8> = (0..512).map(|i| (i % 251) as u8).collect();
        let t = TempFile::with_contents(&hand_made(&deflate(&plain)));
        let mut img = Qcow2Image::open(&t.0).expect("open");
        assert_eq!(img.sector_count(), 4);
        let mut b = vec![0xFFu8; 2048];
        img.read_sectors(0, &mut b).expect("read");
        assert!(b[..512].iter().all(|&x| x == 0xAA));
        assert!(b[512..1024].iter().all(|&x| x == 0));
        assert_eq!(&b[1024..1536], &plain[..]);
        assert!(b[1536..].iter().all(|&x| x == 0));
        assert!(img.write_sectors(0, &[0; 512]).is_err());
        assert!(img.read_sectors(4, &mut [0; 512]).is_err());
    }

    #[test]
    fn damage_is_refused_at_open_or_fails_the_read() {
        let plain = vec![7u8; 512];
        let good = hand_made(&deflate(&plain));
        let open = |b: &[u8]| {
            let t = TempFile::with_contents(b);
            Qcow2Image::open(&t.0)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(open(&good).is_ok());
        // Data cluster past the end of the file.
        let mut b = good.clone();
        b[0x400..0x408].copy_from_slice(&((1u64 << 63) | 0x10_0000).to_be_bytes());
        assert!(open(&b).unwrap_err().contains("outside the file"));
        // L2 table past the end of the file.
        let mut b = good.clone();
        b[0x200..0x208].copy_from_slice(&0x10_0000u64.to_be_bytes());
        assert!(open(&b).unwrap_err().contains("L1 entry 0"));
        // A compressed stream that is garbage: opens, the read fails.
        let mut b = hand_made(&[0xFF; 16]);
        b.truncate(0x810);
        let t = TempFile::with_contents(&b);
        let mut img = Qcow2Image::open(&t.0).expect("open");
        assert!(img.read_sectors(2, &mut [0; 512]).is_err());
        assert!(img.read_sectors(0, &mut [0; 512]).is_ok());
        // Unknown incompatible feature, a zstd compression type.
        let mut b = good.clone();
        b[72..80].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(open(&b).unwrap_err().contains("unknown incompatible"));
        let mut b = good;
        b[72..80].copy_from_slice(&INCOMPAT_COMPRESSION.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b[104] = 1;
        assert!(open(&b).unwrap_err().contains("compression type 1"));
    }
}
