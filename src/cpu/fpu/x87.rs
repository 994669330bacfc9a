//! x87 instruction semantics (SDM Vol. 1 chapter 8, Vol. 2 instruction
//! pages): register stack, loads/stores of every format, arithmetic,
//! compares, control instructions. The numerics are in [`super::softfloat`]
//! and [`super::transcendental`]; the environment/state images in
//! [`super::state`].
//!
//! Every handler follows the same order, which is the hardware's: #NM
//! checks, the pending-exception check (#MF) for waiting instructions,
//! memory operand reads (a fault leaves the FPU untouched), the computation
//! in an [`Env`], memory writes (idem), then the FPU state commit.
//!
//! Pointer bookkeeping follows the host (an Intel part with
//! CPUID.7.EBX.FDP_EXCPTN_ONLY and the FCS/FDS deprecation): FIP is updated
//! by every non-control instruction; FOP only when the instruction raises an
//! unmasked exception, FDP only when it also has a memory operand; FCS and
//! FDS are always stored as 0 (SDM Vol. 1 8.1.8, 8.1.9).

use super::softfloat::{self as sf, exc, Class, Env, Fin, INDEFINITE};
use super::F80;
use super::{fsw, transcendental as tr, FpuState};
use crate::cpu::decode::{Handler, Op};
use crate::cpu::exec::system::op_unimplemented;
use crate::cpu::{Bus, Cpu, Res};
use iced_x86::{Code, Instruction, Mnemonic as M, OpKind, Register};
use std::cmp::Ordering;

const C0: u16 = fsw::C0;
const C1: u16 = fsw::C1;
const C2: u16 = fsw::C2;
const C3: u16 = fsw::C3;
const CC: u16 = C0 | C1 | C2 | C3;

// ---- the shared instruction skeleton ----

/// #NM and #MF checks of a waiting x87 instruction.
#[inline]
fn begin(cpu: &mut Cpu) -> Res {
    cpu.check_x87()?;
    cpu.fpu_pending()
}

/// Sets the condition-code bits in `mask` to `val`.
#[inline]
fn set_cc(f: &mut FpuState, mask: u16, val: u16) {
    f.fsw = (f.fsw & !mask) | (val & mask);
}

/// Commits the exceptions an instruction raised and updates the pointers.
fn commit(cpu: &mut Cpu, op: &Op, env: &Env, mem: Option<u64>) {
    let start = cpu.rip.wrapping_sub(op.len as u64) & cpu.ip_mask;
    let f = &mut cpu.fpu;
    f.fsw |= env.exc & 0x3F;
    let unmasked = env.exc & !f.fcw & 0x3F != 0;
    if unmasked {
        f.fsw |= fsw::ES | fsw::B;
        f.fop = op.imm2 as u16;
        if let Some(ea) = mem {
            f.fdp = ea;
            f.fds = 0;
        }
    }
    f.fip = start;
    f.fcs = 0;
}

/// Stack overflow or underflow (SDM Vol. 1 8.5.1.1): IE and SF, C1 says
/// which. Returns true if IE is masked (the masked response proceeds).
fn stack_fault(cpu: &mut Cpu, env: &mut Env, overflow: bool) -> bool {
    env.exc |= exc::IE;
    cpu.fpu.fsw |= fsw::SF;
    set_cc(&mut cpu.fpu, C1, if overflow { C1 } else { 0 });
    env.masked(exc::IE)
}

#[inline]
fn c1_of(env: &Env) -> u16 {
    if env.c1 {
        C1
    } else {
        0
    }
}

/// Memory operand of `op`: (segment, effective address).
#[inline]
fn mem(cpu: &Cpu, op: &Op) -> (usize, u64) {
    (op.seg as usize, op.ea(cpu))
}

fn off_add(op: &Op, ea: u64, n: u64) -> u64 {
    ea.wrapping_add(n) & crate::cpu::decode::amask(op.asz)
}

pub(super) fn read_f80(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, ea: u64) -> Res<F80> {
    let s = op.seg as usize;
    let lo = cpu.read(bus, s, ea, 8)?;
    let hi = cpu.read(bus, s, off_add(op, ea, 8), 2)?;
    Ok(F80::new(hi as u16, lo))
}

/// Writes 10 bytes, probing the whole range first so a fault writes nothing.
pub(super) fn write_f80(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, ea: u64, v: F80) -> Res {
    let s = op.seg as usize;
    let lin = cpu.seg_lin(s, ea, 10, true)?;
    cpu.probe_write(bus, lin, 10)?;
    cpu.write(bus, s, ea, 8, v.signif)?;
    cpu.write(bus, s, off_add(op, ea, 8), 2, v.sign_exp as u64)
}

// ---- decode-time setup ----

/// ST(i) number of the register operand that is not the implicit ST(0).
fn sti(ins: &Instruction) -> u64 {
    let mut i = 0;
    for n in 0..ins.op_count() {
        if ins.op_kind(n) == OpKind::Register {
            let r = ins.op_register(n) as u32;
            if (Register::ST0 as u32..=Register::ST7 as u32).contains(&r) {
                i = i.max(r - Register::ST0 as u32);
            }
        }
    }
    i as u64
}

