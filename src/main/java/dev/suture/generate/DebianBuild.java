package dev.suture.generate;

import static dev.suture.elf.ElfConstants.EM_X86_64;
import static dev.suture.elf.ElfConstants.ET_DYN;
import static dev.suture.elf.ElfConstants.ET_EXEC;

import dev.suture.SutureException;
import dev.suture.SutureException.Kind;
import dev.suture.elf.ElfFile;
import dev.suture.elf.ElfFormatException;
import dev.suture.elf.LoadedSections;
import dev.suture.patch.Keys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * {@code suture build --deb PACKAGE}: patches for the files an installed Debian package put on this machine. Finds
 * the installed version, fetches exactly that version's source ({@code apt-get source}), builds it twice the way
 * Debian does ({@code dpkg-buildpackage -b}) through {@link SourceBuild}, matches what the build linked to the
 * installed ELF files by name and soname, and makes one patch per changed file, bound to the installed file's
 * build-id. The steps and what to do when a package does not reproduce: docs/debian.md.
 */
public final class DebianBuild {
    /**
     * The build command, as Debian's buildds run it for one architecture: the architecture-dependent binary
     * packages (the ones that hold ELF files; -b would add the arch:all ones and need their build dependencies,
     * gzip's a Windows cross compiler), nothing signed.
     */
    public static final String DPKG_BUILDPACKAGE = "dpkg-buildpackage -B -uc -us";
    /** Where {@code --add-deb-src} writes the deb-src entries it adds. */
    static final Path ADDED_SOURCES = Path.of("/etc/apt/sources.list.d/suture-deb-src.sources");
    private static final Duration SHORT = Duration.ofMinutes(5);

    /**
     * What to build: {@code pkg} is {@code NAME[=VERSION]} (an installed binary package or its source package);
     * {@code buildDeps} lets suture install missing build dependencies, {@code addDebSrc} add deb-src entries to
     * apt's sources when there are none.
     */
    public record Request(String pkg, List<Path> diffs, int strip, Path outputDir, boolean buildDeps,
                          boolean addDebSrc, boolean force, boolean keepWork, boolean serial, Duration timeout,
                          Keys.SigningKey signing) {
        public Request {
            diffs = List.copyOf(diffs);
        }
    }

    /** An installed ELF file of one of the source's binary packages. */
    public record InstalledFile(String binaryPackage, Path path, String soname, boolean hasSymbols) {}

    /**
     * What became of one installed file: the build output matched to it (relative to the tree; null when the
     * wrapper saw no link of it, and {@code linkedOutside} then says how the build linked it, if it printed that),
     * whether the rebuild loads the same bytes, and the target's result (null when it was not diffed).
     */
    public record FileResult(InstalledFile file, String rebuilt, boolean reproduced,
                             List<LoadedSections.Difference> differences, String linkedOutside,
                             SourceBuild.TargetResult result) {}

    /** The outcome: the source package and version built, what was done to the system, and each file's result. */
    public record Result(String source, String version, List<String> packages, List<String> notes,
                         List<FileResult> files, List<String> warnings, Duration fetchTime, Duration buildTime,
                         Duration diffTime, Path workDir) {}

    /** The installed source package: its name, version, and the installed binary packages built from it. */
    record Installed(String source, String version, List<String> packages) {}

    private DebianBuild() {}

    /** The whole of {@code suture build --deb}; the scratch directory is removed afterwards unless kept. */
    public static Result run(Request request) throws IOException {
        validate(request);
        Installed installed = installed(request.pkg());
        List<InstalledFile> files = installedFiles(installed);
        requireTool("dpkg-buildpackage", "dpkg-dev");
        requireTool("apt-get", "apt");
        Path work = Files.createTempDirectory("suture-deb-");
        try {
            var notes = new ArrayList<String>();
            long start = System.nanoTime();
            Path source = fetchSource(installed, work.resolve("source"), request.addDebSrc(), notes);
            checkBuildDependencies(installed, source, request.buildDeps(), work, notes);
            Duration fetchTime = Duration.ofNanos(System.nanoTime() - start);
            return build(request, installed, files, source, work, notes, fetchTime);
        } catch (SutureException e) {
            throw SourceBuild.keptIn(e, request.keepWork() ? work : null);
        } finally {
            if (!request.keepWork()) {
                SourceBuild.delete(work);
            }
        }
    }

