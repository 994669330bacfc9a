//! What PC firmware does to the PCI bus before an OS runs (SeaBIOS's
//! `pci_setup` under QEMU, vx86's BIOS on its own), done by vx86 itself for
//! direct kernel boots where no BIOS runs: every BAR gets an address (I/O
//! from C000h up, memory from [`MEM_WINDOW`]'s start up, each aligned to its
//! size, largest first), decoding and bus mastering are enabled, and the
//! Interrupt Line register names the ISA IRQ the function's INTx pin is
//! routed to (PCI 3.0 section 6.2.4: it is for the OS's information only).

use super::{host::DEFAULT_PIRQ_IRQS, BarKind, PciAddr};
use crate::platform::{DevId, Platform};

/// Where I/O BARs go.
pub const IO_WINDOW: std::ops::Range<u64> = 0xC000..0x1_0000;
/// Where 32-bit memory BARs go: above the VBE framebuffer, below the I/O
/// APIC's page (FEC00000h).
pub const MEM_WINDOW: std::ops::Range<u64> = 0xFE00_0000..0xFEC0_0000;

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a.max(1)).saturating_mul(a.max(1))
}

/// Assigns every function's BARs and interrupt line; returns what it did as
/// `(function, BAR index, address)` for diagnostics. BARs that do not fit
/// stay unassigned (decoding nothing), as firmware leaves them.
pub fn assign(p: &mut Platform) -> Vec<(PciAddr, usize, u64)> {
    let mut done = Vec::new();
    let fns = p.pci_functions();
    let mut bars: Vec<(PciAddr, DevId, usize, BarKind, u64)> = Vec::new();
    for &(addr, id) in &fns {
        let Some(f) = p.pci_function(id) else {
            continue;
        };
        let cfg = f.config();
        for i in 0..6 {
            if let Some(kind) = cfg.bar_kind(i) {
                bars.push((addr, id, i, kind, cfg.bar_size(i)));
            }
        }
    }
    // Largest first keeps every BAR naturally aligned with no holes to speak of.
    bars.sort_by(|a, b| b.4.cmp(&a.4).then(a.0.cmp(&b.0)).then(a.2.cmp(&b.2)));
    let (mut io, mut mem) = (IO_WINDOW.start, MEM_WINDOW.start);
    for (addr, id, i, kind, size) in bars {
        let (next, window) = match kind {
            BarKind::Io => (&mut io, IO_WINDOW),
            BarKind::Mem32 => (&mut mem, MEM_WINDOW),
        };
        let at = align_up(*next, size);
        if at + size > window.end {
            continue;
        }
        *next = at + size;
        p.pci_config_write_direct(id, super::BAR0 + 4 * i, 4, at as u32);
        done.push((addr, i, at));
    }
    for (addr, id) in fns {
        let Some(f) = p.pci_function(id) else {
            continue;
        };
        let pin = f.config().interrupt_pin();
        let has_bars = (0..6).any(|i| f.config().bar_kind(i).is_some());
        if pin != 0 {
            let pirq = usize::from(super::pirq_line(addr.slot, pin) - super::PIRQ_LINE_BASE);
            let irq = DEFAULT_PIRQ_IRQS[pirq & 3];
            p.pci_config_write_direct(id, super::INTERRUPT_LINE, 1, u32::from(irq));
        }
        if has_bars {
            let cmd = super::CMD_IO | super::CMD_MEMORY | super::CMD_BUS_MASTER;
            p.pci_config_write_direct(id, super::COMMAND, 2, u32::from(cmd));
        }
    }
    done
}
