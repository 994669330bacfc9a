//! Hostile instruction streams: random bytes executed in every mode must never
//! panic, must stop at the instruction budget, and must not touch memory
//! outside guest RAM.

use vx86::cpu::{Cpu, NullBus};

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn random_bytes_in_every_mode() {
    let mut seed = 0x1234_5678_9ABC_DEF1u64;
    for round in 0..60 {
        let mut cpu = Cpu::new_bare(8 << 20);
        match round % 3 {
            0 => cpu.setup_real(0x1000, 0),
            1 => {
                cpu.setup_long(0, 0x100000, &[(0x10000, 0x10000, false, true)]);
                cpu.seg[1].attr &= !vx86::cpu::state::attr::L;
                cpu.seg[1].attr |= vx86::cpu::state::attr::DB;
                cpu.update_mode();
                cpu.rip = 0x10000;
            }
            _ => {
                let maps: Vec<_> = (0..16u64)
                    .map(|i| (0x10000 + i * 4096, 0x10000 + i * 4096, true, true))
                    .collect();
                cpu.setup_long(3, 0x100000, &maps);
                cpu.rip = 0x10000;
            }
        }
        for b in cpu.mem.ram_mut()[0x10000..0x20000].iter_mut() {
            *b = xorshift(&mut seed) as u8;
        }
        for r in cpu.gpr.iter_mut() {
            *r = xorshift(&mut seed);
        }
        let mut bus = NullBus;
        let before = cpu.icount;
        let exit = cpu.run(&mut bus, before + 20_000);
        assert!(
            cpu.icount <= before + 20_000 + 64 || exit != vx86::cpu::Exit::Budget,
            "round {round}: budget overrun"
        );
    }
}
