//! Random user-mode integer instruction generator for host differential testing.
//!
//! The instruction forms are every legacy-encoded iced-x86 [`Code`] valid in 64-bit mode
//! whose mnemonic is in [`MNEMONICS`] (plus the optional POPCNT/LZCNT/TZCNT, see
//! [`GenConfig`]) and whose operands are all general registers, r/m, immediates or
//! string operands. Each test is one instruction plus a random initial state whose
//! register values are biased toward edge cases, and whose memory operands (base,
//! index, scale, displacement, bit-string offset, string pointers and counts) are chosen
//! so every access lands inside the data region.

pub mod fp;

use super::{FxImage, UserState, CODE_ADDR, DATA_ADDR, DATA_SIZE, RSP};
use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, EncodingKind, Instruction, Mnemonic, OpCodeOperandKind,
    OpKind, Register, RflagsBits,
};

/// RFLAGS bits (SDM Vol. 1 §3.4.3).
pub const FLAG_CF: u64 = 1 << 0;
/// Parity flag.
pub const FLAG_PF: u64 = 1 << 2;
/// Auxiliary carry flag.
pub const FLAG_AF: u64 = 1 << 4;
/// Zero flag.
pub const FLAG_ZF: u64 = 1 << 6;
/// Sign flag.
pub const FLAG_SF: u64 = 1 << 7;
/// Direction flag.
pub const FLAG_DF: u64 = 1 << 10;
/// Overflow flag.
pub const FLAG_OF: u64 = 1 << 11;
/// The six status flags.
pub const STATUS_FLAGS: u64 = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;
/// Reserved bit 1 (always 1) and IF, which user code cannot change.
const RFLAGS_FIXED: u64 = 0b10_0000_0010;

/// Mnemonics always generated.
pub const MNEMONICS: &[Mnemonic] = &[
    Mnemonic::Add,
    Mnemonic::Adc,
    Mnemonic::Sub,
    Mnemonic::Sbb,
    Mnemonic::And,
    Mnemonic::Or,
    Mnemonic::Xor,
    Mnemonic::Cmp,
    Mnemonic::Test,
    Mnemonic::Inc,
    Mnemonic::Dec,
    Mnemonic::Neg,
    Mnemonic::Not,
    Mnemonic::Shl,
    Mnemonic::Sal,
    Mnemonic::Shr,
    Mnemonic::Sar,
    Mnemonic::Rol,
    Mnemonic::Ror,
    Mnemonic::Rcl,
    Mnemonic::Rcr,
    Mnemonic::Shld,
    Mnemonic::Shrd,
    Mnemonic::Mul,
    Mnemonic::Imul,
    Mnemonic::Div,
    Mnemonic::Idiv,
    Mnemonic::Bt,
    Mnemonic::Bts,
    Mnemonic::Btr,
    Mnemonic::Btc,
    Mnemonic::Bsf,
    Mnemonic::Bsr,
    Mnemonic::Seto,
    Mnemonic::Setno,
    Mnemonic::Setb,
    Mnemonic::Setae,
    Mnemonic::Sete,
    Mnemonic::Setne,
    Mnemonic::Setbe,
    Mnemonic::Seta,
    Mnemonic::Sets,
    Mnemonic::Setns,
    Mnemonic::Setp,
    Mnemonic::Setnp,
    Mnemonic::Setl,
    Mnemonic::Setge,
    Mnemonic::Setle,
    Mnemonic::Setg,
    Mnemonic::Cmovo,
    Mnemonic::Cmovno,
    Mnemonic::Cmovb,
    Mnemonic::Cmovae,
    Mnemonic::Cmove,
    Mnemonic::Cmovne,
    Mnemonic::Cmovbe,
    Mnemonic::Cmova,
    Mnemonic::Cmovs,
    Mnemonic::Cmovns,
    Mnemonic::Cmovp,
    Mnemonic::Cmovnp,
    Mnemonic::Cmovl,
    Mnemonic::Cmovge,
    Mnemonic::Cmovle,
    Mnemonic::Cmovg,
    Mnemonic::Mov,
    Mnemonic::Movzx,
    Mnemonic::Movsx,
    Mnemonic::Movsxd,
    Mnemonic::Lea,
    Mnemonic::Xchg,
    Mnemonic::Xadd,
    Mnemonic::Cmpxchg,
    Mnemonic::Cmpxchg8b,
    Mnemonic::Cmpxchg16b,
    Mnemonic::Bswap,
    Mnemonic::Cbw,
    Mnemonic::Cwde,
    Mnemonic::Cdqe,
    Mnemonic::Cwd,
    Mnemonic::Cdq,
    Mnemonic::Cqo,
    Mnemonic::Lahf,
    Mnemonic::Sahf,
    Mnemonic::Clc,
    Mnemonic::Stc,
    Mnemonic::Cmc,
    Mnemonic::Cld,
    Mnemonic::Std,
    Mnemonic::Push,
    Mnemonic::Pop,
    Mnemonic::Movsb,
    Mnemonic::Movsw,
    Mnemonic::Movsd,
    Mnemonic::Movsq,
    Mnemonic::Stosb,
    Mnemonic::Stosw,
    Mnemonic::Stosd,
    Mnemonic::Stosq,
    Mnemonic::Lodsb,
    Mnemonic::Lodsw,
    Mnemonic::Lodsd,
    Mnemonic::Lodsq,
    Mnemonic::Scasb,
    Mnemonic::Scasw,
    Mnemonic::Scasd,
    Mnemonic::Scasq,
    Mnemonic::Cmpsb,
    Mnemonic::Cmpsw,
    Mnemonic::Cmpsd,
    Mnemonic::Cmpsq,
];

