package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import dev.suture.testing.SutureProcess;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Functions that are never idle when sampled (issue 16, part 3): a thread that loops calling a function that
 * sleeps a second inside itself is inside it at every window. apply lets it run to the return of its outermost
 * frame in the replaced code, holds it there and patches right then: within its first return. Also two threads
 * each blocked in it, a frame that never returns (exit 4 naming it, the program unharmed), a frame left by
 * longjmp, recursion, and revert of a thread inside the new code.
 */
class BusyFunctionTest {
    static final String PROG_C = """
            #define _GNU_SOURCE
            #include <pthread.h>
            #include <setjmp.h>
            #include <stdlib.h>
            #include <stdio.h>
            #include <string.h>
            #include <time.h>
            #include <unistd.h>
            static void nap(long ms) {
                struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
                while (nanosleep(&t, &t)) { }
            }
            static long period = 1000;
            /* prints, then sleeps a second (or the period asked for) inside itself */
            __attribute__((noinline)) void work(const char *who, int n) {
                printf("%s work %d\\n", who, n); fflush(stdout);
                nap(period);
            }
            /* never returns */
            __attribute__((noinline)) void forever(void) {
                for (int n = 0;; n++) { printf("forever %d\\n", n); fflush(stdout); nap(300); }
            }
            static jmp_buf out;
            /* leaves by longjmp, never by its return */
            __attribute__((noinline)) void leap(int n) {
                printf("leap %d\\n", n); fflush(stdout);
                nap(300);
                longjmp(out, 1);
            }
            /* recursion: the deepest call sleeps */
            __attribute__((noinline)) int deep(int d, int n) {
                if (d == 0) { printf("deep %d\\n", n); fflush(stdout); nap(1000); return 0; }
                int r = deep(d - 1, n);
                if (r < 0) printf("never\\n");
                return r + 1;
            }
            static void *worker(void *arg) { for (int n = 0;; n++) work((const char *) arg, n); return 0; }
            int main(int argc, char **argv) {
                alarm(120);
                const char *mode = argc > 1 ? argv[1] : "one";
                if (argc > 2) period = atol(argv[2]);
                if (!strcmp(mode, "one")) for (int n = 0;; n++) work("main", n);
                if (!strcmp(mode, "two")) {
                    pthread_t a, b;
                    pthread_create(&a, 0, worker, "a");
                    pthread_create(&b, 0, worker, "b");
                    for (;;) pause();
                }
                if (!strcmp(mode, "forever")) forever();
                if (!strcmp(mode, "leap")) for (int n = 0;; n++) { if (!setjmp(out)) leap(n); nap(700); }
                if (!strcmp(mode, "deep")) for (int n = 0;; n++) deep(3, n);
                return 1;
            }
            """;

    static final String MAKEFILE = "prog: prog.c\n\tgcc -O2 -g -o prog prog.c -pthread\n";

    /** The fix: every function says who it is in capitals. */
    static final String FIXED_C = PROG_C.replace("%s work %d", "%s WORK %d").replace("forever %d", "FOREVER %d")
            .replace("leap %d", "LEAP %d").replace("deep %d", "DEEP %d");

    @TempDir
    static Path dir;
    static Path exe;
    static Path patch;

    @BeforeAll
    static void build() throws Exception {
        var project = Fixture.project(dir, "busy", Map.of("prog.c", PROG_C, "Makefile", MAKEFILE),
                Map.of("prog.c", FIXED_C));
        patch = project.built("prog", dir.resolve("out"));
        exe = project.deployed().resolve("prog");
    }

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void aFunctionThatSleepsInsideItselfIsPatchedAtItsFirstReturnAndRevertedAtTheNext() throws Exception {
        try (var t = Target.start(exe, "one")) {
            t.awaitLine(l -> l.equals("main work 1"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            int mark = t.lines().size();
            var apply = Cli.run("apply", "-p", pid, "--timeout", "10s", patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            assertTrue(apply.out().contains("after waiting"), apply.out());
            patchedWithinOneReturn(t, mark, "main work", "main WORK");
            int before = t.lines().size();
            var revert = Cli.run("revert", "-p", pid, "--all", "--timeout", "10s");
            assertEquals(0, revert.code(), revert.out() + revert.err());
            patchedWithinOneReturn(t, before, "main WORK", "main work");
            untraced(t);
        }
    }

    @Test
    void twoThreadsEachBlockedInItAreBothHeldAtTheirReturns() throws Exception {
        try (var t = Target.start(exe, "two")) {
            t.awaitLine(l -> l.equals("a work 1"), Duration.ofSeconds(15));
            t.awaitLine(l -> l.equals("b work 1"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            int mark = t.lines().size();
            var apply = Cli.run("apply", "-p", pid, "--timeout", "15s", patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            patchedWithinOneReturn(t, mark, "a work", "a WORK");
            patchedWithinOneReturn(t, mark, "b work", "b WORK");
            untraced(t);
        }
    }

    @Test
    void aFrameThatNeverReturnsFailsWithExit4NamingItAndTheProgramRunsOn() throws Exception {
        try (var t = Target.start(exe, "forever")) {
            t.awaitLine(l -> l.equals("forever 1"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            var apply = Cli.run("apply", "-p", pid, "--timeout", "3s", patch.toString());
            assertEquals(4, apply.code(), apply.out() + apply.err());
            assertTrue(apply.err().contains("forever") && apply.err().contains("never returned there"),
                    apply.err());
            untraced(t);
            assertEquals(List.of(), Patcher.applied(t.pidInt()), "nothing applied");
            int mark = t.lines().size();
            t.awaitLine(l -> l.startsWith("forever "), Duration.ofSeconds(15), mark);
            assertTrue(t.lines().stream().noneMatch(l -> l.startsWith("FOREVER")), t.output());
        }
    }

    @Test
    void aFrameLeftByLongjmpIsFoundGoneByALaterWindow() throws Exception {
        try (var t = Target.start(exe, "leap")) {
            t.awaitLine(l -> l.equals("leap 1"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            int mark = t.lines().size();
            var apply = Cli.run("apply", "-p", pid, "--timeout", "20s", patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            t.awaitLine(l -> l.startsWith("LEAP "), Duration.ofSeconds(15), mark);
            // the return address waited at is never reached: nothing was left armed to trap the program
            int after = t.lines().size();
            t.awaitLine(l -> l.startsWith("LEAP "), Duration.ofSeconds(15), after + 1);
            untraced(t);
        }
    }

    @Test
    void aRecursiveFunctionIsWaitedForAtTheReturnOfItsOutermostCall() throws Exception {
        try (var t = Target.start(exe, "deep")) {
            t.awaitLine(l -> l.equals("deep 1"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            int mark = t.lines().size();
            var apply = Cli.run("apply", "-p", pid, "--timeout", "10s", patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            patchedWithinOneReturn(t, mark, "deep", "DEEP");
            untraced(t);
        }
    }

    /**
     * Principle 3 for the wait (the FaultInjectionTest walk, over the steps that are new here): suture kills itself
     * at every step from its first breakpoint to two steps past the last one's close — armed, the thread parked at
     * its return, the window with it parked, the disarm. Each time the program lives on untraced, keeps running
     * through the return address (a breakpoint left armed would kill it with SIGTRAP there), and after
     * {@code recover} runs exactly the original or the fix, with its text byte for byte one of the two.
     */
    @Test
    void aKillAtEveryStepOfTheWaitLeavesTheProgramAliveAndConsistentAfterRecover() throws Exception {
        Path runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString());
        try (var t = Target.start(exe, "one", "300")) {
            t.awaitLine(l -> l.equals("main work 1"), Duration.ofSeconds(15));
            int pid = t.pidInt();
            byte[] original = Fixture.text(pid, exe);
            Path log = dir.resolve("wait-steps.log");
            var counted = SutureProcess.run(dir, RUN, Map.of("SUTURE_RUN_DIR", runDir.toString(),
                    "SUTURE_FAULT_LOG", log.toString()), "apply", "-p", Integer.toString(pid), patch.toString());
            assertEquals(0, counted.status(), counted.toString());
            byte[] patched = Fixture.text(pid, exe);
            Patcher.revert(pid, List.of(), true, Duration.ofSeconds(10));
            var steps = Files.readAllLines(log);
            int first = -1;
            int last = -1;
            for (int i = 0; i < steps.size(); i++) {
                if (steps.get(i).contains(" perf_event_open ") && first < 0) {
                    first = i + 1;
                }
                if (steps.get(i).contains(" close perf_event ")) {
                    last = Math.min(steps.size(), i + 3);
                }
            }
            assertTrue(first > 0 && last > first, "the wait's steps: " + first + "-" + last + " of " + steps);
            var outcomes = new ArrayList<String>();
            for (int k = first; k <= last; k++) {
                String what = "killed at step " + k + " (" + steps.get(k - 1) + ")";
                var r = SutureProcess.run(dir, RUN, Map.of("SUTURE_RUN_DIR", runDir.toString(),
                        "SUTURE_FAULT_KILL_AT", Integer.toString(k)), "apply", "-p", Integer.toString(pid),
                        patch.toString());
                assertTrue(r.killed() || r.status() == 0, what + ": " + r);
                assertTrue(t.alive(), what + ": the program died");
                var recovered = Patcher.recover(pid, Duration.ofSeconds(10));
                untraced(t);
                assertTrue(Procs.threadStates(pid).values().stream().noneMatch(c -> c == 't' || c == 'T'),
                        what + ": a thread is stopped");
                assertFalse(Files.exists(runDir.resolve(pid + ".journal")), what + ": the journal is left");
                byte[] text = Fixture.text(pid, exe);
                boolean isPatched = Arrays.equals(text, patched);
                assertTrue(isPatched || Arrays.equals(text, original), what + ": the text is neither");
                // two more calls, each through the return address waited at
                int mark = t.lines().size();
                String now = isPatched ? "main WORK " : "main work ";
                t.awaitLine(l -> l.startsWith(now), Duration.ofSeconds(15), mark + 1);
                t.awaitLine(l -> l.startsWith(now), Duration.ofSeconds(15), t.lines().size());
                assertTrue(t.alive(), what + ": the program died past its return address");
                if (isPatched) {
                    Patcher.revert(pid, List.of(), true, Duration.ofSeconds(10));
                }
                outcomes.add(k + ": " + (isPatched ? "patched" : "original") + " " + recovered.outcome()
                        + (r.killed() ? "" : " (not killed)"));
            }
            System.out.println("wait at a return, kill points: " + outcomes);
        } finally {
            System.clearProperty("suture.runDir");
        }
    }

    static final Duration RUN = Duration.ofSeconds(60);

    /**
     * After {@code mark}, at most one line starts with {@code old} (the call the thread was in when the command
     * began), and a line starting with {@code now} follows it: the change came at the first return.
     */
    private static void patchedWithinOneReturn(Target t, int mark, String old, String now) throws IOException {
        t.awaitLine(l -> l.startsWith(now + " "), Duration.ofSeconds(15), mark);
        var after = t.lines().subList(mark, t.lines().size());
        long stale = after.stream().filter(l -> l.startsWith(old + " ")).count();
        assertTrue(stale <= 1, "more than one call of the old code after the command began: " + after);
        int firstNew = after.stream().filter(l -> l.startsWith(now + " ")).findFirst().map(after::indexOf)
                .orElseThrow();
        assertTrue(after.subList(firstNew, after.size()).stream().noneMatch(l -> l.startsWith(old + " ")),
                "the old code ran after the new: " + after);
    }

    private static void untraced(Target t) {
        assertTrue(t.alive(), "the program died");
        for (int tid : Procs.tids(t.pid())) {
            assertEquals(0, Procs.tracerOf(t.pid(), tid), "thread " + tid + " still traced");
        }
    }
}
