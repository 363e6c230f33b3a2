package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * This machine as a scratch root: an overlay whose lower layer is / and whose writes go to a directory of the test,
 * entered in a mount namespace of its own (unshare -m, chroot). Packages installed in it are installed "on this
 * machine" as dpkg sees it (its database, its libraries, the processes in /proc), and nothing of it outlives the
 * test: what they changed is exactly the upper directory. /run is an empty tmpfs in each {@link #run}, as after a
 * boot: the host's run directory (other sutures' locks) stays out of it.
 */
public final class ScratchRoot {
    private final Path upper;
    private final Path work;
    private final Path merged;

    public ScratchRoot(Path dir) throws IOException {
        this.upper = Files.createDirectories(dir.resolve("upper"));
        this.work = Files.createDirectories(dir.resolve("work"));
        this.merged = Files.createDirectories(dir.resolve("merged"));
    }

    /** Runs {@code script} with bash inside the scratch root, as root, bounded by {@code timeout}. */
    public Commands.Result run(Duration timeout, String script) throws IOException {
        String enter = "mount -t overlay overlay -o lowerdir=/,upperdir=" + upper + ",workdir=" + work + " " + merged
                + " && for d in proc dev sys; do mount --rbind /$d " + merged + "/$d; done"
                + " && mount -t tmpfs -o mode=755 tmpfs " + merged + "/run"
                + " && exec chroot " + merged + " /bin/bash -c \"$0\"";
        return Commands.run(upper.getParent(), timeout, "unshare", "-m", "--propagation", "private", "bash", "-c",
                enter, script);
    }

    /**
     * What the scratch root holds that this machine does not, apart from the bookkeeping of dpkg (its database and
     * log), of man-db (its index and page cache) and the JVM's perf-data directory: files, directories that / lacks,
     * and deletions of files of / (overlay whiteouts).
     */
    public List<String> leftovers() throws IOException {
        var out = new ArrayList<String>();
        try (Stream<Path> all = Files.walk(upper)) {
            for (Path p : all.toList()) {
                String rel = upper.relativize(p).toString();
                if (rel.isEmpty() || rel.startsWith("var/lib/dpkg") || rel.startsWith("var/log")
                        || rel.startsWith("var/cache/man") || rel.startsWith("tmp/hsperfdata_")
                        || rel.equals("tmp")) {
                    continue;
                }
                var attrs = Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                if (attrs.isOther()) {
                    out.add(rel + " (deleted)");
                } else if (!attrs.isDirectory() || !Files.isDirectory(Path.of("/", rel), LinkOption.NOFOLLOW_LINKS)) {
                    out.add(rel);
                }
            }
        }
        return out;
    }
}
