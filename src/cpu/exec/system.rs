//! System and flag instructions: CLI/STI/CLC/.., HLT, CPUID, RDTSC(P),
//! RDMSR/WRMSR, descriptor-table and task registers, LAR/LSL/VERR/VERW/ARPL,
//! MOV CRn/DRn, LMSW/SMSW/CLTS, INVLPG, SWAPGS, SYSCALL/SYSRET,
//! SYSENTER/SYSEXIT, and the #UD/#GP stand-ins (SDM Vol. 2, Vol. 3A).

use super::{rd, wr};
use crate::cpu::decode::{Op, K_MEM};
use crate::cpu::flags::size_mask;
use crate::cpu::state::rflags::*;
use crate::cpu::state::*;
use crate::cpu::{Bus, Cpu, Fault, Res};
use iced_x86::Mnemonic as M;

pub fn op_ud(_cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    Err(Fault::ud())
}

pub fn op_gp0(_cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    Err(Fault::gp(0))
}

/// An instruction vx86 decodes but does not implement: #UD, logged once.
pub fn op_unimplemented(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let start = cpu.rip.wrapping_sub(op.len as u64);
    let key = (op.ins.code() as u64) << 48 ^ start;
    if cpu.logged_ud.len() < 4096 && cpu.logged_ud.insert(key) {
        let lin = cpu.code_lin(start).unwrap_or(start);
        eprintln!(
            "vx86: unimplemented instruction {:?} ({}) at {:04x}:{:x} (linear {:x}): raising #UD",
            op.ins.code(),
            op.ins,
            cpu.seg[CS].selector,
            start,
            lin
        );
    }
    Err(Fault::ud())
}

