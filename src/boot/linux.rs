//! The Linux/x86 boot protocol (Documentation/arch/x86/boot.rst): the bzImage
//! setup header, loading the protected-mode kernel, and `struct boot_params`
//! (the "zero page", Documentation/arch/x86/zero-page.rst) for the 32-bit and
//! 64-bit entries, which skip the kernel's real-mode setup code entirely.

use super::e820::{self, E820Entry};
use super::entry::{reg, Entry, EntryMode};
use super::layout::{
    align_up, le_u16, le_u32, le_u64, GuestWriter, PutLe, CMDLINE_ADDR, CMDLINE_MAX, GDT_ADDR,
    ZERO_PAGE_ADDR,
};
use super::{Console, ErrorKind};

/// Setup header field offsets in the image and in `boot_params` (boot.rst,
/// "The Real-Mode Kernel Header").
pub mod hdr {
    pub const SETUP_SECTS: usize = 0x1F1;
    pub const SYSSIZE: usize = 0x1F4;
    pub const BOOT_FLAG: usize = 0x1FE;
    pub const JUMP: usize = 0x200;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const CODE32_START: usize = 0x214;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21C;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22C;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    pub const XLOADFLAGS: usize = 0x236;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const HARDWARE_SUBARCH: usize = 0x23C;
    pub const PAYLOAD_OFFSET: usize = 0x248;
    pub const PAYLOAD_LENGTH: usize = 0x24C;
    pub const PREF_ADDRESS: usize = 0x258;
    pub const INIT_SIZE: usize = 0x260;
    /// The setup header ends (at most) here in `boot_params`.
    pub const END: usize = 0x290;
}

/// `boot_params` offsets outside the setup header (zero-page.rst).
pub mod zp {
    pub const SCREEN_INFO: usize = 0x000;
    pub const EXT_RAMDISK_IMAGE: usize = 0x0C0;
    pub const EXT_RAMDISK_SIZE: usize = 0x0C4;
    pub const EXT_CMD_LINE_PTR: usize = 0x0C8;
    pub const ALT_MEM_K: usize = 0x1E0;
    pub const E820_ENTRIES: usize = 0x1E8;
    pub const E820_TABLE: usize = 0x2D0;
    /// E820_MAX_ENTRIES_ZEROPAGE.
    pub const E820_MAX: usize = 128;
    pub const SIZE: usize = 0x1000;
}

/// `screen_info` offsets (include/uapi/linux/screen_info.h).
mod si {
    pub const ORIG_X: usize = 0x00;
    pub const ORIG_Y: usize = 0x01;
    pub const EXT_MEM_K: usize = 0x02;
    pub const ORIG_VIDEO_MODE: usize = 0x06;
    pub const ORIG_VIDEO_COLS: usize = 0x07;
    pub const ORIG_VIDEO_EGA_BX: usize = 0x0A;
    pub const ORIG_VIDEO_LINES: usize = 0x0E;
    pub const ORIG_VIDEO_IS_VGA: usize = 0x0F;
    pub const ORIG_VIDEO_POINTS: usize = 0x10;
    pub const LFB_WIDTH: usize = 0x12;
    pub const LFB_HEIGHT: usize = 0x14;
    pub const LFB_DEPTH: usize = 0x16;
    pub const LFB_BASE: usize = 0x18;
    pub const LFB_SIZE: usize = 0x1C;
    pub const LFB_LINELENGTH: usize = 0x24;
    pub const RED_SIZE: usize = 0x26;
    pub const PAGES: usize = 0x32;
    /// `orig_video_isVGA` values: VGA text, and VIDEO_TYPE_VLFB (VESA linear framebuffer).
    pub const IS_VGA_TEXT: u8 = 1;
    pub const VIDEO_TYPE_VLFB: u8 = 0x23;
}

/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit 0: the kernel has the 64-bit entry at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// The "HdrS" signature.
pub const HDRS: u32 = 0x5372_6448;
/// `type_of_loader` 0xFF: a boot loader without an assigned ID.
pub const LOADER_UNDEFINED: u8 = 0xFF;
/// The 64-bit entry's offset from the load address.
pub const STARTUP_64_OFFSET: u64 = 0x200;
/// Where kernels without LOADED_HIGH semantics beyond it load.
const DEFAULT_LOAD: u64 = 0x10_0000;

