package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.Processes;
import dev.suture.proc.Auxv;
import dev.suture.sys.Ptrace;
import dev.suture.sys.WaitStatus;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Holds a new process of a patched executable before its first instruction of its own (docs/agent.md, "New
 * processes"). The kernel's fanotify permission event keeps the process inside execve until it is answered; before
 * answering, the hold seizes it (PTRACE_SEIZE with PTRACE_O_TRACEEXEC), so the exec ends in a ptrace stop. There the
 * first two bytes of the program's entry point ({@code _start}, AT_ENTRY) become {@code jmp .}, and the hold lets
 * the dynamic loader map and relocate the libraries and run their constructors; once the thread spins at the entry
 * point the hold detaches (nothing stays traced), the agent applies the store's patches, and the hold puts the two
 * bytes back while the thread is stopped. The process runs {@code main} with the new code.
 *
 * <p>A record in the run directory ({@code agent-hold-PID}: start time, entry point, original bytes) is written
 * before the entry point changes and removed after it is restored, so an agent killed at any instant leaves a
 * process that spins at its entry point until the agent restarts and {@link #releaseLeftovers releases} it (the
 * systemd unit restarts the agent at once); the process is never killed and never stays traced.
 */
final class ExecHold {
    static final String PREFIX = "agent-hold-";
    private static final long JMP_SELF = 0xfeebL; // eb fe: jmp . (little-endian in the low two bytes)
    private static final int RIP = 16; // user_regs_struct
    private static final long EXEC_WAIT_NANOS = TimeUnit.SECONDS.toNanos(2);
    private static final long LOADER_WAIT_NANOS = TimeUnit.SECONDS.toNanos(10);

    /** What the agent does with a held process: patch it (returns a summary), or say that the hold was lost. */
    interface Handler {
        String patch(int pid);

        void lost(int pid, long eventNanos, String why);

        void held(int pid, long eventNanos, long heldNanos, long releasedNanos, String patched);
    }

    private ExecHold() {}

    /**
     * Called with the permission event of process {@code pid} pending: seizes it on a thread of its own and returns
     * once it is seized (or could not be), so the caller may answer the event.
     */
    static void catchExec(int pid, long eventNanos, Handler handler) {
        Holding.start("suture-exec-" + pid, seized -> hold(pid, eventNanos, handler, seized));
    }

    private static void hold(int pid, long eventNanos, Handler handler, CompletableFuture<Boolean> seized) {
        try {
            Ptrace.ptrace(Ptrace.PTRACE_SEIZE, pid, 0, Ptrace.PTRACE_O_TRACEEXEC);
        } catch (SutureException e) {
            seized.complete(false);
            handler.lost(pid, eventNanos, "it could not be traced at its exec (" + e.getMessage() + ")");
            return;
        }
        seized.complete(true);
        long entry;
        String record = PREFIX + pid;
        try {
            if (!awaitExec(pid)) {
                return; // it exited, or its exec failed: nothing of the store runs in it
            }
            entry = Auxv.read(pid).entry().orElseThrow(() -> new SutureException(SutureException.Kind.INTERNAL,
                    "pid " + pid + " has no AT_ENTRY"));
            long word = Ptrace.peekData(pid, entry);
            AgentFiles.write(record, List.of(Long.toString(Processes.startTime(pid)), Long.toHexString(entry),
                    Long.toHexString(word)));
            Ptrace.pokeData(pid, entry, (word & ~0xffffL) | JMP_SELF);
            Ptrace.ptrace(Ptrace.PTRACE_CONT, pid, 0, 0);
            if (!awaitEntry(pid, entry, word)) {
                AgentFiles.remove(record);
                handler.lost(pid, eventNanos, "its dynamic loader did not reach the entry point in time");
                return;
            }
            long heldNanos = System.nanoTime();
            String patched;
            try {
                patched = handler.patch(pid);
            } finally {
                release(pid, entry, word);
                AgentFiles.remove(record);
            }
            handler.held(pid, eventNanos, heldNanos, System.nanoTime(), patched);
        } catch (SutureException e) {
            if (e.kind() == SutureException.Kind.VANISHED) {
                return; // a process that exits meanwhile is no error
            }
            Holding.stopAndDetach(pid);
            handler.lost(pid, eventNanos, e.getMessage());
        }
    }

    /** Waits for the exec stop; false when the process went away or did not exec (then it is detached). */
    private static boolean awaitExec(int pid) {
        long deadline = System.nanoTime() + EXEC_WAIT_NANOS;
        while (true) {
            WaitStatus ws = Ptrace.waitpid(pid, Ptrace.WNOHANG | Ptrace.__WALL);
            if (ws == null) {
                if (System.nanoTime() > deadline) {
                    Holding.stopAndDetach(pid);
                    return false;
                }
                LockSupport.parkNanos(20_000);
                continue;
            }
            if (ws.gone()) {
                return false;
            }
            if (ws.event() == Ptrace.PTRACE_EVENT_EXEC) {
                return true;
            }
            if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                Ptrace.ptrace(Ptrace.PTRACE_DETACH, pid, 0, 0); // a job-control stop: leave it to its owner
                return false;
            }
            Ptrace.ptrace(Ptrace.PTRACE_CONT, pid, 0, ws.stopSignal()); // a signal: deliver it
        }
    }

    /**
     * Lets the loader run until the thread spins at the entry point, then detaches; false (entry restored, detached)
     * when it does not get there in time or stops for job control.
     */
    private static boolean awaitEntry(int pid, long entry, long word) {
        long deadline = System.nanoTime() + LOADER_WAIT_NANOS;
        long[] regs = new long[27];
        long pauseNanos = 50_000;
        while (true) {
            LockSupport.parkNanos(pauseNanos);
            pauseNanos = Math.min(pauseNanos * 2, 2_000_000);
            Ptrace.ptrace(Ptrace.PTRACE_INTERRUPT, pid, 0, 0);
            WaitStatus ws = Ptrace.waitpid(pid, Ptrace.__WALL);
            if (ws.gone()) {
                throw new dev.suture.sys.ProcessVanishedException("waitpid", dev.suture.sys.Errno.ESRCH, "pid " + pid + " exited");
            }
            if (ws.event() == Ptrace.PTRACE_EVENT_STOP && ws.stopSignal() == Ptrace.SIGTRAP) {
                Ptrace.getRegisters(pid, regs);
                if (regs[RIP] == entry) {
                    Ptrace.ptrace(Ptrace.PTRACE_DETACH, pid, 0, 0);
                    return true;
                }
                if (System.nanoTime() > deadline) {
                    Ptrace.pokeData(pid, entry, word);
                    Ptrace.ptrace(Ptrace.PTRACE_DETACH, pid, 0, 0);
                    return false;
                }
                Ptrace.ptrace(Ptrace.PTRACE_CONT, pid, 0, 0);
            } else if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                Ptrace.pokeData(pid, entry, word); // stopped for job control: give it back as it is
                Ptrace.ptrace(Ptrace.PTRACE_DETACH, pid, 0, 0);
                return false;
            } else {
                Ptrace.ptrace(Ptrace.PTRACE_CONT, pid, 0, ws.stopSignal());
            }
        }
    }

    /** Stops the thread that spins at {@code entry}, puts the original bytes back, and lets it go. */
    private static void release(int pid, long entry, long word) {
        if (!Holding.seizeStopped(pid)) {
            return;
        }
        long now = Ptrace.peekData(pid, entry);
        if ((now & 0xffffL) == JMP_SELF) {
            Ptrace.pokeData(pid, entry, (now & ~0xffffL) | (word & 0xffffL));
        }
        Ptrace.ptrace(Ptrace.PTRACE_DETACH, pid, 0, 0);
    }

    /**
     * After a restart: every process a killed agent left spinning at its entry point gets its bytes back and runs
     * on (the agent then patches it like any running process). Returns the pids released.
     */
    static List<Integer> releaseLeftovers() {
        return Holding.releaseLeftovers(PREFIX, (pid, lines) -> {
            if (lines.size() != 3 || !Processes.exists(pid, Long.parseLong(lines.get(0)))) {
                return false;
            }
            release(pid, Long.parseUnsignedLong(lines.get(1), 16), Long.parseUnsignedLong(lines.get(2), 16));
            return true;
        });
    }
}
