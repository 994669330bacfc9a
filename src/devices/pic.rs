//! Intel 8259A programmable interrupt controller, master/slave pair as on the PC/AT,
//! plus the edge/level control registers (ELCR) at 0x4D0/0x4D1.
//!
//! Sources: Intel 8259A datasheet (order 231468): "Interrupt sequence", "Initialization
//! command words", "Operation command words", "Fully nested mode", "Automatic rotation",
//! "Specific rotation", "Special mask mode", "Poll command", "Cascade mode", and the
//! note in "Edge and level triggered modes" on the default IR7 (spurious interrupt).
//!
//! Wiring (PC/AT): the slave's INT output drives the master's IR2; ISA IRQ 8..15 are the
//! slave's IR0..IR7. The machine raises and lowers lines with [`Pic::set_irq`], polls
//! [`Pic::intr`] before each instruction block, and runs [`Pic::acknowledge`] (the INTA
//! cycle) when the CPU accepts an interrupt.

use super::{Nanos, PortDevice};

/// Master command port (ICW1, OCW2, OCW3; reads IRR/ISR/poll).
pub const PORT_MASTER_CMD: u16 = 0x20;
/// Master data port (ICW2-ICW4, OCW1 = IMR).
pub const PORT_MASTER_DATA: u16 = 0x21;
/// Slave command port.
pub const PORT_SLAVE_CMD: u16 = 0xA0;
/// Slave data port.
pub const PORT_SLAVE_DATA: u16 = 0xA1;
/// ELCR for IRQ0-7 (1 = level triggered).
pub const PORT_ELCR_MASTER: u16 = 0x4D0;
/// ELCR for IRQ8-15.
pub const PORT_ELCR_SLAVE: u16 = 0x4D1;

/// ICW1 is recognised on the command port when bit 4 (D4) is 1.
const ICW1_SELECT: u8 = 0b0001_0000;
/// ICW1 IC4: ICW4 will be written.
const ICW1_IC4: u8 = 0b0000_0001;
/// ICW1 SNGL: single 8259A, no ICW3.
const ICW1_SNGL: u8 = 0b0000_0010;
/// ICW1 LTIM: level triggered mode for all inputs.
const ICW1_LTIM: u8 = 0b0000_1000;
/// ICW2 T7-T3: the vector base (x86 mode ignores the low three bits).
const ICW2_VECTOR_BASE: u8 = 0b1111_1000;
/// ICW4 AEOI: automatic end of interrupt.
const ICW4_AEOI: u8 = 0b0000_0010;
/// ICW4 SFNM: special fully nested mode.
const ICW4_SFNM: u8 = 0b0001_0000;
/// OCW3 is recognised when D4 = 0 and D3 = 1; OCW2 when both are 0.
const OCW_SELECT_OCW3: u8 = 0b0000_1000;
/// OCW2 R, SL, EOI bits.
const OCW2_COMMAND: u8 = 0b1110_0000;
/// OCW2 L2-L0: the IR level acted on.
const OCW2_LEVEL: u8 = 0b0000_0111;
const OCW2_NONSPECIFIC_EOI: u8 = 0b0010_0000;
const OCW2_SPECIFIC_EOI: u8 = 0b0110_0000;
const OCW2_ROTATE_NONSPECIFIC_EOI: u8 = 0b1010_0000;
const OCW2_ROTATE_AEOI_SET: u8 = 0b1000_0000;
const OCW2_ROTATE_AEOI_CLEAR: u8 = 0b0000_0000;
const OCW2_ROTATE_SPECIFIC_EOI: u8 = 0b1110_0000;
const OCW2_SET_PRIORITY: u8 = 0b1100_0000;
/// OCW3 ESMM: enable a change of special mask mode.
const OCW3_ESMM: u8 = 0b0100_0000;
/// OCW3 SMM: the new special mask mode.
const OCW3_SMM: u8 = 0b0010_0000;
/// OCW3 P: poll command.
const OCW3_POLL: u8 = 0b0000_0100;
/// OCW3 RR: act on RIS.
const OCW3_RR: u8 = 0b0000_0010;
/// OCW3 RIS: 1 = read ISR, 0 = read IRR.
const OCW3_RIS: u8 = 0b0000_0001;
/// Poll word bit 7: an interrupt was pending.
const POLL_INTERRUPT: u8 = 0b1000_0000;
/// The master input the slave's INT drives on the PC/AT.
const CASCADE_IR: u8 = 2;
/// ELCR bits that may be set: IRQ0, 1 and 2 are always edge triggered.
const ELCR_MASTER_WRITABLE: u8 = 0b1111_1000;
/// ELCR bits that may be set: IRQ8 (RTC) and IRQ13 (FPU) are always edge triggered.
const ELCR_SLAVE_WRITABLE: u8 = 0b1101_1110;
/// The vector offset of the default IR7 delivered when a request vanished before INTA.
const SPURIOUS_IR: u8 = 7;