/// True if the image has a Linux setup header signature.
pub fn has_setup_header(img: &[u8]) -> bool {
    le_u32(img, hdr::HEADER) == HDRS
}

/// The parts of the setup header vx86 uses, for protocol 2.06 and later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    pub setup_sects: u32,
    pub version: u16,
    pub loadflags: u8,
    pub syssize: u32,
    pub initrd_addr_max: u32,
    pub kernel_alignment: u32,
    pub relocatable: bool,
    pub xloadflags: u16,
    pub cmdline_size: u32,
    pub payload_offset: u32,
    pub payload_length: u32,
    pub pref_address: u64,
    pub init_size: u32,
    /// Image bytes 0x1F1 up to the end of the header, copied into `boot_params.hdr`.
    pub raw: Vec<u8>,
}

impl SetupHeader {
    /// Validates and reads the header of a bzImage (boot.rst, "Details of
    /// Header Fields"): boot flag, signature, protocol 2.06+, LOADED_HIGH,
    /// and that the file holds everything the header says it does.
    pub fn parse(img: &[u8]) -> Result<Self, ErrorKind> {
        let truncated = |what, need: u64| ErrorKind::Truncated {
            what,
            need,
            have: img.len() as u64,
        };
        if img.len() < hdr::VERSION + 2 {
            return Err(truncated("setup header", hdr::VERSION as u64 + 2));
        }
        if le_u16(img, hdr::BOOT_FLAG) != 0xAA55 {
            return Err(ErrorKind::BadBootFlag(le_u16(img, hdr::BOOT_FLAG)));
        }
        let version = le_u16(img, hdr::VERSION);
        if version < 0x206 {
            return Err(ErrorKind::OldProtocol(version));
        }
        // The header ends where the jump at 0x200 lands (boot.rst: "0x0202 +
        // byte value at offset 0x0201"); only that much is copied, but the
        // file must hold every field read below.
        let hdr_end =
            (hdr::HEADER + img.get(hdr::JUMP + 1).copied().unwrap_or(0) as usize).min(hdr::END);
        let need = hdr_end.max(hdr::INIT_SIZE + 4);
        if img.len() < need {
            return Err(truncated("setup header", need as u64));
        }
        let loadflags = img[hdr::LOADFLAGS];
        if loadflags & LOADED_HIGH == 0 {
            return Err(ErrorKind::NotLoadedHigh);
        }
        let setup_sects = match img[hdr::SETUP_SECTS] {
            0 => 4,
            n => n as u32,
        };
        let h = SetupHeader {
            setup_sects,
            version,
            loadflags,
            syssize: le_u32(img, hdr::SYSSIZE),
            initrd_addr_max: le_u32(img, hdr::INITRD_ADDR_MAX),
            kernel_alignment: le_u32(img, hdr::KERNEL_ALIGNMENT),
            relocatable: img[hdr::RELOCATABLE_KERNEL] != 0,
            // Before 2.12 these bytes were padding.
            xloadflags: if version >= 0x20C {
                le_u16(img, hdr::XLOADFLAGS)
            } else {
                0
            },
            cmdline_size: le_u32(img, hdr::CMDLINE_SIZE),
            payload_offset: if version >= 0x208 {
                le_u32(img, hdr::PAYLOAD_OFFSET)
            } else {
                0
            },
            payload_length: if version >= 0x208 {
                le_u32(img, hdr::PAYLOAD_LENGTH)
            } else {
                0
            },
            pref_address: if version >= 0x20A {
                le_u64(img, hdr::PREF_ADDRESS)
            } else {
                0
            },
            init_size: if version >= 0x20A {
                le_u32(img, hdr::INIT_SIZE)
            } else {
                0
            },
            raw: img[hdr::SETUP_SECTS..hdr_end].to_vec(),
        };
        let pm_off = h.pm_offset();
        if img.len() as u64 <= pm_off {
            return Err(truncated("setup code", pm_off + 1));
        }
        // syssize counts 16-byte paragraphs rounded up (memtest86+ 6.x's
        // header says `(_end - _start + 15) / 16`), so the last paragraph may
        // be partial: only a file that ends before it is truncated.
        let need = pm_off + (h.syssize as u64 * 16).saturating_sub(15);
        if (img.len() as u64) < need {
            return Err(truncated("protected-mode kernel (syssize)", need));
        }
        let payload_end = pm_off + h.payload_offset as u64 + h.payload_length as u64;
        if (img.len() as u64) < payload_end {
            return Err(truncated("compressed payload", payload_end));
        }
        Ok(h)
    }

