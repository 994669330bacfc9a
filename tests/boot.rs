//! Direct kernel boot (`-kernel`, `-initrd`, `-append`) end to end: the
//! built `vx86` binary runs the test kernels in `test-roms/` (bzimage.asm,
//! pvh.asm, multiboot.asm), which report what they were handed on port 0xE9;
//! the reports must match what the boot protocols say the loader passes.
//! Bad inputs must fail with one error line naming the file, never a panic.

mod common;

use std::io::Write;

const RAM: &str = "64M";

fn rom(name: &str) -> String {
    format!("{}/test-roms/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read_rom(name: &str) -> Vec<u8> {
    std::fs::read(rom(name)).expect("test kernel present")
}

/// A file in the temp directory, unique to this test process and tag,
/// removed when the test drops it.
fn tmp(tag: &str, data: &[u8]) -> common::TempFile {
    common::TempFile::new(&format!("boot-{tag}"), data)
}

struct Run {
    status: i32,
    out: String,
    err: String,
}

fn vx86(args: &[&str]) -> Run {
    let o = common::vx86_debugcon(20_000_000)
        .args(args)
        .output()
        .expect("run vx86");
    Run {
        status: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The report lines, trailing spaces trimmed.
fn lines(s: &str) -> Vec<String> {
    s.lines().map(|l| l.trim_end().to_string()).collect()
}

/// A deterministic initrd.
fn initrd_data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8 ^ (i >> 8) as u8).collect()
}

/// The test kernels' checksum: h = h * 31 + byte.
fn sum(d: &[u8]) -> u32 {
    d.iter()
        .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(b as u32))
}

/// The memory map of a 64 MiB machine with the 64 KiB built-in BIOS, as
/// the kernels print it: conventional RAM to the EBDA, the EBDA, the BIOS
/// shadow, extended RAM, the BIOS ROM below 4 GiB.
const MAP_64M: [&str; 5] = [
    " 0000000000000000 000000000009FC00 01",
    " 000000000009FC00 0000000000000400 02",
    " 00000000000F0000 0000000000010000 02",
    " 0000000000100000 0000000003F00000 01",
    " 00000000FFFF0000 0000000000010000 02",
];

/// The zero-page part of a report, after its CPU line.
fn zp_expected(cmdline: &str, initrd: &[u8], initrd_at: u32) -> Vec<String> {
    let mut v = vec![
        "hdr=53726448 version=0000020F loader=000000FF loadflags=00000001 code32_start=00200000"
            .to_string(),
        "e820 entries=00000005".to_string(),
    ];
    v.extend(MAP_64M.iter().map(|s| s.to_string()));
    v.push(format!("cmdline=[{cmdline}]"));
    v.push(format!(
        "initrd={initrd_at:08X} size={:08X} sum={:08X}",
        initrd.len(),
        sum(initrd)
    ));
    // 63 MiB of extended memory = 0xFC00 KiB.
    v.push("video mode=00000003 cols=00000050 lines=00000019 isvga=00000001 ext_mem_k=0000FC00 alt_mem_k=0000FC00".to_string());
    v.push("END".to_string());
    v
}

/// Highest page-aligned start for `n` bytes below the end of 64 MiB of RAM.
fn top_of_64m(n: usize) -> u32 {
    ((64u32 << 20) - n as u32) & !0xFFF
}

fn assert_zp64(r: &Run, cmdline: &str, initrd: &[u8], initrd_at: u32) {
    assert_eq!(r.status, 1, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    let l = lines(&r.out);
    assert!(l.len() >= 3, "report: {}", r.out);
    assert_eq!(l[0], "ZP64 esi=00007000", "{}", r.out);
    // 64-bit mode: CR0 PE|ET|PG, CR4.PAE, EFER LME|LMA; __BOOT_CS/__BOOT_DS; IF clear.
    for want in [
        "cs=00000010",
        "ds=00000018",
        "ss=00000018",
        "cr0=80000011",
        "cr4=00000020",
        "efer=00000500",
        "eflags.tf/if/df=00000000",
    ] {
        assert!(l[1].contains(want), "{want} missing in {:?}", l[1]);
    }
    assert_eq!(
        l[2..].to_vec(),
        zp_expected(cmdline, initrd, initrd_at),
        "{}",
        r.out
    );
}

#[test]
fn bzimage_64bit_entry_gets_boot_params() {
    let rd = initrd_data(5000);
    let rdf = tmp("bz64-initrd", &rd);
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &rom("bzimage.bin"),
        "-initrd",
        &rdf,
        "-append",
        "console=ttyS0 root=/dev/ram0 -- init args",
    ]);
    assert_zp64(
        &r,
        "console=ttyS0 root=/dev/ram0 -- init args",
        &rd,
        top_of_64m(5000),
    );
}

#[test]
fn bzimage_32bit_entry_gets_boot_params() {
    let rd = initrd_data(5000);
    let rdf = tmp("bz32-initrd", &rd);
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &rom("bzimage.bin"),
        "-initrd",
        &rdf,
        "-append",
        "quiet",
        "--boot-entry",
        "32",
    ]);
    assert_eq!(r.status, 1, "{}{}", r.out, r.err);
    let l = lines(&r.out);
    // boot.rst: ESI = boot_params; EBP, EDI, EBX zero; paging off, IF clear.
    assert_eq!(
        l[0], "ZP32 esi=00007000 ebx=00000000 edi=00000000 ebp=00000000",
        "{}",
        r.out
    );
    assert_eq!(
        l[1],
        "cs=00000010 ds=00000018 ss=00000018 cr0=00000011 eflags.tf/if/df=00000000"
    );
    assert_eq!(l[2..].to_vec(), zp_expected("quiet", &rd, top_of_64m(5000)));
}

#[test]
fn bzimage_initrd_stays_below_initrd_addr_max() {
    let mut bz = read_rom("bzimage.bin");
    bz[0x22C..0x230].copy_from_slice(&0x01FF_FFFFu32.to_le_bytes());
    let k = tmp("bz-initrd-max", &bz);
    let rd = initrd_data(5000);
    let rdf = tmp("bz-initrd-max-rd", &rd);
    let r = vx86(&["-m", RAM, "-kernel", &k, "-initrd", &rdf]);
    assert!(r.status == 1, "{}{}", r.out, r.err);
    let want = format!("initrd=01FFE000 size=00001388 sum={:08X}", sum(&rd));
    assert!(lines(&r.out).contains(&want), "{want} not in:\n{}", r.out);
}

#[test]
fn bzimage_without_initrd_or_cmdline() {
    let r = vx86(&["-m", RAM, "-kernel", &rom("bzimage.bin")]);
    assert_zp64(&r, "", &[], 0);
}

/// bzimage.bin with `payload` appended as its compressed vmlinux
/// (payload_offset/payload_length, syssize updated), with the 4-byte size
/// trailer the kernel build appends.
fn bzimage_with_payload(payload: &[u8], uncompressed: usize) -> Vec<u8> {
    let mut img = read_rom("bzimage.bin");
    let pm = (img[0x1F1] as usize + 1) * 512;
    while !img.len().is_multiple_of(16) {
        img.push(0);
    }
    let off = img.len() - pm;
    img.extend_from_slice(payload);
    img.extend_from_slice(&(uncompressed as u32).to_le_bytes());
    let len = img.len() - pm - off;
    while !img.len().is_multiple_of(16) {
        img.push(0);
    }
    let syssize = ((img.len() - pm) / 16) as u32;
    img[0x1F4..0x1F8].copy_from_slice(&syssize.to_le_bytes());
    img[0x248..0x24C].copy_from_slice(&(off as u32).to_le_bytes());
    img[0x24C..0x250].copy_from_slice(&(len as u32).to_le_bytes());
    img
}

fn gzip(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(d).expect("gzip");
    e.finish().expect("gzip")
}

fn xz_x86(d: &[u8]) -> Vec<u8> {
    // What Linux's scripts/xz_wrap.sh does for x86: the BCJ x86 filter, LZMA2, CRC32.
    let mut opts = lzma_rust2::XzOptions::with_preset(6);
    opts.prepend_pre_filter(lzma_rust2::filter::FilterType::BcjX86, 0);
    let mut w = lzma_rust2::XzWriter::new(Vec::new(), opts).expect("xz");
    w.write_all(d).expect("xz");
    w.finish().expect("xz")
}

fn assert_pvh(r: &Run, cmdline: &str, initrd: &[u8]) {
    assert_eq!(r.status, 1, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    let l = lines(&r.out);
    let mut want = vec![
        // PVH: EBX = start_info, magic, version 1, no ACPI RSDP, TR = a TSS.
        "PVH ebx=00002000 magic=336EC578 version=00000001 flags=00000000 rsdp=00000000 tr=00000020"
            .to_string(),
        // 32-bit protected mode, paging off, flat segments, IF clear.
        "cs=00000010 ds=00000018 ss=00000018 cr0=00000011 eflags.tf/if/df=00000000".to_string(),
    ];
    if initrd.is_empty() {
        want.push("modules=00000000".to_string());
    } else {
        want.push("modules=00000001".to_string());
        want.push(format!(
            " {:016X} {:016X} sum={:08X} cmdline=00000000",
            top_of_64m(initrd.len()),
            initrd.len(),
            sum(initrd)
        ));
    }
    want.push(format!("cmdline=[{cmdline}]"));
    want.push("memmap entries=00000005".to_string());
    want.extend(MAP_64M.iter().map(|s| s.to_string()));
    want.push("END".to_string());
    assert_eq!(l, want, "{}", r.out);
}

/// The report of pvh.bin's startup_64 (its e_entry) entered with a zero
/// page built from bzimage.bin's setup header, as vx86 enters a
/// host-decompressed vmlinux by default.
fn assert_decompressed_zp64(r: &Run, cmdline: &str, initrd: &[u8], initrd_at: u32) {
    assert_eq!(r.status, 1, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    let l = lines(&r.out);
    assert!(l.len() >= 3, "report: {}", r.out);
    assert_eq!(l[0], "ELF64 esi=00007000", "{}", r.out);
    for want in ["cs=00000010", "cr0=80000011", "efer=00000500"] {
        assert!(l[1].contains(want), "{want} missing in {:?}", l[1]);
    }
    let mut want = zp_expected(cmdline, initrd, initrd_at);
    // The bzImage's own header (not the loader's code32_start: no setup code runs).
    want[0] =
        "hdr=53726448 version=0000020F loader=000000FF loadflags=00000001 code32_start=00100000"
            .to_string();
    assert_eq!(l[2..].to_vec(), want, "{}", r.out);
}

#[test]
fn bzimage_host_decompression_enters_vmlinux_with_boot_params_gzip_and_xz() {
    let elf = read_rom("pvh.bin");
    let rd = initrd_data(7000);
    let rdf = tmp("zp-bz-initrd", &rd);
    for (fmt, packed) in [("gzip", gzip(&elf)), ("XZ", xz_x86(&elf))] {
        let k = tmp(
            &format!("bz-zp-{fmt}"),
            &bzimage_with_payload(&packed, elf.len()),
        );
        let r = vx86(&[
            "-m",
            RAM,
            "-kernel",
            &k,
            "-initrd",
            &rdf,
            "-append",
            "root=/dev/vda",
            "--stats",
        ]);
        assert_decompressed_zp64(&r, "root=/dev/vda", &rd, top_of_64m(7000));
        assert!(
            r.err
                .contains("host-decompressed vmlinux, 64-bit entry with boot_params")
                && r.err.contains(&format!("{fmt} payload")),
            "{fmt}: {}",
            r.err
        );
    }
}

#[test]
fn bzimage_host_decompression_enters_pvh_gzip_and_xz() {
    let elf = read_rom("pvh.bin");
    let rd = initrd_data(7000);
    let rdf = tmp("pvh-bz-initrd", &rd);
    for (fmt, packed) in [("gzip", gzip(&elf)), ("XZ", xz_x86(&elf))] {
        let k = tmp(
            &format!("bz-{fmt}"),
            &bzimage_with_payload(&packed, elf.len()),
        );
        let r = vx86(&[
            "-m",
            RAM,
            "-kernel",
            &k,
            "-initrd",
            &rdf,
            "-append",
            "root=/dev/vda",
            "--boot-entry",
            "pvh",
            "--stats",
        ]);
        assert_pvh(&r, "root=/dev/vda", &rd);
        assert!(
            r.err.contains("PVH entry with hvm_start_info")
                && r.err.contains(&format!("{fmt} payload")),
            "{fmt}: {}",
            r.err
        );
    }
}

#[test]
fn no_host_decompress_takes_the_classic_path() {
    let elf = read_rom("pvh.bin");
    let k = tmp("bz-classic", &bzimage_with_payload(&gzip(&elf), elf.len()));
    let rd = initrd_data(100);
    let rdf = tmp("bz-classic-initrd", &rd);
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &k,
        "-initrd",
        &rdf,
        "-append",
        "a=b",
        "--no-host-decompress",
    ]);
    assert_zp64(&r, "a=b", &rd, top_of_64m(100));
    // --boot-entry 64 also means the classic entry, payload or not.
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &k,
        "-initrd",
        &rdf,
        "-append",
        "a=b",
        "--boot-entry",
        "64",
    ]);
    assert_zp64(&r, "a=b", &rd, top_of_64m(100));
}

