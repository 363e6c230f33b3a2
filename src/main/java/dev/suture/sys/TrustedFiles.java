package dev.suture.sys;

import dev.suture.SutureException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Principle 9 in one place: the directories and files that steer a root suture (its run directory, journals and
 * locks, trust directories, key files) are believed only once they are shown to be in the hands of the user suture
 * runs as, the way sshd's StrictModes treats {@code authorized_keys}. A directory must be a real directory owned by
 * the effective uid (or root), writable by no one else, on a path whose every directory is likewise owned and not
 * writable by others (unless sticky, as {@code /tmp}); a file in it must be a regular file (never followed through a
 * symlink) owned by the effective uid (or root) with no permission for group or others. A file a stranger could
 * have written or swapped is refused, with the reason and what to do.
 */
public final class TrustedFiles {
    private static final int S_IFMT = 0170000;
    private static final int S_IFDIR = 0040000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFLNK = 0120000;
    private static final int S_ISVTX = 01000;
    private static final int GROUP_OR_OTHER_WRITE = 0022;
    private static final int GROUP_OR_OTHER_ANY = 0077;
    private static final int EUID = effectiveUid();

    private TrustedFiles() {}

    /** A directory or file that is not in trusted hands: what it is, and why it is refused. */
    public static final class UntrustedException extends SutureException {
        private final Path path;

        UntrustedException(Path path, String message) {
            super(Kind.NOT_PERMITTED, message);
            this.path = path;
        }

        /** The directory or file that was refused. */
        public Path path() {
            return path;
        }
    }

    /** The effective uid suture runs as (the owner every trusted file must have, besides root). */
    public static int euid() {
        return EUID;
    }

    /**
     * Creates {@code dir} with mode 0700 if it is missing (its missing parents as the umask makes them), then
     * {@link #requireDirectory checks} it. {@code role} names it for a person ("suture's run directory").
     */
    public static Path ensurePrivateDirectory(Path dir, String role, String advice) {
        Path absolute = dir.toAbsolutePath().normalize();
        if (lstat(absolute).isEmpty()) {
            try {
                Path parent = absolute.getParent();
                if (parent != null) {
                    Files.createDirectories(parent);
                }
                Files.createDirectory(absolute, PosixFilePermissions.asFileAttribute(
                        PosixFilePermissions.fromString("rwx------")));
            } catch (FileAlreadyExistsException raced) {
                // made by someone else meanwhile: the check below decides whether it is ours
            } catch (IOException e) {
                throw new UntrustedException(absolute, "cannot create " + role + " " + absolute + " ("
                        + reason(e) + "); " + advice);
            }
        }
        requireDirectory(absolute, role, advice);
        return absolute;
    }

    /**
     * Refuses {@code dir} unless it is a real directory (not a symlink) owned by the effective uid or root and not
     * writable by group or others, and every directory on its path is owned by root or the effective uid and not
     * writable by others unless it is sticky.
     */
    public static void requireDirectory(Path dir, String role, String advice) {
        Path absolute = dir.toAbsolutePath().normalize();
        var attrs = lstat(absolute).orElseThrow(() -> new UntrustedException(absolute, role + " " + absolute
                + " does not exist; " + advice));
        if (type(attrs) == S_IFLNK) {
            throw refuse(absolute, role, "it is a symbolic link (to " + target(absolute) + ")", advice);
        }
        if (type(attrs) != S_IFDIR) {
            throw refuse(absolute, role, "it is not a directory", advice);
        }
        requireOwner(absolute, role, attrs, advice);
        if ((mode(attrs) & GROUP_OR_OTHER_WRITE) != 0) {
            throw refuse(absolute, role, "group or others may write it (mode " + octal(attrs)
                    + "), so another user could plant files in it", advice + "; or chmod go-w " + absolute);
        }
        requirePath(absolute, role, advice);
    }

    /**
     * Refuses {@code file} unless it is a regular file (not a symlink) owned by the effective uid or root with no
     * permission for group or others. Returns false when it does not exist.
     */
    public static boolean requireFile(Path file, String role, String advice) {
        return requireFile(file, role, advice, GROUP_OR_OTHER_ANY);
    }

    /**
     * Like {@link #requireFile}, but only writing by group or others is refused: for files anyone may read, such
     * as public keys in a trust directory.
     */
    public static boolean requireReadableFile(Path file, String role, String advice) {
        return requireFile(file, role, advice, GROUP_OR_OTHER_WRITE);
    }

    private static boolean requireFile(Path file, String role, String advice, int forbiddenBits) {
        var attrs = lstat(file);
        if (attrs.isEmpty()) {
            return false;
        }
        requireFileAttributes(file, role, attrs.get(), forbiddenBits, advice);
        return true;
    }

