package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.suture.SutureException;
import dev.suture.cli.Cli;
import dev.suture.patch.PatchFile;
import dev.suture.proc.Maps;
import dev.suture.proc.Modules;
import dev.suture.proc.RemoteMemory;
import dev.suture.testing.Target;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile patch files (issue 6, item 4): mutants of three real patches (made by the Differ from gcc builds: a PIE
 * program with a replaced function, a new function, new data, its own TLS and a libc call; a non-PIE program with
 * a jump table and absolute references; a shared library with general-dynamic TLS and a GOT load) go through the
 * reader, and every one it accepts through everything apply does before its first write against a running target
 * (module by build-id, plan, hashes, placement, bind; one in 80 also through a real {@code apply --dry-run}). Each
 * must end in a valid patch or a {@link SutureException} of kind BAD_INPUT or DOES_NOT_FIT, allocate no more than a
 * patch may need, and leave the targets' code and mappings exactly as they were. Then real applies: mutants refused
 * before the first write are refused by a real apply (and by {@code suture apply}, exit 2 or 3) with nothing
 * written, and mutants the binder lays out byte for byte like their seed are applied, change the output as their
 * seed does, and are reverted.
 *
 * <p>Reproduce a failure with {@code -Dsuture.patchfuzz.seed=S -Dsuture.patchfuzz.only=N} (both printed).
 */
class PatchFuzzTest {
    static final int CASES = Integer.getInteger("suture.patchfuzz.cases", 10_000);
    static final long SEED = Long.getLong("suture.patchfuzz.seed", 20261125L);
    static final int ONLY = Integer.getInteger("suture.patchfuzz.only", -1);

    static final String PIE_PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            __thread int tv = 5;
            int base = 10;
            static const double scale[4] = {1.5, 2.5, 3.5, 4.5};

            __attribute__((noinline)) int compute(int x) {
                return x + base + tv + (int) scale[0] - 1;
            }

