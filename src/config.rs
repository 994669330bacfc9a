//! The command line. vx86 speaks QEMU's option language for what it
//! implements (`-m 512M -kernel K -drive file=X,format=raw -nographic ...`);
//! its own features are `--long` flags and subcommands. QEMU's single-dash
//! long options are accepted by rewriting `-opt` to `--opt` before clap sees
//! them, so both spellings work.

use clap::{Parser, Subcommand};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("-m {0}: not a memory size (use e.g. 512M, 1G, or a number of MiB)")]
    BadMemSize(String),
    #[error("-M {0}: unsupported machine (vx86 emulates QEMU's isapc: use -M isapc)")]
    BadMachine(String),
    #[error("-cpu {0}: unsupported (use qemu64, optionally with -feature to remove one, e.g. -apic, -ssse3)")]
    BadCpu(String),
    #[error("-serial {0}: unsupported (use stdio, file:PATH or none)")]
    BadSerial(String),
    #[error("-display {0}: unsupported (use window or none)")]
    BadDisplay(String),
    #[error("-device {0}: unsupported device (vx86 has isa-debug-exit)")]
    BadDevice(String),
    #[error("-device {0}: {1}")]
    BadDeviceArg(String, String),
    #[error("-debugcon {0}: unsupported (use stdio, file:PATH or none)")]
    BadDebugcon(String),
    #[error("-monitor {0}: unsupported (only -monitor none)")]
    BadMonitor(String),
    #[error("--boot-entry {0}")]
    BadBootEntry(String),
    #[error("--boot-fb {0}: use WIDTHxHEIGHT, e.g. 1024x768 (at most 2560x1600)")]
    BadBootFb(String),
    #[error("{0} needs -kernel")]
    NeedsKernel(&'static str),
}

#[derive(Parser, Debug, Default)]
#[command(
    name = "vx86",
    version,
    about = "vx86: a full-system x86 PC emulator in pure software",
    args_override_self = true
)]
pub struct Cli {
    /// Guest RAM size (QEMU syntax: 512M, 1G, or MiB); default 256M.
    #[arg(short = 'm', value_name = "SIZE")]
    pub mem: Option<String>,
    /// Machine type: isapc (also accepted: pc, q35 are refused).
    #[arg(short = 'M', value_name = "MACHINE")]
    pub machine: Option<String>,
    /// CPU model: qemu64[,-apic].
    #[arg(long)]
    pub cpu: Option<String>,
    /// Linux kernel (bzImage), ELF vmlinux or multiboot kernel to boot directly.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Initial ramdisk for -kernel.
    #[arg(long)]
    pub initrd: Option<String>,
    /// Kernel command line for -kernel.
    #[arg(long, allow_hyphen_values = true)]
    pub append: Option<String>,
    /// Kernel entry for -kernel: auto (PVH if the kernel has it, else the
    /// 64-bit Linux entry if it has one, else 32-bit), pvh, 64 or 32.
    #[arg(long = "boot-entry", value_name = "auto|pvh|64|32")]
    pub boot_entry: Option<String>,
    /// Do not decompress a bzImage on the host for its PVH entry: load it
    /// the classic way and let its own decompressor run in the guest.
    #[arg(long = "no-host-decompress")]
    pub no_host_decompress: bool,
    /// Enter a Linux kernel with a WIDTHxHEIGHT 32-bpp VBE linear framebuffer
    /// described in boot_params (graphical console) instead of VGA text.
    #[arg(long = "boot-fb", value_name = "WxH")]
    pub boot_fb: Option<String>,
    /// System BIOS image (64, 128 or 256 KiB).
    #[arg(long)]
    pub bios: Option<String>,
    /// Disk image: file=PATH,format=raw[,readonly=on][,index=N][,if=ide].
    #[arg(long)]
    pub drive: Vec<String>,
    /// First hard disk (same as -drive file=FILE,index=0).
    #[arg(long)]
    pub hda: Option<String>,
    #[arg(long)]
    pub hdb: Option<String>,
    /// Write disk changes to a temporary overlay; images are never modified.
    #[arg(long)]
    pub snapshot: bool,
    /// No window: serial on stdio.
    #[arg(long)]
    pub nographic: bool,
    /// COM1 backend: stdio, file:PATH or none.
    #[arg(long)]
    pub serial: Option<String>,
    /// window or none.
    #[arg(long)]
    pub display: Option<String>,
    /// Only "none" is accepted.
    #[arg(long)]
    pub monitor: Option<String>,
    /// Exit instead of rebooting on triple fault or reset.
    #[arg(long = "no-reboot")]
    pub no_reboot: bool,
    /// Devices: isa-debug-exit[,iobase=0xf4][,iosize=0x04].
    #[arg(long)]
    pub device: Vec<String>,
    /// Debug console (ports 0xE9 and 0x402): stdio, file:PATH or none.
    #[arg(long)]
    pub debugcon: Option<String>,
    /// Stop cleanly after this many guest instructions.
    #[arg(long = "max-insns")]
    pub max_insns: Option<u64>,
    /// Print instructions retired, MIPS, block-cache and TLB statistics at exit.
    #[arg(long)]
    pub stats: bool,
    /// Run one instruction per block with no caching (for bisecting).
    #[arg(long = "no-block-cache")]
    pub no_block_cache: bool,
    /// Keep guest time from running ahead of host time (idle guests wait in
    /// real time); without it time comes from retired instructions only and
    /// runs are deterministic.
    #[arg(long)]
    pub realtime: bool,
    /// Save the screen as PNG when the run ends.
    #[arg(long = "screenshot-on-exit")]
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
    },
}

/// Rewrites QEMU-style `-option` to `--option` (single letters stay short).
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect_value = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || expect_value {
            expect_value = false;
            out.push(a);
            continue;
        }
        if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
        // Values that start with '-' (e.g. `-append "-v"`) are never rewritten.
        expect_value = matches!(
            out.last().map(String::as_str),
            Some(
                "--append"
                    | "--kernel"
                    | "--initrd"
                    | "--drive"
                    | "--bios"
                    | "--serial"
                    | "--debugcon"
                    | "--device"
                    | "--cpu"
                    | "-m"
                    | "-M"
            )
        );
    }
    out
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

pub fn check_machine(m: &str) -> Result<(), ConfigError> {
    let name = m.split(',').next().unwrap_or("");
    match name {
        "isapc" => Ok(()),
        _ => Err(ConfigError::BadMachine(m.to_string())),
    }
}

/// `-cpu qemu64[,-feature...]`: the model must be one vx86 stands in for;
/// `-name` removes a feature from CPUID (QEMU's flag names).
pub fn check_cpu(c: &str) -> Result<crate::cpu::cpuid::FeatureMask, ConfigError> {
    let mut parts = c.split(',');
    if !matches!(parts.next(), Some("qemu64" | "max" | "host")) {
        return Err(ConfigError::BadCpu(c.to_string()));
    }
    let mut mask = crate::cpu::cpuid::FeatureMask::default();
    for p in parts {
        match p.strip_prefix('-') {
            Some(name) if mask.remove(name) => {}
            _ => return Err(ConfigError::BadCpu(c.to_string())),
        }
    }
    Ok(mask)
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
        let cli = Cli::try_parse_from(normalize_args(args.iter().map(|s| s.to_string())))
            .expect("parses");
        assert_eq!(cli.mem.as_deref(), Some("512M"));
        assert_eq!(cli.kernel.as_deref(), Some("k"));
        assert_eq!(cli.append.as_deref(), Some("-x console=ttyS0"));
        assert!(cli.nographic && cli.no_reboot);
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
