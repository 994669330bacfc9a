//! Guest MIPS on a CPU-bound ROM (sieve + CRC-32 in 32-bit protected mode),
//! with the block cache on and off. Run: `cargo bench --bench cpu`.

use criterion::{criterion_group, criterion_main, Criterion};
use vx86::devices::debug_port::DebugExit;
use vx86::machine::{Machine, MachineConfig};

fn run(no_block_cache: bool, insns: u64) -> u64 {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test-roms/loop.bin");
    let img = std::fs::read(path).expect("test-roms/loop.bin");
    let cfg = MachineConfig {
        ram: 32 << 20,
        max_insns: Some(insns),
        debug_exit: Some(DebugExit::new(0xF4, 4)),
        no_block_cache,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).expect("machine");
    m.mem.load_bios(path, &img).expect("rom");
    m.run();
    m.cpu.icount
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop_rom");
    g.sample_size(10);
    for (name, nbc) in [("block_cache", false), ("no_block_cache", true)] {
        g.bench_function(name, |b| b.iter(|| run(nbc, 20_000_000)));
    }
    g.finish();
    // Print MIPS and the ratio directly as well.
    let t = std::time::Instant::now();
    let n1 = run(false, 100_000_000);
    let fast = n1 as f64 / t.elapsed().as_secs_f64() / 1e6;
    let t = std::time::Instant::now();
    let n2 = run(true, 20_000_000);
    let slow = n2 as f64 / t.elapsed().as_secs_f64() / 1e6;
    println!(
        "loop ROM: block cache {fast:.1} MIPS, no block cache {slow:.1} MIPS, ratio {:.2}x",
        fast / slow
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
