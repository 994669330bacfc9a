//! The CD-ROM drive behind an ATAPI (PACKET) device on an IDE channel: the
//! SCSI/MMC command set a guest sends inside PACKET commands, over a read-only
//! medium of 2048-byte sectors.
//!
//! The ATA side (PACKET protocol, byte count limit, interrupt reason) lives in
//! [`crate::devices::ata`]; this module only turns a 12-byte command
//! descriptor block into data bytes or a CHECK CONDITION with sense data, as a
//! SCSI target does. References: SPC-3 (T10/1416-D) for TEST UNIT READY,
//! REQUEST SENSE, INQUIRY, MODE SENSE and the sense codes; MMC-3 (T10/1363-D)
//! for the optical commands (READ TOC, GET CONFIGURATION, GET EVENT STATUS
//! NOTIFICATION, READ DISC INFORMATION); SBC (T10/996D) for READ(10)/(12),
//! READ CAPACITY and START STOP UNIT. Where the specs leave a choice, the
//! values are QEMU's (hw/ide/atapi.c), so a guest sees what it sees there.

use crate::block::{BlockDevice, SECTOR_SIZE};

/// Bytes in one CD logical block (MMC-3 4.2.2: Mode 1 user data).
pub const CD_SECTOR_SIZE: usize = 2048;
/// Host (512-byte) sectors in one CD block.
const HOST_PER_CD: u64 = (CD_SECTOR_SIZE / SECTOR_SIZE) as u64;
/// Largest CD (80 min x 60 s x 75 blocks): above it the medium is a DVD-ROM
/// for GET CONFIGURATION, as QEMU decides.
const CD_MAX_BLOCKS: u64 = 80 * 60 * 75;
/// CD addresses in MSF form start 2 seconds (150 blocks) before LBA 0
/// (MMC-3 4.2.3.2, the pre-gap of track 1).
const MSF_OFFSET: u64 = 150;

// Operation codes (SPC-3 Table D.2, MMC-3 Table 320).
const TEST_UNIT_READY: u8 = 0x00;
const REQUEST_SENSE: u8 = 0x03;
const INQUIRY: u8 = 0x12;
const MODE_SENSE_6: u8 = 0x1A;
const START_STOP_UNIT: u8 = 0x1B;
const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
const READ_CAPACITY: u8 = 0x25;
const READ_10: u8 = 0x28;
const SEEK_10: u8 = 0x2B;
const READ_TOC: u8 = 0x43;
const GET_CONFIGURATION: u8 = 0x46;
const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4A;
const READ_DISC_INFORMATION: u8 = 0x51;
const MODE_SENSE_10: u8 = 0x5A;
const READ_12: u8 = 0xA8;

// Sense keys (SPC-3 4.5.6, Table 27).
pub const SENSE_NONE: u8 = 0x0;
pub const SENSE_NOT_READY: u8 = 0x2;
pub const SENSE_MEDIUM_ERROR: u8 = 0x3;
pub const SENSE_ILLEGAL_REQUEST: u8 = 0x5;
pub const SENSE_UNIT_ATTENTION: u8 = 0x6;

// Additional sense codes (SPC-3 Annex D.2).
pub const ASC_UNRECOVERED_READ_ERROR: u8 = 0x11;
pub const ASC_INVALID_OPCODE: u8 = 0x20;
pub const ASC_LBA_OUT_OF_RANGE: u8 = 0x21;
pub const ASC_INVALID_FIELD_IN_CDB: u8 = 0x24;
pub const ASC_MEDIUM_MAY_HAVE_CHANGED: u8 = 0x28;
pub const ASC_SAVING_PARAMETERS_NOT_SUPPORTED: u8 = 0x39;
pub const ASC_MEDIUM_NOT_PRESENT: u8 = 0x3A;
pub const ASC_MEDIUM_REMOVAL_PREVENTED: u8 = 0x53;
/// ASCQ for 3Ah: tray closed (01h), tray open (02h).
const ASCQ_TRAY_CLOSED: u8 = 0x01;
const ASCQ_TRAY_OPEN: u8 = 0x02;
/// ASCQ for 53h: medium removal prevented (02h).
const ASCQ_REMOVAL_PREVENTED: u8 = 0x02;

// Mode pages (MMC-3 6.3).
const MODE_PAGE_R_W_ERROR: u8 = 0x01;
const MODE_PAGE_CAPABILITIES: u8 = 0x2A;
const MODE_PAGE_ALL: u8 = 0x3F;

// GET CONFIGURATION profiles and features (MMC-3 5.3, 5.4).
const PROFILE_CD_ROM: u16 = 0x0008;
const PROFILE_DVD_ROM: u16 = 0x0010;
const FEATURE_PROFILE_LIST: u16 = 0x0000;
const FEATURE_CORE: u16 = 0x0001;
const FEATURE_REMOVABLE_MEDIUM: u16 = 0x0003;

/// GET EVENT STATUS NOTIFICATION media event class (MMC-3 6.6, Table 136).
const GESN_MEDIA_CLASS: u8 = 4;
/// Media event codes (MMC-3 Table 148).
const MEDIA_EVENT_NONE: u8 = 0;
const MEDIA_EVENT_NEW_MEDIA: u8 = 2;
const MEDIA_EVENT_REMOVAL: u8 = 3;
/// MMC-5 Table 149: the user asked to eject (QEMU reports a refused monitor
/// `eject` of a locked tray so).
const MEDIA_EVENT_EJECT_REQUEST: u8 = 1;

