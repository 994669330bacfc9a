//! Differential tests against the host x87: the same instruction runs on
//! the host (in a small generated stub: FXRSTOR64 the input state, the
//! instruction, FXSAVE64 the output state) and on vx86 (a CPL3 long-mode
//! snippet with the code and data mapped at the host's addresses, so FIP
//! and FDP compare too, where the host stores them: AMD CPUs do only while
//! FSW.ES is set). Results are compared bit for bit: every register,
//! FCW/FSW/tags/FOP/FIP/FDP, the memory operand, AX and the arithmetic flags.
//! Transcendentals may differ by one unit in the last place (the host's own
//! accuracy claim, SDM Vol. 1 8.3.10), and then C1/PE are not compared.

use super::F80;
use crate::conformance::gen::Rng;
use crate::cpu::Cpu;
use iced_x86::{
    Code, Encoder, Instruction, MemoryOperand, Mnemonic as M, OpCodeOperandKind as K, Register,
};
use std::collections::BTreeMap;

/// Bytes of the host stub before the instruction.
const PRE: &[u8] = &[
    0x53, // push rbx
    0x48, 0x89, 0xD3, // mov rbx, rdx
    0x48, 0x8B, 0x03, // mov rax, [rbx]
    0x48, 0x8B, 0x4B, 0x18, // mov rcx, [rbx+24]
    0x51, 0x9D, // push rcx; popfq
    0x48, 0x0F, 0xAE, 0x0F, // fxrstor64 [rdi]
];
const POST: &[u8] = &[
    0x48, 0x0F, 0xAE, 0x07, // fxsave64 [rdi]
    0x9C, 0x59, // pushfq; pop rcx
    0x48, 0x89, 0x43, 0x08, // mov [rbx+8], rax
    0x48, 0x89, 0x4B, 0x10, // mov [rbx+16], rcx
    0xDB, 0xE3, // fninit
    0x5B, // pop rbx
    0xC3, // ret
];

#[repr(C, align(64))]
struct Area([u8; 512]);

struct Host {
    code: *mut u8,
    data: *mut u8,
}

impl Host {
    fn new() -> Host {
        // SAFETY: anonymous private mappings; checked for MAP_FAILED below and
        // only used through the raw pointers for their 4 KiB size.
        unsafe {
            let code = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            let data = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(code != libc::MAP_FAILED && data != libc::MAP_FAILED);
            Host {
                code: code as *mut u8,
                data: data as *mut u8,
            }
        }
    }

    fn code_addr(&self) -> u64 {
        self.code as u64
    }
    fn data_addr(&self) -> u64 {
        self.data as u64
    }

    /// Runs `ins` natively. `img`: FXSAVE64 image in and out; `mem`: the
    /// 64 bytes at the data address in and out; regs: rax in, rax out,
    /// rflags out, rflags in.
    fn run(&self, ins: &[u8], img: &mut [u8; 512], mem: &mut [u8; 64], regs: &mut [u64; 4]) {
        let mut area = Area(*img);
        // SAFETY: the code page holds PRE + ins + POST, a complete function
        // with the System V calling convention that only touches the FXSAVE
        // area (rdi), the data page (rsi) and `regs` (rdx); the x87 state is
        // reinitialized before it returns.
        unsafe {
            let mut p = self.code;
            for b in PRE.iter().chain(ins).chain(POST) {
                *p = *b;
                p = p.add(1);
            }
            std::ptr::copy_nonoverlapping(mem.as_ptr(), self.data, 64);
            let f = self.code;
            let areap = area.0.as_mut_ptr();
            let data = self.data;
            let r = regs.as_mut_ptr();
            std::arch::asm!(
                "call {f}",
                f = in(reg) f,
                in("rdi") areap,
                in("rsi") data,
                in("rdx") r,
                clobber_abi("C"),
            );
            std::ptr::copy_nonoverlapping(self.data, mem.as_mut_ptr(), 64);
        }
        *img = area.0;
    }
}

