//! The vx86 CPU behind the conformance traits: a [`Cpu`] placed directly in
//! the mode each harness needs (see `cpu::testbed`).

use super::singlestep::{RealModeCpu, RealModeEvent, RealModeResult, Regs286};
use super::{FxImage, NativeOutcome, UserModeCpu, UserState, CODE_ADDR};
use crate::cpu::exception::Source;
use crate::cpu::state::*;
use crate::cpu::Cpu;

/// Physical addresses the 64-bit user harness maps the code and data to.
const CODE_PHYS: u64 = 0x20_0000;
const DATA_PHYS: u64 = 0x30_0000;
const PT_PHYS: u64 = 0x10_0000;

pub struct Vx86User {
    cpu: Cpu,
    pub no_block_cache: bool,
}

impl Default for Vx86User {
    fn default() -> Self {
        Vx86User {
            cpu: Cpu::new_bare(8 << 20),
            no_block_cache: false,
        }
    }
}

impl Vx86User {
    /// Runs every test instruction through the JIT tier (each one-instruction
    /// block compiled on its first run) instead of the interpreter.
    pub fn with_jit(mut self) -> Result<Self, String> {
        self.cpu.set_jit(Some(1))?;
        Ok(self)
    }
}

impl UserModeCpu for Vx86User {
    fn run_user64(&mut self, code: &[u8], state: &UserState) -> NativeOutcome {
        self.run_user(code, state, false)
    }

    fn run_user32(&mut self, code: &[u8], state: &UserState) -> Option<NativeOutcome> {
        Some(self.run_user(code, state, true))
    }
}

impl Vx86User {
    /// Runs `code` at CPL3 in 64-bit mode or, with `compat`, in compatibility
    /// mode (a 32-bit code segment under IA-32e paging, as Linux's CS 0x23).
    fn run_user(&mut self, code: &[u8], state: &UserState, compat: bool) -> NativeOutcome {
        let cpu = &mut self.cpu;
        let pages = state.data.len().div_ceil(4096).clamp(1, 16) as u64;
        let mut maps = vec![(CODE_ADDR, CODE_PHYS, true, false)];
        for i in 0..pages {
            maps.push((state.data_addr + i * 4096, DATA_PHYS + i * 4096, true, true));
        }
        cpu.setup_long(3, PT_PHYS, &maps);
        {
            let ram = cpu.mem.ram_mut();
            ram[CODE_PHYS as usize..CODE_PHYS as usize + 4096].fill(0xCC);
            let n = code.len().min(4096);
            ram[CODE_PHYS as usize..CODE_PHYS as usize + n].copy_from_slice(&code[..n]);
            let d = state.data.len().min(pages as usize * 4096);
            ram[DATA_PHYS as usize..DATA_PHYS as usize + d].copy_from_slice(&state.data[..d]);
        }
        if compat {
            cpu.seg[CS].attr = (cpu.seg[CS].attr & !attr::L) | attr::DB;
            cpu.update_mode();
        }
        cpu.gpr = state.gpr;
        cpu.flags.set(state.rflags);
        cpu.rip = CODE_ADDR;
        state.fx.to_state(&mut cpu.fpu);
        let out = cpu.run_snippet(CODE_ADDR + code.len() as u64, 100_000);
        let d = state.data.len().min(pages as usize * 4096);
        let data = cpu.mem.ram()[DATA_PHYS as usize..DATA_PHYS as usize + d].to_vec();
        let exception = out
            .fault
            .map(|f| (f.vector, if f.vector == 14 { Some(out.cr2) } else { None }));
        NativeOutcome {
            gpr: cpu.gpr,
            rflags: cpu.flags.get(),
            data,
            exception,
            fx: FxImage::from_state(&cpu.fpu),
        }
    }
}

/// Real-mode CPU for the SingleStepTests 80286 vectors.
pub struct Vx86Real {
    cpu: Cpu,
    touched: Vec<u32>,
}

impl Default for Vx86Real {
    fn default() -> Self {
        Vx86Real {
            cpu: Cpu::new_bare(16 << 20),
            touched: Vec::new(),
        }
    }
}

impl Vx86Real {
    /// Runs every test instruction through the JIT tier (see
    /// [`Vx86User::with_jit`]).
    pub fn with_jit(mut self) -> Result<Self, String> {
        self.cpu.set_jit(Some(1))?;
        Ok(self)
    }
}

impl RealModeCpu for Vx86Real {
    fn run_test(&mut self, regs: &Regs286, ram: &[(u32, u8)]) -> RealModeResult {
        let cpu = &mut self.cpu;
        // Undo the previous test's writes cheaply: clear the bytes it set.
        {
            let mem = cpu.mem.ram_mut();
            for &a in &self.touched {
                if let Some(b) = mem.get_mut(a as usize) {
                    *b = 0;
                }
            }
        }
        self.touched.clear();
        cpu.setup_real(regs.cs, regs.ip);
        cpu.idtr = DescTable {
            base: 0,
            limit: 0x3FF,
        };
        for (s, v) in [(ES, regs.es), (SS, regs.ss), (DS, regs.ds)] {
            cpu.load_seg_real(s, v);
        }
        cpu.gpr = [0; 16];
        for (i, v) in [
            regs.ax, regs.cx, regs.dx, regs.bx, regs.sp, regs.bp, regs.si, regs.di,
        ]
        .iter()
        .enumerate()
        {
            cpu.gpr[i] = *v as u64;
        }
        cpu.flags.set(regs.flags as u64 & 0x0FFF);
        {
            let mem = cpu.mem.ram_mut();
            for &(a, v) in ram {
                if let Some(b) = mem.get_mut(a as usize) {
                    *b = v;
                }
            }
        }
        self.touched.extend(ram.iter().map(|&(a, _)| a));
        // Run one instruction at a time until a HLT retires (the CPU halts) or the
        // budget runs out. Faults and INT n are captured first, so the harness
        // learns which vector was raised where, then delivered as usual.
        let mut bus = crate::cpu::NullBus;
        let mut events = Vec::new();
        cpu.halted = false;
        cpu.no_block_cache = true;
        cpu.capture_faults = true;
        for _ in 0..300 {
            if cpu.halted {
                break;
            }
            cpu.captured = None;
            let t = cpu.icount + 1;
            cpu.run(&mut bus, t);
            if let Some(f) = cpu.captured.take() {
                events.push(RealModeEvent {
                    vector: f.vector,
                    cs: cpu.seg[CS].selector,
                    ip: cpu.rip as u16,
                });
                cpu.capture_faults = false;
                let delivered = cpu.deliver_event(&mut bus, f.vector, Source::Fault(f.error()));
                cpu.capture_faults = true;
                if delivered.is_err() {
                    // Triple fault: the 286 would shut down; nothing more runs.
                    break;
                }
            }
        }
        cpu.capture_faults = false;
        let g = |i: usize| cpu.gpr[i] as u16;
        let fl = cpu.flags.get() as u16;
        RealModeResult {
            regs: Regs286 {
                ax: g(0),
                bx: g(3),
                cx: g(1),
                dx: g(2),
                cs: cpu.seg[CS].selector,
                ss: cpu.seg[SS].selector,
                ds: cpu.seg[DS].selector,
                es: cpu.seg[ES].selector,
                sp: g(4),
                bp: g(5),
                si: g(6),
                di: g(7),
                ip: cpu.rip as u16,
                flags: fl,
            },
            halted: cpu.halted,
            events,
        }
    }

    fn implements(&mut self, bytes: &[u8]) -> bool {
        crate::cpu::decode::is_implemented(bytes, 16)
    }

    fn read_byte(&mut self, addr: u32) -> u8 {
        self.touched.push(addr);
        self.cpu
            .mem
            .ram()
            .get(addr as usize)
            .copied()
            .unwrap_or(0xFF)
    }
}