fn need_cpl0(cpu: &Cpu) -> Res {
    if cpu.cpl != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

pub fn flag_op(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    match op.ins.mnemonic() {
        M::Clc => cpu.flags.set_cf(false),
        M::Stc => cpu.flags.set_cf(true),
        M::Cmc => {
            let c = cpu.flags.cf();
            cpu.flags.set_cf(!c)
        }
        M::Cld => cpu.flags.bits &= !DF,
        _ => cpu.flags.bits |= DF,
    }
    Ok(())
}

pub fn cli(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let vm = cpu.flags.bits & VM != 0;
    if (cpu.pmode || vm) && cpu.cpl > cpu.iopl() {
        if (vm && cpu.cr4 & cr4::VME != 0) || (!vm && cpu.cpl == 3 && cpu.cr4 & cr4::PVI != 0) {
            cpu.flags.bits &= !VIF;
            return Ok(());
        }
        return Err(Fault::gp(0));
    }
    cpu.flags.bits &= !IF;
    Ok(())
}

pub fn sti(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    let vm = cpu.flags.bits & VM != 0;
    if (cpu.pmode || vm) && cpu.cpl > cpu.iopl() {
        if ((vm && cpu.cr4 & cr4::VME != 0) || (!vm && cpu.cpl == 3 && cpu.cr4 & cr4::PVI != 0))
            && cpu.flags.bits & VIP == 0
        {
            cpu.flags.bits |= VIF;
            return Ok(());
        }
        return Err(Fault::gp(0));
    }
    if cpu.flags.bits & IF == 0 {
        cpu.shadow = true;
    }
    cpu.flags.bits |= IF;
    Ok(())
}

pub fn hlt(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    need_cpl0(cpu)?;
    cpu.halted = true;
    cpu.stop_block = true;
    Ok(())
}

pub fn cpuid(cpu: &mut Cpu, bus: &mut dyn Bus, _op: &Op) -> Res {
    let leaf = cpu.gpr[0] as u32;
    let (a, b, mut c, mut d) = cpu.features.cpuid(leaf, cpu.gpr[1] as u32);
    if leaf == 1 && bus.apic_present() {
        // A globally disabled APIC reads as absent (SDM Vol. 3A 11.4.3).
        d |= crate::cpu::cpuid::edx1::APIC;
        c |= crate::cpu::cpuid::ecx1::TSC_DEADLINE;
    }
    cpu.gpr[0] = a as u64;
    cpu.gpr[3] = b as u64;
    cpu.gpr[1] = c as u64;
    cpu.gpr[2] = d as u64;
    Ok(())
}

impl Cpu {
    /// The time-stamp counter: guest nanoseconds (a 1 GHz TSC; in
    /// deterministic time, retired instructions) plus the guest's offset.
    pub fn tsc(&self) -> u64 {
        self.clock
            .now(self.icount)
            .wrapping_add(self.msr.tsc_offset)
    }
}

pub fn rdtsc(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    if cpu.cr4 & cr4::TSD != 0 && cpu.cpl != 0 && cpu.cr0 & cr0::PE != 0 {
        return Err(Fault::gp(0));
    }
    let t = cpu.tsc();
    cpu.gpr[0] = t & 0xFFFF_FFFF;
    cpu.gpr[2] = t >> 32;
    Ok(())
}

pub fn rdtscp(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    rdtsc(cpu, bus, op)?;
    cpu.gpr[1] = cpu.msr.tsc_aux & 0xFFFF_FFFF;
    Ok(())
}

pub fn rdmsr(cpu: &mut Cpu, bus: &mut dyn Bus, _op: &Op) -> Res {
    need_cpl0(cpu)?;
    let idx = cpu.gpr[1] as u32;
    cpu.intr_recheck = true;
    let v = match bus.apic_rdmsr(idx) {
        // The APIC keeps the deadline in virtual time; the TSC adds the
        // guest's offset.
        Some(0) if idx == msr::IA32_TSC_DEADLINE => 0,
        Some(v) if idx == msr::IA32_TSC_DEADLINE => v.wrapping_add(cpu.msr.tsc_offset),
        Some(v) => v,
        None if idx == msr::IA32_TSC_DEADLINE => return Err(Fault::gp(0)),
        None => cpu.read_msr(idx)?,
    };
    cpu.gpr[0] = v & 0xFFFF_FFFF;
    cpu.gpr[2] = v >> 32;
    Ok(())
}

pub fn wrmsr(cpu: &mut Cpu, bus: &mut dyn Bus, _op: &Op) -> Res {
    need_cpl0(cpu)?;
    let v = (cpu.gpr[0] & 0xFFFF_FFFF) | (cpu.gpr[2] << 32);
    let idx = cpu.gpr[1] as u32;
    let arg = if idx == msr::IA32_TSC_DEADLINE && v != 0 {
        v.wrapping_sub(cpu.msr.tsc_offset).max(1)
    } else {
        v
    };
    cpu.intr_recheck = true;
    match bus.apic_wrmsr(idx, arg, cpu.icount) {
        Some(true) => {
            // A re-armed timer: the machine plans its next stop anew.
            cpu.stop_request = true;
            cpu.stop_block = true;
            Ok(())
        }
        Some(false) => Err(Fault::gp(0)),
        None if idx == msr::IA32_TSC_DEADLINE => Err(Fault::gp(0)),
        None => cpu.write_msr(idx, v),
    }
}

impl Cpu {
    pub fn read_msr(&mut self, idx: u32) -> Res<u64> {
        use crate::cpu::state::msr::*;
        Ok(match idx {
            IA32_TSC => self.tsc(),
            // No local APIC on the ISA machine: APIC_BASE reads as disabled.
            IA32_APIC_BASE => 0xFEE0_0000 | (1 << 8),
            IA32_MTRRCAP => 0x508,
            IA32_SYSENTER_CS => self.msr.sysenter_cs,
            IA32_SYSENTER_ESP => self.msr.sysenter_esp,
            IA32_SYSENTER_EIP => self.msr.sysenter_eip,
            IA32_MCG_CAP | IA32_MCG_STATUS => 0,
            IA32_MISC_ENABLE => self.msr.misc_enable,
            IA32_PAT => self.msr.pat,
            IA32_MTRR_DEF_TYPE => self.msr.mtrr_def_type,
            0x200..=0x20F | 0x250 | 0x258 | 0x259 | 0x268..=0x26F => self
                .msr
                .mtrr
                .iter()
                .find(|(i, _)| *i == idx)
                .map(|(_, v)| *v)
                .unwrap_or(0),
            IA32_EFER => self.efer,
            IA32_STAR => self.msr.star,
            IA32_LSTAR => self.msr.lstar,
            IA32_CSTAR => self.msr.cstar,
            IA32_FMASK => self.msr.fmask,
            IA32_FS_BASE => self.seg[FS].base,
            IA32_GS_BASE => self.seg[GS].base,
            IA32_KERNEL_GS_BASE => self.msr.kernel_gs_base,
            IA32_TSC_AUX => self.msr.tsc_aux,
            // The microcode update signature (bits 63:32): none loaded.
            IA32_BIOS_SIGN_ID => 0,
            // Platform ID (bits 52:50) 0: what the microcode loader reads on
            // every family-6 Intel part (SDM Vol. 4 Table 2-2); read-only.
            IA32_PLATFORM_ID => 0,
            // Read-only; present while CPUID.7:EDX[29] says so (a write
            // falls to the #GP of unknown MSRs below, as on hardware).
            IA32_ARCH_CAPABILITIES
                if self.features.cpuid(7, 0).3
                    & crate::cpu::cpuid::leaf7::EDX_ARCH_CAPABILITIES
                    != 0 =>
            {
                crate::cpu::cpuid::ARCH_CAPABILITIES
            }
            _ => return Err(Fault::gp(0)),
        })
    }

    pub fn write_msr(&mut self, idx: u32, v: u64) -> Res {
        use crate::cpu::state::msr::*;
        let canon = |v: u64| {
            if crate::cpu::mmu::canonical(v) {
                Ok(v)
            } else {
                Err(Fault::gp(0))
            }
        };
        match idx {
            IA32_TSC => self.msr.tsc_offset = v.wrapping_sub(self.clock.now(self.icount)),
            IA32_APIC_BASE => {}
            IA32_SYSENTER_CS => self.msr.sysenter_cs = v & 0xFFFF,
            IA32_SYSENTER_ESP => self.msr.sysenter_esp = canon(v)?,
            IA32_SYSENTER_EIP => self.msr.sysenter_eip = canon(v)?,
            IA32_MCG_STATUS => {}
            // SDM Vol. 3A 10.11.7.1: software writes 0 before CPUID(1) so the
            // processor can deposit its update signature; any write is accepted
            // and the signature stays 0 (Linux does this in early_init_intel).
            IA32_BIOS_SIGN_ID => {}
            IA32_MISC_ENABLE => self.msr.misc_enable = v,
            IA32_PAT => {
                // Each entry must be a valid memory type (SDM Vol. 3A 11.12.2).
                for i in 0..8 {
                    if matches!((v >> (8 * i)) & 0xFF, 2 | 3 | 8..=0xFF) {
                        return Err(Fault::gp(0));
                    }
                }
                self.msr.pat = v
            }
            IA32_MTRR_DEF_TYPE => self.msr.mtrr_def_type = v,
            0x200..=0x20F | 0x250 | 0x258 | 0x259 | 0x268..=0x26F => {
                if let Some(e) = self.msr.mtrr.iter_mut().find(|(i, _)| *i == idx) {
                    e.1 = v;
                } else {
                    self.msr.mtrr.push((idx, v));
                }
            }
            IA32_EFER => {
                if v & !efer::SUPPORTED != 0 {
                    return Err(Fault::gp(0));
                }
                // LME cannot change while paging is on (SDM Vol. 3A 9.8.5).
                if self.cr0 & cr0::PG != 0 && (v ^ self.efer) & efer::LME != 0 {
                    return Err(Fault::gp(0));
                }
                self.efer = (v & !efer::LMA) | (self.efer & efer::LMA);
                self.tlb.flush_all();
            }
            IA32_STAR => self.msr.star = v,
            IA32_LSTAR => self.msr.lstar = canon(v)?,
            IA32_CSTAR => self.msr.cstar = canon(v)?,
            IA32_FMASK => self.msr.fmask = v & 0xFFFF_FFFF,
            IA32_FS_BASE => self.seg[FS].base = canon(v)?,
            IA32_GS_BASE => self.seg[GS].base = canon(v)?,
            IA32_KERNEL_GS_BASE => self.msr.kernel_gs_base = canon(v)?,
            IA32_TSC_AUX => self.msr.tsc_aux = v & 0xFFFF_FFFF,
            _ => return Err(Fault::gp(0)),
        }
        Ok(())
    }
}

pub fn lgdt_lidt(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let ea = op.ea(cpu);
    let s = op.seg as usize;
    let limit = cpu.read(bus, s, ea, 2)? as u32;
    let base = if cpu.long64 {
        cpu.read(bus, s, ea.wrapping_add(2), 8)?
    } else {
        let b = cpu.read(
            bus,
            s,
            ea.wrapping_add(2) & crate::cpu::decode::amask(op.asz),
            4,
        )?;
        // 16-bit operand size loads only 24 bits of base.
        if op.ins.code().op_code().operand_size() == 16
            || (op.osz == 2 && !cpu.long64 && cpu.code_bits == 16)
        {
            b & 0xFF_FFFF
        } else {
            b
        }
    };
    let t = DescTable { base, limit };
    if op.ins.mnemonic() == M::Lgdt {
        cpu.gdtr = t;
    } else {
        cpu.idtr = t;
    }
    Ok(())
}

pub fn sgdt_sidt(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let t = if op.ins.mnemonic() == M::Sgdt {
        cpu.gdtr
    } else {
        cpu.idtr
    };
    let ea = op.ea(cpu);
    let s = op.seg as usize;
    let bsz = if cpu.long64 { 8 } else { 4 };
    cpu.seg_lin(s, ea, 2 + bsz, true)?;
    cpu.write(bus, s, ea, 2, t.limit as u64)?;
    cpu.write(bus, s, ea.wrapping_add(2), bsz, t.base)
}

pub fn lldt(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    need_cpl0(cpu)?;
    let sel = rd(cpu, bus, op, op.o[0], 2)? as u16;
    cpu.load_ldt(bus, sel)
}

pub fn sldt(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    let sz = if op.o[0] == K_MEM { 2 } else { op.osz };
    wr(cpu, bus, op, op.o[0], sz, cpu.ldtr.selector as u64)
}

pub fn ltr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    need_cpl0(cpu)?;
    let sel = rd(cpu, bus, op, op.o[0], 2)? as u16;
    if sel & !3 == 0 || sel & 4 != 0 {
        return Err(Fault::gp(sel as u32 & 0xFFFC));
    }
    let d = cpu.read_desc(bus, sel)?;
    let long = cpu.efer & efer::LMA != 0;
    let ok = if long {
        d.typ() == 9
    } else {
        matches!(d.typ(), 1 | 9)
    };
    if d.s() || !ok {
        return Err(Fault::gp(sel as u32 & 0xFFFC));
    }
    if !d.present() {
        return Err(Fault::code(crate::cpu::vector::NP, sel as u32 & 0xFFFC));
    }
    let mut s = d.to_segment(sel);
    if long {
        s.base |= (cpu.read_desc_high(bus, sel)? as u64) << 32;
    }
    // Mark busy in the descriptor and the cache.
    let addr = cpu.gdtr.base + (sel & !7) as u64 + 4;
    cpu.write_sys(bus, addr, 4, (d.hi | (1 << 9)) as u64)?;
    s.attr |= 2;
    cpu.tr = s;
    Ok(())
}

