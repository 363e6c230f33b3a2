package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.proc.Maps;
import dev.suture.proc.RemoteMemory;
import dev.suture.sys.Ptrace;
import dev.suture.sys.Syscalls;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Apply and revert under conditions a production process brings along (issue 6): a stream of signals that must
 * each arrive exactly once, a process stopped with SIGSTOP that must stay stopped, a process that dies while it
 * is being patched, and a patched library whose file was deleted or replaced on disk.
 */
class HostileConditionsTest {
    /**
     * Main prints value() every 10 ms; three workers sleep. Mode "signals" forks two senders: one queues a
     * real-time signal carrying a sequence number to the process and to each thread every millisecond, the other
     * sends SIGUSR1s, each only once the previous one was handled (standard signals coalesce); SIGUSR2 ends the
     * stream and makes main report what arrived. Mode "exit" keeps a worker inside held() forever, so a patch of
     * held() can never be applied, and SIGUSR2 makes main exit(0).
     */
    static final String PROGRAM = """
            #define _GNU_SOURCE
            #include <errno.h>
            #include <pthread.h>
            #include <signal.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <string.h>
            #include <sys/mman.h>
            #include <sys/prctl.h>
            #include <sys/syscall.h>
            #include <time.h>
            #include <unistd.h>

            #define WORKERS 3
            #define RT_MAX 400000

            struct shared {
                volatile int tids[WORKERS + 1];
                volatile int stop, rt_done, usr1_done;
                volatile long usr1_sent, usr1_recv, usr1_slow, rt_sent, rt_refused, rt_bad;
                volatile unsigned char rt_count[RT_MAX + 1];
            };
            static struct shared *sh;
            static volatile int quit, exit_mode, never;

            static void nap(long us) {
                struct timespec t = {us / 1000000, (us % 1000000) * 1000L};
                while (nanosleep(&t, &t) != 0 && errno == EINTR)
                    ; /* a signal handler ran: sleep the rest */
            }

            int value(void) {
                return 1;
            }

            int held(volatile int *stop) {
                while (!*stop)
                    nap(5000);
                return 1;
            }

            static void on_usr1(int sig) {
                __sync_fetch_and_add(&sh->usr1_recv, 1);
            }

            static void on_usr2(int sig) {
                sh->stop = 1;
                quit = 1;
            }

            static void on_rt(int sig, siginfo_t *si, void *ctx) {
                int v = si->si_value.sival_int;
                if (si->si_code != SI_QUEUE || v < 1 || v > RT_MAX)
                    __sync_fetch_and_add(&sh->rt_bad, 1);
                else
                    __sync_fetch_and_add(&sh->rt_count[v], 1);
            }

            static void *worker(void *arg) {
                long i = (long) arg;
                sh->tids[i] = (int) syscall(SYS_gettid);
                if (exit_mode && i == 1)
                    held(&never);
                for (;;)
                    nap(2000);
                return 0;
            }

            static int queue_rt(pid_t pid, int tid, int v) {
                siginfo_t si;
                memset(&si, 0, sizeof si);
                si.si_signo = SIGRTMIN;
                si.si_code = SI_QUEUE;
                si.si_pid = getpid();
                si.si_uid = getuid();
                si.si_value.sival_int = v;
                for (int tries = 0; tries < 4000; tries++) {
                    long r = tid ? syscall(SYS_rt_tgsigqueueinfo, pid, tid, SIGRTMIN, &si)
                                 : syscall(SYS_rt_sigqueueinfo, pid, SIGRTMIN, &si);
                    if (r == 0)
                        return 1;
                    if (errno != EAGAIN)
                        return 0;
                    nap(500); /* the queue is full: let the target catch up */
                }
                return 0;
            }

            static void become_sender(pid_t pid) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != pid)
                    _exit(0);
                alarm(120);
            }

            /* a real-time signal to the process and one to each thread, every millisecond */
            static void send_rt(pid_t pid) {
                become_sender(pid);
                int v = 0;
                while (!sh->stop && v + WORKERS + 2 < RT_MAX) {
                    for (int k = -1; k <= WORKERS; k++) {
                        /* k = -1: to the process (any thread may take it); else to thread k (0 is main) */
                        if (queue_rt(pid, k < 0 ? 0 : sh->tids[k], v + 1))
                            sh->rt_sent = ++v;
                        else
                            sh->rt_refused++;
                    }
                    nap(1000);
                }
                sh->rt_done = 1;
                _exit(0);
            }

            /* SIGUSR1 to the process or to one thread, the next only once the previous one was handled */
            static void send_usr1(pid_t pid) {
                become_sender(pid);
                for (long round = 0; !sh->stop; round++) {
                    long before = sh->usr1_recv;
                    int r = round % 2 ? kill(pid, SIGUSR1)
                                      : (int) syscall(SYS_tgkill, pid, sh->tids[(round / 2) % (WORKERS + 1)], SIGUSR1);
                    if (r == 0) {
                        sh->usr1_sent++;
                        int w = 0;
                        while (sh->usr1_recv == before && w++ < 30000)
                            nap(100);
                        if (sh->usr1_recv == before)
                            sh->usr1_slow++;
                    }
                    nap(300);
                }
                sh->usr1_done = 1;
                _exit(0);
            }

            static void report(void) {
                for (int w = 0; !(sh->rt_done && sh->usr1_done) && w < 5000; w++)
                    nap(1000);
                long recv = 0, dup = 0, missing = 0, beyond = 0;
                for (int w = 0; w < 3000; w++) {
                    recv = 0;
                    for (int v = 1; v <= sh->rt_sent; v++)
                        recv += sh->rt_count[v];
                    if (recv >= sh->rt_sent && sh->usr1_recv >= sh->usr1_sent)
                        break;
                    nap(1000);
                }
                nap(50000); /* anything delivered twice arrives meanwhile */
                recv = 0;
                for (int v = 1; v <= RT_MAX; v++) {
                    recv += sh->rt_count[v];
                    if (sh->rt_count[v] > 1)
                        dup++;
                    if (v <= sh->rt_sent && sh->rt_count[v] == 0)
                        missing++;
                    if (v > sh->rt_sent && sh->rt_count[v] > 0)
                        beyond++;
                }
                printf("report done %d usr1 sent %ld recv %ld slow %ld rt sent %ld recv %ld dup %ld missing %ld"
                       " beyond %ld bad %ld refused %ld\\n", sh->rt_done && sh->usr1_done, sh->usr1_sent, sh->usr1_recv,
                       sh->usr1_slow, sh->rt_sent, recv, dup, missing, beyond, sh->rt_bad, sh->rt_refused);
            }

            int main(int argc, char **argv) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                sh = mmap(0, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                int signals = argc > 1 && strcmp(argv[1], "signals") == 0;
                exit_mode = argc > 1 && strcmp(argv[1], "exit") == 0;
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_flags = SA_RESTART;
                sa.sa_handler = on_usr1;
                sigaction(SIGUSR1, &sa, 0);
                sa.sa_handler = on_usr2;
                sigaction(SIGUSR2, &sa, 0);
                sa.sa_flags = SA_RESTART | SA_SIGINFO;
                sa.sa_sigaction = on_rt;
                sigaction(SIGRTMIN, &sa, 0);
                sh->tids[0] = getpid();
                for (long i = 1; i <= WORKERS; i++) {
                    pthread_t t;
                    pthread_create(&t, 0, worker, (void *) i);
                }
                for (int i = 1; i <= WORKERS; i++)
                    while (!sh->tids[i])
                        nap(1000);
                pid_t me = getpid();
                if (signals && fork() == 0)
                    send_rt(me);
                if (signals && fork() == 0)
                    send_usr1(me);
                int reported = 0;
                for (;;) {
                    printf("value %d\\n", value());
                    if (quit && exit_mode)
                        exit(0);
                    if (quit && signals && !reported) {
                        report();
                        reported = 1;
                    }
                    nap(10000);
                }
            }
            """;

