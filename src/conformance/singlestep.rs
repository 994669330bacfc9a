//! Runner for the SingleStepTests 80286 real-mode test set (MOO files).
//!
//! Rules (from the test set's README):
//! * INIT FLAGS are masked with `0x0FFF` before loading (a real-mode 286 cannot set
//!   IOPL/NT/bit 15; the captured initial values are raw LOADALL data);
//! * every FINA register must match (absent = unchanged from INIT), FLAGS under the
//!   `metadata.json` `flags-mask` of the opcode (or of its ModR/M `reg` for group
//!   opcodes);
//! * every FINA RAM byte must match; the FLAGS word an exception pushed is compared
//!   under the same mask (found from the final SS:SP: the `EXCP` chunk's address is
//!   off by one for odd SP);
//! * tests whose SHA-1 is in `revocation_list.txt` are skipped.
//!
//! A mismatch is then offered to the documented 286-vs-386+ differences
//! ([`Diff286`], module `diff286`): each checks that the CPU showed the 386 behaviour
//! exactly where the 286 differs (re-running with the 286-specific input removed or
//! relaxing only the affected bits) and the test is counted under that rule, in its
//! own column, not as passed. Tests not run at all are counted per [`SkipReason`]:
//! revoked captures, SGDT/SIDT/SMSW (0F 01 /0 /1 /4, whose stored values differ) and
//! x87 instructions the CPU does not implement yet.

pub use super::diff286::{Attempt, Diff286};
use super::moo::{read_moo_file, MooTest};
use super::Summary;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// The 14 registers of a real-mode 80286 test, in MOO `REGS` bit order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs286 {
    /// AX.
    pub ax: u16,
    /// BX.
    pub bx: u16,
    /// CX.
    pub cx: u16,
    /// DX.
    pub dx: u16,
    /// CS selector (base = CS << 4, limit 0xFFFF).
    pub cs: u16,
    /// SS selector.
    pub ss: u16,
    /// DS selector.
    pub ds: u16,
    /// ES selector.
    pub es: u16,
    /// SP.
    pub sp: u16,
    /// BP.
    pub bp: u16,
    /// SI.
    pub si: u16,
    /// DI.
    pub di: u16,
    /// IP.
    pub ip: u16,
    /// FLAGS.
    pub flags: u16,
}

/// Register names in [`Regs286`] / MOO bit order.
pub const REG_NAMES: [&str; 14] = [
    "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags",
];

/// Index of FLAGS in MOO bit order.
const FLAGS_INDEX: usize = 13;

impl Regs286 {
    /// Register `i` in MOO bit order, `None` if `i >= 14`.
    pub fn get(&self, i: usize) -> Option<u16> {
        let r = self;
        [
            r.ax, r.bx, r.cx, r.dx, r.cs, r.ss, r.ds, r.es, r.sp, r.bp, r.si, r.di, r.ip, r.flags,
        ]
        .get(i)
        .copied()
    }

    /// Mutable register `i` in MOO bit order, `None` if `i >= 14`.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut u16> {
        Some(match i {
            0 => &mut self.ax,
            1 => &mut self.bx,
            2 => &mut self.cx,
            3 => &mut self.dx,
            4 => &mut self.cs,
            5 => &mut self.ss,
            6 => &mut self.ds,
            7 => &mut self.es,
            8 => &mut self.sp,
            9 => &mut self.bp,
            10 => &mut self.si,
            11 => &mut self.di,
            12 => &mut self.ip,
            13 => &mut self.flags,
            _ => return None,
        })
    }
}

/// An exception or software interrupt the CPU delivered during a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealModeEvent {
    /// Vector (6 = #UD, 12 = #SS, 13 = #GP, ...).
    pub vector: u8,
    /// CS when it was raised.
    pub cs: u16,
    /// IP pushed for it: the faulting instruction for a fault, the next one for INT n.
    pub ip: u16,
}

