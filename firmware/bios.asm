; vx86 BIOS - the system firmware of the vx86 PC emulator.
;
; Written for this project from the IBM PC/AT BIOS interface as documented in
; the IBM PC/AT Technical Reference and Ralf Brown's Interrupt List (register
; conventions of INT 08h-1Ch, the BIOS Data Area layout) and from the device
; datasheets (8259A PIC, 8254 PIT, MC146818 RTC, 16550A UART, 8042 keyboard
; controller, IBM VGA). No code is taken from any other BIOS.
;
; The image is 64 KiB, mapped at F000:0000 (physical 0xF0000, and at 0xFFFF0000
; below 4 GiB); the CPU starts at F000:FFF0. Everything runs in 16-bit real
; mode; 386 instructions are used where they make the code simpler.
;
; Build: firmware/build.sh (nasm -f bin -o firmware/bios.bin firmware/bios.asm)

bits 16
cpu 386
org 0

%define BIOS_VERSION "0.1"
%define BIOS_DATE    "11/24/26"

; ---------------------------------------------------------------------------
; Constants
; ---------------------------------------------------------------------------

BDA_SEG         equ 0x0040          ; BIOS Data Area segment (physical 0x400)
EBDA_SEG        equ 0x9FC0          ; 1 KiB Extended BIOS Data Area at 0x9FC00
EBDA_KIB        equ 1
BASE_KIB        equ 640 - EBDA_KIB  ; conventional memory reported by INT 12h
VIDEO_SEG       equ 0xB800          ; colour text memory
GFX_SEG         equ 0xA000          ; graphics memory (mode 13h)
STACK_TOP       equ 0x7C00          ; POST stack 0000:7C00 (below the boot sector)

; BDA offsets (relative to segment 0x40)
BDA_COM1        equ 0x00            ; serial port base addresses (4 words)
BDA_LPT1        equ 0x08            ; parallel port base addresses (3 words)
BDA_EBDA        equ 0x0E            ; EBDA segment
BDA_EQUIP       equ 0x10            ; equipment word (INT 11h)
BDA_MEMKIB      equ 0x13            ; conventional memory KiB (INT 12h)
BDA_KBFLAG      equ 0x17            ; keyboard shift flags 1
BDA_KBFLAG1     equ 0x18            ; keyboard shift flags 2
BDA_KBHEAD      equ 0x1A            ; keyboard buffer head offset
BDA_KBTAIL      equ 0x1C            ; keyboard buffer tail offset
BDA_KBBUF       equ 0x1E            ; keyboard buffer 0x41E-0x43D
BDA_KBBUF_END   equ 0x3E
BDA_FDSTATUS    equ 0x41            ; last diskette operation status
BDA_VMODE       equ 0x49            ; current video mode
BDA_VCOLS       equ 0x4A            ; columns (word)
BDA_VPAGESIZE   equ 0x4C            ; regen buffer size (word)
BDA_VPAGEOFF    equ 0x4E            ; active page offset (word)
BDA_CURPOS      equ 0x50            ; cursor positions, 8 pages (col, row)
BDA_CURSHAPE    equ 0x60            ; cursor end line, start line
BDA_VPAGE       equ 0x62            ; active page
BDA_CRTC        equ 0x63            ; CRTC port base (word)
BDA_CRTMODE     equ 0x65            ; 3x8 mode control register value
BDA_CRTPAL      equ 0x66            ; 3x9 palette register value
BDA_RESETPTR    equ 0x67            ; far pointer for shutdown-code resume
BDA_TICKS       equ 0x6C            ; timer ticks since midnight (dword)
BDA_MIDNIGHT    equ 0x70            ; midnight rollover flag
BDA_BREAK       equ 0x71            ; Ctrl-Break flag
BDA_RESETFLAG   equ 0x72            ; warm boot flag (0x1234)
BDA_HDSTATUS    equ 0x74            ; last hard disk operation status
BDA_NUMHD       equ 0x75            ; number of hard disks
BDA_HDCONTROL   equ 0x76            ; fixed disk control byte
BDA_LPTTIMEOUT  equ 0x78            ; parallel timeouts (3 bytes + 1)
BDA_COMTIMEOUT  equ 0x7C            ; serial timeouts (4 bytes, seconds)
BDA_KBSTART     equ 0x80            ; keyboard buffer start offset (word)
BDA_KBEND       equ 0x82            ; keyboard buffer end offset (word)
BDA_VROWS       equ 0x84            ; rows on screen minus one
BDA_CHARHEIGHT  equ 0x85            ; character height in scan lines (word)
BDA_VOPTIONS    equ 0x87            ; EGA/VGA control
BDA_VSWITCHES   equ 0x88            ; EGA/VGA switches
BDA_VGAFLAGS    equ 0x89            ; VGA mode-set option control
BDA_DCCINDEX    equ 0x8A            ; display combination code index
BDA_KBFLAG3     equ 0x96            ; keyboard flags 3 (bit 4: 101-key, bit 1: last was E0)
BDA_KBLEDS      equ 0x97            ; keyboard LED flags

; Shift flag bits (BDA 0x417)
KF_RSHIFT       equ 0b0000_0001
KF_LSHIFT       equ 0b0000_0010
KF_CTRL         equ 0b0000_0100
KF_ALT          equ 0b0000_1000
KF_CAPS         equ 0b0100_0000
KF3_E0          equ 0b0000_0010
KF3_101KEY      equ 0b0001_0000

; EBDA offsets (relative to EBDA_SEG)
EBDA_SIZE       equ 0x00            ; size in KiB (byte 0 of every EBDA)
EB_BOOTTICKS    equ 0x10            ; tick count when the idle screen started
EB_LASTSEC      equ 0x14            ; last uptime second shown
EB_SERCOL       equ 0x18            ; characters on the current serial line
EB_LINE         equ 0x100           ; line buffer (NUL terminated, 128 bytes)
EB_LINE_MAX     equ 120

; 8259A PIC (Intel 8259A datasheet: ICW1-ICW4, OCW2)
PIC1_CMD        equ 0x20
PIC1_DATA       equ 0x21
PIC2_CMD        equ 0xA0
PIC2_DATA       equ 0xA1
ICW1_INIT_ICW4  equ 0b0001_0001     ; ICW1: edge triggered, cascade, ICW4 needed
ICW4_8086       equ 0b0000_0001     ; ICW4: 8086 mode, normal EOI
OCW2_EOI        equ 0b0010_0000     ; non-specific EOI
PIC1_VECTOR     equ 0x08
PIC2_VECTOR     equ 0x70

; 8254 PIT
PIT_CH0         equ 0x40
PIT_MODE        equ 0x43
PIT_CH0_MODE3   equ 0b0011_0110     ; channel 0, lobyte/hibyte, mode 3, binary

; MC146818 RTC / CMOS
CMOS_INDEX      equ 0x70
CMOS_DATA       equ 0x71
RTC_SEC         equ 0x00
RTC_MIN         equ 0x02
RTC_HOUR        equ 0x04
RTC_DAY         equ 0x07
RTC_MONTH       equ 0x08
RTC_YEAR        equ 0x09
RTC_REG_A       equ 0x0A
RTC_REG_B       equ 0x0B
RTC_REG_C       equ 0x0C
RTC_REG_D       equ 0x0D
CMOS_SHUTDOWN   equ 0x0F
CMOS_EXT_LO     equ 0x30            ; extended memory KiB above 1 MiB
CMOS_EXT_HI     equ 0x31
CMOS_CENTURY    equ 0x32
CMOS_HIGH_LO    equ 0x34            ; 64 KiB blocks above 16 MiB
CMOS_HIGH_HI    equ 0x35
RTC_A_UIP       equ 0b1000_0000
RTC_B_SET       equ 0b1000_0000
RTC_B_24H       equ 0b0000_0010
RTC_B_DST       equ 0b0000_0001

; 16550A UART (COM1)
COM1_BASE       equ 0x3F8
UART_RBR        equ 0               ; receive buffer / transmit holding / DLL
UART_IER        equ 1               ; interrupt enable / DLM
UART_FCR        equ 2
UART_LCR        equ 3
UART_MCR        equ 4
UART_LSR        equ 5
UART_MSR        equ 6
UART_SCR        equ 7
LCR_DLAB        equ 0b1000_0000
LCR_8N1         equ 0b0000_0011
FCR_ENABLE_RESET equ 0b0000_0111   ; enable FIFOs, reset RX and TX FIFOs
MCR_DTR_RTS     equ 0b0000_0011
MCR_OUT1        equ 0b0000_0100     ; spare output: POST's mark, see sercon.inc
MCR_OUT2        equ 0b0000_1000     ; gates the UART interrupt onto the IRQ line
IER_RX          equ 0b0000_0001
LSR_DR          equ 0b0000_0001
LSR_THRE        equ 0b0010_0000
DIVISOR_115200  equ 1

; 8042 keyboard controller
KBC_DATA        equ 0x60
KBC_STATUS      equ 0x64
KBC_CMD         equ 0x64
KBC_STAT_OBF    equ 0b0000_0001
KBC_WRITE_CMDBYTE equ 0x60
KBC_PULSE_RESET equ 0xFE            ; pulse output port bit 0 (CPU reset)
KBC_CMDBYTE     equ 0b0110_0101     ; XLAT, aux disabled, SYS, keyboard IRQ1

; System control port A (fast A20)
PORT_A          equ 0x92
PORTA_A20       equ 0b0000_0010

; VGA
VGA_AC          equ 0x3C0
VGA_MISC_W      equ 0x3C2
VGA_SEQ         equ 0x3C4
VGA_DAC_MASK    equ 0x3C6
VGA_DAC_WIDX    equ 0x3C8
VGA_DAC_DATA    equ 0x3C9
VGA_GC          equ 0x3CE
VGA_CRTC        equ 0x3D4
VGA_STAT1       equ 0x3DA
CRTC_START_HI   equ 0x0C
CRTC_START_LO   equ 0x0D
CRTC_CUR_START  equ 0x0A
CRTC_CUR_END    equ 0x0B
CRTC_CUR_HI     equ 0x0E
CRTC_CUR_LO     equ 0x0F
CRTC_VRETRACE_END equ 0x11

; Boot screen layout
ROW_TITLE       equ 0
ROW_MEM         equ 2
ROW_DEV         equ 3
ROW_NODISK      equ 5
ROW_HINT        equ 6
ROW_CLOCK       equ 8
ROW_ECHO_TOP    equ 10
ATTR_TITLE      equ 0x1F            ; bright white on blue
ATTR_TEXT       equ 0x07
ATTR_NOTE       equ 0x0F
ATTR_WARN       equ 0x0E            ; yellow
ATTR_CLOCK      equ 0x0A            ; bright green

; Register frame built by SVC_ENTER (push ds, push es, pushad; bp = sp)
R_DI            equ 0
R_SI            equ 4
R_BP            equ 8
R_BX            equ 16
R_BL            equ 16
R_BH            equ 17
R_DX            equ 20
R_DL            equ 20
R_DH            equ 21
R_CX            equ 24
R_CL            equ 24
R_CH            equ 25
R_AX            equ 28
R_AL            equ 28
R_AH            equ 29
R_ES            equ 32
R_DS            equ 34
R_IP            equ 36
R_CS            equ 38
R_FLAGS         equ 40
FLAG_CF         equ 0b0000_0001
FLAG_ZF         equ 0b0100_0000

; Service entry: saves every register, points BP at the frame and DS at the BDA.
%macro SVC_ENTER 0
        push ds
        push es
        pushad
        mov bp, sp
        cld
        push word BDA_SEG
        pop ds
%endmacro

%macro SVC_LEAVE 0
        popad
        pop es
        pop ds
        iret
%endmacro

%macro SET_CF 0
        or byte [bp + R_FLAGS], FLAG_CF
%endmacro
%macro CLEAR_CF 0
        and byte [bp + R_FLAGS], ~FLAG_CF & 0xFF
%endmacro

; ---------------------------------------------------------------------------
; ROM header: nothing is required at F000:0000; the code starts here.
; ---------------------------------------------------------------------------

rom_start:
        db "vx86 BIOS ", BIOS_VERSION, 0

; ===========================================================================
; POST
; ===========================================================================

