//! Guest time, as QEMU keeps it.
//!
//! * **Host** (the default, a person is watching): guest time follows the
//!   host's monotonic clock. A guest that busy-waits on the PIT, RTC or TSC
//!   sees real seconds whether vx86 runs it faster or slower than real time,
//!   and an idle guest sleeps in real time.
//! * **Icount** (`-icount shift=N[,sleep=on|off][,align=on|off]`): guest time
//!   is derived from retired instructions, 2^N ns each, so a run is
//!   deterministic: the same inputs give the same interrupts at the same
//!   instructions. `shift=0,sleep=off` is one nanosecond per instruction with
//!   idle time skipped at once, which every byte-comparing test uses. With
//!   `sleep=on` (QEMU's default) an idle guest waits in real time for its next
//!   timer; with `align=on` a busy guest is also held back so that virtual
//!   time never runs ahead of host time.

use crate::devices::Nanos;
use std::time::Instant;

/// How guest time is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// Guest time is host time since the machine started.
    Host,
    /// Guest time is `icount << shift` nanoseconds.
    Icount { shift: u8, sleep: bool, align: bool },
}

impl ClockMode {
    /// `-icount shift=0,sleep=off`: today's deterministic virtual time, one
    /// nanosecond per instruction, idle time skipped.
    pub const DETERMINISTIC: ClockMode = ClockMode::Icount {
        shift: 0,
        sleep: false,
        align: false,
    };

    /// Parses QEMU's `-icount` argument: `[shift=]N[,sleep=on|off][,align=on|off]`.
    pub fn parse_icount(spec: &str) -> Result<ClockMode, String> {
        let mut shift = None;
        let mut sleep = true;
        let mut align = false;
        for part in spec.split(',') {
            let (k, v) = part.split_once('=').unwrap_or(("shift", part));
            let onoff = |v: &str| match v {
                "on" | "yes" | "true" => Ok(true),
                "off" | "no" | "false" => Ok(false),
                _ => Err(format!("{k}={v}: use on or off")),
            };
            match k {
                "shift" if v == "auto" => {
                    return Err("shift=auto (adaptive) is not supported; use shift=N".into())
                }
                "shift" => match v.parse::<u8>() {
                    Ok(n) if n <= 10 => shift = Some(n),
                    _ => return Err(format!("shift={v}: use a number from 0 to 10")),
                },
                "sleep" => sleep = onoff(v)?,
                "align" => align = onoff(v)?,
                "rr" | "rrfile" | "rrsnapshot" => {
                    return Err(format!("{k}: record/replay is not supported"))
                }
                _ => return Err(format!("{k}: unknown option (shift, sleep, align)")),
            }
        }
        let shift = shift.ok_or("shift=N is required")?;
        if align && !sleep {
            return Err("align=on needs sleep=on".into());
        }
        Ok(ClockMode::Icount {
            shift,
            sleep,
            align,
        })
    }

    pub fn is_deterministic(&self) -> bool {
        matches!(self, ClockMode::Icount { .. })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    pub mode: ClockMode,
    /// Host time at virtual time 0 (host mode).
    start: Instant,
}

impl Default for VirtualClock {
    /// Deterministic time: the library's default, so that embedders and tests
    /// get reproducible runs unless they ask for host time.
    fn default() -> Self {
        VirtualClock::new(ClockMode::DETERMINISTIC)
    }
}

impl VirtualClock {
    pub fn new(mode: ClockMode) -> Self {
        VirtualClock {
            mode,
            start: Instant::now(),
        }
    }

    /// Guest time now, `icount` instructions after reset.
    #[inline]
    pub fn now(&self, icount: u64) -> Nanos {
        match self.mode {
            ClockMode::Icount { shift, .. } => icount.saturating_mul(1 << shift),
            ClockMode::Host => self.start.elapsed().as_nanos() as u64,
        }
    }

    /// Nanoseconds of guest time per instruction (icount modes; 0 for host time).
    pub fn ns_per_insn(&self) -> u64 {
        match self.mode {
            ClockMode::Icount { shift, .. } => 1 << shift,
            ClockMode::Host => 0,
        }
    }

    /// The first instruction count at which virtual time reaches `t` (icount
    /// modes only; in host time it is not known in advance).
    #[inline]
    pub fn insns_until(&self, t: Nanos) -> u64 {
        t.div_ceil(self.ns_per_insn().max(1))
    }

    /// Host time elapsed since the machine started, in nanoseconds.
    pub fn host_elapsed(&self) -> Nanos {
        self.start.elapsed().as_nanos() as u64
    }

    /// Host time that passed while the machine was stopped (a debugger, a
    /// monitor's `stop`) does not count as guest time, as in QEMU: the
    /// guest's timers resume where they stopped.
    pub fn pause(&mut self, stopped: std::time::Duration) {
        self.start += stopped;
    }

    /// Restarts host time at 0 (a machine reset in host mode, or the start of
    /// a run after setup).
    pub fn restart(&mut self) {
        self.start = Instant::now();
    }

    /// Takes `d` of host time out of the guest's clock (host time: the
    /// machine was stopped by the monitor, and guest time stood still).
    pub fn hold(&mut self, d: std::time::Duration) {
        self.start += d;
    }

    /// Host time: continue a clock that had reached `ns` (a snapshot load).
    pub fn resume_at(&mut self, ns: Nanos) {
        let now = Instant::now();
        self.start = now
            .checked_sub(std::time::Duration::from_nanos(ns))
            .unwrap_or(now);
    }
}

/// The earliest of several optional deadlines.
pub fn earliest(ds: &[Option<Nanos>]) -> Option<Nanos> {
    ds.iter().flatten().copied().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icount_specs() {
        assert_eq!(
            ClockMode::parse_icount("shift=0,sleep=off"),
            Ok(ClockMode::DETERMINISTIC)
        );
        assert_eq!(
            ClockMode::parse_icount("3"),
            Ok(ClockMode::Icount {
                shift: 3,
                sleep: true,
                align: false
            })
        );
        assert!(ClockMode::parse_icount("shift=auto").is_err());
        assert!(ClockMode::parse_icount("sleep=off").is_err());
        assert!(ClockMode::parse_icount("shift=0,sleep=off,align=on").is_err());
        assert!(ClockMode::parse_icount("shift=0,bogus=1").is_err());
    }

    #[test]
    fn icount_time_is_exact() {
        let c = VirtualClock::new(ClockMode::Icount {
            shift: 2,
            sleep: false,
            align: false,
        });
        assert_eq!(c.now(10), 40);
        assert_eq!(c.insns_until(41), 11);
    }

    #[test]
    fn host_time_moves() {
        let c = VirtualClock::new(ClockMode::Host);
        let a = c.now(0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now(0) >= a + 2_000_000);
    }
}