/// FOP for an x87 instruction (SDM Vol. 1 8.1.9): bits 10:8 are the low 3
/// bits of the ESC opcode byte, bits 7:0 the ModRM byte, rebuilt here from
/// the decoded form (the decoder keeps no ModRM).
pub fn fop_of(ins: &Instruction) -> u16 {
    let info = ins.op_code();
    let opc = info.op_code();
    if info.op_code_len() == 2 {
        // "D8 C0+i" register forms and the fixed "D9 E8" forms.
        let first = (opc >> 8) as u16;
        let modrm = (opc & 0xFF) as u16 + if is_plus_i(ins) { sti(ins) as u16 } else { 0 };
        return ((first & 7) << 8) | (modrm & 0xFF);
    }
    let first = (opc & 7) as u16;
    let reg = (info.group_index().max(0) as u16) & 7;
    if !has_mem(ins) {
        return (first << 8) | 0xC0 | (reg << 3);
    }
    let base = ins.memory_base();
    let index = ins.memory_index();
    let ds = ins.memory_displ_size();
    let disp_mod = |ds: u32| match ds {
        0 => 0u16,
        1 => 1,
        _ => 2,
    };
    let (m, rm) = if base.size() == 2
        || index.size() == 2
        || (base == Register::None && index == Register::None && ds == 2)
    {
        use Register as R;
        match (base, index) {
            (R::BX, R::SI) => (disp_mod(ds), 0),
            (R::BX, R::DI) => (disp_mod(ds), 1),
            (R::BP, R::SI) => (disp_mod(ds), 2),
            (R::BP, R::DI) => (disp_mod(ds), 3),
            (R::SI, R::None) => (disp_mod(ds), 4),
            (R::DI, R::None) => (disp_mod(ds), 5),
            (R::BP, R::None) => (disp_mod(ds), 6),
            (R::BX, R::None) => (disp_mod(ds), 7),
            _ => (0, 6),
        }
    } else if base == Register::RIP || base == Register::EIP {
        (0, 5)
    } else if base == Register::None {
        if index == Register::None && ins.code_size() != iced_x86::CodeSize::Code64 {
            (0, 5)
        } else {
            (0, 4)
        }
    } else {
        let b = base.number() as u16 & 7;
        let rm = if index != Register::None || b == 4 {
            4
        } else {
            b
        };
        (disp_mod(ds), rm)
    };
    (first << 8) | (m << 6) | (reg << 3) | rm
}

fn is_plus_i(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|n| {
        ins.op_kind(n) == OpKind::Register && {
            let r = ins.op_register(n);
            (Register::ST0 as u32..=Register::ST7 as u32).contains(&(r as u32))
        }
    })
}

// Arithmetic operation selectors.
const ADD: u8 = 0;
const MUL: u8 = 1;
const SUB: u8 = 2;
const SUBR: u8 = 3;
const DIV: u8 = 4;
const DIVR: u8 = 5;

// Operand forms.
const F_ST0_STI: u8 = 0;
const F_STI_ST0: u8 = 1;
const F_STI_ST0_POP: u8 = 2;
const F_M32: u8 = 3;
const F_M64: u8 = 4;
const F_I16: u8 = 5;
const F_I32: u8 = 6;
const F_I64: u8 = 7;
const F_M80: u8 = 8;

/// Memory form of an operand size in bytes for float (`int` false) or
/// integer operands.
fn mform(ins: &Instruction, int: bool) -> u8 {
    match (ins.memory_size().size(), int) {
        (4, false) => F_M32,
        (8, false) => F_M64,
        (10, false) => F_M80,
        (2, true) => F_I16,
        (4, true) => F_I32,
        _ => F_I64,
    }
}

fn has_mem(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
}

macro_rules! arith_for {
    ($ins:expr, $OP:expr) => {{
        let ins = $ins;
        if has_mem(ins) {
            match mform(
                ins,
                matches!(
                    ins.mnemonic(),
                    M::Fiadd | M::Fisub | M::Fisubr | M::Fimul | M::Fidiv | M::Fidivr
                ),
            ) {
                F_M32 => arith::<$OP, F_M32> as Handler,
                F_M64 => arith::<$OP, F_M64>,
                F_I16 => arith::<$OP, F_I16>,
                _ => arith::<$OP, F_I32>,
            }
        } else if ins.op_count() == 0
            || matches!(
                ins.mnemonic(),
                M::Faddp | M::Fsubp | M::Fsubrp | M::Fmulp | M::Fdivp | M::Fdivrp
            )
        {
            arith::<$OP, F_STI_ST0_POP>
        } else if ins.code() == Code::Fadd_st0_sti
            || ins.code() == Code::Fmul_st0_sti
            || ins.code() == Code::Fsub_st0_sti
            || ins.code() == Code::Fsubr_st0_sti
            || ins.code() == Code::Fdiv_st0_sti
            || ins.code() == Code::Fdivr_st0_sti
        {
            arith::<$OP, F_ST0_STI>
        } else {
            arith::<$OP, F_STI_ST0>
        }
    }};
}

macro_rules! com_for {
    ($ins:expr, $P:expr, $U:expr) => {{
        let ins = $ins;
        if has_mem(ins) {
            match mform(ins, matches!(ins.mnemonic(), M::Ficom | M::Ficomp)) {
                F_M32 => fcom::<F_M32, $P, $U> as Handler,
                F_M64 => fcom::<F_M64, $P, $U>,
                F_I16 => fcom::<F_I16, $P, $U>,
                _ => fcom::<F_I32, $P, $U>,
            }
        } else {
            fcom::<F_ST0_STI, $P, $U>
        }
    }};
}

/// Picks the handler for an x87 or FP-state instruction form.
pub fn handler_for(ins: &Instruction, op: &mut Op) -> Option<Handler> {
    let h = pick(ins, op)?;
    // Only x87 forms get these (other instructions keep their immediates).
    op.imm = sti(ins);
    op.imm2 = fop_of(ins) as u64;
    Some(h)
}

