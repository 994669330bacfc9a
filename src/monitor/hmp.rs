//! The human monitor's commands, executed on the machine thread between two
//! CPU slices. Spellings and output follow QEMU's HMP (hmp-commands.hx,
//! hmp-commands-info.hx) where vx86 has the concept.

use super::{keys, memory, pause, registers, resume, Command, Monitor, Reply};
use crate::machine::{Machine, MachineType, RunExit};
use std::fmt::Write;
use std::path::Path;

/// What `help` prints: the commands vx86 has, in QEMU's help layout.
const HELP: &str = "\
change device [-f] filename -- change a removable medium, use -f to force the operation
cont|c  -- resume emulation
device_add driver[,prop=value][,...] -- add device, like -device on the command line (virtio-blk-pci,drive=ID[,id=DEVID][,addr=N]; ACPI hotplug)
device_del device -- remove device (an ACPI eject request; it goes when the guest ejects it)
drive_add [0] file=PATH[,format=raw|qcow2],if=none,id=ID -- add a drive for a later device_add
eject [-f] device -- eject a removable medium (use -f to force it)
help|? [cmd] -- show the help
info snapshots -- show the vx86 snapshot files in the snapshot directory
info status -- show the current VM status (running|paused)
info registers -- show the cpu registers
info cpus -- show infos for each CPU
info mtree -- show memory tree
info block -- show the block devices
info network -- show the network state
info pci -- show PCI info
loadvm filename -- restore the whole machine from a vx86 snapshot file
quit|q  -- quit the emulator
savevm filename -- save the whole machine to a vx86 snapshot file
screendump [-f png|ppm] filename -- save screen to a file (PNG when the name ends in .png)
sendkey keys [hold_ms] -- send keys to the VM (e.g. 'sendkey ctrl-alt-f1')
stop|s  -- stop emulation
system_powerdown  -- send system power down event
system_reset  -- reset the system
x /fmt addr -- virtual memory dump starting at 'addr'
xp /fmt addr -- physical memory dump starting at 'addr'
";

/// `savevm FILE` / `loadvm FILE`: vx86 snapshots are files
/// (`crate::snapshot`), not tags inside a qcow2 image as in QEMU; a relative
/// name is in the snapshot directory (`--snapshot-dir`).
fn snapshot_file(m: &mut Machine, dir: &Path, save: bool, args: &[&str]) -> Reply {
    let name = if save { "savevm" } else { "loadvm" };
    let [file] = args else {
        return err(format!("{name}: usage: {name} filename"));
    };
    let path = dir.join(file);
    let r = if save {
        m.save_snapshot(&path)
    } else {
        m.load_snapshot(&path)
    };
    match r {
        Ok(()) => ok(""),
        Err(e) => err(format!("{name}: {e}")),
    }
}

fn ok(text: impl Into<String>) -> Reply {
    Reply {
        text: text.into(),
        error: false,
        running: true,
        ack: None,
    }
}

fn err(text: impl Into<String>) -> Reply {
    let mut text = text.into();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Reply {
        text,
        error: true,
        running: true,
        ack: None,
    }
}

/// Runs one command; `Some` ends the run (quit).
pub fn execute(m: &mut Machine, mon: &mut Monitor, cmd: Command) -> (Reply, Option<RunExit>) {
    match cmd {
        Command::Line(l) => line(m, mon, &l),
        Command::Status => (ok(status(mon)), None),
        Command::Stop => {
            pause(mon);
            (ok(""), None)
        }
        Command::Cont => {
            resume(m, mon);
            (ok(""), None)
        }
        Command::Quit => (ok(""), Some(RunExit::Quit)),
        Command::SystemReset => {
            m.reset();
            (ok(""), None)
        }
        Command::Screendump(file, format) => (screendump(m, &file, format.as_deref()), None),
        Command::DeviceAdd(opts) => match m.device_add(&opts) {
            Ok(()) => (ok(""), None),
            Err(e) => (err(format!("device_add: {e}")), None),
        },
        Command::DeviceDel(id) => match m.device_del(&id) {
            Ok(()) => (ok(""), None),
            Err(e) => (err(format!("device_del: {e}")), None),
        },
        Command::SystemPowerdown => match m.system_powerdown() {
            Ok(()) => (ok(""), None),
            Err(e) => (err(format!("system_powerdown: {e}")), None),
        },
    }
}

