//! vx86: a full-system x86 PC emulator in pure software.
//!
//! Layout follows `../shared/STYLE.md`: `cpu` (interpreter, block cache, MMU),
//! `memory` (guest physical memory), `io` (port bus), `devices` (one chip a file),
//! `machine` (the run loop), `gdb` (the gdb stub), `net` (network backends), `boot`, `frontend`, `conformance`.

pub mod block;
pub mod boot;
pub mod config;
pub mod conformance;
pub mod cpu;
pub mod devices;
pub mod frontend;
pub mod gdb;
pub mod io;
pub mod machine;
pub mod memory;
pub mod monitor;
pub mod net;
pub mod pci;
pub mod platform;
pub mod snapshot;
pub mod time;
