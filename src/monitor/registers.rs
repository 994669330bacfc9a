//! `info registers` in QEMU's layout (`x86_cpu_dump_state` with
//! `CPU_DUMP_FPU`), so scripts that read QEMU's dump read vx86's: 64-bit
//! names and widths while CS is a 64-bit code segment, 32-bit ones otherwise;
//! segment caches as selector, base, limit and descriptor flags (bits 8..23
//! of the descriptor's high dword) with QEMU's decoding after them.

use crate::cpu::state::{attr, efer, rflags, Segment, CS, DS, ES, FS, GS, SS};
use crate::cpu::Cpu;
use std::fmt::Write;

/// The descriptor's high-dword flags as QEMU keeps them (`SegmentCache.flags`
/// masked with 0x00ffff00): type, S, DPL, P, limit 19:16, AVL, L, D/B, G.
fn desc_flags(s: &Segment) -> u32 {
    let raw_limit = if s.attr & attr::G != 0 {
        s.limit >> 12
    } else {
        s.limit
    };
    let low = u32::from(s.attr & 0xff) << 8;
    let high = u32::from(s.attr & 0xf000) << 8;
    low | ((raw_limit >> 16) & 0xf) << 16 | high
}

/// One segment line, as QEMU's `cpu_x86_dump_seg_cache`.
fn seg_line(out: &mut String, cpu: &Cpu, name: &str, s: &Segment, wide: bool) {
    let flags = desc_flags(s);
    if wide {
        let _ = write!(
            out,
            "{name:<3}={:04x} {:016x} {:08x} {:08x}",
            s.selector, s.base, s.limit, flags
        );
    } else {
        let _ = write!(
            out,
            "{name:<3}={:04x} {:08x} {:08x} {:08x}",
            s.selector, s.base as u32, s.limit, flags
        );
    }
    let lma = cpu.efer & efer::LMA != 0;
    if cpu.pmode && s.present() {
        let _ = write!(out, " DPL={} ", s.dpl());
        if s.attr & attr::S != 0 {
            if s.attr & attr::TYPE_CODE != 0 {
                out.push_str(if s.long() {
                    "CS64"
                } else if s.big() {
                    "CS32"
                } else {
                    "CS16"
                });
                let c = if s.attr & attr::TYPE_EC != 0 {
                    'C'
                } else {
                    '-'
                };
                let r = if s.attr & attr::TYPE_RW != 0 {
                    'R'
                } else {
                    '-'
                };
                let _ = write!(out, " [{c}{r}");
            } else {
                out.push_str(if s.big() || lma { "DS  " } else { "DS16" });
                let e = if s.attr & attr::TYPE_EC != 0 {
                    'E'
                } else {
                    '-'
                };
                let w = if s.attr & attr::TYPE_RW != 0 {
                    'W'
                } else {
                    '-'
                };
                let _ = write!(out, " [{e}{w}");
            }
            let a = if s.attr & attr::TYPE_ACCESSED != 0 {
                'A'
            } else {
                '-'
            };
            let _ = write!(out, "{a}]");
        } else {
            const LEGACY: [&str; 16] = [
                "Reserved",
                "TSS16-avl",
                "LDT",
                "TSS16-busy",
                "CallGate16",
                "TaskGate",
                "IntGate16",
                "TrapGate16",
                "Reserved",
                "TSS32-avl",
                "Reserved",
                "TSS32-busy",
                "CallGate32",
                "Reserved",
                "IntGate32",
                "TrapGate32",
            ];
            const LONG: [&str; 16] = [
                "<hiword>",
                "Reserved",
                "LDT",
                "Reserved",
                "Reserved",
                "Reserved",
                "Reserved",
                "Reserved",
                "Reserved",
                "TSS64-avl",
                "Reserved",
                "TSS64-busy",
                "CallGate64",
                "Reserved",
                "IntGate64",
                "TrapGate64",
            ];
            let names = if lma { &LONG } else { &LEGACY };
            out.push_str(names[usize::from(s.attr & 0xf)]);
        }
    }
    out.push('\n');
}

