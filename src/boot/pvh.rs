//! The PVH direct boot ABI (Xen's docs/misc/pvh.pandoc and
//! xen/include/public/arch-x86/hvm/start_info.h), which Linux implements
//! with CONFIG_PVH: an ELF note `XEN_ELFNOTE_PHYS32_ENTRY` names a 32-bit
//! entry point that takes EBX = the physical address of `hvm_start_info`.
//! This is what `qemu -kernel vmlinux` uses for an ELF kernel.

use super::e820::E820Entry;
use super::elf::Elf;
use super::entry::{reg, Entry, EntryMode};
use super::layout::{PutLe, BOOT_INFO_ADDR, BOOT_INFO_SIZE, GDT_ADDR};

/// Note type of the 32-bit physical entry point (xen/include/public/elfnote.h).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336E_C578;

/// `struct hvm_start_info` (version 1) offsets and size.
mod si {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const NR_MODULES: usize = 12;
    pub const MODLIST_PADDR: usize = 16;
    pub const CMDLINE_PADDR: usize = 24;
    pub const MEMMAP_PADDR: usize = 40;
    pub const MEMMAP_ENTRIES: usize = 48;
}
/// Where the module list and the memory map sit inside the boot-info page.
const MODLIST_OFFSET: usize = 0x40;
const MEMMAP_OFFSET: usize = 0x100;
/// `struct hvm_memmap_table_entry`: addr, size, type, reserved.
const MEMMAP_ENTRY_SIZE: usize = 24;

/// The PVH entry point, if the image has the note. Its descriptor is the
/// address as a 32- or 64-bit value (Linux emits `_ASM_PTR`).
pub fn entry_point(elf: &Elf) -> Option<u64> {
    elf.notes().into_iter().find_map(|n| {
        if n.name != b"Xen" || n.n_type != XEN_ELFNOTE_PHYS32_ENTRY {
            return None;
        }
        match *n.desc {
            [a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d]) as u64),
            [a, b, c, d, e, f, g, h] => Some(u64::from_le_bytes([a, b, c, d, e, f, g, h])),
            _ => None,
        }
        .filter(|&e| e < 1 << 32)
    })
}

/// Builds the boot-info page at [`BOOT_INFO_ADDR`]: `hvm_start_info`, the
/// module list (the initrd, as the first module is by Linux's convention)
/// and the memory map (same types as E820).
pub fn start_info(cmdline_paddr: u64, initrd: Option<(u64, u64)>, map: &[E820Entry]) -> Vec<u8> {
    let mut p = vec![0u8; BOOT_INFO_SIZE as usize];
    p.put_u32(si::MAGIC, XEN_HVM_START_MAGIC_VALUE);
    p.put_u32(si::VERSION, 1);
    p.put_u64(si::CMDLINE_PADDR, cmdline_paddr);
    if let Some((addr, size)) = initrd {
        p.put_u32(si::NR_MODULES, 1);
        p.put_u64(si::MODLIST_PADDR, BOOT_INFO_ADDR + MODLIST_OFFSET as u64);
        p.put_u64(MODLIST_OFFSET, addr);
        p.put_u64(MODLIST_OFFSET + 8, size);
    }
    let max = (p.len() - MEMMAP_OFFSET) / MEMMAP_ENTRY_SIZE;
    let n = map.len().min(max);
    p.put_u64(si::MEMMAP_PADDR, BOOT_INFO_ADDR + MEMMAP_OFFSET as u64);
    p.put_u32(si::MEMMAP_ENTRIES, n as u32);
    for (i, e) in map.iter().take(n).enumerate() {
        let at = MEMMAP_OFFSET + i * MEMMAP_ENTRY_SIZE;
        p.put_u64(at, e.addr);
        p.put_u64(at + 8, e.size);
        p.put_u32(at + 16, e.kind);
    }
    p
}

/// The PVH entry state: 32-bit protected mode, paging off, flat segments,
/// a 32-bit TSS in TR, EBX = start_info.
pub fn entry(rip: u64) -> Entry {
    Entry {
        mode: EntryMode::Protected32,
        rip,
        regs: vec![(reg::RBX, BOOT_INFO_ADDR)],
        tss: true,
        gdt: GDT_ADDR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::e820::machine_map;
    use crate::boot::layout::{le_u32, le_u64};

    #[test]
    fn note_gives_the_entry_point() {
        for desc in [
            0x0100_0010u32.to_le_bytes().to_vec(),
            0x0100_0010u64.to_le_bytes().to_vec(),
        ] {
            let img = crate::boot::elf::tests::build(
                true,
                0x0100_0000,
                0xFFFF_FFFF_8100_0000,
                0x0100_0000,
                &[0x90; 16],
                0,
                Some((b"Xen", 18, &desc)),
            );
            let e = Elf::parse(&img).expect("elf");
            assert_eq!(entry_point(&e), Some(0x0100_0010));
        }
        let img = crate::boot::elf::tests::build(
            true,
            0,
            0x10_0000,
            0x10_0000,
            &[0x90; 16],
            0,
            Some((b"GNU", 18, &[1, 2, 3, 4])),
        );
        assert_eq!(entry_point(&Elf::parse(&img).expect("elf")), None);
    }

    #[test]
    fn start_info_layout() {
        let map = machine_map(32 << 20, 64 << 10, 64 << 10);
        let p = start_info(0x20000, Some((0x1F0_0000, 77)), &map);
        assert_eq!(le_u32(&p, 0), 0x336E_C578);
        assert_eq!(le_u32(&p, 4), 1);
        assert_eq!(le_u32(&p, 12), 1);
        assert_eq!(le_u64(&p, 16), 0x2040);
        assert_eq!(le_u64(&p, 24), 0x20000);
        assert_eq!(le_u64(&p, 0x40), 0x1F0_0000);
        assert_eq!(le_u64(&p, 0x48), 77);
        assert_eq!(le_u64(&p, 40), 0x2100);
        assert_eq!(le_u32(&p, 48), 5);
        assert_eq!(le_u64(&p, 0x100 + 3 * 24), 0x10_0000);
        assert_eq!(le_u32(&p, 0x100 + 3 * 24 + 16), 1);
        assert_eq!(le_u32(&p, 0x100 + 24 + 16), 2);
    }
}