    /// File offset of the protected-mode kernel: after the boot sector and
    /// the setup sectors.
    pub fn pm_offset(&self) -> u64 {
        (self.setup_sects as u64 + 1) * 512
    }

    /// The compressed `vmlinux` inside the protected-mode kernel (2.08+).
    pub fn payload<'a>(&self, img: &'a [u8]) -> Option<&'a [u8]> {
        if self.payload_length == 0 {
            return None;
        }
        let start = self.pm_offset() as usize + self.payload_offset as usize;
        img.get(start..start + self.payload_length as usize)
    }

    /// The highest address the initrd may occupy, plus one.
    pub fn initrd_top(&self) -> u64 {
        self.initrd_addr_max as u64 + 1
    }

    /// Where to load the protected-mode kernel: its preferred address when it
    /// is relocatable (aligned to `kernel_alignment`), else 1 MiB.
    pub fn load_address(&self) -> u64 {
        if self.relocatable && self.pref_address >= DEFAULT_LOAD {
            align_up(self.pref_address, (self.kernel_alignment as u64).max(1))
        } else {
            DEFAULT_LOAD
        }
    }
}

/// A command line no longer than `max` bytes (without the NUL) and the buffer.
pub fn check_cmdline(cmdline: &str, max: u64) -> Result<(), ErrorKind> {
    let max = max.min(CMDLINE_MAX - 1);
    if cmdline.len() as u64 > max || cmdline.as_bytes().contains(&0) {
        return Err(ErrorKind::CmdlineTooLong {
            len: cmdline.len() as u64,
            max,
        });
    }
    Ok(())
}

/// What goes into the zero page besides the setup header.
pub struct ZeroPageInputs<'a> {
    pub map: &'a [E820Entry],
    pub cmdline: &'a str,
    pub initrd: Option<(u64, u64)>,
    pub console: &'a Console,
}

/// Builds `boot_params`: the image's setup header (boot.rst: "copy the setup
/// header ... from the kernel image"), then the fields a boot loader fills.
pub fn build_zero_page(setup_header: &[u8], inp: &ZeroPageInputs) -> Vec<u8> {
    let mut zp = vec![0u8; zp::SIZE];
    let n = setup_header.len().min(hdr::END - hdr::SETUP_SECTS);
    zp[hdr::SETUP_SECTS..hdr::SETUP_SECTS + n].copy_from_slice(&setup_header[..n]);
    zp.put_u8(hdr::TYPE_OF_LOADER, LOADER_UNDEFINED);
    zp.put_u32(hdr::CMD_LINE_PTR, CMDLINE_ADDR as u32);
    zp.put_u32(zp::EXT_CMD_LINE_PTR, (CMDLINE_ADDR >> 32) as u32);
    zp.put_u32(hdr::HARDWARE_SUBARCH, 0);
    let (rd_addr, rd_size) = inp.initrd.unwrap_or((0, 0));
    zp.put_u32(hdr::RAMDISK_IMAGE, rd_addr as u32);
    zp.put_u32(hdr::RAMDISK_SIZE, rd_size as u32);
    zp.put_u32(zp::EXT_RAMDISK_IMAGE, (rd_addr >> 32) as u32);
    zp.put_u32(zp::EXT_RAMDISK_SIZE, (rd_size >> 32) as u32);
    let entries = inp.map.len().min(zp::E820_MAX);
    zp.put_u8(zp::E820_ENTRIES, entries as u8);
    for (i, e) in inp.map.iter().take(entries).enumerate() {
        let at = zp::E820_TABLE + 20 * i;
        zp[at..at + 20].copy_from_slice(&e.to_bytes());
    }
    // Extended memory in KiB, as INT 15h AH=88h (16 bits) and E801h would say.
    let ext_k = (e820::high_ram_end(inp.map) - e820::HIGH_MEMORY) >> 10;
    zp.put_u32(zp::ALT_MEM_K, ext_k as u32);
    screen_info(
        &mut zp[zp::SCREEN_INFO..zp::SCREEN_INFO + 0x40],
        ext_k,
        inp.console,
    );
    zp
}

