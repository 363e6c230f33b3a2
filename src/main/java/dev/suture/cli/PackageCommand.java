package dev.suture.cli;

import dev.suture.fleet.PatchPackage;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code suture package}: a Debian package that installs patches into the store and applies them on install. */
@Command(name = "package", header = "Makes a Debian package of patches for apt fleets.",
        description = {"Writes suture-patch-NAME_VERSION_amd64.deb: it depends on suture, installs each PATCH as",
                PatchPackage.STORE + "/<build-id>.suture, and after installation brings running processes to",
                "the store's state (suture apply --all --replace " + PatchPackage.STORE + "); before removal it",
                "reverts its patches in every process (suture revert PATCH-ID...). A process that cannot be",
                "patched or reverted then is reported, and never fails the installation or removal. One patch",
                "per target build-id; a new fix for the same binary is a new version of the same package.",
                "Hosts with a trust directory (the suture package makes /etc/suture/trusted-keys) apply only",
                "patches signed by a key in it: sign them first (suture sign, build --sign). See docs/fleet.md."})
public final class PackageCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    // no -V/--version of suture here: --version is the package's (the and DESIGN.md's contract)
    @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help message and exit.")
    boolean help;

    @Parameters(arity = "1..*", paramLabel = "PATCH", description = "The patch files to ship.")
    List<Path> patches;

    @Option(names = "--name", required = true, paramLabel = "NAME",
            description = "The package is suture-patch-NAME (lower-case letters, digits, + . -).")
    String name;

    @Option(names = "--version", required = true, paramLabel = "VERSION",
            description = "The package's Debian version (e.g. 1.0, 2024.06.1-2); a newer one upgrades it.")
    String version;

    @Option(names = {"-o", "--output"}, paramLabel = "DIR", defaultValue = ".",
            description = "Where to write the .deb (default: the current directory).")
    Path output;

    @Option(names = "--maintainer", paramLabel = "TEXT", defaultValue = "suture package <root@localhost>",
            description = "The package's Maintainer field (default: ${DEFAULT-VALUE}).")
    String maintainer;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        var result = PatchPackage.build(new PatchPackage.Request(patches, name, version, output, maintainer));
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var doc = new LinkedHashMap<String, Object>();
            doc.put("package", result.packageName());
            doc.put("version", result.version());
            doc.put("file", result.deb().toString());
            doc.put("size", result.size());
            doc.put("patches", result.entries().stream().map(e -> {
                var m = new LinkedHashMap<String, Object>();
                m.put("file", e.source().toString());
                m.put("patch", e.patchId());
                m.put("target", e.targetName());
                m.put("buildId", e.buildId());
                m.put("functions", e.functions());
                m.put("signed", e.signed());
                m.put("installedAs", e.installedAs());
                return (Map<String, Object>) m;
            }).toList());
            JsonOutput.print(out, doc);
        } else {
            var err = spec.commandLine().getErr();
            for (var e : result.entries()) {
                if (!e.signed()) {
                    err.println("warning: " + e.source() + " is not signed; a host with a trust directory (the suture"
                            + " package makes /etc/suture/trusted-keys) refuses it: sign it (suture sign --key KEY)");
                }
            }
            err.flush();
            out.printf("wrote %s (%s %s, %d KiB)%n", result.deb(), result.packageName(), result.version(),
                    (result.size() + 1023) / 1024);
            for (var e : result.entries()) {
                out.printf("  %s: %s (build-id %s): %s -> %s%n", e.patchId(), e.targetName(), e.buildId(),
                        String.join(", ", e.functions()), e.installedAs());
            }
        }
        out.flush();
        return ExitCodes.OK;
    }
}