pub fn str_(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    let sz = if op.o[0] == K_MEM { 2 } else { op.osz };
    wr(cpu, bus, op, op.o[0], sz, cpu.tr.selector as u64)
}

/// Shared by LAR/LSL/VERR/VERW: the descriptor if visible at CPL/RPL.
fn visible_desc(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    sel: u16,
    ok_types: &dyn Fn(&crate::cpu::seg::Desc) -> bool,
) -> Res<Option<crate::cpu::seg::Desc>> {
    if sel & !3 == 0 {
        return Ok(None);
    }
    let d = match cpu.read_desc(bus, sel) {
        Ok(d) => d,
        Err(f) if f.vector == crate::cpu::vector::GP => return Ok(None),
        Err(f) => return Err(f),
    };
    if !ok_types(&d) {
        return Ok(None);
    }
    let rpl = (sel & 3) as u8;
    if !(d.conforming()) && (d.dpl() < cpu.cpl || d.dpl() < rpl) {
        return Ok(None);
    }
    Ok(Some(d))
}

pub fn lar(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    let sel = rd(cpu, bus, op, op.o[1], 2)? as u16;
    let long = cpu.efer & efer::LMA != 0;
    let d = visible_desc(cpu, bus, sel, &|d| {
        d.s()
            || if long {
                matches!(d.typ(), 2 | 9 | 11 | 12)
            } else {
                matches!(d.typ(), 1..=7 | 9 | 11 | 12)
            }
    })?;
    match d {
        Some(d) => {
            // SDM Vol. 2A LAR: the second descriptor dword "masked by
            // 00FxFF00H", bits 19:16 undefined. Intel CPUs and Bochs leave
            // limit[19:16] there (test-roms/sys/segments.expected), so do we.
            cpu.set_reg(
                op.o[0],
                op.osz,
                (d.hi & 0x00FF_FF00) as u64 & size_mask(op.osz),
            );
            cpu.flags.set_status(ZF, ZF);
        }
        None => cpu.flags.set_status(ZF, 0),
    }
    Ok(())
}

