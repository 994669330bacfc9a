//! The command line. vx86 speaks QEMU's option language for what it
//! implements (`-m 512M -kernel K -drive file=X,format=raw -nographic ...`);
//! its own features are `--long` flags and subcommands. Every QEMU option a
//! user is likely to type is in [`OPTIONS`]: the implemented ones are mapped
//! to the parser (so `-opt` and `--opt` both work), the others are refused
//! with one line saying what is missing and what to use instead.

use clap::{Parser, Subcommand};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("-m {0}: not a memory size (use e.g. 512M, 1G, or a number of MiB)")]
    BadMemSize(String),
    #[error("-M {0}: unsupported machine (vx86 has isapc and pc; -M help lists them)")]
    BadMachine(String),
    #[error("-M {0}: vx86 has no hardware acceleration: it always emulates the CPU in software (use accel=tcg or drop it)")]
    MachineAccel(String),
    #[error("-cpu {0}: unsupported (use qemu64, optionally with -feature to remove one, e.g. -ssse3, or +apic for the local and I/O APIC)")]
    BadCpu(String),
    #[error("-smp {0}: vx86 runs one CPU (use -smp 1 or drop the option)")]
    BadSmp(String),
    #[error("-accel {0}: vx86 has no hardware acceleration: it always emulates the CPU in software (use -accel tcg)")]
    BadAccel(String),
    #[error("-rtc {0}: {1}")]
    BadRtc(String, String),
    #[error("-icount {0}: {1}")]
    BadIcount(String, String),
    #[error("-boot {0}: vx86 boots from the first hard disk (c) or the CD-ROM (d); {1}")]
    BadBoot(String, &'static str),
    #[error("-vga {0}: vx86 has one video card, the standard VGA with Bochs VBE (use -vga std)")]
    BadVga(String),
    #[error("-parallel {0}: vx86's machines have no parallel port (use -parallel none)")]
    BadParallel(String),
    #[error("-serial {0}: unsupported (use stdio, file:PATH or none)")]
    BadSerial(String),
    #[error("-display {0}: unsupported (use window or none, or -nographic)")]
    BadDisplay(String),
    #[error("-device {0}: unsupported device (vx86 has {1}; -device help lists them)")]
    BadDevice(String, &'static str),
    #[error("-device {0}: {1}")]
    BadDeviceArg(String, String),
    #[error("-debugcon {0}: unsupported (use stdio, file:PATH or none)")]
    BadDebugcon(String),
    #[error("-chardev {0}: {1}")]
    BadChardev(String, String),
    #[error("-device {0}: {1}")]
    BadDebugconDevice(String, String),
    #[error("-gdb {0}: {1}")]
    BadGdb(String, String),
    #[error("-monitor {0}: {1}")]
    BadMonitor(String, String),
    #[error("-qmp {0}: {1}")]
    BadQmp(String, String),
    #[error("-mon {0}: {1}")]
    BadMon(String, String),
    #[error("--snapshot-dir {0}: not a directory")]
    BadSnapshotDir(String),
    #[error("--boot-entry {0}")]
    BadBootEntry(String),
    #[error("--boot-fb {0}: use WIDTHxHEIGHT, e.g. 1024x768 (at most 2560x1600)")]
    BadBootFb(String),
    #[error("{0} needs -kernel")]
    NeedsKernel(&'static str),
    #[error("{0}")]
    Net(#[from] crate::net::spec::SpecError),
    #[error("-device {0}: {1}")]
    BadNicDevice(String, String),
    #[error(
        "-net {0}: not supported (use -nic user[,model=virtio-net-pci][,hostfwd=...] or -nic none)"
    )]
    BadNet(String),
    #[error("--host-dns {0}: not an ADDR:PORT socket address")]
    BadHostDns(String),
    #[error("{0}: a network card needs a PCI bus; use -M pc")]
    NicNeedsPci(String),
    #[error("{0}: a virtio disk (virtio-blk-pci) needs a PCI bus; use -M pc")]
    BlkNeedsPci(String),
}

/// `-device virtio-blk-pci,drive=ID[,serial=S]`: puts the `-drive
/// if=none,id=ID` it names on a virtio-blk-pci device of its own (QEMU's
/// two-option spelling of `-drive ...,if=virtio`).
pub fn attach_blk_devices(
    devices: &[String],
    drives: &mut [crate::block::DriveSpec],
) -> Result<(), ConfigError> {
    use crate::block::drive_spec::{Interface, MAX_SERIAL_LEN};
    for d in devices {
        let Some(rest) = d.strip_prefix("virtio-blk-pci") else {
            continue;
        };
        let mut drive = None;
        let mut serial = None;
        for kv in rest.split(',').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("drive", v)) => drive = Some(v.to_string()),
                Some(("serial", v)) if v.len() <= MAX_SERIAL_LEN => serial = Some(v.to_string()),
                Some(("serial", v)) => {
                    return Err(ConfigError::BadDeviceArg(
                        d.clone(),
                        format!("serial={v}: at most {MAX_SERIAL_LEN} bytes"),
                    ))
                }
                // Names and placement QEMU users give: harmless here.
                Some(("id" | "bus" | "addr" | "romfile" | "bootindex", _)) => {}
                _ => {
                    return Err(ConfigError::BadDeviceArg(
                        d.clone(),
                        format!("{kv}: unknown option (virtio-blk-pci takes drive, serial, id)"),
                    ))
                }
            }
        }
        let id = drive
            .ok_or_else(|| ConfigError::BadDeviceArg(d.clone(), "drive= is required".into()))?;
        let Some(spec) = drives
            .iter_mut()
            .find(|s| s.id.as_deref() == Some(id.as_str()))
        else {
            return Err(ConfigError::BadDeviceArg(
                d.clone(),
                format!("drive={id}: no -drive with id={id}"),
            ));
        };
        if spec.interface != Interface::None {
            return Err(ConfigError::BadDeviceArg(
                d.clone(),
                format!("drive={id} is already attached (give it if=none)"),
            ));
        }
        spec.interface = Interface::Virtio;
        if serial.is_some() {
            spec.serial = serial;
        }
    }
    Ok(())
}

/// A network card to build: its MAC and its user-networking backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicPlan {
    pub mac: [u8; 6],
    pub user: crate::net::spec::UserConfig,
}

