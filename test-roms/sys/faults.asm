; faults.asm: exceptions and their delivery (tests/sys_roms.rs, expected
; output in faults.expected, recorded with scripts/bochs-reference.sh).
; The exception and error code of INT n through missing or out-of-limit IDT
; entries, #DF from a fault while delivering a contributory fault, #TS from
; a bad TSS, #NM from CR0.TS/EM, #DB from TF, #BP, #OF, #BR, #UD.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/faults.bin test-roms/sys/faults.asm

%include "syslib.inc"

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "faults: exceptions and their delivery", 10

        TRY "div by zero"
        xor ecx, ecx
        div ecx
        ENDTRY
        TRY "int3"
        int3
        ENDTRY
        TRY "into, of=1"
        mov al, 0x7F
        add al, 1
        into
        ENDTRY
        TRY "into, of=0"
        xor eax, eax
        into
        ENDTRY
        TRY "bound out of range"
        mov dword [scratch], 10
        mov dword [scratch + 4], 20
        mov eax, 21
        bound eax, [scratch]
        ENDTRY
        TRY "bound in range"
        mov eax, 20
        bound eax, [scratch]
        ENDTRY
        TRY "ud2"
        ud2
        ENDTRY
        TRY "int 20 (empty idt entry)"
        int 0x20
        ENDTRY
        TRY "lock nop"
        db 0xF0, 0x90
        ENDTRY
        TRY "mov cr1"
        mov eax, cr1
        ENDTRY
        TRY "tf single step"
        pushfd
        or dword [esp], 0x100
        popfd
        nop                         ; #DB after this
        ENDTRY
        ; (TF is clear again: the #DB handler's IRET never ran and the
        ; resume path does not restore EFLAGS; clear it anyway)
        pushfd
        and dword [esp], ~0x100
        popfd
        TRY "cr0.ts: fninit"
        mov eax, cr0
        or eax, 8
        mov cr0, eax
        fninit
        ENDTRY
        TRY "cr0.ts: wait (mp=0)"
        wait
        ENDTRY
        mov eax, cr0
        or eax, 2                   ; MP
        mov cr0, eax
        TRY "cr0.ts: wait (mp=1)"
        wait
        ENDTRY
        clts
        mov eax, cr0
        or eax, 4                   ; EM
        mov cr0, eax
        TRY "cr0.em: fld1"
        fld1
        ENDTRY
        mov eax, cr0
        and eax, ~6
        mov cr0, eax

        ; --- #TS: a task switch to a TSS whose limit is below 0x67
        GDT_SET 0x60, 0x0000_8900_6000_0050 ; 32-bit TSS, limit 0x50
        TRY "jmp to a tss with limit 0x50"
        jmp 0x60:0
        ENDTRY
        TRY "jmp to a busy tss"
        jmp TSS0:0
        ENDTRY

        ; --- INT n beyond the IDT limit
        o16 lidt [cs:idt_small]
        TRY "int 80 beyond idt limit"
        int 0x80
        ENDTRY
        o16 lidt [cs:idt_ptr]

        ; --- #DF: #GP while its own gate is not present -> #NP -> #DF
        mov eax, [IDT_BASE + 13 * 8 + 4]
        mov [scratch], eax
        and dword [IDT_BASE + 13 * 8 + 4], ~0x8000
        TRY "gp fault with idt[13] not present"
        xor eax, eax
        mov ds, ax
        mov eax, [0]
        ENDTRY
        mov eax, [scratch]
        mov [IDT_BASE + 13 * 8 + 4], eax
        TRY "int 0d with idt[13] not present (soft int: no #df)"
        and dword [IDT_BASE + 13 * 8 + 4], ~0x8000
        int 0x0D
        ENDTRY
        mov eax, [scratch]
        mov [IDT_BASE + 13 * 8 + 4], eax
        ; #DE whose gate points at a not-present code segment -> #NP -> #DF
        GDT_SET 0x68, 0x00CF_1B00_0000_FFFF
        mov word [IDT_BASE + 2], 0x68
        TRY "de fault to a not-present code segment"
        xor ecx, ecx
        div ecx
        ENDTRY
        mov word [IDT_BASE + 2], CODE0
        ; #BP (benign) whose gate points at a not-present segment: #NP only
        mov word [IDT_BASE + 3 * 8 + 2], 0x68
        TRY "int3 to a not-present code segment"
        int3
        ENDTRY
        mov word [IDT_BASE + 3 * 8 + 2], CODE0

        PUTS "faults: done", 10
        jmp pm_shutdown

idt_small: dw 0x7F * 8 + 7         ; vectors 0-0x7F
        dd IDT_BASE

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
