package dev.suture.live;

import dev.suture.elf.ElfFile;
import dev.suture.proc.Mapping;
import dev.suture.proc.Maps;
import dev.suture.proc.ProcessIds;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/** The processes of the machine, and the build-ids of the ELF files each maps (for apply --all). */
public final class Processes {
    private final Map<String, String> buildIdByFile = new HashMap<>();

    /**
     * Refuses a pid given on the command line that names no user-space process now (no such process, a kernel
     * thread: bad input), before anything is made for it; one that vanishes later is a vanished process.
     */
    public static void requireGiven(int pid) {
        dev.suture.proc.ProcessIds.requireGiven(pid);
    }

    /** Every process id in /proc except this JVM's, ascending. */
    public static List<Integer> all() {
        var out = new ArrayList<Integer>();
        int self = (int) ProcessHandle.current().pid();
        try (Stream<Path> s = Files.list(Path.of("/proc"))) {
            for (Path p : s.toList()) {
                String n = p.getFileName().toString();
                if (n.chars().allMatch(Character::isDigit)) {
                    int pid = Integer.parseInt(n);
                    if (pid != self) {
                        out.add(pid);
                    }
                }
            }
        } catch (IOException e) {
            return List.of();
        }
        out.sort(null);
        return out;
    }

    /** The build-ids of the files process {@code pid} maps (empty if it is gone or not readable). */
    public Set<String> buildIds(int pid) {
        return new LinkedHashSet<>(modules(pid).keySet());
    }

    /**
     * The files process {@code pid} runs code of (maps executable) that have a build-id, by build-id; empty if it is
     * gone or unreadable. A file only mapped as data (a suture reading an ELF file) is not one of them.
     */
    public Map<String, String> modules(int pid) {
        var out = new java.util.LinkedHashMap<String, String>();
        List<Mapping> maps;
        try {
            maps = Maps.read(pid);
        } catch (RuntimeException e) {
            return out;
        }
        for (var m : maps) {
            // a module runs code: a process that only maps a file to read it (a suture reading a binary or a
            // patch, a backup tool) is not running it
            if (!m.path().startsWith("/") || !m.executable()) {
                continue;
            }
            // a deleted (replaced) file is only known through this process's map_files
            String key = m.path().endsWith(" (deleted)") ? pid + ":" + m.path() : m.path();
            String id = buildIdByFile.computeIfAbsent(key, k -> read(pid, m));
            if (!id.isEmpty()) {
                out.putIfAbsent(id, m.path().replace(" (deleted)", ""));
            }
        }
        return out;
    }

    private static String read(int pid, Mapping m) {
        Path file = Path.of(m.path().replace(" (deleted)", ""));
        if (m.path().endsWith(" (deleted)") || !Files.isReadable(file)) {
            file = Path.of("/proc/" + pid + "/map_files/" + Long.toHexString(m.start()) + "-"
                    + Long.toHexString(m.end()));
        }
        if (!ElfFile.hasElfMagic(file)) {
            return "";
        }
        try (var elf = ElfFile.open(file)) {
            return elf.buildId().orElse("");
        } catch (RuntimeException e) {
            return "";
        }
    }

    /**
     * When process {@code pid} started (field 22 of /proc/PID/stat, in clock ticks since boot): with the pid, it
     * names one process, not whichever reuses the pid later; 0 when it is gone.
     */
    public static long startTime(int pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            return Long.parseLong(ProcessIds.statFields(stat)[19]);
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** Whether the process {@code pid} that started at {@code startTime} still exists. */
    public static boolean exists(int pid, long startTime) {
        return startTime != 0 && startTime(pid) == startTime;
    }

    /** The command name of a process (from /proc/PID/comm), or "?" */
    public static String name(int pid) {
        try {
            return Files.readString(Path.of("/proc/" + pid + "/comm")).trim();
        } catch (IOException e) {
            return "?";
        }
    }
}
