//! Whole-machine snapshots of machines with the APIC (issue 12): the local
//! APIC and the I/O APIC of `-cpu qemu64,+apic` are saved with
//! `--save-on-exit` and restored with `-loadvm`; the continued run of
//! test-roms/apic.asm prints the same report, ends the same way and reaches
//! the same `--state-hash` as the uninterrupted run, whether the cut caught
//! an armed APIC timer (one-shot, periodic, TSC-deadline; SDM Vol. 3A
//! 11.5.4), an interrupt held in the IRR by the TPR, or a level-triggered
//! I/O APIC interrupt in service with Remote IRR set (SDM 11.8.4, 82093AA
//! datasheet 3.2.4). Each cut's snapshot is decoded to check it caught what
//! it says. A snapshot with the APIC does not load on a machine without it,
//! nor the reverse: one line, exit status 1.

mod common;

use common::snapshot::{assert_restore_matches, run};
use common::{test_rom, TempDir, DEBUGCON_ARGS};
use std::path::Path;
use vx86::devices::lapic::reg;
use vx86::platform::Apics;

/// The machine of tests/apic.rs (`-M machine -m 64M`, the kernel reporting
/// on port 0xE9), with or without `+apic`.
fn apic_kernel_args(machine: &str, apic: bool) -> Vec<String> {
    let cpu = if apic { "qemu64,+apic" } else { "qemu64" };
    let kernel = test_rom("apic.bin");
    let mut v: Vec<String> = ["-M", machine, "-m", "64M", "-cpu", cpu, "-kernel"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push(kernel.display().to_string());
    v.extend(DEBUGCON_ARGS.iter().map(|s| s.to_string()));
    v
}

/// The APIC state in the snapshot at `snap`.
fn saved_apics(snap: &Path) -> Apics {
    let s = vx86::snapshot::read_file(snap).expect("read the snapshot");
    let p = s.platform_state().expect("decode the board's state");
    p.apic.expect("the snapshot holds the APICs")
}

/// IRR, ISR or TMR word `n` (vectors 32n..32n+31) of the saved local APIC.
fn word(a: &mut Apics, base: u32, n: u32) -> u32 {
    a.lapic.read(base + 0x10 * n, 4, 0)
}

/// The kernel on `-M pc`, cut at points chosen for what the APICs hold there
/// (each checked in the saved state), and continued from each snapshot: the
/// report on port 0xE9, the exit status (0, the kernel's ACPI power-off)
/// and the final state hash equal the straight run's.
#[test]
fn apic_kernel_restored_at_any_cut_point_matches_the_straight_run() {
    let dir = TempDir::new("snap-apic");
    let snap = dir.join("s.vx86snap");
    let args = apic_kernel_args("pc", true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The kernel powers off after about 3.41M instructions of virtual time
    // (30k executed; the rest is HLT waiting for timers).
    let n = 5_000_000;
    type Check = fn(&mut Apics, u64);
    let cuts: [(u64, &str, Check); 8] = [
        (3_000, "early: the APIC as the firmware left it", |a, _| {
            assert_eq!(a.lapic.read(reg::SVR, 4, 0), 0x1FF, "SeaBIOS's SVR");
        }),
        (6_200, "vector 0x41 held in the IRR by TPR 0x40", |a, _| {
            assert_eq!(word(a, reg::IRR0, 2), 1 << 1);
            assert_eq!(a.lapic.ppr(), 0x40);
            assert_eq!(a.lapic.deliverable(), None);
        }),
        (50_000, "one-shot timer armed, the CPU halted", |a, cut| {
            let t = a.lapic.next_deadline().expect("armed");
            assert!(t > cut, "fires at {t}");
            assert_eq!(a.lapic.read(reg::LVT_TIMER, 4, 0), 0x40);
            assert!(a.lapic.current_count(cut) > 0);
        }),
        (200_000, "periodic timer armed", |a, cut| {
            assert!(a.lapic.next_deadline().expect("armed") > cut);
            assert_eq!(a.lapic.read(reg::LVT_TIMER, 4, 0), 0x2_0040);
        }),
        (385_000, "TSC-deadline timer armed", |a, cut| {
            let t = a.lapic.tsc_deadline();
            assert!(t > cut, "deadline {t}");
            assert_eq!(a.lapic.next_deadline(), Some(t));
        }),
        (1_500_000, "PIT ticks on I/O APIC pin 2", |a, _| {
            let io = a.ioapic.as_ref().expect("I/O APIC");
            assert_eq!(io.entry(2), Some(0x42), "pin 2: vector 0x42, unmasked");
        }),
        (
            3_404_000,
            "level vector 0x44 in service, Remote IRR set",
            |a, _| {
                assert_eq!(word(a, reg::ISR0, 2), 1 << 4);
                assert_eq!(word(a, reg::TMR0, 2), 1 << 4);
                let io = a.ioapic.as_ref().expect("I/O APIC");
                assert_eq!(io.entry(4), Some(0xC044), "pin 4: level, Remote IRR");
            },
        ),
        (3_409_000, "the APIC globally disabled", |a, _| {
            assert!(!a.lapic.globally_enabled());
            assert_eq!(a.lapic.apic_base(), 0xFEE0_0100);
        }),
    ];
    let mut straight = None;
    for (cut, what, check) in cuts {
        let s = assert_restore_matches(&args, n, cut, &snap, None);
        let mut apics = saved_apics(&snap);
        check(&mut apics, cut);
        let size = vx86::snapshot::encode(&apics).expect("encode").len();
        assert!(size < 512, "cut at {cut} ({what}): APIC state {size} bytes");
        straight = Some(s);
    }
    let s = straight.expect("a straight run");
    assert_eq!(s.status, Some(0), "ACPI power-off: {}", s.stderr);
    let out = String::from_utf8_lossy(&s.stdout);
    assert!(out.contains("level irqs=00000003 remote_irr_in_handler=00000001"));
    assert!(out.ends_with("END\n"), "{out}");
}

/// `-M isapc` with `+apic`: a local APIC and no I/O APIC. Cut with the
/// one-shot timer armed and while the TSC-deadline timer is armed; the
/// kernel then waits for a PIT interrupt that never comes (no I/O APIC),
/// so both runs end at the instruction limit with equal states.
#[test]
fn local_apic_without_io_apic_restores_its_timers() {
    let dir = TempDir::new("snap-apic-isa");
    let snap = dir.join("s.vx86snap");
    let args = apic_kernel_args("isapc", true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for cut in [50_000, 385_000] {
        let s = assert_restore_matches(&args, 1_000_000, cut, &snap, None);
        assert_eq!(s.status, Some(0), "{}", s.stderr);
        let a = saved_apics(&snap);
        assert!(a.ioapic.is_none());
        assert!(a.lapic.next_deadline().is_some_and(|t| t > cut));
        let out = String::from_utf8_lossy(&s.stdout);
        assert!(
            out.contains("tsc-deadline armed=00000001 fired=00000001"),
            "{out}"
        );
    }
}

/// Loads `snap` with `args`; asserts exit status 1 and one stderr line
/// naming the file and containing `problem`, and the file unchanged.
fn assert_refused(args: &[String], snap: &Path, problem: &str) {
    let before = std::fs::read(snap).expect("snapshot");
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    let snap_s = snap.to_str().expect("utf-8 path");
    v.extend(["-loadvm", snap_s, "--max-insns", "100000"]);
    let r = run(&v);
    assert_eq!(r.status, Some(1), "{problem}: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got:\n{}", r.stderr);
    assert!(
        lines[0].contains(snap_s) && lines[0].contains(problem),
        "want the file and {problem:?}: {}",
        lines[0]
    );
    assert!(r.stdout.is_empty(), "the guest ran");
    assert_eq!(std::fs::read(snap).expect("snapshot"), before);
}

/// A snapshot taken with `+apic` on a run without it, and one taken
/// without on a run with it, are refused naming the `-cpu` difference.
#[test]
fn apic_snapshot_on_a_machine_without_the_apic_is_refused() {
    let dir = TempDir::new("snap-apic-bad");
    let snap = dir.join("s.vx86snap");
    let snap_s = snap.to_str().expect("utf-8 path");
    let with = apic_kernel_args("pc", true);
    let without = apic_kernel_args("pc", false);
    let save = |args: &[String]| {
        let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
        v.extend(["--max-insns", "50000", "--save-on-exit", snap_s]);
        let r = run(&v);
        assert_eq!(r.status, Some(0), "{}", r.stderr);
    };
    save(&with);
    assert_refused(
        &without,
        &snap,
        "snapshot was taken with -cpu qemu64,+apic, this run has -cpu qemu64 (no APIC)",
    );
    save(&without);
    assert!(vx86::snapshot::read_file(&snap)
        .expect("read")
        .platform_state()
        .expect("decode")
        .apic
        .is_none());
    assert_refused(
        &with,
        &snap,
        "snapshot was taken with -cpu qemu64 (no APIC), this run has -cpu qemu64,+apic",
    );
}