pub fn lsl(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    let sel = rd(cpu, bus, op, op.o[1], 2)? as u16;
    let long = cpu.efer & efer::LMA != 0;
    let d = visible_desc(cpu, bus, sel, &|d| {
        d.s()
            || if long {
                matches!(d.typ(), 2 | 9 | 11)
            } else {
                matches!(d.typ(), 1 | 2 | 3 | 9 | 11)
            }
    })?;
    match d {
        Some(d) => {
            cpu.set_reg(
                op.o[0],
                op.osz,
                d.to_segment(sel).limit as u64 & size_mask(op.osz),
            );
            cpu.flags.set_status(ZF, ZF);
        }
        None => cpu.flags.set_status(ZF, 0),
    }
    Ok(())
}

fn verify(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op, write: bool) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    let sel = rd(cpu, bus, op, op.o[0], 2)? as u16;
    let d = visible_desc(cpu, bus, sel, &|d| {
        d.s()
            && if write {
                d.writable_data()
            } else {
                !d.is_code() || d.readable()
            }
    })?;
    cpu.flags.set_status(ZF, if d.is_some() { ZF } else { 0 });
    Ok(())
}

pub fn verr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    verify(cpu, bus, op, false)
}

pub fn verw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    verify(cpu, bus, op, true)
}

