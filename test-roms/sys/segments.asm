; segments.asm: descriptor checks (tests/sys_roms.rs, expected output in
; segments.expected, recorded with scripts/bochs-reference.sh).
; LAR/LSL/VERR/VERW over code, data, expand-down, system and gate
; descriptors with RPL 0 and 3; segment register loads that fault with the
; exact exception and error code; limit checks (byte and page granular,
; expand-down 16- and 32-bit, read-only, execute-only, stack); the accessed bit.
; Build: nasm -f bin -i test-roms/sys/ -o test-roms/sys/segments.bin test-roms/sys/segments.asm

%include "syslib.inc"

        bits 16
main16:
        call enter_pm
        bits 32
        PUTS "segments: descriptor checks", 10
        GDT_SET 0x60, 0x0010_9710_0000_0FFF ; expand-down RW, B=0, limit 0xFFF, base 0x100000
        GDT_SET 0x68, 0x0000_9100_0000_0FFF ; data read-only, accessed clear... (type 1 = RO accessed)
        GDT_SET 0x70, 0x00CF_9800_0000_FFFF ; code execute-only, 32-bit, DPL0
        GDT_SET 0x78, 0x00CF_9E00_0000_FFFF ; code readable conforming, DPL0
        GDT_SET 0x80, 0x00CF_F300_0000_FFFF ; data DPL3
        GDT_SET 0x88, 0x00CF_1300_0000_FFFF ; data not present
        GDT_SET 0x90, 0x0000_8200_4000_00FF ; LDT, base 0x4000
        GDT_SET 0x98, 0x00C0_9300_0000_0001 ; data RW, G=1, limit 1 -> 0x1FFF, B=1
        GDT_SET 0xA0, 0x0040_9700_0000_FFFF ; expand-down RW, B=1, limit 0xFFFF
        GDT_SET 0xA8, 0x000F_EC00_0008_1234 ; call gate 32, DPL3
        GDT_SET 0xB0, 0x0000_8100_5000_002B ; 16-bit TSS available, base 0x5000
        GDT_SET 0xB8, 0x0000_8000_0000_FFFF ; system type 0 (reserved)
        GDT_SET 0xC0, 0x0000_9000_0000_FFFF ; data read-only, accessed clear
        GDT_SET 0xC8, 0x0040_9B0F_0000_0FFF ; code32 base 0xF0000 limit 0xFFF
        GDT_SET 0xD0, 0x00CF_FA00_0000_FFFF ; code DPL3 readable non-conforming
        GDT_SET 0xD8, 0x0000_8B00_6000_0067 ; 32-bit TSS busy
        GDT_SET 0xE0, 0x000F_E500_00B0_0000 ; task gate DPL3
        GDT_SET 0xE8, 0x00CF_F200_0000_FFFF ; data DPL3 RW, accessed clear

        ; --- LAR / LSL / VERR / VERW over every selector, RPL 0 then RPL 3
        mov esi, selectors
.sel:   movzx ebx, word [esi]
        cmp bx, 0xFFFF
        je .sel_done
        PUTS "sel "
        mov eax, ebx
        call pm_hex16
        PUTS " lar "
        mov eax, 0x5A5A5A5A
        lar eax, ebx
        setz cl
        call .zf_val
        PUTS " lsl "
        mov eax, 0x5A5A5A5A
        lsl eax, ebx
        setz cl
        call .zf_val
        PUTS " verr "
        verr bx
        setz al
        add al, '0'
        call pm_putc
        PUTS " verw "
        verw bx
        setz al
        add al, '0'
        call pm_putc
        call pm_nl
        add esi, 2
        jmp .sel
.zf_val:                            ; prints CL and EAX as "Z:EEEEEEEE"
        push eax
        mov al, cl
        add al, '0'
        call pm_putc
        mov al, ':'
        call pm_putc
        pop eax
        jmp pm_hex32
