package dev.suture.live;

import dev.suture.proc.Mapping;
import dev.suture.proc.Maps;
import dev.suture.proc.Mman;
import dev.suture.proc.ThreadState;
import dev.suture.proc.Tracer;
import dev.suture.sys.FaultInjection;
import dev.suture.sys.Syscalls;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs what a transaction does while it holds the target's threads — injected system calls with their journal
 * records, whole windows (stop, check, write, resume) — on a decoy process first: a {@code sleep} started for
 * it. A fresh JVM runs its first calls interpreted, with classes still to load and link: measured on this
 * project's 2-core machine, that tripled the first window (0.6 ms instead of 0.2 ms with one thread, 5 ms
 * instead of 1.5 ms with 32) and made an injected mmap hold its thread for 3-4 ms instead of 0.2-0.6 ms. After
 * a few hundred rounds on the decoy the same code runs compiled, and the target's holds meet it so.
 *
 * <p>Once per JVM, right before a transaction's first hold (so a dry run, or a refused patch, costs nothing). It
 * takes 0.3-0.8 s here, much of which (loading classes, parsing libc's CFI) the transaction would otherwise spend
 * itself. Running it in the background while the patch was bound was tried: both then competed for the 2 cores
 * and the apply took longer. Best effort: if the decoy cannot be started or traced, the transaction goes on
 * cold. The decoy's calls are no steps of the fault-injection hook.
 */
final class Rehearsal {
    /**
     * Rounds of injected mmap, mprotect and munmap: the injector's and the journal's code, compiled. 300 calls,
     * past the 200 invocations after which C1 compiles a method (after 150 the target's mmap held its thread
     * 0.48-0.50 ms, after 300 0.39-0.44 ms, runs not interleaved). They come last, right before the target's
     * first hold, which is an injected mmap when applying: alternating applies of either order on one target
     * (12 each), that hold took 0.29 ms (median) with the injections last and 0.34 ms with the windows last.
     */
    private static final int INJECTIONS = 100;
    /**
     * One-thread windows: enough that the per-thread code of the window (run once per thread and window) is
     * compiled too, which a window over 128 threads needs: its check took 2.2-3.7 ms after 100 rehearsed windows,
     * 1.8-2.2 ms after 1000 (before registers were read during the stop).
     */
    private static final int WINDOWS = 400;
    private static final long START_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(2);
    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;
    private static boolean done;

    private Rehearsal() {}

    /** Rehearses, unless this JVM already has. */
    static synchronized void ensure() {
        if (!done) {
            done = true;
            FaultInjection.uncounted(Rehearsal::run); // and the decoy's tracer thread, which inherits it
        }
    }

    private static void run() {
        long start = System.nanoTime();
        int decoy = -1;
        try {
            decoy = startDecoy();
            rehearse(decoy);
            if (DEBUG) {
                System.err.printf("rehearsal: %d windows and %d injected calls on decoy pid %d in %d ms%n", WINDOWS,
                        3 * INJECTIONS, decoy, (System.nanoTime() - start) / 1_000_000);
            }
        } catch (RuntimeException | IOException e) {
            if (DEBUG) {
                System.err.println("rehearsal: skipped: " + e);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            if (decoy > 0) {
                try {
                    Syscalls.kill(decoy, 9);
                } catch (RuntimeException ignored) {
                    // ended by itself
                }
            }
        }
    }

    private static void rehearse(int pid) throws IOException {
        try (var tracer = Tracer.attach(pid); var journal = Journal.scratch()) {
            tracer.injectionLog(journal);
            // a window that writes back the bytes at the decoy's first instruction, with a forbidden range no
            // thread can be in: the whole check runs, and the writes too
            Mapping text = Maps.read(pid).stream().filter(Mapping::executable).findFirst().orElseThrow();
            byte[] now = tracer.read(text.start(), 5);
            var writes = List.of(new ApplyTransaction.Write(text.start(), now, now));
            var window = new Window(pid, tracer, List.of(new Image.Range("nothing", 1, 2)), writes);
            tracer.run(() -> { // on the tracer thread: no hand-off between threads per call
                for (int i = 0; i < WINDOWS; i++) {
                    window.attempt();
                }
                for (int i = 0; i < INJECTIONS; i++) {
                    long at = tracer.mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                    tracer.mprotect(at, 4096, Mman.PROT_READ | Mman.PROT_WRITE);
                    tracer.munmap(at, 4096);
                }
                return null;
            });
        }
    }

    /**
     * Starts {@code sleep} detached (through a shell that exits at once, so it is not this JVM's child: the JVM
     * reaps its children, and would take their ptrace stops) and returns its pid once it sleeps.
     */
    private static int startDecoy() throws IOException, InterruptedException {
        var shell = new ProcessBuilder("/bin/sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!")
                .redirectErrorStream(true).start();
        String out = new String(shell.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        if (!shell.waitFor(2, TimeUnit.SECONDS)) {
            shell.destroyForcibly();
            throw new IOException("the shell that starts the decoy did not exit");
        }
        int pid = Integer.parseInt(out);
        long deadline = System.nanoTime() + START_TIMEOUT_NANOS;
        Path comm = Path.of("/proc/" + pid + "/comm");
        while (!(Files.exists(comm) && Files.readString(comm).strip().equals("sleep")
                && ThreadState.of(pid, pid) == 'S')) {
            if (System.nanoTime() > deadline) {
                Syscalls.kill(pid, 9);
                throw new IOException("the decoy pid " + pid + " did not start sleeping");
            }
            Thread.sleep(1);
        }
        return pid;
    }
}