/// QEMU's first NIC MAC; the n-th card gets the last byte plus n.
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The network cards the command line asks for: `-nic user,...`, and
/// `-netdev user,id=X` paired with `-device virtio-net-pci,netdev=X[,mac=M]`.
/// `-nic none` / `-net none` ask for none.
pub fn network_plan(cli: &Cli) -> Result<Vec<NicPlan>, ConfigError> {
    use crate::net::spec::{parse_mac, parse_netdev, parse_nic, Nic};
    let host_dns = match &cli.host_dns {
        Some(s) => Some(
            s.parse::<std::net::SocketAddr>()
                .map_err(|_| ConfigError::BadHostDns(s.clone()))?,
        ),
        None => None,
    };
    let mut plans = Vec::new();
    let mut macs: Vec<Option<[u8; 6]>> = Vec::new();
    for n in &cli.net {
        if n != "none" {
            return Err(ConfigError::BadNet(n.clone()));
        }
    }
    for n in &cli.nic {
        match parse_nic(n)? {
            Nic::None => {}
            Nic::User { mac, user, .. } => {
                macs.push(mac);
                plans.push(user);
            }
        }
    }
    let mut netdevs: Vec<(String, crate::net::spec::UserConfig, bool)> = Vec::new();
    for n in &cli.netdev {
        let d = parse_netdev(n)?;
        netdevs.push((d.id, d.user, false));
    }
    for d in &cli.device {
        let Some(rest) = d.strip_prefix("virtio-net-pci") else {
            continue;
        };
        let mut id = None;
        let mut mac = None;
        for kv in rest.split(',').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("netdev", v)) => id = Some(v.to_string()),
                Some(("mac", v)) => {
                    mac = Some(parse_mac(v).map_err(|e| {
                        ConfigError::BadNicDevice(d.clone(), format!("mac={v}: {e}"))
                    })?)
                }
                // Names and placement QEMU users give: harmless here.
                Some(("id" | "bus" | "addr" | "romfile", _)) => {}
                _ => {
                    return Err(ConfigError::BadNicDevice(
                        d.clone(),
                        format!("{kv}: unknown option (virtio-net-pci takes netdev, mac, id)"),
                    ))
                }
            }
        }
        let id =
            id.ok_or_else(|| ConfigError::BadNicDevice(d.clone(), "netdev= is required".into()))?;
        let Some(nd) = netdevs.iter_mut().find(|(i, _, _)| *i == id) else {
            return Err(ConfigError::BadNicDevice(
                d.clone(),
                format!("netdev={id}: no -netdev with id={id}"),
            ));
        };
        if nd.2 {
            return Err(ConfigError::BadNicDevice(
                d.clone(),
                format!("netdev={id} is already used by another card"),
            ));
        }
        nd.2 = true;
        macs.push(mac);
        plans.push(nd.1.clone());
    }
    if let Some((id, _, _)) = netdevs.iter().find(|(_, _, used)| !used) {
        return Err(ConfigError::BadNicDevice(
            format!("(none for netdev {id})"),
            format!("-netdev id={id} has no card: add -device virtio-net-pci,netdev={id}"),
        ));
    }
    Ok(plans
        .into_iter()
        .zip(macs)
        .enumerate()
        .map(|(i, (mut user, mac))| {
            if user.host_dns.is_none() {
                user.host_dns = host_dns;
            }
            let mut m = DEFAULT_MAC;
            m[5] = m[5].wrapping_add(i as u8);
            NicPlan {
                mac: mac.unwrap_or(m),
                user,
            }
        })
        .collect())
}

#[derive(Parser, Debug, Default)]
#[command(
    name = "vx86",
    version,
    about = "vx86: a full-system x86 PC emulator in pure software",
    long_about = "vx86: a full-system x86 PC emulator in pure software.\n\n\
        QEMU's options are spelled as in QEMU (-m 512M, -kernel FILE, -nographic, ...); \
        vx86's own options start with two dashes. With no arguments vx86 boots the \
        Debian container guest if scripts/build-guest.sh has built it, else its \
        built-in guest.",
    args_override_self = true
)]
pub struct Cli {
    /// Guest RAM size (QEMU syntax: 512M, 1G, or MiB); default 256M.
    #[arg(short = 'm', value_name = "SIZE", help_heading = "Standard options")]
    pub mem: Option<String>,
    /// Machine type: isapc (ISA-only PC, the default) or pc (with the
    /// i440FX/PIIX3 PCI bus); `help` lists them. accel=tcg is accepted.
    #[arg(short = 'M', value_name = "MACHINE", help_heading = "Standard options")]
    pub machine: Option<String>,
    /// CPU model: qemu64[,-feature...] (host and max mean the same model).
    #[arg(long, value_name = "MODEL", help_heading = "Standard options")]
    pub cpu: Option<String>,
    /// Number of CPUs: only 1.
    #[arg(long, value_name = "N", help_heading = "Standard options")]
    pub smp: Option<String>,
    /// Accelerator: tcg (what vx86 does: software emulation).
    #[arg(long, value_name = "tcg", help_heading = "Standard options")]
    pub accel: Option<String>,
    /// Name of the guest (window title).
    #[arg(long, value_name = "NAME", help_heading = "Standard options")]
    pub name: Option<String>,
    /// RTC start: base=utc|localtime|YYYY-MM-DDTHH:MM:SS[,clock=host|rt|vm]
    /// (default: the host's UTC time; in -icount mode 2026-01-01).
    #[arg(long, value_name = "OPTS", help_heading = "Standard options")]
    pub rtc: Option<String>,
    /// Boot order: c (the first hard disk), d (the CD-ROM), e.g. dc or order=dc.
    #[arg(long, value_name = "ORDER", help_heading = "Standard options")]
    pub boot: Option<String>,

    /// Disk image: file=PATH[,format=raw][,readonly=on][,index=N][,if=ide][,snapshot=on][,cache=MODE].
    #[arg(long, value_name = "OPTS", help_heading = "Block device options")]
    pub drive: Vec<String>,
    /// First hard disk (same as -drive file=FILE,index=0).
    #[arg(long, value_name = "FILE", help_heading = "Block device options")]
    pub hda: Option<String>,
    /// Second hard disk (index 1).
    #[arg(long, value_name = "FILE", help_heading = "Block device options")]
    pub hdb: Option<String>,
    /// Third hard disk (index 2, secondary master).
    #[arg(long, value_name = "FILE", help_heading = "Block device options")]
    pub hdc: Option<String>,
    /// Fourth hard disk (index 3).
    #[arg(long, value_name = "FILE", help_heading = "Block device options")]
    pub hdd: Option<String>,
    /// CD-ROM image (an ATAPI drive at index 2, secondary master).
    #[arg(long, value_name = "FILE", help_heading = "Block device options")]
    pub cdrom: Option<String>,
    /// Write disk changes to a temporary overlay; images are never modified.
    #[arg(long, help_heading = "Block device options")]
    pub snapshot: bool,

    /// No window: serial (and the monitor's escapes) on stdio.
    #[arg(long, help_heading = "Display options")]
    pub nographic: bool,
    /// window (also sdl, gtk, cocoa) or none.
    #[arg(long, value_name = "TYPE", help_heading = "Display options")]
    pub display: Option<String>,
    /// Video card: std (VGA with Bochs VBE, the only one).
    #[arg(long, value_name = "TYPE", help_heading = "Display options")]
    pub vga: Option<String>,
    /// Start the window in full screen.
    #[arg(long = "full-screen", help_heading = "Display options")]
    pub full_screen: bool,

