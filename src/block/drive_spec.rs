//! QEMU's `-drive` option string, as far as vx86's disks need it.
//!
//! Syntax (QEMU's option syntax): `key=value` pairs separated by commas; a comma
//! inside a value is written `,,`; a boolean key given alone (`snapshot`) means
//! `on`. Recognised keys: `file`, `format` (`raw` or `qcow2`), `if` (`ide`,
//! `virtio`, or `none` for a drive a `-device virtio-blk-pci,drive=ID` takes),
//! `id`, `serial`, `index` (0..=3: primary master, primary slave, secondary
//! master, secondary slave), `media` (`disk`, or `cdrom` for an ATAPI CD-ROM
//! drive on the IDE channels, read-only, `file=` optional: an empty drive),
//! `readonly`, `snapshot`, `cache`. Anything else
//! is refused by name rather than silently ignored, so a command line that
//! works here means the same as in QEMU.

use std::path::PathBuf;

/// Highest `index=`: the ISA PC has two IDE channels of two drives each.
pub const MAX_DRIVE_INDEX: u8 = 3;

/// QEMU's `cache=` modes. vx86 keeps no host-side cache of its own, so they
/// differ only in when data reaches the host medium: `writethrough` and
/// `directsync` sync after every write, `unsafe` never syncs (guest flushes are
/// ignored), the others sync when the guest flushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    #[default]
    Writeback,
    None,
    Writethrough,
    Directsync,
    Unsafe,
}

/// Which controller a drive hangs on (`if=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// An ATA disk on the IDE channels.
    #[default]
    Ide,
    /// A virtio-blk-pci device of its own (`-M pc`).
    Virtio,
    /// No device: a `-device virtio-blk-pci,drive=ID` names it.
    None,
}

/// The image format `format=` asks for; without it the file is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

/// Longest `serial=`: the virtio-blk ID string is 20 bytes (virtio 1.0
/// 5.2.6, VIRTIO_BLK_ID_BYTES).
pub const MAX_SERIAL_LEN: usize = 20;

/// One parsed `-drive` (or `-hda`..`-hdd`) option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSpec {
    /// Host image file.
    pub file: PathBuf,
    /// IDE position 0..=3; `None` lets the machine pick the first free slot.
    pub index: Option<u8>,
    /// `readonly=on`: the guest cannot write.
    pub read_only: bool,
    /// `snapshot=on`: writes go to a volatile in-memory overlay.
    pub snapshot: bool,
    pub cache: CacheMode,
    /// `format=`: `raw` uses the bytes as a raw disk even if they look like
    /// another format; `None` probes the file as QEMU does.
    pub format: Option<DiskFormat>,
    /// `if=`.
    pub interface: Interface,
    /// `id=`: the name a `-device ...,drive=ID` refers to.
    pub id: Option<String>,
    /// `serial=`: the disk's serial number (virtio-blk GET_ID).
    pub serial: Option<String>,
    /// `media=cdrom`: a CD-ROM drive with `file` (if not empty) as its disc.
    pub cdrom: bool,
}

/// A `-drive` option vx86 cannot honour, with the offending key or value named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriveSpecError {
    #[error(
        "-drive: unknown option '{0}' (supported: file, format, if, id, serial, index, media, \
         readonly, snapshot, cache)"
    )]
    UnknownKey(String),
    #[error("-drive: format '{0}' is not supported, only format=raw or format=qcow2 (convert with: qemu-img convert -O raw IN OUT)")]
    UnsupportedFormat(String),
    #[error("-drive: interface if={0} is not supported, only if=ide, if=virtio or if=none")]
    UnsupportedInterface(String),
    #[error("-drive: media={0} is not supported, only media=disk or media=cdrom")]
    UnsupportedMedia(String),
    #[error("-drive: media=cdrom needs if=ide (vx86's CD-ROM drive is ATAPI on the IDE channels)")]
    CdromInterface,
    #[error("-drive: {key}={value} is invalid, expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("-drive: option '{0}' needs a value ({0}=...)")]
    MissingValue(String),
    #[error("-drive: option '{0}' is given twice")]
    Duplicate(String),
    #[error("-drive: empty option name in '{0}'")]
    EmptyKey(String),
    #[error("-drive: no file= given")]
    MissingFile,
}