/// Which optional instructions to generate: set a flag only if the emulated CPU
/// advertises the feature in CPUID (and the host has it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenConfig {
    /// POPCNT (CPUID.01H:ECX.POPCNT\[bit 23\]).
    pub popcnt: bool,
    /// LZCNT (CPUID.80000001H:ECX.ABM\[bit 5\]).
    pub lzcnt: bool,
    /// TZCNT (CPUID.07H:EBX.BMI1\[bit 3\]).
    pub tzcnt: bool,
}

/// One generated test.
#[derive(Clone, Debug)]
pub struct TestCase {
    /// Encoded instruction, to be placed at [`CODE_ADDR`].
    pub code: Vec<u8>,
    /// The decoded instruction (for reports).
    pub instr: Instruction,
    /// Initial state.
    pub state: UserState,
    /// RFLAGS bits whose final value is architecturally undefined for this test.
    pub undefined_flags: u64,
    /// GPRs (bit i = register i) whose final value is undefined (BSF/BSR of zero).
    pub undefined_gpr: u16,
    /// Code size: 64 (64-bit mode) or 32 (compatibility mode).
    pub bits: u32,
    /// Bits of the final FXSAVE image whose value is undefined for this test
    /// (set = not compared); all zero for the integer forms.
    pub undefined_fx: FxImage,
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough for test generation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 if `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// Uniform in `lo..hi` (signed).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// Shift/rotate counts worth testing: 0, 1, around every operand width and the masks.
const COUNTS: &[u64] = &[
    0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 31, 32, 33, 63, 64, 65, 0x80, 0xFF, 0x21, 0x41,
];

/// An edge-biased register value.
fn edge_value(rng: &mut Rng) -> u64 {
    const EDGES: &[u64] = &[
        0,
        1,
        2,
        u64::MAX,
        u64::MAX - 1,
        0x8000_0000_0000_0000,
        0x7FFF_FFFF_FFFF_FFFF,
        0x8000_0000,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
        0x1_0000_0000,
        0x8000,
        0x7FFF,
        0xFFFF,
        0x80,
        0x7F,
        0xFF,
        0x100,
        0xFFFF_FFFF_8000_0000,
        0xFFFF_FFFF_FFFF_8000,
        0xFFFF_FFFF_FFFF_FF80,
    ];
    match rng.below(8) {
        0..=2 => rng.next_u64(),
        3 => rng.pick(COUNTS),
        4 => {
            // Edge in the low 8/16/32 bits, random above.
            let bits = rng.pick(&[8u32, 16, 32]);
            let low_mask = (1u64 << bits) - 1;
            (rng.next_u64() & !low_mask) | (rng.pick(EDGES) & low_mask)
        }
        5 => (rng.next_u64() as i32) as i64 as u64,
        6 => rng.next_u64() & 0xFF,
        _ => rng.pick(EDGES),
    }
}

fn op_size_bits(r: Register) -> u32 {
    r.size() as u32 * 8
}

/// GPR number (0 = RAX .. 15 = R15) of a general register of any size.
fn gpr_index(r: Register) -> Option<usize> {
    let full = r.full_register();
    let i = (full as usize).checked_sub(Register::RAX as usize)?;
    (i < 16).then_some(i)
}

fn reg_of(all: &[Register], size: u32, i: usize) -> Register {
    let base = match size {
        8 => Register::AL,
        16 => Register::AX,
        32 => Register::EAX,
        _ => Register::RAX,
    };
    all[base as usize + i]
}

fn iced_flags_to_rflags(f: u32) -> u64 {
    let mut r = 0;
    for (bit, flag) in [
        (RflagsBits::OF, FLAG_OF),
        (RflagsBits::SF, FLAG_SF),
        (RflagsBits::ZF, FLAG_ZF),
        (RflagsBits::AF, FLAG_AF),
        (RflagsBits::CF, FLAG_CF),
        (RflagsBits::PF, FLAG_PF),
        (RflagsBits::DF, FLAG_DF),
    ] {
        if f & bit != 0 {
            r |= flag;
        }
    }
    r
}

fn is_string(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Movsb
            | Mnemonic::Movsw
            | Mnemonic::Movsd
            | Mnemonic::Movsq
            | Mnemonic::Stosb
            | Mnemonic::Stosw
            | Mnemonic::Stosd
            | Mnemonic::Stosq
            | Mnemonic::Lodsb
            | Mnemonic::Lodsw
            | Mnemonic::Lodsd
            | Mnemonic::Lodsq
            | Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Scasq
            | Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Cmpsq
    )
}

fn is_shift(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Shl
            | Mnemonic::Sal
            | Mnemonic::Shr
            | Mnemonic::Sar
            | Mnemonic::Rol
            | Mnemonic::Ror
            | Mnemonic::Rcl
            | Mnemonic::Rcr
    )
}

fn operand_kind_supported(k: OpCodeOperandKind) -> bool {
    use OpCodeOperandKind as K;
    matches!(
        k,
        K::mem
            | K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_opcode
            | K::r16_rm
            | K::r32_reg
            | K::r32_opcode
            | K::r32_rm
            | K::r64_reg
            | K::r64_opcode
            | K::r64_rm
            | K::al
            | K::cl
            | K::ax
            | K::dx
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::seg_rSI
            | K::es_rDI
            | K::seg_rDI
    )
}

/// The instruction forms generated for `cfg`, in iced [`Code`] order.
pub fn forms(cfg: GenConfig) -> Vec<Code> {
    forms_for(cfg, 64)
}

/// Mnemonics generated only for 32-bit code (invalid in 64-bit mode).
pub const MNEMONICS_32: &[Mnemonic] = &[
    Mnemonic::Aaa,
    Mnemonic::Aas,
    Mnemonic::Daa,
    Mnemonic::Das,
    Mnemonic::Aam,
    Mnemonic::Aad,
    Mnemonic::Pusha,
    Mnemonic::Pushad,
    Mnemonic::Popa,
    Mnemonic::Popad,
];

/// The instruction forms generated for `cfg` and code size `bits` (64 or 32).
pub fn forms_for(cfg: GenConfig, bits: u32) -> Vec<Code> {
    let extra32: &[Mnemonic] = if bits == 32 { MNEMONICS_32 } else { &[] };
    let mut extra = extra32.to_vec();
    if cfg.popcnt {
        extra.push(Mnemonic::Popcnt);
    }
    if cfg.lzcnt {
        extra.push(Mnemonic::Lzcnt);
    }
    if cfg.tzcnt {
        extra.push(Mnemonic::Tzcnt);
    }
    Code::values()
        .filter(|&c| {
            let op = c.op_code();
            let m = c.mnemonic();
            op.is_instruction()
                && op.encoding() == EncodingKind::Legacy
                && if bits == 32 { op.mode32() } else { op.mode64() }
                && (MNEMONICS.contains(&m) || extra.contains(&m))
                // BSWAP r16 is undefined (SDM BSWAP).
                && c != Code::Bswap_r16
                && (0..op.op_count()).all(|i| operand_kind_supported(op.op_kind(i)))
        })
        .collect()
}

/// The test generator.
pub struct Generator {
    rng: Rng,
    /// Forms grouped by mnemonic: a mnemonic is picked uniformly, then one of its forms,
    /// so rare instructions (CMPXCHG16B) are tested as often as ones with many forms.
    forms: Vec<Vec<Code>>,
    regs: Vec<Register>,
    /// 64 or 32.
    bits: u32,
    /// Generate the MMX/SSE/SSE2 forms ([`fp`]) instead of the integer ones.
    fp: bool,
}

/// A chosen memory operand.
struct MemChoice {
    base: Register,
    index: Register,
    scale: u32,
    disp: i64,
    /// Effective address offset inside the data region.
    offset: usize,
}

impl Generator {
    /// A generator for `cfg`, seeded with `seed`.
    pub fn new(seed: u64, cfg: GenConfig) -> Generator {
        Generator::new_for(seed, cfg, 64)
    }

    /// A generator of `bits`-bit code (64, or 32 for compatibility mode).
    pub fn new_for(seed: u64, cfg: GenConfig, bits: u32) -> Generator {
        let bits = if bits == 32 { 32 } else { 64 };
        let mut groups: Vec<Vec<Code>> = Vec::new();
        for c in forms_for(cfg, bits) {
            match groups.iter_mut().find(|g| g[0].mnemonic() == c.mnemonic()) {
                Some(g) => g.push(c),
                None => groups.push(vec![c]),
            }
        }
        Generator {
            rng: Rng::new(seed),
            forms: groups,
            regs: Register::values().collect(),
            bits,
            fp: false,
        }
    }

    /// Keeps only the forms whose lower-case mnemonic is in `names`; false if
    /// none is left (the generator is then unchanged).
    pub fn retain_mnemonics(&mut self, names: &[&str]) -> bool {
        let keep: Vec<Vec<Code>> = self
            .forms
            .iter()
            .filter(|g| {
                let m = format!("{:?}", g[0].mnemonic()).to_lowercase();
                names.iter().any(|n| n.trim() == m)
            })
            .cloned()
            .collect();
        if keep.is_empty() {
            return false;
        }
        self.forms = keep;
        true
    }

    /// The next test. Forms that fail to encode for the random operands chosen (e.g. AH
    /// with a REX prefix) are retried with new operands.
    pub fn next_test(&mut self) -> TestCase {
        loop {
            let group = self.rng.below(self.forms.len() as u64) as usize;
            let Some(code) = self.forms.get(group).map(|g| self.rng.pick(g)) else {
                continue;
            };
            if let Some(t) = self.try_generate(code) {
                return t;
            }
        }
    }

    fn random_state(&mut self) -> UserState {
        let mut gpr = [0u64; 16];
        for g in gpr.iter_mut() {
            *g = edge_value(&mut self.rng);
        }
        gpr[RSP] = DATA_ADDR + 0x800 - 8 * self.rng.below(16);
        if self.rng.one_in(8) {
            gpr[RSP] -= self.rng.below(8);
        }
        let mut rflags = RFLAGS_FIXED | (self.rng.next_u64() & STATUS_FLAGS);
        if self.rng.one_in(4) {
            rflags |= FLAG_DF;
        }
        let mut data = vec![0u8; DATA_SIZE];
        match self.rng.below(4) {
            0 => data.iter_mut().for_each(|b| *b = self.rng.next_u64() as u8),
            1 => {
                let v = self.rng.pick(&[0u8, 0xFF, 0x80, 0x7F]);
                data.iter_mut().for_each(|b| *b = v);
            }
            _ => {
                for chunk in data.chunks_mut(8) {
                    let v = edge_value(&mut self.rng).to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
        }
        UserState {
            gpr,
            rflags,
            data,
            data_addr: DATA_ADDR,
            fx: FxImage::default(),
        }
    }

    /// Choose base/index/scale/displacement for a memory operand and set the base and
    /// index register values so the effective address lies in the data region.
    fn choose_mem(&mut self, st: &mut UserState, addr32: bool, align16: bool) -> MemChoice {
        let size = if addr32 { 32 } else { 64 };
        let no_base = self.rng.one_in(16);
        let nregs = if self.bits == 32 { 8 } else { 16 };
        let base_i = self.rng.below(nregs) as usize;
        let base = if no_base {
            Register::None
        } else {
            reg_of(&self.regs, size, base_i)
        };
        let use_index = self.rng.one_in(2);
        let nregs = nregs as usize;
        let mut index_i = self.rng.below(nregs as u64) as usize;
        if index_i == RSP || (!no_base && index_i == base_i) {
            index_i = (index_i + 1 + (index_i == RSP) as usize) % nregs;
            if index_i == RSP || (!no_base && index_i == base_i) {
                index_i = (index_i + 1) % nregs;
            }
        }
        let index = if use_index && index_i != RSP && (no_base || index_i != base_i) {
            reg_of(&self.regs, size, index_i)
        } else {
            Register::None
        };
        let scale = if index == Register::None {
            1
        } else {
            self.rng.pick(&[1u32, 2, 4, 8])
        };
        let mut disp = if self.rng.one_in(3) {
            0
        } else {
            self.rng.range(-0x200, 0x200)
        };
        let mut index_val: i64 = 0;
        if index != Register::None {
            index_val = self.rng.range(-32, 32);
            let upper = if addr32 { self.rng.next_u64() << 32 } else { 0 };
            st.gpr[index_i] = if addr32 {
                upper | (index_val as u32 as u64)
            } else {
                index_val as u64
            };
        }
        let base_off: i64 = if no_base {
            0
        } else if base_i == RSP {
            (st.gpr[RSP] - DATA_ADDR) as i64
        } else {
            let off = self.rng.range(0x400, 0xC00);
            let upper = if addr32 { self.rng.next_u64() << 32 } else { 0 };
            st.gpr[base_i] = upper | (DATA_ADDR + off as u64);
            off
        };
        if no_base {
            disp = DATA_ADDR as i64 + self.rng.range(0x100, 0xEF0);
        }
        let mut ea = base_off + index_val * scale as i64 + disp;
        if no_base {
            ea -= DATA_ADDR as i64;
        }
        if align16 && !self.rng.one_in(8) {
            disp -= ea.rem_euclid(16);
            ea -= ea.rem_euclid(16);
        }
        MemChoice {
            base,
            index,
            scale,
            disp,
            offset: ea as usize,
        }
    }

    fn try_generate(&mut self, code: Code) -> Option<TestCase> {
        if self.fp {
            return self.try_generate_fp(code);
        }
        let m = code.mnemonic();
        let op = code.op_code();
        let mut st = self.random_state();
        if is_string(m) {
            return self.generate_string(code, st);
        }
        let mut instr = Instruction::default();
        instr.set_code(code);
        // 32-bit code always uses 32-bit addressing (a 67h prefix would select 16-bit).
        let addr32 = self.bits == 32 || self.rng.one_in(8);
        let mut mem: Option<MemChoice> = None;
        let mut reg_ops: Vec<Register> = Vec::new();
        let mut mem_size_bits = 0u32;
        for i in 0..op.op_count() {
            use OpCodeOperandKind as K;
            let k = op.op_kind(i);
            let reg_size = match k {
                K::r8_or_mem | K::r8_reg | K::r8_opcode => 8,
                K::r16_or_mem | K::r16_reg | K::r16_opcode | K::r16_rm => 16,
                K::r32_or_mem | K::r32_reg | K::r32_opcode | K::r32_rm => 32,
                K::r64_or_mem | K::r64_reg | K::r64_opcode | K::r64_rm => 64,
                _ => 0,
            };
            let is_rm = matches!(
                k,
                K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem
            );
            if k == K::mem || (is_rm && self.rng.one_in(2)) {
                let align16 = m == Mnemonic::Cmpxchg16b;
                let c = self.choose_mem(&mut st, addr32, align16);
                instr.set_op_kind(i, OpKind::Memory);
                instr.set_memory_base(c.base);
                instr.set_memory_index(c.index);
                instr.set_memory_index_scale(c.scale);
                instr.set_memory_displacement64(c.disp as u64);
                let small = (-128..128).contains(&c.disp) && c.base != Register::None;
                instr.set_memory_displ_size(match (c.disp, small) {
                    (0, _) if c.base != Register::None => 0,
                    (_, true) => 1,
                    _ => 4,
                });
                mem_size_bits = reg_size;
                mem = Some(c);
                continue;
            }
            if reg_size != 0 {
                let (n, high) = match (self.bits, reg_size) {
                    (32, 8) => (8, 4),
                    (32, _) => (8, 8),
                    (_, 8) => (20, 16),
                    _ => (16, 16),
                };
                let j = self.rng.below(n) as usize;
                let r = if reg_size == 8 && j >= high {
                    // AH, CH, DH, BH
                    self.regs[Register::AH as usize + (j - high)]
                } else {
                    reg_of(&self.regs, reg_size, j)
                };
                instr.set_op_kind(i, OpKind::Register);
                instr.set_op_register(i, r);
                reg_ops.push(r);
                continue;
            }
            let fixed = match k {
                K::al => Some(Register::AL),
                K::cl => Some(Register::CL),
                K::ax => Some(Register::AX),
                K::dx => Some(Register::DX),
                K::eax => Some(Register::EAX),
                K::rax => Some(Register::RAX),
                _ => None,
            };
            if let Some(r) = fixed {
                instr.set_op_kind(i, OpKind::Register);
                instr.set_op_register(i, r);
                continue;
            }
            let (kind, val): (OpKind, i64) = match k {
                K::imm8_const_1 => (OpKind::Immediate8, 1),
                K::imm8 => {
                    let v = if is_shift(m) || matches!(m, Mnemonic::Shld | Mnemonic::Shrd) {
                        self.rng.pick(COUNTS) as i64 & 0xFF
                    } else {
                        edge_value(&mut self.rng) as u8 as i64
                    };
                    (OpKind::Immediate8, v)
                }
                K::imm8sex16 => (
                    OpKind::Immediate8to16,
                    edge_value(&mut self.rng) as i8 as i64,
                ),
                K::imm8sex32 => (
                    OpKind::Immediate8to32,
                    edge_value(&mut self.rng) as i8 as i64,
                ),
                K::imm8sex64 => (
                    OpKind::Immediate8to64,
                    edge_value(&mut self.rng) as i8 as i64,
                ),
                K::imm16 => (OpKind::Immediate16, edge_value(&mut self.rng) as u16 as i64),
                K::imm32 => (OpKind::Immediate32, edge_value(&mut self.rng) as u32 as i64),
                K::imm32sex64 => (
                    OpKind::Immediate32to64,
                    edge_value(&mut self.rng) as i32 as i64,
                ),
                K::imm64 => (OpKind::Immediate64, edge_value(&mut self.rng) as i64),
                _ => return None,
            };
            instr.set_op_kind(i, kind);
            instr.try_set_immediate_i64(i, val).ok()?;
        }
        if let Some(c) = &mem {
            if mem_size_bits == 0 {
                mem_size_bits = match m {
                    Mnemonic::Cmpxchg16b => 128,
                    _ => 64,
                };
            }
            self.apply_mem_constraints(code, &mut st, c, &reg_ops, mem_size_bits)?;
        }
        self.apply_operand_biases(code, &mut st, &instr, &mem);
        if mem.is_some() && self.rng.one_in(8) {
            // LOCK on a memory destination; forms where LOCK is invalid decode as
            // invalid below and are retried, so only legal locked forms are generated.
            instr.set_has_lock_prefix(true);
        }
        let bytes = encode(&instr, self.bits)?;
        let decoded = decode_for(&bytes, self.bits)?;
        if decoded.code() != code {
            return None;
        }
        let (undefined_flags, undefined_gpr) = undefined_for(&decoded, &st);
        if undefined_flags == u64::MAX {
            return None;
        }
        Some(TestCase {
            code: bytes,
            instr: decoded,
            state: st,
            undefined_flags,
            undefined_gpr,
            bits: self.bits,
            undefined_fx: FxImage::zeroed(),
        })
    }

    /// BT*/memory: the bit offset register must keep the access in the region and must
    /// not be the base or index register; CMPXCHG*: make the comparison succeed often.
    fn apply_mem_constraints(
        &mut self,
        code: Code,
        st: &mut UserState,
        c: &MemChoice,
        reg_ops: &[Register],
        size_bits: u32,
    ) -> Option<()> {
        let m = code.mnemonic();
        let addr_regs: Vec<usize> = [c.base, c.index]
            .iter()
            .filter_map(|&r| gpr_index(r))
            .collect();
        let is_bt = matches!(
            m,
            Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
        );
        if is_bt {
            if let Some(&r) = reg_ops.first() {
                let gi = gpr_index(r)?;
                if addr_regs.contains(&gi) || gi == RSP {
                    return None;
                }
                let off = self.rng.range(-2048, 2048);
                let bits = op_size_bits(r);
                let mask = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                st.gpr[gi] = (st.gpr[gi] & !mask) | (off as u64 & mask);
            }
        }
        let bytes = (size_bits / 8) as usize;
        if matches!(
            m,
            Mnemonic::Cmpxchg | Mnemonic::Cmpxchg8b | Mnemonic::Cmpxchg16b
        ) && self.rng.one_in(2)
        {
            let mut v = [0u8; 16];
            v[..8].copy_from_slice(&st.gpr[0].to_le_bytes());
            if m != Mnemonic::Cmpxchg {
                let hi = st.gpr[2].to_le_bytes();
                if m == Mnemonic::Cmpxchg8b {
                    v[4..8].copy_from_slice(&hi[..4]);
                } else {
                    v[8..16].copy_from_slice(&hi);
                }
            }
            let n = if m == Mnemonic::Cmpxchg8b {
                8
            } else {
                bytes.min(16)
            };
            if let Some(dst) = st.data.get_mut(c.offset..c.offset + n) {
                dst.copy_from_slice(&v[..n]);
            }
        }
        Some(())
    }

    /// Edge biases that depend on the operands: shift counts in CL, non-overflowing
    /// dividends, equal CMPXCHG register operands, in-range 16-bit SHLD/SHRD counts.
    fn apply_operand_biases(
        &mut self,
        code: Code,
        st: &mut UserState,
        instr: &Instruction,
        mem: &Option<MemChoice>,
    ) {
        let m = code.mnemonic();
        let addr_regs: Vec<usize> = mem
            .iter()
            .flat_map(|c| [c.base, c.index])
            .filter_map(gpr_index)
            .collect();
        let uses_cl = (0..instr.op_count())
            .any(|i| instr.op_kind(i) == OpKind::Register && instr.op_register(i) == Register::CL);
        let shld16 =
            matches!(m, Mnemonic::Shld | Mnemonic::Shrd) && instr.op_register(1).size() == 2;
        if uses_cl && !addr_regs.contains(&1) {
            let mut cnt = self.rng.pick(COUNTS);
            if shld16 {
                cnt %= 17;
            }
            st.gpr[1] = (st.gpr[1] & !0xFF) | cnt;
        }
        if matches!(m, Mnemonic::Div | Mnemonic::Idiv) && self.rng.one_in(2) {
            // Make the high half of the dividend small so the quotient fits (mostly).
            let op_bits = if instr.op0_kind() == OpKind::Register {
                op_size_bits(instr.op_register(0))
            } else {
                instr.memory_size().size() as u32 * 8
            };
            let signed = m == Mnemonic::Idiv;
            match op_bits {
                8 => {
                    let ah = if signed && (st.gpr[0] as u8 as i8) < 0 {
                        0xFF
                    } else {
                        0
                    };
                    if !addr_regs.contains(&0) {
                        st.gpr[0] = (st.gpr[0] & !0xFF00) | (ah << 8);
                    }
                }
                _ if !addr_regs.contains(&2) => {
                    let neg = match op_bits {
                        16 => (st.gpr[0] as u16 as i16) < 0,
                        32 => (st.gpr[0] as u32 as i32) < 0,
                        _ => (st.gpr[0] as i64) < 0,
                    };
                    let hi = if signed && neg {
                        u64::MAX
                    } else {
                        self.rng.below(2)
                    };
                    let mask = if op_bits == 64 {
                        u64::MAX
                    } else {
                        (1u64 << op_bits) - 1
                    };
                    st.gpr[2] = (st.gpr[2] & !mask) | (hi & mask);
                }
                _ => {}
            }
        }
        if m == Mnemonic::Cmpxchg && instr.op0_kind() == OpKind::Register && self.rng.one_in(2) {
            if let Some(d) = gpr_index(instr.op_register(0)) {
                let high8 = (Register::AH..=Register::BH).contains(&instr.op_register(0));
                if d != 0 && d != RSP && !high8 {
                    st.gpr[d] = st.gpr[0];
                }
            }
        }
    }

    fn generate_string(&mut self, code: Code, mut st: UserState) -> Option<TestCase> {
        let m = code.mnemonic();
        let op = code.op_code();
        let compare = matches!(
            m,
            Mnemonic::Scasb
                | Mnemonic::Scasw
                | Mnemonic::Scasd
                | Mnemonic::Scasq
                | Mnemonic::Cmpsb
                | Mnemonic::Cmpsw
                | Mnemonic::Cmpsd
                | Mnemonic::Cmpsq
        );
        let mut bytes = Vec::new();
        match self.rng.below(3) {
            0 => {}
            1 => bytes.push(0xF3),
            _ => bytes.push(if compare { 0xF2 } else { 0xF3 }),
        }
        let addr32 = self.bits == 64 && self.rng.one_in(4);
        if addr32 {
            bytes.push(0x67);
        }
        match op.operand_size() {
            16 => bytes.push(0x66),
            64 => bytes.push(0x48),
            _ => {}
        }
        bytes.push(op.op_code() as u8);
        let upper = |rng: &mut Rng| if addr32 { rng.next_u64() << 32 } else { 0 };
        let si = self.rng.range(0x400, 0xC00) as u64;
        let di = if self.rng.one_in(4) {
            si
        } else {
            self.rng.range(0x400, 0xC00) as u64
        };
        st.gpr[6] = upper(&mut self.rng) | (DATA_ADDR + si);
        st.gpr[7] = upper(&mut self.rng) | (DATA_ADDR + di);
        st.gpr[1] = upper(&mut self.rng) | self.rng.below(10);
        st.rflags = (st.rflags & !FLAG_DF) | if self.rng.one_in(2) { FLAG_DF } else { 0 };
        if compare && self.rng.one_in(2) {
            // Make the two strings (or the string and the accumulator) mostly equal.
            let lo = si.min(di) as usize - 0x100;
            let fill = self.rng.next_u64() as u8;
            for b in st.data[lo..lo + 0x400].iter_mut() {
                *b = fill;
            }
            st.gpr[0] = u64::from_le_bytes([fill; 8]);
            if self.rng.one_in(2) {
                let k = lo + self.rng.below(0x400) as usize;
                st.data[k] ^= 1 << self.rng.below(8);
            }
        }
        let decoded = decode_for(&bytes, self.bits)?;
        if decoded.code() != code {
            return None;
        }
        let (undefined_flags, undefined_gpr) = undefined_for(&decoded, &st);
        Some(TestCase {
            code: bytes,
            instr: decoded,
            state: st,
            undefined_flags,
            undefined_gpr,
            bits: self.bits,
            undefined_fx: FxImage::zeroed(),
        })
    }
}

fn encode(instr: &Instruction, bits: u32) -> Option<Vec<u8>> {
    let mut enc = Encoder::new(bits);
    enc.encode(instr, CODE_ADDR).ok()?;
    Some(enc.take_buffer())
}

/// Decode exactly one instruction occupying all of `bytes`.
pub fn decode(bytes: &[u8]) -> Option<Instruction> {
    decode_for(bytes, 64)
}

/// Decode exactly one `bits`-bit instruction occupying all of `bytes`.
pub fn decode_for(bytes: &[u8], bits: u32) -> Option<Instruction> {
    let mut d = Decoder::with_ip(bits, bytes, CODE_ADDR, DecoderOptions::NONE);
    let i = d.decode();
    (!i.is_invalid() && i.len() == bytes.len()).then_some(i)
}

/// Value of a register operand (any size) in `st`.
fn reg_value(st: &UserState, r: Register) -> Option<u64> {
    let g = st.gpr[gpr_index(r)?];
    Some(match r.size() {
        1 if (Register::AH..=Register::BH).contains(&r) => (g >> 8) & 0xFF,
        1 => g & 0xFF,
        2 => g & 0xFFFF,
        4 => g & 0xFFFF_FFFF,
        _ => g,
    })
}

/// Undefined RFLAGS bits and GPRs for `instr` with initial state `st`.
///
/// Static sets come from iced-x86 (`Instruction::rflags_undefined`); count-dependent
/// rules per SDM Vol. 2 (SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD):
/// a masked count of 0 changes no flags; OF is defined only for a count of 1; shifts
/// leave AF undefined; SHL/SHR leave CF undefined when the count >= the operand width.
/// Returns `u64::MAX` flags for combinations whose result itself is undefined (16-bit
/// SHLD/SHRD with a count > 16), which the generator then rejects.
pub fn undefined_for(instr: &Instruction, st: &UserState) -> (u64, u16) {
    let m = instr.mnemonic();
    let mut flags = iced_flags_to_rflags(instr.rflags_undefined());
    let mut gprs = 0u16;
    let count_op = match m {
        _ if is_shift(m) => Some(1),
        Mnemonic::Shld | Mnemonic::Shrd => Some(2),
        _ => None,
    };
    if let Some(ci) = count_op {
        let width = if instr.op0_kind() == OpKind::Register {
            instr.op_register(0).size() as u32 * 8
        } else {
            instr.memory_size().size() as u32 * 8
        };
        let raw = match instr.op_kind(ci) {
            OpKind::Register => reg_value(st, instr.op_register(ci)).unwrap_or(0),
            _ => instr.immediate(ci),
        };
        let count = raw & if width == 64 { 0x3F } else { 0x1F };
        flags = 0;
        if count != 0 {
            if count != 1 {
                flags |= FLAG_OF;
            }
            if matches!(
                m,
                Mnemonic::Shl
                    | Mnemonic::Sal
                    | Mnemonic::Shr
                    | Mnemonic::Sar
                    | Mnemonic::Shld
                    | Mnemonic::Shrd
            ) {
                flags |= FLAG_AF;
            }
            if matches!(m, Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr) && count >= width as u64 {
                flags |= FLAG_CF;
            }
            if matches!(m, Mnemonic::Shld | Mnemonic::Shrd) && count > width as u64 {
                return (u64::MAX, 0);
            }
        }
    }
    if matches!(m, Mnemonic::Bsf | Mnemonic::Bsr) {
        let src = match instr.op1_kind() {
            OpKind::Register => reg_value(st, instr.op_register(1)),
            _ => {
                let ea = mem_ea(instr, st);
                let n = instr.memory_size().size();
                ea.and_then(|a| a.checked_sub(st.data_addr))
                    .and_then(|off| {
                        let off = off as usize;
                        st.data
                            .get(off..off + n)
                            .map(|b| b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
                    })
            }
        };
        if src == Some(0) || src.is_none() {
            if let Some(d) = gpr_index(instr.op_register(0)) {
                gprs |= 1 << d;
            }
        }
    }
    (flags, gprs)
}

/// Effective address of `instr`'s explicit memory operand in `st` (64- or 32-bit
/// addressing), or `None` without one.
pub fn mem_ea(instr: &Instruction, st: &UserState) -> Option<u64> {
    (0..instr.op_count()).find(|&i| instr.op_kind(i) == OpKind::Memory)?;
    let val = |r: Register| -> u64 {
        if r == Register::None {
            0
        } else {
            gpr_index(r).map(|i| st.gpr[i]).unwrap_or(0)
        }
    };
    let ea = val(instr.memory_base())
        .wrapping_add(val(instr.memory_index()).wrapping_mul(instr.memory_index_scale() as u64))
        .wrapping_add(instr.memory_displacement64());
    Some(
        if instr.memory_base().size() == 4 || instr.memory_index().size() == 4 {
            ea & 0xFFFF_FFFF
        } else {
            ea
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_cover_the_required_groups() {
        let f = forms(GenConfig::default());
        for c in [
            Code::Add_rm8_r8,
            Code::Adc_rm64_imm32,
            Code::Shl_rm32_CL,
            Code::Rcr_rm16_1,
            Code::Rol_rm64_imm8,
            Code::Imul_r64_rm64_imm8,
            Code::Div_rm8,
            Code::Bts_rm64_r64,
            Code::Btc_rm16_imm8,
            Code::Cmpxchg16b_m128,
            Code::Cmpxchg8b_m64,
            Code::Shld_rm16_r16_CL,
            Code::Movsxd_r64_rm32,
            Code::Bswap_r64,
            Code::Sete_rm8,
            Code::Cmovg_r32_rm32,
            Code::Lahf,
            Code::Cqo,
            Code::Pushq_imm32,
            Code::Pop_rm64,
            Code::Movsq_m64_m64,
            Code::Cmpsb_m8_m8,
            Code::Scasw_AX_m16,
        ] {
            assert!(f.contains(&c), "{c:?} missing");
        }
        assert!(!f.contains(&Code::Bswap_r16));
        assert!(!f.contains(&Code::Popcnt_r32_rm32));
        assert!(forms(GenConfig {
            popcnt: true,
            ..GenConfig::default()
        })
        .contains(&Code::Popcnt_r32_rm32));
        // No segment-register or control-register forms.
        assert!(!f.contains(&Code::Mov_Sreg_rm16));
        assert!(!f.contains(&Code::Popq_FS));
    }

    #[test]
    fn generated_tests_decode_back_and_stay_in_the_data_region() {
        check_generated(
            64,
            &[Mnemonic::Cmpsq, Mnemonic::Cmpxchg16b, Mnemonic::Movsxd],
        );
        check_generated(
            32,
            &[
                Mnemonic::Aaa,
                Mnemonic::Daa,
                Mnemonic::Pushad,
                Mnemonic::Cmpsd,
            ],
        );
    }

    fn check_generated(bits: u32, expect: &[Mnemonic]) {
        let mut g = Generator::new_for(0x1234_5678, GenConfig::default(), bits);
        let mut mem_tests = 0;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let t = g.next_test();
            assert_eq!(t.bits, bits);
            let d = decode_for(&t.code, bits).expect("decodes");
            assert_eq!(d.code(), t.instr.code());
            assert_eq!(d.len(), t.code.len());
            seen.insert(d.mnemonic());
            let st = &t.state;
            assert_eq!(st.data.len(), DATA_SIZE);
            let lo = st.data_addr;
            let hi = st.data_addr + DATA_SIZE as u64;
            assert!((lo..hi).contains(&st.gpr[RSP]));
            if let Some(ea) = mem_ea(&d, st) {
                mem_tests += 1;
                let size = d.memory_size().size().max(1) as u64;
                let mut start = ea;
                if matches!(
                    d.mnemonic(),
                    Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
                ) && d.op1_kind() == OpKind::Register
                {
                    let bits = reg_value(st, d.op_register(1)).expect("gpr");
                    let w = d.op_register(1).size() as u32 * 8;
                    let signed = ((bits << (64 - w)) as i64) >> (64 - w);
                    let units = signed.div_euclid(8 * size as i64);
                    start = ea.wrapping_add((units * size as i64) as u64);
                }
                if d.mnemonic() != Mnemonic::Lea {
                    assert!(
                        start >= lo && start + size <= hi,
                        "{d} ea {ea:#x} start {start:#x} out of region"
                    );
                }
            }
            if is_string(d.mnemonic()) {
                let w = d.memory_size().size() as u64;
                let n = if d.has_rep_prefix() || d.has_repne_prefix() {
                    st.gpr[1] & 0xFFFF_FFFF
                } else {
                    1
                };
                for r in [6usize, 7] {
                    let p = st.gpr[r] & 0xFFFF_FFFF;
                    assert!(
                        p >= lo + n * w && p + (n + 1) * w <= hi,
                        "{d} pointer out of range"
                    );
                }
            }
        }
        assert!(mem_tests > 3_000, "only {mem_tests} memory-operand tests");
        for m in [Mnemonic::Add, Mnemonic::Shrd, Mnemonic::Idiv, Mnemonic::Bt]
            .iter()
            .chain(expect)
        {
            assert!(seen.contains(m), "{m:?} never generated ({bits}-bit)");
        }
        if bits == 32 {
            for m in [
                Mnemonic::Cdqe,
                Mnemonic::Movsxd,
                Mnemonic::Cmpxchg16b,
                Mnemonic::Movsq,
            ] {
                assert!(!seen.contains(&m), "{m:?} generated in 32-bit code");
            }
        }
    }

    #[test]
    fn shift_count_rules() {
        let mut st = UserState {
            gpr: [0; 16],
            rflags: 0x202,
            data: vec![0; 16],
            data_addr: DATA_ADDR,
            fx: FxImage::default(),
        };
        // shl eax, cl
        let i = decode(&[0xD3, 0xE0]).expect("shl");
        st.gpr[1] = 0x20; // masked to 0
        assert_eq!(undefined_for(&i, &st).0, 0);
        st.gpr[1] = 1;
        assert_eq!(undefined_for(&i, &st).0, FLAG_AF);
        st.gpr[1] = 5;
        assert_eq!(undefined_for(&i, &st).0, FLAG_AF | FLAG_OF);
        // shl al, cl with count 9 >= 8: CF undefined too.
        let i8 = decode(&[0xD2, 0xE0]).expect("shl al");
        st.gpr[1] = 9;
        assert_eq!(undefined_for(&i8, &st).0, FLAG_AF | FLAG_OF | FLAG_CF);
        // rol rax, 0x40: masked to 0 in 64-bit.
        let r = decode(&[0x48, 0xC1, 0xC0, 0x40]).expect("rol");
        assert_eq!(undefined_for(&r, &st).0, 0);
        // mul: SF ZF AF PF undefined.
        let mul = decode(&[0xF7, 0xE1]).expect("mul");
        assert_eq!(
            undefined_for(&mul, &st).0,
            FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF
        );
        // bsf eax, ecx with ecx = 0: eax undefined.
        st.gpr[1] = 0xFFFF_FFFF_0000_0000;
        let bsf = decode(&[0x0F, 0xBC, 0xC1]).expect("bsf");
        assert_eq!(undefined_for(&bsf, &st).1, 1);
    }

    #[test]
    fn rng_is_deterministic() {
        let mut a = Generator::new(7, GenConfig::default());
        let mut b = Generator::new(7, GenConfig::default());
        for _ in 0..100 {
            let (x, y) = (a.next_test(), b.next_test());
            assert_eq!(x.code, y.code);
            assert_eq!(x.state, y.state);
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn locked_forms_are_generated_and_valid() {
        let mut g = Generator::new(11, GenConfig::default());
        let mut locked = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let t = g.next_test();
            if t.instr.has_lock_prefix() {
                assert_eq!(t.instr.op0_kind(), OpKind::Memory, "{:?}", t.instr.code());
                locked.insert(t.instr.mnemonic());
            }
        }
        for m in [
            Mnemonic::Add,
            Mnemonic::Xadd,
            Mnemonic::Cmpxchg,
            Mnemonic::Bts,
        ] {
            assert!(locked.contains(&m), "no lock {m:?}");
        }
        assert!(!locked.contains(&Mnemonic::Mov));
        assert!(!locked.contains(&Mnemonic::Cmp));
    }
}
