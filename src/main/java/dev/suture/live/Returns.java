package dev.suture.live;

import dev.suture.proc.Tracer;
import dev.suture.sys.SysException;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Waiting for busy threads at the return of the replaced code (issue 16): a function that is never idle when
 * sampled — a thread that loops calling one that sleeps inside itself — is patched within its first return. When
 * a window finds threads busy, and every one of them was unwound by CFI to its outermost frame, each gets a
 * breakpoint at the return address of its outermost frame in the forbidden code, the process runs on, and a
 * thread that returns there is held (parked) until every busy thread has; then the next window opens with them
 * parked outside the code. The first busy window is retried after the backoff as before (a thread that was
 * passing through the code is clear at the next); from the second on, it waits. The breakpoints are perf events
 * owned by suture ({@link Tracer#armReturn}), so nothing is left in the target if suture dies.
 *
 * <p>Bounds: a parked thread is held at most half the {@code --max-pause} budget while the others come (then it
 * runs on, and is parked again at its next return); the window that follows counts its budget from the first
 * park, so no thread is held longer than {@code --max-pause} in all. A thread that leaves its frame some other way
 * (longjmp, an exception) never comes to the return: the wait gives way to a window after a recheck time that
 * doubles from 50 ms to 1 s, which finds it elsewhere. Everything is bounded by {@code --timeout}.
 */
final class Returns implements AutoCloseable {
    private static final long FIRST_RECHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    private static final long MAX_RECHECK_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final Tracer tracer;
    private final long parkBudgetNanos;
    private long recheck = FIRST_RECHECK_NANOS;
    private long waitedNanos;
    private int waits;
    private int busyWindows;
    /** Why breakpoints cannot be used here (the kernel refused one), or null. */
    private String refused;
    /** The last wait's end, for the message when the transaction gives up. */
    private Tracer.ReturnWait last;
    private List<StackGuard.Blocker> lastWaitedFor = List.of();

    Returns(Tracer tracer, long parkBudgetNanos) {
        this.tracer = tracer;
        this.parkBudgetNanos = parkBudgetNanos;
    }

    /** Time spent waiting at returns, in all. */
    long waitedNanos() {
        return waitedNanos;
    }

    /**
     * After a busy window: when every busy thread is waitable, arms their returns and waits (bounded by
     * {@code deadline}) until they are parked, a recheck is due, or a parked one is past its budget; true when it
     * waited (the next window is due now), false when the caller should back off as before.
     */
    boolean await(List<StackGuard.Blocker> blockers, long deadline) {
        if (++busyWindows < 2) {
            return false; // code a thread was only passing through is clear at the next window, and holds no one
        }
        if (refused != null || blockers.stream().anyMatch(b -> !b.waitable())) {
            tracer.disarmReturns();
            return false;
        }
        try {
            tracer.armReturns(blockers.stream().map(b -> new Tracer.Exit(b.tid(), b.exitAddress(), b.exitSp()))
                    .toList());
        } catch (SysException | Tracer.CannotWait e) {
            refused = e.getMessage();
            tracer.disarmReturns();
            return false;
        }
        var tids = blockers.stream().map(StackGuard.Blocker::tid).toList();
        long start = System.nanoTime();
        var wait = tracer.awaitReturns(tids, Math.min(deadline, start + recheck), parkBudgetNanos);
        waitedNanos += System.nanoTime() - start;
        waits++;
        last = wait;
        lastWaitedFor = blockers;
        // came back, or past budget: their next return may come soon; none came: look less often
        recheck = wait.parked().isEmpty() ? Math.min(recheck * 2, MAX_RECHECK_NANOS) : FIRST_RECHECK_NANOS;
        return true;
    }

    /** What the waits did, for the message of a transaction that gave up (starts with "; " when there is any). */
    String story(List<StackGuard.Blocker> blockers) {
        if (refused != null) {
            return "; suture could not wait for it at the return of its outermost frame in that code (" + refused
                    + ")";
        }
        if (blockers.stream().anyMatch(b -> !b.waitable())) {
            var b = blockers.stream().filter(x -> !x.waitable()).findFirst().orElseThrow();
            return "; thread " + b.tid() + "'s stack could not be unwound by CFI to its end, so suture could not"
                    + " wait for it at a return";
        }
        if (last == null) {
            return "";
        }
        var waitedFor = lastWaitedFor.stream().filter(b -> last.waiting().contains(b.tid())).toList();
        String where = String.join(", ", waitedFor.stream().map(b -> String.format("thread %d at 0x%x", b.tid(),
                b.exitAddress())).toList());
        if (last.pastBudget()) {
            return String.format("; suture waited %.0f ms in %d waits at the return addresses of the busy frames:"
                    + " %s did not come there while thread(s) %s were held there for %d ms, half the --max-pause"
                    + " budget", waitedNanos / 1e6, waits, where.isEmpty() ? "none" : where,
                    last.parked(), TimeUnit.NANOSECONDS.toMillis(parkBudgetNanos));
        }
        return String.format("; suture waited %.0f ms in %d waits at the return address of its outermost frame"
                + " in that code (%s) and it never returned there", waitedNanos / 1e6, waits,
                where.isEmpty() ? "none" : where);
    }

    /** What to do about a busy function, for the end of the message. */
    String advice() {
        if (last != null && last.pastBudget()) {
            return "Several threads are busy in that code at different times: a longer --max-pause lets suture"
                    + " hold the first to return while the others come; or retry with a longer --timeout";
        }
        return "Retry when the program is idle, or with a longer --timeout";
    }

    /** Disarms every breakpoint and lets any parked thread run on; a vanished process leaves nothing to do. */
    @Override
    public void close() {
        try {
            tracer.disarmReturns();
            tracer.releaseParked();
        } catch (RuntimeException e) {
            // the process is gone, or the tracer closing: its release disarms and detaches whatever is left
        }
    }
}
