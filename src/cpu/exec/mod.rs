//! Instruction semantics, grouped by family (one file each), and the table
//! that picks a handler for each decoded instruction form.

pub mod alu;
pub mod bcd;
pub mod bit;
pub mod control;
pub mod data;
pub mod io;
pub mod muldiv;
pub mod shift;
pub mod stack;
pub mod string;
pub mod system;
pub mod task;

use super::decode::{Handler, Op, K_IMM, K_MEM, K_SEG};
use super::flags::size_mask;
use super::{Bus, Cpu, Res};
use iced_x86::{Code, Instruction, Mnemonic as M, OpKind};

/// Reads operand descriptor `k` at `size` bytes.
#[inline(always)]
pub fn rd(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, k: u8, size: u8) -> Res<u64> {
    if k < 20 {
        Ok(cpu.reg(k, size))
    } else if k == K_MEM {
        let ea = op.ea(cpu);
        cpu.read(bus, op.seg as usize, ea, size)
    } else if k == K_IMM {
        Ok(op.imm & size_mask(size))
    } else if (K_SEG..K_SEG + 6).contains(&k) {
        Ok(cpu.seg[(k - K_SEG) as usize].selector as u64)
    } else {
        Ok(0)
    }
}

/// Writes operand descriptor `k` at `size` bytes.
#[inline(always)]
pub fn wr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, k: u8, size: u8, v: u64) -> Res {
    if k < 20 {
        cpu.set_reg(k, size, v);
        Ok(())
    } else if k == K_MEM {
        let ea = op.ea(cpu);
        cpu.write(bus, op.seg as usize, ea, size, v)
    } else {
        Ok(())
    }
}

/// Size in bytes of operand `i` of an instruction (register or memory).
pub fn operand_size(ins: &Instruction, i: u32) -> u8 {
    match ins.op_kind(i) {
        OpKind::Register => ins.op_register(i).size() as u8,
        OpKind::Memory => ins.memory_size().size() as u8,
        _ => 0,
    }
}

/// Picks the handler for a decoded instruction; may adjust `op` fields the
/// handler relies on. Forms vx86 does not implement get
/// [`system::op_unimplemented`] (#UD, logged once).
pub fn handler_for(ins: &Instruction, op: &mut Op) -> Handler {
    implemented_handler(ins, op).unwrap_or(system::op_unimplemented)
}

