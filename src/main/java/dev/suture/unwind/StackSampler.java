package dev.suture.unwind;

import dev.suture.proc.Registers;
import dev.suture.proc.ThreadState;
import dev.suture.proc.Tracer;
import dev.suture.SutureException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The stop-the-world part of taking backtraces: stop every thread, read its registers, copy its stack with one
 * bulk read (from rsp to the end of its stack mapping, at most {@link #STACK_CAP}), unwind in memory, resume.
 * Everything that can be prepared (CFI parsing, maps, buffers, native calls) is prepared before; symbolizing
 * is for afterwards, when the target runs again ({@link Backtrace#of}).
 */
public final class StackSampler {
    public static final int STACK_CAP = 1 << 20;
    /** Read this much from rsp when its mapping is not known (a thread newer than the maps we read). */
    private static final int UNKNOWN_MAPPING_READ = 64 << 10;
    private static final int MAX_FRAMES = 256;

    private final Tracer tracer;
    private final ProcessCode code;
    private final Unwinder unwinder;
    private final byte[] stack = new byte[STACK_CAP];
    private final StackCopy copy;
    private final long[] dwarf = new long[Dwarf.REGISTER_COUNT];
    private final Map<Integer, FrameBuffer> buffers = new HashMap<>();
    private long registersNanos;
    private long copyNanos;
    private long unwindNanos;

    /** The result for one thread; its frames stay valid until the next {@link #sample()}. */
    public record ThreadStack(int tid, Registers registers, FrameBuffer frames, int stackBytes, String error) {}

    /**
     * Every thread's stack and how long the target was held (nanoseconds, measured around the ptrace calls); the
     * capture part splits into reading registers, copying stacks and unwinding.
     */
    public record Snapshot(List<ThreadStack> threads, long stopNanos, long captureNanos, long resumeNanos,
                           long registersNanos, long copyNanos, long unwindNanos) {
        public long windowNanos() {
            return stopNanos + captureNanos + resumeNanos;
        }
    }

    public StackSampler(Tracer tracer, ProcessCode code) {
        this.tracer = tracer;
        this.code = code;
        this.unwinder = new Unwinder(code.code());
        this.copy = new StackCopy(new LiveMemory(tracer));
        for (int tid : tracer.threads()) {
            buffers.put(tid, new FrameBuffer(MAX_FRAMES));
        }
        tracer.warmUp();
        warmUpUnwinder();
        rehearse();
    }

    /**
     * Runs {@link #captureHeld()}'s own path while the process runs, so its first real run, inside a window,
     * meets linked, loaded and compiled code and sized buffers. Once as is: every register read fails harmlessly
     * (no thread is held) and is recorded as that thread's error, which the next capture overwrites. Then the
     * stack copies and unwinds, on the tracer thread (whose buffers they size), from where each blocked thread
     * sits (/proc/PID/task/TID/syscall), often enough for the JIT: a blocked thread's stack is the one the window
     * will copy, so the FDEs it needs get parsed too.
     */
    private void rehearse() {
        if (tracer.isHeld()) {
            return;
        }
        captureHeld();
        var blocked = new ArrayList<Registers>();
        var tids = new ArrayList<Integer>();
        for (int tid : tracer.threads()) {
            Registers at = ThreadState.blockedAt(tracer.pid(), tid);
            if (at != null) {
                blocked.add(at);
                tids.add(tid);
            }
        }
        if (blocked.isEmpty()) {
            return;
        }
        int rounds = Math.max(2, REHEARSALS / blocked.size());
        rehearsal = tracer.run(() -> {
            var out = new ArrayList<ThreadStack>();
            for (int round = 0; round < rounds; round++) {
                out.clear();
                for (int i = 0; i < blocked.size(); i++) {
                    out.add(copyAndUnwind(tids.get(i), blocked.get(i), frames(tids.get(i))));
                }
            }
            return List.copyOf(out);
        });
    }

    /** Unwinds per thread that a rehearsal runs at least (spread over the threads), about the JIT's threshold. */
    private static final int REHEARSALS = 400;
    private List<ThreadStack> rehearsal = List.of();

    /**
     * The last rehearsal's results (threads unwound from where they were blocked, not held): for a caller that
     * checks the stacks in the window to rehearse its own check. Empty when no thread was blocked.
     */
    public List<ThreadStack> rehearsal() {
        return rehearsal;
    }

    /**
     * Runs the unwinder over real FDEs of the process's modules on a synthetic stack, a few thousand times, so its
     * classes are loaded, the FDEs it will meet most are parsed and the JIT has compiled it before the first window.
     */
    private void warmUpUnwinder() {
        CodeMap map = code.code();
        byte[] fake = new byte[4096];
        var fakeStack = new StackCopy(null).reset(0x10000, fake, fake.length);
        var scratch = new FrameBuffer(8);
        long[] regs = new long[Dwarf.REGISTER_COUNT];
        for (int round = 0; round < 3000; round++) {
            CodeMap.Range range = map.size() == 0 ? null : map.range(round % map.size());
            CallFrameSection cfi = range == null ? null : range.module().ehFrame();
            if (cfi == null || cfi.size() == 0) {
                regs[Dwarf.RA] = 0x1000; // no module: exercises the frame-pointer path
            } else {
                int i = (int) ((round * 2654435761L >>> 8) % cfi.size());
                regs[Dwarf.RA] = cfi.start(i) + range.module().loadBias() + 1;
            }
            regs[Dwarf.RSP] = 0x10000 + 8 * (round % 64);
            regs[Dwarf.RBP] = 0x10000 + 2048;
            unwinder.unwind(regs, fakeStack, scratch);
        }
    }

    /** Stops the process, unwinds every thread, resumes it. */
    public Snapshot sample() {
        return tracer.run(() -> {
            long t0 = System.nanoTime();
            tracer.stopAll();
            long t1 = System.nanoTime();
            List<ThreadStack> out;
            long t2;
            try {
                out = captureHeld();
            } finally {
                t2 = System.nanoTime();
                tracer.resumeAll();
            }
            long t3 = System.nanoTime();
            return new Snapshot(out, t1 - t0, t2 - t1, t3 - t2, registersNanos, copyNanos, unwindNanos);
        });
    }

    /**
     * Reads, copies and unwinds every thread of a process the caller holds stopped (between
     * {@link Tracer#stopAll()} and {@link Tracer#resumeAll()}, inside {@link Tracer#run}): for callers that do
     * more in the same window, such as installing a patch once no thread runs the code it replaces.
     */
    public List<ThreadStack> captureHeld() {
        registersNanos = copyNanos = unwindNanos = 0;
        var out = new ArrayList<ThreadStack>();
        for (int tid : tracer.threads()) {
            out.add(sampleThread(tid));
        }
        return List.copyOf(out);
    }

    private ThreadStack sampleThread(int tid) {
        FrameBuffer frames = frames(tid);
        Registers regs;
        long t0 = System.nanoTime();
        try {
            regs = tracer.registers(tid);
        } catch (SutureException e) {
            frames.clear();
            return new ThreadStack(tid, null, frames, 0, "registers unreadable: " + e.getMessage());
        }
        registersNanos += System.nanoTime() - t0;
        return copyAndUnwind(tid, regs, frames);
    }

    private FrameBuffer frames(int tid) {
        // no computeIfAbsent: linking its lambda on the first call would cost the window most of a millisecond
        FrameBuffer frames = buffers.get(tid);
        if (frames == null) {
            frames = new FrameBuffer(MAX_FRAMES);
            buffers.put(tid, frames);
        }
        return frames;
    }

    /** Copies the stack above {@code regs}' rsp with one read and unwinds it in memory. */
    private ThreadStack copyAndUnwind(int tid, Registers regs, FrameBuffer frames) {
        long t1 = System.nanoTime();
        for (int r = 0; r < Dwarf.REGISTER_COUNT; r++) {
            dwarf[r] = regs.dwarf(r);
        }
        long rsp = regs.rsp();
        long end = code.mappingEnd(rsp);
        long want = end == 0 ? UNKNOWN_MAPPING_READ : Math.min(end - rsp, STACK_CAP);
        int got = tracer.read(rsp, stack, 0, (int) want);
        copy.reset(rsp, stack, got);
        long t2 = System.nanoTime();
        unwinder.unwind(dwarf, copy, frames);
        long t3 = System.nanoTime();
        copyNanos += t2 - t1;
        unwindNanos += t3 - t2;
        return new ThreadStack(tid, regs, frames, got, got == 0 ? "stack at 0x" + Long.toHexString(rsp)
                + " unreadable" : null);
    }

    /** The last capture's time (ns) spent reading registers, copying stacks and unwinding: {registers, copy, unwind}. */
    public long[] captureNanos() {
        return new long[] {registersNanos, copyNanos, unwindNanos};
    }

    /** Reads outside the stack copy from the stopped process itself, one small read each. */
    private static final class LiveMemory implements Memory {
        private final Tracer tracer;
        private final byte[] word = new byte[8];

        LiveMemory(Tracer tracer) {
            this.tracer = tracer;
        }

        @Override
        public long read(long address, int size) {
            if (tracer.read(address, word, 0, size) != size) {
                throw new UnwindException("address 0x" + Long.toHexString(address) + " is not readable");
            }
            long v = 0;
            for (int i = size - 1; i >= 0; i--) {
                v = v << 8 | (word[i] & 0xffL);
            }
            return v;
        }
    }
}
