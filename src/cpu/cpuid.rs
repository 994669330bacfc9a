//! CPUID: one consistent feature set that advertises only what vx86
//! implements (SDM Vol. 2A CPUID, Tables 3-8 to 3-20). Vendor string is
//! GenuineIntel because vx86 follows Intel's documented behaviour where
//! vendors differ (e.g. null-selector FS/GS base, SYSRET).

/// CPUID.1:EDX.
pub mod edx1 {
    pub const FPU: u32 = 1 << 0;
    pub const DE: u32 = 1 << 2;
    pub const PSE: u32 = 1 << 3;
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const PAE: u32 = 1 << 6;
    pub const CX8: u32 = 1 << 8;
    /// On-chip APIC: set only while a local APIC exists and is globally
    /// enabled (added by the CPUID handler, which asks the machine).
    pub const APIC: u32 = 1 << 9;
    pub const SEP: u32 = 1 << 11;
    pub const MTRR: u32 = 1 << 12;
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
    pub const PAT: u32 = 1 << 16;
    pub const PSE36: u32 = 1 << 17;
    pub const CLFSH: u32 = 1 << 19;
    pub const MMX: u32 = 1 << 23;
    pub const FXSR: u32 = 1 << 24;
    pub const SSE: u32 = 1 << 25;
    pub const SSE2: u32 = 1 << 26;
}

/// CPUID.1:ECX.
pub mod ecx1 {
    pub const CX16: u32 = 1 << 13;
    /// The local APIC timer's TSC-deadline mode (with the APIC only).
    pub const TSC_DEADLINE: u32 = 1 << 24;
    pub const POPCNT: u32 = 1 << 23;
}

/// CPUID.(EAX=7,ECX=0): structured extended features.
pub mod leaf7 {
    /// EBX bit 9: enhanced REP MOVSB/STOSB. vx86 runs REP MOVS/STOS a page
    /// at a time, so string copies are its fastest copies: Linux and glibc
    /// then pick `rep movsb`/`rep stosb` for memcpy, memset and clear_page.
    pub const EBX_ERMS: u32 = 1 << 9;
    /// EDX bit 4: fast short REP MOVSB (Linux uses `rep movsb` for memcpy).
    pub const EDX_FSRM: u32 = 1 << 4;
    /// EDX bit 29: the IA32_ARCH_CAPABILITIES MSR exists (see
    /// [`super::ARCH_CAPABILITIES`]).
    pub const EDX_ARCH_CAPABILITIES: u32 = 1 << 29;
}

/// IA32_ARCH_CAPABILITIES (MSR 10AH, SDM Vol. 4 Table 2-2): the
/// "not susceptible" bits of every transient-execution attack the MSR
/// enumerates. vx86 executes nothing speculatively (one instruction retires
/// before the next begins, and there are no fill buffers, store buffers or
/// branch predictors whose contents a guest could sample), so each statement
/// is true of it. Without them a guest kernel assumes the worst of a family-6
/// Intel CPU: Linux turns on page-table isolation (two CR3 writes, so two TLB
/// flushes, on every system call and interrupt), VERW buffer clearing on every
/// return to user space and the branch-history clearing loop on every system
/// call; QEMU's default CPU (an AMD vendor string) never gets them.
pub const ARCH_CAPABILITIES: u64 = {
    const RDCL_NO: u64 = 1 << 0; // Meltdown (rogue data cache load)
    const SSB_NO: u64 = 1 << 4; // speculative store bypass
    const MDS_NO: u64 = 1 << 5; // microarchitectural data sampling
    const PSCHANGE_MC_NO: u64 = 1 << 6; // page-size-change machine check
    const TAA_NO: u64 = 1 << 8; // TSX asynchronous abort
    const SBDR_SSDP_NO: u64 = 1 << 13; // MMIO stale data: shared buffers
    const FBSDP_NO: u64 = 1 << 14; // MMIO stale data: fill buffers
    const PSDP_NO: u64 = 1 << 15; // MMIO stale data: primary stale data
    const BHI_NO: u64 = 1 << 20; // branch history injection
    const PBRSB_NO: u64 = 1 << 24; // post-barrier return stack buffer
    const GDS_NO: u64 = 1 << 26; // gather data sampling
    const RFDS_NO: u64 = 1 << 27; // register file data sampling
    const ITS_NO: u64 = 1 << 62; // indirect target selection
    RDCL_NO
        | SSB_NO
        | MDS_NO
        | PSCHANGE_MC_NO
        | TAA_NO
        | SBDR_SSDP_NO
        | FBSDP_NO
        | PSDP_NO
        | BHI_NO
        | PBRSB_NO
        | GDS_NO
        | RFDS_NO
        | ITS_NO
};