/// Sense data of the last command (SPC-3 4.5): key, additional sense code
/// and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    const fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense { key, asc, ascq }
    }
}

/// What a command leaves to transfer: `len` bytes of data-in, read with
/// [`Cdrom::read_data`]. A command without data has `len == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataIn {
    pub len: u64,
}

/// The data-in of the command in progress: a reply built in memory, or blocks
/// streamed from the medium (a READ can ask for up to 2^32 blocks).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Reply {
    #[serde(with = "crate::snapshot::bytes")]
    bytes: Vec<u8>,
    pos: usize,
    /// Next medium block to read and blocks left.
    lba: u64,
    blocks: u64,
    /// One block, for PIO chunks that are not block-aligned.
    #[serde(with = "crate::snapshot::bytes")]
    block: Vec<u8>,
    block_pos: usize,
}

/// A CD-ROM drive with its tray and (optional) medium.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Cdrom {
    /// The host image: not state (see `Cdrom::keep_medium_of`).
    #[serde(skip)]
    medium: Option<Box<dyn BlockDevice + Send>>,
    tray_open: bool,
    /// PREVENT ALLOW MEDIUM REMOVAL: the guest locked the tray.
    locked: bool,
    sense: Sense,
    /// A medium was inserted since the guest last looked: the next command
    /// (other than the ones SPC lets through) reports UNIT ATTENTION.
    unit_attention: bool,
    /// The media event GET EVENT STATUS NOTIFICATION reports next.
    media_event: u8,
    reply: Reply,
}

impl Cdrom {
    /// A drive with `medium` (a file of 512-byte host sectors) in its closed tray.
    pub fn new(medium: Option<Box<dyn BlockDevice + Send>>) -> Cdrom {
        Cdrom {
            medium,
            tray_open: false,
            locked: false,
            sense: Sense::default(),
            unit_attention: false,
            media_event: MEDIA_EVENT_NONE,
            reply: Reply::default(),
        }
    }

    /// Blocks of [`CD_SECTOR_SIZE`] on the medium (a partial last block is not readable).
    pub fn blocks(&self) -> u64 {
        self.medium
            .as_ref()
            .map_or(0, |m| m.sector_count() / HOST_PER_CD)
    }

    fn ready(&self) -> bool {
        !self.tray_open && self.medium.is_some()
    }

    /// The sense data of the last command (what REQUEST SENSE would return).
    pub fn sense(&self) -> Sense {
        self.sense
    }

    /// After a snapshot load: the host image of the drive this one replaces
    /// (the disc in the drive is configuration, not saved state).
    pub(crate) fn keep_medium_of(&mut self, old: &mut Cdrom) {
        self.medium = old.medium.take();
    }

    /// Puts `medium` in the drive (QEMU's monitor `change`): the guest sees a
    /// UNIT ATTENTION and a new-media event.
    pub fn change_medium(&mut self, medium: Option<Box<dyn BlockDevice + Send>>) {
        self.medium = medium;
        self.tray_open = false;
        self.unit_attention = self.medium.is_some();
        self.media_event = if self.medium.is_some() {
            MEDIA_EVENT_NEW_MEDIA
        } else {
            MEDIA_EVENT_REMOVAL
        };
    }

    /// The monitor's `eject` (QEMU's `do_open_tray` and medium removal):
    /// opens the tray and takes the medium out. A tray the guest locked
    /// (PREVENT ALLOW MEDIUM REMOVAL) stays shut and the guest gets an
    /// eject-request event instead, unless `force`, which also unlocks it
    /// (QEMU's `ide_cd_eject_request_cb`); a tray already open needs no
    /// opening. Returns whether it ejected.
    pub fn eject(&mut self, force: bool) -> bool {
        if self.locked && !force && !self.tray_open {
            self.media_event = MEDIA_EVENT_EJECT_REQUEST;
            return false;
        }
        self.locked = false;
        if !self.tray_open || self.medium.is_some() {
            self.media_event = MEDIA_EVENT_REMOVAL;
        }
        self.tray_open = true;
        self.medium = None;
        self.unit_attention = false;
        true
    }

    /// Whether the guest locked the tray (PREVENT ALLOW MEDIUM REMOVAL).
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// Whether the tray is open.
    pub fn tray_open(&self) -> bool {
        self.tray_open
    }

    /// The host file of the disc in the drive, if any (a snapshot records
    /// it and its fingerprint: the disc is part of the machine's state).
    pub fn medium_path(&self) -> Option<&std::path::Path> {
        self.medium.as_ref()?.host_path()
    }

    /// Takes the disc out without telling the guest: a restored snapshot
    /// whose drive was empty (its tray, sense and event state come from the
    /// snapshot, which already says so).
    pub fn remove_medium_silently(&mut self) {
        self.medium = None;
    }

    /// Whether a medium is in the drive.
    pub fn has_medium(&self) -> bool {
        self.medium.is_some()
    }

