//! Virtual time makes runs reproducible: the built-in default guest (vx86's
//! BIOS booting its boot disk through INT 19h -> INT 13h) run twice with the
//! same instruction budget writes the same serial bytes and retires the same
//! number of instructions.

mod common;

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
    vx86::boot::builtin::load_bios(&mut m).expect("load");
    vx86::boot::builtin::attach_boot_disk(&mut m).expect("boot disk");
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
    assert!(
        text.contains(" vx86 boot disk  -  the built-in default guest\r\n"),
        "boot disk banner missing: {text}"
    );
    assert!(text.contains("Booted from drive 80h"), "{text}");
    assert!(
        text.contains("uptime 2 s  RTC 00:00:02"),
        "clock did not advance: {text}"
    );
    assert_eq!(na, nb);
    assert_eq!(a, b);
}

/// The command line the platform issue names: the built-in default guest,
/// headless, COM1 to a file, 200 million instructions, twice: same bytes.
#[test]
fn cli_default_guest_serial_file_is_identical_across_runs() {
    let dir = std::env::temp_dir();
    let mut outs = Vec::new();
    for i in 0..2 {
        let f = dir.join(format!("vx86-det-{}-{i}.txt", std::process::id()));
        let st = common::vx86()
            .args(["-display", "none", "--max-insns", "200000000"])
            .arg("-serial")
            .arg(format!("file:{}", f.display()))
            .stdin(std::process::Stdio::null())
            .status()
            .expect("run vx86");
        assert!(st.success());
        outs.push(std::fs::read(&f).expect("serial file"));
        let _ = std::fs::remove_file(&f);
    }
    assert!(outs[0].len() > 200, "the guest wrote its banner and clock");
    assert_eq!(outs[0], outs[1]);
}
