//! Direct kernel boot, as `qemu -kernel K -initrd I -append "..."` does it:
//! the loader stands in for the BIOS and a boot loader, puts the kernel,
//! its initrd or modules, the command line and the boot information in
//! guest memory, and leaves the CPU at the kernel's entry point.
//!
//! Recognised images, tried in QEMU's order:
//! - a Linux **bzImage** (setup header "HdrS"): by default its compressed
//!   payload is decompressed on the host and the `vmlinux` inside is entered
//!   through its **PVH** note (`pvh`), like `qemu -kernel vmlinux`; without
//!   the note, with `--no-host-decompress` or with `--boot-entry 64|32` it is
//!   loaded the classic way and entered at `startup_64` or `startup_32` with
//!   a zero page (`linux`), running its own decompressor;
//! - a **multiboot** v1 kernel (header in the first 8 KiB, `multiboot`);
//! - an **ELF** kernel: through its PVH note, else at `e_entry` with a zero
//!   page (64-bit mode for ELF64, 32-bit for ELF32).
//!
//! Nothing here panics on a bad image: every problem is a [`BootError`]
//! naming the file.
//!
//! [`builtin`] is what boots when the user names nothing at all: vx86's own
//! BIOS and its boot disk.

/// What the machine boots when the user names nothing: vx86's own firmware.
pub mod acpi;
pub mod aml;
pub mod builtin;
pub mod decompress;
pub mod e820;
pub mod elf;
pub mod entry;
pub mod layout;
pub mod linux;
pub mod multiboot;
pub mod pvh;

use crate::cpu::Cpu;
use decompress::{Compression, DecompressError};
use elf::{Elf, ElfError};
use entry::{Entry, EntryMode};
use layout::{GuestWriter, CMDLINE_ADDR, CMDLINE_MAX, ZERO_PAGE_ADDR};
use linux::LinuxEntry;
use thiserror::Error;

/// A boot failure: the file it concerns and what is wrong with it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{file}: {kind}")]
pub struct BootError {
    pub file: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("empty file")]
    Empty,
    #[error("not a Linux bzImage, ELF or multiboot kernel")]
    UnknownFormat,
    #[error("truncated: the {what} needs {need} bytes but the file has {have}")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("bad boot flag {0:#06x} at offset 0x1FE (a bzImage has 0xAA55)")]
    BadBootFlag(u16),
    #[error("Linux boot protocol {}.{:02} is too old (vx86 needs 2.06 or later)", .0 >> 8, .0 & 0xFF)]
    OldProtocol(u16),
    #[error("zImage kernels (loadflags without LOADED_HIGH) are not supported")]
    NotLoadedHigh,
    #[error("the kernel has no 64-bit entry point (XLF_KERNEL_64 clear); use --boot-entry 32")]
    No64BitEntry,
    #[error("the command line is {len} bytes but the kernel accepts at most {max}")]
    CmdlineTooLong { len: u64, max: u64 },
    #[error("{what} at {start:#x}..{end:#x} is outside usable guest RAM ({} MiB); use a larger -m", .ram >> 20)]
    OutsideRam {
        what: &'static str,
        start: u64,
        end: u64,
        ram: u64,
    },
    #[error("{what} at {start:#x}..{end:#x} overlaps {holds} at {:#x}..{:#x}", .area.start, .area.end)]
    OverlapsLoader {
        what: &'static str,
        start: u64,
        end: u64,
        area: std::ops::Range<u64>,
        holds: &'static str,
    },
    #[error("{what} of {size} bytes does not fit in guest RAM between {bottom:#x} and {top:#x}; use a larger -m")]
    NoRoom {
        what: &'static str,
        size: u64,
        bottom: u64,
        top: u64,
    },
    #[error("compressed kernel: {0}")]
    Payload(DecompressError),
    #[error("the decompressed payload is not a usable vmlinux: {0}")]
    PayloadNotElf(ElfError),
    #[error("{0}")]
    Elf(ElfError),
    #[error("--boot-entry pvh: {0}")]
    NoPvh(&'static str),
    #[error("the multiboot header requires features vx86 does not provide (flags {0:#x})")]
    MultibootFlags(u32),
    #[error("the multiboot header's address fields are inconsistent: {0}")]
    MultibootAddress(&'static str),
    #[error("{0} multiboot modules given; at most {1} are supported")]
    TooManyModules(usize, usize),
    #[error("the multiboot module command lines exceed the loader's 384 KiB string area")]
    ModuleStringsTooLong,
    #[error("internal error setting up the entry state: {0}")]
    CpuSetup(String),
}

/// The console the kernel is told about (Linux zero-page protocols).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Console {
    /// VGA 80x25 colour text at 0xB8000 (mode 03h).
    #[default]
    VgaText,
    /// A 32-bpp Bochs VBE linear framebuffer at `LFB_BASE`.
    Framebuffer { width: u16, height: u16 },
}

