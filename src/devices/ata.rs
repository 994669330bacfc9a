//! One ATA/IDE channel (primary 0x1F0/0x3F6 IRQ14, secondary 0x170/0x376 IRQ15)
//! with up to two devices, PIO only: hard disks, and CD-ROM drives that speak
//! the PACKET command feature set (ATAPI, ATA-6 clause 5.13 and 9.10) with the
//! SCSI/MMC command set of [`crate::devices::atapi`].
//!
//! Reference: ATA/ATAPI-6 (T13 1410D), "ATA-6" below. Section numbers cite it.
//!
//! Model: the command block registers are one set per channel, because on the
//! cable both devices latch every write (ATA-6 7.1); that is also why an absent
//! device 1 echoes what was written while its Status reads 00h (ATA-6 9.16, and
//! what Linux libata's probe relies on). Status, Error and the interrupt
//! request are per device. Commands complete as soon as they are written: the
//! media is a host file, so there is no seek to wait for and BSY is only ever
//! seen while SRST is asserted. This keeps the device free of timers
//! (`next_deadline` is always `None`).
//!
//! INTRQ is a level: [`AtaChannel::irq`] reports it after every access and the
//! machine forwards it to the PIC (ISA IRQ14/15 are edge-triggered, so the PIC
//! sees one interrupt per rising edge).

use crate::block::{BlockDevice, MemImage, SECTOR_SIZE};
use crate::devices::atapi::{Cdrom, Sense};
use crate::devices::{Nanos, PortDevice};

/// Primary channel command block base, control port and ISA IRQ.
pub const PRIMARY_BASE: u16 = 0x1F0;
pub const PRIMARY_CTRL: u16 = 0x3F6;
pub const PRIMARY_IRQ: u8 = 14;
/// Secondary channel command block base, control port and ISA IRQ.
pub const SECONDARY_BASE: u16 = 0x170;
pub const SECONDARY_CTRL: u16 = 0x376;
pub const SECONDARY_IRQ: u8 = 15;

// Command block register offsets from the base port (ATA-6 7.1, Table 20).
const REG_DATA: u16 = 0;
const REG_ERROR_FEATURES: u16 = 1;
const REG_SECTOR_COUNT: u16 = 2;
const REG_LBA_LOW: u16 = 3;
const REG_LBA_MID: u16 = 4;
const REG_LBA_HIGH: u16 = 5;
const REG_DEVICE: u16 = 6;
const REG_STATUS_COMMAND: u16 = 7;

// Status register (ATA-6 7.15).
const STATUS_BSY: u8 = 0b1000_0000;
const STATUS_DRDY: u8 = 0b0100_0000;
/// Bit 4: DSC (seek complete) in ATA-3; set whenever the device is ready, as
/// older drivers wait for it.
const STATUS_DSC: u8 = 0b0001_0000;
const STATUS_DRQ: u8 = 0b0000_1000;
const STATUS_ERR: u8 = 0b0000_0001;
/// Status of an idle, ready device.
const STATUS_READY: u8 = STATUS_DRDY | STATUS_DSC;

// Error register (ATA-6 7.11).
const ERROR_UNC: u8 = 0b0100_0000;
const ERROR_IDNF: u8 = 0b0001_0000;
const ERROR_ABRT: u8 = 0b0000_0100;
/// Diagnostic code "device 0 passed, device 1 passed or not present"
/// (ATA-6 9.12, Table 24); also the Error value after any reset.
const DIAG_PASSED: u8 = 0b0000_0001;

// Device Control register (ATA-6 7.9).
const DEVCTL_HOB: u8 = 0b1000_0000;
const DEVCTL_SRST: u8 = 0b0000_0100;
const DEVCTL_NIEN: u8 = 0b0000_0010;

// Device register (ATA-6 7.10).
const DEVICE_LBA: u8 = 0b0100_0000;
const DEVICE_DEV: u8 = 0b0001_0000;
const DEVICE_HEAD: u8 = 0b0000_1111;
/// Bits 7 and 5 are obsolete; drives have always returned them set.
const DEVICE_OBSOLETE: u8 = 0b1010_0000;

// Commands (ATA-6 clause 8; 0x21/0x31/0x41 are the ATA-3 "without retry" forms).
const CMD_DEVICE_RESET: u8 = 0x08;
const CMD_RECALIBRATE: u8 = 0x10;
const CMD_READ_SECTORS: u8 = 0x20;
const CMD_READ_SECTORS_NORETRY: u8 = 0x21;
const CMD_READ_SECTORS_EXT: u8 = 0x24;
const CMD_READ_MULTIPLE_EXT: u8 = 0x29;
const CMD_WRITE_SECTORS: u8 = 0x30;
const CMD_WRITE_SECTORS_NORETRY: u8 = 0x31;
const CMD_WRITE_SECTORS_EXT: u8 = 0x34;
const CMD_WRITE_MULTIPLE_EXT: u8 = 0x39;
const CMD_READ_VERIFY_SECTORS: u8 = 0x40;
const CMD_READ_VERIFY_SECTORS_NORETRY: u8 = 0x41;
const CMD_READ_VERIFY_SECTORS_EXT: u8 = 0x42;
const CMD_SEEK: u8 = 0x70;
const CMD_EXECUTE_DEVICE_DIAGNOSTIC: u8 = 0x90;
const CMD_INITIALIZE_DEVICE_PARAMETERS: u8 = 0x91;
const CMD_STANDBY_IMMEDIATE_ATA3: u8 = 0x94;
const CMD_IDLE_IMMEDIATE_ATA3: u8 = 0x95;
const CMD_STANDBY_ATA3: u8 = 0x96;
const CMD_IDLE_ATA3: u8 = 0x97;
const CMD_CHECK_POWER_MODE_ATA3: u8 = 0x98;
const CMD_PACKET: u8 = 0xA0;
const CMD_IDENTIFY_PACKET_DEVICE: u8 = 0xA1;
const CMD_READ_MULTIPLE: u8 = 0xC4;
const CMD_WRITE_MULTIPLE: u8 = 0xC5;
const CMD_SET_MULTIPLE_MODE: u8 = 0xC6;
const CMD_STANDBY_IMMEDIATE: u8 = 0xE0;
const CMD_IDLE_IMMEDIATE: u8 = 0xE1;
const CMD_STANDBY: u8 = 0xE2;
const CMD_IDLE: u8 = 0xE3;
const CMD_CHECK_POWER_MODE: u8 = 0xE5;
const CMD_FLUSH_CACHE: u8 = 0xE7;
const CMD_FLUSH_CACHE_EXT: u8 = 0xEA;
const CMD_IDENTIFY_DEVICE: u8 = 0xEC;
const CMD_SET_FEATURES: u8 = 0xEF;

// SET FEATURES subcommands in the Features register (ATA-6 8.37, Table 30).
const SF_ENABLE_WRITE_CACHE: u8 = 0x02;
const SF_SET_TRANSFER_MODE: u8 = 0x03;
const SF_DISABLE_READ_LOOK_AHEAD: u8 = 0x55;
const SF_DISABLE_REVERT_TO_DEFAULTS: u8 = 0x66;
const SF_DISABLE_WRITE_CACHE: u8 = 0x82;
const SF_ENABLE_READ_LOOK_AHEAD: u8 = 0xAA;
const SF_ENABLE_REVERT_TO_DEFAULTS: u8 = 0xCC;
/// Transfer mode values (ATA-6 8.37.10, Table 31): 00h/01h PIO default,
/// 08h | n PIO flow-control mode n. DMA modes (20h | n, 40h | n) are refused.
const XFER_PIO_DEFAULT: u8 = 0x00;
const XFER_PIO_DEFAULT_NO_IORDY: u8 = 0x01;
const XFER_PIO_MODE_0: u8 = 0x08;
const XFER_PIO_MODE_4: u8 = 0x0C;

/// Interrupt reason in the Sector Count register during a PACKET command
/// (ATA-6 7.16 / 9.10): CoD = command packet (1) or data (0), IO = to the
/// host (1) or to the device (0).
const IREASON_COD: u8 = 0b0000_0001;
const IREASON_IO: u8 = 0b0000_0010;
const IREASON_MASK: u8 = 0b0000_0111;
/// The PACKET device signature in LBA Mid/High (ATA-6 9.12).
const ATAPI_SIGNATURE_MID: u8 = 0x14;
const ATAPI_SIGNATURE_HIGH: u8 = 0xEB;
/// Bytes in a command packet (IDENTIFY PACKET DEVICE word 0 bits 1:0 = 00b).
const PACKET_SIZE: usize = 12;
/// Largest PIO data block of a PACKET command: the byte count limit is 16
/// bits and even (FFFFh is treated as FFFEh, ATA-6 9.10).
const MAX_PACKET_BLOCK: usize = 0xFFFE;
/// Data transfer buffer: a READ/WRITE MULTIPLE block or a PACKET DRQ block.
const BUF_SIZE: usize = MAX_PACKET_BLOCK + 2;

/// CHECK POWER MODE sector count results (ATA-6 8.6).
const POWER_STANDBY: u8 = 0x00;
const POWER_ACTIVE_OR_IDLE: u8 = 0xFF;

/// Largest READ/WRITE MULTIPLE block, IDENTIFY word 47 bits 7:0. 16 sectors
/// (8 KiB) is what Linux and typical drives use.
const MAX_MULTIPLE: u8 = 16;
/// Default CHS translation (the BIOS "LBA-assisted" shape every ATA drive reports).
const DEFAULT_HEADS: u16 = 16;
const DEFAULT_SECTORS_PER_TRACK: u16 = 63;
/// IDENTIFY word 1 is capped at 16383 cylinders for disks above 8.4 GB (ATA-6 8.15.3).
const MAX_DEFAULT_CYLINDERS: u64 = 16383;
/// Highest sector count reachable with 28-bit commands (IDENTIFY words 60-61 cap).
const LBA28_LIMIT: u64 = 0x0FFF_FFFF;

/// How the command in progress addressed the disk; decides how the address
/// registers are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Addressing {
    Chs,
    Lba28,
    Lba48,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Phase {
    Idle,
    /// PIO data-in: the host reads `buf[pos..len]`.
    DataIn,
    /// PIO data-out: the host writes `buf[pos..len]`.
    DataOut,
    /// PACKET command: the host writes the 12-byte command packet.
    Packet,
}

/// The PIO transfer in progress on the channel (only one device transfers at a time).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Transfer {
    phase: Phase,
    drive: usize,
    pos: usize,
    len: usize,
    /// Next sector to move between the buffer and the disk.
    lba: u64,
    /// Sectors not yet moved between the buffer and the disk.
    remaining: u64,
    /// Sectors per DRQ block: 1, or the multiple count for READ/WRITE MULTIPLE.
    block: u64,
    addressing: Addressing,
    /// A PACKET command's data-in: `remaining` counts bytes, each DRQ block
    /// is at most `byte_limit` bytes.
    packet: bool,
    byte_limit: usize,
}

impl Transfer {
    const IDLE: Transfer = Transfer {
        phase: Phase::Idle,
        drive: 0,
        pos: 0,
        len: 0,
        lba: 0,
        remaining: 0,
        block: 1,
        addressing: Addressing::Lba28,
        packet: false,
        byte_limit: 0,
    };
}

/// The command block registers. Sector Count and the LBA registers (and
/// Features) are two-deep FIFOs for 48-bit commands (ATA-6 6.20): a write moves
/// the current value to the "previous" (HOB) slot.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct TaskFile {
    features: u8,
    features_hob: u8,
    sector_count: u8,
    sector_count_hob: u8,
    lba_low: u8,
    lba_low_hob: u8,
    lba_mid: u8,
    lba_mid_hob: u8,
    lba_high: u8,
    lba_high_hob: u8,
    device: u8,
}

impl TaskFile {
    /// The ATA device signature after reset or diagnostics (ATA-6 9.12):
    /// Sector Count 01h, LBA Low 01h, LBA Mid 00h, LBA High 00h, Device 00h.
    fn set_signature(&mut self) {
        *self = TaskFile {
            sector_count: 1,
            lba_low: 1,
            ..TaskFile::default()
        };
    }

