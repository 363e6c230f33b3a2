package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.patch.PatchFile;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which patch goes to which process (DESIGN.md, "Command-line contract"): patches given as files go to the one
 * process named, and fail there if it maps no module they are for; a patch store, or --all, gives each process only
 * the patches for modules it maps.
 */
public final class ApplyPlan {
    private final Map<String, List<PatchFile>> byBuildId;
    private final boolean everyProcess;
    private final boolean fromStore;
    private final Processes processes = new Processes();

    /**
     * {@code byBuildId}: the patches in the order given, by the build-id of the module each is for (a store's file
     * by the build-id it is stored under); {@code everyProcess}: --all; {@code fromStore}: a store was given.
     */
    public ApplyPlan(Map<String, List<PatchFile>> byBuildId, boolean everyProcess, boolean fromStore) {
        var copy = new LinkedHashMap<String, List<PatchFile>>();
        byBuildId.forEach((id, patches) -> copy.put(id, List.copyOf(patches)));
        this.byBuildId = copy;
        this.everyProcess = everyProcess;
        this.fromStore = fromStore;
    }

    /** The processes to consider: {@code pid}, or with --all every process there is. */
    public List<Integer> pids(Integer pid) {
        return everyProcess ? Processes.all() : List.of(pid);
    }

    /**
     * The patches for {@code pid}, in order; empty when it maps no module they are for (with --all: skip it). One
     * process named with a store that has nothing for it is an error (DOES_NOT_FIT).
     */
    public List<PatchFile> patchesFor(int pid) {
        boolean onlyMapped = everyProcess || fromStore;
        var mapped = onlyMapped ? processes.buildIds(pid) : null;
        var out = new ArrayList<PatchFile>();
        for (var e : byBuildId.entrySet()) {
            if (!onlyMapped || mapped.contains(e.getKey())) {
                out.addAll(e.getValue());
            }
        }
        if (out.isEmpty() && !everyProcess && fromStore) {
            throw new SutureException(SutureException.Kind.DOES_NOT_FIT, "pid " + pid + " maps no module"
                    + " that the patch store has a patch for");
        }
        return out;
    }
}
