package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Procs;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Principle 3, proved step by step: suture kills itself (SIGKILL) before the N-th ptrace call or memory write of
 * an apply, and of a revert, for every N the transaction has, on a three-thread program and a three-function patch
 * that needs a jump table, data and an injected mmap and mprotect (two walkers, a target each, share the kill
 * points out). After each death the target must be alive,
 * untraced and running, and after {@code recover} exactly original or exactly patched: its text byte for byte,
 * and what it prints.
 */
class FaultInjectionTest {
    static final String PROGRAM = """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            static void nap(long ms) {
                struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&t, 0);
            }

            int alpha(int x) {
                return x + 1;
            }

            int beta(int x) {
                return x * 2;
            }

            int gamma3(int x) {
                return x - 3;
            }

            static void *worker(void *arg) {
                long id = (long) arg;
                for (;;) {
                    volatile int sum = alpha(id) + beta(id) + gamma3(id);
                    (void) sum;
                    nap(2);
                }
                return arg;
            }

            int main(void) {
                alarm(600); /* the walk runs a few minutes */
                setvbuf(stdout, 0, _IOLBF, 0);
                pthread_t t[2];
                for (long i = 0; i < 2; i++)
                    pthread_create(&t[i], 0, worker, (void *) i);
                for (;;) {
                    printf("tick a %d b %d c %d\\n", alpha(10), beta(10), gamma3(10));
                    nap(5);
                }
            }
            """;
    static final String PATCHED = PROGRAM
            .replace("return x + 1;", "return x + 100;")
            .replace("int beta(int x) {\n    return x * 2;", "static int scale = 20;\n\nint beta(int x) {\n"
                    + "    return x * scale;")
            .replace("int gamma3(int x) {\n    return x - 3;", "int triple(int x) {\n    return x * 3;\n}\n\n"
                    + "int gamma3(int x) {\n    return triple(x) - 3;");
    static final String ORIGINAL_LINE = "tick a 11 b 20 c 7";
    static final String PATCHED_LINE = "tick a 110 b 200 c 27";
    static final Duration RUN = Duration.ofSeconds(60);

    @TempDir
    static Path dir;
    static Path runDir;
    static Path exe;
    static Path patchFile;

