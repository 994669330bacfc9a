//! Intel 8042 keyboard controller with a PS/2 (MF II) keyboard behind it.
//!
//! Sources: IBM Personal System/2 Hardware Interface Technical Reference,
//! "Keyboard/Auxiliary Device Controller" (status register, command byte,
//! controller commands, input and output ports) and "Keyboard" (keyboard
//! commands, scan code sets 1 and 2, the controller's set 2 -> set 1 translation).
//!
//! Ports: 0x60 (data: output buffer on read, input buffer on write) and 0x64
//! (status register on read, controller command on write). IRQ1 signals keyboard
//! data in the output buffer, IRQ12 auxiliary-device data.
//!
//! Model:
//! - The keyboard owns a byte queue (scan codes and command responses). The
//!   controller moves one byte at a time into its output buffer, only while the
//!   output buffer is empty and the keyboard interface is enabled, and no sooner
//!   than one PS/2 byte time after the guest emptied it. The guest is never
//!   overrun, and the IRQ1 line visibly drops between two bytes (the PIC is
//!   edge-triggered).
//! - The auxiliary (mouse) port exists but nothing is plugged into it: the aux
//!   interface tests pass, bytes written to the aux device time out (status
//!   timeout bit, 0xFE from the controller), exactly what a PS/2 controller
//!   with no mouse connected reports.
//! - Controller commands execute instantly (IBF always reads 0).

use std::collections::VecDeque;

use super::{Nanos, PortDevice};

/// Data port: output buffer (read), input buffer to keyboard or command data (write).
pub const I8042_DATA_PORT: u16 = 0x60;
/// Status register (read), controller command (write).
pub const I8042_COMMAND_PORT: u16 = 0x64;

// Status register bits (IBM PS/2 TR, "Status Register").
const STATUS_OBF: u8 = 0b0000_0001; // output buffer full
#[allow(dead_code)] // never set: commands complete instantly
const STATUS_IBF: u8 = 0b0000_0010; // input buffer full
const STATUS_SYS: u8 = 0b0000_0100; // system flag
const STATUS_A2: u8 = 0b0000_1000; // last write was a command (port 0x64)
const STATUS_INH: u8 = 0b0001_0000; // 1 = keyboard not inhibited (keylock)
const STATUS_AUXB: u8 = 0b0010_0000; // output buffer holds auxiliary data
const STATUS_TIMEOUT: u8 = 0b0100_0000; // general time-out
#[allow(dead_code)] // never set: no transmission errors
const STATUS_PARITY: u8 = 0b1000_0000; // parity error

// Command byte bits (controller RAM byte 0; IBM PS/2 TR, "Command Byte").
const CMD_INT: u8 = 0b0000_0001; // IRQ1 on keyboard output buffer full
const CMD_INT2: u8 = 0b0000_0010; // IRQ12 on auxiliary output buffer full
const CMD_SYS: u8 = 0b0000_0100; // system flag, mirrored in status bit 2
const CMD_DISABLE_KBD: u8 = 0b0001_0000; // keyboard clock held low
const CMD_DISABLE_AUX: u8 = 0b0010_0000; // auxiliary clock held low
const CMD_XLAT: u8 = 0b0100_0000; // translate set 2 scan codes to set 1

// Output port bits (IBM PS/2 TR, "Output Port").
const OUTPORT_RESET: u8 = 0b0000_0001; // 0 = processor reset asserted
const OUTPORT_A20: u8 = 0b0000_0010; // A20 gate
const OUTPORT_OBF_KBD: u8 = 0b0001_0000; // IRQ1 output (keyboard OBF)
const OUTPORT_OBF_AUX: u8 = 0b0010_0000; // IRQ12 output (aux OBF)
/// Power-on output port: reset inactive, A20 enabled, clock and data lines of
/// both interfaces released (high).
const OUTPORT_POWER_ON: u8 = 0b1100_1111;

/// Input port value returned by command 0xC0: bit 7 keyboard not inhibited,
/// bit 6 = 0 colour primary display, bit 5 manufacturing jumper not installed,
/// bit 4 = 1 (system board RAM), bits 0-1 keyboard/aux data lines (idle).
const INPUT_PORT: u8 = 0b1011_0000;

// Controller commands (written to port 0x64).
const CCMD_READ_RAM_FIRST: u8 = 0x20; // 0x20..=0x3F read RAM byte (0x20 = command byte)
const CCMD_READ_RAM_LAST: u8 = 0x3F;
const CCMD_WRITE_RAM_FIRST: u8 = 0x60; // 0x60..=0x7F write RAM byte
const CCMD_WRITE_RAM_LAST: u8 = 0x7F;
const CCMD_PASSWORD_INSTALLED: u8 = 0xA4;
const CCMD_DISABLE_AUX: u8 = 0xA7;
const CCMD_ENABLE_AUX: u8 = 0xA8;
const CCMD_AUX_INTERFACE_TEST: u8 = 0xA9;
const CCMD_SELF_TEST: u8 = 0xAA;
const CCMD_KBD_INTERFACE_TEST: u8 = 0xAB;
const CCMD_DISABLE_KBD: u8 = 0xAD;
const CCMD_ENABLE_KBD: u8 = 0xAE;
const CCMD_READ_INPUT_PORT: u8 = 0xC0;
const CCMD_READ_OUTPUT_PORT: u8 = 0xD0;
const CCMD_WRITE_OUTPUT_PORT: u8 = 0xD1;
const CCMD_WRITE_KBD_OUTPUT_BUFFER: u8 = 0xD2;
const CCMD_WRITE_AUX_OUTPUT_BUFFER: u8 = 0xD3;
const CCMD_WRITE_TO_AUX: u8 = 0xD4;
const CCMD_READ_TEST_INPUTS: u8 = 0xE0;
const CCMD_PULSE_FIRST: u8 = 0xF0; // 0xF0..=0xFF pulse output port bits 0-3

// Controller responses.
const SELF_TEST_OK: u8 = 0x55;
const INTERFACE_TEST_OK: u8 = 0x00;
const PASSWORD_NOT_INSTALLED: u8 = 0xF1;

// Keyboard commands (written to port 0x60).
const KCMD_SET_LEDS: u8 = 0xED;
const KCMD_ECHO: u8 = 0xEE;
const KCMD_SCAN_CODE_SET: u8 = 0xF0;
const KCMD_IDENTIFY: u8 = 0xF2;
const KCMD_TYPEMATIC: u8 = 0xF3;
const KCMD_ENABLE: u8 = 0xF4;
const KCMD_DEFAULT_DISABLE: u8 = 0xF5;
const KCMD_SET_DEFAULT: u8 = 0xF6;
const KCMD_SET3_FIRST: u8 = 0xF7; // 0xF7..=0xFD: set 3 key-type commands
const KCMD_SET3_LAST: u8 = 0xFD;
const KCMD_RESEND: u8 = 0xFE;
const KCMD_RESET: u8 = 0xFF;

// Keyboard responses.
const KBD_ACK: u8 = 0xFA;
const KBD_RESEND: u8 = 0xFE;
const KBD_BAT_OK: u8 = 0xAA;
const KBD_ECHO: u8 = 0xEE;
/// Keyboard ID of an MF II keyboard (response to 0xF2 after the ACK).
const KBD_ID: [u8; 2] = [0xAB, 0x83];
/// Overrun code sent when the keyboard's buffer overflows: 0x00 in set 2 (and
/// 3), 0xFF in set 1.
const KBD_OVERRUN_SET2: u8 = 0x00;
const KBD_OVERRUN_SET1: u8 = 0xFF;
/// Set-2 break prefix and extended-key prefix.
const SET2_BREAK: u8 = 0xF0;
const SET2_EXTENDED: u8 = 0xE0;
/// Power-on typematic setting: 10.9 characters/s, 500 ms delay.
const TYPEMATIC_DEFAULT: u8 = 0x2B;