fn pick(ins: &Instruction, op: &mut Op) -> Option<Handler> {
    let mem = has_mem(ins);
    let h: Handler = match ins.mnemonic() {
        M::Fadd | M::Faddp | M::Fiadd => arith_for!(ins, ADD),
        M::Fmul | M::Fmulp | M::Fimul => arith_for!(ins, MUL),
        M::Fsub | M::Fsubp | M::Fisub => arith_for!(ins, SUB),
        M::Fsubr | M::Fsubrp | M::Fisubr => arith_for!(ins, SUBR),
        M::Fdiv | M::Fdivp | M::Fidiv => arith_for!(ins, DIV),
        M::Fdivr | M::Fdivrp | M::Fidivr => arith_for!(ins, DIVR),

        M::Fld if !mem => fld_sti,
        M::Fld => match mform(ins, false) {
            F_M32 => fld_mem::<F_M32>,
            F_M64 => fld_mem::<F_M64>,
            _ => fld_mem::<F_M80>,
        },
        M::Fild => match mform(ins, true) {
            F_I16 => fld_mem::<F_I16>,
            F_I32 => fld_mem::<F_I32>,
            _ => fld_mem::<F_I64>,
        },
        M::Fbld => fbld,
        M::Fld1 => fld_const::<0>,
        M::Fldl2t => fld_const::<1>,
        M::Fldl2e => fld_const::<2>,
        M::Fldpi => fld_const::<3>,
        M::Fldlg2 => fld_const::<4>,
        M::Fldln2 => fld_const::<5>,
        M::Fldz => fld_const::<6>,

        M::Fst if !mem => fst_sti::<false>,
        M::Fstp if !mem => fst_sti::<true>,
        M::Fstpnce => fstpnce,
        M::Fst => match mform(ins, false) {
            F_M32 => fst_mem::<F_M32, false>,
            _ => fst_mem::<F_M64, false>,
        },
        M::Fstp => match mform(ins, false) {
            F_M32 => fst_mem::<F_M32, true>,
            F_M64 => fst_mem::<F_M64, true>,
            _ => fst_mem::<F_M80, true>,
        },
        M::Fist => match mform(ins, true) {
            F_I16 => fist::<F_I16, 0>,
            _ => fist::<F_I32, 0>,
        },
        M::Fistp => match mform(ins, true) {
            F_I16 => fist::<F_I16, 1>,
            F_I32 => fist::<F_I32, 1>,
            _ => fist::<F_I64, 1>,
        },
        M::Fisttp => match mform(ins, true) {
            F_I16 => fist::<F_I16, 2>,
            F_I32 => fist::<F_I32, 2>,
            _ => fist::<F_I64, 2>,
        },
        M::Fbstp => fbstp,

        M::Fcom => com_for!(ins, 0, false),
        M::Fcomp => com_for!(ins, 1, false),
        M::Fcompp => fcom::<F_ST0_STI, 2, false>,
        M::Ficom => com_for!(ins, 0, false),
        M::Ficomp => com_for!(ins, 1, false),
        M::Fucom => fcom::<F_ST0_STI, 0, true>,
        M::Fucomp => fcom::<F_ST0_STI, 1, true>,
        M::Fucompp => fcom::<F_ST0_STI, 2, true>,
        M::Fcomi => fcomi::<false, false>,
        M::Fcomip => fcomi::<true, false>,
        M::Fucomi => fcomi::<false, true>,
        M::Fucomip => fcomi::<true, true>,
        M::Ftst => ftst,
        M::Fxam => fxam,

        M::Fxch => fxch,
        M::Ffree => ffree::<false>,
        M::Ffreep => ffree::<true>,
        M::Fincstp => fincdecstp::<1>,
        M::Fdecstp => fincdecstp::<7>,
        M::Fabs => fsign::<0>,
        M::Fchs => fsign::<1>,
        M::Fnop => fnop,
        M::Fcmovb => fcmov::<0>,
        M::Fcmove => fcmov::<1>,
        M::Fcmovbe => fcmov::<2>,
        M::Fcmovu => fcmov::<3>,
        M::Fcmovnb => fcmov::<4>,
        M::Fcmovne => fcmov::<5>,
        M::Fcmovnbe => fcmov::<6>,
        M::Fcmovnu => fcmov::<7>,
        M::Fsqrt => funary::<0>,
        M::Frndint => funary::<1>,
        M::Fscale => fscale,
        M::Fxtract => fxtract,
        M::Fprem => fprem::<false>,
        M::Fprem1 => fprem::<true>,

        M::Fsin => tr::fsin,
        M::Fcos => tr::fcos,
        M::Fsincos => tr::fsincos,
        M::Fptan => tr::fptan,
        M::Fpatan => tr::fpatan,
        M::F2xm1 => tr::f2xm1,
        M::Fyl2x => tr::fyl2x,
        M::Fyl2xp1 => tr::fyl2xp1,

        M::Fninit => fninit::<false>,
        M::Finit => fninit::<true>,
        M::Fnclex => fnclex::<false>,
        M::Fclex => fnclex::<true>,
        M::Fnstsw if ins.op0_kind() == OpKind::Register => fnstsw_ax::<false>,
        M::Fstsw if ins.op0_kind() == OpKind::Register => fnstsw_ax::<true>,
        M::Fnstsw => fnstsw_m::<false>,
        M::Fstsw => fnstsw_m::<true>,
        M::Fnstcw => fnstcw::<false>,
        M::Fstcw => fnstcw::<true>,
        M::Fldcw => fldcw,
        M::Wait => fwait,
        // 8087/80287 leftovers: the 387 and later execute them as FNOP
        // without touching the pointers (SDM Vol. 2A Appendix, FNOP notes).
        M::Fneni | M::Fndisi | M::Fnsetpm | M::Feni | M::Fdisi | M::Fsetpm => fnop_control,
        M::Fnstenv
        | M::Fstenv
        | M::Fldenv
        | M::Fnsave
        | M::Fsave
        | M::Frstor
        | M::Fxsave
        | M::Fxsave64
        | M::Fxrstor
        | M::Fxrstor64 => return super::state::handler_for(ins, op),
        _ => {
            if matches!(ins.code(), Code::Frstpm) {
                return Some(op_unimplemented);
            }
            return None;
        }
    };
    Some(h)
}

// ---- loads ----

/// Pushes `v` (the caller has read the operand): stack overflow if the new
/// ST(0) is not empty (SDM Vol. 1 8.5.1.1).
fn push_checked(cpu: &mut Cpu, env: &mut Env, v: F80) {
    if !cpu.fpu.st_empty(7) {
        if stack_fault(cpu, env, true) {
            cpu.fpu.push(INDEFINITE);
        }
        return;
    }
    set_cc(&mut cpu.fpu, C1, 0);
    // Only an unmasked IE (SNaN source) stops the load; an unmasked DE from a
    // single/double denormal still loads it (host behaviour).
    if env.exc & !env.fcw & exc::IE == 0 {
        cpu.fpu.push(v);
    }
}

fn fld_sti(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = op.imm as usize;
    if cpu.fpu.st_empty(i) {
        // Underflow ranks above overflow (SDM Vol. 1 8.7).
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.push(INDEFINITE);
        }
    } else {
        let v = cpu.fpu.st(i);
        push_checked(cpu, &mut env, v);
    }
    commit(cpu, op, &env, None);
    Ok(())
}