/// Which entry point to use (`--boot-entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BootEntry {
    /// PVH when the kernel has it (after host decompression for a bzImage),
    /// else the 64-bit Linux entry if the kernel has one, else 32-bit.
    #[default]
    Auto,
    /// PVH or fail.
    Pvh,
    /// The Linux 64-bit entry with a zero page.
    Linux64,
    /// The Linux 32-bit entry with a zero page.
    Linux32,
}

impl std::str::FromStr for BootEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BootEntry::Auto),
            "pvh" => Ok(BootEntry::Pvh),
            "64" => Ok(BootEntry::Linux64),
            "32" => Ok(BootEntry::Linux32),
            _ => Err(format!("{s}: use auto, pvh, 64 or 32")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootOptions {
    pub entry: BootEntry,
    /// Decompress a bzImage payload on the host to use its PVH entry.
    pub host_decompress: bool,
    pub console: Console,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            entry: BootEntry::Auto,
            host_decompress: true,
            console: Console::VgaText,
        }
    }
}

/// An initrd or multiboot module.
#[derive(Clone, Debug)]
pub struct InitrdFile {
    pub name: String,
    pub data: Vec<u8>,
    /// The multiboot module string ("FILE ARGS..."); unused for Linux.
    pub cmdline: String,
}

/// Everything a direct boot needs, already read from disk.
#[derive(Clone, Debug)]
pub struct KernelBoot {
    pub kernel_name: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<InitrdFile>,
    pub cmdline: String,
    pub opts: BootOptions,
}

/// How the kernel was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// bzImage, `startup_64` with a zero page.
    Linux64,
    /// bzImage, `startup_32` with a zero page.
    Linux32,
    /// PVH entry with `hvm_start_info` (from a bzImage payload or an ELF).
    Pvh,
    /// bzImage decompressed on the host, its vmlinux entered at startup_64
    /// with boot_params.
    Decompressed64,
    /// The same for a 32-bit kernel (startup_32).
    Decompressed32,
    /// ELF `e_entry` in 64-bit mode with a zero page.
    ElfZeroPage64,
    /// ELF `e_entry` in 32-bit mode with a zero page.
    ElfZeroPage32,
    Multiboot,
}

/// What the loader did, for `--stats` and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booted {
    pub protocol: Protocol,
    pub entry: Entry,
    /// Physical range the kernel occupies (for a bzImage, up to `init_size`).
    pub kernel: (u64, u64),
    /// Physical ranges of the initrd or modules.
    pub initrd: Vec<(u64, u64)>,
    /// Host decompression: format, compressed and decompressed sizes.
    pub decompressed: Option<(Compression, usize, usize)>,
    /// Why the preferred PVH path was not taken, if it was not.
    pub fallback: Option<&'static str>,
}

