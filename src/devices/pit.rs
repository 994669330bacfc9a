//! Intel 8254 programmable interval timer (ports 0x40-0x43) and the PC/AT system
//! control port B (port 0x61), which holds the channel-2 gate and the speaker enable
//! and reads back OUT2 and the refresh-request toggle.
//!
//! Source: Intel 8254 datasheet (order 231164): "Control Word Format", "Write
//! Operations", "Read Operations" (counter latch command, read-back command, status
//! byte), "Mode Definitions" (modes 0-5 and their GATE and new-count behaviour).
//!
//! Counters are not ticked: each counter remembers the clock tick at which its
//! counting element (CE) was loaded and computes its count and OUT from the current
//! tick on demand. One tick is one 1.193182 MHz input clock derived from virtual time.
//!
//! The machine calls [`Pit::advance`] when virtual time reaches [`Pit::next_deadline`]
//! (and may call it at any time); for every channel-0 OUT rising edge it reports, the
//! machine pulses IRQ0 on the PIC.

use super::{Nanos, PortDevice};

/// The 8254 input clock on the PC: 14.31818 MHz / 12.
pub const PIT_CLOCK_HZ: u64 = 1_193_182;
/// Counter 0 (system timer, IRQ0).
pub const PORT_COUNTER0: u16 = 0x40;
/// Counter 1 (DRAM refresh on the original AT).
pub const PORT_COUNTER1: u16 = 0x41;
/// Counter 2 (speaker, gate from port 0x61).
pub const PORT_COUNTER2: u16 = 0x42;
/// Control word register (write only).
pub const PORT_CONTROL: u16 = 0x43;
/// System control port B.
pub const PORT_SYSTEM_CONTROL_B: u16 = 0x61;

/// Control word SC1-SC0: the counter selected, or 11 for read-back.
const CW_SELECT: u8 = 0b1100_0000;
const CW_SELECT_READ_BACK: u8 = 0b1100_0000;
/// Control word RW1-RW0: 00 is the counter latch command.
const CW_ACCESS: u8 = 0b0011_0000;
const CW_ACCESS_LATCH: u8 = 0b0000_0000;
const CW_ACCESS_LSB: u8 = 0b0001_0000;
const CW_ACCESS_MSB: u8 = 0b0010_0000;
/// Control word M2-M0.
const CW_MODE: u8 = 0b0000_1110;
/// Control word BCD.
const CW_BCD: u8 = 0b0000_0001;
/// Read-back COUNT bit (active low): latch the count of the selected counters.
const RB_NOT_COUNT: u8 = 0b0010_0000;
/// Read-back STATUS bit (active low): latch the status of the selected counters.
const RB_NOT_STATUS: u8 = 0b0001_0000;
/// Read-back CNT2..CNT0 select bits start here (bit 1 = counter 0).
const RB_COUNTER0: u8 = 0b0000_0010;
/// Status byte OUTPUT bit.
const STATUS_OUTPUT: u8 = 0b1000_0000;
/// Status byte NULL COUNT bit.
const STATUS_NULL_COUNT: u8 = 0b0100_0000;
/// Status byte bits 5-0 echo the control word's RW, M and BCD fields.
const STATUS_PROGRAMMED: u8 = 0b0011_1111;

/// Port 0x61 bit 0: counter-2 GATE.
pub const SCB_TIMER2_GATE: u8 = 0b0000_0001;
/// Port 0x61 bit 1: speaker data enable (OUT2 AND this bit drives the speaker).
pub const SCB_SPEAKER_DATA: u8 = 0b0000_0010;
/// Port 0x61 bits 2-3: parity / channel check enables (read back as written).
const SCB_WRITABLE: u8 = 0b0000_1111;
/// Port 0x61 bit 4: refresh request, toggles every refresh cycle.
pub const SCB_REFRESH_TOGGLE: u8 = 0b0001_0000;
/// Port 0x61 bit 5: OUT2 as seen by software.
pub const SCB_OUT2: u8 = 0b0010_0000;
/// The refresh-request bit flips every 15.085 us (counter 1 programmed for 18 clocks).
const REFRESH_TOGGLE_NS: u64 = 15_085;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The number of input clock edges seen by virtual time `now`.
fn ticks_at(now: Nanos) -> u64 {
    let ticks = u128::from(now) * u128::from(PIT_CLOCK_HZ) / NANOS_PER_SECOND;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// The earliest virtual time at which `ticks_at` reaches `tick`.
fn time_of_tick(tick: u64) -> Nanos {
    let hz = u128::from(PIT_CLOCK_HZ);
    let ns = (u128::from(tick) * NANOS_PER_SECOND).div_ceil(hz);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Four BCD digits to binary; nibbles above 9 are taken at face value so any guest
/// value yields a number (the datasheet leaves them undefined).
fn bcd_to_binary(raw: u16) -> u32 {
    let mut value = 0u32;
    for shift in [12u32, 8, 4, 0] {
        value = value * 10 + u32::from((raw >> shift) & 0xF);
    }
    value
}

fn binary_to_bcd(value: u32) -> u16 {
    let mut value = value % 10_000;
    let mut raw = 0u16;
    for shift in [0u32, 4, 8, 12] {
        raw |= ((value % 10) as u16) << shift;
        value /= 10;
    }
    raw
}

/// Which bytes of the count the programmed RW field transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Access {
    Lsb,
    Msb,
    LsbThenMsb,
}

/// A count written while modes 2/3 were counting: loaded into the CE at the end of
/// the current period (mode 2) or half-cycle (mode 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PendingReload {
    at: u64,
    n: u32,
    phase: u64,
}

