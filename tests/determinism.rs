//! Virtual time makes runs reproducible: the built-in BIOS guest run twice
//! with the same instruction budget writes the same serial bytes and retires
//! the same number of instructions.

use std::sync::{Arc, Mutex};
use vx86::machine::{Machine, MachineConfig, RunExit};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run_once(insns: u64) -> (Vec<u8>, u64) {
    let cfg = MachineConfig {
        max_insns: Some(insns),
        ..MachineConfig::default()
    };
    let mut m = Machine::new(cfg).expect("machine");
    let bios =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/firmware/bios.bin")).expect("bios");
    m.cpu.mem.load_bios("bios.bin", &bios).expect("load");
    let cap = Capture::default();
    m.sinks.serial = Some(Box::new(cap.clone()));
    assert_eq!(m.run(), RunExit::InstructionLimit);
    let out = cap.0.lock().expect("lock").clone();
    (out, m.cpu.icount)
}

#[test]
fn same_inputs_same_serial_bytes_and_counts() {
    let (a, na) = run_once(3_000_000_000);
    let (b, nb) = run_once(3_000_000_000);
    let text = String::from_utf8_lossy(&a);
    assert!(text.contains("vx86 BIOS"), "banner missing: {text}");
    assert!(text.contains("uptime 2 s"), "clock did not advance: {text}");
    assert_eq!(na, nb);
    assert_eq!(a, b);
}
