//! QEMU's monitors: the human monitor (HMP, `-monitor`, `Ctrl-a c` on the
//! `-nographic` console) and the machine protocol (QMP, `-qmp`), so people and
//! the tools that drive QEMU can drive vx86.
//!
//! Sockets and stdin are served on their own threads ([`server`]); each
//! command goes to the machine thread over a channel as a [`Request`] and is
//! executed there between two CPU slices ([`service`]), where the machine's
//! state is consistent. A running machine with no pending command pays one
//! `try_recv` on an empty channel per slice. While the machine is stopped
//! (`stop`), the loop blocks on the channel instead of running the CPU, and
//! the virtual clock does not advance (QEMU's `QEMU_CLOCK_VIRTUAL` stops too).

mod hmp;
mod keys;
mod memory;
pub mod qmp;
mod registers;
pub mod server;

use crate::machine::{Machine, RunExit};
use crossbeam_channel::{Receiver, Sender};
use std::time::{Duration, Instant};

/// A command for the machine thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// One HMP command line (`info status`, `x /4xw 0x1000`, ...).
    Line(String),
    /// QMP `query-status`.
    Status,
    Stop,
    Cont,
    Quit,
    SystemReset,
    /// `system_powerdown`: the ACPI power button.
    SystemPowerdown,
    /// `device_add` with its option string (`virtio-blk-pci,drive=ID,...`).
    DeviceAdd(String),
    /// `device_del` of a device id.
    DeviceDel(String),
    /// QMP `screendump`: file name and format (`png` or `ppm`).
    Screendump(String, Option<String>),
}

/// A command and where its answer goes.
pub struct Request {
    pub cmd: Command,
    pub reply: Sender<Reply>,
}

/// The answer to one [`Request`].
#[derive(Debug)]
pub struct Reply {
    /// HMP text (`\n` line ends; the transports convert).
    pub text: String,
    /// The command failed (QMP answers with an error object).
    pub error: bool,
    /// Whether the machine runs after the command.
    pub running: bool,
    /// The machine quits after this reply: the connection acknowledges that
    /// the answer was written, so the client sees it before vx86 exits.
    pub ack: Option<Sender<()>>,
}

/// Static descriptions the monitor shows that the machine does not keep
/// (`info block`, `info network`): built from the command line.
#[derive(Clone, Debug, Default)]
pub struct Info {
    /// `info block` text.
    pub block: String,
    /// `info network` text.
    pub network: String,
    /// Every drive by its QEMU name, for `eject` and `change`.
    pub drives: Vec<BlockDrive>,
    /// `--snapshot-dir`: where `savevm`/`loadvm` names are relative to, and
    /// what `info snapshots` lists.
    pub snapshot_dir: std::path::PathBuf,
}

/// A drive as the monitor names it (`ide0-hd0`, `ide1-cd0`, `virtio0`).
#[derive(Clone, Debug, Default)]
pub struct BlockDrive {
    pub name: String,
    /// A CD-ROM's IDE position (0-3); `None` for a fixed disk, which QEMU's
    /// `eject` and `change` refuse as not removable.
    pub cd_index: Option<u8>,
    /// The disc's file (empty for none) and format, for `info block`.
    pub file: String,
    pub format: String,
}

/// The machine side of the monitors: the command channel and the run state.
pub struct Monitor {
    rx: Receiver<Request>,
    /// Stopped by `stop` (QEMU's "paused").
    paused: bool,
    /// When the machine stopped (to hold the host-time clock still).
    paused_at: Option<Instant>,
    /// Until a first client connects (QEMU's `server` without `nowait`), the
    /// machine does not start.
    first_client: Option<Receiver<()>>,
    info: Info,
    /// Last `x`/`xp` format and unit size, as QEMU remembers them.
    last_format: u8,
    last_size: u8,
}

/// How long a stopped machine waits for a command before it looks at host
/// input (Ctrl-a x, a signal) again.
const PAUSED_POLL: Duration = Duration::from_millis(10);
/// How long the machine waits for a quitting client to receive its answer.
const QUIT_ACK_WAIT: Duration = Duration::from_secs(1);

impl Monitor {
    pub fn new(rx: Receiver<Request>, info: Info, first_client: Option<Receiver<()>>) -> Monitor {
        Monitor {
            rx,
            paused: false,
            paused_at: None,
            first_client,
            info,
            last_format: b'x',
            last_size: 4,
        }
    }

