package dev.suture.testing;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs the suture command line in a JVM of its own (the classes under test, not the jar), for what cannot
 * happen in the test's JVM: suture killing itself (fault injection) or two sutures racing for one process.
 */
public final class SutureProcess implements AutoCloseable {
    private final Process process;
    private final Path out;
    private final Path err;

    private SutureProcess(Process process, Path out, Path err) {
        this.process = process;
        this.out = out;
        this.err = err;
    }

    /** How a run ended: its exit status (128 + signal when killed) and what it printed. */
    public record Result(int status, String out, String err) {
        public boolean killed() {
            return status == 128 + 9;
        }

        @Override
        public String toString() {
            return "exit " + status + "\nstdout:\n" + out + "\nstderr:\n" + err;
        }
    }

    /** Starts suture with {@code env} added to its environment; its output goes to files in {@code dir}. */
    public static SutureProcess start(Path dir, Map<String, String> env, String... args) throws IOException {
        return startProgram(dir, env, command(args));
    }

    /** Starts {@code cmd}, a program of suture's own (the launchers' suture-client), the same way. */
    public static SutureProcess startProgram(Path dir, Map<String, String> env, List<String> cmd)
            throws IOException {
        Path out = Files.createTempFile(dir, "suture", ".out");
        Path err = Files.createTempFile(dir, "suture", ".err");
        var pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.environment().putAll(env);
        return new SutureProcess(pb.start(), out, err);
    }

    /** Runs suture to its end, bounded by {@code timeout}. */
    public static Result run(Path dir, Duration timeout, Map<String, String> env, String... args) throws IOException {
        try (var p = start(dir, env, args)) {
            return p.await(timeout);
        }
    }

    /** Runs {@code cmd} (see {@link #startProgram}) to its end, bounded by {@code timeout}. */
    public static Result runProgram(Path dir, Duration timeout, Map<String, String> env, List<String> cmd)
            throws IOException {
        try (var p = startProgram(dir, env, cmd)) {
            return p.await(timeout);
        }
    }

    public long pid() {
        return process.pid();
    }

    /** Waits for the end (killed and failed past {@code timeout}) and collects what it printed. */
    public Result await(Duration timeout) throws IOException {
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError("suture did not finish within " + timeout + "; stderr so far:\n"
                        + Files.readString(err));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
        return new Result(process.exitValue(), Files.readString(out), Files.readString(err));
    }

    @Override
    public void close() throws IOException {
        if (process.isAlive()) {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
    }

    /** The command line that runs {@code dev.suture.cli.Main} with {@code args} on the test's class path. */
    public static List<String> command(String... args) {
        String java = ProcessHandle.current().info().command().orElse("java");
        var cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-cp", classPath(), "dev.suture.cli.Main"));
        cmd.addAll(List.of(args));
        return cmd;
    }

    private static String classPath() {
        String cp = System.getProperty("surefire.test.class.path");
        return cp == null || cp.isBlank() ? System.getProperty("java.class.path") : cp;
    }
}
