; apic.asm: a multiboot v1 test kernel for the local APIC and the I/O APIC
; (SDM Vol. 3A chapter 11; Intel 82093AA datasheet), run by tests/apic.rs as
;   vx86 -M pc -cpu qemu64,+apic -kernel apic.bin
; with -icount shift=0,sleep=off. It reports each check on port 0xE9 and
; powers off through ACPI (PM1a_CNT SLP_EN, S5). The same image runs under QEMU 7.2
; (-M pc -cpu qemu64,+apic); lines that depend on a feature QEMU's TCG does
; not offer (the TSC-deadline timer) say so.
;
;   nasm -f bin -o apic.bin apic.asm

%include "bootlib.inc"

MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00000003
BASE     equ 0x100000

LAPIC    equ 0xFEE00000
IOAPIC   equ 0xFEC00000
; Local APIC registers (SDM Table 11-1).
ID       equ 0x020
VER      equ 0x030
TPR      equ 0x080
PPR      equ 0x0A0
EOI      equ 0x0B0
LDR      equ 0x0D0
DFR      equ 0x0E0
SVR      equ 0x0F0
ISR      equ 0x100
IRR      equ 0x200
ESR      equ 0x280
ICRLO    equ 0x300
ICRHI    equ 0x310
LVTT     equ 0x320
LVT0     equ 0x350
LVTERR   equ 0x370
TICR     equ 0x380
TCCR     equ 0x390
TDCR     equ 0x3E0

V_TIMER  equ 0x40
V_IPI    equ 0x41
V_PIT    equ 0x42
V_ERROR  equ 0x43
V_COM1   equ 0x44

        org BASE
        bits 32

ehdr:   db 0x7F, "ELF", 1, 1, 1, 0
        times 8 db 0
        dw 2, 3
        dd 1
        dd mb_entry
        dd phdr - ehdr
        dd 0, 0
        dw 52, 32, 1
        dw 40, 0, 0
phdr:   dd 1
        dd 0, BASE, BASE
        dd file_end - ehdr
        dd bss_end - ehdr
        dd 7, 0x1000

        align 4
        dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

%macro LR 1                             ; EAX = local APIC register %1
        mov eax, [LAPIC + %1]
%endmacro
%macro LW 2                             ; local APIC register %1 = %2
        mov dword [LAPIC + %1], %2
%endmacro

mb_entry:
        cli
        mov esp, stack_top
        lgdt [gdt_desc]
        jmp 0x08:.cs
