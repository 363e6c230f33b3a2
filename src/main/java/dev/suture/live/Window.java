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

    private final int pid;
    private final Tracer tracer;
    private final StackSampler sampler;
    private final StackGuard guard;
    private final List<ApplyTransaction.Write> writes;

    /**
     * Prepares a window while the target still runs: CFI parsing, the unwinder's warm-up, a rehearsal of the
     * check, and the copy-on-write of the pages the writes will change.
     */
    Window(int pid, Tracer tracer, List<Image.Range> forbidden, List<ApplyTransaction.Write> writes) {
        this.pid = pid;
        this.tracer = tracer;
        this.writes = writes;
        sampler = new StackSampler(tracer, ProcessCode.load(pid, false));
        guard = new StackGuard(forbidden, sampler, StackGuard.ranges(Maps.read(pid)), () -> StackGuard.ranges(
                Maps.read(pid)));
        guard.rehearse(tracer);
        touch(tracer, writes);
    }

    static Result run(int pid, Tracer tracer, List<Image.Range> forbidden,
                      List<ApplyTransaction.Write> writes, Duration timeout, String what) {
        return new Window(pid, tracer, forbidden, writes).retry(timeout, what);
    }

    /** Opens windows until one finds every thread clear (and writes), backing off between them, up to the timeout. */
    Result retry(Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long backoff = FIRST_BACKOFF_NANOS;
        int attempts = 0;
        while (true) {
            attempts++;
            var outcome = attempt();
            if (DEBUG) {
                outcome.print(sampler.captureNanos()); // after the window: the first printf loads classes for ms
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

    /** One window: its blocker (null when every thread was clear and the writes are in) and how long it held. */
    Outcome attempt() {
        return tracer.run(() -> {
            sampler.prefetch();
            return once(tracer, guard, writes);
        });
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

    /** A window's verdict (null: every thread was clear, the writes are in) and when each phase ended. */
    record Outcome(StackGuard.Blocker blocker, long start, long stopped, long checked, long written, long end) {
        long pauseNanos() {
            return end - start;
        }

        void print(long[] capture) {
            System.err.printf("window: from %d for %d us: stop %d us, check %d us, write %d us, resume %d us%n",
                    start, (end - start) / 1000, (stopped - start) / 1000, (checked - stopped) / 1000,
                    (written - checked) / 1000, (end - written) / 1000);
            System.err.printf("window: capture: registers %d us, stack copies %d us, unwinding %d us%n",
                    capture[0] / 1000, capture[1] / 1000, capture[2] / 1000);
        }
    }

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
        return new Outcome(blocker, start, stopped, checked, written, System.nanoTime());
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
