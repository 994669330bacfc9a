; pae.asm: PAE paging (tests/sys_roms.rs, expected output in pae.expected,
; recorded with scripts/bochs-reference.sh).
; A/D bits on 4 KiB and 2 MiB pages, execute-disable with EFER.NXE (and XD
; as a reserved bit without it), the I/D bit of the #PF error code, reserved
; physical-address and high bits, CR2.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/pae.bin test-roms/sys/pae.asm

%include "syslib.inc"

%define PDPT 0x10000
%define PD0  0x11000              ; 0 - 1 GiB
%define PT0  0x12000              ; 0 - 2 MiB
%define P  1
%define W  2
%define U  4
%define A  0x20
%define D  0x40
%define PS 0x80
%define XD_HI 0x80000000          ; bit 63, in the high dword

; PTE lin, flags-low, high-dword (PT0 covers 0-2 MiB)
%macro PTE 3
        mov dword [PT0 + (((%1) >> 12) & 0x1FF) * 8], ((%1) & 0xFFFFF000) | (%2)
        mov dword [PT0 + (((%1) >> 12) & 0x1FF) * 8 + 4], %3
%endmacro

%macro SHOW 2                     ; "text", entry address: low 12 bits
        PUTS %1
        mov eax, [%2]
        and eax, 0xFFF
        call pm_hex16
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "pae: PAE paging", 10
        mov edi, PDPT
        xor eax, eax
        mov ecx, 3 * 1024
        rep stosd
        ; PT0: identity 0-2 MiB, supervisor RW, A/D preset
        mov edi, PT0
        mov eax, P | W | A | D
        mov ecx, 512
.pt:    mov [edi], eax
        mov dword [edi + 4], 0
        add edi, 8
        add eax, 0x1000
        loop .pt
        ; test pages; a "ret" (C3) at the start of the code pages
        PTE 0x100000, P | W, 0                  ; A/D clear
        PTE 0x101000, P | W | A | D, XD_HI      ; execute-disable
        PTE 0x102000, P | W | A | D, 0          ; executable
        PTE 0x103000, 0, 0                      ; not present
        PTE 0x104000, P | W | A | D, 0x00080000 ; bit 51: reserved
        PTE 0x105000, P | W | A | D, 0x00100000 ; bit 52: reserved in PAE
        mov byte [0x101000], 0xC3
        mov byte [0x102000], 0xC3
        mov dword [PD0 + 0], PT0 | P | W | A
        mov dword [PD0 + 8], 0x200000 | P | W | PS  ; 2 MiB page, A/D clear
        mov dword [PD0 + 16], 0x400000 | P | W | PS | A | D
        mov dword [PD0 + 16 + 4], XD_HI             ; 2 MiB execute-disable
        mov dword [PDPT], PD0 | P
        mov byte [0x400000], 0xC3
        mov eax, cr4
        or eax, 0x20                ; PAE
        mov cr4, eax
        mov eax, PDPT
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax

        ; --- A/D
        SHOW "a/d: 4k fresh ", PT0 + (0x100000 >> 12) * 8
        mov eax, [0x100000]
        SHOW " read ", PT0 + (0x100000 >> 12) * 8
        mov byte [0x100000], 1
        SHOW " write ", PT0 + (0x100000 >> 12) * 8
        call pm_nl
        SHOW "a/d: 2m fresh ", PD0 + 8
        mov eax, [0x200000]
        SHOW " read ", PD0 + 8
        mov byte [0x200000], 1
        SHOW " write ", PD0 + 8
        call pm_nl

        ; --- NXE=0: XD is a reserved bit
        TRY "nxe=0: read xd page"
        mov eax, [0x101000]
        ENDTRY
        TRY "nxe=0: fetch from a not-present page"
        mov eax, 0x103000
        call eax
        ENDTRY
        TRY "nxe=0: read bit-51 pte"
        mov eax, [0x104000]
        ENDTRY
        TRY "nxe=0: read bit-52 pte"
        mov eax, [0x105000]
        ENDTRY
        ; --- NXE=1
        mov ecx, 0xC0000080
        rdmsr
        or eax, 0x800
        wrmsr
        mov eax, cr3                ; flush the TLB
        mov cr3, eax
        TRY "nxe=1: read xd page"
        mov eax, [0x101000]
        ENDTRY
        TRY "nxe=1: call xd page"
        mov eax, 0x101000
        call eax
        ENDTRY
        TRY "nxe=1: call executable page"
        mov eax, 0x102000
        call eax
        ENDTRY
        TRY "nxe=1: call xd 2m page"
        mov eax, 0x400000
        call eax
        ENDTRY
        TRY "nxe=1: fetch from a not-present page"
        mov eax, 0x103000
        call eax
        ENDTRY
        TRY "nxe=1: write not present"
        mov byte [0x103000], 1
        ENDTRY
        TRY "nxe=1: read bit-51 pte"
        mov eax, [0x104000]
        ENDTRY
        TRY "nxe=1: read beyond pdpte 0"
        mov eax, [0x40000000]
        ENDTRY

        ; --- PDPTEs are loaded (and checked) by MOV to CR3: a present one
        ; with a reserved bit is #GP(0) there, not a #PF later
        mov dword [PDPT + 8], PD0 | P | W   ; bit 1 is reserved in a PDPTE
        TRY "mov cr3, pdpte 1 with reserved bit 1"
        mov eax, PDPT
        mov cr3, eax
        ENDTRY
        PUTS "  cr3 after: "
        mov eax, cr3
        call pm_hex32
        call pm_nl
        mov dword [PDPT + 8], PD0 | P | (1 << 9) ; bits 11:9 are ignored
        TRY "mov cr3, pdpte 1 with ignored bit 9"
        mov eax, PDPT
        mov cr3, eax
        ENDTRY
        mov dword [PDPT + 8], 0
        mov dword [PDPT + 12], 0x80000000 ; not present: its other bits do not matter
        TRY "mov cr3, not-present pdpte 1 with bit 63"
        mov eax, PDPT
        mov cr3, eax
        ENDTRY
        mov dword [PDPT + 12], 0

        PUTS "pae: done", 10
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
