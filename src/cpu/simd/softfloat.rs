//! IEEE 754 binary32/binary64 arithmetic in integer arithmetic, with the x86
//! SSE rules layered on top (SDM Vol. 1 4.8, 4.9, 11.5).
//!
//! Why a soft-float and not the host's f32/f64: results must not depend on
//! the host's MXCSR (rounding mode, DAZ, FTZ) or on the target (aarch64 has
//! different NaN propagation and tininess rules), and the six exception flags
//! must be exact. Every operation computes the exact result (or the exact
//! result plus a sticky bit) in a `u128` and rounds it once in
//! [`Env::round_pack`], so correct rounding follows by construction.
//!
//! x86 specifics implemented here:
//! * tininess is detected after rounding, with an unbounded exponent
//!   (SDM Vol. 1 4.9.1.5); a masked underflow sets UE only if the result is
//!   also inexact; an unmasked one sets UE whenever the result is tiny;
//! * FTZ (masked underflow only) returns a zero of the result's sign and sets
//!   UE and PE (Vol. 1 10.2.3.3); DAZ treats denormal sources as zeros
//!   without raising DE (Vol. 1 10.2.3.4);
//! * NaN results: a source NaN is returned quieted, the first source when
//!   both are NaNs; an invalid operation without NaN sources returns the
//!   default NaN (sign set, quiet bit only) (Vol. 1 4.8.3.5, Table 4-7);
//! * exception precedence (Vol. 1 4.9.2): SNaN invalid, then QNaN operand,
//!   then other invalid / divide-by-zero, then denormal operand, then
//!   overflow/underflow, then inexact.

/// MXCSR exception flag bits (SDM Vol. 1 10.2.3).
pub const IE: u32 = 1 << 0;
pub const DE: u32 = 1 << 1;
pub const ZE: u32 = 1 << 2;
pub const OE: u32 = 1 << 3;
pub const UE: u32 = 1 << 4;
pub const PE: u32 = 1 << 5;
/// Pre-computation exceptions: detected before the result is computed.
pub const PRE: u32 = IE | DE | ZE;

/// Rounding control (MXCSR.RC, FCW.RC).
pub const RC_NEAREST: u8 = 0;
pub const RC_DOWN: u8 = 1;
pub const RC_UP: u8 = 2;
pub const RC_ZERO: u8 = 3;

/// A binary interchange format, described by its field widths.
pub trait Format {
    /// Explicitly stored significand bits (23 or 52).
    const M: u32;
    /// Exponent bits (8 or 11).
    const E: u32;
    const BIAS: i32 = (1 << (Self::E - 1)) - 1;
    /// Precision in bits including the hidden bit.
    const P: u32 = Self::M + 1;
    const EXP_MAX: u64 = (1 << Self::E) - 1;
    const SIGN: u64 = 1 << (Self::M + Self::E);
    const QUIET: u64 = 1 << (Self::M - 1);
    const MANT: u64 = (1 << Self::M) - 1;
    /// Smallest normal unbiased exponent.
    const EMIN: i32 = 1 - Self::BIAS;
    const EMAX: i32 = Self::BIAS;
    /// The default NaN ("QNaN floating-point indefinite").
    const DEFAULT_NAN: u64 = Self::SIGN | (Self::EXP_MAX << Self::M) | Self::QUIET;
    /// Largest finite magnitude.
    const MAX_FINITE: u64 = ((Self::EXP_MAX - 1) << Self::M) | Self::MANT;
    const INF: u64 = Self::EXP_MAX << Self::M;
}

/// binary32.
pub struct F32;
impl Format for F32 {
    const M: u32 = 23;
    const E: u32 = 8;
}

/// binary64.
pub struct F64;
impl Format for F64 {
    const M: u32 = 52;
    const E: u32 = 11;
}

