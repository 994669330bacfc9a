; vx86 test ROM: CPU modes and protection, self-checking.
; real mode -> protected mode -> paging -> ring 3 + call gate -> hardware task
; switch -> IA-32e long mode (exceptions, SYSCALL/SYSRET, self-modifying code).
; Reports text on port 0xE9 and the result on isa-debug-exit (port 0xF4):
; writes 0 when every check passed (exit status 1), N>0 for failed check N.
; Build: nasm -f bin -o modes.bin modes.asm   (a 64 KiB BIOS image)

%define ROM 0xF0000
%define R(x) ((x) - ROM)

%macro FAIL 1
    mov al, %1
    out 0xF4, al
    hlt
%endmacro

        org ROM
        bits 16
start16:
        cli
        xor ax, ax
        mov ss, ax
        mov sp, 0x7000
        mov ax, 0xF000
        mov ds, ax
        mov si, R(msg_real)
        call print16
        ; --- real mode: #DE through the IVT ---
        xor ax, ax
        mov es, ax
        mov word [es:0], R(de16)
        mov word [es:2], 0xF000
        xor bx, bx
        mov ax, 7
        xor cx, cx
        div cx                      ; F7 F1, handler skips 2 bytes
        cmp bx, 0x1234
        je .de_ok
        FAIL 1
.de_ok: mov si, R(msg_de16)
        call print16
        ; --- unreal-mode-free switch to protected mode ---
        lgdt [cs:R(gdt_ptr)]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp dword 0x08:pm32

de16:   push bp
        mov bp, sp
        add word [bp+2], 2
        mov bx, 0x1234
        pop bp
        iret

print16:
        lodsb
        test al, al
        jz .done
        out 0xE9, al
        jmp print16
.done:  ret

        bits 32
pm32:   mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax
        mov esp, 0x90000
        mov esi, msg_pm
        call print32
        ; IDT at 0x10000: vectors 0x00, 0x0D, 0x0E, 0x40 (DPL3), 0x41 (DPL3)
        mov edi, 0x10000
        xor eax, eax
        mov ecx, 256*2
        rep stosd
        mov eax, de32
        mov bl, 0
        mov dl, 0x8E
        call set_gate32
        mov eax, gp32
        mov bl, 13
        call set_gate32
        mov eax, pf32
        mov bl, 14
        call set_gate32
        mov eax, int40
        mov bl, 0x40
        mov dl, 0xEE
        call set_gate32
        mov eax, int41
        mov bl, 0x41
        call set_gate32
        lidt [idt_ptr]
        ; INT n through an interrupt gate
        xor ebp, ebp
        int 0x40
        cmp ebp, 1
        je .int_ok
        FAIL 2
.int_ok:
        ; #GP with a selector error code: GDT index 0x70 is beyond the limit
        mov ax, 0x70
        xor ebp, ebp
        mov ds, ax                  ; 8E D8
        cmp ebp, 0x70
        je .gp_ok
        FAIL 3
.gp_ok: mov ax, 0x10
        mov ds, ax
        mov esi, msg_exc32
        call print32
        ; --- paging: identity map 0-4 MiB (user, writable) except 0x300000 ---
        mov edi, 0x21000
        mov eax, 0x7
        mov ecx, 1024
.pt:    stosd
        add eax, 0x1000
        loop .pt
        mov dword [0x21000 + (0x300000 >> 12) * 4], 0
        mov dword [0x20000], 0x21007
        mov eax, 0x20000
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80010000          ; PG | WP
        mov cr0, eax
        xor ebp, ebp
        mov eax, [0x300000]         ; A1 imm32: 5 bytes, #PF
        cmp ebp, 0x300000
        je .pf_ok
        FAIL 4
