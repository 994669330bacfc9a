//! Guest time as QEMU keeps it (issue: "real time by default, determinism on
//! request"). `test-roms/timing.asm` prints the RTC's date, then waits two
//! seconds of PIT time busy (polling the counter with interrupts off) and
//! two idle (HLT until 36 IRQ0 ticks of 54.9 ms). By default guest time follows the
//! host's clock, so each wait takes two seconds of wall time and the RTC
//! reads the host's date; under `-icount` the same ROM runs on instruction
//! time with the fixed RTC start.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROM_ARGS: [&str; 9] = [
    "-debugcon",
    "stdio",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
    "-display",
    "none",
    "-serial",
    "none",
    "-bios",
];

fn rom() -> String {
    format!("{}/test-roms/timing.bin", env!("CARGO_MANIFEST_DIR"))
}

/// Today's UTC date as the ROM prints it (`20YY-MM-DD`).
fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}")
}

#[test]
fn default_time_follows_the_host_clock() {
    let date_before = utc_date();
    let mut child = common::vx86_host_time()
        .args(ROM_ARGS)
        .arg(rom())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run vx86");
    let out = child.stdout.take().expect("stdout");
    let mut marks: Vec<(String, Instant)> = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("read");
        marks.push((line, Instant::now()));
    }
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(1), "isa-debug-exit 0: {marks:?}");
    let date_after = utc_date();
    let at = |name: &str| {
        marks
            .iter()
            .find(|(l, _)| l == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no {name} line in {marks:?}"))
    };
    let rtc = &marks[0].0;
    assert!(
        rtc.starts_with(&format!("RTC {date_before} "))
            || rtc.starts_with(&format!("RTC {date_after} ")),
        "the RTC starts at the host's UTC date ({date_before}): {rtc}"
    );
    for (phase, start, end) in [
        ("busy-waiting on the PIT counter", "BUSY START", "BUSY END"),
        ("halted until 36 PIT interrupts", "IDLE START", "IDLE END"),
    ] {
        let took = at(end) - at(start);
        eprintln!("{phase}: {took:?} of wall time for 2 s of guest time");
        assert!(
            took >= Duration::from_millis(1600) && took <= Duration::from_millis(2400),
            "{phase}: 2 s of guest time took {took:?} of host time (want 2 s +- 20%)"
        );
    }
}

#[test]
fn icount_time_is_instruction_time_with_a_fixed_rtc() {
    // 2^10 ns per instruction: the 4 s of guest time are about 4 M
    // instructions, however long they take on the host.
    let out = common::vx86_host_time()
        .args(["-icount", "shift=10,sleep=off", "--stats"])
        .args(ROM_ARGS)
        .arg(rom())
        .output()
        .expect("run vx86");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text,
        "RTC 2026-01-01 00:00:00\nBUSY START\nBUSY END\nIDLE START\nIDLE END\n"
    );
    // Deterministic: the same run twice retires the same instructions.
    let stats = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .split_whitespace()
            .nth(2)
            .map(str::to_string)
    };
    let again = common::vx86_host_time()
        .args(["-icount", "shift=10,sleep=off", "--stats"])
        .args(ROM_ARGS)
        .arg(rom())
        .output()
        .expect("run vx86");
    assert!(stats(&out).is_some());
    assert_eq!(stats(&out), stats(&again), "{:?}", out.stderr);
}

#[test]
fn rtc_base_option_sets_the_date() {
    let out = common::vx86()
        .args(["-rtc", "base=2030-06-15T12:34:56"])
        .args(ROM_ARGS)
        .arg(rom())
        .args(["--max-insns", "5000"])
        .output()
        .expect("run vx86");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("RTC 2030-06-15 12:34:56\n"), "{text}");
}
