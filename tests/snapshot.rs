//! Whole-machine snapshots (issue 12): a run saved with `--save-on-exit`
//! and continued in a new process with `-loadvm` gives exactly what the
//! uninterrupted run gives (serial bytes, debug console bytes, the
//! `--state-hash` of CPU, devices and RAM), and bad snapshot files are
//! refused with one line naming the file, exit status 1, nothing modified.

mod common;

use common::guest::ctr_guest_args;
use common::snapshot::{assert_restore_matches, run, run_with_input};
use common::TempDir;
use std::path::{Path, PathBuf};

fn rom(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-roms")
        .join(name)
}

/// The platform ROM (PIT, PIC, UART, ATA writes, VGA) on a `-snapshot`
/// disk: cut at several points, among them mid-way through its device
/// checks with ATA writes in the overlay; each continued run gives the same
/// debug-console bytes and final state as the straight run.
#[test]
fn platform_rom_restored_at_any_cut_point_matches_the_straight_run() {
    let dir = TempDir::new("snap-rom");
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    // Not "con.txt": CON is a device name on Windows (the restoring vx86 may
    // be vx86.exe under Wine, scripts/cross-hosts.sh).
    let con = dir.join("debug.txt");
    let snap = dir.join("s.vx86snap");
    let drive = format!("file={},format=raw", disk.display());
    let bios = rom("platform.bin");
    let con_arg = format!("file:{}", con.display());
    let args = [
        "-bios",
        bios.to_str().unwrap(),
        "-drive",
        &drive,
        "-snapshot",
        "-display",
        "none",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-debugcon",
        &con_arg,
    ];
    // The ROM's whole run is about 20.19M instructions of virtual time,
    // 0.2M of them executed; the cuts fall in its busy phases and its waits,
    // the last after its ATA writes went into the overlay (the state hash
    // covers the overlays).
    let n = 30_000_000;
    for cut in [20_000, 60_000, 190_000, 12_000_000, 20_150_000, 20_180_000] {
        let s = assert_restore_matches(&args, n, cut, &snap, Some(&con));
        assert_eq!(s.status, Some(1), "the ROM's checks: {}", s.stderr);
    }
    let out = std::fs::read_to_string(&con).unwrap();
    assert!(out.contains("ALL PASS"), "{out}");
    let before = std::fs::read(&disk).unwrap();
    assert!(
        before.iter().all(|&b| b == 0),
        "-snapshot wrote to the image"
    );
}

/// A snapshot of the platform ROM at `cut` in `dir` (for the bad-input tests),
/// and the arguments that built its machine.
fn rom_snapshot(dir: &TempDir) -> (PathBuf, PathBuf, Vec<String>) {
    rom_snapshot_with(dir, &[])
}

/// [`rom_snapshot`] with `more` arguments, which end the returned ones.
fn rom_snapshot_with(dir: &TempDir, more: &[&str]) -> (PathBuf, PathBuf, Vec<String>) {
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let snap = dir.join("s.vx86snap");
    let args: Vec<String> = [
        "-bios",
        rom("platform.bin").to_str().unwrap(),
        "-drive",
        &format!("file={},format=raw", disk.display()),
        "-display",
        "none",
    ]
    .iter()
    .chain(more)
    .map(|s| s.to_string())
    .collect();
    let mut save: Vec<&str> = args.iter().map(String::as_str).collect();
    let snap_s = snap.to_str().unwrap().to_string();
    save.extend(["--max-insns", "150000", "--save-on-exit", &snap_s]);
    let r = run(&save);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    (snap, disk, args)
}

