package dev.suture.proc;

import dev.suture.sys.Syscalls;

/**
 * The priority tricks of one tracer's holds (DESIGN principle 1): the tracer thread at real-time priority while it
 * loops over many threads, and the JIT compiler threads off the cores while one thread is borrowed. When each pays
 * and by how much is in docs/apply.md ("What keeps the holds short"). Tracer thread only.
 */
final class HoldPriority {
    /** The fewest threads a stop-all must stop for {@link #boost()} to pay for its two changes of policy. */
    static final int BOOST_MIN_THREADS = 16;

    /** Whether the tracer thread may raise its priority: -1 not known yet, 0 no, 1 yes. */
    private int boostable = -1;
    private boolean boosted;
    /** Whether this tracer has the JIT compiler quiet for a hold of one thread ({@link QuietCompiler}). */
    private boolean compilerQuiet;

    /**
     * Raises the tracer thread to SCHED_FIFO 1 while it issues a request to every thread or works with them held,
     * so a thread it wakes cannot preempt it halfway; never while it waits for stops ({@link #unboost()}), when the
     * threads need the cores. A thread that may not (no CAP_SYS_NICE) or runs under another policy stays as it is.
     */
    void boost() {
        if (boosted || boostable == 0) {
            return;
        }
        if (boostable < 0) {
            boostable = Syscalls.scheduler() == Syscalls.SCHED_OTHER ? 1 : 0;
        }
        if (boostable == 1) {
            if (Syscalls.setScheduler(Syscalls.SCHED_FIFO | Syscalls.SCHED_RESET_ON_FORK, 1) == 0) {
                boosted = true;
            } else {
                boostable = 0;
            }
        }
    }

    /** Back to the ordinary policy (its nice value kept), if {@link #boost()} raised it. */
    void unboost() {
        if (boosted) {
            boosted = false;
            Syscalls.setScheduler(Syscalls.SCHED_OTHER, 0);
        }
    }

    /** A borrowing hold starts: the compiler threads to SCHED_IDLE. */
    void quietCompiler() {
        if (!compilerQuiet) {
            compilerQuiet = true;
            QuietCompiler.quiet();
        }
    }

    /** The hold ended: the compiler threads back. */
    void loudCompiler() {
        if (compilerQuiet) {
            compilerQuiet = false;
            QuietCompiler.loud();
        }
    }
}
