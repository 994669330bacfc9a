//! Guest physical memory: RAM (an anonymous `memmap2` mapping), the BIOS ROM and
//! the MMIO windows, as the PC/AT memory map lays them out.
//!
//! The map, for RAM below 3.5 GiB (the only layout the ISA machine needs):
//!
//! | range                      | what                                              |
//! |----------------------------|---------------------------------------------------|
//! | `0 .. 0xA0000`             | conventional RAM                                   |
//! | `0xA0000 .. 0xC0000`       | VGA legacy window (MMIO)                           |
//! | `0xC0000 .. 0x100000`      | option ROM / BIOS area, backed by RAM ("shadowed") |
//! | `0x100000 .. ram_size`     | extended RAM                                       |
//! | `LFB_BASE .. +16 MiB`      | VBE linear framebuffer (MMIO)                      |
//! | `4 GiB - bios .. 4 GiB`    | BIOS ROM (read-only)                               |
//!
//! Everything else is unmapped: reads return all ones, writes are dropped.
//!
//! Ownership: the machine owns guest memory. [`GuestMemory`] is a handle to
//! it; the machine keeps one, the CPU holds another for its TLB fills and
//! slow paths, and devices that do DMA get a [`Dma`] handle, which can only
//! make bounds-checked copies. Every handle lives on the machine thread (the
//! machine moves to its own thread as a whole), so accesses never race.
//!
//! DMA and translated code: a DMA write is recorded (coalesced ranges) and
//! the machine hands the ranges to the CPU before it runs another block, so
//! blocks decoded from bytes a device overwrote are invalidated exactly as if
//! the CPU had written them.

use memmap2::MmapMut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// VGA legacy memory window (IBM VGA Technical Reference: memory map select).
pub const VGA_WINDOW: std::ops::Range<u64> = 0xA0000..0xC0000;
/// Bochs VBE linear framebuffer base (fixed, as on QEMU's ISA machine).
pub const LFB_BASE: u64 = 0xE000_0000;
/// Size of the linear framebuffer window.
pub const LFB_SIZE: u64 = 16 << 20;
/// Largest RAM size this memory map supports (below the LFB).
pub const MAX_RAM: u64 = 0xE000_0000;
/// Largest system BIOS image.
pub const MAX_BIOS: usize = 256 << 10;

pub const PAGE_SIZE: u64 = 4096;

/// Most DMA-written ranges remembered before they are merged into one
/// covering range (the CPU then invalidates a little more than needed, never
/// less). Bounds the queue however much a device writes between two blocks.
const MAX_DMA_RANGES: usize = 64;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("-m {0}: RAM size must be between 1 MiB and 3584 MiB")]
    BadSize(u64),
    #[error("cannot allocate {0} bytes of guest RAM: {1}")]
    Alloc(u64, std::io::Error),
    #[error("{0}: BIOS image must be 64 KiB, 128 KiB or 256 KiB (it is {1} bytes)")]
    BadBios(String, usize),
}

/// A device's access outside guest RAM (a bad descriptor address, a buffer
/// running past the end of RAM). The device decides what the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("DMA to {addr:#x}+{len:#x} is outside guest RAM")]
pub struct DmaError {
    pub addr: u64,
    pub len: u64,
}

/// What backs one physical page, as the TLB fill sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// Plain RAM: host pointer to the start of the page.
    Ram(*mut u8),
    /// Read-only ROM: host pointer to the start of the page.
    Rom(*const u8),
    /// A device window or unmapped space: every access goes to the bus.
    Mmio,
}

/// The memory itself, shared by the handles.
struct Inner {
    /// Keeps the RAM mapping alive; accessed only through `ram_ptr`.
    _ram: MmapMut,
    ram_ptr: *mut u8,
    ram_size: u64,
    /// The BIOS ROM image (up to `MAX_BIOS`, only `bios_len` bytes used).
    _rom: MmapMut,
    rom_ptr: *mut u8,
    bios_len: AtomicU64,
    /// False for test harnesses that want flat RAM with no VGA hole.
    vga_hole: bool,
    /// RAM ranges written by DMA since the CPU last looked.
    dma_dirty: Mutex<Vec<(u64, u64)>>,
    dma_pending: AtomicBool,
}