/// How many bytes the keyboard buffers before sending the overrun code. A real
/// keyboard holds 16; this is larger so host bursts (paste) are not lost, while
/// still bounding memory a stalled guest can make the host hold.
pub const KBD_QUEUE_LIMIT: usize = 256;

/// Time for the keyboard to clock one byte to the controller: 11 bits at the
/// PS/2 clock of 10-16.7 kHz is 0.7-1.1 ms. The next byte enters the output
/// buffer no sooner than this after the guest emptied it.
pub const KBD_BYTE_TIME: Nanos = 1_000_000;

/// The 8042's set 2 -> set 1 translation for codes 0x00-0x7F (IBM PS/2 TR,
/// keyboard controller "scan code translation"). Codes 0x80 and above pass
/// unchanged except 0x83 (F7), which becomes 0x41.
const XLAT_TABLE: [u8; 128] = [
    0xFF, 0x43, 0x41, 0x3F, 0x3D, 0x3B, 0x3C, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3E, 0x0F, 0x29, 0x59,
    0x65, 0x38, 0x2A, 0x70, 0x1D, 0x10, 0x02, 0x5A, 0x66, 0x71, 0x2C, 0x1F, 0x1E, 0x11, 0x03, 0x5B,
    0x67, 0x2E, 0x2D, 0x20, 0x12, 0x05, 0x04, 0x5C, 0x68, 0x39, 0x2F, 0x21, 0x14, 0x13, 0x06, 0x5D,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5E, 0x6A, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5F,
    0x6B, 0x33, 0x25, 0x17, 0x18, 0x0B, 0x0A, 0x60, 0x6C, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0C, 0x61,
    0x6D, 0x73, 0x28, 0x74, 0x1A, 0x0D, 0x62, 0x6E, 0x3A, 0x36, 0x1C, 0x1B, 0x75, 0x2B, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7A, 0x0E, 0x7B, 0x7C, 0x4F, 0x7D, 0x4B, 0x47, 0x7E, 0x7F, 0x6F,
    0x52, 0x53, 0x50, 0x4C, 0x4D, 0x48, 0x01, 0x45, 0x57, 0x4E, 0x51, 0x4A, 0x37, 0x49, 0x46, 0x54,
];

/// Set-2 code of F7, the one code above 0x7F the translation table maps.
const SET2_F7: u8 = 0x83;
const SET1_F7: u8 = 0x41;

/// Translate one set-2 byte (not the 0xF0 prefix) to set 1.
fn xlat(byte: u8) -> u8 {
    match byte {
        SET2_F7 => SET1_F7,
        b if b < 0x80 => XLAT_TABLE.get(usize::from(b)).copied().unwrap_or(b),
        b => b,
    }
}

/// Translate a whole set-2 sequence: 0xF0 is dropped and the following code
/// gets bit 7 set (the set-1 break code).
fn xlat_sequence(seq: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seq.len());
    let mut pending_break = false;
    for &b in seq {
        if b == SET2_BREAK {
            pending_break = true;
            continue;
        }
        out.push(if pending_break {
            xlat(b) | 0x80
        } else {
            xlat(b)
        });
        pending_break = false;
    }
    out
}

/// The keys of a standard 104-key PC keyboard (US layout names; plus the ISO
/// 102nd key), identified by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Escape,
    F1,
    F2,
    F3,
    F4,
    F5,
    F6,
    F7,
    F8,
    F9,
    F10,
    F11,
    F12,
    PrintScreen,
    ScrollLock,
    Pause,
    Backquote,
    Digit1,
    Digit2,
    Digit3,
    Digit4,
    Digit5,
    Digit6,
    Digit7,
    Digit8,
    Digit9,
    Digit0,
    Minus,
    Equal,
    Backspace,
    Tab,
    Q,
    W,
    E,
    R,
    T,
    Y,
    U,
    I,
    O,
    P,
    BracketLeft,
    BracketRight,
    Backslash,
    CapsLock,
    A,
    S,
    D,
    F,
    G,
    H,
    J,
    K,
    L,
    Semicolon,
    Quote,
    Enter,
    ShiftLeft,
    Z,
    X,
    C,
    V,
    B,
    N,
    M,
    Comma,
    Period,
    Slash,
    ShiftRight,
    ControlLeft,
    MetaLeft,
    AltLeft,
    Space,
    AltRight,
    MetaRight,
    ContextMenu,
    ControlRight,
    Insert,
    Home,
    PageUp,
    Delete,
    End,
    PageDown,
    ArrowUp,
    ArrowLeft,
    ArrowDown,
    ArrowRight,
    NumLock,
    NumpadDivide,
    NumpadMultiply,
    NumpadSubtract,
    Numpad7,
    Numpad8,
    Numpad9,
    NumpadAdd,
    Numpad4,
    Numpad5,
    Numpad6,
    Numpad1,
    Numpad2,
    Numpad3,
    NumpadEnter,
    Numpad0,
    NumpadDecimal,
    /// The ISO 102nd key (between left Shift and Z); not on US 104-key boards.
    IntlBackslash,
}

/// Set-2 make code of a key: `(extended, code)`, extended keys sending 0xE0 first.
const fn plain(code: u8) -> (bool, u8) {
    (false, code)
}
const fn ext(code: u8) -> (bool, u8) {
    (true, code)
}

impl Key {
    /// Every key, for frontends building a host key map and for tests.
    pub const ALL: [Key; 105] = [
        Key::Escape,
        Key::F1,
        Key::F2,
        Key::F3,
        Key::F4,
        Key::F5,
        Key::F6,
        Key::F7,
        Key::F8,
        Key::F9,
        Key::F10,
        Key::F11,
        Key::F12,
        Key::PrintScreen,
        Key::ScrollLock,
        Key::Pause,
        Key::Backquote,
        Key::Digit1,
        Key::Digit2,
        Key::Digit3,
        Key::Digit4,
        Key::Digit5,
        Key::Digit6,
        Key::Digit7,
        Key::Digit8,
        Key::Digit9,
        Key::Digit0,
        Key::Minus,
        Key::Equal,
        Key::Backspace,
        Key::Tab,
        Key::Q,
        Key::W,
        Key::E,
        Key::R,
        Key::T,
        Key::Y,
        Key::U,
        Key::I,
        Key::O,
        Key::P,
        Key::BracketLeft,
        Key::BracketRight,
        Key::Backslash,
        Key::CapsLock,
        Key::A,
        Key::S,
        Key::D,
        Key::F,
        Key::G,
        Key::H,
        Key::J,
        Key::K,
        Key::L,
        Key::Semicolon,
        Key::Quote,
        Key::Enter,
        Key::ShiftLeft,
        Key::Z,
        Key::X,
        Key::C,
        Key::V,
        Key::B,
        Key::N,
        Key::M,
        Key::Comma,
        Key::Period,
        Key::Slash,
        Key::ShiftRight,
        Key::ControlLeft,
        Key::MetaLeft,
        Key::AltLeft,
        Key::Space,
        Key::AltRight,
        Key::MetaRight,
        Key::ContextMenu,
        Key::ControlRight,
        Key::Insert,
        Key::Home,
        Key::PageUp,
        Key::Delete,
        Key::End,
        Key::PageDown,
        Key::ArrowUp,
        Key::ArrowLeft,
        Key::ArrowDown,
        Key::ArrowRight,
        Key::NumLock,
        Key::NumpadDivide,
        Key::NumpadMultiply,
        Key::NumpadSubtract,
        Key::Numpad7,
        Key::Numpad8,
        Key::Numpad9,
        Key::NumpadAdd,
        Key::Numpad4,
        Key::Numpad5,
        Key::Numpad6,
        Key::Numpad1,
        Key::Numpad2,
        Key::Numpad3,
        Key::NumpadEnter,
        Key::Numpad0,
        Key::NumpadDecimal,
        Key::IntlBackslash,
    ];

