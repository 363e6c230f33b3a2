package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A function of a shared library, patched in the running program that loaded it, then reverted byte for byte. */
class SharedLibraryPatchTest {
    static final String LIBRARY = """
            #include <stdio.h>

            static int calls;

            int lib_value(int x) {
                calls++;
                return x + 1;
            }
            """;

    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int lib_value(int x);

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("lib %d\\n", lib_value(10));
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    @TempDir
    Path dir;

    /** The values of the first two lines after {@code skip} printed by the new code (1000 and more). */
    private static List<Integer> patchedCounts(Target t, int skip) throws Exception {
        long deadline = System.nanoTime() + Fixture.WAIT.toNanos();
        while (true) {
            var counts = Fixture.linesWith(t, skip, "lib ").stream().map(l -> Integer.parseInt(l.substring(4)))
                    .filter(v -> v >= 1000).toList();
            if (counts.size() >= 2) {
                return counts;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the new code printed nothing; output:\n" + t.output());
            }
            Fixture.sleep(10);
        }
    }

    @Test
    void patchesALibraryFunctionInARunningProgram() throws Exception {
        Path orig = Fixture.object(dir, "orig", "lib", LIBRARY, "-fPIC");
        Path patched = Fixture.object(dir, "patched", "lib", LIBRARY.replace("return x + 1;", "return x * 100 + calls;"),
                "-fPIC");
        Path lib = Fixture.link(dir, "libvalue.so", List.of(orig), "-shared");
        Path main = Fixture.object(dir, "main", "main", PROGRAM, "-fPIE");
        Path exe = Fixture.link(dir, "prog", List.of(main), "-pie", "-L" + dir, "-lvalue", "-Wl,-rpath," + dir);
        Path patch = dir.resolve("lib-fix.suture");
        Fixture.diff(lib, List.of(orig), List.of(patched), "lib-fix", patch);

        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "lib 11", 2);
            byte[] before = Fixture.text(t.pidInt(), lib);
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), patch.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().contains("libvalue.so"), r.out());
            int mark = t.lines().size();
            // the new code prints 1000 + calls, and calls passes 100 after two seconds: "lib 10xx" or "lib 11xx"
            var counts = patchedCounts(t, mark + 1);
            // the new code counts on in the library's own static variable
            assertTrue(counts.get(1) > counts.get(0) && counts.get(0) > 1000, counts.toString());

            var rv = Cli.run("revert", "-p", Long.toString(t.pid()), "lib-fix");
            assertEquals(0, rv.code(), rv.out() + rv.err());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "lib 11", 2);
            assertArrayEquals(before, Fixture.text(t.pidInt(), lib));
        }
    }
}