struct Emu {
    cpu: Cpu,
    code_lin: u64,
    data_lin: u64,
}

const CODE_PHYS: u64 = 0x20_0000;
const DATA_PHYS: u64 = 0x30_0000;

impl Emu {
    fn new(code_lin: u64, data_lin: u64) -> Emu {
        let mut cpu = Cpu::new_bare(8 << 20);
        cpu.setup_long(
            3,
            0x10_0000,
            &[
                (code_lin, CODE_PHYS, true, false),
                (data_lin, DATA_PHYS, true, true),
            ],
        );
        Emu {
            cpu,
            code_lin,
            data_lin,
        }
    }

    fn run(
        &mut self,
        ins: &[u8],
        img: &mut [u8; 512],
        mem: &mut [u8; 64],
        regs: &mut [u64; 4],
    ) -> Option<u8> {
        let cpu = &mut self.cpu;
        let ip = self.code_lin + PRE.len() as u64;
        let off = PRE.len();
        {
            let ram = cpu.mem.ram_mut();
            let c = CODE_PHYS as usize + off;
            ram[c..c + ins.len()].copy_from_slice(ins);
            let d = DATA_PHYS as usize;
            ram[d..d + 64].copy_from_slice(mem);
        }
        cpu.fpu.fsw = u16::from_le_bytes([img[2], img[3]]);
        cpu.fpu.fxrstor_image(true, img, true, 16);
        cpu.gpr[0] = regs[0];
        cpu.gpr[6] = self.data_lin;
        cpu.flags.set(regs[3]);
        cpu.rip = ip;
        let out = cpu.run_snippet(ip + ins.len() as u64, 10);
        cpu.fpu.fxsave_image(true, img);
        let d = DATA_PHYS as usize;
        mem.copy_from_slice(&cpu.mem.ram()[d..d + 64]);
        regs[1] = cpu.gpr[0];
        regs[2] = cpu.flags.get();
        out.fault.map(|f| f.vector)
    }
}

// ---- operand generation ----

use crate::conformance::gen::x87::special_f80;

fn special_f64(rng: &mut Rng) -> u64 {
    let s = rng.below(2) << 63;
    let f = rng.next_u64() & ((1 << 52) - 1);
    match rng.below(10) {
        0 => s,
        1 => s | (f >> rng.below(52)),
        2 => s | 0x7FF0_0000_0000_0000,
        3 => s | 0x7FF8_0000_0000_0000 | f,
        4 => s | 0x7FF0_0000_0000_0000 | (f >> 1).max(1),
        5 => s | ((1023 + rng.below(64)) << 52) | (f & !((1 << rng.below(52)) - 1)),
        _ => s | (rng.below(0x7FF) << 52) | f,
    }
}

fn special_f32(rng: &mut Rng) -> u32 {
    let s = (rng.below(2) as u32) << 31;
    let f = rng.next_u64() as u32 & 0x7F_FFFF;
    match rng.below(10) {
        0 => s,
        1 => s | (f >> rng.below(23)),
        2 => s | 0x7F80_0000,
        3 => s | 0x7FC0_0000 | f,
        4 => s | 0x7F80_0000 | (f >> 1).max(1),
        5 => s | ((127 + rng.below(32) as u32) << 23) | (f & !((1 << rng.below(23)) - 1)),
        _ => s | ((rng.below(0xFF) as u32) << 23) | f,
    }
}