fn status(mon: &Monitor) -> String {
    if mon.paused() {
        "VM status: paused\n".into()
    } else {
        "VM status: running\n".into()
    }
}

/// One HMP command line.
fn line(m: &mut Machine, mon: &mut Monitor, line: &str) -> (Reply, Option<RunExit>) {
    let line = line.trim();
    if line.is_empty() {
        return (ok(""), None);
    }
    // QEMU's command names end at a space or a '/' (`x/4xw 0x1000`).
    let end = line
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let args: Vec<&str> = rest.split_whitespace().collect();
    let reply = match name {
        "help" | "?" => ok(HELP),
        "info" => info(m, mon, &args),
        "stop" | "s" => return execute(m, mon, Command::Stop),
        "cont" | "c" => return execute(m, mon, Command::Cont),
        "quit" | "q" => return execute(m, mon, Command::Quit),
        "system_reset" => return execute(m, mon, Command::SystemReset),
        "system_powerdown" => return execute(m, mon, Command::SystemPowerdown),
        "drive_add" => match args.as_slice() {
            // QEMU's first argument is a PCI address ("0" or "auto") that
            // if=none drives ignore.
            [_, opts] | [opts] if opts.contains('=') => match m.drive_add(opts) {
                Ok(()) => ok("OK\n"),
                Err(e) => err(format!("drive_add: {e}")),
            },
            _ => err("drive_add: usage: drive_add [0] file=PATH[,format=raw|qcow2],if=none,id=ID"),
        },
        "device_add" => match args.as_slice() {
            [opts] => return execute(m, mon, Command::DeviceAdd(opts.to_string())),
            _ => err("device_add: usage: device_add virtio-blk-pci,drive=ID[,id=DEVID][,addr=N]"),
        },
        "device_del" => match args.as_slice() {
            [id] => return execute(m, mon, Command::DeviceDel(id.to_string())),
            _ => err("device_del: usage: device_del DEVID"),
        },
        "screendump" => match args.as_slice() {
            [file] => screendump(m, file, None),
            ["-f", f, file] => screendump(m, file, Some(f)),
            _ => err("screendump: usage: screendump [-f png|ppm] filename"),
        },
        "x" | "xp" => dump(m, mon, name == "xp", rest),
        "sendkey" => sendkey(m, &args),
        "eject" => eject(m, mon, &args),
        "savevm" | "loadvm" => {
            let dir = mon.info.snapshot_dir.clone();
            snapshot_file(m, &dir, name == "savevm", &args)
        }
        "change" => change(m, mon, &args),
        _ => err(format!("unknown command: '{name}'")),
    };
    (reply, None)
}

fn info(m: &mut Machine, mon: &Monitor, args: &[&str]) -> Reply {
    match args {
        ["status"] => ok(status(mon)),
        ["snapshots"] => ok(snapshots(&mon.info.snapshot_dir)),
        ["registers"] => ok(registers::dump(&m.cpu)),
        // QEMU 7.2's line (the pc is in `info registers`).
        ["cpus"] => ok(format!("* CPU #0: thread_id={}\n", thread_id())),
        ["mtree"] => ok(mtree(m)),
        ["block"] => ok(block(m, mon)),
        ["network"] => ok(mon.info.network.clone()),
        ["pci"] if m.cfg.machine == MachineType::Pc => ok(pci(m)),
        ["pci"] => err("info pci: this machine (-M isapc) has no PCI bus"),
        [] => err(
            "info: usage: info status|registers|cpus|mtree|block|snapshots|network|pci (see help)",
        ),
        [what, ..] => err(format!("info {what}: unknown or not supported by vx86")),
    }
}

