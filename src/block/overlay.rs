//! Copy-on-write in memory over a base disk (QEMU's `-snapshot`).
//!
//! Written sectors live in a map owned by the overlay; reads take the overlay's
//! copy where one exists and the base otherwise. Nothing is ever written to the
//! base, and [`open_drive`](super::open_drive) opens the base file read-only, so
//! the host image is unchanged however the guest writes. Changes are lost when
//! the overlay is dropped.

use std::collections::HashMap;
use std::io;

use super::{check_range, BlockDevice, SECTOR_SIZE};

/// A writable view of a (typically read-only) base disk that keeps all writes
/// in memory.
pub struct Overlay {
    base: Box<dyn BlockDevice + Send>,
    /// Sector number -> the sector as the guest last wrote it.
    dirty: HashMap<u64, Box<[u8; SECTOR_SIZE]>>,
}

impl Overlay {
    pub fn new(base: Box<dyn BlockDevice + Send>) -> Overlay {
        Overlay {
            base,
            dirty: HashMap::new(),
        }
    }

    /// Number of sectors that differ from the base (have been written).
    pub fn dirty_sectors(&self) -> usize {
        self.dirty.len()
    }
}

impl BlockDevice for Overlay {
    fn sector_count(&self) -> u64 {
        self.base.sector_count()
    }

    fn host_path(&self) -> Option<&std::path::Path> {
        self.base.host_path()
    }

    fn format(&self) -> &'static str {
        self.base.format()
    }

    fn overlay_sectors(&self) -> Option<Vec<(u64, Vec<u8>)>> {
        let mut v: Vec<(u64, Vec<u8>)> = self.dirty.iter().map(|(&n, s)| (n, s.to_vec())).collect();
        v.sort_unstable_by_key(|&(n, _)| n);
        Some(v)
    }

    fn restore_overlay(&mut self, sectors: Vec<(u64, Vec<u8>)>) -> bool {
        self.dirty.clear();
        for (n, s) in sectors {
            if let Ok(sector) = <[u8; SECTOR_SIZE]>::try_from(s.as_slice()) {
                self.dirty.insert(n, Box::new(sector));
            }
        }
        true
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.sector_count(), lba, buf.len())?;
        let all_dirty = (lba..)
            .zip(buf.chunks_exact(SECTOR_SIZE))
            .all(|(n, _)| self.dirty.contains_key(&n));
        if !all_dirty {
            self.base.read_sectors(lba, buf)?;
        }
        for (n, chunk) in (lba..).zip(buf.chunks_exact_mut(SECTOR_SIZE)) {
            if let Some(sector) = self.dirty.get(&n) {
                chunk.copy_from_slice(&sector[..]);
            }
        }
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        check_range(self.sector_count(), lba, buf.len())?;
        for (n, chunk) in (lba..).zip(buf.chunks_exact(SECTOR_SIZE)) {
            let sector = self
                .dirty
                .entry(n)
                .or_insert_with(|| Box::new([0u8; SECTOR_SIZE]));
            sector.copy_from_slice(chunk);
        }
        Ok(())
    }

    /// Nothing to make durable: the overlay is deliberately volatile.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn read_only(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::test_util::{patterned, TempFile};
    use crate::block::{open_drive, DriveSpec, RawImage};

    #[test]
    fn writes_are_visible_but_base_is_untouched() {
        let tmp = TempFile::with_contents(&patterned(8));
        let base = RawImage::open(&tmp.0, true).unwrap();
        let mut ov = Overlay::new(Box::new(base));
        assert_eq!(ov.sector_count(), 8);
        assert!(!ov.read_only());
        ov.write_sectors(2, &[0xEE; 1024]).unwrap();
        ov.flush().unwrap();
        assert_eq!(ov.dirty_sectors(), 2);
        // A read spanning clean and dirty sectors mixes both.
        let mut buf = vec![0u8; 4 * 512];
        ov.read_sectors(1, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 1));
        assert!(buf[512..1536].iter().all(|&b| b == 0xEE));
        assert!(buf[1536..].iter().all(|&b| b == 4));
        drop(ov);
        assert_eq!(std::fs::read(&tmp.0).unwrap(), patterned(8));
    }

    #[test]
    fn snapshot_drive_spec_never_writes_the_file() {
        let tmp = TempFile::with_contents(&patterned(4));
        let spec = DriveSpec::parse(&format!(
            "file={},format=raw,snapshot=on",
            tmp.0.display().to_string().replace(',', ",,")
        ))
        .unwrap();
        let mut dev = open_drive(&spec).unwrap();
        dev.write_sectors(0, &[0x11; 2048]).unwrap();
        dev.flush().unwrap();
        let mut buf = [0u8; 512];
        dev.read_sectors(3, &mut buf).unwrap();
        assert_eq!(buf, [0x11; 512]);
        drop(dev);
        assert_eq!(std::fs::read(&tmp.0).unwrap(), patterned(4));
    }

    #[test]
    fn out_of_range_is_an_error() {
        let tmp = TempFile::with_contents(&patterned(2));
        let mut ov = Overlay::new(Box::new(RawImage::open(&tmp.0, true).unwrap()));
        assert!(ov.write_sectors(2, &[0; 512]).is_err());
        assert!(ov.read_sectors(1, &mut [0; 1024]).is_err());
        assert_eq!(ov.dirty_sectors(), 0);
    }
}
