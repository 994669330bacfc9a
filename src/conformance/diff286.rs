//! Documented 80286-vs-386+ differences seen in the SingleStepTests 80286 set.
//!
//! The test set was captured on a real 80286; vx86 models a 386-and-later CPU
//! (the Intel SDM). Where the two architectures differ, a mismatch is expected.
//! Each [`Diff286`] rule names one such difference, cites where it is documented,
//! and excuses a test only after checking that the *386* behaviour happened
//! exactly where the rule says (the right exception at the right instruction,
//! or a re-run with the 286-specific input removed matching the 286's result).
//! The harness reports every excused test under its rule(s); nothing is masked
//! silently. References:
//!
//! * SDM: Intel 64 and IA-32 Architectures Software Developer's Manual.
//! * 286 PRM: Intel iAPX 286 Programmer's Reference Manual (1983).

use super::moo::MooTest;
use super::singlestep::{Inputs, RealModeResult, Relax};
use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};

/// FLAGS bits.
const PF: u16 = 1 << 2;
const ZF: u16 = 1 << 6;
const SF: u16 = 1 << 7;
const DF: u16 = 1 << 10;
const OF: u16 = 1 << 11;

/// Vectors.
const DE: u8 = 0;
const UD: u8 = 6;
const SS_FAULT: u8 = 12;
const GP: u8 = 13;

/// Where the real-mode IVT entries of #SS and #GP live (vector * 4).
const IVT_SS: u32 = 12 * 4;
const IVT_GP: u32 = 13 * 4;

/// One documented 286-vs-386+ difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Diff286 {
    /// LOCK on an instruction that is not a locked read-modify-write of memory: the
    /// 286 asserts its bus lock and executes it (286 PRM, LOCK: real address mode
    /// exceptions "None"); a 386+ raises #UD (386 PRM 14.8.1, "An undefined-opcode
    /// exception results from using LOCK before any other instruction"; SDM Vol. 2A
    /// LOCK). Checked: the CPU raised #UD at the instruction, and a re-run with
    /// every F0 byte replaced by a segment prefix naming the segment the instruction
    /// already uses (same decode, same length) matches the 286's result.
    LockPrefix,
    /// An instruction longer than 10 bytes (redundant prefixes): the 286 faults, with
    /// INT 13 for a valid opcode and #UD for an invalid one (its 10-byte limit; this
    /// set has 89 such INT 13 and 9 such #UD tests, and the upstream README says
    /// so); a 386+ accepts up to 15 bytes (SDM Vol. 2A 2.3.11). The 286 executed nothing, so there is nothing to
    /// compare; checked: the 286 faulted and the CPU did not fault at the instruction
    /// but ran it to the HLT.
    LongInstruction,
    /// A segment limit violation through SS (BP-based operand, SS: override, stack
    /// push/pop beyond offset 0xFFFF): a real-mode 286 raises INT 13 for every
    /// segment overrun (286 PRM, instruction set, "Real Address Mode Exceptions":
    /// "Exception 13 is generated whenever a word operand is accessed from effective
    /// address 0FFFFH in a segment"; no INT 12 appears anywhere in this set), a 386+
    /// raises #SS (INT 12)
    /// for SS (SDM Vol. 2, "Real-Address Mode Exceptions: #SS If a memory operand
    /// effective address is outside the SS segment limit"). Checked: the CPU raised
    /// #SS at the instruction, and a re-run with IVT entry 12 set to entry 13's handler
    /// matches the 286's result (the same frame pushed, the same handler run).
    StackFaultIsGp,
    /// A word string instruction (MOVSW, CMPSW, STOSW, LODSW, SCASW, INSW, OUTSW)
    /// faulting on an element at offset 0xFFFF: when the 286 raises INT 13 it has
    /// already advanced the index register of every access it started, including
    /// the faulting one, and under REP decremented CX once or twice (its microcode
    /// order, undocumented; IP still points at the instruction). A 386+ faults with
    /// the registers as they were before the faulting iteration (SDM Vol. 3A 6.5:
    /// faults are restartable; Vol. 2B REP: the registers are updated per completed
    /// iteration). Checked: the CPU raised #GP or #SS at the instruction, and
    /// everything matches once SI, DI and CX are offset by exactly the 286's
    /// pattern for that instruction and faulting access (MOVSW reads DS:SI first,
    /// CMPSW reads ES:DI first): e.g. REP STOSW at DI = 0xFFFF leaves DI one
    /// element on and CX two lower.
    StringFaultAdvances,
    /// OF after shifts and rotates by an immediate or CL count (masked to 5 bits) of
    /// more than 1: the 286 defines it (its test metadata marks OF defined for
    /// C0/C1), a 386+ leaves it undefined (SDM Vol. 2B SAL/SAR/SHL/SHR and
    /// RCL/RCR/ROL/ROR: "The OF flag is affected only for 1-bit shifts/rotates; it is
    /// undefined for multi-bit" ones). Checked: everything but OF matches.
    ShiftOverflowFlag,
    /// AAM with a zero immediate: the 286 sets SF/ZF/PF from AL before raising #DE
    /// (the FLAGS it pushes and keeps differ from the initial ones); a 386+ raises #DE
    /// with FLAGS unchanged (SDM Vol. 2A AAM: "#DE If an immediate value of 0 is
    /// used"; faults leave state unchanged, Vol. 3A 6.5). Checked: the CPU raised #DE at
    /// the instruction and everything but SF/ZF/PF matches.
    AamZeroFlags,
    /// MOV to/from segment register 4 or 5 (8C/8E with ModRM reg 4/5): the 286 has
    /// only ES/CS/SS/DS (286 PRM, MOV: segment register field 0..3) and raises #UD
    /// for the others, as every such test of this set shows; a 386+ moves FS/GS
    /// (SDM Vol. 2B MOV). The 286 executed nothing comparable; checked: the 286 raised #UD and the CPU executed the
    /// instruction without faulting.
    SegmentRegisterFsGs,
    /// POP m16 whose destination faults (offset 0xFFFF): the 286 has already
    /// incremented SP when it raises INT 13, so its frame sits 2 bytes higher; a 386+
    /// faults with SP unchanged (SDM Vol. 3A 6.5, faults are restartable; Vol. 2B POP
    /// notes only the ESP-based-address case). Checked: the CPU faulted (#GP/#SS) at
    /// the instruction, and a re-run from SP + 2 matches the 286's result exactly.
    PopMemoryFaultSp,
    /// IDIV r/m8 whose quotient overflows: in 2 of this set's 1,143 overflowing byte
    /// IDIVs the 286 returned AL = 80h without raising INT 0 (undocumented; the 286
    /// PRM, like the SDM Vol. 2A IDIV, specifies the divide error for a quotient
    /// outside -128..127). Checked: the exact quotient, computed from the test's
    /// inputs, is outside -128..127, the 286 stored AL = 80h, and the CPU raised #DE
    /// at the instruction.
    IdivByteOverflowQuirk,
    /// An interrupt frame holding SS where CS belongs: 2 tests (an INTO and a #UD
    /// from FF /3 with a register operand) captured the pushed CS word equal to SS,
    /// unlike every other interrupt and exception in the set and unlike the 286 PRM
    /// (INT/exceptions push CS). Not an architectural difference but an unexplained
    /// capture anomaly, reported separately. Checked: the 286's pushed CS slot holds
    /// the initial SS (not CS), and everything matches with the CPU's slot holding
    /// the initial CS, as the SDM specifies.
    FrameSsForCsAnomaly,
    /// POPF and IRET in real mode: the 286 clears FLAGS bits 12..15 (every POPF/IRET
    /// of this set ends with them 0, as the upstream README's INIT masking says), a
    /// 386+ loads IOPL and NT from
    /// the popped word (SDM Vol. 2B POPF, real-address mode: "all non-reserved flags
    /// ... can be modified"). Checked: the CPU's bits 12..14 equal the popped word's
    /// and bit 15 is 0, the 286's bits 12..15 are 0, and everything else matches.
    PopfIoplNt,
}