fn fld_mem<const F: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let (s, ea) = mem(cpu, op);
    let mut env = Env::new(cpu.fpu.fcw);
    let v = match F {
        F_M32 => {
            let raw = cpu.read(bus, s, ea, 4)? as u32;
            if !cpu.fpu.st_empty(7) {
                F80::ZERO
            } else {
                sf::from_f32(&mut env, raw, true)
            }
        }
        F_M64 => {
            let raw = cpu.read(bus, s, ea, 8)?;
            if !cpu.fpu.st_empty(7) {
                F80::ZERO
            } else {
                sf::from_f64(&mut env, raw, true)
            }
        }
        F_M80 => read_f80(cpu, bus, op, ea)?,
        F_I16 => sf::from_i64(cpu.read(bus, s, ea, 2)? as i16 as i64),
        F_I32 => sf::from_i64(cpu.read(bus, s, ea, 4)? as i32 as i64),
        _ => sf::from_i64(cpu.read(bus, s, ea, 8)? as i64),
    };
    push_checked(cpu, &mut env, v);
    commit(cpu, op, &env, Some(ea));
    Ok(())
}

fn fbld(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let (s, ea) = mem(cpu, op);
    let lo = cpu.read(bus, s, ea, 8)?;
    let hi = cpu.read(bus, s, off_add(op, ea, 8), 2)?;
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&lo.to_le_bytes());
    b[8..].copy_from_slice(&(hi as u16).to_le_bytes());
    let mut env = Env::new(cpu.fpu.fcw);
    push_checked(cpu, &mut env, sf::from_bcd(&b));
    commit(cpu, op, &env, Some(ea));
    Ok(())
}

/// The constants of FLD1 .. FLDZ with 2 extra bits (hardware keeps 66-bit
/// constants, SDM Vol. 1 8.3.8): (sign_exp, significand, next two bits,
/// nonzero beyond them), index order as in [`handler_for`].
const CONSTS: [(u16, u64, u8, bool); 7] = [
    (0x3FFF, 0x8000_0000_0000_0000, 0, false),   // 1
    (0x4000, 0xD49A_784B_CD1B_8AFE, 0b01, true), // log2(10)
    (0x3FFF, 0xB8AA_3B29_5C17_F0BB, 0b10, true), // log2(e)
    (0x4000, 0xC90F_DAA2_2168_C234, 0b11, true), // pi
    (0x3FFD, 0x9A20_9A84_FBCF_F798, 0b10, true), // log10(2)
    (0x3FFE, 0xB172_17F7_D1CF_79AB, 0b11, true), // ln(2)
    (0x0000, 0, 0, false),                       // +0
];

/// A constant rounded as the hardware does: the infinitely precise value
/// rounded to 64 bits under RC (all constants are positive).
pub fn constant(idx: usize, rc: u8) -> F80 {
    let (se, sig, extra, more) = CONSTS[idx.min(6)];
    let inexact = extra != 0 || more;
    let up = match rc {
        sf::RC_NEAREST => extra & 2 != 0 && (extra & 1 != 0 || more || sig & 1 != 0),
        sf::RC_UP => inexact,
        _ => false,
    };
    F80::new(se, if up { sig + 1 } else { sig })
}

fn fld_const<const K: usize>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let v = constant(K, env.rc());
    push_checked(cpu, &mut env, v);
    commit(cpu, op, &env, None);
    Ok(())
}

// ---- stores ----

fn fst_sti<const POP: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = op.imm as usize;
    if cpu.fpu.st_empty(0) {
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(i, INDEFINITE);
            if POP {
                cpu.fpu.pop();
            }
        }
    } else {
        set_cc(&mut cpu.fpu, C1, 0);
        let v = cpu.fpu.st(0);
        cpu.fpu.set_st(i, v);
        if POP {
            cpu.fpu.pop();
        }
    }
    commit(cpu, op, &env, None);
    Ok(())
}

/// D9 D8+i, the undocumented FSTP alias: like FSTP ST(i), except that an
/// empty ST(0) raises nothing: the stack is just popped (host behaviour).
fn fstpnce(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if cpu.fpu.st_empty(0) {
        begin(cpu)?;
        cpu.fpu.pop();
        set_cc(&mut cpu.fpu, C1, 0);
        commit(cpu, op, &Env::new(cpu.fpu.fcw), None);
        return Ok(());
    }
    fst_sti::<true>(cpu, bus, op)
}

fn fst_mem<const F: u8, const POP: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let (s, ea) = mem(cpu, op);
    let mut env = Env::new(cpu.fpu.fcw);
    let empty = cpu.fpu.st_empty(0);
    let x = cpu.fpu.st(0);
    let mut fault_masked = false;
    if empty {
        env.exc |= exc::IE;
        fault_masked = env.masked(exc::IE);
    }
    let stored = if empty {
        fault_masked.then_some(match F {
            F_M32 => 0xFFC0_0000u64,
            F_M64 => 0xFFF8_0000_0000_0000,
            _ => 0,
        })
    } else {
        match F {
            F_M32 => sf::to_f32(&mut env, x).map(|v| v as u64),
            F_M64 => sf::to_f64(&mut env, x),
            _ => Some(0),
        }
    };
    if let Some(v) = stored {
        match F {
            F_M32 => cpu.write(bus, s, ea, 4, v)?,
            F_M64 => cpu.write(bus, s, ea, 8, v)?,
            _ => write_f80(cpu, bus, op, ea, if empty { INDEFINITE } else { x })?,
        }
    }
    if empty {
        env.exc &= !exc::IE;
        stack_fault(cpu, &mut env, false);
    } else {
        set_cc(&mut cpu.fpu, C1, c1_of(&env));
    }
    if POP && stored.is_some() {
        cpu.fpu.pop();
    }
    commit(cpu, op, &env, Some(ea));
    Ok(())
}

