package dev.suture.proc;

/**
 * A thread's general registers: every field of the kernel's x86-64 {@code struct user_regs_struct}, in its order
 * (what PTRACE_GETREGS returns), including {@code orig_rax} (the syscall number while inside a syscall, -1
 * otherwise) and the TLS bases {@code fs_base}/{@code gs_base}.
 */
public record Registers(
        long r15, long r14, long r13, long r12, long rbp, long rbx, long r11, long r10, long r9, long r8,
        long rax, long rcx, long rdx, long rsi, long rdi, long orig_rax, long rip, long cs, long eflags, long rsp,
        long ss, long fs_base, long gs_base, long ds, long es, long fs, long gs) {

    /** Number of words in user_regs_struct. */
    public static final int WORDS = 27;

    /** From the 27 words of user_regs_struct, in the kernel's order. */
    public static Registers of(long[] w) {
        return new Registers(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12],
                w[13], w[14], w[15], w[16], w[17], w[18], w[19], w[20], w[21], w[22], w[23], w[24], w[25], w[26]);
    }

    public long[] words() {
        return new long[] {r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip,
            cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs};
    }

    /**
     * The register with DWARF number {@code regno} (x86-64 psABI: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi,
     * 6 rbp, 7 rsp, 8-15 r8-r15, 16 the return address column, here rip).
     */
    public long dwarf(int regno) {
        return switch (regno) {
            case 0 -> rax;
            case 1 -> rdx;
            case 2 -> rcx;
            case 3 -> rbx;
            case 4 -> rsi;
            case 5 -> rdi;
            case 6 -> rbp;
            case 7 -> rsp;
            case 8 -> r8;
            case 9 -> r9;
            case 10 -> r10;
            case 11 -> r11;
            case 12 -> r12;
            case 13 -> r13;
            case 14 -> r14;
            case 15 -> r15;
            case 16 -> rip;
            default -> throw new IllegalArgumentException("no DWARF register " + regno + " among the general registers");
        };
    }

    public Registers withRip(long value) {
        long[] w = words();
        w[16] = value;
        return of(w);
    }

    public Registers withRsp(long value) {
        long[] w = words();
        w[19] = value;
        return of(w);
    }

    public Registers withRax(long value) {
        long[] w = words();
        w[10] = value;
        return of(w);
    }

    public Registers withOrigRax(long value) {
        long[] w = words();
        w[15] = value;
        return of(w);
    }

    /** These registers set up for the x86-64 syscall convention: number in rax, arguments in rdi rsi rdx r10 r8 r9. */
    public Registers forSyscall(long rip, long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
        long[] w = words();
        w[16] = rip;
        w[10] = nr;
        w[15] = -1; // not inside a syscall: the kernel must not restart an interrupted one into ours
        w[14] = a0;
        w[13] = a1;
        w[12] = a2;
        w[7] = a3;
        w[9] = a4;
        w[8] = a5;
        return of(w);
    }
}
