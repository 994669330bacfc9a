; pgcorner.asm: paging corners paging.asm and pae.asm leave out
; (tests/sys_roms.rs, expected output in pgcorner.expected, recorded with
; scripts/bochs-reference.sh).
; 32-bit paging: the PS bit with CR4.PSE=0 and after setting it, a 4 MiB
; page mapped elsewhere, PAT in a 4 MiB PDE, CR0.WP toggled over a page
; already written, the A and D bits left alone by accesses that fault,
; instruction fetches (user from a supervisor page, supervisor from a user
; page, an instruction running into a not-present page), implicit
; supervisor writes (a descriptor's accessed bit in a read-only GDT page)
; from ring 0 and ring 3 with WP=0 and WP=1.
; PAE: XD in a PDE over an executable PTE, a fetch running into an XD page,
; user fetch from a supervisor page, reserved bits with the I/D bit, PAT and
; a reserved bit in a 2 MiB PDE, a present PDPTE with bit 63.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/pgcorner.bin test-roms/sys/pgcorner.asm

%include "syslib.inc"

%define PD   0x10000              ; 32-bit paging
%define PT0  0x11000              ; 0 - 4 MiB
%define PTX  0x12000              ; a page table behind a PS=1 PDE
%define PDPT 0x20000              ; PAE
%define PD0  0x21000
%define PAE0 0x22000              ; 0 - 2 MiB
%define PAE1 0x23000              ; 6 - 8 MiB, under an XD PDE
%define P  1
%define W  2
%define U  4
%define A  0x20
%define D  0x40
%define PS 0x80
%define XD_HI 0x80000000

%define DS_NA0 0x60               ; data DPL0, accessed bit clear
%define DS_NA3 0x6B               ; data DPL3, accessed bit clear (RPL 3)
%define DS_NA0B 0x70              ; another one for the second write

%macro PTE 3                      ; table, linear address, flags
        mov dword [(%1) + (((%2) >> 12) & 0x3FF) * 4], ((%2) & 0xFFFFF000) | (%3)
%endmacro
%macro PTE64 3                    ; linear address (0-2 MiB), low flags, high dword
        mov dword [PAE0 + (((%1) >> 12) & 0x1FF) * 8], ((%1) & 0xFFFFF000) | (%2)
        mov dword [PAE0 + (((%1) >> 12) & 0x1FF) * 8 + 4], %3
%endmacro

%macro RING3 2
        push dword DATA3
        push dword 0x8000
        push dword 0x3002
        push dword CODE3
        push dword %1
        iretd
%endmacro

; UBEGIN "text" ... UEND: run the code between at CPL3 (DS=ES=DATA3); it
; prints " ok" from ring 3 if it did not fault.
%macro UBEGIN 1+
        TRY %1
        RING3 %$r3, 0
%$r3:   mov ax, DATA3
        mov ds, ax
        mov es, ax
%endmacro
%macro UEND 0
        mov ax, DATA3
        mov ds, ax
        PUTS " ok"
        int 0x40
%$done:
        call flat_segs
        call pm_nl
        %pop
%endmacro
%macro USER 2
        UBEGIN %1
        %2
        UEND
%endmacro

%macro SHOW 2                     ; "text", address of an entry: its low 12 bits
        PUTS %1
        mov eax, [%2]
        and eax, 0xFFF
        call pm_hex16
%endmacro

%macro WP 1                       ; CR0.WP <- 0/1
        mov eax, cr0
%if %1
        or eax, 0x10000
%else
        and eax, ~0x10000
%endif
        mov cr0, eax
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "pgcorner: paging corners", 10
        mov word [IDT_BASE + 0x40 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x40 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x40 * 8 + 4], 0x000FEE00
        GDT_SET DS_NA0, 0x00CF_9200_0000_FFFF
        GDT_SET DS_NA3 & ~3, 0x00CF_F200_0000_FFFF
        GDT_SET DS_NA0B, 0x00CF_9200_0000_FFFF
        mov edi, PD
        xor eax, eax
        mov ecx, 0x14000 / 4        ; both sets of tables
        rep stosd
        ; markers: physical 0x300000 (behind the PTE at 0xC00000), 0xC00000
        ; (a PTE read as a page table with PSE=0, as data with PSE=1),
        ; 0x401234 (the 4 MiB page at linear 16 MiB)
        mov dword [0x300000], 0x11111111
        mov dword [0xC00000], 0x300000 | P | W | U | A | D ; a PTE, or data
        mov dword [0x401234], 0x33333333
        mov dword [0xC01000], 0x44444444
        ; code: ret at 0x206000 (supervisor), 0x207000 (user); an instruction
        ; across 0x209000 (not present)
        mov byte [0x206000], 0xC3
        mov byte [0x207000], 0xC3
        mov byte [0x208FFF], 0xB8   ; mov eax, imm32: the imm32 is on 0x209000
        ; PT0: identity, user RW, A and D preset
        mov edi, PT0
        mov eax, P | W | U | A | D
        mov ecx, 1024
.pt0:   stosd
        add eax, 0x1000
        loop .pt0
        PTE PT0, 0x200000, P | W | U          ; A/D clear, for faulting accesses
        PTE PT0, 0x201000, P | U | A          ; user read-only, D clear
        PTE PT0, 0x202000, P | A              ; supervisor read-only, D clear
        PTE PT0, 0x203000, P | W              ; supervisor, A/D clear
        PTE PT0, 0x206000, P | W | A | D      ; supervisor code
        PTE PT0, 0x209000, 0                  ; not present
        mov dword [PD + 0], PT0 | P | W | U | A
        mov dword [PD + 4], 0                 ; 4-8 MiB not present, A clear
        mov dword [PD + 12], 0xC00000 | P | W | U | A | PS ; 12-16 MiB: PT or page
        mov dword [PD + 16], 0x400000 | P | W | U | A | D | PS ; 16 MiB -> 4 MiB
        mov dword [PD + 20], 0xC00000 | P | W | U | A | D | PS | 0x1000 ; PAT
        mov eax, PD
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        and eax, ~0x10000
        mov cr0, eax

        ; --- PS with CR4.PSE=0 and 1
        PUTS "pse=0, ps=1 pde: "
        HEX32 [0xC00000]
        mov eax, cr4
        or eax, 0x10
        mov cr4, eax
        PUTS " pse=1: "
        HEX32 [0xC00000]
        call pm_nl
        PUTS "4m page 16m -> 4m: "
        HEX32 [0x1001234]
        PUTS " pat bit 12 set: "
        HEX32 [0x1401000]
        call pm_nl

        ; --- WP toggled over a page written with WP=0
        TRY "wp=0: s write user read-only"
        mov byte [0x201000], 1
        ENDTRY
        SHOW "  pte ", PT0 + 0x201 * 4
        call pm_nl
        WP 1
        TRY "wp=1: same page again"
        mov byte [0x201001], 1
        ENDTRY
        WP 0
        TRY "wp=0: s write supervisor read-only"
        mov byte [0x202000], 1
        ENDTRY
        WP 1
        TRY "wp=1: same page again"
        mov byte [0x202001], 1
        ENDTRY

        ; --- A and D left alone by faulting accesses
        USER "u write supervisor page, a/d clear", {mov byte [0x203000], 1}
        SHOW "  pte ", PT0 + 0x203 * 4
        call pm_nl
        PTE PT0, 0x200000, P | U          ; user read-only, A/D clear
        USER "u write read-only page, a/d clear", {mov byte [0x200000], 1}
        SHOW "  pte ", PT0 + 0x200 * 4
        call pm_nl
        TRY "s read 4-8m (pde not present)"
        mov eax, [0x400000]
        ENDTRY
        mov dword [PD + 4], PTX | P | W | U   ; A clear; PTX[4] not present
        TRY "s read through a pde with a clear a bit, pte not present"
        mov eax, [0x404000]
        ENDTRY
        SHOW "  pde ", PD + 4
        call pm_nl

        ; --- instruction fetches
        UBEGIN "u fetch supervisor page"
        mov eax, 0x206000
        call eax
        UEND
        UBEGIN "u fetch user page"
        mov eax, 0x207000
        call eax
        UEND
        TRY "s fetch user page"
        mov eax, 0x207000
        call eax
        ENDTRY
        TRY "s fetch across into a not-present page"
        mov eax, 0x208FFF
        call eax
        ENDTRY

        ; --- implicit supervisor writes: the accessed bit of a descriptor
        ; in a read-only GDT page
        PTE PT0, GDT_BASE, P | U | A | D
        invlpg [GDT_BASE]
        WP 0
        TRY "wp=0: r0 load ds, gdt page read-only"
        mov ax, DS_NA0
        mov ds, ax
        ENDTRY
        PUTS "  type "
        movzx eax, byte [GDT_BASE + DS_NA0 + 5]
        call pm_hex8
        call pm_nl
        UBEGIN "wp=0: r3 load ds, gdt page read-only"
        mov ax, DS_NA3
        mov ds, ax
        UEND
        WP 1
        TRY "wp=1: r0 load ds, gdt page read-only"
        mov ax, DS_NA0B
        mov ds, ax
        ENDTRY
        PUTS "  type "
        movzx eax, byte [GDT_BASE + DS_NA0B + 5]
        call pm_hex8
        call pm_nl
        WP 0
        PTE PT0, GDT_BASE, P | W | U | A | D
        invlpg [GDT_BASE]
        GDT_SET DS_NA3 & ~3, 0x00CF_F200_0000_FFFF
        PTE PT0, GDT_BASE, P | U | A | D
        invlpg [GDT_BASE]
        WP 1
        UBEGIN "wp=1: r3 load ds, gdt page read-only"
        mov ax, DS_NA3
        mov ds, ax
        UEND
        WP 0
        PTE PT0, GDT_BASE, P | W | U | A | D
        invlpg [GDT_BASE]

        ; --- PAE
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax
        mov edi, PAE0
        mov eax, P | W | U | A | D
        mov ecx, 512
.pae0:  mov [edi], eax
        mov dword [edi + 4], 0
        add edi, 8
        add eax, 0x1000
        loop .pae0
        PTE64 0x104000, P | W | A | D, 0          ; supervisor code
        PTE64 0x105000, P | W | U | A | D, XD_HI  ; XD
        PTE64 0x106000, P | W | U | A | D, 0x00080000   ; bit 51: reserved
        mov byte [0x104000], 0xC3
        mov byte [0x104FFF], 0xB8   ; mov eax, imm32 running into the XD page
        mov byte [0x106000], 0xC3
        mov dword [PAE1], 0x600000 | P | W | U | A | D  ; 6 MiB, executable PTE
        mov byte [0x600000], 0xC3
        mov dword [PD0 + 0], PAE0 | P | W | U | A
        mov dword [PD0 + 8], 0x200000 | P | W | U | A | D | PS | 0x1000 ; PAT
        mov dword [PD0 + 16], 0x200000 | P | W | U | A | D | PS | 0x2000 ; bit 13
        mov dword [PD0 + 24], PAE1 | P | W | U | A
        mov dword [PD0 + 24 + 4], XD_HI          ; XD PDE over an executable PTE
        mov dword [PDPT], PD0 | P
        mov ecx, 0xC0000080
        rdmsr
        or eax, 0x800
        wrmsr
        mov eax, cr4
        or eax, 0x20
        mov cr4, eax
        mov eax, PDPT
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        PUTS "pae: 2m pat bit 12: "
        mov dword [0x200010], 0x55555555
        HEX32 [0x200010]
        call pm_nl
        TRY "pae: read 2m pde bit 13"
        mov eax, [0x400010]
        ENDTRY
        TRY "pae: fetch through an xd pde, executable pte"
        mov eax, 0x600000
        call eax
        ENDTRY
        TRY "pae: read through the xd pde"
        mov eax, [0x600000]
        ENDTRY
        TRY "pae: fetch across into an xd page"
        mov eax, 0x104FFF
        call eax
        ENDTRY
        TRY "pae: fetch a pte with bit 51"
        mov eax, 0x106000
        call eax
        ENDTRY
        UBEGIN "pae: u fetch supervisor page"
        mov eax, 0x104000
        call eax
        UEND
        UBEGIN "pae: u fetch xd page"
        mov eax, 0x105000
        call eax
        UEND
        mov dword [PDPT + 8], PD0 | P
        mov dword [PDPT + 12], XD_HI
        TRY "pae: mov cr3, present pdpte with bit 63"
        mov eax, PDPT
        mov cr3, eax
        ENDTRY
        mov dword [PDPT + 12], 0

        PUTS "pgcorner: done", 10
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
