; vx86 built-in boot disk - the default guest, booted by the BIOS through
; INT 19h -> INT 13h like any other disk.
;
; Sector 0 is a boot sector that loads the rest of the image to 0000:7E00
; through INT 13h (AH=42h extended read when AH=41h reports EDD, else AH=02h
; CHS read) and jumps there. The program shows a text screen (title, how it
; booted, memory), a clock line updated every second from the PIT tick count
; (INT 1Ah AH=00h) and the RTC (AH=02h), and echoes keys typed on the
; keyboard (INT 16h) or on COM1. Every line on screen is also sent to COM1.
;
; Written for this project from the BIOS interfaces (Ralf Brown's Interrupt
; List, the EDD specification). Build: firmware/build.sh.

bits 16
cpu 386
org 0x7C00

SECTORS         equ (image_end - $$) / 512 ; whole image, in sectors
COM1            equ 0x3F8
VIDEO_SEG       equ 0xB800
ROW_TITLE       equ 0
ROW_BOOT        equ 2
ROW_DISK        equ 3
ROW_MEM         equ 4
ROW_HINT        equ 6
ROW_CLOCK       equ 8
ROW_ECHO        equ 10
ATTR_TITLE      equ 0x2F            ; bright white on green
ATTR_TEXT       equ 0x07
ATTR_NOTE       equ 0x0F
ATTR_CLOCK      equ 0x0E

; ---------------------------------------------------------------------------
; Boot sector
; ---------------------------------------------------------------------------
boot:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7C00
        sti
        cld
        mov [boot_drive], dl
        mov ah, 0x41                    ; EDD present?
        mov bx, 0x55AA
        int 0x13
        jc .chs
        cmp bx, 0xAA55
        jne .chs
        test cl, 1
        jz .chs
        mov byte [boot_method], 'E'
        mov si, dap
        mov ah, 0x42
        int 0x13
        jnc main
.chs:
        mov byte [boot_method], 'C'
        mov ax, 0x0200 | (SECTORS - 1)
        mov cx, 0x0002                  ; cylinder 0, sector 2
        mov dh, 0
        mov dl, [boot_drive]
        mov bx, 0x7E00
        int 0x13
        jnc main
        mov si, str_readfail
.fail:
        lodsb
        test al, al
        jz .halt
        mov ah, 0x0E
        mov bx, 0x0007
        int 0x10
        jmp .fail
.halt:
        hlt
        jmp .halt

dap:
        db 0x10, 0
        dw SECTORS - 1                  ; blocks
        dw 0x7E00, 0x0000               ; buffer offset, segment
        dq 1                            ; LBA
boot_drive:
        db 0
boot_method:
        db 0
str_readfail:
        db "vx86 boot disk: INT 13h read failed", 13, 10, 0

        times 510 - ($ - $$) db 0
        dw 0xAA55

; ---------------------------------------------------------------------------
; The program (0000:7E00)
; ---------------------------------------------------------------------------
main:
        call ser_init
        mov ax, 0x0003
        int 0x10
        mov ah, 0x01                    ; hide the cursor while drawing
        mov cx, 0x2000
        int 0x10

        call lb_begin
        mov si, str_title
        call lb_str
        mov dh, ROW_TITLE
        mov bl, ATTR_TITLE
        call lb_show

        ; how we got here
        call lb_begin
        mov si, str_boot1
        call lb_str
        mov al, [boot_drive]
        call lb_hex8
        mov si, str_boot_edd
        cmp byte [boot_method], 'E'
        je .m
        mov si, str_boot_chs
.m:
        call lb_str
        mov dh, ROW_BOOT
        mov bl, ATTR_TEXT
        call lb_show

        ; the disk, as INT 13h AH=48h and AH=08h describe it
        call lb_begin
        mov si, str_disk1
        call lb_str
        mov word [edd_buf], 0x1A
        mov ah, 0x48
        mov dl, [boot_drive]
        mov si, edd_buf
        int 0x13
        jc .no48
        mov eax, [edd_buf + 16]
        call lb_dec
        mov si, str_disk2
        call lb_str
.no48:
        mov ah, 0x08
        mov dl, [boot_drive]
        push es
        int 0x13
        pop es
        jc .no08
        mov si, str_disk3
        call lb_str
        push cx
        movzx eax, ch                   ; cylinders
        mov ah, cl
        shr ah, 6
        inc eax
        call lb_dec
        mov al, '/'
        call lb_char
        movzx eax, dh
        inc eax
        call lb_dec
        mov al, '/'
        call lb_char
        pop cx
        movzx eax, cl
        and al, 0x3F
        call lb_dec
        mov si, str_disk4
        call lb_str
        movzx eax, dl
        call lb_dec