    /**
     * Refuses {@code file} unless every directory above it is owned by the effective uid or root and not writable by
     * others unless sticky: for a file named on its own (a {@code --trust FILE.pub}), not found in a directory
     * {@link #requireDirectory} checked, whose directory must not let another user swap it.
     */
    public static void requireParents(Path file, String role, String advice) {
        requirePath(file.toAbsolutePath().normalize(), role, advice);
    }

    /**
     * The mode of {@code file} (as "0644") when group or others have any permission on it, else empty: for a secret
     * suture reads but does not guard (a signing key), which its owner should keep to themselves.
     */
    public static Optional<String> openToOthers(Path file) {
        try {
            var attrs = Files.readAttributes(file, "unix:mode");
            return (mode(attrs) & GROUP_OR_OTHER_ANY) != 0 ? Optional.of(octal(attrs)) : Optional.empty();
        } catch (IOException | UnsupportedOperationException e) {
            return Optional.empty(); // reading the key says what is wrong with it
        }
    }

    /**
     * Creates {@code file} (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) in a directory the caller has checked, for
     * reading and writing; fails with {@link FileAlreadyExistsException} when anything is already there.
     */
    public static FileChannel createNew(Path file) throws IOException {
        return FileChannel.open(file, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS), PosixFilePermissions.asFileAttribute(
                PosixFilePermissions.fromString("rw-------")));
    }

    /**
     * Opens an existing file of a checked directory (O_NOFOLLOW) after {@link #requireFile checking} it; empty when
     * there is no such file.
     */
    public static Optional<FileChannel> openExisting(Path file, String role, String advice, OpenOption... options)
            throws IOException {
        return openChecked(file, role, advice, GROUP_OR_OTHER_ANY, options);
    }

    private static Optional<FileChannel> openChecked(Path file, String role, String advice, int forbiddenBits,
                                                     OpenOption... options) throws IOException {
        if (!requireFile(file, role, advice, forbiddenBits)) {
            return Optional.empty();
        }
        var set = new HashSet<OpenOption>(List.of(options));
        set.add(LinkOption.NOFOLLOW_LINKS);
        try {
            return Optional.of(FileChannel.open(file, set));
        } catch (NoSuchFileException gone) {
            return Optional.empty();
        }
    }

    /**
     * Opens {@code file} for reading and writing, creating it (mode 0600, O_EXCL) when missing; an existing one
     * must pass {@link #requireFile}.
     */
    public static FileChannel openOrCreate(Path file, String role, String advice) throws IOException {
        for (int attempt = 0; ; attempt++) {
            try {
                return createNew(file);
            } catch (FileAlreadyExistsException exists) {
                var channel = openExisting(file, role, advice, StandardOpenOption.READ, StandardOpenOption.WRITE);
                if (channel.isPresent()) {
                    return channel.get();
                }
                if (attempt > 3) {
                    throw exists; // created and removed over and over by someone else
                }
            }
        }
    }

    /**
     * The whole of a checked file, refused when it is larger than {@code limit} bytes (a file that steers suture is
     * small; a huge one is damage or an attack, and must not exhaust the heap). Empty when there is no such file.
     */
    public static Optional<byte[]> readBounded(Path file, String role, String advice, int limit) throws IOException {
        return readChecked(file, role, advice, limit, GROUP_OR_OTHER_ANY);
    }

    /**
     * Like {@link #readBounded}, for a file anyone may read (a public key in a trust directory): only writing by
     * group or others is refused, as by {@link #requireReadableFile}.
     */
    public static Optional<byte[]> readBoundedReadable(Path file, String role, String advice, int limit)
            throws IOException {
        return readChecked(file, role, advice, limit, GROUP_OR_OTHER_WRITE);
    }

    private static Optional<byte[]> readChecked(Path file, String role, String advice, int limit, int forbiddenBits)
            throws IOException {
        var opened = openChecked(file, role, advice, forbiddenBits, StandardOpenOption.READ);
        if (opened.isEmpty()) {
            return Optional.empty();
        }
        try (var channel = opened.get()) {
            long size = channel.size();
            if (size > limit) {
                throw new UntrustedException(file, role + " " + file + " is " + size + " bytes, more than the "
                        + limit + " such a file can have: it is damaged or was planted; " + advice);
            }
            var buf = ByteBuffer.allocate((int) size);
            while (buf.hasRemaining() && channel.read(buf) > 0) {
                // a file that shrank meanwhile ends the loop at its end
            }
            return Optional.of(Arrays.copyOf(buf.array(), buf.position()));
        }
    }

    private static void requireFileAttributes(Path file, String role, Map<String, Object> attrs, int forbiddenBits,
                                              String advice) {
        if (type(attrs) == S_IFLNK) {
            throw refuse(file, role, "it is a symbolic link (to " + target(file) + ")", advice);
        }
        if (type(attrs) != S_IFREG) {
            throw refuse(file, role, "it is not a regular file", advice);
        }
        requireOwner(file, role, attrs, advice);
        if ((mode(attrs) & GROUP_OR_OTHER_WRITE) != 0) {
            throw refuse(file, role, "its mode is " + octal(attrs) + ": group or others may write it", advice);
        }
        if ((mode(attrs) & forbiddenBits) != 0) {
            // only readable by others: nobody else could have written it, so it is ours to close (earlier sutures
            // made their locks 0644)
            if ((Integer) attrs.get("uid") != EUID) {
                throw refuse(file, role, "its mode is " + octal(attrs) + ": group or others have access to it",
                        advice);
            }
            try {
                Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
            } catch (IOException e) {
                throw refuse(file, role, "its mode is " + octal(attrs) + " and cannot be made 0600 ("
                        + reason(e) + ")", advice);
            }
        }
    }

    private static void requireOwner(Path path, String role, Map<String, Object> attrs, String advice) {
        int uid = (Integer) attrs.get("uid");
        if (uid != EUID && uid != 0) {
            throw refuse(path, role, "it belongs to uid " + uid + ", not to uid " + EUID + " that suture runs as"
                    + (EUID == 0 ? "" : " or to root"), advice);
        }
    }

    /** Every directory above {@code path} (as named, and as resolved) must be in trusted hands. */
    private static void requirePath(Path path, String role, String advice) {
        var seen = new ArrayList<Path>();
        for (Path p = path.getParent(); p != null; p = p.getParent()) {
            seen.add(p);
        }
        try {
            Path real = path.getParent() == null ? null : path.getParent().toRealPath();
            for (Path p = real; p != null; p = p.getParent()) {
                seen.add(p);
            }
        } catch (IOException e) {
            throw refuse(path, role, "its parent cannot be resolved (" + reason(e) + ")", advice);
        }
        for (Path p : seen) {
            var attrs = lstat(p).orElseThrow(() -> refuse(path, role, p + " on its path does not exist", advice));
            int uid = (Integer) attrs.get("uid");
            if (uid != EUID && uid != 0) {
                throw refuse(path, role, p + " on its path belongs to uid " + uid + ", who could replace what is in"
                        + " it", advice);
            }
            if (type(attrs) == S_IFDIR && (mode(attrs) & GROUP_OR_OTHER_WRITE) != 0
                    && (mode(attrs) & S_ISVTX) == 0) {
                throw refuse(path, role, p + " on its path may be written by group or others (mode " + octal(attrs)
                        + ") and is not sticky, so another user could replace what is in it", advice);
            }
        }
    }

    private static UntrustedException refuse(Path path, String role, String why, String advice) {
        return new UntrustedException(path, "suture refuses " + role + " " + path + ": " + why + "; " + advice);
    }

    private static Optional<Map<String, Object>> lstat(Path path) {
        try {
            return Optional.of(Files.readAttributes(path, "unix:mode,uid", LinkOption.NOFOLLOW_LINKS));
        } catch (NoSuchFileException e) {
            return Optional.empty();
        } catch (IOException e) {
            throw new UntrustedException(path, "cannot examine " + path + ": " + reason(e));
        }
    }

    private static int mode(Map<String, Object> attrs) {
        return (Integer) attrs.get("mode");
    }

    private static int type(Map<String, Object> attrs) {
        return mode(attrs) & S_IFMT;
    }

    private static String octal(Map<String, Object> attrs) {
        return String.format("%04o", mode(attrs) & 07777);
    }

    private static String target(Path link) {
        try {
            return Files.readSymbolicLink(link).toString();
        } catch (IOException | UnsupportedOperationException e) {
            return "?";
        }
    }

    /** An I/O failure in words: the JDK puts only the path in some messages. */
    public static String reason(IOException e) {
        return switch (e) {
            case NoSuchFileException n -> "no such file or directory";
            case FileAlreadyExistsException x -> "it already exists";
            case AccessDeniedException a -> "permission denied";
            case FileSystemException f when f.getReason() != null -> f.getReason();
            default -> String.valueOf(e.getMessage());
        };
    }

    /** The effective uid, from the kernel's own account of this process. */
    private static int effectiveUid() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    return Integer.parseInt(line.substring(4).strip().split("\\s+")[1]);
                }
            }
        } catch (IOException | RuntimeException e) {
            // fall through: without /proc, trust root alone
        }
        return 0;
    }
}
