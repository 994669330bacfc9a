; vx86 test ROM: the ISA platform, programmed directly (no BIOS), self-checking.
; 8259A + 8254 timer interrupts counted, 8254 read-back and the channel 2 gate
; through port 61h, 16550 loopback echo and THRE interrupt, ATA IDENTIFY /
; WRITE SECTORS / READ SECTORS / READ SECTORS EXT on the primary master, and a
; VGA mode set: text mode 03h (default) or mode 13h when the byte at physical
; 0x500 is 1 (the harness sets it), drawn for the harness to check.
; Reports "PASS ..." lines on port 0xE9 and the result on isa-debug-exit
; (port 0xF4): 0 when every check passed (exit status 1), N for check N.
; Build: nasm -f bin -o platform.bin platform.asm   (a 64 KiB BIOS image)

%define ROM 0xF0000
%define R(x) ((x) - ROM)

%define TICKS   0x600           ; IRQ0 count (word)
%define UIRQS   0x602           ; IRQ4 count (word)
%define UIIR    0x604           ; IIR seen by the IRQ4 handler (byte)
%define BUF     0x1000          ; ATA sector buffer (512 bytes)
%define IDBUF   0x1200          ; IDENTIFY data (512 bytes)

%macro FAIL 1
        mov al, %1
        out 0xF4, al
        cli
        hlt
%endmacro

%macro PASS 1
        mov si, R(%1)
        call print
%endmacro

; out imm8 port, imm8 value
%macro OUTB 2
        mov al, %2
        out %1, al
%endmacro

        org ROM
        bits 16
start:
        cli
        cld
        xor ax, ax
        mov ss, ax
        mov sp, 0x7000
        mov es, ax
        mov ax, 0xF000
        mov ds, ax
        ; IVT: IRQ0 -> vector 08h, IRQ4 -> vector 0Ch.
        mov word [es:0x08*4], R(irq0_handler)
        mov word [es:0x08*4+2], 0xF000
        mov word [es:0x0C*4], R(irq4_handler)
        mov word [es:0x0C*4+2], 0xF000
        mov word [es:TICKS], 0
        mov word [es:UIRQS], 0

; ---- 8259A pair: ICW1-4, master at 08h, slave at 70h, cascade on IRQ2 ----
        OUTB 0x20, 0x11         ; ICW1: edge, cascade, ICW4 needed
        OUTB 0xA0, 0x11
        OUTB 0x21, 0x08         ; ICW2: vector base
        OUTB 0xA1, 0x70
        OUTB 0x21, 0x04         ; ICW3: slave on IRQ2
        OUTB 0xA1, 0x02
        OUTB 0x21, 0x01         ; ICW4: 8086 mode
        OUTB 0xA1, 0x01
        OUTB 0x21, 0xFE         ; OCW1: only IRQ0
        OUTB 0xA1, 0xFF
        in al, 0x21
        cmp al, 0xFE            ; the IMR reads back
        je .imr_ok
        FAIL 1
.imr_ok:
; ---- 8254 channel 0, mode 2, 1193 counts (about 1 kHz) ----
        OUTB 0x43, 0x34         ; ch0, lobyte/hibyte, mode 2, binary
        OUTB 0x40, 0xA9         ; 1193 = 04A9h
        OUTB 0x40, 0x04
        sti
.wait_ticks:
        hlt
        cmp word [es:TICKS], 20
        jb .wait_ticks
        cli
        ; Read-back: latch channel 0 status only (11 1 0 001 0 = E2h).
        OUTB 0x43, 0xE2
        in al, 0x40
        and al, 0x3F            ; RW=11, mode 010, BCD 0
        cmp al, 0x34
        je .rb_ok
        FAIL 2
.rb_ok:
        ; Counter latch (00h): the count is within 1..1193.
        OUTB 0x43, 0x00
        in al, 0x40
        mov ah, al
        in al, 0x40
        xchg al, ah
        test ax, ax
        jnz .cnt_nz
        FAIL 3
.cnt_nz:
        cmp ax, 1193
        jbe .cnt_ok
        FAIL 3
.cnt_ok:
        ; OCW3 read ISR: nothing in service after the EOIs.
        OUTB 0x20, 0x0B
        in al, 0x20
        test al, al
        jz .isr_ok
        FAIL 4
