//! The machine's physical memory map as a BIOS reports it through INT 15h
//! E820h (ACPI 6.5 section 15, "System Address Map Interfaces"). A direct
//! kernel boot has no BIOS call to make, so the loaders hand the same map to
//! the kernel in `boot_params.e820_table`, the PVH `hvm_memmap_table` and the
//! multiboot `mmap`: one function builds it for all three.
//!
//! The map follows `crate::memory` and vx86's BIOS (firmware/bios.asm,
//! `s_e820`): conventional RAM up to the 1 KiB EBDA at 0x9FC00, the EBDA
//! itself, the VGA window 0xA0000-0xBFFFF as a hole (MMIO, not listed, as
//! BIOSes do), the BIOS image shadowed just below 1 MiB, extended RAM from
//! 1 MiB to the end of RAM, and the BIOS ROM just below 4 GiB.

/// Address range type 1: usable RAM.
pub const E820_RAM: u32 = 1;
/// Address range type 2: reserved, not to be used by the OS.
pub const E820_RESERVED: u32 = 2;

/// Where the EBDA starts (INT 12h reports 639 KiB of conventional memory).
pub const EBDA_BASE: u64 = 0x9FC00;
/// End of the EBDA and of conventional memory.
pub const EBDA_END: u64 = 0xA0000;
/// Start of extended memory.
pub const HIGH_MEMORY: u64 = 0x10_0000;

/// One address range descriptor (20 bytes in every boot protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

impl E820Entry {
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }

    /// The 20-byte `struct boot_e820_entry` / multiboot body encoding.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..20].copy_from_slice(&self.kind.to_le_bytes());
        b
    }
}

/// The memory map of a machine with `ram_size` bytes of RAM (at least 1 MiB,
/// as `GuestMemory` enforces), `bios_shadow` bytes of BIOS copied below
/// 1 MiB and a `bios_rom`-byte ROM below 4 GiB (both 0 without a BIOS).
/// Entries are sorted and do not overlap.
pub fn machine_map(ram_size: u64, bios_shadow: u64, bios_rom: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_BASE,
            kind: E820_RAM,
        },
        E820Entry {
            addr: EBDA_BASE,
            size: EBDA_END - EBDA_BASE,
            kind: E820_RESERVED,
        },
    ];
    if bios_shadow > 0 {
        map.push(E820Entry {
            addr: HIGH_MEMORY - bios_shadow,
            size: bios_shadow,
            kind: E820_RESERVED,
        });
    }
    if ram_size > HIGH_MEMORY {
        map.push(E820Entry {
            addr: HIGH_MEMORY,
            size: ram_size - HIGH_MEMORY,
            kind: E820_RAM,
        });
    }
    if bios_rom > 0 {
        map.push(E820Entry {
            addr: (1u64 << 32) - bios_rom,
            size: bios_rom,
            kind: E820_RESERVED,
        });
    }
    map
}

/// The usable-RAM entry that holds all of `start..end`, if any.
pub fn ram_containing(map: &[E820Entry], start: u64, end: u64) -> Option<&E820Entry> {
    map.iter()
        .find(|e| e.kind == E820_RAM && e.addr <= start && end <= e.end() && start <= end)
}

/// End of the RAM range that starts at 1 MiB (the top of extended memory).
pub fn high_ram_end(map: &[E820Entry]) -> u64 {
    map.iter()
        .find(|e| e.kind == E820_RAM && e.addr == HIGH_MEMORY)
        .map_or(HIGH_MEMORY, E820Entry::end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_matches_the_bios_layout() {
        let m = machine_map(256 << 20, 64 << 10, 64 << 10);
        assert_eq!(
            m,
            vec![
                E820Entry {
                    addr: 0,
                    size: 0x9FC00,
                    kind: 1
                },
                E820Entry {
                    addr: 0x9FC00,
                    size: 0x400,
                    kind: 2
                },
                E820Entry {
                    addr: 0xF0000,
                    size: 0x10000,
                    kind: 2
                },
                E820Entry {
                    addr: 0x100000,
                    size: (256 << 20) - 0x100000,
                    kind: 1
                },
                E820Entry {
                    addr: 0xFFFF_0000,
                    size: 0x10000,
                    kind: 2
                },
            ]
        );
        assert_eq!(high_ram_end(&m), 256 << 20);
        assert!(ram_containing(&m, 0x100000, 0x200000).is_some());
        assert!(ram_containing(&m, 0x9F000, 0xA0000).is_none());
        assert!(ram_containing(&m, 0x100000, (256 << 20) + 1).is_none());
    }

    #[test]
    fn one_mib_machine_has_no_extended_memory() {
        let m = machine_map(1 << 20, 0, 0);
        assert_eq!(m.len(), 2);
        assert_eq!(high_ram_end(&m), HIGH_MEMORY);
    }
}
