package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/** What /proc says about a test's target: thread states, tracers. For assertions, not for the code under test. */
public final class Procs {
    private Procs() {}

    /** tid -> state letter of every thread in /proc/PID/task (empty when the process is gone). */
    public static TreeMap<Integer, Character> threadStates(long pid) {
        var states = new TreeMap<Integer, Character>();
        for (int tid : tids(pid)) {
            try {
                String stat = Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/stat"));
                states.put(tid, stat.charAt(stat.lastIndexOf(')') + 2));
            } catch (IOException e) {
                // ended meanwhile
            }
        }
        return states;
    }

    public static List<Integer> tids(long pid) {
        try (Stream<Path> s = Files.list(Path.of("/proc/" + pid + "/task"))) {
            return s.map(p -> Integer.parseInt(p.getFileName().toString())).sorted().toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    /** TracerPid of a thread, 0 when untraced or gone. */
    public static int tracerOf(long pid, int tid) {
        try {
            return Files.readAllLines(Path.of("/proc/" + pid + "/task/" + tid + "/status")).stream()
                    .filter(l -> l.startsWith("TracerPid:")).map(l -> Integer.parseInt(l.substring(10).strip()))
                    .findFirst().orElse(0);
        } catch (IOException e) {
            return 0;
        }
    }

    /** "pid/tid" of every thread on the machine traced by a thread of this JVM. */
    public static List<String> tracedByThisJvm() {
        Set<Integer> ours = Set.copyOf(tids(ProcessHandle.current().pid()));
        var traced = new ArrayList<String>();
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                long pid = Long.parseLong(p.getFileName().toString());
                for (int tid : tids(pid)) {
                    int tracer = tracerOf(pid, tid);
                    if (tracer != 0 && ours.contains(tracer)) {
                        traced.add(pid + "/" + tid);
                    }
                }
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return traced;
    }

    /** The threads of {@code pid} that are not in state {@code want}, as "tid:state", for assertion messages. */
    public static String notInState(long pid, char want) {
        return threadStates(pid).entrySet().stream().filter(e -> e.getValue() != want)
                .map(e -> e.getKey() + ":" + e.getValue()).collect(Collectors.joining(" "));
    }
}
