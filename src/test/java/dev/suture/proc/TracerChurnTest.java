package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.sys.Ptrace;
import dev.suture.sys.Syscalls;
import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A target that creates and ends threads without pause, and counts the SIGUSR1 it receives: across 200
 * stop/resume cycles every thread is stopped when stopAll returns, and every signal sent (before, during and
 * after the stop) is delivered exactly once.
 */
class TracerChurnTest {
    @TempDir
    Path dir;

    static final String CHURN = """
            #include <pthread.h>
            #include <signal.h>
            #include <stdio.h>
            #include <string.h>
            #include <time.h>
            #include <unistd.h>
            volatile long usr1;
            volatile long created;
            volatile sig_atomic_t report;
            static void on_usr1(int s) { (void) s; __atomic_fetch_add(&usr1, 1, __ATOMIC_SEQ_CST); }
            static void on_usr2(int s) { (void) s; report = 1; }
            static void *brief(void *a) { return a; }
            static void *spawner(void *a) {
                (void) a;
                for (;;) {
                    pthread_t t;
                    if (pthread_create(&t, 0, brief, 0) == 0) {
                        pthread_join(t, 0);
                        __atomic_fetch_add(&created, 1, __ATOMIC_SEQ_CST);
                    }
                }
                return 0;
            }
            static void *sleeper(void *a) {
                (void) a;
                for (;;) { struct timespec ts = {0, 300000}; nanosleep(&ts, 0); }
                return 0;
            }
            int main(void) {
                alarm(120); /* ends by itself even if the test dies before killing it */
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_flags = SA_RESTART;
                sa.sa_handler = on_usr1;
                sigaction(SIGUSR1, &sa, 0);
                sa.sa_handler = on_usr2;
                sigaction(SIGUSR2, &sa, 0);
                pthread_t t;
                for (int i = 0; i < 3; i++) pthread_create(&t, 0, spawner, 0);
                for (int i = 0; i < 2; i++) pthread_create(&t, 0, sleeper, 0);
                printf("ready %p %p\\n", (void *) &usr1, (void *) &created);
                fflush(stdout);
                for (;;) {
                    if (report) {
                        report = 0;
                        printf("usr1 %ld created %ld\\n", usr1, created);
                        fflush(stdout);
                    }
                    usleep(1000);
                }
            }
            """;

    @Test
    void twoHundredCyclesOverThreadChurnLoseNoSignal() throws Exception {
        Path exe = Gcc.compile(dir, "churn", CHURN, "-O1", "-pthread");
        try (var target = Target.start(exe)) {
            String[] ready = target.awaitLine("ready", Duration.ofSeconds(10)).split(" ");
            long usr1 = TracerTest.hex(ready[1]);
            long created = TracerTest.hex(ready[2]);
            int pid = target.pidInt();
            long sent = 0;
            long createdAtAttach;
            try (var tracer = Tracer.attach(pid)) {
                createdAtAttach = word(tracer, created);
                for (int cycle = 0; cycle < 200; cycle++) {
                    int when = cycle % 3;
                    if (when == 0) { // just before the stop: races with the interrupts
                        Syscalls.kill(pid, Ptrace.SIGUSR1);
                        sent++;
                    }
                    tracer.stopAll("test");
                    assertEquals("", Procs.notInState(pid, 't'), "cycle " + cycle + ": threads not stopped");
                    assertEquals(Procs.tids(pid), tracer.threads(), "cycle " + cycle + ": threads held");
                    if (when == 1) { // while every thread is held
                        Syscalls.kill(pid, Ptrace.SIGUSR1);
                        sent++;
                    }
                    tracer.resumeAll();
                    if (when == 2) {
                        Syscalls.kill(pid, Ptrace.SIGUSR1);
                        sent++;
                    }
                    // One signal in flight at a time: two pending SIGUSR1 would merge in the kernel.
                    awaitWord(tracer, usr1, sent, "cycle " + cycle + ": SIGUSR1 handled");
                    Thread.sleep(2);
                }
                long creations = word(tracer, created) - createdAtAttach;
                System.out.println("churn: " + creations + " threads created, " + sent + " SIGUSR1 sent");
                assertTrue(creations >= 1000, "only " + creations + " threads created during the cycles");
            }
            Thread.sleep(20);
            assertEquals("", TracerTest.tracedThreads(pid), "threads still traced after close");
            assertEquals(List.of(), Procs.threadStates(pid).entrySet().stream()
                    .filter(e -> e.getValue() == 't' || e.getValue() == 'T').toList(), "threads stopped after close");
            target.signal("USR2");
            String line = target.awaitLine("usr1", Duration.ofSeconds(10));
            assertEquals("usr1 " + sent, line.substring(0, line.indexOf(" created")), line);
        }
    }

    static long word(Tracer tracer, long address) {
        return ByteBuffer.wrap(tracer.read(address, 8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    static void awaitWord(Tracer tracer, long address, long want, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        long now;
        while ((now = word(tracer, address)) != want) {
            assertTrue(now < want, what + ": " + now + " > " + want + " (delivered twice)");
            assertTrue(System.nanoTime() < deadline, what + ": " + now + " of " + want);
            Thread.sleep(0, 200_000);
        }
    }
}
