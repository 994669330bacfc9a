//! A small AML encoder (ACPI 6.5 chapter 20, "ACPI Machine Language
//! Specification"): the subset vx86's DSDT needs, written from the grammar.
//!
//! Every function returns the bytes of one term; composite terms take their
//! already-encoded children. Names are ASL-style paths (`"\\_SB.PCI0"`,
//! `"^PCNT"`, `"S08"`): segments shorter than four characters are padded
//! with `_` (20.2.2, NameSeg).

/// Opcodes (20.2.5 and 20.2.6, table 20.1-20.2).
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const NAME_OP: u8 = 0x08;
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;
const STRING_PREFIX: u8 = 0x0D;
const QWORD_PREFIX: u8 = 0x0E;
const SCOPE_OP: u8 = 0x10;
const BUFFER_OP: u8 = 0x11;
const PACKAGE_OP: u8 = 0x12;
const METHOD_OP: u8 = 0x14;
const DUAL_NAME_PREFIX: u8 = 0x2E;
const MULTI_NAME_PREFIX: u8 = 0x2F;
const EXT_OP_PREFIX: u8 = 0x5B;
const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX_CHAR: u8 = b'^';
const LOCAL0_OP: u8 = 0x60;
const ARG0_OP: u8 = 0x68;
const STORE_OP: u8 = 0x70;
const SHIFT_LEFT_OP: u8 = 0x79;
const AND_OP: u8 = 0x7B;
const OR_OP: u8 = 0x7D;
const NOTIFY_OP: u8 = 0x86;
const LEQUAL_OP: u8 = 0x93;
const IF_OP: u8 = 0xA0;
const RETURN_OP: u8 = 0xA4;
const ONES_OP: u8 = 0xFF;
// After EXT_OP_PREFIX.
const OP_REGION_OP: u8 = 0x80;
const FIELD_OP: u8 = 0x81;
const DEVICE_OP: u8 = 0x82;

/// A PkgLength (20.2.4) for a body of `body_len` bytes: the encoded length
/// counts itself. One byte holds up to 63; otherwise bits 7:6 of the lead
/// byte give the number of following bytes (1-3), its bits 3:0 the low
/// nibble, and each following byte the next eight bits (at most 2^28 - 1).
pub fn pkg_length(body_len: usize) -> Vec<u8> {
    for extra in 0..=3usize {
        let total = body_len + 1 + extra;
        if pkg_bytes(total) == 1 + extra {
            return pkg_encode(total);
        }
    }
    // Larger than AML can say: never built by vx86's tables.
    vec![0xFF, 0xFF, 0xFF, 0xFF]
}

/// How many bytes the PkgLength encoding of `n` takes.
fn pkg_bytes(n: usize) -> usize {
    match n {
        0..=0x3F => 1,
        0x40..=0xFFF => 2,
        0x1000..=0xF_FFFF => 3,
        _ => 4,
    }
}

/// The PkgLength encoding of the number `n` itself (also the width of a
/// NamedField, 20.2.5.2).
fn pkg_encode(n: usize) -> Vec<u8> {
    let extra = pkg_bytes(n) - 1;
    if extra == 0 {
        return vec![n as u8];
    }
    let mut v = vec![((extra as u8) << 6) | (n & 0x0F) as u8];
    for i in 0..extra {
        v.push((n >> (4 + 8 * i)) as u8);
    }
    v
}

/// `op` (one or two bytes), a PkgLength, then `body`.
fn with_pkg(op: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = op.to_vec();
    v.extend(pkg_length(body.len()));
    v.extend_from_slice(body);
    v
}

fn seg(s: &str) -> [u8; 4] {
    let mut b = [b'_'; 4];
    for (d, c) in b.iter_mut().zip(s.bytes()) {
        *d = c;
    }
    b
}

/// A NameString (20.2.2): optional root or parent prefixes, then one
/// NameSeg, a DualNamePath or a MultiNamePath.
pub fn name(path: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let mut rest = path;
    if let Some(r) = rest.strip_prefix('\\') {
        v.push(ROOT_CHAR);
        rest = r;
    }
    while let Some(r) = rest.strip_prefix('^') {
        v.push(PARENT_PREFIX_CHAR);
        rest = r;
    }
    let segs: Vec<[u8; 4]> = rest.split('.').filter(|s| !s.is_empty()).map(seg).collect();
    match segs.len() {
        0 => v.push(ZERO_OP), // NullName
        1 => {}
        2 => v.push(DUAL_NAME_PREFIX),
        n => {
            v.push(MULTI_NAME_PREFIX);
            v.push(n as u8);
        }
    }
    for s in segs {
        v.extend_from_slice(&s);
    }
    v
}

/// An integer constant in its shortest encoding (ZeroOp, OneOp, OnesOp or
/// a Byte/Word/DWord/QWord prefix, 20.2.3).
pub fn int(n: u64) -> Vec<u8> {
    match n {
        0 => vec![ZERO_OP],
        1 => vec![ONE_OP],
        u64::MAX => vec![ONES_OP],
        n if n <= 0xFF => vec![BYTE_PREFIX, n as u8],
        n if n <= 0xFFFF => {
            let mut v = vec![WORD_PREFIX];
            v.extend_from_slice(&(n as u16).to_le_bytes());
            v
        }
        n if n <= 0xFFFF_FFFF => {
            let mut v = vec![DWORD_PREFIX];
            v.extend_from_slice(&(n as u32).to_le_bytes());
            v
        }
        n => {
            let mut v = vec![QWORD_PREFIX];
            v.extend_from_slice(&n.to_le_bytes());
            v
        }
    }
}

