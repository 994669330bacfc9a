//! The CPU state a loader hands to a kernel: a GDT in guest memory, the
//! identity page tables of the 64-bit entry, and the registers, set through
//! the CPU's own descriptor-loading paths (`read_desc`/`set_cs`/`load_seg`)
//! so the hidden segment caches are exactly what the in-memory GDT says.
//!
//! Linux boot protocol (Documentation/arch/x86/boot.rst, "32-bit Boot
//! Protocol" and "64-bit Boot Protocol"): a GDT with 4 GiB flat `__BOOT_CS`
//! (0x10, execute/read) and `__BOOT_DS` (0x18, read/write); CS = 0x10 and
//! DS = ES = SS = 0x18; interrupts disabled. The 32-bit entry runs with
//! paging off; the 64-bit entry in 64-bit mode with the kernel, the zero page
//! and the command line identity-mapped. PVH (Xen's docs/misc/pvh.pandoc)
//! and multiboot (Multiboot Specification 0.6.96, 3.2 "Machine state") both
//! want 32-bit protected mode with flat segments and paging off as well; PVH
//! also wants TR to hold a 32-bit TSS.

use super::layout::{GuestWriter, PutLe, PAGE_TABLE_ADDR, STACK_TOP};
use super::ErrorKind;
use crate::cpu::flags::Flags;
use crate::cpu::state::{attr, cr0, cr4, efer, DescTable, Segment, DS, ES, FS, GS, SS};
use crate::cpu::{Cpu, NullBus};

/// `__BOOT_CS` and `__BOOT_DS` (arch/x86/include/asm/segment.h: GDT entries 2 and 3).
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
/// The TSS descriptor PVH's TR points at.
pub const BOOT_TSS: u16 = 0x20;
const GDT_LIMIT: u32 = 5 * 8 - 1;
/// The GDT's size in bytes.
pub const GDT_SIZE: u64 = GDT_LIMIT as u64 + 1;

/// Flat 4 GiB descriptors (SDM Vol. 3A 3.4.5): G=1, limit 0xFFFFF, P=1, DPL 0.
const CODE32: u64 = 0x00CF_9A00_0000_FFFF;
const CODE64: u64 = 0x00AF_9A00_0000_FFFF;
const DATA: u64 = 0x00CF_9200_0000_FFFF;
/// A busy 32-bit TSS (type 11) at base 0, limit 0x67, as PVH specifies.
const TSS32_BUSY: u64 = 0x0000_8B00_0000_0067;

/// Page-table entry bits (SDM Vol. 3A 4.5): present, writable, 2 MiB page.
const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_PS: u64 = 1 << 7;

/// Which mode the kernel entry runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 32-bit protected mode, paging off.
    Protected32,
    /// IA-32e 64-bit mode, identity-mapped low 4 GiB.
    Long64,
}

/// Register numbers (SDM Vol. 2A 2.1.5, the ModR/M encoding order).
pub mod reg {
    pub const RAX: usize = 0;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RSI: usize = 6;
}

/// The state a boot protocol enters a kernel with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mode: EntryMode,
    pub rip: u64,
    /// General registers to set (everything else is zero).
    pub regs: Vec<(usize, u64)>,
    /// Load TR with a busy 32-bit TSS (PVH).
    pub tss: bool,
    /// Where the GDT goes: `GDT_ADDR`, unless a multiboot kernel is there.
    pub gdt: u64,
}

