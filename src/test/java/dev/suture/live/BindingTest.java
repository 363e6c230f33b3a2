package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A patch is bound to the exact code it was built for (issue 6, item 5, DESIGN.md principle 6): a rebuilt binary
 * that carries the same build-id but different code, a process whose code something else changed, and a binary of
 * another build-id are all refused with exit 3, the differing function named, and nothing written (the module's
 * code compared through /proc/PID/mem, the mapping list compared line by line).
 */
class BindingTest {
    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            __attribute__((noinline)) int value(void) {
                return 1;
            }

            __attribute__((noinline)) int other(void) {
                return 1;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("value %d other %d\\n", value(), other());
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;
    /** Forced on the original and on the rebuild, as a build system that derives ids from its inputs might. */
    static final String BUILD_ID = "0x5eed5eed00112233445566778899aabbccddeeff";

    @TempDir
    static Path dir;
    static Path original;
    static Path rebuilt;
    static Path otherBuild;
    static Path patch;

    @BeforeAll
    static void build() throws IOException {
        Path orig = Fixture.object(dir, "orig", "prog", PROGRAM, "-fno-pie");
        original = Fixture.link(dir, "prog", List.of(orig), "-no-pie", "-Wl,--build-id=" + BUILD_ID);
        Path fixed = Fixture.object(dir, "patched", "prog", PROGRAM.replace("value(void) {\n    return 1;",
                "value(void) {\n    return 2;").replace("other(void) {\n    return 1;", "other(void) {\n    return 3;"),
                "-fno-pie");
        patch = dir.resolve("fix.suture");
        Fixture.diff(original, List.of(orig), List.of(fixed), "fix", patch);
        // Same build-id, same layout, one immediate different in other(): only its hash tells them apart.
        Path changed = Fixture.object(dir, "rebuild-src", "prog", PROGRAM.replace("other(void) {\n    return 1;",
                "other(void) {\n    return 7;"), "-fno-pie");
        rebuilt = Fixture.link(dir, "rebuilt", List.of(changed), "-no-pie", "-Wl,--build-id=" + BUILD_ID);
        otherBuild = Fixture.link(dir, "otherbuild", List.of(changed), "-no-pie");
        assertEquals(buildId(original), buildId(rebuilt));
        assertFalse(buildId(original).equals(buildId(otherBuild)));
    }

    @Test
    void rebuiltBinaryWithTheSameBuildIdIsRefusedNamingTheFunction() throws Exception {
        try (var t = Target.start(rebuilt)) {
            Fixture.await(t, 0, "value 1 other 7", 1);
            var before = Snapshot.of(t, rebuilt);
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), patch.toString());
            assertEquals(3, r.code(), r.out() + r.err());
            assertRefusalNames(r.err(), "other", "rebuilt");
            assertFalse(r.err().contains("function value "), "value() is as the patch expects: " + r.err());
            before.assertUnchanged("by the refused apply");
            int mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 1 other 7", 2);
        }
    }

    @Test
    void codeChangedBySomethingElseIsRefusedNamingTheFunction() throws Exception {
        try (var t = Target.start(original)) {
            Fixture.await(t, 0, "value 1 other 1", 1);
            // Another tool rewrites the immediate of other()'s "mov $1, %eax" in the running process.
            long other = symbol(original, "other");
            byte[] code = read(t.pidInt(), other, 32);
            int mov = indexOf(code, new byte[] {(byte) 0xb8, 1, 0, 0, 0});
            assertTrue(mov >= 0, "no mov $1,%eax in other()");
            write(t.pidInt(), other + mov + 1, new byte[] {9});
            int mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 1 other 9", 2);

            var before = Snapshot.of(t, original);
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), patch.toString());
            assertEquals(3, r.code(), r.out() + r.err());
            assertRefusalNames(r.err(), "other", "prog");
            before.assertUnchanged("by the refused apply");
            mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 1 other 9", 2);
            assertTrue(Patcher.applied(t.pidInt()).isEmpty(), "a refused apply left a region");
        }
    }

    @Test
    void unmodifiedProcessTakesThePatch() throws Exception {
        // The control: the same patch on the binary it was built for applies (so the refusals above are real).
        try (var t = Target.start(original)) {
            Fixture.await(t, 0, "value 1 other 1", 1);
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), patch.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            int mark = t.lines().size();
            Fixture.await(t, mark + 1, "value 2 other 3", 2);
        }
    }

    @Test
    void anotherBuildIdIsRefusedWithNothingWritten() throws Exception {
        try (var t = Target.start(otherBuild)) {
            Fixture.await(t, 0, "value 1 other 7", 1);
            var before = Snapshot.of(t, otherBuild);
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), patch.toString());
            assertEquals(3, r.code(), r.out() + r.err());
            assertTrue(r.err().contains(BUILD_ID.substring(2)) && r.err().contains("build-id"), r.err());
            before.assertUnchanged("by the refused apply");
        }
    }

    /** The message says which function, in which module, that nothing was written, and what to do. */
    private static void assertRefusalNames(String err, String function, String module) {
        assertTrue(err.contains("function " + function + " "), err);
        assertTrue(err.contains("/" + module + " "), err);
        assertTrue(err.contains("nothing was written"), err);
        assertTrue(err.contains("Rebuild the patch"), err);
        assertFalse(err.contains("Exception"), err);
    }

    /** The code of the process's module and its mapping list. */
    record Snapshot(Target target, Path file, byte[] text, List<String> maps) {
        static Snapshot of(Target t, Path file) throws IOException {
            return new Snapshot(t, file, Fixture.text(t.pidInt(), file), maps(t));
        }

        static List<String> maps(Target t) throws IOException {
            return Files.readAllLines(Path.of("/proc/" + t.pid() + "/maps"));
        }

        void assertUnchanged(String when) throws IOException {
            assertArrayEquals(text, Fixture.text(target.pidInt(), file), "code changed " + when);
            assertEquals(maps, maps(target), "mappings changed " + when);
        }
    }

    private static String buildId(Path exe) throws IOException {
        String notes = Gcc.run(dir, "readelf", "-n", exe.toString());
        int at = notes.indexOf("Build ID: ");
        assertTrue(at >= 0, notes);
        return notes.substring(at + 10).lines().findFirst().orElseThrow().trim();
    }

    private static long symbol(Path exe, String name) throws IOException {
        for (String line : Gcc.run(dir, "nm", exe.toString()).split("\n")) {
            var f = line.trim().split("\\s+");
            if (f.length == 3 && f[2].equals(name)) {
                return Long.parseUnsignedLong(f[0], 16);
            }
        }
        throw new AssertionError(name + " not in " + exe);
    }

    private static byte[] read(int pid, long address, int length) throws IOException {
        try (var mem = new RandomAccessFile("/proc/" + pid + "/mem", "r")) {
            mem.seek(address);
            byte[] b = new byte[length];
            mem.readFully(b);
            return b;
        }
    }

    private static void write(int pid, long address, byte[] bytes) throws IOException {
        try (var mem = new RandomAccessFile("/proc/" + pid + "/mem", "rw")) {
            mem.seek(address);
            mem.write(bytes);
        }
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
