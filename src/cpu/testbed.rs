//! A CPU placed directly in a known mode, for running code snippets: the
//! conformance harnesses and unit tests use it. No firmware is involved; the
//! descriptor caches, control registers and page tables are set up the way a
//! small OS would leave them.

use super::state::*;
use super::{Cpu, Fault, NullBus};
use crate::memory::GuestMemory;

/// Result of a snippet run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnippetOutcome {
    pub fault: Option<Fault>,
    pub cr2: u64,
    /// False if the instruction budget ran out before reaching the end.
    pub finished: bool,
}

fn flat_seg(sel: u16, code: bool, dpl: u8, long: bool) -> Segment {
    let mut a = attr::P
        | attr::S
        | attr::G
        | attr::TYPE_ACCESSED
        | attr::TYPE_RW
        | ((dpl as u16) << attr::DPL_SHIFT);
    if code {
        a |= attr::TYPE_CODE | if long { attr::L } else { attr::DB };
    } else {
        a |= attr::DB;
    }
    Segment {
        selector: sel | dpl as u16,
        base: 0,
        limit: 0xFFFF_FFFF,
        attr: a,
    }
}

impl Cpu {
    /// A fresh CPU with `ram` bytes, nothing loaded.
    pub fn new_bare(ram: u64) -> Cpu {
        // The sizes used by callers are always valid; fall back to 16 MiB.
        let mem = GuestMemory::new_flat(ram).or_else(|_| GuestMemory::new_flat(16 << 20));
        match mem {
            Ok(m) => Cpu::new(m),
            Err(e) => panic!("cannot allocate test memory: {e}"),
        }
    }

    /// Real mode with the given CS:IP (segments base = selector << 4).
    pub fn setup_real(&mut self, cs: u16, ip: u16) {
        self.reset();
        self.load_seg_real(CS, cs);
        self.seg[CS].base = (cs as u64) << 4;
        self.rip = ip as u64;
    }

    /// IA-32e 64-bit mode at `cpl`, with identity... page tables mapping each
    /// (linear page, physical page, user, writable) in `maps`. Page tables live
    /// at physical `pt_base` (needs 64 KiB).
    pub fn setup_long(&mut self, cpl: u8, pt_base: u64, maps: &[(u64, u64, bool, bool)]) {
        self.reset();
        let mut next = pt_base + 0x1000;
        let pml4 = pt_base;
        let ram = self.mem.ram_mut();
        let rd = |ram: &mut [u8], a: u64| {
            u64::from_le_bytes(ram[a as usize..a as usize + 8].try_into().unwrap_or([0; 8]))
        };
        for b in ram[pt_base as usize..pt_base as usize + 0x10000].iter_mut() {
            *b = 0;
        }
        for &(lin, phys, user, write) in maps {
            let mut table = pml4;
            for level in (1..4).rev() {
                let idx = (lin >> (12 + 9 * level)) & 0x1FF;
                let ea = table + idx * 8;
                let mut e = rd(ram, ea);
                if e & 1 == 0 {
                    e = next | 0x7;
                    next += 0x1000;
                    ram[ea as usize..ea as usize + 8].copy_from_slice(&e.to_le_bytes());
                }
                table = e & !0xFFF;
            }
            let idx = (lin >> 12) & 0x1FF;
            let pte = (phys & !0xFFF) | 1 | if write { 2 } else { 0 } | if user { 4 } else { 0 };
            let ea = table + idx * 8;
            ram[ea as usize..ea as usize + 8].copy_from_slice(&pte.to_le_bytes());
        }
        self.cr3 = pml4;
        self.cr4 = cr4::PAE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT;
        self.efer = efer::LME | efer::LMA | efer::SCE | efer::NXE;
        self.cr0 = cr0::PE | cr0::PG | cr0::ET | cr0::NE | cr0::WP | cr0::MP;
        self.cpl = cpl;
        self.seg[CS] = flat_seg(if cpl == 3 { 0x30 } else { 0x08 }, true, cpl, true);
        let ds = flat_seg(if cpl == 3 { 0x28 } else { 0x10 }, false, cpl, false);
        for s in [SS, DS, ES, FS, GS] {
            self.seg[s] = ds;
        }
        self.update_mode();
        self.tlb.flush_all();
    }

