package dev.suture.proc;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The holds of one tracer, kept in plain arrays so that recording one at the end of a hold allocates nothing
 * ({@link #reserve} makes room before the hold); made into {@link Hold} records when asked. Written on the tracer
 * thread; read on it, or once the tracer has closed (its last task's result published what it wrote).
 */
final class HoldLog {
    private int[] threads = new int[64];
    private long[] starts = new long[64];
    private long[] ends = new long[64];
    private boolean[] running = new boolean[64];
    private String[] steps = new String[64];
    private int count;

    /** Makes room for {@code more} holds, before a hold starts. */
    void reserve(int more) {
        if (count + more > threads.length) {
            int size = Math.max(count + more, 2 * threads.length);
            threads = Arrays.copyOf(threads, size);
            starts = Arrays.copyOf(starts, size);
            ends = Arrays.copyOf(ends, size);
            running = Arrays.copyOf(running, size);
            steps = Arrays.copyOf(steps, size);
        }
    }

    /** Records that {@code t} (held since {@link TracedThread#heldSince()}) runs again or is released now. */
    void ended(TracedThread t, String step) {
        long since = t.heldSince();
        if (since == 0) {
            return; // stopped by itself (an event), not held by us
        }
        reserve(1);
        threads[count] = t.tid();
        starts[count] = since;
        ends[count] = System.nanoTime();
        running[count] = t.heldRunning();
        steps[count++] = step;
        t.heldSince(0, false);
    }

    List<Hold> all() {
        var out = new ArrayList<Hold>(count);
        for (int i = 0; i < count; i++) {
            out.add(new Hold(threads[i], steps[i], starts[i], ends[i] - starts[i], running[i]));
        }
        return out;
    }
}
