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
 * A patch that calls libc functions the program never imported — strlen and memcpy, which are IFUNCs (resolved to
 * the implementation the dynamic linker chose) — and reads libc data the program never used (stderr).
 */
class ExternalSymbolsTest {
    @TempDir
    Path dir;

    static final String ORIGINAL = """
            #include <stdio.h>
            #include <unistd.h>
            char word[] = "hello";
            void say(void) { printf("say %s\\n", word); fflush(stdout); }
            int main(void) { for (;;) { say(); usleep(20000); } }
            """;

    static final String PATCHED = """
            #include <stdio.h>
            #include <string.h>
            #include <unistd.h>
            char word[] = "hello";
            void say(void) {
                char copy[32];
                size_t n = strlen(word);
                memcpy(copy, word, n + 1);
                copy[0] = 'j';
                printf("say %s %zu\\n", copy, n);
                fflush(stdout);
                fprintf(stderr, "err %s\\n", copy);
            }
            int main(void) { for (;;) { say(); usleep(20000); } }
            """;

    @Test
    void callsIfuncsItNeverImportedAndReadsStderr() throws Exception {
        // -fPIC: libc data the program never copied in is reached through a GOT slot of the region (hidden
        // visibility keeps the program's own data PC-relative, which the linker leaves as compiled)
        Path a = Fixture.object(dir, "orig", "ext", ORIGINAL, "-fPIC", "-fvisibility=hidden");
        Path b = Fixture.object(dir, "patched", "ext", PATCHED, "-fPIC", "-fvisibility=hidden");
        Path exe = Fixture.link(dir, "ext", List.of(a), "-pie");
        var patch = Fixture.diff(exe, List.of(a), List.of(b), "ext-fix", dir.resolve("ext.suture"));
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "say hello", 2);
            var r = Patcher.apply(t.pidInt(), patch, Patcher.ApplyOptions.defaults());
            assertEquals(Patcher.Outcome.APPLIED, r.outcome());
            int mark = t.lines().size();
            Fixture.await(t, mark, "say jello 5", 2);
            Fixture.await(t, mark, "err jello", 2);
            Patcher.revert(t.pidInt(), List.of("ext-fix"), false, Duration.ofSeconds(5));
            int after = t.lines().size();
            Fixture.await(t, after, "say hello", 3);
            assertTrue(t.lines().getLast().startsWith("say hello"), t.lines().getLast());
        }
    }
}
