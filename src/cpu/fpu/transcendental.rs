//! Transcendental instructions: FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1,
//! FYL2X, FYL2XP1 (SDM Vol. 2A instruction pages, Vol. 1 8.3.10).
//!
//! The values are computed in a 128-bit-significand software float ([`Big`])
//! with series expansions, then rounded once to the register format under
//! RC. The trigonometric instructions reduce their argument modulo the
//! 66-bit approximation of pi the hardware uses (Vol. 1 8.3.10: "an
//! internal value of pi with 66 significant bits"), exactly, in integer
//! arithmetic, so results for large arguments follow the host rather than
//! the true functions. The hardware itself promises about one ulp; the
//! differential tests accept one ulp of difference.

use super::softfloat::{self as sf, exc, Class, Env, Fin, INDEFINITE};
use super::{fsw, F80};
use crate::cpu::decode::Op;
use crate::cpu::{Bus, Cpu, Res};

/// A finite value `m * 2^(e - 127)` (bit 127 of `m` set), or zero (`m == 0`).
#[derive(Clone, Copy, Debug)]
struct Big {
    neg: bool,
    e: i32,
    m: u128,
}

const M64: u128 = u64::MAX as u128;

impl Big {
    const ZERO: Big = Big {
        neg: false,
        e: 0,
        m: 0,
    };
    fn norm(neg: bool, e: i32, m: u128) -> Big {
        if m == 0 {
            return Big::ZERO;
        }
        let lz = m.leading_zeros();
        Big {
            neg,
            e: e - lz as i32,
            m: m << lz,
        }
    }
    fn of(x: F80) -> Big {
        if x.exp() == 0 && x.signif == 0 {
            return Big::ZERO;
        }
        let f = Fin::of(x);
        Big {
            neg: f.sign,
            e: f.e,
            m: (f.sig as u128) << 64,
        }
    }
    fn int(v: u64) -> Big {
        Big::norm(false, 127, v as u128)
    }
    fn neg(self) -> Big {
        Big {
            neg: !self.neg,
            ..self
        }
    }
    fn is_zero(&self) -> bool {
        self.m == 0
    }
    fn add(self, b: Big) -> Big {
        if self.m == 0 {
            return b;
        }
        if b.m == 0 {
            return self;
        }
        let (x, y) = if (self.e, self.m) >= (b.e, b.m) {
            (self, b)
        } else {
            (b, self)
        };
        let d = (x.e - y.e) as u32;
        let ym = if d >= 128 { 0 } else { y.m >> d };
        if x.neg == y.neg {
            // Halve both first so the sum cannot carry out.
            Big::norm(x.neg, x.e + 1, (x.m >> 1) + (ym >> 1))
        } else {
            Big::norm(x.neg, x.e, x.m - ym)
        }
    }
    fn sub(self, b: Big) -> Big {
        self.add(b.neg())
    }
    fn mul(self, b: Big) -> Big {
        if self.m == 0 || b.m == 0 {
            return Big::ZERO;
        }
        let (a1, a0) = (self.m >> 64, self.m & M64);
        let (b1, b0) = (b.m >> 64, b.m & M64);
        let p00 = a0 * b0;
        let p01 = a0 * b1;
        let p10 = a1 * b0;
        let p11 = a1 * b1;
        let mid = (p00 >> 64) + (p01 & M64) + (p10 & M64);
        let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
        let neg = self.neg != b.neg;
        if hi >> 127 != 0 {
            Big {
                neg,
                e: self.e + b.e + 1,
                m: hi,
            }
        } else {
            Big {
                neg,
                e: self.e + b.e,
                m: hi << 1 | ((mid >> 63) & 1),
            }
        }
    }
    fn div(self, b: Big) -> Big {
        if self.m == 0 || b.m == 0 {
            return Big::ZERO;
        }
        // Restoring long division, 128 quotient bits; both significands
        // are normalized, so the first bit is always 1 (possibly after one
        // shift, which lowers the exponent).
        let mut r = self.m;
        let mut e = self.e - b.e;
        if r < b.m {
            e -= 1;
            r = (r << 1).wrapping_sub(b.m);
        } else {
            r -= b.m;
        }
        let mut q: u128 = 1;
        for _ in 0..127 {
            let carry = r >> 127 != 0;
            r <<= 1;
            q <<= 1;
            if carry || r >= b.m {
                r = r.wrapping_sub(b.m);
                q |= 1;
            }
        }
        Big {
            neg: self.neg != b.neg,
            e,
            m: q,
        }
    }
    fn half(self) -> Big {
        Big {
            e: self.e - 1,
            ..self
        }
    }
    fn twice(self) -> Big {
        Big {
            e: self.e + 1,
            ..self
        }
    }
    fn sqrt(self) -> Big {
        if self.m == 0 {
            return self;
        }
        // f64 estimate, then Newton steps (each doubles the precision).
        let f = (self.m >> 75) as f64 * 2f64.powi((self.e - 52).clamp(-1000, 1000));
        let mut s = Big::of_f64(f.sqrt());
        for _ in 0..3 {
            s = s.add(self.div(s)).half();
        }
        s
    }
    fn of_f64(v: f64) -> Big {
        let b = v.to_bits();
        let e = ((b >> 52) & 0x7FF) as i32 - 1023;
        let m = ((b & ((1 << 52) - 1)) | (1 << 52)) as u128;
        Big::norm(false, e, m << 75)
    }
    /// Rounds a computed (never exactly representable) value: the sticky
    /// bit marks it inexact, as the hardware reports PE for it.
    fn round(self, env: &mut Env) -> F80 {
        if self.m == 0 {
            return F80::zero(self.neg);
        }
        match sf::round_core(env, self.neg, self.e, self.m | 1, sf::FMT_EXT) {
            Some(r) => r.to_f80(),
            None => INDEFINITE,
        }
    }
}

