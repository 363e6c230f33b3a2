package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.sys.NotPermittedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.Syscalls;
import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TracerTest {
    @TempDir
    Path dir;

    /** N worker threads counting in a shared array; main prints "tick" lines and the array's address. */
    static final String WORKERS = """
            #include <pthread.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <unistd.h>
            volatile long counter[64];
            volatile long marker = 0x1122334455667788;
            static void *work(void *arg) {
                long i = (long) arg;
                for (;;) { counter[i]++; usleep(500); }
                return 0;
            }
            int main(int argc, char **argv) {
                alarm(120); /* ends by itself even if the test dies before killing it */
                int n = argc > 1 ? atoi(argv[1]) : 4;
                for (long i = 0; i < n; i++) { pthread_t t; pthread_create(&t, 0, work, (void *) i); }
                printf("ready %p %p\\n", (void *) counter, (void *) &marker);
                fflush(stdout);
                for (long tick = 0; ; tick++) {
                    printf("tick %ld marker %lx\\n", tick, marker);
                    fflush(stdout);
                    usleep(2000);
                }
            }
            """;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(java.util.List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    static long hex(String word) {
        return Long.parseUnsignedLong(word.replace("0x", ""), 16);
    }

    @Test
    void attachStopReadWriteResumeDetach() throws Exception {
        Path exe = Gcc.compile(dir, "workers", WORKERS, "-O1", "-pthread");
        try (var target = Target.start(exe, "6")) {
            String[] ready = target.awaitLine("ready", Duration.ofSeconds(10)).split(" ");
            long counter = hex(ready[1]);
            long marker = hex(ready[2]);
            int pid = target.pidInt();
            try (var tracer = Tracer.attach(pid)) {
                assertEquals(Procs.tids(pid), tracer.threads());
                assertEquals(7, tracer.threads().size());
                tracer.warmUp();
                tracer.stopAll("test");
                assertEquals("", Procs.notInState(pid, 't'), "threads not in tracing stop");
                assertEquals(Procs.tids(pid), tracer.threads());
                byte[] before = tracer.read(counter, 6 * 8);
                Thread.sleep(20);
                assertArrayEquals(before, tracer.read(counter, 6 * 8), "counters moved while every thread was held");
                for (int tid : tracer.threads()) {
                    var regs = tracer.registers(tid);
                    assertNotEquals(0L, regs.rip(), "rip of " + tid);
                    assertNotEquals(0L, regs.fs_base(), "fs_base of " + tid);
                    tracer.setRegisters(tid, regs);
                    assertEquals(regs, tracer.registers(tid));
                }
                byte[] value = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0xfeedfaceL).array();
                tracer.write(marker, value);
                assertArrayEquals(value, tracer.read(marker, 8));
                tracer.resumeAll();
                target.awaitLine("marker feedface", Duration.ofSeconds(10));
                byte[] later = waitForChange(tracer, counter, before);
                assertTrue(later != null, "workers did not run after resumeAll");
            }
            assertEquals("", tracedThreads(pid), "threads still traced after close");
            int lines = target.lines().size();
            target.awaitLine(l -> l.startsWith("tick"), Duration.ofSeconds(10), lines);
        }
    }

    /**
     * An event this JVM could wait for that is not the new tracer's (another tracer's thread in group-stop, its
     * tracer busy) must not make an attach take its own process for gone: seizeAll's first look for events, made
     * before any thread was seized, read the empty map as "every thread exited".
     */
    @Test
    void anotherTracersPendingEventDoesNotMakeAnAttachedProcessLookGone() throws Exception {
        Path exe = Gcc.compile(dir, "workers", WORKERS, "-O1", "-pthread");
        var pool = Executors.newSingleThreadExecutor();
        try (var other = Target.start(exe, "1"); var target = Target.start(exe, "1")) {
            other.awaitLine("ready", Duration.ofSeconds(10));
            target.awaitLine("ready", Duration.ofSeconds(10));
            try (var busy = Tracer.attach(other.pidInt())) {
                var started = new CountDownLatch(1);
                var release = new CountDownLatch(1);
                var task = pool.submit(() -> busy.onTracerThread(() -> {
                    started.countDown();
                    try {
                        release.await(10, TimeUnit.SECONDS); // its tracer answers nothing
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return null;
                }));
                try {
                    assertTrue(started.await(10, TimeUnit.SECONDS));
                    Syscalls.kill(other.pidInt(), 19); // SIGSTOP: stops for the busy tracer to report
                    long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
                    while (Ptrace.peekWaitable() == 0 && System.nanoTime() < deadline) {
                        Thread.sleep(1);
                    }
                    assertNotEquals(0, Ptrace.peekWaitable(), "no event pending for the busy tracer");
                    try (var tracer = Tracer.attach(target.pidInt())) {
                        tracer.stopAll("test");
                        tracer.resumeAll();
                    }
                } finally {
                    release.countDown();
                    task.get(10, TimeUnit.SECONDS);
                    Syscalls.kill(other.pidInt(), 18); // SIGCONT
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void writesReadOnlyText() throws Exception {
        Path exe = Gcc.compile(dir, "text", """
                #include <stdio.h>
                #include <unistd.h>
                int answer(void) { return 41; }
                int main(void) {
                    alarm(120); /* ends by itself even if the test dies before killing it */
                    printf("ready %p\\n", (void *) answer); fflush(stdout);
                    for (;;) { printf("answer %d\\n", answer()); fflush(stdout); usleep(2000); }
                }
                """, "-O0");
        try (var target = Target.start(exe)) {
            long answer = hex(target.awaitLine("ready", Duration.ofSeconds(10)).split(" ")[1]);
            try (var tracer = Tracer.attach(target.pidInt())) {
                tracer.stopAll("test");
                // mov $42, %eax; ret
                tracer.write(answer, new byte[] {(byte) 0xb8, 42, 0, 0, 0, (byte) 0xc3});
                tracer.resumeAll();
                target.awaitLine("answer 42", Duration.ofSeconds(10));
            }
        }
    }

    @Test
    void stoppedProcessStaysStoppedAfterClose() throws Exception {
        Path exe = Gcc.compile(dir, "workers", WORKERS, "-O1", "-pthread");
        try (var target = Target.start(exe, "3")) {
            target.awaitLine("tick 1", Duration.ofSeconds(10));
            int pid = target.pidInt();
            target.signal("STOP");
            awaitStates(pid, 'T');
            try (var tracer = Tracer.attach(pid)) {
                Thread.sleep(20);
                tracer.stopAll("test");
                assertEquals("", Procs.notInState(pid, 't'));
                tracer.resumeAll();
                Thread.sleep(20);
                assertEquals("", Procs.notInState(pid, 't'), "group-stopped threads held by PTRACE_LISTEN");
            }
            awaitStates(pid, 'T');
            assertEquals("", tracedThreads(pid));
            int lines = target.lines().size();
            Thread.sleep(50);
            assertEquals(lines, target.lines().size(), "a stopped process printed");
            target.signal("CONT");
            target.awaitLine(l -> l.startsWith("tick"), Duration.ofSeconds(10), lines);
        }
    }

    @Test
    void anotherTracerIsNamed() throws Exception {
        Path exe = Gcc.compile(dir, "workers", WORKERS, "-O1", "-pthread");
        try (var target = Target.start(exe, "2")) {
            target.awaitLine("ready", Duration.ofSeconds(10));
            int pid = target.pidInt();
            var strace = new ProcessBuilder("strace", "-f", "-p", Integer.toString(pid), "-o", "/dev/null")
                    .redirectErrorStream(true).redirectOutput(dir.resolve("strace.log").toFile()).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (Procs.tracerOf(pid, pid) == 0) {
                    assertTrue(System.nanoTime() < deadline, "strace did not attach");
                    Thread.sleep(10);
                }
                var e = assertThrows(NotPermittedException.class, () -> Tracer.attach(pid));
                assertTrue(e.getMessage().contains("strace"), e.getMessage());
                assertTrue(e.getMessage().contains("already traced by pid " + strace.pid()), e.getMessage());
            } finally {
                strace.destroy();
                if (!strace.waitFor(5, TimeUnit.SECONDS)) {
                    strace.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
            }
        }
    }

    /**
     * gdb attached from its own session (as a person debugging would have it) holds the process while it runs a
     * bounded shell sleep: attaching names gdb and its pid, and {@code suture stacks} exits with 5 (not permitted).
     */
    @Test
    void gdbAttachedElsewhereIsNamedAndStacksExitsFive() throws Exception {
        Path exe = Gcc.compile(dir, "workers", WORKERS, "-O1", "-pthread");
        try (var target = Target.start(exe, "2")) {
            target.awaitLine("ready", Duration.ofSeconds(10));
            int pid = target.pidInt();
            String script = "setsid gdb -nx -batch -p " + pid + " -ex 'shell sleep 60' >'" + dir.resolve("gdb.log")
                    + "' 2>&1 </dev/null & echo $!";
            var sh = new ProcessBuilder("sh", "-c", script).redirectErrorStream(true).start();
            assertTrue(sh.waitFor(10, TimeUnit.SECONDS), "could not start gdb");
            long gdbPid = Long.parseLong(new String(sh.getInputStream().readAllBytes()).trim());
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (Procs.tracerOf(pid, pid) != gdbPid) {
                    // the message is built only on failure: gdb.log may not exist yet when the loop starts
                    assertTrue(System.nanoTime() < deadline, () -> "gdb did not attach: " + gdbLog());
                    Thread.sleep(20);
                }
                var e = assertThrows(NotPermittedException.class, () -> Tracer.attach(pid));
                assertTrue(e.getMessage().contains("already traced by pid " + gdbPid + " (gdb"), e.getMessage());
                var stacks = dev.suture.cli.Cli.run("stacks", "-p", Integer.toString(pid));
                assertEquals(5, stacks.code(), stacks.err());
                assertTrue(stacks.err().contains("gdb"), stacks.err());
            } finally {
                // the shell sleep first, so gdb detaches at once when told to end
                ProcessHandle.of(gdbPid).ifPresent(gdb -> {
                    gdb.descendants().forEach(ProcessHandle::destroyForcibly);
                    gdb.destroy();
                    try {
                        gdb.onExit().get(5, TimeUnit.SECONDS);
                    } catch (Exception timeout) {
                        gdb.destroyForcibly();
                    }
                });
            }
        }
    }

    private String gdbLog() {
        try {
            return java.nio.file.Files.readString(dir.resolve("gdb.log"));
        } catch (java.io.IOException e) {
            return "(no gdb.log: " + e.getMessage() + ")";
        }
    }

    static String tracedThreads(long pid) {
        var sb = new StringBuilder();
        for (int tid : Procs.tids(pid)) {
            if (Procs.tracerOf(pid, tid) != 0) {
                sb.append(tid).append(' ');
            }
        }
        return sb.toString();
    }

    static void awaitStates(long pid, char state) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Procs.notInState(pid, state).isEmpty()) {
            assertTrue(System.nanoTime() < deadline, "threads not in state " + state + ": "
                    + Procs.notInState(pid, state));
            Thread.sleep(5);
        }
    }

    private static byte[] waitForChange(Tracer tracer, long address, byte[] before) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            byte[] now = tracer.read(address, before.length);
            if (!java.util.Arrays.equals(now, before)) {
                return now;
            }
            Thread.sleep(2);
        }
        return null;
    }
}