/// `info snapshots`: the vx86 snapshot files in `dir` (any name; found by
/// their magic), in QEMU's table (hmp_info_snapshots, bdrv_snapshot_dump):
/// the file name is the tag, VM SIZE the file's size, DATE when it was taken
/// (UTC), VM CLOCK the guest time and ICOUNT the instructions retired. Files
/// this vx86 cannot read are listed after the table with the reason.
fn snapshots(dir: &Path) -> String {
    let mut names: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => return format!("info snapshots: {}: {e}\n", dir.display()),
    };
    names.sort();
    let mut rows = String::new();
    let mut unreadable = String::new();
    for path in names {
        let mut magic = [0u8; 8];
        let is_snapshot = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == crate::snapshot::MAGIC;
        if !is_snapshot {
            continue;
        }
        let tag = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match crate::snapshot::read_summary(&path) {
            Ok(s) => {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                let _ = writeln!(
                    rows,
                    "{:<9} {:<17} {:>8}{:>20}{:>13}{:>11}",
                    "--",
                    tag,
                    size_to_str(size),
                    utc_date(s.taken),
                    vm_clock(s.guest_ns),
                    s.icount
                );
            }
            Err(e) => {
                let _ = writeln!(unreadable, "{e}");
            }
        }
    }
    if rows.is_empty() && unreadable.is_empty() {
        return "There is no snapshot available.\n".into();
    }
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str("List of snapshots present on all disks:\n");
        let _ = writeln!(
            out,
            "{:<10}{:<17}{:>8}{:>20}{:>13}{:>11}",
            "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"
        );
        out.push_str(&rows);
    }
    out.push_str(&unreadable);
    out
}

/// QEMU's `size_to_str`: three significant digits and a binary unit.
fn size_to_str(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s} {}", UNITS[u])
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC; the
/// proleptic Gregorian calendar, days to civil date after H. Hinnant's
/// `civil_from_days`).
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let t = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Guest nanoseconds as QEMU's VM CLOCK column, `HH:MM:SS.mmm`.
fn vm_clock(ns: u64) -> String {
    let ms = ns / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `info block`: the fixed drives as the command line made them, then the
/// CD-ROM drives as they are now.
fn block(m: &mut Machine, mon: &Monitor) -> String {
    let mut out = mon.info.block.clone();
    for d in &mon.info.drives {
        let Some(cd) = d.cd_index.and_then(|i| cdrom(m, i)) else {
            continue;
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&super::cdrom_block_info(d, cd));
    }
    out
}

/// The CD-ROM drive at IDE position `index` (0-3).
fn cdrom(m: &mut Machine, index: u8) -> Option<&mut crate::devices::atapi::Cdrom> {
    m.ata(usize::from(index / 2))?.cdrom(usize::from(index % 2))
}

/// The removable drive `name` names, or QEMU's error for an unknown or a
/// fixed one (blockdev.c `qmp_get_blk`, `do_open_tray`).
fn removable(mon: &Monitor, name: &str) -> Result<(usize, u8), Reply> {
    let Some(at) = mon.info.drives.iter().position(|d| d.name == name) else {
        return Err(err(format!("Error: Device '{name}' not found")));
    };
    match mon.info.drives.get(at).and_then(|d| d.cd_index) {
        Some(index) => Ok((at, index)),
        None => Err(err(format!("Error: Device '{name}' is not removable"))),
    }
}

/// QEMU's refusal when the guest locked the tray.
fn locked(name: &str) -> Reply {
    err(format!(
        "Error: Device '{name}' is locked and force was not specified, \
         wait for tray to open and try again"
    ))
}

/// Splits QEMU's `-f` flag from the other arguments.
fn force_flag<'a>(args: &[&'a str]) -> (bool, Vec<&'a str>) {
    let force = args.contains(&"-f");
    (force, args.iter().copied().filter(|&a| a != "-f").collect())
}

/// `eject [-f] device`: opens the tray and removes the disc (QEMU's
/// `qmp_eject`); a tray the guest locked stays shut unless `-f`.
fn eject(m: &mut Machine, mon: &mut Monitor, args: &[&str]) -> Reply {
    let (force, args) = force_flag(args);
    let [name] = args.as_slice() else {
        return err("eject: usage: eject [-f] device");
    };
    let index = match removable(mon, name) {
        Ok((_, index)) => index,
        Err(e) => return e,
    };
    let Some(cd) = cdrom(m, index) else {
        return err(format!("Error: Device '{name}' not found"));
    };
    if cd.eject(force) {
        ok("")
    } else {
        locked(name)
    }
}