impl Booted {
    pub fn describe(&self) -> String {
        let how = match self.protocol {
            Protocol::Linux64 => "Linux 64-bit entry (startup_64) with boot_params",
            Protocol::Linux32 => "Linux 32-bit entry (startup_32) with boot_params",
            Protocol::Pvh => "PVH entry with hvm_start_info",
            Protocol::Decompressed64 => "host-decompressed vmlinux, 64-bit entry with boot_params",
            Protocol::Decompressed32 => "host-decompressed vmlinux, 32-bit entry with boot_params",
            Protocol::ElfZeroPage64 => "ELF entry in 64-bit mode with boot_params",
            Protocol::ElfZeroPage32 => "ELF entry in 32-bit mode with boot_params",
            Protocol::Multiboot => "multiboot entry",
        };
        let mut s = format!(
            "{how} at {:#x}, kernel {:#x}..{:#x}",
            self.entry.rip, self.kernel.0, self.kernel.1
        );
        if let Some((c, a, b)) = self.decompressed {
            s += &format!(", {c} payload {a} -> {b} bytes decompressed on the host");
        }
        for (a, b) in &self.initrd {
            s += &format!(", initrd/module {a:#x}..{b:#x}");
        }
        if let Some(f) = self.fallback {
            s += &format!(" (not PVH: {f})");
        }
        s
    }
}

/// Reads the kernel and initrd files for `-kernel`/`-initrd`/`-append`. For
/// a multiboot kernel `-initrd` is QEMU's module list ("FILE ARGS,FILE2");
/// for Linux it names one file.
pub fn read_files(
    kernel: &str,
    initrd: Option<&str>,
    append: Option<&str>,
    opts: BootOptions,
) -> Result<KernelBoot, BootError> {
    let read = |name: &str| {
        std::fs::read(name).map_err(|e| BootError {
            file: name.to_string(),
            kind: ErrorKind::Io(e.to_string()),
        })
    };
    let kimg = read(kernel)?;
    let is_multiboot =
        !linux::has_setup_header(&kimg) && matches!(multiboot::find_header(&kimg), Ok(Some(_)));
    let mut files = Vec::new();
    if let Some(spec) = initrd {
        if is_multiboot {
            for (file, cmdline) in multiboot::split_modules(spec) {
                let data = read(&file)?;
                files.push(InitrdFile {
                    name: file,
                    data,
                    cmdline,
                });
            }
        } else {
            files.push(InitrdFile {
                name: spec.to_string(),
                data: read(spec)?,
                cmdline: spec.to_string(),
            });
        }
    }
    Ok(KernelBoot {
        kernel_name: kernel.to_string(),
        kernel: kimg,
        initrd: files,
        cmdline: append.unwrap_or("").to_string(),
        opts,
    })
}

/// Loads `k` into the CPU's memory and sets the CPU up at its entry point.
pub fn load(cpu: &mut Cpu, k: &KernelBoot) -> Result<Booted, BootError> {
    let kerr = |kind| BootError {
        file: k.kernel_name.clone(),
        kind,
    };
    let img = &k.kernel;
    if img.is_empty() {
        return Err(kerr(ErrorKind::Empty));
    }
    let booted = {
        let mut w = GuestWriter::new(&mut cpu.mem);
        let booted = if linux::has_setup_header(img) {
            load_bzimage(&mut w, k)?
        } else if let Some(h) = multiboot::find_header(img).map_err(kerr)? {
            load_multiboot(&mut w, k, &h)?
        } else if elf::is_elf(img) {
            load_elf(&mut w, k)?
        } else {
            return Err(kerr(ErrorKind::UnknownFormat));
        };
        layout::bios_data_area(&mut w).map_err(kerr)?;
        booted
    };
    entry::enter(cpu, &booted.entry).map_err(kerr)?;
    Ok(booted)
}

/// The initrd for Linux: one file, or several concatenated with 4-byte
/// alignment (cpio archives may be concatenated), with a name for errors.
fn linux_initrd(k: &KernelBoot) -> Option<(String, std::borrow::Cow<'_, [u8]>)> {
    match k.initrd.as_slice() {
        [] => None,
        [one] => Some((one.name.clone(), std::borrow::Cow::Borrowed(&one.data[..]))),
        many => {
            let mut v = Vec::new();
            for f in many {
                v.extend_from_slice(&f.data);
                while !v.len().is_multiple_of(4) {
                    v.push(0);
                }
            }
            let names: Vec<&str> = many.iter().map(|f| f.name.as_str()).collect();
            Some((names.join(","), std::borrow::Cow::Owned(v)))
        }
    }
}

