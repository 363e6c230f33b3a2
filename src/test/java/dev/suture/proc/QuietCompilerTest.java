package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The JIT compiler threads run at SCHED_IDLE exactly while a thread of a target is borrowed for a system call. */
class QuietCompilerTest {
    private static final int SCHED_OTHER = 0;
    private static final int SCHED_IDLE = 5;

    @TempDir
    Path dir;

    @Test
    void compilerIsIdleWhileAThreadIsBorrowedAndBackAfter() throws Exception {
        assumeTrue(QuietCompiler.allowed(), "needs CAP_SYS_NICE to bring the compiler back from SCHED_IDLE");
        Path exe = Gcc.compile(dir, "workers", TracerTest.WORKERS, "-O1", "-pthread");
        try (var target = Target.start(exe, "2")) {
            target.awaitLine("ready", Duration.ofSeconds(10));
            try (var tracer = Tracer.attach(target.pidInt())) {
                assertFalse(compilerPolicies().isEmpty(), "no HotSpot compiler thread found in /proc/self/task");
                assertAll(SCHED_OTHER, "before any hold");
                var seen = new ArrayList<Map<Integer, Integer>>();
                tracer.injectionLog(new InjectionLog() { // told inside the hold, before the thread is borrowed
                    @Override
                    public void stub(long address, byte[] original, byte[] code) {}

                    @Override
                    public void borrowing(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] r) {
                        try {
                            seen.add(compilerPolicies());
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    }

                    @Override
                    public void returned(int tid) {}

                    @Override
                    public void unstub(long address) {}
                });
                long at = tracer.mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                assertEquals(1, seen.size());
                for (var e : seen.getFirst().entrySet()) {
                    assertEquals(SCHED_IDLE, e.getValue(), "policy of compiler thread " + e.getKey()
                            + " while a thread ran mmap for us");
                }
                assertAll(SCHED_OTHER, "after the hold for an injected mmap");
                tracer.stopAll("test");
                tracer.munmap(at, 4096); // inside a hold the caller made, which leaves the compiler alone
                assertAll(SCHED_OTHER, "after an injected call inside a stop-all (the compiler runs there)");
                tracer.resumeAll();
                assertAll(SCHED_OTHER, "after the threads run again");
            }
            assertAll(SCHED_OTHER, "after the tracer closed");
        }
    }

    private static void assertAll(int policy, String when) throws IOException {
        var policies = compilerPolicies();
        for (var e : policies.entrySet()) {
            assertEquals(policy, e.getValue(), "policy of compiler thread " + e.getKey() + " " + when);
        }
    }

    /** tid to scheduling policy (field 41 of /proc/self/task/TID/stat) of every HotSpot compiler thread. */
    private static Map<Integer, Integer> compilerPolicies() throws IOException {
        var policies = new TreeMap<Integer, Integer>();
        try (var tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path task : tasks) {
                try {
                    if (Files.readString(task.resolve("comm")).contains("CompilerThre")) {
                        String stat = Files.readString(task.resolve("stat"));
                        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                        policies.put(Integer.parseInt(task.getFileName().toString()), Integer.parseInt(f[41 - 3]));
                    }
                } catch (NoSuchFileException e) {
                    // a thread that ended meanwhile (a tracer thread just closed)
                }
            }
        }
        return policies;
    }
}
