//! Cranelift IR for one block (see the module doc of `jit`).
//!
//! The generated function keeps a compile-time picture of what lives in host
//! registers: each general register's value once read or written (written
//! ones are "dirty"), and the lazy flag state of the last inline flag-writing
//! op (`Flags::{op, msb, a, b, res, lazy, bits}`, the interpreter's own
//! representation). Before an interpreter handler runs, and at every exit,
//! dirty registers and flags are stored, RIP and `icount` are set as the
//! interpreter loop sets them; after a handler nothing is assumed and values
//! are loaded again.

use crate::cpu::decode::{Handler, Op};
use crate::cpu::exec::{alu, control, data, stack};
use crate::cpu::flags::{size_mask, Flags, LazyOp};
use crate::cpu::mmu::{Tlb, TlbEntry, TLB_SIZE};
use crate::cpu::state::rflags::{CF, OF, PF, SF, STATUS, ZF};
use crate::cpu::state::{Segment, CS};
use crate::cpu::Cpu;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, Value,
};
use cranelift_frontend::Variable;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::collections::HashMap;
use std::mem::{offset_of, size_of};

/// The ops the emitter generates inline, by interpreter handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MovRR64,
    MovRR32,
    MovRI,
    /// ALU kind (`alu::ADD`...), operand size.
    AluRR(u8, u8),
    AluRI(u8, u8),
    /// DEC?, operand size.
    IncDec(bool, u8),
    AluRRJcc(u8, u8),
    AluRIJcc(u8, u8),
    IncDecJcc(bool, u8),
    /// Condition code.
    Jcc(u8),
    JmpRel,
    /// MOV r, m / MOV m, r / MOV m, imm: operand size.
    MovRM(u8),
    MovMR(u8),
    MovMI(u8),
    /// MOVZX/MOVSX r, m: signed, source size, destination size.
    MovX(bool, u8, u8),
    /// PUSH r / POP r: stack operand size.
    Push(u8),
    Pop(u8),
    /// LEA r, m.
    Lea,
    /// CALL rel / RET (imm16) as the block's last op: operand size.
    CallRel(u8),
    Ret(u8),
}

/// Handler address -> inline kind. A handler address that two handlers
/// share (identical code folded by the compiler) has one behaviour, so the
/// mapping is exact either way.
pub struct Kinds(HashMap<usize, Kind>);

macro_rules! sizes {
    ($m:ident, $f:ident, $k:expr, $v:ident) => {
        $m.insert($f::<{ $k }, 1> as Handler as usize, Kind::$v($k, 1));
        $m.insert($f::<{ $k }, 2> as Handler as usize, Kind::$v($k, 2));
        $m.insert($f::<{ $k }, 4> as Handler as usize, Kind::$v($k, 4));
        $m.insert($f::<{ $k }, 8> as Handler as usize, Kind::$v($k, 8));
    };
}

macro_rules! alu_kinds {
    ($m:ident, $($k:ident),*) => {
        $(
            sizes!($m, alu_rr_s, alu::$k, AluRR);
            sizes!($m, alu_ri_s, alu::$k, AluRI);
            sizes!($m, alu_rr_jcc, alu::$k, AluRRJcc);
            sizes!($m, alu_ri_jcc, alu::$k, AluRIJcc);
        )*
    };
}

impl Kinds {
    pub fn new() -> Kinds {
        use alu::{alu_ri_jcc, alu_ri_s, alu_rr_jcc, alu_rr_s, incdec_jcc, incdec_rs};
        let mut m = HashMap::new();
        alu_kinds!(m, ADD, OR, AND, SUB, XOR, CMP, TEST);
        sizes!(m, incdec_rs, false, IncDec);
        sizes!(m, incdec_rs, true, IncDec);
        sizes!(m, incdec_jcc, false, IncDecJcc);
        sizes!(m, incdec_jcc, true, IncDecJcc);
        macro_rules! mem {
            ($f:ident, $v:ident) => {
                m.insert(data::$f::<1> as Handler as usize, Kind::$v(1));
                m.insert(data::$f::<2> as Handler as usize, Kind::$v(2));
                m.insert(data::$f::<4> as Handler as usize, Kind::$v(4));
                m.insert(data::$f::<8> as Handler as usize, Kind::$v(8));
            };
        }
        m.insert(stack::push_rs::<2> as Handler as usize, Kind::Push(2));
        m.insert(stack::push_rs::<4> as Handler as usize, Kind::Push(4));
        m.insert(stack::push_rs::<8> as Handler as usize, Kind::Push(8));
        m.insert(stack::pop_rs::<2> as Handler as usize, Kind::Pop(2));
        m.insert(stack::pop_rs::<4> as Handler as usize, Kind::Pop(4));
        m.insert(stack::pop_rs::<8> as Handler as usize, Kind::Pop(8));
        mem!(mov_rm_s, MovRM);
        mem!(mov_mr_s, MovMR);
        mem!(mov_mi_s, MovMI);
        macro_rules! movx {
            ($($sg:literal, $a:literal, $b:literal);*) => {
                $( m.insert(data::movx_rm_s::<$sg, $a, $b> as Handler as usize, Kind::MovX($sg, $a, $b)); )*
            };
        }
        movx!(false, 1, 2; false, 1, 4; false, 1, 8; false, 2, 4; false, 2, 8;
              true, 1, 2; true, 1, 4; true, 1, 8; true, 2, 4; true, 2, 8; true, 4, 8);
        m.insert(data::lea as Handler as usize, Kind::Lea);
        for sz in [2u8, 4, 8] {
            let (c, r): (Handler, Handler) = match sz {
                2 => (control::call_rel_s::<2>, control::ret_near_s::<2>),
                4 => (control::call_rel_s::<4>, control::ret_near_s::<4>),
                _ => (control::call_rel_s::<8>, control::ret_near_s::<8>),
            };
            m.insert(c as usize, Kind::CallRel(sz));
            m.insert(r as usize, Kind::Ret(sz));
        }
        m.insert(data::mov_rr64 as Handler as usize, Kind::MovRR64);
        m.insert(data::mov_rr32 as Handler as usize, Kind::MovRR32);
        m.insert(data::mov_ri as Handler as usize, Kind::MovRI);
        m.insert(control::jmp_rel as Handler as usize, Kind::JmpRel);
        macro_rules! jccs {
            ($($c:literal),*) => { $( m.insert(control::jcc::<$c> as Handler as usize, Kind::Jcc($c)); )* };
        }
        jccs!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        Kinds(m)
    }

    /// Whether the emitter generates `ops[i]` (of `n`) inline.
    pub fn is_inline(&self, op: &Op, i: usize, n: usize) -> bool {
        self.of(op, i, n).is_some()
    }

    /// The inline kind of `ops[i]` in a block of `n` ops, if it has one here:
    /// branches only as the block's last op (fused ones as the one before
    /// the Jcc they absorbed, which is last).
    fn of(&self, op: &Op, i: usize, n: usize) -> Option<Kind> {
        let k = *self.0.get(&(op.exec as usize))?;
        let ok = match k {
            Kind::MovRR64 | Kind::MovRR32 => op.o[0] < 16 && op.o[1] < 16,
            Kind::MovRI => op.o[0] < 16 && matches!(op.osz, 1 | 2 | 4 | 8),
            Kind::AluRR(..) | Kind::AluRI(..) | Kind::IncDec(..) => op.o[0] < 16,
            Kind::AluRRJcc(..) | Kind::AluRIJcc(..) | Kind::IncDecJcc(..) => {
                op.o[0] < 16 && i + 2 == n
            }
            Kind::Jcc(_) | Kind::JmpRel => i + 1 == n,
            // FS/GS have bases in every mode: the handler's path.
            Kind::MovRM(_) | Kind::MovX(..) => op.o[0] < 16 && op.seg < 4,
            Kind::MovMR(_) => op.o[1] < 16 && op.seg < 4,
            Kind::MovMI(_) => op.seg < 4,
            Kind::Push(_) | Kind::Pop(_) => op.o[0] < 16,
            Kind::Lea => op.o[0] < 16 && matches!(op.osz, 2 | 4 | 8),
            Kind::CallRel(_) | Kind::Ret(_) => i + 1 == n,
        };
        ok.then_some(k)
    }
}

const fn gpr_off(r: usize) -> i32 {
    (offset_of!(Cpu, gpr) + 8 * r) as i32
}
const RIP: i32 = offset_of!(Cpu, rip) as i32;
const ICOUNT: i32 = offset_of!(Cpu, icount) as i32;
const IP_MASK: i32 = offset_of!(Cpu, ip_mask) as i32;
const STOP_BLOCK: i32 = offset_of!(Cpu, stop_block) as i32;
const LONG64: i32 = offset_of!(Cpu, long64) as i32;
const CS_LIMIT: i32 =
    (offset_of!(Cpu, seg) + CS * size_of::<Segment>() + offset_of!(Segment, limit)) as i32;
const TLB: i32 = offset_of!(Cpu, tlb) as i32;
const SP_MASK: i32 = offset_of!(Cpu, sp_mask) as i32;
const MMU_USER: i32 = offset_of!(Cpu, mmu_user) as i32;
const TLB_E: usize = offset_of!(Tlb, e);
const TE_SIZE: i64 = size_of::<TlbEntry>() as i64;
const JIT_UNTIL: i32 = offset_of!(Cpu, jit_until) as i32;
const JIT_INTR: i32 = offset_of!(Cpu, jit_intr) as i32;
const HALTED: i32 = offset_of!(Cpu, halted) as i32;
const SHADOW: i32 = offset_of!(Cpu, shadow) as i32;
const NMI_PENDING: i32 = offset_of!(Cpu, nmi_pending) as i32;
const STOP_REQUEST: i32 = offset_of!(Cpu, stop_request) as i32;
const INTR_RECHECK: i32 = offset_of!(Cpu, intr_recheck) as i32;
const RUNNING_BLOCK: i32 = offset_of!(Cpu, running_block) as i32;
const BLOCKS_RUN: i32 = (offset_of!(Cpu, stats) + offset_of!(crate::cpu::Stats, blocks_run)) as i32;
const FL: usize = offset_of!(Cpu, flags);
const FL_BITS: i32 = (FL + offset_of!(Flags, bits)) as i32;
const FL_LAZY: i32 = (FL + offset_of!(Flags, lazy)) as i32;
const FL_OP: i32 = (FL + offset_of!(Flags, op)) as i32;
const FL_MSB: i32 = (FL + offset_of!(Flags, msb)) as i32;
const FL_A: i32 = (FL + offset_of!(Flags, a)) as i32;
const FL_B: i32 = (FL + offset_of!(Flags, b)) as i32;
const FL_RES: i32 = (FL + offset_of!(Flags, res)) as i32;

/// What `Em` knows at a split (see `Em::rejoin_slow`).
type SplitState = (
    (
        u16,
        Option<FlagVals>,
        i64,
        [Option<Value>; 8],
        Option<Value>,
    ),
    (bool, bool),
    u16,
);

/// The lazy flag state in host values (`kop`/`klazy`: known at compile time).
#[derive(Clone, Copy)]
struct FlagVals {
    op: Value,
    kop: Option<LazyOp>,
    msb: Value,
    a: Value,
    b: Value,
    res: Value,
    lazy: Value,
    klazy: Option<u64>,
    /// RFLAGS' stored bits, when known (else in memory).
    bits: Option<Value>,
}

struct Em<'a> {
    b: FunctionBuilder<'a>,
    cpu: Value,
    bus: Value,
    /// The current block's ops and start (RIP).
    ops: Value,
    base: Value,
    mask: Value,
    /// icount = ic + k.
    ic: Variable,
    k: i64,
    /// The general registers; `loaded` says which hold the register's value
    /// here, `dirty` which of those memory does not have yet.
    vars: [Variable; 16],
    loaded: u16,
    dirty: u16,
    flags: Option<FlagVals>,
    flags_dirty: bool,
    bits_dirty: bool,
    call_sig: cranelift_codegen::ir::SigRef,
    ptr: types::Type,
    /// The jump-cache key at entry (`Tlb::jump_key`).
    jump_key: Value,
    /// Registers the inline ops use: held from the entry on, so a block
    /// that runs itself again keeps them in host registers.
    used: u16,
    /// RIP at entry: the first block's start; `base` is the current block's.
    base0: Value,
    /// Offset of the block being emitted from the first block's start.
    cur_d: i64,
    /// The function's blocks: offset from the first, IR block of its top,
    /// address of its ops, identity.
    region: Vec<(i64, cranelift_codegen::ir::Block, usize, usize)>,
    /// `Cpu::jit_until` (the run's budget end), loaded at entry.
    until: Value,
    /// The shared exits after a handler call: a fault (param: RIP of the
    /// instruction) and a stop (param: `icount` as the handler left it).
    fault_exit: cranelift_codegen::ir::Block,
    stop_exit: cranelift_codegen::ir::Block,
    /// What `host_addr` computed that only a handler can change: per
    /// segment and access kind whether the segment is flat (or 64-bit),
    /// and the TLB set of the current privilege. Forgotten at every handler
    /// call and block top.
    seg_ok: [Option<Value>; 8],
    tlb_set: Option<Value>,
    /// The same facts carried to the top of every block: set at entry and
    /// again by a transition's full check (after a handler ran), for the
    /// slots the region's inline memory ops use.
    seg_vars: [Option<Variable>; 8],
    tlb_var: Variable,
    cond_sig: cranelift_codegen::ir::SigRef,
    /// Where the region's CALLs return to (offsets from the first block):
    /// the places a RET most likely goes.
    ret_sites: Vec<i64>,
    /// Nonzero once a handler ran since the last full boundary check: only
    /// a handler changes what those checks read (inline ops write registers,
    /// flags and data pages, never code pages: `TlbEntry::tag_w`).
    called: Variable,
}

fn mf() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl Em<'_> {
    fn c(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }
    fn ld(&mut self, off: i32) -> Value {
        self.b.ins().load(types::I64, mf(), self.cpu, off)
    }
    fn st(&mut self, v: Value, off: i32) {
        self.b.ins().store(mf(), v, self.cpu, off);
    }
    fn gpr(&mut self, r: u8) -> Value {
        let r = (r & 15) as usize;
        if self.loaded & (1 << r) != 0 {
            return self.b.use_var(self.vars[r]);
        }
        let v = self.ld(gpr_off(r));
        self.b.def_var(self.vars[r], v);
        self.loaded |= 1 << r;
        v
    }
    /// Loads every register this path holds again (after a handler ran).
    fn reload(&mut self, which: u16) {
        for r in 0..16 {
            if which & (1 << r) != 0 {
                let v = self.ld(gpr_off(r));
                self.b.def_var(self.vars[r], v);
            }
        }
    }
    fn ic(&mut self) -> Value {
        self.b.use_var(self.ic)
    }
    /// Writes register `r` with the merge rules of `Cpu::gpr_set`.
    fn set_gpr(&mut self, r: u8, sz: u8, v: Value) {
        let nv = match sz {
            1 | 2 => {
                let m = size_mask(sz) as i64;
                let old = self.gpr(r);
                let keep = self.b.ins().band_imm_s(old, !m);
                let low = self.b.ins().band_imm_s(v, m);
                self.b.ins().bor(keep, low)
            }
            4 => self.b.ins().band_imm_s(v, 0xFFFF_FFFF),
            _ => v,
        };
        let r = (r & 15) as usize;
        self.b.def_var(self.vars[r], nv);
        self.loaded |= 1 << r;
        self.dirty |= 1 << r;
    }

    fn flags(&mut self) -> FlagVals {
        if let Some(f) = self.flags {
            return f;
        }
        let op = self.b.ins().uload8(types::I64, mf(), self.cpu, FL_OP);
        let msb = self.b.ins().uload8(types::I64, mf(), self.cpu, FL_MSB);
        let a = self.ld(FL_A);
        let b = self.ld(FL_B);
        let res = self.ld(FL_RES);
        let lazy = self.ld(FL_LAZY);
        let f = FlagVals {
            op,
            kop: None,
            msb,
            a,
            b,
            res,
            lazy,
            klazy: None,
            bits: None,
        };
        self.flags = Some(f);
        f
    }
    fn bits(&mut self) -> Value {
        let f = self.flags();
        if let Some(b) = f.bits {
            return b;
        }
        let b = self.ld(FL_BITS);
        if let Some(f) = self.flags.as_mut() {
            f.bits = Some(b);
        }
        b
    }

    /// Records an inline op's flags (`Flags::set_lazy`).
    fn set_flags(&mut self, op: LazyOp, sz: u8, a: Value, b: Value, res: Value, lazy: u64) {
        let bits = self.flags.and_then(|f| f.bits);
        let opv = self.c(op as u8 as i64);
        let msb = self.c((sz * 8 - 1) as i64);
        let lz = self.c(lazy as i64);
        self.flags = Some(FlagVals {
            op: opv,
            kop: Some(op),
            msb,
            a,
            b,
            res,
            lazy: lz,
            klazy: Some(lazy),
            bits,
        });
        self.flags_dirty = true;
    }

    /// Bit `msb` of `v` as 0/1.
    fn bit_at_msb(&mut self, v: Value, f: &FlagVals) -> Value {
        let s = self.b.ins().ushr(v, f.msb);
        self.b.ins().band_imm_s(s, 1)
    }

    /// One status flag (0/1): from the lazy state when `lazy` has it, else
    /// from the stored bits.
    fn flag(&mut self, which: u64) -> Value {
        let f = self.flags();
        let lazy_val = match which {
            CF | OF => {
                let (a, b, r) = (f.a, f.b, f.res);
                let word = |em: &mut Self, op: LazyOp| -> Value {
                    let ins = &mut em.b;
                    match (op, which) {
                        (LazyOp::Add, CF) => {
                            let ab = ins.ins().band(a, b);
                            let o = ins.ins().bor(a, b);
                            let nr = ins.ins().bnot(r);
                            let t = ins.ins().band(o, nr);
                            ins.ins().bor(ab, t)
                        }
                        (LazyOp::Sub, CF) => {
                            let na = ins.ins().bnot(a);
                            let nab = ins.ins().band(na, b);
                            let o = ins.ins().bor(na, b);
                            let t = ins.ins().band(o, r);
                            ins.ins().bor(nab, t)
                        }
                        (LazyOp::Add, _) => {
                            let x = ins.ins().bxor(a, r);
                            let y = ins.ins().bxor(b, r);
                            ins.ins().band(x, y)
                        }
                        (LazyOp::Sub, _) => {
                            let x = ins.ins().bxor(a, b);
                            let y = ins.ins().bxor(a, r);
                            ins.ins().band(x, y)
                        }
                        (LazyOp::Logic, _) => ins.ins().iconst(types::I64, 0),
                        (LazyOp::Given, CF) => a,
                        (LazyOp::Given, _) => b,
                    }
                };
                let w = match f.kop {
                    Some(op) => word(self, op),
                    None => {
                        let wa = word(self, LazyOp::Add);
                        let ws = word(self, LazyOp::Sub);
                        let wl = word(self, LazyOp::Logic);
                        let wg = word(self, LazyOp::Given);
                        let is_add =
                            self.b
                                .ins()
                                .icmp_imm_s(IntCC::Equal, f.op, LazyOp::Add as i64);
                        let is_sub =
                            self.b
                                .ins()
                                .icmp_imm_s(IntCC::Equal, f.op, LazyOp::Sub as i64);
                        let is_logic =
                            self.b
                                .ins()
                                .icmp_imm_s(IntCC::Equal, f.op, LazyOp::Logic as i64);
                        let x = self.b.ins().select(is_logic, wl, wg);
                        let x = self.b.ins().select(is_sub, ws, x);
                        self.b.ins().select(is_add, wa, x)
                    }
                };
                self.bit_at_msb(w, &f)
            }
            ZF => {
                // (res << (63 - msb)) == 0
                let c63 = self.c(63);
                let sh = self.b.ins().isub(c63, f.msb);
                let m = self.b.ins().ishl(f.res, sh);
                let z = self.b.ins().icmp_imm_s(IntCC::Equal, m, 0);
                self.b.ins().uextend(types::I64, z)
            }
            SF => self.bit_at_msb(f.res, &f),
            _ => {
                // PF: even number of ones in the low byte.
                let lo = self.b.ins().band_imm_s(f.res, 0xFF);
                let n = self.b.ins().popcnt(lo);
                let odd = self.b.ins().band_imm_s(n, 1);
                self.b.ins().bxor_imm_s(odd, 1)
            }
        };
        match f.klazy {
            Some(l) if l & which != 0 => lazy_val,
            Some(_) => {
                let bits = self.bits();
                let s = self.b.ins().ushr_imm_s(bits, which.trailing_zeros() as i64);
                self.b.ins().band_imm_s(s, 1)
            }
            None => {
                let bits = self.bits();
                let s = self.b.ins().ushr_imm_s(bits, which.trailing_zeros() as i64);
                let stored = self.b.ins().band_imm_s(s, 1);
                let l = self.b.ins().band_imm_s(f.lazy, which as i64);
                self.b.ins().select(l, lazy_val, stored)
            }
        }
    }

    /// Condition code `cc` from the flags in memory (`Flags::cond`, called):
    /// when no inline op set them, the lazy op is known only at run time, and
    /// a call is less code than every case inline.
    fn cond_call(&mut self, cc: u8) -> Value {
        let fp = self
            .b
            .ins()
            .iconst(self.ptr, super::cond_of as *const () as usize as i64);
        let ccv = self.b.ins().iconst(types::I32, cc as i64);
        let call = self
            .b
            .ins()
            .call_indirect(self.cond_sig, fp, &[self.cpu, ccv]);
        let r = self.b.inst_results(call)[0];
        self.b.ins().uextend(types::I64, r)
    }

    /// Condition code `cc` (0..15) as 0/1, as `Flags::cond`.
    fn cond(&mut self, cc: u8) -> Value {
        if self.flags.is_none_or(|f| f.kop.is_none()) {
            return self.cond_call(cc);
        }
        let r = match cc >> 1 {
            0 => self.flag(OF),
            1 => self.flag(CF),
            2 => self.flag(ZF),
            3 => {
                let c = self.flag(CF);
                let z = self.flag(ZF);
                self.b.ins().bor(c, z)
            }
            4 => self.flag(SF),
            5 => self.flag(PF),
            6 => {
                let s = self.flag(SF);
                let o = self.flag(OF);
                self.b.ins().bxor(s, o)
            }
            _ => {
                let z = self.flag(ZF);
                let s = self.flag(SF);
                let o = self.flag(OF);
                let l = self.b.ins().bxor(s, o);
                self.b.ins().bor(z, l)
            }
        };
        if cc & 1 != 0 {
            self.b.ins().bxor_imm_s(r, 1)
        } else {
            r
        }
    }

    /// Stores dirty registers and flags.
    fn flush(&mut self) {
        for r in 0..16 {
            if self.dirty & (1 << r) != 0 {
                let v = self.b.use_var(self.vars[r]);
                self.st(v, gpr_off(r));
            }
        }
        self.dirty = 0;
        self.flush_flags();
    }

    /// Stores the flags if an inline op changed them.
    fn flush_flags(&mut self) {
        if let Some(f) = self.flags {
            if self.flags_dirty {
                self.b.ins().istore8(mf(), f.op, self.cpu, FL_OP);
                self.b.ins().istore8(mf(), f.msb, self.cpu, FL_MSB);
                self.st(f.a, FL_A);
                self.st(f.b, FL_B);
                self.st(f.res, FL_RES);
                self.st(f.lazy, FL_LAZY);
            }
            if self.bits_dirty {
                if let Some(b) = f.bits {
                    self.st(b, FL_BITS);
                }
            }
        }
        self.flags_dirty = false;
        self.bits_dirty = false;
    }

    /// `(base + off) & ip_mask`: the interpreter's RIP after an op ending
    /// `off` bytes into the block.
    fn rip_at(&mut self, off: i64) -> Value {
        let v = self.b.ins().iadd_imm_s(self.base, off);
        self.b.ins().band(v, self.mask)
    }
    fn store_ic(&mut self) {
        let ic = self.ic();
        let v = self.b.ins().iadd_imm_s(ic, self.k);
        self.st(v, ICOUNT);
    }

    /// Whether a near branch to `t` passes `control::branch`'s checks.
    fn branch_ok(&mut self, t: Value) -> Value {
        let l64 = self.b.ins().uload8(types::I64, mf(), self.cpu, LONG64);
        let sh = self.b.ins().ishl_imm_s(t, 16);
        let sx = self.b.ins().sshr_imm_s(sh, 16);
        let canon = self.b.ins().icmp(IntCC::Equal, sx, t);
        let lim = self.b.ins().uload32(mf(), self.cpu, CS_LIMIT);
        let in_lim = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, t, lim);
        self.b.ins().select(l64, canon, in_lim)
    }

    /// Calls op `i`'s interpreter handler with the machine state written
    /// back; returns with the fault and stop exits emitted and the builder
    /// on the path where the block goes on.
    fn call(&mut self, ops: &[Op], i: usize) {
        let op = &ops[i];
        self.flush();
        let rip = self.rip_at(op.end as i64);
        self.st(rip, RIP);
        self.store_ic();
        let fp = self
            .b
            .ins()
            .iconst(self.ptr, super::call_op as *const () as usize as i64);
        let opp = self
            .b
            .ins()
            .iadd_imm_s(self.ops, (i * size_of::<Op>()) as i64);
        let call = self
            .b
            .ins()
            .call_indirect(self.call_sig, fp, &[self.cpu, self.bus, opp]);
        let r = self.b.inst_results(call)[0];
        let one = self.b.ins().iconst(types::I8, 1);
        self.b.def_var(self.called, one);
        self.loaded = 0;
        self.flags = None;
        self.seg_ok = [None; 8];
        self.tlb_set = None;
        let ok = self.b.create_block();
        // Fault: RIP back at the instruction, the count as it was.
        let start = self.rip_at(op.end as i64 - op.len as i64);
        self.b
            .ins()
            .brif(r, self.fault_exit, &[start.into()], ok, &[]);
        self.b.switch_to_block(ok);
        // The handler may have counted (a fused op the emitter left to it).
        let ic = self.ld(ICOUNT);
        self.b.def_var(self.ic, ic);
        self.k = 1;
        let sb = self.b.ins().uload8(types::I32, mf(), self.cpu, STOP_BLOCK);
        let go = self.b.create_block();
        self.b.ins().brif(sb, self.stop_exit, &[ic.into()], go, &[]);
        self.b.switch_to_block(go);
    }

    fn exit(&mut self) {
        self.flush();
        self.store_ic();
        let zero = self.b.ins().iconst(types::I32, 0);
        self.b.ins().return_(&[zero]);
    }

    /// The effective address of op's memory operand (`Op::ea`).
    fn ea(&mut self, op: &Op) -> Value {
        let mut a = self.c(op.disp as i64);
        if (op.base as usize) < 16 {
            let r = self.gpr(op.base);
            a = self.b.ins().iadd(a, r);
        } else if op.base == crate::cpu::decode::BASE_RIP {
            let rip = self.rip_at(op.end as i64);
            a = self.b.ins().iadd(a, rip);
        }
        if (op.index as usize) < 16 {
            let x = self.gpr(op.index);
            let x = self.b.ins().ishl_imm_s(x, op.scale as i64);
            a = self.b.ins().iadd(a, x);
        }
        if op.asz == 8 {
            a
        } else {
            self.b.ins().band_imm_s(a, size_mask(op.asz) as i64)
        }
    }

    /// The TLB entries of the current privilege (`Cpu::mmu_user`).
    fn tlb_set_addr(&mut self) -> Value {
        let tlb = self.b.ins().load(self.ptr, mf(), self.cpu, TLB);
        let user = self.ld(MMU_USER);
        let set = self.b.ins().band_imm_s(user, 1);
        let so = self.b.ins().imul_imm_s(set, TLB_SIZE as i64 * TE_SIZE);
        self.b.ins().iadd(tlb, so)
    }

    /// Sets the carried segment and TLB facts (`seg_vars`, `tlb_var`).
    fn define_carried(&mut self) {
        for slot in 0..8 {
            if let Some(var) = self.seg_vars[slot] {
                let v = self.seg_flat((slot / 2) as u8, slot % 2 == 1);
                self.b.def_var(var, v);
            }
        }
        let t = self.tlb_set_addr();
        self.b.def_var(self.tlb_var, t);
    }

    /// Whether `Cpu::fast_lin` takes an offset in segment `seg` as the
    /// linear address (a flat segment, or 64-bit mode), as i8.
    fn seg_flat(&mut self, seg: u8, write: bool) -> Value {
        use crate::cpu::state::attr::{P, TYPE_CODE, TYPE_EC, TYPE_RW};
        let sb = offset_of!(Cpu, seg) + seg as usize * size_of::<Segment>();
        let base = self.ld((sb + offset_of!(Segment, base)) as i32);
        let lim = self
            .b
            .ins()
            .uload32(mf(), self.cpu, (sb + offset_of!(Segment, limit)) as i32);
        let attr = self.b.ins().uload16(
            types::I64,
            mf(),
            self.cpu,
            (sb + offset_of!(Segment, attr)) as i32,
        );
        let (mask, want) = if write {
            (P | TYPE_CODE | TYPE_EC | TYPE_RW, P | TYPE_RW)
        } else {
            (P | TYPE_CODE | TYPE_EC, P)
        };
        let am = self.b.ins().band_imm_s(attr, mask as i64);
        let attr_ok = self.b.ins().icmp_imm_s(IntCC::Equal, am, want as i64);
        let base0 = self.b.ins().icmp_imm_s(IntCC::Equal, base, 0);
        let lim4g = self.b.ins().icmp_imm_s(IntCC::Equal, lim, 0xFFFF_FFFF);
        let flat = self.b.ins().band(attr_ok, base0);
        let flat = self.b.ins().band(flat, lim4g);
        let l64 = self.b.ins().load(types::I8, mf(), self.cpu, LONG64);
        self.b.ins().bor(flat, l64)
    }

    /// The host address of `size` bytes at `off` in segment `seg` (0..3)
    /// when `Cpu::read`/`Cpu::write` would take their fast path (a flat or
    /// 64-bit segment, a TLB hit of the access kind, inside one page), and
    /// whether they would (i8).
    fn host_addr(&mut self, seg: u8, off: Value, size: u8, write: bool) -> (Value, Value) {
        let slot = seg as usize * 2 + write as usize;
        let seg_ok = match self.seg_ok.get(slot).copied().flatten() {
            Some(v) => v,
            None => {
                let v = self.seg_flat(seg, write);
                if let Some(c) = self.seg_ok.get_mut(slot) {
                    *c = Some(v);
                }
                v
            }
        };
        // The TLB entry of the current privilege's set.
        let set = match self.tlb_set {
            Some(v) => v,
            None => {
                let v = self.tlb_set_addr();
                self.tlb_set = Some(v);
                v
            }
        };
        let page = self.b.ins().ushr_imm_s(off, 12);
        let idx = self.b.ins().band_imm_s(page, (TLB_SIZE - 1) as i64);
        let eoff = self.b.ins().imul_imm_s(idx, TE_SIZE);
        let e = self.b.ins().iadd(set, eoff);
        let tag_off = if write {
            offset_of!(TlbEntry, tag_w)
        } else {
            offset_of!(TlbEntry, tag_r)
        };
        let tag = self
            .b
            .ins()
            .load(types::I64, mf(), e, (TLB_E + tag_off) as i32);
        let addend = self.b.ins().load(
            types::I64,
            mf(),
            e,
            (TLB_E + offset_of!(TlbEntry, addend)) as i32,
        );
        let pg = self.b.ins().band_imm_s(off, !0xFFF);
        let hit = self.b.ins().icmp(IntCC::Equal, tag, pg);
        let in_page = self.b.ins().band_imm_s(off, 0xFFF);
        let fits = self.b.ins().icmp_imm_s(
            IntCC::UnsignedLessThanOrEqual,
            in_page,
            0x1000 - size as i64,
        );
        let ok = self.b.ins().band(hit, fits);
        let ok = self.b.ins().band(ok, seg_ok);
        let host = self.b.ins().iadd(addend, off);
        (host, ok)
    }

    /// A MOV-family or PUSH/POP memory op: the fast path inline, the
    /// handler otherwise.
    fn mem(&mut self, ops: &[Op], i: usize, kind: Kind) {
        const RSP: u8 = 4;
        let op = &ops[i];
        let (size, write) = match kind {
            Kind::MovRM(sz) | Kind::Pop(sz) => (sz, false),
            Kind::MovX(_, src, _) => (src, false),
            Kind::MovMR(sz) | Kind::MovMI(sz) | Kind::Push(sz) => (sz, true),
            _ => return self.call(ops, i),
        };
        // The registers the handler may write (held on both paths).
        let writes: u16 = match kind {
            Kind::MovRM(_) | Kind::MovX(..) => 1 << (op.o[0] & 15),
            Kind::Push(_) => 1 << RSP,
            Kind::Pop(_) => (1 << RSP) | (1 << (op.o[0] & 15)),
            _ => 0,
        };
        for r in 0..16u8 {
            if writes & (1 << r) != 0 {
                self.gpr(r);
            }
        }
        let val = match kind {
            Kind::MovMR(_) => Some(self.gpr(op.o[1])),
            Kind::Push(sz) => {
                let v = self.gpr(op.o[0]);
                Some(self.b.ins().band_imm_s(v, size_mask(sz) as i64))
            }
            Kind::MovMI(sz) => Some(self.c((op.imm & size_mask(sz)) as i64)),
            _ => None,
        };
        // The stack pointer after the op (PUSH, POP) and the offset accessed.
        let (off, seg, new_sp) = match kind {
            Kind::Push(sz) => {
                let (sp, new_sp) = self.push_slot(sz);
                (sp, crate::cpu::state::SS as u8, Some(new_sp))
            }
            Kind::Pop(sz) => {
                let (sp, new_sp) = self.pop_slot(sz as i64);
                (sp, crate::cpu::state::SS as u8, Some(new_sp))
            }
            _ => (self.ea(op), op.seg, None),
        };
        let (host, ok) = self.host_addr(seg, off, size, write);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(ok, fast, &[], slow, &[]);

        self.b.switch_to_block(fast);
        let ty = match size {
            1 => types::I8,
            2 => types::I16,
            4 => types::I32,
            _ => types::I64,
        };
        // Guest data need not be aligned; the TLB hit says the page is mapped.
        let flags = MemFlagsData::new().with_notrap();
        if let Some(v) = val {
            let v = if ty == types::I64 {
                v
            } else {
                self.b.ins().ireduce(ty, v)
            };
            self.b.ins().store(flags, v, host, 0);
            if let Some(nsp) = new_sp {
                self.set_gpr(RSP, 8, nsp);
            }
        } else {
            let v = self.b.ins().load(ty, flags, host, 0);
            let signed = matches!(kind, Kind::MovX(true, ..));
            let v = match (ty == types::I64, signed) {
                (true, _) => v,
                (false, true) => self.b.ins().sextend(types::I64, v),
                (false, false) => self.b.ins().uextend(types::I64, v),
            };
            let dsz = match kind {
                Kind::MovX(_, _, d) => d,
                _ => size,
            };
            // POP: RSP first, then the destination (POP rSP loads the value).
            if let Some(nsp) = new_sp {
                self.set_gpr(RSP, 8, nsp);
            }
            self.set_gpr(op.o[0], dsz, v);
        }
        self.b.ins().jump(join, &[]);
        let state = self.split_state();
        self.b.switch_to_block(slow);
        self.call(ops, i);
        self.rejoin_slow(state, writes);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(join);
    }

    /// The stack slot a push of `sz` bytes writes, and RSP after it.
    fn push_slot(&mut self, sz: u8) -> (Value, Value) {
        let m = self.ld(SP_MASK);
        let rsp = self.gpr(4);
        let keep = self.b.ins().bnot(m);
        let keep = self.b.ins().band(rsp, keep);
        let d = self.b.ins().iadd_imm_s(rsp, -(sz as i64));
        let sp = self.b.ins().band(d, m);
        let new_sp = self.b.ins().bor(keep, sp);
        (sp, new_sp)
    }

    /// The stack slot a pop reads, and RSP after it moves `by` bytes.
    fn pop_slot(&mut self, by: i64) -> (Value, Value) {
        let m = self.ld(SP_MASK);
        let rsp = self.gpr(4);
        let keep = self.b.ins().bnot(m);
        let keep = self.b.ins().band(rsp, keep);
        let sp = self.b.ins().band(rsp, m);
        let u = self.b.ins().iadd_imm_s(sp, by);
        let nsp = self.b.ins().band(u, m);
        let new_sp = self.b.ins().bor(keep, nsp);
        (sp, new_sp)
    }

    /// After a handler ran on the slow side of a split (`mem`, `call_rel`,
    /// `ret`): the state the fast side had, with the handler's register
    /// writes (`writes`) and count taken from memory. The handler wrote only
    /// `writes`, never the flags, segments or privilege, so what the fast
    /// side knew still holds; what it holds unstored stays dirty (the slow
    /// side stored it already: storing twice is harmless).
    fn rejoin_slow(&mut self, state: SplitState, writes: u16) {
        (self.loaded, self.flags, self.k, self.seg_ok, self.tlb_set) = state.0;
        (self.flags_dirty, self.bits_dirty) = state.1;
        self.dirty = state.2;
        self.reload(writes);
        let ic = self.ld(ICOUNT);
        let ic = self.b.ins().iadd_imm_s(ic, -self.k);
        self.b.def_var(self.ic, ic);
    }

    fn split_state(&self) -> SplitState {
        (
            (self.loaded, self.flags, self.k, self.seg_ok, self.tlb_set),
            (self.flags_dirty, self.bits_dirty),
            self.dirty,
        )
    }

    /// CALL rel (the block's last op) inline: the push through the TLB when
    /// the target passes `control::branch`'s checks, the handler otherwise
    /// (it raises the fault). Returns the target, RIP after the call.
    fn call_rel(&mut self, ops: &[Op], i: usize, sz: u8) -> Value {
        let op = &ops[i];
        let next = self.rip_at(op.end as i64);
        let t0 = self.b.ins().iadd_imm_s(next, op.imm as i64);
        let t = self.b.ins().band_imm_s(t0, size_mask(sz) as i64);
        let bok = self.branch_ok(t);
        let (sp, new_sp) = self.push_slot(sz);
        let (host, ok) = self.host_addr(crate::cpu::state::SS as u8, sp, sz, true);
        let ok = self.b.ins().band(ok, bok);
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let v = self.b.ins().band_imm_s(next, size_mask(sz) as i64);
        let v = match sz {
            2 => self.b.ins().ireduce(types::I16, v),
            4 => self.b.ins().ireduce(types::I32, v),
            _ => v,
        };
        self.b
            .ins()
            .store(MemFlagsData::new().with_notrap(), v, host, 0);
        self.set_gpr(4, 8, new_sp);
        self.b.ins().jump(join, &[]);
        let state = self.split_state();
        self.b.switch_to_block(slow);
        self.call(ops, i);
        self.rejoin_slow(state, 1 << 4);
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(join);
        t
    }

    /// RET / RET imm16 (the block's last op) inline: the pop through the
    /// TLB and the target checked as `control::ret_near_s` does, the handler
    /// when either fails. Returns the new RIP.
    fn ret(&mut self, ops: &[Op], i: usize, sz: u8) -> Value {
        let op = &ops[i];
        let mut by = sz as i64;
        if op.o[0] == crate::cpu::decode::K_IMM {
            by += (op.imm & 0xFFFF) as i64;
        }
        let (sp, new_sp) = self.pop_slot(by);
        let (host, ok) = self.host_addr(crate::cpu::state::SS as u8, sp, sz, false);
        let fast = self.b.create_block();
        let fast2 = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let target = self.b.append_block_param(join, types::I64);
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let ty = match sz {
            2 => types::I16,
            4 => types::I32,
            _ => types::I64,
        };
        let v = self
            .b
            .ins()
            .load(ty, MemFlagsData::new().with_notrap(), host, 0);
        let v = if ty == types::I64 {
            v
        } else {
            self.b.ins().uextend(types::I64, v)
        };
        let bok = self.branch_ok(v);
        self.b.ins().brif(bok, fast2, &[], slow, &[]);
        self.b.switch_to_block(fast2);
        self.set_gpr(4, 8, new_sp);
        self.b.ins().jump(join, &[v.into()]);
        let state = self.split_state();
        self.b.switch_to_block(slow);
        self.call(ops, i);
        self.rejoin_slow(state, 1 << 4);
        let t = self.ld(RIP);
        self.b.ins().jump(join, &[t.into()]);
        self.b.switch_to_block(join);
        target
    }

    fn alu(&mut self, op: &Op, k: u8, sz: u8, imm: bool) {
        let m = size_mask(sz) as i64;
        let a0 = self.gpr(op.o[0]);
        let a = self.b.ins().band_imm_s(a0, m);
        let b = if imm {
            self.c((op.imm & size_mask(sz)) as i64)
        } else {
            let b0 = self.gpr(op.o[1]);
            self.b.ins().band_imm_s(b0, m)
        };
        let (r, kind) = match k {
            alu::ADD => (self.b.ins().iadd(a, b), LazyOp::Add),
            alu::SUB | alu::CMP => (self.b.ins().isub(a, b), LazyOp::Sub),
            alu::AND | alu::TEST => (self.b.ins().band(a, b), LazyOp::Logic),
            alu::OR => (self.b.ins().bor(a, b), LazyOp::Logic),
            _ => (self.b.ins().bxor(a, b), LazyOp::Logic),
        };
        if kind == LazyOp::Logic {
            let z = self.c(0);
            self.set_flags(kind, sz, z, z, r, STATUS);
        } else {
            self.set_flags(kind, sz, a, b, r, STATUS);
        }
        if k != alu::CMP && k != alu::TEST {
            self.set_gpr(op.o[0], sz, r);
        }
    }

    fn incdec(&mut self, op: &Op, dec: bool, sz: u8) {
        let m = size_mask(sz) as i64;
        let a0 = self.gpr(op.o[0]);
        let a = self.b.ins().band_imm_s(a0, m);
        let r = if dec {
            self.b.ins().iadd_imm_s(a, -1)
        } else {
            self.b.ins().iadd_imm_s(a, 1)
        };
        self.set_gpr(op.o[0], sz, r);
        // CF survives: into the stored bits, then the other five are lazy.
        let cf = if self.flags.is_some_and(|f| f.kop.is_some()) {
            self.flag(CF)
        } else {
            self.cond_call(2)
        };
        let bits = self.bits();
        let keep = self.b.ins().band_imm_s(bits, !(CF as i64));
        let nb = self.b.ins().bor(keep, cf);
        let one = self.c(1);
        let kind = if dec { LazyOp::Sub } else { LazyOp::Add };
        self.set_flags(kind, sz, a, one, r, STATUS & !CF);
        if let Some(f) = self.flags.as_mut() {
            f.bits = Some(nb);
        }
        self.bits_dirty = true;
    }

    /// The branch that ends the block: `next` is RIP after the branch
    /// instruction, `t` its target when `take` (0/1; None: always).
    /// The branch counts one instruction when it completes. When the taken
    /// target fails the checks, op `fail_op`'s handler runs (it raises the
    /// fault) with `k` instructions counted.
    fn end_branch(
        &mut self,
        ops: &[Op],
        take: Option<Value>,
        next: Value,
        t: Value,
        fail_op: usize,
        cands: &[i64],
    ) {
        let ok = self.branch_ok(t);
        let bad = match take {
            Some(c) => {
                let nok = self.b.ins().bxor_imm_s(ok, 1);
                let nok = self.b.ins().uextend(types::I64, nok);
                self.b.ins().band(c, nok)
            }
            None => {
                let nok = self.b.ins().bxor_imm_s(ok, 1);
                self.b.ins().uextend(types::I64, nok)
            }
        };
        let fail = self.b.create_block();
        let good = self.b.create_block();
        self.b.ins().brif(bad, fail, &[], good, &[]);
        // The interpreter's handler raises the fault.
        self.b.switch_to_block(fail);
        let saved = (self.loaded, self.dirty, self.flags, self.k);
        let saved_flags = (self.flags_dirty, self.bits_dirty);
        self.call(ops, fail_op);
        self.exit();
        (self.loaded, self.dirty, self.flags, self.k) = saved;
        (self.flags_dirty, self.bits_dirty) = saved_flags;
        self.b.switch_to_block(good);
        let rip = match take {
            Some(c) => self.b.ins().select(c, t, next),
            None => t,
        };
        self.st(rip, RIP);
        self.k += 1;
        self.flush_flags();
        self.transition(rip, cands);
    }

    /// At the end of a block with RIP stored (`rip`): when the next block is
    /// one of this function's (`cands`: where the block's branches lead,
    /// as offsets from its start) and the run loop would run it straight
    /// away (the checks of `Cpu::run_blocks` and `Cpu::step_block`: budget
    /// left, no stop, shadow, halt, NMI or interrupt to take, no TF, the
    /// jump cache still valid, the block not invalidated), count the block
    /// and go on there; else return to the run loop. The checks that only a
    /// handler can change run only after one ran (`called`).
    fn transition(&mut self, rip: Value, cands: &[i64]) {
        use crate::cpu::state::rflags::{IF, TF};
        let mut targets: Vec<usize> = Vec::new();
        for c in cands {
            let d = self.cur_d + c;
            if let Some(t) = self.region.iter().position(|r| r.0 == d) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        if targets.is_empty() {
            self.exit();
            return;
        }
        self.flush_flags();
        let ic = self.ic();
        let ic = self.b.ins().iadd_imm_s(ic, self.k);
        let out = self.b.create_block();
        let chk = self.b.create_block();
        let full = self.b.create_block();
        let pick = self.b.create_block();
        let budget = self.b.ins().icmp(IntCC::UnsignedLessThan, ic, self.until);
        self.b.ins().brif(budget, chk, &[], out, &[]);
        self.b.switch_to_block(chk);
        let called = self.b.use_var(self.called);
        self.b.ins().brif(called, full, &[], pick, &[]);

        self.b.switch_to_block(full);
        let mut ok = self.b.ins().iconst(types::I8, 1);
        for off in [
            HALTED,
            SHADOW,
            NMI_PENDING,
            STOP_REQUEST,
            INTR_RECHECK,
            STOP_BLOCK,
        ] {
            let f = self.b.ins().load(types::I8, mf(), self.cpu, off);
            let z = self.b.ins().icmp_imm_s(IntCC::Equal, f, 0);
            ok = self.b.ins().band(ok, z);
        }
        let bits = self.ld(FL_BITS);
        let intr = self.b.ins().uload8(types::I64, mf(), self.cpu, JIT_INTR);
        let intr_if = self.b.ins().ishl_imm_s(intr, IF.trailing_zeros() as i64);
        let stop_bits = self.b.ins().bor_imm_s(intr_if, TF as i64);
        let hit = self.b.ins().band(bits, stop_bits);
        let none = self.b.ins().icmp_imm_s(IntCC::Equal, hit, 0);
        ok = self.b.ins().band(ok, none);
        let tlb = self.b.ins().load(self.ptr, mf(), self.cpu, TLB);
        let key = self
            .b
            .ins()
            .load(types::I64, mf(), tlb, offset_of!(Tlb, jump_key) as i32);
        let key_ok = self.b.ins().icmp(IntCC::Equal, key, self.jump_key);
        ok = self.b.ins().band(ok, key_ok);
        self.define_carried();
        self.b.ins().brif(ok, pick, &[], out, &[]);

        self.b.switch_to_block(pick);
        for (n, &t) in targets.iter().enumerate() {
            let (d, header, ops_addr, id) = self.region[t];
            let next = if n + 1 == targets.len() {
                out
            } else {
                self.b.create_block()
            };
            // The target's RIP without wrapping (its bytes are the ones
            // compiled) and the block not invalidated since.
            let want = self.b.ins().iadd_imm_s(self.base0, d);
            let same = self.b.ins().icmp(IntCC::Equal, rip, want);
            let opsv = self.b.ins().iconst(self.ptr, ops_addr as i64);
            let valid = self
                .b
                .ins()
                .load(types::I8, mf(), opsv, offset_of!(Op, valid) as i32);
            let valid = self.b.ins().icmp_imm_s(IntCC::NotEqual, valid, 0);
            let go_ok = self.b.ins().band(same, valid);
            let go = self.b.create_block();
            self.b.ins().brif(go_ok, go, &[], next, &[]);
            self.b.switch_to_block(go);
            let loaded = self.loaded;
            // The top of every block holds the used registers (see `build`)
            // with memory up to date.
            for r in 0..16 {
                if self.dirty & (1 << r) != 0 {
                    let v = self.b.use_var(self.vars[r]);
                    self.st(v, gpr_off(r));
                }
            }
            let missing = self.used & !self.loaded;
            self.reload(missing);
            self.loaded = loaded;
            let n = self.ld(BLOCKS_RUN);
            let n = self.b.ins().iadd_imm_s(n, 1);
            self.st(n, BLOCKS_RUN);
            let idv = self.b.ins().iconst(types::I64, id as i64);
            self.st(idv, RUNNING_BLOCK);
            self.b.def_var(self.ic, ic);
            let zero = self.b.ins().iconst(types::I8, 0);
            self.b.def_var(self.called, zero);
            self.b.ins().jump(header, &[]);
            if next != out {
                self.b.switch_to_block(next);
            }
        }
        self.b.switch_to_block(out);
        self.exit();
    }
}

