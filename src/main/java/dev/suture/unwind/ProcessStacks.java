package dev.suture.unwind;

import dev.suture.proc.ThreadState;
import dev.suture.proc.Tracer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Backtraces of every thread of a live process, taken in one short stop: attach, prepare, stop, copy and unwind,
 * resume, then symbolize and detach. The process runs on afterwards.
 */
public record ProcessStacks(int pid, List<ThreadBacktrace> threads, StackSampler.Snapshot timing) {

    /** How long the process was stopped. */
    public long windowNanos() {
        return timing.windowNanos();
    }

    /** One thread: id, name (/proc/PID/task/TID/comm), scheduler state before the stop, and its backtrace. */
    public record ThreadBacktrace(int tid, String name, char state, Backtrace backtrace, String error) {}

    /** With separate debug files (see {@link ProcessCode#load(int, boolean)}). */
    public static ProcessStacks take(int pid) {
        return take(pid, true);
    }

    public static ProcessStacks take(int pid, boolean debugFiles) {
        return take(pid, debugFiles, List.of());
    }

    /** {@code inMemory}: code no file backs, such as patch regions ({@link ProcessCode#load(int, boolean, List)}). */
    public static ProcessStacks take(int pid, boolean debugFiles, List<CodeMap.Range> inMemory) {
        try (Tracer tracer = Tracer.attach(pid)) {
            ProcessCode code = ProcessCode.load(pid, debugFiles, inMemory);
            var sampler = new StackSampler(tracer, code);
            Map<Integer, Character> states = new HashMap<>();
            for (int tid : tracer.threads()) {
                states.put(tid, ThreadState.of(pid, tid));
            }
            StackSampler.Snapshot snapshot = sampler.sample();
            // the target runs again: symbolizing and /proc reads cost it nothing now
            var threads = new ArrayList<ThreadBacktrace>();
            for (var t : snapshot.threads()) {
                char state = states.computeIfAbsent(t.tid(), tid -> ThreadState.of(pid, tid));
                threads.add(new ThreadBacktrace(t.tid(), name(pid, t.tid()), state,
                        Backtrace.of(t.tid(), t.frames(), code.code()), t.error()));
            }
            return new ProcessStacks(pid, List.copyOf(threads), snapshot);
        }
    }

    private static String name(int pid, int tid) {
        try {
            return Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/comm")).strip();
        } catch (IOException e) {
            return "?";
        }
    }
}
