//! The snapshot file's frame: magic, version, checksum, length, and the
//! summary (see the table in `crate::snapshot`). Written to a temporary file
//! beside the target and renamed into place, so a failed save leaves no
//! partial file.

use super::{decode, encode, Snapshot, SnapshotError, Summary};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"VX86SNAP";
/// Bumped whenever the payload's types change in a way old readers would
/// misread; a reader refuses versions it does not know, naming them and the
/// vx86 that wrote them.
///
/// 1: magic, version, CRC, length, then the payload (its first field the
///    writer). 2: a summary (writer, date, guest clock) between the length
///    and the payload, inside the checksum; CD-ROM media in the
///    configuration. 3: virtio-blk-pci and virtio-net-pci state; drive
///    records with the image format and read-only flag, virtio disks among
///    them; the network cards in the configuration. 4: the ACPI PM device's
///    GPE0 block and PCI hotplug registers.
pub const FORMAT_VERSION: u32 = 4;
/// Magic, version, CRC-32, body length.
const HEADER: usize = 24;
/// Version 2 on: the summary's length (u32) follows the header.
const SUMMARY_AT: usize = HEADER + 4;
/// A summary longer than this is not one (a damaged or foreign file).
const SUMMARY_MAX: usize = 64 << 10;

/// Writes `snap` to `path` with `summary` in its header.
pub fn write_file(path: &Path, summary: &Summary, snap: &Snapshot) -> Result<(), SnapshotError> {
    let save = |err| SnapshotError::Save {
        path: path.into(),
        err,
    };
    let summary = encode(summary).map_err(save)?;
    let payload = encode(snap).map_err(save)?;
    let mut crc = crc32fast::Hasher::new();
    let summary_len = (summary.len() as u32).to_le_bytes();
    crc.update(&summary_len);
    crc.update(&summary);
    crc.update(&payload);
    let body_len = (4 + summary.len() + payload.len()) as u64;
    let mut header = Vec::with_capacity(SUMMARY_AT + summary.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&crc.finalize().to_le_bytes());
    header.extend_from_slice(&body_len.to_le_bytes());
    header.extend_from_slice(&summary_len);
    header.extend_from_slice(&summary);
    let tmp = temp_path(path);
    let werr = |err| SnapshotError::Write {
        path: path.into(),
        err,
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&header)?;
        f.write_all(&payload)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// The writer named at the start of a file's body, as far as `data` (the
/// file's first bytes) shows it: version 1 payloads begin with it, version
/// 2 and later summaries too (a postcard string: varint length, UTF-8).
fn writer_of(version: u32, data: &[u8]) -> Option<String> {
    let at = if version == 1 { HEADER } else { SUMMARY_AT };
    let (w, _) = postcard::take_from_bytes::<String>(data.get(at..)?).ok()?;
    (w.starts_with("vx86") && w.len() < 100).then_some(w)
}

/// " (written by vx86 X)" when the file says who wrote it.
fn written_by(version: u32, data: &[u8]) -> String {
    writer_of(version, data).map_or_else(String::new, |w| format!(" (written by {w})"))
}

/// Checks the magic and the version; the refusals name the file's version
/// and its writer.
fn check_version(path: &Path, data: &[u8]) -> Result<u32, SnapshotError> {
    let p = || path.to_path_buf();
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotSnapshot { path: p() });
    }
    let version = data
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(SnapshotError::Truncated {
            path: p(),
            have: data.len() as u64,
            want: HEADER as u64,
        })?;
    if version > FORMAT_VERSION {
        return Err(SnapshotError::Newer {
            path: p(),
            version,
            writer: written_by(version, data),
        });
    }
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Older {
            path: p(),
            version,
            writer: written_by(version, data),
        });
    }
    Ok(version)
}

/// The summary of the snapshot file at `path`, read from its first bytes
/// only (for `info snapshots`): not checksummed, so for listing only.
pub fn read_summary(path: &Path) -> Result<Summary, SnapshotError> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take((SUMMARY_AT + SUMMARY_MAX) as u64)
                .read_to_end(&mut head)
        })
        .map_err(|err| SnapshotError::Read {
            path: path.into(),
            err,
        })?;
    check_version(path, &head)?;
    let (summary, _) = summary_of(path, &head)?;
    Ok(summary)
}

