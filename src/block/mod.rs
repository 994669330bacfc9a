//! Disk image backends for the emulated drives.
//!
//! A [`BlockDevice`] is a linear array of 512-byte sectors. The ATA disk
//! (`crate::devices::ata`) sees only this trait, so the same controller code runs
//! over a raw host file ([`RawImage`]) or a copy-on-write layer over one
//! ([`Overlay`], QEMU's `-snapshot`), or a qcow2 image ([`Qcow2Image`]).
//! [`open_drive`] turns a parsed `-drive` option ([`DriveSpec`]) into a
//! ready backend.

pub mod drive_spec;
pub mod mem;
pub mod overlay;
pub mod probe;
pub mod qcow2;
pub mod raw;

use std::io;
use std::path::PathBuf;

pub use drive_spec::{CacheMode, DriveSpec, DriveSpecError};
pub use mem::MemImage;
pub use overlay::Overlay;
pub use qcow2::Qcow2Image;
pub use raw::RawImage;

/// Bytes in one sector; the only sector size the ATA-6 PIO commands know
/// (ATA/ATAPI-6 6.2: a logical sector is 256 words).
pub const SECTOR_SIZE: usize = 512;

/// A disk as the emulated drive sees it: `sector_count` sectors of
/// [`SECTOR_SIZE`] bytes.
///
/// `buf.len()` must be a multiple of [`SECTOR_SIZE`] and the range
/// `lba .. lba + buf.len() / 512` must lie within the disk; otherwise the
/// methods return [`io::ErrorKind::InvalidInput`] (never panic).
pub trait BlockDevice {
    /// Number of 512-byte sectors.
    fn sector_count(&self) -> u64;
    /// Reads `buf.len() / 512` sectors starting at `lba`.
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `buf.len() / 512` sectors starting at `lba`.
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes every completed write durable on the host.
    fn flush(&mut self) -> io::Result<()>;
    /// True when writes are refused.
    fn read_only(&self) -> bool;
    /// The host file behind the image (a snapshot records and checks it).
    fn host_path(&self) -> Option<&std::path::Path> {
        None
    }
    /// The image format the file is read as (`raw` or `qcow2`; a snapshot
    /// records and checks it: `format=raw` over a qcow2 file is another disk).
    fn format(&self) -> &'static str {
        "raw"
    }
    /// A `-snapshot` overlay's written sectors, in sector order: the part of
    /// the disk's contents that lives only in memory (saved in a snapshot).
    /// None for images that keep nothing in memory.
    fn overlay_sectors(&self) -> Option<Vec<(u64, Vec<u8>)>> {
        None
    }
    /// Puts back what [`BlockDevice::overlay_sectors`] returned; false when
    /// this image has no overlay to take them.
    fn restore_overlay(&mut self, _sectors: Vec<(u64, Vec<u8>)>) -> bool {
        false
    }
}

/// An empty stand-in image for a drive whose state was decoded from a
/// snapshot before its real image is put back (see `devices::ata`).
pub fn detached() -> Box<dyn BlockDevice + Send> {
    Box::new(MemImage::writable(Vec::new()))
}