/// pi with 128 bits (e = 1).
const PI: Big = Big {
    neg: false,
    e: 1,
    m: 0xc90fdaa22168c234c4c6628b80dc1cd1,
};
/// ln 2 with 128 bits (e = -1).
const LN2: Big = Big {
    neg: false,
    e: -1,
    m: 0xb17217f7d1cf79abc9e3b39803f2f6af,
};
/// The hardware's 66-bit pi/2, in units of 2^-65 (pi_66 = P * 2^-64).
const PIO2_66: u128 = 0x3_243F_6A88_85A3_08D3;

/// sin and cos of |t| <= pi/4 by their Taylor series.
fn sin_cos_small(t: Big) -> (Big, Big) {
    let t2 = t.mul(t);
    let mut s = t;
    let mut c = Big::int(1);
    let mut term_s = t;
    let mut term_c = Big::int(1);
    for n in 1..30u64 {
        term_s = term_s.mul(t2).div(Big::int((2 * n) * (2 * n + 1))).neg();
        term_c = term_c.mul(t2).div(Big::int((2 * n - 1) * (2 * n))).neg();
        s = s.add(term_s);
        c = c.add(term_c);
        if term_s.is_zero() || term_s.e < s.e - 135 {
            break;
        }
    }
    (s, c)
}

/// (sin x, cos x) for a finite |x| < 2^63 after the exact reduction modulo
/// the 66-bit pi/2.
fn sin_cos(x: F80) -> (Big, Big) {
    if x.exp() == 0 && x.signif == 0 {
        return (Big::of(x), Big::int(1));
    }
    let f = Fin::of(x);
    let (k, t) = if f.e + 2 < 0 {
        (0u128, Big::of(x).neg_if(f.sign))
    } else {
        // x/(pi66/2) = sig * 2^(e+2) / P.
        let n = (f.sig as u128) << (f.e + 2) as u32;
        let (k, r) = (n / PIO2_66, n % PIO2_66);
        if 2 * r > PIO2_66 {
            // Reduce to pi/2 - r (same 66-bit pi/2): swap roles, k + 1.
            (k + 1, Big::norm(true, 127 - 65, PIO2_66 - r))
        } else {
            (k, Big::norm(false, 127 - 65, r))
        }
    };
    let (s, c) = sin_cos_small(t);
    let (s, c) = match k & 3 {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    };
    if f.sign {
        (s.neg(), c)
    } else {
        (s, c)
    }
}

