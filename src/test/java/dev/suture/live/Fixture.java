package dev.suture.live;

import dev.suture.proc.Maps;
import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import dev.suture.patch.PatchFile;
import dev.suture.proc.RemoteMemory;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

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

    public static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