    /// Runs from the current RIP until RIP == `end` (checked between
    /// instructions), an exception is raised (captured, not delivered), or
    /// `budget` instructions retire.
    pub fn run_snippet(&mut self, end: u64, budget: u64) -> SnippetOutcome {
        let mut bus = NullBus;
        self.capture_faults = true;
        self.captured = None;
        let saved = self.no_block_cache;
        self.no_block_cache = true;
        let mut finished = false;
        for _ in 0..budget {
            if self.rip == end {
                finished = true;
                break;
            }
            let target = self.icount + 1;
            self.run(&mut bus, target);
            if self.captured.is_some() {
                break;
            }
        }
        if self.rip == end && self.captured.is_none() {
            finished = true;
        }
        self.no_block_cache = saved;
        self.capture_faults = false;
        SnippetOutcome {
            fault: self.captured.take(),
            cr2: self.cr2,
            finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::code_asm::*;

    fn asm64(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>, ip: u64) -> Vec<u8> {
        let mut a = CodeAssembler::new(64).expect("64-bit assembler");
        f(&mut a).expect("assemble");
        a.assemble(ip).expect("encode")
    }

    fn long_cpu(code: &[u8]) -> Cpu {
        let mut cpu = Cpu::new_bare(16 << 20);
        cpu.setup_long(
            3,
            0x8000,
            &[
                (0x40_0000, 0x40_0000, true, false),
                (0x60_0000, 0x60_0000, true, true),
            ],
        );
        cpu.mem.ram_mut()[0x40_0000..0x40_0000 + code.len()].copy_from_slice(code);
        cpu.rip = 0x40_0000;
        cpu.gpr[4] = 0x60_0800;
        cpu
    }

    #[test]
    fn long_mode_alu_and_memory() {
        let code = asm64(
            |a| {
                a.mov(rax, 0x1234_5678_9abc_def0u64)?;
                a.mov(rbx, 0x60_0100u64)?;
                a.mov(qword_ptr(rbx + 8), rax)?;
                a.add(qword_ptr(rbx + 8), 0x10)?;
                a.mov(rcx, qword_ptr(rbx + 8))?;
                a.push(rcx)?;
                a.pop(rdx)?;
                a.xor(eax, eax)?;
                a.sub(eax, 1)?;
                a.setc(r8b)?;
                a.imul_3(r9, rdx, 3)?;
                Ok(())
            },
            0x40_0000,
        );
        let mut cpu = long_cpu(&code);
        let end = 0x40_0000 + code.len() as u64;
        let out = cpu.run_snippet(end, 100);
        assert_eq!(out.fault, None);
        assert!(out.finished);
        assert_eq!(cpu.gpr[1], 0x1234_5678_9abc_df00);
        assert_eq!(cpu.gpr[2], 0x1234_5678_9abc_df00);
        assert_eq!(cpu.gpr[0], 0xFFFF_FFFF);
        assert_eq!(cpu.gpr[8] & 0xFF, 1);
        assert_eq!(cpu.gpr[9], 0x1234_5678_9abc_df00u64.wrapping_mul(3));
        assert_eq!(cpu.gpr[4], 0x60_0800);
    }

    /// A block pushed out of its cache slot by another block (same slot) and
    /// then rewritten must not run again in its old form: the jump cache can
    /// still hold it, and the page's block list no longer finds it there.
    #[test]
    fn a_block_evicted_then_rewritten_runs_its_new_bytes() {
        let jump_idx =
            |rip: u64| ((rip ^ (rip >> 10)) as usize) & (super::super::decode::JUMP_CACHE - 1);
        let mut cpu = Cpu::new_bare(16 << 20);
        cpu.setup_long(0, 0x8000, &[]);
        let mode = cpu.mode_key();
        let a = 0x1100u64;
        let slot = super::super::block_cache::BlockCache::slot_of(a, mode);
        let (d1, d2, d3) = (0x2000u64, 0x2005u64, 0x200Cu64);
        let ret = d1 + 28; // after the second `call A`
        let used = [
            jump_idx(a),
            jump_idx(d1),
            jump_idx(d2),
            jump_idx(d3),
            jump_idx(ret),
        ];
        // The driver's blocks must not take A's jump-cache entry either.
        assert!(!used[1..].contains(&used[0]));
        let Some(b) = (0x10_0000u64..0xF0_0000).find(|&p| {
            super::super::block_cache::BlockCache::slot_of(p, mode) == slot
                && !used.contains(&jump_idx(p))
        }) else {
            panic!("no address shares block-cache slot {slot}");
        };
        let page = |x: u64| (x & !0xFFF, x & !0xFFF, false, true);
        cpu.setup_long(0, 0x8000, &[page(a), page(d1), page(0x3000), page(b)]);
        let ram = cpu.mem.ram_mut();
        // A: mov eax, 0x1111; ret
        ram[a as usize..a as usize + 6].copy_from_slice(&[0xB8, 0x11, 0x11, 0, 0, 0xC3]);
        // B: ret
        ram[b as usize] = 0xC3;
        let rel = |from_end: u64, to: u64| (to.wrapping_sub(from_end) as u32).to_le_bytes();
        let mut code = vec![0xE8];
        code.extend_from_slice(&rel(d1 + 5, a)); // d1: call A
        code.extend_from_slice(&[0x89, 0xC3]); // d2: mov ebx, eax
        code.push(0xE8);
        code.extend_from_slice(&rel(d2 + 7, b)); // call B (evicts A's block)
                                                 // d3: mov dword [0x1101], 0x2222 (A's immediate)
        code.extend_from_slice(&[0xC7, 0x04, 0x25, 0x01, 0x11, 0, 0, 0x22, 0x22, 0, 0]);
        let at = d1 + code.len() as u64;
        code.push(0xE8);
        code.extend_from_slice(&rel(at + 5, a)); // call A
        code.push(0xF4); // hlt
        assert_eq!(d3, d2 + 7);
        assert_eq!(ret, at + 5);
        ram[d1 as usize..d1 as usize + code.len()].copy_from_slice(&code);
        cpu.rip = d1;
        cpu.gpr[4] = 0x3800;
        let exit = cpu.run(&mut NullBus, 1000);
        assert!(matches!(exit, super::super::Exit::Halted), "{exit:?}");
        assert_eq!(cpu.gpr[3], 0x1111, "A before the write");
        assert_eq!(cpu.gpr[0], 0x2222, "A after the write ran its old bytes");
    }

    #[test]
    fn write_to_readonly_code_page_faults_with_pf() {
        let code = asm64(
            |a| {
                a.mov(rbx, 0x40_0000u64)?;
                a.mov(byte_ptr(rbx), 1)?;
                Ok(())
            },
            0x40_0000,
        );
        let mut cpu = long_cpu(&code);
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(
            out.fault,
            Some(Fault::code(super::super::vector::PF, 0b111))
        );
        assert_eq!(out.cr2, 0x40_0000);
    }

    #[test]
    fn divide_by_zero_is_de() {
        let code = asm64(
            |a| {
                a.xor(ecx, ecx)?;
                a.div(rcx)?;
                Ok(())
            },
            0x40_0000,
        );
        let mut cpu = long_cpu(&code);
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(out.fault.map(|f| f.vector), Some(0));
        assert_eq!(cpu.rip, 0x40_0002);
    }

    #[test]
    fn real_mode_string_and_loop() {
        let mut a = CodeAssembler::new(16).expect("16-bit assembler");
        a.mov(ax, 0x1000u32).ok();
        a.mov(es, ax).ok();
        a.xor(di, di).ok();
        a.mov(cx, 5u32).ok();
        a.mov(al, 0x41u32).ok();
        a.rep().stosb().ok();
        a.mov(si, 0u32).ok();
        a.mov(bx, 0u32).ok();
        a.mov(cx, 3u32).ok();
        let mut lbl = a.create_label();
        a.set_label(&mut lbl).ok();
        a.add(bx, 2u32).ok();
        a.loop_(lbl).ok();
        let code = a.assemble(0x100).expect("encode");
        let mut cpu = Cpu::new_bare(2 << 20);
        cpu.setup_real(0x0700, 0x100);
        cpu.mem.ram_mut()[0x7100..0x7100 + code.len()].copy_from_slice(&code);
        cpu.gpr[1] = 0;
        let out = cpu.run_snippet(0x100 + code.len() as u64, 1000);
        assert_eq!(out.fault, None);
        assert_eq!(&cpu.mem.ram()[0x10000..0x10006], b"AAAAA\0");
        assert_eq!(cpu.gpr[3] & 0xFFFF, 6);
        assert_eq!(cpu.gpr[1] & 0xFFFF, 0);
    }

    /// A bus whose interrupt controller always has vector 0x20 pending.
    struct PendingIntr;
    impl crate::cpu::Bus for PendingIntr {
        fn io_read(&mut self, _: u16, _: u8, _: u64) -> u32 {
            u32::MAX
        }
        fn io_write(&mut self, _: u16, _: u8, _: u32, _: u64) {}
        fn mmio_read(&mut self, _: u64, _: u8, _: u64) -> u64 {
            u64::MAX
        }
        fn mmio_write(&mut self, _: u64, _: u8, _: u64, _: u64) {}
        fn intr_pending(&mut self) -> bool {
            true
        }
        fn intr_ack(&mut self) -> u8 {
            0x20
        }
    }

    #[test]
    fn sti_nop_cli_opens_an_interrupt_window_after_the_shadow() {
        // 0100: sti; nop; cli; hlt -- a pending interrupt must be taken after
        // the NOP (the STI shadow covers exactly one instruction), so the
        // handler at 0000:0500 runs with the return address 0102.
        let code = [0xFB, 0x90, 0xFA, 0xF4];
        let mut cpu = Cpu::new_bare(2 << 20);
        cpu.setup_real(0, 0x100);
        cpu.mem.ram_mut()[0x100..0x104].copy_from_slice(&code);
        cpu.mem.ram_mut()[0x80..0x84].copy_from_slice(&[0x00, 0x05, 0x00, 0x00]);
        cpu.mem.ram_mut()[0x500] = 0xF4; // handler: hlt
        cpu.gpr[4] = 0x7000;
        let _ = cpu.run(&mut PendingIntr, 20);
        assert_eq!(cpu.rip, 0x501, "the handler ran (and halted)");
        let ret = u16::from_le_bytes([cpu.mem.ram()[0x6FFA], cpu.mem.ram()[0x6FFB]]);
        assert_eq!(ret, 0x102, "interrupted after NOP, before CLI");
    }

    /// A real-mode CPU at 0000:0100 running `code` with DS = ES = 0x2000.
    fn real_string_cpu(code: &[u8]) -> Cpu {
        let mut cpu = Cpu::new_bare(2 << 20);
        cpu.setup_real(0, 0x100);
        cpu.mem.ram_mut()[0x100..0x100 + code.len()].copy_from_slice(code);
        cpu.load_seg_real(DS, 0x2000);
        cpu.load_seg_real(ES, 0x3000);
        cpu
    }

    /// REP MOVSW reaching offset 0xFFFF: the words before it are copied, then
    /// the word at 0xFFFF (beyond the 64 KiB limit) raises #GP with SI, DI and
    /// CX as they were for that iteration (SDM Vol. 2B REP; SingleStepTests
    /// A5 #644 showed the fault raised before any iteration).
    #[test]
    fn rep_movsw_faults_at_the_word_crossing_the_segment_limit() {
        let mut cpu = real_string_cpu(&[0xF3, 0xA5]);
        for i in 0..0x13 {
            cpu.mem.ram_mut()[0x2FFED + i] = 0x10 + i as u8;
        }
        cpu.gpr[6] = 0xFFED;
        cpu.gpr[7] = 0x5F89;
        cpu.gpr[1] = 0x28;
        let out = cpu.run_snippet(0x102, 100);
        assert_eq!(out.fault.map(|f| f.vector), Some(13));
        assert_eq!(cpu.rip, 0x100, "IP at the REP instruction");
        assert_eq!(
            (cpu.gpr[1], cpu.gpr[6], cpu.gpr[7]),
            (0x1F, 0xFFFF, 0x5F9B),
            "nine words moved"
        );
        assert_eq!(
            &cpu.mem.ram()[0x35F89..0x35F9B],
            &cpu.mem.ram()[0x2FFED..0x2FFFF].to_vec()[..]
        );
        assert_eq!(
            cpu.mem.ram()[0x35F9B],
            0,
            "the faulting word was not stored"
        );
    }

    /// REP STOSW up to DI = 0xFFFF: same rule for the bulk store path.
    #[test]
    fn rep_stosw_faults_at_the_word_crossing_the_segment_limit() {
        let mut cpu = real_string_cpu(&[0xF3, 0xAB]);
        cpu.gpr[0] = 0xBEEF;
        cpu.gpr[7] = 0xFFF1;
        cpu.gpr[1] = 100;
        let out = cpu.run_snippet(0x102, 100);
        assert_eq!(out.fault.map(|f| f.vector), Some(13));
        assert_eq!((cpu.gpr[1], cpu.gpr[7]), (93, 0xFFFF), "seven words stored");
        assert_eq!(&cpu.mem.ram()[0x3FFFD..0x40000], &[0xEF, 0xBE, 0]);
        // DI = 0xFFFE: the last word fits exactly and the REP completes there.
        let mut cpu = real_string_cpu(&[0xF3, 0xAB]);
        cpu.gpr[0] = 0x1234;
        cpu.gpr[7] = 0xFFF0;
        cpu.gpr[1] = 8;
        let out = cpu.run_snippet(0x102, 100);
        assert_eq!(out.fault, None);
        assert_eq!((cpu.gpr[1], cpu.gpr[7]), (0, 0));
        assert_eq!(&cpu.mem.ram()[0x3FFFE..0x40000], &[0x34, 0x12]);
    }

    fn string_cpu(code: &[u8]) -> Cpu {
        let mut cpu = Cpu::new_bare(16 << 20);
        cpu.setup_long(
            3,
            0x8000,
            &[
                (0x40_0000, 0x40_0000, true, false),
                (0x60_0000, 0x60_0000, true, true),
                (0x60_1000, 0x60_1000, true, true),
            ],
        );
        cpu.mem.ram_mut()[0x40_0000..0x40_0000 + code.len()].copy_from_slice(code);
        cpu.rip = 0x40_0000;
        cpu.gpr[4] = 0x60_0800;
        cpu
    }

    #[test]
    fn rep_movs_with_overlap_copies_element_by_element() {
        let code = asm64(
            |a| {
                a.rep().movsb()?;
                a.mov(rsi, 0x60_0200u64)?;
                a.mov(rdi, 0x60_0204u64)?;
                a.mov(ecx, 4)?;
                a.rep().movsq()?;
                Ok(())
            },
            0x40_0000,
        );
        let mut cpu = string_cpu(&code);
        for i in 0..0x200 {
            cpu.mem.ram_mut()[0x60_0100 + i] = (i % 251) as u8 + 1;
        }
        let mut expect: Vec<u8> = cpu.mem.ram()[0x60_0200..0x60_0240].to_vec();
        for e in 0..4 {
            let v: [u8; 8] = expect[e * 8..e * 8 + 8].try_into().unwrap();
            expect[4 + e * 8..12 + e * 8].copy_from_slice(&v);
        }
        cpu.gpr[6] = 0x60_0100;
        cpu.gpr[7] = 0x60_0101;
        cpu.gpr[1] = 31;
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(out.fault, None);
        // dst = src + 1: the first byte propagates through the whole run.
        assert!(cpu.mem.ram()[0x60_0100..0x60_0120].iter().all(|&b| b == 1));
        assert_eq!(cpu.mem.ram()[0x60_0120], 0x21);
        assert_eq!(&cpu.mem.ram()[0x60_0200..0x60_0240], &expect[..]);
        assert_eq!(
            (cpu.gpr[1], cpu.gpr[6], cpu.gpr[7]),
            (0, 0x60_0220, 0x60_0224)
        );
    }

    #[test]
    fn rep_stos_faulting_on_the_next_page_keeps_the_completed_part() {
        let code = asm64(|a| a.rep().stosd(), 0x40_0000);
        let mut cpu = string_cpu(&code);
        cpu.gpr[0] = 0xA1B2_C3D4;
        cpu.gpr[7] = 0x60_1FF0;
        cpu.gpr[1] = 10;
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(out.fault.map(|f| f.vector), Some(14));
        assert_eq!(cpu.cr2, 0x60_2000);
        assert_eq!((cpu.gpr[1], cpu.gpr[7]), (6, 0x60_2000), "four stores done");
        assert_eq!(cpu.rip, 0x40_0000, "RIP at the REP instruction");
        for i in 0..4 {
            let at = 0x60_1FF0 + i * 4;
            let v = u32::from_le_bytes(cpu.mem.ram()[at..at + 4].try_into().unwrap());
            assert_eq!(v, 0xA1B2_C3D4);
        }
    }

    #[test]
    fn hint_nops_of_unadvertised_extensions_execute_as_nops() {
        // endbr64; endbr32; rdsspq rax (NOP without CET); bndmk bnd0,[rax];
        // cldemote [rax]; mov ebx, 7
        let code = [
            0xF3, 0x0F, 0x1E, 0xFA, 0xF3, 0x0F, 0x1E, 0xFB, 0xF3, 0x48, 0x0F, 0x1E, 0xC8, 0xF3,
            0x0F, 0x1B, 0x00, 0x0F, 0x1C, 0x00, 0xBB, 0x07, 0x00, 0x00, 0x00,
        ];
        let mut cpu = long_cpu(&code);
        cpu.gpr[0] = 0x1234;
        let out = cpu.run_snippet(0x40_0000 + code.len() as u64, 100);
        assert_eq!(out.fault, None);
        assert_eq!((cpu.gpr[0], cpu.gpr[3]), (0x1234, 7));
    }
}
