//! VGA register ports, indices and bits, named after the IBM VGA Technical
//! Reference ("Video Subsystem", register descriptions), plus the standard register
//! tables of the modes the machine may need to set without a video BIOS.

// ---- Ports ----------------------------------------------------------------
/// Attribute controller address/data (write), address (read).
pub const PORT_ATTR_INDEX: u16 = 0x3C0;
/// Attribute controller data read.
pub const PORT_ATTR_DATA_READ: u16 = 0x3C1;
/// Miscellaneous Output write / Input Status 0 read.
pub const PORT_MISC_WRITE_STATUS0: u16 = 0x3C2;
/// Video subsystem enable.
pub const PORT_VIDEO_ENABLE: u16 = 0x3C3;
pub const PORT_SEQ_INDEX: u16 = 0x3C4;
pub const PORT_SEQ_DATA: u16 = 0x3C5;
/// DAC PEL mask.
pub const PORT_DAC_PEL_MASK: u16 = 0x3C6;
/// DAC read index (write) / DAC state (read).
pub const PORT_DAC_READ_INDEX: u16 = 0x3C7;
/// DAC write index.
pub const PORT_DAC_WRITE_INDEX: u16 = 0x3C8;
pub const PORT_DAC_DATA: u16 = 0x3C9;
/// Feature Control read.
pub const PORT_FEATURE_READ: u16 = 0x3CA;
/// Miscellaneous Output read.
pub const PORT_MISC_READ: u16 = 0x3CC;
pub const PORT_GC_INDEX: u16 = 0x3CE;
pub const PORT_GC_DATA: u16 = 0x3CF;
pub const PORT_CRTC_INDEX_MONO: u16 = 0x3B4;
pub const PORT_CRTC_DATA_MONO: u16 = 0x3B5;
/// Input Status 1 (read) / Feature Control (write), monochrome addressing.
pub const PORT_STATUS1_MONO: u16 = 0x3BA;
pub const PORT_CRTC_INDEX_COLOR: u16 = 0x3D4;
pub const PORT_CRTC_DATA_COLOR: u16 = 0x3D5;
/// Input Status 1 (read) / Feature Control (write), colour addressing.
pub const PORT_STATUS1_COLOR: u16 = 0x3DA;
/// Bochs VBE (DISPI) index and data ports.
pub const PORT_VBE_INDEX: u16 = 0x1CE;
pub const PORT_VBE_DATA: u16 = 0x1CF;

// ---- Miscellaneous Output -------------------------------------------------
/// I/O Address Select: 1 = CRTC at 0x3Dx (colour), 0 = 0x3Bx (mono).
pub const MISC_IO_ADDRESS_SELECT: u8 = 0b0000_0001;

// ---- Input Status 1 -------------------------------------------------------
/// Display Enable NOT: 1 while the beam is in horizontal or vertical blanking.
pub const STATUS1_DISPLAY_DISABLED: u8 = 0b0000_0001;
/// Vertical Retrace: 1 during the vertical retrace interval.
pub const STATUS1_VERTICAL_RETRACE: u8 = 0b0000_1000;
/// Input Status 0 Switch Sense (monitor sense comparator).
pub const STATUS0_SWITCH_SENSE: u8 = 0b0001_0000;

// ---- Sequencer ------------------------------------------------------------
pub const SEQ_RESET: usize = 0x00;
pub const SEQ_CLOCKING_MODE: usize = 0x01;
pub const SEQ_MAP_MASK: usize = 0x02;
pub const SEQ_CHARACTER_MAP_SELECT: usize = 0x03;
pub const SEQ_MEMORY_MODE: usize = 0x04;
pub const SEQ_COUNT: usize = 5;
/// Clocking Mode bit 0: 1 = 8-dot characters, 0 = 9-dot.
pub const CLOCKING_8_DOT: u8 = 0b0000_0001;
/// Clocking Mode bit 3: dot clock divided by 2 (320/360-wide modes).
pub const CLOCKING_DOT_CLOCK_DIV2: u8 = 0b0000_1000;
/// Clocking Mode bit 5: screen off.
pub const CLOCKING_SCREEN_OFF: u8 = 0b0010_0000;
/// Memory Mode bit 2: Odd/Even disable (1 = sequential addressing).
pub const MEMMODE_ODD_EVEN_DISABLE: u8 = 0b0000_0100;
/// Memory Mode bit 3: Chain 4.
pub const MEMMODE_CHAIN4: u8 = 0b0000_1000;

// ---- CRT controller -------------------------------------------------------
pub const CRTC_HORIZONTAL_DISPLAY_END: usize = 0x01;
pub const CRTC_VERTICAL_TOTAL: usize = 0x06;
pub const CRTC_OVERFLOW: usize = 0x07;
pub const CRTC_PRESET_ROW_SCAN: usize = 0x08;
pub const CRTC_MAX_SCAN_LINE: usize = 0x09;
pub const CRTC_CURSOR_START: usize = 0x0A;
pub const CRTC_CURSOR_END: usize = 0x0B;
pub const CRTC_START_ADDRESS_HIGH: usize = 0x0C;
pub const CRTC_START_ADDRESS_LOW: usize = 0x0D;
pub const CRTC_CURSOR_LOCATION_HIGH: usize = 0x0E;
pub const CRTC_CURSOR_LOCATION_LOW: usize = 0x0F;
pub const CRTC_VERTICAL_RETRACE_START: usize = 0x10;
pub const CRTC_VERTICAL_RETRACE_END: usize = 0x11;
pub const CRTC_VERTICAL_DISPLAY_END: usize = 0x12;
pub const CRTC_OFFSET: usize = 0x13;
pub const CRTC_UNDERLINE_LOCATION: usize = 0x14;
pub const CRTC_MODE_CONTROL: usize = 0x17;
pub const CRTC_LINE_COMPARE: usize = 0x18;
pub const CRTC_COUNT: usize = 0x19;
/// Vertical Retrace End bit 7: protect CRTC registers 0-7.
pub const VRE_PROTECT: u8 = 0b1000_0000;
/// Overflow bit 4 (line compare bit 8) stays writable under protection.
pub const OVERFLOW_LINE_COMPARE_8: u8 = 0b0001_0000;
/// Maximum Scan Line bit 7: 200-to-400 line conversion (double scan).
pub const MSL_DOUBLE_SCAN: u8 = 0b1000_0000;
/// Maximum Scan Line bit 6: line compare bit 9.
pub const MSL_LINE_COMPARE_9: u8 = 0b0100_0000;
/// Cursor Start bit 5: cursor off.
pub const CURSOR_OFF: u8 = 0b0010_0000;
/// Underline Location bit 6: doubleword addressing.
pub const UNDERLINE_DOUBLEWORD: u8 = 0b0100_0000;
/// Underline Location bit 5: count by 4.
pub const UNDERLINE_COUNT_BY_4: u8 = 0b0010_0000;
/// Mode Control bit 0: compatibility mode support (CGA: MA13 <- row scan bit 0 when 0).
pub const CRTC_MODE_CMS: u8 = 0b0000_0001;
/// Mode Control bit 1: select row scan counter (MA14 <- row scan bit 1 when 0).
pub const CRTC_MODE_SRS: u8 = 0b0000_0010;
/// Mode Control bit 3: count by two.
pub const CRTC_MODE_COUNT_BY_2: u8 = 0b0000_1000;
/// Mode Control bit 5: address wrap (MA15 vs MA13 into bit 0 in word mode).
pub const CRTC_MODE_ADDRESS_WRAP: u8 = 0b0010_0000;
/// Mode Control bit 6: word/byte mode (1 = byte mode).
pub const CRTC_MODE_BYTE: u8 = 0b0100_0000;

// ---- Graphics controller --------------------------------------------------
pub const GC_SET_RESET: usize = 0x00;
pub const GC_ENABLE_SET_RESET: usize = 0x01;
pub const GC_COLOR_COMPARE: usize = 0x02;
pub const GC_DATA_ROTATE: usize = 0x03;
pub const GC_READ_MAP_SELECT: usize = 0x04;
pub const GC_MODE: usize = 0x05;
pub const GC_MISC: usize = 0x06;
pub const GC_COLOR_DONT_CARE: usize = 0x07;
pub const GC_BIT_MASK: usize = 0x08;
pub const GC_COUNT: usize = 9;
/// Graphics Mode bits 0-1: write mode.
pub const GCMODE_WRITE_MODE: u8 = 0b0000_0011;
/// Graphics Mode bit 3: read mode (1 = colour compare).
pub const GCMODE_READ_MODE_1: u8 = 0b0000_1000;
/// Graphics Mode bit 4: host odd/even addressing.
pub const GCMODE_ODD_EVEN: u8 = 0b0001_0000;
/// Graphics Mode bit 5: shift register interleave (CGA 4-colour).
pub const GCMODE_SHIFT_INTERLEAVE: u8 = 0b0010_0000;
/// Graphics Mode bit 6: 256-colour shift mode.
pub const GCMODE_SHIFT_256: u8 = 0b0100_0000;
/// Miscellaneous bit 0: graphics mode (1) vs alphanumeric (0).
pub const GCMISC_GRAPHICS: u8 = 0b0000_0001;
/// Miscellaneous bits 2-3: memory map select.
pub const GCMISC_MEMORY_MAP: u8 = 0b0000_1100;