    /// Set-2 make code `(extended, code)` (IBM PS/2 TR, keyboard scan code set 2).
    /// PrintScreen and Pause send multi-byte sequences; see
    /// [`Key::set2_sequence`]. For them this returns their final code.
    pub const fn set2(self) -> (bool, u8) {
        match self {
            Key::Escape => plain(0x76),
            Key::F1 => plain(0x05),
            Key::F2 => plain(0x06),
            Key::F3 => plain(0x04),
            Key::F4 => plain(0x0C),
            Key::F5 => plain(0x03),
            Key::F6 => plain(0x0B),
            Key::F7 => plain(0x83),
            Key::F8 => plain(0x0A),
            Key::F9 => plain(0x01),
            Key::F10 => plain(0x09),
            Key::F11 => plain(0x78),
            Key::F12 => plain(0x07),
            Key::PrintScreen => ext(0x7C),
            Key::ScrollLock => plain(0x7E),
            Key::Pause => plain(0x77),
            Key::Backquote => plain(0x0E),
            Key::Digit1 => plain(0x16),
            Key::Digit2 => plain(0x1E),
            Key::Digit3 => plain(0x26),
            Key::Digit4 => plain(0x25),
            Key::Digit5 => plain(0x2E),
            Key::Digit6 => plain(0x36),
            Key::Digit7 => plain(0x3D),
            Key::Digit8 => plain(0x3E),
            Key::Digit9 => plain(0x46),
            Key::Digit0 => plain(0x45),
            Key::Minus => plain(0x4E),
            Key::Equal => plain(0x55),
            Key::Backspace => plain(0x66),
            Key::Tab => plain(0x0D),
            Key::Q => plain(0x15),
            Key::W => plain(0x1D),
            Key::E => plain(0x24),
            Key::R => plain(0x2D),
            Key::T => plain(0x2C),
            Key::Y => plain(0x35),
            Key::U => plain(0x3C),
            Key::I => plain(0x43),
            Key::O => plain(0x44),
            Key::P => plain(0x4D),
            Key::BracketLeft => plain(0x54),
            Key::BracketRight => plain(0x5B),
            Key::Backslash => plain(0x5D),
            Key::CapsLock => plain(0x58),
            Key::A => plain(0x1C),
            Key::S => plain(0x1B),
            Key::D => plain(0x23),
            Key::F => plain(0x2B),
            Key::G => plain(0x34),
            Key::H => plain(0x33),
            Key::J => plain(0x3B),
            Key::K => plain(0x42),
            Key::L => plain(0x4B),
            Key::Semicolon => plain(0x4C),
            Key::Quote => plain(0x52),
            Key::Enter => plain(0x5A),
            Key::ShiftLeft => plain(0x12),
            Key::Z => plain(0x1A),
            Key::X => plain(0x22),
            Key::C => plain(0x21),
            Key::V => plain(0x2A),
            Key::B => plain(0x32),
            Key::N => plain(0x31),
            Key::M => plain(0x3A),
            Key::Comma => plain(0x41),
            Key::Period => plain(0x49),
            Key::Slash => plain(0x4A),
            Key::ShiftRight => plain(0x59),
            Key::ControlLeft => plain(0x14),
            Key::MetaLeft => ext(0x1F),
            Key::AltLeft => plain(0x11),
            Key::Space => plain(0x29),
            Key::AltRight => ext(0x11),
            Key::MetaRight => ext(0x27),
            Key::ContextMenu => ext(0x2F),
            Key::ControlRight => ext(0x14),
            Key::Insert => ext(0x70),
            Key::Home => ext(0x6C),
            Key::PageUp => ext(0x7D),
            Key::Delete => ext(0x71),
            Key::End => ext(0x69),
            Key::PageDown => ext(0x7A),
            Key::ArrowUp => ext(0x75),
            Key::ArrowLeft => ext(0x6B),
            Key::ArrowDown => ext(0x72),
            Key::ArrowRight => ext(0x74),
            Key::NumLock => plain(0x77),
            Key::NumpadDivide => ext(0x4A),
            Key::NumpadMultiply => plain(0x7C),
            Key::NumpadSubtract => plain(0x7B),
            Key::Numpad7 => plain(0x6C),
            Key::Numpad8 => plain(0x75),
            Key::Numpad9 => plain(0x7D),
            Key::NumpadAdd => plain(0x79),
            Key::Numpad4 => plain(0x6B),
            Key::Numpad5 => plain(0x73),
            Key::Numpad6 => plain(0x74),
            Key::Numpad1 => plain(0x69),
            Key::Numpad2 => plain(0x72),
            Key::Numpad3 => plain(0x7A),
            Key::NumpadEnter => ext(0x5A),
            Key::Numpad0 => plain(0x70),
            Key::NumpadDecimal => plain(0x71),
            Key::IntlBackslash => plain(0x61),
        }
    }

    /// The set-2 bytes the keyboard sends for a press or release.
    /// - Normal keys: make `[E0] code`, break `[E0] F0 code`.
    /// - PrintScreen (no modifiers): make `E0 12 E0 7C`, break `E0 F0 7C E0 F0 12`.
    /// - Pause (no Ctrl): make `E1 14 77 E1 F0 14 F0 77` and no break code at all.
    pub fn set2_sequence(self, pressed: bool) -> Vec<u8> {
        match (self, pressed) {
            (Key::Pause, true) => vec![0xE1, 0x14, 0x77, 0xE1, SET2_BREAK, 0x14, SET2_BREAK, 0x77],
            (Key::Pause, false) => Vec::new(),
            (Key::PrintScreen, true) => vec![SET2_EXTENDED, 0x12, SET2_EXTENDED, 0x7C],
            (Key::PrintScreen, false) => vec![
                SET2_EXTENDED,
                SET2_BREAK,
                0x7C,
                SET2_EXTENDED,
                SET2_BREAK,
                0x12,
            ],
            (key, pressed) => {
                let (extended, code) = key.set2();
                let mut seq = Vec::with_capacity(3);
                if extended {
                    seq.push(SET2_EXTENDED);
                }
                if !pressed {
                    seq.push(SET2_BREAK);
                }
                seq.push(code);
                seq
            }
        }
    }
}

/// A keyboard-command argument the keyboard waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum KbdArgument {
    None,
    Leds,
    Typematic,
    ScanCodeSet,
}

/// The PS/2 keyboard: its command interpreter and output queue.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Keyboard {
    queue: VecDeque<u8>,
    scanning: bool,
    scan_code_set: u8,
    leds: u8,
    typematic: u8,
    argument: KbdArgument,
    /// Last byte sent to the controller, repeated by the Resend command.
    last_sent: u8,
    /// How many bytes at the front of `queue` are command responses.
    responses: usize,
}

