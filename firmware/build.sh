#!/bin/sh
# Rebuild the vx86 BIOS image (firmware/bios.bin, 65536 bytes) from bios.asm
# and the built-in boot disk (firmware/bootdisk.img) from bootdisk.asm.
set -eu
cd "$(dirname "$0")"
nasm -f bin -w+all -o bios.bin bios.asm
size=$(wc -c < bios.bin)
if [ "$size" -ne 65536 ]; then
    echo "build.sh: bios.bin is $size bytes, expected 65536" >&2
    exit 1
fi
echo "firmware/bios.bin: $size bytes"
nasm -f bin -w+all -o bootdisk.img bootdisk.asm
size=$(wc -c < bootdisk.img)
if [ $((size % 512)) -ne 0 ]; then
    echo "build.sh: bootdisk.img is $size bytes, not whole sectors" >&2
    exit 1
fi
echo "firmware/bootdisk.img: $size bytes"
