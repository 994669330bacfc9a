//! ACPI on `-M pc -cpu qemu64,+apic` with the Debian container guest
//! (`scripts/guest/acpi.sh`, kernel parameters vx86.pwrbtn=1 and
//! vx86.hotplug=1): the monitor's `system_powerdown` presses the fixed
//! power button and Linux's ACPI button driver reports it; a virtio disk
//! added and removed at run time through QEMU's PIIX4 ACPI PCI hotplug.
//! Skipped (with a SKIP line) without the guests of scripts/build-guest.sh.

mod common;

use common::guest::{initramfs_has, need, Hmp};
use common::Watched;
use std::time::Duration;

/// How long a guest may take to reach a marker (debug builds are slower).
const LIMIT: Duration = Duration::from_secs(20 * 60);

/// The container guest on `-cpu qemu64,+apic` in test mode `mode`, with the
/// human monitor on `sock`; None (after a SKIP line) without the guest or
/// when its initramfs predates vx86-acpi.
fn acpi_guest(mode: &str, sock: &std::path::Path) -> Option<std::process::Command> {
    let dir = need(&["vmlinuz", "initramfs-ctr.cpio.gz"])?;
    let initrd = dir.join("initramfs-ctr.cpio.gz");
    if !initramfs_has(&initrd, "bin/vx86-acpi") {
        return None;
    }
    let mut cmd = common::vx86();
    cmd.args(["-M", "pc", "-cpu", "qemu64,+apic", "-m", "256M", "-kernel"])
        .arg(dir.join("vmlinuz"))
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            &format!("console=ttyS0 panic=-1 {mode}"),
            "-nographic",
            "-no-reboot",
            "-monitor",
            &format!("unix:{},server,nowait", sock.display()),
        ]);
    Some(cmd)
}

#[test]
fn system_powerdown_presses_the_acpi_power_button() {
    let tmp = common::TempDir::new("acpi-pwrbtn");
    let sock = tmp.join("hmp.sock");
    let Some(cmd) = acpi_guest("vx86.pwrbtn=1", &sock) else {
        return;
    };
    let mut vm = Watched::spawn(cmd);
    let mut hmp = Hmp::connect(&sock);
    assert!(
        vm.wait_for("PWRBTN-READY event", LIMIT).is_some(),
        "no power button device:\n{}",
        vm.text()
    );
    // The guest's reader is waiting (evdev delivers only to open readers);
    // press again should a press still have been early.
    let mut pressed = None;
    for _ in 0..30 {
        assert_eq!(hmp.cmd("system_powerdown"), "");
        pressed = vm.wait_for("PWRBTN-EVENT", Duration::from_secs(10));
        if pressed.is_some() {
            break;
        }
    }
    assert!(pressed.is_some(), "no power button event:\n{}", vm.text());
    // The guest read EV_KEY KEY_POWER from the button's input device, then
    // powered off through _S5: vx86 exits 0. (Wait for the whole line: the
    // marker above can arrive before the rest of it.)
    assert!(
        vm.wait_for("PWRBTN-EVENT type=0001 code=0074", Duration::from_secs(30))
            .is_some(),
        "{}",
        vm.text()
    );
    assert_eq!(
        vm.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        vm.text()
    );
    assert!(vm.text().contains("ACPI: button: Power Button [PWRF]"));
}

/// A virtio disk added and removed at run time (issue 13 item 5): QEMU's
/// PIIX4 ACPI PCI hotplug, which Linux's acpiphp handles. The guest finds
/// /dev/vda after `device_add`, writes a marker with fsync; `device_del`
/// sends the eject request, the guest ejects the slot (B0EJ) and the disk
/// is gone from its PCI bus; the marker is in the image file.
#[test]
fn virtio_disk_hot_added_and_removed_through_acpi() {
    let tmp = common::TempDir::new("acpi-hotplug");
    let sock = tmp.join("hmp.sock");
    let Some(cmd) = acpi_guest("vx86.hotplug=1", &sock) else {
        return;
    };
    let img = tmp.join("hot.img");
    std::fs::write(&img, vec![0u8; 8 << 20]).expect("write the image");
    let mut vm = Watched::spawn(cmd);
    let mut hmp = Hmp::connect(&sock);
    assert!(
        vm.wait_for("HOTPLUG-READY", LIMIT).is_some(),
        "{}",
        vm.text()
    );
    // Bad input gets one error line each.
    for bad in [
        "device_add virtio-blk-pci,drive=nosuch",
        "device_add e1000,drive=d1",
        "device_add virtio-blk-pci,drive=d1,addr=1",
        "drive_add 0 file=/nonexistent/x.img,format=raw,if=none,id=bad",
        "device_del nosuch",
    ] {
        let out = hmp.cmd(bad);
        assert_eq!(out.lines().count(), 1, "{bad}: {out:?}");
    }
    let out = hmp.cmd(&format!(
        "drive_add 0 file={},format=raw,if=none,id=d1",
        img.display()
    ));
    assert_eq!(out.trim(), "OK");
    assert_eq!(hmp.cmd("device_add virtio-blk-pci,drive=d1,id=hp1"), "");
    assert!(
        vm.wait_for("HOTPLUG-WRITTEN", LIMIT).is_some(),
        "{}",
        vm.text()
    );
    let text = vm.text();
    assert!(
        text.contains("virtio_blk virtio0: [vda] 16384 512-byte logical blocks"),
        "{text}"
    );
    assert!(
        text.contains("HOTPLUG-ADDED size=16384 pci=0000:00:00.0 0000:00:01.0 0000:00:02.0"),
        "{text}"
    );
    // A snapshot cannot record a hot-plugged device: one clear line.
    let out = hmp.cmd(&format!("savevm {}", tmp.join("snap").display()));
    assert!(out.contains("added or removed at run time"), "{out}");
    assert_eq!(hmp.cmd("device_del hp1"), "");
    assert!(
        vm.wait_for("HOTPLUG-REMOVED", LIMIT).is_some(),
        "{}",
        vm.text()
    );
    // The slot is empty again on the guest's bus (00:02.0 gone).
    let text = vm.text();
    let removed = text
        .lines()
        .find(|l| l.starts_with("HOTPLUG-REMOVED"))
        .map(str::trim_end);
    assert_eq!(
        removed,
        Some("HOTPLUG-REMOVED pci=0000:00:00.0 0000:00:01.0"),
        "{text}"
    );
    assert_eq!(
        vm.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        vm.text()
    );
    let data = std::fs::read(&img).expect("read the image");
    assert!(
        data.starts_with(b"VX86-HOTPLUG-MARKER written by the guest\n"),
        "marker missing: {:?}",
        &data[..64]
    );
}
