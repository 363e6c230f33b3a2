package dev.suture.agent;

import dev.suture.live.Fixture;
import dev.suture.testing.SutureProcess;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Map;

/**
 * A {@code suture agent} started detached for a test (its own JVM, its own run directory), and what the tests do
 * around it: put a patch into the store, take it out, run {@code suture status}.
 */
final class AgentRun implements AutoCloseable {
    final Path store;
    final Path runDir;
    final Path dir;
    private SutureProcess agent;

    AgentRun(Path dir) throws IOException {
        this.dir = dir;
        this.store = Files.createDirectories(dir.resolve("store"));
        this.runDir = dir.resolve("run");
    }

    Map<String, String> env() {
        return Map.of("SUTURE_RUN_DIR", runDir.toString());
    }

    /** Starts the agent and waits until its first pass over the processes is done. */
    AgentRun start(String... more) throws IOException {
        var args = new java.util.ArrayList<>(java.util.List.of("agent", "--store", store.toString(), "--rescan",
                "2000"));
        args.addAll(java.util.List.of(more));
        agent = SutureProcess.start(dir, env(), args.toArray(String[]::new));
        awaitLog("every process is at the store's state (start)");
        return this;
    }

    long pid() {
        return agent.pid();
    }

    /** The agent's standard output so far. */
    String log() throws IOException {
        try (var files = Files.list(dir)) {
            for (Path p : files.filter(f -> f.getFileName().toString().startsWith("suture")
                    && f.getFileName().toString().endsWith(".out")).toList()) {
                String text = Files.readString(p);
                // the text log's first line, or the --json log's first object
                if (agent != null && text.contains("starting (pid " + agent.pid() + ",")) {
                    return text;
                }
            }
        }
        return "";
    }

    void awaitLog(String text) throws IOException {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!log().contains(text)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the agent did not log '" + text + "'; its log:\n" + log());
            }
            Fixture.sleep(20);
        }
    }

    /** Kills the agent (SIGKILL) and waits for it to be gone. */
    void kill() throws IOException {
        if (agent != null) {
            agent.close();
            agent = null;
        }
    }

    /** Puts {@code patch} into the store as {@code <build-id>.suture}, in one rename. */
    Path add(Path patch, String buildId) throws IOException {
        Path tmp = dir.resolve(buildId + ".tmp");
        Files.copy(patch, tmp, StandardCopyOption.REPLACE_EXISTING);
        return Files.move(tmp, store.resolve(buildId + ".suture"), StandardCopyOption.ATOMIC_MOVE);
    }

    SutureProcess.Result status(String... more) throws IOException {
        var args = new java.util.ArrayList<>(java.util.List.of("status", "--store", store.toString()));
        args.addAll(java.util.List.of(more));
        return SutureProcess.run(dir, Duration.ofSeconds(60), env(), args.toArray(String[]::new));
    }

    @Override
    public void close() throws IOException {
        kill();
    }
}
