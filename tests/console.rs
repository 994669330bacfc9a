//! The serial console on a real terminal, as a user types into it: vx86
//! runs on a pseudo-terminal (util-linux `script` makes one and makes it the
//! controlling terminal), `-nographic` puts COM1 on it, and
//! test-roms/serecho.bin answers every byte it receives with `[XX]`.
//!
//! What a raw terminal must do (QEMU's `-nographic` behaviour): keys reach
//! the guest one by one without Enter and without the terminal echoing them,
//! Ctrl-C is the byte 03h for the guest (not a signal that kills vx86),
//! `Ctrl-a Ctrl-a` sends one 01h, `Ctrl-a h` prints the escape help, and
//! `Ctrl-a x` ends the run with status 0.
//!
//! The same test proves the Windows console: scripts/cross-hosts.sh runs it
//! with `VX86_TEST_RUNNER=wine` and `VX86_TEST_BIN=.../vx86.exe`, and Wine
//! gives the Windows process a console on the terminal, so vx86's
//! `SetConsoleMode` raw mode is what the bytes go through.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A vx86 on a terminal, and everything it has printed so far.
struct Terminal {
    child: Child,
    input: ChildStdin,
    output: Arc<Mutex<Vec<u8>>>,
}

/// Quotes a word for the shell `script -c` runs the command with.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Drops ECMA-48 control sequences (`ESC [` parameters and a final byte,
/// `ESC ]` strings up to BEL or `ESC \\`, and two-byte `ESC x`).
fn strip_control_sequences(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0x1b {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 2;
                while i < bytes.len() && bytes[i] != 0x07 && bytes[i] != 0x1b {
                    i += 1;
                }
                i += if bytes.get(i) == Some(&0x1b) { 2 } else { 1 };
            }
            _ => i += 2,
        }
    }
    out
}

impl Terminal {
    /// vx86 with `args` on a new terminal.
    fn start(args: &[&str]) -> Terminal {
        let vx86 = common::vx86_host_time();
        let mut words: Vec<String> = std::iter::once(vx86.get_program())
            .chain(vx86.get_args())
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        words.extend(args.iter().map(|a| a.to_string()));
        let cmd: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        // -q: no start/done lines; -f: flush at once; -e: vx86's exit status;
        // the typescript goes nowhere. script(1) runs the command with
        // `$SHELL -c`; `exec` makes vx86 the terminal's foreground process
        // itself, because a shell that waits for it (dash does) is killed by
        // the terminal's SIGINT and script then reports 130 whatever vx86 did.
        let line = format!("exec {}", cmd.join(" "));
        let mut child = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start script(1) from util-linux");
        let input = child.stdin.take().expect("script's stdin");
        let mut stdout = child.stdout.take().expect("script's stdout");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut out) = sink.lock() {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        });
        Terminal {
            child,
            input,
            output,
        }
    }

    /// What the terminal shows, without terminal control sequences: Wine's
    /// console draws on a Unix terminal with cursor hide/show sequences
    /// around each character.
    fn text(&self) -> String {
        let raw = self.output.lock().expect("output lock").clone();
        String::from_utf8_lossy(&strip_control_sequences(&raw)).into_owned()
    }

    /// Waits until the terminal shows `what` after the first `READY`; returns
    /// everything after `READY`.
    fn wait_for(&mut self, what: &str) -> String {
        let limit = Duration::from_secs(30 * common::time_factor() as u64);
        let start = Instant::now();
        loop {
            let text = self.text();
            if let Some(i) = text.find("READY") {
                let after = &text[i + "READY".len()..];
                if after.contains(what) {
                    return after.to_string();
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vx86 ended ({status}) before showing {what:?}; terminal: {text:?}");
            }
            assert!(
                start.elapsed() < limit,
                "no {what:?} on the terminal after {limit:?}; terminal: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).expect("type into the terminal");
        self.input.flush().expect("flush the terminal input");
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn rom() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-roms/serecho.bin")
        .to_string_lossy()
        .into_owned()
}

/// Waits up to the test's limit for vx86 to end.
fn wait_exit(term: &mut Terminal, why: &str) -> std::process::ExitStatus {
    let limit = Duration::from_secs(30 * common::time_factor() as u64);
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = term.child.try_wait() {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "{why} did not end vx86; terminal: {:?}",
            term.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keys_reach_the_guest_raw_and_ctrl_a_x_quits() {
    if !common::have_program("script", "--version") {
        eprintln!("SKIPPED: needs script(1) from util-linux for a terminal");
        return;
    }
    let rom = rom();
    let mut term = Terminal::start(&["-bios", &rom, "-M", "isapc", "-m", "32M", "-nographic"]);
    term.wait_for("\n");

    // Two keys without Enter reach the guest at once, and the terminal does
    // not echo them (the guest's answer is the only thing shown).
    term.type_bytes(b"ab");
    let after = term.wait_for("[61][62]");
    assert!(
        after
            .trim_start_matches(['\r', '\n'])
            .starts_with("[61][62]"),
        "the terminal echoed the keys or the guest got something else: {after:?}"
    );

    // Ctrl-C is a byte for the guest; vx86 keeps running.
    term.type_bytes(b"\x03");
    term.wait_for("[61][62][03]");
    assert!(
        matches!(term.child.try_wait(), Ok(None)),
        "Ctrl-C ended vx86 instead of reaching the guest"
    );

    // Ctrl-a Ctrl-a sends one Ctrl-a; Ctrl-a h prints the help and sends
    // nothing; a key after it still arrives alone.
    term.type_bytes(b"\x01\x01");
    term.wait_for("[03][01]");
    term.type_bytes(b"\x01h");
    term.wait_for("C-a x    exit emulator");
    term.type_bytes(b"z");
    let after = term.wait_for("[7A]");
    assert!(
        after.contains("[03][01]") && !after.contains("[68]"),
        "Ctrl-a h reached the guest: {after:?}"
    );

    // Ctrl-a x ends the run, status 0.
    term.type_bytes(b"\x01x");
    let status = wait_exit(&mut term, "Ctrl-a x");
    assert!(
        status.success(),
        "Ctrl-a x: {status}; terminal: {:?}",
        term.text()
    );
    assert!(
        !term.text().contains("[78]"),
        "the x of Ctrl-a x reached the guest"
    );
}

/// When COM1 is not on the terminal, Ctrl-C there is the terminal's
/// interrupt: vx86 ends the run as QEMU does, but cleanly (disks flushed,
/// the `--stats` line printed on the way out), not killed. On Windows this
/// is the console control handler.
#[test]
fn ctrl_c_without_a_serial_console_ends_the_run_cleanly() {
    if !common::have_program("script", "--version") {
        eprintln!("SKIPPED: needs script(1) from util-linux for a terminal");
        return;
    }
    let dir = common::TempDir::new("console-ctrlc");
    // Not "com1.txt": COM1 is a device name on Windows, whatever the extension.
    let serial = dir.join("serial.txt");
    let serial_arg = format!("file:{}", serial.to_string_lossy());
    let rom = rom();
    let mut term = Terminal::start(&[
        "-bios",
        &rom,
        "-M",
        "isapc",
        "-m",
        "32M",
        "-display",
        "none",
        "-serial",
        &serial_arg,
        "--stats",
    ]);
    let limit = Duration::from_secs(30 * common::time_factor() as u64);
    let start = Instant::now();
    while !std::fs::read(&serial).is_ok_and(|b| b.starts_with(b"READY")) {
        assert!(
            start.elapsed() < limit,
            "the ROM never printed READY to {serial:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    term.type_bytes(b"\x03");
    let status = wait_exit(&mut term, "Ctrl-C");
    let shown = term.text();
    assert!(status.success(), "Ctrl-C: {status}; terminal: {shown:?}");
    assert!(
        shown.contains("vx86 stats:"),
        "vx86 did not end its run cleanly (no --stats line): {shown:?}"
    );
}
