//! Double-extended (80-bit) arithmetic with the x87's rounding, precision
//! control, exception flags and NaN rules, in plain integer arithmetic.
//!
//! Why not an existing soft-float crate: the x87 rounds to 24/53/64 bits while
//! keeping the 15-bit exponent range (SDM Vol. 1 8.1.5.2), reports "rounded
//! up" in C1, scales results by 2^±24576 when overflow/underflow are unmasked
//! (Vol. 1 8.5.4, 8.5.5), and has operand classes IEEE libraries do not model
//! (pseudo-denormals, unnormals, pseudo-NaN/infinity: Vol. 1 8.2.2, Table
//! 8-3). Everything here is a pure function of its operands and an [`Env`].
//!
//! Internal representation of a finite value: sign, unbiased exponent `e` of
//! the significand's top bit, and the significand (explicit integer bit).

use super::F80;

/// Exception flags as in FSW bits 5:0 (and FCW mask bits 5:0).
pub mod exc {
    pub const IE: u16 = 1 << 0;
    pub const DE: u16 = 1 << 1;
    pub const ZE: u16 = 1 << 2;
    pub const OE: u16 = 1 << 3;
    pub const UE: u16 = 1 << 4;
    pub const PE: u16 = 1 << 5;
}
use exc::*;

/// Rounding-control values (FCW bits 11:10, SDM Vol. 1 Table 4-8).
pub const RC_NEAREST: u8 = 0;
pub const RC_DOWN: u8 = 1;
pub const RC_UP: u8 = 2;
pub const RC_ZERO: u8 = 3;

/// Exponent bias of the double-extended format.
pub const BIAS: i32 = 16383;
/// Unbiased exponent of the smallest normal (biased 1).
pub const EMIN: i32 = 1 - BIAS;
/// Unbiased exponent of the largest finite (biased 7FFEh).
pub const EMAX: i32 = 0x7FFE - BIAS;
/// Exponent adjust for unmasked overflow/underflow results on the register
/// stack (SDM Vol. 1 8.5.4, 8.5.5).
pub const BIAS_ADJUST: i32 = 24576;

/// QNaN floating-point indefinite (SDM Vol. 1 Table 4-3).
pub const INDEFINITE: F80 = F80 {
    signif: 0xC000_0000_0000_0000,
    sign_exp: 0xFFFF,
};

/// Rounding environment and the flags an operation raised.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    /// The control word: exception masks (5:0), precision (9:8), rounding (11:10).
    pub fcw: u16,
    /// Exceptions raised so far (FSW bits 5:0).
    pub exc: u16,
    /// The last rounding increased the magnitude (reported in C1).
    pub c1: bool,
}

impl Env {
    pub fn new(fcw: u16) -> Env {
        Env {
            fcw,
            exc: 0,
            c1: false,
        }
    }
    #[inline]
    pub fn rc(&self) -> u8 {
        ((self.fcw >> 10) & 3) as u8
    }
    /// Significand bits kept by precision control (SDM Vol. 1 Table 8-2); the
    /// reserved setting 01b behaves as 64 bits... no: as single on some parts;
    /// vx86 follows the host (see the differential tests).
    #[inline]
    pub fn pc_bits(&self) -> u32 {
        match (self.fcw >> 8) & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        }
    }
    #[inline]
    pub fn masked(&self, e: u16) -> bool {
        self.fcw & e != 0
    }
    /// Raises a pre-computation exception (IE, DE, ZE); true if it is
    /// unmasked, in which case the instruction must not write its result.
    #[inline]
    pub fn raise_pre(&mut self, e: u16) -> bool {
        self.exc |= e;
        !self.masked(e)
    }
    /// An unmasked IE/DE/ZE was raised: no result is delivered.
    #[inline]
    pub fn suppressed(&self) -> bool {
        self.exc & !self.fcw & (IE | DE | ZE) != 0
    }
}

/// Operand classes (SDM Vol. 1 8.2.2, Table 8-3; 4.8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Zero,
    Denormal,
    /// Exponent 0 with the integer bit set: a valid operand, treated as a denormal.
    PseudoDenormal,
    Normal,
    Infinity,
    QNaN,
    SNaN,
    /// Unnormal, pseudo-NaN, pseudo-infinity: invalid operands.
    Unsupported,
}

impl F80 {
    pub const fn new(sign_exp: u16, signif: u64) -> F80 {
        F80 { signif, sign_exp }
    }
    pub const ZERO: F80 = F80::new(0, 0);
    pub const ONE: F80 = F80::new(0x3FFF, 1 << 63);
    #[inline]
    pub fn sign(&self) -> bool {
        self.sign_exp & 0x8000 != 0
    }
    #[inline]
    pub fn exp(&self) -> u16 {
        self.sign_exp & 0x7FFF
    }
    #[inline]
    pub fn negate(self) -> F80 {
        F80::new(self.sign_exp ^ 0x8000, self.signif)
    }
    #[inline]
    pub fn abs(self) -> F80 {
        F80::new(self.sign_exp & 0x7FFF, self.signif)
    }
    pub fn inf(sign: bool) -> F80 {
        F80::new(0x7FFF | (sign as u16) << 15, 1 << 63)
    }
    pub fn zero(sign: bool) -> F80 {
        F80::new((sign as u16) << 15, 0)
    }
    pub fn class(&self) -> Class {
        let e = self.exp();
        let j = self.signif >> 63 != 0;
        let frac = self.signif << 1;
        match e {
            0 if self.signif == 0 => Class::Zero,
            0 if j => Class::PseudoDenormal,
            0 => Class::Denormal,
            0x7FFF if !j => Class::Unsupported,
            0x7FFF if frac == 0 => Class::Infinity,
            0x7FFF if self.signif & (1 << 62) != 0 => Class::QNaN,
            0x7FFF => Class::SNaN,
            _ if !j => Class::Unsupported,
            _ => Class::Normal,
        }
    }
    #[inline]
    pub fn is_nan(&self) -> bool {
        matches!(self.class(), Class::QNaN | Class::SNaN)
    }
    /// A normal number (exponent 1..=7FFEh, integer bit set): the case
    /// arithmetic sees almost always, tested first so it skips the NaN,
    /// unsupported, infinity, zero and denormal screening.
    #[inline(always)]
    pub fn is_normal(&self) -> bool {
        let e = self.exp();
        e != 0 && e != 0x7FFF && self.signif >> 63 != 0
    }
    /// Denormal or pseudo-denormal: raises DE when used in arithmetic.
    #[inline]
    pub fn is_denormal(&self) -> bool {
        self.exp() == 0 && self.signif != 0
    }
    fn quiet(self) -> F80 {
        F80::new(self.sign_exp, self.signif | 1 << 62)
    }
}

/// A finite nonzero value: `sig * 2^(e - 63)`.
#[derive(Clone, Copy, Debug)]
pub struct Fin {
    pub sign: bool,
    pub e: i32,
    pub sig: u64,
}

impl Fin {
    /// Unpacks a finite nonzero register value (normal, denormal or
    /// pseudo-denormal), normalized so that bit 63 is set.
    pub fn of(x: F80) -> Fin {
        let biased = (x.exp() as i32).max(1);
        let lz = x.signif.leading_zeros();
        Fin {
            sign: x.sign(),
            e: biased - BIAS - lz as i32,
            sig: x.signif << lz.min(63),
        }
    }
}

/// Shifts right, ORing the lost bits into bit 0.
#[inline]
pub fn shr_sticky(v: u128, n: u32) -> u128 {
    if n == 0 {
        v
    } else if n >= 128 {
        (v != 0) as u128
    } else {
        (v >> n) | ((v & ((1u128 << n) - 1)) != 0) as u128
    }
}

/// Rounds `v` to its top `p` bits. Returns the truncated-or-incremented
/// value (low bits zero), whether it carried out of bit 127 (the value is
/// then 2^128, returned as 1<<127 with the carry flag), inexact, rounded up.
#[inline]
fn round_bits(v: u128, p: u32, rc: u8, sign: bool) -> (u128, bool, bool, bool) {
    let drop = 128 - p;
    let lsb = 1u128 << drop;
    let rem = v & (lsb - 1);
    let t = v & !(lsb - 1);
    let half = lsb >> 1;
    let up = match rc {
        RC_NEAREST => rem > half || (rem == half && t & lsb != 0),
        RC_DOWN => sign && rem != 0,
        RC_UP => !sign && rem != 0,
        _ => false,
    };
    if !up {
        return (t, false, rem != 0, false);
    }
    match t.checked_add(lsb) {
        Some(r) => (r, false, true, true),
        None => (1u128 << 127, true, true, true),
    }
}

/// A rounded finite result: `sig * 2^(e - 63)`, `sig` may lack its top bit
/// only for denormals (then `e == emin`) and be 0 for zero.
#[derive(Clone, Copy, Debug)]
pub struct Rounded {
    pub sign: bool,
    pub e: i32,
    pub sig: u64,
    pub inf: bool,
}

/// Destination format for [`round_core`].
#[derive(Clone, Copy, Debug)]
pub struct Fmt {
    pub p: u32,
    pub emin: i32,
    pub emax: i32,
    /// Register destination: unmasked OE/UE deliver a bias-adjusted result;
    /// otherwise (memory) nothing is stored.
    pub reg: bool,
}

pub const FMT_F32: Fmt = Fmt {
    p: 24,
    emin: -126,
    emax: 127,
    reg: false,
};
pub const FMT_F64: Fmt = Fmt {
    p: 53,
    emin: -1022,
    emax: 1023,
    reg: false,
};

impl Env {
    /// The register format with the current precision control.
    pub fn fmt_reg(&self) -> Fmt {
        Fmt {
            p: self.pc_bits(),
            emin: EMIN,
            emax: EMAX,
            reg: true,
        }
    }
}

pub const FMT_EXT: Fmt = Fmt {
    p: 64,
    emin: EMIN,
    emax: EMAX,
    reg: true,
};

/// Rounds the exact value `v * 2^(e - 127)` (bit 127 of `v` set) to `fmt`
/// under the current rounding control, raising OE/UE/PE and setting C1
/// (SDM Vol. 1 4.9.1.4-4.9.1.6: tininess is detected after rounding).
/// `None`: an unmasked OE/UE on a memory destination, nothing is stored.
pub fn round_core(env: &mut Env, sign: bool, e: i32, v: u128, fmt: Fmt) -> Option<Rounded> {
    let rc = env.rc();
    let (t, carry, inexact, up) = round_bits(v, fmt.p, rc, sign);
    let mut er = e + carry as i32;
    if er < fmt.emin {
        if env.masked(UE) {
            let vs = shr_sticky(v, (fmt.emin - e).min(200) as u32);
            let (t2, _, inexact2, up2) = round_bits(vs, fmt.p, rc, sign);
            if inexact2 {
                env.exc |= UE | PE;
                env.c1 = up2;
            } else {
                env.c1 = false;
            }
            return Some(Rounded {
                sign,
                e: fmt.emin,
                sig: (t2 >> 64) as u64,
                inf: false,
            });
        }
        env.exc |= UE;
        if !fmt.reg {
            // Nothing is stored; PE is not reported (host behaviour).
            return None;
        }
        if er + BIAS_ADJUST < fmt.emin {
            // Too small even for the bias adjust: a zero, whatever RC says
            // (host behaviour).
            env.exc |= PE;
            env.c1 = false;
            return Some(Rounded {
                sign,
                e: fmt.emin,
                sig: 0,
                inf: false,
            });
        }
        if inexact {
            env.exc |= PE;
        }
        env.c1 = up;
        er += BIAS_ADJUST;
    } else if er > fmt.emax {
        env.exc |= OE;
        if env.masked(OE) {
            env.exc |= PE;
            let to_inf = match rc {
                RC_NEAREST => true,
                RC_DOWN => sign,
                RC_UP => !sign,
                _ => false,
            };
            env.c1 = to_inf;
            return Some(Rounded {
                sign,
                e: fmt.emax,
                sig: if to_inf {
                    1 << 63
                } else {
                    !0u64 << (64 - fmt.p)
                },
                inf: to_inf,
            });
        }
        if !fmt.reg {
            return None;
        }
        if er - BIAS_ADJUST > fmt.emax {
            // Too large even for the bias adjust: infinity, whatever RC
            // says (host behaviour).
            env.exc |= PE;
            env.c1 = true;
            return Some(Rounded {
                sign,
                e: fmt.emax,
                sig: 1 << 63,
                inf: true,
            });
        }
        if inexact {
            env.exc |= PE;
        }
        env.c1 = up;
        er -= BIAS_ADJUST;
    } else {
        if inexact {
            env.exc |= PE;
        }
        env.c1 = up;
    }
    Some(Rounded {
        sign,
        e: er,
        sig: (t >> 64) as u64,
        inf: false,
    })
}

impl Rounded {
    /// Packs into the double-extended register format.
    pub fn to_f80(self) -> F80 {
        let s = (self.sign as u16) << 15;
        if self.inf {
            return F80::new(s | 0x7FFF, 1 << 63);
        }
        if self.sig >> 63 == 0 {
            return F80::new(s, self.sig);
        }
        F80::new(s | ((self.e + BIAS) as u16 & 0x7FFF), self.sig)
    }
    /// Packs into binary64.
    pub fn to_f64(self) -> u64 {
        let s = (self.sign as u64) << 63;
        if self.inf {
            return s | 0x7FF0_0000_0000_0000;
        }
        let frac = (self.sig >> 11) & ((1 << 52) - 1);
        if self.sig >> 63 == 0 {
            return s | frac;
        }
        s | (((self.e + 1023) as u64) << 52) | frac
    }
    /// Packs into binary32.
    pub fn to_f32(self) -> u32 {
        let s = (self.sign as u32) << 31;
        if self.inf {
            return s | 0x7F80_0000;
        }
        let frac = ((self.sig >> 40) as u32) & ((1 << 23) - 1);
        if self.sig >> 63 == 0 {
            return s | frac;
        }
        s | (((self.e + 127) as u32) << 23) | frac
    }
}

/// Normalizes and rounds `v * 2^(e - 127)` to a register value; `v != 0`.
fn finish(env: &mut Env, sign: bool, e: i32, v: u128, fmt: Fmt) -> F80 {
    let lz = v.leading_zeros();
    let v = v << lz;
    match round_core(env, sign, e - lz as i32, v, fmt) {
        Some(r) => r.to_f80(),
        None => INDEFINITE,
    }
}