    /// Executes one command descriptor block. `Ok` gives the data-in length
    /// (already cut to the CDB's allocation length); `Err` is CHECK
    /// CONDITION with the sense data set.
    pub fn execute(&mut self, cdb: &[u8; 12]) -> Result<DataIn, Sense> {
        self.reply = Reply::default();
        let op = cdb[0];
        // SPC-3 5.9.7 / QEMU's ALLOW_UA: these run despite a pending unit attention.
        let allow_ua = matches!(
            op,
            INQUIRY | REQUEST_SENSE | GET_CONFIGURATION | GET_EVENT_STATUS_NOTIFICATION
        );
        if self.unit_attention && !allow_ua {
            self.unit_attention = false;
            return self.fail(Sense::new(
                SENSE_UNIT_ATTENTION,
                ASC_MEDIUM_MAY_HAVE_CHANGED,
                0,
            ));
        }
        let result = match op {
            TEST_UNIT_READY => self.need_medium().map(|()| Vec::new()),
            REQUEST_SENSE => Ok(self.request_sense(cdb)),
            INQUIRY => self.inquiry(cdb),
            MODE_SENSE_6 | MODE_SENSE_10 => self.mode_sense(cdb),
            START_STOP_UNIT => self.start_stop_unit(cdb).map(|()| Vec::new()),
            PREVENT_ALLOW_MEDIUM_REMOVAL => {
                self.locked = cdb[4] & 1 != 0;
                Ok(Vec::new())
            }
            READ_CAPACITY => self.read_capacity(),
            READ_10 => {
                let lba = be32(&cdb[2..6]);
                let count = u32::from(be16(&cdb[7..9]));
                return self.start_read(lba, count);
            }
            READ_12 => return self.start_read(be32(&cdb[2..6]), be32(&cdb[6..10])),
            SEEK_10 => self.seek(be32(&cdb[2..6])).map(|()| Vec::new()),
            READ_TOC => self.read_toc(cdb),
            GET_CONFIGURATION => Ok(self.get_configuration(cdb)),
            GET_EVENT_STATUS_NOTIFICATION => self.get_event_status(cdb),
            READ_DISC_INFORMATION => self.read_disc_information(cdb),
            _ => Err(Sense::new(SENSE_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0)),
        };
        match result {
            Ok(bytes) => {
                if op != REQUEST_SENSE {
                    self.sense = Sense::default();
                }
                let len = bytes.len() as u64;
                self.reply.bytes = bytes;
                Ok(DataIn { len })
            }
            Err(s) => self.fail(s),
        }
    }

    fn fail(&mut self, s: Sense) -> Result<DataIn, Sense> {
        self.sense = s;
        self.reply = Reply::default();
        Err(s)
    }

    /// Fills `out` with the next bytes of the data-in. A host read error
    /// ends the command with MEDIUM ERROR / UNRECOVERED READ ERROR.
    pub fn read_data(&mut self, out: &mut [u8]) -> Result<(), Sense> {
        let mut done = 0;
        while done < out.len() {
            let r = &mut self.reply;
            if r.pos < r.bytes.len() {
                let n = (r.bytes.len() - r.pos).min(out.len() - done);
                out[done..done + n].copy_from_slice(&r.bytes[r.pos..r.pos + n]);
                r.pos += n;
                done += n;
                continue;
            }
            if r.block_pos >= r.block.len() {
                if r.blocks == 0 {
                    // Beyond the reply: the host read more than offered.
                    out[done..].fill(0);
                    return Ok(());
                }
                // Whole blocks straight into `out` when aligned: no copy.
                let whole = (out.len() - done) / CD_SECTOR_SIZE;
                let n = (whole as u64).min(r.blocks).min(32);
                if n > 0 {
                    let bytes = n as usize * CD_SECTOR_SIZE;
                    let lba = r.lba;
                    self.read_blocks(lba, &mut out[done..done + bytes])?;
                    self.reply.lba += n;
                    self.reply.blocks -= n;
                    done += bytes;
                    continue;
                }
                let lba = r.lba;
                let mut block = std::mem::take(&mut self.reply.block);
                block.resize(CD_SECTOR_SIZE, 0);
                self.read_blocks(lba, &mut block)?;
                let r = &mut self.reply;
                r.block = block;
                r.block_pos = 0;
                r.lba += 1;
                r.blocks -= 1;
            }
            let r = &mut self.reply;
            let n = (r.block.len() - r.block_pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&r.block[r.block_pos..r.block_pos + n]);
            r.block_pos += n;
            done += n;
        }
        Ok(())
    }

    fn read_blocks(&mut self, lba: u64, out: &mut [u8]) -> Result<(), Sense> {
        let ok = match self.medium.as_mut() {
            Some(m) => m.read_sectors(lba * HOST_PER_CD, out).is_ok(),
            None => false,
        };
        if ok {
            return Ok(());
        }
        let s = if self.medium.is_none() {
            Sense::new(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT, ASCQ_TRAY_OPEN)
        } else {
            Sense::new(SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ_ERROR, 0)
        };
        self.fail(s).map(|_| ())
    }

    fn need_medium(&self) -> Result<(), Sense> {
        if self.ready() {
            return Ok(());
        }
        let ascq = if self.tray_open {
            ASCQ_TRAY_OPEN
        } else {
            ASCQ_TRAY_CLOSED
        };
        Err(Sense::new(SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT, ascq))
    }

