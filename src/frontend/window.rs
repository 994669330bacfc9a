//! The window frontend (minifb): the guest's screen in a window that follows
//! its mode, host keys turned into PS/2 key events by position, and QEMU's
//! hot keys. It owns the main thread (macOS requires the UI there); the
//! machine thread sends frames only when something visible changed.
//!
//! * Size: the window is the guest frame (720x400 text, 640x480 ... the VBE
//!   modes) times the largest whole factor that fits the screen, resized when
//!   the guest changes mode; the frame is never drawn below 1:1 when the
//!   screen has room, and shrinks keeping its aspect ratio only when it has
//!   not. A window the user resized shows the frame at the largest whole
//!   factor that fits, centred on black (aspect-kept below 1:1).
//! * Title: `vx86 - <guest> - <n> MIPS - <input state>`.
//! * Hot keys, as QEMU's (docs "Keys in the graphical frontends"):
//!   Ctrl-Alt-G releases the keyboard (keys stop going to the guest) and
//!   grabs it again; Ctrl-Alt-F toggles full screen (a borderless window the
//!   size of the screen, which is what minifb can do). The guest sees neither
//!   G nor F, and the modifiers it saw pressed are released for it.

use super::{DisplayUpdate, HostInput};
use crate::devices::i8042::Key;
use crate::devices::vga::Frame;
use crossbeam_channel::{Receiver, Sender};
use minifb::{InputCallback, Scale, ScaleMode, Window, WindowOptions};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The frame shown until the guest's first one arrives: VGA text mode 03h
/// (80x25 cells of 9x16 dots).
const TEXT_MODE: (usize, usize) = (720, 400);

/// Room an X11 window manager needs beside the window (title bar, borders,
/// panels): the window is sized to fit the screen less this. minifb cannot
/// ask for the work area, so this is a margin that fits common desktops.
const DECORATION: (usize, usize) = (16, 80);

/// How often an unchanged picture is drawn again (minifb keeps no backing
/// store, so a window uncovered by another is repainted from this).
const REFRESH: Duration = Duration::from_millis(100);

