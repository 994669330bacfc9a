//! The built-in default guest: vx86's BIOS (`firmware/bios.asm`) and its boot
//! disk (`firmware/bootdisk.asm`: a text screen, a PIT-driven clock, keyboard
//! and COM1 echo), both embedded in the binary. The disk is attached as IDE
//! primary master (drive 80h) read-only under a copy-on-write overlay, so the
//! BIOS boots it through INT 19h -> INT 13h like any other disk.

use crate::block::{MemImage, Overlay};
use crate::devices::ata::AttachError;
use crate::machine::Machine;

/// vx86's BIOS image (64 KiB).
pub const BIOS: &[u8] = include_bytes!("../../firmware/bios.bin");

/// The built-in boot disk image.
pub const BOOT_DISK: &[u8] = include_bytes!("../../firmware/bootdisk.img");

/// Loads the built-in BIOS.
pub fn load_bios(m: &mut Machine) -> Result<(), crate::memory::MemoryError> {
    m.mem.load_bios("built-in firmware", BIOS)
}

/// Attaches the built-in boot disk as primary master (drive 80h), a snapshot:
/// guest writes land in memory and vanish at exit.
pub fn attach_boot_disk(m: &mut Machine) -> Result<(), AttachError> {
    let disk = Overlay::new(Box::new(MemImage::read_only(BOOT_DISK)));
    m.attach_drive(0, Box::new(disk))
}
