; pvh.asm: a minimal ELF64 kernel with a PVH entry note, for vx86's direct
; boot tests (tests/boot.rs). Build: nasm -f bin -o pvh.bin pvh.asm
;
; The ELF header and program headers are written out by hand (System V
; gABI): one PT_LOAD maps the whole file at physical 0x100000 (plus a bss),
; one PT_NOTE holds the Xen note XEN_ELFNOTE_PHYS32_ENTRY (type 18) with
; the 32-bit PVH entry, as Linux's arch/x86/platform/pvh/head.S emits it
; (an 8-byte descriptor). The PVH entry reports hvm_start_info (EBX) on port
; 0xE9. e_entry is a 64-bit entry taking a zero page in ESI, like vmlinux's
; startup_64: with the note removed, a loader must use that instead.
; Used as is (an ELF passed to -kernel) and, compressed, as the payload of
; bzimage.bin.

%include "bootlib.inc"

BASE equ 0x100000
        org BASE
        bits 32

ehdr:   db 0x7F, "ELF", 2, 1, 1, 0      ; ELFCLASS64, little-endian, version 1
        times 8 db 0
        dw 2                            ; ET_EXEC
        dw 62                           ; EM_X86_64
        dd 1
        dq startup_64                   ; e_entry
        dq phdrs - ehdr                 ; e_phoff
        dq 0                            ; e_shoff
        dd 0                            ; e_flags
        dw 64                           ; e_ehsize
        dw 56                           ; e_phentsize
        dw 2                            ; e_phnum
        dw 64, 0, 0                     ; e_shentsize, e_shnum, e_shstrndx
phdrs:  dd 1, 7                         ; PT_LOAD, RWX
        dq 0, BASE, BASE                ; p_offset, p_vaddr, p_paddr
        dq file_end - ehdr              ; p_filesz
        dq bss_end - ehdr               ; p_memsz
        dq 0x1000
        dd 4, 4                         ; PT_NOTE, R
        dq note - ehdr, note, note
        dq note_end - note, note_end - note
        dq 4
note:   dd 4, 8, 18                     ; namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
        db "Xen", 0
        dq pvh_entry
note_end:

pvh_entry:
        mov [s_ebx], ebx
        mov esp, stack_top
        mov ebp, ebx
        PUTS p32, "PVH "
        mov eax, [s_ebx]
        KV p32, "ebx="
        mov eax, [ebp]
        KV p32, "magic="
        mov eax, [ebp + 4]
        KV p32, "version="
        mov eax, [ebp + 8]
        KV p32, "flags="
        mov eax, [ebp + 32]
        KV p32, "rsdp="
        str ax
        movzx eax, ax
        KV p32, "tr="
        call p32_nl
        call p32_cpu
        mov eax, [ebp + 12]
        KV p32, "modules="
        call p32_nl
        cmp dword [ebp + 12], 0
        je .no_module
        mov edi, [ebp + 16]             ; the first module (the initrd)
        mov esi, edi
        call p32_sp
        call p32_hex64m
        call p32_sp
        lea esi, [edi + 8]
        call p32_hex64m
        call p32_sp
        mov esi, [edi]
        mov ecx, [edi + 8]
        call p32_sum
        KV p32, "sum="
        mov eax, [edi + 16]
        KV p32, "cmdline="
        call p32_nl
.no_module:
        PUTS p32, "cmdline="
        mov esi, [ebp + 24]
        call p32_qstr
        call p32_nl
        mov eax, [ebp + 48]
        KV p32, "memmap entries="
        call p32_nl
        mov esi, [ebp + 40]
        mov ecx, [ebp + 48]
        mov edi, 24
        call p32_map
        PUTS p32, "END", 10
        jmp p32_exit

        BOOTLIB p32

        bits 64
startup_64:
        mov [s_esi], esi
        mov esp, stack_top
        mov ebp, esi
        PUTS p64, "ELF64 "
        mov eax, [s_esi]
        KV p64, "esi="
        call p64_nl
        call p64_cpu
        ZP_REPORT p64
        PUTS p64, "END", 10
        jmp p64_exit

        BOOTLIB p64

s_ebx:  dd 0
s_esi:  dd 0
file_end:
        absolute file_end
        alignb 16
stack:  resb 1024
stack_top:
bss_end:
