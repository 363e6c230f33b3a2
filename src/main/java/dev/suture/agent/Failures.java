package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.Processes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The processes the agent could not patch, and why: kept in memory, and in {@code agent.failures} in the run
 * directory for {@code suture status}. A process is named by its pid and start time, so a reused pid is not blamed.
 */
public final class Failures {
    static final String FILE = "agent.failures";

    /** One process the agent could not bring to the store's state. */
    public record Failure(int pid, long startTime, String patch, SutureException.Kind kind, String reason,
                          long atMillis) {
        String line() {
            return pid + "\t" + startTime + "\t" + patch + "\t" + kind + "\t" + atMillis + "\t"
                    + reason.replace('\n', ' ').replace('\t', ' ');
        }

        static Failure parse(String line) {
            String[] f = line.split("\t", 6);
            if (f.length != 6) {
                return null;
            }
            try {
                return new Failure(Integer.parseInt(f[0]), Long.parseLong(f[1]), f[2],
                        SutureException.Kind.valueOf(f[3]), f[5], Long.parseLong(f[4]));
            } catch (IllegalArgumentException e) {
                return null;
            }
        }
    }

    private final Map<String, Failure> byKey = new ConcurrentHashMap<>();

    private static String key(int pid, long start, String patch) {
        return pid + "/" + start + "/" + patch;
    }

    /** The failure recorded for this process and patch, if any. */
    Failure of(int pid, long start, String patch) {
        return byKey.get(key(pid, start, patch));
    }

    synchronized void record(Failure f) {
        byKey.put(key(f.pid(), f.startTime(), f.patch()), f);
        save();
    }

    synchronized void clear(int pid, long start, String patch) {
        if (byKey.remove(key(pid, start, patch)) != null) {
            save();
        }
    }

    int count() {
        return byKey.size();
    }

    /** Forgets failures of processes that are gone, and (after a change of the store) all of them. */
    synchronized void prune(boolean all) {
        boolean changed = byKey.values().removeIf(f -> all || !Processes.exists(f.pid(), f.startTime()));
        if (changed) {
            save();
        }
    }

    private void save() {
        AgentFiles.write(FILE, byKey.values().stream().map(Failure::line).sorted().toList());
    }

    /** The failures the running (or last) agent recorded; empty when there is none or no run directory. */
    public static List<Failure> recorded() {
        var out = new ArrayList<Failure>();
        for (String line : AgentFiles.read(FILE)) {
            var f = Failure.parse(line);
            if (f != null) {
                out.add(f);
            }
        }
        return out;
    }
}