/// Where a chip is in the ICW1..ICW4 initialization sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum InitState {
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Chip {
    /// Interrupt request register.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register (OCW1).
    imr: u8,
    /// ELCR bits: 1 = the input is level sensitive.
    elcr: u8,
    /// Which ELCR bits the board lets software set.
    elcr_writable: u8,
    /// Current input line levels, for edge detection.
    lines: u8,
    /// ICW1 LTIM: all inputs level sensitive.
    ltim: bool,
    /// ICW1 SNGL.
    single: bool,
    /// ICW1 IC4 of the current initialization.
    icw4_needed: bool,
    /// ICW2 vector base.
    vector_base: u8,
    /// ICW3 (slave bitmap on the master, ID on the slave).
    icw3: u8,
    /// ICW4 AEOI.
    auto_eoi: bool,
    /// ICW4 SFNM.
    special_fully_nested: bool,
    /// OCW2 "rotate in automatic EOI mode" flip-flop.
    rotate_in_aeoi: bool,
    /// The IR level with the lowest priority; the highest is the next one up.
    lowest_priority: u8,
    /// OCW3 special mask mode.
    special_mask: bool,
    /// OCW3 RIS latched by RR: reads of the command port return ISR instead of IRR.
    read_isr: bool,
    /// OCW3 P: the next command-port read is a poll (acts as INTA).
    poll: bool,
    init: InitState,
    /// Whether this chip's IR2 is the cascade input (master only).
    is_master: bool,
}

impl Chip {
    fn new(is_master: bool) -> Self {
        Chip {
            irr: 0,
            isr: 0,
            imr: 0,
            elcr: 0,
            elcr_writable: if is_master {
                ELCR_MASTER_WRITABLE
            } else {
                ELCR_SLAVE_WRITABLE
            },
            lines: 0,
            ltim: false,
            single: false,
            icw4_needed: false,
            vector_base: 0,
            icw3: 0,
            auto_eoi: false,
            special_fully_nested: false,
            rotate_in_aeoi: false,
            lowest_priority: 7,
            special_mask: false,
            read_isr: false,
            poll: false,
            init: InitState::Ready,
            is_master,
        }
    }

    /// Inputs that are level sensitive (ICW1 LTIM or the ELCR).
    fn level_mask(&self) -> u8 {
        if self.ltim {
            0xFF
        } else {
            self.elcr
        }
    }

