//! The window frontend tested for real: vx86 runs `-display window` under
//! Xvfb (screens of chosen sizes), the window is measured with xwininfo and
//! captured with xwd, and its pixels are compared with the frame vx86
//! renders headless (`--screenshot-on-exit`) at the window's whole scale
//! factor; hot keys and typed keys go in with xdotool and must reach the
//! guest (echoed on COM1) or not. Needs Xvfb and xwd (packages xvfb,
//! x11-apps) and for the keyboard parts xdotool; the tests say `SKIPPED:`
//! when they are missing (`.ci/run` installs them).

mod common;

use common::x11::{have, WindowInfo, Xvfb, Xwd};
use common::{read_png, TempDir};
use iced_x86::code_asm::*;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// A vx86 process, killed on drop.
struct Vm(Child);
impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A guest screen rendered headless: width, height, 0xRRGGBB pixels.
struct Picture {
    width: usize,
    height: usize,
    pixels: Vec<u32>,
}

impl Picture {
    /// The picture each pixel repeated `k` times across and down.
    fn scaled(&self, k: usize) -> Picture {
        let (w, h) = (self.width * k, self.height * k);
        let pixels = (0..w * h)
            .map(|i| self.pixels[(i / w / k) * self.width + (i % w) / k])
            .collect();
        Picture {
            width: w,
            height: h,
            pixels,
        }
    }
}

/// Renders the guest headless after `insns` instructions.
fn headless(tmp: &TempDir, guest: &[&str], insns: u64) -> Picture {
    let png = tmp.join("expected.png");
    let st = common::vx86()
        .args(["-display", "none", "-serial", "none", "--max-insns"])
        .arg(insns.to_string())
        .args(guest)
        .arg("--screenshot-on-exit")
        .arg(&png)
        .status()
        .unwrap();
    assert!(st.success());
    let (width, height, pixels) = read_png(&png);
    Picture {
        width,
        height,
        pixels,
    }
}

/// Starts vx86 with a window on `x`'s display (in real time, so an idle
/// guest waits instead of racing); COM1 goes to `serial`.
fn windowed(x: &Xvfb, guest: &[&str], serial: &Path) -> Vm {
    Vm(common::vx86()
        .args(["-display", "window", "--realtime", "-serial"])
        .arg(format!("file:{}", serial.display()))
        .args(guest)
        .env("DISPLAY", &x.display)
        .stdin(Stdio::null())
        .spawn()
        .unwrap())
}

/// Pixels of `img` in the rectangle at (`x`, `y`) of `want`'s size, and
/// outside it (the border), that differ from `want` and from black.
fn differences(img: &Xwd, x: usize, y: usize, want: &Picture, rows: usize) -> (usize, usize) {
    let mut inside = 0;
    let mut border = 0;
    for yy in 0..img.height {
        for xx in 0..img.width {
            let p = img.pixels[yy * img.width + xx];
            let in_rect = (x..x + want.width).contains(&xx) && (y..y + want.height).contains(&yy);
            if in_rect {
                let (wx, wy) = (xx - x, yy - y);
                if wy < rows && p != want.pixels[wy * want.width + wx] {
                    inside += 1;
                }
            } else if p != 0 {
                border += 1;
            }
        }
    }
    (inside, border)
}

/// Waits until a vx86 window is `size` and shows `want` at (`x`, `y`) (only
/// its first `rows` rows compared: the rest may change), black around it.
/// Returns the window id and what xwininfo said.
fn wait_for_picture(
    x: &Xvfb,
    size: (usize, usize),
    at: (usize, usize),
    want: &Picture,
    rows: usize,
) -> (String, WindowInfo) {
    wait_for_picture_within(WAIT, x, size, at, want, rows)
}

/// [`wait_for_picture`] for a guest that takes `limit` to draw it.
fn wait_for_picture_within(
    limit: Duration,
    x: &Xvfb,
    size: (usize, usize),
    at: (usize, usize),
    want: &Picture,
    rows: usize,
) -> (String, WindowInfo) {
    let start = Instant::now();
    let mut last = String::from("no window");
    loop {
        assert!(
            start.elapsed() < limit,
            "the window never showed the expected {}x{} picture at {at:?} in a {size:?} window: {last}",
            want.width,
            want.height
        );
        std::thread::sleep(Duration::from_millis(300));
        let Some(id) = x.find_window("vx86") else {
            continue;
        };
        let Some(info) = x.window_info(&id) else {
            continue;
        };
        if (info.width, info.height) != size {
            last = format!("window {}x{}", info.width, info.height);
            continue;
        }
        let Some(img) = x.capture(&id) else {
            last = "xwd failed".into();
            continue;
        };
        let (inside, border) = differences(&img, at.0, at.1, want, rows);
        if inside == 0 && border == 0 {
            // Not all black: the guest's picture really is on screen.
            assert!(img.pixels.iter().any(|&p| p != 0));
            return (id, info);
        }
        last = format!("{inside} pixels differ, {border} border pixels not black");
    }
}

/// Puts the pointer on the window and the keyboard focus in it (there is no
/// window manager to do it).
fn focus(x: &Xvfb, id: &str) {
    assert!(x.xdotool(&["mousemove", "--window", id, "20", "20"]));
    assert!(x.xdotool(&["windowfocus", "--sync", id]));
}

/// What the default guest echoed of the keys typed so far: its COM1 log
/// after the banner, without the clock lines (a clock line cuts the echo of
/// a word typed across a second: "bac", "uptime 3 s ...", "k").
fn echoed(log: &str) -> String {
    let after = log
        .find("driven by the PIT.\r\n")
        .map_or("", |i| &log[i + "driven by the PIT.\r\n".len()..]);
    after
        .split("\r\n")
        .filter(|l| !l.starts_with("uptime "))
        .collect()
}

/// Waits until the guest has echoed `text`; returns all it echoed.
fn wait_echo(serial: &Path, text: &str) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        let typed = echoed(&log);
        if typed.contains(text) {
            return typed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{text:?} never echoed on COM1: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for the vx86 window's title to contain `text`.
fn wait_title(x: &Xvfb, text: &str) -> WindowInfo {
    let start = Instant::now();
    loop {
        if let Some(info) = x.find_window("vx86").and_then(|id| x.window_info(&id)) {
            if info.title.contains(text) {
                return info;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "title {:?} never said {text:?}",
                info.title
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The default guest's banner rows (everything above the clock line) never
/// change; 96 of its 400 rows.
const STATIC_ROWS: usize = 96;

#[test]
fn window_shows_the_vga_screen_and_takes_keys() {
    // 1024x768 has no room for 2x 720x400 (1440 wide): the text is 1:1.
    let Some(x) = Xvfb::start("window_shows_the_vga_screen_and_takes_keys", 1024, 768) else {
        return;
    };
    let tmp = TempDir::new("window-text");
    let want = headless(&tmp, &[], 3_000_000);
    assert_eq!((want.width, want.height), (720, 400));
    let serial = tmp.join("serial.txt");
    let _vm = windowed(&x, &[], &serial);
    let (id, info) = wait_for_picture(&x, (720, 400), (0, 0), &want, STATIC_ROWS);
    assert!(
        info.title.starts_with("vx86 - built-in guest - ")
            && info.title.ends_with(" - Ctrl-Alt-G releases input"),
        "title {:?}",
        info.title
    );

    if !have("xdotool") {
        eprintln!("SKIPPED (keyboard part): xdotool not installed");
        return;
    }
    // Keys typed into the window arrive as PS/2 scan codes; the guest echoes
    // them on COM1.
    focus(&x, &id);
    assert!(x.xdotool(&["type", "--delay", "60", "vx86ok"]));
    assert_eq!(wait_echo(&serial, "vx86ok"), "vx86ok");
}

#[test]
fn text_mode_doubles_on_a_big_screen_and_the_hot_keys_work() {
    // 1600x1000: 2x text mode (1440x800) fits, 3x does not.
    let Some(x) = Xvfb::start(
        "text_mode_doubles_on_a_big_screen_and_the_hot_keys_work",
        1600,
        1000,
    ) else {
        return;
    };
    let tmp = TempDir::new("window-scale");
    let want = headless(&tmp, &[], 3_000_000).scaled(2);
    let serial = tmp.join("serial.txt");
    let _vm = windowed(&x, &[], &serial);
    let rows = 2 * STATIC_ROWS;
    let (id, info) = wait_for_picture(&x, (1440, 800), (0, 0), &want, rows);
    assert_eq!((info.x, info.y), (80, 100), "centred on the screen");

    if !have("xdotool") {
        eprintln!("SKIPPED (hot keys): xdotool not installed");
        return;
    }
    // Ctrl-Alt-F: full screen, the 2x picture centred on black.
    focus(&x, &id);
    assert!(x.xdotool(&["key", "ctrl+alt+f"]));
    let (id, info) = wait_for_picture(&x, (1600, 1000), (80, 100), &want, rows);
    assert_eq!((info.x, info.y), (0, 0));
    // Ctrl-Alt-G releases the keyboard: typed keys stop reaching the guest.
    focus(&x, &id);
    assert!(x.xdotool(&["key", "ctrl+alt+g"]));
    wait_title(&x, " - input released, Ctrl-Alt-G grabs");
    assert!(x.xdotool(&["type", "--delay", "60", "lost"]));
    // Ctrl-Alt-G again: keys reach it again.
    assert!(x.xdotool(&["key", "ctrl+alt+g"]));
    wait_title(&x, " - Ctrl-Alt-G releases input");
    assert!(x.xdotool(&["type", "--delay", "60", "back"]));
    // Neither the keys typed while released nor the hot keys' G reached the
    // guest.
    assert_eq!(wait_echo(&serial, "back"), "back");
    // Ctrl-Alt-F again: the window as before.
    assert!(x.xdotool(&["key", "ctrl+alt+f"]));
    wait_for_picture(&x, (1440, 800), (0, 0), &want, rows);
}

/// Virtual time at which the VBE guest is still in text mode (the BIOS's
/// banner on screen), and at which it has drawn its VBE picture.
const VBE_GUEST_TEXT: u64 = 30_000_000;
const VBE_GUEST_DRAWN: u64 = 1_300_000_000;

/// A disk whose boot sector waits a second in text mode (INT 15h AH=86h),
/// then sets VBE mode 105h (1024x768, 256 colours, banked) and fills it
/// through the 64 KiB window at A000h (AX=4F05h): 16x12 blocks of 64x64
/// pixels, colour = block column + 16 x block row, in the mode 13h palette
/// the BIOS loads for 8-bit modes; then it idles.
fn vbe_guest(dir: &TempDir) -> String {
    fn build() -> Result<Vec<u8>, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        let mut bank = a.create_label();
        let mut pixel = a.create_label();
        let mut idle = a.create_label();
        a.mov(ah, 0x86)?;
        a.mov(cx, 0x000Fu32)?; // CX:DX = 1,000,000 microseconds
        a.mov(dx, 0x4240u32)?;
        a.int(0x15)?;
        a.mov(ax, 0x4F02u32)?;
        a.mov(bx, 0x0105u32)?;
        a.int(0x10)?;
        a.xor(bp, bp)?;
        a.set_label(&mut bank)?;
        a.mov(ax, 0x4F05u32)?;
        a.xor(bx, bx)?;
        a.mov(dx, bp)?;
        a.int(0x10)?;
        a.mov(ax, 0xA000u32)?;
        a.mov(es, ax)?;
        a.xor(di, di)?;
        a.mov(cx, bp)?;
        a.shl(cl, 4)?; // block row = bank (64 KiB = 64 rows of 1024)
        a.cld()?;
        a.set_label(&mut pixel)?;
        a.mov(ax, di)?;
        a.shr(ax, 6)?;
        a.and(al, 0x0F)?; // block column = (offset mod 1024) / 64
        a.or(al, cl)?;
        a.stosb()?;
        a.test(di, di)?;
        a.jnz(pixel)?;
        a.inc(bp)?;
        a.cmp(bp, 12)?;
        a.jb(bank)?;
        a.sti()?;
        a.set_label(&mut idle)?;
        a.hlt()?;
        a.jmp(idle)?;
        let mut s = a.assemble(0x7C00)?;
        s.resize(512, 0);
        s[510] = 0x55;
        s[511] = 0xAA;
        Ok(s)
    }
    let mut disk = build().unwrap();
    disk.resize(64 * 512, 0);
    let path = dir.join("vbe-guest.img");
    std::fs::write(&path, disk).unwrap();
    format!("file={},format=raw,snapshot=on", path.display())
}

#[test]
fn a_vbe_mode_resizes_the_window() {
    // 1280x1024: 1024x768 fits at 1:1 (2x does not); text mode (1440 wide
    // at 2x) too.
    let Some(x) = Xvfb::start("a_vbe_mode_resizes_the_window", 1280, 1024) else {
        return;
    };
    let tmp = TempDir::new("window-vbe");
    let drive = vbe_guest(&tmp);
    let guest = ["-drive", drive.as_str()];
    let text = headless(&tmp, &guest, VBE_GUEST_TEXT);
    assert_eq!((text.width, text.height), (720, 400));
    let want = headless(&tmp, &guest, VBE_GUEST_DRAWN);
    assert_eq!((want.width, want.height), (1024, 768));
    // The pattern in the mode 13h palette: block (1, 0) is entry 01h, EGA
    // blue; (2, 0) green; (3, 5) entry 53h of the colour cube, not black.
    let block = |col: usize, row: usize| want.pixels[(row * 64 + 32) * 1024 + col * 64 + 32];
    assert_eq!(block(1, 0) & 0xFFFF00, 0, "blue: {:06x}", block(1, 0));
    assert!(block(1, 0) & 0xFF >= 0xA0, "blue: {:06x}", block(1, 0));
    assert_eq!(block(2, 0) & 0xFF00FF, 0, "green: {:06x}", block(2, 0));
    assert_ne!(block(3, 5), 0);
    let serial = tmp.join("serial.txt");
    let _vm = windowed(&x, &guest, &serial);
    // First text mode at 1:1 (the BIOS's banner and boot line: the top 32
    // rows; the cursor blinks below them) ...
    wait_for_picture(&x, (720, 400), (0, 0), &text, 32);
    // ... then the window follows the guest into 1024x768.
    let (_, info) = wait_for_picture(&x, (1024, 768), (0, 0), &want, 768);
    assert_eq!((info.x, info.y), (128, 128), "centred on the screen");
    assert!(
        info.title.starts_with("vx86 - vbe-guest.img - "),
        "title {:?}",
        info.title
    );
}

#[test]
fn a_screen_too_small_for_the_mode_keeps_its_aspect_ratio() {
    // 800x600 less the window manager's margin (16x80): 1024x768 does not
    // fit at 1:1, so it shrinks to 693x520 (1024:768 = 4:3 kept).
    let Some(x) = Xvfb::start(
        "a_screen_too_small_for_the_mode_keeps_its_aspect_ratio",
        800,
        600,
    ) else {
        return;
    };
    let tmp = TempDir::new("window-small");
    let drive = vbe_guest(&tmp);
    let guest = ["-drive", drive.as_str()];
    let full = headless(&tmp, &guest, VBE_GUEST_DRAWN);
    // The nearest pixel of the 1024x768 frame for each of 693x520.
    let (w, h) = (693, 520);
    let pixels = (0..w * h)
        .map(|i| full.pixels[(i / w) * full.height / h * full.width + (i % w) * full.width / w])
        .collect();
    let want = Picture {
        width: w,
        height: h,
        pixels,
    };
    let serial = tmp.join("serial.txt");
    let _vm = windowed(&x, &guest, &serial);
    wait_for_picture(&x, (w, h), (0, 0), &want, h);
}

/// The Debian installer (netboot, text frontend) with plain `-kernel
/// -initrd` draws its first screen in the window, pixel for pixel what vx86
/// renders headless at the same point: the kernel's console is VGA text, so
/// the installer's language dialog is readable at 1:1 in a 720x400 window.
/// The guest needs about 7.7 G instructions to get there.
#[test]
fn debian_installer_first_screen_in_the_window() {
    let (Some(kernel), Some(initrd)) = (
        common::payload("debian-installer-linux"),
        common::payload("debian-installer-initrd.gz"),
    ) else {
        return;
    };
    let Some(x) = Xvfb::start("debian_installer_first_screen_in_the_window", 1024, 768) else {
        return;
    };
    let tmp = TempDir::new("window-installer");
    let (k, i) = (kernel.display().to_string(), initrd.display().to_string());
    let guest = ["-m", "1G", "-kernel", &k, "-initrd", &i];
    let want = headless(&tmp, &guest, 9_500_000_000);
    assert_eq!((want.width, want.height), (720, 400));
    // The language dialog: its grey box and the blue backdrop, in VGA colours.
    let count = |rgb: u32| want.pixels.iter().filter(|&&p| p == rgb).count();
    assert!(
        count(0xAAAAAA) > 10_000 && count(0x0000AA) > 10_000,
        "no installer dialog in the headless frame: grey {}, blue {}",
        count(0xAAAAAA),
        count(0x0000AA)
    );
    let serial = tmp.join("serial.txt");
    let _vm = windowed(&x, &guest, &serial);
    let limit = Duration::from_secs(600) * common::time_factor();
    wait_for_picture_within(limit, &x, (720, 400), (0, 0), &want, 400);
}
