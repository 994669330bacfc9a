; vx86 test ROM: guest time against the host's clock (no BIOS).
; Prints the RTC's date and time, then waits two seconds of PIT time twice:
; first busy (real mode polling the 8254's counter, no interrupts), then
; idle (HLT until 2000 IRQ0 ticks of a 1 kHz rate have arrived). Each phase
; is bracketed by a line on port 0xE9, so a harness can time it with the
; host's clock; the ROM ends with isa-debug-exit (port 0xF4) value 0.
;
; Lines on port 0xE9:
;   "RTC 20YY-MM-DD HH:MM:SS"   (CMOS registers 9, 8, 7, 4, 2, 0 in BCD)
;   "BUSY START", "BUSY END"    (36 counter wraps of channel 0 at 65536 counts)
;   "IDLE START", "IDLE END"    (36 IRQ0 interrupts, CPU halted in between)
; 36 periods of 65536 / 1.193182 MHz = 54.925 ms are 1.977 s. The long period
; keeps the measurement honest on a loaded host: a guest descheduled for less
; than 55 ms still sees every wrap and every tick.
; Build: nasm -f bin -o timing.bin timing.asm   (a 64 KiB BIOS image)

%define ROM 0xF0000
%define R(x) ((x) - ROM)
%define TICKS 0x600             ; IRQ0 count (word)
%define WAIT  36                ; ticks of 54.925 ms (65536 counts of 1.193182 MHz)

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
        mov word [es:0x08*4], R(irq0)
        mov word [es:0x08*4+2], 0xF000
        mov word [es:TICKS], 0

; ---- the RTC's date and time, as BCD ----
        mov si, R(msg_rtc)
        call print
        mov al, 0x20            ; century: the PC/AT CMOS has none by default
        call hex8
        mov al, 9               ; year
        call cmos_hex
        mov al, '-'
        call putc
        mov al, 8               ; month
        call cmos_hex
        mov al, '-'
        call putc
        mov al, 7               ; day of month
        call cmos_hex
        mov al, ' '
        call putc
        mov al, 4               ; hours
        call cmos_hex
        mov al, ':'
        call putc
        mov al, 2               ; minutes
        call cmos_hex
        mov al, ':'
        call putc
        mov al, 0               ; seconds
        call cmos_hex
        mov al, 10
        call putc

; ---- 8259A: master at 08h, only IRQ0 ----
        mov al, 0x11
        out 0x20, al
        out 0xA0, al
        mov al, 0x08
        out 0x21, al
        mov al, 0x70
        out 0xA1, al
        mov al, 0x04
        out 0x21, al
        mov al, 0x02
        out 0xA1, al
        mov al, 0x01
        out 0x21, al
        out 0xA1, al
        mov al, 0xFF            ; all masked for the busy phase
        out 0x21, al
        out 0xA1, al
; ---- 8254 channel 0, mode 2, 65536 counts (a reload value of 0) ----
        mov al, 0x34
        out 0x43, al
        xor al, al
        out 0x40, al
        out 0x40, al

; ---- busy: count counter wraps by polling (the count goes up at a reload) ----
        mov si, R(msg_busy_start)
        call print
        xor cx, cx              ; wraps seen
        call read_counter
        mov bx, ax              ; previous count
.poll:
        call read_counter
        cmp ax, bx
        mov bx, ax
        jbe .poll               ; still counting down
        inc cx
        cmp cx, WAIT
        jb .poll
        mov si, R(msg_busy_end)
        call print

; ---- idle: HLT until WAIT interrupts ----
        mov si, R(msg_idle_start)
        call print
        mov word [es:TICKS], 0
        mov al, 0xFE
        out 0x21, al
        sti
.idle:
        hlt
        cmp word [es:TICKS], WAIT
        jb .idle
        cli
        mov si, R(msg_idle_end)
        call print
        xor al, al
        out 0xF4, al
        hlt

; Channel 0's count, latched (counter latch command) -> AX.
read_counter:
        mov al, 0x00
        out 0x43, al
        in al, 0x40
        mov ah, al
        in al, 0x40
        xchg al, ah
        ret

irq0:
        inc word [es:TICKS]
        push ax
        mov al, 0x20
        out 0x20, al
        pop ax
        iret

; CMOS register AL, printed as two hex digits (its BCD value).
cmos_hex:
        out 0x70, al
        in al, 0x71
hex8:
        push ax
        shr al, 4
        call hex4
        pop ax
hex4:
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe putc
        add al, 'A' - '9' - 1
putc:
        out 0xE9, al
        ret

print:
        lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp print
.done:
        ret

msg_rtc:        db "RTC ", 0
msg_busy_start: db "BUSY START", 10, 0
msg_busy_end:   db "BUSY END", 10, 0
msg_idle_start: db "IDLE START", 10, 0
msg_idle_end:   db "IDLE END", 10, 0

        times 0xFFF0 - ($ - $$) db 0xFF
reset:  jmp 0xF000:R(start)
        times 0x10000 - ($ - $$) db 0xFF
