//! SSSE3 packed-integer semantics (SDM Vol. 2: PSHUFB, PHADD*/PHSUB*,
//! PMADDUBSW, PMULHRSW, PSIGN*, PABS*, PALIGNR), for `n`-byte registers (8
//! for the MMX forms, 16 for XMM). Reached through [`super::int::binop`].

/// Lane `i` of `s` bytes, and its sign extension.
#[inline(always)]
fn lane(v: u128, s: usize, i: usize) -> u64 {
    let bits = 8 * s as u32;
    let m = if s == 8 { u64::MAX } else { (1u64 << bits) - 1 };
    (v >> (bits * i as u32)) as u64 & m
}

#[inline(always)]
fn slane(v: u128, s: usize, i: usize) -> i64 {
    let bits = 64 - 8 * s as u32;
    ((lane(v, s, i) << bits) as i64) >> bits
}

#[inline(always)]
fn put(r: &mut u128, s: usize, i: usize, x: i64) {
    let bits = 8 * s as u32;
    let m = if s == 8 { u64::MAX } else { (1u64 << bits) - 1 };
    *r |= ((x as u64 & m) as u128) << (bits * i as u32);
}

/// PSHUFB: byte i = 0 if control byte bit 7 is set, else `a[ctl & (n-1)]`.
pub fn pshufb(a: u128, b: u128, n: usize) -> u128 {
    let mut r = 0u128;
    for i in 0..n {
        let c = lane(b, 1, i) as usize;
        if c & 0x80 == 0 {
            put(&mut r, 1, i, lane(a, 1, c & (n - 1)) as i64);
        }
    }
    r
}

/// PHADD/PHSUB (W, D, SW): adjacent pairs of `a`, then of `b`.
pub fn hadd(a: u128, b: u128, n: usize, s: usize, sub: bool, sat: bool) -> u128 {
    let c = n / s;
    let mut r = 0u128;
    for i in 0..c {
        let (src, j) = if i < c / 2 {
            (a, 2 * i)
        } else {
            (b, 2 * (i - c / 2))
        };
        let (x, y) = (slane(src, s, j), slane(src, s, j + 1));
        let v = if sub { x - y } else { x + y };
        let v = if sat { v.clamp(-32768, 32767) } else { v };
        put(&mut r, s, i, v);
    }
    r
}

/// PMADDUBSW: unsigned bytes of `a` times signed bytes of `b`, adjacent
/// products added with signed saturation.
pub fn pmaddubsw(a: u128, b: u128, n: usize) -> u128 {
    let mut r = 0u128;
    for i in 0..n / 2 {
        let p = lane(a, 1, 2 * i) as i64 * slane(b, 1, 2 * i)
            + lane(a, 1, 2 * i + 1) as i64 * slane(b, 1, 2 * i + 1);
        put(&mut r, 2, i, p.clamp(-32768, 32767));
    }
    r
}

/// PMULHRSW: ((a * b >> 14) + 1) >> 1 per signed word.
pub fn pmulhrsw(a: u128, b: u128, n: usize) -> u128 {
    let mut r = 0u128;
    for i in 0..n / 2 {
        let p = slane(a, 2, i) * slane(b, 2, i);
        put(&mut r, 2, i, ((p >> 14) + 1) >> 1);
    }
    r
}

/// PSIGNB/W/D: negate, zero or keep `a` by the sign of `b`.
pub fn psign(a: u128, b: u128, n: usize, s: usize) -> u128 {
    let mut r = 0u128;
    for i in 0..n / s {
        let y = slane(b, s, i);
        let x = slane(a, s, i);
        put(
            &mut r,
            s,
            i,
            if y < 0 {
                x.wrapping_neg()
            } else if y == 0 {
                0
            } else {
                x
            },
        );
    }
    r
}

/// PABSB/W/D of the source `b` (the most negative value stays as is,
/// read as unsigned).
pub fn pabs(b: u128, n: usize, s: usize) -> u128 {
    let mut r = 0u128;
    for i in 0..n / s {
        put(&mut r, s, i, slane(b, s, i).abs());
    }
    r
}

/// PALIGNR: the concatenation `a:b` (a high) shifted right by `imm` bytes,
/// low `n` bytes kept.
pub fn palignr(a: u128, b: u128, n: usize, imm: u8) -> u128 {
    let shift = imm as usize;
    let mut r = 0u128;
    for i in 0..n {
        let k = i + shift;
        let byte = if k < n {
            lane(b, 1, k)
        } else if k < 2 * n {
            lane(a, 1, k - n)
        } else {
            0
        };
        put(&mut r, 1, i, byte as i64);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssse3_semantics() {
        // Control bytes 07, 00, 80, then 00s (select byte 0).
        assert_eq!(
            pshufb(0x0807_0605_0403_0201, 0x80_00_07, 8),
            0x0101_0101_0100_0108
        );
        assert_eq!(
            hadd(0x0004_0003_0002_0001, 0x7FFF_0001, 8, 2, false, true),
            0x0000_7FFF_0007_0003
        );
        assert_eq!(pmaddubsw(0xFF_FF, 0x80_80, 8), 0x8000);
        assert_eq!(pabs(0x80, 8, 1), 0x80);
        assert_eq!(psign(0x0505, 0x80_01, 8, 1), 0xFB05);
        assert_eq!(palignr(0x1111, 0x2222_0000_0000_0000, 8, 6), 0x1111_2222);
        assert_eq!(pmulhrsw(0x4000, 0x4000, 8), 0x2000);
    }
}
