//! NS16550A UART (also TI TL16C550), one instance per PC COM port.
//!
//! Register names, bits and interrupt rules follow the National Semiconductor
//! PC16550D datasheet ("UART with FIFOs", section 8, tables II-IV) and the
//! TI TL16C550 datasheet. The PC wiring (COM port bases, IRQ lines, OUT2 gating
//! the interrupt line) follows the IBM PC/AT technical reference.
//!
//! Model:
//! - Transmission is instantaneous from the guest's view: a byte written to THR
//!   leaves at once (to the host output, or in loopback to the receiver), so THR,
//!   the transmit FIFO and the transmit shift register are always empty again when
//!   the write returns (`LSR.THRE` and `LSR.TEMT` always read 1).
//! - Reception is driven by the host through [`Uart::receive`], which refuses a
//!   byte when the receiver is full so a frontend can retry later: the host never
//!   causes an overrun. Overruns happen only in loopback, where the guest itself
//!   feeds the receiver.
//! - The character timeout (FIFO mode) runs on virtual time: the machine calls
//!   [`Uart::advance`] at [`Uart::next_deadline`], and every access catches up.

use super::{Nanos, PortDevice};

/// Standard PC COM port bases and IRQ lines (IBM PC/AT technical reference).
pub const COM1_BASE: u16 = 0x3F8;
pub const COM2_BASE: u16 = 0x2F8;
pub const COM3_BASE: u16 = 0x3E8;
pub const COM4_BASE: u16 = 0x2E8;
pub const COM1_IRQ: u8 = 4;
pub const COM2_IRQ: u8 = 3;
pub const COM3_IRQ: u8 = 4;
pub const COM4_IRQ: u8 = 3;

/// Number of port addresses the UART decodes (offsets 0..=7).
pub const UART_PORT_COUNT: u16 = 8;

// Register offsets from the base (PC16550D table II). With LCR.DLAB = 1, offsets
// 0 and 1 address the divisor latch instead of RBR/THR and IER.
const REG_RBR_THR_DLL: u16 = 0;
const REG_IER_DLM: u16 = 1;
const REG_IIR_FCR: u16 = 2;
const REG_LCR: u16 = 3;
const REG_MCR: u16 = 4;
const REG_LSR: u16 = 5;
const REG_MSR: u16 = 6;
const REG_SCR: u16 = 7;

// IER: Interrupt Enable Register. Bits 4-7 are always 0.
const IER_ERBFI: u8 = 0b0000_0001; // received data available (and timeout)
const IER_ETBEI: u8 = 0b0000_0010; // transmitter holding register empty
const IER_ELSI: u8 = 0b0000_0100; // receiver line status
const IER_EDSSI: u8 = 0b0000_1000; // modem status
const IER_MASK: u8 = 0b0000_1111;

// IIR: Interrupt Identification Register (PC16550D table IV).
const IIR_NO_INT: u8 = 0b0000_0001;
const IIR_MODEM_STATUS: u8 = 0b0000_0000;
const IIR_THR_EMPTY: u8 = 0b0000_0010;
const IIR_RX_DATA: u8 = 0b0000_0100;
const IIR_RX_LINE_STATUS: u8 = 0b0000_0110;
const IIR_CHAR_TIMEOUT: u8 = 0b0000_1100;
/// Bits 6-7 read 1 when FCR0 (FIFO enable) is set.
const IIR_FIFOS_ENABLED: u8 = 0b1100_0000;

// FCR: FIFO Control Register (write only).
const FCR_FIFO_ENABLE: u8 = 0b0000_0001;
const FCR_RX_FIFO_RESET: u8 = 0b0000_0010;
/// Nothing to clear: the transmit FIFO is always empty (instant transmission).
#[allow(dead_code)]
const FCR_TX_FIFO_RESET: u8 = 0b0000_0100;
const FCR_DMA_MODE: u8 = 0b0000_1000;
const FCR_RX_TRIGGER_MASK: u8 = 0b1100_0000;
const FCR_RX_TRIGGER_SHIFT: u32 = 6;
/// RX FIFO trigger levels selected by FCR bits 7:6 (PC16550D FCR description).
const RX_TRIGGER_LEVELS: [usize; 4] = [1, 4, 8, 14];

// LCR: Line Control Register.
const LCR_WORD_LENGTH_MASK: u8 = 0b0000_0011; // 00 = 5 bits ... 11 = 8 bits
const LCR_STOP_BITS: u8 = 0b0000_0100; // 1.5 (5-bit words) or 2 stop bits
const LCR_PARITY_ENABLE: u8 = 0b0000_1000;
const LCR_BREAK: u8 = 0b0100_0000;
const LCR_DLAB: u8 = 0b1000_0000;

// MCR: Modem Control Register. Bits 5-7 are always 0.
const MCR_DTR: u8 = 0b0000_0001;
const MCR_RTS: u8 = 0b0000_0010;
const MCR_OUT1: u8 = 0b0000_0100;
const MCR_OUT2: u8 = 0b0000_1000;
const MCR_LOOP: u8 = 0b0001_0000;
const MCR_MASK: u8 = 0b0001_1111;

// LSR: Line Status Register.
const LSR_DATA_READY: u8 = 0b0000_0001;
const LSR_OVERRUN_ERROR: u8 = 0b0000_0010;
const LSR_PARITY_ERROR: u8 = 0b0000_0100;
const LSR_FRAMING_ERROR: u8 = 0b0000_1000;
const LSR_BREAK_INTERRUPT: u8 = 0b0001_0000;
const LSR_THR_EMPTY: u8 = 0b0010_0000;
const LSR_TRANSMITTER_EMPTY: u8 = 0b0100_0000;
const LSR_RX_FIFO_ERROR: u8 = 0b1000_0000;
/// Bits that are latched and cleared by reading LSR (the line status sources).
const LSR_LATCHED_ERRORS: u8 =
    LSR_OVERRUN_ERROR | LSR_PARITY_ERROR | LSR_FRAMING_ERROR | LSR_BREAK_INTERRUPT;
/// Per-character error bits stored with each received character.
const LSR_CHAR_ERRORS: u8 = LSR_PARITY_ERROR | LSR_FRAMING_ERROR | LSR_BREAK_INTERRUPT;

// MSR: Modem Status Register. Bits 0-3 are deltas cleared by reading MSR.
const MSR_DCTS: u8 = 0b0000_0001;
const MSR_DDSR: u8 = 0b0000_0010;
const MSR_TERI: u8 = 0b0000_0100;
const MSR_DDCD: u8 = 0b0000_1000;
const MSR_CTS: u8 = 0b0001_0000;
const MSR_DSR: u8 = 0b0010_0000;
const MSR_RI: u8 = 0b0100_0000;
const MSR_DCD: u8 = 0b1000_0000;
const MSR_DELTAS: u8 = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;
const MSR_STATUS: u8 = MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD;

/// FIFO depth of the 16550A (both directions).
pub const FIFO_SIZE: usize = 16;

/// The baud generator input of a PC COM port: a 1.8432 MHz crystal, divided by
/// 16 x divisor (PC16550D section 8.5, baud rate generator).
const UART_CLOCK_HZ: u64 = 1_843_200;
/// Character timeout: four character times without FIFO activity (PC16550D,
/// "FIFO interrupt mode operation").
const TIMEOUT_CHARS: u64 = 4;

/// Cap on transmitted bytes the machine has not drained yet, so a guest that
/// writes forever while nobody drains cannot grow host memory without bound.
const OUTPUT_LIMIT: usize = 1 << 20;

/// A 16550A UART at one COM port base.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Uart {
    base: u16,
    ier: u8,
    lcr: u8,
    mcr: u8,
    /// Latched LSR line-status bits (OE, PE, FE, BI), cleared by reading LSR.
    lsr_errors: u8,
    /// MSR delta bits (DCTS, DDSR, TERI, DDCD), cleared by reading MSR.
    msr_deltas: u8,
    /// MSR status bits last seen, to derive the deltas from transitions.
    msr_status: u8,
    /// Modem inputs driven by the host side (CTS, DSR, RI, DCD as MSR bits).
    modem_inputs: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// FCR0: FIFO mode. Other FCR bits are kept only while it is set.
    fifo_enabled: bool,
    /// FCR bits 7:6 (trigger level index) and FCR3 (DMA mode, no effect here).
    fcr_trigger: u8,
    fcr_dma_mode: bool,
    /// Receive FIFO (or the single RBR in 16450 mode): ring of (data, error bits).
    rx_data: [u8; FIFO_SIZE],
    rx_flags: [u8; FIFO_SIZE],
    rx_head: usize,
    rx_len: usize,
    /// Last value of RBR, returned again when the guest reads an empty receiver.
    rbr_last: u8,
    /// THRE interrupt source latch (PC16550D table IV: set by "THR empty",
    /// reset by reading IIR when it is the source, or by writing THR).
    thre_pending: bool,
    /// Character timeout interrupt source latch.
    timeout_pending: bool,
    /// Time of the last receiver FIFO activity: a character received or a
    /// character read by the CPU. The timeout counts from here.
    rx_last_activity: Nanos,
    /// Latest virtual time seen on any access.
    now: Nanos,
    /// Bytes the guest transmitted, for the machine to hand to the host.
    output: Vec<u8>,
    /// Bytes lost because `output` was at its limit.
    output_dropped: u64,
}

impl Uart {
    /// A UART at `base` (e.g. [`COM1_BASE`]) in its master-reset state
    /// (PC16550D table VI). The host side is a connected terminal: CTS, DSR and
    /// DCD asserted, RI not ringing.
    pub fn new(base: u16) -> Self {
        let modem_inputs = MSR_CTS | MSR_DSR | MSR_DCD;
        Uart {
            base,
            ier: 0,
            lcr: 0,
            mcr: 0,
            lsr_errors: 0,
            msr_deltas: 0,
            msr_status: modem_inputs,
            modem_inputs,
            scr: 0,
            // The divisor latch is not affected by master reset; start at 9600
            // baud (divisor 12) so the character time is defined before firmware
            // programs it.
            dll: 12,
            dlm: 0,
            fifo_enabled: false,
            fcr_trigger: 0,
            fcr_dma_mode: false,
            rx_data: [0; FIFO_SIZE],
            rx_flags: [0; FIFO_SIZE],
            rx_head: 0,
            rx_len: 0,
            rbr_last: 0,
            // After reset THR is empty and the THRE source is active: enabling
            // ETBEI produces an interrupt at once.
            thre_pending: true,
            timeout_pending: false,
            rx_last_activity: 0,
            now: 0,
            output: Vec::new(),
            output_dropped: 0,
        }
    }

    /// The base port this UART decodes (`base..base + 8`).
    pub fn base(&self) -> u16 {
        self.base
    }

    /// Level of the IRQ line to the PIC. On a PC the UART's INTRPT output reaches
    /// the ISA IRQ line through a buffer enabled by the OUT2 pin (MCR bit 3); in
    /// loopback the OUT2 pin is forced inactive (PC16550D, MCR bit 4), so the line
    /// is disabled too. The machine should sample this after every access,
    /// `receive` and `advance`, and forward changes to the PIC.
    pub fn irq(&self) -> bool {
        self.mcr & MCR_OUT2 != 0 && self.mcr & MCR_LOOP == 0 && self.interrupt_id().is_some()
    }

    /// Host -> guest: deliver one received byte at virtual time `now`. Returns
    /// false (byte not taken) when the receiver is full or in loopback (where the
    /// serial input is disconnected); the frontend should retry later.
    pub fn receive(&mut self, byte: u8, now: Nanos) -> bool {
        self.advance(now);
        if self.mcr & MCR_LOOP != 0 || self.rx_space() == 0 {
            return false;
        }
        self.rx_push(byte & self.word_mask(), 0);
        true
    }

