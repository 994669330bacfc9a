//! FP state images: FSTENV/FLDENV and FSAVE/FRSTOR in their 16- and 32-bit,
//! real- and protected-mode layouts (SDM Vol. 1 8.1.10, Figures 8-9 to
//! 8-12), and FXSAVE/FXRSTOR in the legacy and REX.W layouts (Vol. 1
//! 10.5.1, Table 10-2; Vol. 2A FXSAVE).
//!
//! The CPU's memory accesses are at most 8 bytes, so each image is built in
//! (or read into) a local buffer; stores probe the whole destination first
//! so that a #GP/#PF leaves neither memory nor FPU state half-changed.

use super::F80;
use super::{fsw, FpuState};
use crate::cpu::decode::{amask, Handler, Op};
use crate::cpu::state::cr4;
use crate::cpu::{Bus, Cpu, Fault, Res};
use iced_x86::{Instruction, Mnemonic as M};

/// MXCSR bits FXRSTOR accepts (FXSAVE's MXCSR_MASK field), shared with
/// LDMXCSR (SDM Vol. 1 11.6.6).
pub use crate::cpu::simd::MXCSR_MASK;

/// Layout of an FSTENV/FSAVE image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvLayout {
    /// 32-bit operand size (28-byte environment) or 16-bit (14 bytes).
    pub op32: bool,
    /// Protected-mode layout (selectors) or real/V86 layout (20/32-bit linear
    /// pointers split around FOP).
    pub pmode: bool,
}

impl FpuState {
    /// Builds the environment image (14 or 28 bytes used of `out`).
    pub fn store_env(&self, l: EnvLayout, out: &mut [u8; 28]) -> usize {
        let tw = self.full_tag_word();
        let (fip, fdp, fop) = (self.fip as u32, self.fdp as u32, (self.fop & 0x7FF) as u32);
        let words: [u32; 7] = if l.op32 {
            if l.pmode {
                [
                    0xFFFF_0000 | self.fcw as u32,
                    0xFFFF_0000 | self.fsw as u32,
                    0xFFFF_0000 | tw as u32,
                    fip,
                    self.fcs as u32 | fop << 16,
                    fdp,
                    0xFFFF_0000 | self.fds as u32,
                ]
            } else {
                [
                    0xFFFF_0000 | self.fcw as u32,
                    0xFFFF_0000 | self.fsw as u32,
                    0xFFFF_0000 | tw as u32,
                    0xFFFF_0000 | (fip & 0xFFFF),
                    (fip >> 16) << 12 | fop,
                    0xFFFF_0000 | (fdp & 0xFFFF),
                    (fdp >> 16) << 12,
                ]
            }
        } else {
            let w = |a: u32, b: u32| a | b << 16;
            if l.pmode {
                [
                    w(self.fcw as u32, self.fsw as u32),
                    w(tw as u32, fip & 0xFFFF),
                    w(self.fcs as u32, fdp & 0xFFFF),
                    self.fds as u32,
                    0,
                    0,
                    0,
                ]
            } else {
                [
                    w(self.fcw as u32, self.fsw as u32),
                    w(tw as u32, fip & 0xFFFF),
                    w(((fip >> 16) & 0xF) << 12 | fop, fdp & 0xFFFF),
                    ((fdp >> 16) & 0xF) << 12,
                    0,
                    0,
                    0,
                ]
            }
        };
        for (i, w) in words.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        if l.op32 {
            28
        } else {
            14
        }
    }

    /// Loads an environment image (FLDENV, first part of FRSTOR).
    pub fn load_env(&mut self, l: EnvLayout, b: &[u8; 28]) {
        let h = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u32;
        let d = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let (fcw, fsw_, tw, fip, fcs, fop, fdp, fds);
        if l.op32 {
            fcw = h(0);
            fsw_ = h(4);
            tw = h(8);
            if l.pmode {
                fip = d(12);
                fcs = h(16);
                fop = (d(16) >> 16) & 0x7FF;
                fdp = d(20);
                fds = h(24);
            } else {
                fip = h(12) | ((d(16) >> 12) & 0xFFFF) << 16;
                fop = d(16) & 0x7FF;
                fcs = 0;
                fdp = h(20) | ((d(24) >> 12) & 0xFFFF) << 16;
                fds = 0;
            }
        } else {
            fcw = h(0);
            fsw_ = h(2);
            tw = h(4);
            if l.pmode {
                fip = h(6);
                fcs = h(8);
                fdp = h(10);
                fds = h(12);
                fop = self.fop as u32;
            } else {
                fip = h(6) | ((h(8) >> 12) & 0xF) << 16;
                fop = h(8) & 0x7FF;
                fcs = 0;
                fdp = h(10) | ((h(12) >> 12) & 0xF) << 16;
                fds = 0;
            }
        }
        self.fcw = (fcw as u16 & 0x1F3F) | 0x40;
        self.fsw = fsw_ as u16;
        self.fip = fip as u64;
        self.fcs = fcs as u16;
        self.fop = fop as u16;
        self.fdp = fdp as u64;
        self.fds = fds as u16;
        let mut nonempty = 0u8;
        for r in 0..8 {
            if (tw >> (2 * r)) & 3 != 3 {
                nonempty |= 1 << r;
            }
        }
        self.load_tags(nonempty);
        self.update_es();
    }

    /// The 512-byte FXSAVE image (SDM Vol. 1 Table 10-2). `rex_w`: 64-bit
    /// FIP/FDP; else FIP/FCS/FDP/FDS 32+16 bits. XMM8-15 are included; the
    /// caller decides which bytes it writes.
    pub fn fxsave_image(&self, rex_w: bool, out: &mut [u8; 512]) {
        out[0..2].copy_from_slice(&self.fcw.to_le_bytes());
        out[2..4].copy_from_slice(&self.fsw.to_le_bytes());
        out[4] = self.abridged_tag();
        out[5] = 0;
        out[6..8].copy_from_slice(&(self.fop & 0x7FF).to_le_bytes());
        if rex_w {
            out[8..16].copy_from_slice(&self.fip.to_le_bytes());
            out[16..24].copy_from_slice(&self.fdp.to_le_bytes());
        } else {
            out[8..12].copy_from_slice(&(self.fip as u32).to_le_bytes());
            out[12..14].copy_from_slice(&self.fcs.to_le_bytes());
            out[14..16].fill(0);
            out[16..20].copy_from_slice(&(self.fdp as u32).to_le_bytes());
            out[20..22].copy_from_slice(&self.fds.to_le_bytes());
            out[22..24].fill(0);
        }
        out[24..28].copy_from_slice(&self.mxcsr.to_le_bytes());
        out[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
        for i in 0..8 {
            let v = self.st(i);
            let o = 32 + 16 * i;
            out[o..o + 8].copy_from_slice(&v.signif.to_le_bytes());
            out[o + 8..o + 10].copy_from_slice(&v.sign_exp.to_le_bytes());
            out[o + 10..o + 16].fill(0);
        }
        for (i, x) in self.xmm.iter().enumerate() {
            let o = 160 + 16 * i;
            out[o..o + 16].copy_from_slice(&x.to_le_bytes());
        }
    }

    /// Loads an FXSAVE image (without the MXCSR check: see [`fxrstor`]).
    /// `sse`: load MXCSR and XMM0..`nxmm`-1 too.
    pub fn fxrstor_image(&mut self, rex_w: bool, b: &[u8; 512], sse: bool, nxmm: usize) {
        let h = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let q = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        self.fcw = (h(0) & 0x1F3F) | 0x40;
        self.fsw = h(2);
        self.fop = h(6) & 0x7FF;
        if rex_w {
            self.fip = q(8);
            self.fdp = q(16);
            self.fcs = 0;
            self.fds = 0;
        } else {
            self.fip = q(8) & 0xFFFF_FFFF;
            self.fcs = h(12);
            self.fdp = q(16) & 0xFFFF_FFFF;
            self.fds = h(20);
        }
        // ST(i) slots are in stack order: the physical register is TOP + i.
        for i in 0..8 {
            let o = 32 + 16 * i;
            let r = self.phys(i);
            self.st[r] = F80::new(h(o + 8), q(o));
        }
        self.load_tags(b[4]);
        self.update_es();
        if sse {
            self.mxcsr = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
            for i in 0..nxmm.min(16) {
                let o = 160 + 16 * i;
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[o..o + 16]);
                self.xmm[i] = u128::from_le_bytes(a);
            }
        }
    }
}

// ---- memory helpers ----

