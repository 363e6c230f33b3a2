package dev.suture.unwind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.proc.Tracer;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Asynchronous unwinding of running code: threads stopped at arbitrary instructions (prologues, epilogues, the
 * vdso's clock_gettime, alloca frames, code without frame pointers) must unwind by CFI all the way to the thread's
 * first frame, sample after sample.
 */
class LiveUnwindTest {
    @TempDir
    Path dir;

    private static final String PROGRAM = """
            #define _GNU_SOURCE
            #include <alloca.h>
            #include <pthread.h>
            #include <stdio.h>
            #include <string.h>
            #include <time.h>
            #include <unistd.h>
            volatile long sink;
            __attribute__((noinline)) void clock_loop(void) {
                struct timespec t;
                for (;;) { clock_gettime(CLOCK_MONOTONIC, &t); sink += t.tv_nsec; }
            }
            __attribute__((noinline)) void *clock_thread(void *a) { clock_loop(); return a; }
            __attribute__((noinline)) long work(int depth, int n) {
                char *b = alloca(16 + (n & 255));
                memset(b, depth, 16 + (n & 255));
                if (depth == 0) return b[3];
                return work(depth - 1, n * 7 + 1) + b[5];
            }
            __attribute__((noinline)) void *work_thread(void *a) { for (int i = 0;; i++) sink += work(6, i); return a; }
            int main(void) {
                alarm(120); /* ends by itself even if the test that started it dies */
                pthread_t t;
                pthread_create(&t, 0, clock_thread, 0);
                pthread_setname_np(t, "clock");
                pthread_create(&t, 0, work_thread, 0);
                pthread_setname_np(t, "work");
                usleep(50000);
                printf("ready\\n");
                fflush(stdout);
                for (;;) pause();
            }
            """;

    @Test
    void everySampleUnwindsToTheFirstFrame() throws Exception {
        Path exe = Gcc.compile(dir, "busy", PROGRAM, "-O2", "-fomit-frame-pointer", "-pthread");
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(20));
            int pid = target.pidInt();
            Set<String> leafFunctions = new HashSet<>();
            Set<String> leafModules = new HashSet<>();
            int samples = 0;
            try (Tracer tracer = Tracer.attach(pid)) {
                ProcessCode code = ProcessCode.load(pid, false);
                var sampler = new StackSampler(tracer, code);
                for (int round = 0; round < 100; round++) {
                    var snapshot = sampler.sample();
                    Map<Integer, Backtrace> traces = new HashMap<>();
                    for (var t : snapshot.threads()) {
                        assertEquals(null, t.error());
                        traces.put(t.tid(), Backtrace.of(t.tid(), t.frames(), code.code()));
                    }
                    for (var bt : traces.values()) {
                        List<String> names = names(bt);
                        String where = "round " + round + " thread " + bt.tid() + ": " + describe(bt);
                        if (bt.tid() == pid) {
                            assertTrue(names.contains("main"), where);
                        } else if (names.contains("clock_thread")) {
                            assertTrue(names.indexOf("clock_loop") == names.indexOf("clock_thread") - 1, where);
                        } else {
                            assertTrue(names.contains("work_thread"), where);
                        }
                        assertEquals(StackEnd.OUTERMOST, bt.end(), where);
                        for (Frame f : bt.frames().subList(1, bt.frames().size())) {
                            assertEquals(FrameMethod.CFI, f.method(), where);
                        }
                        leafFunctions.add(names.getFirst());
                        leafModules.add(String.valueOf(bt.frames().getFirst().module()));
                    }
                    samples++;
                    Thread.sleep(3);
                }
            }
            assertEquals(100, samples);
            // the samples did land in different code: the work recursion, clock_gettime in libc or the vdso
            assertTrue(leafFunctions.size() >= 3, leafFunctions.toString());
            assertTrue(leafModules.stream().anyMatch(m -> m.contains("vdso")), leafModules.toString());
            assertTrue(target.alive());
        }
    }

    /**
     * A main thread that runs (so no rehearsal read its stack) with 256 KB of it in use: the sampler finds room for
     * it before the window, so the window's read grows no buffer (a fresh page costs 10-20 us on a VM).
     */
    @Test
    void roomForARunningMainThreadsStackIsMadeBeforeTheWindow() throws Exception {
        Path exe = Gcc.compile(dir, "deep", """
                #include <stdio.h>
                #include <string.h>
                #include <unistd.h>
                __attribute__((noinline)) void spin(volatile char *big) { for (;;) big[0]++; }
                int main(void) {
                    alarm(120);
                    char big[256 << 10];
                    memset(big, 1, sizeof big);
                    printf("ready\\n");
                    fflush(stdout);
                    spin(big);
                }
                """, "-O2");
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(20));
            try (Tracer tracer = Tracer.attach(target.pidInt())) {
                var code = ProcessCode.load(target.pidInt(), false);
                var sampler = new StackSampler(tracer, code);
                int before = sampler.room();
                assertTrue(before >= 256 << 10, "room " + before);
                var main = sampler.sample().threads().getFirst();
                assertEquals(null, main.error());
                assertTrue(main.stackBytes() >= 256 << 10 && main.stackBytes() <= before,
                        main.stackBytes() + " bytes of stack read, room " + before);
                assertEquals(List.of("spin", "main"), names(Backtrace.of(main.tid(), main.frames(), code.code()))
                        .subList(0, 2));
            }
            assertTrue(target.alive());
        }
    }

    private static List<String> names(Backtrace bt) {
        var out = new ArrayList<String>();
        for (Frame f : bt.frames()) {
            out.add(f.symbol() == null ? "??" : f.symbol());
        }
        return out;
    }

    private static String describe(Backtrace bt) {
        var sb = new StringBuilder();
        for (Frame f : bt.frames()) {
            sb.append("\n  #").append(f.index()).append(' ').append(f.module()).append(' ').append(f.function())
                    .append(" [").append(f.method().label()).append(']');
        }
        return sb + "\n  end " + bt.end() + (bt.error() == null ? "" : ": " + bt.error());
    }
}
