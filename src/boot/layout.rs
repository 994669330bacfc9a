//! Where the loaders put what they build in guest memory, and the checked
//! writer they put it there with.
//!
//! Everything the loader itself creates lives in conventional memory, below
//! the EBDA and clear of the real-mode IVT and BIOS data area (which a kernel
//! may look at, see `bios_data_area`):
//!
//! | address            | contents                                              |
//! |--------------------|-------------------------------------------------------|
//! | `0x1000`           | GDT: null, null, `__BOOT_CS` 0x10, `__BOOT_DS` 0x18, TSS 0x20 (multiboot: see below) |
//! | `0x2000..0x3000`   | PVH `hvm_start_info` or the multiboot information      |
//! | `0x7000..0x8000`   | Linux `boot_params` (the zero page)                    |
//! | `0x8000..0xE000`   | identity page tables for the 64-bit entry (4 GiB, 2 MiB pages) |
//! | `0xE000..0x10000`  | a stack for kernels that want one                      |
//! | `0x20000..0x30000` | the kernel command line                                |
//! | `0x30000..0x90000` | multiboot module strings                               |
//!
//! Kernels and modules are loaded at or above 1 MiB (where every boot
//! protocol here puts them); a kernel segment that reaches into this area is
//! refused rather than silently overwritten. A multiboot kernel is the
//! exception, as under QEMU: it may lie anywhere in conventional memory
//! above the real-mode IVT and BIOS data area (0x500), and its boot
//! information, command line and strings then go after it and its modules
//! instead; the entry GDT goes where the kernel is not (the end of the
//! information page when the kernel or a module is on the GDT page).

use super::e820::{self, E820Entry};
use super::ErrorKind;
use crate::memory::GuestMemory;

pub const GDT_ADDR: u64 = 0x1000;
pub const BOOT_INFO_ADDR: u64 = 0x2000;
pub const BOOT_INFO_SIZE: u64 = 0x1000;
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
pub const PAGE_TABLE_ADDR: u64 = 0x8000;
pub const STACK_TOP: u64 = 0x10000;
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Room for the command line including its NUL.
pub const CMDLINE_MAX: u64 = 0x10000;
pub const STRINGS_ADDR: u64 = 0x30000;
pub const STRINGS_END: u64 = 0x90000;
/// The whole area the loader owns.
pub const LOADER_AREA: std::ops::Range<u64> = GDT_ADDR..STRINGS_END;
/// What a multiboot kernel must leave alone: the real-mode IVT and the
/// BIOS data area (which `bios_data_area` fills). The rest of conventional
/// memory is its to use, as under QEMU; the boot information and the entry
/// GDT then move out of its way (`multiboot::load`).
pub const IVT_BDA_AREA: Reserved = Reserved {
    range: 0..0x500,
    name: "the real-mode IVT and BIOS data area",
};
/// What other kernels must leave alone: everything the loader builds.
pub const LOADER_RESERVED: Reserved = Reserved {
    range: LOADER_AREA,
    name: "the loader's boot data",
};

/// An area of guest memory kernel segments must keep clear of, and what it
/// holds (for the error message).
#[derive(Clone, Debug)]
pub struct Reserved {
    pub range: std::ops::Range<u64>,
    pub name: &'static str,
}

pub const PAGE: u64 = 0x1000;

pub fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a).saturating_mul(a)
}

pub fn align_down(v: u64, a: u64) -> u64 {
    v / a * a
}

/// Writes into guest RAM, refusing anything outside usable RAM as the memory
/// map describes it (the VGA window, the BIOS shadow and the EBDA are not
/// RAM a loader may fill).
pub struct GuestWriter<'a> {
    mem: &'a mut GuestMemory,
    pub map: Vec<E820Entry>,
    /// The area kernel segments must keep clear of (`check_clear_of_loader`):
    /// `LOADER_RESERVED`, or `IVT_BDA_AREA` while a multiboot kernel loads.
    pub reserved: Reserved,
}

impl<'a> GuestWriter<'a> {
    pub fn new(mem: &'a mut GuestMemory) -> Self {
        let map = e820::machine_map(mem.ram_size(), mem.bios_shadow_len(), mem.bios_len());
        GuestWriter {
            mem,
            map,
            reserved: LOADER_RESERVED,
        }
    }

    pub fn ram_size(&self) -> u64 {
        self.mem.ram_size()
    }

    /// Checks that `addr..addr+len` is usable RAM.
    pub fn check(&self, what: &'static str, addr: u64, len: u64) -> Result<(), ErrorKind> {
        let end = addr.checked_add(len).ok_or(ErrorKind::OutsideRam {
            what,
            start: addr,
            end: u64::MAX,
            ram: self.ram_size(),
        })?;
        if e820::ram_containing(&self.map, addr, end).is_none() {
            return Err(ErrorKind::OutsideRam {
                what,
                start: addr,
                end,
                ram: self.ram_size(),
            });
        }
        Ok(())
    }

