; tasks.asm: hardware task switches (tests/sys_roms.rs, expected output in
; tasks.expected, recorded with scripts/bochs-reference.sh).
; JMP and CALL to a TSS and through task gates (GDT and IDT), the busy bits,
; NT and the back link with IRET, the privilege checks on TSSs and task
; gates, the fault and error code for each bad field of an incoming TSS
; (before the commit point in the old task, after it in the new one), the
; I/O permission bitmap of a ring-3 task (IOPL < CPL) and a bitmap beyond
; the TSS limit, and a switch to a 16-bit TSS.
; #TS, #NP, #SS and #GP go through task gates to their own tasks: a fault
; raised after the commit point finds the segment registers of a half-loaded
; task, so only a task switch gives its handler a sound stack. Such a
; handler prints "  #VV EEEEEEEE in TTTT" (TTTT: the task that faulted,
; from its back link) and resumes like the exception stubs of syslib.inc.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/tasks.bin test-roms/sys/tasks.asm

%include "syslib.inc"

; TSSs (GDT selector, base)
%define TSSA     0x60             ; ring-0 task A, 32-bit
%define TSSA_B   0x6000
%define TSSB     0x68             ; ring-3 task B with an I/O bitmap
%define TSSB_B   0x6100
%define TGATEA0  0x70             ; task gate -> A, DPL0
%define TGATEA3  0x78             ; task gate -> A, DPL3
%define TSS16    0x80             ; 16-bit TSS
%define TSS16_B  0x6400
%define TSSE10   0x88             ; the exception tasks, vectors 10-13
%define TSSE_B   0x6500           ; + 0x80 per vector
%define TGATE0_3 0xA8             ; task gate -> TSS0, DPL3
%define TSSX     0xB0             ; a TSS each test spoils in one field
%define TSSX_B   0x6800
%define LDTD     0xB8             ; an LDT (base 0x6A00, 2 entries)
%define LDT_B    0x6A00
%define CODENP   0xC0             ; code32 DPL0, not present
%define DATANP   0xC8             ; data32 DPL0, not present
%define TGATEC   0xD0             ; task gate -> CODE0 (not a TSS)
%define CODEXO   0xD8             ; code32 DPL0, execute-only
%define TSSA3    0xE0             ; task A's TSS again, DPL3

%define E_STACK  0x7800           ; the exception tasks' stack top
%define task_var (VARS + 0x40)    ; what a task saw, printed by task 0
%define t_tr     (task_var + 0)
%define t_link   (task_var + 4)
%define t_flags  (task_var + 8)
%define t_cr0    (task_var + 12)
%define t_ax     (task_var + 16)

%macro RING3 2                    ; target, EFLAGS (IOPL in it)
        push dword DATA3
        push dword 0x8000
        push dword %2
        push dword CODE3
        push dword %1
        iretd
%endmacro

; TGATE sel, tss selector, attribute word
%macro TGATE 3
        mov dword [GDT_BASE + (%1)], (%2) << 16
        mov dword [GDT_BASE + (%1) + 4], (%3)
%endmacro

; TSS32 base, eip, cs, data selector (SS..GS), esp, eflags: a clean TSS
%macro TSS32 6
        mov edi, %1
        mov eax, %2
        mov ebx, (%3) | ((%4) << 16)
        mov ecx, %5
        mov edx, %6
        call init_tss
%endmacro

; TYPE "text", selector: the descriptor's type byte (busy = 8B/83)
%macro TYPE 2
        PUTS %1
        movzx eax, byte [GDT_BASE + (%2) + 5]
        call pm_hex8
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "tasks: task switches", 10
        mov word [IDT_BASE + 0x40 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x40 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x40 * 8 + 4], 0x000FEE00  ; int gate DPL3
        mov dword [IDT_BASE + 0x44 * 8], TSSA << 16       ; task gate DPL0 -> A
        mov dword [IDT_BASE + 0x44 * 8 + 4], 0x00008500
        mov dword [IDT_BASE + 0x45 * 8], TSSA << 16       ; task gate DPL3 -> A
        mov dword [IDT_BASE + 0x45 * 8 + 4], 0x0000E500
        ; vectors 10-13 -> task gates to the exception tasks
