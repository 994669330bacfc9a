#!/usr/bin/env bash
# Proves vx86 on the hosts this x86-64 Linux machine can emulate or check:
#
#   arm      builds the crate for aarch64-unknown-linux-gnu (Debian's
#            gcc-aarch64-linux-gnu links it) and runs its test suite under
#            qemu-aarch64 (Debian's qemu-user, libc from libc6-arm64-cross):
#            every test, the Debian container guest among them; tests that
#            need an x86 host say SKIPPED with the reason. Then the container
#            guest once more under --stats for its MIPS next to the native
#            build's.
#   windows  builds for x86_64-pc-windows-gnu (mingw-w64 links it) and runs
#            the test ROMs, the CLI tests and the Debian container guest under
#            Wine, with vx86.exe started by the Windows test process; then
#            the console tests drive vx86.exe under Wine on a Unix terminal.
#
# Both emulated hosts also prove that snapshots move between hosts: the
# snapshot cut-point tests save here and restore on the other host, then
# save there and restore here (same bytes and state hash as the straight
# run; `cross_snapshots`).
#   mac      cargo check for aarch64-apple-darwin and x86_64-apple-darwin
#            without the window (no Apple SDK here to link).
#   all      the three (default).
#
# Prints one summary line per host: passed/failed/ignored test counts.
# Exit status is non-zero when a build or a test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
status=0
summary=()
export VX86_GUEST_CACHE=${VX86_GUEST_CACHE:-$PWD/guest-cache}

# Adds up cargo's "test result:" lines of a log: "P passed, F failed, I ignored".
counts() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) {
         if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1);
         if ($(i) ~ /^ignored;?$/) g += $(i-1) } }
       END { printf "%d passed, %d failed, %d ignored", p, f, g }' "$1"
}

# "N.N" guest MIPS from a --stats report on stderr.
mips_of() {
  sed -n 's/.* \([0-9][0-9.]*\) MIPS.*/\1/p' "$1" | tail -1
}

# The snapshot tests that cut a run, with the other host's vx86 ($1, run by
# the runner $2) restoring, then saving. Appends to the log $3.
cross_snapshots() {
  local filters=(platform_rom_restored apic_kernel_restored local_apic_without_io_apic) rc=0
  VX86_RESTORE_BIN="$1" VX86_RESTORE_RUNNER="$2" cargo test --no-fail-fast \
    --test snapshot --test snapshot_apic -- "${filters[@]}" >>"$3" 2>&1 || rc=1
  VX86_SAVE_BIN="$1" VX86_SAVE_RUNNER="$2" cargo test --no-fail-fast \
    --test snapshot --test snapshot_apic -- "${filters[@]}" >>"$3" 2>&1 || rc=1
  return $rc
}

run_arm() {
  local t=aarch64-unknown-linux-gnu log=target/cross-arm.log
  if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null \
     || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    summary+=("arm: SKIPPED: needs gcc-aarch64-linux-gnu, qemu-user and libc6-arm64-cross")
    return
  fi
  rustup target add $t >/dev/null 2>&1 || true
  local runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
  local start=$(date +%s)
  # --no-fail-fast: every listed binary runs, so the counts are all of theirs.
  VX86_TEST_RUNNER="$runner" cargo test --target $t --no-fail-fast "${arm_tests[@]}" >"$log" 2>&1
  local rc=$?
  cross_snapshots "$PWD/target/$t/debug/vx86" "$runner" "$log" || rc=1
  grep -E '^test .* FAILED$|SKIPPED' "$log" | sort -u | head -40
  [ $rc -eq 0 ] || status=1
  local line="arm (aarch64-unknown-linux-gnu under qemu-aarch64): $(counts "$log") in $(( $(date +%s) - start )) s"
  # Guest MIPS on the same work, ARM build (under qemu-user) against native.
  local k="$VX86_GUEST_CACHE/out/vmlinuz" i="$VX86_GUEST_CACHE/out/initramfs-ctr.cpio.gz"
  # Both binaries from the dev profile (opt-level 1), so the ratio is the
  # host's and qemu-user's alone.
  if [ -f "$k" ] && [ -f "$i" ] && cargo build >/dev/null 2>&1 && cargo build --target $t >/dev/null 2>&1; then
    local args=(-icount shift=0,sleep=off -m 512M -kernel "$k" -initrd "$i"
                -append "console=ttyS0 panic=-1" -nographic -no-reboot --stats)
    target/debug/vx86 "${args[@]}" </dev/null >/dev/null 2>target/cross-x86.stats
    $runner target/$t/debug/vx86 "${args[@]}" </dev/null >/dev/null 2>target/cross-arm.stats
    local a x
    a=$(mips_of target/cross-arm.stats) x=$(mips_of target/cross-x86.stats)
    if [ -n "$a" ] && [ -n "$x" ]; then
      line+="; container guest $a MIPS under qemu-aarch64 vs $x MIPS native ($(awk -v a="$a" -v x="$x" 'BEGIN { printf "%.2f", a / x }')x)"
    fi
  fi
  summary+=("$line")
}

