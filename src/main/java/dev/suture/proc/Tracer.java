package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.Errno;
import dev.suture.sys.NotPermittedException;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;

/**
 * Holds every thread of one process under ptrace: the public face of {@code proc}'s rooms, the one thread that
 * makes every ptrace call ({@link PtraceThread}), the traced threads and their stops ({@link TracedThreads}),
 * holds ({@link StopTheWorld}), memory ({@link ProcessMemory}) and system calls run inside the process
 * ({@link Injector}). Public methods hand their work to the ptrace thread and wait.
 *
 * <p>Attaching uses PTRACE_SEIZE, so if suture dies at any instant the process runs on. Signals that arrive while
 * a thread is held are delivered when it is resumed or released, exactly once. A process that was stopped
 * (SIGSTOP) stays stopped after {@link #close()}.
 */
public final class Tracer implements AutoCloseable {
    private final int pid;
    private final TracedThreads threads;
    private final StopTheWorld holds;
    private final ProcessMemory memory;
    private final Injector injector;
    private final ReturnTraps traps;
    private final PtraceThread ptrace;

    // made once, when attaching: linking a lambda on first use costs a fraction of a millisecond, which must not
    // fall inside a stop-the-world window
    private final Callable<List<Integer>> threadsTask;
    private final Callable<Long> stopAllTask;
    private final Callable<Void> resumeAllTask;
    /** What the next {@link #stopAll(String)} holds the threads for (set on the calling thread, read on ours). */
    private volatile String stopStep = "stop";

    private Tracer(int pid) {
        this.pid = pid;
        this.traps = new ReturnTraps(pid);
        this.threads = new TracedThreads(pid, traps);
        this.holds = new StopTheWorld(threads);
        this.memory = new ProcessMemory(threads, holds);
        this.injector = new Injector(holds, memory);
        this.threadsTask = threads::ids;
        this.stopAllTask = () -> holds.stopAll(stopStep, this::readStopRegisters, true);
        this.resumeAllTask = () -> {
            holds.resumeAll();
            return null;
        };
        this.ptrace = new PtraceThread(pid, this::listening, this::answerEvents, holds::endHold, this::releaseAtExit);
    }

    /**
     * Seizes every thread of process {@code pid} (rescanning /proc/PID/task until no new thread appears; threads
     * created later are traced automatically). The process keeps running.
     *
     * @throws ProcessVanishedException if the process is gone or goes while we attach
     * @throws NotPermittedException if the kernel refuses, naming the likely reason (another tracer...)
     */
    public static Tracer attach(int pid) {
        ProcessIds.requireUserProcess(pid);
        QuietCompiler.refresh();
        var tracer = new Tracer(pid);
        try {
            tracer.execute(() -> {
                tracer.threads.seizeAll(Syscalls.gettid(), tracer::abandon);
                tracer.memory.open();
                return null;
            });
        } catch (RuntimeException e) {
            tracer.ptrace.shutdown();
            throw e;
        }
        return tracer;
    }

    public int pid() {
        return pid;
    }

    /** The ids of the threads we trace now (sorted). */
    public List<Integer> threads() {
        return execute(threadsTask);
    }

    /** True between {@link #stopAll(String)} and {@link #resumeAll()}. */
    public boolean isHeld() {
        return execute(holds::isHeld);
    }

    /**
     * Stops every thread for {@code step} (what each thread's {@link Hold} is named): PTRACE_INTERRUPT to each,
     * then waits for each to report its stop; the threads blocked in system calls first, the running ones last.
     * Threads created meanwhile are stopped too; threads that exit are dropped. Returns when every thread we trace
     * is stopped.
     *
     * @return when the threads that were running began to be held (System.nanoTime; when none ran, when the first
     *         thread did): the start of what the program feels of this hold
     * @throws ProcessVanishedException if the process exits
     */
    public long stopAll(String step) {
        stopStep = step;
        return execute(stopAllTask);
    }

    /**
     * Every span a thread was held since attach, in the order the holds ended: callable while attached, and after
     * {@link #close()} (whose release is the last).
     */
    public List<Hold> holds() {
        return ptrace.isShutdown() ? holds.holds() : execute(holds::holds);
    }

