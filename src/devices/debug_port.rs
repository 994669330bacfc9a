//! Debug ports used by firmware, test programs and emulator-aware guests:
//!
//! - [`DebugCon`]: the Bochs "port 0xE9 hack" console (also QEMU's `debugcon`)
//!   and SeaBIOS's debug output port 0x402. Written bytes are collected for the
//!   machine to hand to a sink; reads return 0xE9 so a guest can detect it.
//! - [`DebugExit`]: QEMU's `isa-debug-exit` device. A guest write of value V
//!   asks the emulator to exit with status `(V << 1) | 1`, so test programs can
//!   report pass/fail (the status is always odd, distinct from a normal 0 exit).
//! - [`PostCode`]: the POST code register at port 0x80 (a diagnostic card
//!   latch); firmware writes progress codes, Linux writes it as an I/O delay.

use super::{Nanos, PortDevice};

/// Bochs / QEMU debug console port.
pub const DEBUGCON_PORT: u16 = 0xE9;
/// SeaBIOS debug output port (QEMU `-chardev ... -device isa-debugcon,iobase=0x402`).
pub const SEABIOS_DEBUG_PORT: u16 = 0x402;
/// Value a debug console returns on reads, which guests test for its presence.
pub const DEBUGCON_READBACK: u8 = 0xE9;
/// POST code register.
pub const POST_CODE_PORT: u16 = 0x80;
/// `isa-debug-exit` defaults (QEMU): base 0x501, 2 ports.
pub const DEBUG_EXIT_DEFAULT_IOBASE: u16 = 0x501;
pub const DEBUG_EXIT_DEFAULT_IOSIZE: u8 = 2;

/// Cap on debug-console bytes not yet drained, so a guest cannot grow host
/// memory without bound while nobody drains.
const OUTPUT_LIMIT: usize = 1 << 20;

/// Value of an 8-bit register in an access of `size` bytes: the other bytes are
/// not driven and read as ones.
fn byte_read(byte: u8, size: u8) -> u32 {
    let width_mask = match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    };
    (u32::from(byte) | 0xFFFF_FF00) & width_mask
}

/// A debug console at one port (0xE9 or 0x402).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DebugCon {
    port: u16,
    output: Vec<u8>,
    dropped: u64,
}

impl DebugCon {
    pub fn new(port: u16) -> Self {
        DebugCon {
            port,
            output: Vec::new(),
            dropped: 0,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Move the bytes the guest wrote into `out` (appending).
    pub fn drain_output(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.output);
    }

    /// Bytes dropped because the machine did not drain the output in time.
    pub fn output_dropped(&self) -> u64 {
        self.dropped
    }
}

impl PortDevice for DebugCon {
    fn io_read(&mut self, port: u16, size: u8, _now: Nanos) -> u32 {
        if port == self.port {
            byte_read(DEBUGCON_READBACK, size)
        } else {
            0xFFFF_FFFF
        }
    }

    /// The console is one byte wide: a wider write prints its low byte (the
    /// other bytes address the next ports, which it does not decode).
    fn io_write(&mut self, port: u16, _size: u8, value: u32, _now: Nanos) {
        if port != self.port {
            return;
        }
        if self.output.len() < OUTPUT_LIMIT {
            self.output.push(value as u8);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

/// A bad `isa-debug-exit` option string (the QEMU `-device` syntax).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebugExitSpecError {
    #[error("-device {spec}: not an isa-debug-exit device (driver `{driver}`)")]
    WrongDriver { spec: String, driver: String },
    #[error("-device {spec}: unknown isa-debug-exit property `{key}` (known: iobase, iosize, id)")]
    UnknownProperty { spec: String, key: String },
    #[error("-device {spec}: property `{key}` needs a value (`{key}=...`)")]
    MissingValue { spec: String, key: String },
    #[error("-device {spec}: {key}={value} is not a number (decimal or 0x hex)")]
    BadNumber {
        spec: String,
        key: String,
        value: String,
    },
    #[error("-device {spec}: {key}={value} is out of range ({range})")]
    OutOfRange {
        spec: String,
        key: String,
        value: String,
        range: &'static str,
    },
}

/// QEMU's `isa-debug-exit` device: ports `iobase..iobase + iosize`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DebugExit {
    iobase: u16,
    iosize: u8,
    exit_request: Option<i32>,
}

impl Default for DebugExit {
    fn default() -> Self {
        Self::new(DEBUG_EXIT_DEFAULT_IOBASE, DEBUG_EXIT_DEFAULT_IOSIZE)
    }
}

fn parse_number(spec: &str, key: &str, value: &str) -> Result<u64, DebugExitSpecError> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.map_err(|_| DebugExitSpecError::BadNumber {
        spec: spec.to_string(),
        key: key.to_string(),
        value: value.to_string(),
    })
}

impl DebugExit {
    /// A device at `iobase` covering `iosize` ports. An `iosize` of 0 decodes
    /// nothing.
    pub fn new(iobase: u16, iosize: u8) -> Self {
        DebugExit {
            iobase,
            iosize,
            exit_request: None,
        }
    }