    /// The PACKET device signature (ATA-6 9.12): as an ATA device's, with
    /// LBA Mid 14h and LBA High EBh.
    fn set_packet_signature(&mut self) {
        self.set_signature();
        self.lba_mid = ATAPI_SIGNATURE_MID;
        self.lba_high = ATAPI_SIGNATURE_HIGH;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Geometry {
    cylinders: u16,
    heads: u16,
    sectors: u16,
}

impl Geometry {
    fn capacity(self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors)
    }
}

/// One attached disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Drive {
    /// The host image: not state; a loaded drive keeps the one it was built with.
    #[serde(skip, default = "crate::block::detached")]
    backend: Box<dyn BlockDevice + Send>,
    serial: String,
    status: u8,
    error: u8,
    irq_pending: bool,
    /// Sectors per block for READ/WRITE MULTIPLE; 0 = multiple mode disabled.
    multiple: u8,
    default_geometry: Geometry,
    geometry: Geometry,
    write_cache: bool,
    standby: bool,
    /// A PACKET device (CD-ROM): commands go to it, `backend` is unused.
    cdrom: Option<Box<Cdrom>>,
}

impl Drive {
    fn new(backend: Box<dyn BlockDevice + Send>, serial: String) -> Drive {
        let sectors = backend.sector_count();
        let per_cylinder = u64::from(DEFAULT_HEADS) * u64::from(DEFAULT_SECTORS_PER_TRACK);
        let cylinders = (sectors / per_cylinder).clamp(1, MAX_DEFAULT_CYLINDERS) as u16;
        let geometry = Geometry {
            cylinders,
            heads: DEFAULT_HEADS,
            sectors: DEFAULT_SECTORS_PER_TRACK,
        };
        Drive {
            backend,
            serial,
            status: STATUS_READY,
            error: DIAG_PASSED,
            irq_pending: false,
            multiple: 0,
            default_geometry: geometry,
            geometry,
            write_cache: true,
            standby: false,
            cdrom: None,
        }
    }

    fn new_cdrom(cdrom: Cdrom, serial: String) -> Drive {
        let mut d = Drive::new(Box::new(MemImage::writable(Vec::new())), serial);
        d.cdrom = Some(Box::new(cdrom));
        d
    }

    fn is_packet(&self) -> bool {
        self.cdrom.is_some()
    }

    /// The 256-word IDENTIFY PACKET DEVICE data (ATA-6 8.16, Table 17), with
    /// QEMU's choices where the standard leaves one.
    fn identify_packet(&self) -> [u16; 256] {
        let mut id = [0u16; 256];
        // Word 0: 10b ATAPI, device type 05h (CD-ROM), removable, 50 us
        // ("accelerated") DRQ after PACKET so no interrupt for the packet,
        // 12-byte packets.
        id[0] = 0b1000_0101_1100_0000;
        put_ata_string(&mut id[10..20], &self.serial);
        put_ata_string(&mut id[23..27], env!("CARGO_PKG_VERSION"));
        put_ata_string(&mut id[27..47], "VX86 CD-ROM");
        // Word 49: bit 11 IORDY supported, bit 9 LBA (shall be one); no DMA.
        id[49] = 0b0000_1010_0000_0000;
        // Word 53: words 64-70 are valid.
        id[53] = 0b0000_0000_0000_0010;
        // Word 64: advanced PIO modes 3 and 4; 67-68 cycle times (mode 4).
        id[64] = 0b0000_0000_0000_0011;
        id[67] = 120;
        id[68] = 120;
        // Words 71-72: typical release times (ns) after PACKET and SERVICE.
        id[71] = 30;
        id[72] = 30;
        // Word 80: ATA/ATAPI-4 through -6.
        id[80] = 0b0000_0000_0111_0000;
        // Word 82: bit 9 DEVICE RESET, bit 4 PACKET feature set; 83/84/87
        // bit 14 shall be one; 85: enabled copies of 82.
        id[82] = 0b0000_0010_0001_0000;
        id[83] = 0b0100_0000_0000_0000;
        id[84] = 0b0100_0000_0000_0000;
        id[85] = 0b0000_0010_0001_0000;
        id[87] = 0b0100_0000_0000_0000;
        id
    }

    /// The 256-word IDENTIFY DEVICE data (ATA-6 8.15, Table 16).
    fn identify(&self) -> [u16; 256] {
        let mut id = [0u16; 256];
        let total = self.backend.sector_count();
        let lba28 = total.min(LBA28_LIMIT);
        // Word 0: bit 15 clear = ATA device; bit 6 = fixed (non-removable) device.
        id[0] = 0b0000_0000_0100_0000;
        id[1] = self.default_geometry.cylinders;
        // Word 2 C837h: no SET FEATURES spin-up needed, IDENTIFY response complete.
        id[2] = 0xC837;
        id[3] = self.default_geometry.heads;
        // Words 4-5 (retired since ATA-2; ATA-1 X3.221 "unformatted bytes per
        // track / per sector"): still filled by drives and by QEMU, and the
        // Bochs BIOS takes its PIO block size from word 5.
        id[4] = (SECTOR_SIZE as u16).wrapping_mul(self.default_geometry.sectors);
        id[5] = SECTOR_SIZE as u16;
        id[6] = self.default_geometry.sectors;
        put_ata_string(&mut id[10..20], &self.serial);
        put_ata_string(&mut id[23..27], env!("CARGO_PKG_VERSION"));
        put_ata_string(&mut id[27..47], "vx86 HARDDISK");
        // Word 47: 80h in bits 15:8, maximum sectors per READ/WRITE MULTIPLE block.
        id[47] = 0x8000 | u16::from(MAX_MULTIPLE);
        // Word 49: bit 11 IORDY supported, bit 9 LBA supported; bit 8 (DMA) clear.
        id[49] = 0b0000_1010_0000_0000;
        // Word 50: bit 14 shall be one.
        id[50] = 0b0100_0000_0000_0000;
        // Word 51: obsolete PIO timing mode (2) in bits 15:8.
        id[51] = 0x0200;
        // Word 53: words 54-58 and 64-70 are valid; bit 2 (word 88, UDMA) clear.
        id[53] = 0b0000_0000_0000_0011;
        id[54] = self.geometry.cylinders;
        id[55] = self.geometry.heads;
        id[56] = self.geometry.sectors;
        let current = self.geometry.capacity();
        id[57] = current as u16;
        id[58] = (current >> 16) as u16;
        if self.multiple != 0 {
            // Word 59: bit 8 = multiple sector setting valid, bits 7:0 the setting.
            id[59] = 0x0100 | u16::from(self.multiple);
        }
        id[60] = lba28 as u16;
        id[61] = (lba28 >> 16) as u16;
        // Words 62-63 (single/multiword DMA) stay zero: no DMA.
        // Word 64: advanced PIO modes 3 and 4 supported.
        id[64] = 0b0000_0000_0000_0011;
        // Words 67-68: minimum PIO cycle times in ns (mode 4 = 120 ns).
        id[67] = 120;
        id[68] = 120;
        // Word 80: major version, ATA-1 through ATA-6 (bits 1-6).
        id[80] = 0b0000_0000_0111_1110;
        // Word 82: bit 5 write cache, bit 3 Power Management feature set.
        id[82] = 0b0000_0000_0010_1000;
        // Word 83: bit 14 shall be one; bit 13 FLUSH CACHE EXT, bit 12 FLUSH
        // CACHE, bit 10 48-bit Address feature set.
        id[83] = 0b0111_0100_0000_0000;
        // Word 84: bit 14 shall be one.
        id[84] = 0b0100_0000_0000_0000;
        // Word 85: enabled features (bit 5 write cache, bit 3 power management).
        id[85] = 0b0000_0000_0000_1000 | if self.write_cache { 0b0010_0000 } else { 0 };
        // Word 86: enabled copies of word 83 bits 13, 12, 10.
        id[86] = 0b0011_0100_0000_0000;
        // Word 87: bit 14 shall be one.
        id[87] = 0b0100_0000_0000_0000;
        // Word 88 (UDMA) stays zero. Words 100-103: 48-bit maximum LBA + 1.
        id[100] = total as u16;
        id[101] = (total >> 16) as u16;
        id[102] = (total >> 32) as u16;
        id[103] = (total >> 48) as u16;
        // Word 255: signature A5h in bits 7:0 and a checksum in bits 15:8 that
        // makes the sum of all 512 bytes zero modulo 256 (ATA-6 8.15.62).
        id[255] = 0x00A5;
        let sum = id.iter().fold(0u8, |acc, w| {
            acc.wrapping_add(*w as u8).wrapping_add((*w >> 8) as u8)
        });
        id[255] |= u16::from(sum.wrapping_neg()) << 8;
        id
    }
}

/// ATA strings hold two characters a word, the first in the high byte, padded
/// with spaces (ATA-6 3.2.9).
fn put_ata_string(words: &mut [u16], s: &str) {
    let mut bytes = s.bytes().chain(std::iter::repeat(b' '));
    for w in words.iter_mut() {
        let hi = bytes.next().unwrap_or(b' ');
        let lo = bytes.next().unwrap_or(b' ');
        *w = u16::from_be_bytes([hi, lo]);
    }
}

/// Why a drive could not be attached (a machine-construction error, not a guest one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("IDE channel {base:#x}: drive index {index} does not exist (0 = master, 1 = slave)")]
    BadIndex { base: u16, index: usize },
    #[error("IDE channel {base:#x}: drive {index} is already attached")]
    Occupied { base: u16, index: usize },
}

/// One IDE channel: task-file ports at `base..base + 8`, Device Control /
/// Alternate Status at `ctrl`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct AtaChannel {
    base: u16,
    ctrl: u16,
    drives: [Option<Drive>; 2],
    tf: TaskFile,
    device_control: u8,
    xfer: Transfer,
    #[serde(with = "crate::snapshot::boxed_bytes")]
    buf: Box<[u8]>,
    /// After a reset the registers hold device 0's signature; with devices
    /// of both kinds (disk and PACKET), selecting one shows its own until
    /// the host writes another register (each device has its own registers
    /// on real hardware, ATA-6 9.12).
    device_signatures: bool,
}

impl AtaChannel {
    /// A channel with no drives; all its ports float (read 0xFF) until a drive
    /// is attached.
    pub fn new(base: u16, ctrl: u16) -> AtaChannel {
        let mut tf = TaskFile::default();
        tf.set_signature();
        AtaChannel {
            base,
            ctrl,
            drives: [None, None],
            tf,
            device_control: 0,
            xfer: Transfer::IDLE,
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            device_signatures: false,
        }
    }

    /// Attaches a disk as device 0 (master) or 1 (slave), in its power-on state.
    pub fn attach(
        &mut self,
        index: usize,
        backend: Box<dyn BlockDevice + Send>,
    ) -> Result<(), AttachError> {
        let base = self.base;
        let slot = self
            .drives
            .get_mut(index)
            .ok_or(AttachError::BadIndex { base, index })?;
        if slot.is_some() {
            return Err(AttachError::Occupied { base, index });
        }
        *slot = Some(Drive::new(backend, format!("VX86-{base:03X}-{index}")));
        Ok(())
    }

    /// Attaches a CD-ROM drive (an ATAPI device) as device 0 or 1.
    pub fn attach_cdrom(&mut self, index: usize, cdrom: Cdrom) -> Result<(), AttachError> {
        let base = self.base;
        let slot = self
            .drives
            .get_mut(index)
            .ok_or(AttachError::BadIndex { base, index })?;
        if slot.is_some() {
            return Err(AttachError::Occupied { base, index });
        }
        *slot = Some(Drive::new_cdrom(cdrom, format!("VX86-{base:03X}-{index}")));
        // The power-on signature of device 0 is in the shared registers.
        self.post_signature();
        Ok(())
    }

    /// The CD-ROM drive at `index`, if that device is one.
    pub fn cdrom(&mut self, index: usize) -> Option<&mut Cdrom> {
        self.drives
            .get_mut(index)
            .and_then(Option::as_mut)
            .and_then(|d| d.cdrom.as_deref_mut())
    }

    /// The default CHS geometry (IDENTIFY words 1, 3, 6) of drive `index`, if
    /// it is an attached hard disk: what a BIOS setup records for it in CMOS.
    pub fn default_geometry(&self, index: usize) -> Option<(u16, u16, u16)> {
        self.drives
            .get(index)
            .and_then(Option::as_ref)
            .filter(|d| !d.is_packet())
            .map(|d| {
                let g = d.default_geometry;
                (g.cylinders, g.heads, g.sectors)
            })
    }