    /// Host -> guest: a break condition on the serial input (the line held at
    /// spacing for longer than a character): one 0 character with LSR.BI. Returns
    /// false when it cannot be taken, like [`Uart::receive`].
    pub fn receive_break(&mut self, now: Nanos) -> bool {
        self.advance(now);
        if self.mcr & MCR_LOOP != 0 || self.rx_space() == 0 {
            return false;
        }
        self.rx_push(0, LSR_BREAK_INTERRUPT);
        true
    }

    /// How many bytes [`Uart::receive`] would accept now.
    pub fn rx_space(&self) -> usize {
        if self.mcr & MCR_LOOP != 0 {
            return 0;
        }
        self.rx_capacity().saturating_sub(self.rx_len)
    }

    /// Set the modem status inputs driven by the host side of the line.
    /// Transitions set the MSR delta bits (visible outside loopback).
    pub fn set_modem_inputs(&mut self, cts: bool, dsr: bool, ri: bool, dcd: bool) {
        let mut inputs = 0;
        if cts {
            inputs |= MSR_CTS;
        }
        if dsr {
            inputs |= MSR_DSR;
        }
        if ri {
            inputs |= MSR_RI;
        }
        if dcd {
            inputs |= MSR_DCD;
        }
        self.modem_inputs = inputs;
        self.update_msr();
    }

