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
    /** SUTURE_DEBUG: each thread's holds, printed once the tracer is closed (never inside a window). */
    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;

    private final int pid;
    private final TracedThreads threads;
    private final HoldPriority priority = new HoldPriority();
    private final HoldLog log = new HoldLog();
    private boolean held;
    /** Whether this tracer has SIGTSTP and friends ignored for a hold ({@link Syscalls#ignoreStopSignals()}). */
    private boolean stopSignalsIgnored;
    /** Reused by every stop (a window allocates nothing it can avoid): the threads to interrupt first, and last. */
    private final ArrayList<TracedThread> blocked = new ArrayList<>();
    private final ArrayList<TracedThread> running = new ArrayList<>();
    private final Consumer<TracedThread> detach = this::detach;
    /** Room for a thread's /proc stat line, read before each hold. */
    private final byte[] stat = new byte[512];
    /** What the current hold is for: each thread's {@link Hold} is named so. */
    private String step = "hold";

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
     * Holds every thread for {@code step}: first those blocked in the kernel (sleeping in a system call, or
     * stopped), waiting for their stops while the running ones run on, then the running ones, so that a running
     * thread is held little longer than every thread is ({@link #resumeAll()} lets the running ones go first).
     * {@code onStop}, when given, is told of each thread as soon as it has stopped (release detaches it there, so
     * no thread waits for the others). With {@code boost}, the tracer thread issues the interrupts, and then works
     * until {@link #resumeAll()}, at real-time priority. Returns when the running threads began to be held
     * (System.nanoTime: the first interrupt when none ran; when a thread parked at a return before, when it did),
     * the start of what the program feels.
     */
    long stopAll(String step, Consumer<TracedThread> onStop, boolean boost) {
        if (threads.vanished()) {
            throw threads.gone("stop");
        }
        if (held) {
            return System.nanoTime();
        }
        ignoreStopSignals();
        threads.serviceEvents(); // answer what is already queued, so the interrupts meet running threads
        // which threads run, read while none is held: an interrupt costs a running thread its core, a sleeping one
        // only the rest of its sleep
        blocked.clear();
        running.clear();
        long parkedSince = Long.MAX_VALUE; // threads parked at a return are held already, since they came there
        for (var t : threads.all()) {
            if (!t.isStopped()) {
                (ThreadState.running(pid, t.tid(), stat) ? running : blocked).add(t);
            } else if (t.parked()) {
                parkedSince = Math.min(parkedSince, t.heldSince());
            }
        }
        log.reserve(threads.size());
        this.step = step;
        boost &= threads.size() >= HoldPriority.BOOST_MIN_THREADS;
        long first = System.nanoTime();
        interrupt(blocked, boost, false);
        awaitStops(blocked, "stop", onStop);
        long runningSince = running.isEmpty() ? first : System.nanoTime();
        interrupt(running, boost, true);
        awaitStops(running, "stop", onStop);
        held = true;
        if (boost) {
            priority.boost();
        }
        return Math.min(runningSince, parkedSince);
    }

    /**
     * Interrupts each of {@code pending}, noting when it was held and whether it was {@code running}; at real-time
     * priority with {@code boost} when they are many.
     */
    private void interrupt(List<TracedThread> pending, boolean boost, boolean running) {
        if (boost && pending.size() >= HoldPriority.BOOST_MIN_THREADS) {
            priority.boost();
        }
        try {
            for (var t : pending) {
                t.heldSince(System.nanoTime(), running);
                t.interrupt();
            }
        } finally {
            priority.unboost(); // the threads coming to their stops need the cores now
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
        boolean pickRuns = true;
        for (var t : threads.all()) {
            if (!t.isRunning()) {
                continue;
            }
            if (pick == null) {
                pick = t;
            }
            if (t.tid() != pid && ThreadState.of(pid, t.tid()) == 'S') {
                pick = t;
                pickRuns = false;
                break;
            }
        }
        if (pick != null && pickRuns) {
            pickRuns = ThreadState.running(pid, pick.tid(), stat);
        }
        priority.quietCompiler();
        ignoreStopSignals();
        threads.serviceEvents();
        log.reserve(1);
        step = label;
        if (pick != null && pick.isRunning()) {
            blocked.clear();
            blocked.add(pick);
            interrupt(blocked, false, pickRuns);
            awaitStops(blocked, "stop", null);
            held = true;
            if (pick.isStopped() && pick.stop() == TracedThread.Stop.INTERRUPT) {
                return;
            }
            held = false; // not a plain interrupt stop: it stays stopped, and every other thread is held too
        }
        stopAll(label, null, false);
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
                    if (t.heldSince() == 0 && t.isStopped()) {
                        t.heldSince(System.nanoTime(), true); // a new thread, on its way to run
                    }
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

    /** Lets every held thread run again, those that were running when held first. */
    @Override
    public void resumeAll() {
        if (!held) {
            return;
        }
        held = false;
        try {
            var all = List.copyOf(threads.all());
            for (int pass = 0; pass < 2; pass++) {
                for (var t : all) {
                    if (t.isStopped() && t.heldRunning() == (pass == 0)) {
                        String why = stepOf(t);
                        t.resumeFromHold(pid);
                        log.ended(t, why);
                    }
                }
            }
        } finally {
            priority.unboost();
        }
        step = "hold";
        endHold();
    }

    /** What the hold of a thread parked at a return is named: from its arrival there to its resume. */
    static final String RETURN_STEP = "return";

    /** What the hold of {@code t} that ends now was for: the current step, or its wait at a return. */
    private String stepOf(TracedThread t) {
        return t.parked() ? RETURN_STEP : step;
    }

    /** Lets the threads parked at a return run on (outside a hold): they waited past their budget. */
    void releaseParked() {
        if (held) {
            return;
        }
        for (var t : List.copyOf(threads.all())) {
            if (t.parked()) {
                t.resumeFromHold(pid);
                log.ended(t, RETURN_STEP);
            }
        }
    }

    /**
     * Releases every thread (PTRACE_DETACH), passing on held signals; a group-stopped process stays stopped. Each
     * is detached as soon as it stops, the running ones interrupted last: none is held while others stop.
     */
    void releaseAll() {
        if (!threads.vanished() && !threads.isEmpty() && !held) {
            try {
                stopAll("release", detach, false);
            } catch (ProcessVanishedException e) {
                // fall through: detach what is left
            }
        }
        for (var t : List.copyOf(threads.all())) {
            detach(t);
        }
        held = false;
        priority.unboost();
        step = "hold";
        endHold();
    }

    private void detach(TracedThread t) {
        String why = stepOf(t);
        t.detach(pid);
        log.ended(t, why);
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

    /** Every hold so far (on the tracer thread, or once it has ended). */
    List<Hold> holds() {
        return log.all();
    }

    /** SUTURE_DEBUG: each thread's holds, once the tracer is closed (never inside a hold). */
    void printHolds() {
        if (!DEBUG) {
            return;
        }
        for (var h : log.all()) {
            System.err.printf("tracer %d: %s held thread %d (%s) from %d for %d us%n", pid, h.step(), h.thread(),
                    h.running() ? "running" : "blocked", h.startNanos(), h.nanos() / 1000);
        }
    }
}