.cs:    mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        ; The 8259s stay masked: everything comes through the APICs.
        mov al, 0xFF
        out 0x21, al
        out 0xA1, al
        call build_idt
        lidt [idt_desc]

        ; -- CPUID and IA32_APIC_BASE --
        mov eax, 1
        cpuid
        mov [cpuid_ecx], ecx
        mov eax, edx
        shr eax, 9
        and eax, 1
        KV m, "cpuid.apic="
        mov ecx, 0x1B
        rdmsr
        KV m, "apic_base="
        call m_nl

        ; -- ID, version, reset values --
        LR ID
        KV m, "id="
        LR VER
        KV m, "version="
        LR SVR
        KV m, "svr="
        LR DFR
        KV m, "dfr="
        LR LVTT
        KV m, "lvtt="
        LR LVT0
        KV m, "lvt0="
        call m_nl

        ; -- software enable, LDR/DFR, TPR/PPR --
        LW SVR, 0x1FF
        LW LVT0, 0x10700                ; LINT0 masked: no 8259 path
        LR SVR
        KV m, "svr="
        LW LDR, 0x01ABCDEF
        LR LDR
        KV m, "ldr="
        LW DFR, 0x0FFFFFFF
        LR DFR
        KV m, "dfr="
        LW DFR, 0xFFFFFFFF
        LW TPR, 0x2F
        LR TPR
        KV m, "tpr="
        LR PPR
        KV m, "ppr="
        LW TPR, 0
        call m_nl

        ; -- a self IPI, taken at once; ISR seen from the handler --
        sti
        LW ICRHI, 0
        LW ICRLO, 0x00044000 | V_IPI    ; self, fixed, edge
        nop
        mov eax, [ipi_count]
        KV m, "ipi="
        mov eax, [ipi_isr]
        KV m, "isr_in_handler="
        LR ISR + 0x20
        KV m, "isr_after="
        call m_nl

        ; -- held by the TPR, then taken when it drops --
        LW TPR, 0x40
        LW ICRLO, 0x00044000 | V_IPI
        nop
        mov eax, [ipi_count]
        KV m, "tpr=40 ipi="
        LR IRR + 0x20
        KV m, "irr="
        LW TPR, 0
        nop
        mov eax, [ipi_count]
        KV m, "tpr=0 ipi="
        ; Physical destination 0 (this CPU) and 1 (nobody).
        LW ICRHI, 0x01000000
        LW ICRLO, V_IPI
        nop
        mov eax, [ipi_count]
        KV m, "dest1 ipi="
        LW ICRHI, 0
        LW ICRLO, V_IPI
        nop
        mov eax, [ipi_count]
        KV m, "dest0 ipi="
        call m_nl

        ; -- error: a self IPI with an illegal vector --
        LW LVTERR, V_ERROR
        LW ESR, 0
        LW ICRLO, 0x00044000 | 3
        nop
        LW ESR, 0
        LR ESR
        KV m, "esr="
        mov eax, [err_count]
        KV m, "error_irq="
        mov eax, [illegal_count]
        KV m, "vector3_taken="
        LW ESR, 0
        LR ESR
        KV m, "esr_again="
        call m_nl

        ; -- NMI by self IPI --
        LW ICRLO, 0x00044400
        nop
        mov eax, [nmi_count]
        KV m, "nmi="
        call m_nl

        ; -- one-shot timer, divide by 1 --
        LW TDCR, 0xB
        LW LVTT, V_TIMER
        LW TICR, 100000
        LR TCCR
        cmp eax, 100000
        setbe bl
        test eax, eax
        setnz bh
        and bl, bh
        movzx eax, bl
        KV m, "oneshot counting="
.os:    hlt
        cmp dword [timer_count], 1
        jb .os
        mov eax, [timer_count]
        KV m, "fired="
        LR TCCR
        KV m, "ccr="
        ; Nothing more comes.
        mov ecx, 3000
.osw:   loop .osw
        mov eax, [timer_count]
        KV m, "after="
        call m_nl

        ; -- periodic timer, divide by 16: ticks 16 ns each --
        mov dword [timer_count], 0
        LW TDCR, 0x3
        LW LVTT, 0x20000 | V_TIMER
        LW TICR, 3124                   ; (3124 + 1) * 16 ns = 50 us
.pw:    hlt
        cmp dword [timer_count], 5
        jb .pw
        LW TICR, 0
        mov eax, [timer_count]
        KV m, "periodic ticks="
        ; Period between the last two ticks in microseconds (TSC: 1 GHz).
        mov eax, [tsc_last]
        sub eax, [tsc_prev]
        add eax, 500
        xor edx, edx
        mov ecx, 1000
        div ecx
        KV m, "period_us="
        LR LVTT
        KV m, "lvtt="
        call m_nl

        ; -- TSC-deadline mode, where CPUID offers it --
        test dword [cpuid_ecx], 1 << 24
        jnz .dl
        PUTS m, "tsc-deadline n/a", 10
        jmp .dl_done
.dl:    mov dword [timer_count], 0
        LW LVTT, 0x40000 | V_TIMER
        rdtsc
        add eax, 30000
        adc edx, 0
        mov ecx, 0x6E0
        wrmsr
        rdmsr
        test eax, eax
        setnz al
        movzx eax, al
        KV m, "tsc-deadline armed="
.dw:    hlt
        cmp dword [timer_count], 1
        jb .dw
        mov eax, [timer_count]
        KV m, "fired="
        mov ecx, 0x6E0
        rdmsr
        KV m, "msr="
        call m_nl
