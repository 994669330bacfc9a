//! x87 test generation: every legacy-encoded x87 form with ST, memory or AX
//! operands (transcendentals aside: the hardware only promises about one
//! ulp, they are compared with that tolerance in the unit tests), and the
//! FP-state instructions (FNSTENV/FLDENV, FNSAVE/FRSTOR, FXSAVE/FXRSTOR and
//! their WAIT forms). Register and memory inputs are drawn from the values
//! where x87 arithmetic is hard: zeros, denormals, pseudo-denormals,
//! unnormals, pseudo-NaN/infinity, NaNs with payloads, values near the
//! exponent limits; the control word takes every precision and rounding
//! setting with masked and unmasked exceptions; now and then an unmasked
//! exception is left pending so waiting forms raise #MF.

use super::*;
use crate::conformance::fximage::off;
use crate::cpu::fpu::F80;
use iced_x86::OpCodeOperandKind as K;

/// Mnemonics generated (the exact ones: results compared bit for bit).
pub const X87_MNEMONICS: &[Mnemonic] = &[
    Mnemonic::Fadd,
    Mnemonic::Faddp,
    Mnemonic::Fiadd,
    Mnemonic::Fsub,
    Mnemonic::Fsubp,
    Mnemonic::Fisub,
    Mnemonic::Fsubr,
    Mnemonic::Fsubrp,
    Mnemonic::Fisubr,
    Mnemonic::Fmul,
    Mnemonic::Fmulp,
    Mnemonic::Fimul,
    Mnemonic::Fdiv,
    Mnemonic::Fdivp,
    Mnemonic::Fidiv,
    Mnemonic::Fdivr,
    Mnemonic::Fdivrp,
    Mnemonic::Fidivr,
    Mnemonic::Fld,
    Mnemonic::Fild,
    Mnemonic::Fbld,
    Mnemonic::Fld1,
    Mnemonic::Fldl2t,
    Mnemonic::Fldl2e,
    Mnemonic::Fldpi,
    Mnemonic::Fldlg2,
    Mnemonic::Fldln2,
    Mnemonic::Fldz,
    Mnemonic::Fst,
    Mnemonic::Fstp,
    Mnemonic::Fstpnce,
    Mnemonic::Fist,
    Mnemonic::Fistp,
    Mnemonic::Fisttp,
    Mnemonic::Fbstp,
    Mnemonic::Fcom,
    Mnemonic::Fcomp,
    Mnemonic::Fcompp,
    Mnemonic::Ficom,
    Mnemonic::Ficomp,
    Mnemonic::Fucom,
    Mnemonic::Fucomp,
    Mnemonic::Fucompp,
    Mnemonic::Fcomi,
    Mnemonic::Fcomip,
    Mnemonic::Fucomi,
    Mnemonic::Fucomip,
    Mnemonic::Ftst,
    Mnemonic::Fxam,
    Mnemonic::Fxch,
    Mnemonic::Ffree,
    Mnemonic::Ffreep,
    Mnemonic::Fincstp,
    Mnemonic::Fdecstp,
    Mnemonic::Fabs,
    Mnemonic::Fchs,
    Mnemonic::Fnop,
    Mnemonic::Fcmovb,
    Mnemonic::Fcmove,
    Mnemonic::Fcmovbe,
    Mnemonic::Fcmovu,
    Mnemonic::Fcmovnb,
    Mnemonic::Fcmovne,
    Mnemonic::Fcmovnbe,
    Mnemonic::Fcmovnu,
    Mnemonic::Fsqrt,
    Mnemonic::Frndint,
    Mnemonic::Fscale,
    Mnemonic::Fxtract,
    Mnemonic::Fprem,
    Mnemonic::Fprem1,
    Mnemonic::Fninit,
    Mnemonic::Finit,
    Mnemonic::Fnclex,
    Mnemonic::Fclex,
    Mnemonic::Fnstsw,
    Mnemonic::Fstsw,
    Mnemonic::Fnstcw,
    Mnemonic::Fstcw,
    Mnemonic::Fldcw,
    Mnemonic::Wait,
    Mnemonic::Fnstenv,
    Mnemonic::Fstenv,
    Mnemonic::Fldenv,
    Mnemonic::Fnsave,
    Mnemonic::Fsave,
    Mnemonic::Frstor,
    Mnemonic::Fxsave,
    Mnemonic::Fxsave64,
    Mnemonic::Fxrstor,
    Mnemonic::Fxrstor64,
];

