package dev.suture.live;

import dev.suture.elf.AddressRanges;
import dev.suture.proc.Mapping;
import dev.suture.proc.Registers;
import dev.suture.proc.Tracer;
import dev.suture.unwind.FrameBuffer;
import dev.suture.unwind.FrameMethod;
import dev.suture.unwind.StackEnd;
import dev.suture.unwind.StackSampler;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * The check of principle 5, run inside the stop-the-world window: no thread may be executing, or hold a return
 * address into, code that is about to be replaced (or, on revert, removed). For every held thread it reads the
 * registers, copies the live part of its stack with one bulk read and unwinds it in memory by CFI
 * ({@link StackSampler#captureHeld}), then looks at the pc and every return address. Buffers, CFI and the
 * unwinder's code are prepared before the window.
 *
 * <p>A thread whose unwind cannot be trusted to the end (an error, a frame stepped by frame pointer only — such
 * as a frame in code without CFI: a region's far-access thunks, a region whose .eh_frame {@link RegionCode} could
 * not trust — or too many frames) is checked conservatively instead: every aligned word of its live stack that
 * points into a forbidden range counts as a return address. A stale word can make a function look busy (the
 * transaction then retries); it can never make a busy function look idle.
 */
final class StackGuard {
    /**
     * A thread found inside forbidden code: which thread, which code, at which frame (0 = its pc). When its unwind
     * is trusted, {@code exitAddress} is the return address of its outermost frame in forbidden code and
     * {@code exitSp} the stack pointer that return leaves: where it can be waited for ({@link #waitable}).
     */
    record Blocker(int tid, String function, int frame, long address, long stackSlot, long exitAddress, long exitSp) {
        String describe(int pid) {
            String where = frame == 0 ? "is executing it (pc 0x" + Long.toHexString(address) + ")"
                    : "has a return address into it (0x" + Long.toHexString(address) + ") in its stack at 0x"
                    + Long.toHexString(stackSlot) + ", frame #" + frame;
            return "pid " + pid + " thread " + tid + ": " + function + " " + where;
        }

        /** Whether it can be let run to the return of its outermost busy frame and held there. */
        boolean waitable() {
            return exitAddress != 0;
        }
    }

    private static final int MAX_STACK = 8 << 20;

    private final List<Image.Range> forbidden;
    private final long[] starts;
    private final long[] ends;
    private AddressRanges stacks;
    private final Supplier<long[][]> remap;
    private final StackSampler sampler;
    private byte[] buffer = new byte[256 << 10];

    /**
     * {@code forbidden}: the code no thread may be in; {@code mappings}: every readable mapping of the process as
     * {start, end} pairs sorted by start, used to find how far each thread's stack extends above its rsp.
     */
    StackGuard(List<Image.Range> forbidden, StackSampler sampler, long[][] mappings, Supplier<long[][]> remap) {
        this.remap = remap;
        this.sampler = sampler;
        this.forbidden = List.copyOf(forbidden);
        starts = new long[forbidden.size()];
        ends = new long[forbidden.size()];
        for (int i = 0; i < starts.length; i++) {
            starts[i] = forbidden.get(i).start();
            ends[i] = forbidden.get(i).end();
        }
        setMappings(mappings);
    }

    private void setMappings(long[][] mappings) {
        long[] from = new long[mappings.length];
        long[] to = new long[mappings.length];
        for (int i = 0; i < mappings.length; i++) {
            from[i] = mappings[i][0];
            to[i] = mappings[i][1];
        }
        stacks = new AddressRanges(from, to);
    }

    /** {start, end} pairs of the readable mappings, sorted: where stacks can be. */
    static long[][] ranges(List<Mapping> maps) {
        return maps.stream().filter(Mapping::readable).map(m -> new long[] {m.start(), m.end()})
                .sorted((a, b) -> Long.compareUnsigned(a[0], b[0])).toArray(long[][]::new);
    }

    /** The threads found in forbidden code (empty when every thread is clear). Call with all held. */
    List<Blocker> check(Tracer tracer) {
        if (forbidden.isEmpty()) {
            return List.of();
        }
        return inspect(tracer, sampler.captureHeld());
    }

    /**
     * Runs the check's own code on the sampler's rehearsal (threads unwound from where they are blocked, not
     * held), often enough that the window meets it compiled; its verdict means nothing and is dropped.
     */
    void rehearse(Tracer tracer) {
        var threads = sampler.rehearsal();
        if (forbidden.isEmpty() || threads.isEmpty()) {
            return;
        }
        tracer.onTracerThread(() -> {
            for (int i = 0; i < Math.max(2, 400 / threads.size()); i++) {
                inspect(tracer, threads);
            }
            return null;
        });
    }

    private List<Blocker> inspect(Tracer tracer, List<StackSampler.ThreadStack> threads) {
        List<Blocker> found = List.of(); // allocates only when a thread is busy
        for (var t : threads) {
            Registers r = t.registers() != null ? t.registers() : tracer.registers(t.tid());
            Blocker b;
            if (trusted(t.frames())) {
                b = unwound(t.tid(), t.frames());
            } else {
                int hit = rangeOf(r.rip());
                b = hit >= 0 ? new Blocker(t.tid(), forbidden.get(hit).name(), 0, r.rip(), 0, 0, 0)
                        : scanStack(tracer, t.tid(), r.rsp());
            }
            if (b != null) {
                if (found.isEmpty()) {
                    found = new ArrayList<>();
                }
                found.add(b);
            }
        }
        return found;
    }

    /**
     * True when the unwind reached the thread's outermost frame (a CFI rule saying the return address is undefined,
     * as in _start and clone) and found every frame by CFI: then its frames are all the frames there are.
     */
    private static boolean trusted(FrameBuffer frames) {
        if (frames.end() != StackEnd.OUTERMOST) {
            return false;
        }
        for (int i = 0; i < frames.count(); i++) {
            if (frames.method(i) != FrameMethod.CFI && frames.method(i) != FrameMethod.REGISTERS) {
                return false;
            }
        }
        return true;
    }

    /**
     * The first frame in forbidden code of a trusted unwind, with the return of the outermost such frame: the pc
     * of the frame above it (a return address, not a frame a signal interrupted) and that frame's stack pointer.
     */
    private Blocker unwound(int tid, FrameBuffer frames) {
        int first = -1;
        int firstRange = -1;
        int outermost = -1;
        for (int f = 0; f < frames.count(); f++) {
            for (int i = 0; i < starts.length; i++) {
                if (frames.executesIn(f, starts[i], ends[i])) {
                    if (first < 0) {
                        first = f;
                        firstRange = i;
                    }
                    outermost = f;
                    break;
                }
            }
        }
        if (first < 0) {
            return null;
        }
        int above = outermost + 1;
        boolean exit = above < frames.count() && !frames.exactPc(above);
        return new Blocker(tid, forbidden.get(firstRange).name(), first, frames.pc(first), frames.sp(first),
                exit ? frames.pc(above) : 0, exit ? frames.sp(above) : 0);
    }

    private Blocker scanStack(Tracer tracer, int tid, long rsp) {
        long top = stacks.endOf(rsp); // 0: no mapping holds rsp
        if (top == 0) {
            // a thread whose stack was mapped after our snapshot: look again (rare, costs a read of maps)
            setMappings(remap.get());
            top = stacks.endOf(rsp);
        }
        if (top <= rsp) {
            return null;
        }
        long sp = rsp & ~7L;
        int length = (int) Math.min(top - sp, MAX_STACK);
        if (buffer.length < length) {
            buffer = new byte[Math.max(length, buffer.length * 2)];
        }
        int n = tracer.read(sp, buffer, 0, length);
        int frame = 0;
        for (int i = 0; i + 8 <= n; i += 8) {
            long word = (buffer[i] & 0xffL) | (buffer[i + 1] & 0xffL) << 8 | (buffer[i + 2] & 0xffL) << 16
                    | (buffer[i + 3] & 0xffL) << 24 | (buffer[i + 4] & 0xffL) << 32 | (buffer[i + 5] & 0xffL) << 40
                    | (buffer[i + 6] & 0xffL) << 48 | (buffer[i + 7] & 0xffL) << 56;
            int hit = rangeOf(word);
            if (hit >= 0) {
                return new Blocker(tid, forbidden.get(hit).name(), frame + 1, word, sp + i, 0, 0);
            }
        }
        return null;
    }

    private int rangeOf(long address) {
        for (int i = 0; i < starts.length; i++) {
            if (Long.compareUnsigned(address, starts[i]) >= 0 && Long.compareUnsigned(address, ends[i]) < 0) {
                return i;
            }
        }
        return -1;
    }
}