    /// Parse QEMU's option string, with or without the driver name:
    /// `isa-debug-exit,iobase=0xf4,iosize=0x04` or `iobase=0xf4`. Missing
    /// properties take QEMU's defaults (iobase 0x501, iosize 2); numbers are
    /// decimal or 0x hex; `id=` is accepted and ignored.
    pub fn parse(spec: &str) -> Result<Self, DebugExitSpecError> {
        let mut device = DebugExit::default();
        let mut parts = spec.split(',').peekable();
        if let Some(first) = parts.peek() {
            if !first.contains('=') {
                if *first != "isa-debug-exit" {
                    return Err(DebugExitSpecError::WrongDriver {
                        spec: spec.to_string(),
                        driver: first.to_string(),
                    });
                }
                parts.next();
            }
        }
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(DebugExitSpecError::MissingValue {
                    spec: spec.to_string(),
                    key: part.to_string(),
                });
            };
            let out_of_range = |range| DebugExitSpecError::OutOfRange {
                spec: spec.to_string(),
                key: key.to_string(),
                value: value.to_string(),
                range,
            };
            match key {
                "iobase" => {
                    let n = parse_number(spec, key, value)?;
                    device.iobase = u16::try_from(n).map_err(|_| out_of_range("0..=0xffff"))?;
                }
                "iosize" => {
                    let n = parse_number(spec, key, value)?;
                    device.iosize = match u8::try_from(n) {
                        Ok(size) if size > 0 => size,
                        _ => return Err(out_of_range("1..=255")),
                    };
                }
                "id" => {}
                _ => {
                    return Err(DebugExitSpecError::UnknownProperty {
                        spec: spec.to_string(),
                        key: key.to_string(),
                    })
                }
            }
        }
        if u32::from(device.iobase) + u32::from(device.iosize) > 0x1_0000 {
            return Err(DebugExitSpecError::OutOfRange {
                spec: spec.to_string(),
                key: "iobase+iosize".to_string(),
                value: format!("{:#x}", u32::from(device.iobase) + u32::from(device.iosize)),
                range: "ports end at 0x10000",
            });
        }
        Ok(device)
    }

    pub fn iobase(&self) -> u16 {
        self.iobase
    }

    pub fn iosize(&self) -> u8 {
        self.iosize
    }

    /// Whether `port` is one this device decodes (for the machine's port map).
    pub fn contains(&self, port: u16) -> bool {
        port.wrapping_sub(self.iobase) < u16::from(self.iosize)
    }

    /// The exit status the guest asked for, once. The machine should stop and
    /// exit the process with it.
    pub fn take_exit_request(&mut self) -> Option<i32> {
        self.exit_request.take()
    }
}

impl PortDevice for DebugExit {
    /// Reads are not driven by the device.
    fn io_read(&mut self, _port: u16, _size: u8, _now: Nanos) -> u32 {
        0xFFFF_FFFF
    }

    /// Any write inside the range requests exit with `(V << 1) | 1`, V being the
    /// written value at the access width, truncated to the C `int` QEMU passes
    /// to `exit()` (a 32-bit V loses its top bit). The first request is kept.
    fn io_write(&mut self, port: u16, size: u8, value: u32, _now: Nanos) {
        if !self.contains(port) || self.exit_request.is_some() {
            return;
        }
        let v = match size {
            1 => value & 0xFF,
            2 => value & 0xFFFF,
            _ => value,
        };
        self.exit_request = Some(((v << 1) | 1) as i32);
    }
}

/// The POST code register at port 0x80.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PostCode {
    last: Option<u8>,
}

impl PostCode {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last code written, if any.
    pub fn last_post_code(&self) -> Option<u8> {
        self.last
    }
}

impl PortDevice for PostCode {
    /// Reads return the latched code (0xFF before any write), as diagnostic
    /// latches on many boards do.
    fn io_read(&mut self, port: u16, size: u8, _now: Nanos) -> u32 {
        if port == POST_CODE_PORT {
            byte_read(self.last.unwrap_or(0xFF), size)
        } else {
            0xFFFF_FFFF
        }
    }

    fn io_write(&mut self, port: u16, _size: u8, value: u32, _now: Nanos) {
        if port == POST_CODE_PORT {
            self.last = Some(value as u8);
        }
    }
}

impl super::Device for DebugCon {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "isa-debugcon"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default().ports(self.port..=self.port)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        PortDevice::io_read(self, port, size, cx.now)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        cx.output_ready();
    }
}

impl super::Device for DebugExit {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "isa-debug-exit"
    }
    fn resources(&self) -> super::Resources {
        let end = self
            .iobase()
            .saturating_add(u16::from(self.iosize()).saturating_sub(1));
        super::Resources::default().ports(self.iobase()..=end)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        if let Some(code) = self.take_exit_request() {
            cx.request_exit(code);
        }
    }
}

impl super::Device for PostCode {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "post-code"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default().ports(POST_CODE_PORT..=POST_CODE_PORT)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        PortDevice::io_read(self, port, size, cx.now)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugcon_collects_bytes_and_reads_e9() {
        let mut d = DebugCon::new(DEBUGCON_PORT);
        assert_eq!(d.io_read(DEBUGCON_PORT, 1, 0), 0xE9);
        assert_eq!(d.io_read(DEBUGCON_PORT, 2, 0), 0xFFE9);
        for b in b"ok\n" {
            d.io_write(DEBUGCON_PORT, 1, u32::from(*b), 0);
        }
        d.io_write(DEBUGCON_PORT, 2, 0x4121, 0); // low byte only
        d.io_write(DEBUGCON_PORT + 1, 1, u32::from(b'x'), 0); // not decoded
        let mut out = b"> ".to_vec();
        d.drain_output(&mut out);
        assert_eq!(out, b"> ok\n!");
        d.drain_output(&mut out);
        assert_eq!(out, b"> ok\n!", "drained once");
    }

    #[test]
    fn seabios_debug_port() {
        let mut d = DebugCon::new(SEABIOS_DEBUG_PORT);
        d.io_write(SEABIOS_DEBUG_PORT, 1, u32::from(b'S'), 0);
        d.io_write(DEBUGCON_PORT, 1, u32::from(b'E'), 0);
        let mut out = Vec::new();
        d.drain_output(&mut out);
        assert_eq!(out, b"S");
        assert_eq!(d.io_read(SEABIOS_DEBUG_PORT, 1, 0), 0xE9);
    }

    #[test]
    fn debug_exit_parse_forms() {
        let d = DebugExit::parse("isa-debug-exit,iobase=0xf4,iosize=0x04").unwrap();
        assert_eq!((d.iobase(), d.iosize()), (0xF4, 4));
        let d = DebugExit::parse("isa-debug-exit").unwrap();
        assert_eq!((d.iobase(), d.iosize()), (0x501, 2));
        let d = DebugExit::parse("iobase=244,id=exit0").unwrap();
        assert_eq!((d.iobase(), d.iosize()), (0xF4, 2));
        let d = DebugExit::parse("isa-debug-exit,iosize=1,iobase=0X604").unwrap();
        assert_eq!((d.iobase(), d.iosize()), (0x604, 1));
    }

