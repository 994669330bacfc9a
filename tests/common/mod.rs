//! Helpers shared by the integration tests (`mod common;` in each test
//! crate). Not every test crate uses every helper, hence `dead_code`.
#![allow(dead_code)]

pub mod x11;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use vx86::machine::{Machine, RunExit};

/// A `Write + Send` sink (a machine's COM1 or debugcon) the test reads back.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs until virtual time (one nanosecond per instruction, HLT time
/// included) reaches `until`; anything else ending the run fails the test.
pub fn run_until(m: &mut Machine, until: u64) {
    m.cfg.max_insns = Some(until);
    assert_eq!(m.run(), RunExit::InstructionLimit);
}

/// Width, height and 0xRRGGBB pixels of an 8-bit RGB PNG (what
/// `--screenshot-on-exit` writes).
pub fn read_png(path: &Path) -> (usize, usize, Vec<u32>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = png::Decoder::new(std::io::BufReader::new(f))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; r.output_buffer_size().expect("frame size")];
    let info = r.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32)
        .collect();
    (info.width as usize, info.height as usize, px)
}

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("vx86-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The vx86 binary with deterministic time (`-icount shift=0,sleep=off`:
/// one nanosecond per instruction, idle time skipped, a fixed RTC), as every
/// test that compares bytes runs it. Add arguments after it.
pub fn vx86() -> std::process::Command {
    let mut c = vx86_host_time();
    c.args(["-icount", "shift=0,sleep=off"]);
    c
}

/// The vx86 binary as a user runs it (host time by default).
///
/// `VX86_TEST_RUNNER` (words separated by spaces) runs it through an
/// emulator of another host, as cargo's target runner runs the test binary
/// itself: `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the ARM build
/// (scripts/cross-hosts.sh). Under Wine the test binary is a Windows process
/// already and starts vx86.exe directly, so no runner is set there.
pub fn vx86_host_time() -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_vx86");
    let runner = std::env::var("VX86_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut c = std::process::Command::new(first);
            c.args(words).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    }
}

/// How much longer than natively a guest may take: `VX86_TEST_TIME_FACTOR`,
/// else 10 under an emulated host (qemu-user runs vx86 about that much
/// slower), else 1. Scales the wall-clock limits of guest runs, never a
/// measured bound.
#[allow(dead_code)]
pub fn time_factor() -> u32 {
    std::env::var("VX86_TEST_TIME_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if emulated_host() { 10 } else { 1 })
}

/// Whether vx86 runs under an emulated host (see [`vx86_host_time`]): tests
/// that measure wall-clock time against the host skip their timing bounds.
#[allow(dead_code)]
pub fn emulated_host() -> bool {
    std::env::var("VX86_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty())
        || std::env::var("VX86_TEST_EMULATED_HOST").is_ok()
}

/// Runs a 64 KiB ROM image as the BIOS (32 MiB of RAM, `-no-reboot`, at most
/// `max_insns` instructions) and returns how the run ended and what the ROM
/// wrote to the debug console (ports 0xE9 and 0x402).
pub fn run_bios_rom(path: &Path, max_insns: u64) -> (RunExit, Vec<u8>) {
    let img = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cfg = vx86::machine::MachineConfig {
        ram: 32 << 20,
        max_insns: Some(max_insns),
        no_reboot: true,
        ..vx86::machine::MachineConfig::default()
    };
    let mut m = Machine::new(cfg).expect("machine");
    m.mem
        .load_bios(&path.display().to_string(), &img)
        .expect("load ROM");
    let cap = Shared::default();
    m.sinks.debugcon = Some(Box::new(cap.clone()));
    let exit = m.run();
    (exit, cap.bytes())
}

/// Whether `prog --version`-style probing finds `prog` on PATH.
pub fn have_program(prog: &str, arg: &str) -> bool {
    std::process::Command::new(prog)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}
