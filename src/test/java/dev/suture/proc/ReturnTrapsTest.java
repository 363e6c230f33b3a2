package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.sys.PerfBreakpoint;
import dev.suture.sys.Syscalls;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The signal of a breakpoint at a return can outlive suture: when suture is killed, the kernel detaches the
 * traced threads as suture's tracing thread exits, while the breakpoint's descriptor lives on until the JVM's
 * last thread is gone, and a thread that reaches the address in between gets the signal untraced (this is how a
 * CI run lost its target at a kill point of BusyFunctionTest's walk). These tests do exactly that to a program no
 * one traces: a breakpoint sending SIGTRAP kills it; the one {@link ReturnTraps} arms, with the signal it chooses,
 * fires as often and is dropped by the kernel.
 */
class ReturnTrapsTest {
    static final String PROG_C = """
            #define _GNU_SOURCE
            #include <signal.h>
            #include <stdio.h>
            #include <string.h>
            #include <sys/resource.h>
            #include <time.h>
            #include <unistd.h>
            static void caught(int sig) { printf("CAUGHT %d\\n", sig); fflush(stdout); }
            __attribute__((noinline)) void tick(int n) { printf("tick %d\\n", n); fflush(stdout); }
            int main(int argc, char **argv) {
                alarm(120);
                struct rlimit none = {0, 0};
                setrlimit(RLIMIT_CORE, &none); /* the SIGTRAP that kills it in one test dumps no core */
                /* "urg": the program catches SIGURG; "both": SIGURG and SIGWINCH; "blockurg": blocks SIGURG */
                const char *mode = argc > 1 ? argv[1] : "";
                if (strstr(mode, "urg") == mode || !strcmp(mode, "both")) signal(SIGURG, caught);
                if (!strcmp(mode, "both")) signal(SIGWINCH, caught);
                if (!strcmp(mode, "blockurg")) {
                    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGURG); sigprocmask(SIG_BLOCK, &s, 0);
                    signal(SIGURG, SIG_DFL);
                }
                printf("tick at %p\\n", (void *) tick); fflush(stdout);
                for (int n = 0;; n++) {
                    tick(n);
                    struct timespec t = {0, 20 * 1000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    @TempDir
    static Path dir;
    static Path exe;

    @BeforeAll
    static void compile() throws Exception {
        exe = Gcc.compile(dir, "ticker", PROG_C, "-O2");
    }

    private static long tickAddress(Target t) throws Exception {
        String line = t.awaitLine(l -> l.startsWith("tick at "), Duration.ofSeconds(10));
        return Long.parseUnsignedLong(line.substring("tick at 0x".length()).strip(), 16);
    }

    @Test
    void aSignalOfOursThatReachesTheProgramUntracedIsDropped() throws Exception {
        // the counterfactual first: the same breakpoint sending SIGTRAP kills the untraced program at its next hit
        try (var t = Target.start(exe)) {
            long tick = tickAddress(t);
            t.awaitLine(l -> l.equals("tick 2"), Duration.ofSeconds(10));
            int fd = PerfBreakpoint.arm(t.pidInt(), tick, 5);
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
                while (t.alive() && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                assertFalse(t.alive(), "a SIGTRAP breakpoint left armed should have killed it: " + t.output());
            } finally {
                Syscalls.close(fd);
            }
        }
        try (var t = Target.start(exe)) {
            long tick = tickAddress(t);
            t.awaitLine(l -> l.equals("tick 2"), Duration.ofSeconds(10));
            var traps = new ReturnTraps(t.pidInt());
            traps.armOnly(List.of(new Tracer.Exit(t.pidInt(), tick, 0)));
            try {
                assertEquals(ReturnTraps.SIGNALS.getFirst(), traps.signal(), "SIGURG for a program that ignores it");
                int mark = t.lines().size();
                t.awaitLine(l -> l.startsWith("tick "), Duration.ofSeconds(10), mark + 20); // 20 hits, untraced
                assertTrue(t.alive(), t.output());
            } finally {
                traps.disarmAll();
            }
        }
    }

    @Test
    void theSignalIsOneTheProgramNeitherCatchesNorBlocks() throws Exception {
        for (var mode : List.of("urg", "blockurg")) {
            try (var t = Target.start(exe, mode)) {
                long tick = tickAddress(t);
                var traps = new ReturnTraps(t.pidInt());
                traps.armOnly(List.of(new Tracer.Exit(t.pidInt(), tick, 0)));
                try {
                    assertEquals(28, traps.signal(), mode + ": SIGWINCH");
                    int mark = t.lines().size();
                    t.awaitLine(l -> l.startsWith("tick "), Duration.ofSeconds(10), mark + 10);
                    assertTrue(t.alive(), t.output());
                    assertTrue(t.lines().stream().noneMatch(l -> l.startsWith("CAUGHT")), t.output());
                } finally {
                    traps.disarmAll();
                }
            }
        }
        try (var t = Target.start(exe, "both")) {
            long tick = tickAddress(t);
            var traps = new ReturnTraps(t.pidInt());
            var e = assertThrows(Tracer.CannotWait.class,
                    () -> traps.armOnly(List.of(new Tracer.Exit(t.pidInt(), tick, 0))));
            assertTrue(e.getMessage().contains("SIGURG and SIGWINCH"), e.getMessage());
            assertEquals(0, traps.signal());
            traps.disarmAll();
        }
    }
}