/// What the CPU returns after a test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealModeResult {
    /// Registers after the HLT (IP points after the HLT byte).
    pub regs: Regs286,
    /// Whether a HLT was executed (false: the instruction budget ran out).
    pub halted: bool,
    /// Exceptions and interrupts delivered, in order (the rules that excuse a
    /// 286-vs-386 difference check that the 386 behaviour happened where expected).
    pub events: Vec<RealModeEvent>,
}

/// A CPU that can run one SingleStepTests real-mode test.
pub trait RealModeCpu {
    /// Reset to real mode with 16 MiB of flat writable RAM (A20 enabled, segment
    /// limits 0xFFFF, base = selector << 4, IF and TF clear), load `regs` (FLAGS already
    /// masked with 0x0FFF by the harness), write the `ram` bytes (physical address,
    /// value), and run from CS:IP until a HLT executes (IP then points after it) or an
    /// instruction budget (a few hundred instructions is plenty) is exhausted.
    /// Faults and INT n are delivered through the real-mode IVT as on hardware. IN
    /// from any port must return all ones (0xFF / 0xFFFF).
    fn run_test(&mut self, regs: &Regs286, ram: &[(u32, u8)]) -> RealModeResult;

    /// Physical memory byte at `addr` after [`RealModeCpu::run_test`]; called by the
    /// harness for every address the expected final state lists.
    fn read_byte(&mut self, addr: u32) -> u8;

    /// Whether the CPU implements the instruction at the start of `bytes` (16-bit
    /// code). Used only to classify x87 tests as "needs x87" until it does.
    fn implements(&mut self, bytes: &[u8]) -> bool {
        let _ = bytes;
        true
    }
}

/// Why a test was not compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// Listed in `revocation_list.txt` (bad capture).
    Revoked,
    /// SGDT/SIDT (the 286 stores FFh as the 6th byte) or SMSW (the 286 reads unused MSW
    /// bits as 1): results differ on a 386+.
    DescriptorStore286,
    /// An x87 instruction (ESC D8..DF or WAIT) the CPU does not implement yet. The
    /// 286 tests were captured without a coprocessor: ESC and WAIT change nothing but
    /// IP there (an ESC memory operand is still limit-checked), which is also what an
    /// x87 leaves visible in the integer state, so these run as soon as the CPU
    /// implements the instruction.
    NeedsX87,
}

impl SkipReason {
    fn describe(self) -> &'static str {
        match self {
            SkipReason::Revoked => "revoked (revocation_list.txt)",
            SkipReason::DescriptorStore286 => "286: SGDT/SIDT/SMSW store 286-specific bits",
            SkipReason::NeedsX87 => "needs x87: an ESC/WAIT form the CPU does not implement",
        }
    }
}

/// Flags masks per test file stem (`"D3.4"`, `"01"`) from `metadata.json`.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    masks: HashMap<String, u16>,
}

/// Errors loading `metadata.json`.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file is not valid JSON or lacks `opcodes`.
    #[error("{0}: {1}")]
    Format(String, String),
}

impl Metadata {
    /// Parse `metadata.json`.
    pub fn load(path: &Path) -> Result<Metadata, MetadataError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MetadataError::Io(name.clone(), e))?;
        Metadata::parse(&text).map_err(|e| MetadataError::Format(name, e))
    }

    /// Parse the JSON text of `metadata.json`.
    pub fn parse(text: &str) -> Result<Metadata, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let ops = v
            .get("opcodes")
            .and_then(|o| o.as_object())
            .ok_or("no `opcodes` object")?;
        let mask_of = |e: &serde_json::Value| {
            e.get("flags-mask")
                .and_then(|m| m.as_u64())
                .map(|m| m as u16)
                .unwrap_or(0xFFFF)
        };
        let mut masks = HashMap::new();
        for (op, entry) in ops {
            match entry.get("reg").and_then(|r| r.as_object()) {
                Some(regs) => {
                    for (r, re) in regs {
                        masks.insert(format!("{op}.{r}"), mask_of(re));
                    }
                }
                None => {
                    masks.insert(op.clone(), mask_of(entry));
                }
            }
        }
        Ok(Metadata { masks })
    }

    /// FLAGS mask for a file stem (`"D3.4"`); 0xFFFF (all defined) if unknown.
    pub fn flags_mask(&self, stem: &str) -> u16 {
        self.masks.get(stem).copied().unwrap_or(0xFFFF)
    }

    /// FLAGS mask for one test of file `stem`: the stem's entry, or, for a group opcode
    /// whose file has no `.reg` suffix (e.g. `8F`), the entry of the ModR/M `reg` field
    /// found after the prefixes and the opcode in `bytes`.
    pub fn flags_mask_for(&self, stem: &str, bytes: &[u8]) -> u16 {
        self.lookup(stem, bytes).unwrap_or(0xFFFF)
    }

    fn lookup(&self, stem: &str, bytes: &[u8]) -> Option<u16> {
        if let Some(&m) = self.masks.get(stem) {
            return Some(m);
        }
        let body = skip_prefixes(bytes);
        let modrm_at = if body.first() == Some(&0x0F) { 2 } else { 1 };
        let reg = (body.get(modrm_at)? >> 3) & 7;
        self.masks.get(&format!("{stem}.{reg}")).copied()
    }
}

