; cdchange.asm: a guest that watches its CD-ROM drive, for the monitor's
; `eject` and `change` (tests/monitor.rs). In real mode, with the drive's
; interrupt masked (nIEN), it polls the secondary master ATAPI drive by PIO
; (ATA-6 9.10 PACKET): it locks the tray (PREVENT ALLOW MEDIUM REMOVAL),
; then loops on TEST UNIT READY. Ready: it reads block 16 (the ISO 9660
; Primary Volume Descriptor) with READ(10). Failed: it asks REQUEST SENSE.
; Each time what it sees changes it prints one line on port 0xE9:
;   "read VOLUMEID\n"   (the first 8 bytes of the PVD's Volume Identifier)
;   "sense KK/AA/QQ\n"  (sense key, ASC, ASCQ in hex)
; Build: nasm -f bin -o cdchange.bin cdchange.asm   (a 64 KiB BIOS image)
%define ROM 0xF0000
%define R(x) ((x) - ROM)
%define BUF 0x8000                      ; data-in, at 0000:8000
%define DATA 0x170                      ; secondary channel command block
%define ERROR 0x171
%define FEATURES 0x171
%define BCL 0x174
%define BCH 0x175
%define DEVSEL 0x176
%define STATUS 0x177
%define COMMAND 0x177
%define DEVCTL 0x376
        org ROM
        bits 16
start16:
        cli
        xor ax, ax
        mov ss, ax
        mov sp, 0x7000
        mov es, ax                      ; ES: RAM (BUF)
        mov ax, cs
        mov ds, ax                      ; DS: this ROM (the CDBs)
        mov dx, DEVCTL
        mov al, 2                       ; nIEN: no interrupts, we poll
        out dx, al
        mov si, R(cdb_lock)
        call packet
        mov bp, 0xFFFF                  ; what was seen last: nothing yet
.loop:  mov si, R(cdb_tur)
        call packet
        jc .sense
        mov si, R(cdb_read)
        call packet
        jc .sense
        ; Seen: a disc, told apart by a sum of its Volume Identifier.
        xor bx, bx
        mov di, BUF + 40
        mov cx, 32
.sum:   add bl, [es:di]
        rol bl, 1
        inc di
        loop .sum
        mov bh, 0x80
        cmp bx, bp
        je .loop
        mov bp, bx
        mov si, R(s_read)
        call puts
        mov di, BUF + 40
        mov cx, 8
.vol:   mov al, [es:di]
        out 0xE9, al
        inc di
        loop .vol
        mov al, 10
        out 0xE9, al
        jmp .loop
.sense: mov si, R(cdb_sense)
        call packet
        jc .loop
        mov bh, [es:BUF + 2]
        and bh, 0x0F
        mov bl, [es:BUF + 12]
        mov ah, [es:BUF + 13]
        cmp bx, bp
        je .loop
        mov bp, bx
        mov si, R(s_sense)
        call puts
        mov al, bh
        call hex8
        mov al, '/'
        out 0xE9, al
        mov al, bl
        call hex8
        mov al, '/'
        out 0xE9, al
        mov al, ah
        call hex8
        mov al, 10
        out 0xE9, al
        jmp .loop

; Sends the 12-byte CDB at DS:SI as a PACKET command (PIO, byte count
; limit 2048) and reads its data-in, if any, to ES:BUF. CF set on CHECK
; CONDITION. Clobbers AX, CX, DX, SI, DI.
packet: mov dx, DEVSEL
        mov al, 0xA0                    ; master
        out dx, al
        call idle
        mov dx, FEATURES
        xor al, al                      ; PIO, no overlap
        out dx, al
        mov dx, BCL
        out dx, al
        mov dx, BCH
        mov al, 0x08                    ; 2048
        out dx, al
        mov dx, COMMAND
        mov al, 0xA0                    ; PACKET
        out dx, al
        call idle
        test al, 1
        jnz .fail
        mov dx, DATA
        mov cx, 6
        rep outsw
        mov di, BUF
.data:  call idle
        test al, 1
        jnz .fail
        test al, 8                      ; DRQ: a block of data-in
        jz .done
        mov dx, BCL
        in al, dx
        mov cl, al
        mov dx, BCH
        in al, dx
        mov ch, al
        inc cx
        shr cx, 1
        mov dx, DATA
        cmp di, BUF + 2048
        jb .ins
        mov di, BUF                     ; more than asked for: overwrite
.ins:   rep insw
        jmp .data
.done:  clc
        ret
.fail:  stc
        ret

; Waits until the drive is not busy; AL = status.
idle:   mov dx, STATUS
.wait:  in al, dx
        test al, 0x80
        jnz .wait
        ret

; NUL-terminated string at DS:SI to port 0xE9.
puts:   lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp puts
.done:  ret

; AL as two hex digits to port 0xE9. Clobbers CX.
hex8:   mov cl, al
        shr al, 4
        call .digit
        mov al, cl
        and al, 15
.digit: add al, '0'
        cmp al, '9'
        jbe .out
        add al, 'a' - '0' - 10
.out:   out 0xE9, al
        ret

cdb_lock:  db 0x1E, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0     ; PREVENT
cdb_tur:   db 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0     ; TEST UNIT READY
cdb_read:  db 0x28, 0, 0, 0, 0, 16, 0, 0, 1, 0, 0, 0    ; READ(10) block 16
cdb_sense: db 0x03, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0    ; REQUEST SENSE
s_read:    db "read ", 0
s_sense:   db "sense ", 0

        times 0xFFF0 - ($ - $$) db 0xFF
        jmp 0xF000:R(start16)
        times 0x10000 - ($ - $$) db 0xFF
