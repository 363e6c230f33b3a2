package dev.suture.proc;

import dev.suture.sys.PerfBreakpoint;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.WaitStatus;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Breakpoints at return addresses, one per thread at most: a thread inside a function being replaced is let run
 * until it returns from the outermost such frame, and is held there ("parked") until a window opens. Each is a
 * {@link PerfBreakpoint}, so the kernel removes it if suture dies; its SIGTRAP is never delivered to the program:
 * a trap of ours (TRAP_PERF with one of our cookies) that does not park a thread is swallowed, at whatever stop it
 * shows up, and a trap still queued when a thread is released is drained first ({@link #drain}). Tracer thread
 * only.
 */
final class ReturnTraps implements TracedThread.SignalFilter {
    static final int SIGTRAP = 5;
    private static final long SIGTRAP_MASK = 1L << (SIGTRAP - 1);

    /** A breakpoint: at {@code address}, for the return that leaves the stack pointer at {@code sp} or above. */
    private record Armed(int tid, int fd, long cookie, long address, long sp) {}

    private final int pid;
    private final Map<Integer, Armed> armed = new HashMap<>();
    /** Breakpoints that park no thread any more, still to be closed ({@link #retireAll}). */
    private final List<Armed> retired = new ArrayList<>();
    /** The cookie of the trap each thread stopped with last (swallowed; {@link #parks} consumes it). */
    private final Map<Integer, Long> lastTrap = new HashMap<>();
    /** Threads that ever had a breakpoint of this tracer: only they can owe us a trap. */
    private final Set<Integer> everArmed = new HashSet<>();
    /** Cookies are {@code [first, next)}: unique to this tracer, so no other perf event's trap is taken for ours. */
    private final long first = (System.nanoTime() & 0xffff_ffffL) << 24 | 0x5a7e_0000_0000_0000L;
    private long next = first;
    private final long[] info = new long[3];
    private final long[] regs = new long[Registers.WORDS];

    ReturnTraps(int pid) {
        this.pid = pid;
    }

    /**
     * Arms exactly {@code exits}: keeps a breakpoint already armed at the same return, moves one armed elsewhere,
     * disarms those of threads not listed.
     *
     * @throws SysException when the kernel refuses a perf breakpoint (those armed before stay armed)
     */
    void armOnly(List<Tracer.Exit> exits) {
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
            long cookie = next++;
            everArmed.add(e.tid());
            armed.put(e.tid(), new Armed(e.tid(), PerfBreakpoint.arm(e.tid(), e.address(), cookie), cookie,
                    e.address(), e.sp()));
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
     * From now on no breakpoint parks a thread (their traps are swallowed and the threads run on); closing them,
     * which costs the kernel a tenth of a millisecond each, is left to {@link #disarmAll}, out of the window.
     */
    void retireAll() {
        retired.addAll(armed.values());
        armed.clear();
    }

    /**
     * A SIGTRAP of ours is not delivered: 0 for it (the cookie is kept for {@link #parks}), the signal itself for
     * any other. Called with the thread in its signal-delivery stop.
     */
    @Override
    public int deliver(TracedThread t, int signal) {
        if (signal != SIGTRAP || !everArmed.contains(t.tid())) {
            return signal;
        }
        if (Ptrace.signalInfo(t.tid(), info) != 0 || info[0] != PerfBreakpoint.TRAP_PERF || !ours(info[2])) {
            return signal;
        }
        lastTrap.put(t.tid(), info[2]);
        return 0;
    }

    private boolean ours(long cookie) {
        return cookie >= first && cookie < next;
    }

    /**
     * Whether {@code t}, just stopped by a trap of ours ({@link #deliver} said 0), came to its armed return: its
     * pc at the address and its stack pointer at or above the frame's (a deeper activation of the same caller
     * returning there is not it). A thread that parks is stopped at {@link TracedThread.Stop#RETURN}, held from
     * {@code nanos}, its registers kept for the window.
     */
    boolean parks(TracedThread t, long nanos) {
        Long cookie = lastTrap.remove(t.tid());
        var a = armed.get(t.tid());
        if (cookie == null || a == null || a.cookie() != cookie) {
            return false; // a stale trap (its breakpoint was moved or closed since it fired)
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
     * Before stopped thread {@code t} is released: a trap of ours still queued for it (fired just before it was
     * stopped, or before its breakpoint was closed) would be delivered once it is untraced, and a SIGTRAP kills.
     * Lets it run into that trap's stop, swallowing it, until none is queued (bounded).
     */
    void drain(TracedThread t) {
        if (!everArmed.contains(t.tid()) || t.stop() == TracedThread.Stop.GROUP) {
            return; // a group-stopped thread must stay stopped; it owes a trap only if one fired as it stopped
        }
        try {
            for (int round = 0; round < 4 && trapQueued(t.tid()); round++) {
                t.resumeFromHold(pid); // with the signal its stop holds, if any: delivered now, not at the release
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(100);
                WaitStatus ws = null;
                while (ws == null && System.nanoTime() < deadline) {
                    ws = Ptrace.waitpid(t.tid(), Ptrace.WNOHANG | Ptrace.__WALL);
                    if (ws == null) {
                        LockSupport.parkNanos(20_000);
                    }
                }
                if (ws == null) {
                    // a queued signal wakes any interruptible sleep: still running, it is in the kernel for long
                    Ptrace.ptraceErrno(Ptrace.PTRACE_INTERRUPT, t.tid(), 0, 0);
                    ws = Ptrace.waitpid(t.tid(), Ptrace.__WALL);
                }
                if (ws.gone()) {
                    return;
                }
                if (ws.event() == 0 && !ws.syscallStop()) {
                    t.stoppedWithSignal(ws.stopSignal()); // ours is swallowed; any other is passed on at release
                } else {
                    t.stoppedByEvent(ws.stopSignal());
                }
                lastTrap.remove(t.tid());
            }
        } catch (RuntimeException e) {
            // the thread or the process is gone: nothing is delivered to it any more
        }
    }

    /** Whether a SIGTRAP is queued for thread {@code tid} (its SigPnd: a perf event's trap is sent to the thread). */
    private boolean trapQueued(int tid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/task/" + tid + "/status"))) {
                if (line.startsWith("SigPnd:")
                        && (Long.parseUnsignedLong(line.substring(7).strip(), 16) & SIGTRAP_MASK) != 0) {
                    return true;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return false; // gone
        }
        return false;
    }
}
