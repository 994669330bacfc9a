; vx86 test ROM: COM1 echo for the console tests. Prints "READY" on COM1,
; then answers every byte it receives with "[XX]" (two hex digits), so a
; test on the host terminal sees exactly which bytes reached the guest and
; when: typed keys without Enter (raw input), Ctrl-C as 03h, Ctrl-a Ctrl-a
; as one 01h. Polls the 16550's line status register (LSR bit 0, data
; ready; bit 5, transmitter holding register empty), no interrupts.
; Build: nasm -f bin -o serecho.bin serecho.asm   (a 64 KiB BIOS image)

%define ROM  0xF0000
%define R(x) ((x) - ROM)
%define COM1 0x3F8

        org ROM
        bits 16
start:
        cli
        cld
        xor ax, ax
        mov ss, ax
        mov sp, 0x7000
        mov ax, 0xF000
        mov ds, ax
        ; 16550: 115200 8N1, FIFOs on, no interrupts.
        mov dx, COM1 + 3
        mov al, 0x80            ; LCR: DLAB
        out dx, al
        mov dx, COM1
        mov al, 1               ; divisor 1
        out dx, al
        inc dx
        xor al, al
        out dx, al
        mov dx, COM1 + 3
        mov al, 0x03            ; LCR: 8 bits, no parity, 1 stop
        out dx, al
        mov dx, COM1 + 2
        mov al, 0x07            ; FCR: enable and clear FIFOs
        out dx, al
        mov dx, COM1 + 1
        xor al, al              ; IER: no interrupts
        out dx, al
        mov si, R(ready)
        call puts
.poll:
        mov dx, COM1 + 5
        in al, dx
        test al, 0x01
        jz .poll
        mov dx, COM1
        in al, dx
        mov bl, al
        mov al, '['
        call putc
        mov al, bl
        shr al, 4
        call hexdigit
        mov al, bl
        and al, 0x0F
        call hexdigit
        mov al, ']'
        call putc
        jmp .poll

; al = 0..15 -> one hex digit on COM1
hexdigit:
        add al, '0'
        cmp al, '9'
        jbe putc
        add al, 'A' - '9' - 1
; al -> COM1, waiting for THRE
putc:
        push dx
        push ax
        mov dx, COM1 + 5
.wait:
        in al, dx
        test al, 0x20
        jz .wait
        pop ax
        mov dx, COM1
        out dx, al
        pop dx
        ret

; ds:si -> COM1 until a zero byte
puts:
        lodsb
        test al, al
        jz .done
        call putc
        jmp puts
.done:
        ret

ready:  db "READY", 13, 10, 0

        times 0xFFF0 - ($ - $$) db 0
reset:                          ; F000:FFF0
        jmp 0xF000:R(start)
        times 0x10000 - ($ - $$) db 0
