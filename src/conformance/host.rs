//! Host differential: generated tests run natively and on a [`UserModeCpu`], compared.
//!
//! What is compared:
//! * all 16 GPRs, except those [`TestCase::undefined_gpr`] marks (BSF/BSR of zero);
//! * RFLAGS bits CF, PF, AF, ZF, SF, OF and DF, except [`TestCase::undefined_flags`].
//!   Not compared: TF and IF (user code cannot change them; the harness sets TF=0,
//!   IF=1), RF (only meaningful in the pushed image of a fault), AC (kept 0), ID/VM/VIF/
//!   VIP/NT/IOPL (not writable from these instructions at CPL 3);
//! * every byte of the data region;
//! * the exception vector, and CR2 for #PF;
//! * the x87/MMX/SSE state: XMM0-15, MXCSR, FCW, FSW, the abridged tag byte and
//!   the eight 80-bit registers, bit for bit, except bits in
//!   [`TestCase::undefined_fx`] ([`super::fximage::diff`]).

use super::gen::{GenConfig, Generator, TestCase, FLAG_DF, STATUS_FLAGS};
use super::{ExecMode, NativeOutcome, Summary, UserModeCpu, GPR_NAMES};
use iced_x86::{Formatter, Instruction, IntelFormatter};
use std::collections::BTreeMap;
use std::io::Write;

/// RFLAGS bits compared (before removing the undefined ones).
pub const COMPARED_FLAGS: u64 = STATUS_FLAGS | FLAG_DF;
/// Mismatches printed in full; the rest are only counted.
const DETAILED_MISMATCHES: u64 = 20;
/// Tests generated and run natively per batch.
const BATCH: u64 = 1000;

/// Generate `count` tests from `seed` (default [`GenConfig`]: no POPCNT/LZCNT/TZCNT),
/// run each natively and on `cpu`, and write mismatches, a per-mnemonic table and the
/// final line `N passed, M failed` to `out`.
pub fn run_host_differential(
    cpu: &mut dyn UserModeCpu,
    count: u64,
    seed: u64,
    out: &mut dyn Write,
) -> Summary {
    run_host_differential_with(
        cpu,
        count,
        seed,
        GenConfig::default(),
        ExecMode::Long64,
        out,
    )
}

/// [`run_host_differential`] with an explicit generator configuration and execution
/// mode ([`ExecMode::Compat32`] generates 32-bit code, including AAA/DAA/PUSHA..., and
/// calls [`UserModeCpu::run_user32`]).
pub fn run_host_differential_with(
    cpu: &mut dyn UserModeCpu,
    count: u64,
    seed: u64,
    cfg: GenConfig,
    mode: ExecMode,
    out: &mut dyn Write,
) -> Summary {
    let bits = if mode == ExecMode::Compat32 { 32 } else { 64 };
    let mut gen = Generator::new_for(seed, cfg, bits);
    let mut report = Report::default();
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let tests: Vec<TestCase> = (0..n).map(|_| gen.next_test()).collect();
        report.run(cpu, &tests, out);
        done += n;
    }
    report.finish(out)
}

/// Run `count` tests from `gen` (any configuration, e.g.
/// [`Generator::new_fp`]) and report like [`run_host_differential`].
pub fn run_generated(
    cpu: &mut dyn UserModeCpu,
    gen: &mut Generator,
    count: u64,
    out: &mut dyn Write,
) -> Summary {
    let mut report = Report::default();
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let tests: Vec<TestCase> = (0..n).map(|_| gen.next_test()).collect();
        report.run(cpu, &tests, out);
        done += n;
    }
    report.finish(out)
}

/// Run already generated tests (e.g. a regression list) and report like
/// [`run_host_differential`].
pub fn run_tests_differential(
    cpu: &mut dyn UserModeCpu,
    tests: &[TestCase],
    out: &mut dyn Write,
) -> Summary {
    let mut report = Report::default();
    for chunk in tests.chunks(BATCH as usize) {
        report.run(cpu, chunk, out);
    }
    report.finish(out)
}

