package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.patch.PatchFile;
import dev.suture.sys.Syscalls;
import dev.suture.testing.Procs;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Holds have a budget (issue 14, item 9): while suture holds the target's threads, the signals that stop a process
 * from a terminal do not stop suture, and a window that holds them past {@code --max-pause} (suture stopped, or
 * stalled by the fault hook as a stopped and continued suture would be) is undone and retried, or fails clearly.
 * suture runs in a JVM of its own, so that it can be signalled and stalled.
 */
class HoldBudgetTest {
    static final String PROGRAM = """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            static void nap(long ms) {
                struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&t, 0);
            }

            int value(int x) {
                return x + 1;
            }

            static void *worker(void *arg) {
                for (;;)
                    nap(50);
                return arg;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                pthread_t t[2];
                for (int i = 0; i < 2; i++)
                    pthread_create(&t[i], 0, worker, 0);
                for (;;) {
                    printf("tick %d\\n", value(10));
                    nap(5);
                }
            }
            """;
    static final String PATCHED = PROGRAM.replace("return x + 1;", "return x + 100;");
    static final String ORIGINAL_LINE = "tick 11";
    static final String PATCHED_LINE = "tick 110";
    static final Duration RUN = Duration.ofSeconds(60);
    static final int SIGTSTP = 20;
    static final int SIGTTIN = 21;
    static final int SIGTTOU = 22;

    @TempDir
    static Path dir;
    static Path runDir;
    static Fixture.Built built;
    /** The step (SUTURE_FAULT_LOG numbering) at which the window writes the jump: inside the window. */
    static int jumpStep;

