//! QEMU's command line, understood: every option vx86 refuses says so in one
//! line naming it, with exit status 1; options vx86 treats differently say
//! so on stderr and run; `--help` is grouped like QEMU's.

mod common;

fn run(args: &[&str]) -> std::process::Output {
    common::vx86()
        .args(["-display", "none", "-serial", "none"])
        .args(args)
        .output()
        .expect("run vx86")
}

fn stderr_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs vx86 with `args`, which it must refuse: exit status 1 and one line
/// on stderr, which is returned.
fn refused(args: &[&str]) -> String {
    let o = run(args);
    let lines = stderr_lines(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {lines:?}");
    assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
    lines[0].clone()
}

#[test]
fn every_refused_option_gets_one_line_and_status_1() {
    let refused = vx86::config::refused_options();
    assert!(refused.len() > 40, "the table lists QEMU's options");
    for (name, takes_value, msg) in refused {
        let flag = format!("-{name}");
        let mut args = vec![flag.as_str()];
        if takes_value {
            args.push("x");
        }
        let o = run(&args);
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(1), "{flag}: {lines:?}");
        assert_eq!(lines.len(), 1, "{flag}: {lines:?}");
        let want = if takes_value {
            format!("vx86: {flag} x: {msg}")
        } else {
            format!("vx86: {flag}: {msg}")
        };
        assert_eq!(lines[0], want);
    }
}

#[test]
fn value_checked_options_are_refused_with_a_reason() {
    for (args, want) in [
        (&["-smp", "4"][..], "vx86: -smp 4: vx86 runs one CPU"),
        (
            &["-accel", "kvm"],
            "vx86: -accel kvm: vx86 has no hardware acceleration",
        ),
        (
            &["-M", "pc,accel=kvm"],
            "vx86: -M pc,accel=kvm: vx86 has no hardware acceleration",
        ),
        (&["-M", "q35"], "vx86: -M q35: unsupported machine"),
        (
            &["-vga", "cirrus"],
            "vx86: -vga cirrus: vx86 has one video card",
        ),
        (
            &["-boot", "a"],
            "vx86: -boot a: vx86 boots from the first hard disk (c) or the CD-ROM (d); there is no floppy drive",
        ),
        (
            &["-device", "e1000"],
            "vx86: -device e1000: unsupported device",
        ),
        (
            &["-icount", "shift=auto"],
            "vx86: -icount shift=auto: shift=auto",
        ),
        (&["-rtc", "base=never"], "vx86: -rtc base=never: base:"),
        (
            &["-gdb", "unix:/tmp/gdb.sock"],
            "vx86: -gdb unix:/tmp/gdb.sock: only a TCP server is supported",
        ),
        (
            &["-gdb", "tcp::1234,telnet"],
            "vx86: -gdb tcp::1234,telnet: `telnet`: unknown option",
        ),
        (
            &["-gdb", "tcp::x"],
            "vx86: -gdb tcp::x: `x`: not a port number",
        ),
        (&["-frobnicate"], "vx86: -frobnicate: unknown option"),
        (&["-monitor", "vc"], "vx86: -monitor vc: use stdio, unix:PATH"),
        (
            &["-qmp", "tcp::4444"],
            "vx86: -qmp tcp::4444: vx86 only listens: add `,server,nowait`",
        ),
        (
            &["-monitor", "stdio", "-serial", "stdio"],
            "vx86: -monitor/-qmp stdio: stdio is already used by the serial console",
        ),
        (
            &["-monitor", "stdio", "-qmp", "stdio"],
            "vx86: -monitor/-qmp stdio: stdio is already used by the other monitor",
        ),
        (
            &["-monitor", "tcp:256.1.1.1:4444,server,nowait"],
            "vx86: -monitor tcp:256.1.1.1:4444,server,nowait: tcp: `256.1.1.1` is not an IP address",
        ),
        (
            &["-mon", "chardev=nope"],
            "vx86: -mon chardev=nope: no -chardev with id `nope`",
        ),
        (
            &["-chardev", "null,id=n", "-mon", "chardev=n"],
            "vx86: -mon chardev=n: chardev `n` is `null`: a monitor needs a socket",
        ),
        (
            &["-monitor", "unix:/nonexistent/dir/m.sock,server,nowait"],
            "vx86: -monitor unix:/nonexistent/dir/m.sock,server,nowait: cannot listen: ",
        ),
        (&["-kernel"], "vx86: -kernel: needs a value"),
    ] {
        let line = refused(args);
        assert!(line.starts_with(want), "{args:?}: {line:?}");
    }
}

#[test]
fn gdb_port_in_use_is_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let spec = format!("tcp::{port}");
    let line = refused(&["-gdb", &spec, "--max-insns", "1000"]);
    let want = format!("vx86: -gdb {spec}: cannot listen on 127.0.0.1:{port}: ");
    assert!(line.starts_with(&want), "{line:?}");
}

#[test]
fn options_vx86_treats_differently_say_so_and_run() {
    let o = run(&[
        "-cpu",
        "host",
        "-accel",
        "tcg,thread=single",
        "-smp",
        "1",
        "-k",
        "de",
        "-no-acpi",
        "-M",
        "isapc,accel=tcg",
        "--max-insns",
        "1000",
    ]);
    let lines = stderr_lines(&o);
    assert_eq!(o.status.code(), Some(0), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("vx86: -cpu host: vx86 has one CPU model")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("vx86: -k de: ignored")),
        "{lines:?}"
    );
}

#[test]
fn help_is_grouped_like_qemus() {
    let o = common::vx86_host_time()
        .arg("--help")
        .output()
        .expect("run vx86");
    let help = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    for heading in [
        "Standard options:",
        "Block device options:",
        "Display options:",
        "Network options:",
        "Character device options:",
        "Linux/Multiboot boot specific:",
        "Debug/expert options:",
        "vx86 options:",
    ] {
        assert!(help.contains(heading), "no {heading} in\n{help}");
    }
    assert!(!help.contains("q35 are refused"));
    let o = run(&["-M", "help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("isapc") && text.contains("pc "), "{text}");
}

#[test]
fn images_are_recognised_not_guessed() {
    let dir = common::TempDir::new("probe");
    let qcow = dir.join("disk.qcow2");
    // A qcow2 made by qemu-img when it is installed; else by hand (qcow2.txt:
    // a version 3 header for 1 MiB in 64 KiB clusters, header_length 104,
    // one unallocated L1 entry in the second cluster, the refcount table in
    // the third naming a block in the fourth, which counts all four).
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow)
        .arg("1M")
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        let mut h = vec![0u8; 0x40000];
        h[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        h[36..40].copy_from_slice(&1u32.to_be_bytes());
        h[40..48].copy_from_slice(&0x10000u64.to_be_bytes());
        h[48..56].copy_from_slice(&0x20000u64.to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&104u32.to_be_bytes());
        h[0x20000..0x20008].copy_from_slice(&0x30000u64.to_be_bytes());
        for c in 0..4 {
            h[0x30000 + 2 * c + 1] = 1;
        }
        std::fs::write(&qcow, &h).expect("write");
    }
    // qemu-img 10 leaves a file of 196,616 bytes: pad it to whole sectors so
    // that only the magic tells it from a raw disk.
    let len = std::fs::metadata(&qcow).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&qcow)
        .expect("open");
    f.set_len(len.div_ceil(512) * 512).expect("pad");
    drop(f);
    let q = qcow.to_string_lossy().to_string();
    let before = std::fs::read(&qcow).expect("read");
    // Probed as qcow2, never used as raw: writable, read-only and -snapshot
    // open it without a word (a raw disk would be its header's bytes).
    for extra in [
        &["-hda", &q][..],
        &["-hda", &q, "-snapshot"],
        &["-drive", &format!("file={q},readonly=on")],
    ] {
        let mut args = extra.to_vec();
        args.extend(["--max-insns", "1000"]);
        let o = run(&args);
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {lines:?}");
        assert!(!lines.iter().any(|l| l.contains("warning")), "{lines:?}");
    }
    assert!(
        std::fs::read(&qcow).expect("read") == before,
        "nothing wrote"
    );
    // format=raw given explicitly: a warning, and the bytes are used (a
    // header by hand, padded to whole sectors).
    let hand = dir.join("hand.qcow2");
    let mut h = vec![0u8; 512 * 8];
    h[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
    std::fs::write(&hand, &h).expect("write");
    let q = hand.to_string_lossy().to_string();
    let o = run(&[
        "-drive",
        &format!("file={q},format=raw,snapshot=on"),
        "--max-insns",
        "1000",
    ]);
    let lines = stderr_lines(&o);
    assert_eq!(o.status.code(), Some(0), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("warning") && l.contains("looks like a qcow2 image")),
        "{lines:?}"
    );
    // An ISO 9660 volume (the descriptor at sector 16).
    let iso = dir.join("cd.iso");
    let mut b = vec![0u8; 0x9000];
    b[0x8000] = 1;
    b[0x8001..0x8006].copy_from_slice(b"CD001");
    std::fs::write(&iso, &b).expect("write");
    let o = run(&["-hda", &iso.to_string_lossy()]);
    let lines = stderr_lines(&o);
    assert_eq!(o.status.code(), Some(1), "{lines:?}");
    assert!(lines[0].contains("an ISO 9660 CD image"), "{lines:?}");
}

#[test]
fn bad_network_options_get_one_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let in_use = format!("user,hostfwd=tcp:127.0.0.1:{port}-:80");
    for (args, want) in [
        (
            &["-netdev", "user,hostfwd=tcp::99999-:80"][..],
            "-netdev user,hostfwd=tcp::99999-:80: port 99999 out of range",
        ),
        (
            &["-netdev", "tap,id=n0"],
            "-netdev tap: backend not supported",
        ),
        (
            &["-nic", "user,model=e1000"],
            "-nic user,model=e1000: model 'e1000' not supported",
        ),
        (&["-netdev", "user,id=n0"], "has no card"),
        (
            &["-device", "virtio-net-pci,netdev=n9"],
            "no -netdev with id=n9",
        ),
        (&["-net", "user"], "-net user: not supported"),
        (
            &["-M", "isapc", "-nic", "user"],
            "a network card needs a PCI bus; use -M pc",
        ),
        (&["-nic", &in_use], "cannot listen on 127.0.0.1"),
    ] {
        let o = run(args);
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].starts_with("vx86: "), "{args:?}: {lines:?}");
        assert!(
            lines[0].contains(want),
            "{args:?}: want {want:?} in {lines:?}"
        );
    }
    drop(busy);
}

/// POST codes as QEMU captures them: `-chardev file` + `-device
/// isa-debugcon,iobase=P,chardev=ID` at 0x80, 0x190, 0xE9 and 0x402 at once
/// (test-roms/postcodes.bin writes to all four); each file holds exactly its
/// port's bytes. `-debugcon` keeps working beside them.
#[test]
fn isa_debugcon_captures_post_codes_at_any_port() {
    let dir = common::TempDir::new("postcodes");
    let rom = format!("{}/test-roms/postcodes.bin", env!("CARGO_MANIFEST_DIR"));
    let f = |n: &str| dir.join(n).display().to_string();
    let (p80, p190, pe9, p402) = (f("80.bin"), f("190.bin"), f("e9.txt"), f("402.txt"));
    let args: Vec<String> = vec![
        "-bios".into(),
        rom.clone(),
        "-chardev".into(),
        format!("file,id=post,path={p80}"),
        "-device".into(),
        "isa-debugcon,iobase=0x80,chardev=post".into(),
        "-chardev".into(),
        format!("file,id=p190,path={p190}"),
        "-device".into(),
        "isa-debugcon,iobase=0x190,chardev=p190".into(),
        "-chardev".into(),
        format!("file,id=con,path={pe9}"),
        "-device".into(),
        "isa-debugcon,iobase=0xe9,chardev=con".into(),
        "-chardev".into(),
        format!("file,id=sb,path={p402}"),
        "-device".into(),
        "isa-debugcon,iobase=0x402,chardev=sb".into(),
        "-chardev".into(),
        "null,id=nothing".into(),
        "-device".into(),
        "isa-debugcon,iobase=0x500,chardev=nothing".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1), "{:?}", stderr_lines(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("guest halted with interrupts disabled"),
        "{:?}",
        stderr_lines(&o)
    );
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read(&p80), [0x01, 0x02, 0x55, 0xAA]);
    assert_eq!(read(&p190), [0x10, 0x20, 0xFF]);
    assert_eq!(read(&pe9), b"post: ok\n");
    assert_eq!(read(&p402), b"seabios\n");

    // -debugcon still gets 0xE9 and 0x402 when no isa-debugcon takes them;
    // -chardev stdio writes to stdout.
    let o = run(&[
        "-bios",
        &rom,
        "-debugcon",
        &format!("file:{pe9}"),
        "-chardev",
        "stdio,id=out",
        "-device",
        "isa-debugcon,iobase=0x190,chardev=out",
    ]);
    assert_eq!(o.status.code(), Some(1), "{:?}", stderr_lines(&o));
    assert_eq!(read(&pe9), b"post: ok\nseabios\n");
    assert_eq!(o.stdout, [0x10, 0x20, 0xFF]);
}

