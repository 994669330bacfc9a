//! COM1 on the host terminal, as QEMU's `-serial stdio` / `-nographic`: the
//! terminal goes into raw mode (every key, Ctrl-C included, reaches the
//! guest; output keeps `\n` -> `\r\n`), and Ctrl-a starts an escape:
//! `Ctrl-a x` quits, `Ctrl-a h` prints help, `Ctrl-a Ctrl-a` sends one Ctrl-a,
//! and with a monitor on the terminal (QEMU's `-nographic` mux) `Ctrl-a c`
//! switches the keyboard between the serial console and the monitor.
//! When stdin is not a terminal (a pipe, a file) its bytes go to the guest
//! unchanged and no escapes apply.

use super::HostInput;
use crossbeam_channel::Sender;
use std::io::{Read, Write};

/// The escape character, Ctrl-a.
pub const ESCAPE: u8 = 0x01;

/// QEMU's escape help, printed for `Ctrl-a h`.
pub const HELP: &str =
    "\r\nC-a h    print this help\r\nC-a x    exit emulator\r\nC-a C-a  sends C-a\r\n";

/// QEMU's help line for the monitor switch, printed when there is one.
pub const HELP_MONITOR: &str = "C-a c    switch between console and monitor\r\n";

/// Splits terminal input into guest bytes and escape commands.
#[derive(Default)]
pub struct EscapeParser {
    after_escape: bool,
    /// `Ctrl-a c` switches to a monitor (there is one on this terminal).
    pub monitor_available: bool,
    /// Keys go to the monitor, not the guest.
    in_monitor: bool,
}

/// What one chunk of terminal input means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub serial: Vec<u8>,
    pub quit: bool,
    pub help: bool,
    /// Bytes typed while the monitor has the keyboard.
    pub monitor: Vec<u8>,
    /// `Ctrl-a c` switched to the monitor (`Some(true)`) or back.
    pub switched: Option<bool>,
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
                    b'c' | b'C' if self.monitor_available => {
                        self.in_monitor = !self.in_monitor;
                        p.switched = Some(self.in_monitor);
                    }
                    ESCAPE if self.in_monitor => {}
                    ESCAPE => p.serial.push(ESCAPE),
                    // Unknown escapes are dropped, as QEMU does.
                    _ => {}
                }
            } else if b == ESCAPE {
                self.after_escape = true;
            } else if self.in_monitor {
                p.monitor.push(b);
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

/// The monitor's side of the terminal after `Ctrl-a c`: a line editor (the
/// raw terminal does not echo) that hands each line to the machine and
/// prints the answer.
struct MonitorConsole {
    tx: Sender<crate::monitor::Request>,
    line: Vec<u8>,
    greeted: bool,
}

impl MonitorConsole {
    fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn switched(&mut self, to_monitor: bool) {
        if !to_monitor {
            self.print("\n");
            return;
        }
        let mut text = String::from("\n");
        if !std::mem::replace(&mut self.greeted, true) {
            text.push_str(&crate::monitor::server::banner().replace("\r\n", "\n"));
        }
        text.push_str(crate::monitor::server::PROMPT);
        text.push_str(&String::from_utf8_lossy(&self.line));
        self.print(&text);
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' | b'\n' => {
                    let line = String::from_utf8_lossy(&self.line).into_owned();
                    self.line.clear();
                    // The raw terminal keeps output processing: `\n` is a
                    // new line there.
                    self.print("\n");
                    let cmd = crate::monitor::Command::Line(line);
                    let Some(reply) = crate::monitor::server::ask(&self.tx, cmd) else {
                        return;
                    };
                    self.print(&reply.text);
                    if let Some(a) = reply.ack {
                        let _ = a.send(());
                    }
                    self.print(crate::monitor::server::PROMPT);
                }
                0x7f | 0x08 if self.line.pop().is_some() => self.print("\x08 \x08"),
                0x20..=0x7e if self.line.len() < 4096 => {
                    self.line.push(b);
                    self.print(&char::from(b).to_string());
                }
                _ => {}
            }
        }
    }
}

/// Starts the thread that reads stdin and sends it to the machine. `escapes`
/// turns on Ctrl-a handling (interactive terminals); `monitor` adds `Ctrl-a
/// c` and the monitor behind it. EOF ends the thread but not the run: a
/// guest keeps running after its scripted input is consumed.
pub fn spawn_stdin_reader(
    tx: Sender<HostInput>,
    escapes: bool,
    monitor: Option<Sender<crate::monitor::Request>>,
) {
    #[cfg(windows)]
    if escapes {
        let _ = super::RAW_CTRL_C.set(tx.clone());
    }
    let _ = std::thread::Builder::new()
        .name("vx86-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            let mut parser = EscapeParser {
                monitor_available: monitor.is_some(),
                ..Default::default()
            };
            let mut console = monitor.map(|tx| MonitorConsole {
                tx,
                line: Vec::new(),
                greeted: false,
            });
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
                    if parser.monitor_available {
                        eprint!("{HELP_MONITOR}");
                    }
                }
                if !p.serial.is_empty() && tx.send(HostInput::Serial(p.serial)).is_err() {
                    return;
                }
                if let Some(c) = console.as_mut() {
                    if let Some(to) = p.switched {
                        c.switched(to);
                    }
                    c.feed(&p.monitor);
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
    fn ctrl_a_c_switches_keys_to_the_monitor_and_back() {
        let mut p = EscapeParser {
            monitor_available: true,
            ..Default::default()
        };
        let r = p.feed(b"ls\x01cinfo status\r\x01\x01");
        assert_eq!(r.serial, b"ls");
        assert_eq!(r.monitor, b"info status\r");
        assert_eq!(r.switched, Some(true));
        let r = p.feed(b"\x01cpwd\x01x");
        assert_eq!(r.switched, Some(false));
        assert_eq!(r.serial, b"pwd");
        assert!(r.quit);
        // Without a monitor, Ctrl-a c is an unknown escape, as in QEMU.
        let mut p = EscapeParser::default();
        let r = p.feed(b"\x01cab");
        assert_eq!((r.serial.as_slice(), r.switched), (&b"ab"[..], None));
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