/// Differences between `native` and `emu` for `test` (empty = pass).
pub fn compare(test: &TestCase, native: &NativeOutcome, emu: &NativeOutcome) -> Vec<String> {
    let mut diffs = Vec::new();
    for (i, name) in GPR_NAMES.iter().enumerate() {
        // In compatibility mode only the low halves of RAX..RDI are architectural.
        let m = if test.bits == 32 && i < 8 {
            0xFFFF_FFFF
        } else {
            u64::MAX
        };
        if test.undefined_gpr & (1 << i) == 0 && native.gpr[i] & m != emu.gpr[i] & m {
            diffs.push(format!(
                "{name}: native {:#018x} emulated {:#018x}",
                native.gpr[i], emu.gpr[i]
            ));
        }
    }
    let mask = COMPARED_FLAGS & !test.undefined_flags;
    if native.rflags & mask != emu.rflags & mask {
        diffs.push(format!(
            "rflags (mask {mask:#x}): native {} emulated {}",
            flag_string(native.rflags),
            flag_string(emu.rflags)
        ));
    }
    if native.exception != emu.exception {
        diffs.push(format!(
            "exception: native {} emulated {}",
            exc_string(native.exception),
            exc_string(emu.exception)
        ));
    }
    let mut shown = 0;
    let mut total = 0;
    for (off, (a, b)) in native.data.iter().zip(emu.data.iter()).enumerate() {
        if a != b {
            total += 1;
            if shown < 16 {
                diffs.push(format!(
                    "data[{off:#05x}]: native {a:#04x} emulated {b:#04x}"
                ));
                shown += 1;
            }
        }
    }
    if total > shown {
        diffs.push(format!("... {} more data bytes differ", total - shown));
    }
    diffs.extend(super::fximage::diff(
        &native.fx,
        &emu.fx,
        &test.undefined_fx,
    ));
    if native.data.len() != emu.data.len() {
        diffs.push(format!(
            "data length: native {} emulated {}",
            native.data.len(),
            emu.data.len()
        ));
    }
    diffs
}

fn flag_string(f: u64) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (11, 'O'),
        (10, 'D'),
        (7, 'S'),
        (6, 'Z'),
        (4, 'A'),
        (2, 'P'),
        (0, 'C'),
    ] {
        s.push(if f & (1 << bit) != 0 { c } else { '-' });
    }
    format!("{f:#x} [{s}]")
}

fn exc_string(e: Option<(u8, Option<u64>)>) -> String {
    match e {
        None => "none".into(),
        Some((v, None)) => format!("vector {v}"),
        Some((v, Some(cr2))) => format!("vector {v} cr2={cr2:#x}"),
    }
}

/// Intel-syntax disassembly of `instr`.
pub fn disassemble(instr: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    let mut s = String::new();
    f.format(instr, &mut s);
    s
}

#[derive(Default)]
struct Report {
    summary: Summary,
    per_mnemonic: BTreeMap<String, (u64, u64, u64)>,
    /// Native outcomes by exception vector (`None`: completed), to show the
    /// exceptional paths were exercised.
    vectors: BTreeMap<Option<u8>, u64>,
}

impl Report {
    fn run(&mut self, cpu: &mut dyn UserModeCpu, tests: &[TestCase], out: &mut dyn Write) {
        let native = native_batch(tests);
        for (t, nat) in tests.iter().zip(native) {
            let key = format!("{:?}", t.instr.mnemonic()).to_lowercase();
            let entry = self.per_mnemonic.entry(key).or_insert((0, 0, 0));
            entry.0 += 1;
            let emu = if t.bits == 32 {
                cpu.run_user32(&t.code, &t.state)
            } else {
                Some(cpu.run_user64(&t.code, &t.state))
            };
            let Some(emu) = emu else {
                if self.summary.skipped == 0 {
                    let _ = writeln!(out, "emulator does not implement run_user32: skipping");
                }
                entry.0 -= 1;
                self.summary.skipped += 1;
                continue;
            };
            if let Ok(n) = &nat {
                *self.vectors.entry(n.exception.map(|e| e.0)).or_insert(0) += 1;
            }
            let diffs: Vec<(String, Option<NativeOutcome>)> = match &nat {
                Ok(n) => compare(t, n, &emu)
                    .into_iter()
                    .map(|d| (d, Some(emu.clone())))
                    .collect(),
                Err(e) => vec![(format!("native run failed: {e}"), None)],
            };
            if diffs.is_empty() {
                entry.1 += 1;
                self.summary.passed += 1;
                continue;
            }
            entry.2 += 1;
            self.summary.failed += 1;
            if self.summary.failed <= DETAILED_MISMATCHES {
                let _ = write_mismatch(out, self.summary.failed, t, nat.as_ref().ok(), &diffs);
            }
        }
    }

