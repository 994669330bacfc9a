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
    let (exit, out, _) = run_rom_with(name, max_insns, no_block_cache, |_| {});
    (exit, out)
}

fn run_rom_with(
    name: &str,
    max_insns: u64,
    no_block_cache: bool,
    prepare: impl FnOnce(&mut Machine),
) -> (RunExit, String, Machine) {
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
    m.mem.load_bios(&path, &img).expect("load ROM");
    let cap = Capture::default();
    m.sinks.debugcon = Some(Box::new(cap.clone()));
    prepare(&mut m);
    let exit = m.run();
    let out = String::from_utf8_lossy(&cap.0.lock().expect("lock")).into_owned();
    (exit, out, m)
}

/// Runs test-roms/platform.bin with a 1 MiB disk; `mode13` picks the VGA part.
fn run_platform(mode13: bool, no_block_cache: bool) -> (RunExit, String, Machine, Vec<u8>) {
    let disk = std::env::temp_dir().join(format!(
        "vx86-platform-{}-{mode13}-{no_block_cache}.img",
        std::process::id()
    ));
    std::fs::write(&disk, vec![0u8; 2048 * 512]).expect("disk image");
    let spec =
        vx86::block::drive_spec::DriveSpec::parse(&format!("file={},format=raw", disk.display()))
            .expect("drive spec");
    let (exit, out, mut m) = run_rom_with("platform.bin", 400_000_000, no_block_cache, |m| {
        let dev = vx86::block::open_drive(&spec).expect("open disk");
        m.ata(0).unwrap().attach(0, dev).expect("attach");
        m.mem.ram_mut()[0x500] = mode13 as u8;
    });
    m.flush_disks().expect("flush");
    let bytes = std::fs::read(&disk).expect("read disk back");
    let _ = std::fs::remove_file(&disk);
    (exit, out, m, bytes)
}

#[test]
fn platform_rom_programs_every_device() {
    for no_cache in [false, true] {
        let (exit, out, mut m, disk) = run_platform(false, no_cache);
        assert_eq!(
            exit,
            RunExit::DebugExit(1),
            "no_block_cache={no_cache} rip={:#x} cx={:#x} ax={:#x} icount={}:\n{out}",
            m.cpu.rip,
            m.cpu.gpr[1],
            m.cpu.gpr[0],
            m.cpu.icount
        );
        for line in [
            "PASS PIT mode 2 -> PIC IRQ0 x20, read-back, ISR",
            "PASS PIT channel 2 gate via port 61h",
            "PASS UART loopback echo, MSR loopback",
            "PASS UART THRE interrupt on IRQ4",
            "PASS ATA IDENTIFY, WRITE/READ SECTORS, READ SECTORS EXT",
            "PASS VGA mode 03h set",
            "ALL PASS",
        ] {
            assert!(out.contains(line), "missing {line:?} in:\n{out}");
        }
        // The sector the ROM wrote reached the image file, nothing else did.
        let lba7 = &disk[7 * 512..8 * 512];
        for (i, &b) in lba7.iter().enumerate() {
            assert_eq!(
                b,
                (i as u8).wrapping_mul(3).wrapping_add(1),
                "byte {i} of LBA 7"
            );
        }
        assert!(disk[..7 * 512]
            .iter()
            .chain(&disk[8 * 512..])
            .all(|&b| b == 0));
        // Text mode 03h: 80x25 cells of 9x16 dots, the title white on blue.
        let rows = m.vga().unwrap().text_rows().expect("text mode");
        assert_eq!(rows.len(), 25);
        assert!(rows[0].starts_with("vx86 platform test ROM: text mode 03h"));
        let mut frame = vx86::devices::vga::Frame::default();
        m.vga().unwrap().invalidate();
        m.vga().unwrap().render(&mut frame, 0);
        assert_eq!((frame.width, frame.height), (720, 400));
        let px = |x: u32, y: u32| frame.pixels[(y * frame.width + x) as usize];
        // Cell (0,0) is 'v': its top row is background (blue), some dot in it is white.
        assert_eq!(px(0, 0), 0x0000AA);
        assert!((0..9).any(|x| (0..16).any(|y| px(x, y) == 0xFFFFFF)));
        // Row 1 is blank: black.
        assert!((0..720).all(|x| px(x, 20) == 0));
    }
}

#[test]
fn platform_rom_draws_mode_13h() {
    let (exit, out, mut m, _) = run_platform(true, false);
    assert_eq!(exit, RunExit::DebugExit(1), "{out}");
    assert!(out.contains("PASS VGA mode 13h set"), "{out}");
    assert!(m.vga().unwrap().text_rows().is_none());
    let mut frame = vx86::devices::vga::Frame::default();
    m.vga().unwrap().invalidate();
    m.vga().unwrap().render(&mut frame, 0);
    // 320x200, shown as 640x400 (pixels doubled) or 320x200.
    let (w, h) = (frame.width, frame.height);
    assert!((w, h) == (320, 200) || (w, h) == (640, 400), "{w}x{h}");
    let sx = w / 320;
    let px = |x: u32, y: u32| frame.pixels[((y * sx) * w + x * sx) as usize];
    assert_eq!(px(0, 0), 0xFF0000, "top half red");
    assert_eq!(px(319, 99), 0xFF0000);
    assert_eq!(px(0, 100), 0x00FF00, "bottom half green");
    assert_eq!(px(319, 199), 0x00FF00);
    assert_eq!(px(152, 92), 0x0000FF, "blue square");
    assert_eq!(px(167, 107), 0x0000FF);
    assert_eq!(px(168, 107), 0x00FF00);
    assert_eq!(px(151, 92), 0xFF0000);
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

/// The JIT tier compiling every block on its first run: modes.bin (every
/// mode, faults from compiled blocks, self-modifying code, task switches)
/// loop.bin (the ALU benchmark) and callret.bin (CALL/PUSH/POP/RET) print
/// the same bytes and retire the same instructions as in the interpreter.
#[test]
fn jit_tier_matches_the_interpreter_on_modes_and_loop_roms() {
    for (rom, max) in [
        ("modes.bin", 50_000_000u64),
        ("loop.bin", 400_000_000),
        ("callret.bin", 400_000_000),
    ] {
        let (exit, out, m) = run_rom_with(rom, max, false, |_| {});
        let (jexit, jout, jm) = run_rom_with(rom, max, false, |m| {
            m.cpu.set_jit(Some(1)).expect("this host has a JIT");
        });
        assert_eq!(exit, RunExit::DebugExit(1), "{rom}: {out}");
        assert_eq!((jexit, &jout), (exit, &out), "{rom}");
        assert_eq!(jm.cpu.icount, m.cpu.icount, "{rom}: instruction count");
        assert_eq!(
            jm.cpu.stats.blocks_run, m.cpu.stats.blocks_run,
            "{rom}: block boundaries"
        );
        let compiled = jm.cpu.jit.as_ref().map_or(0, |j| j.compiled);
        assert!(
            compiled >= 10,
            "{rom}: the JIT compiled only {compiled} blocks"
        );
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
fn callret_rom_computes_the_known_checksum() {
    // The same checksum as under QEMU (benches/cpu-vs-qemu.py compares them).
    let (exit, out) = run_rom("callret.bin", 400_000_000, false);
    assert_eq!(exit, RunExit::DebugExit(1), "output: {out}");
    assert_eq!(out.trim(), "s58959A00");
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
    // (image, source, extra nasm arguments); the direct-boot kernels share bootlib.inc.
    for (name, src, defines) in [
        ("modes", "modes", &[][..]),
        ("loop", "loop", &[]),
        ("callret", "callret", &[]),
        ("platform", "platform", &[]),
        ("timing", "timing", &[]),
        ("x87", "x87", &[]),
        ("postcodes", "postcodes", &[]),
        ("monitor", "monitor", &[]),
        ("bzimage", "bzimage", &[]),
        ("pvh", "pvh", &[]),
        ("multiboot", "multiboot", &[]),
        ("multiboot-aout", "multiboot", &["-DAOUT"]),
        ("multiboot-hdrseg", "multiboot", &["-DHDRSEG"]),
        ("multiboot-low", "multiboot", &["-DLOW"]),
        ("multiboot-real", "multiboot-real", &[]),
        ("multiboot-real1000", "multiboot-real", &["-DGDTPAGE"]),
        ("diskwrite", "diskwrite", &[]),
        ("gdb", "gdb", &[]),
        ("cdchange", "cdchange", &[]),
        ("apic", "apic", &[]),
    ] {
        let out = std::env::temp_dir().join(format!("vx86-{name}-{}.bin", std::process::id()));
        let st = std::process::Command::new("nasm")
            .args(["-f", "bin", "-i", &format!("{dir}/")])
            .args(defines)
            .arg("-o")
            .arg(&out)
            .arg(format!("{dir}/{src}.asm"))
            .output()
            .expect("run nasm");
        assert!(
            st.status.success(),
            "nasm failed on {src}.asm: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let fresh = std::fs::read(&out).expect("built");
        let committed = std::fs::read(format!("{dir}/{name}.bin")).expect("committed");
        let _ = std::fs::remove_file(&out);
        assert!(
            fresh == committed,
            "test-roms/{name}.bin is stale: rebuild with nasm -f bin {} -o {name}.bin {src}.asm",
            defines.join(" ")
        );
    }
}