// ---- Attribute controller -------------------------------------------------
pub const ATTR_MODE_CONTROL: usize = 0x10;
pub const ATTR_OVERSCAN: usize = 0x11;
pub const ATTR_COLOR_PLANE_ENABLE: usize = 0x12;
pub const ATTR_HORIZONTAL_PEL_PANNING: usize = 0x13;
pub const ATTR_COLOR_SELECT: usize = 0x14;
pub const ATTR_COUNT: usize = 0x15;
/// Attribute Address bit 5: Palette Address Source (1 = palette drives the display).
pub const ATTR_INDEX_PAS: u8 = 0b0010_0000;
/// Mode Control bit 0: graphics mode.
pub const ATTRMODE_GRAPHICS: u8 = 0b0000_0001;
/// Mode Control bit 2: line graphics enable (9th dot of 0xC0-0xDF copies dot 8).
pub const ATTRMODE_LINE_GRAPHICS: u8 = 0b0000_0100;
/// Mode Control bit 3: blink enable (attribute bit 7 blinks instead of intensity).
pub const ATTRMODE_BLINK: u8 = 0b0000_1000;
/// Mode Control bit 5: PEL panning compatibility (pan reset after line compare).
pub const ATTRMODE_PAN_COMPAT: u8 = 0b0010_0000;
/// Mode Control bit 6: PEL width (8-bit pixels for 256-colour mode).
pub const ATTRMODE_PEL_WIDTH_8: u8 = 0b0100_0000;
/// Mode Control bit 7: P5,P4 select (colour select bits 1-0 replace palette bits 5-4).
pub const ATTRMODE_P54_SELECT: u8 = 0b1000_0000;

// ---- DAC ------------------------------------------------------------------
/// DAC State (0x3C7 read): the DAC is in read mode.
pub const DAC_STATE_READ: u8 = 0b0000_0011;
/// DAC State: the DAC is in write mode.
pub const DAC_STATE_WRITE: u8 = 0b0000_0000;

/// The register values of one standard mode (IBM VGA Technical Reference,
/// "BIOS video mode" tables).
pub struct ModeRegs {
    pub misc: u8,
    pub seq: [u8; SEQ_COUNT],
    pub crtc: [u8; CRTC_COUNT],
    pub gc: [u8; GC_COUNT],
    pub attr: [u8; ATTR_COUNT],
}

/// Mode 03h: 80x25 alphanumeric, 9x16 cell, 720x400, colour addressing.
pub const MODE_03H: ModeRegs = ModeRegs {
    misc: 0x67,
    seq: [0x03, 0x00, 0x03, 0x00, 0x02],
    crtc: [
        0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00,
        0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF],
    attr: [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E,
        0x3F, 0x0C, 0x00, 0x0F, 0x08, 0x00,
    ],
};

/// Mode 12h: 640x480, 16 colours, planar.
pub const MODE_12H: ModeRegs = ModeRegs {
    misc: 0xE3,
    seq: [0x03, 0x01, 0x0F, 0x00, 0x06],
    crtc: [
        0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xEA, 0x8C, 0xDF, 0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0F, 0xFF],
    attr: [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E,
        0x3F, 0x01, 0x00, 0x0F, 0x00, 0x00,
    ],
};

/// Mode 13h: 320x200, 256 colours, chain-4 (displayed as 640x400 dots).
pub const MODE_13H: ModeRegs = ModeRegs {
    misc: 0x63,
    seq: [0x03, 0x01, 0x0F, 0x00, 0x0E],
    crtc: [
        0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF],
    attr: [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
        0x0F, 0x41, 0x00, 0x0F, 0x00, 0x00,
    ],
};

/// Mode 04h: 320x200, 4 colours, CGA-compatible interleaved banks at B8000.
pub const MODE_04H: ModeRegs = ModeRegs {
    misc: 0x63,
    seq: [0x03, 0x09, 0x03, 0x00, 0x02],
    crtc: [
        0x2D, 0x27, 0x28, 0x90, 0x2B, 0x80, 0xBF, 0x1F, 0x00, 0xC1, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x9C, 0x8E, 0x8F, 0x14, 0x00, 0x96, 0xB9, 0xA2, 0xFF,
    ],
    gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x0F, 0x0F, 0xFF],
    attr: [
        0x00, 0x13, 0x15, 0x17, 0x02, 0x04, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
        0x17, 0x01, 0x00, 0x03, 0x00, 0x00,
    ],
};
