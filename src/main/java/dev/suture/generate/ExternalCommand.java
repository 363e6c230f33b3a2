package dev.suture.generate;

import dev.suture.SutureException.Kind;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs one external tool (cp, patch, the build) with its output in a log file and a bounded wait. */
final class ExternalCommand {

    /** How a command ended; {@code timedOut} commands were killed with their children. */
    record Outcome(int exitCode, boolean timedOut, Path log) {
        boolean ok() {
            return exitCode == 0 && !timedOut;
        }

        /** The last {@code n} lines of the log, for a message. */
        String tail(int n) {
            try {
                String text = new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
                List<String> lines = text.lines().toList();
                return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
            } catch (IOException e) {
                return "(log " + log + " unreadable: " + e.getMessage() + ")";
            }
        }
    }

    private ExternalCommand() {}

    /**
     * Runs {@code command} in {@code dir} with stdin from /dev/null and stdout+stderr into {@code log}. An
     * {@code environment} of null inherits suture's own.
     */
    static Outcome run(List<String> command, Path dir, Map<String, String> environment, Path log, Duration timeout) {
        var pb = new ProcessBuilder(command).directory(dir.toFile())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        if (environment != null) {
            pb.environment().clear();
            pb.environment().putAll(environment);
        }
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new SourceBuildException(Kind.BAD_INPUT,
                    "cannot run " + command.getFirst() + ": " + e.getMessage() + " (is it installed and on PATH?)", e);
        }
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                kill(p);
                return new Outcome(-1, true, log);
            }
            return new Outcome(p.exitValue(), false, log);
        } catch (InterruptedException e) {
            kill(p);
            Thread.currentThread().interrupt();
            throw new SourceBuildException(Kind.INTERNAL, "interrupted while running " + String.join(" ", command), e);
        }
    }

    /** Kills the process and everything it started (make's compilers), children first. */
    private static void kill(Process p) {
        p.descendants().toList().reversed().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        try {
            p.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Runs a short tool and returns its output, or throws with the output when it fails. */
    static String check(List<String> command, Path dir, Path log, Duration timeout, String what) {
        Outcome o = run(command, dir, null, log, timeout);
        if (!o.ok()) {
            throw new SourceBuildException(Kind.INTERNAL, what + " failed"
                    + (o.timedOut() ? " (timed out)" : " (exit " + o.exitCode() + ")") + ":\n" + o.tail(30));
        }
        try {
            return Files.readString(log);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