impl DriveSpec {
    /// `-hda FILE` (index 0) .. `-hdd FILE` (index 3). The file name is taken
    /// literally: QEMU does not apply comma escaping to it.
    pub fn hd(index: u8, file: &str) -> Result<DriveSpec, DriveSpecError> {
        if index > MAX_DRIVE_INDEX {
            return Err(DriveSpecError::BadValue {
                key: "index".into(),
                value: index.to_string(),
                expected: "0, 1, 2 or 3",
            });
        }
        if file.is_empty() {
            return Err(DriveSpecError::MissingFile);
        }
        Ok(DriveSpec {
            file: PathBuf::from(file),
            index: Some(index),
            read_only: false,
            snapshot: false,
            cache: CacheMode::default(),
            format: None,
            interface: Interface::Ide,
            id: None,
            serial: None,
            cdrom: false,
        })
    }

    /// `-cdrom FILE`: a CD-ROM drive at index 2 (secondary master), as QEMU
    /// places it. An empty FILE is an empty drive.
    pub fn cdrom(file: &str) -> DriveSpec {
        DriveSpec {
            file: PathBuf::from(file),
            index: Some(2),
            read_only: true,
            snapshot: false,
            cache: CacheMode::default(),
            format: None,
            interface: Interface::Ide,
            id: None,
            serial: None,
            cdrom: true,
        }
    }

    /// Parses a `-drive` option string.
    pub fn parse(opts: &str) -> Result<DriveSpec, DriveSpecError> {
        let mut file: Option<String> = None;
        let mut index = None;
        let mut read_only = None;
        let mut snapshot = None;
        let mut cache = None;
        let mut format = None;
        let mut interface = Interface::Ide;
        let mut id = None;
        let mut serial = None;
        let mut cdrom = false;
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in split_options(opts)? {
            if seen.contains(&key) {
                return Err(DriveSpecError::Duplicate(key));
            }
            seen.push(key.clone());
            let need =
                |v: Option<String>| v.ok_or_else(|| DriveSpecError::MissingValue(key.clone()));
            match key.as_str() {
                "file" => file = Some(need(value)?),
                "format" => {
                    let v = need(value)?;
                    format = Some(match v.as_str() {
                        "raw" => DiskFormat::Raw,
                        "qcow2" => DiskFormat::Qcow2,
                        _ => return Err(DriveSpecError::UnsupportedFormat(v)),
                    });
                }
                "if" => {
                    let v = need(value)?;
                    interface = match v.as_str() {
                        "ide" => Interface::Ide,
                        "virtio" => Interface::Virtio,
                        "none" => Interface::None,
                        _ => return Err(DriveSpecError::UnsupportedInterface(v)),
                    };
                }
                "id" => id = Some(need(value)?),
                "serial" => {
                    let v = need(value)?;
                    if v.len() > MAX_SERIAL_LEN {
                        return Err(DriveSpecError::BadValue {
                            key,
                            value: v,
                            expected: "at most 20 bytes",
                        });
                    }
                    serial = Some(v);
                }
                "media" => {
                    let v = need(value)?;
                    cdrom = match v.as_str() {
                        "disk" => false,
                        "cdrom" => true,
                        _ => return Err(DriveSpecError::UnsupportedMedia(v)),
                    };
                }
                "index" => {
                    let v = need(value)?;
                    match v.parse::<u8>() {
                        Ok(n) if n <= MAX_DRIVE_INDEX => index = Some(n),
                        _ => {
                            return Err(DriveSpecError::BadValue {
                                key,
                                value: v,
                                expected: "0, 1, 2 or 3",
                            })
                        }
                    }
                }
                "readonly" => read_only = Some(parse_bool(&key, value)?),
                "snapshot" => snapshot = Some(parse_bool(&key, value)?),
                "cache" => {
                    let v = need(value)?;
                    cache = Some(match v.as_str() {
                        "writeback" => CacheMode::Writeback,
                        "none" => CacheMode::None,
                        "writethrough" => CacheMode::Writethrough,
                        "directsync" => CacheMode::Directsync,
                        "unsafe" => CacheMode::Unsafe,
                        _ => {
                            return Err(DriveSpecError::BadValue {
                                key,
                                value: v,
                                expected: "writeback, none, writethrough, directsync or unsafe",
                            })
                        }
                    });
                }
                _ => return Err(DriveSpecError::UnknownKey(key)),
            }
        }
        let file = match file {
            Some(f) if !f.is_empty() => PathBuf::from(f),
            // A CD-ROM drive may be empty (no disc in the tray).
            _ if cdrom => PathBuf::new(),
            _ => return Err(DriveSpecError::MissingFile),
        };
        if cdrom && interface != Interface::Ide {
            return Err(DriveSpecError::CdromInterface);
        }
        Ok(DriveSpec {
            file,
            index,
            // A CD is read-only whatever readonly= says, as in QEMU.
            read_only: read_only.unwrap_or(false) || cdrom,
            snapshot: snapshot.unwrap_or(false),
            cache: cache.unwrap_or_default(),
            format,
            interface,
            id,
            serial,
            cdrom,
        })
    }
}