.isr_ok:
        OUTB 0x20, 0x0A         ; back to IRR reads
        PASS msg_pit_pic

; ---- 8254 channel 2 gated by port 61h bit 0; OUT2 on port 61h bit 5 ----
        in al, 0x61
        and al, 0xFC            ; gate off, speaker off
        out 0x61, al
        OUTB 0x43, 0xB0         ; ch2, lobyte/hibyte, mode 0
        OUTB 0x42, 0x40         ; count 40h: 64 clocks, about 54 us
        OUTB 0x42, 0x00
        in al, 0x61
        test al, 0x20           ; mode 0: OUT low after the count is written
        jz .out_low
        FAIL 5
.out_low:
        mov cx, 30000           ; gate low for longer than the count: no TC
.gate_off:
        in al, 0x61
        test al, 0x20
        jz .still_low
        FAIL 5
.still_low:
        loop .gate_off
        in al, 0x61
        or al, 0x01             ; gate on
        out 0x61, al
        mov cx, 0xFFFF
.gate_on:
        in al, 0x61
        test al, 0x20
        jnz .out_high
        loop .gate_on
        FAIL 6                  ; terminal count never reached
.out_high:
        PASS msg_gate

; ---- 16550A on COM1: loopback echo through the FIFO ----
        mov dx, 0x3FB
        mov al, 0x80            ; LCR: DLAB
        out dx, al
        mov dx, 0x3F8
        mov al, 1               ; divisor 1: 115200 baud
        out dx, al
        inc dx
        xor al, al
        out dx, al
        mov dx, 0x3FB
        mov al, 0x03            ; 8N1
        out dx, al
        mov dx, 0x3FA
        mov al, 0x07            ; FCR: FIFO on, clear both
        out dx, al
        mov dx, 0x3FC
        mov al, 0x10            ; MCR: loopback
        out dx, al
        mov si, R(uart_text)
.tx:
        lodsb
        test al, al
        jz .tx_done
        mov dx, 0x3F8
        out dx, al
        jmp .tx
.tx_done:
        mov si, R(uart_text)
.rx:
        mov al, [si]
        test al, al
        jz .rx_done
        mov dx, 0x3FD
        mov cx, 0xFFFF
.rx_wait:
        in al, dx
        test al, 0x01           ; LSR.DR
        jnz .rx_ready
        loop .rx_wait
        FAIL 7
.rx_ready:
        mov dx, 0x3F8
        in al, dx
        cmp al, [si]
        je .rx_same
        FAIL 8
.rx_same:
        inc si
        jmp .rx
.rx_done:
        mov dx, 0x3FD
        in al, dx
        test al, 0x01           ; nothing left
        jz .uart_empty
        FAIL 8
.uart_empty:
        ; Loopback feeds MCR outputs back as MSR inputs: RTS->CTS, DTR->DSR,
        ; OUT1->RI, OUT2->DCD (MSR bits 4-7).
        mov dx, 0x3FC
        mov al, 0x1F
        out dx, al
        add dx, 2               ; 3FE
        in al, dx
        and al, 0xF0
        cmp al, 0xF0
        je .msr_ok
        FAIL 9
.msr_ok:
        PASS msg_uart_loop

; ---- 16550A THRE interrupt on IRQ4 ----
        mov dx, 0x3FC
        mov al, 0x08            ; MCR: OUT2 (the IRQ line enable), no loopback
        out dx, al
        OUTB 0x21, 0xEF         ; unmask IRQ4 only
        mov dx, 0x3F9
        mov al, 0x02            ; IER: THRE
        out dx, al
        sti
        mov cx, 100
.wait_thre:
        cmp word [es:UIRQS], 0
        jne .thre_seen
        hlt
        loop .wait_thre
        cli
        FAIL 10
.thre_seen:
        cli
        mov al, [es:UIIR]
        and al, 0x0F
        cmp al, 0x02            ; IIR: THR empty, interrupt pending
        je .thre_ok
        FAIL 11
.thre_ok:
        OUTB 0x21, 0xFF
        PASS msg_uart_irq