fn random_mem(rng: &mut Rng, mem: &mut [u8; 64]) {
    for b in mem.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    match rng.below(6) {
        0 => mem[..4].copy_from_slice(&special_f32(rng).to_le_bytes()),
        1 => mem[..8].copy_from_slice(&special_f64(rng).to_le_bytes()),
        2 => {
            let v = special_f80(rng);
            mem[..8].copy_from_slice(&v.signif.to_le_bytes());
            mem[8..10].copy_from_slice(&v.sign_exp.to_le_bytes());
        }
        3 => {
            // Small integers and BCD-looking bytes.
            let v = (rng.next_u64() as i64) >> rng.below(64);
            mem[..8].copy_from_slice(&v.to_le_bytes());
            for b in mem[..9].iter_mut() {
                if rng.below(3) != 0 {
                    *b = (rng.below(10) as u8) << 4 | rng.below(10) as u8;
                }
            }
            mem[9] &= 0x80 | (rng.below(2) as u8 * 0x7F);
        }
        _ => {}
    }
}

/// A random FXSAVE64 image with no pending unmasked exception.
fn random_state(rng: &mut Rng, img: &mut [u8; 512]) {
    img.fill(0);
    let masks = if rng.below(2) == 0 {
        0x3F
    } else {
        rng.below(64) as u16
    };
    let pc = [0u16, 2, 3, 3, 1][rng.below(5) as usize];
    let fcw = 0x40 | masks | pc << 8 | (rng.below(4) as u16) << 10 | (rng.below(2) as u16) << 12;
    let flags = rng.below(64) as u16 & masks & if rng.below(2) == 0 { 0 } else { 0x3F };
    let fsw = flags
        | (rng.below(8) as u16) << 8
        | (rng.below(2) as u16) << 14
        | (rng.below(8) as u16) << 11
        | (rng.below(2) as u16) << 6;
    img[0..2].copy_from_slice(&fcw.to_le_bytes());
    img[2..4].copy_from_slice(&fsw.to_le_bytes());
    img[4] = match rng.below(4) {
        0 => rng.next_u64() as u8,
        1 => 0xFF,
        _ => !(1u8 << rng.below(8)),
    };
    img[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
    for i in 0..8 {
        let v = special_f80(rng);
        let o = 32 + 16 * i;
        img[o..o + 8].copy_from_slice(&v.signif.to_le_bytes());
        img[o + 8..o + 10].copy_from_slice(&v.sign_exp.to_le_bytes());
    }
}

/// Mnemonics compared bit for bit.
const EXACT: &[M] = &[
    M::Fadd,
    M::Faddp,
    M::Fiadd,
    M::Fsub,
    M::Fsubp,
    M::Fisub,
    M::Fsubr,
    M::Fsubrp,
    M::Fisubr,
    M::Fmul,
    M::Fmulp,
    M::Fimul,
    M::Fdiv,
    M::Fdivp,
    M::Fidiv,
    M::Fdivr,
    M::Fdivrp,
    M::Fidivr,
    M::Fld,
    M::Fild,
    M::Fbld,
    M::Fld1,
    M::Fldl2t,
    M::Fldl2e,
    M::Fldpi,
    M::Fldlg2,
    M::Fldln2,
    M::Fldz,
    M::Fst,
    M::Fstp,
    M::Fstpnce,
    M::Fist,
    M::Fistp,
    M::Fisttp,
    M::Fbstp,
    M::Fcom,
    M::Fcomp,
    M::Fcompp,
    M::Ficom,
    M::Ficomp,
    M::Fucom,
    M::Fucomp,
    M::Fucompp,
    M::Fcomi,
    M::Fcomip,
    M::Fucomi,
    M::Fucomip,
    M::Ftst,
    M::Fxam,
    M::Fxch,
    M::Ffree,
    M::Ffreep,
    M::Fincstp,
    M::Fdecstp,
    M::Fabs,
    M::Fchs,
    M::Fnop,
    M::Fcmovb,
    M::Fcmove,
    M::Fcmovbe,
    M::Fcmovu,
    M::Fcmovnb,
    M::Fcmovne,
    M::Fcmovnbe,
    M::Fcmovnu,
    M::Fsqrt,
    M::Frndint,
    M::Fscale,
    M::Fxtract,
    M::Fprem,
    M::Fprem1,
    M::Fnclex,
    M::Fnstsw,
    M::Fnstcw,
    M::Fldcw,
];

/// Mnemonics compared within one ulp.
const APPROX: &[M] = &[
    M::Fsin,
    M::Fcos,
    M::Fsincos,
    M::Fptan,
    M::Fpatan,
    M::F2xm1,
    M::Fyl2x,
    M::Fyl2xp1,
];

/// Every 64-bit legacy form of `mnemonics` with ST/memory/AX operands.
fn forms(mnemonics: &[M]) -> Vec<Code> {
    Code::values()
        .filter(|c| {
            let info = c.op_code();
            mnemonics.contains(&c.mnemonic())
                && info.mode64()
                && info.encoding() == iced_x86::EncodingKind::Legacy
                && !info.fwait()
                && (0..info.op_count())
                    .all(|i| matches!(info.op_kind(i), K::st0 | K::sti_opcode | K::mem | K::ax))
        })
        .collect()
}

fn build(code: Code, rng: &mut Rng) -> Option<Vec<u8>> {
    let info = code.op_code();
    #[derive(Clone, Copy)]
    enum O {
        R(Register),
        Mem,
    }
    let mut ops = [O::R(Register::ST0); 2];
    for i in 0..info.op_count().min(2) {
        ops[i as usize] = match info.op_kind(i) {
            K::st0 => O::R(Register::ST0),
            K::sti_opcode => {
                O::R(Register::try_from(Register::ST0 as usize + rng.below(8) as usize).ok()?)
            }
            K::ax => O::R(Register::AX),
            _ => O::Mem,
        };
    }
    let mem = MemoryOperand::with_base(Register::RSI);
    let ins = match (info.op_count(), ops[0], ops[1]) {
        (0, _, _) => Instruction::with(code),
        (1, O::R(r), _) => Instruction::with1(code, r).ok()?,
        (1, O::Mem, _) => Instruction::with1(code, mem).ok()?,
        (2, O::R(a), O::R(b)) => Instruction::with2(code, a, b).ok()?,
        _ => return None,
    };
    let mut enc = Encoder::new(64);
    enc.encode(&ins, 0).ok()?;
    Some(enc.take_buffer())
}

/// Distance in ulps between two finite register values of the same sign
/// and near exponents; u64::MAX if not comparable.
fn ulps(a: F80, b: F80) -> u64 {
    if a == b {
        return 0;
    }
    if a.sign() != b.sign() || a.exp() == 0x7FFF || b.exp() == 0x7FFF {
        return u64::MAX;
    }
    let key = |x: F80| (x.exp() as u128) << 63 | (x.signif as u128 & ((1 << 63) - 1));
    let (ka, kb) = (key(a), key(b));
    (ka.max(kb) - ka.min(kb)).min(u64::MAX as u128) as u64
}

fn st_of(img: &[u8; 512], i: usize) -> F80 {
    let o = 32 + 16 * i;
    let mut s = [0u8; 8];
    s.copy_from_slice(&img[o..o + 8]);
    F80::new(
        u16::from_le_bytes([img[o + 8], img[o + 9]]),
        u64::from_le_bytes(s),
    )
}

struct Outcome {
    img: [u8; 512],
    mem: [u8; 64],
    regs: [u64; 4],
}

fn diff(m: M, host: &Outcome, emu: &Outcome, approx: bool) -> Vec<String> {
    let mut d = Vec::new();
    let h16 = |b: &[u8; 512], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let mut fsw_mask = 0xFFFFu16;
    if approx {
        fsw_mask &= !(super::fsw::C1 | super::fsw::PE);
        // AMD's transcendentals detect tininess before rounding, Intel's (and
        // vx86's, SDM Vol. 1 4.9.1.5) after: for a result that rounds to the
        // smallest normal (FSIN of a tiny argument) only AMD raises #U, and
        // with #U unmasked only AMD delivers the exponent-wrapped result. A
        // vendor difference, not a vx86 error: such cases are not compared.
        if crate::conformance::native::host_is_amd()
            && (h16(&host.img, 2) ^ h16(&emu.img, 2)) & super::fsw::UE != 0
        {
            return d;
        }
    }
    if h16(&host.img, 0) != h16(&emu.img, 0) {
        d.push(format!(
            "fcw host {:04x} emu {:04x}",
            h16(&host.img, 0),
            h16(&emu.img, 0)
        ));
    }
    if h16(&host.img, 2) & fsw_mask != h16(&emu.img, 2) & fsw_mask {
        d.push(format!(
            "fsw host {:04x} emu {:04x}",
            h16(&host.img, 2),
            h16(&emu.img, 2)
        ));
    }
    if host.img[4] != emu.img[4] {
        d.push(format!(
            "ftw host {:02x} emu {:02x}",
            host.img[4], emu.img[4]
        ));
    }
    // AMD hosts store FOP/FIP/FDP only while FSW.ES is set.
    let pointers_stored = h16(&host.img, 2) & super::fsw::ES != 0
        || !crate::conformance::native::host_fxsave_pointers_only_on_error();
    if pointers_stored && host.img[6..24] != emu.img[6..24] {
        d.push(format!(
            "fop/fip/fdp host {:02x?} emu {:02x?}",
            &host.img[6..24],
            &emu.img[6..24]
        ));
    }
    for i in 0..8 {
        let (a, b) = (st_of(&host.img, i), st_of(&emu.img, i));
        let ok = if approx { ulps(a, b) <= 1 } else { a == b };
        if !ok {
            d.push(format!(
                "st{i} host {:04x}:{:016x} emu {:04x}:{:016x}",
                a.sign_exp, a.signif, b.sign_exp, b.signif
            ));
        }
    }
    if host.mem != emu.mem {
        d.push(format!(
            "mem host {:02x?} emu {:02x?}",
            &host.mem[..16],
            &emu.mem[..16]
        ));
    }
    if host.regs[1] != emu.regs[1] {
        d.push(format!("rax host {:x} emu {:x}", host.regs[1], emu.regs[1]));
    }
    let fl = 0x8D5;
    if matches!(m, M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip)
        && host.regs[2] & fl != emu.regs[2] & fl
    {
        d.push(format!(
            "rflags host {:x} emu {:x}",
            host.regs[2], emu.regs[2]
        ));
    }
    d
}

/// Runs `n` random tests over `forms`; returns per-mnemonic (tests, failures)
/// and prints up to `show` mismatches.
fn run_random(
    codes: &[Code],
    n: u64,
    seed: u64,
    approx: bool,
    show: usize,
    fix: fn(Code, &mut [u8; 512], &mut Rng),
) -> BTreeMap<String, (u64, u64)> {
    let host = Host::new();
    let mut emu = Emu::new(host.code_addr(), host.data_addr());
    let mut rng = Rng::new(seed);
    let mut stats: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut shown = 0;
    let mut shown_per: BTreeMap<Code, usize> = BTreeMap::new();
    for _ in 0..n {
        let code = codes[rng.below(codes.len() as u64) as usize];
        let Some(bytes) = build(code, &mut rng) else {
            continue;
        };
        let mut img = [0u8; 512];
        random_state(&mut rng, &mut img);
        fix(code, &mut img, &mut rng);
        let mut mem = [0u8; 64];
        random_mem(&mut rng, &mut mem);
        let regs = [rng.next_u64(), 0, 0, 0x202 | (rng.next_u64() & 0x8D5)];
        let mut h = Outcome { img, mem, regs };
        host.run(&bytes, &mut h.img, &mut h.mem, &mut h.regs);
        let mut e = Outcome { img, mem, regs };
        let fault = emu.run(&bytes, &mut e.img, &mut e.mem, &mut e.regs);
        let m = code.mnemonic();
        let mut d = diff(m, &h, &e, approx);
        if let Some(v) = fault {
            d.push(format!("vx86 raised vector {v}"));
        }
        if approx && d.is_empty() && h.img[32..160] == e.img[32..160] {
            *stats.entry("(bit-exact results)".to_string()).or_default() = {
                let (a, _) = stats
                    .get("(bit-exact results)")
                    .copied()
                    .unwrap_or_default();
                (a + 1, 0)
            };
        }
        let key = format!("{:?}", code);
        let ent = stats.entry(key).or_default();
        ent.0 += 1;
        if !d.is_empty() {
            ent.1 += 1;
            let sp = shown_per.entry(code).or_default();
            if shown < show && *sp < 2 {
                shown += 1;
                *sp += 1;
                let dec = crate::cpu::decode::decode_one(&bytes, 64, 0);
                eprintln!("MISMATCH {code:?} ({dec}) bytes {bytes:02x?}");
                eprintln!(
                    "  in: fcw {:04x} fsw {:04x} ftw {:02x} rflags {:x}",
                    u16::from_le_bytes([img[0], img[1]]),
                    u16::from_le_bytes([img[2], img[3]]),
                    img[4],
                    regs[3]
                );
                for i in 0..8 {
                    let v = st_of(&img, i);
                    eprintln!("  st{i} {:04x}:{:016x}", v.sign_exp, v.signif);
                }
                eprintln!("  mem {:02x?}", &mem[..16]);
                for x in &d {
                    eprintln!("  - {x}");
                }
            }
        }
    }
    stats
}

fn report(name: &str, stats: &BTreeMap<String, (u64, u64)>) -> u64 {
    let mut fails = 0;
    let mut total = 0;
    eprintln!("{name}: {:<24} {:>8} {:>8}", "form", "tests", "failed");
    for (k, (n, f)) in stats {
        eprintln!("{name}: {k:<24} {n:>8} {f:>8}");
        if k.starts_with('(') {
            continue;
        }
        fails += f;
        total += n;
    }
    eprintln!("{name}: {} passed, {} failed", total - fails, fails);
    fails
}

#[test]
fn x87_matches_host_bit_for_bit() {
    let mut codes = forms(EXACT);
    assert!(codes.len() > 100, "{} forms", codes.len());
    if let Ok(only) = std::env::var("VX86_X87_ONLY") {
        codes.retain(|c| only.split(',').any(|o| format!("{c:?}") == o));
    }
    let n: u64 = std::env::var("VX86_X87_TESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let stats = run_random(&codes, n, 1, false, 30, |_, _, _| {});
    assert_eq!(report("x87", &stats), 0);
}

/// Keeps ST(0) inside the documented domain of F2XM1 (|x| <= 1) and
/// FYL2XP1 (|x| < 1 - sqrt(2)/2); outside it the result is undefined.
fn transcendental_domain(code: Code, img: &mut [u8; 512], rng: &mut Rng) {
    let limit = match code.mnemonic() {
        M::F2xm1 => 0x3FFF,
        M::Fyl2xp1 => 0x3FFD,
        _ => return,
    };
    let x = st_of(img, 0);
    if x.exp() >= limit && x.exp() != 0x7FFF {
        let e = limit - 1 - rng.below(70) as u16;
        let v = F80::new((x.sign_exp & 0x8000) | e, x.signif | 1 << 63);
        img[32..40].copy_from_slice(&v.signif.to_le_bytes());
        img[40..42].copy_from_slice(&v.sign_exp.to_le_bytes());
    }
}

#[test]
fn x87_transcendentals_within_one_ulp_of_host() {
    let mut codes = forms(APPROX);
    assert_eq!(codes.len(), 8);
    if let Ok(only) = std::env::var("VX86_X87_ONLY") {
        codes.retain(|c| only.split(',').any(|o| format!("{c:?}") == o));
    }
    let n: u64 = std::env::var("VX86_X87_TESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let stats = run_random(&codes, n, 2, true, 30, transcendental_domain);
    assert_eq!(report("x87-transcendental", &stats), 0);
}