/// One block of a compiled function: its ops, its start as an offset from
/// the first block's start (in the same page), its identity.
pub struct RegionBlock<'a> {
    pub ops: &'a [Op],
    pub d: i64,
    pub id: usize,
}

impl Kinds {
    /// Where block `ops` can go next, as offsets from its start: the targets
    /// of the direct branch that ends it, or the byte after it.
    pub fn successors(&self, ops: &[Op]) -> Vec<i64> {
        let n = ops.len();
        let Some(last) = ops.last() else {
            return Vec::new();
        };
        if n >= 2 {
            let op = &ops[n - 2];
            if let Some(Kind::AluRRJcc(..) | Kind::AluRIJcc(..) | Kind::IncDecJcc(..)) =
                self.of(op, n - 2, n)
            {
                let next = op.end as i64 + op.base as i64;
                return vec![next + op.disp as i64, next];
            }
        }
        let end = last.end as i64;
        match self.of(last, n - 1, n) {
            Some(Kind::Jcc(_)) => vec![end + op_imm(last), end],
            Some(Kind::JmpRel) => vec![end + op_imm(last)],
            // The callee, and where it returns to (see `Em::ret_sites`).
            Some(Kind::CallRel(_)) => vec![end + op_imm(last), end],
            Some(Kind::Ret(_)) => Vec::new(),
            _ => vec![end],
        }
    }
}

