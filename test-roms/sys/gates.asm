; gates.asm: gates and task switches (tests/sys_roms.rs, expected output in
; gates.expected, recorded with scripts/bochs-reference.sh).
; Interrupt vs trap gates (IF), a DPL0 gate from ring 3, 32- and 16-bit call
; gates with parameters copied to the inner stack, call gates that fail
; (DPL, not-present target), a task gate with the back link, NT and busy
; bits and IRET back, and the TSS I/O permission bitmap at IOPL 0.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/gates.bin test-roms/sys/gates.asm

%include "syslib.inc"

%define TSS2 0x6000

%macro RING3 2                    ; target, EFLAGS (IOPL in it)
        push dword DATA3
        push dword 0x8000
        push dword %2
        push dword CODE3
        push dword %1
        iretd
%endmacro

; CGATE sel, code selector, target, attribute word, offset[31:16]
%macro CGATE 5
        mov word [GDT_BASE + %1], (%3) - $$
        mov word [GDT_BASE + %1 + 2], %2
        mov word [GDT_BASE + %1 + 4], %4
        mov word [GDT_BASE + %1 + 6], %5
%endmacro

%macro RESUME_AT 1
        mov dword [resume], %1
        mov dword [resume_esp], 0x8800 ; below the gate frames at 0x9000
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "gates: gates and task switches", 10
        mov al, 0xFF                ; mask the PICs: IF=1 in ring 3 is safe
        out 0x21, al
        out 0xA1, al
        mov word [IDT_BASE + 0x40 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x40 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x40 * 8 + 4], 0x000FEE00  ; int gate DPL3
        mov word [IDT_BASE + 0x41 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x41 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x41 * 8 + 4], 0x000FEF00  ; trap gate DPL3
        mov word [IDT_BASE + 0x42 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x42 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x42 * 8 + 4], 0x000F8E00  ; int gate DPL0
        mov dword [IDT_BASE + 0x43 * 8], 0x00880000      ; task gate -> 0x88
        mov dword [IDT_BASE + 0x43 * 8 + 4], 0x0000E500
        CGATE 0x60, CODE0, gate_entry, 0xEC02, 0x000F    ; call gate32 DPL3, 2 params
        CGATE 0x68, CODE16, gate_entry16, 0xE403, 0      ; call gate16 DPL3, 3 params
        CGATE 0x70, CODE0, gate_entry, 0x8C00, 0x000F    ; call gate32 DPL0
        GDT_SET 0x78, 0x00CF_1B00_0000_FFFF ; code32 DPL0 not present
        CGATE 0x80, 0x78, gate_entry, 0xEC00, 0x000F     ; call gate32 DPL3 -> 0x78
        GDT_SET 0x88, 0x0000_8900_6000_0067 ; TSS2, 32-bit, available

        ; --- interrupt vs trap gate from ring 3 with IF=1
        RESUME_AT .int_back
        RING3 .r3_int, 0x0202
.r3_int:
        int 0x40
.int_back:
        PUTS "int gate from r3: handler if="
        mov eax, [gate_flags]
        shr eax, 9
        and eax, 1
        call pm_hex8
        PUTS " frame eflags="
        mov eax, [gate_esp]
        HEX32 [eax + 8]
        call pm_nl
        RESUME_AT .trap_back
        RING3 .r3_trap, 0x0202
.r3_trap:
        int 0x41
.trap_back:
        PUTS "trap gate from r3: handler if="
        mov eax, [gate_flags]
        shr eax, 9
        and eax, 1
        call pm_hex8
        call pm_nl
        TRY "dpl0 gate from r3"
        RING3 .r3_dpl0, 0x0002
.r3_dpl0:
        int 0x42
        ENDTRY

        ; --- call gates with parameters
        RESUME_AT .cg32_back
        RING3 .r3_cg32, 0x0002
.r3_cg32:
        push dword 0x11111111
        push dword 0x22222222
        call 0x63:0
.cg32_back:
        PUTS "call gate32 2 params: frame"
        mov esi, [gate_esp]
        mov ecx, 6
.f32:   call pm_sp
        mov eax, [esi]
        call pm_hex32
        add esi, 4
        loop .f32
        call pm_nl
        RESUME_AT .cg16_back
        RING3 .r3_cg16, 0x0002
.r3_cg16:
        push word 0xAAAA
        push word 0xBBBB
        push word 0xCCCC
        call 0x6B:0
.cg16_back:
        PUTS "call gate16 3 params: frame"
        mov esi, [gate_esp]
        mov ecx, 7
.f16:   call pm_sp
        movzx eax, word [esi]
        call pm_hex16
        add esi, 2
        loop .f16
        call pm_nl
        TRY "call gate dpl0 from r3"
        RING3 .r3_cg0, 0x0002
.r3_cg0:
        call 0x73:0
        ENDTRY
        TRY "call gate to not-present code"
        RING3 .r3_cgnp, 0x0002
.r3_cgnp:
        call 0x83:0
        ENDTRY
        TRY "jmp through a call gate to dpl0 code"
        RING3 .r3_jmp, 0x0002