    /// Drive input `ir` (0..7). Edge inputs latch IRR on a rising edge; level inputs
    /// make IRR follow the line (datasheet "Edge and level triggered modes").
    fn set_input(&mut self, ir: u8, level: bool) {
        let bit = 1u8 << (ir & 7);
        let was_high = self.lines & bit != 0;
        if level {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
        if self.level_mask() & bit != 0 {
            if level {
                self.irr |= bit;
            } else {
                self.irr &= !bit;
            }
        } else if level && !was_high {
            self.irr |= bit;
        }
    }

    /// The IR levels from highest to lowest priority.
    fn priority_order(&self) -> impl Iterator<Item = u8> {
        let first = (self.lowest_priority + 1) & 7;
        (0..8u8).map(move |i| (first + i) & 7)
    }

    /// The highest-priority IR that may interrupt now, honouring ISR (fully nested
    /// mode), IMR, special mask mode and special fully nested mode.
    fn highest_request(&self) -> Option<u8> {
        let requests = self.irr & !self.imr;
        if requests == 0 {
            return None;
        }
        // Special mask mode: a masked in-service level no longer inhibits lower ones.
        let blocking = if self.special_mask {
            self.isr & !self.imr
        } else {
            self.isr
        };
        for ir in self.priority_order() {
            let bit = 1u8 << ir;
            let sfnm_cascade = self.is_master
                && self.special_fully_nested
                && !self.single
                && ir == CASCADE_IR
                && requests & bit != 0;
            if blocking & bit != 0 && !sfnm_cascade {
                return None;
            }
            if requests & bit != 0 {
                return Some(ir);
            }
        }
        None
    }

    /// The highest-priority in-service level (the one a non-specific EOI clears).
    fn highest_in_service(&self) -> Option<u8> {
        self.priority_order().find(|&ir| self.isr & (1 << ir) != 0)
    }

    /// INTA for a request already chosen: IRR -> ISR (or AEOI), rotation in AEOI.
    fn accept(&mut self, ir: u8) {
        let bit = 1u8 << (ir & 7);
        self.irr &= !bit;
        // A level-sensitive input that is still high keeps requesting.
        if self.level_mask() & self.lines & bit != 0 {
            self.irr |= bit;
        }
        if self.auto_eoi {
            if self.rotate_in_aeoi {
                self.lowest_priority = ir & 7;
            }
        } else {
            self.isr |= bit;
        }
    }

    /// INTA cycle on this chip alone: the vector, or the default IR7 when the
    /// request vanished (ISR is then left untouched, as the datasheet requires).
    fn acknowledge(&mut self) -> (u8, Option<u8>) {
        match self.highest_request() {
            Some(ir) => {
                self.accept(ir);
                (self.vector_base.wrapping_add(ir), Some(ir))
            }
            None => (self.vector_base.wrapping_add(SPURIOUS_IR), None),
        }
    }

    fn write_cmd(&mut self, value: u8) {
        if value & ICW1_SELECT != 0 {
            self.write_icw1(value);
        } else if value & OCW_SELECT_OCW3 != 0 {
            self.write_ocw3(value);
        } else {
            self.write_ocw2(value);
        }
    }

    /// ICW1 resets the edge sense circuit, clears IMR, gives IR7 the lowest priority,
    /// clears special mask mode, selects IRR for reads, and clears the ICW4 functions
    /// when IC4 = 0 (datasheet "Initialization command words"). ISR is cleared as well
    /// so a re-initialization by firmware starts with nothing in service.
    fn write_icw1(&mut self, value: u8) {
        self.ltim = value & ICW1_LTIM != 0;
        self.single = value & ICW1_SNGL != 0;
        self.icw4_needed = value & ICW1_IC4 != 0;
        self.imr = 0;
        self.isr = 0;
        // Edge inputs must see a new low-to-high transition; level inputs still follow
        // their line.
        self.irr = self.lines & self.level_mask();
        self.lowest_priority = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_in_aeoi = false;
        if !self.icw4_needed {
            self.auto_eoi = false;
            self.special_fully_nested = false;
        }
        self.init = InitState::Icw2;
    }

    fn write_ocw2(&mut self, value: u8) {
        let level = value & OCW2_LEVEL;
        match value & OCW2_COMMAND {
            OCW2_NONSPECIFIC_EOI => {
                if let Some(ir) = self.highest_in_service() {
                    self.isr &= !(1 << ir);
                }
            }
            OCW2_SPECIFIC_EOI => self.isr &= !(1 << level),
            OCW2_ROTATE_NONSPECIFIC_EOI => {
                if let Some(ir) = self.highest_in_service() {
                    self.isr &= !(1 << ir);
                    self.lowest_priority = ir;
                }
            }
            OCW2_ROTATE_AEOI_SET => self.rotate_in_aeoi = true,
            OCW2_ROTATE_AEOI_CLEAR => self.rotate_in_aeoi = false,
            OCW2_ROTATE_SPECIFIC_EOI => {
                self.isr &= !(1 << level);
                self.lowest_priority = level;
            }
            OCW2_SET_PRIORITY => self.lowest_priority = level,
            // 010: no operation.
            _ => {}
        }
    }

    fn write_ocw3(&mut self, value: u8) {
        if value & OCW3_ESMM != 0 {
            self.special_mask = value & OCW3_SMM != 0;
        }
        if value & OCW3_RR != 0 {
            self.read_isr = value & OCW3_RIS != 0;
        }
        // The poll bit overrides the register read for the next RD pulse.
        self.poll = value & OCW3_POLL != 0;
    }

    fn write_data(&mut self, value: u8) {
        match self.init {
            InitState::Ready => self.imr = value,
            InitState::Icw2 => {
                self.vector_base = value & ICW2_VECTOR_BASE;
                self.init = if !self.single {
                    InitState::Icw3
                } else if self.icw4_needed {
                    InitState::Icw4
                } else {
                    InitState::Ready
                };
            }
            InitState::Icw3 => {
                self.icw3 = value;
                self.init = if self.icw4_needed {
                    InitState::Icw4
                } else {
                    InitState::Ready
                };
            }
            InitState::Icw4 => {
                self.auto_eoi = value & ICW4_AEOI != 0;
                self.special_fully_nested = value & ICW4_SFNM != 0;
                self.init = InitState::Ready;
            }
        }
    }

    /// Poll command: the read acts as an INTA and returns I and W2-W0
    /// (datasheet "The poll command").
    fn read_poll(&mut self) -> u8 {
        self.poll = false;
        match self.highest_request() {
            Some(ir) => {
                self.accept(ir);
                POLL_INTERRUPT | ir
            }
            None => 0,
        }
    }

    fn read_cmd(&mut self) -> u8 {
        if self.poll {
            self.read_poll()
        } else if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    fn read_data(&mut self) -> u8 {
        if self.poll {
            return self.read_poll();
        }
        self.imr
    }

    fn write_elcr(&mut self, value: u8) {
        self.elcr = value & self.elcr_writable;
        // A level input now follows its line; an edge input keeps its latch.
        let level = self.level_mask();
        self.irr = (self.irr & !level) | (self.lines & level);
    }
}

/// The PC/AT pair of 8259As.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Pic {
    master: Chip,
    slave: Chip,
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic {
    /// Power-on state: both chips uninitialized (vector base 0, nothing masked), all
    /// inputs edge triggered. Firmware programs ICW1-ICW4 before enabling interrupts.
    pub fn new() -> Self {
        Pic {
            master: Chip::new(true),
            slave: Chip::new(false),
        }
    }

    /// Drive ISA IRQ line `irq` (0..15) to `level`. IRQ2 is the cascade input on the
    /// AT and is driven by the slave, so `set_irq(2, _)` is ignored (AT boards route
    /// the ISA-bus IRQ2 pin to IRQ9). Out-of-range lines are ignored.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 if irq != CASCADE_IR => self.master.set_input(irq, level),
            8..=15 => {
                self.slave.set_input(irq - 8, level);
                self.update_cascade();
            }
            _ => {}
        }
    }

    /// The chip and IR bit of ISA line `irq`.
    fn chip_bit(&self, irq: u8) -> Option<(&Chip, u8)> {
        match irq {
            0..=7 => Some((&self.master, 1u8 << irq)),
            8..=15 => Some((&self.slave, 1u8 << (irq - 8))),
            _ => None,
        }
    }

    /// Whether ISA line `irq` has a request latched in its chip's IRR that
    /// the IMR lets through: another edge now would be merged into it.
    pub fn request_pending(&self, irq: u8) -> bool {
        self.chip_bit(irq)
            .is_some_and(|(chip, bit)| chip.irr & bit != 0 && chip.imr & bit == 0)
    }

    /// Whether ISA line `irq` is masked in its chip's IMR (OCW1).
    pub fn masked(&self, irq: u8) -> bool {
        self.chip_bit(irq)
            .is_none_or(|(chip, bit)| chip.imr & bit != 0)
    }

    /// The master's INT output, i.e. the CPU's INTR pin.
    pub fn intr(&self) -> bool {
        self.master.highest_request().is_some()
    }

    /// The two INTA pulses: returns the vector, moves the request from IRR to ISR on
    /// the chip(s) involved, fetches the vector from the slave for IR2, and returns
    /// the default IR7 of the chip concerned (vector base + 7) when the request
    /// vanished before INTA, without setting that chip's ISR bit.
    pub fn acknowledge(&mut self) -> u8 {
        let (vector, ir) = self.master.acknowledge();
        if ir == Some(CASCADE_IR) && self.cascade_active() {
            let (slave_vector, _) = self.slave.acknowledge();
            // The slave's INT is re-sampled after the INTA sequence: if it still has a
            // request (e.g. auto-EOI with several pending), the master sees it again.
            if self.slave.highest_request().is_some() {
                self.master.irr |= 1 << CASCADE_IR;
            }
            self.update_cascade();
            return slave_vector;
        }
        vector
    }

    /// True when the master is in cascade mode with a slave on IR2 (ICW1 SNGL = 0,
    /// ICW3 bit 2). Before initialization (ICW3 = 0) the AT wiring is assumed.
    fn cascade_active(&self) -> bool {
        !self.master.single && (self.master.icw3 == 0 || self.master.icw3 & (1 << CASCADE_IR) != 0)
    }

    /// Propagate the slave's INT output to the master's IR2 input.
    fn update_cascade(&mut self) {
        let level = self.slave.highest_request().is_some();
        self.master.set_input(CASCADE_IR, level);
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        let value = match port {
            PORT_MASTER_CMD => self.master.read_cmd(),
            PORT_MASTER_DATA => self.master.read_data(),
            PORT_SLAVE_CMD => self.slave.read_cmd(),
            PORT_SLAVE_DATA => self.slave.read_data(),
            PORT_ELCR_MASTER => self.master.elcr,
            PORT_ELCR_SLAVE => self.slave.elcr,
            _ => 0xFF,
        };
        self.update_cascade();
        value
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            PORT_MASTER_CMD => self.master.write_cmd(value),
            PORT_MASTER_DATA => self.master.write_data(value),
            PORT_SLAVE_CMD => self.slave.write_cmd(value),
            PORT_SLAVE_DATA => self.slave.write_data(value),
            PORT_ELCR_MASTER => self.master.write_elcr(value),
            PORT_ELCR_SLAVE => self.slave.write_elcr(value),
            _ => {}
        }
        self.update_cascade();
    }
}

impl PortDevice for Pic {
    /// Wider accesses are split into byte cycles at consecutive ports, as the ISA bus
    /// does for an 8-bit device.
    fn io_read(&mut self, port: u16, size: u8, _now: Nanos) -> u32 {
        let mut value = 0u32;
        for i in 0..u16::from(size.clamp(1, 4)) {
            let byte = self.read_byte(port.wrapping_add(i));
            value |= u32::from(byte) << (8 * i);
        }
        match size {
            1 => value | 0xFFFF_FF00,
            2 => value | 0xFFFF_0000,
            _ => value,
        }
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, _now: Nanos) {
        for i in 0..u16::from(size.clamp(1, 4)) {
            self.write_byte(port.wrapping_add(i), (value >> (8 * i)) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(pic: &mut Pic, port: u16, value: u8) {
        pic.io_write(port, 1, u32::from(value), 0);
    }

    fn inb(pic: &mut Pic, port: u16) -> u8 {
        pic.io_read(port, 1, 0) as u8
    }

    /// The BIOS/Linux sequence: ICW1 0x11 (edge, cascade, ICW4), ICW2 base, ICW3,
    /// ICW4 0x01 (8086 mode, or 0x03 with AEOI).
    fn init_with_icw4(icw4: u8) -> Pic {
        let mut pic = Pic::new();
        out(&mut pic, PORT_MASTER_CMD, 0x11);
        out(&mut pic, PORT_MASTER_DATA, 0x08);
        out(&mut pic, PORT_MASTER_DATA, 0b0000_0100);
        out(&mut pic, PORT_MASTER_DATA, icw4);
        out(&mut pic, PORT_SLAVE_CMD, 0x11);
        out(&mut pic, PORT_SLAVE_DATA, 0x70);
        out(&mut pic, PORT_SLAVE_DATA, 2);
        out(&mut pic, PORT_SLAVE_DATA, icw4);
        pic
    }

    fn init() -> Pic {
        init_with_icw4(0x01)
    }

    fn pulse(pic: &mut Pic, irq: u8) {
        pic.set_irq(irq, true);
        pic.set_irq(irq, false);
    }

    fn eoi_master(pic: &mut Pic) {
        out(pic, PORT_MASTER_CMD, 0x20);
    }

    #[test]
    fn icw_sequence_sets_vector_base_and_clears_mask() {
        let mut pic = init();
        assert_eq!(inb(&mut pic, PORT_MASTER_DATA), 0);
        pulse(&mut pic, 1);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x09);
        pulse(&mut pic, 9);
        eoi_master(&mut pic);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x71);
    }

    #[test]
    fn single_mode_without_icw4_skips_icw3_and_icw4() {
        let mut pic = Pic::new();
        out(&mut pic, PORT_MASTER_CMD, ICW1_SELECT | ICW1_SNGL);
        out(&mut pic, PORT_MASTER_DATA, 0x20);
        // The next data write is OCW1 already.
        out(&mut pic, PORT_MASTER_DATA, 0b1111_1110);
        assert_eq!(inb(&mut pic, PORT_MASTER_DATA), 0b1111_1110);
        pulse(&mut pic, 0);
        assert_eq!(pic.acknowledge(), 0x20);
    }

    #[test]
    fn fixed_priority_picks_lowest_number_and_nests() {
        let mut pic = init();
        pulse(&mut pic, 4);
        pulse(&mut pic, 3);
        assert_eq!(pic.acknowledge(), 0x0B);
        // IR4 is lower priority than the in-service IR3: no INTR.
        assert!(!pic.intr());
        pulse(&mut pic, 0);
        assert!(pic.intr(), "higher priority IR0 nests over IR3");
        assert_eq!(pic.acknowledge(), 0x08);
        eoi_master(&mut pic); // clears IR0
        assert!(!pic.intr());
        eoi_master(&mut pic); // clears IR3
        assert_eq!(pic.acknowledge(), 0x0C);
    }

    #[test]
    fn rotate_on_nonspecific_eoi_makes_serviced_level_lowest() {
        let mut pic = init();
        pulse(&mut pic, 1);
        assert_eq!(pic.acknowledge(), 0x09);
        out(&mut pic, PORT_MASTER_CMD, OCW2_ROTATE_NONSPECIFIC_EOI);
        // Now IR1 is lowest, IR2 highest: IR1 loses to IR5.
        pulse(&mut pic, 1);
        pulse(&mut pic, 5);
        assert_eq!(pic.acknowledge(), 0x0D);
        out(&mut pic, PORT_MASTER_CMD, OCW2_ROTATE_NONSPECIFIC_EOI);
        // IR5 lowest now, order 6,7,0,1..: IR1 next.
        assert_eq!(pic.acknowledge(), 0x09);
    }

    #[test]
    fn set_priority_and_rotate_on_specific_eoi() {
        let mut pic = init();
        out(&mut pic, PORT_MASTER_CMD, OCW2_SET_PRIORITY | 4); // IR5 highest
        pulse(&mut pic, 0);
        pulse(&mut pic, 6);
        assert_eq!(pic.acknowledge(), 0x0E);
        out(&mut pic, PORT_MASTER_CMD, OCW2_ROTATE_SPECIFIC_EOI | 6); // IR7 highest
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD) & 0b0100_0000, 0);
        pulse(&mut pic, 7);
        assert_eq!(pic.acknowledge(), 0x0F);
    }

    #[test]
    fn specific_eoi_clears_only_that_level() {
        let mut pic = init();
        pulse(&mut pic, 5);
        pic.acknowledge();
        pulse(&mut pic, 3);
        pic.acknowledge();
        out(&mut pic, PORT_MASTER_CMD, 0x0B);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0010_1000);
        out(&mut pic, PORT_MASTER_CMD, OCW2_SPECIFIC_EOI | 5);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0000_1000);
    }

    #[test]
    fn spurious_irq7_when_masked_before_inta() {
        let mut pic = init();
        pulse(&mut pic, 3);
        assert!(pic.intr());
        out(&mut pic, PORT_MASTER_DATA, 0b0000_1000);
        assert_eq!(pic.acknowledge(), 0x0F);
        out(&mut pic, PORT_MASTER_CMD, 0x0B);
        assert_eq!(
            inb(&mut pic, PORT_MASTER_CMD),
            0,
            "spurious IR7 sets no ISR bit"
        );
    }

    #[test]
    fn spurious_irq7_when_level_request_drops() {
        let mut pic = init();
        out(&mut pic, PORT_ELCR_MASTER, 0b0010_0000);
        pic.set_irq(5, true);
        assert!(pic.intr());
        pic.set_irq(5, false);
        assert_eq!(pic.acknowledge(), 0x0F);
    }

    #[test]
    fn spurious_irq15_when_slave_request_vanishes() {
        let mut pic = init();
        pulse(&mut pic, 10);
        assert!(pic.intr());
        // The slave's request is masked after the master latched IR2.
        out(&mut pic, PORT_SLAVE_DATA, 0b0000_0100);
        assert_eq!(pic.acknowledge(), 0x77);
        out(&mut pic, PORT_SLAVE_CMD, 0x0B);
        assert_eq!(inb(&mut pic, PORT_SLAVE_CMD), 0, "slave ISR untouched");
        out(&mut pic, PORT_MASTER_CMD, 0x0B);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b100, "master ISR2 set");
    }

    #[test]
    fn cascade_delivers_each_slave_irq_through_ir2() {
        let mut pic = init();
        for irq in 8..16u8 {
            pulse(&mut pic, irq);
            assert!(pic.intr(), "irq {irq}");
            assert_eq!(pic.acknowledge(), 0x70 + irq - 8);
            out(&mut pic, PORT_SLAVE_CMD, 0x0B);
            assert_eq!(inb(&mut pic, PORT_SLAVE_CMD), 1 << (irq - 8));
            out(&mut pic, PORT_MASTER_CMD, 0x0B);
            assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b100);
            out(&mut pic, PORT_SLAVE_CMD, 0x20);
            eoi_master(&mut pic);
            assert!(!pic.intr());
        }
    }

    #[test]
    fn slave_priority_sits_between_irq1_and_irq3() {
        let mut pic = init();
        pulse(&mut pic, 3);
        pulse(&mut pic, 12);
        assert_eq!(pic.acknowledge(), 0x74);
        pulse(&mut pic, 1);
        assert_eq!(pic.acknowledge(), 0x09);
    }

    #[test]
    fn second_slave_request_reaches_master_after_eois() {
        let mut pic = init();
        pulse(&mut pic, 9);
        pulse(&mut pic, 11);
        assert_eq!(pic.acknowledge(), 0x71);
        out(&mut pic, PORT_SLAVE_CMD, 0x20);
        eoi_master(&mut pic);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x73);
    }

    #[test]
    fn masks_block_and_unmask_releases() {
        let mut pic = init();
        out(&mut pic, PORT_MASTER_DATA, 0b0000_0001);
        pulse(&mut pic, 0);
        assert!(!pic.intr());
        out(&mut pic, PORT_MASTER_DATA, 0);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x08);
        // Masking the cascade input blocks all slave IRQs.
        eoi_master(&mut pic);
        out(&mut pic, PORT_MASTER_DATA, 0b0000_0100);
        pulse(&mut pic, 14);
        assert!(!pic.intr());
    }

    #[test]
    fn irr_and_isr_reads_via_ocw3() {
        let mut pic = init();
        pulse(&mut pic, 6);
        pulse(&mut pic, 4);
        out(&mut pic, PORT_MASTER_CMD, 0x0A);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0101_0000);
        pic.acknowledge();
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0100_0000);
        out(&mut pic, PORT_MASTER_CMD, 0x0B);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0001_0000);
        // The selection persists across reads.
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0001_0000);
    }

    #[test]
    fn poll_command_acknowledges_and_reports_level() {
        let mut pic = init();
        out(&mut pic, PORT_MASTER_CMD, 0x0C);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0, "nothing pending");
        pulse(&mut pic, 5);
        out(&mut pic, PORT_MASTER_CMD, 0x0C);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), POLL_INTERRUPT | 5);
        out(&mut pic, PORT_MASTER_CMD, 0x0B);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0010_0000);
        // The poll is one-shot: the next read is a register read again.
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0b0010_0000);
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut pic = init_with_icw4(0x03);
        pulse(&mut pic, 3);
        assert_eq!(pic.acknowledge(), 0x0B);
        out(&mut pic, PORT_MASTER_CMD, 0x0B);
        assert_eq!(inb(&mut pic, PORT_MASTER_CMD), 0);
        pulse(&mut pic, 4);
        assert!(pic.intr(), "no EOI needed");
        assert_eq!(pic.acknowledge(), 0x0C);
    }

    #[test]
    fn rotate_in_auto_eoi_mode() {
        let mut pic = init_with_icw4(0x03);
        out(&mut pic, PORT_MASTER_CMD, OCW2_ROTATE_AEOI_SET);
        pulse(&mut pic, 0);
        assert_eq!(pic.acknowledge(), 0x08);
        pulse(&mut pic, 0);
        pulse(&mut pic, 6);
        assert_eq!(pic.acknowledge(), 0x0E, "IR0 became lowest priority");
        out(&mut pic, PORT_MASTER_CMD, OCW2_ROTATE_AEOI_CLEAR);
        pulse(&mut pic, 7);
        // IR6 is lowest now: IR7 beats IR0.
        assert_eq!(pic.acknowledge(), 0x0F);
        assert_eq!(pic.acknowledge(), 0x08);
    }

    #[test]
    fn auto_eoi_cascade_with_two_slave_requests() {
        let mut pic = init_with_icw4(0x03);
        pulse(&mut pic, 8);
        pulse(&mut pic, 9);
        assert_eq!(pic.acknowledge(), 0x70);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x71);
        assert!(!pic.intr());
    }

    #[test]
    fn edge_input_needs_new_rising_edge() {
        let mut pic = init();
        pic.set_irq(4, true);
        assert_eq!(pic.acknowledge(), 0x0C);
        eoi_master(&mut pic);
        assert!(!pic.intr(), "held-high edge input does not re-request");
        pic.set_irq(4, false);
        pic.set_irq(4, true);
        assert!(pic.intr());
    }

    #[test]
    fn level_mode_via_elcr_rerequests_while_high() {
        let mut pic = init();
        out(&mut pic, PORT_ELCR_SLAVE, 0b0000_1000); // IRQ11 level
        assert_eq!(inb(&mut pic, PORT_ELCR_SLAVE), 0b0000_1000);
        pic.set_irq(11, true);
        assert_eq!(pic.acknowledge(), 0x73);
        out(&mut pic, PORT_SLAVE_CMD, 0x20);
        eoi_master(&mut pic);
        assert!(pic.intr(), "line still high");
        assert_eq!(pic.acknowledge(), 0x73);
        pic.set_irq(11, false);
        out(&mut pic, PORT_SLAVE_CMD, 0x20);
        eoi_master(&mut pic);
        assert!(!pic.intr());
    }

    #[test]
    fn elcr_forces_edge_for_irq_0_1_2_8_13() {
        let mut pic = init();
        out(&mut pic, PORT_ELCR_MASTER, 0xFF);
        out(&mut pic, PORT_ELCR_SLAVE, 0xFF);
        assert_eq!(inb(&mut pic, PORT_ELCR_MASTER), 0b1111_1000);
        assert_eq!(inb(&mut pic, PORT_ELCR_SLAVE), 0b1101_1110);
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_in() {
        let mut pic = init();
        pulse(&mut pic, 3);
        assert_eq!(pic.acknowledge(), 0x0B);
        out(&mut pic, PORT_MASTER_DATA, 0b0000_1000);
        out(&mut pic, PORT_MASTER_CMD, 0x68); // ESMM + SMM
        pulse(&mut pic, 5);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x0D);
        out(&mut pic, PORT_MASTER_CMD, 0x48); // ESMM, SMM = 0
        pulse(&mut pic, 6);
        assert!(!pic.intr(), "back to fully nested");
    }

    #[test]
    fn icw1_resets_mask_and_priority() {
        let mut pic = init();
        out(&mut pic, PORT_MASTER_DATA, 0xFF);
        out(&mut pic, PORT_MASTER_CMD, OCW2_SET_PRIORITY | 2);
        let mut pic2 = pic.clone();
        out(&mut pic2, PORT_MASTER_CMD, 0x11);
        out(&mut pic2, PORT_MASTER_DATA, 0x08);
        out(&mut pic2, PORT_MASTER_DATA, 0x04);
        out(&mut pic2, PORT_MASTER_DATA, 0x01);
        assert_eq!(inb(&mut pic2, PORT_MASTER_DATA), 0);
        pulse(&mut pic2, 6);
        pulse(&mut pic2, 1);
        assert_eq!(pic2.acknowledge(), 0x09, "IR0 highest again");
    }

    #[test]
    fn special_fully_nested_mode_lets_higher_slave_irq_nest() {
        // Without SFNM the in-service IR2 blocks a second slave request.
        let mut pic = init();
        pulse(&mut pic, 10);
        assert_eq!(pic.acknowledge(), 0x72);
        pulse(&mut pic, 9);
        assert!(!pic.intr());
        // With SFNM on the master (ICW4 = 0x11) the higher-priority IRQ9 nests.
        let mut pic = Pic::new();
        out(&mut pic, PORT_MASTER_CMD, 0x11);
        out(&mut pic, PORT_MASTER_DATA, 0x08);
        out(&mut pic, PORT_MASTER_DATA, 0x04);
        out(&mut pic, PORT_MASTER_DATA, 0x11);
        out(&mut pic, PORT_SLAVE_CMD, 0x11);
        out(&mut pic, PORT_SLAVE_DATA, 0x70);
        out(&mut pic, PORT_SLAVE_DATA, 0x02);
        out(&mut pic, PORT_SLAVE_DATA, 0x01);
        pulse(&mut pic, 10);
        assert_eq!(pic.acknowledge(), 0x72);
        pulse(&mut pic, 11);
        assert!(!pic.intr(), "lower-priority slave IRQ still waits");
        pulse(&mut pic, 9);
        assert!(pic.intr());
        assert_eq!(pic.acknowledge(), 0x71);
    }

    #[test]
    fn wide_and_unknown_accesses_never_panic() {
        let mut pic = init();
        for port in [0x20u16, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1, 0x22, 0xFFFF] {
            for value in [0u32, 0xFF, 0x1234_5678, u32::MAX] {
                for size in [0u8, 1, 2, 4, 9] {
                    pic.io_write(port, size, value, 0);
                    let _ = pic.io_read(port, size, 0);
                }
            }
        }
        for irq in 0..=255u8 {
            pic.set_irq(irq, true);
            let _ = pic.acknowledge();
        }
        assert_eq!(pic.io_read(0x22, 1, 0), 0xFFFF_FFFF);
    }
}
