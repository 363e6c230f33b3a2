package dev.suture.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * ptrace(2) and the waits of a tracer: its requests, options and events, named as in the kernel's uapi headers
 * (x86-64 values), and one short method per request, as downcalls like those of {@link Syscalls} (which links and
 * exercises these too in {@link Syscalls#warmUp()}). A request succeeds only on the thread that attached.
 */
public final class Ptrace {
    public static final int PTRACE_PEEKDATA = 2;
    public static final int PTRACE_PEEKUSER = 3;
    public static final int PTRACE_POKEDATA = 5;
    public static final int PTRACE_CONT = 7;
    public static final int PTRACE_KILL = 8;
    public static final int PTRACE_GETREGS = 12;
    public static final int PTRACE_SETREGS = 13;
    public static final int PTRACE_DETACH = 17;
    public static final int PTRACE_SYSCALL = 24;
    public static final int PTRACE_SETOPTIONS = 0x4200;
    public static final int PTRACE_GETEVENTMSG = 0x4201;
    public static final int PTRACE_GETSIGINFO = 0x4202;
    public static final int PTRACE_SEIZE = 0x4206;
    public static final int PTRACE_INTERRUPT = 0x4207;
    public static final int PTRACE_LISTEN = 0x4208;

    public static final int PTRACE_O_TRACESYSGOOD = 1;
    public static final int PTRACE_O_TRACEFORK = 1 << 1;
    public static final int PTRACE_O_TRACEVFORK = 1 << 2;
    public static final int PTRACE_O_TRACECLONE = 1 << 3;
    public static final int PTRACE_O_TRACEEXEC = 1 << 4;
    public static final int PTRACE_O_TRACEEXIT = 1 << 6;

    public static final int PTRACE_EVENT_FORK = 1;
    public static final int PTRACE_EVENT_VFORK = 2;
    public static final int PTRACE_EVENT_CLONE = 3;
    public static final int PTRACE_EVENT_EXEC = 4;
    public static final int PTRACE_EVENT_EXIT = 6;
    public static final int PTRACE_EVENT_STOP = 128;

    /** waitpid options. */
    public static final int WNOHANG = 1;
    public static final int __WALL = 0x40000000;

    public static final int SIGHUP = 1;
    public static final int SIGINT = 2;
    public static final int SIGKILL = 9;
    public static final int SIGUSR1 = 10;
    public static final int SIGUSR2 = 12;
    public static final int SIGTRAP = 5;
    public static final int SIGCHLD = 17;
    public static final int SIGCONT = 18;
    public static final int SIGSTOP = 19;
    public static final int SIGTSTP = 20;
    public static final int SIGTTIN = 21;
    public static final int SIGTTOU = 22;

    private Ptrace() {}

    /** True for the signals whose default action is to stop the process (they start a group-stop). */
    public static boolean isStopSignal(int sig) {
        return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
    }

    private static final class Ptraces {
        static final MethodHandle H = Syscalls.link("ptrace", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG,
                JAVA_LONG), Linker.Option.firstVariadicArg(1));
    }

    private static final class Waitpid {
        static final MethodHandle H = Syscalls.link("waitpid", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    }

    private static final class Waitid {
        static final MethodHandle H = Syscalls.link("waitid", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS,
                JAVA_INT));
    }

    private static long rawPtrace(Syscalls.Scratch s, int request, int tid, long addr, long data) {
        if (FaultInjection.ACTIVE) {
            FaultInjection.step(requestName(request), tid, addr);
        }
        try {
            return (long) Ptraces.H.invokeExact(s.errno, request, tid, addr, data);
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
    }

    /** A ptrace request whose result is only success or failure (SEIZE, INTERRUPT, CONT, DETACH, LISTEN...). */
    public static void ptrace(int request, int tid, long addr, long data) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        if (rawPtrace(s, request, tid, addr, data) == -1) {
            throw SysException.of("ptrace(" + requestName(request) + ")", s.errno(), "thread " + tid);
        }
    }

    /** Like {@link #ptrace} but returns errno (0 on success) instead of throwing, for the paths that expect races. */
    public static int ptraceErrno(int request, int tid, long addr, long data) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        return rawPtrace(s, request, tid, addr, data) == -1 ? s.errno() : 0;
    }

    /**
     * PTRACE_GETSIGINFO of a thread in a signal-delivery stop, into {@code out}: {si_code, si_addr, and the word at
     * offset 24 (si_fd, in its low half, for a POLL_IN signal)}. Returns errno, 0 when read.
     */
    public static int signalInfo(int tid, long[] out) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        var info = s.buffer(128);
        if (rawPtrace(s, PTRACE_GETSIGINFO, tid, 0, info.address()) == -1) {
            return s.errno();
        }
        out[0] = info.get(JAVA_INT, 8);
        out[1] = info.get(JAVA_LONG, 16);
        out[2] = info.get(JAVA_LONG, 24);
        return 0;
    }

    /** PTRACE_GETEVENTMSG: the new thread's id after a clone event, the exit status after an exit event. */
    public static long eventMessage(int tid) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        if (rawPtrace(s, PTRACE_GETEVENTMSG, tid, 0, s.word.address()) == -1) {
            throw SysException.of("ptrace(PTRACE_GETEVENTMSG)", s.errno(), "thread " + tid);
        }
        return s.word.get(JAVA_LONG, 0);
    }

    /** PTRACE_PEEKDATA: one word of the tracee's memory (the thread must be stopped). */
    public static long peekData(int tid, long address) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        long value = rawPtrace(s, PTRACE_PEEKDATA, tid, address, 0);
        if (value == -1 && s.errno() != 0) {
            throw SysException.of("ptrace(PTRACE_PEEKDATA)", s.errno(), "thread " + tid + " at 0x"
                    + Long.toHexString(address));
        }
        return value;
    }

    /** PTRACE_POKEDATA: writes one word (even into read-only pages; the thread must be stopped). */
    public static void pokeData(int tid, long address, long word) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        if (rawPtrace(s, PTRACE_POKEDATA, tid, address, word) == -1) {
            throw SysException.of("ptrace(PTRACE_POKEDATA)", s.errno(), "thread " + tid + " at 0x"
                    + Long.toHexString(address));
        }
    }

    /** PTRACE_GETREGS into {@code out}: the 27 words of user_regs_struct in the kernel's order. */
    public static void getRegisters(int tid, long[] out) {
        int errno = getRegistersErrno(tid, out);
        if (errno != 0) {
            throw SysException.of("ptrace(PTRACE_GETREGS)", errno, "thread " + tid);
        }
    }

    /** {@link #getRegisters} that returns errno (0 when read) instead of throwing. */
    public static int getRegistersErrno(int tid, long[] out) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        if (rawPtrace(s, PTRACE_GETREGS, tid, 0, s.regs.address()) == -1) {
            return s.errno();
        }
        MemorySegment.copy(s.regs, JAVA_LONG, 0, out, 0, 27);
        return 0;
    }

    /** PTRACE_SETREGS from the 27 words of user_regs_struct. */
    public static void setRegisters(int tid, long[] in) {
        int errno = setRegistersErrno(tid, in);
        if (errno != 0) {
            throw SysException.of("ptrace(PTRACE_SETREGS)", errno, "thread " + tid);
        }
    }

    /** PTRACE_SETREGS; returns 0 or the errno. */
    public static int setRegistersErrno(int tid, long[] in) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        MemorySegment.copy(in, 0, s.regs, JAVA_LONG, 0, 27);
        return rawPtrace(s, PTRACE_SETREGS, tid, 0, s.regs.address()) == -1 ? s.errno() : 0;
    }

    static String requestName(int request) {
        return switch (request) {
            case PTRACE_PEEKDATA -> "PTRACE_PEEKDATA";
            case PTRACE_POKEDATA -> "PTRACE_POKEDATA";
            case PTRACE_CONT -> "PTRACE_CONT";
            case PTRACE_GETREGS -> "PTRACE_GETREGS";
            case PTRACE_SETREGS -> "PTRACE_SETREGS";
            case PTRACE_DETACH -> "PTRACE_DETACH";
            case PTRACE_SYSCALL -> "PTRACE_SYSCALL";
            case PTRACE_SETOPTIONS -> "PTRACE_SETOPTIONS";
            case PTRACE_SEIZE -> "PTRACE_SEIZE";
            case PTRACE_INTERRUPT -> "PTRACE_INTERRUPT";
            case PTRACE_LISTEN -> "PTRACE_LISTEN";
            case PTRACE_GETSIGINFO -> "PTRACE_GETSIGINFO";
            default -> "request " + request;
        };
    }

    // ---- waitpid ----

    /**
     * waitpid(tid, &amp;status, options) for one thread we trace; {@code null} when WNOHANG found nothing. ECHILD
     * (not ours any more, or already reaped) is a {@link ProcessVanishedException}; EINTR is retried.
     */
    public static WaitStatus waitpid(int tid, int options) {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        while (true) {
            int r;
            try {
                r = (int) Waitpid.H.invokeExact(s.errno, tid, s.word, options);
            } catch (Throwable t) {
                throw Syscalls.rethrow(t);
            }
            if (r > 0) {
                return new WaitStatus(r, s.word.get(JAVA_INT, 0));
            }
            if (r == 0) {
                return null;
            }
            int errno = s.errno();
            if (errno != Errno.EINTR) {
                throw SysException.of("waitpid", errno, "thread " + tid);
            }
        }
    }

    /**
     * The id of some child or tracee of this process with an event to report, without reaping it
     * (waitid(P_ALL, WNOWAIT|WNOHANG)); 0 when there is none. One call, whatever the number of tracees, so an idle
     * tracer can poll cheaply and then reap only its own threads with {@link #waitpid}.
     */
    public static int peekWaitable() {
        Syscalls.Scratch s = Syscalls.SCRATCH.get();
        MemorySegment info = s.buffer(128);
        info.asSlice(0, 128).fill((byte) 0);
        int r;
        try {
            r = (int) Waitid.H.invokeExact(s.errno, 0 /* P_ALL */, 0, info,
                    4 /* WEXITED */ | 2 /* WSTOPPED */ | WNOHANG | 0x01000000 /* WNOWAIT */ | __WALL);
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
        if (r != 0) {
            return 0; // ECHILD: no children at all
        }
        return info.get(JAVA_INT, 16); // siginfo_t.si_pid
    }
}
