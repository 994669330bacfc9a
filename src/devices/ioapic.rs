//! Intel 82093AA I/O APIC (datasheet order 290566): 24 interrupt inputs,
//! each steered by a redirection-table entry to local APICs as an APIC-bus
//! message. Registers are reached indirectly: IOREGSEL at offset 0x00 picks
//! one, IOWIN at offset 0x10 reads or writes it (datasheet 3.0).
//!
//! Pin levels are the board's logical "asserted" lines (ISA IRQs, and PCI
//! INTx as the PIIX3 routes them to ISA lines); as in QEMU the polarity bit
//! is kept for software but the input is not inverted. Edge-triggered pins
//! send on an asserting edge; level-triggered ones send while asserted with
//! Remote IRR clear, which the local APIC's EOI broadcast clears
//! (datasheet 3.2.4; SDM Vol. 3A 11.8.5).

use super::lapic::ApicMessage;

/// The register window's default base (MP spec, QEMU).
pub const DEFAULT_BASE: u64 = 0xFEC0_0000;
/// Decoded window size.
pub const WINDOW: u64 = 0x20;
/// Number of inputs (redirection entries 0-23).
pub const PINS: usize = 24;

/// Memory-mapped registers.
pub const IOREGSEL: u64 = 0x00;
pub const IOWIN: u64 = 0x10;

/// Indirect registers (datasheet 3.2).
pub const IOAPICID: u8 = 0x00;
pub const IOAPICVER: u8 = 0x01;
pub const IOAPICARB: u8 = 0x02;
pub const IOREDTBL0: u8 = 0x10;

/// IOAPICVER: version 0x11, maximum redirection entry 23 (0x17).
pub const VERSION: u32 = 0x0017_0011;

/// Redirection entry bits (datasheet 3.2.4).
pub const RTE_MASKED: u64 = 1 << 16;
pub const RTE_LEVEL: u64 = 1 << 15;
pub const RTE_REMOTE_IRR: u64 = 1 << 14;
pub const RTE_ACTIVE_LOW: u64 = 1 << 13;
pub const RTE_DELIVERY_STATUS: u64 = 1 << 12;
pub const RTE_DEST_LOGICAL: u64 = 1 << 11;
/// Software-writable bits: vector, delivery mode, destination mode,
/// polarity, trigger mode, mask, destination.
const RTE_WRITABLE: u64 = 0xFF00_0000_0001_AFFF;

/// The I/O APIC's state (plain data, saved whole in a snapshot): IOREGSEL,
/// the ID, the 24 redirection entries with their Remote IRR bits, and the
/// input levels, so that a level-triggered pin still asserted at the save
/// sends again after the EOI that follows the restore (datasheet 3.2.4).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IoApic {
    ioregsel: u8,
    /// ID, bits 27:24 of IOAPICID.
    id: u8,
    redtbl: [u64; PINS],
    /// Input levels.
    levels: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new()
    }
}

impl IoApic {
    /// Reset: ID 0, every entry masked (datasheet 3.2.4).
    pub fn new() -> Self {
        IoApic {
            ioregsel: 0,
            id: 0,
            redtbl: [RTE_MASKED; PINS],
            levels: 0,
        }
    }

    pub fn reset(&mut self) {
        let levels = self.levels;
        *self = Self::new();
        self.levels = levels;
    }

    /// A redirection entry (for tests and `info pic`).
    pub fn entry(&self, pin: usize) -> Option<u64> {
        self.redtbl.get(pin).copied()
    }

    fn message(&self, pin: usize) -> ApicMessage {
        let e = self.redtbl[pin];
        ApicMessage {
            vector: e as u8,
            delivery: ((e >> 8) & 7) as u8,
            logical: e & RTE_DEST_LOGICAL != 0,
            dest: (e >> 56) as u8,
            level: e & RTE_LEVEL != 0,
        }
    }

    /// Sends pin `pin`'s message if it is due: asserted level with Remote
    /// IRR clear (which it sets), unmasked.
    fn service_level(&mut self, pin: usize, out: &mut Vec<ApicMessage>) {
        let e = self.redtbl[pin];
        if e & RTE_MASKED != 0 || e & RTE_LEVEL == 0 || self.levels & (1 << pin) == 0 {
            return;
        }
        if e & RTE_REMOTE_IRR != 0 {
            return;
        }
        // Remote IRR is set only for fixed/lowest-priority messages that a
        // local APIC will EOI (QEMU does the same).
        if matches!(((e >> 8) & 7) as u8, 0 | 1) {
            self.redtbl[pin] |= RTE_REMOTE_IRR;
        }
        out.push(self.message(pin));
    }

