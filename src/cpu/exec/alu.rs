//! ADD/OR/ADC/SBB/AND/SUB/XOR/CMP/TEST, INC/DEC/NEG/NOT (SDM Vol. 2A/2B).
//! Flags are left lazy (see `cpu::flags`).

use super::{rd, wr};
use crate::cpu::decode::{Handler, Op};
use crate::cpu::flags::{size_mask, LazyOp};
use crate::cpu::state::rflags::{CF, STATUS};
use crate::cpu::{Bus, Cpu, Res};

pub const ADD: u8 = 0;
pub const OR: u8 = 1;
pub const ADC: u8 = 2;
pub const SBB: u8 = 3;
pub const AND: u8 = 4;
pub const SUB: u8 = 5;
pub const XOR: u8 = 6;
pub const CMP: u8 = 7;
pub const TEST: u8 = 8;

pub fn pick_alu<const K: u8>(op: &Op, reg_reg: bool) -> Handler {
    use crate::cpu::decode::K_IMM;
    let (o0, o1) = (op.o[0], op.o[1]);
    if o0 < 16 && (o1 < 16 || o1 == K_IMM) {
        // No AH..BH operand: the size-specialised forms.
        let rr = o1 < 16;
        return match (op.osz, rr) {
            (1, true) => alu_rr_s::<K, 1>,
            (2, true) => alu_rr_s::<K, 2>,
            (4, true) => alu_rr_s::<K, 4>,
            (8, true) => alu_rr_s::<K, 8>,
            (1, false) => alu_ri_s::<K, 1>,
            (2, false) => alu_ri_s::<K, 2>,
            (4, false) => alu_ri_s::<K, 4>,
            (8, false) => alu_ri_s::<K, 8>,
            (_, true) => alu_rr::<K>,
            (_, false) => alu_ri::<K>,
        };
    }
    if reg_reg {
        alu_rr::<K>
    } else if o0 < 20 && o1 == K_IMM {
        alu_ri::<K>
    } else {
        alu::<K>
    }
}

/// Register, register at a compile-time size (no byte-high registers).
pub fn alu_rr_s<const K: u8, const SZ: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let a = cpu.gpr_get::<SZ>(op.o[0]);
    let b = cpu.gpr_get::<SZ>(op.o[1]);
    let r = compute::<K>(cpu, SZ, a, b);
    if K != CMP && K != TEST {
        cpu.gpr_set::<SZ>(op.o[0], r);
    }
    Ok(())
}

/// Register, immediate at a compile-time size (no byte-high registers).
pub fn alu_ri_s<const K: u8, const SZ: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let a = cpu.gpr_get::<SZ>(op.o[0]);
    let b = op.imm & size_mask(SZ);
    let r = compute::<K>(cpu, SZ, a, b);
    if K != CMP && K != TEST {
        cpu.gpr_set::<SZ>(op.o[0], r);
    }
    Ok(())
}

#[inline(always)]
fn compute<const K: u8>(cpu: &mut Cpu, sz: u8, a: u64, b: u64) -> u64 {
    match K {
        ADD => {
            let r = a.wrapping_add(b);
            cpu.flags.add(sz, a, b, r);
            r
        }
        ADC => {
            let c = cpu.flags.cf() as u64;
            let r = a.wrapping_add(b).wrapping_add(c);
            cpu.flags.add(sz, a, b, r);
            r
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b);
            cpu.flags.sub(sz, a, b, r);
            r
        }
        SBB => {
            let c = cpu.flags.cf() as u64;
            let r = a.wrapping_sub(b).wrapping_sub(c);
            cpu.flags.sub(sz, a, b, r);
            r
        }
        AND | TEST => {
            let r = a & b;
            cpu.flags.logic(sz, r);
            r
        }
        OR => {
            let r = a | b;
            cpu.flags.logic(sz, r);
            r
        }
        _ => {
            let r = a ^ b;
            cpu.flags.logic(sz, r);
            r
        }
    }
}

