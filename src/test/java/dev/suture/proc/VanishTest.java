package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.suture.SutureException;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.Syscalls;
import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The target is killed, or exits, while we attach, stop it, or run a system call in it: the only failure is
 * "process N vanished" and nothing stays traced.
 */
class VanishTest {
    @TempDir
    Path dir;

    /** 24 threads that spin or sleep; with an argument, main exits the whole process after that many ms. */
    static final String BUSY = """
            #include <pthread.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <time.h>
            #include <unistd.h>
            volatile long sink;
            static void *spin(void *a) { for (;;) { sink++; if (((long) a & 1) == 0) usleep(100); } return 0; }
            int main(int argc, char **argv) {
                alarm(120); /* ends by itself even if the test dies before killing it */
                for (long i = 0; i < 24; i++) { pthread_t t; pthread_create(&t, 0, spin, (void *) i); }
                printf("ready\\n"); fflush(stdout);
                if (argc > 1) { usleep(atoi(argv[1]) * 1000); exit(0); }
                for (;;) pause();
            }
            """;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void killedWhileAttachingOrStopping() throws Exception {
        Path exe = Gcc.compile(dir, "busy", BUSY, "-O1", "-pthread");
        for (int round = 0; round < 12; round++) {
            try (var target = Target.start(exe)) {
                target.awaitLine("ready", Duration.ofSeconds(10));
                int pid = target.pidInt();
                long delayNanos = TimeUnit.MICROSECONDS.toNanos(300L * round);
                var killer = Thread.ofPlatform().start(() -> {
                    LockSupport.parkNanos(delayNanos);
                    Syscalls.kill(pid, Ptrace.SIGKILL);
                });
                expectVanished(pid, () -> {
                    try (var tracer = Tracer.attach(pid)) {
                        for (int i = 0; i < 100_000; i++) {
                            tracer.stopAll("test");
                            tracer.threads();
                            tracer.resumeAll();
                        }
                    }
                });
                killer.join();
            }
        }
    }

    @Test
    void exitsByItselfWhileStopping() throws Exception {
        Path exe = Gcc.compile(dir, "busy", BUSY, "-O1", "-pthread");
        for (int round = 0; round < 4; round++) {
            try (var target = Target.start(exe, Integer.toString(20 + 15 * round))) {
                target.awaitLine("ready", Duration.ofSeconds(10));
                int pid = target.pidInt();
                expectVanished(pid, () -> {
                    try (var tracer = Tracer.attach(pid)) {
                        for (int i = 0; i < 100_000; i++) {
                            tracer.stopAll("test");
                            tracer.resumeAll();
                        }
                    }
                });
            }
        }
    }

    @Test
    void killedDuringInjection() throws Exception {
        Path exe = Gcc.compile(dir, "busy", BUSY, "-O1", "-pthread");
        for (int round = 0; round < 6; round++) {
            try (var target = Target.start(exe)) {
                target.awaitLine("ready", Duration.ofSeconds(10));
                int pid = target.pidInt();
                long delayNanos = TimeUnit.MILLISECONDS.toNanos(30 + 7L * round);
                expectVanished(pid, () -> {
                    try (var tracer = Tracer.attach(pid)) {
                        tracer.stopAll("test");
                        tracer.mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS); // warm
                        var killer = Thread.ofPlatform().start(() -> {
                            LockSupport.parkNanos(delayNanos);
                            Syscalls.kill(pid, Ptrace.SIGKILL);
                        });
                        try {
                            for (int i = 0; i < 100_000; i++) {
                                long at = tracer.mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                                tracer.munmap(at, 4096);
                            }
                        } finally {
                            killer.join();
                        }
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                });
            }
        }
    }

    private static void expectVanished(int pid, Runnable work) throws InterruptedException {
        try {
            work.run();
            fail("process " + pid + " did not vanish");
        } catch (ProcessVanishedException e) {
            assertTrue(e.isProcess(pid), e.getMessage()); // the whole process, not one of its threads
            assertEquals(SutureException.Kind.VANISHED, e.kind());
        }
        // the dead process may linger as a zombie until its parent (init) reaps it; it must not be ours
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!Procs.tracedByThisJvm().isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertEquals(List.of(), Procs.tracedByThisJvm());
    }
}