/// An operand after unpacking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Zero,
    /// value = sig * 2^exp, sig has its most significant bit at bit M.
    Finite {
        exp: i32,
        sig: u64,
    },
    Inf,
    QNaN,
    SNaN,
}

#[inline]
pub fn exp_field<F: Format>(x: u64) -> u64 {
    (x >> F::M) & F::EXP_MAX
}
#[inline]
pub fn sign_of<F: Format>(x: u64) -> bool {
    x & F::SIGN != 0
}
#[inline]
pub fn is_nan<F: Format>(x: u64) -> bool {
    exp_field::<F>(x) == F::EXP_MAX && x & F::MANT != 0
}
#[inline]
pub fn is_snan<F: Format>(x: u64) -> bool {
    is_nan::<F>(x) && x & F::QUIET == 0
}
#[inline]
pub fn is_denormal<F: Format>(x: u64) -> bool {
    exp_field::<F>(x) == 0 && x & F::MANT != 0
}
#[inline]
pub fn quiet<F: Format>(x: u64) -> u64 {
    x | F::QUIET
}

/// The rounding and exception environment of one instruction, with the
/// flags it raised so far.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    pub rc: u8,
    pub daz: bool,
    pub ftz: bool,
    /// Exception mask bits (MXCSR 12:7 shifted down to the flag positions).
    pub masks: u32,
    pub flags: u32,
}

impl Env {
    /// The environment MXCSR describes (SDM Vol. 1 10.2.3).
    pub fn from_mxcsr(mxcsr: u32) -> Env {
        Env {
            rc: ((mxcsr >> 13) & 3) as u8,
            daz: mxcsr & (1 << 6) != 0,
            ftz: mxcsr & (1 << 15) != 0,
            masks: (mxcsr >> 7) & 0x3F,
            flags: 0,
        }
    }

    /// Classifies a source operand, applying DAZ (a denormal becomes a zero).
    /// DE is raised separately by the operations, after the NaN checks that
    /// take precedence over it.
    pub fn unpack<F: Format>(&mut self, x: u64) -> Class {
        let e = exp_field::<F>(x);
        let m = x & F::MANT;
        if e == F::EXP_MAX {
            return if m == 0 {
                Class::Inf
            } else if m & F::QUIET != 0 {
                Class::QNaN
            } else {
                Class::SNaN
            };
        }
        if e == 0 {
            if m == 0 || self.daz {
                return Class::Zero;
            }
            // Normalize the denormal so the top bit sits at bit M.
            let shift = m.leading_zeros() - (63 - F::M);
            return Class::Finite {
                exp: F::EMIN - F::M as i32 - shift as i32,
                sig: m << shift,
            };
        }
        Class::Finite {
            exp: e as i32 - F::BIAS - F::M as i32,
            sig: m | (1 << F::M),
        }
    }

    /// True if `x` is a denormal that DAZ does not flush (it raises DE when used).
    fn denormal_source<F: Format>(&self, x: u64) -> bool {
        !self.daz && is_denormal::<F>(x)
    }

    /// Rounds `sig * 2^exp` (bit 0 of `sig` may be a sticky bit standing for
    /// any nonzero value below it; `sig` must carry at least two bits more
    /// than the precision) to the format, raising OE/UE/PE.
    pub fn round_pack<F: Format>(&mut self, sign: bool, exp: i32, sig: u128) -> u64 {
        let s = if sign { F::SIGN } else { 0 };
        if sig == 0 {
            return s;
        }
        let n = 127 - sig.leading_zeros() as i32; // index of the top bit
        let e = exp + n; // unbiased exponent of the top bit
        let p = F::P as i32;
        // Round with an unbounded exponent first (tininess is decided after rounding).
        let (q, inexact) = round_shift(sig, n - (p - 1), sign, self.rc);
        let (q, e_r) = if q >> p != 0 { (q >> 1, e + 1) } else { (q, e) };
        if e_r > F::EMAX {
            if self.masks & OE == 0 {
                self.flags |= OE | if inexact { PE } else { 0 };
                return s | F::INF;
            }
            self.flags |= OE | PE;
            let to_inf = match self.rc {
                RC_NEAREST => true,
                RC_DOWN => sign,
                RC_UP => !sign,
                _ => false,
            };
            return s | if to_inf { F::INF } else { F::MAX_FINITE };
        }
        if e_r >= F::EMIN {
            if inexact {
                self.flags |= PE;
            }
            let biased = (e_r + F::BIAS) as u64;
            return s | (biased << F::M) | (q as u64 & F::MANT);
        }
        // Tiny.
        if self.masks & UE == 0 {
            // Unmasked: the caller faults; the value is not delivered.
            self.flags |= UE | if inexact { PE } else { 0 };
            return s;
        }
        if self.ftz {
            self.flags |= UE | PE;
            return s;
        }
        // Denormal result: the lowest representable bit has weight 2^(EMIN - M).
        let shift = (F::EMIN - F::M as i32) - exp;
        let (q, inexact) = round_shift(sig, shift, sign, self.rc);
        if inexact {
            self.flags |= UE | PE;
        }
        // A carry into bit M yields the smallest normal, encoded the same way.
        s | q as u64
    }

    /// The NaN result of a two-operand arithmetic instruction, if either
    /// source is a NaN: IE for an SNaN; the first source wins (Table 4-7).
    fn nan2<F: Format>(&mut self, a: u64, b: u64) -> Option<u64> {
        let (na, nb) = (is_nan::<F>(a), is_nan::<F>(b));
        if !na && !nb {
            return None;
        }
        if is_snan::<F>(a) || is_snan::<F>(b) {
            self.flags |= IE;
        }
        Some(if na { quiet::<F>(a) } else { quiet::<F>(b) })
    }

    /// Invalid operation: IE and the default NaN.
    fn invalid<F: Format>(&mut self) -> u64 {
        self.flags |= IE;
        F::DEFAULT_NAN
    }

    fn note_denormals<F: Format>(&mut self, a: u64, b: u64) {
        if self.denormal_source::<F>(a) || self.denormal_source::<F>(b) {
            self.flags |= DE;
        }
    }

    /// a + b, or a - b with `sub` (ADDPS/SUBPS/ADDSD/...).
    pub fn add<F: Format>(&mut self, a: u64, b: u64, sub: bool) -> u64 {
        if let Some(n) = self.nan2::<F>(a, b) {
            return n;
        }
        let b = if sub { b ^ F::SIGN } else { b };
        let (sa, sb) = (sign_of::<F>(a), sign_of::<F>(b));
        let (ca, cb) = (self.unpack::<F>(a), self.unpack::<F>(b));
        match (ca, cb) {
            (Class::Inf, Class::Inf) if sa != sb => return self.invalid::<F>(),
            _ => {}
        }
        self.note_denormals::<F>(a, b);
        match (ca, cb) {
            (Class::Inf, _) => (a & F::SIGN) | F::INF,
            (_, Class::Inf) => (b & F::SIGN) | F::INF,
            (Class::Zero, Class::Zero) => {
                let neg = if sa == sb { sa } else { self.rc == RC_DOWN };
                if neg {
                    F::SIGN
                } else {
                    0
                }
            }
            (Class::Zero, Class::Finite { exp, sig }) => self.round_pack::<F>(sb, exp, sig as u128),
            (Class::Finite { exp, sig }, Class::Zero) => self.round_pack::<F>(sa, exp, sig as u128),
            (Class::Finite { exp: ea, sig: ma }, Class::Finite { exp: eb, sig: mb }) => {
                // 64 guard bits below the significands; align to the larger exponent.
                let (mut xa, mut xb) = ((ma as u128) << 64, (mb as u128) << 64);
                let (ea, eb) = (ea - 64, eb - 64);
                let e = ea.max(eb);
                xa = shift_right_sticky(xa, (e - ea) as u32);
                xb = shift_right_sticky(xb, (e - eb) as u32);
                if sa == sb {
                    self.round_pack::<F>(sa, e, xa + xb)
                } else if xa >= xb {
                    let d = xa - xb;
                    if d == 0 {
                        return if self.rc == RC_DOWN { F::SIGN } else { 0 };
                    }
                    self.round_pack::<F>(sa, e, d)
                } else {
                    self.round_pack::<F>(sb, e, xb - xa)
                }
            }
            _ => F::DEFAULT_NAN,
        }
    }