/// FIST (K=0), FISTP (1), FISTTP (2).
fn fist<const F: u8, const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let (s, ea) = mem(cpu, op);
    let mut env = Env::new(cpu.fpu.fcw);
    let (bits, size) = match F {
        F_I16 => (16, 2),
        F_I32 => (32, 4),
        _ => (64, 8),
    };
    let empty = cpu.fpu.st_empty(0);
    let stored = if empty {
        env.exc |= exc::IE;
        env.masked(exc::IE).then_some(i64::MIN >> (64 - bits))
    } else {
        sf::to_int(&mut env, cpu.fpu.st(0), bits, K == 2)
    };
    if let Some(v) = stored {
        cpu.write(bus, s, ea, size, v as u64)?;
    }
    if empty {
        env.exc &= !exc::IE;
        stack_fault(cpu, &mut env, false);
    } else {
        set_cc(&mut cpu.fpu, C1, c1_of(&env));
    }
    if K != 0 && stored.is_some() {
        cpu.fpu.pop();
    }
    commit(cpu, op, &env, Some(ea));
    Ok(())
}

fn fbstp(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let (s, ea) = mem(cpu, op);
    let mut env = Env::new(cpu.fpu.fcw);
    let empty = cpu.fpu.st_empty(0);
    let stored = if empty {
        env.exc |= exc::IE;
        env.masked(exc::IE).then_some(sf::BCD_INDEFINITE)
    } else {
        sf::to_bcd(&mut env, cpu.fpu.st(0))
    };
    if let Some(b) = stored {
        let lin = cpu.seg_lin(s, ea, 10, true)?;
        cpu.probe_write(bus, lin, 10)?;
        let mut lo = [0u8; 8];
        lo.copy_from_slice(&b[..8]);
        cpu.write(bus, s, ea, 8, u64::from_le_bytes(lo))?;
        cpu.write(
            bus,
            s,
            off_add(op, ea, 8),
            2,
            u16::from_le_bytes([b[8], b[9]]) as u64,
        )?;
    }
    if empty {
        env.exc &= !exc::IE;
        stack_fault(cpu, &mut env, false);
    } else {
        set_cc(&mut cpu.fpu, C1, c1_of(&env));
    }
    if stored.is_some() {
        cpu.fpu.pop();
    }
    commit(cpu, op, &env, Some(ea));
    Ok(())
}

// ---- arithmetic ----

/// Reads a memory source operand in register format without quieting an
/// SNaN (the arithmetic screens it). DE for single/double denormals is
/// raised here, since they are normal in register format.
fn read_src<const F: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, ea: u64) -> Res<(F80, bool)> {
    let s = op.seg as usize;
    Ok(match F {
        F_M32 => {
            let raw = cpu.read(bus, s, ea, 4)? as u32;
            let mut e = Env::new(0x3F);
            (sf::from_f32(&mut e, raw, false), e.exc & exc::DE != 0)
        }
        F_M64 => {
            let raw = cpu.read(bus, s, ea, 8)?;
            let mut e = Env::new(0x3F);
            (sf::from_f64(&mut e, raw, false), e.exc & exc::DE != 0)
        }
        F_I16 => (sf::from_i64(cpu.read(bus, s, ea, 2)? as i16 as i64), false),
        _ => (sf::from_i64(cpu.read(bus, s, ea, 4)? as i32 as i64), false),
    })
}

fn arith<const OP: u8, const F: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = op.imm as usize;
    let memf = F >= F_M32;
    let (dst, src) = match F {
        F_ST0_STI => (0, i),
        F_STI_ST0 | F_STI_ST0_POP => (i, 0),
        _ => (0, 0),
    };
    let mut ea = None;
    let (b, b_denormal) = if memf {
        let e = op.ea(cpu);
        ea = Some(e);
        read_src::<F>(cpu, bus, op, e)?
    } else {
        (cpu.fpu.st(src), false)
    };
    let pop = F == F_STI_ST0_POP;
    if cpu.fpu.st_empty(dst) || (!memf && cpu.fpu.st_empty(src)) {
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(dst, INDEFINITE);
            if pop {
                cpu.fpu.pop();
            }
        }
        commit(cpu, op, &env, ea);
        return Ok(());
    }
    let a = cpu.fpu.st(dst);
    // For register forms the pair is (ST(dst), ST(src)); "reverse" ops swap.
    let (x, y) = match F {
        F_ST0_STI => (a, b),
        F_STI_ST0 | F_STI_ST0_POP => (a, b),
        _ => (a, b),
    };
    let r = compute::<OP>(&mut env, x, y, b_denormal);
    if !env.suppressed() {
        cpu.fpu.set_st(dst, r);
        if pop {
            cpu.fpu.pop();
        }
    }
    set_cc(&mut cpu.fpu, C1, c1_of(&env));
    commit(cpu, op, &env, ea);
    Ok(())
}

/// `dst OP src` for the six arithmetic operations; `src_denormal` marks a
/// memory operand that was a single/double denormal.
fn compute<const OP: u8>(env: &mut Env, d: F80, s: F80, src_denormal: bool) -> F80 {
    let fmt = env.fmt_reg();
    let (a, b) = match OP {
        SUBR | DIVR => (s, d),
        _ => (d, s),
    };
    let div_by_zero = matches!(OP, DIV | DIVR)
        && b.class() == Class::Zero
        && !matches!(a.class(), Class::Infinity | Class::Zero);
    if src_denormal && !div_by_zero {
        // Screen NaNs/invalids first (they take priority over DE).
        let pre = pre_screen(a, b);
        if !pre && env.raise_pre(exc::DE) {
            return INDEFINITE;
        }
    }
    match OP {
        ADD => sf::add(env, a, b, false, fmt),
        SUB | SUBR => sf::add(env, a, b, true, fmt),
        MUL => sf::mul(env, a, b, fmt),
        _ => sf::div(env, a, b, fmt),
    }
}

/// True if the operands produce IE or a NaN result before DE is considered.
fn pre_screen(a: F80, b: F80) -> bool {
    let bad = |x: F80| matches!(x.class(), Class::Unsupported | Class::SNaN | Class::QNaN);
    bad(a) || bad(b)
}

// ---- compares ----

/// Condition codes for a compare result (SDM Vol. 2A FCOM Table 3-21).
fn cc_of(o: Option<Ordering>) -> u16 {
    match o {
        None => C3 | C2 | C0,
        Some(Ordering::Greater) => 0,
        Some(Ordering::Less) => C0,
        Some(Ordering::Equal) => C3,
    }
}

