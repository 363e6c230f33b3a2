package dev.suture.proc;

/**
 * What the {@link Injector} may do with the process's threads: hold one (or all) for a system call, find a held
 * thread it may borrow, learn whether a thread that died took the process with it, and let them all run again.
 * Tracer thread only.
 */
interface HeldThreads {
    int pid();

    /** Whether threads are held now (by a stop of every thread, or a hold of one). */
    boolean isHeld();

    /**
     * Holds one thread for a borrowing call, leaving the others running: preferably a sleeping thread other than
     * the main one; every thread when the chosen one does not come to a plain interrupt stop. {@code label} names
     * the hold in the SUTURE_DEBUG listing.
     */
    void holdOne(String label);

    /** Lets every held thread run again, passing on the signals that arrived while they were held. */
    void resumeAll();

    /** The first held thread whose stop is {@code how}, or null. */
    TracedThread heldAt(TracedThread.Stop how);

    /** {@code t} died under us: the "process vanished" failure if the whole process went, else null. */
    RuntimeException threadDied(TracedThread t, String during);
}
