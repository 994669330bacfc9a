//! ACPI tables for direct kernel boots on a machine with the APIC (ACPI 6.5
//! chapter 5, "ACPI Software Programming Model"): what QEMU's firmware
//! would hand the kernel, built by vx86 itself because no firmware runs.
//!
//! At 0xE0000, inside the BIOS area the OS searches for the RSDP (5.2.5.1):
//! the RSDP (revision 0, pointing to the RSDT), the FACS, the RSDT, the
//! FADT (revision 3, for the reset register), the MADT and the DSDT.
//!
//! The DSDT describes what QEMU's i440FX DSDT does that vx86 has: the PCI
//! root bridge `\_SB.PCI0` (PNP0A03) with its windows in `_CRS` and a
//! `_PRT` that routes every slot's INTA-D to the ISA IRQ the PIIX3's PIRQ
//! routing already gives it (10, 10, 11, 11 by PIRQ, the values vx86's
//! firmware setup writes into each function's Interrupt Line), the `\_GPE`
//! scope for the GPE0 block at 0xAFE0 (`crate::devices::acpi_pm`), and
//! `_S5` so that the kernel can power the machine off.
//!
//! The MADT is QEMU's for one CPU (hw/i386/acpi-common.c): the local APIC,
//! the I/O APIC at GSI 0, ISA IRQ0 overridden to GSI 2, the PCI link IRQs
//! 5, 9, 10 and 11 level triggered active high, and LINT1 as NMI.

use super::aml;
use crate::devices::acpi_pm::{
    GPE0_BLK, GPE0_BLK_LEN, PM1A_CNT_BLK, PM1A_EVT_BLK, PM_TMR_BLK, SCI_IRQ,
};
use crate::memory::GuestMemory;

/// Where the tables go (below a 64 KiB BIOS's shadow at 0xF0000).
pub const TABLES_BASE: u64 = 0xE0000;
const RSDP_AT: u64 = TABLES_BASE;
const FACS_AT: u64 = TABLES_BASE + 0x40;
const RSDT_AT: u64 = TABLES_BASE + 0x80;
const FADT_AT: u64 = TABLES_BASE + 0xC0;
const MADT_AT: u64 = TABLES_BASE + 0x1C0;
const DSDT_AT: u64 = TABLES_BASE + 0x400;
/// End of the tables area (the DSDT's room: 7 KiB).
pub const TABLES_END: u64 = TABLES_BASE + 0x2000;

const OEM_ID: &[u8; 6] = b"VX86  ";
const OEM_TABLE_ID: &[u8; 8] = b"VX86PC  ";

/// ISA IRQs QEMU's PCI links use (level triggered, active high in the MADT).
const PCI_LINK_IRQS: [u8; 4] = [5, 9, 10, 11];
/// The PIIX3 reset control register (FADT RESET_REG) and its reset value.
const RESET_PORT: u64 = crate::pci::host::RESET_CONTROL_PORT as u64;
const RESET_VALUE: u8 = 0x06;

/// Sets the checksum byte at `at` so the bytes sum to 0.
fn checksum(b: &mut [u8], at: usize) {
    if let Some(x) = b.get_mut(at) {
        *x = 0;
    }
    let sum = b.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    if let Some(x) = b.get_mut(at) {
        *x = 0u8.wrapping_sub(sum);
    }
}

/// A table: the 36-byte system description header (5.2.6) and `body`.
fn sdt(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"VX86"); // creator ID
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    checksum(&mut t, 9);
    t
}

/// RSDP revision 0 (5.2.5.3): 20 bytes.
fn rsdp() -> Vec<u8> {
    let mut r = Vec::with_capacity(20);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(OEM_ID);
    r.push(0); // revision 0: ACPI 1.0, RSDT only
    r.extend_from_slice(&(RSDT_AT as u32).to_le_bytes());
    checksum(&mut r, 8);
    r
}

/// FACS (5.2.10): 64 bytes, no global lock, no waking vector.
fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f
}

/// A Generic Address Structure (5.2.3.2) in system I/O space.
fn gas_io(bits: u8, access: u8, port: u64) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O
    g[1] = bits;
    g[3] = access;
    g[4..12].copy_from_slice(&port.to_le_bytes());
    g
}

