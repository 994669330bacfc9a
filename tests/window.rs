//! The window frontend tested for real: vx86 runs `-display window` under
//! Xvfb, the window is captured with `xwd`, and its pixels are compared with
//! the frame vx86 renders headless (`--screenshot-on-exit`); keys typed into
//! the window with `xdotool` must reach the guest through the PS/2 keyboard.
//! Needs Xvfb and xwd (packages xvfb, x11-apps) and optionally xdotool; the
//! test says so and skips when they are missing (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A decoded 24/32-bit ZPixmap XWD dump: `pixels[y * width + x]` = 0xRRGGBB.
struct Xwd {
    width: usize,
    height: usize,
    pixels: Vec<u32>,
}

/// Parses the X Window Dump format (X11 XWDFile.h: a big-endian header of
/// 25 CARD32 fields, the window name, the colormap, then the image).
fn parse_xwd(b: &[u8]) -> Xwd {
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

fn read_png(path: &Path) -> (usize, usize, Vec<u32>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32)
        .collect();
    (info.width as usize, info.height as usize, px)
}

/// The window id of the vx86 window on `display`, once it is mapped.
fn find_window(display: &str) -> Option<String> {
    let out = Command::new("xwininfo")
        .args(["-root", "-tree"])
        .env("DISPLAY", display)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("\"vx86"))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
}

fn capture(display: &str, id: &str) -> Option<Xwd> {
    let out = Command::new("xwd")
        .args(["-id", id, "-silent"])
        .env("DISPLAY", display)
        .output()
        .ok()?;
    out.status.success().then(|| parse_xwd(&out.stdout))
}

#[test]
fn window_shows_the_vga_screen_and_takes_keys() {
    for tool in ["Xvfb", "xwd", "xwininfo"] {
        if !have(tool) {
            eprintln!("SKIP: {tool} not installed (apt-get install xvfb x11-apps)");
            return;
        }
    }
    let vx86 = env!("CARGO_BIN_EXE_vx86");
    let tmp = std::env::temp_dir().join(format!("vx86-window-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();

    // The reference: the same guest rendered headless.
    let shot: PathBuf = tmp.join("expected.png");
    let st = Command::new(vx86)
        .args([
            "-display",
            "none",
            "-serial",
            "none",
            "--max-insns",
            "3000000",
        ])
        .arg("--screenshot-on-exit")
        .arg(&shot)
        .status()
        .unwrap();
    assert!(st.success());
    let (ew, eh, expected) = read_png(&shot);

    let display = format!(":{}", 50 + std::process::id() % 200);
    let _xvfb = Killed(
        Command::new("Xvfb")
            .args([&display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(700));
    let serial = tmp.join("serial.txt");
    let _vm = Killed(
        Command::new(vx86)
            .args(["-display", "window", "--realtime"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .env("DISPLAY", &display)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The banner rows (everything above the clock line) never change: wait
    // until the window shows them exactly as the headless render does.
    let static_rows = 96.min(eh);
    let start = Instant::now();
    let mut last = String::from("no window");
    let id = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "window never matched the headless frame: {last}"
        );
        std::thread::sleep(Duration::from_millis(300));
        let Some(id) = find_window(&display) else {
            continue;
        };
        let Some(img) = capture(&display, &id) else {
            last = "xwd failed".into();
            continue;
        };
        if img.width != ew || img.height != eh {
            last = format!("window {}x{}, frame {ew}x{eh}", img.width, img.height);
            continue;
        }
        let diff = (0..static_rows * ew)
            .filter(|&i| img.pixels[i] != expected[i])
            .count();
        if diff == 0 {
            // Not all black: the banner really is on screen.
            assert!(img.pixels[..static_rows * ew].iter().any(|&p| p != 0));
            break id;
        }
        last = format!("{diff} pixels differ in the top {static_rows} rows");
    };

    if !have("xdotool") {
        eprintln!("SKIP (keyboard part): xdotool not installed");
        return;
    }
    // Keys typed into the window arrive as PS/2 scan codes; the BIOS echoes
    // them on COM1.
    // Without a window manager, focus follows the pointer: put it on the window.
    let xdo = |args: &[&str]| {
        Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &display)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(xdo(&["mousemove", "--window", &id, "20", "20"]));
    assert!(xdo(&["windowfocus", "--sync", &id]));
    let typed = xdo(&["type", "--delay", "60", "vx86ok"]);
    assert!(typed);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        if text.contains("vx86ok") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "typed keys not echoed on COM1: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
