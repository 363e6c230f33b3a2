package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code suture build} on a real project: Debian bookworm's zlib (fetched with {@code apt-get source} by
 * bench/debian-source.sh into target/debian-src, never committed), configured and built by its own scripts, with
 * a diff mirroring an upstream zlib fix (see the header of zlib-deflatebound.diff). Slow: run with
 * {@code ./run-tests -o -Dgroups=slow -Dtest=RealProjectTest}.
 */
@Tag("slow")
class RealProjectTest {

    @TempDir
    Path dir;

    @Test
    void zlibDeflateBoundFix() throws IOException {
        Path src = zlibSource();
        Path diff = BuildProjects.file(dir, "zlib-deflatebound.diff");
        // The deployed build: the project's own configure and make in another copy, without the wrapper.
        Path deployed = dir.resolve("deployed");
        var copy = ExternalCommand.run(List.of("cp", "-a", src.toString(), deployed.toString()), dir, null,
                dir.resolve("cp.log"), Duration.ofMinutes(2));
        assertTrue(copy.ok(), copy.tail(20));
        var built = ExternalCommand.run(List.of("/bin/sh", "-c", "./configure && make"), deployed, null,
                dir.resolve("deployed.log"), Duration.ofMinutes(20));
        assertTrue(built.ok(), built.tail(30));

        Path work = Files.createDirectories(dir.resolve("work"));
        var request = new SourceBuild.Request(src, List.of(diff), 1, "./configure && make",
                List.of(SourceBuild.Target.parse("libz.so.1.2.13=" + deployed.resolve("libz.so.1.2.13")),
                        SourceBuild.Target.parse("minigzip=" + deployed.resolve("minigzip")),
                        SourceBuild.Target.parse("example")),
                dir.resolve("out"), false, false, false, Duration.ofMinutes(20));
        var prepared = SourceBuild.prepare(request, work);

        var so = prepared.targets().get(0);
        assertEquals(List.of("tree:deflate.lo"), so.changed(), so.toString());
        assertTrue(so.original().size() >= 15, so.toString());
        var minigzip = prepared.targets().get(1);
        assertEquals(List.of("tree:deflate.o"), minigzip.changed(), minigzip.toString());
        var example = prepared.targets().get(2);
        assertEquals(List.of("tree:deflate.o"), example.changed(), example.toString());

        var result = SourceBuild.diff(request, prepared);
        System.out.printf("zlib: copies and patch %d ms, both builds %d ms, diff of 3 targets %d ms%n",
                result.copyTime().toMillis(), result.buildTime().toMillis(), result.diffTime().toMillis());
        for (var t : result.targets()) {
            assertEquals(List.of("deflateBound"), t.diff().replaced(), t.toString());
            assertEquals(List.of(), t.diff().added(), t.toString());
            assertTrue(Files.isRegularFile(t.diff().patchFile()), t.toString());
        }
    }

    /** The unpacked zlib source, fetched once per checkout. */
    static Path zlibSource() throws IOException {
        Path root = Path.of("").toAbsolutePath();
        Path cache = root.resolve("target/debian-src");
        String out = Gcc.run(root, root.resolve("bench/debian-source.sh").toString(), "zlib", cache.toString());
        List<String> lines = out.lines().filter(l -> l.startsWith("/")).toList();
        Path src = Path.of(lines.getLast());
        assertTrue(Files.isRegularFile(src.resolve("deflate.c")), "no zlib source in " + src + ":\n" + out);
        return src;
    }
}
