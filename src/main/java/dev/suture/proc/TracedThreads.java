package dev.suture.proc;

import dev.suture.sys.Errno;
import dev.suture.sys.NotPermittedException;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.WaitStatus;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Every traced thread of one process and what waitpid says of them: seizing them, answering what running threads
 * report (new threads, signals to pass on, group-stops, exits), recording the stops a hold waits for, and telling a
 * thread that ended from a process that vanished. Reaps only the thread ids it owns, never other children of the
 * JVM. Touched on the tracer thread only.
 */
final class TracedThreads {
    private static final int OPTIONS = Ptrace.PTRACE_O_TRACECLONE | Ptrace.PTRACE_O_TRACESYSGOOD;

    private final int pid;
    private final Map<Integer, TracedThread> threads = new LinkedHashMap<>();
    private volatile boolean vanished;
    /** How {@link #vanished} came to be set (the first time), told by the calls that find it set. */
    private volatile String vanishedHow;

    private final ReturnTraps traps;

    TracedThreads(int pid, ReturnTraps traps) {
        this.pid = pid;
        this.traps = traps;
    }

    int pid() {
        return pid;
    }

    boolean isEmpty() {
        return threads.isEmpty();
    }

    int size() {
        return threads.size();
    }

    TracedThread get(int tid) {
        return threads.get(tid);
    }

    /** The threads in the order they were seized (the leader first). */
    Collection<TracedThread> all() {
        return threads.values();
    }

    /** The ids of the threads we trace, sorted (a plain loop: a window asks for them). */
    List<Integer> ids() {
        var tids = new Integer[threads.size()];
        int n = 0;
        for (var tid : threads.keySet()) {
            tids[n++] = tid;
        }
        Arrays.sort(tids);
        return List.of(tids);
    }

    /** The first held thread (in seizing order) whose stop is {@code how}, or null. */
    TracedThread stoppedAt(TracedThread.Stop how) {
        for (var t : threads.values()) {
            if (t.isStopped() && t.stop() == how) {
                return t;
            }
        }
        return null;
    }

    void forget(TracedThread t) {
        threads.remove(t.tid());
    }

    // ---- attach ----

    /**
     * Seizes every thread (rescanning /proc/PID/task until no new thread appears); on a failure, {@code abandon}
     * releases what was seized before the failure is thrown.
     */
    void seizeAll(int tracerTid, Runnable abandon) {
        int quietRounds = 0;
        while (quietRounds < 2) {
            serviceEvents();
            boolean found = false;
            for (int tid : listTasks(abandon)) {
                if (threads.containsKey(tid)) {
                    continue;
                }
                int errno = Ptrace.ptraceErrno(Ptrace.PTRACE_SEIZE, tid, 0, OPTIONS);
                if (errno == 0) {
                    threads.put(tid, new TracedThread(tid, traps));
                    found = true;
                } else if (errno == Errno.ESRCH) {
                    continue; // the thread ended between the listing and now
                } else if (errno == Errno.EPERM && (tracerOf(tid) == tracerTid || isZombie(tid))) {
                    if (tracerOf(tid) == tracerTid) {
                        // Traced already: created by a thread we hold (auto-attached); its clone event is pending.
                        threads.put(tid, new TracedThread(tid, traps));
                        found = true;
                    }
                } else {
                    var e = errno == Errno.EPERM
                            ? NotPermittedException.forPtrace("ptrace(PTRACE_SEIZE)", errno, pid, tid)
                            : SysException.of("ptrace(PTRACE_SEIZE)", errno, "thread " + tid + " of process " + pid);
                    abandon.run();
                    throw e;
                }
            }
            quietRounds = found ? 0 : quietRounds + 1;
        }
        if (threads.isEmpty()) {
            markVanished("no thread left to attach to");
            throw ProcessVanishedException.process(pid, "attach");
        }
    }

