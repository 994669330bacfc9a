//! A raw disk image: the host file holds the sectors back to back, sector `n`
//! at byte offset `n * 512`.
//!
//! I/O is positioned (`pread`/`pwrite` on Unix, `ReadFile`/`WriteFile` with an
//! offset on Windows) so there is no shared file cursor to keep in step.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{check_range, BlockDevice, BlockError, SECTOR_SIZE};

/// A host file used as a disk, sector for sector.
#[derive(Debug)]
pub struct RawImage {
    file: File,
    path: PathBuf,
    sectors: u64,
    read_only: bool,
    /// `cache=writethrough`/`directsync`: every write is followed by `sync_data`.
    write_through: bool,
    /// `cache=unsafe`: guest flushes are not passed to the host.
    ignore_flush: bool,
}

impl RawImage {
    /// Opens `path` as a disk. With `read_only` the file is opened for reading
    /// only and every write is refused; otherwise it must be writable.
    pub fn open(path: &Path, read_only: bool) -> Result<RawImage, BlockError> {
        let meta = std::fs::metadata(path).map_err(|err| BlockError::Open {
            path: path.to_path_buf(),
            err,
        })?;
        if meta.is_dir() {
            return Err(BlockError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        if !read_only && meta.permissions().readonly() {
            return Err(BlockError::ReadOnlyFile {
                path: path.to_path_buf(),
            });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| {
                if !read_only && source.kind() == io::ErrorKind::PermissionDenied {
                    BlockError::ReadOnlyFile {
                        path: path.to_path_buf(),
                    }
                } else {
                    BlockError::Open {
                        path: path.to_path_buf(),
                        err: source,
                    }
                }
            })?;
        // Two writers, or a writer and a reader, on one image corrupt what the
        // guest sees: take the host's advisory lock, exclusive for a writable
        // drive and shared for a read-only one (flock on Unix, LockFileEx on
        // Windows through std). `-snapshot` drives open read-only, so any
        // number of them share an image nobody writes.
        let locked = if read_only {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BlockError::Locked {
                    path: path.to_path_buf(),
                    writable: !read_only,
                })
            }
            // A file system without locks (some network mounts): run unlocked,
            // as QEMU does when its lock request is not supported.
            Err(std::fs::TryLockError::Error(_)) => {}
        }
        // Seeking to the end also sizes a host block device, whose metadata length is 0.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|err| BlockError::Open {
                path: path.to_path_buf(),
                err,
            })?;
        if size == 0 {
            return Err(BlockError::Empty {
                path: path.to_path_buf(),
            });
        }
        if !size.is_multiple_of(SECTOR_SIZE as u64) {
            return Err(BlockError::BadSize {
                path: path.to_path_buf(),
                size,
            });
        }
        Ok(RawImage {
            file,
            path: path.to_path_buf(),
            sectors: size / SECTOR_SIZE as u64,
            read_only,
            write_through: false,
            ignore_flush: false,
        })
    }

    /// The host file this image reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// With `on`, each write reaches the host medium before it completes
    /// (QEMU `cache=writethrough`); otherwise only [`BlockDevice::flush`] does.
    pub fn set_write_through(&mut self, on: bool) {
        self.write_through = on;
    }

    /// With `on`, [`BlockDevice::flush`] does nothing (QEMU `cache=unsafe`):
    /// faster, and data written reaches the host's page cache all the same,
    /// but a host crash can lose it.
    pub fn set_ignore_flush(&mut self, on: bool) {
        self.ignore_flush = on;
    }
}

