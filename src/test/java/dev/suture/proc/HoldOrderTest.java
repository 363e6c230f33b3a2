package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The holds are ordered around the running threads (issue 20): the threads blocked in system calls are interrupted
 * first and the running ones last, the running ones are resumed first, and a release interrupts (and so detaches)
 * the running ones last; each thread's hold is recorded, marked running or blocked.
 */
class HoldOrderTest {
    /** The main thread spins; four threads sleep in 10 s nanosleeps. */
    static final String PROGRAM = """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>
            volatile long spins;
            static void *sleeper(void *arg) {
                struct timespec t = {10, 0};
                for (;;) nanosleep(&t, 0);
                return arg;
            }
            int main(void) {
                alarm(120);
                for (int i = 0; i < 4; i++) { pthread_t t; pthread_create(&t, 0, sleeper, 0); }
                printf("ready\\n");
                fflush(stdout);
                for (;;) spins++;
            }
            """;

    @TempDir
    Path dir;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void runningThreadsAreHeldLastAndLetGoFirst() throws Exception {
        Path exe = Gcc.compile(dir, "spinner", PROGRAM, "-O1", "-pthread");
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(10));
            int pid = target.pidInt();
            awaitSleeping(pid);
            var tracer = Tracer.attach(pid);
            try (tracer) {
                tracer.onTracerThread(() -> {
                    long running = tracer.stopAll("test");
                    tracer.resumeAll();
                    return running;
                });
                // A resumed sleeper runs for a moment to restart its nanosleep: the release's order is only
                // observable once they sleep again (CI once caught one still running).
                awaitSleeping(pid);
            }
            var holds = tracer.holds();
            for (String step : List.of("test", "release")) {
                var of = holds.stream().filter(h -> h.step().equals(step)).toList();
                assertEquals(5, of.size(), step + ": one hold per thread: " + holds);
                var main = of.stream().filter(h -> h.thread() == pid).findFirst().orElseThrow();
                assertTrue(main.running(), step + ": the spinning thread was running: " + main);
                for (var h : of) {
                    if (h == main) {
                        continue;
                    }
                    assertFalse(h.running(), step + ": a sleeping thread was blocked: " + h);
                    assertTrue(main.startNanos() > h.startNanos(), step + ": the running thread is interrupted after"
                            + " every blocked one: " + of);
                    if (step.equals("test")) {
                        assertTrue(end(main) <= end(h), "the running thread is resumed first: " + of);
                    }
                }
            }
            assertEquals(List.of("test", "release"), holds.stream().map(Hold::step).distinct().toList());
        }
    }

    private static long end(Hold h) {
        return h.startNanos() + h.nanos();
    }

    /** Waits (bounded) until the four sleepers sleep, so that /proc tells them from the spinning thread. */
    private static void awaitSleeping(int pid) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (Procs.tids(pid).stream().filter(tid -> ThreadState.of(pid, tid) == 'S').count() < 4) {
            assertTrue(System.nanoTime() < deadline, "the sleepers did not start sleeping");
            Thread.sleep(5);
        }
    }
}