/// Rounds a register value to the precision and range of `fmt` (used by
/// arithmetic with an operand that needs no computation, e.g. x + 0).
pub fn round_f80(env: &mut Env, x: F80, fmt: Fmt) -> F80 {
    let f = Fin::of(x);
    finish(env, f.sign, f.e, (f.sig as u128) << 64, fmt)
}

/// NaN result for two operands, one or both NaN (SDM Vol. 1 Table 4-7, x87
/// column): an SNaN beside a QNaN yields the QNaN; two NaNs of the same kind
/// yield the one with the larger significand. The result is always quiet.
pub fn propagate_nan(a: F80, b: F80) -> F80 {
    let (an, bn) = (a.is_nan(), b.is_nan());
    if an && bn {
        let (asn, bsn) = (a.class() == Class::SNaN, b.class() == Class::SNaN);
        if asn != bsn {
            return if asn { b.quiet() } else { a.quiet() };
        }
        let (sa, sb) = (a.signif | 1 << 62, b.signif | 1 << 62);
        if sa > sb {
            return a.quiet();
        }
        if sb > sa {
            return b.quiet();
        }
        return if a.sign_exp <= b.sign_exp {
            a.quiet()
        } else {
            b.quiet()
        };
    }
    if an {
        a.quiet()
    } else {
        b.quiet()
    }
}

/// Common operand screening of two-operand arithmetic (SDM Vol. 1 8.7
/// priorities): unsupported formats and SNaNs raise IE; NaNs propagate.
/// `Some(result)` ends the operation.
fn screen2(env: &mut Env, a: F80, b: F80) -> Option<F80> {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        env.raise_pre(IE);
        return Some(INDEFINITE);
    }
    if a.is_nan() || b.is_nan() {
        if ca == Class::SNaN || cb == Class::SNaN {
            env.raise_pre(IE);
        }
        return Some(propagate_nan(a, b));
    }
    None
}

/// Raises DE if either operand is a denormal; true if that stopped the
/// operation (unmasked).
fn denormal_check(env: &mut Env, a: F80, b: F80) -> bool {
    if a.is_denormal() || b.is_denormal() {
        return env.raise_pre(DE);
    }
    false
}

/// a + b (b negated first if `sub`), rounded to `fmt`.
pub fn add(env: &mut Env, a: F80, b: F80, sub: bool, fmt: Fmt) -> F80 {
    let bn = if sub { b.negate() } else { b };
    if a.is_normal() && bn.is_normal() {
        return add_finite(env, a, bn, fmt);
    }
    // NaNs propagate with the sign they had, before FSUB's negation.
    if let Some(r) = screen2(env, a, b) {
        return r;
    }
    let b = bn;
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Infinity && cb == Class::Infinity && a.sign() != b.sign() {
        env.raise_pre(IE);
        return INDEFINITE;
    }
    if denormal_check(env, a, b) {
        return INDEFINITE;
    }
    if ca == Class::Infinity {
        return a;
    }
    if cb == Class::Infinity {
        return b;
    }
    let rdown = env.rc() == RC_DOWN;
    match (ca == Class::Zero, cb == Class::Zero) {
        (true, true) => {
            let s = if a.sign() == b.sign() {
                a.sign()
            } else {
                rdown
            };
            return F80::zero(s);
        }
        (true, false) => return round_f80(env, b, fmt),
        (false, true) => return round_f80(env, a, fmt),
        _ => {}
    }
    add_finite(env, a, b, fmt)
}

/// a + b for nonzero finite operands (normal or, DE already raised,
/// denormal).
#[inline(always)]
fn add_finite(env: &mut Env, a: F80, b: F80, fmt: Fmt) -> F80 {
    let rdown = env.rc() == RC_DOWN;
    let (mut x, mut y) = (Fin::of(a), Fin::of(b));
    if (y.e, y.sig) > (x.e, x.sig) {
        std::mem::swap(&mut x, &mut y);
    }
    let vx = (x.sig as u128) << 63;
    let vy = shr_sticky((y.sig as u128) << 63, (x.e - y.e).min(200) as u32);
    let s = if x.sign == y.sign { vx + vy } else { vx - vy };
    if s == 0 {
        return F80::zero(rdown);
    }
    finish(env, x.sign, x.e + 1, s, fmt)
}

