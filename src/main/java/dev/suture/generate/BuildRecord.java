package dev.suture.generate;

import dev.suture.SutureException.Kind;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * What the compiler wrapper recorded while one scratch tree was built: every link and every archive update. From
 * these it answers which objects a link output is made of, following static-library members back to their objects.
 */
final class BuildRecord {

    /** One link, as the wrapper saw it (paths resolved against the directory it ran in). */
    record Link(BigDecimal time, Path cwd, Path output, Path map, List<Path> inputs, List<Compiled> compiled) {}

    /** A source the wrapper compiled itself out of a compile-and-link command, and the object it kept. */
    record Compiled(Path source, Path object) {}

    /**
     * A compilation of a build made to reproduce the distribution's binary: {@code object} compiled as the build
     * asked (what the link takes), {@code diffObject} its twin with one section per function (what the diff takes).
     */
    record DiffObject(BigDecimal time, Path object, Path diffObject, String sha256) {}

    /** An {@code ar r} or {@code ar q}: members added to (or replaced in) an archive. */
    record ArchiveUpdate(BigDecimal time, Path archive, List<Path> members) {}

    /**
     * An object of a target. {@code key} names it the same way in both trees (path in the tree, or the source it
     * was compiled from), so the original and patched lists can be paired. {@code image} holds the bytes of a
     * member of an archive whose object file is gone or was rebuilt ({@code path} then names it as
     * {@code archive(member)}); null for an object file.
     */
    public record TargetObject(String key, Path path, byte[] image) {
        TargetObject(String key, Path path) {
            this(key, path, null);
        }

        /** The object's bytes: its image, or its file's. */
        byte[] bytes() throws IOException {
            return image != null ? image : Files.readAllBytes(path);
        }
    }

    private static final int ET_REL = 1;

    private final Path tree;
    private final List<Link> links;
    private final List<ArchiveUpdate> archiveUpdates;
    /** The diff twins of each object (by real path), in the order they were compiled. */
    private final Map<Path, List<DiffObject>> diffObjects = new HashMap<>();
    /** The same twins by the SHA-256 of the object as compiled, for objects the build moved or copied. */
    private final Map<String, List<DiffObject>> diffObjectsByHash = new HashMap<>();
    private final Map<Path, ArArchive> archives = new HashMap<>();

    private BuildRecord(Path tree, List<Link> links, List<ArchiveUpdate> archiveUpdates,
                        List<DiffObject> diffObjects) {
        this.tree = tree;
        this.links = links;
        this.archiveUpdates = archiveUpdates;
        for (DiffObject d : diffObjects) {
            Path real = realOrNull(d.object());
            if (real != null) {
                this.diffObjects.computeIfAbsent(real, _ -> new ArrayList<>()).add(d);
            }
            if (!d.sha256().isEmpty()) {
                diffObjectsByHash.computeIfAbsent(d.sha256(), _ -> new ArrayList<>()).add(d);
            }
        }
    }

    /** Reads the records the wrapper left in {@code recordDir} while building {@code tree}. */
    static BuildRecord read(Path recordDir, Path tree) throws IOException {
        var links = new ArrayList<Link>();
        var updates = new ArrayList<ArchiveUpdate>();
        var diffObjects = new ArrayList<DiffObject>();
        try (Stream<Path> files = Files.list(recordDir)) {
            for (Path file : files.filter(f -> f.getFileName().toString().endsWith(".rec")).toList()) {
                parse(file, links, updates, diffObjects);
            }
        }
        links.sort(Comparator.comparing(Link::time));
        updates.sort(Comparator.comparing(ArchiveUpdate::time));
        diffObjects.sort(Comparator.comparing(DiffObject::time));
        return new BuildRecord(tree.toRealPath(), List.copyOf(links), List.copyOf(updates), List.copyOf(diffObjects));
    }

    private static void parse(Path file, List<Link> links, List<ArchiveUpdate> updates,
                              List<DiffObject> diffObjects) throws IOException {
        String kind = null;
        BigDecimal time = BigDecimal.ZERO;
        Path cwd = Path.of("/");
        String output = null, map = null, archive = null;
        var inputs = new ArrayList<String>();
        var compiled = new ArrayList<String[]>();
        var twins = new ArrayList<String[]>();
        for (String line : Files.readAllLines(file)) {
            String[] f = line.split("\t", -1);
            if (f.length < 2) {
                continue;
            }
            switch (f[0]) {
                case "kind" -> kind = f[1];
                case "time" -> time = parseTime(f[1]);
                case "cwd" -> cwd = Path.of(f[1]);
                case "output" -> output = f[1];
                case "map" -> map = f[1];
                case "archive" -> archive = f[1];
                case "object", "member" -> inputs.add(f[1]);
                case "source" -> {
                    if (f.length >= 3) {
                        compiled.add(new String[] {f[1], f[2]});
                    }
                }
                case "diffobject" -> {
                    if (f.length >= 4) {
                        twins.add(new String[] {f[1], f[2], f[3]});
                    }
                }
                default -> { }
            }
        }
        Path dir = cwd;
        if ("link".equals(kind) && output != null && map != null) {
            links.add(new Link(time, cwd, resolve(dir, output), Path.of(map),
                    inputs.stream().map(i -> resolve(dir, i)).toList(),
                    compiled.stream().map(c -> new Compiled(resolve(dir, c[0]), Path.of(c[1]))).toList()));
        } else if ("ar".equals(kind) && archive != null) {
            updates.add(new ArchiveUpdate(time, resolve(dir, archive),
                    inputs.stream().map(i -> resolve(dir, i)).toList()));
        } else if ("compile".equals(kind)) {
            for (String[] t : twins) {
                diffObjects.add(new DiffObject(time, resolve(dir, t[0]), Path.of(t[1]), t[2]));
            }
        }
    }

    private static BigDecimal parseTime(String s) {
        try {
            return new BigDecimal(s.replace(',', '.'));
        } catch (NumberFormatException e) {
            return BigDecimal.ZERO;
        }
    }

    private static Path resolve(Path cwd, String given) {
        return cwd.resolve(given).normalize();
    }

    List<Link> links() {
        return links;
    }

    /** The last link that produced {@code file} (compared by real path), if the wrapper saw one. */
    Optional<Link> linkOf(Path file) {
        Path wanted = realOrNull(file);
        if (wanted == null) {
            return Optional.empty();
        }
        for (Link link : links.reversed()) {
            if (wanted.equals(realOrNull(link.output()))) {
                return Optional.of(link);
            }
        }
        return Optional.empty();
    }

    /** The outputs of every link of the build that still exist, relative to the tree where they are in it. */
    List<String> linkedOutputs() {
        return links.stream().map(Link::output).filter(Files::exists).map(this::relative).distinct().sorted().toList();
    }

    /**
     * The objects {@code link} consumed, in the order the linker loaded them (which is the order of their STT_FILE
     * blocks in the output): its object inputs (partial links expanded), the objects it compiled itself, and the
     * members it took from static libraries the build made, traced back to their objects. Objects from outside the
     * tree (the toolchain's) are not part of any patch and are left out.
     */
    List<TargetObject> objectsOf(Link link) throws IOException {
        var out = new ArrayList<Placed>();
        collect(link, List.of(), out, new HashSet<>(), new HashSet<>());
        out.sort(Comparator.comparing(Placed::position, BuildRecord::compareLexicographically));
        return out.stream().map(Placed::object).toList();
    }

    /** An object and where the link loaded it: its index among the link's inputs, then within that input. */
    private record Placed(TargetObject object, List<Integer> position) {}