/// The x87 forms generated for `bits`-bit code.
pub fn x87_forms(bits: u32) -> Vec<Code> {
    Code::values()
        .filter(|&c| {
            let op = c.op_code();
            X87_MNEMONICS.contains(&c.mnemonic())
                && op.encoding() == EncodingKind::Legacy
                && if bits == 32 { op.mode32() } else { op.mode64() }
                && (0..op.op_count())
                    .all(|i| matches!(op.op_kind(i), K::st0 | K::sti_opcode | K::mem | K::ax))
        })
        .collect()
}

/// An 80-bit register value biased toward the classes and boundaries that
/// matter (also used by the x87 unit differential tests).
pub fn special_f80(rng: &mut Rng) -> F80 {
    let sign = (rng.below(2) as u16) << 15;
    let frac = rng.next_u64() & !(1 << 63);
    let e = match rng.below(22) {
        0 => return F80::new(sign, 0),
        1 => return F80::new(sign, frac >> rng.below(63)),
        2 => return F80::new(sign, (1 << 63) | frac >> rng.below(63)),
        3 => return F80::new(sign | (1 + rng.below(0x7FFE) as u16), frac),
        4 => return F80::new(sign | 0x7FFF, 1 << 63),
        5 => return F80::new(sign | 0x7FFF, (3 << 62) | (frac >> rng.below(64))),
        6 => {
            let p = (frac >> (1 + rng.below(63))).max(1);
            return F80::new(sign | 0x7FFF, (1 << 63) | p);
        }
        7 => return F80::new(sign | 0x7FFF, frac >> rng.below(64)),
        8 => return F80::new(0xFFFF, 0xC000_0000_0000_0000),
        9 => 1 + rng.below(80) as u16,
        10 => 0x7FFE - rng.below(80) as u16,
        11 | 12 => 0x3FFF - 70 + rng.below(140) as u16,
        13 => 0x3FFF + rng.below(64) as u16,
        14 => 0x3FFF - 16383 / 2 + rng.below(16383) as u16,
        _ => 0x3FFF - 20 + rng.below(40) as u16,
    };
    let sig = match rng.below(6) {
        0 => 1 << 63,
        1 => !0u64,
        2 => (1 << 63) | (frac & !((1u64 << rng.below(64)) - 1)),
        3 => (1 << 63) | (frac >> rng.below(64)),
        _ => (1 << 63) | frac,
    };
    F80::new(sign | (e & 0x7FFF), sig)
}

