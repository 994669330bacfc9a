//! Helpers shared by the integration tests (`mod common;` in each test
//! crate). Not every test crate uses every helper, hence `dead_code`.
#![allow(dead_code)]

pub mod guest;
pub mod snapshot;
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

/// A file under the system temp dir, unique to this test process and tag,
/// removed on drop (the tests leave no temp files behind, pass or fail).
pub struct TempFile(String);

impl TempFile {
    pub fn new(tag: &str, data: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!("vx86-{tag}-{}", std::process::id()));
        std::fs::write(&p, data).expect("write temp file");
        TempFile(p.to_string_lossy().into_owned())
    }
}

impl std::ops::Deref for TempFile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TempFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
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

/// The arguments of [`vx86_debugcon`] before `--max-insns`: port 0xE9 on
/// stdout, no serial port or display, `isa-debug-exit` on port 0xF4, no
/// reboot (for tests that add their own instruction limit).
pub const DEBUGCON_ARGS: [&str; 9] = [
    "-debugcon",
    "stdio",
    "-serial",
    "none",
    "-display",
    "none",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
    "-no-reboot",
];

/// [`vx86`] as another host runs it, for the snapshot tests that save on
/// one host and restore on another: `{role}_BIN` names that host's vx86
/// (`vx86.exe` for Wine, the aarch64 build) and `{role}_RUNNER` the
/// emulator that runs it (`wine`, `qemu-aarch64 -L /usr/aarch64-linux-gnu`);
/// unset, this host's [`vx86`]. scripts/cross-hosts.sh sets them with
/// `role` = `VX86_SAVE` or `VX86_RESTORE`.
#[allow(dead_code)]
pub fn vx86_on(role: &str) -> std::process::Command {
    let bin = std::env::var(format!("{role}_BIN")).unwrap_or_default();
    if bin.is_empty() {
        return vx86();
    }
    let runner = std::env::var(format!("{role}_RUNNER")).unwrap_or_default();
    let mut c = run_through(&runner, &bin);
    c.args(["-icount", "shift=0,sleep=off"]);
    c
}

/// `bin` run by `runner` (an emulator command line, words separated by
/// spaces; empty: `bin` itself).
fn run_through(runner: &str, bin: &str) -> std::process::Command {
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

/// [`vx86`] set up for the test kernels that report on the debug console:
/// port 0xE9 on stdout, no serial port or display, `isa-debug-exit` on port
/// 0xF4 to end the run with the kernel's status, no reboot, and at most
/// `max_insns` instructions. Add arguments after it.
pub fn vx86_debugcon(max_insns: u64) -> std::process::Command {
    let mut c = vx86();
    c.args(DEBUGCON_ARGS)
        .arg("--max-insns")
        .arg(max_insns.to_string());
    c
}

/// `test-roms/<name>` in the source tree.
pub fn test_rom(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-roms")
        .join(name)
}

/// The vx86 binary as a user runs it (host time by default).
///
/// `VX86_TEST_RUNNER` (words separated by spaces) runs it through an
/// emulator of another host, as cargo's target runner runs the test binary
/// itself: `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the ARM build
/// (scripts/cross-hosts.sh). Under Wine the test binary is a Windows process
/// already and starts vx86.exe directly, so no runner is set there.
/// `VX86_TEST_BIN` names another host's vx86 for the runner: a native test
/// that drives vx86.exe under `wine` from a Unix terminal (tests/console.rs).
pub fn vx86_host_time() -> std::process::Command {
    let own = env!("CARGO_BIN_EXE_vx86");
    let other = std::env::var("VX86_TEST_BIN").unwrap_or_default();
    let bin = if other.is_empty() {
        own
    } else {
        other.as_str()
    };
    let runner = std::env::var("VX86_TEST_RUNNER").unwrap_or_default();
    run_through(&runner, bin)
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
    run_bios_rom_with(path, max_insns, true)
}

/// `run_bios_rom` with `-no-reboot` or without it (a triple fault then
/// resets the machine, RAM kept, and the ROM runs again from its reset vector).
pub fn run_bios_rom_with(path: &Path, max_insns: u64, no_reboot: bool) -> (RunExit, Vec<u8>) {
    let img = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cfg = vx86::machine::MachineConfig {
        ram: 32 << 20,
        max_insns: Some(max_insns),
        no_reboot,
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

/// A deterministic pseudo-random blob (xorshift), a few MiB.
pub fn blob() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..3 * 1024 * 1024 + 123)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// SHA-256 (FIPS 180-4), to check what a guest's `sha256sum` printed.
pub fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// A payload from `scripts/fetch-firmware-payloads.sh` (under
/// `$VX86_GUEST_CACHE/payloads`, default `./guest-cache`), or `None` after a
/// `SKIPPED:` line saying how to make it.
pub fn payload(name: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("VX86_GUEST_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-cache"));
    let p = base.join("payloads").join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not found; run scripts/fetch-firmware-payloads.sh",
            p.display()
        );
        None
    }
}

/// Bytes read, and (end offset, arrival time) for each chunk.
type Stamped = (Vec<u8>, Vec<(usize, std::time::Instant)>);

/// A running vx86 process whose stdout (the serial console with
/// `-nographic`) is read on a thread that stamps every chunk with the wall
/// time it arrived, so a test can say when a marker first appeared. The
/// process is killed when this is dropped.
pub struct Watched {
    child: std::process::Child,
    out: Arc<Mutex<Stamped>>,
    pub start: std::time::Instant,
}

impl Watched {
    pub fn spawn(mut cmd: std::process::Command) -> Watched {
        use std::io::Read;
        use std::process::Stdio;
        let start = std::time::Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run vx86");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let out = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let now = std::time::Instant::now();
                let mut g = sink.lock().unwrap();
                g.0.extend_from_slice(&buf[..n]);
                let end = g.0.len();
                g.1.push((end, now));
            }
        });
        Watched { child, out, start }
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap().0).into_owned()
    }

    /// When the first occurrence of `marker` had fully arrived, if it has.
    pub fn seen(&self, marker: &str) -> Option<std::time::Instant> {
        let g = self.out.lock().unwrap();
        let m = marker.as_bytes();
        let at = g.0.windows(m.len()).position(|w| w == m)? + m.len();
        g.1.iter().find(|(end, _)| *end >= at).map(|(_, t)| *t)
    }

    /// Waits up to `timeout` for the process to exit; its status (None when
    /// it is still running or was killed by a signal).
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for `marker`; prints when it came (seconds since
    /// the process started).
    pub fn wait_for(
        &mut self,
        marker: &str,
        timeout: std::time::Duration,
    ) -> Option<std::time::Instant> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.seen(marker) {
                eprintln!(
                    "marker {marker:?}: {:.2} s wall after start",
                    (t - self.start).as_secs_f64()
                );
                return Some(t);
            }
            if std::time::Instant::now() >= deadline
                || self.child.try_wait().ok().flatten().is_some()
            {
                return self.seen(marker);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Guest RAM byte, word and dword at physical address `a` (below the end of RAM).
pub fn rd8(m: &Machine, a: usize) -> u8 {
    m.mem.ram()[a]
}
pub fn rd16(m: &Machine, a: usize) -> u16 {
    u16::from_le_bytes([rd8(m, a), rd8(m, a + 1)])
}
pub fn rd32(m: &Machine, a: usize) -> u32 {
    u32::from_le_bytes([rd8(m, a), rd8(m, a + 1), rd8(m, a + 2), rd8(m, a + 3)])
}

/// A network backend with no network behind it: frames the guest sends are
/// dropped, nothing arrives (for tests that only need the card on the bus).
pub struct NullNet(crossbeam_channel::Receiver<()>);

impl NullNet {
    pub fn boxed() -> Box<dyn vx86::net::NetBackend> {
        Box::new(NullNet(crossbeam_channel::never()))
    }
}

impl vx86::net::NetBackend for NullNet {
    fn transmit(&mut self, _frame: &[u8], _now: vx86::devices::Nanos) {}
    fn receive(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn poll(&mut self, _now: vx86::devices::Nanos) {}
    fn next_deadline(&self) -> Option<vx86::devices::Nanos> {
        None
    }
    fn host_pending(&self) -> bool {
        false
    }
    fn host_wakeup(&self) -> crossbeam_channel::Receiver<()> {
        self.0.clone()
    }
    fn stats(&self) -> vx86::net::NetStats {
        vx86::net::NetStats::default()
    }
    fn snapshot_config(&self) -> String {
        "none".into()
    }
    /// Nothing to save: it remembers nothing.
    fn save_state(&self) -> Result<Vec<u8>, vx86::snapshot::StateError> {
        Ok(Vec::new())
    }
    fn load_state(&mut self, _state: &[u8]) -> Result<(), vx86::snapshot::StateError> {
        Ok(())
    }
}