    fn check_range(&self, lba: u64, count: u64) -> Result<(), Sense> {
        self.need_medium()?;
        if lba.saturating_add(count) > self.blocks() || (count == 0 && lba > self.blocks()) {
            return Err(Sense::new(SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0));
        }
        Ok(())
    }

    /// READ(10)/READ(12) (SBC 5.6, 5.8): `count` blocks from `lba`.
    fn start_read(&mut self, lba: u32, count: u32) -> Result<DataIn, Sense> {
        if let Err(s) = self.check_range(u64::from(lba), u64::from(count)) {
            return self.fail(s);
        }
        self.sense = Sense::default();
        self.reply.lba = u64::from(lba);
        self.reply.blocks = u64::from(count);
        Ok(DataIn {
            len: u64::from(count) * CD_SECTOR_SIZE as u64,
        })
    }

    /// SEEK(10): only the address is checked.
    fn seek(&self, lba: u32) -> Result<(), Sense> {
        self.check_range(u64::from(lba), 1)
    }

    /// REQUEST SENSE (SPC-3 6.27): fixed-format sense data (SPC-3 4.5.3),
    /// then the sense is cleared.
    fn request_sense(&mut self, cdb: &[u8; 12]) -> Vec<u8> {
        let mut b = vec![0u8; 18];
        b[0] = 0x70; // current error, fixed format
        b[2] = self.sense.key;
        b[7] = 10; // additional sense length
        b[12] = self.sense.asc;
        b[13] = self.sense.ascq;
        self.sense = Sense::default();
        b.truncate(usize::from(cdb[4]));
        b
    }

    /// INQUIRY (SPC-3 6.4): standard data only (EVPD is refused).
    fn inquiry(&self, cdb: &[u8; 12]) -> Result<Vec<u8>, Sense> {
        if cdb[1] & 1 != 0 {
            return Err(invalid_field());
        }
        let mut b = vec![0u8; 36];
        b[0] = 0x05; // peripheral device type: CD/DVD device
        b[1] = 0x80; // removable medium
        b[2] = 0x00; // no claimed SPC version, as ATAPI drives report
        b[3] = 0x21; // response data format 1 (ATAPI), as QEMU and real drives
        b[4] = 36 - 5; // additional length
        b[8..16].copy_from_slice(b"VX86    ");
        b[16..32].copy_from_slice(b"VX86 CD-ROM     ");
        let mut rev = [b' '; 4];
        for (d, s) in rev.iter_mut().zip(env!("CARGO_PKG_VERSION").bytes()) {
            *d = s;
        }
        b[32..36].copy_from_slice(&rev);
        b.truncate(usize::from(be16(&cdb[3..5])));
        Ok(b)
    }

    /// READ CAPACITY (SBC 5.10): last LBA and block length.
    fn read_capacity(&self) -> Result<Vec<u8>, Sense> {
        self.need_medium()?;
        let last = self.blocks().saturating_sub(1).min(u64::from(u32::MAX)) as u32;
        let mut b = last.to_be_bytes().to_vec();
        b.extend_from_slice(&(CD_SECTOR_SIZE as u32).to_be_bytes());
        Ok(b)
    }

    /// START STOP UNIT (SBC 5.19): with LoEj, Start = 0 opens the tray
    /// (ejects) and Start = 1 closes it (loads). A locked tray refuses to open.
    fn start_stop_unit(&mut self, cdb: &[u8; 12]) -> Result<(), Sense> {
        let (load_eject, start) = (cdb[4] & 2 != 0, cdb[4] & 1 != 0);
        if !load_eject {
            return Ok(());
        }
        if start {
            if self.tray_open {
                self.tray_open = false;
                if self.medium.is_some() {
                    self.media_event = MEDIA_EVENT_NEW_MEDIA;
                }
            }
        } else {
            if self.locked {
                return Err(Sense::new(
                    SENSE_ILLEGAL_REQUEST,
                    ASC_MEDIUM_REMOVAL_PREVENTED,
                    ASCQ_REMOVAL_PREVENTED,
                ));
            }
            if !self.tray_open {
                self.tray_open = true;
                self.media_event = MEDIA_EVENT_REMOVAL;
            }
        }
        Ok(())
    }

    /// MODE SENSE(6)/(10) (SPC-3 6.9, 6.10) with the pages MMC-3 drives
    /// report: read error recovery (01h) and capabilities (2Ah), current
    /// values only, as QEMU.
    fn mode_sense(&self, cdb: &[u8; 12]) -> Result<Vec<u8>, Sense> {
        let ten = cdb[0] == MODE_SENSE_10;
        let control = cdb[2] >> 6;
        let page = cdb[2] & 0x3F;
        match control {
            0 => {}
            3 => {
                return Err(Sense::new(
                    SENSE_ILLEGAL_REQUEST,
                    ASC_SAVING_PARAMETERS_NOT_SUPPORTED,
                    0,
                ))
            }
            _ => return Err(invalid_field()),
        }
        let mut pages = Vec::new();
        if matches!(page, MODE_PAGE_R_W_ERROR | MODE_PAGE_ALL) {
            // Page 01h, 6 bytes: read retry count 5, no error-recovery flags.
            pages.extend_from_slice(&[MODE_PAGE_R_W_ERROR, 0x06, 0x00, 0x05, 0, 0, 0, 0]);
        }
        if matches!(page, MODE_PAGE_CAPABILITIES | MODE_PAGE_ALL) {
            // Page 2Ah (MMC-3 6.3.11): reads CD-ROM media; lock, eject,
            // tray loading mechanism; 4x (704 kB/s), 512 KiB buffer.
            let mut p = [0u8; 20];
            p[0] = MODE_PAGE_CAPABILITIES;
            p[1] = 0x12;
            p[4] = 0x70;
            p[5] = 3 << 5;
            p[6] = 0b0010_1001 | if self.locked { 0b10 } else { 0 };
            p[8..10].copy_from_slice(&704u16.to_be_bytes());
            p[10..12].copy_from_slice(&2u16.to_be_bytes());
            p[12..14].copy_from_slice(&512u16.to_be_bytes());
            p[14..16].copy_from_slice(&704u16.to_be_bytes());
            pages.extend_from_slice(&p);
        }
        if pages.is_empty() {
            return Err(invalid_field());
        }
        // Medium type 70h (QEMU's "door closed, no disc" type used for all),
        // no block descriptors.
        let mut b = if ten {
            let len = (pages.len() + 6) as u16;
            let mut h = len.to_be_bytes().to_vec();
            h.extend_from_slice(&[0x70, 0, 0, 0, 0, 0]);
            h
        } else {
            vec![(pages.len() + 3) as u8, 0x70, 0, 0]
        };
        b.extend_from_slice(&pages);
        let alloc = if ten {
            usize::from(be16(&cdb[7..9]))
        } else {
            usize::from(cdb[4])
        };
        b.truncate(alloc);
        Ok(b)
    }

