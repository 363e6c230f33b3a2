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

/**
 * One fix spanning two modules: a function of the executable and one of the shared library it links, each patch
 * naming its own module's build-id, applied together by one {@code suture apply}, then both reverted byte for byte.
 */
class ProgramAndLibraryPatchTest {
    static final String LIBRARY = """
            int lib_value(int x) {
                return x + 1;
            }
            """;

    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int lib_value(int x);

            int prog_value(int x) {
                return x + 2;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("prog %d lib %d\\n", prog_value(10), lib_value(10));
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    @TempDir
    Path dir;

    @Test
    void patchesTheProgramAndItsLibraryTogether() throws Exception {
        Path libOrig = Fixture.object(dir, "orig", "lib", LIBRARY, "-fPIC");
        Path libPatched = Fixture.object(dir, "patched", "lib", LIBRARY.replace("x + 1", "x * 300"), "-fPIC");
        Path lib = Fixture.link(dir, "libvalue.so", List.of(libOrig), "-shared");
        Path mainOrig = Fixture.object(dir, "orig", "main", PROGRAM, "-fPIE");
        Path mainPatched = Fixture.object(dir, "patched", "main", PROGRAM.replace("x + 2", "x * 200"), "-fPIE");
        Path exe = Fixture.link(dir, "prog", List.of(mainOrig), "-pie", "-L" + dir, "-lvalue", "-Wl,-rpath," + dir);
        Path exePatch = dir.resolve("prog-fix.suture");
        Path libPatch = dir.resolve("lib-fix.suture");
        Fixture.diff(exe, List.of(mainOrig), List.of(mainPatched), "prog-fix", exePatch);
        Fixture.diff(lib, List.of(libOrig), List.of(libPatched), "lib-fix", libPatch);

        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "prog 12 lib 11", 2);
            byte[] exeBefore = Fixture.text(t.pidInt(), exe);
            byte[] libBefore = Fixture.text(t.pidInt(), lib);
            String pid = Long.toString(t.pid());

            var r = Cli.run("apply", "-p", pid, exePatch.toString(), libPatch.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            assertEquals(List.of("lib-fix", "prog-fix"),
                    Patcher.applied(t.pidInt()).stream().map(a -> a.patchId()).sorted().toList());
            int mark = t.lines().size();
            Fixture.await(t, mark + 1, "prog 2000 lib 3000", 2);
            // once both jumps are in, no line mixes old and new code of the same module
            assertTrue(Fixture.linesWith(t, mark + 1, "prog").stream().allMatch(l -> l.equals("prog 2000 lib 3000")),
                    t.output());

            var rv = Cli.run("revert", "-p", pid, "prog-fix", "lib-fix");
            assertEquals(0, rv.code(), rv.out() + rv.err());
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "prog 12 lib 11", 2);
            assertTrue(Fixture.linesWith(t, mark + 1, "prog").stream().allMatch(l -> l.equals("prog 12 lib 11")),
                    t.output());
            assertArrayEquals(exeBefore, Fixture.text(t.pidInt(), exe), "program text differs after revert");
            assertArrayEquals(libBefore, Fixture.text(t.pidInt(), lib), "library text differs after revert");
            assertTrue(Patcher.applied(t.pidInt()).isEmpty(), "both regions are gone");
            assertTrue(t.alive());
        }
    }
}
