package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Compiles C sources with the machine's gcc for tests; a failed compile fails the test with gcc's message. */
public final class Gcc {
    private Gcc() {}

    /** Writes {@code source} to {@code dir/name.c} and compiles it to {@code dir/name} with the given flags. */
    public static Path compile(Path dir, String name, String source, String... flags) throws IOException {
        Path src = dir.resolve(name + ".c");
        Files.writeString(src, source);
        Path out = dir.resolve(name);
        var cmd = new ArrayList<>(List.of("gcc", "-g"));
        cmd.addAll(List.of(flags));
        cmd.addAll(List.of("-o", out.toString(), src.toString()));
        run(dir, cmd);
        return out;
    }

    /** Runs a tool (gcc, ld, readelf...) in {@code dir}, bounded to two minutes, and returns its stdout. */
    public static String run(Path dir, List<String> cmd) throws IOException {
        Path log = Files.createTempFile("suture-tool", ".log");
        try {
            var p = new ProcessBuilder(cmd).directory(dir.toFile())
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(2, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new AssertionError("timed out: " + String.join(" ", cmd));
            }
            String output = Files.readString(log);
            if (p.exitValue() != 0) {
                throw new AssertionError("failed (" + p.exitValue() + "): " + String.join(" ", cmd) + "\n" + output);
            }
            return output;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        } finally {
            Files.deleteIfExists(log);
        }
    }

    public static String run(Path dir, String... cmd) throws IOException {
        return run(dir, List.of(cmd));
    }
}
