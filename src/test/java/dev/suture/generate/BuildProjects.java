package dev.suture.generate;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** The test projects of the build tests, copied out of the test resources into a scratch directory. */
final class BuildProjects {
    private BuildProjects() {}

    static final List<String> MULTI_FILES = List.of("Makefile", "add.c", "mul.c", "unused.c", "greet.c", "fmt.c",
            "util.c", "main.c", "tool.c");

    /** The multi-file make project (static library, shared library, two executables) in {@code dir/multi}. */
    static Path multi(Path dir) throws IOException {
        Path project = dir.resolve("multi");
        Files.createDirectories(project);
        for (String f : MULTI_FILES) {
            Files.write(project.resolve(f), resource("multi/" + f));
        }
        return project;
    }

    /** A resource of this package written to {@code dir/name}. */
    static Path file(Path dir, String resource) throws IOException {
        Path out = dir.resolve(Path.of(resource).getFileName());
        Files.write(out, resource(resource));
        return out;
    }

    static byte[] resource(String name) throws IOException {
        try (InputStream in = BuildProjects.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IOException("missing test resource " + name);
            }
            return in.readAllBytes();
        }
    }

    static SourceBuild.Request request(Path src, List<Path> diffs, String make, String... targets) {
        return new SourceBuild.Request(src, diffs, 1, make,
                java.util.Arrays.stream(targets).map(SourceBuild.Target::parse).toList(),
                src.getParent().resolve("out"), false, false, false, Duration.ofMinutes(3));
    }
}
