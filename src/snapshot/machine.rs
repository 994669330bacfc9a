//! Taking and loading a whole-machine snapshot (`--save-on-exit`,
//! `-loadvm`, the monitor's `savevm`/`loadvm`), and the state hash that
//! tells two runs' states apart (`--state-hash`).

use super::{
    fingerprint, read_file, write_file, DriveRecord, NicRecord, OverlayImage, RamImage,
    SavedConfig, Snapshot, SnapshotError, StateError, Summary,
};
use crate::block::{BlockDevice, SECTOR_SIZE};
use crate::machine::{Machine, MachineType};
use crate::time::ClockMode;
use std::path::Path;

impl Snapshot {
    /// The board's state (devices, PIC, APICs) the snapshot holds, decoded
    /// (for a restore, and for tests that check what a cut caught).
    pub fn platform_state(&self) -> Result<crate::platform::PlatformState, StateError> {
        let bytes = lz4_flex::block::decompress_size_prepended(&self.platform)
            .map_err(|e| StateError::Mismatch(format!("device state: {e}")))?;
        super::decode(&bytes)
    }
}

impl Machine {
    /// The configuration to record in (or check against) a snapshot:
    /// the board, the clock, each drive's image (a CD-ROM drive's disc)
    /// with its fingerprint, IDE and virtio disks alike, and each network
    /// card with the network behind it.
    pub fn snapshot_config(&mut self) -> Result<SavedConfig, std::io::Error> {
        let mut drives = Vec::new();
        let fingerprint_of = |path: &Path| {
            fingerprint(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        for ch in 0..2 {
            for unit in 0..2 {
                if let Some(cd) = self.ata(ch).and_then(|a| a.cdrom(unit)) {
                    let path = cd.medium_path().map(Path::to_path_buf);
                    let (size, fp) = match &path {
                        Some(p) => fingerprint_of(p)?,
                        None => (0, 0),
                    };
                    drives.push(DriveRecord {
                        slot: format!("ide{ch}-{unit}"),
                        path: path.map(|p| p.display().to_string()).unwrap_or_default(),
                        size,
                        fingerprint: fp,
                        format: "raw".into(),
                        read_only: true,
                        overlay: false,
                        cdrom: true,
                    });
                }
            }
        }
        for slot in self.disk_slots() {
            let Some(img) = self.disk_image(&slot) else {
                continue;
            };
            let Some(path) = img.host_path().map(Path::to_path_buf) else {
                continue;
            };
            let overlay = img.overlay_sectors().is_some();
            let (format, read_only) = (img.format().to_string(), img.read_only());
            let (size, fp) = fingerprint_of(&path)?;
            drives.push(DriveRecord {
                slot,
                path: path.display().to_string(),
                size,
                fingerprint: fp,
                format,
                read_only,
                overlay,
                cdrom: false,
            });
        }
        let mut nics = Vec::new();
        for n in 0.. {
            let Some(nic) = self.virtio_net(n) else {
                break;
            };
            let card = nic.device();
            nics.push(NicRecord {
                model: "virtio-net-pci".into(),
                mac: crate::net::wire::mac_text(card.mac()),
                netdev: card.backend().snapshot_config(),
            });
        }
        let clock = match self.cfg.clock {
            ClockMode::Host => "host".to_string(),
            ClockMode::Icount {
                shift,
                sleep,
                align,
            } => format!(
                "-icount shift={shift},sleep={},align={}",
                onoff(sleep),
                onoff(align)
            ),
        };
        Ok(SavedConfig {
            ram: self.cfg.ram,
            machine: match self.cfg.machine {
                MachineType::IsaPc => "isapc",
                MachineType::Pc => "pc",
            }
            .into(),
            clock,
            features_off: self.cfg.features.off.to_vec(),
            apic: self.cfg.features.apic,
            debugcons: self.cfg.debugcons.clone(),
            debug_exit: self
                .cfg
                .debug_exit
                .as_ref()
                .map(|d| (d.iobase(), d.iosize())),
            drives,
            nics,
        })
    }

    /// The disks with an image, by snapshot slot: `ide{ch}-{unit}` (not the
    /// CD-ROM drives), then `virtio{n}`.
    fn disk_slots(&mut self) -> Vec<String> {
        let mut slots = Vec::new();
        for ch in 0..2 {
            for unit in 0..2 {
                let Some(ata) = self.ata(ch) else {
                    continue;
                };
                if ata.cdrom(unit).is_none() && ata.drive_image(unit).is_some() {
                    slots.push(format!("ide{ch}-{unit}"));
                }
            }
        }
        for n in 0.. {
            if self.virtio_blk(n).is_none() {
                break;
            }
            slots.push(format!("virtio{n}"));
        }
        slots
    }

    /// The image of the disk at snapshot slot `slot` ([`Machine::disk_slots`]).
    fn disk_image(&mut self, slot: &str) -> Option<&mut (dyn BlockDevice + Send)> {
        if let Some(n) = slot.strip_prefix("virtio") {
            let n: usize = n.parse().ok()?;
            return Some(self.virtio_blk(n)?.device_mut().disk_mut());
        }
        let (ch, unit) = parse_slot(slot)?;
        let ata = self.ata(ch)?;
        if ata.cdrom(unit).is_some() {
            return None;
        }
        ata.drive_image(unit)
    }

    /// The whole machine as a [`Snapshot`], between two slices of the run.
    pub fn take_snapshot(&mut self) -> Result<Snapshot, StateError> {
        if self.hotplug_changed {
            return Err(StateError::Mismatch(
                "devices were added or removed at run time (device_add/device_del), which \
                 vx86 snapshots cannot record yet"
                    .into(),
            ));
        }
        self.flush_output();
        self.sync_dma();
        self.flush_disks()
            .map_err(|e| StateError::Mismatch(format!("flushing the disks: {e}")))?;
        let config = self
            .snapshot_config()
            .map_err(|e| StateError::Mismatch(format!("disk image {e}")))?;
        let mut overlays = Vec::new();
        for slot in self.disk_slots() {
            let Some(img) = self.disk_image(&slot) else {
                continue;
            };
            if let Some(sectors) = img.overlay_sectors() {
                let mut data = Vec::with_capacity(sectors.len() * SECTOR_SIZE);
                let lbas = sectors.iter().map(|(n, _)| *n).collect();
                for (_, s) in &sectors {
                    data.extend_from_slice(s);
                }
                overlays.push(OverlayImage {
                    slot,
                    lbas,
                    data: lz4_flex::block::compress_prepend_size(&data),
                });
            }
        }
        Ok(Snapshot {
            writer: format!("vx86 {}", env!("CARGO_PKG_VERSION")),
            config,
            cpu: self.cpu.save_state(),
            platform: lz4_flex::block::compress_prepend_size(&super::encode(
                &self.plat.save_state()?,
            )?),
            guest_ns: self.plat.clock.now(self.cpu.icount),
            idle_insns: self.idle_insns,
            serial_in: self.serial_in.iter().copied().collect(),
            fed_quantum: self.fed_quantum,
            ram: RamImage::save(self.mem.ram()),
            overlays,
        })
    }

    /// Writes a snapshot of the machine to `path`.
    pub fn save_snapshot(&mut self, path: &Path) -> Result<(), SnapshotError> {
        let snap = self.take_snapshot().map_err(|err| SnapshotError::Save {
            path: path.into(),
            err,
        })?;
        let summary = Summary {
            writer: snap.writer.clone(),
            taken: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            guest_ns: snap.guest_ns,
            icount: snap.cpu.icount,
            ram: snap.config.ram,
            machine: snap.config.machine.clone(),
        };
        write_file(path, &summary, &snap)
    }

    /// Loads the snapshot at `path` into this machine, which the command line
    /// must have built the same way (checked first: nothing changes when it
    /// differs).
    pub fn load_snapshot(&mut self, path: &Path) -> Result<(), SnapshotError> {
        let snap = read_file(path)?;
        let conflict = |msg: String| SnapshotError::Conflict {
            path: path.into(),
            msg,
        };
        if self.hotplug_changed {
            return Err(conflict(
                "devices were added or removed at run time (device_add/device_del): this \
                 machine is no longer the one the command line built"
                    .into(),
            ));
        }
        let mut now = self
            .snapshot_config()
            .map_err(|e| conflict(format!("disk image {e}")))?;
        // A CD-ROM drive that was empty at the save is emptied: the disc the
        // command line put in was taken out before (the monitor's eject).
        let mut empty = Vec::new();
        for d in &mut now.drives {
            let was_empty = snap
                .config
                .drives
                .iter()
                .any(|s| s.slot == d.slot && s.cdrom && s.path.is_empty());
            if d.cdrom && was_empty && !d.path.is_empty() {
                empty.push(d.slot.clone());
                (d.path, d.size, d.fingerprint) = (String::new(), 0, 0);
            }
        }
        if let Some(diff) = snap.config.difference(&now) {
            return Err(conflict(diff));
        }
        self.restore_snapshot(snap)
            .map_err(|e| conflict(e.to_string()))?;
        for slot in empty {
            if let Some((ch, unit)) = parse_slot(&slot) {
                if let Some(cd) = self.ata(ch).and_then(|a| a.cdrom(unit)) {
                    cd.remove_medium_silently();
                }
            }
        }
        Ok(())
    }

    /// Puts a checked snapshot's state into the machine.
    pub fn restore_snapshot(&mut self, snap: Snapshot) -> Result<(), StateError> {
        let platform = snap.platform_state()?;
        snap.ram.restore(self.mem.ram_mut())?;
        // Anything devices wrote by DMA before is gone with the old RAM.
        let _ = self.mem.take_dma_writes();
        self.plat.load_state(platform)?;
        for o in snap.overlays {
            let data = lz4_flex::block::decompress_size_prepended(&o.data)
                .map_err(|e| StateError::Mismatch(format!("overlay of {}: {e}", o.slot)))?;
            if data.len() != o.lbas.len() * SECTOR_SIZE {
                return Err(StateError::Mismatch(format!(
                    "overlay of {}: {} bytes for {} sectors",
                    o.slot,
                    data.len(),
                    o.lbas.len()
                )));
            }
            let sectors = o
                .lbas
                .iter()
                .zip(data.chunks_exact(SECTOR_SIZE))
                .map(|(&n, s)| (n, s.to_vec()))
                .collect();
            let ok = self
                .disk_image(&o.slot)
                .is_some_and(|img| img.restore_overlay(sectors));
            if !ok {
                return Err(StateError::Mismatch(format!(
                    "drive {} has no -snapshot overlay to take the saved writes",
                    o.slot
                )));
            }
        }
        self.cpu.load_state(&snap.cpu);
        if self.cfg.clock == ClockMode::Host {
            self.plat.clock.resume_at(snap.guest_ns);
        }
        self.cpu.clock = self.plat.clock;
        self.idle_insns = snap.idle_insns;
        self.serial_in = snap.serial_in.into_iter().collect();
        self.fed_quantum = snap.fed_quantum;
        Ok(())
    }

    /// CRC-32s of the CPU's architectural state, the board's state and RAM,
    /// as one line: equal lines mean equal machines (to CRC strength).
    pub fn state_hash(&mut self) -> String {
        self.flush_output();
        let cpu = super::encode(&self.cpu.save_state())
            .map(|b| crc32fast::hash(&b))
            .unwrap_or(0);
        let devices = self
            .plat
            .save_state()
            .and_then(|s| super::encode(&s))
            .map(|b| format!("{:08x}", crc32fast::hash(&b)))
            .unwrap_or_else(|e| format!("unavailable ({e})"));
        let ram = crc32fast::hash(self.mem.ram());
        // The -snapshot overlays: disk contents that live only in memory.
        let mut h = crc32fast::Hasher::new();
        for slot in self.disk_slots() {
            let img = self.disk_image(&slot);
            for (lba, data) in img.and_then(|i| i.overlay_sectors()).unwrap_or_default() {
                h.update(&lba.to_le_bytes());
                h.update(&data);
            }
        }
        format!(
            "cpu {cpu:08x} devices {devices} ram {ram:08x} overlays {:08x} icount {}",
            h.finalize(),
            self.cpu.icount
        )
    }
}

fn onoff(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `ide1-0` -> (1, 0).
fn parse_slot(s: &str) -> Option<(usize, usize)> {
    let (ch, unit) = s.strip_prefix("ide")?.split_once('-')?;
    Some((ch.parse().ok()?, unit.parse().ok()?))
}
