//! Debian's 32-bit kernel (the non-PAE 686 flavour, an XZ bzImage without a
//! PVH note) booted on QEMU's own command line, `-kernel -initrd -append`,
//! with an i386 busybox initramfs (issue 18). By default vx86 decompresses
//! the payload on the host and enters the 32-bit `vmlinux` at its
//! `startup_32` with `boot_params` (Documentation/arch/x86/boot.rst, "32-bit
//! Boot Protocol"), so the kernel's own XZ decompressor (about 4.5 G guest
//! instructions) never runs; `--no-host-decompress` keeps the classic entry.
//!
//! The kernel and initramfs come from `scripts/fetch-firmware-payloads.sh`
//! (`$VX86_GUEST_CACHE/payloads/linux-686`, `initramfs-686.cpio.gz`); when
//! they are absent the tests print SKIPPED and pass.

mod common;

use common::guest::{assert_in_order, run_guest};
use common::payload;
use std::time::Duration;

/// The kernel's crypto self-tests (3.7 G instructions of the 4.1 G boot) are
/// left out with `cryptomgr.notests`: this test is about the entry, and the
/// benchmark (benches/boot686-vs-qemu.py) times them.
const APPEND: &str = "console=ttyS0 panic=-1 cryptomgr.notests";

#[test]
fn linux_686_boots_to_its_init_through_the_host_decompressed_entry() {
    let (Some(kernel), Some(initrd)) = (payload("linux-686"), payload("initramfs-686.cpio.gz"))
    else {
        return;
    };
    let (kernel, initrd) = (kernel.display().to_string(), initrd.display().to_string());
    let limit = Duration::from_secs(600 * common::time_factor() as u64);
    let (status, log) = run_guest(
        &[
            "-m",
            "256M",
            "-kernel",
            &kernel,
            "-initrd",
            &initrd,
            "-append",
            APPEND,
            "-nographic",
            "-no-reboot",
            "--stats",
        ],
        limit,
    );
    assert_in_order(
        &log,
        &[
            // The loader: the XZ payload decompressed here, the ELF32 at its
            // link address (LOAD_PHYSICAL_ADDR 16 MiB), entered at startup_32.
            "host-decompressed vmlinux, 32-bit entry with boot_params at 0x1000000",
            "XZ payload",
            // No decompressor ran: the kernel's first words are its banner.
            "Linux version 6.1.0-",
            "-686 ",
            "Kernel command line: console=ttyS0 panic=-1 cryptomgr.notests",
            "Freeing initrd memory",
            "Run /init as init process",
            // The i386 busybox: user space runs on the 32-bit kernel.
            "vx86-686: i686 6.1.0-",
            "VX86-686-INIT-DONE",
            "reboot: Restarting system",
        ],
    );
    assert!(
        !log.contains("Decompressing Linux"),
        "the guest decompressor ran:\n{log}"
    );
    assert_eq!(status, Some(0), "vx86 exit status; log:\n{log}");
}

/// `--no-host-decompress` loads the bzImage as it is and enters the kernel's
/// own decompressor at `startup_32` (the load address): the loader's report
/// is enough, the first few instructions run.
#[test]
fn linux_686_no_host_decompress_enters_the_kernels_decompressor() {
    let Some(kernel) = payload("linux-686") else {
        return;
    };
    let out = common::vx86()
        .args(["-m", "256M", "-kernel"])
        .arg(&kernel)
        .args([
            "-append",
            APPEND,
            "-display",
            "none",
            "-serial",
            "none",
            "-no-reboot",
            "--max-insns",
            "100000",
            "--stats",
            "--no-host-decompress",
        ])
        .output()
        .expect("run vx86");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Linux 32-bit entry (startup_32) with boot_params at 0x1000000")
            && err.contains("(not PVH: --no-host-decompress)")
            && !err.contains("decompressed on the host"),
        "{err}"
    );
}
