package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Commands;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * C++ exceptions thrown from, and through, a patch's new code: the region's {@code .eh_frame} is registered with
 * the program's libgcc before the jumps go in and taken back after they come out (FrameRegistration), so the
 * program's own unwinder finds the new frames and the exception is caught in {@code main}, as before the patch.
 */
class CxxExceptionTest {
    @TempDir
    Path dir;

    static final String PROG = """
            #include <cstdio>
            #include <stdexcept>
            #include <string>
            #include <unistd.h>
            __attribute__((noipa)) void toss(int n) {
                usleep(20000);
                throw std::runtime_error("old " + std::to_string(n));
            }
            __attribute__((noipa)) void deep(int n) { throw std::runtime_error("deep " + std::to_string(n)); }
            __attribute__((noipa)) int middle(int n) { if (n < 0) puts("negative"); return n + 1; }
            __attribute__((noipa)) int guarded(int n) { if (n < 0) puts("negative"); return n + 1; }
            int main() {
                alarm(120);
                for (int i = 0;; i++) {
                    try { toss(i); } catch (const std::exception &e) { printf("caught %s\\n", e.what()); }
                    try { printf("middle %d\\n", middle(i)); } catch (const std::exception &e) {
                        printf("through %s\\n", e.what());
                    }
                    printf("guarded %d\\n", guarded(i));
                    fflush(stdout);
                }
            }
            """;

    /** The fix: toss throws another message; middle calls an old function that throws, through the new code. */
    static final String FIXED = PROG.replace("\"old \"", "\"new \"")
            .replace("int middle(int n) { if (n < 0) puts(\"negative\"); return n + 1; }",
                    "int middle(int n) { if (n < 0) puts(\"negative\"); deep(n); return n + 2; }")
            .replace("int guarded(int n) { if (n < 0) puts(\"negative\"); return n + 1; }", "int guarded(int n) {"
                    + " try { deep(n); } catch (const std::exception &e) { printf(\"inner %s\\n\", e.what()); }"
                    + " return n + 2; }");

    /** A second fix, stacked on the first: toss again. */
    static final String NEWER = FIXED.replace("\"new \"", "\"newer \"");

    static final String MAKEFILE = "prog: prog.cpp\n\tg++ -O2 -o prog prog.cpp\n";

    private Fixture.Project project(String name) throws Exception {
        return Fixture.project(dir, name, Map.of("prog.cpp", PROG, "Makefile", MAKEFILE), Map.of("prog.cpp", FIXED));
    }

    /** Waits for a line after the first {@code mark} that starts with {@code prefix}, then for two more. */
    private static void printsRepeatedly(Target t, int mark, String prefix) throws Exception {
        int at = mark;
        for (int i = 0; i < 3; i++) {
            t.awaitLine(l -> l.startsWith(prefix), Fixture.WAIT, at);
            at = t.lines().size();
        }
        assertTrue(t.alive(), "the program died:\n" + t.output());
    }

