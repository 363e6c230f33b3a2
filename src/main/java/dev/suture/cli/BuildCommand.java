package dev.suture.cli;

import dev.suture.generate.DebianBuild;
import dev.suture.generate.SourceBuild;
import dev.suture.generate.SymbolSource;
import dev.suture.patch.Keys;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code suture build}: patches from a source tree (or an installed Debian package) and a diff. */
@Command(name = "build", header = "Makes patches from a source tree, or an installed Debian package, and a diff.",
        mixinStandardHelpOptions = true,
        description = {"Builds the source tree twice in scratch copies, as it is and with the diffs applied,",
                "through a compiler wrapper that keeps one section per function and records each link;",
                "then writes one patch <build-id>.suture per changed target and says which functions changed.",
                "With --deb, the tree is the installed version's Debian source (apt-get source), built with",
                "dpkg-buildpackage -b, and the targets are the package's installed ELF files (docs/debian.md).",
                "A function whose only change is its line numbers (__LINE__ in assert or logging) is left as",
                "it is and reported; same-named source files are told apart by link order, proven by content."})
public final class BuildCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--src", paramLabel = "DIR", description = "The source tree (left untouched).")
    Path src;

    @Option(names = "--deb", paramLabel = "PACKAGE[=VERSION]",
            description = {"Instead of --src: an installed Debian binary package, or its source package.",
                    "Its installed version's source is fetched and built as Debian builds it; one patch per",
                    "changed installed ELF file, bound to that file's build-id. =VERSION must be that version."})
    String deb;

    @Option(names = "--build-deps", description = "With --deb: install missing build dependencies (apt-get build-dep).")
    boolean buildDeps;

    @Option(names = "--add-deb-src",
            description = "With --deb: when apt has no deb-src entries, add them for the configured mirrors.")
    boolean addDebSrc;

    @Option(names = "--diff", required = true, paramLabel = "FILE",
            description = "A unified diff to apply with patch(1); repeat for several, applied in order.")
    List<Path> diffs;

    @Option(names = "--strip", paramLabel = "N", defaultValue = "1",
            description = "Leading path components patch strips (-pN; default ${DEFAULT-VALUE}).")
    int strip;

    @Option(names = "--make", paramLabel = "CMD",
            description = "The build command, run by /bin/sh in each copy (default: make; with --deb: "
                    + DebianBuild.DPKG_BUILDPACKAGE + ").")
    String make;

    @Option(names = "--target", paramLabel = "PATH[=DEPLOYED]",
            description = {"With --src (required there): an output of the build, relative to DIR; repeat for several.",
                    "=DEPLOYED: the binary actually running, when it is not that build output (its",
                    "symbols come from it, from /usr/lib/debug/.build-id/, or, when it is stripped, from",
                    "the rebuild once that is proven to load the same bytes)."})
    List<String> targets;

    @Option(names = {"-o", "--output"}, paramLabel = "OUTDIR", defaultValue = ".",
            description = "Where to write the patches (default: the current directory).")
    Path output;

    @Option(names = "--force", description = "Patch even if the original build does not reproduce the deployed functions.")
    boolean force;

    @Option(names = "--keep", description = "Keep the scratch directory (copies, logs, objects) and print where it is.")
    boolean keep;

    @Option(names = "--serial", description = "Build the two copies one after the other instead of in parallel.")
    boolean serial;

    @Option(names = "--timeout", paramLabel = "TIME", defaultValue = "1h", converter = Durations.Seconds.class,
            description = "Give up on a build after this long (default: ${DEFAULT-VALUE}; 90s, 30m; a plain number is"
                    + " seconds).")
    Duration timeout;

    @Mixin
    SignWith sign;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        if ((src == null) == (deb == null)) {
            throw new ParameterException(spec.commandLine(), "give either --src DIR or --deb PACKAGE");
        }
        if (deb != null && (targets != null || make != null)) {
            throw new ParameterException(spec.commandLine(), "--deb takes no --target or --make: the targets are the"
                    + " package's installed files, built with " + DebianBuild.DPKG_BUILDPACKAGE);
        }
        if (src != null && (targets == null || buildDeps || addDebSrc)) {
            throw new ParameterException(spec.commandLine(), targets == null
                    ? "--src needs --target: name the outputs to patch" : "--build-deps and --add-deb-src go with --deb");
        }
        var signing = sign.read(spec.commandLine().getErr());
        if (deb != null) {
            return debian(signing);
        }
        var request = new SourceBuild.Request(src, diffs, strip, make == null ? "make" : make,
                targets.stream().map(SourceBuild.Target::parse).toList(), output, force, keep, serial,
                timeout, signing);
        var progress = Progress.onTerminal(spec, json);
        var result = progress == null ? SourceBuild.run(request) : SourceBuild.run(request, progress::say);
        if (progress != null) {
            progress.say("done");
        }
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            JsonOutput.print(out, document(result));
        } else {
            var err = spec.commandLine().getErr();
            result.warnings().forEach(w -> err.println("warning: " + w));
            out.printf(Locale.ROOT, "built both trees in %.1f s (copies and diffs applied in %.1f s), diffed in %.1f s%n",
                    seconds(result.buildTime()), seconds(result.copyTime()), seconds(result.diffTime()));
            for (var t : result.targets()) {
                out.println(t.target().path());
                printTarget(out, err, t);
            }
            if (result.workDir() != null) {
                out.println("scratch directory kept: " + result.workDir());
            }
            err.flush();
        }
        out.flush();
        return ExitCodes.OK;
    }

    /** {@code --deb}: the installed package's source, built the Debian way; one result per installed file. */
    private int debian(Keys.SigningKey signing) throws Exception {
        var request = new DebianBuild.Request(deb, diffs, strip, output, buildDeps, addDebSrc, force, keep, serial,
                timeout, signing);
        var result = DebianBuild.run(request);
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            JsonOutput.print(out, document(result));
            out.flush();
            return ExitCodes.OK;
        }
        var err = spec.commandLine().getErr();
        result.notes().forEach(n -> err.println("note: " + n));
        result.warnings().forEach(w -> err.println("warning: " + w));
        out.printf(Locale.ROOT, "%s %s (%s): fetched in %.1f s, built twice in %.1f s, diffed in %.1f s%n",
                result.source(), result.version(), String.join(" ", result.packages()),
                seconds(result.fetchTime()), seconds(result.buildTime()), seconds(result.diffTime()));
        for (var f : result.files()) {
            out.println(f.file().path() + " (" + f.file().binaryPackage() + ")");
            if (f.rebuilt() == null) {
                out.println("  not linked through the compiler wrapper"
                        + (f.linkedOutside() == null ? "" : "; the build linked it with: " + f.linkedOutside()));
                continue;
            }
            out.println("  rebuilt:  " + f.rebuilt() + (f.reproduced() ? " (reproduces the installed file)"
                    : " (does not reproduce it: " + f.differences().size() + " loaded section(s) differ)"));
            printTarget(out, err, f.result());
        }
        if (result.workDir() != null) {
            out.println("scratch directory kept: " + result.workDir());
        }
        err.flush();
        out.flush();
        return ExitCodes.OK;
    }

    /** The lines of one target's outcome: its patch and functions, or why there is none. */
    private static void printTarget(PrintWriter out, PrintWriter err, SourceBuild.TargetResult t) {
        if (t == null) {
            out.println("  not diffed");
            return;
        }
        if (t.diff() == null) {
            out.println("  nothing changed (" + t.unchanged() + "), no patch");
            return;
        }
        t.diff().warnings().forEach(w -> err.println("warning: " + t.target().path() + ": " + w));
        out.println("  patch:    " + t.diff().patchFile());
        out.println("  replaced: " + list(t.diff().replaced()));
        out.println("  new:      " + list(t.diff().added()));
        out.println("  objects:  " + String.join(" ", t.changedObjects()));
        t.diff().lineOnlySummary().ifPresent(l -> out.println("  " + l));
        out.println("  symbols:  " + describe(t.diff().symbols()));
        if (t.diff().signature() != null) {
            out.println("  signed:   " + t.diff().signature());
        }
    }

    private static String describe(SymbolSource source) {
        return switch (source) {
            case OWN -> "its own symbol table";
            case DEBUG_FILE -> "its separate debug file";
            case REBUILD -> "the rebuild (it loads the same bytes)";
            case EXPORTED -> "its exported functions only (.dynsym; the replaced functions' bytes match)";
        };
    }

    private static Map<String, Object> document(DebianBuild.Result result) {
        var files = new ArrayList<Map<String, Object>>();
        for (var f : result.files()) {
            var doc = new LinkedHashMap<String, Object>();
            doc.put("file", f.file().path().toString());
            doc.put("package", f.file().binaryPackage());
            doc.put("rebuilt", f.rebuilt());
            doc.put("reproduced", f.reproduced());
            doc.put("differences", f.differences().stream().map(Object::toString).toList());
            doc.put("linkedOutside", f.linkedOutside());
            doc.put("result", f.result() == null ? null : targetDocument(f.result()));
            files.add(doc);
        }
        var doc = new LinkedHashMap<String, Object>();
        doc.put("source", result.source());
        doc.put("version", result.version());
        doc.put("packages", result.packages());
        doc.put("notes", result.notes());
        doc.put("files", files);
        doc.put("warnings", result.warnings());
        doc.put("fetchSeconds", seconds(result.fetchTime()));
        doc.put("buildSeconds", seconds(result.buildTime()));
        doc.put("diffSeconds", seconds(result.diffTime()));
        if (result.workDir() != null) {
            doc.put("workDir", result.workDir().toString());
        }
        return doc;
    }

    private static Map<String, Object> targetDocument(SourceBuild.TargetResult t) {
        var doc = new LinkedHashMap<String, Object>();
        doc.put("target", t.target().path());
        doc.put("deployed", t.deployed() == null ? null : t.deployed().toString());
        doc.put("changed", t.diff() != null);
        doc.put("changedObjects", t.changedObjects());
        if (t.diff() == null) {
            doc.put("unchanged", t.unchanged());
        } else {
            doc.put("patch", t.diff().patchFile().toString());
            doc.put("id", t.diff().patchId());
            doc.put("targetBuildId", t.diff().targetBuildId());
            doc.put("replaced", t.diff().replaced());
            doc.put("added", t.diff().added());
            doc.put("lineOnly", t.diff().lineOnly());
            doc.put("symbols", t.diff().symbols().name().toLowerCase(Locale.ROOT));
            doc.put("warnings", t.diff().warnings());
            var sig = t.diff().signature();
            doc.put("signature", sig == null ? null : SignCommand.json(sig));
        }
        return doc;
    }

    private static Map<String, Object> document(SourceBuild.Result result) {
        var targetsDoc = new ArrayList<Map<String, Object>>();
        for (var t : result.targets()) {
            targetsDoc.add(targetDocument(t));
        }
        var doc = new LinkedHashMap<String, Object>();
        doc.put("targets", targetsDoc);
        doc.put("warnings", result.warnings());
        doc.put("copySeconds", seconds(result.copyTime()));
        doc.put("buildSeconds", seconds(result.buildTime()));
        doc.put("diffSeconds", seconds(result.diffTime()));
        if (result.workDir() != null) {
            doc.put("workDir", result.workDir().toString());
        }
        return doc;
    }

    private static double seconds(Duration d) {
        return Math.round(d.toMillis() / 10.0) / 100.0;
    }

    private static String list(List<String> names) {
        return names.isEmpty() ? "(none)" : String.join(" ", names);
    }
}
