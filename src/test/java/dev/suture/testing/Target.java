package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A program started for a test, detached from the test's JVM: it runs in its own session and is reparented away
 * from the JVM (the JVM's process reaper would otherwise swallow the ptrace stops of its own children). Its stdout
 * and stderr go to a file the test reads. {@link #close()} kills it; use it in try-with-resources.
 */
public final class Target implements AutoCloseable {
    private final long pid;
    private final Path output;

    private Target(long pid, Path output) {
        this.pid = pid;
        this.output = output;
    }

    /** Starts {@code exe args...} detached, with its output in {@code exe.out} (or {@code exe.N.out}). */
    public static Target start(Path exe, String... args) throws IOException {
        Path out = exe.resolveSibling(exe.getFileName() + ".out");
        // created here, atomically: two targets of one program started at once must not share a file
        for (int i = 1; !created(out); i++) {
            out = exe.resolveSibling(exe.getFileName() + "." + i + ".out");
        }
        var words = new ArrayList<String>();
        words.add(quote(exe.toString()));
        for (String a : args) {
            words.add(quote(a));
        }
        // sh forks setsid (which execs the program in a new session), prints its pid and exits: the program's
        // parent is gone, so it is reparented to init, not to this JVM.
        String script = "setsid " + String.join(" ", words) + " >" + quote(out.toString()) + " 2>&1 </dev/null & echo $!";
        var p = new ProcessBuilder("sh", "-c", script).directory(exe.getParent().toFile())
                .redirectErrorStream(true).start();
        try {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("could not start " + exe);
            }
            String pidText = new String(p.getInputStream().readAllBytes()).trim();
            return new Target(Long.parseLong(pidText), out);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    private static boolean created(Path file) throws IOException {
        try {
            Files.createFile(file);
            return true;
        } catch (java.nio.file.FileAlreadyExistsException e) {
            return false;
        }
    }

    private static String quote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    public long pid() {
        return pid;
    }

    public int pidInt() {
        return Math.toIntExact(pid);
    }

    public Path outputFile() {
        return output;
    }

    /** Everything the program has printed so far. */
    public String output() throws IOException {
        return Files.exists(output) ? Files.readString(output) : "";
    }

    public List<String> lines() throws IOException {
        return output().lines().toList();
    }

    /** Waits until the output has a line matching {@code line}; fails the test after {@code timeout}. */
    public String awaitLine(Predicate<String> line, Duration timeout) throws IOException {
        return awaitLine(line, timeout, 0);
    }

    /** Like {@link #awaitLine(Predicate, Duration)}, looking only at lines after the first {@code skip}. */
    public String awaitLine(Predicate<String> line, Duration timeout, int skip) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            var lines = lines();
            for (int i = skip; i < lines.size(); i++) {
                if (line.test(lines.get(i))) {
                    return lines.get(i);
                }
            }
            if (!alive()) {
                // it may have printed the line just before it exited, after the lines above were read
                var last = lines();
                for (int i = skip; i < last.size(); i++) {
                    if (line.test(last.get(i))) {
                        return last.get(i);
                    }
                }
                throw new AssertionError("pid " + pid + " exited; output:\n" + output());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no matching line after " + timeout + " from pid " + pid + "; output:\n"
                        + output());
            }
            sleep(10);
        }
    }

    /** Waits until the program has printed a line containing {@code text}. */
    public String awaitLine(String text, Duration timeout) throws IOException {
        return awaitLine(l -> l.contains(text), timeout);
    }

    /** True while the process exists and is not a zombie. */
    public boolean alive() {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException e) {
            return false;
        }
    }

    /** Sends a signal with kill(1). */
    public void signal(String name) throws IOException {
        Gcc.run(output.getParent(), "kill", "-" + name, Long.toString(pid));
    }

    /** Kills the program (SIGKILL) and waits, bounded, until it is gone. */
    @Override
    public void close() {
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (alive() && System.nanoTime() < deadline) {
            sleep(5);
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted");
        }
    }
}
