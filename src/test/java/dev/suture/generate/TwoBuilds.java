package dev.suture.generate;

import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchSymbol;
import dev.suture.testing.Gcc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Test fixture: an original and a patched build of a few C (or C++) files, compiled with
 * -ffunction-sections -fdata-sections, the original linked into the "deployed" executable or library, and the diff
 * between them.
 */
final class TwoBuilds {
    private final Path dir;
    private final Map<String, String[]> files = new LinkedHashMap<>();
    private final List<String> flags = new ArrayList<>(List.of("-O2", "-g"));
    private String compiler = "gcc";
    private String link = "exe";
    Path target;
    List<Path> originals;
    List<Path> patched;
    DiffResult result;

    TwoBuilds(Path dir) {
        this.dir = dir;
    }

    /** A source file in both builds; {@code changes} are pairs (text, replacement) applied to the patched copy. */
    TwoBuilds file(String name, String source, String... changes) {
        String patchedSource = source;
        for (int i = 0; i + 1 < changes.length; i += 2) {
            if (!patchedSource.contains(changes[i])) {
                throw new IllegalArgumentException(name + " does not contain " + changes[i]);
            }
            patchedSource = patchedSource.replace(changes[i], changes[i + 1]);
        }
        files.put(name, new String[] {source, patchedSource});
        return this;
    }

    TwoBuilds flags(String... f) {
        flags.addAll(List.of(f));
        return this;
    }

    TwoBuilds cxx() {
        compiler = "g++";
        return this;
    }

    /** "exe" (non-PIE), "pie" or "shared". */
    TwoBuilds link(String how) {
        link = how;
        return this;
    }

    /** Compiles both builds and links the original; the diff is not run yet. */
    TwoBuilds build() throws IOException {
        originals = compile("orig", 0);
        patched = compile("patched", 1);
        String out = link.equals("shared") ? "libtarget.so" : "target";
        target = dir.resolve(out);
        var cmd = new ArrayList<>(List.of(compiler, "-o", target.toString()));
        switch (link) {
            case "exe" -> cmd.add("-no-pie");
            case "pie" -> cmd.add("-pie");
            case "shared" -> cmd.add("-shared");
            default -> throw new IllegalArgumentException(link);
        }
        originals.forEach(p -> cmd.add(p.toString()));
        Gcc.run(dir, cmd);
        return this;
    }

    private List<Path> compile(String build, int which) throws IOException {
        Path d = dir.resolve(build);
        Files.createDirectories(d);
        var out = new ArrayList<Path>();
        for (var e : files.entrySet()) {
            Path src = d.resolve(e.getKey());
            Files.createDirectories(src.getParent());
            Files.writeString(src, e.getValue()[which]);
            Path obj = d.resolve(e.getKey().replaceAll("\\.[a-z+]+$", ".o"));
            var cmd = new ArrayList<>(List.of(compiler, "-c", "-ffunction-sections", "-fdata-sections"));
            cmd.addAll(flags);
            if (link.equals("shared")) {
                cmd.add("-fPIC");
            }
            cmd.addAll(List.of("-o", obj.toString(), src.getFileName().toString()));
            Gcc.run(src.getParent(), cmd);
            out.add(obj);
        }
        return out;
    }

    /** Builds (if not yet) and diffs; returns the patch as read back from the file. */
    PatchFile diff() throws IOException {
        return diff(false);
    }

    PatchFile diff(boolean force) throws IOException {
        if (target == null) {
            build();
        }
        result = Differ.diff(DiffRequest.ofFiles(target, originals, patched, "test-patch", force),
                dir.resolve("out.suture"));
        return PatchFile.read(result.patchFile());
    }

    static List<String> replacedNames(PatchFile p) {
        return p.replaced().stream().filter(r -> !r.part()).map(r -> r.symbol()).sorted().toList();
    }

    static List<String> partNames(PatchFile p) {
        return p.replaced().stream().filter(r -> r.part()).map(r -> r.symbol()).sorted().toList();
    }

    static List<String> addedNames(PatchFile p) {
        return p.added().stream().map(a -> a.symbol().name()).sorted().toList();
    }

    /** The symbols the relocations of patch section {@code name} refer to. */
    static List<PatchSymbol> referencedFrom(PatchFile p, String sectionName) {
        var s = p.sections().stream().filter(x -> x.name().equals(sectionName)).findFirst()
                .orElseThrow(() -> new AssertionError("no section " + sectionName + " in the patch"));
        return s.relocations().stream().map(r -> r.symbol()).toList();
    }

    /** The deployed binary's symbol value as nm prints it (first match). */
    long nm(String symbol) throws IOException {
        for (String line : Gcc.run(dir, "nm", target.toString()).split("\n")) {
            var f = line.trim().split("\\s+");
            if (f.length == 3 && f[2].equals(symbol)) {
                return Long.parseUnsignedLong(f[0], 16);
            }
        }
        throw new AssertionError(symbol + " not in " + target);
    }
}
