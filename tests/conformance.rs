//! CI-sized runs of the instruction conformance harnesses.

use vx86::conformance::vx86_cpu::{Vx86Real, Vx86User};

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn host_differential_50k_has_no_failures() {
    let mut cpu = Vx86User::default();
    let mut out = Vec::new();
    let s = vx86::conformance::host::run_host_differential(&mut cpu, 50_000, 0x5EED, &mut out);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(s.failed, 0, "{text}");
    assert_eq!(s.passed, 50_000);
    assert!(text.contains("50000 passed, 0 failed"));
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn host_differential_compat32_20k_has_no_failures() {
    use vx86::conformance::{gen::GenConfig, host::run_host_differential_with, ExecMode};
    let mut cpu = Vx86User::default();
    let mut out = Vec::new();
    let s = run_host_differential_with(
        &mut cpu,
        20_000,
        0xC0DE,
        GenConfig::default(),
        ExecMode::Compat32,
        &mut out,
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(s.failed, 0, "{text}");
    assert_eq!(
        s.skipped, 0,
        "compatibility-mode tests must run, not skip: {text}"
    );
    assert_eq!(s.passed, 20_000);
}

/// SingleStepTests 80286 files that vx86 passes completely today; a regression in
/// any of them fails this test. (The full set is run by `vx86 conform singlestep`.)
const CLEAN: &str = "04,05,0C,0D,14,15,1C,1D,24,25,27,2C,2D,2F,34,35,37,3C,3D,3F,40,41,42,43,44,45,46,47,48,49,4A,4B,4C,4D,4E,4F,70,71,72,73,74,75,76,77,78,79,7A,7B,7C,7D,7E,7F,90,91,92,93,94,95,96,97,98,99,9E,9F,A8,A9,B0,B1,B2,B3,B4,B5,B6,B7,B8,B9,BA,BB,BC,BD,BE,BF,F5,F8,F9,FA,FB,FC,FD";

#[test]
fn singlestep_80286_clean_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/singlestep/80286/v1_real_mode");
    let dir = std::env::var_os("VX86_SINGLESTEP_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or(dir);
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: SingleStepTests data not found at {} (set VX86_SINGLESTEP_DIR)",
            dir.display()
        );
        return;
    }
    let mut cpu = Vx86Real::default();
    let mut out = Vec::new();
    let s =
        vx86::conformance::singlestep::run_singlestep_dir(&mut cpu, &dir, Some(CLEAN), &mut out);
    let text = String::from_utf8_lossy(&out);
    eprintln!(
        "singlestep: {} passed, {} failed, {} skipped",
        s.passed, s.failed, s.skipped
    );
    assert!(s.passed > 100_000, "{text}");
    assert_eq!(s.failed, 0, "{text}");
}

/// 50,000 random MMX/SSE/SSE2 instructions (64-bit) and 10,000 in
/// compatibility mode, with the FP/SIMD state compared bit for bit.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn host_differential_fp_simd_has_no_failures() {
    use vx86::conformance::{gen::Generator, host::run_generated};
    for (bits, n, seed) in [(64, 50_000, 0xF00D), (32, 10_000, 0xBEEF)] {
        let mut cpu = Vx86User::default();
        let mut gen = Generator::new_fp(seed, bits);
        let mut out = Vec::new();
        let s = run_generated(&mut cpu, &mut gen, n, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(s.failed, 0, "{text}");
        assert_eq!(s.passed, n);
        for m in [
            "\naddps ",
            "\ncvttsd2si ",
            "\npmaddwd ",
            "\nmaskmovdqu ",
            "\nucomisd ",
        ] {
            assert!(text.contains(m), "{m} not generated: {text}");
        }
        // The exceptional paths ran: misalignment #GP, pending-x87 #MF, #XM.
        for v in ["#13 ", "#16 ", "#19 "] {
            assert!(text.contains(v), "no {v}: {text}");
        }
    }
}