    /// Network backend: user,id=ID[,hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT][,restrict=on|off][,net=ADDR/MASK][,dhcpstart=ADDR].
    #[arg(long, value_name = "OPTS", help_heading = "Network options")]
    pub netdev: Vec<String>,
    /// NIC and backend in one: user[,model=virtio-net-pci][,mac=MAC][,hostfwd=...], or none.
    #[arg(long, value_name = "OPTS", help_heading = "Network options")]
    pub nic: Vec<String>,
    /// Legacy -net: only none (use -nic).
    #[arg(long, value_name = "OPTS", help_heading = "Network options")]
    pub net: Vec<String>,
    /// Where user networking forwards the guest's DNS queries (10.0.2.3):
    /// ADDR:PORT instead of the host's resolver.
    #[arg(
        long = "host-dns",
        value_name = "ADDR:PORT",
        help_heading = "vx86 options"
    )]
    pub host_dns: Option<String>,

    /// COM1 backend: stdio, file:PATH or none.
    #[arg(long, value_name = "DEV", help_heading = "Character device options")]
    pub serial: Option<String>,
    /// Debug console (ports 0xE9 and 0x402): stdio, file:PATH or none.
    #[arg(long, value_name = "DEV", help_heading = "Character device options")]
    pub debugcon: Option<String>,
    /// Human monitor (HMP): stdio, unix:PATH,server,nowait, tcp:[HOST]:PORT,server,nowait or none.
    #[arg(long, value_name = "DEV", help_heading = "Character device options")]
    pub monitor: Option<String>,
    /// QMP (JSON) monitor: unix:PATH,server,nowait, tcp:[HOST]:PORT,server,nowait or stdio.
    #[arg(long, value_name = "DEV", help_heading = "Character device options")]
    pub qmp: Option<String>,
    /// Monitor on a -chardev: chardev=ID[,mode=readline|control][,pretty=on|off].
    #[arg(long, value_name = "OPTS", help_heading = "Character device options")]
    pub mon: Vec<String>,
    /// Parallel port: only none (there is none).
    #[arg(long, value_name = "DEV", help_heading = "Character device options")]
    pub parallel: Option<String>,

    /// Linux kernel (bzImage), ELF vmlinux or multiboot kernel to boot directly.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Linux/Multiboot boot specific"
    )]
    pub kernel: Option<String>,
    /// Initial ramdisk for -kernel (multiboot: modules "FILE ARGS,FILE2").
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Linux/Multiboot boot specific"
    )]
    pub initrd: Option<String>,
    /// Kernel command line for -kernel.
    #[arg(
        long,
        allow_hyphen_values = true,
        value_name = "CMDLINE",
        help_heading = "Linux/Multiboot boot specific"
    )]
    pub append: Option<String>,

    /// System BIOS image (64, 128 or 256 KiB).
    #[arg(long, value_name = "FILE", help_heading = "Debug/expert options")]
    pub bios: Option<String>,
    /// Exit instead of rebooting on triple fault or reset.
    #[arg(long = "no-reboot", help_heading = "Debug/expert options")]
    pub no_reboot: bool,
    /// Devices: isa-debug-exit[,iobase=0xf4][,iosize=0x04],
    /// isa-debugcon,iobase=PORT,chardev=ID, virtio-net-pci,netdev=ID.
    #[arg(
        long,
        value_name = "DRIVER[,OPTS]",
        help_heading = "Debug/expert options"
    )]
    pub device: Vec<String>,
    /// Character devices for -device isa-debugcon: file,id=ID,path=FILE,
    /// stdio,id=ID or null,id=ID.
    #[arg(
        long,
        value_name = "BACKEND,id=ID[,path=FILE]",
        help_heading = "Character device options"
    )]
    pub chardev: Vec<String>,
    /// Deterministic time: shift=N[,sleep=on|off][,align=on|off] (2^N ns per
    /// instruction; shift=0,sleep=off gives byte-identical runs).
    #[arg(long, value_name = "OPTS", help_heading = "Debug/expert options")]
    pub icount: Option<String>,
    /// Write the process ID to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Debug/expert options")]
    pub pidfile: Option<String>,

    /// Kernel entry for -kernel: auto (a bzImage is decompressed on the host
    /// and entered at its 64-bit entry with boot_params; PVH for an ELF with
    /// the note), pvh, 64 or 32.
    #[arg(
        long = "boot-entry",
        value_name = "auto|pvh|64|32",
        help_heading = "vx86 options"
    )]
    pub boot_entry: Option<String>,
    /// Do not decompress a bzImage on the host: load it the classic way and
    /// let its own decompressor run in the guest.
    #[arg(long = "no-host-decompress", help_heading = "vx86 options")]
    pub no_host_decompress: bool,
    /// Enter a Linux kernel with a WIDTHxHEIGHT 32-bpp VBE linear framebuffer
    /// described in boot_params (graphical console) instead of VGA text.
    #[arg(long = "boot-fb", value_name = "WxH", help_heading = "vx86 options")]
    pub boot_fb: Option<String>,
    /// Stop cleanly after this many guest instructions.
    #[arg(long = "max-insns", value_name = "N", help_heading = "vx86 options")]
    pub max_insns: Option<u64>,
    /// Print instructions retired, MIPS, block-cache and TLB statistics at exit.
    #[arg(long, help_heading = "vx86 options")]
    pub stats: bool,
    /// Run one instruction per block with no caching (for bisecting).
    #[arg(long = "no-block-cache", help_heading = "vx86 options")]
    pub no_block_cache: bool,
    /// JIT tier: compile hot blocks to host code (the interpreter stays the
    /// reference; counts and interrupt points are the same).
    #[arg(long, help_heading = "vx86 options")]
    pub jit: bool,
    /// Runs of a block before the JIT compiles it.
    #[arg(long = "jit-threshold", value_name = "N", default_value_t = crate::cpu::jit::DEFAULT_THRESHOLD, help_heading = "vx86 options")]
    pub jit_threshold: u32,
    /// Instruction time (-icount shift=N, default 0) with sleep=on,align=on:
    /// deterministic, and never ahead of the host's clock.
    #[arg(long, help_heading = "vx86 options")]
    pub realtime: bool,
    /// gdb stub: tcp::PORT (on 127.0.0.1) or tcp:HOST:PORT, or none; -s is
    /// -gdb tcp::1234.
    #[arg(long, value_name = "DEV", help_heading = "Debug/expert options")]
    pub gdb: Option<String>,
    /// Start with the CPU stopped, waiting for the debugger's continue.
    #[arg(short = 'S', help_heading = "Debug/expert options")]
    pub start_stopped: bool,
    /// Write a whole-machine snapshot to FILE when the run stops
    /// (`--max-insns`, the monitor's `quit`, the guest's exit).
    #[arg(
        long = "save-on-exit",
        value_name = "FILE",
        help_heading = "vx86 options"
    )]
    pub save_on_exit: Option<String>,
    /// Start from a snapshot written by --save-on-exit (the command line must
    /// build the same machine; disks are checked against the snapshot).
    #[arg(long = "loadvm", value_name = "FILE", help_heading = "vx86 options")]
    pub loadvm: Option<String>,
    /// Where the monitor's savevm and loadvm put and find snapshot files
    /// given by a relative name, and what `info snapshots` lists (default:
    /// the current directory).
    #[arg(
        long = "snapshot-dir",
        value_name = "DIR",
        help_heading = "vx86 options"
    )]
    pub snapshot_dir: Option<String>,
    /// Print a hash of the CPU's architectural state, the devices' state and
    /// RAM when the run ends (two runs that agree print the same line).
    #[arg(long = "state-hash", help_heading = "vx86 options")]
    pub state_hash: bool,
    /// Save the screen as PNG when the run ends.
    #[arg(
        long = "screenshot-on-exit",
        value_name = "FILE",
        help_heading = "vx86 options"
    )]
    pub screenshot_on_exit: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Instruction conformance harnesses.
    Conform {
        #[command(subcommand)]
        which: ConformCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConformCmd {
    /// Differential test against the host CPU (Linux x86-64 hosts).
    Host {
        #[arg(long, default_value_t = 10000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Code size: 64 (64-bit mode) or 32 (compatibility mode).
        #[arg(long, default_value_t = 64)]
        bits: u32,
        /// Generate only MMX/SSE/SSE2 forms (with the FP/SIMD state compared).
        #[arg(long)]
        fp: bool,
        /// Generate only x87 and FP-state forms (FXSAVE/FSAVE/FSTENV...).
        #[arg(long, conflicts_with = "fp")]
        x87: bool,
        /// Only mnemonics in this comma-separated list (lower case, e.g. addps,cvtsd2si).
        #[arg(long)]
        filter: Option<String>,
        /// Run vx86's side through the JIT tier (every instruction compiled).
        #[arg(long)]
        jit: bool,
    },
    /// Run SingleStepTests MOO files (80286 real mode) from DIR.
    Singlestep {
        dir: String,
        /// Only files whose name starts with this.
        #[arg(long)]
        filter: Option<String>,
        /// How many mismatches to print in detail.
        #[arg(long, default_value_t = 20)]
        details: u64,
        /// Run vx86's side through the JIT tier (every instruction compiled).
        #[arg(long)]
        jit: bool,
    },
}

/// How vx86 treats one of QEMU's options.
#[derive(Clone, Copy, Debug)]
enum Handling {
    /// vx86 implements it: passed to the parser as `--name` (or its short form).
    Parse(&'static str),
    /// Accepted and ignored; the note (if any) says why on stderr.
    Ignore(&'static str),
    /// Refused: the message says what is missing and what to use instead.
    Refuse(&'static str),
}

/// One command-line option: its name without dashes, whether it takes a value.
struct OptSpec {
    name: &'static str,
    value: bool,
    how: Handling,
}

const fn opt(name: &'static str, value: bool, how: Handling) -> OptSpec {
    OptSpec { name, value, how }
}

use Handling::{Ignore, Parse, Refuse};

const NO_SNAPSHOTS: &str =
    "not supported: vx86 has no live migration (use --save-on-exit FILE and -loadvm FILE)";
const NO_KVM: &str = "vx86 has no hardware acceleration: it always emulates the CPU in software (drop the option, or use -accel tcg)";
const NO_USB: &str = "not supported: vx86's machines have no USB controller (the keyboard is PS/2)";
const NO_SOUND: &str = "not supported: vx86 has no sound device";
const NO_FLOPPY: &str =
    "not supported: vx86's machines have no floppy controller (use -drive/-hda for disk images)";
const NO_REMOTE: &str =
    "not supported: vx86 has no remote display (use the window, -display none or -nographic)";
const NO_LOG: &str = "not supported: vx86 has no QEMU log items (use --stats for counters)";
const GENERIC: &str = "not supported by vx86";

/// Every QEMU option a user is likely to type, and vx86's own.
const OPTIONS: &[OptSpec] = &[
    // Implemented (QEMU's spelling).
    opt("m", true, Parse("-m")),
    opt("M", true, Parse("-M")),
    opt("machine", true, Parse("-M")),
    opt("cpu", true, Parse("--cpu")),
    opt("smp", true, Parse("--smp")),
    opt("accel", true, Parse("--accel")),
    opt("name", true, Parse("--name")),
    opt("rtc", true, Parse("--rtc")),
    opt("boot", true, Parse("--boot")),
    opt("drive", true, Parse("--drive")),
    opt("hda", true, Parse("--hda")),
    opt("hdb", true, Parse("--hdb")),
    opt("hdc", true, Parse("--hdc")),
    opt("hdd", true, Parse("--hdd")),
    opt("cdrom", true, Parse("--cdrom")),
    opt("snapshot", false, Parse("--snapshot")),
    opt("nographic", false, Parse("--nographic")),
    opt("display", true, Parse("--display")),
    opt("vga", true, Parse("--vga")),
    opt("full-screen", false, Parse("--full-screen")),
    opt("serial", true, Parse("--serial")),
    opt("debugcon", true, Parse("--debugcon")),
    opt("monitor", true, Parse("--monitor")),
    opt("parallel", true, Parse("--parallel")),
    opt("kernel", true, Parse("--kernel")),
    opt("initrd", true, Parse("--initrd")),
    opt("append", true, Parse("--append")),
    opt("bios", true, Parse("--bios")),
    opt("no-reboot", false, Parse("--no-reboot")),
    opt("device", true, Parse("--device")),
    opt("icount", true, Parse("--icount")),
    opt("pidfile", true, Parse("--pidfile")),
    opt("gdb", true, Parse("--gdb")),
    opt("s", false, Parse("--gdb=tcp::1234")),
    opt("S", false, Parse("-S")),
    opt("h", false, Parse("--help")),
    opt("help", false, Parse("--help")),
    opt("version", false, Parse("--version")),
    opt("V", false, Parse("--version")),
    // vx86's own.
    opt("boot-entry", true, Parse("--boot-entry")),
    opt("no-host-decompress", false, Parse("--no-host-decompress")),
    opt("boot-fb", true, Parse("--boot-fb")),
    opt("max-insns", true, Parse("--max-insns")),
    opt("stats", false, Parse("--stats")),
    opt("no-block-cache", false, Parse("--no-block-cache")),
    opt("jit", false, Parse("--jit")),
    opt("jit-threshold", true, Parse("--jit-threshold")),
    opt("realtime", false, Parse("--realtime")),
    opt("screenshot-on-exit", true, Parse("--screenshot-on-exit")),
    opt("save-on-exit", true, Parse("--save-on-exit")),
    opt("snapshot-dir", true, Parse("--snapshot-dir")),
    opt("state-hash", false, Parse("--state-hash")),
    opt("host-dns", true, Parse("--host-dns")),
    // Accepted: they ask for what vx86 does anyway, or only tune the host side.
    opt("sdl", false, Parse("--display=window")),
    opt("no-acpi", false, Ignore("")),
    opt("no-hpet", false, Ignore("")),
    opt("mem-prealloc", false, Ignore("")),
    opt("no-user-config", false, Ignore("")),
    opt("nodefconfig", false, Ignore("")),
    opt("enable-sync-profile", false, Ignore("")),
    opt("msg", true, Ignore("")),
    opt("overcommit", true, Ignore("")),
    opt(
        "L",
        true,
        Ignore("ignored: vx86's firmware is built in (use -bios FILE for another)"),
    ),
    opt(
        "k",
        true,
        Ignore("ignored: keys reach the guest by position, as on a US keyboard"),
    ),
    opt("uuid", true, Ignore("ignored: vx86 has no SMBIOS tables")),
    // Not (yet) supported: one line each, exit status 1.
    opt("enable-kvm", false, Refuse(NO_KVM)),
    opt("netdev", true, Parse("--netdev")),
    opt("nic", true, Parse("--nic")),
    opt("net", true, Parse("--net")),
    opt("fda", true, Refuse(NO_FLOPPY)),
    opt("fdb", true, Refuse(NO_FLOPPY)),
    opt("loadvm", true, Parse("--loadvm")),
    opt("incoming", true, Refuse(NO_SNAPSHOTS)),
    opt("chardev", true, Parse("--chardev")),
    opt("mon", true, Parse("--mon")),
    opt("qmp", true, Parse("--qmp")),
    opt("qmp-pretty", true, Parse("--qmp")),
    opt("usb", false, Refuse(NO_USB)),
    opt("usbdevice", true, Refuse(NO_USB)),
    opt("soundhw", true, Refuse(NO_SOUND)),
    opt("audiodev", true, Refuse(NO_SOUND)),
    opt("audio", true, Refuse(NO_SOUND)),
    opt("vnc", true, Refuse(NO_REMOTE)),
    opt("spice", true, Refuse(NO_REMOTE)),
    opt(
        "curses",
        false,
        Refuse("not supported: use -nographic (the serial console on this terminal) or the window"),
    ),
    opt(
        "daemonize",
        false,
        Refuse("not supported: run vx86 in the background from your shell instead"),
    ),
    opt("D", true, Refuse(NO_LOG)),
    opt("d", true, Refuse(NO_LOG)),
    opt("trace", true, Refuse(NO_LOG)),
    opt("no-shutdown", false, Refuse(GENERIC)),
    opt("object", true, Refuse(GENERIC)),
    opt("global", true, Refuse(GENERIC)),
    opt("set", true, Refuse(GENERIC)),
    opt("readconfig", true, Refuse(GENERIC)),
    opt("writeconfig", true, Refuse(GENERIC)),
    opt(
        "blockdev",
        true,
        Refuse("not supported: use -drive file=...,format=raw"),
    ),
    opt("add-fd", true, Refuse(GENERIC)),
    opt("fsdev", true, Refuse(GENERIC)),
    opt("virtfs", true, Refuse(GENERIC)),
    opt("tpmdev", true, Refuse(GENERIC)),
    opt(
        "numa",
        true,
        Refuse("not supported: vx86 has one CPU and one memory node"),
    ),
    opt("mem-path", true, Refuse(GENERIC)),
    opt(
        "smbios",
        true,
        Refuse("not supported: vx86 has no SMBIOS tables"),
    ),
    opt("option-rom", true, Refuse(GENERIC)),
    opt("pflash", true, Refuse(GENERIC)),
    opt("mtdblock", true, Refuse(GENERIC)),
    opt("sd", true, Refuse(GENERIC)),
    opt("semihosting", false, Refuse(GENERIC)),
    opt("watchdog-action", true, Refuse(GENERIC)),
    opt("action", true, Refuse(GENERIC)),
    opt("plugin", true, Refuse(GENERIC)),
    opt("runas", true, Refuse(GENERIC)),
    opt("run-with", true, Refuse(GENERIC)),
    opt("chroot", true, Refuse(GENERIC)),
    opt("sandbox", true, Refuse(GENERIC)),
    opt(
        "acpitable",
        true,
        Refuse("not supported: vx86's machines have no ACPI yet"),
    ),
    opt("fw_cfg", true, Refuse(GENERIC)),
    opt("iscsi", true, Refuse(GENERIC)),
    opt("singlestep", false, Refuse(GENERIC)),
];

/// Why the command line was refused before parsing.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgError {
    #[error("-{name}{}: {msg}", value.as_deref().map(|v| format!(" {v}")).unwrap_or_default())]
    Refused {
        name: String,
        value: Option<String>,
        msg: &'static str,
    },
    #[error("-{0}: unknown option (vx86 --help lists the options)")]
    Unknown(String),
    #[error("-{0}: needs a value")]
    MissingValue(String),
}

/// The command line after QEMU's spellings were mapped to vx86's parser,
/// with the notes to print for accepted-but-ignored options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    pub args: Vec<String>,
    pub notes: Vec<String>,
}

/// Maps QEMU's single-dash options to the parser's spelling, refuses the
/// options vx86 does not support with a message naming each, and treats a
/// bare file name as QEMU does (the first hard disk). Subcommands
/// (`vx86 conform ...`) pass through untouched.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Result<Normalized, ArgError> {
    let mut it = args.into_iter();
    let mut out = Normalized::default();
    out.args.extend(it.next());
    let rest: Vec<String> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        i += 1;
        if !a.starts_with('-') || a == "-" {
            if a == "conform" || a == "help" {
                // A subcommand: clap parses the rest itself.
                out.args.extend(rest[i - 1..].iter().cloned());
                return Ok(out);
            }
            // QEMU: a bare argument is the first hard disk image.
            out.args.push("--hda".into());
            out.args.push(a.clone());
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(spec) = OPTIONS.iter().find(|o| o.name == name) else {
            return Err(ArgError::Unknown(name.to_string()));
        };
        let value = if spec.value {
            match inline {
                Some(v) => Some(v),
                None => {
                    let v = rest
                        .get(i)
                        .cloned()
                        .ok_or_else(|| ArgError::MissingValue(name.to_string()))?;
                    i += 1;
                    Some(v)
                }
            }
        } else {
            None
        };
        match spec.how {
            Parse(to) => {
                match to.split_once('=') {
                    Some((flag, v)) => {
                        out.args.push(flag.to_string());
                        out.args.push(v.to_string());
                    }
                    None => out.args.push(to.to_string()),
                }
                out.args.extend(value);
            }
            Ignore(note) => {
                if !note.is_empty() {
                    let v = value.map(|v| format!(" {v}")).unwrap_or_default();
                    out.notes.push(format!("-{name}{v}: {note}"));
                }
            }
            Refuse(msg) => {
                return Err(ArgError::Refused {
                    name: name.to_string(),
                    value,
                    msg,
                })
            }
        }
    }
    Ok(out)
}

/// The QEMU options vx86 refuses, with their messages (for the README's
/// table and the test that runs each).
pub fn refused_options() -> Vec<(&'static str, bool, &'static str)> {
    OPTIONS
        .iter()
        .filter_map(|o| match o.how {
            Refuse(m) => Some((o.name, o.value, m)),
            _ => None,
        })
        .collect()
}

/// Parses a QEMU memory size: plain numbers are MiB; suffixes K, M, G, T.
pub fn parse_mem(s: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::BadMemSize(s.to_string());
    let t = s.trim();
    let t = t.strip_prefix("size=").unwrap_or(t);
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        Some('b' | 'B') => (&t[..t.len() - 1], 1),
        _ => (t, 1 << 20),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    Ok((n * mul as f64) as u64)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CharDev {
    Stdio,
    File(String),
    None,
}

pub fn parse_chardev(s: &str) -> Option<CharDev> {
    match s {
        "stdio" | "mon:stdio" => Some(CharDev::Stdio),
        "none" | "null" => Some(CharDev::None),
        _ => s
            .strip_prefix("file:")
            .map(|p| CharDev::File(p.to_string())),
    }
}

/// The `-chardev` backends vx86 has, as the error for another one lists them.
const CHARDEV_BACKENDS: &str = "file, stdio, null";

/// A QEMU option string's first word and its `key=value` properties.
type QemuProps<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// Splits a QEMU option string `first,key=value,...` into its first word and
/// its properties; a property without `=` is an error naming it.
fn qemu_props(s: &str) -> Result<QemuProps<'_>, String> {
    let mut parts = s.split(',');
    let first = parts.next().unwrap_or("");
    let mut props = Vec::new();
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("property `{p}` needs a value (`{p}=...`)"))?;
        props.push((k, v));
    }
    Ok((first, props))
}