/// A DWord constant even when a shorter encoding would do (_PRT addresses,
/// as iasl writes `0x0001FFFF`).
pub fn dword(n: u32) -> Vec<u8> {
    let mut v = vec![DWORD_PREFIX];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

/// A String (ASCII, NUL-terminated).
pub fn string(s: &str) -> Vec<u8> {
    let mut v = vec![STRING_PREFIX];
    v.extend(s.bytes().filter(|&b| b != 0 && b < 0x80));
    v.push(0);
    v
}

/// `EISAID("PNP0A03")`: the compressed EISA ID as a DWord (three letters
/// of five bits each, then four hex digits, stored big-endian).
pub fn eisa_id(id: &str) -> Vec<u8> {
    let b = id.as_bytes();
    let letter = |i: usize| u32::from(b.get(i).copied().unwrap_or(b'@').wrapping_sub(0x40) & 0x1F);
    let hex = |i: usize| {
        b.get(i)
            .and_then(|&c| (c as char).to_digit(16))
            .unwrap_or(0)
    };
    let v = (letter(0) << 26)
        | (letter(1) << 21)
        | (letter(2) << 16)
        | (hex(3) << 12)
        | (hex(4) << 8)
        | (hex(5) << 4)
        | hex(6);
    let mut out = vec![DWORD_PREFIX];
    out.extend_from_slice(&v.to_be_bytes());
    out
}

/// `Name (NAME, object)`.
pub fn name_decl(n: &str, object: &[u8]) -> Vec<u8> {
    let mut v = vec![NAME_OP];
    v.extend(name(n));
    v.extend_from_slice(object);
    v
}

/// `Scope (NAME) { terms }`.
pub fn scope(n: &str, terms: &[u8]) -> Vec<u8> {
    let mut body = name(n);
    body.extend_from_slice(terms);
    with_pkg(&[SCOPE_OP], &body)
}

/// `Device (NAME) { terms }`.
pub fn device(n: &str, terms: &[u8]) -> Vec<u8> {
    let mut body = name(n);
    body.extend_from_slice(terms);
    with_pkg(&[EXT_OP_PREFIX, DEVICE_OP], &body)
}

/// `Method (NAME, args, NotSerialized) { terms }`.
pub fn method(n: &str, args: u8, terms: &[u8]) -> Vec<u8> {
    let mut body = name(n);
    body.push(args & 0b111);
    body.extend_from_slice(terms);
    with_pkg(&[METHOD_OP], &body)
}

/// `Package (n) { elements }`, each element already encoded.
pub fn package(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![elements.len().min(255) as u8];
    for e in elements {
        body.extend_from_slice(e);
    }
    with_pkg(&[PACKAGE_OP], &body)
}

/// `Buffer () { bytes }`.
pub fn buffer(bytes: &[u8]) -> Vec<u8> {
    let mut body = int(bytes.len() as u64);
    body.extend_from_slice(bytes);
    with_pkg(&[BUFFER_OP], &body)
}

/// `LocalN` (0-7).
pub fn local(n: u8) -> Vec<u8> {
    vec![LOCAL0_OP + (n & 7)]
}

/// `ArgN` (0-6).
pub fn arg(n: u8) -> Vec<u8> {
    vec![ARG0_OP + n.min(6)]
}

/// `Store (source, target)`.
pub fn store(source: &[u8], target: &[u8]) -> Vec<u8> {
    [&[STORE_OP][..], source, target].concat()
}

/// `And (a, b)` with no target (NullName).
pub fn and(a: &[u8], b: &[u8]) -> Vec<u8> {
    [&[AND_OP][..], a, b, &[ZERO_OP]].concat()
}

/// `Or (a, b)` with no target.
pub fn or(a: &[u8], b: &[u8]) -> Vec<u8> {
    [&[OR_OP][..], a, b, &[ZERO_OP]].concat()
}

/// `ShiftLeft (a, count)` with no target.
pub fn shift_left(a: &[u8], count: &[u8]) -> Vec<u8> {
    [&[SHIFT_LEFT_OP][..], a, count, &[ZERO_OP]].concat()
}

/// `LEqual (a, b)`.
pub fn lequal(a: &[u8], b: &[u8]) -> Vec<u8> {
    [&[LEQUAL_OP][..], a, b].concat()
}

/// `If (predicate) { terms }`.
pub fn if_(predicate: &[u8], terms: &[u8]) -> Vec<u8> {
    let body = [predicate, terms].concat();
    with_pkg(&[IF_OP], &body)
}

/// `Notify (object, value)`.
pub fn notify(object: &str, value: u8) -> Vec<u8> {
    [&[NOTIFY_OP][..], &name(object), &int(u64::from(value))].concat()
}

/// `Return (value)`.
pub fn return_(value: &[u8]) -> Vec<u8> {
    [&[RETURN_OP][..], value].concat()
}

/// A method call `NAME (args...)`.
pub fn call(n: &str, args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = name(n);
    for a in args {
        v.extend_from_slice(a);
    }
    v
}

/// Operation region spaces (19.6.100, table 19.x RegionSpace).
pub const REGION_SYSTEM_IO: u8 = 0x01;

/// `OperationRegion (NAME, space, offset, length)`.
pub fn op_region(n: &str, space: u8, offset: u64, len: u64) -> Vec<u8> {
    [
        &[EXT_OP_PREFIX, OP_REGION_OP][..],
        &name(n),
        &[space],
        &int(offset),
        &int(len),
    ]
    .concat()
}

/// Field access types (20.2.5.2 FieldFlags bits 3:0).
pub const FIELD_DWORD_ACC: u8 = 0x03;

/// `Field (REGION, access, NoLock, Preserve) { NAME, bits, ... }`: named
/// fields of the given widths in bits, packed from offset 0.
pub fn field(region: &str, access: u8, fields: &[(&str, usize)]) -> Vec<u8> {
    let mut body = name(region);
    body.push(access & 0x0F);
    for (n, bits) in fields {
        body.extend_from_slice(&seg(n));
        // The width is a PkgLength-encoded number (NamedField, 20.2.5.2).
        body.extend(pkg_encode(*bits));
    }
    with_pkg(&[EXT_OP_PREFIX, FIELD_OP], &body)
}

/// Resource descriptors for `_CRS` (ACPI 6.5 section 6.4), ended by
/// [`res_end`] and wrapped in [`buffer`].
///
/// Address space descriptors' general flags (6.4.3.5.x): a bridge producing
/// a fixed, positively decoded window (MinFixed, MaxFixed, PosDecode,
/// ResourceProducer).
const ADDR_FLAGS_FIXED_PRODUCER: u8 = 0b0000_1100;
const ADDR_SPACE_MEMORY: u8 = 0;
const ADDR_SPACE_IO: u8 = 1;
const ADDR_SPACE_BUS: u8 = 2;

/// WordBusNumber (6.4.3.5.3, Word Address Space Descriptor, type 0x88).
pub fn res_word_bus(min: u16, max: u16) -> Vec<u8> {
    let mut v = vec![0x88, 13, 0, ADDR_SPACE_BUS, ADDR_FLAGS_FIXED_PRODUCER, 0];
    let len = max.wrapping_sub(min).wrapping_add(1);
    for f in [0u16, min, max, 0, len] {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v
}

/// A DWord Address Space Descriptor (6.4.3.5.2, type 0x87).
fn res_dword(space: u8, type_flags: u8, min: u32, max: u32) -> Vec<u8> {
    let mut v = vec![0x87, 23, 0, space, ADDR_FLAGS_FIXED_PRODUCER, type_flags];
    let len = max.wrapping_sub(min).wrapping_add(1);
    for f in [0u32, min, max, 0, len] {
        v.extend_from_slice(&f.to_le_bytes());
    }
    v
}

/// DWordIO (…, EntireRange, …): type-specific flags _RNG = 3.
pub fn res_dword_io(min: u32, max: u32) -> Vec<u8> {
    res_dword(ADDR_SPACE_IO, 0b11, min, max)
}

/// DWordMemory (…, Cacheable, ReadWrite, …): _RW = 1, _MEM = 1.
pub fn res_dword_memory(min: u32, max: u32) -> Vec<u8> {
    res_dword(ADDR_SPACE_MEMORY, 0b011, min, max)
}

/// IO (Decode16, min, max, alignment, length) (6.4.2.5, small type 0x08).
pub fn res_io(min: u16, max: u16, align: u8, len: u8) -> Vec<u8> {
    let mut v = vec![0x47, 0x01];
    v.extend_from_slice(&min.to_le_bytes());
    v.extend_from_slice(&max.to_le_bytes());
    v.push(align);
    v.push(len);
    v
}

/// The End Tag (6.4.2.9) with checksum 0 ("treated as a valid checksum").
pub fn res_end() -> Vec<u8> {
    vec![0x79, 0x00]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_length_uses_one_to_four_bytes() {
        assert_eq!(pkg_length(0), [0x01]);
        assert_eq!(pkg_length(62), [0x3F]);
        // 63 + 2 = 65 = 0x41: lead 0x41 (one more byte, nibble 1), then 0x04.
        assert_eq!(pkg_length(63), [0x41, 0x04]);
        assert_eq!(pkg_length(0xFFD), [0x4F, 0xFF]);
        // 0xFFE + 3 = 0x1001.
        assert_eq!(pkg_length(0xFFE), [0x81, 0x00, 0x01]);
        assert_eq!(pkg_length(0x10_0000), [0xC4, 0x00, 0x00, 0x01]);
    }

    #[test]
    fn names_integers_and_eisa_ids() {
        assert_eq!(name("_S5"), b"_S5_");
        assert_eq!(name("\\_SB.PCI0"), b"\\\x2E_SB_PCI0");
        assert_eq!(name("\\_SB.PCI0.S08"), b"\\\x2F\x03_SB_PCI0S08_");
        assert_eq!(name("^PCNT"), b"^PCNT");
        assert_eq!(int(0), [0x00]);
        assert_eq!(int(1), [0x01]);
        assert_eq!(int(0xCF8), [0x0B, 0xF8, 0x0C]);
        assert_eq!(int(0xAFE0_0000), [0x0C, 0x00, 0x00, 0xE0, 0xAF]);
        // iasl: EisaId ("PNP0A03") is 0x030AD041.
        assert_eq!(eisa_id("PNP0A03"), [0x0C, 0x41, 0xD0, 0x0A, 0x03]);
        assert_eq!(eisa_id("PNP0C0C"), [0x0C, 0x41, 0xD0, 0x0C, 0x0C]);
        assert_eq!(string("ACPI0006"), b"\x0DACPI0006\0");
    }

    #[test]
    fn s5_package_is_the_old_hand_encoded_dsdt() {
        let s5 = name_decl("_S5", &package(&[int(0), int(0), int(0), int(0)]));
        assert_eq!(
            s5,
            [0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0]
        );
    }

    #[test]
    fn device_method_if_notify_and_field() {
        // Device (S08) { Name (_ADR, 0x00080000) }
        let d = device("S08", &name_decl("_ADR", &int(0x0008_0000)));
        assert_eq!(
            d,
            [
                0x5B, 0x82, 0x0F, b'S', b'0', b'8', b'_', 0x08, b'_', b'A', b'D', b'R', 0x0C, 0x00,
                0x00, 0x08, 0x00
            ]
        );
        // Method (_E01, 0) { If (And (Local0, 0x100)) { Notify (S08, 1) } }
        let m = method(
            "_E01",
            0,
            &if_(&and(&local(0), &int(0x100)), &notify("S08", 1)),
        );
        assert_eq!(
            m,
            [
                0x14, 0x14, b'_', b'E', b'0', b'1', 0x00, 0xA0, 0x0D, 0x7B, 0x60, 0x0B, 0x00, 0x01,
                0x00, 0x86, b'S', b'0', b'8', b'_', 0x01
            ]
        );
        // Store (ShiftLeft (One, Arg0), B0EJ)
        assert_eq!(
            store(&shift_left(&int(1), &arg(0)), &name("B0EJ")),
            [0x70, 0x79, 0x01, 0x68, 0x00, b'B', b'0', b'E', b'J']
        );
        assert_eq!(lequal(&local(1), &int(3)), [0x93, 0x61, 0x0A, 0x03]);
        // OperationRegion (PCST, SystemIO, 0xAE00, 0x10)
        assert_eq!(
            op_region("PCST", REGION_SYSTEM_IO, 0xAE00, 0x10),
            [0x5B, 0x80, b'P', b'C', b'S', b'T', 0x01, 0x0B, 0x00, 0xAE, 0x0A, 0x10]
        );
        // Field (PCST, DWordAcc, NoLock, Preserve) { PCIU, 32, PCID, 32 }
        assert_eq!(
            field("PCST", FIELD_DWORD_ACC, &[("PCIU", 32), ("PCID", 32)]),
            [
                0x5B, 0x81, 0x10, b'P', b'C', b'S', b'T', 0x03, b'P', b'C', b'I', b'U', 0x20, b'P',
                b'C', b'I', b'D', 0x20
            ]
        );
    }

    #[test]
    fn resource_templates_and_large_bodies() {
        // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
        // 0, 0, 0xFF, 0, 0x100)
        assert_eq!(
            res_word_bus(0, 0xFF),
            [0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0x00, 0x01]
        );
        assert_eq!(
            res_io(0xCF8, 0xCF8, 1, 8),
            [0x47, 0x01, 0xF8, 0x0C, 0xF8, 0x0C, 0x01, 0x08]
        );
        let io = res_dword_io(0, 0xCF7);
        assert_eq!(&io[..6], [0x87, 0x17, 0x00, 0x01, 0x0C, 0x03]);
        assert_eq!(&io[14..18], 0xCF7u32.to_le_bytes());
        assert_eq!(&io[22..26], 0xCF8u32.to_le_bytes());
        let b = buffer(&[res_io(0x60, 0x60, 1, 1), res_end()].concat());
        assert_eq!(&b[..3], [0x11, 0x0D, 0x0A]);
        assert_eq!(b[3], 10);
        // A scope whose body needs a two-byte PkgLength.
        let big = scope("\\_SB", &[0xA3; 100]); // NoopOp x100
        assert_eq!(&big[..3], [0x10, 0x4B, 0x06]);
        assert_eq!(big.len(), 1 + 2 + 5 + 100);
    }
}
