//! The monitors from outside, as a user or a tool drives them: vx86 runs
//! `test-roms/monitor.bin` (long mode, known registers, a pattern at 0x5000
//! also mapped at 1 GiB, a VBE gradient, scan codes echoed to port 0xE9, a
//! counter at 0x6000 that a running machine increments) with `-monitor` and
//! `-qmp` on unix sockets or TCP; the tests talk HMP and QMP to it and check
//! what comes back against what the ROM did. Every wait has a time limit.
// Most tests use unix sockets; elsewhere only the TCP one runs.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test-roms/monitor.bin");
/// Longest wait for anything (a socket, an answer, the ROM's marker).
const LIMIT: Duration = Duration::from_secs(20);

/// A running vx86, killed if a test fails before it quits.
struct Vm {
    child: Child,
    debugcon: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Vm {
    /// Starts the ROM with `extra` arguments; waits for its "ready" line.
    fn start(dir: &common::TempDir, extra: &[&str]) -> Vm {
        let vm = Vm::start_rom(dir, ROM, extra);
        vm.wait_debugcon(b"ready\n");
        vm
    }

    /// Starts the BIOS image `rom` with `extra` arguments.
    fn start_rom(dir: &common::TempDir, rom: &str, extra: &[&str]) -> Vm {
        let debugcon = dir.join("debugcon");
        let child = common::vx86()
            .args(["-bios", rom, "-display", "none", "-serial", "none"])
            .arg("-debugcon")
            .arg(format!("file:{}", debugcon.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vx86");
        Vm { child, debugcon }
    }

    fn debugcon(&self) -> Vec<u8> {
        std::fs::read(&self.debugcon).unwrap_or_default()
    }

    /// Waits until the debug console starts with `want`.
    fn wait_debugcon(&self, want: &[u8]) {
        let start = Instant::now();
        while !self.debugcon().starts_with(want) {
            assert!(
                start.elapsed() < LIMIT,
                "debug console: wanted {want:?}, have {:?}",
                self.debugcon()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for vx86 to exit; its status.
    fn wait_exit(&mut self) -> i32 {
        self.wait_exit_within(LIMIT)
    }

    fn wait_exit_within(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < limit, "vx86 did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Connects to a unix socket once vx86 listens on it.
#[cfg(unix)]
fn connect_unix(path: &Path) -> Box<dyn Stream> {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(path) {
            s.set_read_timeout(Some(LIMIT)).unwrap();
            return Box::new(s);
        }
        assert!(
            start.elapsed() < LIMIT,
            "{}: nobody listens",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect_tcp(port: u16) -> Box<dyn Stream> {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(LIMIT)).unwrap();
            return Box::new(s);
        }
        assert!(start.elapsed() < LIMIT, "port {port}: nobody listens");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HMP client.
struct Hmp(Box<dyn Stream>);

impl Hmp {
    fn new(s: Box<dyn Stream>) -> Hmp {
        let mut h = Hmp(s);
        let banner = h.until_prompt();
        assert!(banner.contains("monitor - type 'help'"), "{banner:?}");
        h
    }

    /// Reads up to the next "(qemu) " prompt; the text before it.
    fn until_prompt(&mut self) -> String {
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        while !buf.ends_with(b"(qemu) ") {
            let n = self.0.read(&mut b).expect("monitor answer in time");
            assert!(
                n > 0,
                "monitor closed; got {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&b[..n]);
        }
        buf.truncate(buf.len() - 7);
        String::from_utf8(buf).expect("UTF-8").replace("\r\n", "\n")
    }

    fn cmd(&mut self, line: &str) -> String {
        self.0.write_all(format!("{line}\n").as_bytes()).unwrap();
        self.until_prompt()
    }

    /// The counter the ROM increments at 0x6000.
    fn counter(&mut self) -> u64 {
        let out = self.cmd("xp /1xg 0x6000");
        let hex = out
            .trim()
            .strip_prefix("0000000000006000: 0x")
            .unwrap_or_else(|| panic!("xp answer {out:?}"));
        u64::from_str_radix(hex, 16).expect("hex")
    }

    /// Waits until the counter moves past `from`.
    fn wait_counter_past(&mut self, from: u64) -> u64 {
        let start = Instant::now();
        loop {
            let c = self.counter();
            if c > from {
                return c;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the guest does not run (counter {c})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sock_args(dir: &common::TempDir) -> (PathBuf, String) {
    let p = dir.join("hmp.sock");
    let arg = format!("unix:{},server,nowait", p.display());
    (p, arg)
}

#[cfg(unix)]
#[test]
fn stop_cont_status_and_registers_agree_with_the_cpu() {
    let dir = common::TempDir::new("mon-stop");
    let (sock, arg) = sock_args(&dir);
    let mut vm = Vm::start(&dir, &["-monitor", &arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    assert_eq!(h.cmd("info status"), "VM status: running\n");
    let c0 = h.counter();
    h.wait_counter_past(c0);

    assert_eq!(h.cmd("stop"), "");
    assert_eq!(h.cmd("info status"), "VM status: paused\n");
    let stopped = h.counter();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.counter(), stopped, "a stopped guest does not run");

    // The ROM's values, in QEMU's 64-bit layout.
    let regs = h.cmd("info registers");
    for line in [
        "RAX=1111111111111111 RBX=2222222222222222 RCX=3333333333333333 RDX=4444444444444444",
        "RSI=5555555555555555 RDI=6666666666666666 RBP=7777777777777777 RSP=0000000000090000",
        "R8 =8888888888888888 R9 =9999999999999999 R10=aaaaaaaaaaaaaaaa R11=bbbbbbbbbbbbbbbb",
        "R12=cccccccccccccccc R13=dddddddddddddddd R14=eeeeeeeeeeeeeeee R15=0123456789abcdef",
        "CS =0018 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]",
        "DS =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
        "IDT=     0000000000004000 00000fff",
        "CR0=e0000011 CR2=0000000000000000 CR3=0000000000001000 CR4=00000020",
        "EFER=0000000000000500",
    ] {
        assert!(
            regs.lines().any(|l| l == line),
            "missing {line:?} in\n{regs}"
        );
    }
    assert!(regs.starts_with("\nCPU#0\n"), "{regs}");
    // Stopped in the ROM's loop: `inc qword [0x6000]` or the `jmp` after it,
    // with interrupts on.
    let rip = regs
        .lines()
        .find_map(|l| l.strip_prefix("RIP="))
        .expect("RIP line");
    let (rip, rest) = rip.split_once(' ').unwrap();
    let rip = u64::from_str_radix(rip, 16).unwrap();
    let insn = h.cmd(&format!("x /1i {rip:#x}"));
    assert!(
        insn.contains("inc ") || insn.contains("jmp "),
        "RIP {rip:#x}: {insn}"
    );
    assert!(rest.starts_with("RFL=0000"), "{rest}");
    let rfl = u64::from_str_radix(&rest[4..12], 16).unwrap();
    assert_ne!(rfl & 0x200, 0, "IF set: {rest}");

    assert_eq!(h.cmd("cont"), "");
    assert_eq!(h.cmd("info status"), "VM status: running\n");
    h.wait_counter_past(stopped);
    assert_eq!(h.cmd("quit"), "");
    assert_eq!(vm.wait_exit(), 0);
    assert!(!sock.exists(), "the socket file goes with the run");
}

#[cfg(unix)]
#[test]
fn x_and_xp_dump_memory_in_qemus_layout() {
    let dir = common::TempDir::new("mon-x");
    let (sock, arg) = sock_args(&dir);
    let mut vm = Vm::start(&dir, &["-monitor", &arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    let words = "0x36387876 0x6e6f6d20 0x726f7469 0x216b6f20\n";
    let words2 = "0xdeadbeef 0x12345678 0xcafef00d 0x0badc0de\n";
    assert_eq!(
        h.cmd("xp /8xw 0x5000"),
        format!("0000000000005000: {words}0000000000005010: {words2}")
    );
    // The ROM maps 1 GiB onto physical 0: `x` walks the page tables.
    assert_eq!(
        h.cmd("x /8xw 0x40005000"),
        format!("0000000040005000: {words}0000000040005010: {words2}")
    );
    assert_eq!(
        h.cmd("xp /8c 0x5000"),
        "0000000000005000: 'v' 'x' '8' '6' ' ' 'm' 'o' 'n'\n"
    );
    assert_eq!(
        h.cmd("xp /2xg 0x5010"),
        "0000000000005010: 0x12345678deadbeef 0x0badc0decafef00d\n"
    );
    assert_eq!(h.cmd("xp /2dh 0x5010"), "0000000000005010: -16657 -8531\n");
    assert_eq!(h.cmd("xp /1uw 0x5014"), "0000000000005014:  305419896\n");
    assert_eq!(h.cmd("xp/3xb 0x5000"), "0000000000005000: 0x76 0x78 0x38\n");
    // Unmapped linear memory (above the ROM's 2 GiB of mappings).
    assert_eq!(h.cmd("x /1xw 0x80000000"), "Cannot access memory\n");
    assert!(h.cmd("x /4z 0x5000").contains("invalid char in format"));
    assert!(h.cmd("xp /4xw").contains("missing address"));
    assert!(h.cmd("x /2i $pc").contains("0x00000000000f"));
    h.cmd("quit");
    assert_eq!(vm.wait_exit(), 0);
}

#[cfg(unix)]
#[test]
fn sendkey_reaches_the_guests_keyboard_controller() {
    let dir = common::TempDir::new("mon-key");
    let (sock, arg) = sock_args(&dir);
    let mut vm = Vm::start(&dir, &["-monitor", &arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    assert_eq!(h.cmd("sendkey ctrl-alt-f1"), "");
    assert_eq!(h.cmd("sendkey a 100"), "");
    // Set 1 (the 8042 translates): make codes in order, breaks in reverse.
    let want: &[u8] = b"ready\n\x1d\x38\x3b\xbb\xb8\x9d\x1e\x9e";
    vm.wait_debugcon(want);
    assert_eq!(vm.debugcon(), want);
    assert!(h.cmd("sendkey ctrl-bogus").contains("unknown key: 'bogus'"));
    h.cmd("quit");
    assert_eq!(vm.wait_exit(), 0);
}

#[cfg(unix)]
#[test]
fn screendump_equals_screenshot_on_exit() {
    let dir = common::TempDir::new("mon-shot");
    let (sock, arg) = sock_args(&dir);
    let at_exit = dir.join("exit.png");
    let dumped = dir.join("dump.png");
    let ppm = dir.join("dump.ppm");
    let mut vm = Vm::start(
        &dir,
        &[
            "-monitor",
            &arg,
            "--screenshot-on-exit",
            at_exit.to_str().unwrap(),
        ],
    );
    let mut h = Hmp::new(connect_unix(&sock));
    h.cmd("stop");
    assert_eq!(h.cmd(&format!("screendump {}", dumped.display())), "");
    assert_eq!(h.cmd(&format!("screendump {}", ppm.display())), "");
    h.cmd("quit");
    assert_eq!(vm.wait_exit(), 0);
    let (w, ht, px) = common::read_png(&dumped);
    assert_eq!((w, ht), (64, 48), "the ROM's VBE mode");
    assert_eq!(common::read_png(&at_exit), (w, ht, px.clone()));
    // The ROM's gradient: pixel i is i * 0x010305 (24 bits).
    for (i, &p) in px.iter().enumerate() {
        assert_eq!(
            p,
            (i as u32).wrapping_mul(0x010305) & 0xff_ffff,
            "pixel {i}"
        );
    }
    // QEMU's default format, PPM, carries the same pixels.
    let data = std::fs::read(&ppm).unwrap();
    let header = b"P6\n64 48\n255\n";
    assert!(data.starts_with(header));
    let rgb: Vec<u32> = data[header.len()..]
        .chunks_exact(3)
        .map(|c| u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]))
        .collect();
    assert_eq!(rgb, px);
}

#[cfg(unix)]
#[test]
fn garbage_and_abrupt_disconnects_leave_the_guest_running() {
    let dir = common::TempDir::new("mon-junk");
    let (sock, arg) = sock_args(&dir);
    let mut vm = Vm::start(&dir, &["-monitor", &arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    assert_eq!(h.cmd("nonsense 1 2 3"), "unknown command: 'nonsense'\n");
    assert!(h.cmd("info").contains("usage"));
    assert!(h.cmd("info bogus").contains("info bogus"));
    assert!(h.cmd("system_powerdown").contains("not supported"));
    // ACPI hotplug: usage and refusals are one line each on a machine
    // without it (tests/acpi_guest.rs drives the real thing).
    for bad in [
        "drive_add",
        "drive_add 0 file=/nonexistent.img,if=none,id=d",
        "drive_add 0 file=/nonexistent.img,if=ide,id=d",
        "device_add",
        "device_add virtio-blk-pci",
        "device_add virtio-blk-pci,drive=d,bogus=1",
        "device_add virtio-blk-pci,drive=d",
        "device_del",
        "device_del nosuch",
    ] {
        let out = h.cmd(bad);
        assert_eq!(out.lines().count(), 1, "{bad}: {out:?}");
    }
    assert!(h.cmd("\u{1}\u{ff}\u{7}}{][").contains("unknown command"));
    let long = "x".repeat(10_000);
    assert!(h.cmd(&long).contains("longer than"));
    assert_eq!(h.cmd(""), "");
    // Binary junk that is not UTF-8.
    h.0.write_all(&[0xff, 0xfe, 0x00, 0x80, b'\n']).unwrap();
    assert!(h.until_prompt().contains("unknown command"));
    // Half a command, then gone; a whole one, gone before the answer.
    {
        let mut s = connect_unix(&sock);
        s.write_all(b"info regis").unwrap();
    }
    {
        let mut s = connect_unix(&sock);
        s.write_all(b"info registers\nx /100000xg 0\n").unwrap();
    }
    {
        // A client that stops the machine and vanishes: it stays stopped (as
        // QEMU) until another client continues it.
        let mut s = Hmp::new(connect_unix(&sock));
        s.0.write_all(b"stop\n").unwrap();
        s.until_prompt();
    }
    assert_eq!(h.cmd("info status"), "VM status: paused\n");
    h.cmd("cont");
    let c = h.counter();
    h.wait_counter_past(c);
    assert_eq!(h.cmd("info status"), "VM status: running\n");
    h.cmd("quit");
    assert_eq!(vm.wait_exit(), 0);
}

/// A QMP client: one JSON object per line each way.
struct Qmp(std::io::BufReader<Box<dyn Stream>>);

impl Qmp {
    fn read(&mut self) -> serde_json::Value {
        use std::io::BufRead;
        let mut line = String::new();
        let n = self.0.read_line(&mut line).expect("QMP answer in time");
        assert!(n > 0, "QMP connection closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn send(&mut self, text: &str) -> serde_json::Value {
        self.0.get_mut().write_all(text.as_bytes()).unwrap();
        self.0.get_mut().write_all(b"\n").unwrap();
        self.read()
    }
}

#[cfg(unix)]
#[test]
fn qmp_greets_negotiates_and_answers() {
    use serde_json::json;
    let dir = common::TempDir::new("mon-qmp");
    let qsock = dir.join("qmp.sock");
    let arg = format!("unix:{},server,nowait", qsock.display());
    let mut vm = Vm::start(&dir, &["-qmp", &arg]);
    let mut q = Qmp(std::io::BufReader::new(connect_unix(&qsock)));
    let hello = q.read();
    assert_eq!(hello["QMP"]["capabilities"], json!([]));
    assert!(hello["QMP"]["version"]["qemu"]["major"].is_u64(), "{hello}");

    let v = q.send(r#"{"execute": "query-status"}"#);
    assert_eq!(v["error"]["class"], "CommandNotFound", "{v}");
    assert_eq!(
        q.send(r#"{"execute": "qmp_capabilities"}"#),
        json!({"return": {}})
    );
    assert_eq!(
        q.send(r#"{"execute": "query-status", "id": "a1"}"#),
        json!({"return": {"status": "running", "singlestep": false, "running": true}, "id": "a1"})
    );
    assert_eq!(q.send(r#"{"execute": "stop"}"#), json!({"return": {}}));
    assert_eq!(
        q.send(r#"{"execute": "query-status"}"#)["return"]["status"],
        "paused"
    );
    let v = q.send(
        r#"{"execute": "human-monitor-command", "arguments": {"command-line": "info registers"}}"#,
    );
    let text = v["return"].as_str().expect("HMP text");
    assert!(
        text.contains("RAX=1111111111111111 RBX=2222222222222222"),
        "{text}"
    );
    assert!(text.contains("\r\n"), "HMP's line ends");
    let v = q.send(
        r#"{"execute": "human-monitor-command", "arguments": {"command-line": "xp /2xw 0x5010"}}"#,
    );
    assert_eq!(v["return"], "0000000000005010: 0xdeadbeef 0x12345678\r\n");
    // Errors in QMP's format; the connection and the guest carry on.
    assert_eq!(q.send("not json at all")["error"]["class"], "GenericError");
    assert_eq!(q.send(r#"{"execute": }"#)["error"]["class"], "GenericError");
    assert_eq!(
        q.send(r#"{"execute": "no-such-command"}"#)["error"]["desc"],
        "The command no-such-command has not been found"
    );
    assert_eq!(
        q.send(r#"{"arguments": {}}"#)["error"]["class"],
        "GenericError"
    );
    // No ACPI on this machine: QMP's error objects.
    let v = q.send(r#"{"execute": "system_powerdown"}"#);
    assert_eq!(v["error"]["class"], "GenericError", "{v}");
    let v = q.send(r#"{"execute": "device_add", "arguments": {"driver": "virtio-blk-pci", "drive": "d", "id": "x"}}"#);
    assert_eq!(v["error"]["class"], "GenericError", "{v}");
    let v = q.send(r#"{"execute": "device_del", "arguments": {"id": "x"}}"#);
    assert_eq!(v["error"]["class"], "GenericError", "{v}");
    let shot = dir.join("q.png");
    let v = q.send(&json!({"execute": "screendump", "arguments": {"filename": shot}}).to_string());
    assert_eq!(v, json!({"return": {}}));
    assert_eq!(common::read_png(&shot).0, 64);
    assert_eq!(q.send(r#"{"execute": "cont"}"#), json!({"return": {}}));
    assert_eq!(
        q.send(r#"{"execute": "query-status"}"#)["return"]["running"],
        true
    );
    assert_eq!(
        q.send(r#"{"execute": "system_reset"}"#),
        json!({"return": {}})
    );
    // After the reset the ROM runs again from the reset vector.
    vm.wait_debugcon(b"ready\nready\n");
    assert_eq!(q.send(r#"{"execute": "quit"}"#), json!({"return": {}}));
    assert_eq!(vm.wait_exit(), 0);
    assert!(!qsock.exists());
}

#[test]
fn monitor_on_tcp_and_on_stdio() {
    let dir = common::TempDir::new("mon-tcp");
    // A free port: bound, noted, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let arg = format!("tcp:127.0.0.1:{port},server,nowait");
    let mut vm = Vm::start(&dir, &["-monitor", &arg]);
    let mut h = Hmp::new(connect_tcp(port));
    assert_eq!(h.cmd("info status"), "VM status: running\n");
    h.cmd("quit");
    assert_eq!(vm.wait_exit(), 0);

    // -monitor stdio, commands from a pipe: the answers on stdout.
    let out = common::vx86()
        .args(["-bios", ROM, "-display", "none", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"stop\ninfo status\nxp /1xw 0x5010\nquit\n")?;
            c.wait_with_output()
        })
        .expect("run vx86");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(qemu) VM status: paused\n(qemu) "), "{text}");
    // The ROM may not have copied its pattern yet when it stops: only the
    // layout is checked.
    assert!(text.contains("0000000000005010: 0x"), "{text}");
}

/// `-nographic` on a terminal: `Ctrl-a c` switches the keyboard to the
/// monitor and back, `Ctrl-a x` still quits. vx86 runs on a pseudo-terminal.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_a_c_switches_the_nographic_terminal_to_the_monitor() {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors through valid pointers; the
    // name, termios and window-size arguments may be null.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned by these files.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let mut child = common::vx86()
        .args(["-bios", ROM, "-nographic"])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .expect("start vx86");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 4096];
        while let Ok(n) = reader.read(&mut b) {
            if n == 0 || tx.send(b[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut expect = |want: &str| {
        let start = Instant::now();
        while !seen.contains(want) {
            let left = LIMIT.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("terminal: wanted {want:?}, have {seen:?}"),
            }
        }
        seen = seen.split_once(want).unwrap().1.to_string();
    };
    let mut term = master;
    term.write_all(b"\x01c").unwrap();
    expect("monitor - type 'help'");
    expect("(qemu) ");
    // Typed text is echoed; Backspace erases.
    term.write_all(b"info statusz\x7f\r").unwrap();
    expect("VM status: running");
    expect("(qemu) ");
    term.write_all(b"xp /2xw 0x5010\r").unwrap();
    expect("0000000000005010: 0xdeadbeef 0x12345678");
    // Back to the console, and out.
    term.write_all(b"\x01c\x01x").unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("Ctrl-a x did not quit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// The Debian container guest under the monitor: stopped mid-boot its serial
/// output does not advance, `info registers` shows a 64-bit kernel, and
/// after `cont` it boots to the end.
#[cfg(unix)]
#[test]
fn debian_guest_stops_and_continues() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let Some(g) = common::guest::need(&["vmlinuz", "initramfs-ctr.cpio.gz"]) else {
        return;
    };
    let dir = common::TempDir::new("mon-debian");
    let (sock, arg) = sock_args(&dir);
    let (k, i) = (g.join("vmlinuz"), g.join("initramfs-ctr.cpio.gz"));
    let mut child = common::vx86()
        .args(["-m", "512M", "-kernel", k.to_str().unwrap()])
        .args(["-initrd", i.to_str().unwrap()])
        .args([
            "-append",
            "console=ttyS0 panic=-1",
            "-nographic",
            "-no-reboot",
        ])
        .args(["-monitor", &arg])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vx86");
    let serial = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().unwrap();
    let s2 = serial.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out)
            .split(b'\n')
            .map_while(Result::ok)
        {
            let mut s = s2.lock().unwrap();
            s.push_str(&String::from_utf8_lossy(&line));
            s.push('\n');
        }
    });
    let limit = Duration::from_secs(180) * common::time_factor();
    let wait_for = |marker: &str| {
        let start = Instant::now();
        while !serial.lock().unwrap().contains(marker) {
            assert!(
                start.elapsed() < limit,
                "{marker} missing in:\n{}",
                serial.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut vm = Vm {
        child,
        debugcon: dir.join("none"),
    };
    let mut h = Hmp::new(connect_unix(&sock));
    wait_for("GUEST-BOOT-OK");
    assert_eq!(h.cmd("stop"), "");
    // Output already in the pipe may still arrive: let it settle first.
    std::thread::sleep(Duration::from_millis(300));
    let frozen = serial.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        serial.lock().unwrap().len(),
        frozen,
        "a stopped guest prints nothing"
    );
    assert_eq!(h.cmd("info status"), "VM status: paused\n");
    let regs = h.cmd("info registers");
    assert!(
        regs.contains("\nRAX=") && regs.contains(" CS64 ["),
        "{regs}"
    );
    assert!(
        regs.contains("EFER=0000000000000d01"),
        "LME|LMA|NXE|SCE: {regs}"
    );
    assert_eq!(h.cmd("cont"), "");
    wait_for("GUEST-DONE");
    assert_eq!(vm.wait_exit_within(limit), 0);
}

/// QEMU's long form: `-chardev socket,...` with `-mon chardev=ID[,mode=...]`.
#[cfg(unix)]
#[test]
fn mon_on_socket_chardevs() {
    let dir = common::TempDir::new("mon-chardev");
    let (h_sock, q_sock) = (dir.join("h.sock"), dir.join("q.sock"));
    let hc = format!("socket,id=h0,path={},server=on,wait=off", h_sock.display());
    let qc = format!("socket,id=q0,path={},server=on,wait=off", q_sock.display());
    let mut vm = Vm::start(
        &dir,
        &[
            "-chardev",
            &hc,
            "-mon",
            "chardev=h0,mode=readline",
            "-chardev",
            &qc,
            "-mon",
            "chardev=q0,mode=control,pretty=on",
        ],
    );
    let mut h = Hmp::new(connect_unix(&h_sock));
    assert_eq!(h.cmd("info status"), "VM status: running\n");
    let mut q = Qmp(std::io::BufReader::new(connect_unix(&q_sock)));
    assert!(q.read()["QMP"].is_object());
    q.send(r#"{"execute": "qmp_capabilities"}"#);
    assert_eq!(
        q.send(r#"{"execute": "query-status"}"#)["return"]["status"],
        "running"
    );
    assert_eq!(
        q.send(r#"{"execute": "quit"}"#)["return"],
        serde_json::json!({})
    );
    assert_eq!(vm.wait_exit(), 0);
    assert!(!h_sock.exists() && !q_sock.exists());
}

/// A minimal ISO 9660 image: 18 blocks, the Primary Volume Descriptor at
/// block 16 (ECMA-119 8.4) with `label` as its Volume Identifier and
/// `claimed` blocks as its Volume Space Size, a terminator at block 17.
fn iso(label: &str, claimed: u32) -> Vec<u8> {
    let mut b = vec![0u8; 18 * 2048];
    let pvd = &mut b[16 * 2048..17 * 2048];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[40..72].fill(b' ');
    pvd[40..40 + label.len()].copy_from_slice(label.as_bytes());
    pvd[80..84].copy_from_slice(&claimed.to_le_bytes());
    pvd[84..88].copy_from_slice(&claimed.to_be_bytes());
    pvd[128..130].copy_from_slice(&2048u16.to_le_bytes());
    pvd[130..132].copy_from_slice(&2048u16.to_be_bytes());
    let term = &mut b[17 * 2048..17 * 2048 + 7];
    term.copy_from_slice(b"\xffCD001\x01");
    b
}

/// `eject` and `change` on the CD-ROM drive, seen from the guest:
/// test-roms/cdchange.bin locks the tray, polls TEST UNIT READY and reads
/// block 16 over ATAPI PIO, and prints each change of what it sees.
#[cfg(unix)]
#[test]
fn eject_and_change_swap_the_guests_cd() {
    const CD_ROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test-roms/cdchange.bin");
    let dir = common::TempDir::new("mon-cd");
    let (a, b, short) = (dir.join("a.iso"), dir.join("b.iso"), dir.join("short.iso"));
    std::fs::write(&a, iso("DISC_AAA", 18)).unwrap();
    std::fs::write(&b, iso("DISC_BBB", 18)).unwrap();
    std::fs::write(&short, iso("TRUNC", 100)).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let (sock, arg) = sock_args(&dir);
    let disk_arg = format!("file={},format=raw,if=ide,index=0", disk.display());
    let mut vm = Vm::start_rom(
        &dir,
        CD_ROM,
        &[
            "-monitor",
            &arg,
            "-drive",
            &disk_arg,
            "-cdrom",
            a.to_str().unwrap(),
        ],
    );
    vm.wait_debugcon(b"read DISC_AAA\n");
    let mut h = Hmp::new(connect_unix(&sock));
    let block = h.cmd("info block");
    assert!(
        block.contains(&format!(
            "ide1-cd0: {} (raw, read-only)\n    Removable device: locked, tray closed\n",
            a.display()
        )),
        "{block}"
    );
    assert!(block.starts_with("ide0-hd0: "), "{block}");

    // QEMU's errors; nothing changes for the guest.
    assert_eq!(h.cmd("eject foo"), "Error: Device 'foo' not found\n");
    assert_eq!(
        h.cmd("eject ide0-hd0"),
        "Error: Device 'ide0-hd0' is not removable\n"
    );
    let b_path = b.display().to_string();
    assert_eq!(
        h.cmd(&format!("change ide0-hd0 {b_path}")),
        "Error: Device 'ide0-hd0' is not removable\n"
    );
    let locked = "Error: Device 'ide1-cd0' is locked and force was not specified, \
                  wait for tray to open and try again\n";
    assert_eq!(h.cmd("eject ide1-cd0"), locked);
    assert_eq!(h.cmd(&format!("change ide1-cd0 {b_path}")), locked);
    let missing = h.cmd(&format!(
        "change ide1-cd0 {}",
        dir.join("none.iso").display()
    ));
    assert!(
        missing.starts_with("Error: ") && missing.contains("none.iso"),
        "{missing}"
    );
    let trunc = h.cmd(&format!("change ide1-cd0 {}", short.display()));
    assert!(
        trunc.starts_with("Error: ") && trunc.contains("short.iso"),
        "{trunc}"
    );
    assert!(h
        .cmd("info block")
        .contains("Removable device: locked, tray closed"));

    // Forced: the tray opens empty, the guest sees NOT READY, medium not
    // present (tray open).
    assert_eq!(h.cmd("eject -f ide1-cd0"), "");
    vm.wait_debugcon(b"read DISC_AAA\nsense 02/3a/02\n");
    assert!(h
        .cmd("info block")
        .contains("ide1-cd0: [not inserted]\n    Removable device: not locked, tray open\n"));

    // A new disc: UNIT ATTENTION once, then its bytes.
    assert_eq!(h.cmd(&format!("change ide1-cd0 {b_path}")), "");
    let want = b"read DISC_AAA\nsense 02/3a/02\nsense 06/28/00\nread DISC_BBB\n";
    vm.wait_debugcon(want);
    assert!(h.cmd("info block").contains(&format!(
        "ide1-cd0: {b_path} (raw, read-only)\n    Removable device: not locked, tray closed\n"
    )));
    // Unlocked now: a plain eject works.
    assert_eq!(h.cmd("eject ide1-cd0"), "");
    let mut want = want.to_vec();
    want.extend_from_slice(b"sense 02/3a/02\n");
    vm.wait_debugcon(&want);
    assert_eq!(h.cmd("quit"), "");
    assert_eq!(vm.wait_exit(), 0);
    assert_eq!(vm.debugcon(), want, "each change seen once");
}

/// `savevm FILE` / `loadvm FILE` round trip: a stopped guest saved, run on,
/// then loaded back is where it was (its counter, its registers); a bad file
/// is an error reply and the guest goes on.
#[cfg(unix)]
#[test]
fn savevm_and_loadvm_round_trip() {
    let dir = common::TempDir::new("mon-savevm");
    let (sock, arg) = sock_args(&dir);
    let snap = dir.join("m.vx86snap");
    let mut vm = Vm::start(&dir, &["-monitor", &arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    let c0 = h.counter();
    h.wait_counter_past(c0);
    assert_eq!(h.cmd("stop"), "");
    let saved = h.counter();
    let regs = h.cmd("info registers");
    assert_eq!(h.cmd(&format!("savevm {}", snap.display())), "");
    assert_eq!(h.cmd("cont"), "");
    h.wait_counter_past(saved + 1000);
    assert_eq!(h.cmd("stop"), "");
    assert_eq!(h.cmd(&format!("loadvm {}", snap.display())), "");
    assert_eq!(h.counter(), saved, "RAM is the saved RAM");
    assert_eq!(
        h.cmd("info registers"),
        regs,
        "registers are the saved ones"
    );

    let junk = dir.join("junk");
    std::fs::write(&junk, b"junk").unwrap();
    let reply = h.cmd(&format!("loadvm {}", junk.display()));
    assert!(reply.contains("not a vx86 snapshot"), "{reply}");
    assert_eq!(h.cmd("cont"), "");
    h.wait_counter_past(saved);
    assert_eq!(h.cmd("quit"), "");
    assert_eq!(vm.wait_exit(), 0);
}

/// `--snapshot-dir DIR`: relative `savevm`/`loadvm` names live there, and
/// `info snapshots` lists the snapshot files in it in QEMU's table (tag =
/// file name, size, date, guest clock, instructions), other files left out,
/// files of another snapshot format named with the reason.
#[cfg(unix)]
#[test]
fn info_snapshots_lists_the_snapshot_directory() {
    let dir = common::TempDir::new("mon-infosnap");
    let snaps = dir.join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    let (sock, arg) = sock_args(&dir);
    let snaps_arg = snaps.to_str().unwrap();
    let mut vm = Vm::start(&dir, &["-monitor", &arg, "--snapshot-dir", snaps_arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    assert_eq!(h.cmd("info snapshots"), "There is no snapshot available.\n");
    assert_eq!(h.cmd("stop"), "");
    let saved = h.counter();
    assert_eq!(h.cmd("savevm first"), "");
    assert_eq!(h.cmd("savevm second"), "");
    std::fs::write(snaps.join("notes.txt"), b"not a snapshot").unwrap();
    // A file as the snapshot format before this one frames it: version 1,
    // the payload (its writer first) right after the 24-byte header.
    let v2 = std::fs::read(snaps.join("first")).unwrap();
    let summary_len = u32::from_le_bytes(v2[24..28].try_into().unwrap()) as usize;
    let payload = &v2[28 + summary_len..];
    let mut v1 = b"VX86SNAP".to_vec();
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    v1.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    v1.extend_from_slice(payload);
    std::fs::write(snaps.join("old"), &v1).unwrap();

    let table = h.cmd("info snapshots");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert_eq!(lines[0], "List of snapshots present on all disks:");
    assert_eq!(
        lines[1],
        "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT"
    );
    for (line, tag) in lines[2..4].iter().zip(["first", "second"]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 8, "{line}");
        assert_eq!((f[0], f[1]), ("--", tag), "{line}");
        let size = std::fs::metadata(snaps.join(tag)).unwrap().len();
        assert!(
            f[3] == "KiB" || f[3] == "MiB",
            "{line}: size unit for {size} bytes"
        );
        // DATE YYYY-MM-DD HH:MM:SS, VM CLOCK HH:MM:SS.mmm, ICOUNT a number.
        assert!(f[4].len() == 10 && f[4].starts_with("20"), "{line}");
        assert_eq!(f[5].len(), 8, "{line}");
        assert_eq!(f[6].len(), 12, "{line}");
        assert!(f[7].parse::<u64>().unwrap() > 0, "{line}");
    }
    let old = snaps.join("old");
    assert_eq!(
        lines[4],
        format!(
            "{}: snapshot format version 1 (written by vx86 {}) is older than this vx86 \
             reads ({}); load it with the vx86 that wrote it",
            old.display(),
            env!("CARGO_PKG_VERSION"),
            vx86::snapshot::FORMAT_VERSION
        )
    );
    let reply = h.cmd("loadvm old");
    assert!(reply.contains("version 1 (written by vx86"), "{reply}");

    // A relative name loads from the snapshot directory.
    assert_eq!(h.cmd("cont"), "");
    h.wait_counter_past(saved + 1000);
    assert_eq!(h.cmd("stop"), "");
    assert_eq!(h.cmd("loadvm first"), "");
    assert_eq!(h.counter(), saved, "RAM is the saved RAM");
    assert_eq!(h.cmd("quit"), "");
    assert_eq!(vm.wait_exit(), 0);
}

/// A CD-ROM drive emptied with `eject` before `savevm` is empty again after
/// `-loadvm`, though the command line that restores puts the disc in.
#[cfg(unix)]
#[test]
fn a_drive_ejected_before_savevm_is_empty_after_loadvm() {
    let dir = common::TempDir::new("mon-snapcd");
    let iso = dir.join("a.iso");
    std::fs::write(&iso, vec![0x11u8; 2048 * 16]).unwrap();
    let snap = dir.join("s.vx86snap");
    let (sock, arg) = sock_args(&dir);
    let iso_arg = iso.to_str().unwrap();
    let mut vm = Vm::start(&dir, &["-monitor", &arg, "-cdrom", iso_arg]);
    let mut h = Hmp::new(connect_unix(&sock));
    let inserted = h.cmd("info block");
    assert!(inserted.contains(iso_arg), "{inserted}");
    assert_eq!(h.cmd("eject ide1-cd0"), "");
    let ejected = h.cmd("info block");
    assert!(!ejected.contains(iso_arg), "{ejected}");
    assert_eq!(h.cmd("stop"), "");
    assert_eq!(h.cmd(&format!("savevm {}", snap.display())), "");
    assert_eq!(h.cmd("quit"), "");
    assert_eq!(vm.wait_exit(), 0);
    drop(h);
    drop(vm);

    let _ = std::fs::remove_file(&sock);
    let snap_arg = snap.to_str().unwrap();
    let vm = Vm::start_rom(
        &dir,
        ROM,
        &["-monitor", &arg, "-cdrom", iso_arg, "-loadvm", snap_arg],
    );
    let mut h = Hmp::new(connect_unix(&sock));
    assert_eq!(h.cmd("info block"), ejected, "the drive is empty as it was");
    assert_eq!(h.cmd("quit"), "");
    let mut vm = vm;
    assert_eq!(vm.wait_exit(), 0);
}