run_windows() {
  local t=x86_64-pc-windows-gnu log=target/cross-windows.log
  if ! command -v x86_64-w64-mingw32-gcc >/dev/null || ! command -v wine >/dev/null; then
    summary+=("windows: SKIPPED: needs gcc-mingw-w64-x86-64 and wine64")
    return
  fi
  rustup target add $t >/dev/null 2>&1 || true
  local start=$(date +%s)
  local tests=(--test test_roms --test cli --test bios_disk --test debian_guest --test boot)
  if ! cargo test --target $t --no-run "${tests[@]}" >"$log" 2>&1; then
    tail -20 "$log"
    summary+=("windows: BUILD FAILED (see $log)")
    status=1
    return
  fi
  # Wine 8 has no bcryptprimitives.dll, which Rust's std imports: a shim
  # beside the executables (scripts/cross/bcryptprimitives.c).
  local d
  for d in target/$t/debug target/$t/debug/deps; do
    x86_64-w64-mingw32-gcc -shared -O2 -o $d/bcryptprimitives.dll \
      scripts/cross/bcryptprimitives.c -ladvapi32 || { status=1; return; }
  done
  export WINEDEBUG=-all WINEPREFIX=${WINEPREFIX:-$PWD/target/wineprefix}
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
  # The test binaries are Windows processes under Wine; they start vx86.exe
  # themselves. Host timing bounds are relaxed (VX86_TEST_EMULATED_HOST).
  VX86_TEST_EMULATED_HOST=1 cargo test --target $t --no-fail-fast "${tests[@]}" >>"$log" 2>&1
  local rc=$?
  # The Windows console on a terminal: the native tests/console.rs types
  # into vx86.exe under Wine, which gives it a console on a Unix pty.
  VX86_TEST_RUNNER=wine VX86_TEST_BIN="$PWD/target/$t/debug/vx86.exe" \
    cargo test --no-fail-fast --test console >>"$log" 2>&1 || rc=1
  cross_snapshots "$PWD/target/$t/debug/vx86.exe" wine "$log" || rc=1
  grep -E '^test .* FAILED$|SKIPPED' "$log" | sort -u | head -40
  [ $rc -eq 0 ] || status=1
  summary+=("windows (x86_64-pc-windows-gnu under Wine): $(counts "$log") in $(( $(date +%s) - start )) s")
}

run_mac() {
  local t ok=()
  for t in aarch64-apple-darwin x86_64-apple-darwin; do
    rustup target add $t >/dev/null 2>&1 || true
    if cargo check --target $t --no-default-features --lib --bins >target/cross-$t.log 2>&1; then
      ok+=("$t ok")
    else
      tail -20 target/cross-$t.log
      ok+=("$t FAILED")
      status=1
    fi
  done
  summary+=("macOS (cargo check without the window): ${ok[*]}")
}

# The tests each emulated host runs. ARM: all but network.rs (user
# networking under host time: its guest needs minutes under qemu-user),
# payloads.rs (7.7 G instructions of installer) and the X11 window and
# wall-clock tests; those run natively in the same CI.
arm_tests=(--lib --test bios_disk --test bios_serial --test bios_vbe --test boot --test cli
           --test conformance --test debian_guest --test default_guest_cli --test determinism
           --test firmware --test random_bytes --test sys_roms --test test_roms --test console)
mkdir -p target
case $what in
  arm) run_arm ;;
  windows) run_windows ;;
  mac) run_mac ;;
  all) run_mac; run_windows; run_arm ;;
  *) echo "usage: $0 [arm|windows|mac|all]" >&2; exit 2 ;;
esac
for s in "${summary[@]}"; do echo "cross-hosts: $s"; done
exit $status
