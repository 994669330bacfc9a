//! Linear-to-physical translation: the page walkers for 32-bit, PAE and
//! 4-level paging (SDM Vol. 3A chapter 4), the software TLB, and the
//! memory-access fast paths every instruction uses.
//!
//! TLB: two direct-mapped sets (supervisor accesses, CPL3 accesses), each
//! entry holding one tag per access kind (read / write / execute) and the
//! host address offset. A tag is the page-aligned linear address when that
//! access is allowed on the fast path, or an impossible value otherwise; so a
//! hit is one compare. Writes are only fast when the guest page is RAM,
//! writable, already dirty and holds no cached code. A writable page that
//! holds cached code gets a second write tag instead (`tag_wc`): a write
//! there skips the page walk, stores through the host pointer and drops only
//! the blocks whose bytes it changed (a store of the bytes already there,
//! as GRUB's real-mode trampolines do on every BIOS call, drops nothing:
//! the instructions are the same; SDM Vol. 3A 11.6).

use super::state::{cr0, cr4, efer, CS, SS};
use super::{vector, Bus, Cpu, Fault, Res};
use crate::memory::PageKind;

pub const TLB_BITS: usize = 10;
pub const TLB_SIZE: usize = 1 << TLB_BITS;
const NO_TAG: u64 = 1;

#[derive(Clone, Copy, Debug)]
pub struct TlbEntry {
    pub tag_r: u64,
    pub tag_w: u64,
    /// Write tag of a writable RAM page holding cached code (see module doc).
    pub tag_wc: u64,
    pub tag_x: u64,
    /// host address of the page minus the linear page address (wrapping).
    pub addend: u64,
    pub phys: u64,
    pub global: bool,
}

const EMPTY: TlbEntry = TlbEntry {
    tag_r: NO_TAG,
    tag_w: NO_TAG,
    tag_wc: NO_TAG,
    tag_x: NO_TAG,
    addend: 0,
    phys: 0,
    global: false,
};

/// Low bits of [`Tlb::jump_key`] that hold the fetch-context slot.
pub const JUMP_CTX_BITS: u32 = 3;

pub struct Tlb {
    pub e: [[TlbEntry; TLB_SIZE]; 2],
    /// Which entries of each set were filled since the last flush: a flush
    /// clears only those (a guest that switches modes on every BIOS call, as
    /// GRUB does, would otherwise clear 2 x 1024 entries each time).
    used: [[u64; TLB_SIZE / 64]; 2],
    /// The jump cache's validity word (see `Cpu::fetch_block`): bits 63..3
    /// count TLB flushes and fetch-context epochs, so cached linear->block
    /// lookups older than a flush are stale; bits 2..0 are the current fetch
    /// context's slot (`Cpu::update_mode` keeps them). One word, so the run
    /// loop's per-block check is one load and one compare.
    pub jump_key: u64,
}

impl Tlb {
    pub fn new() -> Box<Tlb> {
        Box::new(Tlb {
            e: [[EMPTY; TLB_SIZE]; 2],
            used: [[0; TLB_SIZE / 64]; 2],
            jump_key: 0,
        })
    }

    /// Installs an entry (the page walk's result).
    #[inline]
    pub fn fill(&mut self, set: usize, idx: usize, e: TlbEntry) {
        if let Some(slot) = self.e.get_mut(set).and_then(|s| s.get_mut(idx)) {
            *slot = e;
        }
        if let Some(w) = self.used.get_mut(set).and_then(|u| u.get_mut(idx / 64)) {
            *w |= 1 << (idx % 64);
        }
    }

