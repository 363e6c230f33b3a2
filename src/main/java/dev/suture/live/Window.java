package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.Tracer;
import dev.suture.unwind.StackSampler;
import java.time.Duration;
import java.util.List;

/**
 * The stop-the-world window, retried until it finds every thread clear of the forbidden code: stop all threads,
 * check every stack, write (all or nothing), resume. Everything it needs is prepared before; what runs inside is
 * register reads, one stack read per thread, an unwind in memory, and a few small writes. A window that holds the
 * threads past its budget ({@code --max-pause}: suture stopped or starved of a core) is abandoned, its writes
 * undone, and retried like a busy one.
 */
final class Window {
    /**
     * The window that succeeded: how long it held the threads, how many windows it took, how many of them were
     * abandoned past the budget, the longest any window held the threads, and how long the one that succeeded held
     * every thread at once (from the last thread's stop to the first one's resume), and how long suture waited
     * for busy threads to come to the return of the replaced code ({@link Returns}).
     */
    record Result(long pauseNanos, int attempts, int abandoned, long longestNanos, long allStoppedNanos,
                  long waitedNanos) {
        /** No window opened (a dry run). */
        static final Result NONE = new Result(0, 0, 0, 0, 0, 0);
    }

    /** How a window ended: its writes are in, a thread was in the forbidden code, or it ran past its budget. */
    enum Verdict { DONE, BUSY, OVER_BUDGET }

    private static final long FIRST_BACKOFF_NANOS = 1_000_000;
    private static final long MAX_BACKOFF_NANOS = 50_000_000;

    private final int pid;
    private final Tracer tracer;
    private final StackSampler sampler;
    private final StackGuard guard;
    private final List<ApplyTransaction.Write> writes;

    /** A window whose sampler, guard and pages {@link Preparation#window} made ready. */
    Window(int pid, Tracer tracer, StackSampler sampler, StackGuard guard, List<ApplyTransaction.Write> writes) {
        this.pid = pid;
        this.tracer = tracer;
        this.sampler = sampler;
        this.guard = guard;
        this.writes = writes;
    }

    static Result run(int pid, Tracer tracer, List<Image.Range> forbidden, List<ApplyTransaction.Write> writes,
                      Duration timeout, Duration maxPause, String what) {
        return Preparation.window(pid, tracer, forbidden, writes).retry(timeout, maxPause, what);
    }

    /**
     * Opens windows until one finds every thread clear and writes within {@code maxPause}, backing off between
     * them, up to the timeout. When every thread a window found busy can be waited for at the return of its
     * outermost busy frame ({@link StackGuard.Blocker#waitable}), the next window waits for them there instead
     * ({@link Returns}).
     */
    Result retry(Duration timeout, Duration maxPause, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long backoff = FIRST_BACKOFF_NANOS;
        int attempts = 0;
        int abandoned = 0;
        long longest = 0;
        var returns = new Returns(tracer, maxPause.toNanos() / 2);
        try {
            while (true) {
                attempts++;
                var outcome = attempt(maxPause.toNanos());
                if (DEBUG) {
                    outcome.print(sampler.captureNanos()); // after the window: the first printf loads classes
                }
                longest = Math.max(longest, outcome.pauseNanos());
                switch (outcome.verdict()) {
                    case DONE -> {
                        return new Result(outcome.pauseNanos(), attempts, abandoned, longest,
                                outcome.written() - outcome.stopped(), returns.waitedNanos());
                    }
                    case OVER_BUDGET -> abandoned++;
                    case BUSY -> { }
                }
                if (System.nanoTime() + backoff > deadline) {
                    throw gaveUp(outcome, returns, timeout, maxPause, what, attempts, abandoned, longest);
                }
                if (outcome.verdict() == Verdict.BUSY && returns.await(outcome.blockers(), deadline)) {
                    backoff = FIRST_BACKOFF_NANOS;
                    continue;
                }
                sleep(backoff);
                backoff = Math.min(backoff * 2, MAX_BACKOFF_NANOS);
            }
        } finally {
            returns.close();
        }
    }

