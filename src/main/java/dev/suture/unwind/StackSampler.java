package dev.suture.unwind;

import dev.suture.proc.Registers;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.ThreadState;
import dev.suture.sys.Syscalls;
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
        this.copy = new StackCopy(RemoteMemory.of(tracer));
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
        // what the threads that run (not rehearsed) will want: the main thread's stack mapping, 64 KB for others
        long running = 0;
        for (int tid : tracer.threads()) {
            if (!tids.contains(tid)) {
                running += tid == tracer.pid() ? Math.min(STACK_CAP, code.mainStackSize()) : UNKNOWN_MAPPING_READ;
            }
        }
        int rounds = Math.max(2, REHEARSALS / Math.max(1, blocked.size()));
        var regs = blocked.toArray(Registers[]::new);
        var errors = new String[regs.length];
        long guess = running;
        rehearsal = tracer.onTracerThread(() -> {
            List<ThreadStack> out = List.of();
            for (int round = 0; regs.length > 0 && round < rounds; round++) {
                out = copyAndUnwind(tids, regs, errors);
            }
            room = (int) Math.min(BATCH_CAP, 2L * lastTotal + guess);
            reserve();
            return out;
        });
    }

    /**
     * The bytes the window's one read should find room for (stacks that grow included), in buffers already
     * touched: the first touch of a fresh page of this JVM's costs 10-20 us on this project's 2-core VM, and a
     * window that grew its buffers for a thread with 64 KB of stack took 1.5 ms instead of 0.3.
     */
    private int room;

    /** The bytes the next window's read has room for without growing a buffer. */
    int room() {
        return Math.min(room, batch.length);
    }

    /** Grows, if need be, the native read buffer and the batch to {@link #room} bytes: on the tracer thread. */
    private void reserve() {
        Syscalls.reserve(room); // zeroed by its arena: every page touched now
        if (batch.length < room) {
            batch = new byte[room]; // zeroed by the JVM
        }
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
     * classes are loaded, the FDEs it will meet most are parsed, the CFI rules it will meet are made (its context
     * keeps them: making one allocates) and the JIT has compiled it before the first window.
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
                // at points across the function too, not only its start: the rules met there get made now
                long span = i + 1 < cfi.size() ? Math.clamp(cfi.start(i + 1) - cfi.start(i), 1, 4096) : 1;
                regs[Dwarf.RA] = cfi.start(i) + range.module().loadBias() + 1 + span * (round % 4) / 4;
            }
            regs[Dwarf.RSP] = 0x10000 + 8 * (round % 64);
            regs[Dwarf.RBP] = 0x10000 + 2048;
            unwinder.unwind(regs, fakeStack, scratch);
        }
    }

    /** Stops the process, unwinds every thread, resumes it. */
    public Snapshot sample() {
        return tracer.onTracerThread(() -> {
            long t0 = System.nanoTime();
            tracer.stopAll("stacks");
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
     * {@link Tracer#stopAll(String)} and {@link Tracer#resumeAll()}, inside {@link Tracer#onTracerThread}): for callers that do
     * more in the same window, such as installing a patch once no thread runs the code it replaces.
     */
    public List<ThreadStack> captureHeld() {
        registersNanos = copyNanos = unwindNanos = 0;
        List<Integer> tids = tracer.threads();
        var regs = new Registers[tids.size()];
        var errors = new String[tids.size()];
        long t0 = System.nanoTime();
        for (int i = 0; i < regs.length; i++) {
            try {
                regs[i] = tracer.registers(tids.get(i));
            } catch (SutureException e) {
                errors[i] = "registers unreadable: " + e.getMessage();
            }
        }
        registersNanos = System.nanoTime() - t0;
        return copyAndUnwind(tids, regs, errors);
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

    /** At most this much stack is copied with the one read for all threads; threads past it are read alone. */
    private static final int BATCH_CAP = 8 << 20;
    private byte[] batch = new byte[64 << 10];
    private long[] rangeAt = new long[0];
    private int[] rangeLength = new int[0];
    private int[] offsetOf = new int[0];
    private int lastTotal;
    private int lastCount;

    /**
     * Reads again, while the process runs, the stacks the last capture (or rehearsal) read, just before a window
     * captures them: the window's one read then meets memory read a moment ago. Measured on a target with 128
     * threads (600 KB of stack), that read took 1.0-1.6 ms when the stacks were last read seconds before, and
     * 0.15-0.25 ms right after this.
     */
    public void prefetch() {
        room = (int) Math.max(room, Math.min(BATCH_CAP, 2L * lastTotal));
        reserve();
        if (lastCount > 0) {
            tracer.readRanges(rangeAt, rangeLength, lastCount, batch);
        }
    }

    /**
     * Copies the stack above each thread's rsp (to the end of its mapping, at most {@link #STACK_CAP}), all with
     * one process_vm_readv (up to {@link #BATCH_CAP} bytes in all), and unwinds each in memory. A range the
     * kernel could not read to its end, and every range after it, is read again alone; a thread past the cap is
     * read alone. A thread without registers ({@code regs[i]} null) gets {@code errors[i]}.
     */
    private List<ThreadStack> copyAndUnwind(List<Integer> tids, Registers[] regs, String[] errors) {
        long t1 = System.nanoTime();
        int n = regs.length;
        if (offsetOf.length < n) {
            offsetOf = new int[n];
            rangeAt = new long[Math.min(n, Syscalls.MAX_RANGES)];
            rangeLength = new int[rangeAt.length];
        }
        int count = 0;
        int total = 0;
        for (int i = 0; i < n; i++) {
            offsetOf[i] = -1;
            int want = regs[i] == null ? 0 : wanted(regs[i].rsp());
            if (regs[i] != null && count < rangeAt.length && total + want <= BATCH_CAP) {
                rangeAt[count] = regs[i].rsp();
                rangeLength[count++] = want;
                offsetOf[i] = total;
                total += want;
            }
        }
        lastTotal = total;
        if (batch.length < total) {
            batch = new byte[Math.max(total, 2 * batch.length)];
        }
        long got = count == 0 ? 0 : tracer.readRanges(rangeAt, rangeLength, count, batch);
        lastCount = count;
        long unwinding = 0;
        var out = new ArrayList<ThreadStack>(n);
        for (int i = 0; i < n; i++) {
            int tid = tids.get(i);
            FrameBuffer frames = frames(tid);
            if (regs[i] == null) {
                frames.clear();
                out.add(new ThreadStack(tid, null, frames, 0, errors[i]));
                continue;
            }
            long rsp = regs[i].rsp();
            int want = wanted(rsp);
            int have;
            if (offsetOf[i] >= 0) {
                have = (int) Math.clamp(got - offsetOf[i], 0, want);
                if (have < want) {
                    have = tracer.read(rsp, batch, offsetOf[i], want); // past where the one read stopped
                }
                copy.reset(rsp, batch, offsetOf[i], have);
            } else {
                have = tracer.read(rsp, stack, 0, want);
                copy.reset(rsp, stack, 0, have);
            }
            for (int r = 0; r < Dwarf.REGISTER_COUNT; r++) {
                dwarf[r] = regs[i].dwarf(r);
            }
            long u0 = System.nanoTime();
            unwinder.unwind(dwarf, copy, frames);
            unwinding += System.nanoTime() - u0;
            out.add(new ThreadStack(tid, regs[i], frames, have, have == 0 ? "stack at 0x" + Long.toHexString(rsp)
                    + " unreadable" : null));
        }
        copyNanos = System.nanoTime() - t1 - unwinding;
        unwindNanos = unwinding;
        return List.copyOf(out);
    }

    /** How much stack to copy above {@code rsp}: to the end of its mapping, at most {@link #STACK_CAP}. */
    private int wanted(long rsp) {
        long end = code.mappingEnd(rsp);
        return (int) (end == 0 ? UNKNOWN_MAPPING_READ : Math.clamp(end - rsp, 0, STACK_CAP));
    }

    /** The last capture's time (ns) spent reading registers, copying stacks and unwinding: {registers, copy, unwind}. */
    public long[] captureNanos() {
        return new long[] {registersNanos, copyNanos, unwindNanos};
    }
}
