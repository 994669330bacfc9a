; multiboot.asm: a minimal multiboot v1 kernel (Multiboot Specification
; 0.6.96) for vx86's direct boot tests (tests/boot.rs), in the shape of a
; kvm-unit-tests x86 test: started with -kernel, reports on port 0xE9 and
; exits through isa-debug-exit at 0xF4.
;
;   nasm -f bin -o multiboot.bin multiboot.asm              ELF32 image
;   nasm -f bin -DAOUT -o multiboot-aout.bin multiboot.asm  a.out kludge
;   nasm -f bin -DLOW -o multiboot-low.bin multiboot.asm    a.out kludge at 0x8000
;   nasm -f bin -DHDRSEG -o multiboot-hdrseg.bin multiboot.asm
;                                  ELF32 laid out as `ld -Ttext 0x100000` does
;
; The ELF32 variant is loaded by its program header at 0x100000. The HDRSEG
; variant has two: a first PT_LOAD holding only the ELF headers at 0xFF000
; (in the BIOS area, not RAM: QEMU's loader drops it there), then the kernel
; at 0x100000 from file offset 0x1000, as a modern ld links. The a.out
; kludge variant is a flat image whose header address fields (flag 16) say
; to load it at 0x180000 with a bss after it. The entry reports EAX, EBX, the
; CPU state and the multiboot information: memory sizes, command line, boot
; loader name, each module (range, checksum, string) and the memory map.

%include "bootlib.inc"

MB_MAGIC equ 0x1BADB002
%ifdef LOW
%define AOUT
BASE     equ 0x8000                     ; conventional memory, in vx86's boot-data area
MB_FLAGS equ 0x00010003
%elifdef AOUT
BASE     equ 0x180000
MB_FLAGS equ 0x00010003                 ; PAGE_ALIGN | MEMORY_INFO | AOUT_KLUDGE
%else
BASE     equ 0x100000
MB_FLAGS equ 0x00000003                 ; PAGE_ALIGN | MEMORY_INFO
%endif

%ifdef HDRSEG
        org BASE - 0x1000
%else
        org BASE
%endif
        bits 32

%ifdef HDRSEG
ehdr:   db 0x7F, "ELF", 1, 1, 1, 0
        times 8 db 0
        dw 2                            ; ET_EXEC
        dw 3                            ; EM_386
        dd 1
        dd mb_entry                     ; e_entry
        dd phdr - ehdr                  ; e_phoff
        dd 0                            ; e_shoff
        dd 0                            ; e_flags
        dw 52, 32, 2                    ; e_ehsize, e_phentsize, e_phnum
        dw 40, 0, 0
phdr:   dd 1                            ; PT_LOAD: the headers alone
        dd 0, BASE - 0x1000, BASE - 0x1000
        dd hdr_end - ehdr, hdr_end - ehdr
        dd 4, 0x1000                    ; R
        dd 1                            ; PT_LOAD: the kernel
        dd 0x1000, BASE, BASE
        dd file_end - BASE
        dd bss_end - BASE
        dd 7, 0x1000
hdr_end:
        times 0x1000 - ($ - $$) db 0
%elifndef AOUT
ehdr:   db 0x7F, "ELF", 1, 1, 1, 0      ; ELFCLASS32, little-endian, version 1
        times 8 db 0
        dw 2                            ; ET_EXEC
        dw 3                            ; EM_386
        dd 1
        dd mb_entry                     ; e_entry
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
%endif

        align 4
mb_header:
        dd MB_MAGIC
        dd MB_FLAGS
        dd -(MB_MAGIC + MB_FLAGS)
%ifdef AOUT
        dd mb_header                    ; header_addr
        dd BASE                         ; load_addr
        dd file_end                     ; load_end_addr
        dd bss_end                      ; bss_end_addr
        dd mb_entry                     ; entry_addr
%endif

mb_entry:
        mov [s_eax], eax
        mov [s_ebx], ebx
        mov esp, stack_top
        mov ebp, ebx
%ifdef AOUT
        PUTS m, "MB aout "
%else
        PUTS m, "MB elf "
%endif
        mov eax, [s_eax]
        KV m, "eax="
        mov eax, [s_ebx]
        KV m, "ebx="
        mov eax, [ebp]
        KV m, "flags="
        mov eax, [ebp + 4]
        KV m, "mem_lower="
        mov eax, [ebp + 8]
        KV m, "mem_upper="
        call m_nl
        call m_cpu
        PUTS m, "cmdline="
        mov esi, [ebp + 16]
        call m_qstr
        call m_nl
        PUTS m, "loader="
        mov esi, [ebp + 64]
        call m_qstr
        call m_nl
        mov eax, [ebp + 20]
        KV m, "modules="
        call m_nl
        mov eax, [ebp + 24]
        mov [mod_ptr], eax
        mov eax, [ebp + 20]
        mov [mod_left], eax
.module:
        cmp dword [mod_left], 0
        je .modules_done
        mov edi, [mod_ptr]
        call m_sp
        mov eax, [edi]
        call m_hex32
        mov al, '-'
        call m_putc
        mov eax, [edi + 4]
        call m_hex32
        call m_sp
        mov esi, [edi]
        mov ecx, [edi + 4]
        sub ecx, esi
        call m_sum
        KV m, "sum="
        mov esi, [edi + 8]
        call m_qstr
        call m_nl
        add dword [mod_ptr], 16
        dec dword [mod_left]
        jmp .module
.modules_done:
        mov eax, [ebp + 44]
        KV m, "mmap bytes="
        call m_nl
        ; Entries are 24 bytes: size (20), then base, length, type.
        mov esi, [ebp + 48]
        add esi, 4
        mov eax, [ebp + 44]
        xor edx, edx
        mov ecx, 24
        div ecx
        mov ecx, eax
        mov edi, 24
        call m_map
        PUTS m, "END", 10
        jmp m_exit

        BOOTLIB m

s_eax:  dd 0
s_ebx:  dd 0
mod_ptr: dd 0
mod_left: dd 0
file_end:
        absolute file_end
        alignb 16
stack:  resb 1024
stack_top:
bss_end:
