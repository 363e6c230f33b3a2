package dev.suture.bench;

import dev.suture.proc.Tracer;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import dev.suture.unwind.ProcessCode;
import dev.suture.unwind.StackSampler;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Benchmark (not a unit test) of the stop-the-world cycle of {@code suture stacks} and patch application: stop
 * every thread, read registers, copy stacks, unwind, resume — against the bare stop+resume cycle, on a target
 * with 1, 8, 32 and 128 sleeping threads plus one watchdog thread that spins on clock_gettime and reports every
 * gap longer than 50 µs with its CLOCK_MONOTONIC end (the clock System.nanoTime reads), so each cycle's stall
 * as the target saw it can be matched to the cycle.
 *
 * <p>Run: {@code bench/stop-the-world.sh [cycles]}. Prints one table; no assertions.
 */
public final class StopTheWorldBench {
    private static final String TARGET = """
            #define _GNU_SOURCE
            #include <pthread.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include <time.h>
            #include <unistd.h>

            volatile long sink;
            __attribute__((noinline)) void depth3(void) { struct timespec ts = {1000, 0}; for (;;) nanosleep(&ts, 0); }
            __attribute__((noinline)) void depth2(void) { depth3(); sink++; }
            __attribute__((noinline)) void depth1(void) { depth2(); sink++; }
            __attribute__((noinline)) void *worker(void *a) { depth1(); sink++; return a; }

            static long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }
            __attribute__((noinline)) void *watchdog(void *a) {
                char line[64];
                long last = now();
                for (;;) {
                    long t = now();
                    if (t - last > 50000) {
                        int n = snprintf(line, sizeof line, "gap %ld %ld\\n", t, t - last);
                        write(1, line, n);
                        t = now();
                    }
                    last = t;
                }
                return a;
            }

            int main(int argc, char **argv) {
                alarm(120); /* ends by itself even if the benchmark that started it dies */
                int n = atoi(argv[1]);
                pthread_t t;
                for (int i = 0; i < n; i++) pthread_create(&t, 0, worker, 0);
                pthread_create(&t, 0, watchdog, 0);
                usleep(200000);
                write(1, "ready\\n", 6);
                for (;;) pause();
            }
            """;

    private record Gap(long end, long length) {}

    public static void main(String[] args) throws Exception {
        int cycles = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        Path dir = Files.createTempDirectory("suture-bench");
        Path exe = Gcc.compile(dir, "stw", TARGET, "-O2", "-pthread");
        System.out.printf(Locale.ROOT, "stop-the-world cycle, %d cycles per row (median / p90 / max, microseconds)%n",
                cycles);
        System.out.printf(Locale.ROOT, "%-8s %-6s %-26s %-26s %-26s%n", "threads", "cycle", "tool: whole window",
                "tool: stop part", "target: longest stall");
        for (int n : new int[] {1, 8, 32, 128}) {
            try (var target = Target.start(exe, Integer.toString(n))) {
                target.awaitLine("ready", Duration.ofSeconds(30));
                run(target, n, cycles);
            }
        }
    }

    private static void run(Target target, int threads, int cycles) throws Exception {
        try (Tracer tracer = Tracer.attach(target.pidInt())) {
            var code = ProcessCode.load(target.pidInt());
            var sampler = new StackSampler(tracer, code);
            // warm up both paths (JIT, native links, first-use FDE parsing)
            for (int i = 0; i < 50; i++) {
                bare(tracer);
                sampler.sample();
                Thread.sleep(2);
            }
            long[][] bare = new long[2][cycles];
            long[][] bareSpan = new long[2][cycles];
            long[][] full = new long[2][cycles];
            long[][] fullSpan = new long[2][cycles];
            int frames = 0;
            long copied = 0;
            long[][] parts = new long[3][cycles];
            for (int i = 0; i < cycles; i++) {
                // interleave so both see the same machine load
                long s0 = System.nanoTime();
                long[] b = bare(tracer);
                long s1 = System.nanoTime();
                bare[0][i] = b[0];
                bare[1][i] = b[1];
                bareSpan[0][i] = s0;
                bareSpan[1][i] = s1;
                Thread.sleep(3);
                long f0 = System.nanoTime();
                var snap = sampler.sample();
                long f1 = System.nanoTime();
                full[0][i] = snap.windowNanos();
                full[1][i] = snap.stopNanos();
                fullSpan[0][i] = f0;
                fullSpan[1][i] = f1;
                parts[0][i] = snap.registersNanos();
                parts[1][i] = snap.copyNanos();
                parts[2][i] = snap.unwindNanos();
                frames = 0;
                copied = 0;
                for (var t : snap.threads()) {
                    frames += t.frames().count();
                    copied += t.stackBytes();
                }
                Thread.sleep(3);
            }
            Thread.sleep(100);
            List<Gap> gaps = gaps(target);
            long[] bareStall = stalls(gaps, bareSpan, cycles);
            long[] fullStall = stalls(gaps, fullSpan, cycles);
            print(threads + 1 + 1, "bare", bare[0], bare[1], bareStall);
            print(threads + 1 + 1, "full", full[0], full[1], fullStall);
            System.out.printf(Locale.ROOT, "%-8s full/bare (medians): tool %.2fx, target %.2fx; %d frames unwound, %d KiB of stack copied per cycle%n",
                    "", (double) median(full[0]) / median(bare[0]),
                    (double) median(fullStall) / Math.max(1, median(bareStall)), frames, copied / 1024);
            System.out.printf(Locale.ROOT, "%-8s full cycle's capture part (medians, us): registers %.0f, stack copies %.0f, unwinding %.0f%n",
                    "", median(parts[0]) / 1e3, median(parts[1]) / 1e3, median(parts[2]) / 1e3);
        }
    }

    /** The bare cycle, as the tool sees it: {whole, stop part}. */
    private static long[] bare(Tracer tracer) {
        return tracer.onTracerThread(() -> {
            long t0 = System.nanoTime();
            tracer.stopAll("bare cycle");
            long t1 = System.nanoTime();
            tracer.resumeAll();
            long t2 = System.nanoTime();
            return new long[] {t2 - t0, t1 - t0};
        });
    }

    private static List<Gap> gaps(Target target) throws Exception {
        var out = new ArrayList<Gap>();
        for (String line : target.lines()) {
            if (line.startsWith("gap ")) {
                String[] f = line.split(" ");
                out.add(new Gap(Long.parseLong(f[1]), Long.parseLong(f[2])));
            }
        }
        return out;
    }

    /** Per cycle, the longest watchdog gap that overlaps the cycle's span (0 if the watchdog never stalled). */
    private static long[] stalls(List<Gap> gaps, long[][] spans, int cycles) {
        long[] out = new long[cycles];
        for (int i = 0; i < cycles; i++) {
            for (Gap g : gaps) {
                long start = g.end() - g.length();
                if (start < spans[1][i] && g.end() > spans[0][i]) {
                    out[i] = Math.max(out[i], g.length());
                }
            }
        }
        return out;
    }

    private static void print(int threads, String cycle, long[] whole, long[] stop, long[] stall) {
        System.out.printf(Locale.ROOT, "%-8d %-6s %-26s %-26s %-26s%n", threads, cycle, stats(whole), stats(stop),
                stats(stall));
    }

    private static String stats(long[] nanos) {
        long[] s = nanos.clone();
        Arrays.sort(s);
        return String.format(Locale.ROOT, "%7.0f / %7.0f / %7.0f", s[s.length / 2] / 1e3, s[s.length * 9 / 10] / 1e3,
                s[s.length - 1] / 1e3);
    }

    private static long median(long[] a) {
        long[] s = a.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