    static final String PATCHED = PROGRAM
            .replace("int value(void) {\n    return 1;", "int value(void) {\n    return 2;")
            .replace("        nap(5000);\n    return 1;", "        nap(5000);\n    return 2;");

    static final String ID = "hostile-fix";
    private static final Duration WAIT = Duration.ofSeconds(15);

    @TempDir
    static Path dir;
    static Path exe;
    static Path patch;

    private static String runDirBefore;

    /** Journals and locks of this class's transactions go to a temporary run directory (unless SUTURE_RUN_DIR). */
    @BeforeAll
    static void runDirectory() throws IOException {
        runDirBefore = System.setProperty("suture.runDir", Files.createDirectories(dir.resolve("run")).toString());
    }

    @AfterAll
    static void restoreRunDirectory() {
        if (runDirBefore == null) {
            System.clearProperty("suture.runDir");
        } else {
            System.setProperty("suture.runDir", runDirBefore);
        }
    }

    @BeforeAll
    static void build() throws IOException {
        if (PATCHED.equals(PROGRAM) || !PATCHED.contains("return 2;\n}\n\nint held")
                || !PATCHED.contains("nap(5000);\n    return 2;")) {
            throw new AssertionError("the patched source does not change value() and held()");
        }
        var built = Fixture.program(dir, "hostile", PROGRAM, PATCHED, ID, true);
        exe = built.exe();
        patch = built.patchFile();
    }

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    private static String pid(Target t) {
        return Long.toString(t.pid());
    }

