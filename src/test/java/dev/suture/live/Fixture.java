package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.proc.Maps;
import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import dev.suture.patch.PatchFile;
import dev.suture.proc.RemoteMemory;
import dev.suture.cli.Cli;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Builds what a live-patching test needs: objects of an original and a patched build of C sources (in
 * {@code orig/} and {@code patched/}, same layout, as suture diff expects), the program linked from the
 * original, and the patch made by the real Differ.
 */
public final class Fixture {
    public static final Duration WAIT = Duration.ofSeconds(15);

    private Fixture() {}

    /** Compiles {@code source} as {@code dir/variant/name.o}. */
    public static Path object(Path dir, String variant, String name, String source, String... flags) throws IOException {
        Path d = Files.createDirectories(dir.resolve(variant));
        Path src = d.resolve(name + ".c");
        Files.writeString(src, source);
        Path obj = d.resolve(name + ".o");
        var cmd = new ArrayList<>(List.of("gcc", "-g", "-O0", "-pthread", "-ffunction-sections", "-fdata-sections"));
        cmd.addAll(List.of(flags));
        cmd.addAll(List.of("-c", src.toString(), "-o", obj.toString()));
        Gcc.run(d, cmd);
        return obj;
    }

    /** Links {@code objects} into {@code dir/name}. */
    public static Path link(Path dir, String name, List<Path> objects, String... flags) throws IOException {
        Path out = dir.resolve(name);
        var cmd = new ArrayList<>(List.of("gcc", "-pthread", "-o", out.toString()));
        objects.forEach(o -> cmd.add(o.toString()));
        cmd.addAll(List.of(flags));
        Gcc.run(dir, cmd);
        return out;
    }

    /** One-file program: original and patched objects, the program linked from the original, and the patch. */
    public record Built(Path exe, PatchFile patch, Path patchFile) {}

    public static Built program(Path dir, String name, String original, String patched, String id, boolean pie)
            throws IOException {
        String[] code = pie ? new String[] {"-fPIE"} : new String[] {"-fno-pie"};
        Path a = object(dir, "orig", name, original, code);
        Path b = object(dir, "patched", name, patched, code);
        Path exe = link(dir, name, List.of(a), pie ? "-pie" : "-no-pie");
        Path patchFile = dir.resolve(id + ".suture");
        diff(exe, List.of(a), List.of(b), id, patchFile);
        return new Built(exe, PatchFile.read(patchFile), patchFile);
    }

    /**
     * A make project in two trees: {@code NAME-src}, which {@code suture build} copies and builds twice, and
     * {@code NAME-deployed}, built here by make (the running binaries); {@code diff} is the fix, a unified diff of
     * {@code changed} against {@code files} (names relative to the tree, for {@code --strip 0}).
     */
    record Project(Path src, Path deployed, Path diff) {
        /** {@code suture build} of {@code module} (a file of the deployed tree) through the CLI, into {@code out}. */
        Cli.Result build(String module, Path out) {
            return Cli.run("build", "--src", src.toString(), "--diff", diff.toString(), "--strip", "0",
                    "--target", module + "=" + deployed.resolve(module), "-o", out.toString());
        }

        /** The one patch a successful {@link #build} wrote. */
        Path built(String module, Path out) throws IOException {
            var r = build(module, out);
            if (r.code() != 0) {
                throw new AssertionError("suture build failed (" + r.code() + "): " + r.out() + r.err());
            }
            try (var files = Files.list(out)) {
                return files.findFirst().orElseThrow();
            }
        }
    }

