//! Motorola MC146818A real-time clock with its CMOS RAM, as on the PC/AT: index port
//! 0x70 (bit 7 masks NMI), data port 0x71, 128 bytes of which 0x00-0x0D are the clock.
//!
//! Source: Motorola MC146818A datasheet: "Address Map", "Time, Calendar and Alarm
//! Locations" (table 3: BCD/binary formats, 12-hour PM bit, don't-care alarm codes
//! 0xC0-0xFF), "Update Cycle" (UIP), registers A-D and the periodic rate table
//! (table 5). PC CMOS layout (0x10-0x3F, checksum at 0x2E/0x2F, century at 0x32) from
//! the IBM PC/AT Technical Reference; 0x5B-0x5D (RAM above 4 GiB) is what SeaBIOS reads.
//!
//! Time is `epoch + seconds of the divider timeline`: the divider timeline is virtual
//! time shifted by `phase_ns` (so the update cycle can restart 500 ms after a divider
//! reset). No host clock is read; the machine passes the host's wall-clock time once,
//! at construction. Flags are caught up lazily from virtual time on every access and
//! by [`Rtc::advance`], which the machine calls at [`Rtc::next_deadline`].

use super::{Nanos, PortDevice};

/// Index register (write only); bit 7 masks NMI on the PC/AT.
pub const PORT_INDEX: u16 = 0x70;
/// Data register for the selected CMOS byte.
pub const PORT_DATA: u16 = 0x71;

/// Port 0x70 bit 7: NMI disable.
const INDEX_NMI_MASK: u8 = 0b1000_0000;
/// Port 0x70 bits 6-0: CMOS address.
const INDEX_ADDRESS: u8 = 0b0111_1111;

pub const REG_SECONDS: u8 = 0x00;
pub const REG_SECONDS_ALARM: u8 = 0x01;
pub const REG_MINUTES: u8 = 0x02;
pub const REG_MINUTES_ALARM: u8 = 0x03;
pub const REG_HOURS: u8 = 0x04;
pub const REG_HOURS_ALARM: u8 = 0x05;
pub const REG_DAY_OF_WEEK: u8 = 0x06;
pub const REG_DAY_OF_MONTH: u8 = 0x07;
pub const REG_MONTH: u8 = 0x08;
pub const REG_YEAR: u8 = 0x09;
pub const REG_A: u8 = 0x0A;
pub const REG_B: u8 = 0x0B;
pub const REG_C: u8 = 0x0C;
pub const REG_D: u8 = 0x0D;
/// PC/AT: equipment byte.
pub const CMOS_EQUIPMENT: u8 = 0x14;
/// PC/AT: base memory in KiB (low, high).
pub const CMOS_BASE_MEM_LO: u8 = 0x15;
pub const CMOS_BASE_MEM_HI: u8 = 0x16;
/// PC/AT: extended memory above 1 MiB in KiB (low, high).
pub const CMOS_EXT_MEM_LO: u8 = 0x17;
pub const CMOS_EXT_MEM_HI: u8 = 0x18;
/// PC/AT: checksum over 0x10-0x2D (high byte, low byte).
pub const CMOS_CHECKSUM_HI: u8 = 0x2E;
pub const CMOS_CHECKSUM_LO: u8 = 0x2F;
/// PC/AT: extended memory above 1 MiB in KiB, as found by POST (low, high).
pub const CMOS_EXT_MEM_POST_LO: u8 = 0x30;
pub const CMOS_EXT_MEM_POST_HI: u8 = 0x31;
/// PC/AT: century (BCD or binary per register B DM).
pub const CMOS_CENTURY: u8 = 0x32;
/// Memory between 16 MiB and 4 GiB in 64 KiB units (low, high).
pub const CMOS_MEM_ABOVE_16M_LO: u8 = 0x34;
pub const CMOS_MEM_ABOVE_16M_HI: u8 = 0x35;
/// Memory above 4 GiB in 64 KiB units (bits 0-7, 8-15, 16-23).
pub const CMOS_MEM_ABOVE_4G: u8 = 0x5B;
/// PC/AT: hard disk types, drive 0 in bits 7-4 and drive 1 in bits 3-0; 0Fh
/// means "extended type in 19h/1Ah".
pub const CMOS_HD_TYPES: u8 = 0x12;
/// Extended hard disk types of drives 0 and 1; 47 = user-defined geometry.
pub const CMOS_HD0_EXT_TYPE: u8 = 0x19;
pub const CMOS_HD1_EXT_TYPE: u8 = 0x1A;
/// User-defined geometry of drives 0 and 1 (9 bytes each: cylinders, heads,
/// write precompensation, control byte, landing zone, sectors per track).
pub const CMOS_HD0_PARAMS: u8 = 0x1B;
pub const CMOS_HD1_PARAMS: u8 = 0x24;
/// Bochs/QEMU convention: boot device 3 (bits 7-4) and "skip the floppy boot
/// signature check" (bit 0).
pub const CMOS_BOOT_ORDER_3: u8 = 0x38;
/// Bochs/QEMU convention: CHS translation of the four ATA drives, 2 bits each
/// (0 none, 1 LBA, 2 large, 3 r-echs).
pub const CMOS_ATA_TRANSLATION: u8 = 0x39;
/// Bochs/QEMU convention: boot devices 2 (bits 7-4) and 1 (bits 3-0).
pub const CMOS_BOOT_ORDER_12: u8 = 0x3D;
/// Boot device codes of the Bochs/QEMU boot order bytes.
pub const BOOT_FLOPPY: u8 = 1;
pub const BOOT_HARD_DISK: u8 = 2;
pub const BOOT_CDROM: u8 = 3;
/// User-defined hard disk type (IBM AT type table extension).
const HD_TYPE_USER: u8 = 47;

/// Register A UIP: an update cycle is in progress or will start within 244 us.
const REG_A_UIP: u8 = 0b1000_0000;
/// Register A DV2-DV0 (bits 6-4) = 11x holds the divider chain in reset; other
/// values select a time base and run it (the PC uses 010, 32.768 kHz).
const REG_A_DIVIDER_RESET: u8 = 0b0110_0000;
/// Register A RS3-RS0: periodic interrupt rate.
const REG_A_RATE: u8 = 0b0000_1111;
/// Register B SET: updates inhibited so software can set the time.
const REG_B_SET: u8 = 0b1000_0000;
/// Register B PIE: periodic interrupt enable.
const REG_B_PIE: u8 = 0b0100_0000;
/// Register B AIE: alarm interrupt enable.
const REG_B_AIE: u8 = 0b0010_0000;
/// Register B UIE: update-ended interrupt enable.
const REG_B_UIE: u8 = 0b0001_0000;
/// Register B DM: 1 = binary, 0 = BCD.
const REG_B_DM_BINARY: u8 = 0b0000_0100;
/// Register B 24/12: 1 = 24-hour mode.
const REG_B_24_HOUR: u8 = 0b0000_0010;
/// Register C IRQF: an enabled flag is set (the IRQ pin is asserted).
const REG_C_IRQF: u8 = 0b1000_0000;
/// Register C PF: periodic flag.
const REG_C_PF: u8 = 0b0100_0000;
/// Register C AF: alarm flag.
const REG_C_AF: u8 = 0b0010_0000;
/// Register C UF: update-ended flag.
const REG_C_UF: u8 = 0b0001_0000;
/// Register D VRT: valid RAM and time (the battery is good).
const REG_D_VRT: u8 = 0b1000_0000;
/// Hours register bit 7 in 12-hour mode: PM.
const HOURS_PM: u8 = 0b1000_0000;
/// Alarm bytes with both top bits set match any value.
const ALARM_DONT_CARE: u8 = 0b1100_0000;

/// Power-on register A: 32.768 kHz time base (DV = 010), 1024 Hz periodic rate.
const REG_A_DEFAULT: u8 = 0b0010_0110;
/// Power-on register B as left by PC firmware: 24-hour, BCD, no interrupts.
const REG_B_DEFAULT: u8 = REG_B_24_HOUR;
/// Equipment byte: math coprocessor present (bit 1), primary display EGA/VGA
/// (bits 5-4 = 00), no diskette drives (bit 0 = 0).
const EQUIPMENT_DEFAULT: u8 = 0b0000_0010;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// The time base of the divider chain.
const TIME_BASE_HZ: u64 = 32_768;
/// UIP rises this long before each update (datasheet tBUC).
const UIP_LEAD_NS: u64 = 244_000;
/// After the divider leaves reset the first update comes half a second later.
const FIRST_UPDATE_AFTER_RESET_NS: u64 = 500_000_000;
/// Alarm checks look back at most one day (every alarm pattern repeats daily).
const ALARM_LOOKBACK_SECONDS: i64 = 86_400;
const SECONDS_PER_DAY: i64 = 86_400;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic over 400-year
/// cycles of 146097 days; March-based years put the leap day last).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9).rem_euclid(12);
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A broken-down calendar time as the clock registers hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CalendarTime {
    second: u8,
    minute: u8,
    hour: u8,
    day_of_week: u8,
    day: u8,
    month: u8,
    year: u8,
    century: u8,
}

impl CalendarTime {
    fn from_unix(unix: i64) -> Self {
        let days = unix.div_euclid(SECONDS_PER_DAY);
        let secs = unix.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        CalendarTime {
            second: (secs % 60) as u8,
            minute: (secs / 60 % 60) as u8,
            hour: (secs / 3600) as u8,
            // 1970-01-01 was a Thursday; the register counts Sunday = 1.
            day_of_week: ((days + 4).rem_euclid(7) + 1) as u8,
            day: day as u8,
            month: month as u8,
            year: year.rem_euclid(100) as u8,
            century: year.div_euclid(100).rem_euclid(100) as u8,
        }
    }

    fn to_unix(self) -> i64 {
        let year = i64::from(self.century) * 100 + i64::from(self.year);
        let days = days_from_civil(
            year,
            i64::from(self.month.clamp(1, 12)),
            i64::from(self.day),
        );
        days * SECONDS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

/// The MC146818A and its CMOS RAM.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Rtc {
    #[serde(with = "crate::snapshot::array")]
    cmos: [u8; 128],
    /// Port 0x70 bits 6-0.
    index: u8,
    nmi_masked: bool,
    /// Unix seconds at second 0 of the divider timeline.
    epoch: i64,
    /// The divider timeline is virtual time plus this offset.
    phase_ns: u64,
    /// Virtual time up to which flags have been caught up.
    synced_to: Nanos,
    /// Register C flags PF, AF, UF.
    flags: u8,
}

impl Rtc {
    /// A clock reading `base_unix_seconds` at virtual time 0, with register A/B in the
    /// state PC firmware leaves them and the CMOS memory fields empty (see
    /// [`Rtc::set_memory_size`]).
    pub fn new(base_unix_seconds: i64) -> Self {
        let mut rtc = Rtc {
            cmos: [0; 128],
            index: 0,
            nmi_masked: false,
            epoch: base_unix_seconds,
            phase_ns: 0,
            synced_to: 0,
            flags: 0,
        };
        rtc.cmos[usize::from(REG_A)] = REG_A_DEFAULT;
        rtc.cmos[usize::from(REG_B)] = REG_B_DEFAULT;
        rtc.cmos[usize::from(REG_D)] = REG_D_VRT;
        rtc.cmos[usize::from(CMOS_EQUIPMENT)] = EQUIPMENT_DEFAULT;
        rtc.store_time(CalendarTime::from_unix(base_unix_seconds));
        rtc.update_checksum();
        rtc
    }

    /// Port 0x70 bit 7 as last written: the machine must not deliver NMI while set.
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    /// The IRQ8 line (asserted while register C IRQF is set). The machine forwards its
    /// rising edges to the PIC.
    pub fn irq(&self) -> bool {
        self.reg_c() & REG_C_IRQF != 0
    }

    /// Catch the periodic, alarm and update-ended flags up to `now`.
    pub fn advance(&mut self, now: Nanos) {
        self.sync(now);
    }

    /// The next time an enabled interrupt flag that is still clear would be set.
    pub fn next_deadline(&self) -> Option<Nanos> {
        if !self.divider_running() {
            return None;
        }
        let b = self.reg(REG_B);
        let mut deadline: Option<Nanos> = None;
        let rate = self.periodic_cycles();
        if b & REG_B_PIE != 0 && self.flags & REG_C_PF == 0 && rate > 0 {
            let next = self.divider_cycles(self.synced_to) / rate + 1;
            let at = (u128::from(next) * u128::from(rate) * u128::from(NANOS_PER_SECOND))
                .div_ceil(u128::from(TIME_BASE_HZ));
            let at = u64::try_from(at).unwrap_or(u64::MAX);
            deadline = Some(at.saturating_sub(self.phase_ns));
        }
        let wants_update = (b & REG_B_UIE != 0 && self.flags & REG_C_UF == 0)
            || (b & REG_B_AIE != 0 && self.flags & REG_C_AF == 0);
        if wants_update && b & REG_B_SET == 0 {
            let timeline = self.synced_to.saturating_add(self.phase_ns);
            let next = (timeline / NANOS_PER_SECOND + 1).saturating_mul(NANOS_PER_SECOND);
            let at = next.saturating_sub(self.phase_ns);
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
        deadline
    }

    /// Fill the CMOS memory-size fields PC firmware reads, for `ram_bytes` of RAM
    /// starting at address 0 (640 KiB conventional, the rest above 1 MiB, none of it
    /// displaced by a hole below 4 GiB). Machines with a hole use
    /// [`Rtc::set_memory_split`].
    pub fn set_memory_size(&mut self, ram_bytes: u64) {
        self.set_memory_split(ram_bytes.min(4 * GIB), ram_bytes.saturating_sub(4 * GIB));
    }

    /// Fill the memory-size fields for `below_4g` bytes of RAM from address 0 and
    /// `above_4g` bytes from 4 GiB up, and recompute the checksum.
    pub fn set_memory_split(&mut self, below_4g: u64, above_4g: u64) {
        let put16 = |cmos: &mut [u8; 128], lo: u8, value: u64| {
            let [l, h] = (value.min(0xFFFF) as u16).to_le_bytes();
            cmos[usize::from(lo & INDEX_ADDRESS)] = l;
            cmos[usize::from((lo + 1) & INDEX_ADDRESS)] = h;
        };
        let base_kib = (below_4g / KIB).min(640);
        put16(&mut self.cmos, CMOS_BASE_MEM_LO, base_kib);
        let ext_kib = below_4g.saturating_sub(MIB) / KIB;
        put16(&mut self.cmos, CMOS_EXT_MEM_LO, ext_kib);
        put16(&mut self.cmos, CMOS_EXT_MEM_POST_LO, ext_kib);
        let above_16m = below_4g.saturating_sub(16 * MIB) / (64 * KIB);
        put16(&mut self.cmos, CMOS_MEM_ABOVE_16M_LO, above_16m);
        let above_4g_units = (above_4g / (64 * KIB)).min(0xFF_FFFF);
        for (i, byte) in above_4g_units.to_le_bytes().iter().take(3).enumerate() {
            self.cmos[usize::from(CMOS_MEM_ABOVE_4G) + i] = *byte;
        }
        self.update_checksum();
    }

    /// The boot order firmware in the Bochs/QEMU tradition reads (CMOS 3Dh,
    /// 38h): `first`, `second`, `third` from [`BOOT_FLOPPY`], [`BOOT_HARD_DISK`],
    /// [`BOOT_CDROM`] (0 = none).
    pub fn set_boot_order(&mut self, first: u8, second: u8, third: u8) {
        self.cmos[usize::from(CMOS_BOOT_ORDER_12)] = (second & 0x0F) << 4 | (first & 0x0F);
        let keep = self.cmos[usize::from(CMOS_BOOT_ORDER_3)] & 0x0F;
        self.cmos[usize::from(CMOS_BOOT_ORDER_3)] = (third & 0x0F) << 4 | keep;
    }

    /// Describe ATA drive `index` (0-3: primary master, primary slave,
    /// secondary master, secondary slave) with its default CHS geometry, as a
    /// PC BIOS setup stores it: the type bytes and the user-defined geometry
    /// for drives 0 and 1, and the LBA translation flag when the drive has more
    /// than 1024 cylinders. `None` clears the drive.
    pub fn set_hard_disk(&mut self, index: u8, geometry: Option<(u16, u16, u16)>) {
        let shift = 2 * (index & 3);
        let big = geometry.is_some_and(|(c, _, _)| c > 1024);
        let t = &mut self.cmos[usize::from(CMOS_ATA_TRANSLATION)];
        *t = (*t & !(0b11 << shift)) | (u8::from(big) << shift);
        if index < 2 {
            let nibble_shift = if index == 0 { 4 } else { 0 };
            let types = &mut self.cmos[usize::from(CMOS_HD_TYPES)];
            *types &= !(0x0F << nibble_shift);
            let (ext, params) = if index == 0 {
                (CMOS_HD0_EXT_TYPE, CMOS_HD0_PARAMS)
            } else {
                (CMOS_HD1_EXT_TYPE, CMOS_HD1_PARAMS)
            };
            let mut block = [0u8; 9];
            if let Some((cylinders, heads, sectors)) = geometry {
                *types |= 0x0F << nibble_shift;
                let [c_lo, c_hi] = cylinders.to_le_bytes();
                // cylinders, heads, precompensation FFFFh (none), control
                // (C0h: no retries; bit 3 for more than 8 heads), landing
                // zone = cylinders, sectors per track.
                block = [
                    c_lo,
                    c_hi,
                    heads.min(255) as u8,
                    0xFF,
                    0xFF,
                    0xC0 | if heads > 8 { 0x08 } else { 0 },
                    c_lo,
                    c_hi,
                    sectors.min(255) as u8,
                ];
            }
            self.cmos[usize::from(ext)] = if geometry.is_some() { HD_TYPE_USER } else { 0 };
            let at = usize::from(params);
            self.cmos[at..at + 9].copy_from_slice(&block);
        }
        self.update_checksum();
    }

    /// Store a configuration byte (disk types, boot order, ...) for firmware to read.
    /// The clock registers 0x00-0x0D are left to the guest and ignored here; writes to
    /// 0x10-0x2D update the checksum.
    pub fn cmos_write_raw(&mut self, index: u8, value: u8) {
        let index = index & INDEX_ADDRESS;
        if index <= REG_D {
            return;
        }
        self.cmos[usize::from(index)] = value;
        if (0x10..=0x2D).contains(&index) {
            self.update_checksum();
        }
    }

    /// A CMOS byte as stored (clock registers as last frozen or written).
    pub fn cmos_read_raw(&self, index: u8) -> u8 {
        self.cmos[usize::from(index & INDEX_ADDRESS)]
    }

    fn reg(&self, index: u8) -> u8 {
        self.cmos[usize::from(index & INDEX_ADDRESS)]
    }

    fn update_checksum(&mut self) {
        let sum: u16 = self.cmos[0x10..=0x2D].iter().map(|&b| u16::from(b)).sum();
        let [lo, hi] = sum.to_le_bytes();
        self.cmos[usize::from(CMOS_CHECKSUM_HI)] = hi;
        self.cmos[usize::from(CMOS_CHECKSUM_LO)] = lo;
    }

    /// Register C as read: IRQF is set when any flag is set together with its enable.
    fn reg_c(&self) -> u8 {
        let b = self.reg(REG_B);
        let enabled = self.flags
            & ((if b & REG_B_PIE != 0 { REG_C_PF } else { 0 })
                | (if b & REG_B_AIE != 0 { REG_C_AF } else { 0 })
                | (if b & REG_B_UIE != 0 { REG_C_UF } else { 0 }));
        if enabled != 0 {
            self.flags | REG_C_IRQF
        } else {
            self.flags
        }
    }

    fn divider_running(&self) -> bool {
        self.reg(REG_A) & REG_A_DIVIDER_RESET != REG_A_DIVIDER_RESET
    }

    /// Whether the time registers advance (divider running and SET clear).
    fn clock_running(&self) -> bool {
        self.divider_running() && self.reg(REG_B) & REG_B_SET == 0
    }

    /// Whole seconds of the divider timeline at `now`.
    fn second_index(&self, now: Nanos) -> i64 {
        (now.saturating_add(self.phase_ns) / NANOS_PER_SECOND) as i64
    }

    /// 32.768 kHz cycles of the divider timeline at `now`.
    fn divider_cycles(&self, now: Nanos) -> u64 {
        let timeline = u128::from(now.saturating_add(self.phase_ns));
        (timeline * u128::from(TIME_BASE_HZ) / u128::from(NANOS_PER_SECOND)) as u64
    }

    /// The periodic interrupt period in time-base cycles (table 5): RS = 0 is off,
    /// RS 1 and 2 repeat RS 8 and 9, otherwise 2^(RS-1) cycles.
    fn periodic_cycles(&self) -> u64 {
        match self.reg(REG_A) & REG_A_RATE {
            0 => 0,
            1 => 1 << 7,
            2 => 1 << 8,
            rs => 1 << (rs - 1),
        }
    }

    fn unix_at(&self, now: Nanos) -> i64 {
        self.epoch.saturating_add(self.second_index(now))
    }

    fn binary_mode(&self) -> bool {
        self.reg(REG_B) & REG_B_DM_BINARY != 0
    }

    fn encode(&self, value: u8) -> u8 {
        if self.binary_mode() {
            value
        } else {
            ((value / 10) << 4) | (value % 10)
        }
    }

    /// BCD digits above 9 are taken at face value so any guest byte decodes.
    fn decode(&self, raw: u8) -> u8 {
        if self.binary_mode() {
            raw
        } else {
            (raw >> 4) * 10 + (raw & 0x0F)
        }
    }

    /// The hours register encoding: 12-hour mode stores 1-12 with bit 7 = PM.
    fn encode_hour(&self, hour: u8) -> u8 {
        if self.reg(REG_B) & REG_B_24_HOUR != 0 {
            return self.encode(hour);
        }
        let twelve = match hour % 12 {
            0 => 12,
            h => h,
        };
        let pm = if hour >= 12 { HOURS_PM } else { 0 };
        self.encode(twelve) | pm
    }

    fn decode_hour(&self, raw: u8) -> u8 {
        if self.reg(REG_B) & REG_B_24_HOUR != 0 {
            return self.decode(raw);
        }
        let hour = self.decode(raw & !HOURS_PM) % 12;
        if raw & HOURS_PM != 0 {
            hour + 12
        } else {
            hour
        }
    }

    /// The value of clock register `index` (0x00-0x09 without the alarms, or the
    /// century) for calendar time `time`, in the current DM and 24/12 format.
    fn render(&self, time: &CalendarTime, index: u8) -> u8 {
        match index {
            REG_SECONDS => self.encode(time.second),
            REG_MINUTES => self.encode(time.minute),
            REG_HOURS => self.encode_hour(time.hour),
            REG_DAY_OF_WEEK => self.encode(time.day_of_week),
            REG_DAY_OF_MONTH => self.encode(time.day),
            REG_MONTH => self.encode(time.month),
            REG_YEAR => self.encode(time.year),
            _ => self.encode(time.century),
        }
    }

    fn is_time_register(index: u8) -> bool {
        matches!(
            index,
            REG_SECONDS
                | REG_MINUTES
                | REG_HOURS
                | REG_DAY_OF_WEEK
                | REG_DAY_OF_MONTH
                | REG_MONTH
                | REG_YEAR
                | CMOS_CENTURY
        )
    }

    /// Write the calendar time into the clock registers (used when the clock stops).
    fn store_time(&mut self, time: CalendarTime) {
        for index in [
            REG_SECONDS,
            REG_MINUTES,
            REG_HOURS,
            REG_DAY_OF_WEEK,
            REG_DAY_OF_MONTH,
            REG_MONTH,
            REG_YEAR,
            CMOS_CENTURY,
        ] {
            self.cmos[usize::from(index)] = self.render(&time, index);
        }
    }

    /// The calendar time the clock registers hold.
    fn stored_time(&self) -> CalendarTime {
        let century = match self.decode(self.reg(CMOS_CENTURY)) {
            // A guest that never set the century register means the 20xx century.
            0 => 20,
            c => c,
        };
        CalendarTime {
            second: self.decode(self.reg(REG_SECONDS)),
            minute: self.decode(self.reg(REG_MINUTES)),
            hour: self.decode_hour(self.reg(REG_HOURS)),
            day_of_week: self.decode(self.reg(REG_DAY_OF_WEEK)),
            day: self.decode(self.reg(REG_DAY_OF_MONTH)),
            month: self.decode(self.reg(REG_MONTH)),
            year: self.decode(self.reg(REG_YEAR)),
            century,
        }
    }

    /// Restart the clock from the registers' time at `now`.
    fn restart_from_registers(&mut self, now: Nanos) {
        self.epoch = self
            .stored_time()
            .to_unix()
            .saturating_sub(self.second_index(now));
    }

    /// Whether the alarm registers match calendar time `time`.
    fn alarm_matches(&self, time: &CalendarTime) -> bool {
        [
            (REG_SECONDS_ALARM, self.encode(time.second)),
            (REG_MINUTES_ALARM, self.encode(time.minute)),
            (REG_HOURS_ALARM, self.encode_hour(time.hour)),
        ]
        .iter()
        .all(|&(alarm, current)| {
            let alarm = self.reg(alarm);
            alarm & ALARM_DONT_CARE == ALARM_DONT_CARE || alarm == current
        })
    }

    /// Set PF for periodic ticks and UF/AF for update cycles in (synced_to, now].
    fn sync(&mut self, now: Nanos) {
        if now <= self.synced_to {
            return;
        }
        let last = self.synced_to;
        self.synced_to = now;
        if !self.divider_running() {
            return;
        }
        let rate = self.periodic_cycles();
        if rate > 0 && self.divider_cycles(now) / rate > self.divider_cycles(last) / rate {
            self.flags |= REG_C_PF;
        }
        if !self.clock_running() {
            return;
        }
        let (from, to) = (self.second_index(last), self.second_index(now));
        if to > from {
            self.flags |= REG_C_UF;
            let first = (from + 1).max(to - ALARM_LOOKBACK_SECONDS + 1);
            for second in first..=to {
                let time = CalendarTime::from_unix(self.epoch.saturating_add(second));
                if self.alarm_matches(&time) {
                    self.flags |= REG_C_AF;
                    break;
                }
            }
        }
    }

    /// UIP: high for the 244 us before each update while the clock runs.
    fn update_in_progress(&self, now: Nanos) -> bool {
        let into_second = now.saturating_add(self.phase_ns) % NANOS_PER_SECOND;
        self.clock_running() && into_second >= NANOS_PER_SECOND - UIP_LEAD_NS
    }

    fn read_register(&mut self, index: u8, now: Nanos) -> u8 {
        self.sync(now);
        match index {
            REG_A => {
                let a = self.reg(REG_A) & !REG_A_UIP;
                if self.update_in_progress(now) {
                    a | REG_A_UIP
                } else {
                    a
                }
            }
            REG_C => {
                // Reading register C clears all flags and releases IRQ8.
                let c = self.reg_c();
                self.flags = 0;
                c
            }
            REG_D => REG_D_VRT,
            i if Self::is_time_register(i) && self.clock_running() => {
                self.render(&CalendarTime::from_unix(self.unix_at(now)), i)
            }
            i => self.reg(i),
        }
    }

    fn write_register(&mut self, index: u8, value: u8, now: Nanos) {
        self.sync(now);
        let slot = usize::from(index & INDEX_ADDRESS);
        match index {
            REG_A => {
                let was_running = self.divider_running();
                if was_running && self.clock_running() {
                    self.store_time(CalendarTime::from_unix(self.unix_at(now)));
                }
                self.cmos[slot] = value & !REG_A_UIP;
                let running = self.divider_running();
                if !was_running && running {
                    // The first update comes 500 ms after the divider leaves reset.
                    let target = NANOS_PER_SECOND - FIRST_UPDATE_AFTER_RESET_NS;
                    let into = now % NANOS_PER_SECOND;
                    self.phase_ns = (target + NANOS_PER_SECOND - into) % NANOS_PER_SECOND;
                }
                if self.clock_running() && !(was_running && running) {
                    self.restart_from_registers(now);
                }
            }
            REG_B => {
                let was_running = self.clock_running();
                if was_running {
                    self.store_time(CalendarTime::from_unix(self.unix_at(now)));
                }
                let mut value = value;
                if value & REG_B_SET != 0 {
                    // Setting SET aborts any update and clears UIE.
                    value &= !REG_B_UIE;
                }
                self.cmos[slot] = value;
                // A DM or 24/12 change needs nothing more: while the clock runs the
                // registers are rendered from the time in the new format.
                if self.clock_running() && !was_running {
                    self.restart_from_registers(now);
                }
            }
            REG_C | REG_D => {}
            i if Self::is_time_register(i) => {
                if self.clock_running() {
                    self.store_time(CalendarTime::from_unix(self.unix_at(now)));
                    self.cmos[slot] = value;
                    self.restart_from_registers(now);
                } else {
                    self.cmos[slot] = value;
                }
            }
            _ => self.cmos[slot] = value,
        }
    }
}

impl PortDevice for Rtc {
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32 {
        let byte = match port {
            PORT_DATA => self.read_register(self.index, now),
            // Port 0x70 is write only.
            _ => 0xFF,
        };
        // An 8-bit device: the upper bytes of a wider access are not driven.
        let _ = size;
        u32::from(byte) | 0xFFFF_FF00
    }

