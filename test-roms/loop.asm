; vx86 CPU-bound benchmark ROM: switches to 32-bit protected mode and runs a
; sieve of Eratosthenes over 64 KiB plus a CRC-32 over it, REPS times, then
; reports the prime count and CRC on port 0xE9 and exits via port 0xF4
; (value 0 -> exit status 1). Build: nasm -f bin -o loop.bin loop.asm
%define ROM 0xF0000
%define R(x) ((x) - ROM)
%define REPS 200
%define N 65536
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
        mov ebp, REPS
.rep:   ; sieve at 0x100000
        mov edi, 0x100000
        mov ecx, N/4
        mov eax, 0x01010101
        rep stosd
        mov ebx, 2
.outer: cmp byte [0x100000 + ebx], 0
        je .next
        mov eax, ebx
        imul eax, ebx
        cmp eax, N
        jae .count
.mark:  mov byte [0x100000 + eax], 0
        add eax, ebx
        cmp eax, N
        jb .mark
.next:  inc ebx
        jmp .outer
.count: xor edx, edx
        mov ecx, 2
.cnt:   movzx eax, byte [0x100000 + ecx]
        add edx, eax
        inc ecx
        cmp ecx, N
        jb .cnt
        ; CRC-32 (bitwise) over the first 4 KiB of the sieve
        mov esi, 0x100000
        mov ecx, 4096
        mov eax, 0xFFFFFFFF
.crc:   xor al, [esi]
        inc esi
        mov bl, 8
.bit:   shr eax, 1
        jnc .nb
        xor eax, 0xEDB88320
.nb:    dec bl
        jnz .bit
        dec ecx
        jnz .crc
        not eax
        dec ebp
        jnz .rep
        ; print "primes=XXXXXXXX crc=XXXXXXXX"
        mov esi, eax
        mov ebx, edx
        mov al, 'p'
        out 0xE9, al
        mov eax, ebx
        call hex32
        mov al, ' '
        out 0xE9, al
        mov eax, esi
        call hex32
        mov al, 10
        out 0xE9, al
        xor eax, eax
        out 0xF4, al
        hlt
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