impl Big {
    fn neg_if(self, n: bool) -> Big {
        if n {
            self.neg()
        } else {
            self
        }
    }
}

/// 2^x - 1 for |x| <= 1 (exp-1 series of x ln 2, no cancellation).
fn exp2m1(x: Big) -> Big {
    let t = x.mul(LN2);
    let mut sum = t;
    let mut term = t;
    for n in 2..60u64 {
        term = term.mul(t).div(Big::int(n));
        sum = sum.add(term);
        if term.is_zero() || term.e < sum.e - 135 {
            break;
        }
    }
    sum
}

/// 2 atanh(z) = ln((1+z)/(1-z)) for small |z|.
fn atanh2(z: Big) -> Big {
    let z2 = z.mul(z);
    let mut p = z;
    let mut sum = z;
    for n in 1..200u64 {
        p = p.mul(z2);
        let term = p.div(Big::int(2 * n + 1));
        sum = sum.add(term);
        if term.is_zero() || term.e < sum.e - 135 {
            break;
        }
    }
    sum.twice()
}

/// log2 of a positive finite x.
fn log2(x: F80) -> Big {
    let f = Fin::of(x);
    let mut e = f.e;
    let mut m = Big::norm(false, 0, (f.sig as u128) << 64);
    // m in [sqrt(1/2), sqrt(2)).
    if f.sig > 0xB504_F333_F9DE_6484 {
        m = m.half();
        e += 1;
    }
    let one = Big::int(1);
    let z = m.sub(one).div(m.add(one));
    let l = atanh2(z).div(LN2);
    Big::int(e.unsigned_abs() as u64).neg_if(e < 0).add(l)
}

/// atan(z) for 0 <= z <= 1: two argument halvings, then the series.
fn atan01(z: Big) -> Big {
    let one = Big::int(1);
    let mut z = z;
    for _ in 0..2 {
        z = z.div(one.add(one.add(z.mul(z)).sqrt()));
    }
    let z2 = z.mul(z);
    let mut p = z;
    let mut sum = z;
    for n in 1..200u64 {
        p = p.mul(z2).neg();
        let term = p.div(Big::int(2 * n + 1));
        sum = sum.add(term);
        if term.is_zero() || term.e < sum.e - 135 {
            break;
        }
    }
    sum.twice().twice()
}

// ---- instruction handlers ----

fn begin(cpu: &mut Cpu) -> Res {
    cpu.check_x87()?;
    cpu.fpu_pending()
}

fn commit(cpu: &mut Cpu, op: &Op, env: &Env) {
    let start = cpu.rip.wrapping_sub(op.len as u64) & cpu.ip_mask;
    let f = &mut cpu.fpu;
    f.fsw |= env.exc & 0x3F;
    if env.exc & !f.fcw & 0x3F != 0 {
        f.fsw |= fsw::ES | fsw::B;
        f.fop = op.imm2 as u16;
    }
    f.fip = start;
    f.fcs = 0;
}

fn set_c(cpu: &mut Cpu, mask: u16, v: u16) {
    cpu.fpu.fsw = (cpu.fpu.fsw & !mask) | (v & mask);
}

fn c1(env: &Env) -> u16 {
    if env.c1 {
        fsw::C1
    } else {
        0
    }
}

fn underflow(cpu: &mut Cpu, env: &mut Env) -> bool {
    env.exc |= exc::IE;
    cpu.fpu.fsw |= fsw::SF;
    set_c(cpu, fsw::C1, 0);
    env.masked(exc::IE)
}

fn overflow(cpu: &mut Cpu, env: &mut Env) -> bool {
    env.exc |= exc::IE;
    cpu.fpu.fsw |= fsw::SF;
    set_c(cpu, fsw::C1, fsw::C1);
    env.masked(exc::IE)
}