/// The features implemented today.
pub const LEAF1_EDX: u32 = edx1::DE
    | edx1::PSE
    | edx1::TSC
    | edx1::MSR
    | edx1::PAE
    | edx1::CX8
    | edx1::SEP
    | edx1::MTRR
    | edx1::PGE
    | edx1::CMOV
    | edx1::PAT
    | edx1::PSE36
    | edx1::CLFSH
    | super::fpu::CPUID_EDX
    | super::simd::CPUID_EDX;
pub const LEAF1_ECX: u32 =
    ecx1::CX16 | ecx1::POPCNT | super::fpu::CPUID_ECX | super::simd::CPUID_ECX;
/// CPUID.80000001h:EDX: SYSCALL, NX, RDTSCP, LM. ECX: LAHF/SAHF in 64-bit mode.
pub const EXT_EDX: u32 = (1 << 11) | (1 << 20) | (1 << 27) | (1 << 29);
pub const EXT_ECX: u32 = 1;

fn str4(s: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    for (i, c) in s.iter().take(4).enumerate() {
        b[i] = *c;
    }
    u32::from_le_bytes(b)
}

/// Which feature-flag word a [`FeatureMask`] entry clears bits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureWord {
    Leaf1Ecx,
    Leaf1Edx,
    Leaf7Ebx,
    Leaf7Edx,
    ExtEcx,
    ExtEdx,
}

/// Features removed with QEMU's `-cpu qemu64,-name` syntax, for bisecting a
/// guest problem to one extension (the guest then takes its fallback path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureMask {
    /// Bits cleared, indexed by `FeatureWord as usize`.
    pub off: [u32; 6],
    /// `+apic`: the machine has a local APIC (and on `-M pc` an I/O APIC);
    /// CPUID then reports it (see `exec::system::cpuid`).
    pub apic: bool,
}

/// QEMU's names for the feature flags vx86 can advertise.
const FEATURE_NAMES: &[(&str, FeatureWord, u32)] = {
    use FeatureWord::*;
    &[
        ("fpu", Leaf1Edx, edx1::FPU),
        ("de", Leaf1Edx, edx1::DE),
        ("pse", Leaf1Edx, edx1::PSE),
        ("tsc", Leaf1Edx, edx1::TSC),
        ("msr", Leaf1Edx, edx1::MSR),
        ("pae", Leaf1Edx, edx1::PAE),
        ("cx8", Leaf1Edx, edx1::CX8),
        ("sep", Leaf1Edx, edx1::SEP),
        ("mtrr", Leaf1Edx, edx1::MTRR),
        ("pge", Leaf1Edx, edx1::PGE),
        ("cmov", Leaf1Edx, edx1::CMOV),
        ("pat", Leaf1Edx, edx1::PAT),
        ("pse36", Leaf1Edx, edx1::PSE36),
        ("clflush", Leaf1Edx, edx1::CLFSH),
        ("mmx", Leaf1Edx, edx1::MMX),
        ("fxsr", Leaf1Edx, edx1::FXSR),
        ("sse", Leaf1Edx, edx1::SSE),
        ("sse2", Leaf1Edx, edx1::SSE2),
        ("pni", Leaf1Ecx, 1 << 0),
        ("sse3", Leaf1Ecx, 1 << 0),
        ("ssse3", Leaf1Ecx, 1 << 9),
        ("cx16", Leaf1Ecx, ecx1::CX16),
        ("sse4.1", Leaf1Ecx, 1 << 19),
        ("sse4.2", Leaf1Ecx, 1 << 20),
        ("popcnt", Leaf1Ecx, ecx1::POPCNT),
        ("erms", Leaf7Ebx, leaf7::EBX_ERMS),
        ("fsrm", Leaf7Edx, leaf7::EDX_FSRM),
        ("arch-capabilities", Leaf7Edx, leaf7::EDX_ARCH_CAPABILITIES),
        ("lahf_lm", ExtEcx, 1),
        ("syscall", ExtEdx, 1 << 11),
        ("nx", ExtEdx, 1 << 20),
        ("rdtscp", ExtEdx, 1 << 27),
        ("lm", ExtEdx, 1 << 29),
    ]
};