post:
        cli
        cld
        xor ax, ax
        mov ss, ax
        mov sp, STACK_TOP

        ; Shutdown status (CMOS 0x0F): a 286-style return from protected
        ; mode through a CPU reset resumes at the far pointer at 0040:0067.
        mov al, CMOS_SHUTDOWN
        call cmos_read
        mov bl, al
        mov ax, (0x00 << 8) | CMOS_SHUTDOWN
        call cmos_write
        cmp bl, 0x05                    ; EOI the PICs, then jump via 0040:0067
        je .resume_eoi
        cmp bl, 0x0A                    ; jump via 0040:0067, no EOI
        je .resume
        jmp .cold
.resume_eoi:
        mov al, OCW2_EOI
        out PIC2_CMD, al
        out PIC1_CMD, al
.resume:
        mov ax, BDA_SEG
        mov ds, ax
        push word [BDA_RESETPTR + 2]    ; far jump through 0040:0067
        push word [BDA_RESETPTR]
        retf

.cold:
        mov al, 0x01
        out 0x80, al                    ; POST code 01: started

        ; Clear the IVT, the BDA and the DOS area below 0x600.
        xor ax, ax
        mov es, ax
        xor di, di
        mov cx, 0x600 / 2
        rep stosw

        ; Every vector -> a bare IRET.
        xor di, di
        mov cx, 256
.ivt:
        mov ax, default_iret
        stosw
        mov ax, 0xF000
        stosw
        loop .ivt

        ; Hardware interrupt vectors: default handlers that acknowledge the PIC.
        mov di, PIC1_VECTOR * 4
        mov cx, 8
.irq_lo:
        mov ax, irq_master_default
        stosw
        mov ax, 0xF000
        stosw
        loop .irq_lo
        mov di, PIC2_VECTOR * 4
        mov cx, 8
.irq_hi:
        mov ax, irq_slave_default
        stosw
        mov ax, 0xF000
        stosw
        loop .irq_hi

        ; The real services.
        mov si, vector_table
.vec:
        cs lodsb
        cmp al, 0xFF
        je .vec_done
        movzx di, al
        shl di, 2
        cs lodsw
        stosw
        mov ax, 0xF000
        stosw
        jmp .vec
.vec_done:
        ; Data pointers held in the IVT: none of these tables exist yet.
        xor ax, ax
        mov [es:0x1D * 4], ax           ; video parameter table
        mov [es:0x1D * 4 + 2], ax
        mov [es:0x1E * 4], ax           ; diskette parameter table
        mov [es:0x1E * 4 + 2], ax
        mov [es:0x1F * 4], ax           ; graphics font 80h-FFh
        mov [es:0x1F * 4 + 2], ax
        mov [es:0x41 * 4], ax           ; hard disk 0 parameters
        mov [es:0x41 * 4 + 2], ax
        mov [es:0x46 * 4], ax           ; hard disk 1 parameters
        mov [es:0x46 * 4 + 2], ax

        mov al, 0x02
        out 0x80, al                    ; POST code 02: IVT ready

        ; ---- BIOS Data Area ----
        mov ax, BDA_SEG
        mov ds, ax
        mov word [BDA_COM1], COM1_BASE
        mov word [BDA_EBDA], EBDA_SEG
        ; Equipment: bits 9-11 = 1 serial port, bits 4-5 = 10b (80x25 colour).
        mov word [BDA_EQUIP], (1 << 9) | (0b10 << 4)
        mov word [BDA_MEMKIB], BASE_KIB
        mov word [BDA_KBHEAD], BDA_KBBUF
        mov word [BDA_KBTAIL], BDA_KBBUF
        mov word [BDA_KBSTART], BDA_KBBUF
        mov word [BDA_KBEND], BDA_KBBUF_END
        mov byte [BDA_KBFLAG3], KF3_101KEY
        mov dword [BDA_LPTTIMEOUT], 0x14141414
        mov dword [BDA_COMTIMEOUT], 0x01010101
        mov word [BDA_CRTC], VGA_CRTC
        mov byte [BDA_VMODE], 0x03
        mov word [BDA_VCOLS], 80
        mov byte [BDA_VROWS], 24

        ; ---- EBDA ----
        push ds
        mov ax, EBDA_SEG
        mov es, ax
        xor di, di
        xor ax, ax
        mov cx, EBDA_KIB * 1024 / 2
        rep stosw
        mov byte [es:EBDA_SIZE], EBDA_KIB
        pop ds
        call sc_init

        ; ---- 8259A pair: master vectors 08h-0Fh, slave 70h-77h, cascade on IRQ2 ----
        mov al, ICW1_INIT_ICW4
        out PIC1_CMD, al
        out PIC2_CMD, al
        mov al, PIC1_VECTOR
        out PIC1_DATA, al               ; ICW2
        mov al, PIC2_VECTOR
        out PIC2_DATA, al
        mov al, 0b0000_0100             ; ICW3 master: slave on IR2
        out PIC1_DATA, al
        mov al, 2                       ; ICW3 slave: cascade identity 2
        out PIC2_DATA, al
        mov al, ICW4_8086
        out PIC1_DATA, al
        out PIC2_DATA, al
        mov al, 0b1111_1000             ; OCW1 master: IRQ0, IRQ1, IRQ2 unmasked
        out PIC1_DATA, al
        mov al, 0xFF                    ; OCW1 slave: all masked
        out PIC2_DATA, al

        ; ---- 8254 channel 0: mode 3, count 0 (65536) = 18.2 Hz ----
        mov al, PIT_CH0_MODE3
        out PIT_MODE, al
        xor al, al
        out PIT_CH0, al
        out PIT_CH0, al

        mov al, 0x03
        out 0x80, al                    ; POST code 03: timer and PICs ready

        ; ---- COM1: 115200 8N1, FIFOs on, no interrupts, OUT1 (sercon.inc) ----
        call uart_init_115200

        ; ---- RTC: 24-hour BCD, no interrupts; clear pending flags ----
        mov al, RTC_REG_B
        call cmos_read
        and al, RTC_B_DST
        or al, RTC_B_24H
        mov ah, al
        mov al, RTC_REG_B
        call cmos_write
        mov al, RTC_REG_C
        call cmos_read

        ; ---- 8042: translated set 1 scan codes, IRQ1 on ----
        call kbc_flush
        mov al, KBC_WRITE_CMDBYTE
        out KBC_CMD, al
        mov al, KBC_CMDBYTE
        out KBC_DATA, al
        call kbc_flush

        ; ---- Fast A20 on (the machine powers up with A20 enabled) ----
        in al, PORT_A
        or al, PORTA_A20
        and al, 0b1111_1110             ; never pulse the reset bit
        out PORT_A, al

        ; ---- Tick count from the RTC time of day ----
        call ticks_from_rtc

        ; ---- Video: mode 3 through our own INT 10h ----
        mov ax, 0x0003
        int 0x10

        mov al, 0x04
        out 0x80, al                    ; POST code 04: video ready

        ; ---- Banner, on screen and (through the mirror) on COM1 ----
        mov si, str_banner
        call print_str

        ; ---- PCI (-M pc): PIRQ routing, BARs, interrupt lines (pci.inc) ----
        call pci_setup

        ; ---- Fixed disks on the two ATA channels ----
        call ata_detect

        ; ---- Option ROMs at C0000-DFFFF (2 KiB steps, 55AA signature) ----
        call option_rom_scan

        mov al, 0x05
        out 0x80, al                    ; POST code 05: boot
        ; An option ROM that hooked INT 19h boots the machine itself (QEMU's
        ; linuxboot, network boot ROMs): say so, as SeaBIOS does.
        xor ax, ax
        mov es, ax
        cmp word [es:0x19 * 4], int19_boot
        jne .rom_boot
        cmp word [es:0x19 * 4 + 2], 0xF000
        je .int19
.rom_boot:
        mov si, str_boot_rom
        call print_str
.int19:
        sti
        int 0x19
        ; INT 19h does not return; if a hooked one does, idle.
        jmp idle_forever

; vector number, handler offset (segment F000); 0xFF ends the list
vector_table:
        db 0x08
        dw int08_timer
        db 0x09
        dw int09_keyboard
        db 0x10
        dw int10_video
        db 0x11
        dw int11_equipment
        db 0x12
        dw int12_memory
        db 0x13
        dw int13_disk
        db 0x14
        dw int14_serial
        db 0x15
        dw int15_system
        db 0x16
        dw int16_keyboard
        db 0x17
        dw int17_printer
        db 0x18
        dw int18_no_basic
        db 0x19
        dw int19_boot
        db 0x1A
        dw int1a_time
        db 0x1C
        dw default_iret
        db 0xFF

; ---------------------------------------------------------------------------
; POST helpers
; ---------------------------------------------------------------------------

; Program COM1: 115200 baud (divisor 1), 8N1, FIFOs enabled and reset,
; DTR and RTS on, interrupts off; OUT1 marks the port as the BIOS's for the
; serial console mirror (sercon.inc).
uart_init_115200:
        push ax
        push dx
        mov dx, COM1_BASE + UART_IER
        xor al, al
        out dx, al
        mov dx, COM1_BASE + UART_LCR
        mov al, LCR_DLAB
        out dx, al
        mov dx, COM1_BASE + UART_RBR    ; DLL
        mov al, DIVISOR_115200 & 0xFF
        out dx, al
        mov dx, COM1_BASE + UART_IER    ; DLM
        mov al, DIVISOR_115200 >> 8
        out dx, al
        mov dx, COM1_BASE + UART_LCR
        mov al, LCR_8N1
        out dx, al
        mov dx, COM1_BASE + UART_FCR
        mov al, FCR_ENABLE_RESET
        out dx, al
        mov dx, COM1_BASE + UART_MCR
        mov al, SC_MCR
        out dx, al
        pop dx
        pop ax
        ret

; Drain the 8042 output buffer (bounded).
kbc_flush:
        push ax
        push cx
        mov cx, 16
.l:
        in al, KBC_STATUS
        test al, KBC_STAT_OBF
        jz .done
        in al, KBC_DATA
        loop .l
.done:
        pop cx
        pop ax
        ret

; Set the BDA tick count from the RTC time of day:
; ticks = seconds since midnight * 1193180 / 65536.
ticks_from_rtc:
        pushad
        push ds
        call rtc_wait_uip
        mov al, RTC_HOUR
        call cmos_read
        call bcd_to_bin
        movzx ebx, al
        imul ebx, ebx, 3600
        mov al, RTC_MIN
        call cmos_read
        call bcd_to_bin
        movzx eax, al
        imul eax, eax, 60
        add ebx, eax
        mov al, RTC_SEC
        call cmos_read
        call bcd_to_bin
        movzx eax, al
        add eax, ebx
        mov ecx, 1193180
        mul ecx
        shrd eax, edx, 16
        mov bx, BDA_SEG
        mov ds, bx
        mov [BDA_TICKS], eax
        mov byte [BDA_MIDNIGHT], 0
        pop ds
        popad
        ret

; Scan C0000-DFFFF for option ROMs (55 AA, length byte in 512-byte units,
; bytes summing to 0) and call each one's entry point at offset 3.
option_rom_scan:
        pushad
        push ds
        push es
        mov bx, 0xC000
.next:
        mov ds, bx
        cmp word [0], 0xAA55
        jne .skip
        movzx cx, byte [2]
        test cx, cx
        jz .skip
        shl cx, 9                       ; bytes (up to 127.5 KiB wraps: cap at 64 KiB - 512)
        xor si, si
        xor ah, ah
.sum:
        lodsb
        add ah, al
        loop .sum
        test ah, ah
        jnz .skip
        ; far call BX:0003 (return address pushed, then RETF to the entry)
        push bx
        push ds
        push cs
        push word .returned
        push bx
        push word 0x0003
        retf
.returned:
        cli
        cld
        pop ds
        pop bx
        movzx ax, byte [2]
        add ax, 3                       ; round up to the next 2 KiB
        shr ax, 2
        shl ax, 7                       ; paragraphs
        add bx, ax
        jmp .check_end
.skip:
        add bx, 0x80                    ; 2 KiB
.check_end:
        cmp bx, 0xE000
        jb .next
        pop es
        pop ds
        popad
        ret

; ===========================================================================
; Small shared helpers
; ===========================================================================

