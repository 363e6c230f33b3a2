package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A fix that adds lines above functions using {@code assert} and a logging macro that prints {@code __LINE__}:
 * only the function whose meaning changed is replaced; the others, and {@code main}, changed only in line numbers
 * and are left as they are. The replaced function's assert and log report the new line numbers.
 */
class LineNumberChangeTest {
    static final String PROGRAM = """
            #include <assert.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            #define LOG(what, v) log_at(__LINE__, what, v)

            __attribute__((noinline)) void log_at(int line, const char *what, int v) {
                printf("line %d: %s %d\\n", line, what, v);
            }

            __attribute__((noinline)) int compute(int x) {
                assert(x >= 0);
                LOG("compute", x);
                return x + 1;
            }

            __attribute__((noinline)) int check_a(int x) {
                assert(x < 1000000);
                LOG("check_a", x);
                return x * 2;
            }

            __attribute__((noinline)) int check_b(int x) {
                assert(x != -5);
                LOG("check_b", x);
                return x * 3;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                LOG("start", 0);
                for (;;) {
                    int x = access("trip", F_OK) == 0 ? -1 : 1;
                    printf("result %d %d %d\\n", compute(x), check_a(x), check_b(x));
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    /** The fix: two lines of comment above every function, and compute returns x + 2. */
    static final String[] FIX = {
            "#define LOG(what, v)", "/* Security fix: compute's result was off by one. */\n/* (upstream bug 4711) */\n"
                    + "#define LOG(what, v)",
            "return x + 1;", "return x + 2;"};

    @TempDir
    Path dir;

    private static int lineOf(String source, String text) {
        var lines = source.lines().toList();
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).contains(text)) {
                return i + 1;
            }
        }
        throw new AssertionError(text);
    }

    @Test
    void onlyTheFunctionWhoseMeaningChangedIsReplaced() throws Exception {
        var b = new TwoBuilds(dir).file("prog.c", PROGRAM, FIX);
        PatchFile patch = b.build().diff();
        assertEquals(List.of("compute"), TwoBuilds.replacedNames(patch));
        assertEquals(List.of("check_a", "check_b", "main"), b.result.lineOnly().stream().sorted().toList());
        assertEquals("3 functions changed only in line numbers: left as they are (" + String.join(", ",
                b.result.lineOnly()) + ")", b.result.lineOnlySummary().orElseThrow());

        String patched = PROGRAM.replace(FIX[0], FIX[1]).replace(FIX[2], FIX[3]);
        int oldLog = lineOf(PROGRAM, "LOG(\"compute\""), newLog = lineOf(patched, "LOG(\"compute\"");
        int newAssert = lineOf(patched, "assert(x >= 0)");
        int oldCheckA = lineOf(PROGRAM, "LOG(\"check_a\"");
        assertEquals(oldLog + 2, newLog);

        try (var t = Target.start(b.target)) {
            t.awaitLine("result 2 2 3", Duration.ofSeconds(15));
            assertTrue(t.output().contains("line " + oldLog + ": compute 1"), t.output());
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), b.result.patchFile().toString());
            assertEquals(0, r.code(), r.out() + r.err());
            int mark = t.lines().size();
            t.awaitLine(l -> l.equals("result 3 2 3"), Duration.ofSeconds(15), mark);
            var after = t.lines().subList(mark, t.lines().size());
            // The new compute logs its new line; check_a, left as it is, its old one.
            assertTrue(after.contains("line " + newLog + ": compute 1"), after.toString());
            assertTrue(after.contains("line " + oldCheckA + ": check_a 1"), after.toString());

            // The new code's assert reports the new line when it fails.
            Files.writeString(b.target.resolveSibling("trip"), "");
            t.awaitLine(l -> l.contains("Assertion"), Duration.ofSeconds(15), mark);
            String failed = t.lines().stream().filter(l -> l.contains("Assertion")).findFirst().orElseThrow();
            assertTrue(failed.contains("prog.c:" + newAssert + ": compute: Assertion `x >= 0' failed"), failed);
        }
    }

    @Test
    void aConstantThatMovesLikeALineNumberIsStillAChange() throws Exception {
        // limit's constant is the number of the line above it, and the fix changes it by exactly as much as it
        // moves that line: only the instruction that holds a line number may differ by it.
        String src = """
                #include <stdio.h>
                #define LOG(what, v) log_at(__LINE__, what, v)
                __attribute__((noinline)) void log_at(int line, const char *what, int v) {
                    printf("%d %s %d\\n", line, what, v);
                }
                __attribute__((noinline)) int limit(int x) {
                    LOG("limit", x);
                    return x + LIMIT;
                }
                int main(void) { return limit(1) > 0 ? 0 : 1; }
                """;
        int line = lineOf(src, "LOG(\"limit\"");
        var b = new TwoBuilds(dir).file("limit.c", src.replace("LIMIT", Integer.toString(line)),
                "#include <stdio.h>", "/* one */\n/* two */\n#include <stdio.h>",
                "x + " + line + ";", "x + " + (line + 2) + ";");
        PatchFile patch = b.build().diff();
        assertEquals(List.of("limit"), TwoBuilds.replacedNames(patch));
        assertEquals(List.of(), b.result.lineOnly());
    }
}
