; bzimage.asm: a minimal kernel in Linux bzImage format for vx86's direct
; boot tests (tests/boot.rs). Build: nasm -f bin -o bzimage.bin bzimage.asm
;
; The setup header (Documentation/arch/x86/boot.rst) declares protocol 2.15,
; a relocatable kernel preferring 0x200000 and the 64-bit entry
; (XLF_KERNEL_64). The protected-mode part, assembled for 0x200000, has the
; 32-bit entry (startup_32) at offset 0 and the 64-bit entry (startup_64) at
; offset 0x200. Each saves the registers it was entered with, reports them,
; the CPU state and everything in boot_params (the zero page, at ESI) on port
; 0xE9, and exits through isa-debug-exit. There is no real-mode setup code:
; vx86 never runs it.
;
; The test appends a compressed ELF (pvh.bin) to make a "payload", and sets
; payload_offset/payload_length to it, to exercise host decompression.

%include "bootlib.inc"

LOAD_ADDR equ 0x200000

        section setup start=0 vstart=0
        bits 16
        times 0x1F1 - ($ - $$) db 0
setup_sects:    db 1                    ; 0x1F1: one setup sector
root_flags:     dw 0
syssize:        dd (pm_end - pm_start + 15) / 16
ram_size:       dw 0
vid_mode:       dw 0xFFFF
root_dev:       dw 0
boot_flag:      dw 0xAA55               ; 0x1FE
jump:           db 0xEB, hdr_end - 0x202 ; 0x200
header:         db "HdrS"               ; 0x202
version:        dw 0x020F               ; 0x206
realmode_swtch: dd 0
start_sys_seg:  dw 0x1000
kernel_version: dw 0
type_of_loader: db 0                    ; 0x210
loadflags:      db 0x01                 ; LOADED_HIGH
setup_move_size: dw 0
code32_start:   dd 0x100000             ; 0x214
ramdisk_image:  dd 0
ramdisk_size:   dd 0
bootsect_kludge: dd 0
heap_end_ptr:   dw 0
ext_loader_ver: db 0
ext_loader_type: db 0
cmd_line_ptr:   dd 0                    ; 0x228
initrd_addr_max: dd 0x7FFFFFFF          ; 0x22C
kernel_alignment: dd 0x200000           ; 0x230
relocatable_kernel: db 1                ; 0x234
min_alignment:  db 21
xloadflags:     dw 0x0001               ; 0x236: XLF_KERNEL_64
cmdline_size:   dd 255                  ; 0x238
hardware_subarch: dd 0
hardware_subarch_data: dq 0
payload_offset: dd 0                    ; 0x248 (set by the test)
payload_length: dd 0                    ; 0x24C
setup_data:     dq 0
pref_address:   dq LOAD_ADDR            ; 0x258
init_size:      dd 0x100000             ; 0x260
handover_offset: dd 0
kernel_info_offset: dd 0
hdr_end:
        times 0x400 - ($ - $$) db 0

        section pm follows=setup vstart=LOAD_ADDR
pm_start:
        bits 32
startup_32:
        jmp main32

        times 0x200 - ($ - pm_start) db 0xCC
        bits 64
startup_64:
        mov [s_esi], esi
        mov [s_ebx], ebx
        mov esp, stack_top
        mov ebp, esi
        PUTS k64, "ZP64 "
        mov eax, [s_esi]
        KV k64, "esi="
        call k64_nl
        call k64_cpu
        ZP_REPORT k64
        PUTS k64, "END", 10
        jmp k64_exit

        BOOTLIB k64

        bits 32
main32:
        mov [s_eax], eax
        mov [s_ebx], ebx
        mov [s_esi], esi
        mov [s_edi], edi
        mov [s_ebp], ebp
        mov esp, stack_top
        mov ebp, esi
        PUTS k32, "ZP32 "
        mov eax, [s_esi]
        KV k32, "esi="
        mov eax, [s_ebx]
        KV k32, "ebx="
        mov eax, [s_edi]
        KV k32, "edi="
        mov eax, [s_ebp]
        KV k32, "ebp="
        call k32_nl
        call k32_cpu
        ZP_REPORT k32
        PUTS k32, "END", 10
        jmp k32_exit

        BOOTLIB k32

s_eax:  dd 0
s_ebx:  dd 0
s_esi:  dd 0
s_edi:  dd 0
s_ebp:  dd 0
        align 16
stack:  times 1024 db 0
stack_top:
pm_end:
