//! Virtual time. The clock is derived from retired guest instructions, so a
//! run is deterministic: the same inputs give the same interrupts at the same
//! instructions. One instruction is `ns_per_insn` nanoseconds of guest time
//! (default 1, a 1 GHz virtual CPU, like QEMU's `-icount shift=0`).

use crate::devices::Nanos;

#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    pub ns_per_insn: u64,
}

impl Default for VirtualClock {
    fn default() -> Self {
        VirtualClock { ns_per_insn: 1 }
    }
}

impl VirtualClock {
    #[inline]
    pub fn now(&self, icount: u64) -> Nanos {
        icount.saturating_mul(self.ns_per_insn)
    }
    /// The first instruction count at which virtual time reaches `t`.
    #[inline]
    pub fn insns_until(&self, t: Nanos) -> u64 {
        t.div_ceil(self.ns_per_insn.max(1))
    }
}

/// The earliest of several optional deadlines.
pub fn earliest(ds: &[Option<Nanos>]) -> Option<Nanos> {
    ds.iter().flatten().copied().min()
}