/// `screen_info` as the kernel's real-mode setup would have stored it after
/// asking the video BIOS: 80x25 colour text (mode 03h, 8x16 font, VGA), or a
/// Bochs VBE linear framebuffer at 32 bpp (VIDEO_TYPE_VLFB, `lfb_size` in
/// 64 KiB units as the VESA path reports it).
fn screen_info(s: &mut [u8], ext_k: u64, console: &Console) {
    s.put_u16(si::EXT_MEM_K, ext_k.min(0xFFFF) as u16);
    match *console {
        Console::VgaText => {
            s.put_u8(si::ORIG_X, 0);
            s.put_u8(si::ORIG_Y, 0);
            s.put_u8(si::ORIG_VIDEO_MODE, 3);
            s.put_u8(si::ORIG_VIDEO_COLS, 80);
            // INT 10h AH=12h BL=10h: BH=0 colour, BL=3 256 KiB.
            s.put_u16(si::ORIG_VIDEO_EGA_BX, 0x0003);
            s.put_u8(si::ORIG_VIDEO_LINES, 25);
            s.put_u8(si::ORIG_VIDEO_IS_VGA, si::IS_VGA_TEXT);
            s.put_u16(si::ORIG_VIDEO_POINTS, 16);
        }
        Console::Framebuffer { width, height } => {
            s.put_u8(si::ORIG_VIDEO_IS_VGA, si::VIDEO_TYPE_VLFB);
            s.put_u16(si::LFB_WIDTH, width);
            s.put_u16(si::LFB_HEIGHT, height);
            s.put_u16(si::LFB_DEPTH, 32);
            s.put_u32(si::LFB_BASE, crate::memory::LFB_BASE as u32);
            s.put_u32(si::LFB_SIZE, (crate::memory::LFB_SIZE >> 16) as u32);
            s.put_u16(si::LFB_LINELENGTH, width.saturating_mul(4));
            // x8r8g8b8: red 8 at 16, green 8 at 8, blue 8 at 0, reserved 8 at 24.
            let rgb = [8u8, 16, 8, 8, 8, 0, 8, 24];
            s[si::RED_SIZE..si::RED_SIZE + 8].copy_from_slice(&rgb);
            s.put_u16(si::PAGES, 1);
            s.put_u16(si::ORIG_VIDEO_POINTS, 16);
        }
    }
}

/// The result of a classic load: where everything went and how to enter.
pub struct ClassicLoad {
    pub entry: Entry,
    pub kernel: (u64, u64),
    /// Physical range of the initrd.
    pub initrd: Option<(u64, u64)>,
}

/// Which Linux entry to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinuxEntry {
    Auto,
    Bits32,
    Bits64,
}

/// Loads a bzImage the classic way: the protected-mode kernel (compressed,
/// with its own decompressor) at its load address, the initrd as high as it
/// may go, the command line and the zero page, entered at `startup_32` or
/// `startup_64`. Initrd errors come back as `Err((true, kind))`.
pub fn load_classic(
    w: &mut GuestWriter,
    img: &[u8],
    h: &SetupHeader,
    initrd: Option<&[u8]>,
    cmdline: &str,
    which: LinuxEntry,
    console: &Console,
) -> Result<ClassicLoad, (bool, ErrorKind)> {
    let k = |e| (false, e);
    let mode = match which {
        LinuxEntry::Bits32 => EntryMode::Protected32,
        LinuxEntry::Bits64 if h.xloadflags & XLF_KERNEL_64 == 0 => {
            return Err(k(ErrorKind::No64BitEntry))
        }
        LinuxEntry::Bits64 => EntryMode::Long64,
        LinuxEntry::Auto if h.xloadflags & XLF_KERNEL_64 != 0 => EntryMode::Long64,
        LinuxEntry::Auto => EntryMode::Protected32,
    };
    check_cmdline(cmdline, h.cmdline_size as u64).map_err(k)?;
    let pm = &img[h.pm_offset() as usize..];
    let load = h.load_address();
    // The kernel decompresses in place within init_size bytes from the load address.
    let span = (h.init_size as u64).max(pm.len() as u64);
    w.check_clear_of_loader("kernel (init_size)", load, span)
        .map_err(k)?;
    w.write("kernel", load, pm).map_err(k)?;
    let kernel_end = load + span;
    let initrd = match initrd {
        Some(rd) => {
            let size = rd.len() as u64;
            let at = w
                .place_high("initrd", size, kernel_end, h.initrd_top())
                .map_err(|e| (true, e))?;
            w.write("initrd", at, rd).map_err(|e| (true, e))?;
            Some((at, at + size))
        }
        None => None,
    };
    w.write_cstr("command line", CMDLINE_ADDR, cmdline)
        .map_err(k)?;
    let zp = build_zero_page(
        &h.raw,
        &ZeroPageInputs {
            map: &w.map,
            cmdline,
            initrd: initrd.map(|(a, b)| (a, b - a)),
            console,
        },
    );
    let mut zp = zp;
    zp.put_u32(hdr::CODE32_START, load as u32);
    w.write("boot_params", ZERO_PAGE_ADDR, &zp).map_err(k)?;
    let entry = match mode {
        EntryMode::Long64 => Entry {
            mode,
            rip: load + STARTUP_64_OFFSET,
            regs: vec![(reg::RSI, ZERO_PAGE_ADDR)],
            tss: false,
            gdt: GDT_ADDR,
        },
        // boot.rst: %esi = boot_params; %ebp, %edi and %ebx zero (the rest are zeroed anyway).
        EntryMode::Protected32 => Entry {
            mode,
            rip: load,
            regs: vec![(reg::RSI, ZERO_PAGE_ADDR)],
            tss: false,
            gdt: GDT_ADDR,
        },
    };
    Ok(ClassicLoad {
        entry,
        kernel: (load, kernel_end),
        initrd,
    })
}

