; postcodes.asm: POST codes and debug-console text on several ports, for the
; -chardev / -device isa-debugcon tests (tests/cli.rs): codes 01 02 55 AA on
; port 0x80, 10 20 FF on port 0x190, "post: ok\n" on 0xE9, "seabios\n" on
; 0x402, then CLI;HLT (vx86 stops: "guest halted with interrupts disabled").
; Build: nasm -f bin -o postcodes.bin postcodes.asm   (a 64 KiB BIOS image)

        org 0xF0000
        bits 16
start:  cli
        mov al, 0x01
        out 0x80, al
        mov al, 0x02
        out 0x80, al
        mov dx, 0x190
        mov al, 0x10
        out dx, al
        mov al, 0x55
        out 0x80, al
        mov al, 0x20
        out dx, al
        mov al, 0xAA
        out 0x80, al
        mov al, 0xFF
        out dx, al
        mov ax, 0xF000
        mov ds, ax
        mov si, text - 0xF0000
        mov dx, 0xE9
        call puts
        mov si, text402 - 0xF0000
        mov dx, 0x402
        call puts
.halt:  cli
        hlt
        jmp .halt

puts:   lodsb
        test al, al
        jz .done
        out dx, al
        jmp puts
.done:  ret

text:    db "post: ok", 10, 0
text402: db "seabios", 10, 0

        times 0xFFF0 - ($ - $$) db 0xFF
        jmp 0xF000:start - 0xF0000
        times 0x10000 - ($ - $$) db 0xFF
