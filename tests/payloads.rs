//! Third-party firmware and bootloaders from Debian's packages on vx86:
//! SeaBIOS and the Bochs legacy BIOS run as `-bios`, and an extlinux disk
//! with Debian's stock kernel boots through vx86's own BIOS.
//!
//! The payloads come from `scripts/fetch-firmware-payloads.sh` (cached under
//! `$VX86_GUEST_CACHE/payloads`, default `./guest-cache`); when they are
//! absent these tests say so and skip. Each test prints the virtual and wall
//! time at which every marker appeared.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use vx86::block::{open_drive, DriveSpec};
use vx86::machine::{Machine, MachineConfig, RunExit};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn payload(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("VX86_GUEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guest-cache"));
    let p = base.join("payloads").join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found; run scripts/fetch-firmware-payloads.sh",
            p.display()
        );
        None
    }
}

struct Run {
    m: Machine,
    serial: Shared,
    debugcon: Shared,
    start: Instant,
}

impl Run {
    fn new(bios: Option<&PathBuf>) -> Run {
        let mut m = Machine::new(MachineConfig {
            ram: 256 << 20,
            no_reboot: true,
            ..MachineConfig::default()
        })
        .unwrap();
        match bios {
            Some(p) => {
                let img = std::fs::read(p).unwrap();
                m.cpu.mem.load_bios(&p.display().to_string(), &img).unwrap();
            }
            None => vx86::boot::builtin::load_bios(&mut m).unwrap(),
        }
        let serial = Shared::default();
        let debugcon = Shared::default();
        m.sinks.serial = Some(Box::new(serial.clone()));
        m.sinks.debugcon = Some(Box::new(debugcon.clone()));
        Run {
            m,
            serial,
            debugcon,
            start: Instant::now(),
        }
    }

    /// Runs until `marker` shows up in the chosen output (`screen` reads the
    /// VGA text rows) or `budget` nanoseconds of virtual time (instructions plus
    /// skipped idle time) have passed; prints when.
    fn wait_for(&mut self, what: &str, marker: &str, budget: u64) -> bool {
        let limit = self.m.cpu.icount + budget;
        let mut ended = false;
        loop {
            let text = match what {
                "serial" => self.serial.text(),
                "debugcon" => self.debugcon.text(),
                _ => self.m.plat.vga.text_rows().unwrap_or_default().join("\n"),
            };
            if text.contains(marker) {
                eprintln!(
                    "marker {marker:?} on {what}: {:.2} s wall since this test's start, {:.2} s virtual",
                    self.start.elapsed().as_secs_f64(),
                    self.m.cpu.icount as f64 / 1e9
                );
                return true;
            }
            if ended || self.m.cpu.icount >= limit {
                return false;
            }
            self.m.cfg.max_insns = Some((self.m.cpu.icount + 2_000_000).min(limit));
            let exit = self.m.run();
            if exit != RunExit::InstructionLimit {
                eprintln!("run ended: {}", exit.describe());
                ended = true;
            }
        }
    }
}

#[test]
fn seabios_completes_post_and_searches_boot_devices() {
    let Some(bios) = payload("seabios.bin") else {
        return;
    };
    let mut r = Run::new(Some(&bios));
    let ok = r.wait_for("debugcon", "All threads complete.", 3_000_000_000);
    let log = r.debugcon.text();
    assert!(ok, "SeaBIOS did not finish POST; port 402h log:\n{log}");
    assert!(
        r.wait_for("debugcon", "Searching bootorder", 1_000_000_000)
            || r.wait_for("debugcon", "No bootable device", 3_000_000_000),
        "no boot-device search on port 402h:\n{}",
        r.debugcon.text()
    );
}

