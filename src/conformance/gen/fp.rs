//! MMX/SSE/SSE2 test generation: every legacy-encoded form whose CPUID
//! feature is MMX, SSE or SSE2 (state-management and cache-control forms
//! aside), with register and memory inputs drawn from the values where
//! floating point is hard: NaNs (quiet and signaling, with payloads), zeros of
//! both signs, denormals, infinities, the normal range limits, values at the
//! integer conversion limits, random bit patterns; and a random MXCSR (all
//! four rounding modes, DAZ, FTZ, masked and unmasked exceptions, sticky
//! flags already set).

use super::*;
use crate::conformance::fximage::off;
use iced_x86::CpuidFeature;

/// Mnemonics of MMX/SSE/SSE2 forms that are not generated: prefetches,
/// fences and cache control (no architectural result), FXSAVE/FXRSTOR (x87
/// state management, tested with the x87 forms).
const SKIPPED: &[Mnemonic] = &[
    Mnemonic::Prefetchnta,
    Mnemonic::Prefetcht0,
    Mnemonic::Prefetcht1,
    Mnemonic::Prefetcht2,
    Mnemonic::Lfence,
    Mnemonic::Mfence,
    Mnemonic::Sfence,
    Mnemonic::Clflush,
    Mnemonic::Pause,
    Mnemonic::Fxsave,
    Mnemonic::Fxsave64,
    Mnemonic::Fxrstor,
    Mnemonic::Fxrstor64,
];

fn fp_operand_supported(k: OpCodeOperandKind) -> bool {
    use OpCodeOperandKind as K;
    matches!(
        k,
        K::mem
            | K::mm_reg
            | K::mm_rm
            | K::mm_or_mem
            | K::xmm_reg
            | K::xmm_rm
            | K::xmm_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::r32_reg
            | K::r64_reg
            | K::r32_rm
            | K::r64_rm
            | K::r32_reg_mem
            | K::r64_reg_mem
            | K::imm8
            | K::seg_rDI
    )
}

/// The MMX/SSE/SSE2 forms generated for `bits`-bit code.
pub fn fp_forms(bits: u32) -> Vec<Code> {
    Code::values()
        .filter(|&c| {
            let op = c.op_code();
            op.is_instruction()
                && op.encoding() == EncodingKind::Legacy
                && if bits == 32 { op.mode32() } else { op.mode64() }
                && c.cpuid_features().iter().all(|f| {
                    matches!(
                        f,
                        CpuidFeature::MMX | CpuidFeature::SSE | CpuidFeature::SSE2
                    )
                })
                && !c.cpuid_features().is_empty()
                && !SKIPPED.contains(&c.mnemonic())
                && (0..op.op_count()).all(|i| fp_operand_supported(op.op_kind(i)))
        })
        .collect()
}

/// Interesting binary32 values.
const F32_EDGES: &[u32] = &[
    0x0000_0000, // +0
    0x8000_0000, // -0
    0x7F80_0000, // +inf
    0xFF80_0000, // -inf
    0x7FC0_0000, // QNaN
    0xFFC0_0000, // default NaN
    0x7FC1_2345, // QNaN with payload
    0xFFE0_0001, // negative QNaN with payload
    0x7F80_0001, // SNaN
    0xFFBF_FFFF, // negative SNaN, full payload
    0x7FA0_0000, // SNaN
    0x0000_0001, // smallest denormal
    0x807F_FFFF, // largest negative denormal
    0x0040_0000, // denormal
    0x0080_0000, // smallest normal
    0x8080_0000, // negative smallest normal
    0x7F7F_FFFF, // largest finite
    0xFF7F_FFFF,
    0x3F80_0000, // 1.0
    0xBF80_0000, // -1.0
    0x3F00_0000, // 0.5
    0x3FC0_0000, // 1.5
    0x4020_0000, // 2.5
    0xC020_0000, // -2.5
    0x4040_0000, // 3.0
    0x3EAA_AAAB, // 1/3
    0x4F00_0000, // 2^31
    0xCF00_0000, // -2^31
    0x4EFF_FFFF, // largest float below 2^31
    0xCF00_0001, // just below -2^31
    0x5F00_0000, // 2^63
    0xDF00_0000, // -2^63
    0x5EFF_FFFF,
    0x4B80_0000, // 2^24
    0x4B7F_FFFF,
    0x0080_0001,
    0x00FF_FFFF,
    0x3400_0000, // 2^-23
    0x1F80_0000, // 2^-64
    0x5F80_0000, // 2^64
];