.dl_done:
        LW LVTT, 0x10000

        ; -- I/O APIC: ID, version, arbitration, a reset entry --
        mov dword [IOAPIC], 0
        mov eax, [IOAPIC + 0x10]
        KV m, "ioapic id="
        mov dword [IOAPIC], 1
        mov eax, [IOAPIC + 0x10]
        KV m, "ver="
        mov dword [IOAPIC], 2
        mov eax, [IOAPIC + 0x10]
        KV m, "arb="
        mov dword [IOAPIC], 0x14
        mov eax, [IOAPIC + 0x10]
        KV m, "redir2="
        call m_nl

        ; -- ISA IRQ0 (the PIT) arrives on pin 2, edge, physical dest 0 --
        mov al, 0x34                    ; channel 0, lo/hi, mode 2
        out 0x43, al
        mov al, 0xA9                    ; 1193: about 1 ms
        out 0x40, al
        mov al, 0x04
        out 0x40, al
        mov dword [IOAPIC], 0x15
        mov dword [IOAPIC + 0x10], 0
        mov dword [IOAPIC], 0x14
        mov dword [IOAPIC + 0x10], V_PIT
.pitw:  hlt
        cmp dword [pit_count], 3
        jb .pitw
        mov dword [IOAPIC + 0x10], 0x10000 | V_PIT
        mov eax, [pit_count]
        KV m, "irq0 pin2 ticks="
        ; Masked: nothing more.
        mov ecx, 5000
.pitm:  loop .pitm
        mov ecx, 5000
.pitm2: loop .pitm2
        mov eax, [pit_count]
        KV m, "masked ticks="
        call m_nl

        ; -- a level-triggered pin: COM1's THRE interrupt on pin 4 stays
        ; asserted; each EOI clears Remote IRR and it comes again until
        ; the handler reads IIR on the third time --
        mov dx, 0x3FB
        mov al, 0x03                    ; LCR: 8N1, DLAB off
        out dx, al
        mov dx, 0x3F9
        mov al, 0x02                    ; IER: THR empty
        out dx, al
        mov dx, 0x3FC
        mov al, 0x08                    ; MCR: OUT2 gates the IRQ
        out dx, al
        mov dword [IOAPIC], 0x19
        mov dword [IOAPIC + 0x10], 0
        mov dword [IOAPIC], 0x18
        mov dword [IOAPIC + 0x10], 0x8000 | V_COM1
        mov ecx, 2000
.comw:  loop .comw
        mov eax, [com_count]
        KV m, "level irqs="
        mov eax, [com_rirr]
        KV m, "remote_irr_in_handler="
        mov dword [IOAPIC], 0x18
        mov eax, [IOAPIC + 0x10]
        KV m, "redir4="
        LR 0x180 + 0x20                 ; TMR bits 64-95
        KV m, "tmr="
        call m_nl

        ; -- globally disabled: CPUID no longer reports an APIC --
        cli
        mov ecx, 0x1B
        rdmsr
        and eax, ~(1 << 11)
        wrmsr
        mov eax, 1
        cpuid
        mov eax, edx
        shr eax, 9
        and eax, 1
        KV m, "disabled cpuid.apic="
        mov ecx, 0x1B
        rdmsr
        KV m, "apic_base="
        call m_nl

        ; -- ACPI: the RSDP in the BIOS area, the RSDT's tables --
        mov esi, 0xE0000
.rsdp:  cmp dword [esi], 'RSD '
        jne .rsdp_next
        cmp dword [esi + 4], 'PTR '
        je .rsdp_found
.rsdp_next:
        add esi, 16
        cmp esi, 0x100000
        jb .rsdp
        PUTS m, "no RSDP", 10
        jmp m_exit
.rsdp_found:
        mov edi, [esi + 16]             ; RSDT
        mov ecx, [edi + 4]
        sub ecx, 36
        shr ecx, 2
        mov [tbl_left], ecx
        add edi, 36
        mov [tbl_ptr], edi
        PUTS m, "acpi"
.tbl:   cmp dword [tbl_left], 0
        je .tbl_done
        call m_sp
        mov edi, [tbl_ptr]
        mov edi, [edi]
        mov eax, [edi]
        mov [sig], eax
        mov esi, sig
        call m_puts
        cmp dword [sig], 'FACP'
        jne .tbl_next
        mov eax, [edi + 40]             ; the DSDT
        mov eax, [eax]
        mov [sig], eax
        mov al, '>'
        call m_putc
        mov esi, sig
        call m_puts
