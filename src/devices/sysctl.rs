//! System Control Port A at 0x92 (IBM PS/2 Hardware Interface Technical
//! Reference, "System Control Port A"): the fast A20 gate and the fast
//! (alternate hot) reset that avoid the slow round trip through the 8042.
//!
//! Bits: 0 alternate hot reset (a 0 -> 1 write pulses the processor reset),
//! 1 alternate A20 gate, 3 security lock latch, 6-7 fixed disk activity lights.
//! All bits read back as written.

use super::{Nanos, PortDevice};

/// The port of System Control Port A.
pub const SYSCTL_PORT_A: u16 = 0x92;

const PORT_A_FAST_RESET: u8 = 0b0000_0001;
const PORT_A_FAST_A20: u8 = 0b0000_0010;

/// System Control Port A.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SystemControlPortA {
    value: u8,
    reset_request: bool,
}

impl SystemControlPortA {
    /// Power-on state: all bits 0 (A20 gate off here; the 8042's gate is the
    /// other input of the A20 OR).
    pub fn new() -> Self {
        Self::default()
    }

    /// The fast A20 gate (bit 1). The machine ORs it with the 8042's A20 output.
    pub fn a20(&self) -> bool {
        self.value & PORT_A_FAST_A20 != 0
    }

    /// True once after the guest wrote bit 0 going from 0 to 1 (fast reset).
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_request)
    }
}

impl PortDevice for SystemControlPortA {
    fn io_read(&mut self, port: u16, size: u8, _now: Nanos) -> u32 {
        let byte = if port == SYSCTL_PORT_A {
            self.value
        } else {
            0xFF
        };
        // An 8-bit register: the other bytes of a wider access are not driven.
        let width_mask = match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        };
        (u32::from(byte) | 0xFFFF_FF00) & width_mask
    }

    fn io_write(&mut self, port: u16, _size: u8, value: u32, _now: Nanos) {
        if port != SYSCTL_PORT_A {
            return;
        }
        let value = value as u8;
        // The reset is triggered by the rising edge of bit 0, so firmware that
        // rewrites the port with bit 0 still set does not reset again.
        if value & PORT_A_FAST_RESET != 0 && self.value & PORT_A_FAST_RESET == 0 {
            self.reset_request = true;
        }
        self.value = value;
    }
}

impl super::Device for SystemControlPortA {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "port92"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default().ports(SYSCTL_PORT_A..=SYSCTL_PORT_A)
    }
    fn power_on(&mut self, cx: &mut super::Ctx) {
        cx.set_a20(self.a20());
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        PortDevice::io_read(self, port, size, cx.now)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        cx.set_a20(self.a20());
        if self.take_reset_request() {
            cx.request_reset();
        }
    }
}

/// PC/AT port F0h: a write clears the math coprocessor's error latch (FERR#,
/// which the board turns into IRQ13; IBM PC/AT Technical Reference, "Math
/// Coprocessor Controls"). The latch itself is the CPU's `ferr`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CoprocessorErrorClear;

/// The port of [`CoprocessorErrorClear`].
pub const COPROCESSOR_CLEAR_PORT: u16 = 0xF0;

impl super::Device for CoprocessorErrorClear {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "fpu-error-clear"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default()
            .ports(COPROCESSOR_CLEAR_PORT..=COPROCESSOR_CLEAR_PORT)
            .irq(13)
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32, cx: &mut super::Ctx) {
        cx.clear_ferr();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_a20_and_readback() {
        let mut p = SystemControlPortA::new();
        assert!(!p.a20());
        assert_eq!(p.io_read(SYSCTL_PORT_A, 1, 0), 0x00);
        p.io_write(SYSCTL_PORT_A, 1, 0b1100_0010, 0);
        assert!(p.a20());
        assert_eq!(p.io_read(SYSCTL_PORT_A, 1, 0), 0b1100_0010);
        assert_eq!(p.io_read(SYSCTL_PORT_A, 2, 0), 0xFFC2);
        assert!(!p.take_reset_request());
        p.io_write(SYSCTL_PORT_A, 1, 0, 0);
        assert!(!p.a20());
    }

    #[test]
    fn fast_reset_on_rising_edge_only() {
        let mut p = SystemControlPortA::new();
        p.io_write(SYSCTL_PORT_A, 1, 0b11, 0);
        assert!(p.take_reset_request());
        assert!(!p.take_reset_request(), "taken once");
        // Bit 0 still 1: no new edge.
        p.io_write(SYSCTL_PORT_A, 1, 0b11, 0);
        assert!(!p.take_reset_request());
        p.io_write(SYSCTL_PORT_A, 1, 0b10, 0);
        assert!(!p.take_reset_request());
        p.io_write(SYSCTL_PORT_A, 1, 0b01, 0);
        assert!(p.take_reset_request());
        assert!(!p.a20());
    }

    #[test]
    fn other_ports_ignored() {
        let mut p = SystemControlPortA::new();
        p.io_write(0x93, 1, 0xFF, 0);
        assert!(!p.a20() && !p.take_reset_request());
        assert_eq!(p.io_read(0x93, 1, 0), 0xFF);
    }
}