/// Loads `snap` with `args` plus `more`; asserts exit 1 and one stderr line
/// naming `snap` and containing `problem`; the snapshot and disk unchanged.
fn assert_refused(args: &[String], more: &[&str], snap: &Path, disk: &Path, problem: &str) {
    let snap_before = std::fs::read(snap).unwrap();
    let disk_before = std::fs::read(disk).unwrap();
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    v.extend(more);
    v.extend(["-loadvm", snap.to_str().unwrap(), "--max-insns", "200000"]);
    let r = run(&v);
    assert_eq!(r.status, Some(1), "{problem}: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got:\n{}", r.stderr);
    assert!(
        lines[0].contains(snap.to_str().unwrap()) && lines[0].contains(problem),
        "want the file and {problem:?}: {}",
        lines[0]
    );
    assert!(r.stdout.is_empty());
    assert_eq!(
        std::fs::read(snap).unwrap(),
        snap_before,
        "snapshot modified"
    );
    assert_eq!(std::fs::read(disk).unwrap(), disk_before, "disk modified");
}

#[test]
fn bad_snapshots_are_refused_with_one_line() {
    let dir = TempDir::new("snap-bad");
    let (snap, disk, args) = rom_snapshot(&dir);
    let good = std::fs::read(&snap).unwrap();
    assert_eq!(&good[..8], b"VX86SNAP");

    // Not a snapshot at all.
    std::fs::write(&snap, b"#!/bin/sh\necho hello\n").unwrap();
    assert_refused(&args, &[], &snap, &disk, "not a vx86 snapshot");

    // Truncated.
    std::fs::write(&snap, &good[..good.len() / 2]).unwrap();
    assert_refused(&args, &[], &snap, &disk, "truncated");

    // One byte of the payload flipped.
    let mut bad = good.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0x40;
    std::fs::write(&snap, &bad).unwrap();
    assert_refused(&args, &[], &snap, &disk, "checksum");

    // Written by a newer vx86.
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&snap, &newer).unwrap();
    assert_refused(
        &args,
        &[],
        &snap,
        &disk,
        &format!(
            "version 99 (written by vx86 {}) is newer",
            env!("CARGO_PKG_VERSION")
        ),
    );

    // A different machine.
    std::fs::write(&snap, &good).unwrap();
    assert_refused(
        &args,
        &["-m", "64M"],
        &snap,
        &disk,
        "-m 256M, this run has -m 64M",
    );
    assert_refused(&args, &["-snapshot"], &snap, &disk, "drive ide0-0");

    // The disk changed since the save.
    let mut d = std::fs::read(&disk).unwrap();
    d[4096] = 1;
    std::fs::write(&disk, &d).unwrap();
    assert_refused(&args, &[], &snap, &disk, "changed since the snapshot");

    // The good file still loads (with the disk as it was).
    d[4096] = 0;
    std::fs::write(&disk, &d).unwrap();
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    v.extend(["-loadvm", snap.to_str().unwrap(), "--max-insns", "200000"]);
    let r = run(&v);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

