//! Transcendental instructions (placeholder).
use crate::cpu::decode::Op;
use crate::cpu::exec::system::op_unimplemented;
use crate::cpu::{Bus, Cpu, Res};

pub fn fsin(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn fcos(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn fsincos(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn fptan(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn fpatan(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn f2xm1(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn fyl2x(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
pub fn fyl2xp1(cpu: &mut Cpu, bus: &mut dyn Bus, op: &Op) -> Res {
    op_unimplemented(cpu, bus, op)
}
