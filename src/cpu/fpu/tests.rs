//! Unit tests of the FPU's system side: #NM/#MF/FERR#, FXSAVE/FXRSTOR
//! faults and CR4.OSFXSR, environment layouts, and robustness on random
//! encodings and operands.

use super::*;
use crate::conformance::gen::Rng;
use crate::cpu::state::{cr0, cr4};
use crate::cpu::testbed::SnippetOutcome;
use iced_x86::code_asm::*;

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x60_0000;

fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    f(&mut a).expect("assemble");
    a.assemble(CODE).expect("encode")
}

/// CPL0 long mode with code at CODE and one writable data page at DATA
/// (the page after it is not mapped).
fn cpu_with(code: &[u8]) -> Cpu {
    let mut cpu = Cpu::new_bare(16 << 20);
    cpu.setup_long(
        0,
        0x8000,
        &[(CODE, CODE, false, false), (DATA, DATA, false, true)],
    );
    cpu.mem.ram_mut()[CODE as usize..CODE as usize + code.len()].copy_from_slice(code);
    cpu.rip = CODE;
    cpu.gpr[4] = DATA + 0x800;
    cpu
}

fn run(cpu: &mut Cpu, code: &[u8]) -> SnippetOutcome {
    cpu.run_snippet(CODE + code.len() as u64, 1000)
}

#[test]
fn em_and_ts_raise_nm_and_wait_follows_mp() {
    let code = asm(|a| a.fld1());
    let mut cpu = cpu_with(&code);
    cpu.cr0 |= cr0::EM;
    assert_eq!(run(&mut cpu, &code).fault, Some(Fault::new(vector::NM)));
    let mut cpu = cpu_with(&code);
    cpu.cr0 |= cr0::TS;
    assert_eq!(run(&mut cpu, &code).fault, Some(Fault::new(vector::NM)));

    let wait = asm(|a| a.wait());
    // WAIT: #NM only with both TS and MP; EM does not matter.
    let mut cpu = cpu_with(&wait);
    cpu.cr0 = (cpu.cr0 | cr0::TS | cr0::EM) & !cr0::MP;
    assert_eq!(run(&mut cpu, &wait).fault, None);
    let mut cpu = cpu_with(&wait);
    cpu.cr0 |= cr0::TS | cr0::MP;
    assert_eq!(run(&mut cpu, &wait).fault, Some(Fault::new(vector::NM)));
}

#[test]
fn pending_unmasked_exception_raises_mf_or_ferr() {
    // 1/0 with ZE unmasked: no fault at FDIV, #MF at the next waiting insn.
    let code = asm(|a| {
        a.fninit()?;
        a.mov(rax, DATA)?;
        a.mov(word_ptr(rax), 0x37Bu32)?;
        a.fldcw(word_ptr(rax))?;
        a.fld1()?;
        a.fldz()?;
        a.fdivp(st1, st0)?;
        a.fnstsw(ax)?;
        a.fld1()
    });
    let mut cpu = cpu_with(&code);
    let out = run(&mut cpu, &code);
    assert_eq!(out.fault, Some(Fault::new(vector::MF)));
    assert_eq!(cpu.gpr[0] & 0x80FF, 0x8084, "ES, B and ZE in AX");
    assert_eq!(cpu.rip, CODE + code.len() as u64 - 2, "#MF at the FLD1");
    assert!(!cpu.ferr);

    // CR0.NE = 0: FERR# instead, and the instruction executes.
    let mut cpu = cpu_with(&code);
    cpu.cr0 &= !cr0::NE;
    let out = run(&mut cpu, &code);
    assert_eq!(out.fault, None);
    assert!(cpu.ferr);
    assert_eq!(cpu.fpu.st(0), F80::ONE);
    // FNCLEX clears ES and drops FERR#.
    let clex = asm(|a| a.fnclex());
    cpu.mem.ram_mut()[CODE as usize..CODE as usize + 2].copy_from_slice(&clex);
    cpu.rip = CODE;
    cpu.run_snippet(CODE + 2, 10);
    assert!(!cpu.ferr);
    assert_eq!(cpu.fpu.fsw & (fsw::ES | fsw::B | 0x3F), 0);
}

#[test]
fn fxsave_checks_alignment_and_faults_before_writing() {
    let code = asm(|a| a.fxsave(ptr(rbx)));
    let mut cpu = cpu_with(&code);
    cpu.gpr[3] = DATA + 8;
    assert_eq!(run(&mut cpu, &code).fault, Some(Fault::gp(0)));

    // The image would cross into the unmapped page: #PF, nothing written.
    let mut cpu = cpu_with(&code);
    cpu.gpr[3] = DATA + 0x1000 - 0x100;
    cpu.mem.ram_mut()[(DATA + 0xF00) as usize..(DATA + 0x1000) as usize].fill(0xAA);
    let out = run(&mut cpu, &code);
    assert_eq!(out.fault.map(|f| f.vector), Some(vector::PF));
    assert!(
        cpu.mem.ram()[(DATA + 0xF00) as usize..(DATA + 0x1000) as usize]
            .iter()
            .all(|&b| b == 0xAA)
    );
}