/// Parses `-chardev BACKEND,id=ID[,path=FILE]` (QEMU's spelling) into the id
/// and where its bytes go. Backends: `file` (created or truncated, as QEMU
/// does), `stdio`, `null`; any other gets an error naming the ones there are.
pub fn parse_chardev_option(s: &str) -> Result<(String, CharDev), ConfigError> {
    let bad = |m: String| ConfigError::BadChardev(s.to_string(), m);
    let (backend, props) = qemu_props(s).map_err(bad)?;
    if !matches!(backend, "file" | "stdio" | "null") {
        return Err(bad(format!(
            "unknown backend `{backend}` (vx86 has {CHARDEV_BACKENDS})"
        )));
    }
    let mut id = None;
    let mut path = None;
    for (k, v) in props {
        match k {
            "id" => id = Some(v),
            "path" if backend == "file" => path = Some(v),
            // QEMU's stdio options that change nothing for an output-only device.
            "signal" | "mux" | "logfile" | "logappend" if backend == "stdio" => {}
            _ => return Err(bad(format!("unknown `{backend}` property `{k}`"))),
        }
    }
    let id = match id {
        Some(i) if !i.is_empty() => i.to_string(),
        _ => return Err(bad("needs id=ID".into())),
    };
    let dev = match backend {
        "file" => match path {
            Some(p) if !p.is_empty() => CharDev::File(p.to_string()),
            _ => return Err(bad("the file backend needs path=FILE".into())),
        },
        "stdio" => CharDev::Stdio,
        _ => CharDev::None,
    };
    Ok((id, dev))
}

