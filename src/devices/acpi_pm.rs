//! The ACPI power-management registers of the PIIX4-style PM function that
//! QEMU's `-M pc` puts at I/O base 0x600 (ACPI 6.5 section 4.8, "ACPI
//! Hardware Model": the PM1 event and control blocks and the PM timer).
//! vx86 has them only with the APIC and its ACPI tables (`+apic` on
//! `-M pc`); the FADT points here.
//!
//! * PM1a_EVT_BLK (0x600): PM1_STS (write 1 to clear) and PM1_EN. The
//!   fixed-feature power button (4.8.2.2.1) is PWRBTN_STS/PWRBTN_EN, bit 8
//!   of each: the monitor's `system_powerdown` presses it (the FADT's
//!   PWR_BUTTON flag is clear, so the OS knows it is there).
//! * PM1a_CNT_BLK (0x604): SCI_EN reads 1 (no SMI_CMD: the machine is
//!   always in ACPI mode, 4.8.2.5); writing SLP_EN with SLP_TYP 0 (the S5
//!   value the DSDT's `_S5` gives) powers the machine off: the run ends
//!   with status 0, as QEMU's does.
//! * PM_TMR_BLK (0x608): the 24-bit PM timer at 3.579545 MHz (4.8.3.3),
//!   from virtual time.
//! * GPE0_BLK (0xAFE0, 4 bytes as QEMU's PIIX4): GPE0_STS (write 1 to
//!   clear) then GPE0_EN, 16 bits each (4.8.4.1).
//!
//! * The PCI hotplug block of QEMU's PIIX4 (I/O 0xAE00, 16 bytes; ACPI
//!   hotplug, which the DSDT's `PCNT` and `_EJ0` methods drive and Linux's
//!   acpiphp answers): PCI_UP (0xAE00, slots inserted since the last read;
//!   reading clears it), PCI_DOWN (0xAE04, slots whose removal was
//!   requested), B0EJ (0xAE08, write 1 to a slot's bit to eject it: the
//!   OS is done with the device) and PCI_RMV (0xAE0C, the hot-pluggable
//!   slots). An insertion or removal request raises GPE0 bit 1
//!   ([`GPE_PCI_HOTPLUG`]), whose `_E01` runs `PCNT`.
//!
//! The SCI (IRQ 9, level, active high as the MADT's override says) is
//! asserted while a status bit and its enable bit are both set, in PM1 or
//! in GPE0 (4.8.1: the SCI is the OR of the enabled events).

use super::{Ctx, Nanos, Resources};

/// The PM register block's base (QEMU's PIIX4 PM, as SeaBIOS maps it).
pub const PM_BASE: u16 = 0x600;
pub const PM1A_EVT_BLK: u16 = PM_BASE;
pub const PM1A_CNT_BLK: u16 = PM_BASE + 4;
pub const PM_TMR_BLK: u16 = PM_BASE + 8;
/// The SCI's ISA interrupt (QEMU's, in the FADT and MADT).
pub const SCI_IRQ: u8 = 9;
/// The general-purpose event block 0 (QEMU's PIIX4 address and length).
pub const GPE0_BLK: u16 = 0xAFE0;
pub const GPE0_BLK_LEN: u8 = 4;
/// The PCI hotplug register block (QEMU's PIIX4 `acpi-pci-hotplug`).
pub const PCIHP_BASE: u16 = 0xAE00;
pub const PCIHP_LEN: u16 = 0x10;
pub const PCI_UP: u16 = PCIHP_BASE;
pub const PCI_DOWN: u16 = PCIHP_BASE + 4;
pub const PCI_B0EJ: u16 = PCIHP_BASE + 8;
pub const PCI_RMV: u16 = PCIHP_BASE + 12;
/// The GPE0 bit of PCI hotplug events (`\_GPE._E01`).
pub const GPE_PCI_HOTPLUG: u8 = 1;

