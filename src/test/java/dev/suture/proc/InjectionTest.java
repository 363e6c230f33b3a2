package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.sys.Syscalls;
import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.io.FileOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * mmap/mprotect/munmap run inside a target by borrowing its only thread while that thread is blocked in
 * nanosleep or in read on a pipe: the mapping appears where asked, and the target's output is exactly what it
 * would have been (the interrupted call restarted, slept its full time, read its data).
 */
class InjectionTest {
    @TempDir
    Path dir;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void borrowedThreadInNanosleepSleepsItsFullTime() throws Exception {
        Path exe = Gcc.compile(dir, "sleeper", """
                #include <errno.h>
                #include <stdio.h>
                #include <time.h>
                #include <unistd.h>
                static long now_ms(void) {
                    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                    return t.tv_sec * 1000L + t.tv_nsec / 1000000;
                }
                int main(void) {
                    alarm(120); /* ends by itself even if the test dies before killing it */
                    for (int i = 0; ; i++) {
                        printf("sleep %d\\n", i); fflush(stdout);
                        long start = now_ms();
                        struct timespec ts = {0, 300 * 1000000L};
                        int r = nanosleep(&ts, 0);
                        int e = r ? errno : 0;
                        printf("woke %d r=%d errno=%d full=%d\\n", i, r, e, now_ms() - start >= 300); fflush(stdout);
                    }
                }
                """, "-O1");
        try (var target = Target.start(exe)) {
            target.awaitLine("sleep 1", Duration.ofSeconds(10));
            Thread.sleep(50); // well inside nanosleep
            int pid = target.pidInt();
            try (var tracer = Tracer.attach(pid)) {
                var exeModule = Modules.of(pid).executable().orElseThrow();
                tracer.stopAll("test");
                int tid = tracer.threads().getFirst();
                var before = tracer.registers(tid);
                assertTrue(before.orig_rax() == 35 || before.orig_rax() == 230, "in nanosleep/clock_nanosleep: "
                        + before.orig_rax());
                long region = tracer.mmapNear(exeModule.start(), exeModule.end(), 3 * 4096,
                        Mman.PROT_READ | Mman.PROT_WRITE);
                assertEquals(before, tracer.registers(tid), "registers restored");
                assertMapped(pid, region, 3 * 4096, "rw-p");
                assertTrue(Math.abs(region - exeModule.start()) < (1L << 31)
                        && Math.abs(region + 3 * 4096 - exeModule.end()) < (1L << 31), "within 2 GiB of the exe");
                tracer.write(region, "hello".getBytes(StandardCharsets.US_ASCII));
                assertEquals("hello", new String(tracer.read(region, 5), StandardCharsets.US_ASCII));
                tracer.mprotect(region, 4096, Mman.PROT_READ);
                assertMapped(pid, region, 4096, "r--p");
                tracer.munmap(region + 4096, 2 * 4096);
                assertEquals(before, tracer.registers(tid), "registers restored");
                tracer.resumeAll();
                // the process running: the injection stops and resumes it by itself
                long second = tracer.mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                assertMapped(pid, second, 4096, "r--p");
            }
            // two more full sleeps after ours, then compare everything printed up to there
            int n = target.lines().size() / 2 + 2;
            target.awaitLine("woke " + n + " ", Duration.ofSeconds(10));
            var lines = target.lines().subList(0, 2 * n + 2);
            var expected = new ArrayList<String>();
            for (int i = 0; i <= n; i++) {
                expected.add("sleep " + i);
                expected.add("woke " + i + " r=0 errno=0 full=1");
            }
            assertEquals(expected, lines);
        }
    }

    @Test
    void borrowedThreadInReadOnAPipeReadsItsData() throws Exception {
        Path fifo = fifo();
        Path exe = reader();
        try (var target = Target.start(exe, fifo.toString())) {
            try (var writer = openWriter(fifo)) {
                writer.write("one".getBytes(StandardCharsets.US_ASCII));
                writer.flush();
                target.awaitLine("got one", Duration.ofSeconds(10));
                target.awaitLine(l -> l.equals("reading"), Duration.ofSeconds(10), 2);
                Thread.sleep(50);
                int pid = target.pidInt();
                try (var tracer = Tracer.attach(pid)) {
                    tracer.stopAll("test");
                    int tid = tracer.threads().getFirst();
                    var before = tracer.registers(tid);
                    assertEquals(0, before.orig_rax(), "blocked in read");
                    var libc = Modules.of(pid).byName("libc.so.6").orElseThrow();
                    long region = tracer.mmapNear(libc.start(), libc.end(), 4096, Mman.PROT_READ | Mman.PROT_EXEC);
                    assertMapped(pid, region, 4096, "r-xp");
                    assertEquals(before, tracer.registers(tid));
                    tracer.munmap(region, 4096);
                    tracer.resumeAll();
                    // the process running: the thread is given back at its syscall-exit stop, its read
                    // restarted by hand (ERESTARTSYS)
                    long second = tracer.mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                    assertMapped(pid, second, 4096, "r--p");
                    Thread.sleep(20);
                    // still blocked in its own read, not returned with an error
                    assertEquals(List.of("reading", "got one", "reading"), target.lines());
                }
                writer.write("two".getBytes(StandardCharsets.US_ASCII));
                writer.flush();
                target.awaitLine("got two", Duration.ofSeconds(10));
            }
            target.awaitLine("eof", Duration.ofSeconds(10));
            assertEquals(List.of("reading", "got one", "reading", "got two", "reading", "eof"), target.lines());
        }
    }