/// The handler of an instruction form vx86 implements, `None` for one it does
/// not (yet); [`super::decode::is_implemented`] asks this for the conformance
/// harnesses, which report "not implemented" apart from "wrong result".
pub fn implemented_handler(ins: &Instruction, op: &mut Op) -> Option<Handler> {
    use alu::*;
    let reg_reg = op.o[0] < 20 && op.o[1] < 20;
    Some(match ins.mnemonic() {
        M::Add => pick_alu::<ADD>(op, reg_reg),
        M::Or => pick_alu::<OR>(op, reg_reg),
        M::Adc => pick_alu::<ADC>(op, reg_reg),
        M::Sbb => pick_alu::<SBB>(op, reg_reg),
        M::And => pick_alu::<AND>(op, reg_reg),
        M::Sub => pick_alu::<SUB>(op, reg_reg),
        M::Xor => pick_alu::<XOR>(op, reg_reg),
        M::Cmp => pick_alu::<CMP>(op, reg_reg),
        M::Test => pick_alu::<TEST>(op, reg_reg),
        M::Inc => pick_incdec::<false>(op),
        M::Dec => pick_incdec::<true>(op),
        M::Neg => neg,
        M::Not => not,

        M::Mov => data::pick_mov(ins, op),
        M::Movzx | M::Movsx | M::Movsxd => {
            op.aux = operand_size(ins, 1);
            data::pick_movx(ins.mnemonic() != M::Movzx, op)
        }
        M::Lea => data::lea,
        M::Xchg => data::xchg,
        M::Bswap => data::bswap,
        M::Cbw | M::Cwde | M::Cdqe => data::cbw,
        M::Cwd | M::Cdq | M::Cqo => data::cwd,
        M::Lahf => data::lahf,
        M::Sahf => data::sahf,
        M::Xlatb => data::xlat,
        M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg => data::cmov,
        M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg => data::setcc,
        M::Xadd => data::xadd,
        M::Cmpxchg => data::cmpxchg,
        M::Cmpxchg8b => data::cmpxchg8b,
        M::Cmpxchg16b => data::cmpxchg16b,
        M::Nop
        | M::Pause
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw
        | M::Lfence
        | M::Sfence
        | M::Mfence
        | M::Clflush
        | M::Clflushopt
        // The hint-NOP space (0F 18-0F 1F, SDM Vol. 2B NOP): instructions of
        // extensions vx86 does not advertise (CET, MPX, CLDEMOTE) execute as
        // NOPs there, as on CPUs without them; glibc and busybox start every
        // function with ENDBR64.
        | M::Endbr32
        | M::Endbr64
        | M::Rdsspd
        | M::Rdsspq
        | M::Cldemote
        | M::Reservednop
        | M::Bndcl
        | M::Bndcu
        | M::Bndcn
        | M::Bndmk
        | M::Bndmov
        | M::Bndldx
        | M::Bndstx => data::nop,
        M::Les | M::Lds | M::Lss | M::Lfs | M::Lgs => data::lxs,

        M::Rol => shift::pick::<{ shift::ROL }>(op),
        M::Ror => shift::pick::<{ shift::ROR }>(op),
        M::Rcl => shift::shift::<{ shift::RCL }>,
        M::Rcr => shift::shift::<{ shift::RCR }>,
        M::Shl | M::Sal => shift::pick::<{ shift::SHL }>(op),
        M::Shr => shift::pick::<{ shift::SHR }>(op),
        M::Sar => shift::pick::<{ shift::SAR }>(op),
        M::Shld => shift::shld,
        M::Shrd => shift::shrd,

        M::Mul => muldiv::mul,
        M::Imul => match ins.op_count() {
            1 => muldiv::imul1,
            _ if op.o[0] < 20 && op.o[1] < 20 => muldiv::imul_r,
            _ => muldiv::imul_n,
        },
        M::Div => muldiv::div,
        M::Idiv => muldiv::idiv,

        M::Bt => bit::bt::<0>,
        M::Bts => bit::bt::<1>,
        M::Btr => bit::bt::<2>,
        M::Btc => bit::bt::<3>,
        // Without ABM/BMI1 in CPUID, F3-prefixed BSF/BSR execute as BSF/BSR.
        M::Bsf | M::Tzcnt => bit::bsf,
        M::Bsr | M::Lzcnt => bit::bsr,
        M::Popcnt => bit::popcnt,

        M::Daa => bcd::daa,
        M::Das => bcd::das,
        M::Aaa => bcd::aaa,
        M::Aas => bcd::aas,
        M::Aam => bcd::aam,
        M::Aad => bcd::aad,

        M::Movsb | M::Movsw | M::Movsq => string::movs,
        M::Movsd if ins.code() == Code::Movsd_m32_m32 => string::movs,
        M::Cmpsb | M::Cmpsw | M::Cmpsq => string::cmps,
        M::Cmpsd if ins.code() == Code::Cmpsd_m32_m32 => string::cmps,
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => string::stos,
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => string::lods,
        M::Scasb | M::Scasw | M::Scasd | M::Scasq => string::scas,
        M::Insb | M::Insw | M::Insd => string::ins,
        M::Outsb | M::Outsw | M::Outsd => string::outs,

        M::Push => stack::pick_push(ins, op),
        M::Pop => stack::pick_pop(ins, op),
        M::Pusha | M::Pushad => stack::pusha,
        M::Popa | M::Popad => stack::popa,
        M::Pushf | M::Pushfd | M::Pushfq => stack::pushf,
        M::Popf | M::Popfd | M::Popfq => stack::popf,
        M::Enter => stack::enter,
        M::Leave => stack::leave,

        M::Jmp => control::pick_jmp(ins, op),
        M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg => control::pick_jcc(op),
        M::Call => control::pick_call(ins, op),
        M::Ret => control::pick_ret(op),
        M::Retf => control::ret_far,
        M::Loop | M::Loope | M::Loopne => control::loop_,
        M::Jcxz | M::Jecxz | M::Jrcxz => control::jcxz,
        M::Int => control::int_n,
        M::Int3 => control::int3,
        M::Into => control::into,
        M::Int1 => control::int1,
        M::Iret | M::Iretd | M::Iretq => control::iret,
        M::Bound => control::bound,

        M::In => io::in_,
        M::Out => io::out,

        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std => system::flag_op,
        M::Cli => system::cli,
        M::Sti => system::sti,
        M::Hlt => system::hlt,
        M::Cpuid => system::cpuid,
        M::Rdtsc => system::rdtsc,
        M::Rdtscp => system::rdtscp,
        M::Rdmsr => system::rdmsr,
        M::Wrmsr => system::wrmsr,
        M::Lgdt | M::Lidt => system::lgdt_lidt,
        M::Sgdt | M::Sidt => system::sgdt_sidt,
        M::Lldt => system::lldt,
        M::Sldt => system::sldt,
        M::Ltr => system::ltr,
        M::Str => system::str_,
        M::Lar => system::lar,
        M::Lsl => system::lsl,
        M::Verr => system::verr,
        M::Verw => system::verw,
        M::Arpl => system::arpl,
        M::Lmsw => system::lmsw,
        M::Smsw => system::smsw,
        M::Clts => system::clts,
        M::Invlpg => system::invlpg,
        M::Invd | M::Wbinvd => system::wbinvd,
        M::Swapgs => system::swapgs,
        M::Syscall => system::syscall,
        M::Sysret | M::Sysretq => system::sysret,
        M::Sysenter => system::sysenter,
        M::Sysexit | M::Sysexitq => system::sysexit,
        M::Ud2 | M::Ud0 | M::Ud1 => system::op_ud,
        M::Salc => data::salc,
        M::Rdpmc => system::op_gp0,
        _ => {
            if let Some(h) = crate::cpu::fpu::handler_for(ins, op) {
                return Some(h);
            }
            if let Some(h) = crate::cpu::simd::handler_for(ins, op) {
                return Some(h);
            }
            return None;
        }
    })
}
