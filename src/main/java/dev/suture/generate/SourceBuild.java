package dev.suture.generate;

import static dev.suture.elf.ElfConstants.EM_X86_64;
import static dev.suture.elf.ElfConstants.ET_DYN;
import static dev.suture.elf.ElfConstants.ET_EXEC;

import dev.suture.SutureException;
import dev.suture.SutureException.Kind;
import dev.suture.elf.DebugFiles;
import dev.suture.elf.ElfFile;
import dev.suture.patch.Keys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * {@code suture build}: builds a source tree twice in scratch copies, as it is and with the diffs applied, through
 * the {@link CompilerWrapper}; finds the objects of every target in both builds ({@link BuildRecord}); and hands
 * each changed target to the diff engine, which writes one patch per changed target.
 */
public final class SourceBuild {

    /** Lines of a failed build's log shown in the message. */
    static final int LOG_TAIL = 30;

    /** What to build and patch; the fields mirror the command line (DESIGN.md, "Command-line contract"). */
    public record Request(Path sourceDir, List<Path> diffs, int strip, String make, List<Target> targets,
                          Path outputDir, boolean force, boolean keepWork, boolean serial, Duration timeout,
                          Keys.SigningKey signing) {
        public Request {
            diffs = List.copyOf(diffs);
            targets = List.copyOf(targets);
        }

        /** Patches written unsigned. */
        public Request(Path sourceDir, List<Path> diffs, int strip, String make, List<Target> targets,
                       Path outputDir, boolean force, boolean keepWork, boolean serial, Duration timeout) {
            this(sourceDir, diffs, strip, make, targets, outputDir, force, keepWork, serial, timeout, null);
        }
    }

    /**
     * {@code PATH[=DEPLOYED]}: an output of the build relative to the source tree, and the binary actually
     * running when that is not the build's own output (null: the original build's output is the deployed one).
     */
    public record Target(String path, Path deployed) {
        public static Target parse(String spec) {
            int eq = spec.indexOf('=');
            String path = eq < 0 ? spec : spec.substring(0, eq);
            String deployed = eq < 0 ? null : spec.substring(eq + 1);
            if (path.isBlank() || (deployed != null && deployed.isBlank())) {
                throw new SourceBuildException(Kind.BAD_INPUT,
                        "bad --target '" + spec + "': expected PATH or PATH=DEPLOYED, PATH relative to --src");
            }
            return new Target(path, deployed == null ? null : Path.of(deployed));
        }

        @Override
        public String toString() {
            return deployed == null ? path : path + "=" + deployed;
        }
    }

    /**
     * The objects of one target in each build, and the keys of the objects that differ between the builds. The
     * original objects are in link order (the diff tells same-named files apart by it); the patched ones are the
     * originals' counterparts in that order, then the objects only the patched build has. Keys pair them.
     */
    public record TargetObjects(Target target, Path originalOutput, Path patchedOutput,
                                List<BuildRecord.TargetObject> original, List<BuildRecord.TargetObject> patched,
                                List<String> changed) {}

    /** The scratch builds, finished: each target's objects, what patch(1) said, and how long it took. */
    public record Prepared(Path workDir, List<TargetObjects> targets, List<String> warnings,
                           Duration copyTime, Duration buildTime) {}

    /**
     * What became of one target: the patch the diff engine wrote ({@code diff}), or null and why nothing changed.
     * {@code deployed} is null when the patch is for the original build's own output. {@code changedObjects} are
     * the objects that differ between the builds, named as in the tree.
     */
    public record TargetResult(Target target, Path deployed, List<String> changedObjects, DiffResult diff,
                               String unchanged) {}

    /** The outcome of {@code suture build}; {@code workDir} is where the scratch trees were kept, or null. */
    public record Result(List<TargetResult> targets, List<String> warnings, Duration copyTime, Duration buildTime,
                         Duration diffTime, Path workDir) {}

    /** Told as each stage of a build begins, so a terminal can show where a long build is. */
    public interface Stages {
        Stages NONE = stage -> {};

        void begin(String stage);
    }

    private SourceBuild() {}

    /**
     * The whole of {@code suture build}: scratch builds in a temporary directory (removed afterwards unless
     * {@link Request#keepWork()}), then one patch per changed target in {@link Request#outputDir()}.
     */
    public static Result run(Request request) throws IOException {
        return run(request, Stages.NONE);
    }

    /** {@link #run(Request)}, telling {@code stages} as each stage begins. */
    public static Result run(Request request, Stages stages) throws IOException {
        Path work = Files.createTempDirectory("suture-build-");
        try {
            Prepared prepared = prepare(request, work, stages);
            return diff(request, prepared, stages);
        } catch (SutureException e) {
            throw keptIn(e, request.keepWork() ? work : null);
        } finally {
            if (!request.keepWork()) {
                delete(work);
            }
        }
    }

    /**
     * {@code e} saying where the scratch trees were kept ({@code kept} null: they were not), with its kind kept.
     */
    static SutureException keptIn(SutureException e, Path kept) {
        if (kept == null) {
            return e;
        }
        return new SourceBuildException(e.kind(), e.getMessage() + "\n(scratch directory kept: " + kept + ")", e);
    }

    /**
     * Diffs every target whose objects changed, writing {@code <build-id>.suture} into the output directory.
     * Fails (DOES_NOT_FIT) when the diff engine refuses a target, or when no target changed at all.
     */
    public static Result diff(Request request, Prepared prepared) throws IOException {
        return diff(request, prepared, Stages.NONE);
    }

    private static Result diff(Request request, Prepared prepared, Stages stages) throws IOException {
        Files.createDirectories(request.outputDir());
        long start = System.nanoTime();
        var results = new ArrayList<TargetResult>();
        var refusals = new ArrayList<String>();
        for (TargetObjects t : prepared.targets()) {
            Path deployed = t.target().deployed() != null ? t.target().deployed() : t.originalOutput();
            List<String> changed = t.changed().stream().map(SourceBuild::shown).toList();
            if (changed.isEmpty()) {
                results.add(new TargetResult(t.target(), t.target().deployed(), changed, null, "no object differs"));
                continue;
            }
            stages.begin("diffing " + t.target().path());
            // A deployed binary that is not the build's own output may take its symbols from that output.
            var diffRequest = new DiffRequest(deployed, inputs(t.original()), inputs(t.patched()), null,
                    request.force(), t.target().deployed() != null ? t.originalOutput() : null, true);
            try {
                results.add(new TargetResult(t.target(), t.target().deployed(), changed,
                        Differ.diff(diffRequest, request.outputDir(), request.signing()), null));
            } catch (DiffRefusedException e) {
                if (e.reason() == DiffRefusedException.Reason.NOTHING_CHANGED) {
                    results.add(new TargetResult(t.target(), t.target().deployed(), changed, null,
                            "objects differ but no function changed"));
                } else {
                    refusals.add(t.target().path() + ": " + e.getMessage());
                }
            }
        }
        Duration diffTime = Duration.ofNanos(System.nanoTime() - start);
        if (!refusals.isEmpty()) {
            var written = results.stream().filter(r -> r.diff() != null)
                    .map(r -> r.target().path() + " -> " + r.diff().patchFile()).toList();
            throw new SourceBuildException(Kind.DOES_NOT_FIT, String.join("\n", refusals)
                    + (written.isEmpty() ? "" : "\n(patches written for the other targets: "
                    + String.join(", ", written) + ")"));
        }
        if (results.stream().allMatch(r -> r.diff() == null)) {
            throw new SourceBuildException(Kind.DOES_NOT_FIT, "the diffs change no function in any target ("
                    + String.join(", ", results.stream().map(r -> r.target().path() + ": " + r.unchanged()).toList())
                    + "); no patch written. Does the diff touch code that these targets are built from?");
        }
        return new Result(List.copyOf(results), prepared.warnings(), prepared.copyTime(), prepared.buildTime(),
                diffTime, request.keepWork() ? prepared.workDir() : null);
    }