    /** Thread ids in /proc/PID/task; the process having gone is {@link ProcessVanishedException}. */
    private List<Integer> listTasks(Runnable abandon) {
        var tids = new ArrayList<Integer>();
        try (var dir = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path p : dir) {
                tids.add(Integer.parseInt(p.getFileName().toString()));
            }
        } catch (NoSuchFileException e) {
            markVanished("its /proc/PID/task is gone");
            abandon.run();
            throw ProcessVanishedException.process(pid, "attach");
        } catch (IOException e) {
            throw new SysException("opendir", Errno.EIO, "cannot list /proc/" + pid + "/task: " + e.getMessage());
        }
        return tids;
    }

    private int tracerOf(int tid) {
        try {
            return ThreadState.status(pid, tid, "TracerPid").map(Integer::parseInt).orElse(0);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    private boolean isZombie(int tid) {
        char state = ThreadState.of(pid, tid);
        return state == 'Z' || state == 'X' || state == '?';
    }

    // ---- events while running ----

    /** Reaps and answers the stops of running threads: clone events, signals to pass on, group-stops, exits. */
    boolean serviceEvents() {
        if (threads.isEmpty()) {
            // before any thread is ours, another tracer's event or a child of this JVM would read as every thread
            // gone (docs/apply.md, "The tracer")
            return false;
        }
        int who = Ptrace.peekWaitable();
        if (who == 0) {
            return false;
        }
        boolean answered = false;
        for (var t : List.copyOf(threads.values())) {
            WaitStatus ws;
            try {
                ws = Ptrace.waitpid(t.tid(), Ptrace.WNOHANG | Ptrace.__WALL);
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
        if (threads.isEmpty()) {
            markVanished("its last thread reported its exit (or ECHILD) while it ran");
        }
        return answered;
    }

    private void answerWhileRunning(TracedThread t, WaitStatus ws) {
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
                t.cont(0);
            }
            case Ptrace.PTRACE_EVENT_STOP -> {
                if (Ptrace.isStopSignal(sig)) {
                    // The process is in group-stop: let it stay stopped, but keep it ours.
                    t.stoppedAt(TracedThread.Stop.GROUP);
                    t.listen();
                } else {
                    // The first stop of a new thread, a late interrupt, or the end of a group-stop (SIGCONT).
                    t.cont(0);
                }
            }
            case 0 -> {
                if (ws.syscallStop()) {
                    t.cont(0);
                    return;
                }
                t.stoppedWithSignal(sig); // a signal on its way to the thread: passed on, unless our breakpoint's
                int deliver = t.takePendingSignal();
                if (sig != traps.signal() || deliver != 0 || !traps.parks(t, System.nanoTime())) {
                    t.cont(deliver);
                }
            }
            default -> t.cont(0);
        }
    }

    /**
     * At the first stop of a thread given back with its system call restarted by hand: if it has not run since
     * (its registers are still those it was given back with), it gets back the registers the kernel had left,
     * and the kernel, leaving this stop (all of which are in its signal path), restarts the call by its own
     * rules, or fails it with EINTR for the signal this stop may be delivering. Either way we know it from here.
     */
    private void settle(TracedThread t) {
        var restarted = t.takeRestarted();
        if (restarted == null) {
            return;
        }
        long[] now = new long[Registers.WORDS];
        if (Ptrace.getRegistersErrno(t.tid(), now) == 0) {
            if (Arrays.equals(now, restarted.registers())
                    && Ptrace.setRegistersErrno(t.tid(), restarted.from()) == 0) {
                now = restarted.from();
            }
            t.stopRegisters(now);
        }
    }

    private TracedThread adoptClone(TracedThread parent) {
        int child = (int) Ptrace.eventMessage(parent.tid());
        return threads.computeIfAbsent(child, tid -> new TracedThread(tid, traps));
    }

    // ---- stops a hold waits for ----

    /**
     * Reaps what {@code pending.get(at)} has to report, if anything; returns true (and removes it from
     * {@code pending}) when it is now stopped or gone. A clone event adds the new thread to {@code pending}.
     */
    boolean reap(List<TracedThread> pending, int at) {
        var t = pending.get(at);
        WaitStatus ws;
        try {
            ws = Ptrace.waitpid(t.tid(), Ptrace.WNOHANG | Ptrace.__WALL);
        } catch (ProcessVanishedException e) {
            echild(t);
            ws = new WaitStatus(t.tid(), 0); // ECHILD: reaped or released already; treat as exited
        }
        if (ws == null || !recordStop(t, ws, pending)) {
            return false;
        }
        pending.remove(t);
        return true;
    }

    /** Records the stop {@code ws} of {@code t}; true when {@code t} is now stopped or gone (done waiting for it). */
    private boolean recordStop(TracedThread t, WaitStatus ws, List<TracedThread> pending) {
        if (ws.gone()) {
            drop(t);
            return true;
        }
        if (!ws.stopped()) {
            return false;
        }
        t.stoppedAt(TracedThread.Stop.OTHER);
        settle(t);
        int sig = ws.stopSignal();
        switch (ws.event()) {
            case Ptrace.PTRACE_EVENT_STOP -> t.stoppedByEvent(sig);
            case Ptrace.PTRACE_EVENT_CLONE -> {
                t.stoppedAt(TracedThread.Stop.CLONE);
                var child = adoptClone(t);
                if (!child.isStopped() && !pending.contains(child)) {
                    pending.add(child);
                }
            }
            case 0 -> {
                if (ws.syscallStop()) {
                    t.stoppedAt(TracedThread.Stop.SYSCALL);
                } else {
                    t.stoppedWithSignal(sig); // a signal was on its way in: delivered on resume
                }
            }
            default -> t.stoppedAt(TracedThread.Stop.OTHER);
        }
        return true;
    }

    // ---- gone ----

    /** waitpid said ECHILD for {@code t}: for the leader, the first evidence the process is gone (docs/apply.md). */
    private void echild(TracedThread t) {
        if (t.tid() == pid) {
            markVanished("waitpid on its leader said ECHILD (state now " + ThreadState.of(pid, pid) + ")");
        }
    }

    private void drop(TracedThread t) {
        threads.remove(t.tid());
        if (t.tid() == pid) {
            // The leader is reported only once every other thread is gone (or on exec): the process has exited.
            markVanished("its leader reported its exit"); // an ECHILD for it was named first (echild)
        }
    }

    boolean vanished() {
        return vanished;
    }

    /** Records that the process is gone, and the first evidence of it. */
    void markVanished(String how) {
        if (!vanished) {
            vanishedHow = how;
            vanished = true;
        }
    }

    /** The process found gone earlier: names the call that now finds it so, and how it was first found. */
    ProcessVanishedException gone(String during) {
        String how = vanishedHow;
        return ProcessVanishedException.process(pid, how == null ? during : during + "; seen gone as " + how);
    }

    /**
     * After a thread died under us: if the whole process is going (its leader is a zombie or gone), reaps what is
     * left and returns the "process vanished" failure; otherwise drops just that thread and returns null.
     * {@code held}: the others were held, so a running one is one the SIGKILL has not reached yet.
     */
    ProcessVanishedException threadDied(TracedThread t, String during, boolean held) {
        threads.remove(t.tid());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        // a SIGKILL reaches threads one by one: running threads may look alive for a moment
        long settled = held && threads.values().stream().anyMatch(o -> !o.isStopped())
                ? System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50) : 0;
        while (System.nanoTime() < deadline) {
            char leader = ThreadState.of(pid, pid);
            if (leader == 'Z' || leader == 'X' || leader == '?' || t.tid() == pid) {
                reapAll();
                markVanished("thread " + t.tid() + " ended and the leader is " + leader);
                return ProcessVanishedException.process(pid, during);
            }
            if (System.nanoTime() > settled && threads.values().stream().allMatch(o -> o.isStopped()
                    ? ThreadState.of(pid, o.tid()) == 't' : !ThreadState.dying(pid, o.tid()))) {
                return null; // the others are alive (held, or running while one thread is borrowed): only it ended
            }
            LockSupport.parkNanos(1_000_000);
        }
        return null;
    }

    /** Reaps the zombies of a dead process that we still owe a wait (bounded), so its parent can reap it. */
    private void reapAll() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        while (!threads.isEmpty() && System.nanoTime() < deadline) {
            for (var t : List.copyOf(threads.values())) {
                try {
                    var ws = Ptrace.waitpid(t.tid(), Ptrace.WNOHANG | Ptrace.__WALL);
                    if (ws != null && ws.gone()) {
                        threads.remove(t.tid());
                    }
                } catch (SysException e) {
                    threads.remove(t.tid());
                }
            }
            if (!threads.isEmpty()) {
                LockSupport.parkNanos(200_000);
            }
        }
        threads.clear();
    }
}