/// A relative branch's displacement.
fn op_imm(op: &Op) -> i64 {
    op.imm as i64
}

/// Builds the function for the blocks `region` (the first is where it is
/// entered) into `func`; None when they have little to gain (mostly handler
/// calls) unless `every_block`.
pub fn build(
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    sig: Signature,
    region: &[RegionBlock<'_>],
    kinds: &Kinds,
    cfg: cranelift_codegen::isa::TargetFrontendConfig,
    every_block: bool,
) -> Option<()> {
    let ptr = cfg.pointer_type();
    let kinds_of: Vec<Vec<Option<Kind>>> = region
        .iter()
        .map(|rb| {
            let n = rb.ops.len();
            rb.ops
                .iter()
                .enumerate()
                .map(|(i, op)| kinds.of(op, i, n))
                .collect()
        })
        .collect();
    // A block that is mostly handler calls runs as fast in the interpreter
    // (each call costs what a dispatch does) and would only cost the compile.
    let head = kinds_of.first()?;
    let inline = head.iter().filter(|k| k.is_some()).count();
    if inline * 2 < head.len() && !every_block {
        return None;
    }
    func.name = UserFuncName::user(0, 0);
    let mut csig = Signature::new(sig.call_conv);
    for _ in 0..3 {
        csig.params.push(AbiParam::new(ptr));
    }
    csig.returns.push(AbiParam::new(types::I32));
    let mut b = FunctionBuilder::new(func, fctx);
    let call_sig = b.import_signature(csig);
    let mut cond_sig = Signature::new(sig.call_conv);
    cond_sig.params.push(AbiParam::new(ptr));
    cond_sig.params.push(AbiParam::new(types::I32));
    cond_sig.returns.push(AbiParam::new(types::I32));
    let cond_sig = b.import_signature(cond_sig);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let p = b.block_params(entry).to_vec();
    let (cpu, bus, opsv) = (p[0], p[1], p[2]);
    let base = b.ins().load(types::I64, mf(), cpu, RIP);
    let mask = b.ins().load(types::I64, mf(), cpu, IP_MASK);
    let ic0 = b.ins().load(types::I64, mf(), cpu, ICOUNT);
    let until = b.ins().load(types::I64, mf(), cpu, JIT_UNTIL);
    let ic = b.declare_var(types::I64);
    b.def_var(ic, ic0);
    let called = b.declare_var(types::I8);
    let zero = b.ins().iconst(types::I8, 0);
    b.def_var(called, zero);
    let vars: [Variable; 16] = std::array::from_fn(|_| b.declare_var(types::I64));
    let tlb = b.ins().load(ptr, mf(), cpu, TLB);
    let jump_key = b
        .ins()
        .load(types::I64, mf(), tlb, offset_of!(Tlb, jump_key) as i32);
    let mut used = 0u16;
    for (rb, ks) in region.iter().zip(&kinds_of) {
        for (op, k) in rb.ops.iter().zip(ks) {
            match k {
                None => {}
                Some(Kind::Push(_) | Kind::Pop(_)) => used |= 1 << 4 | 1 << (op.o[0] & 15),
                Some(Kind::CallRel(_) | Kind::Ret(_)) => used |= 1 << 4,
                Some(_) => {
                    for r in [op.o[0], op.o[1], op.base, op.index] {
                        if r < 16 {
                            used |= 1 << r;
                        }
                    }
                }
            }
        }
    }
    for (r, var) in vars.iter().enumerate() {
        if used & (1 << r) != 0 {
            let v = b.ins().load(types::I64, mf(), cpu, gpr_off(r));
            b.def_var(*var, v);
        }
    }
    let ret_sites: Vec<i64> = region
        .iter()
        .zip(&kinds_of)
        .filter_map(|(rb, ks)| match (rb.ops.last(), ks.last()) {
            (Some(last), Some(Some(Kind::CallRel(_)))) => Some(rb.d + last.end as i64),
            _ => None,
        })
        .collect();
    let headers: Vec<_> = region
        .iter()
        .map(|rb| (rb.d, b.create_block(), rb.ops.as_ptr() as usize, rb.id))
        .collect();
    // The exits every handler call shares (see `Em::call`).
    let fault_exit = b.create_block();
    let stop_exit = b.create_block();
    let mut seg_vars = [None; 8];
    for (rb, ks) in region.iter().zip(&kinds_of) {
        for (op, k) in rb.ops.iter().zip(ks) {
            let slot = match k {
                Some(Kind::MovRM(_) | Kind::MovX(..)) => op.seg as usize * 2,
                Some(Kind::MovMR(_) | Kind::MovMI(_)) => op.seg as usize * 2 + 1,
                Some(Kind::Push(_) | Kind::CallRel(_)) => crate::cpu::state::SS * 2 + 1,
                Some(Kind::Pop(_) | Kind::Ret(_)) => crate::cpu::state::SS * 2,
                _ => continue,
            };
            if let Some(v) = seg_vars.get_mut(slot) {
                if v.is_none() {
                    *v = Some(b.declare_var(types::I8));
                }
            }
        }
    }
    let tlb_var = b.declare_var(ptr);
    let mut em = Em {
        b,
        cpu,
        bus,
        ops: opsv,
        base,
        mask,
        ic,
        k: 0,
        vars,
        loaded: used,
        dirty: 0,
        flags: None,
        flags_dirty: false,
        bits_dirty: false,
        call_sig,
        ptr,
        jump_key,
        used,
        base0: base,
        cur_d: 0,
        region: headers.clone(),
        until,
        called,
        fault_exit,
        stop_exit,
        seg_ok: [None; 8],
        tlb_set: None,
        seg_vars,
        tlb_var,
        cond_sig,
        ret_sites,
    };
    em.define_carried();
    em.b.ins().jump(headers[0].1, &[]);
    em.b.switch_to_block(fault_exit);
    let fault_rip = em.b.append_block_param(fault_exit, types::I64);
    em.b.ins().store(mf(), fault_rip, cpu, RIP);
    let one = em.b.ins().iconst(types::I32, 1);
    em.b.ins().return_(&[one]);
    em.b.switch_to_block(stop_exit);
    let stop_ic = em.b.append_block_param(stop_exit, types::I64);
    // Registers and flags are in memory (the call stored them), RIP is the
    // handler's: only the count of the op that stopped is left.
    let n = em.b.ins().iadd_imm_s(stop_ic, 1);
    em.b.ins().store(mf(), n, cpu, ICOUNT);
    let zero = em.b.ins().iconst(types::I32, 0);
    em.b.ins().return_(&[zero]);
    for (bi, (rb, kinds_of)) in region.iter().zip(&kinds_of).enumerate() {
        em.b.switch_to_block(headers[bi].1);
        em.cur_d = rb.d;
        if bi > 0 {
            em.base = em.b.ins().iadd_imm_s(base, rb.d);
            em.ops = em.b.ins().iconst(ptr, rb.ops.as_ptr() as usize as i64);
        }
        // Every way in stores what it wrote (see `transition`).
        em.loaded = used;
        em.dirty = 0;
        for slot in 0..8 {
            em.seg_ok[slot] = em.seg_vars[slot].map(|v| em.b.use_var(v));
        }
        em.tlb_set = Some(em.b.use_var(em.tlb_var));
        em.flags = None;
        em.flags_dirty = false;
        em.bits_dirty = false;
        em.k = 0;
        em.block(rb.ops, kinds_of);
    }
    em.b.seal_all_blocks();
    em.b.finalize(cfg);
    Some(())
}

impl Em<'_> {
    /// The body of one block, from its top to its exits.
    fn block(&mut self, ops: &[Op], kinds_of: &[Option<Kind>]) {
        let n = ops.len();
        let em = self;
        let mut i = 0;
        let mut ended = false;
        while i < n {
            let op = &ops[i];
            match kinds_of[i] {
                None => {
                    em.call(ops, i);
                    // The handler set RIP; the next op's comes from `end`.
                }
                Some(Kind::MovRR64) => {
                    let v = em.gpr(op.o[1]);
                    em.set_gpr(op.o[0], 8, v);
                    em.k += 1;
                }
                Some(Kind::MovRR32) => {
                    let v = em.gpr(op.o[1]);
                    em.set_gpr(op.o[0], 4, v);
                    em.k += 1;
                }
                Some(Kind::MovRI) => {
                    let v = em.c((op.imm & size_mask(op.osz)) as i64);
                    em.set_gpr(op.o[0], op.osz, v);
                    em.k += 1;
                }
                Some(Kind::AluRR(k, sz)) | Some(Kind::AluRI(k, sz)) => {
                    em.alu(op, k, sz, matches!(kinds_of[i], Some(Kind::AluRI(..))));
                    em.k += 1;
                }
                Some(Kind::IncDec(dec, sz)) => {
                    em.incdec(op, dec, sz);
                    em.k += 1;
                }
                Some(Kind::AluRRJcc(..)) | Some(Kind::AluRIJcc(..)) | Some(Kind::IncDecJcc(..)) => {
                    match kinds_of[i] {
                        Some(Kind::IncDecJcc(dec, sz)) => em.incdec(op, dec, sz),
                        Some(Kind::AluRIJcc(k, sz)) => em.alu(op, k, sz, true),
                        Some(Kind::AluRRJcc(k, sz)) => em.alu(op, k, sz, false),
                        _ => {}
                    }
                    // The Jcc half (`alu::jcc_half`): the fused op's `base` is
                    // the Jcc's length, `index` its operand size, `disp` its
                    // displacement, `aux` its condition.
                    let c = em.cond(op.aux & 15);
                    let next_d = op.end as i64 + op.base as i64;
                    let next = em.rip_at(next_d);
                    let t0 = em.b.ins().iadd_imm_s(next, op.disp as i64);
                    let t = em.b.ins().band_imm_s(t0, size_mask(op.index) as i64);
                    // The ALU half counts even when the branch faults.
                    em.k += 1;
                    let cands = [next_d + op.disp as i64, next_d];
                    em.end_branch(ops, Some(c), next, t, i + 1, &cands);
                    ended = true;
                    break;
                }
                Some(Kind::Jcc(cc)) => {
                    let c = em.cond(cc);
                    let next = em.rip_at(op.end as i64);
                    let t0 = em.b.ins().iadd_imm_s(next, op.imm as i64);
                    let t = em.b.ins().band_imm_s(t0, size_mask(op.osz) as i64);
                    let cands = [op.end as i64 + op_imm(op), op.end as i64];
                    em.end_branch(ops, Some(c), next, t, i, &cands);
                    ended = true;
                    break;
                }
                Some(
                    k @ (Kind::MovRM(_)
                    | Kind::MovMR(_)
                    | Kind::MovMI(_)
                    | Kind::MovX(..)
                    | Kind::Push(_)
                    | Kind::Pop(_)),
                ) => {
                    em.mem(ops, i, k);
                    em.k += 1;
                }
                Some(Kind::Lea) => {
                    let a = em.ea(op);
                    em.set_gpr(op.o[0], op.osz, a);
                    em.k += 1;
                }
                Some(Kind::CallRel(sz)) => {
                    let t = em.call_rel(ops, i, sz);
                    em.st(t, RIP);
                    em.k += 1;
                    em.flush_flags();
                    let cands = [op.end as i64 + op_imm(op), op.end as i64];
                    em.transition(t, &cands);
                    ended = true;
                    break;
                }
                Some(Kind::Ret(sz)) => {
                    let t = em.ret(ops, i, sz);
                    em.st(t, RIP);
                    em.k += 1;
                    em.flush_flags();
                    let cands: Vec<i64> = em.ret_sites.iter().map(|d| d - em.cur_d).collect();
                    em.transition(t, &cands);
                    ended = true;
                    break;
                }
                Some(Kind::JmpRel) => {
                    let next = em.rip_at(op.end as i64);
                    let t0 = em.b.ins().iadd_imm_s(next, op.imm as i64);
                    let t = em.b.ins().band_imm_s(t0, size_mask(op.osz) as i64);
                    let cands = [op.end as i64 + op_imm(op)];
                    em.end_branch(ops, None, next, t, i, &cands);
                    ended = true;
                    break;
                }
            }
            i += 1;
        }
        if !ended {
            // Fell off the end: RIP after the last op, unless its handler set it.
            if let Some(last) = ops.last() {
                let rip = if kinds_of[n - 1].is_some() {
                    let rip = em.rip_at(last.end as i64);
                    em.st(rip, RIP);
                    rip
                } else {
                    em.ld(RIP)
                };
                em.transition(rip, &[last.end as i64]);
            } else {
                em.exit();
            }
        }
    }
}