/// Checks that `len` bytes at `seg:ea` can be written (segment limits and
/// every page touched), without writing.
fn probe_range(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, ea: u64, len: u64, write: bool) -> Res {
    let s = op.seg as usize;
    let last = ea.wrapping_add(len - 1) & amask(op.asz);
    let lin0 = cpu.seg_lin(s, ea, 1, write)?;
    let lin1 = cpu.seg_lin(s, last, 1, write)?;
    let _ = lin1;
    let mut page = lin0 & !0xFFF;
    let end = lin0.wrapping_add(len - 1);
    loop {
        let a = if page < lin0 { lin0 } else { page };
        if write {
            cpu.probe_write(bus, a, 1)?;
        } else {
            cpu.read_lin(bus, a, 1)?;
        }
        if page >= (end & !0xFFF) {
            break;
        }
        page = page.wrapping_add(0x1000);
    }
    Ok(())
}

/// Writes `data` at `seg:ea` (probed first).
fn write_bytes(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, ea: u64, data: &[u8]) -> Res {
    probe_range(cpu, bus, op, ea, data.len() as u64, true)?;
    let s = op.seg as usize;
    let mut off = 0usize;
    while off < data.len() {
        let n = match data.len() - off {
            8.. => 8,
            4..=7 => 4,
            2..=3 => 2,
            _ => 1,
        };
        let mut v = 0u64;
        for (k, b) in data[off..off + n].iter().enumerate() {
            v |= (*b as u64) << (8 * k);
        }
        cpu.write(
            bus,
            s,
            ea.wrapping_add(off as u64) & amask(op.asz),
            n as u8,
            v,
        )?;
        off += n;
    }
    Ok(())
}

/// Reads `out.len()` bytes at `seg:ea`.
fn read_bytes(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, ea: u64, out: &mut [u8]) -> Res {
    let s = op.seg as usize;
    let mut off = 0usize;
    let len = out.len();
    while off < len {
        let n = match len - off {
            8.. => 8,
            4..=7 => 4,
            2..=3 => 2,
            _ => 1,
        };
        let v = cpu.read(bus, s, ea.wrapping_add(off as u64) & amask(op.asz), n as u8)?;
        for k in 0..n {
            out[off + k] = (v >> (8 * k)) as u8;
        }
        off += n;
    }
    Ok(())
}

fn layout(cpu: &Cpu, op: &Op) -> EnvLayout {
    EnvLayout {
        op32: op.osz != 14 && op.osz != 94,
        pmode: cpu.pmode,
    }
}

// ---- handlers ----

pub fn handler_for(ins: &Instruction, _op: &mut Op) -> Option<Handler> {
    Some(match ins.mnemonic() {
        M::Fnstenv => fstenv::<false>,
        M::Fstenv => fstenv::<true>,
        M::Fldenv => fldenv,
        M::Fnsave => fsave::<false>,
        M::Fsave => fsave::<true>,
        M::Frstor => frstor,
        M::Fxsave => fxsave::<false>,
        M::Fxsave64 => fxsave::<true>,
        M::Fxrstor => fxrstor::<false>,
        M::Fxrstor64 => fxrstor::<true>,
        _ => return None,
    })
}

fn wait_prefix(cpu: &mut Cpu, wait: bool) -> Res {
    if wait {
        cpu.check_wait()?;
    }
    cpu.check_x87()?;
    if wait {
        cpu.fpu_pending()?;
    }
    Ok(())
}

/// FNSTENV/FSTENV: store the environment, then mask all exceptions (SDM
/// Vol. 2A FSTENV).
fn fstenv<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    wait_prefix(cpu, WAIT)?;
    let ea = op.ea(cpu);
    let mut img = [0u8; 28];
    let n = cpu.fpu.store_env(layout(cpu, op), &mut img);
    write_bytes(cpu, bus, op, ea, &img[..n])?;
    cpu.fpu.fcw |= 0x3F;
    cpu.fpu.update_es();
    Ok(())
}

fn fldenv(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_x87()?;
    cpu.fpu_pending()?;
    let ea = op.ea(cpu);
    let l = layout(cpu, op);
    let mut img = [0u8; 28];
    let n = if l.op32 { 28 } else { 14 };
    read_bytes(cpu, bus, op, ea, &mut img[..n])?;
    cpu.fpu.load_env(l, &img);
    if cpu.fpu.fsw & fsw::ES == 0 {
        cpu.ferr = false;
    }
    Ok(())
}

/// FNSAVE/FSAVE: environment + ST(0)..ST(7), then FNINIT (SDM Vol. 2A FSAVE).
fn fsave<const WAIT: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    wait_prefix(cpu, WAIT)?;
    let ea = op.ea(cpu);
    let l = layout(cpu, op);
    let mut env = [0u8; 28];
    let n = cpu.fpu.store_env(l, &mut env);
    let mut img = [0u8; 108];
    img[..n].copy_from_slice(&env[..n]);
    for i in 0..8 {
        let v = cpu.fpu.st(i);
        let o = n + 10 * i;
        img[o..o + 8].copy_from_slice(&v.signif.to_le_bytes());
        img[o + 8..o + 10].copy_from_slice(&v.sign_exp.to_le_bytes());
    }
    write_bytes(cpu, bus, op, ea, &img[..n + 80])?;
    cpu.fpu.init();
    cpu.ferr = false;
    Ok(())
}

fn frstor(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_x87()?;
    cpu.fpu_pending()?;
    let ea = op.ea(cpu);
    let l = layout(cpu, op);
    let n = if l.op32 { 28 } else { 14 };
    let mut img = [0u8; 108];
    read_bytes(cpu, bus, op, ea, &mut img[..n + 80])?;
    let mut env = [0u8; 28];
    env[..n].copy_from_slice(&img[..n]);
    // Registers first (stack order relative to the new TOP), then tags.
    let top = ((u16::from_le_bytes(if l.op32 {
        [env[4], env[5]]
    } else {
        [env[2], env[3]]
    }) >> fsw::TOP_SHIFT)
        & 7) as usize;
    for i in 0..8 {
        let o = n + 10 * i;
        let mut s = [0u8; 8];
        s.copy_from_slice(&img[o..o + 8]);
        cpu.fpu.st[(top + i) & 7] = F80::new(
            u16::from_le_bytes([img[o + 8], img[o + 9]]),
            u64::from_le_bytes(s),
        );
    }
    cpu.fpu.load_env(l, &env);
    if cpu.fpu.fsw & fsw::ES == 0 {
        cpu.ferr = false;
    }
    Ok(())
}

/// #GP(0) unless 16-byte aligned (SDM Vol. 2A FXSAVE: "regardless of segment").
fn check_align(cpu: &Cpu, op: &Op, ea: u64) -> Res {
    let lin = cpu.seg_lin(op.seg as usize, ea, 1, false)?;
    if lin & 15 != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

/// FXSAVE/FXSAVE64. #NM on CR0.EM or CR0.TS (Vol. 2A FXSAVE); XMM and MXCSR
/// are saved only with CR4.OSFXSR; XMM8-15 only in 64-bit mode.
fn fxsave<const W: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_x87()?;
    let ea = op.ea(cpu);
    check_align(cpu, op, ea)?;
    let mut img = [0u8; 512];
    cpu.fpu.fxsave_image(W, &mut img);
    let sse = cpu.cr4 & cr4::OSFXSR != 0;
    let end = if cpu.long64 { 416 } else { 288 };
    probe_range(cpu, bus, op, ea, end as u64, true)?;
    if sse {
        write_bytes(cpu, bus, op, ea, &img[..end])
    } else {
        write_bytes(cpu, bus, op, ea, &img[..24])?;
        write_bytes(
            cpu,
            bus,
            op,
            ea.wrapping_add(32) & amask(op.asz),
            &img[32..160],
        )
    }
}

/// FXRSTOR/FXRSTOR64: #GP(0) on misalignment or reserved MXCSR bits (with
/// CR4.OSFXSR); everything is read before anything is loaded.
fn fxrstor<const W: bool>(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    cpu.check_x87()?;
    let ea = op.ea(cpu);
    check_align(cpu, op, ea)?;
    let mut img = [0u8; 512];
    let end = if cpu.long64 { 416 } else { 288 };
    read_bytes(cpu, bus, op, ea, &mut img[..end])?;
    let sse = cpu.cr4 & cr4::OSFXSR != 0;
    let mxcsr = u32::from_le_bytes([img[24], img[25], img[26], img[27]]);
    if sse && mxcsr & !MXCSR_MASK != 0 {
        return Err(Fault::gp(0));
    }
    let nxmm = if cpu.long64 { 16 } else { 8 };
    // TOP must be known before the stack-ordered registers are placed.
    cpu.fpu.fsw = u16::from_le_bytes([img[2], img[3]]);
    cpu.fpu.fxrstor_image(W, &img, sse, nxmm);
    if cpu.fpu.fsw & fsw::ES == 0 {
        cpu.ferr = false;
    }
    Ok(())
}
