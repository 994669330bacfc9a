//! The register file gdb sees, and the target descriptions that tell gdb
//! its layout (GDB manual, "Target Descriptions", and its standard i386
//! features: `org.gnu.gdb.i386.core`, `.sse`, `.segments`).
//!
//! Two layouts: x86-64 (`i386:x86-64`) when the CPU is in long mode as the
//! debugger connects, i386 otherwise. gdbstub_arch's x86 descriptions have
//! no segment bases and no control registers, so vx86 describes its own:
//! the standard core and SSE registers, fs_base/gs_base in the standard
//! segments feature (x86-64; gdb's i386 has no place for that feature
//! without Linux's register set and asserts, so there they are vx86's), and
//! cr0, cr2, cr3, cr4, (cr8,) efer (and k_gs_base) in a feature of vx86's
//! own; gdb lists all of them in `info registers`. A `g` packet holds the
//! registers in the order the description lists them.

use gdbstub::arch::{Arch, RegId, Registers};

/// vx86's x86 for gdbstub: addresses are 64-bit in both layouts.
pub enum X86Vx86 {}

impl Arch for X86Vx86 {
    type Usize = u64;
    type Registers = Regs;
    type RegId = NoSingleRegs;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(XML_64)
    }
}

/// Single-register access (`p`/`P`) is not offered: gdb uses `g`/`G`.
#[derive(Debug)]
pub enum NoSingleRegs {}

impl RegId for NoSingleRegs {
    fn from_raw_id(_id: usize) -> Option<(Self, Option<std::num::NonZeroUsize>)> {
        None
    }
}

/// gdb's order of the general registers, as indices into `Cpu::gpr`
/// (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15).
pub const GPR_ORDER_64: [usize; 16] = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
/// i386: eax, ecx, edx, ebx, esp, ebp, esi, edi (the hardware order).
pub const GPR_ORDER_32: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
/// gdb's order of the segment registers (cs, ss, ds, es, fs, gs) as indices into `Cpu::seg`.
pub const SEG_ORDER: [usize; 6] = [1, 2, 3, 0, 4, 5];

/// `g` packet sizes of the two layouts (see `gdb_serialize`).
const SIZE_64: usize = 16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 2 * 8 + 7 * 8;
const SIZE_32: usize = 8 * 4 + 4 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 8 * 16 + 4 + 2 * 4 + 4 * 4 + 8;

/// The registers in gdb's terms (general registers in gdb's order, ST(i)
/// relative to TOP). `long` picks the layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub long: bool,
    pub gpr: [u64; 16],
    pub rip: u64,
    pub eflags: u32,
    /// cs, ss, ds, es, fs, gs selectors.
    pub seg: [u32; 6],
    /// ST(0)..ST(7), 80-bit little-endian.
    pub st: [[u8; 10]; 8],
    /// fctrl, fstat, ftag (full tag word), fiseg, fioff, foseg, fooff, fop.
    pub fpu: [u32; 8],
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    pub fs_base: u64,
    pub gs_base: u64,
    pub k_gs_base: u64,
    /// cr0, cr2, cr3, cr4, cr8.
    pub cr: [u64; 5],
    pub efer: u64,
}

