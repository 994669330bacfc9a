//! COM1 on the host terminal, as QEMU's `-serial stdio` / `-nographic`: the
//! terminal goes into raw mode (every key, Ctrl-C included, reaches the
//! guest; output keeps `\n` -> `\r\n`), and Ctrl-a starts an escape:
//! `Ctrl-a x` quits, `Ctrl-a h` prints help, `Ctrl-a Ctrl-a` sends one Ctrl-a.
//! When stdin is not a terminal (a pipe, a file) its bytes go to the guest
//! unchanged and no escapes apply.

use super::HostInput;
use crossbeam_channel::Sender;
use std::io::Read;

/// The escape character, Ctrl-a.
pub const ESCAPE: u8 = 0x01;

/// QEMU's escape help, printed for `Ctrl-a h`.
pub const HELP: &str =
    "\r\nC-a h    print this help\r\nC-a x    exit emulator\r\nC-a C-a  sends C-a\r\n";

/// Splits terminal input into guest bytes and escape commands.
#[derive(Default)]
pub struct EscapeParser {
    after_escape: bool,
}

/// What one chunk of terminal input means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub serial: Vec<u8>,
    pub quit: bool,
    pub help: bool,
}

impl EscapeParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Parsed {
        let mut p = Parsed::default();
        for &b in bytes {
            if self.after_escape {
                self.after_escape = false;
                match b {
                    b'x' | b'X' => {
                        p.quit = true;
                        return p;
                    }
                    b'h' | b'H' | b'?' => p.help = true,
                    ESCAPE => p.serial.push(ESCAPE),
                    // Unknown escapes are dropped, as QEMU does.
                    _ => {}
                }
            } else if b == ESCAPE {
                self.after_escape = true;
            } else {
                p.serial.push(b);
            }
        }
        p
    }
}

/// Puts the terminal into raw mode while alive; restores it on drop.
///
/// Unix: termios `cfmakeraw` on fd 0. Windows: the console input mode without
/// line editing, echo and Ctrl-C processing (so Ctrl-a and Ctrl-C arrive as
/// bytes 01h and 03h, as on a Unix terminal), and VT processing on the
/// output so the guest's escape sequences draw; both modes restored on drop.
pub struct RawTerminal {
    #[cfg(unix)]
    saved: Option<libc::termios>,
    /// The console input and output modes before raw mode.
    #[cfg(windows)]
    saved: Option<(u32, Option<u32>)>,
}

#[cfg(windows)]
mod console {
    use winapi::um::consoleapi::{GetConsoleMode, SetConsoleMode};
    use winapi::um::processenv::GetStdHandle;
    use winapi::um::winbase::{STD_INPUT_HANDLE, STD_OUTPUT_HANDLE};
    use winapi::um::wincon::{
        ENABLE_ECHO_INPUT, ENABLE_LINE_INPUT, ENABLE_PROCESSED_INPUT,
        ENABLE_VIRTUAL_TERMINAL_INPUT, ENABLE_VIRTUAL_TERMINAL_PROCESSING,
    };

    fn mode(which: u32) -> Option<u32> {
        let mut m = 0u32;
        // SAFETY: GetStdHandle has no preconditions; GetConsoleMode writes one
        // u32 through a valid pointer and fails (0) for a non-console handle.
        unsafe {
            let h = GetStdHandle(which);
            (GetConsoleMode(h, &mut m) != 0).then_some(m)
        }
    }

    fn set(which: u32, m: u32) -> bool {
        // SAFETY: SetConsoleMode on the process's own standard handle.
        unsafe { SetConsoleMode(GetStdHandle(which), m) != 0 }
    }

    /// Raw input (and VT output where the console supports it); `None` when
    /// stdin is not a console (a pipe, a file).
    pub fn enable() -> Option<(u32, Option<u32>)> {
        let input = mode(STD_INPUT_HANDLE)?;
        let raw = (input & !(ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT | ENABLE_PROCESSED_INPUT))
            | ENABLE_VIRTUAL_TERMINAL_INPUT;
        // Older consoles refuse VT input: raw without it still gives bytes.
        if !set(STD_INPUT_HANDLE, raw)
            && !set(STD_INPUT_HANDLE, raw & !ENABLE_VIRTUAL_TERMINAL_INPUT)
        {
            return None;
        }
        let output = mode(STD_OUTPUT_HANDLE);
        if let Some(o) = output {
            set(STD_OUTPUT_HANDLE, o | ENABLE_VIRTUAL_TERMINAL_PROCESSING);
        }
        Some((input, output))
    }

    pub fn restore((input, output): (u32, Option<u32>)) {
        set(STD_INPUT_HANDLE, input);
        if let Some(o) = output {
            set(STD_OUTPUT_HANDLE, o);
        }
    }
}

impl RawTerminal {
    /// Raw mode on stdin if it is a terminal; a no-op otherwise.
    pub fn enable() -> RawTerminal {
        #[cfg(unix)]
        {
            // SAFETY: tcgetattr/tcsetattr on fd 0 with a properly sized,
            // zero-initialised termios; failure leaves the terminal untouched.
            unsafe {
                if libc::isatty(0) != 1 {
                    return RawTerminal { saved: None };
                }
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) != 0 {
                    return RawTerminal { saved: None };
                }
                let saved = t;
                libc::cfmakeraw(&mut t);
                // Keep output post-processing so guest "\n" still returns the carriage.
                t.c_oflag |= libc::OPOST | libc::ONLCR;
                if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                    return RawTerminal { saved: None };
                }
                RawTerminal { saved: Some(saved) }
            }
        }
        #[cfg(windows)]
        {
            RawTerminal {
                saved: console::enable(),
            }
        }
        #[cfg(not(any(unix, windows)))]
        RawTerminal {}
    }

    /// A guard that changes nothing (serial not on the terminal).
    pub fn disabled() -> RawTerminal {
        #[cfg(any(unix, windows))]
        {
            RawTerminal { saved: None }
        }
        #[cfg(not(any(unix, windows)))]
        RawTerminal {}
    }

    pub fn is_raw(&self) -> bool {
        #[cfg(any(unix, windows))]
        {
            self.saved.is_some()
        }
        #[cfg(not(any(unix, windows)))]
        false
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        #[cfg(windows)]
        if let Some(m) = self.saved {
            console::restore(m);
        }
        #[cfg(unix)]
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read by `enable` on the same fd.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// Starts the thread that reads stdin and sends it to the machine. `escapes`
/// turns on Ctrl-a handling (interactive terminals). EOF ends the thread but
/// not the run: a guest keeps running after its scripted input is consumed.
pub fn spawn_stdin_reader(tx: Sender<HostInput>, escapes: bool) {
    let _ = std::thread::Builder::new()
        .name("vx86-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            let mut parser = EscapeParser::default();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = buf.get(..n).unwrap_or(&[]);
                if !escapes {
                    if tx.send(HostInput::Serial(chunk.to_vec())).is_err() {
                        return;
                    }
                    continue;
                }
                let p = parser.feed(chunk);
                if p.help {
                    eprint!("{HELP}");
                }
                if !p.serial.is_empty() && tx.send(HostInput::Serial(p.serial)).is_err() {
                    return;
                }
                if p.quit {
                    let _ = tx.send(HostInput::Quit);
                    return;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_a_x_quits_and_earlier_bytes_still_reach_the_guest() {
        let mut p = EscapeParser::default();
        let r = p.feed(b"ls\r\x01x more");
        assert_eq!(r.serial, b"ls\r");
        assert!(r.quit);
    }

    #[test]
    fn ctrl_a_ctrl_a_sends_one_ctrl_a_and_escape_spans_chunks() {
        let mut p = EscapeParser::default();
        assert_eq!(p.feed(b"a\x01").serial, b"a");
        let r = p.feed(b"\x01b");
        assert_eq!(r.serial, b"\x01b");
        assert!(!r.quit);
        let r = p.feed(b"\x01");
        assert!(r.serial.is_empty() && !r.quit);
        assert!(p.feed(b"x").quit);
    }

    #[test]
    fn ctrl_a_h_asks_for_help_and_unknown_escapes_are_dropped() {
        let mut p = EscapeParser::default();
        let r = p.feed(b"\x01h\x01zq");
        assert!(r.help);
        assert_eq!(r.serial, b"q");
        // Ctrl-C is a guest byte, not a signal.
        assert_eq!(p.feed(b"\x03").serial, b"\x03");
    }
}
