package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.Errno;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

/**
 * Holds the threads of one process: stops every thread (or one, for the injector), waits for their stops, resumes
 * them, releases them. For the length of a hold it keeps Ctrl-Z from stopping suture and, where it pays, the tracer
 * thread at real-time priority and the JIT compiler off the cores ({@link HoldPriority}); docs/apply.md says why.
 * Tracer thread only.
 */
final class StopTheWorld implements HeldThreads {
    private static final long STOP_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    /**
     * How long a wait for threads to stop (a stop-all's, the injector's for its borrowed thread) polls without
     * sleeping, yielding its core, after the last stop it saw.
     */
    static final long YIELD_NANOS = TimeUnit.MILLISECONDS.toNanos(2);
    /** SUTURE_DEBUG: the spans threads were held, printed once the tracer is closed (never inside a window). */
    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;

    private final int pid;
    private final TracedThreads threads;
    private final HoldPriority priority = new HoldPriority();
    private boolean held;
    /** Whether this tracer has SIGTSTP and friends ignored for a hold ({@link Syscalls#ignoreStopSignals()}). */
    private boolean stopSignalsIgnored;
    /** Reused by every stop: a window allocates nothing it can avoid. */
    private final ArrayList<TracedThread> pending = new ArrayList<>();
    private final Consumer<TracedThread> detach = this::detach;

    private final long[] holds = new long[64];
    private final String[] holdLabels = new String[holds.length / 2];
    private int holdCount;
    private long holdStart;
    /** What the current hold is for, in the SUTURE_DEBUG listing. */
    private String holdLabel = "hold";

    StopTheWorld(TracedThreads threads) {
        this.pid = threads.pid();
        this.threads = threads;
    }

    @Override
    public int pid() {
        return pid;
    }

    @Override
    public boolean isHeld() {
        return held;
    }

    /**
     * Interrupts every running thread and waits for their stops; {@code onStop}, when given, is told of each thread
     * as soon as it has stopped (release detaches it there, so no thread waits for the others). With
     * {@code boost}, the tracer thread issues the interrupts, and then works until {@link #resumeAll()}, at
     * real-time priority.
     */
    void stopAll(Consumer<TracedThread> onStop, boolean boost) {
        if (threads.vanished()) {
            throw threads.gone("stop");
        }
        if (held) {
            return;
        }
        ignoreStopSignals();
        holdStart = System.nanoTime();
        threads.serviceEvents(); // answer what is already queued, so the interrupts meet running threads
        pending.clear();
        boost &= threads.size() >= HoldPriority.BOOST_MIN_THREADS;
        if (boost) {
            priority.boost();
        }
        try {
            for (var t : threads.all()) {
                if (!t.isStopped()) {
                    t.interrupt();
                    pending.add(t);
                }
            }
        } finally {
            priority.unboost(); // the threads coming to their stops need the cores now
        }
        awaitStops(pending, "stop", onStop);
        held = true;
        if (boost) {
            priority.boost();
        }
    }

    @Override
    public void holdOne(String label) {
        if (threads.vanished()) {
            throw threads.gone("stop");
        }
        if (held) {
            return;
        }
        TracedThread pick = null;
        for (var t : threads.all()) {
            if (!t.isRunning()) {
                continue;
            }
            if (pick == null) {
                pick = t;
            }
            if (t.tid() != pid && ThreadState.of(pid, t.tid()) == 'S') {
                pick = t;
                break;
            }
        }
        priority.quietCompiler();
        ignoreStopSignals();
        holdStart = System.nanoTime();
        threads.serviceEvents();
        if (pick != null && pick.isRunning()) {
            pick.interrupt();
            pending.clear();
            pending.add(pick);
            awaitStops(pending, "stop", null);
            held = true;
            if (pick.isStopped() && pick.stop() == TracedThread.Stop.INTERRUPT) {
                holdLabel = label;
                return;
            }
            held = false;
        }
        stopAll(null, false);
        holdLabel = label;
    }

