; v86.asm: virtual-8086 mode (tests/sys_roms.rs, expected output in
; v86.expected, recorded with scripts/bochs-reference.sh).
; IOPL-sensitive instructions at IOPL 0 and 3 (CLI, STI, PUSHF, POPF, INT n,
; INT3, INTO, IRET), I/O without an I/O bitmap, privileged instructions,
; and the frame of an interrupt from V86 mode (with ES, DS, FS, GS).
; Every V86 block ends with a division by zero, so "#00" means it ran to its end.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/v86.bin test-roms/sys/v86.asm

%include "syslib.inc"

%define RESULT 0x5000             ; a V86 block may store a word here

; V86 "text", iopl, label: run the 16-bit block at label (below, each ends
; with DIV by zero) in V86 mode (CS=F000, SS:SP=0:7000,
; DS=ES=0, FS=GS=0x40) at the given IOPL.
%macro V86 3
        TRY %1
        mov word [RESULT], 0xEEEE
        push dword 0x40             ; GS
        push dword 0x40             ; FS
        push dword 0                ; DS
        push dword 0                ; ES
        push dword 0                ; SS
        push dword 0x7000           ; ESP
        push dword 0x20002 | ((%2) << 12)
        push dword 0xF000
        push dword R(%3)
        iretd
        ENDTRY
%endmacro

%macro SHOW_RESULT 0
        PUTS "  result="
        movzx eax, word [RESULT]
        call pm_hex16
        call pm_nl
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "v86: virtual-8086 mode", 10
        mov word [IDT_BASE + 0x40 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x40 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x40 * 8 + 4], 0x000FEE00
        ; real-mode IVT entry 0x40 (never used without VME)
        mov word [0x40 * 4], R(pm_shutdown)
        mov word [0x40 * 4 + 2], 0xF000

        V86 "iopl0 cli", 0, b0
        V86 "iopl0 sti", 0, b1
        V86 "iopl0 pushf", 0, b2
        V86 "iopl0 popf", 0, b3
        V86 "iopl0 int 40", 0, b4
        V86 "iopl0 int3", 0, b5
        V86 "iopl0 into (of=1)", 0, b6
        V86 "iopl0 iret", 0, b7
        V86 "iopl0 in al,80", 0, b8
        V86 "iopl0 out 80,al", 0, b9
        V86 "iopl0 hlt", 0, b10
        V86 "iopl0 mov eax,cr0", 0, b11
        V86 "iopl0 smsw", 0, b12
        SHOW_RESULT
        V86 "iopl0 lar", 0, b13
        V86 "iopl0 verr", 0, b14
        V86 "iopl0 str", 0, b15
        V86 "iopl0 sgdt", 0, b16
        V86 "iopl0 lidt", 0, b17
        V86 "iopl0 rdtsc", 0, b18
        V86 "iopl0 mov ds and read", 0, b19
        SHOW_RESULT

        V86 "iopl3 cli sti", 3, b20
        V86 "iopl3 pushf", 3, b21
        SHOW_RESULT
        V86 "iopl3 popf keeps iopl", 3, b22
        SHOW_RESULT
        V86 "iopl3 pushfd", 3, b23
        SHOW_RESULT
        V86 "iopl3 in al,80 (no i/o bitmap)", 3, b24
        V86 "iopl3 hlt", 3, b25
        V86 "iopl3 int3", 3, b26

        ; INT 0x40 from V86 at IOPL 3 to a ring-0 handler: the frame
        TRY "iopl3 int 40 ->"
        mov dword [resume], .int_back
        mov dword [resume_esp], 0x8000 ; below the frame
        push dword 0x1234           ; GS
        push dword 0x5678           ; FS
        push dword 0x9ABC           ; DS
        push dword 0xDEF0           ; ES
        push dword 0                ; SS
        push dword 0x7000           ; ESP
        push dword 0x23002
        push dword 0xF000
        push dword R(.v86_int)
        iretd
        bits 16
.v86_int:
        int 0x40
        xor cl, cl                  ; the end: #DE
        div cl
        bits 32
.int_back:
        PUTS " frame:"
        mov esi, [gate_esp]
        mov ecx, 9
.fr:    call pm_sp
        mov eax, [esi]
        call pm_hex32
        add esi, 4
        loop .fr
        PUTS " ss="
        movzx eax, word [gate_ss]
        call pm_hex16
        ENDTRY

        PUTS "v86: done", 10
        jmp pm_shutdown

        bits 16
b0:
        cli
        xor cl, cl                  ; the end: #DE
        div cl
b1:
        sti
        xor cl, cl                  ; the end: #DE
        div cl
b2:
        pushf
        xor cl, cl                  ; the end: #DE
        div cl
b3:
        popf
        xor cl, cl                  ; the end: #DE
        div cl
b4:
        int 0x40
        xor cl, cl                  ; the end: #DE
        div cl
b5:
        int3
        xor cl, cl                  ; the end: #DE
        div cl
b6:
        mov al, 0x7F
        add al, 1
        into
        xor cl, cl                  ; the end: #DE
        div cl
b7:
        iret
        xor cl, cl                  ; the end: #DE
        div cl
b8:
        in al, 0x80
        xor cl, cl                  ; the end: #DE
        div cl
b9:
        out 0x80, al
        xor cl, cl                  ; the end: #DE
        div cl
b10:
        hlt
        xor cl, cl                  ; the end: #DE
        div cl
b11:
        mov eax, cr0
        xor cl, cl                  ; the end: #DE
        div cl
b12:
        smsw ax
        mov [RESULT], ax
        xor cl, cl                  ; the end: #DE
        div cl
b13:
        lar ax, ax
        xor cl, cl                  ; the end: #DE
        div cl
b14:
        verr ax
        xor cl, cl                  ; the end: #DE
        div cl
b15:
        str ax
        xor cl, cl                  ; the end: #DE
        div cl
b16:
        sgdt [RESULT + 0x10]
        xor cl, cl                  ; the end: #DE
        div cl
b17:
        lidt [RESULT + 0x10]
        xor cl, cl                  ; the end: #DE
        div cl
b18:
        rdtsc
        xor cl, cl                  ; the end: #DE
        div cl
b19:
        mov ax, 0x0500
        mov ds, ax
        mov ax, [0]
        xor bx, bx
        mov ds, bx
        mov [RESULT], ax
        xor cl, cl                  ; the end: #DE
        div cl
b20:
        cli
        sti
        xor cl, cl                  ; the end: #DE
        div cl
b21:
        pushf
        pop ax
        mov [RESULT], ax
        xor cl, cl                  ; the end: #DE
        div cl
b22:
        push word 0x0002
        popf
        pushf
        pop ax
        mov [RESULT], ax
        xor cl, cl                  ; the end: #DE
        div cl
b23:
        pushfd
        pop eax
        shr eax, 16
        mov [RESULT], ax
        xor cl, cl                  ; the end: #DE
        div cl
b24:
        in al, 0x80
        xor cl, cl                  ; the end: #DE
        div cl
b25:
        hlt
        xor cl, cl                  ; the end: #DE
        div cl
b26:
        int3
        xor cl, cl                  ; the end: #DE
        div cl
        bits 32

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