/// The Debian container guest (512 MiB, Linux booting from -kernel/-initrd):
/// cut mid-boot, restored in a new process; the serial bytes and the final
/// state hash equal the uninterrupted run's.
#[test]
fn debian_guest_restored_mid_boot_matches_the_straight_run() {
    let Some(args) = ctr_guest_args() else {
        return;
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tmp = TempDir::new("snap-debian");
    let snap = tmp.join("boot.vx86snap");
    let n: u64 = std::env::var("VX86_SNAPSHOT_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600_000_000);
    let straight = assert_restore_matches(&args, n, n / 2, &snap, None);
    let log = String::from_utf8_lossy(&straight.stdout);
    assert!(log.contains("Linux version 6."), "{log}");
}

/// The disc in a CD-ROM drive is part of the machine: a snapshot records its
/// file and fingerprint, and a load with another disc, no CD-ROM drive, or
/// the same file changed since is refused naming it.
#[test]
fn the_disc_in_the_cd_drive_is_checked_on_load() {
    let dir = TempDir::new("snap-cd");
    let disc = |name: &str, fill: u8| {
        let p = dir.join(name);
        std::fs::write(&p, vec![fill; 2048 * 16]).unwrap();
        p
    };
    let a = disc("a.iso", 0xA5);
    let b = disc("b.iso", 0x5B);
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (snap, disk, args) = rom_snapshot_with(&dir, &["-cdrom", a_s]);
    let base: Vec<String> = args[..args.len() - 2].to_vec();
    let with = |iso: &str| {
        let mut v = base.clone();
        v.extend(["-cdrom".to_string(), iso.to_string()]);
        v
    };
    assert_refused(
        &with(b_s),
        &[],
        &snap,
        &disk,
        &format!("snapshot has {a_s} in CD-ROM drive ide1-0, this run has {b_s}"),
    );
    assert_refused(
        &base,
        &[],
        &snap,
        &disk,
        &format!("snapshot has drive ide1-0 ({a_s}), this run has none there"),
    );
    let mut changed = std::fs::read(&a).unwrap();
    changed[100] ^= 1;
    std::fs::write(&a, &changed).unwrap();
    assert_refused(
        &with(a_s),
        &[],
        &snap,
        &disk,
        &format!("disc image {a_s} changed since the snapshot was taken"),
    );
    changed[100] ^= 1;
    std::fs::write(&a, &changed).unwrap();
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    v.extend(["-loadvm", snap.to_str().unwrap(), "--max-insns", "200000"]);
    let r = run(&v);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
}

/// The busybox shell of the interactive container guest with keyboard input
/// pending: the guest booted to its shell prompt and stopped there (S0);
/// from S0 with a command line typed on COM1, once straight to its end, and
/// once cut right after the load, while the typed bytes still wait in the
/// UART and in vx86's input queue (saved with the snapshot), then restored
/// with nothing more typed. The shell runs the command either way: the
/// serial bytes and the final state hash are equal.
#[test]
fn debian_shell_with_input_pending_restored_matches_the_straight_run() {
    let Some(mut args) = ctr_guest_args() else {
        return;
    };
    if let Some(a) = args.iter_mut().find(|a| a.starts_with("console=ttyS0")) {
        a.push_str(" vx86.interactive=1");
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tmp = TempDir::new("snap-shell");
    let (s0, s1) = (tmp.join("shell.vx86snap"), tmp.join("cut.vx86snap"));
    let (s0_s, s1_s) = (s0.to_str().unwrap(), s1.to_str().unwrap());
    let input = tmp.join("typed.txt");
    std::fs::write(&input, b"echo SNAP-$((6*7))\nreboot -f\n").unwrap();
    fn with<'a>(args: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
        args.iter().chain(more).copied().collect()
    }

    // Booted and idle at the prompt (about 1.9 G instructions, then idle).
    let boot = run(&with(
        &args,
        &["--max-insns", "3000000000", "--save-on-exit", s0_s],
    ));
    assert_eq!(boot.status, Some(0), "{}", boot.stderr);
    let log = String::from_utf8_lossy(&boot.stdout);
    assert!(log.contains("built-in shell (ash)"), "no shell:\n{log}");

    let end = "6000000000";
    let straight = run_with_input(
        &with(
            &args,
            &["-loadvm", s0_s, "--max-insns", end, "--state-hash"],
        ),
        &input,
    );
    let cut = run_with_input(
        &with(
            &args,
            &[
                "-loadvm",
                s0_s,
                "--max-insns",
                "3000002000",
                "--save-on-exit",
                s1_s,
            ],
        ),
        &input,
    );
    assert_eq!(cut.status, Some(0), "{}", cut.stderr);
    let restored = run(&with(
        &args,
        &["-loadvm", s1_s, "--max-insns", end, "--state-hash"],
    ));

    let typed = String::from_utf8_lossy(&straight.stdout);
    assert!(
        typed.contains("SNAP-42"),
        "the shell did not run it:\n{typed}"
    );
    let mut joined = cut.stdout.clone();
    joined.extend_from_slice(&restored.stdout);
    assert!(
        joined == straight.stdout,
        "serial differs\nstraight:\n{typed}\ncut + restored:\n{}",
        String::from_utf8_lossy(&joined)
    );
    assert!(
        !String::from_utf8_lossy(&cut.stdout).contains("SNAP-42"),
        "the command ran before the cut: the input was not pending"
    );
    assert_eq!(restored.state_hash(), straight.state_hash());
    assert_eq!(restored.status, straight.status, "{}", restored.stderr);
}

/// The disk guest (ext4 root on an ATA disk, crun) under `-snapshot`, cut
/// after its root is mounted and written, while the container runs: the
/// overlay and the guest's unflushed page cache (it resets without a sync)
/// go into the snapshot; the continued run equals the straight one, and the
/// image is untouched.
#[test]
fn disk_guest_under_snapshot_restored_matches_the_straight_run() {
    let Some((args, disk)) = common::guest::disk_guest_args() else {
        return;
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = common::guest::file_crc(&disk);
    let tmp = TempDir::new("snap-disk");
    let snap = tmp.join("disk.vx86snap");
    // The run resets at about 3.01 G; ext4 mounts at about 2.76 G.
    let straight = assert_restore_matches(&args, 3_500_000_000, 2_850_000_000, &snap, None);
    let log = String::from_utf8_lossy(&straight.stdout);
    assert!(log.contains("GUEST-DONE"), "{log}");
    let hash = straight.state_hash();
    assert!(
        !hash.contains("overlays 00000000"),
        "the guest wrote nothing: {hash}"
    );
    assert_eq!(
        common::guest::file_crc(&disk),
        before,
        "-snapshot wrote to the image"
    );
}

/// The transport state of the saved device `name` in the snapshot at `snap`.
fn saved_virtio(snap: &Path, name: &str) -> vx86::devices::virtio::pci::TransportState {
    let s = vx86::snapshot::read_file(snap).expect("read the snapshot");
    let board = s.platform_state().expect("decode the board's state");
    let dev = board
        .devices
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no {name} in the snapshot"));
    vx86::snapshot::decode(&dev.state).expect("decode the transport state")
}

/// An instruction count near `guess` where the guest's serial output has
/// printed `after` but not yet `before`: a few runs to `--max-insns`,
/// stepping by 300 M instructions (the window should be wider than that).
fn cut_between(args: &[&str], guess: u64, after: &str, before: &str) -> u64 {
    let mut cut = guess;
    for _ in 0..4 {
        let n = cut.to_string();
        let mut a = args.to_vec();
        a.extend(["--max-insns", &n]);
        let out = String::from_utf8_lossy(&run(&a).stdout).into_owned();
        match (out.contains(after), out.contains(before)) {
            (true, false) => return cut,
            (false, _) => cut += 300_000_000,
            (true, true) => cut -= 300_000_000,
        }
    }
    panic!("no cut near {guess} between {after:?} and {before:?} (the guest changed?)");
}

/// The container guest's virtio disk test (`vx86.blk=1`: `/dev/vda` read,
/// then two writes each with a flush) on a virtio-blk-pci drive under
/// `-snapshot`, cut between the two writes: the transport (queue cursors,
/// ISR), the first write in the overlay and the guest's page cache go into
/// the snapshot; the continued run gives the straight run's serial bytes and
/// state hash, and the image is untouched.
#[test]
fn virtio_blk_guest_under_snapshot_restored_matches_the_straight_run() {
    let Some(mut args) = ctr_guest_args() else {
        return;
    };
    let initramfs = common::guest::guest_dir().join("initramfs-ctr.cpio.gz");
    if !common::guest::initramfs_has(&initramfs, "bin/vx86-blk") {
        return;
    }
    if let Some(a) = args.iter_mut().find(|a| a.starts_with("console=ttyS0")) {
        a.push_str(" vx86.blk=1");
    }
    let tmp = TempDir::new("snap-virtio-blk");
    let img = tmp.join("disk.img");
    let pattern: Vec<u8> = (0..8usize << 20)
        .map(|i| (i.wrapping_mul(7) ^ (i / 512)) as u8)
        .collect();
    std::fs::write(&img, &pattern).unwrap();
    let drive = format!(
        "file={},format=raw,if=virtio,serial=vx86-snap",
        img.display()
    );
    args.extend(["-drive".into(), drive, "-snapshot".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let snap = tmp.join("blk.vx86snap");
    // The guest prints BLK-WRITE-1 after its first flushed write (about
    // 1.97 G instructions in) and then sleeps a second, 10^9 instructions of
    // idle under -icount shift=0, before the second write (BLK-WRITE-DONE,
    // then a reboot near 2.85 G). Cut in the middle of that second; a newer
    // Debian kernel that moves the boot by more than a few hundred million
    // instructions moves the cut with it.
    let cut = cut_between(&args, 2_450_000_000, "BLK-WRITE-1", "BLK-WRITE-DONE");
    let straight = assert_restore_matches(&args, 3_500_000_000, cut, &snap, None);
    let log = String::from_utf8_lossy(&straight.stdout);
    assert!(log.contains("BLK-SERIAL vx86-snap"), "{log}");
    assert!(log.contains("BLK-WRITE-DONE"), "{log}");
    assert!(!log.contains("BLK-WRITE-FAILED"), "{log}");

    // What the cut caught: the driver live, the first write in the overlay.
    let t = saved_virtio(&snap, "virtio-blk-pci");
    assert_ne!(
        t.status & 4,
        0,
        "DRIVER_OK at the cut (status {:#x})",
        t.status
    );
    assert!(t.queues[0].used_idx > 0, "no request served before the cut");
    let s = vx86::snapshot::read_file(&snap).unwrap();
    let overlay = s.overlays.iter().find(|o| o.slot == "virtio0");
    assert!(
        overlay.is_some_and(|o| !o.lbas.is_empty()),
        "the cut is not after the first write: move it (the guest changed?)"
    );
    let rec = s
        .config
        .drives
        .iter()
        .find(|d| d.slot == "virtio0")
        .unwrap();
    assert_eq!((rec.format.as_str(), rec.overlay), ("raw", true));
    assert!(
        std::fs::read(&img).unwrap() == pattern,
        "-snapshot wrote to the image"
    );

    // The drive is checked on load as an IDE disk is.
    let mut changed = pattern.clone();
    changed[4096] ^= 1;
    std::fs::write(&img, &changed).unwrap();
    let mut v = args.clone();
    v.extend(["-loadvm", snap.to_str().unwrap()]);
    let r = run(&v);
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "disk image {} changed since the snapshot was taken",
            img.display()
        )),
        "{}",
        r.stderr
    );
}

/// The virtio-net card's transmit queue's used index at instruction `cut`
/// (a run saved there): 1 between the guest's DHCP DISCOVER and REQUEST.
/// u16::MAX when the guest had already finished (GUEST-DONE) by then.
fn tx_used_at(args: &[&str], cut: u64, snap: &Path) -> u16 {
    let n = cut.to_string();
    let mut a = args.to_vec();
    a.extend(["--max-insns", &n, "--save-on-exit", snap.to_str().unwrap()]);
    let r = run(&a);
    if String::from_utf8_lossy(&r.stdout).contains("GUEST-DONE") {
        return u16::MAX;
    }
    assert_eq!(r.status, Some(0), "saving run failed:\n{}", r.stderr);
    saved_virtio(snap, "virtio-net-pci").queues[1].used_idx
}

/// An instruction count between the guest's DHCP DISCOVER and REQUEST:
/// `guess` when it is one, else found by bisection within 400 M
/// instructions of it (the first point after DISCOVER, plus 4 M).
fn dhcp_cut(args: &[&str], guess: u64, snap: &Path) -> u64 {
    if tx_used_at(args, guess, snap) == 1 {
        return guess;
    }
    let (mut lo, mut hi) = (guess - 400_000_000, guess + 400_000_000);
    assert!(tx_used_at(args, lo, snap) == 0, "DISCOVER before {lo}");
    assert!(tx_used_at(args, hi, snap) >= 1, "no DISCOVER by {hi}");
    while hi - lo > 2_000_000 {
        let mid = lo + (hi - lo) / 2;
        if tx_used_at(args, mid, snap) >= 1 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let cut = hi + 4_000_000;
    assert_eq!(
        tx_used_at(args, cut, snap),
        1,
        "DISCOVER by {hi}, REQUEST too by {cut}"
    );
    eprintln!("virtio-net cut: {cut} (the guest moved; the test's guess is {guess})");
    cut
}

/// The container guest with a virtio network card on user networking
/// (`-netdev user` with a `hostfwd` rule, `-device virtio-net-pci`), cut in
/// the middle of its DHCP exchange (DISCOVER sent, REQUEST not yet) and
/// again after the lease configured eth0, while its containers run. The
/// card's queues and the virtual network's lease and neighbor table come
/// back; with no host traffic the continued run equals the straight one
/// (the same serial bytes and state hash). A load on another network
/// (another `hostfwd` rule) is refused in one line.
#[test]
fn virtio_net_guest_restored_matches_the_straight_run() {
    let Some(base) = ctr_guest_args() else {
        return;
    };
    let with_net = |fwd: &str| -> Vec<String> {
        let mut v = base.clone();
        v.extend([
            "-netdev".into(),
            format!("user,id=n0,hostfwd=tcp:127.0.0.1:0-:{fwd}"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
        v
    };
    let args = with_net("8080");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let tmp = TempDir::new("snap-virtio-net");
    let snap = tmp.join("net.vx86snap");
    let n = 2_500_000_000;
    // DHCP (scanned in 5 M steps): DISCOVER between 1.810 and 1.815 G
    // instructions, REQUEST between 1.835 and 1.840 G, the lease printed
    // before 1.865 G; the guest powers off at about 1.895 G. A newer Debian
    // kernel moves these: then the cut is searched for.
    let cut = dhcp_cut(&argv, 1_825_000_000, &snap);
    let straight = assert_restore_matches(&argv, n, cut, &snap, None);
    let t = saved_virtio(&snap, "virtio-net-pci");
    assert_ne!(
        t.status & 4,
        0,
        "DRIVER_OK at the cut (status {:#x})",
        t.status
    );
    assert_eq!(
        t.queues[1].used_idx, 1,
        "the cut is not between DISCOVER and REQUEST: move it (the guest changed?)"
    );
    let log = String::from_utf8_lossy(&straight.stdout);
    assert!(log.contains("DHCP-LEASE ip=10.0.2.15"), "{log}");
    assert!(log.contains("GUEST-DONE"), "{log}");

    // After the lease (printed within 40 M instructions of the cut above),
    // before the power-off.
    assert_restore_matches(&argv, n, cut + 50_000_000, &snap, None);
    let s = vx86::snapshot::read_file(&snap).unwrap();
    assert_eq!(s.config.nics.len(), 1);
    assert!(
        s.config.nics[0]
            .netdev
            .ends_with(",hostfwd=tcp:127.0.0.1:0-10.0.2.15:8080"),
        "{:?}",
        s.config.nics[0]
    );
    let other = with_net("8081");
    assert_refused(
        &other,
        &[],
        &snap,
        &common::guest::guest_dir().join("initramfs-ctr.cpio.gz"),
        "snapshot was taken with network card 0 virtio-net-pci,mac=52:54:00:12:34:56 on user,",
    );
}
