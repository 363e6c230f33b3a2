package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs a tool whose exit status the test judges itself (readelf warns with status 1, gdb...), bounded in time. */
public final class Commands {
    private Commands() {}

    /** What a finished command printed (stdout and stderr merged) and its exit status. */
    public record Result(int status, String output) {}

    public static Result run(Path dir, Duration timeout, List<String> cmd) throws IOException {
        Path log = Files.createTempFile("suture-cmd", ".log");
        try {
            var p = new ProcessBuilder(cmd).directory(dir.toFile())
                    .redirectErrorStream(true).redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                throw new AssertionError("timed out after " + timeout + ": " + String.join(" ", cmd));
            }
            return new Result(p.exitValue(), Files.readString(log));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        } finally {
            Files.deleteIfExists(log);
        }
    }

    public static Result run(Path dir, Duration timeout, String... cmd) throws IOException {
        return run(dir, timeout, List.of(cmd));
    }
}
