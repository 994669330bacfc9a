//! IN/OUT with the I/O permission checks of protected and V86 mode
//! (SDM Vol. 1 19.5: IOPL, then the TSS I/O permission bitmap).

use crate::cpu::decode::{Op, K_IMM};
use crate::cpu::flags::size_mask;
use crate::cpu::state::rflags::VM;
use crate::cpu::{Bus, Cpu, Fault, Res};

impl Cpu {
    /// #GP(0) unless the current privilege may access `size` ports at `port`.
    pub fn check_io(&mut self, bus: &mut dyn Bus, port: u16, size: u8) -> Res {
        let vm = self.flags.bits & VM != 0;
        let real = !self.pmode && !vm;
        if real || (!vm && self.cpl <= self.iopl()) {
            return Ok(());
        }
        // 32/64-bit TSS only: the bitmap offset is at 0x66.
        if self.tr.attr & 0xF != 0xB && self.tr.attr & 0xF != 0x9 {
            return Err(Fault::gp(0));
        }
        if self.tr.limit < 0x67 {
            return Err(Fault::gp(0));
        }
        let base = self.read_sys(bus, self.tr.base + 0x66, 2)?;
        let byte = base + (port as u64 >> 3);
        if byte + 1 > self.tr.limit as u64 {
            return Err(Fault::gp(0));
        }
        let bits = self.read_sys(bus, self.tr.base + byte, 2)?;
        let mask = ((1u64 << size) - 1) << (port & 7);
        if bits & mask != 0 {
            return Err(Fault::gp(0));
        }
        Ok(())
    }
}

fn port_of(cpu: &Cpu, op: &Op, k: u8) -> u16 {
    if k == K_IMM {
        (op.imm & 0xFF) as u16
    } else {
        cpu.gpr[2] as u16
    }
}

pub fn in_(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let sz = op.osz;
    let port = port_of(cpu, op, op.o[1]);
    cpu.check_io(bus, port, sz)?;
    let v = bus.io_read(port, sz, cpu.icount) as u64 & size_mask(sz);
    cpu.intr_recheck = true;
    cpu.set_reg(0, sz, v);
    Ok(())
}

pub fn out(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    let port = port_of(cpu, op, op.o[0]);
    let sz = if op.o[1] < 20 {
        cpu_reg_size(op)
    } else {
        op.osz
    };
    cpu.check_io(bus, port, sz)?;
    let v = cpu.reg(0, sz);
    bus.io_write(port, sz, v as u32, cpu.icount);
    cpu.intr_recheck = true;
    if bus.needs_attention() {
        cpu.stop_request = true;
    }
    Ok(())
}

fn cpu_reg_size(op: &Op) -> u8 {
    op.ins.op1_register().size() as u8
}
