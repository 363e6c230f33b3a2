package dev.suture.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;

/**
 * A hardware execution breakpoint on one thread of another process, owned by a file descriptor of ours
 * (perf_event_open(2), {@code PERF_TYPE_BREAKPOINT}): when the thread is about to execute the address, the kernel
 * sends it the signal we chose (through the descriptor's {@code O_ASYNC} owner, {@code F_SETOWN_EX} to the thread,
 * {@code F_SETSIG}), whose siginfo says {@code POLL_IN} and carries our descriptor; its tracer sees a
 * signal-delivery stop with the thread's pc at the address (and RF set, so resuming it does not trap again).
 *
 * <p>Why a signal of our choice and not the perf event's own SIGTRAP ({@code sigtrap}): a trap can outlive its
 * tracer. When suture is killed, the kernel detaches the traced threads as its tracing thread exits, while the
 * descriptor lives on until the JVM's last thread is gone; a thread that reaches the address in between, or whose
 * trap had fired but was not yet reaped, gets the signal untraced — and SIGTRAP kills. The caller chooses a signal
 * whose default action is to ignore it (SIGURG, SIGWINCH) and that the program does not catch: then a signal of
 * ours that reaches the program untraced is dropped by the kernel.
 *
 * <p>Why not the thread's debug registers through ptrace (PTRACE_POKEUSER of DR0-DR7): the kernel keeps those
 * armed after the tracer detaches or dies (measured on 6.18: the next hit kills the untraced target with
 * SIGTRAP). A perf event lives as long as the descriptor: if suture dies, the kernel closes it and the
 * breakpoint is gone (docs/apply.md, "Waiting at a return").
 */
public final class PerfBreakpoint {
    /** si_code of the signal a descriptor's owner is sent when the event fires. */
    public static final int POLL_IN = 1;
    private static final int SYS_PERF_EVENT_OPEN = 298;
    private static final int SYS_FCNTL = 72;
    private static final int F_SETFL = 4;
    private static final int F_SETSIG = 10;
    private static final int F_SETOWN_EX = 15;
    private static final int F_OWNER_TID = 0;
    private static final int O_ASYNC = 0x2000;
    private static final int ATTR_SIZE = 128;
    private static final int PERF_TYPE_BREAKPOINT = 5;
    private static final int HW_BREAKPOINT_X = 4;
    private static final long PERF_FLAG_FD_CLOEXEC = 8;
    /** exclude_kernel (bit 5), exclude_hv (bit 6), remove_on_exec (bit 36). */
    private static final long FLAGS = 1L << 5 | 1L << 6 | 1L << 36;

    private PerfBreakpoint() {}

    private static final class Syscall {
        static final MethodHandle OPEN = Syscalls.link("syscall", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG,
                ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG), Linker.Option.firstVariadicArg(1));
        static final MethodHandle FCNTL = Syscalls.link("syscall", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG,
                JAVA_INT, JAVA_INT, JAVA_LONG), Linker.Option.firstVariadicArg(1));
    }

    /**
     * Arms a breakpoint at {@code address} for thread {@code tid} (any process, when we may trace it) that sends
     * that thread {@code signal}, its si_fd the descriptor returned; closing the descriptor disarms.
     *
     * @throws SysException naming why the kernel refused (EACCES/EPERM in a container that forbids perf events,
     *                      ENOSPC when the thread's four debug registers are taken, as by a debugger's watchpoints)
     */
    public static int arm(int tid, long address, int signal) {
        FaultInjection.step("perf_event_open", tid, address);
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        var attr = s.buffer(ATTR_SIZE).asSlice(0, ATTR_SIZE);
        attr.fill((byte) 0);
        attr.set(JAVA_INT, 0, PERF_TYPE_BREAKPOINT);
        attr.set(JAVA_INT, 4, ATTR_SIZE);
        attr.set(JAVA_LONG, 16, 1); // sample_period: every execution
        attr.set(JAVA_LONG, 40, FLAGS);
        attr.set(JAVA_INT, 52, HW_BREAKPOINT_X);
        attr.set(JAVA_LONG, 56, address);
        attr.set(JAVA_LONG, 64, 8); // bp_len: sizeof(long), as the kernel wants for execution breakpoints
        long fd;
        try {
            fd = (long) Syscall.OPEN.invokeExact(s.errno, (long) SYS_PERF_EVENT_OPEN, attr, tid, -1, -1,
                    PERF_FLAG_FD_CLOEXEC);
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
        String what = "a breakpoint at 0x" + Long.toHexString(address) + " for thread " + tid;
        if (fd < 0) {
            throw SysException.of("perf_event_open", s.errno(), what);
        }
        // the owner and the signal before O_ASYNC: no event fires before the signal is ours
        var owner = s.word;
        owner.set(JAVA_INT, 0, F_OWNER_TID);
        owner.set(JAVA_INT, 4, tid);
        int failed = fcntl(s, (int) fd, F_SETOWN_EX, owner.address());
        failed = failed != 0 ? failed : fcntl(s, (int) fd, F_SETSIG, signal);
        failed = failed != 0 ? failed : fcntl(s, (int) fd, F_SETFL, O_ASYNC);
        if (failed != 0) {
            Syscalls.close((int) fd);
            throw SysException.of("fcntl", failed, what + " (its signal)");
        }
        return (int) fd;
    }

    /** fcntl(2) on one of ours; errno, 0 when done. */
    private static int fcntl(Syscalls.Scratch s, int fd, int command, long argument) {
        long r;
        try {
            r = (long) Syscall.FCNTL.invokeExact(s.errno, (long) SYS_FCNTL, fd, command, argument);
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
        return r < 0 ? s.errno() : 0;
    }

    /** Closes the descriptor {@link #arm} returned: the breakpoint is gone. */
    public static void disarm(int fd, int tid) {
        FaultInjection.step("close perf_event", tid, fd);
        Syscalls.close(fd);
    }
}
