//! Frontends: what connects a running machine to the user. The machine runs
//! on its own thread and owns all emulation state; a frontend talks to it only
//! through the crossbeam channels of a [`HostLink`] (STYLE.md: data flows one
//! way, the window owns the main thread because macOS requires it).
//!
//! * [`stdio`]: COM1 on the terminal (raw mode, QEMU's Ctrl-a escapes);
//! * [`window`] (feature `window`): the VGA frame in a minifb window that
//!   follows the guest's mode, host keys turned into PS/2 key events, QEMU's
//!   Ctrl-Alt-G / Ctrl-Alt-F, what runs and its MIPS in the title bar;
//! * headless (`-display none`, `-nographic`): no window, serial as chosen.

use crate::devices::i8042::Key;
use crate::devices::vga::Frame;
use crossbeam_channel::{Receiver, Sender};

pub mod stdio;
#[cfg(feature = "window")]
pub mod window;

/// Events from the host to the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostInput {
    /// Bytes typed for COM1.
    Serial(Vec<u8>),
    /// A key on the PS/2 keyboard pressed (true) or released (false).
    Key(Key, bool),
    /// End the run (Ctrl-a x, window closed, SIGINT/SIGTERM).
    Quit,
}

/// What the machine shows the frontend.
#[derive(Clone, Debug)]
pub enum DisplayUpdate {
    /// A new screen image (sent only when something visible changed).
    Frame(Frame),
    /// Guest speed over the last second, for the title bar.
    Mips(f64),
    /// The machine stopped; the string says why.
    Stopped(String),
}

/// What the window title names as the running guest: the `-kernel` file,
/// else the first disk image, else the `-bios` image, else the built-in
/// default guest. File names only (no directories).
pub fn guest_name(
    kernel: Option<&std::path::Path>,
    disks: &[&std::path::Path],
    bios: Option<&std::path::Path>,
) -> String {
    let name = |p: &std::path::Path| {
        p.file_name()
            .unwrap_or(p.as_os_str())
            .to_string_lossy()
            .into_owned()
    };
    kernel
        .or(disks.first().copied())
        .or(bios)
        .map(name)
        .unwrap_or_else(|| "built-in guest".to_string())
}

/// The machine's ends of the frontend channels.
#[derive(Clone, Debug)]
pub struct HostLink {
    pub input: Option<Receiver<HostInput>>,
    pub display: Option<Sender<DisplayUpdate>>,
}

/// A connected pair: the machine's [`HostLink`] and the frontend's ends.
pub struct Channels {
    pub link: HostLink,
    pub input_tx: Sender<HostInput>,
    pub display_rx: Option<Receiver<DisplayUpdate>>,
}

/// Makes the channels; `display` adds the frame channel for a window. Frames
/// are bounded (a slow window drops frames, never slows the guest).
pub fn channels(display: bool) -> Channels {
    let (input_tx, input_rx) = crossbeam_channel::unbounded();
    let (display_tx, display_rx) = if display {
        let (t, r) = crossbeam_channel::bounded(4);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    Channels {
        link: HostLink {
            input: Some(input_rx),
            display: display_tx,
        },
        input_tx,
        display_rx,
    }
}

/// Set by SIGINT/SIGTERM (and checked by the run loop between slices), so a
/// killed vx86 still flushes disks and restores the terminal.
static SIGNAL_QUIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once SIGINT or SIGTERM arrived.
pub fn signal_quit() -> bool {
    SIGNAL_QUIT.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    SIGNAL_QUIT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// SIGINT and SIGTERM end the run cleanly (disks flushed, terminal restored);
/// on Windows the console's control events do (see `on_console_ctrl`).
/// In raw terminal mode Ctrl-C is a byte for the guest, not a signal.
pub fn install_signal_handlers() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
    #[cfg(windows)]
    // SAFETY: registers a handler routine with the signature the console
    // calls (PHANDLER_ROUTINE); it touches only an atomic and a channel.
    unsafe {
        winapi::um::consoleapi::SetConsoleCtrlHandler(Some(on_console_ctrl), 1);
    }
}

/// Where Ctrl-C goes while COM1 has a raw console: the guest, as the byte
/// 03h. Set by the stdin reader when it runs the raw console.
#[cfg(windows)]
pub(crate) static RAW_CTRL_C: std::sync::OnceLock<Sender<HostInput>> = std::sync::OnceLock::new();

/// The console's control events, Windows' SIGINT/SIGTERM. A console with
/// ENABLE_PROCESSED_INPUT off reports Ctrl-C as the input byte 03h and never
/// calls this for it; Wine on a Unix terminal still turns the key into
/// CTRL_C_EVENT, so with a raw console the byte goes to the guest from here
/// (tests/console.rs under Wine). Otherwise Ctrl-C, Ctrl-Break and closing
/// the console end the run cleanly, disks flushed.
#[cfg(windows)]
unsafe extern "system" fn on_console_ctrl(kind: u32) -> i32 {
    use winapi::um::wincon::{CTRL_BREAK_EVENT, CTRL_C_EVENT};
    if kind == CTRL_C_EVENT {
        if let Some(tx) = RAW_CTRL_C.get() {
            let _ = tx.send(HostInput::Serial(vec![0x03]));
            return 1;
        }
    }
    SIGNAL_QUIT.store(true, std::sync::atomic::Ordering::Relaxed);
    if kind != CTRL_C_EVENT && kind != CTRL_BREAK_EVENT {
        // Closing the console (or logoff, shutdown) ends the process when
        // the handler returns: give the run loop time to flush and exit.
        std::thread::sleep(std::time::Duration::from_secs(4));
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn guest_name_is_the_kernel_then_the_disk_then_the_bios() {
        let k = Path::new("/boot/vmlinuz-6.1");
        let d = Path::new("images/disk.img");
        let b = Path::new("/x/seabios.bin");
        assert_eq!(guest_name(Some(k), &[d], Some(b)), "vmlinuz-6.1");
        assert_eq!(guest_name(None, &[d], Some(b)), "disk.img");
        assert_eq!(guest_name(None, &[], Some(b)), "seabios.bin");
        assert_eq!(guest_name(None, &[], None), "built-in guest");
    }
}
