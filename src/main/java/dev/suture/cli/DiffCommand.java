package dev.suture.cli;

import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;

/** {@code suture diff}: a patch file from the objects of two builds, bound to the deployed binary. */
@Command(name = "diff", header = "Makes a patch file from the objects of two builds.", mixinStandardHelpOptions = true,
        description = {"Builds a patch file from the objects of the original and the patched build",
                "(compiled with -ffunction-sections -fdata-sections) for the deployed BINARY,",
                "and prints which functions it replaces and adds. With -g objects, a function whose only",
                "change is its line numbers is left as it is and reported. Statics of same-named source",
                "files are told apart by their bytes only (suture build also knows the link order)."})
public final class DiffCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--target", required = true, paramLabel = "BINARY",
            description = "The deployed executable or library (with symbols, or with its debug file installed).")
    Path target;

    @Option(names = "--orig", required = true, arity = "1..*", paramLabel = "OBJ",
            description = "Objects of the build that produced BINARY.")
    List<Path> originals;

    @Option(names = "--patched", required = true, arity = "1..*", paramLabel = "OBJ",
            description = "Objects of the patched build, in the same layout.")
    List<Path> patched;

    @Option(names = {"-o", "--output"}, paramLabel = "FILE",
            description = "Where to write the patch (default: <build-id>.suture; a directory: that name in it).")
    Path output;

    @Option(names = "--name", paramLabel = "ID", description = "The patch id (default: derived from the target and content).")
    String name;

    @Option(names = "--force", description = "Patch even if the original build does not reproduce BINARY's functions.")
    boolean force;

    @Mixin
    SignWith sign;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        var signing = sign.read(spec.commandLine().getErr());
        var result = Differ.diff(DiffRequest.ofFiles(target, originals, patched, name, force), output, signing);
        var signature = result.signature();
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var doc = new LinkedHashMap<String, Object>();
            doc.put("patch", result.patchFile().toString());
            doc.put("id", result.patchId());
            doc.put("targetBuildId", result.targetBuildId());
            doc.put("replaced", result.replaced());
            doc.put("added", result.added());
            doc.put("lineOnly", result.lineOnly());
            doc.put("warnings", result.warnings());
            doc.put("signature", signature == null ? null
                    : SignCommand.json(signature));
            JsonOutput.print(out, doc);
        } else {
            for (String w : result.warnings()) {
                spec.commandLine().getErr().println("warning: " + w);
            }
            out.println("wrote " + result.patchFile() + " (patch " + result.patchId() + ", target build-id "
                    + result.targetBuildId() + ")");
            out.println("replaced: " + (result.replaced().isEmpty() ? "(none)" : String.join(" ", result.replaced())));
            out.println("new:      " + (result.added().isEmpty() ? "(none)" : String.join(" ", result.added())));
            result.lineOnlySummary().ifPresent(out::println);
            if (signature != null) {
                out.println("signed:   " + signature);
            }
        }
        out.flush();
        return ExitCodes.OK;
    }
}