; AL = CMOS index -> AL = value. Preserves everything else.
cmos_read:
        pushf
        cli
        out CMOS_INDEX, al
        in al, CMOS_DATA
        popf
        ret

; AL = CMOS index, AH = value.
cmos_write:
        pushf
        cli
        out CMOS_INDEX, al
        xchg al, ah
        out CMOS_DATA, al
        xchg al, ah
        popf
        ret

; Wait (bounded) until the RTC update-in-progress flag is clear, so the time
; registers read consistently (MC146818 datasheet, register A UIP).
rtc_wait_uip:
        push ax
        push cx
        mov cx, 0xFFFF
.l:
        mov al, RTC_REG_A
        call cmos_read
        test al, RTC_A_UIP
        jz .done
        loop .l
.done:
        pop cx
        pop ax
        ret

; AL (BCD) -> AL (binary)
bcd_to_bin:
        push cx
        mov cl, al
        shr al, 4
        mov ch, 10
        mul ch
        and cl, 0x0F
        add al, cl
        pop cx
        ret

; RAM top (first byte above the RAM that starts at 1 MiB) from CMOS -> EAX.
; 0x34/0x35 count 64 KiB blocks above 16 MiB; if zero, 0x30/0x31 give the
; KiB above 1 MiB.
ram_top:
        mov al, CMOS_HIGH_HI
        call cmos_read
        mov ah, al
        mov al, CMOS_HIGH_LO
        call cmos_read
        test ax, ax
        jz .ext
        movzx eax, ax
        shl eax, 16
        add eax, 0x1000000
        ret
.ext:
        call cmos_ext_kib
        movzx eax, ax
        shl eax, 10
        add eax, 0x100000
        ret

; CMOS 0x30/0x31 extended memory KiB -> AX
cmos_ext_kib:
        mov al, CMOS_EXT_HI
        call cmos_read
        mov ah, al
        mov al, CMOS_EXT_LO
        call cmos_read
        ret

; Send AL to COM1, waiting (bounded) for the transmit holding register.
ser_putc:
        push ax
        push cx
        push dx
        mov ah, al
        mov dx, COM1_BASE + UART_LSR
        mov cx, 0xFFFF
.w:
        in al, dx
        test al, LSR_THRE
        jnz .send
        loop .w
.send:
        mov al, ah
        mov dx, COM1_BASE
        out dx, al
        pop dx
        pop cx
        pop ax
        ret

; ===========================================================================
; Interrupt handlers
; ===========================================================================

default_iret:
        iret

; Unclaimed IRQ 0-7: acknowledge the master PIC.
irq_master_default:
        push ax
        mov al, OCW2_EOI
        out PIC1_CMD, al
        pop ax
        iret

; Unclaimed IRQ 8-15: acknowledge both PICs.
irq_slave_default:
        push ax
        mov al, OCW2_EOI
        out PIC2_CMD, al
        out PIC1_CMD, al
        pop ax
        iret

; ---------------------------------------------------------------------------
; INT 08h - IRQ0, system timer (18.2 Hz)
; ---------------------------------------------------------------------------
int08_timer:
        push eax
        push ds
        mov ax, BDA_SEG
        mov ds, ax
        mov eax, [BDA_TICKS]
        inc eax
        cmp eax, 0x1800B0               ; ticks in 24 hours
        jb .store
        xor eax, eax
        mov byte [BDA_MIDNIGHT], 1
.store:
        mov [BDA_TICKS], eax
        int 0x1C                        ; user timer tick
        cli
        mov al, OCW2_EOI
        out PIC1_CMD, al
        pop ds
        pop eax
        iret

; ---------------------------------------------------------------------------
; INT 09h - IRQ1, keyboard: set 1 scan code -> BDA ring buffer
; ---------------------------------------------------------------------------
int09_keyboard:
        pusha
        push ds
        mov ax, BDA_SEG
        mov ds, ax
        in al, KBC_DATA
        cmp al, 0xE0
        jne .not_prefix
        or byte [BDA_KBFLAG3], KF3_E0
        jmp .eoi
.not_prefix:
        mov ah, [BDA_KBFLAG3]
        and byte [BDA_KBFLAG3], ~KF3_E0 & 0xFF
        and ah, KF3_E0                  ; AH != 0: this code followed E0
        mov bl, al
        and bl, 0x7F                    ; BL = key code without the break bit

        ; modifiers (make sets, break clears)
        mov bh, KF_LSHIFT
        cmp bl, 0x2A
        je .modifier
        mov bh, KF_RSHIFT
        cmp bl, 0x36
        je .modifier
        mov bh, KF_CTRL
        cmp bl, 0x1D
        je .modifier
        mov bh, KF_ALT
        cmp bl, 0x38
        je .modifier
        test al, 0x80
        jnz .eoi                        ; other break codes: nothing to do
        cmp bl, 0x3A
        jne .not_caps
        xor byte [BDA_KBFLAG], KF_CAPS
        jmp .eoi
.not_caps:
        ; Ctrl-Alt-Del (keypad or editing Del): warm boot through the 8042's
        ; reset line, with the warm-boot flag set for POST.
        cmp bl, 0x53
        jne .not_cad
        mov cl, [BDA_KBFLAG]
        and cl, KF_CTRL | KF_ALT
        cmp cl, KF_CTRL | KF_ALT
        jne .not_cad
        mov word [BDA_RESETFLAG], 0x1234
        mov al, OCW2_EOI                ; leave no IRQ in service across the reset
        out PIC1_CMD, al
        mov al, KBC_PULSE_RESET
        out KBC_CMD, al
        cli
        hlt
.not_cad:
        test ah, ah
        jnz .extended
        cmp bl, KEYMAP_LEN
        jae .unmapped
        movzx si, bl
        mov cl, [BDA_KBFLAG]
        mov al, [cs:keymap_plain + si]
        test cl, KF_LSHIFT | KF_RSHIFT
        jz .have_plain
        mov al, [cs:keymap_shift + si]
.have_plain:
        ; Caps Lock inverts the case of letters only.
        test cl, KF_CAPS
        jz .no_caps
        mov ch, al
        or ch, 0x20
        cmp ch, 'a'
        jb .no_caps
        cmp ch, 'z'
        ja .no_caps
        xor al, 0x20
.no_caps:
        test cl, KF_CTRL
        jz .store
        mov ch, al
        or ch, 0x20
        cmp ch, 'a'
        jb .store
        cmp ch, 'z'
        ja .store
        and al, 0x1F                    ; Ctrl-letter -> control code
        jmp .store
.unmapped:
        ; Function keys, keypad: scan code with ASCII 0.
        xor al, al
        jmp .store
.extended:
        ; E0-prefixed keys (arrows, Home, ...): scan code with ASCII E0h;
        ; the fake shifts (E0 2A / E0 36) were handled as modifiers above.
        mov al, 0xE0
        cmp bl, 0x1C                    ; keypad Enter
        jne .store
        mov al, 0x0D
.store:
        mov ah, bl
        call kb_put
        jmp .eoi
.modifier:
        test ah, ah
        jz .mod_plain
        cmp bl, 0x2A                    ; E0 2A / E0 AA: fake shift, ignore
        je .eoi
        cmp bl, 0x36
        je .eoi
.mod_plain:
        test al, 0x80
        jnz .mod_release
        or [BDA_KBFLAG], bh
        jmp .eoi
.mod_release:
        not bh
        and [BDA_KBFLAG], bh
.eoi:
        cli
        mov al, OCW2_EOI
        out PIC1_CMD, al
        pop ds
        popa
        iret

; CF=1 if the BDA keyboard ring buffer is full. DS = BDA. Preserves registers.
kb_room:
        push bx
        mov bx, [BDA_KBTAIL]
        add bx, 2
        cmp bx, [BDA_KBEND]
        jb .nowrap
        mov bx, [BDA_KBSTART]
.nowrap:
        cmp bx, [BDA_KBHEAD]
        clc
        jne .done
        stc
.done:
        pop bx
        ret

; Put AX (scan code << 8 | ASCII) into the BDA keyboard ring buffer.
; DS = BDA. Returns CF=1 if the buffer was full. Preserves registers.
kb_put:
        push bx
        push si
        pushf
        cli
        mov bx, [BDA_KBTAIL]
        mov si, bx
        add si, 2
        cmp si, [BDA_KBEND]
        jb .nowrap
        mov si, [BDA_KBSTART]
.nowrap:
        cmp si, [BDA_KBHEAD]
        je .full
        mov [bx], ax
        mov [BDA_KBTAIL], si
        popf
        clc
        pop si
        pop bx
        ret
.full:
        popf
        stc
        pop si
        pop bx
        ret

; US layout, scan code set 1, codes 00h-39h (IBM PC/AT keyboard).
keymap_plain:
        db 0, 0x1B, "1234567890-=", 0x08, 0x09
        db "qwertyuiop[]", 0x0D, 0
        db "asdfghjkl;'`", 0, 0x5C
        db "zxcvbnm,./", 0, "*", 0, " "
KEYMAP_LEN equ $ - keymap_plain
keymap_shift:
        db 0, 0x1B, "!@#$%^&*()_+", 0x08, 0
        db "QWERTYUIOP{}", 0x0D, 0
        db 'ASDFGHJKL:"~', 0, "|"
        db "ZXCVBNM<>?", 0, "*", 0, " "
        ; assembly fails (negative TIMES) if the two maps differ in length
        times -((($ - keymap_shift) - KEYMAP_LEN) * (($ - keymap_shift) - KEYMAP_LEN)) db 0

; ---------------------------------------------------------------------------
; INT 0Ch - IRQ4, COM1 receive (enabled by the idle screen only): received
; characters are queued as keystrokes (scan code 0). When the keyboard buffer
; is full the rest stays in the UART FIFO and the receive interrupt is
; switched off; the idle loop switches it back on once keys were consumed.
; ---------------------------------------------------------------------------
int0c_com1:
        push ax
        push cx
        push dx
        push ds
        mov ax, BDA_SEG
        mov ds, ax
        mov cx, 64
.l:
        mov dx, COM1_BASE + UART_LSR
        in al, dx
        test al, LSR_DR
        jz .done
        call kb_room
        jc .full
        mov dx, COM1_BASE
        in al, dx
        xor ah, ah
        call kb_put
        loop .l
        jmp .done
.full:
        mov dx, COM1_BASE + UART_IER
        xor al, al
        out dx, al
.done:
        ; reading IIR acknowledges any other source
        mov dx, COM1_BASE + UART_FCR
        in al, dx
        cli
        mov al, OCW2_EOI
        out PIC1_CMD, al
        pop ds
        pop dx
        pop cx
        pop ax
        iret

; ---------------------------------------------------------------------------
; INT 10h - video (text mode 3, 80x25, 8 pages of 4 KiB at B800:0000)
; ---------------------------------------------------------------------------
int10_video:
        sti
        SVC_ENTER
        cmp ah, 0x0E
        je v_teletype
        cmp ah, 0x00
        je v_set_mode
        cmp ah, 0x01
        je v_cursor_shape
        cmp ah, 0x02
        je v_set_cursor
        cmp ah, 0x03
        je v_get_cursor
        cmp ah, 0x05
        je v_set_page
        cmp ah, 0x06
        je v_scroll
        cmp ah, 0x07
        je v_scroll
        cmp ah, 0x08
        je v_read_char
        cmp ah, 0x09
        je v_write_char_attr
        cmp ah, 0x0A
        je v_write_char
        cmp ah, 0x0F
        je v_get_mode
        cmp ah, 0x12
        je v_alt_select
        cmp ah, 0x13
        je v_write_string
        cmp ah, 0x0C
        je v_write_pixel
        cmp ah, 0x0D
        je v_read_pixel
        cmp ah, 0x1A
        je v_display_combination
        cmp ah, 0x4F
        je v_vbe
v_done:
        SVC_LEAVE

