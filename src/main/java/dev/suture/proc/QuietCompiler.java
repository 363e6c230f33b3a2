package dev.suture.proc;

import dev.suture.sys.Syscalls;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Keeps this JVM's JIT compiler threads off the cores while a thread of a target is borrowed for a system call
 * ({@link Injector}): they run at {@code SCHED_IDLE} from just before the hold's interrupt until the thread runs
 * again, so a compile the tool's own work queued takes only a core nothing else wants. Not for stop-the-world
 * windows, where it did not pay (docs/apply.md).
 *
 * <p>Only with CAP_SYS_NICE: an unprivileged thread may lower a thread to SCHED_IDLE but not bring it back. Without
 * it, or on a JVM whose compiler threads are not named as HotSpot names them, nothing changes. Used by tracer
 * threads only; quiet while any of them asks for it.
 */
final class QuietCompiler {
    private static final boolean ALLOWED = capSysNice();
    private static List<Integer> threads = List.of();
    private static int holds;

    private QuietCompiler() {}

    /** Whether this JVM may lower its compiler threads and bring them back (CAP_SYS_NICE). */
    static boolean allowed() {
        return ALLOWED;
    }

    /** Looks up the compiler threads again (HotSpot may have started more since the last look). */
    static synchronized void refresh() {
        if (ALLOWED) {
            threads = compilerThreads();
        }
    }

    /** A borrowing hold starts: compiler threads to SCHED_IDLE. */
    static synchronized void quiet() {
        if (ALLOWED && holds++ == 0) {
            set(Syscalls.SCHED_IDLE);
        }
    }

    /** That hold ended: compiler threads back to SCHED_OTHER. */
    static synchronized void loud() {
        if (ALLOWED && holds > 0 && --holds == 0) {
            set(Syscalls.SCHED_OTHER);
        }
    }

    /**
     * Sets {@code policy} on each compiler thread still there: a tid is checked to be a compiler thread of this
     * process first, since HotSpot may end one (a dynamically added compiler thread) and its number may then be
     * given to another thread, of this process or of any other.
     */
    private static void set(int policy) {
        for (int tid : threads) {
            if (isCompilerThread(Path.of("/proc/self/task/" + tid))) {
                int ignoredErrno = Syscalls.setScheduler(tid, policy, 0); // ESRCH: it ended just now
            }
        }
    }

    private static boolean isCompilerThread(Path task) {
        try {
            return Files.readString(task.resolve("comm")).contains("CompilerThre");
        } catch (IOException e) {
            return false; // ended
        }
    }

    /** HotSpot names them "C1 CompilerThreadN" and "C2 CompilerThreadN" (comm keeps 15 characters). */
    private static List<Integer> compilerThreads() {
        var tids = new ArrayList<Integer>();
        try (var tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path task : tasks) {
                if (isCompilerThread(task)) {
                    tids.add(Integer.parseInt(task.getFileName().toString()));
                }
            }
        } catch (IOException e) {
            return List.of();
        }
        return List.copyOf(tids);
    }

    /** CAP_SYS_NICE (bit 23) in this process's effective set. */
    private static boolean capSysNice() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("CapEff:")) {
                    return (Long.parseUnsignedLong(line.substring(7).strip(), 16) & (1L << 23)) != 0;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // no /proc: leave the compiler alone
        }
        return false;
    }
}