/// The counting element's timeline: it held `n` at tick `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Run {
    start: u64,
    n: u32,
    /// Mode 3 only: clocks already spent in the square wave at `start` (a count loaded
    /// at the end of a high half-cycle starts with the low half).
    phase: u64,
}

/// One of the three counters.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Counter {
    mode: u8,
    bcd: bool,
    access: Access,
    /// Control word bits 5-0, echoed in the status byte.
    programmed: u8,
    /// Write flip-flop for LSB-then-MSB access: the next data write is the MSB.
    write_msb_next: bool,
    /// The LSB written first.
    cr_lsb: u8,
    /// Read flip-flop for LSB-then-MSB access of the live count.
    read_msb_next: bool,
    /// Output latch (OL) after a counter latch / read-back count command.
    count_latch: Option<u16>,
    latch_msb_next: bool,
    /// Status latched by a read-back command.
    status_latch: Option<u8>,
    /// The count register (CR) in clocks (1..=65536, or 1..=10000 in BCD).
    cr_n: u32,
    /// A count has been written since the last control word.
    cr_written: bool,
    /// `None` until the CE is loaded (after the control word; while mode 0 awaits its
    /// MSB; modes 1/5 before their first trigger).
    run: Option<Run>,
    pending: Option<PendingReload>,
    /// CE value shown while `run` is `None` or not yet started.
    held_count: u32,
    /// Elapsed clocks frozen while GATE is low (modes 0, 2, 3, 4 stop counting).
    paused: Option<u64>,
    gate: bool,
    /// NULL COUNT is 1 until this tick (the CR-to-CE transfer).
    null_until: u64,
}

impl Counter {
    fn new() -> Self {
        Counter {
            mode: 0,
            bcd: false,
            access: Access::LsbThenMsb,
            programmed: 0b0011_0000,
            write_msb_next: false,
            cr_lsb: 0,
            read_msb_next: false,
            count_latch: None,
            latch_msb_next: false,
            status_latch: None,
            cr_n: 65_536,
            cr_written: false,
            run: None,
            pending: None,
            held_count: 0,
            paused: None,
            gate: true,
            null_until: u64::MAX,
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            65_536
        }
    }

    /// The timeline in force at tick `t` (a pending reload takes over at its tick).
    fn run_at(&self, t: u64) -> Option<Run> {
        match self.pending {
            Some(p) if t >= p.at => Some(Run {
                start: p.at,
                n: p.n,
                phase: p.phase,
            }),
            _ => self.run,
        }
    }

    /// Apply a pending reload whose tick has passed.
    fn catch_up(&mut self, t: u64) {
        if let Some(p) = self.pending {
            if t >= p.at {
                self.run = self.run_at(t);
                self.pending = None;
            }
        }
    }

    /// Clocks counted since the CE was loaded, or `None` before the load.
    fn elapsed(&self, run: Run, t: u64) -> Option<u64> {
        if let Some(e) = self.paused {
            return Some(e);
        }
        t.checked_sub(run.start)
    }

    /// Mode 3 half-cycle lengths: high for (N+1)/2 clocks, low for N/2 (datasheet
    /// "Mode 3": odd counts are high one clock longer).
    fn mode3_high_len(n: u32) -> u64 {
        u64::from(n).div_ceil(2)
    }

    /// The OUT pin at tick `t`.
    fn out_at(&self, t: u64) -> bool {
        let Some(run) = self.run_at(t) else {
            // Initial OUT after a control word: low in mode 0, high otherwise.
            return self.mode != 0;
        };
        let n = u64::from(run.n);
        match self.mode {
            0 => self.elapsed(run, t).is_some_and(|e| e >= n),
            1 => self.elapsed(run, t).is_none_or(|e| e >= n),
            // Mode 2: low for the one clock at count 1 (always low for the illegal
            // count 1, which then never produces a rising edge); GATE low forces high.
            2 => !self.gate || self.elapsed(run, t).is_none_or(|e| e % n != n - 1),
            3 => {
                if !self.gate {
                    return true;
                }
                self.elapsed(run, t)
                    .is_none_or(|e| (e + run.phase) % n < Self::mode3_high_len(run.n))
            }
            // Modes 4 and 5: one clock low when the count reaches zero.
            _ => self.elapsed(run, t).is_none_or(|e| e != n),
        }
    }

    /// The CE contents at tick `t` (0 stands for 65536 / 10000).
    fn count_at(&self, t: u64) -> u32 {
        let Some(run) = self.run_at(t) else {
            return self.held_count;
        };
        let Some(e) = self.elapsed(run, t) else {
            return self.held_count;
        };
        let n = u64::from(run.n);
        let modulus = u64::from(self.modulus());
        let value = match self.mode {
            2 => n - e % n,
            3 => {
                // The CE is loaded with N (N-1 for odd N) and counts down by two in
                // each half-cycle.
                let base = n & !1;
                let p = (e + run.phase) % n;
                let high = Self::mode3_high_len(run.n);
                let q = if p < high { p } else { p - high };
                base.saturating_sub(2 * q)
            }
            // Modes 0, 1, 4, 5 keep counting (wrapping) after terminal count.
            _ => (n + modulus - e % modulus) % modulus,
        };
        (value % modulus) as u32
    }

    /// The count as the guest reads it (BCD-encoded in BCD mode).
    fn readable_count(&self, t: u64) -> u16 {
        let count = self.count_at(t);
        if self.bcd {
            binary_to_bcd(count)
        } else {
            count as u16
        }
    }

    fn null_count(&self, t: u64) -> bool {
        t < self.null_until
    }

