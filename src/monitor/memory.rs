//! Guest memory as the monitor sees it: physical reads that never touch a
//! device (MMIO reads can have side effects; they read as 0xFF, as unassigned
//! memory does in QEMU), and a page walk for `x` that reads the guest's page
//! tables without setting their accessed or dirty bits (SDM Vol. 3A 4.8: the
//! processor sets them; a debugger must not).

use crate::cpu::state::{cr0, cr4, efer};
use crate::cpu::Cpu;
use crate::memory::GuestMemory;

/// One physical byte: RAM or ROM, else 0xFF.
pub fn phys_u8(mem: &GuestMemory, addr: u64) -> u8 {
    mem.read_u8(addr).unwrap_or(0xff)
}

fn phys_u64(mem: &GuestMemory, addr: u64) -> u64 {
    (0..8).fold(0u64, |v, i| {
        v | u64::from(phys_u8(mem, addr + i)) << (8 * i)
    })
}

fn phys_u32(mem: &GuestMemory, addr: u64) -> u32 {
    (0..4).fold(0u32, |v, i| {
        v | u32::from(phys_u8(mem, addr + i)) << (8 * i)
    })
}

/// Bits 51:12 of a paging-structure entry (SDM Vol. 3A 4.4, 4.5).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const P: u64 = 1;
const PS: u64 = 1 << 7;

/// The physical address of linear address `lin`, or `None` when it is not
/// mapped. Supervisor view, no access checks: a debugger reads what the
/// tables map.
pub fn translate(cpu: &Cpu, mem: &GuestMemory, lin: u64) -> Option<u64> {
    if cpu.cr0 & cr0::PG == 0 {
        return Some(lin & cpu.a20_mask);
    }
    if cpu.cr4 & cr4::PAE == 0 {
        // 32-bit paging (SDM Vol. 3A 4.3).
        let lin = lin as u32;
        let pde_addr = (cpu.cr3 & 0xffff_f000) | (u64::from(lin >> 22) * 4);
        let pde = phys_u32(mem, pde_addr);
        if pde & 1 == 0 {
            return None;
        }
        if pde & (1 << 7) != 0 && cpu.cr4 & cr4::PSE != 0 {
            let high = u64::from((pde >> 13) & 0xff) << 32;
            return Some(high | u64::from(pde & 0xffc0_0000) | u64::from(lin & 0x3f_ffff));
        }
        let pte_addr = u64::from(pde & 0xffff_f000) | (u64::from((lin >> 12) & 0x3ff) * 4);
        let pte = phys_u32(mem, pte_addr);
        if pte & 1 == 0 {
            return None;
        }
        return Some(u64::from(pte & 0xffff_f000) | u64::from(lin & 0xfff));
    }
    let long = cpu.efer & efer::LMA != 0;
    let mut table;
    let mut levels: &[u32] = &[30, 21, 12];
    if long {
        // 4-level paging (SDM Vol. 3A 4.5).
        table = cpu.cr3 & ADDR_MASK;
        levels = &[39, 30, 21, 12];
    } else {
        // PAE paging (SDM Vol. 3A 4.4): the PDPTEs from CR3 bits 31:5.
        let lin = lin & 0xffff_ffff;
        let pdpte = phys_u64(mem, (cpu.cr3 & 0xffff_ffe0) + (lin >> 30) * 8);
        if pdpte & P == 0 {
            return None;
        }
        table = pdpte & ADDR_MASK;
        levels = &levels[1..];
    }
    let lin = if long { lin } else { lin & 0xffff_ffff };
    for &shift in levels {
        let e = phys_u64(mem, table + ((lin >> shift) & 0x1ff) * 8);
        if e & P == 0 {
            return None;
        }
        let page = 1u64 << shift;
        if shift == 12 || (e & PS != 0 && shift <= 30) {
            return Some((e & ADDR_MASK & !(page - 1)) | (lin & (page - 1)));
        }
        table = e & ADDR_MASK;
    }
    None
}

/// `len` bytes at linear (`virt`) or physical address `addr`; `None` when a
/// linear page is not mapped.
pub fn read(cpu: &Cpu, mem: &GuestMemory, addr: u64, len: usize, virt: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut a = addr;
    while out.len() < len {
        let in_page = (0x1000 - (a & 0xfff)) as usize;
        let n = in_page.min(len - out.len());
        let phys = if virt { translate(cpu, mem, a)? } else { a };
        out.extend((0..n as u64).map(|i| phys_u8(mem, phys.wrapping_add(i))));
        a = a.wrapping_add(n as u64);
    }
    Some(out)
}