impl Registers for Regs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        let mut put = |bytes: &[u8]| bytes.iter().for_each(|&b| write_byte(Some(b)));
        if self.long {
            self.gpr.iter().for_each(|r| put(&r.to_le_bytes()));
            put(&self.rip.to_le_bytes());
        } else {
            self.gpr[..8]
                .iter()
                .for_each(|r| put(&(*r as u32).to_le_bytes()));
            put(&(self.rip as u32).to_le_bytes());
        }
        put(&self.eflags.to_le_bytes());
        self.seg.iter().for_each(|s| put(&s.to_le_bytes()));
        self.st.iter().for_each(|s| put(s));
        self.fpu.iter().for_each(|f| put(&f.to_le_bytes()));
        let nxmm = if self.long { 16 } else { 8 };
        self.xmm[..nxmm].iter().for_each(|x| put(&x.to_le_bytes()));
        put(&self.mxcsr.to_le_bytes());
        if self.long {
            for v in [self.fs_base, self.gs_base, self.k_gs_base] {
                put(&v.to_le_bytes());
            }
            self.cr.iter().for_each(|c| put(&c.to_le_bytes()));
        } else {
            put(&(self.fs_base as u32).to_le_bytes());
            put(&(self.gs_base as u32).to_le_bytes());
            self.cr[..4]
                .iter()
                .for_each(|c| put(&(*c as u32).to_le_bytes()));
        }
        put(&self.efer.to_le_bytes());
    }

    /// The layout is known from the size (a `G` packet is built on a
    /// default value, which cannot know the session's layout).
    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let long = match bytes.len() {
            SIZE_64 => true,
            SIZE_32 => false,
            _ => return Err(()),
        };
        let mut r = Reader { bytes, at: 0 };
        *self = Regs {
            long,
            ..Default::default()
        };
        if long {
            for g in self.gpr.iter_mut() {
                *g = r.num(8)?;
            }
            self.rip = r.num(8)?;
        } else {
            for g in self.gpr[..8].iter_mut() {
                *g = r.num(4)?;
            }
            self.rip = r.num(4)?;
        }
        self.eflags = r.num(4)? as u32;
        for s in self.seg.iter_mut() {
            *s = r.num(4)? as u32;
        }
        for s in self.st.iter_mut() {
            s.copy_from_slice(r.take(10)?);
        }
        for f in self.fpu.iter_mut() {
            *f = r.num(4)? as u32;
        }
        let nxmm = if long { 16 } else { 8 };
        for x in self.xmm[..nxmm].iter_mut() {
            let b = r.take(16)?;
            *x = u128::from_le_bytes(b.try_into().map_err(|_| ())?);
        }
        self.mxcsr = r.num(4)? as u32;
        if long {
            self.fs_base = r.num(8)?;
            self.gs_base = r.num(8)?;
            self.k_gs_base = r.num(8)?;
            for c in self.cr.iter_mut() {
                *c = r.num(8)?;
            }
        } else {
            self.fs_base = r.num(4)?;
            self.gs_base = r.num(4)?;
            for c in self.cr[..4].iter_mut() {
                *c = r.num(4)?;
            }
        }
        self.efer = r.num(8)?;
        Ok(())
    }
}

/// Little-endian fields from a `G` packet, in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ()> {
        let s = self.bytes.get(self.at..self.at + n).ok_or(())?;
        self.at += n;
        Ok(s)
    }
    fn num(&mut self, n: usize) -> Result<u64, ()> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 8) | b as u64))
    }
}

/// RFLAGS bits by name, so gdb prints `[ IF ZF ]` (SDM Vol. 1 3.4.3).
macro_rules! eflags_type {
    () => {
        r#"<flags id="vx86_eflags" size="4"><field name="CF" start="0" end="0"/><field name="" start="1" end="1"/><field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/><field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/><field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/><field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/><field name="VIF" start="19" end="19"/><field name="VIP" start="20" end="20"/><field name="ID" start="21" end="21"/></flags>"#
    };
}

/// The x87 registers after the segment selectors (gdb's i386 core feature).
macro_rules! x87_regs {
    () => {
        r#"<reg name="st0" bitsize="80" type="i387_ext"/><reg name="st1" bitsize="80" type="i387_ext"/><reg name="st2" bitsize="80" type="i387_ext"/><reg name="st3" bitsize="80" type="i387_ext"/><reg name="st4" bitsize="80" type="i387_ext"/><reg name="st5" bitsize="80" type="i387_ext"/><reg name="st6" bitsize="80" type="i387_ext"/><reg name="st7" bitsize="80" type="i387_ext"/><reg name="fctrl" bitsize="32" type="int" group="float"/><reg name="fstat" bitsize="32" type="int" group="float"/><reg name="ftag" bitsize="32" type="int" group="float"/><reg name="fiseg" bitsize="32" type="int" group="float"/><reg name="fioff" bitsize="32" type="int" group="float"/><reg name="foseg" bitsize="32" type="int" group="float"/><reg name="fooff" bitsize="32" type="int" group="float"/><reg name="fop" bitsize="32" type="int" group="float"/>"#
    };
}

/// The 128-bit vector type of the XMM registers.
macro_rules! vec128_type {
    () => {
        r#"<vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/><vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/><vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/><union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/></union>"#
    };
}

/// Long mode: the x86-64 description.
pub const XML_64: &str = concat!(
    r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0"><architecture>i386:x86-64</architecture>"#,
    r#"<feature name="org.gnu.gdb.i386.core">"#,
    eflags_type!(),
    r#"<reg name="rax" bitsize="64" type="int64"/><reg name="rbx" bitsize="64" type="int64"/><reg name="rcx" bitsize="64" type="int64"/><reg name="rdx" bitsize="64" type="int64"/><reg name="rsi" bitsize="64" type="int64"/><reg name="rdi" bitsize="64" type="int64"/><reg name="rbp" bitsize="64" type="data_ptr"/><reg name="rsp" bitsize="64" type="data_ptr"/>"#,
    r#"<reg name="r8" bitsize="64" type="int64"/><reg name="r9" bitsize="64" type="int64"/><reg name="r10" bitsize="64" type="int64"/><reg name="r11" bitsize="64" type="int64"/><reg name="r12" bitsize="64" type="int64"/><reg name="r13" bitsize="64" type="int64"/><reg name="r14" bitsize="64" type="int64"/><reg name="r15" bitsize="64" type="int64"/>"#,
    r#"<reg name="rip" bitsize="64" type="code_ptr"/><reg name="eflags" bitsize="32" type="vx86_eflags"/>"#,
    r#"<reg name="cs" bitsize="32" type="int32"/><reg name="ss" bitsize="32" type="int32"/><reg name="ds" bitsize="32" type="int32"/><reg name="es" bitsize="32" type="int32"/><reg name="fs" bitsize="32" type="int32"/><reg name="gs" bitsize="32" type="int32"/>"#,
    x87_regs!(),
    r#"</feature><feature name="org.gnu.gdb.i386.sse">"#,
    vec128_type!(),
    r#"<reg name="xmm0" bitsize="128" type="vec128"/><reg name="xmm1" bitsize="128" type="vec128"/><reg name="xmm2" bitsize="128" type="vec128"/><reg name="xmm3" bitsize="128" type="vec128"/><reg name="xmm4" bitsize="128" type="vec128"/><reg name="xmm5" bitsize="128" type="vec128"/><reg name="xmm6" bitsize="128" type="vec128"/><reg name="xmm7" bitsize="128" type="vec128"/>"#,
    r#"<reg name="xmm8" bitsize="128" type="vec128"/><reg name="xmm9" bitsize="128" type="vec128"/><reg name="xmm10" bitsize="128" type="vec128"/><reg name="xmm11" bitsize="128" type="vec128"/><reg name="xmm12" bitsize="128" type="vec128"/><reg name="xmm13" bitsize="128" type="vec128"/><reg name="xmm14" bitsize="128" type="vec128"/><reg name="xmm15" bitsize="128" type="vec128"/>"#,
    r#"<reg name="mxcsr" bitsize="32" type="int" group="vector"/></feature>"#,
    r#"<feature name="org.gnu.gdb.i386.segments"><reg name="fs_base" bitsize="64" type="int"/><reg name="gs_base" bitsize="64" type="int"/></feature>"#,
    r#"<feature name="org.vx86.gdb.i386.sys"><reg name="k_gs_base" bitsize="64" type="int64"/><reg name="cr0" bitsize="64" type="int64"/><reg name="cr2" bitsize="64" type="int64"/><reg name="cr3" bitsize="64" type="int64"/><reg name="cr4" bitsize="64" type="int64"/><reg name="cr8" bitsize="64" type="int64"/><reg name="efer" bitsize="64" type="int64"/></feature>"#,
    r#"</target>"#
);

