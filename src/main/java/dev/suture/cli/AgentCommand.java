package dev.suture.cli;

import dev.suture.agent.Agent;
import dev.suture.live.PatchStore;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code suture agent}: the long-running service that keeps the patch store applied. */
@Command(name = "agent", header = "Keeps the patch store applied to every process, new ones too.",
        mixinStandardHelpOptions = true,
        description = {"Keeps the patch store applied (docs/agent.md): on start, finishes what a killed suture left",
                "(recover), then patches every running process that maps a module the store has a patch for and",
                "reverts patches that left the store; then acts on every change of the store (inotify), holds each",
                "new process of a patched executable at its entry point until it is patched (fanotify, ptrace), and",
                "holds a thread that loads a patched library until it is patched (before dlopen returns). Nothing",
                "stays traced between transactions. Logs what it does on standard output. Runs until killed; the",
                "systemd unit dist/systemd/suture-agent.service runs it as a service. With --json each log line is",
                "a JSON object {\"time\", \"message\"}.",
                "",
                "The store must belong to root and be writable by no one else (else exit 5). With --trust (or the",
                "configured trust directory, as for apply) only patches signed by a trusted key are acted on."})
public final class AgentCommand implements Callable<Integer> {
    @Option(names = "--store", paramLabel = "DIR", description = "The patch store (default: ${DEFAULT-VALUE}).")
    Path store = PatchStore.DEFAULT;

    @Option(names = "--trust", paramLabel = "DIR",
            description = "A directory of trusted public keys; only patches signed by one are acted on. Repeatable.")
    List<Path> trust;

    @Option(names = "--rescan", paramLabel = "TIME", defaultValue = "10s", converter = Durations.Millis.class,
            description = {"How often every process is looked at again (default: ${DEFAULT-VALUE}; at least 100ms).",
                    "A time takes a unit (500ms, 10s, 2m); a plain number is milliseconds."})
    Duration rescan;

    @Mixin
    BusyTimeout timeout;

    @Mixin
    MaxPause maxPause;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        var keys = TrustSources.load(trust).orElse(null);
        Agent.start(new Agent.Config(store.toAbsolutePath().normalize(), keys, timeout.duration(),
                maxPause.duration(), rescan.compareTo(Duration.ofMillis(100)) < 0 ? Duration.ofMillis(100) : rescan, this::log, ViaAgent::serve));
        Thread.currentThread().join(); // the agent's threads do the work until the JVM is killed
        return ExitCodes.OK;
    }

    /** One line of the agent's log: text ("suture-agent: ..."), or with --json one JSON object a line. */
    private synchronized void log(String message) {
        if (json.enabled()) {
            try {
                System.out.println(LINE.writeValueAsString(java.util.Map.of("time", java.time.Instant.now().toString(),
                        "message", message)));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                System.out.println("suture-agent: " + message);
            }
        } else {
            System.out.println("suture-agent: " + message);
        }
        System.out.flush();
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper LINE =
            new com.fasterxml.jackson.databind.ObjectMapper();
}