/// PM timer frequency in Hz (ACPI 4.8.3.3).
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1_CNT bits (ACPI Table 4.16).
const SCI_EN: u16 = 1 << 0;
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0b111;
const SLP_EN: u16 = 1 << 13;
/// The SLP_TYP of S5 (soft off) in vx86's `_S5` package.
pub const SLP_TYP_S5: u16 = 0;
/// PM1_STS / PM1_EN bits (ACPI Tables 4.11, 4.12).
pub const PWRBTN_STS: u16 = 1 << 8;
/// The PM1 events vx86 raises, which assert the SCI when enabled.
const PM1_SCI_EVENTS: u16 = PWRBTN_STS;

/// The PM registers (plain state: the PM timer is computed from virtual
/// time, so a snapshot restores it with the clock).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AcpiPm {
    pm1_sts: u16,
    pm1_en: u16,
    pm1_cnt: u16,
    gpe0_sts: u16,
    gpe0_en: u16,
    /// PCI hotplug: slots inserted and not yet reported (PCI_UP), slots
    /// whose removal is requested (PCI_DOWN), the hot-pluggable slots
    /// (PCI_RMV), and slots the OS ejected that the machine has not yet
    /// removed.
    pci_up: u32,
    pci_down: u32,
    pci_rmv: u32,
    ejected: u32,
}

impl AcpiPm {
    pub fn new() -> Self {
        AcpiPm {
            pm1_cnt: SCI_EN,
            ..Default::default()
        }
    }

    /// The PM timer's count at `now` (24 bits, wrapping).
    pub fn pm_timer(now: Nanos) -> u32 {
        ((u128::from(now) * u128::from(PM_TIMER_HZ) / 1_000_000_000) & 0xFF_FFFF) as u32
    }

    /// The register bytes at `off` from the base (little-endian fields).
    fn read_byte(&self, off: u16, now: Nanos) -> u8 {
        let w = |v: u16, hi: bool| if hi { (v >> 8) as u8 } else { v as u8 };
        match off {
            0 | 1 => w(self.pm1_sts, off == 1),
            2 | 3 => w(self.pm1_en, off == 3),
            4 | 5 => w(self.pm1_cnt, off == 5),
            8..=11 => (Self::pm_timer(now) >> (8 * (off - 8))) as u8,
            _ => 0xFF,
        }
    }

    /// GPE0 block byte `off` (0-3).
    fn gpe_read_byte(&self, off: u16) -> u8 {
        let w = |v: u16, hi: bool| if hi { (v >> 8) as u8 } else { v as u8 };
        match off {
            0 | 1 => w(self.gpe0_sts, off == 1),
            2 | 3 => w(self.gpe0_en, off == 3),
            _ => 0xFF,
        }
    }

    fn gpe_write_byte(&mut self, off: u16, b: u8) {
        let shift = if off & 1 == 1 { 8 } else { 0 };
        match off {
            0 | 1 => self.gpe0_sts &= !(u16::from(b) << shift),
            2 | 3 => {
                self.gpe0_en = (self.gpe0_en & !(0xFF << shift)) | (u16::from(b) << shift);
            }
            _ => {}
        }
    }

    /// Whether the SCI is asserted: an enabled status bit in PM1 or GPE0.
    pub fn sci_level(&self) -> bool {
        self.pm1_sts & self.pm1_en & PM1_SCI_EVENTS != 0 || self.gpe0_sts & self.gpe0_en != 0
    }

    /// A press of the power button (QEMU's `system_powerdown`): PWRBTN_STS
    /// is set, and raises the SCI if the OS enabled it (4.8.2.2.1.1).
    pub fn press_power_button(&mut self, cx: &mut Ctx) {
        self.pm1_sts |= PWRBTN_STS;
        self.update_sci(cx);
    }

    /// Raises general-purpose event `bit` (0-15): its GPE0_STS bit is set
    /// and the SCI follows.
    pub fn raise_gpe(&mut self, bit: u8, cx: &mut Ctx) {
        if let Some(m) = 1u16.checked_shl(u32::from(bit)) {
            self.gpe0_sts |= m;
        }
        self.update_sci(cx);
    }

    /// Declares the hot-pluggable slots (a bit per slot, as the DSDT's slot
    /// devices are).
    pub fn set_hotplug_slots(&mut self, slots: u32) {
        self.pci_rmv = slots;
    }

    pub fn hotplug_slots(&self) -> u32 {
        self.pci_rmv
    }

    /// A device was put in `slot`: the OS is told (PCI_UP, GPE0 bit 1).
    pub fn plug(&mut self, slot: u8, cx: &mut Ctx) {
        let bit = 1u32.checked_shl(u32::from(slot)).unwrap_or(0) & self.pci_rmv;
        self.pci_up |= bit;
        self.pci_down &= !bit;
        self.raise_gpe(GPE_PCI_HOTPLUG, cx);
    }

    /// The user asks for the device in `slot` to be removed: the OS gets an
    /// eject request (PCI_DOWN, GPE0 bit 1) and ejects it through B0EJ.
    pub fn request_unplug(&mut self, slot: u8, cx: &mut Ctx) {
        let bit = 1u32.checked_shl(u32::from(slot)).unwrap_or(0) & self.pci_rmv;
        self.pci_down |= bit;
        self.raise_gpe(GPE_PCI_HOTPLUG, cx);
    }

    /// Slots the OS ejected since the last call (the machine removes their
    /// devices).
    pub fn take_ejected(&mut self) -> u32 {
        std::mem::take(&mut self.ejected)
    }

    fn pcihp_read(&mut self, port: u16) -> u32 {
        match port {
            PCI_UP => std::mem::take(&mut self.pci_up),
            PCI_DOWN => self.pci_down,
            PCI_RMV => self.pci_rmv,
            // B0EJ reads 0, as QEMU's; unaligned and other offsets float.
            PCI_B0EJ => 0,
            _ => u32::MAX,
        }
    }

    fn pcihp_write(&mut self, port: u16, value: u32, cx: &mut Ctx) {
        if port == PCI_B0EJ {
            let slots = value & self.pci_rmv;
            if slots != 0 {
                self.pci_down &= !slots;
                self.pci_up &= !slots;
                self.ejected |= slots;
                // The machine takes the device away at the slice's end.
                cx.replan();
            }
        }
    }

    fn update_sci(&self, cx: &mut Ctx) {
        cx.set_irq(SCI_IRQ, self.sci_level());
    }
}