/// a * b rounded to `fmt`.
pub fn mul(env: &mut Env, a: F80, b: F80, fmt: Fmt) -> F80 {
    if a.is_normal() && b.is_normal() {
        let (x, y) = (Fin::of(a), Fin::of(b));
        let p = x.sig as u128 * y.sig as u128;
        return finish(env, a.sign() ^ b.sign(), x.e + y.e + 1, p, fmt);
    }
    if let Some(r) = screen2(env, a, b) {
        return r;
    }
    let (ca, cb) = (a.class(), b.class());
    let sign = a.sign() ^ b.sign();
    let (ia, ib) = (ca == Class::Infinity, cb == Class::Infinity);
    let (za, zb) = (ca == Class::Zero, cb == Class::Zero);
    if (ia && zb) || (ib && za) {
        env.raise_pre(IE);
        return INDEFINITE;
    }
    if denormal_check(env, a, b) {
        return INDEFINITE;
    }
    if ia || ib {
        return F80::inf(sign);
    }
    if za || zb {
        return F80::zero(sign);
    }
    let (x, y) = (Fin::of(a), Fin::of(b));
    let p = x.sig as u128 * y.sig as u128;
    finish(env, sign, x.e + y.e + 1, p, fmt)
}

/// a / b rounded to `fmt`.
pub fn div(env: &mut Env, a: F80, b: F80, fmt: Fmt) -> F80 {
    if let Some(r) = screen2(env, a, b) {
        return r;
    }
    let (ca, cb) = (a.class(), b.class());
    let sign = a.sign() ^ b.sign();
    let (ia, ib) = (ca == Class::Infinity, cb == Class::Infinity);
    let (za, zb) = (ca == Class::Zero, cb == Class::Zero);
    if (ia && ib) || (za && zb) {
        env.raise_pre(IE);
        return INDEFINITE;
    }
    if zb && !ia {
        // x/0 raises ZE alone, even for a denormal x (host behaviour).
        env.raise_pre(ZE);
        return F80::inf(sign);
    }
    if denormal_check(env, a, b) {
        return INDEFINITE;
    }
    if ia {
        return F80::inf(sign);
    }
    if ib || za {
        return F80::zero(sign);
    }
    let (x, y) = (Fin::of(a), Fin::of(b));
    let (n, e) = if x.sig >= y.sig {
        ((x.sig as u128) << 63, x.e - y.e)
    } else {
        ((x.sig as u128) << 64, x.e - y.e - 1)
    };
    let d = y.sig as u128;
    let q = n / d;
    let r = n % d;
    let n2 = r << 64;
    let q2 = n2 / d;
    let r2 = n2 % d;
    let v = (q << 64) | q2 | (r2 != 0) as u128;
    finish(env, sign, e, v, fmt)
}

/// Integer square root of a 128-bit value and the remainder.
fn isqrt128(n: u128) -> (u64, u128) {
    let mut rem: u128 = 0;
    let mut root: u128 = 0;
    for i in (0..64).rev() {
        rem = (rem << 2) | ((n >> (2 * i)) & 3);
        root <<= 1;
        let t = (root << 1) | 1;
        if rem >= t {
            rem -= t;
            root |= 1;
        }
    }
    (root as u64, rem)
}

/// Square root rounded to `fmt` (SDM Vol. 2A FSQRT).
pub fn sqrt(env: &mut Env, a: F80, fmt: Fmt) -> F80 {
    match a.class() {
        Class::Unsupported => {
            env.raise_pre(IE);
            return INDEFINITE;
        }
        Class::SNaN => {
            env.raise_pre(IE);
            return a.quiet();
        }
        Class::QNaN => return a,
        Class::Zero => return a,
        Class::Infinity if !a.sign() => return a,
        _ => {}
    }
    if a.sign() {
        env.raise_pre(IE);
        return INDEFINITE;
    }
    if a.is_denormal() && env.raise_pre(DE) {
        return INDEFINITE;
    }
    let x = Fin::of(a);
    let (n, e) = if x.e & 1 == 0 {
        ((x.sig as u128) << 63, x.e >> 1)
    } else {
        ((x.sig as u128) << 64, (x.e - 1) >> 1)
    };
    let (r, rem) = isqrt128(n);
    let guard: u128 = if rem > r as u128 {
        (1 << 63) | 1
    } else {
        (rem != 0) as u128
    };
    let v = ((r as u128) << 64) | guard;
    finish(env, false, e, v, fmt)
}

// ---- conversions ----

/// binary32 to register format, exactly (FLD m32fp, SDM Vol. 2A FLD):
/// with `quiet`, an SNaN raises IE and is quieted (else it stays signaling
/// for the arithmetic to screen); denormals raise DE.
pub fn from_f32(env: &mut Env, v: u32, quiet: bool) -> F80 {
    let sign = (v >> 31) as u16;
    let e = ((v >> 23) & 0xFF) as i32;
    let frac = (v & 0x7F_FFFF) as u64;
    if e == 0xFF {
        let sig = (1 << 63) | (frac << 40);
        let r = F80::new(sign << 15 | 0x7FFF, sig);
        if quiet && frac != 0 && frac & (1 << 22) == 0 {
            env.raise_pre(IE);
            return r.quiet();
        }
        return r;
    }
    if e == 0 {
        if frac == 0 {
            return F80::zero(sign != 0);
        }
        env.raise_pre(DE);
        let lz = frac.leading_zeros() - 40;
        return Rounded {
            sign: sign != 0,
            e: -126 - lz as i32,
            sig: frac << (40 + lz),
            inf: false,
        }
        .to_f80_norm();
    }
    Rounded {
        sign: sign != 0,
        e: e - 127,
        sig: (1 << 63) | (frac << 40),
        inf: false,
    }
    .to_f80_norm()
}

