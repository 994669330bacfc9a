//! vx86 command-line entry: clap -> Config -> Machine -> frontend.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use vx86::config::{self, CharDev, Cli, Command, ConformCmd};
use vx86::frontend;
use vx86::machine::{Machine, MachineConfig};

fn main() {
    let mut raw: Vec<String> = std::env::args().collect();
    if raw.len() == 1 {
        raw.extend(default_guest_args());
    }
    let args = match config::normalize_args(raw) {
        Ok(n) => {
            for note in &n.notes {
                eprintln!("vx86: {note}");
            }
            n.args
        }
        Err(e) => {
            eprintln!("vx86: {e}");
            std::process::exit(1);
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vx86: {e:#}");
            std::process::exit(1);
        }
    }
}

/// What `vx86` alone boots: the Debian container guest when
/// `scripts/build-guest.sh` has built it (into its interactive shell, with a
/// container already running), else nothing extra (the built-in guest).
/// Says which on stderr.
fn default_guest_args() -> Vec<String> {
    let cache = std::env::var_os("VX86_GUEST_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("guest-cache"));
    let out = cache.join("out");
    let (k, i) = (out.join("vmlinuz"), out.join("initramfs-ctr.cpio.gz"));
    if k.is_file() && i.is_file() {
        eprintln!(
            "vx86: booting the Debian container guest from {} (Ctrl-a x quits)",
            out.display()
        );
        [
            "-m",
            "512M",
            "-kernel",
            &k.to_string_lossy(),
            "-initrd",
            &i.to_string_lossy(),
            "-append",
            "console=tty0 console=ttyS0 quiet vx86.interactive=1",
            // QEMU's default network: user-mode NAT on a virtio card.
            "-nic",
            "user,model=virtio-net-pci",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else {
        eprintln!(
            "vx86: booting the built-in guest; run scripts/build-guest.sh to build the Debian \
             container guest, which plain `vx86` then boots"
        );
        Vec::new()
    }
}

fn open_sink(c: &CharDev) -> Result<Option<Box<dyn Write + Send>>> {
    Ok(match c {
        CharDev::Stdio => Some(Box::new(std::io::stdout())),
        CharDev::None => None,
        CharDev::File(p) => Some(Box::new(
            std::fs::File::create(p).with_context(|| format!("{p}: cannot create"))?,
        )),
    })
}

/// Which frontend shows the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Display {
    None,
    Window,
}

/// Everything parsed from the command line that the machine thread needs.
struct Setup {
    cfg: MachineConfig,
    drives: Vec<vx86::block::drive_spec::DriveSpec>,
    snapshot: bool,
    serial: CharDev,
    debugcon: CharDev,
    /// Sinks of the `-device isa-debugcon` consoles, as `cfg.debugcons`.
    debugcon_devs: Vec<CharDev>,
    bios: Option<String>,
    screenshot: Option<String>,
    stats: bool,
    kernel: Option<vx86::boot::KernelBoot>,
    nics: Vec<config::NicPlan>,
    /// `-boot order=...` as CMOS boot device codes.
    boot_order: Option<Vec<u8>>,
    /// The gdb stub's socket (`-gdb`, `-s`) and `-S`.
    gdb: Option<std::net::TcpListener>,
    start_stopped: bool,
    /// `--save-on-exit FILE`, `-loadvm FILE`, `--state-hash`.
    save_on_exit: Option<String>,
    loadvm: Option<String>,
    state_hash: bool,
}

/// What the machine thread reports when the run ends.
struct Outcome {
    exit: vx86::machine::RunExit,
    stats_line: Option<String>,
    /// `--state-hash`'s line.
    state_line: Option<String>,
    /// `--save-on-exit` failed (reported already): exit status 1.
    save_failed: bool,
}

fn run(cli: Cli) -> Result<i32> {
    if let Some(Command::Conform { which }) = &cli.command {
        return conform(which);
    }
    let mut cfg = MachineConfig::default();
    if let Some(m) = &cli.mem {
        cfg.ram = config::parse_mem(m)?;
    }
    if let Some(m) = &cli.machine {
        if m == "help" {
            println!("Supported machines are:");
            for (name, what) in config::MACHINES {
                println!("{name:<12} {what}");
            }
            return Ok(0);
        }
        cfg.machine = config::check_machine(m)?;
    }
    if let Some(c) = &cli.cpu {
        if c == "help" {
            println!("Available CPUs:\n  qemu64  x86-64 with SSE3, no APIC unless +apic (also: host, max)");
            return Ok(0);
        }
        let (features, note) = config::check_cpu(c)?;
        cfg.features = features;
        if let Some(n) = note {
            eprintln!("vx86: {n}");
        }
    }
    if let Some(s) = &cli.smp {
        config::check_smp(s)?;
    }
    if let Some(a) = &cli.accel {
        config::check_accel(a)?;
    }
    let boot_order = match &cli.boot {
        Some(b) => config::parse_boot(b)?,
        None => None,
    };
    if let Some(v) = &cli.vga {
        config::check_vga(v)?;
    }
    if let Some(d) = &cli.snapshot_dir {
        if !std::path::Path::new(d).is_dir() {
            return Err(config::ConfigError::BadSnapshotDir(d.clone()).into());
        }
    }
    if let Some(p) = &cli.parallel {
        if p != "none" {
            return Err(config::ConfigError::BadParallel(p.clone()).into());
        }
    }
    // -mon chardev=ID stands for a -monitor or -qmp on that chardev.
    let mut monitor_spec = cli.monitor.clone().map(|m| ("-monitor", m));
    let mut qmp_spec = cli.qmp.clone().map(|q| ("-qmp", q));
    for mon in &cli.mon {
        let (spec, is_qmp) = config::mon_backend(mon, &cli.chardev)?;
        let slot = if is_qmp {
            &mut qmp_spec
        } else {
            &mut monitor_spec
        };
        if slot.is_some() {
            let which = if is_qmp { "QMP" } else { "human" };
            let e = format!("vx86 has one {which} monitor");
            return Err(config::ConfigError::BadMon(mon.clone(), e).into());
        }
        *slot = Some(("-mon", spec));
    }
    let monitor = match &monitor_spec {
        Some((_, m)) => vx86::monitor::server::parse_backend(m)
            .map_err(|e| config::ConfigError::BadMonitor(m.clone(), e))?,
        None => None,
    };
    let qmp = match &qmp_spec {
        Some((_, q)) => vx86::monitor::server::parse_backend(q)
            .map_err(|e| config::ConfigError::BadQmp(q.clone(), e))?,
        None => None,
    };
    let nics = config::network_plan(&cli)?;
    if !nics.is_empty() {
        match &cli.machine {
            // QEMU's default machine has PCI; so does vx86's when a card is asked for.
            None => cfg.machine = vx86::machine::MachineType::Pc,
            Some(m) if cfg.machine != vx86::machine::MachineType::Pc => {
                return Err(config::ConfigError::NicNeedsPci(format!("-M {m}")).into())
            }
            Some(_) => {}
        }
    }
    const DEVICES: &str = "isa-debug-exit, isa-debugcon, virtio-net-pci and virtio-blk-pci";
    let mut chardevs: Vec<(String, CharDev)> = Vec::new();
    for c in &cli.chardev {
        if config::is_monitor_socket(c, &cli.mon) {
            // A monitor's (-mon).
            continue;
        }
        let (id, dev) = config::parse_chardev_option(c)?;
        if chardevs.iter().any(|(i, _)| *i == id) {
            return Err(
                config::ConfigError::BadChardev(c.clone(), format!("duplicate id `{id}`")).into(),
            );
        }
        chardevs.push((id, dev));
    }
    let mut debugcon_devs: Vec<CharDev> = Vec::new();
    let mut used_chardevs: Vec<String> = Vec::new();
    for d in &cli.device {
        if d == "help" {
            println!("Storage devices:\nname \"virtio-blk-pci\", bus PCI, drive=ID, serial=STR\n");
            println!("Network devices:\nname \"virtio-net-pci\", bus PCI, netdev=ID, mac=MAC\n");
            println!("Misc devices:\nname \"isa-debug-exit\", bus ISA, iobase=PORT, iosize=N");
            println!("name \"isa-debugcon\", bus ISA, iobase=PORT, chardev=ID");
            return Ok(0);
        }
        if d.starts_with("virtio-net-pci") || d.starts_with("virtio-blk-pci") {
            // Taken by network_plan and attach_blk_devices.
        } else if d == "isa-debugcon" || d.starts_with("isa-debugcon,") {
            let dc = config::parse_isa_debugcon(d)?;
            let bad = |m: String| config::ConfigError::BadDebugconDevice(d.clone(), m);
            let dev = chardevs
                .iter()
                .find(|(i, _)| *i == dc.chardev)
                .map(|(_, c)| c.clone())
                .ok_or_else(|| bad(format!("no -chardev with id `{}`", dc.chardev)))?;
            // As QEMU: a chardev feeds one device (a second would reopen the file).
            if used_chardevs.contains(&dc.chardev) {
                return Err(bad(format!("chardev `{}` is already in use", dc.chardev)).into());
            }
            used_chardevs.push(dc.chardev.clone());
            if cfg.debugcons.contains(&dc.iobase) {
                return Err(bad(format!(
                    "another isa-debugcon is at iobase={:#x}",
                    dc.iobase
                ))
                .into());
            }
            cfg.debugcons.push(dc.iobase);
            debugcon_devs.push(dev);
        } else if d.starts_with("isa-debug-exit") {
            cfg.debug_exit = Some(
                vx86::devices::debug_port::DebugExit::parse(d)
                    .map_err(|e| config::ConfigError::BadDeviceArg(d.clone(), e.to_string()))?,
            );
        } else {
            return Err(config::ConfigError::BadDevice(d.clone(), DEVICES).into());
        }
    }
    cfg.no_reboot = cli.no_reboot;
    cfg.max_insns = cli.max_insns;
    cfg.no_block_cache = cli.no_block_cache;
    cfg.jit = cli.jit.then_some(cli.jit_threshold);
    // Time: the host's clock unless -icount asks for instruction time.
    cfg.clock = vx86::time::ClockMode::Host;
    if let Some(ic) = &cli.icount {
        cfg.clock = vx86::time::ClockMode::parse_icount(ic)
            .map_err(|e| config::ConfigError::BadIcount(ic.clone(), e))?;
    }
    if cli.realtime {
        // Instruction time that never runs ahead of the host's clock.
        let shift = match cfg.clock {
            vx86::time::ClockMode::Icount { shift, .. } => shift,
            vx86::time::ClockMode::Host => 0,
        };
        cfg.clock = vx86::time::ClockMode::Icount {
            shift,
            sleep: true,
            align: true,
        };
    }
    // The RTC: the host's date, except in deterministic runs (fixed).
    let rtc_base = match &cli.rtc {
        Some(r) => config::parse_rtc(r)?,
        None => None,
    };
    cfg.rtc_base = match (rtc_base, cfg.clock.is_deterministic()) {
        (Some(b), _) => config::rtc_start(b),
        (None, true) => vx86::machine::FIXED_RTC_BASE,
        (None, false) => config::rtc_start(config::RtcBase::Utc),
    };
    if let Some(p) = &cli.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("-pidfile {p}: cannot write"))?;
    }
    let mut serial = match &cli.serial {
        Some(s) => {
            config::parse_chardev(s).ok_or_else(|| config::ConfigError::BadSerial(s.clone()))?
        }
        None => CharDev::Stdio,
    };
    let is_stdio = |b: &Option<vx86::monitor::server::Backend>| {
        b.as_ref()
            .is_some_and(|b| b.endpoint == vx86::monitor::server::Endpoint::Stdio)
    };
    if is_stdio(&monitor) || is_stdio(&qmp) {
        // As QEMU: stdio serves one character device.
        if (is_stdio(&monitor) && is_stdio(&qmp)) || cli.serial.is_some() || cli.nographic {
            bail!(
                "-monitor/-qmp stdio: stdio is already used by {}; with -nographic, Ctrl-a c \
                 switches the terminal between the serial console and the monitor",
                if is_stdio(&monitor) && is_stdio(&qmp) {
                    "the other monitor"
                } else {
                    "the serial console"
                }
            );
        }
        serial = CharDev::None;
    }
    let debugcon = match &cli.debugcon {
        Some(s) => {
            config::parse_chardev(s).ok_or_else(|| config::ConfigError::BadDebugcon(s.clone()))?
        }
        None => CharDev::None,
    };
    let display = match &cli.display {
        _ if cli.nographic => Display::None,
        Some(d) => match d.split(',').next().unwrap_or("") {
            "none" => Display::None,
            "window" | "sdl" | "gtk" | "cocoa" => {
                if !cfg!(feature = "window") {
                    bail!("-display {d}: this vx86 was built without the window frontend (feature \"window\")");
                }
                Display::Window
            }
            _ => return Err(config::ConfigError::BadDisplay(d.clone()).into()),
        },
        // QEMU opens a window by default; so does vx86 when there is a display.
        None if cfg!(feature = "window") && host_has_display() => Display::Window,
        None => Display::None,
    };
    let kernel = match &cli.kernel {
        Some(path) => {
            let mut opts = vx86::boot::BootOptions {
                host_decompress: !cli.no_host_decompress,
                ..Default::default()
            };
            if let Some(e) = &cli.boot_entry {
                opts.entry = e.parse().map_err(config::ConfigError::BadBootEntry)?;
            }
            if let Some(fb) = &cli.boot_fb {
                let (width, height) = config::parse_boot_fb(fb)?;
                opts.console = vx86::boot::Console::Framebuffer { width, height };
            }
            Some(vx86::boot::read_files(
                path,
                cli.initrd.as_deref(),
                cli.append.as_deref(),
                opts,
            )?)
        }
        None => {
            for (given, name) in [
                (cli.initrd.is_some(), "-initrd"),
                (cli.append.is_some(), "-append"),
                (cli.boot_entry.is_some(), "--boot-entry"),
                (cli.boot_fb.is_some(), "--boot-fb"),
                (cli.no_host_decompress, "--no-host-decompress"),
            ] {
                if given {
                    return Err(config::ConfigError::NeedsKernel(name).into());
                }
            }
            None
        }
    };
    let mut drives = Vec::new();
    for d in &cli.drive {
        drives.push(
            vx86::block::drive_spec::DriveSpec::parse(d)
                .map_err(|e| anyhow::anyhow!("-drive {d}: {e}"))?,
        );
    }
    for (i, f) in [(0u8, &cli.hda), (1, &cli.hdb), (2, &cli.hdc), (3, &cli.hdd)] {
        if let Some(f) = f {
            drives.push(
                vx86::block::drive_spec::DriveSpec::hd(i, f)
                    .map_err(|e| anyhow::anyhow!("-hd {f}: {e}"))?,
            );
        }
    }
    if let Some(f) = &cli.cdrom {
        drives.push(vx86::block::drive_spec::DriveSpec::cdrom(f));
    }
    config::attach_blk_devices(&cli.device, &mut drives)?;
    if drives
        .iter()
        .any(|d| d.interface == vx86::block::drive_spec::Interface::Virtio)
    {
        match &cli.machine {
            // As for a network card: QEMU's default machine has PCI.
            None => cfg.machine = vx86::machine::MachineType::Pc,
            Some(m) if cfg.machine != vx86::machine::MachineType::Pc => {
                return Err(config::ConfigError::BlkNeedsPci(format!("-M {m}")).into())
            }
            Some(_) => {}
        }
    }
    let gdb = match &cli.gdb {
        Some(spec) => listen_gdb(spec)?,
        None => None,
    };
    #[cfg(feature = "window")]
    let guest = match &cli.name {
        Some(n) => config::parse_name(n),
        None => frontend::guest_name(
            cli.kernel.as_deref().map(std::path::Path::new),
            &drives.iter().map(|d| d.file.as_path()).collect::<Vec<_>>(),
            cli.bios.as_deref().map(std::path::Path::new),
        ),
    };
    let monitor_info = vx86::monitor::Info {
        block: vx86::monitor::block_info(&drives, cli.snapshot),
        network: vx86::monitor::network_info(&nics),
        drives: vx86::monitor::block_drives(&drives),
        snapshot_dir: std::path::PathBuf::from(cli.snapshot_dir.as_deref().unwrap_or(".")),
    };
    let setup = Setup {
        cfg,
        drives,
        snapshot: cli.snapshot,
        serial: serial.clone(),
        debugcon,
        debugcon_devs,
        bios: cli.bios.clone(),
        screenshot: cli.screenshot_on_exit.clone(),
        stats: cli.stats,
        kernel,
        nics,
        boot_order,
        gdb,
        start_stopped: cli.start_stopped,
        save_on_exit: cli.save_on_exit.clone(),
        loadvm: cli.loadvm.clone(),
        state_hash: cli.state_hash,
    };

    let ch = frontend::channels(display == Display::Window);
    // COM1 on an interactive terminal: raw mode and QEMU's Ctrl-a escapes.
    let raw = if serial == CharDev::Stdio {
        frontend::stdio::RawTerminal::enable()
    } else {
        frontend::stdio::RawTerminal::disabled()
    };
    // The monitors: -monitor, -qmp, and Ctrl-a c on the serial terminal
    // (QEMU's -nographic mux) unless a -monitor is given.
    let mux = serial == CharDev::Stdio && raw.is_raw() && monitor_spec.is_none();
    let (mon_tx, mon_rx) = crossbeam_channel::unbounded::<vx86::monitor::Request>();
    let (first_tx, first_rx) = crossbeam_channel::bounded::<()>(1);
    let mut waits = false;
    let mut listeners = Vec::new();
    for (spec, backend, proto) in [
        (
            &monitor_spec,
            &monitor,
            vx86::monitor::server::Protocol::Hmp,
        ),
        (&qmp_spec, &qmp, vx86::monitor::server::Protocol::Qmp),
    ] {
        if let Some(b) = backend {
            // Only a waiting backend may start the guest.
            let (tx, _rx) = crossbeam_channel::bounded(1);
            let connected = if b.wait { first_tx.clone() } else { tx };
            waits |= b.wait;
            let l = vx86::monitor::server::start(b, proto, mon_tx.clone(), connected)
                .with_context(|| {
                    let (opt, spec) = spec.as_ref().map_or(("", ""), |(o, s)| (*o, s.as_str()));
                    format!("{opt} {spec}: cannot listen")
                })?;
            listeners.push(l);
        }
    }
    let monitor_on = mux || monitor.is_some() || qmp.is_some();
    if serial == CharDev::Stdio {
        frontend::stdio::spawn_stdin_reader(
            ch.input_tx.clone(),
            raw.is_raw(),
            mux.then(|| mon_tx.clone()),
        );
    }
    drop(mon_tx);
    frontend::install_signal_handlers();

    // The machine lives on its own thread (its block cache is not Send, so it
    // is built there); setup errors come back before any window opens.
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), String>>(1);
    let link = ch.link.clone();
    let machine = std::thread::Builder::new()
        .name("vx86-machine".into())
        .stack_size(16 << 20)
        .spawn(move || -> Option<Outcome> {
            let mut setup = setup;
            let mut m = match build_machine(setup.cfg.clone(), &mut setup) {
                Ok(m) => m,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    return None;
                }
            };
            let _ = ready_tx.send(Ok(()));
            m.host = link;
            if monitor_on {
                m.monitor = Some(vx86::monitor::Monitor::new(
                    mon_rx,
                    monitor_info,
                    waits.then_some(first_rx),
                ));
            }
            Some(run_machine(m, &setup))
        })
        .context("cannot start the machine thread")?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = machine.join();
            drop(raw);
            bail!("{e}");
        }
        Err(_) => bail!("the machine thread ended during setup"),
    }

    #[cfg(feature = "window")]
    if display == Display::Window {
        if let Some(rx) = ch.display_rx.clone() {
            if let Err(e) = frontend::window::run(guest, cli.full_screen, ch.input_tx.clone(), rx) {
                let _ = ch.input_tx.send(frontend::HostInput::Quit);
                let _ = machine.join();
                drop(raw);
                bail!("-display window: cannot open the window: {e:?}");
            }
            // Window closed: the machine has been asked to quit.
        }
    }
    let outcome = machine.join();
    drop(raw);
    // Unix socket files go with the run.
    drop(listeners);
    let Ok(Some(outcome)) = outcome else {
        bail!("the machine thread failed");
    };
    if let Some(line) = &outcome.stats_line {
        eprintln!("{line}");
    }
    if let Some(line) = &outcome.state_line {
        eprintln!("vx86 state hash: {line}");
    }
    if outcome.save_failed {
        return Ok(1);
    }
    let exit = outcome.exit;
    if !matches!(
        exit,
        vx86::machine::RunExit::DebugExit(_)
            | vx86::machine::RunExit::InstructionLimit
            | vx86::machine::RunExit::Quit
            | vx86::machine::RunExit::Reset
    ) {
        eprintln!("vx86: {}", exit.describe());
    }
    Ok(exit.status())
}