    /**
     * The objects as the diff engine takes them, paired by the build record's keys made relative paths (a member
     * of an archive a path inside it), ending in .o like the object files given to {@code suture diff}.
     */
    private static List<DiffRequest.ObjectInput> inputs(List<BuildRecord.TargetObject> objects) {
        var out = new ArrayList<DiffRequest.ObjectInput>();
        for (var o : objects) {
            String rel = o.key().replaceFirst(":", "/").replace(':', '/').replace("(", "/").replace(")", "");
            rel = Path.of("/", rel).normalize().toString().substring(1).replace("..", "__");
            String key = rel.endsWith(".o") || rel.endsWith(".lo") ? rel : rel + ".o";
            out.add(new DiffRequest.ObjectInput(o.path(), key, o.image()));
        }
        return out;
    }

    /** An object key as a person reads it: the path in the tree, or the source it was compiled from. */
    private static String shown(String key) {
        return key.startsWith("tree:") ? key.substring(5) : key;
    }

    /**
     * Copies, patches and builds both trees in {@code workDir} (which must exist and be empty) and resolves every
     * target's objects. The objects stay in {@code workDir} for the diff.
     */
    public static Prepared prepare(Request request, Path workDir) throws IOException {
        return prepare(request, workDir, Stages.NONE);
    }

    private static Prepared prepare(Request request, Path workDir, Stages stages) throws IOException {
        validate(request, workDir);
        return prepare(request, workDir, (record, root) -> request.targets(), needsReproduction(request.targets()),
                stages);
    }

    /** Names the targets once the original tree is built, from what its build record says it linked. */
    interface TargetsAfterBuild {
        List<Target> targets(BuildRecord original, Path originalRoot) throws IOException;
    }

    /**
     * {@link #prepare(Request, Path)} with the targets named after the builds by {@code targetsAfterBuild} (a
     * Debian package's installed files are matched to what its build linked); {@code reproduce}: link what the
     * package's build links, so stripped targets can take their symbols from the rebuild.
     */
    static Prepared prepare(Request request, Path workDir, TargetsAfterBuild targetsAfterBuild, boolean reproduce)
            throws IOException {
        return prepare(request, workDir, targetsAfterBuild, reproduce, Stages.NONE);
    }

