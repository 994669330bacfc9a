//! Runs the self-checking test ROMs in `test-roms/` and checks that the
//! committed images match their NASM sources.

use std::sync::{Arc, Mutex};
use vx86::devices::debug_port::DebugExit;
use vx86::machine::{Machine, MachineConfig, RunExit};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run_rom(name: &str, max_insns: u64, no_block_cache: bool) -> (RunExit, String) {
    let path = format!("{}/test-roms/{name}", env!("CARGO_MANIFEST_DIR"));
    let img = std::fs::read(&path).expect("test ROM present");
    let cfg = MachineConfig {
        ram: 32 << 20,
        max_insns: Some(max_insns),
        debug_exit: Some(DebugExit::new(0xF4, 4)),
        no_reboot: true,
        no_block_cache,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).expect("machine");
    m.cpu.mem.load_bios(&path, &img).expect("load ROM");
    let cap = Capture::default();
    m.sinks.debugcon = Some(Box::new(cap.clone()));
    let exit = m.run();
    let out = String::from_utf8_lossy(&cap.0.lock().expect("lock")).into_owned();
    (exit, out)
}

#[test]
fn modes_rom_passes_every_check() {
    for no_cache in [false, true] {
        let (exit, out) = run_rom("modes.bin", 50_000_000, no_cache);
        assert_eq!(
            exit,
            RunExit::DebugExit(1),
            "no_block_cache={no_cache}: output so far:\n{out}"
        );
        for line in [
            "PASS #DE via IVT",
            "PASS INT n, #GP error code",
            "PASS paging #PF CR2",
            "PASS ring 3, call gate",
            "PASS task switch",
            "PASS #GP non-canonical, #PF CR2",
            "PASS self-modifying code",
            "PASS SYSCALL/SYSRET, IRETQ to ring 3, INT from ring 3",
            "ALL PASS",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
    }
}

#[test]
fn x87_rom_passes_every_check() {
    for no_cache in [false, true] {
        let (exit, out) = run_rom("x87.bin", 10_000_000, no_cache);
        assert_eq!(
            exit,
            RunExit::DebugExit(1),
            "no_block_cache={no_cache}: output so far:\n{out}"
        );
        for line in [
            "PASS x87 arithmetic, constants, FPREM, BCD, FCOMI, FSIN",
            "PASS #MF at FWAIT",
            "PASS #NM with CR0.TS",
            "PASS FXSAVE/FXRSTOR task switch",
            "PASS lazy FPU switch on #NM",
            "PASS #GP on misaligned FXSAVE",
            "ALL PASS",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
    }
}

#[test]
fn loop_rom_computes_the_known_prime_count_and_crc() {
    let (exit, out) = run_rom("loop.bin", 2_000_000_000, false);
    assert_eq!(exit, RunExit::DebugExit(1), "output: {out}");
    // 6542 primes below 65536 (0x198E); CRC-32 of the first 4 KiB of the sieve.
    assert_eq!(out.trim(), "p0000198E 1574C9FE");
}

#[test]
fn committed_roms_match_their_sources() {
    let dir = format!("{}/test-roms", env!("CARGO_MANIFEST_DIR"));
    if std::process::Command::new("nasm")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: nasm is not installed; cannot rebuild test ROMs");
        return;
    }
    for name in ["modes", "loop", "x87"] {
        let out = std::env::temp_dir().join(format!("vx86-{name}-{}.bin", std::process::id()));
        let st = std::process::Command::new("nasm")
            .args(["-f", "bin", "-o"])
            .arg(&out)
            .arg(format!("{dir}/{name}.asm"))
            .output()
            .expect("run nasm");
        assert!(
            st.status.success(),
            "nasm failed on {name}.asm: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let fresh = std::fs::read(&out).expect("built");
        let committed = std::fs::read(format!("{dir}/{name}.bin")).expect("committed");
        let _ = std::fs::remove_file(&out);
        assert!(
            fresh == committed,
            "test-roms/{name}.bin is stale: rebuild with nasm -f bin -o {name}.bin {name}.asm"
        );
    }
}