/// Screens a one-operand argument: `Some(result)` for NaN/invalid operands
/// (IE raised as needed); DE for denormals.
fn screen1(env: &mut Env, x: F80) -> Option<F80> {
    match x.class() {
        Class::Unsupported | Class::Infinity => {
            env.raise_pre(exc::IE);
            Some(INDEFINITE)
        }
        Class::SNaN => {
            env.raise_pre(exc::IE);
            Some(sf::propagate_nan(x, x))
        }
        Class::QNaN => Some(x),
        _ => None,
    }
}

/// DE for denormal operands, once the invalid cases are ruled out; true if
/// it is unmasked (the instruction then delivers nothing).
fn denormal(env: &mut Env, a: F80, b: F80) -> bool {
    if a.is_denormal() || b.is_denormal() {
        return env.raise_pre(exc::DE);
    }
    false
}

/// Which trigonometric instruction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trig {
    Sin,
    Cos,
    SinCos,
    Tan,
}

fn trig(cpu: &mut Cpu, op: &Op, which: Trig) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    let pushes = matches!(which, Trig::SinCos | Trig::Tan);
    if cpu.fpu.st_empty(0) {
        set_c(cpu, fsw::C2, 0);
        if underflow(cpu, &mut env) {
            cpu.fpu.set_st(0, INDEFINITE);
            if pushes {
                cpu.fpu.push(INDEFINITE);
            }
        }
        commit(cpu, op, &env);
        return Ok(());
    }
    if pushes && !cpu.fpu.st_empty(7) {
        set_c(cpu, fsw::C2, 0);
        if overflow(cpu, &mut env) {
            cpu.fpu.set_st(0, INDEFINITE);
            cpu.fpu.push(INDEFINITE);
        }
        commit(cpu, op, &env);
        return Ok(());
    }
    let x = cpu.fpu.st(0);
    if let Some(r) = screen1(&mut env, x) {
        set_c(cpu, fsw::C2, 0);
        if !env.suppressed() {
            cpu.fpu.set_st(0, r);
            if pushes {
                cpu.fpu.push(r);
            }
        }
        set_c(cpu, fsw::C1, 0);
        commit(cpu, op, &env);
        return Ok(());
    }
    if x.exp() >= 0x3FFF + 63 {
        // |x| >= 2^63: out of range, ST(0) unchanged, C2 set.
        set_c(cpu, fsw::C2, fsw::C2);
        commit(cpu, op, &env);
        return Ok(());
    }
    set_c(cpu, fsw::C2, 0);
    if denormal(&mut env, x, x) {
        commit(cpu, op, &env);
        return Ok(());
    }
    let zero = x.class() == Class::Zero;
    let (s, c) = sin_cos(x);
    match which {
        Trig::Sin => {
            let r = if zero { x } else { s.round(&mut env) };
            cpu.fpu.set_st(0, r);
        }
        Trig::Cos => {
            let r = if zero { F80::ONE } else { c.round(&mut env) };
            cpu.fpu.set_st(0, r);
        }
        Trig::SinCos => {
            let rs = if zero { x } else { s.round(&mut env) };
            let up = env.c1;
            let rc = if zero { F80::ONE } else { c.round(&mut env) };
            env.c1 |= up;
            cpu.fpu.set_st(0, rs);
            cpu.fpu.push(rc);
        }
        Trig::Tan => {
            let r = if zero { x } else { s.div(c).round(&mut env) };
            cpu.fpu.set_st(0, r);
            cpu.fpu.push(F80::ONE);
        }
    }
    set_c(cpu, fsw::C1, c1(&env));
    commit(cpu, op, &env);
    Ok(())
}

pub fn fsin(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    trig(cpu, op, Trig::Sin)
}
pub fn fcos(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    trig(cpu, op, Trig::Cos)
}
pub fn fsincos(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    trig(cpu, op, Trig::SinCos)
}
pub fn fptan(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    trig(cpu, op, Trig::Tan)
}