pub fn arpl(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    if !cpu.pmode {
        return Err(Fault::ud());
    }
    let dst = rd(cpu, bus, op, op.o[0], 2)?;
    let src = cpu.reg(op.o[1], 2);
    if dst & 3 < src & 3 {
        wr(cpu, bus, op, op.o[0], 2, (dst & !3) | (src & 3))?;
        cpu.flags.set_status(ZF, ZF);
    } else {
        cpu.flags.set_status(ZF, 0);
    }
    Ok(())
}

fn cr_index(op: &Op, i: u32) -> usize {
    let r = op.ins.op_register(i);
    (r as usize).wrapping_sub(iced_x86::Register::CR0 as usize)
}

pub fn mov_from_cr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let v = match cr_index(op, 1) {
        0 => cpu.cr0,
        2 => cpu.cr2,
        3 => cpu.cr3,
        4 => cpu.cr4,
        // CR8 is the TPR's priority class when there is a local APIC (SDM
        // Vol. 3A 11.8.6.1); a register of its own otherwise.
        8 => bus.apic_tpr().map_or(cpu.cr8, |tpr| u64::from(tpr >> 4)),
        _ => return Err(Fault::ud()),
    };
    let sz = if cpu.long64 { 8 } else { 4 };
    cpu.set_reg(op.o[0], sz, v & size_mask(sz));
    Ok(())
}

impl Cpu {
    /// CR0 write with the checks and side effects of SDM Vol. 3A 2.5 / 9.8.5.
    pub fn set_cr0(&mut self, v: u64) -> Res {
        let v = (v & 0xFFFF_FFFF) | cr0::ET;
        if v & cr0::PG != 0 && v & cr0::PE == 0 {
            return Err(Fault::gp(0));
        }
        if v & cr0::NW != 0 && v & cr0::CD == 0 {
            return Err(Fault::gp(0));
        }
        let old = self.cr0;
        if v & cr0::PG != 0 && old & cr0::PG == 0 && self.efer & efer::LME != 0 {
            // Activating IA-32e mode needs PAE and a non-64-bit CS.
            if self.cr4 & cr4::PAE == 0 {
                return Err(Fault::gp(0));
            }
            self.efer |= efer::LMA;
        }
        if v & cr0::PG == 0 && old & cr0::PG != 0 && self.efer & efer::LMA != 0 {
            if self.long64 {
                return Err(Fault::gp(0));
            }
            self.efer &= !efer::LMA;
        }
        self.cr0 = v;
        // PE alone changes no translation (with PG=0 every linear address is
        // its physical one, and the TLB's privilege sets follow CPL), so
        // GRUB's real/protected switches on every BIOS call keep the TLB.
        if (old ^ v) & (cr0::PG | cr0::WP) != 0 {
            self.tlb.flush_all();
        }
        self.update_mode();
        self.stop_block = true;
        Ok(())
    }

    pub fn set_cr4(&mut self, v: u64) -> Res {
        if v & !cr4::SUPPORTED != 0 {
            return Err(Fault::gp(0));
        }
        if self.efer & efer::LMA != 0 && v & cr4::PAE == 0 {
            return Err(Fault::gp(0));
        }
        let old = self.cr4;
        self.cr4 = v;
        if (old ^ v) & (cr4::PAE | cr4::PSE | cr4::PGE) != 0 {
            self.tlb.flush_all();
        }
        self.stop_block = true;
        Ok(())
    }

    pub fn set_cr3(&mut self, v: u64) -> Res {
        if self.efer & efer::LMA != 0 && v >> crate::cpu::mmu::PHYS_BITS != 0 {
            return Err(Fault::gp(0));
        }
        self.cr3 = if self.efer & efer::LMA != 0 {
            v
        } else {
            v & 0xFFFF_FFFF
        };
        self.tlb.flush_non_global();
        Ok(())
    }
}

