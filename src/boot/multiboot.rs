//! Multiboot version 1 (Multiboot Specification 0.6.96): the header in the
//! first 8 KiB of the image, ELF or "a.out kludge" loading, modules, and the
//! multiboot information structure. QEMU's `-kernel` speaks this too, which
//! is how kvm-unit-tests' `*.elf` tests are started.

use super::e820::{self, E820Entry};
use super::elf::Elf;
use super::entry::{reg, Entry, EntryMode};
use super::layout::{
    align_up, le_u32, GuestWriter, PutLe, BOOT_INFO_ADDR, BOOT_INFO_SIZE, CMDLINE_ADDR, GDT_ADDR,
    IVT_BDA_AREA, LOADER_RESERVED, PAGE, STRINGS_ADDR, STRINGS_END,
};
use super::{load_segments, ErrorKind};

/// The header magic (3.1.2).
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// EAX at entry (3.2).
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie within this many bytes of the start, 32-bit aligned.
const SEARCH: usize = 8192;

/// Header `flags` (3.1.2).
pub mod flags {
    pub const PAGE_ALIGN: u32 = 1 << 0;
    pub const MEMORY_INFO: u32 = 1 << 1;
    pub const VIDEO_MODE: u32 = 1 << 2;
    pub const AOUT_KLUDGE: u32 = 1 << 16;
    /// Required-feature bits 0-15 vx86 understands.
    pub const KNOWN_REQUIRED: u32 = PAGE_ALIGN | MEMORY_INFO | VIDEO_MODE;
}

/// Information structure `flags` (3.3).
mod info {
    pub const MEM: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODS: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
    pub const OFF_FLAGS: usize = 0;
    pub const OFF_MEM_LOWER: usize = 4;
    pub const OFF_MEM_UPPER: usize = 8;
    pub const OFF_CMDLINE: usize = 16;
    pub const OFF_MODS_COUNT: usize = 20;
    pub const OFF_MODS_ADDR: usize = 24;
    pub const OFF_MMAP_LENGTH: usize = 44;
    pub const OFF_MMAP_ADDR: usize = 48;
    pub const OFF_LOADER_NAME: usize = 64;
    /// Where the module list and the memory map go inside the boot-info page.
    pub const MODS_AT: usize = 0x100;
    pub const MOD_SIZE: usize = 16;
    pub const MMAP_AT: usize = 0x800;
    pub const MMAP_ENTRY: usize = 24;
    /// The entry GDT, when it cannot be at its usual page: the last bytes of
    /// the information page, after room for 84 memory-map entries.
    pub const GDT_AT: usize = 0x1000 - crate::boot::entry::GDT_SIZE as usize;
}

/// A multiboot header found in an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub offset: usize,
    pub flags: u32,
    pub header_addr: u32,
    pub load_addr: u32,
    pub load_end_addr: u32,
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

/// Finds the header: magic, flags and checksum summing to zero.
pub fn find_header(img: &[u8]) -> Result<Option<Header>, ErrorKind> {
    let end = img.len().min(SEARCH);
    let mut off = 0;
    while off + 12 <= end {
        let magic = le_u32(img, off);
        let fl = le_u32(img, off + 4);
        let sum = le_u32(img, off + 8);
        if magic == HEADER_MAGIC && magic.wrapping_add(fl).wrapping_add(sum) == 0 {
            if fl & flags::AOUT_KLUDGE != 0 && img.len() < off + 32 {
                return Err(ErrorKind::Truncated {
                    what: "multiboot header",
                    need: off as u64 + 32,
                    have: img.len() as u64,
                });
            }
            return Ok(Some(Header {
                offset: off,
                flags: fl,
                header_addr: le_u32(img, off + 12),
                load_addr: le_u32(img, off + 16),
                load_end_addr: le_u32(img, off + 20),
                bss_end_addr: le_u32(img, off + 24),
                entry_addr: le_u32(img, off + 28),
            }));
        }
        off += 4;
    }
    Ok(None)
}

/// One `-initrd` entry: its file name, contents and command line string.
pub struct Module<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    pub cmdline: &'a str,
}

/// Splits QEMU's multiboot `-initrd` list: modules separated by commas (",,"
/// stands for a literal comma), each "FILE [ARGS...]"; the whole entry is the
/// module's command line, as QEMU and GRUB pass it. Returns (file, cmdline).
pub fn split_modules(spec: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
                continue;
            }
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let s = s.trim().to_string();
            let file = s.split(' ').next().unwrap_or("").to_string();
            (file, s)
        })
        .collect()
}