    private static Prepared prepare(Request request, Path workDir, TargetsAfterBuild targetsAfterBuild,
                                    boolean reproduce, Stages stages) throws IOException {
        Path source = request.sourceDir().toRealPath();
        // Each tree one level down, as the source's own name: builds that write beside the tree (dpkg-buildpackage
        // puts its .deb files in ..) then write into a directory of their own.
        Path original = Files.createDirectories(workDir.resolve("original")).resolve(source.getFileName());
        Path patched = Files.createDirectories(workDir.resolve("patched")).resolve(source.getFileName());
        var warnings = new ArrayList<String>();

        long start = System.nanoTime();
        stages.begin("copying the tree twice and applying the diffs");
        copyTree(source, original, workDir, request.timeout());
        copyTree(source, patched, workDir, request.timeout());
        for (Path diff : request.diffs()) {
            warnings.addAll(applyDiff(diff, request.strip(), source, patched, workDir, request.timeout()));
        }
        Duration copyTime = Duration.ofNanos(System.nanoTime() - start);

        start = System.nanoTime();
        var wrapper = CompilerWrapper.create(workDir.resolve("wrap"),
                System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
        var builds = List.of(new Tree("original", original.toRealPath(), workDir.resolve("records-original"),
                        workDir.resolve("build-original.log")),
                new Tree("patched", patched.toRealPath(), workDir.resolve("records-patched"),
                        workDir.resolve("build-patched.log")));
        stages.begin("building both trees (" + request.make() + (request.serial() ? ", one after the other)"
                : ", side by side)"));
        runBuilds(request, source, wrapper, builds, workDir, reproduce);
        stages.begin("reading what each build compiled and linked");
        Duration buildTime = Duration.ofNanos(System.nanoTime() - start);

        BuildRecord originalRecord = BuildRecord.read(builds.get(0).records(), builds.get(0).root());
        BuildRecord patchedRecord = BuildRecord.read(builds.get(1).records(), builds.get(1).root());
        var targets = new ArrayList<TargetObjects>();
        for (Target target : targetsAfterBuild.targets(originalRecord, builds.get(0).root())) {
            targets.add(targetObjects(target, builds.get(0), originalRecord, builds.get(1), patchedRecord));
        }
        return new Prepared(workDir, List.copyOf(targets), List.copyOf(warnings), copyTime, buildTime);
    }

    /** One scratch tree: its name in messages, its root, and where the wrapper records its build. */
    private record Tree(String name, Path root, Path records, Path log) {}

    private static void validate(Request request, Path workDir) throws IOException {
        Path src = request.sourceDir();
        if (!Files.isDirectory(src)) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--src " + src + " is not a directory");
        }
        if (workDir.toRealPath().startsWith(src.toRealPath())) {
            throw new SourceBuildException(Kind.BAD_INPUT, "the scratch directory " + workDir
                    + " is inside --src " + src + "; the copies would copy themselves");
        }
        if (request.diffs().isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "no --diff given: nothing to build a patch from");
        }
        for (Path diff : request.diffs()) {
            if (!Files.isRegularFile(diff) || !Files.isReadable(diff)) {
                throw new SourceBuildException(Kind.BAD_INPUT, "--diff " + diff + " is not a readable file");
            }
        }
        if (request.strip() < 0) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--strip must be 0 or more, not " + request.strip());
        }
        if (request.make() == null || request.make().isBlank()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--make is empty: give the command that builds the tree");
        }
        if (request.targets().isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "no --target given: name the outputs to patch");
        }
        for (Target t : request.targets()) {
            Path p = Path.of(t.path()).normalize();
            if (p.isAbsolute() || p.startsWith("..")) {
                throw new SourceBuildException(Kind.BAD_INPUT, "--target " + t.path()
                        + " must be a path relative to --src (an output of the build), e.g. src/prog");
            }
            if (t.deployed() != null && !Files.isRegularFile(t.deployed())) {
                throw new SourceBuildException(Kind.BAD_INPUT, "--target " + t + ": the deployed binary "
                        + t.deployed() + " does not exist");
            }
        }
    }

    /** {@code cp -a}: keeps timestamps (so make and autotools see the tree as it is), links and modes. */
    private static void copyTree(Path source, Path dest, Path workDir, Duration timeout) {
        var outcome = ExternalCommand.run(List.of("cp", "-a", "--", source.toString(), dest.toString()), workDir, null,
                workDir.resolve("copy.log"), timeout);
        if (!outcome.ok()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "copying " + source + " to the scratch directory failed:\n"
                    + outcome.tail(LOG_TAIL));
        }
    }

    /** Applies one diff to the patched copy; returns warnings (fuzz, offsets), throws when it does not apply. */
    private static List<String> applyDiff(Path diff, int strip, Path source, Path patched, Path workDir,
                                          Duration timeout) {
        Path log = workDir.resolve("patch.log");
        List<String> command = List.of("patch", "-p" + strip, "--batch", "--forward", "--no-backup-if-mismatch",
                "-d", patched.toString(), "-i", diff.toAbsolutePath().toString());
        var outcome = ExternalCommand.run(command, workDir, null, log, timeout);
        String said = outcome.tail(LOG_TAIL);
        if (!outcome.ok()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "the diff " + diff + " does not apply to " + source
                    + " (patch -p" + strip + " --forward" + (outcome.timedOut() ? ", timed out" : "") + "):\n"
                    + said.replace(patched.toString(), source.toString())
                    + "\nCheck --strip (now " + strip + ") and that the diff was made against this source tree.");
        }
        return said.lines().filter(l -> l.contains("with fuzz") || l.contains("offset"))
                .map(l -> diff.getFileName() + ": " + l.trim()).toList();
    }

    /**
     * Whether a deployed target will take its symbols from the rebuild: then the build must link exactly what the
     * package's own build links (no section flags in the linked objects), so that the rebuild can reproduce it.
     */
    static boolean needsReproduction(List<Target> targets) {
        for (Target t : targets) {
            if (t.deployed() != null && needsRebuildSymbols(t.deployed())) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether the deployed file has no symbols of its own and no debug file. Checked before the builds, which
     * also refuses early what no symbols can help: a file that is no x86-64 ELF or has no build-id to bind to.
     */
    static boolean needsRebuildSymbols(Path deployed) {
        try (ElfFile elf = ElfFile.open(deployed)) {
            int type = elf.header().e_type();
            if ((type != ET_EXEC && type != ET_DYN) || elf.header().e_machine() != EM_X86_64) {
                throw new SourceBuildException(Kind.BAD_INPUT, deployed + " is not an x86-64 executable or shared"
                        + " library");
            }
            if (elf.buildId().isEmpty()) {
                throw new SourceBuildException(Kind.BAD_INPUT, deployed + " has no GNU build-id note; a patch is"
                        + " bound to a build-id, so it cannot be patched");
            }
            return elf.symbols().isEmpty() && DebugFiles.find(elf, deployed).isEmpty();
        }
    }

    private static void runBuilds(Request request, Path source, CompilerWrapper wrapper, List<Tree> trees,
                                  Path workDir, boolean reproduce) throws IOException {
        for (Tree t : trees) {
            Files.createDirectories(t.records());
        }
        var outcomes = new LinkedHashMap<Tree, ExternalCommand.Outcome>();
        if (request.serial()) {
            for (Tree t : trees) {
                outcomes.put(t, build(request, source, wrapper, t, workDir, reproduce));
            }
        } else {
            // The two trees are separate copies, so their builds do not touch each other.
            try (var executor = Executors.newVirtualThreadPerTaskExecutor()) {
                var futures = new LinkedHashMap<Tree, Future<ExternalCommand.Outcome>>();
                for (Tree t : trees) {
                    futures.put(t, executor.submit(() -> build(request, source, wrapper, t, workDir, reproduce)));
                }
                for (var e : futures.entrySet()) {
                    outcomes.put(e.getKey(), await(e.getValue()));
                }
            }
        }
        for (var e : outcomes.entrySet()) {
            ExternalCommand.Outcome o = e.getValue();
            if (!o.ok()) {
                String why = o.timedOut() ? "did not finish within " + request.timeout().toMillis() / 1000.0 + " s"
                        : "failed (exit " + o.exitCode() + ")";
                String hint = e.getKey().name().equals("patched") && outcomes.values().iterator().next().ok()
                        ? "\nThe original tree built; the diff breaks the build." : "";
                String tail = o.tail(LOG_TAIL).replace(wrapper.bin() + "/", "")
                        .replace(e.getKey().root().toString(), source.toString());
                throw new SourceBuildException(Kind.BAD_INPUT, "the build of the " + e.getKey().name() + " tree ("
                        + request.make() + ") " + why + (tail.isBlank() ? "; it printed nothing"
                        : "; the last lines of its log:\n" + tail) + hint);
            }
        }
    }

    private static ExternalCommand.Outcome build(Request request, Path source, CompilerWrapper wrapper, Tree tree,
                                         Path workDir, boolean reproduce) {
        var env = wrapper.environment(System.getenv(), tree.root(), tree.records(), source);
        if (reproduce) {
            env.put("SUTURE_REPRODUCE", "1");
        }
        return ExternalCommand.run(List.of("/bin/sh", "-c", request.make()), tree.root(), env, tree.log(),
                request.timeout());
    }

    private static <T> T await(Future<T> future) {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SourceBuildException(Kind.INTERNAL, "interrupted while waiting for the builds", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new SourceBuildException(Kind.INTERNAL, "a build could not run: " + e.getCause(), e.getCause());
        }
    }

    private static TargetObjects targetObjects(Target target, Tree original, BuildRecord originalRecord,
                                               Tree patched, BuildRecord patchedRecord) throws IOException {
        var orig = objectsIn(target, original, originalRecord);
        var next = objectsIn(target, patched, patchedRecord);
        Map<String, BuildRecord.TargetObject> byKey = new LinkedHashMap<>();
        next.objects().forEach(o -> byKey.put(o.key(), o));
        var originals = new ArrayList<BuildRecord.TargetObject>();
        var patchedObjects = new ArrayList<BuildRecord.TargetObject>();
        var changed = new ArrayList<String>();
        for (BuildRecord.TargetObject o : orig.objects()) {
            originals.add(o);
            var counterpart = byKey.remove(o.key());
            if (counterpart == null) {
                changed.add(o.key());
            } else {
                patchedObjects.add(counterpart);
                if (!Arrays.equals(o.bytes(), counterpart.bytes())) {
                    changed.add(o.key());
                }
            }
        }
        byKey.forEach((key, o) -> {
            patchedObjects.add(o);
            changed.add(key);
        });
        return new TargetObjects(target, orig.output(), next.output(), List.copyOf(originals),
                List.copyOf(patchedObjects), List.copyOf(changed));
    }

    private record Resolved(Path output, List<BuildRecord.TargetObject> objects) {}

    private static Resolved objectsIn(Target target, Tree tree, BuildRecord record) throws IOException {
        Path output = tree.root().resolve(target.path()).normalize();
        if (!Files.exists(output)) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--target " + target.path() + ": the build of the "
                    + tree.name() + " tree did not produce it; it linked " + describe(record.linkedOutputs()));
        }
        var link = record.linkOf(output).or(() -> sameContent(output, record));
        Path libtool = output.resolveSibling(".libs").resolve(output.getFileName());
        if (link.isEmpty() && record.linkOf(libtool).isPresent()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--target " + target.path() + " is libtool's wrapper"
                    + " script; the program it runs is " + tree.root().relativize(libtool) + ": name that instead");
        }
        if (link.isEmpty()) {
            String command = linkCommand(tree.log(), output.getFileName().toString())
                    .map(c -> " The build linked it with:\n  " + c + "\nwhich called no compiler the wrapper stands"
                            + " in for (an absolute path, or a linker run directly?).")
                    .orElse(" If the output was already built in --src, clean the tree (make clean) so both copies"
                            + " build from scratch.");
            throw new SourceBuildException(Kind.BAD_INPUT, "--target " + target.path() + " exists in the "
                    + tree.name() + " tree but was not linked through the compiler wrapper during the build; the"
                    + " wrapper saw it link " + describe(record.linkedOutputs()) + "." + command);
        }
        var objects = record.objectsOf(link.get());
        if (objects.isEmpty()) {
            throw new SourceBuildException(Kind.BAD_INPUT, "--target " + target.path() + ": its link in the "
                    + tree.name() + " tree used no object of the tree");
        }
        return new Resolved(output.toRealPath(), objects);
    }

    /**
     * The last command line of a build log that writes {@code fileName} with {@code -o} (how a build that bypassed
     * the wrapper linked it), if the build printed its commands.
     */
    static Optional<String> linkCommand(Path log, String fileName) {
        try (Stream<String> lines = Files.lines(log, StandardCharsets.ISO_8859_1)) {
            var pattern = Pattern.compile("(^|\\s)-o\\s*(\\S*/)?" + Pattern.quote(fileName) + "(\\s|$)");
            return lines.filter(l -> pattern.matcher(l).find()).reduce((a, b) -> b)
                    .map(l -> l.length() > 400 ? l.substring(0, 400) + " ..." : l);
        } catch (IOException | UncheckedIOException e) {
            return Optional.empty();
        }
    }

    /** A target copied from a link output (by install or cp) is matched by its bytes. */
    private static Optional<BuildRecord.Link> sameContent(Path output, BuildRecord record) {
        return record.links().reversed().stream()
                .filter(l -> Files.isRegularFile(l.output()) && sameBytesUnchecked(l.output(), output))
                .findFirst();
    }

    private static String describe(List<String> outputs) {
        if (outputs.isEmpty()) {
            return "nothing";
        }
        return String.join(", ", outputs.size() > 20 ? outputs.subList(0, 20) : outputs)
                + (outputs.size() > 20 ? " and " + (outputs.size() - 20) + " more" : "");
    }

    private static boolean sameBytes(Path a, Path b) throws IOException {
        return Files.size(a) == Files.size(b) && Arrays.equals(Files.readAllBytes(a), Files.readAllBytes(b));
    }

    private static boolean sameBytesUnchecked(Path a, Path b) {
        try {
            return sameBytes(a, b);
        } catch (IOException e) {
            return false;
        }
    }

    /** Removes a scratch directory (read-only files of the copied trees included). */
    static void delete(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        var outcome = ExternalCommand.run(List.of("rm", "-rf", "--", dir.toString()), dir.getParent(), null,
                Path.of("/dev/null"), Duration.ofMinutes(5));
        if (!outcome.ok()) {
            throw new UncheckedIOException(new IOException("could not remove " + dir));
        }
    }
}