%assign v 10
%rep 4
        mov dword [IDT_BASE + v * 8], (TSSE10 + (v - 10) * 8) << 16
        mov dword [IDT_BASE + v * 8 + 4], 0x00008500
        GDT_SET TSSE10 + (v - 10) * 8, 0x0000_8900_0000_0067 | ((TSSE_B + (v - 10) * 0x80) << 16)
        TSS32 TSSE_B + (v - 10) * 0x80, etask, CODE0, DATA0, E_STACK, 2
        mov dword [TSSE_B + (v - 10) * 0x80 + 0x28], v      ; EAX = vector
        mov dword [TSSE_B + (v - 10) * 0x80 + 0x40], TSSE_B + (v - 10) * 0x80 ; ESI = own TSS
%assign v v+1
%endrep
        GDT_SET TSSA, 0x0000_8900_0000_0067 | (TSSA_B << 16)
        GDT_SET TSSB, 0x0000_8900_0000_00E8 | (TSSB_B << 16)
        TGATE TGATEA0, TSSA, 0x8500
        TGATE TGATEA3, TSSA, 0xE500
        GDT_SET TSS16, 0x0000_8100_0000_002B | (TSS16_B << 16)
        TGATE TGATE0_3, TSS0, 0xE500
        GDT_SET LDTD, 0x0000_8200_0000_000F | (LDT_B << 16)
        GDT_SET CODENP, 0x00CF_1B00_0000_FFFF
        GDT_SET DATANP, 0x00CF_1300_0000_FFFF
        TGATE TGATEC, CODE0, 0x8500
        GDT_SET CODEXO, 0x00CF_9900_0000_FFFF
        GDT_SET TSSA3, 0x0000_E900_0000_0067 | (TSSA_B << 16)
        mov dword [LDT_B], 0x0000FFFF                    ; LDT 0x04: data32 DPL0
        mov dword [LDT_B + 4], 0x00CF9300
        mov dword [LDT_B + 8], 0                          ; LDT 0x0C: null
        mov dword [LDT_B + 12], 0

        ; --- JMP to a TSS: no back link, NT clear, the old TSS not busy
        TSS32 TSSA_B, task_a_jmp, CODE0, DATA0, 0x7000, 2
        mov word [TSSA_B], 0x5555   ; the link field a JMP leaves alone
        mov ebx, 0x12345678
        jmp TSSA:0
        PUTS "jmp tss:"
        call show_task
        TYPE " tss0=", TSS0
        TYPE " a=", TSSA
        PUTS " ebx="
        HEX32 ebx
        PUTS " a.ebx="
        HEX32 [TSSA_B + 0x34]
        PUTS " a.eflags="
        HEX32 [TSSA_B + 0x24]
        call pm_nl
        clts

        ; --- JMP through a task gate
        TSS32 TSSA_B, task_a_jmp, CODE0, DATA0, 0x7000, 2
        jmp TGATEA0:0
        PUTS "jmp task gate:"
        call show_task
        TYPE " tss0=", TSS0
        TYPE " a=", TSSA
        call pm_nl
        clts

        ; --- CALL through a task gate, IRET back
        TSS32 TSSA_B, task_a_iret, CODE0, DATA0, 0x7000, 2
        call TGATEA0:0
        PUTS "call task gate:"
        call show_task
        TYPE " tss0=", TSS0
        TYPE " a=", TSSA
        PUTS " a.eflags="
        HEX32 [TSSA_B + 0x24]
        PUTS " nt="
        pushfd
        pop eax
        shr eax, 14
        and eax, 1
        call pm_hex8
        call pm_nl
        clts

        ; --- CALL to a TSS directly, with NT already set in the caller
        TSS32 TSSA_B, task_a_iret, CODE0, DATA0, 0x7000, 0x4002
        pushfd
        or dword [esp], 0x4000
        popfd
        call TSSA:0
        PUTS "call tss, nt=1 in both:"
        call show_task
        PUTS " tss0.eflags="
        HEX32 [TSS_BASE + 0x24]
        PUTS " nt="
        pushfd
        pop eax
        shr eax, 14
        and eax, 1
        call pm_hex8
        call pm_nl
        pushfd
        and dword [esp], ~0x4000
        popfd
        clts

        ; --- INT n through an IDT task gate
        TSS32 TSSA_B, task_a_iret, CODE0, DATA0, 0x7000, 2
        int 0x44
        PUTS "int task gate:"
        call show_task
        TYPE " a=", TSSA
        call pm_nl
        clts

        ; --- busy bits and NT
        TRY "call busy tss0"
        call TSS0:0
        ENDTRY
        TRY "jmp busy tss0"
        jmp TSS0:0
        ENDTRY
        TSS32 TSSA_B, task_a_nested, CODE0, DATA0, 0x7000, 2
        TRY "call task gate to busy a (from a)"
        call TGATEA0:0
        ENDTRY
        TRY "iret nt=1, link to available a"
        mov word [TSS_BASE], TSSA
        pushfd
        or dword [esp], 0x4000
        popfd
        iretd
        ENDTRY
        TRY "iret nt=1, null link"
        mov word [TSS_BASE], 0
        pushfd
        or dword [esp], 0x4000
        popfd
        iretd
        ENDTRY
        TRY "iret nt=1, link to a code segment"
        mov word [TSS_BASE], CODE0
        pushfd
        or dword [esp], 0x4000
        popfd
        iretd
        ENDTRY
        TRY "jmp to a task gate for a code segment"
        jmp TGATEC:0
        ENDTRY
        GDT_SET TSSX, 0x0000_0900_0000_0067 | (TSSX_B << 16)
        TRY "jmp to a not-present tss"
        jmp TSSX:0
        ENDTRY

        ; --- privilege checks from ring 3
        TRY "r3: jmp to a dpl0 tss"
        RING3 .r3_a, 0x3002