/// FCOM/FCOMP/FCOMPP/FICOM/FICOMP (`UNORD` false) and FUCOM* (true).
fn fcom<const F: u8, const POPS: u8, const UNORD: bool>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    op: &Op,
) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = if POPS == 2 { 1 } else { op.imm as usize };
    let memf = F != F_ST0_STI;
    let mut ea = None;
    let (b, b_den) = if memf {
        let e = op.ea(cpu);
        ea = Some(e);
        read_src::<F>(cpu, bus, op, e)?
    } else {
        (cpu.fpu.st(i), false)
    };
    if cpu.fpu.st_empty(0) || (!memf && cpu.fpu.st_empty(i)) {
        set_cc(&mut cpu.fpu, C3 | C2 | C0, C3 | C2 | C0);
        if stack_fault(cpu, &mut env, false) {
            for _ in 0..POPS {
                cpu.fpu.pop();
            }
        }
        commit(cpu, op, &env, ea);
        return Ok(());
    }
    let a = cpu.fpu.st(0);
    if b_den && !pre_screen(a, b) {
        env.raise_pre(exc::DE);
    }
    // The condition codes are written even when an unmasked IE/DE stops
    // the pops (as the host does).
    let o = sf::compare(&mut env, a, b, !UNORD);
    set_cc(&mut cpu.fpu, C1, 0);
    set_cc(&mut cpu.fpu, C3 | C2 | C0, cc_of(o));
    if !env.suppressed() {
        for _ in 0..POPS {
            cpu.fpu.pop();
        }
    }
    commit(cpu, op, &env, ea);
    Ok(())
}

/// FCOMI/FCOMIP/FUCOMI/FUCOMIP: the result goes to ZF, PF, CF (SDM Vol. 2A
/// FCOMI); OF, SF, AF are cleared.
fn fcomi<const POP: bool, const UNORD: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = op.imm as usize;
    let set_flags = |cpu: &mut Cpu, o: Option<Ordering>| {
        let (z, p, c) = match o {
            None => (true, true, true),
            Some(Ordering::Greater) => (false, false, false),
            Some(Ordering::Less) => (false, false, true),
            Some(Ordering::Equal) => (true, false, false),
        };
        let fl = (c as u64) | (p as u64) << 2 | (z as u64) << 6;
        cpu.flags.set_status(0x8D5, fl);
    };
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(i) {
        set_flags(cpu, None);
        if stack_fault(cpu, &mut env, false) && POP {
            cpu.fpu.pop();
        }
        commit(cpu, op, &env, None);
        return Ok(());
    }
    let o = sf::compare(&mut env, cpu.fpu.st(0), cpu.fpu.st(i), !UNORD);
    // C1 is left alone (the host keeps it).
    set_flags(cpu, o);
    if !env.suppressed() && POP {
        cpu.fpu.pop();
    }
    commit(cpu, op, &env, None);
    Ok(())
}

fn ftst(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) {
        set_cc(&mut cpu.fpu, C3 | C2 | C0, C3 | C2 | C0);
        stack_fault(cpu, &mut env, false);
        commit(cpu, op, &env, None);
        return Ok(());
    }
    let o = sf::compare(&mut env, cpu.fpu.st(0), F80::ZERO, true);
    set_cc(&mut cpu.fpu, C1, 0);
    set_cc(&mut cpu.fpu, C3 | C2 | C0, cc_of(o));
    commit(cpu, op, &env, None);
    Ok(())
}

/// FXAM (SDM Vol. 2A FXAM Table 3-45): classifies ST(0), even if empty.
fn fxam(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let env = Env::new(cpu.fpu.fcw);
    let x = cpu.fpu.st(0);
    let c = if cpu.fpu.st_empty(0) {
        C3 | C0
    } else {
        match x.class() {
            Class::Unsupported => 0,
            Class::QNaN | Class::SNaN => C0,
            Class::Normal => C2,
            Class::Infinity => C2 | C0,
            Class::Zero => C3,
            Class::Denormal | Class::PseudoDenormal => C3 | C2,
        }
    };
    let c1 = if x.sign() { C1 } else { 0 };
    set_cc(&mut cpu.fpu, CC, c | c1);
    commit(cpu, op, &env, None);
    Ok(())
}

// ---- stack and miscellaneous ----

fn fxch(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = op.imm as usize;
    let (e0, ei) = (cpu.fpu.st_empty(0), cpu.fpu.st_empty(i));
    if e0 || ei {
        if stack_fault(cpu, &mut env, false) {
            // Masked response: empty operands become indefinite, then swap.
            if e0 {
                cpu.fpu.set_st(0, INDEFINITE);
            }
            if ei {
                cpu.fpu.set_st(i, INDEFINITE);
            }
            swap(&mut cpu.fpu, i);
        }
    } else {
        set_cc(&mut cpu.fpu, C1, 0);
        swap(&mut cpu.fpu, i);
    }
    commit(cpu, op, &env, None);
    Ok(())
}

fn swap(f: &mut FpuState, i: usize) {
    let (a, b) = (f.phys(0), f.phys(i));
    f.st.swap(a, b);
    let (ta, tb) = (f.tag(a), f.tag(b));
    f.set_tag(a, tb);
    f.set_tag(b, ta);
}

fn ffree<const POP: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let env = Env::new(cpu.fpu.fcw);
    let r = cpu.fpu.phys(op.imm as usize);
    cpu.fpu.set_tag(r, super::tag::EMPTY);
    set_cc(&mut cpu.fpu, C1, 0);
    if POP {
        cpu.fpu.pop();
    }
    commit(cpu, op, &env, None);
    Ok(())
}

fn fincdecstp<const D: usize>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let env = Env::new(cpu.fpu.fcw);
    let t = cpu.fpu.top() + D;
    cpu.fpu.set_top(t);
    set_cc(&mut cpu.fpu, C1, 0);
    commit(cpu, op, &env, None);
    Ok(())
}

/// FABS (K=0), FCHS (1): sign-only operations, no exceptions but stack underflow.
fn fsign<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) {
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(0, INDEFINITE);
        }
    } else {
        let x = cpu.fpu.st(0);
        let v = if K == 0 { x.abs() } else { x.negate() };
        cpu.fpu.set_st(0, v);
        set_cc(&mut cpu.fpu, C1, 0);
    }
    commit(cpu, op, &env, None);
    Ok(())
}

fn fnop(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let env = Env::new(cpu.fpu.fcw);
    commit(cpu, op, &env, None);
    Ok(())
}

