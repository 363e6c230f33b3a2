package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import java.util.ArrayList;
import java.util.List;

/**
 * Which processes run the code the store's patches fix (docs/agent.md, "suture status"): for every process, each
 * module it maps that the store has a patch for, and whether the process runs that patch, an older level of it,
 * another patch, or the unpatched code; with the agent's account of the processes it could not patch.
 */
public final class Status {
    /** What one process runs of one module the store has a patch for. */
    public enum State {
        /** The store's patch is applied. */
        PATCHED,
        /** A lower level of the store's patch is applied (cumulative patches: the newer one is not in yet). */
        OLDER_LEVEL,
        /** A patch that is not in the store is applied to the module. */
        OTHER_PATCH,
        /** No patch is applied: the process runs the code the patch fixes. */
        UNPATCHED;

        /** True when the process runs code the store's patch for the module does not cover. */
        public boolean vulnerable() {
            return this == OTHER_PATCH || this == UNPATCHED;
        }
    }

    /** One module of one process: its state, the store's patch and the patches applied to the module. */
    public record ModuleState(String module, String buildId, State state, String storePatch, int level,
                              List<String> applied) {}

    /** One process with modules the store has patches for; {@code failure}: why the agent could not patch it. */
    public record ProcessState(int pid, String process, List<ModuleState> modules, Failures.Failure failure) {}

    /** A process that could not be read (gone meanwhile, or not permitted). */
    public record Unreadable(int pid, String process, String reason) {}

    /** The whole report. */
    public record Report(DesiredState desired, List<ProcessState> processes, List<Unreadable> unreadable,
                         List<Failures.Failure> failures) {
        public long count(State s) {
            return processes.stream().flatMap(p -> p.modules().stream()).filter(m -> m.state() == s).count();
        }

        /** True when some process runs code a patch of the store fixes. */
        public boolean vulnerable() {
            return processes.stream().flatMap(p -> p.modules().stream()).anyMatch(m -> m.state().vulnerable());
        }
    }

    private Status() {}

    /**
     * Reads every process (their maps and their patch regions, stopping nothing) against {@code desired};
     * {@code failures}: the agent's record of what it could not patch (empty without an agent).
     */
    public static Report of(DesiredState desired, List<Failures.Failure> failures) {
        var processes = new Processes();
        var out = new ArrayList<ProcessState>();
        var unreadable = new ArrayList<Unreadable>();
        for (int pid : Processes.all()) {
            var mapped = processes.modules(pid);
            var relevant = desired.byBuildId().values().stream().filter(w -> mapped.containsKey(w.buildId()))
                    .toList();
            if (relevant.isEmpty()) {
                continue;
            }
            List<Patcher.AppliedPatch> applied;
            try {
                applied = Patcher.applied(pid);
            } catch (SutureException e) {
                if (e.kind() != SutureException.Kind.VANISHED) {
                    unreadable.add(new Unreadable(pid, Processes.name(pid), e.getMessage()));
                }
                continue;
            }
            var modules = new ArrayList<ModuleState>();
            for (var w : relevant) {
                var ids = applied.stream().filter(a -> a.buildId().equals(w.buildId())
                        && "applied".equals(a.state())).map(Patcher.AppliedPatch::patchId).toList();
                modules.add(new ModuleState(mapped.get(w.buildId()), w.buildId(), state(w, ids), w.patch().id(),
                        w.level(), ids));
            }
            Failures.Failure failure = failures.stream().filter(f -> f.pid() == pid).findFirst().orElse(null);
            out.add(new ProcessState(pid, Processes.name(pid), modules, failure));
        }
        var stillThere = failures.stream().filter(f -> Processes.exists(f.pid(), f.startTime())).toList();
        return new Report(desired, out, unreadable, stillThere);
    }

    static State state(DesiredState.Wanted w, List<String> applied) {
        if (applied.contains(w.patch().id())) {
            return State.PATCHED;
        }
        if (applied.isEmpty()) {
            return State.UNPATCHED;
        }
        return applied.stream().anyMatch(w.olderIds()::contains) ? State.OLDER_LEVEL : State.OTHER_PATCH;
    }

    /** The names of the states in --json: lower case with a dash. */
    public static String name(State s) {
        return s.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }
}