    /// a * b.
    pub fn mul<F: Format>(&mut self, a: u64, b: u64) -> u64 {
        if let Some(n) = self.nan2::<F>(a, b) {
            return n;
        }
        let sign = sign_of::<F>(a) != sign_of::<F>(b);
        let s = if sign { F::SIGN } else { 0 };
        let (ca, cb) = (self.unpack::<F>(a), self.unpack::<F>(b));
        match (ca, cb) {
            (Class::Inf, Class::Zero) | (Class::Zero, Class::Inf) => return self.invalid::<F>(),
            _ => {}
        }
        self.note_denormals::<F>(a, b);
        match (ca, cb) {
            (Class::Inf, _) | (_, Class::Inf) => s | F::INF,
            (Class::Zero, _) | (_, Class::Zero) => s,
            (Class::Finite { exp: ea, sig: ma }, Class::Finite { exp: eb, sig: mb }) => {
                self.round_pack::<F>(sign, ea + eb, ma as u128 * mb as u128)
            }
            _ => F::DEFAULT_NAN,
        }
    }

    /// a / b.
    pub fn div<F: Format>(&mut self, a: u64, b: u64) -> u64 {
        if let Some(n) = self.nan2::<F>(a, b) {
            return n;
        }
        let sign = sign_of::<F>(a) != sign_of::<F>(b);
        let s = if sign { F::SIGN } else { 0 };
        let (ca, cb) = (self.unpack::<F>(a), self.unpack::<F>(b));
        match (ca, cb) {
            (Class::Inf, Class::Inf) | (Class::Zero, Class::Zero) => return self.invalid::<F>(),
            (Class::Finite { .. }, Class::Zero) => {
                self.flags |= ZE;
                return s | F::INF;
            }
            _ => {}
        }
        self.note_denormals::<F>(a, b);
        match (ca, cb) {
            (Class::Inf, _) => s | F::INF,
            (_, Class::Inf) | (Class::Zero, _) => s,
            (Class::Finite { exp: ea, sig: ma }, Class::Finite { exp: eb, sig: mb }) => {
                let num = (ma as u128) << 74;
                let den = mb as u128;
                let mut q = num / den;
                if !num.is_multiple_of(den) {
                    q |= 1;
                }
                self.round_pack::<F>(sign, ea - eb - 74, q)
            }
            _ => F::DEFAULT_NAN,
        }
    }

    /// sqrt(a).
    pub fn sqrt<F: Format>(&mut self, a: u64) -> u64 {
        if is_nan::<F>(a) {
            if is_snan::<F>(a) {
                self.flags |= IE;
            }
            return quiet::<F>(a);
        }
        let sign = sign_of::<F>(a);
        let c = self.unpack::<F>(a);
        if sign && !matches!(c, Class::Zero) {
            return self.invalid::<F>();
        }
        self.note_denormals::<F>(a, 0);
        match c {
            Class::Zero => a & F::SIGN,
            Class::Inf => F::INF,
            Class::Finite { exp, sig } => {
                let (mut exp, mut sig) = (exp, sig as u128);
                if exp & 1 != 0 {
                    sig <<= 1;
                    exp -= 1;
                }
                let x = sig << 70;
                let r = isqrt(x);
                let r = if r * r != x { r | 1 } else { r };
                self.round_pack::<F>(false, (exp - 70) / 2, r)
            }
            _ => F::DEFAULT_NAN,
        }
    }

