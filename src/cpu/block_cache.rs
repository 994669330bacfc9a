//! The basic-block cache: a direct-mapped table of decoded blocks keyed by the
//! physical address of their first byte and the CPU mode bits that change
//! decoding (Bochs's trace cache / v86's jit cache idea).
//!
//! Self-modifying code: every physical page that holds the bytes of a cached
//! block is marked as a code page; writes to it leave the TLB fast path, and
//! a write invalidates exactly the blocks whose bytes it touches (each block
//! remembers its byte range; the page keeps the list of its blocks).

use super::decode::Op;
use std::collections::HashMap;
use std::rc::Rc;

pub const CACHE_BITS: u32 = 16;
pub const CACHE_SIZE: usize = 1 << CACHE_BITS;
/// Longest block, in instructions.
pub const MAX_BLOCK: usize = 64;

#[derive(Clone)]
pub struct Block {
    pub phys: u64,
    pub mode: u32,
    /// Physical byte ranges the block was decoded from (a block may end with an
    /// instruction that crosses into a second page).
    pub ranges: [(u64, u64); 2],
    pub ops: Rc<[Op]>,
    pub valid: bool,
}

pub struct BlockCache {
    slots: Vec<Option<Block>>,
    /// Per 4 KiB physical page below 4 GiB: does any cached block come from it?
    code_page: Vec<u8>,
    /// Page number -> cache slots of the blocks decoded from it.
    page_blocks: HashMap<u64, Vec<u32>>,
    /// Bumped whenever a block is invalidated or the cache cleared.
    pub gen: u64,
}

impl BlockCache {
    pub fn new(_ram_pages: usize) -> Self {
        BlockCache {
            slots: vec![None; CACHE_SIZE],
            code_page: vec![0; 1 << 20],
            page_blocks: HashMap::new(),
            gen: 0,
        }
    }

    #[inline(always)]
    pub fn slot_of(phys: u64, mode: u32) -> usize {
        let h = (phys ^ (phys >> CACHE_BITS) ^ ((mode as u64) << 5))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - CACHE_BITS)) as usize
    }

    #[inline(always)]
    pub fn lookup(&self, phys: u64, mode: u32) -> Option<Rc<[Op]>> {
        match self.slots.get(Self::slot_of(phys, mode)) {
            Some(Some(b)) if b.valid && b.phys == phys && b.mode == mode => Some(b.ops.clone()),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn page_has_code(&self, phys: u64) -> bool {
        let p = (phys >> 12) as usize;
        matches!(self.code_page.get(p), Some(&c) if c != 0)
    }

    /// Inserts a block; returns the pages that just became code pages (the
    /// caller removes their fast-write TLB entries).
    pub fn insert(&mut self, block: Block) -> Vec<u64> {
        let slot = Self::slot_of(block.phys, block.mode);
        let mut new_pages = Vec::new();
        for &(start, end) in block.ranges.iter() {
            if end <= start {
                continue;
            }
            let mut p = start >> 12;
            while p <= (end - 1) >> 12 {
                if let Some(c) = self.code_page.get_mut(p as usize) {
                    if *c == 0 {
                        *c = 1;
                        new_pages.push(p << 12);
                    }
                    self.page_blocks.entry(p).or_default().push(slot as u32);
                }
                p += 1;
            }
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(block);
        }
        new_pages
    }

    /// A write to physical bytes [phys, phys+len): invalidates every block that
    /// was decoded from any of them. Returns true if a block was invalidated.
    pub fn invalidate(&mut self, phys: u64, len: u64) -> bool {
        let mut hit = false;
        let first = phys >> 12;
        let last = (phys + len - 1) >> 12;
        for page in first..=last {
            let Some(list) = self.page_blocks.get_mut(&page) else {
                continue;
            };
            let mut keep_any = false;
            list.retain(|&slot| {
                let Some(Some(b)) = self.slots.get_mut(slot as usize) else {
                    return false;
                };
                if !b.valid {
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
                    b.valid = false;
                    self.gen += 1;
                    hit = true;
                    return false;
                }
                keep_any = true;
                true
            });
            if !keep_any {
                self.page_blocks.remove(&page);
                if let Some(c) = self.code_page.get_mut(page as usize) {
                    *c = 0;
                }
            }
        }
        hit
    }

    /// Drops everything (e.g. on reset).
    pub fn clear(&mut self) {
        self.gen += 1;
        self.slots.iter_mut().for_each(|s| *s = None);
        self.code_page.iter_mut().for_each(|c| *c = 0);
        self.page_blocks.clear();
    }
}