    /**
     * Waits until every thread in {@code pending} reports a stop (adding the threads they create meanwhile); tells
     * {@code onStop} (if given) of each stopped thread at once. Each pass asks every pending thread in turn, so the
     * main thread, first in the list, is seen as soon as it stops (docs/apply.md says why not waitid).
     */
    private void awaitStops(List<TracedThread> pending, String during, Consumer<TracedThread> onStop) {
        long deadline = System.nanoTime() + STOP_TIMEOUT_NANOS;
        int idle = 0;
        long lastProgress = System.nanoTime();
        while (!pending.isEmpty()) {
            boolean progress = false;
            for (int i = 0; i < pending.size(); i++) {
                var t = pending.get(i);
                if (threads.reap(pending, i)) {
                    if (onStop != null && t.isStopped()) {
                        onStop.accept(t);
                    }
                    progress = true;
                    i--;
                }
            }
            // every thread gone: the process vanished, unless this is a release (its detaches empty the map)
            if (threads.vanished() || (threads.isEmpty() && onStop != detach)) {
                threads.markVanished("every thread exited during a " + during);
                throw threads.gone(during);
            }
            if (progress) {
                idle = 0;
                lastProgress = System.nanoTime();
            } else if (System.nanoTime() - lastProgress < YIELD_NANOS) {
                // the interrupted threads were often woken on this very core and must run to reach their stops
                Thread.yield();
            } else {
                if (System.nanoTime() > deadline) {
                    var t = pending.getFirst();
                    throw new SysException("waitpid", Errno.EAGAIN, "thread " + t.tid() + " of process " + pid
                            + " did not stop within 5 s (state " + ThreadState.of(pid, t.tid())
                            + "); it may be in uninterruptible sleep: retry later");
                }
                LockSupport.parkNanos(Math.min(1_000_000, 20_000L * ++idle));
            }
        }
    }

    @Override
    public void resumeAll() {
        if (!held) {
            return;
        }
        held = false;
        try {
            for (var t : List.copyOf(threads.all())) {
                if (t.isStopped()) {
                    t.resumeFromHold(pid);
                }
            }
        } finally {
            priority.unboost();
        }
        recordHold(holdLabel);
        holdLabel = "hold";
        endHold();
    }

    /** Releases every thread (PTRACE_DETACH), passing on held signals; a group-stopped process stays stopped. */
    void releaseAll() {
        if (!threads.vanished() && !threads.isEmpty() && !held) {
            try {
                // every thread is detached as soon as it stops: none is held while the others come to a stop
                stopAll(detach, false);
            } catch (ProcessVanishedException e) {
                // fall through: detach what is left
            }
        }
        for (var t : List.copyOf(threads.all())) {
            detach(t);
        }
        held = false;
        priority.unboost();
        recordHold("release");
        endHold();
    }

    private void detach(TracedThread t) {
        t.detach(pid);
        threads.forget(t);
    }

    /** After a task, or at the end of a hold: what a hold changed for suture itself is put back. */
    void endHold() {
        if (!held) {
            priority.loudCompiler();
            heedStopSignals();
        }
    }

    /** A held thread, or an error saying why {@code tid} is not one. */
    TracedThread heldThread(int tid) {
        if (threads.vanished()) {
            throw threads.gone("thread access");
        }
        var t = threads.get(tid);
        if (t == null) {
            throw new SutureException(SutureException.Kind.INTERNAL, "thread " + tid + " of process " + pid
                    + " is not traced (it may have exited)");
        }
        if (!held || !t.isStopped()) {
            throw new SutureException(SutureException.Kind.INTERNAL, "thread " + tid + " of process " + pid
                    + " is not stopped: call stopAll() first");
        }
        return t;
    }

    @Override
    public TracedThread heldAt(TracedThread.Stop how) {
        return threads.stoppedAt(how);
    }

    @Override
    public RuntimeException threadDied(TracedThread t, String during) {
        return threads.threadDied(t, during, held);
    }

    /**
     * Before a hold's first interrupt: Ctrl-Z (or SIGTTIN, SIGTTOU) must not stop suture while it holds the
     * target's threads; the disposition is process-wide, so no JVM thread can take it instead (docs/apply.md).
     */
    private void ignoreStopSignals() {
        if (!stopSignalsIgnored) {
            stopSignalsIgnored = true;
            Syscalls.ignoreStopSignals();
        }
    }

    /** After the hold's last thread runs again: the dispositions suture had before. */
    void heedStopSignals() {
        if (stopSignalsIgnored) {
            stopSignalsIgnored = false;
            Syscalls.restoreStopSignals();
        }
    }

    private void recordHold(String label) {
        if (DEBUG && holdCount < holdLabels.length) {
            holds[2 * holdCount] = holdStart;
            holds[2 * holdCount + 1] = System.nanoTime();
            holdLabels[holdCount++] = label;
        }
    }

    void printHolds() {
        if (!DEBUG) {
            return;
        }
        for (int i = 0; i < holdCount; i++) {
            System.err.printf("tracer %d: %s held from %d for %d us%n", pid, holdLabels[i], holds[2 * i],
                    (holds[2 * i + 1] - holds[2 * i]) / 1000);
        }
    }
}
