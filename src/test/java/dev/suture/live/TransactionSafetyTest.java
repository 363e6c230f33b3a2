package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The transaction's safety and bookkeeping on a real program: a function that is always on a thread's stack is
 * never patched, one busy for a moment is patched once it is left, a revert waits for the new code to be off every
 * stack, a patch for another build writes nothing, patches stack and revert in order, --replace swaps them, an
 * applied patch applied again is a no-op, and --all patches every matching process and no other.
 */
class TransactionSafetyTest {
    /** held() never returns; moment() is on a stack for 1.5 s after "in moment"; value() is called every 20 ms. */
    static final String PROGRAM = """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            static void nap(long ms) {
                struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&t, 0);
            }

            int held(volatile int *stop) {
                while (!*stop)
                    nap(5);
                return 1;
            }

            int moment(void) {
                puts("in moment");
                nap(1500);
                return 1;
            }

            int later(volatile int *stop) {
                return 1;
            }

            int value(void) {
                return 1;
            }

            static volatile int never;

            static void *holder(void *arg) {
                held(&never);
                return arg;
            }

            static void *momentary(void *arg) {
                printf("moment %d\\n", moment());
                return arg;
            }

            int main(int argc, char **argv) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                pthread_t a, b;
                pthread_create(&a, 0, holder, 0);
                if (argc > 1)
                    pthread_create(&b, 0, momentary, 0);
                for (;;) {
                    printf("value %d later %d\\n", value(), later(&never));
                    nap(20);
                }
            }
            """;

    @TempDir
    static Path dir;
    static Path exe;
    static Path otherExe;
    static Path heldPatch;
    static Path momentPatch;
    static Path laterPatch;
    static Path value2;
    static Path value3;

    @BeforeAll
    static void build() throws IOException {
        Path orig = Fixture.object(dir, "orig", "prog", PROGRAM, "-fno-pie");
        exe = Fixture.link(dir, "prog", List.of(orig), "-no-pie");
        Path other = Fixture.object(dir, "other", "prog", PROGRAM.replace("value %d later", "value %d  later"),
                "-fno-pie");
        otherExe = Fixture.link(dir, "otherprog", List.of(other), "-no-pie");
        heldPatch = variant(orig, "held", PROGRAM.replace("    return 1;\n}\n\nint moment", "    return 2;\n}\n\nint moment"));
        momentPatch = variant(orig, "moment", PROGRAM.replace("nap(1500);\n    return 1;", "nap(1500);\n    return 2;"));
        laterPatch = variant(orig, "later", PROGRAM.replace("""
                int later(volatile int *stop) {
                    return 1;
                """, """
                int later(volatile int *stop) {
                    puts("new later");
                    while (!*stop)
                        nap(5);
                    return 2;
                """));
        value2 = variant(orig, "value2", PROGRAM.replace("int value(void) {\n    return 1;",
                "int value(void) {\n    return 2;"));
        value3 = variant(orig, "value3", PROGRAM.replace("int value(void) {\n    return 1;",
                "int value(void) {\n    return 3;"));
    }

    private static Path variant(Path orig, String name, String source) throws IOException {
        if (source.equals(PROGRAM)) {
            throw new AssertionError("variant " + name + " changes nothing");
        }
        Path obj = Fixture.object(dir, name, "prog", source, "-fno-pie");
        Path out = dir.resolve(name + ".suture");
        Fixture.diff(exe, List.of(orig), List.of(obj), name, out);
        return out;
    }

    private static String pid(Target t) {
        return Long.toString(t.pid());
    }