/// A setup header for a kernel that has none (an ELF `vmlinux` entered with
/// a zero page): the fields the kernel reads after boot, protocol 2.15.
pub fn synthetic_header(cmdline_size: u32) -> Vec<u8> {
    let mut h = vec![0u8; hdr::END - hdr::SETUP_SECTS];
    let at = |o: usize| o - hdr::SETUP_SECTS;
    h.put_u16(at(hdr::BOOT_FLAG), 0xAA55);
    h.put_u32(at(hdr::HEADER), HDRS);
    h.put_u16(at(hdr::VERSION), 0x020F);
    h.put_u8(at(hdr::LOADFLAGS), LOADED_HIGH);
    h.put_u32(at(hdr::INITRD_ADDR_MAX), 0x7FFF_FFFF);
    h.put_u32(at(hdr::CMDLINE_SIZE), cmdline_size);
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A syntactically valid bzImage header with `pm` as protected-mode code.
    pub(crate) fn image(version: u16, xlf: u16, pm: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512];
        img.put_u8(hdr::SETUP_SECTS, 4);
        img.put_u32(hdr::SYSSIZE, (pm.len() as u32).div_ceil(16));
        img.put_u16(hdr::BOOT_FLAG, 0xAA55);
        img.put_u16(hdr::JUMP, 0x66EB);
        img.put_u32(hdr::HEADER, HDRS);
        img.put_u16(hdr::VERSION, version);
        img.put_u8(hdr::LOADFLAGS, LOADED_HIGH);
        img.put_u32(hdr::INITRD_ADDR_MAX, 0x7FFF_FFFF);
        img.put_u32(hdr::KERNEL_ALIGNMENT, 0x20_0000);
        img.put_u8(hdr::RELOCATABLE_KERNEL, 1);
        img.put_u16(hdr::XLOADFLAGS, xlf);
        img.put_u32(hdr::CMDLINE_SIZE, 255);
        img.put_u64(hdr::PREF_ADDRESS, 0x20_0000);
        img.put_u32(hdr::INIT_SIZE, 0x10_0000);
        img.extend_from_slice(pm);
        while !img.len().is_multiple_of(16) {
            img.push(0);
        }
        img
    }

    #[test]
    fn header_fields_and_load_address() {
        let img = image(0x20F, XLF_KERNEL_64, &[0xF4; 0x400]);
        let h = SetupHeader::parse(&img).expect("valid");
        assert_eq!(h.pm_offset(), 0xA00);
        assert_eq!(h.load_address(), 0x20_0000);
        assert_eq!(h.cmdline_size, 255);
        assert_eq!(h.raw.len(), 0x268 - 0x1F1);
        let mut fixed = img.clone();
        fixed.put_u8(hdr::RELOCATABLE_KERNEL, 0);
        assert_eq!(
            SetupHeader::parse(&fixed).map(|h| h.load_address()),
            Ok(0x10_0000)
        );
    }

    #[test]
    fn bad_headers_are_named() {
        let img = image(0x20F, 1, &[0xF4; 0x400]);
        let mut b = img.clone();
        b.put_u16(hdr::BOOT_FLAG, 0);
        assert_eq!(SetupHeader::parse(&b), Err(ErrorKind::BadBootFlag(0)));
        let mut b = img.clone();
        b.put_u16(hdr::VERSION, 0x204);
        assert_eq!(SetupHeader::parse(&b), Err(ErrorKind::OldProtocol(0x204)));
        let mut b = img.clone();
        b.put_u8(hdr::LOADFLAGS, 0);
        assert_eq!(SetupHeader::parse(&b), Err(ErrorKind::NotLoadedHigh));
        assert!(matches!(
            SetupHeader::parse(&img[..img.len() - 0x100]),
            Err(ErrorKind::Truncated { .. })
        ));
        assert!(matches!(
            SetupHeader::parse(&img[..0x300]),
            Err(ErrorKind::Truncated { .. })
        ));
    }

    /// memtest86+ 6.10's x64 image is 8 bytes shorter than syssize * 16: a
    /// partial last paragraph is a complete kernel, one short by a whole
    /// paragraph is not.
    #[test]
    fn syssize_allows_a_partial_last_paragraph() {
        let mut img = image(0x20C, XLF_KERNEL_64, &[0xF4; 0x400]);
        img.put_u32(hdr::SYSSIZE, 0x400 / 16 + 1);
        assert!(SetupHeader::parse(&img).is_err());
        img.extend_from_slice(&[0; 8]);
        assert!(SetupHeader::parse(&img).is_ok());
        assert!(matches!(
            SetupHeader::parse(&img[..img.len() - 16]),
            Err(ErrorKind::Truncated { .. })
        ));
    }

    #[test]
    fn zero_page_carries_map_cmdline_initrd_and_console() {
        let map = e820::machine_map(64 << 20, 64 << 10, 64 << 10);
        let img = image(0x20F, 1, &[0xF4; 0x400]);
        let h = SetupHeader::parse(&img).expect("valid");
        let zp = build_zero_page(
            &h.raw,
            &ZeroPageInputs {
                map: &map,
                cmdline: "console=ttyS0",
                initrd: Some((0x3F0_0000, 0x1234)),
                console: &Console::VgaText,
            },
        );
        assert_eq!(zp[zp::E820_ENTRIES], 5);
        assert_eq!(le_u64(&zp, zp::E820_TABLE + 3 * 20), 0x10_0000);
        assert_eq!(
            le_u64(&zp, zp::E820_TABLE + 3 * 20 + 8),
            (64 << 20) - 0x10_0000
        );
        assert_eq!(le_u32(&zp, hdr::CMD_LINE_PTR), CMDLINE_ADDR as u32);
        assert_eq!(le_u32(&zp, hdr::RAMDISK_IMAGE), 0x3F0_0000);
        assert_eq!(le_u32(&zp, hdr::RAMDISK_SIZE), 0x1234);
        assert_eq!(zp[hdr::TYPE_OF_LOADER], 0xFF);
        assert_eq!(le_u32(&zp, hdr::HEADER), HDRS);
        assert_eq!((zp[6], zp[7], zp[0xE], zp[0xF]), (3, 80, 25, 1));
        assert_eq!(le_u32(&zp, zp::ALT_MEM_K), 63 << 10);
    }

    #[test]
    fn long_command_lines_are_refused() {
        assert!(check_cmdline(&"x".repeat(255), 255).is_ok());
        assert_eq!(
            check_cmdline(&"x".repeat(256), 255),
            Err(ErrorKind::CmdlineTooLong { len: 256, max: 255 })
        );
    }
}
