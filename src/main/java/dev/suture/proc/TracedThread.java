package dev.suture.proc;

import dev.suture.sys.Errno;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;

/**
 * What we know of one traced thread: running, stopped or listening, how its stop was entered, and the signals it
 * is owed; the ptrace requests that move it, one short method each (as Delve's {@code ptrace_linux.go}). Touched
 * on the tracer thread only.
 */
final class TracedThread {
    enum State { RUNNING, STOPPED, LISTENING }

    /** How the current stop was entered: decides how it may be resumed and whether it can be borrowed. */
    enum Stop { NONE, INTERRUPT, GROUP, SIGNAL, CLONE, SYSCALL, RETURN, OTHER }

    /** Decides what a signal-delivery stop delivers when the thread resumes: the signal, or 0 for a trap of ours. */
    interface SignalFilter {
        int deliver(TracedThread t, int signal);
    }

    private final int tid;
    private final SignalFilter filter;
    private State state = State.RUNNING;
    private Stop stop = Stop.NONE;
    /** A signal that stopped the thread on its way in (signal-delivery-stop): passed on when it resumes. */
    private int pendingSignal;
    /** Signals (bit n-1 for signal n) swallowed while we ran code on this thread: sent again when it resumes. */
    private long requeueSignals;
    /** Its registers, read as it came to its stop; null once it runs again. */
    private long[] stopRegisters;
    /**
     * Set when it was given back from a system call we ran on it with its own call restarted by hand; put back at
     * its next stop if it has not run since ({@link TracedThreads#settle}).
     */
    private SyscallRestart restarted;
    /** When a hold of ours interrupted it (System.nanoTime), 0 when it is not held by us. */
    private long heldSince;
    /** Whether it was running (not blocked in a system call) when that hold began. */
    private boolean heldRunning;

    TracedThread(int tid, SignalFilter filter) {
        this.tid = tid;
        this.filter = filter;
    }

    int tid() {
        return tid;
    }

    boolean isStopped() {
        return state == State.STOPPED;
    }

    boolean isRunning() {
        return state == State.RUNNING;
    }

    Stop stop() {
        return stop;
    }

    /** Stopped at a return address by a breakpoint of ours ({@link #parkAtReturn}). */
    boolean parked() {
        return state == State.STOPPED && stop == Stop.RETURN;
    }

    long heldSince() {
        return heldSince;
    }

    boolean heldRunning() {
        return heldRunning;
    }

    /** A hold of ours takes it from {@code nanos} (0: none does any more); {@code running}: it was running then. */
    void heldSince(long nanos, boolean running) {
        heldSince = nanos;
        heldRunning = running;
    }

    // ---- the stops it reports ----

    /** A stop of kind {@code how}, with no signal to pass on. */
    void stoppedAt(Stop how) {
        state = State.STOPPED;
        stop = how;
    }

    /** A PTRACE_EVENT_STOP with {@code signal}: group-stop for a stop signal, else an interrupt (or first) stop. */
    void stoppedByEvent(int signal) {
        stoppedAt(Ptrace.isStopSignal(signal) ? Stop.GROUP : Stop.INTERRUPT);
    }

    /**
     * A signal-delivery stop: the signal is held and delivered when the thread resumes, unless the filter says it
     * is a trap of ours.
     */
    void stoppedWithSignal(int signal) {
        stoppedAt(Stop.SIGNAL);
        pendingSignal = filter.deliver(this, signal);
    }

    /**
     * Stopped by a breakpoint of ours at the return address it was let run to, held from {@code nanos} (it was
     * running), with {@code registers} as it stopped; resumed with no signal.
     */
    void parkAtReturn(long nanos, long[] registers) {
        stoppedAt(Stop.RETURN);
        pendingSignal = 0;
        heldSince(nanos, true);
        stopRegisters = registers;
    }

    /** Leaves its stop (continued, listening or borrowed): registers read in the stop are stale from here. */
    void resumed(State now) {
        state = now;
        stopRegisters = null;
    }

    /** The signal held at its signal-delivery stop (0: none), no longer held. */
    int takePendingSignal() {
        int sig = pendingSignal;
        pendingSignal = 0;
        return sig;
    }

    /** A signal it dequeued while running our system call: sent again when it resumes ({@link #requeue}). */
    void requeueLater(int signal) {
        requeueSignals |= 1L << (signal - 1);
    }

    long[] stopRegisters() {
        return stopRegisters;
    }

    void stopRegisters(long[] words) {
        stopRegisters = words;
    }

    /** Given back with its own system call restarted by hand ({@link SyscallRestart}). */
    void restartedByHand(SyscallRestart restart) {
        restarted = restart;
    }

    /** The hand restart to check at this stop, if any; forgotten from here (the thread is known to have stopped). */
    SyscallRestart takeRestarted() {
        var r = restarted;
        restarted = null;
        return r;
    }

    // ---- ptrace requests ----

    /** PTRACE_CONT with {@code sig}; ESRCH (killed while stopped) is reaped later. */
    void cont(int sig) {
        int errno = Ptrace.ptraceErrno(Ptrace.PTRACE_CONT, tid, 0, sig);
        resumed(State.RUNNING);
        stop = Stop.NONE;
        if (errno != 0 && errno != Errno.ESRCH) {
            throw SysException.of("ptrace(PTRACE_CONT)", errno, "thread " + tid);
        }
    }

    /** PTRACE_LISTEN: a group-stopped thread stays stopped, but reports what happens to it. */
    void listen() {
        int errno = Ptrace.ptraceErrno(Ptrace.PTRACE_LISTEN, tid, 0, 0);
        resumed(State.LISTENING);
        if (errno != 0 && errno != Errno.ESRCH) {
            throw SysException.of("ptrace(PTRACE_LISTEN)", errno, "thread " + tid);
        }
    }

    void interrupt() {
        int errno = Ptrace.ptraceErrno(Ptrace.PTRACE_INTERRUPT, tid, 0, 0);
        if (errno != 0 && errno != Errno.ESRCH) {
            throw SysException.of("ptrace(PTRACE_INTERRUPT)", errno, "thread " + tid);
        }
    }

    /** Resumes a held thread: a group-stopped one listens, any other runs with the signal it held. */
    void resumeFromHold(int pid) {
        requeue(pid);
        if (stop == Stop.GROUP) {
            listen();
        } else {
            cont(takePendingSignal());
        }
    }

    /** PTRACE_DETACH of a stopped thread, passing on the signals it holds; a group-stopped thread stays stopped. */
    void detach(int pid) {
        requeue(pid);
        int sig = stop == Stop.SIGNAL ? pendingSignal : 0;
        int errno = Ptrace.ptraceErrno(Ptrace.PTRACE_DETACH, tid, 0, sig);
        if (errno != 0) {
            // Dead or dying: reap it if it is already a zombie we owe a wait.
            try {
                Ptrace.waitpid(tid, Ptrace.WNOHANG | Ptrace.__WALL);
            } catch (SysException ignored) {
                // not ours any more
            }
        }
    }

    /** Sends again, to this thread, the signals it dequeued while it ran a system call for us. */
    private void requeue(int pid) {
        for (int sig = 1; requeueSignals != 0 && sig <= 64; sig++) {
            if ((requeueSignals & (1L << (sig - 1))) != 0) {
                requeueSignals &= ~(1L << (sig - 1));
                try {
                    Syscalls.tgkill(pid, tid, sig);
                } catch (ProcessVanishedException e) {
                    // gone: nothing to deliver to
                }
            }
        }
    }
}
