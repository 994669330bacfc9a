//! The basic-block cache: a direct-mapped table of decoded blocks keyed by the
//! physical address of their first byte and the CPU mode bits that change
//! decoding (Bochs's trace cache / v86's jit cache idea).
//!
//! Self-modifying code: every physical page that holds the bytes of a cached
//! block is marked as a code page, with a bit per 128-byte chunk that holds
//! block bytes (Bochs's fine-grained SMC map); writes to a code page leave the
//! TLB fast path, a write to a chunk without code costs one mask test, and a
//! write into a code chunk invalidates exactly the blocks whose bytes it
//! touches (each block remembers its byte range; the page keeps the list of
//! its blocks).
//!
//! Code that patches itself back and forth (GRUB's real-mode BIOS-call thunk
//! writes each call's interrupt number into its own `INT imm8`) would decode
//! the same few blocks again on every call. A page where a write has hit a
//! block is "SMC-hot": blocks decoded from it keep a copy of their bytes, a
//! write that retires one keeps it as a victim, and decoding at the same
//! place finds a victim whose bytes equal memory's again and revives it
//! instead (the ops are a function of the bytes and the decode key, so a
//! revived block is the block a fresh decode would make).

use super::decode::Op;
use std::collections::HashMap;
use std::ops::Deref;
use std::rc::Rc;

pub const CACHE_BITS: u32 = 16;
pub const CACHE_SIZE: usize = 1 << CACHE_BITS;
/// Longest block, in instructions.
pub const MAX_BLOCK: usize = 64;

/// The decoded ops of a block, shared by its cache slot, the jump cache and
/// the run loop while it executes. The block's `valid` flag (in its first
/// op) drops when the block is invalidated (its bytes were written) or leaves
/// the cache, so a jump-cache entry is checked by itself instead of through a
/// generation that every invalidation anywhere would move.
///
/// One allocation holds the reference counts and the ops: dispatching a
/// block touches one cache line for the count, the flag and the first op
/// (measured on the Debian boot: the separate header was a dependent cache
/// miss per block).
#[derive(Clone)]
pub struct BlockOps(Rc<[Op]>);

impl BlockOps {
    /// A block of `ops`; a block without ops is never valid.
    pub fn new(ops: Vec<Op>) -> BlockOps {
        if let Some(first) = ops.first() {
            first.valid.set(true);
        }
        BlockOps(Rc::from(ops))
    }

    #[inline(always)]
    pub fn is_valid(&self) -> bool {
        self.0.first().is_some_and(|op| op.valid.get())
    }

    /// The block's identity while it is alive (the address of its ops),
    /// for telling whether an invalidation hit the block that is running.
    #[inline(always)]
    pub fn id(&self) -> usize {
        self.0.as_ptr() as usize
    }

    fn retire(&self) {
        if let Some(first) = self.0.first() {
            first.valid.set(false);
        }
    }
}

impl Deref for BlockOps {
    type Target = [Op];
    #[inline(always)]
    fn deref(&self) -> &[Op] {
        &self.0
    }
}

#[derive(Clone)]
pub struct Block {
    pub phys: u64,
    pub mode: u32,
    /// Physical byte ranges the block was decoded from (a block may end with an
    /// instruction that crosses into a second page).
    pub ranges: [(u64, u64); 2],
    pub ops: BlockOps,
    /// On SMC-hot pages: what else the decode depended on and the bytes it
    /// read (see the module doc), for reviving the block after a write.
    pub origin: Option<Box<Origin>>,
}

/// What a block's decode read besides its physical address and mode: the
/// instruction pointer it started at, CS base and limit (the limit truncates
/// fetch) and the bytes themselves (one page, from RAM).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Origin {
    pub rip: u64,
    pub cs_base: u64,
    pub cs_limit: u32,
    pub bytes: Box<[u8]>,
}

/// Retired blocks kept for reviving (a ring).
const VICTIMS: usize = 32;

/// Bytes per bit of a page's code-chunk mask.
const CHUNK_SHIFT: u64 = 7;

/// The mask of the 128-byte chunks of one page that bytes `[start, end)` of
/// that page (offsets within it, `start < end <= 4096`) touch.
#[inline(always)]
fn chunk_mask(start: u64, end: u64) -> u32 {
    let first = (start >> CHUNK_SHIFT) as u32;
    let last = ((end - 1) >> CHUNK_SHIFT) as u32;
    (u32::MAX >> (31 - last)) & (u32::MAX << first)
}