    fn finish(self, out: &mut dyn Write) -> Summary {
        let _ = writeln!(
            out,
            "{:<14} {:>9} {:>9} {:>9}",
            "mnemonic", "tests", "passed", "failed"
        );
        for (m, (n, p, f)) in &self.per_mnemonic {
            let _ = writeln!(out, "{m:<14} {n:>9} {p:>9} {f:>9}");
        }
        let v: Vec<String> = self
            .vectors
            .iter()
            .map(|(k, n)| match k {
                None => format!("none {n}"),
                Some(v) => format!("#{v} {n}"),
            })
            .collect();
        let _ = writeln!(out, "native exceptions: {}", v.join(", "));
        let s = self.summary;
        if s.skipped > 0 {
            let _ = writeln!(out, "{} skipped", s.skipped);
        }
        let _ = writeln!(out, "{} passed, {} failed", s.passed, s.failed);
        s
    }
}

fn write_mismatch(
    out: &mut dyn Write,
    n: u64,
    t: &TestCase,
    native: Option<&NativeOutcome>,
    diffs: &[(String, Option<NativeOutcome>)],
) -> std::io::Result<()> {
    let bytes: Vec<String> = t.code.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(
        out,
        "MISMATCH #{n}: {}    [{}]",
        disassemble(&t.instr),
        bytes.join(" ")
    )?;
    writeln!(
        out,
        "  undefined flags {:#x}, data at {:#x}",
        t.undefined_flags, t.state.data_addr
    )?;
    let emu = diffs.first().and_then(|d| d.1.as_ref());
    writeln!(
        out,
        "  {:<4} {:>18} {:>18} {:>18}",
        "reg", "initial", "native", "emulated"
    )?;
    for (i, name) in GPR_NAMES.iter().enumerate() {
        let nat = native
            .map(|o| format!("{:#x}", o.gpr[i]))
            .unwrap_or_default();
        let em = emu.map(|o| format!("{:#x}", o.gpr[i])).unwrap_or_default();
        writeln!(
            out,
            "  {name:<4} {:>18} {nat:>18} {em:>18}",
            format!("{:#x}", t.state.gpr[i])
        )?;
    }
    writeln!(
        out,
        "  rflags initial {} native {} emulated {}",
        flag_string(t.state.rflags),
        native.map(|o| flag_string(o.rflags)).unwrap_or_default(),
        emu.map(|o| flag_string(o.rflags)).unwrap_or_default()
    )?;
    for (d, _) in diffs {
        writeln!(out, "  - {d}")?;
    }
    Ok(())
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn native_batch(tests: &[TestCase]) -> Vec<Result<NativeOutcome, String>> {
    let mut results: Vec<Result<NativeOutcome, String>> =
        vec![Err("not run".to_string()); tests.len()];
    for (bits, mode) in [(64, ExecMode::Long64), (32, ExecMode::Compat32)] {
        let idx: Vec<usize> = (0..tests.len())
            .filter(|&i| tests[i].bits == bits)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let refs: Vec<(&[u8], &super::UserState)> = idx
            .iter()
            .map(|&i| (&tests[i].code[..], &tests[i].state))
            .collect();
        let out = super::native::run_native_batch_mode(&refs, mode);
        for (&i, r) in idx.iter().zip(out) {
            results[i] = r.map_err(|e| e.to_string());
        }
    }
    results
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn native_batch(tests: &[TestCase]) -> Vec<Result<NativeOutcome, String>> {
    tests
        .iter()
        .map(|_| Err("native execution needs Linux on x86-64".to_string()))
        .collect()
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::conformance::gen::GenConfig;
    use crate::conformance::native::{run_native, run_native_mode};
    use crate::conformance::UserState;

    /// A "CPU" that is the host itself: the differential must find no difference.
    struct HostCpu;

    fn failed_run() -> NativeOutcome {
        NativeOutcome {
            gpr: [0; 16],
            rflags: 0,
            data: Vec::new(),
            exception: Some((255, None)),
            fx: crate::conformance::FxImage::zeroed(),
        }
    }

    impl UserModeCpu for HostCpu {
        fn run_user64(&mut self, code: &[u8], state: &UserState) -> NativeOutcome {
            run_native(code, state).unwrap_or_else(|_| failed_run())
        }
        fn run_user32(&mut self, code: &[u8], state: &UserState) -> Option<NativeOutcome> {
            Some(run_native_mode(code, state, ExecMode::Compat32).unwrap_or_else(|_| failed_run()))
        }
    }

    /// Supports only 64-bit code.
    struct Only64;

    impl UserModeCpu for Only64 {
        fn run_user64(&mut self, code: &[u8], state: &UserState) -> NativeOutcome {
            HostCpu.run_user64(code, state)
        }
    }

    #[test]
    fn compat_mode_host_against_itself_has_no_failures() {
        let mut out = Vec::new();
        let s = run_host_differential_with(
            &mut HostCpu,
            400,
            3,
            GenConfig::default(),
            ExecMode::Compat32,
            &mut out,
        );
        let text = String::from_utf8_lossy(&out);
        assert_eq!((s.passed, s.failed), (400, 0), "{text}");
        assert!(text.contains("\naaa ") || text.contains("\ndaa ") || text.contains("\npushad "));
    }

    #[test]
    fn missing_run_user32_is_skipped_not_failed() {
        let mut out = Vec::new();
        let s = run_host_differential_with(
            &mut Only64,
            50,
            3,
            GenConfig::default(),
            ExecMode::Compat32,
            &mut out,
        );
        let text = String::from_utf8_lossy(&out);
        assert_eq!((s.passed, s.failed, s.skipped), (0, 0, 50), "{text}");
        assert!(text.contains("does not implement run_user32"));
        assert!(text.ends_with("50 skipped\n0 passed, 0 failed\n"), "{text}");
    }

    /// Flips CF after every ADD and otherwise behaves like the host.
    struct BrokenAdd;

    impl UserModeCpu for BrokenAdd {
        fn run_user64(&mut self, code: &[u8], state: &UserState) -> NativeOutcome {
            let mut o = HostCpu.run_user64(code, state);
            let is_add = crate::conformance::gen::decode(code)
                .is_some_and(|i| i.mnemonic() == iced_x86::Mnemonic::Add);
            if is_add {
                o.rflags ^= 1;
            }
            o
        }
    }

    #[test]
    fn host_against_itself_has_no_failures() {
        let mut out = Vec::new();
        let s = run_host_differential(&mut HostCpu, 800, 42, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(s.failed, 0, "{text}");
        assert_eq!(s.passed, 800);
        assert!(text.ends_with("800 passed, 0 failed\n"), "{text}");
        assert!(text.contains("\nadd "), "{text}");
    }

    #[test]
    fn a_wrong_flag_is_reported() {
        let mut out = Vec::new();
        let s = run_host_differential(&mut BrokenAdd, 1000, 7, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(s.failed > 0, "{text}");
        assert!(text.contains("MISMATCH #1: add"), "{text}");
        assert!(text.contains("rflags (mask"), "{text}");
        let add_line = text
            .lines()
            .find(|l| l.starts_with("add "))
            .expect("add row");
        let cols: Vec<&str> = add_line.split_whitespace().collect();
        assert_eq!(cols[3], cols[1], "every add fails: {add_line}");
        assert!(text.ends_with(&format!("{} passed, {} failed\n", s.passed, s.failed)));
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod batch_tests {
    use super::*;
    use iced_x86::Mnemonic;

    /// 20,000 generated tests natively in batches: only the expected exceptions occur
    /// (#DE from DIV/IDIV, #GP from a misaligned CMPXCHG16B), so operands really stay
    /// inside the data region.
    #[test]
    fn generated_tests_only_raise_expected_exceptions() {
        let mut gen = Generator::new(99, GenConfig::default());
        let mut tests: Vec<TestCase> = (0..20_000).map(|_| gen.next_test()).collect();
        let mut gen32 = Generator::new_for(99, GenConfig::default(), 32);
        tests.extend((0..10_000).map(|_| gen32.next_test()));
        let results = native_batch(&tests);
        let mut de = 0;
        for (t, r) in tests.iter().zip(&results) {
            let o = r.as_ref().expect("native run");
            let m = t.instr.mnemonic();
            match o.exception {
                None => {}
                Some((0, None)) if matches!(m, Mnemonic::Div | Mnemonic::Idiv | Mnemonic::Aam) => {
                    de += 1
                }
                Some((13, None)) if m == Mnemonic::Cmpxchg16b => {}
                other => panic!("{} raised {other:?}", disassemble(&t.instr)),
            }
        }
        assert!(de > 20, "only {de} #DE tests");
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod determinism_tests {
    use super::*;

    /// Two independent native runs (different child processes) of the same 20,000 tests
    /// compare equal: the native reference is deterministic, so a mismatch against the
    /// emulator is never host noise.
    #[test]
    fn native_runs_are_reproducible() {
        let mut gen = Generator::new(2024, GenConfig::default());
        let tests: Vec<TestCase> = (0..20_000).map(|_| gen.next_test()).collect();
        let a = native_batch(&tests);
        let b = native_batch(&tests);
        for ((t, x), y) in tests.iter().zip(&a).zip(&b) {
            let (x, y) = (x.as_ref().expect("run a"), y.as_ref().expect("run b"));
            let d = compare(t, x, y);
            assert!(d.is_empty(), "{}: {d:?}", disassemble(&t.instr));
            // Stronger than compare(): everything, including undefined flags, is equal.
            assert_eq!(x, y);
        }
    }
}