/// Splits a version-2 body into its summary and the payload after it.
fn summary_of<'a>(path: &Path, data: &'a [u8]) -> Result<(Summary, &'a [u8]), SnapshotError> {
    let corrupt = || SnapshotError::Checksum { path: path.into() };
    let len = data
        .get(HEADER..SUMMARY_AT)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(corrupt)? as usize;
    if len > SUMMARY_MAX {
        return Err(corrupt());
    }
    let bytes = data
        .get(SUMMARY_AT..SUMMARY_AT + len)
        .ok_or(SnapshotError::Truncated {
            path: path.into(),
            have: data.len() as u64,
            want: (SUMMARY_AT + len) as u64,
        })?;
    let summary = decode(bytes).map_err(|err| SnapshotError::Decode {
        path: path.into(),
        err,
    })?;
    Ok((summary, &data[SUMMARY_AT + len..]))
}

/// Reads and checks a snapshot file.
pub fn read_file(path: &Path) -> Result<Snapshot, SnapshotError> {
    let data = std::fs::read(path).map_err(|err| SnapshotError::Read {
        path: path.into(),
        err,
    })?;
    let p = || path.to_path_buf();
    check_version(path, &data)?;
    let truncated = || SnapshotError::Truncated {
        path: p(),
        have: data.len() as u64,
        want: HEADER as u64,
    };
    let word = |at: usize| -> Option<[u8; 4]> { data.get(at..at + 4)?.try_into().ok() };
    let crc = u32::from_le_bytes(word(12).ok_or_else(truncated)?);
    let len_bytes: [u8; 8] = data
        .get(16..HEADER)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(truncated)?;
    let len = u64::from_le_bytes(len_bytes);
    let have = (data.len() - HEADER) as u64;
    if have < len {
        return Err(SnapshotError::Truncated {
            path: p(),
            have: data.len() as u64,
            want: HEADER as u64 + len,
        });
    }
    if have > len {
        return Err(SnapshotError::Checksum { path: p() });
    }
    if crc32fast::hash(&data[HEADER..]) != crc {
        return Err(SnapshotError::Checksum { path: p() });
    }
    let (_, payload) = summary_of(path, &data)?;
    decode(payload).map_err(|err| SnapshotError::Decode { path: p(), err })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `version` whose body begins with the writer string, as
    /// version 1 payloads and version 2 summaries do.
    fn framed(version: u32, writer: &str) -> Vec<u8> {
        let w = encode(&writer.to_string()).expect("encode");
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&version.to_le_bytes());
        f.extend_from_slice(&[0; 12]);
        if version >= 2 {
            f.extend_from_slice(&(w.len() as u32).to_le_bytes());
        }
        f.extend_from_slice(&w);
        f
    }

    #[test]
    fn refusals_name_the_version_and_the_writer() {
        let p = Path::new("old.snap");
        let msg = |data: &[u8]| check_version(p, data).err().map(|e| e.to_string());
        let v = FORMAT_VERSION;
        for old in 1..v {
            assert_eq!(
                msg(&framed(old, "vx86 0.1.0")),
                Some(format!(
                    "old.snap: snapshot format version {old} (written by vx86 0.1.0) is older \
                     than this vx86 reads ({v}); load it with the vx86 that wrote it"
                ))
            );
        }
        assert_eq!(
            msg(&framed(7, "vx86 9.0.0")),
            Some(format!(
                "old.snap: snapshot format version 7 (written by vx86 9.0.0) is newer than \
                 this vx86 reads (up to {v})"
            ))
        );
        // A body that does not say who wrote it: the version alone.
        let mut anon = framed(1, "x");
        anon.truncate(HEADER);
        assert_eq!(
            msg(&anon),
            Some(format!(
                "old.snap: snapshot format version 1 is older than this vx86 reads ({v}); \
                 load it with the vx86 that wrote it"
            ))
        );
        assert_eq!(check_version(p, &framed(v, "vx86 0.1.0")).ok(), Some(v));
    }
}