/// Random bytes for an x87 memory operand of `size` bytes.
fn operand_bytes(rng: &mut Rng, size: usize, out: &mut [u8]) {
    match (size, rng.below(3)) {
        (4, 0) => {
            let s = (rng.below(2) as u32) << 31;
            let f = rng.next_u64() as u32 & 0x7F_FFFF;
            let v = match rng.below(6) {
                0 => s,
                1 => s | (f >> rng.below(23)),
                2 => s | 0x7F80_0000 | (f >> rng.below(24)),
                _ => s | ((rng.below(0xFF) as u32) << 23) | f,
            };
            out[..4].copy_from_slice(&v.to_le_bytes());
        }
        (8, 0) => {
            let s = rng.below(2) << 63;
            let f = rng.next_u64() & ((1 << 52) - 1);
            let v = match rng.below(6) {
                0 => s,
                1 => s | (f >> rng.below(52)),
                2 => s | 0x7FF0_0000_0000_0000 | (f >> rng.below(53)),
                _ => s | (rng.below(0x7FF) << 52) | f,
            };
            out[..8].copy_from_slice(&v.to_le_bytes());
        }
        (10, 0) => {
            let v = special_f80(rng);
            out[..8].copy_from_slice(&v.signif.to_le_bytes());
            out[8..10].copy_from_slice(&v.sign_exp.to_le_bytes());
        }
        (10, 1) => {
            // Packed BCD, mostly valid digits.
            for b in out[..9].iter_mut() {
                *b = if rng.one_in(16) {
                    rng.next_u64() as u8
                } else {
                    (rng.below(10) as u8) << 4 | rng.below(10) as u8
                };
            }
            out[9] = if rng.one_in(2) { 0x80 } else { 0 };
        }
        (2 | 4 | 8, 1) => {
            let v = (rng.next_u64() as i64) >> rng.below(64);
            out[..size].copy_from_slice(&v.to_le_bytes()[..size]);
        }
        _ => {}
    }
}

impl Generator {
    /// A generator of x87 and FP-state tests for `bits`-bit code.
    pub fn new_x87(seed: u64, bits: u32) -> Generator {
        let bits = if bits == 32 { 32 } else { 64 };
        let mut groups: Vec<Vec<Code>> = Vec::new();
        for c in x87_forms(bits) {
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
            x87: true,
        }
    }
}

/// A random x87 state: special register values, any tags and TOP, every
/// PC/RC, masked exception flags; rarely a pending unmasked exception.
fn random_x87_fx(rng: &mut Rng) -> FxImage {
    {
        let mut fx = FxImage::default();
        for i in 0..8 {
            let v = special_f80(rng);
            fx.set_st(i, v.signif, v.sign_exp);
        }
        let masks = if rng.one_in(2) {
            0x3F
        } else {
            rng.below(64) as u16
        };
        let pc = [0u16, 2, 3, 3, 1][rng.below(5) as usize];
        let fcw =
            0x40 | masks | pc << 8 | (rng.below(4) as u16) << 10 | (rng.below(2) as u16) << 12;
        let mut flags = if rng.one_in(2) {
            0
        } else {
            rng.below(64) as u16 & masks
        };
        if rng.one_in(32) && masks != 0x3F {
            flags |= !masks & 0x3F & (1 << rng.below(6));
        }
        let mut fsw = flags
            | (rng.below(8) as u16) << 8
            | (rng.below(2) as u16) << 14
            | (rng.below(8) as u16) << 11
            | (rng.below(2) as u16) << 6;
        if flags & !masks & 0x3F != 0 {
            fsw |= 0x8080;
        }
        fx.set_u16(off::FCW, fcw);
        fx.set_u16(off::FSW, fsw);
        fx.0[off::FTW] = match rng.below(4) {
            0 => rng.next_u64() as u8,
            1 => 0xFF,
            _ => !(1u8 << rng.below(8)),
        };
        fx.set_u16(off::FOP, rng.below(0x800) as u16);
        fx.set_u64(off::FIP, rng.next_u64() & 0xFFFF_FFFF);
        fx.set_u64(off::FDP, rng.next_u64() & 0xFFFF_FFFF);
        fx
    }
}