    @BeforeAll
    static void build() throws IOException {
        assertFalse(PATCHED.equals(PROGRAM));
        Path orig = Fixture.object(dir, "orig", "prog", PROGRAM, "-fno-pie");
        Path patched = Fixture.object(dir, "patched", "prog", PATCHED, "-fno-pie");
        exe = Fixture.link(dir, "prog", List.of(orig), "-no-pie");
        patchFile = dir.resolve("abc.suture");
        var patch = Fixture.diff(exe, List.of(orig), List.of(patched), "abc", patchFile);
        assertEquals(3, patch.replaced().size(), patch.replaced().toString());
        runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString());
    }

    @AfterAll
    static void restore() {
        System.clearProperty("suture.runDir");
    }

    @Test
    void everyKillPointOfApplyAndRevertEndsOriginalOrPatched() throws Exception {
        int applySteps;
        int revertSteps;
        try (var t = Target.start(exe)) {
            int pid = t.pidInt();
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            byte[] original = Fixture.text(pid, exe);
            applySteps = countSteps(t, "apply", "-p", Integer.toString(pid), patchFile.toString());
            assertFalse(Arrays.equals(original, Fixture.text(pid, exe)));
            revertSteps = countSteps(t, "revert", "-p", Integer.toString(pid), "--all");
            assertTrue(Arrays.equals(original, Fixture.text(pid, exe)), "revert restores the text");
        }
        // every kill point, shared out between two walkers with a target each (one per core)
        // -Dsuture.faultPoints=N walks only the first N steps of each, to debug a failure quickly
        int limit = Integer.getInteger("suture.faultPoints", Integer.MAX_VALUE);
        applySteps = Math.min(applySteps, limit);
        revertSteps = Math.min(revertSteps, limit);
        var points = new ArrayList<int[]>();
        for (int k = 1; k <= applySteps; k++) {
            points.add(new int[] {0, k});
        }
        for (int k = 1; k <= revertSteps; k++) {
            points.add(new int[] {1, k});
        }
        var outcomes = new java.util.concurrent.ConcurrentLinkedQueue<String>();
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(WALKERS)) {
            var walks = new ArrayList<java.util.concurrent.Future<?>>();
            for (int w = 0; w < WALKERS; w++) {
                int walker = w;
                walks.add(pool.submit(() -> {
                    walk(java.util.stream.IntStream.range(0, points.size()).filter(i -> i % WALKERS == walker)
                            .mapToObj(points::get).toList(), outcomes);
                    return null;
                }));
            }
            for (var walk : walks) {
                walk.get();
            }
        }
        long survived = outcomes.stream().filter(o -> !o.contains(": BAD")).count();
        System.out.printf("fault injection: apply %d steps, revert %d steps, %d kill points walked, %d"
                + " consistent; outcomes: %s%n", applySteps, revertSteps, outcomes.size(), survived,
                summarize(List.copyOf(outcomes)));
        assertEquals(applySteps + revertSteps, outcomes.size());
        assertEquals(applySteps + revertSteps, survived, String.join("\n", outcomes));
    }

    static final int WALKERS = 2;

    /** Walks {@code points} ({0 apply | 1 revert, step}) on a target of its own. */
    private void walk(List<int[]> points, java.util.Queue<String> outcomes) throws IOException {
        try (var t = Target.start(exe)) {
            try {
                walk(t, points, outcomes);
            } catch (RuntimeException e) {
                // seen flaky on a 2-core VM (pid_max 32768): the target vanished in a revert point; say how
                var lines = t.lines();
                throw new AssertionError("walker failed (" + outcomes.size() + " points walked by both);"
                        + " target alive: " + t.alive() + "; its last lines: "
                        + lines.subList(Math.max(0, lines.size() - 3), lines.size()), e);
            }
        }
    }

    private void walk(Target t, List<int[]> points, java.util.Queue<String> outcomes) throws IOException {
        int pid = t.pidInt();
        Fixture.await(t, 0, ORIGINAL_LINE, 2);
        byte[] original = Fixture.text(pid, exe);
        var patch = dev.suture.patch.PatchFile.read(patchFile);
        Patcher.apply(pid, patch, Patcher.ApplyOptions.defaults());
        byte[] patched = Fixture.text(pid, exe);
        Patcher.revert(pid, List.of(), true, Duration.ofSeconds(5));
        for (int[] point : points) {
            boolean revert = point[0] == 1;
            if (revert) {
                Patcher.apply(pid, patch, Patcher.ApplyOptions.defaults());
            }
            String outcome = (revert ? "revert" : "apply") + " step " + point[1] + ": "
                    + killAndRecover(t, point[1], original, patched, revert);
            System.out.println(outcome);
            outcomes.add(outcome);
        }
    }

    /** Runs the command with the step log on; it must succeed; returns its step count. */
    private int countSteps(Target t, String... args) throws IOException {
        Path log = dir.resolve("steps-" + args[0] + ".log");
        var r = SutureProcess.run(dir, RUN, Map.of("SUTURE_RUN_DIR", runDir.toString(),
                "SUTURE_FAULT_LOG", log.toString()), args);
        assertEquals(0, r.status(), r.toString());
        awaitFresh(t, args[0].equals("apply") ? PATCHED_LINE : ORIGINAL_LINE);
        int steps = Files.readAllLines(log).size();
        assertTrue(steps > 10, "a transaction of " + steps + " steps");
        return steps;
    }

    /**
     * Kills suture before step {@code k} of apply (or revert), recovers, checks the target, and brings it back
     * to original for the next round. Returns a line saying what happened ("BAD ..." when inconsistent).
     */
    private String killAndRecover(Target t, int k, byte[] original, byte[] patched, boolean revert)
            throws IOException {
        int pid = t.pidInt();
        String what = (revert ? "revert" : "apply") + " killed at step " + k;
        String[] args = revert ? new String[] {"revert", "-p", Integer.toString(pid), "--all"}
                : new String[] {"apply", "-p", Integer.toString(pid), patchFile.toString()};
        var r = SutureProcess.run(dir, RUN, Map.of("SUTURE_RUN_DIR", runDir.toString(),
                "SUTURE_FAULT_KILL_AT", Integer.toString(k)), args);
        if (!r.killed() && r.status() != 0) {
            return "BAD " + what + ": suture ended with " + r;
        }
        if (!t.alive()) {
            return "BAD " + what + ": the target died; output:\n" + tail(t);
        }
        var recovered = Patcher.recover(pid, Duration.ofSeconds(5));
        String untraced = checkRunning(pid);
        if (untraced != null) {
            return "BAD " + what + ": " + untraced;
        }
        byte[] text = Fixture.text(pid, exe);
        boolean isOriginal = Arrays.equals(text, original);
        boolean isPatched = Arrays.equals(text, patched);
        if (!isOriginal && !isPatched) {
            return "BAD " + what + ": text is neither original nor patched after " + recovered.message()
                    + "; against the original: " + difference(original, text) + "; against the patched: "
                    + difference(patched, text);
        }
        String line = awaitFresh(t, isPatched ? PATCHED_LINE : ORIGINAL_LINE);
        if (line != null) {
            return "BAD " + what + ": text is " + (isPatched ? "patched" : "original") + " but it printed '" + line
                    + "'";
        }
        if (Files.exists(runDir.resolve(pid + ".journal"))) {
            return "BAD " + what + ": the journal is still there after " + recovered.message();
        }
        if (isPatched) {
            Patcher.revert(pid, List.of(), true, Duration.ofSeconds(5));
        }
        if (!Patcher.applied(pid).isEmpty()) {
            return "BAD " + what + ": a region is left after recovery: " + Patcher.applied(pid);
        }
        return (isPatched ? "patched" : "original") + " " + recovered.outcome()
                + (recovered.threadsReturned().isEmpty() ? "" : " thread-given-back")
                + (r.killed() ? "" : " (not killed)");
    }

    /** Null when every thread runs untraced (TracerPid 0, not in a tracing or job-control stop). */
    private static String checkRunning(int pid) {
        for (var thread : Procs.threadStates(pid).entrySet()) {
            int tracer = Procs.tracerOf(pid, thread.getKey());
            if (tracer != 0) {
                return "thread " + thread.getKey() + " is still traced (by " + tracer + ")";
            }
            if (thread.getValue() == 't' || thread.getValue() == 'T') {
                return "thread " + thread.getKey() + " is stopped (state " + thread.getValue() + ")";
            }
        }
        return null;
    }

    /** Waits for two lines printed from now on; null if both are {@code expected}, else the first other one. */
    private static String awaitFresh(Target t, String expected) throws IOException {
        int skip = t.lines().size();
        Fixture.await(t, skip, "tick", 3);
        // the first line may have been half-printed before the change: judge the two after it
        return t.lines().stream().skip(skip).filter(l -> l.startsWith("tick")).skip(1).limit(2)
                .filter(l -> !l.equals(expected)).findFirst().orElse(null);
    }

    private static String tail(Target t) throws IOException {
        var lines = t.lines();
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
    }

    /** Where two text snapshots first differ, for a failure message. */
    private static String difference(byte[] expected, byte[] actual) {
        int n = Math.min(expected.length, actual.length);
        for (int i = 0; i < n; i++) {
            if (expected[i] != actual[i]) {
                int to = Math.min(n, i + 8);
                return "offset 0x" + Integer.toHexString(i) + " expected " + java.util.HexFormat.of().formatHex(
                        expected, i, to) + " found " + java.util.HexFormat.of().formatHex(actual, i, to);
            }
        }
        return expected.length == actual.length ? "equal" : "lengths " + expected.length + " and " + actual.length;
    }

    private static String summarize(List<String> outcomes) {
        var counts = new java.util.TreeMap<String, Integer>();
        for (String o : outcomes) {
            String what = o.substring(o.indexOf(": ") + 2);
            counts.merge(what.startsWith("BAD") ? "BAD" : what, 1, Integer::sum);
        }
        return counts.toString();
    }
}