/// `change device [-f] filename`: puts a new disc in a CD-ROM drive (QEMU's
/// `qmp_blockdev_change_medium`). The file is checked as `-cdrom` checks it;
/// on any error the drive keeps its disc and the guest runs on.
fn change(m: &mut Machine, mon: &mut Monitor, args: &[&str]) -> Reply {
    let (force, args) = force_flag(args);
    let [name, file] = args.as_slice() else {
        return err("change: usage: change device [-f] filename");
    };
    let (at, index) = match removable(mon, name) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let spec = crate::block::drive_spec::DriveSpec::cdrom(file);
    let disc = match crate::block::open_cdrom(&spec) {
        Ok(Some(disc)) => disc,
        Ok(None) => return err("change: usage: change device [-f] filename"),
        Err(e) => return err(format!("Error: {e}")),
    };
    let Some(cd) = cdrom(m, index) else {
        return err(format!("Error: Device '{name}' not found"));
    };
    if !cd.eject(force) {
        return locked(name);
    }
    cd.change_medium(Some(disc));
    if let Some(d) = mon.info.drives.get_mut(at) {
        d.file = (*file).to_string();
        d.format = super::cd_format(&spec.file).into();
    }
    ok("")
}

/// The machine thread's id, as QEMU's `info cpus` shows the vCPU thread.
fn thread_id() -> u64 {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe {
        libc::syscall(libc::SYS_gettid) as u64
    }
    #[cfg(not(target_os = "linux"))]
    u64::from(std::process::id())
}

/// `info mtree`: guest physical memory and the port space, in QEMU's layout
/// (one address space each, regions indented under their container).
fn mtree(m: &mut Machine) -> String {
    let mut out = String::from("address-space: memory\n");
    out.push_str("  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n");
    let region = |out: &mut String, start: u64, end: u64, kind: &str, name: &str| {
        let _ = writeln!(out, "    {start:016x}-{end:016x} (prio 0, {kind}): {name}");
    };
    let ram = m.mem.ram_size();
    region(&mut out, 0, ram - 1, "ram", "pc.ram");
    let bios = m.mem.bios_len();
    if bios > 0 {
        let shadow = m.mem.bios_shadow_len();
        region(
            &mut out,
            0x10_0000 - shadow,
            0xf_ffff,
            "ram",
            "isa-bios (shadow of pc.bios)",
        );
        region(&mut out, (1 << 32) - bios, 0xffff_ffff, "rom", "pc.bios");
    }
    let devices = m.plat.describe();
    for (name, r) in &devices {
        for w in &r.mmio {
            let _ = writeln!(
                out,
                "    {:016x}-{:016x} (prio 1, i/o): {name}",
                w.start,
                w.end.saturating_sub(1)
            );
        }
    }
    out.push_str("\naddress-space: I/O\n");
    out.push_str("  0000000000000000-000000000000ffff (prio 0, i/o): io\n");
    let mut ports: Vec<(u16, u16, &str)> = vec![
        (0x20, 0x21, "pic"),
        (0xa0, 0xa1, "pic"),
        (0x4d0, 0x4d1, "elcr"),
    ];
    if m.plat.has_pci() {
        ports.push((0xcf8, 0xcfb, "pci-conf-idx"));
        ports.push((0xcfc, 0xcff, "pci-conf-data"));
    }
    for (name, r) in &devices {
        for p in &r.ports {
            ports.push((*p.start(), *p.end(), name));
        }
    }
    ports.sort();
    for (s, e, name) in ports {
        let _ = writeln!(
            out,
            "    {:016x}-{:016x} (prio 0, i/o): {name}",
            u64::from(s),
            u64::from(e)
        );
    }
    out
}

/// QEMU's class names for the classes vx86's PCI functions have.
fn class_name(class: u8, sub: u8) -> String {
    match (class, sub) {
        (0x06, 0x00) => "Host bridge".into(),
        (0x06, 0x01) => "ISA bridge".into(),
        (0x02, 0x00) => "Ethernet controller".into(),
        (0x01, 0x00) => "SCSI controller".into(),
        (0x01, 0x01) => "IDE controller".into(),
        (0x03, 0x00) => "VGA controller".into(),
        _ => format!("Class {class:02x}{sub:02x}"),
    }
}