/// Generic form: any operand kinds.
pub fn alu<const K: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let m = size_mask(sz);
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let b = rd(cpu, bus, op, op.o[1], sz)? & m;
    if K == CMP || K == TEST {
        compute::<K>(cpu, sz, a, b);
        return Ok(());
    }
    // Compute into a scratch flag state so a faulting write leaves flags alone.
    let saved = cpu.flags;
    let r = compute::<K>(cpu, sz, a, b);
    if let Err(e) = wr(cpu, bus, op, op.o[0], sz, r & m) {
        cpu.flags = saved;
        return Err(e);
    }
    Ok(())
}

/// Register, register.
pub fn alu_rr<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = cpu.reg(op.o[0], sz);
    let b = cpu.reg(op.o[1], sz);
    let r = compute::<K>(cpu, sz, a, b);
    if K != CMP && K != TEST {
        cpu.set_reg(op.o[0], sz, r);
    }
    Ok(())
}

/// Register, immediate.
pub fn alu_ri<const K: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = cpu.reg(op.o[0], sz);
    let b = op.imm & size_mask(sz);
    let r = compute::<K>(cpu, sz, a, b);
    if K != CMP && K != TEST {
        cpu.set_reg(op.o[0], sz, r);
    }
    Ok(())
}

fn incdec(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, dec: bool) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let r = if dec {
        a.wrapping_sub(1)
    } else {
        a.wrapping_add(1)
    };
    wr(cpu, bus, op, op.o[0], sz, r & size_mask(sz))?;
    // INC/DEC leave CF alone (SDM Vol. 2A INC "Flags Affected").
    // Only CF must survive; the other five become lazy again below.
    let cf = cpu.flags.cf() as u64;
    cpu.flags.bits = (cpu.flags.bits & !CF) | cf;
    let kind = if dec { LazyOp::Sub } else { LazyOp::Add };
    cpu.flags.set_lazy(kind, sz, a, 1, r, STATUS & !CF);
    Ok(())
}

pub fn inc(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    incdec(cpu, bus, op, false)
}

pub fn dec(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    incdec(cpu, bus, op, true)
}

/// INC/DEC with a register operand (the loop counters): no operand-kind
/// dispatch, no fault path.
pub fn incdec_r<const DEC: bool>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = cpu.reg(op.o[0], sz);
    let r = if DEC {
        a.wrapping_sub(1)
    } else {
        a.wrapping_add(1)
    };
    cpu.set_reg(op.o[0], sz, r & size_mask(sz));
    let cf = cpu.flags.cf() as u64;
    cpu.flags.bits = (cpu.flags.bits & !CF) | cf;
    let kind = if DEC { LazyOp::Sub } else { LazyOp::Add };
    cpu.flags.set_lazy(kind, sz, a, 1, r, STATUS & !CF);
    Ok(())
}

/// INC/DEC of a general register (no AH..BH) at a compile-time size.
pub fn incdec_rs<const DEC: bool, const SZ: u8>(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let a = cpu.gpr_get::<SZ>(op.o[0]);
    let r = if DEC {
        a.wrapping_sub(1)
    } else {
        a.wrapping_add(1)
    };
    cpu.gpr_set::<SZ>(op.o[0], r);
    let cf = cpu.flags.cf() as u64;
    cpu.flags.bits = (cpu.flags.bits & !CF) | cf;
    let kind = if DEC { LazyOp::Sub } else { LazyOp::Add };
    cpu.flags.set_lazy(kind, SZ, a, 1, r, STATUS & !CF);
    Ok(())
}

pub fn pick_incdec<const DEC: bool>(op: &Op) -> Handler {
    if op.o[0] < 16 {
        match op.osz {
            1 => return incdec_rs::<DEC, 1>,
            2 => return incdec_rs::<DEC, 2>,
            4 => return incdec_rs::<DEC, 4>,
            8 => return incdec_rs::<DEC, 8>,
            _ => {}
        }
    }
    match (op.o[0] < 20, DEC) {
        (true, _) => incdec_r::<DEC>,
        (false, false) => inc,
        (false, true) => dec,
    }
}

