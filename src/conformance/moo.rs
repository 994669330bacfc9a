//! Reader for the SingleStepTests MOO format (gzip-compressed `.MOO.gz` files).
//!
//! A file is a sequence of chunks (4-byte ASCII id, `u32` little-endian payload length,
//! payload); unknown ids (`GMET`, `CYCL`, ...) are skipped by length. See the README of
//! the test set for the layout of `MOO `, `META`, `TEST` and its sub-chunks.

use super::singlestep::Regs286;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors reading a MOO file.
#[derive(Debug, thiserror::Error)]
pub enum MooError {
    /// The file could not be read or decompressed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a well-formed MOO file.
    #[error("{path}: malformed MOO data at byte {offset}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Offset in the decompressed data.
        offset: usize,
        /// What was wrong.
        what: String,
    },
}

/// Register state: values plus which registers are present (bit i = register i in
/// [`Regs286`] order: ax,bx,cx,dx,cs,ss,ds,es,sp,bp,si,di,ip,flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MooRegs {
    /// Present registers.
    pub mask: u16,
    /// Values (absent registers are 0).
    pub regs: Regs286,
}

/// `INIT` or `FINA` state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MooState {
    /// Registers (INIT: all 14; FINA: only those that changed).
    pub regs: MooRegs,
    /// Memory bytes (physical address, value).
    pub ram: Vec<(u32, u8)>,
}

/// `EXCP`: the test raised an exception or interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MooException {
    /// Exception / interrupt number.
    pub number: u8,
    /// Physical address of the FLAGS word pushed on the stack.
    pub flag_address: u32,
}

/// One test.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MooTest {
    /// Index within the file.
    pub index: u32,
    /// Disassembly.
    pub name: String,
    /// Instruction bytes (including the trailing HLT).
    pub bytes: Vec<u8>,
    /// Initial state.
    pub init: MooState,
    /// Expected final state.
    pub fina: MooState,
    /// Exception raised, if any.
    pub exception: Option<MooException>,
    /// SHA-1 identifying the test.
    pub hash: [u8; 20],
}

impl MooTest {
    /// Lowercase hex of [`MooTest::hash`] (the form used in `revocation_list.txt`).
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A parsed MOO file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MooFile {
    /// Format version (major, minor) from the `MOO ` chunk.
    pub version: (u8, u8),
    /// Test count from the `MOO ` header.
    pub header_count: u32,
    /// CPU id (e.g. `C286`).
    pub cpu: String,
    /// Mnemonic from the `META` chunk (trimmed), if present.
    pub mnemonic: String,
    /// Opcode from the `META` chunk, if present.
    pub opcode: u32,
    /// The tests, in file order.
    pub tests: Vec<MooTest>,
}

/// Read and parse a `.MOO.gz` (gzip) or plain `.MOO` file.
pub fn read_moo_file(path: &Path) -> Result<MooFile, MooError> {
    let io = |source| MooError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let data = if raw.starts_with(&[0x1F, 0x8B]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(io)?;
        out
    } else {
        raw
    };
    parse_moo(&data).map_err(|(offset, what)| MooError::Format {
        path: path.to_path_buf(),
        offset,
        what,
    })
}

type PResult<T> = Result<T, (usize, String)>;

/// A bounds-checked little-endian cursor.
struct Cur<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` in the whole file (for error messages).
    base: usize,
}

impl<'a> Cur<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
        Cur { data, pos: 0, base }
    }
    fn err<T>(&self, what: &str) -> PResult<T> {
        Err((self.base + self.pos, what.to_string()))
    }
    fn bytes(&mut self, n: usize) -> PResult<&'a [u8]> {
        match self.data.get(self.pos..self.pos.saturating_add(n)) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => self.err(&format!("truncated: need {n} bytes")),
        }
    }
    fn u8(&mut self) -> PResult<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> PResult<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> PResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// Next chunk: (id, payload cursor).
    fn chunk(&mut self) -> PResult<([u8; 4], Cur<'a>)> {
        let idb = self.bytes(4)?;
        let id = [idb[0], idb[1], idb[2], idb[3]];
        let len = self.u32()? as usize;
        let start = self.base + self.pos;
        let payload = self.bytes(len)?;
        Ok((id, Cur::new(payload, start)))
    }
}

/// Parse decompressed MOO data; errors carry the byte offset.
pub fn parse_moo(data: &[u8]) -> Result<MooFile, (usize, String)> {
    let mut c = Cur::new(data, 0);
    let mut file = MooFile::default();
    let (id, mut h) = c.chunk()?;
    if &id != b"MOO " {
        return Err((0, "missing `MOO ` header chunk".into()));
    }
    file.version = (h.u8()?, h.u8()?);
    h.bytes(2)?;
    file.header_count = h.u32()?;
    file.cpu = String::from_utf8_lossy(h.bytes(4)?).trim().to_string();
    while !c.done() {
        let (id, mut p) = c.chunk()?;
        match &id {
            b"META" => {
                p.bytes(3)?; // version major, minor, cpu type
                file.opcode = p.u32()?;
                file.mnemonic = String::from_utf8_lossy(p.bytes(8)?).trim().to_string();
            }
            b"TEST" => file.tests.push(parse_test(&mut p)?),
            _ => {}
        }
    }
    Ok(file)
}

fn parse_test(p: &mut Cur<'_>) -> PResult<MooTest> {
    let mut t = MooTest {
        index: p.u32()?,
        ..MooTest::default()
    };
    let mut have_init = false;
    while !p.done() {
        let (id, mut s) = p.chunk()?;
        match &id {
            b"NAME" => {
                let n = s.u32()? as usize;
                t.name = String::from_utf8_lossy(s.bytes(n)?).to_string();
            }
            b"BYTS" => {
                let n = s.u32()? as usize;
                t.bytes = s.bytes(n)?.to_vec();
            }
            b"INIT" => {
                t.init = parse_state(&mut s)?;
                have_init = true;
            }
            b"FINA" => t.fina = parse_state(&mut s)?,
            b"EXCP" => {
                t.exception = Some(MooException {
                    number: s.u8()?,
                    flag_address: s.u32()?,
                });
            }
            b"HASH" => t.hash.copy_from_slice(s.bytes(20)?),
            _ => {}
        }
    }
    if !have_init || t.init.regs.mask & 0x3FFF != 0x3FFF {
        return p.err(&format!(
            "test {} has no complete INIT register set",
            t.index
        ));
    }
    Ok(t)
}

fn parse_state(s: &mut Cur<'_>) -> PResult<MooState> {
    let mut st = MooState::default();
    while !s.done() {
        let (id, mut c) = s.chunk()?;
        match &id {
            b"REGS" => {
                let mask = c.u16()?;
                st.regs.mask = mask;
                for i in 0..16 {
                    if mask & (1 << i) != 0 {
                        let v = c.u16()?;
                        if let Some(r) = st.regs.regs.get_mut(i) {
                            *r = v;
                        }
                    }
                }
            }
            b"RAM " => {
                let n = c.u32()? as usize;
                st.ram.reserve(n.min(1 << 16));
                for _ in 0..n {
                    let a = c.u32()?;
                    let v = c.u8()?;
                    st.ram.push((a, v));
                }
            }
            _ => {}
        }
    }
    Ok(st)
}
