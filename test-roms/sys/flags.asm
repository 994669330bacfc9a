; flags.asm: the arithmetic flags the SDM leaves undefined (tests/sys_roms.rs,
; expected output in flags.expected, recorded with scripts/bochs-reference.sh).
; Each line runs one instruction twice, from OF/SF/ZF/AF/PF/CF all clear and
; all set, and prints those six flags after it (mask 0x8D5) both times, so a
; flag left alone and a flag computed show apart. Where vx86 and Bochs
; choose differently for a flag the SDM leaves undefined, flags.expected
; lists both and each one's rule (neither models an i386/i486 there).
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/flags.bin test-roms/sys/flags.asm

%include "syslib.inc"

; FL "text", i1, i2, i3, test: i1-i3 (nop where unused) set up the
; operands, then EFLAGS is loaded and `test` runs.
%macro FL 5
        PUTS %1
        mov dword [scratch + 8], 0x002  ; all clear
        call %%run
        mov dword [scratch + 8], 0x8D7  ; all set
        call %%run
        call pm_nl
        jmp %%end
%%run:  %2
        %3
        %4
        push dword [scratch + 8]
        popfd
        %5
        pushfd
        pop eax
        and eax, 0x8D5
        call pm_sp
        call pm_hex16
        ret
%%end:
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "flags: undefined arithmetic flags (OF..CF & 8D5, from 000 and 8D5)", 10
        FL "mul 3*5", {mov eax, 3}, {mov ecx, 5}, {nop}, {mul ecx}
        FL "mul 80000000*2", {mov eax, 0x80000000}, {mov ecx, 2}, {nop}, {mul ecx}
        FL "imul 0*7", {xor eax, eax}, {mov ecx, 7}, {nop}, {imul ecx}
        FL "imul r,r,i -1*1", {mov eax, -1}, {nop}, {nop}, {imul eax, eax, 1}
        FL "div 10/3", {mov eax, 10}, {xor edx, edx}, {mov ecx, 3}, {div ecx}
        FL "idiv -9/2", {mov eax, -9}, {cdq}, {mov ecx, 2}, {idiv ecx}
        FL "shl 1 by 3", {mov eax, 0x40000001}, {nop}, {nop}, {shl eax, 3}
        FL "shr 80000000 by 2", {mov eax, 0x80000000}, {nop}, {nop}, {shr eax, 2}
        FL "sar -1 by 31", {mov eax, -1}, {nop}, {nop}, {sar eax, 31}
        FL "shl by 0", {mov eax, 1}, {nop}, {nop}, {shl eax, 0}
        FL "rol 80000001 by 4", {mov eax, 0x80000001}, {nop}, {nop}, {rol eax, 4}
        FL "rcr 1 by 3", {mov eax, 1}, {nop}, {nop}, {rcr eax, 3}
        FL "shld by 4", {mov eax, 0x12345678}, {mov edx, 0x9ABCDEF0}, {nop}, {shld eax, edx, 4}
        FL "shrd by 20", {mov eax, 0x12345678}, {mov edx, 0x9ABCDEF0}, {nop}, {shrd eax, edx, 20}
        FL "shl ax by 17 (count > width)", {mov eax, 0x8001}, {mov cl, 17}, {nop}, {shl ax, cl}
        FL "bsf 0x100", {mov ecx, 0x100}, {nop}, {nop}, {bsf eax, ecx}
        FL "bsf 0", {xor ecx, ecx}, {nop}, {nop}, {bsf eax, ecx}
        FL "bsr 0x80000000", {mov ecx, 0x80000000}, {nop}, {nop}, {bsr eax, ecx}
        FL "bt bit 3 of 8", {mov eax, 8}, {nop}, {nop}, {bt eax, 3}
        FL "aaa al=0x0F", {mov eax, 0x0F}, {nop}, {nop}, {aaa}
        FL "aas al=0x1F", {mov eax, 0x1F}, {nop}, {nop}, {aas}
        FL "daa al=0x9A", {mov eax, 0x9A}, {nop}, {nop}, {daa}
        FL "das al=0x0F", {mov eax, 0x0F}, {nop}, {nop}, {das}
        FL "aam al=0x63", {mov eax, 0x63}, {nop}, {nop}, {aam}
        FL "aad ax=0x0909", {mov eax, 0x0909}, {nop}, {nop}, {aad}
        FL "and 0xF0,0x0F (af)", {mov eax, 0xF0}, {nop}, {nop}, {and eax, 0x0F}
        FL "xor eax,eax", {mov eax, 5}, {nop}, {nop}, {xor eax, eax}

        PUTS "flags: done", 10
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
