package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.Processes;
import dev.suture.proc.Maps;
import dev.suture.sys.Errno;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.WaitStatus;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Holds a thread that opens a patched library (dlopen, or the loader of a new process) until the library is patched,
 * before the library's constructors run and before dlopen returns (docs/agent.md, "Libraries opened later"). The
 * fanotify permission event keeps the thread inside openat; before answering, the hold seizes that one thread, so
 * the open returns into a ptrace stop. Then it follows the thread's system calls (PTRACE_SYSCALL) until the
 * dynamic loader has mapped and relocated the library: the loader's last word on it is the mprotect that makes its
 * RELRO part read-only, right after the relocation and before the constructors. At that mprotect's return the thread
 * is turned into a ppoll(2) with every signal blocked (its registers saved; the system call instruction run again
 * with ppoll's number) and detached: it sleeps, untraced, while the agent patches the process in the normal way, and
 * is then given back its registers (the mprotect's result among them).
 *
 * <p>A record ({@code agent-lib-TID}: start time, the saved registers) is written before the thread is changed and
 * removed after it is given back, so an agent killed meanwhile leaves a thread asleep in ppoll until the restarted
 * agent {@link #releaseLeftovers releases} it. A library without RELRO, or a file opened by anything but the loader,
 * is let go after {@link #SYSCALLS} system calls and patched in the normal window.
 */
final class LibraryHold {
    static final String PREFIX = "agent-lib-";
    private static final int SYSCALLS = 400;
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(2);
    private static final int SYS_MPROTECT = 10;
    private static final int SYS_PPOLL = 271;
    private static final int PROT_READ = 1;
    /** Where the sleeping thread's signal mask goes: free stack, well below the red zone and a signal frame. */
    private static final long MASK_BELOW_SP = 4096;
    // user_regs_struct
    private static final int R10 = 7;
    private static final int R8 = 9;
    private static final int RAX = 10;
    private static final int RSI = 13;
    private static final int RSP = 19;
    private static final int RDX = 12;
    private static final int RDI = 14;
    private static final int ORIG_RAX = 15;
    private static final int RIP = 16;

    private LibraryHold() {}

    /**
     * Called with the permission event of thread {@code tid} pending on {@code path}: seizes the thread on a thread of
     * its own and returns once it is seized (or could not be), so the caller may answer the event.
     */
    static void catchOpen(int tid, String path, long eventNanos, ExecHold.Handler handler) {
        Holding.start("suture-open-" + tid, seized -> hold(tid, path, eventNanos, handler, seized));
    }

    private static void hold(int tid, String path, long eventNanos, ExecHold.Handler handler,
                             CompletableFuture<Boolean> seized) {
        int pid = tgid(tid);
        try {
            Ptrace.ptrace(Ptrace.PTRACE_SEIZE, tid, 0, Ptrace.PTRACE_O_TRACESYSGOOD);
            Ptrace.ptrace(Ptrace.PTRACE_INTERRUPT, tid, 0, 0);
        } catch (SutureException e) {
            seized.complete(false);
            handler.lost(pid, eventNanos, "it could not be traced when it opened " + path + " (" + e.getMessage()
                    + ")");
            return;
        }
        seized.complete(true);
        String record = PREFIX + tid;
        try {
            long[] regs = new long[27];
            if (!awaitRelro(tid, pid, path, regs)) {
                Holding.stopAndDetach(tid);
                handler.lost(pid, eventNanos, "the loader did not finish " + path + " within " + SYSCALLS
                        + " system calls (no RELRO, or not the loader)");
                return;
            }
            // at the mprotect's return: sleep in ppoll(NULL, 0, NULL, {every signal}), untraced, until given back;
            // with every signal blocked no handler can end the sleep and turn the mprotect into an EINTR
            long[] saved = regs.clone();
            var words = new java.util.ArrayList<String>();
            words.add(Long.toString(Processes.startTime(pid)));
            for (long w : saved) {
                words.add(Long.toHexString(w));
            }
            AgentFiles.write(record, words);
            long mask = (saved[RSP] - MASK_BELOW_SP) & ~7L;
            Ptrace.pokeData(tid, mask, -1L);
            long[] sleep = regs.clone();
            sleep[RIP] = saved[RIP] - 2; // the syscall instruction again
            sleep[RAX] = SYS_PPOLL;
            sleep[RDI] = 0;
            sleep[RSI] = 0;
            sleep[RDX] = 0;
            sleep[R10] = mask;
            sleep[R8] = 8;
            sleep[ORIG_RAX] = -1;
            Ptrace.setRegisters(tid, sleep);
            Ptrace.ptrace(Ptrace.PTRACE_DETACH, tid, 0, 0);
            long heldNanos = System.nanoTime();
            String patched;
            try {
                patched = handler.patch(pid);
            } finally {
                release(tid, saved);
                AgentFiles.remove(record);
            }
            handler.held(pid, eventNanos, heldNanos, System.nanoTime(), "library " + path + ": " + patched);
        } catch (SutureException e) {
            if (e.kind() == SutureException.Kind.VANISHED) {
                return;
            }
            Holding.stopAndDetach(tid);
            handler.lost(pid, eventNanos, e.getMessage());
        }
    }

    /**
     * Follows the thread's system calls until the return of an mprotect(PROT_READ) inside the library's mappings;
     * true then, with the thread stopped there and its registers in {@code regs}.
     */
    private static boolean awaitRelro(int tid, int pid, String path, long[] regs) {
        boolean inSyscall = false;
        boolean relro = false;
        long deadline = System.nanoTime() + WAIT_NANOS;
        int calls = 0;
        int resume = 0;
        while (calls < SYSCALLS && System.nanoTime() < deadline) {
            WaitStatus ws = Ptrace.waitpid(tid, Ptrace.__WALL);
            if (ws.gone()) {
                throw new ProcessVanishedException("waitpid", Errno.ESRCH, "thread " + tid + " exited");
            }
            if (ws.syscallStop()) {
                Ptrace.getRegisters(tid, regs);
                if (!inSyscall) {
                    calls++;
                    relro = regs[ORIG_RAX] == SYS_MPROTECT && regs[RDX] == PROT_READ && inLibrary(pid, path,
                            regs[RDI]);
                } else if (relro) {
                    return true;
                }
                inSyscall = !inSyscall;
                resume = 0;
            } else if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                if (ws.stopSignal() != Ptrace.SIGTRAP) {
                    return false; // job control
                }
                resume = 0;
            } else {
                resume = ws.stopSignal();
            }
            Ptrace.ptrace(Ptrace.PTRACE_SYSCALL, tid, 0, resume);
        }
        return false;
    }

    private static boolean inLibrary(int pid, String path, long address) {
        try {
            return Maps.read(pid).stream().anyMatch(m -> m.path().equals(path) && m.contains(address));
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** Wakes the thread from the ppoll it sleeps in and gives it the mprotect's result and its registers back. */
    private static void release(int tid, long[] saved) {
        if (!Holding.seizeStopped(tid)) {
            return;
        }
        long[] regs = new long[27];
        Ptrace.getRegisters(tid, regs);
        if (regs[RIP] == saved[RIP] || regs[RIP] == saved[RIP] - 2) {
            long[] back = saved.clone();
            back[ORIG_RAX] = -1; // no restart of the interrupted ppoll
            Ptrace.setRegisters(tid, back);
        }
        Ptrace.ptrace(Ptrace.PTRACE_DETACH, tid, 0, 0);
    }

    /** The process a thread belongs to (its Tgid), or the tid itself when it cannot be read. */
    static int tgid(int tid) {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/" + tid + "/status"))) {
                if (line.startsWith("Tgid:")) {
                    return Integer.parseInt(line.substring(5).trim());
                }
            }
        } catch (java.io.IOException | RuntimeException e) {
            // gone
        }
        return tid;
    }

    /** After a restart: every thread a killed agent left asleep in ppoll gets its registers back. */
    static List<Integer> releaseLeftovers() {
        return Holding.releaseLeftovers(PREFIX, (tid, lines) -> {
            if (lines.size() != 28 || !Processes.exists(tgid(tid), Long.parseLong(lines.get(0)))) {
                return false;
            }
            long[] saved = new long[27];
            for (int i = 0; i < 27; i++) {
                saved[i] = Long.parseUnsignedLong(lines.get(i + 1), 16);
            }
            release(tid, saved);
            return true;
        });
    }
}