; ---- ATA primary master: IDENTIFY, WRITE, READ, READ EXT ----
        mov dx, 0x3F6
        mov al, 0x02            ; device control: nIEN (polled)
        out dx, al
        mov dx, 0x1F6
        mov al, 0xE0            ; LBA, drive 0
        out dx, al
        call ata_wait_ready
        mov dx, 0x1F7
        mov al, 0xEC            ; IDENTIFY DEVICE
        out dx, al
        call ata_wait_drq
        mov di, IDBUF
        mov cx, 256
        mov dx, 0x1F0
        rep insw
        test word [es:IDBUF], 0x8000 ; word 0 bit 15: ATA device
        jz .id_ata
        FAIL 12
.id_ata:
        test word [es:IDBUF + 49*2], 0x0200 ; word 49 bit 9: LBA
        jnz .id_lba
        FAIL 12
.id_lba:
        cmp word [es:IDBUF + 60*2], 2048 ; words 60-61: 2048 sectors
        jne .id_bad
        cmp word [es:IDBUF + 62*2 - 2], 0
        jne .id_bad
        test word [es:IDBUF + 83*2], 0x0400 ; word 83 bit 10: LBA48
        jnz .id_ok
.id_bad:
        FAIL 13
.id_ok:
        ; Pattern: byte i = i * 3 + 1.
        mov di, BUF
        xor cx, cx
.fill:
        mov al, cl
        mov bl, 3
        mul bl
        inc al
        stosb
        inc cx
        cmp cx, 512
        jb .fill
        mov ax, 7
        call ata_lba28
        mov dx, 0x1F7
        mov al, 0x30            ; WRITE SECTORS
        out dx, al
        call ata_wait_drq
        mov si, BUF
        mov cx, 256
        mov dx, 0x1F0
        es rep outsw
        call ata_wait_ready
        ; clear the buffer, then read LBA 7 back
        mov di, BUF
        xor ax, ax
        mov cx, 256
        rep stosw
        mov ax, 7
        call ata_lba28
        mov dx, 0x1F7
        mov al, 0x20            ; READ SECTORS
        out dx, al
        call ata_read_buf
        call check_pattern
        ; READ SECTORS EXT: LBA 7 with the high-order bytes written first.
        mov di, BUF
        xor ax, ax
        mov cx, 256
        rep stosw
        mov dx, 0x1F2
        xor al, al
        out dx, al              ; count 15:8
        mov al, 1
        out dx, al              ; count 7:0
        inc dx                  ; 1F3
        xor al, al
        out dx, al              ; LBA 31:24
        mov al, 7
        out dx, al              ; LBA 7:0
        inc dx                  ; 1F4
        xor al, al
        out dx, al              ; LBA 39:32
        out dx, al              ; LBA 15:8
        inc dx                  ; 1F5
        out dx, al              ; LBA 47:40
        out dx, al              ; LBA 23:16
        mov dx, 0x1F6
        mov al, 0x40            ; LBA, drive 0
        out dx, al
        mov dx, 0x1F7
        mov al, 0x24            ; READ SECTORS EXT
        out dx, al
        call ata_read_buf
        call check_pattern
        PASS msg_ata

; ---- VGA ----
        cmp byte [es:0x500], 1
        je mode13
        call vga_mode3
        PASS msg_vga_text
        jmp done
mode13:
        call vga_mode13
        PASS msg_vga_13
done:
        PASS msg_all
        xor al, al
        out 0xF4, al
        cli
        hlt

; ---------------------------------------------------------------------------
print:                          ; DS:SI -> port E9h, NUL-terminated
        lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp print
.done:  ret

ata_wait_ready:                 ; BSY clear, DRDY set; ERR -> fail 14
        mov dx, 0x1F7
        mov cx, 0xFFFF
.w:     in al, dx
        test al, 0x80
        jnz .next
        test al, 0x01
        jnz .err
        test al, 0x40
        jnz .ok
.next:  loop .w
.err:   FAIL 14
.ok:    ret

ata_wait_drq:                   ; BSY clear, DRQ set
        mov dx, 0x1F7
        mov cx, 0xFFFF
.w:     in al, dx
        test al, 0x80
        jnz .next
        test al, 0x01
        jnz .err
        test al, 0x08
        jnz .ok