    fn status(&self, t: u64) -> u8 {
        let mut status = self.programmed & STATUS_PROGRAMMED;
        if self.out_at(t) {
            status |= STATUS_OUTPUT;
        }
        if self.null_count(t) {
            status |= STATUS_NULL_COUNT;
        }
        status
    }

    /// The first tick after `t` at which OUT rises, for the timeline `run` alone.
    fn next_rise_in_run(&self, run: Run, t: u64) -> Option<u64> {
        if self.paused.is_some() || !self.gate && matches!(self.mode, 2 | 3) {
            return None;
        }
        let n = u64::from(run.n);
        let one_shot = match self.mode {
            0 | 1 => Some(run.start + n),
            4 | 5 => Some(run.start + n + 1),
            _ => None,
        };
        if let Some(edge) = one_shot {
            return (edge > t).then_some(edge);
        }
        if n < 2 {
            return None;
        }
        // Periodic modes: OUT rises where (elapsed + phase) is a multiple of N.
        let e = t.saturating_sub(run.start);
        let k = if t < run.start {
            1
        } else {
            (e + run.phase) / n + 1
        };
        Some(run.start + k * n - run.phase)
    }

    /// The first tick after `t` at which OUT rises.
    fn next_rise(&self, t: u64) -> Option<u64> {
        let run = self.run_at(t)?;
        let edge = self.next_rise_in_run(run, t);
        match self.pending {
            Some(p) if t < p.at && edge.is_none_or(|e| e > p.at) => {
                let new_run = Run {
                    start: p.at,
                    n: p.n,
                    phase: p.phase,
                };
                self.next_rise_in_run(new_run, p.at)
            }
            _ => edge,
        }
    }

    /// The number of OUT rising edges in ticks (a, b].
    fn rises_between(&self, a: u64, b: u64) -> u64 {
        let mut count = 0u64;
        let mut cursor = a;
        while cursor < b {
            let Some(run) = self.run_at(cursor) else {
                return count;
            };
            let n = u64::from(run.n);
            let periodic = matches!(self.mode, 2 | 3) && n >= 2 && self.gate;
            let segment_end = match self.pending {
                Some(p) if cursor < p.at => b.min(p.at),
                _ => b,
            };
            if periodic && self.paused.is_none() {
                // Edges at elapsed + phase = k * N, k >= 1.
                let rises_to = |x: u64| {
                    if x < run.start {
                        0
                    } else {
                        (x - run.start + run.phase) / n
                    }
                };
                count += rises_to(segment_end) - rises_to(cursor);
            } else if let Some(edge) = self.next_rise_in_run(run, cursor) {
                if edge <= segment_end {
                    count += 1;
                }
            }
            cursor = segment_end;
        }
        count
    }

    fn write_control(&mut self, value: u8, t: u64) {
        self.catch_up(t);
        self.held_count = self.count_at(t);
        let mode = (value & CW_MODE) >> 1;
        // Modes 6 and 7 are aliases of 2 and 3 (M2 is a don't-care for them).
        self.mode = if mode >= 6 { mode - 4 } else { mode };
        self.bcd = value & CW_BCD != 0;
        self.access = match value & CW_ACCESS {
            CW_ACCESS_LSB => Access::Lsb,
            CW_ACCESS_MSB => Access::Msb,
            _ => Access::LsbThenMsb,
        };
        self.programmed = value & STATUS_PROGRAMMED;
        self.write_msb_next = false;
        self.read_msb_next = false;
        self.count_latch = None;
        self.latch_msb_next = false;
        self.status_latch = None;
        self.cr_written = false;
        self.run = None;
        self.pending = None;
        self.paused = None;
        self.null_until = u64::MAX;
    }

    fn write_data(&mut self, value: u8, t: u64) {
        self.catch_up(t);
        match self.access {
            Access::Lsb => self.load(u16::from(value), t),
            Access::Msb => self.load(u16::from(value) << 8, t),
            Access::LsbThenMsb => {
                if self.write_msb_next {
                    self.write_msb_next = false;
                    self.load(u16::from(self.cr_lsb) | u16::from(value) << 8, t);
                } else {
                    self.write_msb_next = true;
                    self.cr_lsb = value;
                    if self.mode == 0 {
                        // Mode 0: writing the first byte stops counting and sets OUT
                        // low immediately.
                        self.held_count = self.count_at(t);
                        self.run = None;
                        self.paused = None;
                        self.null_until = u64::MAX;
                    }
                }
            }
        }
    }

    /// A complete count was written to CR at tick `t`.
    fn load(&mut self, raw: u16, t: u64) {
        let n = if self.bcd {
            bcd_to_binary(raw)
        } else {
            u32::from(raw)
        };
        let n = if n == 0 { self.modulus() } else { n };
        let was_written = self.cr_written;
        self.cr_n = n;
        self.cr_written = true;
        let fresh = Run {
            start: t + 1,
            n,
            phase: 0,
        };
        match self.mode {
            // Modes 0 and 4: the new count is loaded on the next clock.
            0 | 4 => {
                self.held_count = self.count_at(t);
                self.run = Some(fresh);
                self.paused = (!self.gate).then_some(0);
                self.null_until = t + 1;
            }
            // Modes 1 and 5: the count waits for a GATE trigger.
            1 | 5 => {}
            // Modes 2 and 3: the first count starts on the next clock; later counts
            // wait for the end of the current period / half-cycle.
            _ => match self.run {
                Some(run) if was_written && self.gate && t >= run.start => {
                    let e = t - run.start;
                    let old_n = u64::from(run.n);
                    let pending = if self.mode == 2 {
                        PendingReload {
                            at: run.start + (e / old_n + 1) * old_n,
                            n,
                            phase: 0,
                        }
                    } else {
                        let p = (e + run.phase) % old_n;
                        let high = Self::mode3_high_len(run.n);
                        if p < high {
                            PendingReload {
                                at: t + (high - p),
                                n,
                                phase: Self::mode3_high_len(n),
                            }
                        } else {
                            PendingReload {
                                at: t + (old_n - p),
                                n,
                                phase: 0,
                            }
                        }
                    };
                    self.null_until = pending.at;
                    self.pending = Some(pending);
                }
                _ => {
                    self.held_count = self.count_at(t);
                    self.run = Some(fresh);
                    self.pending = None;
                    self.paused = (!self.gate).then_some(0);
                    self.null_until = t + 1;
                }
            },
        }
    }