/// binary64 to register format, exactly (FLD m64fp); see [`from_f32`].
pub fn from_f64(env: &mut Env, v: u64, quiet: bool) -> F80 {
    let sign = (v >> 63) as u16;
    let e = ((v >> 52) & 0x7FF) as i32;
    let frac = v & ((1 << 52) - 1);
    if e == 0x7FF {
        let r = F80::new(sign << 15 | 0x7FFF, (1 << 63) | (frac << 11));
        if quiet && frac != 0 && frac & (1 << 51) == 0 {
            env.raise_pre(IE);
            return r.quiet();
        }
        return r;
    }
    if e == 0 {
        if frac == 0 {
            return F80::zero(sign != 0);
        }
        env.raise_pre(DE);
        let lz = frac.leading_zeros() - 11;
        return Rounded {
            sign: sign != 0,
            e: -1022 - lz as i32,
            sig: frac << (11 + lz),
            inf: false,
        }
        .to_f80_norm();
    }
    Rounded {
        sign: sign != 0,
        e: e - 1023,
        sig: (1 << 63) | (frac << 11),
        inf: false,
    }
    .to_f80_norm()
}

impl Rounded {
    /// Packs a normalized in-range value (no denormal handling needed).
    fn to_f80_norm(self) -> F80 {
        F80::new(
            (self.sign as u16) << 15 | (self.e + BIAS) as u16 & 0x7FFF,
            self.sig,
        )
    }
}

/// NaN/invalid handling shared by the stores to binary32/64: `Some` ends the
/// conversion with the (already encoded) result, `None` continues.
fn store_screen(env: &mut Env, x: F80, nan_shift: u32, exp_all: u64, indef: u64) -> Option<u64> {
    match x.class() {
        Class::Unsupported => {
            env.raise_pre(IE);
            Some(indef)
        }
        Class::SNaN | Class::QNaN => {
            if x.class() == Class::SNaN {
                env.raise_pre(IE);
            }
            let payload = (x.signif | 1 << 62) << 1 >> (nan_shift + 1);
            Some(exp_all | payload)
        }
        _ => None,
    }
}

/// Register value to binary32 (FST m32fp). `None`: nothing is stored
/// (an unmasked exception).
pub fn to_f32(env: &mut Env, x: F80) -> Option<u32> {
    let s = (x.sign() as u32) << 31;
    if let Some(r) = store_screen(env, x, 40, 0x7F80_0000, 0xFFC0_0000) {
        if env.suppressed() {
            return None;
        }
        let r = r as u32;
        return Some(if x.class() == Class::Unsupported {
            r
        } else {
            s | r
        });
    }
    match x.class() {
        Class::Zero => return Some(s),
        Class::Infinity => return Some(s | 0x7F80_0000),
        _ => {}
    }
    let f = Fin::of(x);
    round_core(env, f.sign, f.e, (f.sig as u128) << 64, FMT_F32).map(|r| r.to_f32())
}

/// Register value to binary64 (FST m64fp).
pub fn to_f64(env: &mut Env, x: F80) -> Option<u64> {
    let s = (x.sign() as u64) << 63;
    if let Some(r) = store_screen(env, x, 11, 0x7FF0_0000_0000_0000, 0xFFF8_0000_0000_0000) {
        if env.suppressed() {
            return None;
        }
        return Some(if x.class() == Class::Unsupported {
            r
        } else {
            s | r
        });
    }
    match x.class() {
        Class::Zero => return Some(s),
        Class::Infinity => return Some(s | 0x7FF0_0000_0000_0000),
        _ => {}
    }
    let f = Fin::of(x);
    round_core(env, f.sign, f.e, (f.sig as u128) << 64, FMT_F64).map(|r| r.to_f64())
}

/// Exact integer to register format (FILD, FIADD... operands).
pub fn from_i64(v: i64) -> F80 {
    if v == 0 {
        return F80::ZERO;
    }
    let sign = v < 0;
    let m = v.unsigned_abs();
    let lz = m.leading_zeros();
    F80::new(
        (sign as u16) << 15 | (BIAS + 63 - lz as i32) as u16,
        m << lz,
    )
}