.next:  loop .w
.err:   FAIL 15
.ok:    ret

ata_lba28:                      ; AX = LBA (< 64K), one sector, drive 0
        push ax
        mov dx, 0x1F2
        mov al, 1
        out dx, al
        pop ax
        inc dx                  ; 1F3
        out dx, al
        inc dx                  ; 1F4
        mov al, ah
        out dx, al
        inc dx                  ; 1F5
        xor al, al
        out dx, al
        inc dx                  ; 1F6
        mov al, 0xE0
        out dx, al
        ret

ata_read_buf:
        call ata_wait_drq
        mov di, BUF
        mov cx, 256
        mov dx, 0x1F0
        rep insw
        ret

check_pattern:
        xor cx, cx
.c:     mov al, cl
        mov bl, 3
        mul bl
        inc al
        mov bx, cx
        cmp [es:BUF + bx], al
        je .same
        FAIL 16
.same:  inc cx
        cmp cx, 512
        jb .c
        ret

; ---- VGA register programming (IBM VGA Technical Reference mode tables) ----
; SI -> table: misc, 5 sequencer, 25 CRTC, 9 GC, 21 attribute bytes.
vga_set_regs:
        mov dx, 0x3C2
        lodsb
        out dx, al
        mov dx, 0x3C4
        xor ah, ah
.seq:   mov al, ah
        out dx, al
        inc dx
        lodsb
        out dx, al
        dec dx
        inc ah
        cmp ah, 5
        jb .seq
        mov dx, 0x3D4
        mov ax, 0x0E11          ; unlock CRTC 0-7 (clear CR11 bit 7)
        out dx, ax
        xor ah, ah
.crtc:  mov al, ah
        out dx, al
        inc dx
        lodsb
        out dx, al
        dec dx
        inc ah
        cmp ah, 25
        jb .crtc
        mov dx, 0x3CE
        xor ah, ah
.gc:    mov al, ah
        out dx, al
        inc dx
        lodsb
        out dx, al
        dec dx
        inc ah
        cmp ah, 9
        jb .gc
        mov dx, 0x3DA
        in al, dx               ; reset the attribute flip-flop
        mov dx, 0x3C0
        xor ah, ah
.attr:  mov al, ah
        out dx, al
        lodsb
        out dx, al
        inc ah
        cmp ah, 21
        jb .attr
        mov al, 0x20            ; PAS: palette from the attribute controller
        out dx, al
        ret

; DAC entry AL := (BH, BL, CH) 6-bit components.
dac_set:
        mov dx, 0x3C8
        out dx, al
        inc dx
        mov al, bh
        out dx, al
        mov al, bl
        out dx, al
        mov al, ch
        out dx, al
        ret

vga_mode3:
        mov si, R(mode3_regs)
        call vga_set_regs
        ; DAC: the 64 EGA colours (bits 0-2 = b g r at 2/3, 3-5 = B G R at 1/3).
        mov dx, 0x3C8
        xor al, al
        out dx, al
        inc dx
        xor bl, bl
.dac:   mov cl, 2               ; red: bits 2 and 5
        call .comp
        mov cl, 1               ; green: bits 1 and 4
        call .comp
        xor cl, cl              ; blue: bits 0 and 3
        call .comp
        inc bl
        cmp bl, 64
        jb .dac
        ; Font into plane 2 (32 bytes per glyph), then odd/even text addressing.
        mov dx, 0x3C4
        mov ax, 0x0402
        out dx, ax
        mov ax, 0x0704
        out dx, ax
        mov dx, 0x3CE
        mov ax, 0x0204
        out dx, ax
        mov ax, 0x0005
        out dx, ax
        mov ax, 0x0406
        out dx, ax
        push es
        mov ax, 0xA000
        mov es, ax
        xor di, di
        mov si, R(vga_font_8x16)
        mov bx, 256