    /**
     * A thread given back with its read restarted by hand, and a signal already pending before it runs again: it
     * must meet the signal as it would have without suture. Its handler has no SA_RESTART, so the read fails with
     * EINTR; had the restarted state stayed, the kernel would see no interrupted call, run the handler and read
     * again. The hand-over is the injector's (registers at an interrupt stop instead of a syscall-exit stop: both
     * return to user mode the same way), so that the signal is certain to come first.
     */
    @Test
    void signalBeforeAHandRestartedReadRunsGetsTheKernelsRules() throws Exception {
        Path fifo = fifo();
        Path exe = reader();
        try (var target = Target.start(exe, fifo.toString())) {
            try (var writer = openWriter(fifo)) {
                target.awaitLine("reading", Duration.ofSeconds(10));
                Thread.sleep(50); // inside read
                int pid = target.pidInt();
                try (var tracer = Tracer.attach(pid)) {
                    tracer.onTracerThread(() -> {
                        tracer.stopAll("test");
                        var t = tracer.traced(pid);
                        long[] saved = tracer.registers(pid).words();
                        assertEquals(-SyscallRestart.ERESTARTSYS, saved[10], "read interrupted by our stop");
                        var restart = SyscallRestart.of(pid, saved);
                        assertTrue(restart.byHand());
                        assertEquals(0, restart.registers()[10], "read again");
                        assertEquals(saved[16] - 2, restart.registers()[16], "from its syscall instruction");
                        tracer.setRegisters(pid, Registers.of(restart.registers()));
                        t.restartedByHand(restart);
                        Syscalls.tgkill(pid, pid, 10); // SIGUSR1, pending before it runs
                        tracer.resumeAll();
                        return null;
                    });
                    target.awaitLine("read failed errno=4", Duration.ofSeconds(10));
                }
                writer.write("two".getBytes(StandardCharsets.US_ASCII));
                writer.flush();
                target.awaitLine("got two", Duration.ofSeconds(10));
            }
            target.awaitLine("eof", Duration.ofSeconds(10));
            assertEquals(List.of("reading", "read failed errno=4", "reading", "got two", "reading", "eof"),
                    target.lines());
        }
    }

    /**
     * Reads the FIFO named by its argument in a loop, printing what each read gave; SIGUSR1 has a handler without
     * SA_RESTART, so a read it interrupts fails with EINTR.
     */
    private Path reader() throws Exception {
        return Gcc.compile(dir, "reader", """
                #include <errno.h>
                #include <fcntl.h>
                #include <signal.h>
                #include <stdio.h>
                #include <unistd.h>
                static void on_usr1(int sig) { (void) sig; }
                int main(int argc, char **argv) {
                    alarm(120); /* ends by itself even if the test dies before killing it */
                    struct sigaction sa = {0};
                    sa.sa_handler = on_usr1; /* no SA_RESTART: a read it interrupts fails with EINTR */
                    sigaction(SIGUSR1, &sa, 0);
                    int fd = open(argv[1], O_RDONLY);
                    char buf[64];
                    for (;;) {
                        printf("reading\\n"); fflush(stdout);
                        ssize_t n = read(fd, buf, sizeof buf);
                        if (n < 0) { printf("read failed errno=%d\\n", errno); fflush(stdout); continue; }
                        if (n == 0) { printf("eof\\n"); return 0; }
                        printf("got %.*s\\n", (int) n, buf); fflush(stdout);
                    }
                }
                """, "-O1");
    }

    private Path fifo() throws Exception {
        Path fifo = dir.resolve("fifo");
        Gcc.run(dir, "mkfifo", fifo.toString());
        return fifo;
    }

    /** Opens the FIFO for writing, which blocks until the reader has opened it. */
    private static FileOutputStream openWriter(Path fifo) throws Exception {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return new FileOutputStream(fifo.toFile());
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        }).get(10, TimeUnit.SECONDS);
    }

    static void assertMapped(int pid, long start, long length, String perms) {
        var maps = Maps.read(pid);
        var hit = maps.stream().filter(m -> m.start() <= start && start + length <= m.end()).findFirst();
        assertTrue(hit.isPresent(), "0x" + Long.toHexString(start) + " not mapped: " + maps);
        assertEquals(perms, hit.get().perms(), hit.get().toString());
    }
}
