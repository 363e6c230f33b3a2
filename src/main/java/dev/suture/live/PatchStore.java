package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A directory of patches by build-id (DESIGN.md): {@code <build-id>.suture}, or {@code <build-id>/<level>.suture}
 * where the highest numeric level wins (cumulative patches). What is in it is applied by a root suture to every
 * process that maps the module (the agent's desired state), so it is a trust boundary (principle 9): the directory
 * and each level directory must be real directories owned by root (or the user suture runs as) that no one else may
 * write, on a path no one else may change; each patch file must be a regular file (never a symlink) of that owner
 * that no one else may write. Anything else is refused (exit 5), naming what to chown or chmod.
 */
public final class PatchStore {
    /** The agent's store when none is named. */
    public static final Path DEFAULT = Path.of("/var/lib/suture/patches");
    private static final Pattern BUILD_ID = Pattern.compile("[0-9a-f]{2,128}");
    private static final Pattern LEVEL = Pattern.compile("(\\d{1,9})\\.suture");
    private static final String ROLE = "the patch store";
    static final String ADVICE = "a patch store must belong to root (or the user suture runs as) and be writable by"
            + " no one else, like each of its level directories and every directory above it: chown root and"
            + " chmod go-w it";
    private static final String FILE_ADVICE = "a patch in the store must be a regular file of root (or the user"
            + " suture runs as) that no one else may write: chown root and chmod go-w it, or remove it";

    private PatchStore() {}

    /**
     * The patch for one build-id: the file to apply ({@code level} 0 for a plain {@code <build-id>.suture}), and the
     * lower levels beside it (the files an older, cumulative patch of the same module came from).
     */
    public record Entry(String buildId, Path file, int level, List<Path> lowerLevels) {}

    /** The patch file to use per build-id, after checking the store (see the class comment). */
    public static Map<String, Path> load(Path dir) {
        var out = new TreeMap<String, Path>();
        scan(dir).forEach((id, e) -> out.put(id, e.file()));
        return out;
    }

    /** Every build-id of the store with its entry, after checking the store (see the class comment). */
    public static Map<String, Entry> scan(Path dir) {
        TrustedFiles.requireDirectory(dir, ROLE, ADVICE);
        var out = new TreeMap<String, Entry>();
        for (Path p : list(dir)) {
            String name = p.getFileName().toString();
            if (name.endsWith(".suture")) {
                String id = name.substring(0, name.length() - ".suture".length());
                if (BUILD_ID.matcher(id).matches() && requireFile(p)) {
                    out.putIfAbsent(id, new Entry(id, p, 0, List.of()));
                }
            } else if (BUILD_ID.matcher(name).matches() && Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                TrustedFiles.requireDirectory(p, "the level directory", ADVICE);
                levels(name, p).ifPresent(e -> out.put(name, e));
            } else if (BUILD_ID.matcher(name).matches() && Files.isSymbolicLink(p)) {
                TrustedFiles.requireDirectory(p, "the level directory", ADVICE); // refuses it, and says why
            }
        }
        return out;
    }

    private static java.util.Optional<Entry> levels(String id, Path dir) {
        var found = new ArrayList<Path>();
        for (Path p : list(dir)) {
            if (LEVEL.matcher(p.getFileName().toString()).matches() && requireFile(p)) {
                found.add(p);
            }
        }
        if (found.isEmpty()) {
            return java.util.Optional.empty();
        }
        found.sort(Comparator.comparingLong(PatchStore::level));
        Path best = found.removeLast();
        return java.util.Optional.of(new Entry(id, best, (int) level(best), List.copyOf(found)));
    }

    private static long level(Path p) {
        var m = LEVEL.matcher(p.getFileName().toString());
        return m.matches() ? Long.parseLong(m.group(1)) : -1;
    }

    /** A patch file of the store: refused unless in trusted hands; false when it went away meanwhile. */
    private static boolean requireFile(Path p) {
        return TrustedFiles.requireReadableFile(p, "the patch file", FILE_ADVICE);
    }

    private static List<Path> list(Path dir) {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.sorted().toList();
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot read the patch store " + dir + ": "
                    + TrustedFiles.reason(e));
        }
    }
}