/// The whole dump, starting with QEMU's `\nCPU#0\n` header.
pub fn dump(cpu: &Cpu) -> String {
    let mut out = String::from("\nCPU#0\n");
    let wide = cpu.long64;
    let g = &cpu.gpr;
    let fl = cpu.rflags();
    let bit = |f: u64, c: char| if fl & f != 0 { c } else { '-' };
    let flag_str: String = [
        bit(rflags::DF, 'D'),
        bit(rflags::OF, 'O'),
        bit(rflags::SF, 'S'),
        bit(rflags::ZF, 'Z'),
        bit(rflags::AF, 'A'),
        bit(rflags::PF, 'P'),
        bit(rflags::CF, 'C'),
    ]
    .iter()
    .collect();
    let a20 = u8::from(cpu.a20_mask & (1 << 20) != 0);
    let tail = format!(
        "[{flag_str}] CPL={} II={} A20={a20} SMM=0 HLT={}",
        cpu.cpl,
        u8::from(cpu.shadow),
        u8::from(cpu.halted)
    );
    if wide {
        let _ = writeln!(
            out,
            "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}",
            g[0], g[3], g[1], g[2]
        );
        let _ = writeln!(
            out,
            "RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}",
            g[6], g[7], g[5], g[4]
        );
        let _ = writeln!(
            out,
            "R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}",
            g[8], g[9], g[10], g[11]
        );
        let _ = writeln!(
            out,
            "R12={:016x} R13={:016x} R14={:016x} R15={:016x}",
            g[12], g[13], g[14], g[15]
        );
        let _ = writeln!(out, "RIP={:016x} RFL={:08x} {tail}", cpu.rip, fl as u32);
    } else {
        let d = |i: usize| g[i] as u32;
        let _ = writeln!(
            out,
            "EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}",
            d(0),
            d(3),
            d(1),
            d(2)
        );
        let _ = writeln!(
            out,
            "ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x}",
            d(6),
            d(7),
            d(5),
            d(4)
        );
        let _ = writeln!(
            out,
            "EIP={:08x} EFL={:08x} {tail}",
            cpu.rip as u32, fl as u32
        );
    }
    for (name, i) in [
        ("ES", ES),
        ("CS", CS),
        ("SS", SS),
        ("DS", DS),
        ("FS", FS),
        ("GS", GS),
    ] {
        seg_line(&mut out, cpu, name, &cpu.seg[i], wide);
    }
    seg_line(&mut out, cpu, "LDT", &cpu.ldtr, wide);
    seg_line(&mut out, cpu, "TR", &cpu.tr, wide);
    for (name, t) in [("GDT", &cpu.gdtr), ("IDT", &cpu.idtr)] {
        if wide {
            let _ = writeln!(out, "{name}=     {:016x} {:08x}", t.base, t.limit);
        } else {
            let _ = writeln!(out, "{name}=     {:08x} {:08x}", t.base as u32, t.limit);
        }
    }
    if wide {
        let _ = writeln!(
            out,
            "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}",
            cpu.cr0 as u32, cpu.cr2, cpu.cr3, cpu.cr4 as u32
        );
    } else {
        let _ = writeln!(
            out,
            "CR0={:08x} CR2={:08x} CR3={:08x} CR4={:08x}",
            cpu.cr0 as u32, cpu.cr2 as u32, cpu.cr3 as u32, cpu.cr4 as u32
        );
    }
    for i in 0..4 {
        let _ = write!(out, "DR{i}={:016x} ", cpu.dr[i]);
    }
    let _ = writeln!(out, "\nDR6={:016x} DR7={:016x}", cpu.dr[6], cpu.dr[7]);
    let _ = writeln!(out, "EFER={:016x}", cpu.efer);
    let f = &cpu.fpu;
    let top = (f.fsw >> 11) & 7;
    // QEMU's abridged tag: bit i set when physical register i is not empty.
    let ftw = (0..8).fold(0u8, |t, i| {
        if (f.ftw >> (2 * i)) & 3 != 3 {
            t | 1 << i
        } else {
            t
        }
    });
    let _ = writeln!(
        out,
        "FCW={:04x} FSW={:04x} [ST={top}] FTW={ftw:02x} MXCSR={:08x}",
        f.fcw, f.fsw, f.mxcsr
    );
    for (i, r) in f.st.iter().enumerate() {
        let _ = write!(out, "FPR{i}={:016x} {:04x}", r.signif, r.sign_exp);
        out.push(if i & 1 == 1 { '\n' } else { ' ' });
    }
    let xmms = if wide { 16 } else { 8 };
    for (i, x) in f.xmm.iter().take(xmms).enumerate() {
        let _ = write!(
            out,
            "XMM{i:02}={:016x} {:016x}",
            (x >> 64) as u64,
            *x as u64
        );
        out.push(if i & 1 == 1 { '\n' } else { ' ' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_descriptor_flags_keep_the_limit_nibble() {
        let s = Segment {
            selector: 8,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0x9b | attr::DB | attr::G,
        };
        assert_eq!(desc_flags(&s), 0x00cf_9b00);
        let real = Segment {
            selector: 0xf000,
            base: 0xf0000,
            limit: 0xffff,
            attr: 0x93,
        };
        assert_eq!(desc_flags(&real), 0x0000_9300);
    }
}
