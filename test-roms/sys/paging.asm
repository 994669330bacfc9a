; paging.asm: 32-bit paging corners (tests/sys_roms.rs, expected output in
; paging.expected, recorded with scripts/bochs-reference.sh).
; Accessed and dirty bits in PDEs and PTEs (4 KiB and 4 MiB pages),
; CR0.WP with supervisor writes, user/supervisor and read/write combined
; over PDE and PTE, not-present and reserved-bit faults with their error
; codes and CR2, INVLPG.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/paging.bin test-roms/sys/paging.asm

%include "syslib.inc"

%define PD   0x10000
%define PT0  0x11000              ; 0 - 4 MiB
%define PT1  0x12000              ; 4 - 8 MiB: PDE supervisor, PTEs user
%define PT2  0x13000              ; 8 - 12 MiB: PDE read-only, PTEs writable
%define P  1
%define W  2
%define U  4
%define A  0x20
%define D  0x40
%define PS 0x80

%macro PTE 3                      ; table, linear address, flags
        mov dword [(%1) + (((%2) >> 12) & 0x3FF) * 4], ((%2) & 0xFFFFF000) | (%3)
%endmacro

; USER "text", instruction: run one instruction at CPL3 (DS=DATA3); it
; prints " ok" from ring 3 if it did not fault.
%macro USER 2
        TRY %1
        RING3 %%r3, DATA3, 0x8000
%%r3:   mov ax, DATA3                 ; IRET to ring 3 nulled DS and ES
        mov ds, ax
        mov es, ax
        %2
        PUTS " ok"
        int 0x40
%$done:                           ; faults and the INT 0x40 both come here
        call flat_segs
        call pm_nl
        %pop
%endmacro

%macro RING3 3
        push dword %2
        push dword %3
        push dword 0x3002
        push dword CODE3
        push dword %1
        iretd
%endmacro

; PRINT_PTE "text", address of the entry: its low 12 bits
%macro SHOW 2
        PUTS %1
        mov eax, [%2]
        and eax, 0xFFF
        call pm_hex16
%endmacro

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "paging: 32-bit paging corners", 10
        mov word [IDT_BASE + 0x40 * 8], R(gate_entry)
        mov word [IDT_BASE + 0x40 * 8 + 2], CODE0
        mov dword [IDT_BASE + 0x40 * 8 + 4], 0x000FEE00
        ; clear the tables
        mov edi, PD
        xor eax, eax
        mov ecx, 4 * 1024
        rep stosd
        ; PT0: identity, supervisor RW, A and D preset (so only the test
        ; pages change); the ROM and the ring-3 stack page are user.
        mov edi, PT0
        mov eax, P | W | A | D
        mov ecx, 1024
.pt0:   stosd
        add eax, 0x1000
        loop .pt0
        mov edi, PT0 + (0xF0000 >> 12) * 4
        mov ecx, 16
.rom:   or dword [edi], U
        add edi, 4
        loop .rom
        PTE PT0, 0x7000, P | W | U | A | D
        PTE PT0, 0x200000, P | W              ; A/D clear
        PTE PT0, 0x201000, P | A              ; supervisor read-only
        PTE PT0, 0x202000, 0                  ; not present
        PTE PT0, 0x203000, P | U | A          ; user read-only
        PTE PT0, 0x204000, P | U | W | A | D  ; user RW
        PTE PT0, 0x205000, P | W | A | D | 0x100 ; G without CR4.PGE: ignored
        PTE PT1, 0x400000, P | U | W | A | D
        PTE PT2, 0x800000, P | U | W | A | D
        mov dword [PD + 0], PT0 | P | W | U | A
        mov dword [PD + 4], PT1 | P | W | A   ; supervisor PDE over user PTEs
        mov dword [PD + 8], PT2 | P | U | A   ; read-only PDE over writable PTEs
        mov dword [PD + 12], 0xC00000 | P | W | U | PS ; 4 MiB page, A/D clear
        mov dword [PD + 16], 0x1000000 | P | W | PS | (1 << 21) ; reserved bit 21
        mov dword [PD + 20], 0                ; not present 20-24 MiB
        ; 4 MiB pages, paging on, WP off
        mov eax, cr4
        or eax, 0x10
        mov cr4, eax
        mov eax, PD
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        and eax, ~0x10000
        mov cr0, eax

        ; --- accessed / dirty
        SHOW "a/d: fresh pte ", PT0 + 0x200 * 4
        mov eax, [0x200000]
        SHOW " after read ", PT0 + 0x200 * 4
        mov byte [0x200010], 1
        SHOW " after write ", PT0 + 0x200 * 4
        call pm_nl
        SHOW "a/d: 4m pde ", PD + 12
        mov eax, [0xC00000]
        SHOW " after read ", PD + 12
        mov byte [0xC01000], 1
        SHOW " after write ", PD + 12
        call pm_nl
        SHOW "a/d: pde1 before ", PD + 4
        mov eax, [0x400000]
        SHOW " after read via it ", PD + 4
        call pm_nl

        ; --- supervisor faults and WP
        TRY "s read not present"
        mov eax, [0x202004]
        ENDTRY
        TRY "s write not present"
        mov byte [0x202008], 1
        ENDTRY
        TRY "s write read-only, wp=0"
        mov byte [0x201000], 1
        ENDTRY
        mov eax, cr0
        or eax, 0x10000
        mov cr0, eax
        TRY "s write read-only, wp=1"
        mov byte [0x201001], 1
        ENDTRY
        TRY "s write user read-only, wp=1"
        mov byte [0x203001], 1
        ENDTRY
        TRY "s write via read-only pde, wp=1"
        mov byte [0x800002], 1
        ENDTRY
        mov eax, cr0
        and eax, ~0x10000
        mov cr0, eax
        TRY "s write via read-only pde, wp=0"
        mov byte [0x800003], 1
        ENDTRY
        TRY "s read pde not present"
        mov eax, [0x1400000]
        ENDTRY
        TRY "s read 4m pde reserved bit 21"
        mov eax, [0x1000000]
        ENDTRY
        TRY "s dword across into not present"
        mov eax, [0x201FFE]
        ENDTRY

        ; --- user faults
        USER "u read supervisor page", {mov eax, [0x201000]}
        USER "u read user read-only", {mov eax, [0x203000]}
        USER "u write user read-only", {mov byte [0x203000], 1}
        USER "u write user rw", {mov byte [0x204000], 1}
        USER "u read not present", {mov eax, [0x202000]}
        USER "u write not present", {mov byte [0x202000], 1}
        USER "u read user pte, supervisor pde", {mov eax, [0x400000]}
        USER "u write rw pte, read-only pde", {mov byte [0x800000], 1}
        USER "u read rw pte, read-only pde", {mov eax, [0x800000]}
        USER "u read 4m user page", {mov eax, [0xC00000]}
        USER "u load fs (implicit supervisor gdt read)", {mov fs, ax}

        ; --- INVLPG: a changed PTE is seen after INVLPG
        mov eax, [0x204000]
        PTE PT0, 0x204000, 0
        invlpg [0x204000]
        TRY "invlpg then read cleared pte"
        mov eax, [0x204000]
        ENDTRY
        PTE PT0, 0x204000, P | U | W | A | D
        invlpg [0x204000]
        TRY "restored"
        mov eax, [0x204000]
        ENDTRY
        ; a CR3 reload flushes too
        PTE PT0, 0x204000, 0
        mov eax, cr3
        mov cr3, eax
        TRY "cr3 reload then read cleared pte"
        mov eax, [0x204000]
        ENDTRY

        PUTS "paging: done", 10
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax
        jmp pm_shutdown

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