.pf_ok: mov esi, msg_paging
        call print32
        ; --- TSS for ring 3 -> ring 0 transitions ---
        mov dword [0x22004], 0x8F000        ; ESP0
        mov dword [0x22008], 0x10           ; SS0
        mov word [0x22066], 0x68            ; no I/O bitmap
        mov dword [0x2201C], 0x20000        ; CR3 (loaded on the switch back)
        mov ax, 0x40
        ltr ax
        ; iret to ring 3 (CS 0x2B, SS 0x33)
        push dword 0x33
        push dword 0x7F000
        push dword 0x202
        push dword 0x2B
        push dword user32
        iret

user32: mov ax, 0x33
        mov ds, ax
        mov es, ax
        mov ax, cs
        and ax, 3
        cmp ax, 3
        je .u_ok
        int 0x41                    ; cannot FAIL from ring 3: report through the kernel
.u_ok:  call 0x4B:0                 ; call gate (DPL3) -> ring 0
        cmp eax, 0xCAFE
        je .cg_ok
        mov ebx, 5
        int 0x41
.cg_ok: xor ebx, ebx
        int 0x41                    ; back to the kernel for good

gate_target:                        ; ring 0 through the call gate
        mov ax, cs
        and eax, 3
        jnz .bad
        mov eax, 0xCAFE
        retf
.bad:   xor eax, eax
        retf

int41:  ; ring 3 finished: EBX = failure code (0 = ok)
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        test ebx, ebx
        jz .ok
        mov al, bl
        out 0xF4, al
        hlt
.ok:    mov esp, 0x90000
        mov esi, msg_ring3
        call print32
        ; --- hardware task switch: CALL a TSS, the task IRETs back ---
        mov dword [0x24020], task2          ; EIP
        mov dword [0x24024], 0x2            ; EFLAGS
        mov dword [0x24038], 0x8E000        ; ESP
        mov dword [0x2401C], 0x20000        ; CR3
        mov word [0x2404C], 0x08            ; CS
        mov word [0x24048], 0x10            ; ES
        mov word [0x24050], 0x10            ; SS
        mov word [0x24054], 0x10            ; DS
        mov word [0x24058], 0x10            ; FS
        mov word [0x2405C], 0x10            ; GS
        mov word [0x24066], 0x68
        mov dword [0x25000], 0
        call 0x50:0
        cmp dword [0x25000], 0x7A5C
        je .ts_ok
        FAIL 6
.ts_ok: mov esi, msg_task
        call print32
        jmp to_long

task2:  str ax                      ; registers come back from the TSS: report in memory
        cmp ax, 0x50
        jne .t
        mov dword [0x25000], 0x7A5C
.t:     iret                        ; NT=1: back to the caller's task
        jmp task2

de32:   add dword [esp], 2
        iret
gp32:   mov ebp, [esp]              ; error code
        add dword [esp+4], 2
        add esp, 4
        iret
pf32:   mov ebp, cr2
        cmp dword [esp], 0          ; not present, read, supervisor
        je .c
        xor ebp, ebp
.c:     add dword [esp+4], 5
        add esp, 4
        iret
int40:  inc ebp
        iret

set_gate32:                         ; EAX handler, BL vector, DL type/attr
        movzx ebx, bl
        lea edi, [0x10000 + ebx*8]
        mov [edi], ax
        mov word [edi+2], 0x08
        mov byte [edi+4], 0
        mov [edi+5], dl
        shr eax, 16
        mov [edi+6], ax
        ret

print32:
        lodsb
        test al, al
        jz .d
        out 0xE9, al
        jmp print32
.d:     ret

        ; --- IA-32e: disable paging, build 4-level tables, enable LME, PG ---
to_long:
        mov eax, cr0
        and eax, 0x7FFFFFFF
        mov cr0, eax
        mov edi, 0x30000
        xor eax, eax
        mov ecx, 3*1024
        rep stosd
        mov dword [0x30000], 0x31007        ; PML4[0]
        mov dword [0x31000], 0x32007        ; PDPT[0]
        mov dword [0x32000], 0x000087       ; 2 MiB pages 0-8 MiB
        mov dword [0x32008], 0x200087
        mov dword [0x32010], 0x400087
        mov dword [0x32018], 0x600087
        mov eax, 0x30000
        mov cr3, eax
        mov eax, cr4
        or eax, 0x20                        ; PAE
        mov cr4, eax
        mov ecx, 0xC0000080
        rdmsr
        or eax, 0x901                       ; LME | NXE | SCE
        wrmsr
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        jmp 0x18:long64

        bits 64
