//! Running vx86 as a process for the snapshot tests: the whole of stdout
//! (the guest's serial port with `-nographic`), stderr, the exit status,
//! and the `--state-hash` line.

use std::process::Stdio;

/// One finished vx86 process.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// The `vx86 state hash: ...` line (`--state-hash`).
    pub fn state_hash(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("vx86 state hash: "))
            .unwrap_or_else(|| panic!("no state hash line in stderr:\n{}", self.stderr))
            .to_string()
    }
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs deterministic vx86 (`-icount shift=0,sleep=off`) with `args` to the end.
pub fn run(args: &[&str]) -> Run {
    run_on(super::vx86(), args)
}

/// [`run`] with the vx86 of `cmd` (another host's, [`super::vx86_on`]).
fn run_on(cmd: std::process::Command, args: &[&str]) -> Run {
    run_fed(cmd, args, Stdio::null())
}

/// [`run`] with the file `input` on stdin: with `-nographic` its bytes go
/// to COM1, read while vx86 still builds the machine, so they are queued
/// before the guest's first instruction (at a fixed point of virtual time).
#[allow(dead_code)]
pub fn run_with_input(args: &[&str], input: &std::path::Path) -> Run {
    let file = std::fs::File::open(input).expect("open the input file");
    run_fed(super::vx86(), args, Stdio::from(file))
}

fn run_fed(mut cmd: std::process::Command, args: &[&str], stdin: Stdio) -> Run {
    let out = cmd.args(args).stdin(stdin).output().expect("start vx86");
    Run {
        status: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `args` straight to instruction `n`, and again to `cut` with
/// `--save-on-exit`, then a new process from the snapshot to `n` (the
/// saving and the restoring vx86 may be other hosts', `VX86_SAVE_BIN` and
/// `VX86_RESTORE_BIN`, see [`super::vx86_on`]); asserts
/// that the first part's serial bytes followed by the second's equal the
/// straight run's and that the final state hashes agree. `extra_out` names a
/// file each run writes (a debug console), compared the same way. Returns
/// the straight run.
pub fn assert_restore_matches(
    args: &[&str],
    n: u64,
    cut: u64,
    snap: &std::path::Path,
    extra_out: Option<&std::path::Path>,
) -> Run {
    let read_extra = || extra_out.map(|p| std::fs::read(p).unwrap_or_default());
    let n_s = n.to_string();
    let cut_s = cut.to_string();
    let snap_s = snap.to_str().expect("utf-8 path");
    let with =
        |more: &[&str]| -> Vec<String> { args.iter().chain(more).map(|s| s.to_string()).collect() };

    let a = with(&["--max-insns", &n_s, "--state-hash"]);
    let straight = run(&argv(&a));
    let straight_extra = read_extra();

    let b = with(&["--max-insns", &cut_s, "--save-on-exit", snap_s]);
    let first = run_on(super::vx86_on("VX86_SAVE"), &argv(&b));
    assert_eq!(
        first.status,
        Some(0),
        "saving run failed:\n{}",
        first.stderr
    );
    let first_extra = read_extra();

    let c = with(&["--max-insns", &n_s, "-loadvm", snap_s, "--state-hash"]);
    let second = run_on(super::vx86_on("VX86_RESTORE"), &argv(&c));
    let second_extra = read_extra();

    let mut joined = first.stdout.clone();
    joined.extend_from_slice(&second.stdout);
    assert!(
        joined == straight.stdout,
        "cut at {cut}: serial differs\nstraight:\n{}\nsaved + restored:\n{}\n---\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&straight.stdout),
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout),
        second.stderr
    );
    if let (Some(s), Some(f), Some(r)) = (straight_extra, first_extra, second_extra) {
        let mut j = f;
        j.extend_from_slice(&r);
        assert!(
            j == s,
            "cut at {cut}: debug console differs\nstraight:\n{}\nsaved + restored:\n{}",
            String::from_utf8_lossy(&s),
            String::from_utf8_lossy(&j)
        );
    }
    assert_eq!(
        second.state_hash(),
        straight.state_hash(),
        "cut at {cut}: state at {n} differs"
    );
    assert_eq!(
        second.status, straight.status,
        "exit status\n{}",
        second.stderr
    );
    straight
}