            __attribute__((noinline)) int other(int x) {
                return x * 2;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("compute %d other %d\\n", compute(1), other(3));
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    static final String PIE_PATCHED = PIE_PROGRAM.replace("""
            __attribute__((noinline)) int compute(int x) {
                return x + base + tv + (int) scale[0] - 1;
            }

            __attribute__((noinline)) int other(int x) {
                return x * 2;
            }
            """, """
            int hits = 7;
            static int seen;

            __attribute__((noinline)) static int extra(int x) {
                seen++;
                return x * 100 + (int) scale[x & 3];
            }

            __attribute__((noinline)) int compute(int x) {
                hits++;
                return extra(x) + base + tv + (seen > 0);
            }

            __attribute__((noinline)) int other(int x) {
                char b[16];
                return x * 3 + snprintf(b, sizeof b, "val=%d", x);
            }
            """);

    static final String LIBRARY = """
            __thread int ltv = 3;

            int lib_value(int x) {
                return x + ltv;
            }
            """;

    static final String LIBRARY_PATCHED = """
            #include <stdio.h>
            #include <string.h>
            __thread int ltv = 3;

            int lib_value(int x) {
                static const char *names[] = {"a", "bb", "ccc"};
                return x * 10 + ltv + (int) strlen(names[x % 3]) + (stdout != 0);
            }
            """;

    static final String EXE_PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int lib_value(int x);
            int mode;

            __attribute__((noinline)) int pick(int x) {
                switch (x) {
                case 0: return 11;
                case 1: return 22;
                case 2: return 33;
                case 3: return 44;
                case 4: return 55;
                case 5: return 66;
                default: return 0;
                }
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("pick %d lib %d\\n", pick(2), lib_value(2));
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    static final String EXE_PATCHED = EXE_PROGRAM.replace("""
                switch (x) {
                case 0: return 11;
            """, """
                volatile int *m = &mode;
                *m += 0;
                switch (x) {
                case 0: return 12;
            """).replace("case 2: return 33;", "case 2: return 34;");

    @TempDir
    static Path dir;

    /** A seed patch, the target process it is for, and the output lines before and after it is applied. */
    record Seed(String name, byte[] bytes, PatchMutator mutator, Target target, String before, String after) {}

    @Test
    void mutatedPatchesEndInCleanErrorsOrValidPatchesAndNeverWriteToTheTarget() throws Exception {
        Path lib = build();
        try (var pie = Target.start(dir.resolve("pieprog")); var exe = Target.start(dir.resolve("exeprog"))) {
            Fixture.await(pie, 0, "compute 16 other 6", 1);
            Fixture.await(exe, 0, "pick 33 lib 5", 1);
            var seeds = List.of(
                    seed("pie", pie, "compute 16 other 6", "compute 118 other 14"),
                    seed("exe", exe, "pick 33 lib 5", "pick 34 lib 5"),
                    seed("lib", exe, "pick 33 lib 5", "pick 33 lib 27"));
            var snapshots = new TreeMap<Long, Snapshot>();
            snapshots.put(pie.pid(), Snapshot.of(pie, dir.resolve("pieprog")));
            snapshots.put(exe.pid(), Snapshot.of(exe, dir.resolve("exeprog"), lib));

            var run = new Run(seeds);
            long started = System.nanoTime();
            assertTimeoutPreemptively(Duration.ofMinutes(Math.max(3, CASES / 3000)), () -> run.loop());
            long loopMillis = (System.nanoTime() - started) / 1_000_000;
            for (var t : List.of(pie, exe)) {
                snapshots.get(t.pid()).assertUnchanged("after " + CASES + " mutants");
            }
            run.realApplies(snapshots);
            System.out.printf("parse (accepted) %d ms, bind %d ms, dry runs %d ms%n", run.parseNanos / 1_000_000,
                    run.bindNanos / 1_000_000, run.dryRunNanos / 1_000_000);
            System.out.printf("patch fuzz: seed %d, %d cases in %d ms: read rejected %s; read accepted %d; refused before"
                    + " the first write %s; bound %d (%d checked by a real dry run); real applies refused %d, applied"
                    + " and reverted %d; bad %d%n",
                    SEED, run.cases, loopMillis, run.readRejected, run.readAccepted, run.bindRejected, run.bound,
                    run.dryRuns, run.realRefused, run.realApplied, run.failures.size());
            if (!run.failures.isEmpty()) {
                fail(run.failures.size() + " mutants ended badly:\n" + String.join("\n",
                        run.failures.subList(0, Math.min(10, run.failures.size()))));
            }
            if (ONLY < 0) {
                // The mutations must reach every outcome, or the test proves little.
                assertTrue(run.readRejected.values().stream().mapToInt(Integer::intValue).sum() > CASES / 4,
                        run.readRejected.toString());
                assertTrue(run.bound > CASES / 50 && run.bindRejected.values().stream().mapToInt(Integer::intValue)
                        .sum() > CASES / 200, "bound " + run.bound + ", refused " + run.bindRejected);
                assertTrue(run.realApplied >= 3, "equivalent mutants applied: " + run.realApplied);
            }
            for (var t : List.of(pie, exe)) {
                assertTrue(t.alive(), "pid " + t.pid() + " died:\n" + t.output());
            }
        }
    }

    private static Seed seed(String name, Target t, String before, String after) throws IOException {
        byte[] bytes = Files.readAllBytes(dir.resolve(name + ".suture"));
        return new Seed(name, bytes, new PatchMutator(bytes), t, before, after);
    }

    /** Compiles the programs and the library, and makes the three seed patches with the real Differ. */
    private static Path build() throws IOException {
        Path pieOrig = Fixture.object(dir, "orig", "pie", PIE_PROGRAM, "-fPIE");
        Path piePatched = Fixture.object(dir, "patched", "pie", PIE_PATCHED, "-fPIE");
        Path pie = Fixture.link(dir, "pieprog", List.of(pieOrig), "-pie");
        Fixture.diff(pie, List.of(pieOrig), List.of(piePatched), "pie-fix", dir.resolve("pie.suture"));

        Path libOrig = Fixture.object(dir, "orig", "lib", LIBRARY, "-fPIC");
        Path libPatched = Fixture.object(dir, "patched", "lib", LIBRARY_PATCHED, "-fPIC");
        Path lib = Fixture.link(dir, "libfz.so", List.of(libOrig), "-shared");
        Fixture.diff(lib, List.of(libOrig), List.of(libPatched), "lib-fix", dir.resolve("lib.suture"));

        Path exeOrig = Fixture.object(dir, "orig", "exe", EXE_PROGRAM, "-fno-pie");
        Path exePatched = Fixture.object(dir, "patched", "exe", EXE_PATCHED, "-fno-pie");
        Path exe = Fixture.link(dir, "exeprog", List.of(exeOrig), "-no-pie", "-L" + dir, "-lfz",
                "-Wl,-rpath," + dir);
        Fixture.diff(exe, List.of(exeOrig), List.of(exePatched), "exe-fix", dir.resolve("exe.suture"));
        return lib;
    }

    /** A process's mapping list and the bytes of its modules' code, to compare before and after. */
    record Snapshot(Target target, List<String> maps, List<Path> files, List<byte[]> text) {
        static Snapshot of(Target t, Path... files) throws IOException {
            var text = new ArrayList<byte[]>();
            for (Path f : files) {
                text.add(Fixture.text(t.pidInt(), f));
            }
            return new Snapshot(t, maps(t), List.of(files), text);
        }

        static List<String> maps(Target t) throws IOException {
            return Files.readAllLines(Path.of("/proc/" + t.pid() + "/maps"));
        }

        void assertUnchanged(String when) throws IOException {
            assertEquals(maps, maps(target), "pid " + target.pid() + ": mappings changed " + when);
            for (int i = 0; i < files.size(); i++) {
                assertArrayEquals(text.get(i), Fixture.text(target.pidInt(), files.get(i)),
                        "pid " + target.pid() + ": code of " + files.get(i) + " changed " + when);
            }
        }
    }

    /** A mutant worth a real apply: refused by the dry run, or laid out exactly like its seed. */
    record Candidate(Seed seed, String label, PatchFile patch, SutureException.Kind refusal, byte[] bytes) {}

    /**
     * What apply does before its first write, against one target, with what does not change between cases (maps,
     * modules, import tables) read once: find the module, check the hashes, plan, place, bind.
     */
    static final class Prepared implements AutoCloseable {
        final int pid;
        final List<dev.suture.proc.Mapping> maps;
        final Modules modules;
        final RemoteMemory memory;
        final long[] brk;
        final Map<String, ProcessExternals> externals = new TreeMap<>();
        final Map<String, ReplacedCode> code = new TreeMap<>();

        Prepared(int pid) {
            this.pid = pid;
            maps = Maps.read(pid);
            modules = Modules.of(pid);
            memory = RemoteMemory.open(pid);
            brk = Placement.brkZone(maps, modules.executable().map(dev.suture.proc.Module::path).orElse(null));
        }

        /** The bound image and its jumps, as bytes to compare; a SutureException where apply would refuse. */
        byte[] bind(PatchFile patch) {
            var module = modules.byBuildId(patch.targetBuildId()).orElseThrow(() -> new SutureException(
                    SutureException.Kind.DOES_NOT_FIT, "no module with build-id " + patch.targetBuildId()));
            // apply plans after the hash check; planning first lets every mutant reach the planner
            var plan = Binder.plan(patch, module.path(), false);
            for (var f : patch.replaced()) {
                long address = module.runtime(f.targetAddress());
                if (!module.contains(address) || !module.contains(address + f.size() - 1)) {
                    throw new SutureException(SutureException.Kind.DOES_NOT_FIT, f.symbol() + " is outside");
                }
                code.computeIfAbsent(module.path(), _ -> ReplacedCode.of(module)).require(pid, f, address);
                byte[] live = new byte[(int) f.size()];
                if (memory.read(address, live, 0, live.length) != live.length
                        || !PatchFile.sha256(live).equals(f.sha256())) {
                    throw new SutureException(SutureException.Kind.DOES_NOT_FIT, f.symbol() + " differs");
                }
            }
            long at = Placement.find(maps, module.start(), module.end(), plan.size(), plan.maxEnd(), brk, "fuzz");
            var ext = externals.computeIfAbsent(module.path(), _ -> new ProcessExternals(pid, modules, module, memory));
            var image = Binder.bind(patch, plan, at, module.loadBias(), ext);
            // The header apply would write must read back, or info and revert could not find the patch again.
            var functions = image.entries().stream().map(e -> new RegionHeader.Function(e.name(), e.oldAddress(),
                    e.oldSize(), e.newAddress(), e.newSize(), 0, new byte[5], new byte[5])).toList();
            var header = new RegionHeader(RegionHeader.FORMAT_VERSION, RegionHeader.State.PREPARED,
                    plan.headerSize(), plan.size(), 1, 1, module.loadBias(), 1, plan.layout(), patch.id(),
                    patch.targetBuildId(), module.path(), patch.targetName(), functions);
            var decoded = RegionHeader.decode(header.encode(), "fuzz");
            if (!decoded.functions().equals(functions) || !decoded.patchId().equals(patch.id())) {
                throw new AssertionError("the region header does not read back: " + decoded);
            }
            var out = new java.io.ByteArrayOutputStream();
            out.writeBytes(image.bytes());
            out.writeBytes((image.entries() + " " + image.replacedCode() + " " + plan.layout()).getBytes());
            return out.toByteArray();
        }

        @Override
        public void close() {
            memory.close();
        }
    }

    /** The fuzz loop's state and counts. */
    static final class Run {
        /** Every this many bound or refused mutants, the real dry run checks the fast path's verdict. */
        static final int DRY_RUN_EVERY = 80;
        /** A patch file of a few KiB may not make suture allocate more than this (the region is at most 64 MiB). */
        static final long MAX_ALLOCATION = 160L << 20;
        static final com.sun.management.ThreadMXBean ALLOCATION =
                (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        final List<Seed> seeds;
        final Map<String, Integer> readRejected = new TreeMap<>();
        final Map<String, Integer> bindRejected = new TreeMap<>();
        final List<String> failures = new ArrayList<>();
        final List<Candidate> refused = new ArrayList<>();
        final List<Candidate> equivalent = new ArrayList<>();
        final Map<String, byte[]> seedImages = new TreeMap<>();
        final Map<Long, Prepared> prepared = new TreeMap<>();
        int cases;
        int readAccepted;
        int bound;
        int dryRuns;
        long parseNanos;
        long bindNanos;
        long dryRunNanos;
        int realRefused;
        int realApplied;

        Run(List<Seed> seeds) {
            this.seeds = seeds;
        }

        void loop() throws Exception {
            try {
                for (var s : seeds) {
                    seedImages.put(s.name(), prepared(s).bind(PatchFile.parse(s.name(), s.bytes())));
                }
                for (int i = 0; i < CASES; i++) {
                    if (ONLY >= 0 && i != ONLY) {
                        continue;
                    }
                    cases++;
                    var seed = seeds.get(i % seeds.size());
                    var mutant = seed.mutator().mutate(new Random(SEED * 1_000_003L + i));
                    String label = String.format("seed %d case %d (%s: %s)", SEED, i, seed.name(), mutant.how());
                    long allocated = ALLOCATION.getCurrentThreadAllocatedBytes();
                    try {
                        one(seed, label, mutant.bytes(), i);
                        allocated = ALLOCATION.getCurrentThreadAllocatedBytes() - allocated;
                        if (allocated > MAX_ALLOCATION) {
                            throw new AssertionError("the case allocated " + (allocated >> 20) + " MiB");
                        }
                    } catch (Throwable t) {
                        failures.add(save(label, mutant.bytes(), t));
                    }
                }
            } finally {
                prepared.values().forEach(Prepared::close);
            }
        }

        private Prepared prepared(Seed s) {
            return prepared.computeIfAbsent(s.target().pid(), pid -> new Prepared(Math.toIntExact(pid)));
        }

        private void one(Seed seed, String label, byte[] bytes, int i) throws Exception {
            PatchFile patch;
            long t0 = System.nanoTime();
            try {
                patch = PatchFile.parse(label, bytes);
            } catch (SutureException e) {
                expectKind(e);
                readRejected.merge(e.kind().name(), 1, Integer::sum);
                if (i % 499 == 0) {
                    cli(bytes, 2);
                }
                return;
            }
            readAccepted++;
            byte[] image;
            long t1 = System.nanoTime();
            parseNanos += t1 - t0;
            try {
                image = prepared(seed).bind(patch);
            } catch (SutureException e) {
                expectKind(e);
                int n = bindRejected.merge(e.kind().name(), 1, Integer::sum);
                if (n % DRY_RUN_EVERY == 1) {
                    dryRun(seed, patch, e.kind());
                }
                if (refused.size() < 24 && refused.stream().noneMatch(c -> sameProblem(c, e))) {
                    refused.add(new Candidate(seed, label + ": " + e.getMessage(), patch, e.kind(), bytes));
                }
                return;
            }
            bound++;
            bindNanos += System.nanoTime() - t1;
            if (bound % DRY_RUN_EVERY == 1) {
                dryRun(seed, patch, null);
            }
            if (equivalent.stream().filter(c -> c.seed() == seed).count() < 2
                    && Arrays.equals(seedImages.get(seed.name()), image)) {
                equivalent.add(new Candidate(seed, label, patch, null, bytes));
            }
        }

        /** The real apply --dry-run agrees with the fast path: refused with the same kind, or bound. */
        private void dryRun(Seed seed, PatchFile patch, SutureException.Kind refusal) {
            dryRuns++;
            long t0 = System.nanoTime();
            try {
                dryRun0(seed, patch, refusal);
            } finally {
                dryRunNanos += System.nanoTime() - t0;
            }
        }

        private void dryRun0(Seed seed, PatchFile patch, SutureException.Kind refusal) {
            try {
                var r = Patcher.apply(seed.target().pidInt(), patch,
                        new Patcher.ApplyOptions(Duration.ofSeconds(1), true, false));
                if (refusal != null || r.outcome() != Patcher.Outcome.DRY_RUN) {
                    throw new AssertionError("the dry run ended " + r.outcome() + "; expected a refusal " + refusal);
                }
            } catch (SutureException e) {
                if (e.kind() != refusal) {
                    throw new AssertionError("the dry run ended " + e.kind() + "; expected " + refusal, e);
                }
            }
        }

        private static boolean sameProblem(Candidate c, SutureException e) {
            String a = c.label().substring(c.label().lastIndexOf(": ") + 2);
            String b = e.getMessage();
            return a.regionMatches(0, b, 0, Math.min(24, Math.min(a.length(), b.length())));
        }

        private static void expectKind(SutureException e) {
            if (e.kind() != SutureException.Kind.BAD_INPUT && e.kind() != SutureException.Kind.DOES_NOT_FIT) {
                throw new AssertionError("ended in " + e.kind() + ", not BAD_INPUT or DOES_NOT_FIT", e);
            }
        }

        /** The command line on the mutant: exit 2 (bad file) or 3 (does not fit), with a message, never a trace. */
        private void cli(byte[] bytes, int expected) throws IOException {
            Path f = dir.resolve("mutant.suture");
            Files.write(f, bytes);
            var r = Cli.run("apply", "--dry-run", "-p", Long.toString(seeds.getFirst().target().pid()),
                    f.toString());
            if (r.code() != expected || r.err().contains("Exception") || r.err().isBlank()) {
                throw new AssertionError("apply --dry-run exited " + r.code() + " (expected " + expected + "): "
                        + r.err());
            }
        }

        /**
         * Real applies: refused mutants must be refused again with nothing written; mutants laid out like their
         * seed must patch the target as the seed does, and revert cleanly.
         */
        void realApplies(Map<Long, Snapshot> snapshots) throws Exception {
            for (var c : refused) {
                var t = c.seed().target();
                try {
                    var r = Patcher.apply(t.pidInt(), c.patch(), Patcher.ApplyOptions.defaults());
                    failures.add(c.label() + " -> a real apply ended " + r.outcome() + " after the dry run refused it");
                } catch (SutureException e) {
                    if (e.kind() != c.refusal()) {
                        failures.add(c.label() + " -> a real apply ended " + e.kind() + ": " + e.getMessage());
                    }
                }
                // and the command line says so with exit 2 or 3 and a message, not a trace
                Path f = dir.resolve("refused.suture");
                Files.write(f, c.bytes());
                var cli = Cli.run("apply", "-p", Long.toString(t.pid()), f.toString());
                int expected = c.refusal() == SutureException.Kind.BAD_INPUT ? 2 : 3;
                if (cli.code() != expected || cli.err().isBlank() || cli.err().contains("Exception")) {
                    failures.add(c.label() + " -> suture apply exited " + cli.code() + ": " + cli.err());
                }
                snapshots.get(t.pid()).assertUnchanged("by a refused apply of " + c.label());
                realRefused++;
            }
            for (var c : equivalent) {
                var t = c.seed().target();
                var s = c.seed();
                var r = Patcher.apply(t.pidInt(), c.patch(), Patcher.ApplyOptions.defaults());
                assertEquals(Patcher.Outcome.APPLIED, r.outcome(), c.label());
                int mark = t.lines().size();
                Fixture.await(t, mark + 1, s.after(), 2);
                Patcher.revert(t.pidInt(), List.of(c.patch().id()), false, Duration.ofSeconds(5));
                mark = t.lines().size();
                Fixture.await(t, mark + 1, s.before(), 2);
                snapshots.get(t.pid()).assertUnchanged("after applying and reverting " + c.label());
                realApplied++;
            }
        }

        private static String save(String label, byte[] bytes, Throwable t) throws IOException {
            Path failures = Path.of("target", "patch-fuzz-failures");
            Files.createDirectories(failures);
            Path f = failures.resolve(label.replaceAll("[^A-Za-z0-9#]+", "_").substring(0,
                    Math.min(120, label.replaceAll("[^A-Za-z0-9#]+", "_").length())));
            Files.write(f, bytes);
            var sw = new StringWriter();
            t.printStackTrace(new PrintWriter(sw));
            return label + " -> " + f + ": " + sw.toString().lines().limit(8)
                    .reduce((a, c) -> a + "\n   " + c).orElse("");
        }
    }
}