; AH=00h set mode. Text modes 0-3 all become 80x25 colour mode 3; bit 7 of
; AL keeps the screen contents.
v_set_mode:
        call vbe_disable
        mov bl, al
        and al, 0x7F
        cmp al, 0x13
        je v_set_mode13
        cmp al, 0x03
        ja v_done                       ; other graphics modes: not supported
        call vga_program_mode3
        mov byte [BDA_VMODE], 0x03
        mov word [BDA_VCOLS], 80
        mov word [BDA_VPAGESIZE], 0x1000
        mov word [BDA_VPAGEOFF], 0
        mov byte [BDA_VPAGE], 0
        mov byte [BDA_VROWS], 24
        mov word [BDA_CHARHEIGHT], 16
        mov word [BDA_CRTC], VGA_CRTC
        mov byte [BDA_CRTMODE], 0x29
        mov byte [BDA_CRTPAL], 0x30
        mov byte [BDA_VOPTIONS], 0x60
        mov byte [BDA_VSWITCHES], 0x09
        mov byte [BDA_VGAFLAGS], 0x11
        mov byte [BDA_DCCINDEX], 0x0B
        ; all 8 cursors home
        xor ax, ax
        mov di, BDA_CURPOS
        push ds
        pop es
        mov cx, 8
        rep stosw
        mov word [BDA_CURSHAPE], 0x0607
        test bl, 0x80
        jnz .keep
        mov ax, VIDEO_SEG
        mov es, ax
        xor di, di
        mov ax, (ATTR_TEXT << 8) | ' '
        mov cx, 0x4000                  ; all 8 pages
        rep stosw
.keep:
        call crtc_set_start
        call crtc_set_cursor
        call sc_mode_set
        jmp v_done

; Mode 13h: 320x200 in 256 colours, one byte per pixel at A000:0000; text
; output draws 8x8 characters (40x25).
v_set_mode13:
        call vga_program_mode13
        mov byte [BDA_VMODE], 0x13
        mov word [BDA_VCOLS], 40
        mov word [BDA_VPAGESIZE], 0xFA00
        mov word [BDA_VPAGEOFF], 0
        mov byte [BDA_VPAGE], 0
        mov byte [BDA_VROWS], 24
        mov word [BDA_CHARHEIGHT], 8
        mov word [BDA_CRTC], VGA_CRTC
        xor ax, ax
        mov di, BDA_CURPOS
        push ds
        pop es
        mov cx, 8
        rep stosw
        call sc_mode_set
        test bl, 0x80
        jnz v_done
        mov ax, GFX_SEG
        mov es, ax
        xor di, di
        xor eax, eax
        mov cx, 320 * 200 / 4
        rep stosd
        jmp v_done

; AH=0Ch write pixel AL at column CX, row DX (mode 13h).
v_write_pixel:
        cmp byte [BDA_VMODE], 0x13
        jne v_done
        call pixel_addr
        jc v_done
        mov [es:di], al
        jmp v_done

; AH=0Dh read pixel at column CX, row DX -> AL (mode 13h).
v_read_pixel:
        cmp byte [BDA_VMODE], 0x13
        jne v_done
        call pixel_addr
        jc v_done
        mov al, [es:di]
        mov [bp + R_AL], al
        jmp v_done

; CX = column, DX = row -> ES:DI of the mode 13h pixel; CF=1 if off screen.
pixel_addr:
        cmp cx, 320
        jae .off
        cmp dx, 200
        jae .off
        push ax
        push dx
        mov ax, 320
        mul dx
        add ax, cx
        mov di, ax
        mov ax, GFX_SEG
        mov es, ax
        pop dx
        pop ax
        clc
        ret
.off:
        stc
        ret

; Draw character AL at text row DH, column DL of the mode 13h screen in
; colour BL on black, from the 8x16 font's even scan lines (the 8x8 glyph).
; Preserves registers except ES.
gfx_char:
        pusha
        push ds
        push cs
        pop ds
        movzx si, al
        shl si, 4
        add si, vga_font_8x16
        call gfx_cell_addr
        mov ax, GFX_SEG
        mov es, ax
        mov ch, 8                       ; scan lines
.line:
        mov ah, [si]
        add si, 2
        mov cl, 8
.dot:
        xor al, al
        shl ah, 1
        jnc .bg
        mov al, bl
.bg:
        stosb
        dec cl
        jnz .dot
        add di, 320 - 8
        dec ch
        jnz .line
        pop ds
        popa
        ret

; DH = text row, DL = column -> DI = offset of the 8x8 cell in mode 13h.
gfx_cell_addr:
        push ax
        push dx
        mov al, dh
        xor ah, ah
        mov di, 320 * 8
        mul di                          ; AX = row * 2560 (fits: row < 25)
        pop dx
        push dx
        movzx di, dl
        shl di, 3
        add di, ax
        pop dx
        pop ax
        ret

; AH=01h cursor shape: CH = start line (bit 5: hidden), CL = end line, in the
; 8-line cell units of the CGA; scaled to the 16-line VGA cell.
v_cursor_shape:
        mov [BDA_CURSHAPE], cx
        mov dx, [BDA_CRTC]
        mov al, CRTC_CUR_START
        out dx, al
        inc dx
        mov al, ch
        test al, 0x20
        jnz .hidden
        and al, 0x1F
        call scale_cursor_line
        out dx, al
        dec dx
        mov al, CRTC_CUR_END
        out dx, al
        inc dx
        mov al, cl
        and al, 0x1F
        call scale_cursor_line
        out dx, al
        jmp v_done
.hidden:
        mov al, 0x20                    ; cursor off (CRTC 0Ah bit 5)
        out dx, al
        jmp v_done

; AL = CGA cursor line (0-7) -> VGA line (0-15); larger values are kept.
scale_cursor_line:
        cmp al, 7
        ja .keep
        test al, al
        jz .keep
        shl al, 1
        inc al
        cmp al, 15
        jbe .keep
        mov al, 15
.keep:
        ret

; AH=02h set cursor: BH = page, DH = row, DL = column.
v_set_cursor:
        movzx si, bh
        and si, 7
        shl si, 1
        mov [BDA_CURPOS + si], dx
        call crtc_set_cursor
        jmp v_done

; AH=03h get cursor: BH = page -> DX = position, CX = shape.
v_get_cursor:
        movzx si, bh
        and si, 7
        shl si, 1
        mov ax, [BDA_CURPOS + si]
        mov [bp + R_DX], ax
        mov ax, [BDA_CURSHAPE]
        mov [bp + R_CX], ax
        jmp v_done

; AH=05h select active page (0-7).
v_set_page:
        and al, 7
        mov [BDA_VPAGE], al
        movzx ax, al
        shl ax, 12
        mov [BDA_VPAGEOFF], ax
        call crtc_set_start
        call crtc_set_cursor
        jmp v_done

; AH=06h/07h scroll window up/down on the active page.
v_scroll:
        mov bl, [BDA_VPAGE]
        call scroll_window
        jmp v_done

; AH=08h read character and attribute at the cursor of page BH.
v_read_char:
        cmp byte [BDA_VMODE], 0x13
        jne .text
        mov word [bp + R_AX], 0         ; no character recognition in graphics
        jmp v_done
.text:
        call cursor_addr_bh
        mov ax, VIDEO_SEG
        mov es, ax
        mov ax, [es:di]
        mov [bp + R_AX], ax
        jmp v_done

; AH=09h write char AL with attribute BL, CX times, at the cursor of page BH.
v_write_char_attr:
        cmp byte [BDA_VMODE], 0x13
        je v_gfx_write_chars
        call cursor_addr_bh
        mov dx, VIDEO_SEG
        mov es, dx
        mov ah, bl
        call clamp_count
        push cx
        rep stosw
        pop cx
        call sc_cells
        jmp v_done

; AH=0Ah write char AL, CX times, keeping the attributes.
v_write_char:
        cmp byte [BDA_VMODE], 0x13
        je v_gfx_write_chars
        call cursor_addr_bh
        mov dx, VIDEO_SEG
        mov es, dx
        call clamp_count
        jcxz .done
        push cx
.l:
        mov [es:di], al
        add di, 2
        loop .l
        pop cx
        call sc_cells
.done:
        jmp v_done

; AH=09h/0Ah in mode 13h: draw AL in colour BL, CX times from the cursor.
v_gfx_write_chars:
        call sc_cells
        movzx si, bh
        and si, 7
        shl si, 1
        mov dx, [BDA_CURPOS + si]
        jcxz .done
.l:
        cmp dh, 24
        ja .done
        call gfx_char
        inc dl
        cmp dl, 40
        jb .next
        xor dl, dl
        inc dh
.next:
        loop .l
.done:
        jmp v_done

; CX = count, DI = offset: limit CX so the writes stay inside the page.
clamp_count:
        push ax
        push dx
        mov ax, di
        and ax, 0x0FFF
        shr ax, 1                       ; cell index in the page
        mov dx, 80 * 25
        sub dx, ax
        jbe .zero
        cmp cx, dx
        jbe .ok
        mov cx, dx
        jmp .ok
.zero:
        xor cx, cx
.ok:
        pop dx
        pop ax
        ret

; AH=0Eh teletype output of AL on the active page.
v_teletype:
        mov bh, [BDA_VPAGE]
        xor ah, ah                      ; keep the attribute already on screen
        call tty_core
        jmp v_done

; AH=0Fh get video mode -> AH = columns, AL = mode, BH = active page.
v_get_mode:
        mov al, [BDA_VMODE]
        mov ah, [BDA_VCOLS]
        mov [bp + R_AX], ax
        mov al, [BDA_VPAGE]
        mov [bp + R_BH], al
        jmp v_done

; AH=12h alternate select: BL=10h get EGA information (colour, 256 KiB).
v_alt_select:
        cmp bl, 0x10
        jne v_done
        mov word [bp + R_BX], 0x0003    ; BH = 0 colour, BL = 3 (256 KiB)
        mov word [bp + R_CX], 0x0009    ; switch settings / feature bits
        jmp v_done

; AH=1Ah display combination code: AL=00h read -> AL=1Ah, BX = 0008h (VGA colour).
v_display_combination:
        test al, al
        jnz v_done
        mov byte [bp + R_AL], 0x1A
        mov word [bp + R_BX], 0x0008
        jmp v_done

; AH=13h write string ES:BP (CX characters) at DH,DL on page BH; AL bit 0
; moves the cursor, bit 1 means the string alternates character, attribute.
v_write_string:
        mov es, [bp + R_ES]
        mov si, [bp + R_BP]
        movzx di, bh
        and di, 7
        shl di, 1
        push word [BDA_CURPOS + di]     ; saved cursor
        mov [BDA_CURPOS + di], dx
        mov dl, al                      ; DL = write mode
        jcxz .end
.l:
        mov al, [es:si]
        inc si
        test dl, 0b10
        jz .attr_bl
        mov bl, [es:si]
        inc si
.attr_bl:
        mov ah, 1                       ; use attribute BL
        push es
        call tty_core
        pop es
        loop .l
.end:
        pop ax
        test dl, 0b01
        jnz v_done
        mov [BDA_CURPOS + di], ax       ; restore the cursor
        call crtc_set_cursor
        jmp v_done

; Teletype one character. AL = char, AH = 0 keep attribute / 1 use BL,
; BH = page, DS = BDA. Handles BEL, BS, LF, CR; wraps and scrolls.
; Preserves all registers except ES.
tty_core:
        push ax
        push bx
        push cx
        push dx
        push si
        push di
        mov cx, ax                      ; CL = char, CH = attribute flag
        movzx si, bh
        and si, 7
        shl si, 1
        mov dx, [BDA_CURPOS + si]
        cmp cl, 0x0D
        je .cr
        cmp cl, 0x0A
        je .lf
        cmp cl, 0x08
        je .bs
        cmp cl, 0x07
        je .bel
        cmp byte [BDA_VMODE], 0x13
        jne .text_cell
        mov al, cl                      ; graphics: BL is the foreground colour
        call gfx_char
        push bx
        and bl, 0x0F                    ; (the mirror's colour: on black)
        jmp .mirror
.text_cell:
        call cell_addr
        mov ax, VIDEO_SEG
        mov es, ax
        mov [es:di], cl
        test ch, ch
        jz .keep_attr
        mov [es:di + 1], bl
.keep_attr:
        push bx
        mov bl, [es:di + 1]
.mirror:
        cmp bh, [BDA_VPAGE]
        jne .mirrored
        mov al, cl
        call sc_put_checked
.mirrored:
        pop bx
        inc dl
        cmp dl, [BDA_VCOLS]
        jb .store
        xor dl, dl
        jmp .lf
.bel:
        mov al, 0x07                    ; no speaker yet: only the mirror rings
        call .mirror_control
        jmp .store
.cr:
        mov al, 0x0D
        call .mirror_control
        xor dl, dl
        jmp .store
.bs:
        test dl, dl
        jz .store
        dec dl
        jmp .store
.lf:
        mov al, 0x0A
        call .mirror_control
        inc dh
        cmp dh, [BDA_VROWS]
        jbe .store
        mov dh, [BDA_VROWS]
        ; scroll the whole page up one line
        push dx
        mov bl, bh                      ; page
        mov bh, ATTR_TEXT
        cmp byte [BDA_VMODE], 0x13
        jne .blank_ok
        xor bh, bh                      ; graphics: blank lines in colour 0
.blank_ok:
        mov ax, 0x0601
        xor cx, cx
        mov dh, [BDA_VROWS]
        mov dl, [BDA_VCOLS]
        dec dl
        call scroll_window
        pop dx
.store:
        mov [BDA_CURPOS + si], dx
        call crtc_set_cursor
        pop di
        pop si
        pop dx
        pop cx
        pop bx
        pop ax
        ret
; control character AL at cursor DX of page BH: to the mirror if BH is shown
.mirror_control:
        cmp bh, [BDA_VPAGE]
        jne .mc_ret
        call sc_control
.mc_ret:
        ret

; DI = offset of the cursor of page BH.
cursor_addr_bh:
        push dx
        push si
        movzx si, bh
        and si, 7
        shl si, 1
        mov dx, [BDA_CURPOS + si]
        call cell_addr
        pop si
        pop dx
        ret

; BH = page, DH = row, DL = column -> DI = offset in B800. Preserves others.
cell_addr:
        push ax
        mov al, dh
        mov ah, 80
        mul ah
        add al, dl
        adc ah, 0
        shl ax, 1
        mov di, ax
        movzx ax, bh
        and al, 7
        shl ax, 12
        add di, ax
        pop ax
        ret

; Scroll a window. AH = 06h up / 07h down, AL = lines (0 = clear),
; BH = fill attribute, BL = page, CH,CL = top row, left column,
; DH,DL = bottom row, right column. Preserves all registers.
scroll_window:
        pusha
        push ds
        push es
        ; clamp to the screen (DS = BDA)
        push ax
        mov ah, [BDA_VMODE]
        mov al, [BDA_VCOLS]
        dec al
        cmp dh, 24
        jbe .r1
        mov dh, 24
.r1:
        cmp dl, al
        jbe .r2
        mov dl, al
.r2:
        cmp ah, 0x13
        pop ax
        je .gfx_mode
        mov si, 0                       ; text: SI = 0
        jmp .mode_known
.gfx_mode:
        mov si, 1                       ; mode 13h: SI = 1
.mode_known:
        cmp ch, dh
        ja .out
        cmp cl, dl
        ja .out
        push bp
        mov bp, sp
        sub sp, 10
        ; locals: [bp-1] lines, [bp-2] dir, [bp-3] attr, [bp-4] page,
        ;         [bp-5] top, [bp-6] bottom, [bp-7] left, [bp-8] width,
        ;         [bp-10] (word) 1 in mode 13h
        mov [bp - 10], si
        mov [bp - 2], ah
        mov [bp - 3], bh
        mov [bp - 4], bl
        mov [bp - 5], ch
        mov [bp - 6], dh
        mov [bp - 7], cl
        mov bl, dl
        sub bl, cl
        inc bl
        mov [bp - 8], bl
        mov bl, dh
        sub bl, ch
        inc bl                          ; BL = height
        test al, al
        jz .all
        cmp al, bl
        jbe .n_ok
.all:
        mov al, bl
.n_ok:
        mov [bp - 1], al
        mov ax, VIDEO_SEG
        cmp byte [bp - 10], 0
        je .seg
        mov ax, GFX_SEG
.seg:
        mov ds, ax
        mov es, ax
        cmp byte [bp - 2], 0x07
        je .down

        ; up: rows top..bottom, source row = row + lines
        mov dh, [bp - 5]
.up_row:
        mov al, dh
        add al, [bp - 1]
        cmp al, [bp - 6]
        ja .up_fill
        call .copy_row                  ; from row AL to row DH
        jmp .up_next
.up_fill:
        call .fill_row
.up_next:
        inc dh
        cmp dh, [bp - 6]
        jbe .up_row
        jmp .done

.down:
        ; down: rows bottom..top, source row = row - lines
        mov dh, [bp - 6]
.down_row:
        mov al, dh
        sub al, [bp - 1]
        jb .down_fill
        cmp al, [bp - 5]
        jb .down_fill
        call .copy_row
        jmp .down_next
.down_fill:
        call .fill_row
.down_next:
        cmp dh, [bp - 5]
        je .done
        dec dh
        jmp .down_row

.done:
        mov sp, bp
        pop bp
.out:
        pop es
        pop ds
        popa
        ret

; copy row AL -> row DH (window columns); uses BH, CX, SI, DI
.copy_row:
        cmp byte [bp - 10], 0
        jne .gfx_copy_row
        push dx
        mov bh, [bp - 4]
        mov dl, [bp - 7]
        call cell_addr                  ; DI = destination
        mov cx, di
        mov dh, al
        call cell_addr
        mov si, di                      ; SI = source
        mov di, cx
        movzx cx, byte [bp - 8]
        rep movsw
        pop dx
        ret

; fill row DH (window columns) with blanks in the fill attribute
.fill_row:
        cmp byte [bp - 10], 0
        jne .gfx_fill_row
        push ax
        push dx
        mov bh, [bp - 4]
        mov dl, [bp - 7]
        call cell_addr
        movzx cx, byte [bp - 8]
        mov ah, [bp - 3]
        mov al, ' '
        rep stosw
        pop dx
        pop ax
        ret

; mode 13h: copy the 8 scan lines of character row AL to row DH
.gfx_copy_row:
        push dx
        mov dl, [bp - 7]
        call gfx_cell_addr
        mov bx, di                      ; destination
        mov dh, al
        call gfx_cell_addr
        mov si, di                      ; source
        mov di, bx
        mov dl, 8
.gcr:
        movzx cx, byte [bp - 8]
        shl cx, 3
        push si
        push di
        rep movsb
        pop di
        pop si
        add si, 320
        add di, 320
        dec dl
        jnz .gcr
        pop dx
        ret

; mode 13h: fill the 8 scan lines of character row DH with the fill colour
.gfx_fill_row:
        push ax
        push dx
        mov dl, [bp - 7]
        call gfx_cell_addr
        mov al, [bp - 3]
        mov dl, 8
.gfr:
        movzx cx, byte [bp - 8]
        shl cx, 3
        push di
        rep stosb
        pop di
        add di, 320
        dec dl
        jnz .gfr
        pop dx
        pop ax
        ret

; Hardware cursor (CRTC 0Eh/0Fh) from the BDA cursor of the active page.
; DS = BDA. Preserves all registers.
crtc_set_cursor:
        pusha
        movzx si, byte [BDA_VPAGE]
        and si, 7
        mov bx, si
        shl si, 1
        mov dx, [BDA_CURPOS + si]
        mov al, dh
        mov ah, 80
        mul ah
        add al, dl
        adc ah, 0
        shl bx, 11                      ; page * 2048 characters
        add bx, ax
        mov dx, [BDA_CRTC]
        mov al, CRTC_CUR_HI
        mov ah, bh
        call crtc_write
        mov al, CRTC_CUR_LO
        mov ah, bl
        call crtc_write
        popa
        ret

; CRTC start address (0Ch/0Dh) from the active page.
crtc_set_start:
        pusha
        mov bx, [BDA_VPAGEOFF]
        shr bx, 1                       ; bytes -> characters
        mov dx, [BDA_CRTC]
        mov al, CRTC_START_HI
        mov ah, bh
        call crtc_write
        mov al, CRTC_START_LO
        mov ah, bl
        call crtc_write
        popa
        ret

; DX = CRTC index port, AL = index, AH = value.
crtc_write:
        out dx, al
        inc dx
        xchg al, ah
        out dx, al
        xchg al, ah
        dec dx
        ret

; Program the VGA for mode 03h (80x25 16-colour text, 720x400): registers
; from the IBM VGA Technical Reference mode table, EGA-compatible DAC colours.
vga_program_mode3:
        pusha
        push ds
        push cs
        pop ds
        mov si, vga_mode3_misc
        call vga_program_regs
        call vga_dac_ega
        call vga_load_font
        pop ds
        popa
        ret

; Program the VGA for mode 13h (320x200, 256 colours, chain 4) with a
; 256-colour DAC: the 16 EGA colours, a 16-step grey ramp, a 6x6x6 colour cube.
vga_program_mode13:
        pusha
        push ds
        push cs
        pop ds
        mov si, vga_mode13_misc
        call vga_program_regs
        call vga_dac_256
        pop ds
        popa
        ret

; Program misc, sequencer, CRTC, graphics and attribute controller registers
; from the 61-byte table at DS:SI (misc, seq 0-4, CRTC 0-18h, GC 0-8,
; attribute 0-14h).
vga_program_regs:
        mov bx, si
        mov dx, VGA_MISC_W
        mov al, [bx]
        out dx, al
        ; sequencer: synchronous reset while the clocking changes
        mov dx, VGA_SEQ
        mov ax, 0x0100
        call crtc_write
        lea si, [bx + 2]                ; seq 1-4
        mov cx, 4
        mov al, 1
.seq:
        mov ah, [si]
        call crtc_write
        inc si
        inc al
        loop .seq
        mov ax, 0x0300                  ; end reset
        call crtc_write
        ; CRTC: clear the write protect (11h bit 7) first
        mov dx, VGA_CRTC
        mov al, CRTC_VRETRACE_END
        mov ah, [bx + 6 + CRTC_VRETRACE_END]
        and ah, 0x7F
        call crtc_write
        lea si, [bx + 6]                ; CRTC 0-18h
        mov cx, 25
        xor al, al
.crtc:
        mov ah, [si]
        call crtc_write
        inc si
        inc al
        loop .crtc
        ; graphics controller
        mov dx, VGA_GC
        lea si, [bx + 31]               ; GC 0-8
        mov cx, 9
        xor al, al
.gc:
        mov ah, [si]
        call crtc_write
        inc si
        inc al
        loop .gc
        ; attribute controller: reset the flip-flop, then index/data pairs
        mov dx, VGA_STAT1
        in al, dx
        mov dx, VGA_AC
        lea si, [bx + 40]               ; attribute 0-14h
        mov cx, 21
        xor ah, ah
.attr:
        mov al, ah
        out dx, al
        mov al, [si]
        out dx, al
        inc si
        inc ah
        loop .attr
        mov al, 0x20                    ; palette address source: enable video
        out dx, al
        ret

; DAC entries 0-63: the 64 EGA colours. Bits 0-2 of the index are the 2/3-intensity
        ; blue, green, red; bits 3-5 the 1/3-intensity ones.
vga_dac_ega:
        mov dx, VGA_DAC_MASK
        mov al, 0xFF
        out dx, al
        mov dx, VGA_DAC_WIDX
        xor al, al
        out dx, al
        inc dx                          ; 3C9
        xor bx, bx
        xor cx, cx
.dac:
        mov cl, 2                       ; red: bit 2 and bit 5
        call .component
        mov cl, 1                       ; green: bit 1 and bit 4
        call .component
        mov cl, 0                       ; blue: bit 0 and bit 3
        call .component
        inc bl
        cmp bl, 64
        jb .dac
        ret
; BL = EGA colour index, CL = bit of the 2/3 component -> out (bit+3 = 1/3)
.component:
        xor al, al
        bt bx, cx
        jnc .no_hi
        add al, 0x2A
.no_hi:
        add cl, 3
        bt bx, cx
        jnc .no_lo
        add al, 0x15
.no_lo:
        out dx, al
        ret

; DAC for mode 13h: 0-15 the EGA colours the mode 3 attribute palette picks,
; 16-31 a grey ramp, 32-247 a 6x6x6 colour cube, 248-255 black. The tables
; are read through CS: the VBE 8-bit modes call this with DS = BDA.
vga_dac_256:
        mov dx, VGA_DAC_MASK
        mov al, 0xFF
        out dx, al
        mov dx, VGA_DAC_WIDX
        xor al, al
        out dx, al
        inc dx                          ; 3C9
        xor si, si
        xor cx, cx
.ega:
        movzx bx, byte [cs:vga_mode3_attr + si]
        mov cl, 2
        call vga_dac_ega.component
        mov cl, 1
        call vga_dac_ega.component
        mov cl, 0
        call vga_dac_ega.component
        inc si
        cmp si, 16
        jb .ega
        xor bl, bl
.grey:
        mov al, bl
        shl al, 2
        add al, 3                       ; 3, 7, ... 63
        out dx, al
        out dx, al
        out dx, al
        inc bl
        cmp bl, 16
        jb .grey
        xor bx, bx                      ; cube index 0-215
.cube:
        mov ax, bx
        mov cl, 36
        div cl                          ; AL = red step, AH = rest
        call .level
        mov al, ah
        xor ah, ah
        mov cl, 6
        div cl                          ; AL = green step, AH = blue step
        call .level
        mov al, ah
        call .level
        inc bx
        cmp bx, 216
        jb .cube
        mov cx, 8 * 3
        xor al, al
.black:
        out dx, al
        loop .black
        ret
; AL = step 0-5 -> out 0, 12, 25, 38, 50, 63 (keeps AH)
.level:
        push ax
        push bx
        movzx bx, al
        mov al, [cs:cube_levels + bx]
        out dx, al
        pop bx
        pop ax
        ret
cube_levels:
        db 0, 12, 25, 38, 50, 63

; Load the 8x16 font into plane 2, character map 0 (32 bytes per glyph, 16
; used), as the character generator reads it (IBM VGA Technical Reference:
; sequencer map mask / memory mode and graphics controller read map / mode /
; miscellaneous select plane 2 linearly at A000:0000), then restore the
; odd/even text addressing of mode 03h. DS = CS.
vga_load_font:
        pusha
        push es
        mov dx, VGA_SEQ
        mov ax, 0x0402                  ; map mask: plane 2 only
        call crtc_write
        mov ax, 0x0704                  ; memory mode: sequential, >64K, no odd/even
        call crtc_write
        mov dx, VGA_GC
        mov ax, 0x0204                  ; read map select: plane 2
        call crtc_write
        mov ax, 0x0005                  ; mode: write mode 0, no odd/even
        call crtc_write
        mov ax, 0x0406                  ; misc: A0000-AFFFF, alphanumeric
        call crtc_write
        mov ax, 0xA000
        mov es, ax
        xor di, di
        mov si, vga_font_8x16
        mov bx, 256
.glyph:
        mov cx, 8
        rep movsw                       ; 16 scan lines
        xor ax, ax
        mov cx, 8
        rep stosw                       ; unused lines 16-31
        dec bx
        jnz .glyph
        mov dx, VGA_SEQ
        mov ax, 0x0302                  ; map mask: planes 0 and 1
        call crtc_write
        mov ax, 0x0204                  ; memory mode: odd/even, >64K
        call crtc_write
        mov dx, VGA_GC
        mov ax, 0x0004                  ; read map select: plane 0
        call crtc_write
        mov ax, 0x1005                  ; mode: odd/even
        call crtc_write
        mov ax, 0x0E06                  ; misc: B8000-BFFFF, odd/even chaining
        call crtc_write
        pop es
        popa
        ret

%include "vbe.inc"
%include "font8x16.inc"

vga_mode3_misc:
        db 0x67
vga_mode3_seq:
        db 0x03, 0x00, 0x03, 0x00, 0x02
vga_mode3_crtc:
        db 0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F
        db 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00, 0x00, 0x00
        db 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3
        db 0xFF
vga_mode3_gc:
        db 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF
vga_mode3_attr:
        db 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07
        db 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F
        db 0x0C, 0x00, 0x0F, 0x08, 0x00

; Mode 13h (IBM VGA Technical Reference mode table), same layout.
vga_mode13_misc:
        db 0x63
        db 0x03, 0x01, 0x0F, 0x00, 0x0E
        db 0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F
        db 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
        db 0x9C, 0x8E, 0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3
        db 0xFF
        db 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF
        db 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
        db 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
        db 0x41, 0x00, 0x0F, 0x00, 0x00

; ---------------------------------------------------------------------------
; INT 11h - equipment list, INT 12h - conventional memory size
; ---------------------------------------------------------------------------
int11_equipment:
        push ds
        mov ax, BDA_SEG
        mov ds, ax
        mov ax, [BDA_EQUIP]
        pop ds
        iret

int12_memory:
        push ds
        mov ax, BDA_SEG
        mov ds, ax
        mov ax, [BDA_MEMKIB]
        pop ds
        iret

%include "disk.inc"
%include "cdrom.inc"
%include "sercon.inc"
%include "pci.inc"

; ---------------------------------------------------------------------------
; INT 14h - serial port services (DX = port number; COM1 only)
; ---------------------------------------------------------------------------
int14_serial:
        sti
        SVC_ENTER
        test dx, dx
        jnz .no_port
        mov bx, [BDA_COM1]
        test bx, bx
        jz .no_port
        cmp ah, 0x00
        je .init
        cmp ah, 0x01
        je .send
        cmp ah, 0x02
        je .receive
        cmp ah, 0x03
        je .status
        jmp .leave
.no_port:
        mov byte [bp + R_AH], 0x80      ; time-out
        jmp .leave

; AL = bits 7-5 baud (110..9600), 4-3 parity, 2 stop bits, 1-0 word length
.init:
        mov cl, al
        shr al, 5
        movzx si, al
        shl si, 1
        mov dx, bx
        add dx, UART_LCR
        mov al, LCR_DLAB
        out dx, al
        mov ax, [cs:baud_divisors + si]
        mov dx, bx
        out dx, al                      ; DLL
        inc dx
        mov al, ah
        out dx, al                      ; DLM
        mov al, cl
        and al, 0b0001_1111
        mov dx, bx
        add dx, UART_LCR
        out dx, al
        mov dx, bx
        add dx, UART_IER
        xor al, al
        out dx, al
        jmp .status

.send:
        mov cl, al
        call .wait_thre
        jc .timeout
        mov dx, bx
        mov al, cl
        out dx, al
        mov dx, bx
        add dx, UART_LSR
        in al, dx
        mov [bp + R_AH], al
        jmp .leave

.receive:
        call .wait_dr
        jc .timeout
        mov dx, bx
        in al, dx
        mov [bp + R_AL], al
        mov dx, bx
        add dx, UART_LSR
        in al, dx
        and al, 0b0001_1110             ; error bits only
        mov [bp + R_AH], al
        jmp .leave

.timeout:
        mov dx, bx
        add dx, UART_LSR
        in al, dx
        or al, 0x80
        mov [bp + R_AH], al
        jmp .leave

.status:
        mov dx, bx
        add dx, UART_LSR
        in al, dx
        mov ah, al
        mov dx, bx
        add dx, UART_MSR
        in al, dx
        mov [bp + R_AX], ax
.leave:
        SVC_LEAVE

; Wait for LSR bit AL with a timeout of [BDA_COMTIMEOUT] seconds (ticks) or
; a bounded spin if interrupts do not advance the clock. CF=1 on timeout.
.wait_thre:
        mov ah, LSR_THRE
        jmp .wait_bit
.wait_dr:
        mov ah, LSR_DR
.wait_bit:
        push cx
        push edi
        movzx cx, byte [BDA_COMTIMEOUT]
        imul cx, cx, 18
        inc cx
        mov edi, [BDA_TICKS]
        push ebx
        mov ebx, 0x00100000             ; spin bound
.wb:
        mov dx, [BDA_COM1]
        add dx, UART_LSR
        in al, dx
        test al, ah
        jnz .wb_ok
        dec ebx
        jz .wb_fail
        mov edx, [BDA_TICKS]
        sub edx, edi
        cmp dx, cx
        jb .wb
.wb_fail:
        pop ebx
        pop edi
        pop cx
        stc
        ret
.wb_ok:
        pop ebx
        pop edi
        pop cx
        clc
        ret

; divisors of the 1.8432 MHz clock for 110, 150, 300, 600, 1200, 2400, 4800, 9600 baud
baud_divisors:
        dw 1047, 768, 384, 192, 96, 48, 24, 12

; ---------------------------------------------------------------------------
; INT 15h - system services
; ---------------------------------------------------------------------------
int15_system:
        sti
        SVC_ENTER
        cmp ax, 0xE820
        je s_e820
        cmp ax, 0xE801
        je s_e801
        cmp ah, 0x88
        je s_ext_mem
        cmp ah, 0x24
        je s_a20
        cmp ah, 0x86
        je s_wait
        cmp ah, 0xC0
        je s_config
        cmp ah, 0x90
        je s_ok                         ; device busy: nothing to wait for
        cmp ah, 0x91
        je s_ok                         ; interrupt complete
s_unsupported:
        mov byte [bp + R_AH], 0x86
        SET_CF
        SVC_LEAVE
s_ok:
        mov byte [bp + R_AH], 0
        CLEAR_CF
        SVC_LEAVE

; AH=88h: extended memory KiB (CMOS 0x30/0x31, at most 0xFFFF).
s_ext_mem:
        call cmos_ext_kib
        mov [bp + R_AX], ax
        CLEAR_CF
        SVC_LEAVE

; AX=E801h: AX=CX = KiB between 1 and 16 MiB (max 3C00h), BX=DX = 64 KiB
; blocks above 16 MiB.
s_e801:
        call ram_top
        cmp eax, 0x1000000
        jbe .low
        mov ebx, eax
        sub ebx, 0x1000000
        shr ebx, 16
        mov ax, 0x3C00
        jmp .set
.low:
        sub eax, 0x100000
        shr eax, 10
        xor bx, bx
.set:
        mov [bp + R_AX], ax
        mov [bp + R_CX], ax
        mov [bp + R_BX], bx
        mov [bp + R_DX], bx
        CLEAR_CF
        SVC_LEAVE

; AX=E820h: memory map. EBX = continuation (entry index), ES:DI = buffer,
; ECX = buffer size (>= 20), EDX = 'SMAP'.
s_e820:
        cmp edx, 0x534D4150
        jne s_unsupported
        cmp ecx, 20
        jb s_unsupported
        cmp ebx, 3
        ja s_unsupported
        call ram_top
        mov edx, eax                    ; EDX = RAM top
        cmp bx, 3
        je .high
        ; entries 0-2 from the table (copied to the caller's ES:DI)
        push ds
        push cs
        pop ds
        imul si, bx, 20
        add si, e820_fixed
        mov cx, 20
        rep movsb
        pop ds
        movzx eax, bx
        inc eax                         ; next entry
        cmp eax, 3
        jne .more
        cmp edx, 0x100000               ; entry 3 exists only with RAM above 1 MiB
        ja .more
        xor eax, eax
        jmp .more
.high:
        cmp edx, 0x100000
        jbe s_unsupported
        mov dword [es:di], 0x100000
        mov dword [es:di + 4], 0
        sub edx, 0x100000
        mov [es:di + 8], edx
        mov dword [es:di + 12], 0
        mov dword [es:di + 16], 1       ; usable
        xor eax, eax                    ; last entry
.more:
        mov [bp + R_BX], eax
        mov dword [bp + R_AX], 0x534D4150
        mov dword [bp + R_CX], 20
        CLEAR_CF
        SVC_LEAVE

e820_fixed:
        dq 0x00000, 0x9FC00
        dd 1                            ; conventional memory
        dq 0x9FC00, 0x00400
        dd 2                            ; EBDA
        dq 0xF0000, 0x10000
        dd 2                            ; system BIOS

; AH=24h: A20 gate through system control port A (0x92 bit 1).
s_a20:
        cmp al, 0x00
        je .disable
        cmp al, 0x01
        je .enable
        cmp al, 0x02
        je .status
        cmp al, 0x03
        je .support
        jmp s_unsupported
.disable:
        in al, PORT_A
        and al, ~(PORTA_A20 | 1) & 0xFF
        out PORT_A, al
        jmp s_ok
.enable:
        in al, PORT_A
        or al, PORTA_A20
        and al, 0xFE
        out PORT_A, al
        jmp s_ok
.status:
        in al, PORT_A
        shr al, 1
        and al, 1
        mov [bp + R_AL], al
        jmp s_ok
.support:
        mov word [bp + R_BX], 0b10      ; bit 1: system control port A
        jmp s_ok

; AH=86h: wait CX:DX microseconds (whole 54.9 ms ticks, rounded up).
s_wait:
        mov ax, cx
        shl eax, 16
        mov ax, dx
        xor edx, edx
        mov ecx, 54925
        div ecx
        inc eax
        mov ecx, eax                    ; ticks to wait
        mov ebx, [BDA_TICKS]
.w:
        sti
        hlt
        mov eax, [BDA_TICKS]
        sub eax, ebx
        jae .cmp
        add eax, 0x1800B0               ; midnight passed
.cmp:
        cmp eax, ecx
        jb .w
        jmp s_ok

; AH=C0h: ES:BX -> system configuration table.
s_config:
        mov word [bp + R_ES], 0xF000
        mov word [bp + R_BX], sys_config_table
        jmp s_ok

sys_config_table:
        dw 8                            ; bytes that follow
        db 0xFC                         ; model: PC/AT
        db 0x00                         ; submodel
        db 0x01                         ; BIOS revision
        db 0b0111_0000                  ; feature 1: 2nd PIC, RTC, INT 15h/4Fh hook
        db 0x00, 0x00, 0x00, 0x00       ; features 2-5

; ---------------------------------------------------------------------------
; INT 16h - keyboard services
; ---------------------------------------------------------------------------
int16_keyboard:
        sti
        SVC_ENTER
        cmp ah, 0x00
        je .read
        cmp ah, 0x10
        je .read
        cmp ah, 0x01
        je .check
        cmp ah, 0x11
        je .check
        cmp ah, 0x02
        je .shift
        cmp ah, 0x12
        je .shift_ext
        cmp ah, 0x05
        je .store
        SVC_LEAVE

; wait for a key (HLT with interrupts enabled while the buffer is empty)
.read:
        cli
        mov bx, [BDA_KBHEAD]
        cmp bx, [BDA_KBTAIL]
        jne .have
        sti
        hlt
        jmp .read
.have:
        mov ax, [bx]
        add bx, 2
        cmp bx, [BDA_KBEND]
        jb .nowrap
        mov bx, [BDA_KBSTART]
.nowrap:
        mov [BDA_KBHEAD], bx
        sti
        call .classic
        mov [bp + R_AX], ax
        SVC_LEAVE

; report the next key without removing it: ZF=1 if none
.check:
        cli
        mov bx, [BDA_KBHEAD]
        cmp bx, [BDA_KBTAIL]
        sti
        je .empty
        mov ax, [bx]
        call .classic
        mov [bp + R_AX], ax
        and byte [bp + R_FLAGS], ~FLAG_ZF & 0xFF
        SVC_LEAVE
.empty:
        or byte [bp + R_FLAGS], FLAG_ZF
        SVC_LEAVE

.shift:
        mov al, [BDA_KBFLAG]
        mov [bp + R_AL], al
        SVC_LEAVE
.shift_ext:
        mov al, [BDA_KBFLAG]
        mov ah, [BDA_KBFLAG1]
        mov [bp + R_AX], ax
        SVC_LEAVE

; AH=05h: store CX in the buffer; AL = 0 ok, 1 full
.store:
        mov ax, cx
        call kb_put
        mov al, 0
        adc al, 0
        mov [bp + R_AL], al
        SVC_LEAVE

; The classic functions (00h/01h) report extended keys with ASCII 00h.
; AH of the caller's request is in the frame.
.classic:
        test byte [bp + R_AH], 0x10
        jnz .c_done
        cmp al, 0xE0
        jne .c_done
        test ah, ah
        jz .c_done                      ; E0h typed as a character
        xor al, al
.c_done:
        ret

; ---------------------------------------------------------------------------
; INT 17h - printer: no parallel ports (AH=time-out)
; ---------------------------------------------------------------------------
int17_printer:
        mov ah, 0b0000_0001             ; time-out
        iret

; ---------------------------------------------------------------------------
; INT 1Ah - time of day
; ---------------------------------------------------------------------------
int1a_time:
        sti
        SVC_ENTER
        cmp ah, 0xB1
        je pci_bios                     ; the PCI BIOS (pci.inc)
        cmp ah, 0x00
        je .get_ticks
        cmp ah, 0x01
        je .set_ticks
        cmp ah, 0x02
        je .get_time
        cmp ah, 0x03
        je .set_time
        cmp ah, 0x04
        je .get_date
        cmp ah, 0x05
        je .set_date
        SET_CF
        SVC_LEAVE

.get_ticks:
        cli
        mov ax, [BDA_TICKS]
        mov [bp + R_DX], ax
        mov ax, [BDA_TICKS + 2]
        mov [bp + R_CX], ax
        mov al, [BDA_MIDNIGHT]
        mov [bp + R_AL], al
        mov byte [BDA_MIDNIGHT], 0
        sti
        CLEAR_CF
        SVC_LEAVE

.set_ticks:
        cli
        mov [BDA_TICKS], dx
        mov [BDA_TICKS + 2], cx
        mov byte [BDA_MIDNIGHT], 0
        sti
        CLEAR_CF
        SVC_LEAVE

; CH = hours, CL = minutes, DH = seconds (BCD), DL = daylight saving
.get_time:
        call rtc_wait_uip
        mov al, RTC_HOUR
        call cmos_read
        mov [bp + R_CH], al
        mov al, RTC_MIN
        call cmos_read
        mov [bp + R_CL], al
        mov al, RTC_SEC
        call cmos_read
        mov [bp + R_DH], al
        mov al, RTC_REG_B
        call cmos_read
        and al, RTC_B_DST
        mov [bp + R_DL], al
        CLEAR_CF
        SVC_LEAVE

.set_time:
        call rtc_set_begin
        mov ah, ch
        mov al, RTC_HOUR
        call cmos_write
        mov ah, cl
        mov al, RTC_MIN
        call cmos_write
        mov ah, dh
        mov al, RTC_SEC
        call cmos_write
        call rtc_set_end
        and dl, RTC_B_DST
        mov al, RTC_REG_B
        call cmos_read
        and al, ~RTC_B_DST & 0xFF
        or al, dl
        mov ah, al
        mov al, RTC_REG_B
        call cmos_write
        CLEAR_CF
        SVC_LEAVE

; CH = century, CL = year, DH = month, DL = day (BCD)
.get_date:
        call rtc_wait_uip
        mov al, CMOS_CENTURY
        call cmos_read
        mov [bp + R_CH], al
        mov al, RTC_YEAR
        call cmos_read
        mov [bp + R_CL], al
        mov al, RTC_MONTH
        call cmos_read
        mov [bp + R_DH], al
        mov al, RTC_DAY
        call cmos_read
        mov [bp + R_DL], al
        CLEAR_CF
        SVC_LEAVE

.set_date:
        call rtc_set_begin
        mov ah, ch
        mov al, CMOS_CENTURY
        call cmos_write
        mov ah, cl
        mov al, RTC_YEAR
        call cmos_write
        mov ah, dh
        mov al, RTC_MONTH
        call cmos_write
        mov ah, dl
        mov al, RTC_DAY
        call cmos_write
        call rtc_set_end
        CLEAR_CF
        SVC_LEAVE

; Register B SET bit: stop updates while the time is written.
rtc_set_begin:
        push ax
        mov al, RTC_REG_B
        call cmos_read
        or al, RTC_B_SET
        mov ah, al
        mov al, RTC_REG_B
        call cmos_write
        pop ax
        ret
rtc_set_end:
        push ax
        mov al, RTC_REG_B
        call cmos_read
        and al, ~RTC_B_SET & 0xFF
        mov ah, al
        mov al, RTC_REG_B
        call cmos_write
        pop ax
        ret

;===========================================================================
; INT 19h - bootstrap loader: the boot devices in the order CMOS 3Dh/38h
; give (QEMU's -boot order, the Bochs BIOS layout: 1 diskette, 2 hard disk,
; 3 CD-ROM; all zero: hard disk, diskette, CD-ROM). A hard disk or diskette
; boots from sector 1 (CHS 0/0/1) read to 0000:7C00 through INT 13h, each
; hard disk in turn (80h, 81h, ... as counted at 0040:0075); the first sector
; ending in 55h AAh gets control with DL = its drive. The CD-ROM boots by El
; Torito (cdrom.inc). With no disk at all, INT 18h shows the vx86 screen;
; with disks but nothing bootable, the "No bootable device" message.
; ===========================================================================
int19_boot:
        cli
        cld
        xor ax, ax
        mov ss, ax
        mov sp, STACK_TOP
        sti
        mov al, CMOS_BOOT_ORDER_12
        call cmos_read
        test al, 0x0F
        jnz .cmos_order
        mov al, BOOT_DEV_HD
        call boot_device
        mov al, BOOT_DEV_FD
        call boot_device
        mov al, BOOT_DEV_CD
        call boot_device
        jmp .none
.cmos_order:
        and al, 0x0F
        call boot_device
        mov al, CMOS_BOOT_ORDER_12
        call cmos_read
        shr al, 4
        call boot_device
        mov al, CMOS_BOOT_ORDER_3
        call cmos_read
        shr al, 4
        call boot_device
.none:
        xor ax, ax
        mov ds, ax
        cmp byte [0x400 + BDA_NUMHD], 0
        jne no_bootable_device
        push EBDA_SEG
        pop ds
        cmp word [EB_CD_BASE], 0
        jne no_bootable_device
        int 0x18
        jmp idle_forever

BOOT_DEV_FD     equ 1
BOOT_DEV_HD     equ 2
BOOT_DEV_CD     equ 3
CMOS_BOOT_ORDER_12 equ 0x3D         ; bits 3:0 first, 7:4 second boot device
CMOS_BOOT_ORDER_3  equ 0x38         ; bits 7:4 third boot device

; Try boot device AL (BOOT_DEV_*); returns if it did not boot.
boot_device:
        xor bx, bx
        mov ds, bx
        mov es, bx
        cmp al, BOOT_DEV_HD
        je boot_hard_disks
        cmp al, BOOT_DEV_FD
        je boot_diskette
        cmp al, BOOT_DEV_CD
        je boot_cd
        ret

boot_hard_disks:
        movzx cx, byte [0x400 + BDA_NUMHD]
        test cx, cx
        jnz .disks
        inc cx                          ; none found: 80h may still be an option ROM's
.disks:
        mov dl, 0x80
.hd:
        push cx
        push dx
        cmp byte [0x400 + BDA_NUMHD], 0
        je .quiet                       ; an option ROM's 80h, if any: no message
        mov si, str_boot_hd
        call boot_announced
        jmp .hd_next
.quiet:
        call boot_try
.hd_next:
        pop dx
        pop cx
        inc dl
        loop .hd
        ret

boot_diskette:
        mov dl, 0x00
        test byte [0x400 + BDA_EQUIP], 1
        jz .no_fd                       ; no diskette drive: tried quietly
        mov si, str_boot_fd
        jmp boot_announced
.no_fd:
        jmp boot_try

; Disks exist but none holds a boot sector: say so on screen and COM1, then
; wait for a key (keyboard or COM1) and try again.
no_bootable_device:
        mov ax, BDA_SEG
        mov ds, ax
        mov ax, 0x0003
        int 0x10
        call lb_begin
        mov si, str_title
        call lb_str
        mov dh, ROW_TITLE
        mov bl, ATTR_TITLE
        call lb_show
        call lb_begin
        mov si, str_noboot
        call lb_str
        mov dh, ROW_NODISK - 3
        mov bl, ATTR_WARN
        call lb_show
        call lb_begin
        mov si, str_noboot2
        call lb_str
        mov dh, ROW_NODISK - 2
        mov bl, ATTR_TEXT
        call lb_show
        call lb_begin
        mov si, str_noboot3
        call lb_str
        mov dh, ROW_NODISK
        mov bl, ATTR_NOTE
        call lb_show
.wait:
        sti
        hlt
        mov ah, 0x01
        int 0x16
        jnz .key
        mov dx, COM1_BASE + UART_LSR
        in al, dx
        test al, LSR_DR
        jz .wait
        mov dx, COM1_BASE
        in al, dx
        jmp .retry
.key:
        xor ah, ah
        int 0x16
.retry:
        int 0x19

; Say "Booting from <CS:SI>", try drive DL, and if it returns say why it
; failed (SeaBIOS's wording, so logs read the same under both BIOSes).
boot_announced:
        call print_str
        call boot_try
        mov si, str_fail_read
        cmp al, BOOT_NO_SIGNATURE
        jne .say
        mov si, str_fail_sig
.say:
        jmp print_str

; Try to boot drive DL; returns only if it cannot, with AL = BOOT_READ_ERROR
; or BOOT_NO_SIGNATURE.
boot_try:
        mov si, 3                       ; attempts, with a reset in between
.again:
        mov ax, 0x0201                  ; read 1 sector
        mov cx, 0x0001                  ; cylinder 0, sector 1
        xor dh, dh                      ; head 0
        mov bx, 0x7C00
        push dx
        int 0x13
        pop dx
        jnc .read
        xor ah, ah                      ; reset the drive and retry
        int 0x13
        dec si
        jnz .again
        mov al, BOOT_READ_ERROR
        ret
.read:
        cmp word [es:0x7DFE], 0xAA55
        jne .no
        xor ax, ax
        mov ds, ax
        mov es, ax
        jmp 0x0000:0x7C00
.no:
        mov al, BOOT_NO_SIGNATURE
        ret

BOOT_READ_ERROR   equ 1
BOOT_NO_SIGNATURE equ 2

; Print the NUL-terminated string CS:SI at the cursor through INT 10h
; teletype, so the serial console mirror copies it. Preserves registers.
print_str:
        pusha
.l:
        cs lodsb
        test al, al
        jz .done
        mov ah, 0x0E
        mov bx, 0x0007
        int 0x10
        jmp .l
.done:
        popa
        ret

; INT 18h - no bootable device (the PC's ROM BASIC entry): the vx86 screen.
int18_no_basic:
        cli
        cld
        xor ax, ax
        mov ss, ax
        mov sp, STACK_TOP
        sti
        jmp boot_screen

boot_screen:
        mov ax, BDA_SEG
        mov ds, ax
        mov ax, 0x0003
        int 0x10
        ; hide nothing; cursor will sit in the echo area

        ; title bar
        call lb_begin
        mov si, str_title
        call lb_str
        mov dh, ROW_TITLE
        mov bl, ATTR_TITLE
        call lb_show

        ; memory line
        call lb_begin
        mov si, str_mem1
        call lb_str
        movzx eax, word [BDA_MEMKIB]
        call lb_dec
        mov si, str_mem2
        call lb_str
        call ram_top
        push eax
        sub eax, 0x100000
        shr eax, 10
        call lb_dec
        mov si, str_mem3
        call lb_str
        pop eax
        shr eax, 20
        call lb_dec
        mov si, str_mem4
        call lb_str
        mov dh, ROW_MEM
        mov bl, ATTR_TEXT
        call lb_show

        call lb_begin
        mov si, str_devices
        call lb_str
        mov dh, ROW_DEV
        mov bl, ATTR_TEXT
        call lb_show

        call lb_begin
        mov si, str_nodisk
        call lb_str
        mov dh, ROW_NODISK
        mov bl, ATTR_WARN
        call lb_show

        call lb_begin
        mov si, str_hint
        call lb_str
        mov dh, ROW_HINT
        mov bl, ATTR_NOTE
        call lb_show

        ; uptime reference and echo state
        push es
        mov ax, EBDA_SEG
        mov es, ax
        cli
        mov eax, [BDA_TICKS]
        sti
        mov [es:EB_BOOTTICKS], eax
        mov dword [es:EB_LASTSEC], 0xFFFFFFFF
        mov word [es:EB_SERCOL], 0
        pop es

        ; echo cursor
        mov ah, 0x02
        xor bh, bh
        mov dx, (ROW_ECHO_TOP << 8) | 0
        int 0x10

        ; COM1 receive interrupt -> IRQ4 -> keyboard buffer
        cli
        xor ax, ax
        mov es, ax
        mov word [es:0x0C * 4], int0c_com1
        mov word [es:0x0C * 4 + 2], 0xF000
        mov dx, COM1_BASE + UART_MCR
        mov al, MCR_DTR_RTS | MCR_OUT2
        out dx, al
        mov dx, COM1_BASE + UART_IER
        mov al, IER_RX
        out dx, al
        in al, PIC1_DATA
        and al, 0b1110_1111             ; unmask IRQ4
        out PIC1_DATA, al
        sti

; The default guest: halt until an interrupt, echo keys, refresh the clock.
idle_forever:
        mov ax, BDA_SEG
        mov ds, ax
.loop:
        call clock_update
.keys:
        mov ah, 0x01
        int 0x16
        jz .sleep
        xor ah, ah
        int 0x16
        call echo_key
        jmp .keys
.sleep:
        ; COM1 receive interrupt back on (IRQ4 may have paused it when the
        ; keyboard buffer was full); a pending byte raises IRQ4 again.
        mov dx, COM1_BASE + UART_IER
        mov al, IER_RX
        out dx, al
        sti
        hlt
        jmp .loop

; Show uptime and RTC time once per second on ROW_CLOCK and COM1.
clock_update:
        pushad
        push es
        mov ax, EBDA_SEG
        mov es, ax
        cli
        mov eax, [BDA_TICKS]
        sti
        sub eax, [es:EB_BOOTTICKS]
        jae .pos
        add eax, 0x1800B0
.pos:
        mov ecx, 10
        mul ecx
        mov ecx, 182
        div ecx                         ; seconds = ticks * 10 / 182
        cmp eax, [es:EB_LASTSEC]
        je .done
        mov [es:EB_LASTSEC], eax
        mov ebx, eax
        ; a typed partial line on the serial console ends first
        cmp word [es:EB_SERCOL], 0
        je .fresh
        mov word [es:EB_SERCOL], 0
        mov al, 13
        call ser_putc
        mov al, 10
        call ser_putc
.fresh:
        call lb_begin
        mov si, str_uptime
        call lb_str
        mov eax, ebx
        call lb_dec
        mov si, str_rtc
        call lb_str
        call rtc_wait_uip
        mov al, RTC_HOUR
        call cmos_read
        call lb_bcd
        mov al, ':'
        call lb_char
        mov al, RTC_MIN
        call cmos_read
        call lb_bcd
        mov al, ':'
        call lb_char
        mov al, RTC_SEC
        call cmos_read
        call lb_bcd
        mov dh, ROW_CLOCK
        mov bl, ATTR_CLOCK
        call lb_show
.done:
        pop es
        popad
        ret

; Echo keystroke AX (from INT 16h) in the echo area and on COM1.
echo_key:
        pusha
        push es
        mov cx, EBDA_SEG
        mov es, cx
        test al, al
        jz .out                         ; function keys: nothing to show
        cmp al, 0xE0
        je .out
        cmp al, 0x0D
        je .enter
        cmp al, 0x0A
        je .enter
        cmp al, 0x08
        je .backspace
        cmp al, 0x7F
        je .backspace                   ; DEL from a serial terminal
        cmp al, 0x20
        jb .out                         ; other control characters
        call ser_putc
        inc word [es:EB_SERCOL]
        ; screen: character with attribute at the cursor, then advance
        mov bx, 0x0007
        mov cx, 1
        mov ah, 0x09
        int 0x10
        mov ah, 0x03
        int 0x10
        inc dl
        cmp dl, 80
        jb .setcur
        xor dl, dl
        jmp .newline_screen
.enter:
        mov al, 13
        call ser_putc
        mov al, 10
        call ser_putc
        mov word [es:EB_SERCOL], 0
        xor bh, bh
        mov ah, 0x03
        int 0x10
        xor dl, dl
.newline_screen:
        inc dh
        cmp dh, 24
        jbe .setcur
        mov dh, 24
        push dx
        mov ax, 0x0601                  ; scroll the echo window up one line
        mov bh, ATTR_TEXT
        mov cx, (ROW_ECHO_TOP << 8) | 0
        mov dx, (24 << 8) | 79
        int 0x10
        pop dx
        jmp .setcur
.backspace:
        xor bh, bh
        mov ah, 0x03
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
        cmp word [es:EB_SERCOL], 0
        je .out
        dec word [es:EB_SERCOL]
        jmp .out
.setcur:
        xor bh, bh
        mov ah, 0x02
        int 0x10
.out:
        pop es
        popa
        ret

; ---------------------------------------------------------------------------
; Line buffer (EBDA:EB_LINE): build a line, then show it at a screen row and
; send it to COM1. ES:DI is the append pointer between lb_begin and lb_show.
; ---------------------------------------------------------------------------
lb_begin:
        push ax
        mov ax, EBDA_SEG
        mov es, ax
        mov di, EB_LINE
        mov byte [es:di], 0
        pop ax
        ret

; append CS:SI (NUL terminated)
lb_str:
        push ax
.l:
        cs lodsb
        test al, al
        jz .done
        call lb_char
        jmp .l
.done:
        pop ax
        ret

; append AL (bounded to the buffer)
lb_char:
        cmp di, EB_LINE + EB_LINE_MAX
        jae .full
        stosb
        mov byte [es:di], 0
.full:
        ret

; append AL as two BCD digits
lb_bcd:
        push ax
        push ax
        shr al, 4
        and al, 0x0F
        add al, '0'
        call lb_char
        pop ax
        and al, 0x0F
        add al, '0'
        call lb_char
        pop ax
        ret

; append EAX in decimal
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

; Draw the line buffer on page 0 row DH in attribute BL, padded to 80
; columns, and send it to COM1 followed by CR LF. Preserves registers.
lb_show:
        pusha
        push ds
        push es
        mov ax, EBDA_SEG
        mov ds, ax
        mov ax, VIDEO_SEG
        mov es, ax
        mov al, dh
        mov ah, 160
        mul ah
        mov di, ax
        mov si, EB_LINE
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
        mov al, 13
        call ser_putc
        mov al, 10
        call ser_putc
        pop es
        pop ds
        popa
        ret

; ---------------------------------------------------------------------------
; Strings
; ---------------------------------------------------------------------------
str_banner:
        db "vx86 BIOS (version ", BIOS_VERSION, ", ", BIOS_DATE, ")", 13, 10, 0
str_boot_hd:
        db "Booting from Hard Disk...", 13, 10, 0
str_boot_fd:
        db "Booting from Floppy...", 13, 10, 0
str_boot_rom:
        db "Booting from ROM...", 13, 10, 0
str_fail_read:
        db "Boot failed: could not read the boot disk", 13, 10, 13, 10, 0
str_fail_sig:
        db "Boot failed: not a bootable disk", 13, 10, 13, 10, 0
str_title:
        db " vx86 BIOS ", BIOS_VERSION, "  -  virtual PC/AT, ", BIOS_DATE, 0
str_mem1:
        db "Memory: ", 0
str_mem2:
        db " KiB base, ", 0
str_mem3:
        db " KiB extended, ", 0
str_mem4:
        db " MiB total", 0
str_devices:
        db "Devices: 8259 PICs, 8254 PIT, MC146818 RTC, 16550 COM1 3F8h, 8042 keyboard, VGA", 0
str_nodisk:
        db "No bootable disk found.", 0
str_noboot:
        db "No bootable device.", 0
str_noboot2:
        db "No disk has a boot sector (the signature 55h AAh at offset 510 is missing).", 0
str_noboot3:
        db "Press a key to try again.", 0
str_hint:
        db "Type to echo characters; the clock below is driven by the PIT.", 0
str_uptime:
        db "uptime ", 0
str_rtc:
        db " s  RTC ", 0

; ===========================================================================
; Fixed locations at the top of the ROM
; ===========================================================================
        ; (a negative count here means the code overlaps the reset vector)
        times 0xFFF0 - ($ - $$) db 0xFF

reset_vector:                           ; F000:FFF0
        jmp 0xF000:post
        db BIOS_DATE                    ; F000:FFF5, 8 bytes
        db 0x00                         ; F000:FFFD
        db 0xFC                         ; F000:FFFE model byte: PC/AT
        db 0x00                         ; F000:FFFF