/// `info pci` in QEMU's layout (hmp_info_pci_device).
fn pci(m: &mut Machine) -> String {
    let mut out = String::new();
    for (addr, id) in m.plat.pci_functions() {
        let Some(f) = m.plat.pci_function(id) else {
            continue;
        };
        let c = f.config();
        let _ = writeln!(
            out,
            "  Bus  0, device {:3}, function {}:",
            addr.slot, addr.func
        );
        let class = (c.read(0x0b, 1) as u8, c.read(0x0a, 1) as u8);
        let _ = writeln!(
            out,
            "    {}: PCI device {:04x}:{:04x}",
            class_name(class.0, class.1),
            c.get16(0x00),
            c.get16(0x02)
        );
        let _ = writeln!(
            out,
            "      PCI subsystem {:04x}:{:04x}",
            c.get16(0x2c),
            c.get16(0x2e)
        );
        let pin = c.interrupt_pin();
        if pin != 0 {
            let _ = writeln!(
                out,
                "      IRQ {}, pin {}",
                c.read(0x3c, 1),
                char::from(b'A' + (pin - 1).min(3))
            );
        }
        for i in 0..6 {
            let (Some(kind), Some(base)) = (c.bar_kind(i), c.bar_address(i)) else {
                continue;
            };
            let last = base.wrapping_add(c.bar_size(i)).wrapping_sub(1);
            match kind {
                crate::pci::BarKind::Io => {
                    let _ = writeln!(out, "      BAR{i}: I/O at 0x{base:04x} [0x{last:04x}].");
                }
                crate::pci::BarKind::Mem32 => {
                    let _ = writeln!(
                        out,
                        "      BAR{i}: 32 bit memory at 0x{base:08x} [0x{last:08x}]."
                    );
                }
            }
        }
        out.push_str("      id \"\"\n");
    }
    out
}

/// Writes the screen as the window would show it: PNG (the pixels of
/// `--screenshot-on-exit`) or QEMU's default PPM.
fn screendump(m: &mut Machine, file: &str, format: Option<&str>) -> Reply {
    let png = match format {
        Some("png") => true,
        Some("ppm") => false,
        Some(f) => return err(format!("screendump: format '{f}': use png or ppm")),
        None => file.to_ascii_lowercase().ends_with(".png"),
    };
    let frame = m.screenshot();
    let path = std::path::Path::new(file);
    let r = if png {
        crate::devices::vga::screenshot_png(&frame, path).map_err(|e| e.to_string())
    } else {
        write_ppm(&frame, path).map_err(|e| format!("{file}: cannot write: {e}"))
    };
    match r {
        Ok(()) => ok(""),
        Err(e) => err(format!("screendump: {e}")),
    }
}

/// Netpbm P6, as QEMU's `screendump` writes by default.
fn write_ppm(frame: &crate::devices::vga::Frame, path: &std::path::Path) -> std::io::Result<()> {
    let mut data = format!("P6\n{} {}\n255\n", frame.width, frame.height).into_bytes();
    for p in &frame.pixels {
        data.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, *p as u8]);
    }
    std::fs::write(path, data)
}

/// `sendkey ctrl-alt-f1 [hold_ms]`: presses the keys in order, releases them
/// in reverse (the hold time is not modelled: the keyboard's own byte pacing
/// delivers the codes).
fn sendkey(m: &mut Machine, args: &[&str]) -> Reply {
    let (spec, hold) = match args {
        [spec] => (*spec, None),
        [spec, hold] => (*spec, Some(*hold)),
        _ => return err("sendkey: usage: sendkey keys [hold_ms] (e.g. sendkey ctrl-alt-f1)"),
    };
    if let Some(h) = hold {
        if h.parse::<u32>().is_err() {
            return err(format!("sendkey: hold time '{h}': not a number"));
        }
    }
    let keys = match keys::parse_combo(spec) {
        Ok(k) => k,
        Err(e) => return err(e),
    };
    if let Some(kbc) = m.kbc() {
        for &k in &keys {
            kbc.key_event(k, true);
        }
        for &k in keys.iter().rev() {
            kbc.key_event(k, false);
        }
    }
    let now = m.plat.clock.now(m.cpu.icount);
    m.plat.advance(now);
    ok("")
}

/// A parsed `/fmt`: count, format letter, unit size in bytes.
#[derive(Debug, PartialEq, Eq)]
struct Format {
    count: u64,
    format: u8,
    size: u8,
}

