package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A library function that writes and reads its library's {@code __thread} variable (general-dynamic access, the
 * library being -fPIC) is patched: the new code reaches each thread's own copy through the library's TLS module id,
 * which the program confirms by reading the variable itself from every thread.
 */
class LibraryTlsPatchTest {
    static final String LIBRARY = """
            __thread int tls_value;

            int lib_tls(int id) {
                tls_value = id * 1000 + 666;
                return tls_value;
            }
            """;

    static final String PROGRAM = """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            extern __thread int tls_value;
            int lib_tls(int id);

            static void *worker(void *arg) {
                int id = (int) (long) arg;
                for (;;) {
                    int r = lib_tls(id);
                    printf("t%d ret %d tls %d\\n", id, r, tls_value);
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
                return 0;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                pthread_t a, b;
                pthread_create(&a, 0, worker, (void *) 1L);
                pthread_create(&b, 0, worker, (void *) 2L);
                worker((void *) 3L);
            }
            """;

    @TempDir
    Path dir;

    @Test
    void patchedLibraryCodeWritesEachThreadsOwnTlsVariable() throws Exception {
        Path orig = Fixture.object(dir, "orig", "lib", LIBRARY, "-fPIC");
        Path patched = Fixture.object(dir, "patched", "lib",
                LIBRARY.replace("id * 1000 + 666", "id * 1000000 + 666666"), "-fPIC");
        Path lib = Fixture.link(dir, "libtls.so", List.of(orig), "-shared");
        Path main = Fixture.object(dir, "main", "main", PROGRAM, "-fPIE");
        Path exe = Fixture.link(dir, "prog", List.of(main), "-pie", "-L" + dir, "-ltls", "-Wl,-rpath," + dir);
        Path patch = dir.resolve("tls-fix.suture");
        Fixture.diff(lib, List.of(orig), List.of(patched), "tls-fix", patch);

        try (var t = Target.start(exe)) {
            for (int id = 1; id <= 3; id++) {
                Fixture.await(t, 0, line(id, id * 1000 + 666), 2);
            }
            byte[] before = Fixture.text(t.pidInt(), lib);
            String pid = Long.toString(t.pid());

            var r = Cli.run("apply", "-p", pid, patch.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            int mark = t.lines().size();
            for (int id = 1; id <= 3; id++) {
                assertSwitched(t, mark, id, id * 1000000 + 666666);
            }

            var rv = Cli.run("revert", "-p", pid, "tls-fix");
            assertEquals(0, rv.code(), rv.out() + rv.err());
            mark = t.lines().size();
            for (int id = 1; id <= 3; id++) {
                assertSwitched(t, mark, id, id * 1000 + 666);
            }
            assertArrayEquals(before, Fixture.text(t.pidInt(), lib), "library text differs after revert");
            assertTrue(t.alive());
        }
    }

    /**
     * After line {@code mark}, thread {@code id} prints {@code value} (its own, never another thread's) on every
     * line but the first, which may come from a call made before the switch.
     */
    private static void assertSwitched(Target t, int mark, int id, int value) throws IOException {
        String expected = line(id, value);
        Fixture.await(t, mark, expected, 2);
        var mine = Fixture.linesWith(t, mark, "t" + id + " ");
        var settled = mine.getFirst().equals(expected) ? mine : mine.subList(1, mine.size());
        assertTrue(settled.stream().allMatch(expected::equals), mine.toString());
    }

    private static String line(int id, int value) {
        return "t" + id + " ret " + value + " tls " + value;
    }
}