pub fn neg(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    let r = 0u64.wrapping_sub(a);
    wr(cpu, bus, op, op.o[0], sz, r & size_mask(sz))?;
    cpu.flags.sub(sz, 0, a, r);
    Ok(())
}

pub fn not(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let a = rd(cpu, bus, op, op.o[0], sz)?;
    wr(cpu, bus, op, op.o[0], sz, !a & size_mask(sz))
}

// ---- compare-and-branch pairs ----
//
// A register-only ALU or INC/DEC op followed by a Jcc in the same block
// (`cmp eax, N` / `jb`, `dec ecx` / `jnz`: the end of most loops) runs as one
// op: one dispatch instead of two, and the condition is read straight from
// the flags the first half just recorded. The Jcc op stays in the block after
// the fused op: when the branch would fault (#GP on the CS limit or a
// non-canonical target) the fused op stops after the ALU half and the Jcc op
// then runs and faults as usual, so RIP, counts and flags are exactly those
// of the two instructions run one by one. Otherwise the fused op retires both
// (one count here, one in the run loop) and ends the block at the Jcc.

/// Makes `prev` run the Jcc `jcc` after it, if `prev` is a fusable form.
pub fn fuse_jcc(prev: &mut Op, jcc: &Op) {
    use crate::cpu::decode::{K_IMM, PFX_FUSED, PFX_LOCK};
    use iced_x86::Mnemonic as M;
    let (o0, o1) = (prev.o[0], prev.o[1]);
    if prev.pfx & PFX_LOCK != 0 || o0 >= 16 || !matches!(prev.osz, 1 | 2 | 4 | 8) {
        return;
    }
    let ri = o1 == K_IMM;
    if !ri && o1 >= 16 && !matches!(prev.ins.mnemonic(), M::Inc | M::Dec) {
        return;
    }
    macro_rules! by_size {
        ($f:ident, $($g:tt)*) => {
            match prev.osz {
                1 => $f::<$($g)*, 1>,
                2 => $f::<$($g)*, 2>,
                4 => $f::<$($g)*, 4>,
                _ => $f::<$($g)*, 8>,
            }
        };
    }
    let h: Handler = match (prev.ins.mnemonic(), ri) {
        (M::Cmp, false) => by_size!(alu_rr_jcc, CMP),
        (M::Cmp, true) => by_size!(alu_ri_jcc, CMP),
        (M::Test, false) => by_size!(alu_rr_jcc, TEST),
        (M::Test, true) => by_size!(alu_ri_jcc, TEST),
        (M::Add, false) => by_size!(alu_rr_jcc, ADD),
        (M::Add, true) => by_size!(alu_ri_jcc, ADD),
        (M::Sub, false) => by_size!(alu_rr_jcc, SUB),
        (M::Sub, true) => by_size!(alu_ri_jcc, SUB),
        (M::And, false) => by_size!(alu_rr_jcc, AND),
        (M::And, true) => by_size!(alu_ri_jcc, AND),
        (M::Or, false) => by_size!(alu_rr_jcc, OR),
        (M::Xor, false) => by_size!(alu_rr_jcc, XOR),
        (M::Inc, _) if prev.ins.op_count() == 1 => by_size!(incdec_jcc, false),
        (M::Dec, _) if prev.ins.op_count() == 1 => by_size!(incdec_jcc, true),
        _ => return,
    };
    prev.exec = h;
    prev.pfx |= PFX_FUSED;
    prev.disp = jcc.imm;
    prev.base = jcc.len;
    prev.index = jcc.osz;
    prev.aux = jcc.aux & 15;
}

/// The handler of a fused op's first instruction alone (TF, interrupt shadow).
pub fn unfused(op: &Op) -> Handler {
    let mut tmp = op.clone();
    crate::cpu::exec::handler_for(&op.ins, &mut tmp)
}

/// The Jcc half of a fused op; RIP already points after the first half.
#[inline(always)]
fn jcc_half(cpu: &mut Cpu, op: &Op) -> Res {
    let next = cpu.rip.wrapping_add(op.base as u64) & cpu.ip_mask;
    let target = if cpu.flags.cond(op.aux) {
        let t = next.wrapping_add(op.disp) & size_mask(op.index);
        if !crate::cpu::exec::control::branch_ok(cpu, t) {
            // The Jcc op after this one raises the fault.
            return Ok(());
        }
        t
    } else {
        next
    };
    cpu.rip = target;
    cpu.icount += 1;
    cpu.stop_block = true;
    Ok(())
}

pub fn alu_rr_jcc<const K: u8, const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    alu_rr_s::<K, SZ>(cpu, bus, op)?;
    jcc_half(cpu, op)
}

pub fn alu_ri_jcc<const K: u8, const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    alu_ri_s::<K, SZ>(cpu, bus, op)?;
    jcc_half(cpu, op)
}

pub fn incdec_jcc<const DEC: bool, const SZ: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    incdec_rs::<DEC, SZ>(cpu, bus, op)?;
    jcc_half(cpu, op)
}

#[cfg(test)]
mod tests {
    use crate::cpu::state::{rflags, CS};
    use crate::cpu::{Cpu, Exit, Fault, NullBus};

    /// How a snippet runs: one instruction per block, the block cache
    /// (fused compare-and-branch ops), or the JIT tier compiling every block
    /// on its first run.
    #[derive(Clone, Copy, PartialEq)]
    enum Tier {
        NoCache,
        Cache,
        Jit,
        /// The JIT compiling a block on its third run, with the blocks it
        /// branches to that ran before (one function for several blocks).
        JitRegions,
    }

    /// Runs 16-bit `code` at 0100:0000 until HLT or a (captured) exception.
    fn run(
        code: &[u8],
        tier: Tier,
        setup: impl Fn(&mut Cpu),
    ) -> (u64, u64, [u64; 16], u64, Option<Fault>) {
        let cpu = run_cpu(code, tier, setup);
        (cpu.icount, cpu.rip, cpu.gpr, cpu.flags.get(), cpu.captured)
    }

    /// `run`, returning the whole CPU.
    fn run_cpu(code: &[u8], tier: Tier, setup: impl Fn(&mut Cpu)) -> Cpu {
        let mut cpu = Cpu::new_bare(1 << 20);
        cpu.setup_real(0x100, 0);
        cpu.mem.ram_mut()[0x1000..0x1000 + code.len()].copy_from_slice(code);
        cpu.no_block_cache = tier == Tier::NoCache;
        if tier == Tier::Jit {
            cpu.set_jit(Some(1)).expect("this host has a JIT");
        }
        if tier == Tier::JitRegions {
            cpu.set_jit(Some(3)).expect("this host has a JIT");
        }
        cpu.capture_faults = true;
        setup(&mut cpu);
        let mut bus = NullBus;
        for _ in 0..1000 {
            let until = cpu.icount + 1000;
            if cpu.run(&mut bus, until) != Exit::Budget {
                break;
            }
        }
        if tier == Tier::Jit && cpu.flags.bits & rflags::TF == 0 {
            let compiled = cpu.jit.as_ref().map_or(0, |j| j.compiled);
            assert!(
                compiled > 0,
                "the JIT compiled none of the snippet's blocks"
            );
        }
        cpu
    }

    /// The snippet's outcome, the same in every tier.
    fn same_both_ways(
        code: &[u8],
        setup: impl Fn(&mut Cpu) + Copy,
    ) -> (u64, u64, [u64; 16], u64, Option<Fault>) {
        let fused = run(code, Tier::Cache, setup);
        assert_eq!(
            fused,
            run(code, Tier::NoCache, setup),
            "block cache vs one per block"
        );
        assert_eq!(fused, run(code, Tier::Jit, setup), "interpreter vs JIT");
        assert_eq!(
            fused,
            run(code, Tier::JitRegions, setup),
            "interpreter vs JIT regions"
        );
        fused
    }

    /// Branches between the blocks of one compiled function: a loop over a
    /// CALL, the RET back to the return site, and a block of the function
    /// that a store rewrites on every pass (the branch to it must see it
    /// invalidated and leave for the interpreter, which decodes it again).
    /// Same registers, flags, count and block boundaries as the interpreter.
    #[test]
    fn compiled_regions_follow_branches_and_see_rewritten_blocks() {
        let code = [
            0xB9, 0x28, 0x00, // 0000 mov cx, 40
            0xE8, 0x0F, 0x00, // 0003 call 0015
            0x2E, 0x88, 0x0E, 0x0E, 0x00, // 0006 mov [cs:000E], cl
            0xEB, 0x00, // 000B jmp 000D
            0xB0, 0x00, // 000D mov al, 0 (its immediate rewritten)
            0x00, 0xC3, // 000F add bl, al
            0x49, // 0011 dec cx
            0x75, 0xEF, // 0012 jnz 0003
            0xF4, // 0014 hlt
            0x40, // 0015 inc ax
            0x50, // 0016 push ax
            0x5A, // 0017 pop dx
            0x01, 0xC6, // 0018 add si, ax
            0xC3, // 001A ret
        ];
        let want = same_both_ways(&code, |_| {});
        let interp = run_cpu(&code, Tier::Cache, |_| {});
        let jit = run_cpu(&code, Tier::JitRegions, |_| {});
        assert_eq!(
            (jit.icount, jit.rip, jit.gpr, jit.flags.get(), jit.captured),
            want,
            "interpreter vs JIT regions"
        );
        assert_eq!(jit.stats.blocks_run, interp.stats.blocks_run, "blocks run");
        // BL: 40 + 39 + ... + 1 = 820, the low byte. AX: 1 after the first
        // call, then the rewritten AL (41 - pass) plus one on each call, so
        // SI = 1 + (41 + 40 + ... + 3) = 859 and DX (the last push) = 3.
        assert_eq!(want.2[3] & 0xFF, 820 & 0xFF, "BL");
        assert_eq!(want.2[6] & 0xFFFF, 859, "SI");
        assert_eq!(want.2[2] & 0xFFFF, 3, "DX");
        let j = jit.jit.as_ref().expect("JIT on");
        assert!(
            j.region_blocks > j.compiled,
            "no function held more than one block: {} functions, {} blocks",
            j.compiled,
            j.region_blocks
        );
    }

    /// Inline ALU ops' lazy flags as the handlers after them read them
    /// (PUSHF), INC/DEC keeping CF, byte and word merges.
    #[test]
    fn flags_reach_the_handlers_after_inline_ops() {
        let code = [
            0xB8, 0xFF, 0x7F, // mov ax, 0x7fff
            0x05, 0x01, 0x00, // add ax, 1: OF, SF
            0x9C, 0x5B, // pushf; pop bx
            0x2D, 0x02, 0x00, // sub ax, 2
            0x9C, 0x59, // pushf; pop cx
            0x40, // inc ax
            0xB2, 0xFF, // mov dl, 0xff
            0x80, 0xC2, 0x01, // add dl, 1: CF, ZF
            0xFE, 0xC6, // inc dh: CF stays
            0x9C, 0x5E, // pushf; pop si
            0x31, 0xFF, // xor di, di
            0x4F, // dec di
            0x9C, 0x5D, // pushf; pop bp
            0xF4, // hlt
        ];
        let (_, _, gpr, _, fault) = same_both_ways(&code, |_| {});
        assert_eq!(fault, None);
        let (bx, si, bp) = (gpr[3], gpr[6], gpr[5]);
        assert_ne!(bx & rflags::OF, 0, "0x7fff + 1 overflows");
        assert_ne!(si & rflags::CF, 0, "INC kept ADD's carry");
        assert_eq!(bp & rflags::CF, 0, "XOR cleared CF, DEC kept it clear");
        // DX starts with the reset signature (DH = 6).
        assert_eq!(gpr[2] & 0xFFFF, 0x0700, "DL wrapped to 0, DH incremented");
    }