    /// Clears the used entries for which `drop` says so.
    fn flush_where(&mut self, drop: impl Fn(&TlbEntry) -> bool) {
        self.jump_key = self.jump_key.wrapping_add(1 << JUMP_CTX_BITS);
        for (set, used) in self.e.iter_mut().zip(self.used.iter_mut()) {
            for (wi, word) in used.iter_mut().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let idx = wi * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(e) = set.get_mut(idx) {
                        if drop(e) {
                            *e = EMPTY;
                            *word &= !(1 << (idx % 64));
                        }
                    }
                }
            }
        }
    }

    pub fn flush_all(&mut self) {
        self.flush_where(|_| true);
    }
    /// CR3 write: flush everything but global pages (SDM Vol. 3A 4.10.4.1).
    pub fn flush_non_global(&mut self) {
        self.flush_where(|e| !e.global);
    }
    pub fn flush_page(&mut self, lin: u64) {
        self.jump_key = self.jump_key.wrapping_add(1 << JUMP_CTX_BITS);
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        for set in self.e.iter_mut() {
            if let Some(e) = set.get_mut(idx) {
                *e = EMPTY;
            }
        }
    }
    /// Moves fast write access to one physical page (it now holds code) to
    /// the code-page write tag.
    pub fn protect_phys(&mut self, phys_page: u64) {
        for (set, used) in self.e.iter_mut().zip(self.used.iter()) {
            for (wi, word) in used.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let idx = wi * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(e) = set.get_mut(idx) {
                        if e.phys == phys_page && e.tag_w != NO_TAG {
                            e.tag_wc = e.tag_w;
                            e.tag_w = NO_TAG;
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// Page-fault error code bits (SDM Vol. 3A 4.7).
const PF_P: u32 = 1;
const PF_W: u32 = 2;
const PF_U: u32 = 4;
const PF_RSVD: u32 = 8;
const PF_I: u32 = 16;

/// Physical address width vx86 reports in CPUID 0x80000008.
pub const PHYS_BITS: u32 = 40;
const PHYS_MASK: u64 = ((1u64 << PHYS_BITS) - 1) & !0xFFF;

/// Result of a page walk.
struct Walk {
    phys: u64,
    writable: bool,
    user: bool,
    nx: bool,
    dirty: bool,
    global: bool,
}

#[inline(always)]
pub fn canonical(a: u64) -> bool {
    ((a as i64) << 16 >> 16) as u64 == a
}

impl Cpu {
    /// PAE paging (not IA-32e) loads the four PDPTEs when CR3 is written or
    /// CR0/CR4 turn it on, and a present one with a reserved bit set (2:1,
    /// 8:5, 63:MAXPHYADDR) makes that MOV #GP(0) (SDM Vol. 3A 4.4.1). The
    /// walk still reads them from memory; this is the load-time check.
    pub(crate) fn check_pae_pdptes(&mut self, bus: &mut dyn Bus) -> Res {
        if self.cr0 & cr0::PG == 0 || self.cr4 & cr4::PAE == 0 || self.efer & efer::LMA != 0 {
            return Ok(());
        }
        let base = self.cr3 & 0xFFFF_FFE0;
        for i in 0..4u64 {
            let e = self.phys_read(bus, base + 8 * i, 8);
            if e & 1 != 0 && (e & 0x1E6 != 0 || e & !PHYS_MASK & !0xFFF != 0) {
                return Err(Fault::gp(0));
            }
        }
        Ok(())
    }
    // ---- physical access helpers used by the walker and system code ----

    pub fn phys_read(&mut self, bus: &mut dyn Bus, addr: u64, size: u8) -> u64 {
        let addr = addr & self.a20_mask;
        let mut v = 0u64;
        if self.mem.is_ram(addr) && self.mem.is_ram(addr + size as u64 - 1) {
            for i in 0..size as u64 {
                v |= (self.mem.read_u8(addr + i).unwrap_or(0xFF) as u64) << (8 * i);
            }
            return v;
        }
        if self.mem.read_u8(addr).is_none() && self.mem.read_u8(addr + size as u64 - 1).is_none() {
            // A device window: one sized access (the map splits it if it must).
            self.intr_recheck = true;
            return bus.mmio_read(addr, size, self.icount) & super::flags::size_mask(size);
        }
        for i in 0..size as u64 {
            let a = addr + i;
            let b = match self.mem.read_u8(a) {
                Some(b) => b,
                None => {
                    self.intr_recheck = true;
                    bus.mmio_read(a, 1, self.icount) as u8
                }
            };
            v |= (b as u64) << (8 * i);
        }
        v
    }

    pub fn phys_write(&mut self, bus: &mut dyn Bus, addr: u64, size: u8, v: u64) {
        let addr = addr & self.a20_mask;
        if self.mem.read_u8(addr).is_none() && self.mem.read_u8(addr + size as u64 - 1).is_none() {
            self.mmio_write(bus, addr, size, v);
            return;
        }
        for i in 0..size as u64 {
            let a = addr + i;
            let b = (v >> (8 * i)) as u8;
            let old = self.mem.read_u8(a);
            if self.mem.write_u8(a, b) {
                if old != Some(b) {
                    self.note_code_write(a, 1);
                }
            } else if self.mem.read_u8(a).is_none() {
                self.mmio_write(bus, a, 1, b as u64);
            }
        }
    }

    /// A write to a device window. A device may act on it at once (a DMA, an
    /// exit request): then the CPU stops after this instruction so the
    /// machine can act before anything else runs.
    fn mmio_write(&mut self, bus: &mut dyn Bus, addr: u64, size: u8, v: u64) {
        bus.mmio_write(addr, size, v, self.icount);
        self.intr_recheck = true;
        if bus.needs_attention() {
            self.stop_request = true;
            self.stop_block = true;
        }
    }

    /// Writes bytes into guest physical memory from outside the CPU (BIOS
    /// services, loaders after start), keeping the block cache coherent.
    pub fn write_phys_bytes(&mut self, bus: &mut dyn Bus, addr: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.phys_write(bus, addr + i as u64, 1, *b as u64);
        }
    }

    #[inline]
    fn note_code_write(&mut self, phys: u64, len: u64) {
        if self.cache.range_has_code(phys, len) {
            self.invalidate_code(phys, len);
        }
    }

    /// Someone outside the CPU (a device's DMA) wrote physical bytes
    /// `[phys, phys+len)`: blocks decoded from them are dropped, as for a CPU
    /// write (SDM Vol. 3A 11.6: self- and cross-modifying code).
    pub fn invalidate_phys(&mut self, phys: u64, len: u64) {
        let end = phys.saturating_add(len);
        let mut page = phys & !0xFFF;
        while page < end {
            let s = page.max(phys);
            let e = (page + 0x1000).min(end);
            if self.cache.range_has_code(s, e - s) {
                self.invalidate_code(s, e - s);
            }
            page += 0x1000;
        }
    }

    fn invalidate_code(&mut self, phys: u64, len: u64) {
        let hit = self.cache.invalidate(phys, len, self.running_block);
        if hit.any {
            self.stats.smc_invalidations += 1;
        }
        // The running block ends after this instruction only when the write
        // touched its own bytes: that is a function of the block and the
        // write. Whether other cached blocks were hit depends on the cache's
        // history (a restored snapshot starts empty), and ending the block
        // for them would move the block boundaries where interrupts are
        // taken and slices end.
        if hit.running {
            self.stop_block = true;
        }
    }

    // ---- the page walk ----

    fn walk(&mut self, bus: &mut dyn Bus, lin: u64, acc: Access, user: bool) -> Res<Walk> {
        let write = acc == Access::Write;
        let nxe = self.efer & efer::NXE != 0;
        let mut err = 0u32;
        if write {
            err |= PF_W;
        }
        if user {
            err |= PF_U;
        }
        if acc == Access::Exec && nxe {
            err |= PF_I;
        }
        let pf = |cpu: &mut Cpu, e: u32| {
            cpu.cr2 = lin;
            Fault::code(vector::PF, e)
        };
        let mut writable = true;
        let mut usr = true;
        let mut nx = false;
        // Entries visited, so A (and D) bits can be set once the walk succeeds.
        let mut path: [(u64, u64, u8); 4] = [(0, 0, 0); 4];
        let mut depth = 0usize;
        let (phys, leaf_global, leaf_dirty);

        if self.cr4 & cr4::PAE == 0 {
            // 32-bit paging (SDM 4.3).
            let pde_addr = (self.cr3 & 0xFFFF_F000) | ((lin >> 20) & 0xFFC);
            let pde = self.phys_read(bus, pde_addr, 4);
            if pde & 1 == 0 {
                return Err(pf(self, err));
            }
            writable &= pde & 2 != 0;
            usr &= pde & 4 != 0;
            path[depth] = (pde_addr, pde, 4);
            depth += 1;
            if pde & 0x80 != 0 && self.cr4 & cr4::PSE != 0 {
                // SDM Vol. 3A 4.3, Table 4-4: a 4-MByte PDE holds physical
                // address bits 39:32 in bits 20:13 (MAXPHYADDR is 40 here,
                // PSE-36 advertised); bit 21 is reserved: #PF with RSVD.
                if pde & (1 << 21) != 0 {
                    return Err(pf(self, err | PF_P | PF_RSVD));
                }
                phys = (pde & 0xFFC0_0000) | ((pde & 0x1F_E000) << 19) | (lin & 0x3F_FFFF);
                leaf_global = pde & 0x100 != 0;
                leaf_dirty = pde & 0x40 != 0;
            } else {
                let pte_addr = (pde & 0xFFFF_F000) | ((lin >> 10) & 0xFFC);
                let pte = self.phys_read(bus, pte_addr, 4);
                if pte & 1 == 0 {
                    return Err(pf(self, err));
                }
                writable &= pte & 2 != 0;
                usr &= pte & 4 != 0;
                path[depth] = (pte_addr, pte, 4);
                depth += 1;
                phys = (pte & 0xFFFF_F000) | (lin & 0xFFF);
                leaf_global = pte & 0x100 != 0;
                leaf_dirty = pte & 0x40 != 0;
            }
        } else {
            // PAE (SDM 4.4) or 4-level (SDM 4.5) paging.
            let long = self.efer & efer::LMA != 0;
            // Bits 51:MAXPHYADDR are reserved; so are bits 62:52 under PAE
            // paging (SDM Vol. 3A 4.4.2, Tables 4-8 to 4-11: "Reserved (must
            // be 0)"), which 4-level paging ignores (Tables 4-14 to 4-19).
            let high_rsvd: u64 = if long { 0 } else { 0x7FF0_0000_0000_0000 };
            let rsvd = |e: u64, nxe: bool| {
                (e & !PHYS_MASK & 0x000F_FFFF_FFFF_F000) != 0
                    || e & high_rsvd != 0
                    || (!nxe && e & (1 << 63) != 0)
            };
            let mut table;
            let levels;
            if long {
                table = self.cr3 & PHYS_MASK;
                levels = 4;
            } else {
                let pdpte_addr = (self.cr3 & 0xFFFF_FFE0) | ((lin >> 27) & 0x18);
                let pdpte = self.phys_read(bus, pdpte_addr, 8);
                if pdpte & 1 == 0 {
                    return Err(pf(self, err));
                }
                // A PDPTE has no XD bit: bit 63 is reserved even with
                // EFER.NXE (SDM Vol. 3A 4.4.1, Table 4-8).
                if rsvd(pdpte, false) || pdpte & 0x1E6 != 0 {
                    return Err(pf(self, err | PF_P | PF_RSVD));
                }
                table = pdpte & PHYS_MASK;
                levels = 2;
            }
            let mut level = levels;
            loop {
                let shift = 12 + 9 * (level - 1);
                let eaddr = table | ((lin >> shift) & 0x1FF) << 3;
                let e = self.phys_read(bus, eaddr, 8);
                if e & 1 == 0 {
                    return Err(pf(self, err));
                }
                let large = e & 0x80 != 0;
                if rsvd(e, nxe) || (level == 4 && large) || (level == 3 && large) {
                    // 1 GiB pages are not advertised; PS in a PML4E is reserved.
                    return Err(pf(self, err | PF_P | PF_RSVD));
                }
                writable &= e & 2 != 0;
                usr &= e & 4 != 0;
                nx |= nxe && e & (1 << 63) != 0;
                if let Some(p) = path.get_mut(depth) {
                    *p = (eaddr, e, 8);
                }
                depth += 1;
                if level == 1 || (level == 2 && large) {
                    if level == 2 {
                        if e & 0x1F_E000 != 0 {
                            return Err(pf(self, err | PF_P | PF_RSVD));
                        }
                        phys = (e & PHYS_MASK & !0x1F_FFFF) | (lin & 0x1F_FFFF);
                    } else {
                        phys = (e & PHYS_MASK) | (lin & 0xFFF);
                    }
                    leaf_global = e & 0x100 != 0;
                    leaf_dirty = e & 0x40 != 0;
                    break;
                }
                table = e & PHYS_MASK;
                level -= 1;
            }
        }

        // Permission checks (SDM 4.6).
        let wp = self.cr0 & cr0::WP != 0;
        let mut ok = true;
        if user && !usr {
            ok = false;
        }
        if write && !writable && (user || wp) {
            ok = false;
        }
        if acc == Access::Exec && nx {
            ok = false;
        }
        if !ok {
            return Err(pf(self, err | PF_P));
        }
        // Accessed bits on every level, dirty on the leaf for writes (SDM 4.8).
        let n = depth.min(path.len());
        for (i, &(addr, e, size)) in path[..n].iter().enumerate() {
            let mut ne = e | 0x20;
            if write && i + 1 == n {
                ne |= 0x40;
            }
            if ne != e {
                self.phys_write(bus, addr, size, ne);
            }
        }
        Ok(Walk {
            phys,
            writable,
            user: usr,
            nx,
            dirty: leaf_dirty || write,
            global: leaf_global && self.cr4 & cr4::PGE != 0,
        })
    }

    /// Translates a linear address for an access, filling the TLB.
    pub fn translate(&mut self, bus: &mut dyn Bus, lin: u64, acc: Access, user: bool) -> Res<u64> {
        self.stats.tlb_misses += 1;
        let (phys, w) = if self.cr0 & cr0::PG == 0 {
            let p = lin & 0xFFFF_FFFF;
            (
                p,
                Walk {
                    phys: p,
                    writable: true,
                    user: true,
                    nx: false,
                    dirty: true,
                    global: false,
                },
            )
        } else {
            let w = self.walk(bus, lin, acc, user)?;
            (w.phys, w)
        };
        let phys = phys & self.a20_mask;
        let page = phys & !0xFFF;
        let lpage = lin & !0xFFF;
        let kind = self.mem.page_kind(page);
        let set = user as usize;
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let (host, ram) = match kind {
            PageKind::Ram(p) => (p as u64, true),
            PageKind::Rom(p) => (p as u64, false),
            PageKind::Mmio => (0, false),
        };
        let wp = self.cr0 & cr0::WP != 0;
        let can_write = w.dirty && (w.writable || (!user && !wp)) && (!user || w.user);
        let can_read = !user || w.user;
        let mut e = EMPTY;
        if kind != PageKind::Mmio {
            e.addend = host.wrapping_sub(lpage);
            if can_read {
                e.tag_r = lpage;
                if !w.nx {
                    e.tag_x = lpage;
                }
            }
            if ram && can_write {
                if self.cache.page_has_code(page) {
                    e.tag_wc = lpage;
                } else {
                    e.tag_w = lpage;
                }
            }
            if let Some(d) = &self.debug {
                // Watched pages: every access takes the slow path (debug.rs).
                let (r, w) = d.fast_tags(lpage);
                if !r {
                    e.tag_r = NO_TAG;
                }
                if !w {
                    e.tag_w = NO_TAG;
                }
            }
        }
        e.phys = page;
        e.global = w.global;
        self.tlb.fill(set, idx, e);
        Ok(phys)
    }

    // ---- linear-address access ----

    /// The TLB hit of a read: the value when `lin`'s page has a read tag in
    /// the current privilege's set and the access stays inside the page.
    #[inline(always)]
    fn tlb_read(&self, lin: u64, size: u8) -> Option<u64> {
        self.tlb_read_in(self.mmu_user & 1, lin, size)
    }

    /// [`Cpu::tlb_read`] in TLB set `set` (0 supervisor, 1 user).
    #[inline(always)]
    fn tlb_read_in(&self, set: usize, lin: u64, size: u8) -> Option<u64> {
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let e = &self.tlb.e[set & 1][idx];
        if e.tag_r != lin & !0xFFF || (lin & 0xFFF) > 0x1000 - size as u64 {
            return None;
        }
        let p = e.addend.wrapping_add(lin) as *const u8;
        // SAFETY: a read tag is only installed for a RAM or ROM page whose host
        // mapping starts at `addend + page`, and the check above keeps the whole
        // access inside that page; unaligned reads are allowed on every host.
        unsafe {
            Some(match size {
                1 => *p as u64,
                2 => (p as *const u16).read_unaligned() as u64,
                4 => (p as *const u32).read_unaligned() as u64,
                _ => (p as *const u64).read_unaligned(),
            })
        }
    }

    /// The TLB hit of a write: true when `lin`'s page has a write tag (RAM,
    /// writable, dirty, no cached code) and the access stays inside the page.
    #[inline(always)]
    fn tlb_write(&mut self, lin: u64, size: u8, v: u64) -> bool {
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let e = &self.tlb.e[self.mmu_user & 1][idx];
        if e.tag_w != lin & !0xFFF || (lin & 0xFFF) > 0x1000 - size as u64 {
            return false;
        }
        let p = e.addend.wrapping_add(lin) as *mut u8;
        // SAFETY: a write tag is only installed for a writable RAM page without
        // cached code, mapped at `addend + page`; the access stays in the page.
        unsafe {
            match size {
                1 => *p = v as u8,
                2 => (p as *mut u16).write_unaligned(v as u16),
                4 => (p as *mut u32).write_unaligned(v as u32),
                _ => (p as *mut u64).write_unaligned(v),
            }
        }
        true
    }

    /// Reads `size` (1, 2, 4, 8) bytes at a linear address.
    #[inline(always)]
    pub fn read_lin(&mut self, bus: &mut dyn Bus, lin: u64, size: u8) -> Res<u64> {
        if let Some(v) = self.tlb_read(lin, size) {
            return Ok(v);
        }
        self.read_lin_slow(bus, lin, size, self.mmu_user == 1)
    }

    #[inline(never)]
    pub fn read_lin_slow(&mut self, bus: &mut dyn Bus, lin: u64, size: u8, user: bool) -> Res<u64> {
        let lin = self.lin_wrap(lin);
        let end = lin.wrapping_add(size as u64 - 1);
        if lin & !0xFFF == end & !0xFFF {
            let phys = self.translate(bus, lin, Access::Read, user)?;
            if self.debug.is_some() {
                self.debug_access(lin, size as u64, Access::Read);
            }
            if self.mem.is_ram(phys) || self.mem.read_u8(phys).is_some() {
                return Ok(self.phys_read(bus, phys, size));
            }
            self.intr_recheck = true;
            return Ok(bus.mmio_read(phys, size, self.icount) & super::flags::size_mask(size));
        }
        // Crossing a page: translate both halves before touching anything.
        let p1 = self.translate(bus, lin, Access::Read, user)?;
        let p2 = self.translate(bus, self.lin_wrap(end & !0xFFF), Access::Read, user)?;
        if self.debug.is_some() {
            self.debug_access(lin, size as u64, Access::Read);
        }
        let mut v = 0u64;
        for i in 0..size as u64 {
            let a = lin.wrapping_add(i);
            let pa = if a & !0xFFF == lin & !0xFFF {
                (p1 & !0xFFF) | (a & 0xFFF)
            } else {
                (p2 & !0xFFF) | (a & 0xFFF)
            };
            v |= self.phys_read(bus, pa, 1) << (8 * i);
        }
        Ok(v)
    }

    /// Writes `size` bytes at a linear address.
    #[inline(always)]
    pub fn write_lin(&mut self, bus: &mut dyn Bus, lin: u64, size: u8, v: u64) -> Res {
        if self.tlb_write(lin, size, v) {
            return Ok(());
        }
        self.write_lin_slow(bus, lin, size, v, self.mmu_user == 1)
    }

    #[inline(never)]
    pub fn write_lin_slow(
        &mut self,
        bus: &mut dyn Bus,
        lin: u64,
        size: u8,
        v: u64,
        user: bool,
    ) -> Res {
        let lin = self.lin_wrap(lin);
        if self.tlb_write_code(lin, size, v, user) {
            return Ok(());
        }
        let end = lin.wrapping_add(size as u64 - 1);
        if lin & !0xFFF == end & !0xFFF {
            let phys = self.translate(bus, lin, Access::Write, user)?;
            if self.debug.is_some() {
                self.debug_access(lin, size as u64, Access::Write);
            }
            if self.mem.is_ram(phys) {
                self.phys_write(bus, phys, size, v);
            } else if self.mem.read_u8(phys).is_none() {
                self.mmio_write(bus, phys, size, v);
            }
            return Ok(());
        }
        let p1 = self.translate(bus, lin, Access::Write, user)?;
        let p2 = self.translate(bus, self.lin_wrap(end & !0xFFF), Access::Write, user)?;
        if self.debug.is_some() {
            self.debug_access(lin, size as u64, Access::Write);
        }
        for i in 0..size as u64 {
            let a = lin.wrapping_add(i);
            let pa = if a & !0xFFF == lin & !0xFFF {
                (p1 & !0xFFF) | (a & 0xFFF)
            } else {
                (p2 & !0xFFF) | (a & 0xFFF)
            };
            self.phys_write(bus, pa, 1, (v >> (8 * i)) & 0xFF);
        }
        Ok(())
    }

    /// A write to a page holding cached code through its `tag_wc` TLB entry:
    /// no page walk; only a change of bytes invalidates blocks.
    fn tlb_write_code(&mut self, lin: u64, size: u8, v: u64, user: bool) -> bool {
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let Some(e) = self.tlb.e.get(user as usize).and_then(|s| s.get(idx)) else {
            return false;
        };
        if e.tag_wc != lin & !0xFFF || (lin & 0xFFF) > 0x1000 - size as u64 {
            return false;
        }
        let phys = e.phys | (lin & 0xFFF);
        let p = e.addend.wrapping_add(lin) as *mut u8;
        let v = v & super::flags::size_mask(size);
        // SAFETY: a code-page write tag is only installed for a writable RAM
        // page mapped at `addend + page` (as `tag_w`), and the check above
        // keeps the access inside that page.
        let old = unsafe {
            match size {
                1 => *p as u64,
                2 => (p as *const u16).read_unaligned() as u64,
                4 => (p as *const u32).read_unaligned() as u64,
                _ => (p as *const u64).read_unaligned(),
            }
        };
        if old != v {
            // SAFETY: as above.
            unsafe {
                match size {
                    1 => *p = v as u8,
                    2 => (p as *mut u16).write_unaligned(v as u16),
                    4 => (p as *mut u32).write_unaligned(v as u32),
                    _ => (p as *mut u64).write_unaligned(v),
                }
            }
            self.note_code_write(phys, size as u64);
        }
        true
    }

    /// Host address of linear `lin` for a bulk write within its page (REP
    /// STOS/MOVS): a TLB hit, or a page walk that installs a fast write tag.
    /// Faults exactly as a write to `lin` would; None when the page must take
    /// the element-by-element path (MMIO, ROM, cached code, not yet dirty).
    #[inline]
    pub(crate) fn host_write_ptr(&mut self, bus: &mut dyn Bus, lin: u64) -> Res<Option<*mut u8>> {
        let lin = self.lin_wrap(lin);
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let set = self.mmu_user & 1;
        if self.tlb.e[set][idx].tag_w != lin & !0xFFF {
            self.translate(bus, lin, Access::Write, self.mmu_user == 1)?;
        }
        let e = &self.tlb.e[set][idx];
        Ok((e.tag_w == lin & !0xFFF).then(|| e.addend.wrapping_add(lin) as *mut u8))
    }

    /// Like [`Cpu::host_write_ptr`] for reads (RAM or ROM pages).
    #[inline]
    pub(crate) fn host_read_ptr(&mut self, bus: &mut dyn Bus, lin: u64) -> Res<Option<*const u8>> {
        let lin = self.lin_wrap(lin);
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let set = self.mmu_user & 1;
        if self.tlb.e[set][idx].tag_r != lin & !0xFFF {
            self.translate(bus, lin, Access::Read, self.mmu_user == 1)?;
        }
        let e = &self.tlb.e[set][idx];
        Ok((e.tag_r == lin & !0xFFF).then(|| e.addend.wrapping_add(lin) as *const u8))
    }

    /// Checks that a write to [lin, lin+size) would succeed, without writing.
    /// Used by instructions that must fault before changing any state.
    pub fn probe_write(&mut self, bus: &mut dyn Bus, lin: u64, size: u8) -> Res {
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let e = &self.tlb.e[self.mmu_user & 1][idx];
        if e.tag_w == lin & !0xFFF && (lin & 0xFFF) <= 0x1000 - size as u64 {
            return Ok(());
        }
        let user = self.mmu_user == 1;
        let lin = self.lin_wrap(lin);
        self.translate(bus, lin, Access::Write, user)?;
        let end = lin.wrapping_add(size as u64 - 1);
        if end & !0xFFF != lin & !0xFFF {
            // CR2 reports the first byte of the second page, as a real
            // crossing write faults there (same as write_lin_slow).
            self.translate(bus, self.lin_wrap(end & !0xFFF), Access::Write, user)?;
        }
        Ok(())
    }

    /// Outside IA-32e mode linear addresses are 32 bits wide.
    #[inline(always)]
    fn lin_wrap(&self, lin: u64) -> u64 {
        if self.efer & efer::LMA != 0 {
            lin
        } else {
            lin & 0xFFFF_FFFF
        }
    }

    /// Supervisor-mode ("implicit") linear read, e.g. of descriptor tables.
    /// The supervisor TLB set answers first: descriptor loads are frequent
    /// where software switches modes (GRUB reloads five segment registers on
    /// every BIOS call, a 64-bit kernel's IRET to user space reads two
    /// descriptors), and without it each read was a page walk.
    pub fn read_sys(&mut self, bus: &mut dyn Bus, lin: u64, size: u8) -> Res<u64> {
        let lin = self.lin_wrap(lin);
        if self.debug.is_none() {
            if let Some(v) = self.tlb_read_in(0, lin, size) {
                return Ok(v);
            }
        }
        self.read_lin_slow(bus, lin, size, false)
    }
    pub fn write_sys(&mut self, bus: &mut dyn Bus, lin: u64, size: u8, v: u64) -> Res {
        self.write_lin_slow(bus, lin, size, v, false)
    }

    // ---- segmented access ----

    /// Segmentation: checks an access of `size` bytes at `off` in segment `s` and
    /// returns the linear address (SDM Vol. 3A 5.3, 3.4.2; in 64-bit mode only
    /// FS/GS bases apply and addresses must be canonical, Vol. 3A 3.2.4).
    #[inline(always)]
    pub fn seg_lin(&self, s: usize, off: u64, size: u8, write: bool) -> Res<u64> {
        let sg = &self.seg[s.min(5)];
        if self.long64 {
            let lin = if s >= 4 {
                sg.base.wrapping_add(off)
            } else {
                off
            };
            if !canonical(lin) || !canonical(lin.wrapping_add(size as u64 - 1)) {
                return Err(if s == SS {
                    Fault::code(vector::SS, 0)
                } else {
                    Fault::gp(0)
                });
            }
            return Ok(lin);
        }
        let a = sg.attr;
        let fault = || {
            if s == SS {
                Fault::code(vector::SS, 0)
            } else {
                Fault::gp(0)
            }
        };
        if self.pmode {
            use super::state::attr::*;
            if a & P == 0 {
                return Err(fault());
            }
            let code = a & TYPE_CODE != 0;
            let rw = a & TYPE_RW != 0;
            let ok = if write { !code && rw } else { !code || rw };
            if !ok {
                return Err(fault());
            }
            if !code && a & TYPE_EC != 0 {
                // Expand-down: valid offsets are limit+1 ..= 0xFFFF or 0xFFFFFFFF.
                let upper: u64 = if a & DB != 0 { 0xFFFF_FFFF } else { 0xFFFF };
                if off <= sg.limit as u64 || off + size as u64 - 1 > upper {
                    return Err(fault());
                }
                return Ok((sg.base.wrapping_add(off)) & 0xFFFF_FFFF);
            }
        }
        if off + size as u64 - 1 > sg.limit as u64 {
            return Err(fault());
        }
        Ok((sg.base.wrapping_add(off)) & 0xFFFF_FFFF)
    }

    /// The linear address of `off` in segment `s` when the access passes the
    /// segment checks a plain segment needs, else None (take [`Cpu::seg_lin`],
    /// which raises the fault or handles the rare kinds).
    ///
    /// A TLB hit needs the whole access inside one page whose tag matched, so
    /// the access cannot wrap past 4 GiB (a legacy-mode linear address is
    /// masked to 32 bits, and one that wraps leaves its page) nor leave the
    /// canonical range (64-bit tags are canonical and the boundary is page
    /// aligned). What is left to check is done here: in 64-bit mode nothing;
    /// in legacy modes the limit (of an expand-up segment), and in protected
    /// mode a present, not expand-down data segment, writable for a write
    /// (SDM Vol. 3A 5.3-5.5) - as `seg_lin`. Real and virtual-8086 mode take
    /// this path too (segment bases are not zero there), and so does every
    /// flat protected-mode segment.
    #[inline(always)]
    fn fast_lin(&self, s: usize, off: u64, size: u8, write: bool) -> Option<u64> {
        use super::state::attr::*;
        let sg = &self.seg[s.min(5)];
        if self.long64 {
            return Some(if s >= 4 {
                sg.base.wrapping_add(off)
            } else {
                off
            });
        }
        let (mask, want) = if write {
            (P | TYPE_CODE | TYPE_EC | TYPE_RW, P | TYPE_RW)
        } else {
            (P | TYPE_CODE | TYPE_EC, P)
        };
        let attr_ok = sg.attr & mask == want;
        // Flat first: the common case, with the fewest tests.
        if sg.base == 0 && sg.limit == 0xFFFF_FFFF && attr_ok {
            return Some(off);
        }
        if (attr_ok || !self.pmode) && off.wrapping_add(size as u64 - 1) <= sg.limit as u64 {
            return Some(sg.base.wrapping_add(off) & 0xFFFF_FFFF);
        }
        None
    }

    /// Reads `size` bytes at `off` in segment `s`: flat segment and TLB hit
    /// inline, everything else (checks, faults, page walks, MMIO) out of line.
    #[inline(always)]
    pub fn read(&mut self, bus: &mut dyn Bus, s: usize, off: u64, size: u8) -> Res<u64> {
        if let Some(v) = self
            .fast_lin(s, off, size, false)
            .and_then(|l| self.tlb_read(l, size))
        {
            return Ok(v);
        }
        self.read_seg_slow(bus, s, off, size)
    }

    #[inline(never)]
    fn read_seg_slow(&mut self, bus: &mut dyn Bus, s: usize, off: u64, size: u8) -> Res<u64> {
        let lin = self.seg_lin(s, off, size, false)?;
        self.read_lin(bus, lin, size)
    }

    /// Writes `size` bytes at `off` in segment `s`; fast path as for [`Cpu::read`].
    #[inline(always)]
    pub fn write(&mut self, bus: &mut dyn Bus, s: usize, off: u64, size: u8, v: u64) -> Res {
        if let Some(lin) = self.fast_lin(s, off, size, true) {
            if self.tlb_write(lin, size, v) {
                return Ok(());
            }
        }
        self.write_seg_slow(bus, s, off, size, v)
    }

    #[inline(never)]
    fn write_seg_slow(&mut self, bus: &mut dyn Bus, s: usize, off: u64, size: u8, v: u64) -> Res {
        let lin = self.seg_lin(s, off, size, true)?;
        self.write_lin(bus, lin, size, v)
    }

    /// Translates the code page at a linear address for instruction fetch.
    pub fn translate_exec(&mut self, bus: &mut dyn Bus, lin: u64) -> Res<u64> {
        let lin = self.lin_wrap(lin);
        let idx = ((lin >> 12) as usize) & (TLB_SIZE - 1);
        let e = &self.tlb.e[self.mmu_user & 1][idx];
        if e.tag_x == lin & !0xFFF {
            return Ok(e.phys | (lin & 0xFFF));
        }
        let user = self.mmu_user == 1;
        self.translate(bus, lin, Access::Exec, user)
    }

    /// Linear address of CS:RIP, with the code-segment limit checked.
    pub fn code_lin(&self, rip: u64) -> Res<u64> {
        if self.long64 {
            if !canonical(rip) {
                return Err(Fault::gp(0));
            }
            return Ok(rip);
        }
        if rip > self.seg[CS].limit as u64 {
            return Err(Fault::gp(0));
        }
        Ok(self.seg[CS].base.wrapping_add(rip) & 0xFFFF_FFFF)
    }
}