/// F2XM1 (SDM Vol. 2A F2XM1): 2^x - 1, documented for -1 <= x <= +1.
pub fn f2xm1(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) {
        if underflow(cpu, &mut env) {
            cpu.fpu.set_st(0, INDEFINITE);
        }
        commit(cpu, op, &env);
        return Ok(());
    }
    let x = cpu.fpu.st(0);
    let r = match x.class() {
        Class::Infinity => {
            if x.sign() {
                F80::ONE.negate()
            } else {
                x
            }
        }
        Class::Zero => x,
        _ => match screen1(&mut env, x) {
            Some(r) => r,
            None if denormal(&mut env, x, x) => INDEFINITE,
            None => exp2m1(Big::of(x)).round(&mut env),
        },
    };
    if !env.suppressed() {
        cpu.fpu.set_st(0, r);
    }
    set_c(cpu, fsw::C1, c1(&env));
    commit(cpu, op, &env);
    Ok(())
}

/// Common shape of FYL2X, FYL2XP1, FPATAN: ST(1) <- f(ST(1), ST(0)), pop.
fn binary_pop(cpu: &mut Cpu, op: &Op, f: fn(&mut Env, F80, F80) -> F80) -> Res {
    begin(cpu)?;
    let mut env = Env::new(cpu.fpu.fcw);
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(1) {
        if underflow(cpu, &mut env) {
            cpu.fpu.set_st(1, INDEFINITE);
            cpu.fpu.pop();
        }
        commit(cpu, op, &env);
        return Ok(());
    }
    let (x, y) = (cpu.fpu.st(0), cpu.fpu.st(1));
    let r = f(&mut env, y, x);
    if !env.suppressed() {
        cpu.fpu.set_st(1, r);
        cpu.fpu.pop();
    }
    set_c(cpu, fsw::C1, c1(&env));
    commit(cpu, op, &env);
    Ok(())
}

/// NaN/unsupported screening of two operands; DE for denormals.
fn screen2(env: &mut Env, y: F80, x: F80) -> Option<F80> {
    let (cy, cx) = (y.class(), x.class());
    if cy == Class::Unsupported || cx == Class::Unsupported {
        env.raise_pre(exc::IE);
        return Some(INDEFINITE);
    }
    if y.is_nan() || x.is_nan() {
        if cy == Class::SNaN || cx == Class::SNaN {
            env.raise_pre(exc::IE);
        }
        return Some(sf::propagate_nan(x, y));
    }
    None
}

/// y * log2(x) (SDM Vol. 2A FYL2X, Table 3-52). Order as the host: NaNs,
/// invalid operands, DE, then the special results.
fn yl2x(env: &mut Env, y: F80, x: F80) -> F80 {
    if let Some(r) = screen2(env, y, x) {
        return r;
    }
    let (cy, cx) = (y.class(), x.class());
    let is_one = x == F80::ONE;
    let invalid = (x.sign() && cx != Class::Zero)
        || (cx == Class::Zero && cy == Class::Zero)
        || (cx == Class::Infinity && cy == Class::Zero)
        || (is_one && cy == Class::Infinity);
    if invalid {
        env.raise_pre(exc::IE);
        return INDEFINITE;
    }
    if cx == Class::Zero {
        // log2(0) = -inf; ZE takes the place of DE, as for division.
        if cy != Class::Infinity {
            env.raise_pre(exc::ZE);
        }
        return F80::inf(!y.sign());
    }
    if denormal(env, y, x) {
        return INDEFINITE;
    }
    let below_one = x.exp() < 0x3FFF;
    if cx == Class::Infinity {
        return F80::inf(y.sign());
    }
    if cy == Class::Infinity {
        return F80::inf(y.sign() ^ below_one);
    }
    if is_one {
        return F80::zero(y.sign());
    }
    if cy == Class::Zero {
        return F80::zero(y.sign() ^ below_one);
    }
    Big::of(y).mul(log2(x)).round(env)
}

/// y * log2(x + 1) (SDM Vol. 2A FYL2XP1), documented for
/// |x| < 1 - sqrt(2)/2.
fn yl2xp1(env: &mut Env, y: F80, x: F80) -> F80 {
    if let Some(r) = screen2(env, y, x) {
        return r;
    }
    let (cy, cx) = (y.class(), x.class());
    let invalid = (cx == Class::Infinity && (x.sign() || cy == Class::Zero))
        || (cx == Class::Zero && cy == Class::Infinity);
    if invalid {
        env.raise_pre(exc::IE);
        return INDEFINITE;
    }
    if denormal(env, y, x) {
        return INDEFINITE;
    }
    if cx == Class::Infinity {
        return F80::inf(y.sign());
    }
    if cx == Class::Zero || cy == Class::Zero {
        return F80::zero(y.sign() ^ x.sign());
    }
    if cy == Class::Infinity {
        return F80::inf(y.sign() ^ x.sign());
    }
    let bx = Big::of(x);
    let z = bx.div(Big::int(2).add(bx));
    let l = atanh2(z).div(LN2);
    Big::of(y).mul(l).round(env)
}

/// atan(y / x) with the quadrant of (x, y) (SDM Vol. 2A FPATAN, Table 3-29).
fn patan(env: &mut Env, y: F80, x: F80) -> F80 {
    if let Some(r) = screen2(env, y, x) {
        return r;
    }
    let (cy, cx) = (y.class(), x.class());
    if denormal(env, y, x) {
        return INDEFINITE;
    }
    let pi = PI;
    let half_pi = PI.half();
    let quarter_pi = PI.half().half();
    let r = if cy == Class::Zero {
        if x.sign() {
            pi
        } else {
            return F80::zero(y.sign());
        }
    } else if cy == Class::Infinity {
        if cx == Class::Infinity {
            if x.sign() {
                pi.sub(quarter_pi)
            } else {
                quarter_pi
            }
        } else {
            half_pi
        }
    } else if cx == Class::Zero {
        half_pi
    } else if cx == Class::Infinity {
        if x.sign() {
            pi
        } else {
            return F80::zero(y.sign());
        }
    } else {
        let (by, bx) = (Big::of(y.abs()), Big::of(x.abs()));
        let a = if (by.e, by.m) <= (bx.e, bx.m) {
            atan01(by.div(bx))
        } else {
            half_pi.sub(atan01(bx.div(by)))
        };
        if x.sign() {
            pi.sub(a)
        } else {
            a
        }
    };
    r.neg_if(y.sign()).round(env)
}

pub fn fyl2x(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    binary_pop(cpu, op, yl2x)
}
pub fn fyl2xp1(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    binary_pop(cpu, op, yl2xp1)
}
pub fn fpatan(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    binary_pop(cpu, op, patan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> F80 {
        let mut e = Env::new(0x37F);
        sf::from_f64(&mut e, x.to_bits(), true)
    }
    fn g(x: Big) -> f64 {
        let mut e = Env::new(0x37F);
        let r = x.round(&mut e);
        f64::from_bits(sf::to_f64(&mut e, r).unwrap_or(0))
    }

    #[test]
    fn big_float_basics() {
        let (a, b) = (Big::of(f(3.0)), Big::of(f(0.75)));
        assert_eq!(g(a.add(b)), 3.75);
        assert_eq!(g(a.sub(b)), 2.25);
        assert_eq!(g(a.mul(b)), 2.25);
        assert_eq!(g(a.div(b)), 4.0);
        assert_eq!(g(Big::of(f(2.25)).sqrt()), 1.5);
        assert_eq!(g(PI), std::f64::consts::PI);
    }

    #[test]
    fn functions_agree_with_f64() {
        for x in [0.1, 0.5, 1.0, 2.0, 3.0, 10.0, -7.5, 100.0] {
            let (s, c) = sin_cos(f(x));
            assert!((g(s) - x.sin()).abs() < 1e-15, "sin {x}");
            assert!((g(c) - x.cos()).abs() < 1e-15, "cos {x}");
        }
        for x in [-1.0, -0.3, 0.001, 0.5, 1.0] {
            assert!((g(exp2m1(Big::of(f(x)))) - (2f64.powf(x) - 1.0)).abs() < 1e-15);
        }
        for x in [0.1, 0.9, 1.5, 10.0, 1e10] {
            assert!((g(log2(f(x))) - x.log2()).abs() < 1e-14, "log2 {x}");
        }
        for z in [0.0001, 0.3, 0.9, 1.0] {
            assert!(
                (g(atan01(Big::of(f(z)))) - z.atan()).abs() < 1e-15,
                "atan {z}"
            );
        }
    }
}