    /// READ TOC/PMA/ATIP (MMC-3 6.25): formats 0 (TOC), 1 (session info)
    /// and 2 (full TOC), addresses as LBA or MSF. One data track, as an ISO
    /// image has.
    fn read_toc(&self, cdb: &[u8; 12]) -> Result<Vec<u8>, Sense> {
        self.need_medium()?;
        let msf = cdb[1] & 2 != 0;
        // The format field; pre-MMC drivers put it in the vendor bits of byte 9.
        let format = match cdb[2] & 0x0F {
            0 => cdb[9] >> 6,
            f => f,
        };
        let track = cdb[6];
        let leadout = self.blocks();
        let addr = |lba: u64| -> [u8; 4] {
            if msf {
                let [m, s, f] = lba_to_msf(lba);
                [0, m, s, f]
            } else {
                (lba.min(u64::from(u32::MAX)) as u32).to_be_bytes()
            }
        };
        let mut b = vec![0, 0, 1, 1];
        match format {
            0 => {
                if track > 1 && track != 0xAA {
                    return Err(invalid_field());
                }
                if track <= 1 {
                    // Track 1: ADR 1 (Q sub-channel position), control 4 (data track).
                    b.extend_from_slice(&[0, 0x14, 1, 0]);
                    b.extend_from_slice(&addr(0));
                }
                b.extend_from_slice(&[0, 0x14, 0xAA, 0]);
                b.extend_from_slice(&addr(leadout));
            }
            1 => {
                b.extend_from_slice(&[0, 0x14, 1, 0]);
                b.extend_from_slice(&addr(0));
            }
            2 => {
                // Session 1's A0 (first track), A1 (last track), A2 (lead-out),
                // then track 1; addresses in MSF always (MMC-3 Table 237).
                let point = |b: &mut Vec<u8>, p: u8, pm: [u8; 3]| {
                    b.extend_from_slice(&[1, 0x14, 0, p, 0, 0, 0, 0]);
                    b.extend_from_slice(&pm);
                };
                point(&mut b, 0xA0, [1, 0, 0]);
                point(&mut b, 0xA1, [1, 0, 0]);
                point(&mut b, 0xA2, lba_to_msf(leadout));
                point(&mut b, 1, lba_to_msf(0));
            }
            _ => return Err(invalid_field()),
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        b.truncate(usize::from(be16(&cdb[7..9])));
        Ok(b)
    }

    fn profile(&self) -> u16 {
        match self.ready().then(|| self.blocks()) {
            None => 0,
            Some(n) if n > CD_MAX_BLOCKS => PROFILE_DVD_ROM,
            Some(_) => PROFILE_CD_ROM,
        }
    }

    /// GET CONFIGURATION (MMC-3 6.5): the profile list (DVD-ROM, CD-ROM),
    /// Core (ATAPI) and Removable Medium features, filtered by RT and the
    /// starting feature number.
    fn get_configuration(&self, cdb: &[u8; 12]) -> Vec<u8> {
        let rt = cdb[1] & 3;
        let start = be16(&cdb[2..4]);
        let current = self.profile();
        let mut features: Vec<(u16, Vec<u8>)> = Vec::new();
        let mut list = Vec::new();
        for p in [PROFILE_DVD_ROM, PROFILE_CD_ROM] {
            list.extend_from_slice(&p.to_be_bytes());
            list.extend_from_slice(&[u8::from(p == current), 0]);
        }
        features.push((FEATURE_PROFILE_LIST, list));
        // Core: physical interface 2 = ATAPI.
        features.push((FEATURE_CORE, vec![0, 0, 0, 2, 0, 0, 0, 0]));
        // Removable Medium: tray loading mechanism (001b), eject, lock, lock state.
        let lock_state = if self.locked { 0b100 } else { 0 };
        features.push((
            FEATURE_REMOVABLE_MEDIUM,
            vec![0b0010_1001 | lock_state, 0, 0, 0],
        ));
        let mut b = vec![0u8; 8];
        b[6..8].copy_from_slice(&current.to_be_bytes());
        for (code, data) in features {
            let keep = match rt {
                0 | 1 => code >= start,
                2 => code == start,
                _ => false,
            };
            if !keep {
                continue;
            }
            b.extend_from_slice(&code.to_be_bytes());
            // Version 0 (1 for Removable Medium's version with lock state),
            // persistent and current bits.
            let version_flags = if code == FEATURE_PROFILE_LIST {
                0b11
            } else {
                0b11 | if code == FEATURE_CORE { 0b100 } else { 0 }
            };
            b.push(version_flags);
            b.push(data.len() as u8);
            b.extend_from_slice(&data);
        }
        let len = (b.len() - 4) as u32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        b.truncate(usize::from(be16(&cdb[7..9])));
        b
    }

    /// GET EVENT STATUS NOTIFICATION (MMC-3 6.6), polled only: the media
    /// class with the last event (reported once) and door/medium state.
    fn get_event_status(&mut self, cdb: &[u8; 12]) -> Result<Vec<u8>, Sense> {
        if cdb[1] & 1 == 0 {
            // Asynchronous operation is not supported.
            return Err(invalid_field());
        }
        let supported = 1u8 << GESN_MEDIA_CLASS;
        let mut b = vec![0u8; 4];
        b[3] = supported;
        if cdb[4] & supported != 0 {
            b[2] = GESN_MEDIA_CLASS;
            let status = u8::from(self.tray_open) | if self.ready() { 0b10 } else { 0 };
            b.extend_from_slice(&[self.media_event, status, 0, 0]);
            self.media_event = MEDIA_EVENT_NONE;
        } else {
            b[2] = 0x80; // NEA: no event of a requested class is available
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        b.truncate(usize::from(be16(&cdb[7..9])));
        Ok(b)
    }

    /// READ DISC INFORMATION (MMC-3 6.22), standard type: one complete
    /// session with one track, finalized (a pressed CD-ROM).
    fn read_disc_information(&self, cdb: &[u8; 12]) -> Result<Vec<u8>, Sense> {
        self.need_medium()?;
        if cdb[1] & 7 != 0 {
            return Err(invalid_field());
        }
        let mut b = vec![0u8; 34];
        b[0..2].copy_from_slice(&32u16.to_be_bytes());
        b[2] = 0x0E; // last session complete, disc finalized
        b[3] = 1; // first track on disc
        b[4] = 1; // sessions
        b[5] = 1; // first track in last session
        b[6] = 1; // last track in last session
        b[7] = 0x20; // unrestricted use
                     // Lead-in start and last possible lead-out: FF FF FF FF (not recordable).
        b[16..24].fill(0xFF);
        b.truncate(usize::from(be16(&cdb[7..9])));
        Ok(b)
    }
}

fn invalid_field() -> Sense {
    Sense::new(SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0)
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [h, l, ..] => u16::from_be_bytes([*h, *l]),
        _ => 0,
    }
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b2, c, d, ..] => u32::from_be_bytes([*a, *b2, *c, *d]),
        _ => 0,
    }
}