/// Maps a minifb key (by position) to the PS/2 keyboard key; None for keys a
/// 104-key PC keyboard does not have.
pub fn ps2_key(k: minifb::Key) -> Option<Key> {
    use minifb::Key as M;
    use Key as K;
    Some(match k {
        M::Key0 => K::Digit0,
        M::Key1 => K::Digit1,
        M::Key2 => K::Digit2,
        M::Key3 => K::Digit3,
        M::Key4 => K::Digit4,
        M::Key5 => K::Digit5,
        M::Key6 => K::Digit6,
        M::Key7 => K::Digit7,
        M::Key8 => K::Digit8,
        M::Key9 => K::Digit9,
        M::A => K::A,
        M::B => K::B,
        M::C => K::C,
        M::D => K::D,
        M::E => K::E,
        M::F => K::F,
        M::G => K::G,
        M::H => K::H,
        M::I => K::I,
        M::J => K::J,
        M::K => K::K,
        M::L => K::L,
        M::M => K::M,
        M::N => K::N,
        M::O => K::O,
        M::P => K::P,
        M::Q => K::Q,
        M::R => K::R,
        M::S => K::S,
        M::T => K::T,
        M::U => K::U,
        M::V => K::V,
        M::W => K::W,
        M::X => K::X,
        M::Y => K::Y,
        M::Z => K::Z,
        M::F1 => K::F1,
        M::F2 => K::F2,
        M::F3 => K::F3,
        M::F4 => K::F4,
        M::F5 => K::F5,
        M::F6 => K::F6,
        M::F7 => K::F7,
        M::F8 => K::F8,
        M::F9 => K::F9,
        M::F10 => K::F10,
        M::F11 => K::F11,
        M::F12 => K::F12,
        M::Down => K::ArrowDown,
        M::Left => K::ArrowLeft,
        M::Right => K::ArrowRight,
        M::Up => K::ArrowUp,
        M::Apostrophe => K::Quote,
        M::Backquote => K::Backquote,
        M::Backslash => K::Backslash,
        M::Comma => K::Comma,
        M::Equal => K::Equal,
        M::LeftBracket => K::BracketLeft,
        M::Minus => K::Minus,
        M::Period => K::Period,
        M::RightBracket => K::BracketRight,
        M::Semicolon => K::Semicolon,
        M::Slash => K::Slash,
        M::Backspace => K::Backspace,
        M::Delete => K::Delete,
        M::End => K::End,
        M::Enter => K::Enter,
        M::Escape => K::Escape,
        M::Home => K::Home,
        M::Insert => K::Insert,
        M::Menu => K::ContextMenu,
        M::PageDown => K::PageDown,
        M::PageUp => K::PageUp,
        M::Pause => K::Pause,
        M::Space => K::Space,
        M::Tab => K::Tab,
        M::NumLock => K::NumLock,
        M::CapsLock => K::CapsLock,
        M::ScrollLock => K::ScrollLock,
        M::LeftShift => K::ShiftLeft,
        M::RightShift => K::ShiftRight,
        M::LeftCtrl => K::ControlLeft,
        M::RightCtrl => K::ControlRight,
        M::NumPad0 => K::Numpad0,
        M::NumPad1 => K::Numpad1,
        M::NumPad2 => K::Numpad2,
        M::NumPad3 => K::Numpad3,
        M::NumPad4 => K::Numpad4,
        M::NumPad5 => K::Numpad5,
        M::NumPad6 => K::Numpad6,
        M::NumPad7 => K::Numpad7,
        M::NumPad8 => K::Numpad8,
        M::NumPad9 => K::Numpad9,
        M::NumPadDot => K::NumpadDecimal,
        M::NumPadSlash => K::NumpadDivide,
        M::NumPadAsterisk => K::NumpadMultiply,
        M::NumPadMinus => K::NumpadSubtract,
        M::NumPadPlus => K::NumpadAdd,
        M::NumPadEnter => K::NumpadEnter,
        M::LeftAlt => K::AltLeft,
        M::RightAlt => K::AltRight,
        M::LeftSuper => K::MetaLeft,
        M::RightSuper => K::MetaRight,
        _ => return None,
    })
}

/// A hot key the window acts on (it never reaches the guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hotkey {
    /// Ctrl-Alt-G: release the keyboard, or grab it again.
    ToggleGrab,
    /// Ctrl-Alt-F: full screen on or off.
    ToggleFullScreen,
}

/// Decides where each host key transition goes: to the guest as a PS/2 key
/// event, to the window as a hot key, or nowhere (input released). It keeps
/// the set of keys the guest believes are down, so that no key stays stuck
/// in the guest when a hot key, a release of input or a loss of focus comes
/// between a press and its release.
#[derive(Debug)]
pub struct KeyRouter {
    /// Host Ctrl and Alt (left, right) as the host reports them.
    ctrl: [bool; 2],
    alt: [bool; 2],
    /// Keys pressed for the guest and not yet released to it.
    down: Vec<Key>,
    /// The G or F of a hot key, while held: the host's typematic repeat
    /// (minifb asks X11 for detectable auto-repeat: presses without
    /// releases) must not toggle again.
    held_hotkey: Option<minifb::Key>,
    grabbed: bool,
    hotkeys: Vec<Hotkey>,
}

impl Default for KeyRouter {
    fn default() -> KeyRouter {
        KeyRouter {
            ctrl: [false; 2],
            alt: [false; 2],
            down: Vec::new(),
            held_hotkey: None,
            grabbed: true,
            hotkeys: Vec::new(),
        }
    }
}

impl KeyRouter {
    /// True while keys go to the guest.
    pub fn grabbed(&self) -> bool {
        self.grabbed
    }

