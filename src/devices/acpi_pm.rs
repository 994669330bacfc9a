//! The ACPI power-management registers of the PIIX4-style PM function that
//! QEMU's `-M pc` puts at I/O base 0x600 (ACPI 6.5 section 4.8, "ACPI
//! Hardware Model": the PM1 event and control blocks and the PM timer).
//! vx86 has them only with the APIC and its ACPI tables (`+apic` on
//! `-M pc`); the FADT points here.
//!
//! * PM1a_EVT_BLK (0x600): PM1_STS (write 1 to clear) and PM1_EN.
//! * PM1a_CNT_BLK (0x604): SCI_EN reads 1 (no SMI_CMD: the machine is
//!   always in ACPI mode, 4.8.2.5); writing SLP_EN with SLP_TYP 0 (the S5
//!   value the DSDT's `_S5` gives) powers the machine off: the run ends
//!   with status 0, as QEMU's does.
//! * PM_TMR_BLK (0x608): the 24-bit PM timer at 3.579545 MHz (4.8.3.3),
//!   from virtual time.
//! * GPE0_BLK (0xAFE0, 4 bytes as QEMU's PIIX4): GPE0_STS (write 1 to
//!   clear) then GPE0_EN, 16 bits each (4.8.4.1).
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

/// PM timer frequency in Hz (ACPI 4.8.3.3).
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1_CNT bits (ACPI Table 4.16).
const SCI_EN: u16 = 1 << 0;
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0b111;
const SLP_EN: u16 = 1 << 13;
/// The SLP_TYP of S5 (soft off) in vx86's `_S5` package.
pub const SLP_TYP_S5: u16 = 0;

/// The PM registers (plain state: the PM timer is computed from virtual
/// time, so a snapshot restores it with the clock).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AcpiPm {
    pm1_sts: u16,
    pm1_en: u16,
    pm1_cnt: u16,
    gpe0_sts: u16,
    gpe0_en: u16,
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

    /// Whether the SCI is asserted: an enabled status bit in GPE0.
    pub fn sci_level(&self) -> bool {
        self.gpe0_sts & self.gpe0_en != 0
    }

    /// Raises general-purpose event `bit` (0-15): its GPE0_STS bit is set
    /// and the SCI follows.
    pub fn raise_gpe(&mut self, bit: u8, cx: &mut Ctx) {
        if let Some(m) = 1u16.checked_shl(u32::from(bit)) {
            self.gpe0_sts |= m;
        }
        self.update_sci(cx);
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
            .irq(SCI_IRQ)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut Ctx) -> u32 {
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
}
