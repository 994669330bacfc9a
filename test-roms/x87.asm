; vx86 test ROM: the x87 FPU and FXSAVE/FXRSTOR in IA-32e long mode,
; self-checking. Exact arithmetic, constants, conversions, compares,
; FPREM, BCD; #MF on a pending unmasked exception (CR0.NE=1); #NM with
; CR0.TS; FXSAVE/FXRSTOR switching between two "tasks", eagerly and lazily
; (#NM handler swaps the state); #GP on a misaligned FXSAVE.
; Reports text on port 0xE9 and the result on isa-debug-exit (port 0xF4):
; writes 0 when every check passed (exit status 1), N>0 for failed check N.
; Build: nasm -f bin -o x87.bin x87.asm   (a 64 KiB BIOS image)

%define ROM 0xF0000
%define R(x) ((x) - ROM)

%define IDT     0x12000
%define AREA_A  0x40000             ; FXSAVE image of task A
%define AREA_B  0x40200             ; FXSAVE image of task B
%define SCRATCH 0x40400
%define NM_COUNT 0x40500
%define MF_COUNT 0x40508
%define GP_COUNT 0x40510
%define CUR_TASK 0x40518            ; 0 = A, 1 = B (lazy switch)

%macro CHECK 1                      ; ZF clear -> fail with code %1
        je %%ok
        mov al, %1
        out 0xF4, al
        hlt
%%ok:
%endmacro

%macro PRINT 1
        mov rsi, %1
        call print64
%endmacro

        org ROM
        bits 16
start16:
        cli
        lgdt [cs:R(gdt_ptr)]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp dword 0x08:pm32

        bits 32
pm32:   mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, 0x90000
        ; 4-level tables: 0-8 MiB identity with 2 MiB pages.
        mov edi, 0x30000
        xor eax, eax
        mov ecx, 3*1024
        rep stosd
        mov dword [0x30000], 0x31003
        mov dword [0x31000], 0x32003
        mov dword [0x32000], 0x000083
        mov dword [0x32008], 0x200083
        mov dword [0x32010], 0x400083
        mov dword [0x32018], 0x600083
        mov eax, 0x30000
        mov cr3, eax
        mov eax, cr4
        or eax, 0x220                       ; PAE | OSFXSR
        mov cr4, eax
        mov ecx, 0xC0000080
        rdmsr
        or eax, 0x100                       ; LME
        wrmsr
        mov eax, cr0
        and eax, ~0x4                       ; EM = 0
        or eax, 0x80000022                  ; PG | NE | MP
        mov cr0, eax
        jmp 0x18:long64

        bits 64
long64: mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov rsp, 0x90000
        PRINT msg_long
        ; IDT: #NM (7), #GP (13), #MF (16).
        mov rdi, IDT
        xor eax, eax
        mov ecx, 256*4
        rep stosd
        mov rax, nm_handler
        mov ebx, 7
        call set_gate
        mov rax, gp_handler
        mov ebx, 13
        call set_gate
        mov rax, mf_handler
        mov ebx, 16
        call set_gate
        lidt [idt_ptr]
        xor eax, eax
        mov [NM_COUNT], rax
        mov [MF_COUNT], rax
        mov [GP_COUNT], rax
        mov qword [CUR_TASK], 2             ; no lazy switching yet

        ; --- 1. exact arithmetic and conversions ---
        fninit
        fild dword [three]
        fmul st0, st0                       ; 9
        fild dword [four]
        fmul st0, st0                       ; 16
        faddp                               ; 25
        fsqrt                               ; 5 exactly
        fistp dword [SCRATCH]
        cmp dword [SCRATCH], 5
        CHECK 1
        fld1
        fidiv dword [three]                 ; 1/3 (64-bit precision)
        fstp qword [SCRATCH]                ; rounded to double
        mov rax, 0x3FD5555555555555
        cmp [SCRATCH], rax
        CHECK 2
        fldpi
        fstp tword [SCRATCH]
        mov rax, 0xC90FDAA22168C235
        cmp [SCRATCH], rax
        CHECK 3
        cmp word [SCRATCH+8], 0x4000
        CHECK 4
        ; FLDPI under round-down: the last bit differs.
        fldcw [cw_down]
        fldpi
        fstp tword [SCRATCH]
        mov rax, 0xC90FDAA22168C234
        cmp [SCRATCH], rax
        CHECK 5
        ; Precision control 24 bits: 1/3 rounds to single precision.
        fldcw [cw_single]
        fld1
        fidiv dword [three]
        fstp tword [SCRATCH]
        mov rax, 0xAAAAAB0000000000
        cmp [SCRATCH], rax
        CHECK 6
        fninit
        ; FPREM: 17 rem 5 = 2, quotient 3 -> C1 = Q0 = 1, C3 = Q1 = 1, C0 = Q2 = 0.
        fild dword [five]
        fild dword [seventeen]
        fprem
        fnstsw ax
        and ax, 0x4700
        cmp ax, 0x4200
        CHECK 7
        fistp dword [SCRATCH]
        cmp dword [SCRATCH], 2
        CHECK 8
        fstp st0
        ; FBSTP / FBLD round trip of -12345.
        fild dword [m12345]
        fbstp tword [SCRATCH]
        cmp dword [SCRATCH], 0x00012345
        CHECK 9
        cmp byte [SCRATCH+9], 0x80
        CHECK 10
        fbld tword [SCRATCH]
        fistp dword [SCRATCH]
        cmp dword [SCRATCH], -12345
        CHECK 11
        ; FCOMI: 2 < 3 sets CF only.
        fild dword [three]
        fld1
        fadd st0, st0
        fcomip st0, st1
        fstp st0                            ; leaves EFLAGS alone
        setc al
        setz bl
        cmp al, 1
        CHECK 12
        cmp bl, 0
        CHECK 13
        ; sin(pi/6) is 0.5 within a few ulps.
        fldpi
        fidiv dword [six]
        fsin
        fsub qword [half]
        fabs
        fcomp qword [tiny]
        fnstsw ax
        test ah, 0x01                       ; C0: |err| < 1e-17
        setnz al
        cmp al, 1
        CHECK 14
        ; Stack empty again: all tags empty.
        fnstenv [SCRATCH]
        cmp word [SCRATCH+8], 0xFFFF
        CHECK 15
        PRINT msg_arith

        ; --- 2. #MF: an unmasked divide-by-zero is reported at the next FWAIT ---
        fninit
        fldcw [cw_ze]
        fld1
        fldz
        fdivp                               ; sets ZE and ES, no fault yet
        fnstsw ax
        and ax, 0x8084
        cmp ax, 0x8084
        CHECK 16
        cmp qword [MF_COUNT], 0
        CHECK 17
        fwait                               ; #MF, handler clears, re-executes
        cmp qword [MF_COUNT], 1
        CHECK 18
        fninit
        PRINT msg_mf

        ; --- 3. #NM with CR0.TS ---
        mov rax, cr0
        or rax, 8
        mov cr0, rax
        fld1                                ; #NM, the handler clears TS
        fstp st0
        cmp qword [NM_COUNT], 1
        CHECK 19
        PRINT msg_nm

        ; --- 4. FXSAVE/FXRSTOR: two tasks, eager switch ---
        fninit
        fild dword [three]
        fild dword [four]
        movdqu xmm0, [pattern_a]
        fxsave [AREA_A]                     ; task A: ST0=4 ST1=3, xmm0=A
        fninit
        fldpi
        movdqu xmm0, [pattern_b]
        fxsave [AREA_B]                     ; task B: ST0=pi, xmm0=B
        fxrstor [AREA_A]                    ; back to A
        faddp                               ; 7
        fistp dword [SCRATCH]
        cmp dword [SCRATCH], 7
        CHECK 20
        movdqu [SCRATCH], xmm0
        mov rax, [pattern_a]
        cmp [SCRATCH], rax
        CHECK 21
        fxrstor [AREA_B]                    ; to B
        fstp tword [SCRATCH]
        mov rax, 0xC90FDAA22168C235
        cmp [SCRATCH], rax
        CHECK 22
        movdqu [SCRATCH], xmm0
        mov rax, [pattern_b]
        cmp [SCRATCH], rax
        CHECK 23
        ; The abridged tag byte of task A's image: R6 and R7 in use.
        cmp byte [AREA_A+4], 0xC0
        CHECK 24
        PRINT msg_fx

        ; --- 5. lazy switch: CR0.TS, the #NM handler swaps A and B ---
        fxrstor [AREA_A]                    ; A is current
        mov qword [CUR_TASK], 0
        mov qword [NM_COUNT], 0
        fxsave [AREA_A]
        mov rax, cr0
        or rax, 8                           ; "switch to B": set TS
        mov cr0, rax
        fld1                                ; #NM: save A, load B; then B's stack
        faddp                               ; pi + 1 in task B
        fxsave [AREA_B]
        mov rax, cr0
        or rax, 8                           ; "switch to A"
        mov cr0, rax
        faddp                               ; #NM: save B, load A; 4 + 3
        fistp dword [SCRATCH]
        cmp dword [SCRATCH], 7
        CHECK 25
        cmp qword [NM_COUNT], 2
        CHECK 26
        fxrstor [AREA_B]
        fistp dword [SCRATCH]               ; round(pi + 1) = 4
        cmp dword [SCRATCH], 4
        CHECK 27
        PRINT msg_lazy

        ; --- 6. misaligned FXSAVE raises #GP(0) and writes nothing ---
        mov qword [AREA_B + 0x108], 0x5A5A
        lea rbx, [AREA_B + 8]
        fxsave [rbx]                        ; 0F AE 03: 3 bytes, skipped by #GP handler
        cmp qword [GP_COUNT], 1
        CHECK 28
        cmp qword [AREA_B + 0x108], 0x5A5A
        CHECK 29
        PRINT msg_gp

        PRINT msg_done
        mov al, 0
        out 0xF4, al
        hlt

; rax = handler, ebx = vector
set_gate:
        mov rdi, rbx
        shl rdi, 4
        add rdi, IDT
        mov [rdi], ax
        mov word [rdi+2], 0x18
        mov word [rdi+4], 0x8E00
        shr rax, 16
        mov [rdi+6], ax
        shr rax, 16
        mov [rdi+8], eax
        mov dword [rdi+12], 0
        ret

nm_handler:
        clts
        inc qword [NM_COUNT]
        mov rax, [CUR_TASK]                 ; 2: no task state to swap
        cmp rax, 1
        ja .done
        test rax, rax
        jnz .to_a
        fxsave [AREA_A]
        fxrstor [AREA_B]
        mov qword [CUR_TASK], 1
        jmp .done
.to_a:  fxsave [AREA_B]
        fxrstor [AREA_A]
        mov qword [CUR_TASK], 0
.done:  iretq

mf_handler:
        inc qword [MF_COUNT]
        fnclex
        iretq

gp_handler:
        add rsp, 8                          ; error code
        inc qword [GP_COUNT]
        add qword [rsp], 3
        iretq

print64:
        lodsb
        test al, al
        jz .d
        out 0xE9, al
        jmp print64
.d:     ret

        align 16
pattern_a:  dq 0x1111222233334444, 0x5555666677778888
pattern_b:  dq 0x9999AAAABBBBCCCC, 0xDDDDEEEEFFFF0000
half:       dq 0x3FE0000000000000       ; 0.5
tiny:       dq 0x3C670EF54646D497       ; 1e-17
three:      dd 3
four:       dd 4
five:       dd 5
six:        dd 6
seventeen:  dd 17
m12345:     dd -12345
cw_down:    dw 0x077F                   ; RC = down
cw_single:  dw 0x007F                   ; PC = 24 bits
cw_ze:      dw 0x037B                   ; ZE unmasked

msg_long:   db "long mode", 10, 0
msg_arith:  db "PASS x87 arithmetic, constants, FPREM, BCD, FCOMI, FSIN", 10, 0
msg_mf:     db "PASS #MF at FWAIT", 10, 0
msg_nm:     db "PASS #NM with CR0.TS", 10, 0
msg_fx:     db "PASS FXSAVE/FXRSTOR task switch", 10, 0
msg_lazy:   db "PASS lazy FPU switch on #NM", 10, 0
msg_gp:     db "PASS #GP on misaligned FXSAVE", 10, 0
msg_done:   db "ALL PASS", 10, 0

        align 8
gdt:    dq 0
        dq 0x00CF9A000000FFFF       ; 0x08 code32
        dq 0x00CF92000000FFFF       ; 0x10 data
        dq 0x00AF9A000000FFFF       ; 0x18 code64
gdt_end:
gdt_ptr: dw gdt_end - gdt - 1
        dd gdt
idt_ptr: dw 256*16 - 1
        dq IDT

        times 0xFFF0 - ($ - $$) db 0xFF
        bits 16
reset:  jmp 0xF000:R(start16)
        times 0x10000 - ($ - $$) db 0xFF
