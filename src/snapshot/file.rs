//! The snapshot file's frame: magic, version, checksum, length (see the
//! table in `crate::snapshot`). Written to a temporary file beside the
//! target and renamed into place, so a failed save leaves no partial file.

use super::{decode, encode, Snapshot, SnapshotError};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"VX86SNAP";
/// Bumped whenever the payload's types change in a way old readers would
/// misread; a reader refuses versions it does not know, naming them.
pub const FORMAT_VERSION: u32 = 1;
const HEADER: usize = 24;

/// Writes `snap` to `path`.
pub fn write_file(path: &Path, snap: &Snapshot) -> Result<(), SnapshotError> {
    let payload = encode(snap).map_err(|err| SnapshotError::Save {
        path: path.into(),
        err,
    })?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
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

/// Reads and checks a snapshot file.
pub fn read_file(path: &Path) -> Result<Snapshot, SnapshotError> {
    let data = std::fs::read(path).map_err(|err| SnapshotError::Read {
        path: path.into(),
        err,
    })?;
    let p = || path.to_path_buf();
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotSnapshot { path: p() });
    }
    let word = |at: usize| -> Option<[u8; 4]> { data.get(at..at + 4)?.try_into().ok() };
    let truncated = || SnapshotError::Truncated {
        path: p(),
        have: data.len() as u64,
        want: HEADER as u64,
    };
    let version = u32::from_le_bytes(word(8).ok_or_else(truncated)?);
    if version > FORMAT_VERSION {
        return Err(SnapshotError::Newer { path: p(), version });
    }
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Unknown { path: p(), version });
    }
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
    let payload = &data[HEADER..];
    if crc32fast::hash(payload) != crc {
        return Err(SnapshotError::Checksum { path: p() });
    }
    decode(payload).map_err(|err| SnapshotError::Decode { path: p(), err })
}
