//! ELF executables as kernel images: the header, the program headers a loader
//! needs (PT_LOAD, PT_NOTE) and the notes. Both classes, little-endian x86
//! only (System V gABI, "ELF Header", "Program Header", "Note Section").
//!
//! Every field comes from the file, so every offset and size is checked
//! against it: a bad image is an [`ElfError`], never a panic.

use thiserror::Error;

/// `e_ident[EI_CLASS]`.
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]`: two's complement little-endian.
const ELFDATA2LSB: u8 = 1;
/// `e_type`: executable file.
const ET_EXEC: u16 = 2;
/// `e_machine` values.
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// `p_type` values.
pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("ELF: unsupported class or byte order (need little-endian ELF32 or ELF64)")]
    BadClass,
    #[error("ELF: not an executable for x86 (e_type {0}, e_machine {1})")]
    NotX86Executable(u16, u16),
    #[error("ELF: truncated ({what} at offset {offset:#x}, {len} bytes, past the end of the {file_len}-byte file)")]
    Truncated {
        what: &'static str,
        offset: u64,
        len: u64,
        file_len: usize,
    },
    #[error("ELF: segment at {0:#x} has a file size larger than its memory size")]
    FileSizeOverMemSize(u64),
    #[error("ELF: no loadable segment")]
    NoLoadSegment,
}

/// One program header, widened to 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

/// One note: owner name (without the NUL), type and descriptor bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    pub name: &'a [u8],
    pub n_type: u32,
    pub desc: &'a [u8],
}

/// A parsed ELF image borrowing the file bytes.
#[derive(Clone, Debug)]
pub struct Elf<'a> {
    pub data: &'a [u8],
    pub class64: bool,
    pub machine: u16,
    pub entry: u64,
    pub phdrs: Vec<ProgramHeader>,
    /// One past the last byte of the ELF header and program header table.
    pub headers_end: u64,
}

/// True if `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

fn range<'a>(
    data: &'a [u8],
    what: &'static str,
    offset: u64,
    len: u64,
) -> Result<&'a [u8], ElfError> {
    let err = ElfError::Truncated {
        what,
        offset,
        len,
        file_len: data.len(),
    };
    let start = usize::try_from(offset).map_err(|_| err.clone())?;
    let len = usize::try_from(len).map_err(|_| err.clone())?;
    let end = start.checked_add(len).ok_or(err.clone())?;
    data.get(start..end).ok_or(err)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

impl<'a> Elf<'a> {
    /// Parses the ELF header and program header table.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if !is_elf(data) {
            return Err(ElfError::NotElf);
        }
        let ident = range(data, "ELF identification", 0, 16)?;
        let class64 = match ident[4] {
            ELFCLASS32 => false,
            ELFCLASS64 => true,
            _ => return Err(ElfError::BadClass),
        };
        if ident[5] != ELFDATA2LSB {
            return Err(ElfError::BadClass);
        }
        let ehsize = if class64 { 64 } else { 52 };
        let eh = range(data, "ELF header", 0, ehsize)?;
        let e_type = u16_at(eh, 16);
        let machine = u16_at(eh, 18);
        if e_type != ET_EXEC || !(machine == EM_386 || machine == EM_X86_64) {
            return Err(ElfError::NotX86Executable(e_type, machine));
        }
        let (entry, phoff, phentsize, phnum) = if class64 {
            (
                u64_at(eh, 24),
                u64_at(eh, 32),
                u16_at(eh, 54),
                u16_at(eh, 56),
            )
        } else {
            (
                u32_at(eh, 24) as u64,
                u32_at(eh, 28) as u64,
                u16_at(eh, 42),
                u16_at(eh, 44),
            )
        };
        let min_entsize = if class64 { 56 } else { 32 };
        let entsize = (phentsize as u64).max(min_entsize);
        let table = range(data, "program header table", phoff, entsize * phnum as u64)?;
        let mut phdrs = Vec::with_capacity(phnum as usize);
        for i in 0..phnum as usize {
            let p = &table[i * entsize as usize..];
            let ph = if class64 {
                ProgramHeader {
                    p_type: u32_at(p, 0),
                    offset: u64_at(p, 8),
                    vaddr: u64_at(p, 16),
                    paddr: u64_at(p, 24),
                    filesz: u64_at(p, 32),
                    memsz: u64_at(p, 40),
                    align: u64_at(p, 48),
                }
            } else {
                ProgramHeader {
                    p_type: u32_at(p, 0),
                    offset: u32_at(p, 4) as u64,
                    vaddr: u32_at(p, 8) as u64,
                    paddr: u32_at(p, 12) as u64,
                    filesz: u32_at(p, 16) as u64,
                    memsz: u32_at(p, 20) as u64,
                    align: u32_at(p, 28) as u64,
                }
            };
            if ph.p_type == PT_LOAD || ph.p_type == PT_NOTE {
                range(data, "segment", ph.offset, ph.filesz)?;
            }
            if ph.p_type == PT_LOAD && ph.filesz > ph.memsz {
                return Err(ElfError::FileSizeOverMemSize(ph.paddr));
            }
            phdrs.push(ph);
        }
        let elf = Elf {
            data,
            class64,
            machine,
            entry,
            phdrs,
            headers_end: ehsize.max(phoff.saturating_add(entsize * phnum as u64)),
        };
        if elf.loads().next().is_none() {
            return Err(ElfError::NoLoadSegment);
        }
        Ok(elf)
    }

    /// The PT_LOAD segments, in file order.
    pub fn loads(&self) -> impl Iterator<Item = &ProgramHeader> {
        self.phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.memsz > 0)
    }

    /// A PT_LOAD segment made of the ELF headers alone, as a modern `ld`
    /// puts one a page below `-Ttext` (read-only, no section in it).
    pub fn headers_only(&self, ph: &ProgramHeader) -> bool {
        ph.p_type == PT_LOAD
            && ph.offset == 0
            && ph.filesz == ph.memsz
            && ph.filesz <= self.headers_end
    }

    /// The bytes a segment takes from the file (checked by `parse`).
    pub fn segment_bytes(&self, ph: &ProgramHeader) -> &'a [u8] {
        range(self.data, "segment", ph.offset, ph.filesz).unwrap_or(&[])
    }

    /// Every note in every PT_NOTE segment. Malformed trailing notes end the
    /// walk (a loader only looks for notes it knows).
    pub fn notes(&self) -> Vec<Note<'a>> {
        let mut out = Vec::new();
        for ph in self.phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
            let seg = self.segment_bytes(ph);
            let align = if ph.align == 8 { 8 } else { 4 };
            let pad = |n: usize| n.div_ceil(align) * align;
            let mut off = 0usize;
            while off + 12 <= seg.len() {
                let namesz = u32_at(seg, off) as usize;
                let descsz = u32_at(seg, off + 4) as usize;
                let n_type = u32_at(seg, off + 8);
                let name_at = off + 12;
                let desc_at = name_at.saturating_add(pad(namesz));
                let next = desc_at.saturating_add(pad(descsz));
                let (Some(name), Some(desc)) = (
                    seg.get(name_at..name_at.saturating_add(namesz)),
                    seg.get(desc_at..desc_at.saturating_add(descsz)),
                ) else {
                    break;
                };
                let name = name.strip_suffix(&[0]).unwrap_or(name);
                out.push(Note { name, n_type, desc });
                off = next;
            }
        }
        out
    }

    /// The entry point as a physical address: `e_entry` translated through
    /// the PT_LOAD segment that contains it (vmlinux links at virtual
    /// addresses and loads at physical ones), or `e_entry` itself.
    pub fn physical_entry(&self) -> u64 {
        self.loads()
            .find(|p| p.vaddr <= self.entry && self.entry < p.vaddr.saturating_add(p.memsz))
            .map_or(self.entry, |p| {
                self.entry.wrapping_sub(p.vaddr).wrapping_add(p.paddr)
            })
    }

    /// One past the highest physical address any PT_LOAD segment occupies.
    pub fn physical_end(&self) -> u64 {
        self.loads()
            .map(|p| p.paddr.saturating_add(p.memsz))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 (or ELF32) with one PT_LOAD holding `code` at
    /// `paddr` and, if given, a PT_NOTE with one note.
    pub fn build(
        class64: bool,
        entry: u64,
        vaddr: u64,
        paddr: u64,
        code: &[u8],
        bss: u64,
        note: Option<(&[u8], u32, &[u8])>,
    ) -> Vec<u8> {
        let (ehsize, phsize) = if class64 { (64, 56) } else { (52, 32) };
        let phnum = 1 + note.is_some() as usize;
        let mut note_bytes = Vec::new();
        if let Some((name, ty, desc)) = note {
            let mut n = name.to_vec();
            n.push(0);
            note_bytes.extend_from_slice(&(n.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&ty.to_le_bytes());
            note_bytes.extend_from_slice(&n);
            while !note_bytes.len().is_multiple_of(4) {
                note_bytes.push(0);
            }
            note_bytes.extend_from_slice(desc);
            while !note_bytes.len().is_multiple_of(4) {
                note_bytes.push(0);
            }
        }
        let code_off = ehsize + phsize * phnum;
        let note_off = code_off + code.len();
        let mut f = vec![0u8; ehsize];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = if class64 { 2 } else { 1 };
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        let machine: u16 = if class64 { 62 } else { 3 };
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        let ph = |t: u32, off: usize, va: u64, pa: u64, fsz: usize, msz: u64| -> Vec<u8> {
            let mut p = vec![0u8; phsize];
            p[0..4].copy_from_slice(&t.to_le_bytes());
            if class64 {
                p[8..16].copy_from_slice(&(off as u64).to_le_bytes());
                p[16..24].copy_from_slice(&va.to_le_bytes());
                p[24..32].copy_from_slice(&pa.to_le_bytes());
                p[32..40].copy_from_slice(&(fsz as u64).to_le_bytes());
                p[40..48].copy_from_slice(&msz.to_le_bytes());
                p[48..56].copy_from_slice(&4u64.to_le_bytes());
            } else {
                p[4..8].copy_from_slice(&(off as u32).to_le_bytes());
                p[8..12].copy_from_slice(&(va as u32).to_le_bytes());
                p[12..16].copy_from_slice(&(pa as u32).to_le_bytes());
                p[16..20].copy_from_slice(&(fsz as u32).to_le_bytes());
                p[20..24].copy_from_slice(&(msz as u32).to_le_bytes());
                p[28..32].copy_from_slice(&4u32.to_le_bytes());
            }
            p
        };
        if class64 {
            f[24..32].copy_from_slice(&entry.to_le_bytes());
            f[32..40].copy_from_slice(&(ehsize as u64).to_le_bytes());
            f[52..54].copy_from_slice(&(ehsize as u16).to_le_bytes());
            f[54..56].copy_from_slice(&(phsize as u16).to_le_bytes());
            f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        } else {
            f[24..28].copy_from_slice(&(entry as u32).to_le_bytes());
            f[28..32].copy_from_slice(&(ehsize as u32).to_le_bytes());
            f[40..42].copy_from_slice(&(ehsize as u16).to_le_bytes());
            f[42..44].copy_from_slice(&(phsize as u16).to_le_bytes());
            f[44..46].copy_from_slice(&(phnum as u16).to_le_bytes());
        }
        f.extend(ph(
            PT_LOAD,
            code_off,
            vaddr,
            paddr,
            code.len(),
            code.len() as u64 + bss,
        ));
        if note.is_some() {
            f.extend(ph(PT_NOTE, note_off, 0, 0, note_bytes.len(), 0));
        }
        f.extend_from_slice(code);
        f.extend_from_slice(&note_bytes);
        f
    }

    #[test]
    fn parses_segments_notes_and_entry() {
        for class64 in [false, true] {
            let img = build(
                class64,
                0xC010_0010,
                0xC010_0000,
                0x10_0000,
                &[0x90; 32],
                0x100,
                Some((b"Xen", 18, &0x10_0020u32.to_le_bytes())),
            );
            let e = Elf::parse(&img).expect("parses");
            assert_eq!(e.class64, class64);
            assert_eq!(e.loads().count(), 1);
            assert_eq!(e.physical_entry(), 0x10_0010);
            assert_eq!(e.physical_end(), 0x10_0000 + 32 + 0x100);
            let notes = e.notes();
            assert_eq!(notes.len(), 1);
            assert_eq!(notes[0].name, b"Xen");
            assert_eq!(notes[0].n_type, 18);
            assert_eq!(notes[0].desc, &0x10_0020u32.to_le_bytes());
        }
    }

    /// `ld -Ttext` links a PT_LOAD of the headers alone below the text: it
    /// is recognised; a segment with code, or reaching past the headers, is not.
    #[test]
    fn headers_only_segment() {
        let img = build(false, 0x10_0000, 0x10_0000, 0x10_0000, &[0x90; 32], 0, None);
        let e = Elf::parse(&img).expect("parses");
        assert_eq!(e.headers_end, 52 + 32);
        let code = *e.loads().next().expect("a PT_LOAD");
        assert!(!e.headers_only(&code));
        let hdr = ProgramHeader {
            offset: 0,
            paddr: 0xF_F000,
            vaddr: 0xF_F000,
            filesz: 52 + 32,
            memsz: 52 + 32,
            ..code
        };
        assert!(e.headers_only(&hdr));
        assert!(!e.headers_only(&ProgramHeader {
            filesz: 52 + 33,
            memsz: 52 + 33,
            ..hdr
        }));
        assert!(!e.headers_only(&ProgramHeader {
            memsz: 0x1000,
            ..hdr
        }));
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let img = build(true, 0, 0x10_0000, 0x10_0000, &[0x90; 64], 0, None);
        assert_eq!(Elf::parse(b"MZ\0\0").err(), Some(ElfError::NotElf));
        for cut in [10, 40, 100, img.len() - 1] {
            assert!(
                matches!(Elf::parse(&img[..cut]), Err(ElfError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let mut arm = img.clone();
        arm[18] = 40;
        assert_eq!(
            Elf::parse(&arm).err(),
            Some(ElfError::NotX86Executable(2, 40))
        );
    }
}
