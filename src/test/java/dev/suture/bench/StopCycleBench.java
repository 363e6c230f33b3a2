package dev.suture.bench;

import dev.suture.proc.Tracer;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;

/**
 * The bare stop-the-world cycle: PTRACE_INTERRUPT every thread + wait for each stop, then resume all, on targets
 * with 1, 8, 32 and 128 threads, measured by the tool (on the tracer thread, no hand-off) and by the target (one
 * of its threads spins on the clock and records the longest gap it saw). Not a test: run with bench/stop-cycle.
 */
public final class StopCycleBench {
    private static final String TARGET = """
            #include <pthread.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <time.h>
            #include <unistd.h>
            volatile long max_gap_ns;
            volatile long sink;
            static long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }
            /* Half the threads only sleep (a server waiting), half compute a little between 1 ms sleeps: together
               well under one CPU even with 128 threads, so the benchmark does not load a shared machine. */
            static void *worker(void *a) {
                long i = (long) a;
                for (;;) {
                    if (i & 1) { for (int k = 0; k < 2000; k++) sink += k; }
                    struct timespec ts = {0, 1000000}; nanosleep(&ts, 0);
                }
                return 0;
            }
            static void *watch(void *a) {
                (void) a;
                long last = now();
                for (;;) { long t = now(); if (t - last > max_gap_ns) max_gap_ns = t - last; last = t; }
                return 0;
            }
            int main(int argc, char **argv) {
                alarm(120); /* ends by itself even if the benchmark dies without killing it */
                int n = atoi(argv[1]);
                pthread_t t;
                if (n >= 2) pthread_create(&t, 0, watch, 0);
                for (long i = 0; i < n - 2; i++) pthread_create(&t, 0, worker, (void *) i);
                printf("ready %p\\n", (void *) &max_gap_ns); fflush(stdout);
                for (;;) pause();
            }
            """;

    public static void main(String[] args) throws Exception {
        int cycles = args.length > 0 ? Integer.parseInt(args[0]) : 300;
        Path dir = Files.createTempDirectory("suture-bench");
        Path exe = Gcc.compile(dir, "stopcycle", TARGET, "-O2", "-pthread");
        System.out.printf(Locale.ROOT, "bare stop-the-world cycle (interrupt all + wait all + resume all), %d cycles, "
                + "%d CPUs%n", cycles, Runtime.getRuntime().availableProcessors());
        System.out.printf(Locale.ROOT, "%8s %12s %12s %12s %12s %12s %14s%n", "threads", "stop p50", "stop p90",
                "cycle p50", "cycle p90", "cycle max", "target max gap");
        for (int threads : new int[] {1, 8, 32, 128}) {
            run(exe, threads, cycles);
        }
    }

    private static void run(Path exe, int threads, int cycles) throws Exception {
        // main + watcher + workers = threads; with 1 thread, main alone (nobody watches the clock)
        try (var target = Target.start(exe, Integer.toString(threads))) {
            long gapAddress = Long.parseUnsignedLong(target.awaitLine("ready", Duration.ofSeconds(20)).split(" ")[1]
                    .substring(2), 16);
            int pid = target.pidInt();
            try (var tracer = Tracer.attach(pid)) {
                tracer.warmUp();
                measure(tracer, threads, cycles / 5, gapAddress, false);
                measure(tracer, threads, cycles, gapAddress, true);
            }
        }
    }

    private static void measure(Tracer tracer, int threads, int cycles, long gapAddress, boolean print)
            throws InterruptedException {
        long[] stop = new long[cycles];
        long[] cycle = new long[cycles];
        long[] gap = new long[cycles];
        byte[] zero = new byte[8];
        for (int i = 0; i < cycles; i++) {
            tracer.write(gapAddress, zero);
            Thread.sleep(2);
            int n = i;
            tracer.run(() -> {
                long t0 = System.nanoTime();
                tracer.stopAll();
                long t1 = System.nanoTime();
                tracer.resumeAll();
                long t2 = System.nanoTime();
                stop[n] = t1 - t0;
                cycle[n] = t2 - t0;
                return null;
            });
            Thread.sleep(1);
            gap[i] = ByteBuffer.wrap(tracer.read(gapAddress, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
        }
        if (print) {
            if (tracer.threads().size() != threads) {
                System.out.printf("(target has %d threads)%n", tracer.threads().size());
            }
            System.out.printf(Locale.ROOT, "%8d %12s %12s %12s %12s %12s %14s%n", threads, us(pct(stop, 50)),
                    us(pct(stop, 90)), us(pct(cycle, 50)), us(pct(cycle, 90)), us(pct(cycle, 100)),
                    threads == 1 ? "n/a" : us(pct(gap, 50)) + " p50");
        }
    }

    private static long pct(long[] values, int p) {
        long[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(p / 100.0 * sorted.length) - 1 + (p == 0 ? 1 : 0))];
    }

    private static String us(long nanos) {
        return String.format(Locale.ROOT, "%.1f us", nanos / 1000.0);
    }
}
