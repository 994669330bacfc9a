//! The gdb stub (`-gdb`, `-s`, `-S`) against a real client: Debian's `gdb`
//! in batch mode drives vx86 running `test-roms/gdb.asm` (a multiboot
//! kernel with its points of interest at fixed addresses) and the Debian
//! kernel; raw remote-protocol sessions check Ctrl-C, garbage and dropped
//! connections. Every wait has a time limit; each vx86 listens on a port
//! the system picks (`-gdb tcp::0`, printed on stderr).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Addresses in test-roms/gdb.asm.
const ENTRY: u64 = 0x10_0100;
const BP1: u64 = 0x10_0140;
const HW1: u64 = 0x10_0160;
const AFTER_WRITE: u64 = 0x10_016A;
const SPIN: u64 = 0x10_0180;
const COUNTER: u64 = 0x10_1000;
const SPINS_VAR: u64 = 0x10_1004;

fn have_gdb() -> bool {
    if common::have_program("gdb", "--version") {
        return true;
    }
    eprintln!("SKIPPED: gdb is not installed");
    false
}

/// A vx86 with its gdb stub on a free port; killed when dropped.
struct Vx86 {
    child: Child,
    port: u16,
    out: mpsc::Receiver<String>,
}

impl Vx86 {
    fn start(args: &[&str]) -> Vx86 {
        let mut child = common::vx86()
            .args(["-gdb", "tcp::0", "-display", "none"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vx86");
        let (tx, out) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx2.send(l);
            }
        });
        let (ptx, prx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = l.strip_prefix("vx86: gdb stub listening on 127.0.0.1:") {
                    let _ = ptx.send(a.parse::<u16>().unwrap_or(0));
                }
                let _ = tx.send(format!("[stderr] {l}"));
            }
        });
        let port = prx
            .recv_timeout(Duration::from_secs(30))
            .expect("vx86 says where its gdb stub listens");
        Vx86 { child, port, out }
    }

    /// Waits for vx86 to exit; its status and output (stdout, stderr lines).
    fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st.code();
            }
            if start.elapsed() > limit {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        let out: Vec<String> = self.out.try_iter().collect();
        (status, out.join("\n"))
    }
}

impl Drop for Vx86 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gdb -batch` connected to `port` with `cmds`; its whole output.
fn gdb(port: u16, cmds: &[String]) -> String {
    let mut c = std::process::Command::new("gdb");
    // vx86 answers once its machine is built (the Debian kernel is
    // decompressed first): wait longer than gdb's default 2 s.
    c.args(["-nx", "-batch", "-ex", "set confirm off"])
        .args(["-ex", "set remotetimeout 60", "-ex"])
        .arg(format!("target remote 127.0.0.1:{port}"));
    for cmd in cmds {
        c.arg("-ex").arg(cmd);
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gdb");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let mut e = String::new();
        let _ = err.read_to_string(&mut e);
        s + &e
    });
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    let text = t.join().unwrap_or_default();
    eprintln!("--- gdb:\n{text}---");
    text
}

fn cmds(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

/// The value gdb printed for `printf "NAME=%#lx\n", EXPR`.
fn printed(out: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("gdb printed no {name}: {out}"));
    u64::from_str_radix(line.trim().trim_start_matches("0x"), 16).unwrap_or_else(|_| {
        assert_eq!(line.trim(), "0", "{name}: {out}");
        0
    })
}

/// `info registers` line of `reg`: its hex value.
fn reg_line(out: &str, reg: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(reg))
        .unwrap_or_else(|| panic!("no {reg} in: {out}"));
    let v = line.split_whitespace().nth(1).expect("value");
    u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex")
}

fn kernel_args() -> Vec<String> {
    let k = format!("{}/test-roms/gdb.bin", env!("CARGO_MANIFEST_DIR"));
    cmds(&[
        "-m",
        "64M",
        "-kernel",
        &k,
        "-debugcon",
        "stdio",
        "-serial",
        "none",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ])
}

fn start_kernel(extra: &[&str]) -> Vx86 {
    let mut a = kernel_args();
    a.extend(cmds(extra));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    Vx86::start(&a)
}

#[test]
fn gdb_breaks_steps_watches_and_detaches_on_a_multiboot_kernel() {
    if !have_gdb() {
        return;
    }
    let vm = start_kernel(&["-S"]);
    let out = gdb(
        vm.port,
        &[
            "printf \"START=%#lx\\n\", $pc".into(),
            format!("break *{BP1:#x}"),
            "continue".into(),
            "info registers".into(),
            "x/4i $pc".into(),
            "stepi".into(),
            "printf \"STEP=%#lx\\n\", $pc".into(),
            "printf \"EAX=%#lx\\n\", $eax".into(),
            // A register write and a memory write the guest then sees.
            "set $edx = 0xabcdef01".into(),
            format!("set {{int}}{SPINS_VAR:#x} = 19999000"),
            format!("hbreak *{HW1:#x}"),
            "continue".into(),
            "printf \"HW=%#lx\\n\", $pc".into(),
            "printf \"EDX=%#lx\\n\", $edx".into(),
            format!("printf \"SPINS=%#x\\n\", *(int*){SPINS_VAR:#x}"),
            format!("watch *(int*){COUNTER:#x}"),
            "continue".into(),
            "printf \"WATCH=%#lx\\n\", $pc".into(),
            format!("rwatch *(int*){COUNTER:#x}"),
            "continue".into(),
            "printf \"RWATCH=%#lx\\n\", $pc".into(),
            // Unmapped (beyond RAM): an error, the guest unharmed.
            "x/wx 0x20000000".into(),
            "delete".into(),
            "detach".into(),
        ],
    );
    assert_eq!(printed(&out, "START"), ENTRY, "{out}");
    assert!(out.contains(&format!("Breakpoint 1, {BP1:#010x}")), "{out}");
    // What the kernel set (gdb.asm) before BP1, and the multiboot segments.
    for (reg, want) in [
        ("eax", 0x1111_1111),
        ("ebx", 0x2222_2222),
        ("ecx", 0x3333_3333),
        ("edx", 0x4444_4444),
        ("esi", 0x5555_5555),
        ("edi", 0x6666_6666),
        ("ebp", 0x7777_7777),
        ("esp", 0x10_3000),
        ("eip", BP1),
        ("cs", 0x10),
        ("ss", 0x18),
        ("cr0", 0x11),
    ] {
        assert_eq!(reg_line(&out, reg), want, "{reg}: {out}");
    }
    assert!(out.contains(&format!("=> {BP1:#x}:\tinc    %eax")), "{out}");
    assert!(
        out.contains(&format!("{:#x}:\tadd    $0x1,%ebx", BP1 + 1)),
        "{out}"
    );
    assert_eq!(printed(&out, "STEP"), BP1 + 1, "stepi runs one instruction");
    assert_eq!(printed(&out, "EAX") & 0xFFFF_FFFF, 0x1111_1112);
    assert!(
        out.contains(&format!("Hardware assisted breakpoint 2 at {HW1:#x}")),
        "{out}"
    );
    assert_eq!(printed(&out, "HW"), HW1);
    assert_eq!(
        printed(&out, "EDX") & 0xFFFF_FFFF,
        0xabcd_ef01,
        "register write kept"
    );
    assert_eq!(printed(&out, "SPINS"), 19_999_000, "memory write kept");
    assert!(out.contains("Old value = 0\nNew value = 4660"), "{out}");
    assert_eq!(printed(&out, "WATCH"), AFTER_WRITE, "stops after the write");
    // `mov ecx, [COUNTER]` (6 bytes) reads it.
    assert!(out.contains("Hardware read watchpoint 4"), "{out}");
    assert!(out.contains("Value = 4660"), "{out}");
    assert_eq!(
        printed(&out, "RWATCH"),
        AFTER_WRITE + 6,
        "stops after the read"
    );
    assert!(
        out.contains("Cannot access memory at address 0x20000000"),
        "{out}"
    );
    assert!(out.contains("detached"), "{out}");
    // Detached: the guest runs on to its end (1000 spins left).
    let (status, log) = vm.wait(Duration::from_secs(60));
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("GDB-DONE"), "{log}");
}

/// A raw remote-protocol client.
struct Rsp {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Rsp {
    fn connect(port: u16) -> Rsp {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Rsp { s, buf: Vec::new() }
    }

    fn send_raw(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("send");
    }

    /// Bytes the stub may refuse by closing the connection mid-way.
    fn send_garbage(&mut self, b: &[u8]) {
        let _ = self.s.write_all(b);
    }

    fn send(&mut self, body: &str) {
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        self.send_raw(format!("${body}#{sum:02x}").as_bytes());
    }

    /// The next packet's body (acks skipped), within `limit`.
    fn reply(&mut self, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'$') {
                if let Some(h) = self.buf[p..].iter().position(|&b| b == b'#') {
                    if self.buf.len() >= p + h + 3 {
                        let body = unrle(&self.buf[p + 1..p + h]);
                        self.buf.drain(..p + h + 3);
                        self.send_raw(b"+");
                        return body;
                    }
                }
            }
            assert!(start.elapsed() < limit, "no reply within {limit:?}");
            let mut b = [0u8; 4096];
            match self.s.read(&mut b) {
                Ok(0) => panic!("connection closed"),
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
    }

    /// The stub closes the connection within a few seconds.
    fn expect_closed(&mut self) {
        let start = Instant::now();
        let mut b = [0u8; 4096];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return,
                Err(e)
                    if e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut =>
                {
                    return
                }
                _ => {}
            }
            assert!(start.elapsed() < Duration::from_secs(5), "still open");
        }
    }

    fn ask(&mut self, body: &str) -> String {
        self.send(body);
        self.reply(Duration::from_secs(10))
    }
}

/// Expands the protocol's run-length encoding: `X*N` is X repeated
/// N - 29 more times (GDB manual E.1).
fn unrle(b: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'*' && i + 1 < b.len() {
            let last = *out.last().expect("a repeat follows a byte");
            out.extend(std::iter::repeat_n(last, (b[i + 1] - 29) as usize));
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// EIP from an i386 `g` reply (after eight 32-bit registers).
fn eip_of(g: &str) -> u64 {
    let b: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&g[64 + 2 * i..66 + 2 * i], 16).expect("hex"))
        .collect();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64
}

#[test]
fn ctrl_c_garbage_and_dropped_connections_never_hurt_the_guest() {
    let vm = start_kernel(&[]);
    // The guest runs with no debugger; connecting stops it.
    let mut c = Rsp::connect(vm.port);
    let why = c.ask("?");
    assert!(why.starts_with('T') || why.starts_with('S'), "{why}");
    // Continue, then Ctrl-C while it spins: a SIGINT stop, promptly.
    c.send("c");
    std::thread::sleep(Duration::from_millis(50));
    let sent = Instant::now();
    c.send_raw(&[0x03]);
    let stop = c.reply(Duration::from_secs(5));
    assert!(stop.starts_with("T02") || stop.starts_with("S02"), "{stop}");
    eprintln!("Ctrl-C stopped the guest in {:?}", sent.elapsed());
    let eip = eip_of(&c.ask("g"));
    assert!(
        (SPIN..SPIN + 0x12).contains(&eip),
        "stopped in the loop: {eip:#x}"
    );
    // Memory through the stub: the counter the kernel wrote.
    assert_eq!(c.ask(&format!("m{COUNTER:x},4")), "34120000");
    assert_eq!(c.ask("vFrobnicate"), "", "unknown commands: empty reply");
    // Garbage (a bad checksum): the stub drops the connection.
    c.send_garbage(b"$m101000,4#00");
    c.expect_closed();
    // Junk and a packet cut off by a disconnect; a packet too long for
    // the stub's buffer. The stopped guest waits through all of it.
    let mut g = Rsp::connect(vm.port);
    g.send_garbage(b"\xff\xfe garbage \x00$m101000,");
    drop(g);
    let mut g = Rsp::connect(vm.port);
    g.send_garbage(b"$");
    g.send_garbage(&[b'a'; 5000]);
    g.expect_closed();
    // A new debugger finds it where it stopped, and detaches.
    let mut c = Rsp::connect(vm.port);
    assert_eq!(eip_of(&c.ask("g")), eip, "nothing ran while stopped");
    // Make the loop end soon, then detach: the guest runs to its end.
    assert_eq!(c.ask(&format!("M{SPINS_VAR:x},4:18293101")), "OK");
    assert_eq!(c.ask("D"), "OK");
    let (status, log) = vm.wait(Duration::from_secs(60));
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("GDB-DONE"), "{log}");
}

#[test]
fn kill_ends_vx86() {
    let vm = start_kernel(&["-S"]);
    let mut c = Rsp::connect(vm.port);
    c.ask("?");
    c.send("k");
    let (status, log) = vm.wait(Duration::from_secs(20));
    assert_eq!(status, Some(0), "{log}");
    assert!(!log.contains("GDB-DONE"), "{log}");
}

/// The address of an exported kernel function from the vmlinux's
/// `__ksymtab` (Debian's package strips vmlinux and ships no System.map;
/// the export table survives: struct kernel_symbol with 32-bit
/// place-relative offsets, include/linux/export.h).
fn exported_symbol(vmlinux: &[u8], want: &str) -> Option<u64> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(vmlinux.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(vmlinux.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(vmlinux.get(o..o + 8)?.try_into().ok()?));
    let shoff = u64_at(0x28)? as usize;
    let (entsize, num, strndx) = (
        u16_at(0x3A)? as usize,
        u16_at(0x3C)? as usize,
        u16_at(0x3E)? as usize,
    );
    // (name, addr, offset, size) of each section.
    let sec = |i: usize| {
        let h = shoff + i * entsize;
        Some((
            u32_at(h)?,
            u64_at(h + 16)?,
            u64_at(h + 24)?,
            u64_at(h + 32)?,
        ))
    };
    let cstr = |o: usize| {
        let s = vmlinux.get(o..)?;
        Some(&s[..s.iter().position(|&b| b == 0)?])
    };
    let shstr = sec(strndx)?.2 as usize;
    let find = |name: &str| {
        (0..num).find_map(|i| {
            let s = sec(i)?;
            (cstr(shstr + s.0 as usize)? == name.as_bytes()).then_some(s)
        })
    };
    let (_, kaddr, koff, ksize) = find("__ksymtab")?;
    let (_, saddr, soff, _) = find("__ksymtab_strings")?;
    for i in 0..ksize / 12 {
        let e = koff as usize + 12 * i as usize;
        let value = u32_at(e)? as i32 as i64;
        let name = u32_at(e + 4)? as i32 as i64;
        let at = kaddr + 12 * i;
        let name_addr = (at as i64 + 4 + name) as u64;
        let s = cstr((soff + name_addr.wrapping_sub(saddr)) as usize)?;
        if s == want.as_bytes() {
            return Some((at as i64 + value) as u64);
        }
    }
    None
}

#[test]
fn gdb_stops_the_debian_kernel_at_a_kernel_function() {
    if !have_gdb() {
        return;
    }
    let Some(dir) = common::guest::need(&["vmlinuz", "vmlinux", "initramfs-ctr.cpio.gz"]) else {
        return;
    };
    let vmlinux = std::fs::read(dir.join("vmlinux")).expect("read vmlinux");
    let Some(printk) = exported_symbol(&vmlinux, "_printk") else {
        eprintln!("SKIPPED: no _printk in the vmlinux's export table");
        return;
    };
    drop(vmlinux);
    let (k, i) = (dir.join("vmlinuz"), dir.join("initramfs-ctr.cpio.gz"));
    let vm = Vx86::start(&[
        "-m",
        "512M",
        "-kernel",
        &k.to_string_lossy(),
        "-initrd",
        &i.to_string_lossy(),
        "-append",
        "console=ttyS0 panic=-1",
        "-serial",
        "stdio",
        "-no-reboot",
        "-S",
    ]);
    let out = gdb(
        vm.port,
        &[
            format!("break *{printk:#x}"),
            "continue".into(),
            "info registers rip".into(),
            "x/4i $pc".into(),
            "printf \"CR0=%#lx\\n\", $cr0".into(),
            "printf \"EFER=%#lx\\n\", $efer".into(),
            "kill".into(),
        ],
    );
    assert!(
        out.contains(&format!("Breakpoint 1, {printk:#018x}")),
        "{out}"
    );
    assert_eq!(reg_line(&out, "rip"), printk, "{out}");
    // Four instructions, the first at the breakpoint, by 64-bit addresses.
    let insns: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.trim_start()
                .trim_start_matches("=> ")
                .starts_with("0xffffffff")
        })
        .collect();
    assert_eq!(insns.len(), 4, "{out}");
    assert!(insns[0].starts_with(&format!("=> {printk:#x}:\t")), "{out}");
    // Long mode with paging: the x86-64 registers.
    assert_eq!(printed(&out, "CR0") & 0x8000_0001, 0x8000_0001, "{out}");
    assert_eq!(printed(&out, "EFER") & 0x500, 0x500, "LME and LMA: {out}");
    let (status, log) = vm.wait(Duration::from_secs(20));
    assert_eq!(status, Some(0), "kill ends vx86: {log}");
    // Stopped before the kernel's first message.
    assert!(!log.contains("Linux version"), "{log}");
}
