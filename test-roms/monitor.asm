; monitor.asm: a machine in a known state for the monitor tests
; (tests/monitor.rs). Switches to 64-bit long mode with identity paging of
; the first 2 MiB, also mapped at 1 GiB (so `x` at 0x40005000 shows what `xp`
; shows at 0x5000), copies a known pattern to 0x5000, draws a 64x48 colour
; gradient in a Bochs VBE mode (for screendump), routes IRQ1 (the i8042)
; to a handler that writes each scan code to port 0xE9, prints "ready\n" on
; 0xE9, loads known values into RAX..R15 and then spins incrementing the
; qword at 0x6000 (so a stopped machine is seen not to advance) with
; interrupts on; the handler saves what it changes.
; Build: nasm -f bin -o monitor.bin monitor.asm   (a 64 KiB BIOS image)
%define ROM 0xF0000
%define R(x) ((x) - ROM)
%define IDT 0x4000
%define LFB 0xE0000000
%macro dispi 2                          ; Bochs VBE register %1 = %2
        mov dx, 0x1CE
        mov ax, %1
        out dx, ax
        inc dx
        mov ax, %2
        out dx, ax
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
        ; Page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD).
        mov edi, 0x1000
        mov ecx, 3 * 1024
        xor eax, eax
        rep stosd
        mov dword [0x1000], 0x2003
        mov dword [0x2000], 0x3003
        mov dword [0x2008], 0x3003      ; 1 GiB: the same 2 MiB again
        mov dword [0x3000], 0x83        ; a 2 MiB page at 0
        dispi 4, 0                      ; ENABLE: off while the mode changes
        dispi 1, 64                     ; XRES
        dispi 2, 48                     ; YRES
        dispi 3, 32                     ; BPP
        dispi 4, 0x41                   ; ENABLED | LFB_ENABLED
        mov edi, LFB
        xor ebx, ebx
.px:    mov eax, ebx
        imul eax, eax, 0x010305
        stosd
        inc ebx
        cmp ebx, 64 * 48
        jb .px
        mov esi, pattern
        mov edi, 0x5000
        mov ecx, pattern_end - pattern
        rep movsb
        mov eax, cr4
        or eax, 1 << 5                  ; PAE
        mov cr4, eax
        mov eax, 0x1000
        mov cr3, eax
        mov ecx, 0xC0000080             ; EFER
        rdmsr
        or eax, 1 << 8                  ; LME
        wrmsr
        mov eax, cr0
        or eax, 1 << 31                 ; PG
        mov cr0, eax
        jmp 0x18:lm64

        bits 64
lm64:   lidt [idt_ptr]
        mov rax, kbd_irq
        mov word [IDT + 0x21 * 16], ax
        mov word [IDT + 0x21 * 16 + 2], 0x18
        mov word [IDT + 0x21 * 16 + 4], 0x8E00
        shr rax, 16
        mov word [IDT + 0x21 * 16 + 6], ax
        mov dword [IDT + 0x21 * 16 + 8], 0
        ; 8259A: vectors 0x20.., only IRQ1 unmasked.
        mov al, 0x11
        out 0x20, al
        mov al, 0x20
        out 0x21, al
        mov al, 4
        out 0x21, al
        mov al, 1
        out 0x21, al
        mov al, 0xFD
        out 0x21, al
        mov al, 0xFF
        out 0xA1, al
        mov rsi, ready
.msg:   lodsb
        test al, al
        jz .regs
        out 0xE9, al
        jmp .msg
.regs:  mov rax, 0x1111111111111111
        mov rbx, 0x2222222222222222
        mov rcx, 0x3333333333333333
        mov rdx, 0x4444444444444444
        mov rsi, 0x5555555555555555
        mov rdi, 0x6666666666666666
        mov rbp, 0x7777777777777777
        mov r8, 0x8888888888888888
        mov r9, 0x9999999999999999
        mov r10, 0xAAAAAAAAAAAAAAAA
        mov r11, 0xBBBBBBBBBBBBBBBB
        mov r12, 0xCCCCCCCCCCCCCCCC
        mov r13, 0xDDDDDDDDDDDDDDDD
        mov r14, 0xEEEEEEEEEEEEEEEE
        mov r15, 0x0123456789ABCDEF
        sti
.spin:  inc qword [0x6000]
        jmp .spin

kbd_irq:
        push rax
        in al, 0x60
        out 0xE9, al
        mov al, 0x20
        out 0x20, al
        pop rax
        iretq

ready:  db "ready", 10, 0
pattern:
        db "vx86 monitor ok!"
        dd 0xDEADBEEF, 0x12345678, 0xCAFEF00D, 0x0BADC0DE
pattern_end:

        align 8
gdt:    dq 0
        dq 0x00CF9A000000FFFF           ; 0x08: 32-bit code
        dq 0x00CF92000000FFFF           ; 0x10: data
        dq 0x00AF9A000000FFFF           ; 0x18: 64-bit code
gdt_end:
gdt_ptr: dw gdt_end - gdt - 1
        dd gdt
idt_ptr: dw 256 * 16 - 1
        dq IDT

        times 0xFFF0 - ($ - $$) db 0xFF
        bits 16
        jmp 0xF000:R(start16)
        times 0x10000 - ($ - $$) db 0xFF