    /// True while stopped (`stop`).
    pub fn paused(&self) -> bool {
        self.paused
    }
}

/// Runs pending monitor commands; called by the run loop once per slice.
/// While the machine is stopped it does not return until `cont`, `quit` or
/// another reason to end the run; `Some` ends the run.
pub fn service(m: &mut Machine) -> Option<RunExit> {
    let mut mon = m.monitor.take()?;
    let r = service_with(m, &mut mon);
    m.monitor = Some(mon);
    r
}

fn service_with(m: &mut Machine, mon: &mut Monitor) -> Option<RunExit> {
    if let Some(first) = mon.first_client.take() {
        // QEMU's `server,wait`: the guest starts when a client connects.
        loop {
            match first.recv_timeout(PAUSED_POLL) {
                Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if quit_requested(m) {
                        return Some(RunExit::Quit);
                    }
                }
            }
        }
        restart_clock_after(m, Instant::now());
    }
    loop {
        let req = if mon.paused {
            match mon.rx.recv_timeout(PAUSED_POLL) {
                Ok(r) => Some(r),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    // No front end can ever send `cont`: keep waiting for quit.
                    std::thread::sleep(PAUSED_POLL);
                    None
                }
            }
        } else {
            mon.rx.try_recv().ok()
        };
        match req {
            Some(req) => {
                let (reply, exit) = hmp::execute(m, mon, req.cmd);
                let quitting = exit.is_some();
                let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
                let reply = Reply {
                    ack: quitting.then_some(ack_tx),
                    running: !mon.paused,
                    ..reply
                };
                let sent = req.reply.send(reply).is_ok();
                if let Some(e) = exit {
                    if sent {
                        let _ = ack_rx.recv_timeout(QUIT_ACK_WAIT);
                    }
                    return Some(e);
                }
            }
            None if !mon.paused => return None,
            None => {
                if quit_requested(m) {
                    return Some(RunExit::Quit);
                }
            }
        }
    }
}

/// Whether the user asked to quit by other means while the machine is
/// stopped; host input is still taken (serial bytes queue, keys reach the
/// keyboard, a window gets frames).
fn quit_requested(m: &mut Machine) -> bool {
    m.quit.load(std::sync::atomic::Ordering::Relaxed)
        || crate::frontend::signal_quit()
        || m.poll_host()
}

/// Stops the machine: the CPU no longer runs and guest time stands still.
fn pause(mon: &mut Monitor) {
    if !mon.paused {
        mon.paused = true;
        mon.paused_at = Some(Instant::now());
    }
}

/// Resumes the machine; in host time, the stopped stretch is taken out of
/// the guest's clock.
fn resume(m: &mut Machine, mon: &mut Monitor) {
    if let Some(at) = mon.paused_at.take() {
        restart_clock_after(m, at);
    }
    mon.paused = false;
}

/// Moves the host-time clock forward by the host time since `since`, so that
/// guest time does not count it.
fn restart_clock_after(m: &mut Machine, since: Instant) {
    let d = since.elapsed();
    m.plat.clock.hold(d);
    m.cpu.clock = m.plat.clock;
    m.hold_host_timer(d);
}

/// QEMU's names for the drives of the command line, in attachment order:
/// `ide<bus>-hd<unit>` (or `-cd<unit>` for a CD-ROM), `virtio<n>`, or the id;
/// with the IDE position (0-3) of an IDE drive.
fn drive_names(drives: &[crate::block::drive_spec::DriveSpec]) -> Vec<(String, Option<u8>)> {
    use crate::block::drive_spec::Interface;
    let mut next_ide = 0u8;
    let mut next_virtio = 0u8;
    drives
        .iter()
        .map(|d| match d.interface {
            Interface::Ide => {
                let i = d.index.unwrap_or_else(|| {
                    let i = next_ide;
                    next_ide += 1;
                    i
                });
                let kind = if d.cdrom { "cd" } else { "hd" };
                (format!("ide{}-{kind}{}", i / 2, i % 2), Some(i))
            }
            Interface::Virtio => {
                let n = next_virtio;
                next_virtio += 1;
                (format!("virtio{n}"), None)
            }
            Interface::None => (d.id.clone().unwrap_or_else(|| "none".into()), None),
        })
        .collect()
}

fn format_name(d: &crate::block::drive_spec::DriveSpec) -> String {
    match d.format {
        Some(f) => format!("{f:?}").to_ascii_lowercase(),
        None => "probed".into(),
    }
}

/// `info block` text for the fixed drives of the command line, QEMU's layout
/// (`ide0-hd0: FILE (raw)`), in attachment order. CD-ROM drives change at
/// run time (`eject`, `change`): [`cdrom_block_info`] shows them.
pub fn block_info(drives: &[crate::block::drive_spec::DriveSpec], snapshot: bool) -> String {
    let mut out = String::new();
    for (d, (name, _)) in drives.iter().zip(drive_names(drives)) {
        if d.cdrom {
            continue;
        }
        let fmt = format_name(d);
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{name}: {} ({fmt}", d.file.display()));
        if d.read_only {
            out.push_str(", read-only");
        }
        out.push_str(")\n");
        out.push_str(&format!("    Cache mode:       {:?}\n", d.cache).to_ascii_lowercase());
        if d.snapshot || snapshot {
            out.push_str("    Snapshot:         writes kept in memory (-snapshot)\n");
        }
    }
    out
}

/// The drives of the command line by name, for [`Info::drives`].
pub fn block_drives(drives: &[crate::block::drive_spec::DriveSpec]) -> Vec<BlockDrive> {
    drives
        .iter()
        .zip(drive_names(drives))
        .map(|(d, (name, ide))| BlockDrive {
            name,
            cd_index: ide.filter(|_| d.cdrom),
            file: d.file.display().to_string(),
            format: if d.cdrom && d.format.is_none() {
                cd_format(&d.file).into()
            } else {
                format_name(d)
            },
        })
        .collect()
}

/// A disc's format as `-cdrom` and `change` open it: qcow2 when it is one,
/// else raw.
fn cd_format(file: &std::path::Path) -> &'static str {
    match crate::block::probe::probe(file) {
        Some(crate::block::probe::ImageFormat::Qcow2) => "qcow2",
        _ => "raw",
    }
}

/// `info block` entry of a CD-ROM drive in its current state, QEMU's layout.
fn cdrom_block_info(d: &BlockDrive, cd: &crate::devices::atapi::Cdrom) -> String {
    let mut out = if cd.has_medium() && !d.file.is_empty() {
        format!("{}: {} ({}, read-only)\n", d.name, d.file, d.format)
    } else {
        format!("{}: [not inserted]\n", d.name)
    };
    out.push_str(&format!(
        "    Removable device: {}locked, tray {}\n",
        if cd.locked() { "" } else { "not " },
        if cd.tray_open() { "open" } else { "closed" }
    ));
    out
}

/// `info network` text for the cards of the command line, QEMU's layout
/// (the card, then its user-mode backend under it).
pub fn network_info(nics: &[crate::config::NicPlan]) -> String {
    let mut out = String::new();
    for (i, n) in nics.iter().enumerate() {
        let m = n.mac;
        out.push_str(&format!(
            "virtio-net-pci.{i}: index=0,type=nic,model=virtio-net-pci,macaddr={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
            m[0], m[1], m[2], m[3], m[4], m[5]
        ));
        out.push_str(&format!(
            " \\ net{i}: index=0,type=user,net={},restrict={}\n",
            n.user.net,
            if n.user.restrict { "on" } else { "off" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::drive_spec::DriveSpec;

    #[test]
    fn drives_get_qemus_names_and_cd_positions() {
        let drives = [
            DriveSpec::parse("file=a.img,format=raw").unwrap(),
            DriveSpec::cdrom("x.iso"),
            DriveSpec::parse("file=b.img,if=virtio").unwrap(),
            DriveSpec::parse("file=c.img,format=raw").unwrap(),
        ];
        let d = block_drives(&drives);
        let names: Vec<_> = d.iter().map(|d| (d.name.as_str(), d.cd_index)).collect();
        assert_eq!(
            names,
            [
                ("ide0-hd0", None),
                ("ide1-cd0", Some(2)),
                ("virtio0", None),
                ("ide0-hd1", None)
            ]
        );
        // The static text leaves the CD-ROM to `info block`'s live entry.
        let text = block_info(&drives, false);
        assert!(text.starts_with("ide0-hd0: a.img (raw)\n"), "{text}");
        assert!(!text.contains("x.iso"), "{text}");
    }
}