.r3_a:  jmp TSSA:0
        PUTS " ok"
        int 0x40
        ENDTRY
        TRY "r3: call a dpl0 task gate"
        RING3 .r3_b, 0x3002
.r3_b:  call TGATEA0:0
        PUTS " ok"
        int 0x40
        ENDTRY
        TRY "r3: int to a dpl0 task gate"
        RING3 .r3_c, 0x3002
.r3_c:  int 0x44
        PUTS " ok"
        int 0x40
        ENDTRY
        TSS32 TSSA_B, task_a_iret, CODE0, DATA0, 0x7000, 2
        TRY "r3: call a dpl3 task gate to a ring-0 task"
        RING3 .r3_d, 0x3002
.r3_d:  call TGATEA3:0
        mov ax, DATA3
        mov ds, ax
        PUTS " back cs="
        mov eax, cs
        call pm_hex16
        int 0x40
        ENDTRY
        TSS32 TSSA_B, task_a_iret, CODE0, DATA0, 0x7000, 2
        TRY "r3: int to a dpl3 task gate"
        RING3 .r3_e, 0x3002
.r3_e:  int 0x45
        mov ax, DATA3
        mov ds, ax
        PUTS " back cs="
        mov eax, cs
        call pm_hex16
        int 0x40
        ENDTRY
        TSS32 TSSA_B, task_a_jmp, CODE0, DATA0, 0x7000, 2
        TRY "r3: jmp to a dpl3 tss, rpl 3"
        RING3 .r3_f, 0x3002