/// Calls `f(page, mask)` for each page that physical bytes `[start, end)` touch.
fn for_each_page_chunks(start: u64, end: u64, mut f: impl FnMut(u64, u32)) {
    let mut a = start;
    while a < end {
        let page = a >> 12;
        let page_end = ((page + 1) << 12).min(end);
        f(page, chunk_mask(a & 0xFFF, page_end - (page << 12)));
        a = page_end;
    }
}

/// What [`BlockCache::invalidate`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Invalidated {
    /// At least one block.
    pub any: bool,
    /// The block whose identity ([`BlockOps::id`]) was passed as running:
    /// the write touched its bytes.
    pub running: bool,
}

pub struct BlockCache {
    slots: Vec<Option<Block>>,
    /// Per 4 KiB physical page below 4 GiB: which 128-byte chunks hold bytes
    /// of a cached block (0: not a code page).
    code_chunks: Vec<u32>,
    /// Page number -> cache slots of the blocks decoded from it.
    /// Page number -> cache slots of the blocks decoded from it, each with
    /// the chunks of the page it covers (a write tests these masks and looks
    /// only at the blocks whose chunks it touches).
    page_blocks: HashMap<u64, Vec<(u32, u32)>>,
    /// One bit per 4 KiB page below 4 GiB: a write has hit a block there.
    smc_hot: Vec<u64>,
    /// Blocks retired by writes on SMC-hot pages, newest last.
    victims: Vec<Block>,
}

impl BlockCache {
    pub fn new(_ram_pages: usize) -> Self {
        BlockCache {
            slots: vec![None; CACHE_SIZE],
            code_chunks: vec![0; 1 << 20],
            page_blocks: HashMap::new(),
            smc_hot: vec![0; (1 << 20) / 64],
            victims: Vec::new(),
        }
    }

    /// Has a write hit a block on the page holding `phys`?
    #[inline]
    pub fn is_smc_hot(&self, phys: u64) -> bool {
        let p = (phys >> 12) as usize;
        self.smc_hot
            .get(p / 64)
            .is_some_and(|w| w & (1 << (p % 64)) != 0)
    }

    /// A retired block decoded at `phys` in `mode` from exactly `origin`'s
    /// key whose bytes equal `mem`'s now (`mem`: the page's bytes from
    /// `phys` on): taken out of the victims, valid again. The caller
    /// inserts it as if just decoded.
    pub fn revive(&mut self, phys: u64, mode: u32, key: &Origin, mem: &[u8]) -> Option<Block> {
        let i = self.victims.iter().rposition(|v| {
            v.phys == phys
                && v.mode == mode
                && v.origin.as_ref().is_some_and(|o| {
                    o.rip == key.rip
                        && o.cs_base == key.cs_base
                        && o.cs_limit == key.cs_limit
                        && mem.get(..o.bytes.len()) == Some(&o.bytes[..])
                })
        })?;
        let b = self.victims.remove(i);
        if let Some(first) = b.ops.0.first() {
            first.valid.set(true);
        }
        Some(b)
    }

