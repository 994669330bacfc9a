//! vx86 command-line entry: clap -> Config -> Machine -> frontend.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use vx86::config::{self, CharDev, Cli, Command, ConformCmd};
use vx86::machine::{Machine, MachineConfig};

/// vx86's own BIOS (firmware/bios.asm), the default guest when nothing else is given.
const BUILTIN_BIOS: &[u8] = include_bytes!("../firmware/bios.bin");

fn main() {
    let args = config::normalize_args(std::env::args());
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

fn open_sink(c: &CharDev) -> Result<Option<Box<dyn Write + Send>>> {
    Ok(match c {
        CharDev::Stdio => Some(Box::new(std::io::stdout())),
        CharDev::None => None,
        CharDev::File(p) => Some(Box::new(
            std::fs::File::create(p).with_context(|| format!("{p}: cannot create"))?,
        )),
    })
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
        config::check_machine(m)?;
    }
    if let Some(c) = &cli.cpu {
        config::check_cpu(c)?;
    }
    if let Some(m) = &cli.monitor {
        if m != "none" {
            return Err(config::ConfigError::BadMonitor(m.clone()).into());
        }
    }
    for d in &cli.device {
        if d.starts_with("isa-debug-exit") {
            cfg.debug_exit = Some(
                vx86::devices::debug_port::DebugExit::parse(d)
                    .map_err(|e| config::ConfigError::BadDeviceArg(d.clone(), e.to_string()))?,
            );
        } else {
            return Err(config::ConfigError::BadDevice(d.clone()).into());
        }
    }
    cfg.no_reboot = cli.no_reboot;
    cfg.max_insns = cli.max_insns;
    cfg.no_block_cache = cli.no_block_cache;
    let serial = match &cli.serial {
        Some(s) => {
            config::parse_chardev(s).ok_or_else(|| config::ConfigError::BadSerial(s.clone()))?
        }
        None => CharDev::Stdio,
    };
    let debugcon = match &cli.debugcon {
        Some(s) => {
            config::parse_chardev(s).ok_or_else(|| config::ConfigError::BadDebugcon(s.clone()))?
        }
        None => CharDev::None,
    };
    if let Some(d) = &cli.display {
        match d.split(',').next().unwrap_or("") {
            "none" => {}
            // Refused rather than ignored: the minifb frontend has not landed yet.
            "window" | "sdl" | "gtk" => bail!("-display {d}: the window frontend is not implemented yet; use -display none (serial on stdio, --screenshot-on-exit for the screen)"),
            _ => return Err(config::ConfigError::BadDisplay(d.clone()).into()),
        }
    }
    if cli.kernel.is_some() {
        bail!("-kernel: direct kernel boot is not implemented yet");
    }
    let mut drives = Vec::new();
    for d in &cli.drive {
        drives.push(
            vx86::block::drive_spec::DriveSpec::parse(d)
                .map_err(|e| anyhow::anyhow!("-drive {d}: {e}"))?,
        );
    }
    for (i, f) in [(0u8, &cli.hda), (1, &cli.hdb)] {
        if let Some(f) = f {
            drives.push(
                vx86::block::drive_spec::DriveSpec::hd(i, f)
                    .map_err(|e| anyhow::anyhow!("-hd {f}: {e}"))?,
            );
        }
    }
    let mut m = Machine::new(cfg)?;
    let mut next_index = 0u8;
    for mut spec in drives {
        if cli.snapshot {
            spec.snapshot = true;
        }
        let index = spec.index.unwrap_or_else(|| {
            let i = next_index;
            next_index += 1;
            i
        });
        let dev = vx86::block::open_drive(&spec)?;
        let ch = (index / 2) as usize;
        m.plat
            .ata
            .get_mut(ch)
            .ok_or_else(|| anyhow::anyhow!("-drive index={index}: only 4 IDE drives exist"))?
            .attach((index % 2) as usize, dev)
            .map_err(|e| anyhow::anyhow!("-drive index={index}: {e}"))?;
    }
    m.sinks.serial = open_sink(&serial)?;
    m.sinks.debugcon = open_sink(&debugcon)?;
    match &cli.bios {
        Some(path) => {
            let img =
                std::fs::read(path).with_context(|| format!("{path}: cannot read BIOS image"))?;
            m.cpu.mem.load_bios(path, &img)?;
        }
        None => m.cpu.mem.load_bios("built-in firmware", BUILTIN_BIOS)?,
    }
    let start = std::time::Instant::now();
    let exit = m.run();
    let secs = start.elapsed().as_secs_f64();
    if let Some(path) = &cli.screenshot_on_exit {
        let mut frame = vx86::devices::vga::Frame::default();
        let now = m.plat.clock.now(m.cpu.icount);
        m.plat.vga.render(&mut frame, now);
        vx86::devices::vga::screenshot_png(&frame, std::path::Path::new(path))?;
    }
    if let Err(e) = m.flush_disks() {
        eprintln!("vx86: flushing disk images failed: {e}");
    }
    if cli.stats {
        let retired = m.cpu.icount - m.idle_insns;
        let s = &m.cpu.stats;
        eprintln!(
            "vx86 stats: {} instructions retired in {:.3} s = {:.1} MIPS; blocks run {}, decoded {}; TLB misses {}; SMC invalidations {}",
            retired,
            secs,
            retired as f64 / secs / 1e6,
            s.blocks_run,
            s.blocks_decoded,
            s.tlb_misses,
            s.smc_invalidations
        );
    }
    if !matches!(
        exit,
        vx86::machine::RunExit::DebugExit(_)
            | vx86::machine::RunExit::InstructionLimit
            | vx86::machine::RunExit::Quit
    ) {
        eprintln!("vx86: {}", exit.describe());
    }
    Ok(exit.status())
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
        } => {
            if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
                bail!("conform host needs a Linux x86-64 host to run instructions natively");
            }
            if !matches!(bits, 32 | 64) {
                bail!("--bits {bits}: use 64 or 32");
            }
            let mut cpu = Vx86User::default();
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
        ConformCmd::Singlestep { dir, filter } => {
            let p = std::path::Path::new(dir);
            if !p.is_dir() {
                bail!("{dir}: not a directory of SingleStepTests MOO files");
            }
            let mut cpu = Vx86Real::default();
            vx86::conformance::singlestep::run_singlestep_dir(
                &mut cpu,
                p,
                filter.as_deref(),
                &mut out,
            )
        }
    };
    Ok(if summary.failed == 0 { 0 } else { 1 })
}