/// Whether a `-chardev` is a socket that a `-mon` uses (only a monitor can).
pub fn is_monitor_socket(chardev: &str, mons: &[String]) -> bool {
    let Some(id) = chardev
        .strip_prefix("socket,")
        .and_then(|r| r.split(',').find_map(|p| p.strip_prefix("id=")))
    else {
        return false;
    };
    mons.iter()
        .any(|m| m.split(',').any(|p| p.strip_prefix("chardev=") == Some(id)))
}

/// `-mon chardev=ID[,mode=readline|control][,pretty=on|off]`: the
/// `-monitor`/`-qmp` backend its `-chardev` stands for
/// (`socket,id=ID,path=P,server=on[,wait=off]` is `unix:P,...`,
/// `socket,id=ID,host=H,port=N,server=on[,wait=off]` is `tcp:H:N,...`,
/// `stdio,id=ID` is `stdio`), and whether it speaks QMP (`mode=control`).
pub fn mon_backend(mon: &str, chardevs: &[String]) -> Result<(String, bool), ConfigError> {
    let bad = |m: String| ConfigError::BadMon(mon.to_string(), m);
    let mut id = None;
    let mut qmp = false;
    for p in mon.split(',') {
        match p.split_once('=') {
            Some(("chardev", v)) => id = Some(v),
            Some(("mode", "readline")) => qmp = false,
            Some(("mode", "control")) => qmp = true,
            Some(("pretty", "on" | "off")) => {}
            _ => {
                return Err(bad(format!(
                    "unknown property `{p}` (chardev=ID, mode=readline|control, pretty=on|off)"
                )))
            }
        }
    }
    let id = id.ok_or_else(|| bad("needs chardev=ID".into()))?;
    let chardev = chardevs
        .iter()
        .find(|c| {
            c.split(',')
                .skip(1)
                .any(|p| p.strip_prefix("id=") == Some(id))
        })
        .ok_or_else(|| bad(format!("no -chardev with id `{id}`")))?;
    let (backend, props) = qemu_props(chardev).map_err(bad)?;
    if backend == "stdio" {
        return Ok(("stdio".into(), qmp));
    }
    if backend != "socket" {
        return Err(bad(format!(
            "chardev `{id}` is `{backend}`: a monitor needs a socket or stdio chardev"
        )));
    }
    let (mut path, mut host, mut port, mut opts) = (None, "", None, Vec::new());
    for (k, v) in props {
        match k {
            "id" => {}
            "path" => path = Some(v),
            "host" => host = v,
            "port" => port = Some(v),
            "server" | "wait" | "telnet" => opts.push(format!("{k}={v}")),
            _ => {
                return Err(bad(format!(
                    "chardev `{id}`: unknown socket property `{k}`"
                )))
            }
        }
    }
    let target = match (path, port) {
        (Some(p), None) => format!("unix:{p}"),
        (None, Some(n)) => format!("tcp:{host}:{n}"),
        _ => {
            return Err(bad(format!(
                "chardev `{id}`: give path=FILE or host=H,port=N"
            )))
        }
    };
    let mut spec = target;
    for o in opts {
        spec.push(',');
        spec.push_str(&o);
    }
    Ok((spec, qmp))
}