    /// Converts between formats (CVTSS2SD, CVTSD2SS, CVTPS2PD, CVTPD2PS).
    /// NaNs keep their sign and the top of their payload, quieted.
    pub fn convert<S: Format, D: Format>(&mut self, a: u64) -> u64 {
        let sign = sign_of::<S>(a);
        let s = if sign { D::SIGN } else { 0 };
        if is_nan::<S>(a) {
            if is_snan::<S>(a) {
                self.flags |= IE;
            }
            let payload = a & S::MANT;
            let p = if D::M >= S::M {
                payload << (D::M - S::M)
            } else {
                payload >> (S::M - D::M)
            };
            return s | D::INF | p | D::QUIET;
        }
        let c = self.unpack::<S>(a);
        self.note_denormals::<S>(a, 0);
        match c {
            Class::Zero => s,
            Class::Inf => s | D::INF,
            Class::Finite { exp, sig } => self.round_pack::<D>(sign, exp, sig as u128),
            _ => D::DEFAULT_NAN,
        }
    }

    /// Rounds to an integral value in the same format (ROUNDPS...,
    /// IEEE roundToIntegral): the sign of a zero result is the source's; PE
    /// when inexact; an SNaN raises IE and is quieted; no DE (DAZ applies).
    pub fn round_to_int<F: Format>(&mut self, x: u64, rc: u8) -> u64 {
        if is_nan::<F>(x) {
            if is_snan::<F>(x) {
                self.flags |= IE;
            }
            return quiet::<F>(x);
        }
        let sign = sign_of::<F>(x);
        match self.unpack::<F>(x) {
            Class::Zero => x & F::SIGN,
            Class::Finite { exp, sig } if exp < 0 => {
                let (q, inexact) = round_shift(sig as u128, -exp, sign, rc);
                if inexact {
                    self.flags |= PE;
                }
                if q == 0 {
                    x & F::SIGN
                } else {
                    self.round_pack::<F>(sign, 0, q)
                }
            }
            _ => x,
        }
    }

    /// Signed integer to float (CVTSI2SS, CVTDQ2PS, ...): PE only.
    pub fn from_int<F: Format>(&mut self, v: i64) -> u64 {
        self.round_pack::<F>(v < 0, 0, v.unsigned_abs() as u128)
    }

    /// Float to signed integer of `bits` (32/64) bits, rounding with MXCSR.RC
    /// or truncating; NaN and out-of-range values raise IE and return the
    /// integer indefinite (only the sign bit set) (SDM Vol. 1 4.8.4, 11.5.2).
    pub fn to_int<F: Format>(&mut self, a: u64, bits: u32, truncate: bool) -> u64 {
        let indefinite = 1u64 << (bits - 1);
        let c = self.unpack::<F>(a);
        let sign = sign_of::<F>(a);
        let (mag, inexact): (u128, bool) = match c {
            Class::Zero => return 0,
            Class::Inf | Class::QNaN | Class::SNaN => {
                self.flags |= IE;
                return indefinite;
            }
            Class::Finite { exp, sig } => {
                if exp >= 0 {
                    if exp > 64 {
                        self.flags |= IE;
                        return indefinite;
                    }
                    ((sig as u128) << exp, false)
                } else {
                    let rc = if truncate { RC_ZERO } else { self.rc };
                    round_shift(sig as u128, -exp, sign, rc)
                }
            }
        };
        let limit = 1u128 << (bits - 1);
        if (!sign && mag >= limit) || (sign && mag > limit) {
            self.flags |= IE;
            return indefinite;
        }
        if inexact {
            self.flags |= PE;
        }
        let v = if sign {
            (mag as u64).wrapping_neg()
        } else {
            mag as u64
        };
        if bits == 32 {
            v & 0xFFFF_FFFF
        } else {
            v
        }
    }