/// FADT revision 3 (5.2.9, Table 5.9): 244 bytes.
fn fadt() -> Vec<u8> {
    let mut b = vec![0u8; 244 - 36];
    let put32 =
        |b: &mut [u8], off: usize, v: u32| b[off - 36..off - 32].copy_from_slice(&v.to_le_bytes());
    put32(&mut b, 36, FACS_AT as u32); // FIRMWARE_CTRL
    put32(&mut b, 40, DSDT_AT as u32); // DSDT
    b[46 - 36..48 - 36].copy_from_slice(&u16::from(SCI_IRQ).to_le_bytes()); // SCI_INT
                                                                            // SMI_CMD 0: no SMM, always in ACPI mode.
    put32(&mut b, 56, u32::from(PM1A_EVT_BLK));
    put32(&mut b, 64, u32::from(PM1A_CNT_BLK));
    put32(&mut b, 76, u32::from(PM_TMR_BLK));
    put32(&mut b, 80, u32::from(GPE0_BLK));
    b[88 - 36] = 4; // PM1_EVT_LEN
    b[89 - 36] = 2; // PM1_CNT_LEN
    b[91 - 36] = 4; // PM_TMR_LEN
    b[92 - 36] = GPE0_BLK_LEN;
    b[96 - 36..98 - 36].copy_from_slice(&0x0FFFu16.to_le_bytes()); // no C2
    b[98 - 36..100 - 36].copy_from_slice(&0x0FFFu16.to_le_bytes()); // no C3
    b[108 - 36] = 0x32; // CENTURY: CMOS index
                        // IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042.
    b[109 - 36..111 - 36].copy_from_slice(&0x0003u16.to_le_bytes());
    // Flags: WBINVD, PROC_C1, SLP_BUTTON (no sleep button), RESET_REG_SUP;
    // PWR_BUTTON (bit 4) clear: the power button is the fixed-feature one in
    // PM1 (4.8.2.2.1), which `system_powerdown` presses.
    let flags: u32 = (1 << 0) | (1 << 2) | (1 << 5) | (1 << 10);
    put32(&mut b, 112, flags);
    b[116 - 36..128 - 36].copy_from_slice(&gas_io(8, 1, RESET_PORT));
    b[128 - 36] = RESET_VALUE;
    sdt(b"FACP", 3, &b)
}

