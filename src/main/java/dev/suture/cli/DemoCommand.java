package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import dev.suture.live.Patcher;
import dev.suture.sys.Directories;
import dev.suture.patch.PatchFile;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code suture demo}: the seed's scenario end to end — build the three-thread program, start it, patch
 * {@code thread3_say} while it runs, show the output change and the patched code as gdb sees it, revert, show the
 * original output again, stop the program.
 */
@Command(name = "demo", header = "Shows a live patch end to end on a program of its own.", mixinStandardHelpOptions = true,
        description = {"Compiles a small C program whose three threads print in a loop (non-PIE), starts",
                "it, builds a patch from a source diff (thread3_say: counter - 1, TLS value 666666), applies it",
                "live, shows the output change and the patched entry in gdb, reverts, and stops the program."})
public final class DemoCommand implements Callable<Integer> {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--keep", paramLabel = "DIR", description = "Build in DIR and keep it (default: a temporary directory, removed).")
    Path keep;

    @Option(names = "--pie", description = "Build the program as a position-independent executable.")
    boolean pie;

    @Mixin
    JsonOutput json;

    private PrintWriter out;
    private final Map<String, Object> doc = new LinkedHashMap<>();

    @Override
    public Integer call() throws Exception {
        out = json.enabled() ? new PrintWriter(PrintWriter.nullWriter()) : spec.commandLine().getOut();
        Path dir = keep != null ? Files.createDirectories(keep) : Files.createTempDirectory("suture-demo");
        long pid = -1;
        try {
            step("1. build the demo program and the patch (" + (pie ? "PIE" : "non-PIE") + ")");
            Path exe = buildProgram(dir);
            Path patchFile = buildPatch(dir, exe);
            var patch = PatchFile.read(patchFile);
            say("   patch %s replaces %s (target build-id %s)", patch.id(),
                    String.join(", ", patch.replaced().stream().map(f -> f.symbol()).toList()), patch.targetBuildId());

            step("2. start it");
            Path log = dir.resolve("demo.out");
            pid = startDetached(exe, log);
            say("   pid %d", pid);
            awaitThread3(log, 0, 2, pid);
            show("before", log, 0);

            step("3. apply the patch while it runs: suture apply -p " + pid + " " + patchFile.getFileName());
            var applied = Patcher.apply((int) pid, patch, Patcher.ApplyOptions.defaults());
            int mark = lines(log).size();
            say("   %s", ApplyCommand.text(new ApplyCommand.Line((int) pid, "demo", patch.id(), applied, null, 0)));
            doc.put("pauseMicros", applied.pauseNanos() / 1000.0);
            awaitThread3(log, mark, 2, pid);
            show("after apply", log, mark);

            step("4. the patched entry, as gdb shows it");
            var fn = applied.functions().getFirst();
            var region = Patcher.applied((int) pid).getFirst();
            gdb(dir, pid, fn.name(), fn.newAddress(), region.jumpTable(), region.jumpTableEntries());

            step("5. revert: suture revert -p " + pid + " " + patch.id());
            var reverted = Patcher.revert((int) pid, List.of(patch.id()), false, Duration.ofSeconds(5));
            mark = lines(log).size();
            say("   pid %d: reverted %s; %s", pid, patch.id(), PauseReport.text(reverted.getFirst().pause()));
            awaitThread3(log, mark, 2, pid);
            show("after revert", log, mark);

            step("6. stop the program");
            say("   kill %d", pid);
        } finally {
            if (pid > 0) {
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            }
            if (keep == null) {
                Directories.deleteTree(dir);
            }
        }
        if (json.enabled()) {
            JsonOutput.print(spec.commandLine().getOut(), doc);
        }
        spec.commandLine().getOut().flush();
        return ExitCodes.OK;
    }

    // ---- building ----

    private String[] codeFlags() {
        return pie ? new String[] {"-fPIE"} : new String[] {"-fno-pie"};
    }

    private Path buildProgram(Path dir) throws IOException {
        Path orig = Files.createDirectories(dir.resolve("orig"));
        Files.write(orig.resolve("demo.c"), resource("demo/demo.c"));
        compile(orig);
        Path exe = dir.resolve("demo");
        run(dir, List.of("gcc", pie ? "-pie" : "-no-pie", "-pthread", "-o", exe.toString(),
                orig.resolve("demo.o").toString()));
        say("   gcc -O0 %s -ffunction-sections -fdata-sections -pthread demo.c -> %s", pie ? "-pie" : "-no-pie", exe);
        return exe;
    }

    private Path buildPatch(Path dir, Path exe) throws IOException {
        Path patched = Files.createDirectories(dir.resolve("patched"));
        Files.write(patched.resolve("demo.c"), resource("demo/demo.c"));
        Path diff = dir.resolve("fix.diff");
        Files.write(diff, resource("demo/fix.diff"));
        run(patched, List.of("patch", "-s", "-p1", "-i", diff.toString()));
        say("   fix.diff:");
        for (String l : Files.readAllLines(diff)) {
            if ((l.startsWith("+") || l.startsWith("-")) && !l.startsWith("+++") && !l.startsWith("---")) {
                say("     %s", l);
            }
        }
        compile(patched);
        Path patchFile = dir.resolve("demo-fix.suture");
        var result = Differ.diff(DiffRequest.ofFiles(exe, List.of(dir.resolve("orig/demo.o")),
                List.of(patched.resolve("demo.o")), "demo-fix", false), patchFile);
        say("   suture diff -> %s (replaces %s)", patchFile.getFileName(), String.join(", ", result.replaced()));
        return result.patchFile();
    }

