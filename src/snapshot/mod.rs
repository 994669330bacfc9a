//! Whole-machine snapshots: the CPU's architectural state, every device's
//! state, guest RAM and the `-snapshot` disk overlays in one file, which a new
//! process loads to continue the run exactly where it stopped (deterministic
//! time makes that checkable to the byte, see `tests/snapshot.rs`).
//!
//! The file, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `VX86SNAP` |
//! | 8 | 4 | format version ([`FORMAT_VERSION`]) |
//! | 12 | 4 | CRC-32 (IEEE) of everything after offset 24 |
//! | 16 | 8 | length of everything after offset 24 |
//! | 24 | 4 | summary length s |
//! | 28 | s | [`Summary`] in postcard encoding, the writer first |
//! | 28+s | n | payload: [`Snapshot`] in postcard encoding |
//!
//! The header and the summary's first field (the vx86 that wrote the file)
//! keep this layout in every later version, so a vx86 that does not read a
//! file's version can still say which vx86 wrote it; `info snapshots` lists
//! files from their summaries without reading the rest.
//!
//! The payload is serde data in postcard's wire format: a published,
//! versioned specification (postcard 1.x) that fixes byte order and integer
//! encodings independently of the host, so a file written on x86-64 Linux
//! reads the same on ARM or Windows; it needs no schema beyond the Rust
//! types, and is compact (varints). Caches (TLB, block and jump caches) are
//! not saved: a load flushes them and the run loop rebuilds them. RAM is
//! stored in 1 MiB chunks, zero pages skipped, the rest LZ4-compressed.

mod codec;
mod file;
mod machine;
mod ram;

pub use codec::{array, boxed_bytes, bytes, decode, encode, StateError};
pub use file::{read_file, read_summary, write_file, FORMAT_VERSION, MAGIC};
pub use ram::RamImage;

use crate::cpu::saved::CpuState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a snapshot could not be written or loaded. Each message names the
/// file and the problem on one line.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: cannot read snapshot: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}: cannot write snapshot: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("{}: not a vx86 snapshot (no VX86SNAP magic)", path.display())]
    NotSnapshot { path: PathBuf },
    #[error(
        "{}: snapshot format version {version}{writer} is newer than this vx86 reads (up to {FORMAT_VERSION})",
        path.display()
    )]
    Newer {
        path: PathBuf,
        version: u32,
        /// " (written by vx86 X)" or empty.
        writer: String,
    },
    #[error(
        "{}: snapshot format version {version}{writer} is older than this vx86 reads \
         ({FORMAT_VERSION}); load it with the vx86 that wrote it",
        path.display()
    )]
    Older {
        path: PathBuf,
        version: u32,
        writer: String,
    },
    #[error("{}: snapshot is truncated ({have} of {want} bytes)", path.display())]
    Truncated { path: PathBuf, have: u64, want: u64 },
    #[error("{}: snapshot is corrupted (checksum mismatch)", path.display())]
    Checksum { path: PathBuf },
    #[error("{}: snapshot does not decode: {err}", path.display())]
    Decode { path: PathBuf, err: StateError },
    #[error("{}: cannot save: {err}", path.display())]
    Save { path: PathBuf, err: StateError },
    #[error("{}: {msg}", path.display())]
    Conflict { path: PathBuf, msg: String },
}

/// What `info snapshots` shows of a snapshot file, kept in its header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The vx86 that wrote it (`vx86 0.1.0`); first, at a fixed place in
    /// every format version (see the module doc).
    pub writer: String,
    /// When it was taken: seconds since the Unix epoch (UTC).
    pub taken: u64,
    /// Guest time at the save, in nanoseconds.
    pub guest_ns: u64,
    /// Instructions retired.
    pub icount: u64,
    /// Guest RAM in bytes, and `isapc`/`pc`.
    pub ram: u64,
    pub machine: String,
}

