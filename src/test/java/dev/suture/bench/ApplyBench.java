package dev.suture.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.build.DiffRequest;
import dev.suture.build.Differ;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Benchmark (not a unit test) of {@code suture apply}: on targets with 1, 8, 32 and 128 threads, the pause of a
 * one-function apply as the tool reports it (its stop-the-world window) and as the target sees it (the longest
 * stall its main thread measured during the whole apply), the wall time of the whole {@code ./suture apply}
 * command, and the noise: the same stall measured over the same duration with no apply.
 *
 * <p>The target's main thread loops on a 50 µs nanosleep and clock_gettime, keeping its longest gap, and prints
 * it (and starts over) on SIGUSR1; the other threads sleep in 5 ms nanosleeps. Every target calls alarm(120).
 * Run: {@code bench/apply.sh [repetitions]} (default 3). Prints one table; no assertions.
 */
public final class ApplyBench {
    private static final String TARGET = """
            #include <pthread.h>
            #include <signal.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <time.h>
            #include <unistd.h>

            static volatile sig_atomic_t report;
            static void on_usr1(int sig) { report = sig; }
            static long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }
            static void nap(long ns) { struct timespec t = {0, ns}; nanosleep(&t, 0); }

            int tick(int x) {
                return x + 1;
            }

            static void *sleeper(void *arg) {
                for (;;)
                    nap(5000000);
                return arg;
            }

            int main(int argc, char **argv) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                struct sigaction sa = {0};
                sa.sa_handler = on_usr1;
                sa.sa_flags = SA_RESTART;
                sigaction(SIGUSR1, &sa, 0);
                int n = atoi(argv[1]);
                pthread_t t;
                for (int i = 1; i < n; i++)
                    pthread_create(&t, 0, sleeper, 0);
                int v = 0;
                long max = 0, last = now();
                printf("ready\\n");
                for (;;) {
                    nap(50000);
                    v = tick(v);
                    long t = now();
                    if (t - last > max)
                        max = t - last;
                    last = t;
                    if (report) {
                        report = 0;
                        printf("stall %ld tick %d\\n", max, v);
                        max = 0;
                        last = now();
                    }
                }
            }
            """;

    private static final int[] THREADS = {1, 8, 32, 128};
    private static final Duration WAIT = Duration.ofSeconds(30);

    private ApplyBench() {}

    record Row(int threads, List<Double> toolMs, List<Double> stallMs, List<Double> noiseMs, List<Double> wallMs) {}

    public static void main(String[] args) throws Exception {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        Path root = Path.of(System.getProperty("suture.root", ".")).toAbsolutePath();
        Path suture = root.resolve("suture");
        Path dir = Files.createTempDirectory("apply-bench");
        Path orig = compile(dir, "orig", TARGET);
        Path patched = compile(dir, "patched", TARGET.replace("return x + 1;", "return x + 2;"));
        Path exe = dir.resolve("target");
        Gcc.run(dir, "gcc", "-pthread", "-no-pie", "-o", exe.toString(), orig.toString());
        Path patch = dir.resolve("tick.suture");
        Differ.diff(new DiffRequest(exe, List.of(orig), List.of(patched), "bench-tick", false), patch);
        Commands.run(root, WAIT, suture.toString(), "--help"); // builds the jar and its AOT cache once

        var rows = new ArrayList<Row>();
        for (int n : THREADS) {
            var row = new Row(n, new ArrayList<>(), new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
            try (var t = Target.start(exe, Integer.toString(n))) {
                t.awaitLine("ready", WAIT);
                for (int rep = 0; rep < reps; rep++) {
                    stall(t); // starts a fresh measurement
                    long start = System.nanoTime();
                    var r = Commands.run(root, WAIT, suture.toString(), "apply", "-p", Long.toString(t.pid()),
                            "--json", patch.toString());
                    long wall = System.nanoTime() - start;
                    double seen = stall(t);
                    if (r.status() != 0) {
                        throw new AssertionError("apply failed: " + r.output());
                    }
                    String json = r.output().substring(r.output().indexOf('{'), r.output().lastIndexOf('}') + 1);
                    double pause = new ObjectMapper().readTree(json).get("results").get(0).get("pauseMicros")
                            .asDouble() / 1000;
                    var rv = Commands.run(root, WAIT, suture.toString(), "revert", "-p", Long.toString(t.pid()),
                            "bench-tick");
                    if (rv.status() != 0) {
                        throw new AssertionError("revert failed: " + rv.output());
                    }
                    stall(t);
                    sleepNanos(wall);
                    double noise = stall(t);
                    row.toolMs().add(pause);
                    row.stallMs().add(seen);
                    row.noiseMs().add(noise);
                    row.wallMs().add(wall / 1e6);
                    System.err.printf(Locale.ROOT, "threads %d rep %d: pause %.3f ms, stall %.3f ms, noise %.3f ms,"
                            + " wall %.0f ms%n", n, rep, pause, seen, noise, wall / 1e6);
                }
            }
            rows.add(row);
        }
        System.out.println("one-function apply, " + reps + " repetitions each: median (max), ms");
        System.out.printf("%-8s %-20s %-20s %-20s %-20s%n", "threads", "pause (tool)", "stall (target)",
                "noise (no apply)", "apply wall");
        for (var r : rows) {
            System.out.printf("%-8d %-20s %-20s %-20s %-20s%n", r.threads(), cell(r.toolMs()), cell(r.stallMs()),
                    cell(r.noiseMs()), cell(r.wallMs()));
        }
    }

    private static Path compile(Path dir, String variant, String source) throws IOException {
        Path d = Files.createDirectories(dir.resolve(variant));
        Files.writeString(d.resolve("target.c"), source);
        Gcc.run(d, "gcc", "-g", "-O0", "-pthread", "-fno-pie", "-ffunction-sections", "-fdata-sections", "-c",
                "target.c", "-o", "target.o");
        return d.resolve("target.o");
    }

    /** Asks the target for its longest stall since the last request (ms) and starts a new measurement. */
    private static double stall(Target t) throws IOException {
        int skip = t.lines().size();
        t.signal("USR1");
        String line = t.awaitLine(l -> l.startsWith("stall "), WAIT, skip);
        return Long.parseLong(line.split(" ")[1]) / 1e6;
    }

    private static String cell(List<Double> values) {
        var sorted = values.stream().sorted().toList();
        return String.format(Locale.ROOT, "%.3f (%.3f)", sorted.get(sorted.size() / 2), sorted.getLast());
    }

    private static void sleepNanos(long nanos) throws InterruptedException {
        Thread.sleep(Duration.ofNanos(nanos));
    }
}
