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

/// True when the native runs happen on an AMD (or Hygon) CPU.
fn host_is_amd() -> bool {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        super::native::host_is_amd()
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        false
    }
}

/// What an AMD host does differently from Intel (and vx86, which follows
/// Intel) where the vendors' manuals let them differ; these bits are not
/// compared when the native run was on AMD. Measured on an EPYC 7002 host.
struct VendorMask {
    /// GPRs (bit i = register i) compared in their low 32 bits only.
    gpr_low32: u16,
    /// Bits of data-region bytes not compared: (offset, bit mask).
    data: Vec<(usize, u8)>,
    /// Nothing is compared: the test loads an MXCSR with bit 17 set, which
    /// AMD accepts (its MXCSR_MASK has MM) and vx86 refuses with #GP.
    skip: bool,
}

fn vendor_mask(test: &TestCase, native: &NativeOutcome, emu: &NativeOutcome) -> VendorMask {
    use iced_x86::{Mnemonic as M, OpKind};
    let mut v = VendorMask {
        gpr_low32: 0,
        data: Vec::new(),
        skip: false,
    };
    if !host_is_amd() {
        return v;
    }
    let i = &test.instr;
    // REP string instruction with a 32-bit address size and ECX = 0: Intel
    // writes the (unchanged) 32-bit count and pointers back, clearing bits
    // 63:32 of RCX/RSI/RDI (SDM Vol. 1 3.4.1.1: 32-bit results are
    // zero-extended); AMD leaves the registers untouched.
    let a32_string = i.op_kinds().any(|k| {
        matches!(
            k,
            OpKind::MemorySegESI | OpKind::MemoryESEDI | OpKind::MemorySegEDI
        )
    });
    if test.bits == 64
        && a32_string
        && (i.has_rep_prefix() || i.has_repne_prefix())
        && test.state.gpr[1] as u32 == 0
    {
        v.gpr_low32 = (1 << 1) | (1 << 6) | (1 << 7);
    }
    // Underflow on tiny and denormal x87 results: AMD detects tininess
    // before rounding and raises #U for some exact denormal results (FPREM1
    // of a denormal dividend, FSCALE by zero) where Intel does not; with #U
    // unmasked the delivered results then differ too. Where only UE
    // disagrees between the two CPUs, the test is not compared.
    let fsw_at = super::fximage::off::FSW;
    let fsw = |f: &super::FxImage| f.u16_at(fsw_at);
    if is_x87(&test.code) {
        v.skip |= (fsw(&native.fx) ^ fsw(&emu.fx)) & crate::cpu::fpu::fsw::UE != 0;
    }
    // The memory operand's offset in the data region, for the x87/SSE state
    // instructions below.
    let regs = &test.state.gpr;
    let ea = i.virtual_address(0, 0, |reg, _, _| {
        let full = reg.full_register();
        let n = (full as usize).wrapping_sub(iced_x86::Register::RAX as usize);
        let val = regs.get(n).copied().unwrap_or(0);
        Some(if reg.size() == 4 {
            val & 0xFFFF_FFFF
        } else {
            val
        })
    });
    let ea = ea.and_then(|a| a.checked_sub(test.state.data_addr));
    let mxcsr_at = match i.mnemonic() {
        M::Fxrstor | M::Fxrstor64 => Some(24),
        M::Ldmxcsr => Some(0),
        _ => None,
    };
    if let (Some(at), Some(off)) = (mxcsr_at, ea) {
        let b = test
            .state
            .data
            .get(off as usize + at + 2)
            .copied()
            .unwrap_or(0);
        v.skip |= b & 0x02 != 0;
    }
    // FXSAVE: AMD stores FOP/FIP/FDP only while FSW.ES is set (zeros
    // otherwise) and reports its misaligned-SSE mask MM (bit 17) in
    // MXCSR_MASK, a feature vx86 does not advertise.
    if matches!(i.mnemonic(), M::Fxsave | M::Fxsave64) {
        if let Some(off) = ea {
            let off = off as usize;
            let es = native.data.get(off + 2).is_some_and(|b| b & 0x80 != 0);
            if !es {
                v.data.extend((off + 6..off + 24).map(|k| (k, 0xFF)));
            }
            v.data.push((off + 30, 0x02));
        }
    }
    v
}

/// An x87 instruction: its opcode, after the prefixes, is an escape byte
/// D8-DF.
fn is_x87(code: &[u8]) -> bool {
    code.iter()
        .find(|&&b| !matches!(b, 0x26 | 0x2E | 0x36 | 0x3E | 0x40..=0x4F | 0x64..=0x67 | 0xF0 | 0xF2 | 0xF3))
        .is_some_and(|b| (0xD8..=0xDF).contains(b))
}

/// Differences between `native` and `emu` for `test` (empty = pass).
pub fn compare(test: &TestCase, native: &NativeOutcome, emu: &NativeOutcome) -> Vec<String> {
    let mut diffs = Vec::new();
    let vendor = vendor_mask(test, native, emu);
    if vendor.skip {
        return diffs;
    }
    for (i, name) in GPR_NAMES.iter().enumerate() {
        // In compatibility mode only the low halves of RAX..RDI are architectural.
        let m = if (test.bits == 32 && i < 8) || vendor.gpr_low32 & (1 << i) != 0 {
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
        let ignore = vendor
            .data
            .iter()
            .filter(|(k, _)| *k == off)
            .fold(0u8, |m, (_, bits)| m | bits);
        if (a ^ b) & !ignore != 0 {
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
    /// Native runs that disagreed with the emulator once and agreed when repeated.
    native_reruns: u64,
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
            let mut nat = nat;
            if nat.as_ref().is_ok_and(|n| !compare(t, n, &emu).is_empty()) {
                // The native reference is deterministic (`native_runs_are_reproducible`),
                // so an emulator bug repeats. Once, under host load, a compat-mode
                // native run came back having written nothing and with the upper
                // register halves cleared: that run was disturbed, not the instruction.
                // Run the native side again, alone; only a repeatable mismatch counts.
                if let Some(again) = native_batch(std::slice::from_ref(t)).pop() {
                    if again.as_ref().is_ok_and(|n| compare(t, n, &emu).is_empty()) {
                        self.native_reruns += 1;
                        nat = again;
                    }
                }
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
        if self.native_reruns > 0 {
            let _ = writeln!(
                out,
                "{} native runs disturbed and repeated (they agreed the second time)",
                self.native_reruns
            );
        }
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