    static Project project(Path dir, String name, Map<String, String> files, Map<String, String> changed)
            throws IOException {
        Path src = tree(dir.resolve(name + "-src"), files);
        Path deployed = tree(dir.resolve(name + "-deployed"), files);
        Gcc.run(deployed, "make", "-s");
        Path fixed = tree(dir.resolve(name + "-fixed"), files);
        var diff = new StringBuilder();
        for (var e : changed.entrySet()) {
            Files.writeString(fixed.resolve(e.getKey()), e.getValue());
            var r = Commands.run(src, Duration.ofSeconds(30), "diff", "-u", "--label", e.getKey(), "--label",
                    e.getKey(), src.resolve(e.getKey()).toString(), fixed.resolve(e.getKey()).toString());
            if (r.status() != 1) {
                throw new AssertionError("diff -u: " + r.output());
            }
            diff.append(r.output());
        }
        return new Project(src, deployed, Files.writeString(dir.resolve(name + ".diff"), diff));
    }

    private static Path tree(Path root, Map<String, String> files) throws IOException {
        Files.createDirectories(root);
        for (var e : files.entrySet()) {
            Files.writeString(root.resolve(e.getKey()), e.getValue());
        }
        return root;
    }

    public static PatchFile diff(Path target, List<Path> orig, List<Path> patched, String id, Path out) {
        Differ.diff(DiffRequest.ofFiles(target, orig, patched, id, false), out);
        return PatchFile.read(out);
    }

    /** Waits for {@code count} lines containing {@code text} printed after the first {@code skip} lines. */
    public static void await(Target t, int skip, String text, int count) throws IOException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            var lines = t.lines();
            long n = lines.stream().skip(skip).filter(l -> l.contains(text)).count();
            if (n >= count) {
                return;
            }
            if (!t.alive()) {
                throw new AssertionError("pid " + t.pid() + " died; output:\n" + t.output());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no " + count + " lines with '" + text + "' after line " + skip
                        + " from pid " + t.pid() + "; output:\n" + t.output());
            }
            sleep(10);
        }
    }

    /** Lines printed after the first {@code skip} that contain {@code text}. */
    public static List<String> linesWith(Target t, int skip, String text) throws IOException {
        return t.lines().stream().skip(skip).filter(l -> l.contains(text)).toList();
    }

    /** The bytes of every executable mapping of {@code pid} backed by {@code file}, read through /proc/PID/mem. */
    static byte[] text(int pid, Path file) throws IOException {
        var out = new java.io.ByteArrayOutputStream();
        String path = file.toRealPath().toString();
        try (var mem = RemoteMemory.open(pid)) {
            for (var m : Maps.read(pid)) {
                if (m.path().equals(path) && m.perms().contains("x")) {
                    byte[] b = new byte[(int) (m.end() - m.start())];
                    int n = mem.read(m.start(), b, 0, b.length);
                    out.write(b, 0, n);
                }
            }
        }
        return out.toByteArray();
    }

    /**
     * Runs suture with {@code args}, killing itself before step {@code k}, then {@code recover}: suture must have
     * been killed (or succeeded), and afterwards the program lives, no thread of it is traced or stopped, and its
     * journal in {@code runDir} is gone. {@code what} names the point in assertion messages.
     */
    static Patcher.RecoverResult killAndRecover(Path dir, Path runDir, Target t, int k, String what, String... args)
            throws IOException {
        int pid = t.pidInt();
        var r = dev.suture.testing.SutureProcess.run(dir, Duration.ofSeconds(60), Map.of("SUTURE_RUN_DIR",
                runDir.toString(), "SUTURE_FAULT_KILL_AT", Integer.toString(k)), args);
        assertTrue(r.killed() || r.status() == 0, what + ": " + r);
        assertTrue(t.alive(), what + ": the program died:\n" + t.output());
        var recovered = Patcher.recover(pid, Duration.ofSeconds(5));
        for (int tid : Procs.tids(pid)) {
            assertEquals(0, Procs.tracerOf(pid, tid), what + ": still traced");
        }
        assertTrue(Procs.threadStates(pid).values().stream().noneMatch(c -> c == 't' || c == 'T'),
                what + ": a thread is stopped");
        assertFalse(Files.exists(runDir.resolve(pid + ".journal")), what + ": the journal is left");
        return recovered;
    }

    public static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
