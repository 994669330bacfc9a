//! The mission end to end: Debian's stock amd64 kernel boots in vx86 and runs
//! containers (issue "a stock Debian amd64 VM running containers inside vx86").
//!
//! The guests come from `scripts/build-guest.sh` (Debian packages, cached under
//! `$VX86_GUEST_CACHE`, default `./guest-cache`); `.ci/run` builds them. When
//! they are absent these tests say so and skip.

mod common;

use common::guest::{assert_in_order, ctr_guest_args, disk_guest_args, run_guest};
use std::time::Duration;

/// Minutes a guest may take before the test gives up (debug builds are slower).
const LIMIT: Duration = Duration::from_secs(40 * 60);

/// The container guest, booted twice: the markers in order, and (virtual time
/// from retired instructions, no real-time sync) byte-identical serial logs,
/// kernel timestamps included.
#[test]
fn initramfs_guest_runs_a_container_with_cgroup_limits() {
    let Some(args) = ctr_guest_args() else {
        return;
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, log) = run_guest(&args, LIMIT);
    assert_in_order(
        &log,
        &[
            "GUEST-BOOT-OK",
            "CONTAINER-OK hostname=vx86-ctr pid=1",
            "fork rejected by pids controller",
            "PIDS-LIMIT-OK fork refused",
            "container exited with status 0",
            "GUEST-DONE",
        ],
    );
    assert_eq!(status, Some(0), "vx86 exit status\n{log}");
    assert!(log.contains("[    0.000000] Linux version 6."), "{log}");

    let (status2, log2) = run_guest(&args, LIMIT);
    assert_eq!(status2, status, "second run's exit status");
    if log2 != log {
        let line = log
            .lines()
            .zip(log2.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(log.lines().count().min(log2.lines().count()));
        panic!(
            "two runs differ from serial line {}: {:?} vs {:?}",
            line + 1,
            log.lines().nth(line),
            log2.lines().nth(line)
        );
    }
}

#[test]
fn disk_guest_runs_an_oci_container_with_crun() {
    let Some((args, _)) = disk_guest_args() else {
        return;
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, log) = run_guest(&args, LIMIT);
    assert_in_order(
        &log,
        &[
            "DISK-ROOT-OK",
            "DEBIAN-ROOTFS-OK",
            "OCI-CONTAINER-OK hostname=vx86-oci",
            // Its own network namespace (only lo and eth0), on the guest's
            // bridge through crun's createRuntime hook, reaching the
            // bridge's HTTP server.
            "OCI-NET-OK links=eth0,lo, eth0=10.88.0.2 page=\"hello from the disk guest's bridge\"",
            "crun exited with status 0",
            "GUEST-DONE",
        ],
    );
    assert_eq!(status, Some(0), "vx86 exit status\n{log}");
}