/// QEMU's `/[count][format][size]` (format and size in either order).
fn parse_format(spec: &str, last_format: u8, last_size: u8) -> Result<Format, String> {
    let digits = spec.bytes().take_while(u8::is_ascii_digit).count();
    let count = if digits == 0 {
        1
    } else {
        spec[..digits]
            .parse::<u64>()
            .map_err(|_| format!("invalid count in '/{spec}'"))?
    };
    let mut format = None;
    let mut size = None;
    for c in spec[digits..].bytes() {
        match c {
            b'x' | b'd' | b'u' | b'o' | b'c' | b'i' => format = Some(c),
            b'b' => size = Some(1),
            b'h' => size = Some(2),
            b'w' => size = Some(4),
            b'g' => size = Some(8),
            _ => return Err(format!("invalid char in format: '{}'", char::from(c))),
        }
    }
    let format = format.unwrap_or(last_format);
    let size = match (format, size) {
        (b'c', _) => 1,
        (_, Some(s)) => s,
        (_, None) => last_size,
    };
    Ok(Format {
        count,
        format,
        size,
    })
}

/// Most bytes one `x`/`xp` dumps (a mistyped count must not hang the guest).
const MAX_DUMP: u64 = 1 << 20;

/// `x /fmt addr` (linear) and `xp /fmt addr` (physical), in QEMU's layout:
/// the address with 16 hex digits, then up to 16 bytes (8 for byte units)
/// per line.
fn dump(m: &mut Machine, mon: &mut Monitor, phys: bool, rest: &str) -> Reply {
    let name = if phys { "xp" } else { "x" };
    let rest = rest.trim_start();
    let (fmt, expr) = match rest.strip_prefix('/') {
        Some(r) => {
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            (&r[..end], r[end..].trim())
        }
        None => ("", rest),
    };
    let f = match parse_format(fmt, mon.last_format, mon.last_size) {
        Ok(f) => f,
        Err(e) => return err(format!("{name}: {e}")),
    };
    if expr.is_empty() {
        return err(format!("{name}: missing address (e.g. {name} /4xw 0x1000)"));
    }
    let addr = match eval(&m.cpu, expr) {
        Ok(a) => a,
        Err(e) => return err(format!("{name}: {e}")),
    };
    mon.last_format = f.format;
    if f.format != b'i' {
        mon.last_size = f.size;
    }
    let virt = !phys;
    if f.format == b'i' {
        return disassemble(m, addr, f.count.min(MAX_DUMP / 16), virt);
    }
    let len = f.count.saturating_mul(u64::from(f.size)).min(MAX_DUMP);
    let line_size: u64 = if f.size == 1 { 8 } else { 16 };
    let digits = match f.format {
        b'o' => (usize::from(f.size) * 8).div_ceil(3),
        b'u' | b'd' => (usize::from(f.size) * 8 * 10).div_ceil(33),
        _ => usize::from(f.size) * 2,
    };
    let mut out = String::new();
    let mut a = addr;
    let mut left = len;
    while left > 0 {
        let l = left.min(line_size);
        let Some(bytes) = memory::read(&m.cpu, &m.mem, a, l as usize, virt) else {
            out.push_str("Cannot access memory\n");
            return err(out);
        };
        let _ = write!(out, "{a:016x}:");
        for unit in bytes.chunks(usize::from(f.size)) {
            let v = unit.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b));
            out.push(' ');
            let _ = match f.format {
                b'x' => write!(out, "0x{v:0digits$x}"),
                b'o' => write!(out, "{:>digits$}", format!("0{v:o}")),
                b'u' => write!(out, "{v:>digits$}"),
                b'd' => {
                    let bits = u32::from(f.size) * 8;
                    let s = ((v << (64 - bits)) as i64) >> (64 - bits);
                    write!(out, "{s:>digits$}")
                }
                _ => {
                    out.push_str(&printc(v as u8));
                    Ok(())
                }
            };
        }
        out.push('\n');
        a = a.wrapping_add(l);
        left -= l;
    }
    ok(out)
}

/// A byte as QEMU's `monitor_printc`: quoted, with C escapes.
fn printc(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'\\' => "'\\\\'".into(),
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        32..=126 => format!("'{}'", char::from(c)),
        _ => format!("'\\x{c:02x}'"),
    }
}