pub fn mov_to_cr(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let sz = if cpu.long64 { 8 } else { 4 };
    let v = cpu.reg(op.o[1], sz);
    match cr_index(op, 0) {
        n @ (0 | 3 | 4) => {
            let saved = (cpu.cr0, cpu.cr3, cpu.cr4, cpu.efer);
            match n {
                0 => cpu.set_cr0(v)?,
                3 => cpu.set_cr3(v)?,
                _ => cpu.set_cr4(v)?,
            }
            // Under PAE paging the MOV loads the PDPTEs and faults, changing
            // nothing, if one is bad (SDM Vol. 3A 4.4.1).
            if let Err(f) = cpu.check_pae_pdptes(bus) {
                (cpu.cr0, cpu.cr3, cpu.cr4, cpu.efer) = saved;
                cpu.tlb.flush_all();
                cpu.update_mode();
                return Err(f);
            }
            Ok(())
        }
        2 => {
            cpu.cr2 = v;
            Ok(())
        }
        8 => {
            if v > 15 {
                return Err(Fault::gp(0));
            }
            // MOV to CR8 writes TPR[7:4] and clears TPR[3:0] (SDM Vol. 3A
            // 11.8.6.1); a lower priority may let a pending interrupt in.
            if bus.apic_set_tpr((v as u8) << 4, cpu.icount) {
                cpu.intr_recheck = true;
            } else {
                cpu.cr8 = v;
            }
            Ok(())
        }
        _ => Err(Fault::ud()),
    }
}

fn dr_index(op: &Op, i: u32) -> usize {
    let r = op.ins.op_register(i);
    (r as usize).wrapping_sub(iced_x86::Register::DR0 as usize)
}

pub fn mov_from_dr(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let mut i = dr_index(op, 1);
    if i == 4 || i == 5 {
        if cpu.cr4 & cr4::DE != 0 {
            return Err(Fault::ud());
        }
        i += 2;
    }
    let v = cpu.dr.get(i).copied().ok_or(Fault::ud())?;
    let sz = if cpu.long64 { 8 } else { 4 };
    cpu.set_reg(op.o[0], sz, v & size_mask(sz));
    Ok(())
}

pub fn mov_to_dr(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let mut i = dr_index(op, 0);
    if i == 4 || i == 5 {
        if cpu.cr4 & cr4::DE != 0 {
            return Err(Fault::ud());
        }
        i += 2;
    }
    let sz = if cpu.long64 { 8 } else { 4 };
    let mut v = cpu.reg(op.o[1], sz);
    if cpu.long64 && (i == 6 || i == 7) && v >> 32 != 0 {
        return Err(Fault::gp(0));
    }
    match i {
        6 => v = (v & 0xE00F) | 0xFFFF_0FF0,
        7 => v = (v & 0xFFFF_2BFF) | 0x400,
        _ => {}
    }
    if let Some(d) = cpu.dr.get_mut(i) {
        *d = v;
        Ok(())
    } else {
        Err(Fault::ud())
    }
}

pub fn lmsw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let v = rd(cpu, bus, op, op.o[0], 2)?;
    // LMSW can set PE but never clear it (SDM Vol. 2A LMSW).
    let new = (cpu.cr0 & !0xE) | (v & 0xF) | (cpu.cr0 & cr0::PE);
    cpu.set_cr0(new)
}

pub fn smsw(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = if op.o[0] == K_MEM { 2 } else { op.osz };
    wr(cpu, bus, op, op.o[0], sz, cpu.cr0 & size_mask(sz))
}

pub fn clts(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    need_cpl0(cpu)?;
    cpu.cr0 &= !cr0::TS;
    Ok(())
}

pub fn invlpg(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    need_cpl0(cpu)?;
    let ea = op.ea(cpu);
    let lin = if cpu.long64 {
        if (op.seg as usize) >= FS {
            cpu.seg[op.seg as usize].base.wrapping_add(ea)
        } else {
            ea
        }
    } else {
        cpu.seg[(op.seg as usize).min(5)].base.wrapping_add(ea) & 0xFFFF_FFFF
    };
    cpu.tlb.flush_page(lin);
    Ok(())
}

pub fn wbinvd(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    need_cpl0(cpu)
}

pub fn swapgs(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    if !cpu.long64 {
        return Err(Fault::ud());
    }
    need_cpl0(cpu)?;
    std::mem::swap(&mut cpu.seg[GS].base, &mut cpu.msr.kernel_gs_base);
    Ok(())
}

fn flat(sel: u16, code: bool, dpl: u8, long: bool) -> Segment {
    let mut a = attr::P
        | attr::S
        | attr::G
        | attr::TYPE_ACCESSED
        | attr::TYPE_RW
        | ((dpl as u16) << attr::DPL_SHIFT);
    if code {
        a |= attr::TYPE_CODE;
        a |= if long { attr::L } else { attr::DB };
    } else {
        a |= attr::DB;
    }
    Segment {
        selector: sel,
        base: 0,
        limit: 0xFFFF_FFFF,
        attr: a,
    }
}