impl Keyboard {
    fn new() -> Self {
        Keyboard {
            queue: VecDeque::new(),
            scanning: true,
            scan_code_set: 2,
            leds: 0,
            typematic: TYPEMATIC_DEFAULT,
            argument: KbdArgument::None,
            last_sent: 0,
            responses: 0,
        }
    }

    fn set_defaults(&mut self) {
        self.scan_code_set = 2;
        self.leds = 0;
        self.typematic = TYPEMATIC_DEFAULT;
    }

    /// Responses go ahead of any queued scan codes (after earlier responses):
    /// the keyboard answers a command before it resumes sending buffered
    /// keystrokes.
    fn respond(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let at = self.responses.min(self.queue.len());
            self.queue.insert(at, b);
            self.responses = at + 1;
        }
    }

    fn clear_queue(&mut self) {
        self.queue.clear();
        self.responses = 0;
    }

    fn pop(&mut self) -> Option<u8> {
        let byte = self.queue.pop_front()?;
        self.responses = self.responses.saturating_sub(1);
        self.last_sent = byte;
        Some(byte)
    }

    /// A byte from the controller (IBM PS/2 TR, "Commands from the System").
    fn write(&mut self, byte: u8) {
        let is_command = byte >= KCMD_SET_LEDS;
        match self.argument {
            KbdArgument::Leds if !is_command => {
                self.argument = KbdArgument::None;
                self.leds = byte & 0b0000_0111;
                self.respond(&[KBD_ACK]);
                return;
            }
            KbdArgument::Typematic if !is_command => {
                self.argument = KbdArgument::None;
                self.typematic = byte & 0b0111_1111;
                self.respond(&[KBD_ACK]);
                return;
            }
            KbdArgument::ScanCodeSet => {
                self.argument = KbdArgument::None;
                match byte {
                    0 => self.respond(&[KBD_ACK, self.scan_code_set]),
                    1 | 2 => {
                        self.clear_queue();
                        self.scan_code_set = byte;
                        self.respond(&[KBD_ACK]);
                    }
                    // Set 3 is not implemented: refuse it like an invalid
                    // argument, so the system keeps using set 2.
                    _ => self.respond(&[KBD_RESEND]),
                }
                return;
            }
            // An argument that is a command cancels the pending command.
            _ => self.argument = KbdArgument::None,
        }
        match byte {
            KCMD_SET_LEDS => {
                self.argument = KbdArgument::Leds;
                self.respond(&[KBD_ACK]);
            }
            KCMD_ECHO => self.respond(&[KBD_ECHO]),
            KCMD_SCAN_CODE_SET => {
                self.argument = KbdArgument::ScanCodeSet;
                self.respond(&[KBD_ACK]);
            }
            KCMD_IDENTIFY => self.respond(&[KBD_ACK, KBD_ID[0], KBD_ID[1]]),
            KCMD_TYPEMATIC => {
                self.argument = KbdArgument::Typematic;
                self.respond(&[KBD_ACK]);
            }
            KCMD_ENABLE => {
                self.clear_queue();
                self.scanning = true;
                self.respond(&[KBD_ACK]);
            }
            KCMD_DEFAULT_DISABLE => {
                self.clear_queue();
                self.set_defaults();
                self.scanning = false;
                self.respond(&[KBD_ACK]);
            }
            KCMD_SET_DEFAULT => {
                self.clear_queue();
                self.set_defaults();
                self.respond(&[KBD_ACK]);
            }
            KCMD_SET3_FIRST..=KCMD_SET3_LAST => self.respond(&[KBD_ACK]),
            KCMD_RESEND => self.respond(&[self.last_sent]),
            KCMD_RESET => {
                self.clear_queue();
                self.set_defaults();
                self.scanning = true;
                // Basic assurance test passes at once.
                self.respond(&[KBD_ACK, KBD_BAT_OK]);
            }
            _ => self.respond(&[KBD_RESEND]),
        }
    }

    fn key_event(&mut self, key: Key, pressed: bool) {
        if !self.scanning || self.argument != KbdArgument::None {
            return;
        }
        let set2 = key.set2_sequence(pressed);
        let (bytes, overrun) = if self.scan_code_set == 1 {
            (xlat_sequence(&set2), KBD_OVERRUN_SET1)
        } else {
            (set2, KBD_OVERRUN_SET2)
        };
        // Keep one slot for the overrun code; a sequence is queued whole or not at all.
        if self.queue.len() + bytes.len() < KBD_QUEUE_LIMIT {
            self.queue.extend(bytes);
        } else if self.queue.len() < KBD_QUEUE_LIMIT && self.queue.back() != Some(&overrun) {
            self.queue.push_back(overrun);
        }
    }
}

/// A controller command waiting for its data byte on port 0x60.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum PendingWrite {
    None,
    Ram(u8),
    OutputPort,
    KbdOutputBuffer,
    AuxOutputBuffer,
    ToAux,
}

/// The 8042 keyboard controller and its keyboard.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct I8042 {
    /// Controller RAM; byte 0 is the command byte.
    ram: [u8; 32],
    output_buffer: u8,
    obf: bool,
    /// The output buffer byte came from the auxiliary port (status AUXB).
    obf_aux: bool,
    /// Status A2: the last byte written went to the command port.
    last_write_command: bool,
    /// Status general time-out, set when an aux device did not answer.
    timeout: bool,
    pending: PendingWrite,
    output_port: u8,
    reset_request: bool,
    /// Translation saw a set-2 break prefix (0xF0) and drops it, marking the
    /// next code as a break.
    xlat_break: bool,
    /// Earliest time the keyboard may deliver its next byte.
    kbd_ready_at: Nanos,
    now: Nanos,
    kbd: Keyboard,
}

impl Default for I8042 {
    fn default() -> Self {
        Self::new()
    }
}

impl I8042 {
    /// The controller after power-on: command byte with IRQ1, translation and
    /// both interfaces enabled, system flag clear until the self test; the
    /// keyboard enabled in set 2.
    pub fn new() -> Self {
        let mut ram = [0; 32];
        ram[0] = CMD_INT | CMD_XLAT;
        I8042 {
            ram,
            output_buffer: 0,
            obf: false,
            obf_aux: false,
            last_write_command: false,
            timeout: false,
            pending: PendingWrite::None,
            output_port: OUTPORT_POWER_ON,
            reset_request: false,
            xlat_break: false,
            kbd_ready_at: 0,
            now: 0,
            kbd: Keyboard::new(),
        }
    }

    fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    /// A host key press or release. The scan codes wait in the keyboard's queue
    /// and reach the guest one byte at a time. Ignored while the keyboard is
    /// disabled (0xF5) or waiting for a command argument, as on a real keyboard.
    pub fn key_event(&mut self, key: Key, pressed: bool) {
        self.kbd.key_event(key, pressed);
        self.service();
    }

    /// Bytes queued in the keyboard, so a frontend can pace injected input.
    pub fn kbd_queue_len(&self) -> usize {
        self.kbd.queue.len()
    }

    /// The keyboard LEDs last set by the guest: bit 0 Scroll, 1 Num, 2 Caps Lock.
    pub fn leds(&self) -> u8 {
        self.kbd.leds
    }

