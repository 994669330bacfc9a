; vx86 call/return benchmark ROM: switches to 32-bit protected mode and runs
; a loop of near calls into small functions that save and restore registers
; on the stack (CALL, PUSH, POP, RET, plus a little ALU work), REPS times,
; then reports a checksum on port 0xE9 and exits via port 0xF4 (value 0 ->
; exit status 1). Build: nasm -f bin -o callret.bin callret.asm
%define ROM 0xF0000
%define R(x) ((x) - ROM)
%define REPS 4000000
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
        mov ecx, REPS
        xor eax, eax
        mov edx, 1
.rep:   call outer
        dec ecx
        jnz .rep
        ; print "sum=XXXXXXXX"
        mov esi, eax
        mov al, 's'
        out 0xE9, al
        mov eax, esi
        call hex32
        mov al, 10
        out 0xE9, al
        xor eax, eax
        out 0xF4, al
        hlt
; eax += f(edx), edx = edx * 3 + 1 (through two levels of calls)
outer:  push ebx
        push esi
        mov ebx, edx
        call inner
        add eax, ebx
        call inner
        pop esi
        pop ebx
        ret
inner:  push ebp
        mov ebp, esp
        push edi
        lea edi, [edx + edx * 2 + 1]
        mov edx, edi
        xor eax, edx
        pop edi
        pop ebp
        ret
hex32:  mov ecx, 8
.h:     rol eax, 4
        push eax
        and al, 15
        add al, '0'
        cmp al, '9'
        jbe .o
        add al, 7
.o:     out 0xE9, al
        pop eax
        loop .h
        ret
        align 8
gdt:    dq 0
        dq 0x00CF9A000000FFFF
        dq 0x00CF92000000FFFF
gdt_end:
gdt_ptr: dw gdt_end - gdt - 1
        dd gdt
        times 0xFFF0 - ($ - $$) db 0xFF
        bits 16
        jmp 0xF000:R(start16)
        times 0x10000 - ($ - $$) db 0xFF
