//! The two functions of QEMU's `-M pc` chipset a guest looks at: the Intel
//! 440FX host bridge (PCI 00.0, 8086:1237) and the PIIX3 PCI-to-ISA bridge
//! (PCI 01.0, 8086:7000), whose PIRQ route control registers decide which
//! ISA IRQ each PCI interrupt line reaches (Intel 82371SB PIIX3 datasheet,
//! section 2.2.10 PIRQRC[A:D]). The ISA devices behind the bridge are the
//! ordinary ones of `-M isapc`.

use super::{ConfigSpace, PciFunction};
use crate::devices::{Ctx, Device, Resources};

pub const I440FX_VENDOR: u16 = 0x8086;
pub const I440FX_DEVICE: u16 = 0x1237;
pub const PIIX3_ISA_DEVICE: u16 = 0x7000;

/// PIIX3 PIRQRC[A:D] (function 0, offsets 60h-63h): bit 7 set disables
/// routing, bits 3:0 name the ISA IRQ. Reset value 80h.
pub const PIRQRC: usize = 0x60;
pub const PIRQ_ROUTE_DISABLE: u8 = 0b1000_0000;
/// The routing QEMU's firmware programs (SeaBIOS: PIRQA-D -> 10, 10, 11, 11);
/// vx86 writes the same before a direct kernel boot.
pub const DEFAULT_PIRQ_IRQS: [u8; 4] = [10, 10, 11, 11];

/// PIIX3 Reset Control register (I/O port CF9h): bit 2 starts a reset
/// (PIIX3 datasheet 4.1.4); Linux's `reboot=pci` writes it.
pub const RESET_CONTROL_PORT: u16 = 0xCF9;
const RC_RESET_CPU: u8 = 0b0000_0100;

/// The i440FX PMC host bridge: configuration space only.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct I440fx {
    cfg: ConfigSpace,
}

impl Default for I440fx {
    fn default() -> Self {
        Self::new()
    }
}

impl I440fx {
    pub fn new() -> Self {
        // Class 06/00 (host bridge), revision 02 as QEMU's.
        I440fx {
            cfg: ConfigSpace::new(I440FX_VENDOR, I440FX_DEVICE, 0x06, 0x00, 0x00, 0x02),
        }
    }
}

impl PciFunction for I440fx {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}

impl Device for I440fx {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "i440FX-pcihost"
    }
    fn resources(&self) -> Resources {
        Resources::default()
    }
    fn pci(&mut self) -> Option<&mut dyn PciFunction> {
        Some(self)
    }
}

/// The PIIX3 ISA bridge: PIRQ routing and the reset control port.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Piix3Isa {
    cfg: ConfigSpace,
    reset_control: u8,
}

impl Default for Piix3Isa {
    fn default() -> Self {
        Self::new()
    }
}

impl Piix3Isa {
    pub fn new() -> Self {
        let mut cfg = ConfigSpace::new(I440FX_VENDOR, PIIX3_ISA_DEVICE, 0x06, 0x01, 0x00, 0x00);
        // Multi-function device (QEMU's PIIX3 has IDE and USB functions too).
        cfg.set_header_type(0x80);
        for i in 0..4 {
            cfg.put8(PIRQRC + i, PIRQ_ROUTE_DISABLE);
        }
        cfg.set_wmask(PIRQRC, &[0x8F; 4]);
        Piix3Isa {
            cfg,
            reset_control: 0,
        }
    }

    /// The ISA IRQ PIRQ `n` (0 = A) reaches, if routing is enabled to a
    /// valid IRQ (0-2, 8 and 13 are reserved in the datasheet's table).
    pub fn pirq_irq(&self, n: usize) -> Option<u8> {
        let v = self.cfg.read(PIRQRC + (n & 3), 1) as u8;
        let irq = v & 0x0F;
        (v & PIRQ_ROUTE_DISABLE == 0 && !matches!(irq, 0..=2 | 8 | 13)).then_some(irq)
    }

    /// Programs PIRQA-D as QEMU's firmware does (for direct kernel boots).
    pub fn set_default_routing(&mut self) {
        for (i, irq) in DEFAULT_PIRQ_IRQS.iter().enumerate() {
            self.cfg.put8(PIRQRC + i, *irq);
        }
    }
}

impl PciFunction for Piix3Isa {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }
}

impl Device for Piix3Isa {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "PIIX3"
    }
    fn resources(&self) -> Resources {
        Resources::default().ports(RESET_CONTROL_PORT..=RESET_CONTROL_PORT)
    }
    fn io_read(&mut self, _port: u16, size: u8, _cx: &mut Ctx) -> u32 {
        u32::from(self.reset_control) | (crate::cpu::flags::size_mask(size) as u32 & !0xFF)
    }
    fn io_write(&mut self, _port: u16, _size: u8, value: u32, cx: &mut Ctx) {
        let v = value as u8;
        // A 0 -> 1 transition of RST_CPU resets the system.
        if v & RC_RESET_CPU != 0 && self.reset_control & RC_RESET_CPU == 0 {
            cx.request_reset();
        }
        self.reset_control = v & !RC_RESET_CPU;
    }
    fn pci(&mut self) -> Option<&mut dyn PciFunction> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pirq_routing_follows_pirqrc() {
        let mut p = Piix3Isa::new();
        assert_eq!(p.pirq_irq(0), None, "disabled at reset");
        p.cfg.write(PIRQRC, 4, 0x0B0A_0B0A);
        assert_eq!(p.pirq_irq(0), Some(10));
        assert_eq!(p.pirq_irq(1), Some(11));
        p.cfg.write(PIRQRC + 2, 1, 0x80 | 10);
        assert_eq!(p.pirq_irq(2), None);
        p.cfg.write(PIRQRC + 3, 1, 2);
        assert_eq!(p.pirq_irq(3), None, "IRQ2 is reserved");
    }
}
