//! Architectural CPU state that is not the instruction stream: segment registers
//! with their hidden descriptor caches, descriptor-table registers, control
//! registers and model-specific registers.

/// Segment register numbers in SDM encoding order (Vol. 2A 3.1.1.3, Sreg field).
pub const ES: usize = 0;
pub const CS: usize = 1;
pub const SS: usize = 2;
pub const DS: usize = 3;
pub const FS: usize = 4;
pub const GS: usize = 5;

/// RFLAGS bits (SDM Vol. 1 3.4.3).
pub mod rflags {
    pub const CF: u64 = 1 << 0;
    pub const FIXED1: u64 = 1 << 1;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    pub const IOPL: u64 = 3 << 12;
    pub const NT: u64 = 1 << 14;
    pub const RF: u64 = 1 << 16;
    pub const VM: u64 = 1 << 17;
    pub const AC: u64 = 1 << 18;
    pub const VIF: u64 = 1 << 19;
    pub const VIP: u64 = 1 << 20;
    pub const ID: u64 = 1 << 21;
    /// The six status flags computed lazily.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// CR0 bits (SDM Vol. 3A 2.5).
pub mod cr0 {
    pub const PE: u64 = 1 << 0;
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const TS: u64 = 1 << 3;
    pub const ET: u64 = 1 << 4;
    pub const NE: u64 = 1 << 5;
    pub const WP: u64 = 1 << 16;
    pub const AM: u64 = 1 << 18;
    pub const NW: u64 = 1 << 29;
    pub const CD: u64 = 1 << 30;
    pub const PG: u64 = 1 << 31;
}

/// CR4 bits (SDM Vol. 3A 2.5).
pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    pub const PSE: u64 = 1 << 4;
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    /// Bits vx86 lets the guest set (others #GP): only features CPUID advertises.
    pub const SUPPORTED: u64 =
        VME | PVI | TSD | DE | PSE | PAE | MCE | PGE | PCE | OSFXSR | OSXMMEXCPT;
}

/// EFER bits (SDM Vol. 3A 2.2.1).
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
    pub const SUPPORTED: u64 = SCE | LME | LMA | NXE;
}

/// MSR indices (SDM Vol. 4).
pub mod msr {
    pub const IA32_TSC: u32 = 0x10;
    pub const IA32_APIC_BASE: u32 = 0x1B;
    /// The local APIC timer's TSC deadline (SDM Vol. 3A 11.5.4.1).
    pub const IA32_TSC_DEADLINE: u32 = 0x6E0;
    pub const IA32_BIOS_SIGN_ID: u32 = 0x8B;
    pub const IA32_PLATFORM_ID: u32 = 0x17;
    pub const IA32_ARCH_CAPABILITIES: u32 = 0x10A;
    pub const IA32_MTRRCAP: u32 = 0xFE;
    pub const IA32_SYSENTER_CS: u32 = 0x174;
    pub const IA32_SYSENTER_ESP: u32 = 0x175;
    pub const IA32_SYSENTER_EIP: u32 = 0x176;
    pub const IA32_MCG_CAP: u32 = 0x179;
    pub const IA32_MCG_STATUS: u32 = 0x17A;
    pub const IA32_MISC_ENABLE: u32 = 0x1A0;
    pub const IA32_PAT: u32 = 0x277;
    pub const IA32_MTRR_DEF_TYPE: u32 = 0x2FF;
    pub const IA32_EFER: u32 = 0xC000_0080;
    pub const IA32_STAR: u32 = 0xC000_0081;
    pub const IA32_LSTAR: u32 = 0xC000_0082;
    pub const IA32_CSTAR: u32 = 0xC000_0083;
    pub const IA32_FMASK: u32 = 0xC000_0084;
    pub const IA32_FS_BASE: u32 = 0xC000_0100;
    pub const IA32_GS_BASE: u32 = 0xC000_0101;
    pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;
    pub const IA32_TSC_AUX: u32 = 0xC000_0103;
}

/// A segment register: the visible selector plus the hidden descriptor cache
/// (SDM Vol. 3A 3.4.3). `attr` holds descriptor bits 40..55 packed as the
/// "access rights" word: type(4) S DPL(2) P | (limit 19:16 ignored) AVL L D/B G.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    /// Limit in bytes (already scaled by G).
    pub limit: u32,
    pub attr: u16,
}

/// Access-rights bits as packed in [`Segment::attr`].
pub mod attr {
    pub const TYPE_ACCESSED: u16 = 1 << 0;
    /// Data: writable. Code: readable.
    pub const TYPE_RW: u16 = 1 << 1;
    /// Data: expand-down. Code: conforming.
    pub const TYPE_EC: u16 = 1 << 2;
    pub const TYPE_CODE: u16 = 1 << 3;
    pub const S: u16 = 1 << 4;
    pub const DPL_SHIFT: u16 = 5;
    pub const P: u16 = 1 << 7;
    pub const AVL: u16 = 1 << 12;
    pub const L: u16 = 1 << 13;
    pub const DB: u16 = 1 << 14;
    pub const G: u16 = 1 << 15;
}

impl Segment {
    /// A real-mode segment: base = selector << 4; the limit and attributes are
    /// left as they are (which is what makes unreal mode work).
    pub fn real(selector: u16, keep: &Segment) -> Segment {
        Segment {
            selector,
            base: (selector as u64) << 4,
            limit: keep.limit,
            attr: keep.attr,
        }
    }
    pub fn dpl(&self) -> u8 {
        ((self.attr >> attr::DPL_SHIFT) & 3) as u8
    }
    pub fn present(&self) -> bool {
        self.attr & attr::P != 0
    }
    pub fn is_code(&self) -> bool {
        self.attr & attr::S != 0 && self.attr & attr::TYPE_CODE != 0
    }
    pub fn big(&self) -> bool {
        self.attr & attr::DB != 0
    }
    pub fn long(&self) -> bool {
        self.attr & attr::L != 0
    }
    pub fn rpl(&self) -> u8 {
        (self.selector & 3) as u8
    }
}

/// GDTR/IDTR (SDM Vol. 3A 2.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DescTable {
    pub base: u64,
    pub limit: u32,
}

/// Decodes a legacy 8-byte segment descriptor (SDM Vol. 3A 3.4.5) into a cache entry.
pub fn descriptor_to_segment(selector: u16, lo: u32, hi: u32) -> Segment {
    let base = ((lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000)) as u64;
    let raw_limit = (lo & 0xFFFF) | (hi & 0x000F_0000);
    let attr = ((hi >> 8) & 0xF0FF) as u16;
    let limit = if attr & attr::G != 0 {
        (raw_limit << 12) | 0xFFF
    } else {
        raw_limit
    };
    Segment {
        selector,
        base,
        limit,
        attr,
    }
}
