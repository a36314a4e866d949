/* ckpt_safepoint_trampoline: the slow path of Session::safepoint() on x86-64
 * System V (Linux), entered from an inline-asm `call` that declares no
 * register clobbers but rax and the flags. It saves every other
 * general-purpose register and the whole extended state (XSAVE: x87, SSE,
 * AVX, AVX-512 ...; FXSAVE where XSAVE is off), calls
 * ckpt_safepoint_slow_c(session) and restores everything. So a safepoint in
 * a hot loop does not make the compiler give up the vector registers that
 * hold the loop's constants (see docs/performance.md).
 *
 * In:  rdi = ckpt::Session*.   Out: rax = the Event, or -1 (exception pending).
 * The caller has already stepped over the 128-byte red zone. */
    .hidden ckpt_xstate_size
    .hidden ckpt_xstate_xsave
    .hidden ckpt_safepoint_slow_c
    .text
    .globl ckpt_safepoint_trampoline
    .type ckpt_safepoint_trampoline, @function
    .p2align 4
ckpt_safepoint_trampoline:
    .cfi_startproc
    pushq %rbp
    .cfi_def_cfa_offset 16
    .cfi_offset %rbp, -16
    movq %rsp, %rbp
    .cfi_def_cfa_register %rbp
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    movq ckpt_xstate_size(%rip), %rax
    subq %rax, %rsp
    andq $-64, %rsp
    cmpb $0, ckpt_xstate_xsave(%rip)
    je 1f
    /* XSAVE (standard form) needs the 64-byte header zeroed. */
    xorl %eax, %eax
    movq %rax, 512(%rsp)
    movq %rax, 520(%rsp)
    movq %rax, 528(%rsp)
    movq %rax, 536(%rsp)
    movq %rax, 544(%rsp)
    movq %rax, 552(%rsp)
    movq %rax, 560(%rsp)
    movq %rax, 568(%rsp)
    movl $-1, %eax
    movl $-1, %edx
    xsave64 (%rsp)
    jmp 2f
1:
    fxsave64 (%rsp)
2:
    movq -32(%rbp), %rdi            /* the Session*, as pushed */
    call ckpt_safepoint_slow_c
    movq %rax, %rbx
    cmpb $0, ckpt_xstate_xsave(%rip)
    je 3f
    movl $-1, %eax
    movl $-1, %edx
    xrstor64 (%rsp)
    jmp 4f
3:
    fxrstor64 (%rsp)
4:
    movq %rbx, %rax
    leaq -72(%rbp), %rsp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbp
    .cfi_def_cfa %rsp, 8
    ret
    .cfi_endproc
    .size ckpt_safepoint_trampoline, .-ckpt_safepoint_trampoline

    .section .note.GNU-stack,"",@progbits
