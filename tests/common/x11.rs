//! A private X server for window tests: Xvfb started on a free display,
//! windows found and measured with xwininfo, captured with xwd (the X Window
//! Dump format, X11 `XWDFile.h`), driven with xdotool. Needs the packages
//! xvfb and x11-apps (xdotool optional); [`Xvfb::start`] says `SKIPPED:` and
//! returns None when they are missing.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True if `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A running Xvfb, killed on drop.
pub struct Xvfb {
    child: Child,
    /// `:N`, for DISPLAY.
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb with one `width`x`height` 24-bit screen on a display it
    /// picks itself (`-displayfd`, so parallel tests never collide), and
    /// waits until it accepts clients. None (after a `SKIPPED:` line naming
    /// `test`) when Xvfb, xwd or xwininfo is missing.
    pub fn start(test: &str, width: u32, height: u32) -> Option<Xvfb> {
        for tool in ["Xvfb", "xwd", "xwininfo"] {
            if !have(tool) {
                eprintln!("SKIPPED {test}: {tool} not installed (apt-get install xvfb x11-apps)");
                return None;
            }
        }
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .args(["-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        // Xvfb writes the display number once it is ready for clients.
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).expect("Xvfb display number");
        let n: u32 = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("Xvfb did not report a display number: {line:?}")
        });
        Some(Xvfb {
            child,
            display: format!(":{n}"),
        })
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("DISPLAY", &self.display);
        c
    }

    /// The id of the first top-level window whose name starts with `prefix`.
    pub fn find_window(&self, prefix: &str) -> Option<String> {
        let out = self
            .command("xwininfo")
            .args(["-root", "-children"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let quoted = format!("\"{prefix}");
        text.lines()
            .find(|l| l.contains(&quoted))
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
    }

    /// Waits up to `timeout` for a window named `prefix...`.
    pub fn wait_window(&self, prefix: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(id) = self.find_window(prefix) {
                return id;
            }
            assert!(
                start.elapsed() < timeout,
                "no window named {prefix:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A window's name (its title) and geometry: x, y, width, height.
    pub fn window_info(&self, id: &str) -> Option<WindowInfo> {
        let out = self.command("xwininfo").args(["-id", id]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> Option<i64> {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        let title = text
            .lines()
            .find(|l| l.contains("Window id:"))
            .and_then(|l| {
                let a = l.find('"')?;
                let b = l.rfind('"')?;
                (b > a).then(|| l[a + 1..b].to_string())
            })
            .unwrap_or_default();
        Some(WindowInfo {
            title,
            x: field("Absolute upper-left X:")?,
            y: field("Absolute upper-left Y:")?,
            width: field("Width:")? as usize,
            height: field("Height:")? as usize,
        })
    }

    /// The window's current contents.
    pub fn capture(&self, id: &str) -> Option<Xwd> {
        let out = self
            .command("xwd")
            .args(["-id", id, "-silent"])
            .output()
            .ok()?;
        out.status.success().then(|| parse_xwd(&out.stdout))
    }

    /// Runs xdotool with `args` on this display; false if it failed.
    pub fn xdotool(&self, args: &[&str]) -> bool {
        self.command("xdotool")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What xwininfo says about a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    pub title: String,
    pub x: i64,
    pub y: i64,
    pub width: usize,
    pub height: usize,
}

/// A decoded 24/32-bit ZPixmap XWD dump: `pixels[y * width + x]` = 0xRRGGBB.
pub struct Xwd {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u32>,
}

/// Parses the X Window Dump format (X11 XWDFile.h: a big-endian header of
/// 25 CARD32 fields, the window name, the colormap, then the image).
pub fn parse_xwd(b: &[u8]) -> Xwd {
    let f = |i: usize| u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let (header_size, format, depth) = (f(0), f(2), f(3));
    assert_eq!(format, 2, "ZPixmap");
    assert!(depth == 24 || depth == 32, "depth {depth}");
    let (width, height) = (f(4), f(5));
    let byte_order = f(7);
    let bpp = f(11);
    assert_eq!(bpp, 32, "bits per pixel");
    let bytes_per_line = f(12);
    let ncolors = f(19);
    let data = &b[header_size + ncolors * 12..];
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let o = y * bytes_per_line + x * 4;
            let p: [u8; 4] = data[o..o + 4].try_into().unwrap();
            let v = if byte_order == 0 {
                u32::from_le_bytes(p)
            } else {
                u32::from_be_bytes(p)
            };
            pixels.push(v & 0xFF_FFFF);
        }
    }
    Xwd {
        width,
        height,
        pixels,
    }
}