    /// Drives input `pin`; messages due are appended to `out`.
    pub fn set_pin(&mut self, pin: u8, level: bool, out: &mut Vec<ApicMessage>) {
        let p = usize::from(pin);
        if p >= PINS {
            return;
        }
        let old = self.levels & (1 << p) != 0;
        if level {
            self.levels |= 1 << p;
        } else {
            self.levels &= !(1 << p);
        }
        let e = self.redtbl[p];
        if e & RTE_LEVEL != 0 {
            self.service_level(p, out);
        } else if level && !old && e & RTE_MASKED == 0 {
            out.push(self.message(p));
        }
    }

    /// A pulse on `pin` (an edge that is already over, the PIT's OUT0).
    pub fn pulse_pin(&mut self, pin: u8, out: &mut Vec<ApicMessage>) {
        let was = self.levels & (1 << pin.min(31)) != 0;
        self.set_pin(pin, true, out);
        self.set_pin(pin, was, out);
    }

    /// The EOI broadcast of a level-triggered `vector` (SDM 11.8.5): clears
    /// Remote IRR of the entries with that vector; a still asserted input
    /// sends again.
    pub fn eoi(&mut self, vector: u8, out: &mut Vec<ApicMessage>) {
        for p in 0..PINS {
            let e = self.redtbl[p];
            if e & RTE_REMOTE_IRR != 0 && e as u8 == vector {
                self.redtbl[p] &= !RTE_REMOTE_IRR;
                self.service_level(p, out);
            }
        }
    }

    /// A read of the window at `offset` (IOREGSEL or IOWIN; 32-bit).
    pub fn read(&mut self, offset: u64) -> u32 {
        match offset & !3 {
            IOREGSEL => u32::from(self.ioregsel),
            IOWIN => self.read_reg(self.ioregsel),
            _ => 0,
        }
    }

    /// A write of the window; returns due messages in `out`.
    pub fn write(&mut self, offset: u64, v: u32, out: &mut Vec<ApicMessage>) {
        match offset & !3 {
            IOREGSEL => self.ioregsel = v as u8,
            IOWIN => self.write_reg(self.ioregsel, v, out),
            _ => {}
        }
    }

