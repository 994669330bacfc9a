//! GRUB 2 from Debian's grub-pc-bin booting the Debian container guest
//! through vx86's own BIOS, with the time a person sees (issue 17: "a GRUB
//! disk with a 5 s timeout boots in about 5 s plus the kernel's own time").
//! The disks come from `scripts/fetch-firmware-payloads.sh` (`grub.img`:
//! `set timeout=5`; `grub-menu.img`: `set timeout=-1`); the tests skip when
//! they are absent. vx86 runs with its default, host-clock time, as a user
//! runs it, and the serial console is timed on the wall clock.

mod common;

use common::{payload, Watched};
use std::time::Duration;

/// GRUB's menu header, its first draw on COM1.
const MENU: &str = "GNU GRUB  version 2";
/// What GRUB prints when the countdown has run out, before it loads anything.
const COUNTDOWN_END: &str = "Booting `Debian container guest (vx86)'";
/// The kernel's first output: its real-mode setup code's early console
/// (`linux16` with `earlyprintk=serial,ttyS0,115200 debug`).
const KERNEL_FIRST: &str = "early console in setup code";

fn boot(img: &std::path::Path) -> Watched {
    let mut c = common::vx86_host_time();
    c.args(["-m", "512M", "-nographic", "-no-reboot", "-drive"])
        .arg(format!(
            "file={},format=raw,snapshot=on",
            img.display().to_string().replace(',', ",,")
        ));
    Watched::spawn(c)
}

/// The 5-second countdown takes 5 s of wall time (measured from the menu's
/// first draw to the countdown's end), and the guest goes on to
/// `CONTAINER-OK`. Before guest time followed the host's clock the same
/// countdown took 144 s; before merged timer ticks were raised again
/// (`Platform::reinject_lost_tick`) it took up to 5.87 s on a loaded host,
/// as GRUB counts BIOS ticks and takes them only between BIOS calls. The time from the countdown's end to the kernel's
/// first output is GRUB reading the kernel and initramfs (10 MiB) through INT
/// 13h and copying them, byte by byte, with its C `memmove`: it is printed,
/// not bounded tightly, as it is CPU work whose wall time depends on the host.
#[test]
fn grub_countdown_takes_five_seconds_and_the_guest_boots() {
    let Some(img) = payload("grub.img") else {
        return;
    };
    let mut w = boot(&img);
    let menu = w.wait_for(MENU, Duration::from_secs(60));
    let Some(menu) = menu else {
        panic!("no GRUB menu on COM1:\n{}", w.text());
    };
    let end = w
        .wait_for(COUNTDOWN_END, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the countdown did not end:\n{}", w.text()));
    let kernel = w
        .wait_for(KERNEL_FIRST, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no kernel output:\n{}", w.text()));
    let countdown = (end - menu).as_secs_f64();
    let to_kernel = (kernel - menu).as_secs_f64();
    eprintln!(
        "countdown {countdown:.2} s (menu's first draw to its end); menu to the kernel's first output {to_kernel:.2} s; GRUB's load {:.2} s",
        (kernel - end).as_secs_f64()
    );
    assert!(
        (4.5..=5.5).contains(&countdown),
        "the 5-second countdown took {countdown:.2} s of wall time"
    );
    // Each second is drawn.
    let out = w.text();
    for s in 1..=5 {
        let line = format!("executed automatically in {s}s.");
        assert!(out.contains(&line), "no {line:?}:\n{out}");
    }
    assert!(
        w.wait_for("CONTAINER-OK", Duration::from_secs(900))
            .is_some(),
        "the container guest did not reach CONTAINER-OK:\n{}",
        w.text()
    );
    eprintln!(
        "CONTAINER-OK {:.2} s after the menu's first draw",
        (w.seen("CONTAINER-OK").unwrap() - menu).as_secs_f64()
    );
}

/// With `set timeout=-1` GRUB draws its menu and waits for a key: no
/// countdown, no boot, for as long as nobody types.
#[test]
fn grub_without_timeout_stays_at_the_menu() {
    let Some(img) = payload("grub-menu.img") else {
        return;
    };
    let mut w = boot(&img);
    assert!(
        w.wait_for(MENU, Duration::from_secs(60)).is_some(),
        "no GRUB menu on COM1:\n{}",
        w.text()
    );
    assert!(w
        .wait_for("Debian container guest (vx86)", Duration::from_secs(10))
        .is_some());
    std::thread::sleep(Duration::from_secs(7));
    let out = w.text();
    assert!(!out.contains("automatically in"), "a countdown:\n{out}");
    assert!(!out.contains("Booting `"), "GRUB booted:\n{out}");
    assert!(!out.contains(KERNEL_FIRST), "the kernel ran:\n{out}");
}

/// The GRUB disk on `-M pc` with a virtio-net card (`-nic
/// user,model=virtio-net-pci`): nothing but vx86's BIOS set the PCI bus up
/// (no `-kernel`, so vx86 does no firmware work itself), and the Debian
/// kernel finds the card at the BAR the BIOS assigned and gets a DHCP lease
/// through it, which needs its interrupt on the line the BIOS reported.
#[test]
fn grub_booted_guest_gets_its_network_from_the_bios_pci_setup() {
    let Some(img) = payload("grub.img") else {
        return;
    };
    let mut c = common::vx86_host_time();
    c.args(["-m", "512M", "-nographic", "-no-reboot", "-drive"])
        .arg(format!(
            "file={},format=raw,snapshot=on",
            img.display().to_string().replace(',', ",,")
        ))
        .args(["-nic", "user,model=virtio-net-pci"]);
    let mut w = Watched::spawn(c);
    assert!(
        w.wait_for("DHCP-LEASE ip=10.0.2.15", Duration::from_secs(900))
            .is_some(),
        "no DHCP lease:\n{}",
        w.text()
    );
    let out = w.text();
    assert!(
        out.contains("pci 0000:00:03.0: [1af4:1041] type 00 class 0x020000"),
        "{out}"
    );
    assert!(
        out.contains("pci 0000:00:03.0: BAR 0 [mem 0xfe000000-0xfe003fff]"),
        "the kernel did not keep the BIOS's BAR:\n{out}"
    );
    assert!(
        w.wait_for("CONTAINER-OK", Duration::from_secs(300))
            .is_some(),
        "{}",
        w.text()
    );
}