impl Diff286 {
    /// Every rule, in the order they are tried.
    pub const ALL: [Diff286; 11] = [
        Diff286::LongInstruction,
        Diff286::LockPrefix,
        Diff286::StackFaultIsGp,
        Diff286::StringFaultAdvances,
        Diff286::PopMemoryFaultSp,
        Diff286::ShiftOverflowFlag,
        Diff286::PopfIoplNt,
        Diff286::AamZeroFlags,
        Diff286::SegmentRegisterFsGs,
        Diff286::IdivByteOverflowQuirk,
        Diff286::FrameSsForCsAnomaly,
    ];

    /// Short name used in the report.
    pub fn name(self) -> &'static str {
        match self {
            Diff286::LockPrefix => "lock-prefix",
            Diff286::LongInstruction => "long-instruction",
            Diff286::StackFaultIsGp => "ss-fault-is-int13",
            Diff286::StringFaultAdvances => "string-fault-advances",
            Diff286::ShiftOverflowFlag => "shift-of",
            Diff286::AamZeroFlags => "aam0-flags",
            Diff286::SegmentRegisterFsGs => "no-fs-gs",
            Diff286::PopMemoryFaultSp => "pop-mem-fault-sp",
            Diff286::IdivByteOverflowQuirk => "idiv8-overflow-80h",
            Diff286::FrameSsForCsAnomaly => "anomaly-frame-ss-for-cs",
            Diff286::PopfIoplNt => "popf-iret-iopl-nt",
        }
    }

    /// One line for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Diff286::LockPrefix => {
                "286 executes LOCK on any instruction; 386+ raises #UD (SDM Vol. 2A LOCK)"
            }
            Diff286::LongInstruction => {
                "286 faults on instructions > 10 bytes (#GP, #UD if invalid); 386+ allows 15"
            }
            Diff286::StackFaultIsGp => {
                "286 real mode raises INT 13 for SS overruns; 386+ raises #SS (INT 12)"
            }
            Diff286::StringFaultAdvances => {
                "286 word string op faulting at 0xFFFF has advanced SI/DI (CX); 386+ has not"
            }
            Diff286::ShiftOverflowFlag => {
                "286 defines OF for shift/rotate counts > 1; undefined on 386+ (SDM SAL/RCL)"
            }
            Diff286::AamZeroFlags => {
                "286 AAM 0 sets SF/ZF/PF before #DE; 386+ leaves FLAGS unchanged"
            }
            Diff286::SegmentRegisterFsGs => {
                "286 has no FS/GS: MOV Sreg 4/5 raises #UD; 386+ moves FS/GS"
            }
            Diff286::PopMemoryFaultSp => {
                "286 POP m16 faulting on the destination has already added 2 to SP"
            }
            Diff286::IdivByteOverflowQuirk => {
                "286 IDIV r/m8 overflow sometimes returns AL=80h instead of #DE (2 tests)"
            }
            Diff286::FrameSsForCsAnomaly => {
                "capture anomaly, not architectural: 286 frame holds SS in the CS slot"
            }
            Diff286::PopfIoplNt => {
                "286 real-mode POPF/IRET clear FLAGS 12..15; 386+ loads IOPL/NT (SDM POPF)"
            }
        }
    }

    /// If this difference can explain `t`, whose latest run gave `res`, adjust
    /// `att` (re-run inputs, comparison relaxations, or "explained") and return
    /// true; otherwise leave `att` unchanged and return false.
    pub fn apply(self, t: &MooTest, res: &RealModeResult, att: &mut Attempt) -> bool {
        let init = att.inputs.regs;
        let bytes = instruction_bytes(t);
        let (prefixes, body) = split_prefixes(bytes);
        let excp = t.exception.map(|e| e.number);
        // The first event the CPU delivered, if it was raised by the instruction itself.
        let fault_here = res
            .events
            .first()
            .filter(|e| e.cs == init.cs && e.ip == init.ip)
            .map(|e| e.vector);
        match self {
            Diff286::LongInstruction => {
                // The CPU ran the instruction (no fault at it; a far or near jump
                // then runs wherever it leads, where the 286 placed no HLT), or
                // raised #UD for a form that is invalid on a 386+ while the 286's
                // length check came first.
                let ran = fault_here.is_none()
                    || (fault_here == Some(UD) && decode16(bytes, 0).is_invalid());
                if length286(bytes, &att.inputs) > 10 && matches!(excp, Some(UD | GP)) && ran {
                    att.explained = true;
                    return true;
                }
                false
            }
            Diff286::LockPrefix => {
                if !prefixes.contains(&0xF0) || fault_here != Some(UD) {
                    return false;
                }
                let Some(patched) = without_lock(bytes) else {
                    return false;
                };
                let mut ram = att.inputs.ram.clone();
                for (k, (&old, &new)) in bytes.iter().zip(&patched).enumerate() {
                    if old == new {
                        continue;
                    }
                    let addr = ((init.cs as u32) << 4) + init.ip.wrapping_add(k as u16) as u32;
                    match ram.iter_mut().find(|(a, _)| *a == addr) {
                        Some(entry) if entry.1 == old => entry.1 = new,
                        _ => return false,
                    }
                }
                att.inputs.ram = ram;
                att.rerun = true;
                true
            }
            Diff286::StackFaultIsGp => {
                if excp != Some(GP) || fault_here != Some(SS_FAULT) {
                    return false;
                }
                let ram = &att.inputs.ram;
                let uses = |a: u32| {
                    ram.iter().any(|&(x, _)| x == a) || t.fina.ram.iter().any(|&(x, _)| x == a)
                };
                if (IVT_SS..IVT_SS + 4).any(uses) {
                    return false;
                }
                let mut alias = Vec::new();
                for i in 0..4 {
                    match ram.iter().find(|&&(a, _)| a == IVT_GP + i) {
                        Some(&(_, v)) => alias.push((IVT_SS + i, v)),
                        None => return false,
                    }
                }
                att.inputs.ram.extend(alias);
                att.rerun = true;
                true
            }
            Diff286::StringFaultAdvances => {
                let op = body.first().copied().unwrap_or(0);
                if !matches!(op, 0xA5 | 0xA7 | 0xAB | 0xAD | 0xAF | 0x6D | 0x6F)
                    || excp != Some(GP)
                    || !matches!(fault_here, Some(GP | SS_FAULT))
                {
                    return false;
                }
                let s = if init.flags & DF != 0 { 0xFFFE } else { 2 };
                let rep = prefixes.iter().any(|&p| p == 0xF2 || p == 0xF3);
                // The element's index registers as the CPU left them at the fault.
                let (si_at_limit, di_at_limit) = (res.regs.si == 0xFFFF, res.regs.di == 0xFFFF);
                // (SI, DI, CX under REP) the 286 has changed by, per instruction and
                // per the access that faulted first (MOVSW reads DS:SI first, CMPSW
                // reads ES:DI first), as captured in this set.
                let (dsi, ddi, dcx) = match op {
                    0xA5 if si_at_limit => (s, 0, 0xFFFF),
                    0xA5 if di_at_limit => (s, s, 0xFFFE),
                    0xA7 if di_at_limit => (0, s, 0),
                    0xA7 if si_at_limit => (s, s, 0xFFFF),
                    0xAD | 0x6F if si_at_limit => (s, 0, 0xFFFF),
                    0xAB | 0x6D if di_at_limit => (0, s, 0xFFFE),
                    0xAF if di_at_limit => (0, s, 0xFFFF),
                    _ => return false,
                };
                att.relax.delta[10] = dsi;
                att.relax.delta[11] = ddi;
                att.relax.delta[2] = if rep { dcx } else { 0 };
                true
            }
            Diff286::PopMemoryFaultSp => {
                let is_pop_mem =
                    matches!(body, [0x8F, modrm, ..] if modrm >> 6 != 3 && (modrm >> 3) & 7 == 0);
                if !is_pop_mem || excp != Some(GP) || !matches!(fault_here, Some(GP | SS_FAULT)) {
                    return false;
                }
                att.inputs.regs.sp = att.inputs.regs.sp.wrapping_add(2);
                att.rerun = true;
                true
            }
            Diff286::SegmentRegisterFsGs => {
                let fs_gs =
                    matches!(body, [0x8C | 0x8E, modrm, ..] if matches!((modrm >> 3) & 7, 4 | 5));
                if fs_gs && excp == Some(UD) && fault_here.is_none() && res.halted {
                    att.explained = true;
                    return true;
                }
                false
            }
            Diff286::IdivByteOverflowQuirk => {
                let is_idiv8 = matches!(body, [0xF6, modrm, ..] if (modrm >> 3) & 7 == 7);
                if !is_idiv8 || excp.is_some() || fault_here != Some(DE) {
                    return false;
                }
                let al = t.fina.regs.regs.ax as u8;
                if t.fina.regs.mask & 1 == 0 || al != 0x80 {
                    return false;
                }
                let Some(divisor) = rm8_value(bytes, &att.inputs) else {
                    return false;
                };
                let dividend = init.ax as i16 as i32;
                let divisor = divisor as i8 as i32;
                if divisor == 0 || (-128..=127).contains(&(dividend / divisor)) {
                    return false;
                }
                att.explained = true;
                true
            }
            Diff286::FrameSsForCsAnomaly => {
                if excp.is_none() {
                    return false;
                }
                let (lo, hi) = super::singlestep::frame_addrs(t, &t.init.regs.regs, 2);
                let expected = |a: u32| t.fina.ram.iter().find(|&&(x, _)| x == a).map(|&(_, v)| v);
                let pushed = match (expected(lo), expected(hi)) {
                    (Some(l), Some(h)) => u16::from_le_bytes([l, h]),
                    _ => return false,
                };
                if pushed != init.ss || pushed == init.cs {
                    return false;
                }
                let [cs_lo, cs_hi] = init.cs.to_le_bytes();
                att.relax.ram_expect = [Some((lo, cs_lo)), Some((hi, cs_hi))];
                true
            }
            Diff286::PopfIoplNt => {
                let off = match body.first() {
                    Some(0x9D) => 0,
                    Some(0xCF) => 4,
                    _ => return false,
                };
                let expected = if t.fina.regs.mask & (1 << 13) != 0 {
                    t.fina.regs.regs.flags
                } else {
                    init.flags
                };
                let base = (init.ss as u32) << 4;
                let word = |o: u16| ram_at(&att.inputs, base + init.sp.wrapping_add(o) as u32);
                let (Some(lo), Some(hi)) = (word(off), word(off + 1)) else {
                    return false;
                };
                let popped = u16::from_le_bytes([lo, hi]);
                if fault_here.is_some()
                    || expected & 0xF000 != 0
                    || res.regs.flags & 0xF000 != popped & 0x7000
                {
                    return false;
                }
                att.relax.ignore_flags |= 0xF000;
                true
            }
            Diff286::ShiftOverflowFlag => {
                let count = match body {
                    [0xC0 | 0xC1, ..] => bytes.last().copied().unwrap_or(0),
                    [0xD2 | 0xD3, ..] => init.cx as u8,
                    _ => return false,
                };
                if count & 0x1F <= 1 {
                    return false;
                }
                att.relax.ignore_flags |= OF;
                true
            }
            Diff286::AamZeroFlags => {
                if body != [0xD4, 0x00] || excp != Some(DE) || fault_here != Some(DE) {
                    return false;
                }
                att.relax.ignore_flags |= SF | ZF | PF;
                true
            }
        }
    }
}

