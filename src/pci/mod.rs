//! PCI: the type-0 configuration space every function has, with BARs that
//! size and move as the PCI Local Bus Specification 3.0 (section 6) says, and
//! capability lists; the host bridge's configuration mechanism #1 lives in
//! the platform (`crate::platform`), which routes ports 0xCF8/0xCFC.
//!
//! A PCI device is an ordinary [`crate::devices::Device`] whose
//! [`Device::pci`](crate::devices::Device::pci) returns its function; its
//! [`Device::resources`](crate::devices::Device::resources) list the BARs it
//! currently decodes ([`ConfigSpace::bar_resources`]).

pub mod firmware;
pub mod host;

use crate::devices::Resources;

// Configuration space header offsets (PCI 3.0 section 6.1, figure 6-1).
pub const VENDOR_ID: usize = 0x00;
pub const DEVICE_ID: usize = 0x02;
pub const COMMAND: usize = 0x04;
pub const STATUS: usize = 0x06;
pub const REVISION_ID: usize = 0x08;
pub const PROG_IF: usize = 0x09;
pub const SUBCLASS: usize = 0x0A;
pub const CLASS: usize = 0x0B;
pub const CACHE_LINE_SIZE: usize = 0x0C;
pub const LATENCY_TIMER: usize = 0x0D;
pub const HEADER_TYPE: usize = 0x0E;
pub const BAR0: usize = 0x10;
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2C;
pub const SUBSYSTEM_ID: usize = 0x2E;
pub const CAPABILITIES_PTR: usize = 0x34;
pub const INTERRUPT_LINE: usize = 0x3C;
pub const INTERRUPT_PIN: usize = 0x3D;

// Command register bits (section 6.2.2).
pub const CMD_IO: u16 = 0b0000_0001;
pub const CMD_MEMORY: u16 = 0b0000_0010;
pub const CMD_BUS_MASTER: u16 = 0b0000_0100;
pub const CMD_INTX_DISABLE: u16 = 0b0000_0100_0000_0000;
// Status register bits.
pub const STATUS_INTERRUPT: u16 = 0b0000_0000_0000_1000;
pub const STATUS_CAP_LIST: u16 = 0b0000_0000_0001_0000;

/// Capability IDs (PCI Code and ID Assignment Specification).
pub const CAP_ID_VENDOR: u8 = 0x09;

/// The interrupt line a PCI function's INTx pin reaches before routing:
/// lines 16-19 are PIRQA-D, which the PIIX3 routes to ISA IRQs through its
/// PIRQRC registers (and which an I/O APIC sees as pins 16-19, as on QEMU).
pub const PIRQ_LINE_BASE: u8 = 16;

/// The PIRQ an INTx pin (1 = INTA) of device `slot` reaches on QEMU's
/// i440FX/PIIX3 board, as an interrupt line: PIRQ `(slot - 1 + pin - 1) mod
/// 4` (QEMU's `pci_slot_get_pirq` for the PIIX3; SeaBIOS and vx86's BIOS,
/// `firmware/pci.inc`, assume the same wiring when they write the Interrupt
/// Line register, so the three must agree).
pub fn pirq_line(slot: u8, pin: u8) -> u8 {
    PIRQ_LINE_BASE + (slot.wrapping_add(pin).wrapping_sub(2) & 3)
}

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BarKind {
    Io,
    Mem32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Bar {
    kind: BarKind,
    /// A power of two (at least 4 for I/O, 16 for memory).
    size: u64,
}

/// One function's 256-byte configuration space: values, which bits the
/// guest may write, and the BARs.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ConfigSpace {
    #[serde(with = "crate::snapshot::array")]
    data: [u8; 256],
    /// Bits writable by the guest.
    #[serde(with = "crate::snapshot::array")]
    wmask: [u8; 256],
    /// Bits a 1 clears (status error bits).
    #[serde(with = "crate::snapshot::array")]
    w1cmask: [u8; 256],
    bars: [Option<Bar>; 6],
    /// Where the next capability goes, and the previous one's next pointer.
    next_cap: usize,
    last_cap_next: usize,
}

