package dev.suture.elf;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.zip.CRC32;

/**
 * Finds the separate debug file of a stripped binary the way gdb does: by build-id under the debug root
 * ({@code .build-id/xx/rest.debug}), else by {@code .gnu_debuglink} next to the binary, in its {@code .debug/}
 * subdirectory, or under the debug root followed by the binary's directory. A candidate is accepted only if its
 * build-id (or debuglink CRC) matches, so a stale debug file is never used.
 */
public final class DebugFiles {
    /** Where distributions install debug files. */
    public static final Path DEFAULT_ROOT = Path.of("/usr/lib/debug");

    private DebugFiles() {}

    /** The debug file of {@code binary} (read from {@code binaryPath}) under the default debug root. */
    public static Optional<Path> find(ElfFile binary, Path binaryPath) {
        return find(binary, binaryPath, DEFAULT_ROOT);
    }

    /** The debug file of {@code binary} with {@code debugRoot} in place of /usr/lib/debug. */
    public static Optional<Path> find(ElfFile binary, Path binaryPath, Path debugRoot) {
        for (Path candidate : candidates(binary, binaryPath, debugRoot)) {
            if (matches(binary, binaryPath, candidate)) {
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }

    /** Every place looked at, in order (for messages that say where a debug file was expected). */
    public static List<Path> candidates(ElfFile binary, Path binaryPath, Path debugRoot) {
        var out = new ArrayList<Path>();
        var id = binary.buildId();
        if (id.isPresent() && id.get().length() > 2) {
            String hex = id.get();
            out.add(debugRoot.resolve(".build-id").resolve(hex.substring(0, 2)).resolve(hex.substring(2) + ".debug"));
        }
        var link = binary.debugLink();
        if (link.isPresent() && !link.get().file().isEmpty() && !link.get().file().contains("/")) {
            Path dir = binaryPath.toAbsolutePath().getParent();
            if (dir != null) {
                String name = link.get().file();
                out.add(dir.resolve(name));
                out.add(dir.resolve(".debug").resolve(name));
                out.add(debugRoot.resolve(dir.getRoot().relativize(dir)).resolve(name));
            }
        }
        return out;
    }

    private static boolean matches(ElfFile binary, Path binaryPath, Path candidate) {
        if (!Files.isRegularFile(candidate)) {
            return false;
        }
        try {
            if (Files.isSameFile(candidate, binaryPath)) {
                return false;
            }
        } catch (IOException e) {
            return false;
        }
        var id = binary.buildId();
        if (id.isPresent()) {
            try (var debug = ElfFile.open(candidate)) {
                return debug.buildId().equals(id);
            } catch (ElfFormatException e) {
                return false;
            }
        }
        var link = binary.debugLink();
        return link.isPresent() && crc32(candidate) == Integer.toUnsignedLong(link.get().crc());
    }

    /** The CRC-32 that .gnu_debuglink records (the IEEE polynomial, as zlib computes it). */
    static long crc32(Path file) {
        var crc = new CRC32();
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                crc.update(buf, 0, n);
            }
        } catch (IOException e) {
            return -1;
        }
        return crc.getValue();
    }
}
