; gdb.asm: a multiboot v1 kernel (ELF32, loaded at 0x100000) for the gdb
; stub tests (tests/gdb.rs). Its points of interest sit at fixed addresses
; so that the tests can name them:
;
;   0x100100  entry: loads known values into the registers
;   0x100140  BP1: `inc eax`, 33 instructions into the entry's block (a
;             breakpoint there must split the block); stepi -> 0x100141
;   0x100160  HW1: `mov dword [COUNTER], 0x1234` (a hardware breakpoint
;             stops before it, a write watchpoint on COUNTER after it)
;   0x100180  SPIN: a loop of SPINS iterations (Ctrl-C stops it)
;   then "GDB-DONE" on port 0xE9 and an exit through isa-debug-exit (0xF4)
;   0x101000  COUNTER (on its own page: code pages take the slow write path)
;
;   nasm -f bin -o gdb.bin gdb.asm

BASE     equ 0x100000
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00000003                 ; PAGE_ALIGN | MEMORY_INFO
SPINS    equ 20000000

        org BASE
        bits 32

ehdr:   db 0x7F, "ELF", 1, 1, 1, 0      ; ELFCLASS32, little-endian, version 1
        times 8 db 0
        dw 2                            ; ET_EXEC
        dw 3                            ; EM_386
        dd 1
        dd entry                        ; e_entry
        dd phdr - ehdr                  ; e_phoff
        dd 0                            ; e_shoff
        dd 0                            ; e_flags
        dw 52, 32, 1                    ; e_ehsize, e_phentsize, e_phnum
        dw 40, 0, 0
phdr:   dd 1                            ; PT_LOAD
        dd 0, BASE, BASE                ; p_offset, p_vaddr, p_paddr
        dd file_end - ehdr              ; p_filesz
        dd bss_end - ehdr               ; p_memsz
        dd 7, 0x1000                    ; RWX, align

        align 4
mb_header:
        dd MB_MAGIC
        dd MB_FLAGS
        dd -(MB_MAGIC + MB_FLAGS)

        times 0x100 - ($ - $$) db 0
entry:                                  ; 0x100100
        mov esp, stack_top
        mov eax, 0x11111111
        mov ebx, 0x22222222
        mov ecx, 0x33333333
        mov edx, 0x44444444
        mov esi, 0x55555555
        mov edi, 0x66666666
        mov ebp, 0x77777777
        times 0x140 - ($ - $$) nop
bp1:                                    ; 0x100140
        inc eax
        add ebx, 1
        times 0x160 - ($ - $$) nop
hw1:                                    ; 0x100160
        mov dword [counter], 0x1234
after_write:                            ; 0x10016A
        mov ecx, [counter]
        times 0x180 - ($ - $$) nop
spin:                                   ; 0x100180
        inc dword [spins]
        cmp dword [spins], SPINS
        jne spin
        mov esi, done_msg
        mov dx, 0xE9
.puts:  lodsb
        test al, al
        jz .exit
        out dx, al
        jmp .puts
.exit:  mov al, 0
        out 0xF4, al                    ; isa-debug-exit: status 1
        hlt
        jmp .exit
done_msg: db "GDB-DONE", 10, 0

        times 0x1000 - ($ - $$) db 0
counter: dd 0                           ; 0x101000
spins:   dd 0
file_end:
stack_top equ BASE + 0x3000             ; the bss: the stack
bss_end equ BASE + 0x3000
