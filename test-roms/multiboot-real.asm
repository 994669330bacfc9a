; multiboot-real.asm: a multiboot v1 kernel in conventional memory that
; leaves protected mode for real mode at once, as a real-mode test kernel
; does (kvm-unit-tests' x86/realmode is one): started with -kernel, it loads
; its own GDT, drops through 16-bit protected mode to real mode, and reports
; from real mode on port 0xE9, reading the multiboot information through
; segment:offset addresses and taking an interrupt through its own IVT; it
; exits through isa-debug-exit at 0xF4 (tests/boot.rs).
;
;   nasm -f bin -o multiboot-real.bin multiboot-real.asm            at 0x8000
;   nasm -f bin -DGDTPAGE -o multiboot-real1000.bin multiboot-real.asm
;                                   at 0x1000, the page of the loader's GDT
;
; Both are a.out-kludge images (flag 16): the header's address fields say
; where the file goes, so no ELF loader is involved.

%ifdef GDTPAGE
BASE     equ 0x1000
%else
BASE     equ 0x8000
%endif
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010003                 ; PAGE_ALIGN | MEMORY_INFO | AOUT_KLUDGE
VEC      equ 0x30                       ; the interrupt taken through the IVT

        org BASE
        bits 32
mb_header:
        dd MB_MAGIC
        dd MB_FLAGS
        dd -(MB_MAGIC + MB_FLAGS)
        dd mb_header                    ; header_addr
        dd BASE                         ; load_addr
        dd file_end                     ; load_end_addr
        dd bss_end                      ; bss_end_addr
        dd mb_entry                     ; entry_addr

mb_entry:
        mov [s_eax], eax
        mov [s_ebx], ebx
        mov eax, cr0
        mov [s_cr0], eax
        lgdt [gdt_ptr]
        jmp 0x08:pm16                   ; 16-bit code, base 0, limit 0xFFFF

        bits 16
pm16:   mov ax, 0x10                    ; 16-bit data, base 0, limit 0xFFFF
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax
        mov eax, cr0
        and eax, ~1
        mov cr0, eax
        jmp 0:real

real:   xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, stack_top
        lidt [ivt_ptr]
        mov si, m_hello
        call puts
        mov eax, [s_eax]
        call hex32
        mov si, m_ebx
        call puts
        mov eax, [s_ebx]
        call hex32
        mov si, m_cr0
        call puts
        mov eax, [s_cr0]
        call hex32
        mov si, m_now
        call puts
        mov eax, cr0
        call hex32
        call nl
        ; The information, read in real mode: ES:DI = its linear address.
        mov eax, [s_ebx]
        call lin_es_di
        mov si, m_flags
        call puts
        mov eax, [es:di]
        call hex32
        mov si, m_lower
        call puts
        mov eax, [es:di + 4]
        call hex32
        mov si, m_mmap
        call puts
        mov eax, [es:di + 44]
        call hex32
        call nl
        mov si, m_cmdline
        call puts
        mov eax, [es:di + 16]
        call lin_es_di
        call es_puts
        mov al, ']'
        call putc
        call nl
        mov si, m_loader
        call puts
        mov eax, [s_ebx]
        call lin_es_di
        mov eax, [es:di + 64]
        call lin_es_di
        call es_puts
        mov al, ']'
        call putc
        call nl
        ; An interrupt through the IVT at 0: INT pushes FLAGS, CS, IP.
        mov word [VEC * 4], int_handler
        mov word [VEC * 4 + 2], 0
        mov word [int_seen], 0
        int VEC
        mov si, m_int
        call puts
        mov ax, [int_seen]
        call hex16
        call nl
        mov si, m_end
        call puts
        mov al, 0
        out 0xF4, al                    ; isa-debug-exit: status 1
        cli
        hlt

int_handler:
        mov bp, sp
        mov ax, [bp + 2]                ; the CS pushed: 0
        add ax, 0x1234
        mov [int_seen], ax
        iret

; EAX (a linear address below 1 MiB) -> ES:DI. Clobbers EAX.
lin_es_di:
        mov di, ax
        and di, 0x0F
        shr eax, 4
        mov es, ax
        ret

; AL -> the debug console. Clobbers DX.
putc:   mov dx, 0xE9
        out dx, al
        ret
nl:     mov al, 10
        jmp putc
; NUL-terminated string at DS:SI. Clobbers AL, DX, SI.
puts:   lodsb
        test al, al
        jz .done
        call putc
        jmp puts
.done:  ret
; NUL-terminated string at ES:DI. Clobbers AL, DX, DI.
es_puts:
        mov al, [es:di]
        test al, al
        jz .done
        call putc
        inc di
        jmp es_puts
.done:  ret
; EAX / AX in hex. Clobber AL, CX, DX.
hex32:  ror eax, 16
        call hex16
        ror eax, 16
hex16:  mov cx, 4
.digit: rol ax, 4
        push ax
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe .out
        add al, 'A' - '9' - 1
.out:   call putc
        pop ax
        loop .digit
        ret

m_hello:   db "MB real eax=", 0
m_ebx:     db " ebx=", 0
m_cr0:     db " entry cr0=", 0
m_now:     db " real cr0=", 0
m_flags:   db "flags=", 0
m_lower:   db " mem_lower=", 0
m_mmap:    db " mmap bytes=", 0
m_cmdline: db "cmdline=[", 0
m_loader:  db "loader=[", 0
m_int:     db "int 30 through the ivt: ", 0
m_end:     db "END", 10, 0

        align 8
gdt:    dq 0
        dq 0x00009B000000FFFF           ; 08 code16, base 0, limit 0xFFFF
        dq 0x000093000000FFFF           ; 10 data16, base 0, limit 0xFFFF
gdt_ptr:
        dw gdt_ptr - gdt - 1
        dd gdt
ivt_ptr:
        dw 0x3FF
        dd 0

s_eax:  dd 0
s_ebx:  dd 0
s_cr0:  dd 0
int_seen: dw 0
file_end:
        absolute file_end
        alignb 16
stack:  resb 512
stack_top:
bss_end:
