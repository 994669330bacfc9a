//! Platform devices, one chip per file (names and registers from each datasheet).
//!
//! Every device is a plain struct that owns its registers and reset state. The
//! machine (`crate::machine`) owns all devices, routes port accesses to them through
//! the port bus (`crate::io`), and wires their interrupt outputs to the PIC. Devices
//! never call each other: anything that crosses a device boundary (an IRQ edge, a
//! CPU reset request, the A20 gate) is returned to the machine, which acts on it.
//!
//! Time: devices see virtual time ([`Nanos`]) on every access and catch up lazily
//! (no per-instruction ticking); a device with a timer reports its next deadline so
//! the machine's scheduler can stop the CPU exactly then.

pub mod ata;
pub mod vga;

/// Virtual time in nanoseconds since machine reset.
pub type Nanos = u64;

/// A device on the port I/O bus. `size` is the access width in bytes (1, 2 or 4).
/// Reads of bits a device does not drive return ones, as on the ISA bus.
pub trait PortDevice {
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32;
    fn io_write(&mut self, port: u16, size: u8, value: u32, now: Nanos);
}

pub mod debug_port;
pub mod i8042;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod sysctl;
pub mod uart;