.no08:
        mov dh, ROW_DISK
        mov bl, ATTR_TEXT
        call lb_show

        ; memory: INT 12h and INT 15h AX=E801h
        call lb_begin
        mov si, str_mem1
        call lb_str
        int 0x12
        movzx eax, ax
        call lb_dec
        mov si, str_mem2
        call lb_str
        mov ax, 0xE801
        int 0x15
        jc .nomem
        movzx eax, ax                   ; KiB from 1 to 16 MiB
        movzx ebx, bx                   ; 64 KiB blocks above 16 MiB
        shl ebx, 6
        add eax, ebx
        add eax, 1024
        shr eax, 10
        call lb_dec
        mov si, str_mem3
        call lb_str
.nomem:
        mov dh, ROW_MEM
        mov bl, ATTR_TEXT
        call lb_show

        call lb_begin
        mov si, str_hint
        call lb_str
        mov dh, ROW_HINT
        mov bl, ATTR_NOTE
        call lb_show

        ; uptime reference: the tick count now
        xor ah, ah
        int 0x1A
        mov [start_ticks], dx
        mov [start_ticks + 2], cx
        mov dword [last_sec], 0xFFFFFFFF

        mov ah, 0x01                    ; cursor on, in the echo area
        mov cx, 0x0607
        int 0x10
        mov ah, 0x02
        xor bh, bh
        mov dx, ROW_ECHO << 8
        int 0x10

; Idle: wait for an interrupt, refresh the clock, echo what was typed.
idle:
        call clock_update
.keys:
        mov ah, 0x01
        int 0x16
        jz .serial
        xor ah, ah
        int 0x16
        call echo
        jmp .keys
.serial:
        mov dx, COM1 + 5
        in al, dx
        test al, 0x01                   ; LSR data ready
        jz .sleep
        mov dx, COM1
        in al, dx
        call echo
        jmp .serial
.sleep:
        sti
        hlt
        jmp idle

; Once per second: "uptime N s  RTC hh:mm:ss" on ROW_CLOCK and COM1.
clock_update:
        pushad
        xor ah, ah
        int 0x1A                        ; CX:DX = ticks since midnight
        shl ecx, 16
        mov cx, dx
        mov eax, ecx
        sub eax, [start_ticks]
        jae .pos
        add eax, 0x1800B0               ; past midnight
.pos:
        mov ecx, 10
        mul ecx
        mov ecx, 182
        div ecx                         ; seconds = ticks * 10 / 182 (18.2 Hz)
        cmp eax, [last_sec]
        je .done
        mov [last_sec], eax
        mov ebx, eax
        cmp word [ser_col], 0           ; end a partly typed serial line first
        je .fresh
        mov word [ser_col], 0
        call ser_crlf
.fresh:
        call lb_begin
        mov si, str_uptime
        call lb_str
        mov eax, ebx
        call lb_dec
        mov si, str_rtc
        call lb_str
        mov ah, 0x02
        int 0x1A                        ; CH:CL:DH = BCD time
        jc .show
        mov al, ch
        call lb_hex8
        mov al, ':'
        call lb_char
        mov al, cl
        call lb_hex8
        mov al, ':'
        call lb_char
        mov al, dh
        call lb_hex8
.show:
        mov dh, ROW_CLOCK
        mov bl, ATTR_CLOCK
        call lb_show
.done:
        popad
        ret

; Echo character AL (from INT 16h or COM1): screen echo area and COM1.
echo:
        pusha
        cmp al, 0x0D
        je .enter
        cmp al, 0x08
        je .back
        cmp al, 0x7F
        je .back
        cmp al, 0x20
        jb .out                         ; other control characters, extended keys
        cmp al, 0xE0
        je .out
        call ser_putc
        inc word [ser_col]
        mov ah, 0x09
        mov bx, 0x0007
        mov cx, 1
        int 0x10
        mov ah, 0x03
        xor bh, bh
        int 0x10
        inc dl
        cmp dl, 80
        jb .setcur
        jmp .newline
.enter:
        call ser_crlf
        mov word [ser_col], 0
        mov ah, 0x03
        xor bh, bh
        int 0x10
.newline:
        xor dl, dl
        inc dh
        cmp dh, 24
        jbe .setcur
        mov dh, 24
        push dx
        mov ax, 0x0601                  ; scroll the echo area up one line
        mov bh, ATTR_TEXT
        mov cx, ROW_ECHO << 8
        mov dx, (24 << 8) | 79
        int 0x10
        pop dx
        jmp .setcur
.back:
        mov ah, 0x03
        xor bh, bh
        int 0x10
        test dl, dl
        jz .out
        dec dl
        mov ah, 0x02
        int 0x10
        mov ax, 0x0920
        mov bx, 0x0007
        mov cx, 1
        int 0x10
        mov al, 8
        call ser_putc
        mov al, ' '
        call ser_putc
        mov al, 8
        call ser_putc
        cmp word [ser_col], 0
        je .out
        dec word [ser_col]
        jmp .out
.setcur:
        mov ah, 0x02
        xor bh, bh
        int 0x10
.out:
        popa
        ret

; ---- COM1 (polled) ----

; 115200 baud (divisor 1), 8N1, FIFOs on, no interrupts: programmed here, as
; not every BIOS leaves COM1 set up (the Bochs BIOS does not).
ser_init:
        mov si, uart_setup
.l:
        lodsw                           ; AL = register offset, AH = value
        cmp al, 0xFF
        je .done
        movzx dx, al
        add dx, COM1
        mov al, ah
        out dx, al
        jmp .l
.done:
        ret
uart_setup:
        db 1, 0x00                      ; IER: no interrupts
        db 3, 0x80                      ; LCR: DLAB
        db 0, 0x01                      ; DLL: divisor 1 = 115200 baud
        db 1, 0x00                      ; DLM
        db 3, 0x03                      ; LCR: 8N1
        db 2, 0x07                      ; FCR: FIFOs on and reset
        db 4, 0x03                      ; MCR: DTR, RTS
        db 0xFF, 0

ser_putc:
        push ax
        push cx
        push dx
        mov ah, al
        mov dx, COM1 + 5
        mov cx, 0xFFFF
.w:
        in al, dx
        test al, 0x20                   ; LSR transmit holding register empty
        jnz .send
        loop .w
.send:
        mov al, ah
        mov dx, COM1
        out dx, al
        pop dx
        pop cx
        pop ax
        ret

ser_crlf:
        push ax
        mov al, 13
        call ser_putc
        mov al, 10
        call ser_putc
        pop ax
        ret

; ---- line buffer: build a line, then show it on a row and send it to COM1 ----
lb_begin:
        mov di, line
        mov byte [di], 0
        ret

lb_char:
        cmp di, line + 79
        jae .full
        mov [di], al
        inc di
        mov byte [di], 0
.full:
        ret

lb_str:
        push ax
.l:
        lodsb
        test al, al
        jz .done
        call lb_char
        jmp .l
.done:
        pop ax
        ret

; AL as two hex digits (also BCD)
lb_hex8:
        push ax
        push ax
        shr al, 4
        call .digit
        pop ax
        call .digit
        pop ax
        ret
.digit:
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe .d
        add al, 'A' - '9' - 1
.d:
        jmp lb_char

; EAX in decimal (DI advances)
lb_dec:
        push eax
        push bx
        push ecx
        push edx
        mov ecx, 10
        xor bx, bx
.div:
        xor edx, edx
        div ecx
        push dx
        inc bx
        test eax, eax
        jnz .div
.emit:
        pop ax
        add al, '0'
        call lb_char
        dec bx
        jnz .emit
        pop edx
        pop ecx
        pop bx
        pop eax
        ret

; Draw the line on row DH in attribute BL (padded to 80 columns) and send
; it to COM1 with CR LF.
lb_show:
        pusha
        push es
        mov ax, VIDEO_SEG
        mov es, ax
        mov al, dh
        mov ah, 160
        mul ah
        mov di, ax
        mov si, line
        mov cx, 80
        mov ah, bl
.l:
        mov al, [si]
        test al, al
        jz .pad
        inc si
        stosw
        call ser_putc
        loop .l
        jmp .eol
.pad:
        mov al, ' '
        rep stosw
.eol:
        call ser_crlf
        pop es
        popa
        ret

str_title:
        db " vx86 boot disk  -  the built-in default guest", 0
str_boot1:
        db "Booted from drive ", 0
str_boot_edd:
        db "h: INT 19h loaded sector 0, INT 13h AH=42h (EDD) the rest.", 0
str_boot_chs:
        db "h: INT 19h loaded sector 0, INT 13h AH=02h (CHS) the rest.", 0
str_disk1:
        db "Disk: ", 0
str_disk2:
        db " sectors", 0
str_disk3:
        db ", CHS ", 0
str_disk4:
        db ", hard disks: ", 0
str_mem1:
        db "Memory: ", 0
str_mem2:
        db " KiB base, ", 0
str_mem3:
        db " MiB total", 0
str_hint:
        db "Type to echo characters; the clock below is driven by the PIT.", 0
str_uptime:
        db "uptime ", 0
str_rtc:
        db " s  RTC ", 0

        align 4
start_ticks:
        dd 0
last_sec:
        dd 0
ser_col:
        dw 0
edd_buf:
        times 0x1A db 0
line:
        times 80 db 0

        align 512, db 0
image_end:
