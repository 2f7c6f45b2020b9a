/*
 * vmbench micro-guest: entry and the few things only assembly can do.
 * PVH (XEN_ELFNOTE_PHYS32_ENTRY): QEMU enters _start32 in 32-bit protected
 * mode, paging off. We identity-map the first 4 GiB with 2 MiB pages (user
 * accessible: ring-3 rows run from the same image), enable SSE and SYSCALL,
 * enter long mode and call rust_main.
 */
/* From 32-bit protected mode with paging off, on boot.s's page tables:
 * PAE, SSE, EFER.LME|SCE, paging on, the 64-bit GDT, then a far jump to
 * `target` in long mode. Both CPUs take this path. */
.macro ENTER_LONG_MODE target
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax   /* PAE | OSFXSR | OSXMMEXCPT */
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx      /* EFER */
    rdmsr
    orl $((1 << 8) | 1), %eax   /* LME | SCE */
    wrmsr
    movl %cr0, %eax
    andl $~((1 << 2) | (1 << 3)), %eax             /* no EM, no TS: SSE usable */
    orl $((1 << 31) | (1 << 1) | 1), %eax          /* PG | MP | PE */
    movl %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $\target
.endm

/* Long mode: the flat data selector everywhere, FS and GS null. */
.macro FLAT_DATA_SEGMENTS
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
.endm

.section .note.pvh, "a"
.balign 4
.long 4                     /* name size: "Xen\0" */
.long 4                     /* descriptor size */
.long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
.asciz "Xen"
.balign 4
.long _start32

.section .text.boot, "ax"
.code32
.globl _start32
_start32:
    cli
    movl $boot_stack_top, %esp
    movl $pdpt, %eax
    orl $7, %eax                /* present | writable | user */
    movl %eax, pml4
    movl $pds, %eax
    orl $7, %eax
    movl %eax, pdpt
    addl $4096, %eax
    movl %eax, pdpt + 8
    addl $4096, %eax
    movl %eax, pdpt + 16
    addl $4096, %eax
    movl %eax, pdpt + 24
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x87, %eax             /* present | writable | user | 2 MiB page */
    movl %eax, pds(,%ecx,8)
    movl $0, pds + 4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b
    ENTER_LONG_MODE start64

.code64
start64:
    FLAT_DATA_SEGMENTS
    movq $boot_stack_top, %rsp
    /* XSAVE-managed FPU state: enable XSAVE and XCR0 = x87 | SSE, as an OS
     * would (KVM hosts that context-switch guest FPU state with XSAVE expect it). */
    movl $1, %eax
    cpuid
    btl $26, %ecx
    jnc 4f
    movq %cr4, %rax
    orq $(1 << 18), %rax
    movq %rax, %cr4
    xorl %ecx, %ecx
    xorl %edx, %edx
    movl $3, %eax
    xsetbv
4:  call rust_main
2:  hlt
    jmp 2b

/* ---- exceptions: push (error code, vector) and report ---------------- */
.macro ISR_NOERR n
isr\n:
    pushq $0
    pushq $\n
    jmp isr_common
.endm
.macro ISR_ERR n
isr\n:
    pushq $\n
    jmp isr_common
.endm
.irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
ISR_NOERR \n
.endr
.irp n, 8,10,11,12,13,14,17,21,29,30
ISR_ERR \n
.endr
isr_common:
    movq %rsp, %rdi             /* [vector, error, rip, cs, rflags, rsp, ss] */
    andq $-16, %rsp
    call rust_exception
3:  hlt
    jmp 3b

/* ---- the interrupt rows' IPI (vector vmbench_abi::IPI_VECTOR): EOI,
 * then count, on whichever CPU takes it ------------------------------- */
.globl spurious_isr
spurious_isr:                   /* the APIC's spurious vector: no EOI */
    iretq
.globl ipi_isr
ipi_isr:
    pushq %rax
    movq apic_eoi_addr(%rip), %rax
    movl $0, (%rax)
    lock incq ipi_count(%rip)
    popq %rax
    iretq

.section .rodata
.balign 8
.globl isr_table
isr_table:
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr\n
.endr

/* ---- SYSCALL: rax = 0 back to ring 0 (ends enter_user), 1 null, 2 cpuid,
 * 3 outb to port rdi. Returns to ring 3 with IRETQ, not SYSRETQ: IRETQ is
 * the return every hypervisor handles (kvm_pvm faults an unmodified guest's
 * SYSRETQ), and on hardware it costs a little more. The null-syscall row
 * times exactly this round trip; the user-to-kernel rows include it (nothing
 * subtracts it: compare them with null-syscall). */
.section .text
.globl syscall_entry
syscall_entry:
    movq %rsp, user_rsp_save(%rip)
    leaq syscall_stack_top(%rip), %rsp
    testq %rax, %rax
    jz return_to_kernel
    cmpq $2, %rax
    je 2f
    cmpq $3, %rax
    je 3f
    jmp 9f
2:  pushq %rbx
    pushq %rcx
    xorl %eax, %eax
    xorl %ecx, %ecx
    cpuid
    popq %rcx
    popq %rbx
    jmp 9f
3:  movl %edi, %edx
    xorl %eax, %eax
    outb %al, %dx
9:  pushq $0x1b                 /* SS */
    pushq user_rsp_save(%rip)   /* RSP */
    pushq %r11                  /* RFLAGS saved by SYSCALL */
    pushq $0x23                 /* CS */
    pushq %rcx                  /* RIP saved by SYSCALL */
    iretq
.globl return_to_kernel
return_to_kernel:
    movq kernel_ctx_rsp(%rip), %rsp   /* back into enter_user's frame */
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

/* enter_user(entry = rdi, user stack top = rsi, argument = rdx): returns when
 * the user code makes SYSCALL 0. IOPL 3 lets ring 3 do port I/O; IF stays 0. */
.globl enter_user
enter_user:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, kernel_ctx_rsp(%rip)
    pushq $0x1b                 /* SS: user data | RPL 3 */
    pushq %rsi
    pushq $0x3002               /* RFLAGS: IOPL 3, reserved bit 1 */
    pushq $0x23                 /* CS: user code | RPL 3 */
    pushq %rdi
    movq %rdx, %rdi
    iretq

/* ---- the second CPU: real mode -> long mode ----------------------------
 * Copied to AP_TRAMPOLINE (below 1 MiB, where a STARTUP IPI can point) and
 * entered there in real mode; every address inside it is relative to that
 * copy. It loads a flat 32-bit GDT of its own, then takes the boot CPU's
 * path: the same page tables, EFER, CR0 and GDT, and a stack of its own. */
.set AP_TRAMPOLINE, 0x8000
.section .rodata.trampoline, "a"
.code16
.globl ap_trampoline, ap_trampoline_end
ap_trampoline:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl ap_gdt_ptr - ap_trampoline + AP_TRAMPOLINE
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(ap_pm32 - ap_trampoline + AP_TRAMPOLINE)
.code32
ap_pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    ENTER_LONG_MODE ap_start64
.balign 8
ap_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF    /* 0x08 code, 32-bit */
    .quad 0x00CF92000000FFFF    /* 0x10 data */
ap_gdt_ptr:
    .word 23
    .long ap_gdt - ap_trampoline + AP_TRAMPOLINE
ap_trampoline_end:

.section .text
.code64
ap_start64:
    FLAT_DATA_SEGMENTS
    leaq ap_stack_top(%rip), %rsp
    call rust_ap_main
5:  hlt
    jmp 5b

/* ---- data ------------------------------------------------------------ */
.section .data
.balign 16
.globl gdt
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08 kernel code, 64-bit */
    .quad 0x00CF92000000FFFF    /* 0x10 kernel data */
    .quad 0x00CFF2000000FFFF    /* 0x18 user data (0x1b) */
    .quad 0x00AFFA000000FFFF    /* 0x20 user code, 64-bit (0x23) */
    .quad 0, 0                  /* 0x28 TSS, filled in by Rust */
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt
kernel_ctx_rsp:
    .quad 0
.globl apic_eoi_addr, ipi_count
apic_eoi_addr:
    .quad 0
ipi_count:
    .quad 0
user_rsp_save:
    .quad 0

.section .bss
.balign 4096
.globl pml4, pdpt, extra_pds
pml4:       .skip 4096
pdpt:       .skip 4096
pds:        .skip 4 * 4096
extra_pds:  .skip 8 * 4096
.balign 16
boot_stack: .skip 65536
boot_stack_top:
syscall_stack: .skip 16384
syscall_stack_top:
ap_stack: .skip 16384
ap_stack_top:
