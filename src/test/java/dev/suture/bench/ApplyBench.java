package dev.suture.bench;

import com.fasterxml.jackson.databind.JsonNode;
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
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;

/**
 * Benchmark (not a unit test) of the pause a program feels when {@code suture apply} patches it, read from the
 * kernel's own scheduler trace (tracefs {@code sched:sched_switch}): a thread is held from the moment it is
 * switched out in state {@code t} (ptrace-stopped) until it is switched back in, so every span counts what the
 * thread felt, the wait for a core after it was let go included. Root only; mounts tracefs on
 * /sys/kernel/tracing when it is not there, and traces in an instance of its own (instances/suture-apply-bench-PID),
 * removed at the end.
 *
 * <p>The target's main thread spins on clock_gettime (calling the patched {@code tick} every 50 µs) and keeps its
 * longest gap, which it prints and starts over on SIGUSR1; the other threads sleep in 5 ms nanosleeps. Rows are
 * 1, 8, 32 and 128 threads; the row of 1 has one sleeping thread besides the spinning one (a one-thread process
 * has no thread to lend the injected mmap but the spinning one), the others count the spinning thread in.
 *
 * <p>Per apply (each followed by a revert, not measured): <b>all stopped</b>, the longest span in which every
 * thread of the target was held; <b>spinning held</b>, the longest hold of the spinning thread; <b>any held</b>,
 * the longest hold of any thread; <b>apply says</b>, what the command reports in --json (the longest hold of a
 * running thread when it reports one, else its window); <b>cpu</b>, user+system seconds of the whole
 * {@code ./suture apply} (launcher and JVM, /usr/bin/time); <b>gap</b>, the target's longest gap between two
 * clock reads over the command; <b>wall</b>, the command's elapsed seconds (/usr/bin/time). Prints medians and worsts.
 *
 * <p>Run: {@code bench/apply.sh [repetitions [threads,...]]} (default 5 and 1,8,32,128); with
 * {@code SUTURE_BENCH_ROOTS=dirA,dirB} it compares builds (checkouts with a built jar), interleaved so both meet
 * the same machine load. {@code SUTURE_BENCH_PATCH} picks the fix: {@code simple} (the default, {@code x + 2}),
 * {@code far} (the fix also reads libc's {@code environ}, which the program never referenced: a far-access thunk,
 * docs/patch-format.md 5.1), {@code ifunc} (the fix calls an IFUNC of a library of the target that nothing
 * resolved yet: its resolver runs in the target on every apply, docs/apply.md), {@code busy} (one of the
 * sleeping threads instead loops calling a function that sleeps 200 ms inside itself, and the fix replaces that
 * one too: apply waits for the thread at its return, docs/apply.md) or {@code libgcc} (the simple fix, in a target
 * that also loads libgcc_s.so.1, as every C++ program does: the region's CFI is registered with it on every apply,
 * docs/apply.md). <b>call held</b> is the longest hold, as apply reports it in --json, of a thread borrowed to run
 * a function (an IFUNC resolver, the registration of the CFI); 0 when none ran.
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

            /* never idle when sampled: sleeps 200 ms inside itself (SUTURE_BENCH_PATCH=busy replaces it) */
            __attribute__((noinline)) long inside(long x) {
                nap(200000000);
                return x + 3;
            }

            static void *busy(void *arg) {
                for (long x = 0;; x = inside(x)) { }
                return arg;
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
                int sleepers = atoi(argv[1]);
                pthread_t t;
                for (int i = 0; i < sleepers; i++)
                    pthread_create(&t, 0, argc > 2 && i == 0 ? busy : sleeper, 0);
                int v = 0;
                long max = 0, last = now(), next = last;
                printf("ready\\n");
                for (;;) {
                    long t = now();
                    if (t >= next) {
                        v = tick(v);
                        next = t + 50000;
                    }
                    if (t - last > max)
                        max = t - last;
                    last = t;
                    if (report) {
                        report = 0;
                        alarm(120); /* 120 s after the harness last asked, not after start: runs can be long */
                        printf("gap %ld tick %d\\n", max, v);
                        max = 0;
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
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final Path TRACING = Path.of("/sys/kernel/tracing");

    private ApplyBench() {}

    /** One build of suture (its checkout's root) and what it measured, per thread count. */
    record Build(Path root, Map<Integer, List<Apply>> rows) {}

    /** One apply, in ms (cpu in s). */
    record Apply(double allStopped, double spinningHeld, double anyHeld, double says, double callHeld, double cpu,
                 double gap, double wall) {}

    public static void main(String[] args) throws Exception {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
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
            case "busy", "libgcc" -> "return x + 2;";
            default -> throw new IllegalArgumentException("SUTURE_BENCH_PATCH: simple, far, ifunc, busy or libgcc, not "
                    + kind);
        };
        boolean busy = kind.equals("busy");
        Path orig = compile(dir, "orig", TARGET);
        Path patched = compile(dir, "patched", TARGET.replace("return x + 1;", fix)
                .replace("return x + 3;", busy ? "return x + 4;" : "return x + 3;"));
        Path exe = dir.resolve("target");
        Files.writeString(dir.resolve("ifunc.c"), IFUNC_LIBRARY);
        Gcc.run(dir, "gcc", "-O2", "-fPIC", "-shared", "-o", "libbenchifunc.so", "ifunc.c");
        var link = new ArrayList<>(List.of("gcc", "-pthread", "-no-pie", "-o", exe.toString(), orig.toString(),
                "-L" + dir, "-Wl,--no-as-needed", "-lbenchifunc", "-Wl,-rpath," + dir));
        if (kind.equals("libgcc")) {
            link.add("-lgcc_s"); // after --no-as-needed: loaded, though the C program calls nothing of it
        }
        Gcc.run(dir, link);
        Path patch = dir.resolve("tick.suture");
        Differ.diff(DiffRequest.ofFiles(exe, List.of(orig), List.of(patched), "bench-tick", false), patch);
        for (var b : builds) {
            run(b, b.root().resolve("suture").toString(), "--help"); // builds the jar and its AOT cache once
        }
        try (var trace = SchedTrace.open()) {
            for (int n : threads) {
                var targetArgs = busy ? new String[] {Integer.toString(Math.max(1, n - 1)), "busy"}
                        : new String[] {Integer.toString(Math.max(1, n - 1))};
                try (var t = Target.start(exe, targetArgs)) {
                    t.awaitLine("ready", WAIT);
                    var tids = tasks(t.pid());
                    trace.follow(tids);
                    for (int rep = 0; rep < reps; rep++) {
                        for (var b : builds) { // interleaved, so every build meets the same machine load
                            measure(b, n, rep, t, patch, trace, tids);
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "one-function apply, %d repetitions per row, load average %s: median (worst);"
                + " ms, cpu in s%n", reps, Files.readString(Path.of("/proc/loadavg")).strip());
        for (var b : builds) {
            System.out.println(b.root());
            System.out.printf("%-8s %-15s %-15s %-15s %-15s %-15s %-15s %-15s %-15s%n", "threads", "all stopped",
                    "spinning held", "any held", "apply says", "call held", "cpu (s)", "target's gap", "wall (s)");
            b.rows().forEach((n, r) -> System.out.printf("%-8s %-15s %-15s %-15s %-15s %-15s %-15s %-15s %-15s%n",
                    n == 1 ? "1 (+1)" : Integer.toString(n), cell(r, Apply::allStopped), cell(r, Apply::spinningHeld),
                    cell(r, Apply::anyHeld), cell(r, Apply::says), cell(r, Apply::callHeld), cell(r, Apply::cpu),
                    cell(r, Apply::gap), cell(r, Apply::wall)));
        }
    }

    /** The steps of holds that run no function in the target (docs/apply.md): every other hold borrows a thread for one. */
    private static final Set<String> NOT_CALLS = Set.of("mmap", "mprotect", "munmap", "window", "release", "return",
            "write", "recover");

    /** One apply measured, then its revert. */
    private static void measure(Build b, int n, int rep, Target t, Path patch, SchedTrace trace, Set<Integer> tids)
            throws Exception {
        trace.clear();
        gap(t); // starts a fresh measurement
        Path times = Files.createTempFile("apply-bench", ".time");
        Commands.Result r;
        try {
            r = run(b, "/usr/bin/time", "-o", times.toString(), "-f", "%U %S %e", b.root().resolve("suture").toString(),
                    "apply", "-p", Long.toString(t.pid()), "--json", patch.toString());
            double gap = gap(t);
            var holds = trace.holds(tids);
            if (r.status() != 0) {
                throw new AssertionError("apply failed: " + r.output());
            }
            String[] cpu = Files.readAllLines(times).getLast().strip().split(" ");
            JsonNode json = new ObjectMapper().readTree(r.output().substring(r.output().indexOf('{'),
                    r.output().lastIndexOf('}') + 1)).get("results").get(0);
            double says = (json.has("longestRunningHoldMicros") ? json.get("longestRunningHoldMicros")
                    : json.get("pauseMicros")).asDouble() / 1000;
            double callHeld = 0;
            for (JsonNode h : json.path("holds")) {
                if (!NOT_CALLS.contains(h.get("step").asText())) {
                    callHeld = Math.max(callHeld, h.get("micros").asDouble() / 1000);
                }
            }
            var apply = new Apply(holds.allStopped(tids.size()) / 1e6, holds.longest((int) t.pid()) / 1e6,
                    holds.longest() / 1e6, says, callHeld, Double.parseDouble(cpu[0]) + Double.parseDouble(cpu[1]),
                    gap, Double.parseDouble(cpu[2]));
            b.rows().computeIfAbsent(n, k -> new ArrayList<>()).add(apply);
            System.err.printf(Locale.ROOT, "%s threads %d rep %d: %s%n", b.root().getFileName(), n, rep, apply);
        } finally {
            Files.deleteIfExists(times);
        }
        var rv = run(b, b.root().resolve("suture").toString(), "revert", "-p", Long.toString(t.pid()),
                "bench-tick");
        if (rv.status() != 0) {
            throw new AssertionError("revert failed: " + rv.output());
        }
    }

    /** Runs {@code cmd} in the build's root, output and errors together. */
    private static Commands.Result run(Build b, String... cmd) throws IOException, InterruptedException {
        var words = List.of(cmd);
        Path log = Files.createTempFile("apply-bench", ".log");
        try {
            var p = new ProcessBuilder(words).directory(b.root().toFile()).redirectErrorStream(true)
                    .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
            if (!p.waitFor(WAIT.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                throw new AssertionError("timed out: " + words);
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

    private static Set<Integer> tasks(long pid) throws IOException {
        try (var s = Files.list(Path.of("/proc/" + pid + "/task"))) {
            return Set.copyOf(s.map(p -> Integer.parseInt(p.getFileName().toString())).toList());
        }
    }

    /** Asks the target for its longest clock gap (ms) since the last request and starts a new measurement. */
    private static double gap(Target t) throws IOException {
        int skip = t.lines().size();
        t.signal("USR1");
        String line = t.awaitLine(l -> l.startsWith("gap "), WAIT, skip);
        return Long.parseLong(line.split(" ")[1]) / 1e6;
    }

    private static String cell(List<Apply> applies, ToDoubleFunction<Apply> field) {
        double[] v = applies.stream().mapToDouble(field).sorted().toArray();
        return v.length == 0 ? "-" : String.format(Locale.ROOT, "%.3f (%.3f)", v[(v.length - 1) / 2],
                v[v.length - 1]);
    }

    /** A tracefs instance recording sched_switch for the target's threads. */
    private static final class SchedTrace implements AutoCloseable {
        private final Path dir;

        private SchedTrace(Path dir) {
            this.dir = dir;
        }

        static SchedTrace open() throws IOException, InterruptedException {
            if (!Files.exists(TRACING.resolve("instances"))) {
                var p = new ProcessBuilder("mount", "-t", "tracefs", "nodev", TRACING.toString()).inheritIO().start();
                if (p.waitFor() != 0 || !Files.exists(TRACING.resolve("instances"))) {
                    throw new IOException("cannot mount tracefs on " + TRACING + " (this benchmark needs root)");
                }
            }
            Path dir = TRACING.resolve("instances/suture-apply-bench-" + ProcessHandle.current().pid());
            Files.createDirectory(dir); // the kernel makes the instance's files
            var trace = new SchedTrace(dir);
            trace.set("trace_clock", "mono");
            trace.set("buffer_size_kb", "16384");
            return trace;
        }

        void follow(Set<Integer> tids) throws IOException {
            set("events/sched/sched_switch/enable", "0");
            var ids = new StringBuilder();
            tids.forEach(tid -> ids.append(tid).append(' '));
            set("set_event_pid", ids.toString().strip()); // a switch is kept when either side is one of them
            set("events/sched/sched_switch/enable", "1");
            set("tracing_on", "1");
        }

        void clear() throws IOException {
            Files.writeString(dir.resolve("trace"), ""); // O_TRUNC empties the buffer
        }

        private void set(String file, String value) throws IOException {
            Files.writeString(dir.resolve(file), value);
        }

        /** Every span each thread spent switched out in state t, from the trace recorded since {@link #clear}. */
        Holds holds(Set<Integer> tids) throws IOException {
            var spans = new HashMap<Integer, List<long[]>>();
            var since = new HashMap<Integer, Long>();
            for (String line : Files.readAllLines(dir.resolve("trace"))) {
                int at = line.indexOf(": sched_switch: ");
                if (at < 0) {
                    continue;
                }
                long ns = Math.round(Double.parseDouble(line.substring(line.lastIndexOf(' ', at - 1) + 1, at)) * 1e9);
                int prev = Integer.parseInt(field(line, "prev_pid="));
                String state = field(line, "prev_state=");
                int next = Integer.parseInt(field(line, "next_pid="));
                if (tids.contains(prev) && state.contains("t")) {
                    since.put(prev, ns);
                }
                if (tids.contains(next) && since.containsKey(next)) {
                    spans.computeIfAbsent(next, k -> new ArrayList<>()).add(new long[] {since.remove(next), ns});
                }
            }
            return new Holds(spans);
        }

        private static String field(String line, String name) {
            int from = line.indexOf(name) + name.length();
            int to = line.indexOf(' ', from);
            return line.substring(from, to < 0 ? line.length() : to);
        }

        @Override
        public void close() throws IOException {
            set("tracing_on", "0");
            set("events/sched/sched_switch/enable", "0");
            Files.delete(dir);
        }
    }

    /** The spans (ns, {from, to}) each thread was held. */
    record Holds(Map<Integer, List<long[]>> spans) {
        long longest() {
            return spans.keySet().stream().mapToLong(this::longest).max().orElse(0);
        }

        long longest(int tid) {
            return spans.getOrDefault(tid, List.of()).stream().mapToLong(s -> s[1] - s[0]).max().orElse(0);
        }

        /** The longest span in which all {@code threads} threads were held at once. */
        long allStopped(int threads) {
            var edges = new TreeMap<Long, Integer>();
            spans.values().forEach(l -> l.forEach(s -> {
                edges.merge(s[0], 1, Integer::sum);
                edges.merge(s[1], -1, Integer::sum);
            }));
            long longest = 0;
            long from = -1;
            int held = 0;
            for (var e : edges.entrySet()) {
                held += e.getValue();
                if (held >= threads && from < 0) {
                    from = e.getKey();
                } else if (held < threads && from >= 0) {
                    longest = Math.max(longest, e.getKey() - from);
                    from = -1;
                }
            }
            return longest;
        }
    }
}
