//! The Debian guests `scripts/build-guest.sh` builds: where they are, and
//! running one with its serial log streamed and collected.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `$VX86_GUEST_CACHE/out` (default `./guest-cache/out`).
pub fn guest_dir() -> PathBuf {
    let base = std::env::var_os("VX86_GUEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guest-cache"));
    base.join("out")
}

/// Runs vx86 with `args`, streaming COM1 (stdout) until it exits or `limit`
/// passes; returns the exit status (None on timeout) and the serial log.
pub fn run_guest(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = super::vx86()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vx86");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            let _ = tx2.send(format!("[stderr] {}", String::from_utf8_lossy(&line)));
        }
    });
    let start = Instant::now();
    let mut log = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                eprintln!("{:7.1}s | {line}", start.elapsed().as_secs_f64());
                log.push_str(&line);
                log.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, log);
        }
    }
    let status = child.wait().expect("wait vx86");
    (status.code(), log)
}

/// Asserts that `markers` appear in `log` in this order.
pub fn assert_in_order(log: &str, markers: &[&str]) {
    let mut at = 0;
    for m in markers {
        match log[at..].find(m) {
            Some(i) => at += i + m.len(),
            None => panic!("marker {m:?} missing (or out of order) in the serial log:\n{log}"),
        }
    }
}

/// The guest directory if all `files` are in it; else a SKIP line and None.
pub fn need(files: &[&str]) -> Option<PathBuf> {
    let dir = guest_dir();
    for f in files {
        if !dir.join(f).exists() {
            eprintln!(
                "SKIP: {} not found; build the guests with scripts/build-guest.sh",
                dir.join(f).display()
            );
            return None;
        }
    }
    Some(dir)
}

/// True when the gzip'ed cpio `initramfs` holds a file whose name
/// ends in `path` (e.g. `bin/vx86-blk`): a guest cache built by an older
/// `scripts/build-guest.sh` lacks newer test modes, and the test skips
/// with a SKIP line instead of failing.
pub fn initramfs_has(initramfs: &std::path::Path, path: &str) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(initramfs) else {
        return false;
    };
    let mut cpio = Vec::new();
    if flate2::read::GzDecoder::new(f)
        .read_to_end(&mut cpio)
        .is_err()
    {
        return false;
    }
    // newc: the name follows its header NUL-terminated.
    let name = format!("{path}\0");
    let found = cpio.windows(name.len()).any(|w| w == name.as_bytes());
    if !found {
        eprintln!(
            "SKIP: {} has no {path}; rebuild it with scripts/build-guest.sh initramfs",
            initramfs.display()
        );
    }
    found
}

/// The container guest (`initramfs-ctr.cpio.gz`) as the tests boot it: 512
/// MiB, Debian's kernel and the initramfs by `-kernel`/`-initrd`, COM1 on
/// stdout, and the guest's closing reboot ending the run. None (after a SKIP
/// line) when `scripts/build-guest.sh` has not made it.
pub fn ctr_guest_args() -> Option<Vec<String>> {
    let dir = need(&["vmlinuz", "initramfs-ctr.cpio.gz"])?;
    let path = |f: &str| dir.join(f).to_str().expect("UTF-8 guest path").to_string();
    Some(
        [
            "-m",
            "512M",
            "-kernel",
            &path("vmlinuz"),
            "-initrd",
            &path("initramfs-ctr.cpio.gz"),
            "-append",
            "console=ttyS0 panic=-1",
            "-nographic",
            "-no-reboot",
        ]
        .map(String::from)
        .to_vec(),
    )
}

/// The disk guest (`initramfs-disk.cpio.gz` with its ext4 root on
/// `disk.img` as an IDE disk under `-snapshot`, so the image never changes)
/// as the tests boot it, and the image's path. None (after a SKIP line) when
/// `scripts/build-guest.sh` has not made it.
#[allow(dead_code)]
pub fn disk_guest_args() -> Option<(Vec<String>, PathBuf)> {
    let dir = need(&["vmlinuz", "initramfs-disk.cpio.gz", "disk.img"])?;
    let path = |f: &str| dir.join(f).to_str().expect("UTF-8 guest path").to_string();
    let disk = dir.join("disk.img");
    let args = [
        "-m",
        "512M",
        "-kernel",
        &path("vmlinuz"),
        "-initrd",
        &path("initramfs-disk.cpio.gz"),
        "-append",
        "console=ttyS0 panic=-1",
        "-drive",
        &format!("file={},format=raw", path("disk.img")),
        "-snapshot",
        "-nographic",
        "-no-reboot",
    ]
    .map(String::from)
    .to_vec();
    Some((args, disk))
}

/// CRC-32 of a whole file, read in 1 MiB pieces (a guest's disk image is
/// unchanged when it is the same before and after a run).
#[allow(dead_code)]
pub fn file_crc(path: &std::path::Path) -> u32 {
    use std::io::Read;
    let mut f = std::fs::File::open(path).expect("open the image");
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }
    h.finalize()
}

/// A human-monitor client on a unix socket (`-monitor unix:PATH,server,nowait`),
/// for tests that drive a running guest.
#[cfg(unix)]
#[allow(dead_code)]
pub struct Hmp(std::os::unix::net::UnixStream);

#[cfg(unix)]
#[allow(dead_code)]
impl Hmp {
    /// Connects once vx86 listens on `path` (waiting up to a minute), and
    /// reads the banner.
    pub fn connect(path: &std::path::Path) -> Hmp {
        let start = Instant::now();
        let s = loop {
            if let Ok(s) = std::os::unix::net::UnixStream::connect(path) {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{}: nobody listens",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let mut h = Hmp(s);
        h.until_prompt();
        h
    }

    fn until_prompt(&mut self) -> String {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        while !buf.ends_with(b"(qemu) ") {
            let n = self.0.read(&mut b).expect("monitor answer in time");
            assert!(n > 0, "monitor closed: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&b[..n]);
        }
        buf.truncate(buf.len() - 7);
        String::from_utf8_lossy(&buf).replace("\r\n", "\n")
    }

    /// Sends one command line; the answer's text (before the next prompt).
    pub fn cmd(&mut self, line: &str) -> String {
        use std::io::Write;
        self.0
            .write_all(format!("{line}\n").as_bytes())
            .expect("monitor write");
        let out = self.until_prompt();
        eprintln!("(qemu) {line}\n{out}");
        out
    }
}