/// `-device isa-debugcon,iobase=PORT,chardev=ID`: a debug console at any
/// port (QEMU's default iobase is 0xE9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugconDevice {
    pub iobase: u16,
    pub chardev: String,
}

/// Parses the properties of `-device isa-debugcon,...`.
pub fn parse_isa_debugcon(s: &str) -> Result<DebugconDevice, ConfigError> {
    let bad = |m: String| ConfigError::BadDebugconDevice(s.to_string(), m);
    let (_, props) = qemu_props(s).map_err(bad)?;
    let mut iobase = crate::devices::debug_port::DEBUGCON_PORT;
    let mut chardev = None;
    for (k, v) in props {
        match k {
            "iobase" => {
                let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                    Some(h) => u32::from_str_radix(h, 16),
                    None => v.parse::<u32>(),
                };
                iobase = n
                    .ok()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| bad(format!("iobase={v} is not a port (0 to 0xffff)")))?;
            }
            "chardev" => chardev = Some(v.to_string()),
            // QEMU's properties without an effect here.
            "id" | "readback" => {}
            _ => {
                return Err(bad(format!(
                    "unknown isa-debugcon property `{k}` (known: iobase, chardev, id)"
                )))
            }
        }
    }
    let chardev = chardev
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("needs chardev=ID (a -chardev with that id)".into()))?;
    Ok(DebugconDevice { iobase, chardev })
}

/// Parses `--boot-fb WIDTHxHEIGHT` (within the Bochs VBE limits and the
/// 16 MiB framebuffer at 32 bpp).
pub fn parse_boot_fb(s: &str) -> Result<(u16, u16), ConfigError> {
    let bad = || ConfigError::BadBootFb(s.to_string());
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u16 = w.trim().parse().map_err(|_| bad())?;
    let h: u16 = h.trim().parse().map_err(|_| bad())?;
    if !(320..=2560).contains(&w) || !(200..=1600).contains(&h) || !w.is_multiple_of(8) {
        return Err(bad());
    }
    Ok((w, h))
}

/// The machine types vx86 has, as `-M help` lists them.
pub const MACHINES: &[(&str, &str)] = &[
    (
        "isapc",
        "ISA-only PC (the default): 8259, 8254, 16550, RTC, i8042, VGA, IDE",
    ),
    (
        "pc",
        "Standard PC (i440FX + PIIX3): the ISA PC plus a PCI bus",
    ),
];

