package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.Patcher;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The agent's files in the run directory (checked like every file there, principle 9): small text files, each
 * replaced whole (written to a new file, synced, renamed over the old) so a reader never sees half of one.
 */
final class AgentFiles {
    static final String ADVICE = "the agent writes its files in the run directory owned by its user with mode 0600,"
            + " so someone else made or changed this one: find out who, then remove it";
    private static final int LIMIT = 4 * 1024 * 1024;

    private AgentFiles() {}

    static Path dir() {
        return Patcher.checkedRunDirectory();
    }

    /** The lines of {@code name} in the run directory; empty when there is no such file. */
    static List<String> read(String name) {
        try {
            Optional<byte[]> bytes = TrustedFiles.readBounded(dir().resolve(name), "the agent's file", ADVICE, LIMIT);
            if (bytes.isEmpty()) {
                return List.of();
            }
            String text = new String(bytes.get(), StandardCharsets.UTF_8);
            return text.isEmpty() ? List.of() : Arrays.asList(text.split("\n"));
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot read " + dir().resolve(name) + ": "
                    + TrustedFiles.reason(e));
        }
    }

    /** Replaces {@code name} with {@code lines} (synced before the rename). */
    static void write(String name, List<String> lines) {
        Path dir = dir();
        Path tmp = dir.resolve(name + "." + ProcessHandle.current().pid() + ".new");
        try {
            Files.deleteIfExists(tmp);
            try (var ch = TrustedFiles.createNew(tmp)) {
                var text = String.join("\n", lines) + (lines.isEmpty() ? "" : "\n");
                var buf = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                ch.force(true);
            }
            Files.move(tmp, dir.resolve(name), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot write " + dir.resolve(name) + ": "
                    + TrustedFiles.reason(e));
        }
    }

    static void remove(String name) {
        try {
            Files.deleteIfExists(dir().resolve(name));
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot remove " + dir().resolve(name)
                    + ": " + TrustedFiles.reason(e));
        }
    }

    /** The names in the run directory that start with {@code prefix}. */
    static List<String> named(String prefix) {
        var out = new ArrayList<String>();
        try (var files = Files.list(dir())) {
            files.map(f -> f.getFileName().toString()).filter(n -> n.startsWith(prefix) && !n.endsWith(".new"))
                    .sorted().forEach(out::add);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot list " + dir() + ": "
                    + TrustedFiles.reason(e));
        }
        return out;
    }
}
