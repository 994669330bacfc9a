//! Image format probing, as QEMU does it before it opens an image: the
//! signatures of the formats people have (qcow2, VMDK, VHD, VHDX, VDI) and
//! an ISO 9660 volume. vx86 reads raw and qcow2 images; anything else is named,
//! with the conversion to run, instead of being used as raw and failing at
//! boot ("No bootable device").

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A recognised non-raw image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Qcow2,
    /// qcow version 1.
    Qcow,
    Vmdk,
    Vhd,
    Vhdx,
    Vdi,
    /// An ISO 9660 CD image.
    Iso9660,
}

impl ImageFormat {
    /// QEMU's name for the format (`-f`/`format=`).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Qcow => "qcow",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vhd => "vpc",
            ImageFormat::Vhdx => "vhdx",
            ImageFormat::Vdi => "vdi",
            ImageFormat::Iso9660 => "iso9660",
        }
    }

    /// What a person calls it.
    pub fn describe(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 => "a qcow2 image",
            ImageFormat::Qcow => "a qcow (version 1) image",
            ImageFormat::Vmdk => "a VMDK image",
            ImageFormat::Vhd => "a VHD (Virtual PC) image",
            ImageFormat::Vhdx => "a VHDX image",
            ImageFormat::Vdi => "a VirtualBox VDI image",
            ImageFormat::Iso9660 => "an ISO 9660 CD image",
        }
    }

    /// How to use it with vx86 today.
    pub fn advice(self, path: &Path) -> String {
        match self {
            ImageFormat::Iso9660 => format!(
                "use it as a CD with -cdrom {} (a hybrid ISO, isohybrid, also boots as a disk \
                 with -drive file={},format=raw)",
                path.display(),
                path.display()
            ),
            f => format!(
                "vx86 reads raw and qcow2 images only: convert it with `qemu-img convert -f {} -O raw {} {}.raw`",
                f.name(),
                path.display(),
                path.display()
            ),
        }
    }
}

/// Looks at the image's signatures. `None`: nothing but raw data. I/O
/// errors are left for the open that follows to report.
pub fn probe(path: &Path) -> Option<ImageFormat> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; 0x8006];
    let n = read_up_to(&mut f, &mut head);
    head.truncate(n);
    if let Some(fmt) = probe_head(&head) {
        return Some(fmt);
    }
    // VHD (fixed): the 512-byte footer ends the file, cookie "conectix".
    let len = f.metadata().ok()?.len();
    if len >= 512 && f.seek(SeekFrom::Start(len - 512)).is_ok() {
        let mut foot = [0u8; 8];
        if read_up_to(&mut f, &mut foot) == 8 && &foot == b"conectix" {
            return Some(ImageFormat::Vhd);
        }
    }
    None
}

fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// The signatures found in the first 32 KiB + 6 bytes.
pub fn probe_head(b: &[u8]) -> Option<ImageFormat> {
    let at = |off: usize, sig: &[u8]| b.get(off..off + sig.len()) == Some(sig);
    if at(0, b"QFI\xfb") {
        // Version (big-endian u32 at 4): 1 is qcow, 2 and 3 are qcow2.
        return Some(if at(4, &[0, 0, 0, 1]) {
            ImageFormat::Qcow
        } else {
            ImageFormat::Qcow2
        });
    }
    if at(0, b"KDMV") || at(0, b"COWD") || at(0, b"# Disk DescriptorFile") {
        return Some(ImageFormat::Vmdk);
    }
    if at(0, b"vhdxfile") {
        return Some(ImageFormat::Vhdx);
    }
    if at(0, b"conectix") {
        return Some(ImageFormat::Vhd);
    }
    // VDI: the pre-header text, then the signature 0xBEDA107F at 0x40.
    if at(0x40, &0xBEDA_107Fu32.to_le_bytes()) {
        return Some(ImageFormat::Vdi);
    }
    // ISO 9660: the first volume descriptor at sector 16 (2048-byte
    // sectors): type byte, then "CD001" (ECMA-119 8.1). A hybrid ISO also
    // has an MBR; it is still an ISO.
    if at(0x8001, b"CD001") {
        return Some(ImageFormat::Iso9660);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut q = vec![0u8; 512];
        q[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
        assert_eq!(probe_head(&q), Some(ImageFormat::Qcow2));
        q[7] = 1;
        assert_eq!(probe_head(&q), Some(ImageFormat::Qcow));
        assert_eq!(probe_head(b"KDMV\x01\0\0\0"), Some(ImageFormat::Vmdk));
        assert_eq!(probe_head(b"vhdxfile...."), Some(ImageFormat::Vhdx));
        let mut vdi = vec![0u8; 0x80];
        vdi[0x40..0x44].copy_from_slice(&0xBEDA_107Fu32.to_le_bytes());
        assert_eq!(probe_head(&vdi), Some(ImageFormat::Vdi));
        let mut iso = vec![0u8; 0x8006];
        iso[0x8000] = 1;
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(probe_head(&iso), Some(ImageFormat::Iso9660));
        assert_eq!(probe_head(&[0u8; 0x8006]), None);
        assert_eq!(probe_head(&[]), None);
    }

    #[test]
    fn vhd_footer_at_the_end() {
        let mut img = vec![0u8; 4096];
        let n = img.len();
        img[n - 512..n - 504].copy_from_slice(b"conectix");
        let t = crate::block::test_util::TempFile::with_contents(&img);
        assert_eq!(probe(&t.0), Some(ImageFormat::Vhd));
        let raw = crate::block::test_util::TempFile::with_contents(&[0u8; 4096]);
        assert_eq!(probe(&raw.0), None);
    }
}