/// SYSCALL (SDM Vol. 2B): CS/SS from STAR[47:32], RIP from LSTAR (64-bit)
/// or CSTAR (compatibility mode), RFLAGS masked by FMASK.
pub fn syscall(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    if cpu.efer & efer::SCE == 0 {
        return Err(Fault::ud());
    }
    let sel = ((cpu.msr.star >> 32) & 0xFFFC) as u16;
    let fl = cpu.flags.get();
    if cpu.efer & efer::LMA != 0 {
        cpu.gpr[1] = cpu.rip;
        cpu.gpr[11] = fl & !RF;
        let target = if cpu.long64 {
            cpu.msr.lstar
        } else {
            cpu.msr.cstar
        };
        cpu.flags.set(fl & !cpu.msr.fmask & !RF);
        cpu.seg[CS] = flat(sel, true, 0, true);
        cpu.seg[SS] = flat(sel + 8, false, 0, false);
        cpu.cpl = 0;
        cpu.update_mode();
        cpu.rip = target;
    } else {
        cpu.gpr[1] = cpu.rip & 0xFFFF_FFFF;
        cpu.flags.set(fl & !(VM | IF | RF));
        cpu.seg[CS] = flat(sel, true, 0, false);
        cpu.seg[SS] = flat(sel + 8, false, 0, false);
        cpu.cpl = 0;
        cpu.update_mode();
        cpu.rip = cpu.msr.star & 0xFFFF_FFFF;
    }
    cpu.stop_block = true;
    Ok(())
}

pub fn sysret(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    if cpu.efer & efer::SCE == 0 {
        return Err(Fault::ud());
    }
    if !cpu.pmode || cpu.cpl != 0 {
        return Err(Fault::gp(0));
    }
    let base = ((cpu.msr.star >> 48) & 0xFFFF) as u16;
    let to64 = op.osz == 8;
    if cpu.efer & efer::LMA != 0 {
        if to64 && !crate::cpu::mmu::canonical(cpu.gpr[1]) {
            return Err(Fault::gp(0));
        }
        let fl = cpu.gpr[11];
        cpu.flags.set((fl & 0x3C_7FD7) | FIXED1);
        if to64 {
            cpu.seg[CS] = flat((base + 16) | 3, true, 3, true);
            cpu.rip = cpu.gpr[1];
        } else {
            cpu.seg[CS] = flat(base | 3, true, 3, false);
            cpu.rip = cpu.gpr[1] & 0xFFFF_FFFF;
        }
    } else {
        cpu.seg[CS] = flat(base | 3, true, 3, false);
        cpu.rip = cpu.gpr[1] & 0xFFFF_FFFF;
        cpu.flags.bits |= IF;
    }
    // SS keeps its cached attributes mostly; selector RPL=3.
    cpu.seg[SS] = flat((base + 8) | 3, false, 3, false);
    cpu.cpl = 3;
    cpu.update_mode();
    cpu.stop_block = true;
    Ok(())
}

/// SYSENTER/SYSEXIT (SDM Vol. 2B).
pub fn sysenter(cpu: &mut Cpu, _bus: &mut dyn Bus, _op: &Op) -> Res {
    if cpu.cr0 & cr0::PE == 0 {
        return Err(Fault::gp(0));
    }
    let cs = (cpu.msr.sysenter_cs & 0xFFFC) as u16;
    if cs == 0 {
        return Err(Fault::gp(0));
    }
    let long = cpu.efer & efer::LMA != 0;
    cpu.flags.bits &= !(VM | IF | RF);
    cpu.seg[CS] = flat(cs, true, 0, long);
    cpu.seg[SS] = flat(cs + 8, false, 0, false);
    cpu.cpl = 0;
    cpu.update_mode();
    cpu.rip = if long {
        cpu.msr.sysenter_eip
    } else {
        cpu.msr.sysenter_eip & 0xFFFF_FFFF
    };
    cpu.gpr[4] = if long {
        cpu.msr.sysenter_esp
    } else {
        cpu.msr.sysenter_esp & 0xFFFF_FFFF
    };
    cpu.stop_block = true;
    Ok(())
}