    /// Only the low byte of a wider write reaches the chip.
    fn io_write(&mut self, port: u16, _size: u8, value: u32, now: Nanos) {
        let value = value as u8;
        match port {
            PORT_INDEX => {
                self.index = value & INDEX_ADDRESS;
                self.nmi_masked = value & INDEX_NMI_MASK != 0;
            }
            PORT_DATA => self.write_register(self.index, value, now),
            _ => {}
        }
    }
}

impl super::Device for Rtc {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "mc146818rtc"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default().ports(0x70..=0x71).irq(8)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        let v = PortDevice::io_read(self, port, size, cx.now);
        cx.set_irq(8, self.irq());
        v
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        cx.set_irq(8, self.irq());
        cx.replan();
    }
    fn advance(&mut self, cx: &mut super::Ctx) {
        Rtc::advance(self, cx.now);
        cx.set_irq(8, self.irq());
    }
    fn next_deadline(&self) -> Option<Nanos> {
        Rtc::next_deadline(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NANOS_PER_SECOND;

    fn read(rtc: &mut Rtc, index: u8, now: Nanos) -> u8 {
        rtc.io_write(PORT_INDEX, 1, u32::from(index), now);
        rtc.io_read(PORT_DATA, 1, now) as u8
    }

    fn write(rtc: &mut Rtc, index: u8, value: u8, now: Nanos) {
        rtc.io_write(PORT_INDEX, 1, u32::from(index), now);
        rtc.io_write(PORT_DATA, 1, u32::from(value), now);
    }

    /// (century, year, month, day, hour, minute, second, day of week) as read.
    fn clock(rtc: &mut Rtc, now: Nanos) -> [u8; 8] {
        [
            CMOS_CENTURY,
            REG_YEAR,
            REG_MONTH,
            REG_DAY_OF_MONTH,
            REG_HOURS,
            REG_MINUTES,
            REG_SECONDS,
            REG_DAY_OF_WEEK,
        ]
        .map(|i| read(rtc, i, now))
    }

    #[test]
    fn civil_conversions_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 11_016, 19_781, 47_482, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn reads_base_time_in_bcd() {
        // 2026-11-24 13:45:30 UTC, a Tuesday.
        let mut rtc = Rtc::new(1_795_527_930);
        assert_eq!(
            clock(&mut rtc, 0),
            [0x20, 0x26, 0x11, 0x24, 0x13, 0x45, 0x30, 3]
        );
        assert_eq!(read(&mut rtc, REG_SECONDS, 29 * SEC + 999), 0x59);
        assert_eq!(read(&mut rtc, REG_SECONDS, 30 * SEC), 0x00);
        assert_eq!(read(&mut rtc, REG_MINUTES, 30 * SEC), 0x46);
        assert_eq!(read(&mut rtc, REG_D, 0), REG_D_VRT);
        assert_eq!(read(&mut rtc, REG_A, 0), REG_A_DEFAULT);
    }

    #[test]
    fn rollover_carries_through_leap_day_and_year_and_century() {
        // 2024-02-28 23:59:58 -> 02-29 (leap year) two seconds later.
        let mut rtc = Rtc::new(1_709_164_798);
        assert_eq!(
            clock(&mut rtc, 2 * SEC),
            [0x20, 0x24, 0x02, 0x29, 0x00, 0x00, 0x00, 5]
        );
        // 2023 is not a leap year.
        let mut rtc = Rtc::new(1_677_628_799);
        assert_eq!(
            clock(&mut rtc, SEC),
            [0x20, 0x23, 0x03, 0x01, 0x00, 0x00, 0x00, 4]
        );
        // 2000 is a leap year (divisible by 400).
        let mut rtc = Rtc::new(951_782_399);
        assert_eq!(clock(&mut rtc, SEC)[2..4], [0x02, 0x29]);
        // 1999-12-31 23:59:59 -> 2000-01-01 (century register 0x19 -> 0x20).
        let mut rtc = Rtc::new(946_684_799);
        assert_eq!(clock(&mut rtc, 0)[..2], [0x19, 0x99]);
        assert_eq!(
            clock(&mut rtc, SEC),
            [0x20, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 7]
        );
        // 2099-12-31 23:59:59 -> 2100-01-01.
        let mut rtc = Rtc::new(4_102_444_799);
        assert_eq!(
            clock(&mut rtc, SEC),
            [0x21, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 6]
        );
        // 2100 is not a leap year (divisible by 100, not 400).
        let mut rtc = Rtc::new(4_107_542_399);
        assert_eq!(clock(&mut rtc, SEC)[2..4], [0x03, 0x01]);
    }

    #[test]
    fn uip_is_high_for_244us_before_each_update() {
        let mut rtc = Rtc::new(1_795_527_930);
        assert_eq!(read(&mut rtc, REG_A, SEC - UIP_LEAD_NS - 1) & REG_A_UIP, 0);
        assert_ne!(read(&mut rtc, REG_A, SEC - UIP_LEAD_NS) & REG_A_UIP, 0);
        assert_ne!(read(&mut rtc, REG_A, SEC - 1) & REG_A_UIP, 0);
        assert_eq!(read(&mut rtc, REG_SECONDS, SEC - 1), 0x30);
        assert_eq!(read(&mut rtc, REG_A, SEC) & REG_A_UIP, 0);
        assert_eq!(read(&mut rtc, REG_SECONDS, SEC), 0x31);
        // SET stops updates, so UIP stays low.
        write(&mut rtc, REG_B, REG_B_SET | REG_B_24_HOUR, SEC);
        assert_eq!(read(&mut rtc, REG_A, 2 * SEC - 1) & REG_A_UIP, 0);
    }

    #[test]
    fn binary_mode_and_12_hour_mode() {
        let mut rtc = Rtc::new(1_795_527_930); // 13:45:30
        write(&mut rtc, REG_B, REG_B_24_HOUR | REG_B_DM_BINARY, 0);
        assert_eq!(clock(&mut rtc, 0), [20, 26, 11, 24, 13, 45, 30, 3]);
        write(&mut rtc, REG_B, REG_B_DM_BINARY, 0);
        assert_eq!(read(&mut rtc, REG_HOURS, 0), HOURS_PM | 1);
        write(&mut rtc, REG_B, 0, 0);
        assert_eq!(read(&mut rtc, REG_HOURS, 0), HOURS_PM | 0x01);
        // 23:xx -> 11 PM, midnight -> 12 AM, noon -> 12 PM.
        assert_eq!(read(&mut rtc, REG_HOURS, 10 * 3600 * SEC), HOURS_PM | 0x11);
        assert_eq!(read(&mut rtc, REG_HOURS, 11 * 3600 * SEC), 0x12);
        assert_eq!(read(&mut rtc, REG_HOURS, 23 * 3600 * SEC), HOURS_PM | 0x12);
        assert_eq!(read(&mut rtc, REG_HOURS, 22 * 3600 * SEC), 0x11);
    }

    #[test]
    fn guest_sets_time_with_set_bit() {
        let mut rtc = Rtc::new(1_795_527_930);
        write(&mut rtc, REG_B, REG_B_SET | REG_B_24_HOUR, 5 * SEC);
        let frozen = clock(&mut rtc, 5 * SEC);
        assert_eq!(clock(&mut rtc, 50 * SEC), frozen, "SET freezes the clock");
        // Set 1999-12-31 23:59:59, a Friday.
        for (index, value) in [
            (CMOS_CENTURY, 0x19),
            (REG_YEAR, 0x99),
            (REG_MONTH, 0x12),
            (REG_DAY_OF_MONTH, 0x31),
            (REG_HOURS, 0x23),
            (REG_MINUTES, 0x59),
            (REG_SECONDS, 0x59),
            (REG_DAY_OF_WEEK, 6),
        ] {
            write(&mut rtc, index, value, 50 * SEC);
        }
        write(&mut rtc, REG_B, REG_B_24_HOUR, 50 * SEC + SEC / 2);
        assert_eq!(read(&mut rtc, REG_SECONDS, 50 * SEC + SEC / 2), 0x59);
        assert_eq!(
            clock(&mut rtc, 52 * SEC),
            [0x20, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 7]
        );
    }

    #[test]
    fn writing_a_time_register_while_running_moves_the_clock() {
        let mut rtc = Rtc::new(1_795_527_930); // 13:45:30
        write(&mut rtc, REG_HOURS, 0x08, 0);
        assert_eq!(read(&mut rtc, REG_HOURS, 0), 0x08);
        assert_eq!(read(&mut rtc, REG_MINUTES, 0), 0x45);
        assert_eq!(read(&mut rtc, REG_SECONDS, 3 * SEC), 0x33);
    }

    #[test]
    fn periodic_interrupt_at_1024_hz() {
        let mut rtc = Rtc::new(0);
        assert_eq!(rtc.next_deadline(), None, "no interrupt enabled");
        write(&mut rtc, REG_B, REG_B_24_HOUR | REG_B_PIE, 0);
        // RS = 0110: 976.5625 us.
        assert_eq!(rtc.next_deadline(), Some(976_563));
        rtc.advance(976_562);
        assert!(!rtc.irq());
        rtc.advance(976_563);
        assert!(rtc.irq());
        let mut count = 1;
        assert_eq!(read(&mut rtc, REG_C, 976_563), REG_C_IRQF | REG_C_PF);
        assert!(!rtc.irq());
        while let Some(deadline) = rtc.next_deadline() {
            if deadline > SEC {
                break;
            }
            rtc.advance(deadline);
            assert!(rtc.irq());
            count += 1;
            rtc.io_write(PORT_INDEX, 1, u32::from(REG_C), deadline);
            rtc.io_read(PORT_DATA, 1, deadline);
        }
        assert_eq!(count, 1024);
    }

    #[test]
    fn periodic_rate_table() {
        let mut rtc = Rtc::new(0);
        for (rs, period_ns) in [
            (1u8, 3_906_250u64),
            (2, 7_812_500),
            (3, 122_071),
            (8, 3_906_250),
            (15, 500_000_000),
        ] {
            write(&mut rtc, REG_A, 0b0010_0000 | rs, 0);
            write(&mut rtc, REG_B, REG_B_24_HOUR | REG_B_PIE, 0);
            assert_eq!(rtc.next_deadline(), Some(period_ns), "RS {rs}");
        }
        write(&mut rtc, REG_A, 0b0010_0000, 0);
        assert_eq!(
            rtc.next_deadline(),
            None,
            "RS 0 disables the periodic interrupt"
        );
    }

    #[test]
    fn pf_is_set_even_without_pie_but_irq_stays_low() {
        let mut rtc = Rtc::new(0);
        rtc.advance(SEC);
        assert!(!rtc.irq());
        assert_eq!(read(&mut rtc, REG_C, SEC), REG_C_PF | REG_C_UF);
    }

    #[test]
    fn alarm_fires_at_matching_time_and_dont_care() {
        let mut rtc = Rtc::new(1_795_527_930); // 13:45:30
                                               // RS = 0: no periodic flag, so register C shows only UF and AF.
        write(&mut rtc, REG_A, 0b0010_0000, 0);
        write(&mut rtc, REG_SECONDS_ALARM, 0x35, 0);
        write(&mut rtc, REG_MINUTES_ALARM, 0x45, 0);
        write(&mut rtc, REG_HOURS_ALARM, 0x13, 0);
        write(&mut rtc, REG_B, REG_B_24_HOUR | REG_B_AIE, 0);
        assert_eq!(rtc.next_deadline(), Some(SEC));
        rtc.advance(4 * SEC);
        assert!(!rtc.irq());
        assert_eq!(read(&mut rtc, REG_C, 4 * SEC), REG_C_UF, "UF without UIE");
        rtc.advance(5 * SEC);
        assert!(rtc.irq());
        assert_eq!(
            read(&mut rtc, REG_C, 5 * SEC),
            REG_C_IRQF | REG_C_AF | REG_C_UF
        );
        assert!(!rtc.irq());
        // Don't-care hours and minutes: every minute at second 35.
        write(&mut rtc, REG_HOURS_ALARM, 0xC0, 5 * SEC);
        write(&mut rtc, REG_MINUTES_ALARM, 0xFF, 5 * SEC);
        rtc.advance(64 * SEC);
        assert!(!rtc.irq());
        rtc.advance(65 * SEC);
        assert!(rtc.irq());
        // All three don't-care: once a second.
        read(&mut rtc, REG_C, 65 * SEC);
        write(&mut rtc, REG_SECONDS_ALARM, 0xC0, 65 * SEC);
        rtc.advance(66 * SEC);
        assert!(rtc.irq());
    }

    #[test]
    fn update_ended_interrupt_and_read_to_clear() {
        let mut rtc = Rtc::new(0);
        write(&mut rtc, REG_B, REG_B_24_HOUR | REG_B_UIE, SEC / 2);
        assert_eq!(rtc.next_deadline(), Some(SEC));
        rtc.advance(SEC - 1);
        assert!(!rtc.irq());
        rtc.advance(SEC);
        assert!(rtc.irq());
        assert_eq!(rtc.next_deadline(), None, "UF already set");
        assert_ne!(read(&mut rtc, REG_C, SEC) & REG_C_UF, 0);
        assert!(!rtc.irq());
        assert_eq!(
            read(&mut rtc, REG_C, SEC) & REG_C_UF,
            0,
            "cleared by the read"
        );
        assert_eq!(rtc.next_deadline(), Some(2 * SEC));
        // Setting SET clears UIE.
        write(&mut rtc, REG_B, REG_B_SET | REG_B_UIE | REG_B_24_HOUR, SEC);
        assert_eq!(read(&mut rtc, REG_B, SEC) & REG_B_UIE, 0);
    }

    #[test]
    fn divider_reset_stops_clock_and_first_update_is_500ms_after_release() {
        let mut rtc = Rtc::new(1_795_527_930);
        write(&mut rtc, REG_A, 0b0111_0110, SEC / 4); // DV = 111
        assert_eq!(read(&mut rtc, REG_SECONDS, 10 * SEC), 0x30);
        write(&mut rtc, REG_A, REG_A_DEFAULT, 10 * SEC + SEC / 10);
        assert_eq!(
            read(&mut rtc, REG_SECONDS, 10 * SEC + SEC / 10 + SEC / 2 - 1),
            0x30
        );
        assert_eq!(
            read(&mut rtc, REG_SECONDS, 10 * SEC + SEC / 10 + SEC / 2),
            0x31
        );
    }

    #[test]
    fn nmi_mask_and_index() {
        let mut rtc = Rtc::new(0);
        rtc.io_write(PORT_INDEX, 1, u32::from(INDEX_NMI_MASK | REG_D), 0);
        assert!(rtc.nmi_masked());
        assert_eq!(rtc.io_read(PORT_DATA, 1, 0) as u8, REG_D_VRT);
        rtc.io_write(PORT_INDEX, 1, 0x20, 0);
        assert!(!rtc.nmi_masked());
        rtc.io_write(PORT_DATA, 1, 0x5A, 0);
        assert_eq!(read(&mut rtc, 0x20, 0), 0x5A);
        assert_eq!(rtc.io_read(PORT_INDEX, 1, 0), 0xFFFF_FFFF);
    }

    fn checksum_ok(rtc: &Rtc) -> bool {
        let sum: u16 = (0x10..=0x2D).map(|i| u16::from(rtc.cmos_read_raw(i))).sum();
        sum == u16::from_be_bytes([
            rtc.cmos_read_raw(CMOS_CHECKSUM_HI),
            rtc.cmos_read_raw(CMOS_CHECKSUM_LO),
        ])
    }

    fn word(rtc: &Rtc, lo: u8) -> u16 {
        u16::from_le_bytes([rtc.cmos_read_raw(lo), rtc.cmos_read_raw(lo + 1)])
    }

    #[test]
    fn memory_size_fields_for_256_mib() {
        let mut rtc = Rtc::new(0);
        rtc.set_memory_size(256 * MIB);
        assert_eq!(word(&rtc, CMOS_BASE_MEM_LO), 640);
        assert_eq!(word(&rtc, CMOS_EXT_MEM_LO), 0xFFFF, "255 MiB capped");
        assert_eq!(word(&rtc, CMOS_EXT_MEM_POST_LO), 0xFFFF);
        assert_eq!(word(&rtc, CMOS_MEM_ABOVE_16M_LO), 240 * 16);
        assert_eq!(rtc.cmos_read_raw(CMOS_MEM_ABOVE_4G), 0);
        assert_eq!(rtc.cmos_read_raw(CMOS_EQUIPMENT), EQUIPMENT_DEFAULT);
        assert!(checksum_ok(&rtc));
        let mut small = Rtc::new(0);
        small.set_memory_size(32 * MIB);
        assert_eq!(word(&small, CMOS_EXT_MEM_LO), 31 * 1024);
        assert_eq!(word(&small, CMOS_MEM_ABOVE_16M_LO), 256);
        assert!(checksum_ok(&small));
    }

    #[test]
    fn memory_size_fields_for_4_gib_and_above() {
        let mut rtc = Rtc::new(0);
        rtc.set_memory_size(4 * GIB);
        assert_eq!(word(&rtc, CMOS_MEM_ABOVE_16M_LO), 0xFF00);
        assert_eq!(word(&rtc, CMOS_EXT_MEM_LO), 0xFFFF);
        assert_eq!(rtc.cmos_read_raw(0x5B), 0);
        rtc.set_memory_size(6 * GIB);
        assert_eq!(word(&rtc, CMOS_MEM_ABOVE_16M_LO), 0xFF00);
        // 2 GiB / 64 KiB = 0x8000.
        assert_eq!(
            [0x5B, 0x5C, 0x5D].map(|i| rtc.cmos_read_raw(i)),
            [0x00, 0x80, 0x00]
        );
        assert!(checksum_ok(&rtc));
    }

    #[test]
    fn boot_order_and_hard_disk_fields_follow_the_at_layout() {
        let mut rtc = Rtc::new(0);
        rtc.set_boot_order(BOOT_HARD_DISK, BOOT_FLOPPY, BOOT_CDROM);
        assert_eq!(rtc.cmos_read_raw(CMOS_BOOT_ORDER_12), 0x12);
        assert_eq!(rtc.cmos_read_raw(CMOS_BOOT_ORDER_3) & 0xF0, 0x30);
        rtc.set_hard_disk(0, Some((130, 16, 63)));
        rtc.set_hard_disk(3, Some((16383, 16, 63)));
        assert_eq!(rtc.cmos_read_raw(CMOS_HD_TYPES), 0xF0);
        assert_eq!(rtc.cmos_read_raw(CMOS_HD0_EXT_TYPE), 47);
        let p: Vec<u8> = (0..9)
            .map(|i| rtc.cmos_read_raw(CMOS_HD0_PARAMS + i))
            .collect();
        assert_eq!(p, [130, 0, 16, 0xFF, 0xFF, 0xC8, 130, 0, 63]);
        assert_eq!(
            rtc.cmos_read_raw(CMOS_ATA_TRANSLATION),
            0b01_00_00_00,
            "drive 3 (> 1024 cylinders) uses LBA translation"
        );
        let sum: u16 = (0x10..=0x2D).map(|i| u16::from(rtc.cmos_read_raw(i))).sum();
        let stored = u16::from_be_bytes([
            rtc.cmos_read_raw(CMOS_CHECKSUM_HI),
            rtc.cmos_read_raw(CMOS_CHECKSUM_LO),
        ]);
        assert_eq!(sum, stored, "checksum covers the disk fields");
        rtc.set_hard_disk(0, None);
        assert_eq!(rtc.cmos_read_raw(CMOS_HD_TYPES), 0);
        assert_eq!(rtc.cmos_read_raw(CMOS_HD0_EXT_TYPE), 0);
    }

    #[test]
    fn raw_writes_keep_checksum_and_spare_clock_registers() {
        let mut rtc = Rtc::new(0);
        rtc.cmos_write_raw(0x12, 0xF0);
        rtc.cmos_write_raw(0x3D, 0x21);
        assert!(checksum_ok(&rtc));
        assert_eq!(read(&mut rtc, 0x12, 0), 0xF0);
        assert_eq!(read(&mut rtc, 0x3D, 0), 0x21);
        rtc.cmos_write_raw(REG_B, 0xFF);
        assert_eq!(read(&mut rtc, REG_B, 0), REG_B_DEFAULT);
    }

    #[test]
    fn any_guest_access_never_panics() {
        let mut rtc = Rtc::new(i64::MAX / 4);
        let mut now = 0;
        for index in 0..=255u8 {
            for value in [0u8, 0x0F, 0x7F, 0x80, 0x99, 0xC0, 0xFF] {
                write(&mut rtc, index, value, now);
                let _ = read(&mut rtc, index, now);
                now += 123_457_001;
                rtc.advance(now);
                let _ = rtc.next_deadline();
            }
        }
        let mut rtc = Rtc::new(i64::MIN / 4);
        rtc.advance(u64::MAX);
        let _ = read(&mut rtc, REG_SECONDS, u64::MAX);
        let _ = rtc.next_deadline();
    }
}