    /// The INTRQ line: the selected device's pending interrupt, unless the
    /// host disabled it with nIEN (ATA-6 7.9: INTRQ is then high-impedance).
    pub fn irq(&self) -> bool {
        self.device_control & DEVCTL_NIEN == 0
            && self
                .drives
                .get(self.selected())
                .and_then(Option::as_ref)
                .is_some_and(|d| d.irq_pending)
    }

    /// The ports to route to this channel: the eight command block registers
    /// and Device Control / Alternate Status. (`ctrl + 1`, the obsolete Drive
    /// Address register, is left alone: at 0x3F7 it belongs to the floppy
    /// controller's DIR.)
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        (self.base..self.base.saturating_add(8)).chain(std::iter::once(self.ctrl))
    }

    /// Never a deadline: commands complete when written.
    pub fn next_deadline(&self) -> Option<Nanos> {
        None
    }

    /// Makes everything written to the disks durable on the host. The machine
    /// calls this at exit; the first host error (if any) is returned after
    /// every drive has been tried.
    pub fn flush_all(&mut self) -> std::io::Result<()> {
        let mut result = Ok(());
        for drive in self.drives.iter_mut().flatten() {
            if let Err(e) = drive.backend.flush() {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    fn selected(&self) -> usize {
        usize::from(self.tf.device & DEVICE_DEV != 0)
    }

    fn any_drive(&self) -> bool {
        self.drives.iter().any(Option::is_some)
    }

    fn drive(&mut self, d: usize) -> Option<&mut Drive> {
        self.drives.get_mut(d).and_then(Option::as_mut)
    }

    // ---- register reads ----------------------------------------------------

    fn read_byte(&mut self, port: u16) -> u8 {
        if port == self.ctrl {
            return self.alternate_status();
        }
        match port.wrapping_sub(self.base) {
            REG_DATA => self.data_read_word() as u8,
            REG_ERROR_FEATURES => {
                let sel = self.selected();
                match self.drives.get(sel).and_then(Option::as_ref) {
                    Some(d) => d.error,
                    // Absent device: device 0 answers with its own register.
                    None => self
                        .drives
                        .iter()
                        .flatten()
                        .next()
                        .map_or(0xFF, |d| d.error),
                }
            }
            reg @ REG_SECTOR_COUNT..=REG_LBA_HIGH => {
                let hob = self.device_control & DEVCTL_HOB != 0;
                let tf = &self.tf;
                match (reg, hob) {
                    (REG_SECTOR_COUNT, false) => tf.sector_count,
                    (REG_SECTOR_COUNT, true) => tf.sector_count_hob,
                    (REG_LBA_LOW, false) => tf.lba_low,
                    (REG_LBA_LOW, true) => tf.lba_low_hob,
                    (REG_LBA_MID, false) => tf.lba_mid,
                    (REG_LBA_MID, true) => tf.lba_mid_hob,
                    (_, false) => tf.lba_high,
                    (_, true) => tf.lba_high_hob,
                }
            }
            REG_DEVICE => self.tf.device | DEVICE_OBSOLETE,
            REG_STATUS_COMMAND => {
                let sel = self.selected();
                match self.drive(sel) {
                    // ATA-6 5.2.13: reading Status clears a pending interrupt.
                    Some(d) => {
                        d.irq_pending = false;
                        d.status
                    }
                    None => 0,
                }
            }
            _ => 0xFF,
        }
    }

    /// Alternate Status: the Status register without clearing the interrupt.
    fn alternate_status(&self) -> u8 {
        self.drives
            .get(self.selected())
            .and_then(Option::as_ref)
            .map_or(0, |d| d.status)
    }

    // ---- register writes ---------------------------------------------------

    fn write_byte(&mut self, port: u16, value: u8) {
        if port == self.ctrl {
            self.write_device_control(value);
            return;
        }
        let reg = port.wrapping_sub(self.base);
        if reg > REG_STATUS_COMMAND {
            return;
        }
        if reg == REG_DATA {
            self.data_write_word(u16::from(value));
            return;
        }
        // ATA-6 7.9: any Command Block register write clears HOB.
        self.device_control &= !DEVCTL_HOB;
        if reg == REG_DEVICE && self.device_signatures {
            // Until the next register write or command, selecting a device
            // shows its own signature (the Device register is written below).
            self.signature_of(usize::from(value & DEVICE_DEV != 0));
        } else if reg != REG_DEVICE {
            self.device_signatures = false;
        }
        if reg == REG_STATUS_COMMAND {
            self.command(value);
            return;
        }
        let tf = &mut self.tf;
        match reg {
            REG_ERROR_FEATURES => {
                tf.features_hob = tf.features;
                tf.features = value;
            }
            REG_SECTOR_COUNT => {
                tf.sector_count_hob = tf.sector_count;
                tf.sector_count = value;
            }
            REG_LBA_LOW => {
                tf.lba_low_hob = tf.lba_low;
                tf.lba_low = value;
            }
            REG_LBA_MID => {
                tf.lba_mid_hob = tf.lba_mid;
                tf.lba_mid = value;
            }
            REG_LBA_HIGH => {
                tf.lba_high_hob = tf.lba_high;
                tf.lba_high = value;
            }
            _ => tf.device = value,
        }
    }

    /// Device Control (ATA-6 7.9). SRST going 1 -> 0 completes a software
    /// reset (ATA-6 9.2): every device posts its signature and diagnostic code.
    fn write_device_control(&mut self, value: u8) {
        let was_reset = self.device_control & DEVCTL_SRST != 0;
        self.device_control = value;
        let in_reset = value & DEVCTL_SRST != 0;
        if in_reset && !was_reset {
            self.xfer = Transfer::IDLE;
            for d in self.drives.iter_mut().flatten() {
                d.status = STATUS_BSY;
                d.irq_pending = false;
            }
        } else if was_reset && !in_reset {
            self.post_signature();
        }
    }

    /// Reset and diagnostic outcome (ATA-6 9.2, 9.12): signature in the
    /// command block, Error = diagnostic code, device 0 selected. Settings such
    /// as the multiple count and CHS translation are kept (as after SET
    /// FEATURES 66h); Linux re-issues them after a reset anyway.
    fn post_signature(&mut self) {
        self.xfer = Transfer::IDLE;
        let first = usize::from(self.drives[0].is_none());
        self.signature_of(first);
        let kinds: Vec<bool> = self.drives.iter().flatten().map(Drive::is_packet).collect();
        self.device_signatures = kinds.len() == 2 && kinds[0] != kinds[1];
        for d in self.drives.iter_mut().flatten() {
            d.status = STATUS_READY;
            d.error = DIAG_PASSED;
            d.irq_pending = false;
        }
    }

    /// Loads device `d`'s signature (ATA or PACKET) into the registers.
    fn signature_of(&mut self, d: usize) {
        if self
            .drives
            .get(d)
            .and_then(Option::as_ref)
            .is_some_and(Drive::is_packet)
        {
            self.tf.set_packet_signature();
        } else {
            self.tf.set_signature();
        }
    }

    // ---- data port ---------------------------------------------------------

    fn data_read_word(&mut self) -> u16 {
        if self.xfer.phase != Phase::DataIn {
            return 0xFFFF;
        }
        let pos = self.xfer.pos;
        let lo = self.buf.get(pos).copied().unwrap_or(0xFF);
        let hi = self.buf.get(pos + 1).copied().unwrap_or(0xFF);
        self.xfer.pos = pos + 2;
        if self.xfer.pos >= self.xfer.len {
            if self.xfer.packet {
                if self.xfer.remaining > 0 {
                    self.packet_data_block();
                } else {
                    let d = self.xfer.drive;
                    self.packet_done(d, None);
                }
            } else if self.xfer.remaining > 0 {
                self.load_block();
            } else {
                // Last word of the command: DRQ drops, no interrupt (ATA-6 9.7 PIO data-in).
                let d = self.xfer.drive;
                self.xfer = Transfer::IDLE;
                if let Some(drive) = self.drive(d) {
                    drive.status = STATUS_READY;
                }
            }
        }
        u16::from_le_bytes([lo, hi])
    }

    fn data_write_word(&mut self, value: u16) {
        if self.xfer.phase != Phase::DataOut && self.xfer.phase != Phase::Packet {
            return;
        }
        let pos = self.xfer.pos;
        let [lo, hi] = value.to_le_bytes();
        if let Some(b) = self.buf.get_mut(pos) {
            *b = lo;
        }
        if let Some(b) = self.buf.get_mut(pos + 1) {
            *b = hi;
        }
        self.xfer.pos = pos + 2;
        if self.xfer.pos >= self.xfer.len {
            if self.xfer.phase == Phase::Packet {
                self.packet_received();
            } else {
                self.store_block();
            }
        }
    }

    /// Reads the next DRQ block from the disk into the buffer (PIO data-in):
    /// DRQ and an interrupt when the data is ready, or UNC at the failing sector.
    fn load_block(&mut self) {
        let x = self.xfer;
        let n = x.block.min(x.remaining);
        let bytes = (n as usize) * SECTOR_SIZE;
        let Some(drive) = self.drives.get_mut(x.drive).and_then(Option::as_mut) else {
            self.xfer = Transfer::IDLE;
            return;
        };
        let result = match self.buf.get_mut(..bytes) {
            Some(chunk) => drive.backend.read_sectors(x.lba, chunk),
            None => Err(std::io::ErrorKind::InvalidInput.into()),
        };
        match result {
            Ok(()) => {
                self.set_address(x.drive, x.addressing, x.lba + n - 1);
                self.xfer.pos = 0;
                self.xfer.len = bytes;
                self.xfer.lba = x.lba + n;
                self.xfer.remaining = x.remaining - n;
                self.xfer.phase = Phase::DataIn;
                self.set_status(x.drive, STATUS_READY | STATUS_DRQ, 0, true);
            }
            Err(_) => {
                self.xfer = Transfer::IDLE;
                self.set_address(x.drive, x.addressing, x.lba);
                self.set_status(x.drive, STATUS_READY | STATUS_ERR, ERROR_UNC, true);
            }
        }
    }

    /// Writes the filled DRQ block to the disk (PIO data-out): an interrupt
    /// after every block, with DRQ set again if more blocks follow.
    fn store_block(&mut self) {
        let x = self.xfer;
        let n = (x.len / SECTOR_SIZE) as u64;
        let Some(drive) = self.drives.get_mut(x.drive).and_then(Option::as_mut) else {
            self.xfer = Transfer::IDLE;
            return;
        };
        let mut result = match self.buf.get(..x.len) {
            Some(chunk) => drive.backend.write_sectors(x.lba, chunk),
            None => Err(std::io::ErrorKind::InvalidInput.into()),
        };
        if result.is_ok() && !drive.write_cache {
            // Write cache disabled (SET FEATURES 82h): data is on the medium before completion.
            result = drive.backend.flush();
        }
        if result.is_err() {
            self.xfer = Transfer::IDLE;
            self.set_address(x.drive, x.addressing, x.lba);
            self.set_status(x.drive, STATUS_READY | STATUS_ERR, ERROR_ABRT, true);
            return;
        }
        self.set_address(x.drive, x.addressing, x.lba + n - 1);
        let remaining = x.remaining.saturating_sub(n);
        if remaining == 0 {
            self.xfer = Transfer::IDLE;
            self.set_status(x.drive, STATUS_READY, 0, true);
        } else {
            let next = x.block.min(remaining);
            self.xfer.pos = 0;
            self.xfer.len = (next as usize) * SECTOR_SIZE;
            self.xfer.lba = x.lba + n;
            self.xfer.remaining = remaining;
            self.set_status(x.drive, STATUS_READY | STATUS_DRQ, 0, true);
        }
    }

    fn set_status(&mut self, d: usize, status: u8, error: u8, interrupt: bool) {
        if let Some(drive) = self.drive(d) {
            drive.status = status;
            drive.error = error;
            if interrupt {
                drive.irq_pending = true;
            }
        }
    }

    fn complete(&mut self, d: usize) {
        self.set_status(d, STATUS_READY, 0, true);
    }

    fn abort(&mut self, d: usize) {
        self.set_status(d, STATUS_READY | STATUS_ERR, ERROR_ABRT, true);
    }

    // ---- addressing ----------------------------------------------------------

    /// Decodes the start sector and sector count of a read/write/verify command
    /// from the task file, or `None` if the address does not exist (IDNF).
    fn decode_range(&self, d: &Drive, ext: bool) -> Option<(u64, u64, Addressing)> {
        let tf = &self.tf;
        let (lba, count, addressing, limit) = if ext {
            let count = u64::from(u16::from_le_bytes([tf.sector_count, tf.sector_count_hob]));
            let lba = u64::from_le_bytes([
                tf.lba_low,
                tf.lba_mid,
                tf.lba_high,
                tf.lba_low_hob,
                tf.lba_mid_hob,
                tf.lba_high_hob,
                0,
                0,
            ]);
            (
                lba,
                if count == 0 { 65536 } else { count },
                Addressing::Lba48,
                u64::MAX,
            )
        } else {
            let count = match tf.sector_count {
                0 => 256,
                n => u64::from(n),
            };
            if tf.device & DEVICE_LBA != 0 {
                let lba = u64::from(u32::from_le_bytes([
                    tf.lba_low,
                    tf.lba_mid,
                    tf.lba_high,
                    tf.device & DEVICE_HEAD,
                ]));
                (lba, count, Addressing::Lba28, LBA28_LIMIT)
            } else {
                let g = d.geometry;
                let cylinder = u16::from_le_bytes([tf.lba_mid, tf.lba_high]);
                let head = u16::from(tf.device & DEVICE_HEAD);
                let sector = u16::from(tf.lba_low);
                if sector == 0 || sector > g.sectors || head >= g.heads || cylinder >= g.cylinders {
                    return None;
                }
                let lba = (u64::from(cylinder) * u64::from(g.heads) + u64::from(head))
                    * u64::from(g.sectors)
                    + u64::from(sector - 1);
                (lba, count, Addressing::Chs, g.capacity())
            }
        };
        let end = lba.checked_add(count)?;
        (end <= d.backend.sector_count().min(limit)).then_some((lba, count, addressing))
    }

    /// Writes `lba` back into the address registers in the command's own
    /// addressing form (the last sector transferred, or the failing one).
    fn set_address(&mut self, d: usize, addressing: Addressing, lba: u64) {
        let geometry = self
            .drives
            .get(d)
            .and_then(Option::as_ref)
            .map(|d| d.geometry);
        let tf = &mut self.tf;
        match addressing {
            Addressing::Lba48 => {
                let b = lba.to_le_bytes();
                tf.lba_low = b[0];
                tf.lba_mid = b[1];
                tf.lba_high = b[2];
                tf.lba_low_hob = b[3];
                tf.lba_mid_hob = b[4];
                tf.lba_high_hob = b[5];
            }
            Addressing::Lba28 => {
                let b = lba.to_le_bytes();
                tf.lba_low = b[0];
                tf.lba_mid = b[1];
                tf.lba_high = b[2];
                tf.device = (tf.device & !DEVICE_HEAD) | (b[3] & DEVICE_HEAD);
            }
            Addressing::Chs => {
                let Some(g) = geometry else { return };
                let spt = u64::from(g.sectors.max(1));
                let heads = u64::from(g.heads.max(1));
                let sector = lba % spt + 1;
                let track = lba / spt;
                let head = track % heads;
                let [cyl_lo, cyl_hi] = ((track / heads) as u16).to_le_bytes();
                tf.lba_low = sector as u8;
                tf.lba_mid = cyl_lo;
                tf.lba_high = cyl_hi;
                tf.device = (tf.device & !DEVICE_HEAD) | (head as u8 & DEVICE_HEAD);
            }
        }
    }

    // ---- commands ------------------------------------------------------------

    fn command(&mut self, cmd: u8) {
        if self.device_control & DEVCTL_SRST != 0 {
            // Devices are BSY during reset and ignore commands.
            return;
        }
        if cmd == CMD_EXECUTE_DEVICE_DIAGNOSTIC {
            // Addressed to both devices whichever is selected (ATA-6 8.11);
            // device 0 reports completion with an interrupt.
            if self.any_drive() {
                self.post_signature();
                if let Some(d0) = self.drive(0) {
                    d0.irq_pending = true;
                }
            }
            return;
        }
        let d = self.selected();
        let Some(drive) = self.drive(d) else {
            // Commands to an absent device are not executed (ATA-6 9.16).
            return;
        };
        // ATA-6 5.2.13: writing the Command register clears a pending interrupt.
        drive.irq_pending = false;
        drive.error = 0;
        let packet = drive.is_packet();
        self.xfer = Transfer::IDLE;
        if packet {
            return self.packet_device_command(d, cmd);
        }
        match cmd {
            CMD_READ_SECTORS | CMD_READ_SECTORS_NORETRY => self.start_rw(d, false, false, false),
            CMD_READ_SECTORS_EXT => self.start_rw(d, false, true, false),
            CMD_READ_MULTIPLE => self.start_rw(d, false, false, true),
            CMD_READ_MULTIPLE_EXT => self.start_rw(d, false, true, true),
            CMD_WRITE_SECTORS | CMD_WRITE_SECTORS_NORETRY => self.start_rw(d, true, false, false),
            CMD_WRITE_SECTORS_EXT => self.start_rw(d, true, true, false),
            CMD_WRITE_MULTIPLE => self.start_rw(d, true, false, true),
            CMD_WRITE_MULTIPLE_EXT => self.start_rw(d, true, true, true),
            CMD_READ_VERIFY_SECTORS | CMD_READ_VERIFY_SECTORS_NORETRY => self.verify(d, false),
            CMD_READ_VERIFY_SECTORS_EXT => self.verify(d, true),
            CMD_IDENTIFY_DEVICE => self.identify(d),
            CMD_SET_MULTIPLE_MODE => self.set_multiple_mode(d),
            CMD_SET_FEATURES => self.set_features(d),
            CMD_INITIALIZE_DEVICE_PARAMETERS => self.initialize_device_parameters(d),
            CMD_FLUSH_CACHE | CMD_FLUSH_CACHE_EXT => self.flush_cache(d),
            // 1xh RECALIBRATE and 7xh SEEK (obsolete in ATA-6): nothing to move.
            c if c & 0xF0 == CMD_RECALIBRATE || c & 0xF0 == CMD_SEEK => self.complete(d),
            CMD_IDLE | CMD_IDLE_IMMEDIATE | CMD_IDLE_ATA3 | CMD_IDLE_IMMEDIATE_ATA3 => {
                if let Some(drive) = self.drive(d) {
                    drive.standby = false;
                }
                self.complete(d);
            }
            CMD_STANDBY | CMD_STANDBY_IMMEDIATE | CMD_STANDBY_ATA3 | CMD_STANDBY_IMMEDIATE_ATA3 => {
                // Entering Standby spins down: cached writes reach the medium first.
                self.flush_cache(d);
                if let Some(drive) = self.drive(d) {
                    drive.standby = true;
                }
            }
            CMD_CHECK_POWER_MODE | CMD_CHECK_POWER_MODE_ATA3 => {
                let standby = self.drive(d).is_some_and(|dr| dr.standby);
                self.tf.sector_count = if standby {
                    POWER_STANDBY
                } else {
                    POWER_ACTIVE_OR_IDLE
                };
                self.complete(d);
            }
            // DEVICE RESET is for PACKET devices only (ATA-6 8.10), IDENTIFY
            // PACKET DEVICE likewise (8.16): a hard disk aborts both, which is
            // how hosts tell it from an ATAPI device. Everything else
            // (DMA, SMART, security, ...) is not implemented.
            CMD_DEVICE_RESET | CMD_IDENTIFY_PACKET_DEVICE => self.abort(d),
            _ => self.abort(d),
        }
    }

    fn start_rw(&mut self, d: usize, write: bool, ext: bool, multiple: bool) {
        let Some(drive) = self.drives.get(d).and_then(Option::as_ref) else {
            return;
        };
        // ATA-6 8.22/8.59: READ/WRITE MULTIPLE before SET MULTIPLE MODE aborts.
        if multiple && drive.multiple == 0 {
            return self.abort(d);
        }
        if write && drive.backend.read_only() {
            return self.abort(d);
        }
        let block = if multiple {
            u64::from(drive.multiple)
        } else {
            1
        };
        let Some((lba, count, addressing)) = self.decode_range(drive, ext) else {
            return self.set_status(d, STATUS_READY | STATUS_ERR, ERROR_IDNF, true);
        };
        if let Some(drive) = self.drive(d) {
            drive.standby = false;
        }
        self.xfer = Transfer {
            phase: if write { Phase::DataOut } else { Phase::DataIn },
            drive: d,
            pos: 0,
            len: 0,
            lba,
            remaining: count,
            block,
            addressing,
            ..Transfer::IDLE
        };
        if write {
            // PIO data-out: DRQ for the first block without an interrupt (ATA-6 9.8).
            self.xfer.len = (block.min(count) as usize) * SECTOR_SIZE;
            self.set_status(d, STATUS_READY | STATUS_DRQ, 0, false);
        } else {
            self.load_block();
        }
    }

    /// READ VERIFY SECTORS (ATA-6 8.28): read without transferring; a host
    /// read error is reported as UNC at the failing sector.
    fn verify(&mut self, d: usize, ext: bool) {
        let Some(drive) = self.drives.get(d).and_then(Option::as_ref) else {
            return;
        };
        let Some((lba, count, addressing)) = self.decode_range(drive, ext) else {
            return self.set_status(d, STATUS_READY | STATUS_ERR, ERROR_IDNF, true);
        };
        let chunk = u64::from(MAX_MULTIPLE);
        let mut at = lba;
        let end = lba + count;
        while at < end {
            let n = chunk.min(end - at);
            let bytes = (n as usize) * SECTOR_SIZE;
            let ok = match (
                self.drives.get_mut(d).and_then(Option::as_mut),
                self.buf.get_mut(..bytes),
            ) {
                (Some(drive), Some(buf)) => drive.backend.read_sectors(at, buf).is_ok(),
                _ => false,
            };
            if !ok {
                self.set_address(d, addressing, at);
                return self.set_status(d, STATUS_READY | STATUS_ERR, ERROR_UNC, true);
            }
            at += n;
        }
        self.set_address(d, addressing, end - 1);
        self.complete(d);
    }

    fn identify(&mut self, d: usize) {
        let Some(drive) = self.drives.get(d).and_then(Option::as_ref) else {
            return;
        };
        let id = drive.identify();
        self.send_identify(d, &id);
    }

    /// SET MULTIPLE MODE (ATA-6 8.39): block sizes are powers of two up to
    /// word 47's maximum; 0 disables multiple mode.
    fn set_multiple_mode(&mut self, d: usize) {
        let count = self.tf.sector_count;
        if count != 0 && (!count.is_power_of_two() || count > MAX_MULTIPLE) {
            return self.abort(d);
        }
        if let Some(drive) = self.drive(d) {
            drive.multiple = count;
        }
        self.complete(d);
    }

    /// SET FEATURES (ATA-6 8.37). Accepts the PIO transfer modes, write cache
    /// and look-ahead switches and revert-to-defaults, which is everything
    /// Linux's libata sends a PIO-only PATA disk; DMA modes and the rest abort.
    fn set_features(&mut self, d: usize) {
        let mode = self.tf.sector_count;
        match self.tf.features {
            SF_SET_TRANSFER_MODE => match mode {
                XFER_PIO_DEFAULT
                | XFER_PIO_DEFAULT_NO_IORDY
                | XFER_PIO_MODE_0..=XFER_PIO_MODE_4 => self.complete(d),
                _ => self.abort(d),
            },
            SF_ENABLE_WRITE_CACHE => {
                if let Some(drive) = self.drive(d) {
                    drive.write_cache = true;
                }
                self.complete(d);
            }
            SF_DISABLE_WRITE_CACHE => {
                if let Some(drive) = self.drive(d) {
                    drive.write_cache = false;
                }
                // Disabling the cache writes out what it holds.
                self.flush_cache(d);
            }
            SF_ENABLE_READ_LOOK_AHEAD
            | SF_DISABLE_READ_LOOK_AHEAD
            | SF_ENABLE_REVERT_TO_DEFAULTS
            | SF_DISABLE_REVERT_TO_DEFAULTS => self.complete(d),
            _ => self.abort(d),
        }
    }

    /// INITIALIZE DEVICE PARAMETERS (ATA-6 8.18): sets the CHS translation to
    /// Sector Count sectors per track and Device bits 3:0 + 1 heads.
    fn initialize_device_parameters(&mut self, d: usize) {
        let sectors = u16::from(self.tf.sector_count);
        let heads = u16::from(self.tf.device & DEVICE_HEAD) + 1;
        let Some(drive) = self.drive(d) else { return };
        let total = drive.backend.sector_count();
        let cylinders = if sectors == 0 {
            0
        } else {
            (total / (u64::from(heads) * u64::from(sectors))).min(u64::from(u16::MAX)) as u16
        };
        if cylinders == 0 {
            return self.abort(d);
        }
        drive.geometry = Geometry {
            cylinders,
            heads,
            sectors,
        };
        self.complete(d);
    }

    fn flush_cache(&mut self, d: usize) {
        let ok = self.drive(d).is_some_and(|dr| dr.backend.flush().is_ok());
        if ok {
            self.complete(d);
        } else {
            self.abort(d);
        }
    }
}

/// The PACKET command feature set (ATA-6 clause 5.13, protocol 9.10).
impl AtaChannel {
    /// The ATA commands a PACKET device takes (ATA-6 Table 13 lists what is
    /// mandatory for it); the disk commands abort, IDENTIFY DEVICE and READ
    /// SECTORS with the PACKET signature posted so the host learns what it
    /// is talking to (ATA-6 8.15, ATA-4 8.27.5.2).
    fn packet_device_command(&mut self, d: usize, cmd: u8) {
        match cmd {
            CMD_PACKET => self.packet(d),
            CMD_IDENTIFY_PACKET_DEVICE => {
                let Some(drive) = self.drives.get(d).and_then(Option::as_ref) else {
                    return;
                };
                let id = drive.identify_packet();
                self.send_identify(d, &id);
            }
            CMD_DEVICE_RESET => {
                // ATA-6 8.10: the device's own reset; signature, no interrupt.
                self.tf.set_packet_signature();
                self.set_status(d, STATUS_READY, DIAG_PASSED, false);
            }
            CMD_IDENTIFY_DEVICE
            | CMD_READ_SECTORS
            | CMD_READ_SECTORS_NORETRY
            | CMD_READ_SECTORS_EXT
            | CMD_READ_MULTIPLE
            | CMD_READ_MULTIPLE_EXT => {
                let device = self.tf.device;
                self.tf.set_packet_signature();
                self.tf.device = device;
                self.abort(d);
            }
            CMD_SET_FEATURES => self.set_features(d),
            CMD_IDLE_IMMEDIATE | CMD_STANDBY_IMMEDIATE | CMD_FLUSH_CACHE => self.complete(d),
            CMD_CHECK_POWER_MODE => {
                self.tf.sector_count = POWER_ACTIVE_OR_IDLE;
                self.complete(d);
            }
            _ => self.abort(d),
        }
    }

    /// PACKET (ATA-6 8.21): DRQ with interrupt reason CoD for the command
    /// packet, no interrupt (50 us DRQ type). DMA (Features bit 0) and
    /// overlap (bit 1) are not supported.
    fn packet(&mut self, d: usize) {
        if self.tf.features & 0b11 != 0 {
            return self.abort(d);
        }
        // Byte count limit from LBA Mid/High; 0 or FFFFh means FFFEh.
        let limit = usize::from(u16::from_le_bytes([self.tf.lba_mid, self.tf.lba_high]));
        let limit = match limit {
            0 | 0xFFFF => MAX_PACKET_BLOCK,
            n => n,
        };
        self.xfer = Transfer {
            phase: Phase::Packet,
            drive: d,
            pos: 0,
            len: PACKET_SIZE,
            byte_limit: limit,
            packet: true,
            ..Transfer::IDLE
        };
        self.tf.sector_count = (self.tf.sector_count & !IREASON_MASK) | IREASON_COD;
        self.set_status(d, STATUS_READY | STATUS_DRQ, 0, false);
    }

    /// The 12-byte packet has arrived: run it.
    fn packet_received(&mut self) {
        let d = self.xfer.drive;
        let mut cdb = [0u8; PACKET_SIZE];
        if let Some(b) = self.buf.get(..PACKET_SIZE) {
            cdb.copy_from_slice(b);
        }
        let Some(cd) = self.cdrom(d) else {
            self.xfer = Transfer::IDLE;
            return;
        };
        match cd.execute(&cdb) {
            Ok(data) if data.len == 0 => self.packet_done(d, None),
            Ok(data) => {
                self.xfer.phase = Phase::DataIn;
                self.xfer.remaining = data.len;
                self.packet_data_block();
            }
            Err(sense) => self.packet_done(d, Some(sense)),
        }
    }

    /// Offers the next DRQ block of data-in: at most the byte count limit
    /// (even when more follows, ATA-6 9.10), its size in LBA Mid/High,
    /// interrupt reason IO, and an interrupt.
    fn packet_data_block(&mut self) {
        let x = self.xfer;
        let left = usize::try_from(x.remaining).unwrap_or(usize::MAX);
        let n = if left > x.byte_limit {
            (x.byte_limit & !1).max(2)
        } else {
            left
        };
        let n = n.min(MAX_PACKET_BLOCK);
        let result = match (
            self.drives
                .get_mut(x.drive)
                .and_then(Option::as_mut)
                .and_then(|dr| dr.cdrom.as_deref_mut()),
            self.buf.get_mut(..n),
        ) {
            (Some(cd), Some(chunk)) => cd.read_data(chunk),
            _ => Err(Sense::default()),
        };
        if let Err(sense) = result {
            return self.packet_done(x.drive, Some(sense));
        }
        // An odd last byte is followed by a pad byte in the last word.
        if let Some(b) = self.buf.get_mut(n) {
            *b = 0;
        }
        self.xfer.pos = 0;
        self.xfer.len = n;
        self.xfer.remaining = x.remaining - n as u64;
        let [lo, hi] = (n as u16).to_le_bytes();
        self.tf.lba_mid = lo;
        self.tf.lba_high = hi;
        self.tf.sector_count = (self.tf.sector_count & !IREASON_MASK) | IREASON_IO;
        self.set_status(x.drive, STATUS_READY | STATUS_DRQ, 0, true);
    }

    /// The status phase of a PACKET command: interrupt reason IO and CoD,
    /// and for CHECK CONDITION ERR with the sense key in Error bits 7:4
    /// (ATA-6 7.11 for PACKET devices).
    fn packet_done(&mut self, d: usize, sense: Option<Sense>) {
        self.xfer = Transfer::IDLE;
        self.tf.sector_count = (self.tf.sector_count & !IREASON_MASK) | IREASON_IO | IREASON_COD;
        match sense {
            None => self.set_status(d, STATUS_READY, 0, true),
            Some(s) => self.set_status(d, STATUS_READY | STATUS_ERR, s.key << 4, true),
        }
    }

    /// Queues a 512-byte IDENTIFY response for PIO data-in.
    fn send_identify(&mut self, d: usize, id: &[u16; 256]) {
        for (chunk, w) in self.buf.chunks_exact_mut(2).zip(id.iter()) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        self.xfer = Transfer {
            phase: Phase::DataIn,
            drive: d,
            pos: 0,
            len: SECTOR_SIZE,
            ..Transfer::IDLE
        };
        self.set_status(d, STATUS_READY | STATUS_DRQ, 0, true);
    }
}

impl PortDevice for AtaChannel {
    /// The data register takes 16- and 32-bit accesses (a 32-bit access is two
    /// words, as PCI IDE controllers do for 32-bit PIO). Wider accesses to the
    /// 8-bit registers are split into byte accesses to consecutive ports, as
    /// the ISA bus does. With no drive attached nothing drives the bus: 0xFF.
    fn io_read(&mut self, port: u16, size: u8, _now: Nanos) -> u32 {
        let size = size.clamp(1, 4);
        let ones = u32::MAX >> (32 - 8 * u32::from(size));
        if !self.any_drive() {
            return ones;
        }
        if port == self.base.wrapping_add(REG_DATA) && size >= 2 {
            let lo = u32::from(self.data_read_word());
            if size == 2 {
                return lo;
            }
            let hi = u32::from(self.data_read_word());
            return lo | hi << 16;
        }
        (0..size).fold(0u32, |acc, i| {
            acc | u32::from(self.read_byte(port.wrapping_add(u16::from(i)))) << (8 * i)
        })
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, _now: Nanos) {
        let size = size.clamp(1, 4);
        if !self.any_drive() {
            return;
        }
        if port == self.base.wrapping_add(REG_DATA) && size >= 2 {
            self.data_write_word(value as u16);
            if size == 4 {
                self.data_write_word((value >> 16) as u16);
            }
            return;
        }
        for i in 0..size {
            self.write_byte(port.wrapping_add(u16::from(i)), (value >> (8 * i)) as u8);
        }
    }
}

impl AtaChannel {
    /// The ISA IRQ of this channel: 14 for the primary (1F0h), 15 otherwise.
    pub fn isa_irq(&self) -> u8 {
        if self.base == 0x1F0 {
            14
        } else {
            15
        }
    }
}

impl AtaChannel {
    fn drive_mismatch(&self, i: usize) -> crate::snapshot::StateError {
        crate::snapshot::StateError::Mismatch(format!(
            "IDE channel {:#x} drive {i}: the snapshot's drive and this machine's differ \
             (attached, or disk vs CD-ROM)",
            self.base
        ))
    }

    /// The host image of drive `i` (0 master, 1 slave), for a snapshot's
    /// record of the disks and their `-snapshot` overlays.
    pub fn drive_image(&mut self, i: usize) -> Option<&mut (dyn BlockDevice + Send)> {
        Some(self.drives.get_mut(i)?.as_mut()?.backend.as_mut())
    }
}

impl super::Device for AtaChannel {
    fn name(&self) -> &'static str {
        "ide"
    }
    fn save_state(&self) -> Result<Vec<u8>, crate::snapshot::StateError> {
        crate::snapshot::encode(self)
    }
    /// The registers, transfer and drive state come from the snapshot; the
    /// host images stay those this channel was built with, drive by drive,
    /// so the same drives must be attached.
    fn load_state(&mut self, state: &[u8]) -> Result<(), crate::snapshot::StateError> {
        let mut new: AtaChannel = crate::snapshot::decode(state)?;
        for (i, (n, o)) in new
            .drives
            .iter_mut()
            .zip(self.drives.iter_mut())
            .enumerate()
        {
            match (n, o) {
                (Some(n), Some(o)) => {
                    std::mem::swap(&mut n.backend, &mut o.backend);
                    match (n.cdrom.as_deref_mut(), o.cdrom.as_deref_mut()) {
                        (Some(nc), Some(oc)) => nc.keep_medium_of(oc),
                        (None, None) => {}
                        _ => return Err(self.drive_mismatch(i)),
                    }
                }
                (None, None) => {}
                _ => return Err(self.drive_mismatch(i)),
            }
        }
        *self = new;
        Ok(())
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default()
            .ports(self.base..=self.base.saturating_add(7))
            .ports(self.ctrl..=self.ctrl)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const B: u16 = PRIMARY_BASE;
    const C: u16 = PRIMARY_CTRL;

    /// A sparse in-memory disk whose contents and flush count the test can
    /// inspect after handing it to the channel.
    #[derive(Clone, Default)]
    struct MemDisk {
        sectors: u64,
        data: Arc<Mutex<HashMap<u64, [u8; 512]>>>,
        flushes: Arc<AtomicUsize>,
        fail: bool,
        read_only: bool,
    }

    impl MemDisk {
        fn new(sectors: u64) -> MemDisk {
            MemDisk {
                sectors,
                ..MemDisk::default()
            }
        }
        fn sector(&self, lba: u64) -> [u8; 512] {
            self.data
                .lock()
                .unwrap()
                .get(&lba)
                .copied()
                .unwrap_or([0; 512])
        }
        fn put(&self, lba: u64, fill: u8) {
            self.data.lock().unwrap().insert(lba, [fill; 512]);
        }
    }

    impl BlockDevice for MemDisk {
        fn sector_count(&self) -> u64 {
            self.sectors
        }
        fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
            crate::block::check_range(self.sectors, lba, buf.len())?;
            if self.fail {
                return Err(io::Error::other("injected read error"));
            }
            for (n, chunk) in (lba..).zip(buf.chunks_exact_mut(512)) {
                chunk.copy_from_slice(&self.sector(n));
            }
            Ok(())
        }
        fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
            crate::block::check_range(self.sectors, lba, buf.len())?;
            if self.fail || self.read_only {
                return Err(io::Error::other("injected write error"));
            }
            let mut data = self.data.lock().unwrap();
            for (n, chunk) in (lba..).zip(buf.chunks_exact(512)) {
                data.insert(n, chunk.try_into().unwrap());
            }
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::other("injected flush error"));
            }
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn read_only(&self) -> bool {
            self.read_only
        }
    }

    fn channel_with(disk: &MemDisk) -> AtaChannel {
        let mut ch = AtaChannel::new(B, C);
        ch.attach(0, Box::new(disk.clone())).unwrap();
        ch
    }

    fn out8(ch: &mut AtaChannel, port: u16, v: u8) {
        ch.io_write(port, 1, u32::from(v), 0);
    }
    fn in8(ch: &mut AtaChannel, port: u16) -> u8 {
        ch.io_read(port, 1, 0) as u8
    }
    fn in16(ch: &mut AtaChannel) -> u16 {
        ch.io_read(B, 2, 0) as u16
    }
    fn status(ch: &mut AtaChannel) -> u8 {
        in8(ch, B + REG_STATUS_COMMAND)
    }
    fn alt_status(ch: &mut AtaChannel) -> u8 {
        in8(ch, C)
    }

    /// Programs an LBA28 address, sector count and command on device 0.
    fn lba28(ch: &mut AtaChannel, lba: u32, count: u8, cmd: u8) {
        out8(ch, B + REG_SECTOR_COUNT, count);
        out8(ch, B + REG_LBA_LOW, lba as u8);
        out8(ch, B + REG_LBA_MID, (lba >> 8) as u8);
        out8(ch, B + REG_LBA_HIGH, (lba >> 16) as u8);
        out8(ch, B + REG_DEVICE, 0xE0 | ((lba >> 24) as u8 & 0x0F));
        out8(ch, B + REG_STATUS_COMMAND, cmd);
    }

    /// Programs a 48-bit address and count (high-order bytes first) and a command.
    fn lba48(ch: &mut AtaChannel, lba: u64, count: u16, cmd: u8) {
        let l = lba.to_le_bytes();
        let c = count.to_le_bytes();
        out8(ch, B + REG_SECTOR_COUNT, c[1]);
        out8(ch, B + REG_LBA_LOW, l[3]);
        out8(ch, B + REG_LBA_MID, l[4]);
        out8(ch, B + REG_LBA_HIGH, l[5]);
        out8(ch, B + REG_SECTOR_COUNT, c[0]);
        out8(ch, B + REG_LBA_LOW, l[0]);
        out8(ch, B + REG_LBA_MID, l[1]);
        out8(ch, B + REG_LBA_HIGH, l[2]);
        out8(ch, B + REG_DEVICE, 0xE0);
        out8(ch, B + REG_STATUS_COMMAND, cmd);
    }

    /// Reads one DRQ block of `sectors` sectors after checking DRQ is set.
    fn read_block(ch: &mut AtaChannel, sectors: usize) -> Vec<u8> {
        assert_eq!(alt_status(ch) & STATUS_DRQ, STATUS_DRQ, "DRQ for data-in");
        (0..sectors * 256)
            .flat_map(|_| in16(ch).to_le_bytes())
            .collect()
    }

    /// Writes one DRQ block of bytes.
    fn write_block(ch: &mut AtaChannel, data: &[u8]) {
        assert_eq!(alt_status(ch) & STATUS_DRQ, STATUS_DRQ, "DRQ for data-out");
        for w in data.chunks_exact(2) {
            ch.io_write(B, 2, u32::from(u16::from_le_bytes([w[0], w[1]])), 0);
        }
    }

    fn identify(ch: &mut AtaChannel) -> [u16; 256] {
        out8(ch, B + REG_DEVICE, 0xA0);
        out8(ch, B + REG_STATUS_COMMAND, CMD_IDENTIFY_DEVICE);
        assert!(ch.irq(), "IDENTIFY raises INTRQ when data is ready");
        assert_eq!(status(ch), STATUS_READY | STATUS_DRQ);
        let mut id = [0u16; 256];
        for w in id.iter_mut() {
            *w = in16(ch);
        }
        assert_eq!(status(ch), STATUS_READY, "DRQ drops after the last word");
        id
    }

    fn ata_string(words: &[u16]) -> String {
        words
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .map(char::from)
            .collect::<String>()
            .trim_end()
            .to_string()
    }

    #[test]
    fn identify_fields_capacity_lba48_and_checksum() {
        let disk = MemDisk::new(1_000_000);
        let mut ch = channel_with(&disk);
        let id = identify(&mut ch);
        assert_eq!(id[0] & 0x8000, 0, "ATA device");
        assert_eq!(id[1], (1_000_000 / (16 * 63)) as u16);
        assert_eq!((id[3], id[6]), (16, 63));
        assert_eq!((id[54], id[55], id[56]), (id[1], 16, 63));
        assert_eq!(
            (id[4], id[5]),
            (512 * 63, 512),
            "ATA-1 bytes per track / sector"
        );
        assert_eq!(ata_string(&id[27..47]), "vx86 HARDDISK");
        assert_eq!(ata_string(&id[10..20]), "VX86-1F0-0");
        assert_eq!(id[47], 0x8000 | u16::from(MAX_MULTIPLE));
        assert_ne!(id[49] & (1 << 9), 0, "LBA supported");
        assert_eq!(id[49] & (1 << 8), 0, "DMA not claimed");
        assert_eq!((id[63], id[88]), (0, 0), "no multiword DMA / UDMA");
        assert_eq!(id[53] & 0b111, 0b011);
        assert_eq!(u32::from(id[60]) | u32::from(id[61]) << 16, 1_000_000);
        assert_ne!(id[83] & (1 << 10), 0, "48-bit supported");
        assert_ne!(id[86] & (1 << 10), 0, "48-bit enabled");
        assert_eq!(id[83] & 0xC000, 0x4000);
        let lba48 = id[100..104]
            .iter()
            .rev()
            .fold(0u64, |acc, w| acc << 16 | u64::from(*w));
        assert_eq!(lba48, 1_000_000);
        assert_eq!(id[255] & 0xFF, 0xA5);
        let sum = id.iter().fold(0u8, |a, w| {
            a.wrapping_add(*w as u8).wrapping_add((w >> 8) as u8)
        });
        assert_eq!(sum, 0, "all 512 bytes sum to zero");
    }

    #[test]
    fn identify_caps_cylinders_and_lba28_capacity_on_big_disks() {
        let disk = MemDisk::new(1 << 33);
        let mut ch = channel_with(&disk);
        let id = identify(&mut ch);
        assert_eq!(id[1], 16383);
        assert_eq!(u32::from(id[60]) | u32::from(id[61]) << 16, 0x0FFF_FFFF);
        assert_eq!((id[100], id[101], id[102], id[103]), (0, 0, 2, 0));
    }

    #[test]
    fn lba28_write_then_read_round_trip() {
        let disk = MemDisk::new(0x20_0000);
        let mut ch = channel_with(&disk);
        let lba = 0x12_3456;
        lba28(&mut ch, lba, 3, CMD_WRITE_SECTORS);
        assert!(!ch.irq(), "no interrupt before the first data-out block");
        assert_eq!(alt_status(&mut ch), STATUS_READY | STATUS_DRQ);
        let data: Vec<u8> = (0..3 * 512).map(|i| (i * 13 + 7) as u8).collect();
        for (i, block) in data.chunks_exact(512).enumerate() {
            write_block(&mut ch, block);
            assert!(ch.irq(), "interrupt after data-out block {i}");
            let st = status(&mut ch);
            assert!(!ch.irq(), "status read clears INTRQ");
            let expect_drq = if i < 2 { STATUS_DRQ } else { 0 };
            assert_eq!(st, STATUS_READY | expect_drq);
        }
        for i in 0..3 {
            assert_eq!(
                &disk.sector(u64::from(lba) + i)[..],
                &data[i as usize * 512..][..512]
            );
        }
        lba28(&mut ch, lba, 3, CMD_READ_SECTORS);
        let mut back = Vec::new();
        for _ in 0..3 {
            assert!(ch.irq(), "interrupt when each data-in block is ready");
            assert_eq!(status(&mut ch), STATUS_READY | STATUS_DRQ);
            back.extend(read_block(&mut ch, 1));
        }
        assert!(!ch.irq());
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(back, data);
        // The address registers hold the last sector transferred.
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 0x58);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), 0x34);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0x12);
        assert_eq!(in8(&mut ch, B + REG_DEVICE), 0xE0);
    }

    #[test]
    fn lba48_round_trip_above_2_pow_28_and_hob_readback() {
        let disk = MemDisk::new(1 << 40);
        let mut ch = channel_with(&disk);
        let lba: u64 = 0x12_3456_789A;
        lba48(&mut ch, lba, 2, CMD_WRITE_SECTORS_EXT);
        write_block(&mut ch, &[0xA1; 512]);
        write_block(&mut ch, &[0xB2; 512]);
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(disk.sector(lba), [0xA1; 512]);
        assert_eq!(disk.sector(lba + 1), [0xB2; 512]);
        assert_eq!(disk.sector(lba & 0x0FFF_FFFF), [0; 512], "no 28-bit wrap");

        lba48(&mut ch, lba, 2, CMD_READ_SECTORS_EXT);
        assert_eq!(read_block(&mut ch, 1), vec![0xA1; 512]);
        assert_eq!(read_block(&mut ch, 1), vec![0xB2; 512]);
        // Last sector = 0x12_3456_789B: HOB = 0 shows bytes 0-2, HOB = 1 bytes 3-5.
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 0x9B);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0x56);
        out8(&mut ch, C, DEVCTL_HOB);
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 0x34);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), 0x12);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0x00);
        // Any command block write clears HOB again.
        out8(&mut ch, B + REG_ERROR_FEATURES, 0);
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 0x9B);
    }

    #[test]
    fn lba48_count_zero_means_65536() {
        let disk = MemDisk::new(65_540);
        let mut ch = channel_with(&disk);
        lba48(&mut ch, 10, 0, CMD_READ_SECTORS_EXT);
        // 10 + 65536 > 65540: the whole count is range-checked.
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_IDNF);
        lba48(&mut ch, 0, 0, CMD_READ_VERIFY_SECTORS_EXT);
        assert_eq!(status(&mut ch), STATUS_READY);
    }

    #[test]
    fn chs_addressing_with_default_and_initialized_geometry() {
        let disk = MemDisk::new(100_000);
        let mut ch = channel_with(&disk);
        // Cylinder 2, head 3, sector 4 with 16 heads x 63 sectors.
        let chs = |ch: &mut AtaChannel, c: u16, h: u8, s: u8, cmd: u8| {
            out8(ch, B + REG_SECTOR_COUNT, 1);
            out8(ch, B + REG_LBA_LOW, s);
            out8(ch, B + REG_LBA_MID, c as u8);
            out8(ch, B + REG_LBA_HIGH, (c >> 8) as u8);
            out8(ch, B + REG_DEVICE, 0xA0 | h);
            out8(ch, B + REG_STATUS_COMMAND, cmd);
        };
        chs(&mut ch, 2, 3, 4, CMD_WRITE_SECTORS);
        write_block(&mut ch, &[0x5A; 512]);
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(disk.sector((2 * 16 + 3) * 63 + 3), [0x5A; 512]);

        // INITIALIZE DEVICE PARAMETERS: 4 heads, 17 sectors per track.
        out8(&mut ch, B + REG_SECTOR_COUNT, 17);
        out8(&mut ch, B + REG_DEVICE, 0xA0 | 3);
        out8(
            &mut ch,
            B + REG_STATUS_COMMAND,
            CMD_INITIALIZE_DEVICE_PARAMETERS,
        );
        assert_eq!(status(&mut ch), STATUS_READY);
        let id = identify(&mut ch);
        assert_eq!((id[54], id[55], id[56]), ((100_000 / 68) as u16, 4, 17));
        assert_eq!((id[1], id[3], id[6]), ((100_000 / 1008) as u16, 16, 63));

        disk.put((4 + 2) * 17 + 4, 0xC3);
        chs(&mut ch, 1, 2, 5, CMD_READ_SECTORS);
        assert_eq!(read_block(&mut ch, 1), vec![0xC3; 512]);
        // Sector numbers start at 1; head 4 is beyond the 4-head translation.
        chs(&mut ch, 0, 0, 0, CMD_READ_SECTORS);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_IDNF);
        chs(&mut ch, 0, 4, 1, CMD_READ_SECTORS);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_IDNF);
        // A zero sectors-per-track translation is refused.
        out8(&mut ch, B + REG_SECTOR_COUNT, 0);
        out8(
            &mut ch,
            B + REG_STATUS_COMMAND,
            CMD_INITIALIZE_DEVICE_PARAMETERS,
        );
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_ABRT);
    }

    #[test]
    fn read_and_write_multiple_use_the_multiple_count() {
        let disk = MemDisk::new(4096);
        let mut ch = channel_with(&disk);
        for lba in 0..10 {
            disk.put(100 + lba, lba as u8 + 1);
        }
        // Before SET MULTIPLE MODE, READ MULTIPLE aborts.
        lba28(&mut ch, 100, 10, CMD_READ_MULTIPLE);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_ABRT);
        // 3 is not a power of two: aborted; 4 is accepted.
        out8(&mut ch, B + REG_SECTOR_COUNT, 3);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_SET_MULTIPLE_MODE);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        out8(&mut ch, B + REG_SECTOR_COUNT, 4);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_SET_MULTIPLE_MODE);
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(identify(&mut ch)[59], 0x0104);

        lba28(&mut ch, 100, 10, CMD_READ_MULTIPLE);
        let mut got = Vec::new();
        for sectors in [4, 4, 2] {
            assert!(ch.irq(), "one interrupt per block");
            status(&mut ch);
            got.extend(read_block(&mut ch, sectors));
        }
        assert_eq!(status(&mut ch), STATUS_READY);
        assert!(!ch.irq());
        let expect: Vec<u8> = (0..10u8).flat_map(|n| [n + 1; 512]).collect();
        assert_eq!(got, expect);

        lba48(&mut ch, 200, 6, CMD_WRITE_MULTIPLE_EXT);
        assert!(!ch.irq());
        write_block(&mut ch, &[0x44; 4 * 512]);
        assert!(ch.irq());
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_DRQ);
        write_block(&mut ch, &[0x66; 2 * 512]);
        assert!(ch.irq());
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(disk.sector(203), [0x44; 512]);
        assert_eq!(disk.sector(204), [0x66; 512]);
        assert_eq!(disk.sector(206), [0; 512]);
    }

    #[test]
    fn dword_pio_reads_two_words() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        let pattern: Vec<u8> = (0..512).map(|i| i as u8).collect();
        disk.data
            .lock()
            .unwrap()
            .insert(5, pattern.clone().try_into().unwrap());
        lba28(&mut ch, 5, 1, CMD_READ_SECTORS);
        let got: Vec<u8> = (0..128)
            .flat_map(|_| ch.io_read(B, 4, 0).to_le_bytes())
            .collect();
        assert_eq!(got, pattern);
        assert_eq!(status(&mut ch), STATUS_READY);
    }

    #[test]
    fn soft_reset_posts_the_ata_signature() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        lba28(&mut ch, 9, 7, CMD_READ_SECTORS);
        out8(&mut ch, B + REG_LBA_MID, 0x77);
        out8(&mut ch, C, DEVCTL_SRST | DEVCTL_NIEN);
        assert_eq!(alt_status(&mut ch), STATUS_BSY);
        out8(&mut ch, C, DEVCTL_NIEN);
        assert_eq!(alt_status(&mut ch), STATUS_READY);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), DIAG_PASSED);
        assert_eq!(in8(&mut ch, B + REG_SECTOR_COUNT), 0x01);
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 0x01);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), 0x00);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0x00);
        assert_eq!(in8(&mut ch, B + REG_DEVICE), 0xA0);
        // The transfer in progress was cancelled and reset raises no interrupt.
        assert_eq!(in16(&mut ch), 0xFFFF);
        out8(&mut ch, C, 0);
        assert!(!ch.irq());
    }

    #[test]
    fn absent_slave_reads_status_zero_and_echoes_registers() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        out8(&mut ch, B + REG_DEVICE, 0xB0);
        assert_eq!(status(&mut ch), 0);
        assert_eq!(alt_status(&mut ch), 0);
        // libata's presence check writes 55h/AAh and reads them back.
        out8(&mut ch, B + REG_SECTOR_COUNT, 0x55);
        out8(&mut ch, B + REG_LBA_LOW, 0xAA);
        assert_eq!(in8(&mut ch, B + REG_SECTOR_COUNT), 0x55);
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 0xAA);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_IDENTIFY_DEVICE);
        assert!(!ch.irq());
        assert_eq!(status(&mut ch), 0);
        assert_eq!(in16(&mut ch), 0xFFFF, "no data from an absent device");
        out8(&mut ch, B + REG_DEVICE, 0xA0);
        assert_eq!(status(&mut ch), STATUS_READY);
    }

    #[test]
    fn slave_only_channel_and_attach_errors() {
        let disk = MemDisk::new(64);
        let mut ch = AtaChannel::new(SECONDARY_BASE, SECONDARY_CTRL);
        ch.attach(1, Box::new(disk.clone())).unwrap();
        assert_eq!(
            ch.attach(1, Box::new(disk.clone())),
            Err(AttachError::Occupied {
                base: SECONDARY_BASE,
                index: 1
            })
        );
        assert_eq!(
            ch.ports().collect::<Vec<_>>(),
            [0x170, 0x171, 0x172, 0x173, 0x174, 0x175, 0x176, 0x177, 0x376]
        );
        assert!(matches!(
            ch.attach(2, Box::new(disk.clone())),
            Err(AttachError::BadIndex { index: 2, .. })
        ));
        ch.io_write(SECONDARY_BASE + 6, 1, 0xB0, 0);
        assert_eq!(
            ch.io_read(SECONDARY_BASE + 7, 1, 0),
            u32::from(STATUS_READY)
        );
        ch.io_write(SECONDARY_BASE + 6, 1, 0xA0, 0);
        assert_eq!(ch.io_read(SECONDARY_CTRL, 1, 0), 0);
    }

    #[test]
    fn no_drives_means_floating_ports() {
        let mut ch = AtaChannel::new(B, C);
        for port in (B..B + 8).chain([C]) {
            assert_eq!(ch.io_read(port, 1, 0), 0xFF);
        }
        assert_eq!(ch.io_read(B, 2, 0), 0xFFFF);
        assert_eq!(ch.io_read(B, 4, 0), 0xFFFF_FFFF);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_IDENTIFY_DEVICE);
        assert!(!ch.irq());
        assert_eq!(ch.io_read(B + REG_STATUS_COMMAND, 1, 0), 0xFF);
    }

    #[test]
    fn unsupported_commands_abort() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        // READ DMA, IDENTIFY PACKET DEVICE, DEVICE RESET, SMART, NOP.
        for cmd in [
            0xC8,
            CMD_IDENTIFY_PACKET_DEVICE,
            CMD_DEVICE_RESET,
            0xB0,
            0x00,
        ] {
            out8(&mut ch, B + REG_STATUS_COMMAND, cmd);
            assert!(ch.irq(), "command {cmd:#04x} completes with an interrupt");
            assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR, "{cmd:#04x}");
            assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_ABRT);
        }
        // The next good command clears ERR and the Error register.
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_RECALIBRATE);
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), 0);
    }

    #[test]
    fn status_read_clears_irq_alternate_status_does_not_and_nien_masks() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_FLUSH_CACHE);
        assert!(ch.irq());
        assert_eq!(alt_status(&mut ch), STATUS_READY);
        assert!(ch.irq(), "alternate status leaves INTRQ pending");
        out8(&mut ch, C, DEVCTL_NIEN);
        assert!(!ch.irq(), "nIEN disables INTRQ");
        out8(&mut ch, C, 0);
        assert!(ch.irq(), "still pending once re-enabled");
        assert_eq!(status(&mut ch), STATUS_READY);
        assert!(!ch.irq(), "status read clears INTRQ");
        // Writing a new command also clears a pending interrupt.
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_FLUSH_CACHE);
        lba28(&mut ch, 0, 1, CMD_WRITE_SECTORS);
        assert!(!ch.irq());
    }

    #[test]
    fn flush_cache_reaches_the_backend_and_the_file() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_FLUSH_CACHE_EXT);
        assert_eq!(status(&mut ch), STATUS_READY);
        assert_eq!(disk.flushes.load(Ordering::Relaxed), 1);
        ch.flush_all().unwrap();
        assert_eq!(disk.flushes.load(Ordering::Relaxed), 2);

        let tmp = crate::block::test_util::TempFile::with_contents(&[0u8; 8 * 512]);
        let raw = crate::block::RawImage::open(&tmp.0, false).unwrap();
        let mut ch = AtaChannel::new(B, C);
        ch.attach(0, Box::new(raw)).unwrap();
        lba28(&mut ch, 6, 1, CMD_WRITE_SECTORS);
        write_block(&mut ch, &[0x3C; 512]);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_FLUSH_CACHE);
        assert_eq!(status(&mut ch), STATUS_READY);
        let file = std::fs::read(&tmp.0).unwrap();
        assert!(file[6 * 512..7 * 512].iter().all(|&b| b == 0x3C));
        assert!(file[..6 * 512].iter().all(|&b| b == 0));
    }

    #[test]
    fn host_io_errors_become_ata_errors() {
        let mut disk = MemDisk::new(64);
        disk.fail = true;
        let mut ch = channel_with(&disk);
        lba28(&mut ch, 17, 2, CMD_READ_SECTORS);
        assert!(ch.irq());
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_UNC);
        assert_eq!(in8(&mut ch, B + REG_LBA_LOW), 17, "failing sector reported");
        lba28(&mut ch, 3, 1, CMD_WRITE_SECTORS);
        write_block(&mut ch, &[1; 512]);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_ABRT);
        lba28(&mut ch, 0, 4, CMD_READ_VERIFY_SECTORS);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_UNC);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_FLUSH_CACHE);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert!(ch.flush_all().is_err());
    }

    #[test]
    fn read_only_disk_aborts_writes_before_any_data() {
        let mut disk = MemDisk::new(64);
        disk.read_only = true;
        let mut ch = channel_with(&disk);
        lba28(&mut ch, 0, 1, CMD_WRITE_SECTORS);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_ABRT);
    }

    #[test]
    fn out_of_range_lba_is_idnf() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        lba28(&mut ch, 63, 2, CMD_READ_SECTORS);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_IDNF);
        lba28(&mut ch, 63, 1, CMD_READ_SECTORS);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_DRQ);
    }

    #[test]
    fn set_features_power_and_diagnostic_commands() {
        let disk = MemDisk::new(64);
        let mut ch = channel_with(&disk);
        let set_features = |ch: &mut AtaChannel, f: u8, n: u8| {
            out8(ch, B + REG_ERROR_FEATURES, f);
            out8(ch, B + REG_SECTOR_COUNT, n);
            out8(ch, B + REG_STATUS_COMMAND, CMD_SET_FEATURES);
            status(ch)
        };
        assert_eq!(
            set_features(&mut ch, SF_SET_TRANSFER_MODE, 0x0C),
            STATUS_READY
        );
        assert_eq!(
            set_features(&mut ch, SF_SET_TRANSFER_MODE, 0x45),
            STATUS_READY | STATUS_ERR
        );
        assert_eq!(
            set_features(&mut ch, SF_DISABLE_WRITE_CACHE, 0),
            STATUS_READY
        );
        assert_eq!(identify(&mut ch)[85] & (1 << 5), 0);
        // With the cache off every written block is flushed.
        let before = disk.flushes.load(Ordering::Relaxed);
        lba28(&mut ch, 1, 2, CMD_WRITE_SECTORS);
        write_block(&mut ch, &[9; 512]);
        write_block(&mut ch, &[9; 512]);
        assert_eq!(disk.flushes.load(Ordering::Relaxed), before + 2);
        assert_eq!(
            set_features(&mut ch, SF_ENABLE_WRITE_CACHE, 0),
            STATUS_READY
        );
        assert_ne!(identify(&mut ch)[85] & (1 << 5), 0);
        assert_eq!(set_features(&mut ch, 0x05, 0x80), STATUS_READY | STATUS_ERR);

        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_STANDBY_IMMEDIATE);
        assert_eq!(status(&mut ch), STATUS_READY);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_CHECK_POWER_MODE);
        assert_eq!(in8(&mut ch, B + REG_SECTOR_COUNT), POWER_STANDBY);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_IDLE_IMMEDIATE);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_CHECK_POWER_MODE);
        assert_eq!(in8(&mut ch, B + REG_SECTOR_COUNT), POWER_ACTIVE_OR_IDLE);

        // EXECUTE DEVICE DIAGNOSTIC even while the absent slave is selected.
        out8(&mut ch, B + REG_DEVICE, 0xB0);
        out8(
            &mut ch,
            B + REG_STATUS_COMMAND,
            CMD_EXECUTE_DEVICE_DIAGNOSTIC,
        );
        assert!(ch.irq());
        assert_eq!(in8(&mut ch, B + REG_DEVICE), 0xA0, "device 0 selected");
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), DIAG_PASSED);
        assert_eq!(in8(&mut ch, B + REG_SECTOR_COUNT), 1);
        assert_eq!(status(&mut ch), STATUS_READY);
    }

    #[test]
    fn any_guest_port_traffic_is_harmless() {
        let disk = MemDisk::new(300);
        let mut ch = channel_with(&disk);
        ch.attach(1, Box::new(MemDisk::new(1))).unwrap();
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200_000 {
            let r = next();
            let port = match r % 10 {
                0..=7 => B + (r >> 8) as u16 % 8,
                8 => C,
                _ => B.wrapping_add((r >> 8) as u16),
            };
            let size = [1u8, 2, 4][(r >> 24) as usize % 3];
            if r & 0x10 != 0 {
                ch.io_read(port, size, 0);
            } else {
                ch.io_write(port, size, next(), 0);
            }
            let _ = ch.irq();
        }
    }

    // ---- PACKET (ATAPI CD-ROM) ---------------------------------------------

    /// A CD of `blocks` 2048-byte blocks, block `n` filled with `n`, as
    /// device `unit` of the primary channel (a disk as the other device if
    /// `with_disk`).
    fn cd_channel(blocks: usize, unit: usize, with_disk: bool) -> AtaChannel {
        let data: Vec<u8> = (0..blocks * 2048).map(|i| (i / 2048) as u8).collect();
        let mut ch = AtaChannel::new(B, C);
        if with_disk {
            ch.attach(1 - unit, Box::new(MemDisk::new(64))).unwrap();
        }
        let medium = Box::new(crate::block::MemImage::writable(data));
        ch.attach_cdrom(unit, Cdrom::new(Some(medium))).unwrap();
        ch
    }

    /// Sends a PACKET command with byte count limit `limit`; returns the
    /// data-in (block by block) and the final Status and Error.
    fn packet_cmd(ch: &mut AtaChannel, cdb: &[u8], limit: u16) -> (Vec<Vec<u8>>, u8, u8) {
        out8(ch, B + REG_ERROR_FEATURES, 0);
        out8(ch, B + REG_LBA_MID, limit as u8);
        out8(ch, B + REG_LBA_HIGH, (limit >> 8) as u8);
        out8(ch, B + REG_STATUS_COMMAND, CMD_PACKET);
        assert!(!ch.irq(), "no interrupt before the packet (50 us DRQ)");
        assert_eq!(alt_status(ch), STATUS_READY | STATUS_DRQ);
        assert_eq!(in8(ch, B + REG_SECTOR_COUNT) & IREASON_MASK, IREASON_COD);
        let mut p = [0u8; 12];
        p[..cdb.len()].copy_from_slice(cdb);
        for w in p.chunks_exact(2) {
            ch.io_write(B, 2, u32::from(u16::from_le_bytes([w[0], w[1]])), 0);
        }
        let mut blocks = Vec::new();
        loop {
            assert!(ch.irq(), "every DRQ block and the status phase interrupt");
            let st = status(ch);
            let ireason = in8(ch, B + REG_SECTOR_COUNT) & IREASON_MASK;
            if st & STATUS_DRQ == 0 {
                assert_eq!(ireason, IREASON_IO | IREASON_COD, "status phase");
                return (blocks, st, in8(ch, B + REG_ERROR_FEATURES));
            }
            assert_eq!(ireason, IREASON_IO, "data-in");
            let n = usize::from(u16::from_le_bytes([
                in8(ch, B + REG_LBA_MID),
                in8(ch, B + REG_LBA_HIGH),
            ]));
            let mut b: Vec<u8> = (0..n.div_ceil(2))
                .flat_map(|_| in16(ch).to_le_bytes())
                .collect();
            b.truncate(n);
            blocks.push(b);
        }
    }

    #[test]
    fn packet_device_signature_and_identify() {
        let mut ch = cd_channel(10, 0, false);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), ATAPI_SIGNATURE_MID);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), ATAPI_SIGNATURE_HIGH);
        // IDENTIFY DEVICE aborts and posts the signature.
        out8(&mut ch, B + REG_LBA_MID, 0);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_IDENTIFY_DEVICE);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_ERROR_FEATURES), ERROR_ABRT);
        assert_eq!(
            (
                in8(&mut ch, B + REG_LBA_MID),
                in8(&mut ch, B + REG_LBA_HIGH)
            ),
            (0x14, 0xEB)
        );
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_IDENTIFY_PACKET_DEVICE);
        assert!(ch.irq());
        let id: Vec<u16> = (0..256).map(|_| in16(&mut ch)).collect();
        assert_eq!(id[0], 0x85C0, "ATAPI CD-ROM, removable, 12-byte packets");
        assert_eq!(id[82] & (1 << 4), 1 << 4, "PACKET feature set");
        assert_eq!(status(&mut ch), STATUS_READY);
        // EXECUTE DEVICE DIAGNOSTIC and soft reset post it again.
        out8(&mut ch, B + REG_LBA_HIGH, 0);
        out8(
            &mut ch,
            B + REG_STATUS_COMMAND,
            CMD_EXECUTE_DEVICE_DIAGNOSTIC,
        );
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0xEB);
        out8(&mut ch, B + REG_LBA_HIGH, 0);
        out8(&mut ch, C, DEVCTL_SRST);
        out8(&mut ch, C, 0);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0xEB);
        assert_eq!(in8(&mut ch, B + REG_SECTOR_COUNT), 1);
    }

    #[test]
    fn disk_and_cdrom_on_one_channel_show_their_own_signatures() {
        let mut ch = cd_channel(10, 1, true);
        out8(&mut ch, C, DEVCTL_SRST);
        out8(&mut ch, C, 0);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), 0, "device 0: ATA disk");
        // libata selects each device in turn and reads its signature.
        out8(&mut ch, B + REG_DEVICE, 0xA0);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), 0, "device 0 again");
        out8(&mut ch, B + REG_DEVICE, 0xB0);
        assert_eq!(in8(&mut ch, B + REG_LBA_MID), 0x14, "device 1: ATAPI");
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0xEB);
        assert_eq!(in8(&mut ch, B + REG_DEVICE), 0xB0);
        out8(&mut ch, B + REG_DEVICE, 0xA0);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0, "device 0's own");
        // The disk still answers disk commands.
        out8(&mut ch, B + REG_DEVICE, 0xA0);
        assert_eq!(identify(&mut ch)[0] & 0x8000, 0);
    }

    #[test]
    fn packet_read_in_byte_count_limited_blocks() {
        let mut ch = cd_channel(40, 0, false);
        // READ(10) of blocks 3..6 with a 4096-byte limit: 4096 + 2048.
        let (blocks, st, _) = packet_cmd(&mut ch, &[0x28, 0, 0, 0, 0, 3, 0, 0, 3], 4096);
        assert_eq!(st, STATUS_READY);
        assert_eq!(
            blocks.iter().map(Vec::len).collect::<Vec<_>>(),
            [4096, 2048]
        );
        let all: Vec<u8> = blocks.concat();
        let expect: Vec<u8> = [3u8, 4, 5].iter().flat_map(|&n| [n; 2048]).collect();
        assert_eq!(all, expect);
        // An odd limit is rounded down to even while more data follows;
        // FFFFh means FFFEh.
        let (blocks, _, _) = packet_cmd(&mut ch, &[0xA8, 0, 0, 0, 0, 0, 0, 0, 0, 1], 1001);
        assert_eq!(blocks[0].len(), 1000);
        assert_eq!(blocks.concat(), vec![0u8; 2048]);
        let (blocks, _, _) = packet_cmd(&mut ch, &[0x28, 0, 0, 0, 0, 0, 0, 0, 40], 0xFFFF);
        assert_eq!(blocks[0].len(), 0xFFFE);
        assert_eq!(blocks.concat().len(), 40 * 2048);
        assert_eq!(blocks.concat()[0xFFFE], (0xFFFE / 2048) as u8);
        // READ CAPACITY: last LBA 39, 2048-byte blocks.
        let (blocks, _, _) = packet_cmd(&mut ch, &[0x25], 0xFFFE);
        assert_eq!(blocks, [vec![0, 0, 0, 39, 0, 0, 8, 0]]);
        // An odd allocation length (INQUIRY 5 bytes) arrives whole.
        let (blocks, _, _) = packet_cmd(&mut ch, &[0x12, 0, 0, 0, 5], 0xFFFE);
        assert_eq!(blocks, [vec![0x05, 0x80, 0, 0x21, 31]]);
    }

    #[test]
    fn packet_read_past_the_end_checks_condition_with_sense() {
        let mut ch = cd_channel(20, 0, false);
        let (blocks, st, err) = packet_cmd(&mut ch, &[0x28, 0, 0, 0, 0, 19, 0, 0, 2], 0xFFFE);
        assert!(blocks.is_empty());
        assert_eq!(st, STATUS_READY | STATUS_ERR);
        assert_eq!(err >> 4, crate::devices::atapi::SENSE_ILLEGAL_REQUEST);
        let (blocks, st, _) = packet_cmd(&mut ch, &[0x03, 0, 0, 0, 18], 0xFFFE);
        assert_eq!(st, STATUS_READY);
        assert_eq!((blocks[0][2], blocks[0][12]), (0x05, 0x21));
        // Unknown opcode.
        let (_, _, err) = packet_cmd(&mut ch, &[0xFE], 0xFFFE);
        assert_eq!(err >> 4, 0x05);
        let (blocks, _, _) = packet_cmd(&mut ch, &[0x03, 0, 0, 0, 18], 0xFFFE);
        assert_eq!(blocks[0][12], 0x20);
        // The disk commands abort; DMA PACKET too.
        out8(&mut ch, B + REG_ERROR_FEATURES, 1);
        out8(&mut ch, B + REG_STATUS_COMMAND, CMD_PACKET);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        lba28(&mut ch, 0, 1, CMD_READ_SECTORS);
        assert_eq!(status(&mut ch), STATUS_READY | STATUS_ERR);
        assert_eq!(in8(&mut ch, B + REG_LBA_HIGH), 0xEB);
    }

    #[test]
    fn any_guest_port_traffic_to_a_cdrom_is_harmless() {
        let mut ch = cd_channel(40, 0, true);
        let mut x: u32 = 0x9E37_79B9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200_000 {
            let r = next();
            let port = if r % 9 == 8 {
                C
            } else {
                B + (r >> 8) as u16 % 8
            };
            let size = [1u8, 2, 4][(r >> 24) as usize % 3];
            if r & 0x10 != 0 {
                ch.io_read(port, size, 0);
            } else if port == B + REG_STATUS_COMMAND && r & 0x20 != 0 {
                ch.io_write(port, 1, CMD_PACKET.into(), 0);
            } else {
                ch.io_write(port, size, next(), 0);
            }
            let _ = ch.irq();
        }
    }
}
