package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Commands;
import dev.suture.testing.SutureProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The test bed of real fixes (bench/security-patches.sh): nginx's upstream tree from Debian's source package, running
 * under two clients, and each security patch of its debian/patches built with {@code suture build}, applied to the
 * master and the worker and reverted, one at a time. Every fix that applies must either go live and come back with
 * no failed request, or be one of the kinds docs/real-fixes.md explains as out of scope. Slow (about 20 minutes):
 * {@code ./run-tests -Dgroups=slow -Dtest=SecurityPatchesTest}. The sources and builds are kept in
 * target/bench-nginx between runs.
 */
@Tag("slow")
class SecurityPatchesTest {

    @TempDir
    Path dir;

    @Test
    void nginxSecurityPatchesGoLiveUnderLoad() throws Exception {
        Path root = Path.of("").toAbsolutePath();
        // The script runs suture through this launcher: the classes under test, not a jar.
        Path launcher = dir.resolve("suture");
        Files.writeString(launcher, "#!/bin/sh\nexec " + SutureProcess.command().stream().map(SecurityPatchesTest::quote)
                .collect(Collectors.joining(" ")) + " \"$@\"\n");
        Files.setPosixFilePermissions(launcher, PosixFilePermissions.fromString("rwx------"));
        Path out = root.resolve("target/bench-nginx");
        var run = Commands.run(root, Duration.ofMinutes(90), List.of("env", "SUTURE=" + launcher,
                root.resolve("bench/security-patches.sh").toString(), out.toString()));
        System.out.println(run.output());
        assertEquals(0, run.status(), run.output());

        var rows = Files.readAllLines(out.resolve("results.tsv"));
        var live = new ArrayList<String>();
        for (String row : rows.subList(1, rows.size())) {
            String[] f = row.split("\t", -1);
            String fix = f[0], applies = f[2], built = f[3], apply = f[7], revert = f[9], errors = f[12], note = f[13];
            if (applies.equals("no")) {
                continue;
            }
            switch (built) {
                case "yes" -> {
                    assertEquals("ok", apply, row);
                    assertEquals("ok", revert, row);
                    assertEquals("0", errors, row);
                    assertTrue(Long.parseLong(f[11]) > 0, "the clients made requests: " + row);
                    live.add(fix);
                }
                // The fix changes no x86-64 code (a 32-bit overflow, say): no patch is right.
                case "no code change" -> assertTrue(note.contains("no function changed"), row);
                // A new module (FIX-HTTP2bomb): new entries in nginx's module tables, existing data a live patch
                // cannot reshape (docs/real-fixes.md).
                default -> assertTrue(note.contains("changed initial value or size of existing data"), row);
            }
        }
        assertTrue(live.size() >= 10, "at least ten security fixes went live: " + live);
    }

    private static String quote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }
}
