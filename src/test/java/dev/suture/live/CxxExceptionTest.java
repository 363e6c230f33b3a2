package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Commands;
import dev.suture.testing.Procs;
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
            int main() {
                alarm(120);
                for (int i = 0;; i++) {
                    try { toss(i); } catch (const std::exception &e) { printf("caught %s\\n", e.what()); }
                    try { printf("middle %d\\n", middle(i)); } catch (const std::exception &e) {
                        printf("through %s\\n", e.what());
                    }
                    fflush(stdout);
                }
            }
            """;

    /** The fix: toss throws another message; middle calls an old function that throws, through the new code. */
    static final String FIXED = PROG.replace("\"old \"", "\"new \"")
            .replace("return n + 1; }", "deep(n); return n + 2; }");

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
}