/// Rounds a finite nonzero value to an integer magnitude under `rc`
/// (`trunc` forces chop). Returns (magnitude, or None if >= 2^64; inexact;
/// rounded up).
pub fn round_to_int(f: Fin, rc: u8) -> (Option<u64>, bool, bool) {
    if f.e >= 64 {
        return (None, false, false);
    }
    if f.e >= 63 {
        return (Some(f.sig), false, false);
    }
    // value = sig * 2^(e-63); integer part = sig >> (63 - e), fraction bits below.
    let sh = (63 - f.e) as u32; // 1..
    let v = (f.sig as u128) << 64;
    let v = shr_sticky(v, sh.min(127)); // integer part now in bits 127..64
    let int = (v >> 64) as u64;
    let frac = v as u64;
    if frac == 0 {
        return (Some(int), false, false);
    }
    let half = 1u64 << 63;
    let up = match rc {
        RC_NEAREST => frac > half || (frac == half && int & 1 != 0),
        RC_DOWN => f.sign,
        RC_UP => !f.sign,
        _ => false,
    };
    if up {
        (int.checked_add(1), true, true)
    } else {
        (Some(int), true, false)
    }
}

/// Register value to a signed integer of `bits` (16, 32, 64) for FIST/FISTP
/// (`trunc` for FISTTP). Out of range, NaN, infinity: IE, masked result the
/// integer indefinite (SDM Vol. 1 4.8.3.6). `None`: nothing is stored.
pub fn to_int(env: &mut Env, x: F80, bits: u32, trunc: bool) -> Option<i64> {
    let indef = i64::MIN >> (64 - bits);
    let invalid = |env: &mut Env| {
        if env.raise_pre(IE) {
            None
        } else {
            Some(indef)
        }
    };
    match x.class() {
        Class::Unsupported | Class::SNaN | Class::QNaN | Class::Infinity => return invalid(env),
        Class::Zero => return Some(0),
        _ => {}
    }
    let f = Fin::of(x);
    let rc = if trunc { RC_ZERO } else { env.rc() };
    let (m, inexact, up) = round_to_int(f, rc);
    let limit = 1u64 << (bits - 1);
    let v = match m {
        Some(m) if m < limit || (f.sign && m == limit) => {
            if f.sign {
                (m as i64).wrapping_neg()
            } else {
                m as i64
            }
        }
        _ => return invalid(env),
    };
    if inexact {
        env.exc |= PE;
    }
    env.c1 = up;
    Some(v)
}

/// Rounds to an integral value in register format (FRNDINT).
pub fn round_int_f80(env: &mut Env, x: F80, rc: u8) -> F80 {
    match x.class() {
        Class::Unsupported => {
            env.raise_pre(IE);
            return INDEFINITE;
        }
        Class::SNaN => {
            env.raise_pre(IE);
            return x.quiet();
        }
        Class::QNaN | Class::Zero | Class::Infinity => return x,
        _ => {}
    }
    if x.is_denormal() && env.raise_pre(DE) {
        return INDEFINITE;
    }
    let f = Fin::of(x);
    if f.e >= 63 {
        return x;
    }
    let (m, inexact, up) = round_to_int(f, rc);
    if inexact {
        env.exc |= PE;
    }
    env.c1 = up;
    match m {
        Some(0) => F80::zero(f.sign),
        Some(m) => {
            let lz = m.leading_zeros();
            F80::new(
                (f.sign as u16) << 15 | (BIAS + 63 - lz as i32) as u16,
                m << lz,
            )
        }
        // 2^64: only when e == 63 and rounding up, excluded above.
        None => F80::new((f.sign as u16) << 15 | (BIAS + 64) as u16, 1 << 63),
    }
}

/// Compares two register values: `None` unordered, else the ordering of a
/// relative to b. Raises IE for SNaN/unsupported (or any NaN if
/// `signal_qnan`) and DE for denormals (SDM Vol. 2A FCOM/FUCOM).
pub fn compare(env: &mut Env, a: F80, b: F80, signal_qnan: bool) -> Option<std::cmp::Ordering> {
    let (ca, cb) = (a.class(), b.class());
    if ca == Class::Unsupported || cb == Class::Unsupported {
        env.raise_pre(IE);
        return None;
    }
    if a.is_nan() || b.is_nan() {
        if signal_qnan || ca == Class::SNaN || cb == Class::SNaN {
            env.raise_pre(IE);
        }
        return None;
    }
    // An unmasked DE still lets the comparison deliver its codes.
    denormal_check(env, a, b);
    let key = |x: F80, c: Class| -> (i8, i32, u64) {
        match c {
            Class::Zero => (0, 0, 0),
            Class::Infinity => (if x.sign() { -2 } else { 2 }, 0, 0),
            _ => {
                let f = Fin::of(x);
                (if f.sign { -1 } else { 1 }, f.e, f.sig)
            }
        }
    };
    let (ka, kb) = (key(a, ca), key(b, cb));
    if ka.0 != kb.0 {
        return Some(ka.0.cmp(&kb.0));
    }
    let mag = (ka.1, ka.2).cmp(&(kb.1, kb.2));
    Some(if ka.0 < 0 { mag.reverse() } else { mag })
}