/// `-M NAME[,accel=tcg]`: isapc, or pc (also QEMU's versioned pc-i440fx-*).
pub fn check_machine(m: &str) -> Result<crate::machine::MachineType, ConfigError> {
    use crate::machine::MachineType;
    let mut parts = m.split(',');
    let name = parts.next().unwrap_or("");
    let name = name.strip_prefix("type=").unwrap_or(name);
    let t = match name {
        "isapc" => MachineType::IsaPc,
        "pc" => MachineType::Pc,
        n if n.starts_with("pc-i440fx-") => MachineType::Pc,
        _ => return Err(ConfigError::BadMachine(m.to_string())),
    };
    for p in parts {
        match p.split_once('=') {
            Some(("accel", "tcg")) => {}
            Some(("accel", _)) => return Err(ConfigError::MachineAccel(m.to_string())),
            // Host-side or absent-feature knobs QEMU users add: nothing to do.
            Some(("usb" | "vmport" | "hpet" | "acpi" | "smm" | "dump-guest-core", "off")) => {}
            _ => return Err(ConfigError::BadMachine(m.to_string())),
        }
    }
    Ok(t)
}

/// `-smp N[,cpus=N,sockets=S,cores=C,threads=T,maxcpus=M]`: only one CPU.
pub fn check_smp(s: &str) -> Result<(), ConfigError> {
    for p in s.split(',') {
        let v = p.split_once('=').map_or(p, |(_, v)| v);
        if v != "1" {
            return Err(ConfigError::BadSmp(s.to_string()));
        }
    }
    Ok(())
}

/// `-accel tcg[,thread=single|multi][,tb-size=N]`: what vx86 does.
pub fn check_accel(a: &str) -> Result<(), ConfigError> {
    let mut parts = a.split(',');
    if parts.next() != Some("tcg") {
        return Err(ConfigError::BadAccel(a.to_string()));
    }
    for p in parts {
        match p.split_once('=') {
            Some(("thread", "single" | "multi")) | Some(("tb-size", _)) => {}
            _ => return Err(ConfigError::BadAccel(a.to_string())),
        }
    }
    Ok(())
}

/// `-boot [order=]c[,menu=on|off][,strict=on|off][,splash-time=N]...`.
pub fn check_boot(b: &str) -> Result<(), ConfigError> {
    parse_boot(b).map(|_| ())
}

/// The boot order `-boot` asks for, as CMOS boot device codes
/// ([`crate::devices::rtc::BOOT_HARD_DISK`], `BOOT_CDROM`); `None` when it
/// names no order (only menu=, splash= ...). `once=` is taken as the order.
pub fn parse_boot(b: &str) -> Result<Option<Vec<u8>>, ConfigError> {
    use crate::devices::rtc::{BOOT_CDROM, BOOT_HARD_DISK};
    let mut order = None;
    for p in b.split(',') {
        let (k, v) = p.split_once('=').unwrap_or(("order", p));
        match k {
            "order" | "once" => {
                let mut o = Vec::new();
                for c in v.chars() {
                    match c {
                        'c' => o.push(BOOT_HARD_DISK),
                        'd' => o.push(BOOT_CDROM),
                        'a' | 'b' => {
                            return Err(ConfigError::BadBoot(b.into(), "there is no floppy drive"))
                        }
                        'n' => {
                            return Err(ConfigError::BadBoot(b.into(), "there is no network boot"))
                        }
                        _ => return Err(ConfigError::BadBoot(b.into(), "unknown boot device")),
                    }
                }
                if o.len() > 3 {
                    return Err(ConfigError::BadBoot(b.into(), "at most three boot devices"));
                }
                order = Some(o);
            }
            "menu" | "strict" | "splash" | "splash-time" | "reboot-timeout" => {}
            _ => return Err(ConfigError::BadBoot(b.into(), "unknown option")),
        }
    }
    Ok(order)
}

/// `-vga std` (and `-vga none` is refused: vx86's BIOS draws on its VGA).
pub fn check_vga(v: &str) -> Result<(), ConfigError> {
    match v {
        "std" => Ok(()),
        _ => Err(ConfigError::BadVga(v.to_string())),
    }
}

/// `-name NAME` or `-name guest=NAME[,debug-threads=on]`: the guest's name.
pub fn parse_name(n: &str) -> String {
    for p in n.split(',') {
        if let Some(g) = p.strip_prefix("guest=") {
            return g.to_string();
        }
    }
    n.split(',').next().unwrap_or(n).to_string()
}

/// Where the RTC starts (`-rtc base=...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcBase {
    /// The host's UTC time when the machine starts (QEMU's default).
    Utc,
    /// The host's local time.
    LocalTime,
    /// A fixed time, Unix seconds.
    Fixed(i64),
}

/// Parses `-rtc [base=utc|localtime|YYYY-MM-DD[THH:MM:SS]][,clock=host|rt|vm][,driftfix=none|slew]`.
/// vx86's RTC always counts guest time, which follows the host clock by
/// default (so `clock=host` and `clock=vm` agree there) and instructions
/// under -icount (deterministic).
pub fn parse_rtc(s: &str) -> Result<Option<RtcBase>, ConfigError> {
    let bad = |m: &str| ConfigError::BadRtc(s.to_string(), m.to_string());
    let mut base = None;
    for p in s.split(',') {
        let (k, v) = p.split_once('=').ok_or_else(|| bad("use key=value"))?;
        match k {
            "base" => {
                base =
                    Some(match v {
                        "utc" => RtcBase::Utc,
                        "localtime" => RtcBase::LocalTime,
                        d => RtcBase::Fixed(parse_datetime(d).ok_or_else(|| {
                            bad("base: use utc, localtime or YYYY-MM-DDTHH:MM:SS")
                        })?),
                    })
            }
            "clock" if matches!(v, "host" | "rt" | "vm") => {}
            "driftfix" if matches!(v, "none" | "slew") => {}
            _ => return Err(bad("unknown option (base, clock, driftfix)")),
        }
    }
    Ok(base)
}

/// `YYYY-MM-DD[THH:MM:SS]` (UTC) as Unix seconds.
fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (&[y, mo, da], &[h, mi, se]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..60).contains(&se)
    {
        return None;
    }
    // Days from the civil date (proleptic Gregorian; March-based years).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// The RTC's start in Unix seconds for `base`, now.
pub fn rtc_start(base: RtcBase) -> i64 {
    let utc = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match base {
        RtcBase::Utc => utc,
        RtcBase::LocalTime => utc + local_utc_offset(utc),
        RtcBase::Fixed(t) => t,
    }
}

