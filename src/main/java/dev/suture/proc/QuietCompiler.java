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
 * again, so a compile the tool's own work queued (the rehearsal queues many) takes only a core nothing else wants,
 * never the one the borrowed thread needs to run the call. Instrumented on this project's 2-core machine, a
 * one-thread target's mmap hold took 0.43-0.61 ms when the C1 thread ran 0.5 ms during it, 0.15-0.22 ms when it
 * did not. Pooled over five interleaved runs of bench/apply.sh (34-84 applies per build), the hold's 90th
 * percentile was 1.0 ms for the previous build and 1.9 ms for this one without it, 0.50-0.52 ms with it; the
 * median stayed 0.36-0.38 ms.
 *
 * <p>Not for stop-the-world windows: with it, a window over 128 threads took 6.4 ms (median of 6 interleaved
 * applies) against 5.3 without; perhaps the compiles such a window queues halfway then wait until its end.
 *
 * <p>Only with CAP_SYS_NICE: an unprivileged thread may lower a thread to SCHED_IDLE but not bring it back, and
 * a compiler left there for good would leave suture's later work uncompiled on a busy machine. Without it, or on a
 * JVM whose compiler threads are not named as HotSpot names them, nothing changes. Used by tracer threads only;
 * quiet while any of them asks for it.
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