// SAFETY: `Inner` owns its mappings; the raw pointers point into them and
// stay valid for its lifetime. All handles are used from the machine thread
// only (see the module documentation), so the bytes are never accessed from
// two threads at once; the bookkeeping fields are atomics or a mutex.
unsafe impl Send for Inner {}
// SAFETY: as above: shared references only read the atomics, the mutex and
// the immutable pointers/sizes.
unsafe impl Sync for Inner {}

/// A handle to guest physical memory. Cloning gives another handle to the
/// same memory (the CPU's); it never copies RAM.
#[derive(Clone)]
pub struct GuestMemory {
    inner: Arc<Inner>,
}

impl GuestMemory {
    pub fn new(ram_size: u64) -> Result<Self, MemoryError> {
        Self::with_hole(ram_size, true)
    }

    /// Flat RAM with no device windows (instruction test harnesses).
    pub fn new_flat(ram_size: u64) -> Result<Self, MemoryError> {
        Self::with_hole(ram_size, false)
    }

    fn with_hole(ram_size: u64, vga_hole: bool) -> Result<Self, MemoryError> {
        if !(1 << 20..=MAX_RAM).contains(&ram_size) {
            return Err(MemoryError::BadSize(ram_size >> 20));
        }
        let mut ram =
            MmapMut::map_anon(ram_size as usize).map_err(|e| MemoryError::Alloc(ram_size, e))?;
        let mut rom = MmapMut::map_anon(MAX_BIOS).map_err(|e| MemoryError::Alloc(ram_size, e))?;
        let ram_ptr = ram.as_mut_ptr();
        let rom_ptr = rom.as_mut_ptr();
        Ok(Self {
            inner: Arc::new(Inner {
                _ram: ram,
                ram_ptr,
                ram_size,
                _rom: rom,
                rom_ptr,
                bios_len: AtomicU64::new(0),
                vga_hole,
                dma_dirty: Mutex::new(Vec::new()),
                dma_pending: AtomicBool::new(false),
            }),
        })
    }

    /// A handle for a device that does DMA.
    pub fn dma(&self) -> Dma {
        Dma { mem: self.clone() }
    }

    #[inline(always)]
    fn in_hole(&self, addr: u64) -> bool {
        self.inner.vga_hole && VGA_WINDOW.contains(&addr)
    }

    #[inline(always)]
    pub fn ram_size(&self) -> u64 {
        self.inner.ram_size
    }

    /// Size of the installed BIOS image (0 before `load_bios`).
    pub fn bios_len(&self) -> u64 {
        self.inner.bios_len.load(Ordering::Relaxed)
    }

    fn bios_base(&self) -> u64 {
        (1u64 << 32) - self.bios_len()
    }

    /// How much of the BIOS image is copied into the shadow RAM below 1 MiB.
    pub fn bios_shadow_len(&self) -> u64 {
        self.bios_len().min(128 << 10)
    }

    /// Installs a system BIOS image: mapped read-only just below 4 GiB, and its
    /// last 128 KiB (or all of it, if smaller) copied into the shadow RAM just
    /// below 1 MiB, where the CPU's reset vector F000:FFF0 finds it.
    pub fn load_bios(&mut self, name: &str, image: &[u8]) -> Result<(), MemoryError> {
        let len = image.len();
        if !(len == 64 << 10 || len == 128 << 10 || len == 256 << 10) {
            return Err(MemoryError::BadBios(name.to_string(), len));
        }
        // SAFETY: the ROM mapping is MAX_BIOS bytes and `len <= MAX_BIOS`;
        // nothing else holds a reference into it while the BIOS is loaded.
        unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), self.inner.rom_ptr, len) };
        self.inner.bios_len.store(len as u64, Ordering::Relaxed);
        let shadow = self.bios_shadow_len() as usize;
        let low = &image[len - shadow..];
        let start = 0x100000 - low.len();
        if let Some(dst) = self.ram_mut().get_mut(start..0x100000) {
            dst.copy_from_slice(low);
        }
        Ok(())
    }

    /// Classifies the page containing physical address `addr`.
    #[inline]
    pub fn page_kind(&mut self, addr: u64) -> PageKind {
        let page = addr & !(PAGE_SIZE - 1);
        if page < self.ram_size() && !self.in_hole(page) {
            // SAFETY: `page < ram_size`, so the page lies inside the mapping.
            return PageKind::Ram(unsafe { self.inner.ram_ptr.add(page as usize) });
        }
        let base = self.bios_base();
        if page >= base && page < (1 << 32) {
            let off = (page - base) as usize;
            if (off as u64) < self.bios_len() {
                // SAFETY: `off < bios_len <= MAX_BIOS`, inside the ROM mapping.
                return PageKind::Rom(unsafe { self.inner.rom_ptr.add(off) });
            }
        }
        PageKind::Mmio
    }

    /// True if `addr` is RAM (not MMIO, not ROM).
    #[inline]
    pub fn is_ram(&self, addr: u64) -> bool {
        addr < self.ram_size() && !self.in_hole(addr)
    }

    /// Reads one byte of RAM or ROM; `None` for MMIO/unmapped addresses.
    #[inline]
    pub fn read_u8(&self, addr: u64) -> Option<u8> {
        if self.is_ram(addr) {
            return self.ram().get(addr as usize).copied();
        }
        let base = self.bios_base();
        if addr >= base && addr < (1 << 32) {
            return self.rom().get((addr - base) as usize).copied();
        }
        None
    }

    /// Writes one byte of RAM; returns false for ROM/MMIO/unmapped addresses.
    #[inline]
    pub fn write_u8(&mut self, addr: u64, v: u8) -> bool {
        if self.is_ram(addr) {
            if let Some(b) = self.ram_mut().get_mut(addr as usize) {
                *b = v;
                return true;
            }
        }
        false
    }

    fn rom(&self) -> &[u8] {
        // SAFETY: `bios_len <= MAX_BIOS` bytes of the ROM mapping, alive as long
        // as `inner`; ROM is only written by `load_bios`.
        unsafe { std::slice::from_raw_parts(self.inner.rom_ptr, self.bios_len() as usize) }
    }

    /// RAM as a byte slice (for loaders and tests).
    pub fn ram(&self) -> &[u8] {
        // SAFETY: the mapping is `ram_size` bytes and lives as long as `inner`.
        unsafe { std::slice::from_raw_parts(self.inner.ram_ptr, self.inner.ram_size as usize) }
    }

    /// RAM as a mutable byte slice (for loaders and tests). Writing here bypasses
    /// self-modifying-code tracking: use it only before the CPU runs, or go
    /// through `Cpu::write_phys_bytes` afterwards.
    pub fn ram_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `ram`; handles are used on one thread and callers do not
        // keep this slice across CPU execution or another handle's access.
        unsafe { std::slice::from_raw_parts_mut(self.inner.ram_ptr, self.inner.ram_size as usize) }
    }

    /// The RAM ranges devices wrote by DMA since the last call (for the CPU's
    /// block cache). Cheap when there are none: one atomic load.
    pub fn take_dma_writes(&self) -> Vec<(u64, u64)> {
        if !self.inner.dma_pending.swap(false, Ordering::Relaxed) {
            return Vec::new();
        }
        match self.inner.dma_dirty.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    fn note_dma_write(&self, addr: u64, len: u64) {
        let mut v = match self.inner.dma_dirty.lock() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        let end = addr + len;
        if let Some(last) = v.last_mut() {
            if addr <= last.1 && end >= last.0 {
                *last = (last.0.min(addr), last.1.max(end));
                self.inner.dma_pending.store(true, Ordering::Relaxed);
                return;
            }
        }
        if v.len() >= MAX_DMA_RANGES {
            let lo = v.iter().map(|r| r.0).min().unwrap_or(addr).min(addr);
            let hi = v.iter().map(|r| r.1).max().unwrap_or(end).max(end);
            v.clear();
            v.push((lo, hi));
        } else {
            v.push((addr, end));
        }
        self.inner.dma_pending.store(true, Ordering::Relaxed);
    }
}

/// A device's window onto guest RAM: bounds-checked copies in and out, never
/// a reference into RAM, never ROM or MMIO (a DMA to a device window is
/// refused, as a PCI master abort would be).
#[derive(Clone)]
pub struct Dma {
    mem: GuestMemory,
}

