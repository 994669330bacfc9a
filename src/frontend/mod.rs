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

/// SIGINT and SIGTERM end the run cleanly (disks flushed, terminal restored).
/// In raw terminal mode Ctrl-C is a byte for the guest, not a signal.
pub fn install_signal_handlers() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
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
