//! Third-party firmware and bootloaders from Debian's packages on vx86:
//! SeaBIOS and the Bochs legacy BIOS run as `-bios`, an extlinux disk with
//! Debian's stock kernel boots through vx86's own BIOS, and memtest86+ boots
//! as `-kernel` through the Linux boot protocol.
//!
//! The payloads come from `scripts/fetch-firmware-payloads.sh` (cached under
//! `$VX86_GUEST_CACHE/payloads`, default `./guest-cache`); when they are
//! absent these tests say so and skip. Each test prints the virtual and wall
//! time at which every marker appeared.

mod common;

use common::{payload, Shared};
use std::path::PathBuf;
use std::time::Instant;

use vx86::block::{open_drive, DriveSpec};
use vx86::machine::{Machine, MachineConfig, RunExit};

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
                m.mem.load_bios(&p.display().to_string(), &img).unwrap();
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
                _ => self
                    .m
                    .vga()
                    .unwrap()
                    .text_rows()
                    .unwrap_or_default()
                    .join("\n"),
            };
            if text.contains(marker) {
                eprintln!(
                    "marker {marker:?} on {what}: {:.2} s wall since this test's start, {:.2} s virtual, {} guest instructions",
                    self.start.elapsed().as_secs_f64(),
                    self.m.cpu.icount as f64 / 1e9,
                    self.m.cpu.icount - self.m.idle_insns
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
    r.m.ata(0)
        .unwrap()
        .attach(0, open_drive(&spec).unwrap())
        .unwrap();
    assert!(
        r.wait_for("serial", "SYSLINUX 6.04", 2_000_000_000),
        "no SYSLINUX banner on COM1:\n{}",
        r.serial.text()
    );
    // The BIOS's banner and boot line, then SYSLINUX's first banner (the
    // one with "EDD"), which it prints through INT 10h only: COM1 has it from
    // the BIOS's serial console mirror, as SeaBIOS's sercon does.
    let out = r.serial.text();
    assert!(
        out.starts_with(
            "vx86 BIOS (version 0.1, 11/24/26)\r\nBooting from Hard Disk...\r\n\r\nSYSLINUX 6.04 EDD"
        ),
        "{out:?}"
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
    // syslinux.cfg's SERIAL programmed COM1 (MCR without the BIOS's OUT1
    // mark): from then on SYSLINUX writes COM1 itself and the mirror is off,
    // so nothing is doubled (under SeaBIOS this line comes out twice).
    let out = r.serial.text();
    assert_eq!(out.matches("Loading /vmlinuz").count(), 1, "{out:?}");
    assert_eq!(out.matches("SYSLINUX 6.04 2021").count(), 1, "{out:?}");
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

/// The prompt memtest86+ draws last on its first screen, under the system
/// information it has just gathered.
const MEMTEST_PROMPT: &str =
    "Press <F1> to configure, <F2> to disable SMP, <Enter> to start testing";

/// memtest86+ booted as `-kernel` with `console` described in boot_params.
fn boot_memtest(console: vx86::boot::Console) -> Option<Run> {
    let bin = payload("memtest86+x64.bin")?;
    let mut r = Run::new(None);
    let opts = vx86::boot::BootOptions {
        console,
        ..Default::default()
    };
    let k = vx86::boot::read_files(&bin.display().to_string(), None, None, opts).unwrap();
    r.m.boot_kernel(k).unwrap();
    Some(r)
}

/// memtest86+ 6.10 (Debian's package) as `-kernel memtest86+x64.bin`, as
/// `qemu-system-x86_64 -M isapc -kernel` boots it: its header follows the
/// Linux boot protocol (2.12, 64-bit entry, no compressed payload), it reads
/// boot_params for the screen and the memory map, and draws its first screen
/// into VGA text memory (about 52 M instructions). The CPU line is CPUID's
/// brand string, CLK is the TSC counted over a 50 ms PIT channel 2 one-shot
/// polled on port 61h (1000 MHz: vx86's TSC counts virtual nanoseconds),
/// Memory is the e820 RAM. Before the fix the loader refused the image:
/// syssize counts paragraphs rounded up, and the file ends 8 bytes before
/// syssize * 16.
#[test]
fn memtest86plus_boots_to_its_first_screen() {
    let Some(mut r) = boot_memtest(vx86::boot::Console::VgaText) else {
        return;
    };
    let ok = r.wait_for("screen", MEMTEST_PROMPT, 500_000_000);
    assert_memtest_first_screen(&mut r, ok);
}

/// The first screen's system information on the VGA text rows.
fn assert_memtest_first_screen(r: &mut Run, ok: bool) {
    let rows = r.m.vga().unwrap().text_rows().unwrap_or_default();
    let screen = rows.join("\n");
    eprintln!("memtest86+ screen:\n{screen}");
    assert!(
        ok,
        "memtest86+ did not draw its first screen:\n{screen}\nCOM1:\n{}",
        r.serial.text()
    );
    let row = |i: usize| rows.get(i).map_or("", |s| s.as_str());
    assert!(row(0).contains("Memtest86+ v6."), "{screen}");
    assert!(
        row(0).contains("vx86 Virtual CPU (software x86-64)"),
        "{screen}"
    );
    assert!(row(1).contains("CLK/Temp: 1000MHz"), "{screen}");
    assert!(row(5).contains("Memory  :  256MB"), "{screen}");
    assert!(row(7).contains("SMP: N/A"), "{screen}");
    assert!(row(7).contains("Status: Init."), "{screen}");
    assert!(row(24).contains("<ESC> Exit"), "{screen}");
}

/// The screen as the window would show it (text or VBE), rendered now.
fn frame(m: &mut Machine) -> vx86::devices::vga::Frame {
    let mut f = vx86::devices::vga::Frame::default();
    let now = m.plat.clock.now(m.cpu.icount);
    m.vga().unwrap().invalidate();
    m.vga().unwrap().render(&mut f, now);
    f
}

/// Which 8x16 cells of an 80x25 console at (`x0`, `y0`) in `f` hold a glyph
/// (more than one colour), one string per row: '#' inked, ' ' blank.
fn lfb_cells(f: &vx86::devices::vga::Frame, x0: u32, y0: u32) -> Vec<String> {
    (0..25)
        .map(|row| {
            (0..80)
                .map(|col| {
                    let at = |x: u32, y: u32| {
                        f.pixels
                            .get(((y0 + row * 16 + y) * f.width + x0 + col * 8 + x) as usize)
                            .copied()
                    };
                    let first = at(0, 0);
                    let inked = (0..16).any(|y| (0..8).any(|x| at(x, y) != first));
                    if inked {
                        '#'
                    } else {
                        ' '
                    }
                })
                .collect()
        })
        .collect()
}

/// memtest86+ with `--boot-fb 1024x768`: screen_info says VIDEO_TYPE_VLFB, a
/// 32-bpp Bochs VBE framebuffer, and memtest86+ draws its 80x25 console with
/// its own 8x16 font, centred (640x400 at 192,184). Its first screen must
/// hold the same text as on VGA text: every cell that has a character there
/// has glyph pixels here, and every blank cell is a single colour.
#[test]
fn memtest86plus_draws_the_same_first_screen_on_a_vbe_framebuffer() {
    let Some(mut text) = boot_memtest(vx86::boot::Console::VgaText) else {
        return;
    };
    assert!(text.wait_for("screen", MEMTEST_PROMPT, 500_000_000));
    let want: Vec<String> = text
        .m
        .vga()
        .unwrap()
        .text_rows()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            r.chars()
                .map(|c| if c == ' ' { ' ' } else { '#' })
                .collect()
        })
        .collect();
    let Some(mut r) = boot_memtest(vx86::boot::Console::Framebuffer {
        width: 1024,
        height: 768,
    }) else {
        return;
    };
    let (x0, y0) = ((1024 - 640) / 2, (768 - 400) / 2);
    let limit = 500_000_000;
    let mut got = Vec::new();
    while r.m.cpu.icount < limit {
        r.m.cfg.max_insns = Some(r.m.cpu.icount + 2_000_000);
        let exit = r.m.run();
        assert_eq!(exit, RunExit::InstructionLimit, "{}", exit.describe());
        let f = frame(&mut r.m);
        assert_eq!((f.width, f.height), (1024, 768));
        got = lfb_cells(&f, x0, y0);
        if got.get(18) == want.get(18) {
            // Nothing outside the console: the margins stay black.
            let black = |x: u32, y: u32| f.pixels[(y * f.width + x) as usize] == 0;
            assert!((0..1024).all(|x| black(x, y0 - 1) && black(x, y0 + 400)));
            assert!((0..768).all(|y| black(x0 - 1, y) && black(x0 + 640, y)));
            break;
        }
    }
    eprintln!(
        "memtest86+ framebuffer cells after {} guest instructions, {:.2} s wall:\n{}",
        r.m.cpu.icount - r.m.idle_insns,
        r.start.elapsed().as_secs_f64(),
        got.join("\n")
    );
    assert_eq!(
        got, want,
        "the framebuffer's text layout differs from VGA text"
    );
}

/// The package's hybrid ISO as a raw hard disk through vx86's BIOS (as
/// `qemu -M isapc -hda memtest86+x64.iso`): its MBR is memtest86+'s own
/// loader, which prints "Loading Memtest86+" with INT 10h AH=13h, reads the
/// image with INT 13h AH=42h and jumps to memtest86+'s real-mode setup, which
/// takes the memory map from INT 15h E820h, opens A20 and enters protected
/// mode itself. The first screen is the one `-kernel` gives, memory included.
#[test]
fn memtest86plus_iso_boots_as_a_hard_disk_through_our_bios() {
    let Some(iso) = payload("memtest86+x64.iso") else {
        return;
    };
    let mut r = Run::new(None);
    let spec = DriveSpec::parse(&format!(
        "file={},format=raw,snapshot=on",
        iso.display().to_string().replace(',', ",,")
    ))
    .unwrap();
    r.m.attach_drive(0, open_drive(&spec).unwrap()).unwrap();
    assert!(
        r.wait_for("screen", "Loading Memtest86+", 200_000_000),
        "memtest86+'s MBR loader printed nothing:\n{}",
        r.m.vga()
            .unwrap()
            .text_rows()
            .unwrap_or_default()
            .join("\n")
    );
    let ok = r.wait_for("screen", MEMTEST_PROMPT, 500_000_000);
    assert_memtest_first_screen(&mut r, ok);
}

/// The Debian installer (netboot, text frontend) with plain `-kernel
/// -initrd` and no other flag shows its first screen on the VGA, as under
/// QEMU: the kernel is told about VGA text in boot_params, so its console
/// (and the installer's newt screens on tty1) use the VGA.
#[test]
fn debian_installer_shows_its_language_screen_with_plain_kernel_initrd() {
    let (Some(kernel), Some(initrd)) = (
        payload("debian-installer-linux"),
        payload("debian-installer-initrd.gz"),
    ) else {
        return;
    };
    let mut m = Machine::new(MachineConfig {
        ram: 1 << 30,
        no_reboot: true,
        ..MachineConfig::default()
    })
    .unwrap();
    vx86::boot::builtin::load_bios(&mut m).unwrap();
    let k = vx86::boot::read_files(
        &kernel.display().to_string(),
        Some(&initrd.display().to_string()),
        None,
        vx86::boot::BootOptions::default(),
    )
    .unwrap();
    m.boot_kernel(k).unwrap();
    let mut r = Run {
        m,
        serial: Shared::default(),
        debugcon: Shared::default(),
        start: Instant::now(),
    };
    let ok = r.wait_for("screen", "Select a language", 16_000_000_000);
    let rows = r.m.vga().unwrap().text_rows().unwrap_or_default();
    let screen = rows.join("\n");
    eprintln!("installer screen:\n{screen}");
    assert!(ok, "no language screen on the VGA:\n{screen}");
    assert!(
        screen.contains("Choose the language to be used for the installation process"),
        "{screen}"
    );
    assert!(screen.contains("English"), "{screen}");
    // Drawn, not only stored: the dialog's grey and the backdrop's blue.
    let frame = r.m.screenshot();
    assert_eq!((frame.width, frame.height), (720, 400));
    let has = |rgb: u32| frame.pixels.iter().any(|&p| p & 0xFF_FFFF == rgb);
    assert!(
        has(0xAAAAAA) && has(0x0000AA),
        "the dialog is drawn in VGA colours"
    );
}
