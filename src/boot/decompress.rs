//! Host-side decompression of a bzImage payload (boot protocol 2.08+:
//! `payload_offset`/`payload_length` locate the compressed `vmlinux`), so the
//! kernel can be entered through its PVH entry instead of running its own
//! decompressor in the guest.
//!
//! The format is recognised by its magic, as the kernel's own
//! `decompress_method()` (lib/decompress.c) does. The kernel's build appends
//! the uncompressed size as 4 little-endian bytes after every format's stream
//! (`size_append` in scripts/Makefile.lib); each decoder here stops at the end
//! of its stream, so that trailer is simply not read, and its value is only a
//! capacity hint. Output is bounded by the caller's limit (the guest's RAM),
//! so a corrupt or hostile payload cannot exhaust host memory.
//!
//! Decoders are pure-Rust crates (the core builds for every host):
//! gzip `flate2` (rust backend), XZ and LZMA `lzma-rust2` (XZ with the x86
//! BCJ filter the kernel uses), zstd `ruzstd`, bzip2 `bzip2` (its pure-Rust
//! libbzip2 port), LZ4 `lz4_flex` blocks inside the legacy LZ4 frame format
//! parsed here.

use std::io::Read;
use thiserror::Error;

/// A payload compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Lzma,
    Xz,
    Lzo,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "LZMA",
            Compression::Xz => "XZ",
            Compression::Lzo => "LZO",
            Compression::Lz4 => "LZ4",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecompressError {
    #[error("{0}-compressed payloads are not supported for host decompression")]
    Unsupported(Compression),
    #[error("{0} payload is corrupt: {1}")]
    Corrupt(Compression, String),
    #[error("{0} payload decompresses to more than {1} bytes (larger than guest RAM)")]
    TooLarge(Compression, u64),
}

/// Magic numbers (lib/decompress.c `compressed_formats`).
const MAGIC_GZIP: &[u8] = &[0x1F, 0x8B];
const MAGIC_GZIP_OLD: &[u8] = &[0x1F, 0x9E];
const MAGIC_BZIP2: &[u8] = b"BZh";
const MAGIC_LZMA: &[u8] = &[0x5D, 0x00, 0x00];
const MAGIC_XZ: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
const MAGIC_LZO: &[u8] = &[0x89, b'L', b'Z', b'O'];
/// Legacy LZ4 frame magic 0x184C2102 (as written by `lz4 -l`).
const MAGIC_LZ4_LEGACY: &[u8] = &[0x02, 0x21, 0x4C, 0x18];
const MAGIC_ZSTD: &[u8] = &[0x28, 0xB5, 0x2F, 0xFD];

/// Largest uncompressed block in a legacy LZ4 frame (8 MiB).
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// Recognises a payload's compression format by its first bytes.
pub fn detect(data: &[u8]) -> Option<Compression> {
    let table: [(&[u8], Compression); 8] = [
        (MAGIC_GZIP, Compression::Gzip),
        (MAGIC_GZIP_OLD, Compression::Gzip),
        (MAGIC_BZIP2, Compression::Bzip2),
        (MAGIC_LZMA, Compression::Lzma),
        (MAGIC_XZ, Compression::Xz),
        (MAGIC_LZO, Compression::Lzo),
        (MAGIC_LZ4_LEGACY, Compression::Lz4),
        (MAGIC_ZSTD, Compression::Zstd),
    ];
    table
        .iter()
        .find(|(m, _)| data.starts_with(m))
        .map(|&(_, c)| c)
}

/// Decompresses `data` in format `c`, producing at most `limit` bytes.
pub fn decompress(c: Compression, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |e: std::io::Error| DecompressError::Corrupt(c, e.to_string());
    let hint = size_hint(data).min(limit) as usize;
    let out = match c {
        Compression::Gzip => read_bounded(c, flate2::read::GzDecoder::new(data), hint, limit)?,
        Compression::Bzip2 => read_bounded(c, bzip2::read::BzDecoder::new(data), hint, limit)?,
        Compression::Lzma => {
            let r = lzma_rust2::LzmaReader::new_mem_limit(data, u32::MAX, None).map_err(corrupt)?;
            read_bounded(c, r, hint, limit)?
        }
        Compression::Xz => read_bounded(c, lzma_rust2::XzReader::new(data, false), hint, limit)?,
        Compression::Zstd => {
            // The window is bounded like the output (a small floor keeps
            // tiny limits meaning "output too large", not "bad window").
            let r = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                data,
                limit.max(1 << 20),
            )
            .map_err(|e| DecompressError::Corrupt(c, e.to_string()))?;
            read_bounded(c, r, hint, limit)?
        }
        Compression::Lz4 => lz4_legacy(data, limit)?,
        Compression::Lzo => return Err(DecompressError::Unsupported(c)),
    };
    if out.is_empty() {
        return Err(DecompressError::Corrupt(c, "no data".into()));
    }
    Ok(out)
}

/// The kernel's appended uncompressed size (the last 4 bytes).
fn size_hint(data: &[u8]) -> u64 {
    match data.len().checked_sub(4).and_then(|o| data.get(o..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as u64,
        _ => 0,
    }
}

fn read_bounded(
    c: Compression,
    r: impl Read,
    hint: usize,
    limit: u64,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::with_capacity(hint);
    r.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt(c, e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(DecompressError::TooLarge(c, limit));
    }
    Ok(out)
}

/// The legacy LZ4 frame (lib/decompress_unlz4.c): the magic, then blocks of
/// a 32-bit little-endian compressed size and an LZ4 block of at most 8 MiB
/// of output; a repeated magic starts a concatenated frame. The kernel's
/// 4-byte size trailer is the one word that is followed by nothing.
fn lz4_legacy(data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let c = Compression::Lz4;
    let corrupt = |m: &str| DecompressError::Corrupt(c, m.to_string());
    let mut out = Vec::with_capacity(size_hint(data).min(limit) as usize);
    let mut pos = MAGIC_LZ4_LEGACY.len();
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while let Some(word) = data.get(pos..pos + 4) {
        pos += 4;
        if word == MAGIC_LZ4_LEGACY {
            continue;
        }
        let size = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) as usize;
        if pos == data.len() {
            break; // the size trailer
        }
        let input = pos
            .checked_add(size)
            .and_then(|end| data.get(pos..end))
            .ok_or_else(|| corrupt("block runs past the end of the payload"))?;
        pos += size;
        let n = lz4_flex::block::decompress_into(input, &mut block)
            .map_err(|e| DecompressError::Corrupt(c, e.to_string()))?;
        if (out.len() + n) as u64 > limit {
            return Err(DecompressError::TooLarge(c, limit));
        }
        out.extend_from_slice(&block[..n]);
    }
    if pos < data.len() {
        return Err(corrupt("truncated block header"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        // Compressible but not trivial: an "executable-looking" byte pattern
        // with x86 CALL opcodes so the BCJ filter has work to do.
        let mut v = Vec::new();
        for i in 0u32..20_000 {
            v.push(0xE8);
            v.extend_from_slice(&(i.wrapping_mul(2654435761) >> 20).to_le_bytes());
            v.extend_from_slice(b"vx86 kernel ");
        }
        v
    }

    fn with_size(mut c: Vec<u8>, n: usize) -> Vec<u8> {
        c.extend_from_slice(&(n as u32).to_le_bytes());
        c
    }

    pub(crate) fn gzip(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(d).expect("gzip");
        e.finish().expect("gzip")
    }

    pub(crate) fn xz_bcj(d: &[u8]) -> Vec<u8> {
        let mut opts = lzma_rust2::XzOptions::with_preset(6);
        opts.prepend_pre_filter(lzma_rust2::filter::FilterType::BcjX86, 0);
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), opts).expect("xz");
        w.write_all(d).expect("xz");
        w.finish().expect("xz")
    }

    fn lzma_alone(d: &[u8]) -> Vec<u8> {
        let opts = lzma_rust2::LzmaOptions::with_preset(6);
        let mut w = lzma_rust2::LzmaWriter::new_use_header(Vec::new(), &opts, None).expect("lzma");
        w.write_all(d).expect("lzma");
        w.finish().expect("lzma")
    }

    fn lz4_legacy_frame(d: &[u8]) -> Vec<u8> {
        let mut out = MAGIC_LZ4_LEGACY.to_vec();
        for chunk in d.chunks(LZ4_LEGACY_BLOCK) {
            let b = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(&b);
        }
        out
    }

    fn bzip2(d: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(d).expect("bzip2");
        e.finish().expect("bzip2")
    }

    fn zstd(d: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(d, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn every_format_round_trips_with_the_size_trailer() {
        let d = sample();
        let cases: [(Compression, Vec<u8>); 6] = [
            (Compression::Gzip, gzip(&d)),
            (Compression::Xz, xz_bcj(&d)),
            (Compression::Lzma, lzma_alone(&d)),
            (Compression::Lz4, lz4_legacy_frame(&d)),
            (Compression::Bzip2, bzip2(&d)),
            (Compression::Zstd, zstd(&d)),
        ];
        for (fmt, packed) in cases {
            let packed = with_size(packed, d.len());
            assert_eq!(detect(&packed), Some(fmt), "{fmt}");
            let out = decompress(fmt, &packed, 16 << 20).unwrap_or_else(|e| panic!("{fmt}: {e}"));
            assert!(out == d, "{fmt}: output differs");
        }
    }

    #[test]
    fn corruption_and_bombs_are_errors_not_panics() {
        let d = sample();
        for (fmt, packed) in [
            (Compression::Gzip, gzip(&d)),
            (Compression::Xz, xz_bcj(&d)),
            (Compression::Lzma, lzma_alone(&d)),
            (Compression::Lz4, lz4_legacy_frame(&d)),
            (Compression::Bzip2, bzip2(&d)),
            (Compression::Zstd, zstd(&d)),
        ] {
            // Flip bytes in the middle of the stream.
            let mut bad = packed.clone();
            let mid = bad.len() / 2;
            for b in &mut bad[mid..mid + 16] {
                *b ^= 0x5A;
            }
            let r = decompress(fmt, &bad, 16 << 20);
            assert!(
                r.as_ref().map_or(true, |o| *o != d),
                "{fmt}: corruption unnoticed"
            );
            // Truncated streams.
            let r = decompress(fmt, &packed[..packed.len() / 3], 16 << 20);
            assert!(
                r.as_ref().map_or(true, |o| *o != d),
                "{fmt}: truncation unnoticed"
            );
            // Output bounded by the limit.
            assert!(
                matches!(
                    decompress(fmt, &packed, 1000),
                    Err(DecompressError::TooLarge(..))
                ),
                "{fmt}: limit not enforced"
            );
        }
    }

    #[test]
    fn detect_knows_the_kernel_magics() {
        assert_eq!(detect(&[0x89, b'L', b'Z', b'O', 0]), Some(Compression::Lzo));
        assert_eq!(detect(b"\x7fELF"), None);
        assert!(matches!(
            decompress(Compression::Lzo, b"\x89LZO", 100),
            Err(DecompressError::Unsupported(Compression::Lzo))
        ));
    }
}