/// Writes the GDT (and for the 64-bit entry, the page tables) and puts the
/// CPU in the entry state.
pub fn enter(cpu: &mut Cpu, e: &Entry) -> Result<(), ErrorKind> {
    let mut w = GuestWriter::new(&mut cpu.mem);
    let code = match e.mode {
        EntryMode::Protected32 => CODE32,
        EntryMode::Long64 => CODE64,
    };
    let mut gdt = [0u8; GDT_LIMIT as usize + 1];
    gdt.put_u64(BOOT_CS as usize, code);
    gdt.put_u64(BOOT_DS as usize, DATA);
    gdt.put_u64(BOOT_TSS as usize, TSS32_BUSY);
    w.write("GDT", e.gdt, &gdt)?;
    if e.mode == EntryMode::Long64 {
        identity_page_tables(&mut w)?;
    }

    cpu.reset();
    cpu.cache.clear();
    cpu.gdtr = DescTable {
        base: e.gdt,
        limit: GDT_LIMIT,
    };
    cpu.idtr = DescTable { base: 0, limit: 0 };
    cpu.cr0 = cr0::PE | cr0::ET;
    if e.mode == EntryMode::Long64 {
        // SDM Vol. 3A 10.8.5: PAE, CR3, EFER.LME, then CR0.PG activates IA-32e (LMA).
        cpu.cr4 = cr4::PAE;
        cpu.cr3 = PAGE_TABLE_ADDR;
        cpu.efer = efer::LME | efer::LMA;
        cpu.cr0 |= cr0::PG;
    }
    cpu.flags = Flags::default();
    cpu.update_mode();
    cpu.tlb.flush_all();
    let mut bus = NullBus;
    let setup = |f: crate::cpu::Fault| ErrorKind::CpuSetup(format!("{f:?}"));
    let d = cpu.read_desc(&mut bus, BOOT_CS).map_err(setup)?;
    cpu.set_cs(BOOT_CS, &d, 0);
    for s in [DS, ES, SS, FS, GS] {
        cpu.load_seg(&mut bus, s, BOOT_DS).map_err(setup)?;
    }
    if e.tss {
        cpu.tr = Segment {
            selector: BOOT_TSS,
            base: 0,
            limit: 0x67,
            attr: attr::P | 11,
        };
    }
    cpu.gpr = [0; 16];
    cpu.gpr[reg::RSP] = STACK_TOP;
    for &(r, v) in &e.regs {
        if let Some(g) = cpu.gpr.get_mut(r) {
            *g = v;
        }
    }
    cpu.rip = e.rip;
    cpu.update_mode();
    cpu.tlb.flush_all();
    Ok(())
}

/// PML4 -> one PDPT -> four page directories of 2 MiB pages: the low 4 GiB
/// identity-mapped, which covers all RAM this machine can have, the kernel's
/// `init_size` window, the zero page and the command line.
fn identity_page_tables(w: &mut GuestWriter) -> Result<(), ErrorKind> {
    let pml4 = PAGE_TABLE_ADDR;
    let pdpt = pml4 + 0x1000;
    let pd0 = pdpt + 0x1000;
    let mut t = vec![0u8; 6 * 0x1000];
    t.put_u64(0, pdpt | PTE_P | PTE_RW);
    for i in 0..4u64 {
        t.put_u64(0x1000 + 8 * i as usize, (pd0 + 0x1000 * i) | PTE_P | PTE_RW);
    }
    for i in 0..(4 * 512u64) {
        t.put_u64(0x2000 + 8 * i as usize, (i << 21) | PTE_P | PTE_RW | PTE_PS);
    }
    w.write("page tables", pml4, &t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::layout::GDT_ADDR;
    use crate::cpu::state::CS;
    use crate::memory::GuestMemory;

    fn cpu() -> Cpu {
        Cpu::new(GuestMemory::new(16 << 20).expect("memory"))
    }

    #[test]
    fn protected32_entry_is_flat_with_paging_off() {
        let mut c = cpu();
        enter(
            &mut c,
            &Entry {
                mode: EntryMode::Protected32,
                rip: 0x10_0000,
                regs: vec![(reg::RSI, 0x7000)],
                tss: true,
                gdt: GDT_ADDR,
            },
        )
        .expect("enter");
        assert!(c.pmode && !c.long64);
        assert_eq!(c.code_bits, 32);
        assert_eq!(c.cr0 & (cr0::PE | cr0::PG), cr0::PE);
        assert_eq!(c.seg[CS].selector, 0x10);
        assert_eq!((c.seg[CS].base, c.seg[CS].limit), (0, 0xFFFF_FFFF));
        assert_eq!(c.seg[SS].selector, 0x18);
        assert!(c.seg[SS].big());
        assert_eq!(c.gpr[reg::RSI], 0x7000);
        assert_eq!(c.rflags(), 2);
        assert_eq!(
            (c.tr.selector, c.tr.limit, c.tr.attr & 0xF),
            (0x20, 0x67, 11)
        );
    }

    #[test]
    fn long64_entry_identity_maps_low_memory() {
        let mut c = cpu();
        enter(
            &mut c,
            &Entry {
                mode: EntryMode::Long64,
                rip: 0x10_0200,
                regs: vec![(reg::RSI, 0x7000)],
                tss: false,
                gdt: GDT_ADDR,
            },
        )
        .expect("enter");
        assert!(c.long64);
        assert_eq!(c.code_bits, 64);
        let mut bus = NullBus;
        for lin in [0u64, 0x7000, 0x20_0000, 0xF0_0123, 0xFFFF_F000] {
            let p = c.translate(&mut bus, lin, crate::cpu::mmu::Access::Read, false);
            assert_eq!(p, Ok(lin), "{lin:#x}");
        }
    }
}