    fn set_gate(&mut self, level: bool, t: u64) {
        self.catch_up(t);
        if level == self.gate {
            return;
        }
        let run = self.run_at(t);
        if level {
            self.gate = true;
            match self.mode {
                // Modes 0 and 4 resume counting.
                0 | 4 => {
                    if let (Some(e), Some(run)) = (self.paused.take(), run) {
                        self.run = Some(Run {
                            start: t.saturating_sub(e),
                            ..run
                        });
                    }
                }
                // Modes 1, 2, 3, 5: a rising GATE reloads CR on the next clock.
                _ => {
                    if self.cr_written {
                        self.paused = None;
                        self.pending = None;
                        self.held_count = self.count_at(t);
                        self.run = Some(Run {
                            start: t + 1,
                            n: self.cr_n,
                            phase: 0,
                        });
                        self.null_until = t + 1;
                    }
                }
            }
        } else {
            if matches!(self.mode, 0 | 2 | 3 | 4) {
                if let Some(run) = run {
                    self.paused = Some(self.elapsed(run, t).unwrap_or(0));
                    self.run = Some(run);
                    self.pending = None;
                }
            }
            self.gate = false;
        }
    }

    fn latch_count(&mut self, t: u64) {
        // A second latch before the first is read is ignored.
        if self.count_latch.is_none() {
            self.count_latch = Some(self.readable_count(t));
            self.latch_msb_next = false;
        }
    }

    fn latch_status(&mut self, t: u64) {
        if self.status_latch.is_none() {
            self.status_latch = Some(self.status(t));
        }
    }

    fn read(&mut self, t: u64) -> u8 {
        self.catch_up(t);
        if let Some(status) = self.status_latch.take() {
            return status;
        }
        if let Some(latched) = self.count_latch {
            let [lsb, msb] = latched.to_le_bytes();
            return match self.access {
                Access::Lsb => {
                    self.count_latch = None;
                    lsb
                }
                Access::Msb => {
                    self.count_latch = None;
                    msb
                }
                Access::LsbThenMsb => {
                    if self.latch_msb_next {
                        self.count_latch = None;
                        self.latch_msb_next = false;
                        msb
                    } else {
                        self.latch_msb_next = true;
                        lsb
                    }
                }
            };
        }
        let [lsb, msb] = self.readable_count(t).to_le_bytes();
        match self.access {
            Access::Lsb => lsb,
            Access::Msb => msb,
            Access::LsbThenMsb => {
                self.read_msb_next = !self.read_msb_next;
                if self.read_msb_next {
                    lsb
                } else {
                    msb
                }
            }
        }
    }
}

/// The 8254 and port 0x61.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Pit {
    counters: [Counter; 3],
    /// Port 0x61 bits 0-3 as last written.
    port_b: u8,
    /// The tick up to which channel-0 edges have been reported by `advance`.
    advanced_to: u64,
    /// Channel-0 edges that happened before a reprogramming and not yet reported.
    unreported_edges: u64,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// Power-on state: every counter unprogrammed (no OUT edges until firmware writes
    /// a control word and count), channel-2 gate low, speaker off.
    pub fn new() -> Self {
        let mut pit = Pit {
            counters: [Counter::new(), Counter::new(), Counter::new()],
            port_b: 0,
            advanced_to: 0,
            unreported_edges: 0,
        };
        pit.counters[2].gate = false;
        pit
    }

    /// OUT of `channel` (0..=2) at `now`; false for other channels.
    pub fn out(&self, channel: usize, now: Nanos) -> bool {
        self.counters
            .get(channel)
            .is_some_and(|c| c.out_at(ticks_at(now)))
    }

    /// Virtual time of the next channel-0 OUT rising edge not yet reported by
    /// [`Pit::advance`] (possibly already past), or `None` if none is coming.
    pub fn next_deadline(&self) -> Option<Nanos> {
        if self.unreported_edges > 0 {
            return Some(time_of_tick(self.advanced_to));
        }
        self.counters[0]
            .next_rise(self.advanced_to)
            .map(time_of_tick)
    }

    /// Channel-0 OUT rising edges since the previous call (saturated to u32). The
    /// machine pulses IRQ0 when this is non-zero.
    pub fn advance(&mut self, now: Nanos) -> u32 {
        self.account_channel0(ticks_at(now));
        let edges = std::mem::take(&mut self.unreported_edges);
        u32::try_from(edges).unwrap_or(u32::MAX)
    }

    /// Record channel-0 edges up to tick `t` (before it is reprogrammed, so edges of
    /// the old programming are not lost).
    fn account_channel0(&mut self, t: u64) {
        if t > self.advanced_to {
            let edges = self.counters[0].rises_between(self.advanced_to, t);
            self.unreported_edges = self.unreported_edges.saturating_add(edges);
            self.advanced_to = t;
        }
        self.counters[0].catch_up(t);
    }

    /// Control word register: counter programming, counter latch, read-back.
    fn write_control(&mut self, value: u8, t: u64) {
        if value & CW_SELECT == CW_SELECT_READ_BACK {
            for (i, counter) in self.counters.iter_mut().enumerate() {
                if value & (RB_COUNTER0 << i) == 0 {
                    continue;
                }
                counter.catch_up(t);
                if value & RB_NOT_STATUS == 0 {
                    counter.latch_status(t);
                }
                if value & RB_NOT_COUNT == 0 {
                    counter.latch_count(t);
                }
            }
            return;
        }
        let index = usize::from(value >> 6);
        if value & CW_ACCESS == CW_ACCESS_LATCH {
            if let Some(counter) = self.counters.get_mut(index) {
                counter.catch_up(t);
                counter.latch_count(t);
            }
            return;
        }
        if let Some(counter) = self.counters.get_mut(index) {
            counter.write_control(value, t);
        }
    }

    fn read_port_b(&self, now: Nanos) -> u8 {
        let mut value = self.port_b & SCB_WRITABLE;
        if (now / REFRESH_TOGGLE_NS) & 1 != 0 {
            value |= SCB_REFRESH_TOGGLE;
        }
        if self.out(2, now) {
            value |= SCB_OUT2;
        }
        value
    }

    fn read_byte(&mut self, port: u16, now: Nanos) -> u8 {
        let t = ticks_at(now);
        // Channel-0 edges of the timeline before this access are counted before any
        // access can reprogram it or apply a pending reload.
        self.account_channel0(t);
        match port {
            PORT_COUNTER0..=PORT_COUNTER2 => self
                .counters
                .get_mut(usize::from(port - PORT_COUNTER0))
                .map_or(0xFF, |c| c.read(t)),
            PORT_SYSTEM_CONTROL_B => self.read_port_b(now),
            // The control register is write only.
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8, now: Nanos) {
        let t = ticks_at(now);
        self.account_channel0(t);
        match port {
            PORT_COUNTER0..=PORT_COUNTER2 => {
                if let Some(counter) = self.counters.get_mut(usize::from(port - PORT_COUNTER0)) {
                    counter.write_data(value, t);
                }
            }
            PORT_CONTROL => self.write_control(value, t),
            PORT_SYSTEM_CONTROL_B => {
                self.port_b = value & SCB_WRITABLE;
                self.counters[2].set_gate(value & SCB_TIMER2_GATE != 0, t);
            }
            _ => {}
        }
    }
}