/// MADT (5.2.12) for one CPU.
fn madt() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(crate::devices::lapic::DEFAULT_BASE as u32).to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT: 8259s present
                                              // Processor local APIC: UID 0, APIC ID 0, enabled.
    b.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
    // I/O APIC: ID 0, address, GSI base 0.
    b.extend_from_slice(&[1, 12, 0, 0]);
    b.extend_from_slice(&(crate::devices::ioapic::DEFAULT_BASE as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    let iso = |b: &mut Vec<u8>, irq: u8, gsi: u32, flags: u16| {
        b.extend_from_slice(&[2, 10, 0, irq]);
        b.extend_from_slice(&gsi.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
    };
    iso(&mut b, 0, 2, 0);
    for irq in PCI_LINK_IRQS {
        // Active high (01b), level triggered (11b << 2).
        iso(&mut b, irq, u32::from(irq), 0x000D);
    }
    // Local APIC NMI: all processors, LINT1.
    b.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
    sdt(b"APIC", 1, &b)
}

/// The PCI root bridge's `_CRS` (6.4): bus 0-FFh; I/O 0-CF7h and D00h-FFFFh
/// (the configuration ports CF8h-CFFh are the bridge's own, as the IO
/// descriptor says); the legacy VGA window; and the 32-bit hole from above
/// the Bochs VBE framebuffer (which is not a PCI BAR on vx86, so no BAR
/// must be placed over it) to the I/O APIC, where vx86's firmware setup
/// puts the BARs (`crate::pci::firmware::MEM_WINDOW`) and where Linux
/// places the BARs of a function added at run time.
fn pci0_crs() -> Vec<u8> {
    use crate::memory::{LFB_BASE, LFB_SIZE};
    let mem_end = crate::devices::ioapic::DEFAULT_BASE as u32 - 1;
    let r = [
        aml::res_word_bus(0, 0xFF),
        aml::res_io(0xCF8, 0xCF8, 1, 8),
        aml::res_dword_io(0, 0xCF7),
        aml::res_dword_io(0xD00, 0xFFFF),
        aml::res_dword_memory(0xA_0000, 0xB_FFFF),
        aml::res_dword_memory((LFB_BASE + LFB_SIZE) as u32, mem_end),
        aml::res_end(),
    ]
    .concat();
    aml::buffer(&r)
}

/// `_PRT` (6.2.13) with static GSIs: INTA-D of every slot to the ISA IRQ
/// its PIRQ is routed to ([`crate::pci::pirq_line`] and the PIIX3's
/// default routing), the same IRQs the Interrupt Line registers name.
fn pci0_prt() -> Vec<u8> {
    use crate::pci::{host::DEFAULT_PIRQ_IRQS, pirq_line, PIRQ_LINE_BASE};
    let mut entries = Vec::new();
    for slot in 0..32u8 {
        for pin in 0..4u8 {
            let pirq = usize::from(pirq_line(slot, pin + 1) - PIRQ_LINE_BASE) & 3;
            entries.push(aml::package(&[
                aml::dword((u32::from(slot) << 16) | 0xFFFF),
                aml::int(u64::from(pin)),
                aml::int(0),
                aml::int(u64::from(DEFAULT_PIRQ_IRQS[pirq])),
            ]));
        }
    }
    aml::package(&entries)
}

/// A hot-pluggable slot's device name: `S` and its devfn in hex (slot 1 is
/// `S08`), as QEMU names them.
fn slot_name(slot: u8) -> String {
    format!("S{:02X}", slot << 3)
}

/// The PCI hotplug objects in `\_SB.PCI0` (QEMU's PIIX4 ACPI hotplug):
/// the register block at 0xAE00 as fields, one device per hot-pluggable
/// slot (`_ADR`, `_SUN`, `_EJ0` writing the slot's B0EJ bit), and `PCNT`,
/// which `\_GPE._E01` calls: Notify (Sxx, 1) (device check: something was
/// inserted) for each PCI_UP bit and Notify (Sxx, 3) (eject request) for
/// each PCI_DOWN bit (ACPI 6.5 5.6.6, table 5.166).
fn pci0_hotplug(slots: u32) -> Vec<u8> {
    use crate::devices::acpi_pm::{PCIHP_BASE, PCIHP_LEN};
    use aml::{
        and, arg, call, device, field, if_, int, local, method, name, name_decl, notify, op_region,
        shift_left, store,
    };
    let mut v = [
        op_region(
            "PCST",
            aml::REGION_SYSTEM_IO,
            u64::from(PCIHP_BASE),
            u64::from(PCIHP_LEN),
        ),
        field(
            "PCST",
            aml::FIELD_DWORD_ACC,
            &[("PCIU", 32), ("PCID", 32), ("B0EJ", 32), ("PRMV", 32)],
        ),
        // PCEJ (slot): the OS is done with the slot's device.
        method(
            "PCEJ",
            1,
            &store(&shift_left(&int(1), &arg(0)), &name("B0EJ")),
        ),
    ]
    .concat();
    let mut pcnt = [
        store(&name("PCIU"), &local(0)),
        store(&name("PCID"), &local(1)),
    ]
    .concat();
    for slot in (0..32u8).filter(|s| slots & (1 << s) != 0) {
        let n = slot_name(slot);
        let bit = int(1u64 << slot);
        v.extend(device(
            &n,
            &[
                name_decl("_ADR", &int(u64::from(slot) << 16)),
                name_decl("_SUN", &int(u64::from(slot))),
                method("_EJ0", 1, &call("PCEJ", &[int(u64::from(slot))])),
            ]
            .concat(),
        ));
        pcnt.extend(if_(&and(&local(0), &bit), &notify(&n, 1)));
        pcnt.extend(if_(&and(&local(1), &bit), &notify(&n, 3)));
    }
    v.extend(method("PCNT", 0, &pcnt));
    v
}

/// The DSDT (5.2.11.1); `hotplug` has a bit for each hot-pluggable slot.
fn dsdt(hotplug: u32) -> Vec<u8> {
    use aml::{call, device, eisa_id, int, method, name_decl, package, scope, string};
    let pci0 = [
        name_decl("_HID", &eisa_id("PNP0A03")),
        name_decl("_ADR", &int(0)),
        name_decl("_UID", &int(0)),
        name_decl("_BBN", &int(0)),
        name_decl("_CRS", &pci0_crs()),
        name_decl("_PRT", &pci0_prt()),
        pci0_hotplug(hotplug),
    ]
    .concat();
    let gpe = [
        name_decl("_HID", &string("ACPI0006")),
        // GPE0 bit 1, edge: a PCI hotplug event.
        method("_E01", 0, &call("\\_SB.PCI0.PCNT", &[])),
    ]
    .concat();
    let aml = [
        scope("\\_SB", &device("PCI0", &pci0)),
        scope("\\_GPE", &gpe),
        // SLP_TYP 0 is S5 on the PIIX4, as in QEMU's DSDT.
        name_decl("_S5", &package(&[int(0), int(0), int(0), int(0)])),
    ]
    .concat();
    sdt(b"DSDT", 1, &aml)
}

/// The RSDT (5.2.7) listing the FADT and the MADT.
fn rsdt() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(FADT_AT as u32).to_le_bytes());
    b.extend_from_slice(&(MADT_AT as u32).to_le_bytes());
    sdt(b"RSDT", 1, &b)
}