/// The state of a rule-guided re-comparison (see `singlestep::judge`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Inputs of the next run.
    pub inputs: Inputs,
    /// Relaxations of the next comparison.
    pub relax: Relax,
    /// The inputs changed: run again before comparing.
    pub rerun: bool,
    /// A rule explained the test outright (the 286 executed nothing comparable).
    pub explained: bool,
}

impl Attempt {
    /// No rule applied yet.
    pub fn new(inputs: Inputs) -> Attempt {
        Attempt {
            inputs,
            relax: Relax::default(),
            rerun: false,
            explained: false,
        }
    }
}

/// The test's instruction bytes without the trailing HLT.
fn instruction_bytes(t: &MooTest) -> &[u8] {
    match t.bytes.split_last() {
        Some((0xF4, rest)) => rest,
        _ => &t.bytes,
    }
}

/// The byte at physical address `addr` of the test's initial RAM.
fn ram_at(inputs: &Inputs, addr: u32) -> Option<u8> {
    inputs
        .ram
        .iter()
        .find(|&&(a, _)| a == addr)
        .map(|&(_, v)| v)
}

/// The length of the instruction as the 286 decodes it. That is the length of
/// `bytes`, except for C6/C7 with a ModRM `reg` other than 0 (invalid on both
/// CPUs): the 286 still fetches the displacement and immediate of MOV r/m, imm
/// before it checks `reg`, so its length limit can fire first (C7 #1685 of this
/// set). The bytes after `bytes` are read from the initial RAM at CS:IP.
fn length286(bytes: &[u8], inputs: &Inputs) -> usize {
    let (prefixes, body) = split_prefixes(bytes);
    let &[op @ (0xC6 | 0xC7), modrm, ..] = body else {
        return bytes.len();
    };
    if (modrm >> 3) & 7 == 0 {
        return bytes.len();
    }
    let r = inputs.regs;
    let mut code: Vec<u8> = (0..16u16)
        .map_while(|k| ram_at(inputs, ((r.cs as u32) << 4) + r.ip.wrapping_add(k) as u32))
        .collect();
    let at = prefixes.len() + 1;
    if code.get(at - 1) != Some(&op) {
        return bytes.len();
    }
    match code.get_mut(at) {
        Some(m) => *m &= !0x38,
        None => return bytes.len(),
    }
    let ins = decode16(&code, 0);
    if ins.is_invalid() {
        bytes.len()
    } else {
        ins.len()
    }
}

