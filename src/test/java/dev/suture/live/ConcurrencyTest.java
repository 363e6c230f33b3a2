package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two sutures on one process at once: one wins, the other fails at once with exit 5 naming the suture that holds
 * the process, and nothing is corrupted. Each suture runs in a JVM of its own, as two operators' would. A suture
 * killed while it holds the process leaves the lock to the next one and the journal to recover.
 */
class ConcurrencyTest {
    static final Duration RUN = Duration.ofSeconds(60);

    @TempDir
    static Path dir;
    static Path runDir;
    static Path exe;
    static Path heldPatch;
    static Path valuePatch;

    @BeforeAll
    static void build() throws IOException {
        String program = TransactionSafetyTest.PROGRAM;
        Path orig = Fixture.object(dir, "orig", "prog", program, "-fno-pie");
        exe = Fixture.link(dir, "prog", List.of(orig), "-no-pie");
        heldPatch = variant(orig, "held", program.replace("    return 1;\n}\n\nint moment",
                "    return 2;\n}\n\nint moment"));
        valuePatch = variant(orig, "value2", program.replace("int value(void) {\n    return 1;",
                "int value(void) {\n    return 2;"));
        runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString()); // for the in-process recover and revert
    }

    @AfterAll
    static void clear() {
        System.clearProperty("suture.runDir");
    }

    private static Path variant(Path orig, String name, String source) throws IOException {
        Path obj = Fixture.object(dir, name, "prog", source, "-fno-pie");
        Path out = dir.resolve(name + ".suture");
        Fixture.diff(exe, List.of(orig), List.of(obj), name, out);
        return out;
    }

    private static Map<String, String> env() {
        return Map.of("SUTURE_RUN_DIR", runDir.toString());
    }

    @Test
    void theSecondSutureIsToldWhoHoldsTheProcess() throws Exception {
        try (var t = Target.start(exe)) {
            String pid = Long.toString(t.pid());
            Fixture.await(t, 0, "value 1", 2);
            byte[] original = Fixture.text(t.pidInt(), exe);
            // held() never leaves its thread's stack: the first suture holds the process, retrying, until killed
            try (var first = SutureProcess.start(dir, env(), "apply", "-p", pid, "--timeout", "120000",
                    heldPatch.toString())) {
                awaitLock(t.pidInt(), first);
                var second = SutureProcess.run(dir, RUN, env(), "apply", "-p", pid, valuePatch.toString());
                assertEquals(5, second.status(), second.toString());
                assertTrue(second.err().contains("being changed by another suture")
                        && second.err().contains("suture pid " + first.pid())
                        && second.err().contains("apply held"), second.err());
            } // closing kills the first suture (SIGKILL) in the middle of its transaction
            var recovered = Patcher.recover(t.pidInt(), Duration.ofSeconds(5));
            assertEquals(Patcher.RecoverOutcome.ROLLED_BACK, recovered.outcome(), recovered.message());
            assertTrue(Patcher.applied(t.pidInt()).isEmpty());
            assertTrue(java.util.Arrays.equals(original, Fixture.text(t.pidInt(), exe)));
            var r = SutureProcess.run(dir, RUN, env(), "apply", "-p", pid, valuePatch.toString());
            assertEquals(0, r.status(), r.toString());
            Fixture.await(t, t.lines().size(), "value 2", 2);
            assertEquals("", Files.readString(runDir.resolve(pid + ".lock")), "the holder's name goes with it");
            assertTrue(Files.notExists(runDir.resolve(pid + ".journal")), "the journal goes with the transaction");
        }
    }

    @Test
    void racingSuturesPatchExactlyOnce() throws Exception {
        try (var t = Target.start(exe)) {
            String pid = Long.toString(t.pid());
            Fixture.await(t, 0, "value 1", 2);
            byte[] original = Fixture.text(t.pidInt(), exe);
            for (int round = 0; round < 3; round++) {
                var racers = new ArrayList<SutureProcess>();
                try {
                    for (int i = 0; i < 2; i++) {
                        racers.add(SutureProcess.start(dir, env(), "apply", "-p", pid, valuePatch.toString()));
                    }
                    int applied = 0;
                    for (var r : racers) {
                        var result = r.await(RUN);
                        if (result.status() == 0) {
                            applied += result.out().contains("already applied") ? 0 : 1;
                        } else {
                            assertEquals(5, result.status(), result.toString());
                            assertTrue(result.err().contains("another suture") || result.err().contains("traced by"),
                                    result.err());
                        }
                    }
                    assertEquals(1, applied, "exactly one of the racers applies the patch");
                } finally {
                    for (var r : racers) {
                        r.close();
                    }
                }
                assertEquals(1, Patcher.applied(t.pidInt()).size());
                Fixture.await(t, t.lines().size(), "value 2", 2);
                Patcher.revert(t.pidInt(), List.of(), true, Duration.ofSeconds(5));
                assertTrue(java.util.Arrays.equals(original, Fixture.text(t.pidInt(), exe)));
            }
        }
    }

    /** Waits until {@code holder} holds the lock of {@code pid} (its name is in the lock file). */
    private static void awaitLock(int pid, SutureProcess holder) throws IOException {
        Path lock = runDir.resolve(pid + ".lock");
        long deadline = System.nanoTime() + RUN.toNanos();
        while (!(Files.exists(lock) && Files.readString(lock).contains("suture pid " + holder.pid()))) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("suture pid " + holder.pid() + " never took the lock of " + pid);
            }
            Fixture.sleep(20);
        }
    }
}