    private UnsafeException gaveUp(Outcome outcome, Returns returns, Duration timeout, Duration maxPause,
                                   String what, int attempts, int abandoned, long longest) {
        String tried = what + " gave up after " + timeout.toMillis() + " ms and " + attempts + " attempts";
        boolean busy = outcome.verdict() == Verdict.BUSY;
        String why = busy ? outcome.blocker().describe(pid) + returns.story(outcome.blockers()) + "; " + tried
                : String.format("pid %d: %s: the last window held the running threads %.1f ms, past the"
                + " --max-pause budget of %d ms", pid, tried, outcome.runningNanos() / 1e6, maxPause.toMillis());
        return new UnsafeException(why + (abandoned > 0 ? String.format(" (%d of %d windows ran past the budget,"
                + " the longest %.1f ms, and were undone)", abandoned, attempts, longest / 1e6) : "")
                + "; nothing was changed. " + (busy ? returns.advice()
                : "Suture was stopped or starved of a CPU while it held them: retry when the machine is less loaded,"
                + " or with a longer --max-pause or --timeout"));
    }

    /** One window with no budget to keep (a rehearsal's). */
    Outcome attempt() {
        return attempt(Long.MAX_VALUE);
    }

    /** One window: its verdict, its blocker when busy, and when each phase ended. */
    Outcome attempt(long budgetNanos) {
        return tracer.onTracerThread(() -> {
            sampler.prefetch();
            return once(tracer, guard, writes, budgetNanos);
        });
    }

    /**
     * A window's verdict, the thread that blocked it when busy, and when each phase ended ({@code running}: when
     * the running threads began to be held).
     */
    record Outcome(Verdict verdict, List<StackGuard.Blocker> blockers, long start, long running, long stopped,
                   long checked, long written, long end) {
        /** The first thread found busy (BUSY only). */
        StackGuard.Blocker blocker() {
            return blockers.getFirst();
        }

        long pauseNanos() {
            return end - start;
        }

        /** How long the threads that were running were held: what the budget bounds. */
        long runningNanos() {
            return end - running;
        }

        void print(long[] capture) {
            System.err.printf("window: from %d for %d us: stop %d us, check %d us, write %d us, resume %d us: %s%n",
                    start, (end - start) / 1000, (stopped - start) / 1000, (checked - stopped) / 1000,
                    (written - checked) / 1000, (end - written) / 1000, verdict);
            System.err.printf("window: capture: registers %d us, stack copies %d us, unwinding %d us%n",
                    capture[0] / 1000, capture[1] / 1000, capture[2] / 1000);
        }
    }

    /**
     * One window, on the tracer thread. Writes are undone if any fails, or if the window held its running threads
     * past {@code budgetNanos} by the time they were in; the threads are resumed in every case. The budget counts
     * from the interrupt of the first running thread (the blocked ones are held first, while the running ones run
     * on; when none runs, from the first interrupt), and is checked once every thread is stopped, after the check
     * and after the writes: a suture stopped (SIGSTOP) or starved anywhere in between finds out at the next of
     * these.
     */
    private static Outcome once(Tracer tracer, StackGuard guard, List<ApplyTransaction.Write> writes,
                                long budgetNanos) {
        long start = System.nanoTime();
        long running = tracer.stopAll("window");
        long stopped = System.nanoTime();
        long checked = stopped;
        long written = stopped;
        List<StackGuard.Blocker> blockers = List.of();
        Verdict verdict = Verdict.OVER_BUDGET;
        try {
            if (stopped - running <= budgetNanos) {
                blockers = guard.check(tracer);
                checked = System.nanoTime();
                if (!blockers.isEmpty()) {
                    verdict = Verdict.BUSY;
                } else if (checked - running <= budgetNanos) {
                    writeAll(tracer, writes);
                    if (System.nanoTime() - running <= budgetNanos) {
                        verdict = Verdict.DONE;
                        // the threads come back through the returns waited at, now into the new code: none may
                        // park there again (the breakpoints are closed after the resume, Returns.close)
                        tracer.retireReturns();
                    } else {
                        undo(tracer, writes, writes.size(), null);
                    }
                }
            }
        } finally {
            written = System.nanoTime();
            tracer.resumeAll();
        }
        return new Outcome(verdict, blockers, start, running, stopped, checked, written, System.nanoTime());
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
            undo(tracer, writes, done, e);
            throw e;
        }
    }

    /**
     * Puts back the bytes of the first {@code done} writes, last first. With {@code failure}, undoes all it can
     * and adds what failed to it; without, the first failure is thrown (the journal still has every write).
     */
    private static void undo(Tracer tracer, List<ApplyTransaction.Write> writes, int done, RuntimeException failure) {
        for (int i = done - 1; i >= 0; i--) {
            try {
                tracer.write(writes.get(i).address(), writes.get(i).undo());
            } catch (RuntimeException e) {
                if (failure == null) {
                    throw e;
                }
                failure.addSuppressed(e);
            }
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