/// One drive as the snapshot saw it: where its image was and what it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveRecord {
    /// `ide0-1` style (the IDE channel and unit), or `virtio0` style (the
    /// n-th virtio-blk-pci disk, QEMU's name for `if=virtio` drives).
    pub slot: String,
    /// The image file; for a CD-ROM drive, the disc in it (empty for none).
    pub path: String,
    /// The image file's size in bytes.
    pub size: u64,
    /// [`fingerprint`] of the image file.
    pub fingerprint: u32,
    /// `raw` or `qcow2`: how the file is read.
    pub format: String,
    /// The guest may not write the disk (`readonly=on`).
    pub read_only: bool,
    /// Writes went to an in-memory overlay (`-snapshot`), saved in the file.
    pub overlay: bool,
    /// A CD-ROM drive: its disc is the medium in it when the snapshot was
    /// taken (the monitor's `change` may have swapped it since the start).
    pub cdrom: bool,
}

/// The configuration a snapshot was taken with: a load on a machine built
/// differently is refused, naming the difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConfig {
    pub ram: u64,
    /// `isapc` or `pc`.
    pub machine: String,
    /// `-icount shift=0,sleep=off` or `host`.
    pub clock: String,
    /// CPUID feature words removed with `-cpu qemu64,-name`.
    pub features_off: Vec<u32>,
    /// `-cpu qemu64,+apic`: the machine has a local APIC (and on `-M pc` an
    /// I/O APIC), whose state is in the snapshot; a machine without one has
    /// nowhere to put it, and one with it would start from its reset state.
    pub apic: bool,
    /// `-device isa-debugcon,iobase=P` ports.
    pub debugcons: Vec<u16>,
    /// `-device isa-debug-exit` (iobase, iosize) if present.
    pub debug_exit: Option<(u16, u8)>,
    pub drives: Vec<DriveRecord>,
    /// The network cards, in PCI order.
    pub nics: Vec<NicRecord>,
}

/// One network card as the snapshot saw it: its MAC and the network behind
/// it (`-netdev user` options and `hostfwd` rules, canonical; see
/// `crate::net::spec::UserConfig::canonical`). A load needs the same: the
/// guest's address and routes belong to that network, and the forwards the
/// loading run listens on are those the rules open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicRecord {
    /// `virtio-net-pci`.
    pub model: String,
    /// `52:54:00:12:34:56`.
    pub mac: String,
    pub netdev: String,
}

impl NicRecord {
    fn describe(&self) -> String {
        format!("{},mac={} on {}", self.model, self.mac, self.netdev)
    }
}

impl SavedConfig {
    /// The first difference between the snapshot's configuration (`self`)
    /// and this run's, as "the snapshot has X, this run has Y".
    pub fn difference(&self, now: &SavedConfig) -> Option<String> {
        let d = |what: &str, a: String, b: String| {
            Some(format!(
                "snapshot was taken with {what} {a}, this run has {what} {b}"
            ))
        };
        if self.ram != now.ram {
            return d("-m", mib(self.ram), mib(now.ram));
        }
        if self.machine != now.machine {
            return d("-M", self.machine.clone(), now.machine.clone());
        }
        if self.clock != now.clock {
            return d("clock", self.clock.clone(), now.clock.clone());
        }
        if self.apic != now.apic {
            return d("-cpu", cpu_model(self.apic), cpu_model(now.apic));
        }
        if self.features_off != now.features_off {
            return d(
                "CPU features removed",
                format!("{:x?}", self.features_off),
                format!("{:x?}", now.features_off),
            );
        }
        if self.debugcons != now.debugcons {
            return d(
                "isa-debugcon ports",
                format!("{:x?}", self.debugcons),
                format!("{:x?}", now.debugcons),
            );
        }
        if self.debug_exit != now.debug_exit {
            return d(
                "isa-debug-exit",
                format!("{:x?}", self.debug_exit),
                format!("{:x?}", now.debug_exit),
            );
        }
        for a in &self.drives {
            let Some(b) = now.drives.iter().find(|b| b.slot == a.slot) else {
                return Some(format!(
                    "snapshot has drive {} ({}), this run has none there",
                    a.slot, a.path
                ));
            };
            if a.cdrom != b.cdrom {
                let kind = |cd: bool| if cd { "a CD-ROM drive" } else { "a disk" }.to_string();
                return d(&format!("drive {}", a.slot), kind(a.cdrom), kind(b.cdrom));
            }
            if a.path != b.path {
                let disc = |p: &str| {
                    if p.is_empty() {
                        "no disc".to_string()
                    } else {
                        p.to_string()
                    }
                };
                if a.cdrom {
                    return Some(format!(
                        "snapshot has {} in CD-ROM drive {}, this run has {}; start with that \
                         disc (-cdrom) or restore it with the monitor's change first",
                        disc(&a.path),
                        a.slot,
                        disc(&b.path)
                    ));
                }
                return d(&format!("drive {}", a.slot), a.path.clone(), b.path.clone());
            }
            if a.format != b.format {
                return d(
                    &format!("drive {} format", a.slot),
                    a.format.clone(),
                    b.format.clone(),
                );
            }
            if a.read_only != b.read_only {
                let ro = |r: bool| if r { "readonly=on" } else { "readonly=off" }.to_string();
                return d(
                    &format!("drive {}", a.slot),
                    ro(a.read_only),
                    ro(b.read_only),
                );
            }
            if a.overlay != b.overlay {
                return d(
                    &format!("drive {}", a.slot),
                    snapshot_mode(a.overlay),
                    snapshot_mode(b.overlay),
                );
            }
            if a.size != b.size || a.fingerprint != b.fingerprint {
                return Some(format!(
                    "{} {} changed since the snapshot was taken (size {} then, {} now; \
                     fingerprint {:08x} then, {:08x} now)",
                    if a.cdrom { "disc image" } else { "disk image" },
                    a.path,
                    a.size,
                    b.size,
                    a.fingerprint,
                    b.fingerprint
                ));
            }
        }
        if let Some(b) = now
            .drives
            .iter()
            .find(|b| !self.drives.iter().any(|a| a.slot == b.slot))
        {
            return Some(format!(
                "this run has drive {} ({}), the snapshot has none there",
                b.slot, b.path
            ));
        }
        for i in 0..self.nics.len().max(now.nics.len()) {
            match (self.nics.get(i), now.nics.get(i)) {
                (Some(a), Some(b)) if a != b => {
                    return d(&format!("network card {i}"), a.describe(), b.describe())
                }
                (Some(a), None) => {
                    return Some(format!(
                        "snapshot has network card {i} ({}), this run has none",
                        a.describe()
                    ))
                }
                (None, Some(b)) => {
                    return Some(format!(
                        "this run has network card {i} ({}), the snapshot has none",
                        b.describe()
                    ))
                }
                _ => {}
            }
        }
        None
    }
}

fn mib(b: u64) -> String {
    format!("{}M", b >> 20)
}

/// The `-cpu` model as far as the APIC goes.
fn cpu_model(apic: bool) -> String {
    if apic {
        "qemu64,+apic"
    } else {
        "qemu64 (no APIC)"
    }
    .to_string()
}

fn snapshot_mode(overlay: bool) -> String {
    if overlay {
        "-snapshot"
    } else {
        "writes to the image"
    }
    .to_string()
}

/// A `-snapshot` overlay's written sectors.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OverlayImage {
    pub slot: String,
    pub lbas: Vec<u64>,
    /// The sectors in `lbas` order, 512 bytes each, LZ4-compressed.
    #[serde(with = "bytes")]
    pub data: Vec<u8>,
}

/// Everything in a snapshot file's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The vx86 that wrote it (`vx86 0.1.0`), for messages.
    pub writer: String,
    pub config: SavedConfig,
    pub cpu: CpuState,
    /// The board's [`crate::platform::PlatformState`], encoded and LZ4-compressed (VGA
    /// memory is most of it, and mostly zero).
    #[serde(with = "bytes")]
    pub platform: Vec<u8>,
    /// Guest time at the save, in nanoseconds (host-time runs resume from it).
    pub guest_ns: u64,
    /// Instructions skipped while the guest idled (for `--stats`).
    pub idle_insns: u64,
    /// Host bytes queued for COM1 that the guest had not taken yet.
    #[serde(with = "bytes")]
    pub serial_in: Vec<u8>,
    /// The run loop's last input quantum (`Machine::input_due`): where the
    /// next bytes may enter, as in the run that saved.
    pub fed_quantum: u64,
    pub ram: RamImage,
    pub overlays: Vec<OverlayImage>,
}

/// A disk image's fingerprint: CRC-32 of the whole file up to 64 MiB; for
/// larger files, of its first and last MiB and 1024 4 KiB samples spread
/// evenly between (a full read of a multi-GiB image would dominate a load).
pub fn fingerprint(path: &Path) -> std::io::Result<(u64, u32)> {
    use std::io::{Read, Seek, SeekFrom};
    const FULL: u64 = 64 << 20;
    const END: u64 = 1 << 20;
    const SAMPLES: u64 = 1024;
    const SAMPLE: usize = 4096;
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut h = crc32fast::Hasher::new();
    h.update(&size.to_le_bytes());
    if size <= FULL {
        let mut buf = Vec::with_capacity(size as usize);
        f.read_to_end(&mut buf)?;
        h.update(&buf);
        return Ok((size, h.finalize()));
    }
    let mut read_at = |off: u64, len: usize, h: &mut crc32fast::Hasher| -> std::io::Result<()> {
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(off))?;
        f.read_exact(&mut buf)?;
        h.update(&buf);
        Ok(())
    };
    read_at(0, END as usize, &mut h)?;
    let span = size - 2 * END - SAMPLE as u64;
    for i in 0..SAMPLES {
        read_at(END + span / SAMPLES * i, SAMPLE, &mut h)?;
    }
    read_at(size - END, END as usize, &mut h)?;
    Ok((size, h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SavedConfig {
        SavedConfig {
            ram: 512 << 20,
            machine: "pc".into(),
            clock: "-icount shift=0,sleep=off,align=off".into(),
            features_off: Vec::new(),
            apic: false,
            debugcons: Vec::new(),
            debug_exit: None,
            drives: vec![DriveRecord {
                slot: "virtio0".into(),
                path: "/img/disk.qcow2".into(),
                size: 1 << 20,
                fingerprint: 0x1234_5678,
                format: "qcow2".into(),
                read_only: false,
                overlay: true,
                cdrom: false,
            }],
            nics: vec![NicRecord {
                model: "virtio-net-pci".into(),
                mac: "52:54:00:12:34:56".into(),
                netdev: "user,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,\
                         restrict=off"
                    .into(),
            }],
        }
    }

    /// Virtio disks and network cards are checked as IDE disks are: each
    /// difference is one line naming the drive or card.
    #[test]
    fn virtio_disks_and_network_cards_are_checked() {
        let saved = config();
        assert_eq!(saved.difference(&config()), None);
        let with = |f: &dyn Fn(&mut SavedConfig)| {
            let mut now = config();
            f(&mut now);
            saved.difference(&now).unwrap_or_default()
        };
        assert_eq!(
            with(&|c| c.drives[0].format = "raw".into()),
            "snapshot was taken with drive virtio0 format qcow2, this run has drive virtio0 \
             format raw"
        );
        assert_eq!(
            with(&|c| c.drives[0].read_only = true),
            "snapshot was taken with drive virtio0 readonly=off, this run has drive virtio0 \
             readonly=on"
        );
        assert_eq!(
            with(&|c| c.drives[0].overlay = false),
            "snapshot was taken with drive virtio0 -snapshot, this run has drive virtio0 \
             writes to the image"
        );
        assert!(with(&|c| c.drives[0].fingerprint = 1)
            .starts_with("disk image /img/disk.qcow2 changed since the snapshot was taken"));
        assert_eq!(
            with(&|c| c.drives.clear()),
            "snapshot has drive virtio0 (/img/disk.qcow2), this run has none there"
        );
        let fwd = ",hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80";
        let e = with(&|c| c.nics[0].netdev.push_str(fwd));
        assert!(
            e.starts_with("snapshot was taken with network card 0 virtio-net-pci,mac=52:54:00:12:34:56 on user,")
                && e.ends_with(&format!("restrict=off{fwd}")),
            "{e}"
        );
        assert_eq!(
            with(&|c| c.nics.clear()),
            "snapshot has network card 0 (virtio-net-pci,mac=52:54:00:12:34:56 on user,\
             net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,restrict=off), \
             this run has none"
        );
    }
}