    /// Move the bytes the guest transmitted into `out` (appending).
    pub fn drain_output(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.output);
    }

    /// The bytes the guest transmitted since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Bytes dropped because the machine did not drain the output in time.
    pub fn output_dropped(&self) -> u64 {
        self.output_dropped
    }

    /// When the character timeout would fire, if it is armed and could raise an
    /// interrupt (FIFO mode, data waiting, ERBFI set).
    pub fn next_deadline(&self) -> Option<Nanos> {
        if self.ier & IER_ERBFI == 0 {
            return None;
        }
        self.timeout_deadline()
    }

    /// Catch up to virtual time `now`: fire the character timeout if due.
    pub fn advance(&mut self, now: Nanos) {
        self.now = self.now.max(now);
        if let Some(deadline) = self.timeout_deadline() {
            if self.now >= deadline {
                self.timeout_pending = true;
            }
        }
    }

    /// Duration of one character on the line, in nanoseconds: start bit, data
    /// bits, parity bit and stop bits, each 16 baud clocks of `UART_CLOCK_HZ /
    /// divisor` (PC16550D section 8.5). Divisor 0 is treated as 65536 (the
    /// 16-bit counter wraps).
    pub fn char_time(&self) -> Nanos {
        let data_bits = 5 + u64::from(self.lcr & LCR_WORD_LENGTH_MASK);
        let parity_bits = u64::from(self.lcr & LCR_PARITY_ENABLE != 0);
        // In half bits, since 5-bit words with LCR2 use 1.5 stop bits.
        let stop_half_bits = match (self.lcr & LCR_STOP_BITS != 0, data_bits) {
            (false, _) => 2,
            (true, 5) => 3,
            (true, _) => 4,
        };
        let half_bits = 2 * (1 + data_bits + parity_bits) + stop_half_bits;
        let divisor = match u64::from(u16::from_le_bytes([self.dll, self.dlm])) {
            0 => 0x1_0000,
            d => d,
        };
        half_bits * divisor * 16 * 1_000_000_000 / (2 * UART_CLOCK_HZ)
    }

    /// The current divisor latch value (DLM:DLL).
    pub fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }

    fn timeout_deadline(&self) -> Option<Nanos> {
        if !self.fifo_enabled || self.rx_len == 0 || self.timeout_pending {
            return None;
        }
        Some(
            self.rx_last_activity
                .saturating_add(TIMEOUT_CHARS.saturating_mul(self.char_time())),
        )
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled {
            FIFO_SIZE
        } else {
            1
        }
    }

    fn rx_trigger_level(&self) -> usize {
        RX_TRIGGER_LEVELS
            .get(usize::from(self.fcr_trigger & 0b11))
            .copied()
            .unwrap_or(1)
    }

    /// Data bits of the current word length (LCR bits 1:0): the receiver only
    /// assembles these and the transmitter only sends these.
    fn word_mask(&self) -> u8 {
        0xFF >> (3 - (self.lcr & LCR_WORD_LENGTH_MASK))
    }

    fn rx_push(&mut self, byte: u8, flags: u8) {
        if self.rx_len >= self.rx_capacity() {
            return;
        }
        let index = (self.rx_head + self.rx_len) % FIFO_SIZE;
        if let (Some(d), Some(f)) = (self.rx_data.get_mut(index), self.rx_flags.get_mut(index)) {
            *d = byte;
            *f = flags;
        }
        self.rx_len += 1;
        if self.rx_len == 1 {
            // The character is at the top of the FIFO: its errors show in LSR now.
            self.lsr_errors |= flags & LSR_CHAR_ERRORS;
        }
        self.rx_last_activity = self.now;
        self.timeout_pending = false;
    }

    fn rx_pop(&mut self) -> Option<u8> {
        if self.rx_len == 0 {
            return None;
        }
        let byte = self.rx_data.get(self.rx_head).copied().unwrap_or(0);
        if let Some(f) = self.rx_flags.get_mut(self.rx_head) {
            *f = 0;
        }
        self.rx_head = (self.rx_head + 1) % FIFO_SIZE;
        self.rx_len -= 1;
        if self.rx_len > 0 {
            self.lsr_errors |= self.rx_flags.get(self.rx_head).copied().unwrap_or(0);
        }
        Some(byte)
    }

    fn rx_clear(&mut self) {
        self.rx_head = 0;
        self.rx_len = 0;
        self.rx_flags = [0; FIFO_SIZE];
        self.timeout_pending = false;
    }

    /// A character entering the receiver from the loopback path. When the
    /// receiver is full this is an overrun (PC16550D LSR bit 1): in FIFO mode the
    /// character in the shift register is lost; in 16450 mode it overwrites RBR.
    fn loopback_receive(&mut self, byte: u8, flags: u8) {
        if self.rx_len < self.rx_capacity() {
            self.rx_push(byte, flags);
            return;
        }
        self.lsr_errors |= LSR_OVERRUN_ERROR;
        if !self.fifo_enabled {
            let index = self.rx_head % FIFO_SIZE;
            if let (Some(d), Some(f)) = (self.rx_data.get_mut(index), self.rx_flags.get_mut(index))
            {
                *d = byte;
                *f = flags;
            }
            self.lsr_errors |= flags & LSR_CHAR_ERRORS;
            self.rx_last_activity = self.now;
        }
    }

    fn transmit(&mut self, byte: u8) {
        let byte = byte & self.word_mask();
        // Writing THR clears the THRE source; the byte leaves at once, so THR is
        // empty again and the source is set again ("THR empty").
        self.thre_pending = false;
        if self.mcr & MCR_LOOP != 0 {
            self.loopback_receive(byte, 0);
        } else if self.output.len() < OUTPUT_LIMIT {
            self.output.push(byte);
        } else {
            self.output_dropped = self.output_dropped.saturating_add(1);
        }
        self.thre_pending = true;
    }

    /// The MSR status bits as seen by the chip: the host's modem inputs, or in
    /// loopback the MCR outputs (DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD).
    fn msr_inputs(&self) -> u8 {
        if self.mcr & MCR_LOOP == 0 {
            return self.modem_inputs & MSR_STATUS;
        }
        let mut status = 0;
        if self.mcr & MCR_RTS != 0 {
            status |= MSR_CTS;
        }
        if self.mcr & MCR_DTR != 0 {
            status |= MSR_DSR;
        }
        if self.mcr & MCR_OUT1 != 0 {
            status |= MSR_RI;
        }
        if self.mcr & MCR_OUT2 != 0 {
            status |= MSR_DCD;
        }
        status
    }

    /// Latch the MSR deltas for a change of the modem status bits. TERI is set on
    /// the trailing edge of ring: RI going from 1 to 0 (PC16550D MSR bit 2).
    fn update_msr(&mut self) {
        let new = self.msr_inputs();
        let changed = new ^ self.msr_status;
        if changed & MSR_CTS != 0 {
            self.msr_deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.msr_deltas |= MSR_DDSR;
        }
        if changed & MSR_DCD != 0 {
            self.msr_deltas |= MSR_DDCD;
        }
        if changed & MSR_RI != 0 && new & MSR_RI == 0 {
            self.msr_deltas |= MSR_TERI;
        }
        self.msr_status = new;
    }

    /// The highest-priority pending and enabled interrupt, as its IIR code
    /// (PC16550D table IV): line status > received data / character timeout >
    /// THR empty > modem status.
    fn interrupt_id(&self) -> Option<u8> {
        if self.ier & IER_ELSI != 0 && self.lsr_errors & LSR_LATCHED_ERRORS != 0 {
            return Some(IIR_RX_LINE_STATUS);
        }
        if self.ier & IER_ERBFI != 0 {
            let level = if self.fifo_enabled {
                self.rx_trigger_level()
            } else {
                1
            };
            if self.rx_len > 0 && self.rx_len >= level {
                return Some(IIR_RX_DATA);
            }
            if self.timeout_pending {
                return Some(IIR_CHAR_TIMEOUT);
            }
        }
        if self.ier & IER_ETBEI != 0 && self.thre_pending {
            return Some(IIR_THR_EMPTY);
        }
        if self.ier & IER_EDSSI != 0 && self.msr_deltas & MSR_DELTAS != 0 {
            return Some(IIR_MODEM_STATUS);
        }
        None
    }

    fn read_lsr(&self) -> u8 {
        let mut lsr = self.lsr_errors | LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
        if self.rx_len > 0 {
            lsr |= LSR_DATA_READY;
        }
        if self.fifo_enabled && self.rx_flags.iter().any(|&f| f & LSR_CHAR_ERRORS != 0) {
            lsr |= LSR_RX_FIFO_ERROR;
        }
        lsr
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_FIFO_ENABLE != 0;
        if enable != self.fifo_enabled {
            // Changing FCR0 clears both FIFOs (TL16C550 FCR bit 0).
            self.rx_clear();
            self.fifo_enabled = enable;
        }
        if !enable {
            // FCR0 must be 1 for the other FCR bits to be programmed.
            return;
        }
        if value & FCR_RX_FIFO_RESET != 0 {
            self.rx_clear();
        }
        // FCR_TX_FIFO_RESET: the transmit FIFO is always empty (instant
        // transmission), so there is nothing to clear.
        self.fcr_dma_mode = value & FCR_DMA_MODE != 0;
        self.fcr_trigger = (value & FCR_RX_TRIGGER_MASK) >> FCR_RX_TRIGGER_SHIFT;
    }

    fn write_lcr(&mut self, value: u8) {
        let break_started = value & LCR_BREAK != 0 && self.lcr & LCR_BREAK == 0;
        self.lcr = value;
        // In loopback the transmitter output is the receiver input: a break
        // (SOUT forced to spacing) is received as one 0 character with BI.
        if break_started && self.mcr & MCR_LOOP != 0 {
            self.loopback_receive(0, LSR_BREAK_INTERRUPT);
        }
    }

    fn write_mcr(&mut self, value: u8) {
        self.mcr = value & MCR_MASK;
        self.update_msr();
    }

    fn read_register(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            REG_RBR_THR_DLL if dlab => self.dll,
            REG_RBR_THR_DLL => {
                if let Some(byte) = self.rx_pop() {
                    self.rbr_last = byte;
                    // A CPU read of the FIFO resets the timeout and clears it.
                    self.rx_last_activity = self.now;
                    self.timeout_pending = false;
                }
                self.rbr_last
            }
            REG_IER_DLM if dlab => self.dlm,
            REG_IER_DLM => self.ier,
            REG_IIR_FCR => {
                let id = self.interrupt_id();
                if id == Some(IIR_THR_EMPTY) {
                    // Reading IIR clears THRE when it is the reported source.
                    self.thre_pending = false;
                }
                let fifo_bits = if self.fifo_enabled {
                    IIR_FIFOS_ENABLED
                } else {
                    0
                };
                id.unwrap_or(IIR_NO_INT) | fifo_bits
            }
            REG_LCR => self.lcr,
            REG_MCR => self.mcr,
            REG_LSR => {
                let lsr = self.read_lsr();
                self.lsr_errors = 0;
                lsr
            }
            REG_MSR => {
                let msr = self.msr_status | self.msr_deltas;
                self.msr_deltas = 0;
                msr
            }
            REG_SCR => self.scr,
            _ => 0xFF,
        }
    }

    fn write_register(&mut self, offset: u16, value: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            REG_RBR_THR_DLL if dlab => self.dll = value,
            REG_RBR_THR_DLL => self.transmit(value),
            REG_IER_DLM if dlab => self.dlm = value,
            REG_IER_DLM => {
                let old = self.ier;
                self.ier = value & IER_MASK;
                // Enabling ETBEI while THR is empty raises the THRE interrupt at
                // once (THR is always empty here: transmission is instant).
                if old & IER_ETBEI == 0 && self.ier & IER_ETBEI != 0 {
                    self.thre_pending = true;
                }
            }
            REG_IIR_FCR => self.write_fcr(value),
            REG_LCR => self.write_lcr(value),
            REG_MCR => self.write_mcr(value),
            // LSR and MSR are read-only (factory test writes are not modelled).
            REG_LSR | REG_MSR => {}
            REG_SCR => self.scr = value,
            _ => {}
        }
    }
}

impl PortDevice for Uart {
    /// The UART is an 8-bit ISA device: a wider access is split by the bus into
    /// byte accesses at consecutive ports; ports past offset 7 read as ones.
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32 {
        self.advance(now);
        let mut value = 0u32;
        for i in 0..u16::from(size.clamp(1, 4)) {
            let offset = port.wrapping_add(i).wrapping_sub(self.base);
            let byte = if offset < UART_PORT_COUNT {
                self.read_register(offset)
            } else {
                0xFF
            };
            value |= u32::from(byte) << (8 * i);
        }
        value
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, now: Nanos) {
        self.advance(now);
        for i in 0..u16::from(size.clamp(1, 4)) {
            let offset = port.wrapping_add(i).wrapping_sub(self.base);
            if offset < UART_PORT_COUNT {
                self.write_register(offset, (value >> (8 * i)) as u8);
            }
        }
        // A register write (LCR, divisor) can move the timeout deadline.
        self.advance(now);
    }
}

impl Uart {
    /// The ISA IRQ line of this COM port (COM1/COM3: 4, COM2/COM4: 3).
    pub fn isa_irq(&self) -> u8 {
        match self.base {
            COM1_BASE | COM3_BASE => COM1_IRQ,
            _ => COM2_IRQ,
        }
    }
}

