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
            &["-boot", "d"],
            "vx86: -boot d: vx86 boots only from the first hard disk",
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
        (&["-frobnicate"], "vx86: -frobnicate: unknown option"),
        (&["-kernel"], "vx86: -kernel: needs a value"),
    ] {
        let o = run(args);
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].starts_with(want), "{args:?}: {lines:?}");
    }
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
    // one unallocated L1 entry in the second cluster).
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow)
        .arg("1M")
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        let mut h = vec![0u8; 0x20000];
        h[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        h[36..40].copy_from_slice(&1u32.to_be_bytes());
        h[40..48].copy_from_slice(&0x10000u64.to_be_bytes());
        h[100..104].copy_from_slice(&104u32.to_be_bytes());
        std::fs::write(&qcow, &h).expect("write");
    }
    let q = qcow.to_string_lossy().to_string();
    let o = run(&["-hda", &q]);
    let lines = stderr_lines(&o);
    assert_eq!(o.status.code(), Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    // Probed as qcow2, never used as raw; writable qcow2 is not there yet.
    assert!(
        lines[0].contains(&q)
            && lines[0].contains("qcow2 write is not supported yet; use -snapshot or readonly=on"),
        "{lines:?}"
    );
    // With -snapshot (or readonly=on) it is opened as qcow2.
    for extra in [
        &["-hda", &q, "-snapshot"][..],
        &["-drive", &format!("file={q},readonly=on")],
    ] {
        let mut args = extra.to_vec();
        args.extend(["--max-insns", "1000"]);
        let o = run(&args);
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {lines:?}");
        assert!(!lines.iter().any(|l| l.contains("warning")), "{lines:?}");
    }
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
