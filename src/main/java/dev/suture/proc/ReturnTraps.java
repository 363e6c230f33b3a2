package dev.suture.proc;

import dev.suture.sys.PerfBreakpoint;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Breakpoints at return addresses, one per thread at most: a thread inside a function being replaced is let run
 * until it returns from the outermost such frame, and is held there ("parked") until a window opens. Each is a
 * {@link PerfBreakpoint}, so the kernel removes it if suture dies. Its signal is one whose default action is to be
 * ignored and that the program does not catch ({@link #SIGNALS}, chosen when the first is armed): a signal of ours
 * that reaches the program untraced — suture killed between the breakpoint's hit and the reaping of its stop, or
 * before a hit it had armed — is dropped by the kernel, never fatal. Traced, it is never delivered: a signal of
 * ours (POLL_IN from one of our descriptors) that does not park a thread is swallowed at whatever stop it shows
 * up. Tracer thread only.
 */
final class ReturnTraps implements TracedThread.SignalFilter {
    /** SIGURG, then SIGWINCH: ignored by default; the first the program does not catch is ours. */
    static final List<Integer> SIGNALS = List.of(23, 28);

    /** A breakpoint: at {@code address}, for the return that leaves the stack pointer at {@code sp} or above. */
    private record Armed(int tid, int fd, long address, long sp) {}

    private final int pid;
    private final Map<Integer, Armed> armed = new HashMap<>();
    /** Breakpoints that park no thread any more, still to be closed ({@link #retireAll}). */
    private final List<Armed> retired = new ArrayList<>();
    /** The descriptor whose signal each thread stopped with last (swallowed; {@link #parks} consumes it). */
    private final Map<Integer, Integer> lastTrap = new HashMap<>();
    /** Every descriptor armed for each thread: only these can send it a signal of ours. */
    private final Map<Integer, Set<Integer>> everArmed = new HashMap<>();
    /** The signal our breakpoints send (0: none armed yet). */
    private int signal;
    private final long[] info = new long[3];
    private final long[] regs = new long[Registers.WORDS];

    ReturnTraps(int pid) {
        this.pid = pid;
    }

    /** The signal our breakpoints send; 0 before the first is armed. */
    int signal() {
        return signal;
    }

    /**
     * Arms exactly {@code exits}: keeps a breakpoint already armed at the same return, moves one armed elsewhere,
     * disarms those of threads not listed.
     *
     * @throws SysException when the kernel refuses a perf breakpoint (those armed before stay armed)
     * @throws Tracer.CannotWait when the program catches, or these threads block, every signal it could send
     */
    void armOnly(List<Tracer.Exit> exits) {
        if (signal == 0 && !exits.isEmpty()) {
            signal = uncaughtSignal(exits);
        }
        var keep = new HashSet<Integer>();
        for (var e : exits) {
            keep.add(e.tid());
        }
        for (var a : List.copyOf(armed.values())) {
            if (!keep.contains(a.tid())) {
                disarm(a);
            }
        }
        for (var e : exits) {
            var old = armed.get(e.tid());
            if (old != null && old.address() == e.address() && old.sp() == e.sp()) {
                continue;
            }
            if (old != null) {
                disarm(old);
            }
            int fd = PerfBreakpoint.arm(e.tid(), e.address(), signal);
            everArmed.computeIfAbsent(e.tid(), k -> new HashSet<>()).add(fd);
            armed.put(e.tid(), new Armed(e.tid(), fd, e.address(), e.sp()));
        }
    }

    private void disarm(Armed a) {
        armed.remove(a.tid(), a);
        PerfBreakpoint.disarm(a.fd(), a.tid());
    }

    void disarmAll() {
        retireAll();
        for (var a : retired) {
            PerfBreakpoint.disarm(a.fd(), a.tid());
        }
        retired.clear();
    }

    /**
     * From now on no breakpoint parks a thread (their signals are swallowed and the threads run on); closing them,
     * which costs the kernel a tenth of a millisecond each, is left to {@link #disarmAll}, out of the window.
     */
    void retireAll() {
        retired.addAll(armed.values());
        armed.clear();
    }

    /**
     * A signal of ours is not delivered: 0 for it (the descriptor is kept for {@link #parks}), the signal itself
     * for any other. Called with the thread in its signal-delivery stop.
     */
    @Override
    public int deliver(TracedThread t, int signal) {
        var fds = everArmed.get(t.tid());
        if (signal != this.signal || fds == null) {
            return signal;
        }
        if (Ptrace.signalInfo(t.tid(), info) != 0 || info[0] != PerfBreakpoint.POLL_IN
                || !fds.contains((int) info[2])) {
            return signal;
        }
        lastTrap.put(t.tid(), (int) info[2]);
        return 0;
    }

    /**
     * Whether {@code t}, just stopped by a signal of ours ({@link #deliver} said 0), came to its armed return: its
     * pc at the address and its stack pointer at or above the frame's (a deeper activation of the same caller
     * returning there is not it). A thread that parks is stopped at {@link TracedThread.Stop#RETURN}, held from
     * {@code nanos}, its registers kept for the window.
     */
    boolean parks(TracedThread t, long nanos) {
        Integer fd = lastTrap.remove(t.tid());
        var a = armed.get(t.tid());
        if (fd == null || a == null || a.fd() != fd) {
            return false; // a stale signal (its breakpoint was moved or closed since it fired)
        }
        if (Ptrace.getRegistersErrno(t.tid(), regs) != 0) {
            return false;
        }
        var r = Registers.of(regs);
        if (r.rip() != a.address() || Long.compareUnsigned(r.rsp(), a.sp()) < 0) {
            return false;
        }
        t.parkAtReturn(nanos, regs.clone());
        return true;
    }

    /**
     * The first of {@link #SIGNALS} the process does not catch (SigCgt in its status) and none of the threads
     * to be armed blocks (SigBlk in theirs: a blocked signal never stops its thread, which would not park).
     *
     * @throws Tracer.CannotWait when there is none
     */
    private int uncaughtSignal(List<Tracer.Exit> exits) {
        long caught = signalMask(pid, "SigCgt");
        long blocked = 0;
        for (var e : exits) {
            blocked |= signalMask(e.tid(), "SigBlk");
        }
        for (int s : SIGNALS) {
            if (((caught | blocked) & 1L << (s - 1)) == 0) {
                return s;
            }
        }
        throw new Tracer.CannotWait("the program catches or blocks both SIGURG and SIGWINCH, the signals a"
                + " breakpoint of suture's could send it without harm");
    }

    /** A signal mask of thread {@code tid}'s status (0 when it is gone). */
    private long signalMask(int tid, String key) {
        try {
            return ThreadState.status(pid, tid, key).map(m -> Long.parseUnsignedLong(m, 16)).orElse(0L);
        } catch (NumberFormatException e) {
            return 0;
        }
    }
}