impl super::Device for Uart {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "isa-serial"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default()
            .ports(self.base..=self.base + (UART_PORT_COUNT - 1))
            .irq(self.isa_irq())
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        let v = PortDevice::io_read(self, port, size, cx.now);
        cx.set_irq(self.isa_irq(), self.irq());
        v
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        cx.set_irq(self.isa_irq(), self.irq());
        // Output to flush, or a new character timeout to plan for.
        cx.output_ready();
    }
    fn advance(&mut self, cx: &mut super::Ctx) {
        Uart::advance(self, cx.now);
        cx.set_irq(self.isa_irq(), self.irq());
    }
    fn next_deadline(&self) -> Option<Nanos> {
        Uart::next_deadline(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u16 = COM1_BASE;

    fn rd(u: &mut Uart, reg: u16, now: Nanos) -> u8 {
        u.io_read(B + reg, 1, now) as u8
    }

    fn wr(u: &mut Uart, reg: u16, value: u8, now: Nanos) {
        u.io_write(B + reg, 1, u32::from(value), now);
    }

    /// 8N1, 115200 baud (divisor 1), OUT2 set, FIFOs per `fcr`.
    fn setup(fcr: u8) -> Uart {
        let mut u = Uart::new(B);
        wr(&mut u, REG_LCR, LCR_DLAB, 0);
        wr(&mut u, REG_RBR_THR_DLL, 1, 0);
        wr(&mut u, REG_IER_DLM, 0, 0);
        wr(&mut u, REG_LCR, 0b0000_0011, 0);
        wr(&mut u, REG_IIR_FCR, fcr, 0);
        wr(&mut u, REG_MCR, MCR_OUT2 | MCR_RTS | MCR_DTR, 0);
        u
    }

    #[test]
    fn reset_state_registers() {
        let mut u = Uart::new(COM2_BASE);
        let r = |u: &mut Uart, reg: u16| u.io_read(COM2_BASE + reg, 1, 0) as u8;
        assert_eq!(r(&mut u, REG_IER_DLM), 0);
        assert_eq!(r(&mut u, REG_IIR_FCR), IIR_NO_INT);
        assert_eq!(r(&mut u, REG_LCR), 0);
        assert_eq!(r(&mut u, REG_MCR), 0);
        assert_eq!(r(&mut u, REG_LSR), LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY);
        assert_eq!(r(&mut u, REG_MSR), MSR_CTS | MSR_DSR | MSR_DCD);
        assert!(!u.irq());
        // Ports outside the 8 registers are not decoded.
        assert_eq!(u.io_read(COM2_BASE + 8, 1, 0), 0xFF);
    }

    #[test]
    fn divisor_latch_access() {
        let mut u = Uart::new(B);
        wr(&mut u, REG_IER_DLM, IER_ERBFI, 0);
        wr(&mut u, REG_LCR, LCR_DLAB | 0b11, 0);
        wr(&mut u, REG_RBR_THR_DLL, 0x80, 0);
        wr(&mut u, REG_IER_DLM, 0x01, 0);
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0x80);
        assert_eq!(rd(&mut u, REG_IER_DLM, 0), 0x01);
        assert_eq!(u.divisor(), 0x0180);
        // Writing DLL did not transmit, writing DLM did not touch IER.
        assert!(u.take_output().is_empty());
        wr(&mut u, REG_LCR, 0b11, 0);
        assert_eq!(rd(&mut u, REG_IER_DLM, 0), IER_ERBFI);
        wr(&mut u, REG_RBR_THR_DLL, b'x', 0);
        assert_eq!(u.take_output(), b"x");
        assert_eq!(u.divisor(), 0x0180);
    }

    #[test]
    fn char_time_from_divisor_and_lcr() {
        let mut u = setup(0);
        // 115200 baud 8N1: 10 bits of 16/1.8432 MHz = 8680.5 ns -> 86805 ns.
        assert_eq!(u.char_time(), 86_805);
        // 5 data bits, 1.5 stop bits, parity: 1 + 5 + 1 + 1.5 = 8.5 bits.
        wr(&mut u, REG_LCR, LCR_STOP_BITS | LCR_PARITY_ENABLE, 0);
        assert_eq!(u.char_time(), 73_784);
        // Divisor 12 (9600 baud), 8N2: 11 bits.
        wr(&mut u, REG_LCR, LCR_DLAB | LCR_STOP_BITS | 0b11, 0);
        wr(&mut u, REG_RBR_THR_DLL, 12, 0);
        assert_eq!(u.char_time(), 1_145_833);
        // Divisor 0 must not divide by zero; it counts as 65536.
        wr(&mut u, REG_RBR_THR_DLL, 0, 0);
        assert_eq!(u.char_time(), 11 * 65536 * 16 * 1_000_000_000 / 1_843_200);
    }

    #[test]
    fn thre_interrupt_on_enable_and_after_write() {
        let mut u = setup(0);
        assert!(!u.irq());
        wr(&mut u, REG_IER_DLM, IER_ETBEI, 0);
        assert!(u.irq(), "enabling ETBEI with THR empty interrupts at once");
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_THR_EMPTY);
        // Reading IIR cleared the THRE source.
        assert!(!u.irq());
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_NO_INT);
        // Writing THR: byte goes out, THR empties again -> interrupt.
        wr(&mut u, REG_RBR_THR_DLL, b'A', 0);
        assert!(u.irq());
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_THR_EMPTY);
        assert_eq!(u.take_output(), b"A");
        // Re-enabling (0 -> 1) re-arms it; rewriting 1 does not.
        wr(&mut u, REG_IER_DLM, IER_ETBEI, 0);
        assert!(!u.irq());
        wr(&mut u, REG_IER_DLM, 0, 0);
        assert!(!u.irq());
        wr(&mut u, REG_IER_DLM, IER_ETBEI, 0);
        assert!(u.irq());
    }

    #[test]
    fn out2_gates_irq_line() {
        let mut u = setup(0);
        wr(&mut u, REG_IER_DLM, IER_ETBEI, 0);
        assert!(u.irq());
        wr(&mut u, REG_MCR, MCR_DTR | MCR_RTS, 0);
        assert!(!u.irq(), "OUT2 clear disconnects INTRPT from the IRQ line");
        // The interrupt is still pending inside the chip.
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_THR_EMPTY);
    }

    #[test]
    fn iir_priorities() {
        let mut u = setup(FCR_FIFO_ENABLE);
        wr(&mut u, REG_IER_DLM, IER_MASK, 0);
        // Modem status (lowest): a CTS change.
        u.set_modem_inputs(false, true, false, true);
        // THRE is pending too (ETBEI was just enabled).
        assert!(u.receive(0x41, 0));
        // A break character behind it: its BI shows only once it is at the top.
        assert!(u.receive_break(0));
        let iir = |u: &mut Uart| rd(u, REG_IIR_FCR, 0) & 0b0000_1111;
        assert_eq!(iir(&mut u), IIR_RX_DATA);
        assert_eq!(
            rd(&mut u, REG_LSR, 0),
            LSR_DATA_READY | LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY | LSR_RX_FIFO_ERROR
        );
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0x41);
        // Break char at the top: line status outranks received data.
        assert_eq!(iir(&mut u), IIR_RX_LINE_STATUS);
        // Line status is cleared by reading LSR (which does not pop data).
        assert_eq!(
            rd(&mut u, REG_LSR, 0),
            LSR_DATA_READY
                | LSR_BREAK_INTERRUPT
                | LSR_THR_EMPTY
                | LSR_TRANSMITTER_EMPTY
                | LSR_RX_FIFO_ERROR
        );
        assert_eq!(iir(&mut u), IIR_RX_DATA);
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0x00);
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_RX_FIFO_ERROR, 0);
        // Now THRE, then modem status.
        assert_eq!(iir(&mut u), IIR_THR_EMPTY);
        assert_eq!(iir(&mut u), IIR_MODEM_STATUS, "reading IIR cleared THRE");
        assert_eq!(rd(&mut u, REG_MSR, 0), MSR_DCTS | MSR_DSR | MSR_DCD);
        assert_eq!(iir(&mut u), IIR_NO_INT);
        assert!(!u.irq());
    }

    #[test]
    fn iir_reports_fifo_mode() {
        let mut u = setup(FCR_FIFO_ENABLE);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_FIFOS_ENABLED | IIR_NO_INT);
        wr(&mut u, REG_IIR_FCR, 0, 0);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_NO_INT);
    }

    #[test]
    fn rx_fifo_trigger_levels() {
        for (sel, level) in RX_TRIGGER_LEVELS.iter().enumerate() {
            let fcr = FCR_FIFO_ENABLE | ((sel as u8) << FCR_RX_TRIGGER_SHIFT);
            let mut u = setup(fcr);
            wr(&mut u, REG_IER_DLM, IER_ERBFI, 0);
            for i in 0..*level {
                assert!(!u.irq(), "trigger {level}: no interrupt with {i} bytes");
                assert!(u.receive(i as u8, 0));
            }
            assert!(u.irq(), "trigger {level} reached");
            assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_FIFOS_ENABLED | IIR_RX_DATA);
            // Dropping below the trigger level clears RDA.
            assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0);
            assert!(!u.irq());
        }
    }

    #[test]
    fn rx_fifo_full_refuses_bytes_in_order() {
        let mut u = setup(FCR_FIFO_ENABLE);
        for i in 0..16u8 {
            assert!(u.receive(b'a' + i, 0));
        }
        assert_eq!(u.rx_space(), 0);
        assert!(!u.receive(b'!', 0), "full FIFO refuses, no overrun");
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_OVERRUN_ERROR, 0);
        for i in 0..16u8 {
            assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), b'a' + i);
        }
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_DATA_READY, 0);
        // Non-FIFO mode holds one character.
        wr(&mut u, REG_IIR_FCR, 0, 0);
        assert_eq!(u.rx_space(), 1);
        assert!(u.receive(1, 0));
        assert!(!u.receive(2, 0));
    }

    #[test]
    fn fcr_reset_and_enable_clear_rx_fifo() {
        let mut u = setup(FCR_FIFO_ENABLE);
        assert!(u.receive(1, 0) && u.receive(2, 0));
        wr(&mut u, REG_IIR_FCR, FCR_FIFO_ENABLE | FCR_RX_FIFO_RESET, 0);
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_DATA_READY, 0);
        assert!(u.receive(3, 0));
        // Turning FIFOs off clears them too.
        wr(&mut u, REG_IIR_FCR, 0, 0);
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_DATA_READY, 0);
        // Reset bits are ignored unless FCR0 is set in the same write.
        assert!(u.receive(4, 0));
        wr(&mut u, REG_IIR_FCR, FCR_RX_FIFO_RESET, 0);
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 4);
    }

    #[test]
    fn character_timeout_interrupt() {
        // Trigger 8, so 3 bytes do not raise RDA.
        let mut u = setup(FCR_FIFO_ENABLE | 0b1000_0000);
        wr(&mut u, REG_IER_DLM, IER_ERBFI, 0);
        let t = u.char_time();
        assert_eq!(u.next_deadline(), None, "empty FIFO: no timeout armed");
        u.receive(b'x', 1000);
        u.receive(b'y', 2000);
        u.receive(b'z', 3000);
        assert_eq!(u.next_deadline(), Some(3000 + 4 * t));
        u.advance(3000 + 4 * t - 1);
        assert!(!u.irq());
        u.advance(3000 + 4 * t);
        assert!(u.irq());
        assert_eq!(u.next_deadline(), None);
        assert_eq!(
            rd(&mut u, REG_IIR_FCR, 3000 + 4 * t),
            IIR_FIFOS_ENABLED | IIR_CHAR_TIMEOUT
        );
        // Reading one char clears the timeout and restarts the timer.
        let now = 3000 + 5 * t;
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, now), b'x');
        assert!(!u.irq());
        assert_eq!(u.next_deadline(), Some(now + 4 * t));
        // The timeout is caught up lazily on the next access.
        assert_eq!(
            rd(&mut u, REG_IIR_FCR, now + 4 * t),
            IIR_FIFOS_ENABLED | IIR_CHAR_TIMEOUT
        );
        rd(&mut u, REG_RBR_THR_DLL, now + 4 * t);
        rd(&mut u, REG_RBR_THR_DLL, now + 4 * t);
        assert_eq!(u.next_deadline(), None, "FIFO drained");
        u.advance(now + 100 * t);
        assert!(!u.irq());
        // No timeout in 16450 mode.
        wr(&mut u, REG_IIR_FCR, 0, now + 100 * t);
        u.receive(1, now + 100 * t);
        assert!(u.irq(), "RDA with one byte");
        assert_eq!(u.next_deadline(), None);
    }

    #[test]
    fn timeout_waits_for_new_characters() {
        let mut u = setup(FCR_FIFO_ENABLE | 0b1100_0000);
        wr(&mut u, REG_IER_DLM, IER_ERBFI, 0);
        let t = u.char_time();
        u.receive(1, 0);
        u.advance(3 * t);
        u.receive(2, 3 * t);
        u.advance(6 * t);
        assert!(!u.irq(), "a new character restarted the timer");
        u.advance(7 * t);
        assert!(u.irq());
    }

    #[test]
    fn loopback_data_and_modem_bits() {
        let mut u = setup(FCR_FIFO_ENABLE);
        // Clear the deltas of setup.
        rd(&mut u, REG_MSR, 0);
        wr(&mut u, REG_MCR, MCR_LOOP, 0);
        // Inputs disconnected: all four status bits follow MCR (all 0 now), and
        // CTS, DSR, DCD dropped from the host's 1s.
        assert_eq!(rd(&mut u, REG_MSR, 0), MSR_DCTS | MSR_DDSR | MSR_DDCD);
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_DTR, 0);
        assert_eq!(rd(&mut u, REG_MSR, 0), MSR_DSR | MSR_DDSR);
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_RTS, 0);
        assert_eq!(rd(&mut u, REG_MSR, 0), MSR_CTS | MSR_DCTS | MSR_DDSR);
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_OUT2, 0);
        assert_eq!(rd(&mut u, REG_MSR, 0), MSR_DCD | MSR_DDCD | MSR_DCTS);
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_OUT2 | MCR_OUT1, 0);
        assert_eq!(
            rd(&mut u, REG_MSR, 0),
            MSR_DCD | MSR_RI,
            "RI rising: no TERI"
        );
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_OUT2, 0);
        assert_eq!(
            rd(&mut u, REG_MSR, 0),
            MSR_DCD | MSR_TERI,
            "RI falling: TERI"
        );
        // The Linux probe: MCR = LOOP | OUT2 | RTS -> MSR status 0x90.
        wr(&mut u, REG_MCR, MCR_LOOP | 0x0A, 0);
        assert_eq!(rd(&mut u, REG_MSR, 0) & MSR_STATUS, 0x90);
        // Transmitted data comes back to the receiver, not to the host.
        wr(&mut u, REG_RBR_THR_DLL, 0x5A, 0);
        assert!(u.take_output().is_empty());
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0x5A);
        // The host cannot inject while in loopback.
        assert_eq!(u.rx_space(), 0);
        assert!(!u.receive(1, 0));
        // Loopback forces OUT2 inactive: no IRQ even with an interrupt pending.
        wr(&mut u, REG_IER_DLM, IER_ETBEI, 0);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0) & 0x0F, IIR_THR_EMPTY);
        wr(&mut u, REG_IER_DLM, 0, 0);
        wr(&mut u, REG_IER_DLM, IER_ETBEI, 0);
        assert!(!u.irq());
        // Leaving loopback restores the host inputs (with deltas).
        wr(&mut u, REG_MCR, MCR_OUT2, 0);
        assert!(u.irq());
        assert_eq!(
            rd(&mut u, REG_MSR, 0),
            MSR_CTS | MSR_DSR | MSR_DCD | MSR_DDSR
        );
    }

    #[test]
    fn loopback_modem_status_interrupt() {
        let mut u = setup(0);
        rd(&mut u, REG_MSR, 0);
        wr(&mut u, REG_IER_DLM, IER_EDSSI, 0);
        wr(&mut u, REG_MCR, MCR_LOOP, 0);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_MODEM_STATUS);
        rd(&mut u, REG_MSR, 0);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_NO_INT);
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_RTS, 0);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0), IIR_MODEM_STATUS);
    }

    #[test]
    fn overrun_in_fifo_mode_keeps_fifo() {
        let mut u = setup(FCR_FIFO_ENABLE);
        wr(&mut u, REG_MCR, MCR_LOOP | MCR_OUT2, 0);
        wr(&mut u, REG_IER_DLM, IER_ELSI, 0);
        for i in 0..17u8 {
            wr(&mut u, REG_RBR_THR_DLL, i, 0);
        }
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0) & 0x0F, IIR_RX_LINE_STATUS);
        let lsr = rd(&mut u, REG_LSR, 0);
        assert_eq!(lsr & (LSR_OVERRUN_ERROR | LSR_DATA_READY), 0b11);
        // OE is cleared by the LSR read.
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_OVERRUN_ERROR, 0);
        assert_eq!(rd(&mut u, REG_IIR_FCR, 0) & 0x0F, IIR_NO_INT);
        // The 16 first characters survive, the 17th was lost.
        for i in 0..16u8 {
            assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), i);
        }
        assert_eq!(rd(&mut u, REG_LSR, 0) & LSR_DATA_READY, 0);
    }

    #[test]
    fn overrun_in_16450_mode_overwrites_rbr() {
        let mut u = setup(0);
        wr(&mut u, REG_MCR, MCR_LOOP, 0);
        wr(&mut u, REG_RBR_THR_DLL, 1, 0);
        wr(&mut u, REG_RBR_THR_DLL, 2, 0);
        assert_eq!(
            rd(&mut u, REG_LSR, 0),
            LSR_OVERRUN_ERROR | LSR_DATA_READY | LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY
        );
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 2);
        // Reading an empty receiver returns the last character again.
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 2);
        assert_eq!(
            rd(&mut u, REG_LSR, 0),
            LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY
        );
    }

    #[test]
    fn loopback_break_sets_bi() {
        let mut u = setup(FCR_FIFO_ENABLE);
        wr(&mut u, REG_MCR, MCR_LOOP, 0);
        wr(&mut u, REG_LCR, 0b11 | LCR_BREAK, 0);
        let lsr = rd(&mut u, REG_LSR, 0);
        assert_eq!(
            lsr & (LSR_BREAK_INTERRUPT | LSR_DATA_READY | LSR_RX_FIFO_ERROR),
            LSR_BREAK_INTERRUPT | LSR_DATA_READY | LSR_RX_FIFO_ERROR
        );
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0);
    }

    #[test]
    fn word_length_masks_data() {
        let mut u = setup(0);
        wr(&mut u, REG_LCR, 0b10, 0); // 7 data bits
        wr(&mut u, REG_RBR_THR_DLL, 0xFF, 0);
        assert_eq!(u.take_output(), [0x7F]);
        assert!(u.receive(0xC1, 0));
        assert_eq!(rd(&mut u, REG_RBR_THR_DLL, 0), 0x41);
    }

    #[test]
    fn scratch_and_register_masks() {
        let mut u = Uart::new(B);
        wr(&mut u, REG_SCR, 0xA5, 0);
        assert_eq!(rd(&mut u, REG_SCR, 0), 0xA5);
        wr(&mut u, REG_IER_DLM, 0xFF, 0);
        assert_eq!(rd(&mut u, REG_IER_DLM, 0), 0x0F);
        wr(&mut u, REG_MCR, 0xFF, 0);
        assert_eq!(rd(&mut u, REG_MCR, 0), 0x1F);
    }

    #[test]
    fn drain_output_appends() {
        let mut u = setup(FCR_FIFO_ENABLE);
        for b in b"hi" {
            wr(&mut u, REG_RBR_THR_DLL, *b, 0);
        }
        let mut out = b">".to_vec();
        u.drain_output(&mut out);
        assert_eq!(out, b">hi");
        u.drain_output(&mut out);
        assert_eq!(out, b">hi");
    }

    #[test]
    fn wide_access_splits_into_bytes() {
        let mut u = setup(0);
        // 16-bit write at LCR: LCR = 0x03, MCR = 0x0B.
        u.io_write(B + REG_LCR, 2, 0x0B03, 0);
        assert_eq!(rd(&mut u, REG_MCR, 0), 0x0B);
        // 32-bit read at offset 6 covers MSR, SCR and two undecoded ports.
        let v = u.io_read(B + REG_MSR, 4, 0);
        assert_eq!(v >> 16, 0xFFFF);
    }

    #[test]
    fn any_register_write_is_safe() {
        let mut u = Uart::new(B);
        let mut now = 0;
        for reg in 0..UART_PORT_COUNT + 2 {
            for value in 0..=255u8 {
                now += 1000;
                u.io_write(B + reg, 1, u32::from(value), now);
                let _ = u.io_read(B + reg, 1, now);
                let _ = u.receive(value, now);
                let _ = u.next_deadline();
                let _ = u.irq();
            }
        }
    }
}