/// Load `revocation_list.txt`: one lowercase SHA-1 hex per line, `#` comments.
pub fn load_revocations(path: &Path) -> HashSet<String> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// `bytes` after any 8086/286 prefixes (segment overrides, LOCK, REP/REPNE).
fn skip_prefixes(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, 0x26 | 0x2E | 0x36 | 0x3E | 0xF0 | 0xF2 | 0xF3))
        .count();
    bytes.get(n..).unwrap_or(&[])
}

/// Classify a test the harness does not compare. `cpu` is asked whether it
/// implements the x87 instructions (ESC D8..DF, WAIT) of the test.
pub fn skip_reason(
    cpu: &mut dyn RealModeCpu,
    t: &MooTest,
    revoked: &HashSet<String>,
) -> Option<SkipReason> {
    if revoked.contains(&t.hash_hex()) {
        return Some(SkipReason::Revoked);
    }
    let body = skip_prefixes(&t.bytes);
    if let [0x0F, 0x01, modrm, ..] = *body {
        if matches!((modrm >> 3) & 7, 0 | 1 | 4) {
            return Some(SkipReason::DescriptorStore286);
        }
    }
    // A LOCK prefix is judged by the LOCK rule in `diff286` (the 286 ignores
    // it, a 386+ raises #UD), so ask about the instruction without it.
    let prefixes = t.bytes.len() - body.len();
    let unlocked: Vec<u8> = t.bytes[..prefixes]
        .iter()
        .copied()
        .filter(|&b| b != 0xF0)
        .chain(body.iter().copied())
        .collect();
    if matches!(body.first(), Some(0xD8..=0xDF | 0x9B)) && !cpu.implements(&unlocked) {
        return Some(SkipReason::NeedsX87);
    }
    None
}

/// The registers and RAM a test starts from; a [`Diff286`] rule may change them
/// for a re-run (e.g. drop a LOCK prefix the 286 ignores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// Initial registers (FLAGS masked with 0x0FFF).
    pub regs: Regs286,
    /// Initial RAM bytes (physical address, value).
    pub ram: Vec<(u32, u8)>,
}

impl Inputs {
    /// The INIT state of `t`, FLAGS masked with 0x0FFF (see the module docs).
    pub fn of(t: &MooTest) -> Inputs {
        let mut regs = t.init.regs.regs;
        regs.flags &= 0x0FFF;
        Inputs {
            regs,
            ram: t.init.ram.clone(),
        }
    }
}

/// What a [`Diff286`] rule relaxes in the comparison. Empty by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relax {
    /// FLAGS bits not compared, in the final FLAGS and in the FLAGS word an
    /// exception pushed.
    pub ignore_flags: u16,
    /// Per register (MOO bit order): `expected - got` (mod 2^16) must equal this
    /// value instead of 0 (the 286 changed the register by that much more).
    pub delta: [u16; 14],
    /// RAM bytes whose expected value is replaced by this one (physical
    /// address, value the CPU must have written instead of the 286's).
    pub ram_expect: [Option<(u32, u8)>; 2],
}