/// Interesting binary64 values.
const F64_EDGES: &[u64] = &[
    0x0000_0000_0000_0000,
    0x8000_0000_0000_0000,
    0x7FF0_0000_0000_0000,
    0xFFF0_0000_0000_0000,
    0x7FF8_0000_0000_0000,
    0xFFF8_0000_0000_0000,
    0x7FF8_0000_1234_5678,
    0xFFFC_0000_0000_0001,
    0x7FF0_0000_0000_0001,
    0xFFF7_FFFF_FFFF_FFFF,
    0x7FF4_0000_0000_0000,
    0x7FF0_0001_0000_0000, // SNaN whose payload survives conversion to single
    0x0000_0000_0000_0001,
    0x800F_FFFF_FFFF_FFFF,
    0x0008_0000_0000_0000,
    0x0010_0000_0000_0000,
    0x8010_0000_0000_0000,
    0x7FEF_FFFF_FFFF_FFFF,
    0xFFEF_FFFF_FFFF_FFFF,
    0x3FF0_0000_0000_0000,
    0xBFF0_0000_0000_0000,
    0x3FE0_0000_0000_0000,
    0x3FF8_0000_0000_0000,
    0x4004_0000_0000_0000,
    0xC004_0000_0000_0000,
    0x3FD5_5555_5555_5555,
    0x41E0_0000_0000_0000, // 2^31
    0xC1E0_0000_0000_0000, // -2^31
    0x41DF_FFFF_FFC0_0000, // 2^31 - 1
    0x41DF_FFFF_FFE0_0000, // 2^31 - 0.5
    0xC1E0_0000_0010_0000, // -2^31 - 0.5
    0xC1E0_0000_0020_0000, // -2^31 - 1
    0x43E0_0000_0000_0000, // 2^63
    0xC3E0_0000_0000_0000, // -2^63
    0x43DF_FFFF_FFFF_FFFF,
    0x47EF_FFFF_E000_0000, // largest single, as double
    0x47EF_FFFF_F000_0000, // rounds up to single overflow
    0x3810_0000_0000_0000, // smallest normal single
    0x380F_FFFF_F000_0000, // just below: single underflow
    0x36A0_0000_0000_0000, // smallest single denormal
    0x3690_0000_0000_0000, // half of it
    0x3CB0_0000_0000_0000, // 2^-52
];

fn f32_value(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0..=3 => rng.pick(F32_EDGES),
        4 => {
            // Random sign and mantissa, exponent near an extreme.
            let e = rng.pick(&[0u32, 1, 2, 0x3F, 0x40, 0x7E, 0x7F, 0x80, 0xFD, 0xFE, 0xFF]);
            ((rng.next_u64() as u32) & 0x807F_FFFF) | (e << 23)
        }
        5 => {
            // Random normal of moderate magnitude.
            let e = 0x60 + rng.below(0x40) as u32;
            ((rng.next_u64() as u32) & 0x807F_FFFF) | (e << 23)
        }
        6 => (rng.next_u64() as i32 as f32).to_bits(),
        _ => rng.next_u64() as u32,
    }
}

fn f64_value(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0..=3 => rng.pick(F64_EDGES),
        4 => {
            let e = rng.pick(&[
                0u64, 1, 2, 0x380, 0x381, 0x36A, 0x3FE, 0x3FF, 0x47E, 0x47F, 0x7FD, 0x7FE, 0x7FF,
            ]);
            (rng.next_u64() & 0x800F_FFFF_FFFF_FFFF) | (e << 52)
        }
        5 => {
            let e = 0x3C0 + rng.below(0x80);
            (rng.next_u64() & 0x800F_FFFF_FFFF_FFFF) | (e << 52)
        }
        6 => (rng.next_u64() as i64 as f64).to_bits(),
        _ => rng.next_u64(),
    }
}

/// A 128-bit value: four singles, two doubles, or integer patterns.
fn vec_value(rng: &mut Rng) -> u128 {
    match rng.below(6) {
        0 | 1 => {
            let mut v = 0u128;
            for i in 0..4 {
                v |= (f32_value(rng) as u128) << (32 * i);
            }
            v
        }
        2 | 3 => (f64_value(rng) as u128) | (f64_value(rng) as u128) << 64,
        4 => (edge_value(rng) as u128) | (edge_value(rng) as u128) << 64,
        _ => (rng.next_u64() as u128) | (rng.next_u64() as u128) << 64,
    }
}

/// A random MXCSR: any rounding mode, DAZ, FTZ, usually all exceptions
/// masked, sometimes some unmasked, sometimes sticky flags already set.
fn mxcsr_value(rng: &mut Rng) -> u32 {
    let mut m = 0x1F80u32;
    m |= (rng.below(4) as u32) << 13;
    if rng.one_in(4) {
        m |= 1 << 6; // DAZ
    }
    if rng.one_in(4) {
        m |= 1 << 15; // FTZ
    }
    if rng.one_in(4) {
        m &= !((rng.next_u64() as u32 & 0x3F) << 7);
    }
    if rng.one_in(3) {
        m |= rng.next_u64() as u32 & 0x3F;
    }
    m
}

impl Generator {
    /// A generator of MMX/SSE/SSE2 tests for `bits`-bit code.
    pub fn new_fp(seed: u64, bits: u32) -> Generator {
        let bits = if bits == 32 { 32 } else { 64 };
        let mut groups: Vec<Vec<Code>> = Vec::new();
        for c in fp_forms(bits) {
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
            fp: true,
        }
    }

    fn random_fx(&mut self) -> FxImage {
        let mut fx = FxImage::default();
        let nx = if self.bits == 32 { 8 } else { 16 };
        for i in 0..16 {
            let v = if i < nx { vec_value(&mut self.rng) } else { 0 };
            fx.set_xmm(i, v);
        }
        fx.set_mxcsr(mxcsr_value(&mut self.rng));
        // x87 registers: MMX values or arbitrary 80-bit patterns.
        for i in 0..8 {
            let sig = edge_value(&mut self.rng);
            let se = if self.rng.one_in(2) {
                0xFFFF
            } else {
                self.rng.next_u64() as u16
            };
            fx.set_st(i, sig, se);
        }
        let top = self.rng.below(8) as u16;
        let mut fsw = top << 11;
        if self.rng.one_in(32) {
            // A pending unmasked x87 exception: MMX instructions raise #MF.
            fsw |= 0x0081;
            fx.set_u16(off::FCW, 0x037E);
        }
        fx.set_u16(off::FSW, fsw);
        fx.0[off::FTW] = match self.rng.below(3) {
            0 => 0,
            1 => 0xFF,
            _ => self.rng.next_u64() as u8,
        };
        fx
    }

    /// One MMX/SSE/SSE2 test of form `code`.
    pub(super) fn try_generate_fp(&mut self, code: Code) -> Option<TestCase> {
        let op = code.op_code();
        let mut st = self.random_state();
        for chunk in st.data.chunks_mut(16) {
            let v = vec_value(&mut self.rng).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        st.fx = self.random_fx();
        let nx = if self.bits == 32 { 8 } else { 16 };
        let mut instr = if matches!(
            code,
            Code::Maskmovdqu_rDI_xmm_xmm | Code::Maskmovq_rDI_mm_mm
        ) {
            let (r0, r1, n) = if code == Code::Maskmovq_rDI_mm_mm {
                (Register::MM0, Register::MM0, 8)
            } else {
                (Register::XMM0, Register::XMM0, nx)
            };
            let a = self.rng.below(n) as usize;
            let b = self.rng.below(n) as usize;
            let (ra, rb) = (self.regs[r0 as usize + a], self.regs[r1 as usize + b]);
            st.gpr[7] = DATA_ADDR + self.rng.range(0x400, 0xC00) as u64;
            let asz = self.bits.min(64);
            let i = if code == Code::Maskmovq_rDI_mm_mm {
                Instruction::with_maskmovq(asz, ra, rb, Register::None)
            } else {
                Instruction::with_maskmovdqu(asz, ra, rb, Register::None)
            };
            i.ok()?
        } else {
            let mut instr = Instruction::default();
            instr.set_code(code);
            let addr32 = self.bits == 32 || self.rng.one_in(8);
            for i in 0..op.op_count() {
                use OpCodeOperandKind as K;
                let k = op.op_kind(i);
                let is_rm = matches!(
                    k,
                    K::mm_or_mem | K::xmm_or_mem | K::r32_or_mem | K::r64_or_mem
                );
                if k == K::mem || (is_rm && self.rng.one_in(2)) {
                    let align16 = instr.memory_size().size() == 16;
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
                    continue;
                }
                let r = match k {
                    K::mm_reg | K::mm_rm | K::mm_or_mem => {
                        self.regs[Register::MM0 as usize + self.rng.below(8) as usize]
                    }
                    K::xmm_reg | K::xmm_rm | K::xmm_or_mem => {
                        self.regs[Register::XMM0 as usize + self.rng.below(nx) as usize]
                    }
                    K::r32_reg | K::r32_rm | K::r32_or_mem | K::r32_reg_mem => {
                        reg_of(&self.regs, 32, self.rng.below(nx) as usize)
                    }
                    K::r64_reg | K::r64_rm | K::r64_or_mem | K::r64_reg_mem => {
                        reg_of(&self.regs, 64, self.rng.below(nx) as usize)
                    }
                    K::imm8 => {
                        instr.set_op_kind(i, OpKind::Immediate8);
                        let v = match self.rng.below(4) {
                            0 => self.rng.below(8),
                            1 => self.rng.pick(COUNTS),
                            _ => self.rng.next_u64() & 0xFF,
                        };
                        instr.set_immediate8(v as u8);
                        continue;
                    }
                    _ => return None,
                };
                instr.set_op_kind(i, OpKind::Register);
                instr.set_op_register(i, r);
            }
            instr
        };
        if matches!(code.mnemonic(), Mnemonic::Ldmxcsr) && self.rng.one_in(2) {
            // Mostly valid MXCSR values (reserved bits set raise #GP).
            if let Some(ea) = mem_ea(&instr, &st) {
                let o = ea.wrapping_sub(st.data_addr) as usize;
                let v = mxcsr_value(&mut self.rng);
                if let Some(d) = st.data.get_mut(o..o + 4) {
                    d.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        let bytes = encode(&instr, self.bits)?;
        let decoded = decode_for(&bytes, self.bits)?;
        if decoded.code() != code {
            return None;
        }
        let undefined_fx = undefined_fx_for(&decoded, &st);
        let (undefined_flags, undefined_gpr) = undefined_for(&decoded, &st);
        instr = decoded;
        Some(TestCase {
            code: bytes,
            instr,
            state: st,
            undefined_flags,
            undefined_gpr,
            bits: self.bits,
            undefined_fx,
        })
    }
}

/// Bits of the result that are model-specific: the RCP/RSQRT approximations
/// of finite nonzero inputs (SDM Vol. 2 RCPPS: relative error <= 1.5*2^-12,
/// the exact bits differ between processors). Results of special inputs
/// (zeros, denormals, infinities, NaNs, negative RSQRT inputs) are exact and
/// compared.
fn undefined_fx_for(instr: &Instruction, st: &UserState) -> FxImage {
    let mut m = FxImage::zeroed();
    let (rsqrt, scalar) = match instr.mnemonic() {
        Mnemonic::Rcpps => (false, false),
        Mnemonic::Rcpss => (false, true),
        Mnemonic::Rsqrtps => (true, false),
        Mnemonic::Rsqrtss => (true, true),
        _ => return m,
    };
    let src: u128 = if instr.op1_kind() == OpKind::Register {
        st.fx
            .xmm((instr.op_register(1) as usize).wrapping_sub(Register::XMM0 as usize))
    } else {
        let Some(ea) = mem_ea(instr, st) else {
            return m;
        };
        let o = ea.wrapping_sub(st.data_addr) as usize;
        let mut b = [0u8; 16];
        let n = if scalar { 4 } else { 16 };
        match st.data.get(o..o + n) {
            Some(d) => b[..n].copy_from_slice(d),
            None => return m,
        }
        u128::from_le_bytes(b)
    };
    let d = (instr.op_register(0) as usize).wrapping_sub(Register::XMM0 as usize);
    let mut mask = 0u128;
    for i in 0..if scalar { 1 } else { 4 } {
        let x = (src >> (32 * i)) as u32;
        let e = (x >> 23) & 0xFF;
        let special = e == 0 || e == 0xFF || (rsqrt && x >> 31 != 0);
        if !special {
            mask |= (u32::MAX as u128) << (32 * i);
        }
    }
    m.set_xmm(d, mask);
    m
}
