//! Guest RAM in a snapshot: 1 MiB chunks; in each, a bitmap of the 4 KiB
//! pages that are not all zero, and those pages LZ4-compressed. A booted
//! guest's RAM is mostly zero or compressible, so the file is a fraction of
//! the RAM size and loads at memory speed.

use super::{bytes, StateError};
use serde::{Deserialize, Serialize};

const PAGE: usize = 4096;
const CHUNK_PAGES: usize = 256;
const CHUNK: usize = PAGE * CHUNK_PAGES;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RamImage {
    /// RAM size in bytes (also in the configuration; checked again here).
    pub size: u64,
    pub chunks: Vec<RamChunk>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RamChunk {
    /// Chunk number (byte offset / 1 MiB).
    pub index: u32,
    /// One bit per page, LSB first: the page is stored (not all zero).
    #[serde(with = "bytes")]
    pub present: Vec<u8>,
    /// The stored pages in order, LZ4 block format.
    #[serde(with = "bytes")]
    pub data: Vec<u8>,
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a | x) == 0
}

impl RamImage {
    pub fn save(ram: &[u8]) -> RamImage {
        let mut chunks = Vec::new();
        let mut pages = Vec::with_capacity(CHUNK);
        for (index, chunk) in ram.chunks(CHUNK).enumerate() {
            pages.clear();
            let mut present = vec![0u8; CHUNK_PAGES / 8];
            for (i, page) in chunk.chunks(PAGE).enumerate() {
                if !is_zero(page) {
                    present[i / 8] |= 1 << (i % 8);
                    pages.extend_from_slice(page);
                }
            }
            if pages.is_empty() {
                continue;
            }
            chunks.push(RamChunk {
                index: index as u32,
                present,
                data: lz4_flex::block::compress(&pages),
            });
        }
        RamImage {
            size: ram.len() as u64,
            chunks,
        }
    }

    /// Writes the image into `ram`; pages it does not hold become zero
    /// (pages already zero are not touched, so untouched host memory stays
    /// unallocated).
    pub fn restore(&self, ram: &mut [u8]) -> Result<(), StateError> {
        let bad = |m: String| StateError::Mismatch(m);
        if self.size != ram.len() as u64 {
            return Err(bad(format!(
                "RAM image is {} bytes, the machine has {}",
                self.size,
                ram.len()
            )));
        }
        let mut stored = self.chunks.iter().peekable();
        let mut pages = vec![0u8; CHUNK];
        for (index, chunk) in ram.chunks_mut(CHUNK).enumerate() {
            let this = match stored.peek() {
                Some(c) if c.index as usize == index => stored.next(),
                _ => None,
            };
            let Some(c) = this else {
                for page in chunk.chunks_mut(PAGE) {
                    if !is_zero(page) {
                        page.fill(0);
                    }
                }
                continue;
            };
            let n = (0..CHUNK_PAGES)
                .filter(|&i| {
                    c.present
                        .get(i / 8)
                        .is_some_and(|b| b & (1 << (i % 8)) != 0)
                })
                .count();
            let want = n * PAGE;
            let got = lz4_flex::block::decompress_into(&c.data, &mut pages[..want])
                .map_err(|e| bad(format!("RAM chunk {index}: {e}")))?;
            if got != want {
                return Err(bad(format!("RAM chunk {index}: {got} bytes, not {want}")));
            }
            let mut src = pages[..want].chunks(PAGE);
            for (i, page) in chunk.chunks_mut(PAGE).enumerate() {
                if c.present
                    .get(i / 8)
                    .is_some_and(|b| b & (1 << (i % 8)) != 0)
                {
                    match src.next() {
                        Some(s) => page.copy_from_slice(s),
                        None => return Err(bad(format!("RAM chunk {index}: short"))),
                    }
                } else if !is_zero(page) {
                    page.fill(0);
                }
            }
        }
        if stored.next().is_some() {
            return Err(bad("RAM chunks out of order or past the end".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_round_trip_skips_zero_pages() {
        let mut ram = vec![0u8; 3 * CHUNK + 5 * PAGE];
        ram[10] = 1;
        ram[CHUNK * 2 + PAGE * 7 + 3] = 0xAB;
        ram[3 * CHUNK + 4 * PAGE] = 9;
        let img = RamImage::save(&ram);
        assert_eq!(img.chunks.len(), 3);
        let mut back = vec![0xFFu8; ram.len()];
        img.restore(&mut back).unwrap();
        assert_eq!(back, ram);
    }
}