impl PortDevice for Pit {
    /// Wider accesses are split into byte cycles at consecutive ports (8-bit device).
    fn io_read(&mut self, port: u16, size: u8, now: Nanos) -> u32 {
        let mut value = 0u32;
        for i in 0..u16::from(size.clamp(1, 4)) {
            value |= u32::from(self.read_byte(port.wrapping_add(i), now)) << (8 * i);
        }
        match size {
            1 => value | 0xFFFF_FF00,
            2 => value | 0xFFFF_0000,
            _ => value,
        }
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32, now: Nanos) {
        for i in 0..u16::from(size.clamp(1, 4)) {
            self.write_byte(port.wrapping_add(i), (value >> (8 * i)) as u8, now);
        }
    }
}

/// The 8254's ports: counters and control word at 40h-43h, and port 61h
/// (speaker gate/data, channel 2 OUT), which the PC wires to it.
impl super::Device for Pit {
    crate::devices::plain_state!();
    fn name(&self) -> &'static str {
        "isa-pit"
    }
    fn resources(&self) -> super::Resources {
        super::Resources::default()
            .ports(0x40..=0x43)
            .ports(0x61..=0x61)
            .irq(0)
    }
    fn io_read(&mut self, port: u16, size: u8, cx: &mut super::Ctx) -> u32 {
        PortDevice::io_read(self, port, size, cx.now)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32, cx: &mut super::Ctx) {
        PortDevice::io_write(self, port, size, value, cx.now);
        // Reprogramming may move the next deadline: re-plan.
        cx.replan();
    }
    /// Channel 0's OUT rising edges become IRQ0 edges (they reach the PIC as
    /// one, as its IRR holds only one; the platform counts the rest).
    fn advance(&mut self, cx: &mut super::Ctx) {
        let edges = Pit::advance(self, cx.now);
        cx.pulse_irq_n(0, edges);
    }
    fn next_deadline(&self) -> Option<Nanos> {
        Pit::next_deadline(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Virtual time of input clock `tick`.
    fn at(tick: u64) -> Nanos {
        time_of_tick(tick)
    }

    fn out(pit: &mut Pit, port: u16, value: u8, tick: u64) {
        pit.io_write(port, 1, u32::from(value), at(tick));
    }

    fn inb(pit: &mut Pit, port: u16, tick: u64) -> u8 {
        pit.io_read(port, 1, at(tick)) as u8
    }

    /// Program counter `ch` with `mode`, LSB-then-MSB access, at `tick`.
    fn program(pit: &mut Pit, ch: u8, mode: u8, count: u16, tick: u64) {
        out(pit, PORT_CONTROL, ch << 6 | 0b0011_0000 | mode << 1, tick);
        let [lsb, msb] = count.to_le_bytes();
        out(pit, PORT_COUNTER0 + u16::from(ch), lsb, tick);
        out(pit, PORT_COUNTER0 + u16::from(ch), msb, tick);
    }

    /// Latch and read counter `ch` at `tick`.
    fn latched(pit: &mut Pit, ch: u8, tick: u64) -> u16 {
        out(pit, PORT_CONTROL, ch << 6, tick);
        let port = PORT_COUNTER0 + u16::from(ch);
        let lsb = inb(pit, port, tick);
        let msb = inb(pit, port, tick);
        u16::from_le_bytes([lsb, msb])
    }

    #[test]
    fn tick_conversion_round_trips() {
        for tick in [0u64, 1, 2, 1_193_182, 123_456_789] {
            assert_eq!(ticks_at(time_of_tick(tick)), tick);
            assert_eq!(ticks_at(time_of_tick(tick + 1) - 1), tick);
        }
        assert_eq!(ticks_at(1_000_000_000), PIT_CLOCK_HZ);
    }

    #[test]
    fn mode2_period_and_counts() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 100, 0);
        // CE loaded on the clock after the write: 100 at tick 1, 1 at tick 100.
        assert_eq!(latched(&mut pit, 0, 1), 100);
        assert_eq!(latched(&mut pit, 0, 50), 51);
        assert_eq!(latched(&mut pit, 0, 100), 1);
        assert!(!pit.out(0, at(100)), "OUT low for the clock at count 1");
        assert!(pit.out(0, at(99)));
        assert!(pit.out(0, at(101)));
        assert_eq!(pit.advance(at(100)), 0);
        assert_eq!(pit.next_deadline(), Some(at(101)));
        assert_eq!(latched(&mut pit, 0, 101), 100, "reloaded");
        assert_eq!(pit.advance(at(101)), 1);
        assert_eq!(pit.next_deadline(), Some(at(201)));
        assert_eq!(pit.advance(at(1001)), 9);
        assert_eq!(pit.next_deadline(), Some(at(1101)));
    }

    #[test]
    fn mode2_18_2_hz_default_timer() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 0, 0); // 65536
        assert_eq!(pit.advance(1_000_000_000), 18);
        assert_eq!(pit.next_deadline(), Some(at(1 + 19 * 65_536)));
    }

    #[test]
    fn mode3_square_wave_even_and_odd() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 3, 10, 0);
        // High for 5 clocks (ticks 1..=5), low for 5 (6..=10), high again at 11.
        assert!(pit.out(0, at(5)));
        assert!(!pit.out(0, at(6)));
        assert!(!pit.out(0, at(10)));
        assert!(pit.out(0, at(11)));
        assert_eq!(latched(&mut pit, 0, 1), 10);
        assert_eq!(latched(&mut pit, 0, 3), 6, "counts down by two");
        assert_eq!(latched(&mut pit, 0, 7), 8);
        assert_eq!(pit.advance(at(101)), 10);

        program(&mut pit, 1, 3, 5, 200);
        // Odd: high (5+1)/2 = 3 clocks, low 2.
        let outs: Vec<bool> = (201..=211).map(|t| pit.out(1, at(t))).collect();
        assert_eq!(
            outs,
            [true, true, true, false, false, true, true, true, false, false, true]
        );
    }

    #[test]
    fn mode0_terminal_count_and_wrap() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0, 50, 0);
        assert!(!pit.out(0, at(0)));
        assert!(!pit.out(0, at(50)));
        assert!(pit.out(0, at(51)), "OUT high when the count reaches 0");
        assert_eq!(pit.next_deadline(), Some(at(51)));
        assert_eq!(pit.advance(at(10_000)), 1);
        assert_eq!(pit.next_deadline(), None, "one shot");
        assert_eq!(latched(&mut pit, 0, 52), 0xFFFF, "keeps counting after 0");
        assert!(pit.out(0, at(70_000)), "OUT stays high");
    }

    #[test]
    fn mode0_first_byte_stops_counting_and_lowers_out() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0, 10, 0);
        assert!(pit.out(0, at(20)));
        out(&mut pit, PORT_COUNTER0, 100, 20);
        assert!(!pit.out(0, at(20)));
        assert!(
            !pit.out(0, at(500)),
            "no counting while waiting for the MSB"
        );
        out(&mut pit, PORT_COUNTER0, 0, 500);
        assert!(!pit.out(0, at(600)));
        assert!(pit.out(0, at(601)));
    }

    #[test]
    fn mode0_gate_low_pauses_counting() {
        let mut pit = Pit::new();
        out(&mut pit, PORT_SYSTEM_CONTROL_B, SCB_TIMER2_GATE, 0);
        program(&mut pit, 2, 0, 100, 0);
        assert_eq!(latched(&mut pit, 2, 11), 90);
        out(&mut pit, PORT_SYSTEM_CONTROL_B, 0, 11);
        assert_eq!(latched(&mut pit, 2, 500), 90);
        out(&mut pit, PORT_SYSTEM_CONTROL_B, SCB_TIMER2_GATE, 500);
        assert_eq!(latched(&mut pit, 2, 510), 80);
        assert!(!pit.out(2, at(589)));
        assert!(pit.out(2, at(590)));
    }

    #[test]
    fn bcd_counting() {
        let mut pit = Pit::new();
        out(&mut pit, PORT_CONTROL, 0b0011_0101, 0); // ch0, mode 2, BCD
        out(&mut pit, PORT_COUNTER0, 0x00, 0);
        out(&mut pit, PORT_COUNTER0, 0x10, 0); // 1000 decimal
        assert_eq!(latched(&mut pit, 0, 1), 0x1000);
        assert_eq!(latched(&mut pit, 0, 2), 0x0999);
        assert_eq!(latched(&mut pit, 0, 1000), 0x0001);
        assert_eq!(pit.advance(at(1 + 10 * 1000)), 10);
        // BCD count 0 means 10000.
        program(&mut pit, 1, 0, 0, 0);
        out(&mut pit, PORT_CONTROL, 0b0111_0001, 0);
        out(&mut pit, PORT_COUNTER1, 0, 0);
        out(&mut pit, PORT_COUNTER1, 0, 0);
        assert_eq!(latched(&mut pit, 1, 2), 0x9999);
        assert!(!pit.out(1, at(10_000)));
        assert!(pit.out(1, at(10_001)));
    }

    #[test]
    fn lsb_only_and_msb_only_access() {
        let mut pit = Pit::new();
        out(&mut pit, PORT_CONTROL, 0b0001_0100, 0); // ch0 LSB only, mode 2
        out(&mut pit, PORT_COUNTER0, 200, 0);
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 51), 150);
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 52), 149);
        out(&mut pit, PORT_CONTROL, 0b0110_0100, 0); // ch1 MSB only, mode 2
        out(&mut pit, PORT_COUNTER1, 0x12, 0);
        assert_eq!(inb(&mut pit, PORT_COUNTER1, 1), 0x12);
        assert_eq!(latched_single(&mut pit, 1, 0x101), 0x11);
    }

    fn latched_single(pit: &mut Pit, ch: u8, tick: u64) -> u8 {
        out(pit, PORT_CONTROL, ch << 6, tick);
        inb(pit, PORT_COUNTER0 + u16::from(ch), tick)
    }

    #[test]
    fn latch_holds_value_and_ignores_second_latch() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 1000, 0);
        out(&mut pit, PORT_CONTROL, 0x00, 101); // count 900
        out(&mut pit, PORT_CONTROL, 0x00, 301); // ignored
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 500), 0x84);
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 600), 0x03);
        // Unlatched reads are live again, with the read flip-flop.
        let lsb = inb(&mut pit, PORT_COUNTER0, 701);
        let msb = inb(&mut pit, PORT_COUNTER0, 701);
        assert_eq!(u16::from_le_bytes([lsb, msb]), 300);
    }

    #[test]
    fn read_back_status_and_count_of_several_channels() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 1000, 0);
        out(&mut pit, PORT_CONTROL, 0b1001_0000, 0); // ch2 mode 0 LSB only
                                                     // Status only, counters 0 and 2, before channel 2 has a count.
        out(&mut pit, PORT_CONTROL, 0b1110_1010, 0);
        assert_eq!(
            inb(&mut pit, PORT_COUNTER0, 0),
            STATUS_OUTPUT | STATUS_NULL_COUNT | 0b11_0100,
            "count not yet transferred at tick 0"
        );
        assert_eq!(
            inb(&mut pit, PORT_COUNTER2, 0),
            STATUS_NULL_COUNT | 0b01_0000
        );
        // Count and status of counter 0 at tick 11: status first, then the count.
        out(&mut pit, PORT_CONTROL, 0b1100_0010, 11);
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 40), STATUS_OUTPUT | 0b11_0100);
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 40), 0xDE); // 990 = 0x3DE
        assert_eq!(inb(&mut pit, PORT_COUNTER0, 40), 0x03);
        // Count only of counters 0 and 1.
        program(&mut pit, 1, 2, 500, 0);
        out(&mut pit, PORT_CONTROL, 0b1101_0110, 101);
        assert_eq!(latched_pair(&mut pit, PORT_COUNTER0, 900), 900);
        assert_eq!(latched_pair(&mut pit, PORT_COUNTER1, 900), 400);
    }

    fn latched_pair(pit: &mut Pit, port: u16, tick: u64) -> u16 {
        let lsb = inb(pit, port, tick);
        let msb = inb(pit, port, tick);
        u16::from_le_bytes([lsb, msb])
    }

    #[test]
    fn mode2_new_count_takes_effect_at_end_of_period() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 100, 0);
        program_count_only(&mut pit, 50, 30);
        assert_eq!(latched(&mut pit, 0, 31), 70, "current period unaffected");
        // Status shows NULL COUNT until the reload at tick 101.
        out(&mut pit, PORT_CONTROL, 0b1110_0010, 60);
        assert_ne!(inb(&mut pit, PORT_COUNTER0, 60) & STATUS_NULL_COUNT, 0);
        assert_eq!(pit.advance(at(100)), 0);
        assert_eq!(pit.next_deadline(), Some(at(101)));
        assert_eq!(latched(&mut pit, 0, 101), 50);
        assert_eq!(pit.advance(at(101)), 1);
        assert_eq!(pit.next_deadline(), Some(at(151)));
        assert_eq!(pit.advance(at(251)), 3);
    }

    fn program_count_only(pit: &mut Pit, count: u16, tick: u64) {
        let [lsb, msb] = count.to_le_bytes();
        out(pit, PORT_COUNTER0, lsb, tick);
        out(pit, PORT_COUNTER0, msb, tick);
    }

    #[test]
    fn mode3_new_count_takes_effect_at_end_of_half_cycle() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 3, 100, 0);
        // Tick 10 is in the high half (ticks 1..=50); the new count loads at tick 51
        // and starts with its low half of 10 clocks.
        program_count_only(&mut pit, 20, 10);
        assert!(pit.out(0, at(50)));
        assert!(!pit.out(0, at(51)));
        assert!(!pit.out(0, at(60)));
        assert!(pit.out(0, at(61)));
        assert_eq!(pit.next_deadline(), Some(at(61)));
        assert_eq!(pit.advance(at(61)), 1);
        assert_eq!(pit.advance(at(101)), 2);
    }

    #[test]
    fn mode4_strobe_and_reload_on_write() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 4, 10, 0);
        assert!(pit.out(0, at(10)));
        assert!(!pit.out(0, at(11)), "one clock low at count 0");
        assert!(pit.out(0, at(12)));
        assert_eq!(pit.advance(at(12)), 1);
        // A new count restarts counting on the next clock.
        program_count_only(&mut pit, 5, 20);
        assert!(!pit.out(0, at(26)));
        assert_eq!(pit.advance(at(100)), 1);
    }

    #[test]
    fn mode1_and_mode5_gate_triggered() {
        let mut pit = Pit::new();
        program(&mut pit, 2, 1, 10, 0);
        assert!(pit.out(2, at(5)), "OUT high until triggered");
        out(&mut pit, PORT_SYSTEM_CONTROL_B, SCB_TIMER2_GATE, 5);
        assert!(!pit.out(2, at(6)));
        assert!(!pit.out(2, at(15)));
        assert!(pit.out(2, at(16)));
        // Retrigger restarts the one-shot.
        out(&mut pit, PORT_SYSTEM_CONTROL_B, 0, 20);
        out(&mut pit, PORT_SYSTEM_CONTROL_B, SCB_TIMER2_GATE, 21);
        assert!(!pit.out(2, at(22)));

        out(&mut pit, PORT_SYSTEM_CONTROL_B, 0, 100);
        program(&mut pit, 2, 5, 4, 100);
        assert!(pit.out(2, at(150)), "no strobe before the trigger");
        out(&mut pit, PORT_SYSTEM_CONTROL_B, SCB_TIMER2_GATE, 150);
        assert!(pit.out(2, at(154)));
        assert!(!pit.out(2, at(155)));
        assert!(pit.out(2, at(156)));
    }

    #[test]
    fn port61_out2_follows_gate_in_mode3() {
        let mut pit = Pit::new();
        program(&mut pit, 2, 3, 20, 0);
        // Gate low: mode 3 holds OUT high and does not count.
        assert_ne!(inb(&mut pit, PORT_SYSTEM_CONTROL_B, 15) & SCB_OUT2, 0);
        out(
            &mut pit,
            PORT_SYSTEM_CONTROL_B,
            SCB_TIMER2_GATE | SCB_SPEAKER_DATA,
            100,
        );
        let b = inb(&mut pit, PORT_SYSTEM_CONTROL_B, 105);
        assert_eq!(b & SCB_WRITABLE, SCB_TIMER2_GATE | SCB_SPEAKER_DATA);
        assert_ne!(b & SCB_OUT2, 0);
        assert_eq!(inb(&mut pit, PORT_SYSTEM_CONTROL_B, 111) & SCB_OUT2, 0);
        assert_ne!(inb(&mut pit, PORT_SYSTEM_CONTROL_B, 121) & SCB_OUT2, 0);
        // Gate low forces OUT high at once.
        out(&mut pit, PORT_SYSTEM_CONTROL_B, 0, 115);
        assert_ne!(inb(&mut pit, PORT_SYSTEM_CONTROL_B, 116) & SCB_OUT2, 0);
    }

    #[test]
    fn port61_linux_calibration_pattern() {
        // Linux pit_calibrate: gate on, speaker off, ch2 mode 0, count 0xFFFF,
        // then poll OUT2 while reading the MSB.
        let mut pit = Pit::new();
        out(&mut pit, PORT_SYSTEM_CONTROL_B, SCB_TIMER2_GATE, 0);
        out(&mut pit, PORT_CONTROL, 0b1011_0000, 0);
        out(&mut pit, PORT_COUNTER2, 0xFF, 0);
        out(&mut pit, PORT_COUNTER2, 0xFF, 0);
        assert_eq!(inb(&mut pit, PORT_SYSTEM_CONTROL_B, 0xFFFF) & SCB_OUT2, 0);
        assert_ne!(inb(&mut pit, PORT_SYSTEM_CONTROL_B, 0x10000) & SCB_OUT2, 0);
        let _lsb = inb(&mut pit, PORT_COUNTER2, 0x1001);
        assert_eq!(inb(&mut pit, PORT_COUNTER2, 0x1001), 0xEF); // 0xFFFF - 0x1000
    }

    #[test]
    fn port61_refresh_toggle_flips_every_15085ns() {
        let mut pit = Pit::new();
        let r = |pit: &mut Pit, now| pit.io_read(PORT_SYSTEM_CONTROL_B, 1, now) as u8;
        assert_eq!(r(&mut pit, 0) & SCB_REFRESH_TOGGLE, 0);
        assert_eq!(r(&mut pit, 15_084) & SCB_REFRESH_TOGGLE, 0);
        assert_ne!(r(&mut pit, 15_085) & SCB_REFRESH_TOGGLE, 0);
        assert_eq!(r(&mut pit, 30_170) & SCB_REFRESH_TOGGLE, 0);
    }

    #[test]
    fn reprogramming_keeps_edges_of_old_setting() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 100, 0);
        // Reprogram at tick 350 after 3 edges (101, 201, 301) not yet advanced.
        program(&mut pit, 0, 2, 1000, 350);
        assert_eq!(pit.advance(at(400)), 3);
        assert_eq!(pit.next_deadline(), Some(at(1351)));
    }

    #[test]
    fn any_guest_programming_never_panics() {
        let mut pit = Pit::new();
        let mut now = 0;
        for cw in 0..=255u8 {
            for port in [0x40u16, 0x41, 0x42, 0x43, 0x61, 0x44] {
                for v in [0u8, 1, 2, 0x99, 0xFF] {
                    pit.io_write(PORT_CONTROL, 1, u32::from(cw), now);
                    pit.io_write(port, 1, u32::from(v), now);
                    pit.io_write(port, 2, 0xFFFF, now);
                    now += 997;
                    let _ = pit.io_read(port, 4, now);
                    let _ = pit.next_deadline();
                    let _ = pit.advance(now);
                }
            }
        }
        let _ = pit.advance(u64::MAX);
        let _ = pit.out(7, u64::MAX);
    }
}
