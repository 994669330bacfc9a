; vx86 test ROM: disk writes for the kill -9 data-safety test
; (tests/qcow2.rs). No BIOS: the ATA primary master, polled.
;
; Reads LBA 0; its first word is the run id R. Then for n = 1, 2, ...:
; slot s = the LCG x = x * 6255h + 3619h (16 bits, x0 = R), s = x >> 4 &
; 0FFFh (0 -> 1); WRITE MULTIPLE of 8 sectors (4 KiB) at LBA 8 * s, each
; sector k (LBA L = 8 * s + k) holding the 16-bit words
;   'VX' (5856h), R, n, L, then for i = 4..255: (i * 9E37h XOR n) + L;
; every 4th n a FLUSH CACHE, after which "F" + n in 4 hex digits + LF on
; port 0xE9: everything up to n is durable. An ATA error prints "E" + the
; status and halts. Stops (hlt) after 65535 writes; the test kills it
; long before.
; Build: nasm -f bin -o diskwrite.bin diskwrite.asm   (a 64 KiB BIOS image)

%define ROM 0xF0000
%define R(x) ((x) - ROM)
%define BUF  0x1000             ; 8 sectors
%define RUN  0x600              ; words in page 0
%define X    0x602
%define N    0x604
%define LBA  0x606

        org ROM
        bits 16
start:
        cli
        cld
        xor ax, ax
        mov ss, ax
        mov sp, 0x7000
        mov ds, ax
        mov es, ax
        mov dx, 0x3F6
        mov al, 0x02            ; device control: nIEN (polled)
        out dx, al
        mov dx, 0x1F6
        mov al, 0xE0            ; LBA, drive 0
        out dx, al
        call wait_ready
        mov dx, 0x1F2
        mov al, 8
        out dx, al
        mov dx, 0x1F7
        mov al, 0xC6            ; SET MULTIPLE MODE: 8 sectors a block
        out dx, al
        call wait_ready
        xor ax, ax
        mov cl, 1
        call set_lba
        mov dx, 0x1F7
        mov al, 0x20            ; READ SECTORS: LBA 0
        out dx, al
        call wait_drq
        mov di, BUF
        mov cx, 256
        mov dx, 0x1F0
        rep insw
        call wait_ready
        mov ax, [BUF]
        mov [RUN], ax
        mov [X], ax
        mov word [N], 0

next:
        inc word [N]
        jz stop
        mov ax, [X]
        mov bx, 0x6255
        mul bx
        add ax, 0x3619
        mov [X], ax
        shr ax, 4
        and ax, 0x0FFF
        jnz .slot
        inc ax
.slot:  shl ax, 3
        mov [LBA], ax
        mov di, BUF
        xor bx, bx              ; sector k
.sector:
        mov ax, 0x5856
        stosw
        mov ax, [RUN]
        stosw
        mov ax, [N]
        stosw
        mov dx, [LBA]
        add dx, bx              ; DX = L
        mov ax, dx
        stosw
        mov cx, 4               ; word i
        mov si, (4 * 0x9E37) & 0xFFFF
.word:  mov ax, si
        xor ax, [N]
        add ax, dx
        stosw
        add si, 0x9E37
        inc cx
        cmp cx, 256
        jb .word
        inc bx
        cmp bx, 8
        jb .sector
        mov ax, [LBA]
        mov cl, 8
        call set_lba
        mov dx, 0x1F7
        mov al, 0xC5            ; WRITE MULTIPLE
        out dx, al
        call wait_drq
        mov si, BUF
        mov cx, 2048
        mov dx, 0x1F0
        rep outsw
        call wait_ready
        test word [N], 3
        jnz next
        mov dx, 0x1F7
        mov al, 0xE7            ; FLUSH CACHE
        out dx, al
        call wait_ready
        mov al, 'F'
        out 0xE9, al
        mov ax, [N]
        call hex16
        mov al, 10
        out 0xE9, al
        jmp next

stop:   cli
        hlt
        jmp stop

; AX = LBA (< 64K), CL = sector count; drive 0, LBA mode.
set_lba:
        push ax
        mov dx, 0x1F2
        mov al, cl
        out dx, al
        pop ax
        inc dx                  ; 1F3: LBA 7:0
        out dx, al
        inc dx                  ; 1F4: LBA 15:8
        mov al, ah
        out dx, al
        inc dx                  ; 1F5: LBA 23:16
        xor al, al
        out dx, al
        inc dx                  ; 1F6
        mov al, 0xE0
        out dx, al
        ret

; BSY clear and DRDY set; ERR -> "E", the status, halt.
wait_ready:
        mov dx, 0x1F7
.w:     in al, dx
        test al, 0x80
        jnz .w
        test al, 0x01
        jnz error
        test al, 0x40
        jz .w
        ret

; BSY clear and DRQ set; ERR -> "E", the status, halt.
wait_drq:
        mov dx, 0x1F7
.w:     in al, dx
        test al, 0x80
        jnz .w
        test al, 0x01
        jnz error
        test al, 0x08
        jz .w
        ret

error:
        mov ah, al
        mov al, 'E'
        out 0xE9, al
        mov al, ah
        xor ah, ah
        call hex16
        mov al, 10
        out 0xE9, al
        jmp stop

; AX in four hex digits on port 0xE9.
hex16:
        mov cx, 4
.d:     rol ax, 4
        push ax
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe .out
        add al, 'A' - '9' - 1
.out:   out 0xE9, al
        pop ax
        loop .d
        ret

        times 0xFFF0 - ($ - $$) db 0xFF
reset:  jmp 0xF000:R(start)
        times 0x10000 - ($ - $$) db 0xFF