pub fn sysexit(cpu: &mut Cpu, _bus: &mut dyn Bus, op: &Op) -> Res {
    let cs = (cpu.msr.sysenter_cs & 0xFFFC) as u16;
    if !cpu.pmode || cpu.cpl != 0 || cs == 0 {
        return Err(Fault::gp(0));
    }
    let to64 = op.osz == 8;
    if to64 {
        cpu.seg[CS] = flat((cs + 32) | 3, true, 3, true);
        cpu.seg[SS] = flat((cs + 40) | 3, false, 3, false);
        cpu.rip = cpu.gpr[2];
        cpu.gpr[4] = cpu.gpr[1];
    } else {
        cpu.seg[CS] = flat((cs + 16) | 3, true, 3, false);
        cpu.seg[SS] = flat((cs + 24) | 3, false, 3, false);
        cpu.rip = cpu.gpr[2] & 0xFFFF_FFFF;
        cpu.gpr[4] = cpu.gpr[1] & 0xFFFF_FFFF;
    }
    cpu.cpl = 3;
    cpu.update_mode();
    cpu.stop_block = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cpu::Cpu;
    use iced_x86::code_asm::*;

    /// Linux's early_init_intel: WRMSR 8Bh with 0, CPUID(1), RDMSR 8Bh.
    /// A #GP here was an "unchecked MSR access error" in the kernel log.
    #[test]
    fn bios_sign_id_write_then_read() {
        let mut a = CodeAssembler::new(64).expect("assembler");
        a.xor(eax, eax).ok();
        a.xor(edx, edx).ok();
        a.mov(ecx, 0x8Bu32).ok();
        a.wrmsr().ok();
        a.mov(eax, 1u32).ok();
        a.cpuid().ok();
        a.mov(ecx, 0x8Bu32).ok();
        a.mov(edx, 0xFFFF_FFFFu32).ok();
        a.rdmsr().ok();
        let cpu = run_long_snippet(a);
        assert_eq!(cpu.gpr[2], 0, "no microcode update signature");
    }

    /// Linux's Intel microcode loader reads IA32_PLATFORM_ID (17h) with a
    /// plain RDMSR; a #GP was an "unchecked MSR access error" in the log.
    #[test]
    fn platform_id_reads_as_zero() {
        let mut a = CodeAssembler::new(64).expect("assembler");
        a.mov(ecx, 0x17u32).ok();
        a.mov(eax, 0xFFFF_FFFFu32).ok();
        a.mov(edx, 0xFFFF_FFFFu32).ok();
        a.rdmsr().ok();
        let cpu = run_long_snippet(a);
        assert_eq!((cpu.gpr[0], cpu.gpr[2]), (0, 0));
    }

    /// CPUID.7:EDX[29] announces IA32_ARCH_CAPABILITIES; RDMSR 10Ah gives
    /// the not-susceptible bits (RDCL_NO and MDS_NO among them, so Linux
    /// runs without page-table isolation and VERW clearing).
    #[test]
    fn arch_capabilities_reads_the_not_susceptible_bits() {
        let mut a = CodeAssembler::new(64).expect("assembler");
        a.mov(eax, 7u32).ok();
        a.xor(ecx, ecx).ok();
        a.cpuid().ok();
        a.mov(esi, edx).ok();
        a.mov(ecx, 0x10Au32).ok();
        a.rdmsr().ok();
        let cpu = run_long_snippet(a);
        assert_ne!(cpu.gpr[6] & (1 << 29), 0, "CPUID.7:EDX.ARCH_CAPABILITIES");
        let v = cpu.gpr[0] | (cpu.gpr[2] << 32);
        assert_eq!(v, crate::cpu::cpuid::ARCH_CAPABILITIES);
        assert_eq!(v & 0b10_0001, 0b10_0001, "RDCL_NO and MDS_NO");
    }

    /// The MSR is read-only, and gone with `-cpu qemu64,-arch-capabilities`.
    #[test]
    fn arch_capabilities_write_or_absent_is_gp() {
        let mut a = CodeAssembler::new(64).expect("assembler");
        a.mov(ecx, 0x10Au32).ok();
        a.wrmsr().ok();
        let code = a.assemble(0x40_0000).expect("encode");
        let mut cpu = snippet_cpu(&code);
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(out.fault.map(|f| f.vector), Some(13), "WRMSR 10Ah");

        let mut a = CodeAssembler::new(64).expect("assembler");
        a.mov(ecx, 0x10Au32).ok();
        a.rdmsr().ok();
        let code = a.assemble(0x40_0000).expect("encode");
        let mut cpu = snippet_cpu(&code);
        assert!(cpu.features.remove("arch-capabilities"));
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(
            out.fault.map(|f| f.vector),
            Some(13),
            "RDMSR without the feature"
        );
    }

    /// Runs the assembled code at 0x400000 in 64-bit mode at CPL0 to its
    /// end; it must finish without a fault.
    fn run_long_snippet(mut a: CodeAssembler) -> Cpu {
        let code = a.assemble(0x40_0000).expect("encode");
        let mut cpu = snippet_cpu(&code);
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(out.fault, None);
        assert!(out.finished);
        cpu
    }

    /// A 64-bit CPL0 CPU with `code` at 0x400000 and RIP there.
    fn snippet_cpu(code: &[u8]) -> Cpu {
        let mut cpu = Cpu::new_bare(16 << 20);
        cpu.setup_long(0, 0x8000, &[(0x40_0000, 0x40_0000, false, false)]);
        cpu.mem.ram_mut()[0x40_0000..0x40_0000 + code.len()].copy_from_slice(code);
        cpu.rip = 0x40_0000;
        cpu
    }
}
