package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A patch that adds a function and an initialised global, and changes a function with a static local: the new
 * code runs, the new global starts at its initial value in the region, and the static local keeps counting from
 * the value the running program had (the patch uses the original variable, not a fresh copy).
 */
class NewCodeAndDataTest {
    @TempDir
    Path dir;

    static final String ORIGINAL = """
            #include <stdio.h>
            #include <unistd.h>
            int counter(void) { static int seen = 0; seen += 1; return seen; }
            void say(void) { printf("count %d\\n", counter()); fflush(stdout); }
            int main(void) { for (;;) { say(); usleep(20000); } }
            """;

    static final String PATCHED = """
            #include <stdio.h>
            #include <unistd.h>
            int extra = 1000;
            const char *label(void) { return "patched"; }
            int counter(void) { static int seen = 0; seen += 10; return seen; }
            void say(void) { extra++; printf("count %d %s %d\\n", counter(), label(), extra); fflush(stdout); }
            int main(void) { for (;;) { say(); usleep(20000); } }
            """;

    @Test
    void newFunctionNewGlobalAndStaticLocal() throws Exception {
        var built = Fixture.program(dir, "counter", ORIGINAL, PATCHED, "counter-fix", true);
        assertEquals(List.of("counter", "say"), built.patch().replaced().stream().map(f -> f.symbol()).sorted()
                .toList());
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, "count 5", 1);
            Patcher.apply(t.pidInt(), built.patch(), Patcher.ApplyOptions.defaults());
            int mark = t.lines().size();
            Fixture.await(t, mark, "patched", 3);
            var lines = t.lines();
            int firstPatched = -1;
            for (int i = 0; i < lines.size(); i++) {
                if (lines.get(i).contains("patched")) {
                    firstPatched = i;
                    break;
                }
            }
            int before = Integer.parseInt(lines.get(firstPatched - 1).split(" ")[1]);
            String[] first = lines.get(firstPatched).split(" ");
            assertEquals(before + 10, Integer.parseInt(first[1]), "the static local continues: " + lines);
            assertEquals("1001", first[3], "the new global starts at its initial value");
            String[] second = lines.get(firstPatched + 1).split(" ");
            assertEquals(before + 20, Integer.parseInt(second[1]));
            assertEquals("1002", second[3]);

            Patcher.revert(t.pidInt(), List.of(), true, Duration.ofSeconds(5));
            int afterRevert = t.lines().size();
            Fixture.await(t, afterRevert, "count", 3);
            assertTrue(Fixture.linesWith(t, afterRevert, "count").stream().allMatch(l -> l.split(" ").length == 2));
        }
    }
}