.r3_f:  jmp TSSA3 | 3:0
        mov ax, DATA3
        mov ds, ax
        PUTS " back cs="
        mov eax, cs
        call pm_hex16
        int 0x40
        ENDTRY
        call reset_tasks            ; TSS0 saved a ring-3 state: do not return to it

        ; --- a bad field in the incoming TSS
        TRY "tss ldt = data segment"
        call tssx_good
        mov word [TSSX_B + 0x60], DATA0
        jmp TSSX:0
        ENDTRY
        TRY "tss ldt = ldt descriptor, ds from it"
        call tssx_good
        mov word [TSSX_B + 0x60], LDTD
        mov word [TSSX_B + 0x54], 0x04
        jmp TSSX:0
        ENDTRY
        TRY "tss ldt null, ds with ti=1"
        call tssx_good
        mov word [TSSX_B + 0x54], 0x04
        jmp TSSX:0
        ENDTRY
        TRY "tss ldt, ds = null ldt entry"
        call tssx_good
        mov word [TSSX_B + 0x60], LDTD
        mov word [TSSX_B + 0x54], 0x0C
        jmp TSSX:0
        ENDTRY
        TRY "tss cs null"
        call tssx_good
        mov word [TSSX_B + 0x4C], 0
        jmp TSSX:0
        ENDTRY
        TRY "tss cs = data segment"
        call tssx_good
        mov word [TSSX_B + 0x4C], DATA0
        jmp TSSX:0
        ENDTRY
        TRY "tss cs not present"
        call tssx_good
        mov word [TSSX_B + 0x4C], CODENP
        jmp TSSX:0
        ENDTRY
        TRY "tss cs beyond the gdt limit"
        call tssx_good
        mov word [TSSX_B + 0x4C], 0x100
        jmp TSSX:0
        ENDTRY
        TRY "tss ss null"
        call tssx_good
        mov word [TSSX_B + 0x50], 0
        jmp TSSX:0
        ENDTRY
        TRY "tss ss = code segment"
        call tssx_good
        mov word [TSSX_B + 0x50], CODE0
        jmp TSSX:0
        ENDTRY
        TRY "tss ss dpl3, cs dpl0"
        call tssx_good
        mov word [TSSX_B + 0x50], DATA3
        jmp TSSX:0
        ENDTRY
        TRY "tss ss not present"
        call tssx_good
        mov word [TSSX_B + 0x50], DATANP
        jmp TSSX:0
        ENDTRY
        TRY "tss ds not present"
        call tssx_good
        mov word [TSSX_B + 0x54], DATANP
        jmp TSSX:0
        ENDTRY
        TRY "tss ds = execute-only code"
        call tssx_good
        mov word [TSSX_B + 0x54], CODEXO
        jmp TSSX:0
        ENDTRY
        TRY "tss es beyond the gdt limit"
        call tssx_good
        mov word [TSSX_B + 0x48], 0x1F8
        jmp TSSX:0
        ENDTRY
        TRY "tss gs = tss descriptor"
        call tssx_good
        mov word [TSSX_B + 0x5C], TSSA
        jmp TSSX:0
        ENDTRY
        TRY "tss fs dpl0 in a ring-3 task"
        call tssx_good
        mov word [TSSX_B + 0x4C], CODE3
        mov dword [TSSX_B + 0x50], DATA3
        mov dword [TSSX_B + 0x54], DATA3
        mov dword [TSSX_B + 0x48], DATA3
        mov dword [TSSX_B + 0x5C], DATA3
        mov word [TSSX_B + 0x58], DATA0
        jmp TSSX:0
        ENDTRY
        TRY "tss all good"
        call tssx_good
        jmp TSSX:0
        ENDTRY

        ; --- the I/O permission bitmap of ring-3 task B
        mov edi, TSSB_B + 0x68      ; ports 0-0x3FF denied, then the 0xFF byte
        mov eax, 0xFFFFFFFF
        mov ecx, 0x80 / 4
        rep stosd
        mov byte [TSSB_B + 0x68 + 0x80], 0xFF
        and byte [TSSB_B + 0x68 + (0xE9 >> 3)], ~(1 << (0xE9 & 7))
        TRY "task b iopl 0: out e9 allowed by the bitmap"
        mov eax, 0x0002
        call task_b_out
        ENDTRY
        TRY "task b iopl 0: out 80 denied"
        mov eax, 0x0002
        call task_b_out80
        ENDTRY
        TRY "task b iopl 3: out 80"
        mov eax, 0x3002
        call task_b_out80
        ENDTRY
        TRY "task b iopl 2: out 80 denied"
        mov eax, 0x2002
        call task_b_out80
        ENDTRY
        TRY "task b, bitmap beyond the tss limit: out e9"
        mov byte [GDT_BASE + TSSB], 0x67
        mov eax, 0x0002
        call task_b_out
        ENDTRY
        mov byte [GDT_BASE + TSSB], 0xE8

        ; --- a 16-bit TSS
        mov edi, TSS16_B
        xor eax, eax
        mov ecx, 0x2C / 2
        rep stosw
        mov word [TSS16_B + 0x0E], R(task16)     ; IP
        mov word [TSS16_B + 0x10], 0x0002        ; FLAGS
        mov word [TSS16_B + 0x12], 0x1616        ; AX
        mov word [TSS16_B + 0x1A], 0x7000        ; SP
        mov word [TSS16_B + 0x22], DATA0         ; ES
        mov word [TSS16_B + 0x24], CODE16        ; CS
        mov word [TSS16_B + 0x26], DATA0_16      ; SS: 16-bit, SP alone counts
        mov word [TSS16_B + 0x28], DATA0         ; DS
        mov eax, 0xAAAA5555
        mov ebx, 0xBBBB5555
        call TSS16:0
        PUTS "call 16-bit tss:"
        call show_task
        PUTS " ax="
        HEX32 [t_ax]
        PUTS " ebx="
        HEX32 ebx
        TYPE " tss16=", TSS16
        PUTS " saved ip="
        movzx eax, word [TSS16_B + 0x0E]
        sub eax, R(task16)
        call pm_hex16
        PUTS " ax="
        movzx eax, word [TSS16_B + 0x12]
        call pm_hex16
        PUTS " flags="
        movzx eax, word [TSS16_B + 0x10]
        call pm_hex16
        call pm_nl
        clts

        PUTS "tasks: done", 10
        jmp pm_shutdown