    @BeforeAll
    static void build() throws IOException {
        built = Fixture.program(dir, "prog", PROGRAM, PATCHED, "budget", false);
        runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString());
        jumpStep = findJumpStep();
    }

    @AfterAll
    static void restore() {
        System.clearProperty("suture.runDir");
    }

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    /**
     * Applies once with the step log on and returns the step of the window's jump write: the last write to the
     * function's entry (the one before it is the copy-on-write touch made while the target runs).
     */
    private static int findJumpStep() throws IOException {
        long entry = built.patch().replaced().getFirst().targetAddress(); // non-PIE: the runtime address
        Path log = dir.resolve("steps.log");
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            var r = suture(Map.of("SUTURE_FAULT_LOG", log.toString()), "apply", "-p", pid(t),
                    built.patchFile().toString());
            assertEquals(0, r.status(), r.toString());
        }
        var steps = Files.readAllLines(log);
        int found = 0;
        for (String step : steps) {
            var words = step.split(" ");
            if (Long.parseUnsignedLong(words[words.length - 1].substring(2), 16) == entry) {
                found = Integer.parseInt(words[0]);
            }
        }
        assertTrue(found > 0, "no write to 0x" + Long.toHexString(entry) + " in " + steps);
        return found;
    }

    @Test
    void aWindowPastItsBudgetIsUndoneAndRetried() throws Exception {
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            var r = suture(stall(jumpStep, 300), "apply", "-p", pid(t), built.patchFile().toString(), "--json");
            assertEquals(0, r.status(), r.toString());
            var result = json(r).get("results").get(0);
            assertEquals("applied", result.get("outcome").asText(), r.toString());
            // at least the stalled one (a loaded machine may starve another past the budget)
            assertTrue(result.get("abandoned").asInt() >= 1, r.toString());
            assertTrue(result.get("attempts").asInt() > result.get("abandoned").asInt(), r.toString());
            assertTrue(result.get("longestPauseMicros").asDouble() >= 300_000, r.toString());
            assertTrue(result.get("pauseMicros").asDouble() < 50_000, r.toString());
            assertPatched(t);
        }
    }

    @Test
    void aWindowThatCannotKeepItsBudgetWithinTheTimeoutFailsAndChangesNothing() throws Exception {
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            byte[] original = Fixture.text(t.pidInt(), built.exe());
            var r = suture(stall(jumpStep, 600), "apply", "-p", pid(t), built.patchFile().toString(),
                    "--timeout", "200");
            assertEquals(4, r.status(), r.toString());
            assertTrue(r.err().contains("--max-pause budget of 50 ms"), r.toString());
            assertTrue(r.err().contains("nothing was changed"), r.toString());
            assertArrayEquals(original, Fixture.text(t.pidInt(), built.exe()), "the jump was undone");
            assertEquals(List.of(), Patcher.applied(t.pidInt()), "the region was unmapped");
            assertFalse(Files.exists(runDir.resolve(t.pid() + ".journal")), "the journal was ended");
            assertRuns(t, ORIGINAL_LINE);
        }
    }

    @Test
    void aLongerMaxPauseKeepsASlowWindow() throws Exception {
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            var r = suture(stall(jumpStep, 150), "apply", "-p", pid(t), built.patchFile().toString(), "--json",
                    "--max-pause", "2000");
            assertEquals(0, r.status(), r.toString());
            var result = json(r).get("results").get(0);
            assertEquals(0, result.get("abandoned").asInt(), r.toString());
            assertTrue(result.get("pauseMicros").asDouble() >= 150_000, r.toString());
            assertPatched(t);
        }
    }

    /** suture sends itself SIGTSTP in the middle of the window (the hook), as a Ctrl-Z from its terminal would. */
    @Test
    void aCtrlZInsideTheWindowDoesNotStopSuture() throws Exception {
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            var r = suture(Map.of("SUTURE_FAULT_STOP_AT", Integer.toString(jumpStep)), "apply", "-p", pid(t),
                    built.patchFile().toString(), "--json");
            assertEquals(0, r.status(), r.toString());
            var result = json(r).get("results").get(0);
            assertTrue(result.get("pauseMicros").asDouble() < 50_000, r.toString());
            assertPatched(t);
        }
    }

    /**
     * The attack: SIGTSTP, SIGTTIN and SIGTTOU sent to suture from outside while it holds every thread of the
     * target (a window kept open by the stall hook). suture must go on, abandon the window past its budget, and
     * apply in the next one.
     */
    @Test
    void stopSignalsSentToSutureWhileItHoldsTheTargetAreIgnored() throws Exception {
        try (var t = Target.start(built.exe());
             var suture = SutureProcess.start(dir, env(stall(jumpStep, 1000)), "apply", "-p", pid(t),
                     built.patchFile().toString(), "--json")) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            awaitAllHeld(t, suture);
            for (int sig : new int[] {SIGTSTP, SIGTTIN, SIGTTOU}) {
                Syscalls.kill((int) suture.pid(), sig);
            }
            Fixture.sleep(100);
            assertTrue(Procs.threadStates(t.pid()).values().stream().allMatch(s -> s == 't'),
                    "the window is still open: " + Procs.threadStates(t.pid()));
            char state = processState(suture.pid());
            assertTrue(state != 'T' && state != 't', "suture was stopped (state " + state + ")");
            var r = suture.await(RUN);
            assertEquals(0, r.status(), r.toString());
            var result = json(r).get("results").get(0);
            assertTrue(result.get("abandoned").asInt() >= 1, r.toString());
            assertPatched(t);
        }
    }

    @Test
    void revertAndRecoverTakeTheBudgetAndItMustBePositive() throws Exception {
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            var bad = Cli.run("apply", "-p", pid(t), built.patchFile().toString(), "--max-pause", "0");
            assertEquals(2, bad.code(), bad.err());
            assertTrue(bad.err().contains("--max-pause"), bad.err());
            var r = suture(Map.of(), "apply", "-p", pid(t), built.patchFile().toString(), "--max-pause", "200");
            assertEquals(0, r.status(), r.toString());
            assertRuns(t, PATCHED_LINE);
            var revert = suture(Map.of(), "revert", "-p", pid(t), "--all", "--max-pause", "200", "--json");
            assertEquals(0, revert.status(), revert.toString());
            assertEquals(0, json(revert).get("reverted").get(0).get("abandoned").asInt(), revert.toString());
            assertRuns(t, ORIGINAL_LINE);
            var recover = Cli.run("recover", "-p", pid(t), "--max-pause", "200");
            assertEquals(0, recover.code(), recover.err());
            for (String command : List.of("apply", "revert", "recover")) {
                var help = Cli.run(command, "--help");
                assertTrue(help.out().contains("--max-pause"), command + ": " + help.out());
            }
        }
    }

    private static Map<String, String> stall(int step, long millis) {
        return Map.of("SUTURE_FAULT_STALL_AT", Integer.toString(step), "SUTURE_FAULT_STALL_MS", Long.toString(millis));
    }

    private static Map<String, String> env(Map<String, String> extra) {
        var env = new HashMap<>(extra);
        env.put("SUTURE_RUN_DIR", runDir.toString());
        return env;
    }

    private static SutureProcess.Result suture(Map<String, String> extra, String... args) throws IOException {
        return SutureProcess.run(dir, RUN, env(extra), args);
    }

    private static JsonNode json(SutureProcess.Result r) throws IOException {
        return new ObjectMapper().readTree(r.out());
    }

    private static String pid(Target t) {
        return Long.toString(t.pid());
    }

    /** Waits (bounded) until every thread of the target is in a tracing stop: suture's window holds them. */
    private static void awaitAllHeld(Target t, SutureProcess suture) throws IOException {
        long deadline = System.nanoTime() + RUN.toNanos();
        while (true) {
            var states = Procs.threadStates(t.pid());
            if (states.size() == 3 && states.values().stream().allMatch(s -> s == 't')) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the target's threads were never all held: " + states + "; suture: "
                        + suture.await(Duration.ofSeconds(1)));
            }
            Fixture.sleep(1);
        }
    }

    /** The state letter of process {@code pid} (/proc/PID/stat, the field after the command's parenthesis). */
    private static char processState(long pid) throws IOException {
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        return stat.charAt(stat.lastIndexOf(')') + 2);
    }

    private static void assertPatched(Target t) throws IOException {
        assertRuns(t, PATCHED_LINE);
        var applied = Patcher.applied(t.pidInt());
        assertEquals(1, applied.size(), applied.toString());
        assertEquals("applied", applied.getFirst().state());
        Patcher.revert(t.pidInt(), List.of(), true, Duration.ofSeconds(5));
        assertRuns(t, ORIGINAL_LINE);
    }

    /** The next lines it prints (after one that may have been half-printed before a change) are all {@code line}. */
    private static void assertRuns(Target t, String line) throws IOException {
        int skip = t.lines().size();
        Fixture.await(t, skip, "tick", 4);
        var fresh = Fixture.linesWith(t, skip, "tick").stream().skip(1).limit(3).toList();
        assertEquals(List.of(line, line, line), fresh, "target output");
    }
}