fn fnop_control(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    cpu.check_x87()
}

/// FCMOVcc: B, E, BE, U, NB, NE, NBE, NU (SDM Vol. 2A FCMOVcc).
fn fcmov<const C: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let i = op.imm as usize;
    let f = &cpu.flags;
    let cond = match C & 3 {
        0 => f.cf(),
        1 => f.zf(),
        2 => f.cf() || f.zf(),
        _ => f.pf(),
    } ^ (C >= 4);
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(i) {
        if stack_fault(cpu, &mut env, false) {
            // Masked response: ST(0) becomes indefinite (the source is read
            // as indefinite when the move happens, else ST(0) keeps... the
            // SDM leaves it to the response: the host writes indefinite).
            cpu.fpu.set_st(0, INDEFINITE);
        }
    } else {
        // C1 is left alone (the host keeps it).
        if cond {
            let v = cpu.fpu.st(i);
            cpu.fpu.set_st(0, v);
        }
    }
    commit(cpu, op, &env, None);
    Ok(())
}

/// FSQRT (K=0), FRNDINT (1).
fn funary<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) {
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(0, INDEFINITE);
        }
        commit(cpu, op, &env, None);
        return Ok(());
    }
    let x = cpu.fpu.st(0);
    let r = if K == 0 {
        let fmt = env.fmt_reg();
        sf::sqrt(&mut env, x, fmt)
    } else {
        let rc = env.rc();
        sf::round_int_f80(&mut env, x, rc)
    };
    if !env.suppressed() {
        cpu.fpu.set_st(0, r);
    }
    set_cc(&mut cpu.fpu, C1, c1_of(&env));
    commit(cpu, op, &env, None);
    Ok(())
}

fn fscale(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(1) {
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(0, INDEFINITE);
        }
        commit(cpu, op, &env, None);
        return Ok(());
    }
    let r = scale(&mut env, cpu.fpu.st(0), cpu.fpu.st(1));
    if !env.suppressed() {
        cpu.fpu.set_st(0, r);
    }
    set_cc(&mut cpu.fpu, C1, c1_of(&env));
    commit(cpu, op, &env, None);
    Ok(())
}

/// ST(0) * 2^trunc(ST(1)) (SDM Vol. 2A FSCALE, Table 3-49).
pub fn scale(env: &mut Env, a: F80, b: F80) -> F80 {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        env.raise_pre(exc::IE);
        return INDEFINITE;
    }
    if a.is_nan() || b.is_nan() {
        if ca == Class::SNaN || cb == Class::SNaN {
            env.raise_pre(exc::IE);
        }
        return sf::propagate_nan(a, b);
    }
    if cb == Class::Infinity {
        if b.sign() {
            // x * 2^-inf: 0 for finite x, invalid for infinite.
            if ca == Class::Infinity {
                env.raise_pre(exc::IE);
                return INDEFINITE;
            }
            if a.is_denormal() && env.raise_pre(exc::DE) {
                return INDEFINITE;
            }
            return F80::zero(a.sign());
        }
        if ca == Class::Zero {
            env.raise_pre(exc::IE);
            return INDEFINITE;
        }
        if a.is_denormal() && env.raise_pre(exc::DE) {
            return INDEFINITE;
        }
        return F80::inf(a.sign());
    }
    if (a.is_denormal() || b.is_denormal()) && env.raise_pre(exc::DE) {
        return INDEFINITE;
    }
    if matches!(ca, Class::Zero | Class::Infinity) {
        return a;
    }
    // trunc(ST(1)), saturated: beyond +-2^17 the result over/underflows anyway.
    let n: i32 = if cb == Class::Zero {
        0
    } else {
        let f = Fin::of(b);
        let m = if f.e < 0 {
            0
        } else if f.e > 30 {
            1 << 20
        } else {
            ((f.sig >> (63 - f.e)) as i64).min(1 << 20) as i32
        };
        if f.sign {
            -m
        } else {
            m
        }
    };
    if cb == Class::Zero && ca == Class::Denormal {
        // Scaling by a zero returns a denormal as is, without UE (host
        // behaviour; a nonzero ST(1) that truncates to 0 does not).
        return a;
    }
    let f = Fin::of(a);
    match sf::round_core(env, f.sign, f.e + n, (f.sig as u128) << 64, sf::FMT_EXT) {
        Some(r) => r.to_f80(),
        None => INDEFINITE,
    }
}

fn fxtract(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) {
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(0, INDEFINITE);
            cpu.fpu.push(INDEFINITE);
        }
        commit(cpu, op, &env, None);
        return Ok(());
    }
    if !cpu.fpu.st_empty(7) {
        if stack_fault(cpu, &mut env, true) {
            cpu.fpu.set_st(0, INDEFINITE);
            cpu.fpu.push(INDEFINITE);
        }
        commit(cpu, op, &env, None);
        return Ok(());
    }
    let x = cpu.fpu.st(0);
    let (e, s) = match x.class() {
        Class::Unsupported => {
            env.raise_pre(exc::IE);
            (INDEFINITE, INDEFINITE)
        }
        Class::SNaN => {
            env.raise_pre(exc::IE);
            let q = sf::propagate_nan(x, x);
            (q, q)
        }
        Class::QNaN => (x, x),
        Class::Infinity => (F80::inf(false), x),
        Class::Zero => {
            env.raise_pre(exc::ZE);
            (F80::inf(true), x)
        }
        _ => {
            if x.is_denormal() && env.raise_pre(exc::DE) {
                (INDEFINITE, INDEFINITE)
            } else {
                let f = Fin::of(x);
                (
                    sf::from_i64(f.e as i64),
                    F80::new((f.sign as u16) << 15 | sf::BIAS as u16, f.sig),
                )
            }
        }
    };
    if !env.suppressed() {
        cpu.fpu.set_st(0, e);
        cpu.fpu.push(s);
    }
    set_cc(&mut cpu.fpu, C1, 0);
    commit(cpu, op, &env, None);
    Ok(())
}