fn load_bzimage(w: &mut GuestWriter, k: &KernelBoot) -> Result<Booted, BootError> {
    let kerr = |kind| BootError {
        file: k.kernel_name.clone(),
        kind,
    };
    let img = &k.kernel[..];
    let h = linux::SetupHeader::parse(img).map_err(kerr)?;
    let initrd = linux_initrd(k);
    let initrd_name = initrd.as_ref().map_or(String::new(), |(n, _)| n.clone());
    let split = |(is_initrd, kind): (bool, ErrorKind)| BootError {
        file: if is_initrd {
            initrd_name.clone()
        } else {
            k.kernel_name.clone()
        },
        kind,
    };
    let rd = initrd.as_ref().map(|(_, d)| &d[..]);

    let mut fallback = None;
    let try_pvh = matches!(k.opts.entry, BootEntry::Auto | BootEntry::Pvh);
    if try_pvh && !k.opts.host_decompress {
        fallback = Some("--no-host-decompress");
    } else if try_pvh {
        match h.payload(img).map(|p| (p, decompress::detect(p))) {
            None => fallback = Some("no compressed payload in the setup header"),
            Some((_, None)) => fallback = Some("unknown payload compression"),
            Some((p, Some(c))) => match decompress::decompress(c, p, w.ram_size()) {
                Err(DecompressError::Unsupported(_)) => {
                    fallback = Some("payload compression not supported on the host")
                }
                Err(e) => return Err(kerr(ErrorKind::Payload(e))),
                Ok(vmlinux) => {
                    let elf =
                        Elf::parse(&vmlinux).map_err(|e| kerr(ErrorKind::PayloadNotElf(e)))?;
                    if k.opts.entry == BootEntry::Auto {
                        // The decompressed kernel's own entry with boot_params,
                        // as its decompressor would enter it: unlike PVH this
                        // carries screen_info, so the console appears on the
                        // VGA (or the --boot-fb framebuffer) as under QEMU.
                        let mode = if elf.class64 {
                            EntryMode::Long64
                        } else {
                            EntryMode::Protected32
                        };
                        let (entry, kernel, initrd) = load_vmlinux_zero_page(
                            w,
                            &elf,
                            &h.raw,
                            rd,
                            &k.cmdline,
                            h.cmdline_size as u64,
                            h.initrd_top(),
                            &k.opts.console,
                            mode,
                        )
                        .map_err(split)?;
                        return Ok(Booted {
                            protocol: if mode == EntryMode::Long64 {
                                Protocol::Decompressed64
                            } else {
                                Protocol::Decompressed32
                            },
                            entry,
                            kernel,
                            initrd: initrd.into_iter().collect(),
                            decompressed: Some((c, p.len(), vmlinux.len())),
                            fallback: None,
                        });
                    }
                    match pvh::entry_point(&elf) {
                        Some(pe) => {
                            let (entry, kernel, initrd) = load_pvh(
                                w,
                                &elf,
                                pe,
                                rd,
                                &k.cmdline,
                                h.cmdline_size as u64,
                                h.initrd_top(),
                            )
                            .map_err(split)?;
                            return Ok(Booted {
                                protocol: Protocol::Pvh,
                                entry,
                                kernel,
                                initrd: initrd.into_iter().collect(),
                                decompressed: Some((c, p.len(), vmlinux.len())),
                                fallback: None,
                            });
                        }
                        None => fallback = Some("the kernel has no PVH entry note"),
                    }
                }
            },
        }
    }
    if k.opts.entry == BootEntry::Pvh {
        return Err(kerr(ErrorKind::NoPvh(fallback.unwrap_or("not available"))));
    }
    let which = match k.opts.entry {
        BootEntry::Linux64 => LinuxEntry::Bits64,
        BootEntry::Linux32 => LinuxEntry::Bits32,
        BootEntry::Auto | BootEntry::Pvh => LinuxEntry::Auto,
    };
    let l =
        linux::load_classic(w, img, &h, rd, &k.cmdline, which, &k.opts.console).map_err(split)?;
    Ok(Booted {
        protocol: if l.entry.mode == EntryMode::Long64 {
            Protocol::Linux64
        } else {
            Protocol::Linux32
        },
        entry: l.entry,
        kernel: l.kernel,
        initrd: l.initrd.into_iter().collect(),
        decompressed: None,
        fallback: if k.opts.entry == BootEntry::Auto {
            fallback
        } else {
            None
        },
    })
}