    #[inline(always)]
    pub fn slot_of(phys: u64, mode: u32) -> usize {
        let h = (phys ^ (phys >> CACHE_BITS) ^ ((mode as u64) << 5))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - CACHE_BITS)) as usize
    }

    #[inline(always)]
    pub fn lookup(&self, phys: u64, mode: u32) -> Option<BlockOps> {
        match self.slots.get(Self::slot_of(phys, mode)) {
            Some(Some(b)) if b.ops.is_valid() && b.phys == phys && b.mode == mode => {
                Some(b.ops.clone())
            }
            _ => None,
        }
    }

    #[inline(always)]
    pub fn page_has_code(&self, phys: u64) -> bool {
        let p = (phys >> 12) as usize;
        matches!(self.code_chunks.get(p), Some(&c) if c != 0)
    }

    /// Do physical bytes `[phys, phys+len)` touch a chunk holding block bytes?
    #[inline]
    pub fn range_has_code(&self, phys: u64, len: u64) -> bool {
        let mut hit = false;
        for_each_page_chunks(phys, phys.saturating_add(len), |page, mask| {
            if let Some(&c) = self.code_chunks.get(page as usize) {
                hit |= c & mask != 0;
            }
        });
        hit
    }

    /// Inserts a block; returns the pages that just became code pages (the
    /// caller removes their fast-write TLB entries).
    pub fn insert(&mut self, block: Block) -> Vec<u64> {
        let slot = Self::slot_of(block.phys, block.mode);
        let mut pages: Vec<(u64, u32)> = Vec::with_capacity(2);
        for &(start, end) in block.ranges.iter().filter(|&&(s, e)| e > s) {
            for_each_page_chunks(start, end, |p, mask| pages.push((p, mask)));
        }
        // The block goes in first: compacting a page's list looks at what
        // each slot holds now. The block it replaces leaves the cache, and
        // its page lists no longer find it: retire it for the jump cache.
        let id = block.ops.id();
        if let Some(s) = self.slots.get_mut(slot) {
            if let Some(old) = s.replace(block) {
                // A revived block may still sit in its old slot: keep it valid.
                if old.ops.id() != id {
                    old.ops.retire();
                }
            }
        }
        let mut new_pages = Vec::new();
        for (p, mask) in pages {
            if let Some(c) = self.code_chunks.get_mut(p as usize) {
                if *c == 0 {
                    new_pages.push(p << 12);
                }
                *c |= mask;
                let list = self.page_blocks.entry(p).or_default();
                list.push((slot as u32, mask));
                if list.len() >= 64 && list.len().is_power_of_two() {
                    compact(list, &self.slots, p);
                }
            }
        }
        new_pages
    }

    /// A write to physical bytes [phys, phys+len): invalidates every block that
    /// was decoded from any of them, and says whether one was and whether the
    /// block `running` ([`BlockOps::id`]) was among them.
    pub fn invalidate(&mut self, phys: u64, len: u64, running: usize) -> Invalidated {
        let mut hit = Invalidated::default();
        if !self.range_has_code(phys, len) {
            return hit;
        }
        let first = phys >> 12;
        let last = (phys + len - 1) >> 12;
        let mut victims = Vec::new();
        for page in first..=last {
            let mut hot = false;
            let Some(list) = self.page_blocks.get_mut(&page) else {
                continue;
            };
            let write = {
                let (ps, pe) = (page << 12, (page + 1) << 12);
                chunk_mask(phys.max(ps) - ps, (phys + len).min(pe) - ps)
            };
            // The chunks of the blocks that stay.
            let mut keep = 0u32;
            list.retain(|&(slot, mask)| {
                if mask & write == 0 {
                    keep |= mask;
                    return true;
                }
                let Some(Some(b)) = self.slots.get_mut(slot as usize) else {
                    return false;
                };
                if !b.ops.is_valid() {
                    return false;
                }
                let on_page = b
                    .ranges
                    .iter()
                    .any(|&(s, e)| e > s && s >> 12 <= page && (e - 1) >> 12 >= page);
                if !on_page {
                    return false;
                }
                let touched = b.ranges.iter().any(|&(s, e)| phys < e && phys + len > s);
                if touched {
                    b.ops.retire();
                    hit.any = true;
                    hit.running |= b.ops.id() == running;
                    hot = true;
                    // The slot keeps the retired block until it is reused;
                    // the victim takes the bytes (no copy).
                    if let Some(origin) = b.origin.take() {
                        victims.push(Block {
                            origin: Some(origin),
                            ..b.clone()
                        });
                    }
                    return false;
                }
                keep |= mask;
                true
            });
            if keep == 0 {
                self.page_blocks.remove(&page);
            }
            if let Some(c) = self.code_chunks.get_mut(page as usize) {
                *c = keep;
            }
            if let Some(w) = self.smc_hot.get_mut(page as usize / 64).filter(|_| hot) {
                *w |= 1 << (page % 64);
            }
        }
        for v in victims {
            if self.victims.len() >= VICTIMS {
                self.victims.remove(0);
            }
            self.victims.push(v);
        }
        hit
    }

    /// Drops everything (e.g. on reset).
    pub fn clear(&mut self) {
        for b in self.slots.iter_mut().filter_map(Option::take) {
            b.ops.retire();
        }
        self.code_chunks.iter_mut().for_each(|c| *c = 0);
        self.page_blocks.clear();
        self.smc_hot.iter_mut().for_each(|w| *w = 0);
        self.victims.clear();
    }
}