    private static void validate(Request request) {
        if (request.strip() < 0) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--strip must be 0 or more, not " + request.strip());
        }
        if (request.diffs().isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "no --diff given: nothing to build a patch from");
        }
        for (Path diff : request.diffs()) {
            if (!Files.isRegularFile(diff) || !Files.isReadable(diff)) {
                throw new SourceBuildException(Kind.BAD_INPUT, "--diff " + diff + " is not a readable file");
            }
        }
    }

    // ---- what is installed ---------------------------------------------------------------------------------

    /** {@code NAME[=VERSION]} as installed: NAME a binary package or a source package. */
    static Installed installed(String spec) {
        int eq = spec.indexOf('=');
        String name = eq < 0 ? spec : spec.substring(0, eq);
        String version = eq < 0 ? null : spec.substring(eq + 1);
        if (name.isBlank() || (version != null && version.isBlank())) {
            throw new SourceBuildException(Kind.BAD_INPUT, "bad --deb '" + spec + "': expected PACKAGE or"
                    + " PACKAGE=VERSION");
        }
        String out = query(List.of("dpkg-query", "-W", "-f",
                "${db:Status-Abbrev}\t${binary:Package}\t${Package}\t${source:Package}\t${source:Version}\t${Version}\n"));
        var rows = out.lines().map(l -> l.split("\t", -1)).filter(f -> f.length == 6 && f[0].startsWith("ii"))
                .toList();
        var match = rows.stream().filter(f -> f[1].equals(name) || f[2].equals(name)).findFirst()
                .or(() -> rows.stream().filter(f -> f[3].equals(name)).findFirst())
                .orElseThrow(() -> new SourceBuildException(Kind.BAD_INPUT, "no installed package is named " + name
                        + " or built from a source package of that name (dpkg-query -W lists what is installed);"
                        + " suture build --deb patches the files of an installed package"));
        String source = match[3];
        String sourceVersion = match[4];
        if (version != null && !version.equals(sourceVersion) && !version.equals(match[5])) {
            throw new SourceBuildException(Kind.BAD_INPUT, name + " " + version + " is not what is installed ("
                    + match[2] + " " + match[5] + ", from source " + source + " " + sourceVersion + "); patches"
                    + " are bound to the installed files, so build the installed version (leave out =VERSION)");
        }
        var packages = rows.stream().filter(f -> f[3].equals(source) && f[4].equals(sourceVersion))
                .map(f -> f[1]).distinct().toList();
        return new Installed(source, sourceVersion, packages);
    }

    /** The ELF executables and shared libraries the packages installed (symlinks and debug files left out). */
    static List<InstalledFile> installedFiles(Installed installed) {
        var out = new ArrayList<InstalledFile>();
        var seen = new HashMap<Path, Boolean>();
        for (String pkg : installed.packages()) {
            for (String line : query(List.of("dpkg", "-L", pkg)).lines().toList()) {
                Path p = Path.of(line.strip());
                if (!p.isAbsolute() || p.startsWith("/usr/lib/debug") || Files.isSymbolicLink(p)
                        || !Files.isRegularFile(p) || !ElfFile.hasElfMagic(p)) {
                    continue;
                }
                Path real;
                try {
                    real = p.toRealPath();
                } catch (IOException e) {
                    continue;
                }
                if (seen.putIfAbsent(real, true) != null) {
                    continue;                   // the same file by two paths (/lib and /usr/lib when merged)
                }
                try (ElfFile elf = ElfFile.open(p)) {
                    int type = elf.header().e_type();
                    if ((type == ET_EXEC || type == ET_DYN) && elf.header().e_machine() == EM_X86_64
                            && elf.buildId().isPresent()) {
                        boolean symbols = !SourceBuild.needsRebuildSymbols(p);
                        out.add(new InstalledFile(pkg, p, elf.soname().orElse(null), symbols));
                    }
                } catch (ElfFormatException e) {
                    // not an ELF file after all (a data file that starts with the magic)
                }
            }
        }
        if (out.isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "the installed packages of source " + installed.source()
                    + " (" + String.join(", ", installed.packages()) + ") hold no x86-64 executable or shared"
                    + " library with a build-id: nothing to patch");
        }
        return List.copyOf(out);
    }

    // ---- the source ------------------------------------------------------------------------------------------

    /**
     * Fetches and unpacks exactly the installed version's source into {@code dir} (Debian's patches applied by
     * dpkg-source), and returns the unpacked tree. Without deb-src entries apt cannot; they are added only with
     * {@code addDebSrc}, and {@code notes} say so.
     */
    static Path fetchSource(Installed installed, Path dir, boolean addDebSrc, List<String> notes) throws IOException {
        if (!hasDebSrc()) {
            if (!addDebSrc) {
                throw new SourceBuildException(Kind.BAD_INPUT, "apt has no deb-src entries, so it cannot fetch the"
                        + " source of " + installed.source() + " " + installed.version() + ". Add deb-src lines"
                        + " (or Types: deb-src stanzas) for your mirrors and run apt-get update, or give"
                        + " --add-deb-src to let suture add them to " + ADDED_SOURCES);
            }
            addDebSrc(dir.resolveSibling("apt-get-update.log"));
            notes.add("added deb-src entries to " + ADDED_SOURCES + " and ran apt-get update");
        }
        Files.createDirectories(dir);
        String want = installed.source() + "=" + installed.version();
        var outcome = ExternalCommand.run(List.of("apt-get", "source", "--only-source", want), dir, null,
                dir.resolveSibling("apt-get-source.log"), SHORT.multipliedBy(6));
        if (!outcome.ok()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "apt-get source " + want + " failed"
                    + (outcome.timedOut() ? " (timed out)" : "") + ":\n" + outcome.tail(15) + "\nIf apt does not know"
                    + " this version, run apt-get update; a point release may have dropped it from the mirrors, and"
                    + " snapshot.debian.org keeps every version (dget its .dsc, then suture build --src DIR"
                    + " --make '" + DPKG_BUILDPACKAGE + "' --target PATH=/installed/file)");
        }
        try (Stream<Path> entries = Files.list(dir)) {
            var trees = entries.filter(p -> Files.isDirectory(p) && Files.isRegularFile(p.resolve("debian/rules")))
                    .toList();
            if (trees.size() != 1) {
                throw new SourceBuildException(Kind.INTERNAL, "apt-get source " + want + " left " + trees.size()
                        + " source trees in " + dir + "; expected one");
            }
            return trees.getFirst();
        }
    }

    /** Whether apt's sources name any deb-src entry (one-line or deb822 format). */
    static boolean hasDebSrc() throws IOException {
        var files = new ArrayList<Path>();
        files.add(Path.of("/etc/apt/sources.list"));
        Path dir = Path.of("/etc/apt/sources.list.d");
        if (Files.isDirectory(dir)) {
            try (Stream<Path> entries = Files.list(dir)) {
                entries.filter(p -> p.toString().endsWith(".list") || p.toString().endsWith(".sources"))
                        .forEach(files::add);
            }
        }
        for (Path f : files) {
            if (!Files.isRegularFile(f)) {
                continue;
            }
            for (String line : Files.readAllLines(f)) {
                String l = line.strip();
                if (l.startsWith("deb-src ") || (l.startsWith("Types:") && l.contains("deb-src"))) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Adds a deb-src stanza for every deb822 stanza of apt's sources, then updates the package lists. */
    private static void addDebSrc(Path log) throws IOException {
        var text = new StringBuilder("# Added by suture build --deb --add-deb-src: the source packages of the"
                + " configured mirrors.\n");
        Path dir = Path.of("/etc/apt/sources.list.d");
        var sources = new ArrayList<Path>();
        try (Stream<Path> entries = Files.list(dir)) {
            entries.filter(p -> p.toString().endsWith(".sources") && !p.equals(ADDED_SOURCES)).sorted()
                    .forEach(sources::add);
        }
        for (Path f : sources) {
            for (String stanza : Files.readString(f).split("\n\\s*\n")) {
                if (stanza.lines().anyMatch(l -> l.startsWith("Types:") && l.contains("deb"))) {
                    text.append(stanza.lines().filter(l -> !l.startsWith("#"))
                            .map(l -> l.startsWith("Types:") ? "Types: deb-src" : l)
                            .reduce((a, b) -> a + "\n" + b).orElse("")).append("\n\n");
                }
            }
        }
        Path list = Path.of("/etc/apt/sources.list");
        if (Files.isRegularFile(list)) {
            for (String line : Files.readAllLines(list)) {
                String l = line.strip();
                if (l.startsWith("deb ")) {
                    String[] f = l.substring(4).strip().split("\\s+");
                    int i = f[0].startsWith("[") ? 1 : 0;
                    if (f.length >= i + 3) {
                        text.append("Types: deb-src\nURIs: ").append(f[i]).append("\nSuites: ").append(f[i + 1])
                                .append("\nComponents: ")
                                .append(String.join(" ", List.of(f).subList(i + 2, f.length))).append("\n\n");
                    }
                }
            }
        }
        if (!text.toString().contains("Types: deb-src")) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--add-deb-src: apt's sources name no deb entry to"
                    + " derive deb-src entries from; add them by hand");
        }
        Files.writeString(ADDED_SOURCES, text);
        var update = ExternalCommand.run(List.of("apt-get", "update"), Path.of("/"), null, log, SHORT);
        if (!update.ok()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "apt-get update after adding " + ADDED_SOURCES
                    + " failed:\n" + update.tail(15));
        }
    }

    /**
     * Checks the build dependencies before the builds ({@code dpkg-checkbuilddeps}); installs the missing ones
     * only with {@code install} ({@code apt-get build-dep} on the unpacked tree), and says so in {@code notes}.
     */
    static void checkBuildDependencies(Installed installed, Path tree, boolean install, Path work,
                                       List<String> notes) {
        Path log = work.resolve("checkbuilddeps.log");
        var check = ExternalCommand.run(List.of("dpkg-checkbuilddeps", "-B"), tree, null, log, SHORT);
        if (check.ok()) {
            return;
        }
        String unmet = check.tail(5);
        if (!install) {
            throw new SourceBuildException(Kind.BAD_INPUT, "the build dependencies of " + installed.source() + " "
                    + installed.version() + " are not all installed:\n" + unmet + "\nInstall them (apt-get"
                    + " build-dep " + installed.source() + "=" + installed.version() + "), or give --build-deps to"
                    + " let suture install them");
        }
        var env = new HashMap<>(System.getenv());
        env.put("DEBIAN_FRONTEND", "noninteractive");
        var outcome = ExternalCommand.run(List.of("apt-get", "build-dep", "-y", "--arch-only", "./"), tree, env,
                work.resolve("build-dep.log"), SHORT.multipliedBy(6));
        if (!outcome.ok()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "apt-get build-dep for " + installed.source() + " "
                    + installed.version() + " failed:\n" + outcome.tail(15));
        }
        notes.add("installed the build dependencies of " + installed.source() + " (apt-get build-dep): " + unmet
                .lines().map(String::strip).reduce((a, b) -> a + " " + b).orElse(""));
    }

    // ---- the builds and the diff -------------------------------------------------------------------------

    private static Result build(Request request, Installed installed, List<InstalledFile> files, Path source,
                                Path work, List<String> notes, Duration fetchTime) throws IOException {
        var buildRequest = new SourceBuild.Request(source, request.diffs(), request.strip(), DPKG_BUILDPACKAGE,
                List.of(), request.outputDir(), request.force(), request.keepWork(), request.serial(),
                request.timeout(), request.signing());
        boolean reproduce = files.stream().anyMatch(f -> !f.hasSymbols());
        var matched = new LinkedHashMap<InstalledFile, Path>();
        var prepared = SourceBuild.prepare(buildRequest, Files.createDirectories(work.resolve("build")),
                (record, root) -> {
                    var targets = new ArrayList<SourceBuild.Target>();
                    for (InstalledFile f : files) {
                        match(f, record).ifPresent(output -> {
                            matched.put(f, output);
                            targets.add(new SourceBuild.Target(root.relativize(output).toString(), f.path()));
                        });
                    }
                    return targets;
                }, reproduce);
        Path log = work.resolve("build").resolve("build-original.log");
        if (prepared.targets().isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "the build of " + installed.source() + " linked none of"
                    + " the installed files through the compiler wrapper ("
                    + String.join(", ", files.stream().map(f -> f.path().toString()).toList()) + ")"
                    + outsideWrapper(files, log));
        }
        var result = SourceBuild.diff(buildRequest, prepared);
        var byDeployed = new HashMap<Path, SourceBuild.TargetResult>();
        result.targets().forEach(t -> byDeployed.put(t.deployed(), t));
        var fileResults = new ArrayList<FileResult>();
        for (InstalledFile f : files) {
            Path output = matched.get(f);
            if (output == null) {
                fileResults.add(new FileResult(f, null, false, List.of(),
                        SourceBuild.linkCommand(log, f.path().getFileName().toString()).orElse(null), null));
                continue;
            }
            List<LoadedSections.Difference> differences;
            try (ElfFile installedElf = ElfFile.open(f.path()); ElfFile rebuilt = ElfFile.open(output)) {
                differences = LoadedSections.compare(installedElf, rebuilt);
            }
            Path root = prepared.workDir().resolve("original").resolve(source.getFileName());
            fileResults.add(new FileResult(f, root.relativize(output).toString(), differences.isEmpty(),
                    differences, null, byDeployed.get(f.path())));
        }
        return new Result(installed.source(), installed.version(), installed.packages(), List.copyOf(notes),
                List.copyOf(fileResults), result.warnings(), fetchTime, result.buildTime(), result.diffTime(),
                request.keepWork() ? work : null);
    }

    /**
     * The build output that is the installed file: a linked x86-64 ELF file of the same name, else of the same
     * soname; of several, one that loads the installed file's bytes, else the last linked.
     */
    static Optional<Path> match(InstalledFile file, BuildRecord record) {
        String name = file.path().getFileName().toString();
        var byName = new ArrayList<Path>();
        var bySoname = new ArrayList<Path>();
        for (var link : record.links()) {
            Path out = link.output();
            if (!Files.isRegularFile(out) || Files.isSymbolicLink(out) || !ElfFile.hasElfMagic(out)) {
                continue;
            }
            try (ElfFile elf = ElfFile.open(out)) {
                if (elf.header().e_machine() != EM_X86_64) {
                    continue;
                }
                if (out.getFileName().toString().equals(name)) {
                    byName.add(out);
                } else if (file.soname() != null && file.soname().equals(elf.soname().orElse(null))) {
                    bySoname.add(out);
                }
            } catch (ElfFormatException e) {
                // a link output that is no ELF file is nothing to match
            }
        }
        var candidates = byName.isEmpty() ? bySoname : byName;
        if (candidates.isEmpty()) {
            return Optional.empty();
        }
        try (ElfFile installed = ElfFile.open(file.path())) {
            for (Path c : candidates.reversed()) {
                try (ElfFile rebuilt = ElfFile.open(c)) {
                    if (LoadedSections.compare(installed, rebuilt).isEmpty()) {
                        return Optional.of(c);
                    }
                }
            }
        }
        return Optional.of(candidates.getLast());
    }

    /** How the build linked the installed files the wrapper did not see linked, as far as its log says. */
    private static String outsideWrapper(List<InstalledFile> files, Path log) {
        var said = new StringBuilder();
        for (InstalledFile f : files) {
            SourceBuild.linkCommand(log, f.path().getFileName().toString()).ifPresent(c -> said.append("\n")
                    .append(f.path().getFileName()).append(" was linked by:\n  ").append(c));
        }
        return said.isEmpty() ? "; its log does not show the link commands (is DEB_BUILD_OPTIONS=terse set?)"
                : ", which called no compiler name it stands in for:" + said;
    }

    private static void requireTool(String tool, String pkg) {
        if (CompilerWrapper.which(tool, System.getenv().getOrDefault("PATH", "/usr/bin:/bin")).isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, tool + " is not installed; install " + pkg
                    + " (apt-get install " + pkg + ")");
        }
    }

    /** A short query (dpkg-query, dpkg -L) whose output is read whole. */
    private static String query(List<String> command) {
        try {
            Path log = Files.createTempFile("suture-query", ".out");
            try {
                return ExternalCommand.check(command, Path.of("/"), log, SHORT, String.join(" ", command));
            } finally {
                Files.deleteIfExists(log);
            }
        } catch (IOException e) {
            throw new SourceBuildException(Kind.INTERNAL, "cannot run " + command.getFirst() + ": " + e.getMessage(),
                    e);
        }
    }
}