/// The host's offset from UTC in seconds at `utc` (0 where unknown).
#[cfg(unix)]
fn local_utc_offset(utc: i64) -> i64 {
    let t = utc as libc::time_t;
    // SAFETY: `localtime_r` writes only into `tm`, a plain C struct we own;
    // both pointers are valid for the call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// Windows: no libc time zone here; local time is taken as UTC.
#[cfg(not(unix))]
fn local_utc_offset(_utc: i64) -> i64 {
    0
}

/// `-cpu qemu64[,-feature...][,+apic]`: the model must be one vx86 stands in
/// for; `-name` removes a feature from CPUID (QEMU's flag names); `+apic`
/// (or `apic=on`) adds the local APIC and, on `-M pc`, the I/O APIC. `host` and
/// `max` mean vx86's one model; the returned note says so.
pub fn check_cpu(c: &str) -> Result<(crate::cpu::cpuid::FeatureMask, Option<String>), ConfigError> {
    let mut parts = c.split(',');
    let model = parts.next();
    let note = match model {
        Some("qemu64") => None,
        Some(m @ ("max" | "host")) => Some(format!(
            "-cpu {m}: vx86 has one CPU model (qemu64-like: x86-64 with SSE3, no APIC); using it"
        )),
        _ => return Err(ConfigError::BadCpu(c.to_string())),
    };
    let mut mask = crate::cpu::cpuid::FeatureMask::default();
    for p in parts {
        let ok = if let Some(name) = p.strip_prefix('-') {
            mask.remove(name)
        } else if let Some(name) = p.strip_prefix('+') {
            mask.add(name)
        } else {
            match p.split_once('=') {
                Some((name, "on" | "true")) => mask.add(name),
                Some((name, "off" | "false")) => mask.remove(name),
                _ => false,
            }
        };
        if !ok {
            return Err(ConfigError::BadCpu(c.to_string()));
        }
    }
    Ok((mask, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_style_args_parse() {
        let args = [
            "vx86",
            "-m",
            "512M",
            "-kernel",
            "k",
            "-append",
            "-x console=ttyS0",
            "-nographic",
            "-no-reboot",
        ];
        let n = normalize_args(args.iter().map(|s| s.to_string())).expect("known options");
        let cli = Cli::try_parse_from(n.args).expect("parses");
        assert_eq!(cli.mem.as_deref(), Some("512M"));
        assert_eq!(cli.kernel.as_deref(), Some("k"));
        assert_eq!(cli.append.as_deref(), Some("-x console=ttyS0"));
        assert!(cli.nographic && cli.no_reboot);
    }

    fn norm(args: &[&str]) -> Result<Normalized, ArgError> {
        normalize_args(
            std::iter::once("vx86")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn qemu_options_are_mapped_refused_or_noted() {
        let n = norm(&["-machine", "pc", "-hda", "d.img", "x.img", "-k", "de"]).expect("ok");
        assert_eq!(
            n.args,
            ["vx86", "-M", "pc", "--hda", "d.img", "--hda", "x.img"]
        );
        assert_eq!(n.notes.len(), 1);
        assert!(n.notes[0].starts_with("-k de: ignored"));
        let e = norm(&["-m", "1G", "-enable-kvm"]).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("-enable-kvm: vx86 has no hardware acceleration"));
        let e = norm(&["-fda", "x.img"]).unwrap_err();
        assert!(
            e.to_string().starts_with("-fda x.img: not supported"),
            "{e}"
        );
        let n = norm(&["-cdrom", "x.iso"]).expect("ok");
        assert_eq!(n.args, ["vx86", "--cdrom", "x.iso"]);
        assert_eq!(
            norm(&["-frobnicate"]).unwrap_err(),
            ArgError::Unknown("frobnicate".into())
        );
        assert_eq!(
            norm(&["-kernel"]).unwrap_err(),
            ArgError::MissingValue("kernel".into())
        );
        // --opt=value and subcommands.
        let n = norm(&["--max-insns=5", "conform", "host", "--count", "3"]).expect("ok");
        assert_eq!(
            n.args,
            [
                "vx86",
                "--max-insns",
                "5",
                "conform",
                "host",
                "--count",
                "3"
            ]
        );
        // Every refused option has a message.
        assert!(refused_options().iter().all(|(_, _, m)| !m.is_empty()));
    }

    #[test]
    fn machine_smp_accel_boot_vga() {
        use crate::machine::MachineType;
        assert_eq!(check_machine("isapc").ok(), Some(MachineType::IsaPc));
        assert_eq!(check_machine("pc,accel=tcg").ok(), Some(MachineType::Pc));
        assert_eq!(check_machine("pc-i440fx-7.2").ok(), Some(MachineType::Pc));
        assert!(matches!(
            check_machine("pc,accel=kvm"),
            Err(ConfigError::MachineAccel(_))
        ));
        assert!(check_machine("q35").is_err());
        assert!(check_smp("1").is_ok() && check_smp("cpus=1,sockets=1").is_ok());
        assert!(check_smp("4").is_err());
        assert!(check_accel("tcg,thread=single").is_ok());
        assert!(check_accel("kvm").is_err());
        assert!(check_boot("order=c,menu=on").is_ok());
        use crate::devices::rtc::{BOOT_CDROM, BOOT_HARD_DISK};
        assert_eq!(parse_boot("d").unwrap(), Some(vec![BOOT_CDROM]));
        assert_eq!(
            parse_boot("order=dc,menu=off").unwrap(),
            Some(vec![BOOT_CDROM, BOOT_HARD_DISK])
        );
        assert_eq!(parse_boot("menu=on").unwrap(), None);
        assert!(check_boot("a").is_err() && check_boot("n").is_err());
        assert!(check_boot("cdcd").is_err());
        assert!(check_vga("std").is_ok() && check_vga("cirrus").is_err());
        assert_eq!(parse_name("guest=web,debug-threads=on"), "web");
        assert_eq!(parse_name("web"), "web");
        let (m, _) = check_cpu("qemu64,+apic").expect("+apic");
        assert!(m.apic);
        let (m, _) = check_cpu("qemu64,apic=on,-apic").expect("apic=on,-apic");
        assert!(!m.apic);
        assert!(!check_cpu("qemu64").expect("qemu64").0.apic);
        assert!(check_cpu("qemu64,+avx512f").is_err());
        let (_, note) = check_cpu("host").expect("host");
        assert!(note.is_some_and(|n| n.contains("one CPU model")));
    }

    #[test]
    fn rtc_bases() {
        assert_eq!(parse_rtc("base=utc").ok(), Some(Some(RtcBase::Utc)));
        assert_eq!(
            parse_rtc("base=2026-01-01T00:00:00,clock=vm").ok(),
            Some(Some(RtcBase::Fixed(1_767_225_600)))
        );
        assert_eq!(
            parse_rtc("base=2000-02-29").ok(),
            Some(Some(RtcBase::Fixed(951_782_400)))
        );
        assert!(parse_rtc("base=yesterday").is_err());
        assert!(parse_rtc("clock=bogus").is_err());
        let now = rtc_start(RtcBase::Utc);
        assert!(now > 1_700_000_000);
    }

    #[test]
    fn boot_fb_sizes() {
        assert_eq!(parse_boot_fb("1024x768").ok(), Some((1024, 768)));
        assert!(parse_boot_fb("1024").is_err());
        assert!(parse_boot_fb("4096x4096").is_err());
        assert!(parse_boot_fb("0x0").is_err());
    }

    #[test]
    fn mem_sizes() {
        assert_eq!(parse_mem("512M").ok(), Some(512 << 20));
        assert_eq!(parse_mem("1G").ok(), Some(1 << 30));
        assert_eq!(parse_mem("128").ok(), Some(128 << 20));
        assert!(parse_mem("lots").is_err());
    }
}