impl BlockDevice for RawImage {
    fn host_path(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.sectors, lba, buf.len())?;
        read_exact_at(&self.file, buf, lba * SECTOR_SIZE as u64)
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "disk image is read-only",
            ));
        }
        check_range(self.sectors, lba, buf.len())?;
        write_all_at(&self.file, buf, lba * SECTOR_SIZE as u64)?;
        if self.write_through {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.read_only || self.ignore_flush {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Windows' `seek_read` may return short counts; loop like `read_exact_at`.
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "disk image shorter than expected",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "host refused to write to the disk image",
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::test_util::{patterned, TempFile};

    #[test]
    fn round_trip_reaches_the_file() {
        let tmp = TempFile::with_contents(&patterned(8));
        let mut img = RawImage::open(&tmp.0, false).unwrap();
        assert_eq!(img.sector_count(), 8);
        assert!(!img.read_only());
        let mut buf = vec![0u8; 1024];
        img.read_sectors(3, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 3));
        assert!(buf[512..].iter().all(|&b| b == 4));
        let data: Vec<u8> = (0..1024).map(|i| (i * 7) as u8).collect();
        img.write_sectors(6, &data).unwrap();
        img.flush().unwrap();
        let mut back = vec![0u8; 1024];
        img.read_sectors(6, &mut back).unwrap();
        assert_eq!(back, data);
        drop(img);
        let on_disk = std::fs::read(&tmp.0).unwrap();
        assert_eq!(&on_disk[6 * 512..], &data[..]);
        assert!(on_disk[5 * 512..6 * 512].iter().all(|&b| b == 5));
    }

    #[test]
    fn a_writer_locks_the_image_and_readers_share_it() {
        let tmp = TempFile::with_contents(&patterned(4));
        let writer = RawImage::open(&tmp.0, false).unwrap();
        for read_only in [false, true] {
            match RawImage::open(&tmp.0, read_only) {
                Err(e @ BlockError::Locked { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&*tmp.0.to_string_lossy()), "{msg}");
                    assert!(msg.contains("locked by another process"), "{msg}");
                }
                other => panic!("expected Locked, got {:?}", other.map(|_| ())),
            }
        }
        drop(writer);
        let r1 = RawImage::open(&tmp.0, true).unwrap();
        let r2 = RawImage::open(&tmp.0, true).unwrap();
        assert!(matches!(
            RawImage::open(&tmp.0, false),
            Err(BlockError::Locked { writable: true, .. })
        ));
        drop((r1, r2));
        RawImage::open(&tmp.0, false).unwrap();
    }

    #[test]
    fn out_of_range_and_partial_sectors_are_errors() {
        let tmp = TempFile::with_contents(&patterned(4));
        let mut img = RawImage::open(&tmp.0, false).unwrap();
        let mut buf = vec![0u8; 1024];
        assert_eq!(
            img.read_sectors(3, &mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            img.read_sectors(u64::MAX, &mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            img.write_sectors(0, &buf[..100]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn read_only_refuses_writes_and_keeps_bytes() {
        let tmp = TempFile::with_contents(&patterned(2));
        let mut img = RawImage::open(&tmp.0, true).unwrap();
        assert!(img.read_only());
        assert!(img.write_sectors(0, &[0xAA; 512]).is_err());
        assert!(img.flush().is_ok());
        drop(img);
        assert_eq!(std::fs::read(&tmp.0).unwrap(), patterned(2));
    }

    #[test]
    fn bad_sizes_and_missing_files_are_named_errors() {
        let odd = TempFile::with_contents(&[0u8; 1000]);
        let err = RawImage::open(&odd.0, true).unwrap_err();
        assert!(matches!(err, BlockError::BadSize { size: 1000, .. }));
        let msg = err.to_string();
        assert!(msg.contains(&odd.0.display().to_string()), "{msg}");
        assert!(msg.contains("not a multiple of the 512-byte"), "{msg}");

        let empty = TempFile::with_contents(&[]);
        let err = RawImage::open(&empty.0, false).unwrap_err();
        assert!(matches!(err, BlockError::Empty { .. }));
        assert!(err.to_string().contains("empty"));

        let missing = std::env::temp_dir().join("vx86-block-test-does-not-exist.img");
        let err = RawImage::open(&missing, true).unwrap_err();
        assert!(matches!(err, BlockError::Open { .. }));
        assert!(err
            .to_string()
            .contains("vx86-block-test-does-not-exist.img"));
        assert!(!err.to_string().contains('\n'));

        let dir = RawImage::open(&std::env::temp_dir(), true).unwrap_err();
        assert!(matches!(dir, BlockError::NotAFile { .. }));
    }

    #[test]
    fn read_only_host_file_opened_for_writing_is_refused() {
        let tmp = TempFile::with_contents(&patterned(1));
        let mut perm = std::fs::metadata(&tmp.0).unwrap().permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&tmp.0, perm).unwrap();
        let err = RawImage::open(&tmp.0, false).unwrap_err();
        assert!(matches!(err, BlockError::ReadOnlyFile { .. }), "{err}");
        assert!(err.to_string().contains("readonly=on"));
        // Read-only access to the same file is fine.
        assert!(RawImage::open(&tmp.0, true).is_ok());
    }
}
