package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.Errno;
import dev.suture.sys.NotPermittedException;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;
import dev.suture.sys.WaitStatus;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Holds every thread of one process under ptrace. All ptrace calls run on one dedicated platform thread (Linux
 * ties a tracee to the thread that attached); public methods hand their work to it and wait. While the process
 * runs, that thread also services what the tracees report (new threads, signals to pass on, group-stops, exits),
 * reaping only the thread ids it owns, never other children of the JVM.
 *
 * <p>Attaching uses PTRACE_SEIZE, so if suture dies at any instant the process runs on. Signals that arrive while
 * a thread is held are delivered when it is resumed or released, exactly once. A process that was stopped
 * (SIGSTOP) stays stopped after {@link #close()}.
 */
public final class Tracer implements AutoCloseable {
    private static final int OPTIONS = Ptrace.PTRACE_O_TRACECLONE | Ptrace.PTRACE_O_TRACESYSGOOD;
    private static final long STOP_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final long IDLE_POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /**
     * How long a wait for threads to stop (a stop-all's, the injector's for its borrowed thread) polls without
     * sleeping, yielding its core, after the last stop it saw.
     */
    static final long YIELD_NANOS = TimeUnit.MILLISECONDS.toNanos(2);
    private static final long MIN_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(20);

    private final int pid;
    private final Thread thread;
    private final LinkedBlockingQueue<Runnable> tasks = new LinkedBlockingQueue<>();
    private volatile boolean shutdown;

    // Everything below is touched only on the tracer thread.
    private final Map<Integer, Tracee> tracees = new LinkedHashMap<>();
    private boolean held;
    private volatile boolean vanished;
    /** How {@link #vanished} came to be set (the first time), told by the calls that find it set. */
    private volatile String vanishedHow;
    private int tracerTid;
    private int memFd = -1;
    private final Injector injector = new Injector(this);
    /** SUTURE_DEBUG: the spans all threads were held, printed by {@link #close()} (never inside a window). */
    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;
    private final long[] holds = new long[64];
    private int holdCount;
    private long holdStart;
    private volatile InjectionLog injectionLog = InjectionLog.NONE;

    /** What we know of one traced thread. */
    static final class Tracee {
        final int tid;
        State state = State.RUNNING;
        /** How the current stop was entered; decides how it may be resumed and whether it can be borrowed. */
        Stop stop = Stop.NONE;
        /** A signal that stopped the thread on its way in (signal-delivery-stop): passed on when it resumes. */
        int pendingSignal;
        /** Signals (bit n-1 for signal n) swallowed while we ran code on this thread: sent again when it resumes. */
        long requeueSignals;
        /** The last stop said the whole process is in group-stop (SIGSTOP and friends). */
        boolean groupStopped;
        /** Its registers, read as it came to the stop of {@link #stopAll()}; null once it runs again. */
        long[] stopRegisters;
        /**
         * Set when it was given back from a system call we ran on it with its own call restarted by hand: the
         * registers it was taken with and those it was given back with. The first are put back at its next stop
         * if it is still there ({@link #settle}); null once it is known to have run on.
         */
        SyscallRestart restarted;

        Tracee(int tid) {
            this.tid = tid;
        }

        /** Leaves its stop (continued, listening or borrowed): registers read in the stop are stale from here. */
        void resumed(State now) {
            state = now;
            stopRegisters = null;
        }
    }

    enum State { RUNNING, STOPPED, LISTENING }

    enum Stop { NONE, INTERRUPT, GROUP, SIGNAL, CLONE, SYSCALL, OTHER }

    private Tracer(int pid) {
        this.pid = pid;
        this.thread = Thread.ofPlatform().daemon().name("suture-tracer-" + pid).unstarted(this::loop);
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
        tracer.thread.start();
        try {
            tracer.call(() -> {
                tracer.seizeAll();
                return null;
            });
        } catch (RuntimeException e) {
            tracer.shutdown = true;
            tracer.thread.interrupt();
            throw e;
        }
        return tracer;
    }

    public int pid() {
        return pid;
    }

    /** The ids of the threads we trace now (sorted). */
    public List<Integer> threads() {
        return call(threadsTask);
    }

    /**
     * A plain loop, made once, since a window asks for the threads: a stream here was seen to take 40-54 us of a
     * one-thread window (sorting one thread id), after hundreds of rehearsed windows.
     */
    private final Callable<List<Integer>> threadsTask = () -> {
        var tids = new Integer[tracees.size()];
        int n = 0;
        for (var tid : tracees.keySet()) {
            tids[n++] = tid;
        }
        Arrays.sort(tids);
        return List.of(tids);
    };

    /** True between {@link #stopAll()} and {@link #resumeAll()}. */
    public boolean isHeld() {
        return call(() -> held);
    }

    /**
     * Stops every thread: PTRACE_INTERRUPT to each, then waits for each to report its stop. Threads created
     * meanwhile are stopped too; threads that exit are dropped. Returns when every thread we trace is stopped.
     *
     * @throws ProcessVanishedException if the process exits
     */
    public void stopAll() {
        call(stopAllTask);
    }

    // made once, when attaching: linking a lambda on first use costs a fraction of a millisecond, which must not
    // fall inside a stop-the-world window
    private final Callable<Void> stopAllTask = () -> {
        stopAllHere(this::readStopRegisters, true);
        return null;
    };

    /**
     * Reads a thread's registers as soon as it has stopped, while the other threads are still coming to their
     * stops: the window's register reads overlap the wait instead of following it. A stopped thread's registers
     * change only by our hand.
     */
    private void readStopRegisters(Tracee t) {
        if (t.stopRegisters != null) {
            return; // read by settle() at this very stop
        }
        long[] w = new long[Registers.WORDS];
        if (Syscalls.getRegistersErrno(t.tid, w) == 0) {
            t.stopRegisters = w;
        }
    }
    private final Callable<Void> resumeAllTask = () -> {
        resumeAllHere();
        return null;
    };

    /** Lets every thread run again, passing on the signals that arrived while they were held. */
    public void resumeAll() {
        call(resumeAllTask);
    }

    /** The registers of a held thread (read as it stopped, when {@link #stopAll()} stopped it). */
    public Registers registers(int tid) {
        return call(() -> {
            var t = heldThread(tid);
            if (t.stopRegisters != null) {
                return Registers.of(t.stopRegisters);
            }
            long[] w = new long[Registers.WORDS];
            Syscalls.getRegisters(t.tid, w);
            return Registers.of(w);
        });
    }

    /** Sets the registers of a held thread. */
    public void setRegisters(int tid, Registers registers) {
        call(() -> {
            var t = heldThread(tid);
            t.stopRegisters = null;
            Syscalls.setRegisters(t.tid, registers.words());
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
        try {
            return Syscalls.readMemory(pid, address, dst, offset, length);
        } catch (SysException e) {
            return (int) unreadable(e);
        }
    }

    /**
     * Reads {@code count} ranges with one process_vm_readv into {@code dst}, packed from index 0 (runs on the
     * calling thread); returns the bytes read in total. The kernel stops at the first range it cannot read to its
     * end: the ranges wholly below the total are complete, the others are to be read again with {@link #read}.
     */
    public long readRanges(long[] addresses, int[] lengths, int count, byte[] dst) {
        try {
            return Syscalls.readMemoryRanges(pid, addresses, lengths, count, dst);
        } catch (SysException e) {
            return unreadable(e);
        }
    }

    /** A failed process_vm_readv: the process vanished (thrown), or nothing was readable (EFAULT: 0 bytes). */
    private long unreadable(SysException e) {
        if (e instanceof ProcessVanishedException) {
            throw ProcessVanishedException.process(pid, "memory read");
        }
        if (e.errno() == Errno.EFAULT) {
            return 0;
        }
        throw e;
    }

    /**
     * Writes {@code bytes} at {@code address} through /proc/PID/mem, which writes even read-only text (a private
     * copy of the page, as a debugger's breakpoint does); falls back to PTRACE_POKEDATA on a held thread.
     */
    public void write(long address, byte[] bytes) {
        call(() -> {
            writeHere(address, bytes);
            return null;
        });
    }

    /** Links and exercises every native call on the tracer thread, ahead of a time-critical window. */
    public void warmUp() {
        call(() -> {
            Syscalls.warmUp();
            Registers.of(new long[Registers.WORDS]);
            return null;
        });
        if (held) {
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
    public <T> T run(Supplier<T> work) {
        return call(work::get);
    }

    /** Releases every thread (PTRACE_DETACH), passing on held signals; a group-stopped process stays stopped. */
    @Override
    public void close() {
        if (shutdown) {
            return;
        }
        try {
            call(() -> {
                releaseAll();
                return null;
            });
        } finally {
            shutdown = true;
            thread.interrupt();
            if (DEBUG) {
                printHolds();
            }
        }
    }

    // ---- remote system calls ----

    /** Who is told about each borrowed thread before its registers change (the journal, principle 3). */
    public void injectionLog(InjectionLog log) {
        this.injectionLog = log == null ? InjectionLog.NONE : log;
    }

    InjectionLog injectionLog() {
        return injectionLog;
    }

    /**
     * mmap(2) run inside the process by a borrowed held thread (the process is stopped for it if it runs); returns
     * the address of the new mapping.
     */
    public long mmap(long address, long length, int prot, int flags) {
        return call(() -> injector.mmap(address, length, prot, flags));
    }

    /**
     * An anonymous private mapping of {@code length} bytes placed where a rel32 jump reaches it from every byte of
     * [{@code from}, {@code to}) (e.g. a module's text), nearest first (MAP_FIXED_NOREPLACE).
     */
    public long mmapNear(long from, long to, long length, int prot) {
        return call(() -> {
            SutureException last = null;
            for (int attempt = 0; attempt < 3; attempt++) {
                long at = Maps.findFreeWithin(Maps.read(pid), from, to, length);
                try {
                    return injector.mmap(at, length, prot, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS
                            | Mman.MAP_FIXED_NOREPLACE);
                } catch (SysException e) {
                    if (e.errno() != Errno.EEXIST) {
                        throw e;
                    }
                    last = e; // the process mapped something there meanwhile: look again
                }
            }
            throw last;
        });
    }

    public void munmap(long address, long length) {
        call(() -> injector.syscall("munmap", Injector.SYS_MUNMAP, address, length, 0, 0, 0, 0));
    }

    public void mprotect(long address, long length, int prot) {
        call(() -> injector.syscall("mprotect", Injector.SYS_MPROTECT, address, length, prot, 0, 0, 0));
    }

    // ---- the tracer thread ----

    private void loop() {
        tracerTid = Syscalls.gettid();
        long idle = MIN_POLL_NANOS;
        while (!shutdown) {
            Runnable task;
            try {
                task = tasks.poll(idle, TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                continue; // shutdown is checked above
            }
            if (task != null) {
                task.run();
                if (!held) {
                    loudCompiler(); // a hold that ended in an exception
                    heedStopSignals();
                }
            } else if (!held && !vanished && !tracees.isEmpty()) {
                // Tracees wait in their stops until we answer: poll often right after an event (clones and
                // signals come in bursts), back off to IDLE_POLL_NANOS when the process is quiet.
                boolean answered = false;
                try {
                    answered = serviceEvents();
                } catch (RuntimeException e) {
                    // A vanished process or thread is recorded in our state; callers see it on their next call.
                }
                idle = answered ? MIN_POLL_NANOS : Math.min(IDLE_POLL_NANOS, idle * 2);
            }
        }
        // Whatever is left (an abandoned tracer): detach what we can so the process runs on untraced.
        if (!vanished && !tracees.isEmpty()) {
            try {
                releaseAll();
            } catch (RuntimeException ignored) {
                // best effort
            }
        }
        heedStopSignals(); // a hold the vanished process ended, or a release that failed
    }

    /**
     * Runs {@code work} on the tracer thread. A failure that happens because the whole process is going (a thread
     * vanished under us, /proc/PID/mem failing) becomes the one "process N vanished" failure.
     */
    private <T> T call(Callable<T> work) {
        try {
            return callOnTracer(work);
        } catch (SutureException e) {
            if (e instanceof ProcessVanishedException && e.getMessage().startsWith("process " + pid + " vanished")) {
                throw e;
            }
            if (vanished || ThreadState.processGone(pid,
                    e instanceof ProcessVanishedException ? ThreadState.VANISH_GRACE_MILLIS : 0)) {
                markVanished("a failed call found every thread dying: " + e.getMessage());
                throw ProcessVanishedException.process(pid, e instanceof SysException s ? s.call() : "an operation");
            }
            throw e;
        }
    }

    private <T> T callOnTracer(Callable<T> work) {
        if (Thread.currentThread() == thread) {
            try {
                return work.call();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new SutureException(SutureException.Kind.INTERNAL, e.toString(), e);
            }
        }
        if (shutdown) {
            throw new SutureException(SutureException.Kind.INTERNAL, "the tracer of process " + pid
                    + " is closed");
        }
        var task = new FutureTask<>(work);
        tasks.add(task);
        try {
            return task.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                r.addSuppressed(new Exception("called from here"));
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new SutureException(SutureException.Kind.INTERNAL, String.valueOf(e.getCause()), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SutureException(SutureException.Kind.INTERNAL, "interrupted while waiting for the tracer");
        }
    }

    boolean onTracerThread() {
        return Thread.currentThread() == thread;
    }

    // ---- attach ----

    private void seizeAll() {
        int quietRounds = 0;
        while (quietRounds < 2) {
            serviceEvents();
            boolean found = false;
            for (int tid : listTasks()) {
                if (tracees.containsKey(tid)) {
                    continue;
                }
                int errno = Syscalls.ptraceErrno(Ptrace.PTRACE_SEIZE, tid, 0, OPTIONS);
                if (errno == 0) {
                    tracees.put(tid, new Tracee(tid));
                    found = true;
                } else if (errno == Errno.ESRCH) {
                    continue; // the thread ended between the listing and now
                } else if (errno == Errno.EPERM && (tracerOf(tid) == tracerTid || isZombie(tid))) {
                    if (tracerOf(tid) == tracerTid) {
                        // Traced already: created by a thread we hold (auto-attached); its clone event is pending.
                        tracees.put(tid, new Tracee(tid));
                        found = true;
                    }
                } else {
                    var e = errno == Errno.EPERM
                            ? NotPermittedException.forPtrace("ptrace(PTRACE_SEIZE)", errno, pid, tid)
                            : SysException.of("ptrace(PTRACE_SEIZE)", errno, "thread " + tid + " of process " + pid);
                    abandon();
                    throw e;
                }
            }
            quietRounds = found ? 0 : quietRounds + 1;
        }
        if (tracees.isEmpty()) {
            markVanished("no thread left to attach to");
            throw ProcessVanishedException.process(pid, "attach");
        }
        try {
            memFd = Syscalls.open("/proc/" + pid + "/mem", Syscalls.O_RDWR);
        } catch (SysException e) {
            memFd = -1; // writes fall back to PTRACE_POKEDATA
        }
    }

    /** Thread ids in /proc/PID/task; the process having gone is {@link ProcessVanishedException}. */
    private List<Integer> listTasks() {
        var tids = new ArrayList<Integer>();
        try (var dir = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path p : dir) {
                tids.add(Integer.parseInt(p.getFileName().toString()));
            }
        } catch (NoSuchFileException e) {
            markVanished("its /proc/PID/task is gone");
            abandon();
            throw ProcessVanishedException.process(pid, "attach");
        } catch (IOException e) {
            throw new SysException("opendir", Errno.EIO, "cannot list /proc/" + pid + "/task: " + e.getMessage());
        }
        return tids;
    }

    private int tracerOf(int tid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/task/" + tid + "/status"))) {
                if (line.startsWith("TracerPid:")) {
                    return Integer.parseInt(line.substring(10).strip());
                }
            }
        } catch (IOException | NumberFormatException e) {
            // gone
        }
        return 0;
    }

    private boolean isZombie(int tid) {
        char state = ThreadState.of(pid, tid);
        return state == 'Z' || state == 'X' || state == '?';
    }

    /** After a failed attach: release whatever we seized. */
    private void abandon() {
        try {
            releaseAll();
        } catch (RuntimeException ignored) {
            // the process may be going away; nothing more to release
        }
    }

    // ---- events while running ----

    /** Reaps and answers the stops of running threads: clone events, signals to pass on, group-stops, exits. */
    private boolean serviceEvents() {
        if (tracees.isEmpty()) {
            // seizeAll's first look, before any thread is ours: another tracer's event, or a child of this JVM
            // about to be reaped, would make peekWaitable non-zero, and the empty map below read as every thread
            // gone. It did: FaultInjectionTest's recovery (two walkers in one JVM) found its live target "vanished".
            return false;
        }
        int who = Syscalls.peekWaitable();
        if (who == 0) {
            return false;
        }
        boolean answered = false;
        for (var t : List.copyOf(tracees.values())) {
            WaitStatus ws;
            try {
                ws = Syscalls.waitpid(t.tid, Ptrace.WNOHANG | Ptrace.__WALL);
            } catch (ProcessVanishedException e) {
                echild(t);
                drop(t);
                continue;
            }
            if (ws != null) {
                answered = true;
                answerWhileRunning(t, ws);
            }
        }
        if (tracees.isEmpty()) {
            markVanished("its last thread reported its exit (or ECHILD) while it ran");
        }
        return answered;
    }

    private void answerWhileRunning(Tracee t, WaitStatus ws) {
        if (ws.gone()) {
            drop(t);
            return;
        }
        if (!ws.stopped()) {
            return;
        }
        settle(t);
        int sig = ws.stopSignal();
        switch (ws.event()) {
            case Ptrace.PTRACE_EVENT_CLONE -> {
                adoptClone(t);
                cont(t, 0);
            }
            case Ptrace.PTRACE_EVENT_STOP -> {
                if (Ptrace.isStopSignal(sig)) {
                    // The process is in group-stop: let it stay stopped, but keep it ours.
                    t.groupStopped = true;
                    t.stop = Stop.GROUP;
                    listen(t);
                } else {
                    // The first stop of a new thread, a late interrupt, or the end of a group-stop (SIGCONT).
                    t.groupStopped = false;
                    cont(t, 0);
                }
            }
            case 0 -> cont(t, ws.syscallStop() ? 0 : sig); // a signal on its way to the thread: pass it on
            default -> cont(t, 0);
        }
    }

    /**
     * At the first stop of a thread given back with its system call restarted by hand: if it has not run since
     * (its registers are still those it was given back with), it gets back the registers the kernel had left,
     * and the kernel, leaving this stop (all of which are in its signal path), restarts the call by its own
     * rules, or fails it with EINTR for the signal this stop may be delivering. Either way we know it from here.
     */
    private void settle(Tracee t) {
        var restarted = t.restarted;
        if (restarted == null) {
            return;
        }
        t.restarted = null;
        long[] now = new long[Registers.WORDS];
        if (Syscalls.getRegistersErrno(t.tid, now) == 0) {
            if (Arrays.equals(now, restarted.registers())
                    && Syscalls.setRegistersErrno(t.tid, restarted.from()) == 0) {
                now = restarted.from();
            }
            t.stopRegisters = now;
        }
    }

    private Tracee adoptClone(Tracee parent) {
        int child = (int) Syscalls.eventMessage(parent.tid);
        return tracees.computeIfAbsent(child, Tracee::new);
    }

    private void cont(Tracee t, int sig) {
        int errno = Syscalls.ptraceErrno(Ptrace.PTRACE_CONT, t.tid, 0, sig);
        t.resumed(State.RUNNING);
        t.stop = Stop.NONE;
        if (errno != 0 && errno != Errno.ESRCH) {
            throw SysException.of("ptrace(PTRACE_CONT)", errno, "thread " + t.tid);
        }
        // ESRCH: killed while stopped; its exit is reaped later
    }

    private void listen(Tracee t) {
        int errno = Syscalls.ptraceErrno(Ptrace.PTRACE_LISTEN, t.tid, 0, 0);
        t.resumed(State.LISTENING);
        if (errno != 0 && errno != Errno.ESRCH) {
            throw SysException.of("ptrace(PTRACE_LISTEN)", errno, "thread " + t.tid);
        }
    }

    /**
     * waitpid said ECHILD for {@code t}: we wait for it as for a thread that exited. For the leader, the first
     * evidence that the process is gone is then this, said as such: a process found alive afterwards (a rare
     * failure of FaultInjectionTest's recovery) would point here.
     */
    private void echild(Tracee t) {
        if (t.tid == pid) {
            markVanished("waitpid on its leader said ECHILD (state now " + ThreadState.of(pid, pid) + ")");
        }
    }

    /** Records that the process is gone, and the first evidence of it. */
    private void markVanished(String how) {
        if (!vanished) {
            vanishedHow = how;
            vanished = true;
        }
    }

    /** The process found gone earlier: names the call that now finds it so, and how it was first found. */
    private ProcessVanishedException gone(String during) {
        String how = vanishedHow;
        return ProcessVanishedException.process(pid, how == null ? during : during + "; seen gone as " + how);
    }

    private void drop(Tracee t) {
        tracees.remove(t.tid);
        if (t.tid == pid) {
            // The leader is reported only once every other thread is gone (or on exec): the process has exited.
            markVanished("its leader reported its exit"); // an ECHILD for it was named first (echild)
        }
    }

    // ---- stop and resume ----

    void stopAllHere() {
        stopAllHere(null, false);
    }

    /**
     * Interrupts every running thread and waits for their stops; {@code onStop}, when given, is told of each thread
     * as soon as it has stopped (release detaches it there, so no thread waits for the others). With
     * {@code boost}, the tracer thread issues the interrupts, and then works until {@link #resumeAllHere()}, at
     * real-time priority (see {@link #boost()}).
     */
    private void stopAllHere(Consumer<Tracee> onStop, boolean boost) {
        if (vanished) {
            throw gone("stop");
        }
        if (held) {
            return;
        }
        ignoreStopSignals();
        holdStart = System.nanoTime();
        serviceEvents(); // answer what is already queued, so the interrupts meet running threads
        pending.clear();
        boost &= tracees.size() >= BOOST_MIN_THREADS;
        if (boost) {
            boost();
        }
        try {
            for (var t : tracees.values()) {
                if (t.state != State.STOPPED) {
                    interrupt(t);
                    pending.add(t);
                }
            }
        } finally {
            unboost(); // the threads coming to their stops need the cores now
        }
        awaitStops(pending, "stop", onStop);
        held = true;
        if (boost) {
            boost();
        }
    }

    /**
     * Raises the tracer thread to real-time priority (SCHED_FIFO 1, above every ordinary thread) while it issues
     * a request to every thread and while it works with them held: a thread it wakes (PTRACE_CONT,
     * PTRACE_INTERRUPT) then runs on another core or after it, and cannot preempt it halfway through the loop,
     * nor can other work of this machine take its core while the target waits. Measured on this project's 2-core
     * machine (bench/stop-the-world.sh, medians of 200 cycles, runs interleaved): a full cycle over 130 threads
     * took 4.1-4.3 ms without it and 2.5-2.9 ms with it, over 34 threads 1.3-1.5 ms against 0.8-0.9 ms, over 3
     * threads the same within the noise (0.3-0.5 ms). With 1 thread (bench/apply.sh) it cost 0.1 ms of a 0.3 ms
     * window, with 8 nothing measurable either way: only a stop of {@link #BOOST_MIN_THREADS} threads or more
     * boosts. Never while waiting for stops ({@link #unboost()}): the threads need the cores then, and a yielding
     * poll at real-time priority would yield to none of them. A thread that may not (no CAP_SYS_NICE, RLIMIT_RTPRIO
     * 0) or that runs under another policy already stays as it is.
     */
    private void boost() {
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
    private void unboost() {
        if (boosted) {
            boosted = false;
            Syscalls.setScheduler(Syscalls.SCHED_OTHER, 0);
        }
    }

    /** The fewest threads a stop-all must stop for {@link #boost()} to pay for its two changes of policy. */
    private static final int BOOST_MIN_THREADS = 16;
    /** Whether the tracer thread may raise its priority: -1 not known yet, 0 no, 1 yes. */
    private int boostable = -1;
    private boolean boosted;

    /** Reused by every stop: a window allocates nothing it can avoid. */
    private final ArrayList<Tracee> pending = new ArrayList<>();

    private void interrupt(Tracee t) {
        int errno = Syscalls.ptraceErrno(Ptrace.PTRACE_INTERRUPT, t.tid, 0, 0);
        if (errno != 0 && errno != Errno.ESRCH) {
            throw SysException.of("ptrace(PTRACE_INTERRUPT)", errno, "thread " + t.tid);
        }
    }

    /**
     * Stops one thread for the injector to borrow, leaving the others running: preferably a sleeping thread other
     * than the main one, whose pause then costs the program nothing it would notice. Falls back to stopping every
     * thread when the chosen one does not come to a plain interrupt stop (a signal or event was on its way).
     */
    void holdOneHere() {
        if (vanished) {
            throw gone("stop");
        }
        if (held) {
            return;
        }
        Tracee pick = null;
        for (var t : tracees.values()) {
            if (t.state != State.RUNNING) {
                continue;
            }
            if (pick == null) {
                pick = t;
            }
            if (t.tid != pid && ThreadState.of(pid, t.tid) == 'S') {
                pick = t;
                break;
            }
        }
        quietCompiler();
        ignoreStopSignals();
        holdStart = System.nanoTime();
        serviceEvents();
        if (pick != null && pick.state == State.RUNNING) {
            interrupt(pick);
            pending.clear();
            pending.add(pick);
            awaitStops(pending, "stop", null);
            held = true;
            if (pick.state == State.STOPPED && pick.stop == Stop.INTERRUPT) {
                return;
            }
            held = false;
        }
        stopAllHere(null, false);
    }

    /**
     * Waits until every thread in {@code pending} reports a stop (adding the threads they create meanwhile); tells
     * {@code onStop} (if given) of each stopped thread at once. Each pass asks every pending thread in turn
     * (waitpid on one thread id costs the kernel no walk over the others), so the main thread, first in the
     * list, is seen as soon as it stops. Measured on 2 cores with 128 threads, this beat a loop driven by
     * waitid(P_ALL, WNOWAIT), which walks every tracee per call and names the newest thread first (stop 2.4 ms
     * against 5-7 ms).
     */
    private void awaitStops(List<Tracee> pending, String during, Consumer<Tracee> onStop) {
        long deadline = System.nanoTime() + STOP_TIMEOUT_NANOS;
        int idle = 0;
        long lastProgress = System.nanoTime();
        while (!pending.isEmpty()) {
            boolean progress = false;
            for (int i = 0; i < pending.size(); i++) {
                if (reap(pending, i, onStop)) {
                    progress = true;
                    i--;
                }
            }
            // every thread gone: the process vanished, unless this is a release (its detaches empty the map)
            if (vanished || (tracees.isEmpty() && onStop != detachTask)) {
                markVanished("every thread exited during a " + during);
                throw gone(during);
            }
            if (progress) {
                idle = 0;
                lastProgress = System.nanoTime();
            } else if (System.nanoTime() - lastProgress < YIELD_NANOS) {
                // sched_yield: the interrupted threads were often woken on this very core, and must run to reach
                // their stops; a spinning poll kept them off it until the scheduler's tick (a C probe of this
                // loop: 1.9 ms to stop one thread spinning, 13 us yielding)
                Thread.yield();
            } else {
                if (System.nanoTime() > deadline) {
                    var t = pending.getFirst();
                    throw new SysException("waitpid", Errno.EAGAIN, "thread " + t.tid + " of process " + pid
                            + " did not stop within 5 s (state " + ThreadState.of(pid, t.tid)
                            + "); it may be in uninterruptible sleep: retry later");
                }
                LockSupport.parkNanos(Math.min(1_000_000, 20_000L * ++idle));
            }
        }
    }

    /**
     * Reaps what {@code pending.get(at)} has to report, if anything; returns true (and removes it from
     * {@code pending}) when it is now stopped or gone.
     */
    private boolean reap(List<Tracee> pending, int at, Consumer<Tracee> onStop) {
        var t = pending.get(at);
        WaitStatus ws;
        try {
            ws = Syscalls.waitpid(t.tid, Ptrace.WNOHANG | Ptrace.__WALL);
        } catch (ProcessVanishedException e) {
            echild(t);
            ws = new WaitStatus(t.tid, 0); // ECHILD: reaped or released already; treat as exited
        }
        if (ws == null || !recordStop(t, ws, pending)) {
            return false;
        }
        pending.remove(t);
        if (onStop != null && t.state == State.STOPPED) {
            onStop.accept(t);
        }
        return true;
    }

    /**
     * Records the stop {@code ws} of {@code t} during stop-all; returns true when {@code t} is now stopped or gone
     * (done waiting for it). A clone event adds the new thread to {@code pending}: it starts with a stop of its own.
     */
    private boolean recordStop(Tracee t, WaitStatus ws, List<Tracee> pending) {
        if (ws.gone()) {
            drop(t);
            return true;
        }
        if (!ws.stopped()) {
            return false;
        }
        t.state = State.STOPPED;
        settle(t);
        int sig = ws.stopSignal();
        switch (ws.event()) {
            case Ptrace.PTRACE_EVENT_STOP -> {
                t.groupStopped = Ptrace.isStopSignal(sig);
                t.stop = t.groupStopped ? Stop.GROUP : Stop.INTERRUPT;
            }
            case Ptrace.PTRACE_EVENT_CLONE -> {
                t.stop = Stop.CLONE;
                var child = adoptClone(t);
                if (child.state != State.STOPPED && !pending.contains(child)) {
                    pending.add(child);
                }
            }
            case 0 -> {
                if (ws.syscallStop()) {
                    t.stop = Stop.SYSCALL;
                } else {
                    // A signal was on its way in: hold it and deliver it on resume.
                    t.stop = Stop.SIGNAL;
                    t.pendingSignal = sig;
                }
            }
            default -> t.stop = Stop.OTHER;
        }
        return true;
    }

    void resumeAllHere() {
        if (!held) {
            return;
        }
        held = false;
        try {
            for (var t : List.copyOf(tracees.values())) {
                if (t.state != State.STOPPED) {
                    continue;
                }
                requeue(t);
                if (t.stop == Stop.GROUP) {
                    listen(t);
                } else {
                    int sig = t.pendingSignal;
                    t.pendingSignal = 0;
                    cont(t, sig);
                }
            }
        } finally {
            unboost();
        }
        recordHold(holdLabel);
        holdLabel = "hold";
        loudCompiler();
        heedStopSignals();
    }

    /** Whether this tracer has SIGTSTP and friends ignored for a hold ({@link Syscalls#ignoreStopSignals()}). */
    private boolean stopSignalsIgnored;

    /**
     * Before a hold's first interrupt: a terminal's Ctrl-Z (or SIGTTIN, SIGTTOU) must not stop suture while it
     * holds the target's threads, or they stay held for as long; the disposition is process-wide, so no JVM thread
     * can take it instead (docs/apply.md).
     */
    private void ignoreStopSignals() {
        if (!stopSignalsIgnored) {
            stopSignalsIgnored = true;
            Syscalls.ignoreStopSignals();
        }
    }

    /** After the hold's last thread runs again: the dispositions suture had before. */
    private void heedStopSignals() {
        if (stopSignalsIgnored) {
            stopSignalsIgnored = false;
            Syscalls.restoreStopSignals();
        }
    }

    /** Whether this tracer has the JIT compiler quiet for a hold of one thread ({@link QuietCompiler}). */
    private boolean compilerQuiet;

    private void quietCompiler() {
        if (!compilerQuiet) {
            compilerQuiet = true;
            QuietCompiler.quiet();
        }
    }

    private void loudCompiler() {
        if (compilerQuiet) {
            compilerQuiet = false;
            QuietCompiler.loud();
        }
    }

    /** What the current hold is for, in the SUTURE_DEBUG listing. */
    String holdLabel = "hold";
    private final String[] holdLabels = new String[holds.length / 2];

    private void recordHold(String label) {
        if (DEBUG && holdCount < holdLabels.length) {
            holds[2 * holdCount] = holdStart;
            holds[2 * holdCount + 1] = System.nanoTime();
            holdLabels[holdCount++] = label;
        }
    }

    private void printHolds() {
        for (int i = 0; i < holdCount; i++) {
            System.err.printf("tracer %d: %s held from %d for %d us%n", pid, holdLabels[i], holds[2 * i],
                    (holds[2 * i + 1] - holds[2 * i]) / 1000);
        }
    }

    /** Sends again, to the same thread, the signals it dequeued while it ran a system call for us. */
    private void requeue(Tracee t) {
        for (int sig = 1; t.requeueSignals != 0 && sig <= 64; sig++) {
            if ((t.requeueSignals & (1L << (sig - 1))) != 0) {
                t.requeueSignals &= ~(1L << (sig - 1));
                try {
                    Syscalls.tgkill(pid, t.tid, sig);
                } catch (ProcessVanishedException e) {
                    // gone: nothing to deliver to
                }
            }
        }
    }

    private void releaseAll() {
        if (!vanished && !tracees.isEmpty() && !held) {
            try {
                // every thread is detached as soon as it stops: none is held while the others come to a stop
                stopAllHere(detachTask, false);
            } catch (ProcessVanishedException e) {
                // fall through: detach what is left
            }
        }
        for (var t : List.copyOf(tracees.values())) {
            detach(t);
        }
        held = false;
        unboost();
        recordHold("release");
        loudCompiler();
        heedStopSignals();
        if (memFd >= 0) {
            Syscalls.close(memFd);
            memFd = -1;
        }
    }

    private final Consumer<Tracee> detachTask = this::detach;

    /** PTRACE_DETACH of a stopped thread, passing on the signals it holds; a group-stopped thread stays stopped. */
    private void detach(Tracee t) {
        requeue(t);
        int sig = t.stop == Stop.SIGNAL ? t.pendingSignal : 0;
        int errno = Syscalls.ptraceErrno(Ptrace.PTRACE_DETACH, t.tid, 0, sig);
        if (errno != 0) {
            // Dead or dying: reap it if it is already a zombie we owe a wait.
            try {
                Syscalls.waitpid(t.tid, Ptrace.WNOHANG | Ptrace.__WALL);
            } catch (SysException ignored) {
                // not ours any more
            }
        }
        tracees.remove(t.tid);
    }

    // ---- helpers for the injector and memory ----

    Tracee heldThread(int tid) {
        if (vanished) {
            throw gone("thread access");
        }
        var t = tracees.get(tid);
        if (t == null) {
            throw new SutureException(SutureException.Kind.INTERNAL, "thread " + tid + " of process " + pid
                    + " is not traced (it may have exited)");
        }
        if (!held || t.state != State.STOPPED) {
            throw new SutureException(SutureException.Kind.INTERNAL, "thread " + tid + " of process " + pid
                    + " is not stopped: call stopAll() first");
        }
        return t;
    }

    Map<Integer, Tracee> tracees() {
        return tracees;
    }

    boolean held() {
        return held;
    }

    /**
     * After a tracee died under us: if the whole process is going (its leader is a zombie or gone), reaps what is
     * left and returns the "process vanished" failure; otherwise drops just that thread and returns null.
     */
    ProcessVanishedException threadDied(Tracee t, String during) {
        tracees.remove(t.tid);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        // a SIGKILL reaches threads one by one: running threads may look alive for a moment
        long settled = held && tracees.values().stream().anyMatch(o -> o.state != State.STOPPED)
                ? System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50) : 0;
        while (System.nanoTime() < deadline) {
            char leader = ThreadState.of(pid, pid);
            if (leader == 'Z' || leader == 'X' || leader == '?' || t.tid == pid) {
                reapAll();
                markVanished("thread " + t.tid + " ended and the leader is " + leader);
                return ProcessVanishedException.process(pid, during);
            }
            if (System.nanoTime() > settled && tracees.values().stream().allMatch(o -> o.state == State.STOPPED
                    ? ThreadState.of(pid, o.tid) == 't' : !ThreadState.dying(pid, o.tid))) {
                return null; // the others are alive (held, or running while one thread is borrowed): only it ended
            }
            LockSupport.parkNanos(1_000_000);
        }
        return null;
    }

    /** Reaps the zombies of a dead process that we still owe a wait (bounded), so its parent can reap it. */
    private void reapAll() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        while (!tracees.isEmpty() && System.nanoTime() < deadline) {
            for (var t : List.copyOf(tracees.values())) {
                try {
                    var ws = Syscalls.waitpid(t.tid, Ptrace.WNOHANG | Ptrace.__WALL);
                    if (ws != null && ws.gone()) {
                        tracees.remove(t.tid);
                    }
                } catch (SysException e) {
                    tracees.remove(t.tid);
                }
            }
            if (!tracees.isEmpty()) {
                LockSupport.parkNanos(200_000);
            }
        }
        tracees.clear();
    }

    private void writeHere(long address, byte[] bytes) {
        if (vanished) {
            throw gone("memory write");
        }
        if (memFd >= 0) {
            try {
                int done = 0;
                while (done < bytes.length) {
                    int n = Syscalls.pwrite(memFd, slice(bytes, done), 0, bytes.length - done, address + done);
                    if (n <= 0) {
                        break;
                    }
                    done += n;
                }
                if (done == bytes.length) {
                    return;
                }
            } catch (SysException e) {
                if (!Files.isDirectory(Path.of("/proc/" + pid))) {
                    throw ProcessVanishedException.process(pid, "memory write");
                }
                // fall back to POKEDATA below
            }
        }
        pokeBytes(address, bytes);
    }

    private static byte[] slice(byte[] bytes, int from) {
        return from == 0 ? bytes : java.util.Arrays.copyOfRange(bytes, from, bytes.length);
    }

    /** Writes through PTRACE_PEEKDATA/POKEDATA on a held thread, a word at a time. */
    private void pokeBytes(long address, byte[] bytes) {
        boolean wasHeld = held;
        if (!wasHeld) {
            stopAllHere();
        }
        try {
            int tid = tracees.values().stream().filter(t -> t.state == State.STOPPED).findFirst()
                    .orElseThrow(() -> ProcessVanishedException.process(pid, "memory write")).tid;
            long start = address & ~7L;
            long end = (address + bytes.length + 7) & ~7L;
            for (long word = start; word < end; word += 8) {
                long value = Syscalls.peekData(tid, word);
                for (int b = 0; b < 8; b++) {
                    long at = word + b;
                    if (at >= address && at < address + bytes.length) {
                        long shift = 8L * b;
                        value = (value & ~(0xffL << shift)) | ((bytes[(int) (at - address)] & 0xffL) << shift);
                    }
                }
                Syscalls.pokeData(tid, word, value);
            }
        } finally {
            if (!wasHeld) {
                resumeAllHere();
            }
        }
    }

}
