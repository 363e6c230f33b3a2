package dev.suture.live;

import dev.suture.SutureException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** /proc/PID/maps, the few fields live needs (start, end, permissions, path). */
final class ProcMaps {
    record Mapping(long start, long end, String perms, String path) {}

    private ProcMaps() {}

    static List<Mapping> read(int pid) {
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/" + pid + "/maps"));
        } catch (NoSuchFileException e) {
            throw new SutureException(SutureException.Kind.VANISHED, "process " + pid + " does not exist");
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "process " + pid
                    + ": cannot read its maps: " + e.getMessage());
        }
        var out = new ArrayList<Mapping>(lines.size());
        for (String line : lines) {
            String[] f = line.trim().split("\\s+", 6);
            if (f.length < 5) {
                continue;
            }
            int dash = f[0].indexOf('-');
            out.add(new Mapping(Long.parseUnsignedLong(f[0].substring(0, dash), 16),
                    Long.parseUnsignedLong(f[0].substring(dash + 1), 16), f[1], f.length == 6 ? f[5] : ""));
        }
        return out;
    }

    /** {start, end} pairs of the readable mappings, sorted, for {@link StackGuard}. */
    static long[][] readable(List<Mapping> maps) {
        return maps.stream().filter(m -> m.perms().startsWith("r"))
                .map(m -> new long[] {m.start(), m.end()}).toArray(long[][]::new);
    }
}