/// Why a disk image could not be opened. Each message names the file and the
/// problem on one line.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    // The I/O error is part of the message, not a chained source, so the
    // one-line report does not repeat it.
    #[error("disk image {}: cannot open: {err}", path.display())]
    Open { path: PathBuf, err: io::Error },
    #[error(
        "disk image {}: the host file is read-only but the drive was opened for writing \
         (use readonly=on or snapshot=on)",
        path.display()
    )]
    ReadOnlyFile { path: PathBuf },
    #[error("disk image {}: not a regular file or block device", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "disk image {}: locked by another process (another vx86 using it{}); \
         use -snapshot to run from a copy-on-write view",
        path.display(),
        if *writable { "" } else { " for writing" }
    )]
    Locked { path: PathBuf, writable: bool },
    #[error("disk image {}: this is {} ({}); {}", path.display(), format.describe(), format.name(), format.advice(path))]
    NotRaw {
        path: PathBuf,
        format: probe::ImageFormat,
    },
    #[error("disk image {}: corrupt or unsupported qcow2: {problem}", path.display())]
    Qcow2 { path: PathBuf, problem: String },
    #[error("disk image {}: format=qcow2 was given but this is not a qcow2 image", path.display())]
    NotQcow2 { path: PathBuf },
    #[error("disk image {}: file is empty", path.display())]
    Empty { path: PathBuf },
    #[error(
        "disk image {}: size {size} bytes is not a multiple of the 512-byte sector size",
        path.display()
    )]
    BadSize { path: PathBuf, size: u64 },
    #[error(
        "CD image {}: size {size} bytes is not a multiple of the 2048-byte CD sector size \
         (truncated?)",
        path.display()
    )]
    CdBadSize { path: PathBuf, size: u64 },
    #[error(
        "CD image {}: its ISO 9660 volume claims {claimed} blocks of 2048 bytes but the file \
         has {have} (truncated?)",
        path.display()
    )]
    CdTruncated {
        path: PathBuf,
        claimed: u64,
        have: u64,
    },
}

/// Bytes in a CD block (ECMA-119 6.1.2: the ISO 9660 logical sector).
pub const CD_BLOCK_SIZE: u64 = 2048;

/// Checks a CD image as a drive would see it: whole 2048-byte blocks and,
/// when it carries an ISO 9660 Primary Volume Descriptor (ECMA-119 8.4: type
/// 1 at block 16, "CD001", the Volume Space Size as a both-endian 32-bit
/// field at byte 80, the Logical Block Size at byte 128), no more blocks
/// claimed than the file holds.
pub fn check_iso(path: &std::path::Path) -> Result<(), BlockError> {
    use std::io::{Read, Seek, SeekFrom};
    let open_err = |err| BlockError::Open {
        path: path.to_path_buf(),
        err,
    };
    let mut f = std::fs::File::open(path).map_err(open_err)?;
    let size = f.metadata().map_err(open_err)?.len();
    if size % CD_BLOCK_SIZE != 0 {
        return Err(BlockError::CdBadSize {
            path: path.to_path_buf(),
            size,
        });
    }
    let have = size / CD_BLOCK_SIZE;
    let mut pvd = [0u8; 132];
    if have <= 16
        || f.seek(SeekFrom::Start(16 * CD_BLOCK_SIZE)).is_err()
        || f.read_exact(&mut pvd).is_err()
        || pvd[0] != 1
        || &pvd[1..6] != b"CD001"
    {
        return Ok(());
    }
    let blocks = u64::from(u32::from_le_bytes([pvd[80], pvd[81], pvd[82], pvd[83]]));
    let block_size = u64::from(u16::from_le_bytes([pvd[128], pvd[129]]));
    let claimed = blocks * block_size / CD_BLOCK_SIZE;
    if claimed > have {
        return Err(BlockError::CdTruncated {
            path: path.to_path_buf(),
            claimed,
            have,
        });
    }
    Ok(())
}

/// Opens the disc of a `media=cdrom` drive, read-only: `None` for an empty
/// drive (no `file=`). An ISO (or any raw image) is checked by
/// [`check_iso`]; a qcow2 image is read through [`Qcow2Image`].
pub fn open_cdrom(spec: &DriveSpec) -> Result<Option<Box<dyn BlockDevice + Send>>, BlockError> {
    use drive_spec::DiskFormat;
    if spec.file.as_os_str().is_empty() {
        return Ok(None);
    }
    let probed = probe::probe(&spec.file);
    match (spec.format, probed) {
        (Some(DiskFormat::Qcow2), _) | (None, Some(probe::ImageFormat::Qcow2)) => {
            Ok(Some(Box::new(Qcow2Image::open(&spec.file)?)))
        }
        (None, Some(format)) if format != probe::ImageFormat::Iso9660 => Err(BlockError::NotRaw {
            path: spec.file.clone(),
            format,
        }),
        _ => {
            check_iso(&spec.file)?;
            Ok(Some(Box::new(RawImage::open(&spec.file, true)?)))
        }
    }
}