    private static final Pattern REPORT = Pattern.compile("report done (\\d+) usr1 sent (\\d+) recv (\\d+) slow (\\d+)"
            + " rt sent (\\d+) recv (\\d+) dup (\\d+) missing (\\d+) beyond (\\d+) bad (\\d+) refused (\\d+)");

    @Test
    void everySignalArrivesExactlyOnceThroughApplyAndRevert() throws Exception {
        try (var t = Target.start(exe, "signals")) {
            Fixture.await(t, 0, "value 1", 3);
            for (int round = 0; round < 3; round++) {
                var applied = Cli.run("apply", "-p", pid(t), patch.toString());
                assertEquals(0, applied.code(), applied.out() + applied.err());
                Fixture.await(t, t.lines().size() + 1, "value 2", 3);
                var reverted = Cli.run("revert", "-p", pid(t), ID);
                assertEquals(0, reverted.code(), reverted.out() + reverted.err());
                Fixture.await(t, t.lines().size() + 1, "value 1", 3);
            }
            t.signal("USR2");
            String line = t.awaitLine(l -> l.startsWith("report"), WAIT);
            var m = REPORT.matcher(line);
            assertTrue(m.find(), line);
            long[] n = new long[12];
            for (int i = 1; i <= 11; i++) {
                n[i] = Long.parseLong(m.group(i));
            }
            assertEquals(1, n[1], "the sender did not finish: " + line);
            assertTrue(n[2] >= 20 && n[5] >= 100, "too few signals sent to prove anything: " + line);
            assertTrue(n[5] < 400_000 - 10, "the stream ran out before the last revert: " + line);
            assertEquals(n[2], n[3], "SIGUSR1 sent != received: " + line);
            assertEquals(n[5], n[6], "real-time signals sent != received: " + line);
            assertEquals(0, n[7], "real-time signals delivered twice: " + line);
            assertEquals(0, n[8], "real-time signals lost: " + line);
            assertEquals(0, n[9] + n[10], "real-time signals with values never sent: " + line);
            assertEquals(0, n[11], "the kernel refused to queue: " + line);
        }
    }

