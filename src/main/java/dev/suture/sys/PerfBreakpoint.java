package dev.suture.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;

/**
 * A hardware execution breakpoint on one thread of another process, owned by a file descriptor of ours
 * (perf_event_open(2), {@code PERF_TYPE_BREAKPOINT} with {@code sigtrap}): when the thread is about to execute the
 * address it gets a SIGTRAP whose siginfo says {@code TRAP_PERF} and carries our cookie, which its tracer sees as
 * a signal-delivery stop with the thread's pc at the address (and RF set, so resuming it does not trap again).
 *
 * <p>Why not the thread's debug registers through ptrace (PTRACE_POKEUSER of DR0-DR7): the kernel keeps those
 * armed after the tracer detaches or dies (measured on 6.18: the next hit kills the untraced target with
 * SIGTRAP). A perf event lives as long as the descriptor: if suture dies, the kernel closes it and the
 * breakpoint is gone (docs/apply.md, "Waiting at a return").
 */
public final class PerfBreakpoint {
    /** si_code of a SIGTRAP sent by a perf event with {@code sigtrap} set. */
    public static final int TRAP_PERF = 6;
    private static final int SYS_PERF_EVENT_OPEN = 298;
    private static final int ATTR_SIZE = 128;
    private static final int PERF_TYPE_BREAKPOINT = 5;
    private static final int HW_BREAKPOINT_X = 4;
    private static final long PERF_FLAG_FD_CLOEXEC = 8;
    /** exclude_kernel (bit 5), exclude_hv (bit 6), remove_on_exec (bit 36), sigtrap (bit 37). */
    private static final long FLAGS = 1L << 5 | 1L << 6 | 1L << 36 | 1L << 37;

    private PerfBreakpoint() {}

    private static final class Syscall {
        static final MethodHandle H = Syscalls.link("syscall", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG), Linker.Option.firstVariadicArg(1));
    }

    /**
     * Arms a breakpoint at {@code address} for thread {@code tid} (any process, when we may trace it); its SIGTRAP
     * carries {@code cookie} as si_perf_data. Returns the descriptor; closing it disarms.
     *
     * @throws SysException naming why the kernel refused (EACCES/EPERM in a container that forbids perf events,
     *                      EINVAL on a kernel older than 5.13, ENOSPC when the thread's four debug registers are
     *                      taken, as by a debugger's watchpoints)
     */
    public static int arm(int tid, long address, long cookie) {
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
        attr.set(JAVA_LONG, 120, cookie);
        long fd;
        try {
            fd = (long) Syscall.H.invokeExact(s.errno, (long) SYS_PERF_EVENT_OPEN, attr, tid, -1, -1,
                    PERF_FLAG_FD_CLOEXEC);
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
        if (fd < 0) {
            throw SysException.of("perf_event_open", s.errno(), "a breakpoint at 0x" + Long.toHexString(address)
                    + " for thread " + tid);
        }
        return (int) fd;
    }

    /** Closes the descriptor {@link #arm} returned: the breakpoint is gone. */
    public static void disarm(int fd, int tid) {
        FaultInjection.step("close perf_event", tid, fd);
        Syscalls.close(fd);
    }
}