    fn read_reg(&self, r: u8) -> u32 {
        match r {
            IOAPICID => u32::from(self.id) << 24,
            IOAPICVER => VERSION,
            // The arbitration ID is loaded from the ID (datasheet 3.2.3).
            IOAPICARB => u32::from(self.id) << 24,
            0x10..=0x3F => {
                let e = self.redtbl[usize::from((r - IOREDTBL0) >> 1)];
                if r & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => u32::MAX,
        }
    }

    fn write_reg(&mut self, r: u8, v: u32, out: &mut Vec<ApicMessage>) {
        match r {
            IOAPICID => self.id = ((v >> 24) & 0xF) as u8,
            0x10..=0x3F => {
                let p = usize::from((r - IOREDTBL0) >> 1);
                let old = self.redtbl[p];
                let new = if r & 1 == 0 {
                    (old & !0xFFFF_FFFF) | u64::from(v)
                } else {
                    (old & 0xFFFF_FFFF) | (u64::from(v) << 32)
                };
                let mut e = (new & RTE_WRITABLE) | (old & RTE_REMOTE_IRR);
                if e & RTE_LEVEL == 0 {
                    // Remote IRR is undefined for edge entries: clear it.
                    e &= !RTE_REMOTE_IRR;
                }
                self.redtbl[p] = e;
                self.service_level(p, out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::lapic::delivery;

    fn sel(io: &mut IoApic, r: u8) -> u32 {
        let mut out = Vec::new();
        io.write(IOREGSEL, u32::from(r), &mut out);
        io.read(IOWIN)
    }

    fn program(io: &mut IoApic, pin: u8, lo: u32, hi: u32) -> Vec<ApicMessage> {
        let mut out = Vec::new();
        io.write(IOREGSEL, u32::from(IOREDTBL0 + 2 * pin + 1), &mut out);
        io.write(IOWIN, hi, &mut out);
        io.write(IOREGSEL, u32::from(IOREDTBL0 + 2 * pin), &mut out);
        io.write(IOWIN, lo, &mut out);
        out
    }

    #[test]
    fn id_version_arbitration_and_reset_entries() {
        let mut io = IoApic::new();
        assert_eq!(sel(&mut io, IOAPICVER), 0x0017_0011);
        let mut out = Vec::new();
        io.write(IOREGSEL, 0, &mut out);
        io.write(IOWIN, 0xFF00_0000, &mut out);
        assert_eq!(sel(&mut io, IOAPICID), 0x0F00_0000);
        assert_eq!(sel(&mut io, IOAPICARB), 0x0F00_0000);
        assert_eq!(io.read(IOREGSEL), u32::from(IOAPICARB));
        for pin in 0..24u8 {
            assert_eq!(sel(&mut io, IOREDTBL0 + 2 * pin), 0x0001_0000);
            assert_eq!(sel(&mut io, IOREDTBL0 + 2 * pin + 1), 0);
        }
    }

    #[test]
    fn entry_fields_and_read_only_bits() {
        let mut io = IoApic::new();
        program(&mut io, 3, 0xFFFF_FFFF, 0xFFFF_FFFF);
        assert_eq!(sel(&mut io, 0x16), 0x0001_AFFF);
        assert_eq!(sel(&mut io, 0x17), 0xFF00_0000);
    }

    #[test]
    fn edge_pin_sends_on_the_rising_edge_only_when_unmasked() {
        let mut io = IoApic::new();
        let mut out = Vec::new();
        io.set_pin(2, true, &mut out);
        assert!(out.is_empty(), "masked");
        io.set_pin(2, false, &mut out);
        program(&mut io, 2, 0x0000_0830, 0x0100_0000);
        io.pulse_pin(2, &mut out);
        assert_eq!(
            out,
            vec![ApicMessage {
                vector: 0x30,
                delivery: delivery::FIXED,
                logical: true,
                dest: 1,
                level: false
            }]
        );
        out.clear();
        io.set_pin(2, true, &mut out);
        io.set_pin(2, true, &mut out);
        assert_eq!(out.len(), 1);
    }

    /// A level pin in service (Remote IRR set, input still asserted) saved
    /// and restored: the restored I/O APIC holds it until the EOI and then
    /// sends again, as the saved one does (datasheet 3.2.4).
    #[test]
    fn saved_state_keeps_remote_irr_levels_and_ioregsel() {
        let mut io = IoApic::new();
        let mut out = Vec::new();
        io.set_pin(10, true, &mut out);
        assert_eq!(program(&mut io, 10, 0x0000_A040, 0x0200_0000).len(), 1);
        io.write(IOREGSEL, u32::from(IOREDTBL0 + 21), &mut out);
        let bytes = crate::snapshot::encode(&io).expect("encode");
        let mut b: IoApic = crate::snapshot::decode(&bytes).expect("decode");
        assert_eq!(b.read(IOREGSEL), u32::from(IOREDTBL0 + 21));
        assert_eq!(b.read(IOWIN), 0x0200_0000);
        for pin in 0..PINS {
            assert_eq!(b.entry(pin), io.entry(pin), "entry {pin}");
        }
        b.set_pin(10, true, &mut out);
        assert!(out.is_empty(), "Remote IRR holds it");
        b.eoi(0x40, &mut out);
        assert_eq!(out.len(), 1, "still asserted: sent again");
        assert!(crate::snapshot::decode::<IoApic>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn level_pin_remote_irr_and_eoi_broadcast() {
        let mut io = IoApic::new();
        let mut out = Vec::new();
        io.set_pin(10, true, &mut out);
        // Unmasking an asserted level input sends at once.
        let sent = program(&mut io, 10, 0x0000_A040, 0);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].level);
        assert_ne!(sel(&mut io, 0x24) & (1 << 14), 0, "remote IRR");
        // Held until the EOI.
        io.set_pin(10, true, &mut out);
        assert!(out.is_empty());
        io.eoi(0x41, &mut out);
        assert!(out.is_empty(), "other vector");
        io.eoi(0x40, &mut out);
        assert_eq!(out.len(), 1, "still asserted: again");
        out.clear();
        io.set_pin(10, false, &mut out);
        io.eoi(0x40, &mut out);
        assert!(out.is_empty());
        assert_eq!(sel(&mut io, 0x24) & (1 << 14), 0);
    }
}