/// Legacy modes: the i386 description.
pub const XML_32: &str = concat!(
    r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0"><architecture>i386</architecture>"#,
    r#"<feature name="org.gnu.gdb.i386.core">"#,
    eflags_type!(),
    r#"<reg name="eax" bitsize="32" type="int32"/><reg name="ecx" bitsize="32" type="int32"/><reg name="edx" bitsize="32" type="int32"/><reg name="ebx" bitsize="32" type="int32"/><reg name="esp" bitsize="32" type="data_ptr"/><reg name="ebp" bitsize="32" type="data_ptr"/><reg name="esi" bitsize="32" type="int32"/><reg name="edi" bitsize="32" type="int32"/>"#,
    r#"<reg name="eip" bitsize="32" type="code_ptr"/><reg name="eflags" bitsize="32" type="vx86_eflags"/>"#,
    r#"<reg name="cs" bitsize="32" type="int32"/><reg name="ss" bitsize="32" type="int32"/><reg name="ds" bitsize="32" type="int32"/><reg name="es" bitsize="32" type="int32"/><reg name="fs" bitsize="32" type="int32"/><reg name="gs" bitsize="32" type="int32"/>"#,
    x87_regs!(),
    r#"</feature><feature name="org.gnu.gdb.i386.sse">"#,
    vec128_type!(),
    r#"<reg name="xmm0" bitsize="128" type="vec128"/><reg name="xmm1" bitsize="128" type="vec128"/><reg name="xmm2" bitsize="128" type="vec128"/><reg name="xmm3" bitsize="128" type="vec128"/><reg name="xmm4" bitsize="128" type="vec128"/><reg name="xmm5" bitsize="128" type="vec128"/><reg name="xmm6" bitsize="128" type="vec128"/><reg name="xmm7" bitsize="128" type="vec128"/>"#,
    r#"<reg name="mxcsr" bitsize="32" type="int" group="vector"/></feature>"#,
    r#"<feature name="org.vx86.gdb.i386.sys"><reg name="fs_base" bitsize="32" type="int32"/><reg name="gs_base" bitsize="32" type="int32"/><reg name="cr0" bitsize="32" type="int32"/><reg name="cr2" bitsize="32" type="int32"/><reg name="cr3" bitsize="32" type="int32"/><reg name="cr4" bitsize="32" type="int32"/><reg name="efer" bitsize="64" type="int64"/></feature>"#,
    r#"</target>"#
);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(long: bool) -> Regs {
        let mut r = Regs {
            long,
            rip: 0x1234_5678,
            eflags: 0x246,
            seg: [0x10, 0x18, 0x18, 0x18, 0, 0],
            mxcsr: 0x1F80,
            fs_base: 0x1000,
            gs_base: 0x2000,
            cr: [0x8000_0011, 2, 0x3000, 0x20, 0],
            efer: 0x500,
            ..Default::default()
        };
        for (i, g) in r.gpr.iter_mut().enumerate().take(if long { 16 } else { 8 }) {
            *g = 0x1111_1111 * (i as u64 + 1);
        }
        r.st[3] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        r.xmm[7] = 0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10;
        r.fpu = [0x37F, 0, 0xFFFF, 0, 0, 0, 0, 0];
        if long {
            r.k_gs_base = 0x3000;
            r.cr[4] = 7;
        }
        r
    }

    #[test]
    fn both_layouts_round_trip_and_have_their_sizes() {
        for (long, size) in [(true, SIZE_64), (false, SIZE_32)] {
            let r = sample(long);
            let mut bytes = Vec::new();
            r.gdb_serialize(|b| bytes.push(b.unwrap_or(0)));
            assert_eq!(bytes.len(), size);
            let mut back = Regs::default();
            back.gdb_deserialize(&bytes).unwrap();
            assert_eq!(back, r);
        }
        assert!(Regs::default().gdb_deserialize(&[0; 100]).is_err());
    }

    #[test]
    fn descriptions_list_every_serialized_register() {
        // One <reg> per field in the g packet: 16+1+1+6+16+16+1+2+7 and 8+1+1+6+16+8+1+2+5.
        assert_eq!(XML_64.matches("<reg ").count(), 66);
        assert_eq!(XML_32.matches("<reg ").count(), 48);
    }
}
