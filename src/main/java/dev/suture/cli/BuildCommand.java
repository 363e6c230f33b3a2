package dev.suture.cli;

import dev.suture.generate.SourceBuild;
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
import picocli.CommandLine.Spec;

/** {@code suture build}: patches from a source tree and a diff, one per changed target. */
@Command(name = "build", header = "Makes patches from a source tree and a diff.", mixinStandardHelpOptions = true,
        description = {"Builds the source tree twice in scratch copies, as it is and with the diffs applied,",
                "through a compiler wrapper that keeps one section per function and records each link;",
                "then writes one patch <build-id>.suture per changed target and says which functions changed."})
public final class BuildCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--src", required = true, paramLabel = "DIR", description = "The source tree (left untouched).")
    Path src;

    @Option(names = "--diff", required = true, paramLabel = "FILE",
            description = "A unified diff to apply with patch(1); repeat for several, applied in order.")
    List<Path> diffs;

    @Option(names = "--strip", paramLabel = "N", defaultValue = "1",
            description = "Leading path components patch strips (-pN; default ${DEFAULT-VALUE}).")
    int strip;

    @Option(names = "--make", paramLabel = "CMD", defaultValue = "make",
            description = "The build command, run by /bin/sh in each copy (default: ${DEFAULT-VALUE}).")
    String make;

    @Option(names = "--target", required = true, paramLabel = "PATH[=DEPLOYED]",
            description = {"An output of the build, relative to DIR; repeat for several.",
                    "=DEPLOYED: the binary actually running, when it is not that build output",
                    "(its symbols come from it or from /usr/lib/debug/.build-id/)."})
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
        var signing = sign.read(spec.commandLine().getErr());
        var request = new SourceBuild.Request(src, diffs, strip, make,
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
                if (t.diff() == null) {
                    out.println(t.target().path() + ": nothing changed (" + t.unchanged() + "), no patch");
                    continue;
                }
                t.diff().warnings().forEach(w -> err.println("warning: " + t.target().path() + ": " + w));
                out.println(t.target().path() + ": " + t.diff().patchFile());
                out.println("  replaced: " + list(t.diff().replaced()));
                out.println("  new:      " + list(t.diff().added()));
                out.println("  objects:  " + String.join(" ", t.changedObjects()));
                if (t.diff().signature() != null) {
                    out.println("  signed:   " + t.diff().signature());
                }
            }
            if (result.workDir() != null) {
                out.println("scratch directory kept: " + result.workDir());
            }
            err.flush();
        }
        out.flush();
        return ExitCodes.OK;
    }

    private static Map<String, Object> document(SourceBuild.Result result) {
        var targetsDoc = new ArrayList<Map<String, Object>>();
        for (var t : result.targets()) {
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
                doc.put("warnings", t.diff().warnings());
                var sig = t.diff().signature();
                doc.put("signature", sig == null ? null : SignCommand.json(sig));
            }
            targetsDoc.add(doc);
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