    #[test]
    fn debug_exit_parse_errors() {
        assert!(matches!(
            DebugExit::parse("isa-debugcon,iobase=0xe9"),
            Err(DebugExitSpecError::WrongDriver { .. })
        ));
        assert!(matches!(
            DebugExit::parse("isa-debug-exit,base=1"),
            Err(DebugExitSpecError::UnknownProperty { .. })
        ));
        assert!(matches!(
            DebugExit::parse("isa-debug-exit,iobase"),
            Err(DebugExitSpecError::MissingValue { .. })
        ));
        assert!(matches!(
            DebugExit::parse("isa-debug-exit,iobase=0xzz"),
            Err(DebugExitSpecError::BadNumber { .. })
        ));
        assert!(matches!(
            DebugExit::parse("isa-debug-exit,iobase=0x10000"),
            Err(DebugExitSpecError::OutOfRange { .. })
        ));
        assert!(matches!(
            DebugExit::parse("isa-debug-exit,iosize=0"),
            Err(DebugExitSpecError::OutOfRange { .. })
        ));
        assert!(matches!(
            DebugExit::parse("isa-debug-exit,iobase=0xffff,iosize=2"),
            Err(DebugExitSpecError::OutOfRange { .. })
        ));
        let msg = DebugExit::parse("isa-debug-exit,iosize=x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "-device isa-debug-exit,iosize=x: iosize=x is not a number (decimal or 0x hex)"
        );
    }

    #[test]
    fn debug_exit_status_is_v_shl_1_or_1() {
        let mut d = DebugExit::parse("isa-debug-exit,iobase=0xf4,iosize=0x04").unwrap();
        assert_eq!(d.take_exit_request(), None);
        d.io_write(0xF3, 1, 0x10, 0);
        d.io_write(0xF8, 1, 0x10, 0);
        assert_eq!(d.take_exit_request(), None, "outside iobase..iobase+4");
        d.io_write(0xF4, 1, 0x10, 0);
        assert_eq!(d.take_exit_request(), Some(0x21));
        assert_eq!(d.take_exit_request(), None, "taken once");
        d.io_write(0xF7, 1, 0, 0);
        assert_eq!(d.take_exit_request(), Some(1));
        // The value is taken at the access width.
        d.io_write(0xF4, 1, 0x1234_5678, 0);
        assert_eq!(d.take_exit_request(), Some(0xF1));
        d.io_write(0xF4, 2, 0x1234_5678, 0);
        assert_eq!(d.take_exit_request(), Some(0xACF1));
        d.io_write(0xF4, 4, 0x1234_5678, 0);
        assert_eq!(d.take_exit_request(), Some(0x2468_ACF1));
        // Bit 31 of a 32-bit value is lost, as in QEMU's int exit status.
        d.io_write(0xF4, 4, 0xFFFF_FFFF, 0);
        assert_eq!(d.take_exit_request(), Some(-1));
        // The first request wins until taken.
        d.io_write(0xF4, 1, 1, 0);
        d.io_write(0xF4, 1, 2, 0);
        assert_eq!(d.take_exit_request(), Some(3));
        assert_eq!(d.io_read(0xF4, 1, 0), 0xFFFF_FFFF);
    }

    #[test]
    fn debug_exit_default_ports() {
        let mut d = DebugExit::default();
        assert!(!d.contains(0x500) && d.contains(0x501) && d.contains(0x502));
        assert!(!d.contains(0x503));
        d.io_write(0x502, 1, 0, 0);
        assert_eq!(d.take_exit_request(), Some(1));
    }

    #[test]
    fn post_code_latch() {
        let mut p = PostCode::new();
        assert_eq!(p.last_post_code(), None);
        assert_eq!(p.io_read(POST_CODE_PORT, 1, 0), 0xFF);
        p.io_write(POST_CODE_PORT, 1, 0x3C, 0);
        assert_eq!(p.last_post_code(), Some(0x3C));
        p.io_write(POST_CODE_PORT, 1, 0x00, 0);
        assert_eq!(p.last_post_code(), Some(0x00));
        assert_eq!(p.io_read(POST_CODE_PORT, 1, 0), 0x00);
        p.io_write(0x81, 1, 0x55, 0);
        assert_eq!(
            p.last_post_code(),
            Some(0x00),
            "0x81 is a DMA page register"
        );
    }
}
