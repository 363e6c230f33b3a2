package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Same-named source files: an executable links a/util.c and b/util.c, a shared library it uses links lib/a/util.c
 * and lib/b/util.c, and all four define a static function {@code step} and static variables {@code calls} and
 * {@code scale} with the same bytes, so neither the STT_FILE name nor the content tells them apart: the link order
 * does, and the content proves it. A fix to one of them, built with {@code suture build} and applied to the running
 * program, changes that file's counter only.
 */
class SameNamedFilesTest {
    /** One util.c; every copy is the same but for the name of its public entry point. */
    static final String UTIL = """
            static int calls;
            static int scale = 1;

            __attribute__((noinline, noclone)) static int step(int x) {
                calls += 1;
                return x + calls * scale;
            }

            int %s(int x) {
                return step(x);
            }
            """;

    static final String MAIN = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int prog_a(int), prog_b(int), lib_a(int), lib_b(int);

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    int pa = prog_a(0), pb = prog_b(0), la = lib_a(0), lb = lib_b(0);
                    printf("%d %d %d %d\\n", pa, pb, la, lb);
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    static final String MAKEFILE = """
            CFLAGS = -O2 -fPIC
            all: prog
            prog: main.o a/util.o b/util.o libtwo.so
            \t$(CC) -o prog main.o a/util.o b/util.o -L. -ltwo -Wl,-rpath,'$$ORIGIN'
            libtwo.so: lib/a/util.o lib/b/util.o
            \t$(CC) -shared -o libtwo.so lib/a/util.o lib/b/util.o
            %.o: %.c
            \t$(CC) $(CFLAGS) -c -o $@ $<
            """;

    @TempDir
    Path dir;

    private Path project(String name) throws IOException {
        Path p = dir.resolve(name);
        for (var f : List.of(List.of("a/util.c", "prog_a"), List.of("b/util.c", "prog_b"),
                List.of("lib/a/util.c", "lib_a"), List.of("lib/b/util.c", "lib_b"))) {
            Files.createDirectories(p.resolve(f.get(0)).getParent());
            Files.writeString(p.resolve(f.get(0)), UTIL.formatted(f.get(1)));
        }
        Files.writeString(p.resolve("main.c"), MAIN);
        Files.writeString(p.resolve("Makefile"), MAKEFILE);
        return p;
    }

    /** A unified diff of {@code file} of the project with {@code from} replaced by {@code to}. */
    private Path fix(Path src, String file, String from, String to) throws IOException {
        Path a = dir.resolve("fix-a").resolve(file), b = dir.resolve("fix-b").resolve(file);
        Files.createDirectories(a.getParent());
        Files.createDirectories(b.getParent());
        String text = Files.readString(src.resolve(file));
        Files.writeString(a, text);
        Files.writeString(b, text.replace(from, to));
        var d = Commands.run(dir, Duration.ofSeconds(30), "diff", "-u", "--label", "a/" + file, "--label",
                "b/" + file, a.toString(), b.toString());
        assertEquals(1, d.status(), d.output());
        return Files.writeString(dir.resolve(file.replace('/', '-') + ".diff"), d.output());
    }

    /** suture build of one fix against the deployed program and library; the one patch it writes. */
    private Path build(Path src, Path deployed, Path diff, String changedTarget, String name) throws IOException {
        Path out = dir.resolve("out-" + name);
        var run = Cli.run("build", "--src", src.toString(), "--diff", diff.toString(),
                "--target", "prog=" + deployed.resolve("prog"), "--target", "libtwo.so=" + deployed.resolve("libtwo.so"),
                "-o", out.toString(), "--json");
        assertEquals(0, run.code(), run.out() + run.err());
        var patches = new ArrayList<Path>();
        for (JsonNode t : new ObjectMapper().readTree(run.out()).get("targets")) {
            if (t.get("changed").asBoolean()) {
                assertEquals(changedTarget, t.get("target").asText(), run.out());
                assertEquals("[\"step\"]", t.get("replaced").toString(), run.out());
                patches.add(Path.of(t.get("patch").asText()));
            }
        }
        assertEquals(1, patches.size(), run.out());
        return patches.getFirst();
    }

    /** The last two lines' counters, and how much each went up from one to the next. */
    private static int[] steps(Target t, int after) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        while (System.nanoTime() < deadline) {
            var lines = t.lines();
            if (lines.size() >= after + 3) {
                var prev = lines.get(lines.size() - 2).split(" ");
                var last = lines.get(lines.size() - 1).split(" ");
                if (prev.length == 4 && last.length == 4) {
                    int[] d = new int[4];
                    for (int i = 0; i < 4; i++) {
                        d[i] = Integer.parseInt(last[i]) - Integer.parseInt(prev[i]);
                    }
                    return d;
                }
            }
            if (!t.alive()) {
                throw new AssertionError("the program died:\n" + t.output());
            }
            Thread.sleep(20);
        }
        throw new AssertionError("no new lines from the program:\n" + t.output());
    }

    @Test
    void aFixToOneOfTwoSameNamedFilesPatchesThatOneOnly() throws Exception {
        Path src = project("src");
        Path deployed = project("deployed");
        Gcc.run(deployed, "make", "-s");
        // The first util.c of the program, and the second of the library.
        Path progFix = build(src, deployed, fix(src, "a/util.c", "calls += 1;", "calls += 10;"), "prog", "prog");
        Path libFix = build(src, deployed, fix(src, "lib/b/util.c", "calls += 1;", "calls += 7;"), "libtwo.so",
                "lib");

        try (var t = Target.start(deployed.resolve("prog"))) {
            assertEquals("[1, 1, 1, 1]", java.util.Arrays.toString(steps(t, 0)), t.output());
            String pid = Long.toString(t.pid());

            var r = Cli.run("apply", "-p", pid, progFix.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            int mark = t.lines().size();
            assertEquals("[10, 1, 1, 1]", java.util.Arrays.toString(steps(t, mark)), t.output());

            r = Cli.run("apply", "-p", pid, libFix.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            mark = t.lines().size();
            assertEquals("[10, 1, 1, 7]", java.util.Arrays.toString(steps(t, mark)), t.output());

            r = Cli.run("revert", "-p", pid, "--all");
            assertEquals(0, r.code(), r.out() + r.err());
            mark = t.lines().size();
            assertEquals("[1, 1, 1, 1]", java.util.Arrays.toString(steps(t, mark)), t.output());
            assertTrue(t.alive());
        }
    }
}