#[test]
fn bochs_legacy_bios_reaches_its_boot_device_search() {
    let Some(bios) = payload("BIOS-bochs-legacy") else {
        return;
    };
    let mut r = Run::new(Some(&bios));
    // Its ATA probe and boot menu wait on the tick count: about 3 s virtual.
    let ok = r.wait_for("debugcon", "No bootable device", 10_000_000_000);
    assert!(
        ok,
        "Bochs BIOS did not reach its boot-device search; port 402h log:\n{}",
        r.debugcon.text()
    );
}

/// extlinux on an MBR-partitioned ext2 disk, booted by vx86's BIOS: the
/// SYSLINUX banner and load line on COM1, the SAY marker on the screen, then
/// Debian's bzImage through its real-mode setup and its own XZ decompression
/// (about 5 G guest instructions: nothing is decompressed on the host on this
/// path) to the kernel's first console line.
#[test]
fn extlinux_disk_boots_through_our_bios() {
    let Some(img) = payload("extlinux.img") else {
        return;
    };
    let mut r = Run::new(None);
    let spec = DriveSpec::parse(&format!(
        "file={},format=raw,snapshot=on",
        img.display().to_string().replace(',', ",,")
    ))
    .unwrap();
    r.m.plat.ata[0]
        .attach(0, open_drive(&spec).unwrap())
        .unwrap();
    assert!(
        r.wait_for("serial", "SYSLINUX 6.04", 2_000_000_000),
        "no SYSLINUX banner on COM1:\n{}",
        r.serial.text()
    );
    assert!(
        r.wait_for(
            "screen",
            "vx86-extlinux-marker: syslinux.cfg read",
            1_000_000_000
        ),
        "SAY marker not on screen"
    );
    assert!(
        r.wait_for("serial", "Loading /vmlinuz... ok", 10_000_000_000),
        "kernel not loaded through INT 13h:\n{}",
        r.serial.text()
    );
    assert!(
        r.wait_for("serial", "Linux version 6.", 8_000_000_000),
        "Debian kernel did not print its first console line; COM1:\n{}",
        r.serial.text()
    );
}

/// The Bochs BIOS and SeaBIOS boot vx86's built-in boot disk: they find the
/// drive on the primary channel and take the boot order from CMOS 3Dh/38h
/// (which vx86 fills as QEMU does: hard disk first). Before CMOS had a boot
/// order, the Bochs BIOS said "No bootable device" with the disk attached.
#[test]
fn third_party_bioses_boot_the_builtin_disk() {
    for name in ["BIOS-bochs-legacy", "seabios.bin"] {
        let Some(bios) = payload(name) else {
            continue;
        };
        let mut r = Run::new(Some(&bios));
        vx86::boot::builtin::attach_boot_disk(&mut r.m).unwrap();
        assert!(
            r.wait_for("serial", "Booted from drive 80h", 10_000_000_000),
            "{name} did not boot the built-in disk; COM1:\n{}\nport 402h:\n{}",
            r.serial.text(),
            r.debugcon.text()
        );
        assert!(
            r.wait_for("serial", "uptime 1 s", 3_000_000_000),
            "{name}: the boot disk's clock does not run:\n{}",
            r.serial.text()
        );
        let out = r.serial.text();
        assert!(out.contains("Disk: 4 sectors"), "{name}: {out}");
    }
}

/// The extlinux disk under the Bochs BIOS, as a cross-check of the disk image.
#[test]
fn bochs_bios_boots_the_extlinux_disk() {
    let (Some(bios), Some(img)) = (payload("BIOS-bochs-legacy"), payload("extlinux.img")) else {
        return;
    };
    let mut r = Run::new(Some(&bios));
    let spec = DriveSpec::parse(&format!(
        "file={},format=raw,snapshot=on",
        img.display().to_string().replace(',', ",,")
    ))
    .unwrap();
    r.m.attach_drive(0, open_drive(&spec).unwrap()).unwrap();
    assert!(
        r.wait_for("serial", "Loading /vmlinuz... ok", 10_000_000_000),
        "COM1:\n{}\nport 402h:\n{}",
        r.serial.text(),
        r.debugcon.text()
    );
}