/// Physical addresses of the FLAGS word the test's exception pushed, from the
/// final SS:SP (the handler's HLT runs with IP, CS, FLAGS at SP, SP+2, SP+4).
/// The `EXCP` chunk's own address is rounded down to even when SP is odd (seen
/// in every such test of this set), so it is not used.
fn pushed_flags_addrs(t: &MooTest, init: &Regs286) -> Option<(u32, u32)> {
    t.exception?;
    Some(frame_addrs(t, init, 4))
}

/// Physical addresses of the word at offset `off` (0 IP, 2 CS, 4 FLAGS) of the
/// interrupt frame `t` expects on the stack after its exception.
pub fn frame_addrs(t: &MooTest, init: &Regs286, off: u16) -> (u32, u32) {
    let fina = |i: usize, dflt: u16| {
        if t.fina.regs.mask & (1 << i) != 0 {
            t.fina.regs.regs.get(i).unwrap_or(dflt)
        } else {
            dflt
        }
    };
    let ss = fina(5, init.ss) as u32;
    let sp = fina(8, init.sp);
    let at = |o: u16| (ss << 4) + sp.wrapping_add(o) as u32;
    (at(off), at(off + 1))
}

/// Compare the CPU's final state `res` with `t`'s expected one under the FLAGS
/// `mask` (of the test's file, from `metadata.json`) and the relaxations `relax`;
/// returns the differences.
pub fn compare(
    cpu: &mut dyn RealModeCpu,
    t: &MooTest,
    mask: u16,
    res: &RealModeResult,
    relax: &Relax,
) -> Vec<String> {
    let init = Inputs::of(t).regs;
    let mut diffs = Vec::new();
    if !res.halted {
        diffs.push("did not reach HLT".to_string());
    }
    let mask = mask & !relax.ignore_flags;
    let flags_mask = mask;
    for (i, name) in REG_NAMES.iter().enumerate() {
        let present = t.fina.regs.mask & (1 << i) != 0;
        let expected = if present {
            t.fina.regs.regs.get(i)
        } else {
            init.get(i)
        };
        let (Some(exp), Some(got)) = (expected, res.regs.get(i)) else {
            continue;
        };
        let m = if i == FLAGS_INDEX { flags_mask } else { 0xFFFF };
        let got = got.wrapping_add(relax.delta.get(i).copied().unwrap_or(0));
        if exp & m != got & m {
            diffs.push(format!(
                "{name}: expected {exp:#06x} got {got:#06x} (mask {m:#06x})"
            ));
        }
    }
    let pushed_flags = pushed_flags_addrs(t, &init);
    for &(addr, exp) in &t.fina.ram {
        let got = cpu.read_byte(addr);
        let exp = relax
            .ram_expect
            .iter()
            .flatten()
            .find(|&&(a, _)| a == addr)
            .map_or(exp, |&(_, v)| v);
        let m = match pushed_flags {
            Some((lo, _)) if addr == lo => mask as u8,
            Some((_, hi)) if addr == hi => (mask >> 8) as u8,
            _ => 0xFF,
        };
        if exp & m != got & m {
            diffs.push(format!(
                "ram[{addr:#07x}]: expected {exp:#04x} got {got:#04x}"
            ));
        }
    }
    diffs
}

/// Run `t` on `cpu` and return the differences (empty = pass), without applying
/// any [`Diff286`] rule.
pub fn run_one(cpu: &mut dyn RealModeCpu, t: &MooTest, mask: u16) -> Vec<String> {
    let inputs = Inputs::of(t);
    let res = cpu.run_test(&inputs.regs, &inputs.ram);
    compare(cpu, t, mask, &res, &Relax::default())
}

/// The outcome of one compared test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The final state matched.
    Pass,
    /// The final state matched once these documented 286-vs-386 differences were
    /// accounted for (each rule checks that the 386 behaviour happened).
    Difference(Vec<Diff286>),
    /// A real mismatch: the differences, and the events the CPU delivered.
    Fail(Vec<String>, Vec<RealModeEvent>),
}

