package dev.suture.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The kernel calls suture makes, as Java methods: each is a downcall into libc through the FFM linker, with errno
 * captured and turned into a {@link SysException} (or its typed subclasses). Handles are linked on first use, one
 * holder class per function; {@link #warmUp()} links and exercises all of them so that a time-critical window
 * (the stop-the-world of a patch) pays no linking, class loading or first-call cost.
 *
 * <p>Every method may be called from any thread; ptrace and the tracer's waits are {@link Ptrace}'s.
 */
public final class Syscalls {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(PathElement.groupElement("errno"));
    static final int REGS_BYTES = 27 * 8;
    static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Syscalls() {}

    /** Native memory each calling thread reuses, so steady-state calls allocate nothing native. */
    static final class Scratch {
        final Arena arena = Arena.ofAuto();
        final MemorySegment errno = arena.allocate(CAPTURE);
        final MemorySegment word = arena.allocate(8, 8);
        final MemorySegment regs = arena.allocate(REGS_BYTES, 8);
        final MemorySegment iov = arena.allocate(32, 8);
        MemorySegment buffer = arena.allocate(64 * 1024, 16);

        MemorySegment buffer(long size) {
            if (buffer.byteSize() < size) {
                buffer = arena.allocate(Math.max(size, buffer.byteSize() * 2), 16);
            }
            return buffer;
        }

        /** Fills the local iovec (iov[0]) and the remote one (iov[1]) for one range of {@code length} bytes. */
        void oneRange(MemorySegment local, long remote, int length) {
            iov.set(JAVA_LONG, 0, local.address());
            iov.set(JAVA_LONG, 8, length);
            iov.set(JAVA_LONG, 16, remote);
            iov.set(JAVA_LONG, 24, length);
        }

        int errno() {
            return (int) ERRNO.get(errno, 0L);
        }

        private MemorySegment iovs = arena.allocate(16 * 129, 8);

        /** Room for {@code count} iovecs. */
        MemorySegment iovs(int count) {
            if (iovs.byteSize() < 16L * count) {
                iovs = arena.allocate(16L * Math.max(count, 2 * iovs.byteSize() / 16), 8);
            }
            return iovs;
        }
    }

    static MethodHandle link(String name, FunctionDescriptor fd, Linker.Option... extra) {
        var options = new Linker.Option[extra.length + 1];
        options[0] = Linker.Option.captureCallState("errno");
        System.arraycopy(extra, 0, options, 1, extra.length);
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new SysException(name, 0, "libc has no function " + name));
        return LINKER.downcallHandle(symbol, fd, options);
    }

    // One holder per function: the JVM initialises (links) each on first use only (ptrace's are in Ptrace).
    private static final class VmReadv {
        static final MethodHandle H = link("process_vm_readv", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS,
                JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG));
    }

    private static final class VmWritev {
        static final MethodHandle H = link("process_vm_writev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS,
                JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG));
    }

    private static final class Tgkill {
        static final MethodHandle H = link("tgkill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    }

    private static final class Kill {
        static final MethodHandle H = link("kill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    }

    private static final class Gettid {
        static final MethodHandle H = link("gettid", FunctionDescriptor.of(JAVA_INT));
    }

    private static final class SchedSetscheduler {
        static final MethodHandle H = link("sched_setscheduler", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT,
                ADDRESS));
    }

    private static final class SchedGetscheduler {
        static final MethodHandle H = link("sched_getscheduler", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    private static final class Sigaction {
        static final MethodHandle H = link("sigaction", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    }

    private static final class Open {
        static final MethodHandle H = link("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
                Linker.Option.firstVariadicArg(2));
    }

    private static final class Close {
        static final MethodHandle H = link("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    private static final class Pread {
        static final MethodHandle H = link("pread64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG,
                JAVA_LONG));
    }

    private static final class Pwrite {
        static final MethodHandle H = link("pwrite64", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG,
                JAVA_LONG));
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new SysException("downcall", 0, "native call failed: " + t);
    }

    // ---- memory ----

    /**
     * process_vm_readv of one range into {@code dst}: one system call. Returns the bytes read, fewer than
     * {@code length} when the range runs into unmapped memory.
     */
    public static int readMemory(int pid, long address, byte[] dst, int offset, int length) {
        Scratch s = SCRATCH.get();
        MemorySegment buf = s.buffer(length);
        s.oneRange(buf, address, length);
        long n;
        try {
            n = (long) VmReadv.H.invokeExact(s.errno, pid, s.iov, 1L, s.iov.asSlice(16), 1L, 0L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (n < 0) {
            throw SysException.of("process_vm_readv", s.errno(), "process " + pid + " at 0x"
                    + Long.toHexString(address) + " (" + length + " bytes)");
        }
        MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, dst, offset, (int) n);
        return (int) n;
    }

    /**
     * Makes the calling thread's native scratch buffer hold at least {@code bytes}, so that a later read or write
     * of that size allocates nothing (for a time-critical window that reads every stack at once).
     */
    public static void reserve(long bytes) {
        SCRATCH.get().buffer(bytes);
    }

    /** At most this many ranges per {@link #readMemoryRanges} call (the kernel's IOV_MAX). */
    public static final int MAX_RANGES = 1024;

    /**
     * process_vm_readv of {@code count} ranges ({@code addresses[i]}, {@code lengths[i]} bytes) into {@code dst},
     * packed one after another from index 0: one system call for all. Returns the bytes read in total; the kernel
     * stops at the first range it cannot read to its end, so the ranges lying wholly below the total are complete
     * and the rest are to be read again one by one.
     */
    public static long readMemoryRanges(int pid, long[] addresses, int[] lengths, int count, byte[] dst) {
        if (count > MAX_RANGES) {
            throw new IllegalArgumentException(count + " ranges in one process_vm_readv, more than " + MAX_RANGES);
        }
        Scratch s = SCRATCH.get();
        long total = 0;
        for (int i = 0; i < count; i++) {
            total += lengths[i];
        }
        MemorySegment buf = s.buffer(total);
        MemorySegment iov = s.iovs(count + 1);
        iov.set(JAVA_LONG, 0, buf.address());
        iov.set(JAVA_LONG, 8, total);
        for (int i = 0; i < count; i++) {
            iov.set(JAVA_LONG, 16L * (i + 1), addresses[i]);
            iov.set(JAVA_LONG, 16L * (i + 1) + 8, lengths[i]);
        }
        long n;
        try {
            n = (long) VmReadv.H.invokeExact(s.errno, pid, iov, 1L, iov.asSlice(16), (long) count, 0L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (n < 0) {
            throw SysException.of("process_vm_readv", s.errno(), "process " + pid + ": " + count + " ranges from 0x"
                    + Long.toHexString(count > 0 ? addresses[0] : 0));
        }
        MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, dst, 0, (int) n);
        return n;
    }

    /** process_vm_writev of one range (writable mappings only); returns the bytes written. */
    public static int writeMemory(int pid, long address, byte[] src, int offset, int length) {
        Scratch s = SCRATCH.get();
        FaultInjection.step("process_vm_writev", pid, address);
        MemorySegment buf = s.buffer(length);
        MemorySegment.copy(src, offset, buf, ValueLayout.JAVA_BYTE, 0, length);
        s.oneRange(buf, address, length);
        long n;
        try {
            n = (long) VmWritev.H.invokeExact(s.errno, pid, s.iov, 1L, s.iov.asSlice(16), 1L, 0L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (n < 0) {
            throw SysException.of("process_vm_writev", s.errno(), "process " + pid + " at 0x"
                    + Long.toHexString(address) + " (" + length + " bytes)");
        }
        return (int) n;
    }

    // ---- files (for /proc/PID/mem) ----

    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CLOEXEC = 0x80000;

    /** open(2); {@code what} names the file in errors. */
    public static int open(String path, int flags) {
        Scratch s = SCRATCH.get();
        try (var arena = Arena.ofConfined()) {
            int fd = (int) Open.H.invokeExact(s.errno, arena.allocateFrom(path), flags | O_CLOEXEC, 0);
            if (fd < 0) {
                int errno = s.errno();
                if (errno == Errno.EACCES) {
                    throw new NotPermittedException("open", errno, "cannot open " + path + ": "
                            + Errno.describe(errno));
                }
                throw SysException.of("open", errno, path);
            }
            return fd;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static void close(int fd) {
        Scratch s = SCRATCH.get();
        try {
            int ignored = (int) Close.H.invokeExact(s.errno, fd);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pread(2) at {@code position}; returns the bytes read. */
    public static int pread(int fd, byte[] dst, int offset, int length, long position) {
        Scratch s = SCRATCH.get();
        MemorySegment buf = s.buffer(length);
        long n;
        try {
            n = (long) Pread.H.invokeExact(s.errno, fd, buf, (long) length, position);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (n < 0) {
            throw SysException.of("pread", s.errno(), "fd " + fd + " at 0x" + Long.toHexString(position));
        }
        MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, dst, offset, (int) n);
        return (int) n;
    }

    /** pwrite(2) at {@code position}; returns the bytes written. */
    public static int pwrite(int fd, byte[] src, int offset, int length, long position) {
        FaultInjection.step("pwrite", fd, position);
        Scratch s = SCRATCH.get();
        MemorySegment buf = s.buffer(length);
        MemorySegment.copy(src, offset, buf, ValueLayout.JAVA_BYTE, 0, length);
        long n;
        try {
            n = (long) Pwrite.H.invokeExact(s.errno, fd, buf, (long) length, position);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (n < 0) {
            throw SysException.of("pwrite", s.errno(), "fd " + fd + " at 0x" + Long.toHexString(position));
        }
        return (int) n;
    }

    // ---- signals and ids ----

    /** tgkill(2): a signal to one thread of a process. */
    public static void tgkill(int pid, int tid, int sig) {
        Scratch s = SCRATCH.get();
        int r;
        try {
            r = (int) Tgkill.H.invokeExact(s.errno, pid, tid, sig);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (r != 0) {
            throw SysException.of("tgkill", s.errno(), "thread " + tid + " of process " + pid);
        }
    }

    /** kill(2). */
    public static void kill(int pid, int sig) {
        Scratch s = SCRATCH.get();
        int r;
        try {
            r = (int) Kill.H.invokeExact(s.errno, pid, sig);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (r != 0) {
            throw SysException.of("kill", s.errno(), "process " + pid);
        }
    }

    /** The calling thread's kernel id (what /proc/PID/status calls a TracerPid). */
    public static int gettid() {
        Scratch s = SCRATCH.get();
        try {
            return (int) Gettid.H.invokeExact(s.errno);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- the signals that stop a process ----

    /** SIGTSTP, SIGTTIN, SIGTTOU: sent by a terminal (Ctrl-Z, background I/O), and a process may ignore them. */
    private static final int[] STOP_SIGNALS = {20, 21, 22};
    /** glibc's struct sigaction on x86-64: handler, 128-byte mask, flags (+4 padding), restorer. */
    private static final long SIGACTION_BYTES = 152;
    private static final long SIG_IGN = 1;
    private static final MemorySegment IGNORE = Arena.global().allocate(SIGACTION_BYTES, 8);
    private static final MemorySegment SAVED = Arena.global().allocate(SIGACTION_BYTES * STOP_SIGNALS.length, 8);
    /** How many holds (of every tracer in this JVM) want the stop signals ignored now. */
    private static int stopSignalsIgnored;

    static {
        IGNORE.set(JAVA_LONG, 0, SIG_IGN);
    }

    /**
     * Ignores SIGTSTP, SIGTTIN and SIGTTOU process-wide (their disposition, shared by every thread of the JVM, set to
     * SIG_IGN), until as many {@link #restoreStopSignals()} as calls: a suture stopped by them while it holds a
     * target's threads would hold them for as long. One arriving meanwhile is dropped, as the kernel drops an
     * ignored signal (docs/apply.md). SIGSTOP cannot be ignored.
     */
    public static synchronized void ignoreStopSignals() {
        if (stopSignalsIgnored++ == 0) {
            for (int i = 0; i < STOP_SIGNALS.length; i++) {
                sigaction(STOP_SIGNALS[i], IGNORE, SAVED.asSlice(i * SIGACTION_BYTES, SIGACTION_BYTES));
            }
        }
    }

    /** Puts back the dispositions {@link #ignoreStopSignals()} replaced, when the last hold that asked has ended. */
    public static synchronized void restoreStopSignals() {
        if (stopSignalsIgnored > 0 && --stopSignalsIgnored == 0) {
            for (int i = 0; i < STOP_SIGNALS.length; i++) {
                sigaction(STOP_SIGNALS[i], SAVED.asSlice(i * SIGACTION_BYTES, SIGACTION_BYTES), MemorySegment.NULL);
            }
        }
    }

    /** sigaction(2): sets {@code act} (unless NULL) and stores the old action in {@code old} (unless NULL). */
    private static void sigaction(int sig, MemorySegment act, MemorySegment old) {
        Scratch s = SCRATCH.get();
        int r;
        try {
            r = (int) Sigaction.H.invokeExact(s.errno, sig, act, old);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (r != 0) {
            throw SysException.of("sigaction", s.errno(), "signal " + sig);
        }
    }

    public static final int SCHED_OTHER = 0;
    public static final int SCHED_FIFO = 1;
    /** Runs only when no other thread of any policy wants the core. */
    public static final int SCHED_IDLE = 5;
    /** Or'ed into a policy: a child forked by the thread starts with the default policy, not this one. */
    public static final int SCHED_RESET_ON_FORK = 0x40000000;

    /**
     * sched_setscheduler(2) for the calling thread: {@code policy} at real-time {@code priority} (0 for
     * {@link #SCHED_OTHER}, whose nice value the kernel keeps). Returns errno, 0 when set.
     */
    public static int setScheduler(int policy, int priority) {
        return setScheduler(0, policy, priority);
    }

    /** sched_setscheduler(2) for thread {@code tid} (0: the calling thread); returns errno, 0 when set. */
    public static int setScheduler(int tid, int policy, int priority) {
        Scratch s = SCRATCH.get();
        s.word.set(JAVA_INT, 0, priority);
        try {
            return (int) SchedSetscheduler.H.invokeExact(s.errno, tid, policy, s.word) == 0 ? 0 : s.errno();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** sched_getscheduler(2) for the calling thread: its policy (without {@link #SCHED_RESET_ON_FORK}). */
    public static int scheduler() {
        Scratch s = SCRATCH.get();
        int r;
        try {
            r = (int) SchedGetscheduler.H.invokeExact(s.errno, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (r < 0) {
            throw SysException.of("sched_getscheduler", s.errno(), "the tracer thread");
        }
        return r & ~SCHED_RESET_ON_FORK;
    }

    /**
     * Links every handle and calls each once (on harmless arguments) from the calling thread, so that the first
     * real call inside a time-critical window costs what every later one does. Call it on the tracer thread.
     */
    public static void warmUp() {
        FaultInjection.uncounted(Syscalls::warmUpHandles);
    }

    private static void warmUpHandles() {
        int self = (int) ProcessHandle.current().pid();
        int tid = gettid();
        byte[] probe = new byte[16];
        for (int round = 0; round < 3; round++) {
            // Requests on a thread we do not trace fail with ESRCH without side effects.
            Ptrace.ptraceErrno(Ptrace.PTRACE_INTERRUPT, tid, 0, 0);
            try {
                Ptrace.getRegisters(tid, new long[27]);
            } catch (SysException expected) {
                // not our tracee: the call still went all the way through the handle
            }
            try {
                Ptrace.waitpid(Integer.MAX_VALUE, Ptrace.WNOHANG | Ptrace.__WALL);
            } catch (SysException expected) {
                // ECHILD: no such child
            }
            Scratch s = SCRATCH.get();
            Ptrace.peekWaitable();
            MemorySegment own = s.buffer(16);
            readMemory(self, own.address(), probe, 0, 16);
            readMemoryRanges(self, new long[] {own.address(), own.address() + 8}, new int[] {8, 8}, 2, probe);
            writeMemory(self, own.address(), probe, 0, 16);
            tgkill(self, tid, 0);
            kill(self, 0);
            // reads a disposition into scratch memory (SAVED may hold another hold's), changes nothing
            sigaction(STOP_SIGNALS[0], MemorySegment.NULL, s.buffer(SIGACTION_BYTES));
            int policy = scheduler();
            int ignoredErrno = setScheduler(policy, policy == SCHED_OTHER ? 0 : -1); // EINVAL for RT: unchanged
        }
        int fd = open("/proc/self/mem", O_RDWR);
        try {
            MemorySegment own = SCRATCH.get().buffer(16);
            int ignoredRead = pread(fd, probe, 0, 16, own.address());
            int ignoredWritten = pwrite(fd, probe, 0, 16, own.address());
        } finally {
            close(fd);
        }
    }
}