.glyph: mov cx, 8
        rep movsw
        xor ax, ax
        mov cx, 8
        rep stosw
        dec bx
        jnz .glyph
        mov dx, 0x3C4
        mov ax, 0x0302
        out dx, ax
        mov ax, 0x0204
        out dx, ax
        mov dx, 0x3CE
        mov ax, 0x0004
        out dx, ax
        mov ax, 0x1005
        out dx, ax
        mov ax, 0x0E06
        out dx, ax
        ; Clear the screen (grey on black), then the title in white on blue.
        mov ax, 0xB800
        mov es, ax
        xor di, di
        mov ax, 0x0720
        mov cx, 80 * 25
        rep stosw
        xor di, di
        mov si, R(screen_text)
        mov ah, 0x1F
.title: lodsb
        test al, al
        jz .title_done
        stosw
        jmp .title
.title_done:
        ; Cursor off.
        mov dx, 0x3D4
        mov ax, 0x200A
        out dx, ax
        pop es
        ret
; Outputs the DAC component of colour BL for the primary bit CL (secondary CL+3).
.comp:  xor al, al
        bt bx, cx
        jnc .no_primary
        add al, 42
.no_primary:
        add cl, 3
        bt bx, cx
        jnc .no_secondary
        add al, 21
.no_secondary:
        out dx, al
        ret

vga_mode13:
        mov si, R(mode13_regs)
        call vga_set_regs
        mov al, 1
        mov bx, 0x3F00          ; 1 = red
        xor ch, ch
        call dac_set
        mov al, 2
        mov bx, 0x003F          ; 2 = green
        xor ch, ch
        call dac_set
        mov al, 3
        xor bx, bx              ; 3 = blue
        mov ch, 0x3F
        call dac_set
        push es
        mov ax, 0xA000
        mov es, ax
        xor di, di
        mov al, 1               ; rows 0-99 red
        mov cx, 320 * 100
        rep stosb
        mov al, 2               ; rows 100-199 green
        mov cx, 320 * 100
        rep stosb
        ; A blue 16x16 square at (152, 92).
        mov di, 92 * 320 + 152
        mov dx, 16
.sq:    mov al, 3
        mov cx, 16
        rep stosb
        add di, 320 - 16
        dec dx
        jnz .sq
        pop es
        ret

irq0_handler:
        push ax
        inc word [es:TICKS]
        mov al, 0x20
        out 0x20, al
        pop ax
        iret

irq4_handler:
        push ax
        push dx
        mov dx, 0x3FA
        in al, dx               ; IIR (reading it clears a THRE interrupt)
        mov [es:UIIR], al
        inc word [es:UIRQS]
        mov dx, 0x3F9
        xor al, al              ; IER off: one interrupt is enough
        out dx, al
        mov al, 0x20
        out 0x20, al
        pop dx
        pop ax
        iret

mode3_regs:
        db 0x67
        db 0x03, 0x00, 0x03, 0x00, 0x02
        db 0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00
        db 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF
        db 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF
        db 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07
        db 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F
        db 0x0C, 0x00, 0x0F, 0x08, 0x00
mode13_regs:
        db 0x63
        db 0x03, 0x01, 0x0F, 0x00, 0x0E
        db 0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x41, 0x00, 0x00, 0x00
        db 0x00, 0x00, 0x00, 0x9C, 0x0E, 0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3, 0xFF
        db 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF
        db 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
        db 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
        db 0x41, 0x00, 0x0F, 0x00, 0x00

uart_text:      db "vx86 uart", 0
screen_text:    db "vx86 platform test ROM: text mode 03h", 0
msg_pit_pic:    db "PASS PIT mode 2 -> PIC IRQ0 x20, read-back, ISR", 10, 0
msg_gate:       db "PASS PIT channel 2 gate via port 61h", 10, 0
msg_uart_loop:  db "PASS UART loopback echo, MSR loopback", 10, 0
msg_uart_irq:   db "PASS UART THRE interrupt on IRQ4", 10, 0
msg_ata:        db "PASS ATA IDENTIFY, WRITE/READ SECTORS, READ SECTORS EXT", 10, 0
msg_vga_text:   db "PASS VGA mode 03h set", 10, 0
msg_vga_13:     db "PASS VGA mode 13h set", 10, 0
msg_all:        db "ALL PASS", 10, 0

%include "../firmware/font8x16.inc"

        times 0xFFF0 - ($ - $$) db 0xFF
reset:  jmp 0xF000:R(start)
        times 0x10000 - ($ - $$) db 0xFF