/// Checks that a transfer of `len` bytes at `lba` fits a disk of `sectors`
/// sectors and is whole sectors; returns the sector count of the transfer.
pub(crate) fn check_range(sectors: u64, lba: u64, len: usize) -> io::Result<u64> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "buffer length is not a multiple of 512",
        ));
    }
    let count = (len / SECTOR_SIZE) as u64;
    match lba.checked_add(count) {
        Some(end) if end <= sectors => Ok(count),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "sector range beyond the end of the disk",
        )),
    }
}

/// Opens the backend a `-drive` option describes: the raw or qcow2 file,
/// read-only if `readonly=on`, and wrapped in a copy-on-write [`Overlay`] if
/// `snapshot=on` (then the file itself is opened read-only, so the host image
/// can never change).
pub fn open_drive(spec: &DriveSpec) -> Result<Box<dyn BlockDevice + Send>, BlockError> {
    use drive_spec::DiskFormat;
    // Probe first, as QEMU does: a qcow2 is opened as qcow2, never used as
    // raw; another non-raw image is refused by name unless format=raw says
    // to use its bytes anyway (then a warning).
    let probed = probe::probe(&spec.file);
    let qcow2 = match (spec.format, probed) {
        (Some(DiskFormat::Qcow2), Some(probe::ImageFormat::Qcow2)) => true,
        (Some(DiskFormat::Qcow2), _) if spec.file.exists() => {
            return Err(BlockError::NotQcow2 {
                path: spec.file.clone(),
            })
        }
        (Some(DiskFormat::Qcow2), _) => true,
        (None, Some(probe::ImageFormat::Qcow2)) => true,
        (None, Some(format)) => {
            return Err(BlockError::NotRaw {
                path: spec.file.clone(),
                format,
            })
        }
        (Some(DiskFormat::Raw), Some(format)) => {
            eprintln!(
                "vx86: warning: disk image {} looks like {} but format=raw was given: using its bytes as a raw disk",
                spec.file.display(),
                format.describe()
            );
            false
        }
        (_, None) => false,
    };
    if qcow2 {
        // -snapshot and readonly=on open the file read-only: it never changes.
        if spec.snapshot || spec.read_only {
            let img = Qcow2Image::open(&spec.file)?;
            return Ok(if spec.snapshot {
                Box::new(Overlay::new(Box::new(img)))
            } else {
                Box::new(img)
            });
        }
        let mut img = Qcow2Image::open_writable(&spec.file)?;
        img.set_write_through(matches!(
            spec.cache,
            CacheMode::Writethrough | CacheMode::Directsync
        ));
        img.set_ignore_flush(spec.cache == CacheMode::Unsafe);
        return Ok(Box::new(img));
    }
    if spec.snapshot {
        let base = RawImage::open(&spec.file, true)?;
        Ok(Box::new(Overlay::new(Box::new(base))))
    } else {
        let mut raw = RawImage::open(&spec.file, spec.read_only)?;
        raw.set_write_through(matches!(
            spec.cache,
            CacheMode::Writethrough | CacheMode::Directsync
        ));
        raw.set_ignore_flush(spec.cache == CacheMode::Unsafe);
        Ok(Box::new(raw))
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A file in the host temp directory, unique per process and call, removed on drop.
    pub struct TempFile(pub PathBuf);

    impl TempFile {
        pub fn with_contents(contents: &[u8]) -> TempFile {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "vx86-block-test-{}-{}.img",
                std::process::id(),
                n
            ));
            std::fs::write(&path, contents).expect("write temp file");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            // A read-only file must be made writable again before Windows deletes it.
            if let Ok(meta) = std::fs::metadata(&self.0) {
                let mut perm = meta.permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perm.set_readonly(false);
                let _ = std::fs::set_permissions(&self.0, perm);
            }
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `sectors` sectors where every byte of sector `n` is `n as u8`.
    pub fn patterned(sectors: usize) -> Vec<u8> {
        (0..sectors * 512).map(|i| (i / 512) as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{patterned, TempFile};
    use super::*;

    fn spec_for(tmp: &TempFile, extra: &str) -> DriveSpec {
        let file = tmp.0.display().to_string().replace(',', ",,");
        DriveSpec::parse(&format!("file={file}{extra}")).unwrap()
    }

    #[test]
    fn open_drive_honours_readonly_and_cache_modes() {
        let tmp = TempFile::with_contents(&patterned(4));
        let mut ro = open_drive(&spec_for(&tmp, ",readonly=on")).unwrap();
        assert!(ro.read_only());
        assert!(ro.write_sectors(0, &[0; 512]).is_err());
        drop(ro);
        for cache in ["writethrough", "unsafe", "none"] {
            let mut rw = open_drive(&spec_for(&tmp, &format!(",cache={cache}"))).unwrap();
            assert!(!rw.read_only());
            assert_eq!(rw.sector_count(), 4);
            rw.write_sectors(1, &[0x42; 512]).unwrap();
            rw.flush().unwrap();
        }
        let bytes = std::fs::read(&tmp.0).unwrap();
        assert!(bytes[512..1024].iter().all(|&b| b == 0x42));
    }

    fn iso(blocks: u32, file_blocks: usize) -> Vec<u8> {
        let b = CD_BLOCK_SIZE as usize;
        let mut img = vec![0u8; file_blocks * b];
        let pvd = &mut img[16 * b..17 * b];
        pvd[0] = 1;
        pvd[1..6].copy_from_slice(b"CD001");
        pvd[80..84].copy_from_slice(&blocks.to_le_bytes());
        pvd[84..88].copy_from_slice(&blocks.to_be_bytes());
        pvd[128..130].copy_from_slice(&2048u16.to_le_bytes());
        img
    }

    #[test]
    fn cd_images_whole_and_truncated() {
        let ok = TempFile::with_contents(&iso(20, 20));
        let spec = DriveSpec::cdrom(&ok.0.display().to_string());
        let cd = open_cdrom(&spec).unwrap().unwrap();
        assert_eq!(cd.sector_count(), 20 * 4);
        assert!(cd.read_only());
        // As a disk, an ISO is still refused by name, pointing at -cdrom.
        let msg = open_drive(&DriveSpec::hd(0, &ok.0.display().to_string()).unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("-cdrom"), "{msg}");

        let short = TempFile::with_contents(&iso(40, 20));
        let msg = open_cdrom(&DriveSpec::cdrom(&short.0.display().to_string()))
            .err()
            .unwrap()
            .to_string();
        let name = short.0.display().to_string();
        assert_eq!(
            msg,
            format!("CD image {name}: its ISO 9660 volume claims 40 blocks of 2048 bytes but the file has 20 (truncated?)")
        );
        let mut odd_bytes = iso(20, 20);
        odd_bytes.truncate(20 * 2048 - 100);
        let odd = TempFile::with_contents(&odd_bytes);
        let msg = open_cdrom(&DriveSpec::cdrom(&odd.0.display().to_string()))
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("not a multiple of the 2048-byte"), "{msg}");
        assert!(open_cdrom(&DriveSpec::cdrom("")).unwrap().is_none());
    }

    #[test]
    fn open_drive_reports_missing_file_by_name() {
        let spec = DriveSpec::hd(0, "/nonexistent-vx86-dir/disk.img").unwrap();
        let err = open_drive(&spec).err().expect("missing file must fail");
        let msg = err.to_string();
        assert!(
            msg.starts_with("disk image /nonexistent-vx86-dir/disk.img: cannot open"),
            "{msg}"
        );
    }
}
