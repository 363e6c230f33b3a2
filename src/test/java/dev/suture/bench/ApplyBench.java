package dev.suture.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.List;
import java.util.Locale;

/**
 * Benchmark (not a unit test) of {@code suture apply}: on targets with 1, 8, 32 and 128 threads, the pause of a
 * one-function apply as the tool reports it (its stop-the-world window) and as the target sees it: the longest
 * stall its main thread measured inside the window, and during the whole apply (which also holds threads to
 * run mmap inside the target and to detach). Also the wall time of the whole {@code ./suture apply} command, and
 * the noise: the longest stall measured over as long again with no apply.
 *
 * <p>The target's main thread spins on clock_gettime (calling the patched {@code tick} every 50 µs) and records
 * every gap over 0.1 ms with its CLOCK_MONOTONIC span; on SIGUSR1 it prints them and its longest gap, and starts
 * over. It spins so that a gap is the stall itself: a loop on a 50 µs nanosleep, as it was first, went round
 * every 150 µs on this project's 2-core VM (the default 50 µs timer slack, then the wakeup), and a stall read
 * through it looked up to that much longer (the stall inside a 0.28 ms window read 0.39 ms). The other
 * threads sleep in 5 ms nanosleeps. The target calls alarm(120) at start and again on each SIGUSR1. suture runs
 * with SUTURE_DEBUG set, so it lists each span it held threads (System.nanoTime is CLOCK_MONOTONIC too): each
 * is printed per repetition with the target's longest gap overlapping it.
 *
 * <p>Run: {@code bench/apply.sh [repetitions [threads,...]]} (default 3 and 1,8,32,128); with
 * {@code SUTURE_BENCH_ROOTS=dirA,dirB} it compares two builds, interleaved. Prints a table per build; no
 * assertions. {@code SUTURE_BENCH_PATCH} picks the fix: {@code simple} (the default, {@code x + 2}), {@code far}
 * (the fix also reads libc's {@code environ}, which the program never referenced: a far-access thunk, see
 * docs/patch-format.md 5.1) or {@code ifunc} (the fix calls an IFUNC of a library of the target that nothing
 * resolved yet: its resolver runs in the target on every apply, docs/apply.md).
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
                static long gaps[4096][2];
                long max = 0, last = now(), next = last, ngaps = 0;
                printf("ready\\n");
                for (;;) {
                    long t = now();
                    if (t >= next) {
                        v = tick(v);
                        next = t + 50000;
                    }
                    if (t - last > max)
                        max = t - last;
                    if (t - last > 100000) { /* the latest 4096 gaps over 0.1 ms */
                        gaps[ngaps % 4096][0] = last;
                        gaps[ngaps++ % 4096][1] = t;
                    }
                    last = t;
                    if (report) {
                        report = 0;
                        alarm(120); /* 120 s after the harness last asked, not after start: runs can be long */
                        for (long i = ngaps > 4096 ? ngaps - 4096 : 0; i < ngaps; i++)
                            printf("gap %ld %ld\\n", gaps[i % 4096][0], gaps[i % 4096][1]);
                        printf("stall %ld tick %d\\n", max, v);
                        max = 0;
                        ngaps = 0;
                        last = now();
                    }
                }
            }
            """;

    /** A library with an IFUNC the target never calls (linked with --no-as-needed: loaded all the same). */
    private static final String IFUNC_LIBRARY = """
            static int plus_one(int x) { return x + 1; }
            static void *resolve(void) { __builtin_cpu_init(); return plus_one; }
            int bench_ifunc(int x) __attribute__((ifunc("resolve")));
            """;

    private static final int[] THREADS = {1, 8, 32, 128};
    private static final Duration WAIT = Duration.ofSeconds(30);

    private ApplyBench() {}

    /** One build of suture (its checkout's root) and what it measured, per thread count. */
    record Build(Path root, Map<Integer, Row> rows) {}

    record Row(List<Double> toolMs, List<Double> windowStallMs, List<Double> holdStallMs, List<Double> stallMs,
               List<Double> noiseMs, List<Double> wallMs) {}

    public static void main(String[] args) throws Exception {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        int[] threads = args.length > 1 ? Arrays.stream(args[1].split(",")).mapToInt(Integer::parseInt).toArray()
                : THREADS;
        var builds = new ArrayList<Build>();
        for (String r : System.getProperty("suture.root", ".").split(",")) {
            builds.add(new Build(Path.of(r).toAbsolutePath(), new LinkedHashMap<>()));
        }
        Path dir = Files.createTempDirectory("apply-bench");
        String kind = System.getProperty("suture.bench.patch", "simple");
        String fix = switch (kind) {
            case "simple" -> "return x + 2;";
            case "far" -> "extern char **environ; return x + 1 + (environ != 0);";
            case "ifunc" -> "extern int bench_ifunc(int); return bench_ifunc(x) + 1;";
            default -> throw new IllegalArgumentException("SUTURE_BENCH_PATCH: simple, far or ifunc, not " + kind);
        };
        Path orig = compile(dir, "orig", TARGET);
        Path patched = compile(dir, "patched", TARGET.replace("return x + 1;", fix));
        Path exe = dir.resolve("target");
        Files.writeString(dir.resolve("ifunc.c"), IFUNC_LIBRARY);
        Gcc.run(dir, "gcc", "-O2", "-fPIC", "-shared", "-o", "libbenchifunc.so", "ifunc.c");
        Gcc.run(dir, "gcc", "-pthread", "-no-pie", "-o", exe.toString(), orig.toString(), "-L" + dir,
                "-Wl,--no-as-needed", "-lbenchifunc", "-Wl,-rpath," + dir);
        Path patch = dir.resolve("tick.suture");
        Differ.diff(DiffRequest.ofFiles(exe, List.of(orig), List.of(patched), "bench-tick", false), patch);
        for (var b : builds) {
            suture(b, "--help"); // builds the jar and its AOT cache once
        }
        for (int n : threads) {
            try (var t = Target.start(exe, Integer.toString(n))) {
                t.awaitLine("ready", WAIT);
                for (int rep = 0; rep < reps; rep++) {
                    for (var b : builds) { // interleaved, so every build meets the same machine load
                        measure(b, n, rep, t, patch);
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "one-function apply, %d repetitions each, load average %s: median (max), ms%n",
                reps, Files.readString(Path.of("/proc/loadavg")).strip());
        for (var b : builds) {
            System.out.println(b.root());
            System.out.printf("%-8s %-17s %-17s %-17s %-17s %-17s %-17s%n", "threads", "window (tool)",
                    "stall in window", "stall in holds", "stall in apply", "noise (no apply)", "apply wall");
            b.rows().forEach((n, r) -> System.out.printf("%-8d %-17s %-17s %-17s %-17s %-17s %-17s%n", n,
                    cell(r.toolMs()), cell(r.windowStallMs()), cell(r.holdStallMs()), cell(r.stallMs()),
                    cell(r.noiseMs()), cell(r.wallMs())));
        }
    }

    /** One apply, its revert, and the noise over as long as the apply took. */
    private static void measure(Build b, int n, int rep, Target t, Path patch) throws Exception {
        var row = b.rows().computeIfAbsent(n, k -> new Row(new ArrayList<>(), new ArrayList<>(), new ArrayList<>(),
                new ArrayList<>(), new ArrayList<>(), new ArrayList<>()));
        stall(t); // starts a fresh measurement
        long start = System.nanoTime();
        var r = suture(b, "apply", "-p", Long.toString(t.pid()), "--json", patch.toString());
        long wall = System.nanoTime() - start;
        var report = stall(t);
        if (r.status() != 0) {
            throw new AssertionError("apply failed: " + r.output());
        }
        String json = r.output().substring(r.output().indexOf('{'), r.output().lastIndexOf('}') + 1);
        double pause = new ObjectMapper().readTree(json).get("results").get(0).get("pauseMicros").asDouble() / 1000;
        var rv = suture(b, "revert", "-p", Long.toString(t.pid()), "bench-tick");
        if (rv.status() != 0) {
            throw new AssertionError("revert failed: " + rv.output());
        }
        stall(t);
        sleepNanos(wall);
        double noise = stall(t).maxMs();
        double inWindow = windowStall(r.output(), report);
        var holds = holds(r.output(), report, t.pid());
        row.toolMs().add(pause);
        if (inWindow >= 0) {
            row.windowStallMs().add(inWindow);
        }
        row.holdStallMs().add(holds.maxMs());
        row.stallMs().add(report.maxMs());
        row.noiseMs().add(noise);
        row.wallMs().add(wall / 1e6);
        System.err.printf(Locale.ROOT, "%s threads %d rep %d: window %.3f ms, stall in window %.3f ms, in holds %.3f"
                + " ms, in apply %.3f ms, noise %.3f ms, wall %.0f ms%s%n", b.root().getFileName(), n, rep, pause,
                inWindow, holds.maxMs(), report.maxMs(), noise, wall / 1e6, holds.listing());
    }

    /** Runs the build's ./suture with SUTURE_DEBUG set (it then lists its holds and the window's phases). */
    private static Commands.Result suture(Build b, String... args) throws IOException, InterruptedException {
        var cmd = new ArrayList<String>();
        cmd.add(b.root().resolve("suture").toString());
        cmd.addAll(List.of(args));
        Path log = Files.createTempFile("apply-bench", ".log");
        try {
            var pb = new ProcessBuilder(cmd).directory(b.root().toFile()).redirectErrorStream(true)
                    .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            pb.environment().put("SUTURE_DEBUG", "1");
            var p = pb.start();
            if (!p.waitFor(WAIT.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                throw new AssertionError("timed out: " + cmd);
            }
            return new Commands.Result(p.exitValue(), Files.readString(log));
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static Path compile(Path dir, String variant, String source) throws IOException {
        Path d = Files.createDirectories(dir.resolve(variant));
        Files.writeString(d.resolve("target.c"), source);
        Gcc.run(d, "gcc", "-g", "-O0", "-pthread", "-fno-pie", "-ffunction-sections", "-fdata-sections", "-c",
                "target.c", "-o", "target.o");
        return d.resolve("target.o");
    }

    /** The target's longest stall (ms) and its gaps over 0.1 ms as {start, end} on CLOCK_MONOTONIC (ns). */
    record Stalls(double maxMs, List<long[]> gaps) {}

    /** Asks the target for its stalls since the last request and starts a new measurement. */
    private static Stalls stall(Target t) throws IOException {
        int skip = t.lines().size();
        t.signal("USR1");
        String line = t.awaitLine(l -> l.startsWith("stall "), WAIT, skip);
        var gaps = new ArrayList<long[]>();
        for (String l : t.lines().subList(skip, t.lines().size())) {
            if (l.startsWith("gap ")) {
                String[] f = l.split(" ");
                gaps.add(new long[] {Long.parseLong(f[1]), Long.parseLong(f[2])});
            }
        }
        return new Stalls(Long.parseLong(line.split(" ")[1]) / 1e6, gaps);
    }

    /** The target's longest gap overlapping the window ("window: from NS for US us"), or -1 if not printed. */
    private static double windowStall(String output, Stalls stalls) {
        double seen = -1;
        for (String l : output.lines().toList()) {
            String[] f = l.split(" ");
            if (l.startsWith("window: from ")) {
                long from = Long.parseLong(f[2]);
                long to = from + Long.parseLong(f[4]) * 1000;
                seen = 0;
                for (long[] g : stalls.gaps()) {
                    if (g[0] < to && g[1] > from) {
                        seen = Math.max(seen, (g[1] - g[0]) / 1e6);
                    }
                }
            }
        }
        return seen;
    }

    /** The target's longest gap overlapping any of the tool's holds of it (ms), and the holds listed. */
    record Holds(double maxMs, String listing) {}

    /**
     * With SUTURE_DEBUG set, the tool lists every span it held threads of a process ("tracer PID: LABEL held from
     * NS for US us", System.nanoTime is CLOCK_MONOTONIC; the target's, and those of the decoy it rehearses on):
     * each of the target's is listed with the target's longest gap overlapping it, so the target's stalls split
     * into the tool's holds and the rest (noise, CPU contention).
     */
    private static Holds holds(String output, Stalls stalls, long pid) {
        long max = 0;
        var out = new StringBuilder();
        for (String l : output.lines().toList()) {
            if (!l.startsWith("tracer " + pid + ": ")) {
                continue;
            }
            String[] f = l.split(" ");
            long from = Long.parseLong(f[5]);
            long to = from + Long.parseLong(f[7]) * 1000;
            long seen = 0;
            for (long[] g : stalls.gaps()) {
                if (g[0] < to && g[1] > from) {
                    seen = Math.max(seen, g[1] - g[0]);
                }
            }
            max = Math.max(max, seen);
            out.append(String.format(Locale.ROOT, "%n    %-8s held %6.3f ms, target's gap %6.3f ms", f[2],
                    Long.parseLong(f[7]) / 1e3, seen / 1e6));
        }
        for (String l : output.lines().toList()) {
            if (l.startsWith("window: ") || l.startsWith("rehearsal: ")) {
                out.append("\n    ").append(l);
            }
        }
        return new Holds(max / 1e6, out.toString());
    }

    private static String cell(List<Double> values) {
        if (values.isEmpty()) {
            return "-";
        }
        var sorted = values.stream().sorted().toList();
        return String.format(Locale.ROOT, "%.3f (%.3f)", sorted.get(sorted.size() / 2), sorted.getLast());
    }

    private static void sleepNanos(long nanos) throws InterruptedException {
        Thread.sleep(Duration.ofNanos(nanos));
    }
}