// ---- packed BCD (FBLD/FBSTP, SDM Vol. 1 4.7) ----

/// Packed BCD (10 bytes) to register format. Invalid digits are used with
/// their nibble value, as the hardware's "undefined" result does.
pub fn from_bcd(b: &[u8; 10]) -> F80 {
    let mut v: u64 = 0;
    for i in (0..9).rev() {
        let hi = (b[i] >> 4) as u64;
        let lo = (b[i] & 15) as u64;
        v = v.wrapping_mul(10).wrapping_add(hi);
        v = v.wrapping_mul(10).wrapping_add(lo);
    }
    let sign = b[9] & 0x80 != 0;
    if v == 0 {
        return F80::zero(sign);
    }
    let lz = v.leading_zeros();
    F80::new(
        (sign as u16) << 15 | (BIAS + 63 - lz as i32) as u16,
        v << lz,
    )
}

/// Packed BCD indefinite (SDM Vol. 1 Table 4-5... 4.7.2).
pub const BCD_INDEFINITE: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF];

/// Register value to packed BCD (FBSTP): rounded per RC; out of range or NaN
/// raises IE. `None`: nothing is stored.
pub fn to_bcd(env: &mut Env, x: F80) -> Option<[u8; 10]> {
    let invalid = |env: &mut Env| {
        if env.raise_pre(IE) {
            None
        } else {
            Some(BCD_INDEFINITE)
        }
    };
    let (sign, mut m) = match x.class() {
        Class::Unsupported | Class::SNaN | Class::QNaN | Class::Infinity => return invalid(env),
        Class::Zero => (x.sign(), 0u64),
        _ => {
            let f = Fin::of(x);
            let (m, inexact, up) = round_to_int(f, env.rc());
            match m {
                Some(m) if m < 1_000_000_000_000_000_000 => {
                    if inexact {
                        env.exc |= PE;
                    }
                    env.c1 = up;
                    (f.sign, m)
                }
                _ => return invalid(env),
            }
        }
    };
    let mut out = [0u8; 10];
    for byte in out.iter_mut().take(9) {
        let lo = (m % 10) as u8;
        m /= 10;
        let hi = (m % 10) as u8;
        m /= 10;
        *byte = hi << 4 | lo;
    }
    out[9] = if sign { 0x80 } else { 0 };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> F80 {
        let mut env = Env::new(0x37F);
        from_f64(&mut env, x.to_bits(), true)
    }
    fn back(x: F80) -> f64 {
        let mut env = Env::new(0x37F);
        f64::from_bits(to_f64(&mut env, x).unwrap_or(0))
    }

    #[test]
    fn basic_arithmetic_matches_f64_for_exact_cases() {
        let mut env = Env::new(0x37F);
        assert_eq!(back(add(&mut env, f(1.5), f(2.25), false, FMT_EXT)), 3.75);
        assert_eq!(back(add(&mut env, f(1.5), f(2.25), true, FMT_EXT)), -0.75);
        assert_eq!(back(mul(&mut env, f(-3.0), f(0.5), FMT_EXT)), -1.5);
        assert_eq!(back(div(&mut env, f(1.0), f(4.0), FMT_EXT)), 0.25);
        assert_eq!(back(sqrt(&mut env, f(2.25), FMT_EXT)), 1.5);
        assert_eq!(env.exc, 0);
        let third = div(&mut env, f(1.0), f(3.0), FMT_EXT);
        assert_eq!(third, F80::new(0x3FFD, 0xAAAA_AAAA_AAAA_AAAB));
        assert_eq!(env.exc, PE);
        assert!(env.c1);
    }

    #[test]
    fn invalid_operations_give_indefinite() {
        let mut env = Env::new(0x37F);
        let inf = F80::inf(false);
        assert_eq!(add(&mut env, inf, inf, true, FMT_EXT), INDEFINITE);
        assert_eq!(env.exc, IE);
        let mut env = Env::new(0x37F);
        assert_eq!(div(&mut env, f(1.0), f(0.0), FMT_EXT), F80::inf(false));
        assert_eq!(env.exc, ZE);
        let mut env = Env::new(0x37F);
        assert_eq!(
            mul(
                &mut env,
                F80::new(0x4000, 0x4000_0000_0000_0000),
                f(1.0),
                FMT_EXT
            ),
            INDEFINITE
        );
        assert_eq!(env.exc, IE);
    }

    #[test]
    fn bcd_round_trip() {
        let mut env = Env::new(0x37F);
        let b = [0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0, 0x12, 0x80];
        let x = from_bcd(&b);
        assert_eq!(back(x), -120000000123456789.0);
        assert_eq!(to_bcd(&mut env, x), Some(b));
    }
}
