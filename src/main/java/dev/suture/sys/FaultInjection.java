package dev.suture.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A test hook that proves principle 3 (the target survives the tool's death at any instant): every ptrace call
 * and every write into another process is a numbered step, and with {@code SUTURE_FAULT_KILL_AT=N} in the
 * environment suture kills itself with SIGKILL just before step N. {@code SUTURE_FAULT_LOG=FILE} writes, at a
 * normal exit, one line per step taken ("N what"), so a test learns how many steps a transaction has and what
 * each one is. Two more prove that holds have a budget (docs/apply.md): {@code SUTURE_FAULT_STOP_AT=N} sends
 * suture SIGTSTP (a terminal's Ctrl-Z) before step N, and {@code SUTURE_FAULT_STALL_AT=N} makes it sleep
 * {@code SUTURE_FAULT_STALL_MS} (default 200) before step N, as a suture stopped and continued there would. With
 * none of them set, a step costs one read of a constant.
 */
public final class FaultInjection {
    private static final long KILL_AT = parse("SUTURE_FAULT_KILL_AT");
    private static final long STOP_AT = parse("SUTURE_FAULT_STOP_AT");
    private static final long STALL_AT = parse("SUTURE_FAULT_STALL_AT");
    private static final long STALL_MILLIS = STALL_AT > 0 && System.getenv("SUTURE_FAULT_STALL_MS") != null
            ? parse("SUTURE_FAULT_STALL_MS") : 200;
    private static final String LOG = System.getenv("SUTURE_FAULT_LOG");
    static final boolean ACTIVE = KILL_AT > 0 || STOP_AT > 0 || STALL_AT > 0 || LOG != null;
    private static final int SIGKILL = 9;
    private static final int SIGTSTP = 20;

    private static long count;
    private static final List<String> steps = new ArrayList<>();

    static {
        if (LOG != null) {
            Runtime.getRuntime().addShutdownHook(new Thread(FaultInjection::writeLog));
        }
    }

    private FaultInjection() {}

    /** One step is about to be taken; {@code what} names it (only called when a test hook is set). */
    static void step(String what, int tid, long address) {
        if (!ACTIVE || UNCOUNTED.get()) {
            return;
        }
        synchronized (FaultInjection.class) {
            count++;
            if (count == KILL_AT) {
                Syscalls.kill((int) ProcessHandle.current().pid(), SIGKILL);
            }
            if (count == STOP_AT) {
                // to the process, as a terminal sends it: any thread of the JVM that does not block it may take it
                Syscalls.kill((int) ProcessHandle.current().pid(), SIGTSTP);
            }
            if (count == STALL_AT) {
                stall();
            }
            if (LOG != null) {
                steps.add(count + " " + what + " " + tid + " 0x" + Long.toHexString(address));
            }
        }
    }

    /** Set on a thread whose calls are no steps, and inherited by the threads it starts (a decoy's tracer). */
    private static final InheritableThreadLocal<Boolean> UNCOUNTED = new InheritableThreadLocal<>() {
        @Override
        protected Boolean initialValue() {
            return false;
        }
    };

    /**
     * Runs {@code work} without counting the calls it makes, on this thread and on the threads it starts: warming
     * up the native handles on ourselves, or rehearsing on a decoy process, is no step of a transaction.
     */
    public static void uncounted(Runnable work) {
        boolean was = UNCOUNTED.get();
        UNCOUNTED.set(true);
        try {
            work.run();
        } finally {
            UNCOUNTED.set(was);
        }
    }

    private static synchronized void writeLog() {
        try {
            Files.write(Path.of(LOG), steps);
        } catch (IOException e) {
            System.err.println("suture: cannot write the fault-injection log " + LOG + ": " + e.getMessage());
        }
    }

    private static void stall() {
        try {
            Thread.sleep(STALL_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static long parse(String variable) {
        String value = System.getenv(variable);
        if (value == null || value.isBlank()) {
            return 0;
        }
        try {
            return Long.parseLong(value.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(variable + " must be a number, not '" + value + "'");
        }
    }
}
