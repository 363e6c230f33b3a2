package dev.suture.fleet;

import dev.suture.SutureException;
import dev.suture.SutureException.Kind;
import dev.suture.patch.PatchFile;
import dev.suture.patch.ReplacedFunction;
import dev.suture.patch.TrustedKeys;
import dev.suture.sys.Directories;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A Debian package of patches, {@code suture-patch-NAME}: it installs them into the machine's patch store, and its
 * maintainer scripts bring running processes to the store's state after installation ({@code suture apply --all
 * --replace STORE}) and take its patches out of every process before removal ({@code suture revert ID...}). A
 * process that cannot be patched or reverted at that moment is reported, never a failed installation: the store
 * stays the desired state, and {@code suture info} shows what runs. docs/fleet.md is the operator's side.
 */
public final class PatchPackage {
    /** The machine's patch store, where packages install their patches (DESIGN.md). */
    public static final String STORE = "/var/lib/suture/patches";
    private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9+.-]{0,100}");
    private static final Pattern VERSION = Pattern.compile("([0-9]+:)?[0-9][A-Za-z0-9.+~-]{0,100}");

    private PatchPackage() {}

    public record Request(List<Path> patches, String name, String version, Path outDir, String maintainer) {}

    /** One patch in the package: where it came from and where it is installed. */
    public record Entry(Path source, String patchId, String targetName, String buildId, List<String> functions,
                        boolean signed, String installedAs) {}

    public record Result(Path deb, String packageName, String version, List<Entry> entries, long size) {}

    public static Result build(Request request) {
        if (!NAME.matcher(request.name()).matches()) {
            throw new SutureException(Kind.BAD_INPUT, "--name \"" + request.name() + "\" cannot name a Debian package:"
                    + " use lower-case letters, digits and + . - (starting with a letter or digit)");
        }
        if (!VERSION.matcher(request.version()).matches()) {
            throw new SutureException(Kind.BAD_INPUT, "--version \"" + request.version() + "\" is not a Debian"
                    + " version: it starts with a digit and holds letters, digits and . + ~ - (e.g. 1.0, 2024.1-2)");
        }
        var entries = read(request.patches());
        String packageName = "suture-patch-" + request.name();
        Path stage = null;
        try {
            stage = Files.createTempDirectory("suture-package");
            Path root = stage.resolve("root");
            Path store = root.resolve(STORE.substring(1));
            Files.createDirectories(store);
            Files.createDirectories(root.resolve("DEBIAN"));
            for (var e : entries) {
                Path dest = root.resolve(e.installedAs().substring(1));
                Files.copy(e.source(), dest, StandardCopyOption.REPLACE_EXISTING);
                Files.setPosixFilePermissions(dest, PosixFilePermissions.fromString("rw-r--r--"));
            }
            long installedKiB = (entries.stream().mapToLong(e -> size(e.source())).sum() + 1023) / 1024;
            write(root.resolve("DEBIAN/control"), control(packageName, request, entries, installedKiB), "rw-r--r--");
            write(root.resolve("DEBIAN/postinst"), postinst(packageName), "rwxr-xr-x");
            write(root.resolve("DEBIAN/prerm"), prerm(packageName, entries), "rwxr-xr-x");
            for (Path dir : List.of(root, root.resolve("var"), root.resolve("var/lib"), root.resolve("var/lib/suture"),
                    store, root.resolve("DEBIAN"))) {
                Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            Files.createDirectories(request.outDir());
            Path deb = request.outDir().resolve(packageName + "_" + request.version().replaceFirst("^[0-9]+:", "")
                    + "_amd64.deb");
            dpkgDeb(root, deb, stage.resolve("dpkg-deb.log"));
            return new Result(deb, packageName, request.version(), entries, Files.size(deb));
        } catch (IOException e) {
            throw new SutureException(Kind.BAD_INPUT, "cannot make the package in " + request.outDir() + ": " + e, e);
        } finally {
            Directories.deleteTree(stage);
        }
    }

    /** The patches, checked: readable, signature intact when signed, one per target build-id (the store's rule). */
    private static List<Entry> read(List<Path> patches) {
        var byBuildId = new LinkedHashMap<String, Entry>();
        for (Path p : patches) {
            var patch = PatchFile.read(p);
            TrustedKeys.requireIntact(patch);
            var entry = new Entry(p, patch.id(), patch.targetName(), patch.targetBuildId(),
                    patch.replaced().stream().map(ReplacedFunction::symbol).toList(), patch.signature().isPresent(),
                    STORE + "/" + patch.targetBuildId() + ".suture");
            var earlier = byBuildId.putIfAbsent(patch.targetBuildId(), entry);
            if (earlier != null) {
                throw new SutureException(Kind.BAD_INPUT, p + " and " + earlier.source() + " both patch build-id "
                        + patch.targetBuildId() + " (" + patch.targetName() + "); the store holds one patch per"
                        + " binary: make one patch with both fixes (suture build with both diffs)");
            }
        }
        return List.copyOf(byBuildId.values());
    }

    private static String control(String packageName, Request request, List<Entry> entries, long installedKiB) {
        var c = new StringBuilder();
        c.append("Package: ").append(packageName).append('\n');
        c.append("Version: ").append(request.version()).append('\n');
        c.append("Architecture: amd64\n");
        c.append("Maintainer: ").append(request.maintainer().replace('\n', ' ')).append('\n');
        c.append("Installed-Size: ").append(installedKiB).append('\n');
        c.append("Depends: suture\n");
        c.append("Section: admin\nPriority: optional\n");
        var targets = entries.stream().map(Entry::targetName).distinct().toList();
        c.append("Description: live patches for ").append(String.join(", ", targets)).append('\n');
        c.append(" Installs these suture patches into ").append(STORE).append(" and applies them to\n");
        c.append(" every running process that maps their target; removing the package reverts\n");
        c.append(" them.\n .\n");
        for (var e : entries) {
            c.append(" ").append(e.patchId()).append(": ").append(e.targetName()).append(" (build-id ")
                    .append(e.buildId()).append("): ").append(String.join(", ", e.functions())).append('\n');
        }
        return c.toString();
    }

    private static String postinst(String packageName) {
        return """
                #!/bin/sh
                # %1$s: its patches are in the store now; bring running processes to the store's state. A process
                # that cannot be patched now is reported and never fails the installation: the store stays the
                # desired state ('suture info' shows what runs where).
                set -u
                if [ "$1" = configure ]; then
                  if ! suture apply --all --replace %2$s; then
                    echo "%1$s: not every process could be patched now (above); the patches stay in %2$s, 'suture info' shows what is applied where" >&2
                  fi
                fi
                exit 0
                """.formatted(packageName, STORE);
    }

    private static String prerm(String packageName, List<Entry> entries) {
        var ids = new ArrayList<String>();
        for (var e : entries) {
            ids.add(shellQuote(e.patchId()));
        }
        return """
                #!/bin/sh
                # %1$s: before its patches leave the store, take them out of every process that runs them. An
                # upgrade keeps them: the new version's postinst swaps them for its own (apply --replace).
                set -u
                case "$1" in
                  remove|deconfigure)
                    if ! suture revert %2$s; then
                      echo "%1$s: some processes still run its patches (above); 'suture info' lists them, 'suture revert -p PID ID' retries" >&2
                    fi
                    ;;
                esac
                exit 0
                """.formatted(packageName, String.join(" ", ids));
    }

    static String shellQuote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    private static void dpkgDeb(Path root, Path deb, Path log) throws IOException {
        var command = List.of("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root.toString(), deb.toString());
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        } catch (IOException e) {
            throw new SutureException(Kind.BAD_INPUT, "cannot run dpkg-deb, which makes the package: " + e.getMessage()
                    + "; install dpkg (it is on every Debian system)");
        }
        try {
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new SutureException(Kind.INTERNAL, "dpkg-deb took longer than 5 minutes; its log: "
                        + Files.readString(log));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new SutureException(Kind.INTERNAL, "interrupted while dpkg-deb ran");
        }
        if (p.exitValue() != 0) {
            String output = Files.readString(log).strip();
            throw new SutureException(Kind.INTERNAL, "dpkg-deb failed (exit " + p.exitValue() + ")"
                    + (output.isEmpty() ? " and printed nothing" : ": " + output));
        }
    }

    private static void write(Path file, String text, String mode) throws IOException {
        Files.writeString(file, text);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString(mode));
    }

    private static long size(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            return 0;
        }
    }
}
