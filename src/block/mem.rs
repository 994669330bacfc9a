//! A disk whose sectors live in host memory: the built-in boot disk embedded
//! in the binary, and disks that tests build on the fly. Wrapped in an
//! [`Overlay`](super::Overlay) it behaves like `snapshot=on`.

use std::borrow::Cow;
use std::io;

use super::{check_range, BlockDevice, SECTOR_SIZE};

/// An in-memory disk image (whole sectors; a trailing partial sector is
/// zero-padded so every byte of the image is reachable).
pub struct MemImage {
    data: Cow<'static, [u8]>,
    read_only: bool,
}

impl MemImage {
    /// A read-only disk over a static image (no copy).
    pub fn read_only(data: &'static [u8]) -> MemImage {
        MemImage::new(Cow::Borrowed(data), true)
    }

    /// A writable disk owning `data`.
    pub fn writable(data: Vec<u8>) -> MemImage {
        MemImage::new(Cow::Owned(data), false)
    }

    fn new(mut data: Cow<'static, [u8]>, read_only: bool) -> MemImage {
        if !data.len().is_multiple_of(SECTOR_SIZE) {
            let len = data.len().next_multiple_of(SECTOR_SIZE);
            data.to_mut().resize(len, 0);
        }
        MemImage { data, read_only }
    }

    /// The current contents (what the guest wrote, for a writable disk).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl BlockDevice for MemImage {
    fn sector_count(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.sector_count(), lba, buf.len())?;
        let start = lba as usize * SECTOR_SIZE;
        let src = self
            .data
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::InvalidInput)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only in-memory disk",
            ));
        }
        check_range(self.sector_count(), lba, buf.len())?;
        let start = lba as usize * SECTOR_SIZE;
        let dst = self
            .data
            .to_mut()
            .get_mut(start..start + buf.len())
            .ok_or(io::ErrorKind::InvalidInput)?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn read_only(&self) -> bool {
        self.read_only
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pads_and_refuses_writes_when_read_only() {
        static IMG: [u8; 700] = [0x5A; 700];
        let mut d = MemImage::read_only(&IMG);
        assert_eq!(d.sector_count(), 2, "700 bytes pad to two sectors");
        let mut buf = [0u8; 1024];
        d.read_sectors(0, &mut buf).unwrap();
        assert!(buf[..700].iter().all(|&b| b == 0x5A));
        assert!(buf[700..].iter().all(|&b| b == 0));
        assert!(d.write_sectors(0, &[0; 512]).is_err());
        assert!(d.read_sectors(2, &mut buf[..512]).is_err(), "past the end");
    }

    #[test]
    fn writable_keeps_writes() {
        let mut d = MemImage::writable(vec![0; 1024]);
        d.write_sectors(1, &[7; 512]).unwrap();
        assert!(d.bytes()[512..].iter().all(|&b| b == 7));
        assert!(d.bytes()[..512].iter().all(|&b| b == 0));
    }
}
