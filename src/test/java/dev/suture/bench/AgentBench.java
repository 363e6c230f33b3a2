package dev.suture.bench;

import dev.suture.live.Fixture;
import dev.suture.testing.Commands;
import dev.suture.testing.Target;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * Benchmark (not a unit test) of {@code suture agent} (docs/agent.md): (1) N new processes of a program whose patch
 * is in the store, one after another: how many printed the new code from their first call in main, and from the
 * agent's log the delay from the exec (the fanotify event) to the process running on with the patch (median and
 * worst); (2) the wall time of {@code ./suture apply} and {@code revert} through the agent's socket (the launcher
 * runs {@code suture-client}: no JVM starts), the time the agent's log gives for serving each, against a cold CLI
 * ({@code SUTURE_NO_AGENT=1}) and against the JVM start alone ({@code ./suture --version}).
 *
 * <p>Run: {@code bench/agent.sh [N [repetitions]]} (default 100 and 10). Prints numbers; no assertions.
 */
public final class AgentBench {
    static final String ONE_SHOT = """
            #include <stdio.h>
            #include <unistd.h>

            int version(void) { return 1; }

            int main(void) {
                alarm(120);
                printf("first %d\\n", version());
                return 0;
            }
            """;
    static final String LONG = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int tick(int x) { return x + 1; }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("tick %d\\n", tick(1));
                    struct timespec t = {0, 100000000L};
                    nanosleep(&t, 0);
                }
            }
            """;
    private static final Pattern HELD = Pattern.compile(
            "pid (\\d+) \\(.*\\): new process patched before main .*ran on ([0-9.]+) ms after it");
    private static final Pattern LATE = Pattern.compile(
            "pid (\\d+) \\(.*\\): patched in the normal window ([0-9.]+) ms after");

    private AgentBench() {}

    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 100;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        Path root = Path.of(System.getProperty("suture.root", ".")).toAbsolutePath();
        Path dir = Files.createTempDirectory("agent-bench");
        Path store = Files.createDirectories(dir.resolve("store"));
        Path run = dir.resolve("run");
        Path log = dir.resolve("agent.log");
        var oneShot = Fixture.program(dir.resolve("one"), "oneshot", ONE_SHOT, ONE_SHOT.replace("return 1;",
                "return 2;"), "bench-exec", true);
        var longRunning = Fixture.program(dir.resolve("long"), "longrun", LONG, LONG.replace("x + 1", "x + 2"),
                "bench-apply", true);
        var pb = new ProcessBuilder(root.resolve("suture").toString(), "agent", "--store", store.toString())
                .redirectOutput(log.toFile()).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.environment().put("SUTURE_RUN_DIR", run.toString());
        Process agent = pb.start();
        try {
            await(log, "every process is at the store's state (start)");
            Files.copy(oneShot.patchFile(), dir.resolve("p.tmp"));
            Files.move(dir.resolve("p.tmp"), store.resolve(oneShot.patch().targetBuildId() + ".suture"),
                    StandardCopyOption.ATOMIC_MOVE);
            await(log, "every process is at the store's state (store change)");
            exec(n, oneShot.exe(), log);
            apply(root, run, longRunning, reps, log);
        } finally {
            agent.destroyForcibly();
            agent.waitFor();
        }
    }

    private static void exec(int n, Path exe, Path log) throws Exception {
        int newCode = 0;
        var pids = new ArrayList<Long>();
        for (int i = 0; i < n; i++) {
            try (var t = Target.start(exe)) {
                String first = t.awaitLine(l -> l.startsWith("first"), Duration.ofSeconds(30));
                if (first.equals("first 2")) {
                    newCode++;
                }
                pids.add(t.pid());
            }
        }
        Fixture.sleep(500);
        var held = new ArrayList<Double>();
        var late = new ArrayList<Double>();
        for (String line : Files.readAllLines(log)) {
            var m = HELD.matcher(line);
            if (m.find() && pids.contains(Long.parseLong(m.group(1)))) {
                held.add(Double.parseDouble(m.group(2)));
            }
            var l = LATE.matcher(line);
            if (l.find() && pids.contains(Long.parseLong(l.group(1)))) {
                late.add(Double.parseDouble(l.group(2)));
            }
        }
        System.out.printf(Locale.ROOT, "new processes: %d; printed the new code from their first call in main: %d"
                + " (%.0f%%)%n", n, newCode, 100.0 * newCode / n);
        System.out.printf(Locale.ROOT, "held at the entry point and patched before main: %d; delay exec -> running"
                + " on patched: %s%n", held.size(), stats(held));
        System.out.printf(Locale.ROOT, "lost the hold, patched in the normal window: %d; delay: %s%n", late.size(),
                stats(late));
    }

    private static final Pattern SERVED = Pattern.compile("served a request from \\S+ on the socket in ([0-9.]+) ms");

    private static void apply(Path root, Path run, Fixture.Built built, int reps, Path log) throws Exception {
        long logged = Files.readAllLines(log).size();
        try (var t = Target.start(built.exe())) {
            t.awaitLine(l -> l.startsWith("tick"), Duration.ofSeconds(30));
            var floor = new ArrayList<Double>();
            var viaAgent = new ArrayList<Double>();
            var cold = new ArrayList<Double>();
            var revertAgent = new ArrayList<Double>();
            var revertCold = new ArrayList<Double>();
            String pid = Long.toString(t.pid());
            for (int i = 0; i < reps; i++) {
                floor.add(time(root, run, false, "--version"));
                viaAgent.add(time(root, run, false, "apply", "-p", pid, built.patchFile().toString()));
                revertAgent.add(time(root, run, false, "revert", "-p", pid, "bench-apply"));
                cold.add(time(root, run, true, "apply", "-p", pid, built.patchFile().toString()));
                revertCold.add(time(root, run, true, "revert", "-p", pid, "bench-apply"));
            }
            var servedApply = new ArrayList<Double>();
            var servedRevert = new ArrayList<Double>();
            for (String line : Files.readAllLines(log).stream().skip(logged).toList()) {
                var m = SERVED.matcher(line);
                if (m.find()) {
                    (servedApply.size() == servedRevert.size() ? servedApply : servedRevert)
                            .add(Double.parseDouble(m.group(1)));
                }
            }
            System.out.printf("wall time of ./suture, %d runs each (ms):%n", reps);
            System.out.println("  --version (JVM start, no work):  " + stats(floor));
            System.out.println("  apply through the agent:          " + stats(viaAgent));
            System.out.println("  apply served inside the agent:    " + stats(servedApply));
            System.out.println("  apply, cold CLI (SUTURE_NO_AGENT): " + stats(cold));
            System.out.println("  revert through the agent:         " + stats(revertAgent));
            System.out.println("  revert served inside the agent:   " + stats(servedRevert));
            System.out.println("  revert, cold CLI:                  " + stats(revertCold));
        }
    }

    private static double time(Path root, Path run, boolean cold, String... args) throws Exception {
        var cmd = new ArrayList<>(List.of("env", "SUTURE_RUN_DIR=" + run));
        if (cold) {
            cmd.add("SUTURE_NO_AGENT=1");
        }
        cmd.add(root.resolve("suture").toString());
        cmd.addAll(List.of(args));
        long t0 = System.nanoTime();
        var r = Commands.run(root, Duration.ofSeconds(60), cmd);
        double ms = (System.nanoTime() - t0) / 1e6;
        if (r.status() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed: " + r.output());
        }
        return ms;
    }

    private static String stats(List<Double> values) {
        if (values.isEmpty()) {
            return "none";
        }
        var s = values.stream().sorted().toList();
        return String.format(Locale.ROOT, "median %.1f, best %.1f, worst %.1f", s.get(s.size() / 2), s.getFirst(),
                s.getLast());
    }

    private static void await(Path log, String text) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        while (!Files.exists(log) || !Files.readString(log).contains(text)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("the agent did not log '" + text + "':\n" + Files.readString(log));
            }
            Fixture.sleep(20);
        }
    }
}