    private void compile(Path dir) throws IOException {
        var cmd = new ArrayList<>(List.of("gcc", "-g", "-O0", "-pthread", "-ffunction-sections", "-fdata-sections"));
        cmd.addAll(List.of(codeFlags()));
        cmd.addAll(List.of("-c", "demo.c", "-o", "demo.o"));
        run(dir, cmd);
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = DemoCommand.class.getClassLoader().getResourceAsStream(name)) {
            if (in == null) {
                throw new SutureException(SutureException.Kind.INTERNAL, "the jar lacks " + name);
            }
            return in.readAllBytes();
        }
    }

    private static String run(Path dir, List<String> cmd) throws IOException {
        Path log = Files.createTempFile(dir, "tool", ".log");
        try {
            var p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                    .redirectOutput(log.toFile()).start();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new SutureException(SutureException.Kind.INTERNAL, "timed out: " + String.join(" ", cmd));
            }
            String output = Files.readString(log);
            if (p.exitValue() != 0) {
                throw new SutureException(SutureException.Kind.INTERNAL, String.join(" ", cmd) + " failed (exit "
                        + p.exitValue() + "); is gcc installed?\n" + output);
            }
            return output;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        } finally {
            Files.deleteIfExists(log);
        }
    }

    // ---- the running program ----

    /** Starts the program in its own session, reparented away from this JVM (whose reaper would steal stops). */
    private static long startDetached(Path exe, Path log) throws IOException {
        String script = "setsid '" + exe + "' >'" + log + "' 2>&1 </dev/null & echo $!";
        var p = new ProcessBuilder("sh", "-c", script).redirectErrorStream(true).start();
        try {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new SutureException(SutureException.Kind.INTERNAL, "could not start " + exe);
            }
            return Long.parseLong(new String(p.getInputStream().readAllBytes()).trim());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    private static List<String> lines(Path log) throws IOException {
        return Files.exists(log) ? Files.readAllLines(log) : List.of();
    }

    /** Waits until thread3 has printed {@code count} more tls lines after line {@code from}. */
    private static int awaitThread3(Path log, int from, int count, long pid) throws IOException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        Predicate<String> tls = l -> l.startsWith("thread3: tls_value");
        while (true) {
            var ls = lines(log);
            long n = ls.stream().skip(from).filter(tls).count();
            if (n >= count) {
                return ls.size();
            }
            if (System.nanoTime() > deadline || ProcessHandle.of(pid).isEmpty()) {
                throw new SutureException(SutureException.Kind.INTERNAL, "the demo program did not print as"
                        + " expected; its output:\n" + String.join("\n", ls));
            }
            sleep(20);
        }
    }

    private void show(String label, Path log, int from) throws IOException {
        var ls = lines(log).stream().skip(from).toList();
        // the last complete round: from the thread1 line before the last thread3 tls line
        int end = lastIndex(ls, l -> l.startsWith("thread3: tls_value"));
        int start = end;
        while (start > 0 && end - start < 4 && !ls.get(start).startsWith("thread1:")) {
            start--;
        }
        var shown = ls.subList(start, end + 1);
        say("   output %s:", label);
        for (String l : shown) {
            say("     | %s", l);
        }
        doc.put("output " + label, shown);
    }

    private static int lastIndex(List<String> ls, Predicate<String> p) {
        for (int i = ls.size() - 1; i >= 0; i--) {
            if (p.test(ls.get(i))) {
                return i;
            }
        }
        return ls.size() - 1;
    }

    // ---- gdb ----

    /** One gdb session: the old entry, the replacement up to its ret, and the jump-table entries it calls. */
    private void gdb(Path dir, long pid, String function, long replacement, long jumpTable, int entries)
            throws IOException {
        var cmd = new ArrayList<>(List.of("gdb", "-batch", "-nx", "-p", Long.toString(pid),
                "-ex", "echo @@ x/20i " + function + "\\n", "-ex", "x/20i " + function,
                "-ex", "echo @@ x/40i " + hex(replacement) + "\\n", "-ex", "x/40i " + hex(replacement)));
        for (int i = 0; i < entries; i++) {
            String at = hex(jumpTable + 16L * i);
            cmd.addAll(List.of("-ex", "echo @@ x/i " + at + "\\n", "-ex", "x/i " + at));
        }
        String text;
        try {
            text = run(dir, cmd);
        } catch (IOException | SutureException e) {
            say("   (gdb is not available: %s)", e.getMessage().lines().findFirst().orElse(""));
            return;
        }
        var shown = new ArrayList<String>();
        boolean inReplacement = false;
        boolean done = false;
        for (String l : text.lines().toList()) {
            if (l.startsWith("@@ ")) {
                inReplacement = l.startsWith("@@ x/40i");
                done = false;
                shown.add("(gdb) " + l.substring(3) + (l.startsWith("@@ x/i") ? "      # a jump-table entry" : ""));
                continue;
            }
            if (done || !l.matches("\\s*(=> )?0x[0-9a-f]+.*:.*")) {
                continue;
            }
            shown.add(l);
            if (inReplacement && l.matches(".*\\sret[q]?\\s*$")) {
                done = true; // the rest of the 40 are the region's next bytes
            }
        }
        for (String l : shown) {
            say("   %s", l);
        }
        doc.put("gdb", shown);
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    // ---- output ----

    private void step(String title) {
        say("");
        say("%s", title);
        doc.computeIfAbsent("steps", k -> new ArrayList<String>());
        @SuppressWarnings("unchecked")
        var steps = (List<String>) doc.get("steps");
        steps.add(title);
    }

    private void say(String format, Object... args) {
        out.println(String.format(format, args));
        out.flush();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
