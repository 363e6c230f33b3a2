package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The directory of journals and locks (docs/journal.md). What is in it steers a root suture's writes into other
 * processes, so it is a trust boundary (principle 9): it is used only when {@link TrustedFiles} finds it in the
 * hands of the user suture runs as, whichever of the places below it is, and every file in it is checked too.
 */
final class RunDirectory {
    static final String ADVICE = "use a directory that only this user (or root) owns and can write, with no"
            + " writable-by-others directory above it: remove it and let suture create it, or point SUTURE_RUN_DIR"
            + " at such a directory";
    /** For a file of the run directory that fails its check: suture made none like it. */
    static final String FILE_ADVICE = "suture makes its files there owned by its user with mode 0600, so someone else"
            + " made or changed this one: find out who, then remove it";
    private static final String ROLE = "suture's run directory";

    private RunDirectory() {}

    /**
     * Where it is: {@code SUTURE_RUN_DIR} from the environment, else the system property {@code suture.runDir},
     * else {@code /run/suture} when this user may write there (root), else {@code $XDG_RUNTIME_DIR/suture}, else
     * {@code /tmp/suture-USER}. The same user always gets the same one. Not checked: see {@link #ensure}.
     */
    static Path path() {
        String env = System.getenv("SUTURE_RUN_DIR");
        if (env != null && !env.isBlank()) {
            return Path.of(env).toAbsolutePath().normalize();
        }
        String property = System.getProperty("suture.runDir");
        if (property != null && !property.isBlank()) {
            return Path.of(property).toAbsolutePath().normalize();
        }
        Path system = Path.of("/run/suture");
        if (Files.isDirectory(system, LinkOption.NOFOLLOW_LINKS) ? Files.isWritable(system)
                : Files.isWritable(system.getParent())) {
            return system;
        }
        String runtime = System.getenv("XDG_RUNTIME_DIR");
        if (runtime != null && !runtime.isBlank() && Files.isDirectory(Path.of(runtime))) {
            return Path.of(runtime, "suture");
        }
        return Path.of(System.getProperty("java.io.tmpdir"), "suture-" + System.getProperty("user.name"));
    }

    /** The directory, created (mode 0700) if missing, and refused (exit 5) unless it is in trusted hands. */
    static Path ensure() {
        return TrustedFiles.ensurePrivateDirectory(path(), ROLE, ADVICE);
    }

    /** The directory if it exists and is in trusted hands; empty if it does not exist (nothing was ever left). */
    static Optional<Path> existing() {
        Path dir = path();
        if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            return Optional.empty();
        }
        TrustedFiles.requireDirectory(dir, ROLE, ADVICE);
        return Optional.of(dir);
    }

    /** The pids named by files {@code <pid><suffix>} in the run directory (journals, locks), ascending. */
    static List<Integer> pidsWith(String suffix) {
        var pids = new ArrayList<Integer>();
        for (String name : names()) {
            long pid = name.endsWith(suffix) ? pidIn(name.substring(0, name.length() - suffix.length())) : 0;
            if (pid > 0) {
                pids.add((int) pid);
            }
        }
        pids.sort(null);
        return pids;
    }

    /** The pid that {@code digits} (part of a file name) spell, or 0 when they spell none. */
    private static long pidIn(String digits) {
        if (digits.isEmpty() || digits.length() > 10 || !digits.chars().allMatch(Character::isDigit)) {
            return 0;
        }
        long pid = Long.parseLong(digits);
        return pid <= Integer.MAX_VALUE ? pid : 0;
    }

    /**
     * Removes what sutures that are gone left in the run directory ({@code recover --all}): the locks of processes
     * that no longer exist, and the rehearsal journals and half-started journals of sutures that no longer run.
     * Journals of transactions are never removed here: recovery decides about those.
     */
    static void removeLitter() {
        try {
            var dir = existing();
            if (dir.isEmpty()) {
                return;
            }
            for (String name : names()) {
                long owner = ownerOf(name);
                if (owner > 0 && !Files.exists(Path.of("/proc/" + owner))) {
                    Files.deleteIfExists(dir.get().resolve(name));
                }
            }
        } catch (SutureException | IOException ignored) {
            // a leftover file costs nothing; recover says what it could not do elsewhere
        }
    }

    /**
     * The process whose end makes file {@code name} litter: the target of {@code <pid>.lock}, the suture of
     * {@code rehearsal-<pid>.journal} and {@code <pid>.journal.<suture pid>.new}; 0 for anything else.
     */
    private static long ownerOf(String name) {
        String digits = null;
        if (name.endsWith(".lock")) {
            digits = name.substring(0, name.length() - 5);
        } else if (name.startsWith(Journal.REHEARSAL_PREFIX) && name.endsWith(".journal")) {
            digits = name.substring(Journal.REHEARSAL_PREFIX.length(), name.length() - 8);
        } else if (name.endsWith(Journal.STAGING_SUFFIX) && name.contains(".journal.")) {
            digits = name.substring(name.indexOf(".journal.") + 9, name.length() - Journal.STAGING_SUFFIX.length());
        }
        return digits == null ? 0 : pidIn(digits);
    }

    /** The names of the files in the run directory; none when it does not exist. */
    static List<String> names() {
        var dir = existing();
        if (dir.isEmpty()) {
            return List.of();
        }
        try (var files = Files.list(dir.get())) {
            return files.map(f -> f.getFileName().toString()).sorted().toList();
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot list " + dir.get() + ": "
                    + TrustedFiles.reason(e));
        }
    }

    /** {@code <pid>.journal}. */
    static Path journal(int pid) {
        return path().resolve(pid + ".journal");
    }

    /** {@code <pid>.lock}. */
    static Path lock(int pid) {
        return path().resolve(pid + ".lock");
    }

    /** An I/O failure while writing into the run directory, in words that say what to do. */
    static SutureException cannotWrite(Path file, IOException e) {
        String why = TrustedFiles.reason(e);
        if (full(file.getParent())) {
            return new SutureException(SutureException.Kind.NOT_PERMITTED, "no space left in " + file.getParent()
                    + " (writing " + file.getFileName() + "): free some space there, or point SUTURE_RUN_DIR at a"
                    + " file system with room");
        }
        return new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot write " + file + " (" + why
                + "); run as root, or point SUTURE_RUN_DIR at a directory you own");
    }

    /** Whether the file system of {@code dir} has (almost) no room left: asked of it, not read from a message. */
    private static boolean full(Path dir) {
        try {
            return Files.getFileStore(dir).getUsableSpace() < 64 * 1024;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }
}