long64: mov ax, 0x20
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov rsp, 0x90000
        mov rsi, msg_long
        call print64
        ; IDT64 at 0x12000: #GP, #PF, int 0x80 (DPL3)
        mov rdi, 0x12000
        xor eax, eax
        mov ecx, 256*4
        rep stosd
        mov rax, gp64
        mov bl, 13
        mov dl, 0x8E
        call set_gate64
        mov rax, pf64
        mov bl, 14
        call set_gate64
        mov rax, int80
        mov bl, 0x80
        mov dl, 0xEE
        call set_gate64
        lidt [idt64_ptr]
        ; TSS64 at 0x23000: RSP0
        mov qword [0x23004], 0x8F000
        mov word [0x23066], 0x68
        mov ax, 0x58
        ltr ax
        ; #GP on a non-canonical address
        xor ebp, ebp
        mov rbx, 0x8000000000000000
        mov eax, [rbx]                      ; 8B 03: 2 bytes
        cmp ebp, 1
        je .gp_ok
        FAIL 7
.gp_ok: ; #PF with CR2 on an unmapped address (above 8 MiB)
        xor ebp, ebp
        mov rbx, 0x40000000
        mov [rbx], eax                      ; 89 03: write -> error code 2
        cmp rbp, 0x40000000
        je .pf_ok
        FAIL 8
.pf_ok: mov rsi, msg_exc64
        call print64
        ; --- self-modifying code in RAM ---
        mov rdi, 0x40000
        mov rsi, smc_template
        mov ecx, smc_end - smc_template
        rep movsb
        mov rax, 0x40000
        call rax                            ; returns 1
        cmp eax, 1
        je .s1
        FAIL 9
.s1:    mov dword [0x40000 + 1], 2          ; patch the immediate
        mov rax, 0x40000
        call rax
        cmp eax, 2
        je .s2
        FAIL 10
        ; Back and forth (GRUB's BIOS-call thunk does this): the block cache
        ; revives the earlier blocks when their bytes come back; each call
        ; must see the immediate it was given.
        mov ebx, 1
.flip:  mov [0x40000 + 1], ebx
        mov rax, 0x40000
        call rax
        cmp eax, ebx
        je .flip_ok
        FAIL 10
.flip_ok:
        xor ebx, 3                          ; 1, 2, 1, 2, ...
        inc ecx
        cmp ecx, 6
        jb .flip
.s2:    mov rax, 0x40000 + (smc_next - smc_template)
        call rax                            ; patches its own next instruction
        cmp eax, 5
        je .s3
        FAIL 11
.s3:    mov rsi, msg_smc
        call print64
        ; --- SYSCALL/SYSRET between ring 0 and ring 3 ---
        mov ecx, 0xC0000081                 ; STAR
        xor eax, eax
        mov edx, (0x28 << 16) | 0x18
        wrmsr
        mov ecx, 0xC0000082                 ; LSTAR
        mov rax, syscall_entry
        mov rdx, rax
        shr rdx, 32
        wrmsr
        mov ecx, 0xC0000084                 ; FMASK: clear IF
        mov eax, 0x200
        xor edx, edx
        wrmsr
        push qword 0x33                     ; SS
        push qword 0x7F000                  ; RSP
        push qword 0x202                    ; RFLAGS
        push qword 0x3B                     ; CS (64-bit, DPL3)
        push qword user64
        iretq

user64: mov r12, 0x5150
        syscall
        cmp r13, 0x5151
        jne .bad
        mov ax, cs
        cmp ax, 0x3B
        jne .bad
        xor ebx, ebx
        int 0x80
.bad:   mov ebx, 12
        int 0x80

syscall_entry:
        mov ax, cs
        cmp ax, 0x18
        jne .no
        lea r13, [r12 + 1]
.no:    o64 sysret

int80:  ; from ring 3: EBX = result
        mov ax, cs
        cmp ax, 0x18
        jne .f
        test ebx, ebx
        jnz .f
        mov rsi, msg_sys
        call print64
        mov rsi, msg_done
        call print64
        xor eax, eax
        out 0xF4, al
        hlt
.f:     mov al, bl
        or al, 0x40
        out 0xF4, al
        hlt

gp64:   mov ebp, 1
        add qword [rsp+8], 2
        add rsp, 8
        iretq
pf64:   mov rbp, cr2
        cmp qword [rsp], 2
        je .c
        xor ebp, ebp
.c:     add qword [rsp+8], 2
        add rsp, 8
        iretq

set_gate64:                         ; RAX handler, BL vector, DL attr
        movzx ebx, bl
        shl ebx, 4
        lea rdi, [0x12000 + rbx]
        mov [rdi], ax
        mov word [rdi+2], 0x18
        mov byte [rdi+4], 0
        mov [rdi+5], dl
        shr rax, 16
        mov [rdi+6], ax
        shr rax, 16
        mov [rdi+8], eax
        mov dword [rdi+12], 0
        ret

print64:
        lodsb
        test al, al
        jz .d
        out 0xE9, al
        jmp print64
.d:     ret

smc_template:
        mov eax, 1
        ret
smc_next:
        mov byte [rel .imm + 1], 5          ; patches the next instruction's imm32
.imm:   mov eax, 0
        ret
smc_end:

msg_real:   db "real mode", 10, 0
msg_de16:   db "PASS #DE via IVT", 10, 0
msg_pm:     db "protected mode", 10, 0
msg_exc32:  db "PASS INT n, #GP error code", 10, 0
msg_paging: db "PASS paging #PF CR2", 10, 0
msg_ring3:  db "PASS ring 3, call gate", 10, 0
msg_task:   db "PASS task switch", 10, 0
msg_long:   db "long mode", 10, 0
msg_exc64:  db "PASS #GP non-canonical, #PF CR2", 10, 0
msg_smc:    db "PASS self-modifying code", 10, 0
msg_sys:    db "PASS SYSCALL/SYSRET, IRETQ to ring 3, INT from ring 3", 10, 0
msg_done:   db "ALL PASS", 10, 0

        align 8
gdt:    dq 0
        dq 0x00CF9A000000FFFF       ; 0x08 code32
        dq 0x00CF92000000FFFF       ; 0x10 data
        dq 0x00AF9A000000FFFF       ; 0x18 code64
        dq 0x00CF92000000FFFF       ; 0x20 data (SYSCALL SS)
        dq 0x00CFFA000000FFFF       ; 0x28 user code32 (DPL3)
        dq 0x00CFF2000000FFFF       ; 0x30 user data (DPL3)
        dq 0x00AFFA000000FFFF       ; 0x38 user code64 (DPL3)
        dq 0x0000890220000067       ; 0x40 TSS32 at 0x22000
        ; 0x48 call gate, DPL3, 32-bit, -> 0x08:gate_target
        dw (gate_target - $$ + ROM) & 0xFFFF, 0x08
        db 0, 0xEC
        dw (gate_target - $$ + ROM) >> 16
        dq 0x0000890240000067       ; 0x50 TSS32 #2 at 0x24000
        dq 0x0000890230000067       ; 0x58 TSS64 at 0x23000 (low half)
        dq 0                        ;      (high half)
gdt_end:
gdt_ptr: dw gdt_end - gdt - 1
        dd gdt
idt_ptr: dw 256*8 - 1
        dd 0x10000
idt64_ptr: dw 256*16 - 1
        dq 0x12000

        times 0xFFF0 - ($ - $$) db 0xFF
        bits 16
reset:  jmp 0xF000:R(start16)
        times 0x10000 - ($ - $$) db 0xFF