.tbl_next:
        add dword [tbl_ptr], 4
        dec dword [tbl_left]
        jmp .tbl
.tbl_done:
        ; The PM timer (port 0x608) runs.
        mov dx, 0x608
        in eax, dx
        mov ebx, eax
        mov ecx, 2000
.pmw:   loop .pmw
        mov dx, 0x608
        in eax, dx
        sub eax, ebx
        and eax, 0xFFFFFF
        setnz al
        movzx eax, al
        KV m, " pmtmr_runs="
        call m_nl
        PUTS m, "END", 10
        ; S5 through PM1a_CNT: SLP_TYP 0, SLP_EN. The run ends with status 0.
        mov dx, 0x604
        mov ax, 0x2000
        out dx, ax
        cli
.off:   hlt
        jmp .off

; ---- interrupt handlers ----
h_ipi:  pusha
        inc dword [ipi_count]
        mov eax, [LAPIC + ISR + 0x20]
        mov [ipi_isr], eax
        LW EOI, 0
        popa
        iret
h_timer:
        pusha
        inc dword [timer_count]
        mov eax, [tsc_last]
        mov [tsc_prev], eax
        rdtsc
        mov [tsc_last], eax
        LW EOI, 0
        popa
        iret
h_pit:  pusha
        inc dword [pit_count]
        LW EOI, 0
        popa
        iret
h_error:
        pusha
        inc dword [err_count]
        LW EOI, 0
        popa
        iret
h_com1: pusha
        inc dword [com_count]
        mov dword [IOAPIC], 0x18
        mov eax, [IOAPIC + 0x10]
        shr eax, 14
        and eax, 1
        mov [com_rirr], eax
        cmp dword [com_count], 3
        jb .eoi
        mov dx, 0x3FA                   ; IIR read clears THRE
        in al, dx
        mov dx, 0x3F9
        xor al, al
        out dx, al
.eoi:   LW EOI, 0
        popa
        iret
h_illegal:
        inc dword [illegal_count]
        iret
h_nmi:  inc dword [nmi_count]
        iret
h_spurious:
        inc dword [spurious_count]
        iret
h_other:
        PUTS m, "UNEXPECTED INTERRUPT", 10
        jmp m_exit

; IDT: every vector to h_other, then the ones used.
build_idt:
        xor ecx, ecx
.all:   mov eax, h_other
        call set_gate
        inc ecx
        cmp ecx, 256
        jb .all
        mov ecx, 2
        mov eax, h_nmi
        call set_gate
        mov ecx, 3
        mov eax, h_illegal
        call set_gate
        mov ecx, V_TIMER
        mov eax, h_timer
        call set_gate
        mov ecx, V_IPI
        mov eax, h_ipi
        call set_gate
        mov ecx, V_PIT
        mov eax, h_pit
        call set_gate
        mov ecx, V_ERROR
        mov eax, h_error
        call set_gate
        mov ecx, V_COM1
        mov eax, h_com1
        call set_gate
        mov ecx, 0xFF
        mov eax, h_spurious
        call set_gate
        ret
; Gate ECX -> handler EAX (32-bit interrupt gate, CS 0x08).
set_gate:
        lea edi, [idt + ecx * 8]
        mov [edi], ax
        mov word [edi + 2], 0x08
        mov word [edi + 4], 0x8E00
        shr eax, 16
        mov [edi + 6], ax
        ret

        BOOTLIB m

        align 8
gdt:    dq 0
        dq 0x00CF9A000000FFFF
        dq 0x00CF92000000FFFF
gdt_desc:
        dw 23
        dd gdt
idt_desc:
        dw 256 * 8 - 1
        dd idt

cpuid_ecx: dd 0
ipi_count: dd 0
ipi_isr: dd 0
timer_count: dd 0
tsc_prev: dd 0
tsc_last: dd 0
pit_count: dd 0
err_count: dd 0
nmi_count: dd 0
com_count: dd 0
com_rirr: dd 0
spurious_count: dd 0
illegal_count: dd 0
tbl_ptr: dd 0
tbl_left: dd 0
sig:    dd 0, 0
file_end:
        absolute file_end
        alignb 16
idt:    resb 256 * 8
stack:  resb 4096
stack_top:
bss_end:
