#!/bin/sh
# Runs a 64 KiB test ROM as the BIOS under Bochs 2.7 (headless: nogui
# display, no disks, no VGA BIOS) and prints what the ROM wrote to port 0xE9
# on stdout. The ROM ends the run by writing "Shutdown" to port 0x8900
# (Bochs's shutdown port; vx86 ignores it and stops at the CLI;HLT after).
# Display: rfb with no wait for a client (Debian's bochs has no nogui/term
# display plugin); sound off.
#
#   scripts/bochs-reference.sh test-roms/sys/stack.bin > test-roms/sys/stack.expected
#
# Used to (re)generate the expected outputs in test-roms/sys/ and by
# tests/sys_roms.rs to confirm them when bochs is installed. Needs bochs
# (Debian: bochs, bochsbios). Exit status 1 if bochs is missing or the run
# did not end at the shutdown port within the time limit.
set -eu
rom=${1:?usage: bochs-reference.sh ROM.bin [CPU-MODEL]}
model=${2:-corei7_sandy_bridge_2600k}
command -v bochs >/dev/null 2>&1 || { echo "bochs-reference.sh: bochs is not installed" >&2; exit 1; }
[ -r "$rom" ] || { echo "bochs-reference.sh: $rom: cannot read" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/vx86-bochs.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT INT TERM
rom_abs=$(cd "$(dirname "$rom")" && pwd)/$(basename "$rom")
cat > "$dir/bochsrc" <<RC
megs: 32
cpu: model=$model, ips=50000000, reset_on_triple_fault=1
romimage: file="$rom_abs"
display_library: rfb, options="timeout=0"
port_e9_hack: enabled=1
boot: disk
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
speaker: enabled=0
log: $dir/log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
RC
# Debian's bochs is built with its debugger: "c" on stdin starts the run.
# A triple fault resets the machine (RAM is kept), as vx86 does without
# -no-reboot.
# Port 0xE9 output goes to Bochs's stdout between the debugger's prompt and
# the line it prints when the shutdown port stops the run; its own messages
# go to the log. The ROMs end their output with a newline.
( cd "$dir" && printf "c\nc\nc\n" | timeout 120 bochs -q -f "$dir/bochsrc" >"$dir/out" 2>"$dir/err" ) || true
if ! grep -q "Shutdown port: shutdown requested" "$dir/log"; then
    echo "bochs-reference.sh: $rom: bochs did not reach the shutdown port; its log:" >&2
    tail -5 "$dir/log" >&2
    echo "bochs-reference.sh: the ROM's output up to there:" >&2
    sed -n '/^<bochs:1> c$/,$p' "$dir/out" | sed '1d' | head -c 4000 >&2
    exit 1
fi
# A reset (a triple fault; reset_on_triple_fault=1) stops in the debugger
# again: the further "c" lines on stdin continue it; its messages there
# ("Next at t=", the instruction at the reset vector, the echoed "c") are
# dropped.
sed -n '/^<bochs:1> c$/,$p' "$dir/out" | sed '1d' |
    grep -v -e '^([0-9]*)\.\[[0-9]*\] \[0x' -e '^Next at t=[0-9]*$' \
        -e '^([0-9]*) \[0x[0-9a-f]*\] ' -e '^<bochs:[0-9]*> c$'