/// What a multiboot load produced.
pub struct MultibootLoad {
    pub entry: Entry,
    pub kernel: (u64, u64),
    pub modules: Vec<(u64, u64)>,
}

/// Loads a multiboot kernel and its modules and builds the information
/// structure. A module error comes back as `Err((Some(index), kind))`.
pub fn load(
    w: &mut GuestWriter,
    img: &[u8],
    h: &Header,
    modules: &[Module],
    cmdline: &str,
) -> Result<MultibootLoad, (Option<usize>, ErrorKind)> {
    let k = |e| (None, e);
    if h.flags & 0xFFFF & !flags::KNOWN_REQUIRED != 0 {
        return Err(k(ErrorKind::MultibootFlags(h.flags)));
    }
    // The kernel may use conventional memory from 0x500 up, as under QEMU
    // (a real-mode test at 0x8000, or at 0x1000 where other kernels find
    // the entry GDT).
    w.reserved = IVT_BDA_AREA;
    let loaded = if h.flags & flags::AOUT_KLUDGE != 0 {
        load_kludge(w, img, h)
    } else {
        Elf::parse(img)
            .map_err(ErrorKind::Elf)
            .and_then(|elf| Ok((elf.physical_entry(), load_segments(w, &elf)?)))
    };
    w.reserved = LOADER_RESERVED;
    let (entry, kernel) = loaded.map_err(k)?;

    // Modules after the kernel, page-aligned (always, which also satisfies
    // PAGE_ALIGN); one that does not fit below the EBDA goes to 1 MiB.
    let mut at = align_up(kernel.1, PAGE);
    let mut placed = Vec::new();
    for (i, m) in modules.iter().enumerate() {
        let len = m.data.len() as u64;
        if at < e820::HIGH_MEMORY && w.check("module", at, len.max(1)).is_err() {
            at = at.max(e820::HIGH_MEMORY).max(align_up(kernel.1, PAGE));
        }
        w.check("module", at, len.max(1))
            .map_err(|e| (Some(i), e))?;
        w.write("module", at, m.data).map_err(|e| (Some(i), e))?;
        placed.push((at, at + len));
        at = align_up(at + len, PAGE);
    }

    // The boot information, the command line and the strings go at their
    // usual addresses (0x2000, 0x20000, 0x30000) unless the kernel or a
    // module is there; then after the last of them, as QEMU puts its own.
    let in_the_way = std::iter::once(kernel)
        .chain(placed.iter().copied())
        .any(|(s, e)| s < STRINGS_END && e > BOOT_INFO_ADDR);
    let (info_addr, cmdline_addr, strings_addr) = if in_the_way {
        // Past the EBDA if it does not fit below it (nothing loaded is above `at`).
        let strings_len: u64 = 5 + modules
            .iter()
            .map(|m| m.cmdline.len() as u64 + 1)
            .sum::<u64>();
        let need = BOOT_INFO_SIZE + align_up(cmdline.len() as u64 + 1, 16) + strings_len;
        let base = if w.check("multiboot information", at, need).is_ok() {
            at
        } else {
            at.max(e820::HIGH_MEMORY)
        };
        let cmdline_addr = base + BOOT_INFO_SIZE;
        let strings = align_up(cmdline_addr + cmdline.len() as u64 + 1, 16);
        (base, cmdline_addr, strings)
    } else {
        (BOOT_INFO_ADDR, CMDLINE_ADDR, STRINGS_ADDR)
    };

    let mut mbi = vec![0u8; BOOT_INFO_SIZE as usize];
    let max_mods = (info::MMAP_AT - info::MODS_AT) / info::MOD_SIZE;
    if modules.len() > max_mods {
        return Err(k(ErrorKind::TooManyModules(modules.len(), max_mods)));
    }
    // Strings: the loader name, then each module's command line.
    let mut strings = Vec::new();
    let mut add = |s: &str| -> u64 {
        let a = strings_addr + strings.len() as u64;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        a
    };
    let name_addr = add("vx86");
    for (i, (m, &(start, end))) in modules.iter().zip(&placed).enumerate() {
        let s = add(m.cmdline);
        let at = info::MODS_AT + i * info::MOD_SIZE;
        mbi.put_u32(at, start as u32);
        mbi.put_u32(at + 4, end as u32);
        mbi.put_u32(at + 8, s as u32);
    }
    if strings.len() as u64 > STRINGS_END - STRINGS_ADDR {
        return Err(k(ErrorKind::ModuleStringsTooLong));
    }
    w.write("module strings", strings_addr, &strings)
        .map_err(k)?;
    super::linux::check_cmdline(cmdline, u64::MAX).map_err(k)?;
    w.write_cstr("command line", cmdline_addr, cmdline)
        .map_err(k)?;

    let mmap = mmap_entries(&w.map);
    mbi.put_u32(
        info::OFF_FLAGS,
        info::MEM | info::CMDLINE | info::MODS | info::MMAP | info::LOADER_NAME,
    );
    mbi.put_u32(info::OFF_MEM_LOWER, (e820::EBDA_BASE >> 10) as u32);
    mbi.put_u32(
        info::OFF_MEM_UPPER,
        ((e820::high_ram_end(&w.map) - e820::HIGH_MEMORY) >> 10) as u32,
    );
    mbi.put_u32(info::OFF_CMDLINE, cmdline_addr as u32);
    mbi.put_u32(info::OFF_MODS_COUNT, modules.len() as u32);
    mbi.put_u32(
        info::OFF_MODS_ADDR,
        (info_addr + info::MODS_AT as u64) as u32,
    );
    mbi.put_u32(info::OFF_MMAP_LENGTH, mmap.len() as u32);
    mbi.put_u32(
        info::OFF_MMAP_ADDR,
        (info_addr + info::MMAP_AT as u64) as u32,
    );
    mbi.put_u32(info::OFF_LOADER_NAME, name_addr as u32);
    let n = mmap.len().min(info::GDT_AT - info::MMAP_AT);
    mbi[info::MMAP_AT..info::MMAP_AT + n].copy_from_slice(&mmap[..n]);
    w.write("multiboot information", info_addr, &mbi)
        .map_err(k)?;

    // The entry GDT (which the kernel must replace before it loads a segment
    // register, Multiboot 3.2) at its usual page, or at the end of the
    // information page when the kernel or a module is there.
    let gdt_page = GDT_ADDR..GDT_ADDR + PAGE;
    let gdt = if std::iter::once(kernel)
        .chain(placed.iter().copied())
        .any(|(s, e)| s < gdt_page.end && e > gdt_page.start)
    {
        info_addr + info::GDT_AT as u64
    } else {
        GDT_ADDR
    };

    Ok(MultibootLoad {
        entry: Entry {
            mode: EntryMode::Protected32,
            rip: entry,
            regs: vec![(reg::RAX, BOOTLOADER_MAGIC as u64), (reg::RBX, info_addr)],
            tss: false,
            gdt,
        },
        kernel,
        modules: placed,
    })
}

/// The memory map in multiboot form: each entry preceded by its size (20).
fn mmap_entries(map: &[E820Entry]) -> Vec<u8> {
    let fit = (info::GDT_AT - info::MMAP_AT) / info::MMAP_ENTRY;
    let mut v = Vec::new();
    for e in map.iter().take(fit) {
        v.extend_from_slice(&20u32.to_le_bytes());
        v.extend_from_slice(&e.to_bytes());
    }
    v
}

/// The a.out kludge (3.1.3): the header's address fields say which part of
/// the file goes where, independent of the file's format.
fn load_kludge(
    w: &mut GuestWriter,
    img: &[u8],
    h: &Header,
) -> Result<(u64, (u64, u64)), ErrorKind> {
    let bad = |m: &'static str| ErrorKind::MultibootAddress(m);
    let before = h
        .header_addr
        .checked_sub(h.load_addr)
        .ok_or(bad("header_addr is below load_addr"))?;
    let file_off = (h.offset as u64)
        .checked_sub(before as u64)
        .ok_or(bad("load_addr lies before the start of the file"))?;
    let load = h.load_addr as u64;
    let load_end = if h.load_end_addr == 0 {
        load + (img.len() as u64).saturating_sub(file_off)
    } else {
        h.load_end_addr as u64
    };
    if load_end < load {
        return Err(bad("load_end_addr is below load_addr"));
    }
    let size = load_end - load;
    let need = file_off + size;
    let data = img
        .get(file_off as usize..need as usize)
        .ok_or(ErrorKind::Truncated {
            what: "multiboot image (load_end_addr)",
            need,
            have: img.len() as u64,
        })?;
    let bss_end = if h.bss_end_addr == 0 {
        load_end
    } else {
        h.bss_end_addr as u64
    };
    if bss_end < load_end {
        return Err(bad("bss_end_addr is below load_end_addr"));
    }
    w.check_clear_of_loader("kernel", load, bss_end - load)?;
    w.write("kernel", load, data)?;
    w.zero("kernel bss", load_end, bss_end - load_end)?;
    Ok((h.entry_addr as u64, (load, bss_end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_search_needs_the_checksum() {
        let mut img = vec![0u8; 0x3000];
        let fl = flags::PAGE_ALIGN | flags::MEMORY_INFO;
        img.put_u32(0x1004, HEADER_MAGIC);
        img.put_u32(0x1008, fl);
        img.put_u32(0x100C, 0); // wrong checksum
        assert_eq!(find_header(&img), Ok(None));
        img.put_u32(0x100C, 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(fl));
        assert_eq!(
            find_header(&img).ok().flatten().map(|h| h.offset),
            Some(0x1004)
        );
        // Beyond the first 8 KiB it does not count.
        let mut far = vec![0u8; 0x3000];
        far[0x2000..0x200C].copy_from_slice(&img[0x1004..0x1010]);
        assert_eq!(find_header(&far), Ok(None));
    }

    /// An a.out-kludge image loaded at `base` (the whole file, `len` bytes).
    fn kludge_image(base: u32, len: usize) -> Vec<u8> {
        let mut img = vec![0x90u8; len];
        let fl = flags::AOUT_KLUDGE;
        img.put_u32(0, HEADER_MAGIC);
        img.put_u32(4, fl);
        img.put_u32(8, 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(fl));
        img.put_u32(12, base); // header_addr
        img.put_u32(16, base); // load_addr
        img.put_u32(20, 0); // load_end_addr: the whole file
        img.put_u32(24, 0); // bss_end_addr
        img.put_u32(28, base + 32); // entry_addr
        img
    }

    /// Conventional memory above 0x500 is the kernel's: the information
    /// moves after the kernel when the kernel is at its address, the entry
    /// GDT to the end of the information page when the kernel is on its page.
    #[test]
    fn low_kernels_load_anywhere_above_the_bios_data_area() {
        let mut mem = crate::memory::GuestMemory::new_flat(16 << 20).expect("memory");
        let mut load_at = |base: u32, len: usize| {
            let img = kludge_image(base, len);
            let h = find_header(&img).ok().flatten().expect("header");
            let mut w = GuestWriter::new(&mut mem);
            load(&mut w, &img, &h, &[], "x").map(|l| {
                let ebx = l.entry.regs.iter().find(|r| r.0 == reg::RBX).map(|r| r.1);
                (l.kernel, ebx, l.entry.gdt)
            })
        };
        let gdt_in_info = |info: u64| info + info::GDT_AT as u64;
        assert_eq!(
            load_at(0x8000, 0x800).ok(),
            Some(((0x8000, 0x8800), Some(0x9000), GDT_ADDR))
        );
        // Below the GDT page: the boot data stays where it always is.
        assert_eq!(
            load_at(0x500, 0x100).ok(),
            Some(((0x500, 0x600), Some(BOOT_INFO_ADDR), GDT_ADDR))
        );
        // On the GDT page: the GDT moves, the information stays.
        assert_eq!(
            load_at(0x800, 0x1000).ok(),
            Some((
                (0x800, 0x1800),
                Some(BOOT_INFO_ADDR),
                gdt_in_info(BOOT_INFO_ADDR)
            ))
        );
        // Over both: both move after the kernel.
        assert_eq!(
            load_at(0x1000, 0x2800).ok(),
            Some(((0x1000, 0x3800), Some(0x4000), gdt_in_info(0x4000)))
        );
        let err = load_at(0x400, 0x200).err().map(|e| e.1.to_string());
        assert_eq!(
            err.as_deref(),
            Some("kernel at 0x400..0x600 overlaps the real-mode IVT and BIOS data area at 0x0..0x500")
        );
        // Above the boot data: the usual addresses.
        assert_eq!(
            load_at(0x100000, 0x800).ok(),
            Some(((0x100000, 0x100800), Some(BOOT_INFO_ADDR), GDT_ADDR))
        );
    }

    #[test]
    fn qemu_module_list_syntax() {
        assert_eq!(
            split_modules("a.bin arg1 arg2,b.bin,c,,d.bin x"),
            vec![
                ("a.bin".to_string(), "a.bin arg1 arg2".to_string()),
                ("b.bin".to_string(), "b.bin".to_string()),
                ("c,d.bin".to_string(), "c,d.bin x".to_string()),
            ]
        );
    }
}