impl Dma {
    /// The RAM range `[addr, addr+len)` as host offsets, if all of it is RAM.
    fn check(&self, addr: u64, len: u64) -> Result<std::ops::Range<usize>, DmaError> {
        let err = DmaError { addr, len };
        let end = addr.checked_add(len).ok_or(err)?;
        if len == 0 {
            return Ok(0..0);
        }
        if end > self.mem.ram_size() || !self.mem.is_ram(addr) || !self.mem.is_ram(end - 1) {
            return Err(err);
        }
        // The only hole inside RAM is the VGA window: refuse spanning it.
        if self.mem.inner.vga_hole && addr < VGA_WINDOW.end && end > VGA_WINDOW.start {
            return Err(err);
        }
        Ok(addr as usize..end as usize)
    }

    /// Copies guest RAM at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let r = self.check(addr, buf.len() as u64)?;
        let src = self.mem.ram().get(r).ok_or(DmaError {
            addr,
            len: buf.len() as u64,
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Copies `data` into guest RAM at `addr`; translated code there is
    /// invalidated before the CPU runs again.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let r = self.check(addr, data.len() as u64)?;
        let len = data.len() as u64;
        let dst = self
            .mem
            .ram_mut()
            .get_mut(r)
            .ok_or(DmaError { addr, len })?;
        dst.copy_from_slice(data);
        if len > 0 {
            self.mem.note_dma_write(addr, len);
        }
        Ok(())
    }

    pub fn read_u16(&self, addr: u64) -> Result<u16, DmaError> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    pub fn read_u32(&self, addr: u64) -> Result<u32, DmaError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    pub fn read_u64(&self, addr: u64) -> Result<u64, DmaError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    pub fn write_u16(&mut self, addr: u64, v: u16) -> Result<(), DmaError> {
        self.write(addr, &v.to_le_bytes())
    }
    pub fn write_u32(&mut self, addr: u64, v: u32) -> Result<(), DmaError> {
        self.write(addr, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_memory() {
        let mut a = GuestMemory::new(2 << 20).expect("ram");
        let b = a.clone();
        assert!(a.write_u8(0x1234, 0x5A));
        assert_eq!(b.read_u8(0x1234), Some(0x5A));
        assert_eq!(b.read_u8(0xA0000), None, "VGA window is not RAM");
    }

    #[test]
    fn dma_is_bounds_checked_and_tracked() {
        let mem = GuestMemory::new(2 << 20).expect("ram");
        let mut dma = mem.dma();
        assert!(mem.take_dma_writes().is_empty());
        dma.write(0x1000, &[1, 2, 3, 4]).expect("in RAM");
        dma.write(0x1004, &[5]).expect("in RAM");
        assert_eq!(mem.take_dma_writes(), vec![(0x1000, 0x1005)]);
        assert!(mem.take_dma_writes().is_empty());
        let mut buf = [0u8; 5];
        dma.read(0x1000, &mut buf).expect("read");
        assert_eq!(buf, [1, 2, 3, 4, 5]);
        // Past the end, across the VGA hole, wrapping: refused, nothing written.
        assert!(dma.write((2 << 20) - 2, &[0; 4]).is_err());
        assert!(dma.write(0x9FFFF, &[0; 2]).is_err());
        assert!(dma.read(u64::MAX - 1, &mut buf).is_err());
        assert!(mem.take_dma_writes().is_empty());
    }

    #[test]
    fn many_dma_ranges_stay_bounded() {
        let mem = GuestMemory::new(4 << 20).expect("ram");
        let mut dma = mem.dma();
        for i in 0..1000u64 {
            dma.write(0x10_0000 + i * 0x100, &[i as u8]).expect("write");
        }
        let w = mem.take_dma_writes();
        assert!(w.len() <= MAX_DMA_RANGES);
        // Every written byte is covered.
        for i in 0..1000u64 {
            let a = 0x10_0000 + i * 0x100;
            assert!(w.iter().any(|&(s, e)| s <= a && a < e));
        }
    }

    #[test]
    fn bios_maps_high_and_shadows_low() {
        let mut m = GuestMemory::new(2 << 20).expect("ram");
        let mut img = vec![0u8; 64 << 10];
        img[0xFFF0] = 0xEA;
        m.load_bios("x", &img).expect("bios");
        assert_eq!(m.read_u8(0xFFFF_FFF0), Some(0xEA));
        assert_eq!(m.read_u8(0xFFFF0), Some(0xEA));
        assert!(matches!(m.page_kind(0xFFFF_F000), PageKind::Rom(_)));
        assert!(m.load_bios("y", &[0; 1000]).is_err());
    }
}