/// The r/m8 operand of the instruction `bytes` (16-bit addressing), from the
/// test's initial registers and RAM; `None` if it cannot be determined.
fn rm8_value(bytes: &[u8], inputs: &Inputs) -> Option<u8> {
    let ins = decode16(bytes, 0);
    let r = inputs.regs;
    let reg16 = |reg: Register| -> Option<u16> {
        Some(match reg {
            Register::AX | Register::AL | Register::AH => r.ax,
            Register::CX | Register::CL | Register::CH => r.cx,
            Register::DX | Register::DL | Register::DH => r.dx,
            Register::BX | Register::BL | Register::BH => r.bx,
            Register::SP => r.sp,
            Register::BP => r.bp,
            Register::SI => r.si,
            Register::DI => r.di,
            Register::ES => r.es,
            Register::CS => r.cs,
            Register::SS => r.ss,
            Register::DS => r.ds,
            Register::None => 0,
            _ => return None,
        })
    };
    match ins.op0_kind() {
        OpKind::Register => {
            let reg = ins.op0_register();
            let v = reg16(reg)?;
            Some(match reg {
                Register::AH | Register::CH | Register::DH | Register::BH => (v >> 8) as u8,
                _ => v as u8,
            })
        }
        OpKind::Memory => {
            let off = reg16(ins.memory_base())?
                .wrapping_add(reg16(ins.memory_index())?)
                .wrapping_add(ins.memory_displacement64() as u16);
            let seg = reg16(ins.memory_segment())? as u32;
            ram_at(inputs, (seg << 4) + off as u32)
        }
        _ => None,
    }
}

/// Prefixes the 286 knows (segment overrides, LOCK, REP/REPNE) and the rest.
fn split_prefixes(bytes: &[u8]) -> (&[u8], &[u8]) {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, 0x26 | 0x2E | 0x36 | 0x3E | 0xF0 | 0xF2 | 0xF3))
        .count();
    bytes.split_at(n.min(bytes.len()))
}

fn decode16(bytes: &[u8], ip: u64) -> Instruction {
    Decoder::with_ip(16, bytes, ip, DecoderOptions::NONE).decode()
}

fn has_memory_operand(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|i| {
        matches!(
            ins.op_kind(i),
            OpKind::Memory
                | OpKind::MemorySegSI
                | OpKind::MemorySegDI
                | OpKind::MemoryESDI
                | OpKind::MemorySegESI
                | OpKind::MemorySegEDI
                | OpKind::MemoryESEDI
        )
    })
}

/// Operand `i` of `a` and `b` has the same kind and value (memory operands are
/// compared by the caller).
fn same_operand(a: &Instruction, b: &Instruction, i: u32) -> bool {
    let k = a.op_kind(i);
    if k != b.op_kind(i) {
        return false;
    }
    match k {
        OpKind::Register => a.op_register(i) == b.op_register(i),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            a.near_branch_target() == b.near_branch_target()
        }
        OpKind::FarBranch16 | OpKind::FarBranch32 => {
            a.far_branch32() == b.far_branch32()
                && a.far_branch16() == b.far_branch16()
                && a.far_branch_selector() == b.far_branch_selector()
        }
        OpKind::Immediate8
        | OpKind::Immediate8_2nd
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => a.immediate(i) == b.immediate(i),
        _ => true,
    }
}

