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
}

/// The features implemented today. x87/MMX/SSE bits join when the FPU lands.
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

/// Returns (EAX, EBX, ECX, EDX) for a leaf/subleaf.
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    const BRAND: &[u8; 48] = b"vx86 Virtual CPU (software x86-64)\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    match leaf {
        0 => (7, str4(b"Genu"), str4(b"ntel"), str4(b"ineI")),
        1 => (0x0000_0663, 0x0001_0800, LEAF1_ECX, LEAF1_EDX),
        7 if sub == 0 => (0, leaf7::EBX_ERMS, 0, leaf7::EDX_FSRM),
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