/// Opens the gdb stub's socket (before the machine starts, so that a
/// taken port is one clear error line). Port 0 picks a free port, which is
/// then printed.
fn listen_gdb(spec: &str) -> Result<Option<std::net::TcpListener>> {
    let bad = |m: String| config::ConfigError::BadGdb(spec.to_string(), m);
    let Some(addr) = vx86::gdb::parse_gdb_dev(spec).map_err(bad)? else {
        return Ok(None);
    };
    let l = std::net::TcpListener::bind(&addr)
        .map_err(|e| bad(format!("cannot listen on {addr}: {e}")))?;
    if addr.ends_with(":0") {
        if let Ok(a) = l.local_addr() {
            eprintln!("vx86: gdb stub listening on {a}");
        }
    }
    Ok(Some(l))
}

/// True when a window can open (on Linux/BSD: an X11 or Wayland display).
fn host_has_display() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
}

/// Builds the machine: memory, disks, firmware, output sinks.
fn build_machine(cfg: MachineConfig, setup: &mut Setup) -> Result<Machine> {
    let mut m = Machine::new(cfg)?;
    // Nothing to boot named (no -bios, no disk, no -kernel): the built-in
    // default guest, vx86's BIOS booting its own boot disk as drive 80h.
    if setup.bios.is_none() && setup.drives.is_empty() && setup.kernel.is_none() {
        vx86::boot::builtin::attach_boot_disk(&mut m)
            .map_err(|e| anyhow::anyhow!("built-in boot disk: {e}"))?;
    }
    let mut next_index = 0u8;
    for spec in &setup.drives {
        let mut spec = spec.clone();
        if setup.snapshot {
            spec.snapshot = true;
        }
        match spec.interface {
            vx86::block::drive_spec::Interface::Ide => {}
            // A drive no -device took: QEMU leaves it unattached too.
            vx86::block::drive_spec::Interface::None => continue,
            vx86::block::drive_spec::Interface::Virtio => {
                let dev = vx86::block::open_drive(&spec)?;
                m.add_virtio_blk(dev, spec.serial.as_deref().unwrap_or(""))?;
                continue;
            }
        }
        let index = spec.index.unwrap_or_else(|| {
            let i = next_index;
            next_index += 1;
            i
        });
        if index > vx86::block::drive_spec::MAX_DRIVE_INDEX {
            bail!("-drive index={index}: only 4 IDE drives exist");
        }
        if spec.cdrom {
            let disc = vx86::block::open_cdrom(&spec)?;
            m.attach_cdrom(index, disc)
                .map_err(|e| anyhow::anyhow!("-drive index={index}: {e}"))?;
            continue;
        }
        let dev = vx86::block::open_drive(&spec)?;
        m.attach_drive(index, dev)
            .map_err(|e| anyhow::anyhow!("-drive index={index}: {e}"))?;
    }
    if let Some(order) = &setup.boot_order {
        m.set_boot_order(order);
    }
    for nic in &setup.nics {
        let backend =
            vx86::net::user::UserNet::new(&nic.user).map_err(|e| anyhow::anyhow!("{e}"))?;
        m.add_virtio_net(nic.mac, Box::new(backend))?;
    }
    m.sinks.serial = open_sink(&setup.serial)?;
    m.sinks.debugcon = open_sink(&setup.debugcon)?;
    for c in &setup.debugcon_devs {
        let sink = open_sink(c)?;
        m.sinks.debugcons.push(sink);
    }
    match &setup.bios {
        Some(path) => {
            let img =
                std::fs::read(path).with_context(|| format!("{path}: cannot read BIOS image"))?;
            m.mem.load_bios(path, &img)?;
        }
        None => vx86::boot::builtin::load_bios(&mut m)?,
    }
    if setup.gdb.is_some() || setup.start_stopped {
        m.attach_gdb(setup.gdb.take(), setup.start_stopped);
    }
    if let Some(k) = setup.kernel.take() {
        // After the BIOS image: the memory map reserves what it occupies.
        let booted = m.boot_kernel(k)?;
        if setup.stats {
            eprintln!("vx86: -kernel: {}", booted.describe());
        }
    }
    if let Some(path) = &setup.loadvm {
        let t = std::time::Instant::now();
        m.load_snapshot(std::path::Path::new(path))?;
        if setup.stats {
            eprintln!(
                "vx86: -loadvm {path}: loaded in {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(m)
}

/// Runs the machine to the end, then saves the screenshot, flushes disks and
/// collects the statistics.
fn run_machine(mut m: Machine, setup: &Setup) -> Outcome {
    let start = std::time::Instant::now();
    // A run from -loadvm counts from where the snapshot was taken.
    let retired_before = m.cpu.icount - m.idle_insns;
    let exit = m.run();
    let secs = start.elapsed().as_secs_f64();
    if let Some(path) = &setup.screenshot {
        let frame = m.screenshot();
        if let Err(e) = vx86::devices::vga::screenshot_png(&frame, std::path::Path::new(path)) {
            eprintln!("vx86: {e}");
        }
    }
    if let Err(e) = m.flush_disks() {
        eprintln!("vx86: flushing disk images failed: {e}");
    }
    let mut save_failed = false;
    if let Some(path) = &setup.save_on_exit {
        let t = std::time::Instant::now();
        match m.save_snapshot(std::path::Path::new(path)) {
            Ok(()) if setup.stats => {
                let size = std::fs::metadata(path).map_or(0, |md| md.len());
                eprintln!(
                    "vx86: --save-on-exit {path}: {size} bytes in {:.3} s",
                    t.elapsed().as_secs_f64()
                );
            }
            Ok(()) => {}
            Err(e) => {
                eprintln!("vx86: {e}");
                save_failed = true;
            }
        }
    }
    let state_line = setup.state_hash.then(|| m.state_hash());
    let nic_lines = if setup.stats {
        let mut l = m.nic_stats();
        l.extend(m.blk_stats());
        l
    } else {
        Vec::new()
    };
    let stats_line = setup.stats.then(|| {
        let retired = m.cpu.icount - m.idle_insns - retired_before;
        let s = &m.cpu.stats;
        let mut line = format!(
            "vx86 stats: {} instructions retired in {:.3} s = {:.1} MIPS; blocks run {}, decoded {} (revived {}); TLB misses {}; SMC invalidations {}",
            retired,
            secs,
            retired as f64 / secs / 1e6,
            s.blocks_run,
            s.blocks_decoded,
            s.blocks_revived,
            s.tlb_misses,
            s.smc_invalidations
        );
        if let Some(j) = &m.cpu.jit {
            line.push_str(&format!(
                "\nvx86 stats: JIT compiled {} blocks ({} with the blocks they branch to) in {:.3} s (code buffer freed {} times)",
                j.compiled,
                j.region_blocks,
                j.compile_time.as_secs_f64(),
                j.flushes
            ));
        }
        for l in &nic_lines {
            line.push_str("\nvx86 stats: ");
            line.push_str(l);
        }
        line
    });
    Outcome {
        exit,
        stats_line,
        state_line,
        save_failed,
    }
}

fn conform(which: &ConformCmd) -> Result<i32> {
    use vx86::conformance::vx86_cpu::{Vx86Real, Vx86User};
    let mut out = std::io::stdout();
    let summary = match which {
        ConformCmd::Host {
            count,
            seed,
            bits,
            fp,
            x87,
            filter,
            jit,
        } => {
            if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
                bail!("conform host needs a Linux x86-64 host to run instructions natively");
            }
            if !matches!(bits, 32 | 64) {
                bail!("--bits {bits}: use 64 or 32");
            }
            let mut cpu = Vx86User::default();
            if *jit {
                cpu = cpu.with_jit().map_err(|e| anyhow::anyhow!("--jit: {e}"))?;
            }
            let cfg = vx86::conformance::gen::GenConfig::default();
            let mut gen = if *x87 {
                vx86::conformance::gen::Generator::new_x87(*seed, *bits)
            } else if *fp {
                vx86::conformance::gen::Generator::new_fp(*seed, *bits)
            } else {
                vx86::conformance::gen::Generator::new_for(*seed, cfg, *bits)
            };
            if let Some(f) = filter {
                let names: Vec<&str> = f.split(',').collect();
                if !gen.retain_mnemonics(&names) {
                    bail!("--filter {f}: no generated form has one of these mnemonics");
                }
            }
            vx86::conformance::host::run_generated(&mut cpu, &mut gen, *count, &mut out)
        }
        ConformCmd::Singlestep {
            dir,
            filter,
            details,
            jit,
        } => {
            let p = std::path::Path::new(dir);
            if !p.is_dir() {
                bail!("{dir}: not a directory of SingleStepTests MOO files");
            }
            let mut cpu = Vx86Real::default();
            if *jit {
                cpu = cpu.with_jit().map_err(|e| anyhow::anyhow!("--jit: {e}"))?;
            }
            vx86::conformance::singlestep::run_singlestep_dir_with(
                &mut cpu,
                p,
                filter.as_deref(),
                *details,
                1,
                &mut out,
            )
        }
    };
    Ok(if summary.failed == 0 { 0 } else { 1 })
}