fn fprem<const IEEE: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(1) {
        set_cc(&mut cpu.fpu, C2, 0);
        if stack_fault(cpu, &mut env, false) {
            cpu.fpu.set_st(0, INDEFINITE);
        }
        commit(cpu, op, &env, None);
        return Ok(());
    }
    let (r, cc) = prem(&mut env, cpu.fpu.st(0), cpu.fpu.st(1), IEEE);
    if !env.suppressed() {
        cpu.fpu.set_st(0, r);
    }
    match cc {
        Some(cc) if !env.suppressed() => set_cc(&mut cpu.fpu, CC, cc),
        _ => set_cc(&mut cpu.fpu, C1 | C2, 0),
    }
    commit(cpu, op, &env, None);
    Ok(())
}

/// N of the partial-remainder step (SDM Vol. 2A FPREM: "an
/// implementation-dependent number between 32 and 63").
fn prem_n(d: i32) -> i32 {
    32 + (d & 31)
}

/// Partial remainder (SDM Vol. 2A FPREM/FPREM1). Returns the new ST(0) and
/// the condition codes: C2 set if incomplete, else C0, C3, C1 = Q2, Q1, Q0;
/// `None` for NaN/invalid operands, where the host clears C1 and C2 only.
pub fn prem(env: &mut Env, a: F80, b: F80, ieee: bool) -> (F80, Option<u16>) {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        env.raise_pre(exc::IE);
        return (INDEFINITE, None);
    }
    if a.is_nan() || b.is_nan() {
        if ca == Class::SNaN || cb == Class::SNaN {
            env.raise_pre(exc::IE);
        }
        return (sf::propagate_nan(a, b), None);
    }
    if ca == Class::Infinity || cb == Class::Zero {
        env.raise_pre(exc::IE);
        return (INDEFINITE, None);
    }
    if (a.is_denormal() || b.is_denormal()) && env.raise_pre(exc::DE) {
        return (INDEFINITE, Some(0));
    }
    if ca == Class::Zero {
        return (a, Some(0));
    }
    let (x, y) = (Fin::of(a), Fin::of(b));
    if cb == Class::Infinity {
        // x rem inf = x; only a pseudo-denormal is rewritten (exponent 1).
        let r = if ca == Class::PseudoDenormal {
            F80::new(a.sign_exp | 1, a.signif)
        } else {
            a
        };
        return (r, Some(0));
    }
    let d = x.e - y.e;
    if d >= 64 {
        let n = prem_n(d);
        let num = (x.sig as u128) << n as u32;
        let r = num % y.sig as u128;
        let res = if r == 0 {
            F80::zero(x.sign)
        } else {
            exact(env, x.sign, x.e - n, r)
        };
        return (res, Some(C2));
    }
    if d < -1 || (d == -1 && !ieee) {
        return (unchanged_dividend(env, a, x), Some(0));
    }
    // Units of the remainder: 2^(min(x.e, y.e) - 63).
    let (num, den, ue) = if d >= 0 {
        ((x.sig as u128) << d as u32, y.sig as u128, y.e)
    } else {
        (x.sig as u128, (y.sig as u128) << 1, x.e)
    };
    let mut q = num / den;
    let mut r = num % den;
    let mut sign = x.sign;
    if ieee && (2 * r > den || (2 * r == den && q & 1 != 0)) {
        q += 1;
        r = den - r;
        sign = !sign;
    }
    let cc = (if q & 4 != 0 { C0 } else { 0 })
        | (if q & 2 != 0 { C3 } else { 0 })
        | (if q & 1 != 0 { C1 } else { 0 });
    let res = if r == 0 {
        F80::zero(x.sign)
    } else {
        exact(env, sign, ue, r)
    };
    (res, Some(cc))
}

/// FPREM's result when the quotient is 0: the dividend, normalized (a
/// pseudo-denormal gets exponent 1; a denormal reports UE: host behaviour).
fn unchanged_dividend(env: &mut Env, a: F80, x: Fin) -> F80 {
    if a.class() == Class::Normal {
        return a;
    }
    exact(env, x.sign, x.e, x.sig as u128)
}

/// An exact value `v * 2^(e - 63)` packed (denormal if below range).
fn exact(env: &mut Env, sign: bool, e: i32, v: u128) -> F80 {
    let lz = v.leading_zeros();
    let v = v << lz;
    let e = e + 64 - lz as i32;
    match sf::round_core(env, sign, e, v, sf::FMT_EXT) {
        Some(r) => r.to_f80(),
        None => INDEFINITE,
    }
}

// ---- control instructions ----

fn fninit<const WAIT: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    if WAIT {
        cpu.check_wait()?;
        cpu.check_x87()?;
        cpu.fpu_pending()?;
    } else {
        cpu.check_x87()?;
    }
    cpu.fpu.init();
    cpu.ferr = false;
    Ok(())
}

fn fnclex<const WAIT: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    if WAIT {
        cpu.check_x87()?;
        cpu.fpu_pending()?;
    } else {
        cpu.check_x87()?;
    }
    cpu.fpu.fsw &= !(0x3F | fsw::SF | fsw::ES | fsw::B);
    cpu.ferr = false;
    Ok(())
}

fn fnstsw_ax<const WAIT: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    cpu.check_x87()?;
    if WAIT {
        cpu.fpu_pending()?;
    }
    let v = cpu.fpu.fsw as u64;
    cpu.set_reg(0, 2, v);
    Ok(())
}

fn fnstsw_m<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_x87()?;
    if WAIT {
        cpu.fpu_pending()?;
    }
    let (s, ea) = mem(cpu, op);
    let v = cpu.fpu.fsw as u64;
    cpu.write(bus, s, ea, 2, v)
}

fn fnstcw<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_x87()?;
    if WAIT {
        cpu.fpu_pending()?;
    }
    let (s, ea) = mem(cpu, op);
    let v = cpu.fpu.fcw as u64;
    cpu.write(bus, s, ea, 2, v)
}

fn fldcw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let (s, ea) = mem(cpu, op);
    let v = cpu.read(bus, s, ea, 2)? as u16;
    // Bits 6, 13-15 are reserved; bit 6 reads as 1 (SDM Vol. 1 8.1.5).
    cpu.fpu.fcw = (v & 0x1F3F) | 0x40;
    cpu.fpu.update_es();
    Ok(())
}

fn fwait(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    cpu.check_wait()?;
    cpu.fpu_pending()
}
