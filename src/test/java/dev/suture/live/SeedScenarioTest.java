package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The seed's scenario: thread3_say of the three-thread demo program is patched while it runs (counter - 1, the
 * TLS variable 666666, at the %fs: offset the original uses), then reverted; every byte of the program's text is
 * the original again.
 */
class SeedScenarioTest {
    @TempDir
    Path dir;

    static String resource(String name) throws IOException {
        try (InputStream in = SeedScenarioTest.class.getClassLoader().getResourceAsStream(name)) {
            return new String(in.readAllBytes());
        }
    }

    @ParameterizedTest(name = "pie={0}")
    @ValueSource(booleans = {false, true})
    void patchesThread3SayLiveAndRevertsEveryByte(boolean pie) throws Exception {
        String original = resource("demo/demo.c");
        Path work = Files.createDirectories(dir.resolve("patched-src"));
        Files.writeString(work.resolve("demo.c"), original);
        Files.writeString(dir.resolve("fix.diff"), resource("demo/fix.diff"));
        Gcc.run(work, "patch", "-s", "-p1", "-i", dir.resolve("fix.diff").toString());
        String patched = Files.readString(work.resolve("demo.c"));
        var built = Fixture.program(dir, "demo", original, patched, "demo-fix", pie);
        assertEquals(List.of("thread3_say"), built.patch().replaced().stream().map(f -> f.symbol()).toList());

        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, "tls_value = 666", 2);
            byte[] before = Fixture.text(t.pidInt(), built.exe());

            int mark = t.lines().size();
            var result = Patcher.apply(t.pidInt(), built.patch(), Patcher.ApplyOptions.defaults());
            assertEquals(Patcher.Outcome.APPLIED, result.outcome());
            Fixture.await(t, mark, "tls_value = 666666", 2);
            int counter = lastNumber(Fixture.linesWith(t, mark, "thread1: counter is now"));
            // every thread3 line printed after the first patched one shows counter - 1
            var values = Fixture.linesWith(t, mark, "thread3: value = ");
            int last = lastNumber(values);
            assertTrue(last <= counter - 1 && last >= counter - 3, values + " vs counter " + counter);
            var applied = Patcher.applied(t.pidInt());
            assertEquals(1, applied.size());
            assertEquals("demo-fix", applied.getFirst().patchId());
            assertEquals("thread3_say", applied.getFirst().functions().getFirst().name());

            // applying it again is a no-op
            var again = Patcher.apply(t.pidInt(), built.patch(), Patcher.ApplyOptions.defaults());
            assertEquals(Patcher.Outcome.ALREADY_APPLIED, again.outcome());

            mark = t.lines().size();
            var reverted = Patcher.revert(t.pidInt(), List.of("demo-fix"), false, Duration.ofSeconds(5));
            assertEquals(1, reverted.size());
            Fixture.await(t, mark, "tls_value = 666", 3);
            int afterRevert = t.lines().size();
            Fixture.await(t, afterRevert, "tls_value = 666", 2);
            assertTrue(Fixture.linesWith(t, afterRevert, "tls_value").stream()
                    .allMatch(l -> l.endsWith("tls_value = 666")));
            assertArrayEquals(before, Fixture.text(t.pidInt(), built.exe()), "text differs after revert");
            assertTrue(Patcher.applied(t.pidInt()).isEmpty(), "the region is gone");
            assertTrue(t.alive());
        }
    }

    private static int lastNumber(List<String> lines) {
        String l = lines.getLast();
        return Integer.parseInt(l.substring(l.lastIndexOf(' ') + 1));
    }
}