    @Test
    void functionAlwaysOnAStackIsNeverPatched() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 2);
            byte[] before = Fixture.text(t.pidInt(), exe);
            var r = Cli.run("apply", "-p", pid(t), "--timeout", "300", heldPatch.toString());
            assertEquals(4, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("held") && r.err().contains("thread") && r.err().contains("frame #"),
                    r.err());
            assertTrue(r.err().contains("gave up after 300 ms"), r.err());
            assertArrayEquals(before, Fixture.text(t.pidInt(), exe), "text changed by a failed apply");
            assertTrue(Patcher.applied(t.pidInt()).isEmpty(), "a failed apply left a region");
            int mark = t.lines().size();
            Fixture.await(t, mark, "value 1 later 1", 3);
            assertTrue(t.alive());
        }
    }

    @Test
    void functionBusyForAMomentIsPatchedAfterRetrying() throws Exception {
        try (var t = Target.start(exe, "moment")) {
            Fixture.await(t, 0, "in moment", 1);
            var r = Patcher.apply(t.pidInt(), dev.suture.patch.PatchFile.read(momentPatch),
                    new Patcher.ApplyOptions(Duration.ofSeconds(5), false, false));
            assertEquals(Patcher.Outcome.APPLIED, r.outcome());
            assertTrue(r.attempts() > 1, "moment() was on a stack, yet the first window patched it");
            // the call in progress finishes in the old code, as it must
            Fixture.await(t, 0, "moment 1", 1);
            assertEquals(List.of(), Fixture.linesWith(t, 0, "moment 2"));
        }
    }

    @Test
    void revertWaitsForTheNewCodeToLeaveEveryStack() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 1);
            var applied = Cli.run("apply", "-p", pid(t), laterPatch.toString());
            assertEquals(0, applied.code(), applied.out() + applied.err());
            Fixture.await(t, 0, "new later", 1);
            var r = Cli.run("revert", "-p", pid(t), "--timeout", "300", "later");
            assertEquals(4, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("thread") && r.err().contains("patch later"), r.err());
            assertEquals(1, Patcher.applied(t.pidInt()).size(), "the patch is still applied");
            assertTrue(t.alive());
        }
    }

    @Test
    void patchForAnotherBuildWritesNothing() throws Exception {
        try (var t = Target.start(otherExe)) {
            Fixture.await(t, 0, "value 1", 1);
            byte[] before = Fixture.text(t.pidInt(), otherExe);
            var r = Cli.run("apply", "-p", pid(t), value2.toString());
            assertEquals(3, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("build-id"), r.err());
            assertArrayEquals(before, Fixture.text(t.pidInt(), otherExe));
            assertTrue(Patcher.applied(t.pidInt()).isEmpty());
            int mark = t.lines().size();
            Fixture.await(t, mark, "value 1 ", 2);
        }
    }

    @Test
    void stackedPatchesRevertNewestFirst() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 1);
            byte[] before = Fixture.text(t.pidInt(), exe);
            assertEquals(0, Cli.run("apply", "-p", pid(t), value2.toString()).code());
            int mark = t.lines().size();
            Fixture.await(t, mark, "value 2 ", 2);
            var again = Cli.run("apply", "-p", pid(t), value2.toString());
            assertEquals(0, again.code(), again.out() + again.err());
            assertTrue(again.out().contains("already applied"), again.out());
            assertEquals(0, Cli.run("apply", "-p", pid(t), value3.toString()).code());
            mark = t.lines().size();
            Fixture.await(t, mark, "value 3 ", 2);

            var outOfOrder = Cli.run("revert", "-p", pid(t), "value2");
            assertEquals(2, outOfOrder.code(), outOfOrder.out() + outOfOrder.err());
            assertTrue(outOfOrder.err().contains("value3"), outOfOrder.err());
            mark = t.lines().size();
            Fixture.await(t, mark, "value 3 ", 1);

            assertEquals(0, Cli.run("revert", "-p", pid(t), "value3").code());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 2 ", 2);
            assertEquals(0, Cli.run("revert", "-p", pid(t), "value2").code());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 1 ", 2);
            assertArrayEquals(before, Fixture.text(t.pidInt(), exe));
            assertTrue(Patcher.applied(t.pidInt()).isEmpty());
        }
    }

    /** Two patches of one function, the second on top of the first, come out in one revert. */
    @Test
    void stackedPatchesRevertTogether() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 1);
            byte[] before = Fixture.text(t.pidInt(), exe);
            assertEquals(0, Cli.run("apply", "-p", pid(t), value2.toString()).code());
            assertEquals(0, Cli.run("apply", "-p", pid(t), value3.toString()).code());
            int mark = t.lines().size();
            Fixture.await(t, mark, "value 3 ", 2);
            var both = Cli.run("revert", "-p", pid(t), "--all");
            assertEquals(0, both.code(), both.out() + both.err());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 1 ", 2);
            assertArrayEquals(before, Fixture.text(t.pidInt(), exe));
            assertTrue(Patcher.applied(t.pidInt()).isEmpty());
        }
    }

    @Test
    void replaceSwapsEarlierPatchesInOneStep() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 1);
            byte[] before = Fixture.text(t.pidInt(), exe);
            assertEquals(0, Cli.run("apply", "-p", pid(t), value2.toString()).code());
            int mark = t.lines().size();
            Fixture.await(t, mark, "value 2 ", 2);
            var r = Cli.run("apply", "-p", pid(t), "--replace", value3.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().contains("replaced value2"), r.out());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 3 ", 2);
            assertTrue(Fixture.linesWith(t, mark + 1, "value ").stream().allMatch(l -> l.startsWith("value 3 ")));
            assertEquals(List.of("value3"), Patcher.applied(t.pidInt()).stream().map(Patcher.AppliedPatch::patchId)
                    .toList());
            assertEquals(0, Cli.run("revert", "-p", pid(t), "--all").code());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 1 ", 2);
            assertArrayEquals(before, Fixture.text(t.pidInt(), exe));
        }
    }

    @Test
    void applyAllPatchesEveryMatchingProcessAndNoOther() throws Exception {
        try (var a = Target.start(exe); var b = Target.start(exe); var other = Target.start(otherExe)) {
            for (var t : List.of(a, b, other)) {
                Fixture.await(t, 0, "value 1", 1);
            }
            var r = Cli.run("apply", "--all", value2.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().contains("pid " + a.pid() + " ") && r.out().contains("pid " + b.pid() + " "), r.out());
            assertTrue(r.out().contains("summary: 2 applied, 0 already applied, 0 failed"), r.out());
            for (var t : List.of(a, b)) {
                int mark = t.lines().size();
                Fixture.await(t, mark + 1, "value 2 ", 2);
            }
            assertTrue(Patcher.applied(other.pidInt()).isEmpty());
            int mark = other.lines().size();
            Fixture.await(other, mark, "value 1 ", 2);
        }
    }
}