/// A block address as minute, second, frame (75 frames a second), counted
/// from the start of the pre-gap.
fn lba_to_msf(lba: u64) -> [u8; 3] {
    let a = lba + MSF_OFFSET;
    [
        (a / (75 * 60)).min(255) as u8,
        (a / 75 % 60) as u8,
        (a % 75) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemImage;

    /// A medium of `blocks` CD blocks where every byte of block `n` is `n as u8`.
    fn medium(blocks: usize) -> Box<dyn BlockDevice + Send> {
        let data: Vec<u8> = (0..blocks * CD_SECTOR_SIZE)
            .map(|i| (i / CD_SECTOR_SIZE) as u8)
            .collect();
        Box::new(MemImage::writable(data))
    }

    fn cdb(bytes: &[u8]) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[..bytes.len()].copy_from_slice(bytes);
        c
    }

    fn run(cd: &mut Cdrom, c: &[u8]) -> Result<Vec<u8>, Sense> {
        let d = cd.execute(&cdb(c))?;
        let mut out = vec![0u8; d.len as usize];
        cd.read_data(&mut out)?;
        Ok(out)
    }

    fn request_sense(cd: &mut Cdrom) -> (u8, u8, u8) {
        let b = run(cd, &[REQUEST_SENSE, 0, 0, 0, 18]).unwrap();
        assert_eq!(b[0], 0x70);
        (b[2], b[12], b[13])
    }

    #[test]
    fn read_capacity_reports_last_lba_and_2048() {
        let mut cd = Cdrom::new(Some(medium(300)));
        let b = run(&mut cd, &[READ_CAPACITY]).unwrap();
        assert_eq!(b, [0, 0, 0x01, 0x2B, 0, 0, 0x08, 0x00]);
    }

    #[test]
    fn reads_return_the_blocks_asked_for_in_any_chunking() {
        let mut cd = Cdrom::new(Some(medium(40)));
        // READ(10) of 3 blocks from 7, fetched in odd-sized PIO chunks.
        let d = cd
            .execute(&cdb(&[READ_10, 0, 0, 0, 0, 7, 0, 0, 3]))
            .unwrap();
        assert_eq!(d.len, 3 * 2048);
        let mut got = Vec::new();
        for n in [1000, 2048, 3096] {
            let mut chunk = vec![0u8; n];
            cd.read_data(&mut chunk).unwrap();
            got.extend(chunk);
        }
        let expect: Vec<u8> = [7u8, 8, 9].iter().flat_map(|&n| [n; 2048]).collect();
        assert_eq!(got, expect);
        // READ(12) of the last block.
        let b = run(&mut cd, &[READ_12, 0, 0, 0, 0, 39, 0, 0, 0, 1]).unwrap();
        assert_eq!(b, vec![39u8; 2048]);
    }

    #[test]
    fn read_past_the_end_is_illegal_request_lba_out_of_range() {
        let mut cd = Cdrom::new(Some(medium(40)));
        let e = run(&mut cd, &[READ_10, 0, 0, 0, 0, 39, 0, 0, 2]).unwrap_err();
        assert_eq!(
            e,
            Sense::new(SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0)
        );
        assert_eq!(request_sense(&mut cd), (SENSE_ILLEGAL_REQUEST, 0x21, 0));
        // REQUEST SENSE cleared it.
        assert_eq!(request_sense(&mut cd), (SENSE_NONE, 0, 0));
        let e = run(&mut cd, &[READ_12, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(e.asc, ASC_LBA_OUT_OF_RANGE);
    }

    #[test]
    fn unknown_opcode_and_no_medium() {
        let mut cd = Cdrom::new(None);
        assert_eq!(
            run(&mut cd, &[0xEE]).unwrap_err(),
            Sense::new(SENSE_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0)
        );
        for c in [
            &[TEST_UNIT_READY][..],
            &[READ_CAPACITY],
            &[READ_10, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            let e = run(&mut cd, c).unwrap_err();
            assert_eq!((e.key, e.asc), (SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT));
        }
        // INQUIRY works without a medium.
        let b = run(&mut cd, &[INQUIRY, 0, 0, 0, 96]).unwrap();
        assert_eq!(b.len(), 36);
        assert_eq!((b[0], b[1]), (0x05, 0x80));
        assert_eq!(&b[16..27], b"VX86 CD-ROM");
        // Truncated to the allocation length.
        assert_eq!(run(&mut cd, &[INQUIRY, 0, 0, 0, 5]).unwrap().len(), 5);
    }

    #[test]
    fn read_toc_format_0_lba_and_msf() {
        let mut cd = Cdrom::new(Some(medium(1000)));
        let b = run(&mut cd, &[READ_TOC, 0, 0, 0, 0, 0, 0, 0, 100]).unwrap();
        assert_eq!(
            b,
            [
                0, 18, 1, 1, // header: length, first and last track
                0, 0x14, 1, 0, 0, 0, 0, 0, // track 1 at LBA 0
                0, 0x14, 0xAA, 0, 0, 0, 0x03, 0xE8, // lead-out at 1000
            ]
        );
        let b = run(&mut cd, &[READ_TOC, 2, 0, 0, 0, 0, 0, 0, 100]).unwrap();
        // LBA 0 = 00:02:00; LBA 1000 = 1150 frames = 00:15:25.
        assert_eq!(&b[4..12], [0, 0x14, 1, 0, 0, 0, 2, 0]);
        assert_eq!(&b[12..20], [0, 0x14, 0xAA, 0, 0, 0, 15, 25]);
        // Starting at the lead-out: only it.
        let b = run(&mut cd, &[READ_TOC, 0, 0, 0, 0, 0, 0xAA, 0, 100]).unwrap();
        assert_eq!(b.len(), 12);
        assert!(run(&mut cd, &[READ_TOC, 0, 0, 0, 0, 0, 2, 0, 100]).is_err());
        // Session info.
        let b = run(&mut cd, &[READ_TOC, 0, 1, 0, 0, 0, 0, 0, 12]).unwrap();
        assert_eq!(b, [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn eject_load_lock_and_events() {
        let mut cd = Cdrom::new(Some(medium(20)));
        let gesn = [GET_EVENT_STATUS_NOTIFICATION, 1, 0, 0, 0x10, 0, 0, 0, 8];
        let b = run(&mut cd, &gesn).unwrap();
        assert_eq!(
            b,
            [0, 6, GESN_MEDIA_CLASS, 0x10, MEDIA_EVENT_NONE, 0b10, 0, 0]
        );
        // Locked: eject refused.
        run(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1]).unwrap();
        let e = run(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0b10]).unwrap_err();
        assert_eq!(
            (e.key, e.asc),
            (SENSE_ILLEGAL_REQUEST, ASC_MEDIUM_REMOVAL_PREVENTED)
        );
        run(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0]).unwrap();
        run(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0b10]).unwrap();
        let e = run(&mut cd, &[TEST_UNIT_READY]).unwrap_err();
        assert_eq!(
            (e.key, e.asc, e.ascq),
            (SENSE_NOT_READY, 0x3A, ASCQ_TRAY_OPEN)
        );
        let b = run(&mut cd, &gesn).unwrap();
        assert_eq!(&b[4..6], [MEDIA_EVENT_REMOVAL, 0b01]);
        run(&mut cd, &[START_STOP_UNIT, 0, 0, 0, 0b11]).unwrap();
        run(&mut cd, &[TEST_UNIT_READY]).unwrap();
        let b = run(&mut cd, &gesn).unwrap();
        assert_eq!(&b[4..6], [MEDIA_EVENT_NEW_MEDIA, 0b10]);
        // Not polled: refused.
        assert!(run(
            &mut cd,
            &[GET_EVENT_STATUS_NOTIFICATION, 0, 0, 0, 0x10, 0, 0, 0, 8]
        )
        .is_err());
        // A changed medium: unit attention once, INQUIRY passes it.
        cd.change_medium(Some(medium(30)));
        run(&mut cd, &[INQUIRY, 0, 0, 0, 36]).unwrap();
        let e = run(&mut cd, &[TEST_UNIT_READY]).unwrap_err();
        assert_eq!(
            (e.key, e.asc),
            (SENSE_UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED)
        );
        run(&mut cd, &[TEST_UNIT_READY]).unwrap();
        assert_eq!(cd.blocks(), 30);
    }

    #[test]
    fn monitor_eject_respects_the_guest_lock_unless_forced() {
        let mut cd = Cdrom::new(Some(medium(20)));
        let gesn = [GET_EVENT_STATUS_NOTIFICATION, 1, 0, 0, 0x10, 0, 0, 0, 8];
        run(&mut cd, &[PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 1]).unwrap();
        // Refused: the medium stays, the guest hears an eject request.
        assert!(!cd.eject(false));
        assert!(cd.has_medium() && !cd.tray_open() && cd.locked());
        run(&mut cd, &[TEST_UNIT_READY]).unwrap();
        let b = run(&mut cd, &gesn).unwrap();
        assert_eq!(b[4], MEDIA_EVENT_EJECT_REQUEST);
        // Forced: unlocked, tray open, medium gone, no unit attention.
        assert!(cd.eject(true));
        assert!(!cd.has_medium() && cd.tray_open() && !cd.locked());
        let e = run(&mut cd, &[TEST_UNIT_READY]).unwrap_err();
        assert_eq!(
            (e.key, e.asc, e.ascq),
            (SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT, ASCQ_TRAY_OPEN)
        );
        let b = run(&mut cd, &gesn).unwrap();
        assert_eq!(b[4], MEDIA_EVENT_REMOVAL);
        // Unlocked: ejects at once; `change` then closes the tray on a new disc.
        let mut cd = Cdrom::new(Some(medium(20)));
        assert!(cd.eject(false));
        cd.change_medium(Some(medium(40)));
        assert!(!cd.tray_open());
        let e = run(&mut cd, &[TEST_UNIT_READY]).unwrap_err();
        assert_eq!(e.key, SENSE_UNIT_ATTENTION);
        run(&mut cd, &[TEST_UNIT_READY]).unwrap();
        assert_eq!(cd.blocks(), 40);
    }

    #[test]
    fn mode_sense_pages_and_get_configuration() {
        let mut cd = Cdrom::new(Some(medium(20)));
        let b = run(&mut cd, &[MODE_SENSE_10, 0, 0x2A, 0, 0, 0, 0, 0, 255]).unwrap();
        assert_eq!(b.len(), 28);
        assert_eq!(&b[..3], [0, 26, 0x70]);
        assert_eq!(&b[8..10], [0x2A, 0x12]);
        let b = run(&mut cd, &[MODE_SENSE_6, 0, 0x3F, 0, 255]).unwrap();
        assert_eq!(b.len(), 4 + 8 + 20);
        assert_eq!(b[0] as usize, b.len() - 1);
        assert!(run(&mut cd, &[MODE_SENSE_10, 0, 0x05, 0, 0, 0, 0, 0, 255]).is_err());
        let e = run(&mut cd, &[MODE_SENSE_10, 0, 0xC1, 0, 0, 0, 0, 0, 255]).unwrap_err();
        assert_eq!(e.asc, ASC_SAVING_PARAMETERS_NOT_SUPPORTED);

        let b = run(&mut cd, &[GET_CONFIGURATION, 0, 0, 0, 0, 0, 0, 0x01, 0]).unwrap();
        assert_eq!(&b[6..8], PROFILE_CD_ROM.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len() - 4
        );
        // Feature 0 with two profiles, CD-ROM current.
        assert_eq!(&b[8..12], [0, 0, 0b11, 8]);
        assert_eq!(&b[12..20], [0, 0x10, 0, 0, 0, 0x08, 1, 0]);
        // RT=2: only the Core feature.
        let b = run(&mut cd, &[GET_CONFIGURATION, 2, 0, 1, 0, 0, 0, 0x01, 0]).unwrap();
        assert_eq!(b.len(), 8 + 4 + 8);
        assert_eq!(&b[8..10], [0, 1]);
        assert_eq!(b[15], 2, "ATAPI interface");
    }
}