#[test]
fn fxsave_without_osfxsr_skips_xmm_and_fxrstor_checks_mxcsr() {
    let code = asm(|a| a.fxsave(ptr(rbx)));
    let mut cpu = cpu_with(&code);
    cpu.cr4 &= !cr4::OSFXSR;
    cpu.gpr[3] = DATA;
    cpu.fpu.xmm[0] = u128::MAX;
    cpu.mem.ram_mut()[DATA as usize..DATA as usize + 512].fill(0xAA);
    assert_eq!(run(&mut cpu, &code).fault, None);
    let ram = cpu.mem.ram();
    assert_eq!(
        &ram[DATA as usize..DATA as usize + 2],
        &[0x40, 0x00],
        "FCW saved"
    );
    assert!(ram[(DATA + 24) as usize..(DATA + 32) as usize]
        .iter()
        .all(|&b| b == 0xAA));
    assert!(ram[(DATA + 160) as usize..(DATA + 176) as usize]
        .iter()
        .all(|&b| b == 0xAA));

    let code = asm(|a| a.fxrstor(ptr(rbx)));
    let mut cpu = cpu_with(&code);
    cpu.gpr[3] = DATA;
    cpu.mem.ram_mut()[DATA as usize..DATA as usize + 512].fill(0);
    cpu.mem.ram_mut()[(DATA + 26) as usize] = 1; // MXCSR bit 16: reserved
    assert_eq!(run(&mut cpu, &code).fault, Some(Fault::gp(0)));
    assert_eq!(cpu.fpu.fcw, 0x40, "nothing loaded");
}

#[test]
fn fnstenv_real_mode_16_bit_layout() {
    // fninit; fld1; fnstenv [0x100]  (16-bit code: 14-byte image)
    let code = [0xDB, 0xE3, 0xD9, 0xE8, 0xD9, 0x36, 0x00, 0x01];
    let mut cpu = Cpu::new_bare(2 << 20);
    cpu.setup_real(0x0700, 0x100);
    cpu.cr0 |= cr0::NE;
    cpu.mem.ram_mut()[0x7100..0x7100 + code.len()].copy_from_slice(&code);
    let out = cpu.run_snippet(0x100 + code.len() as u64, 100);
    assert_eq!(out.fault, None);
    let b = &cpu.mem.ram()[0x100..0x10E];
    let w = |i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    assert_eq!(w(0), 0x037F);
    assert_eq!(w(1), 0x3800, "TOP = 7");
    assert_eq!(w(2), 0x3FFF, "R7 valid, others empty");
    assert_eq!(w(3), 0x102, "FIP: the FLD1 offset");
    assert_eq!(cpu.fpu.fcw, 0x037F, "masks already set");
}

/// Random x87 encodings (every ESC opcode and ModRM, with prefixes) over
/// random register contents and control words: nothing panics, every
/// outcome is an architectural one.
#[test]
fn random_x87_encodings_never_panic() {
    let mut rng = Rng::new(5);
    let mut cpu = cpu_with(&[0x90]);
    for _ in 0..50_000 {
        let mut code = Vec::new();
        if rng.one_in(4) {
            code.push([0x66, 0x67, 0x48, 0xF3, 0x9B][rng.below(5) as usize]);
        }
        code.push(0xD8 + rng.below(8) as u8);
        let modrm = rng.next_u64() as u8;
        code.push(modrm);
        // Memory forms: [rbx + disp32] inside the data page.
        if modrm < 0xC0 {
            code.pop();
            code.push((modrm & 0x38) | 0x83);
            code.extend_from_slice(&(rng.below(0x800) as u32).to_le_bytes());
        }
        cpu.mem.ram_mut()[CODE as usize..CODE as usize + code.len()].copy_from_slice(&code);
        for r in cpu.fpu.st.iter_mut() {
            *r = crate::conformance::gen::x87::special_f80(&mut rng);
        }
        cpu.fpu.ftw = rng.next_u64() as u16;
        cpu.fpu.fcw = rng.next_u64() as u16 & 0x1F7F;
        cpu.fpu.fsw = rng.next_u64() as u16 & !(fsw::ES | fsw::B);
        cpu.fpu.update_es();
        for b in cpu.mem.ram_mut()[DATA as usize..DATA as usize + 0x1000].iter_mut() {
            *b = rng.next_u64() as u8;
        }
        cpu.gpr[3] = DATA;
        cpu.rip = CODE;
        cpu.tlb.flush_all();
        let out = cpu.run_snippet(CODE + code.len() as u64, 4);
        if let Some(f) = out.fault {
            assert!(
                matches!(f.vector, 6 | 13 | 14 | 16),
                "{code:02x?} raised vector {}",
                f.vector
            );
        }
    }
}
