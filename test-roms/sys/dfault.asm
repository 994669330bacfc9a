; dfault.asm: exceptions while delivering exceptions (tests/sys_roms.rs,
; expected output in dfault.expected, recorded with
; scripts/bochs-reference.sh).
; The classes of SDM Vol. 3A Table 6-5: a benign then a contributory
; exception (handled serially, EXT set in the error code), contributory
; then contributory, page fault then contributory and page fault then page
; fault (#DF with error code 0), contributory then page fault (serially);
; the EXT bit of faults raised while switching to the ring-0 stack;
; faults in the IDT itself (limit, gate type); then a triple fault: the
; ROM marks RAM, the CPU resets, and the ROM, run again from the reset
; vector, finds the mark and reports it.
; #DF (and #PF where the stack is gone) go through task gates to their own
; tasks, so their handlers have a stack whatever the faulting code left.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/dfault.bin test-roms/sys/dfault.asm

%include "syslib.inc"

%define TSSDF    0x60             ; the #DF task
%define TSSPF    0x68             ; the #PF task
%define TSSDF_B  0x6000
%define TSSPF_B  0x6080
%define CODENP   0x70             ; code32 DPL0, not present
%define TSSTS    0x80             ; the #TS task
%define TSSSS    0x88             ; the #SS task
%define TSSTS_B  0x6100
%define TSSSS_B  0x6180
%define DATANP   0x90             ; data32 DPL0, not present
%define E_STACK  0x7800
%define PD       0x10000
%define PT0      0x11000
%define MARK     0x600            ; survives the reset (RAM is kept)
%define MARK_VAL 0x54524950       ; "TRIP"

; TASK_GATE vector, tss selector
%macro TASK_GATE 2
        mov dword [IDT_BASE + (%1) * 8], (%2) << 16
        mov dword [IDT_BASE + (%1) * 8 + 4], 0x00008500
%endmacro
; RING3 target: IRET to ring 3 (flat CODE3/DATA3, stack 0x8000, IF=0)
%macro RING3 1
        push dword DATA3
        push dword 0x8000
        push dword 0x0002
        push dword CODE3
        push dword %1
        iretd
%endmacro
; INT_GATE vector: back to syslib's exception stub
%macro INT_GATE 1
        mov word [IDT_BASE + (%1) * 8], R(exc_stubs) + (%1) * 16
        mov word [IDT_BASE + (%1) * 8 + 2], CODE0
        mov dword [IDT_BASE + (%1) * 8 + 4], 0x000F8E00
%endmacro

        bits 16
main16:
        xor ax, ax
        mov ds, ax
        cmp dword [MARK], MARK_VAL
        je after_reset
        call enter_pm
        bits 32
        PUTS "dfault: exceptions while delivering exceptions", 10
        GDT_SET TSSDF, 0x0000_8900_0000_0067 | (TSSDF_B << 16)
        GDT_SET TSSPF, 0x0000_8900_0000_0067 | (TSSPF_B << 16)
        GDT_SET CODENP, 0x00CF_1B00_0000_FFFF
        mov edi, TSSDF_B
        mov eax, 8
        call init_etask
        mov edi, TSSPF_B
        mov eax, 14
        call init_etask
        TASK_GATE 8, TSSDF
        ; identity page tables, for the page-fault cases
        mov edi, PD
        xor eax, eax
        mov ecx, 0x1000 / 4
        rep stosd
        mov edi, PT0
        mov eax, 3
        mov ecx, 1024
.pt0:   stosd
        add eax, 0x1000
        loop .pt0
        mov dword [PT0 + (0x300000 >> 12) * 4], 0  ; not present: 0x300000
        mov dword [PT0 + (0x302000 >> 12) * 4], 0  ; and 0x302000
        mov dword [PD], PT0 | 3

        ; --- benign, then contributory: serially
        TRY "ud2, idt[6] not present"
        and byte [IDT_BASE + 6 * 8 + 5], 0x7F
        ud2
        ENDTRY
        or byte [IDT_BASE + 6 * 8 + 5], 0x80
        TRY "int3, idt[3] a 16-bit gate to a not-present segment"
        mov word [IDT_BASE + 3 * 8 + 2], CODENP
        mov byte [IDT_BASE + 3 * 8 + 5], 0x86
        int3
        ENDTRY
        INT_GATE 3

        ; --- contributory, then contributory: #DF
        TRY "gp, idt[13] beyond the idt limit"
        o32 lidt [cs:idt_to12]
        mov ax, 0x1F8
        mov ds, ax
        ENDTRY
        o32 lidt [cs:idt_ptr]
        TRY "int 0d (soft), idt[13] beyond the idt limit"
        o32 lidt [cs:idt_to12]
        int 0x0D
        ENDTRY
        o32 lidt [cs:idt_ptr]
        TRY "de, idt[0] with a bad type"
        mov byte [IDT_BASE + 5], 0x80   ; present, type 0
        xor ecx, ecx
        div ecx
        ENDTRY
        INT_GATE 0
        TRY "gp, idt[13] a trap gate to a data segment"
        mov word [IDT_BASE + 13 * 8 + 2], DATA0
        mov byte [IDT_BASE + 13 * 8 + 5], 0x8F
        mov ax, 0x1F8
        mov ds, ax
        ENDTRY
        INT_GATE 13
        TRY "ts (bad tss limit), idt[10] to a not-present segment"
        mov word [IDT_BASE + 10 * 8 + 2], CODENP
        GDT_SET 0x78, 0x0000_8900_6200_0050
        jmp 0x78:0
        ENDTRY
        INT_GATE 10

        ; --- EXT from the stack switch (SDM Vol. 3A 6.13): TSS0's SS0 is
        ; bad, so delivering an event from ring 3 to a ring-0 handler faults
        ; while loading the new stack. An exception (ud2) reports it with
        ; EXT=1, INT n with EXT=0. #TS and #SS go to tasks of their own, which
        ; take no stack from TSS0.
        GDT_SET TSSTS, 0x0000_8900_0000_0067 | (TSSTS_B << 16)
        GDT_SET TSSSS, 0x0000_8900_0000_0067 | (TSSSS_B << 16)
        GDT_SET DATANP, 0x00CF_1200_0000_FFFF
        mov edi, TSSTS_B
        mov eax, 10
        call init_etask
        mov edi, TSSSS_B
        mov eax, 12
        call init_etask
        TASK_GATE 10, TSSTS
        TASK_GATE 12, TSSSS
        mov word [IDT_BASE + 0x40 * 8], R(exc_stubs)
        mov word [IDT_BASE + 0x40 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x40 * 8 + 4], 0x000FEE00  ; int gate DPL3
        TRY "ud2 from r3, tss ss0 null"
        mov word [TSS_BASE + 8], 0
        RING3 .r3_ud_null
.r3_ud_null:
        ud2
        ENDTRY
        TRY "int 40 (soft) from r3, tss ss0 null"
        mov word [TSS_BASE + 8], 0
        RING3 .r3_int_null
.r3_int_null:
        int 0x40
        ENDTRY
        TRY "ud2 from r3, tss ss0 with rpl 3"
        mov word [TSS_BASE + 8], DATA3
        RING3 .r3_ud_rpl
.r3_ud_rpl:
        ud2
        ENDTRY
        TRY "int 40 (soft) from r3, tss ss0 not present"
        mov word [TSS_BASE + 8], DATANP
        RING3 .r3_int_np
.r3_int_np:
        int 0x40
        ENDTRY
        TRY "ud2 from r3, tss ss0 not present"
        mov word [TSS_BASE + 8], DATANP
        RING3 .r3_ud_np
.r3_ud_np:
        ud2
        ENDTRY
        mov word [TSS_BASE + 8], DATA0
        INT_GATE 10
        INT_GATE 12

        ; --- with paging
        mov eax, PD
        mov cr3, eax
        mov [TSSDF_B + 0x1C], eax   ; the tasks' CR3
        mov [TSSPF_B + 0x1C], eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        TRY "pf, idt[14] to a not-present segment"
        mov word [IDT_BASE + 14 * 8 + 2], CODENP
        mov eax, [0x302000]
        ENDTRY
        INT_GATE 14
        PUTS "  cr2="
        mov eax, cr2
        call pm_hex32
        call pm_nl
        TRY "pf, its frame on a not-present stack"
        mov esp, 0x301000
        mov eax, [0x302000]
        ENDTRY
        PUTS "  cr2="
        mov eax, cr2
        call pm_hex32
        call pm_nl
        TASK_GATE 14, TSSPF
        TRY "gp, its frame on a not-present stack (pf by task gate)"
        mov esp, 0x301000
        mov ax, 0x1F8
        mov ds, ax
        ENDTRY
        TRY "de, its frame on a not-present stack (pf by task gate)"
        mov esp, 0x301000
        xor ecx, ecx
        div ecx
        ENDTRY
        INT_GATE 14
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax

        ; --- triple fault: #UD, #GP and #DF all beyond the IDT limit
        PUTS "triple fault next", 10
        mov dword [MARK], MARK_VAL
        o32 lidt [cs:idt_none]
        ud2
        PUTS "no reset", 10
        jmp pm_shutdown

        bits 16
after_reset:
        mov dword [MARK], 0
        call enter_pm
        bits 32
        PUTS "after the reset: cr0="
        mov eax, cr0
        and eax, 0x7FFFFFFF         ; PE was set by enter_pm
        call pm_hex32
        call pm_nl
        PUTS "dfault: done", 10
        jmp pm_shutdown

idt_to12: dw 13 * 8 - 1           ; vectors 0-12
        dd IDT_BASE
idt_none: dw 0
        dd IDT_BASE

; EDI = TSS base, EAX = vector: a ring-0 task at etask, EAX = vector, ESI =
; its TSS, stack E_STACK.
init_etask:
        push eax
        push edi
        xor eax, eax
        mov ecx, 0x68 / 4
        rep stosd
        pop edi
        pop eax
        mov [edi + 0x28], eax
        mov [edi + 0x40], edi
        mov dword [edi + 0x20], etask
        mov dword [edi + 0x24], 2
        mov dword [edi + 0x38], E_STACK
        mov word [edi + 0x4C], CODE0
        mov word [edi + 0x48], DATA0
        mov word [edi + 0x50], DATA0
        mov word [edi + 0x54], DATA0
        mov word [edi + 0x58], DATA0
        mov word [edi + 0x5C], DATA0
        mov word [edi + 102], 0x68
        ret

; An exception task: prints "  #VV EEEEEEEE" (and CR2 for #PF), makes TSS0
; the current task again and resumes at [resume].
etask:
        pop ebx
        PUTS "  #"
        call pm_hex8
        mov al, ' '
        call pm_putc
        mov eax, ebx
        call pm_hex32
        cmp byte [esi + 0x28], 14
        jne .npf
        PUTS " cr2="
        mov eax, cr2
        call pm_hex32
.npf:
        and byte [GDT_BASE + TSS0 + 5], ~2
        and byte [GDT_BASE + TSSDF + 5], ~2
        and byte [GDT_BASE + TSSPF + 5], ~2
        and byte [GDT_BASE + TSSTS + 5], ~2
        and byte [GDT_BASE + TSSSS + 5], ~2
        mov ax, TSS0
        ltr ax
        pushfd
        and dword [esp], ~0x4000
        popfd
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