/// `x /Ni addr`: N instructions decoded in the CPU's current mode, QEMU's
/// layout (address, bytes, then the instruction; Intel syntax).
fn disassemble(m: &mut Machine, addr: u64, count: u64, virt: bool) -> Reply {
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
    let bits = u32::from(m.cpu.code_bits);
    let mut out = String::new();
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_first_operand_char_index(9);
    let mut a = addr;
    for _ in 0..count {
        let Some(bytes) = memory::read(&m.cpu, &m.mem, a, 15, virt) else {
            out.push_str("Cannot access memory\n");
            return err(out);
        };
        let mut d = Decoder::with_ip(bits, &bytes, a, DecoderOptions::NONE);
        let ins = d.decode();
        let len = ins.len().max(1);
        let mut text = String::new();
        fmt.format(&ins, &mut text);
        let hex: Vec<String> = bytes.iter().take(len).map(|b| format!("{b:02x}")).collect();
        if bits == 64 {
            let _ = write!(out, "0x{a:016x}:  ");
        } else {
            let _ = write!(out, "0x{a:08x}:  ");
        }
        let _ = writeln!(out, "{:<24} {text}", hex.join(" "));
        a = a.wrapping_add(len as u64);
    }
    ok(out)
}

/// A register's value for `$name` in an address expression.
fn register(cpu: &crate::cpu::Cpu, name: &str) -> Option<u64> {
    const GPR64: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    const GPR32: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
    const GPR16: [&str; 8] = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
    if let Some(i) = GPR64.iter().position(|&n| n == name) {
        return Some(cpu.gpr[i]);
    }
    if let Some(i) = GPR32.iter().position(|&n| n == name) {
        return Some(cpu.gpr[i] & 0xffff_ffff);
    }
    if let Some(i) = GPR16.iter().position(|&n| n == name) {
        return Some(cpu.gpr[i] & 0xffff);
    }
    use crate::cpu::state::CS;
    Some(match name {
        // QEMU's $pc is the linear address of the next instruction.
        "pc" => cpu.seg[CS].base.wrapping_add(cpu.rip),
        "rip" | "eip" | "ip" => cpu.rip,
        "cr0" => cpu.cr0,
        "cr2" => cpu.cr2,
        "cr3" => cpu.cr3,
        "cr4" => cpu.cr4,
        _ => return None,
    })
}

/// An address expression: numbers (0x hex, else decimal) and `$registers`
/// joined by `+` and `-`.
fn eval(cpu: &crate::cpu::Cpu, expr: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    let mut sign_minus = false;
    let mut rest = expr.trim();
    if rest.is_empty() {
        return Err("missing address".into());
    }
    loop {
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let term = rest[..end].trim();
        let v = if let Some(r) = term.strip_prefix('$') {
            register(cpu, &r.to_ascii_lowercase())
                .ok_or_else(|| format!("unknown register: '{term}'"))?
        } else if let Some(h) = term.strip_prefix("0x").or_else(|| term.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).map_err(|_| format!("invalid address: '{term}'"))?
        } else {
            term.parse::<u64>()
                .map_err(|_| format!("invalid address: '{term}'"))?
        };
        total = if sign_minus {
            total.wrapping_sub(v)
        } else {
            total.wrapping_add(v)
        };
        if end == rest.len() {
            return Ok(total);
        }
        sign_minus = rest.as_bytes().get(end) == Some(&b'-');
        rest = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_as_qemu() {
        let f = parse_format("4xw", b'x', 4).unwrap();
        assert_eq!((f.count, f.format, f.size), (4, b'x', 4));
        let f = parse_format("", b'd', 2).unwrap();
        assert_eq!((f.count, f.format, f.size), (1, b'd', 2));
        let f = parse_format("10c", b'x', 8).unwrap();
        assert_eq!((f.count, f.format, f.size), (10, b'c', 1));
        let f = parse_format("gx", b'x', 4).unwrap();
        assert_eq!((f.count, f.format, f.size), (1, b'x', 8));
        assert!(parse_format("4z", b'x', 4).is_err());
        assert!(parse_format("99999999999999999999999x", b'x', 4).is_err());
    }

    #[test]
    fn printc_escapes_like_qemu() {
        assert_eq!(printc(b'0'), "'0'");
        assert_eq!(printc(0), "'\\x00'");
        assert_eq!(printc(0xfc), "'\\xfc'");
        assert_eq!(printc(b'\n'), "'\\n'");
    }
}