; Record what the running task sees: TR, its back link, EFLAGS, CR0.
record_task:
        push eax
        str eax
        mov [t_tr], eax
        pushfd
        pop dword [t_flags]
        mov eax, cr0
        mov [t_cr0], eax
        pop eax
        ret

; Print what record_task saw: " tr=TTTT link=LLLL nt=N ts=N" (link read
; from the TSS of that task).
show_task:
        PUTS " task tr="
        mov eax, [t_tr]
        call pm_hex16
        PUTS " link="
        mov eax, [t_link]
        call pm_hex16
        PUTS " nt="
        mov eax, [t_flags]
        shr eax, 14
        and eax, 1
        call pm_hex8
        PUTS " ts="
        mov eax, [t_cr0]
        shr eax, 3
        and eax, 1
        call pm_hex8
        PUTS ";"
        ret

; Task A bodies.
task_a_jmp:                         ; back to task 0 by JMP
        call record_task
        movzx eax, word [TSSA_B]
        mov [t_link], eax
        mov ebx, 0xA
        jmp TSS0:0
task_a_iret:                        ; back by IRET (NT=1)
        call record_task
        movzx eax, word [TSSA_B]
        mov [t_link], eax
        iretd
task_a_nested:                      ; calls itself through the gate
        call TGATEA0:0
        iretd

; Task B (ring 3, IOPL from EAX): OUT to 0xE9 or 0x80 then back to task 0.
task_b_out:
        mov ebx, task_b_e9
        jmp task_b
task_b_out80:
        mov ebx, task_b_80
task_b:
        mov edx, eax
        TSS32 TSSB_B, ebx, CODE3, DATA3, 0x8000, edx
        mov word [TSSB_B + 102], 0x68
        jmp TSSB:0
        ret
task_b_e9:
        mov al, '!'
        out 0xE9, al
        jmp TGATE0_3:0
task_b_80:
        out 0x80, al
        mov al, '!'
        out 0xE9, al               ; reached with IOPL 3 only
        jmp TGATE0_3:0

; TSS X: a valid ring-0 task whose body JMPs back to task 0.
tssx_good:
        GDT_SET TSSX, 0x0000_8900_0000_0067 | (TSSX_B << 16)
        TSS32 TSSX_B, .body, CODE0, DATA0, 0x7000, 2
        ret
.body:  jmp TSS0:0

; 16-bit task: records what it sees, IRET (NT=1) back.
        bits 16
task16:                             ; DS is DATA0 (base 0)
        o32 mov [t_ax], eax
        o32 str eax
        o32 mov [t_tr], eax
        o32 pushfd
        o32 pop dword [t_flags]
        mov eax, cr0
        mov [t_cr0], eax
        mov ax, [TSS16_B]
        mov [t_link], ax
        mov ax, 0x1717
        iret
        bits 32

; init_tss: EDI = base, EAX = EIP, BX = CS, EBX[31:16] = SS/DS/ES/FS/GS,
; ECX = ESP, EDX = EFLAGS; everything else 0, I/O map base 0x68.
init_tss:
        push eax
        push ecx
        push edi
        xor eax, eax
        mov ecx, 0x68 / 4
        rep stosd
        pop edi
        pop ecx
        pop eax
        mov [edi + 0x20], eax
        mov [edi + 0x24], edx
        mov [edi + 0x38], ecx
        mov [edi + 0x4C], bx
        shr ebx, 16
        mov [edi + 0x48], bx
        mov [edi + 0x50], bx
        mov [edi + 0x54], bx
        mov [edi + 0x58], bx
        mov [edi + 0x5C], bx
        mov dword [edi + 4], 0x9000          ; ESP0, SS0
        mov word [edi + 8], DATA0
        mov word [edi + 102], 0x68
        ret

; Clear the busy bit of every TSS, make TSS0 the current task again
; (LTR), NT and CR0.TS clear.
reset_tasks:
        push eax
        and byte [GDT_BASE + TSS0 + 5], ~2
        and byte [GDT_BASE + TSSA + 5], ~2
        and byte [GDT_BASE + TSSB + 5], ~2
        and byte [GDT_BASE + TSS16 + 5], ~2
        and byte [GDT_BASE + TSSE10 + 5], ~2
        and byte [GDT_BASE + TSSE10 + 8 + 5], ~2
        and byte [GDT_BASE + TSSE10 + 16 + 5], ~2
        and byte [GDT_BASE + TSSE10 + 24 + 5], ~2
        and byte [GDT_BASE + TSSX + 5], ~2
        and byte [GDT_BASE + TSSA3 + 5], ~2
        mov ax, TSS0
        ltr ax
        xor eax, eax
        lldt ax
        pushfd
        and dword [esp], ~0x4000
        popfd
        clts
        pop eax
        ret

; The exception tasks: EAX = vector, ESI = own TSS, error code on the stack.
etask:
        pop ebx
        mov [last_vec], eax
        mov [last_err], ebx
        PUTS "  #"
        call pm_hex8
        mov al, ' '
        call pm_putc
        mov eax, ebx
        call pm_hex32
        PUTS " in "
        movzx eax, word [esi]
        call pm_hex16
        call reset_tasks
        mov esp, [resume_esp]
        mov eax, [resume]
        test eax, eax
        jz .stop
        mov dword [resume], 0
        jmp eax
.stop:  PUTS 10, "unexpected fault", 10
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