    /// IRQ1 line level: keyboard data in the output buffer and command byte INT.
    /// Sample after every access, `key_event` and `advance`.
    pub fn irq1(&self) -> bool {
        self.obf && !self.obf_aux && self.command_byte() & CMD_INT != 0
    }

    /// IRQ12 line level: auxiliary data in the output buffer and command byte INT2.
    pub fn irq12(&self) -> bool {
        self.obf && self.obf_aux && self.command_byte() & CMD_INT2 != 0
    }

    /// The A20 gate output (output port bit 1). The machine ORs it with the
    /// fast A20 bit of port 0x92.
    pub fn a20(&self) -> bool {
        self.output_port & OUTPORT_A20 != 0
    }

    /// True once after the guest asserted the processor reset line (output port
    /// bit 0 written 0 by 0xD1, or pulsed by 0xF0-0xFE with bit 0 clear).
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_request)
    }

    /// When the next queued keyboard byte can enter the output buffer.
    pub fn next_deadline(&self) -> Option<Nanos> {
        if self.obf || self.kbd.queue.is_empty() || self.command_byte() & CMD_DISABLE_KBD != 0 {
            return None;
        }
        Some(self.kbd_ready_at)
    }

    /// Catch up to virtual time `now`: move a keyboard byte into the output
    /// buffer if one is due.
    pub fn advance(&mut self, now: Nanos) {
        self.now = self.now.max(now);
        self.service();
    }

    /// Move one keyboard byte into the output buffer if it is empty, the
    /// keyboard interface is enabled and a byte time has passed since the guest
    /// emptied it. With translation on, a 0xF0 prefix is absorbed here.
    fn service(&mut self) {
        if self.obf || self.command_byte() & CMD_DISABLE_KBD != 0 || self.now < self.kbd_ready_at {
            return;
        }
        while let Some(byte) = self.kbd.pop() {
            if self.command_byte() & CMD_XLAT != 0 {
                if byte == SET2_BREAK {
                    self.xlat_break = true;
                    continue;
                }
                let code = xlat(byte);
                let code = if std::mem::take(&mut self.xlat_break) {
                    code | 0x80
                } else {
                    code
                };
                self.fill_output(code, false);
            } else {
                self.fill_output(byte, false);
            }
            return;
        }
    }

    fn fill_output(&mut self, byte: u8, aux: bool) {
        self.output_buffer = byte;
        self.obf = true;
        self.obf_aux = aux;
    }

    fn status(&self) -> u8 {
        let mut status = STATUS_INH;
        if self.obf {
            status |= STATUS_OBF;
            if self.obf_aux {
                status |= STATUS_AUXB;
            }
        }
        if self.command_byte() & CMD_SYS != 0 {
            status |= STATUS_SYS;
        }
        if self.last_write_command {
            status |= STATUS_A2;
        }
        if self.timeout {
            status |= STATUS_TIMEOUT;
        }
        // STATUS_IBF and STATUS_PARITY stay 0: commands execute instantly and
        // the emulated serial link has no parity errors.
        status
    }

    fn read_output_port(&self) -> u8 {
        let mut port = self.output_port & !(OUTPORT_OBF_KBD | OUTPORT_OBF_AUX);
        if self.obf && !self.obf_aux {
            port |= OUTPORT_OBF_KBD;
        }
        if self.obf && self.obf_aux {
            port |= OUTPORT_OBF_AUX;
        }
        port
    }

    fn write_output_port(&mut self, value: u8) {
        if value & OUTPORT_RESET == 0 {
            self.reset_request = true;
        }
        // Reset is treated as a pulse: the line is released again, so a later
        // read shows bit 0 = 1.
        self.output_port = value | OUTPORT_RESET;
    }

    fn controller_command(&mut self, command: u8) {
        self.pending = PendingWrite::None;
        match command {
            CCMD_READ_RAM_FIRST..=CCMD_READ_RAM_LAST => {
                let value = self
                    .ram
                    .get(usize::from(command & 0x1F))
                    .copied()
                    .unwrap_or(0);
                self.fill_output(value, false);
            }
            CCMD_WRITE_RAM_FIRST..=CCMD_WRITE_RAM_LAST => {
                self.pending = PendingWrite::Ram(command & 0x1F);
            }
            CCMD_PASSWORD_INSTALLED => self.fill_output(PASSWORD_NOT_INSTALLED, false),
            CCMD_DISABLE_AUX => self.ram[0] |= CMD_DISABLE_AUX,
            CCMD_ENABLE_AUX => self.ram[0] &= !CMD_DISABLE_AUX,
            // No device attached, but the interface lines test good.
            CCMD_AUX_INTERFACE_TEST => self.fill_output(INTERFACE_TEST_OK, false),
            CCMD_SELF_TEST => {
                // A passed self test sets the system flag.
                self.ram[0] |= CMD_SYS;
                self.fill_output(SELF_TEST_OK, false);
            }
            CCMD_KBD_INTERFACE_TEST => self.fill_output(INTERFACE_TEST_OK, false),
            CCMD_DISABLE_KBD => self.ram[0] |= CMD_DISABLE_KBD,
            CCMD_ENABLE_KBD => self.ram[0] &= !CMD_DISABLE_KBD,
            CCMD_READ_INPUT_PORT => self.fill_output(INPUT_PORT, false),
            CCMD_READ_OUTPUT_PORT => self.fill_output(self.read_output_port(), false),
            CCMD_WRITE_OUTPUT_PORT => self.pending = PendingWrite::OutputPort,
            CCMD_WRITE_KBD_OUTPUT_BUFFER => self.pending = PendingWrite::KbdOutputBuffer,
            CCMD_WRITE_AUX_OUTPUT_BUFFER => self.pending = PendingWrite::AuxOutputBuffer,
            CCMD_WRITE_TO_AUX => self.pending = PendingWrite::ToAux,
            // Test inputs: bit 0 keyboard clock, bit 1 aux clock (released = 1
            // unless the interface is disabled).
            CCMD_READ_TEST_INPUTS => {
                let mut t = 0;
                if self.command_byte() & CMD_DISABLE_KBD == 0 {
                    t |= 0b01;
                }
                if self.command_byte() & CMD_DISABLE_AUX == 0 {
                    t |= 0b10;
                }
                self.fill_output(t, false);
            }
            // Pulse output port bits 0-3 low for bits clear in the command's low
            // nibble: bit 0 is the processor reset line (0xFE). Pulsing the
            // other bits (A20, aux lines) leaves no lasting change.
            CCMD_PULSE_FIRST..=0xFF if command & OUTPORT_RESET == 0 => {
                self.reset_request = true;
            }
            _ => {}
        }
    }

    fn data_write(&mut self, value: u8) {
        match std::mem::replace(&mut self.pending, PendingWrite::None) {
            PendingWrite::Ram(index) => {
                if let Some(byte) = self.ram.get_mut(usize::from(index)) {
                    *byte = value;
                }
            }
            PendingWrite::OutputPort => self.write_output_port(value),
            PendingWrite::KbdOutputBuffer => self.fill_output(value, false),
            PendingWrite::AuxOutputBuffer => self.fill_output(value, true),
            PendingWrite::ToAux => {
                // No auxiliary device answers: time-out, and the controller
                // reports 0xFE as if from the aux port.
                self.timeout = true;
                self.fill_output(KBD_RESEND, true);
            }
            PendingWrite::None => self.kbd.write(value),
        }
    }
}

impl PortDevice for I8042 {
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32 {
        self.advance(now);
        let byte = match port {
            I8042_DATA_PORT => {
                if self.obf {
                    self.obf = false;
                    self.kbd_ready_at = self.now.saturating_add(KBD_BYTE_TIME);
                }
                self.output_buffer
            }
            I8042_COMMAND_PORT => self.status(),
            _ => 0xFF,
        };
        // An 8-bit device: the bytes of a wider access above the first are not
        // driven here (ports 0x61-0x63 and 0x65-0x67 belong to other devices).
        let width_mask = match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        };
        (u32::from(byte) | 0xFFFF_FF00) & width_mask
    }

    fn io_write(&mut self, port: u16, _size: u8, value: u32, now: Nanos) {
        self.advance(now);
        let byte = value as u8;
        match port {
            I8042_DATA_PORT => {
                self.timeout = false;
                self.last_write_command = false;
                self.data_write(byte);
            }
            I8042_COMMAND_PORT => {
                self.timeout = false;
                self.last_write_command = true;
                self.controller_command(byte);
            }
            _ => {}
        }
        self.service();
    }
}

impl I8042 {
    /// Hands the controller's outputs to the platform: IRQ1, IRQ12, the A20
    /// gate and a pulsed reset line.
    fn drive_outputs(&mut self, cx: &mut super::Ctx) {
        cx.set_irq(1, self.irq1());
        cx.set_irq(12, self.irq12());
        cx.set_a20(self.a20());
        if self.take_reset_request() {
            cx.request_reset();
        }
    }
}

impl super::Device for I8042 {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "i8042"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default()
            .ports(0x60..=0x60)
            .ports(0x64..=0x64)
            .irq(1)
            .irq(12)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        let v = PortDevice::io_read(self, port, size, cx.now);
        self.drive_outputs(cx);
        v
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        self.drive_outputs(cx);
    }
    fn power_on(&mut self, cx: &mut super::Ctx) {
        self.drive_outputs(cx);
    }
    fn advance(&mut self, cx: &mut super::Ctx) {
        I8042::advance(self, cx.now);
        self.drive_outputs(cx);
    }
    fn next_deadline(&self) -> Option<Nanos> {
        I8042::next_deadline(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Virtual time long enough for any queued keyboard byte to arrive.
    const LATER: Nanos = 10 * KBD_BYTE_TIME;

    fn status(c: &mut I8042, now: Nanos) -> u8 {
        c.io_read(I8042_COMMAND_PORT, 1, now) as u8
    }

    fn command(c: &mut I8042, cmd: u8, now: Nanos) {
        c.io_write(I8042_COMMAND_PORT, 1, u32::from(cmd), now);
    }

    fn write_data(c: &mut I8042, value: u8, now: Nanos) {
        c.io_write(I8042_DATA_PORT, 1, u32::from(value), now);
    }

    /// Read everything the guest would get by polling, advancing time between
    /// bytes as a polling guest does.
    fn drain(c: &mut I8042, now: &mut Nanos) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..64 {
            *now += KBD_BYTE_TIME;
            if status(c, *now) & STATUS_OBF == 0 {
                continue;
            }
            out.push(c.io_read(I8042_DATA_PORT, 1, *now) as u8);
        }
        out
    }

    fn read_command_byte(c: &mut I8042, now: Nanos) -> u8 {
        command(c, CCMD_READ_RAM_FIRST, now);
        c.io_read(I8042_DATA_PORT, 1, now) as u8
    }

    #[test]
    fn self_test_and_interface_tests() {
        let mut c = I8042::new();
        assert_eq!(status(&mut c, 0) & STATUS_SYS, 0, "power-on: SYS clear");
        command(&mut c, CCMD_SELF_TEST, 0);
        let s = status(&mut c, 0);
        assert_eq!(
            s & (STATUS_OBF | STATUS_SYS | STATUS_A2),
            STATUS_OBF | STATUS_SYS | STATUS_A2
        );
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0), 0x55);
        command(&mut c, CCMD_SELF_TEST, 0);
        assert_eq!(
            c.io_read(I8042_DATA_PORT, 2, 0),
            0xFF55,
            "upper byte not driven"
        );
        assert_eq!(status(&mut c, 0) & STATUS_OBF, 0);
        command(&mut c, CCMD_KBD_INTERFACE_TEST, 0);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0x00);
        command(&mut c, CCMD_AUX_INTERFACE_TEST, 0);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0x00);
        command(&mut c, CCMD_PASSWORD_INSTALLED, 0);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0xF1);
    }

    #[test]
    fn command_byte_round_trip() {
        let mut c = I8042::new();
        assert_eq!(read_command_byte(&mut c, 0), CMD_INT | CMD_XLAT);
        command(&mut c, CCMD_WRITE_RAM_FIRST, 0);
        write_data(&mut c, 0b0111_0111, 0);
        assert_eq!(status(&mut c, 0) & STATUS_A2, 0, "data write clears A2");
        assert_eq!(read_command_byte(&mut c, 0), 0b0111_0111);
        assert_eq!(status(&mut c, 0) & STATUS_SYS, STATUS_SYS);
        // Other RAM bytes are separate.
        command(&mut c, 0x65, 0);
        write_data(&mut c, 0x42, 0);
        command(&mut c, 0x25, 0);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0x42);
        assert_eq!(read_command_byte(&mut c, 0), 0b0111_0111);
        // Enable/disable commands edit the command byte.
        command(&mut c, CCMD_ENABLE_KBD, 0);
        command(&mut c, CCMD_ENABLE_AUX, 0);
        assert_eq!(read_command_byte(&mut c, 0), 0b0100_0111);
        command(&mut c, CCMD_DISABLE_KBD, 0);
        command(&mut c, CCMD_DISABLE_AUX, 0);
        assert_eq!(read_command_byte(&mut c, 0), 0b0111_0111);
    }

    #[test]
    fn irq1_follows_obf_and_command_byte() {
        let mut c = I8042::new();
        command(&mut c, CCMD_SELF_TEST, 0);
        assert!(c.irq1());
        assert!(!c.irq12());
        c.io_read(I8042_DATA_PORT, 1, 0);
        assert!(!c.irq1());
        // IRQ1 disabled in the command byte.
        command(&mut c, CCMD_WRITE_RAM_FIRST, 0);
        write_data(&mut c, CMD_XLAT, 0);
        c.key_event(Key::A, true);
        assert_eq!(status(&mut c, LATER) & STATUS_OBF, STATUS_OBF);
        assert!(!c.irq1());
    }

    #[test]
    fn translation_of_normal_and_extended_keys() {
        let mut c = I8042::new();
        let mut now = 0;
        c.key_event(Key::A, true);
        c.key_event(Key::A, false);
        c.key_event(Key::ArrowUp, true);
        c.key_event(Key::ArrowUp, false);
        c.key_event(Key::F7, true);
        assert_eq!(
            drain(&mut c, &mut now),
            [0x1E, 0x9E, 0xE0, 0x48, 0xE0, 0xC8, 0x41]
        );
        // Translation off: raw set 2.
        command(&mut c, CCMD_WRITE_RAM_FIRST, now);
        write_data(&mut c, CMD_INT, now);
        c.key_event(Key::A, false);
        c.key_event(Key::ArrowUp, false);
        assert_eq!(drain(&mut c, &mut now), [0xF0, 0x1C, 0xE0, 0xF0, 0x75]);
    }

    #[test]
    fn translation_table_matches_set1_for_every_key() {
        // Set-1 make codes from the IBM scan code set 1 table, independent of
        // the translation table.
        let set1 = |k: Key| -> (bool, u8) {
            use Key::*;
            let row =
                |base: u8, keys: &[Key]| keys.iter().position(|&x| x == k).map(|i| base + i as u8);
            let groups: [(u8, &[Key]); 6] = [
                (
                    0x02,
                    &[
                        Digit1, Digit2, Digit3, Digit4, Digit5, Digit6, Digit7, Digit8, Digit9,
                        Digit0, Minus, Equal, Backspace, Tab,
                    ],
                ),
                (
                    0x10,
                    &[
                        Q,
                        W,
                        E,
                        R,
                        T,
                        Y,
                        U,
                        I,
                        O,
                        P,
                        BracketLeft,
                        BracketRight,
                        Enter,
                        ControlLeft,
                    ],
                ),
                (
                    0x1E,
                    &[
                        A, S, D, F, G, H, J, K, L, Semicolon, Quote, Backquote, ShiftLeft,
                        Backslash,
                    ],
                ),
                (
                    0x2C,
                    &[
                        Z,
                        X,
                        C,
                        V,
                        B,
                        N,
                        M,
                        Comma,
                        Period,
                        Slash,
                        ShiftRight,
                        NumpadMultiply,
                        AltLeft,
                        Space,
                    ],
                ),
                (
                    0x3A,
                    &[
                        CapsLock, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, NumLock, ScrollLock,
                    ],
                ),
                (
                    0x47,
                    &[
                        Numpad7,
                        Numpad8,
                        Numpad9,
                        NumpadSubtract,
                        Numpad4,
                        Numpad5,
                        Numpad6,
                        NumpadAdd,
                        Numpad1,
                        Numpad2,
                        Numpad3,
                        Numpad0,
                        NumpadDecimal,
                    ],
                ),
            ];
            for (base, keys) in groups {
                if let Some(code) = row(base, keys) {
                    return (false, code);
                }
            }
            match k {
                Escape => (false, 0x01),
                IntlBackslash => (false, 0x56),
                F11 => (false, 0x57),
                F12 => (false, 0x58),
                NumpadEnter => (true, 0x1C),
                ControlRight => (true, 0x1D),
                NumpadDivide => (true, 0x35),
                AltRight => (true, 0x38),
                Home => (true, 0x47),
                ArrowUp => (true, 0x48),
                PageUp => (true, 0x49),
                ArrowLeft => (true, 0x4B),
                ArrowRight => (true, 0x4D),
                End => (true, 0x4F),
                ArrowDown => (true, 0x50),
                PageDown => (true, 0x51),
                Insert => (true, 0x52),
                Delete => (true, 0x53),
                MetaLeft => (true, 0x5B),
                MetaRight => (true, 0x5C),
                ContextMenu => (true, 0x5D),
                _ => (false, 0),
            }
        };
        let mut seen = std::collections::HashSet::new();
        for key in Key::ALL {
            // Pause's final code 0x77 is NumLock's; its sequence starts with E1.
            if key != Key::Pause {
                assert!(seen.insert(key.set2()), "{key:?} set-2 code unique");
            }
            if matches!(key, Key::Pause | Key::PrintScreen) {
                continue;
            }
            let (extended, code) = set1(key);
            assert_ne!(code, 0, "{key:?} has a set-1 code");
            let prefix: &[u8] = if extended { &[0xE0] } else { &[] };
            let make = [prefix, &[code]].concat();
            let brk = [prefix, &[code | 0x80]].concat();
            assert_eq!(
                xlat_sequence(&key.set2_sequence(true)),
                make,
                "{key:?} make"
            );
            assert_eq!(
                xlat_sequence(&key.set2_sequence(false)),
                brk,
                "{key:?} break"
            );
        }
        assert_eq!(seen.len(), 104, "Pause shares 0x77 with NumLock only");
    }

    #[test]
    fn pause_and_print_screen_sequences() {
        let mut c = I8042::new();
        let mut now = 0;
        c.key_event(Key::Pause, true);
        c.key_event(Key::Pause, false);
        assert_eq!(
            drain(&mut c, &mut now),
            [0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5],
            "set-1 Pause, no break code"
        );
        c.key_event(Key::PrintScreen, true);
        c.key_event(Key::PrintScreen, false);
        assert_eq!(
            drain(&mut c, &mut now),
            [0xE0, 0x2A, 0xE0, 0x37, 0xE0, 0xB7, 0xE0, 0xAA]
        );
    }

    #[test]
    fn key_queue_never_overruns_guest() {
        let mut c = I8042::new();
        for key in [Key::H, Key::I, Key::Enter] {
            c.key_event(key, true);
            c.key_event(key, false);
        }
        // The first byte is in the output buffer; the rest wait.
        assert!(c.irq1());
        assert_eq!(c.kbd_queue_len(), 8, "9 set-2 bytes, one moved");
        // Not read: nothing replaces it, whatever the time.
        c.advance(LATER);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, LATER) as u8, 0x23);
        // Just after the read the line is low and no new byte arrives yet.
        assert!(!c.irq1());
        assert_eq!(c.next_deadline(), Some(LATER + KBD_BYTE_TIME));
        c.advance(LATER + KBD_BYTE_TIME - 1);
        assert!(!c.irq1());
        c.advance(LATER + KBD_BYTE_TIME);
        assert!(c.irq1(), "next byte after one byte time");
        let mut now = LATER + KBD_BYTE_TIME;
        let rest = drain(&mut c, &mut now);
        assert_eq!(rest, [0xA3, 0x17, 0x97, 0x1C, 0x9C]);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn keyboard_buffer_overflow_sends_overrun_code() {
        let mut c = I8042::new();
        command(&mut c, CCMD_DISABLE_KBD, 0);
        for _ in 0..KBD_QUEUE_LIMIT {
            c.key_event(Key::A, true);
        }
        assert_eq!(c.kbd_queue_len(), KBD_QUEUE_LIMIT);
        assert_eq!(status(&mut c, LATER) & STATUS_OBF, 0, "interface disabled");
        command(&mut c, CCMD_ENABLE_KBD, LATER);
        let mut now = LATER;
        let mut got = Vec::new();
        for _ in 0..KBD_QUEUE_LIMIT + 4 {
            got.extend(drain(&mut c, &mut now));
        }
        assert_eq!(got.len(), KBD_QUEUE_LIMIT);
        assert!(got[..KBD_QUEUE_LIMIT - 1].iter().all(|&b| b == 0x1E));
        assert_eq!(
            got[KBD_QUEUE_LIMIT - 1],
            0xFF,
            "set-2 overrun 0x00 translated"
        );
    }

    #[test]
    fn keyboard_reset_and_identify() {
        let mut c = I8042::new();
        let mut now = 0;
        write_data(&mut c, KCMD_RESET, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xAA]);
        write_data(&mut c, KCMD_IDENTIFY, now);
        assert_eq!(
            drain(&mut c, &mut now),
            [0xFA, 0xAB, 0x41],
            "ID 0x83 translated"
        );
        command(&mut c, CCMD_WRITE_RAM_FIRST, now);
        write_data(&mut c, CMD_INT, now);
        write_data(&mut c, KCMD_IDENTIFY, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xAB, 0x83]);
        write_data(&mut c, KCMD_ECHO, now);
        assert_eq!(drain(&mut c, &mut now), [0xEE]);
        write_data(&mut c, KCMD_RESEND, now);
        assert_eq!(drain(&mut c, &mut now), [0xEE]);
        write_data(&mut c, 0x01, now);
        assert_eq!(drain(&mut c, &mut now), [0xFE], "unknown command");
    }

    #[test]
    fn keyboard_commands_with_arguments() {
        let mut c = I8042::new();
        let mut now = 0;
        command(&mut c, CCMD_WRITE_RAM_FIRST, now);
        write_data(&mut c, CMD_INT, now); // no translation
        write_data(&mut c, KCMD_SET_LEDS, now);
        write_data(&mut c, 0b101, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xFA]);
        assert_eq!(c.leds(), 0b101);
        write_data(&mut c, KCMD_TYPEMATIC, now);
        write_data(&mut c, 0x20, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xFA]);
        // Scan code set: get, set 1, get, refuse 3.
        write_data(&mut c, KCMD_SCAN_CODE_SET, now);
        write_data(&mut c, 0, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xFA, 0x02]);
        write_data(&mut c, KCMD_SCAN_CODE_SET, now);
        write_data(&mut c, 1, now);
        write_data(&mut c, KCMD_SCAN_CODE_SET, now);
        write_data(&mut c, 0, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xFA, 0xFA, 0xFA, 0x01]);
        // In set 1 the keyboard itself sends set-1 codes.
        c.key_event(Key::ArrowUp, false);
        assert_eq!(drain(&mut c, &mut now), [0xE0, 0xC8]);
        write_data(&mut c, KCMD_SCAN_CODE_SET, now);
        write_data(&mut c, 3, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xFE]);
        // A command while an argument is expected is executed as a command.
        write_data(&mut c, KCMD_SET_LEDS, now);
        write_data(&mut c, KCMD_ECHO, now);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0xEE]);
        // F5 disables scanning and restores defaults (set 2); F4 re-enables.
        write_data(&mut c, KCMD_DEFAULT_DISABLE, now);
        c.key_event(Key::A, true);
        assert_eq!(drain(&mut c, &mut now), [0xFA]);
        write_data(&mut c, KCMD_ENABLE, now);
        c.key_event(Key::A, true);
        assert_eq!(drain(&mut c, &mut now), [0xFA, 0x1C]);
    }

    #[test]
    fn response_goes_before_queued_scan_codes() {
        let mut c = I8042::new();
        let mut now = 0;
        command(&mut c, CCMD_WRITE_RAM_FIRST, now);
        write_data(&mut c, CMD_INT, now);
        c.key_event(Key::ArrowUp, true); // E0 now in the output buffer
        write_data(&mut c, KCMD_ECHO, now);
        assert_eq!(drain(&mut c, &mut now), [0xE0, 0xEE, 0x75]);
    }

    #[test]
    fn a20_via_output_port() {
        let mut c = I8042::new();
        assert!(c.a20());
        command(&mut c, CCMD_WRITE_OUTPUT_PORT, 0);
        write_data(&mut c, 0xDD, 0);
        assert!(!c.a20());
        assert!(!c.take_reset_request());
        command(&mut c, CCMD_READ_OUTPUT_PORT, 0);
        // Bits 4/5 show the OBF state when the port was sampled (empty then).
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0xCD);
        command(&mut c, CCMD_WRITE_OUTPUT_PORT, 0);
        write_data(&mut c, 0xDF, 0);
        assert!(c.a20());
    }

    #[test]
    fn reset_requests() {
        let mut c = I8042::new();
        command(&mut c, 0xFE, 0);
        assert!(c.take_reset_request());
        assert!(!c.take_reset_request(), "taken once");
        command(&mut c, 0xFF, 0);
        assert!(!c.take_reset_request(), "0xFF pulses nothing");
        command(&mut c, 0xF0, 0);
        assert!(c.take_reset_request());
        command(&mut c, CCMD_WRITE_OUTPUT_PORT, 0);
        write_data(&mut c, 0xDE, 0);
        assert!(c.take_reset_request());
        assert!(c.a20());
    }

    #[test]
    fn write_keyboard_and_aux_output_buffer() {
        let mut c = I8042::new();
        command(&mut c, CCMD_WRITE_RAM_FIRST, 0);
        write_data(&mut c, CMD_INT | CMD_INT2 | CMD_XLAT, 0);
        command(&mut c, CCMD_WRITE_KBD_OUTPUT_BUFFER, 0);
        write_data(&mut c, 0x1C, 0);
        assert!(c.irq1() && !c.irq12());
        assert_eq!(
            c.io_read(I8042_DATA_PORT, 1, 0) as u8,
            0x1C,
            "not translated"
        );
        command(&mut c, CCMD_WRITE_AUX_OUTPUT_BUFFER, 0);
        write_data(&mut c, 0x5A, 0);
        assert!(!c.irq1() && c.irq12());
        assert_eq!(status(&mut c, 0) & STATUS_AUXB, STATUS_AUXB);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0x5A);
    }

    #[test]
    fn aux_device_absent_times_out() {
        let mut c = I8042::new();
        command(&mut c, CCMD_WRITE_TO_AUX, 0);
        write_data(&mut c, 0xF2, 0);
        let s = status(&mut c, 0);
        assert_eq!(
            s & (STATUS_OBF | STATUS_AUXB | STATUS_TIMEOUT),
            STATUS_OBF | STATUS_AUXB | STATUS_TIMEOUT
        );
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, 0xFE);
        // The byte did not reach the keyboard.
        let mut now = 0;
        assert!(drain(&mut c, &mut now).is_empty());
        command(&mut c, CCMD_AUX_INTERFACE_TEST, now);
        assert_eq!(status(&mut c, now) & STATUS_TIMEOUT, 0);
    }

    #[test]
    fn disabled_keyboard_interface_holds_data() {
        let mut c = I8042::new();
        command(&mut c, CCMD_DISABLE_KBD, 0);
        c.key_event(Key::A, true);
        c.advance(LATER);
        assert_eq!(status(&mut c, LATER) & STATUS_OBF, 0);
        assert_eq!(c.next_deadline(), None);
        command(&mut c, CCMD_ENABLE_KBD, LATER);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, LATER) as u8, 0x1E);
    }

    #[test]
    fn input_port_and_status_defaults() {
        let mut c = I8042::new();
        assert_eq!(status(&mut c, 0), STATUS_INH);
        command(&mut c, CCMD_READ_INPUT_PORT, 0);
        assert_eq!(c.io_read(I8042_DATA_PORT, 1, 0) as u8, INPUT_PORT);
        assert_eq!(c.io_read(0x61, 1, 0), 0xFF);
    }

    #[test]
    fn any_byte_on_any_port_is_safe() {
        let mut c = I8042::new();
        let mut now = 0;
        for first in 0..=255u8 {
            for port in [I8042_DATA_PORT, I8042_COMMAND_PORT] {
                now += 1000;
                c.io_write(port, 1, u32::from(first), now);
                c.io_write(I8042_DATA_PORT, 1, u32::from(first.wrapping_mul(7)), now);
                c.key_event(
                    Key::ALL[usize::from(first) % Key::ALL.len()],
                    first & 1 == 0,
                );
                let _ = c.io_read(port, 1, now);
                let _ = c.io_read(I8042_DATA_PORT, 1, now);
                let _ = (
                    c.irq1(),
                    c.irq12(),
                    c.next_deadline(),
                    c.take_reset_request(),
                );
            }
        }
    }
}