impl FeatureMask {
    /// Removes the feature QEMU calls `name`; false if vx86 has no such flag.
    /// (`x2apic` is accepted: vx86 never advertises it.)
    pub fn remove(&mut self, name: &str) -> bool {
        match name {
            "apic" => {
                self.apic = false;
                return true;
            }
            "x2apic" => return true,
            _ => {}
        }
        match FEATURE_NAMES.iter().find(|(n, _, _)| *n == name) {
            Some(&(_, w, bit)) => {
                self.off[w as usize] |= bit;
                true
            }
            None => false,
        }
    }

    /// Adds the feature QEMU calls `name` (`+name`, `name=on`); only `apic`
    /// is off by default; the others present are accepted as they are.
    pub fn add(&mut self, name: &str) -> bool {
        if name == "apic" {
            self.apic = true;
            return true;
        }
        match FEATURE_NAMES.iter().find(|(n, _, _)| *n == name) {
            Some(&(_, w, bit)) => {
                self.off[w as usize] &= !bit;
                true
            }
            None => false,
        }
    }

    /// CPUID with this mask applied.
    pub fn cpuid(&self, leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
        use FeatureWord::*;
        let (a, b, c, d) = cpuid(leaf, sub);
        let m = |w: FeatureWord| !self.off[w as usize];
        match leaf {
            1 => (a, b, c & m(Leaf1Ecx), d & m(Leaf1Edx)),
            7 if sub == 0 => (a, b & m(Leaf7Ebx), c, d & m(Leaf7Edx)),
            0x8000_0001 => (a, b, c & m(ExtEcx), d & m(ExtEdx)),
            _ => (a, b, c, d),
        }
    }
}

/// Returns (EAX, EBX, ECX, EDX) for a leaf/subleaf.
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    const BRAND: &[u8; 48] = b"vx86 Virtual CPU (software x86-64)\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    match leaf {
        0 => (7, str4(b"Genu"), str4(b"ntel"), str4(b"ineI")),
        1 => (0x0000_0663, 0x0001_0800, LEAF1_ECX, LEAF1_EDX),
        7 if sub == 0 => (
            0,
            leaf7::EBX_ERMS,
            0,
            leaf7::EDX_FSRM | leaf7::EDX_ARCH_CAPABILITIES,
        ),
        0x8000_0000 => (0x8000_0008, 0, 0, 0),
        0x8000_0001 => (0, 0, EXT_ECX, EXT_EDX),
        0x8000_0002..=0x8000_0004 => {
            let o = ((leaf - 0x8000_0002) * 16) as usize;
            let w = |i: usize| str4(&BRAND[o + 4 * i..o + 4 * i + 4]);
            (w(0), w(1), w(2), w(3))
        }
        0x8000_0008 => (0x3000 | super::mmu::PHYS_BITS, 0, 0, 0),
        // Leaves 2..7 and unknown ones: no information (all zero), as Intel
        // does for leaves above the maximum it reports.
        _ => (0, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_feature_names_clear_exactly_their_bit() {
        let mut m = FeatureMask::default();
        assert!(m.remove("ssse3") && m.remove("erms") && m.remove("apic"));
        assert!(!m.remove("avx512f"));
        let (_, _, c, d) = m.cpuid(1, 0);
        let (_, _, c0, d0) = cpuid(1, 0);
        assert_eq!((c, d), (c0 & !(1 << 9), d0));
        assert_eq!(m.cpuid(7, 0).1, cpuid(7, 0).1 & !leaf7::EBX_ERMS);
        assert_eq!(m.cpuid(7, 0).3, cpuid(7, 0).3);
    }

    /// What the Debian guest and glibc key on: SSE2 and below, SSE3 (pni),
    /// SSSE3, CX16, POPCNT; nothing unimplemented (AVX, SSE4.1/4.2, XSAVE,
    /// MONITOR, RDRAND) is claimed.
    #[test]
    fn leaf1_advertises_exactly_the_implemented_extensions() {
        let (_, _, c, d) = cpuid(1, 0);
        for bit in [0, 9, 13, 23] {
            assert_ne!(c & (1 << bit), 0, "ECX bit {bit}");
        }
        for bit in [3, 12, 19, 20, 26, 27, 28, 30] {
            assert_eq!(c & (1 << bit), 0, "ECX bit {bit}");
        }
        for bit in [0, 4, 5, 6, 8, 11, 13, 15, 23, 24, 25, 26] {
            assert_ne!(d & (1 << bit), 0, "EDX bit {bit}");
        }
    }
}