impl super::Device for AcpiPm {
    fn name(&self) -> &'static str {
        "acpi-pm"
    }
    crate::devices::plain_state!();
    fn resources(&self) -> Resources {
        Resources::default()
            .ports(PM1A_EVT_BLK..=PM1A_EVT_BLK + 3)
            .ports(PM1A_CNT_BLK..=PM1A_CNT_BLK + 1)
            .ports(PM_TMR_BLK..=PM_TMR_BLK + 3)
            .ports(GPE0_BLK..=GPE0_BLK + u16::from(GPE0_BLK_LEN) - 1)
            .ports(PCIHP_BASE..=PCIHP_BASE + PCIHP_LEN - 1)
            .irq(SCI_IRQ)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut Ctx) -> u32 {
        if (PCIHP_BASE..PCIHP_BASE + PCIHP_LEN).contains(&port) {
            // Dword registers (the DSDT's field is DWordAcc); a narrower
            // read sees the low bytes.
            let v = self.pcihp_read(port);
            return v & crate::cpu::flags::size_mask(size.min(4)) as u32;
        }
        if let Some(off) = port.checked_sub(GPE0_BLK) {
            return (0..u16::from(size.min(4))).fold(0u32, |v, i| {
                v | u32::from(self.gpe_read_byte(off.saturating_add(i))) << (8 * i)
            });
        }
        let off = port.wrapping_sub(PM_BASE);
        (0..u16::from(size.min(4))).fold(0u32, |v, i| {
            v | u32::from(self.read_byte(off + i, cx.now)) << (8 * i)
        })
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut Ctx) {
        if (PCIHP_BASE..PCIHP_BASE + PCIHP_LEN).contains(&port) {
            let v = value & crate::cpu::flags::size_mask(size.min(4)) as u32;
            self.pcihp_write(port, v, cx);
            return;
        }
        if let Some(off) = port.checked_sub(GPE0_BLK) {
            for i in 0..u16::from(size.min(4)) {
                self.gpe_write_byte(off.saturating_add(i), (value >> (8 * i)) as u8);
            }
            self.update_sci(cx);
            return;
        }
        let off = port.wrapping_sub(PM_BASE);
        for i in 0..u16::from(size.min(4)) {
            let b = (value >> (8 * i)) as u8;
            let (reg, hi) = match off + i {
                0 | 1 => (&mut self.pm1_sts, off + i == 1),
                2 | 3 => (&mut self.pm1_en, off + i == 3),
                4 | 5 => (&mut self.pm1_cnt, off + i == 5),
                _ => continue,
            };
            let shift = if hi { 8 } else { 0 };
            if off + i < 2 {
                // PM1_STS: write 1 to clear.
                *reg &= !(u16::from(b) << shift);
            } else {
                *reg = (*reg & !(0xFF << shift)) | (u16::from(b) << shift);
            }
        }
        if self.pm1_cnt & SLP_EN != 0 {
            // SLP_EN is write-only and self-clearing.
            self.pm1_cnt &= !SLP_EN;
            let typ = (self.pm1_cnt >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
            if typ == SLP_TYP_S5 {
                cx.request_poweroff();
            }
        }
        // SCI_EN stays set: there is no legacy (non-ACPI) mode to go back to.
        self.pm1_cnt |= SCI_EN;
        self.update_sci(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{Device, Events, IrqLines};

    #[test]
    fn pm_timer_runs_at_3_579545_mhz_and_wraps_at_24_bits() {
        assert_eq!(AcpiPm::pm_timer(0), 0);
        assert_eq!(AcpiPm::pm_timer(1_000_000_000), 3_579_545 & 0xFF_FFFF);
        assert_eq!(AcpiPm::pm_timer(1_000_000), 3579);
        let wrap_ns = (1u64 << 24) * 1_000_000_000 / PM_TIMER_HZ + 1;
        assert!(AcpiPm::pm_timer(wrap_ns) < 10);
    }

    #[test]
    fn slp_en_with_s5_powers_off_and_sci_en_reads_one() {
        let mut pm = AcpiPm::new();
        let (mut irqs, mut ev) = (IrqLines::default(), Events::default());
        {
            let mut cx = Ctx::new(0, 1, &mut irqs, &mut ev);
            assert_eq!(pm.io_read(PM1A_CNT_BLK, 2, &mut cx), 1);
            // S1 (another SLP_TYP) does nothing here.
            pm.io_write(PM1A_CNT_BLK, 2, 0x2000 | (1 << 10), &mut cx);
            pm.io_write(PM1A_EVT_BLK, 2, 0xFFFF, &mut cx);
            assert_eq!(pm.io_read(PM1A_CNT_BLK, 2, &mut cx), 0x0401);
        }
        assert!(!ev.poweroff);
        {
            let mut cx = Ctx::new(0, 1, &mut irqs, &mut ev);
            pm.io_write(PM1A_CNT_BLK, 2, 0x2000, &mut cx);
        }
        assert!(ev.poweroff && ev.attention);
    }

    #[test]
    fn an_enabled_gpe_status_bit_raises_the_sci_until_cleared() {
        let mut pm = AcpiPm::new();
        let (mut irqs, mut ev) = (IrqLines::default(), Events::default());
        {
            let mut cx = Ctx::new(0, 1, &mut irqs, &mut ev);
            pm.raise_gpe(1, &mut cx);
            assert_eq!(pm.io_read(GPE0_BLK, 2, &mut cx), 0b10);
            assert!(!pm.sci_level(), "not enabled yet");
            pm.io_write(GPE0_BLK + 2, 2, 0b10, &mut cx);
            assert!(pm.sci_level());
            assert_eq!(pm.io_read(GPE0_BLK, 4, &mut cx), 0x0002_0002);
            // Write 1 to clear; a write of 0 leaves it.
            pm.io_write(GPE0_BLK, 1, 0, &mut cx);
            assert!(pm.sci_level());
            pm.io_write(GPE0_BLK, 1, 0b10, &mut cx);
            assert!(!pm.sci_level());
            // Out-of-range bits and widths are harmless.
            pm.raise_gpe(200, &mut cx);
            pm.io_write(GPE0_BLK + 3, 4, u32::MAX, &mut cx);
            assert_eq!(pm.io_read(GPE0_BLK + 3, 4, &mut cx), 0xFFFF_FFFF);
        }
        assert!(!irqs.level(SCI_IRQ));
    }

    #[test]
    fn the_power_button_raises_the_sci_once_enabled_until_acknowledged() {
        let mut pm = AcpiPm::new();
        let (mut irqs, mut ev) = (IrqLines::default(), Events::default());
        {
            let mut cx = Ctx::new(0, 1, &mut irqs, &mut ev);
            pm.press_power_button(&mut cx);
            assert_eq!(pm.io_read(PM1A_EVT_BLK, 2, &mut cx), 0x100);
            assert!(!pm.sci_level(), "PWRBTN_EN clear");
            pm.io_write(PM1A_EVT_BLK + 2, 2, 0x100, &mut cx);
        }
        assert!(irqs.level(SCI_IRQ));
        {
            let mut cx = Ctx::new(0, 1, &mut irqs, &mut ev);
            // The OS acknowledges: write 1 to PWRBTN_STS.
            pm.io_write(PM1A_EVT_BLK + 1, 1, 0x01, &mut cx);
            assert_eq!(pm.io_read(PM1A_EVT_BLK, 2, &mut cx), 0);
        }
        assert!(!irqs.level(SCI_IRQ));
        assert!(!ev.poweroff);
    }

    #[test]
    fn pci_hotplug_registers_report_plugs_and_take_ejects() {
        let mut pm = AcpiPm::new();
        let (mut irqs, mut ev) = (IrqLines::default(), Events::default());
        let mut cx = Ctx::new(0, 1, &mut irqs, &mut ev);
        pm.set_hotplug_slots(0xFFFF_FFF0);
        pm.io_write(GPE0_BLK + 2, 1, 1 << GPE_PCI_HOTPLUG, &mut cx);
        pm.plug(5, &mut cx);
        assert!(pm.sci_level());
        assert_eq!(pm.io_read(PCI_RMV, 4, &mut cx), 0xFFFF_FFF0);
        assert_eq!(pm.io_read(PCI_UP, 4, &mut cx), 1 << 5);
        assert_eq!(pm.io_read(PCI_UP, 4, &mut cx), 0, "cleared by the read");
        // A slot that is not hot-pluggable is never reported or ejected.
        pm.plug(1, &mut cx);
        assert_eq!(pm.io_read(PCI_UP, 4, &mut cx), 0);
        pm.request_unplug(5, &mut cx);
        assert_eq!(pm.io_read(PCI_DOWN, 4, &mut cx), 1 << 5);
        pm.io_write(PCI_B0EJ, 4, (1 << 5) | (1 << 1), &mut cx);
        assert_eq!(pm.io_read(PCI_DOWN, 4, &mut cx), 0);
        assert_eq!(pm.take_ejected(), 1 << 5);
        assert_eq!(pm.take_ejected(), 0);
        // Any width, any offset: no panic.
        for port in PCIHP_BASE..PCIHP_BASE + PCIHP_LEN {
            for size in [1, 2, 4, 8] {
                pm.io_write(port, size, u32::MAX, &mut cx);
                pm.io_read(port, size, &mut cx);
            }
        }
        for slot in [0, 31, 32, 255] {
            pm.plug(slot, &mut cx);
            pm.request_unplug(slot, &mut cx);
        }
    }
}
