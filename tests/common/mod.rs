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
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_vx86"));
    c.args(["-icount", "shift=0,sleep=off"]);
    c
}

/// The vx86 binary as a user runs it (host time by default).
pub fn vx86_host_time() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_vx86"))
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
}
