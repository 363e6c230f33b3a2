package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.elf.ElfFile;
import dev.suture.testing.Gcc;
import dev.suture.testing.SutureProcess;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code suture build --deb} on the packages installed here, with nothing but the installed files: the source is
 * fetched at the installed version, built twice with dpkg-buildpackage (build dependencies installed with
 * --build-deps, deb-src entries added with --add-deb-src when there are none). Slow: run with
 * {@code ./run-tests -o -Dgroups=slow -Dtest=DebianPackageTest}.
 */
@Tag("slow")
class DebianPackageTest {
    /** Debian bookworm's zlib, which every process here loads. */
    static final Path LIBZ = Path.of("/lib/x86_64-linux-gnu/libz.so.1.2.13");

    @TempDir
    Path dir;

    /**
     * zlib's upstream deflateBound fix, built against the installed, stripped libz (no debug file: its symbols come
     * from the rebuild, proven to load the same bytes) and applied with {@code apply --all} to two processes in a
     * pid namespace of their own (so that --all cannot reach the machine's other processes that map libz), then
     * reverted in one of them.
     */
    @Test
    void zlibFixPatchesTheInstalledLibraryInRunningProcesses() throws Exception {
        assumeTrue(installedVersion("zlib1g").equals("1:1.2.13.dfsg-1") && Files.isRegularFile(LIBZ),
                "assumes Debian bookworm's zlib1g 1:1.2.13.dfsg-1 is installed (the diff is made for it)");
        assumeTrue(Files.isRegularFile(Path.of("/usr/include/zlib.h")),
                "assumes zlib1g-dev is installed: the test program includes zlib.h");
        Path diff = BuildProjects.file(dir, "zlib-deflatebound.diff");
        Path patches = Files.createDirectories(dir.resolve("patches"));
        var build = Cli.run("build", "--deb", "zlib1g", "--diff", diff.toString(), "-o", patches.toString(),
                "--build-deps", "--add-deb-src", "--json");
        assertEquals(0, build.code(), build.out() + build.err());
        JsonNode doc = new ObjectMapper().readTree(build.out());
        assertEquals("zlib", doc.get("source").asText(), build.out());
        JsonNode file = only(doc.get("files"), LIBZ.toString());
        assertTrue(file.get("reproduced").asBoolean(), build.out());
        JsonNode result = file.get("result");
        assertEquals(List.of("deflateBound"), strings(result.get("replaced")), build.out());
        assertEquals("rebuild", result.get("symbols").asText(), build.out());
        try (var installed = ElfFile.open(LIBZ)) {
            assertEquals(installed.buildId().orElseThrow(), result.get("targetBuildId").asText());
        }
        System.out.printf("zlib1g: fetch %.1f s, both builds %.1f s, diff %.2f s%n", doc.get("fetchSeconds").asDouble(),
                doc.get("buildSeconds").asDouble(), doc.get("diffSeconds").asDouble());

        // deflateBound(level 0, memLevel 9, 100000 bytes): the fixed-block bound before the fix, the stored-block
        // bound after it (zlib's deflate.c), plus 6 bytes of zlib wrapper.
        long before = 100000 + (100000 >> 3) + (100000 >> 8) + (100000 >> 9) + 4 + 6;
        long after = 100000 + (100000 >> 5) + (100000 >> 7) + (100000 >> 11) + 7 + 6;
        Path prog = Gcc.compile(dir, "zbound", """
                #include <stdio.h>
                #include <string.h>
                #include <unistd.h>
                #include <zlib.h>

                int main(void) {
                    alarm(120);
                    z_stream s;
                    memset(&s, 0, sizeof s);
                    if (deflateInit2(&s, 0, Z_DEFLATED, 15, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
                        puts("deflateInit2 failed");
                        return 1;
                    }
                    for (;;) {
                        printf("bound %lu\\n", deflateBound(&s, 100000));
                        fflush(stdout);
                        usleep(50000);
                    }
                }
                """, "-O2", "-lz");
        Path script = BuildProjects.file(dir, "pidns-apply-all.sh");
        Path out = Files.createDirectories(dir.resolve("run"));
        var command = new ArrayList<>(List.of("unshare", "--pid", "--fork", "--mount-proc", "bash", script.toString(),
                prog.toString(), patches.toString(), out.toString(), "bound " + before, "bound " + after));
        command.addAll(SutureProcess.command());
        var p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("ns.log").toFile()).start();
        try {
            assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the namespace run did not finish");
        } finally {
            p.destroyForcibly();            // the namespace's PID 1: its end kills every process in it
        }
        String steps = Files.readString(out.resolve("steps"));
        String apply = Files.readString(out.resolve("apply.txt"));
        assertEquals("apply 0\nrevert 0\ndone\n", steps, steps + apply + Files.readString(dir.resolve("ns.log")));
        assertTrue(apply.contains("summary: 2 applied"), apply);
        System.out.print("zlib1g live patch: " + apply);
        System.out.print(Files.readString(out.resolve("revert.txt")));

        List<String> a = Files.readAllLines(out.resolve("a.out"));
        assertEquals(List.of("bound " + before, "bound " + after, "bound " + before), runs(a), String.join("\n", a));
        List<String> b = Files.readAllLines(out.resolve("b.out"));
        assertEquals(List.of("bound " + before, "bound " + after), runs(b), String.join("\n", b));
    }

    /**
     * gzip 1.12-1 was built by Debian with an older gcc than bookworm's gcc-12: its rebuild does not load the same
     * bytes, the installed /bin/gzip has no symbols and exports no function, so the patch is refused (exit 3)
     * naming the differing functions.
     */
    @Test
    void packageThatDoesNotReproduceIsRefusedNamingWhatDiffers() throws Exception {
        assumeTrue(installedVersion("gzip").equals("1.12-1"),
                "assumes gzip 1.12-1 is installed (the diff is made for it, and it does not reproduce with gcc-12)");
        Path diff = BuildProjects.file(dir, "gzip-warning.diff");
        var build = Cli.run("build", "--deb", "gzip", "--diff", diff.toString(), "-o", dir.toString(),
                "--build-deps", "--add-deb-src");
        assertEquals(3, build.code(), build.out() + build.err());
        String err = build.err();
        assertTrue(err.contains("cannot locate the changed function warning (util.c)"), err);
        assertTrue(err.contains("does not load the same bytes"), err);
        assertTrue(err.matches("(?s).*\\n\\d+ of \\d+ functions of the rebuild differ from the deployed bytes at their"
                + " address: .*"), err);
        assertTrue(err.contains("the rebuild was made by GCC: (Debian 12"), err);
        System.out.println("gzip: " + err);
        try (var files = Files.list(dir)) {
            assertTrue(files.noneMatch(f -> f.toString().endsWith(".suture")), "no patch may be written");
        }
    }

    private static String installedVersion(String pkg) throws IOException {
        try {
            return Gcc.run(Path.of("/"), "dpkg-query", "-W", "-f", "${Version}", pkg).strip();
        } catch (AssertionError e) {
            return "";
        }
    }

    private static JsonNode only(JsonNode files, String path) {
        for (JsonNode f : files) {
            if (f.get("file").asText().equals(path)) {
                return f;
            }
        }
        throw new AssertionError("no result for " + path + " in " + files);
    }

    private static List<String> strings(JsonNode array) {
        var out = new ArrayList<String>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }

    /** The lines with each run of equal lines folded into one. */
    private static List<String> runs(List<String> lines) {
        var out = new ArrayList<String>();
        for (String l : lines) {
            if (out.isEmpty() || !out.getLast().equals(l)) {
                out.add(l);
            }
        }
        return out;
    }
}