/// Loads every PT_LOAD segment at its physical address, zero-filling the
/// part beyond the file data. Returns the physical range covered.
pub(crate) fn load_segments(w: &mut GuestWriter, elf: &Elf) -> Result<(u64, u64), ErrorKind> {
    let mut lo = u64::MAX;
    let mut hi = 0;
    for ph in elf.loads() {
        // `ld -Ttext 0x100000` puts the ELF headers in a PT_LOAD of their own
        // at 0xFF000, in the BIOS area: QEMU's loader copies them there and
        // the ROM drops them. Nothing runs from that segment, so where it
        // does not fit in RAM clear of the loader's area it is left out.
        if elf.headers_only(ph)
            && elf.loads().count() > 1
            && w.check_clear_of_loader("ELF segment", ph.paddr, ph.memsz)
                .is_err()
        {
            continue;
        }
        w.check_clear_of_loader("ELF segment", ph.paddr, ph.memsz)?;
        w.write("ELF segment", ph.paddr, elf.segment_bytes(ph))?;
        w.zero("ELF segment", ph.paddr + ph.filesz, ph.memsz - ph.filesz)?;
        lo = lo.min(ph.paddr);
        hi = hi.max(ph.paddr + ph.memsz);
    }
    Ok((lo, hi))
}

/// The initrd as high as it may go above the kernel.
fn place_initrd(
    w: &mut GuestWriter,
    rd: Option<&[u8]>,
    kernel_end: u64,
    top: u64,
) -> Result<Option<(u64, u64)>, ErrorKind> {
    let Some(rd) = rd else { return Ok(None) };
    let size = rd.len() as u64;
    let at = w.place_high("initrd", size, kernel_end, top.min(1 << 32))?;
    w.write("initrd", at, rd)?;
    Ok(Some((at, at + size)))
}

type Placed = (Entry, (u64, u64), Option<(u64, u64)>);

/// Loads an ELF kernel for its PVH entry. Initrd errors are `Err((true, _))`.
fn load_pvh(
    w: &mut GuestWriter,
    elf: &Elf,
    pvh_entry: u64,
    rd: Option<&[u8]>,
    cmdline: &str,
    cmdline_max: u64,
    initrd_top: u64,
) -> Result<Placed, (bool, ErrorKind)> {
    let k = |e| (false, e);
    linux::check_cmdline(cmdline, cmdline_max).map_err(k)?;
    let kernel = load_segments(w, elf).map_err(k)?;
    let initrd = place_initrd(w, rd, kernel.1, initrd_top).map_err(|e| (true, e))?;
    w.write_cstr("command line", CMDLINE_ADDR, cmdline)
        .map_err(k)?;
    let si = pvh::start_info(CMDLINE_ADDR, initrd.map(|(a, b)| (a, b - a)), &w.map);
    w.write("hvm_start_info", layout::BOOT_INFO_ADDR, &si)
        .map_err(k)?;
    Ok((pvh::entry(pvh_entry), kernel, initrd))
}

fn load_elf(w: &mut GuestWriter, k: &KernelBoot) -> Result<Booted, BootError> {
    let kerr = |kind| BootError {
        file: k.kernel_name.clone(),
        kind,
    };
    let elf = Elf::parse(&k.kernel).map_err(|e| kerr(ErrorKind::Elf(e)))?;
    let initrd = linux_initrd(k);
    let initrd_name = initrd.as_ref().map_or(String::new(), |(n, _)| n.clone());
    let split = |(is_initrd, kind): (bool, ErrorKind)| BootError {
        file: if is_initrd {
            initrd_name.clone()
        } else {
            k.kernel_name.clone()
        },
        kind,
    };
    let rd = initrd.as_ref().map(|(_, d)| &d[..]);
    let pe = pvh::entry_point(&elf);
    let mut fallback = None;
    if matches!(k.opts.entry, BootEntry::Auto | BootEntry::Pvh) {
        match pe {
            Some(pe) => {
                let (entry, kernel, initrd) =
                    load_pvh(w, &elf, pe, rd, &k.cmdline, CMDLINE_MAX - 1, 1 << 32)
                        .map_err(split)?;
                return Ok(Booted {
                    protocol: Protocol::Pvh,
                    entry,
                    kernel,
                    initrd: initrd.into_iter().collect(),
                    decompressed: None,
                    fallback: None,
                });
            }
            None if k.opts.entry == BootEntry::Pvh => {
                return Err(kerr(ErrorKind::NoPvh(
                    "the ELF image has no PVH entry note",
                )))
            }
            None => fallback = Some("the ELF image has no PVH entry note"),
        }
    }
    // e_entry with a zero page: vmlinux's e_entry is its startup_64 (ELF64)
    // or startup_32 (ELF32) physical address.
    let mode = match k.opts.entry {
        BootEntry::Linux32 => EntryMode::Protected32,
        BootEntry::Linux64 => EntryMode::Long64,
        _ if elf.class64 => EntryMode::Long64,
        _ => EntryMode::Protected32,
    };
    let cmdline_max = CMDLINE_MAX - 1;
    let (entry, kernel, placed) = load_vmlinux_zero_page(
        w,
        &elf,
        &linux::synthetic_header(cmdline_max as u32),
        rd,
        &k.cmdline,
        cmdline_max,
        0x8000_0000,
        &k.opts.console,
        mode,
    )
    .map_err(split)?;
    Ok(Booted {
        protocol: if mode == EntryMode::Long64 {
            Protocol::ElfZeroPage64
        } else {
            Protocol::ElfZeroPage32
        },
        entry,
        kernel,
        initrd: placed.into_iter().collect(),
        decompressed: None,
        fallback,
    })
}

/// Loads a `vmlinux` for its own entry (`e_entry`: startup_64 or
/// startup_32, physical) with a zero page built from `setup_header`, as a
/// kernel's decompressor hands over to it (RSI = boot_params). Initrd
/// errors are `Err((true, _))`.
#[allow(clippy::too_many_arguments)]
fn load_vmlinux_zero_page(
    w: &mut GuestWriter,
    elf: &Elf,
    setup_header: &[u8],
    rd: Option<&[u8]>,
    cmdline: &str,
    cmdline_max: u64,
    initrd_top: u64,
    console: &Console,
    mode: EntryMode,
) -> Result<Placed, (bool, ErrorKind)> {
    let k = |e| (false, e);
    linux::check_cmdline(cmdline, cmdline_max).map_err(k)?;
    let kernel = load_segments(w, elf).map_err(k)?;
    let placed = place_initrd(w, rd, kernel.1, initrd_top).map_err(|e| (true, e))?;
    w.write_cstr("command line", CMDLINE_ADDR, cmdline)
        .map_err(k)?;
    let zp = linux::build_zero_page(
        setup_header,
        &linux::ZeroPageInputs {
            map: &w.map,
            cmdline,
            initrd: placed.map(|(a, b)| (a, b - a)),
            console,
        },
    );
    w.write("boot_params", ZERO_PAGE_ADDR, &zp).map_err(k)?;
    let entry = Entry {
        mode,
        rip: elf.physical_entry(),
        regs: vec![(entry::reg::RSI, ZERO_PAGE_ADDR)],
        tss: false,
        gdt: layout::GDT_ADDR,
    };
    Ok((entry, kernel, placed))
}

fn load_multiboot(
    w: &mut GuestWriter,
    k: &KernelBoot,
    h: &multiboot::Header,
) -> Result<Booted, BootError> {
    let modules: Vec<multiboot::Module> = k
        .initrd
        .iter()
        .map(|f| multiboot::Module {
            name: &f.name,
            data: &f.data,
            cmdline: &f.cmdline,
        })
        .collect();
    // QEMU passes "KERNEL-FILE APPEND" as the multiboot command line.
    let cmdline = format!("{} {}", k.kernel_name, k.cmdline);
    let l =
        multiboot::load(w, &k.kernel, h, &modules, &cmdline).map_err(|(m, kind)| BootError {
            file: m
                .and_then(|i| modules.get(i))
                .map_or(k.kernel_name.clone(), |m| m.name.to_string()),
            kind,
        })?;
    Ok(Booted {
        protocol: Protocol::Multiboot,
        entry: l.entry,
        kernel: l.kernel,
        initrd: l.modules,
        decompressed: None,
        fallback: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::layout::{le_u32, PutLe};
    use crate::cpu::state::{cr0, CS, DS, ES, SS};
    use crate::memory::GuestMemory;
    use std::io::Write;

    /// Where a 32-bit Debian kernel links (CONFIG_PHYSICAL_START, the
    /// LOAD_PHYSICAL_ADDR of its decompressor) and its PAGE_OFFSET.
    const PHYS: u64 = 0x100_0000;
    const PAGE_OFFSET: u64 = 0xC000_0000;

    fn gzip(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).expect("gzip");
        e.finish().expect("gzip")
    }

    /// A bzImage as a 32-bit kernel build makes it: protocol 2.15, no
    /// XLF_KERNEL_64, relocatable, preferring 16 MiB, whose protected-mode
    /// part is `payload` (with the build's 4-byte size trailer) and nothing else.
    fn bzimage32(payload: &[u8], uncompressed: usize) -> Vec<u8> {
        let mut pm = payload.to_vec();
        pm.extend_from_slice(&(uncompressed as u32).to_le_bytes());
        let mut img = linux::tests::image(0x20F, 0, &pm);
        img.put_u32(linux::hdr::PAYLOAD_OFFSET, 0);
        img.put_u32(linux::hdr::PAYLOAD_LENGTH, payload.len() as u32);
        img.put_u64(linux::hdr::PREF_ADDRESS, PHYS);
        img.put_u32(linux::hdr::KERNEL_ALIGNMENT, PHYS as u32);
        img.put_u32(linux::hdr::INIT_SIZE, 0x20_0000);
        img
    }

    /// A 32-bit vmlinux: text linked at PAGE_OFFSET + 16 MiB, loaded at
    /// 16 MiB, with a bss; `entry` is e_entry (vmlinux's is physical,
    /// `phys_startup_32`).
    fn vmlinux32(entry: u64) -> Vec<u8> {
        let code: Vec<u8> = (0..64u8).collect();
        elf::tests::build(false, entry, PAGE_OFFSET + PHYS, PHYS, &code, 0x1000, None)
    }

    fn boot(kernel: Vec<u8>, host_decompress: bool) -> (Cpu, Result<Booted, BootError>) {
        let mut cpu = Cpu::new(GuestMemory::new(64 << 20).expect("memory"));
        let k = KernelBoot {
            kernel_name: "bzImage".into(),
            kernel,
            initrd: vec![InitrdFile {
                name: "initrd".into(),
                data: vec![0xA5; 5000],
                cmdline: String::new(),
            }],
            cmdline: "console=ttyS0".into(),
            opts: BootOptions {
                host_decompress,
                ..BootOptions::default()
            },
        };
        let r = load(&mut cpu, &k);
        (cpu, r)
    }

    fn mem32(cpu: &Cpu, addr: u64) -> u32 {
        let b = |i: u64| cpu.mem.read_u8(addr + i).expect("in RAM");
        u32::from_le_bytes([b(0), b(1), b(2), b(3)])
    }

    /// boot.rst, "32-bit Boot Protocol": flat __BOOT_CS/__BOOT_DS, paging
    /// and interrupts off, ESI = boot_params, EBP = EDI = EBX = 0.
    fn assert_32bit_boot_protocol(cpu: &Cpu) {
        assert!(cpu.pmode && !cpu.long64);
        assert_eq!(cpu.code_bits, 32);
        assert_eq!(cpu.cr0 & (cr0::PE | cr0::PG), cr0::PE);
        assert_eq!(cpu.seg[CS].selector, entry::BOOT_CS);
        assert_eq!((cpu.seg[CS].base, cpu.seg[CS].limit), (0, 0xFFFF_FFFF));
        for s in [DS, ES, SS] {
            assert_eq!(cpu.seg[s].selector, entry::BOOT_DS);
            assert_eq!((cpu.seg[s].base, cpu.seg[s].limit), (0, 0xFFFF_FFFF));
        }
        assert_eq!(cpu.rflags() & (1 << 9), 0, "IF");
        assert_eq!(cpu.gpr[entry::reg::RSI], ZERO_PAGE_ADDR);
        for r in [3, 5, 7] {
            assert_eq!(cpu.gpr[r], 0, "EBX/EBP/EDI");
        }
    }

    #[test]
    fn a_32bit_bzimage_enters_its_host_decompressed_vmlinux_at_startup_32() {
        let elf = vmlinux32(PHYS);
        let (cpu, r) = boot(bzimage32(&gzip(&elf), elf.len()), true);
        let b = r.expect("boots");
        assert_eq!(b.protocol, Protocol::Decompressed32);
        assert_eq!(b.entry.mode, EntryMode::Protected32);
        assert_eq!(b.fallback, None);
        assert!(matches!(b.decompressed, Some((Compression::Gzip, _, n)) if n == elf.len()));
        // The segments at their physical addresses (the link address: no
        // relocation), the bss cleared, the entry at startup_32.
        assert_eq!(b.kernel, (PHYS, PHYS + 64 + 0x1000));
        assert_eq!(cpu.rip, PHYS);
        assert_eq!(mem32(&cpu, PHYS), 0x0302_0100);
        assert_eq!(mem32(&cpu, PHYS + 60), 0x3F3E_3D3C);
        assert_eq!(mem32(&cpu, PHYS + 64), 0);
        assert_32bit_boot_protocol(&cpu);
        // boot_params: the image's header, the loader's fields, the initrd
        // above the kernel.
        let zp = ZERO_PAGE_ADDR;
        assert_eq!(mem32(&cpu, zp + linux::hdr::HEADER as u64), linux::HDRS);
        assert_eq!(
            cpu.mem.read_u8(zp + linux::hdr::TYPE_OF_LOADER as u64),
            Some(0xFF)
        );
        assert_eq!(
            mem32(&cpu, zp + linux::hdr::CMD_LINE_PTR as u64),
            CMDLINE_ADDR as u32
        );
        let rd = mem32(&cpu, zp + linux::hdr::RAMDISK_IMAGE as u64) as u64;
        assert_eq!(b.initrd, vec![(rd, rd + 5000)]);
        assert!(rd >= b.kernel.1);
        assert_eq!(mem32(&cpu, zp + linux::hdr::RAMDISK_SIZE as u64), 5000);
        assert_eq!(mem32(&cpu, rd), 0xA5A5_A5A5);
        // The memory map: low RAM, ..., RAM from 1 MiB up.
        let n = cpu.mem.read_u8(zp + linux::zp::E820_ENTRIES as u64);
        assert!(matches!(n, Some(2..=8)), "{n:?} E820 entries");
    }

    /// An e_entry given as a virtual address goes through its segment.
    #[test]
    fn a_virtual_e_entry_is_entered_at_its_physical_address() {
        let elf = vmlinux32(PAGE_OFFSET + PHYS + 0x10);
        let (cpu, r) = boot(bzimage32(&gzip(&elf), elf.len()), true);
        assert_eq!(r.expect("boots").entry.rip, PHYS + 0x10);
        assert_eq!(cpu.rip, PHYS + 0x10);
    }

    /// `--no-host-decompress`, and a payload the host cannot read, keep the
    /// classic entry: the compressed kernel at its load address, startup_32.
    #[test]
    fn a_32bit_bzimage_falls_back_to_its_own_decompressor() {
        let elf = vmlinux32(PHYS);
        let img = bzimage32(&gzip(&elf), elf.len());
        let (cpu, r) = boot(img.clone(), false);
        let b = r.expect("boots");
        assert_eq!(b.protocol, Protocol::Linux32);
        assert_eq!(b.fallback, Some("--no-host-decompress"));
        assert_eq!((b.entry.rip, b.decompressed), (PHYS, None));
        assert_eq!(mem32(&cpu, PHYS), le_u32(&img, 5 * 512));
        assert_32bit_boot_protocol(&cpu);

        let (_, r) = boot(bzimage32(&[0x42; 64], 64), true);
        let b = r.expect("boots");
        assert_eq!(b.protocol, Protocol::Linux32);
        assert_eq!(b.fallback, Some("unknown payload compression"));
    }
}