#[test]
fn bad_chardev_and_debugcon_specs_get_one_line() {
    let dir = common::TempDir::new("chardev-bad");
    let unwritable = dir.join("no/such/dir/out").display().to_string();
    let file_c = format!("file,id=c,path={unwritable}");
    for (args, want) in [
        (
            &["-chardev", "socket,id=c,path=/tmp/s"][..],
            "vx86: -chardev socket,id=c,path=/tmp/s: unknown backend `socket` (vx86 has file, stdio, null)",
        ),
        (&["-chardev", "file,path=/tmp/x"], "vx86: -chardev file,path=/tmp/x: needs id=ID"),
        (&["-chardev", "file,id=c"], "vx86: -chardev file,id=c: the file backend needs path=FILE"),
        (
            &["-chardev", "null,id=c", "-device", "isa-debugcon,iobase=0x10000,chardev=c"],
            "vx86: -device isa-debugcon,iobase=0x10000,chardev=c: iobase=0x10000 is not a port",
        ),
        (
            &["-chardev", "null,id=c", "-device", "isa-debugcon,iobase=zz,chardev=c"],
            "vx86: -device isa-debugcon,iobase=zz,chardev=c: iobase=zz is not a port",
        ),
        (
            &["-device", "isa-debugcon,iobase=0x80"],
            "vx86: -device isa-debugcon,iobase=0x80: needs chardev=ID",
        ),
        (
            &["-device", "isa-debugcon,iobase=0x80,chardev=missing"],
            "vx86: -device isa-debugcon,iobase=0x80,chardev=missing: no -chardev with id `missing`",
        ),
        (
            &["-chardev", "null,id=c", "-chardev", "null,id=c"],
            "vx86: -chardev null,id=c: duplicate id `c`",
        ),
        (
            &[
                "-chardev",
                "null,id=c",
                "-device",
                "isa-debugcon,iobase=0x80,chardev=c",
                "-device",
                "isa-debugcon,iobase=0x81,chardev=c",
            ],
            "vx86: -device isa-debugcon,iobase=0x81,chardev=c: chardev `c` is already in use",
        ),
        (
            &["-chardev", &file_c, "-device", "isa-debugcon,iobase=0x80,chardev=c"],
            "vx86: ",
        ),
    ] {
        let line = refused(args);
        assert!(line.starts_with(want), "{args:?}: {line:?}");
    }
}

/// Bad input on every host: an image another process has locked, a
/// read-only file opened for writing, a path that does not exist: one line
/// naming the file, exit 1, and the image's bytes untouched. (The lock is
/// std's File::try_lock: flock on Unix, LockFileEx on Windows, where this
/// test also runs under Wine.)
#[test]
fn images_in_use_read_only_or_missing_get_one_line() {
    let dir = common::TempDir::new("badimg");
    let img = dir.join("disk.img");
    let bytes: Vec<u8> = (0..64 * 512).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&img, &bytes).expect("write");
    let p = img.to_string_lossy().to_string();
    let drive = format!("file={},format=raw", p.replace(',', ",,"));
    let holder = std::fs::File::open(&img).expect("open");
    holder
        .try_lock_shared()
        .expect("the test takes a shared lock");
    // A writer is refused while another process reads the image ...
    let line = refused(&["-drive", &drive, "--max-insns", "1000"]);
    assert!(
        line.contains(&p) && line.contains("locked by another process"),
        "{line:?}"
    );
    // ... and a -snapshot reader shares it.
    let o = run(&["-drive", &drive, "-snapshot", "--max-insns", "1000"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    drop(holder);
    // A read-only host file opened for writing.
    let mut perm = std::fs::metadata(&img).expect("stat").permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&img, perm.clone()).expect("chmod");
    let o = run(&["-drive", &drive, "--max-insns", "1000"]);
    let lines = stderr_lines(&o);
    // root may write anyway on Unix; where the open is refused, it is one line.
    if o.status.code() != Some(0) {
        assert_eq!(o.status.code(), Some(1), "{lines:?}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(&p) && lines[0].contains("read-only"),
            "{lines:?}"
        );
    }
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&img, perm).expect("chmod");
    assert_eq!(std::fs::read(&img).expect("read"), bytes, "image untouched");
    // A path that does not exist.
    let missing = dir.join("missing.img");
    let m = missing.to_string_lossy().to_string();
    let line = refused(&[
        "-drive",
        &format!("file={m},format=raw"),
        "--max-insns",
        "1000",
    ]);
    assert!(line.contains(&m), "{line:?}");
}
