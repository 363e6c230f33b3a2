package dev.suture.unwind;

/**
 * The raw result of unwinding one thread: pc, sp, CFA and method per frame in preallocated arrays, filled inside
 * the stop-the-world window and symbolized after the target runs again. Reusable.
 */
public final class FrameBuffer {
    final long[] pc;
    final long[] sp;
    final long[] cfa;
    final FrameMethod[] method;
    final boolean[] exact;
    int count;
    StackEnd end;
    String error;

    public FrameBuffer(int capacity) {
        pc = new long[capacity];
        sp = new long[capacity];
        cfa = new long[capacity];
        method = new FrameMethod[capacity];
        exact = new boolean[capacity];
    }

    public int capacity() {
        return pc.length;
    }

    public int count() {
        return count;
    }

    public long pc(int i) {
        return pc[i];
    }

    public long sp(int i) {
        return sp[i];
    }

    /** The CFA of frame {@code i}, or 0 when it was not computed (the last frame, or unwinding it failed). */
    public long cfa(int i) {
        return cfa[i];
    }

    public FrameMethod method(int i) {
        return method[i];
    }

    /**
     * True when frame {@code i}'s pc is the instruction to execute (frame #0, or a frame interrupted by a signal);
     * false for return addresses, whose call instruction is at pc-1.
     */
    public boolean exactPc(int i) {
        return exact[i];
    }

    /**
     * The first frame executing in {@code [start, end)}: frame #0's pc, or a return address whose call instruction
     * (pc-1) lies there. -1 if none. Callers proving code is not live must also require {@link #end()} not to be
     * {@link StackEnd#ERROR} (frames past an error are unknown).
     */
    public int firstFrameIn(long start, long end) {
        for (int i = 0; i < count; i++) {
            if (executesIn(i, start, end)) {
                return i;
            }
        }
        return -1;
    }

    /** Whether frame {@code i} executes in {@code [start, end)}: its pc, or for a return address its call (pc-1). */
    public boolean executesIn(int i, long start, long end) {
        long at = exact[i] ? pc[i] : pc[i] - 1;
        return Long.compareUnsigned(at, start) >= 0 && Long.compareUnsigned(at, end) < 0;
    }

    public StackEnd end() {
        return end;
    }

    /** Why unwinding stopped with {@link StackEnd#ERROR}, else null. */
    public String error() {
        return error;
    }

    void clear() {
        count = 0;
        end = null;
        error = null;
    }

    void add(long framePc, long frameSp, FrameMethod how, boolean exactPc) {
        pc[count] = framePc;
        sp[count] = frameSp;
        cfa[count] = 0;
        method[count] = how;
        exact[count] = exactPc;
        count++;
    }
}