impl Generator {
    /// One x87 test of form `code`.
    pub(super) fn try_generate_x87(&mut self, code: Code) -> Option<TestCase> {
        let op = code.op_code();
        let mut st = self.random_state();
        st.fx = random_x87_fx(&mut self.rng);
        let mut instr = Instruction::default();
        instr.set_code(code);
        let addr32 = self.bits == 32 || self.rng.one_in(8);
        let mut mem_at = None;
        for i in 0..op.op_count() {
            match op.op_kind(i) {
                K::st0 => {
                    instr.set_op_kind(i, OpKind::Register);
                    instr.set_op_register(i, Register::ST0);
                }
                K::sti_opcode => {
                    instr.set_op_kind(i, OpKind::Register);
                    instr.set_op_register(
                        i,
                        self.regs[Register::ST0 as usize + self.rng.below(8) as usize],
                    );
                }
                K::ax => {
                    instr.set_op_kind(i, OpKind::Register);
                    instr.set_op_register(i, Register::AX);
                }
                _ => {
                    let size = match instr.memory_size().size() {
                        0 => 512,
                        n => n,
                    };
                    let align16 = matches!(
                        code.mnemonic(),
                        Mnemonic::Fxsave
                            | Mnemonic::Fxsave64
                            | Mnemonic::Fxrstor
                            | Mnemonic::Fxrstor64
                    );
                    let mut c = self.choose_mem(&mut st, addr32, align16);
                    // Keep the whole operand inside the data region.
                    let over = (c.offset + size).saturating_sub(DATA_SIZE - 16);
                    if over > 0 {
                        let fix = over.div_ceil(16) * 16;
                        c.disp -= fix as i64;
                        c.offset -= fix;
                    }
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
                    mem_at = Some((c.offset, size));
                }
            }
        }
        if let Some((o, size)) = mem_at {
            self.fill_operand(code, &mut st, o, size);
        }
        let bytes = encode(&instr, self.bits)?;
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

    /// Writes meaningful bytes at the memory operand: special values for the
    /// numeric formats, plausible images for FLDENV/FRSTOR/FXRSTOR.
    fn fill_operand(&mut self, code: Code, st: &mut UserState, o: usize, size: usize) {
        let Some(d) = st.data.get_mut(o..o + size) else {
            return;
        };
        match code.mnemonic() {
            Mnemonic::Fxrstor | Mnemonic::Fxrstor64 => {
                let fx = random_x87_fx(&mut self.rng);
                let n = d.len().min(512);
                if !self.rng.one_in(4) {
                    d[..n].copy_from_slice(&fx.0[..n]);
                    if self.rng.one_in(8) {
                        // Reserved MXCSR bits: #GP(0).
                        d[26] |= 1 << self.rng.below(8);
                    }
                }
            }
            Mnemonic::Fldenv | Mnemonic::Frstor => {
                // A random environment with mostly sane control/status words.
                if !self.rng.one_in(4) {
                    let fx = random_x87_fx(&mut self.rng);
                    let (fcw, fsw) = (fx.u16_at(off::FCW), fx.u16_at(off::FSW));
                    let tw = self.rng.next_u64() as u16;
                    let wide = size == 28 || size == 108;
                    let w = if wide { 4 } else { 2 };
                    d[0..2].copy_from_slice(&fcw.to_le_bytes());
                    d[w..w + 2].copy_from_slice(&fsw.to_le_bytes());
                    d[2 * w..2 * w + 2].copy_from_slice(&tw.to_le_bytes());
                    let regs_at = if wide { 28 } else { 14 };
                    if size > regs_at {
                        for i in 0..8 {
                            let v = special_f80(&mut self.rng);
                            let p = regs_at + 10 * i;
                            if let Some(r) = d.get_mut(p..p + 10) {
                                r[..8].copy_from_slice(&v.signif.to_le_bytes());
                                r[8..].copy_from_slice(&v.sign_exp.to_le_bytes());
                            }
                        }
                    }
                }
            }
            Mnemonic::Fldcw => {
                let v = 0x40
                    | (self.rng.below(64) as u16)
                    | (self.rng.below(4) as u16) << 8
                    | (self.rng.below(4) as u16) << 10;
                let v = if self.rng.one_in(8) {
                    self.rng.next_u64() as u16
                } else {
                    v
                };
                d[..2].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let n = size.min(10);
                let mut buf = [0u8; 10];
                buf[..n].copy_from_slice(&d[..n]);
                operand_bytes(&mut self.rng, size, &mut buf);
                d[..n].copy_from_slice(&buf[..n]);
            }
        }
    }
}
