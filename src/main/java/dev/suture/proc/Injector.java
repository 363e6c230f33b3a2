package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.Errno;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.WaitStatus;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Runs a system call inside the traced process by borrowing one of its held threads (DESIGN principle 3). The
 * stub {@code syscall; jmp .} goes into bytes that are never executed ({@link StubSite}), written and journaled
 * before the thread is held and removed after it runs again; its completion is observed at the syscall-exit stop
 * (PTRACE_SYSCALL), never by a trap the thread could die of, and the thread leaves with every register as it
 * was, so its own interrupted system call restarts as if nothing happened: restarted by hand at that exit stop
 * when the hold ends with the call ({@link SyscallRestart}), else by the kernel from an interrupt stop.
 *
 * <p>Runs on the tracer thread only.
 */
final class Injector {
    static final int SYS_MMAP = 9;
    static final int SYS_MPROTECT = 10;
    static final int SYS_MUNMAP = 11;
    /** {@code syscall; jmp .}: should the tool die mid-call, the thread spins harmlessly instead of trapping. */
    static final byte[] STUB = {0x0f, 0x05, (byte) 0xeb, (byte) 0xfe};
    static final int SYS_GETPID = 39;
    /**
     * {@code call *%r11; mov %rax,%rdi; mov $39,%eax; syscall; jmp .}: a function run for suture returns into a
     * getpid(2) whose entry stop shows its result (in rdi), and then, should the tool be gone, spins harmlessly.
     */
    static final byte[] CALL_STUB = {0x41, (byte) 0xff, (byte) 0xd3, 0x48, (byte) 0x89, (byte) 0xc7, (byte) 0xb8,
        SYS_GETPID, 0, 0, 0, 0x0f, 0x05, (byte) 0xeb, (byte) 0xfe};
    /** Where the thread is at the entry stop of the stub's getpid: right after its {@code syscall}. */
    private static final int CALL_STUB_SYSCALL_END = 13;
    /** Signals by which a function that was called for suture crashed: it is abandoned, the signal dropped. */
    private static final Set<Integer> FAULTS = Set.of(4, 5, 6, 7, 8, 11, 31);
    private static final long TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    /** Signals a borrowed thread may take before our system call: a bound, should they never stop coming. */
    private static final int MAX_SIGNALS = 10_000;
    /** How often a long wait looks in /proc whether the borrowed thread is dying. */
    private static final long LOOK_NANOS = TimeUnit.MILLISECONDS.toNanos(5);

    private final HeldThreads threads;
    private final ProcessMemory memory;
    private final int pid;
    private volatile InjectionLog log = InjectionLog.NONE;
    private StubSite site;

    Injector(HeldThreads threads, ProcessMemory memory) {
        this.threads = threads;
        this.memory = memory;
        this.pid = threads.pid();
    }

    /** Who is told about each borrowed thread before its registers change. */
    void log(InjectionLog log) {
        this.log = log;
    }

    /**
     * An anonymous private mapping placed where a rel32 jump reaches it from every byte of [{@code from},
     * {@code to}), nearest first; looks again when the process mapped something there meanwhile.
     */
    long mmapNear(long from, long to, long length, int prot) {
        SutureException last = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            long at = Maps.findFreeWithin(Maps.read(pid), from, to, length);
            try {
                return mmap(at, length, prot, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_FIXED_NOREPLACE);
            } catch (SysException e) {
                if (e.errno() != Errno.EEXIST) {
                    throw e;
                }
                last = e;
            }
        }
        throw last;
    }

    long mmap(long address, long length, int prot, int flags) {
        long result = syscall("mmap", SYS_MMAP, address, length, prot, flags, -1, 0);
        if ((flags & Mman.MAP_FIXED_NOREPLACE) != 0 && result != address) {
            // a kernel older than 4.17 takes MAP_FIXED_NOREPLACE as a hint: give the range back
            syscall("munmap", SYS_MUNMAP, result, length, 0, 0, 0, 0);
            throw new SutureException(SutureException.Kind.DOES_NOT_FIT, "process " + pid
                    + ": mmap placed the range at 0x" + Long.toHexString(result) + ", not at the free range 0x"
                    + Long.toHexString(address) + " (kernel without MAP_FIXED_NOREPLACE?)");
        }
        return result;
    }

    /**
     * Runs system call {@code nr} with up to six arguments in a held thread and returns its result; a result in
     * [-4095, -1] is an errno and raised as {@link SysException}. If the process runs, it is stopped for the call
     * and resumed after (only the borrowed thread, when it can be).
     */
    long syscall(String name, int nr, long a0, long a1, long a2, long a3, long a4, long a5) {
        boolean wasHeld = threads.isHeld();
        if (!wasHeld) {
            // while the process still runs: parsing its modules to find the stub site is no work for a stop; nor
            // is writing the stub into bytes no code runs, nor journaling it (which leaves the next append warm)
            prepareSite();
        }
        try {
            if (!wasHeld) {
                placeStub();
                threads.holdOne(name); // the call needs one thread; the others run on
            }
            long result = inject(nr, a0, a1, a2, a3, a4, a5);
            if (result < 0 && result >= -4095) {
                int errno = (int) -result;
                throw new SysException(name, errno, "process " + pid + ": " + name + "(0x"
                        + Long.toHexString(a0) + ", 0x" + Long.toHexString(a1) + ", ...) run inside it failed: "
                        + Errno.describe(errno));
            }
            return result;
        } finally {
            try {
                if (!wasHeld) {
                    threads.resumeAll();
                }
            } finally {
                if (given != 0) {
                    // Journaled once the thread runs again, not while the target waits for it (an append is a large
                    // part of a hold): its registers are its own, so a recovery that found no "returned" would see
                    // its rip outside the stub and leave it alone.
                    log.returned(given);
                    given = 0;
                }
                if (!wasHeld) {
                    removeStub();
                }
            }
        }
    }

    /**
     * Calls {@code function} with up to six integer arguments (rdi, rsi, rdx, rcx, r8, r9; none, as the dynamic
     * linker calls an x86-64 IFUNC resolver) on a borrowed thread while the others run, and returns what it
     * returned. The thread gets a frame below its red zone, runs
     * the function from the {@link #CALL_STUB} and is given back with every register as it was. A function that
     * crashes (its signal is dropped) or does not return within {@code timeoutNanos} is abandoned the same way,
     * and this throws; so does a call made while the process is held.
     */
    long call(String name, long function, long timeoutNanos, Tracer.CallGuard guard, long... args) {
        if (args.length > ARGUMENT_REGISTERS.length) {
            throw new IllegalArgumentException(name + ": " + args.length + " arguments, more than registers carry");
        }
        if (threads.isHeld()) {
            throw new SutureException(SutureException.Kind.INTERNAL, "process " + pid + ": " + name
                    + " is called only while the process runs");
        }
        long deadline = System.nanoTime() + timeoutNanos;
        for (int refused = 0; ; refused++) {
            prepareSite(CALL_STUB);
            Long result;
            try {
                placeStub();
                threads.holdOne(name);
                result = runCall(name, function, timeoutNanos, guard, args);
            } finally {
                try {
                    threads.resumeAll();
                } finally {
                    if (given != 0) {
                        log.returned(given);
                        given = 0;
                    }
                    removeStub();
                    stub = STUB;
                }
            }
            if (result != null) {
                return result;
            }
            if (System.nanoTime() > deadline) {
                throw new SutureException(SutureException.Kind.DOES_NOT_FIT, String.format("process %d: %s was not"
                        + " called: %d time(s) in %d ms the thread held for it was where the call could wait for"
                        + " itself (%s); nothing was changed, retry", pid, name, refused + 1,
                        TimeUnit.NANOSECONDS.toMillis(timeoutNanos), guard.why()));
            }
            LockSupport.parkNanos(REFUSED_PAUSE_NANOS); // the thread runs on, out of there
        }
    }

    /** How long a thread the guard refused runs on before it is held again. */
    private static final long REFUSED_PAUSE_NANOS = TimeUnit.MILLISECONDS.toNanos(2);

    /** Where the psABI passes a function's integer arguments, in order, as indices into {@link Registers}. */
    private static final int[] ARGUMENT_REGISTERS = {14, 13, 12, 11, 9, 8}; // rdi rsi rdx rcx r8 r9

    /** What the function returned; null when the guard refused the thread (it is held as it was, untouched). */
    private Long runCall(String name, long function, long timeoutNanos, Tracer.CallGuard guard, long[] args) {
        TracedThread t = borrowable();
        long[] saved = new long[Registers.WORDS];
        Ptrace.getRegisters(t.tid(), saved);
        if (!guard.mayBorrow(saved[16], saved[15] >= 0)) { // rip; orig_rax: inside a system call
            return null;
        }
        log.borrowing(t.tid(), site.address(), original(), stub.clone(), saved.clone());
        boolean restored = false;
        try {
            long[] regs = saved.clone();
            // rsp: below the red zone, 16-aligned at the call (recovery finds the frame there: Recovery.insideCall)
            regs[19] = (saved[19] - 128) & -16L;
            regs[16] = site.address(); // rip
            regs[6] = function; // r11
            regs[15] = -1; // orig_rax: no system call of the thread's is restarted into ours
            regs[10] = 0; // rax: no vector registers carry arguments
            for (int i = 0; i < ARGUMENT_REGISTERS.length; i++) {
                regs[ARGUMENT_REGISTERS[i]] = i < args.length ? args[i] : 0;
            }
            regs[18] &= ~0x400L; // the direction flag is clear at a call (psABI)
            Ptrace.setRegisters(t.tid(), regs);
            resume(t, Ptrace.PTRACE_SYSCALL);
            long deadline = System.nanoTime() + timeoutNanos;
            while (true) {
                WaitStatus ws = awaitWithin(t, deadline - System.nanoTime());
                if (ws == null) {
                    stop(t);
                    throw new SutureException(SutureException.Kind.DOES_NOT_FIT, String.format("process %d: %s"
                            + " (0x%x) did not return within %d ms; it was abandoned and thread %d given back as it"
                            + " was", pid, name, function, TimeUnit.NANOSECONDS.toMillis(timeoutNanos), t.tid()));
                }
                if (ws.syscallStop()) {
                    long[] now = new long[Registers.WORDS];
                    Ptrace.getRegisters(t.tid(), now);
                    if (now[16] == site.address() + CALL_STUB_SYSCALL_END && now[15] == SYS_GETPID) {
                        long result = now[14];
                        resume(t, Ptrace.PTRACE_SYSCALL);
                        awaitSyscallStop(t, SYS_GETPID, false);
                        restore(t, saved);
                        restored = true;
                        return result;
                    }
                    resume(t, Ptrace.PTRACE_SYSCALL); // a system call of the function's own
                    continue;
                }
                if (ws.event() == 0) {
                    int sig = ws.stopSignal();
                    if (FAULTS.contains(sig)) {
                        throw new SutureException(SutureException.Kind.DOES_NOT_FIT, String.format("process %d: %s"
                                + " (0x%x) crashed (signal %d); it was abandoned, the signal dropped and thread %d"
                                + " given back as it was", pid, name, function, sig, t.tid()));
                    }
                    t.requeueLater(sig); // not the function's: sent again once the thread is the program's again
                }
                resume(t, Ptrace.PTRACE_SYSCALL);
            }
        } finally {
            if (!restored) {
                tryRestore(t, saved);
            } else {
                given = t.tid();
            }
        }
    }

    /**
     * Brings a running borrowed thread to its interrupt stop: a system call of the function's it meets on the way
     * is skipped (orig_rax -1 at its entry), a signal kept for later.
     */
    private void stop(TracedThread t) {
        ptrace(Ptrace.PTRACE_INTERRUPT, t, 0);
        while (true) {
            WaitStatus ws = await(t);
            if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                t.stoppedByEvent(ws.stopSignal());
                return;
            }
            if (ws.syscallStop()) {
                long[] regs = new long[Registers.WORDS];
                Ptrace.getRegisters(t.tid(), regs);
                regs[15] = -1;
                Ptrace.setRegisters(t.tid(), regs);
            } else if (ws.event() == 0 && !FAULTS.contains(ws.stopSignal())) {
                t.requeueLater(ws.stopSignal());
            }
            resume(t, Ptrace.PTRACE_CONT);
        }
    }

    /** The thread that the last injection gave back, its "returned" record still to be journaled (0: none). */
    private int given;

    /** Whether the stub is in the site's bytes now. */
    private boolean stubPlaced;
    /** The stub the site is used for now: {@link #STUB} or {@link #CALL_STUB}. */
    private byte[] stub = STUB;

    private void prepareSite() {
        prepareSite(STUB);
    }

    private void prepareSite(byte[] code) {
        stub = code;
        if (site == null || site.length() < code.length || !site.stillThere(pid)) {
            site = StubSite.find(pid, Modules.of(pid), code.length);
            // the same bytes written back while the process runs: the kernel's copy-on-write of the page
            // happens now, not while a thread is held for the stub
            memory.write(site.address(), site.original());
        }
    }

    /** Journals the stub, then writes it into the site (bytes no code of the process runs). */
    private void placeStub() {
        log.stub(site.address(), original(), stub.clone());
        memory.write(site.address(), stub);
        stubPlaced = true;
    }

    /** Puts the site's bytes back, then journals that they are. */
    private void removeStub() {
        if (stubPlaced) {
            memory.write(site.address(), original());
            stubPlaced = false;
            log.unstub(site.address());
        }
    }

    private byte[] original() {
        return Arrays.copyOf(site.original(), stub.length);
    }

    private long inject(int nr, long a0, long a1, long a2, long a3, long a4, long a5) {
        TracedThread t = borrowable();
        boolean placedHere = !stubPlaced; // inside a hold the caller made: the stub goes in (and out) here
        if (placedHere) {
            prepareSite();
            placeStub();
        } else if (stub != STUB) {
            throw new SutureException(SutureException.Kind.INTERNAL, "a system call inside a function call's hold");
        }
        // given back at its syscall-exit stop only when this hold ends with the call and it came from a plain
        // interrupt stop; a group-stopped thread, or one the caller's hold may borrow again, is parked
        boolean lastInHold = !placedHere && t.stop() == TracedThread.Stop.INTERRUPT;
        long[] saved = new long[Registers.WORDS];
        Ptrace.getRegisters(t.tid(), saved);
        byte[] original = original();
        log.borrowing(t.tid(), site.address(), original, STUB.clone(), saved.clone());
        boolean restored = false;
        try {
            for (int signals = 0; ; signals++) {
                Ptrace.setRegisters(t.tid(), Registers.of(saved).forSyscall(site.address(), nr, a0, a1, a2, a3, a4,
                        a5).words());
                resume(t, Ptrace.PTRACE_SYSCALL);
                if (awaitSyscallStop(t, nr, true)) {
                    break;
                }
                // A signal was dequeued on the way to the stub: the thread takes it with its own registers, as it
                // would have without us, and we start over from the interrupt stop that follows.
                Ptrace.setRegisters(t.tid(), saved);
                deliverAndPark(t);
                Ptrace.getRegisters(t.tid(), saved);
                // what a recovery must give back is now the registers at the handler's entry
                log.borrowing(t.tid(), site.address(), original, STUB.clone(), saved.clone());
                if (signals == MAX_SIGNALS) {
                    throw new SutureException(SutureException.Kind.UNSAFE, "process " + pid + ": thread " + t.tid()
                            + " took " + MAX_SIGNALS + " signals in a row on its way to a system call run for"
                            + " suture; the process is flooded with signals: retry when it is calmer");
                }
            }
            resume(t, Ptrace.PTRACE_SYSCALL);
            // decided while the thread runs the call: it may read the target's text (a RESTARTBLOCK's syscall)
            var restart = lastInHold ? SyscallRestart.of(pid, saved) : null;
            awaitSyscallStop(t, nr, false);
            long[] after = new long[Registers.WORDS];
            Ptrace.getRegisters(t.tid(), after);
            long result = after[10]; // rax
            if (restart != null) {
                giveBackAtExit(t, restart);
            } else {
                restore(t, saved);
            }
            restored = true;
            return result;
        } finally {
            if (!restored) {
                tryRestore(t, saved);
            }
            if (restored) {
                given = t.tid();
            }
            if (placedHere) {
                removeStub();
            }
        }
    }

    /**
     * Puts the registers back while the thread sits in its syscall-exit stop, its own interrupted system call
     * restarted by hand when it was in one ({@link SyscallRestart}).
     */
    private void giveBackAtExit(TracedThread t, SyscallRestart restart) {
        Ptrace.setRegisters(t.tid(), restart.registers());
        if (restart.byHand()) {
            t.restartedByHand(restart);
        }
        t.stoppedAt(TracedThread.Stop.SYSCALL);
    }

    /**
     * Puts the registers back and parks the thread in an interrupt stop inside the kernel's signal path: the stop
     * a held thread normally sits in. From there the kernel's restart logic sees the thread's own orig_rax and
     * result, so an interrupted nanosleep or read restarts exactly as it would have without us.
     */
    private void restore(TracedThread t, long[] saved) {
        Ptrace.setRegisters(t.tid(), saved);
        // The interrupt is queued while the thread sits in its syscall-exit stop; on the way out it traps in
        // get_signal() before reaching user mode, so it never runs the stub's jmp.
        ptrace(Ptrace.PTRACE_INTERRUPT, t, 0);
        resume(t, Ptrace.PTRACE_CONT);
        while (true) {
            WaitStatus ws = await(t);
            if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                t.stoppedByEvent(ws.stopSignal());
                break;
            }
            if (ws.event() == 0 && !ws.syscallStop()) {
                // A signal on its way in, seen with the thread's own registers: a proper signal-delivery stop.
                t.stoppedWithSignal(ws.stopSignal());
                break;
            }
            resume(t, Ptrace.PTRACE_CONT);
        }
        // The registers were set before the stop; set them again in case the kernel adjusted any on the way.
        Ptrace.setRegisters(t.tid(), saved);
    }

    private void tryRestore(TracedThread t, long[] saved) {
        try {
            restore(t, saved);
        } catch (RuntimeException e) {
            // the process vanished or the thread died: nothing left to restore
        }
    }

    /**
     * A held thread in a plain interrupt (or group) stop: its registers are its own user state. When every thread
     * is held with a signal on its way in (a process receiving a stream of signals), one of them takes its signal
     * first and is borrowed from the interrupt stop that follows.
     */
    private TracedThread borrowable() {
        var interrupted = threads.heldAt(TracedThread.Stop.INTERRUPT);
        if (interrupted != null) {
            return interrupted;
        }
        var fallback = threads.heldAt(TracedThread.Stop.GROUP);
        if (fallback != null) {
            return fallback;
        }
        var signalled = threads.heldAt(TracedThread.Stop.SIGNAL);
        if (signalled != null) {
            deliverAndPark(signalled);
            return signalled;
        }
        throw new SutureException(SutureException.Kind.INTERNAL, "process " + pid
                + ": no held thread is in a plain interrupt stop to run a system call on; resume and retry");
    }

    /**
     * Lets a thread held in a signal-delivery stop take its signal (the kernel sets up the handler's frame, as it
     * would have without us; a signal can be neither dropped nor sent again without changing what the program
     * sees) and parks it in the interrupt stop that follows, before the handler's first instruction.
     */
    private void deliverAndPark(TracedThread t) {
        ptrace(Ptrace.PTRACE_INTERRUPT, t, 0);
        int sig = t.takePendingSignal();
        while (true) {
            ptrace(Ptrace.PTRACE_CONT, t, sig);
            t.resumed(TracedThread.State.RUNNING);
            WaitStatus ws = await(t);
            if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                t.stoppedByEvent(ws.stopSignal());
                return;
            }
            // the next signal on its way in: delivered too, in the order the kernel chose
            sig = ws.event() == 0 && !ws.syscallStop() ? ws.stopSignal() : 0;
        }
    }

    /**
     * Waits for the syscall-entry or -exit stop of our call, answering anything else that stops the thread; false
     * when, on the way to the entry, the thread stopped with a signal on its way in (held by {@code t}).
     */
    private boolean awaitSyscallStop(TracedThread t, int nr, boolean entry) {
        while (true) {
            WaitStatus ws = await(t);
            if (ws.syscallStop()) {
                if (entry) {
                    long[] regs = new long[Registers.WORDS];
                    Ptrace.getRegisters(t.tid(), regs);
                    if (regs[15] != nr) {
                        throw new SutureException(SutureException.Kind.INTERNAL, "thread " + t.tid() + " entered "
                                + "system call " + regs[15] + " instead of " + nr + " at 0x" + Long.toHexString(regs[16]));
                    }
                }
                return true;
            }
            if (ws.event() == 0 && entry) {
                t.stoppedWithSignal(ws.stopSignal());
                return false;
            }
            if (ws.event() == 0) {
                // Between entry and exit no signal is dequeued; should one be, hold it back now and send it again
                // when the thread resumes.
                t.requeueLater(ws.stopSignal());
            }
            // A stale interrupt or group-stop trap: carry on to our syscall.
            resume(t, Ptrace.PTRACE_SYSCALL);
        }
    }

    private WaitStatus await(TracedThread t) {
        WaitStatus ws = awaitWithin(t, TIMEOUT_NANOS);
        if (ws == null) {
            throw new SysException("waitpid", Errno.EAGAIN, "process " + pid + " thread " + t.tid()
                    + ": the injected system call did not complete within 5 s");
        }
        return ws;
    }

    /** The thread's next stop, or null when none came within {@code nanos}. */
    private WaitStatus awaitWithin(TracedThread t, long nanos) {
        long start = System.nanoTime();
        long deadline = start + nanos;
        long nextLook = start + LOOK_NANOS;
        while (true) {
            WaitStatus ws;
            try {
                ws = Ptrace.waitpid(t.tid(), Ptrace.WNOHANG | Ptrace.__WALL);
            } catch (ProcessVanishedException e) {
                throw died(t);
            }
            if (ws != null) {
                if (ws.gone()) {
                    throw died(t);
                }
                if (ws.stopped()) {
                    return ws;
                }
                continue;
            }
            long now = System.nanoTime();
            if (now > deadline) {
                return null;
            }
            if (now > nextLook) {
                // A killed thread may be slow to report its exit while its siblings, not held, die around it:
                // see it dying in /proc instead of waiting for the report.
                if (ThreadState.dying(pid, t.tid())) {
                    throw died(t);
                }
                nextLook = now + LOOK_NANOS;
            }
            if (now - start < StopTheWorld.YIELD_NANOS) {
                Thread.yield(); // sched_yield: the borrowed thread may be waiting for this very core
            } else {
                LockSupport.parkNanos(20_000);
            }
        }
    }

    /** The borrowed thread is gone: "process vanished" if the whole process went, else a thread-level failure. */
    private RuntimeException died(TracedThread t) {
        var gone = threads.threadDied(t, "a system call run inside it");
        return gone != null ? gone : new SutureException(SutureException.Kind.INTERNAL, "process " + pid
                + ": thread " + t.tid() + " ended while it ran a system call for us");
    }

    private void resume(TracedThread t, int request) {
        ptrace(request, t, 0);
        t.resumed(TracedThread.State.RUNNING);
    }

    private void ptrace(int request, TracedThread t, long data) {
        int errno = Ptrace.ptraceErrno(request, t.tid(), 0, data);
        if (errno == Errno.ESRCH) {
            if (!Files.isDirectory(Path.of("/proc/" + pid + "/task/" + t.tid()))) {
                throw died(t);
            }
            // killed while stopped: its exit shows up in the next wait
        } else if (errno != 0) {
            throw SysException.of("ptrace", errno, "thread " + t.tid());
        }
    }
}