/// QEMU's boolean spellings.
fn parse_bool(key: &str, value: Option<String>) -> Result<bool, DriveSpecError> {
    match value.as_deref() {
        None | Some("on") | Some("yes") | Some("true") | Some("y") => Ok(true),
        Some("off") | Some("no") | Some("false") | Some("n") => Ok(false),
        Some(v) => Err(DriveSpecError::BadValue {
            key: key.into(),
            value: v.into(),
            expected: "on or off",
        }),
    }
}

/// Splits `k1=v1,k2,k3=a,,b` into `[(k1, Some(v1)), (k2, None), (k3, Some("a,b"))]`.
/// A trailing comma is allowed, as in QEMU.
fn split_options(opts: &str) -> Result<Vec<(String, Option<String>)>, DriveSpecError> {
    let mut out = Vec::new();
    let mut chars = opts.chars().peekable();
    while chars.peek().is_some() {
        let mut key = String::new();
        let mut value = None;
        while let Some(c) = chars.next() {
            match c {
                ',' => break,
                '=' => {
                    let mut v = String::new();
                    while let Some(c) = chars.next() {
                        if c == ',' {
                            if chars.peek() == Some(&',') {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        v.push(c);
                    }
                    // The loop above consumed the separating comma (if any).
                    value = Some(v);
                    break;
                }
                _ => key.push(c),
            }
        }
        if key.is_empty() {
            return Err(DriveSpecError::EmptyKey(opts.into()));
        }
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_option_string() {
        let s = DriveSpec::parse(
            "file=disk.img,format=raw,if=ide,index=2,media=disk,readonly=on,snapshot=off,cache=unsafe",
        )
        .unwrap();
        assert_eq!(
            s,
            DriveSpec {
                file: PathBuf::from("disk.img"),
                index: Some(2),
                read_only: true,
                snapshot: false,
                cache: CacheMode::Unsafe,
                format: Some(DiskFormat::Raw),
                interface: Interface::Ide,
                id: None,
                serial: None,
                cdrom: false,
            }
        );
    }

    #[test]
    fn defaults_with_file_only() {
        let s = DriveSpec::parse("file=/tmp/a.img").unwrap();
        assert_eq!(s.file, PathBuf::from("/tmp/a.img"));
        assert_eq!(s.index, None);
        assert!(!s.read_only && !s.snapshot);
        assert_eq!(s.cache, CacheMode::Writeback);
    }

    #[test]
    fn doubled_commas_escape_a_comma_in_the_file_name() {
        let s = DriveSpec::parse("file=a,,b,,,,c.img,snapshot=on,").unwrap();
        assert_eq!(s.file, PathBuf::from("a,b,,c.img"));
        assert!(s.snapshot);
    }

    #[test]
    fn bare_boolean_means_on_and_spellings() {
        let s = DriveSpec::parse("file=x,snapshot,readonly=yes").unwrap();
        assert!(s.snapshot && s.read_only);
        let s = DriveSpec::parse("file=x,snapshot=false,readonly=off").unwrap();
        assert!(!s.snapshot && !s.read_only);
        assert_eq!(
            DriveSpec::parse("file=x,readonly=maybe").unwrap_err(),
            DriveSpecError::BadValue {
                key: "readonly".into(),
                value: "maybe".into(),
                expected: "on or off"
            }
        );
    }

    #[test]
    fn other_formats_are_refused_by_name() {
        let e = DriveSpec::parse("file=x.vmdk,format=vmdk").unwrap_err();
        assert_eq!(e, DriveSpecError::UnsupportedFormat("vmdk".into()));
        assert!(e.to_string().contains("format 'vmdk'"));
        assert!(e.to_string().contains("only format=raw or format=qcow2"));
        let q = DriveSpec::parse("file=x.qcow2,format=qcow2").unwrap();
        assert_eq!(q.format, Some(DiskFormat::Qcow2));
    }

    #[test]
    fn other_interfaces_and_media_are_refused() {
        assert_eq!(
            DriveSpec::parse("file=x,if=scsi").unwrap_err(),
            DriveSpecError::UnsupportedInterface("scsi".into())
        );
        let v = DriveSpec::parse("file=x,if=virtio,serial=abc").unwrap();
        assert_eq!(v.interface, Interface::Virtio);
        assert_eq!(v.serial.as_deref(), Some("abc"));
        let n = DriveSpec::parse("file=x,if=none,id=d0").unwrap();
        assert_eq!(
            (n.interface, n.id.as_deref()),
            (Interface::None, Some("d0"))
        );
        assert!(DriveSpec::parse("file=x,serial=123456789012345678901").is_err());
        assert_eq!(
            DriveSpec::parse("file=x,media=tape").unwrap_err(),
            DriveSpecError::UnsupportedMedia("tape".into())
        );
        let cd = DriveSpec::parse("file=x.iso,media=cdrom,index=1").unwrap();
        assert!(cd.cdrom && cd.read_only);
        assert_eq!(cd.index, Some(1));
        assert_eq!(cd, {
            let mut c = DriveSpec::cdrom("x.iso");
            c.index = Some(1);
            c
        });
        let empty = DriveSpec::parse("media=cdrom,if=ide").unwrap();
        assert_eq!(empty.file, PathBuf::new());
        assert_eq!(
            DriveSpec::parse("file=x,media=cdrom,if=virtio").unwrap_err(),
            DriveSpecError::CdromInterface
        );
        assert!(DriveSpec::parse("file=x,if=ide").is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = DriveSpec::parse("file=x,aio=native").unwrap_err();
        assert_eq!(e, DriveSpecError::UnknownKey("aio".into()));
        assert!(e.to_string().contains("'aio'"));
        assert_eq!(
            DriveSpec::parse("file=x,discard").unwrap_err(),
            DriveSpecError::UnknownKey("discard".into())
        );
    }

    #[test]
    fn index_range_cache_values_and_missing_pieces() {
        assert!(matches!(
            DriveSpec::parse("file=x,index=4").unwrap_err(),
            DriveSpecError::BadValue { .. }
        ));
        assert!(matches!(
            DriveSpec::parse("file=x,index=-1").unwrap_err(),
            DriveSpecError::BadValue { .. }
        ));
        assert_eq!(DriveSpec::parse("file=x,index=3").unwrap().index, Some(3));
        assert_eq!(
            DriveSpec::parse("file=x,cache=writethrough").unwrap().cache,
            CacheMode::Writethrough
        );
        assert!(DriveSpec::parse("file=x,cache=fast").is_err());
        assert_eq!(
            DriveSpec::parse("format=raw").unwrap_err(),
            DriveSpecError::MissingFile
        );
        assert_eq!(
            DriveSpec::parse("file=").unwrap_err(),
            DriveSpecError::MissingFile
        );
        assert_eq!(
            DriveSpec::parse("file").unwrap_err(),
            DriveSpecError::MissingValue("file".into())
        );
        assert_eq!(
            DriveSpec::parse("file=x,file=y").unwrap_err(),
            DriveSpecError::Duplicate("file".into())
        );
        assert!(matches!(
            DriveSpec::parse(",file=x").unwrap_err(),
            DriveSpecError::EmptyKey(_)
        ));
        assert_eq!(
            DriveSpec::parse("").unwrap_err(),
            DriveSpecError::MissingFile
        );
    }

    #[test]
    fn hda_equals_drive_with_index_0() {
        assert_eq!(
            DriveSpec::hd(0, "my,disk.img").unwrap(),
            DriveSpec::parse("file=my,,disk.img,index=0").unwrap()
        );
        assert_eq!(DriveSpec::hd(3, "d").unwrap().index, Some(3));
        assert!(DriveSpec::hd(4, "d").is_err());
        assert_eq!(
            DriveSpec::hd(0, "").unwrap_err(),
            DriveSpecError::MissingFile
        );
    }
}