/// `bytes` with every LOCK prefix replaced by a segment-override prefix naming
/// the segment the instruction already uses (DS if it has no memory operand), so
/// the length and the meaning stay the same; `None` unless a decode of the result
/// confirms that (same code, operands, segment and length, no LOCK).
pub fn without_lock(bytes: &[u8]) -> Option<Vec<u8>> {
    let (prefixes, body) = split_prefixes(bytes);
    let stripped: Vec<u8> = prefixes
        .iter()
        .copied()
        .filter(|&p| p != 0xF0)
        .chain(body.iter().copied())
        .collect();
    // Decoded where it would end at the same address as the patched bytes, so
    // relative branch targets compare equal.
    let ins = decode16(&stripped, (bytes.len() - stripped.len()) as u64);
    if ins.is_invalid() || ins.len() != stripped.len() {
        return None;
    }
    let seg = if has_memory_operand(&ins) {
        ins.memory_segment()
    } else {
        Register::DS
    };
    let neutral = match seg {
        Register::ES => 0x26,
        Register::CS => 0x2E,
        Register::SS => 0x36,
        Register::DS => 0x3E,
        _ => return None,
    };
    let patched: Vec<u8> = bytes
        .iter()
        .copied()
        .enumerate()
        .map(|(i, b)| {
            if i < prefixes.len() && b == 0xF0 {
                neutral
            } else {
                b
            }
        })
        .collect();
    let p = decode16(&patched, 0);
    let same = !p.is_invalid()
        && !p.has_lock_prefix()
        && p.len() == patched.len()
        && p.code() == ins.code()
        && p.op_count() == ins.op_count()
        && (0..ins.op_count()).all(|i| same_operand(&p, &ins, i))
        && (!has_memory_operand(&ins)
            || (p.memory_segment() == ins.memory_segment()
                && p.memory_base() == ins.memory_base()
                && p.memory_index() == ins.memory_index()
                && p.memory_displacement64() == ins.memory_displacement64()));
    same.then_some(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_becomes_the_segment_already_in_use() {
        // lock add ah,ch: no memory operand -> DS.
        assert_eq!(
            without_lock(&[0xF0, 0x00, 0xEC]),
            Some(vec![0x3E, 0x00, 0xEC])
        );
        // lock add bh,[bp+si-6Fh]: SS by default.
        assert_eq!(
            without_lock(&[0xF0, 0x02, 0x7A, 0x91]),
            Some(vec![0x36, 0x02, 0x7A, 0x91])
        );
        // An explicit CS: override stays the effective segment.
        assert_eq!(
            without_lock(&[0xF0, 0x2E, 0x02, 0x07]),
            Some(vec![0x2E, 0x2E, 0x02, 0x07])
        );
        // lock jmp rel16: the same target.
        assert_eq!(
            without_lock(&[0xF0, 0xE9, 0xD7, 0x89]),
            Some(vec![0x3E, 0xE9, 0xD7, 0x89])
        );
        // No LOCK: nothing to replace, same bytes.
        assert_eq!(without_lock(&[0x90]), Some(vec![0x90]));
    }

    #[test]
    fn prefixes_split() {
        assert_eq!(
            split_prefixes(&[0xF3, 0x26, 0xA5]),
            (&[0xF3u8, 0x26][..], &[0xA5u8][..])
        );
    }
}

/// Each rule on a real test of the set, with the vx86 CPU: the rule explains the
/// test, and a CPU that deviates from the 386 behaviour the rule checks for is
/// not excused.
#[cfg(test)]
mod data_tests {
    use super::*;
    use crate::conformance::moo::read_moo_file;
    use crate::conformance::singlestep::{
        judge, Metadata, RealModeCpu, RealModeEvent, RealModeResult, Regs286, Verdict,
    };
    use crate::conformance::vx86_cpu::Vx86Real;
    use std::path::PathBuf;

    fn set_dir() -> Option<PathBuf> {
        let d = PathBuf::from("/work/shared/conformance/singlestep/80286/v1_real_mode");
        d.is_dir().then_some(d)
    }

    /// How [`Deviant`] changes the inner CPU's result.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Deviation {
        /// BX off by one.
        Register,
        /// No exceptions reported.
        NoEvents,
        /// The HLT was not reached.
        NotHalted,
        /// A #GP reported at the instruction before anything else.
        SpuriousGp,
    }

    /// vx86 with one deviation applied to every result.
    struct Deviant(Vx86Real, Deviation);

    impl RealModeCpu for Deviant {
        fn run_test(&mut self, regs: &Regs286, ram: &[(u32, u8)]) -> RealModeResult {
            let mut r = self.0.run_test(regs, ram);
            match self.1 {
                Deviation::Register => r.regs.bx ^= 1,
                Deviation::NoEvents => r.events.clear(),
                Deviation::NotHalted => r.halted = false,
                Deviation::SpuriousGp => r.events.insert(
                    0,
                    RealModeEvent {
                        vector: GP,
                        cs: regs.cs,
                        ip: regs.ip,
                    },
                ),
            }
            r
        }
        fn read_byte(&mut self, addr: u32) -> u8 {
            self.0.read_byte(addr)
        }
    }

    #[test]
    fn every_rule_explains_its_tests_and_nothing_else() {
        let Some(dir) = set_dir() else {
            eprintln!("skipping: SingleStepTests data not present");
            return;
        };
        let meta = Metadata::load(&dir.join("metadata.json")).expect("metadata");
        use Deviation::*;
        use Diff286 as D;
        let cases: &[(&str, u32, &[Diff286], Deviation)] = &[
            ("00", 383, &[D::LockPrefix], Register),
            ("E9", 2, &[D::LockPrefix], Register),
            ("81.0", 5, &[D::LongInstruction], SpuriousGp),
            ("C7", 1685, &[D::LongInstruction], SpuriousGp),
            ("01", 459, &[D::StackFaultIsGp], Register),
            ("A5", 41, &[D::StringFaultAdvances], Register),
            ("AB", 223, &[D::StringFaultAdvances], NoEvents),
            ("8F", 568, &[D::PopMemoryFaultSp], Register),
            ("C0.5", 0, &[D::ShiftOverflowFlag], Register),
            ("9D", 0, &[D::PopfIoplNt], Register),
            ("D4", 862, &[D::AamZeroFlags], NoEvents),
            ("8E", 8, &[D::SegmentRegisterFsGs], NotHalted),
            ("F6.7", 952, &[D::IdivByteOverflowQuirk], NoEvents),
            ("CE", 1193, &[D::FrameSsForCsAnomaly], Register),
        ];
        for &(stem, index, rules, deviation) in cases {
            let file = read_moo_file(&dir.join(format!("{stem}.MOO.gz"))).expect("file");
            let t = file
                .tests
                .iter()
                .find(|t| t.index == index)
                .expect("test index");
            let mask = meta.flags_mask_for(stem, &t.bytes);
            let mut cpu = Vx86Real::default();
            assert_eq!(
                judge(&mut cpu, t, mask),
                Verdict::Difference(rules.to_vec()),
                "{stem} #{index}"
            );
            let mut bad = Deviant(Vx86Real::default(), deviation);
            assert!(
                matches!(judge(&mut bad, t, mask), Verdict::Fail(..)),
                "{stem} #{index} must fail with {deviation:?}"
            );
        }
    }
}