    @Test
    void anExceptionFromAndThroughNewCodeIsCaughtWhereTheProgramCatchesIt() throws Exception {
        var project = project("toss");
        Path patch = project.built("prog", dir.resolve("out"));
        try (var t = Target.start(project.deployed().resolve("prog"))) {
            t.awaitLine(l -> l.startsWith("caught old 3"), Fixture.WAIT);
            String pid = Long.toString(t.pid());
            var dry = Cli.run("apply", "-p", pid, "--dry-run", patch.toString());
            assertEquals(0, dry.code(), dry.out() + dry.err());
            assertTrue(dry.out().contains("register the new code's unwind information with libgcc_s.so.1"),
                    dry.out());
            var apply = Cli.run("apply", "-p", pid, patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            int mark = t.lines().size();
            printsRepeatedly(t, mark, "caught new ");
            printsRepeatedly(t, mark, "through deep ");
            printsRepeatedly(t, mark, "inner deep "); // caught inside the new code

            var revert = Cli.run("revert", "-p", pid, "--all");
            assertEquals(0, revert.code(), revert.out() + revert.err());
            mark = t.lines().size();
            printsRepeatedly(t, mark, "caught old ");
            printsRepeatedly(t, mark, "middle ");
            assertFalse(t.output().contains("terminate called"), t.output());
            assertTrue(Files.readString(Path.of("/proc/" + pid + "/status")).contains("TracerPid:\t0"));
        }
    }

    /** Two regions on one function, each registering its own frames; revert --all takes both back. */
    @Test
    void stackedPatchesEachRegisterTheirFramesAndRevertAllTakesThemBack() throws Exception {
        var project = project("stack");
        Path first = project.built("prog", dir.resolve("out1"));
        Path newerDiff = dir.resolve("newer.diff");
        Path fixed = Files.createDirectories(dir.resolve("newer"));
        Files.writeString(fixed.resolve("prog.cpp"), NEWER);
        var d = Commands.run(project.src(), Duration.ofSeconds(30), "diff", "-u", "--label", "prog.cpp", "--label",
                "prog.cpp", project.src().resolve("prog.cpp").toString(), fixed.resolve("prog.cpp").toString());
        Files.writeString(newerDiff, d.output());
        Path second = new Fixture.Project(project.src(), project.deployed(), newerDiff).built("prog",
                dir.resolve("out2"));
        try (var t = Target.start(project.deployed().resolve("prog"))) {
            t.awaitLine(l -> l.startsWith("caught old 3"), Fixture.WAIT);
            String pid = Long.toString(t.pid());
            var apply = Cli.run("apply", "-p", pid, first.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            printsRepeatedly(t, t.lines().size(), "caught new ");
            var stacked = Cli.run("apply", "-p", pid, second.toString());
            assertEquals(0, stacked.code(), stacked.out() + stacked.err());
            int mark = t.lines().size();
            printsRepeatedly(t, mark, "caught newer ");
            printsRepeatedly(t, mark, "through deep ");
            var revert = Cli.run("revert", "-p", pid, "--all");
            assertEquals(0, revert.code(), revert.out() + revert.err());
            mark = t.lines().size();
            printsRepeatedly(t, mark, "caught old ");
            printsRepeatedly(t, mark, "middle ");
            assertTrue(Regions.scan(t.pidInt(), dev.suture.proc.Maps.read(t.pidInt()),
                    dev.suture.proc.RemoteMemory.open(t.pidInt())).isEmpty(), "a region is left");
        }
    }

    /**
     * Principle 3 with the registration in the transactions: suture kills itself before every step of an apply
     * and of a revert of the patch (the registration call and the deregistration call among them); each time,
     * after {@code recover}, the program runs untraced, catches every exception (the fix's or the original's, by
     * what its code now is), no journal is left, and a revert leaves no region.
     */
    @Test
    void aKillAtEveryStepOfApplyAndRevertLeavesTheProgramCatchingAfterRecover() throws Exception {
        var project = project("kill");
        Path exe = project.deployed().resolve("prog");
        Path patch = project.built("prog", dir.resolve("out"));
        Path runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString());
        Target t = null;
        try {
            t = startCatching(exe);
            String p = Integer.toString(t.pidInt());
            int applySteps = countSteps(runDir, "apply", "-p", p, patch.toString());
            int revertSteps = countSteps(runDir, "revert", "-p", p, "--all");
            var outcomes = new ArrayList<String>();
            int used = 0;
            for (int revert = 0; revert <= 1; revert++) {
                for (int k = 1; k <= (revert == 1 ? revertSteps : applySteps); k++) {
                    if (used++ == STEPS_PER_TARGET) {
                        // a target lives 120 s (its alarm): the walk goes on with a fresh one
                        t = replace(t, exe);
                        used = 1;
                    }
                    int pid = t.pidInt();
                    String pidText = Integer.toString(pid);
                    if (revert == 1) {
                        Patcher.apply(pid, dev.suture.patch.PatchFile.read(patch), Patcher.ApplyOptions.defaults());
                    }
                    String[] args = revert == 1 ? new String[] {"revert", "-p", pidText, "--all"}
                            : new String[] {"apply", "-p", pidText, patch.toString()};
                    String what = args[0] + " killed at step " + k;
                    var recovered = Fixture.killAndRecover(dir, runDir, t, k, what, args);
                    boolean patched = !Patcher.applied(pid).isEmpty();
                    int mark = t.lines().size();
                    printsRepeatedly(t, mark, patched ? "caught new " : "caught old ");
                    printsRepeatedly(t, mark, patched ? "through deep " : "middle ");
                    if (patched) {
                        Patcher.revert(pid, List.of(), true, Duration.ofSeconds(5));
                        printsRepeatedly(t, t.lines().size(), "caught old ");
                    }
                    assertTrue(Patcher.applied(pid).isEmpty(), what + ": a region is left");
                    outcomes.add(args[0] + " " + k + ": " + (patched ? "patched" : "original") + " "
                            + recovered.outcome());
                }
            }
            System.out.println("C++ frame registration kill points: " + outcomes);
            assertFalse(t.output().contains("terminate called"), t.output());
        } finally {
            System.clearProperty("suture.runDir");
            if (t != null) {
                t.close();
            }
        }
    }

    /** Kill steps walked on one target: about a second each, well inside its 120 s alarm on a loaded machine. */
    private static final int STEPS_PER_TARGET = 30;

    private static Target startCatching(Path exe) throws Exception {
        var t = Target.start(exe);
        try {
            t.awaitLine(l -> l.startsWith("caught old 3"), Fixture.WAIT);
            return t;
        } catch (Exception | AssertionError e) {
            t.close();
            throw e;
        }
    }

    /** Closes {@code old} once its output shows no terminate, and starts a fresh target. */
    private static Target replace(Target old, Path exe) throws Exception {
        try {
            assertFalse(old.output().contains("terminate called"), old.output());
        } finally {
            old.close();
        }
        return startCatching(exe);
    }

    /** Runs the command with the step log on; it must succeed; returns its step count. */
    private int countSteps(Path runDir, String... args) throws Exception {
        Path log = dir.resolve("steps-" + args[0] + ".log");
        var r = SutureProcess.run(dir, Duration.ofSeconds(60), Map.of("SUTURE_RUN_DIR", runDir.toString(),
                "SUTURE_FAULT_LOG", log.toString()), args);
        assertEquals(0, r.status(), r.toString());
        var steps = Files.readAllLines(log);
        System.out.println(args[0] + ": " + steps.size() + " steps");
        return steps.size();
    }

    static final String SPIN = """
            #include <cstdio>
            #include <stdexcept>
            #include <string>
            #include <unistd.h>
            __attribute__((noipa)) void spin(long n) { throw std::runtime_error("old " + std::to_string(n)); }
            int main() {
                alarm(120);
                for (long i = 0;; i++) {
                    try { spin(i); } catch (const std::exception &e) {
                        if (i % 20000 == 0) { printf("spun %s\\n", e.what()); fflush(stdout); }
                    }
                }
            }
            """;

    /**
     * A thread that throws all the time is inside libgcc's unwinder, holding its object lock, a good part of the
     * time once a region is registered: the calls are not made on it there (it would wait for itself), but where
     * it holds no lock, so the deregistration of a revert, and a second registration, go through.
     */
    @Test
    void aThreadThatThrowsAllTheTimeIsNotBorrowedInsideTheUnwinder() throws Exception {
        var project = Fixture.project(dir, "spin", Map.of("prog.cpp", SPIN, "Makefile", MAKEFILE),
                Map.of("prog.cpp", SPIN.replace("\"old \"", "\"new \"")));
        Path patch = project.built("prog", dir.resolve("out"));
        try (var t = Target.start(project.deployed().resolve("prog"))) {
            t.awaitLine(l -> l.startsWith("spun old "), Fixture.WAIT);
            String pid = Long.toString(t.pid());
            for (int round = 0; round < 3; round++) {
                var apply = Cli.run("apply", "-p", pid, patch.toString());
                assertEquals(0, apply.code(), apply.out() + apply.err());
                printsRepeatedly(t, t.lines().size(), "spun new ");
                var revert = Cli.run("revert", "-p", pid, "--all");
                assertEquals(0, revert.code(), revert.out() + revert.err());
                printsRepeatedly(t, t.lines().size(), "spun old ");
            }
            assertFalse(t.output().contains("terminate called") || t.output().contains("futex"), t.output());
        }
    }
}