    /// Ordered/unordered comparison for CMPPS/COMISS: `None` if unordered,
    /// else `Some(ordering of a vs b)`. `signal_qnan`: QNaN operands raise IE
    /// too (the signaling predicates, COMISS).
    pub fn compare<F: Format>(
        &mut self,
        a: u64,
        b: u64,
        signal_qnan: bool,
    ) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering;
        let (na, nb) = (is_nan::<F>(a), is_nan::<F>(b));
        if na || nb {
            if signal_qnan || is_snan::<F>(a) || is_snan::<F>(b) {
                self.flags |= IE;
            }
            return None;
        }
        self.note_denormals::<F>(a, b);
        let key = |env: &mut Env, x: u64| -> i128 {
            let neg = sign_of::<F>(x);
            let mag = match env.unpack::<F>(x) {
                Class::Zero => 0i128,
                _ => (x & !F::SIGN) as i128,
            };
            if neg {
                -mag
            } else {
                mag
            }
        };
        let (ka, kb) = (key(self, a), key(self, b));
        Some(if ka < kb {
            Ordering::Less
        } else if ka > kb {
            Ordering::Greater
        } else {
            Ordering::Equal
        })
    }

    /// MINPS/MAXPS semantics: the second source is returned if either value
    /// is a NaN (IE for any NaN, SNaN or QNaN, and the NaN is not quieted),
    /// if both are zeros, or if the comparison fails (SDM Vol. 2 MINPS,
    /// MAXPS).
    pub fn min_max<F: Format>(&mut self, a: u64, b: u64, max: bool) -> u64 {
        use std::cmp::Ordering;
        // DAZ applies to the returned operand too.
        let fa = self.flush_source::<F>(a);
        let fb = self.flush_source::<F>(b);
        if is_nan::<F>(a) || is_nan::<F>(b) {
            self.flags |= IE;
            return fb;
        }
        self.note_denormals::<F>(a, b);
        match self.compare::<F>(fa, fb, false) {
            Some(Ordering::Less) if !max => fa,
            Some(Ordering::Greater) if max => fa,
            _ => fb,
        }
    }

    /// The source value as the operation sees it: DAZ turns a denormal into
    /// a zero of the same sign.
    pub fn flush_source<F: Format>(&self, x: u64) -> u64 {
        if self.daz && is_denormal::<F>(x) {
            x & F::SIGN
        } else {
            x
        }
    }
}

/// Shifts right by `n`, ORing every bit shifted out into bit 0.
#[inline]
pub fn shift_right_sticky(x: u128, n: u32) -> u128 {
    if n == 0 {
        x
    } else if n >= 128 {
        (x != 0) as u128
    } else {
        (x >> n) | ((x & ((1u128 << n) - 1)) != 0) as u128
    }
}

/// Drops the low `shift` bits of `sig` with rounding mode `rc` (a negative
/// `shift` shifts left, exactly). Returns the rounded value and whether any
/// nonzero bit was dropped.
#[inline]
pub fn round_shift(sig: u128, shift: i32, sign: bool, rc: u8) -> (u128, bool) {
    if shift <= 0 {
        return (sig << (-shift).min(127) as u32, false);
    }
    if shift >= 128 {
        let inexact = sig != 0;
        let up = inexact
            && match rc {
                RC_DOWN => sign,
                RC_UP => !sign,
                _ => false,
            };
        return (up as u128, inexact);
    }
    let shift = shift as u32;
    let q = sig >> shift;
    let rem = sig & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    let inexact = rem != 0;
    let up = match rc {
        RC_NEAREST => rem > half || (rem == half && q & 1 == 1),
        RC_DOWN => inexact && sign,
        RC_UP => inexact && !sign,
        _ => false,
    };
    (q + up as u128, inexact)
}

/// Integer square root (floor) of a u128, digit by digit.
pub fn isqrt(x: u128) -> u128 {
    let mut rem = x;
    let mut res: u128 = 0;
    let mut bit: u128 = 1 << 126;
    while bit > x {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= res + bit {
            rem -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(rc: u8) -> Env {
        Env {
            rc,
            daz: false,
            ftz: false,
            masks: 0x3F,
            flags: 0,
        }
    }

    fn f64b(x: f64) -> u64 {
        x.to_bits()
    }

    /// The host's result as an x86 gives it: a NaN made from non-NaN
    /// operands is the QNaN floating-point indefinite (sign set, SDM Vol. 1
    /// 4.8.3.7), where an AArch64 host gives its positive default NaN.
    fn x86_f64(x: f64) -> u64 {
        if x.is_nan() {
            0xFFF8_0000_0000_0000
        } else {
            x.to_bits()
        }
    }

    fn x86_f32(x: f32) -> u64 {
        if x.is_nan() {
            0xFFC0_0000
        } else {
            x.to_bits() as u64
        }
    }

    #[test]
    fn nearest_matches_ieee_hardware_rounding() {
        // Round-to-nearest results are what Rust's IEEE f64 gives, with
        // x86's indefinite for invalid operations on every host.
        let vals = [
            1.0,
            3.0,
            0.1,
            1e308,
            1e-308,
            -2.5,
            7.0e-320,
            123456.789,
            1.0 / 3.0,
        ];
        for &a in &vals {
            for &b in &vals {
                let mut e = env(RC_NEAREST);
                assert_eq!(
                    e.add::<F64>(f64b(a), f64b(b), false),
                    x86_f64(a + b),
                    "{a}+{b}"
                );
                assert_eq!(
                    e.add::<F64>(f64b(a), f64b(b), true),
                    x86_f64(a - b),
                    "{a}-{b}"
                );
                assert_eq!(e.mul::<F64>(f64b(a), f64b(b)), x86_f64(a * b), "{a}*{b}");
                assert_eq!(e.div::<F64>(f64b(a), f64b(b)), x86_f64(a / b), "{a}/{b}");
                let (fa, fb) = (a as f32, b as f32);
                assert_eq!(
                    e.mul::<F32>(fa.to_bits() as u64, fb.to_bits() as u64),
                    x86_f32(fa * fb),
                    "{fa}*{fb} (f32)"
                );
            }
            assert_eq!(env(0).sqrt::<F64>(f64b(a.abs())), x86_f64(a.abs().sqrt()));
        }
    }

    #[test]
    fn directed_rounding_and_flags() {
        let one = f64b(1.0);
        let third = f64b(1.0 / 3.0);
        let mut up = env(RC_UP);
        let r = up.div::<F64>(one, f64b(3.0));
        assert_eq!(r, third + 1);
        assert_eq!(up.flags, PE);
        let mut z = env(RC_ZERO);
        assert_eq!(z.div::<F64>(one, f64b(3.0)), third);
        // Overflow: nearest -> inf, toward zero -> max finite.
        let mut n = env(RC_NEAREST);
        assert_eq!(n.mul::<F64>(f64b(1e308), f64b(10.0)), F64::INF);
        assert_eq!(n.flags, OE | PE);
        let mut z = env(RC_ZERO);
        assert_eq!(z.mul::<F64>(f64b(1e308), f64b(10.0)), F64::MAX_FINITE);
        // Exact denormal result: no UE when masked.
        let mut n = env(RC_NEAREST);
        let tiny = f64b(f64::MIN_POSITIVE);
        assert_eq!(n.mul::<F64>(tiny, f64b(0.5)), tiny >> 1);
        assert_eq!(n.flags, 0);
        // Inexact denormal: UE and PE.
        let mut n = env(RC_NEAREST);
        n.mul::<F64>(tiny, f64b(1.0 / 3.0));
        assert_eq!(n.flags, UE | PE);
        // FTZ.
        let mut f = env(RC_NEAREST);
        f.ftz = true;
        assert_eq!(f.mul::<F64>(tiny, f64b(0.5)), 0);
        assert_eq!(f.flags, UE | PE);
    }

    #[test]
    fn nan_rules() {
        let snan = 0x7FF0_0000_0000_0001u64;
        let qnan = 0x7FF8_0000_0000_0002u64;
        let mut e = env(0);
        assert_eq!(e.add::<F64>(snan, qnan, false), snan | F64::QUIET);
        assert_eq!(e.flags, IE);
        let mut e = env(0);
        assert_eq!(e.add::<F64>(f64b(1.0), qnan, false), qnan);
        assert_eq!(e.flags, 0);
        let mut e = env(0);
        assert_eq!(e.mul::<F64>(F64::INF, 0), F64::DEFAULT_NAN);
        assert_eq!(e.flags, IE);
        let mut e = env(0);
        assert_eq!(e.div::<F64>(f64b(1.0), 0), F64::INF);
        assert_eq!(e.flags, ZE);
        let mut e = env(0);
        assert_eq!(e.sqrt::<F32>(0xBF80_0000), F32::DEFAULT_NAN);
        assert_eq!(F32::DEFAULT_NAN, 0xFFC0_0000);
    }

    #[test]
    fn conversions() {
        let mut e = env(RC_NEAREST);
        assert_eq!(e.to_int::<F64>(f64b(2.5), 32, false), 2);
        assert_eq!(e.flags, PE);
        let mut e = env(RC_NEAREST);
        assert_eq!(e.to_int::<F64>(f64b(-2.5), 32, true), (-2i32) as u32 as u64);
        assert_eq!(e.to_int::<F64>(f64b(2147483648.0), 32, true), 0x8000_0000);
        assert_eq!(e.flags & IE, IE);
        let mut e = env(RC_NEAREST);
        assert_eq!(e.to_int::<F64>(f64b(-2147483648.0), 32, true), 0x8000_0000);
        assert_eq!(e.flags, 0);
        let mut e = env(RC_NEAREST);
        assert_eq!(e.from_int::<F32>(16_777_217), 0x4B80_0000);
        assert_eq!(e.flags, PE);
        let mut e = env(RC_NEAREST);
        assert_eq!(
            e.convert::<F64, F32>(f64b(1.0 / 3.0)),
            (1.0f32 / 3.0).to_bits() as u64
        );
        assert_eq!(
            e.convert::<F32, F64>(0x7F80_0001),
            0x7FF8_0000_2000_0000,
            "SNaN quieted, payload kept"
        );
    }

    #[test]
    fn round_to_integral() {
        let mut e = env(RC_NEAREST);
        assert_eq!(e.round_to_int::<F64>(f64b(2.5), RC_NEAREST), f64b(2.0));
        assert_eq!(e.flags, PE);
        assert_eq!(e.round_to_int::<F64>(f64b(-0.3), RC_NEAREST), f64b(-0.0));
        assert_eq!(e.round_to_int::<F64>(f64b(-0.3), RC_DOWN), f64b(-1.0));
        assert_eq!(e.round_to_int::<F32>(0x4B00_0001, RC_UP), 0x4B00_0001);
        let mut e = env(RC_NEAREST);
        assert_eq!(e.round_to_int::<F64>(f64b(1e300), RC_ZERO), f64b(1e300));
        assert_eq!(e.flags, 0);
        assert_eq!(e.round_to_int::<F32>(0x7F80_0001, RC_ZERO), 0x7FC0_0001);
        assert_eq!(e.flags, IE);
    }

    #[test]
    fn isqrt_is_floor() {
        for x in [0u128, 1, 2, 3, 4, 15, 16, 17, u64::MAX as u128, u128::MAX] {
            let r = isqrt(x);
            assert!(r * r <= x);
            assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > x));
        }
    }
}
