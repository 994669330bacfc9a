//! System-level conformance: the diagnostic ROMs in `test-roms/sys/` run as
//! the BIOS, print one line per check on port 0xE9, and vx86's output must
//! equal `NAME.expected` byte for byte. The expected files were recorded with
//! Bochs 2.7 (`scripts/bochs-reference.sh`); where vx86 follows the SDM and
//! Bochs does not, the line is vx86's and the next line, `# bochs: ...`,
//! holds what Bochs prints, followed by `# ...` lines giving the SDM
//! reference. When bochs is installed the test re-runs it and checks that it
//! still prints the expected file with those substitutions. A ROM in
//! `RESETS` ends in a triple fault on purpose and reports the reset.

mod common;

use std::path::PathBuf;
use vx86::machine::RunExit;

/// The diagnostic ROMs, each `test-roms/sys/NAME.asm` -> `NAME.bin`.
const ROMS: &[&str] = &[
    "stack", "segments", "paging", "v86", "gates", "faults", "pae", "tasks", "pgcorner", "dfault",
    "flags",
];

/// ROMs that end in a triple fault on purpose: they run without `-no-reboot`
/// (Bochs: `reset_on_triple_fault=1`), and the ROM, started again at the
/// reset vector, finds the mark it left in RAM and reports it.
const RESETS: &[&str] = &["dfault"];

fn sys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-roms/sys")
}

/// (what vx86 must print, what Bochs prints) from an expected file.
fn expectations(text: &str) -> (String, String) {
    let mut vx86: Vec<&str> = Vec::new();
    let mut bochs: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(b) = line.strip_prefix("# bochs: ") {
            bochs.pop();
            bochs.push(b);
        } else if !line.starts_with('#') {
            vx86.push(line);
            bochs.push(line);
        }
    }
    let join = |v: Vec<&str>| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    (join(vx86), join(bochs))
}

fn expected(name: &str) -> String {
    let p = sys_dir().join(format!("{name}.expected"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// First differing line, for a readable failure.
fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}: expected {w:?}, got {g:?}", i + 1);
        }
    }
    format!(
        "{} expected lines, {} printed",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn vx86_matches_the_recorded_outputs() {
    for name in ROMS {
        let (want, _) = expectations(&expected(name));
        let (exit, out) = common::run_bios_rom_with(
            &sys_dir().join(format!("{name}.bin")),
            50_000_000,
            !RESETS.contains(name),
        );
        let got = String::from_utf8_lossy(&out);
        assert_eq!(
            exit,
            RunExit::HaltedForever,
            "{name}: the ROM ends with CLI;HLT\n{got}"
        );
        assert!(
            want == got,
            "{name}: {}\n--- vx86 printed:\n{got}",
            first_difference(&want, &got)
        );
    }
}

/// With `-no-reboot` the triple fault ends the run: vx86 reports it, and the
/// ROM has printed everything up to it.
#[test]
fn triple_fault_with_no_reboot_ends_the_run() {
    for name in RESETS {
        let (want, _) = expectations(&expected(name));
        let (exit, out) = common::run_bios_rom(&sys_dir().join(format!("{name}.bin")), 50_000_000);
        let got = String::from_utf8_lossy(&out);
        assert_eq!(exit, RunExit::TripleFault, "{name}:\n{got}");
        let before = want
            .split_inclusive('\n')
            .take_while(|l| *l != "triple fault next\n")
            .collect::<String>()
            + "triple fault next\n";
        assert!(
            want.contains("triple fault next\n") && got == before,
            "{name}: {}\n--- vx86 printed:\n{got}",
            first_difference(&before, &got)
        );
    }
}

#[test]
fn bochs_still_prints_the_recorded_outputs() {
    if !common::have_program("bochs", "--help") {
        eprintln!(
            "SKIPPED sys_roms::bochs_still_prints_the_recorded_outputs: bochs is not installed"
        );
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bochs-reference.sh");
    for name in ROMS {
        let (_, want) = expectations(&expected(name));
        let out = std::process::Command::new(&script)
            .arg(sys_dir().join(format!("{name}.bin")))
            .output()
            .expect("run scripts/bochs-reference.sh");
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: bochs-reference.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            want == got,
            "{name}: Bochs no longer prints the recorded output: {}\n--- Bochs printed:\n{got}",
            first_difference(&want, &got)
        );
    }
}

#[test]
fn committed_sys_roms_match_their_sources() {
    if !common::have_program("nasm", "-v") {
        eprintln!(
            "SKIPPED sys_roms::committed_sys_roms_match_their_sources: nasm is not installed"
        );
        return;
    }
    let dir = sys_dir();
    let tmp = common::TempDir::new("sys-roms");
    for name in ROMS {
        let out = tmp.join(&format!("{name}.bin"));
        let st = std::process::Command::new("nasm")
            .args(["-f", "bin", "-i"])
            .arg(format!("{}/", dir.display()))
            .arg("-o")
            .arg(&out)
            .arg(dir.join(format!("{name}.asm")))
            .output()
            .expect("run nasm");
        assert!(
            st.status.success(),
            "nasm failed on {name}.asm: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let fresh = std::fs::read(&out).expect("built");
        let committed = std::fs::read(dir.join(format!("{name}.bin"))).expect("committed");
        assert!(
            fresh == committed,
            "test-roms/sys/{name}.bin is stale: rebuild with nasm -f bin -i test-roms/sys/ -o test-roms/sys/{name}.bin test-roms/sys/{name}.asm"
        );
    }
}
