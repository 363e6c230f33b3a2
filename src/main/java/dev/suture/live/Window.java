package dev.suture.live;

import dev.suture.proc.Maps;
import dev.suture.SutureException;
import dev.suture.proc.Tracer;
import dev.suture.unwind.ProcessCode;
import dev.suture.unwind.StackSampler;
import java.time.Duration;
import java.util.List;

/**
 * The stop-the-world window, retried until it finds every thread clear of the forbidden code: stop all threads,
 * check every stack, write (all or nothing), resume. Everything it needs is prepared before; what runs inside is
 * register reads, one stack read per thread, an unwind in memory, and a few small writes.
 */
final class Window {
    /** The window that succeeded: how long the threads were held, and how many windows it took. */
    record Result(long pauseNanos, int attempts) {}

    private static final long FIRST_BACKOFF_NANOS = 1_000_000;
    private static final long MAX_BACKOFF_NANOS = 50_000_000;

    private Window() {}

    static Result run(int pid, Tracer tracer, List<Image.Range> forbidden,
                      List<ApplyTransaction.Write> writes, Duration timeout, String what) {
        // CFI parsing and the unwinder's warm-up happen here, while the target still runs
        var sampler = new StackSampler(tracer, ProcessCode.load(pid, false));
        var guard = new StackGuard(forbidden, sampler, StackGuard.ranges(Maps.read(pid)), () -> StackGuard.ranges(
                Maps.read(pid)));
        guard.rehearse(tracer);
        touch(tracer, writes);
        long deadline = System.nanoTime() + timeout.toNanos();
        long backoff = FIRST_BACKOFF_NANOS;
        int attempts = 0;
        while (true) {
            attempts++;
            var outcome = tracer.run(() -> once(tracer, guard, writes));
            if (DEBUG) {
                long[] parts = sampler.captureNanos();
                System.err.printf("window: capture: registers %d us, stack copies %d us, unwinding %d us%n",
                        parts[0] / 1000, parts[1] / 1000, parts[2] / 1000);
            }
            if (outcome.blocker() == null) {
                return new Result(outcome.pauseNanos(), attempts);
            }
            if (System.nanoTime() + backoff > deadline) {
                throw new UnsafeException(outcome.blocker().describe(pid) + "; " + what + " gave up after "
                        + timeout.toMillis() + " ms and " + attempts + " attempts; nothing was changed. Retry"
                        + " when the program is idle, or with a longer --timeout");
            }
            sleep(backoff);
            backoff = Math.min(backoff * 2, MAX_BACKOFF_NANOS);
        }
    }

    /**
     * Writes back, while the target runs, the bytes each write will replace, exactly as they are now: the kernel's
     * copy-on-write of a text page (a page allocated and copied, the mapping updated) then happens here, and the
     * window's write only changes bytes in a page the process already owns. Nothing the process sees changes.
     */
    private static void touch(Tracer tracer, List<ApplyTransaction.Write> writes) {
        for (var w : writes) {
            tracer.write(w.address(), tracer.read(w.address(), w.bytes().length));
        }
    }

    private record Outcome(StackGuard.Blocker blocker, long pauseNanos) {}

    /** One window, on the tracer thread. Writes are undone if any fails; the threads are resumed in every case. */
    private static Outcome once(Tracer tracer, StackGuard guard, List<ApplyTransaction.Write> writes) {
        long start = System.nanoTime();
        tracer.stopAll();
        long stopped = System.nanoTime();
        long checked = stopped;
        long written = stopped;
        StackGuard.Blocker blocker;
        try {
            blocker = guard.check(tracer);
            checked = System.nanoTime();
            if (blocker == null) {
                writeAll(tracer, writes);
            }
        } finally {
            written = System.nanoTime();
            tracer.resumeAll();
        }
        long end = System.nanoTime();
        if (DEBUG) {
            // after the window: the first printf loads classes for milliseconds
            System.err.printf("window: from %d for %d us: stop %d us, check %d us, write %d us, resume %d us%n", start,
                    (end - start) / 1000, (stopped - start) / 1000, (checked - stopped) / 1000,
                    (written - checked) / 1000, (end - written) / 1000);
        }
        return new Outcome(blocker, end - start);
    }

    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;

    private static void writeAll(Tracer tracer, List<ApplyTransaction.Write> writes) {
        int done = 0;
        try {
            for (var w : writes) {
                tracer.write(w.address(), w.bytes());
                done++;
            }
        } catch (RuntimeException e) {
            for (int i = done - 1; i >= 0; i--) {
                try {
                    tracer.write(writes.get(i).address(), writes.get(i).undo());
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    private static void sleep(long nanos) {
        try {
            Thread.sleep(Duration.ofNanos(nanos));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SutureException(SutureException.Kind.INTERNAL, "interrupted while waiting to retry");
        }
    }
}