.sel_done:
        ; o16 LAR keeps EAX[31:16]
        mov eax, 0x5A5A5A5A
        mov ebx, 0x80
        o16 lar ax, bx
        PUTS "lar o16 80: "
        HEX32 eax
        call pm_nl
        mov eax, 0x5A5A5A5A
        o16 lsl ax, bx
        PUTS "lsl o16 80: "
        HEX32 eax
        call pm_nl
        mov eax, 0x5A5A5A5A
        mov ebx, 0x98
        o16 lsl ax, bx               ; limit 0x1FFF fits
        PUTS "lsl o16 98: "
        HEX32 eax
        call pm_nl

        ; --- segment register loads
        TRY "ds <- null"
        xor eax, eax
        mov ds, ax
        ENDTRY
        TRY "ds <- null, read"
        xor eax, eax
        mov ds, ax
        mov eax, [0x1000]
        ENDTRY
        TRY "ss <- null"
        xor eax, eax
        mov ss, ax
        ENDTRY
        TRY "ds <- beyond gdt limit"
        mov ax, 0x100
        mov ds, ax
        ENDTRY
        TRY "ds <- not present"
        mov ax, 0x88
        mov ds, ax
        ENDTRY
        TRY "ss <- not present"
        mov ax, 0x88
        mov ss, ax
        ENDTRY
        TRY "ds <- execute-only code"
        mov ax, 0x70
        mov ds, ax
        ENDTRY
        TRY "ds <- readable conforming code"
        mov ax, 0x78
        mov ds, ax
        ENDTRY
        TRY "ds <- ldt descriptor"
        mov ax, 0x90
        mov ds, ax
        ENDTRY
        TRY "ds <- dpl3 data rpl3"
        mov ax, 0x83
        mov ds, ax
        ENDTRY
        TRY "ss <- dpl3 data"
        mov ax, 0x80
        mov ss, ax
        ENDTRY
        TRY "ss <- read-only data"
        mov ax, 0x68
        mov ss, ax
        ENDTRY
        TRY "ss <- rpl3 of dpl0 data"
        mov ax, 0x13
        mov ss, ax
        ENDTRY
        TRY "es <- tss"
        mov ax, 0xB0
        mov es, ax
        ENDTRY
        TRY "fs <- call gate"
        mov ax, 0xA8
        mov fs, ax
        ENDTRY
        TRY "lldt tss"
        mov ax, 0xB0
        lldt ax
        ENDTRY
        TRY "lldt ldt"
        mov ax, 0x90
        lldt ax
        ENDTRY
        TRY "ltr busy tss"
        mov ax, 0xD8
        ltr ax
        ENDTRY
        TRY "ds <- ldt selector (ti=1), ldt limit 0xff"
        mov ax, 0x0104
        mov ds, ax
        ENDTRY

        ; --- limits
        TRY "ro: read dword at limit-3"
        mov ax, 0x68
        mov ds, ax
        mov eax, [0xFFC]
        ENDTRY
        TRY "ro: read dword at limit-2"
        mov ax, 0x68
        mov ds, ax
        mov eax, [0xFFD]
        ENDTRY
        TRY "ro: write byte"
        mov ax, 0x68
        mov ds, ax
        mov byte [0x10], 1
        ENDTRY
        TRY "expand-down b0: read at limit"
        mov ax, 0x60
        mov ds, ax
        mov al, [0xFFF]
        ENDTRY
        TRY "expand-down b0: read at limit+1"
        mov ax, 0x60
        mov ds, ax
        mov al, [0x1000]
        ENDTRY
        TRY "expand-down b0: dword at 0xfffc"
        mov ax, 0x60
        mov ds, ax
        mov eax, [0xFFFC]
        ENDTRY
        TRY "expand-down b0: dword at 0xfffd"
        mov ax, 0x60
        mov ds, ax
        mov eax, [0xFFFD]
        ENDTRY
        TRY "expand-down b1: byte at 0x10000"
        mov ax, 0xA0
        mov ds, ax
        mov al, [0x10000]
        ENDTRY
        TRY "expand-down b1: byte at 0xffff"
        mov ax, 0xA0
        mov ds, ax
        mov al, [0xFFFF]
        ENDTRY
        TRY "expand-down b1: byte at 0xffffffff"
        mov ax, 0xA0
        mov ds, ax
        mov al, [0xFFFFFFFF]
        ENDTRY
        TRY "g=1 limit 1: dword at 0x1ffc"
        mov ax, 0x98
        mov es, ax
        mov eax, [es:0x1FFC]
        ENDTRY
        TRY "g=1 limit 1: dword at 0x1ffd"
        mov ax, 0x98
        mov es, ax
        mov eax, [es:0x1FFD]
        ENDTRY
        TRY "stack: pop across the ss limit"
        mov ax, 0x98
        mov ss, ax
        mov esp, 0x1FFE
        pop eax
        ENDTRY
        TRY "cs: jmp beyond the limit"
        jmp 0xC8:0x1000
        ENDTRY
        TRY "cs: execute-only, read via cs"
        jmp 0x70:.xo
.xo:    mov eax, [cs:0]
        ENDTRY
        TRY "cs: readable conforming, read via cs"
        jmp 0x78:.ro
.ro:    mov eax, [cs:0]
        jmp CODE0:.ro_back
.ro_back:
        ENDTRY
        TRY "ds <- readable code, write"
        mov ax, 0x78
        mov ds, ax
        mov byte [scratch], 1
        ENDTRY

        ; --- accessed bit: set by a load, not by LAR/VERR
        PUTS "accessed: c0 before "
        movzx eax, byte [GDT_BASE + 0xC0 + 5]
        call pm_hex8
        mov eax, 0xC0
        lar ebx, eax
        verr ax
        PUTS " after lar/verr "
        movzx eax, byte [GDT_BASE + 0xC0 + 5]
        call pm_hex8
        mov ax, 0xC0
        mov fs, ax
        mov ax, DATA0
        mov fs, ax
        PUTS " after load "
        movzx eax, byte [GDT_BASE + 0xC0 + 5]
        call pm_hex8
        call pm_nl

        ; --- a segment's hidden limit stays after the descriptor changes
        mov ax, 0x98
        mov gs, ax
        GDT_SET 0x98, 0x00CF_9300_0000_FFFF
        PUTS "cached limit: lsl "
        mov eax, 0x98
        lsl eax, eax
        call pm_hex32
        TRY " gs:[0x2000]"
        mov eax, [gs:0x2000]
        ENDTRY

        PUTS "segments: done", 10
        jmp pm_shutdown

selectors:
        dw 0x08, 0x10, 0x18, 0x23, 0x38, 0x43, 0x48, 0x60, 0x68, 0x70, 0x78
        dw 0x80, 0x83, 0x88, 0x90, 0x98, 0xA0, 0xA8, 0xAB, 0xB0, 0xB8, 0xC0
        dw 0xC8, 0xD0, 0xD3, 0xD8, 0xE0, 0xE3, 0xE8, 0x13, 0x100, 0x0000, 0x0003
        dw 0x0104
        dw 0xFFFF

        times 0xFFF0 - ($ - $$) db 0xF4
        bits 16
        jmp 0xF000:R(reset16)
        times 0x10000 - ($ - $$) db 0xF4