/// Run `t` and judge it: a plain comparison first; on a mismatch, the
/// [`Diff286`] rules are tried in order, each on the result of the previous
/// (a rule may ask for a re-run with changed inputs and/or relax the
/// comparison), until the comparison passes or no rule applies.
pub fn judge(cpu: &mut dyn RealModeCpu, t: &MooTest, mask: u16) -> Verdict {
    let inputs = Inputs::of(t);
    let first = cpu.run_test(&inputs.regs, &inputs.ram);
    let diffs = compare(cpu, t, mask, &first, &Relax::default());
    if diffs.is_empty() {
        return Verdict::Pass;
    }
    let mut attempt = Attempt::new(inputs);
    let mut applied: Vec<Diff286> = Vec::new();
    let mut res = first.clone();
    loop {
        let Some(rule) = Diff286::ALL
            .into_iter()
            .find(|r| !applied.contains(r) && r.apply(t, &res, &mut attempt))
        else {
            return Verdict::Fail(diffs, first.events);
        };
        applied.push(rule);
        if attempt.explained {
            return Verdict::Difference(applied);
        }
        if attempt.rerun {
            attempt.rerun = false;
            res = cpu.run_test(&attempt.inputs.regs, &attempt.inputs.ram);
        }
        if compare(cpu, t, mask, &res, &attempt.relax).is_empty() {
            return Verdict::Difference(applied);
        }
    }
}

fn event_name(v: u8) -> String {
    match v {
        0 => "#DE".into(),
        6 => "#UD".into(),
        12 => "#SS".into(),
        13 => "#GP".into(),
        _ => format!("int {v}"),
    }
}

/// Mismatches printed in detail by default.
pub const DETAILED_MISMATCHES: u64 = 20;

/// Run every `*.MOO.gz` / `*.MOO` file in `dir` (sorted by name) whose stem matches
/// `filter` (comma-separated stems or opcode prefixes: `"D3"` matches `D3.0`..`D3.7`),
/// using `dir/metadata.json` and `dir/../revocation_list.txt` (or `dir/revocation_list.txt`).
/// Writes the first mismatches in detail, a per-file table (tests, passed, failed,
/// skipped), the skip categories, and finally the line `N passed, M failed`.
/// Unreadable files are reported and counted as one failure each.
pub fn run_singlestep_dir(
    cpu: &mut dyn RealModeCpu,
    dir: &Path,
    filter: Option<&str>,
    out: &mut dyn Write,
) -> Summary {
    run_singlestep_dir_with(cpu, dir, filter, DETAILED_MISMATCHES, 1, out)
}

/// [`run_singlestep_dir`], printing the first `details` mismatches in detail and
/// running only every `stride`-th test of each file (1 = all; the CI gate runs a
/// fixed subset this way).
pub fn run_singlestep_dir_with(
    cpu: &mut dyn RealModeCpu,
    dir: &Path,
    filter: Option<&str>,
    details: u64,
    stride: usize,
    out: &mut dyn Write,
) -> Summary {
    let mut summary = Summary::default();
    let meta = match Metadata::load(&dir.join("metadata.json")) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(out, "warning: {e}; comparing all FLAGS bits");
            Metadata::default()
        }
    };
    let mut revoked = load_revocations(&dir.join("revocation_list.txt"));
    if let Some(parent) = dir.parent() {
        revoked.extend(load_revocations(&parent.join("revocation_list.txt")));
    }
    let mut files: Vec<(String, std::path::PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let stem = name
                    .strip_suffix(".MOO.gz")
                    .or_else(|| name.strip_suffix(".MOO"))?;
                Some((stem.to_string(), e.path()))
            })
            .collect(),
        Err(e) => {
            let _ = writeln!(out, "error: {}: {e}", dir.display());
            summary.failed += 1;
            let _ = writeln!(out, "{} passed, {} failed", summary.passed, summary.failed);
            return summary;
        }
    };
    files.sort();
    let wanted = |stem: &str| match filter {
        None => true,
        Some(f) => f.split(',').map(str::trim).any(|p| {
            stem.eq_ignore_ascii_case(p)
                || stem
                    .get(..p.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(p))
                    && stem.as_bytes().get(p.len()) == Some(&b'.')
        }),
    };
    let mut table = Vec::new();
    let mut skips: BTreeMap<SkipReason, u64> = BTreeMap::new();
    let mut rules: BTreeMap<Vec<Diff286>, u64> = BTreeMap::new();
    for (stem, path) in files.iter().filter(|(s, _)| wanted(s)) {
        let file = match read_moo_file(path) {
            Ok(f) => f,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                summary.failed += 1;
                table.push((
                    stem.clone(),
                    Summary {
                        failed: 1,
                        ..Summary::default()
                    },
                ));
                continue;
            }
        };
        let mut fs = Summary::default();
        for t in file.tests.iter().step_by(stride.max(1)) {
            if let Some(r) = skip_reason(cpu, t, &revoked) {
                *skips.entry(r).or_insert(0) += 1;
                fs.skipped += 1;
                continue;
            }
            let mask = meta.flags_mask_for(stem, &t.bytes);
            let (diffs, events) = match judge(cpu, t, mask) {
                Verdict::Pass => {
                    fs.passed += 1;
                    continue;
                }
                Verdict::Difference(mut r) => {
                    r.sort();
                    *rules.entry(r).or_insert(0) += 1;
                    fs.differences += 1;
                    continue;
                }
                Verdict::Fail(d, e) => (d, e),
            };
            fs.failed += 1;
            if summary.failed + fs.failed <= details {
                let bytes: Vec<String> = t.bytes.iter().map(|b| format!("{b:02X}")).collect();
                let _ = writeln!(
                    out,
                    "MISMATCH {stem} #{}: {}    [{}]",
                    t.index,
                    t.name,
                    bytes.join(" ")
                );
                for d in diffs {
                    let _ = writeln!(out, "  - {d}");
                }
                let expected = t.exception.map(|e| event_name(e.number));
                let got: Vec<String> = events
                    .iter()
                    .map(|e| format!("{} at {:04x}:{:04x}", event_name(e.vector), e.cs, e.ip))
                    .collect();
                let _ = writeln!(
                    out,
                    "  expected exception: {}; CPU delivered: [{}]",
                    expected.unwrap_or_else(|| "none".into()),
                    got.join(", ")
                );
            }
        }
        summary.add(fs);
        table.push((stem.clone(), fs));
    }
    let _ = writeln!(
        out,
        "{:<8} {:>7} {:>7} {:>7} {:>8} {:>7}",
        "file", "tests", "passed", "failed", "286-diff", "skipped"
    );
    for (stem, s) in &table {
        let n = s.passed + s.failed + s.differences + s.skipped;
        let _ = writeln!(
            out,
            "{stem:<8} {n:>7} {:>7} {:>7} {:>8} {:>7}",
            s.passed, s.failed, s.differences, s.skipped
        );
    }
    for (r, n) in &rules {
        let names: Vec<&str> = r.iter().map(|d| d.name()).collect();
        let _ = writeln!(out, "286-vs-386 difference {n}: {}", names.join(" + "));
    }
    for d in Diff286::ALL {
        let _ = writeln!(out, "  rule {}: {}", d.name(), d.describe());
    }
    for (r, n) in &skips {
        let _ = writeln!(out, "skipped {n}: {}", r.describe());
    }
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} 286-vs-386 differences, {} skipped",
        summary.passed, summary.failed, summary.differences, summary.skipped
    );
    let _ = writeln!(out, "{} passed, {} failed", summary.passed, summary.failed);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::moo::read_moo_file;
    use std::path::PathBuf;

    fn set_dir() -> Option<PathBuf> {
        let d = PathBuf::from("/work/shared/conformance/singlestep/80286/v1_real_mode");
        if d.is_dir() {
            Some(d)
        } else {
            eprintln!("skipping: {} not present", d.display());
            None
        }
    }

    #[test]
    fn parses_a_real_file() {
        let Some(dir) = set_dir() else { return };
        let f = read_moo_file(&dir.join("00.MOO.gz")).expect("readable");
        assert_eq!(f.cpu, "C286");
        assert_eq!(f.version, (1, 0));
        assert_eq!(f.header_count, 2000);
        assert_eq!(f.tests.len(), 2000);
        assert_eq!(f.mnemonic, "add");
        let t = &f.tests[0];
        assert_eq!(t.index, 0);
        assert_eq!(t.name, "add [bx+0Eh],bl");
        assert_eq!(t.bytes[0], 0x00);
        assert_eq!(*t.bytes.last().expect("bytes"), 0xF4);
        assert_eq!(t.init.regs.mask, 0x3FFF);
        assert!(!t.init.ram.is_empty());
        assert!(t.fina.regs.mask & (1 << 12) != 0, "IP always changes");
        assert_eq!(f.tests[1999].index, 1999);
        assert!(f.tests.iter().all(|t| t.hash != [0; 20]));
    }

    /// Every file of the set parses, its test count matches its header, and the total
    /// is the README's 615,000; every file has a metadata entry.
    #[test]
    fn all_files_parse() {
        let Some(dir) = set_dir() else { return };
        let meta = Metadata::load(&dir.join("metadata.json")).expect("metadata");
        let mut total = 0;
        let mut files = 0;
        for e in std::fs::read_dir(&dir).expect("dir") {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let Some(stem) = name.strip_suffix(".MOO.gz") else {
                continue;
            };
            let f = read_moo_file(&path).expect("parses");
            assert_eq!(f.tests.len() as u32, f.header_count, "{name}");
            for t in &f.tests {
                assert!(
                    meta.lookup(stem, &t.bytes).is_some(),
                    "{stem} #{} not in metadata",
                    t.index
                );
            }
            total += f.tests.len();
            files += 1;
        }
        assert_eq!(files, 325);
        assert_eq!(total, 615_000);
    }

    #[test]
    fn metadata_masks() {
        let Some(dir) = set_dir() else { return };
        let m = Metadata::load(&dir.join("metadata.json")).expect("metadata");
        assert_eq!(m.flags_mask("00"), 0xFFFF);
        assert_eq!(m.flags_mask("08"), 0xFFEF);
        assert_eq!(m.flags_mask("F7.6"), 0xF72A);
        assert_eq!(m.flags_mask("D3.4"), 0xF7EE);
    }

    /// A CPU that "executes" by replaying the expected final state: every test must
    /// pass, proving the harness's merge of INIT/FINA and its masks are consistent.
    struct Replay {
        expected: Option<(Regs286, HashMap<u32, u8>)>,
    }

    impl RealModeCpu for Replay {
        fn run_test(&mut self, regs: &Regs286, _ram: &[(u32, u8)]) -> RealModeResult {
            let (r, _) = self.expected.clone().unwrap_or((*regs, HashMap::new()));
            RealModeResult {
                regs: r,
                halted: true,
                events: Vec::new(),
            }
        }
        fn read_byte(&mut self, addr: u32) -> u8 {
            self.expected
                .as_ref()
                .and_then(|e| e.1.get(&addr).copied())
                .unwrap_or(0)
        }
    }

    #[test]
    fn replayed_expectations_pass_and_a_wrong_register_fails() {
        let Some(dir) = set_dir() else { return };
        let f = read_moo_file(&dir.join("F7.6.MOO.gz")).expect("readable");
        let mut cpu = Replay { expected: None };
        let mut with_exception = 0;
        for t in f.tests.iter().take(300) {
            let mut regs = t.init.regs.regs;
            regs.flags &= 0x0FFF;
            for i in 0..14 {
                if t.fina.regs.mask & (1 << i) != 0 {
                    if let (Some(r), Some(v)) = (regs.get_mut(i), t.fina.regs.regs.get(i)) {
                        *r = v;
                    }
                }
            }
            let ram: HashMap<u32, u8> = t.fina.ram.iter().copied().collect();
            cpu.expected = Some((regs, ram.clone()));
            assert!(run_one(&mut cpu, t, 0xF72A).is_empty(), "test {}", t.index);
            // Undefined flags (SF here) may differ.
            let mut r2 = regs;
            r2.flags ^= 0x0080;
            cpu.expected = Some((r2, ram.clone()));
            assert!(run_one(&mut cpu, t, 0xF72A).is_empty());
            // A wrong AX must fail.
            let mut r3 = regs;
            r3.ax ^= 1;
            cpu.expected = Some((r3, ram));
            assert_eq!(run_one(&mut cpu, t, 0xF72A).len(), 1);
            with_exception += t.exception.is_some() as u32;
        }
        assert!(with_exception > 0, "DIV tests include #DE");
    }

    #[test]
    fn directory_run_reports_counts() {
        let Some(dir) = set_dir() else { return };
        let mut cpu = Replay { expected: None };
        let mut out = Vec::new();
        // A CPU that changes nothing: tests whose FINA lists only IP/flags changes
        // still fail on IP, so all must fail, and the totals must add up.
        let n = read_moo_file(&dir.join("F8.MOO.gz"))
            .expect("readable")
            .tests
            .len() as u64;
        assert_eq!(n, 1000, "F8 (CLC) had 1,000 tests upstream");
        let s = run_singlestep_dir(&mut cpu, &dir, Some("F8"), &mut out);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(s.passed + s.failed + s.skipped, n, "{text}");
        assert_eq!(s.failed, n, "{text}");
        assert!(text.contains("\nF8 "), "{text}");
        assert!(text.ends_with("0 passed, 1000 failed\n"), "{text}");
    }

    #[test]
    fn group_mask_falls_back_to_the_modrm_reg_field() {
        let m = Metadata::parse(
            r#"{"opcodes":{"D3":{"reg":{"4":{"flags-mask":63470},"0":{"flags-mask":63487}}},
                "01":{"status":"normal"}}}"#,
        )
        .expect("json");
        // ES: prefix, D3 /4 (shl ax,cl), HLT
        assert_eq!(m.flags_mask_for("D3", &[0x26, 0xD3, 0xE0, 0xF4]), 0xF7EE);
        assert_eq!(m.flags_mask_for("D3", &[0xD3, 0xC0, 0xF4]), 0xF7FF);
        assert_eq!(m.flags_mask_for("D3.4", &[0xD3, 0xC0, 0xF4]), 0xF7EE);
        assert_eq!(m.flags_mask_for("01", &[0x01, 0xC0, 0xF4]), 0xFFFF);
        assert!(Metadata::parse("{}").is_err());
    }

    /// A CPU that implements nothing but answers `implements` as told.
    struct NoX87(bool);

    impl RealModeCpu for NoX87 {
        fn run_test(&mut self, regs: &Regs286, _ram: &[(u32, u8)]) -> RealModeResult {
            RealModeResult {
                regs: *regs,
                halted: false,
                events: Vec::new(),
            }
        }
        fn read_byte(&mut self, _addr: u32) -> u8 {
            0
        }
        fn implements(&mut self, _bytes: &[u8]) -> bool {
            self.0
        }
    }

    #[test]
    fn skip_categories() {
        let wait = MooTest {
            bytes: vec![0x26, 0x9B, 0xF4],
            ..MooTest::default()
        };
        let esc = MooTest {
            bytes: vec![0xD8, 0x07, 0xF4],
            ..MooTest::default()
        };
        let add = MooTest {
            bytes: vec![0x00, 0xC0, 0xF4],
            ..MooTest::default()
        };
        let none = HashSet::new();
        for t in [&wait, &esc] {
            assert_eq!(
                skip_reason(&mut NoX87(false), t, &none),
                Some(SkipReason::NeedsX87)
            );
            assert_eq!(skip_reason(&mut NoX87(true), t, &none), None);
        }
        assert_eq!(skip_reason(&mut NoX87(false), &add, &none), None);
        let mut revoked = HashSet::new();
        revoked.insert(esc.hash_hex());
        assert_eq!(
            skip_reason(&mut NoX87(true), &esc, &revoked),
            Some(SkipReason::Revoked)
        );
        let smsw = MooTest {
            bytes: vec![0x0F, 0x01, 0xE0, 0xF4],
            ..MooTest::default()
        };
        assert_eq!(
            skip_reason(&mut NoX87(true), &smsw, &none),
            Some(SkipReason::DescriptorStore286)
        );
    }
}
