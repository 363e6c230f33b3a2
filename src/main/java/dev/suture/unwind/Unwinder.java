package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;

/**
 * Walks a thread's frames from its registers and a copy of its stack: by CFI where the pc has an FDE (looking up
 * pc-1 for return addresses, the pc itself after a signal frame), else by the rbp chain. Stops at the outermost
 * frame, a zero pc, a stack pointer that does not grow, the buffer's capacity, or an error for the frame that
 * could not be unwound. Reuses its arrays and context: unwinding allocates nothing unless it fails.
 * Not thread-safe; use one per thread of the tool.
 */
public final class Unwinder {
    private static final int ALL_VALID = (1 << REGISTER_COUNT) - 1;

    private final CodeMap code;
    private final UnwindContext context = new UnwindContext();
    private final DwarfExpression expression = new DwarfExpression();
    private final long[] regs = new long[REGISTER_COUNT];
    private final long[] next = new long[REGISTER_COUNT];
    private final CallFrameSection[] section = new CallFrameSection[1];
    private int valid;

    public Unwinder(CodeMap code) {
        this.code = code;
    }

    /**
     * Unwinds from {@code registers} (DWARF numbering: rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8..r15, rip) into
     * {@code out}, reading saved values from {@code memory}.
     */
    public void unwind(long[] registers, StackCopy memory, FrameBuffer out) {
        out.clear();
        System.arraycopy(registers, 0, regs, 0, REGISTER_COUNT);
        valid = ALL_VALID;
        boolean exactPc = true;
        out.add(regs[RA], regs[RSP], FrameMethod.REGISTERS, true);
        while (true) {
            if (out.count == out.capacity()) {
                out.end = StackEnd.FRAME_LIMIT;
                return;
            }
            long pc = regs[RA];
            long sp = regs[RSP];
            int frame = out.count - 1;
            FrameMethod how;
            boolean signalFrame = false;
            try {
                long lookup = exactPc ? pc : pc - 1;
                CodeModule module = code.moduleAt(lookup);
                FrameDescriptionEntry fde = module == null ? null : module.find(lookup, section);
                if (fde != null) {
                    context.evaluate(section[0], fde, lookup - module.loadBias());
                    out.cfa[frame] = stepByCfi(memory);
                    signalFrame = fde.cie().signalFrame();
                    how = FrameMethod.CFI;
                } else {
                    out.cfa[frame] = stepByFramePointer(memory, pc);
                    how = FrameMethod.FRAME_POINTER;
                }
            } catch (UnwindException e) {
                out.end = StackEnd.ERROR;
                out.error = "frame #" + frame + " (pc 0x" + Long.toHexString(pc) + "): " + e.getMessage();
                return;
            }
            if ((valid & (1 << RA)) == 0) {
                out.end = StackEnd.OUTERMOST;
                return;
            }
            if (regs[RA] == 0) {
                out.end = StackEnd.ZERO_PC;
                return;
            }
            if (!signalFrame && Long.compareUnsigned(regs[RSP], sp) <= 0) {
                out.end = StackEnd.STACK_NOT_INCREASING;
                return;
            }
            out.add(regs[RA], regs[RSP], how, signalFrame);
            exactPc = signalFrame;
        }
    }

    /** Applies the evaluated row: computes the CFA and the caller's registers into {@code regs}. */
    private long stepByCfi(StackCopy memory) {
        CallFrameSection s = context.section();
        long cfa = switch (context.cfa()) {
            case CfaRule.RegisterAndOffset rule -> {
                if (!known(rule.register())) {
                    throw new UnwindException("the CFA is based on register " + rule.register()
                            + ", whose value is not known");
                }
                yield regs[rule.register()] + rule.offset();
            }
            case CfaRule.Expression rule ->
                    expression.evaluate(s.name(), s.bytes(), rule.start(), rule.end(), false, 0, regs, valid, memory);
        };
        int nextValid = 0;
        for (int r = 0; r < REGISTER_COUNT; r++) {
            // SameValue first: most registers of most rows keep it, and the cases are tried in order
            switch (context.rule(r)) {
                case RegisterRule.SameValue _ -> {
                    if (r == RSP) {
                        next[r] = cfa; // on x86-64 the CFA is the caller's rsp
                    } else if (known(r)) {
                        next[r] = regs[r];
                    } else {
                        continue;
                    }
                }
                case RegisterRule.Offset rule -> next[r] = memory.read(cfa + rule.offset(), 8);
                case RegisterRule.Undefined _ -> {
                    continue;
                }
                case RegisterRule.ValOffset rule -> next[r] = cfa + rule.offset();
                case RegisterRule.Register rule -> {
                    if (!known(rule.register())) {
                        continue;
                    }
                    next[r] = regs[rule.register()];
                }
                case RegisterRule.Expression rule -> next[r] = memory.read(expression.evaluate(s.name(), s.bytes(),
                        rule.start(), rule.end(), true, cfa, regs, valid, memory), 8);
                case RegisterRule.ValExpression rule -> next[r] = expression.evaluate(s.name(), s.bytes(),
                        rule.start(), rule.end(), true, cfa, regs, valid, memory);
            }
            nextValid |= 1 << r;
        }
        System.arraycopy(next, 0, regs, 0, REGISTER_COUNT);
        valid = nextValid;
        return cfa;
    }

    /** Whether DWARF register {@code r} has a known value in the frame being stepped. */
    private boolean known(int r) {
        return r >= 0 && r < REGISTER_COUNT && (valid & (1 << r)) != 0;
    }

    /** Without CFI: assumes the standard prologue (push rbp; mov rbp, rsp), so [rbp] = caller's rbp, [rbp+8] = RA. */
    private long stepByFramePointer(StackCopy memory, long pc) {
        if ((valid & (1 << RBP)) == 0) {
            throw new UnwindException("no CFI for this pc and rbp is unknown");
        }
        long rbp = regs[RBP];
        if (Long.compareUnsigned(rbp, regs[RSP]) < 0) {
            throw new UnwindException("no CFI for this pc and rbp 0x" + Long.toHexString(rbp)
                    + " is below rsp: not a frame pointer");
        }
        long cfa = rbp + 16;
        long returnAddress = memory.read(rbp + 8, 8);
        long callerRbp = memory.read(rbp, 8);
        regs[RA] = returnAddress;
        regs[RSP] = cfa;
        regs[RBP] = callerRbp;
        // other registers are unknown in the caller once we leave the CFI world
        valid = 1 << RA | 1 << RSP | 1 << RBP;
        return cfa;
    }
}