    /// A host key went down or up; returns what the guest gets.
    pub fn key(&mut self, k: minifb::Key, pressed: bool) -> Vec<HostInput> {
        use minifb::Key as M;
        match k {
            M::LeftCtrl => self.ctrl[0] = pressed,
            M::RightCtrl => self.ctrl[1] = pressed,
            M::LeftAlt => self.alt[0] = pressed,
            M::RightAlt => self.alt[1] = pressed,
            _ => {}
        }
        if self.held_hotkey == Some(k) {
            // The hot key's own G or F: repeats and its release are dropped,
            // like the press (whether or not Ctrl and Alt are still down).
            if !pressed {
                self.held_hotkey = None;
            }
            return Vec::new();
        }
        let chord = self.ctrl.contains(&true) && self.alt.contains(&true);
        let hotkey = match k {
            M::G if pressed && chord => Some(Hotkey::ToggleGrab),
            M::F if pressed && chord => Some(Hotkey::ToggleFullScreen),
            _ => None,
        };
        if let Some(h) = hotkey {
            self.held_hotkey = Some(k);
            self.hotkeys.push(h);
            if h == Hotkey::ToggleGrab {
                self.grabbed = !self.grabbed;
            }
            return self.release_all();
        }
        let Some(key) = ps2_key(k) else {
            return Vec::new();
        };
        if pressed {
            if !self.grabbed {
                return Vec::new();
            }
            if !self.down.contains(&key) {
                self.down.push(key);
            }
            // Repeated presses while held are the host's typematic repeat.
            vec![HostInput::Key(key, true)]
        } else if let Some(i) = self.down.iter().position(|&d| d == key) {
            self.down.swap_remove(i);
            vec![HostInput::Key(key, false)]
        } else {
            Vec::new()
        }
    }

    /// Releases, for the guest, every key it believes is down (the window
    /// lost focus, a hot key fired); the host's own state is kept.
    pub fn release_all(&mut self) -> Vec<HostInput> {
        self.down
            .drain(..)
            .map(|k| HostInput::Key(k, false))
            .collect()
    }

    /// The window lost the keyboard: the host's modifiers are unknown until
    /// they are pressed again.
    pub fn focus_lost(&mut self) -> Vec<HostInput> {
        self.ctrl = [false; 2];
        self.alt = [false; 2];
        self.held_hotkey = None;
        self.release_all()
    }

    /// Hot keys pressed since the last call, oldest first.
    pub fn take_hotkeys(&mut self) -> Vec<Hotkey> {
        std::mem::take(&mut self.hotkeys)
    }
}

/// minifb's key callback: every press and release in the order the host
/// delivered them (polling key state once per frame would lose a quick
/// tap), through the shared [`KeyRouter`].
struct KeyForwarder {
    router: Rc<RefCell<KeyRouter>>,
    tx: Sender<HostInput>,
}

impl InputCallback for KeyForwarder {
    fn add_char(&mut self, _: u32) {}
    fn set_key_state(&mut self, k: minifb::Key, down: bool) {
        for ev in self.router.borrow_mut().key(k, down) {
            let _ = self.tx.send(ev);
        }
    }
}

/// Where the frame lands in a window: its top-left corner and drawn size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// The frame `frame` (width, height) in a window of `win`: scaled by the
/// largest whole factor that fits, or, if even 1:1 does not fit, shrunk to
/// fit keeping its aspect ratio; centred.
pub fn placement(frame: (usize, usize), win: (usize, usize)) -> Rect {
    let (fw, fh) = (frame.0.max(1), frame.1.max(1));
    let (ww, wh) = win;
    let k = (ww / fw).min(wh / fh);
    let (w, h) = if k >= 1 {
        (fw * k, fh * k)
    } else {
        // Shrunk to the window's width or height, whichever binds. Within a
        // pixel of the window's own shape (rounding), fill the window: so a
        // window sized by window_size() is filled exactly.
        let h_at_full_width = fh * ww / fw;
        if h_at_full_width <= wh {
            let h = if wh - h_at_full_width <= 1 {
                wh
            } else {
                h_at_full_width
            };
            (ww, h.max(1))
        } else {
            let w_at_full_height = fw * wh / fh;
            let w = if ww - w_at_full_height <= 1 {
                ww
            } else {
                w_at_full_height
            };
            (w.max(1), wh)
        }
    };
    Rect {
        x: (ww.saturating_sub(w)) / 2,
        y: (wh.saturating_sub(h)) / 2,
        w,
        h,
    }
}

