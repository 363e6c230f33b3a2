package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The launchers' {@code suture-client} (src/main/c/suture-client.c), built with the machine's gcc (warnings are
 * errors) and run as the launchers run it: the command line as arguments, the exit code the command's, 100 when
 * the command is to run in a JVM after all.
 */
public final class AgentClient {
    /** The client's exit code when the agent did not serve the command. */
    public static final int NOT_SERVED = 100;

    private final Path binary;

    private AgentClient(Path binary) {
        this.binary = binary;
    }

    /** Builds the client into {@code dir}. */
    public static AgentClient build(Path dir) throws IOException {
        Path source = Path.of("src/main/c/suture-client.c").toAbsolutePath();
        Path binary = dir.resolve("suture-client");
        Gcc.run(dir, "gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", binary.toString(), source.toString());
        return new AgentClient(binary);
    }

    /** The client's binary (mode 0755). */
    public Path binary() {
        return binary;
    }

    /** Runs the client with {@code env} added to its environment, bounded by a minute. */
    public SutureProcess.Result run(Map<String, String> env, String... args) throws IOException {
        var cmd = new ArrayList<>(List.of(binary.toString()));
        cmd.addAll(List.of(args));
        return SutureProcess.runProgram(binary.getParent(), Duration.ofMinutes(1), env, cmd);
    }
}
