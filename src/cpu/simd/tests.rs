//! CPU-level tests of what the user-mode host differential cannot reach:
//! CR0/CR4 availability checks, #XM versus #UD, and faults on the second half
//! of a 16-byte store.

use crate::cpu::state::{cr0, cr4};
use crate::cpu::{vector, Cpu, Fault};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x60_0000;

/// A CPL3 long-mode CPU with `code` at CODE, DATA writable and the page
/// after DATA read-only.
fn cpu_with(code: &[u8]) -> Cpu {
    let mut cpu = Cpu::new_bare(16 << 20);
    cpu.setup_long(
        3,
        0x8000,
        &[
            (CODE, CODE, true, false),
            (DATA, DATA, true, true),
            (DATA + 0x1000, DATA + 0x1000, true, false),
        ],
    );
    cpu.mem.ram_mut()[CODE as usize..CODE as usize + code.len()].copy_from_slice(code);
    cpu.rip = CODE;
    cpu.gpr[3] = DATA; // rbx
    cpu
}

fn run(cpu: &mut Cpu, len: usize) -> Option<Fault> {
    cpu.run_snippet(CODE + len as u64, 100).fault
}

// movaps xmm0, [rbx]
const MOVAPS: &[u8] = &[0x0F, 0x28, 0x03];
// paddb mm0, mm1
const PADDB_MM: &[u8] = &[0x0F, 0xFC, 0xC1];
// divss xmm0, xmm1
const DIVSS: &[u8] = &[0xF3, 0x0F, 0x5E, 0xC1];

#[test]
fn availability_checks_follow_cr0_and_cr4() {
    for (code, cr0_set, cr4_clear, want) in [
        (MOVAPS, cr0::TS, 0, vector::NM),
        (MOVAPS, cr0::EM, 0, vector::UD),
        (MOVAPS, 0, cr4::OSFXSR, vector::UD),
        (PADDB_MM, cr0::EM, 0, vector::UD),
        (PADDB_MM, cr0::TS, 0, vector::NM),
    ] {
        let mut cpu = cpu_with(code);
        cpu.cr0 |= cr0_set;
        cpu.cr4 &= !cr4_clear;
        assert_eq!(run(&mut cpu, code.len()).map(|f| f.vector), Some(want));
        assert_eq!(cpu.rip, CODE, "faulting instruction not retired");
    }
    // MMX does not need CR4.OSFXSR.
    let mut cpu = cpu_with(PADDB_MM);
    cpu.cr4 &= !cr4::OSFXSR;
    cpu.fpu.set_mmx(0, 0x0102);
    cpu.fpu.set_mmx(1, 0x0101);
    assert_eq!(run(&mut cpu, 3), None);
    assert_eq!(cpu.fpu.mmx(0), 0x0203);
    assert_eq!(cpu.fpu.ftw, 0, "tags valid");
}

#[test]
fn unmasked_exception_is_xm_or_ud_and_keeps_the_destination() {
    for (osxmmexcpt, want) in [(true, vector::XM), (false, vector::UD)] {
        let mut cpu = cpu_with(DIVSS);
        if !osxmmexcpt {
            cpu.cr4 &= !cr4::OSXMMEXCPT;
        }
        cpu.fpu.mxcsr = 0x1F80 & !(1 << 9); // ZM clear
        cpu.fpu.xmm[0] = 0x3F80_0000; // 1.0
        cpu.fpu.xmm[1] = 0; // +0
        assert_eq!(run(&mut cpu, DIVSS.len()).map(|f| f.vector), Some(want));
        assert_eq!(cpu.fpu.xmm[0], 0x3F80_0000);
        assert_eq!(cpu.fpu.mxcsr & 0x3F, 0x04, "ZE set");
    }
    // Masked: infinity and ZE.
    let mut cpu = cpu_with(DIVSS);
    cpu.fpu.xmm[0] = 0x3F80_0000;
    assert_eq!(run(&mut cpu, DIVSS.len()), None);
    assert_eq!(cpu.fpu.xmm[0], 0x7F80_0000);
    assert_eq!(cpu.fpu.mxcsr, 0x1F84);
}

#[test]
fn store_faulting_on_its_second_half_writes_nothing() {
    // movups [rbx], xmm0 with rbx 8 bytes before the read-only page.
    let code = [0x0F, 0x11, 0x03];
    let mut cpu = cpu_with(&code);
    cpu.gpr[3] = DATA + 0xFF8;
    cpu.fpu.xmm[0] = u128::MAX;
    let f = run(&mut cpu, code.len());
    assert_eq!(f.map(|f| f.vector), Some(vector::PF));
    assert_eq!(cpu.cr2, DATA + 0x1000);
    let ram = cpu.mem.ram();
    assert!(ram[(DATA + 0xFF8) as usize..(DATA + 0x1000) as usize]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn ldmxcsr_rejects_reserved_bits() {
    // ldmxcsr [rbx]
    let code = [0x0F, 0xAE, 0x13];
    let mut cpu = cpu_with(&code);
    cpu.mem.ram_mut()[DATA as usize..DATA as usize + 4].copy_from_slice(&0x1_0000u32.to_le_bytes());
    assert_eq!(run(&mut cpu, 3), Some(Fault::gp(0)));
    assert_eq!(cpu.fpu.mxcsr, 0x1F80);
    let mut cpu = cpu_with(&code);
    cpu.mem.ram_mut()[DATA as usize..DATA as usize + 4].copy_from_slice(&0xFFFFu32.to_le_bytes());
    assert_eq!(run(&mut cpu, 3), None);
    assert_eq!(cpu.fpu.mxcsr, 0xFFFF);
}