/// Every table and where it goes; `hotplug` has a bit for each
/// hot-pluggable PCI slot.
pub fn tables(hotplug: u32) -> Vec<(u64, Vec<u8>)> {
    vec![
        (RSDP_AT, rsdp()),
        (FACS_AT, facs()),
        (RSDT_AT, rsdt()),
        (FADT_AT, fadt()),
        (MADT_AT, madt()),
        (DSDT_AT, dsdt(hotplug)),
    ]
}

/// Writes the tables into guest RAM at 0xE0000; false when that area is not
/// free RAM (a BIOS image larger than 64 KiB is shadowed there). `hotplug`
/// has a bit for each hot-pluggable PCI slot.
pub fn install(mem: &mut GuestMemory, hotplug: u32) -> bool {
    if 0x10_0000 - mem.bios_shadow_len() < TABLES_END {
        return false;
    }
    let ram = mem.ram_mut();
    for (at, t) in tables(hotplug) {
        let a = at as usize;
        match ram.get_mut(a..a + t.len()) {
            Some(dst) => dst.copy_from_slice(&t),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }

    #[test]
    fn tables_fit_their_slots_and_check_sum_to_zero() {
        let t = tables(0xFFFF_FFFC);
        for w in t.windows(2) {
            assert!(w[0].0 + w[0].1.len() as u64 <= w[1].0, "{:x}", w[0].0);
        }
        let (last, body) = t.last().expect("tables");
        assert!(last + body.len() as u64 <= TABLES_END);
        assert_eq!(sum(&rsdp()), 0);
        for (_, b) in &t[2..] {
            assert_eq!(sum(b), 0, "{}", String::from_utf8_lossy(&b[0..4]));
            assert_eq!(
                u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize,
                b.len()
            );
        }
        assert_eq!(fadt().len(), 244);
    }

    #[test]
    fn fadt_points_at_the_gpe0_block() {
        let f = fadt();
        assert_eq!(&f[80..84], &u32::from(GPE0_BLK).to_le_bytes());
        assert_eq!(f[92], 4);
    }

    #[test]
    fn dsdt_has_the_pci_root_its_routing_and_s5() {
        let d = dsdt(1 << 5);
        let has = |pat: &[u8]| d.windows(pat.len()).any(|w| w == pat);
        // Slot 5: Device (S28) with _ADR 0x00050000, and PCNT's notifies.
        assert!(has(b"S28_\x08_ADR\x0C\x00\x00\x05\x00\x08_SUN\x0A\x05"));
        assert!(has(&[
            0xA0, 0x0C, 0x7B, 0x60, 0x0A, 0x20, 0x00, 0x86, b'S', b'2', b'8', b'_', 0x01
        ]));
        assert!(has(&[
            0xA0, 0x0D, 0x7B, 0x61, 0x0A, 0x20, 0x00, 0x86, b'S', b'2', b'8', b'_', 0x0A, 0x03
        ]));
        // \_SB.PCI0 with EISAID PNP0A03.
        assert!(has(b"PCI0\x08_HID\x0C\x41\xD0\x0A\x03"));
        assert!(has(b"_PRT"));
        assert!(has(b"_S5_"));
        // Slot 3 INTA (the first card): PIRQC, IRQ 11 as the firmware
        // setup's Interrupt Line says.
        assert!(has(&[
            0x12, 0x0B, 0x04, 0x0C, 0xFF, 0xFF, 0x03, 0x00, 0x00, 0x00, 0x0A, 0x0B
        ]));
        // The 32-bit window ends below the I/O APIC.
        assert!(has(&0xFEBF_FFFFu32.to_le_bytes()));
    }

    #[test]
    fn madt_lists_the_cpu_ioapic_and_qemus_overrides() {
        let m = madt();
        let mut entries = Vec::new();
        let mut i = 44;
        while i < m.len() {
            entries.push((m[i], m[i + 1]));
            i += usize::from(m[i + 1]);
        }
        assert_eq!(i, m.len());
        assert_eq!(
            entries,
            vec![
                (0, 8),
                (1, 12),
                (2, 10),
                (2, 10),
                (2, 10),
                (2, 10),
                (2, 10),
                (4, 6)
            ]
        );
        // IRQ0 -> GSI 2.
        assert_eq!(&m[64..72], &[2, 10, 0, 0, 2, 0, 0, 0]);
    }
}
