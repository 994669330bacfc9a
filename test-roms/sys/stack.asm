; stack.asm: stack-size changes (tests/sys_roms.rs, expected output in
; stack.expected, recorded with scripts/bochs-reference.sh).
; Every instruction that switches between a 16-bit (B=0) and a 32-bit (B=1)
; stack segment while it uses the stack: POP SS, LSS, MOV SS, INT n and call
; gates to an inner level, IRET and RETF to an outer level, interrupts on a
; 16-bit stack at the same level, SYSENTER/SYSEXIT.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/stack.bin test-roms/sys/stack.asm

%include "syslib.inc"

%macro SET_GATE 4                 ; vector, type/DPL word (0xEE00...), selector, handler
        mov word [IDT_BASE + %1 * 8], R(%4)     ; handlers are in the ROM at 0xF0000
        mov word [IDT_BASE + %1 * 8 + 2], %3
        mov dword [IDT_BASE + %1 * 8 + 4], 0x000F0000 | %2
%endmacro

; Go to ring 3 at %1 with SS=%2, ESP=%3, IOPL=3 (so ring 3 may OUT).
%macro RING3 3
        push dword %2
        push dword %3
        push dword 0x3002
        push dword CODE3
        push dword %1
        iretd
%endmacro

%macro RESUME_AT 1
        mov dword [resume], %1
        mov dword [resume_esp], 0x8000 ; below the gate frames at 0x9000
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "stack: stack-size changes", 10
        SET_GATE 0x40, 0xEE00, CODE0, gate_entry    ; 32-bit interrupt gate, DPL3
        SET_GATE 0x41, 0xE600, CODE16, gate_entry16 ; 16-bit interrupt gate, DPL3
        SET_GATE 0x42, 0x8E00, CODE0, gate_entry    ; 32-bit interrupt gate, DPL0

        ; --- POP SS: rSP moves by the OLD stack's address size (SDM Vol. 2B POP)
        mov dword [0xFFFC], DATA0
        mov ax, DATA0_16
        mov ss, ax
        mov esp, 0x1234FFFC
        pop ss                      ; 32-bit pop from a 16-bit stack, loads B=1
        mov ebx, esp
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "pop ss o32 b0->b1 esp="
        HEX32 ebx
        call pm_nl

        mov word [0xFFFE], DATA0
        mov ax, DATA0_16
        mov ss, ax
        mov esp, 0x1234FFFE
        o16 pop ss
        mov ebx, esp
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "pop ss o16 b0->b1 esp="
        HEX32 ebx
        call pm_nl

        mov dword [0x1FFFC], DATA0_16
        mov esp, 0x0001FFFC
        pop ss                      ; 32-bit stack, loads B=0
        mov ebx, esp
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "pop ss o32 b1->b0 esp="
        HEX32 ebx
        call pm_nl

        mov word [0x1FFFE], DATA0_16
        mov esp, 0x0001FFFE
        o16 pop ss
        mov ebx, esp
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "pop ss o16 b1->b0 esp="
        HEX32 ebx
        call pm_nl

        mov dword [0xFFFC], DATA0
        mov ax, DATA0_16
        mov ss, ax
        mov esp, 0x1234FFFC
        pop ds                      ; control: not SS
        mov ebx, esp
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "pop ds o32 b0 esp="
        HEX32 ebx
        call pm_nl

        ; --- LSS: loads SS and SP/ESP by operand size, whatever B becomes
        mov word [scratch], 0x1111
        mov word [scratch + 2], DATA0_16
        mov esp, 0xAABBCCDD
        o16 lss sp, [scratch]
        mov ebx, esp
        mov ecx, ss
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "lss o16 esp="
        HEX32 ebx
        PUTS " ss="
        HEX32 ecx
        call pm_nl
        mov dword [scratch], 0x00012345
        mov word [scratch + 4], DATA0_16
        mov esp, 0xAABBCCDD
        lss esp, [scratch]
        mov ebx, esp
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "lss o32 esp="
        HEX32 ebx
        call pm_nl

        ; --- MOV SS to a 16-bit stack: the next push uses SP
        mov ax, DATA0_16
        mov esp, 0x56780002
        mov ss, ax
        push dword 0x11223344
        mov ebx, esp
        mov ecx, [0xFFFE]
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        PUTS "mov ss b0 push esp="
        HEX32 ebx
        PUTS " [fffe]="
        HEX32 ecx
        call pm_nl

        ; --- INT n from ring 3 on a 16-bit stack: the old ESP is pushed whole
        RESUME_AT .int32_back
        RING3 .r3_int40, DATA3_16, 0x56788000
.r3_int40:
        mov esp, 0x56788000           ; IRET to a 16-bit SS loaded SP only
        int 0x40
.int32_back:
        PUTS "int gate32 r3 b0: esp="
        HEX32 [gate_esp]
        PUTS " old ss:esp="
        mov eax, [gate_esp]
        HEX32 [eax + 16]
        call pm_sp
        HEX32 [eax + 12]
        call pm_nl

        RESUME_AT .int16_back
        RING3 .r3_int41, DATA3_16, 0x56788000
.r3_int41:
        mov esp, 0x56788000           ; IRET to a 16-bit SS loaded SP only
        int 0x41
.int16_back:
        PUTS "int gate16 r3 b0: esp="
        HEX32 [gate_esp]
        PUTS " old ss:sp="
        mov eax, [gate_esp]
        movzx eax, ax
        movzx ebx, word [eax + 8]
        HEX32 ebx
        call pm_sp
        movzx ebx, word [eax + 6]
        HEX32 ebx
        call pm_nl

        ; --- call gate from ring 3 on a 16-bit stack
        RESUME_AT .cg32_back
        RING3 .r3_cg32, DATA3_16, 0x56787FF0
.r3_cg32:
        mov esp, 0x56787FF0           ; IRET to a 16-bit SS loaded SP only
        call CGATE3:0
.cg32_back:
        PUTS "call gate32 r3 b0: esp="
        HEX32 [gate_esp]
        PUTS " old ss:esp="
        mov eax, [gate_esp]
        HEX32 [eax + 12]
        call pm_sp
        HEX32 [eax + 8]
        call pm_nl

        RESUME_AT .cg16_back
        RING3 .r3_cg16, DATA3_16, 0x56787FF0
.r3_cg16:
        mov esp, 0x56787FF0           ; IRET to a 16-bit SS loaded SP only
        call CGATE3_16:0
.cg16_back:
        PUTS "call gate16 r3 b0: esp="
        HEX32 [gate_esp]
        PUTS " old ss:sp="
        mov eax, [gate_esp]
        movzx eax, ax
        movzx ebx, word [eax + 6]
        HEX32 ebx
        call pm_sp
        movzx ebx, word [eax + 4]
        HEX32 ebx
        call pm_nl

        ; --- inner stack from the TSS is 16-bit (SS0 B=0, ESP0=0x00009000)
        mov word [TSS_BASE + 8], DATA0_16
        RESUME_AT .int_ss0_16_back
        RING3 .r3_int40b, DATA3, 0x56788000
.r3_int40b:
        mov esp, 0x56788000           ; IRET to a 16-bit SS loaded SP only
        int 0x40
.int_ss0_16_back:
        mov word [TSS_BASE + 8], DATA0
        PUTS "int gate32 r3 -> ss0 b0: esp="
        HEX32 [gate_esp]
        PUTS " ss="
        movzx eax, word [gate_ss]
        HEX32 eax
        PUTS " old esp="
        mov eax, [gate_esp]
        movzx eax, ax
        HEX32 [eax + 12]
        call pm_nl

        mov word [TSS_BASE + 8], DATA0_16
        RESUME_AT .cg_ss0_16_back
        RING3 .r3_cg32b, DATA3, 0x56788000
.r3_cg32b:
        mov esp, 0x56787FF0
        call CGATE3:0
.cg_ss0_16_back:
        mov word [TSS_BASE + 8], DATA0
        PUTS "call gate32 r3 -> ss0 b0: esp="
        HEX32 [gate_esp]
        PUTS " old esp="
        mov eax, [gate_esp]
        movzx eax, ax
        HEX32 [eax + 8]
        call pm_nl

        ; --- same-level interrupt on a 16-bit stack: SP wraps, ESP[31:16] kept
        mov dword [0x0000], 0
        RESUME_AT .int_same_back
        mov ax, DATA0_16
        mov ss, ax
        mov esp, 0x12340008
        int 0x42
.int_same_back:
        PUTS "int gate32 r0 b0 wrap: esp="
        HEX32 [gate_esp]
        PUTS " cs@0="
        movzx eax, word [0x0000]
        HEX32 eax
        call pm_nl

        ; --- IRET to ring 3 with a 16-bit SS: only SP is loaded (ESP[31:16]
        ; keep the ring-0 value), the "espfix" behaviour
        RESUME_AT .iret_back
        mov esp, 0x9000
        RING3 .r3_iret, DATA3_16, 0xABCD1234
.r3_iret:
        int 0x40
.iret_back:
        PUTS "iretd r0->r3 b0: old esp="
        mov eax, [gate_esp]
        HEX32 [eax + 12]
        call pm_nl
        RESUME_AT .iret_b1_back
        RING3 .r3_iret_b1, DATA3, 0x0ABCD1234 & 0xFFFFF
.r3_iret_b1:
        int 0x40
.iret_b1_back:
        PUTS "iretd r0->r3 b1: old esp="
        mov eax, [gate_esp]
        HEX32 [eax + 12]
        call pm_nl

        ; --- RETF imm16 to ring 3 with a 16-bit SS: SP = popped SP + imm
        RESUME_AT .retf_back
        mov esp, 0x9000
        push dword DATA3_16
        push dword 0xABCD2000
        push dword 0
        push dword 0
        push dword CODE3
        push dword .r3_retf
        retf 8
.r3_retf:
        int 0x40
.retf_back:
        PUTS "retf 8 r0->r3 b0: old esp="
        mov eax, [gate_esp]
        HEX32 [eax + 12]
        call pm_nl
        RESUME_AT .retf16_back
        mov esp, 0x9000
        push word DATA3_16
        push word 0x2000
        push word 0
        push word 0
        push word CODE3
        push word 0x5000            ; a 16-bit RETF loads IP only: "int 0x40" in RAM
        mov word [0x5000], 0x40CD
        o16 retf 4
.retf16_back:
        PUTS "retf16 4 r0->r3 b0: old esp="
        mov eax, [gate_esp]
        HEX32 [eax + 12]
        call pm_nl

        ; --- SYSEXIT to ring 3 (flat 32-bit SS from the MSR), SYSENTER back
        ; from a 16-bit stack: ESP from IA32_SYSENTER_ESP, B=1
        mov ecx, 0x174
        mov eax, CODE0
        xor edx, edx
        wrmsr
        mov ecx, 0x175
        mov eax, 0x00008800
        wrmsr
        mov ecx, 0x176
        mov eax, .sysenter_entry
        wrmsr
        mov edx, .r3_sys
        mov ecx, 0x00ABC000
        sysexit
.r3_sys:
        mov ebx, esp
        mov ecx, ss
        mov ax, DATA3_16
        mov ss, ax
        mov esp, 0x56781000
        sysenter
.sysenter_entry:
        push eax                    ; 32-bit stack: ESP 0x8800 -> 0x87FC
        mov esi, esp
        mov edi, ss
        mov ax, DATA0
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, 0x9000
        PUTS "sysexit: esp="
        HEX32 ebx
        PUTS " ss="
        HEX32 ecx
        call pm_nl
        PUTS "sysenter from b0: esp="
        HEX32 esi
        PUTS " ss="
        HEX32 edi
        call pm_nl

        ; --- real mode with a B=1 stack segment cache left by protected
        ; mode ("big real" stack): the stack-address size is SS.B's, and a
        ; real-mode load of SS changes only the selector and base
        mov dword [0xFFFC], 0
        mov dword [0x1FFFC], 0
        mov dword [0xFFF8], 0
        mov dword [0x1FFF8], 0
        mov ax, DATA0
        mov ss, ax
        mov esp, 0x9000
        jmp CODE16:R(.to16)
        bits 16
.to16:  mov ax, DATA16
        mov ds, ax
        mov es, ax
        mov eax, cr0
        and eax, ~1
        mov cr0, eax
        jmp 0xF000:R(.real)
.real:  mov esp, 0x00020000
        push word 0xBEEF            ; B=1: at 0x1FFFE; B=0: at 0xFFFE
        mov ebx, esp
        xor ax, ax
        mov ss, ax                  ; a real-mode load: B unchanged
        mov esp, 0x0001FFFE
        push word 0xCAFE            ; B=1: at 0x1FFFC; B=0: at 0xFFFC
        mov ecx, esp
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp dword CODE0:.back32
        bits 32
.back32:
        mov ax, DATA0
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, 0x9000
        PUTS "real mode, ss.b=1: esp="
        HEX32 ebx
        PUTS " [1fffe]="
        movzx eax, word [0x1FFFE]
        call pm_hex16
        PUTS " [fffe]="
        movzx eax, word [0xFFFE]
        call pm_hex16
        call pm_nl
        PUTS "real mode, ss reloaded: esp="
        HEX32 ecx
        PUTS " [1fffc]="
        movzx eax, word [0x1FFFC]
        call pm_hex16
        PUTS " [fffc]="
        movzx eax, word [0xFFFC]
        call pm_hex16
        call pm_nl

        PUTS "stack: done", 10
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
