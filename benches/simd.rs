//! Guest MIPS on an SSE2 loop (a 4 KiB MOVDQA memcpy followed by a
//! PCMPEQB/PMOVMSKB strlen over the copy, as glibc's string routines do it)
//! and on an x87 loop (FILD/FMUL/FADDP: a sum of squares in 80-bit
//! precision, stored with FISTP and checked against the exact integer).
//! Run: `cargo bench --bench simd`; each prints its guest MIPS.

use criterion::{criterion_group, criterion_main, Criterion};
use iced_x86::code_asm::*;
use vx86::cpu::{Cpu, NullBus};

const CODE: u64 = 0x40_0000;
const SRC: u64 = 0x50_0000;
const DST: u64 = 0x60_0000;

fn program() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    let mut outer = a.create_label();
    let mut copy = a.create_label();
    let mut scan = a.create_label();
    let r = (|| -> Result<(), IcedError> {
        a.set_label(&mut outer)?;
        a.mov(rsi, SRC)?;
        a.mov(rdi, DST)?;
        a.mov(ecx, 4096 / 32)?;
        a.set_label(&mut copy)?;
        a.movdqa(xmm0, xmmword_ptr(rsi))?;
        a.movdqa(xmm1, xmmword_ptr(rsi + 16))?;
        a.movdqa(xmmword_ptr(rdi), xmm0)?;
        a.movdqa(xmmword_ptr(rdi + 16), xmm1)?;
        a.add(rsi, 32)?;
        a.add(rdi, 32)?;
        a.dec(ecx)?;
        a.jnz(copy)?;
        a.mov(rax, DST)?;
        a.pxor(xmm2, xmm2)?;
        a.set_label(&mut scan)?;
        a.movdqa(xmm3, xmmword_ptr(rax))?;
        a.pcmpeqb(xmm3, xmm2)?;
        a.pmovmskb(edx, xmm3)?;
        a.add(rax, 16)?;
        a.test(edx, edx)?;
        a.jz(scan)?;
        a.jmp(outer)?;
        Ok(())
    })();
    r.expect("assemble");
    a.assemble(CODE).expect("encode")
}

/// Sum of the squares of the 1024 dwords at SRC (1..=1024), in ST(0), stored
/// to DST as a qword; forever.
fn x87_program() -> Vec<u8> {
    let mut a = CodeAssembler::new(64).expect("assembler");
    let mut outer = a.create_label();
    let mut sum = a.create_label();
    let r = (|| -> Result<(), IcedError> {
        a.set_label(&mut outer)?;
        a.fninit()?;
        a.mov(rsi, SRC)?;
        a.mov(rdi, DST)?;
        a.mov(ecx, 1024)?;
        a.fldz()?;
        a.set_label(&mut sum)?;
        a.fild(dword_ptr(rsi))?;
        a.fmul_2(st0, st0)?;
        a.faddp(st1, st0)?;
        a.add(rsi, 4)?;
        a.dec(ecx)?;
        a.jnz(sum)?;
        a.fistp(qword_ptr(rdi))?;
        a.jmp(outer)?;
        Ok(())
    })();
    r.expect("assemble");
    a.assemble(CODE).expect("encode")
}

fn x87_machine() -> Cpu {
    let mut cpu = machine();
    let code = x87_program();
    let ram = cpu.mem.ram_mut();
    ram[CODE as usize..CODE as usize + code.len()].copy_from_slice(&code);
    for i in 0..1024u32 {
        let at = SRC as usize + 4 * i as usize;
        ram[at..at + 4].copy_from_slice(&(i + 1).to_le_bytes());
    }
    cpu
}

fn machine() -> Cpu {
    let mut cpu = Cpu::new_bare(16 << 20);
    cpu.setup_long(
        0,
        0x10_0000,
        &[
            (CODE, CODE, false, false),
            (SRC, SRC, false, true),
            (DST, DST, false, true),
        ],
    );
    let code = program();
    let ram = cpu.mem.ram_mut();
    ram[CODE as usize..CODE as usize + code.len()].copy_from_slice(&code);
    for (i, b) in ram[SRC as usize..SRC as usize + 4096]
        .iter_mut()
        .enumerate()
    {
        *b = (i % 255) as u8 + 1;
    }
    ram[SRC as usize + 4095] = 0;
    cpu.rip = CODE;
    cpu
}

fn run(cpu: &mut Cpu, insns: u64) -> u64 {
    let start = cpu.icount;
    cpu.run(&mut NullBus, start + insns);
    cpu.icount - start
}

/// Benchmarks `make()`'s loop with criterion as `group/name`, then runs a
/// fresh one for 50 M instructions and returns it with its guest MIPS.
fn measure(c: &mut Criterion, group: &str, name: &str, make: fn() -> Cpu) -> (Cpu, f64) {
    let mut cpu = make();
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.bench_function(name, |b| b.iter(|| run(&mut cpu, 5_000_000)));
    g.finish();
    let mut cpu = make();
    let t = std::time::Instant::now();
    let n = run(&mut cpu, 50_000_000);
    (cpu, n as f64 / t.elapsed().as_secs_f64() / 1e6)
}

fn bench(c: &mut Criterion) {
    let (cpu, mips) = measure(c, "sse2_loop", "memcpy_strlen", machine);
    assert_eq!(
        &cpu.mem.ram()[DST as usize..DST as usize + 4096],
        &cpu.mem.ram()[SRC as usize..SRC as usize + 4096],
        "the guest memcpy copied the buffer"
    );
    println!("SSE2 memcpy+strlen loop: {mips:.1} guest MIPS");

    let (cpu, mips) = measure(c, "x87_loop", "sum_of_squares", x87_machine);
    let out = &cpu.mem.ram()[DST as usize..DST as usize + 8];
    let got = u64::from_le_bytes(out.try_into().expect("8 bytes"));
    assert_eq!(got, 1024 * 1025 * 2049 / 6, "the guest's sum of squares");
    println!("x87 FILD/FMUL/FADDP loop: {mips:.1} guest MIPS");
}

criterion_group!(benches, bench);
criterion_main!(benches);