    private static int compareLexicographically(List<Integer> a, List<Integer> b) {
        for (int i = 0; i < Math.min(a.size(), b.size()); i++) {
            int c = Integer.compare(a.get(i), b.get(i));
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(a.size(), b.size());
    }

    private static List<Integer> append(List<Integer> prefix, int... more) {
        var out = new ArrayList<>(prefix);
        for (int m : more) {
            out.add(m);
        }
        return out;
    }

    private void collect(Link link, List<Integer> at, List<Placed> out, Set<Path> seen, Set<Link> visiting)
            throws IOException {
        if (!visiting.add(link)) {
            return;
        }
        LinkMap map = LinkMap.read(link.map());
        var loaded = new HashMap<Path, Integer>();
        for (int i = 0; i < map.loads().size(); i++) {
            Path real = realOrNull(link.cwd().resolve(map.loads().get(i)));
            if (real != null) {
                loaded.putIfAbsent(real, i);
            }
        }
        int unknown = Integer.MAX_VALUE;
        for (Path input : link.inputs()) {
            Path real = realOrNull(input);
            if (real == null) {
                if (input.getFileName().toString().endsWith(".o")) {
                    throw new SourceBuildException(Kind.BAD_INPUT, "object " + relative(input) + " linked into "
                            + relative(link.output()) + " no longer exists after the build (did the build delete it?)");
                }
                continue;
            }
            if (!real.startsWith(tree) || !isRelocatable(real)) {
                continue;                       // toolchain objects, shared libraries, linker scripts
            }
            var position = append(at, loaded.getOrDefault(real, unknown));
            Optional<Link> partial = links.stream()
                    .filter(l -> l.time().compareTo(link.time()) < 0 && real.equals(realOrNull(l.output())))
                    .reduce((a, b) -> b);
            if (partial.isPresent()) {
                collect(partial.get(), position, out, seen, visiting);
            } else if (seen.add(real)) {
                out.add(new Placed(new TargetObject("tree:" + tree.relativize(real), forDiff(real, link.time())),
                        position));
            }
        }
        for (Compiled c : link.compiled()) {
            if (seen.add(c.object())) {
                Path real = realOrNull(c.object());
                out.add(new Placed(new TargetObject("compiled:" + relative(link.output()) + ":" + relative(c.source()),
                        c.object()), append(at, real == null ? unknown : loaded.getOrDefault(real, unknown))));
            }
        }
        for (int i = 0; i < map.thinMembers().size(); i++) {
            Path real = realOrNull(link.cwd().resolve(map.thinMembers().get(i)));
            if (real != null && real.startsWith(tree) && isRelocatable(real) && seen.add(real)) {
                out.add(new Placed(new TargetObject("tree:" + tree.relativize(real), forDiff(real, link.time())),
                        append(at, loaded.getOrDefault(real, unknown), i)));
            }
        }
        for (int i = 0; i < map.archiveMembers().size(); i++) {
            LinkMap.ArchiveMember am = map.archiveMembers().get(i);
            Path archive = realOrNull(link.cwd().resolve(am.archive()));
            if (archive == null || !archive.startsWith(tree) || !Files.isRegularFile(archive)) {
                continue;
            }
            TargetObject member = memberObject(archive, am.member());
            if (member != null && seen.add(member.path())) {
                // The archive's members went in at its place, in the order the map first names them.
                out.add(new Placed(member.image() != null ? member
                        : new TargetObject(member.key(), forDiff(member.path(), link.time())),
                        append(at, loaded.getOrDefault(archive, unknown), i)));
            }
        }
    }

    /**
     * The object the diff takes for {@code object} (a real path) as it was when a link at {@code before} used it:
     * the diff twin of its last compilation before then, when the build was made to reproduce a distribution's
     * binary; else the object itself.
     */
    private Path forDiff(Path object, BigDecimal before) throws IOException {
        if (diffObjects.isEmpty() && diffObjectsByHash.isEmpty()) {
            return object;
        }
        for (DiffObject d : diffObjects.getOrDefault(object, List.of()).reversed()) {
            if (d.time().compareTo(before) < 0 && sha256(object).equals(d.sha256())) {
                return d.diffObject();
            }
        }
        for (DiffObject d : diffObjectsByHash.getOrDefault(sha256(object), List.of()).reversed()) {
            if (d.time().compareTo(before) < 0) {
                return d.diffObject();
            }
        }
        return object;
    }

    private static String sha256(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every JDK", e);
        }
    }

    /**
     * The object a member of {@code archive} came from: the last object added under that name whose bytes are
     * still the member's. When the object is gone or was rebuilt since, the member itself, held in memory.
     */
    private TargetObject memberObject(Path archive, String memberName) throws IOException {
        ArArchive ar = archives.get(archive);
        if (ar == null) {
            ar = ArArchive.read(archive);
            archives.put(archive, ar);
        }
        Optional<ArArchive.Member> member = ar.member(memberName);
        if (member.isEmpty()) {
            return null;
        }
        if (ar.thin()) {
            Path object = archive.resolveSibling(memberName).normalize();
            return Files.exists(object) ? new TargetObject("tree:" + relative(object), object.toRealPath()) : null;
        }
        byte[] bytes = member.get().bytes();
        for (ArchiveUpdate update : archiveUpdates.reversed()) {
            if (!archive.equals(realOrNull(update.archive()))) {
                continue;
            }
            for (Path object : update.members().reversed()) {
                if (object.getFileName().toString().equals(memberName)) {
                    Path real = realOrNull(object);
                    if (real != null && real.startsWith(tree) && sameBytes(real, bytes)) {
                        return new TargetObject("tree:" + tree.relativize(real), real);
                    }
                }
            }
        }
        String archiveKey = relative(archive);
        return new TargetObject("member:" + archiveKey + "(" + memberName + ")",
                archive.resolveSibling(archive.getFileName() + "(" + memberName + ")"), bytes);
    }

    private static boolean sameBytes(Path file, byte[] bytes) throws IOException {
        return Files.size(file) == bytes.length && Arrays.equals(Files.readAllBytes(file), bytes);
    }

    private static boolean isRelocatable(Path file) throws IOException {
        byte[] header = new byte[18];
        try (InputStream in = Files.newInputStream(file)) {
            if (in.readNBytes(header, 0, header.length) < header.length) {
                return false;
            }
        }
        boolean elf = header[0] == 0x7f && header[1] == 'E' && header[2] == 'L' && header[3] == 'F';
        int type = (header[16] & 0xff) | (header[17] & 0xff) << 8;     // e_type, little-endian
        return elf && type == ET_REL;
    }

    /** {@code path} relative to the tree when it is inside, else as it is. */
    String relative(Path path) {
        Path real = realOrNull(path);
        Path p = real != null ? real : path;
        return p.startsWith(tree) ? tree.relativize(p).toString() : p.toString();
    }

    private static Path realOrNull(Path p) {
        try {
            return p.toRealPath();
        } catch (IOException e) {
            return null;
        }
    }
}