impl ConfigSpace {
    /// A type-0 header with the given IDs and class code.
    pub fn new(vendor: u16, device: u16, class: u8, subclass: u8, prog_if: u8, rev: u8) -> Self {
        let mut c = ConfigSpace {
            data: [0; 256],
            wmask: [0; 256],
            w1cmask: [0; 256],
            bars: [None; 6],
            next_cap: 0x40,
            last_cap_next: CAPABILITIES_PTR,
        };
        c.put16(VENDOR_ID, vendor);
        c.put16(DEVICE_ID, device);
        c.data[REVISION_ID] = rev;
        c.data[PROG_IF] = prog_if;
        c.data[SUBCLASS] = subclass;
        c.data[CLASS] = class;
        // Command: I/O, memory, bus master, INTx disable are writable.
        let cmd = CMD_IO | CMD_MEMORY | CMD_BUS_MASTER | CMD_INTX_DISABLE;
        c.wmask[COMMAND..COMMAND + 2].copy_from_slice(&cmd.to_le_bytes());
        // Status: the error bits (11-15) are write-1-to-clear.
        c.w1cmask[STATUS + 1] = 0xF8;
        c.wmask[CACHE_LINE_SIZE] = 0xFF;
        c.wmask[LATENCY_TIMER] = 0xFF;
        c.wmask[INTERRUPT_LINE] = 0xFF;
        c
    }

    pub fn set_subsystem(&mut self, vendor: u16, id: u16) {
        self.put16(SUBSYSTEM_VENDOR_ID, vendor);
        self.put16(SUBSYSTEM_ID, id);
    }

    pub fn set_header_type(&mut self, v: u8) {
        self.data[HEADER_TYPE] = v;
    }

    /// INTx pin (1 = INTA ... 4 = INTD; 0 none).
    pub fn set_interrupt_pin(&mut self, pin: u8) {
        self.data[INTERRUPT_PIN] = pin;
    }

    pub fn interrupt_pin(&self) -> u8 {
        self.data[INTERRUPT_PIN]
    }

    /// Declares BAR `i` (0-5) of `size` bytes (rounded up to a power of two).
    pub fn add_bar(&mut self, i: usize, kind: BarKind, size: u64) {
        let Some(slot) = self.bars.get_mut(i) else {
            return;
        };
        let min = if kind == BarKind::Io { 4 } else { 16 };
        let size = size.max(min).next_power_of_two();
        *slot = Some(Bar { kind, size });
        let off = BAR0 + 4 * i;
        let mask = !(size as u32 - 1);
        let low_bits = match kind {
            BarKind::Io => 0b01,
            BarKind::Mem32 => 0b0000,
        };
        self.put32(off, low_bits);
        let wm = match kind {
            BarKind::Io => mask & 0xFFFF_FFFC,
            BarKind::Mem32 => mask & 0xFFFF_FFF0,
        };
        self.wmask[off..off + 4].copy_from_slice(&wm.to_le_bytes());
    }

    /// Appends a capability with `id` and body `body` (the bytes after the ID
    /// and next pointer); returns its offset. `writable` marks body bytes the
    /// guest may change (same length as `body`, or empty for read-only).
    pub fn add_capability(&mut self, id: u8, body: &[u8], writable: &[u8]) -> Option<usize> {
        let off = self.next_cap;
        let len = (2 + body.len() + 3) & !3;
        if off + len > 256 {
            return None;
        }
        self.data[off] = id;
        self.data[off + 1] = 0;
        self.data[off + 2..off + 2 + body.len()].copy_from_slice(body);
        for (i, &m) in writable.iter().enumerate().take(body.len()) {
            self.wmask[off + 2 + i] = m;
        }
        self.data[self.last_cap_next] = off as u8;
        self.last_cap_next = off + 1;
        self.next_cap = off + len;
        let st = self.get16(STATUS) | STATUS_CAP_LIST;
        self.put16(STATUS, st);
        Some(off)
    }

    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    /// Sets or clears the Interrupt Status bit (section 6.2.3).
    pub fn set_interrupt_status(&mut self, on: bool) {
        let st = self.get16(STATUS);
        let st = if on {
            st | STATUS_INTERRUPT
        } else {
            st & !STATUS_INTERRUPT
        };
        self.put16(STATUS, st);
    }

    /// Whether the INTx output may be driven (command bit 10 clear).
    pub fn intx_enabled(&self) -> bool {
        self.command() & CMD_INTX_DISABLE == 0
    }

    pub fn bus_master(&self) -> bool {
        self.command() & CMD_BUS_MASTER != 0
    }

    /// Where BAR `i` decodes now: `None` when it does not exist, its decode is
    /// disabled in the command register, or it is unassigned (0).
    pub fn bar_address(&self, i: usize) -> Option<u64> {
        let bar = self.bars.get(i).copied().flatten()?;
        let raw = self.get32(BAR0 + 4 * i) as u64;
        let cmd = self.command();
        let (addr, on) = match bar.kind {
            BarKind::Io => (raw & 0xFFFF_FFFC, cmd & CMD_IO != 0),
            BarKind::Mem32 => (raw & 0xFFFF_FFF0, cmd & CMD_MEMORY != 0),
        };
        // An I/O BAR must fit the 64 KiB port space; address 0 is unassigned.
        let fits = match bar.kind {
            BarKind::Io => addr + bar.size <= 0x1_0000,
            BarKind::Mem32 => addr + bar.size <= 1 << 32,
        };
        (on && addr != 0 && fits).then_some(addr)
    }

    pub fn bar_size(&self, i: usize) -> u64 {
        self.bars.get(i).copied().flatten().map_or(0, |b| b.size)
    }

    pub fn bar_kind(&self, i: usize) -> Option<BarKind> {
        self.bars.get(i).copied().flatten().map(|b| b.kind)
    }

    /// The windows of every decoding BAR, for [`Device::resources`](crate::devices::Device::resources).
    pub fn bar_resources(&self) -> Resources {
        let mut r = Resources::default();
        for i in 0..6 {
            let (Some(addr), Some(kind)) = (self.bar_address(i), self.bar_kind(i)) else {
                continue;
            };
            let size = self.bar_size(i);
            match kind {
                BarKind::Io => {
                    r.ports.push(addr as u16..=(addr + size - 1) as u16);
                }
                BarKind::Mem32 => r.mmio.push(addr..addr + size),
            }
        }
        r
    }

    /// Which BAR (and the offset in it) decodes port or address `a`.
    pub fn bar_hit(&self, kind: BarKind, a: u64) -> Option<(usize, u64)> {
        (0..6).find_map(|i| {
            let addr = self.bar_address(i)?;
            (self.bar_kind(i) == Some(kind) && a >= addr && a < addr + self.bar_size(i))
                .then(|| (i, a - addr))
        })
    }

    /// A configuration read of `size` bytes at `off` (aligned by the caller's
    /// mechanism #1 port offset; bytes past 255 read as ones).
    pub fn read(&self, off: usize, size: u8) -> u32 {
        let mut v = 0u32;
        for i in 0..usize::from(size) {
            let b = self.data.get(off + i).copied().unwrap_or(0xFF);
            v |= u32::from(b) << (8 * i);
        }
        v
    }

    /// A configuration write; returns true when it changed what the function
    /// decodes (a BAR or the command register's enables).
    pub fn write(&mut self, off: usize, size: u8, value: u32) -> bool {
        let before: Vec<Option<u64>> = (0..6).map(|i| self.bar_address(i)).collect();
        for i in 0..usize::from(size) {
            let o = off + i;
            let (Some(d), Some(&m), Some(&c)) = (
                self.data.get(o).copied(),
                self.wmask.get(o),
                self.w1cmask.get(o),
            ) else {
                break;
            };
            let b = (value >> (8 * i)) as u8;
            let mut nd = (d & !m) | (b & m);
            nd &= !(b & c);
            self.data[o] = nd;
        }
        (0..6).any(|i| self.bar_address(i) != before[i])
    }

    pub fn get16(&self, off: usize) -> u16 {
        self.read(off, 2) as u16
    }
    pub fn get32(&self, off: usize) -> u32 {
        self.read(off, 4)
    }
    pub fn put8(&mut self, off: usize, v: u8) {
        if let Some(b) = self.data.get_mut(off) {
            *b = v;
        }
    }
    pub fn put16(&mut self, off: usize, v: u16) {
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            self.put8(off + i, *b);
        }
    }
    pub fn put32(&mut self, off: usize, v: u32) {
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            self.put8(off + i, *b);
        }
    }
    /// The 256 register bytes as the guest reads them (for a snapshot of a
    /// function whose layout its constructor fixes).
    pub fn bytes(&self) -> &[u8; 256] {
        &self.data
    }

    /// Puts back the guest's part of [`ConfigSpace::bytes`] saved earlier:
    /// only the bits the guest can write or clear (command, BAR addresses,
    /// interrupt line, ...) are taken from `saved`; the IDs, the capability
    /// list, the BAR sizes and types stay this function's, so a damaged
    /// snapshot cannot give the function a layout it was not built with.
    pub fn restore_writable(&mut self, saved: &[u8; 256]) {
        for (i, (d, s)) in self.data.iter_mut().zip(saved).enumerate() {
            let m = self.wmask[i] | self.w1cmask[i];
            *d = (*d & !m) | (s & m);
        }
    }

    /// Makes `len` bytes at `off` guest-writable with mask `m` (device-specific registers).
    pub fn set_wmask(&mut self, off: usize, m: &[u8]) {
        for (i, &b) in m.iter().enumerate() {
            if let Some(w) = self.wmask.get_mut(off + i) {
                *w = b;
            }
        }
    }
}

/// A PCI function's view of its configuration space.
pub trait PciFunction {
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;
    /// A configuration write, after the standard semantics were applied by
    /// `ConfigSpace::write` (devices with side effects override it).
    fn config_written(&mut self, _off: usize, _size: u8) {}
}

/// A PCI address on bus 0: device (slot) and function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PciAddr {
    pub slot: u8,
    pub func: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_sizing_reads_back_the_size_mask() {
        let mut c = ConfigSpace::new(0x1AF4, 0x1000, 2, 0, 0, 0);
        c.add_bar(0, BarKind::Io, 0x20);
        c.add_bar(1, BarKind::Mem32, 0x1000);
        // Sizing: write all ones, read the mask back (PCI 3.0 6.2.5.1).
        c.write(BAR0, 4, 0xFFFF_FFFF);
        assert_eq!(c.get32(BAR0), 0xFFFF_FFE1);
        c.write(BAR0 + 4, 4, 0xFFFF_FFFF);
        assert_eq!(c.get32(BAR0 + 4), 0xFFFF_F000);
        // Unused BARs read 0 and cannot be written.
        c.write(BAR0 + 8, 4, 0xFFFF_FFFF);
        assert_eq!(c.get32(BAR0 + 8), 0);
    }

    #[test]
    fn bars_decode_only_when_enabled_and_assigned() {
        let mut c = ConfigSpace::new(0x1AF4, 0x1000, 2, 0, 0, 0);
        c.add_bar(0, BarKind::Io, 0x20);
        c.add_bar(1, BarKind::Mem32, 0x1000);
        assert!(!c.write(BAR0, 4, 0xC000), "decode still off");
        c.write(BAR0 + 4, 4, 0xFEB0_0000);
        assert_eq!(c.bar_address(0), None);
        assert!(c.write(COMMAND, 2, u32::from(CMD_IO)));
        assert_eq!(c.bar_address(0), Some(0xC000));
        assert_eq!(c.bar_address(1), None);
        c.write(COMMAND, 2, u32::from(CMD_IO | CMD_MEMORY));
        assert_eq!(c.bar_address(1), Some(0xFEB0_0000));
        let r = c.bar_resources();
        assert_eq!(r.ports, vec![0xC000..=0xC01F]);
        assert_eq!(r.mmio, vec![0xFEB0_0000..0xFEB0_1000]);
        assert_eq!(c.bar_hit(BarKind::Io, 0xC01F), Some((0, 0x1F)));
        assert_eq!(c.bar_hit(BarKind::Io, 0xC020), None);
    }

    #[test]
    fn read_only_fields_and_capabilities() {
        let mut c = ConfigSpace::new(0x8086, 0x1237, 6, 0, 0, 2);
        c.write(VENDOR_ID, 4, 0);
        assert_eq!(c.get16(VENDOR_ID), 0x8086);
        assert_eq!(c.get16(DEVICE_ID), 0x1237);
        let a = c
            .add_capability(CAP_ID_VENDOR, &[14, 1, 2, 3], &[])
            .expect("room");
        let b = c
            .add_capability(CAP_ID_VENDOR, &[14, 4, 5, 6], &[])
            .expect("room");
        assert_eq!(c.read(CAPABILITIES_PTR, 1) as usize, a);
        assert_eq!(c.read(a + 1, 1) as usize, b);
        assert_eq!(c.read(b + 1, 1), 0);
        assert_ne!(c.get16(STATUS) & STATUS_CAP_LIST, 0);
        // Interrupt line is a scratch register.
        c.write(INTERRUPT_LINE, 1, 11);
        assert_eq!(c.read(INTERRUPT_LINE, 1), 11);
    }

    #[test]
    fn swizzle_is_qemus_piix3_wiring() {
        // Slot 1 INTA is PIRQA; each slot and each pin moves one PIRQ on.
        assert_eq!(pirq_line(1, 1), 16);
        assert_eq!(pirq_line(3, 1), 18);
        assert_eq!(pirq_line(4, 1), 19);
        assert_eq!(pirq_line(4, 2), 16);
        assert_eq!(pirq_line(0, 1), 19);
    }
}