    @Test
    void stoppedProcessStaysStoppedIsPatchedAndRunsPatchedOnContinue() throws Exception {
        try (var t = Target.start(exe, "plain")) {
            Fixture.await(t, 0, "value 1", 2);
            t.signal("STOP");
            awaitStopped(t);
            int mark = t.lines().size();
            var applied = Cli.run("apply", "-p", pid(t), patch.toString());
            assertEquals(0, applied.code(), applied.out() + applied.err());
            assertStaysStopped(t, mark, "apply");
            assertEquals(List.of(ID), Patcher.applied(t.pidInt()).stream().map(Patcher.AppliedPatch::patchId)
                    .toList());
            t.signal("CONT");
            Fixture.await(t, mark + 1, "value 2", 3);

            t.signal("STOP");
            awaitStopped(t);
            mark = t.lines().size();
            var reverted = Cli.run("revert", "-p", pid(t), ID);
            assertEquals(0, reverted.code(), reverted.out() + reverted.err());
            assertStaysStopped(t, mark, "revert");
            assertTrue(Patcher.applied(t.pidInt()).isEmpty());
            t.signal("CONT");
            Fixture.await(t, mark + 1, "value 1", 3);
        }
    }

    /** Every thread in group-stop ('T'), within a bound. */
    private static void awaitStopped(Target t) {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!Procs.notInState(t.pid(), 'T').isEmpty()) {
            assertTrue(System.nanoTime() < deadline, "not stopped: " + Procs.notInState(t.pid(), 'T'));
            Fixture.sleep(5);
        }
    }

    /** After suture let go: the process is in state 'T' (every thread) and prints nothing for a while. */
    private static void assertStaysStopped(Target t, int mark, String what) throws IOException {
        awaitStopped(t);
        Fixture.sleep(150);
        assertEquals("", Procs.notInState(t.pid(), 'T'), "threads running after " + what);
        String stat = Files.readString(Path.of("/proc/" + t.pid() + "/stat"));
        assertEquals('T', stat.charAt(stat.lastIndexOf(')') + 2), stat);
        assertEquals(mark, t.lines().size(), "a stopped process printed after " + what + ":\n" + t.output());
    }

    @Test
    void processDyingDuringApplyIsReportedVanished() throws Exception {
        var pool = Executors.newSingleThreadExecutor();
        try {
            // held() is always on a stack, so the apply retries until its timeout: it is in progress when the
            // process goes, whether it is killed or exits by itself
            record Case(long delayMillis, boolean kill) {}
            for (var c : List.of(new Case(0, true), new Case(15, true), new Case(120, true), new Case(60, false))) {
                try (var t = Target.start(exe, "exit")) {
                    Fixture.await(t, 0, "value 1", 2);
                    var running = pool.submit(() -> Cli.run("apply", "-p", pid(t), "--timeout", "20000",
                            patch.toString()));
                    awaitTraced(t, running, c.toString());
                    Fixture.sleep(c.delayMillis());
                    if (c.delayMillis() > 100) {
                        awaitJournal(t, running); // killed inside the transaction, its journal written
                    }
                    assertTrue(!running.isDone(), "apply ended before the process went");
                    if (c.kill()) {
                        Syscalls.kill(t.pidInt(), Ptrace.SIGKILL);
                    } else {
                        t.signal("USR2");
                    }
                    var r = running.get(30, TimeUnit.SECONDS);
                    assertEquals(6, r.code(), c + ": " + r.out() + r.err());
                    assertTrue(r.err().contains("process " + t.pid() + " vanished"), c + ": " + r.err());
                    assertTrue(!Files.exists(RunDirectory.journal(t.pidInt())), c + ": journal left behind in "
                            + RunDirectory.path());
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static void awaitJournal(Target t, Future<Cli.Result> running) {
        long deadline = System.nanoTime() + 2 * WAIT.toNanos();
        while (!Files.exists(RunDirectory.journal(t.pidInt()))) {
            assertTrue(!running.isDone() && System.nanoTime() < deadline, "no journal " + RunDirectory.journal(t.pidInt()));
            Fixture.sleep(1);
        }
    }

    /** Until a thread of this JVM traces the target's main thread: the apply has attached. */
    private static void awaitTraced(Target t, Future<Cli.Result> running, String what) throws Exception {
        long deadline = System.nanoTime() + 2 * WAIT.toNanos(); // the first in-process apply loads many classes
        while (Procs.tracerOf(t.pid(), t.pidInt()) == 0) {
            if (running.isDone()) {
                var r = running.get();
                throw new AssertionError(what + ": apply ended before it was seen attached: " + r.code() + " "
                        + r.out() + r.err());
            }
            assertTrue(System.nanoTime() < deadline, what + ": apply never attached to " + t.pid());
            Fixture.sleep(1);
        }
    }

    @Test
    void revertAfterThePatchedLibraryWasDeletedOrReplaced() throws Exception {
        for (boolean replace : new boolean[] {false, true}) {
            Path d = Files.createDirectories(dir.resolve(replace ? "replaced" : "deleted"));
            Path orig = Fixture.object(d, "orig", "lib", SharedLibraryPatchTest.LIBRARY, "-fPIC");
            Path patched = Fixture.object(d, "patched", "lib", SharedLibraryPatchTest.LIBRARY
                    .replace("return x + 1;", "return x * 100 + calls;"), "-fPIC");
            Path lib = Fixture.link(d, "libvalue.so", List.of(orig), "-shared");
            Path main = Fixture.object(d, "main", "main", SharedLibraryPatchTest.PROGRAM, "-fPIE");
            Path prog = Fixture.link(d, "prog", List.of(main), "-pie", "-L" + d, "-lvalue", "-Wl,-rpath," + d);
            Path libPatch = d.resolve("lib-fix.suture");
            Fixture.diff(lib, List.of(orig), List.of(patched), "lib-fix", libPatch);
            Path other = Fixture.link(d, "libother.so", List.of(patched), "-shared");

            String libPath = lib.toRealPath().toString();
            try (var t = Target.start(prog)) {
                Fixture.await(t, 0, "lib 11", 2);
                var text = Maps.read(t.pidInt()).stream()
                        .filter(m -> m.path().equals(libPath) && m.perms().contains("x"))
                        .findFirst().orElseThrow();
                byte[] before = read(t, text.start(), text.end());
                var applied = Cli.run("apply", "-p", pid(t), libPatch.toString());
                assertEquals(0, applied.code(), applied.out() + applied.err());
                // the new code prints 100 * 10 + its call count: 1001 and up
                t.awaitLine(l -> l.matches("lib \\d{4,}"), WAIT, t.lines().size() + 1);

                Files.delete(lib);
                if (replace) {
                    Files.copy(other, lib, StandardCopyOption.REPLACE_EXISTING);
                }
                var info = Cli.run("info", "-p", pid(t));
                assertEquals(0, info.code(), info.out() + info.err());
                assertTrue(info.out().contains("lib-fix") && info.out().contains("libvalue.so"), info.out());

                var reverted = Cli.run("revert", "-p", pid(t), "lib-fix");
                assertEquals(0, reverted.code(), (replace ? "replaced: " : "deleted: ") + reverted.out()
                        + reverted.err());
                Fixture.await(t, t.lines().size() + 1, "lib 11", 2);
                assertArrayEquals(before, read(t, text.start(), text.end()));
                assertTrue(Patcher.applied(t.pidInt()).isEmpty());
            }
        }
    }

    private static byte[] read(Target t, long start, long end) throws IOException {
        byte[] b = new byte[(int) (end - start)];
        try (var mem = RemoteMemory.open(t.pidInt())) {
            assertEquals(b.length, mem.read(start, b, 0, b.length));
        }
        return b;
    }
}