/// The window size for a frame when a window's picture may be up to
/// `usable` (None when that is unknown: the frame at 1:1).
pub fn window_size(frame: (usize, usize), usable: Option<(usize, usize)>) -> (usize, usize) {
    let Some(usable) = usable else {
        return frame;
    };
    let r = placement(frame, usable);
    (r.w, r.h)
}

/// What a window's picture may use of an X11 `screen` (the decorations'
/// margin taken off).
pub fn usable_area(screen: (usize, usize)) -> (usize, usize) {
    (
        screen.0.saturating_sub(DECORATION.0).max(1),
        screen.1.saturating_sub(DECORATION.1).max(1),
    )
}

/// Draws `frame` into `out`, a `win_w` x `win_h` picture, as [`placement`]
/// puts it, black around it. Whole factors repeat each pixel exactly (the
/// window test compares them with the headless screenshot); a shrunk frame
/// takes the nearest pixel.
pub fn compose(frame: &Frame, win_w: usize, win_h: usize, out: &mut Vec<u32>) {
    out.clear();
    out.resize(win_w * win_h, 0);
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    if fw == 0 || fh == 0 || frame.pixels.len() != fw * fh || win_w == 0 || win_h == 0 {
        return;
    }
    let r = placement((fw, fh), (win_w, win_h));
    let columns: Vec<usize> = (0..r.w).map(|dx| dx * fw / r.w).collect();
    let mut previous: Option<(usize, usize)> = None; // (source row, where it was drawn)
    for dy in 0..r.h {
        let sy = dy * fh / r.h;
        let at = (r.y + dy) * win_w + r.x;
        match previous {
            Some((row, drawn)) if row == sy => out.copy_within(drawn..drawn + r.w, at),
            _ => {
                let src = &frame.pixels[sy * fw..(sy + 1) * fw];
                for (d, &sx) in out[at..at + r.w].iter_mut().zip(&columns) {
                    *d = src[sx];
                }
                previous = Some((sy, at));
            }
        }
    }
}

/// The title: what runs, how fast, and where the keys go.
pub fn title(guest: &str, mips: Option<u64>, grabbed: bool) -> String {
    let mut t = String::from("vx86");
    if !guest.is_empty() {
        t.push_str(" - ");
        t.push_str(guest);
    }
    if let Some(m) = mips {
        t.push_str(&format!(" - {m} MIPS"));
    }
    t.push_str(if grabbed {
        " - Ctrl-Alt-G releases input"
    } else {
        " - input released, Ctrl-Alt-G grabs"
    });
    t
}

/// The screen the window opens on, if the platform tells: on X11 (Linux,
/// BSD; also XWayland) the default screen of $DISPLAY, on Windows the
/// primary monitor. Elsewhere (a pure Wayland session; macOS, whose desktop
/// scales windows for the display itself) unknown: the window opens at 1:1
/// and full screen is unavailable.
/// On X11 the connection that asked is kept open until the window's own
/// exists: an X server with no other client (Xvfb, a bare X session) resets
/// itself when its last client disconnects, and a window opening during the
/// reset fails ("XOpenDisplay failed").
struct Screen {
    /// The whole screen (the full-screen window's size).
    size: Option<(usize, usize)>,
    /// What a window's picture may use ([`window_size`]).
    usable: Option<(usize, usize)>,
    #[cfg(all(unix, not(target_os = "macos")))]
    x11: Option<(x11_dl::xlib::Xlib, *mut x11_dl::xlib::Display)>,
}

impl Screen {
    #[cfg(all(unix, not(target_os = "macos")))]
    fn query() -> Screen {
        let none = Screen {
            size: None,
            usable: None,
            x11: None,
        };
        let Ok(xlib) = x11_dl::xlib::Xlib::open() else {
            return none;
        };
        // SAFETY: XOpenDisplay(NULL) connects to $DISPLAY and returns NULL on
        // failure, which is checked; the connection is used for read-only
        // queries and closed once, in Drop.
        unsafe {
            let d = (xlib.XOpenDisplay)(std::ptr::null());
            if d.is_null() {
                return none;
            }
            let screen = (xlib.XDefaultScreen)(d);
            let w = (xlib.XDisplayWidth)(d, screen);
            let h = (xlib.XDisplayHeight)(d, screen);
            let size = (w > 0 && h > 0).then_some((w as usize, h as usize));
            Screen {
                size,
                usable: size.map(usable_area),
                x11: Some((xlib, d)),
            }
        }
    }

    #[cfg(windows)]
    fn query() -> Screen {
        use winapi::um::winuser::{
            GetSystemMetrics, SM_CXFULLSCREEN, SM_CXSCREEN, SM_CYFULLSCREEN, SM_CYSCREEN,
        };
        let metric = |i| {
            // SAFETY: GetSystemMetrics takes an index and returns 0 on failure.
            let v = unsafe { GetSystemMetrics(i) };
            usize::try_from(v).ok().filter(|&v| v > 0)
        };
        // SM_C?FULLSCREEN: the client area of a full-screen window, without
        // the taskbar and a title bar: what a window's picture may use.
        Screen {
            size: metric(SM_CXSCREEN).zip(metric(SM_CYSCREEN)),
            usable: metric(SM_CXFULLSCREEN).zip(metric(SM_CYFULLSCREEN)),
        }
    }

    #[cfg(not(any(all(unix, not(target_os = "macos")), windows)))]
    fn query() -> Screen {
        Screen {
            size: None,
            usable: None,
        }
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
impl Drop for Screen {
    fn drop(&mut self) {
        if let Some((xlib, d)) = self.x11.take() {
            // SAFETY: `d` came from XOpenDisplay in query() and is closed
            // only here, once.
            unsafe {
                (xlib.XCloseDisplay)(d);
            }
        }
    }
}

/// The open window and how it was opened.
struct View {
    window: Window,
    full_screen: bool,
}

/// Opens a window of `size` (borderless at the top-left corner when
/// `full_screen`), with the key callback.
fn open(
    title: &str,
    size: (usize, usize),
    full_screen: bool,
    router: &Rc<RefCell<KeyRouter>>,
    input: &Sender<HostInput>,
) -> Result<View, minifb::Error> {
    let opts = WindowOptions {
        borderless: full_screen,
        title: !full_screen,
        resize: !full_screen,
        scale: Scale::X1,
        // The picture is always composed at the window's size.
        scale_mode: ScaleMode::UpperLeft,
        topmost: full_screen,
        ..WindowOptions::default()
    };
    let mut window = Window::new(title, size.0.max(1), size.1.max(1), opts)?;
    if full_screen {
        window.set_position(0, 0);
    }
    window.set_target_fps(60);
    window.set_input_callback(Box::new(KeyForwarder {
        router: router.clone(),
        tx: input.clone(),
    }));
    Ok(View {
        window,
        full_screen,
    })
}

/// Runs the window until it is closed (sends Quit) or the machine stops;
/// returns the machine's stop reason if it stopped first. `guest` says what
/// runs (a kernel or disk image name; empty for none) for the title.
pub fn run(
    guest: String,
    full_screen: bool,
    input: Sender<HostInput>,
    display: Receiver<DisplayUpdate>,
) -> Result<Option<String>, minifb::Error> {
    let probe = Screen::query();
    let (screen, usable) = (probe.size, probe.usable);
    let router = Rc::new(RefCell::new(KeyRouter::default()));
    let mut frame = Frame {
        width: TEXT_MODE.0 as u32,
        height: TEXT_MODE.1 as u32,
        pixels: vec![0; TEXT_MODE.0 * TEXT_MODE.1],
    };
    let mut mips = None;
    let mut shown_title = title(&guest, mips, true);
    // `-full-screen`: borderless at the screen's size, where it is known.
    let (size, full) = match (full_screen, screen) {
        (true, Some(s)) => (s, true),
        _ => (window_size(TEXT_MODE, usable), false),
    };
    let mut view = open(&shown_title, size, full, &router, &input)?;
    // Closes the X11 connection of the query; on Windows there is none.
    #[allow(clippy::drop_non_drop)]
    drop(probe);
    let mut picture = Vec::new();
    let mut composed: Option<(usize, usize)> = None; // window size of `picture`
    let mut last_draw = Instant::now();
    let mut draw_now = true;
    let mut active = true;
    while view.window.is_open() {
        loop {
            match display.try_recv() {
                Ok(DisplayUpdate::Frame(f)) => {
                    if f.width == 0
                        || f.height == 0
                        || f.pixels.len() != (f.width * f.height) as usize
                    {
                        continue;
                    }
                    let new_mode = (f.width, f.height) != (frame.width, frame.height);
                    frame = f;
                    composed = None;
                    if new_mode && !view.full_screen {
                        let want =
                            window_size((frame.width as usize, frame.height as usize), usable);
                        if want != view.window.get_size() {
                            // minifb cannot resize a window: open one of the
                            // new size, then close the old (in this order, so
                            // the X server never sees its last client leave).
                            view = open(&shown_title, want, false, &router, &input)?;
                        }
                    }
                }
                Ok(DisplayUpdate::Mips(m)) => mips = Some(m.round() as u64),
                Ok(DisplayUpdate::Stopped(why)) => return Ok(Some(why)),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return Ok(None),
            }
        }
        let hotkeys = router.borrow_mut().take_hotkeys();
        for h in hotkeys {
            if h == Hotkey::ToggleFullScreen {
                let Some(screen) = screen else { continue };
                let full = !view.full_screen;
                let size = if full {
                    screen
                } else {
                    window_size((frame.width as usize, frame.height as usize), usable)
                };
                view = open(&shown_title, size, full, &router, &input)?;
                composed = None;
            }
        }
        // Keys held while the focus goes elsewhere must not stay down in
        // the guest.
        let now_active = view.window.is_active();
        if active && !now_active {
            for ev in router.borrow_mut().focus_lost() {
                let _ = input.send(ev);
            }
        }
        active = now_active;
        let t = title(&guest, mips, router.borrow().grabbed());
        if t != shown_title {
            view.window.set_title(&t);
            shown_title = t;
        }
        let size = view.window.get_size();
        if composed != Some(size) {
            compose(&frame, size.0, size.1, &mut picture);
            composed = Some(size);
            draw_now = true;
        }
        if draw_now || last_draw.elapsed() >= REFRESH {
            view.window.update_with_buffer(&picture, size.0, size.1)?;
            last_draw = Instant::now();
            draw_now = false;
        } else {
            view.window.update();
        }
    }
    let _ = input.send(HostInput::Quit);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_by_position() {
        assert_eq!(ps2_key(minifb::Key::A), Some(Key::A));
        assert_eq!(ps2_key(minifb::Key::Key1), Some(Key::Digit1));
        assert_eq!(ps2_key(minifb::Key::LeftCtrl), Some(Key::ControlLeft));
        assert_eq!(ps2_key(minifb::Key::NumPadEnter), Some(Key::NumpadEnter));
        assert_eq!(ps2_key(minifb::Key::F13), None);
    }

    fn keys(r: &mut KeyRouter, seq: &[(minifb::Key, bool)]) -> Vec<HostInput> {
        seq.iter().flat_map(|&(k, d)| r.key(k, d)).collect()
    }

    #[test]
    fn ctrl_alt_g_releases_and_grabs_without_reaching_the_guest() {
        use minifb::Key as M;
        let mut r = KeyRouter::default();
        assert!(r.grabbed());
        let out = keys(
            &mut r,
            &[(M::LeftCtrl, true), (M::LeftAlt, true), (M::G, true)],
        );
        // Ctrl and Alt went to the guest, then were released for it; no G.
        assert_eq!(
            out,
            vec![
                HostInput::Key(Key::ControlLeft, true),
                HostInput::Key(Key::AltLeft, true),
                HostInput::Key(Key::ControlLeft, false),
                HostInput::Key(Key::AltLeft, false),
            ]
        );
        assert!(!r.grabbed());
        // Held long enough to repeat: still one toggle.
        assert_eq!(keys(&mut r, &[(M::G, true), (M::G, true)]), vec![]);
        assert!(!r.grabbed());
        assert_eq!(r.take_hotkeys(), vec![Hotkey::ToggleGrab]);
        // The physical releases are not sent again; while released, typing
        // sends nothing.
        let out = keys(
            &mut r,
            &[
                (M::G, false),
                (M::LeftAlt, false),
                (M::LeftCtrl, false),
                (M::A, true),
                (M::A, false),
            ],
        );
        assert_eq!(out, vec![]);
        // Right-hand Ctrl and Alt work too; grabbed again, A reaches the guest.
        keys(
            &mut r,
            &[
                (M::RightCtrl, true),
                (M::RightAlt, true),
                (M::G, true),
                (M::G, false),
                (M::RightAlt, false),
                (M::RightCtrl, false),
            ],
        );
        assert!(r.grabbed());
        assert_eq!(
            keys(&mut r, &[(M::A, true), (M::A, false)]),
            vec![HostInput::Key(Key::A, true), HostInput::Key(Key::A, false)]
        );
    }

    #[test]
    fn ctrl_alt_f_is_a_hot_key_and_plain_f_is_a_key() {
        use minifb::Key as M;
        let mut r = KeyRouter::default();
        let out = keys(
            &mut r,
            &[(M::LeftCtrl, true), (M::RightAlt, true), (M::F, true)],
        );
        assert!(!out.contains(&HostInput::Key(Key::F, true)));
        assert_eq!(r.take_hotkeys(), vec![Hotkey::ToggleFullScreen]);
        assert!(r.grabbed(), "full screen does not release the keyboard");
        // A repeat, then the modifiers let go before F: F's release is
        // still the hot key's.
        let out = keys(
            &mut r,
            &[
                (M::F, true),
                (M::RightAlt, false),
                (M::LeftCtrl, false),
                (M::F, false),
            ],
        );
        assert_eq!(out, vec![]);
        assert!(
            r.take_hotkeys().is_empty(),
            "a repeat is not a second press"
        );
        // Ctrl-F without Alt is the guest's.
        let out = keys(&mut r, &[(M::LeftCtrl, true), (M::F, true)]);
        assert_eq!(
            out,
            vec![
                HostInput::Key(Key::ControlLeft, true),
                HostInput::Key(Key::F, true)
            ]
        );
        // Focus lost: both released for the guest, modifiers forgotten.
        let out = r.focus_lost();
        assert_eq!(out.len(), 2);
        assert!(out.contains(&HostInput::Key(Key::ControlLeft, false)));
        assert!(out.contains(&HostInput::Key(Key::F, false)));
        assert_eq!(keys(&mut r, &[(M::LeftAlt, true), (M::G, true)]).len(), 2);
        assert!(r.take_hotkeys().is_empty());
    }

    #[test]
    fn the_window_is_the_frame_times_the_largest_whole_factor_that_fits() {
        // 1920x1080 less decorations (1904x1000): text mode 2x, 640x480 2x,
        // 800x600 1x, 1024x768 1x.
        let hd = Some(usable_area((1920, 1080)));
        assert_eq!(window_size((720, 400), hd), (1440, 800));
        assert_eq!(window_size((640, 480), hd), (1280, 960));
        assert_eq!(window_size((800, 600), hd), (800, 600));
        assert_eq!(window_size((1024, 768), hd), (1024, 768));
        // 4K: text mode 5x.
        assert_eq!(
            window_size((720, 400), Some(usable_area((3840, 2160)))),
            (3600, 2000)
        );
        // Too small for 1:1: shrunk, aspect ratio kept, and the frame then
        // fills that window exactly.
        assert_eq!(
            window_size((1024, 768), Some(usable_area((800, 600)))),
            (693, 520)
        );
        assert_eq!(
            window_size((1280, 1024), Some(usable_area((1024, 768)))),
            (860, 688)
        );
        for (frame, screen) in [
            ((1024, 768), (800, 600)),
            ((1280, 1024), (1024, 768)),
            ((720, 400), (640, 480)),
            ((1600, 1200), (1366, 768)),
        ] {
            let (w, h) = window_size(frame, Some(usable_area(screen)));
            assert_eq!(placement(frame, (w, h)), Rect { x: 0, y: 0, w, h });
        }
        // Unknown screen: 1:1.
        assert_eq!(window_size((800, 600), None), (800, 600));
    }

    #[test]
    fn placement_centres_whole_factors_and_fits_the_rest() {
        let r = placement((720, 400), (1600, 1000));
        assert_eq!(
            r,
            Rect {
                x: 80,
                y: 100,
                w: 1440,
                h: 800
            }
        );
        // A window a little wider than 1:1: 1:1, centred.
        let r = placement((640, 480), (700, 480));
        assert_eq!((r.x, r.y, r.w, r.h), (30, 0, 640, 480));
        // Narrower than the frame: width-bound, centred vertically.
        let r = placement((640, 480), (320, 400));
        assert_eq!((r.x, r.y, r.w, r.h), (0, 80, 320, 240));
    }

    #[test]
    fn compose_repeats_pixels_exactly_and_blacks_the_border() {
        let frame = Frame {
            width: 2,
            height: 2,
            pixels: vec![1, 2, 3, 4],
        };
        let mut out = Vec::new();
        compose(&frame, 6, 4, &mut out);
        #[rustfmt::skip]
        let want = vec![
            0, 1, 1, 2, 2, 0,
            0, 1, 1, 2, 2, 0,
            0, 3, 3, 4, 4, 0,
            0, 3, 3, 4, 4, 0,
        ];
        assert_eq!(out, want);
        // Shrunk: the nearest pixel.
        let frame = Frame {
            width: 4,
            height: 2,
            pixels: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        compose(&frame, 2, 1, &mut out);
        assert_eq!(out, vec![1, 3]);
        // A broken frame draws black, never panics.
        let bad = Frame {
            width: 3,
            height: 3,
            pixels: vec![1],
        };
        compose(&bad, 4, 4, &mut out);
        assert_eq!(out, vec![0; 16]);
    }

    #[test]
    fn the_title_says_what_runs_how_fast_and_where_keys_go() {
        assert_eq!(
            title("vmlinuz", Some(123), true),
            "vx86 - vmlinuz - 123 MIPS - Ctrl-Alt-G releases input"
        );
        assert_eq!(
            title("disk.img", None, false),
            "vx86 - disk.img - input released, Ctrl-Alt-G grabs"
        );
        assert_eq!(
            title("", Some(5), true),
            "vx86 - 5 MIPS - Ctrl-Alt-G releases input"
        );
    }
}