#[test]
fn payload_without_pvh_note_still_enters_the_decompressed_vmlinux() {
    let mut elf = read_rom("pvh.bin");
    let at = elf.windows(4).position(|w| w == b"Xen\0").expect("note") - 4;
    elf[at..at + 4].copy_from_slice(&19u32.to_le_bytes());
    let k = tmp("bz-nonote", &bzimage_with_payload(&gzip(&elf), elf.len()));
    let r = vx86(&["-m", RAM, "-kernel", &k, "--stats"]);
    assert_decompressed_zp64(&r, "", &[], 0);
    // --boot-entry pvh needs the note: refused by name.
    let r = vx86(&["-m", RAM, "-kernel", &k, "--boot-entry", "pvh"]);
    assert!(r.err.contains("no PVH entry note"), "{}", r.err);
}

#[test]
fn elf_kernel_enters_pvh() {
    let rd = initrd_data(4096);
    let rdf = tmp("elf-pvh-initrd", &rd);
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &rom("pvh.bin"),
        "-initrd",
        &rdf,
        "-append",
        "x",
    ]);
    assert_pvh(&r, "x", &rd);
    let r = vx86(&["-m", RAM, "-kernel", &rom("pvh.bin")]);
    assert_pvh(&r, "", &[]);
}

#[test]
fn elf_kernel_without_note_enters_e_entry_with_a_zero_page() {
    let mut elf = read_rom("pvh.bin");
    let at = elf.windows(4).position(|w| w == b"Xen\0").expect("note") - 4;
    elf[at..at + 4].copy_from_slice(&19u32.to_le_bytes());
    let k = tmp("elf-nonote", &elf);
    let rd = initrd_data(300);
    let rdf = tmp("elf-nonote-initrd", &rd);
    let r = vx86(&["-m", RAM, "-kernel", &k, "-initrd", &rdf, "-append", "ro"]);
    assert_eq!(r.status, 1, "{}{}", r.out, r.err);
    let l = lines(&r.out);
    assert_eq!(l[0], "ELF64 esi=00007000", "{}", r.out);
    assert!(
        l[1].contains("cr0=80000011") && l[1].contains("cs=00000010"),
        "{}",
        l[1]
    );
    // A synthesized setup header: HdrS, protocol 2.15, the loader's values.
    let mut want = zp_expected("ro", &rd, top_of_64m(300));
    want[0] =
        "hdr=53726448 version=0000020F loader=000000FF loadflags=00000001 code32_start=00000000"
            .to_string();
    assert_eq!(l[2..].to_vec(), want, "{}", r.out);
}

fn assert_multiboot(variant: &str, base: u32) {
    assert_multiboot_info_at(variant, base, 0x2000);
}

/// `assert_multiboot` with the multiboot information expected at `info`.
fn assert_multiboot_info_at(variant: &str, base: u32, info: u32) {
    let m1 = initrd_data(5000);
    let m2: Vec<u8> = initrd_data(3000).iter().map(|b| b ^ 0x55).collect();
    let f1 = tmp(&format!("mb-{variant}-m1"), &m1);
    let f2 = tmp(&format!("mb-{variant}-m2"), &m2);
    let kernel = rom(&format!("{variant}.bin"));
    let spec = format!("{f1} first module,{f2}");
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &kernel,
        "-initrd",
        &spec,
        "-append",
        "test=1 -v",
    ]);
    assert_eq!(r.status, 1, "{}{}", r.out, r.err);
    let l = lines(&r.out);
    let kind = if variant == "multiboot-aout" || variant == "multiboot-low" {
        "aout"
    } else {
        "elf"
    };
    // Modules follow the kernel page by page (both kernels end below base + 4 KiB).
    let (s1, s2) = (base + 0x1000, base + 0x3000);
    let mut want = vec![
        // flags: MEM | CMDLINE | MODS | MMAP | LOADER_NAME; 639 KiB low, 63 MiB high.
        format!("MB {kind} eax=2BADB002 ebx={info:08X} flags=0000024D mem_lower=0000027F mem_upper=0000FC00"),
        "cs=00000010 ds=00000018 ss=00000018 cr0=00000011 eflags.tf/if/df=00000000".to_string(),
        format!("cmdline=[{kernel} test=1 -v]"),
        "loader=[vx86]".to_string(),
        "modules=00000002".to_string(),
        format!(" {s1:08X}-{:08X} sum={:08X} [{f1} first module]", s1 + 5000, sum(&m1)),
        format!(" {s2:08X}-{:08X} sum={:08X} [{f2}]", s2 + 3000, sum(&m2)),
        "mmap bytes=00000078".to_string(),
    ];
    want.extend(MAP_64M.iter().map(|s| s.to_string()));
    want.push("END".to_string());
    assert_eq!(l, want, "{}", r.out);
}

#[test]
fn multiboot_elf_kernel_with_modules() {
    assert_multiboot("multiboot", 0x10_0000);
}

/// Linked as `ld -Ttext 0x100000` does it: a first PT_LOAD holding only
/// the ELF headers at 0xFF000, in the BIOS area. QEMU 7.2 boots it (the ROM
/// drops those bytes); so does vx86, leaving that segment out.
#[test]
fn multiboot_elf_kernel_with_a_headers_only_segment() {
    assert_multiboot("multiboot-hdrseg", 0x10_0000);
}

/// A kernel at 0x8000, where vx86 keeps its boot data for other kernels:
/// it loads (QEMU 7.2 loads it too, but its own information at 0x9000
/// collides with the modules it puts after the kernel, and the kernel
/// reads zeros); the information, command line and strings go after the
/// modules (0xC000) instead of 0x2000, 0x20000 and 0x30000.
#[test]
fn multiboot_kernel_in_conventional_memory() {
    assert_multiboot_info_at("multiboot-low", 0x8000, 0xC000);
}

/// A real-mode test kernel (kvm-unit-tests' x86/realmode is one) at `base`:
/// its own GDT, down to real mode, then it reads the multiboot information
/// through segment:offset addresses and takes an interrupt through its own
/// IVT. `info` is where the information must be; at 0x1000 the kernel sits
/// on the page where the loader keeps the entry GDT for other kernels, which
/// then goes to the end of the information page instead.
fn assert_real_mode_kernel(variant: &str, info: u32) {
    let kernel = rom(&format!("{variant}.bin"));
    let r = vx86(&["-m", RAM, "-kernel", &kernel, "-append", "test=1"]);
    assert_eq!(r.status, 1, "{}{}", r.out, r.err);
    assert_eq!(
        lines(&r.out),
        vec![
            format!("MB real eax=2BADB002 ebx={info:08X} entry cr0=00000011 real cr0=00000010"),
            "flags=0000024D mem_lower=0000027F mmap bytes=00000078".to_string(),
            format!("cmdline=[{kernel} test=1]"),
            "loader=[vx86]".to_string(),
            "int 30 through the ivt: 1234".to_string(),
            "END".to_string(),
        ],
        "{}",
        r.out
    );
}

/// At 0x8000, where vx86 keeps the 64-bit entry's page tables and its boot
/// data for other kernels: the information goes after the kernel (0x9000).
/// QEMU 7.2 runs this kernel to the end too, but the information it hands
/// over at 0x9500 reads all zeros.
#[test]
fn multiboot_kernel_drops_to_real_mode_at_0x8000() {
    assert_real_mode_kernel("multiboot-real", 0x9000);
}

/// At 0x1000 (QEMU 7.2: the same report, information at 0x9500).
#[test]
fn multiboot_kernel_drops_to_real_mode_on_the_gdt_page() {
    assert_real_mode_kernel("multiboot-real1000", 0x2000);
}

#[test]
fn multiboot_aout_kludge_kernel_with_modules() {
    assert_multiboot("multiboot-aout", 0x18_0000);
}

/// A failed boot: non-zero status (1, as QEMU), no guest output, exactly
/// one stderr line naming `file` and containing `problem`, and no panic.
fn assert_refused(r: &Run, file: &str, problem: &str) {
    assert_ne!(r.status, 0, "stdout:\n{}", r.out);
    assert!(r.out.is_empty(), "the guest ran: {}", r.out);
    assert!(!r.err.contains("panicked"), "{}", r.err);
    let l = lines(&r.err);
    assert_eq!(l.len(), 1, "want one error line, got:\n{}", r.err);
    assert!(
        l[0].starts_with(&format!("vx86: {file}: ")) && l[0].contains(problem),
        "want \"vx86: {file}: ...{problem}...\", got {:?}",
        l[0]
    );
}

#[test]
fn not_a_kernel() {
    let k = tmp("notakernel", b"#!/bin/sh\necho this is not a kernel\n");
    let r = vx86(&["-kernel", &k]);
    assert_refused(&r, &k, "not a Linux bzImage, ELF or multiboot kernel");
    let e = tmp("empty", b"");
    assert_refused(&vx86(&["-kernel", &e]), &e, "empty file");
    let missing = format!("{}/no-such-kernel", std::env::temp_dir().display());
    assert_refused(&vx86(&["-kernel", &missing]), &missing, "cannot read");
}

#[test]
fn truncated_kernels() {
    let bz = read_rom("bzimage.bin");
    for cut in [0x210, 0x300, bz.len() - 64] {
        let k = tmp(&format!("trunc-bz-{cut}"), &bz[..cut]);
        assert_refused(&vx86(&["-kernel", &k]), &k, "truncated");
    }
    let elf = read_rom("pvh.bin");
    let k = tmp("trunc-elf", &elf[..elf.len() - 100]);
    assert_refused(&vx86(&["-kernel", &k]), &k, "ELF: truncated");
    let payload = gzip(&elf);
    let img = bzimage_with_payload(&payload, elf.len());
    let k = tmp("trunc-payload", &img[..img.len() - payload.len() / 2]);
    assert_refused(&vx86(&["-kernel", &k]), &k, "truncated");
}

#[test]
fn corrupt_compressed_payload() {
    let elf = read_rom("pvh.bin");
    for (fmt, mut packed) in [("gzip", gzip(&elf)), ("XZ", xz_x86(&elf))] {
        let mid = packed.len() / 2;
        for b in &mut packed[mid..mid + 8] {
            *b ^= 0xA5;
        }
        let k = tmp(
            &format!("corrupt-{fmt}"),
            &bzimage_with_payload(&packed, elf.len()),
        );
        assert_refused(
            &vx86(&["-kernel", &k]),
            &k,
            &format!("compressed kernel: {fmt} payload is corrupt"),
        );
    }
    // A payload that decompresses fine but is not an ELF image.
    let k = tmp(
        "payload-not-elf",
        &bzimage_with_payload(&gzip(b"not an ELF file at all"), 22),
    );
    assert_refused(&vx86(&["-kernel", &k]), &k, "not a usable vmlinux");
}

#[test]
fn initrd_too_large_for_memory() {
    let rd = tmp("huge-initrd", &vec![0u8; 20 << 20]);
    for kernel in ["bzimage.bin", "pvh.bin"] {
        let r = vx86(&["-m", "16M", "-kernel", &rom(kernel), "-initrd", &rd]);
        assert_refused(&r, &rd, "does not fit in guest RAM");
    }
    let r = vx86(&[
        "-m",
        "16M",
        "-kernel",
        &rom("multiboot.bin"),
        "-initrd",
        &rd,
    ]);
    assert_refused(&r, &rd, "outside usable guest RAM");
}

#[test]
fn command_line_longer_than_cmdline_size() {
    // bzimage.bin declares cmdline_size 255.
    let ok = "x".repeat(255);
    let r = vx86(&["-m", RAM, "-kernel", &rom("bzimage.bin"), "-append", &ok]);
    assert_eq!(r.status, 1, "{}", r.err);
    let long = "x".repeat(300);
    let r = vx86(&["-m", RAM, "-kernel", &rom("bzimage.bin"), "-append", &long]);
    assert_refused(
        &r,
        &rom("bzimage.bin"),
        "the command line is 300 bytes but the kernel accepts at most 255",
    );
}

#[test]
fn kernel_options_need_kernel() {
    let r = vx86(&["-initrd", "x"]);
    assert_ne!(r.status, 0);
    assert!(r.err.contains("-initrd needs -kernel"), "{}", r.err);
    let r = vx86(&["-kernel", &rom("bzimage.bin"), "--boot-entry", "16"]);
    assert_ne!(r.status, 0);
    assert!(
        r.err.contains("--boot-entry 16: use auto, pvh, 64 or 32"),
        "{}",
        r.err
    );
    let r = vx86(&[
        "-kernel",
        &rom("multiboot.bin"),
        "-initrd",
        "/nonexistent-module arg",
    ]);
    assert_refused(&r, "/nonexistent-module", "cannot read");
    let r = vx86(&[
        "-m",
        RAM,
        "-kernel",
        &rom("bzimage.bin"),
        "--boot-entry",
        "pvh",
    ]);
    assert_refused(
        &r,
        &rom("bzimage.bin"),
        "--boot-entry pvh: no compressed payload",
    );
}
