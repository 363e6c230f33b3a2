package dev.suture.live;

import dev.suture.proc.Mapping;
import dev.suture.proc.Maps;
import dev.suture.proc.Mman;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.ThreadState;
import dev.suture.proc.Tracer;
import dev.suture.sys.FaultInjection;
import dev.suture.sys.Syscalls;
import dev.suture.unwind.ProcessCode;
import dev.suture.unwind.StackSampler;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Principle 1, "prepare everything before the target stops", in one place: what a transaction does, while the
 * target runs, so that its holds meet compiled code, linked native calls, parsed CFI, touched buffers and pages.
 * Why each step is there, and what it saves, is in docs/apply.md ("What keeps the holds short").
 *
 * <p>In {@code live} because what it prepares spans the layers only {@code live} sees together: the tracer
 * ({@code proc}), the stack sampler ({@code unwind}), windows and the journal ({@code live}). Two tricks act inside
 * the holds, on the tracer thread, below this layer, and stay there: the tracer thread's real-time priority and
 * the JIT compiler kept off the cores ({@code proc.HoldPriority}); the journal's blank line, mapped before a hold
 * so that the record inside it is a store ({@link Journal#stub}, through {@code sys.MappedFile}).
 */
final class Preparation {
    /** Rounds of injected mmap, mprotect and munmap on the decoy: past the JIT's compile threshold. */
    private static final int INJECTIONS = 100;
    /** One-thread windows on the decoy: enough that a window's per-thread code is compiled too. */
    private static final int WINDOWS = 400;
    private static final long START_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(2);
    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;
    private static boolean rehearsed;

    private Preparation() {}

    /**
     * Right before a transaction's first hold (so a dry run, or a refused patch, costs nothing): a rehearsal of
     * every hold on a decoy process, once per JVM, then the target's tracer warmed up (native calls linked on its
     * thread, the Java side of a window's calls loaded). The injections come last, as an apply's first hold is one.
     */
    static void beforeFirstHold(Tracer target) {
        rehearseOnce();
        target.warmUp();
    }

    /** The rehearsal, unless this JVM has run it already. */
    static void rehearseOnce() {
        synchronized (Preparation.class) {
            if (!rehearsed) {
                rehearsed = true;
                FaultInjection.uncounted(Preparation::rehearse); // and the decoy's tracer thread, which inherits it
            }
        }
    }

    /**
     * A window made ready while the target still runs: CFI parsed (the patch regions' too, read from the target)
     * and the unwinder and buffers warmed up (by the sampler), the check rehearsed on threads where they sit, and
     * the pages the writes change copied-on-write.
     */
    static Window window(int pid, Tracer tracer, List<Image.Range> forbidden, List<ApplyTransaction.Write> writes) {
        var maps = Maps.read(pid);
        var regions = RegionCode.of(pid, maps, RemoteMemory.of(tracer));
        var sampler = new StackSampler(tracer, ProcessCode.load(pid, false, regions));
        var guard = new StackGuard(forbidden, sampler, StackGuard.ranges(maps), () -> StackGuard.ranges(
                Maps.read(pid)));
        guard.rehearse(tracer);
        touch(tracer, writes);
        return new Window(pid, tracer, sampler, guard, writes);
    }

    /**
     * Writes back, while the target runs, the bytes each write will replace, exactly as they are now: the kernel's
     * copy-on-write of a text page then happens here, and the window's write only changes bytes in a page the
     * process already owns. Nothing the process sees changes.
     */
    private static void touch(Tracer tracer, List<ApplyTransaction.Write> writes) {
        for (var w : writes) {
            tracer.write(w.address(), tracer.read(w.address(), w.bytes().length));
        }
    }

    /**
     * Runs the holds of a transaction on a decoy (a {@code sleep} started for it), so that the target's holds meet
     * the same code compiled. Best effort: if the decoy cannot be started or traced, the transaction goes on cold.
     */
    private static void rehearse() {
        long start = System.nanoTime();
        int decoy = -1;
        try {
            decoy = startDecoy();
            rehearseOn(decoy);
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

    private static void rehearseOn(int pid) throws IOException {
        try (var tracer = Tracer.attach(pid); var journal = Journal.scratch()) {
            tracer.injectionLog(journal);
            // a window that writes back the bytes at the decoy's first instruction, with a forbidden range no
            // thread can be in: the whole check runs, and the writes too
            Mapping text = Maps.read(pid).stream().filter(Mapping::executable).findFirst().orElseThrow();
            byte[] now = tracer.read(text.start(), 5);
            var writes = List.of(new ApplyTransaction.Write(text.start(), now, now));
            var window = window(pid, tracer, List.of(new Image.Range("nothing", 1, 2)), writes);
            tracer.onTracerThread(() -> { // on the tracer thread: no hand-off between threads per call
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
     * reaps its children, and would take their ptrace stops) and returns its pid once it sleeps. It may use one
     * second of CPU ({@code ulimit -t 1}; sleeping and rehearsed on, it uses milliseconds): a suture killed while a
     * rehearsed system call runs leaves the decoy's thread in the stub's self-loop ({@code jmp .}), which no
     * recovery undoes (the rehearsal's journal is nobody's), and the kernel then kills it after a second instead
     * of letting it spin forever.
     */
    static int startDecoy() throws IOException, InterruptedException {
        var shell = new ProcessBuilder("/bin/sh", "-c",
                "(ulimit -c 0; ulimit -t 1; exec sleep 30) </dev/null >/dev/null 2>&1 & echo $!")
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