.r3_jmp:
        jmp 0x63:0                  ; JMP through a call gate to a more privileged level
        ENDTRY

        ; --- task gate: INT 0x43 from ring 0 switches to TSS2 and back
        mov edi, TSS2
        xor eax, eax
        mov ecx, 0x68 / 4
        rep stosd
        mov dword [TSS2 + 0x20], .task2       ; EIP
        mov dword [TSS2 + 0x24], 0x00000002   ; EFLAGS
        mov dword [TSS2 + 0x38], 0x00007000   ; ESP
        mov word [TSS2 + 0x48], DATA0         ; ES
        mov word [TSS2 + 0x4C], CODE0         ; CS
        mov word [TSS2 + 0x50], DATA0         ; SS
        mov word [TSS2 + 0x54], DATA0         ; DS
        mov word [TSS2 + 0x58], DATA0         ; FS
        mov word [TSS2 + 0x5C], DATA0         ; GS
        mov word [TSS2 + 0x66], 0x68          ; no I/O bitmap
        mov ebx, 0x12345678
        int 0x43
        PUTS "back in task 1: tr="
        str eax
        call pm_hex16
        PUTS " ebx="
        HEX32 ebx
        pushfd
        pop eax
        PUTS " nt="
        shr eax, 14
        and eax, 1
        call pm_hex8
        PUTS " tss2 type="
        mov al, [GDT_BASE + 0x88 + 5]
        call pm_hex8
        PUTS " ts="
        mov eax, cr0
        shr eax, 3
        and eax, 1
        call pm_hex8
        clts
        call pm_nl
        jmp .io

.task2:
        PUTS "task 2: tr="
        str eax
        call pm_hex16
        PUTS " link="
        movzx eax, word [TSS2]
        call pm_hex16
        PUTS " ebx="
        HEX32 ebx
        pushfd
        pop eax
        PUTS " nt="
        shr eax, 14
        and eax, 1
        call pm_hex8
        PUTS " types tss0="
        mov al, [GDT_BASE + 0x38 + 5]
        call pm_hex8
        PUTS " tss2="
        mov al, [GDT_BASE + 0x88 + 5]
        call pm_hex8
        PUTS " saved eip="
        HEX32 [TSS_BASE + 0x20]
        PUTS " ebx="
        HEX32 [TSS_BASE + 0x34]
        call pm_nl
        mov ebx, 0xCAFE
        iretd                       ; NT=1: back through the link
        jmp .task2                  ; a second INT 0x43 would resume here

        ; --- I/O permission bitmap at IOPL 0 (ring 3)
.io:    mov edi, TSS_BASE + 0x68    ; the bitmap: ports 0-0x3FF, then 0xFF
        mov eax, 0xFFFFFFFF
        mov ecx, 0x80 / 4
        rep stosd
        mov byte [TSS_BASE + 0x68 + 0x80], 0xFF
        and byte [TSS_BASE + 0x68 + (0xE9 >> 3)], ~(1 << (0xE9 & 7)) ; allow 0xE9
        and byte [TSS_BASE + 0x68 + (0xEA >> 3)], ~(1 << (0xEA & 7)) ; and 0xEA
        and byte [TSS_BASE + 0x68 + (0x3FF >> 3)], ~(1 << (0x3FF & 7)) ; and 0x3FF
        mov word [TSS_BASE + 102], 0x68
        mov byte [GDT_BASE + 0x38], 0x68 + 0x80 ; limit covers the bitmap and the 0xFF
        and byte [GDT_BASE + 0x38 + 5], ~2      ; not busy, so LTR takes it again
        mov ax, TSS0
        ltr ax
        TRY "io: out e9 allowed"
        RING3 .r3_e9, 0x0002
.r3_e9: mov al, '!'
        out 0xE9, al
        int 0x40
        ENDTRY
        TRY "io: out 80 denied"
        RING3 .r3_80, 0x0002
.r3_80: out 0x80, al
        int 0x40
        ENDTRY
        TRY "io: out e9 word (e9, ea allowed)"
        RING3 .r3_e9w, 0x0002
.r3_e9w:
        mov dx, 0xE9
        mov ax, 0x0A21
        out dx, ax
        int 0x40
        ENDTRY
        TRY "io: in e8 word (e8 denied)"
        RING3 .r3_e8w, 0x0002
.r3_e8w:
        mov dx, 0xE8
        in ax, dx
        int 0x40
        ENDTRY
        TRY "io: in 3ff word (400 past the bitmap's 0xff byte)"
        RING3 .r3_3ff, 0x0002
.r3_3ff:
        mov dx, 0x3FF
        in ax, dx
        int 0x40
        ENDTRY
        TRY "io: in 3ff byte"
        RING3 .r3_3ffb, 0x0002
.r3_3ffb:
        mov dx, 0x3FF
        in al, dx
        int 0x40
        ENDTRY
        TRY "io: in 400 (beyond the limit)"
        RING3 .r3_400, 0x0002
.r3_400:
        mov dx, 0x400
        in al, dx
        int 0x40
        ENDTRY
        TRY "io: iopl 3 ignores the bitmap"
        RING3 .r3_iopl3, 0x3002
.r3_iopl3:
        out 0x80, al
        int 0x40
        ENDTRY

        PUTS "gates: done", 10
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