    /// Checks that a kernel or module range does not reach into the loader's area.
    pub fn check_clear_of_loader(
        &self,
        what: &'static str,
        addr: u64,
        len: u64,
    ) -> Result<(), ErrorKind> {
        self.check(what, addr, len)?;
        let end = addr.saturating_add(len);
        let area = &self.reserved.range;
        if addr < area.end && end > area.start {
            return Err(ErrorKind::OverlapsLoader {
                what,
                start: addr,
                end,
                area: area.clone(),
                holds: self.reserved.name,
            });
        }
        Ok(())
    }

    pub fn write(&mut self, what: &'static str, addr: u64, data: &[u8]) -> Result<(), ErrorKind> {
        self.check(what, addr, data.len() as u64)?;
        let a = addr as usize;
        if let Some(dst) = self.mem.ram_mut().get_mut(a..a + data.len()) {
            dst.copy_from_slice(data);
        }
        Ok(())
    }

    /// Writes into RAM the memory map reserves for firmware (the EBDA),
    /// which only the loader, standing in for the BIOS, may fill.
    pub fn write_firmware_area(&mut self, addr: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.mem.write_u8(addr + i as u64, b);
        }
    }

    pub fn zero(&mut self, what: &'static str, addr: u64, len: u64) -> Result<(), ErrorKind> {
        self.check(what, addr, len)?;
        let a = addr as usize;
        if let Some(dst) = self.mem.ram_mut().get_mut(a..a + len as usize) {
            dst.fill(0);
        }
        Ok(())
    }

    /// Writes a string and its terminating NUL.
    pub fn write_cstr(&mut self, what: &'static str, addr: u64, s: &str) -> Result<(), ErrorKind> {
        let mut b = Vec::with_capacity(s.len() + 1);
        b.extend_from_slice(s.as_bytes());
        b.push(0);
        self.write(what, addr, &b)
    }

    /// Places `size` bytes as high as possible: page-aligned, ending at or
    /// below `top`, starting at or above `bottom`.
    pub fn place_high(
        &self,
        what: &'static str,
        size: u64,
        bottom: u64,
        top: u64,
    ) -> Result<u64, ErrorKind> {
        let top = top.min(e820::high_ram_end(&self.map));
        let fail = ErrorKind::NoRoom {
            what,
            size,
            bottom,
            top,
        };
        let start = align_down(top.checked_sub(size).ok_or(fail.clone())?, PAGE);
        if start < align_up(bottom, PAGE) {
            return Err(fail);
        }
        self.check(what, start, size).map_err(|_| fail)?;
        Ok(start)
    }
}

/// Little-endian field writers for building structures on the host.
pub trait PutLe {
    fn put_u8(&mut self, off: usize, v: u8);
    fn put_u16(&mut self, off: usize, v: u16);
    fn put_u32(&mut self, off: usize, v: u32);
    fn put_u64(&mut self, off: usize, v: u64);
}

impl PutLe for [u8] {
    fn put_u8(&mut self, off: usize, v: u8) {
        if let Some(b) = self.get_mut(off) {
            *b = v;
        }
    }
    fn put_u16(&mut self, off: usize, v: u16) {
        if let Some(b) = self.get_mut(off..off + 2) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        if let Some(b) = self.get_mut(off..off + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        if let Some(b) = self.get_mut(off..off + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Little-endian field readers over file bytes; out-of-range reads give 0
/// (callers check lengths before trusting a field).
pub fn le_u16(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

pub fn le_u32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn le_u64(b: &[u8], o: usize) -> u64 {
    le_u32(b, o) as u64 | (le_u32(b, o + 4) as u64) << 32
}

/// The BIOS data area and EBDA fields a kernel reads after a BIOS would have
/// run (IBM PC/AT Technical Reference, BIOS data area; Linux reads 0x40E and
/// 0x413 in `reserve_bios_regions` and when scanning for the MP table):
/// the COM1-4 and LPT base addresses, the EBDA segment, the base memory size
/// in KiB, and the EBDA's own size byte.
pub fn bios_data_area(w: &mut GuestWriter) -> Result<(), ErrorKind> {
    let mut bda = [0u8; 0x20];
    bda.put_u16(0x00, 0x3F8);
    bda.put_u16(0x02, 0x2F8);
    bda.put_u16(0x04, 0x3E8);
    bda.put_u16(0x06, 0x2E8);
    bda.put_u16(0x0E, (e820::EBDA_BASE >> 4) as u16);
    // Equipment word: 80x25 colour, 4 serial ports, math coprocessor absent.
    bda.put_u16(0x10, 0b0000_1000_0010_0000);
    bda.put_u16(0x13, (e820::EBDA_BASE >> 10) as u16);
    w.write("BIOS data area", 0x400, &bda)?;
    w.write_firmware_area(
        e820::EBDA_BASE,
        &[((e820::EBDA_END - e820::EBDA_BASE) >> 10) as u8],
    );
    Ok(())
}
