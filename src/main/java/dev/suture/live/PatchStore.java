package dev.suture.live;

import dev.suture.SutureException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A directory of patches by build-id (DESIGN.md): {@code <build-id>.suture}, or {@code <build-id>/<level>.suture}
 * where the highest numeric level wins (cumulative patches).
 */
public final class PatchStore {
    private static final Pattern BUILD_ID = Pattern.compile("[0-9a-f]{2,128}");
    private static final Pattern LEVEL = Pattern.compile("(\\d{1,9})\\.suture");

    private PatchStore() {}

    /** The patch file to use per build-id. */
    public static Map<String, Path> load(Path dir) {
        var out = new TreeMap<String, Path>();
        try (Stream<Path> entries = Files.list(dir)) {
            for (Path p : entries.sorted().toList()) {
                String name = p.getFileName().toString();
                if (Files.isRegularFile(p) && name.endsWith(".suture")) {
                    String id = name.substring(0, name.length() - ".suture".length());
                    if (BUILD_ID.matcher(id).matches()) {
                        out.putIfAbsent(id, p);
                    }
                } else if (Files.isDirectory(p) && BUILD_ID.matcher(name).matches()) {
                    highestLevel(p).ifPresent(best -> out.put(name, best));
                }
            }
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot read the patch store " + dir + ": "
                    + e.getMessage());
        }
        return out;
    }

    private static Optional<Path> highestLevel(Path dir) throws IOException {
        try (Stream<Path> levels = Files.list(dir)) {
            Path best = null;
            long bestLevel = -1;
            for (Path p : levels.toList()) {
                var m = LEVEL.matcher(p.getFileName().toString());
                if (m.matches() && Files.isRegularFile(p) && Long.parseLong(m.group(1)) > bestLevel) {
                    bestLevel = Long.parseLong(m.group(1));
                    best = p;
                }
            }
            return Optional.ofNullable(best);
        }
    }
}
