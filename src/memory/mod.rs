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

use memmap2::MmapMut;
use thiserror::Error;

/// VGA legacy memory window (IBM VGA Technical Reference: memory map select).
pub const VGA_WINDOW: std::ops::Range<u64> = 0xA0000..0xC0000;
/// Bochs VBE linear framebuffer base (fixed, as on QEMU's ISA machine).
pub const LFB_BASE: u64 = 0xE000_0000;
/// Size of the linear framebuffer window.
pub const LFB_SIZE: u64 = 16 << 20;
/// Largest RAM size this memory map supports (below the LFB).
pub const MAX_RAM: u64 = 0xE000_0000;

pub const PAGE_SIZE: u64 = 4096;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("-m {0}: RAM size must be between 1 MiB and 3584 MiB")]
    BadSize(u64),
    #[error("cannot allocate {0} bytes of guest RAM: {1}")]
    Alloc(u64, std::io::Error),
    #[error("{0}: BIOS image must be 64 KiB, 128 KiB or 256 KiB (it is {1} bytes)")]
    BadBios(String, usize),
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

/// Guest physical memory.
pub struct GuestMemory {
    ram: MmapMut,
    ram_size: u64,
    bios: Vec<u8>,
    bios_base: u64,
    /// False for test harnesses that want flat RAM with no VGA hole.
    vga_hole: bool,
}

impl GuestMemory {
    pub fn new(ram_size: u64) -> Result<Self, MemoryError> {
        if !(1 << 20..=MAX_RAM).contains(&ram_size) {
            return Err(MemoryError::BadSize(ram_size >> 20));
        }
        let ram =
            MmapMut::map_anon(ram_size as usize).map_err(|e| MemoryError::Alloc(ram_size, e))?;
        Ok(Self {
            ram,
            ram_size,
            bios: Vec::new(),
            bios_base: 1 << 32,
            vga_hole: true,
        })
    }

    /// Flat RAM with no device windows (instruction test harnesses).
    pub fn new_flat(ram_size: u64) -> Result<Self, MemoryError> {
        let mut m = Self::new(ram_size)?;
        m.vga_hole = false;
        Ok(m)
    }

    #[inline(always)]
    fn in_hole(&self, addr: u64) -> bool {
        self.vga_hole && VGA_WINDOW.contains(&addr)
    }

    pub fn ram_size(&self) -> u64 {
        self.ram_size
    }

    /// Size of the installed BIOS image (0 before `load_bios`).
    pub fn bios_len(&self) -> u64 {
        self.bios.len() as u64
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
        self.bios = image.to_vec();
        self.bios_base = (1u64 << 32) - len as u64;
        let low = &image[len - self.bios_shadow_len() as usize..];
        let start = 0x100000 - low.len();
        self.ram[start..0x100000].copy_from_slice(low);
        Ok(())
    }

    /// Classifies the page containing physical address `addr`.
    #[inline]
    pub fn page_kind(&mut self, addr: u64) -> PageKind {
        let page = addr & !(PAGE_SIZE - 1);
        if page < self.ram_size && !self.in_hole(page) {
            // SAFETY: `page < ram_size`, so the page lies inside the mapping.
            return PageKind::Ram(unsafe { self.ram.as_mut_ptr().add(page as usize) });
        }
        if page >= self.bios_base && page < (1 << 32) {
            let off = (page - self.bios_base) as usize;
            if off < self.bios.len() {
                // SAFETY: `off < bios.len()` and pages are 4 KiB aligned inside the image.
                return PageKind::Rom(unsafe { self.bios.as_ptr().add(off) });
            }
        }
        PageKind::Mmio
    }

    /// True if `addr` is RAM (not MMIO, not ROM).
    pub fn is_ram(&self, addr: u64) -> bool {
        addr < self.ram_size && !self.in_hole(addr)
    }

    /// Reads one byte of RAM or ROM; `None` for MMIO/unmapped addresses.
    pub fn read_u8(&self, addr: u64) -> Option<u8> {
        if self.is_ram(addr) {
            return self.ram.get(addr as usize).copied();
        }
        if addr >= self.bios_base && addr < (1 << 32) {
            return self.bios.get((addr - self.bios_base) as usize).copied();
        }
        None
    }

    /// Writes one byte of RAM; returns false for ROM/MMIO/unmapped addresses.
    pub fn write_u8(&mut self, addr: u64, v: u8) -> bool {
        if self.is_ram(addr) {
            if let Some(b) = self.ram.get_mut(addr as usize) {
                *b = v;
                return true;
            }
        }
        false
    }

    /// RAM as a byte slice (for loaders and tests).
    pub fn ram(&self) -> &[u8] {
        &self.ram
    }

    /// RAM as a mutable byte slice (for loaders and tests). Writing here bypasses
    /// self-modifying-code tracking: use it only before the CPU runs, or go
    /// through `Cpu::write_phys` afterwards.
    pub fn ram_mut(&mut self) -> &mut [u8] {
        &mut self.ram
    }
}