    /// Every condition code on flags another block left (the JIT reads them
    /// from the CPU state, not from an op it generated).
    #[test]
    fn conditions_on_flags_from_another_block() {
        let mut code = vec![
            0x31, 0xC9, // xor cx, cx
            0xB8, 0x05, 0x80, // mov ax, 0x8005
            0xBB, 0x07, 0x00, // mov bx, 7
        ];
        for cc in 0..16u8 {
            code.extend_from_slice(&[0x39, 0xD8, 0xEB, 0x00]); // cmp ax, bx; jmp $+2
            code.extend_from_slice(&[0x70 + cc, 0x02]); // jcc +2
            code.extend_from_slice(&[0xEB, 0x02]); // jmp +2 (not taken: skip the OR)
            code.extend_from_slice(&[0x0B, 0xCA]); // or cx, dx (dx = 1 << cc)
            code.extend_from_slice(&[0xD1, 0xE2]); // shl dx, 1
        }
        code.push(0xF4);
        let (_, _, gpr, _, fault) = same_both_ways(&code, |cpu| cpu.gpr[2] = 1);
        assert_eq!(fault, None);
        // 0x8005 - 7 = 0x7ffe: no borrow, signed overflow, not zero, not
        // negative, odd parity. Taken: O(0) AE(3) NE(5) A(7) NS(9) NP(11)
        // L(12) LE(14).
        let want: u64 = [0, 3, 5, 7, 9, 11, 12, 14].iter().map(|c| 1u64 << c).sum();
        assert_eq!(gpr[1], want);
    }

    #[test]
    fn fused_loops_retire_every_instruction() {
        let code = [
            0xB9, 0x05, 0x00, // mov cx, 5
            0x31, 0xC0, // xor ax, ax
            0x40, // l: inc ax
            0x49, // dec cx
            0x75, 0xFC, // jnz l
            0x83, 0xF8, 0x05, // cmp ax, 5
            0x75, 0x04, // jne bad
            0xBB, 0x34, 0x12, // mov bx, 0x1234
            0xF4, // hlt
            0xBB, 0xAD, 0xDE, // bad: mov bx, 0xdead
            0xF4, // hlt
        ];
        let (icount, rip, gpr, _, fault) = same_both_ways(&code, |_| {});
        assert_eq!(fault, None);
        assert_eq!((gpr[0], gpr[3]), (5, 0x1234));
        assert_eq!(icount, 2 + 5 * 3 + 4);
        assert_eq!(rip, 0x12);
    }

    #[test]
    fn fused_branch_past_the_cs_limit_faults_at_the_jcc() {
        // cmp ax, ax; je +0x40 (beyond a 0x20-byte CS limit): #GP at the JE, after the CMP.
        let code = [0x39, 0xC0, 0x74, 0x40, 0xF4];
        let (icount, rip, _, flags, fault) = same_both_ways(&code, |cpu| cpu.seg[CS].limit = 0x20);
        assert_eq!(fault, Some(Fault::gp(0)));
        assert_eq!((icount, rip), (1, 2));
        assert_ne!(flags & rflags::ZF, 0);
    }

    #[test]
    fn single_step_runs_only_the_first_half() {
        let code = [0x39, 0xC0, 0x74, 0x02, 0xF4, 0xF4, 0xF4];
        let (icount, rip, _, _, fault) = same_both_ways(&code, |cpu| cpu.flags.bits |= rflags::TF);
        assert_eq!(fault.map(|f| f.vector), Some(crate::cpu::vector::DB));
        assert_eq!((icount, rip), (1, 2));
    }
}