/// Drops the entries of a page's list whose slot no longer holds a valid
/// block from that page, and duplicates: a page whose blocks are evicted
/// and decoded again without ever being written keeps a bounded list.
fn compact(list: &mut Vec<(u32, u32)>, slots: &[Option<Block>], page: u64) {
    let (ps, pe) = (page << 12, (page + 1) << 12);
    list.retain_mut(|(slot, mask)| {
        let Some(Some(b)) = slots.get(*slot as usize) else {
            return false;
        };
        // The chunks of the block the slot holds now.
        *mask = b
            .ranges
            .iter()
            .filter(|&&(s, e)| b.ops.is_valid() && e > s && s < pe && e > ps)
            .fold(0, |m, &(s, e)| {
                m | chunk_mask(s.max(ps) - ps, e.min(pe) - ps)
            });
        *mask != 0
    });
    list.sort_unstable();
    list.dedup_by_key(|e| e.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_masks_cover_exactly_the_touched_chunks() {
        assert_eq!(chunk_mask(0, 1), 1);
        assert_eq!(chunk_mask(127, 129), 0b11);
        assert_eq!(chunk_mask(128, 256), 0b10);
        assert_eq!(chunk_mask(0, 4096), u32::MAX);
        assert_eq!(chunk_mask(4095, 4096), 1 << 31);
        let mut seen = Vec::new();
        for_each_page_chunks(0x1FF0, 0x2090, |p, m| seen.push((p, m)));
        assert_eq!(seen, vec![(1, 1 << 31), (2, 0b11)]);
    }

    fn block(phys: u64, end: u64) -> Block {
        Block {
            phys,
            mode: 0,
            ranges: [(phys, end), (0, 0)],
            ops: BlockOps::new(vec![crate::cpu::decode::make_op(
                &crate::cpu::decode::decode_one(&[0x90], 32, 0),
                &[0x90],
                32,
            )]),
            origin: None,
        }
    }

    /// A block retired by a write on an SMC-hot page comes back, valid and
    /// the same ops, when memory holds its bytes again at the same decode
    /// key, and only then.
    #[test]
    fn a_block_whose_bytes_come_back_is_revived() {
        let mut c = BlockCache::new(0);
        // The first write into a block makes its page SMC-hot.
        c.insert(block(0x7000, 0x7003));
        assert!(!c.is_smc_hot(0x7000));
        assert!(c.invalidate(0x7001, 1, 0).any);
        assert!(c.is_smc_hot(0x7FFF) && !c.is_smc_hot(0x8000));
        let key = |rip| Origin {
            rip,
            cs_base: 0,
            cs_limit: u32::MAX,
            bytes: Box::new([]),
        };
        let mut b = block(0x7000, 0x7003);
        b.origin = Some(Box::new(Origin {
            bytes: Box::new([0xCD, 0x16, 0x90]),
            ..key(0x7000)
        }));
        let id = b.ops.id();
        c.insert(b);
        assert!(c.invalidate(0x7001, 1, 0).any);
        assert!(c.lookup(0x7000, 0).is_none());
        // Other bytes, another RIP or another mode: no.
        assert!(c
            .revive(0x7000, 0, &key(0x7000), &[0xCD, 0x10, 0x90, 0])
            .is_none());
        assert!(c
            .revive(0x7000, 0, &key(0x1000), &[0xCD, 0x16, 0x90, 0])
            .is_none());
        assert!(c
            .revive(0x7000, 1, &key(0x7000), &[0xCD, 0x16, 0x90, 0])
            .is_none());
        // The same bytes again: the same ops, valid, and cached once inserted.
        let r = c.revive(0x7000, 0, &key(0x7000), &[0xCD, 0x16, 0x90, 0]);
        let r = r.expect("revived");
        assert_eq!(r.ops.id(), id);
        assert!(r.ops.is_valid());
        c.insert(r);
        assert_eq!(c.lookup(0x7000, 0).map(|o| o.id()), Some(id));
        // Taken out of the victims: once.
        assert!(c
            .revive(0x7000, 0, &key(0x7000), &[0xCD, 0x16, 0x90])
            .is_none());
        // And a write retires it again.
        assert!(c.invalidate(0x7001, 1, 0).any);
        assert!(c.lookup(0x7000, 0).is_none());
    }

    #[test]
    fn writes_beside_code_keep_the_block_and_writes_into_it_drop_it() {
        let mut c = BlockCache::new(0);
        assert_eq!(c.insert(block(0x5010, 0x5030)), vec![0x5000]);
        assert!(c.page_has_code(0x5FFF));
        // Same page, another chunk: no code there.
        assert!(!c.range_has_code(0x5100, 4));
        assert!(!c.invalidate(0x5100, 4, 0).any);
        // Same chunk, outside the block's bytes: the block stays.
        assert!(c.range_has_code(0x5040, 1));
        assert!(!c.invalidate(0x5040, 1, 0).any);
        assert!(c.lookup(0x5010, 0).is_some());
        // Into the block: dropped, and the page is no code page any more.
        assert!(c.invalidate(0x502F, 2, 0).any);
        assert!(c.lookup(0x5010, 0).is_none());
        assert!(!c.page_has_code(0x5000));
    }

    /// The running block is named by its identity: a write into another
    /// block's bytes reports `any` alone (the run loop then does not end the
    /// running block, so block boundaries do not depend on which blocks the
    /// cache happens to hold), a write into the running one says so.
    #[test]
    fn an_invalidation_says_whether_it_hit_the_running_block() {
        let mut c = BlockCache::new(0);
        let a = block(0x6000, 0x6010);
        let b = block(0x6020, 0x6030);
        let (ida, idb) = (a.ops.id(), b.ops.id());
        assert_ne!(ida, idb);
        c.insert(a);
        c.insert(b);
        let hit = c.invalidate(0x6028, 1, ida);
        assert_eq!((hit.any, hit.running), (true, false));
        let hit = c.invalidate(0x6004, 2, ida);
        assert_eq!((hit.any, hit.running), (true, true));
        // Nothing cached there any more: neither.
        assert_eq!(c.invalidate(0x6004, 2, ida), Invalidated::default());
    }

    #[test]
    fn a_page_list_stays_bounded_and_tracks_every_block() {
        let mut c = BlockCache::new(0);
        // 120 blocks on one page: the list is compacted at 64 entries, while
        // the newest block is being inserted.
        for i in 0..120u64 {
            c.insert(block(0x9000 + i * 0x20, 0x9010 + i * 0x20));
        }
        // The same blocks decoded again and again (evicted, re-inserted).
        for _ in 0..300 {
            c.insert(block(0x9000, 0x9010));
        }
        assert!(c.page_blocks.get(&9).map_or(0, |l| l.len()) <= 256);
        // A write into each block still finds it.
        for i in 0..120u64 {
            assert!(c.invalidate(0x900F + i * 0x20, 1, 0).any, "block {i}");
        }
        assert!(!c.page_has_code(0x9000));
    }

    #[test]
    fn blocks_leaving_the_cache_are_retired_for_the_jump_cache() {
        let mut c = BlockCache::new(0);
        c.insert(block(0x3000, 0x3010));
        let held = c.lookup(0x3000, 0).expect("cached");
        // Written: the holder (a jump-cache entry) sees it.
        assert!(c.invalidate(0x3004, 1, 0).any);
        assert!(!held.is_valid());
        // Replaced in its slot by another block: retired too.
        c.insert(block(0x3000, 0x3010));
        let held = c.lookup(0x3000, 0).expect("cached");
        c.insert(block(0x3000, 0x3008));
        assert!(!held.is_valid());
        // Cleared (reset): every block retired.
        let held = c.lookup(0x3000, 0).expect("cached");
        c.clear();
        assert!(!held.is_valid());
    }

    #[test]
    fn a_page_keeps_the_chunks_of_the_blocks_that_stay() {
        let mut c = BlockCache::new(0);
        c.insert(block(0x7000, 0x7010));
        c.insert(block(0x7F00, 0x8010));
        assert!(c.invalidate(0x7008, 1, 0).any);
        assert!(!c.range_has_code(0x7000, 0x80));
        assert!(c.range_has_code(0x7F80, 1));
        assert!(c.range_has_code(0x8000, 1));
        assert!(c.lookup(0x7F00, 0).is_some());
    }
}