    /**
     * Reads a thread's registers as soon as it has stopped, while the other threads are still coming to their
     * stops: the window's register reads overlap the wait instead of following it.
     */
    private void readStopRegisters(TracedThread t) {
        if (t.stopRegisters() != null) {
            return; // read when it settled at this very stop
        }
        long[] w = new long[Registers.WORDS];
        if (Ptrace.getRegistersErrno(t.tid(), w) == 0) {
            t.stopRegisters(w);
        }
    }

    /**
     * Lets every thread run again, those that were running when held first, passing on the signals that arrived
     * while they were held.
     */
    public void resumeAll() {
        execute(resumeAllTask);
    }

    /** The registers of a held thread (read as it stopped, when {@link #stopAll(String)} stopped it). */
    public Registers registers(int tid) {
        return execute(() -> {
            var t = holds.heldThread(tid);
            if (t.stopRegisters() != null) {
                return Registers.of(t.stopRegisters());
            }
            long[] w = new long[Registers.WORDS];
            Ptrace.getRegisters(t.tid(), w);
            return Registers.of(w);
        });
    }

    /** Sets the registers of a held thread. */
    public void setRegisters(int tid, Registers registers) {
        execute(() -> {
            var t = holds.heldThread(tid);
            t.stopRegisters(null);
            Ptrace.setRegisters(t.tid(), registers.words());
            return null;
        });
    }

    /**
     * Reads {@code length} bytes at {@code address} with one process_vm_readv (runs on the calling thread; the
     * process need not be stopped).
     *
     * @throws SysException (EFAULT) if any of the range is not mapped
     */
    public byte[] read(long address, int length) {
        byte[] out = new byte[length];
        int n = read(address, out, 0, length);
        if (n != length) {
            throw new SysException("process_vm_readv", Errno.EFAULT, "process " + pid + ": only " + n + " of "
                    + length + " bytes at 0x" + Long.toHexString(address) + " are readable");
        }
        return out;
    }

    /** Reads up to {@code length} bytes at {@code address} into {@code dst}; returns how many were readable. */
    public int read(long address, byte[] dst, int offset, int length) {
        return memory.read(address, dst, offset, length);
    }

    /**
     * Reads {@code count} ranges with one process_vm_readv into {@code dst}, packed from index 0 (runs on the
     * calling thread); returns the bytes read in total. The kernel stops at the first range it cannot read to its
     * end: the ranges wholly below the total are complete, the others are to be read again with {@link #read}.
     */
    public long readRanges(long[] addresses, int[] lengths, int count, byte[] dst) {
        return memory.readRanges(addresses, lengths, count, dst);
    }

    /**
     * Writes {@code bytes} at {@code address} through /proc/PID/mem, which writes even read-only text (a private
     * copy of the page, as a debugger's breakpoint does); falls back to PTRACE_POKEDATA on a held thread.
     */
    public void write(long address, byte[] bytes) {
        execute(() -> {
            memory.write(address, bytes);
            return null;
        });
    }

    /** Links and exercises every native call on the tracer thread, ahead of a time-critical window. */
    public void warmUp() {
        execute(() -> {
            Syscalls.warmUp();
            Registers.of(new long[Registers.WORDS]);
            return null;
        });
        if (holds.isHeld()) {
            return;
        }
        // the Java side of a window's calls, linked and loaded now: the first call of each costs up to a
        // millisecond (lambda linkage, class loading) that would otherwise fall inside the window
        try {
            registers(-1);
        } catch (SutureException expected) {
            // no thread -1: the call went through the same path a held thread's does, up to the lookup
        }
    }

    /**
     * Runs {@code work} on the tracer thread, so a sequence of calls (stop, read registers, write, resume) pays
     * one hand-off between threads instead of one per call. Tracer methods called inside run directly.
     */
    public <T> T onTracerThread(Supplier<T> work) {
        return execute(work::get);
    }

    /** Releases every thread (PTRACE_DETACH), passing on held signals; a group-stopped process stays stopped. */
    @Override
    public void close() {
        if (ptrace.isShutdown()) {
            return;
        }
        try {
            execute(() -> {
                release();
                return null;
            });
        } finally {
            ptrace.shutdown();
            holds.printHolds();
        }
    }

    // ---- waiting at return addresses ----

    /** Where thread {@code tid} returns from a frame whose CFA is {@code sp}: to {@code address}. */
    public record Exit(int tid, long address, long sp) {}

    /**
     * Arms, for each of {@code exits}, a breakpoint that parks its thread when it is about to execute the address
     * with its stack pointer at the exit's sp or above: it stops there and is held until the next
     * {@link #resumeAll()} or {@link #releaseParked()}. A breakpoint already armed at the same exit is kept; those
     * of threads not listed are disarmed. Each dies with suture ({@link dev.suture.sys.PerfBreakpoint}).
     *
     * @throws SysException when the kernel refuses a perf breakpoint (a container's policy, an old kernel)
     * @throws CannotWait when the program catches or blocks every signal a breakpoint could send it
     */
    public void armReturns(List<Exit> exits) {
        execute(() -> {
            traps.armOnly(exits);
            return null;
        });
    }

    /**
     * Inside a window that wrote: no breakpoint parks a thread any more, and none is closed yet (that waits for
     * {@link #disarmReturns()}, after the resume).
     */
    public void retireReturns() {
        execute(() -> {
            traps.retireAll();
            return null;
        });
    }

    /**
     * Why suture cannot wait at returns in this process (the kernel's refusal of a perf breakpoint is a
     * {@link SysException}): the program catches, or the threads to wait for block, every signal a breakpoint
     * could send without harm.
     */
    public static final class CannotWait extends SutureException {
        CannotWait(String message) {
            super(Kind.UNSAFE, message);
        }
    }

    /** Disarms every breakpoint ({@link #close()} does too). */
    public void disarmReturns() {
        execute(() -> {
            traps.disarmAll();
            return null;
        });
    }

    /** How a wait at return addresses ended: which of the threads waited for are parked, and which are not. */
    public record ReturnWait(List<Integer> parked, List<Integer> waiting, boolean pastBudget) {}

    /**
     * Lets the process run until every thread of {@code tids} is parked at its armed return (threads that exit
     * count as parked), or {@code untilNanos} (System.nanoTime) passes with none parked, or the first parked one
     * has been held {@code budgetNanos}: then the parked ones run on again ({@code pastBudget}). Past
     * {@code untilNanos} with some parked, it waits within their budget.
     */
    public ReturnWait awaitReturns(List<Integer> tids, long untilNanos, long budgetNanos) {
        return execute(() -> {
            while (true) {
                threads.serviceEvents();
                if (threads.vanished()) {
                    throw threads.gone("a wait at return addresses");
                }
                int waiting = 0;
                long since = Long.MAX_VALUE;
                for (int tid : tids) {
                    var t = threads.get(tid);
                    if (t == null) {
                        continue; // exited: as good as parked
                    }
                    if (t.parked()) {
                        since = Math.min(since, t.heldSince());
                    } else {
                        waiting++;
                    }
                }
                long now = System.nanoTime();
                if (waiting == 0) {
                    return returnWait(tids, false);
                }
                if (since != Long.MAX_VALUE && now - since > budgetNanos) {
                    var wait = returnWait(tids, true);
                    holds.releaseParked();
                    return wait;
                }
                if (since == Long.MAX_VALUE && now > untilNanos) {
                    return returnWait(tids, false);
                }
                LockSupport.parkNanos(RETURN_POLL_NANOS);
            }
        });
    }

    /** {@code tids} split into the parked (or exited) and the others, now. */
    private ReturnWait returnWait(List<Integer> tids, boolean pastBudget) {
        var parked = new ArrayList<Integer>();
        var waiting = new ArrayList<Integer>();
        for (int tid : tids) {
            var t = threads.get(tid);
            (t == null || t.parked() ? parked : waiting).add(tid);
        }
        return new ReturnWait(parked, waiting, pastBudget);
    }

    /** How often a wait at return addresses looks for threads that came there (each look costs a waitid). */
    private static final long RETURN_POLL_NANOS = 100_000;

    /** Lets threads parked at a return run on, outside a hold. */
    public void releaseParked() {
        execute(() -> {
            holds.releaseParked();
            return null;
        });
    }

    // ---- system calls run inside the process ----

    /** Who is told about each borrowed thread before its registers change (the journal, principle 3). */
    public void injectionLog(InjectionLog log) {
        injector.log(log == null ? InjectionLog.NONE : log);
    }

    /**
     * mmap(2) run inside the process by a borrowed held thread (the process is stopped for it if it runs); returns
     * the address of the new mapping.
     */
    public long mmap(long address, long length, int prot, int flags) {
        return execute(() -> injector.mmap(address, length, prot, flags));
    }

    /**
     * An anonymous private mapping of {@code length} bytes placed where a rel32 jump reaches it from every byte of
     * [{@code from}, {@code to}) (e.g. a module's text), nearest first (MAP_FIXED_NOREPLACE).
     */
    public long mmapNear(long from, long to, long length, int prot) {
        return execute(() -> injector.mmapNear(from, to, length, prot));
    }

    public void munmap(long address, long length) {
        execute(() -> injector.syscall("munmap", Injector.SYS_MUNMAP, address, length, 0, 0, 0, 0));
    }

    /**
     * Calls {@code function} with up to six integer arguments (none, as the dynamic linker calls an IFUNC
     * resolver) on a borrowed thread while the rest of the process runs, and returns its result; a function that
     * crashes or does not return within {@code timeout} is abandoned and the thread given back as it was (an
     * exception says which). A thread the {@code guard} refuses is given back untouched and held again later.
     */
    public long call(String name, long function, java.time.Duration timeout, CallGuard guard, long... args) {
        return execute(() -> injector.call(name, function, timeout.toNanos(), guard, args));
    }

    /**
     * Where a held thread may not run a function for suture: a function that takes a lock the thread itself may
     * hold (libgcc's object lock, taken by its unwinder) would wait for it forever. A thread refused is given back
     * untouched, runs on for a moment, and is held again, until the call's timeout.
     */
    public interface CallGuard {
        /** Whether the thread stopped at {@code rip}, inside a system call or not, may run the function. */
        boolean mayBorrow(long rip, boolean inSystemCall);

        /** What a refusal means, for the message when the timeout ends the retries. */
        String why();

        /** Any thread: a function that takes no lock (an IFUNC resolver). */
        CallGuard ANY = new CallGuard() {
            @Override
            public boolean mayBorrow(long rip, boolean inSystemCall) {
                return true;
            }

            @Override
            public String why() {
                return "never";
            }
        };
    }

    public void mprotect(long address, long length, int prot) {
        execute(() -> injector.syscall("mprotect", Injector.SYS_MPROTECT, address, length, prot, 0, 0, 0));
    }

    // ---- on the ptrace thread ----

    /**
     * Runs {@code work} on the ptrace thread. A failure that happens because the whole process is going (a thread
     * vanished under us, /proc/PID/mem failing) becomes the one "process N vanished" failure.
     */
    private <T> T execute(Callable<T> work) {
        try {
            return ptrace.execute(work);
        } catch (SutureException e) {
            if (e instanceof ProcessVanishedException v && v.isProcess(pid)) {
                throw e;
            }
            if (threads.vanished() || ThreadState.processGone(pid,
                    e instanceof ProcessVanishedException ? ThreadState.VANISH_GRACE_MILLIS : 0)) {
                threads.markVanished("a failed call found every thread dying: " + e.getMessage());
                throw ProcessVanishedException.process(pid, e instanceof SysException s ? s.call() : "an operation");
            }
            throw e;
        }
    }

    /** The traced thread {@code tid} (null if none), for tests that set up a thread's state by hand. */
    TracedThread traced(int tid) {
        return execute(() -> threads.get(tid));
    }

    /** Whether threads run that may report events (none is held, the process is there). */
    private boolean listening() {
        return !holds.isHeld() && !threads.vanished() && !threads.isEmpty();
    }

    /** While the process runs and no task comes: answers what the tracees report. */
    private boolean answerEvents() {
        try {
            return threads.serviceEvents();
        } catch (RuntimeException e) {
            return false; // a vanished process or thread is recorded in our state; callers see it on their next call
        }
    }

    private void release() {
        try {
            traps.disarmAll(); // first: no trap fires while the threads are let go
        } finally {
            holds.releaseAll();
        }
        memory.close();
    }

    /** After a failed attach: release whatever we seized. */
    private void abandon() {
        try {
            release();
        } catch (RuntimeException ignored) {
            // the process may be going away; nothing more to release
        }
    }

    /** The ptrace thread ends (an abandoned tracer): detach what we can so the process runs on untraced. */
    private void releaseAtExit() {
        if (!threads.vanished() && !threads.isEmpty()) {
            try {
                release();
            } catch (RuntimeException ignored) {
                // best effort
            }
        }
        holds.heedStopSignals(); // a hold the vanished process ended, or a release that failed
    }
}
